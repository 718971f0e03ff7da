/*
 * fused_ce.c - output projection + cross-entropy without the (T, V) logits.
 *
 * Scored rows are gathered into blocks of rb rows. For a block, vocabulary
 * chunks of FCE_CHUNK columns are formed with one GEMM each (threads split
 * the chunks) into a block buffer of rb x V floats, chunk-major (a chunk's
 * (rb, cw) logits are contiguous, so the GEMM output and the passes over
 * it touch few pages: 1.70 s -> 1.30 s at T 2048, V 30522), reduced on the
 * fly into per-thread online log-sum-exp statistics, merged per row. The
 * gradient G = softmax - smoothed one-hot is formed in place, chunk by
 * chunk, and pushed through two GEMMs: dW_chunk += G^T Hb (each chunk owned
 * by one thread, so no races) and dHb += G W_chunk (per-thread partials,
 * summed in thread order). Backward alone recomputes the logits from the
 * cached lse; forward_backward does everything in one pass. Workspace is
 * about opts.block_bytes (32 MiB) plus O(rb * H) per thread, independent of T.
 * See docs/derivations/fused_ce.md.
 */
#include "kernels/gemm.h"
#include "predictive.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define FCE_HAVE_MMAP 1
#endif

#define FCE_CHUNK 512                      /* vocabulary columns per GEMM */
#define FCE_MAX_ROWS 256                   /* rows per block */

#define FCE_BLOCK_BYTES ((size_t)32 << 20) /* default logits per row block */

enum { MODE_FWD = 1, MODE_BWD = 2, MODE_BOTH = 3 };

typedef struct {
    double W; /* normaliser: sum of w[y_t] over scored rows (n unweighted) */
    double pad;
} fce_head;

/* Everything one call needs; outputs may be NULL. */
typedef struct {
    const float *hidden, *weight, *bias;
    const int64_t *targets;
    int64_t T, H, V;
    ss_fused_ce_opts o;
    int mode;
    float *lse;          /* (T): written (FWD) or read (BWD) */
    double *rowloss;     /* (n) per scored row, FWD */
    float *dhidden, *dweight, *dbias;
    double W, sw;        /* sum of w[y_t] over scored rows, sum_c w_c */
    double scale;        /* dloss / W */
} fce_job;

double *ss__fused_ce_cache_norm(void *cache) {
    return &((fce_head *)cache)->W;
}

ss_fused_ce_opts ss_fused_ce_defaults(void) {
    ss_fused_ce_opts o = {SS_IGNORE_INDEX, 0.0f, NULL, FCE_BLOCK_BYTES};
    return o;
}

static double wt(const fce_job *j, int64_t c) {
    return j->o.class_weights ? (double)j->o.class_weights[c] : 1.0;
}

static ss_status check_sizes(const char *fn, int64_t T, int64_t H, int64_t V) {
    SS_TRY(ss__check_size(fn, "T", T, 1));
    SS_TRY(ss__check_size(fn, "H", H, 1));
    SS_TRY(ss__check_size(fn, "V", V, 1));
    SS_TRY(ss__check_product(fn, T, H, 1));
    return ss__check_product(fn, V, H, 1);
}

size_t ss_fused_ce_cache_size(int64_t T, int64_t H, int64_t V) {
    if (check_sizes("ss_fused_ce_cache_size", T, H, V) != SS_OK) return 0;
    return sizeof(fce_head) + (size_t)T * sizeof(float);
}

