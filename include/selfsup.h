/*
 * selfsup.h - libselfsup, self-supervised learning objectives in C.
 *
 * This header is the manual. It opens with an overview and the conventions
 * every function follows, then gives one contract comment per function.
 *
 * ----------------------------------------------------------------------------
 * Overview
 * ----------------------------------------------------------------------------
 * Every objective is a forward/backward pair:
 *
 *     ss_<loss>_forward(loss, losses, cache, inputs..., sizes..., opts)
 *     ss_<loss>_backward(dinputs..., dloss, cache, inputs..., sizes..., opts)
 *
 * Forward writes the scalar loss, optionally the per-anchor losses, and a
 * small cache (ss_<loss>_cache_size() bytes, caller-owned) that backward
 * reads. Backward takes the upstream gradient dloss (dL_total/dloss) and
 * ACCUMULATES (+=) dL_total/dinput into the caller's buffers, so several
 * objectives can share one gradient buffer. Zero the buffers yourself.
 *
 * Contents (each family has its section below):
 *   contrastive    ss_ntxent, ss_supcon, ss_moco (+ ss_queue), ss_clip,
 *                  ss_siglip, ss_dcl (DCL / DCLW)
 *   redundancy     ss_negcos (BYOL / SimSiam), ss_barlow, ss_vicreg
 *   geometry       ss_tico (+ state), ss_wmse, ss_hypersphere, ss_koleo,
 *                  ss_mmcr, ss_empssl
 *   distillation   ss_dino, ss_ibot (+ ss_center), ss_swav, ss_msn (PMSN)
 *   predictive     ss_mlm, ss_fused_ce, ss_mask_bert / ss_mask_span,
 *                  ss_recon, ss_mae (+ patch-mask generators)
 *   composite      weighted sums of the above, built from a spec string
 * Derivations of the backward passes are in docs/derivations/.
 *
 * Ten-line example (SimCLR's NT-Xent on two views):
 *
 *     float z[2 * N * D] = ..., dz[2 * N * D] = {0}, loss;
 *     ss_ntxent_opts o = ss_ntxent_defaults();            // tau = 0.5
 *     void *cache = malloc(ss_ntxent_cache_size(2, N, D));
 *     ss_status st = ss_ntxent_forward(&loss, NULL, cache, z, 2, N, D, &o);
 *     if (st != SS_OK) { fprintf(stderr, "%s\n", ss_last_error()); ... }
 *     st = ss_ntxent_backward(dz, 1.0f, cache, z, 2, N, D, &o);
 *     free(cache);
 *
 * ----------------------------------------------------------------------------
 * Conventions
 * ----------------------------------------------------------------------------
 * Shapes are written in PyTorch order, row-major, contiguous float32:
 *     N batch size (samples per view)    D embedding dimension
 *     V number of views                  K queue length or prototypes
 *     M = V * N rows of a stacked input
 * "z: (V, N, D)" means z[(v * N + n) * D + d].
 *
 * Sizes are int64_t. Every size must be >= 1 and every product of sizes must
 * stay below SS_MAX_ELEMENTS.
 *
 * Reduction: unless a contract says otherwise the loss is the mean of the
 * per-anchor losses, as torch.nn.CrossEntropyLoss(reduction="mean") does.
 *
 * Errors: every function returns ss_status. On failure nothing is written to
 * the outputs (forward) or gradient buffers (backward), and ss_last_error()
 * returns a thread-local message that names the argument and its value.
 * The library never prints, exits or aborts.
 *
 * Non-finite inputs give SS_ERR_NONFINITE naming the first bad index.
 *
 * Memory: the caller owns every buffer it passes. Objects created by
 * ss_*_create are freed by the matching ss_*_free, which accepts NULL.
 *
 * Threads: the library uses OpenMP when built with it. ss_set_num_threads()
 * is its only global mutable state. Results do not depend on the thread
 * count beyond float32 summation order. When linked against the pthreads
 * build of OpenBLAS, selfsup runs its GEMMs inside its own threads and asks
 * OpenBLAS to use one thread per call.
 *
 * Randomness: there is no hidden RNG. Functions that draw numbers take an
 * ss_rng the caller seeds and owns.
 */
#ifndef SELFSUP_H
#define SELFSUP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SS_API
#else
#define SS_API __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0
#define SS_VERSION_HEX \
    ((SS_VERSION_MAJOR << 16) | (SS_VERSION_MINOR << 8) | SS_VERSION_PATCH)

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
SS_API const char *ss_version(void);
/* SS_VERSION_HEX of the library actually linked. */
SS_API unsigned ss_version_hex(void);
/* One line naming the optional features compiled in, e.g.
 * "openmp=yes blas=openblas-0.3.21". Static string. */
SS_API const char *ss_build_info(void);
/* When the linked OpenBLAS chose generic SSE3 kernels on a CPU that has
 * AVX2 or AVX-512 (Debian's DYNAMIC_ARCH build picks them from the CPUID
 * model when it loads, and some VMs mask the model), the OPENBLAS_CORETYPE
 * value that selects the right ones ("SkylakeX", "Haswell"); else NULL.
 * It only takes effect in a process started with it set: the selfsup
 * command sets it and re-executes itself. */
SS_API const char *ss_blas_coretype_hint(void);

/* ------------------------------------------------------------------------ */
/* Status codes: one table gives the enum, ss_status_name and ss_strerror.  */
/* ------------------------------------------------------------------------ */

#define SS_STATUS_MAP(X)                                                    \
    X(OK, 0, "success")                                                     \
    X(ERR_NULL, 1, "a required pointer argument is NULL")                   \
    X(ERR_SIZE, 2, "a size is out of range or sizes do not match")          \
    X(ERR_PARAM, 3, "an option or parameter has an invalid value")          \
    X(ERR_NONFINITE, 4, "an input contains NaN or infinity")                \
    X(ERR_LABEL, 5, "a label is out of range")                              \
    X(ERR_NOMEM, 6, "out of memory")                                        \
    X(ERR_IO, 7, "a file could not be read or written")                     \
    X(ERR_FORMAT, 8, "a file has a bad magic number, version or size")      \
    X(ERR_STATE, 9, "an object is in the wrong state for this call")       \
    X(ERR_UNSUPPORTED, 10, "this build lacks a feature the call needs")

typedef enum {
#define SS__STATUS_ENUM(name, code, text) SS_##name = code,
    SS_STATUS_MAP(SS__STATUS_ENUM)
#undef SS__STATUS_ENUM
} ss_status;

/* "SS_ERR_SIZE" for SS_ERR_SIZE; "SS_UNKNOWN" for values outside the enum. */
SS_API const char *ss_status_name(ss_status st);
/* The table's one-line description of st. Static string. */
SS_API const char *ss_strerror(ss_status st);
/* Detail of the last failure on this thread, e.g.
 * "ss_ntxent_forward: temperature must be finite and > 0, got -0.5".
 * Empty string when nothing failed yet. Valid until the next failing call on
 * the same thread. */
SS_API const char *ss_last_error(void);

/* Largest element count of any input or buffer: 2^40. */
#define SS_MAX_ELEMENTS ((int64_t)1 << 40)

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

/* Threads used by later calls. n >= 1; 0 restores the OpenMP default.
 * Errors: SS_ERR_PARAM for n < 0. Without OpenMP, n is recorded and ignored. */
SS_API ss_status ss_set_num_threads(int n);
/* Threads that the next call will use (1 without OpenMP). */
SS_API int ss_get_num_threads(void);

/* ------------------------------------------------------------------------ */
/* Random numbers: explicit state, xoshiro256** seeded through splitmix64.  */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
} ss_rng;

/* Seeds rng deterministically from seed. Same seed, same stream on every
 * platform. */
SS_API void ss_rng_seed(ss_rng *rng, uint64_t seed);
/* Next 64 random bits. */
SS_API uint64_t ss_rng_u64(ss_rng *rng);
/* Uniform in [0, 1). */
SS_API double ss_rng_uniform(ss_rng *rng);
/* Standard normal (Box-Muller, no cached second value). */
SS_API double ss_rng_normal(ss_rng *rng);

/* ------------------------------------------------------------------------ */
/* Contrastive family                                                       */
/* ------------------------------------------------------------------------ */
/*
 * All losses in this family are computed without materialising the
 * similarity matrix: tiles of it are formed with a GEMM, reduced into per-row
 * log-sum-exp statistics (kept in the cache) and recomputed in backward, as
 * FlashAttention and Inf-CL do. Memory beyond the inputs and gradients is
 * O((rows + tile) * D) per thread.
 *
 * "cosine" options: when nonzero (the default) every embedding is
 * L2-normalised, x / max(||x||, SS_NORM_EPS), before dot products, and the
 * gradient flows through the normalisation (torch.nn.functional.normalize).
 * When zero, raw dot products are used.
 */
#define SS_NORM_EPS 1e-12f

/* NT-Xent (SimCLR) over V >= 2 views ------------------------------------- */
/*
 * z: (V, N, D). Anchor i = (v, n) has the V-1 other views of sample n as
 * positives P(i); its denominator runs over every other row k != i.
 *
 *     s_ik   = <z_i, z_k> / temperature          (normalised when cosine)
 *     loss_i = LSE_{k != i} s_ik - (1 / |P(i)|) * sum_{p in P(i)} s_ip
 *     loss   = mean_i loss_i   over the M = V * N anchors
 *
 * For V = 2 this is lightly's NTXentLoss (and SimCLR's), value and gradient.
 *
 * Negative-sampling options (both off by default; with both off the loss is
 * exactly the formula above). They follow Robinson et al. 2021 (hard
 * negatives, HCL) and Chuang et al. 2020 (debiased). For anchor i with
 * positive p and negatives Q(i) = rows other than i and P(i), |Q| = Nq:
 *     pos  = exp(s_ip)
 *     neg  = Nq * sum_{q} e^{(1+beta) s_iq} / sum_{q} e^{beta s_iq}
 *     Ng   = max((neg - tau_plus * Nq * pos) / (1 - tau_plus), Nq e^{-1/temperature})
 *     loss_ip = -log(pos / (pos + Ng)), averaged over p in P(i), then over i.
 * computed in the log domain. Weights e^{beta s} act as importance weights
 * and receive no gradient of their own beyond the formula (as in HCL).
 */
typedef struct {
    float temperature;  /* > 0, finite. Default 0.5 (lightly). */
    int cosine;         /* 1: cosine similarity (default); 0: dot product. */
    float hard_beta;    /* >= 0. Hard-negative concentration. Default 0. */
    float debias_tau_plus; /* in [0, 1). Class prior. Default 0. */
} ss_ntxent_opts;

SS_API ss_ntxent_opts ss_ntxent_defaults(void);
/* Bytes of cache for ss_ntxent_forward; 0 (with ss_last_error set) when the
 * sizes are invalid. */
SS_API size_t ss_ntxent_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1) scalar. losses: (V, N) per-anchor losses or NULL. cache: as
 * sized. z: (V, N, D). opts: NULL means ss_ntxent_defaults().
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (V < 2, N < 1, D < 1, too large),
 * SS_ERR_PARAM (temperature, hard_beta, debias_tau_plus), SS_ERR_NONFINITE,
 * SS_ERR_NOMEM. */
