/*
 * dist_ring_cross.c - CLIP and SigLIP over ranks, ring path (Inf-CL /
 * SigLIP paper): per-rank memory O(N_local D). Contract: selfsup_comm.h.
 *
 * Rank r holds the pairs (a_i, b_i), i local. The b blocks travel around
 * the ring (ss__dist_ring); at step s rank r holds rank q = r - s's block
 * and runs the cross engine (kernels/cross.h) on its a rows against it.
 * Only the home block (s = 0) holds the positive pairs i == j.
 *   CLIP forward: row log-sum-exps stay local (merged over the blocks);
 *     each b block carries its column log-sum-exp accumulator, which is
 *     home after W sendrecvs (the last one sends only the accumulator).
 *   CLIP backward: a block carries its column lse and a db accumulator;
 *     da stays local, db comes home after W steps.
 *   SigLIP: the loss has no column statistics: forward needs only the
 *     b blocks; backward carries the db accumulator as CLIP.
 * The scalar gradients (log_scale; log_t, bias) are all-reduced, so that
 * every rank holds the global value. A failing step (workspace) lets the
 * ring run to its end; the ranks agree on it after the ring.
 */
#include "comm_internal.h"
#include "dist_clip_internal.h"
#include "kernels/cross.h"
#include "kernels/norm.h"

#include <string.h>

#define RCLIP_MAGIC 0x31504c4347525353ull /* "SSRGCLP1" */
#define RSIG_MAGIC 0x3147495347525353ull /* "SSRGSIG1" */
#define RX_HEADER_BYTES 64

/* ---- shared workspace --------------------------------------------------- */

typedef struct {
    int64_t N, D, Ntot, Kmax, W;
    int64_t *counts;
    ss__cross_pair wk;   /* the rows the engine sees (normalised if cosine) */
    float scale, bias;
    void *blk[2];        /* ring buffers: accumulator, then payload */
    int64_t acc_bytes, bytes, rows_off; /* rows_off: bytes to the b rows */
    void *scr;           /* per-loss state, zeroed */
    float *ga;           /* backward: (N, D) private da of the engine rows */
    double gx, gb;       /* backward: this rank's scalar gradient parts */
    /* per loss */
    double *run;  /* CLIP fwd: (N) row lse; SigLIP fwd: (N) row losses */
    float *rl, *cl, *diag, *wts; /* CLIP: (N), (Kmax), (N), max(N, Kmax) */
    double *rows; /* SigLIP fwd: (N) row losses of one block */
    float w, wd;  /* backward weights */
} rx_work;

static void rx_free(rx_work *w) {
    ss__free(w->counts), ss__cross_pair_free(&w->wk);
    ss__free(w->blk[0]), ss__free(w->blk[1]), ss__free(w->scr);
}

static float *rx_rows(const rx_work *w, void *blk) {
    return (float *)(void *)((char *)blk + w->rows_off);
}

/* Local status st, agreement on (D, params, dloss) and the row counts,
 * workspace: ring buffers of acc_row + pay_row bytes per row (pay_row
 * bytes before the D floats of b), (N + Kmax) * per bytes of zeroed state
 * in w->scr. This rank's b rows are copied into its block. Frees on
 * error. */
