/* sinkhorn.c - log-domain Sinkhorn-Knopp on dual vectors (sinkhorn.h). */
#include "sinkhorn.h"

#include "../internal.h"

#include <math.h>

/* Columns are split into fixed chunks so that each column's reduction runs
 * over rows in the same order whatever the thread count. */
#define SK_COL_CHUNK 64

static const float *row_ptr(const ss__sk_kernel *kern, int64_t r) {
    return r < kern->rows[0] ? kern->x[0] + r * kern->K
                             : kern->x[1] + (r - kern->rows[0]) * kern->K;
}

/* Per column k of chunk c, over this rank's rows: the max of A_rk + v_r
 * (pass 0, into mx) or the sum of exp(A_rk + v_r - mx_k) (pass 1, into sum). */
static void column_pass(const ss__sk_kernel *kern, const double *v, double *mx,
                        double *sum, int pass) {
    int64_t R = kern->rows[0] + kern->rows[1], K = kern->K;
    int64_t nchunk = (K + SK_COL_CHUNK - 1) / SK_COL_CHUNK;
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (R * K >= SS__PAR_MIN)
    for (int64_t c = 0; c < nchunk; c++) {
        int64_t k0 = c * SK_COL_CHUNK;
        int64_t k1 = k0 + SK_COL_CHUNK < K ? k0 + SK_COL_CHUNK : K;
        for (int64_t k = k0; k < k1; k++) {
            if (pass == 0) mx[k] = -INFINITY;
            else sum[k] = 0.0;
        }
        for (int64_t r = 0; r < R; r++) {
            const float *x = row_ptr(kern, r);
            double o = v[r] + (kern->off ? kern->off[r] : 0.0);
            if (pass == 0)
                for (int64_t k = k0; k < k1; k++)
                    mx[k] = fmax(mx[k], kern->scale * (double)x[k] + o);
            else
                for (int64_t k = k0; k < k1; k++)
                    sum[k] += exp(kern->scale * (double)x[k] + o - mx[k]);
        }
    }
}

/* u_k = -log K - LSE_r(A_rk + v_r), two passes (max, then sum), each
 * completed across ranks when red is given. */
static int column_step(const ss__sk_kernel *kern, const double *v, double *u,
                       double *ws, const ss__sk_reduce *red) {
    int64_t K = kern->K;
    double *mx = ws, *sum = ws + K;
    column_pass(kern, v, mx, sum, 0);
    if (red && red->max(red->ctx, mx, K)) return 1;
    column_pass(kern, v, mx, sum, 1);
    if (red && red->sum(red->ctx, sum, K)) return 1;
    for (int64_t k = 0; k < K; k++)
        u[k] = -log((double)K) - (mx[k] + log(sum[k]));
    return 0;
}

/* v_r = shift - LSE_k(A_rk + u_k). */
static void row_step(const ss__sk_kernel *kern, const double *u, double *v,
                     double shift) {
    int64_t R = kern->rows[0] + kern->rows[1], K = kern->K;
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (R * K >= SS__PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *x = row_ptr(kern, r);
        double o = kern->off ? kern->off[r] : 0.0, m = -INFINITY, s = 0.0;
        for (int64_t k = 0; k < K; k++)
            m = fmax(m, kern->scale * (double)x[k] + o + u[k]);
        for (int64_t k = 0; k < K; k++)
            s += exp(kern->scale * (double)x[k] + o + u[k] - m);
        v[r] = shift - (m + log(s));
    }
}

/* LSE over the whole kernel into *g, rows reduced in a fixed order. */
static int global_lse(const ss__sk_kernel *kern, double *v,
                      const ss__sk_reduce *red, double *g) {
    int64_t R = kern->rows[0] + kern->rows[1], K = kern->K;
    /* row LSEs into v (scratch here), then the LSE over rows */
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (R * K >= SS__PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *x = row_ptr(kern, r);
        double o = kern->off ? kern->off[r] : 0.0, m = -INFINITY, s = 0.0;
        for (int64_t k = 0; k < K; k++) m = fmax(m, kern->scale * (double)x[k] + o);
        for (int64_t k = 0; k < K; k++) s += exp(kern->scale * (double)x[k] + o - m);
        v[r] = m + log(s);
    }
    double m = -INFINITY, s = 0.0;
    for (int64_t r = 0; r < R; r++) m = fmax(m, v[r]);
    if (red && red->max(red->ctx, &m, 1)) return 1;
    for (int64_t r = 0; r < R; r++) s += exp(v[r] - m);
    if (red && red->sum(red->ctx, &s, 1)) return 1;
    *g = m + log(s);
    return 0;
}

int ss__sinkhorn_log_red(const ss__sk_kernel *kern, int64_t iters, double *u,
                         double *v, double *ws, const ss__sk_reduce *red) {
    int64_t R = kern->rows[0] + kern->rows[1];
    double logR = log((double)(red ? red->rows_total : R)), g = 0.0;
    if (global_lse(kern, v, red, &g)) return 1;
    for (int64_t k = 0; k < kern->K; k++) u[k] = 0.0;
    for (int64_t r = 0; r < R; r++) v[r] = -g;
    for (int64_t it = 0; it < iters; it++) {
        if (column_step(kern, v, u, ws, red)) return 1;
        row_step(kern, u, v, -logR);
    }
    for (int64_t r = 0; r < R; r++) v[r] += logR;
    return 0;
}

void ss__sinkhorn_log(const ss__sk_kernel *kern, int64_t iters, double *u,
                      double *v, double *ws) {
    (void)ss__sinkhorn_log_red(kern, iters, u, v, ws, NULL);
}
