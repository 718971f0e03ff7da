/* direct_redundancy.c - plain double references (see the header). */
#include "direct_redundancy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double *dr_alloc(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) abort(); /* test helper: out of memory ends the run */
    return p;
}

double dr_negcos(const double *p, const double *z, int64_t N, int64_t D,
                 double eps, double *losses, double *dp, double *dz) {
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const double *pn = p + n * D, *zn = z + n * D;
        double pp = 0, zz = 0, pz = 0;
        for (int64_t d = 0; d < D; d++)
            pp += pn[d] * pn[d], zz += zn[d] * zn[d], pz += pn[d] * zn[d];
        double np = fmax(sqrt(pp), eps), nz = fmax(sqrt(zz), eps);
        double c = pz / (np * nz);
        if (losses) losses[n] = -c;
        total -= c;
        for (int64_t d = 0; d < D; d++) {
            /* d(-cos/N)/dp; the clamp's value enters the derivative too */
            if (dp) dp[n * D + d] = -(zn[d] / (np * nz) - c * pn[d] / (np * np)) / N;
            if (dz) dz[n * D + d] = -(pn[d] / (np * nz) - c * zn[d] / (nz * nz)) / N;
        }
    }
    return total / N;
}

/* Batch norm of x (N, D) into y; mean/invstd per column. */
static void dr_bn(const double *x, double *y, double *inv, int64_t N,
                  int64_t D, double eps) {
    for (int64_t d = 0; d < D; d++) {
        double m = 0, v = 0;
        for (int64_t n = 0; n < N; n++) m += x[n * D + d];
        m /= N;
        for (int64_t n = 0; n < N; n++) v += (x[n * D + d] - m) * (x[n * D + d] - m);
        inv[d] = 1.0 / sqrt(v / N + eps);
        for (int64_t n = 0; n < N; n++) y[n * D + d] = (x[n * D + d] - m) * inv[d];
    }
}

/* dx = inv (g - mean g - y mean(g y)), column by column. */
static void dr_bn_back(const double *g, const double *y, const double *inv,
                       double *dx, int64_t N, int64_t D) {
    for (int64_t d = 0; d < D; d++) {
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++) s1 += g[n * D + d], s2 += g[n * D + d] * y[n * D + d];
        for (int64_t n = 0; n < N; n++)
            dx[n * D + d] = inv[d] * (g[n * D + d] - s1 / N - y[n * D + d] * s2 / N);
    }
}

double dr_barlow(const double *a, const double *b, int64_t N, int64_t D,
                 double lambda, double eps, double *terms, double *da,
                 double *db) {
    double *A = dr_alloc(N * D), *B = dr_alloc(N * D), *ia = dr_alloc(D),
           *ib = dr_alloc(D), *C = dr_alloc(D * D), *G = dr_alloc(D * D);
    dr_bn(a, A, ia, N, D, eps);
    dr_bn(b, B, ib, N, D, eps);
    double on = 0, off = 0;
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += A[n * D + i] * B[n * D + j];
            double c = s / N;
            C[i * D + j] = c;
            if (i == j) on += (1 - c) * (1 - c), G[i * D + j] = -2 * (1 - c);
            else off += c * c, G[i * D + j] = 2 * lambda * c;
        }
    if (da || db) {
        double *gA = dr_alloc(N * D), *gB = dr_alloc(N * D);
        /* C = A^T B / N: dA = B G^T / N, dB = A G / N */
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < D; i++) {
                double sa = 0, sb = 0;
                for (int64_t j = 0; j < D; j++)
                    sa += B[n * D + j] * G[i * D + j], sb += A[n * D + j] * G[j * D + i];
                gA[n * D + i] = sa / N, gB[n * D + i] = sb / N;
            }
        if (da) dr_bn_back(gA, A, ia, da, N, D);
        if (db) dr_bn_back(gB, B, ib, db, N, D);
        free(gA), free(gB);
    }
    if (terms) terms[0] = on, terms[1] = off;
    free(A), free(B), free(ia), free(ib), free(C), free(G);
    return on + lambda * off;
}

/* Variance + covariance part of one view; adds its gradient into dx. */
static void dr_vc_view(const double *x, int64_t N, int64_t D, double mu,
                       double nu, double eps, double *var_t, double *cov_t,
                       double *dx) {
    double *X = dr_alloc(N * D), *Cov = dr_alloc(D * D), *gX = dr_alloc(N * D);
    for (int64_t d = 0; d < D; d++) {
        double m = 0;
        for (int64_t n = 0; n < N; n++) m += x[n * D + d];
        m /= N;
        for (int64_t n = 0; n < N; n++) X[n * D + d] = x[n * D + d] - m;
    }
    double hinge = 0, off = 0;
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += X[n * D + i] * X[n * D + j];
            Cov[i * D + j] = s / (N - 1);
            if (i != j) off += Cov[i * D + j] * Cov[i * D + j];
        }
    /* dL/dCov_ij = 2 nu Cov_ij / D off the diagonal; dCov/dX = 2 X / (N-1)
     * by symmetry; the variance hinge acts on Cov_ii */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < D; i++) {
            double s = 0;
            for (int64_t j = 0; j < D; j++)
                if (j != i) s += X[n * D + j] * 2 * nu * Cov[i * D + j] / D;
            gX[n * D + i] = 2 * s / (N - 1);
        }
    for (int64_t d = 0; d < D; d++) {
        double sd = sqrt(Cov[d * D + d] + eps);
        if (1 - sd > 0) {
            hinge += 1 - sd;
            double g = -0.5 * mu / D / (2 * sd); /* d(0.5 mu mean relu)/dvar */
            for (int64_t n = 0; n < N; n++) gX[n * D + d] += g * 2 * X[n * D + d] / (N - 1);
        }
    }
    *var_t += 0.5 * hinge / D;
    *cov_t += off / D;
    if (dx) /* centring backward: subtract column means */
        for (int64_t d = 0; d < D; d++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += gX[n * D + d];
            for (int64_t n = 0; n < N; n++) dx[n * D + d] += gX[n * D + d] - s / N;
        }
    free(X), free(Cov), free(gX);
}

double dr_vicreg(const double *a, const double *b, int64_t N, int64_t D,
                 double lambda, double mu, double nu, double eps,
                 double *terms, double *da, double *db) {
    double inv = 0, var_t = 0, cov_t = 0;
    for (int64_t i = 0; i < N * D; i++) inv += (a[i] - b[i]) * (a[i] - b[i]);
    inv /= (double)(N * D);
    if (da) memset(da, 0, (size_t)(N * D) * sizeof(double));
    if (db) memset(db, 0, (size_t)(N * D) * sizeof(double));
    dr_vc_view(a, N, D, mu, nu, eps, &var_t, &cov_t, da);
    dr_vc_view(b, N, D, mu, nu, eps, &var_t, &cov_t, db);
    for (int64_t i = 0; i < N * D; i++) {
        double g = 2 * lambda * (a[i] - b[i]) / (double)(N * D);
        if (da) da[i] += g;
        if (db) db[i] -= g;
    }
    if (terms) terms[0] = inv, terms[1] = var_t, terms[2] = cov_t;
    return lambda * inv + mu * var_t + nu * cov_t;
}
