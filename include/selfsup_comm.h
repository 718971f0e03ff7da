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
 * Memory per rank is O(global rows * D) for the all-gather paths,
 * O(local rows * D) for the ring paths (ss_dist_*_ring_*: NT-Xent, CLIP,
 * SigLIP) and O(local rows * D + D^2) for the batch-statistics losses;
 * nothing is O(global batch ^ 2). Bytes and memory of every function:
 * docs/DISTRIBUTED.md.
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
     * the ring paths (ss_dist_*_ring_*). May be NULL: the ring calls then
     * fail with SS_ERR_NULL on every rank; nothing else uses it. */
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

/* ---- Ring paths (Inf-CL / SigLIP style): NT-Xent, CLIP, SigLIP ------------ */
/*
 * Same semantics and results as the single-process losses on the
 * concatenated batch (and as the all-gather ss_dist_ntxent_*), but per-rank
 * memory O(N_local D): no rank ever holds the global batch. Blocks of rows
 * travel around the ring r -> r + 1 with comm->sendrecv (W - 1 steps; each
 * block visits every other rank once), padded to the largest local block.
 * The comm's sendrecv must be non-NULL: otherwise every rank returns
 * SS_ERR_NULL (agreed, no hang). Blocking sendrecv: communication does not
 * overlap the compute of a step (docs/SCALING.md).
 * Errors (all ranks agree): as the single-process function, plus
 * SS_ERR_NULL for comm->sendrecv, SS_ERR_PARAM for options, D (and V)
 * or dloss differing between ranks, SS_ERR_STATE for a transport failure.
 * Failed calls write nothing.
 */

/* NT-Xent: arguments and result as ss_dist_ntxent_*; plain loss only
 * (hard_beta, debias_tau_plus: SS_ERR_UNSUPPORTED). Rows circulate in
 * forward (online log-sum-exp per local anchor), rows + their lse in
 * backward (both gradient terms of a local row need only the visiting rows
 * and their lse: s is symmetric). Cache: ss_dist_ntxent_ring_cache_size
 * bytes (local lse); a cache of another call gives SS_ERR_PARAM. */
SS_API size_t ss_dist_ntxent_ring_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_ntxent_ring_forward(float *loss, float *losses,
                                             void *cache, const float *z,
                                             int64_t V, int64_t N, int64_t D,
                                             const ss_ntxent_opts *opts,
                                             const ss_comm *comm);
SS_API ss_status ss_dist_ntxent_ring_backward(float *dz, float dloss,
                                              const void *cache,
                                              const float *z, int64_t V,
                                              int64_t N, int64_t D,
                                              const ss_ntxent_opts *opts,
                                              const ss_comm *comm);

/* CLIP: a, b (N, D) local pairs (N >= 1 may differ per rank; D, log_scale,
 * opts equal). Loss: ss_clip_forward's on the global (Ntot, D) pairs;
 * losses: (N) the local pairs' losses. The text rows b circulate; forward
 * keeps the image rows' log-sum-exps locally and sends a column
 * log-sum-exp accumulator (N_q doubles) with each text block; it is home
 * after W sendrecvs. Backward circulates (b block, its column lse, its
 * gradient accumulator db): da accumulates locally, db comes home after W
 * steps. da, db: mean convention (dloss * world_size * dLglobal/dx_local).
 * dlog_scale (or NULL): += the GLOBAL dL/dlog_scale, identical on every
 * rank (all-reduced): averaging it over ranks (DDP) gives dL/dlog_scale,
 * and so does summing it when the caller passes dloss / world_size.
 * A cache of another call gives SS_ERR_STATE (as ss_clip_backward). */
SS_API size_t ss_dist_clip_ring_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_clip_ring_forward(float *loss, float *losses,
                                           void *cache, const float *a,
                                           const float *b, float log_scale,
                                           int64_t N, int64_t D,
                                           const ss_clip_opts *opts,
                                           const ss_comm *comm);
SS_API ss_status ss_dist_clip_ring_backward(float *da, float *db,
                                            float *dlog_scale, float dloss,
                                            const void *cache, const float *a,
                                            const float *b, float log_scale,
                                            int64_t N, int64_t D,
                                            const ss_clip_opts *opts,
                                            const ss_comm *comm);