static ss_status check_args(const char *fn, const float *hidden,
                            const float *weight, const float *bias,
                            const int64_t *targets, int64_t T, int64_t H,
                            int64_t V, const ss_fused_ce_opts *o,
                            int64_t *n) {
    SS_TRY(ss__check_ptr(fn, "hidden", hidden));
    SS_TRY(ss__check_ptr(fn, "weight", weight));
    SS_TRY(ss__check_ptr(fn, "targets", targets));
    SS_TRY(check_sizes(fn, T, H, V));
    SS_TRY(ss__check_smoothing(fn, o->label_smoothing));
    if (o->block_bytes == 0)
        return ss__fail(SS_ERR_PARAM, fn, "block_bytes must be >= 1, got 0");
    SS_TRY(ss__check_class_weights(fn, o->class_weights, V));
    SS_TRY(ss__check_targets(fn, targets, T, V, o->ignore_index, n));
    for (int64_t t = 0; t < T; t++) /* ignored rows are never read */
        if (targets[t] != o->ignore_index)
            for (int64_t k = 0; k < H; k++)
                if (!isfinite(hidden[t * H + k]))
                    return ss__fail(SS_ERR_NONFINITE, fn,
                                    "hidden[%lld] is %g (not finite)",
                                    (long long)(t * H + k),
                                    (double)hidden[t * H + k]);
    SS_TRY(ss__check_finite(fn, "weight", weight, V * H));
    if (bias) SS_TRY(ss__check_finite(fn, "bias", bias, V));
    return SS_OK;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Workspace for one call, allocated once. */
typedef struct {
    int64_t *rows;  /* (n) scored row indices */
    float *hb;      /* (rb, H) gathered hidden rows */
    float *lg;      /* logits / gradient of the block, chunk-major: chunk k
                     * is (rb, cw_k) at lg + k * FCE_CHUNK * rb */
    double *st;     /* (nth, rb, 3): running max, sum e^{x - max}, sum x */
    float *dhp;     /* (nth, rb, H) partial dhidden */
    size_t lg_bytes;
    int64_t rb;
    int nth;
} fce_ws;

/* The block buffer (block_bytes) is mapped and unmapped directly: through
 * malloc, glibc's adaptive mmap threshold would move it onto the heap after
 * the first call, where repeated calls can leave several copies resident. */
static float *big_alloc(size_t bytes) {
#ifdef FCE_HAVE_MMAP
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE); /* fewer TLB misses; a hint only */
#endif
    return p;
#else
    return ss__malloc(bytes);
#endif
}

static void big_free(float *p, size_t bytes) {
    if (!p) return;
#ifdef FCE_HAVE_MMAP
    munmap(p, bytes);
#else
    (void)bytes;
    ss__free(p);
#endif
}

static void ws_free(fce_ws *w) {
    ss__free(w->rows), ss__free(w->hb), big_free(w->lg, w->lg_bytes);
    ss__free(w->st), ss__free(w->dhp);
}

static int ws_alloc(fce_ws *w, const fce_job *j, int64_t n) {
    memset(w, 0, sizeof *w);
    int64_t rb = (int64_t)(j->o.block_bytes / ((size_t)j->V * sizeof(float)));
    rb = rb < 1 ? 1 : rb > FCE_MAX_ROWS ? FCE_MAX_ROWS : rb;
    w->rb = rb < n ? rb : n;
    w->nth = ss__threads();
    size_t nth = (size_t)w->nth, r = (size_t)w->rb, H = (size_t)j->H;
    w->rows = ss__malloc(sizeof(int64_t) * (size_t)n);
    w->hb = ss__malloc(sizeof(float) * r * H);
    w->lg_bytes = sizeof(float) * r * (size_t)j->V;
    w->lg = big_alloc(w->lg_bytes);
    w->st = ss__malloc(sizeof(double) * nth * r * 3);
    int need_dh = (j->mode & MODE_BWD) && j->dhidden;
    if (need_dh) w->dhp = ss__malloc(sizeof(float) * nth * r * H);
    int ok = w->rows && w->hb && w->lg && w->st && (!need_dh || w->dhp);
    if (!ok) ws_free(w);
    return ok;
}

/* Logits of chunk [c0, c0 + cw) for the nb rows of the block, and (FWD)
 * their online LSE statistics merged into this thread's st. */
