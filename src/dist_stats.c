/*
 * dist_stats.c - Barlow Twins and VICReg over ranks with exact
 * synchronised batch statistics. Contract: selfsup_comm.h; per-loss
 * semantics: docs/DISTRIBUTED.md. The formulas are barlow.c's and
 * vicreg.c's D x D forms with every sum over the batch replaced by an
 * all-reduced sum over the global batch of Ntot rows:
 *     column sums (means), squared deviations (variances), A^T B and X^T X
 *     (D x D, reduced in double), and in backward the column sums of the
 *     batch-norm / centring backward (2 D per view).
 * Gradients follow the mean convention: world_size * dLglobal/dx_local.
 */
#include "comm_internal.h"
#include "kernels/stats.h"
#include "redundancy.h"

#include <string.h>

#define DBT_MAGIC 0x3130544257534453ull /* "SDSWBT01" */
#define DVR_MAGIC 0x3130525657534453ull /* "SDSWVR01" */
#define DST_HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t N, D, Ntot;
    float p[4]; /* the loss options */
} dst_header;

/* ---- shared pieces ------------------------------------------------------- */

static ss_status dst_check_ab(const char *fn, const float *a, const float *b,
                              int64_t N, int64_t D, ss_moment_form form) {
    SS_TRY(ss__check_ptr(fn, "a", a));
    SS_TRY(ss__check_ptr(fn, "b", b));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, N, D, 2));
    SS_TRY(ss__check_product(fn, D, D, 2));
    if (form == SS_MOMENT_GRAM)
        return ss__fail(SS_ERR_UNSUPPORTED, fn,
                        "form SS_MOMENT_GRAM is not available distributed "
                        "(it is O(global batch^2)); use AUTO or DXD");
    SS_TRY(ss__check_moment_form(fn, form));
    SS_TRY(ss__check_finite(fn, "a", a, N * D));
    return ss__check_finite(fn, "b", b, N * D);
}

static ss_status dst_check_cache(const char *fn, const void *cache,
                                 uint64_t magic, int64_t N, int64_t D,
                                 const float *p) {
    dst_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || h.N != N || h.D != D ||
        memcmp(h.p, p, sizeof h.p) != 0)
        return ss__fail_cache_mismatch(fn);
    return SS_OK;
}

/* Agreement plus the global-size checks; *Ntot on success. */
static ss_status dst_agree(const ss_comm *c, const char *fn, ss_status st,
                           const double *vals, const char *const *names,
                           int nv, int64_t N, int64_t *Ntot) {
    st = ss__dist_agree_total(c, fn, st, vals, names, nv, N, Ntot);
    return ss__dist_min_total(fn, st, *Ntot, 2, "rows");
}

/* Column sums of x (N, D) into s (D). */
static void dst_colsum(double *s, const float *x, int64_t N, int64_t D) {
    ss__col_dot(s, x, NULL, N, D);
}

/* dd[k] = (double)f[k] for n entries. */
static void f2d(double *dd, const float *f, int64_t n) {
    for (int64_t k = 0; k < n; k++) dd[k] = f[k];
}

/* ---- Barlow Twins --------------------------------------------------------- */

/* Cache after the header: doubles mean_a, mean_b, scale_a, scale_b, cdiag
 * (D each), then C (D, D) floats, the global cross-correlation. */
size_t ss_dist_barlow_cache_size(int64_t D) {
    if (ss__check_size("ss_dist_barlow_cache_size", "D", D, 1) != SS_OK ||
        ss__check_product("ss_dist_barlow_cache_size", D, D, 2) != SS_OK)
        return 0;
    return DST_HEADER_BYTES + 5 * (size_t)D * sizeof(double) +
           (size_t)D * (size_t)D * sizeof(float);
}

static ss_status dbt_check_opts(const char *fn, const ss_barlow_opts *o) {
    if (!(o->lambda >= 0.0f && isfinite(o->lambda)))
        return ss__fail(SS_ERR_PARAM, fn, "lambda must be finite and >= 0, "
                        "got %g", (double)o->lambda);
    if (!(o->bn_eps > 0.0f && isfinite(o->bn_eps)))
        return ss__fail(SS_ERR_PARAM, fn, "bn_eps must be finite and > 0, "
                        "got %g", (double)o->bn_eps);
    return SS_OK;
}

static const char *const dbt_names[] = {"D", "lambda", "bn_eps", "dloss"};

typedef struct {
    double *mean_a, *mean_b, *scale_a, *scale_b, *cdiag;
    float *C;
} dbt_view;

