/*
 * selfsup_comm.h - data-parallel (distributed) losses over pluggable
 * collectives. The core library depends on no transport: the caller passes
 * an ss_comm, a struct of callbacks. libselfsup_mpi (selfsup_mpi.h) fills
 * one from an MPI communicator; ss_comm_local() is the one-process comm.
 *
 * ----------------------------------------------------------------------------
 * The gradient contract (every ss_dist_* loss)
 * ----------------------------------------------------------------------------
 * Every rank calls the same function with the same options, in the same
 * order, on its LOCAL batch (local batch sizes may differ between ranks).
 * The global batch is the concatenation of the local batches in rank order
 * (per view, for multi-view inputs). Then:
 *
 *   - forward writes on every rank the loss of the global batch, exactly the
 *     value the single-process function returns on the concatenated batch
 *     (up to float32 summation order); per-anchor outputs are the rows of
 *     the local anchors.
 *   - backward accumulates into the local gradient buffers
 *
 *         dx_local += dloss * world_size * d(global loss) / d(x_local)
 *
 *     ("mean convention"). When the caller averages parameter gradients
 *     over the ranks, as torch DDP and an all-reduce-then-divide do, every
 *     rank ends up with exactly the parameter gradient that one process
 *     computes on the concatenated global batch. A caller that SUMS
 *     parameter gradients instead passes dloss / world_size.
 *
 * Errors never hang: before any collective whose sizes depend on the
 * inputs, the ranks agree on one status with an all-reduce (max) of the
 * status codes, the sizes and the options. If any rank fails (bad pointer,
 * size, option, non-finite input, options differing between ranks, out of
 * memory), every rank returns an error and writes nothing: the failing
 * rank its own status and message, the others the same status with a
 * message "rank r failed with SS_ERR_...". A callback that returns nonzero
 * makes the call return SS_ERR_STATE ("communicator ... failed"); after a
 * transport failure the ranks may disagree and the comm should be treated
 * as broken.
 *
 * Memory per rank is O(global rows * D) for the all-gather contrastive path
 * and O(local rows * D + D^2) for the batch-statistics losses; nothing is
 * O(global batch ^ 2).
 *
 * Collectives are blocking and called from the calling thread only.
 */
#ifndef SELFSUP_COMM_H
#define SELFSUP_COMM_H

#include "selfsup.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SS_COMM_FLOAT = 0, SS_COMM_DOUBLE = 1 } ss_comm_dtype;
typedef enum { SS_COMM_SUM = 0, SS_COMM_MAX = 1 } ss_comm_op;

/* Every callback returns 0 on success and nonzero on a transport failure.
 * Byte counts are int64_t; implementations split them if their transport
 * needs smaller counts. */
typedef struct ss_comm {
    void *ctx;  /* passed back as the first argument of every callback */
    int rank;   /* 0 <= rank < size */
    int size;   /* >= 1 */
    /* In place: buf[0 .. count) = op over ranks of every rank's buf. */
    int (*allreduce)(void *ctx, void *buf, int64_t count, ss_comm_dtype dt,
                     ss_comm_op op);
    /* Variable all-gather of bytes: rank r sends counts[r] bytes from send;
     * recv receives every rank's bytes back to back, rank 0 first (rank r
     * at offset sum_{q<r} counts[q]). counts: (size), equal on all ranks. */
    int (*allgatherv)(void *ctx, const void *send, void *recv,
                      const int64_t *counts);
    /* Ring step: send `bytes` bytes to rank `dst` while receiving `bytes`
     * bytes from rank `src` (both may be this rank's neighbours). Used by
     * the ring paths (not yet in this version); may be NULL until then. */
    int (*sendrecv)(void *ctx, const void *send, int dst, void *recv, int src,
                    int64_t bytes);
} ss_comm;

/* The single-process comm: rank 0 of 1; every collective is the identity.
 * With it every ss_dist_* function equals its single-process counterpart. */
SS_API ss_comm ss_comm_local(void);

/* Checks that comm is usable: non-NULL callbacks (sendrecv may be NULL),
 * size >= 1, 0 <= rank < size. Local check only (no collective).
 * Errors: SS_ERR_NULL, SS_ERR_PARAM. */
SS_API ss_status ss_comm_check(const ss_comm *comm);

