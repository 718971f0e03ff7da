/*
 * dist_clip.c - CLIP and SigLIP over ranks, all-gather path, on the cross
 * engine (kernels/cross.h). Contract: selfsup_comm.h; semantics:
 * docs/DISTRIBUTED.md.
 *
 * Rank r holds pairs (a_i, b_i), i < N_r, global pairs offset_r + i. Both
 * sides are all-gathered and ROTATED so that this rank's block comes first
 * (column j of the gathered side is global pair (offset_r + j) mod Ntot):
 * sums over all columns do not depend on their order, and the engine's
 * diagonal i == j is then the positive pair. Every rank runs two passes,
 *     rows a_local x columns b_all   (row statistics, dA, d/dscale)
 *     rows b_local x columns a_all   (column statistics, dB)
 * the second being the transpose, so each rank forms the complete gradient
 * of its own rows (the column terms of every other rank's anchors come from
 * the gathered statistics) without a reduce-scatter: 2 N_r Ntot D
 * multiply-adds forward, twice that backward.
 */
#include "comm_internal.h"
#include "dist_clip_internal.h"
#include "kernels/cross.h"

#include <string.h>

#define DCLIP_MAGIC 0x3150494c43445353ull /* "SSDCLIP1" */
#define DSIG_MAGIC 0x31474953445353ull    /* "SSDSIG1" */

static size_t hdr_bytes(void) {
    return (sizeof(ss__cross_hdr) + 63) & ~(size_t)63;
}

/* ---- shared set-up ------------------------------------------------------- */

typedef struct {
    ss__cross_pair wk;        /* local rows (normalised when cosine) */
    float *mem, *aall, *ball; /* (Ntot, D) gathered, rotated */
    float *ga, *gb;           /* (N, D) gradients w.r.t. the rows seen */
    float *w;                 /* (Ntot) weights */
    int64_t *counts, *bytes;
    int64_t N, D, Ntot, off;
    int have_wk;
} dclip_work;

static void dclip_free(dclip_work *w) {
    if (w->have_wk) ss__cross_pair_free(&w->wk);
    ss__free(w->mem), ss__free(w->counts), ss__free(w->bytes);
    memset(w, 0, sizeof *w);
}

/* Gathers (N_r, per) float rows of every rank into out, rotated so that
 * this rank's rows come first. tmp: (Ntot, per) scratch. */
static ss_status dclip_gather_rot(float *out, float *tmp, const char *fn,
                                  const float *send, int64_t per,
                                  const dclip_work *w, const ss_comm *c) {
    SS_TRY(ss__dist_allgather_rows(c, fn, send, tmp, w->counts, per,
                                   sizeof(float), w->bytes));
    int64_t head = (w->Ntot - w->off) * per;
    memcpy(out, tmp + w->off * per, (size_t)head * sizeof(float));
    memcpy(out + head, tmp, (size_t)(w->off * per) * sizeof(float));
    return SS_OK;
}

static ss_status dclip_alloc(dclip_work *w, const char *fn,
                             const float *a, const float *b, int cosine,
                             int backward) {
    int64_t N = w->N, D = w->D, Nt = w->Ntot;
    if (ss__check_product(fn, Nt, D, 2) != SS_OK) return SS_ERR_SIZE;
    if (ss__cross_pair_make(&w->wk, a, b, N, D, cosine, backward) != SS_OK)
        return ss__cross_nomem(fn, Nt, D);
    w->have_wk = 1;
    size_t fl = (size_t)(2 * Nt * D + Nt + (backward ? 2 * N * D : 0));
    w->mem = ss__calloc(fl * sizeof(float));
    if (!w->mem) return ss__cross_nomem(fn, Nt, D);
    w->aall = w->mem, w->ball = w->aall + Nt * D, w->w = w->ball + Nt * D;
    if (backward) w->ga = w->w + Nt, w->gb = w->ga + N * D;
    return SS_OK;
}

/* Local status st, one agreement (vals: must be equal; N), allocation, the
 * rows seen by the engine and the rotated gathered rows of both sides. */
