/* dist_distill.c - distributed global-count losses (MLM, fused CE,
 * reconstruction, MAE) and the distillation / clustering losses (DINO and
 * its centre, iBOT, SwAV, MSN / PMSN) against the single-process losses on
 * the concatenated batch, and error agreement. Helpers: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared checks --------------------------------------------------------- */

/* The local rows (after - pre) / world_size against the global gradient's
 * rows [off, off + rows) of `per` values each. */
static void check_rows(const char *what, const float *after, const float *pre,
                       const float *global, int64_t off, int64_t rows,
                       int64_t per) {
    int W = ss_dt_comm->size;
    int64_t n = rows * per;
    float *d = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    double *ref = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        d[i] = (after[i] - pre[i]) / (float)W;
        ref[i] = global[off * per + i];
    }
    ss_dt_close(what, d, ref, n);
    free(d), free(ref);
}

/* A parameter gradient: the average over ranks of (after - pre) equals the
 * global gradient (what DDP does). */
static void check_param(const char *what, const float *after, const float *pre,
                        const float *global, int64_t n) {
    const ss_comm *c = ss_dt_comm;
    float *d = malloc(sizeof(float) * (size_t)n);
    double *ref = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = after[i] - pre[i], ref[i] = global[i];
    if (c->allreduce(c->ctx, d, n, SS_COMM_FLOAT, SS_COMM_SUM) != 0)
        ss_dt_fail(what, "all-reduce in the test failed");
    for (int64_t i = 0; i < n; i++) d[i] /= (float)c->size;
    ss_dt_close(what, d, ref, n);
    free(d), free(ref);
}

static void check_loss(const char *what, float got, float want) {
    double ref = want;
    if (want == 0.0f) { /* exact: 0 means nothing scored */
        if (got != 0.0f) ss_dt_fail(what, "loss should be exactly 0");
        return;
    }
    ss_dt_close(what, &got, &ref, 1);
}

/* The local losses (n) against the global per-row outputs from off. */
static void check_local(const char *what, const float *got,
                        const float *global, int64_t off, int64_t n) {
    double *ref = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) ref[i] = global[off + i];
    ss_dt_close(what, got, ref, n);
    free(ref);
}

static float *prefilled(int64_t n, ss_rng *r) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ss_dt_fill(x, n, r, 1.0);
    return x;
}

