/* siglip.c - pairwise sigmoid loss (SigLIP, Zhai et al. 2023).
 *
 * x_ij = e^{t'} <a_i, b_j> + bias, y_ij = 2 [i == j] - 1,
 * loss = -(1/N) sum_ij log sigmoid(y_ij x_ij) = (1/N) sum_ij softplus(-y x).
 * Backward: dx_ij = dloss / N (sigmoid(x_ij) - [i == j]);
 *   da = e^{t'} dx b,  db = e^{t'} dx^T a,
 *   dt' = sum dx_ij (x_ij - bias),  dbias = sum dx_ij.
 * Nothing O(N^2) is kept: backward recomputes every tile.
 */
#include "internal.h"
#include "kernels/cross.h"

#define SIGLIP_MAGIC 0x53534c5349474c31ull /* "SSLSIGL1" */

ss_siglip_opts ss_siglip_defaults(void) {
    ss_siglip_opts o = {.cosine = 1};
    return o;
}

size_t ss_siglip_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_siglip_cache_size", N, D) != SS_OK) return 0;
    return sizeof(ss__cross_hdr);
}

ss_status ss_siglip_forward(float *loss, float *losses, void *cache,
                            const float *a, const float *b, float log_t,
                            float bias, int64_t N, int64_t D,
                            const ss_siglip_opts *opts) {
    static const char fn[] = "ss_siglip_forward";
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale;
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__cross_check_pair(fn, a, b, N, D, "log_t", log_t, &bias,
                                &scale));
    ss__cross_pair wk;
    if (ss__cross_pair_make(&wk, a, b, N, D, o.cosine, 0) != SS_OK)
        return ss__cross_nomem(fn, N, D);
    double *rows = ss__malloc((size_t)N * sizeof(double));
    if (!rows) {
        ss__cross_pair_free(&wk);
        return ss__cross_nomem(fn, N, D);
    }
    ss__cross p = {wk.a, wk.b, NULL, N, N, D, scale, bias};
    ss_status st = ss__cross_sigmoid(rows, &p);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++) total += rows[i];
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)N);
    if (st == SS_OK) {
        for (int64_t i = 0; losses && i < N; i++) losses[i] = (float)rows[i];
        *loss = (float)(total / (double)N);
        ss__cross_hdr_set(cache, SIGLIP_MAGIC, N, N, D, log_t, bias, o.cosine);
    }
    ss__free(rows);
    ss__cross_pair_free(&wk);
    return st;
}

ss_status ss_siglip_backward(float *da, float *db, float *dlog_t, float *dbias,
                             float dloss, const void *cache, const float *a,
                             const float *b, float log_t, float bias, int64_t N,
                             int64_t D, const ss_siglip_opts *opts) {
    static const char fn[] = "ss_siglip_backward";
    ss_siglip_opts o = opts ? *opts : ss_siglip_defaults();
    float scale;
    SS_TRY(ss__check_ptr(fn, "da", da));
    SS_TRY(ss__check_ptr(fn, "db", db));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__cross_check_pair(fn, a, b, N, D, "log_t", log_t, &bias,
                                &scale));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(ss__cross_hdr_check(cache, fn, SIGLIP_MAGIC, N, N, D, log_t, bias,
                               o.cosine));
    ss__cross_pair wk;
    if (ss__cross_pair_make(&wk, a, b, N, D, o.cosine, 1) != SS_OK)
        return ss__cross_nomem(fn, N, D);
    float *ga = o.cosine ? wk.dan : da, *gb = o.cosine ? wk.dbn : db;
    ss__cross p = {wk.a, wk.b, NULL, N, N, D, scale, bias};
    double gx = 0.0, gbias = 0.0;
    float w = (float)((double)dloss / (double)N);
    ss_status st = ss__cross_sigmoid_backward(ga, gb, &gx, &gbias, w, &p);
    if (st == SS_OK) {
        ss__cross_pair_finish(&wk, da, db, a, b, N, D);
        if (dlog_t) *dlog_t += (float)gx;
        if (dbias) *dbias += (float)gbias;
    }
    ss__cross_pair_free(&wk);
    return st;
}