/* ---- NT-Xent (SimCLR), all-gather path ------------------------------------ */
/*
 * z: (V, N, D) local rows (N >= 1 may differ per rank; V, D and opts equal
 * on all ranks). The global batch has Ntot = sum_r N_r samples; sample n
 * of rank r is global sample offset_r + n. Loss: ss_ntxent_forward's on the
 * global (V, Ntot, D) batch, mean over the V * Ntot anchors.
 * Semantics: the (normalised) rows are all-gathered (V Ntot D floats per
 * rank); each rank computes the log-sum-exp rows of its own anchors against
 * all gathered rows. Backward all-gathers the per-anchor log-sum-exps
 * (V Ntot floats) so that each rank forms the complete column gradient of
 * its own rows, sum_i P_ij x_i over every anchor i of every rank, by
 * recomputation: no reduce-scatter, 2x the forward's multiply-adds.
 * hard_beta and debias_tau_plus: as ss_ntxent_forward on the global batch
 * (Nq = V Ntot - V negatives per anchor); the denominators then run over
 * the rows of the other samples, at two scales when hard_beta > 0, and the
 * backward gathers 2 log-sum-exps and 2 weights per anchor.
 */
/* Bytes of cache for the local rows (2 V N floats and a header); 0 with
 * ss_last_error for bad sizes. */
SS_API size_t ss_dist_ntxent_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1) global loss, same on all ranks. losses: (V, N) local anchors'
 * losses or NULL. Errors (all ranks agree): as ss_ntxent_forward, plus
 * SS_ERR_PARAM for options or V, D differing between ranks or a bad comm,
 * SS_ERR_STATE for a transport failure. */
SS_API ss_status ss_dist_ntxent_forward(float *loss, float *losses,
                                        void *cache, const float *z,
                                        int64_t V, int64_t N, int64_t D,
                                        const ss_ntxent_opts *opts,
                                        const ss_comm *comm);
/* dz: (V, N, D) accumulated: dz += dloss * world_size * dLglobal/dz_local.
 * dloss must be equal on all ranks (checked: SS_ERR_PARAM on every rank).
 * Errors as forward, plus SS_ERR_PARAM for a non-finite dloss or a cache
 * not written by the matching forward (same sizes, options, global batch). */
SS_API ss_status ss_dist_ntxent_backward(float *dz, float dloss,
                                         const void *cache, const float *z,
                                         int64_t V, int64_t N, int64_t D,
                                         const ss_ntxent_opts *opts,
                                         const ss_comm *comm);

/* ---- Barlow Twins with synchronised batch statistics ----------------------- */
/*
 * a, b: (N, D) local rows, N >= 1 per rank, Ntot = sum_r N_r >= 2. The
 * means, the biased variances and C = A^T B / Ntot are global (exact
 * synchronised batch normalisation): all-reduced sums of O(D) column
 * statistics and of the local (D, D) products. Always the D x D form
 * (opts->form must be AUTO or DXD: the Gram form would be Ntot^2).
 * Backward all-reduces the 2 D column sums of the batch-norm backward per
 * view. loss, terms: global, same on all ranks.
 * Errors: as ss_barlow_forward, plus SS_ERR_SIZE for Ntot < 2,
 * SS_ERR_UNSUPPORTED for SS_MOMENT_GRAM, SS_ERR_PARAM / SS_ERR_STATE as
 * above. Cache: ss_dist_barlow_cache_size bytes, O(D^2).
 */
SS_API size_t ss_dist_barlow_cache_size(int64_t D);
SS_API ss_status ss_dist_barlow_forward(float *loss, float *terms, void *cache,
                                        const float *a, const float *b,
                                        int64_t N, int64_t D,
                                        const ss_barlow_opts *opts,
                                        const ss_comm *comm);
/* da, db: (N, D) accumulated (mean convention). dloss equal on all ranks
 * (checked). Errors as forward, plus SS_ERR_NONFINITE for dloss and
 * SS_ERR_STATE for a cache not written by the matching forward. */
SS_API ss_status ss_dist_barlow_backward(float *da, float *db, float dloss,
                                         const void *cache, const float *a,
                                         const float *b, int64_t N, int64_t D,
                                         const ss_barlow_opts *opts,
                                         const ss_comm *comm);

/* ---- VICReg with synchronised batch statistics ----------------------------- */
/*
 * a, b: (N, D) local rows, N >= 1 per rank, Ntot >= 2. Invariance is the
 * mean over the global Ntot * D entries; variances and covariances are
 * global and unbiased (1 / (Ntot - 1)), from all-reduced column sums and
 * local (D, D) products X^T X (D x D form only). Backward all-reduces 2 D
 * column sums per view. Errors as ss_dist_barlow_*.
 */