/* SigLIP: a, b (N, D) local pairs; loss ss_siglip_forward's on the global
 * pairs (mean over the Ntot rows of sum_j softplus(-y_ij x_ij)); losses:
 * (N) the local rows' sums over all Ntot columns. Forward circulates the b
 * blocks (nothing comes back; the positives are on the home block);
 * backward circulates (b block, db accumulator), home after W steps.
 * da, db: mean convention; dlog_t, dbias (or NULL): += the global
 * gradients, identical on every rank, as CLIP's dlog_scale. A cache of
 * another call gives SS_ERR_STATE. */
SS_API size_t ss_dist_siglip_ring_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_siglip_ring_forward(float *loss, float *losses,
                                             void *cache, const float *a,
                                             const float *b, float log_t,
                                             float bias, int64_t N, int64_t D,
                                             const ss_siglip_opts *opts,
                                             const ss_comm *comm);
SS_API ss_status ss_dist_siglip_ring_backward(float *da, float *db,
                                              float *dlog_t, float *dbias,
                                              float dloss, const void *cache,
                                              const float *a, const float *b,
                                              float log_t, float bias,
                                              int64_t N, int64_t D,
                                              const ss_siglip_opts *opts,
                                              const ss_comm *comm);

/* (section end: dist-ring) */

/* (section start: dist-ring2) */

/* ---- Ring paths of SupCon and DCL / DCLW --------------------------------- */
/*
 * Same arguments, results and errors as ss_dist_supcon_* / ss_dist_dcl_*
 * (and the single-process losses on the concatenated batch), but per-rank
 * memory O(N_local D): the row blocks travel around the ring with
 * comm->sendrecv as in the dist-ring section above (SS_ERR_NULL on every
 * rank when it is NULL).
 *
 * SupCon: the labels travel with the rows (positives may be on any rank);
 * forward keeps per local anchor the online log-sum-exp over every k != i,
 * the positive row sum and count; backward passes (rows, labels, their lse
 * and weights) once more and forms both gradient terms of the local rows
 * locally. Cache: ss_dist_supcon_ring_cache_size bytes (header, local lse
 * and positive counts).
 * DCL / DCLW: forward passes the rows (one online lse per anchor and view
 * of the negatives, one when joint_negatives), backward the rows with
 * their lse and weights; DCLW's weights are a softmax over the GLOBAL
 * samples (two scalar all-reduces). Ntot >= 2. Every option is supported.
 * Cache: ss_dist_dcl_ring_cache_size bytes.
 * A cache of another call or global batch gives SS_ERR_PARAM.
 */
SS_API size_t ss_dist_supcon_ring_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_supcon_ring_forward(float *loss, float *losses,
                                             void *cache, const float *z,
                                             const int64_t *labels, int64_t V,
                                             int64_t N, int64_t D,
                                             const ss_supcon_opts *opts,
                                             const ss_comm *comm);
SS_API ss_status ss_dist_supcon_ring_backward(float *dz, float dloss,
                                              const void *cache,
                                              const float *z,
                                              const int64_t *labels,
                                              int64_t V, int64_t N, int64_t D,
                                              const ss_supcon_opts *opts,
                                              const ss_comm *comm);
SS_API size_t ss_dist_dcl_ring_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_dcl_ring_forward(float *loss, float *losses,
                                          void *cache, const float *z,
                                          int64_t V, int64_t N, int64_t D,
                                          const ss_dcl_opts *opts,
                                          const ss_comm *comm);
SS_API ss_status ss_dist_dcl_ring_backward(float *dz, float dloss,
                                           const void *cache, const float *z,
                                           int64_t V, int64_t N, int64_t D,
                                           const ss_dcl_opts *opts,
                                           const ss_comm *comm);

/* (section end: dist-ring2) */

/* (section start: dist-geometry) */