SS_API ss_status ss_ntxent_forward(float *loss, float *losses, void *cache,
                                   const float *z, int64_t V, int64_t N,
                                   int64_t D, const ss_ntxent_opts *opts);
/* dz: (V, N, D), accumulated: dz += dloss * dloss/dz. cache: written by the
 * forward call with the same z, sizes and opts. Errors: as forward, plus
 * SS_ERR_PARAM for a non-finite dloss or a cache written for other sizes or
 * options. */
SS_API ss_status ss_ntxent_backward(float *dz, float dloss, const void *cache,
                                    const float *z, int64_t V, int64_t N,
                                    int64_t D, const ss_ntxent_opts *opts);

/* SupCon (Khosla et al. 2020, the L_out form) ----------------------------- */
/*
 * z: (V, N, D), V >= 1. labels: (N), labels[n] >= 0 a class (any int64
 * value), or -1 = unlabeled. Anchor i = (v, n) has positives P(i) = every
 * other row whose sample has the same label >= 0; an unlabeled sample's
 * positives are its own other views. Denominator over all k != i.
 *     loss_i = LSE_{k != i} s_ik - (1 / |P(i)|) sum_{p in P(i)} s_ip
 *     loss   = mean over anchors with |P(i)| > 0
 * s as NT-Xent. This is pytorch-metric-learning's SupConLoss (default
 * reducer) on the (V * N, D) stacked views with labels repeated per view.
 * An anchor with no positive (V = 1 and a unique or missing label) has
 * loss_i = 0, is left out of the mean and its own term has no gradient (its
 * row still gets gradient as a negative of other anchors). If no anchor has
 * a positive the loss is 0 and backward adds nothing. Unlike
 * pytorch-metric-learning, a batch without any negative pair (one class)
 * still gets the formula above, not 0. Unlabeled samples with V = 2 give
 * SimCLR's NT-Xent.
 */
typedef struct {
    float temperature; /* > 0. Default 0.1 (pytorch-metric-learning). */
    int cosine;        /* default 1 */
} ss_supcon_opts;

SS_API ss_supcon_opts ss_supcon_defaults(void);
/* Bytes of cache: a 64-byte header naming the call, then V * N floats
 * (per-row log-sum-exps); 0 (with ss_last_error set) when the sizes are
 * invalid. */
SS_API size_t ss_supcon_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1). losses: (V, N) per-anchor losses or NULL. cache: as sized.
 * opts: NULL means ss_supcon_defaults().
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (V, N or D < 1, too large), SS_ERR_PARAM
 * (temperature not finite, <= 0 or below 1/FLT_MAX; a logit bound
 * max ||x||^2 / temperature > 1e30, where float32 could overflow; x are the
 * rows in the dot products, unit rows when cosine),
 * SS_ERR_LABEL (a label < -1, naming its index and value), SS_ERR_NONFINITE
 * (z), SS_ERR_NOMEM. */
SS_API ss_status ss_supcon_forward(float *loss, float *losses, void *cache,
                                   const float *z, const int64_t *labels,
                                   int64_t V, int64_t N, int64_t D,
                                   const ss_supcon_opts *opts);
/* dz: (V, N, D), accumulated: dz += dloss * dloss/dz. cache: written by the
 * forward call with the same z, labels, sizes and opts. Errors as forward,
 * plus SS_ERR_PARAM for a non-finite dloss or a cache written for other
 * labels, sizes or options. */
SS_API ss_status ss_supcon_backward(float *dz, float dloss, const void *cache,
                                    const float *z, const int64_t *labels,
                                    int64_t V, int64_t N, int64_t D,
                                    const ss_supcon_opts *opts);

/* Negative queue (MoCo) ---------------------------------------------------- */
/*
 * A ring buffer of K keys of dimension D. New keys overwrite the oldest
 * ones, wrapping around (lightly drops the overflow; we do not). Created
 * filled with random unit vectors, like MoCo and lightly, so that it can be
 * used from the first step.
 */
typedef struct ss_queue ss_queue;

/* *out: new queue of K rows of dimension D. rng: draws the initial rows
 * (normalised standard normals); NULL fills zeros. Free with ss_queue_free.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NOMEM. */
SS_API ss_status ss_queue_create(ss_queue **out, int64_t K, int64_t D,
                                 ss_rng *rng);
SS_API void ss_queue_free(ss_queue *q);
/* keys: (n, D), copied in at the write pointer, wrapping. n may exceed K;
 * then only the last K keys remain (the same state as n single enqueues).
 * Keys are stored as given (ss_moco normalises them when cosine).
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (n < 1), SS_ERR_NONFINITE (queue
 * unchanged). */
SS_API ss_status ss_queue_enqueue(ss_queue *q, const float *keys, int64_t n);
/* Rows in storage order: (K, D), owned by q, valid until the next enqueue. */
SS_API const float *ss_queue_data(const ss_queue *q);
/* Copies the rows, oldest first, into out: (K, D). Errors: SS_ERR_NULL. */
SS_API ss_status ss_queue_read(const ss_queue *q, float *out);
SS_API int64_t ss_queue_len(const ss_queue *q); /* K */
SS_API int64_t ss_queue_dim(const ss_queue *q); /* D */
/* Keys enqueued since creation (not capped at K). The three getters
 * return 0 for NULL. */
SS_API int64_t ss_queue_count(const ss_queue *q);
/* Writes the queue to path atomically: <path>.tmp.XXXXXX, fsync, rename.
 * Format (little-endian, 48-byte header): magic "SSQUEUE1", u32 version (1),
 * u32 reserved, i64 K, i64 D, i64 write pointer, i64 count, then K * D
 * float32 rows in storage order.
 * Errors: SS_ERR_NULL, SS_ERR_IO (no partial file is left behind). */
SS_API ss_status ss_queue_save(const ss_queue *q, const char *path);
/* *out: queue read from path (written only on success).
 * Errors: SS_ERR_NULL, SS_ERR_IO (cannot open), SS_ERR_FORMAT naming the
 * byte offset (bad magic, version, K, D, pointer or count; truncated file;
 * trailing bytes; non-finite row value), SS_ERR_NOMEM. */
SS_API ss_status ss_queue_load(ss_queue **out, const char *path);

/* InfoNCE with a negative queue (MoCo v2) --------------------------------- */
/*
 * q: (N, D) queries, k: (N, D) positive keys, queue: (K, D) negatives
 * (e.g. ss_queue_data(), any storage order).
 *     l_i = [<q_i, k_i>, <q_i, queue_1>, ..., <q_i, queue_K>] / temperature
 *     loss = mean_i CE(l_i, 0)
 * As lightly's NTXentLoss(memory_bank_size=K) with queries = out0, keys =
 * out1 and the bank holding the queue: no in-batch negatives. Call forward
 * before ss_queue_enqueue(k) so the positives are not also negatives. The
 * queue receives no gradient. With cosine the queue rows are normalised
 * too (a no-op for lightly's bank, which stores normalised keys), through a
 * per-column factor: the queue is never copied and the N x K logits are
 * never formed (tiled; see src/kernels/cross.h).
 */
typedef struct {
    float temperature; /* > 0. Default 0.5 (lightly NTXentLoss; MoCo v2 used 0.2). */
    int cosine;        /* default 1: q, k and queue rows are normalised */
} ss_moco_opts;

SS_API ss_moco_opts ss_moco_defaults(void);
SS_API size_t ss_moco_cache_size(int64_t N, int64_t K, int64_t D);
/* loss: (1). losses: (N) per-query CE or NULL. cache: as sized,
 * float-aligned (per-row log-sum-exp over the queue). opts: NULL means
 * defaults.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (temperature not finite,
 * <= 0, or 1/temperature overflowing), SS_ERR_NONFINITE (naming q, k or
 * queue and the index; or logits overflowing float32), SS_ERR_NOMEM. */
SS_API ss_status ss_moco_forward(float *loss, float *losses, void *cache,
                                 const float *q, const float *k,
                                 const float *queue, int64_t N, int64_t K,
                                 int64_t D, const ss_moco_opts *opts);
/* dq: (N, D) accumulated. dk: (N, D) accumulated, or NULL when the keys are
 * stop-gradient (the MoCo case). cache, q, k, queue, sizes and opts: as in
 * the forward call. Errors: as forward, SS_ERR_NONFINITE for dloss, and
 * SS_ERR_STATE when the cache was written for other sizes or options. */
SS_API ss_status ss_moco_backward(float *dq, float *dk, float dloss,
                                  const void *cache, const float *q,
                                  const float *k, const float *queue,
                                  int64_t N, int64_t K, int64_t D,
                                  const ss_moco_opts *opts);

/* Symmetric cross-modal InfoNCE (CLIP) ------------------------------------ */
/*
 * a: (N, D), b: (N, D), log_scale: the learnable parameter t, scale = e^t
 * (CLIP initialises t = log(1/0.07)).
 *     S_ij = e^t <a_i, b_j>
 *     loss = (mean_i CE(S_i., i) + mean_j CE(S_.j, j)) / 2
 * equal to OpenCLIP's ClipLoss with logit_scale = e^t. The row and column
 * log-sum-exps come from one pass over the tiles.
 */
typedef struct {
    int cosine; /* default 1 (OpenCLIP normalises the features before) */
} ss_clip_opts;

SS_API ss_clip_opts ss_clip_defaults(void);
SS_API size_t ss_clip_cache_size(int64_t N, int64_t D);
/* loss: (1). losses: (N) per-pair losses (row CE + column CE)/2, or NULL.
 * cache: as sized, float-aligned (row and column log-sum-exps). opts:
 * NULL means defaults.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (log_scale not finite or
 * e^log_scale overflowing float, i.e. log_scale > 88.7), SS_ERR_NONFINITE
 * (naming a or b and the index; or raw logits overflowing float32),
 * SS_ERR_NOMEM. */
SS_API ss_status ss_clip_forward(float *loss, float *losses, void *cache,
                                 const float *a, const float *b,
                                 float log_scale, int64_t N, int64_t D,
                                 const ss_clip_opts *opts);
/* da, db: (N, D) accumulated. dlog_scale: (1) accumulated dL/dt (t =
 * log_scale), or NULL. Recomputes every tile once and produces all three.
 * Errors: as forward, SS_ERR_NONFINITE for dloss, SS_ERR_STATE when the
 * cache was written for other sizes, log_scale or options. */
SS_API ss_status ss_clip_backward(float *da, float *db, float *dlog_scale,
                                  float dloss, const void *cache,
                                  const float *a, const float *b,
                                  float log_scale, int64_t N, int64_t D,
                                  const ss_clip_opts *opts);

/* Sigmoid pairwise loss (SigLIP, Zhai et al. 2023) ------------------------ */
/*
 * a: (N, D), b: (N, D), log_t: learnable t', temperature t = e^{t'}
 * (init log 10), bias: learnable b (init -10).
 *     x_ij  = e^{t'} <a_i, b_j> + bias,  y_ij = +1 if i == j else -1
 *     loss  = -(1/N) sum_i sum_j log sigmoid(y_ij x_ij)
 * as in the paper and big_vision.
 */
