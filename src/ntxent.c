/*
 * ntxent.c - NT-Xent (SimCLR) over V >= 2 views, with the hard-negative
 * (HCL) and debiased options. Formulas: selfsup.h; backward derivation:
 * docs/derivations/ntxent.md.
 *
 * The O(M^2 D) part is the denominator log-sum-exp, done by the tiled
 * engine (kernels/contrast.h):
 *   plain  one scale 1/t over every k != i;
 *   HCL    scales (1+beta)/t and beta/t over the negatives only (rows of
 *          other samples), giving log neg = log Nq + lse0 - lse1.
 * The positive terms are O(M D) per view pair and are done here.
 */
#include "internal.h"
#include "ntxent_internal.h"
#include "kernels/contrast.h"
#include "kernels/norm.h"
#include "kernels/vexp.h"

#include <string.h>

#define NTX_MAGIC 0x3130544e58545353ull /* "SSTXNT01" */
/* Largest |logit| bound max||x||^2 (1 + beta) / t accepted: beyond it
 * float32 dot products themselves may overflow. */

typedef struct {
    uint64_t magic;
    int64_t V, N, D;
    float temperature, hard_beta, tau_plus;
    int32_t cosine;
} ntx_header;

/* Cache: header, padded to 64 bytes, then lse (2, M) floats. */
#define NTX_HEADER_BYTES 64

static ss_status ntx_check_sizes(const char *fn, int64_t V, int64_t N,
                                 int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

static ss_status ntx_check_opts(const char *fn, const ss_ntxent_opts *o) {
    SS_TRY(ss__gc_check_temperature(fn, o->temperature));
    if (!(o->hard_beta >= 0.0f && isfinite(o->hard_beta)))
        return ss__fail(SS_ERR_PARAM, fn,
                        "hard_beta must be finite and >= 0, got %g",
                        (double)o->hard_beta);
    if (!(o->debias_tau_plus >= 0.0f && o->debias_tau_plus < 1.0f))
        return ss__fail(SS_ERR_PARAM, fn,
                        "debias_tau_plus must be in [0, 1), got %g",
                        (double)o->debias_tau_plus);
    return SS_OK;
}

/* Everything but the output pointers; also bounds the logits. */
ss_status ss__ntxent_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_ntxent_opts *o) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ntx_check_sizes(fn, V, N, D));
    SS_TRY(ntx_check_opts(fn, o));
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    double maxsq = o->cosine ? 1.0 : 0.0; /* unit rows: |s| <= 1 / t */
    for (int64_t i = 0; i < V * N && !o->cosine; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) s += (double)z[i * D + d] * z[i * D + d];
        if (s > maxsq) maxsq = s;
    }
    double bound = maxsq * (1.0 + o->hard_beta) / o->temperature;
    if (!(bound <= SS__GC_MAX_LOGIT))
        return ss__fail(SS_ERR_PARAM, fn,
                        "logits overflow float32: max ||x||^2 (1 + hard_beta) "
                        "/ temperature = %g > %g",
                        bound, SS__GC_MAX_LOGIT);
    return SS_OK;
}

ss_ntxent_opts ss_ntxent_defaults(void) {
    ss_ntxent_opts o = {0.5f, 1, 0.0f, 0.0f};
    return o;
}

size_t ss_ntxent_cache_size(int64_t V, int64_t N, int64_t D) {
    if (ntx_check_sizes("ss_ntxent_cache_size", V, N, D) != SS_OK) return 0;
    return NTX_HEADER_BYTES + (size_t)(2 * V * N) * sizeof(float);
}

static int ntx_hcl(const ss_ntxent_opts *o) {
    return o->hard_beta > 0.0f || o->debias_tau_plus > 0.0f;
}

/* ---- shared setup: normalised rows and the engine problem --------------- */