static ss_status rx_setup(rx_work *w, const char *fn, ss_status st,
                          const float *a, const float *b, int64_t N, int64_t D,
                          int cosine, const double *vals,
                          const char *const *names, int nv, const ss_comm *c,
                          int64_t acc_row, int64_t pay_row, size_t per) {
    memset(w, 0, sizeof *w);
    w->counts = ss__malloc((size_t)c->size * sizeof(int64_t));
    if (st == SS_OK && !w->counts)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    int64_t off = 0, dummy[1];
    st = ss__dist_agree(c, fn, st, vals, names, nv, N,
                        w->counts ? w->counts : dummy, &off, &w->Ntot);
    if (st != SS_OK) {
        ss__free(w->counts);
        return st;
    }
    w->N = N, w->D = D, w->W = c->size;
    for (int q = 0; q < c->size; q++)
        if (w->counts[q] > w->Kmax) w->Kmax = w->counts[q];
    int64_t row = acc_row + pay_row + D * (int64_t)sizeof(float);
    w->acc_bytes = w->Kmax * acc_row;
    w->rows_off = w->Kmax * (acc_row + pay_row);
    w->bytes = w->Kmax * row;
    w->blk[0] = ss__calloc((size_t)w->bytes); /* the padding is sent */
    w->blk[1] = ss__calloc((size_t)w->bytes);
    w->scr = ss__calloc((size_t)(N + w->Kmax) * per);
    int ok = ss__cross_pair_make(&w->wk, a, b, N, D, cosine, 0) == SS_OK;
    if (!ok || !w->blk[0] || !w->blk[1] || !w->scr)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for the ring blocks of "
                      "%lld x %lld rows", (long long)w->Kmax, (long long)D);
    st = ss__dist_status(c, fn, st);
    if (st != SS_OK) {
        rx_free(w);
        return st;
    }
    memcpy(rx_rows(w, w->blk[0]), w->wk.b, (size_t)(N * D) * sizeof(float));
    return SS_OK;
}

/* After the ring: agree on its status, all-reduce the scalar gradient
 * parts (nv of gx, gb) and divide them by W (the weights carry W). */
static ss_status rx_finish(rx_work *w, const char *fn, ss_status st, int nv,
                           const ss_comm *c) {
    st = ss__dist_status(c, fn, st);
    double g[2] = {w->gx, w->gb};
    if (st == SS_OK && nv > 0)
        st = ss__dist_allreduce(c, fn, g, nv, SS_COMM_DOUBLE, SS_COMM_SUM);
    w->gx = g[0] / (double)w->W, w->gb = g[1] / (double)w->W;
    return st;
}

/* d += the gradient of the engine's rows g (normalisation backward when
 * cosine). */
static void rx_grad_out(float *d, const float *g, const float *xn,
                        const float *inv, const float *x, int64_t N, int64_t D,
                        int cosine) {
    if (cosine)
        ss__normalize_backward(d, g, xn, inv, x, N, D);
    else
        for (int64_t e = 0; e < N * D; e++) d[e] += g[e];
}

/* Backward epilogue: da from ga, db from the accumulator now home. */
static void rx_grads_out(const rx_work *w, float *da, float *db,
                         const float *a, const float *b, int cosine) {
    const float *dbh = w->blk[0];
    rx_grad_out(da, w->ga, w->wk.an, w->wk.inva, a, w->N, w->D, cosine);
    rx_grad_out(db, dbh, w->wk.bn, w->wk.invb, b, w->N, w->D, cosine);
}

static double log_add_exp(double x, double y) {
    if (x == -INFINITY) return y;
    if (y == -INFINITY) return x;
    double m = x > y ? x : y;
    return m + log1p(exp(-fabs(x - y)));
}

/* ---- CLIP ---------------------------------------------------------------- */

size_t ss_dist_clip_ring_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_dist_clip_ring_cache_size", N, D) != SS_OK)
        return 0;
    return RX_HEADER_BYTES + 2 * (size_t)N * sizeof(float);
}

static ss__cross rx_block(const rx_work *w, void *blk, int64_t Nq) {
    ss__cross p = {w->wk.a, rx_rows(w, blk), NULL, w->N, Nq, w->D, w->scale,
                   w->bias};
    return p;
}

/* Forward step: row lse merged locally, column lse into the block's
 * accumulator (Kmax doubles at the block's start). */