static void chunk_logits(const fce_job *j, fce_ws *w, int64_t nb, int64_t c0,
                         int64_t cw) {
    int64_t H = j->H;
    float *lg = w->lg + c0 * w->rb;
    ss__sgemm(0, 1, nb, cw, H, 1.0f, w->hb, H, j->weight + c0 * H, H, 0.0f,
              lg, cw);
    for (int64_t r = 0; r < nb; r++) {
        float *x = lg + r * cw;
        if (j->bias)
            for (int64_t c = 0; c < cw; c++) x[c] += j->bias[c0 + c];
        if (!(j->mode & MODE_FWD)) continue;
        double *s = w->st + ((size_t)thread_id() * (size_t)w->rb + r) * 3;
        float m = -INFINITY, sx = 0.0f, se = 0.0f; /* <= 512 terms each */
        const float *cwt = j->o.class_weights;
        for (int64_t c = 0; c < cw; c++) m = x[c] > m ? x[c] : m;
        if (cwt) {
            SS__SIMD_SUM(sx)
            for (int64_t c = 0; c < cw; c++) sx += cwt[c0 + c] * x[c];
        } else {
            SS__SIMD_SUM(sx)
            for (int64_t c = 0; c < cw; c++) sx += x[c];
        }
        SS__SIMD_SUM(se)
        for (int64_t c = 0; c < cw; c++) se += ss__exp_le0(x[c] - m);
        double mn = fmax(s[0], m); /* online merge, s[0] may be -inf */
        s[1] = s[1] * exp(s[0] - mn) + se * exp(m - mn);
        s[0] = mn, s[2] += sx;
    }
}

/* Gradient of chunk [c0, c0 + cw) in place, then the two GEMMs. */
static void chunk_grad(const fce_job *j, fce_ws *w, int64_t b0, int64_t nb,
                       int64_t c0, int64_t cw) {
    int64_t V = j->V, H = j->H;
    float *lg = w->lg + c0 * w->rb;
    /* g_c = s ((a + b S_w) p_c - b w_c - a [c = y]), a = (1 - eps) w_y,
     * b = eps / V; unweighted: a + b S_w = 1. */
    double eps = j->o.label_smoothing, s = j->scale, b = eps / (double)V;
    const float *cwt = j->o.class_weights;
    for (int64_t r = 0; r < nb; r++) {
        int64_t t = w->rows[b0 + r], y = j->targets[t];
        double a = (1.0 - eps) * wt(j, y);
        float *x = lg + r * cw, l = j->lse[t];
        float fp = (float)(s * (a + b * j->sw)), off = (float)(s * b);
        if (cwt)
            for (int64_t c = 0; c < cw; c++)
                x[c] = fp * ss__exp_le0(x[c] - l) - off * cwt[c0 + c];
        else
            for (int64_t c = 0; c < cw; c++) x[c] = fp * ss__exp_le0(x[c] - l) - off;
        if (y >= c0 && y < c0 + cw) x[y - c0] -= (float)(s * a);
        if (j->dbias)
            for (int64_t c = 0; c < cw; c++) j->dbias[c0 + c] += x[c];
    }
    if (j->dweight)
        ss__sgemm(1, 0, cw, H, nb, 1.0f, lg, cw, w->hb, H, 1.0f,
                  j->dweight + c0 * H, H);
    if (j->dhidden)
        ss__sgemm(0, 0, nb, H, cw, 1.0f, lg, cw, j->weight + c0 * H, H, 1.0f,
                  w->dhp + (size_t)thread_id() * (size_t)w->rb * (size_t)H,
                  H);
}

/* Per-row merge of the thread statistics: lse and the row loss. */
static void merge_row(const fce_job *j, const fce_ws *w, int64_t b0,
                      int64_t r) {
    double m = -INFINITY, se = 0.0, sx = 0.0;
    for (int k = 0; k < w->nth; k++) {
        const double *s = w->st + ((size_t)k * (size_t)w->rb + r) * 3;
        if (s[1] == 0.0) { sx += s[2]; continue; }
        double mn = fmax(m, s[0]);
        se = se * exp(m - mn) + s[1] * exp(s[0] - mn);
        m = mn, sx += s[2];
    }
    int64_t t = w->rows[b0 + r], y = j->targets[t];
    double lse = m + log(se), eps = j->o.label_smoothing;
    int64_t c0 = y / FCE_CHUNK * FCE_CHUNK, cw = j->V - c0;
    cw = cw < FCE_CHUNK ? cw : FCE_CHUNK;
    double xy = w->lg[c0 * w->rb + r * cw + (y - c0)];
    j->lse[t] = (float)lse;
    /* (1 - eps) w_y (lse - x_y) + (eps / V) sum_c w_c (lse - x_c) */
    j->rowloss[b0 + r] = (1.0 - eps) * wt(j, y) * (lse - xy)
                         + eps / (double)j->V * (j->sw * lse - sx);
}