static dbt_view dbt_layout(const void *cache, int64_t D) {
    dbt_view v;
    double *d = (double *)((char *)(uintptr_t)cache + DST_HEADER_BYTES);
    v.mean_a = d, v.mean_b = d + D, v.scale_a = d + 2 * D;
    v.scale_b = d + 3 * D, v.cdiag = d + 4 * D;
    v.C = (float *)(d + 5 * D);
    return v;
}

/* Global mean and 1 / sqrt(biased var + eps) of a and b; X, Y: (N, D)
 * standardised views on return. red: (2 D) scratch. */
static ss_status dst_standardise(const ss_comm *c, const char *fn, float *X,
                                 float *Y, double *mean_a, double *mean_b,
                                 double *sc_a, double *sc_b, const float *a,
                                 const float *b, int64_t N, int64_t D,
                                 int64_t Ntot, double eps, double *red,
                                 int unbiased) {
    dst_colsum(red, a, N, D);
    dst_colsum(red + D, b, N, D);
    SS_TRY(ss__dist_allreduce(c, fn, red, 2 * D, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int64_t d = 0; d < D; d++)
        mean_a[d] = red[d] / (double)Ntot, mean_b[d] = red[D + d] / (double)Ntot;
    ss__col_center(X, a, mean_a, NULL, N, D);
    ss__col_center(Y, b, mean_b, NULL, N, D);
    ss__col_dot(red, X, X, N, D);
    ss__col_dot(red + D, Y, Y, N, D);
    SS_TRY(ss__dist_allreduce(c, fn, red, 2 * D, SS_COMM_DOUBLE, SS_COMM_SUM));
    double den = unbiased ? (double)(Ntot - 1) : (double)Ntot;
    for (int64_t d = 0; d < D; d++) {
        sc_a[d] = red[d] / den, sc_b[d] = red[D + d] / den; /* variances */
        if (!unbiased) {
            sc_a[d] = 1.0 / sqrt(sc_a[d] + eps);
            sc_b[d] = 1.0 / sqrt(sc_b[d] + eps);
        }
    }
    if (!unbiased) { /* standardise */
        ss__col_center(X, a, mean_a, sc_a, N, D);
        ss__col_center(Y, b, mean_b, sc_b, N, D);
    }
    return SS_OK;
}

ss_status ss_dist_barlow_forward(float *loss, float *terms, void *cache,
                                 const float *a, const float *b, int64_t N,
                                 int64_t D, const ss_barlow_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_barlow_forward";
    SS_TRY(ss_comm_check(comm));
    ss_barlow_opts o = opts ? *opts : ss_barlow_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dbt_check_opts(fn, &o);
    if (st == SS_OK) st = dst_check_ab(fn, a, b, N, D, o.form);
    double vals[3] = {(double)D, o.lambda, o.bn_eps};
    int64_t Ntot = 0;
    SS_TRY(dst_agree(comm, fn, st, vals, dbt_names, 3, N, &Ntot));
    float *X = ss__malloc(2 * (size_t)(N * D) * sizeof(float));
    double *red = ss__malloc(((size_t)D * D + 2 * (size_t)D) * sizeof(double));
    st = X && red ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for 2 N D "
                                     "floats and D^2 doubles (N=%lld, D=%lld)",
                                     (long long)N, (long long)D);
    st = ss__dist_status(comm, fn, st);
    float *Y = X ? X + N * D : NULL;
    dbt_view v = dbt_layout(cache, D);
    if (st == SS_OK)
        st = dst_standardise(comm, fn, X, Y, v.mean_a, v.mean_b, v.scale_a,
                             v.scale_b, a, b, N, D, Ntot, o.bn_eps, red, 0);
    if (st == SS_OK) { /* local A^T B and diag, reduced in double */
        ss__gemm_par(1, 0, D, D, N, 1.0f, X, D, Y, D, 0.0f, v.C, D);
        f2d(red, v.C, D * D);
        ss__col_dot(red + D * D, X, Y, N, D);
        st = ss__dist_allreduce(comm, fn, red, D * D + D, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) {
        double on = 0.0, off = 0.0;
        for (int64_t k = 0; k < D * D; k++) v.C[k] = (float)(red[k] / Ntot);
        for (int64_t d = 0; d < D; d++) {
            double cd = red[D * D + d] / (double)Ntot;
            v.cdiag[d] = cd;
            on += (1.0 - cd) * (1.0 - cd);
        }
        off = ss__frob_dot(v.C, NULL, D, 1, red);
        dst_header h;
        memset(&h, 0, sizeof h);
        h.magic = DBT_MAGIC, h.N = N, h.D = D, h.Ntot = Ntot;
        h.p[0] = o.lambda, h.p[1] = o.bn_eps;
        memcpy(cache, &h, sizeof h);
        *loss = (float)(on + o.lambda * off);
        if (terms) terms[0] = (float)on, terms[1] = (float)off;
    }
    ss__free(X), ss__free(red);
    return st;
}

/* dx += (batch-norm backward of dX = P) with global column sums:
 *     dx = a_d (P - mean P - X mean(P X)), a_d = dl * scale_d. */
static ss_status dbt_view_backward(const ss_comm *c, const char *fn,
                                   float *dx, const float *P, const float *X,
                                   const double *scale, double *col,
                                   int64_t N, int64_t D, int64_t Ntot,
                                   double dl) {
    double *s1 = col, *s2 = col + D, *a = col + 2 * D;
    ss__col_dot(s1, P, NULL, N, D);
    ss__col_dot(s2, P, X, N, D);
    SS_TRY(ss__dist_allreduce(c, fn, col, 2 * D, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int64_t d = 0; d < D; d++) {
        a[d] = dl * scale[d];
        s1[d] = -a[d] * s1[d] / (double)Ntot;
        s2[d] = -a[d] * s2[d] / (double)Ntot;
    }
    ss__col_apply(dx, P, a, s1, s2, X, N, D);
    return SS_OK;
}

/* P_nd += Y_nd g_d / Ntot. */
static void dbt_add_diag(float *P, const float *Y, const double *g, int64_t N,
                         int64_t D, int64_t Ntot) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++)
            P[n * D + d] += (float)(Y[n * D + d] * g[d] / (double)Ntot);
}