static ss_status clip_fwd_step(void *ctx, int s, int q, int64_t Nq,
                               void *blk) {
    rx_work *w = ctx;
    double *acc = blk;
    ss__cross p = rx_block(w, blk, Nq);
    (void)q;
    if (s == 0)
        for (int64_t j = 0; j < Nq; j++) acc[j] = -INFINITY;
    ss_status st = ss__cross_lse(w->rl, w->cl, s == 0 ? w->diag : NULL, &p);
    if (st != SS_OK) return st;
    for (int64_t i = 0; i < w->N; i++)
        w->run[i] = s == 0 ? w->rl[i] : log_add_exp(w->run[i], w->rl[i]);
    for (int64_t j = 0; j < Nq; j++) acc[j] = log_add_exp(acc[j], w->cl[j]);
    return SS_OK;
}

static double clip_pair(const float *rl, const float *cl, const float *sii,
                        int64_t i) {
    return 0.5 * (((double)rl[i] - sii[i]) + ((double)cl[i] - sii[i]));
}

ss_status ss_dist_clip_ring_forward(float *loss, float *losses, void *cache,
                                    const float *a, const float *b,
                                    float log_scale, int64_t N, int64_t D,
                                    const ss_clip_opts *opts,
                                    const ss_comm *comm) {
    static const char fn[] = "ss_dist_clip_ring_forward";
    SS_TRY(ss_comm_check(comm)); /* cannot agree without a comm */
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale = 1.0f;
    ss_status st = ss__dist_check_ring(comm, fn);
    if (st == SS_OK) st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK)
        st = ss__cross_check_pair(fn, a, b, N, D, "log_scale", log_scale,
                                  NULL, &scale);
    static const char *const names[] = {"D", "log_scale", "cosine"};
    double vals[3] = {(double)D, (double)log_scale, o.cosine ? 1.0 : 0.0};
    rx_work w; /* state: run (N doubles), rl, diag (N), cl (Kmax floats) */
    SS_TRY(rx_setup(&w, fn, st, a, b, N, D, o.cosine, vals, names, 3, comm,
                    sizeof(double), 0, 16));
    w.scale = scale;
    w.run = w.scr, w.rl = (float *)(w.run + N), w.diag = w.rl + N;
    w.cl = w.diag + N;
    st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], w.acc_bytes, w.bytes,
                       w.counts, clip_fwd_step, &w);
    st = rx_finish(&w, fn, st, 0, comm);
    double total = 0.0;
    if (st == SS_OK) { /* rl, cl <- this rank's row and column lse */
        const double *cacc = w.blk[0];
        for (int64_t i = 0; i < N; i++)
            w.rl[i] = (float)w.run[i], w.cl[i] = (float)cacc[i];
        for (int64_t i = 0; i < N; i++) total += clip_pair(w.rl, w.cl, w.diag, i);
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)w.Ntot);
    if (st == SS_OK) {
        ss__cross_hdr_set(cache, RCLIP_MAGIC, N, w.Ntot, D, log_scale, 0.0f,
                          o.cosine);
        float *cl = (float *)(void *)((char *)cache + RX_HEADER_BYTES);
        memcpy(cl, w.rl, (size_t)N * sizeof(float));
        memcpy(cl + N, w.cl, (size_t)N * sizeof(float));
        for (int64_t i = 0; losses && i < N; i++)
            losses[i] = (float)clip_pair(w.rl, w.cl, w.diag, i);
        *loss = (float)(total / (double)w.Ntot);
    }
    rx_free(&w);
    return st;
}

/* Backward step: G_ij = w e^{x - lr_i} + w e^{x - lc_j} - wd [i == j]
 * (home block only); da into ga, db into the block's accumulator (Kmax D
 * floats), whose column lse (Kmax floats) follow. */
static ss_status clip_bwd_step(void *ctx, int s, int q, int64_t Nq,
                               void *blk) {
    rx_work *w = ctx;
    float *db = blk, *lc = db + w->Kmax * w->D;
    ss__cross p = rx_block(w, blk, Nq);
    (void)q;
    return ss__cross_lse_backward(w->ga, db, &w->gx, w->wts, w->rl, w->wts, lc,
                                  s == 0 ? w->wd : 0.0f, &p);
}

