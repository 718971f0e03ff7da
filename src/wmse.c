/*
 * wmse.c - W-MSE (Ermolov et al. 2021) as lightly's WMSELoss: Cholesky
 * whitening of each view of each sub-batch, then 2 - 2 cos between views.
 *
 * Per sub-batch and view, in double (X: (w, D) rows, Xc centred):
 *   S = Xc^T Xc / (w - 1),  L L^T = (1 - eps) S + eps I,  Y = Xc L^{-T}.
 * Backward (docs/derivations/wmse.md), given dY:
 *   dXc  = dY L^{-1}
 *   dL   = -tril(L^{-T} dY^T Y)
 *   Phi  = tril(L^T dL) with its diagonal halved
 *   dSig = sym(L^{-T} Phi L^{-1})               (Cholesky backward)
 *   dXc += 2 (1 - eps) / (w - 1) Xc dSig
 *   dX   = dXc - mean_rows(dXc).
 * Sub-batches of one iteration cover disjoint rows, so they run in parallel
 * and write without races; iterations run one after the other.
 */
#include "dist_geometry.h" /* ss__wmse_* */
#include "internal.h"
#include "kernels/lapack.h"

#include <stdlib.h>
#include <string.h>

#define WMSE_MAGIC 0x313045534d575353ull /* "SSWMSE01" */
#define WMSE_HEADER_BYTES 64
#define WMSE_NORM_EPS 1e-12 /* F.normalize in norm_mse_loss */

typedef struct {
    uint64_t magic;
    int64_t V, N, D, w_size, w_iter;
    float eps;
} wmse_header;

ss_wmse_opts ss_wmse_defaults(void) {
    ss_wmse_opts o = {256, 1, 0.0f};
    return o;
}

ss_status ss_wmse_permutation(int64_t *perm, int64_t w_iter, int64_t N,
                              ss_rng *rng) {
    static const char fn[] = "ss_wmse_permutation";
    SS_TRY(ss__check_ptr(fn, "perm", perm));
    SS_TRY(ss__check_ptr(fn, "rng", rng));
    SS_TRY(ss__check_size(fn, "w_iter", w_iter, 1));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_product(fn, w_iter, N, 1));
    for (int64_t it = 0; it < w_iter; it++) {
        int64_t *p = perm + it * N;
        for (int64_t i = 0; i < N; i++) p[i] = i;
        for (int64_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)(ss_rng_u64(rng) % (uint64_t)(i + 1));
            int64_t t = p[i];
            p[i] = p[j], p[j] = t;
        }
    }
    return SS_OK;
}

static ss_status wmse_check_sizes(const char *fn, int64_t V, int64_t N,
                                  int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

size_t ss_wmse_cache_size(int64_t V, int64_t N, int64_t D) {
    if (wmse_check_sizes("ss_wmse_cache_size", V, N, D) != SS_OK) return 0;
    return WMSE_HEADER_BYTES;
}

/* Declared in dist_geometry.h: the options against N rows of dimension
 * D (not yet N's divisibility by w_size). */
ss_status ss__wmse_check_opts(const char *fn, int64_t N, int64_t D,
                              const ss_wmse_opts *o) {
    if (o->w_size < 2)
        return ss__fail(SS_ERR_PARAM, fn, "w_size must be >= 2, got %lld",
                        (long long)o->w_size);
    if (o->w_iter < 1 || o->w_iter > SS_MAX_ELEMENTS / N)
        return ss__fail(SS_ERR_PARAM, fn, "w_iter must be >= 1 (and w_iter N "
                        "<= 2^40), got %lld", (long long)o->w_iter);
    if (!(o->eps >= 0.0f && o->eps < 1.0f))
        return ss__fail(SS_ERR_PARAM, fn, "eps must be in [0, 1), got %g",
                        (double)o->eps);
    if (o->w_size < 2 * D)
        return ss__fail(SS_ERR_SIZE, fn, "w_size = %lld is too small for D = "
                        "%lld: whitening needs w_size >= 2 D (lightly's "
                        "condition)", (long long)o->w_size, (long long)D);
    return SS_OK;
}

static ss_status wmse_check(const char *fn, const float *z,
                            const int64_t *perm, int64_t V, int64_t N,
                            int64_t D, const ss_wmse_opts *o) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(wmse_check_sizes(fn, V, N, D));
    SS_TRY(ss__wmse_check_opts(fn, N, D, o));
    if (N < o->w_size || N % o->w_size != 0)
        return ss__fail(SS_ERR_SIZE, fn, "N = %lld must be a positive multiple "
                        "of w_size = %lld", (long long)N, (long long)o->w_size);
    if (perm) {
        unsigned char *seen = malloc((size_t)N);
        if (!seen) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
        for (int64_t it = 0; it < o->w_iter; it++) {
            memset(seen, 0, (size_t)N);
            for (int64_t i = 0; i < N; i++) {
                int64_t p = perm[it * N + i];
                if (p < 0 || p >= N || seen[p]) {
                    free(seen);
                    return ss__fail(SS_ERR_PARAM, fn, "perm[%lld] = %lld: row %lld "
                                    "of perm is not a permutation of 0..%lld",
                                    (long long)(it * N + i), (long long)p,
                                    (long long)it, (long long)(N - 1));
                }
                seen[p] = 1;
            }
        }
        free(seen);
    }
    return ss__check_finite(fn, "z", z, V * N * D);
}

