/*
 * koleo.c - the KoLeo regulariser (Sablayrolles et al. 2019) as DINOv2's
 * KoLeoLoss: -mean_i log(d_i + eps), d_i the distance of u_i to its nearest
 * other row, u = x / max(||x||, eps).
 *
 * The neighbour search keeps, per row, the running argmax of <u_i, u_j>
 * over GEMM tiles (never the N x N matrix). Rows are split between threads
 * and each scans the column tiles in order, taking the lowest index on
 * ties, so the neighbours do not depend on the thread count. Distances
 * and gradients are then O(N D) in double:
 *     e_i = u_i - u_n(i) + eps,  d_i = ||e_i||,
 *     dL/du_i += -(1/N) e_i / (d_i (d_i + eps)),  dL/du_n(i) -= the same,
 * followed by the normalisation backward.
 */
#include "dist_geometry.h" /* ss__koleo_rows_nn */
#include "internal.h"
#include "kernels/gemm.h"

#include <string.h>

#define KL_MAGIC 0x31304f454c4f4b53ull /* "SKOLEO01" */
#define KL_TILE 128
#define KL_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D;
    float eps;
} kl_header;

ss_koleo_opts ss_koleo_defaults(void) {
    ss_koleo_opts o = {1e-8f};
    return o;
}

static ss_status kl_check_sizes(const char *fn, int64_t N, int64_t D,
                                int64_t min_n) {
    SS_TRY(ss__check_size(fn, "N", N, min_n));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, N, D, 1);
}

size_t ss_koleo_cache_size(int64_t N, int64_t D) {
    if (kl_check_sizes("ss_koleo_cache_size", N, D, 2) != SS_OK) return 0;
    return KL_HEADER_BYTES + sizeof(int64_t) * (size_t)N;
}

/* Declared in dist_geometry.h: the arguments' checks with N >= min_n. */
ss_status ss__koleo_check(const char *fn, const float *x, int64_t N,
                          int64_t min_n, int64_t D, const ss_koleo_opts *o) {
    SS_TRY(ss__check_ptr(fn, "x", x));
    SS_TRY(kl_check_sizes(fn, N, D, min_n));
    SS_TRY(ss__check_positive(fn, "eps", o->eps));
    return ss__check_finite(fn, "x", x, N * D);
}

/* u (N, D) float rows for the search; inv (N) = 1 / max(||x||, eps). */
static void kl_normalize(float *u, double *inv, const float *x, int64_t N,
                         int64_t D, double eps) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < N; i++) {
        double q = 0.0;
        for (int64_t d = 0; d < D; d++) q += (double)x[i * D + d] * x[i * D + d];
        double n = sqrt(q);
        inv[i] = 1.0 / (n > eps ? n : eps);
        for (int64_t d = 0; d < D; d++) u[i * D + d] = (float)(x[i * D + d] * inv[i]);
    }
}

/* Declared in dist_geometry.h (the distributed loss runs it on its rows
 * [rbeg, rend) of the gathered u): nn[i - rbeg] = the nearest other row
 * of row i among all N. Returns nonzero when a tile could not be
 * allocated. */
int ss__koleo_rows_nn(int64_t *nn, const float *u, int64_t N, int64_t D,
                      int64_t rbeg, int64_t rend) {
    int64_t ntile = (N + KL_TILE - 1) / KL_TILE;
    int64_t nrt = (rend - rbeg + KL_TILE - 1) / KL_TILE;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(ss__threads()) reduction(| : failed)
#endif
    {
        float *S = ss__malloc(sizeof(float) * KL_TILE * KL_TILE);
        float best[KL_TILE];
        if (!S) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ti = 0; ti < nrt; ti++) {
            if (!S) continue;
            int64_t r0 = rbeg + ti * KL_TILE;
            int64_t nr = rend - r0 < KL_TILE ? rend - r0 : KL_TILE;
            int64_t *nt = nn + (r0 - rbeg); /* this tile's rows */
            for (int64_t i = 0; i < nr; i++) best[i] = -INFINITY, nt[i] = -1;
            for (int64_t tj = 0; tj < ntile; tj++) {
                int64_t c0 = tj * KL_TILE, nc = N - c0 < KL_TILE ? N - c0 : KL_TILE;
                ss__sgemm(0, 1, nr, nc, D, 1.0f, u + r0 * D, D, u + c0 * D, D,
                          0.0f, S, KL_TILE);
                for (int64_t i = 0; i < nr; i++)
                    for (int64_t j = 0; j < nc; j++) {
                        float s = S[i * KL_TILE + j];
                        if (c0 + j != r0 + i && (s > best[i] || nt[i] < 0))
                            best[i] = s, nt[i] = c0 + j;
                    }
            }
        }
        ss__free(S);
    }
    return failed;
}

static ss_status kl_neighbors(const char *fn, int64_t *nn, const float *u,
                              int64_t N, int64_t D) {
    if (ss__koleo_rows_nn(nn, u, N, D, 0, N))
        return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate a tile");
    return SS_OK;
}

/* e = u_i - u_j + eps in double, from x and inv; returns ||e||. */
static double kl_diff(double *e, const float *x, const double *inv, int64_t i,
                      int64_t j, int64_t D, double eps) {
    double q = 0.0;
    for (int64_t d = 0; d < D; d++) {
        e[d] = x[i * D + d] * inv[i] - x[j * D + d] * inv[j] + eps;
        q += e[d] * e[d];
    }
    return sqrt(q);
}

