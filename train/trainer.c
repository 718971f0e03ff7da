/* trainer.c - the training loop, progress, collapse check and evaluation. */
#include "trainer.h"

#include "checkpoint.h"
#include "comm_internal.h"
#include "eval.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *FN = "sst_trainer";

sst_train_cfg sst_train_defaults(sst_method_id id) {
    const sst_method_info *in = sst_method_info_of(id);
    sst_train_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.method, sizeof c.method, "%s", in->name);
    c.optimizer = !strcmp(in->optimizer, "sgd")    ? SST_OPT_SGD
                  : !strcmp(in->optimizer, "lars") ? SST_OPT_LARS
                                                   : SST_OPT_ADAMW;
    c.epochs = 6, c.batch = 256, c.seed = 0, c.subset = 0, c.warmup_epochs = 1;
    c.proj_hidden = in->proj_hidden, c.proj_out = in->proj_out;
    c.lr = in->lr, c.wd = in->wd, c.temperature = in->temperature;
    c.recon_weight = 10.0;
    return c;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *fbuf(int64_t n) { return ss__calloc((size_t)n * sizeof(float)); }

ss_status sst_trainer_init(sst_trainer *tr, const sst_train_cfg *cfg,
                           const sst_images *data) {
    return sst_trainer_init_comm(tr, cfg, data, NULL);
}

/* The data-parallel part of init: this rank's slice of the global batch. */
static ss_status init_ranks(sst_trainer *tr, const ss_comm *comm) {
    int64_t B = tr->cfg.batch;
    tr->first = 0, tr->nloc = B;
    if (!comm) return SS_OK;
    SS_TRY(ss_comm_check(comm));
    if (comm->size == 1) return SS_OK;
    if (B < comm->size)
        return ss__fail(SS_ERR_SIZE, FN, "batch %lld is smaller than the %d "
                        "ranks: each rank needs at least one sample",
                        (long long)B, comm->size);
    tr->comm = comm;
    sst_dist_slice(B, comm->rank, comm->size, &tr->first, &tr->nloc);
    return SS_OK;
}

ss_status sst_trainer_init_comm(sst_trainer *tr, const sst_train_cfg *cfg,
                                const sst_images *data, const ss_comm *comm) {
    memset(tr, 0, sizeof *tr);
    int id = sst_method_find(cfg->method);
    if (id < 0)
        return ss__fail(SS_ERR_PARAM, FN, "unknown method '%s' (one of %s)",
                        cfg->method, sst_method_names());
    if (data->h != SST_IMG || data->w != SST_IMG)
        return ss__fail(SS_ERR_SIZE, FN,
                        "images must be 28x28 (Fashion-MNIST / MNIST), got "
                        "%lldx%lld", (long long)data->h, (long long)data->w);
    if (!(cfg->lr > 0) || !(cfg->wd >= 0) || cfg->epochs < 1 ||
        cfg->warmup_epochs < 0 || cfg->batch < 2)
        return ss__fail(SS_ERR_PARAM, FN,
                        "need lr > 0, wd >= 0, epochs >= 1, warmup >= 0, "
                        "batch >= 2 (got lr %g wd %g epochs %lld batch %lld)",
                        cfg->lr, cfg->wd, (long long)cfg->epochs,
                        (long long)cfg->batch);
    tr->cfg = *cfg, tr->mid = (sst_method_id)id;
    tr->info = sst_method_info_of(tr->mid);
    tr->data = data;
    tr->n = cfg->subset > 0 && cfg->subset < data->n ? cfg->subset : data->n;
    int64_t B = cfg->batch, V = tr->info->views;
    if (B > tr->n)
        return ss__fail(SS_ERR_SIZE, FN, "batch %lld exceeds the %lld images",
                        (long long)B, (long long)tr->n);
    SS_TRY(init_ranks(tr, comm));
    int64_t Bl = tr->nloc; /* this rank's samples per step */
    int64_t cap = V * Bl > 2 ? V * Bl : 2; /* the model's minimum */
    sst_model_cfg mc = {cap, cfg->proj_hidden, cfg->proj_out,
                        tr->info->predictor, tr->info->decoder};
    ss_status st;
    if ((st = sst_model_init(&tr->m, &mc, (uint64_t)cfg->seed))) return st;
    if ((st = sst_model_set_comm(&tr->m, tr->comm))) goto fail;
    if (tr->info->target) {
        sst_model_cfg tc = mc;
        tc.predictor = 0, tc.decoder = 0;
        if ((st = sst_model_init(&tr->t, &tc, (uint64_t)cfg->seed)) ||
            (st = sst_model_set_comm(&tr->t, tr->comm)))
            goto fail;
        /* same layout prefix: the target starts as a copy of the online */
        memcpy(tr->t.P.data, tr->m.P.data, (size_t)tr->t.P.numel * 4);
    }
    if ((st = sst_method_ctx_init(&tr->mc, tr->mid, B, cfg->proj_out,
                                  (float)cfg->temperature,
                                  (float)cfg->recon_weight, tr->comm)))
        goto fail;
    if ((st = sst_loader_init(&tr->ld, tr->n, B, (uint64_t)cfg->seed, 1)))
        goto fail;
    tr->steps_per_epoch = sst_loader_batches(&tr->ld);
    tr->total_steps = tr->steps_per_epoch * cfg->epochs;
    ss_rng_seed(&tr->mask_rng, (uint64_t)cfg->seed ^ 0x6d61736bULL);
    for (int v = 0; v < 2; v++)
        if ((st = sst_augment_preset(&tr->aug[v], tr->info->augment, v)))
            goto fail;
    int64_t np = tr->m.P.numel;
    tr->opt1 = fbuf(np), tr->opt2 = fbuf(np);
    tr->x = fbuf(2 * Bl * 784), tr->clean = fbuf(Bl * 784);
    tr->raw = fbuf(Bl * 784);
    tr->idx = ss__malloc((size_t)B * sizeof(int64_t));
    tr->hist = fbuf(tr->total_steps);
    if (!tr->opt1 || !tr->opt2 || !tr->x || !tr->clean || !tr->raw ||
        !tr->idx || !tr->hist) {
        st = ss__fail(SS_ERR_NOMEM, FN, "out of memory");
        goto fail;
    }
    return SS_OK;
fail:
    sst_trainer_free(tr);
    return st;
}