typedef struct {
    int cosine; /* default 1 */
} ss_siglip_opts;

SS_API ss_siglip_opts ss_siglip_defaults(void);
SS_API size_t ss_siglip_cache_size(int64_t N, int64_t D);
/* loss: (1). losses: (N) per-row sums -sum_j log sigmoid(y_ij x_ij), or
 * NULL. log sigmoid is evaluated as -softplus(-y x), which never overflows.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (log_t not finite or
 * e^log_t overflowing float; bias not finite), SS_ERR_NONFINITE (naming a
 * or b and the index; or a loss beyond float range, e.g. e^{t'} ~ 1e37),
 * SS_ERR_NOMEM. */
SS_API ss_status ss_siglip_forward(float *loss, float *losses, void *cache,
                                   const float *a, const float *b, float log_t,
                                   float bias, int64_t N, int64_t D,
                                   const ss_siglip_opts *opts);
/* da, db: (N, D) accumulated; dlog_t, dbias: (1) accumulated, or NULL.
 * Recomputes the tiles (the cache only identifies the forward call).
 * Errors: as forward, SS_ERR_NONFINITE for dloss, SS_ERR_STATE for a cache
 * of other sizes, parameters or options. */
SS_API ss_status ss_siglip_backward(float *da, float *db, float *dlog_t,
                                    float *dbias, float dloss,
                                    const void *cache, const float *a,
                                    const float *b, float log_t, float bias,
                                    int64_t N, int64_t D,
                                    const ss_siglip_opts *opts);

/* Decoupled contrastive loss: DCL and DCLW (Yeh et al. 2021) -------------- */
/*
 * z: (V, N, D) with V >= 2 views and N >= 2 samples (N = 1 leaves no
 * negative; lightly returns -inf there). As lightly's DCLLoss /
 * DCLWLoss: the positive is left out of the denominator, and the negatives
 * enter as TWO log-sum-exps, one over the other samples of the anchor's own
 * view and one over those of the other view (lightly's form, not the single
 * log-sum-exp over both of the paper's Eq. 6). For anchor i = (v, n):
 *
 *     loss_i = LSE_{j != n} s((v,n), (v,j))
 *            + 1/(V-1) sum_{u != v} [ LSE_{j != n} s((v,n), (u,j))
 *                                     - w_n s((v,n), (u,n)) ]
 *     loss   = mean_i loss_i   over the M = V * N anchors
 *
 * s as NT-Xent. For V = 2 this is lightly's loss, value and gradient; for
 * V > 2 it is the mean of lightly's two-view loss over all pairs of views.
 * w_n = 1 (DCL) or, for DCLW (V = 2 only), lightly's negative von
 * Mises-Fisher weights w_n = 2 - N softmax_n(<x_0n, x_1n> / sigma) of the
 * rows x used in s (normalised when cosine), detached: no gradient flows
 * through w.
 *
 * joint_negatives = 1 gives the paper's form instead (as proposed for
 * lightly in its PR #1827): one log-sum-exp over the negatives of all views,
 *     loss_i = LSE_{k = (u, j), j != n} s_ik
 *              - 1/(V-1) sum_{u != v} w_n s((v,n), (u,n))
 */
typedef struct {
    float temperature; /* > 0. Default 0.1 (lightly). */
    int weighted;      /* 0: DCL (default), 1: DCLW */
    float sigma;       /* > 0, checked and used when weighted. Default 0.5
                          (lightly). */
    int cosine;        /* default 1 */
    int joint_negatives; /* 0: lightly's two log-sum-exps (default);
                            1: one log-sum-exp, the paper's Eq. 6 */
} ss_dcl_opts;

SS_API ss_dcl_opts ss_dcl_defaults(void);  /* DCL */
SS_API ss_dcl_opts ss_dclw_defaults(void); /* DCLW: weighted = 1 */
/* Bytes of cache: a 64-byte header naming the call, then V * V * N floats
 * (per-row log-sum-exps); 0 (with ss_last_error set) when the sizes are
 * invalid. */
SS_API size_t ss_dcl_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1). losses: (V, N) per-anchor losses or NULL. cache: as sized.
 * z: (V, N, D). opts: NULL means ss_dcl_defaults().
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (V < 2, N < 2, D < 1, too large),
 * SS_ERR_PARAM (temperature as SupCon; sigma when weighted; weighted with
 * V != 2; the cosine = 0 logit bound as SupCon), SS_ERR_NONFINITE (z),
 * SS_ERR_NOMEM. */
SS_API ss_status ss_dcl_forward(float *loss, float *losses, void *cache,
                                const float *z, int64_t V, int64_t N,
                                int64_t D, const ss_dcl_opts *opts);
/* dz: (V, N, D), accumulated: dz += dloss * dloss/dz. cache: written by the
 * forward call with the same z, sizes and opts. Errors as forward, plus
 * SS_ERR_PARAM for a non-finite dloss or a cache written for other sizes or
 * options. */
SS_API ss_status ss_dcl_backward(float *dz, float dloss, const void *cache,
                                 const float *z, int64_t V, int64_t N,
                                 int64_t D, const ss_dcl_opts *opts);

/* ------------------------------------------------------------------------ */
/* Redundancy-reduction family: BYOL/SimSiam, Barlow Twins, VICReg          */
/* ------------------------------------------------------------------------ */
/* (section start: redundancy) */

/*
 * Sizes: N >= 1 rows (samples) per view, D >= 1 dimensions; Barlow Twins and
 * VICReg need N >= 2 (batch statistics). Every view is (N, D) float32.
 *
 * Barlow Twins and VICReg compute D x D second-moment matrices. When N < D
 * they use the N x N Gram matrices instead, through
 * ||A^T B||_F^2 = <A A^T, B B^T>_F: about 3 N^2 D multiply-adds for loss and
 * gradient instead of 3 N D^2. The formulation option picks one; both give
 * the same result up to float32 rounding. Their cache holds those matrices:
 * about 2 min(N, D)^2 floats plus O(D) doubles (ss_*_cache_size says).
 * Workspace allocated per call and freed before return: Barlow Twins 2 N D
 * floats (forward) and 3 N D (backward); VICReg N D and 2 N D.
 */

/* Which second-moment formulation Barlow Twins and VICReg use. */
typedef enum {
    SS_MOMENT_AUTO = 0, /* N x N Gram when N < D, else D x D (default) */
    SS_MOMENT_GRAM = 1, /* N x N Gram matrices of the views */
    SS_MOMENT_DXD = 2   /* D x D cross-correlation / covariance */
} ss_moment_form;

/* Negative cosine similarity (BYOL, SimSiam) ------------------------------ */
/*
 * p: (N, D) predictions, z: (N, D) targets.
 *     cos_n  = <p_n, z_n> / (max(||p_n||, eps) * max(||z_n||, eps))
 *     loss_n = -cos_n,   loss = mean_n loss_n
 * as lightly's NegativeCosineSimilarity (torch cosine_similarity, dim 1,
 * eps 1e-8; below eps the gradient is torch 1.13's).
 * Gradient: the target z is stop-gradient (BYOL/SimSiam's z.detach()):
 * backward accumulates into dp only, and into dz only when the caller asks
 * for it with a non-NULL dz (lightly's loss without the detach).
 */
typedef struct {
    float eps; /* > 0, finite. Default 1e-8 (torch / lightly). */
} ss_negcos_opts;

SS_API ss_negcos_opts ss_negcos_defaults(void);
/* Bytes of cache; 0 (with ss_last_error set) for invalid sizes. */
SS_API size_t ss_negcos_cache_size(int64_t N, int64_t D);
/* loss: (1). losses: (N) per-row -cos, or NULL. cache: as sized.
 * opts: NULL means ss_negcos_defaults().
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (eps), SS_ERR_NONFINITE. */
SS_API ss_status ss_negcos_forward(float *loss, float *losses, void *cache,
                                   const float *p, const float *z, int64_t N,
                                   int64_t D, const ss_negcos_opts *opts);
/* dp: (N, D) accumulated. dz: (N, D) accumulated, or NULL (stop-gradient
 * target, the BYOL/SimSiam case). Errors as forward, plus SS_ERR_STATE for a
 * cache not written by forward with the same sizes and opts. */
SS_API ss_status ss_negcos_backward(float *dp, float *dz, float dloss,
                                    const void *cache, const float *p,
                                    const float *z, int64_t N, int64_t D,
                                    const ss_negcos_opts *opts);

/* Symmetric two-view form (SimSiam, BYOL):
 *     loss = 0.5 * (Dn(p1, z2) + Dn(p2, z1)),  Dn(p, z) = -mean_n cos(p_n, z_n)
 * losses: (2, N): row 0 holds -cos(p1_n, z2_n), row 1 -cos(p2_n, z1_n), so
 * loss is their mean. p1, p2, z1, z2: (N, D). */
SS_API size_t ss_negcos_sym_cache_size(int64_t N, int64_t D);
SS_API ss_status ss_negcos_sym_forward(float *loss, float *losses, void *cache,
                                       const float *p1, const float *p2,
                                       const float *z1, const float *z2,
                                       int64_t N, int64_t D,
                                       const ss_negcos_opts *opts);
/* dp1, dp2: (N, D) accumulated. dz1, dz2: accumulated, or NULL
 * (stop-gradient targets, the SimSiam/BYOL case). */
SS_API ss_status ss_negcos_sym_backward(float *dp1, float *dp2, float *dz1,
                                        float *dz2, float dloss,
                                        const void *cache, const float *p1,
                                        const float *p2, const float *z1,
                                        const float *z2, int64_t N, int64_t D,
                                        const ss_negcos_opts *opts);

/* Barlow Twins (Zbontar et al. 2021) --------------------------------------- */
/*
 * a, b: (N, D), N >= 2. Each view is standardised per dimension over the
 * batch, as torch F.batch_norm in training mode without affine (biased
 * variance):
 *     A_nd = (a_nd - mean_d) / sqrt(var_d + bn_eps)      (same for B)
 *     C    = A^T B / N                                   (D, D)
 *     loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2
 * equal to lightly's BarlowTwinsLoss (views normalised separately, as since
 * lightly PR #1806). The gradient flows through the standardisation.
 */
typedef struct {
    float lambda;  /* >= 0, finite. Default 5e-3 (paper, lightly). */
    float bn_eps;  /* > 0, finite. Default 1e-5 (torch batch_norm). */
    ss_moment_form form; /* default SS_MOMENT_AUTO */
} ss_barlow_opts;

SS_API ss_barlow_opts ss_barlow_defaults(void);
/* Bytes of cache (depends on opts->form; NULL = defaults); 0 with
 * ss_last_error set for invalid sizes or options. */
SS_API size_t ss_barlow_cache_size(int64_t N, int64_t D,
                                   const ss_barlow_opts *opts);