/* Declared in dist_geometry.h. */
void ss__koleo_normalize(float *u, double *inv, const float *x, int64_t N,
                         int64_t D, double eps) {
    kl_normalize(u, inv, x, N, D, eps);
}

double ss__koleo_diff(double *e, const float *x, const double *inv, int64_t i,
                      int64_t j, int64_t D, double eps) {
    return kl_diff(e, x, inv, i, j, D, eps);
}

ss_status ss_koleo_forward(float *loss, float *losses, void *cache,
                           const float *x, int64_t N, int64_t D,
                           const ss_koleo_opts *opts) {
    static const char fn[] = "ss_koleo_forward";
    ss_koleo_opts o = opts ? *opts : ss_koleo_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__koleo_check(fn, x, N, 2, D, &o));
    size_t nd = (size_t)(N * D);
    void *mem = ss__malloc(sizeof(float) * nd + sizeof(double) * (size_t)(N + D));
    if (!mem) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    double *inv = mem, *e = inv + N;
    float *u = (float *)(e + D);
    int64_t *nn = (int64_t *)((char *)cache + KL_HEADER_BYTES);
    kl_normalize(u, inv, x, N, D, o.eps);
    ss_status st = kl_neighbors(fn, nn, u, N, D);
    if (st != SS_OK) {
        ss__free(mem);
        return st;
    }
    double total = 0.0;
    for (int64_t i = 0; i < N; i++) {
        double li = -log(kl_diff(e, x, inv, i, nn[i], D, o.eps) + o.eps);
        if (losses) losses[i] = (float)li;
        total += li;
    }
    kl_header h = {KL_MAGIC, N, D, o.eps};
    memcpy(cache, &h, sizeof h);
    *loss = (float)(total / (double)N);
    ss__free(mem);
    return SS_OK;
}

/* Declared in dist_geometry.h: dx (N, D) += the normalisation backward of
 * gu (N, D) = dL/du. u = x inv: du/dx = inv (I - u u^T) unless clamped
 * (then inv I). */
void ss__koleo_normalize_backward(float *dx, const double *gu, const float *x,
                                  const double *inv, int64_t N, int64_t D,
                                  double eps) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(ss__threads())
#endif
    for (int64_t i = 0; i < N; i++) {
        const double *g = gu + i * D;
        double q = 0.0, dot = 0.0;
        for (int64_t d = 0; d < D; d++) q += (double)x[i * D + d] * x[i * D + d];
        int clamped = !(sqrt(q) > eps);
        for (int64_t d = 0; d < D; d++) dot += g[d] * x[i * D + d] * inv[i];
        for (int64_t d = 0; d < D; d++) {
            double ud = x[i * D + d] * inv[i];
            dx[i * D + d] += (float)(inv[i] * (g[d] - (clamped ? 0.0 : dot * ud)));
        }
    }
}

ss_status ss_koleo_backward(float *dx, float dloss, const void *cache,
                            const float *x, int64_t N, int64_t D,
                            const ss_koleo_opts *opts) {
    static const char fn[] = "ss_koleo_backward";
    ss_koleo_opts o = opts ? *opts : ss_koleo_defaults();
    SS_TRY(ss__check_ptr(fn, "dx", dx));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__koleo_check(fn, x, N, 2, D, &o));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    kl_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != KL_MAGIC || h.N != N || h.D != D || h.eps != o.eps)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_koleo_forward with these "
                        "sizes and options");
    const int64_t *nn = (const int64_t *)((const char *)cache + KL_HEADER_BYTES);
    for (int64_t i = 0; i < N; i++)
        if (nn[i] < 0 || nn[i] >= N || nn[i] == i)
            return ss__fail(SS_ERR_PARAM, fn, "cache is corrupt: neighbour "
                            "of row %lld is %lld", (long long)i, (long long)nn[i]);
    size_t nd = (size_t)(N * D);
    double *mem = ss__calloc(sizeof(double) * (nd + (size_t)(N + D)));
    if (!mem) return ss__fail(SS_ERR_NOMEM, fn, "cannot allocate workspace");
    double *gu = mem, *inv = gu + nd, *e = inv + N;
    for (int64_t i = 0; i < N; i++) {
        double q = 0.0;
        for (int64_t d = 0; d < D; d++) q += (double)x[i * D + d] * x[i * D + d];
        double n = sqrt(q);
        inv[i] = 1.0 / (n > o.eps ? n : o.eps);
    }
    /* serial: row n(i) receives from several i */
    for (int64_t i = 0; i < N; i++) {
        double di = kl_diff(e, x, inv, i, nn[i], D, o.eps);
        if (di == 0.0) continue; /* torch: norm'(0) = 0 */
        double w = -(double)dloss / ((double)N * di * (di + o.eps));
        double *gi = gu + i * D, *gj = gu + nn[i] * D;
        for (int64_t d = 0; d < D; d++) gi[d] += w * e[d], gj[d] -= w * e[d];
    }
    ss__koleo_normalize_backward(dx, gu, x, inv, N, D, o.eps);
    ss__free(mem);
    return SS_OK;
}
