/*
 * swav.c - SwAV swapped prediction (lightly SwaVLoss) with log-domain
 * Sinkhorn-Knopp codes.
 *
 * The codes of high crop i are kept as Sinkhorn duals (u_i: K, v_i: N) in
 * the cache, q_ink = exp(high_ink / eps + u_ik + v_in), so no (N, K) matrix
 * beyond the inputs is ever stored. Per sample, the codes of all H crops
 * are summed once: view w is trained on qbar_w = sum_{i != w} q_i.
 */
#include "distill.h"
#include "kernels/sinkhorn.h"

ss_swav_opts ss_swav_defaults(void) {
    ss_swav_opts o = {0.1f, 3, 0.05f};
    return o;
}

static ss_status swav_sizes(const char *fn, int64_t H, int64_t L, int64_t N,
                            int64_t Q, int64_t K) {
    SS_TRY(ss__check_size(fn, "H", H, 1));
    SS_TRY(ss__check_size(fn, "L", L, 0));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "Q", Q, 0));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    if (H + L < 2)
        return ss__fail(SS_ERR_SIZE, fn,
                        "need at least two crops, got H = %lld, L = %lld",
                        (long long)H, (long long)L);
    SS_TRY(ss__check_product(fn, H + L, N, K));
    if (Q > 0) SS_TRY(ss__check_product(fn, H, N + Q, K));
    return SS_OK;
}

/* Cache: double u[H K], v[H N], lse[(H + L) N] of z / temperature. */
size_t ss_swav_cache_size(int64_t H, int64_t L, int64_t N, int64_t Q,
                          int64_t K) {
    if (swav_sizes("ss_swav_cache_size", H, L, N, Q, K)) return 0;
    return sizeof(double) * (size_t)(H * K + H * N + (H + L) * N);
}

static ss_status swav_check(const char *fn, const float *high,
                            const float *low, const float *queue, int64_t H,
                            int64_t L, int64_t N, int64_t Q, int64_t K,
                            const ss_swav_opts *o) {
    SS_TRY(ss__check_ptr(fn, "high", high));
    if (L > 0) SS_TRY(ss__check_ptr(fn, "low", low));
    if (Q > 0) SS_TRY(ss__check_ptr(fn, "queue", queue));
    SS_TRY(swav_sizes(fn, H, L, N, Q, K));
    SS_TRY(ss__check_positive(fn, "temperature", o->temperature));
    SS_TRY(ss__check_positive(fn, "sinkhorn_epsilon", o->sinkhorn_epsilon));
    if (o->sinkhorn_iterations < 0)
        return ss__fail(SS_ERR_PARAM, fn,
                        "sinkhorn_iterations must be >= 0, got %lld",
                        (long long)o->sinkhorn_iterations);
    SS_TRY(ss__check_finite(fn, "high", high, H * N * K));
    if (L > 0) SS_TRY(ss__check_finite(fn, "low", low, L * N * K));
    if (Q > 0) SS_TRY(ss__check_finite(fn, "queue", queue, H * Q * K));
    return SS_OK;
}

/* Scores of crop w (high crops first, then low). */
static const float *crop(const float *high, const float *low, int64_t H,
                         int64_t w, int64_t N, int64_t K) {
    return w < H ? high + w * N * K : low + (w - H) * N * K;
}

/* Codes of sample n for every high crop into q: (H, K), their sum into qt. */
static void codes(const float *high, const double *u, const double *v,
                  double ieps, int64_t H, int64_t N, int64_t K, int64_t n,
                  double *q, double *qt) {
    for (int64_t k = 0; k < K; k++) qt[k] = 0.0;
    for (int64_t i = 0; i < H; i++) {
        const float *x = high + (i * N + n) * K;
        for (int64_t k = 0; k < K; k++) {
            q[i * K + k] = exp(ieps * x[k] + u[i * K + k] + v[i * N + n]);
            qt[k] += q[i * K + k];
        }
    }
}

ss_status ss__swav_check(const char *fn, const float *high, const float *low,
                         const float *queue, int64_t H, int64_t L, int64_t N,
                         int64_t Q, int64_t K, const ss_swav_opts *o) {
    return swav_check(fn, high, low, queue, H, L, N, Q, K, o);
}

ss_status ss_swav_forward(float *loss, float *losses, void *cache,
                          const float *high, const float *low,
                          const float *queue, int64_t H, int64_t L, int64_t N,
                          int64_t Q, int64_t K, const ss_swav_opts *opts) {
    return ss__swav_forward_red("ss_swav_forward", loss, losses, cache, high,
                                low, queue, H, L, N, Q, K, opts, NULL);
}