/* loss: (1). terms: (2) or NULL: [sum_i (1 - C_ii)^2, sum_{i!=j} C_ij^2]
 * (unweighted). cache: as sized.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (N < 2, D < 1, too large), SS_ERR_PARAM
 * (lambda, bn_eps, form), SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_barlow_forward(float *loss, float *terms, void *cache,
                                   const float *a, const float *b, int64_t N,
                                   int64_t D, const ss_barlow_opts *opts);
/* da, db: (N, D) accumulated. Errors as forward, plus SS_ERR_STATE. */
SS_API ss_status ss_barlow_backward(float *da, float *db, float dloss,
                                    const void *cache, const float *a,
                                    const float *b, int64_t N, int64_t D,
                                    const ss_barlow_opts *opts);

/* VICReg (Bardes, Ponce, LeCun 2022) --------------------------------------- */
/*
 * a, b: (N, D), N >= 2 (N = 1 is SS_ERR_SIZE: unbiased variance).
 *     inv  = mean_{n,d} (a_nd - b_nd)^2
 *     var  = 0.5 * (mean_d relu(1 - sqrt(Var_d(a) + eps)) + same for b)
 *     cov  = sum_{i != j} Cov(a)_ij^2 / D + sum_{i != j} Cov(b)_ij^2 / D
 *     loss = lambda * inv + mu * var + nu * cov
 * Var and Cov are unbiased (1 / (N - 1)) over the batch, as lightly's
 * VICRegLoss (2-D inputs, no gather). relu'(0) = 0, as torch.
 */
typedef struct {
    float lambda; /* invariance weight, finite. Default 25. */
    float mu;     /* variance weight, finite. Default 25. */
    float nu;     /* covariance weight, finite. Default 1. */
    float eps;    /* >= 0, finite. Default 1e-4. */
    ss_moment_form form; /* default SS_MOMENT_AUTO */
} ss_vicreg_opts;

SS_API ss_vicreg_opts ss_vicreg_defaults(void);
SS_API size_t ss_vicreg_cache_size(int64_t N, int64_t D,
                                   const ss_vicreg_opts *opts);
/* loss: (1). terms: (3) or NULL: [inv, var, cov] (unweighted). Errors:
 * SS_ERR_NULL, SS_ERR_SIZE (N < 2, D < 1, too large), SS_ERR_PARAM,
 * SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_vicreg_forward(float *loss, float *terms, void *cache,
                                   const float *a, const float *b, int64_t N,
                                   int64_t D, const ss_vicreg_opts *opts);
/* da, db: (N, D) accumulated. Errors as forward, plus SS_ERR_STATE. */
SS_API ss_status ss_vicreg_backward(float *da, float *db, float dloss,
                                    const void *cache, const float *a,
                                    const float *b, int64_t N, int64_t D,
                                    const ss_vicreg_opts *opts);


/* (section end: redundancy) */

/* ------------------------------------------------------------------------ */
/* Whitening, geometry and coding-rate family: TiCo, W-MSE, alignment and   */
/* uniformity, KoLeo, MMCR, EMP-SSL total coding rate                       */
/* ------------------------------------------------------------------------ */
/* (section start: geometry) */

/*
 * These losses act on the geometry of a whole batch (its covariance, its
 * pairwise distances, its singular values) rather than on per-row softmax
 * statistics. Small matrices (D x D covariances, Cholesky factors, SVDs)
 * are computed in double precision; with OpenBLAS they go through LAPACK
 * (dpotrf, dgesdd), otherwise through portable routines (same results to
 * rounding, slower). Inputs are float32 like everywhere else.
 */

/* TiCo (Zhu et al. 2022; lightly TiCoLoss) -------------------------------- */
/*
 * za, zb: (N, D) the two views (online and momentum branch). With
 * a = normalize(za), b = normalize(zb) (F.normalize, eps SS_NORM_EPS) and
 * the running covariance C_old held by an ss_tico_state:
 *
 *     C      = beta C_old + (1 - beta) a^T a / N      (update, then use)
 *     loss_i = 1 - <a_i, b_i> + rho a_i C a_i^T
 *     loss   = mean_i loss_i
 *
 * exactly as lightly's TiCoLoss.forward: C is formed from the current batch
 * before it is used, the gradient flows through the (1 - beta) a^T a / N
 * part of C (C_old is a constant), and C, detached, becomes the new state
 * when opts->update is nonzero (lightly's update_covariance_matrix). A new
 * state is all zeros, as lightly's first call. zb receives gradient
 * through the alignment term (pass dzb = NULL for a stop-gradient target).
 */
typedef struct ss_tico_state ss_tico_state;

/* *out: new state for dimension D, C = 0, steps = 0.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NOMEM. */
SS_API ss_status ss_tico_state_create(ss_tico_state **out, int64_t D);
SS_API void ss_tico_state_free(ss_tico_state *s);
SS_API int64_t ss_tico_state_dim(const ss_tico_state *s);   /* D; 0 for NULL */
/* Updates applied since creation (forward calls with update != 0). */
SS_API int64_t ss_tico_state_steps(const ss_tico_state *s);
/* C: (D, D), copied out. Errors: SS_ERR_NULL. */
SS_API ss_status ss_tico_state_read(const ss_tico_state *s, float *C);
/* C: (D, D), copied in (steps unchanged). Errors: SS_ERR_NULL,
 * SS_ERR_NONFINITE. */
SS_API ss_status ss_tico_state_write(ss_tico_state *s, const float *C);
/* Writes the state to path atomically (temp file + rename). Format:
 * magic "SSTICOC1", u32 version 1, u32 0, i64 D, i64 steps, D*D float32.
 * Errors: SS_ERR_NULL, SS_ERR_IO. */
SS_API ss_status ss_tico_state_save(const ss_tico_state *s, const char *path);
/* *out: state read from path. Errors: SS_ERR_NULL, SS_ERR_IO,
 * SS_ERR_FORMAT (bad magic / version, bad D or steps, truncated, non-finite
 * C, trailing bytes: naming the byte offset), SS_ERR_NOMEM. */
SS_API ss_status ss_tico_state_load(ss_tico_state **out, const char *path);

typedef struct {
    float beta;  /* EMA coefficient in [0, 1]. Default 0.9 (paper, lightly). */
    float rho;   /* covariance weight, finite. Default 8 (issue 3, the
                  * research notes' lightly default; the lightly
                  * versions in our corpus use 20). */
    int update;  /* nonzero (default): forward stores C in the state. */
} ss_tico_opts;

SS_API ss_tico_opts ss_tico_defaults(void);
/* Bytes of cache: about D * D floats. 0 (message set) for invalid sizes. */
SS_API size_t ss_tico_cache_size(int64_t N, int64_t D);
/* loss: (1). losses: (N) per-sample loss_i or NULL. cache: as sized.
 * state: dimension D, read, and updated when opts->update. za, zb: (N, D).
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (N < 2 as lightly, D < 1, D differs
 * from the state's), SS_ERR_PARAM (beta, rho), SS_ERR_NONFINITE, SS_ERR_NOMEM.
 * On error the state is unchanged. */
SS_API ss_status ss_tico_forward(float *loss, float *losses, void *cache,
                                 ss_tico_state *state, const float *za,
                                 const float *zb, int64_t N, int64_t D,
                                 const ss_tico_opts *opts);
/* dza: (N, D) accumulated. dzb: (N, D) accumulated, or NULL. The cache
 * holds the C the forward call used, so the state may have changed since. */
SS_API ss_status ss_tico_backward(float *dza, float *dzb, float dloss,
                                  const void *cache, const float *za,
                                  const float *zb, int64_t N, int64_t D,
                                  const ss_tico_opts *opts);

/* W-MSE (Ermolov et al. 2021; lightly WMSELoss) --------------------------- */
/*
 * z: (V, N, D), V >= 2 views of N samples (lightly's (N * V, D) input).
 * For each of w_iter iterations, the rows are split by a permutation perm
 * of 0..N-1 into N / w_size sub-batches of w_size consecutive entries;
 * every view of every sub-batch X (w_size, D) is whitened:
 *
 *     Xc = X - mean_rows(X),  S = Xc^T Xc / (w_size - 1)
 *     L  = cholesky((1 - eps) S + eps I),  W = Xc L^{-T}
 *
 * and the whitened views are compared pairwise:
 *
 *     loss = mean_{iter} mean_{u < v} (2 - 2 mean_n cos(W_u[n], W_v[n]))
 *
 * as lightly's WMSELoss with its norm_mse_loss (value and gradient). The
 * gradient flows through the whitening, the Cholesky factor included
 * (docs/derivations/wmse.md). lightly draws torch.randperm(N) per
 * iteration; here the permutations are an explicit input so results are
 * reproducible: perm: (w_iter, N), each row a permutation of 0..N-1, or
 * NULL for the identity (consecutive sub-batches). ss_wmse_permutation
 * draws them from an ss_rng. The running mean / covariance lightly keeps
 * for inference are not part of the loss and are not kept here.
 */
typedef struct {
    int64_t w_size; /* rows per sub-batch, >= 2 D. Default 256 (lightly). */
    int64_t w_iter; /* >= 1. Default 1 (lightly). */
    float eps;      /* shrinkage in [0, 1). Default 0 (lightly). */
} ss_wmse_opts;

SS_API ss_wmse_opts ss_wmse_defaults(void);
/* perm: (w_iter, N), written with w_iter uniform random permutations
 * (Fisher-Yates). Errors: SS_ERR_NULL, SS_ERR_SIZE. */
SS_API ss_status ss_wmse_permutation(int64_t *perm, int64_t w_iter,
                                     int64_t N, ss_rng *rng);
SS_API size_t ss_wmse_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1). perm: (opts->w_iter, N) or NULL.
 * Errors: SS_ERR_NULL; SS_ERR_SIZE (V < 2; w_size < 2 D: the sub-batch is
 * too small for the dimension, lightly's condition; N not a multiple of
 * w_size or N < w_size); SS_ERR_PARAM (w_size < 2, w_iter < 1, eps; perm
 * not a permutation, naming the entry; a sub-batch covariance that is not
 * positive definite, naming iteration, sub-batch and view: raise eps);
 * SS_ERR_NONFINITE; SS_ERR_NOMEM. */
SS_API ss_status ss_wmse_forward(float *loss, void *cache, const float *z,
                                 const int64_t *perm, int64_t V, int64_t N,
                                 int64_t D, const ss_wmse_opts *opts);
/* dz: (V, N, D) accumulated. Recomputes the whitening (cheap next to the
 * backbone) rather than caching it. */
SS_API ss_status ss_wmse_backward(float *dz, float dloss, const void *cache,
                                  const float *z, const int64_t *perm,
                                  int64_t V, int64_t N, int64_t D,
                                  const ss_wmse_opts *opts);

/* Alignment and uniformity (Wang & Isola 2020; lightly HypersphereLoss) -- */
/*
 * za, zb: (N, D), N >= 2. x = normalize(za), y = normalize(zb):
 *
 *     align  = mean_i ||x_i - y_i||^alpha
 *     unif(x) = log mean_{i < j} exp(-t ||x_i - x_j||^2)
 *     loss   = align + lambda (unif(x) + unif(y)) / 2
 *
 * as lightly's HypersphereLoss, but unif is a log-sum-exp over tiles of the
 * pair matrix (never materialised, O((N + tile) D) memory per thread), so it
 * stays finite for any t where lightly's exp().mean().log() underflows to
 * -inf. Work O(N^2 D).
 */