typedef struct {
    const float *x; /* (M, D) rows the engine sees */
    float *xbuf;    /* normalised copy (cosine), owned */
    float *inv;     /* (M) 1 / max(||z||, eps) (cosine), owned */
    int64_t *group; /* (M) sample ids (HCL), owned */
    ss__gc gc;
} ntx_work;

static void ntx_work_free(ntx_work *w) {
    ss__free(w->xbuf);
    ss__free(w->inv);
    ss__free(w->group);
}

static ss_status ntx_work_init(ntx_work *w, const char *fn, const float *z,
                               int64_t V, int64_t N, int64_t D,
                               const ss_ntxent_opts *o) {
    int64_t M = V * N;
    memset(w, 0, sizeof *w);
    int hcl = ntx_hcl(o);
    if (o->cosine) {
        w->xbuf = ss__malloc((size_t)(M * D) * sizeof(float));
        w->inv = ss__malloc((size_t)M * sizeof(float));
    }
    if (hcl) w->group = ss__malloc((size_t)M * sizeof(int64_t));
    if ((o->cosine && (!w->xbuf || !w->inv)) || (hcl && !w->group)) {
        ntx_work_free(w);
        return ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld rows",
                        (long long)M, (long long)D);
    }
    if (o->cosine) ss__normalize_rows(w->xbuf, w->inv, z, M, D);
    w->x = o->cosine ? w->xbuf : z;
    if (hcl)
        for (int64_t i = 0; i < M; i++) w->group[i] = i % N;
    float t = o->temperature, b = o->hard_beta;
    ss__gc gc = {w->x, M, D, w->group, hcl, 1, {1.0f / t, 0.0f}, 0, 0};
    if (hcl) gc.scale[0] = (1.0f + b) / t;
    if (hcl && b > 0.0f) gc.nscales = 2, gc.scale[1] = b / t;
    w->gc = gc;
    return SS_OK;
}

/* ---- positive terms -------------------------------------------------------- */

/* <x_i, x_p> in double. */
static double dot_d(const float *a, const float *b, int64_t D) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s;
}

void ss__ntxent_pos_dots(double *pos, const float *x, int64_t V, int64_t N,
                         int64_t D, int nthreads) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nthreads > 1 && V * N * D > 65536)
#else
    (void)nthreads;
#endif
    for (int64_t n = 0; n < N; n++) {
        for (int64_t v = 0; v < V; v++) pos[v * N + n] = 0.0;
        for (int64_t d = 0; d < D; d++) {
            double s = 0.0;
            for (int64_t v = 0; v < V; v++) s += x[(v * N + n) * D + d];
            for (int64_t v = 0; v < V; v++) {
                double xv = x[(v * N + n) * D + d];
                pos[v * N + n] += xv * (s - xv);
            }
        }
    }
}

void ss__ntxent_pos_grad(float *dx, const float *x, double k, int64_t V,
                         int64_t N, int64_t D, int nthreads) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthreads) \
    if (nthreads > 1 && V * N * D > 65536)
#else
    (void)nthreads;
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            double s = 0.0;
            for (int64_t v = 0; v < V; v++) s += x[(v * N + n) * D + d];
            for (int64_t v = 0; v < V; v++) {
                int64_t j = (v * N + n) * D + d;
                dx[j] += (float)(k * (s - x[j]));
            }
        }
}

/* HCL pair (i, p): returns loss_ip = log(1 + Ng e^{-s}); *wneg = d loss_ip /
 * d log neg, *ws = d loss_ip / d s (s = s_ip). lneg = log neg_i. */
