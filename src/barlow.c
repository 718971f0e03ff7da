/*
 * barlow.c - Barlow Twins (lightly's BarlowTwinsLoss). Formulas: selfsup.h;
 * derivation of the backward pass: docs/derivations/barlow.md.
 *
 * With A, B the standardised views and C = A^T B / N:
 *     loss  = sum_i (1 - C_ii)^2 + lambda (||C||_F^2 - sum_i C_ii^2)
 *     dL/dA = (2 lambda / N) B C^T + B diag(g) / N
 *     dL/dB = (2 lambda / N) A C   + A diag(g) / N
 *     g_i   = -2 (1 - C_ii) - 2 lambda C_ii
 * then back through the standardisation. The Gram form writes B C^T as
 * B B^T A / N, so the O(min(N, D)^2 max(N, D)) work runs on whichever
 * square matrix is smaller:
 *     D x D : C = A^T B / N (one GEMM); P_a = B C^T, P_b = A C.
 *     Gram  : Ga = A A^T, Gb = B B^T (tiled SYRK); ||C||^2 = <Ga, Gb> / N^2;
 *             P_a = Gb A / N, P_b = Ga B / N.
 * The diagonal C_ii is formed directly in double, O(N D).
 */
#include "internal.h"
#include "kernels/stats.h"
#include "redundancy.h"

#include <string.h>

#define BT_MAGIC 0x31304e574c524253ull /* "SBRLWN01" */
#define BT_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D;
    int32_t form;
    float lambda, bn_eps;
} bt_header;

/* Cache after the header: doubles mean_a, mean_b, scale_a, scale_b, cdiag
 * (D each), then floats: Ga, Gb (N x N each) or C (D x D). */
typedef struct {
    double *mean_a, *mean_b, *scale_a, *scale_b, *cdiag;
    float *Ga, *Gb, *C;
} bt_view;

ss_barlow_opts ss_barlow_defaults(void) {
    ss_barlow_opts o = {5e-3f, 1e-5f, SS_MOMENT_AUTO};
    return o;
}

static ss_status bt_check_sizes_opts(const char *fn, int64_t N, int64_t D,
                                     const ss_barlow_opts *o) {
    SS_TRY(ss__check_size(fn, "N", N, 2));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 2));
    int64_t m = N < D ? N : D; /* the moment matrices hold about 2 m^2 */
    if (o->form == SS_MOMENT_GRAM) m = N;
    if (o->form == SS_MOMENT_DXD) m = D;
    SS_TRY(ss__check_product(fn, m, m, 2));
    if (!(o->lambda >= 0.0f && isfinite(o->lambda)))
        return ss__fail(SS_ERR_PARAM, fn, "lambda must be finite and >= 0, got %g",
                        (double)o->lambda);
    if (!(o->bn_eps > 0.0f && isfinite(o->bn_eps)))
        return ss__fail(SS_ERR_PARAM, fn, "bn_eps must be finite and > 0, got %g",
                        (double)o->bn_eps);
    return ss__check_moment_form(fn, o->form);
}

static size_t bt_bytes(int64_t N, int64_t D, ss_moment_form form) {
    size_t mats = form == SS_MOMENT_GRAM ? 2 * (size_t)N * (size_t)N
                                         : (size_t)D * (size_t)D;
    return BT_HEADER_BYTES + 5 * (size_t)D * sizeof(double) + mats * sizeof(float);
}

size_t ss_barlow_cache_size(int64_t N, int64_t D, const ss_barlow_opts *opts) {
    ss_barlow_opts o = opts ? *opts : ss_barlow_defaults();
    if (bt_check_sizes_opts("ss_barlow_cache_size", N, D, &o) != SS_OK) return 0;
    return bt_bytes(N, D, ss__moment_pick(o.form, N, D));
}

