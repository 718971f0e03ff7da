/*
 * dist_gc.h - the all-gather "group contrast" engine of the distributed
 * NT-Xent (with HCL / debiased), SupCon and DCL / DCLW (dist_ntxent.c,
 * dist_contrastive.c). Not installed.
 *
 * Rank r holds Ml = V N_r local rows (V, N_r, D); the M = V Ntot gathered
 * rows sit in rank blocks, rank q's block (V, N_q, D) at row V offset_q, so
 * local row i is gathered row self0 + i. Every row has a class (its view
 * when per_view, else 0); anchor i excludes the rows E(i): itself, or when
 * same_sample every view of its sample (all on this rank). For each scale
 * c and class u, local anchor i gets
 *
 *     L[i, c, u] = log sum_{k of class u, k not in E(i)} exp(sc_c <x_i, x_k>)
 *
 * against every gathered row (tiled, never the (Ml, M) matrix). Backward of
 * sum_{i, c, u} W[i, c, u] L[i, c, u] over ALL anchors of all ranks, for
 * this rank's rows j:
 *
 *     dx_j += sum_c sc_c sum_{k not in E(j)}
 *             (W[j, c, u_k] P^c_jk + W[k, c, v_j] P^c_kj) x_k,
 *     P^c_ik = exp(sc_c <x_i, x_k> - L[i, c, u_k]),
 *
 * which needs (W, L) of every anchor: they are all-gathered (2 S M floats,
 * S = nscales * nclass) and each rank recomputes its (Ml, M) tiles.
 */
#ifndef SS_DIST_GC_H
#define SS_DIST_GC_H

#include "comm_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define SS__DGC_TILE 256

/* ---- shared by the tiled engines (dist_gc.c, dist_ring_group.c,
 * dist_ring.c) ---- */

/* Index of the calling thread inside a parallel region (0 outside). */
static inline int ss__dgc_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The one agreement of a call (ss__dist_agree: local status st, vals under
 * names, the local sample count N) with *counts (c->size) allocated for
 * it; off and Ntot out. On any rank's error every rank returns it and
 * *counts is freed (NULL). */
ss_status ss__dgc_agree(const ss_comm *c, const char *fn, ss_status st,
                        const double *vals, const char *const *names, int nv,
                        int64_t N, int64_t **counts, int64_t *off,
                        int64_t *Ntot);

typedef struct {
    int cosine;      /* normalise the rows first */
    int same_sample; /* exclude the anchor's sample (else only the row) */
    int per_view;    /* one class per view (else one class) */
    int nscales;     /* 1 or 2 */
    float scale[2];  /* logit = scale[c] <x_i, x_k>, > 0 */
} ss__dgc_opts;

typedef struct {
    ss__dgc_opts o;
    int64_t V, N, D, Ml, M, Ntot, off, self0;
    int nclass, S, nthreads;
    const float *x;          /* (Ml, D) local rows the loss sees */
    float *xbuf, *inv;       /* cosine: normalised rows, 1 / norms */
    float *xall, *xallT;     /* (M, D) gathered rows and (D, M) */
    int64_t *smp_all;           /* (M) global sample of each gathered row */
    int32_t *cls_loc, *cls_all; /* (Ml), (M) */
    int64_t *counts, *bytes;    /* (size): N_r per rank, scratch */
    float *tiles;   /* nthreads * stride floats */
    double *stats;  /* nthreads * 2 T S */
    int64_t stride;
} ss__dgc;

/* Local status st (message set when failing), one agreement (vals/names:
 * options that must be equal; the local sample count N), allocation,
 * normalisation, all-gather of the rows, samples and classes. On error every
 * rank returns it and everything is freed. */
ss_status ss__dgc_setup(ss__dgc *w, const char *fn, ss_status st,
                        const float *z, int64_t V, int64_t N, int64_t D,
                        const ss__dgc_opts *o, const double *vals,
                        const char *const *names, int nv, const ss_comm *c);
void ss__dgc_free(ss__dgc *w);

/* L: (Ml, S) for the local anchors, index c * nclass + u; -INFINITY when
 * empty. */
void ss__dgc_lse(float *L, const ss__dgc *w);

/* *out: (2, S, M) floats, W^T then L^T of every anchor of every rank,
 * all-gathered from the local Wl, Ll (Ml, S); empty sums (L = -INFINITY)
 * become L = +INFINITY, W = 0. Agrees on the allocation; free with
 * ss__free. */
ss_status ss__dgc_stats(float **out, const char *fn, const ss_comm *c,
                        const ss__dgc *w, const float *Wl, const float *Ll);

/* dx: (Ml, D) += the backward above. wl: from ss__dgc_stats. */
void ss__dgc_grad(float *dx, const float *wl, const ss__dgc *w);

#endif
