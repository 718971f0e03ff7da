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
 * forward call with the same z, sizes and opts. */
SS_API ss_status ss_ntxent_backward(float *dz, float dloss, const void *cache,
                                    const float *z, int64_t V, int64_t N,
                                    int64_t D, const ss_ntxent_opts *opts);

/* SupCon (Khosla et al. 2020, the L_out form) ----------------------------- */
/*
 * z: (V, N, D), labels: (N) with labels[n] >= 0 a class, or -1 = unlabeled.
 * Anchor i = (v, n) has positives P(i) = every other row whose sample has
 * the same label >= 0; an unlabeled sample's positives are its own other
 * views. Denominator over all k != i.
 *     loss_i = LSE_{k != i} s_ik - (1 / |P(i)|) sum_{p in P(i)} s_ip
 *     loss   = mean over anchors with |P(i)| > 0
 * An anchor with no positive (V = 1 and a unique or missing label) has
 * loss_i = 0, is left out of the mean and gets no gradient. If no anchor has
 * a positive the loss is 0. V >= 1.
 */
typedef struct {
    float temperature; /* > 0. Default 0.1 (pytorch-metric-learning). */
    int cosine;        /* default 1 */
} ss_supcon_opts;

SS_API ss_supcon_opts ss_supcon_defaults(void);
SS_API size_t ss_supcon_cache_size(int64_t V, int64_t N, int64_t D);
/* losses: (V, N) or NULL. Errors as NT-Xent, plus SS_ERR_LABEL for a label
 * < -1 (naming its index). */
SS_API ss_status ss_supcon_forward(float *loss, float *losses, void *cache,
                                   const float *z, const int64_t *labels,
                                   int64_t V, int64_t N, int64_t D,
                                   const ss_supcon_opts *opts);
/* dz: (V, N, D), accumulated. */
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

/* *out: new queue. rng: draws the initial rows; NULL fills zeros.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_NOMEM. */
SS_API ss_status ss_queue_create(ss_queue **out, int64_t K, int64_t D,
                                 ss_rng *rng);
SS_API void ss_queue_free(ss_queue *q);
/* keys: (n, D), copied in at the write pointer, wrapping. n may exceed K;
 * then only the last K keys remain. */
SS_API ss_status ss_queue_enqueue(ss_queue *q, const float *keys, int64_t n);
/* Rows in storage order: (K, D), owned by q, valid until the next enqueue. */
SS_API const float *ss_queue_data(const ss_queue *q);
/* Copies the rows, oldest first, into out: (K, D). */
SS_API ss_status ss_queue_read(const ss_queue *q, float *out);
SS_API int64_t ss_queue_len(const ss_queue *q); /* K */
SS_API int64_t ss_queue_dim(const ss_queue *q); /* D */
/* Keys enqueued since creation (not capped at K). */
SS_API int64_t ss_queue_count(const ss_queue *q);
/* Writes the queue to path atomically (temp file + rename). Format: magic
 * "SSQUEUE1", version, K, D, write pointer, count, rows.
 * Errors: SS_ERR_NULL, SS_ERR_IO. */
SS_API ss_status ss_queue_save(const ss_queue *q, const char *path);
/* *out: queue read from path. Errors: SS_ERR_IO, SS_ERR_FORMAT (naming the
 * byte offset), SS_ERR_NOMEM. */
SS_API ss_status ss_queue_load(ss_queue **out, const char *path);

/* InfoNCE with a negative queue (MoCo v2) --------------------------------- */
/*
 * q: (N, D) queries, k: (N, D) positive keys, queue: (K, D) negatives.
 *     l_i = [<q_i, k_i>, <q_i, queue_1>, ..., <q_i, queue_K>] / temperature
 *     loss = mean_i CE(l_i, 0)
 * As lightly's NTXentLoss(memory_bank_size=K): no in-batch negatives. Call
 * forward before ss_queue_enqueue(k) so the positives are not also
 * negatives. The queue receives no gradient.
 */
typedef struct {
    float temperature; /* > 0. Default 0.5 (lightly NTXentLoss; MoCo v2 used 0.2). */
    int cosine;        /* default 1: q, k and queue rows are normalised */
} ss_moco_opts;

