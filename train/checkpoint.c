/* checkpoint.c - save / restore a training run (format in checkpoint.h). */
#include "checkpoint.h"

#include "fileio.h"

#include <string.h>

static const char MAGIC[8] = {'S', 'S', 'T', 'C', 'K', 'P', 'T', '1'};

ss_status sst_checkpoint_save(const sst_trainer *tr, const char *path) {
    static const char *fn = "sst_checkpoint_save";
    SS_TRY(ss__check_ptr(fn, "tr", tr));
    SS_TRY(ss__check_ptr(fn, "path", path));
    int64_t numel = tr->m.P.numel, tnumel = tr->info->target ? tr->t.P.numel : 0;
    int64_t K = tr->mc.center ? ss_center_dim(tr->mc.center) : 0;
    int64_t ep = tr->epoch, stp = tr->step, n = tr->ld.n, pos = tr->ld.pos,
            lep = tr->ld.epoch, nh = tr->step;
    size_t fb = sizeof(float), nb = (size_t)numel * fb;
    const void *bufs[] = {&tr->cfg, &numel, tr->m.P.data, tr->opt1, tr->opt2,
                          &tnumel, tnumel ? tr->t.P.data : NULL, &K,
                          K ? ss_center_data(tr->mc.center) : NULL, &ep, &stp,
                          &n, &pos, &lep, tr->ld.order, tr->ld.rng.s,
                          tr->mask_rng.s, &nh, tr->hist};
    const size_t lens[] = {sizeof tr->cfg, 8, nb, nb, nb, 8,
                           (size_t)tnumel * fb, 8, (size_t)K * fb, 8, 8, 8, 8,
                           8, (size_t)n * 8, 32, 32, 8, (size_t)nh * fb};
    return ss__write_atomic(fn, path, MAGIC, SST_CKPT_VERSION, bufs, lens,
                            (int)(sizeof lens / sizeof *lens));
}

static const char *FNL = "sst_checkpoint_load";

static ss_status read_cfg(ss__reader *r, sst_train_cfg *cfg) {
    SS_TRY(ss__read(r, cfg, sizeof *cfg, "configuration"));
    cfg->method[sizeof cfg->method - 1] = '\0';
    if (sst_method_find(cfg->method) < 0)
        return ss__fail(SS_ERR_FORMAT, FNL,
                        "%s: unknown method '%s' in the configuration at byte "
                        "offset 16", r->path, cfg->method);
    if (cfg->batch < 2 || cfg->epochs < 1 || cfg->proj_hidden < 1 ||
        cfg->proj_out < 1 || cfg->optimizer < 0 || cfg->optimizer > 2)
        return ss__fail(SS_ERR_FORMAT, FNL,
                        "%s: invalid configuration values at byte offset 16",
                        r->path);
    return SS_OK;
}

ss_status sst_checkpoint_read_cfg(sst_train_cfg *cfg, const char *path) {
    ss__reader r;
    SS_TRY(ss__reader_open(&r, FNL, path, MAGIC, SST_CKPT_VERSION));
    ss_status st = read_cfg(&r, cfg);
    ss__reader_close(&r);
    return st;
}

static ss_status read_floats(ss__reader *r, float *dst, int64_t expect,
                             const char *what) {
    int64_t n;
    SS_TRY(ss__read_i64(r, &n, expect, expect, what));
    return ss__read(r, dst, (size_t)n * sizeof(float), what);
}

static ss_status load_body(ss__reader *r, sst_trainer *tr) {
    sst_train_cfg cfg;
    SS_TRY(read_cfg(r, &cfg));
    int64_t numel = tr->m.P.numel;
    SS_TRY(read_floats(r, tr->m.P.data, numel, "parameter count"));
    SS_TRY(ss__read(r, tr->opt1, (size_t)numel * 4, "optimiser state"));
    SS_TRY(ss__read(r, tr->opt2, (size_t)numel * 4, "optimiser state"));
    int64_t tn = tr->info->target ? tr->t.P.numel : 0;
    SS_TRY(read_floats(r, tn ? tr->t.P.data : NULL, tn, "target size"));
    int64_t K = tr->mc.center ? ss_center_dim(tr->mc.center) : 0;
    float *cbuf = K ? ss__malloc((size_t)K * 4) : NULL;
    ss_status st = read_floats(r, cbuf, K, "centre size");
    if (!st && K) st = ss_center_set(tr->mc.center, cbuf);
    ss__free(cbuf);
    SS_TRY(st);
    SS_TRY(ss__read_i64(r, &tr->epoch, 0, cfg.epochs, "epoch"));
    SS_TRY(ss__read_i64(r, &tr->step, 0, tr->total_steps, "step"));
    int64_t n;
    SS_TRY(ss__read_i64(r, &n, tr->ld.n, tr->ld.n, "loader size"));
    SS_TRY(ss__read_i64(r, &tr->ld.pos, 0, n, "loader position"));
    SS_TRY(ss__read_i64(r, &tr->ld.epoch, 0, INT64_MAX, "loader epoch"));
    SS_TRY(ss__read(r, tr->ld.order, (size_t)n * 8, "loader order"));
    for (int64_t i = 0; i < n; i++)
        if (tr->ld.order[i] < 0 || tr->ld.order[i] >= n)
            return ss__fail(SS_ERR_FORMAT, FNL,
                            "%s: loader index %lld out of range near byte "
                            "offset %ld", r->path, (long long)tr->ld.order[i],
                            r->off);
    SS_TRY(ss__read(r, tr->ld.rng.s, 32, "loader rng"));
    SS_TRY(ss__read(r, tr->mask_rng.s, 32, "mask rng"));
    SS_TRY(read_floats(r, tr->hist, tr->step, "loss history"));
    return ss__reader_expect_eof(r);
}

ss_status sst_checkpoint_load(sst_trainer *tr, const char *path) {
    SS_TRY(ss__check_ptr(FNL, "tr", tr));
    ss__reader r;
    SS_TRY(ss__reader_open(&r, FNL, path, MAGIC, SST_CKPT_VERSION));
    ss_status st = load_body(&r, tr);
    ss__reader_close(&r);
    return st;
}

ss_status sst_checkpoint_load_model(sst_model *m, sst_train_cfg *cfg,
                                    const char *path) {
    ss__reader r;
    SS_TRY(ss__reader_open(&r, FNL, path, MAGIC, SST_CKPT_VERSION));
    ss_status st = read_cfg(&r, cfg);
    if (!st) {
        const sst_method_info *in = sst_method_info_of(sst_method_find(cfg->method));
        /* the training cap: the random-init encoder of the evaluation then
         * calibrates BN on batches of the same size as after training */
        sst_model_cfg mc = {cfg->batch * in->views, cfg->proj_hidden, cfg->proj_out, in->predictor,
                            in->decoder};
        st = sst_model_init(m, &mc, (uint64_t)cfg->seed);
        if (!st) st = read_floats(&r, m->P.data, m->P.numel, "parameter count");
        if (st) sst_model_free(m);
    }
    ss__reader_close(&r);
    return st;
}