static ss_status dclip_setup(dclip_work *w, const char *fn, ss_status st,
                             const float *a, const float *b, int64_t N,
                             int64_t D, int cosine, int backward,
                             const double *vals, const char *const *names,
                             int nv, const ss_comm *c) {
    memset(w, 0, sizeof *w);
    w->counts = ss__malloc((size_t)c->size * sizeof(int64_t));
    w->bytes = ss__malloc((size_t)c->size * sizeof(int64_t));
    if (st == SS_OK && (!w->counts || !w->bytes))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    int64_t dummy[1];
    st = ss__dist_agree(c, fn, st, vals, names, nv, N,
                        w->counts ? w->counts : dummy, &w->off, &w->Ntot);
    if (st == SS_OK) {
        w->N = N, w->D = D;
        st = ss__dist_status(c, fn, dclip_alloc(w, fn, a, b, cosine,
                                                backward));
    }
    float *tmp = st == SS_OK ? ss__malloc((size_t)(w->Ntot * D) *
                                          sizeof(float)) : NULL;
    if (st == SS_OK)
        st = ss__dist_status(c, fn, tmp ? SS_OK : ss__cross_nomem(fn,
                                                                  w->Ntot, D));
    if (st == SS_OK)
        st = dclip_gather_rot(w->aall, tmp, fn, w->wk.a, D, w, c);
    if (st == SS_OK)
        st = dclip_gather_rot(w->ball, tmp, fn, w->wk.b, D, w, c);
    ss__free(tmp);
    if (st != SS_OK) dclip_free(w);
    return st;
}

/* Two passes: rows = local a against all b, rows = local b against all a. */
static void dclip_problems(ss__cross *p1, ss__cross *p2, const dclip_work *w,
                           float scale, float bias) {
    ss__cross q1 = {w->wk.a, w->ball, NULL, w->N, w->Ntot, w->D, scale, bias};
    ss__cross q2 = {w->wk.b, w->aall, NULL, w->N, w->Ntot, w->D, scale, bias};
    *p1 = q1, *p2 = q2;
}

/* After the engine: the parameter gradients g (n doubles, this rank's share
 * times world_size) are all-reduced and divided by world_size (so every
 * rank holds dloss * the global d/dparam); only then da, db are written. */
static ss_status dclip_finish(dclip_work *w, const char *fn, double *g, int n,
                              float *da, float *db, const float *a,
                              const float *b, const ss_comm *c) {
    SS_TRY(ss__dist_allreduce(c, fn, g, n, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int k = 0; k < n; k++) g[k] /= (double)c->size;
    if (w->wk.dan) {
        ss__cross_pair_finish(&w->wk, da, db, a, b, w->N, w->D);
    } else {
        for (int64_t i = 0; i < w->N * w->D; i++)
            da[i] += w->ga[i], db[i] += w->gb[i];
    }
    return SS_OK;
}

ss_status ss__dclip_check_cache(const char *fn, const void *cache,
                                uint64_t magic, int64_t N, int64_t D,
                                float p0, float p1, int cosine, int64_t *K) {
    ss__cross_hdr h;
    memcpy(&h, cache, sizeof h);
    *K = h.K;
    return ss__cross_hdr_check(cache, fn, magic, N, h.K, D, p0, p1, cosine);
}

ss_status ss__dclip_check_ntot(const char *fn, int64_t K, int64_t Ntot) {
    if (K == Ntot) return SS_OK;
    return ss__fail(SS_ERR_STATE, fn, "cache was written for a global batch "
                    "of %lld pairs, now %lld", (long long)K, (long long)Ntot);
}

/* The local checks of a call, in the order of the single-process losses:
 * outputs (o2 NULL in forward), cache, the pair and its parameters, then,
 * in backward (K non-NULL), dloss and the cache header. bias: SigLIP's or
 * NULL. Writes *scale = e^log_scale. */
static ss_status dclip_check(const char *fn, const void *o1, const char *n1,
                             const void *o2, const void *cache, const float *a,
                             const float *b, int64_t N, int64_t D,
                             const char *pname, float lscale,
                             const float *bias, int cosine, uint64_t magic,
                             float dloss, int64_t *K, float *scale) {
    SS_TRY(ss__check_ptr(fn, n1, o1));
    if (K) SS_TRY(ss__check_ptr(fn, "db", o2));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__cross_check_pair(fn, a, b, N, D, pname, lscale, bias, scale));
    if (!K) return SS_OK;
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    return ss__dclip_check_cache(fn, cache, magic, N, D, lscale,
                                 bias ? *bias : 0.0f, cosine, K);
}

/* ---- CLIP ---------------------------------------------------------------- */

size_t ss_dist_clip_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_dist_clip_cache_size", N, D) != SS_OK)
        return 0;
    return hdr_bytes() + 2 * (size_t)N * sizeof(float);
}

static ss_status dclip_clip_setup(dclip_work *w, const char *fn, ss_status st,
                                  const float *a, const float *b,
                                  float log_scale, int64_t N, int64_t D,
                                  const ss_clip_opts *o, int backward,
                                  float dloss, const ss_comm *c) {
    static const char *const names[] = {"D", "log_scale", "cosine", "dloss"};
    double vals[4] = {(double)D, (double)log_scale, o->cosine ? 1.0 : 0.0,
                      (double)dloss};
    return dclip_setup(w, fn, st, a, b, N, D, o->cosine, backward, vals,
                       names, 4, c);
}