typedef struct {
    const float *z;
    const int64_t *perm; /* (N) of this iteration, or NULL */
    int64_t V, N, D, w;
    double eps;
    double *Y;  /* (V, N, D) whitened rows */
    double *Ls; /* (N / w * V, D, D) Cholesky factors */
} wmse_ctx;

static int64_t row_of(const wmse_ctx *c, int64_t s, int64_t r) {
    int64_t i = s * c->w + r;
    return c->perm ? c->perm[i] : i;
}

/* Xc (w, D): centred rows of view v, sub-batch s. */
static void centred(const wmse_ctx *c, int64_t s, int64_t v, double *Xc) {
    int64_t w = c->w, D = c->D;
    for (int64_t r = 0; r < w; r++) {
        const float *src = c->z + (v * c->N + row_of(c, s, r)) * D;
        for (int64_t d = 0; d < D; d++) Xc[r * D + d] = src[d];
    }
    for (int64_t d = 0; d < D; d++) {
        double m = 0.0;
        for (int64_t r = 0; r < w; r++) m += Xc[r * D + d];
        m /= (double)w;
        for (int64_t r = 0; r < w; r++) Xc[r * D + d] -= m;
    }
}

/* Whitens every group; returns the first failing group (ngroups if none)
 * and its pivot in *info. -1: out of memory. */
static int64_t whiten_all(const wmse_ctx *c, int64_t *info) {
    int64_t D = c->D, w = c->w, ng = c->N / w * c->V, bad = ng;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(| : failed)
#endif
    {
        double *Xc = ss__malloc(sizeof(double) * (size_t)(w * D));
        if (!Xc) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t g = 0; g < ng; g++) {
            if (!Xc) continue;
            int64_t s = g / c->V, v = g % c->V;
            double *L = c->Ls + g * D * D;
            centred(c, s, v, Xc);
            ss__dgemm(1, 0, D, D, w, (1.0 - c->eps) / (double)(w - 1), Xc, D,
                      Xc, D, 0.0, L, D);
            for (int64_t d = 0; d < D; d++) L[d * D + d] += c->eps;
            int64_t got = ss__dpotrf_lower(L, D);
            if (got) {
#ifdef _OPENMP
#pragma omp critical(ss_wmse_bad)
#endif
                if (g < bad) bad = g, *info = got;
                continue;
            }
            ss__dtrsm_lower(0, 1, D, w, L, Xc); /* Y = Xc L^{-T} */
            for (int64_t r = 0; r < w; r++)
                memcpy(c->Y + (v * c->N + row_of(c, s, r)) * D, Xc + r * D,
                       sizeof(double) * (size_t)D);
        }
        ss__free(Xc);
    }
    return failed ? -1 : bad;
}

/* Declared in dist_geometry.h: sum over samples n < N and view pairs
 * u < v of cos(Y_u[n], Y_v[n]), Y: (V, N, D); with dY (zeroed here):
 * dY = k * its gradient. */
