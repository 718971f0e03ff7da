/* moco.c - InfoNCE with a negative queue (MoCo v2; lightly NTXentLoss with
 * memory_bank_size = K).
 *
 * l_i0 = <q_i, k_i> / tau, l_ij = <q_i, queue_j> / tau (j = 1..K),
 * loss_i = lse_i - l_i0 with lse_i over all K + 1 logits. The queue part of
 * lse comes from the cross engine (queue rows normalised through a column
 * scale, never copied); the positive column is merged in afterwards.
 * Backward, with w = dloss / N and P_ij = exp(l_ij - lse_i):
 *   dq_i = w / tau (sum_j P_ij queue_j + (P_i0 - 1) k_i),
 *   dk_i = w / tau (P_i0 - 1) q_i,
 * w.r.t. the normalised rows when cosine, then through the normalisation.
 * The cache keeps the queue-only log-sum-exp lq_i, from which
 * 1 - P_i0 = sigmoid(lq_i - l_i0) stays accurate when P_i0 -> 1.
 */
#include "internal.h"
#include "kernels/cross.h"
#include "kernels/vexp.h"

#include <float.h>

#define MOCO_MAGIC 0x53534c4d4f434f31ull /* "SSLMOCO1" */

static size_t hdr_bytes(void) {
    return (sizeof(ss__cross_hdr) + 63) & ~(size_t)63;
}

ss_moco_opts ss_moco_defaults(void) {
    ss_moco_opts o = {.temperature = 0.5f, .cosine = 1};
    return o;
}

static ss_status check_sizes(const char *fn, int64_t N, int64_t K, int64_t D) {
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 1));
    return ss__check_product(fn, K, D, 1);
}

size_t ss_moco_cache_size(int64_t N, int64_t K, int64_t D) {
    if (check_sizes("ss_moco_cache_size", N, K, D) != SS_OK) return 0;
    return hdr_bytes() + (size_t)N * sizeof(float);
}

static ss_status check_inputs(const char *fn, const float *q, const float *k,
                              const float *queue, int64_t N, int64_t K,
                              int64_t D, const ss_moco_opts *o) {
    SS_TRY(ss__check_ptr(fn, "q", q));
    SS_TRY(ss__check_ptr(fn, "k", k));
    SS_TRY(ss__check_ptr(fn, "queue", queue));
    SS_TRY(check_sizes(fn, N, K, D));
    float t = o->temperature;
    if (!(isfinite(t) && t > 0.0f && 1.0f / t <= FLT_MAX))
        return ss__fail(SS_ERR_PARAM, fn,
                        "temperature must be finite and > 0 with 1/temperature "
                        "finite, got %g",
                        (double)t);
    SS_TRY(ss__check_finite(fn, "q", q, N * D));
    SS_TRY(ss__check_finite(fn, "k", k, N * D));
    return ss__check_finite(fn, "queue", queue, K * D);
}

static ss_status nomem(const char *fn, int64_t N, int64_t K, int64_t D) {
    return ss__fail(SS_ERR_NOMEM, fn,
                    "cannot allocate workspace for N=%lld K=%lld D=%lld",
                    (long long)N, (long long)K, (long long)D);
}

/* Workspace: normalised q and k (ss__cross_pair) plus queue inverse norms. */
static ss_status prepare(ss__cross_pair *wk, float **inv, const float *q,
                         const float *k, const float *queue, int64_t N,
                         int64_t K, int64_t D, int cosine, int backward) {
    *inv = NULL;
    if (ss__cross_pair_make(wk, q, k, N, D, cosine, backward) != SS_OK)
        return SS_ERR_NOMEM;
    if (!cosine) return SS_OK;
    *inv = ss__malloc((size_t)K * sizeof(float));
    if (!*inv) {
        ss__cross_pair_free(wk);
        return SS_ERR_NOMEM;
    }
    ss__cross_inv_norms(*inv, queue, K, D);
    return SS_OK;
}

static double pos_logit(const float *q, const float *k, int64_t i, int64_t D,
                        float scale) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++)
        s += (double)q[i * D + d] * k[i * D + d];
    return s * scale;
}

/* loss_i = lse_i - l_i0 = log(1 + e^{lq_i - l_i0}). */
static double query_loss(const float *lq, const float *q, const float *k,
                         int64_t i, int64_t D, float scale) {
    return ss__softplus((double)lq[i] - pos_logit(q, k, i, D, scale));
}

