/*
 * vexp.h - elementwise math the tile loops inline: a branch-free float exp
 * and softplus that GCC vectorises (glibc's vector expf needs -ffast-math,
 * and a call to expf stops the loop from vectorising), plus the scalar
 * double softplus used outside the tiles.
 */
#ifndef SS_KERNELS_VEXP_H
#define SS_KERNELS_VEXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Inputs are clamped to this range; below it the result is 0. */
#define SS__VEXP_LO (-87.3f) /* e^-87.3 ~ 1.2e-38, just above FLT_MIN */
#define SS__VEXP_HI 88.3f    /* e^88.3 ~ 2.2e38, below FLT_MAX */

/* e^x in float.
 * Accuracy: max relative error 8.5e-8 (1.4 ulp), measured against double
 * exp at every float in [SS__VEXP_LO, SS__VEXP_HI].
 * Range: 0 for x < SS__VEXP_LO (including -inf, so masked logits drop
 * out); e^SS__VEXP_HI for x > SS__VEXP_HI (never inf); NaN stays NaN.
 * Method (Cephes expf): x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in
 * two for an exact n ln2; a degree-7 polynomial for e^r; 2^n from the
 * exponent bits. n is rounded by adding 1.5 * 2^23, not floorf, so that
 * the loops vectorise even with trapping math. */
static inline float ss__vexp(float x) {
    /* clamps written so that NaN becomes a bound: n stays a small integer
     * (converting NaN to int32_t is undefined) */
    float xc = x < SS__VEXP_HI ? x : SS__VEXP_HI;
    xc = xc > SS__VEXP_LO ? xc : SS__VEXP_LO;
    float n = xc * 1.44269504089f + 12582912.0f; /* round to nearest */
    n -= 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < SS__VEXP_LO ? 0.0f : (x == x ? p * two_n : x);
}

/* softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}) in float, never
 * overflowing. log1p(e) = 2 atanh(s), s = e / (2 + e) in [0, 1/3]: the
 * series in s^2 <= 1/9 converges to float precision in 8 terms and keeps
 * full relative accuracy for tiny e (where 1 + e would round). */
static inline float ss__vsoftplus(float z) {
    float e = ss__vexp(-fabsf(z));
    float s = e / (2.0f + e), q = s * s;
    float p = 1.0f / 15.0f;
    p = p * q + 1.0f / 13.0f;
    p = p * q + 1.0f / 11.0f;
    p = p * q + 1.0f / 9.0f;
    p = p * q + 1.0f / 7.0f;
    p = p * q + 1.0f / 5.0f;
    p = p * q + 1.0f / 3.0f;
    p = p * q + 1.0f;
    return (z > 0.0f ? z : 0.0f) + 2.0f * s * p;
}

/* log(1 + e^x) in double without overflow (scalar, libm). */
static inline double ss__softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

#endif