ss_status ss_dist_clip_ring_backward(float *da, float *db, float *dlog_scale,
                                     float dloss, const void *cache,
                                     const float *a, const float *b,
                                     float log_scale, int64_t N, int64_t D,
                                     const ss_clip_opts *opts,
                                     const ss_comm *comm) {
    static const char fn[] = "ss_dist_clip_ring_backward";
    SS_TRY(ss_comm_check(comm));
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale = 1.0f;
    int64_t Nc = 0;
    ss_status st = ss__dist_check_ring(comm, fn);
    if (st == SS_OK) st = ss__check_ptr(fn, "da", da);
    if (st == SS_OK) st = ss__check_ptr(fn, "db", db);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK)
        st = ss__cross_check_pair(fn, a, b, N, D, "log_scale", log_scale,
                                  NULL, &scale);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK)
        st = ss__dclip_check_cache(fn, cache, RCLIP_MAGIC, N, D, log_scale,
                                   0.0f, o.cosine, &Nc);
    static const char *const names[] = {"D", "log_scale", "cosine", "dloss"};
    double vals[4] = {(double)D, (double)log_scale, o.cosine ? 1.0 : 0.0,
                      st == SS_OK ? (double)dloss : 0.0};
    rx_work w; /* state: ga (N, D), weights (max(N, Kmax)) */
    SS_TRY(rx_setup(&w, fn, st, a, b, N, D, o.cosine, vals, names, 4, comm,
                    D * (int64_t)sizeof(float), sizeof(float),
                    (size_t)(D + 1) * sizeof(float)));
    w.scale = scale;
    w.ga = w.scr, w.wts = w.ga + N * D;
    st = ss__dist_status(comm, fn, ss__dclip_check_ntot(fn, Nc, w.Ntot));
    if (st == SS_OK) {
        /* mean convention: the weights carry world_size */
        double f = (double)dloss * (double)w.W / (double)w.Ntot;
        int64_t nw = N > w.Kmax ? N : w.Kmax;
        for (int64_t i = 0; i < nw; i++) w.wts[i] = (float)(0.5 * f);
        w.wd = (float)f;
        w.rl = (float *)(void *)((char *)cache + RX_HEADER_BYTES);
        memcpy((float *)w.blk[0] + w.Kmax * D, w.rl + N,
               (size_t)N * sizeof(float)); /* column lse travel along */
        st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], w.acc_bytes,
                           w.bytes, w.counts, clip_bwd_step, &w);
        st = rx_finish(&w, fn, st, 1, comm);
    }
    if (st == SS_OK) {
        rx_grads_out(&w, da, db, a, b, o.cosine);
        if (dlog_scale) *dlog_scale += (float)w.gx;
    }
    rx_free(&w);
    return st;
}

/* ---- SigLIP -------------------------------------------------------------- */

size_t ss_dist_siglip_ring_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_dist_siglip_ring_cache_size", N, D) != SS_OK)
        return 0;
    return RX_HEADER_BYTES;
}

/* Forward step: row losses against the block; the positives only at home. */
static ss_status sig_fwd_step(void *ctx, int s, int q, int64_t Nq, void *blk) {
    rx_work *w = ctx;
    ss__cross p = rx_block(w, blk, Nq);
    (void)q;
    SS_TRY(ss__cross_sigmoid_ex(w->rows, &p, s == 0));
    for (int64_t i = 0; i < w->N; i++) w->run[i] += w->rows[i];
    return SS_OK;
}

static ss_status sig_bwd_step(void *ctx, int s, int q, int64_t Nq, void *blk) {
    rx_work *w = ctx;
    ss__cross p = rx_block(w, blk, Nq);
    (void)q;
    return ss__cross_sigmoid_backward_ex(w->ga, blk, &w->gx, &w->gb, w->w, &p,
                                         s == 0);
}

/* The local checks of both SigLIP calls but the outputs. */
static ss_status sig_check(const char *fn, const float *a, const float *b,
                           float log_t, float bias, int64_t N, int64_t D,
                           const void *cache, const ss_comm *c, float *scale) {
    SS_TRY(ss__dist_check_ring(c, fn));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    return ss__cross_check_pair(fn, a, b, N, D, "log_t", log_t, &bias, scale);
}