/* After agreement: the cache's global batch must be this call's. */
static ss_status dst_check_ntot(const char *fn, const void *cache,
                                int64_t Ntot) {
    dst_header h;
    memcpy(&h, cache, sizeof h);
    return ss__dist_check_ntot(fn, h.Ntot, Ntot);
}

ss_status ss_dist_barlow_backward(float *da, float *db, float dloss,
                                  const void *cache, const float *a,
                                  const float *b, int64_t N, int64_t D,
                                  const ss_barlow_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_barlow_backward";
    SS_TRY(ss_comm_check(comm));
    ss_barlow_opts o = opts ? *opts : ss_barlow_defaults();
    ss_status st = ss__check_view_backward(fn, da, db, cache, dloss);
    if (st == SS_OK) st = dbt_check_opts(fn, &o);
    if (st == SS_OK) st = dst_check_ab(fn, a, b, N, D, o.form);
    float p[4] = {o.lambda, o.bn_eps, 0.0f, 0.0f};
    if (st == SS_OK) st = dst_check_cache(fn, cache, DBT_MAGIC, N, D, p);
    double vals[4] = {(double)D, o.lambda, o.bn_eps,
                      isfinite(dloss) ? dloss : 0.0};
    int64_t Ntot = 0;
    SS_TRY(dst_agree(comm, fn, st, vals, dbt_names, 4, N, &Ntot));
    st = dst_check_ntot(fn, cache, Ntot);
    float *A = ss__malloc(3 * (size_t)(N * D) * sizeof(float));
    double *col = ss__malloc(4 * (size_t)D * sizeof(double));
    if (st == SS_OK && (!A || !col))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for 3 N D floats (N=%lld, "
                      "D=%lld)", (long long)N, (long long)D);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) {
        float *B = A + N * D, *P = B + N * D;
        double *g = col + 3 * D, dl = (double)dloss * comm->size;
        dbt_view v = dbt_layout(cache, D);
        ss__col_center(A, a, v.mean_a, v.scale_a, N, D);
        ss__col_center(B, b, v.mean_b, v.scale_b, N, D);
        for (int64_t d = 0; d < D; d++)
            g[d] = -2.0 * (1.0 - v.cdiag[d]) - 2.0 * o.lambda * v.cdiag[d];
        float lam2 = 2.0f * o.lambda / (float)Ntot;
        ss__gemm_par(0, 1, N, D, D, lam2, B, D, v.C, D, 0.0f, P, D);
        dbt_add_diag(P, B, g, N, D, Ntot);
        st = dbt_view_backward(comm, fn, da, P, A, v.scale_a, col, N, D, Ntot,
                               dl);
        if (st == SS_OK) {
            ss__gemm_par(0, 0, N, D, D, lam2, A, D, v.C, D, 0.0f, P, D);
            dbt_add_diag(P, A, g, N, D, Ntot);
            st = dbt_view_backward(comm, fn, db, P, B, v.scale_b, col, N, D,
                                   Ntot, dl);
        }
    }
    ss__free(A), ss__free(col);
    return st;
}

