/*
 * dist_ring_group.h - the ring "group contrast" engine of the ring SupCon
 * and DCL / DCLW (dist_ring_contrastive.c): the ring form of dist_gc.h,
 * with per-rank memory O(N_local D). Not installed.
 *
 * Rank r holds Ml = V N_r rows (V, N_r, D). Every row has a class (its
 * view when per_view, else 0); anchor i excludes E(i): itself, or when
 * same_sample every view of its sample (both on the home rank). Forward:
 *
 *     L[i, u] = log sum_{k of class u, k not in E(i)} exp(sc <x_i, x_k>)
 *
 * online over the row blocks passing around the ring (ss__dist_ring).
 * Backward of sum_{i, u} W[i, u] L[i, u] over ALL anchors of all ranks, for
 * local rows j:
 *
 *     dx_j += sc sum_{k not in E(j)} (W[j, u_k] P_jk + W[k, v_j] P_kj) x_k,
 *     P_ik = exp(sc <x_i, x_k> - L[i, u_k]),
 *
 * s is symmetric, so both terms need only the visiting rows and their
 * (W, L) rows, which travel with the block: nothing comes back.
 * With labels (SupCon) the block carries its samples' labels too, and
 * either pass also forms, per local row i, the positive sum pos_i =
 * sum_{p in P(i)} x_p and cnt_i = |P(i)| (P(i): the other rows of a sample
 * with the same label >= 0, or of the same sample when unlabeled), from
 * per-label sums of each visiting block: O(N D) per step.
 */
#ifndef SS_DIST_RING_GROUP_H
#define SS_DIST_RING_GROUP_H

#include "comm_internal.h"

typedef struct {
    int cosine, same_sample, per_view;
    float scale;           /* logit = scale <x_i, x_k>, > 0 */
    const int64_t *labels; /* (N) local labels (SupCon) or NULL */
} ss__drg_opts;

typedef struct {
    ss__drg_opts o;
    int64_t V, N, D, Ml, Nmax, Kmax, Ntot;
    int S, nthreads, backward;
    const float *x;       /* (Ml, D) local rows the loss sees */
    float *xbuf, *inv;    /* cosine: normalised rows, 1 / norms */
    void *blk[2];         /* ring buffers, see dist_ring_group.c */
    int64_t blk_bytes;
    float *tiles;         /* per thread: tile, B^T tile, GEMM scratch */
    int64_t stride;
    int64_t *counts;      /* (size) N_q */
    double *mx, *sm;      /* forward: (Ml, S) online max and sum */
    double shift;         /* forward: fixed shift, or -INFINITY */
    float *wloc;          /* backward: (2, Ml, S) local W, L (empty: W 0) */
    float *dx;            /* backward: (Ml, D) private accumulator */
    double *pos;          /* labels: (Ml, D) positive sums */
    int64_t *cnt;         /* labels: (Ml) positive counts */
    int64_t *pairs;       /* labels: (2 Nmax) scratch of a block's groups */
    double *gsum;         /* labels: (Nmax, D) per-label sums of a block */
} ss__drg;

/* Local status st, one agreement (vals / names: options that must be
 * equal; N), allocation (agreed) and normalisation. backward: the blocks
 * carry (W, L). On error every rank returns it, everything freed. */
ss_status ss__drg_setup(ss__drg *w, const char *fn, ss_status st,
                        const float *z, int64_t V, int64_t N, int64_t D,
                        const ss__drg_opts *o, const double *vals,
                        const char *const *names, int nv, int backward,
                        const ss_comm *c);
void ss__drg_free(ss__drg *w);

/* Forward ring pass: L (Ml, S), -INFINITY when empty; with labels, w->pos
 * and w->cnt. */
ss_status ss__drg_forward(float *L, ss__drg *w, const char *fn,
                          const ss_comm *c);

/* Backward ring pass with the local Wl, Ll (Ml, S): w->dx (zeroed by setup)
 * += the gradient above; with labels, w->pos and w->cnt again. */
ss_status ss__drg_backward(ss__drg *w, const float *Wl, const float *Ll,
                           const char *fn, const ss_comm *c);

#endif