static float *copy_of(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

/* Who has its targets / masks emptied: 0 nobody, 1 the last rank, 2 all. */
static int emptied(int empty, int rank, int size) {
    return empty == 2 || (empty == 1 && rank == size - 1);
}

/* Targets of the global batch: ~30% ignored; rows of emptied ranks all
 * ignored. */
static void make_targets(int64_t *y, int64_t Tt, int64_t V, int variant,
                         int64_t base, int empty, ss_rng *r) {
    int W = ss_dt_comm->size;
    for (int64_t t = 0; t < Tt; t++)
        y[t] = ss_rng_uniform(r) < 0.3 ? SS_IGNORE_INDEX
                                       : (int64_t)(ss_rng_uniform(r) * V) % V;
    for (int q = 0; q < W; q++)
        if (emptied(empty, q, W)) {
            int64_t o = ss_dt_sum_before(variant, q, W, base);
            for (int64_t t = 0; t < ss_dt_local_n(variant, q, W, base); t++)
                y[o + t] = SS_IGNORE_INDEX;
        }
}

/* ---- MLM and fused CE ------------------------------------------------------- */

/* ss_dist_fused_ce_forward_backward equals the pair (d: the pair's result
 * from the pre-filled pre). */
static void fused_fb(const char *what, const float *d, const float *pre,
                     const float *x, const float *wt, const float *bias,
                     const int64_t *y, int64_t T, int64_t H, int64_t V,
                     float eps, const float *cw, float dl, float loss) {
    int64_t n = T * H + V * H + V;
    float *d2 = copy_of(pre, n), l2 = 0.0f;
    double *ref = malloc(sizeof(double) * (size_t)n), lref = loss;
    for (int64_t i = 0; i < n; i++) ref[i] = d[i];
    ss_fused_ce_opts o = ss_fused_ce_defaults();
    o.label_smoothing = eps, o.class_weights = cw;
    if (ss_dist_fused_ce_forward_backward(&l2, NULL, d2, d2 + T * H,
                                          d2 + T * H + V * H, dl, x, wt, bias,
                                          y, T, H, V, &o, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        ss_dt_close(what, &l2, &lref, 1);
        ss_dt_close(what, d2, ref, n);
    }
    free(d2), free(ref);
}

static void ce_case(int fused, int variant, int64_t base, int64_t V, int64_t H,
                    float eps, int weighted, int empty, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t T = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Tt = ss_dt_sum_before(variant, W, W, base), X = fused ? H : V;
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *xg = prefilled(Tt * X, &r), *wt = prefilled(V * H, &r);
    float *bias = prefilled(V, &r), cw[64];
    int64_t *yg = malloc(sizeof(int64_t) * (size_t)Tt);
    make_targets(yg, Tt, V, variant, base, empty, &r);
    for (int64_t c = 0; c < V; c++) cw[c] = (float)(0.5 + ss_rng_uniform(&r));
    if (weighted) cw[1] = 0.0f;
    float *dxg = calloc((size_t)(Tt * X), sizeof(float));
    float *dwg = calloc((size_t)(V * H), sizeof(float));
    float *dbg = calloc((size_t)V, sizeof(float));
    float *lg = malloc(sizeof(float) * (size_t)Tt), *ll = malloc(sizeof(float) * (size_t)T);
    float *pre = prefilled(T * X + V * H + V, &r), *d = copy_of(pre, T * X + V * H + V);
    size_t cgs = fused ? ss_fused_ce_cache_size(Tt, H, V) : ss_mlm_cache_size(Tt, V);
    size_t cls = fused ? ss_dist_fused_ce_cache_size(T, H, V) : ss_dist_mlm_cache_size(T, V);
    void *cg = malloc(cgs), *cl = malloc(cls);
    const float *x = xg + off * X;
    const int64_t *y = yg + off;
    float lossg = 0, lossl = 0, dl = 0.8f;
    char what[160];
    snprintf(what, sizeof what, "%s variant %d T %lld eps %g weighted %d empty %d",
             fused ? "fused_ce" : "mlm", variant, (long long)T, (double)eps,
             weighted, empty);
    ss_status s1, s2, s3, s4;
    if (fused) {
        ss_fused_ce_opts o = ss_fused_ce_defaults();
        o.label_smoothing = eps, o.class_weights = weighted ? cw : NULL;
        o.block_bytes = 4 * (size_t)V * 3; /* several row blocks */
        s1 = ss_fused_ce_forward(&lossg, lg, cg, xg, wt, bias, yg, Tt, H, V, &o);
        s2 = ss_fused_ce_backward(dxg, dwg, dbg, dl, cg, xg, wt, bias, yg, Tt,
                                  H, V, &o);
        s3 = ss_dist_fused_ce_forward(&lossl, ll, cl, x, wt, bias, y, T, H, V,
                                      &o, ss_dt_comm);
        s4 = ss_dist_fused_ce_backward(d, d + T * X, d + T * X + V * H, dl, cl,
                                       x, wt, bias, y, T, H, V, &o, ss_dt_comm);
    } else {
        ss_mlm_opts o = ss_mlm_defaults();
        o.label_smoothing = eps, o.class_weights = weighted ? cw : NULL;
        s1 = ss_mlm_forward(&lossg, lg, cg, xg, yg, Tt, V, &o);
        s2 = ss_mlm_backward(dxg, dl, cg, xg, yg, Tt, V, &o);
        s3 = ss_dist_mlm_forward(&lossl, ll, cl, x, y, T, V, &o, ss_dt_comm);
        s4 = ss_dist_mlm_backward(d, dl, cl, x, y, T, V, &o, ss_dt_comm);
    }
    if (s1 || s2 || s3 || s4) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, off, T);
        check_rows(what, d, pre, dxg, off, T, X);
        if (fused) {
            check_param(what, d + T * X, pre + T * X, dwg, V * H);
            check_param(what, d + T * X + V * H, pre + T * X + V * H, dbg, V);
            fused_fb(what, d, pre, x, wt, bias, y, T, H, V, eps,
                     weighted ? cw : NULL, dl, lossl);
        }
    }
    free(xg), free(wt), free(bias), free(yg), free(dxg), free(dwg), free(dbg);
    free(lg), free(ll), free(pre), free(d), free(cg), free(cl);
}

/* ---- reconstruction ---------------------------------------------------------- */

/* mask_mode: 0 NULL, 1 random, 2 random but none on the last rank, 3 none
 * anywhere. */
static uint8_t *make_mask(int mode, int64_t total, int variant, int64_t base,
                          int64_t per, ss_rng *r) {
    int W = ss_dt_comm->size;
    if (mode == 0) return NULL;
    uint8_t *m = malloc((size_t)(total > 0 ? total : 1));
    for (int64_t i = 0; i < total; i++) m[i] = mode < 3 && ss_rng_uniform(r) < 0.6;
    if (mode == 2) {
        int64_t o = ss_dt_sum_before(variant, W - 1, W, base) * per;
        memset(m + o, 0, (size_t)(total - o));
    }
    return m;
}