ss_status ss_dist_clip_forward(float *loss, float *losses, void *cache,
                               const float *a, const float *b, float log_scale,
                               int64_t N, int64_t D, const ss_clip_opts *opts,
                               const ss_comm *comm) {
    static const char fn[] = "ss_dist_clip_forward";
    SS_TRY(ss_comm_check(comm));
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale = 0.0f;
    ss_status st = dclip_check(fn, loss, "loss", NULL, cache, a, b, N, D,
                               "log_scale", log_scale, NULL, o.cosine, 0, 0.0f,
                               NULL, &scale);
    dclip_work w;
    SS_TRY(dclip_clip_setup(&w, fn, st, a, b, log_scale, N, D, &o, 0, 0.0f,
                            comm));
    float *rl = ss__malloc((size_t)(3 * N) * sizeof(float));
    st = ss__dist_status(comm, fn, rl ? SS_OK : ss__cross_nomem(fn, N, D));
    ss__cross p1, p2;
    dclip_problems(&p1, &p2, &w, scale, 0.0f);
    float *cl = rl ? rl + N : NULL, *sii = rl ? rl + 2 * N : NULL;
    if (st == SS_OK) st = ss__cross_lse(rl, NULL, sii, &p1);
    if (st == SS_OK) st = ss__cross_lse(cl, NULL, NULL, &p2);
    st = ss__dist_status(comm, fn, st);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        total += 0.5 * (((double)rl[i] - sii[i]) + ((double)cl[i] - sii[i]));
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)w.Ntot);
    if (st == SS_OK) {
        for (int64_t i = 0; losses && i < N; i++)
            losses[i] = (float)(0.5 * (((double)rl[i] - sii[i]) +
                                       ((double)cl[i] - sii[i])));
        *loss = (float)(total / (double)w.Ntot);
        ss__cross_hdr_set(cache, DCLIP_MAGIC, N, w.Ntot, D, log_scale, 0.0f,
                          o.cosine);
        memcpy((char *)cache + hdr_bytes(), rl, 2 * (size_t)N * sizeof(float));
    }
    ss__free(rl);
    dclip_free(&w);
    return st;
}

ss_status ss_dist_clip_backward(float *da, float *db, float *dlog_scale,
                                float dloss, const void *cache, const float *a,
                                const float *b, float log_scale, int64_t N,
                                int64_t D, const ss_clip_opts *opts,
                                const ss_comm *comm) {
    static const char fn[] = "ss_dist_clip_backward";
    SS_TRY(ss_comm_check(comm));
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale = 0.0f;
    int64_t K = 0;
    ss_status st = dclip_check(fn, da, "da", db, cache, a, b, N, D,
                               "log_scale", log_scale, NULL, o.cosine,
                               DCLIP_MAGIC, dloss, &K, &scale);
    dclip_work w;
    SS_TRY(dclip_clip_setup(&w, fn, st, a, b, log_scale, N, D, &o, 1,
                            isfinite(dloss) ? dloss : 0.0f, comm));
    const float *rl =
        (const float *)(const void *)((const char *)cache + hdr_bytes());
    float *stats = ss__malloc((size_t)(4 * w.Ntot) * sizeof(float));
    st = ss__dclip_check_ntot(fn, K, w.Ntot);
    if (st == SS_OK && !stats) st = ss__cross_nomem(fn, w.Ntot, D);
    st = ss__dist_status(comm, fn, st);
    /* gathered row and column lse (rotated), stats + 2 Ntot: scratch */
    float *rall = stats, *call = stats ? stats + w.Ntot : NULL;
    if (st == SS_OK)
        st = dclip_gather_rot(rall, stats + 2 * w.Ntot, fn, rl, 1, &w, comm);
    if (st == SS_OK)
        st = dclip_gather_rot(call, stats + 2 * w.Ntot, fn, rl + N, 1, &w,
                              comm);
    /* mean convention: dloss * world_size / (2 Ntot) per softmax term */
    double f = (double)dloss * comm->size / (double)w.Ntot, gx = 0.0;
    for (int64_t j = 0; j < w.Ntot; j++) w.w[j] = (float)(0.5 * f);
    ss__cross p1, p2;
    dclip_problems(&p1, &p2, &w, scale, 0.0f);
    float *ga = w.wk.dan ? w.wk.dan : w.ga, *gb = w.wk.dbn ? w.wk.dbn : w.gb;
    if (st == SS_OK)
        st = ss__cross_lse_backward(ga, NULL, &gx, w.w, rl, w.w, call,
                                    (float)f, &p1);
    if (st == SS_OK)
        st = ss__cross_lse_backward(gb, NULL, NULL, w.w, rl + N, w.w, rall,
                                    (float)f, &p2);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) st = dclip_finish(&w, fn, &gx, 1, da, db, a, b, comm);
    if (st == SS_OK && dlog_scale) *dlog_scale += (float)gx;
    ss__free(stats);
    dclip_free(&w);
    return st;
}