typedef struct {
    float t;      /* > 0. Default 1. */
    float lambda; /* finite. Default 1. */
    float alpha;  /* > 0. Default 2. */
} ss_hypersphere_opts;

SS_API ss_hypersphere_opts ss_hypersphere_defaults(void);
SS_API size_t ss_hypersphere_cache_size(int64_t N, int64_t D);
/* loss: (1). Errors: SS_ERR_NULL, SS_ERR_SIZE (N < 2), SS_ERR_PARAM,
 * SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_hypersphere_forward(float *loss, void *cache,
                                        const float *za, const float *zb,
                                        int64_t N, int64_t D,
                                        const ss_hypersphere_opts *opts);
/* dza, dzb: (N, D) accumulated (either may be NULL to skip it). */
SS_API ss_status ss_hypersphere_backward(float *dza, float *dzb, float dloss,
                                         const void *cache, const float *za,
                                         const float *zb, int64_t N,
                                         int64_t D,
                                         const ss_hypersphere_opts *opts);

/* KoLeo (Sablayrolles et al. 2019; DINOv2 KoLeoLoss) ----------------------- */
/*
 * x: (N, D), N >= 2. u = x / max(||x||, eps) (F.normalize with DINOv2's
 * eps), n(i) = the nearest other row by cosine (argmax_{j != i} <u_i, u_j>,
 * lowest index on ties), and, as torch's PairwiseDistance(p=2, eps):
 *
 *     d_i    = || u_i - u_n(i) + eps ||      (eps added to each component)
 *     loss_i = -log(d_i + eps),   loss = mean_i loss_i
 *
 * The nearest-neighbour search is tiled (O((N + tile) D) memory per
 * thread, O(N^2 D) work). The neighbour choice is piecewise constant, so
 * the gradient flows to both x_i and x_n(i) with n fixed, as autograd does.
 */
typedef struct {
    float eps; /* > 0. Default 1e-8 (DINOv2). */
} ss_koleo_opts;

SS_API ss_koleo_opts ss_koleo_defaults(void);
SS_API size_t ss_koleo_cache_size(int64_t N, int64_t D);
/* loss: (1). losses: (N) or NULL. Errors: SS_ERR_NULL, SS_ERR_SIZE (N < 2:
 * no neighbour), SS_ERR_PARAM (eps), SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_koleo_forward(float *loss, float *losses, void *cache,
                                  const float *x, int64_t N, int64_t D,
                                  const ss_koleo_opts *opts);
/* dx: (N, D) accumulated. */
SS_API ss_status ss_koleo_backward(float *dx, float dloss, const void *cache,
                                   const float *x, int64_t N, int64_t D,
                                   const ss_koleo_opts *opts);

/* MMCR (Yerxa et al. 2023; lightly MMCRLoss) ------------------------------- */
/*
 * online: (B, K, D) K views of B samples; momentum: (B, K, D) or NULL. With
 * z_b = the (Kt, D) views of sample b (online rows, then momentum rows;
 * Kt = 2K, or K without momentum) and c: (B, D) their means over views:
 *
 *     loss = -||c||_* + lambda / B sum_b ||z_b||_*
 *
 * (||.||_* the nuclear norm, sum of singular values), as lightly's
 * MMCRLoss(online, momentum). Singular values come from LAPACK's dgesdd.
 * The gradient of ||A||_* is U V^T over the singular vectors; where A is
 * rank deficient we use the minimal subgradient, U_r V_r^T over singular
 * values above max(m, n) sigma_max 2^-52 (torch's value there depends on
 * the SVD's arbitrary null-space basis). The loss does not normalise its
 * inputs (the paper projects to the sphere before it).
 */
typedef struct {
    float lambda; /* >= 0, finite. Default 5e-3 (lightly, paper). */
} ss_mmcr_opts;

SS_API ss_mmcr_opts ss_mmcr_defaults(void);
/* Bytes of cache: about (B D + B Kt D) floats (the U V^T factors). */
SS_API size_t ss_mmcr_cache_size(int64_t B, int64_t K, int64_t D);
/* loss: (1). Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (lambda; an SVD
 * that did not converge), SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_mmcr_forward(float *loss, void *cache,
                                 const float *online, const float *momentum,
                                 int64_t B, int64_t K, int64_t D,
                                 const ss_mmcr_opts *opts);
/* donline: (B, K, D) accumulated, or NULL. dmomentum: (B, K, D)
 * accumulated, or NULL (the momentum branch is normally stop-gradient).
 * momentum must be NULL exactly when it was in forward. */
SS_API ss_status ss_mmcr_backward(float *donline, float *dmomentum,
                                  float dloss, const void *cache,
                                  const float *online, const float *momentum,
                                  int64_t B, int64_t K, int64_t D,
                                  const ss_mmcr_opts *opts);

/* EMP-SSL: total coding rate + invariance (Tong et al. 2023) -------------- */
/*
 * z: (V, N, D), V views (patches) of N samples. For each view
 *
 *     R(Z_v) = 1/2 logdet(I_D + D / (N tcr_eps) Z_v^T Z_v)
 *
 * (the total coding rate; lightly and the official code use tcr_eps, not
 * its square). The log-determinant comes from a Cholesky factor of the
 * smaller of the D x D or N x N Gram forms (equal by Sylvester's identity).
 *
 *     loss = -mean_v R(Z_v) + inv_coef * (-mean_{v,n} cos(z_vn, zbar_n))
 *
 * with zbar_n = mean_v z_vn (gradient through the mean too).
 * SIGN: the coding rate is MAXIMISED, so it enters the loss as -R, as in
 * the paper and the official TotalCodingRate (which returns -logdet / 2).
 * lightly's EMPSSLLoss adds +R, i.e. minimises the coding rate: its loss
 * differs from this one in the sign of the first term.
 * inv_coef = 0 gives the pure coding-rate objective -mean_v R(Z_v).
 */
typedef struct {
    float tcr_eps;  /* > 0. Default 0.2 (paper, lightly). */
    float inv_coef; /* finite. Default 200 (paper, lightly). */
} ss_empssl_opts;

SS_API ss_empssl_opts ss_empssl_defaults(void);
SS_API size_t ss_empssl_cache_size(int64_t V, int64_t N, int64_t D);
/* loss: (1). rates: (V) the coding rates R(Z_v), or NULL.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM, SS_ERR_NONFINITE,
 * SS_ERR_NOMEM. */
SS_API ss_status ss_empssl_forward(float *loss, float *rates, void *cache,
                                   const float *z, int64_t V, int64_t N,
                                   int64_t D, const ss_empssl_opts *opts);
/* dz: (V, N, D) accumulated. */
SS_API ss_status ss_empssl_backward(float *dz, float dloss, const void *cache,
                                    const float *z, int64_t V, int64_t N,
                                    int64_t D, const ss_empssl_opts *opts);

/* (section end: geometry) */

/* ------------------------------------------------------------------------ */
/* Distillation and clustering family: DINO, iBOT, SwAV, MSN/PMSN           */
/* ------------------------------------------------------------------------ */
/* (section start: distill) */
/*
 * Shapes in this section: G teacher (global) views, V student views, N
 * samples, K prototypes / output dimension, D embedding dimension, B images,
 * T tokens per image, M masked tokens, H / L high- / low-resolution crops,
 * Q queue rows. Teachers and Sinkhorn targets are stop-gradient: they never
 * receive gradient. All softmaxes and Sinkhorn iterations run in the log
 * domain in double, so no temperature or epsilon can overflow them.
 */

/* Teacher centre (DINO, iBOT) ---------------------------------------------- */
/*
 * c: (K), zero at creation. The centre is explicit caller-owned state: the
 * losses read it, they never update it. Once per optimiser step:
 *     ss_center_accumulate(c, teacher, rows)   (one or more micro-batches)
 *     ss_center_update(c, momentum)            c = m c + (1 - m) mean(rows)
 * which is lightly's Center / DINOLoss.update_center: the batch centre is
 * the mean over every accumulated row, weighted by rows.
 */
typedef struct ss_center ss_center;

/* *out: new zero centre of dimension K. Errors: SS_ERR_NULL, SS_ERR_SIZE,
 * SS_ERR_NOMEM. */
SS_API ss_status ss_center_create(ss_center **out, int64_t K);
SS_API void ss_center_free(ss_center *c);
SS_API int64_t ss_center_dim(const ss_center *c); /* K */
/* The current centre: (K), owned by c, valid until the next update/set. */
SS_API const float *ss_center_data(const ss_center *c);
/* Overwrites the centre with values: (K). Errors: SS_ERR_NULL,
 * SS_ERR_NONFINITE. */
SS_API ss_status ss_center_set(ss_center *c, const float *values);
/* Adds the rows x: (rows, K) to the pending batch sum (double). rows >= 1.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NONFINITE. */
SS_API ss_status ss_center_accumulate(ss_center *c, const float *x,
                                      int64_t rows);
/* c = momentum * c + (1 - momentum) * (pending sum / pending rows), then
 * clears the pending sum. No-op when nothing is pending. momentum in [0, 1]
 * (lightly: 0.9). Errors: SS_ERR_NULL, SS_ERR_PARAM. */
SS_API ss_status ss_center_update(ss_center *c, float momentum);
/* Rows accumulated since the last update. */
SS_API int64_t ss_center_pending(const ss_center *c);
/* Writes c atomically (temp file + rename). Format: magic "SSCENTR1",
 * version 1, K, pending rows, centre (K float32), pending sum (K float64).
 * Errors: SS_ERR_NULL, SS_ERR_IO. */
SS_API ss_status ss_center_save(const ss_center *c, const char *path);
/* *out: centre read from path. Errors: SS_ERR_NULL, SS_ERR_IO, SS_ERR_FORMAT
 * (naming the byte offset: bad magic, version, K, truncation, non-finite
 * values, trailing bytes), SS_ERR_NOMEM. */
SS_API ss_status ss_center_load(ss_center **out, const char *path);

/* DINO (Caron et al. 2021; lightly DINOLoss) -------------------------------- */
/*
 * teacher: (G, N, K) teacher logits of the G global views, student: (V, N,
 * K) student logits of all V views, the G global views first and in the
 * same order (view g of both is the same crop). c: the centre (K).
 *     P_gn = softmax((teacher_gn - c) / teacher_temp)          (no gradient)
 *     l_vn = log_softmax(student_vn / student_temp)
 *     loss = sum_{g < G} sum_{v != g} sum_n -<P_gn, l_vn> / (n_terms N)
 * with n_terms = G V - min(G, V), as lightly (the diagonal g == v is
 * skipped). Needs n_terms >= 1. Update the centre yourself afterwards with
 * ss_center_accumulate(c, teacher, G * N) and ss_center_update.
 */
