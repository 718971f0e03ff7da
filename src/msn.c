/*
 * msn.c - MSN and PMSN (lightly MSNLoss / PMSNLoss).
 *
 * Anchor logits (V N, K) are formed one row tile at a time with a GEMM and
 * reduced to per-row log-sum-exps and the mean prediction pbar; backward
 * recomputes the tiles. The target logits (N, K) are formed once per call:
 * Sinkhorn needs several passes over them and they are what its duals
 * (u: K, v: N, kept in the cache) refer to.
 */
#include "distill.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/sinkhorn.h"

#include <float.h>
#include <string.h>

#define MSN_TILE 64 /* anchor rows per GEMM tile */

ss_msn_opts ss_msn_defaults(void) {
    ss_msn_opts o = {0.1f, 0.25f, 3, 1.0f, SS_MSN_PRIOR_UNIFORM, 0.25f};
    return o;
}

ss_msn_opts ss_pmsn_defaults(void) {
    ss_msn_opts o = ss_msn_defaults();
    o.prior = SS_MSN_PRIOR_POWER_LAW;
    return o;
}

static ss_status msn_sizes(const char *fn, int64_t V, int64_t N, int64_t K,
                           int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 1));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "K", K, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, V, N, D));
    SS_TRY(ss__check_product(fn, V, N, K));
    SS_TRY(ss__check_product(fn, K, D, 1));
    return SS_OK;
}

/* Cache: double lse[V N] (anchor logits / t), pbar[K], u[K], v[N], off[N]. */
size_t ss_msn_cache_size(int64_t V, int64_t N, int64_t K, int64_t D) {
    if (msn_sizes("ss_msn_cache_size", V, N, K, D)) return 0;
    return sizeof(double) * (size_t)(V * N + 2 * K + 2 * N);
}

static ss_status msn_check(const char *fn, const float *anchors,
                           const float *targets, const float *prototypes,
                           int64_t V, int64_t N, int64_t K, int64_t D,
                           const ss_msn_opts *o) {
    SS_TRY(ss__check_ptr(fn, "anchors", anchors));
    SS_TRY(ss__check_ptr(fn, "targets", targets));
    SS_TRY(ss__check_ptr(fn, "prototypes", prototypes));
    SS_TRY(msn_sizes(fn, V, N, K, D));
    SS_TRY(ss__check_positive(fn, "temperature", o->temperature));
    SS_TRY(ss__check_positive(fn, "sharpen_temperature", o->sharpen_temperature));
    if (o->sinkhorn_iterations < 0)
        return ss__fail(SS_ERR_PARAM, fn,
                        "sinkhorn_iterations must be >= 0, got %lld",
                        (long long)o->sinkhorn_iterations);
    if (!(o->regularization_weight >= 0.0f) || !isfinite(o->regularization_weight))
        return ss__fail(SS_ERR_PARAM, fn,
                        "regularization_weight must be finite and >= 0, got %g",
                        (double)o->regularization_weight);
    if (o->prior != SS_MSN_PRIOR_UNIFORM && o->prior != SS_MSN_PRIOR_POWER_LAW)
        return ss__fail(SS_ERR_PARAM, fn, "prior must be 0 (uniform) or 1 "
                        "(power law), got %d", (int)o->prior);
    if (!(o->power_law_exponent >= 0.0f) || !isfinite(o->power_law_exponent))
        return ss__fail(SS_ERR_PARAM, fn,
                        "power_law_exponent must be finite and >= 0, got %g",
                        (double)o->power_law_exponent);
    SS_TRY(ss__check_finite(fn, "anchors", anchors, V * N * D));
    SS_TRY(ss__check_finite(fn, "targets", targets, N * D));
    SS_TRY(ss__check_finite(fn, "prototypes", prototypes, K * D));
    return SS_OK;
}

/* Normalised copies and per-call buffers. */
typedef struct {
    float *an, *as, *tn, *pn, *ps, *st; /* st: target logits (N, K) */
    float *tile;                         /* nt * MSN_TILE * K */
} msn_ws;

static void msn_ws_free(msn_ws *w) {
    ss__free(w->an), ss__free(w->as), ss__free(w->tn), ss__free(w->pn);
    ss__free(w->ps), ss__free(w->st), ss__free(w->tile);
}

