/*
 * distill.h - helpers shared by the distillation and clustering losses
 * (dino.c, ibot.c, swav.c, msn.c). Not installed.
 */
#ifndef SS_DISTILL_H
#define SS_DISTILL_H

#include "internal.h"
#include "kernels/sinkhorn.h"

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

/* ---- entry points of the distributed losses (dist_distill.c) ---------- */

/* The pending row sum (K doubles) and row count of a centre. */
double *ss__center_pending_sum(ss_center *c);
int64_t *ss__center_pending_rows(ss_center *c);

/* The argument checks of ss_swav_forward / ss_msn_forward (messages name
 * fn), without the output pointers. */
ss_status ss__swav_check(const char *fn, const float *high, const float *low,
                         const float *queue, int64_t H, int64_t L, int64_t N,
                         int64_t Q, int64_t K, const ss_swav_opts *o);
ss_status ss__msn_check(const char *fn, const float *anchors,
                        const float *targets, const float *prototypes,
                        int64_t V, int64_t N, int64_t K, int64_t D,
                        const ss_msn_opts *o);

/* ss_swav_forward with the Sinkhorn rows (the N high rows and the Q queue
 * rows) split over ranks: red completes its reductions and agrees on the
 * workspace allocation (NULL: ss_swav_forward). The codes then equal the
 * rows of the single-process codes of all ranks' rows; the loss and losses
 * are this rank's (mean over its N samples). */
ss_status ss__swav_forward_red(const char *fn, float *loss, float *losses,
                               void *cache, const float *high,
                               const float *low, const float *queue,
                               int64_t H, int64_t L, int64_t N, int64_t Q,
                               int64_t K, const ss_swav_opts *opts,
                               const ss__sk_reduce *red);
/* ss_msn_forward with the N targets (the Sinkhorn rows) split over ranks:
 * the Sinkhorn and the mean prediction pbar run over every rank's rows
 * (V * red->rows_total anchors), so loss (the cross-entropy mean plus
 * lambda R(pbar)) is the global loss; losses are this rank's. NULL red:
 * ss_msn_forward. */
ss_status ss__msn_forward_red(const char *fn, float *loss, float *losses,
                              void *cache, const float *anchors,
                              const float *targets, const float *prototypes,
                              int64_t V, int64_t N, int64_t K, int64_t D,
                              const ss_msn_opts *opts,
                              const ss__sk_reduce *red);

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
