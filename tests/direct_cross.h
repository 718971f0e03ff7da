/*
 * direct_cross.h - direct (untiled) double-precision references for the
 * cross-similarity losses: MoCo with a queue, CLIP, SigLIP. They form the
 * whole logit matrix and are meant for small tests only.
 *
 * Each returns the loss, writes per-anchor losses (or NULL) and the
 * gradients for dloss = 1 (each pointer may be NULL; written, not
 * accumulated). cosine: normalise inputs as torch F.normalize(eps=1e-12).
 */
#ifndef SS_TEST_DIRECT_CROSS_H
#define SS_TEST_DIRECT_CROSS_H

#include "harness.h"

#include <stdint.h>

double dc_moco(const double *q, const double *k, const double *queue, int64_t N,
               int64_t K, int64_t D, double temperature, int cosine,
               double *losses, double *dq, double *dk);

double dc_clip(const double *a, const double *b, double log_scale, int64_t N,
               int64_t D, int cosine, double *losses, double *da, double *db,
               double *dlog_scale);

double dc_siglip(const double *a, const double *b, double log_t, double bias,
                 int64_t N, int64_t D, int cosine, double *losses, double *da,
                 double *db, double *dlog_t, double *dbias);

/* max_i |got_i - want_i| / max(max_i |want_i|, floor): normwise relative
 * error that stays meaningful when the true gradient is (nearly) zero. */
double dc_err(const float *got, const double *want, int64_t n, double floor);
#define DC_CHECK_GRAD(got, want, n, tol, floor, what)                          \
    do {                                                                       \
        ss_test_checks++;                                                      \
        double dc__e = dc_err(got, want, n, floor);                            \
        if (!(dc__e <= (tol)))                                                 \
            ss_test_fail_at(__FILE__, __LINE__, "%s: rel err %.3g > %g", what, \
                            dc__e, (double)(tol));                             \
    } while (0)

/* after == pre + g up to float rounding of the accumulation: checks that a
 * backward call added g to a pre-filled buffer. */
int dc_accumulated(const float *after, const float *pre, const float *g,
                   int64_t n);

/* float <-> double copies (malloc'd; abort the run on OOM). */
double *dc_to_double(const float *x, int64_t n);

#endif