static ss_status msn_prepare(const char *fn, msn_ws *w, const float *anchors,
                             const float *targets, const float *prototypes,
                             int64_t M, int64_t N, int64_t K, int64_t D,
                             int nt) {
    memset(w, 0, sizeof *w);
    w->an = ss__malloc(sizeof(float) * (size_t)(M * D));
    w->as = ss__malloc(sizeof(float) * (size_t)M);
    w->tn = ss__malloc(sizeof(float) * (size_t)(N * D));
    w->pn = ss__malloc(sizeof(float) * (size_t)(K * D));
    w->ps = ss__malloc(sizeof(float) * (size_t)K);
    w->st = ss__malloc(sizeof(float) * (size_t)(N * K));
    w->tile = ss__malloc(sizeof(float) * (size_t)(nt * MSN_TILE * K));
    if (!w->an || !w->as || !w->tn || !w->pn || !w->ps || !w->st || !w->tile) {
        msn_ws_free(w);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    }
    ss__normalize_rows(w->an, w->as, anchors, M, D);
    ss__normalize_rows(w->tn, NULL, targets, N, D);
    ss__normalize_rows(w->pn, w->ps, prototypes, K, D);
    ss__sgemm_threaded(0, 1, N, K, D, 1.0f, w->tn, D, w->pn, D, 0.0f, w->st, K);
    return SS_OK;
}

/* The target kernel: A_nk = st_nk / (t T) + off_n, off_n = -LSE (sharpened
 * softmax in the log domain, so that no power of a probability underflows). */
static ss__sk_kernel target_kernel(const msn_ws *w, double *off, int64_t N,
                                   int64_t K, double isharp) {
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * K >= SS__PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        off[n] = -ss__lse_row(w->st + n * K, NULL, isharp, K);
    ss__sk_kernel kern = {{w->st, NULL}, {N, 0}, off, isharp, K};
    return kern;
}

/* Gradient of R with respect to pbar: g (K). */
static void reg_grad(double *g, const double *pbar, int64_t K,
                     const ss_msn_opts *o, const double *prior) {
    for (int64_t k = 0; k < K; k++) {
        if (o->prior == SS_MSN_PRIOR_UNIFORM)
            g[k] = pbar[k] > 0 ? log(pbar[k]) + 1.0 : 0.0;
        else /* pbar only underflows for temperatures near 0 */
            g[k] = -prior[k] / fmax(pbar[k], DBL_MIN);
    }
}

static void power_prior(double *pi, int64_t K, double e) {
    double s = 0.0;
    for (int64_t k = 0; k < K; k++) s += (pi[k] = pow((double)(k + 1), -e));
    for (int64_t k = 0; k < K; k++) pi[k] /= s;
}

/* Anchor logits of rows [r0, r0 + rows) into tile (rows, K). */
static void anchor_tile(float *tile, const msn_ws *w, int64_t r0, int64_t rows,
                        int64_t K, int64_t D) {
    ss__sgemm(0, 1, rows, K, D, 1.0f, w->an + r0 * D, D, w->pn, D, 0.0f, tile, K);
}

ss_status ss__msn_check(const char *fn, const float *anchors,
                        const float *targets, const float *prototypes,
                        int64_t V, int64_t N, int64_t K, int64_t D,
                        const ss_msn_opts *o) {
    return msn_check(fn, anchors, targets, prototypes, V, N, K, D, o);
}

ss_status ss_msn_forward(float *loss, float *losses, void *cache,
                         const float *anchors, const float *targets,
                         const float *prototypes, int64_t V, int64_t N,
                         int64_t K, int64_t D, const ss_msn_opts *opts) {
    return ss__msn_forward_red("ss_msn_forward", loss, losses, cache, anchors,
                               targets, prototypes, V, N, K, D, opts, NULL);
}

/* The cross-entropy total and the pbar sums (pbar: K) completed over the
 * ranks when red is given; *M becomes the global anchor count. */
static int msn_reduce(const ss__sk_reduce *red, double *pbar, double *total,
                      int64_t K, int64_t V, int64_t *M) {
    if (!red) return 0;
    double *buf = pbar; /* the K sums, then one spare double */
    buf[K] = *total;
    if (red->sum(red->ctx, buf, K + 1)) return 1;
    *total = buf[K];
    *M = V * red->rows_total;
    return 0;
}

