/*
 * vicreg.c - VICReg (lightly's VICRegLoss, 2-D inputs). Formulas:
 * selfsup.h; derivation of the backward pass: docs/derivations/vicreg.md.
 *
 * Per view, with X the centred view and v_d its unbiased variance:
 *     ||Cov||_F^2 = ||X^T X||_F^2 / (N-1)^2 = ||X X^T||_F^2 / (N-1)^2
 *     dcov/dX = 4 / (D (N-1)^2) * (X X^T) X - 4 / (D (N-1)) * X diag(v)
 * so both the loss and the gradient run on the smaller square matrix:
 *     D x D : K = X^T X (tiled SYRK), P = X K
 *     Gram  : K = X X^T (tiled SYRK), P = K X
 * The variance term adds X diag(.) and the invariance term is O(N D).
 */
#include "internal.h"
#include "kernels/stats.h"
#include "redundancy.h"

#include <string.h>

#define VR_MAGIC 0x3130475243495653ull /* "SVICRG01" */
#define VR_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D;
    int32_t form;
    float lambda, mu, nu, eps;
} vr_header;

/* Cache after the header: doubles mean_a, mean_b, var_a, var_b (D each),
 * then floats K_a, K_b (N x N or D x D each, unscaled). */
typedef struct {
    double *mean[2], *var[2];
    float *K[2];
    int64_t m; /* K is (m, m) */
} vr_view;

ss_vicreg_opts ss_vicreg_defaults(void) {
    ss_vicreg_opts o = {25.0f, 25.0f, 1.0f, 1e-4f, SS_MOMENT_AUTO};
    return o;
}

static ss_status vr_check_param(const char *fn, const char *name, float v,
                                int nonneg) {
    if (isfinite(v) && (!nonneg || v >= 0.0f)) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "%s must be finite%s, got %g", name,
                    nonneg ? " and >= 0" : "", (double)v);
}

static ss_status vr_check_sizes_opts(const char *fn, int64_t N, int64_t D,
                                     const ss_vicreg_opts *o) {
    if (N == 1)
        return ss__fail(SS_ERR_SIZE, fn,
                        "N must be >= 2 (VICReg's unbiased variance and "
                        "covariance divide by N - 1), got 1");
    SS_TRY(ss__check_size(fn, "N", N, 2));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 2));
    ss_moment_form f = ss__moment_pick(o->form, N, D);
    int64_t m = f == SS_MOMENT_GRAM ? N : D;
    SS_TRY(ss__check_product(fn, m, m, 2));
    SS_TRY(vr_check_param(fn, "lambda", o->lambda, 0));
    SS_TRY(vr_check_param(fn, "mu", o->mu, 0));
    SS_TRY(vr_check_param(fn, "nu", o->nu, 0));
    SS_TRY(vr_check_param(fn, "eps", o->eps, 1));
    return ss__check_moment_form(fn, o->form);
}

static int64_t vr_m(ss_moment_form f, int64_t N, int64_t D) {
    return f == SS_MOMENT_GRAM ? N : D;
}

size_t ss_vicreg_cache_size(int64_t N, int64_t D, const ss_vicreg_opts *opts) {
    ss_vicreg_opts o = opts ? *opts : ss_vicreg_defaults();
    if (vr_check_sizes_opts("ss_vicreg_cache_size", N, D, &o) != SS_OK) return 0;
    int64_t m = vr_m(ss__moment_pick(o.form, N, D), N, D);
    return VR_HEADER_BYTES + 4 * (size_t)D * sizeof(double) +
           2 * (size_t)m * (size_t)m * sizeof(float);
}

static vr_view vr_layout(const void *cache, int64_t N, int64_t D,
                         ss_moment_form f) {
    vr_view v;
    double *d = (double *)((char *)(uintptr_t)cache + VR_HEADER_BYTES);
    v.mean[0] = d, v.mean[1] = d + D, v.var[0] = d + 2 * D, v.var[1] = d + 3 * D;
    v.m = vr_m(f, N, D);
    v.K[0] = (float *)(d + 4 * D);
    v.K[1] = v.K[0] + v.m * v.m;
    return v;
}

static ss_status vr_check(const char *fn, const float *a, const float *b,
                          int64_t N, int64_t D, const ss_vicreg_opts *o) {
    SS_TRY(ss__check_ptr(fn, "a", a));
    SS_TRY(ss__check_ptr(fn, "b", b));
    SS_TRY(vr_check_sizes_opts(fn, N, D, o));
    SS_TRY(ss__check_finite(fn, "a", a, N * D));
    return ss__check_finite(fn, "b", b, N * D);
}

/* sum_{n,d} (a - b)^2 in double, per-row partials summed in order. */
static double vr_sqdiff(const float *a, const float *b, double *part,
                        int64_t N, int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t n = 0; n < N; n++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) {
            double t = (double)a[n * D + d] - b[n * D + d];
            s += t * t;
        }
        part[n] = s;
    }
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total += part[n];
    return total;
}

