/*
 * distill.h - helpers shared by the distillation and clustering losses
 * (dino.c, ibot.c, swav.c, msn.c). Not installed.
 */
#ifndef SS_DISTILL_H
#define SS_DISTILL_H

#include "internal.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this much work a parallel region costs more than it saves. */
#ifndef SS__PAR_MIN
#define SS__PAR_MIN 16384
#endif

/* Index of the calling thread inside a parallel region (0 outside). */
static inline int ss__thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* LSE_k (scale * (x_k - c_k)) in double; c may be NULL (zeros). */
static inline double ss__lse_row(const float *x, const float *c, double scale,
                                 int64_t K) {
    double m = -INFINITY, s = 0.0;
    for (int64_t k = 0; k < K; k++)
        m = fmax(m, scale * ((double)x[k] - (c ? c[k] : 0.0f)));
    for (int64_t k = 0; k < K; k++)
        s += exp(scale * ((double)x[k] - (c ? c[k] : 0.0f)) - m);
    return m + log(s);
}

#endif
