/*
 * ntxent_internal.h - the positive terms of plain NT-Xent (ntxent.c),
 * shared with the distributed form (dist_ntxent.c), where every sample's
 * V views live on one rank.
 *
 * x: (V N, D), row v N + n is view v of sample n. nthreads: OpenMP threads
 * over samples (1: serial; each sample is summed in the same order either
 * way, so the result does not depend on it).
 */
#ifndef SS_NTXENT_INTERNAL_H
#define SS_NTXENT_INTERNAL_H

#include <stdint.h>

/* pos[i] = sum_{p in P(i)} <x_i, x_p> through per-sample view sums, O(M D).
 * pos: (V N) doubles, written. */
void ss__ntxent_pos_dots(double *pos, const float *x, int64_t V, int64_t N,
                         int64_t D, int nthreads);

/* dx_i += k (sum_v x_(v, n) - x_i). */
void ss__ntxent_pos_grad(float *dx, const float *x, double k, int64_t V,
                         int64_t N, int64_t D, int nthreads);

#endif