static void recon_case(int variant, ss_recon_kind kind, ss_reduction red,
                       int mask_mode, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t base = 9, n = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t nt = ss_dt_sum_before(variant, W, W, base);
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *pg = prefilled(nt, &r), *tg = prefilled(nt, &r), *dlg = prefilled(nt, &r);
    if (kind == SS_RECON_BCE_LOGITS)
        for (int64_t i = 0; i < nt; i++) tg[i] = (float)ss_rng_uniform(&r);
    uint8_t *mg = make_mask(mask_mode, nt, variant, base, 1, &r);
    float *dpg = calloc((size_t)nt, sizeof(float)), *dtg = calloc((size_t)nt, sizeof(float));
    float *lg = malloc(sizeof(float) * (size_t)nt), *ll = malloc(sizeof(float) * (size_t)n);
    float *pre = prefilled(2 * n, &r), *d = copy_of(pre, 2 * n);
    ss_recon_opts o = ss_recon_defaults(kind);
    o.reduction = red, o.beta = 0.7f;
    float lossg = 0, lossl = 0, dl = 1.3f;
    /* the caller's global loss for NONE: sum_i dlosses_i l_i */
    const uint8_t *m = mg ? mg + off : NULL;
    char what[160];
    snprintf(what, sizeof what, "recon variant %d kind %d red %d mask %d",
             variant, (int)kind, (int)red, mask_mode);
    if (ss_recon_forward(&lossg, lg, pg, tg, mg, nt, &o) ||
        ss_recon_backward(dpg, dtg, dl, dlg, pg, tg, mg, nt, &o) ||
        ss_dist_recon_forward(&lossl, ll, pg + off, tg + off, m, n, &o, ss_dt_comm) ||
        ss_dist_recon_backward(d, d + n, dl, dlg + off, pg + off, tg + off, m,
                               n, &o, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, off, n);
        check_rows(what, d, pre, dpg, off, n, 1);
        check_rows(what, d + n, pre + n, dtg, off, n, 1);
    }
    free(pg), free(tg), free(dlg), free(mg), free(dpg), free(dtg), free(lg);
    free(ll), free(pre), free(d);
}

/* ---- MAE ---------------------------------------------------------------------- */

static void mae_case(int variant, int norm_pix, int mask_mode, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t C = 2, Hi = 4, Wi = 6, p = 2, L = 6, P = 8, base = 2;
    int64_t B = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Bt = ss_dt_sum_before(variant, W, W, base), img = C * Hi * Wi;
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *ig = prefilled(Bt * img, &r), *pg = prefilled(Bt * L * P, &r);
    uint8_t *mg = make_mask(mask_mode, Bt * L, variant, base, L, &r);
    float *dg = calloc((size_t)(Bt * L * P), sizeof(float));
    float *lg = malloc(sizeof(float) * (size_t)(Bt * L)), *ll = malloc(sizeof(float) * (size_t)(B * L));
    float *pre = prefilled(B * L * P, &r), *d = copy_of(pre, B * L * P);
    ss_mae_opts o = ss_mae_defaults();
    o.norm_pix = norm_pix;
    float lossg = 0, lossl = 0, dl = 0.9f;
    char what[160];
    snprintf(what, sizeof what, "mae variant %d norm_pix %d mask %d", variant,
             norm_pix, mask_mode);
    if (ss_mae_forward(&lossg, lg, pg, ig, mg, Bt, C, Hi, Wi, p, &o) ||
        ss_mae_backward(dg, dl, pg, ig, mg, Bt, C, Hi, Wi, p, &o) ||
        ss_dist_mae_forward(&lossl, ll, pg + off * L * P, ig + off * img,
                            mg + off * L, B, C, Hi, Wi, p, &o, ss_dt_comm) ||
        ss_dist_mae_backward(d, dl, pg + off * L * P, ig + off * img,
                             mg + off * L, B, C, Hi, Wi, p, &o, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, off * L, B * L);
        check_rows(what, d, pre, dg, off, B, L * P);
    }
    free(ig), free(pg), free(mg), free(dg), free(lg), free(ll), free(pre), free(d);
}

/* ---- errors of the global-count losses ------------------------------------- */

