/*
 * predictive.h - helpers shared by the predictive family (mlm.c,
 * fused_ce.c). Not installed.
 */
#ifndef SS_PREDICTIVE_H
#define SS_PREDICTIVE_H

#include "internal.h"

#include <string.h>

#ifdef _OPENMP
#define SS__PRAGMA(x) _Pragma(#x)
#define SS__SIMD_SUM(v) SS__PRAGMA(omp simd reduction(+ : v))
#else
#define SS__SIMD_SUM(v)
#endif

/* e^x for x <= 0 (softmax terms), relative error ~2e-7, 0 below -87.
 * Branch-free so that the chunk loops vectorise (glibc's vector expf needs
 * -ffast-math): x = n ln2 + r, |r| <= ln2 / 2, e^r by its degree-6 Taylor
 * polynomial (error < 1.3e-7 on that range), 2^n through the exponent bits. */
static inline float ss__exp_le0(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    float n = xc * 1.44269504f + 12582912.0f; /* round to nearest integer */
    n -= 12582912.0f;
    float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f; /* ln2 hi - lo */
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

/* Every targets[t] is in [0, V) or equals ignore; else SS_ERR_LABEL naming
 * the first bad index and its value. *n_scored: rows not ignored. */
ss_status ss__check_targets(const char *fn, const int64_t *targets,
                            int64_t T, int64_t V, int64_t ignore,
                            int64_t *n_scored);
/* w NULL, or every w[c] (V of them) finite and >= 0. */
ss_status ss__check_class_weights(const char *fn, const float *w, int64_t V);
/* label_smoothing in [0, 1]. */
ss_status ss__check_smoothing(const char *fn, float eps);
/* The normaliser W (sum of w[y_t] over scored rows) in a forward cache of
 * ss_mlm / ss_fused_ce; the backward scales by dloss / W. The distributed
 * losses (dist_predictive.c) replace it with the global W / world_size. */
double *ss__mlm_cache_norm(void *cache);
double *ss__fused_ce_cache_norm(void *cache);


#endif
