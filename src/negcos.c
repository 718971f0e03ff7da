/*
 * negcos.c - negative cosine similarity (BYOL, SimSiam), one pair or the
 * symmetric two-view form. Formulas: selfsup.h.
 *
 * With n_p = max(||p||, eps), n_z = max(||z||, eps), cos = <p, z> / (n_p n_z):
 *     d cos / d p = z / (n_p n_z) - cos * p / n_p^2
 * which is torch 1.13's gradient (it clamps the squared norm out of the
 * autograd graph, so the clamped value also appears in the derivative).
 */
#include "dist_geometry.h" /* ss__negcos_check */
#include "internal.h"
#include "kernels/stats.h"

#include <string.h>

#define NC_MAGIC 0x31304f4343454e53ull /* "SNECCO01" */
#define NC_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D, pairs;
    float eps;
} nc_header;

/* Per row and pair, after the header: cos, n_p, n_z (doubles). */
#define NC_ROW 3

ss_negcos_opts ss_negcos_defaults(void) {
    ss_negcos_opts o = {1e-8f};
    return o;
}

static ss_status nc_check_sizes(const char *fn, int64_t N, int64_t D) {
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, N, D, 1);
}

static size_t nc_bytes(int64_t N, int64_t pairs) {
    return NC_HEADER_BYTES + (size_t)(pairs * N * NC_ROW) * sizeof(double);
}

size_t ss_negcos_cache_size(int64_t N, int64_t D) {
    if (nc_check_sizes("ss_negcos_cache_size", N, D) != SS_OK) return 0;
    return nc_bytes(N, 1);
}

size_t ss_negcos_sym_cache_size(int64_t N, int64_t D) {
    if (nc_check_sizes("ss_negcos_sym_cache_size", N, D) != SS_OK) return 0;
    return nc_bytes(N, 2);
}

/* Checks shared by every entry point (and the distributed ones, declared
 * in dist_geometry.h); names[] label the inputs. */
ss_status ss__negcos_check(const char *fn, const float *const *x,
                           const char *const *names, int nx, int64_t N,
                           int64_t D, const ss_negcos_opts *o) {
    for (int i = 0; i < nx; i++) SS_TRY(ss__check_ptr(fn, names[i], x[i]));
    SS_TRY(nc_check_sizes(fn, N, D));
    if (!(o->eps > 0.0f && isfinite(o->eps)))
        return ss__fail(SS_ERR_PARAM, fn, "eps must be finite and > 0, got %g",
                        (double)o->eps);
    for (int i = 0; i < nx; i++)
        SS_TRY(ss__check_finite(fn, names[i], x[i], N * D));
    return SS_OK;
}

/* Fills rows (N, NC_ROW) for one pair; returns sum_n -cos_n. */
static double nc_pair_forward(double *rows, float *losses, const float *p,
                              const float *z, int64_t N, int64_t D,
                              double eps) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++) {
        const float *pn = p + n * D, *zn = z + n * D;
        double pp = 0.0, zz = 0.0, pz = 0.0;
        for (int64_t d = 0; d < D; d++) {
            pp += (double)pn[d] * pn[d];
            zz += (double)zn[d] * zn[d];
            pz += (double)pn[d] * zn[d];
        }
        double np = fmax(sqrt(pp), eps), nz = fmax(sqrt(zz), eps);
        double c = pz / (np * nz);
        rows[n * NC_ROW] = c, rows[n * NC_ROW + 1] = np, rows[n * NC_ROW + 2] = nz;
        if (losses) losses[n] = (float)-c;
    }
    double total = 0.0; /* serial: the same sum for any thread count */
    for (int64_t n = 0; n < N; n++) total -= rows[n * NC_ROW];
    return total;
}

/* dp += w * dcos/dp (and dz likewise when non-NULL), w = -dloss * scale. */
static void nc_pair_backward(float *dp, float *dz, const double *rows,
                             const float *p, const float *z, int64_t N,
                             int64_t D, double w) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++) {
        const float *pn = p + n * D, *zn = z + n * D;
        double c = rows[n * NC_ROW], np = rows[n * NC_ROW + 1],
               nz = rows[n * NC_ROW + 2];
        double k = w / (np * nz), kp = w * c / (np * np), kz = w * c / (nz * nz);
        for (int64_t d = 0; d < D; d++) {
            dp[n * D + d] += (float)(k * zn[d] - kp * pn[d]);
            if (dz) dz[n * D + d] += (float)(k * pn[d] - kz * zn[d]);
        }
    }
}

static void nc_header_set(void *cache, int64_t N, int64_t D, int64_t pairs,
                          float eps) {
    nc_header h;
    memset(&h, 0, sizeof h);
    h.magic = NC_MAGIC, h.N = N, h.D = D, h.pairs = pairs, h.eps = eps;
    memcpy(cache, &h, sizeof h);
}