SS_API size_t ss_dist_vicreg_cache_size(int64_t D);
SS_API ss_status ss_dist_vicreg_forward(float *loss, float *terms, void *cache,
                                        const float *a, const float *b,
                                        int64_t N, int64_t D,
                                        const ss_vicreg_opts *opts,
                                        const ss_comm *comm);
SS_API ss_status ss_dist_vicreg_backward(float *da, float *db, float dloss,
                                         const void *cache, const float *a,
                                         const float *b, int64_t N, int64_t D,
                                         const ss_vicreg_opts *opts,
                                         const ss_comm *comm);

/* (section start: dist-contrastive) */

/* ---- SupCon, all-gather path --------------------------------------------- */
/*
 * z: (V, N, D) local rows, labels: (N) local labels (>= 0 a class, -1
 * unlabeled: positives are the sample's own other views), N >= 1 per rank,
 * V, D and opts equal on all ranks. Loss: ss_supcon_forward's on the global
 * (V, Ntot, D) batch with the concatenated labels: the mean over the
 * anchors of the whole batch that have a positive (0 if none).
 * Gathered: the (normalised) rows (V Ntot D floats) and the labels (Ntot
 * int64), so positives may sit on other ranks; each rank forms the same
 * global groups and per-group row sums (O(Ntot D) doubles). Backward
 * all-gathers the per-anchor log-sum-exps and weights (2 V Ntot floats) and
 * recomputes its (V N, V Ntot) tiles. Errors: as ss_supcon_forward, plus
 * SS_ERR_PARAM for options or V, D differing between ranks, SS_ERR_STATE for
 * a transport failure. Cache: ss_dist_supcon_cache_size bytes.
 */
SS_API size_t ss_dist_supcon_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_supcon_forward(float *loss, float *losses,
                                        void *cache, const float *z,
                                        const int64_t *labels, int64_t V,
                                        int64_t N, int64_t D,
                                        const ss_supcon_opts *opts,
                                        const ss_comm *comm);
/* dz accumulated (mean convention); dloss equal on all ranks (checked).
 * Errors as forward, plus SS_ERR_PARAM for a non-finite dloss or a cache not
 * written by the matching forward (labels, sizes, options, global batch). */
SS_API ss_status ss_dist_supcon_backward(float *dz, float dloss,
                                         const void *cache, const float *z,
                                         const int64_t *labels, int64_t V,
                                         int64_t N, int64_t D,
                                         const ss_supcon_opts *opts,
                                         const ss_comm *comm);

/* ---- DCL / DCLW, all-gather path ----------------------------------------- */
/*
 * z: (V, N, D) local rows, N >= 1 per rank, Ntot >= 2 (SS_ERR_SIZE on every
 * rank otherwise). Loss: ss_dcl_forward's on the global batch, including
 * joint_negatives and DCLW, whose weights 2 - Ntot softmax_n(<x_0n, x_1n> /
 * sigma) are a softmax over the GLOBAL samples (two scalar all-reduces).
 * Gathered: the rows; per local anchor one log-sum-exp per view of the
 * negatives (one when joint), excluding the anchor's sample. Backward
 * all-gathers those (and their weights, 2 V^2 Ntot floats; 2 V Ntot when
 * joint) and recomputes its tiles. Errors as ss_dcl_forward, plus
 * SS_ERR_PARAM / SS_ERR_STATE as above. Cache: V^2 N floats + header.
 */
SS_API size_t ss_dist_dcl_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_dcl_forward(float *loss, float *losses, void *cache,
                                     const float *z, int64_t V, int64_t N,
                                     int64_t D, const ss_dcl_opts *opts,
                                     const ss_comm *comm);
SS_API ss_status ss_dist_dcl_backward(float *dz, float dloss,
                                      const void *cache, const float *z,
                                      int64_t V, int64_t N, int64_t D,
                                      const ss_dcl_opts *opts,
                                      const ss_comm *comm);

/* ---- CLIP, all-gather path ----------------------------------------------- */
/*
 * a, b: (N, D) local pairs (N >= 1 per rank, D, log_scale and opts equal on
 * all ranks); global pair offset_r + i. Loss: ss_clip_forward's on the
 * global (Ntot, D) batch: (mean_i CE(S_i., i) + mean_j CE(S_.j, j)) / 2 over
 * all Ntot images and texts. Gathered: both sides' (normalised) rows (2 Ntot
 * D floats); forward runs local a x all b (row log-sum-exps) and local b x
 * all a (column log-sum-exps); backward gathers both log-sum-exps (2 Ntot
 * floats) and runs the same two passes. losses: (N) the local pairs'.
 * dlog_scale: every rank accumulates dloss * d(global loss)/d(log_scale),
 * the all-reduced sum of the ranks' shares, identical on all ranks (NOT
 * world_size times it): averaging it over ranks, as DDP does for a
 * replicated parameter, keeps it; a caller that sums parameter gradients
 * and passes dloss / world_size also gets dL/dt. da, db: the mean
 * convention. Errors: as ss_clip_*, plus SS_ERR_PARAM for sizes or options
 * differing between ranks, SS_ERR_STATE for a transport failure or a cache
 * written for another global batch.
 */
