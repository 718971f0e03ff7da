/* lapack.c - double GEMM, Cholesky, triangular solves, thin SVD
 * (lapack.h): OpenBLAS / LAPACK when built with it, portable otherwise. */
#include "lapack.h"
#include "../internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef SS_HAVE_CBLAS
#include <cblas.h>

/* Fortran LAPACK from libopenblas (LP64). The trailing size_t is the
 * hidden length of each character argument (gfortran ABI). */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda,
             int *info, size_t uplo_len);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a,
             const int *lda, double *s, double *u, const int *ldu,
             double *vt, const int *ldvt, double *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);
#endif

#if defined(SS_HAVE_CBLAS) && defined(SS_HAVE_OPENBLAS_THREADS)
int openblas_get_parallel(void);
void openblas_set_num_threads(int);
/* As gemm.c: the pthreads OpenBLAS must not start a pool inside our
 * OpenMP threads. */
static void blas_single_thread(void) {
    static int done; /* benign race: every writer stores the same value */
    if (done) return;
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
    done = 1;
}
#elif defined(SS_HAVE_CBLAS)
static void blas_single_thread(void) {}
#endif

#ifdef SS_HAVE_CBLAS
/* LAPACK takes int sizes. */
static int fits_int(int64_t a, int64_t b) {
    return a >= 0 && b >= 0 && a < INT32_MAX / 2 && b < INT32_MAX / 2;
}
#endif

/* ---- GEMM ------------------------------------------------------------------ */

static void dgemm_portable(int ta, int tb, int64_t m, int64_t n, int64_t k,
                           double alpha, const double *A, int64_t lda,
                           const double *B, int64_t ldb, double beta,
                           double *C, int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        double *c = C + i * ldc;
        if (beta == 0.0)
            for (int64_t j = 0; j < n; j++) c[j] = 0.0;
        else if (beta != 1.0)
            for (int64_t j = 0; j < n; j++) c[j] *= beta;
        for (int64_t p = 0; p < k; p++) {
            double a = alpha * (ta ? A[p * lda + i] : A[i * lda + p]);
            if (a == 0.0) continue;
            if (!tb) {
                const double *b = B + p * ldb;
                for (int64_t j = 0; j < n; j++) c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < n; j++) c[j] += a * B[j * ldb + p];
            }
        }
    }
}

void ss__dgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
               const double *A, int64_t lda, const double *B, int64_t ldb,
               double beta, double *C, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
#ifdef SS_HAVE_CBLAS
    if (k > 0 && fits_int(m, n) && fits_int(k, lda) && fits_int(ldb, ldc)) {
        blas_single_thread();
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                    alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
#endif
    dgemm_portable(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- Cholesky ----------------------------------------------------------------- */

static int64_t potrf_portable(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double *aj = A + j * n;
        double d = aj[j];
        for (int64_t p = 0; p < j; p++) d -= aj[p] * aj[p];
        if (!(d > 0.0) || !isfinite(d)) return j + 1;
        d = sqrt(d);
        aj[j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double *ai = A + i * n, s = ai[j];
            for (int64_t p = 0; p < j; p++) s -= ai[p] * aj[p];
            ai[j] = s / d;
        }
    }
    return 0;
}

int64_t ss__dpotrf_lower(double *A, int64_t n) {
    int64_t info = -1;
#ifdef SS_HAVE_CBLAS
    if (fits_int(n, n)) {
        /* row-major lower L == column-major upper U, A = U^T U */
        int ni = (int)n, got = 0;
        blas_single_thread();
        dpotrf_("U", &ni, A, &ni, &got, 1);
        info = got;
    }
#endif
    if (info < 0) info = potrf_portable(A, n);
    if (info != 0) return info;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) A[i * n + j] = 0.0;
    return 0;
}

/* ---- triangular solves ---------------------------------------------------------- */

/* One right-hand side x (length n, stride s): op(L) x = b in place. */
static void trsv(int trans, int64_t n, const double *L, double *x,
                 int64_t s) {
    if (!trans) {
        for (int64_t i = 0; i < n; i++) {
            double v = x[i * s];
            for (int64_t p = 0; p < i; p++) v -= L[i * n + p] * x[p * s];
            x[i * s] = v / L[i * n + i];
        }
    } else {
        for (int64_t i = n - 1; i >= 0; i--) {
            double v = x[i * s];
            for (int64_t p = i + 1; p < n; p++) v -= L[p * n + i] * x[p * s];
            x[i * s] = v / L[i * n + i];
        }
    }
}

void ss__dtrsm_lower(int left, int trans, int64_t n, int64_t m,
                     const double *L, double *B) {
    if (n <= 0 || m <= 0) return;
#ifdef SS_HAVE_CBLAS
    if (fits_int(n, m)) {
        blas_single_thread();
        if (left)
            cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower,
                        trans ? CblasTrans : CblasNoTrans, CblasNonUnit,
                        (int)n, (int)m, 1.0, L, (int)n, B, (int)m);
        else
            cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower,
                        trans ? CblasTrans : CblasNoTrans, CblasNonUnit,
                        (int)m, (int)n, 1.0, L, (int)n, B, (int)n);
        return;
    }
#endif
    if (left) { /* columns of B (n, m) */
        for (int64_t c = 0; c < m; c++) trsv(trans, n, L, B + c, m);
    } else { /* X op(L) = B  <=>  op(L)^T X^T = B^T: rows of B (m, n) */
        for (int64_t r = 0; r < m; r++) trsv(!trans, n, L, B + r * n, 1);
    }
}