void sst_trainer_free(sst_trainer *tr) {
    if (!tr) return;
    sst_model_free(&tr->m), sst_model_free(&tr->t);
    sst_method_ctx_free(&tr->mc);
    sst_loader_free(&tr->ld);
    ss__free(tr->opt1), ss__free(tr->opt2), ss__free(tr->x);
    ss__free(tr->clean), ss__free(tr->raw), ss__free(tr->idx);
    ss__free(tr->hist);
    memset(tr, 0, sizeof *tr);
}

double sst_trainer_lr(const sst_trainer *tr) {
    double base = tr->cfg.lr * (double)tr->cfg.batch / 256.0;
    int64_t warm = tr->cfg.warmup_epochs * tr->steps_per_epoch;
    if (warm >= tr->total_steps) warm = tr->total_steps - 1;
    return sst_lr_warmup_cosine(tr->step, warm, tr->total_steps, base * 0.01,
                                base, base * 1e-3);
}

/* Seed of the augmentations of one view at one step: a resumed run redraws
 * exactly the same views. */
static uint64_t view_seed(uint64_t seed, int64_t step, int view) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)step * 2 + (uint64_t)view;
    z ^= z >> 31;
    return z * 0xBF58476D1CE4E5B9ULL;
}

static ss_status optimise(sst_trainer *tr) {
    double lr = sst_trainer_lr(tr);
    int64_t t = tr->step + 1;
    sst_params *P = &tr->m.P;
    switch (tr->cfg.optimizer) {
    case SST_OPT_SGD: {
        sst_sgd_cfg c = {lr, 0.9, 0, tr->cfg.wd, 0};
        return sst_sgd_step(P, tr->opt1, &c, t);
    }
    case SST_OPT_LARS: {
        sst_lars_cfg c = {lr, 0.9, tr->cfg.wd, 0.02, 1e-8, 0, 1};
        return sst_lars_step(P, tr->opt1, &c, t);
    }
    default: {
        sst_adamw_cfg c = {lr, 0.9, 0.999, 1e-8, tr->cfg.wd};
        return sst_adamw_step(P, tr->opt1, tr->opt2, &c, t);
    }
    }
}