static void predictive_errors(void) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank, bad = W - 1;
    const ss_comm *c = ss_dt_comm;
    int64_t T = 4, V = 5;
    float x[20], dx[20] = {0}, loss = 0, ll[4];
    int64_t y[5] = {0, 1, SS_IGNORE_INDEX, 4, 2};
    char cache[1024];
    ss_rng r;
    ss_rng_seed(&r, 5 + (uint64_t)R);
    ss_dt_fill(x, 20, &r, 1.0);
    ss_mlm_opts o = ss_mlm_defaults();
    if (R == bad) x[3] = NAN;
    ss_dt_expect("mlm NaN on one rank",
           ss_dist_mlm_forward(&loss, ll, cache, x, y, T, V, &o, c),
           SS_ERR_NONFINITE);
    x[3] = 0.25f;
    if (R == bad) y[1] = 9;
    ss_dt_expect("mlm bad label on one rank",
           ss_dist_mlm_forward(&loss, ll, cache, x, y, T, V, &o, c), SS_ERR_LABEL);
    y[1] = 1;
    if (W > 1) {
        ss_mlm_opts o2 = o;
        if (R == bad) o2.label_smoothing = 0.1f;
        ss_dt_expect("mlm smoothing differs",
               ss_dist_mlm_forward(&loss, ll, cache, x, y, T, V, &o2, c),
               SS_ERR_PARAM);
    }
    if (ss_dist_mlm_forward(&loss, ll, cache, x, y, T, V, &o, c) != SS_OK) {
        ss_dt_fail("mlm forward before bad cache", ss_last_error());
        return;
    }
    char saved[8];
    memcpy(saved, cache, 8);
    if (R == bad) memset(cache, 0, 8);
    ss_dt_expect("mlm bad cache on one rank",
           ss_dist_mlm_backward(dx, 1.0f, cache, x, y, T, V, &o, c), SS_ERR_PARAM);
    if (!ss_dt_all_zero(dx, 20))
        ss_dt_fail("mlm failed backward", "wrote into dlogits");
    memcpy(cache, saved, 8);
    if (W > 1)
        ss_dt_expect("mlm dloss differs",
               ss_dist_mlm_backward(dx, R == bad ? 2.0f : 1.0f, cache, x, y, T,
                                    V, &o, c), SS_ERR_PARAM);
    if (!ss_dt_all_zero(dx, 20))
        ss_dt_fail("mlm failed backward", "wrote into dlogits");
    if (ss_dist_mlm_backward(dx, 1.0f, cache, x, y, T, V, &o, c) != SS_OK)
        ss_dt_fail("mlm backward after errors", ss_last_error());
    /* fused CE: H differing; recon: kind differing; MAE: Inf in pred */
    float w[25], pred[96], imgs[48], dp[96] = {0};
    uint8_t mask[24];
    for (int i = 0; i < 24; i++) mask[i] = (uint8_t)(i % 3 == 0);
    ss_dt_fill(w, 25, &r, 1.0), ss_dt_fill(pred, 96, &r, 1.0), ss_dt_fill(imgs, 48, &r, 1.0);
    if (W > 1)
        ss_dt_expect("fused_ce H differs",
               ss_dist_fused_ce_forward(&loss, NULL, cache, x, w, NULL, y,
                                        R == bad ? 5 : 4, R == bad ? 4 : 5, 5,
                                        NULL, c), SS_ERR_PARAM);
    ss_recon_opts ro = ss_recon_defaults(R == bad ? SS_RECON_L1 : SS_RECON_MSE);
    if (W > 1)
        ss_dt_expect("recon kind differs",
               ss_dist_recon_forward(&loss, NULL, x, w, NULL, 20, &ro, c),
               SS_ERR_PARAM);
    if (R == bad) pred[40] = INFINITY;
    ss_dt_expect("mae Inf on one rank",
           ss_dist_mae_backward(dp, 1.0f, pred, imgs, mask, 2, 2, 4, 3, 1, NULL, c),
           SS_ERR_NONFINITE);
    if (!ss_dt_all_zero(dp, 96))
        ss_dt_fail("mae failed backward", "wrote into dpred");
    pred[40] = 0.0f;
    ss_dt_expect("mae p = 0 on one rank",
           ss_dist_mae_forward(&loss, NULL, pred, imgs, mask, 2, 2, 4, 3,
                               R == bad ? 0 : 1, NULL, c), SS_ERR_SIZE);
    if (ss_dist_mae_forward(&loss, NULL, pred, imgs, mask, 2, 2, 4, 3, 1, NULL, c))
        ss_dt_fail("mae after errors", ss_last_error());
}