/*
 * Geometry family (W-MSE, TiCo, negcos, hypersphere, KoLeo, MMCR, EMP-SSL).
 * Each mirrors its single-process function in selfsup.h with comm last;
 * N (or B) is the LOCAL sample count (>= 1, may differ per rank), every
 * other size and every option must be equal on all ranks (SS_ERR_PARAM on
 * every rank otherwise). Losses are those of the concatenated global batch
 * of Ntot = sum_r N_r samples; backward accumulates with the mean
 * convention. Caches are caller-owned, sized by the ss_dist_*_cache_size
 * of the LOCAL sizes; a backward checks its cache (SS_ERR_STATE on every
 * rank when any rank's does not match: sizes, options, global batch).
 * Costs, bytes and memory: docs/DISTRIBUTED.md.
 */

/* ---- negative cosine (BYOL, SimSiam): per sample --------------------------- */
/*
 * p, z: (N, D) local rows. loss = -mean over the Ntot global rows of cos;
 * losses: (N) the local rows' -cos, or NULL. One reduced double; backward
 * is local (the single-process gradient scaled by world_size N / Ntot).
 * dz may be NULL (stop-gradient target). Errors: as ss_negcos_*, plus the
 * agreement errors (selfsup_comm.h); dloss must be equal on all ranks.
 */
SS_API size_t ss_dist_negcos_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_negcos_forward(float *loss, float *losses,
                                        void *cache, const float *p,
                                        const float *z, int64_t N, int64_t D,
                                        const ss_negcos_opts *opts,
                                        const ss_comm *comm);
SS_API ss_status ss_dist_negcos_backward(float *dp, float *dz, float dloss,
                                         const void *cache, const float *p,
                                         const float *z, int64_t N, int64_t D,
                                         const ss_negcos_opts *opts,
                                         const ss_comm *comm);
/* Symmetric form: losses (2, N) local, as ss_negcos_sym_forward's rows. */
SS_API size_t ss_dist_negcos_sym_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_negcos_sym_forward(float *loss, float *losses,
                                            void *cache, const float *p1,
                                            const float *p2, const float *z1,
                                            const float *z2, int64_t N,
                                            int64_t D,
                                            const ss_negcos_opts *opts,
                                            const ss_comm *comm);
SS_API ss_status ss_dist_negcos_sym_backward(
    float *dp1, float *dp2, float *dz1, float *dz2, float dloss,
    const void *cache, const float *p1, const float *p2, const float *z1,
    const float *z2, int64_t N, int64_t D, const ss_negcos_opts *opts,
    const ss_comm *comm);

/* ---- TiCo: global covariance, one state per rank kept identical ------------ */
/*
 * za, zb: (N, D) local rows, N >= 1, Ntot >= 2. P = a^T a / Ntot over the
 * global batch (the local D x D products all-reduced in double), then
 * C = beta C_old + (1 - beta) P and loss = mean over the Ntot samples of
 * 1 - <a_i, b_i> + rho a_i C a_i^T, as ss_tico_forward on the global batch.
 * Every rank holds its own state; the states must be equal (steps and a
 * checksum of C are agreed: SS_ERR_PARAM otherwise) and every rank writes
 * the same C when opts->update. losses: (N) local rows or NULL.
 * Backward is local (the cache holds the global G), dzb may be NULL.
 * Cache: ss_dist_tico_cache_size(D) bytes.
 */