ss_status ss_moco_forward(float *loss, float *losses, void *cache,
                          const float *q, const float *k, const float *queue,
                          int64_t N, int64_t K, int64_t D,
                          const ss_moco_opts *opts) {
    static const char fn[] = "ss_moco_forward";
    ss_moco_opts o = opts ? *opts : ss_moco_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(check_inputs(fn, q, k, queue, N, K, D, &o));
    ss__cross_pair wk;
    float *inv, scale = 1.0f / o.temperature;
    if (prepare(&wk, &inv, q, k, queue, N, K, D, o.cosine, 0) != SS_OK)
        return nomem(fn, N, K, D);
    /* the cache keeps the queue-only log-sum-exp: backward needs
     * 1 - P_i0 = sigmoid(lq_i - l_i0) accurately when P_i0 -> 1 */
    float *lq = (float *)(void *)((char *)cache + hdr_bytes());
    ss__cross p = {wk.a, queue, inv, N, K, D, scale, 0.0f};
    ss_status st = ss__cross_lse(lq, NULL, NULL, &p);
    double total = 0.0;
    for (int64_t i = 0; st == SS_OK && i < N; i++)
        total += query_loss(lq, wk.a, wk.b, i, D, scale);
    if (st == SS_OK) st = ss__cross_check_loss(fn, total / (double)N);
    if (st == SS_OK) {
        for (int64_t i = 0; losses && i < N; i++)
            losses[i] = (float)query_loss(lq, wk.a, wk.b, i, D, scale);
        *loss = (float)(total / (double)N);
        ss__cross_hdr_set(cache, MOCO_MAGIC, N, K, D, o.temperature, 0.0f,
                          o.cosine);
    }
    ss__free(inv);
    ss__cross_pair_free(&wk);
    return st;
}

ss_status ss_moco_backward(float *dq, float *dk, float dloss, const void *cache,
                           const float *q, const float *k, const float *queue,
                           int64_t N, int64_t K, int64_t D,
                           const ss_moco_opts *opts) {
    static const char fn[] = "ss_moco_backward";
    ss_moco_opts o = opts ? *opts : ss_moco_defaults();
    SS_TRY(ss__check_ptr(fn, "dq", dq));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(check_inputs(fn, q, k, queue, N, K, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(ss__cross_hdr_check(cache, fn, MOCO_MAGIC, N, K, D, o.temperature,
                               0.0f, o.cosine));
    ss__cross_pair wk;
    float *inv, scale = 1.0f / o.temperature;
    if (prepare(&wk, &inv, q, k, queue, N, K, D, o.cosine, 1) != SS_OK)
        return nomem(fn, N, K, D);
    const float *lq =
        (const float *)(const void *)((const char *)cache + hdr_bytes());
    float *gq = o.cosine ? wk.dan : dq, *gk = o.cosine ? wk.dbn : dk;
    double w = (double)dloss / (double)N;
    float *lse = ss__malloc((size_t)N * sizeof(float));
    double *pos = ss__malloc((size_t)N * sizeof(double));
    if (!lse || !pos) {
        ss__free(lse), ss__free(pos), ss__free(inv);
        ss__cross_pair_free(&wk);
        return nomem(fn, N, K, D);
    }
    for (int64_t i = 0; i < N; i++) {
        pos[i] = pos_logit(wk.a, wk.b, i, D, scale);
        lse[i] = (float)(pos[i] + ss__softplus((double)lq[i] - pos[i]));
        wk.w[i] = (float)w;
    }
    ss__cross p = {wk.a, queue, inv, N, K, D, scale, 0.0f};
    ss_status st =
        ss__cross_lse_backward(gq, NULL, NULL, wk.w, lse, NULL, NULL,
                                          0.0f, &p);
    if (st == SS_OK) {
        for (int64_t i = 0; i < N; i++) { /* the positive column: P_i0 - 1 */
            double one_minus_p = 1.0 / (1.0 + exp(pos[i] - (double)lq[i]));
            float c = (float)(-w * scale * one_minus_p);
            for (int64_t d = 0; d < D; d++)
                gq[i * D + d] += c * wk.b[i * D + d];
            if (gk)
                for (int64_t d = 0; d < D; d++)
                    gk[i * D + d] += c * wk.a[i * D + d];
        }
        ss__cross_pair_finish(&wk, dq, dk, q, k, N, D);
    }
    ss__free(lse), ss__free(pos);
    ss__free(inv);
    ss__cross_pair_free(&wk);
    return st;
}