typedef struct {
    float student_temp;        /* > 0. Default 0.1 (lightly). */
    float teacher_temp;        /* > 0. After warm-up. Default 0.04. */
    float warmup_teacher_temp; /* > 0. At epoch 0. Default 0.04. */
    int64_t warmup_teacher_temp_epochs; /* >= 0. Default 30. */
    float center_momentum;     /* in [0, 1]. Default 0.9. */
} ss_dino_opts;

SS_API ss_dino_opts ss_dino_defaults(void);
/* *temp: the teacher temperature at epoch >= 0, as lightly:
 * linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
 * [epoch] during warm-up, teacher_temp after. Errors: SS_ERR_NULL,
 * SS_ERR_PARAM (epoch < 0, bad opts). */
SS_API ss_status ss_dino_teacher_temp(float *temp, int64_t epoch,
                                      const ss_dino_opts *opts);
SS_API size_t ss_dino_cache_size(int64_t G, int64_t V, int64_t N, int64_t K);
/* loss: (1). losses: (N) per-sample losses (mean = loss) or NULL. cache: as
 * sized. teacher_temp: > 0, e.g. from ss_dino_teacher_temp. opts: NULL
 * means defaults; student_temp is used, the other fields are validated.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (G < 1, V < 1, n_terms = 0, centre
 * dimension != K), SS_ERR_PARAM, SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_dino_forward(float *loss, float *losses, void *cache,
                                 const float *teacher, const float *student,
                                 const ss_center *c, float teacher_temp,
                                 int64_t G, int64_t V, int64_t N, int64_t K,
                                 const ss_dino_opts *opts);
/* dstudent: (V, N, K) accumulated. The teacher gets no gradient. cache,
 * inputs, centre and temperature as in the forward call. */
SS_API ss_status ss_dino_backward(float *dstudent, float dloss,
                                  const void *cache, const float *teacher,
                                  const float *student, const ss_center *c,
                                  float teacher_temp, int64_t G, int64_t V,
                                  int64_t N, int64_t K,
                                  const ss_dino_opts *opts);

/* iBOT masked-patch loss (Zhou et al. 2021; lightly IBOTPatchLoss) ---------- */
/*
 * mask: (B, T) of 0/1, T tokens per image; M = number of ones. teacher,
 * student: (M, K), the masked tokens in mask order (row-major over B, T).
 * For token i of image b, with m_b masked tokens in that image:
 *     ce_i = -<softmax((teacher_i - c) / teacher_temp),
 *              log_softmax(student_i / student_temp)>
 *     loss = (1 / B) sum_i ce_i / m_b
 * M = 0 gives loss 0. Update the centre with ss_center_accumulate(c,
 * teacher, M) and ss_center_update.
 */
typedef struct {
    float teacher_temp;    /* > 0. Default 0.04 (lightly). */
    float student_temp;    /* > 0. Default 0.1. */
    float center_momentum; /* in [0, 1]. Default 0.9. */
} ss_ibot_opts;

SS_API ss_ibot_opts ss_ibot_defaults(void);
SS_API size_t ss_ibot_cache_size(int64_t M, int64_t K);
/* losses: (M) per-token ce_i (unweighted) or NULL.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE (B, T, K < 1, M < 0, M != ones in mask,
 * centre dimension != K), SS_ERR_LABEL (a mask value not 0/1, naming its
 * index), SS_ERR_PARAM, SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_ibot_forward(float *loss, float *losses, void *cache,
                                 const float *teacher, const float *student,
                                 const uint8_t *mask, const ss_center *c,
                                 int64_t B, int64_t T, int64_t M, int64_t K,
                                 const ss_ibot_opts *opts);
/* dstudent: (M, K) accumulated; the teacher gets no gradient. */
SS_API ss_status ss_ibot_backward(float *dstudent, float dloss,
                                  const void *cache, const float *teacher,
                                  const float *student, const uint8_t *mask,
                                  const ss_center *c, int64_t B, int64_t T,
                                  int64_t M, int64_t K,
                                  const ss_ibot_opts *opts);

/* SwAV (Caron et al. 2020; lightly SwaVLoss) -------------------------------- */
/*
 * high: (H, N, K) prototype scores of the high-resolution crops, low: (L, N,
 * K) of the low-resolution crops (NULL when L = 0), queue: (H, Q, K) scores
 * of past batches, one queue per high-resolution crop (NULL when Q = 0).
 * For each high crop i the codes q_i: (N, K) are the first N rows of
 * Sinkhorn-Knopp (lightly's variant, sinkhorn_iterations rounds of
 * prototype- then sample-normalisation, epsilon) run on the (N + Q) rows
 * [high_i; queue_i]; they receive no gradient.
 *     ce(z, q) = -(1/N) sum_n <q_n, log_softmax(z_n / temperature)>
 *     loss = (1/H) sum_i (sum_{v != i} ce(high_v, q_i)
 *                         + sum_l ce(low_l, q_i)) / (H + L - 1)
 * The scores are usually z = normalize(x) W^T with prototypes W: (K, D);
 * the caller chains dW += dz^T normalize(x) (and dx through its own
 * normalisation) from the dhigh / dlow this returns.
 */
typedef struct {
    float temperature;           /* > 0. Default 0.1 (lightly). */
    int64_t sinkhorn_iterations; /* >= 0. Default 3. */
    float sinkhorn_epsilon;      /* > 0. Default 0.05; 0.01 is safe. */
} ss_swav_opts;

SS_API ss_swav_opts ss_swav_defaults(void);
SS_API size_t ss_swav_cache_size(int64_t H, int64_t L, int64_t N, int64_t Q,
                                 int64_t K);
/* losses: (N) per-sample losses (mean = loss) or NULL. H >= 1, L >= 0,
 * H + L >= 2, Q >= 0.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM, SS_ERR_NONFINITE,
 * SS_ERR_NOMEM. */
SS_API ss_status ss_swav_forward(float *loss, float *losses, void *cache,
                                 const float *high, const float *low,
                                 const float *queue, int64_t H, int64_t L,
                                 int64_t N, int64_t Q, int64_t K,
                                 const ss_swav_opts *opts);
/* dhigh: (H, N, K) accumulated; dlow: (L, N, K) accumulated (NULL when
 * L = 0). The queue and the codes get no gradient. */
SS_API ss_status ss_swav_backward(float *dhigh, float *dlow, float dloss,
                                  const void *cache, const float *high,
                                  const float *low, const float *queue,
                                  int64_t H, int64_t L, int64_t N, int64_t Q,
                                  int64_t K, const ss_swav_opts *opts);

/* MSN and PMSN (Assran et al. 2022; lightly MSNLoss / PMSNLoss) ------------- */
/*
 * anchors: (V, N, D) (anchor row (v, n) belongs to target n), targets:
 * (N, D), prototypes: (K, D). Every row is L2-normalised first.
 *     p_vn  = softmax(a_vn W^T / temperature)
 *     q_n   = Sinkhorn(softmax(t_n W^T / (temperature * sharpen)))   (no grad)
 *     loss  = (1 / VN) sum_{v,n} -<q_n, log p_vn> + lambda R(pbar),
 *     pbar  = mean_{v,n} p_vn
 * MSN (prior = uniform): R = sum_k pbar_k log pbar_k + log K (mean-entropy
 * maximisation, lightly MSNLoss). PMSN (prior = power law): R =
 * KL(pi || pbar) = sum_k pi_k (log pi_k - log pbar_k), pi_k prop. to
 * k^-power_law_exponent, k = 1..K: lightly PMSNLoss after the fix of
 * lightly#1340 (F.kl_div(pbar.log(), pi, "sum")); before it the log was
 * missing and the term was not a divergence. Sinkhorn as MSN / lightly
 * (sinkhorn_iterations = 0 disables it). Targets receive no gradient;
 * anchors and prototypes do (through the normalisation).
 */
typedef enum { SS_MSN_PRIOR_UNIFORM = 0, SS_MSN_PRIOR_POWER_LAW = 1 } ss_msn_prior;

typedef struct {
    float temperature;        /* > 0. Default 0.1 (lightly). */
    float sharpen_temperature; /* > 0. lightly target_sharpen_temperature 0.25. */
    int64_t sinkhorn_iterations; /* >= 0. Default 3. */
    float regularization_weight; /* lambda >= 0. Default 1. */
    ss_msn_prior prior;       /* uniform (MSN, default) or power law (PMSN) */
    float power_law_exponent; /* >= 0. Default 0.25 (lightly PMSNLoss). */
} ss_msn_opts;

SS_API ss_msn_opts ss_msn_defaults(void);  /* MSN */
SS_API ss_msn_opts ss_pmsn_defaults(void); /* PMSN: prior = power law */
SS_API size_t ss_msn_cache_size(int64_t V, int64_t N, int64_t K, int64_t D);
/* losses: (V, N) per-anchor cross-entropies (their mean plus lambda R is the
 * loss) or NULL. Workspace: the target logits (N, K) during each call, the
 * anchor logits one row tile at a time.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM, SS_ERR_NONFINITE,
 * SS_ERR_NOMEM. */
SS_API ss_status ss_msn_forward(float *loss, float *losses, void *cache,
                                const float *anchors, const float *targets,
                                const float *prototypes, int64_t V, int64_t N,
                                int64_t K, int64_t D, const ss_msn_opts *opts);
/* danchors: (V, N, D) accumulated. dprototypes: (K, D) accumulated, or NULL
 * for frozen prototypes. Targets get no gradient. */
SS_API ss_status ss_msn_backward(float *danchors, float *dprototypes,
                                 float dloss, const void *cache,
                                 const float *anchors, const float *targets,
                                 const float *prototypes, int64_t V,
                                 int64_t N, int64_t K, int64_t D,
                                 const ss_msn_opts *opts);

/* (section end: distill) */

/* ------------------------------------------------------------------------ */
/* Predictive and reconstruction family: masked cross-entropy, fused output */
/* projection + cross-entropy, masking generators, reconstruction, MAE       */
/* ------------------------------------------------------------------------ */
/* (section start: predictive) */
/*
 * Letters: T tokens (rows of a batch flattened), V vocabulary size (here V
 * is the number of classes, not views), H hidden size, B batch, C image
 * channels, L patches per image, P values per patch = p * p * C.
 *
 * Targets are int64 class indices in [0, V) or ignore_index (default
 * SS_IGNORE_INDEX = -100, as torch). Any other value is SS_ERR_LABEL naming
 * its index and value. A target that is ignored contributes nothing and gets
 * no gradient.
 *
 * Differences from torch, on purpose: when no target is scored (all
 * ignored, or the scored targets' class weights sum to 0) the loss is 0 and
 * every gradient is 0, where torch returns NaN.
 */
#define SS_IGNORE_INDEX ((int64_t)-100)

/* Masked cross-entropy over logits (MLM head) ----------------------------- */
/*
 * logits: (T, V), targets: (T). With eps = label_smoothing, w = class
 * weights (all 1 when NULL), W = sum over scored rows t of w[y_t]:
 *     lse_t  = LSE_c logits[t, c]
 *     loss_t = (1 - eps) w[y_t] (lse_t - x_{t,y_t})
 *              + (eps / V) sum_c w[c] (lse_t - x_{t,c})
 *     loss   = (sum over scored t of loss_t) / W
 * exactly torch.nn.CrossEntropyLoss(weight, ignore_index, label_smoothing,
 * reduction="mean"), including how torch normalises the smoothing term by
 * the target weights (W) when weights are given.
 */