ss_status ss__msn_forward_red(const char *fn, float *loss, float *losses,
                              void *cache, const float *anchors,
                              const float *targets, const float *prototypes,
                              int64_t V, int64_t N, int64_t K, int64_t D,
                              const ss_msn_opts *opts,
                              const ss__sk_reduce *red) {
    ss_msn_opts o = opts ? *opts : ss_msn_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(msn_check(fn, anchors, targets, prototypes, V, N, K, D, &o));
    int64_t M = V * N, ntile = (M + MSN_TILE - 1) / MSN_TILE;
    int nt = ss__threads();
    msn_ws w;
    ss_status st = msn_prepare(fn, &w, anchors, targets, prototypes, M, N, K,
                               D, nt);
    double *lse = cache, *pbar = lse + M, *u = pbar + K, *v = u + K, *off = v + N;
    double *acc = st == SS_OK ? ss__calloc(sizeof(double) *
                                           (size_t)(nt * K + 3 * K + 1 + M))
                              : NULL;
    if (st == SS_OK && !acc) {
        msn_ws_free(&w);
        st = ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    }
    if (red && red->agree) st = (ss_status)red->agree(red->ctx, (int)st);
    if (st != SS_OK) {
        if (acc) ss__free(acc), msn_ws_free(&w);
        return st;
    }
    double *skws = acc + nt * K, *ce = skws + 2 * K, *psum = ce + M;
    double it = 1.0 / o.temperature, isharp = it / o.sharpen_temperature;
    ss__sk_kernel kern = target_kernel(&w, off, N, K, isharp);
    if (o.sinkhorn_iterations > 0) {
        if (ss__sinkhorn_log_red(&kern, o.sinkhorn_iterations, u, v, skws,
                                 red)) {
            ss__free(acc), msn_ws_free(&w);
            return SS_ERR_STATE; /* the callback set the message */
        }
    } else {
        for (int64_t k = 0; k < K; k++) u[k] = 0.0;
        for (int64_t n = 0; n < N; n++) v[n] = 0.0;
    }
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (M * K * D >= SS__PAR_MIN)
    for (int64_t t = 0; t < ntile; t++) {
        int id = ss__thread_id();
        float *tile = w.tile + (int64_t)id * MSN_TILE * K;
        double *pacc = acc + (int64_t)id * K;
        int64_t r0 = t * MSN_TILE, rows = M - r0 < MSN_TILE ? M - r0 : MSN_TILE;
        anchor_tile(tile, &w, r0, rows, K, D);
        for (int64_t i = 0; i < rows; i++) {
            int64_t r = r0 + i, n = r % N;
            const float *s = tile + i * K;
            double l = ss__lse_row(s, NULL, it, K), c = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double q = exp(ss__sk_logit(&kern, n, k) + u[k] + v[n]);
                c -= q * (it * s[k] - l);
                pacc[k] += exp(it * s[k] - l);
            }
            lse[r] = l, ce[r] = c;
        }
    }
    for (int64_t k = 0; k < K; k++) { /* fixed thread order */
        double s = 0.0;
        for (int id = 0; id < nt; id++) s += acc[id * K + k];
        psum[k] = s;
    }
    double total = 0.0, R = 0.0;
    for (int64_t r = 0; r < M; r++) total += ce[r];
    int64_t Mloc = M;
    if (msn_reduce(red, psum, &total, K, V, &M)) {
        ss__free(acc), msn_ws_free(&w);
        return SS_ERR_STATE;
    }
    for (int64_t k = 0; k < K; k++) pbar[k] = psum[k] / (double)M;
    if (o.regularization_weight > 0) {
        if (o.prior == SS_MSN_PRIOR_UNIFORM) {
            for (int64_t k = 0; k < K; k++)
                R += pbar[k] > 0 ? pbar[k] * log(pbar[k]) : 0.0;
            R += log((double)K);
        } else {
            double *pi = skws; /* reuse: K doubles */
            power_prior(pi, K, o.power_law_exponent);
            for (int64_t k = 0; k < K; k++)
                R += pi[k] * (log(pi[k]) - log(fmax(pbar[k], DBL_MIN)));
        }
    }
    if (losses)
        for (int64_t r = 0; r < Mloc; r++) losses[r] = (float)ce[r];
    *loss = (float)(total / (double)M + o.regularization_weight * R);
    ss__free(acc);
    msn_ws_free(&w);
    return SS_OK;
}