double ss__wmse_cos_pairs(const double *Y, double *dY, int64_t V, int64_t N,
                          int64_t D, double k) {
    double total = 0.0;
    if (dY) memset(dY, 0, sizeof(double) * (size_t)(V * N * D));
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : total) num_threads(ss__threads())
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t u = 0; u < V; u++)
            for (int64_t v = u + 1; v < V; v++) {
                const double *a = Y + (u * N + n) * D, *b = Y + (v * N + n) * D;
                double aa = 0, bb = 0, ab = 0;
                for (int64_t d = 0; d < D; d++)
                    aa += a[d] * a[d], bb += b[d] * b[d], ab += a[d] * b[d];
                double na = sqrt(aa), nb = sqrt(bb);
                double ia = 1.0 / (na > WMSE_NORM_EPS ? na : WMSE_NORM_EPS);
                double ib = 1.0 / (nb > WMSE_NORM_EPS ? nb : WMSE_NORM_EPS);
                double cs = ab * ia * ib;
                total += cs;
                if (!dY) continue;
                double ca = na > WMSE_NORM_EPS ? cs : 0.0, cb = nb > WMSE_NORM_EPS ? cs : 0.0;
                double *ga = dY + (u * N + n) * D, *gb = dY + (v * N + n) * D;
                for (int64_t d = 0; d < D; d++) {
                    ga[d] += k * (b[d] * ib - ca * a[d] * ia) * ia;
                    gb[d] += k * (a[d] * ia - cb * b[d] * ib) * ib;
                }
            }
    return total;
}

/* sum over view pairs u < v of 2 - 2 mean_n cos(Y_u[n], Y_v[n]); with dY:
 * dY = coef * its gradient (that of -2 cos / N per pair). */
static double pair_loss(const wmse_ctx *c, double *dY, double coef) {
    double total = ss__wmse_cos_pairs(c->Y, dY, c->V, c->N, c->D,
                                      -2.0 * coef / (double)c->N);
    return (double)(c->V * (c->V - 1)) - 2.0 * total / (double)c->N;
}

/* Declared in dist_geometry.h: T (D, D) = dSigma of one group from
 * Q = dY^T Y (D, D; overwritten) and the Cholesky factor L. */
void ss__wmse_sigma_grad(double *T, double *Q, const double *L, int64_t D) {
    /* Q = -tril(L^{-T} dY^T Y) = dL */
    ss__dtrsm_lower(1, 1, D, D, L, Q);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) Q[i * D + j] = j <= i ? -Q[i * D + j] : 0.0;
    /* T = Phi(L^T dL); T <- L^{-T} T L^{-1}; symmetrise */
    ss__dgemm(1, 0, D, D, D, 1.0, L, D, Q, D, 0.0, T, D);
    for (int64_t i = 0; i < D; i++) {
        for (int64_t j = i + 1; j < D; j++) T[i * D + j] = 0.0;
        T[i * D + i] *= 0.5;
    }
    ss__dtrsm_lower(1, 1, D, D, L, T);
    ss__dtrsm_lower(0, 0, D, D, L, T);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < i; j++) {
            double m = 0.5 * (T[i * D + j] + T[j * D + i]);
            T[i * D + j] = T[j * D + i] = m;
        }
}

/* dz += back-propagation of dY through every group's whitening. */
static int backprop_all(const wmse_ctx *c, const double *dY, float *dz) {
    int64_t D = c->D, w = c->w, ng = c->N / w * c->V;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(| : failed)
#endif
    {
        size_t wd = (size_t)(w * D), dd = (size_t)(D * D);
        double *buf = ss__malloc(sizeof(double) * (3 * wd + 2 * dd));
        if (!buf) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t g = 0; g < ng; g++) {
            if (!buf) continue;
            int64_t s = g / c->V, v = g % c->V;
            double *Xc = buf, *G = Xc + wd, *Yg = G + wd, *Q = Yg + wd, *T = Q + dd;
            const double *L = c->Ls + g * D * D;
            centred(c, s, v, Xc);
            for (int64_t r = 0; r < w; r++) {
                int64_t row = (v * c->N + row_of(c, s, r)) * D;
                memcpy(G + r * D, dY + row, sizeof(double) * (size_t)D);
                memcpy(Yg + r * D, c->Y + row, sizeof(double) * (size_t)D);
            }
            ss__dgemm(1, 0, D, D, w, 1.0, G, D, Yg, D, 0.0, Q, D);
            ss__wmse_sigma_grad(T, Q, L, D);
            /* dXc = dY L^{-1} + 2 (1 - eps) / (w - 1) Xc dSig */
            ss__dtrsm_lower(0, 0, D, w, L, G);
            ss__dgemm(0, 0, w, D, D, 2.0 * (1.0 - c->eps) / (double)(w - 1), Xc,
                      D, T, D, 1.0, G, D);
            for (int64_t d = 0; d < D; d++) {
                double m = 0.0;
                for (int64_t r = 0; r < w; r++) m += G[r * D + d];
                m /= (double)w;
                for (int64_t r = 0; r < w; r++) G[r * D + d] -= m;
            }
            for (int64_t r = 0; r < w; r++) {
                float *dst = dz + (v * c->N + row_of(c, s, r)) * D;
                for (int64_t d = 0; d < D; d++) dst[d] += (float)G[r * D + d];
            }
        }
        ss__free(buf);
    }
    return failed;
}