static bt_view bt_layout(const void *cache, int64_t N, int64_t D,
                         ss_moment_form form) {
    bt_view v;
    double *d = (double *)((char *)(uintptr_t)cache + BT_HEADER_BYTES);
    v.mean_a = d, v.mean_b = d + D, v.scale_a = d + 2 * D, v.scale_b = d + 3 * D;
    v.cdiag = d + 4 * D;
    float *f = (float *)(d + 5 * D);
    v.Ga = v.Gb = v.C = NULL;
    if (form == SS_MOMENT_GRAM) v.Ga = f, v.Gb = f + N * N;
    else v.C = f;
    return v;
}

static ss_status bt_check(const char *fn, const float *a, const float *b,
                          int64_t N, int64_t D, const ss_barlow_opts *o) {
    SS_TRY(ss__check_ptr(fn, "a", a));
    SS_TRY(ss__check_ptr(fn, "b", b));
    SS_TRY(bt_check_sizes_opts(fn, N, D, o));
    SS_TRY(ss__check_finite(fn, "a", a, N * D));
    return ss__check_finite(fn, "b", b, N * D);
}

/* mean and scale = 1 / sqrt(biased var + eps), as F.batch_norm(training). */
static void bt_stats(double *mean, double *scale, const float *x, int64_t N,
                     int64_t D, double eps) {
    ss__col_stats(mean, scale, x, N, D);
    for (int64_t d = 0; d < D; d++) scale[d] = 1.0 / sqrt(scale[d] / N + eps);
}

ss_status ss_barlow_forward(float *loss, float *terms, void *cache,
                            const float *a, const float *b, int64_t N,
                            int64_t D, const ss_barlow_opts *opts) {
    static const char *fn = "ss_barlow_forward";
    ss_barlow_opts o = opts ? *opts : ss_barlow_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(bt_check(fn, a, b, N, D, &o));
    ss_moment_form form = ss__moment_pick(o.form, N, D);
    float *A = ss__malloc(2 * (size_t)(N * D) * sizeof(float));
    double *part = ss__malloc((size_t)(N > D ? N : D) * sizeof(double));
    if (!A || !part) {
        ss__free(A), ss__free(part);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory for 2 N D floats (N=%lld, D=%lld)",
                        (long long)N, (long long)D);
    }
    float *B = A + N * D;
    bt_view v = bt_layout(cache, N, D, form);
    bt_stats(v.mean_a, v.scale_a, a, N, D, o.bn_eps);
    bt_stats(v.mean_b, v.scale_b, b, N, D, o.bn_eps);
    ss__col_center(A, a, v.mean_a, v.scale_a, N, D);
    ss__col_center(B, b, v.mean_b, v.scale_b, N, D);
    ss__col_dot(v.cdiag, A, B, N, D);
    double on = 0.0, diag2 = 0.0, off;
    for (int64_t d = 0; d < D; d++) {
        v.cdiag[d] /= (double)N;
        on += (1.0 - v.cdiag[d]) * (1.0 - v.cdiag[d]);
        diag2 += v.cdiag[d] * v.cdiag[d];
    }
    if (form == SS_MOMENT_GRAM) {
        ss__syrk(v.Ga, A, N, D, 0, 1.0f);
        ss__syrk(v.Gb, B, N, D, 0, 1.0f);
        off = ss__frob_dot(v.Ga, v.Gb, N, 0, part) / ((double)N * N) - diag2;
    } else {
        ss__gemm_par(1, 0, D, D, N, 1.0f / (float)N, A, D, B, D, 0.0f,
                     v.C, D);
        off = ss__frob_dot(v.C, NULL, D, 1, part);
    }
    ss__free(A), ss__free(part);
    if (off < 0.0) off = 0.0; /* Gram-form rounding of a zero sum */
    bt_header h;
    memset(&h, 0, sizeof h);
    h.magic = BT_MAGIC, h.N = N, h.D = D, h.form = (int32_t)form;
    h.lambda = o.lambda, h.bn_eps = o.bn_eps;
    memcpy(cache, &h, sizeof h);
    *loss = (float)(on + o.lambda * off);
    if (terms) terms[0] = (float)on, terms[1] = (float)off;
    return SS_OK;
}