ss_status ss_dist_siglip_ring_forward(float *loss, float *losses, void *cache,
                                      const float *a, const float *b,
                                      float log_t, float bias, int64_t N,
                                      int64_t D, const ss_siglip_opts *opts,
                                      const ss_comm *comm) {
    static const char fn[] = "ss_dist_siglip_ring_forward";
    SS_TRY(ss_comm_check(comm));
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale = 1.0f;
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK)
        st = sig_check(fn, a, b, log_t, bias, N, D, cache, comm, &scale);
    static const char *const names[] = {"D", "log_t", "bias", "cosine"};
    double vals[4] = {(double)D, (double)log_t, (double)bias,
                      o.cosine ? 1.0 : 0.0};
    rx_work w; /* state: run, rows (N doubles) */
    SS_TRY(rx_setup(&w, fn, st, a, b, N, D, o.cosine, vals, names, 4, comm, 0,
                    0, 2 * sizeof(double)));
    w.scale = scale, w.bias = bias;
    w.run = w.scr, w.rows = w.run + N;
    st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], 0, w.bytes, w.counts,
                       sig_fwd_step, &w);
    st = rx_finish(&w, fn, st, 0, comm);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++) total += w.run[i];
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)w.Ntot);
    if (st == SS_OK) {
        ss__cross_hdr_set(cache, RSIG_MAGIC, N, w.Ntot, D, log_t, bias,
                          o.cosine);
        for (int64_t i = 0; losses && i < N; i++) losses[i] = (float)w.run[i];
        *loss = (float)(total / (double)w.Ntot);
    }
    rx_free(&w);
    return st;
}

ss_status ss_dist_siglip_ring_backward(float *da, float *db, float *dlog_t,
                                       float *dbias, float dloss,
                                       const void *cache, const float *a,
                                       const float *b, float log_t, float bias,
                                       int64_t N, int64_t D,
                                       const ss_siglip_opts *opts,
                                       const ss_comm *comm) {
    static const char fn[] = "ss_dist_siglip_ring_backward";
    SS_TRY(ss_comm_check(comm));
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale = 1.0f;
    int64_t Nc = 0;
    ss_status st = ss__check_ptr(fn, "da", da);
    if (st == SS_OK) st = ss__check_ptr(fn, "db", db);
    if (st == SS_OK)
        st = sig_check(fn, a, b, log_t, bias, N, D, cache, comm, &scale);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK)
        st = ss__dclip_check_cache(fn, cache, RSIG_MAGIC, N, D, log_t, bias,
                                   o.cosine, &Nc);
    static const char *const names[] = {"D", "log_t", "bias", "cosine",
                                        "dloss"};
    double vals[5] = {(double)D, (double)log_t, (double)bias,
                      o.cosine ? 1.0 : 0.0, st == SS_OK ? (double)dloss : 0.0};
    rx_work w; /* state: ga (N, D) */
    SS_TRY(rx_setup(&w, fn, st, a, b, N, D, o.cosine, vals, names, 5, comm,
                    D * (int64_t)sizeof(float), 0,
                    (size_t)D * sizeof(float)));
    w.scale = scale, w.bias = bias, w.ga = w.scr;
    st = ss__dist_status(comm, fn, ss__dclip_check_ntot(fn, Nc, w.Ntot));
    if (st == SS_OK) {
        w.w = (float)((double)dloss * (double)w.W / (double)w.Ntot);
        st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], w.acc_bytes,
                           w.bytes, w.counts, sig_bwd_step, &w);
        st = rx_finish(&w, fn, st, 2, comm);
    }
    if (st == SS_OK) {
        rx_grads_out(&w, da, db, a, b, o.cosine);
        if (dlog_t) *dlog_t += (float)w.gx;
        if (dbias) *dbias += (float)w.gb;
    }
    rx_free(&w);
    return st;
}
