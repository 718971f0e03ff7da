/*
 * norm.h - row L2 normalisation, forward and backward, as
 * torch.nn.functional.normalize(x, dim=1, eps=SS_NORM_EPS).
 */
#ifndef SS_KERNELS_NORM_H
#define SS_KERNELS_NORM_H

#include <stdint.h>

/* y: (M, D) = x / max(||x||, eps); scale: (M) = 1 / max(||x||, eps), or
 * NULL. y may alias x. Parallel over rows. */
void ss__normalize_rows(float *y, float *scale, const float *x, int64_t M,
                        int64_t D);

/* dx: (M, D) += d(y)/d(x)^T dy, for y = normalize(x). y: (M, D) the
 * normalised rows, scale: (M) from ss__normalize_rows, x: (M, D) the raw
 * rows (needed only to tell the clamped case). dy: (M, D). */
void ss__normalize_backward(float *dx, const float *dy, const float *y,
                            const float *scale, const float *x, int64_t M,
                            int64_t D);

#endif