static void run_block(const fce_job *j, fce_ws *w, int64_t b0, int64_t nb) {
    int64_t H = j->H, nch = (j->V + FCE_CHUNK - 1) / FCE_CHUNK;
#ifdef _OPENMP
#pragma omp parallel num_threads(w->nth)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t r = 0; r < nb; r++) {
            memcpy(w->hb + r * H, j->hidden + w->rows[b0 + r] * H,
                   sizeof(float) * (size_t)H);
            for (int k = 0; k < w->nth; k++) {
                double *s = w->st + ((size_t)k * (size_t)w->rb + r) * 3;
                s[0] = -INFINITY, s[1] = 0.0, s[2] = 0.0;
            }
        }
        if (w->dhp) {
            float *d = w->dhp + (size_t)thread_id() * (size_t)w->rb * (size_t)H;
            memset(d, 0, sizeof(float) * (size_t)(nb * H));
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t k = 0; k < nch; k++) {
            int64_t c0 = k * FCE_CHUNK, cw = j->V - c0;
            chunk_logits(j, w, nb, c0, cw < FCE_CHUNK ? cw : FCE_CHUNK);
        }
        if (j->mode & MODE_FWD) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t r = 0; r < nb; r++) merge_row(j, w, b0, r);
        }
        if (j->mode & MODE_BWD) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t k = 0; k < nch; k++) {
                int64_t c0 = k * FCE_CHUNK, cw = j->V - c0;
                chunk_grad(j, w, b0, nb, c0, cw < FCE_CHUNK ? cw : FCE_CHUNK);
            }
            if (j->dhidden) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int64_t r = 0; r < nb; r++) {
                    float *out = j->dhidden + w->rows[b0 + r] * H;
                    for (int k = 0; k < w->nth; k++) {
                        const float *p = w->dhp + ((size_t)k * (size_t)w->rb
                                                   + (size_t)r) * (size_t)H;
                        for (int64_t h = 0; h < H; h++) out[h] += p[h];
                    }
                }
            }
        }
    }
}

/* Runs the job over all scored rows. */
static ss_status run(const char *fn, fce_job *j, int64_t n) {
    fce_ws w;
    if (!ws_alloc(&w, j, n))
        return ss__fail(SS_ERR_NOMEM, fn, "workspace for %lld rows, V = %lld",
                        (long long)n, (long long)j->V);
    for (int64_t t = 0, k = 0; t < j->T; t++)
        if (j->targets[t] != j->o.ignore_index) w.rows[k++] = t;
    for (int64_t b0 = 0; b0 < n; b0 += w.rb)
        run_block(j, &w, b0, n - b0 < w.rb ? n - b0 : w.rb);
    ws_free(&w);
    return SS_OK;
}

/* Loss, losses and the row losses summed in row order. */
static void write_loss(float *loss, float *losses, const fce_job *j,
                       int64_t n) {
    double total = 0.0;
    for (int64_t k = 0; k < n; k++) total += j->rowloss[k];
    *loss = j->W > 0.0 ? (float)(total / j->W) : 0.0f;
    if (!losses) return;
    for (int64_t t = 0, k = 0; t < j->T; t++)
        losses[t] = j->targets[t] != j->o.ignore_index
                        ? (float)j->rowloss[k++] : 0.0f;
}

static fce_job job_of(const float *hidden, const float *weight,
                      const float *bias, const int64_t *targets, int64_t T,
                      int64_t H, int64_t V, const ss_fused_ce_opts *o,
                      int mode) {
    fce_job j;
    memset(&j, 0, sizeof j);
    j.hidden = hidden, j.weight = weight, j.bias = bias;
    j.targets = targets, j.T = T, j.H = H, j.V = V, j.o = *o, j.mode = mode;
    for (int64_t c = 0; c < V; c++) j.sw += wt(&j, c);
    for (int64_t t = 0; t < T; t++)
        if (targets[t] != o->ignore_index) j.W += wt(&j, targets[t]);
    return j;
}