static double hcl_pair(double s, double lneg, double lnq, double inv_t,
                       double tau, double *wneg, double *ws) {
    double lng, r = 1.0;
    if (tau > 0.0) { /* log((neg - tau Nq e^s) / (1 - tau)) */
        double l2 = log(tau) + lnq + s;
        if (lneg > l2) {
            lng = lneg + log1p(-exp(l2 - lneg)) - log1p(-tau);
            r = -1.0 / expm1(l2 - lneg); /* neg / (neg - tau Nq e^s) */
        } else {
            lng = -INFINITY;
        }
    } else {
        lng = lneg;
    }
    double lclamp = lnq - inv_t; /* Ng >= Nq e^{-1/t} */
    int active = lng >= lclamp;
    if (!active) lng = lclamp;
    double u = lng - s;
    double sig = u >= 0 ? 1.0 / (1.0 + exp(-u)) : exp(u) / (1.0 + exp(u));
    *wneg = active ? sig * r : 0.0;
    *ws = active ? -sig * r : -sig;
    return ss__softplus(u);
}

/* log neg_i from the engine's lse (see file comment). */
static double hcl_lneg(const float *lse, int64_t M, int64_t i, double lnq,
                       int two_scales) {
    return two_scales ? lnq + (double)lse[i] - (double)lse[M + i]
                      : (double)lse[i];
}

double ss__ntxent_hcl_pairs(double *loss_i, float *w, float *dx, double f,
                            const float *x, const float *lse, int64_t V,
                            int64_t N, int64_t D, const ss_ntxent_opts *o,
                            int two_scales, int64_t nq) {
    int64_t M = V * N;
    double inv_t = 1.0 / o->temperature, total = 0.0;
    if (nq == 0) { /* N = 1: no negatives, Ng = 0, every loss 0 */
        for (int64_t i = 0; i < M; i++) {
            if (loss_i) loss_i[i] = 0.0;
            if (w) w[i] = 0.0f, w[M + i] = 0.0f;
        }
        return 0.0;
    }
    double lnq = log((double)nq);
    f /= (double)(V - 1); /* loss_i is the mean over the V - 1 positives */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    reduction(+ : total) if (V * N * D > 65536)
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t v = 0; v < V; v++) {
            int64_t i = v * N + n;
            double lneg = hcl_lneg(lse, M, i, lnq, two_scales), li = 0.0;
            double wsum = 0.0;
            for (int64_t u = 0; u < V; u++) {
                if (u == v) continue;
                const float *xi = x + i * D, *xp = x + (u * N + n) * D;
                double wn, ws;
                li += hcl_pair(dot_d(xi, xp, D) * inv_t, lneg, lnq, inv_t,
                               o->debias_tau_plus, &wn, &ws);
                wsum += wn;
                if (!dx) continue;
                float c = (float)(f * ws * inv_t); /* ds/dx_i = x_p / t */
                float *di = dx + i * D, *dp = dx + (u * N + n) * D;
                for (int64_t d = 0; d < D; d++) di[d] += c * xp[d];
                for (int64_t d = 0; d < D; d++) dp[d] += c * xi[d];
            }
            li /= (double)(V - 1);
            total += li;
            if (loss_i) loss_i[i] = li;
            if (w) {
                w[i] = (float)(f * wsum);
                if (two_scales) w[M + i] = (float)(-f * wsum);
            }
        }
    return total;
}

/* ---- public ------------------------------------------------------------- */

ss_status ss_ntxent_forward(float *loss, float *losses, void *cache,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *opts) {
    static const char fn[] = "ss_ntxent_forward";
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__ntxent_check(fn, z, V, N, D, &o));
    int64_t M = V * N;
    ntx_work wk;
    SS_TRY(ntx_work_init(&wk, fn, z, V, N, D, &o));
    double *li = ss__malloc((size_t)M * sizeof(double));
    float *lse = ss__malloc((size_t)(2 * M) * sizeof(float));
    ss_status st = li && lse ? SS_OK
                             : ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld "
                                        "anchors", (long long)M);
    if (st == SS_OK) st = ss__gc_forward(lse, &wk.gc);
    if (st == SS_OK) {
        double total = 0.0;
        if (ntx_hcl(&o)) {
            total = ss__ntxent_hcl_pairs(li, NULL, NULL, 0.0, wk.x, lse, V, N,
                                         D, &o, wk.gc.nscales == 2, M - V);
        } else {
            double k = 1.0 / ((double)o.temperature * (double)(V - 1));
            ss__ntxent_pos_dots(li, wk.x, V, N, D, ss__threads());
            for (int64_t i = 0; i < M; i++) {
                li[i] = (double)lse[i] - k * li[i];
                total += li[i];
            }
        }
        ntx_header h = {NTX_MAGIC, V, N, D, o.temperature, o.hard_beta,
                        o.debias_tau_plus, o.cosine != 0};
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + NTX_HEADER_BYTES, lse,
               (size_t)(wk.gc.nscales * M) * sizeof(float));
        if (losses)
            for (int64_t i = 0; i < M; i++) losses[i] = (float)li[i];
        *loss = (float)(total / (double)M);
    }
    ss__free(li);
    ss__free(lse);
    ntx_work_free(&wk);
    return st;
}