ss_status ss__swav_forward_red(const char *fn, float *loss, float *losses,
                               void *cache, const float *high,
                               const float *low, const float *queue,
                               int64_t H, int64_t L, int64_t N, int64_t Q,
                               int64_t K, const ss_swav_opts *opts,
                               const ss__sk_reduce *red) {
    ss_swav_opts o = opts ? *opts : ss_swav_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(swav_check(fn, high, low, queue, H, L, N, Q, K, &o));
    int nt = ss__threads();
    double *vfull = ss__malloc(sizeof(double) * (size_t)(N + Q));
    double *ws = ss__malloc(sizeof(double) * (size_t)(2 * K + nt * (H + 1) * K));
    double *per = ss__malloc(sizeof(double) * (size_t)N);
    ss_status st = vfull && ws && per ? SS_OK : ss__fail(SS_ERR_NOMEM, fn,
                                        "cannot allocate the workspace");
    if (red && red->agree) st = (ss_status)red->agree(red->ctx, (int)st);
    if (st != SS_OK) {
        ss__free(vfull), ss__free(ws), ss__free(per);
        return st;
    }
    double *u = cache, *v = u + H * K, *lse = v + H * N;
    double ieps = 1.0 / o.sinkhorn_epsilon, it = 1.0 / o.temperature;
    for (int64_t i = 0; i < H; i++) {
        ss__sk_kernel kern = {{high + i * N * K, queue ? queue + i * Q * K : NULL},
                              {N, Q}, NULL, ieps, K};
        if (ss__sinkhorn_log_red(&kern, o.sinkhorn_iterations, u + i * K,
                                 vfull, ws, red)) {
            ss__free(vfull), ss__free(ws), ss__free(per);
            return SS_ERR_STATE; /* the callback set the message */
        }
        for (int64_t n = 0; n < N; n++) v[i * N + n] = vfull[n]; /* drop queue */
    }
    int64_t W = H + L;
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (W * N * K >= SS__PAR_MIN)
    for (int64_t r = 0; r < W * N; r++)
        lse[r] = ss__lse_row(crop(high, low, H, r / N, N, K) + (r % N) * K,
                             NULL, it, K);
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (W * N * K >= SS__PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        double *q = ws + 2 * K + (int64_t)ss__thread_id() * (H + 1) * K;
        double *qt = q + H * K, l = 0.0;
        codes(high, u, v, ieps, H, N, K, n, q, qt);
        for (int64_t w = 0; w < W; w++) {
            const float *z = crop(high, low, H, w, N, K) + n * K;
            double lw = lse[w * N + n];
            for (int64_t k = 0; k < K; k++) {
                double qb = qt[k] - (w < H ? q[w * K + k] : 0.0);
                l -= qb * (it * z[k] - lw);
            }
        }
        per[n] = l / (double)(H * (W - 1));
    }
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total += per[n];
    if (losses)
        for (int64_t n = 0; n < N; n++) losses[n] = (float)per[n];
    *loss = (float)(total / (double)N);
    ss__free(vfull), ss__free(ws), ss__free(per);
    return SS_OK;
}

ss_status ss_swav_backward(float *dhigh, float *dlow, float dloss,
                           const void *cache, const float *high,
                           const float *low, const float *queue, int64_t H,
                           int64_t L, int64_t N, int64_t Q, int64_t K,
                           const ss_swav_opts *opts) {
    static const char fn[] = "ss_swav_backward";
    ss_swav_opts o = opts ? *opts : ss_swav_defaults();
    SS_TRY(ss__check_ptr(fn, "dhigh", dhigh));
    if (L > 0) SS_TRY(ss__check_ptr(fn, "dlow", dlow));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(swav_check(fn, high, low, queue, H, L, N, Q, K, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    int nt = ss__threads();
    double *ws = ss__malloc(sizeof(double) * (size_t)(nt * (H + 1) * K));
    if (!ws) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    const double *u = cache, *v = u + H * K, *lse = v + H * N;
    double ieps = 1.0 / o.sinkhorn_epsilon, it = 1.0 / o.temperature;
    int64_t W = H + L;
    double scale = (double)dloss * it / ((double)N * (double)(H * (W - 1)));
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (W * N * K >= SS__PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        double *q = ws + (int64_t)ss__thread_id() * (H + 1) * K, *qt = q + H * K;
        codes(high, u, v, ieps, H, N, K, n, q, qt);
        for (int64_t w = 0; w < W; w++) {
            const float *z = crop(high, low, H, w, N, K) + n * K;
            float *dz = w < H ? dhigh + (w * N + n) * K : dlow + ((w - H) * N + n) * K;
            double lw = lse[w * N + n], mass = 0.0;
            for (int64_t k = 0; k < K; k++) mass += qt[k] - (w < H ? q[w * K + k] : 0.0);
            /* d/dz of -<qbar, log_softmax(z / t)> = (mass softmax - qbar) / t */
            for (int64_t k = 0; k < K; k++) {
                double qb = qt[k] - (w < H ? q[w * K + k] : 0.0);
                dz[k] += (float)(scale * (mass * exp(it * z[k] - lw) - qb));
            }
        }
    }
    ss__free(ws);
    return SS_OK;
}
