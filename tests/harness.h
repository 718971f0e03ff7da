/*
 * harness.h - the selfsup-test driver: registration, asserts, numeric
 * comparisons and finite differences.
 *
 * A test file tests/test_<group>.c defines tests with SS_TEST(name); they
 * register themselves at start-up under <group>. `selfsup-test -o <group>`
 * runs one group (ctest registers one entry per group); `-o <group>/<name>`
 * runs one test; no filter runs all.
 */
#ifndef SS_TEST_HARNESS_H
#define SS_TEST_HARNESS_H

#include "selfsup.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*ss_test_fn)(void);
void ss_test_register(const char *file, const char *name, ss_test_fn fn);

#define SS_TEST(name)                                                      \
    static void ss_test_##name(void);                                      \
    __attribute__((constructor)) static void ss_test_reg_##name(void) {    \
        ss_test_register(__FILE__, #name, ss_test_##name);                 \
    }                                                                      \
    static void ss_test_##name(void)

/* Failure bookkeeping for the running test. */
void ss_test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
extern int ss_test_checks; /* assertions evaluated in this run */

#define SS_CHECK(cond)                                                      \
    do {                                                                    \
        ss_test_checks++;                                                   \
        if (!(cond)) ss_test_fail_at(__FILE__, __LINE__, "%s", #cond);      \
    } while (0)

/* Evaluates a call and checks its status; prints ss_last_error on failure. */
#define SS_CHECK_STATUS(expr, want)                                         \
    do {                                                                    \
        ss_test_checks++;                                                   \
        ss_status ss__got = (expr);                                         \
        if (ss__got != (want))                                              \
            ss_test_fail_at(__FILE__, __LINE__, "%s returned %s, want %s (%s)", \
                            #expr, ss_status_name(ss__got),                 \
                            ss_status_name(want), ss_last_error());         \
    } while (0)
#define SS_CHECK_OK(expr) SS_CHECK_STATUS(expr, SS_OK)

#define SS_CHECK_INT(a, b)                                                  \
    do {                                                                    \
        ss_test_checks++;                                                   \
        long long ss__a = (long long)(a), ss__b = (long long)(b);           \
        if (ss__a != ss__b)                                                 \
            ss_test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld",   \
                            #a, #b, ss__a, ss__b);                          \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define SS_CHECK_NEAR(a, b, tol)                                            \
    do {                                                                    \
        ss_test_checks++;                                                   \
        double ss__a = (double)(a), ss__b = (double)(b);                    \
        double ss__s = fabs(ss__b) > 1.0 ? fabs(ss__b) : 1.0;               \
        if (!(fabs(ss__a - ss__b) <= (tol) * ss__s))                        \
            ss_test_fail_at(__FILE__, __LINE__,                             \
                            "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b,       \
                            ss__a, ss__b, (double)(tol));                   \
    } while (0)

/* The error message names the value: checks ss_last_error() contains s. */
#define SS_CHECK_MSG_HAS(s) SS_CHECK(ss_test_msg_has(s))
int ss_test_msg_has(const char *s);

/* Normwise relative error max_i |got_i - want_i| / max_i |want_i|
 * (absolute when want is all zeros). */
double ss_test_rel_err_fd(const float *got, const double *want, int64_t n);
double ss_test_rel_err_dd(const double *got, const double *want, int64_t n);
double ss_test_rel_err_ff(const float *got, const float *want, int64_t n);

/* Checks got against want with ss_test_rel_err_*, reporting what. */
#define SS_CHECK_CLOSE_FD(got, want, n, tol, what)                          \
    do {                                                                    \
        ss_test_checks++;                                                   \
        double ss__e = ss_test_rel_err_fd(got, want, n);                    \
        if (!(ss__e <= (tol)))                                              \
            ss_test_fail_at(__FILE__, __LINE__, "%s: rel err %.3g > %g",    \
                            what, ss__e, (double)(tol));                    \
    } while (0)
#define SS_CHECK_CLOSE_FF(got, want, n, tol, what)                          \
    do {                                                                    \
        ss_test_checks++;                                                   \
        double ss__e = ss_test_rel_err_ff(got, want, n);                    \
        if (!(ss__e <= (tol)))                                              \
            ss_test_fail_at(__FILE__, __LINE__, "%s: rel err %.3g > %g",    \
                            what, ss__e, (double)(tol));                    \
    } while (0)

/* Random data. */
void ss_test_fill_normal(float *x, int64_t n, ss_rng *rng);
void ss_test_fill_normal_d(double *x, int64_t n, ss_rng *rng);
float *ss_test_alloc(int64_t n); /* zeroed; aborts the run on OOM */
double *ss_test_alloc_d(int64_t n);

/* Finite differences in double precision.
 * f(x, ctx) -> scalar. grad: the analytic gradient at x, (n).
 * Checks up to 48 coordinates (spread over x) and 4 random directions with
 * central differences of step h; returns the worst relative error
 * |fd - analytic| / max(|fd|, |analytic|, 1e-8) over those probes. */
typedef double (*ss_test_scalar_fn)(const double *x, void *ctx);
double ss_test_fd_max_err(ss_test_scalar_fn f, void *ctx, const double *x,
                          const double *grad, int64_t n, double h,
                          uint64_t seed);

#endif