SS_API size_t ss_dist_tico_cache_size(int64_t D);
SS_API ss_status ss_dist_tico_forward(float *loss, float *losses, void *cache,
                                      ss_tico_state *state, const float *za,
                                      const float *zb, int64_t N, int64_t D,
                                      const ss_tico_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_tico_backward(float *dza, float *dzb, float dloss,
                                       const void *cache, const float *za,
                                       const float *zb, int64_t N, int64_t D,
                                       const ss_tico_opts *opts,
                                       const ss_comm *comm);

/* ---- W-MSE: global whitening ----------------------------------------------- */
/*
 * z: (V, N, D) local rows (N >= 1; the global batch (V, Ntot, D) is the
 * per-view concatenation). The sub-batches are the single-process ones on
 * the global batch: Ntot must be a positive multiple of w_size, and perm:
 * (w_iter, Ntot) global permutations, EQUAL on every rank (a checksum is
 * agreed: SS_ERR_PARAM otherwise), or NULL (consecutive global rows). A
 * rank's rows may fall in any sub-batch: per whitening group (sub-batch,
 * view) the row sums and the centred D x D products are all-reduced, every
 * rank factors every group identically and whitens its own rows; backward
 * all-reduces per group the D x D dY^T Y and the D column sums of the
 * centring backward. Loss and gradient equal ss_wmse_* on the global batch
 * (mean convention). A covariance that is not positive definite fails on
 * every rank (SS_ERR_PARAM naming iteration, sub-batch and view).
 * Cache: header only.
 */
SS_API size_t ss_dist_wmse_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_wmse_forward(float *loss, void *cache, const float *z,
                                      const int64_t *perm, int64_t V,
                                      int64_t N, int64_t D,
                                      const ss_wmse_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_wmse_backward(float *dz, float dloss,
                                       const void *cache, const float *z,
                                       const int64_t *perm, int64_t V,
                                       int64_t N, int64_t D,
                                       const ss_wmse_opts *opts,
                                       const ss_comm *comm);

/* ---- alignment and uniformity (hypersphere): gathered rows ----------------- */
/*
 * za, zb: (N, D) local rows, N >= 1, Ntot >= 2. The normalised rows of
 * both views are all-gathered (2 Ntot D floats); each rank computes the
 * uniformity log-sum-exp rows of its own rows against all gathered rows in
 * tiles (never an (N, Ntot) matrix) and one max and one sum all-reduce
 * combine them. Backward gathers the rows again; p_ij is symmetric, so a
 * rank's gradient rows need only its own rows of p. dza or dzb may be NULL.
 * Cache: 2 doubles (the global log-sum-exps) after a header.
 */
SS_API size_t ss_dist_hypersphere_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_hypersphere_forward(float *loss, void *cache,
                                             const float *za, const float *zb,
                                             int64_t N, int64_t D,
                                             const ss_hypersphere_opts *opts,
                                             const ss_comm *comm);
SS_API ss_status ss_dist_hypersphere_backward(
    float *dza, float *dzb, float dloss, const void *cache, const float *za,
    const float *zb, int64_t N, int64_t D, const ss_hypersphere_opts *opts,
    const ss_comm *comm);

/* ---- KoLeo: nearest neighbour over the global batch ------------------------ */
/*
 * x: (N, D) local rows, N >= 1, Ntot >= 2. The rows are all-gathered
 * (Ntot D floats); each rank searches the neighbours of its own rows among
 * all Ntot rows in tiles (global index, lowest on ties, as ss_koleo_*).
 * losses: (N) local rows or NULL. The neighbour of a row may be on another
 * rank: backward gathers the rows again and the neighbour indices (Ntot
 * int64) and adds, for its own rows, the terms of every anchor pointing at
 * them. Cache: N int64 (the local rows' global neighbours) after a header.
 */
SS_API size_t ss_dist_koleo_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_dist_koleo_forward(float *loss, float *losses, void *cache,
                                       const float *x, int64_t N, int64_t D,
                                       const ss_koleo_opts *opts,
                                       const ss_comm *comm);
SS_API ss_status ss_dist_koleo_backward(float *dx, float dloss,
                                        const void *cache, const float *x,
                                        int64_t N, int64_t D,
                                        const ss_koleo_opts *opts,
                                        const ss_comm *comm);

/* ---- MMCR: nuclear norm of the global centroid matrix ---------------------- */
/*
 * online: (B, K, D) local samples (B >= 1), momentum: (B, K, D) or NULL on
 * every rank. loss = -||C||_* + lambda / Btot sum_b ||z_b||_* with C the
 * (Btot, D) centroids of the global batch. Btot >= D: from the
 * all-reduced C^T C (D x D) and its eigendecomposition, the gradient rows
 * C_r V diag(1/s) V^T local; singular values below
 * sqrt(max(Btot, D) eps) s_max count as zero (ss_mmcr_* keeps those above
 * max(Btot, D) eps s_max: the two differ only for centroids with singular
 * values between the two bounds). Btot < D: the centroid rows are
 * all-gathered (Btot D < D^2 doubles) and every rank runs ss_mmcr's SVD.
 * The per-sample nuclear norms are local (one reduced double).
 * Cache: as ss_mmcr_cache_size (local sizes).
 */
SS_API size_t ss_dist_mmcr_cache_size(int64_t B, int64_t K, int64_t D);
SS_API ss_status ss_dist_mmcr_forward(float *loss, void *cache,
                                      const float *online,
                                      const float *momentum, int64_t B,
                                      int64_t K, int64_t D,
                                      const ss_mmcr_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_mmcr_backward(float *donline, float *dmomentum,
                                       float dloss, const void *cache,
                                       const float *online,
                                       const float *momentum, int64_t B,
                                       int64_t K, int64_t D,
                                       const ss_mmcr_opts *opts,
                                       const ss_comm *comm);

/* ---- EMP-SSL: total coding rate of the global batch ------------------------ */
/*
 * z: (V, N, D) local rows. R(Z_v) = 1/2 logdet(I + D / (Ntot tcr_eps)
 * Z_v^T Z_v) of the global (Ntot, D) view: the local Z_v^T Z_v are
 * all-reduced (V D^2 doubles), every rank factors I + a Z^T Z (always
 * positive definite) and forms its gradient rows a Z_r M^{-1} locally.
 * The invariance term is per sample (one reduced double). rates: (V) the
 * global R(Z_v), equal on all ranks, or NULL. Always the D x D form, also
 * where ss_empssl would use the N x N one (N < D): memory O(V D^2).
 */
SS_API size_t ss_dist_empssl_cache_size(int64_t V, int64_t N, int64_t D);
SS_API ss_status ss_dist_empssl_forward(float *loss, float *rates, void *cache,
                                        const float *z, int64_t V, int64_t N,
                                        int64_t D, const ss_empssl_opts *opts,
                                        const ss_comm *comm);
SS_API ss_status ss_dist_empssl_backward(float *dz, float dloss,
                                         const void *cache, const float *z,
                                         int64_t V, int64_t N, int64_t D,
                                         const ss_empssl_opts *opts,
                                         const ss_comm *comm);

/* (section end: dist-geometry) */

/* (section start: dist-distill) */

/* ---- Global-count losses: MLM, fused CE, reconstruction, MAE -------------- */
/*
 * Each rank passes its local rows (T, n, B may differ per rank and be any
 * size >= 1 the single-process function accepts); the options and the
 * other sizes (V, H, C, Hi, Wi, p, kind, reduction, ...) must be equal on
 * all ranks (class weights are compared through their sum and first
 * moment). The loss is the single-process loss of the concatenated batch:
 * a local sum over a GLOBAL count, from one all-reduce of two doubles:
 *     MLM, fused CE   sum of scored row losses / global W, W = sum of the
 *                     class weights of the scored targets of ALL ranks
 *                     (their count without weights); W = 0 globally
 *                     (every target ignored on every rank) gives loss 0
 *                     and no gradient, while a rank whose targets are all
 *                     ignored still gets the global loss and zero gradient.
 *     recon (MEAN)    sum / global number of counted elements (mask != 0,
 *                     or every element when mask is NULL); SUM and NONE:
 *                     *loss is the global sum.
 *     MAE             sum / global number of masked patches; none masked
 *                     anywhere gives 0.
 * Per-row outputs (losses) are the local rows. Backward (mean convention):
 *     dx_local += dloss * world_size * dLglobal/dx_local;
 * the fused CE's dweight and dbias get world_size * (this rank's part of
 * the global gradient), so averaging them over the ranks (DDP) gives the
 * single-process parameter gradient. Recon NONE: dpred += world_size *
 * dlosses * dl/dpred (dlosses: the gradient of the caller's global loss
 * with respect to the local element losses). The backward computes into a
 * scratch of the gradient's size (O(local)), and adds it only after every
 * rank agreed (failed calls write nothing); dloss must agree.
 * Errors (every rank agrees): those of the single-process function (its
 * message names it), SS_ERR_PARAM for an option or size differing between
 * ranks, a bad comm or a cache not written by the matching forward,
 * SS_ERR_STATE for a transport failure. A failed forward leaves the cache
 * invalid (a later backward with it fails on every rank).
 */
/* Bytes of cache: ss_mlm_cache_size(T, V) + a header (0 on bad sizes). */
SS_API size_t ss_dist_mlm_cache_size(int64_t T, int64_t V);
SS_API ss_status ss_dist_mlm_forward(float *loss, float *losses, void *cache,
                                     const float *logits,
                                     const int64_t *targets, int64_t T,
                                     int64_t V, const ss_mlm_opts *opts,
                                     const ss_comm *comm);
SS_API ss_status ss_dist_mlm_backward(float *dlogits, float dloss,
                                      const void *cache, const float *logits,
                                      const int64_t *targets, int64_t T,
                                      int64_t V, const ss_mlm_opts *opts,
                                      const ss_comm *comm);
/* Bytes of cache: ss_fused_ce_cache_size(T, H, V) + a header. */
SS_API size_t ss_dist_fused_ce_cache_size(int64_t T, int64_t H, int64_t V);
SS_API ss_status ss_dist_fused_ce_forward(float *loss, float *losses,
                                          void *cache, const float *hidden,
                                          const float *weight,
                                          const float *bias,
                                          const int64_t *targets, int64_t T,
                                          int64_t H, int64_t V,
                                          const ss_fused_ce_opts *opts,
                                          const ss_comm *comm);
/* dhidden (T, H), dweight (V, H), dbias (V): accumulated, each may be NULL. */
SS_API ss_status ss_dist_fused_ce_backward(float *dhidden, float *dweight,
                                           float *dbias, float dloss,
                                           const void *cache,
                                           const float *hidden,
                                           const float *weight,
                                           const float *bias,
                                           const int64_t *targets, int64_t T,
                                           int64_t H, int64_t V,
                                           const ss_fused_ce_opts *opts,
                                           const ss_comm *comm);
/* Forward then backward with an internal cache (the logits are formed
 * twice: the single-process one-pass path needs the global normaliser
 * before its pass). loss and dloss as in the pair; losses written by
 * the forward, which on a backward failure may already hold its values. */
SS_API ss_status ss_dist_fused_ce_forward_backward(
    float *loss, float *losses, float *dhidden, float *dweight, float *dbias,
    float dloss, const float *hidden, const float *weight, const float *bias,
    const int64_t *targets, int64_t T, int64_t H, int64_t V,
    const ss_fused_ce_opts *opts, const ss_comm *comm);
/* No cache (as ss_recon_*): the backward recomputes, and agrees on the
 * global count again. */
SS_API ss_status ss_dist_recon_forward(float *loss, float *losses,
                                       const float *pred, const float *target,
                                       const uint8_t *mask, int64_t n,
                                       const ss_recon_opts *opts,
                                       const ss_comm *comm);
SS_API ss_status ss_dist_recon_backward(float *dpred, float *dtarget,
                                        float dloss, const float *dlosses,
                                        const float *pred,
                                        const float *target,
                                        const uint8_t *mask, int64_t n,
                                        const ss_recon_opts *opts,
                                        const ss_comm *comm);
/* No cache (as ss_mae_*). */
SS_API ss_status ss_dist_mae_forward(float *loss, float *losses,
                                     const float *pred, const float *imgs,
                                     const uint8_t *mask, int64_t B, int64_t C,
                                     int64_t Hi, int64_t Wi, int64_t p,
                                     const ss_mae_opts *opts,
                                     const ss_comm *comm);
SS_API ss_status ss_dist_mae_backward(float *dpred, float dloss,
                                      const float *pred, const float *imgs,
                                      const uint8_t *mask, int64_t B,
                                      int64_t C, int64_t Hi, int64_t Wi,
                                      int64_t p, const ss_mae_opts *opts,
                                      const ss_comm *comm);

/* ---- Distillation and clustering: centre, DINO, iBOT, SwAV, MSN ---------- */
/*
 * Local batches as the single-process functions take them (N samples, B
 * images, M masked tokens per rank; they may differ per rank); every
 * other size, the options, the centre (compared through the sum and first
 * moment of its values) and MSN's prototypes must be equal on all ranks.
 * Losses are the single-process losses of the concatenated batch; per-row
 * outputs are the local rows. Backward: dx_local += dloss * world_size *
 * dLglobal/dx_local (mean convention); MSN's dprototypes gets world_size *
 * (this rank's part), so averaging over ranks gives the global gradient.
 * Backward computes into an O(local) scratch and adds it after the
 * agreement (failed calls write nothing; a failed forward leaves the cache
 * invalid). Errors: those of the single-process function, SS_ERR_PARAM for
 * options / sizes / centre / prototypes differing between ranks, a bad
 * comm or a cache of another forward, SS_ERR_STATE for a transport failure.
 */

/* The centre over ranks: every rank calls ss_center_accumulate on its own
 * teacher rows, then all call this instead of ss_center_update. The pending
 * sums and row counts are all-reduced (K + 1 values), so the batch centre
 * is the mean over the GLOBAL batch and the centres, equal before, stay
 * identical on every rank (checked through their sum and moment:
 * SS_ERR_PARAM on every rank when they differ). momentum in [0, 1]. */
SS_API ss_status ss_dist_center_update(ss_center *c, float momentum,
                                       const ss_comm *comm);

/* DINO: teacher (G, N, K), student (V, N, K) of the local N samples; the
 * loss is the mean over the global N_tot samples (one all-reduce). */
SS_API size_t ss_dist_dino_cache_size(int64_t G, int64_t V, int64_t N,
                                      int64_t K);
SS_API ss_status ss_dist_dino_forward(float *loss, float *losses, void *cache,
                                      const float *teacher,
                                      const float *student,
                                      const ss_center *c, float teacher_temp,
                                      int64_t G, int64_t V, int64_t N,
                                      int64_t K, const ss_dino_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_dino_backward(float *dstudent, float dloss,
                                       const void *cache, const float *teacher,
                                       const float *student,
                                       const ss_center *c, float teacher_temp,
                                       int64_t G, int64_t V, int64_t N,
                                       int64_t K, const ss_dino_opts *opts,
                                       const ss_comm *comm);

/* iBOT: mask (B, T), teacher / student (M, K) of the local B images (M may
 * be 0 on a rank). As ss_ibot_forward on the concatenated batch: each
 * token weighs 1 / (masked tokens of its image), the sum is divided by the
 * GLOBAL image count B_tot. T, K equal on all ranks. */
SS_API size_t ss_dist_ibot_cache_size(int64_t M, int64_t K);
SS_API ss_status ss_dist_ibot_forward(float *loss, float *losses, void *cache,
                                      const float *teacher,
                                      const float *student,
                                      const uint8_t *mask, const ss_center *c,
                                      int64_t B, int64_t T, int64_t M,
                                      int64_t K, const ss_ibot_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_ibot_backward(float *dstudent, float dloss,
                                       const void *cache, const float *teacher,
                                       const float *student,
                                       const uint8_t *mask, const ss_center *c,
                                       int64_t B, int64_t T, int64_t M,
                                       int64_t K, const ss_ibot_opts *opts,
                                       const ss_comm *comm);

/* SwAV: high (H, N, K), low (L, N, K), queue (H, Q, K) local (N >= 1 and
 * Q >= 0 may differ per rank). The Sinkhorn of high crop i runs over the
 * rows of ALL ranks, [high_i; queue_i] of every rank (SwAV's
 * distributed_sinkhorn): its global normalisation and its K column sums
 * per iteration are all-reduced (2 + 2 K doubles per iteration and crop),
 * so the codes of the local rows equal the single-process codes' rows on
 * the concatenated high crops with the concatenated queues. Loss: the
 * mean over the N_tot samples. */
SS_API size_t ss_dist_swav_cache_size(int64_t H, int64_t L, int64_t N,
                                      int64_t Q, int64_t K);
SS_API ss_status ss_dist_swav_forward(float *loss, float *losses, void *cache,
                                      const float *high, const float *low,
                                      const float *queue, int64_t H,
                                      int64_t L, int64_t N, int64_t Q,
                                      int64_t K, const ss_swav_opts *opts,
                                      const ss_comm *comm);
SS_API ss_status ss_dist_swav_backward(float *dhigh, float *dlow, float dloss,
                                       const void *cache, const float *high,
                                       const float *low, const float *queue,
                                       int64_t H, int64_t L, int64_t N,
                                       int64_t Q, int64_t K,
                                       const ss_swav_opts *opts,
                                       const ss_comm *comm);

/* MSN / PMSN: anchors (V, N, D), targets (N, D) local; prototypes (K, D)
 * equal on all ranks. The target Sinkhorn runs over the N_tot targets of
 * all ranks (as SwAV), and the mean prediction pbar of the regulariser
 * (mean entropy, or the PMSN prior KL) is the mean over the V N_tot
 * anchors of all ranks: one all-reduce of K + 1 doubles. */
SS_API size_t ss_dist_msn_cache_size(int64_t V, int64_t N, int64_t K,
                                     int64_t D);
SS_API ss_status ss_dist_msn_forward(float *loss, float *losses, void *cache,
                                     const float *anchors,
                                     const float *targets,
                                     const float *prototypes, int64_t V,
                                     int64_t N, int64_t K, int64_t D,
                                     const ss_msn_opts *opts,
                                     const ss_comm *comm);
SS_API ss_status ss_dist_msn_backward(float *danchors, float *dprototypes,
                                      float dloss, const void *cache,
                                      const float *anchors,
                                      const float *targets,
                                      const float *prototypes, int64_t V,
                                      int64_t N, int64_t K, int64_t D,
                                      const ss_msn_opts *opts,
                                      const ss_comm *comm);

/* (section end: dist-distill) */

/* (section start: dist-composite) */

/* ---- Composite objectives over ranks ---------------------------------------- */
/*
 * c: a composite from ss_composite_parse / _add (same spec strings and
 * terms as ss_composite_*, include/selfsup.h), built identically on every
 * rank. in: the LOCAL inputs (N, B, recon_n, T local and may differ per
 * rank; every other size as the term's ss_dist_* function requires). Each
 * term runs its ss_dist_* counterpart (ntxent, supcon, dcl, dclw, clip,
 * siglip: all-gather paths; negcos: ss_dist_negcos_sym_*; barlow, vicreg,
 * hypersphere, koleo (per view), mae, recon / mse / l1 / smoothl1 / huber
 * / bce, mlm, dino), so each term value is the global batch's and total,
 * values and ss_composite_term_value equal ss_composite_forward on the
 * concatenated batch, on every rank. Backward: g += dloss * world_size *
 * d(global total)/d(local inputs) (mean convention), term by term.
 * Agreement: before any term, one all-reduce agrees the local checks
 * (pointers, missing inputs, cache sizes, allocations, and in backward the
 * state and the buffers), the number of terms, the spec (names and
 * parameter values, hashed), the weights (hashed) and, in backward, dloss:
 * SS_ERR_PARAM on every rank when they differ. Each term then agrees on its
 * own sizes and options; a term's error is agreed and returned on every
 * rank, prefixed "term i 'name':". The caches are the composite's, sized
 * for the ss_dist_* functions: a backward needs a distributed forward
 * (SS_ERR_STATE after ss_composite_forward, and vice versa). Memory and
 * traffic: the sum of the terms' (docs/DISTRIBUTED.md).
 * Errors: those of ss_composite_forward / _backward and of the terms'
 * ss_dist_* functions, SS_ERR_PARAM for a spec, weight or dloss differing
 * between ranks or a bad comm, SS_ERR_STATE for a transport failure. As
 * single-process, a failing backward term may follow earlier terms that
 * already accumulated (every rank fails at the same term).
 */
SS_API ss_status ss_dist_composite_forward(ss_composite *c, float *total,
                                           float *values,
                                           const ss_composite_inputs *in,
                                           const ss_comm *comm);
SS_API ss_status ss_dist_composite_backward(ss_composite *c,
                                            const ss_composite_grads *g,
                                            float dloss,
                                            const ss_composite_inputs *in,
                                            const ss_comm *comm);

/* (section end: dist-composite) */

#ifdef __cplusplus
}
#endif

#endif
