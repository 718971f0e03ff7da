/* util.c - numeric helpers for tests: comparisons, random data, finite
 * differences. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static double rel_err(const void *got, int got_f32, const void *want,
                      int want_f32, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double g = got_f32 ? ((const float *)got)[i] : ((const double *)got)[i];
        double w = want_f32 ? ((const float *)want)[i]
                            : ((const double *)want)[i];
        double e = fabs(g - w);
        if (!(e <= num)) num = e; /* NaN propagates into num */
        if (fabs(w) > den) den = fabs(w);
    }
    return den > 0 ? num / den : num;
}

double ss_test_rel_err_fd(const float *got, const double *want, int64_t n) {
    return rel_err(got, 1, want, 0, n);
}
double ss_test_rel_err_dd(const double *got, const double *want, int64_t n) {
    return rel_err(got, 0, want, 0, n);
}
double ss_test_rel_err_ff(const float *got, const float *want, int64_t n) {
    return rel_err(got, 1, want, 1, n);
}

void ss_test_fill_normal(float *x, int64_t n, ss_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)ss_rng_normal(rng);
}
void ss_test_fill_normal_d(double *x, int64_t n, ss_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = ss_rng_normal(rng);
}

float *ss_test_alloc(int64_t n) {
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "test allocation of %lld floats failed\n", (long long)n);
        exit(2);
    }
    return p;
}

double *ss_test_alloc_d(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) {
        fprintf(stderr, "test allocation of %lld doubles failed\n", (long long)n);
        exit(2);
    }
    return p;
}

static double probe_err(double fd, double an) {
    double s = fmax(fmax(fabs(fd), fabs(an)), 1e-8);
    return fabs(fd - an) / s;
}

double ss_test_fd_max_err(ss_test_scalar_fn f, void *ctx, const double *x,
                          const double *grad, int64_t n, double h,
                          uint64_t seed) {
    double *xp = ss_test_alloc_d(n);
    memcpy(xp, x, (size_t)n * sizeof *x);
    double worst = 0.0;
    int64_t probes = n < 48 ? n : 48;
    for (int64_t p = 0; p < probes; p++) {
        int64_t i = probes == n ? p : (p * n) / probes;
        double keep = xp[i];
        xp[i] = keep + h;
        double fp = f(xp, ctx);
        xp[i] = keep - h;
        double fm = f(xp, ctx);
        xp[i] = keep;
        worst = fmax(worst, probe_err((fp - fm) / (2 * h), grad[i]));
    }
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    double *dir = ss_test_alloc_d(n);
    for (int r = 0; r < 4; r++) {
        ss_test_fill_normal_d(dir, n, &rng);
        double an = 0.0;
        for (int64_t i = 0; i < n; i++) an += dir[i] * grad[i];
        for (int64_t i = 0; i < n; i++) xp[i] = x[i] + h * dir[i];
        double fp = f(xp, ctx);
        for (int64_t i = 0; i < n; i++) xp[i] = x[i] - h * dir[i];
        double fm = f(xp, ctx);
        worst = fmax(worst, probe_err((fp - fm) / (2 * h), an));
    }
    free(dir);
    free(xp);
    return worst;
}