SS_DIST_GROUP(distill_predictive) {
    static const ss_recon_kind kinds[5] = {SS_RECON_MSE, SS_RECON_L1,
                                           SS_RECON_SMOOTH_L1, SS_RECON_HUBER,
                                           SS_RECON_BCE_LOGITS};
    for (int variant = 0; variant < 3; variant++) {
        uint64_t s = 100 + 10 * (uint64_t)variant;
        ce_case(0, variant, 6, 7, 0, 0.0f, 0, 0, s + 1);
        ce_case(0, variant, 6, 7, 0, 0.1f, 1, 0, s + 2);
        ce_case(0, variant, 5, 7, 0, 0.0f, 1, 1, s + 3); /* last rank empty */
        ce_case(1, variant, 6, 9, 5, 0.0f, 0, 0, s + 4);
        ce_case(1, variant, 6, 9, 5, 0.2f, 1, 1, s + 5);
        for (int k = 0; k < 5; k++)
            recon_case(variant, kinds[k], (ss_reduction)(k % 3), k % 4, s + 6 + k);
        recon_case(variant, SS_RECON_MSE, SS_REDUCE_MEAN, 2, s + 7);
        mae_case(variant, 1, 1, s + 8);
        mae_case(variant, 0, 2, s + 9); /* no masked patch on the last rank */
    }
    ce_case(0, 0, 4, 5, 0, 0.1f, 0, 2, 201); /* every target ignored */
    ce_case(1, 0, 4, 5, 3, 0.1f, 1, 2, 202);
    recon_case(0, SS_RECON_L1, SS_REDUCE_MEAN, 3, 203); /* nothing counted */
    mae_case(1, 1, 3, 204);                             /* nothing masked */
    predictive_errors();
}

/* ---- centre, DINO, iBOT --------------------------------------------------------- */

/* A centre of dimension K with deterministic non-zero values. */
static ss_center *make_center(int64_t K) {
    ss_center *c = NULL;
    float v[64];
    for (int64_t k = 0; k < K; k++) v[k] = (float)(0.1 * (double)k - 0.2);
    if (ss_center_create(&c, K) || ss_center_set(c, v)) return NULL;
    return c;
}

