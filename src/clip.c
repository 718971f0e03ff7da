/* clip.c - symmetric cross-modal InfoNCE (CLIP / OpenCLIP ClipLoss).
 *
 * S_ij = e^t <a_i, b_j>; loss = (mean_i [lse_row_i - S_ii] +
 * mean_j [lse_col_j - S_jj]) / 2. Both log-sum-exps come from one pass
 * of the cross engine; backward recomputes the tiles once:
 *   dS_ij = dloss / (2N) (P^row_ij + P^col_ij) - dloss / N [i == j]
 *   da = e^t dS b,  db = e^t dS^T a,  dt = sum_ij dS_ij S_ij.
 */
#include "internal.h"
#include "kernels/cross.h"

#define CLIP_MAGIC 0x53534c43494c5031ull /* "SSLCILP1" */

static size_t hdr_bytes(void) {
    return (sizeof(ss__cross_hdr) + 63) & ~(size_t)63;
}

ss_clip_opts ss_clip_defaults(void) {
    ss_clip_opts o = {.cosine = 1};
    return o;
}

size_t ss_clip_cache_size(int64_t N, int64_t D) {
    if (ss__cross_check_sizes("ss_clip_cache_size", N, D) != SS_OK) return 0;
    return hdr_bytes() + 2 * (size_t)N * sizeof(float);
}

/* (row CE_i + column CE_i) / 2 from the two log-sum-exps and S_ii as the
 * tiles hold it, so that both CEs are >= 0 in float too. */
static double pair_loss(const float *rl, const float *cl, const float *sii,
                        int64_t i) {
    return 0.5 * (((double)rl[i] - sii[i]) + ((double)cl[i] - sii[i]));
}

ss_status ss_clip_forward(float *loss, float *losses, void *cache,
                          const float *a, const float *b, float log_scale,
                          int64_t N, int64_t D, const ss_clip_opts *opts) {
    static const char fn[] = "ss_clip_forward";
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale;
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__cross_check_pair(fn, a, b, N, D, "log_scale", log_scale,
                                NULL, &scale));
    ss__cross_pair wk;
    if (ss__cross_pair_make(&wk, a, b, N, D, o.cosine, 0) != SS_OK)
        return ss__cross_nomem(fn, N, D);
    float *rl = (float *)(void *)((char *)cache + hdr_bytes()), *cl = rl + N;
    ss__cross p = {wk.a, wk.b, NULL, N, N, D, scale, 0.0f};
    ss_status st = ss__cross_lse(rl, cl, wk.w, &p);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        total += pair_loss(rl, cl, wk.w, i);
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)N);
    if (st == SS_OK) {
        for (int64_t i = 0; losses && i < N; i++)
            losses[i] = (float)pair_loss(rl, cl, wk.w, i);
        *loss = (float)(total / (double)N);
        ss__cross_hdr_set(cache, CLIP_MAGIC, N, N, D, log_scale, 0.0f,
                          o.cosine);
    }
    ss__cross_pair_free(&wk);
    return st;
}

ss_status ss_clip_backward(float *da, float *db, float *dlog_scale, float dloss,
                           const void *cache, const float *a, const float *b,
                           float log_scale, int64_t N, int64_t D,
                           const ss_clip_opts *opts) {
    static const char fn[] = "ss_clip_backward";
    ss_clip_opts o = opts ? *opts : ss_clip_defaults();
    float scale;
    SS_TRY(ss__check_ptr(fn, "da", da));
    SS_TRY(ss__check_ptr(fn, "db", db));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__cross_check_pair(fn, a, b, N, D, "log_scale", log_scale,
                                NULL, &scale));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(ss__cross_hdr_check(cache, fn, CLIP_MAGIC, N, N, D, log_scale, 0.0f,
                               o.cosine));
    ss__cross_pair wk;
    if (ss__cross_pair_make(&wk, a, b, N, D, o.cosine, 1) != SS_OK)
        return ss__cross_nomem(fn, N, D);
    const float *rl =
        (const float *)(const void *)((const char *)cache + hdr_bytes());
    const float *cl = rl + N;
    float *ga = o.cosine ? wk.dan : da, *gb = o.cosine ? wk.dbn : db;
    float w = (float)((double)dloss / (2.0 * (double)N));
    for (int64_t i = 0; i < N; i++)
        wk.w[i] = w;
    ss__cross p = {wk.a, wk.b, NULL, N, N, D, scale, 0.0f};
    double gx = 0.0;
    /* the positives S_ii enter both CEs: dS_ii gets -dloss / N */
    float wd = (float)((double)dloss / (double)N);
    ss_status st =
        ss__cross_lse_backward(ga, gb, &gx, wk.w, rl, wk.w, cl, wd, &p);
    if (st == SS_OK) {
        ss__cross_pair_finish(&wk, da, db, a, b, N, D);
        if (dlog_scale) *dlog_scale += (float)gx;
    }
    ss__cross_pair_free(&wk);
    return st;
}
