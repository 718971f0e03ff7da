/*
 * stats.h - per-column (batch) statistics and symmetric Gram products for
 * the redundancy-reduction losses (Barlow Twins, VICReg).
 *
 * Matrices are row-major (N, D): N samples, D columns (dimensions).
 * Column loops are parallel over column blocks, so every column sum is
 * formed in the same order whatever the thread count.
 */
#ifndef SS_KERNELS_STATS_H
#define SS_KERNELS_STATS_H

#include <stdint.h>

/* Element count above which the O(N D) streaming loops of the redundancy
 * losses go parallel. Below it a serial pass takes about a millisecond,
 * less than the barriers of a parallel region cost on a loaded machine. */
#define SS__PAR_STREAM ((int64_t)1 << 20)

/* mean: (D) column means; m2: (D) sums of squared deviations
 * sum_n (x_nd - mean_d)^2 (two passes, in double). */
void ss__col_stats(double *mean, double *m2, const float *x, int64_t N,
                   int64_t D);

/* y_nd = (x_nd - mean_d) * scale_d (scale NULL: 1). */
void ss__col_center(float *y, const float *x, const double *mean,
                    const double *scale, int64_t N, int64_t D);

/* s_d = sum_n x_nd * y_nd in double (y NULL: s_d = sum_n x_nd). */
void ss__col_dot(double *s, const float *x, const float *y, int64_t N,
                 int64_t D);

/* dx_nd += a_d * g_nd + b_d + c_d * y_nd; a NULL skips the g term, b NULL
 * the b term, c NULL the y term. The closing step of every backward
 * through batch statistics. */
void ss__col_apply(float *dx, const float *g, const double *a, const double *b,
                   const double *c, const float *y, int64_t N, int64_t D);

/* G = alpha * X X^T (trans = 0; X: (n, k), G: (n, n)) or
 * G = alpha * X^T X (trans = 1; X: (k, n), G: (n, n)).
 * Computes the upper-triangle tiles in parallel (GEMM per tile, half the
 * work of a GEMM) and mirrors them, so G is full and exactly symmetric. */
void ss__syrk(float *G, const float *X, int64_t n, int64_t k, int trans,
              float alpha);

/* ss__sgemm's product (same arguments), with the output split into tiles
 * that OpenMP threads compute with single-threaded GEMMs. One thread pool
 * (ours) instead of OpenMP's and OpenBLAS's spinning side by side, which
 * costs 5-10x on a loaded 2-core machine. Call outside parallel regions. */
void ss__gemm_par(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc);

/* sum_ij X_ij Y_ij in double for (n, n) X, Y; Y NULL: sum_ij X_ij^2;
 * offdiag: only i != j. part: (n) doubles of scratch. Fixed summation
 * order (per-row partials), so the result does not depend on the thread
 * count. */
double ss__frob_dot(const float *X, const float *Y, int64_t n, int offdiag,
                    double *part);

#endif
