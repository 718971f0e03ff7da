/*
 * contrast.h - the tiled "group contrastive" engine behind NT-Xent, SupCon,
 * DCL/DCLW and the hard-negative / debiased options.
 *
 * Problem: M rows x (M, D); row i belongs to group g_i. For each scale c
 * (up to SS__GC_MAX_SCALES) and row i it computes
 *
 *     lse[c, i] = log sum_{k in den(i)} exp(scale[c] * <x_i, x_k>)
 *
 *     den(i) = { k : k != i }                      exclude_group == 0
 *            = { k : k != i and g_k != g_i }        exclude_group == 1
 *
 * (-INFINITY when den(i) is empty), without materialising the (M, M)
 * similarity matrix: the symmetric matrix is walked tile by tile (upper
 * triangle only), each tile formed by a GEMM and reduced into per-row,
 * per-thread log-sum-exp statistics that are merged at the end.
 *
 * Backward differentiates L = sum_c sum_i w[c, i] * lse[c, i]:
 *
 *     dx_i += sum_c scale[c] * sum_k (w[c,i] P^c_ik + w[c,k] P^c_ki) x_k
 *     P^c_ik = exp(scale[c] <x_i, x_k> - lse[c, i])   on den(i), else 0
 *
 * recomputing the tiles. The positive-pair terms of each loss are O(M D)
 * and live in the loss files, not here.
 *
 * Cost: forward 0.5 M^2 D multiply-adds, backward 1.5 M^2 D (recompute plus
 * dX_I += G X_J, dX_J += G^T X_I per tile), tile GEMMs by ss__tgemm.
 * Workspace per thread, allocated per call, never O(M^2): a tile or two
 * (tile^2 floats), X_J^T (D * tile), the (nscales, M) statistics in double
 * (forward) and, for every thread but the first, a private (M, D) dx that
 * is added into dx at the end (backward).
 */
#ifndef SS_KERNELS_CONTRAST_H
#define SS_KERNELS_CONTRAST_H

#include "../internal.h"

#define SS__GC_MAX_SCALES 2
/* Default tile edge (rows): a 256 x 256 float tile is 256 KiB, half the
 * per-core L2 of the target machine, and the 256 x 256 x 128 tile GEMM runs
 * at the same rate as a huge one. */
#define SS__GC_TILE 256
/* The fixed shift |scale| * max||x||^2 replaces the online max when the
 * logit range 2 * shift stays well inside float exp's normal range. */
#define SS__GC_FIXED_SHIFT_MAX 40.0

typedef struct {
    const float *x;        /* (M, D) rows, already normalised if cosine */
    int64_t M, D;
    const int64_t *group;  /* (M) group ids; NULL: every row its own group */
    int exclude_group;     /* 1: denominators skip the anchor's group */
    int nscales;           /* 1 .. SS__GC_MAX_SCALES */
    float scale[SS__GC_MAX_SCALES]; /* logit = scale[c] * <x_i, x_k> */
    int64_t tile;          /* tile edge; 0: SS__GC_TILE (tests use small) */
    int force_online;      /* 1: online max even when the shift is valid */
} ss__gc;

/* lse: (nscales, M). Errors: SS_ERR_NOMEM. */
ss_status ss__gc_forward(float *lse, const ss__gc *p);

/* dx: (M, D), accumulated. w: (nscales, M) weights of the lse terms (rows
 * with lse = -INFINITY must have w = 0). lse: from ss__gc_forward.
 * Errors: SS_ERR_NOMEM. */
ss_status ss__gc_backward(float *dx, const float *w, const float *lse,
                          const ss__gc *p);

/* Argument checks shared by the losses on this engine (fn: the public
 * caller). SS_ERR_PARAM unless t > 0 and 1 / t is finite. */
ss_status ss__gc_check_temperature(const char *fn, float t);

/* SS_ERR_PARAM when max ||z_i||^2 / t (1 / t when cosine) exceeds
 * SS__GC_MAX_LOGIT: beyond it float32 logits, losses or gradients could
 * overflow. z: (M, D). */
#define SS__GC_MAX_LOGIT 1e30
ss_status ss__gc_check_logit_bound(const char *fn, const float *z, int64_t M,
                                   int64_t D, float t, int cosine);

#endif
