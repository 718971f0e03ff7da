/*
 * tgemm.h - register-blocked single-thread GEMM for the similarity tiles
 * (a few hundred rows, K = D or a tile edge), independent of the BLAS
 * build. It exists because a DYNAMIC_ARCH OpenBLAS that does not know the
 * CPU falls back to its SSE3 "Prescott" kernels (seen with 0.3.21 on
 * an AVX-512 Xeon: 5x slower than its AVX-512 kernels). At the tile shapes
 * this kernel matches OpenBLAS's AVX-512 kernels (NT-Xent N = 4096, D = 128,
 * one thread: 0.35 s here vs 0.39 s with OPENBLAS_CORETYPE=SkylakeX).
 *
 * C (m, n) = A (m, k) B (k, n)   (accumulate = 0)
 * C (m, n) += A (m, k) B (k, n)  (accumulate = 1)
 * with A read through strides, a(i, p) = A[i * a_row + p * a_col] (so A or
 * A^T of a row-major matrix), B row-major with row stride ldb, C with ldc.
 */
#ifndef SS_KERNELS_TGEMM_H
#define SS_KERNELS_TGEMM_H

#include <stdint.h>

/* 1 when ss__tgemm has a SIMD kernel in this build (AVX-512F, or AVX2 +
 * FMA); otherwise it forwards to ss__sgemm. */
int ss__tgemm_native(void);

/* Floats of scratch ss__tgemm needs for inner dimension k. */
int64_t ss__tgemm_scratch(int64_t k);

/* scratch: ss__tgemm_scratch(k) floats, private to the calling thread. */
void ss__tgemm(int64_t m, int64_t n, int64_t k, const float *A, int64_t a_row,
               int64_t a_col, const float *B, int64_t ldb, int accumulate,
               float *C, int64_t ldc, float *scratch);

/* dst (D, n) with row stride ldd = src (n, D)^T, src row-major: the B
 * operand ss__tgemm needs for a product with src^T. 16 x 16 blocks. */
void ss__transpose(float *dst, int64_t ldd, const float *src, int64_t n,
                   int64_t D);

/* Row stride for a transposed tile of n columns: padded off a power of two
 * so that its rows do not all fall into the same L1 sets. */
#define SS__TGEMM_LDT(n) ((n) + 16)

#endif