SS_API size_t ss_dist_clip_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_clip_forward(float *loss, float *losses, void *cache,
                                      const float *a, const float *b,
                                      float log_scale, int64_t N, int64_t D,
                                      const ss_clip_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_clip_backward(float *da, float *db,
                                       float *dlog_scale, float dloss,
                                       const void *cache, const float *a,
                                       const float *b, float log_scale,
                                       int64_t N, int64_t D,
                                       const ss_clip_opts *opts,
                                       const ss_comm *comm);

/* ---- SigLIP, all-gather path --------------------------------------------- */
/*
 * As ss_dist_clip_*: loss = ss_siglip_forward's on the global batch,
 * -(1/Ntot) sum over all Ntot^2 pairs; losses (N): the local rows' sums
 * over all Ntot columns. Gathered: both sides' rows; nothing else (the
 * sigmoid terms need no statistics). dlog_t, dbias: dloss * the global
 * derivative on every rank (all-reduced, as CLIP's dlog_scale).
 */
SS_API size_t ss_dist_siglip_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_siglip_forward(float *loss, float *losses,
                                        void *cache, const float *a,
                                        const float *b, float log_t,
                                        float bias, int64_t N, int64_t D,
                                        const ss_siglip_opts *opts,
                                        const ss_comm *comm);
SS_API ss_status ss_dist_siglip_backward(float *da, float *db, float *dlog_t,
                                         float *dbias, float dloss,
                                         const void *cache, const float *a,
                                         const float *b, float log_t,
                                         float bias, int64_t N, int64_t D,
                                         const ss_siglip_opts *opts,
                                         const ss_comm *comm);

/* ---- MoCo with a queue, and the distributed enqueue ---------------------- */
/*
 * q, k: (N, D) local queries and their keys (N >= 1 per rank), queue: (K,
 * D), IDENTICAL on every rank (checked through a checksum of its entries:
 * SS_ERR_PARAM if it differs), K, D and opts equal. Loss: ss_moco_forward's
 * on the global batch, the mean over all Ntot queries. Nothing is gathered:
 * the loss sum is all-reduced (one double). dq, dk (dk may be NULL):
 * accumulated, mean convention. Errors: as ss_moco_*, plus SS_ERR_PARAM /
 * SS_ERR_STATE as above.
 */
SS_API size_t ss_dist_moco_cache_size(int64_t N, int64_t K, int64_t D);
SS_API ss_status ss_dist_moco_forward(float *loss, float *losses, void *cache,
                                      const float *q, const float *k,
                                      const float *queue, int64_t N,
                                      int64_t K, int64_t D,
                                      const ss_moco_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_moco_backward(float *dq, float *dk, float dloss,
                                       const void *cache, const float *q,
                                       const float *k, const float *queue,
                                       int64_t N, int64_t K, int64_t D,
                                       const ss_moco_opts *opts,
                                       const ss_comm *comm);
/* keys: (n, D) local keys, n >= 1 per rank. All-gathers the keys of all
 * ranks in rank order (the global batch's order) and enqueues them into
 * q on every rank: identical queues stay identical, equal to one queue fed
 * the concatenated keys. The queues must agree in K, D, count and
 * checksum (SS_ERR_PARAM otherwise). Errors: SS_ERR_NULL, SS_ERR_SIZE,
 * SS_ERR_NONFINITE (no queue changes on any rank), SS_ERR_NOMEM,
 * SS_ERR_STATE. */
SS_API ss_status ss_dist_queue_enqueue(ss_queue *q, const float *keys,
                                       int64_t n, const ss_comm *comm);

/* (section end: dist-contrastive) */

/* (section start: dist-ring) */

/* (section end: dist-ring) */

/* (section start: dist-geometry) */

/* (section end: dist-geometry) */

/* (section start: dist-distill) */

/* (section end: dist-distill) */

#ifdef __cplusplus
}
#endif

#endif