ss_status ss_vicreg_forward(float *loss, float *terms, void *cache,
                            const float *a, const float *b, int64_t N,
                            int64_t D, const ss_vicreg_opts *opts) {
    static const char *fn = "ss_vicreg_forward";
    ss_vicreg_opts o = opts ? *opts : ss_vicreg_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(vr_check(fn, a, b, N, D, &o));
    ss_moment_form f = ss__moment_pick(o.form, N, D);
    int64_t m = vr_m(f, N, D);
    float *X = ss__malloc((size_t)(N * D) * sizeof(float));
    double *part = ss__malloc((size_t)(N > m ? N : m) * sizeof(double));
    if (!X || !part) {
        ss__free(X), ss__free(part);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory for N D floats (N=%lld, D=%lld)",
                        (long long)N, (long long)D);
    }
    vr_view v = vr_layout(cache, N, D, f);
    const float *x[2] = {a, b};
    double nm1 = (double)(N - 1), var_t = 0.0, cov_t = 0.0;
    for (int k = 0; k < 2; k++) {
        ss__col_stats(v.mean[k], v.var[k], x[k], N, D);
        double hinge = 0.0, diag2 = 0.0;
        for (int64_t d = 0; d < D; d++) {
            v.var[k][d] /= nm1;
            hinge += fmax(1.0 - sqrt(v.var[k][d] + o.eps), 0.0);
            diag2 += v.var[k][d] * v.var[k][d];
        }
        var_t += 0.5 * hinge / (double)D;
        ss__col_center(X, x[k], v.mean[k], NULL, N, D);
        double off;
        if (f == SS_MOMENT_GRAM) {
            ss__syrk(v.K[k], X, N, D, 0, 1.0f);
            off = ss__frob_dot(v.K[k], NULL, N, 0, part) / (nm1 * nm1) - diag2;
            if (off < 0.0) off = 0.0; /* rounding of a zero sum */
        } else {
            ss__syrk(v.K[k], X, D, N, 1, 1.0f);
            off = ss__frob_dot(v.K[k], NULL, D, 1, part) / (nm1 * nm1);
        }
        cov_t += off / (double)D;
    }
    double inv_t = vr_sqdiff(a, b, part, N, D) / ((double)N * D);
    ss__free(X), ss__free(part);
    vr_header h;
    memset(&h, 0, sizeof h);
    h.magic = VR_MAGIC, h.N = N, h.D = D, h.form = (int32_t)f;
    h.lambda = o.lambda, h.mu = o.mu, h.nu = o.nu, h.eps = o.eps;
    memcpy(cache, &h, sizeof h);
    *loss = (float)(o.lambda * inv_t + o.mu * var_t + o.nu * cov_t);
    if (terms) terms[0] = (float)inv_t, terms[1] = (float)var_t, terms[2] = (float)cov_t;
    return SS_OK;
}

/* dx += dloss * (G - mean_n G), G = alpha P + X diag(c): the centring
 * backward of the variance and covariance gradients of one view. */
static void vr_view_backward(float *dx, const float *P, const float *X,
                             const double *var, double *col, int64_t N,
                             int64_t D, double dloss, const ss_vicreg_opts *o) {
    double *a = col, *b = col + D, *c = col + 2 * D, *s0 = col + 3 * D;
    double nm1 = (double)(N - 1), alpha = dloss * 4.0 * o->nu / (D * nm1 * nm1);
    ss__col_dot(b, P, NULL, N, D);
    ss__col_dot(s0, X, NULL, N, D);
    for (int64_t d = 0; d < D; d++) {
        double s = sqrt(var[d] + o->eps);
        double k = -4.0 * o->nu * var[d] / (D * nm1);
        if (1.0 - s > 0.0) k -= 0.5 * o->mu / (D * s * nm1);
        a[d] = alpha;
        c[d] = dloss * k;
        b[d] = -(alpha * b[d] + c[d] * s0[d]) / (double)N;
    }
    ss__col_apply(dx, P, a, b, c, X, N, D);
}

ss_status ss_vicreg_backward(float *da, float *db, float dloss,
                             const void *cache, const float *a, const float *b,
                             int64_t N, int64_t D, const ss_vicreg_opts *opts) {
    static const char *fn = "ss_vicreg_backward";
    ss_vicreg_opts o = opts ? *opts : ss_vicreg_defaults();
    SS_TRY(ss__check_view_backward(fn, da, db, cache, dloss));
    SS_TRY(vr_check(fn, a, b, N, D, &o));
    ss_moment_form f = ss__moment_pick(o.form, N, D);
    vr_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != VR_MAGIC || h.N != N || h.D != D || h.form != (int32_t)f ||
        h.lambda != o.lambda || h.mu != o.mu || h.nu != o.nu || h.eps != o.eps)
        return ss__fail_cache_mismatch(fn);
    float *X = ss__malloc(2 * (size_t)(N * D) * sizeof(float));
    double *col = ss__malloc(4 * (size_t)D * sizeof(double));
    if (!X || !col) {
        ss__free(X), ss__free(col);
        return ss__fail(SS_ERR_NOMEM, fn, "out of memory for 2 N D floats (N=%lld, D=%lld)",
                        (long long)N, (long long)D);
    }
    float *P = X + N * D;
    vr_view v = vr_layout(cache, N, D, f);
    const float *x[2] = {a, b};
    float *dx[2] = {da, db};
    for (int k = 0; k < 2; k++) {
        ss__col_center(X, x[k], v.mean[k], NULL, N, D);
        if (f == SS_MOMENT_GRAM)
            ss__gemm_par(0, 0, N, D, N, 1.0f, v.K[k], N, X, D, 0.0f, P, D);
        else
            ss__gemm_par(0, 0, N, D, D, 1.0f, X, D, v.K[k], D, 0.0f, P, D);
        vr_view_backward(dx[k], P, X, v.var[k], col, N, D, dloss, &o);
    }
    /* invariance: d/da lambda mean (a - b)^2 = 2 lambda (a - b) / (N D) */
    double w = 2.0 * o.lambda * dloss / ((double)N * D);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (N * D > SS__PAR_STREAM)
#endif
    for (int64_t i = 0; i < N * D; i++) {
        float t = (float)(w * ((double)a[i] - b[i]));
        da[i] += t, db[i] -= t;
    }
    ss__free(X), ss__free(col);
    return SS_OK;
}
