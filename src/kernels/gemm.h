/*
 * gemm.h - row-major single-precision GEMM used by the tiled kernels.
 *
 * C (m, n) = alpha * op(A) * op(B) + beta * C, row-major, with
 * op(X) = X or X^T. A call runs on the calling thread only: the tiled
 * kernels parallelise across tiles themselves. OpenBLAS when available,
 * else a portable blocked loop (correct, slower).
 */
#ifndef SS_KERNELS_GEMM_H
#define SS_KERNELS_GEMM_H

#include <stdint.h>

/* trans_a: A is stored (k, m) instead of (m, k). trans_b: B is stored
 * (n, k) instead of (k, n). lda/ldb/ldc are row strides in elements. */
void ss__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
               float alpha, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc);

/* Same product, but BLAS may use its own threads (for one big call made
 * outside any parallel region). */
void ss__sgemm_threaded(int trans_a, int trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C,
                        int64_t ldc);

#endif