/* Data-parallel: every rank gets an error when any rank has one. */
static ss_status agree(const ss_comm *comm, ss_status st) {
    return comm ? ss__dist_status(comm, "selfsup train", st) : st;
}

/* This rank's images of the next global batch and their views: slot
 * first + i of the batch draws the same view on any number of ranks. */
static ss_status load_views(sst_trainer *tr) {
    int64_t B = tr->nloc, cnt;
    uint64_t seed = (uint64_t)tr->cfg.seed;
    SS_TRY(sst_loader_next(&tr->ld, tr->idx, &cnt, NULL));
    SS_TRY(sst_images_to_float(tr->raw, tr->data, tr->idx + tr->first, 0, B));
    for (int v = 0; v < tr->info->views; v++)
        SS_TRY(sst_augment_batch_at(tr->x + v * B * 784, tr->raw, B, 28, 28,
                                    &tr->aug[v], view_seed(seed, tr->step, v),
                                    tr->first));
    return SS_OK;
}

ss_status sst_trainer_step(sst_trainer *tr, float *loss) {
    SS_TRY(agree(tr->comm, load_views(tr)));
    sst_params_zero_grad(&tr->m.P);
    float l = 0.0f;
    ss_status st = sst_method_step(&tr->mc, &tr->m,
                                   tr->info->target ? &tr->t : NULL, tr->x,
                                   tr->raw, &tr->mask_rng, &l);
    st = agree(tr->comm, st);
    if (st == SS_ERR_NONFINITE) l = NAN; /* activations overflowed */
    else if (st) return st;
    if (!isfinite(l) || fabsf(l) > 1e6f)
        return ss__fail(SS_ERR_NONFINITE, "sst_trainer_step",
                        "the %s loss became %g at epoch %lld step %lld (lr "
                        "%.3g): diverged; try a smaller --lr",
                        tr->cfg.method, (double)l, (long long)tr->epoch + 1,
                        (long long)tr->step + 1, sst_trainer_lr(tr));
    if (tr->comm) SS_TRY(sst_dist_average_grads(tr->comm, &tr->m.P));
    SS_TRY(optimise(tr));
    if (tr->info->target) {
        double tau = sst_momentum_cosine(tr->step, tr->total_steps,
                                         tr->info->ema, 1.0);
        SS_TRY(sst_ema_update(tr->t.P.data, tr->m.P.data, tr->t.P.numel, tau));
    }
    tr->hist[tr->step] = l;
    tr->step++;
    tr->last_loss = l;
    *loss = l;
    return SS_OK;
}

/* ---- the run ---------------------------------------------------------------- */

