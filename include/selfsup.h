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

/* (section end: geometry) */

/* ------------------------------------------------------------------------ */
/* Distillation and clustering family: DINO, iBOT, SwAV, MSN/PMSN           */
/* ------------------------------------------------------------------------ */
/* (section start: distill) */

/* (section end: distill) */

#ifdef __cplusplus
}
#endif
#endif /* SELFSUP_H */