/* dx += dloss * (batch-norm backward of dX = P), for one view:
 *     dx = s (P - mean_n P - X mean_n(P X)),  X the standardised view. */
static void bt_view_backward(float *dx, const float *P, const float *X,
                             const double *scale, double *col, int64_t N,
                             int64_t D, double dloss) {
    double *s1 = col, *s2 = col + D, *a = col + 2 * D;
    ss__col_dot(s1, P, NULL, N, D);
    ss__col_dot(s2, P, X, N, D);
    for (int64_t d = 0; d < D; d++) {
        a[d] = dloss * scale[d];
        s1[d] = -a[d] * s1[d] / (double)N;
        s2[d] = -a[d] * s2[d] / (double)N;
    }
    ss__col_apply(dx, P, a, s1, s2, X, N, D);
}

/* P_nd += Y_nd g_d / N: the diagonal part of dL/dX. */
static void bt_add_diag(float *P, const float *Y, const double *g, int64_t N,
                        int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++)
            P[n * D + d] += (float)(Y[n * D + d] * g[d] / (double)N);
}

ss_status ss_barlow_backward(float *da, float *db, float dloss,
                             const void *cache, const float *a, const float *b,
                             int64_t N, int64_t D, const ss_barlow_opts *opts) {
    static const char *fn = "ss_barlow_backward";
    ss_barlow_opts o = opts ? *opts : ss_barlow_defaults();
    SS_TRY(ss__check_view_backward(fn, da, db, cache, dloss));
    SS_TRY(bt_check(fn, a, b, N, D, &o));
    ss_moment_form form = ss__moment_pick(o.form, N, D);
    bt_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != BT_MAGIC || h.N != N || h.D != D || h.form != (int32_t)form ||
        h.lambda != o.lambda || h.bn_eps != o.bn_eps)
        return ss__fail_cache_mismatch(fn);
    float *A = ss__malloc(3 * (size_t)(N * D) * sizeof(float));
    double *col = ss__malloc(4 * (size_t)D * sizeof(double));
    if (!A || !col) {
        ss__free(A), ss__free(col);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory for 3 N D floats (N=%lld, D=%lld)",
                        (long long)N, (long long)D);
    }
    float *B = A + N * D, *P = B + N * D;
    double *g = col + 3 * D;
    bt_view v = bt_layout(cache, N, D, form);
    ss__col_center(A, a, v.mean_a, v.scale_a, N, D);
    ss__col_center(B, b, v.mean_b, v.scale_b, N, D);
    for (int64_t d = 0; d < D; d++)
        g[d] = -2.0 * (1.0 - v.cdiag[d]) - 2.0 * o.lambda * v.cdiag[d];
    float lam2 = 2.0f * o.lambda;
    /* view a: P = dL/dA */
    if (form == SS_MOMENT_GRAM)
        ss__gemm_par(0, 0, N, D, N, lam2 / ((float)N * (float)N), v.Gb, N,
                     A, D, 0.0f, P, D);
    else
        ss__gemm_par(0, 1, N, D, D, lam2 / (float)N, B, D, v.C, D, 0.0f,
                     P, D);
    bt_add_diag(P, B, g, N, D);
    bt_view_backward(da, P, A, v.scale_a, col, N, D, dloss);
    /* view b: P = dL/dB */
    if (form == SS_MOMENT_GRAM)
        ss__gemm_par(0, 0, N, D, N, lam2 / ((float)N * (float)N), v.Ga, N,
                     B, D, 0.0f, P, D);
    else
        ss__gemm_par(0, 0, N, D, D, lam2 / (float)N, A, D, v.C, D, 0.0f,
                     P, D);
    bt_add_diag(P, A, g, N, D);
    bt_view_backward(db, P, B, v.scale_b, col, N, D, dloss);
    ss__free(A), ss__free(col);
    return SS_OK;
}