/* ---- VICReg --------------------------------------------------------------- */

/* Cache after the header: doubles mean_a, mean_b, var_a, var_b (D each),
 * then K_a, K_b = global X^T X (D, D) floats each. */
size_t ss_dist_vicreg_cache_size(int64_t D) {
    if (ss__check_size("ss_dist_vicreg_cache_size", "D", D, 1) != SS_OK ||
        ss__check_product("ss_dist_vicreg_cache_size", D, D, 2) != SS_OK)
        return 0;
    return DST_HEADER_BYTES + 4 * (size_t)D * sizeof(double) +
           2 * (size_t)D * (size_t)D * sizeof(float);
}

static ss_status dvr_check_opts(const char *fn, const ss_vicreg_opts *o) {
    const float v[4] = {o->lambda, o->mu, o->nu, o->eps};
    static const char *const nm[4] = {"lambda", "mu", "nu", "eps"};
    for (int k = 0; k < 4; k++)
        if (!isfinite(v[k]) || (k == 3 && v[k] < 0.0f))
            return ss__fail(SS_ERR_PARAM, fn, "%s must be finite%s, got %g",
                            nm[k], k == 3 ? " and >= 0" : "", (double)v[k]);
    return SS_OK;
}

static const char *const dvr_names[] = {"D", "lambda", "mu", "nu", "eps",
                                         "dloss"};

typedef struct {
    double *mean[2], *var[2];
    float *K[2];
} dvr_view;

static dvr_view dvr_layout(const void *cache, int64_t D) {
    dvr_view v;
    double *d = (double *)((char *)(uintptr_t)cache + DST_HEADER_BYTES);
    v.mean[0] = d, v.mean[1] = d + D, v.var[0] = d + 2 * D;
    v.var[1] = d + 3 * D;
    v.K[0] = (float *)(d + 4 * D);
    v.K[1] = v.K[0] + D * D;
    return v;
}

ss_status ss_dist_vicreg_forward(float *loss, float *terms, void *cache,
                                 const float *a, const float *b, int64_t N,
                                 int64_t D, const ss_vicreg_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_vicreg_forward";
    SS_TRY(ss_comm_check(comm));
    ss_vicreg_opts o = opts ? *opts : ss_vicreg_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dvr_check_opts(fn, &o);
    if (st == SS_OK) st = dst_check_ab(fn, a, b, N, D, o.form);
    double vals[5] = {(double)D, o.lambda, o.mu, o.nu, o.eps};
    int64_t Ntot = 0;
    SS_TRY(dst_agree(comm, fn, st, vals, dvr_names, 5, N, &Ntot));
    float *X = ss__malloc(2 * (size_t)(N * D) * sizeof(float));
    size_t nred = 2 * (size_t)D * D + 2 * (size_t)D + 1;
    double *red = ss__malloc(nred * sizeof(double));
    st = X && red ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for 2 N D "
                                     "floats and 2 D^2 doubles (N=%lld, "
                                     "D=%lld)", (long long)N, (long long)D);
    st = ss__dist_status(comm, fn, st);
    dvr_view v = dvr_layout(cache, D);
    float *Y = X ? X + N * D : NULL;
    if (st == SS_OK)
        st = dst_standardise(comm, fn, X, Y, v.mean[0], v.mean[1], v.var[0],
                             v.var[1], a, b, N, D, Ntot, 0.0, red, 1);
    if (st == SS_OK) { /* local X^T X per view and sum (a - b)^2 */
        const float *xc[2] = {X, Y};
        for (int k = 0; k < 2; k++) {
            ss__syrk(v.K[k], xc[k], D, N, 1, 1.0f);
            f2d(red + k * D * D, v.K[k], D * D);
        }
        double sq = 0.0;
        for (int64_t i = 0; i < N * D; i++) {
            double t = (double)a[i] - b[i];
            sq += t * t;
        }
        red[2 * D * D] = sq;
        st = ss__dist_allreduce(comm, fn, red, 2 * D * D + 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) {
        double nm1 = (double)(Ntot - 1), var_t = 0.0, cov_t = 0.0;
        for (int k = 0; k < 2; k++) {
            double hinge = 0.0;
            for (int64_t i = 0; i < D * D; i++)
                v.K[k][i] = (float)red[k * D * D + i];
            for (int64_t d = 0; d < D; d++)
                hinge += fmax(1.0 - sqrt(v.var[k][d] + o.eps), 0.0);
            var_t += 0.5 * hinge / (double)D;
            /* scratch for frob_dot past the reduced values */
            double off = ss__frob_dot(v.K[k], NULL, D, 1, red + 2 * D * D + 1);
            cov_t += off / (nm1 * nm1) / (double)D;
        }
        double inv_t = red[2 * D * D] / ((double)Ntot * D);
        dst_header h;
        memset(&h, 0, sizeof h);
        h.magic = DVR_MAGIC, h.N = N, h.D = D, h.Ntot = Ntot;
        h.p[0] = o.lambda, h.p[1] = o.mu, h.p[2] = o.nu, h.p[3] = o.eps;
        memcpy(cache, &h, sizeof h);
        *loss = (float)(o.lambda * inv_t + o.mu * var_t + o.nu * cov_t);
        if (terms)
            terms[0] = (float)inv_t, terms[1] = (float)var_t,
            terms[2] = (float)cov_t;
    }
    ss__free(X), ss__free(red);
    return st;
}