static ss_status nc_header_check(const void *cache, const char *fn, int64_t N,
                                 int64_t D, int64_t pairs, float eps) {
    nc_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != NC_MAGIC || h.N != N || h.D != D || h.pairs != pairs ||
        h.eps != eps)
        return ss__fail(SS_ERR_STATE, fn,
                        "cache was not written by the matching forward call "
                        "(same sizes and options)");
    return SS_OK;
}

static const double *nc_rows(const void *cache) {
    return (const double *)((const char *)cache + NC_HEADER_BYTES);
}

/* The entry points' checks after their own output pointers: loss (forward
 * only), cache, dloss (backward only), the inputs and options, then
 * (backward) the cache header for nx / 2 pairs. */
static ss_status nc_forward_check(const char *fn, const float *loss,
                                  const void *cache, const float *const *x,
                                  const char *const *names, int nx, int64_t N,
                                  int64_t D, const ss_negcos_opts *o) {
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    return ss__negcos_check(fn, x, names, nx, N, D, o);
}

static ss_status nc_backward_check(const char *fn, const void *cache,
                                   float dloss, const float *const *x,
                                   const char *const *names, int nx, int64_t N,
                                   int64_t D, const ss_negcos_opts *o) {
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(ss__negcos_check(fn, x, names, nx, N, D, o));
    return nc_header_check(cache, fn, N, D, nx / 2, o->eps);
}

ss_status ss_negcos_forward(float *loss, float *losses, void *cache,
                            const float *p, const float *z, int64_t N,
                            int64_t D, const ss_negcos_opts *opts) {
    static const char *fn = "ss_negcos_forward";
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    const float *x[] = {p, z};
    const char *names[] = {"p", "z"};
    SS_TRY(nc_forward_check(fn, loss, cache, x, names, 2, N, D, &o));
    double *rows = (double *)((char *)cache + NC_HEADER_BYTES);
    double total = nc_pair_forward(rows, losses, p, z, N, D, o.eps);
    nc_header_set(cache, N, D, 1, o.eps);
    *loss = (float)(total / (double)N);
    return SS_OK;
}

ss_status ss_negcos_backward(float *dp, float *dz, float dloss,
                             const void *cache, const float *p, const float *z,
                             int64_t N, int64_t D, const ss_negcos_opts *opts) {
    static const char *fn = "ss_negcos_backward";
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    const float *x[] = {p, z};
    const char *names[] = {"p", "z"};
    SS_TRY(ss__check_ptr(fn, "dp", dp));
    SS_TRY(nc_backward_check(fn, cache, dloss, x, names, 2, N, D, &o));
    nc_pair_backward(dp, dz, nc_rows(cache), p, z, N, D,
                     -(double)dloss / (double)N);
    return SS_OK;
}

ss_status ss_negcos_sym_forward(float *loss, float *losses, void *cache,
                                const float *p1, const float *p2,
                                const float *z1, const float *z2, int64_t N,
                                int64_t D, const ss_negcos_opts *opts) {
    static const char *fn = "ss_negcos_sym_forward";
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    const float *x[] = {p1, p2, z1, z2};
    const char *names[] = {"p1", "p2", "z1", "z2"};
    SS_TRY(nc_forward_check(fn, loss, cache, x, names, 4, N, D, &o));
    double *rows = (double *)((char *)cache + NC_HEADER_BYTES);
    double t = nc_pair_forward(rows, losses, p1, z2, N, D, o.eps);
    t += nc_pair_forward(rows + N * NC_ROW, losses ? losses + N : NULL, p2, z1,
                         N, D, o.eps);
    nc_header_set(cache, N, D, 2, o.eps);
    *loss = (float)(0.5 * t / (double)N);
    return SS_OK;
}

ss_status ss_negcos_sym_backward(float *dp1, float *dp2, float *dz1,
                                 float *dz2, float dloss, const void *cache,
                                 const float *p1, const float *p2,
                                 const float *z1, const float *z2, int64_t N,
                                 int64_t D, const ss_negcos_opts *opts) {
    static const char *fn = "ss_negcos_sym_backward";
    ss_negcos_opts o = opts ? *opts : ss_negcos_defaults();
    const float *x[] = {p1, p2, z1, z2};
    const char *names[] = {"p1", "p2", "z1", "z2"};
    SS_TRY(ss__check_ptr(fn, "dp1", dp1));
    SS_TRY(ss__check_ptr(fn, "dp2", dp2));
    SS_TRY(nc_backward_check(fn, cache, dloss, x, names, 4, N, D, &o));
    double w = -0.5 * (double)dloss / (double)N;
    const double *rows = nc_rows(cache);
    nc_pair_backward(dp1, dz2, rows, p1, z2, N, D, w);
    nc_pair_backward(dp2, dz1, rows + N * NC_ROW, p2, z1, N, D, w);
    return SS_OK;
}