static void center_case(int variant, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t K = 6, base = 4, N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *xg = prefilled(Nt * K, &r);
    ss_center *cg = make_center(K), *cl = make_center(K);
    char what[96];
    snprintf(what, sizeof what, "center variant %d", variant);
    if (!cg || !cl || ss_center_accumulate(cg, xg, Nt) ||
        ss_center_update(cg, 0.7f) || ss_center_accumulate(cl, xg + off * K, N) ||
        ss_dist_center_update(cl, 0.7f, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        double ref[64];
        for (int64_t k = 0; k < K; k++) ref[k] = ss_center_data(cg)[k];
        ss_dt_close(what, ss_center_data(cl), ref, K);
        if (ss_center_pending(cl) != 0) ss_dt_fail(what, "pending not cleared");
    }
    ss_center_free(cg), ss_center_free(cl), free(xg);
}

static void dino_case(int variant, int64_t G, int64_t V, int64_t K,
                      uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t base = 3, N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *tg = prefilled(G * Nt * K, &r), *sg = prefilled(V * Nt * K, &r);
    float *t = malloc(sizeof(float) * (size_t)(G * N * K));
    float *s = malloc(sizeof(float) * (size_t)(V * N * K));
    for (int64_t g = 0; g < G; g++)
        memcpy(t + g * N * K, tg + (g * Nt + off) * K, sizeof(float) * (size_t)(N * K));
    for (int64_t v = 0; v < V; v++)
        memcpy(s + v * N * K, sg + (v * Nt + off) * K, sizeof(float) * (size_t)(N * K));
    float *dg = calloc((size_t)(V * Nt * K), sizeof(float));
    float *pre = prefilled(V * N * K, &r), *d = copy_of(pre, V * N * K);
    float *lg = malloc(sizeof(float) * (size_t)Nt), *ll = malloc(sizeof(float) * (size_t)N);
    void *cg = malloc(ss_dino_cache_size(G, V, Nt, K));
    void *cl = malloc(ss_dist_dino_cache_size(G, V, N, K));
    ss_center *c = make_center(K);
    ss_dino_opts o = ss_dino_defaults();
    float lossg = 0, lossl = 0, dl = 0.6f, tt = 0.07f;
    char what[96];
    snprintf(what, sizeof what, "dino variant %d G %lld V %lld", variant,
             (long long)G, (long long)V);
    if (ss_dino_forward(&lossg, lg, cg, tg, sg, c, tt, G, V, Nt, K, &o) ||
        ss_dino_backward(dg, dl, cg, tg, sg, c, tt, G, V, Nt, K, &o) ||
        ss_dist_dino_forward(&lossl, ll, cl, t, s, c, tt, G, V, N, K, &o, ss_dt_comm) ||
        ss_dist_dino_backward(d, dl, cl, t, s, c, tt, G, V, N, K, &o, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, off, N);
        for (int64_t v = 0; v < V; v++)
            check_rows(what, d + v * N * K, pre + v * N * K, dg + v * Nt * K, off,
                       N, K);
    }
    free(tg), free(sg), free(t), free(s), free(dg), free(pre), free(d), free(lg);
    free(ll), free(cg), free(cl), ss_center_free(c);
}

/* empty: 1 = no masked token on the last rank. */
static void ibot_case(int variant, int empty, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t T = 5, K = 6, base = 2, B = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Bt = ss_dt_sum_before(variant, W, W, base);
    ss_rng r;
    ss_rng_seed(&r, seed);
    uint8_t *mg = make_mask(empty ? 2 : 1, Bt * T, variant, base, T, &r);
    int64_t Mt = 0, Mo = 0, M = 0;
    for (int64_t i = 0; i < Bt * T; i++) {
        if (i < off * T) Mo += mg[i];
        else if (i < (off + B) * T) M += mg[i];
        Mt += mg[i];
    }
    float *tg = prefilled(Mt * K, &r), *sg = prefilled(Mt * K, &r);
    float *dg = calloc((size_t)(Mt * K + 1), sizeof(float));
    float *pre = prefilled(M * K, &r), *d = copy_of(pre, M * K);
    float *lg = malloc(sizeof(float) * (size_t)(Mt + 1));
    float *ll = malloc(sizeof(float) * (size_t)(M + 1));
    void *cg = malloc(ss_ibot_cache_size(Mt, K));
    void *cl = malloc(ss_dist_ibot_cache_size(M, K));
    ss_center *c = make_center(K);
    ss_ibot_opts o = ss_ibot_defaults();
    float lossg = 0, lossl = 0, dl = 1.1f;
    char what[96];
    snprintf(what, sizeof what, "ibot variant %d empty %d M %lld", variant,
             empty, (long long)M);
    if (ss_ibot_forward(&lossg, lg, cg, tg, sg, mg, c, Bt, T, Mt, K, &o) ||
        ss_ibot_backward(dg, dl, cg, tg, sg, mg, c, Bt, T, Mt, K, &o) ||
        ss_dist_ibot_forward(&lossl, ll, cl, tg + Mo * K, sg + Mo * K,
                             mg + off * T, c, B, T, M, K, &o, ss_dt_comm) ||
        ss_dist_ibot_backward(d, dl, cl, tg + Mo * K, sg + Mo * K, mg + off * T,
                              c, B, T, M, K, &o, ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, Mo, M);
        check_rows(what, d, pre, dg, Mo, M, K);
    }
    free(mg), free(tg), free(sg), free(dg), free(pre), free(d), free(lg);
    free(ll), free(cg), free(cl), ss_center_free(c);
}

/* ---- SwAV and MSN --------------------------------------------------------------- */

/* Rows [off, off + n) of every block of a (blocks, tot, K) array. */
static float *slice(const float *g, int64_t blocks, int64_t tot, int64_t off,
                    int64_t n, int64_t K) {
    float *x = malloc(sizeof(float) * (size_t)(blocks * n * K + 1));
    for (int64_t b = 0; b < blocks; b++)
        memcpy(x + b * n * K, g + (b * tot + off) * K, sizeof(float) * (size_t)(n * K));
    return x;
}

static void check_blocks(const char *what, const float *d, const float *pre,
                         const float *g, int64_t blocks, int64_t tot,
                         int64_t off, int64_t n, int64_t K) {
    for (int64_t b = 0; b < blocks; b++)
        check_rows(what, d + b * n * K, pre + b * n * K, g + b * tot * K, off, n, K);
}

/* queue: 0 none, 1 Q_r = 1 + r rows per rank (uneven). */
static void swav_case(int variant, int64_t H, int64_t L, int queue,
                      int64_t iters, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t K = 5, base = 4, N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    int64_t Q = queue ? 1 + R : 0, Qo = queue ? R + (int64_t)R * (R - 1) / 2 : 0;
    int64_t Qt = queue ? W + (int64_t)W * (W - 1) / 2 : 0;
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *hg = prefilled(H * Nt * K, &r), *lwg = prefilled(L * Nt * K, &r);
    float *qg = prefilled(H * Qt * K, &r);
    float *h = slice(hg, H, Nt, off, N, K), *lw = slice(lwg, L, Nt, off, N, K);
    float *q = slice(qg, H, Qt, Qo, Q, K);
    float *dhg = calloc((size_t)(H * Nt * K), sizeof(float));
    float *dlg = calloc((size_t)(L * Nt * K + 1), sizeof(float));
    int64_t nd = (H + L) * N * K;
    float *pre = prefilled(nd, &r), *d = copy_of(pre, nd);
    float *lg = malloc(sizeof(float) * (size_t)Nt), *ll = malloc(sizeof(float) * (size_t)N);
    void *cg = malloc(ss_swav_cache_size(H, L, Nt, Qt, K));
    void *cl = malloc(ss_dist_swav_cache_size(H, L, N, Q, K));
    ss_swav_opts o = ss_swav_defaults();
    o.sinkhorn_iterations = iters;
    /* without iterations the codes are exp(A - LSE_all): keep them away
     * from float underflow (the pre-filled gradients would hide them) */
    if (iters == 0) o.sinkhorn_epsilon = 1.0f;
    float lossg = 0, lossl = 0, dl = 0.9f;
    const float *lo = L ? lwg : NULL, *qu = Qt ? qg : NULL;
    char what[96];
    snprintf(what, sizeof what, "swav variant %d H %lld L %lld queue %d it %lld",
             variant, (long long)H, (long long)L, queue, (long long)iters);
    if (ss_swav_forward(&lossg, lg, cg, hg, lo, qu, H, L, Nt, Qt, K, &o) ||
        ss_swav_backward(dhg, L ? dlg : NULL, dl, cg, hg, lo, qu, H, L, Nt, Qt, K, &o) ||
        ss_dist_swav_forward(&lossl, ll, cl, h, L ? lw : NULL, Q ? q : NULL, H,
                             L, N, Q, K, &o, ss_dt_comm) ||
        ss_dist_swav_backward(d, L ? d + H * N * K : NULL, dl, cl, h,
                              L ? lw : NULL, Q ? q : NULL, H, L, N, Q, K, &o,
                              ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        check_local(what, ll, lg, off, N);
        check_blocks(what, d, pre, dhg, H, Nt, off, N, K);
        check_blocks(what, d + H * N * K, pre + H * N * K, dlg, L, Nt, off, N, K);
    }
    free(hg), free(lwg), free(qg), free(h), free(lw), free(q), free(dhg);
    free(dlg), free(pre), free(d), free(lg), free(ll), free(cg), free(cl);
}

static void msn_case(int variant, int pmsn, int64_t iters, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t V = 2, K = 5, D = 4, base = 3, N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    ss_rng r;
    ss_rng_seed(&r, seed);
    float *ag = prefilled(V * Nt * D, &r), *tg = prefilled(Nt * D, &r);
    float *pr = prefilled(K * D, &r);
    float *a = slice(ag, V, Nt, off, N, D), *t = tg + off * D;
    float *dag = calloc((size_t)(V * Nt * D), sizeof(float));
    float *dpg = calloc((size_t)(K * D), sizeof(float));
    int64_t nd = V * N * D + K * D;
    float *pre = prefilled(nd, &r), *d = copy_of(pre, nd);
    float *lg = malloc(sizeof(float) * (size_t)(V * Nt));
    float *ll = malloc(sizeof(float) * (size_t)(V * N));
    void *cg = malloc(ss_msn_cache_size(V, Nt, K, D));
    void *cl = malloc(ss_dist_msn_cache_size(V, N, K, D));
    ss_msn_opts o = pmsn ? ss_pmsn_defaults() : ss_msn_defaults();
    o.sinkhorn_iterations = iters, o.regularization_weight = 0.7f;
    float lossg = 0, lossl = 0, dl = 1.2f;
    char what[96];
    snprintf(what, sizeof what, "msn variant %d pmsn %d it %lld", variant, pmsn,
             (long long)iters);
    if (ss_msn_forward(&lossg, lg, cg, ag, tg, pr, V, Nt, K, D, &o) ||
        ss_msn_backward(dag, dpg, dl, cg, ag, tg, pr, V, Nt, K, D, &o) ||
        ss_dist_msn_forward(&lossl, ll, cl, a, t, pr, V, N, K, D, &o, ss_dt_comm) ||
        ss_dist_msn_backward(d, d + V * N * D, dl, cl, a, t, pr, V, N, K, D, &o,
                             ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
    } else {
        check_loss(what, lossl, lossg);
        for (int64_t v = 0; v < V; v++)
            check_local(what, ll + v * N, lg + v * Nt, off, N);
        check_blocks(what, d, pre, dag, V, Nt, off, N, D);
        check_param(what, d + V * N * D, pre + V * N * D, dpg, K * D);
    }
    free(ag), free(tg), free(pr), free(a), free(dag), free(dpg), free(pre);
    free(d), free(lg), free(ll), free(cg), free(cl);
}

/* ---- errors of the distillation losses ------------------------------------------ */

static void distill_errors(void) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank, bad = W - 1;
    const ss_comm *c = ss_dt_comm;
    int64_t K = 4, N = 3;
    float t[2 * 3 * 4], s[2 * 3 * 4], ds[2 * 3 * 4] = {0}, loss = 0;
    char cache[4096];
    ss_rng r;
    ss_rng_seed(&r, 77 + (uint64_t)R);
    ss_dt_fill(t, 24, &r, 1.0), ss_dt_fill(s, 24, &r, 1.0);
    ss_center *cen = make_center(K);
    if (!cen) {
        ss_dt_fail("distill errors", "centre");
        return;
    }
    float odd[4] = {1, 2, 3, 4};
    if (W > 1) {
        if (R == bad) ss_center_set(cen, odd);
        ss_dt_expect("dino centre differs",
               ss_dist_dino_forward(&loss, NULL, cache, t, s, cen, 0.04f, 2, 2,
                                    N, K, NULL, c), SS_ERR_PARAM);
        ss_dt_expect("center update: centre differs",
               ss_dist_center_update(cen, 0.9f, c), SS_ERR_PARAM);
        ss_center_free(cen);
        cen = make_center(K);
    }
    if (ss_dist_dino_forward(&loss, NULL, cache, t, s, cen, 0.04f, 2, 2, N, K,
                             NULL, c) != SS_OK) {
        ss_dt_fail("dino forward", ss_last_error());
    } else {
        if (W > 1)
            ss_dt_expect("dino dloss differs",
                   ss_dist_dino_backward(ds, R == bad ? 2.0f : 1.0f, cache, t, s,
                                         cen, 0.04f, 2, 2, N, K, NULL, c),
                   SS_ERR_PARAM);
        if (R == bad) cache[200] ^= 0x55; /* the header is intact: passes */
        if (R == bad) memset(cache, 0, 8);
        ss_dt_expect("dino bad cache on one rank",
               ss_dist_dino_backward(ds, 1.0f, cache, t, s, cen, 0.04f, 2, 2, N,
                                     K, NULL, c), SS_ERR_PARAM);
        if (!ss_dt_all_zero(ds, 24))
            ss_dt_fail("dino failed backward", "wrote");
    }
    uint8_t mask[6] = {1, 0, 1, 0, 0, 1};
    if (R == bad) mask[1] = 2;
    ss_dt_expect("ibot bad mask on one rank",
           ss_dist_ibot_forward(&loss, NULL, cache, t, s, mask, cen, 2, 3, 3, K,
                                NULL, c), SS_ERR_LABEL);
    if (R == bad) s[3] = NAN;
    ss_dt_expect("swav NaN on one rank",
           ss_dist_swav_forward(&loss, NULL, cache, s, NULL, NULL, 2, 0, N, 0,
                                K, NULL, c), SS_ERR_NONFINITE);
    s[3] = 0.5f;
    ss_msn_opts mo = ss_msn_defaults();
    float proto[16]; /* equal on all ranks */
    for (int i = 0; i < 16; i++) proto[i] = (float)(i % 5) - 1.5f;
    if (W > 1) {
        if (R == bad) mo.sinkhorn_iterations = 5;
        ss_dt_expect("msn iterations differ",
               ss_dist_msn_forward(&loss, NULL, cache, s, t, proto, 2, N, K, K, &mo,
                                   c), SS_ERR_PARAM);
    }
    mo.sinkhorn_iterations = 3;
    if (ss_dist_msn_forward(&loss, NULL, cache, s, t, proto, 2, N, K, K, &mo, c) ||
        ss_dist_swav_forward(&loss, NULL, cache, s, NULL, NULL, 2, 0, N, 0, K,
                             NULL, c))
        ss_dt_fail("msn / swav after errors", ss_last_error());
    ss_center_free(cen);
}

SS_DIST_GROUP(distill_cluster) {
    for (int variant = 0; variant < 3; variant++) {
        uint64_t s = 300 + 10 * (uint64_t)variant;
        center_case(variant, s + 1);
        dino_case(variant, 2, 4, 6, s + 2);
        dino_case(variant, 2, 2, 3, s + 3);
        ibot_case(variant, 0, s + 4);
        ibot_case(variant, 1, s + 5); /* no masked token on the last rank */
        swav_case(variant, 2, 1, 0, 3, s + 6);
        swav_case(variant, 2, 0, 1, 3, s + 7); /* uneven queues */
        swav_case(variant, 3, 2, 1, 0, s + 8);

        msn_case(variant, 0, 3, s + 9);
        msn_case(variant, 1, 3, s + 10);
    }
    msn_case(1, 0, 0, 399); /* no Sinkhorn: only pbar is global */
    distill_errors();
}