typedef struct {
    int64_t ignore_index;       /* default SS_IGNORE_INDEX (-100) */
    float label_smoothing;      /* in [0, 1]. Default 0. */
    const float *class_weights; /* (V) finite, >= 0, or NULL (default) */
} ss_mlm_opts;

SS_API ss_mlm_opts ss_mlm_defaults(void);
/* Bytes of cache for ss_mlm_forward; 0 (ss_last_error set) on bad sizes. */
SS_API size_t ss_mlm_cache_size(int64_t T, int64_t V);
/* loss: (1). losses: (T) per-token loss_t (0 for ignored rows, the values
 * of reduction="none"), or NULL. cache: as sized. opts: NULL = defaults.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (label_smoothing, a class
 * weight < 0 or non-finite, naming its index), SS_ERR_NONFINITE (logits),
 * SS_ERR_LABEL, SS_ERR_NOMEM. Rows whose target is ignored are not read. */
SS_API ss_status ss_mlm_forward(float *loss, float *losses, void *cache,
                                const float *logits, const int64_t *targets,
                                int64_t T, int64_t V, const ss_mlm_opts *opts);
/* dlogits: (T, V), accumulated: += dloss * dloss/dlogits. Ignored rows are
 * not touched. cache: from forward with the same inputs and opts. */
SS_API ss_status ss_mlm_backward(float *dlogits, float dloss,
                                 const void *cache, const float *logits,
                                 const int64_t *targets, int64_t T, int64_t V,
                                 const ss_mlm_opts *opts);

/* Fused output projection + cross-entropy ---------------------------------- */
/*
 * hidden: (T, H), weight: (V, H), bias: (V) or NULL, targets: (T).
 *     logits = hidden weight^T + bias     (never materialised)
 *     loss   = ss_mlm's loss of these logits (same ignore_index, label
 *              smoothing and class weights; W = n scored rows unweighted)
 * = torch Linear + CrossEntropyLoss(weight, ignore_index, label_smoothing).
 * Only scored rows are read; the work runs over blocks
 * of scored rows and vocabulary chunks with an online log-sum-exp; backward
 * recomputes the logits block by block (Cut Cross-Entropy / Liger).
 * Workspace: about 32 MiB for the logits of one row block plus O(rows * H)
 * per thread, independent of T. ss_fused_ce_forward_backward does forward
 * and backward in one pass (no recompute) when dloss is known up front.
 */
typedef struct {
    int64_t ignore_index;       /* default SS_IGNORE_INDEX */
    float label_smoothing;      /* in [0, 1]. Default 0. */
    const float *class_weights; /* (V) finite, >= 0, or NULL (default) */
    size_t block_bytes; /* logits workspace per row block, >= 1. Default
                         * 32 MiB; a row block holds block_bytes / (4 V)
                         * rows (at least 1, at most 256). */
} ss_fused_ce_opts;

SS_API ss_fused_ce_opts ss_fused_ce_defaults(void);
SS_API size_t ss_fused_ce_cache_size(int64_t T, int64_t H, int64_t V);
/* loss: (1). losses: (T) per-token losses (0 when ignored) or NULL.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (label_smoothing, class
 * weights), SS_ERR_NONFINITE (hidden, weight, bias), SS_ERR_LABEL,
 * SS_ERR_NOMEM. Rows of hidden whose target is ignored are not read (they
 * may hold anything, e.g. padding). */
SS_API ss_status ss_fused_ce_forward(float *loss, float *losses, void *cache,
                                     const float *hidden, const float *weight,
                                     const float *bias, const int64_t *targets,
                                     int64_t T, int64_t H, int64_t V,
                                     const ss_fused_ce_opts *opts);
/* dhidden: (T, H), dweight: (V, H), dbias: (V), each accumulated, each may
 * be NULL (not computed). Rows of dhidden that are ignored are not touched.
 * cache: from forward with the same inputs. */
SS_API ss_status ss_fused_ce_backward(float *dhidden, float *dweight,
                                      float *dbias, float dloss,
                                      const void *cache, const float *hidden,
                                      const float *weight, const float *bias,
                                      const int64_t *targets, int64_t T,
                                      int64_t H, int64_t V,
                                      const ss_fused_ce_opts *opts);
/* Forward and backward in one pass: writes loss (and losses when non-NULL)
 * and accumulates dloss * gradient like the pair above. No cache. */
SS_API ss_status ss_fused_ce_forward_backward(
    float *loss, float *losses, float *dhidden, float *dweight, float *dbias,
    float dloss, const float *hidden, const float *weight, const float *bias,
    const int64_t *targets, int64_t T, int64_t H, int64_t V,
    const ss_fused_ce_opts *opts);

/* Token masking generators (BERT, whole-word, SpanBERT) -------------------- */
/*
 * ids: (B, T) token ids in [0, vocab_size). Writes out_ids: (B, T), the
 * corrupted input, and targets: (B, T), the original id at every selected
 * position and ignore_index elsewhere. Deterministic given the rng state;
 * rows are processed in order and the rng advances.
 *
 * Candidates: positions that are not special (special_mask[b, t] != 0 or
 * ids in opts.special_ids). Special positions are never selected.
 * Units: with word_start == NULL every candidate token is a unit; with
 * word_start (B, T) (1 = the token starts a word, 0 = it continues the
 * previous one) a unit is a whole word (whole-word masking): a word's
 * tokens are selected together. A special token ends a word.
 * Budget per row: n_sel = max(1, round(n_cand * mask_prob)) tokens (0 when
 * the row has no candidate), as BERT's create_pretraining_data.
 * BERT: units in random order are selected while they fit the budget.
 * Span (SpanBERT): spans of l units, l ~ Geometric(span_p) truncated to
 * [1, span_max] (p = 0.2, max 10: mean 3.8), anchored at a random
 * candidate, until n_sel = ceil(n_cand * mask_prob) tokens are selected;
 * a span stops at a special or already selected token and at the budget.
 * Replacement: each selected token (BERT) or each span (SpanBERT) becomes
 * mask_id with probability mask_frac, a uniform random id in [0,
 * vocab_size) with probability random_frac, else stays unchanged.
 */
typedef struct {
    int64_t vocab_size;         /* > 0, required */
    int64_t mask_id;            /* in [0, vocab_size), required */
    int64_t ignore_index;       /* default SS_IGNORE_INDEX */
    double mask_prob;           /* in (0, 1]. Default 0.15. */
    double mask_frac;           /* default 0.8 */
    double random_frac;         /* default 0.1; mask_frac + random_frac <= 1 */
    const int64_t *special_ids; /* (n_special) ids never selected, or NULL */
    int64_t n_special;
    double span_p;              /* in (0, 1]. Default 0.2 (SpanBERT). */
    int64_t span_max;           /* >= 1. Default 10. */
} ss_mask_opts;

/* Defaults above with vocab_size and mask_id set from the arguments. */
SS_API ss_mask_opts ss_mask_defaults(int64_t vocab_size, int64_t mask_id);
/* special_mask, word_start: (B, T) or NULL. Errors: SS_ERR_NULL,
 * SS_ERR_SIZE, SS_ERR_PARAM (probabilities, ids, span options),
 * SS_ERR_LABEL (an id outside [0, vocab_size), naming its index),
 * SS_ERR_NOMEM. */
SS_API ss_status ss_mask_bert(int64_t *out_ids, int64_t *targets,
                              const int64_t *ids, const uint8_t *special_mask,
                              const uint8_t *word_start, int64_t B, int64_t T,
                              const ss_mask_opts *opts, ss_rng *rng);
SS_API ss_status ss_mask_span(int64_t *out_ids, int64_t *targets,
                              const int64_t *ids, const uint8_t *special_mask,
                              const uint8_t *word_start, int64_t B, int64_t T,
                              const ss_mask_opts *opts, ss_rng *rng);

/* Reconstruction losses ---------------------------------------------------- */
/*
 * pred, target: (n) flattened. Elementwise l_i, as torch.nn.functional:
 *     MSE        (x - y)^2
 *     L1         |x - y|
 *     SMOOTH_L1  |d| < beta: 0.5 d^2 / beta, else |d| - 0.5 beta  (beta >= 0;
 *                beta = 0 is L1)
 *     HUBER      |d| < beta: 0.5 d^2, else beta (|d| - 0.5 beta)  (beta > 0)
 *     BCE_LOGITS max(x, 0) - x y + log(1 + e^{-|x|})   (y in [0, 1])
 * mask: (n) or NULL; only elements with mask[i] != 0 count (l_i = 0
 * elsewhere). Reductions: MEAN = sum / (number of counted elements; 0 when
 * none), SUM, NONE (losses (n) hold l_i, *loss their sum). No cache: the
 * backward recomputes from the inputs.
 */
typedef enum {
    SS_RECON_MSE = 0,
    SS_RECON_L1 = 1,
    SS_RECON_SMOOTH_L1 = 2,
    SS_RECON_HUBER = 3,
    SS_RECON_BCE_LOGITS = 4
} ss_recon_kind;

typedef enum {
    SS_REDUCE_MEAN = 0,
    SS_REDUCE_SUM = 1,
    SS_REDUCE_NONE = 2
} ss_reduction;

typedef struct {
    ss_recon_kind kind;     /* default SS_RECON_MSE */
    ss_reduction reduction; /* default SS_REDUCE_MEAN */
    float beta;             /* smooth-L1 beta / Huber delta. Default 1. */
} ss_recon_opts;

SS_API ss_recon_opts ss_recon_defaults(ss_recon_kind kind);
/* loss: (1), may be NULL only for NONE. losses: (n) or NULL; required for
 * NONE. Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (kind, reduction,
 * beta), SS_ERR_NONFINITE. */
SS_API ss_status ss_recon_forward(float *loss, float *losses,
                                  const float *pred, const float *target,
                                  const uint8_t *mask, int64_t n,
                                  const ss_recon_opts *opts);
/* dpred: (n) accumulated; dtarget: (n) accumulated or NULL. The upstream
 * gradient is dloss for MEAN / SUM and dlosses: (n) for NONE (then dloss is
 * ignored; dlosses may be NULL otherwise). At |d| = 0 the L1 gradient is 0
 * (torch's sign). */
SS_API ss_status ss_recon_backward(float *dpred, float *dtarget, float dloss,
                                   const float *dlosses, const float *pred,
                                   const float *target, const uint8_t *mask,
                                   int64_t n, const ss_recon_opts *opts);

/* MAE: patchify, masked-patch loss, patch-mask generators ------------------ */
/*
 * imgs: (B, C, Hi, Wi), patch size p divides Hi and Wi; L = (Hi/p)(Wi/p),
 * P = p * p * C. MAE's patchify order: patch l = i * (Wi/p) + j, element
 * (u * p + v) * C + c = imgs[b, c, i p + u, j p + v].
 */
