/* norm.c - row L2 normalisation, forward and backward. */
#include "norm.h"
#include "../internal.h"

void ss__normalize_rows(float *y, float *scale, const float *x, int64_t M,
                        int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (M * D > 65536)
#endif
    for (int64_t i = 0; i < M; i++) {
        const float *xi = x + i * D;
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += (double)xi[d] * xi[d];
        double nrm = sqrt(ss);
        float s = (float)(1.0 / (nrm > SS_NORM_EPS ? nrm : SS_NORM_EPS));
        float *yi = y + i * D;
        for (int64_t d = 0; d < D; d++) yi[d] = xi[d] * s;
        if (scale) scale[i] = s;
    }
}

void ss__normalize_backward(float *dx, const float *dy, const float *y,
                            const float *scale, const float *x, int64_t M,
                            int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ss__threads()) \
    if (M * D > 65536)
#endif
    for (int64_t i = 0; i < M; i++) {
        const float *dyi = dy + i * D, *yi = y + i * D, *xi = x + i * D;
        float *dxi = dx + i * D;
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += (double)xi[d] * xi[d];
        float s = scale[i];
        if (sqrt(ss) <= SS_NORM_EPS) { /* clamped: y = x / eps, linear */
            for (int64_t d = 0; d < D; d++) dxi[d] += dyi[d] * s;
            continue;
        }
        double dot = 0.0;
        for (int64_t d = 0; d < D; d++) dot += (double)yi[d] * dyi[d];
        float fdot = (float)dot;
        for (int64_t d = 0; d < D; d++) dxi[d] += s * (dyi[d] - yi[d] * fdot);
    }
}