/* Forward (dz NULL) or backward: the loss, or dz += dloss * gradient. */
static ss_status wmse_run(const char *fn, float *loss, float *dz, float dloss,
                          const float *z, const int64_t *perm, int64_t V,
                          int64_t N, int64_t D, const ss_wmse_opts *o) {
    int64_t w = o->w_size, ng = N / w * V;
    size_t vnd = (size_t)(V * N * D);
    double *mem = ss__malloc(sizeof(double) * ((dz ? 2 : 1) * vnd +
                                               (size_t)(ng * D * D)));
    if (!mem) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    wmse_ctx c = {z, NULL, V, N, D, w, o->eps, mem, mem + vnd};
    double *dY = dz ? c.Ls + ng * D * D : NULL;
    double npairs = (double)(V * (V - 1) / 2), total = 0.0;
    double coef = (double)dloss / ((double)o->w_iter * npairs);
    ss_status st = SS_OK;
    for (int64_t it = 0; it < o->w_iter && st == SS_OK; it++) {
        c.perm = perm ? perm + it * N : NULL;
        int64_t info = 0, bad = whiten_all(&c, &info);
        if (bad < 0) {
            st = ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
        } else if (bad < ng) {
            st = ss__fail(SS_ERR_PARAM, fn, "the shrunk covariance of sub-batch "
                          "%lld, view %lld (iteration %lld) is not positive "
                          "definite (leading minor %lld); use eps > 0",
                          (long long)(bad / V), (long long)(bad % V),
                          (long long)it, (long long)info);
        } else {
            total += pair_loss(&c, dY, coef);
            if (dz && backprop_all(&c, dY, dz))
                st = ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
        }
    }
    if (st == SS_OK && loss) *loss = (float)(total / ((double)o->w_iter * npairs));
    ss__free(mem);
    return st;
}

ss_status ss_wmse_forward(float *loss, void *cache, const float *z,
                          const int64_t *perm, int64_t V, int64_t N,
                          int64_t D, const ss_wmse_opts *opts) {
    static const char fn[] = "ss_wmse_forward";
    ss_wmse_opts o = opts ? *opts : ss_wmse_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(wmse_check(fn, z, perm, V, N, D, &o));
    float l;
    SS_TRY(wmse_run(fn, &l, NULL, 0.0f, z, perm, V, N, D, &o));
    wmse_header h = {WMSE_MAGIC, V, N, D, o.w_size, o.w_iter, o.eps};
    memcpy(cache, &h, sizeof h);
    *loss = l;
    return SS_OK;
}

ss_status ss_wmse_backward(float *dz, float dloss, const void *cache,
                           const float *z, const int64_t *perm, int64_t V,
                           int64_t N, int64_t D, const ss_wmse_opts *opts) {
    static const char fn[] = "ss_wmse_backward";
    ss_wmse_opts o = opts ? *opts : ss_wmse_defaults();
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(wmse_check(fn, z, perm, V, N, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    wmse_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != WMSE_MAGIC || h.V != V || h.N != N || h.D != D ||
        h.w_size != o.w_size || h.w_iter != o.w_iter || h.eps != o.eps)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_wmse_forward with these "
                        "sizes and options");
    /* accumulate into a scratch copy so a failure leaves dz untouched */
    size_t n = (size_t)(V * N * D);
    float *g = ss__calloc(sizeof(float) * n);
    if (!g) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    ss_status st = wmse_run(fn, NULL, g, dloss, z, perm, V, N, D, &o);
    if (st == SS_OK)
        for (size_t i = 0; i < n; i++) dz[i] += g[i];
    ss__free(g);
    return st;
}