SS_API ss_status ss_mae_patchify(float *patches, const float *imgs, int64_t B,
                                 int64_t C, int64_t Hi, int64_t Wi, int64_t p);
/*
 * pred: (B, L, P), mask: (B, L), 1 = masked (predicted), 0 = visible.
 * target = patchify(imgs), with norm_pix: (target - mean) / sqrt(var +
 * 1e-6) per patch, var unbiased (divides by P - 1; P = 1 gives var 0).
 *     loss = sum_{masked (b,l)} mean_k (pred - target)^2 / (masked count)
 * as MAE's forward_loss; 0 (and zero gradient) when nothing is masked.
 * losses: (B, L) per-patch mean squared errors (all patches) or NULL.
 * imgs receive no gradient. No cache.
 */
typedef struct {
    int norm_pix; /* default 1 (MAE's norm_pix_loss for its best models) */
} ss_mae_opts;

SS_API ss_mae_opts ss_mae_defaults(void);
/* Errors: SS_ERR_NULL, SS_ERR_SIZE (p does not divide Hi or Wi),
 * SS_ERR_NONFINITE (pred, imgs), SS_ERR_NOMEM. */
SS_API ss_status ss_mae_forward(float *loss, float *losses, const float *pred,
                                const float *imgs, const uint8_t *mask,
                                int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                                int64_t p, const ss_mae_opts *opts);
/* dpred: (B, L, P), accumulated. */
SS_API ss_status ss_mae_backward(float *dpred, float dloss, const float *pred,
                                 const float *imgs, const uint8_t *mask,
                                 int64_t B, int64_t C, int64_t Hi, int64_t Wi,
                                 int64_t p, const ss_mae_opts *opts);
/* MAE's random_masking: per sample a uniform random permutation of the L
 * patches; the first len_keep = int(L * (1 - mask_ratio)) (truncated, as
 * MAE) stay visible, the rest are masked. mask: (B, L) written.
 * ids_shuffle: (B, L) permutation (kept ids first) or NULL.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (ratio not in [0, 1)). */
SS_API ss_status ss_mae_random_mask(uint8_t *mask, int64_t *ids_shuffle,
                                    int64_t B, int64_t L, double mask_ratio,
                                    ss_rng *rng);
/* BEiT's block-wise MaskingGenerator on a gh x gw grid, per sample: blocks
 * of area in [min_patches, remaining] and aspect ratio e^U(log 0.3, log
 * 1/0.3) are added while they add 1..remaining new patches, until
 * num_masked patches are masked or 10 attempts in a row add nothing (so
 * the count is <= num_masked, usually equal). mask: (B, gh * gw) written.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (num_masked > gh * gw,
 * min_patches < 1). BEiT: 14 x 14, num_masked 75, min_patches 16. */
SS_API ss_status ss_mae_block_mask(uint8_t *mask, int64_t B, int64_t gh,
                                   int64_t gw, int64_t num_masked,
                                   int64_t min_patches, ss_rng *rng);

/* (section end: predictive) */

/* ------------------------------------------------------------------------ */
/* Composite objectives: weighted sums of the library's losses              */
/* ------------------------------------------------------------------------ */
/* (section start: composite) */
/*
 * A composite is a weighted sum of the library's losses over shared tensors:
 *     total = sum_t weight_t * loss_t(inputs)
 * e.g. NT-Xent on projected embeddings plus MAE reconstruction on patches,
 * Barlow + VICReg on the same embeddings, MLM + NT-Xent. Each term calls the
 * loss's own forward/backward, so a term's value and gradient are exactly
 * those of the individual call; the total is summed in double. Backward
 * calls every term's backward with dloss * weight_t, accumulating into the
 * shared gradient buffers: a tensor used by several terms (z) receives the
 * sum of their gradients. The composite owns the per-term caches (sized at
 * forward, freed by ss_composite_free).
 *
 * Spec grammar (EBNF; blanks " " and tab may appear between any tokens;
 * docs/COMPOSITE.md lists every term and parameter):
 *     spec   = term { "," term } ;
 *     term   = name [ "(" [ param { "," param } ] ")" ] ":" weight ;
 *     param  = key "=" value ;
 *     name   = key ;
 *     key    = letter { letter | digit | "_" } ;
 *     value  = number | key ;                (a word, e.g. kind=huber)
 *     weight = number ;                      (finite, >= 0)
 *     number = [ "+" | "-" ] ( digits [ "." [ digits ] ] | "." digits )
 *              [ exponent ] ;           (no nan, inf or hexadecimal)
 *     exponent = ( "e" | "E" ) [ "+" | "-" ] digits ;
 * A name may repeat (two NT-Xent terms at different temperatures).
 * Example: "ntxent(temperature=0.2):1, mae(norm_pix=1):0.5".
 * Terms (inputs they read; gradients they write):
 *   ntxent, supcon, dcl, dclw   z (V, N, D) [+ labels for supcon]; dz
 *   clip, siglip, barlow, vicreg, hypersphere
 *                               views a = z[0], b = z[1], V must be 2; dz
 *   negcos    p (2, N, D) predictions, z (2, N, D) targets, symmetric
 *             SimSiam form 0.5 (D(p0, z1) + D(p1, z0)); dp (and dz when
 *             stopgrad=0)
 *   koleo     z: mean over the V views of KoLeo(z[v]) (DINOv2 sums its two
 *             global crops: use twice the weight); dz
 *   mae       mae_pred (B, L, P), imgs (B, C, H, W), patch_mask (B, L); dmae_pred
 *   recon, mse, l1, smoothl1, huber, bce
 *             recon_pred, recon_target (recon_n), recon_mask or NULL;
 *             drecon_pred (and drecon_target when non-NULL)
 *   mlm       logits (T, vocab), targets (T); dlogits
 *   dino      dino_teacher, dino_student, center (N shared with z);
 *             ddino_student. The caller updates the centre.
 * The learnable scalars of clip (log_scale) and siglip (log_t, bias) are
 * fixed term parameters here: their gradients are not produced.
 * Errors of parse/add: SS_ERR_NULL, SS_ERR_NOMEM, and SS_ERR_PARAM with a
 * message giving the 1-based position in the string and the offending
 * token: unknown name, missing or bad weight (negative, NaN, not a number),
 * unknown parameter, bad value, duplicate parameter, missing ':' or ')',
 * trailing garbage, empty spec or empty term. Nothing is defaulted
 * silently: a term without ":weight" is an error.
 */
typedef struct ss_composite ss_composite;

/* Tensors bound per call. Unused fields may be left zero/NULL; a term whose
 * required input is NULL fails with SS_ERR_PARAM naming the term and field. */
typedef struct {
    const float *z;          /* (V, N, D) embeddings (projected views) */
    int64_t V, N, D;
    const int64_t *labels;   /* (N) supcon labels, -1 = unlabeled */
    const float *p;          /* (2, N, D) predictor outputs (negcos) */
    const float *mae_pred;   /* (B, L, P), L = (H/patch)(W/patch), P = patch^2 C */
    const float *imgs;       /* (B, C, H, W) */
    const uint8_t *patch_mask; /* (B, L), nonzero = masked (scored) */
    int64_t B, C, H, W, patch;
    const float *recon_pred;   /* (recon_n) */
    const float *recon_target; /* (recon_n) */
    const uint8_t *recon_mask; /* (recon_n) or NULL = all elements */
    int64_t recon_n;
    const float *logits;     /* (T, vocab) */
    const int64_t *targets;  /* (T), ignore_index where not scored */
    int64_t T, vocab;
    const float *dino_teacher; /* (dino_G, N, dino_K) teacher logits */
    const float *dino_student; /* (dino_V, N, dino_K) student logits */
    const ss_center *center;   /* (dino_K) teacher centre */
    float dino_teacher_temp;   /* > 0, e.g. ss_dino_teacher_temp(); 0: the
                                  term's teacher_temp parameter */
    int64_t dino_G, dino_V, dino_K;
} ss_composite_inputs;

/* Gradient buffers, ACCUMULATED (+=), shapes as the matching inputs. A
 * buffer that a term writes must be non-NULL (SS_ERR_NULL naming it).
 * drecon_target is optional (NULL: the target gets no gradient); negcos
 * writes dz only with stopgrad=0. Buffers no term writes may be NULL. */
typedef struct {
    float *dz, *dp, *dmae_pred, *drecon_pred, *drecon_target, *dlogits;
    float *ddino_student;
} ss_composite_grads;

/* *out: an empty composite (no term). Errors: SS_ERR_NULL, SS_ERR_NOMEM. */
SS_API ss_status ss_composite_create(ss_composite **out);
/* *out: composite built from spec (grammar above); written only on success.
 * Errors: SS_ERR_NULL, SS_ERR_PARAM (see above), SS_ERR_NOMEM. */
SS_API ss_status ss_composite_parse(ss_composite **out, const char *spec);
/* Appends one term: term is `name` or `name(key=value,...)` (no weight),
 * weight finite and >= 0. On failure c is unchanged. Errors: SS_ERR_NULL,
 * SS_ERR_PARAM (positions refer to term), SS_ERR_NOMEM. */
SS_API ss_status ss_composite_add(ss_composite *c, const char *term,
                                  float weight);
SS_API void ss_composite_free(ss_composite *c); /* NULL: no-op */
/* Accessors. i in [0, nterms); out of range (or NULL c): NULL / NaN. */
SS_API int64_t ss_composite_nterms(const ss_composite *c); /* 0 for NULL */
SS_API const char *ss_composite_term_name(const ss_composite *c, int64_t i);
SS_API float ss_composite_term_weight(const ss_composite *c, int64_t i);
/* Unweighted value of term i from the last successful forward; NaN before. */
SS_API float ss_composite_term_value(const ss_composite *c, int64_t i);
/* total: (1) sum_t weight_t * value_t (summed in double). values: (nterms)
 * unweighted term values, or NULL. Runs every term's forward, keeping its
 * cache. On failure nothing is written, the earlier forward is forgotten and
 * the message is prefixed with "term i 'name':".
 * Errors: SS_ERR_NULL, SS_ERR_STATE (no term), SS_ERR_PARAM (missing input),
 * and any error of a term's forward. */
SS_API ss_status ss_composite_forward(ss_composite *c, float *total,
                                      float *values,
                                      const ss_composite_inputs *in);
/* Accumulates dloss * weight_t * dloss_t/dinput of every term into g.
 * in: the inputs of the last successful forward (same pointers and sizes).
 * Errors: SS_ERR_NULL (c, g, in, a needed gradient buffer), SS_ERR_STATE (no
 * successful forward, or sizes differ from it), SS_ERR_NONFINITE (dloss),
 * any error of a term's backward (earlier terms may then have accumulated;
 * the message names the term). */
SS_API ss_status ss_composite_backward(ss_composite *c,
                                       const ss_composite_grads *g,
                                       float dloss,
                                       const ss_composite_inputs *in);

/* (section end: composite) */

#ifdef __cplusplus
}
#endif
#endif /* SELFSUP_H */
