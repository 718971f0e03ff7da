/*
 * tgemm.c - 6 x (2 vectors) register-blocked GEMM kernel (see tgemm.h).
 *
 * Per step p the kernel loads two vectors of B's row p and broadcasts six
 * values of A's column p into 12 FMAs on register accumulators: FMA-bound
 * with 12 + 2 + 1 vector registers (fits AVX2's 16). Edge blocks are
 * zero-padded into scratch and run through the same kernel.
 */
#include "tgemm.h"
#include "gemm.h"

#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define TG_NATIVE 1
#if defined(__AVX512F__)
#define TG_VW 16
typedef __m512 tg_v;
#define TG_ZERO() _mm512_setzero_ps()
#define TG_LOAD(p) _mm512_loadu_ps(p)
#define TG_STORE(p, v) _mm512_storeu_ps(p, v)
#define TG_SET1(x) _mm512_set1_ps(x)
#define TG_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define TG_ADD(a, b) _mm512_add_ps(a, b)
#else
#define TG_VW 8
typedef __m256 tg_v;
#define TG_ZERO() _mm256_setzero_ps()
#define TG_LOAD(p) _mm256_loadu_ps(p)
#define TG_STORE(p, v) _mm256_storeu_ps(p, v)
#define TG_SET1(x) _mm256_set1_ps(x)
#define TG_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define TG_ADD(a, b) _mm256_add_ps(a, b)
#endif
#else
#define TG_NATIVE 0
#define TG_VW 8
#endif

#define TG_MR 6
#define TG_NR (2 * TG_VW)

int ss__tgemm_native(void) { return TG_NATIVE; }

int64_t ss__tgemm_scratch(int64_t k) {
    return (TG_MR + TG_NR) * k + TG_MR * TG_NR;
}

#if TG_NATIVE
#define TG_ROW(r)                                                   \
    {                                                               \
        tg_v a = TG_SET1(ap[(r) * a_row]);                          \
        c##r##0 = TG_FMA(a, b0, c##r##0);                           \
        c##r##1 = TG_FMA(a, b1, c##r##1);                           \
    }
#define TG_OUT(r)                                                   \
    {                                                               \
        float *c = C + (r) * ldc;                                   \
        if (acc) {                                                  \
            c##r##0 = TG_ADD(c##r##0, TG_LOAD(c));                  \
            c##r##1 = TG_ADD(c##r##1, TG_LOAD(c + TG_VW));          \
        }                                                           \
        TG_STORE(c, c##r##0);                                       \
        TG_STORE(c + TG_VW, c##r##1);                               \
    }

/* C (6, TG_NR) (+)= A (6, k) B (k, TG_NR). */
static void tg_kernel(int64_t k, const float *A, int64_t a_row, int64_t a_col,
                      const float *B, int64_t ldb, int acc, float *C,
                      int64_t ldc) {
    tg_v c00 = TG_ZERO(), c01 = TG_ZERO(), c10 = TG_ZERO(), c11 = TG_ZERO();
    tg_v c20 = TG_ZERO(), c21 = TG_ZERO(), c30 = TG_ZERO(), c31 = TG_ZERO();
    tg_v c40 = TG_ZERO(), c41 = TG_ZERO(), c50 = TG_ZERO(), c51 = TG_ZERO();
    for (int64_t p = 0; p < k; p++) {
        const float *ap = A + p * a_col, *bp = B + p * ldb;
        tg_v b0 = TG_LOAD(bp), b1 = TG_LOAD(bp + TG_VW);
        TG_ROW(0) TG_ROW(1) TG_ROW(2) TG_ROW(3) TG_ROW(4) TG_ROW(5)
    }
    TG_OUT(0) TG_OUT(1) TG_OUT(2) TG_OUT(3) TG_OUT(4) TG_OUT(5)
}

/* A partial block (mr <= 6 rows, nr <= TG_NR columns), zero-padded. */
static void tg_edge(int64_t mr, int64_t nr, int64_t k, const float *A,
                    int64_t a_row, int64_t a_col, const float *B, int64_t ldb,
                    int acc, float *C, int64_t ldc, float *scratch) {
    float *Ap = scratch, *Bp = Ap + TG_MR * k, *Ct = Bp + TG_NR * k;
    for (int64_t p = 0; p < k; p++)
        for (int64_t r = 0; r < TG_MR; r++)
            Ap[p * TG_MR + r] = r < mr ? A[r * a_row + p * a_col] : 0.0f;
    const float *Bk = B;
    int64_t ldk = ldb;
    if (nr < TG_NR) {
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < TG_NR; j++)
                Bp[p * TG_NR + j] = j < nr ? B[p * ldb + j] : 0.0f;
        Bk = Bp, ldk = TG_NR;
    }
    tg_kernel(k, Ap, 1, TG_MR, Bk, ldk, 0, Ct, TG_NR);
    for (int64_t r = 0; r < mr; r++)
        for (int64_t j = 0; j < nr; j++)
            C[r * ldc + j] = (acc ? C[r * ldc + j] : 0.0f) + Ct[r * TG_NR + j];
}
#endif

void ss__tgemm(int64_t m, int64_t n, int64_t k, const float *A, int64_t a_row,
               int64_t a_col, const float *B, int64_t ldb, int accumulate,
               float *C, int64_t ldc, float *scratch) {
#if TG_NATIVE
    for (int64_t j0 = 0; j0 < n; j0 += TG_NR) {
        int64_t nr = n - j0 < TG_NR ? n - j0 : TG_NR;
        for (int64_t i0 = 0; i0 < m; i0 += TG_MR) {
            int64_t mr = m - i0 < TG_MR ? m - i0 : TG_MR;
            const float *Ai = A + i0 * a_row;
            float *Ci = C + i0 * ldc + j0;
            if (mr == TG_MR && nr == TG_NR)
                tg_kernel(k, Ai, a_row, a_col, B + j0, ldb, accumulate, Ci,
                          ldc);
            else
                tg_edge(mr, nr, k, Ai, a_row, a_col, B + j0, ldb, accumulate,
                        Ci, ldc, scratch);
        }
    }
#else
    (void)scratch;
    /* a(i, p) = A[i a_row + p a_col]: plain when a_col == 1, else A^T */
    int ta = a_col != 1;
    ss__sgemm(ta, 0, m, n, k, 1.0f, A, ta ? a_col : a_row, B, ldb,
              accumulate ? 1.0f : 0.0f, C, ldc);
#endif
}

void ss__transpose(float *dst, int64_t ldd, const float *src, int64_t n,
                   int64_t D) {
    for (int64_t k0 = 0; k0 < n; k0 += 16)
        for (int64_t d0 = 0; d0 < D; d0 += 16) {
            int64_t k1 = k0 + 16 < n ? k0 + 16 : n;
            int64_t d1 = d0 + 16 < D ? d0 + 16 : D;
            for (int64_t d = d0; d < d1; d++)
                for (int64_t k = k0; k < k1; k++)
                    dst[d * ldd + k] = src[k * D + d];
        }
}