SS_API ss_moco_opts ss_moco_defaults(void);
SS_API size_t ss_moco_cache_size(int64_t N, int64_t K, int64_t D);
/* losses: (N) or NULL. Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM,
 * SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_moco_forward(float *loss, float *losses, void *cache,
                                 const float *q, const float *k,
                                 const float *queue, int64_t N, int64_t K,
                                 int64_t D, const ss_moco_opts *opts);
/* dq: (N, D) accumulated. dk: (N, D) accumulated, or NULL when the keys are
 * stop-gradient (the MoCo case). */
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
/* losses: (N) per-pair losses (row CE + column CE)/2, or NULL.
 * Errors: SS_ERR_NULL, SS_ERR_SIZE, SS_ERR_PARAM (non-finite log_scale or
 * e^t overflow), SS_ERR_NONFINITE, SS_ERR_NOMEM. */
SS_API ss_status ss_clip_forward(float *loss, float *losses, void *cache,
                                 const float *a, const float *b,
                                 float log_scale, int64_t N, int64_t D,
                                 const ss_clip_opts *opts);
/* da, db: (N, D) accumulated. dlog_scale: (1) accumulated, or NULL. */
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
/* losses: (N) per-row sums -sum_j log sigmoid(y_ij x_ij), or NULL. */
SS_API ss_status ss_siglip_forward(float *loss, float *losses, void *cache,
                                   const float *a, const float *b, float log_t,
                                   float bias, int64_t N, int64_t D,
                                   const ss_siglip_opts *opts);
/* da, db: (N, D) accumulated; dlog_t, dbias: (1) accumulated, or NULL. */
SS_API ss_status ss_siglip_backward(float *da, float *db, float *dlog_t,
                                    float *dbias, float dloss,
                                    const void *cache, const float *a,
                                    const float *b, float log_t, float bias,
                                    int64_t N, int64_t D,
                                    const ss_siglip_opts *opts);

/* Decoupled contrastive loss: DCL and DCLW (Yeh et al. 2021) -------------- */
/*
 * z: (V, N, D). As NT-Xent, but the positives are removed from the
 * denominator, and DCLW weights the positive term:
 *     loss_i = -(1/|P(i)|) sum_p w_ip s_ip + LSE_{k not in {i} u P(i)} s_ik
 * with w = 1 (DCL) or, for V = 2, w_i = 2 - N softmax_n(<z_n, z'_n>/sigma)
 * computed on the detached normalised embeddings (DCLW). For V = 2 equals
 * lightly's DCLLoss / DCLWLoss. Mean over the M anchors.
 */
typedef struct {
    float temperature; /* > 0. Default 0.1 (lightly). */
    int weighted;      /* 0: DCL (default), 1: DCLW */
    float sigma;       /* > 0, used when weighted. Default 0.5 (lightly). */
    int cosine;        /* default 1 */
} ss_dcl_opts;

SS_API ss_dcl_opts ss_dcl_defaults(void);  /* DCL */
SS_API ss_dcl_opts ss_dclw_defaults(void); /* DCLW: weighted = 1 */
SS_API size_t ss_dcl_cache_size(int64_t V, int64_t N, int64_t D);
/* losses: (V, N) or NULL. Errors as NT-Xent (weighted needs V = 2). */
SS_API ss_status ss_dcl_forward(float *loss, float *losses, void *cache,
                                const float *z, int64_t V, int64_t N,
                                int64_t D, const ss_dcl_opts *opts);
/* dz: (V, N, D), accumulated. */
SS_API ss_status ss_dcl_backward(float *dz, float dloss, const void *cache,
                                 const float *z, int64_t V, int64_t N,
                                 int64_t D, const ss_dcl_opts *opts);

/* ------------------------------------------------------------------------ */
/* Redundancy-reduction family: BYOL/SimSiam, Barlow Twins, VICReg          */
/* ------------------------------------------------------------------------ */
/* (section start: redundancy) */

/* (section end: redundancy) */

/* ------------------------------------------------------------------------ */
/* Whitening, geometry and coding-rate family: TiCo, W-MSE, alignment and   */
/* uniformity, KoLeo, MMCR, EMP-SSL total coding rate                       */
/* ------------------------------------------------------------------------ */
/* (section start: geometry) */

/* (section end: geometry) */

/* ------------------------------------------------------------------------ */
/* Distillation and clustering family: DINO, iBOT, SwAV, MSN/PMSN           */
/* ------------------------------------------------------------------------ */
/* (section start: distill) */

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

#ifdef __cplusplus
}
#endif
#endif /* SELFSUP_H */
