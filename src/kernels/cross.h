/*
 * cross.h - the tiled engine for cross-similarity losses (MoCo with a
 * queue, CLIP, SigLIP): rows A (M, D) against columns B (K, D),
 *
 *     x_ij = scale * c_j * <A_i, B_j> + bias        (c_j = col_scale[j] or 1)
 *
 * The (M, K) logit matrix is never materialised. It is walked in
 * SS__CROSS_TILE x SS__CROSS_TILE tiles, each formed by one ss__sgemm; the
 * flattened list of tiles is split into contiguous chunks, one per thread,
 * and every thread keeps its own row and column statistics / gradient
 * accumulators, merged once at the end. Backward recomputes the tiles.
 *
 * col_scale lets a caller normalise the columns without copying them (the
 * MoCo queue can be much larger than the batch): pass 1 / max(||B_j||, eps).
 *
 * Workspace: O(threads * ((M + K) * (D + 2) + tile^2)) floats, allocated
 * once per call; never O(M K).
 */
#ifndef SS_KERNELS_CROSS_H
#define SS_KERNELS_CROSS_H

#include "../internal.h"

#define SS__CROSS_TILE 256

typedef struct {
    const float *A;         /* (M, D) rows */
    const float *B;         /* (K, D) columns */
    const float *col_scale; /* (K) per-column factor c_j, or NULL (all 1) */
    int64_t M, K, D;
    float scale; /* multiplies every dot product */
    float bias;  /* added to every logit (sigmoid kernels only) */
} ss__cross;

/* Softmax statistics in one pass over the tiles:
 *   row_lse: (M) log sum_j exp(x_ij), or NULL
 *   col_lse: (K) log sum_i exp(x_ij), or NULL
 *   diag:    (min(M, K)) the logits x_ii exactly as the tiles hold them
 *            (so that lse_i - x_ii >= 0 holds in float), or NULL
 * bias is ignored. Errors: SS_ERR_NOMEM (nothing written). */
ss_status ss__cross_lse(float *row_lse, float *col_lse, float *diag,
                        const ss__cross *p);

/* Backward of L = sum_i wr_i row_lse_i + sum_j wc_j col_lse_j
 * - wd sum_i x_ii, with
 *   G_ij = wr_i exp(x_ij - row_lse_i) + wc_j exp(x_ij - col_lse_j)
 *          - wd [i == j]:
 *   dA: (M, D) += scale * sum_j G_ij c_j B_j     (NULL: skipped)
 *   dB: (K, D) += scale * sum_i G_ij A_i         (gradient w.r.t. c_j B_j)
 *   gx: (1)    += sum_ij G_ij x_ij               (d/dt for scale = e^t)
 * wr/row_lse or wc/col_lse may be NULL (that side contributes nothing);
 * at least one side must be given, else nothing is done.
 * Errors: SS_ERR_NOMEM (nothing written). */
ss_status ss__cross_lse_backward(float *dA, float *dB, double *gx,
                                 const float *wr, const float *row_lse,
                                 const float *wc, const float *col_lse,
                                 float wd, const ss__cross *p);

/* Pairwise sigmoid loss, y_ij = +1 when i == j else -1:
 *   row_loss: (M) = sum_j -log sigmoid(y_ij x_ij), in double.
 * Errors: SS_ERR_NOMEM. */
ss_status ss__cross_sigmoid(double *row_loss, const ss__cross *p);

/* Its backward, scaled by w: G_ij = w * (sigmoid(x_ij) - [i == j]);
 * dA, dB as above; gx += sum G_ij (x_ij - bias); gb += sum G_ij (either
 * may be NULL). Errors: SS_ERR_NOMEM (nothing written). */
ss_status ss__cross_sigmoid_backward(float *dA, float *dB, double *gx,
                                     double *gb, float w, const ss__cross *p);

/* The two above with positives = 0: every pair is a negative (y_ij = -1,
 * no i == j term), as for a block of another rank's columns in the ring
 * path (dist_ring_cross.c); positives = 1 is ss__cross_sigmoid(_backward). */
ss_status ss__cross_sigmoid_ex(double *row_loss, const ss__cross *p,
                               int positives);
ss_status ss__cross_sigmoid_backward_ex(float *dA, float *dB, double *gx,
                                        double *gb, float w,
                                        const ss__cross *p, int positives);

/* Small helpers shared by the loss files. ---------------------------------- */

/* Header at the start of every cross-loss cache, so that backward can tell
 * a cache written for other sizes or parameters (SS_ERR_STATE). */
typedef struct {
    uint64_t magic;
    int64_t N, K, D;
    float p0, p1;
    int32_t cosine, pad;
} ss__cross_hdr;

void ss__cross_hdr_set(void *cache, uint64_t magic, int64_t N, int64_t K,
                       int64_t D, float p0, float p1, int cosine);
/* SS_OK or SS_ERR_STATE naming fn. */
ss_status ss__cross_hdr_check(const void *cache, const char *fn, uint64_t magic,
                              int64_t N, int64_t K, int64_t D, float p0,
                              float p1, int cosine);

/* Workspace for two (N, D) inputs a, b: normalised copies when cosine,
 * gradients w.r.t. what the engine sees, and (N) row weights. */
typedef struct {
    const float *a, *b; /* the rows the engine multiplies (inputs or an/bn) */
    float *an, *bn, *inva, *invb; /* cosine only */
    float *dan, *dbn; /* backward + cosine: zeroed (N, D); else NULL */
    float *w;         /* (N) scratch */
    void *mem;
} ss__cross_pair;

/* Errors: SS_ERR_NOMEM (message not set: the caller names itself). */
ss_status ss__cross_pair_make(ss__cross_pair *wk, const float *a,
                              const float *b, int64_t N, int64_t D, int cosine,
                              int backward);
/* Cosine: da/db += normalisation backward of dan/dbn (db may be NULL).
 * Otherwise the engine already wrote into da/db: nothing to do. */
void ss__cross_pair_finish(const ss__cross_pair *wk, float *da, float *db,
                           const float *a, const float *b, int64_t N,
                           int64_t D);
void ss__cross_pair_free(ss__cross_pair *wk);

/* SS_OK when the mean loss is finite in float; else SS_ERR_NONFINITE
 * (finite inputs whose logits overflow float32) naming fn. */
ss_status ss__cross_check_loss(const char *fn, double loss);

/* N >= 1, D >= 1 and N * D in range (CLIP, SigLIP: a, b (N, D)). */
ss_status ss__cross_check_sizes(const char *fn, int64_t N, int64_t D);

/* The inputs of the paired losses (CLIP, SigLIP), in this order: a, b
 * non-NULL; sizes as ss__cross_check_sizes; log-scale finite with
 * e^log_scale finite in float (SS_ERR_PARAM, named scale_name); bias (when
 * non-NULL) finite; a, b finite. Writes *scale = e^log_scale on success. */
ss_status ss__cross_check_pair(const char *fn, const float *a, const float *b,
                               int64_t N, int64_t D, const char *scale_name,
                               float log_scale, const float *bias,
                               float *scale);

/* SS_ERR_NOMEM for the workspace of an (N, D) pair. */
ss_status ss__cross_nomem(const char *fn, int64_t N, int64_t D);

/* inv: (K) = 1 / max(||B_j||, SS_NORM_EPS). */
void ss__cross_inv_norms(float *inv, const float *B, int64_t K, int64_t D);

#endif