static void fmt_eta(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 360000) s = 0;
    snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void progress(const sst_trainer *tr, int64_t in_epoch, double loss,
                     double ips, double eta, int tty) {
    char e[32];
    fmt_eta(e, sizeof e, eta);
    int w = 24, fill = (int)(w * in_epoch / tr->steps_per_epoch);
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[w] = 0;
    fprintf(stderr, "%sepoch %lld/%lld [%s] %lld/%lld loss %.4f %.0f img/s ETA %s%s",
            tty ? "\r" : "", (long long)tr->epoch + 1, (long long)tr->cfg.epochs,
            bar, (long long)in_epoch, (long long)tr->steps_per_epoch, loss, ips,
            e, tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* Collapse check on the monitor batch (the first 512 training images). */
static ss_status monitor(sst_trainer *tr, sst_health *h, int *collapsed) {
    int64_t n = tr->n < 512 ? tr->n : 512;
    float *x = fbuf(n * 784), *f = fbuf(n * SST_FEAT);
    ss_status st = (!x || !f) ? ss__fail(SS_ERR_NOMEM, FN, "out of memory") : SS_OK;
    if (!st) st = sst_images_to_float(x, tr->data, NULL, 0, n);
    if (!st) st = sst_model_features(&tr->m, f, x, n);
    if (!st) st = sst_collapse_check(collapsed, h, f, n, SST_FEAT);
    ss__free(x), ss__free(f);
    return st;
}

static int mkdir_p(const char *d) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", d);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    return (mkdir(buf, 0777) && errno != EEXIST) ? -1 : 0;
}

static const char *COLS[] = {"epoch", "step", "loss", "lr", "images_per_s",
                             "std_ratio", "eff_rank", "collapsed", "seconds"};

/* Rank 0's end of an epoch: collapse check, summary line, CSV row and
 * checkpoint. k0: the first step of the epoch this run did. */
static ss_status end_epoch(sst_trainer *tr, sst_csv *csv, const char *ck,
                           double sum, int64_t k0, double secs, int tty,
                           int progress_on) {
    sst_health h;
    int col = 0;
    SS_TRY(monitor(tr, &h, &col));
    if (tty && progress_on) fputc('\n', stderr);
    int64_t steps = tr->steps_per_epoch - k0;
    if (col)
        fprintf(stderr, "selfsup train: WARNING: representation collapse "
                "at epoch %lld: embedding std ratio %.3f, effective rank "
                "%.2f of %d\n", (long long)tr->epoch, h.std_ratio,
                h.eff_rank, SST_FEAT);
    else
        fprintf(stderr, "  epoch %lld: mean loss %.4f, embedding std ratio "
                "%.3f, effective rank %.1f, %.1f s\n", (long long)tr->epoch,
                sum / (double)steps, h.std_ratio, h.eff_rank, secs);
    double row[9] = {(double)tr->epoch, (double)tr->step, sum / (double)steps,
                     sst_trainer_lr(tr),
                     (double)steps * (double)tr->cfg.batch / secs,
                     h.std_ratio, h.eff_rank, col, secs};
    SS_TRY(sst_csv_row(csv, row));
    SS_TRY(sst_csv_flush(csv));
    return sst_checkpoint_save(tr, ck);
}

ss_status sst_train_run(const sst_train_cfg *cfg_in, const sst_run_opts *o) {
    const ss_comm *comm = o->comm && o->comm->size > 1 ? o->comm : NULL;
    const int lead = !comm || comm->rank == 0; /* prints and writes */
    char ck[1200], csvp[1200], png[1200];
    ss_status st = SS_OK;
    if (lead && mkdir_p(o->out_dir))
        st = ss__fail(SS_ERR_IO, "selfsup train", "cannot create %s: %s",
                      o->out_dir, strerror(errno));
    SS_TRY(agree(comm, st));
    snprintf(ck, sizeof ck, "%s/checkpoint.bin", o->out_dir);
    snprintf(csvp, sizeof csvp, "%s/metrics.csv", o->out_dir);
    snprintf(png, sizeof png, "%s/report.png", o->out_dir);
    sst_train_cfg cfg = *cfg_in;
    if (o->resume) SS_TRY(agree(comm, sst_checkpoint_read_cfg(&cfg, ck)));
    sst_images im;
    sst_trainer tr;
    sst_csv *csv = NULL;
    memset(&im, 0, sizeof im), memset(&tr, 0, sizeof tr);
    st = sst_dataset_load_images(&im, o->data_dir, SST_SPLIT_TRAIN);
    if (!st) st = sst_trainer_init_comm(&tr, &cfg, &im, comm);
    if (!st && o->resume) st = sst_checkpoint_load(&tr, ck);
    if (!st && lead) st = sst_csv_create(&csv, csvp, COLS, 9);
    if ((st = agree(comm, st))) goto done;
    int tty = lead && isatty(2), progress_on = lead && o->progress;
    if (lead)
        fprintf(stderr,
                "selfsup train: %s on %lld images, %lld epochs x %lld steps, "
                "batch %lld, lr %g, %d threads%s%s\n",
                cfg.method, (long long)tr.n, (long long)cfg.epochs,
                (long long)tr.steps_per_epoch, (long long)cfg.batch, cfg.lr,
                ss_get_num_threads(), comm ? " per rank" : "",
                o->resume ? " (resumed)" : "");
    if (lead && comm)
        fprintf(stderr, "selfsup train: data-parallel over %d ranks, %lld to "
                "%lld images per rank and step\n", comm->size,
                (long long)(cfg.batch / comm->size),
                (long long)((cfg.batch + comm->size - 1) / comm->size));
    double t_start = now();
    while (tr.epoch < cfg.epochs) {
        double t0 = now(), sum = 0;
        int64_t k0 = tr.step - tr.epoch * tr.steps_per_epoch;
        for (int64_t k = k0; k < tr.steps_per_epoch; k++) {
            float l;
            if ((st = sst_trainer_step(&tr, &l))) {
                if (tty) fputc('\n', stderr);
                if (lead)
                    fprintf(stderr, "selfsup train: %s\nselfsup train: "
                            "stopped; the last good checkpoint (epoch %lld) "
                            "is kept in %s\n", ss_last_error(),
                            (long long)tr.epoch, ck);
                goto done;
            }
            sum += l;
            double el = now() - t0, ips = (double)(k + 1 - k0) * cfg.batch / el;
            double left = (double)(tr.total_steps - tr.step) * cfg.batch / ips;
            if (progress_on && (tty || k + 1 == tr.steps_per_epoch))
                progress(&tr, k + 1, l, ips, left, tty);
        }
        double secs = now() - t0;
        tr.epoch++;
        st = lead ? end_epoch(&tr, csv, ck, sum, k0, secs, tty, progress_on)
                  : SS_OK;
        if ((st = agree(comm, st))) goto done; /* the others wait for rank 0 */
    }
    if (lead)
        fprintf(stderr, "selfsup train: trained in %.1f s; checkpoint %s\n",
                now() - t_start, ck);
    if (lead && o->evaluate)
        st = sst_evaluate(&tr.m, &cfg, o->data_dir, o->eval_train, o->eval_test,
                          tr.hist, tr.step, png, stdout, NULL);
done:
    sst_csv_free(csv);
    sst_trainer_free(&tr);
    sst_images_free(&im);
    return st;
}

/* ---- evaluation --------------------------------------------------------------- */

typedef struct {
    float *xtr, *xte; /* pixels (ntr, 784), (nte, 784) */
    sst_labels ytr, yte;
    int64_t ntr, nte;
} evdata;

static ss_status load_split(float **x, sst_labels *y, int64_t *n,
                            const char *dir, sst_split sp, int64_t want) {
    sst_images im;
    SS_TRY(sst_dataset_load_images(&im, dir, sp));
    ss_status st = sst_dataset_load_labels(y, dir, sp, im.n);
    if (!st && (im.h != 28 || im.w != 28))
        st = ss__fail(SS_ERR_SIZE, "selfsup eval", "images must be 28x28");
    if (!st) {
        *n = want > 0 && want < im.n ? want : im.n;
        *x = fbuf(*n * 784);
        st = *x ? sst_images_to_float(*x, &im, NULL, 0, *n)
                : ss__fail(SS_ERR_NOMEM, "selfsup eval", "out of memory");
    }
    sst_images_free(&im);
    return st;
}

static ss_status eval_features(sst_eval_row *r, const float *ftr,
                               const float *fte, int64_t D, const evdata *e) {
    sst_probe_opts po = sst_probe_defaults();
    int C = e->ytr.n_classes > e->yte.n_classes ? e->ytr.n_classes : e->yte.n_classes;
    SS_TRY(sst_linear_probe(&r->probe, NULL, NULL, ftr, e->ytr.labels, e->ntr,
                            fte, e->yte.labels, e->nte, D, C, &po));
    SS_TRY(sst_knn_accuracy(&r->knn, ftr, e->ytr.labels, e->ntr, fte,
                            e->yte.labels, e->nte, D, C, SST_KNN_K, SST_KNN_T));
    sst_health h;
    SS_TRY(sst_embedding_health(&h, fte, e->nte, D));
    r->std_ratio = h.std_ratio, r->eff_rank = h.eff_rank, r->mean_std = h.mean_std;
    return SS_OK;
}

static ss_status model_eval(sst_eval_row *r, sst_model *m, const evdata *e,
                            float *fte_out) {
    float *ftr = fbuf(e->ntr * SST_FEAT), *fte = fbuf(e->nte * SST_FEAT);
    ss_status st = (!ftr || !fte) ? ss__fail(SS_ERR_NOMEM, FN, "out of memory") : SS_OK;
    if (!st) st = sst_model_features(m, ftr, e->xtr, e->ntr);
    if (!st) st = sst_model_features(m, fte, e->xte, e->nte);
    if (!st) st = eval_features(r, ftr, fte, SST_FEAT, e);
    if (!st && fte_out) memcpy(fte_out, fte, (size_t)(e->nte * SST_FEAT) * 4);
    ss__free(ftr), ss__free(fte);
    return st;
}

ss_status sst_evaluate(sst_model *m, const sst_train_cfg *cfg,
                       const char *data_dir, int64_t ntr, int64_t nte,
                       const float *hist, int64_t n_hist,
                       const char *report_png, FILE *f, sst_eval_row *rows) {
    evdata e;
    memset(&e, 0, sizeof e);
    sst_eval_row r[3] = {{"pretrained (" "encoder" ")", 0, 0, 0, 0, 0},
                         {"random init", 0, 0, 0, 0, 0},
                         {"raw pixels", 0, 0, 0, 0, 0}};
    sst_model rnd;
    memset(&rnd, 0, sizeof rnd);
    float *emb = NULL;
    double t0 = now();
    ss_status st = load_split(&e.xtr, &e.ytr, &e.ntr, data_dir, SST_SPLIT_TRAIN, ntr);
    if (!st) st = load_split(&e.xte, &e.yte, &e.nte, data_dir, SST_SPLIT_TEST, nte);
    if (!st && !(emb = fbuf(e.nte * SST_FEAT)))
        st = ss__fail(SS_ERR_NOMEM, FN, "out of memory");
    if (!st) st = model_eval(&r[0], m, &e, emb);
    if (!st) {
        sst_model_cfg mc = m->cfg;
        st = sst_model_init(&rnd, &mc, (uint64_t)cfg->seed + 1000003);
    }
    /* BN running statistics of the random encoder: 20 training batches */
    for (int64_t i = 0; !st && i < 20; i++) {
        int64_t b = rnd.cfg.cap < e.ntr ? rnd.cfg.cap : e.ntr;
        int64_t off = (i * b) % (e.ntr - b + 1);
        st = sst_model_encode(&rnd, e.xtr + off * 784, b, 1);
    }
    if (!st) st = model_eval(&r[1], &rnd, &e, NULL);
    if (!st) st = eval_features(&r[2], e.xtr, e.xte, 784, &e);
    if (!st) {
        fprintf(f, "\nWhat the %s encoder learned (test set: %lld images; "
                "probe and kNN fitted on %lld training images):\n\n",
                cfg->method, (long long)e.nte, (long long)e.ntr);
        fprintf(f, "  %-20s %12s %10s %14s %14s\n", "encoder", "linear probe",
                "kNN k=200", "emb std ratio", "effective rank");
        const char *names[3] = {"pretrained", "random init", "raw pixels"};
        for (int i = 0; i < 3; i++)
            fprintf(f, "  %-20s %11.2f%% %9.2f%% %14.3f %9.1f / %d\n", names[i],
                    100 * r[i].probe, 100 * r[i].knn, r[i].std_ratio,
                    r[i].eff_rank, i == 2 ? 784 : SST_FEAT);
        fprintf(f, "\n  pretrained - random init: %+.2f points (linear probe); "
                "evaluation %.1f s\n", 100 * (r[0].probe - r[1].probe),
                now() - t0);
        r[0].name = names[0], r[1].name = names[1], r[2].name = names[2];
        if (rows) memcpy(rows, r, sizeof r);
    }
    if (!st && report_png && sst_report_available()) {
        char title[96];
        snprintf(title, sizeof title, "selfsup train: %s (Fashion-MNIST)", cfg->method);
        const char *bn[3] = {"pretrained", "random init", "raw pixels"};
        double acc[3] = {r[0].probe, r[1].probe, r[2].probe};
        double knn[3] = {r[0].knn, r[1].knn, r[2].knn};
        sst_report rep = {title, hist, n_hist, "step", 3, bn, acc, knn, emb,
                          e.yte.labels, e.nte, SST_FEAT, e.yte.n_classes,
                          e.yte.n_classes == 10 ? sst_fmnist_class_names : NULL};
        if (n_hist < 1) rep.loss = NULL, rep.n_loss = 0;
        st = sst_report_png(report_png, &rep);
        if (!st) fprintf(f, "  report: %s\n", report_png);
    }
    sst_model_free(&rnd);
    ss__free(emb), ss__free(e.xtr), ss__free(e.xte);
    sst_labels_free(&e.ytr), sst_labels_free(&e.yte);
    return st;
}
