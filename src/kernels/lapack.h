/*
 * lapack.h - the double-precision dense linear algebra the whitening,
 * nuclear-norm and coding-rate losses need: GEMM, Cholesky, triangular
 * solves and a thin SVD, all row-major.
 *
 * With OpenBLAS (SS_HAVE_CBLAS) these call cblas_dgemm / cblas_dtrsm and
 * the Fortran LAPACK symbols dpotrf_ / dgesdd_ that Debian's libopenblas
 * exports; without it, portable loops (Cholesky, substitution, one-sided
 * Jacobi SVD): correct, slower. Every call runs on the calling thread, so
 * they may be used inside OpenMP regions.
 */
#ifndef SS_KERNELS_LAPACK_H
#define SS_KERNELS_LAPACK_H

#include <stdint.h>

/* C (m, n) = alpha op(A) op(B) + beta C, as ss__sgemm but in double. */
void ss__dgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
               double alpha, const double *A, int64_t lda, const double *B,
               int64_t ldb, double beta, double *C, int64_t ldc);

/* In place: A (n, n) symmetric -> its lower Cholesky factor L (A = L L^T);
 * the strict upper triangle is zeroed. Returns 0, or j >= 1 when the
 * leading minor of order j is not positive definite (A is then garbage). */
int64_t ss__dpotrf_lower(double *A, int64_t n);

/* Triangular solves with L (n, n) lower, in place on B:
 *   left  = 1: B (n, m) <- op(L)^{-1} B
 *   left  = 0: B (m, n) <- B op(L)^{-1}
 * op(L) = L^T when trans, else L. */
void ss__dtrsm_lower(int left, int trans, int64_t n, int64_t m,
                     const double *L, double *B);

/* Thin SVD of A (m, n), k = min(m, n): A = U diag(S) Vt. A is destroyed.
 * S: (k) descending. U: (m, k) and Vt: (k, n), or both NULL (values only).
 * Returns 0, or nonzero when the SVD did not converge or memory ran out. */
int ss__dsvd(double *A, int64_t m, int64_t n, double *S, double *U,
             double *Vt);

#endif
