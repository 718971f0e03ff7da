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

#include "selfsup.h"

#include <stdint.h>

/* pos[i] = sum_{p in P(i)} <x_i, x_p> through per-sample view sums, O(M D).
 * pos: (V N) doubles, written. */
void ss__ntxent_pos_dots(double *pos, const float *x, int64_t V, int64_t N,
                         int64_t D, int nthreads);

/* dx_i += k (sum_v x_(v, n) - x_i). */
void ss__ntxent_pos_grad(float *dx, const float *x, double k, int64_t V,
                         int64_t N, int64_t D, int nthreads);

/* HCL / debiased (ntxent.c), per sample of the V N local rows: loss_i
 * (or NULL); with w, the weights (2, V N) of the engine's two log-sum-exp
 * terms scaled by f; with dx, the positive-pair gradient scaled by f. lse:
 * (2, V N) log-sum-exps over the negatives (row 1 unused unless
 * two_scales). nq: negatives per anchor in the whole batch (V Ntot - V).
 * Returns the sum of the loss_i. */
double ss__ntxent_hcl_pairs(double *loss_i, float *w, float *dx, double f,
                            const float *x, const float *lse, int64_t V,
                            int64_t N, int64_t D, const ss_ntxent_opts *o,
                            int two_scales, int64_t nq);

/* The input checks of ss_ntxent_forward but the output pointers (z, sizes,
 * options, finite z, the float32 logit bound), naming fn. */
ss_status ss__ntxent_check(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, const ss_ntxent_opts *o);

/* ---- shared by the distributed paths (dist_ntxent.c, dist_ring.c) ------- */

/* Caches of both paths start with one header (the ring's has hard_beta =
 * debias_tau_plus = 0) of SS__DNTX_HEADER_BYTES bytes. */
#define SS__DNTX_HEADER_BYTES 64

/* V >= 2, N >= 1, D >= 1 and their product, naming fn. */
ss_status ss__dntx_check_sizes(const char *fn, int64_t V, int64_t N,
                               int64_t D);
/* A forward's local checks of its output pointers (loss, cache). */
ss_status ss__dntx_check_forward(const char *fn, const float *loss,
                                 const void *cache);
/* A backward's local checks of dz, cache and dloss (finite: SS_ERR_PARAM). */
ss_status ss__dntx_check_backward(const char *fn, const float *dz,
                                  const void *cache, float dloss);
/* Writes the header after a successful forward. */
void ss__dntx_header_set(void *cache, uint64_t magic, int64_t V, int64_t N,
                         int64_t D, int64_t Ntot, const ss_ntxent_opts *o);
/* SS_ERR_PARAM unless cache holds the header `writer` writes for these
 * sizes and options. */
ss_status ss__dntx_check_cache(const char *fn, const char *writer,
                               const void *cache, uint64_t magic, int64_t V,
                               int64_t N, int64_t D, const ss_ntxent_opts *o);
/* After the agreement: SS_ERR_PARAM unless the cache was written for a
 * global batch of Ntot samples. */
ss_status ss__dntx_check_ntot(const char *fn, const void *cache,
                              int64_t Ntot);

#endif