ss_status ss_fused_ce_forward(float *loss, float *losses, void *cache,
                              const float *hidden, const float *weight,
                              const float *bias, const int64_t *targets,
                              int64_t T, int64_t H, int64_t V,
                              const ss_fused_ce_opts *opts) {
    const char *fn = "ss_fused_ce_forward";
    ss_fused_ce_opts o = opts ? *opts : ss_fused_ce_defaults();
    int64_t n;
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(check_args(fn, hidden, weight, bias, targets, T, H, V, &o, &n));
    fce_job j = job_of(hidden, weight, bias, targets, T, H, V, &o, MODE_FWD);
    fce_head *hd = cache;
    j.lse = (float *)(hd + 1);
    memset(j.lse, 0, sizeof(float) * (size_t)T);
    hd->W = j.W;
    if (n > 0) {
        j.rowloss = ss__malloc(sizeof(double) * (size_t)n);
        if (!j.rowloss) return ss__fail(SS_ERR_NOMEM, fn, "row losses");
        ss_status st = run(fn, &j, n);
        if (st != SS_OK) { ss__free(j.rowloss); return st; }
    }
    write_loss(loss, losses, &j, n);
    ss__free(j.rowloss);
    return SS_OK;
}

ss_status ss_fused_ce_backward(float *dhidden, float *dweight, float *dbias,
                               float dloss, const void *cache,
                               const float *hidden, const float *weight,
                               const float *bias, const int64_t *targets,
                               int64_t T, int64_t H, int64_t V,
                               const ss_fused_ce_opts *opts) {
    const char *fn = "ss_fused_ce_backward";
    ss_fused_ce_opts o = opts ? *opts : ss_fused_ce_defaults();
    int64_t n;
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(check_args(fn, hidden, weight, bias, targets, T, H, V, &o, &n));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                        (double)dloss);
    const fce_head *hd = cache;
    if (!(hd->W > 0.0) || (!dhidden && !dweight && !dbias)) return SS_OK;
    fce_job j = job_of(hidden, weight, bias, targets, T, H, V, &o, MODE_BWD);
    j.lse = (float *)(hd + 1); /* read only in this mode */
    j.dhidden = dhidden, j.dweight = dweight, j.dbias = dbias;
    j.scale = (double)dloss / hd->W;
    return run(fn, &j, n);
}

ss_status ss_fused_ce_forward_backward(
    float *loss, float *losses, float *dhidden, float *dweight, float *dbias,
    float dloss, const float *hidden, const float *weight, const float *bias,
    const int64_t *targets, int64_t T, int64_t H, int64_t V,
    const ss_fused_ce_opts *opts) {
    const char *fn = "ss_fused_ce_forward_backward";
    ss_fused_ce_opts o = opts ? *opts : ss_fused_ce_defaults();
    int64_t n;
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(check_args(fn, hidden, weight, bias, targets, T, H, V, &o, &n));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_NONFINITE, fn, "dloss is %g (not finite)",
                        (double)dloss);
    fce_job j = job_of(hidden, weight, bias, targets, T, H, V, &o, MODE_BOTH);
    j.dhidden = dhidden, j.dweight = dweight, j.dbias = dbias;
    j.scale = j.W > 0.0 ? (double)dloss / j.W : 0.0; /* W = 0: no gradient */
    if (n > 0) {
        j.rowloss = ss__malloc(sizeof(double) * (size_t)n);
        j.lse = ss__malloc(sizeof(float) * (size_t)T);
        if (!j.rowloss || !j.lse) {
            ss__free(j.rowloss), ss__free(j.lse);
            return ss__fail(SS_ERR_NOMEM, fn, "row losses");
        }
        ss_status st = run(fn, &j, n);
        if (st != SS_OK) {
            ss__free(j.rowloss), ss__free(j.lse);
            return st;
        }
    }
    write_loss(loss, losses, &j, n);
    ss__free(j.rowloss), ss__free(j.lse);
    return SS_OK;
}
