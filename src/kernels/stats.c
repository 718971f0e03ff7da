/* stats.c - column statistics and tiled symmetric Gram products. */
#include "stats.h"
#include "../internal.h"
#include "gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Columns per parallel block: the block's double accumulators stay in L1
 * while the rows stream by. */
#define COL_BLOCK 256
/* Enough GEMM work to be worth a parallel region. */
#define PAR_MIN 32768

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void ss__col_stats(double *mean, double *m2, const float *x, int64_t N,
                   int64_t D) {
    int64_t nb = (D + COL_BLOCK - 1) / COL_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t d0 = blk * COL_BLOCK, d1 = min64(D, d0 + COL_BLOCK);
        for (int64_t d = d0; d < d1; d++) mean[d] = 0.0, m2[d] = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = d0; d < d1; d++) mean[d] += x[n * D + d];
        for (int64_t d = d0; d < d1; d++) mean[d] /= (double)N;
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = d0; d < d1; d++) {
                double t = x[n * D + d] - mean[d];
                m2[d] += t * t;
            }
    }
}

void ss__col_center(float *y, const float *x, const double *mean,
                    const double *scale, int64_t N, int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            double t = x[n * D + d] - mean[d];
            y[n * D + d] = (float)(scale ? t * scale[d] : t);
        }
}

void ss__col_dot(double *s, const float *x, const float *y, int64_t N,
                 int64_t D) {
    int64_t nb = (D + COL_BLOCK - 1) / COL_BLOCK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t d0 = blk * COL_BLOCK, d1 = min64(D, d0 + COL_BLOCK);
        for (int64_t d = d0; d < d1; d++) s[d] = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = d0; d < d1; d++)
                s[d] += y ? (double)x[n * D + d] * y[n * D + d] : x[n * D + d];
    }
}

void ss__col_apply(float *dx, const float *g, const double *a, const double *b,
                   const double *c, const float *y, int64_t N, int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            int64_t i = n * D + d;
            double v = b ? b[d] : 0.0;
            if (a) v += a[d] * g[i];
            if (c) v += c[d] * y[i];
            dx[i] += (float)v;
        }
}

void ss__gemm_par(int ta, int tb, int64_t m, int64_t n, int64_t k,
                  float alpha, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc) {
    int threads = ss__threads();
    int64_t T = 512, nm, nn;
    for (;; T /= 2) { /* several tiles per thread, none tiny */
        nm = (m + T - 1) / T, nn = (n + T - 1) / T;
        if (nm * nn >= 4 * (int64_t)threads || T <= 128) break;
    }
    int64_t ntiles = nm * nn;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) \
    if (ntiles > 1 && m * n * k > PAR_MIN)
#endif
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t i0 = (t / nn) * T, j0 = (t % nn) * T;
        int64_t mi = min64(T, m - i0), nj = min64(T, n - j0);
        const float *a = ta ? A + i0 : A + i0 * lda;
        const float *b = tb ? B + j0 * ldb : B + j0;
        ss__sgemm(ta, tb, mi, nj, k, alpha, a, lda, b, ldb, beta, C + i0 * ldc + j0,
                  ldc);
    }
}

/* Tile edge for ss__syrk: large enough for an efficient GEMM, small enough
 * to give every thread several upper-triangle tiles. */
static int64_t syrk_tile(int64_t n, int threads) {
    int64_t t = 512;
    while (t > 64) {
        int64_t nt = (n + t - 1) / t;
        if (nt * (nt + 1) / 2 >= 4 * (int64_t)threads) break;
        t /= 2;
    }
    return t;
}

void ss__syrk(float *G, const float *X, int64_t n, int64_t k, int trans,
              float alpha) {
    int threads = ss__threads();
    int64_t T = syrk_tile(n, threads), nt = (n + T - 1) / T;
    int64_t npairs = nt * (nt + 1) / 2;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) \
    if (npairs > 1 && n * n * k > PAR_MIN)
#endif
    for (int64_t p = 0; p < npairs; p++) {
        /* pair p -> tile (bi, bj), bi <= bj, row-major over the triangle */
        int64_t bi = 0, rem = p;
        while (rem >= nt - bi) rem -= nt - bi, bi++;
        int64_t bj = bi + rem;
        int64_t i0 = bi * T, j0 = bj * T;
        int64_t mi = min64(T, n - i0), mj = min64(T, n - j0);
        float *g = G + i0 * n + j0;
        if (!trans)
            ss__sgemm(0, 1, mi, mj, k, alpha, X + i0 * k, k, X + j0 * k, k,
                      0.0f, g, n);
        else
            ss__sgemm(1, 0, mi, mj, k, alpha, X + i0, n, X + j0, n, 0.0f, g,
                      n);
    }
    /* mirror the strict upper triangle (diagonal tiles were computed
     * whole; copying makes them exactly symmetric as well) */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) \
    if (n * n > SS__PAR_STREAM)
#endif
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++)
            G[i * n + j] = G[j * n + i]; /* exact symmetry, tiles too */
}

double ss__frob_dot(const float *X, const float *Y, int64_t n, int offdiag,
                    double *part) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (n * n > SS__PAR_STREAM)
#endif
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        const float *x = X + i * n, *y = Y ? Y + i * n : x;
        for (int64_t j = 0; j < n; j++) s += (double)x[j] * y[j];
        if (offdiag) s -= (double)x[i] * y[i];
        part[i] = s;
    }
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += part[i];
    return total;
}