ss_status ss_msn_backward(float *danchors, float *dprototypes, float dloss,
                          const void *cache, const float *anchors,
                          const float *targets, const float *prototypes,
                          int64_t V, int64_t N, int64_t K, int64_t D,
                          const ss_msn_opts *opts) {
    static const char fn[] = "ss_msn_backward";
    ss_msn_opts o = opts ? *opts : ss_msn_defaults();
    SS_TRY(ss__check_ptr(fn, "danchors", danchors));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(msn_check(fn, anchors, targets, prototypes, V, N, K, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    int64_t M = V * N, ntile = (M + MSN_TILE - 1) / MSN_TILE;
    int nt = ss__threads();
    msn_ws w;
    SS_TRY(msn_prepare(fn, &w, anchors, targets, prototypes, M, N, K, D, nt));
    const double *lse = cache, *pbar = lse + M, *u = pbar + K, *v = u + K;
    double *off = ss__malloc(sizeof(double) * (size_t)(N + 2 * K));
    float *dan = ss__calloc(sizeof(float) * (size_t)(M * D));
    float *dpn = ss__calloc(sizeof(float) * (size_t)(nt * K * D));
    if (!off || !dan || !dpn) {
        ss__free(off), ss__free(dan), ss__free(dpn), msn_ws_free(&w);
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate the workspace");
    }
    double *g = off + N, *pi = g + K;
    double it = 1.0 / o.temperature, isharp = it / o.sharpen_temperature;
    double lam = o.regularization_weight;
    ss__sk_kernel kern = target_kernel(&w, off, N, K, isharp);
    if (lam > 0) {
        if (o.prior == SS_MSN_PRIOR_POWER_LAW) power_prior(pi, K, o.power_law_exponent);
        reg_grad(g, pbar, K, &o, pi);
    }
    double scale = (double)dloss / (double)M * it; /* d logit / d dot = 1 / t */
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (M * K * D >= SS__PAR_MIN)
    for (int64_t t = 0; t < ntile; t++) {
        int id = ss__thread_id();
        float *tile = w.tile + (int64_t)id * MSN_TILE * K;
        int64_t r0 = t * MSN_TILE, rows = M - r0 < MSN_TILE ? M - r0 : MSN_TILE;
        anchor_tile(tile, &w, r0, rows, K, D);
        for (int64_t i = 0; i < rows; i++) {
            int64_t r = r0 + i, n = r % N;
            float *s = tile + i * K; /* overwritten with d loss / d dot */
            double mass = 0.0, pg = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double p = exp(it * s[k] - lse[r]);
                mass += exp(ss__sk_logit(&kern, n, k) + u[k] + v[n]);
                if (lam > 0) pg += p * g[k];
            }
            for (int64_t k = 0; k < K; k++) {
                double p = exp(it * s[k] - lse[r]);
                double q = exp(ss__sk_logit(&kern, n, k) + u[k] + v[n]);
                double d = mass * p - q;
                if (lam > 0) d += lam * p * (g[k] - pg);
                s[k] = (float)(scale * d);
            }
        }
        /* d an = dS pn, d pn += dS^T an */
        ss__sgemm(0, 0, rows, D, K, 1.0f, tile, K, w.pn, D, 0.0f, dan + r0 * D, D);
        if (dprototypes)
            ss__sgemm(1, 0, K, D, rows, 1.0f, tile, K, w.an + r0 * D, D, 1.0f,
                      dpn + (int64_t)id * K * D, D);
    }
    ss__normalize_backward(danchors, dan, w.an, w.as, anchors, M, D);
    if (dprototypes) {
        for (int id = 1; id < nt; id++) /* fixed thread order */
            for (int64_t i = 0; i < K * D; i++) dpn[i] += dpn[id * K * D + i];
        ss__normalize_backward(dprototypes, dpn, w.pn, w.ps, prototypes, K, D);
    }
    ss__free(off), ss__free(dan), ss__free(dpn);
    msn_ws_free(&w);
    return SS_OK;
}