/* ---- SigLIP -------------------------------------------------------------- */

size_t ss_dist_siglip_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_dist_siglip_cache_size", N, D) != SS_OK)
        return 0;
    return sizeof(ss__cross_hdr);
}

static ss_status dclip_sig_setup(dclip_work *w, const char *fn, ss_status st,
                                 const float *a, const float *b, float log_t,
                                 float bias, int64_t N, int64_t D,
                                 const ss_siglip_opts *o, int backward,
                                 float dloss, const ss_comm *c) {
    static const char *const names[] = {"D", "log_t", "bias", "cosine",
                                        "dloss"};
    double vals[5] = {(double)D, (double)log_t, (double)bias,
                      o->cosine ? 1.0 : 0.0, (double)dloss};
    return dclip_setup(w, fn, st, a, b, N, D, o->cosine, backward, vals,
                       names, 5, c);
}

ss_status ss_dist_siglip_forward(float *loss, float *losses, void *cache,
                                 const float *a, const float *b, float log_t,
                                 float bias, int64_t N, int64_t D,
                                 const ss_siglip_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_siglip_forward";
    SS_TRY(ss_comm_check(comm));
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale = 0.0f;
    ss_status st = dclip_check(fn, loss, "loss", NULL, cache, a, b, N, D,
                               "log_t", log_t, &bias, o.cosine, 0, 0.0f, NULL,
                               &scale);
    dclip_work w;
    SS_TRY(dclip_sig_setup(&w, fn, st, a, b, log_t, bias, N, D, &o, 0, 0.0f,
                           comm));
    double *rows = ss__malloc((size_t)N * sizeof(double)), total = 0.0;
    st = ss__dist_status(comm, fn, rows ? SS_OK : ss__cross_nomem(fn, N, D));
    ss__cross p1, p2;
    dclip_problems(&p1, &p2, &w, scale, bias);
    if (st == SS_OK) st = ss__cross_sigmoid(rows, &p1);
    st = ss__dist_status(comm, fn, st);
    for (int64_t i = 0; st == SS_OK && i < N; i++) total += rows[i];
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)w.Ntot);
    if (st == SS_OK) {
        for (int64_t i = 0; losses && i < N; i++) losses[i] = (float)rows[i];
        *loss = (float)(total / (double)w.Ntot);
        ss__cross_hdr_set(cache, DSIG_MAGIC, N, w.Ntot, D, log_t, bias,
                          o.cosine);
    }
    ss__free(rows);
    dclip_free(&w);
    return st;
}

ss_status ss_dist_siglip_backward(float *da, float *db, float *dlog_t,
                                  float *dbias, float dloss, const void *cache,
                                  const float *a, const float *b, float log_t,
                                  float bias, int64_t N, int64_t D,
                                  const ss_siglip_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_siglip_backward";
    SS_TRY(ss_comm_check(comm));
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale = 0.0f;
    int64_t K = 0;
    ss_status st = dclip_check(fn, da, "da", db, cache, a, b, N, D, "log_t",
                               log_t, &bias, o.cosine, DSIG_MAGIC, dloss, &K,
                               &scale);
    dclip_work w;
    SS_TRY(dclip_sig_setup(&w, fn, st, a, b, log_t, bias, N, D, &o, 1,
                           isfinite(dloss) ? dloss : 0.0f, comm));
    st = ss__dist_status(comm, fn, ss__dclip_check_ntot(fn, K, w.Ntot));
    ss__cross p1, p2;
    dclip_problems(&p1, &p2, &w, scale, bias);
    float *ga = w.wk.dan ? w.wk.dan : w.ga, *gb = w.wk.dbn ? w.wk.dbn : w.gb;
    /* mean convention: dloss * world_size / Ntot per pair */
    float f = (float)((double)dloss * comm->size / (double)w.Ntot);
    double g[2] = {0.0, 0.0}; /* d/dlog_t, d/dbias */
    if (st == SS_OK)
        st = ss__cross_sigmoid_backward(ga, NULL, g, g + 1, f, &p1);
    if (st == SS_OK)
        st = ss__cross_sigmoid_backward(gb, NULL, NULL, NULL, f, &p2);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) st = dclip_finish(&w, fn, g, 2, da, db, a, b, comm);
    if (st == SS_OK && dlog_t) *dlog_t += (float)g[0];
    if (st == SS_OK && dbias) *dbias += (float)g[1];
    dclip_free(&w);
    return st;
}