/* ---- SVD ---------------------------------------------------------------------------- */

/* One-sided Jacobi (Hestenes) on the q columns (length p) of W, stored
 * column by column: W <- W J, V <- V J until the columns are orthogonal.
 * Then W = U diag(S), A = U diag(S) V^T. */
static int jacobi_cols(double *W, int64_t p, int64_t q, double *V) {
    for (int64_t j = 0; j < q; j++)
        for (int64_t i = 0; i < q; i++) V[j * q + i] = i == j;
    for (int sweep = 0; sweep < 80; sweep++) {
        int rotated = 0;
        for (int64_t j = 0; j < q; j++)
            for (int64_t k = j + 1; k < q; k++) {
                double *wj = W + j * p, *wk = W + k * p;
                double a = 0, b = 0, g = 0;
                for (int64_t i = 0; i < p; i++)
                    a += wj[i] * wj[i], b += wk[i] * wk[i], g += wj[i] * wk[i];
                if (!(fabs(g) > 1e-15 * sqrt(a * b)) || g == 0.0) continue;
                rotated = 1;
                double zeta = (b - a) / (2.0 * g);
                double t = (zeta >= 0 ? 1.0 : -1.0) /
                           (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
                for (int64_t i = 0; i < p; i++) {
                    double x = wj[i], y = wk[i];
                    wj[i] = c * x - s * y, wk[i] = s * x + c * y;
                }
                double *vj = V + j * q, *vk = V + k * q;
                for (int64_t i = 0; i < q; i++) {
                    double x = vj[i], y = vk[i];
                    vj[i] = c * x - s * y, vk[i] = s * x + c * y;
                }
            }
        if (!rotated) return 0;
    }
    return 1;
}

static int svd_portable(double *A, int64_t m, int64_t n, double *S,
                        double *U, double *Vt) {
    /* columns of A (m >= n) or of A^T (m < n) */
    int tall = m >= n;
    int64_t p = tall ? m : n, q = tall ? n : m;
    double *W = malloc(sizeof(double) * (size_t)(p * q + q * q));
    int64_t *order = malloc(sizeof(int64_t) * (size_t)q);
    if (!W || !order) {
        free(W), free(order);
        return 1;
    }
    double *V = W + p * q;
    for (int64_t j = 0; j < q; j++)
        for (int64_t i = 0; i < p; i++)
            W[j * p + i] = tall ? A[i * n + j] : A[j * n + i];
    int bad = jacobi_cols(W, p, q, V);
    for (int64_t j = 0; j < q; j++) {
        double s = 0;
        for (int64_t i = 0; i < p; i++) s += W[j * p + i] * W[j * p + i];
        S[j] = sqrt(s);
        order[j] = j;
    }
    for (int64_t a = 1; a < q; a++) /* insertion sort, descending */
        for (int64_t b = a; b > 0 && S[order[b]] > S[order[b - 1]]; b--) {
            int64_t t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    double *Ssorted = A; /* A is free scratch now (size m n >= q) */
    for (int64_t r = 0; r < q; r++) Ssorted[r] = S[order[r]];
    if (U && Vt)
        for (int64_t r = 0; r < q; r++) {
            int64_t j = order[r];
            double inv = S[j] > 0 ? 1.0 / S[j] : 0.0;
            /* left vectors of the factored matrix: W columns / S; right: V */
            for (int64_t i = 0; i < p; i++) {
                double u = W[j * p + i] * inv;
                if (tall) U[i * q + r] = u;   /* U (m, k) */
                else Vt[r * n + i] = u;       /* A^T = U' S V'^T: Vt = U'^T */
            }
            for (int64_t i = 0; i < q; i++) {
                double v = V[j * q + i];
                if (tall) Vt[r * n + i] = v;
                else U[i * q + r] = v;
            }
        }
    memcpy(S, Ssorted, sizeof(double) * (size_t)q);
    free(W), free(order);
    return bad;
}

int ss__dsvd(double *A, int64_t m, int64_t n, double *S, double *U,
             double *Vt) {
#ifdef SS_HAVE_CBLAS
    if (fits_int(m, n) && fits_int(m * n, 1)) {
        /* Row-major A (m, n) is column-major A^T (n, m) = U' S V'^T, so
         * A = V' S U'^T: LAPACK's vt buffer (k, m col-major) is our U
         * (m, k) row-major, its u buffer (n, k col-major) our Vt. */
        int rows = (int)n, cols = (int)m, k = (int)(m < n ? m : n);
        int lwork = -1, info = 0;
        const char *job = U && Vt ? "S" : "N";
        int ldu = rows, ldvt = k > 0 ? k : 1;
        double q;
        int *iwork = malloc(sizeof(int) * 8 * (size_t)(k > 0 ? k : 1));
        if (!iwork) return 1;
        blas_single_thread();
        dgesdd_(job, &rows, &cols, A, &rows, S, Vt, &ldu, U, &ldvt, &q,
                &lwork, iwork, &info, 1);
        lwork = info == 0 ? (int)q + 1 : 0;
        double *work = lwork > 0 ? malloc(sizeof(double) * (size_t)lwork) : NULL;
        if (!work) {
            free(iwork);
            return 1;
        }
        dgesdd_(job, &rows, &cols, A, &rows, S, Vt, &ldu, U, &ldvt, work,
                &lwork, iwork, &info, 1);
        free(work), free(iwork);
        return info != 0;
    }
#endif
    return svd_portable(A, m, n, S, U, Vt);
}