static ss_status ntx_check_cache(const char *fn, const void *cache, int64_t V,
                                 int64_t N, int64_t D,
                                 const ss_ntxent_opts *o) {
    ntx_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != NTX_MAGIC || h.V != V || h.N != N || h.D != D ||
        h.temperature != o->temperature || h.hard_beta != o->hard_beta ||
        h.tau_plus != o->debias_tau_plus || h.cosine != (o->cosine != 0))
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_ntxent_forward with these "
                        "sizes and options (V = %lld, N = %lld, D = %lld)",
                        (long long)V, (long long)N, (long long)D);
    return SS_OK;
}

ss_status ss_ntxent_backward(float *dz, float dloss, const void *cache,
                             const float *z, int64_t V, int64_t N, int64_t D,
                             const ss_ntxent_opts *opts) {
    static const char fn[] = "ss_ntxent_backward";
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(ss__ntxent_check(fn, z, V, N, D, &o));
    SS_TRY(ntx_check_cache(fn, cache, V, N, D, &o));
    int64_t M = V * N;
    ntx_work wk;
    SS_TRY(ntx_work_init(&wk, fn, z, V, N, D, &o));
    float *lse = ss__malloc((size_t)(2 * M) * sizeof(float));
    float *w = ss__malloc((size_t)(2 * M) * sizeof(float));
    /* cosine: gradient w.r.t. the normalised rows first; dot: dz itself */
    float *dx = o.cosine ? ss__calloc((size_t)(M * D) * sizeof(float)) : dz;
    ss_status st = lse && w && dx ? SS_OK
                                  : ss__fail(SS_ERR_NOMEM, fn, "no memory for "
                                             "%lld x %lld rows", (long long)M,
                                             (long long)D);
    double f = (double)dloss / (double)M;
    if (st == SS_OK) {
        memcpy(lse, (const char *)cache + NTX_HEADER_BYTES,
               (size_t)(wk.gc.nscales * M) * sizeof(float));
        if (ntx_hcl(&o))
            ss__ntxent_hcl_pairs(NULL, w, NULL, f, wk.x, lse, V, N, D, &o,
                                 wk.gc.nscales == 2, M - V);
        else
            for (int64_t i = 0; i < M; i++) w[i] = (float)f;
        st = ss__gc_backward(dx, w, lse, &wk.gc);
    }
    if (st == SS_OK) {
        if (ntx_hcl(&o))
            ss__ntxent_hcl_pairs(NULL, NULL, dx, f, wk.x, lse, V, N, D, &o,
                                 wk.gc.nscales == 2, M - V);
        else /* d/dx_j of -f/((V-1) t) sum_i sum_p <x_i, x_p> */
            ss__ntxent_pos_grad(dx, wk.x,
                                -2.0 * f / ((double)o.temperature * (V - 1)),
                                V, N, D, ss__threads());
        if (o.cosine) ss__normalize_backward(dz, dx, wk.x, wk.inv, z, M, D);
    }
    if (o.cosine) ss__free(dx);
    ss__free(lse);
    ss__free(w);
    ntx_work_free(&wk);
    return st;
}
