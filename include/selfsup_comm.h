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
 * Only the plain loss: hard_beta and debias_tau_plus must be 0
 * (SS_ERR_UNSUPPORTED otherwise, for now).
 */
/* Bytes of cache for the local rows; 0 with ss_last_error for bad sizes. */
SS_API size_t ss_dist_ntxent_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1) global loss, same on all ranks. losses: (V, N) local anchors'
 * losses or NULL. Errors (all ranks agree): as ss_ntxent_forward, plus
 * SS_ERR_PARAM for options or V, D differing between ranks or a bad comm,
 * SS_ERR_UNSUPPORTED for the HCL options, SS_ERR_STATE for a transport
 * failure. */
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

/* (section end: dist-contrastive) */

/* (section start: dist-ring) */

/* (section end: dist-ring) */

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

/* (section end: dist-distill) */

#ifdef __cplusplus
}
#endif

#endif
