/*
 * geom_testutil.h - small helpers shared by the geometry tests
 * (test_tico.c ... test_tcr.c): gradient comparison, float/double copies.
 */
#ifndef SS_TEST_GEOM_TESTUTIL_H
#define SS_TEST_GEOM_TESTUTIL_H

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

/* Normwise relative error, absolute when want is zero up to rounding. */
static inline double geom_err(const float *got, const double *want, int64_t n) {
    double den = 0.0, num = 0.0;
    for (int64_t i = 0; i < n; i++) den = fmax(den, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= num)) num = e;
    }
    return den > 1e-12 ? num / den : num;
}

#define GEOM_CHECK_GRAD(got, want, n, tol, what)                              \
    do {                                                                      \
        double e_ = geom_err(got, want, n);                                   \
        if (!(e_ <= (tol))) fprintf(stderr, "%s: err %.3g\n", what, e_);      \
        SS_CHECK(e_ <= (tol));                                                \
    } while (0)

/* Double-vs-double normwise error with the scale floored at 1, so an
 * exactly-zero gradient (e.g. D = 1 after normalisation) compares against
 * PyTorch's rounding noise in absolute terms. */
static inline double geom_err_dd(const double *got, const double *want,
                                 int64_t n) {
    double den = 1.0, num = 0.0;
    for (int64_t i = 0; i < n; i++) den = fmax(den, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= num)) num = e;
    }
    return num / den;
}

static inline double *geom_to_d(const float *x, int64_t n) {
    double *d = ss_test_alloc_d(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *geom_to_f(const double *x, int64_t n) {
    float *f = ss_test_alloc(n);
    for (int64_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

#endif
