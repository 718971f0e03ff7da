/* gemm.c - BLAS dispatch with a portable fallback. */
#include "gemm.h"
#include "../internal.h"

#include <string.h>
#ifdef SS_HAVE_CBLAS
#include <cblas.h>
char *openblas_get_corename(void);
#endif

#if defined(SS_HAVE_CBLAS) && defined(SS_HAVE_OPENBLAS_THREADS)
/* OpenBLAS API (declared in its cblas.h, repeated for other cblas.h). */
int openblas_get_parallel(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

/* The pthreads build of OpenBLAS would start its own pool inside our
 * OpenMP threads and oversubscribe the cores; ask it for one thread per
 * call. The OpenMP build detects nested regions itself. */
static void blas_single_thread(void) {
    static int done; /* benign race: every writer stores the same value */
    if (done) return;
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
    done = 1;
}
#else
static void blas_single_thread(void) {}
#endif

static void gemm_portable(int ta, int tb, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C,
                          int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < n; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) c[j] *= beta;
        for (int64_t p = 0; p < k; p++) {
            float a = alpha * (ta ? A[p * lda + i] : A[i * lda + p]);
            if (a == 0.0f) continue;
            if (!tb) {
                const float *b = B + p * ldb;
                for (int64_t j = 0; j < n; j++) c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < n; j++) c[j] += a * B[j * ldb + p];
            }
        }
    }
}

static void gemm_any(int ta, int tb, int64_t m, int64_t n, int64_t k,
                     float alpha, const float *A, int64_t lda, const float *B,
                     int64_t ldb, float beta, float *C, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
#ifdef SS_HAVE_CBLAS
    if (k > 0 && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX &&
        lda < INT32_MAX && ldb < INT32_MAX && ldc < INT32_MAX) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                    alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
#endif
    gemm_portable(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ss__sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb,
               float beta, float *C, int64_t ldc) {
    blas_single_thread();
    gemm_any(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ss__sgemm_threaded(int ta, int tb, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C,
                        int64_t ldc) {
#if defined(SS_HAVE_CBLAS) && defined(SS_HAVE_OPENBLAS_THREADS)
    if (openblas_get_parallel() == 1) openblas_set_num_threads(ss__threads());
    gemm_any(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    if (openblas_get_parallel() == 1) openblas_set_num_threads(1);
#else
    gemm_any(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

const char *ss_blas_coretype_hint(void) {
#if defined(SS_HAVE_CBLAS) && (defined(__x86_64__) || defined(__i386__)) && \
    defined(__GNUC__)
    static const char *generic[] = {"Prescott", "Core2", "Penryn", "Nehalem",
                                    "Dunnington", "Atom", "Sandybridge"};
    const char *core = openblas_get_corename();
    int is_generic = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof *generic; i++)
        if (strcmp(core, generic[i]) == 0) is_generic = 1;
    if (!is_generic) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}