/* vicreg.c's centring backward of one view with global column sums. */
static ss_status dvr_view_backward(const ss_comm *c, const char *fn,
                                   float *dx, const float *P, const float *X,
                                   const double *var, double *col, int64_t N,
                                   int64_t D, int64_t Ntot, double dl,
                                   const ss_vicreg_opts *o) {
    double *a = col, *b = col + D, *s0 = col + 2 * D, *cc = col + 3 * D;
    double nm1 = (double)(Ntot - 1), alpha = dl * 4.0 * o->nu / (D * nm1 * nm1);
    ss__col_dot(b, P, NULL, N, D);
    ss__col_dot(s0, X, NULL, N, D);
    SS_TRY(ss__dist_allreduce(c, fn, b, 2 * D, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int64_t d = 0; d < D; d++) {
        double s = sqrt(var[d] + o->eps);
        double k = -4.0 * o->nu * var[d] / (D * nm1);
        if (1.0 - s > 0.0) k -= 0.5 * o->mu / (D * s * nm1);
        a[d] = alpha;
        cc[d] = dl * k;
        b[d] = -(alpha * b[d] + cc[d] * s0[d]) / (double)Ntot;
    }
    ss__col_apply(dx, P, a, b, cc, X, N, D);
    return SS_OK;
}

ss_status ss_dist_vicreg_backward(float *da, float *db, float dloss,
                                  const void *cache, const float *a,
                                  const float *b, int64_t N, int64_t D,
                                  const ss_vicreg_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_vicreg_backward";
    SS_TRY(ss_comm_check(comm));
    ss_vicreg_opts o = opts ? *opts : ss_vicreg_defaults();
    ss_status st = ss__check_view_backward(fn, da, db, cache, dloss);
    if (st == SS_OK) st = dvr_check_opts(fn, &o);
    if (st == SS_OK) st = dst_check_ab(fn, a, b, N, D, o.form);
    float p[4] = {o.lambda, o.mu, o.nu, o.eps};
    if (st == SS_OK) st = dst_check_cache(fn, cache, DVR_MAGIC, N, D, p);
    double vals[6] = {(double)D, o.lambda, o.mu, o.nu, o.eps,
                      isfinite(dloss) ? dloss : 0.0};
    int64_t Ntot = 0;
    SS_TRY(dst_agree(comm, fn, st, vals, dvr_names, 6, N, &Ntot));
    st = dst_check_ntot(fn, cache, Ntot);
    float *X = ss__malloc(2 * (size_t)(N * D) * sizeof(float));
    double *col = ss__malloc(4 * (size_t)D * sizeof(double));
    if (st == SS_OK && (!X || !col))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for 2 N D floats (N=%lld, "
                      "D=%lld)", (long long)N, (long long)D);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) {
        float *P = X + N * D;
        double dl = (double)dloss * comm->size;
        dvr_view v = dvr_layout(cache, D);
        const float *x[2] = {a, b};
        float *dx[2] = {da, db};
        for (int k = 0; k < 2 && st == SS_OK; k++) {
            ss__col_center(X, x[k], v.mean[k], NULL, N, D);
            ss__gemm_par(0, 0, N, D, D, 1.0f, X, D, v.K[k], D, 0.0f, P, D);
            st = dvr_view_backward(comm, fn, dx[k], P, X, v.var[k], col, N, D,
                                   Ntot, dl, &o);
        }
        if (st == SS_OK) { /* invariance: 2 lambda (a - b) / (Ntot D) */
            double w = 2.0 * o.lambda * dl / ((double)Ntot * D);
            for (int64_t i = 0; i < N * D; i++) {
                float t = (float)(w * ((double)a[i] - b[i]));
                da[i] += t, db[i] -= t;
            }
        }
    }
    ss__free(X), ss__free(col);
    return st;
}
