/* cross.c - tiled cross-similarity engine (see cross.h). */
#include "cross.h"
#include "gemm.h"
#include "norm.h"
#include "tgemm.h"
#include "vexp.h"

#include <float.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static float vec_max(const float *x, int64_t n) {
    float m = -INFINITY;
#ifdef _OPENMP
#pragma omp simd reduction(max : m)
#endif
    for (int64_t j = 0; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static float vec_sum_exp(const float *x, int64_t n, float shift) {
    float s = 0.0f;
#ifdef _OPENMP
#pragma omp simd reduction(+ : s)
#endif
    for (int64_t j = 0; j < n; j++)
        s += ss__vexp(x[j] - shift);
    return s;
}

/* ---- per-thread state ---------------------------------------------------- */

enum { MODE_LSE, MODE_LSE_BWD, MODE_SIG, MODE_SIG_BWD };

typedef struct {
    const ss__cross *p;
    int mode;
    int rows, cols;                 /* MODE_LSE: which statistics */
    const float *wr, *lr, *wc, *lc; /* MODE_LSE_BWD */
    float *diag;                    /* MODE_LSE: (min(M, K)) x_ii or NULL */
    float wd;                       /* MODE_LSE_BWD: diagonal weight */
    float w;                        /* MODE_SIG_BWD */
    int dA, dB;                     /* gradients wanted */
    int nodiag; /* no pair i == j is a positive / diagonal (ring blocks) */
} job;

/* Diagonal offset of a tile that holds no diagonal: i + NO_DIAG never
 * equals a column index. */
#define NO_DIAG (INT64_MAX / 4)

typedef struct {
    float *T, *tmp;      /* tile (tile^2), column scratch (tile) */
    float *Bt, *scr;     /* B tile^T and ss__tgemm scratch, or NULL */
    float *rmax, *cmax;  /* (M), (K) running maxima */
    double *rsum, *csum; /* (M), (K) sums of exp(x - max); rsum = row loss */
    float *dA, *dB;      /* (M, D), (K, D) gradient accumulators */
    double gx, gb;
} slot;

static size_t al64(size_t b) { return (b + 63) & ~(size_t)63; }

/* Bytes one thread needs; also lays the slot out when base != NULL. */
static size_t slot_layout(slot *s, char *base, const job *jb) {
    const ss__cross *p = jb->p;
    size_t tile = SS__CROSS_TILE, off = 0;
    size_t M = (size_t)p->M, K = (size_t)p->K, D = (size_t)p->D;
    int rows = jb->mode == MODE_LSE ? jb->rows : jb->mode == MODE_SIG;
    int cols = jb->mode == MODE_LSE && jb->cols;
#define SS__TAKE(field, type, count)                                           \
    do {                                                                       \
        if (base) s->field = (type *)(void *)(base + off);                     \
        off += al64((count) * sizeof(type));                                   \
    } while (0)
    SS__TAKE(T, float, tile * tile);
    SS__TAKE(tmp, float, tile);
    if (ss__tgemm_native()) {
        SS__TAKE(Bt, float, D * SS__TGEMM_LDT(tile));
        SS__TAKE(scr, float, (size_t)ss__tgemm_scratch(D > tile ? D : tile));
    }
    if (rows) {
        SS__TAKE(rmax, float, M);
        SS__TAKE(rsum, double, M);
    }
    if (cols) {
        SS__TAKE(cmax, float, K);
        SS__TAKE(csum, double, K);
    }
    if (jb->dA) SS__TAKE(dA, float, M * D);
    if (jb->dB) SS__TAKE(dB, float, K * D);
#undef SS__TAKE
    return off;
}

static void slot_init(slot *s, const job *jb) {
    const ss__cross *p = jb->p;
    if (s->rmax)
        for (int64_t i = 0; i < p->M; i++)
            s->rmax[i] = -INFINITY, s->rsum[i] = 0;
    if (s->cmax)
        for (int64_t j = 0; j < p->K; j++)
            s->cmax[j] = -INFINITY, s->csum[j] = 0;
    if (s->dA) memset(s->dA, 0, (size_t)(p->M * p->D) * sizeof(float));
    if (s->dB) memset(s->dB, 0, (size_t)(p->K * p->D) * sizeof(float));
    s->gx = s->gb = 0.0;
}

/* ---- tile kernels -------------------------------------------------------- */

/* Online log-sum-exp of each tile row into (rmax, rsum). */
static void tile_rows_lse(const float *T, int64_t bi, int64_t bj, float *rmax,
                          double *rsum) {
    for (int64_t i = 0; i < bi; i++) {
        const float *r = T + i * bj;
        float m = vec_max(r, bj);
        if (m > rmax[i]) {
            rsum[i] *= exp((double)rmax[i] - m);
            rmax[i] = m;
        }
        rsum[i] += vec_sum_exp(r, bj, rmax[i]);
    }
}

/* The same per column, sweeping rows so that the inner loop runs along
 * contiguous memory. tmp: (bj) scratch. */
static void tile_cols_lse(const float *T, int64_t bi, int64_t bj, float *cmax,
                          double *csum, float *tmp) {
    memcpy(tmp, T, (size_t)bj * sizeof(float));
    for (int64_t i = 1; i < bi; i++) {
        const float *r = T + i * bj;
        for (int64_t j = 0; j < bj; j++)
            tmp[j] = r[j] > tmp[j] ? r[j] : tmp[j];
    }
    for (int64_t j = 0; j < bj; j++)
        if (tmp[j] > cmax[j]) {
            csum[j] *= exp((double)cmax[j] - tmp[j]);
            cmax[j] = tmp[j];
        }
    memset(tmp, 0, (size_t)bj * sizeof(float));
    for (int64_t i = 0; i < bi; i++) {
        const float *r = T + i * bj;
#ifdef _OPENMP
#pragma omp simd
#endif
        for (int64_t j = 0; j < bj; j++)
            tmp[j] += ss__vexp(r[j] - cmax[j]);
    }
    for (int64_t j = 0; j < bj; j++)
        csum[j] += tmp[j];
}

/* T <- G_ij = wr_i e^{x_ij - lr_i} + wc_j e^{x_ij - lc_j} - wd [i == j];
 * returns sum G_ij x_ij. wr/lr, wc/lc: already offset to the tile; diag as
 * in tile_sig_loss. */
static double tile_lse_grad(float *T, int64_t bi, int64_t bj, const float *wr,
                            const float *lr, const float *wc, const float *lc,
                            int64_t diag, float wd) {
    double gx = 0.0;
    for (int64_t i = 0; i < bi; i++) {
        float *r = T + i * bj, acc = 0.0f;
        int64_t jd = i + diag;
        float xd = jd >= 0 && jd < bj ? r[jd] : 0.0f;
        if (wr && wc) {
            float a = wr[i], l = lr[i];
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
            for (int64_t j = 0; j < bj; j++) {
                float x = r[j];
                float g = a * ss__vexp(x - l) + wc[j] * ss__vexp(x - lc[j]);
                acc += g * x;
                r[j] = g;
            }
        } else if (wr) {
            float a = wr[i], l = lr[i];
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
            for (int64_t j = 0; j < bj; j++) {
                float x = r[j], g = a * ss__vexp(x - l);
                acc += g * x;
                r[j] = g;
            }
        } else {
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
            for (int64_t j = 0; j < bj; j++) {
                float x = r[j], g = wc[j] * ss__vexp(x - lc[j]);
                acc += g * x;
                r[j] = g;
            }
        }
        if (jd >= 0 && jd < bj) { /* the diagonal term -wd x_ii */
            r[jd] -= wd;
            acc -= wd * xd;
        }
        gx += acc;
    }
    return gx;
}

/* rloss_i += sum_j softplus(-y_ij (T_ij + bias)); diag = j - i offset of the
 * global diagonal inside the tile (i == j globally <=> j == i + diag). */
static void tile_sig_loss(const float *T, int64_t bi, int64_t bj, float bias,
                          int64_t diag, double *rloss) {
    for (int64_t i = 0; i < bi; i++) {
        const float *r = T + i * bj;
        int64_t jd = i + diag;
        float acc = 0.0f;
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
        for (int64_t j = 0; j < bj; j++) {
            float x = r[j] + bias;
            acc += ss__vsoftplus(j == jd ? -x : x);
        }
        rloss[i] += acc;
    }
}

/* T <- G_ij = w (sigmoid(x_ij) - [i == j]); *gx += sum G T, *gb += sum G. */
static void tile_sig_grad(float *T, int64_t bi, int64_t bj, float bias,
                          int64_t diag, float w, double *gx, double *gb) {
    for (int64_t i = 0; i < bi; i++) {
        float *r = T + i * bj, ax = 0.0f, ab = 0.0f;
        int64_t jd = i + diag;
#ifdef _OPENMP
#pragma omp simd reduction(+ : ax, ab)
#endif
        for (int64_t j = 0; j < bj; j++) {
            float t = r[j], x = t + bias;
            float e = ss__vexp(-fabsf(x)), big = 1.0f / (1.0f + e), small = e * big;
            float sig = x >= 0.0f ? big : small;  /* sigmoid(x) */
            float sigm = x >= 0.0f ? small : big; /* sigmoid(-x) = 1 - sig */
            float g = w * (j == jd ? -sigm : sig);
            ax += g * t;
            ab += g;
            r[j] = g;
        }
        *gx += ax;
        *gb += ab;
    }
}

/* T <- x = scale c_j <A_i, B_j> for the tile (bi, bj) at (i0, j0). */
static void tile_dots(slot *s, const ss__cross *p, int64_t i0, int64_t bi,
                      int64_t j0, int64_t bj) {
    int64_t D = p->D, ldt = SS__TGEMM_LDT(SS__CROSS_TILE);
    float *T = s->T;
    if (s->Bt) {
        ss__transpose(s->Bt, ldt, p->B + j0 * D, bj, D);
        ss__tgemm(bi, bj, D, p->A + i0 * D, D, 1, s->Bt, ldt, 0, T, bj,
                  s->scr);
        for (int64_t e = 0; e < bi * bj; e++) T[e] *= p->scale;
    } else {
        ss__sgemm(0, 1, bi, bj, D, p->scale, p->A + i0 * D, D, p->B + j0 * D,
                  D, 0.0f, T, bj);
    }
    if (p->col_scale)
        for (int64_t i = 0; i < bi; i++)
            for (int64_t j = 0; j < bj; j++)
                T[i * bj + j] *= p->col_scale[j0 + j];
}

/* T holds G = dL/dx, x = scale c_j <A_i, B_j>: dB_j += scale G^T A_i and
 * dA_i += scale (G c) B_j. Overwrites T. */
static void tile_backprop(slot *s, const ss__cross *p, int64_t i0, int64_t bi,
                          int64_t j0, int64_t bj) {
    int64_t D = p->D;
    float *T = s->T;
    if (s->Bt) /* ss__tgemm has no alpha: fold scale into G */
        for (int64_t e = 0; e < bi * bj; e++) T[e] *= p->scale;
    if (s->dB) {
        if (s->Bt)
            ss__tgemm(bj, D, bi, T, 1, bj, p->A + i0 * D, D, 1,
                      s->dB + j0 * D, D, s->scr);
        else
            ss__sgemm(1, 0, bj, D, bi, p->scale, T, bj, p->A + i0 * D, D,
                      1.0f, s->dB + j0 * D, D);
    }
    if (!s->dA) return;
    if (p->col_scale)
        for (int64_t i = 0; i < bi; i++)
            for (int64_t j = 0; j < bj; j++)
                T[i * bj + j] *= p->col_scale[j0 + j];
    if (s->Bt)
        ss__tgemm(bi, D, bj, T, bj, 1, p->B + j0 * D, D, 1, s->dA + i0 * D, D,
                  s->scr);
    else
        ss__sgemm(0, 0, bi, D, bj, p->scale, T, bj, p->B + j0 * D, D, 1.0f,
                  s->dA + i0 * D, D);
}

/* One tile: form it with a GEMM, then reduce or back-propagate it. */
static void do_tile(slot *s, const job *jb, int64_t i0, int64_t bi, int64_t j0,
                    int64_t bj) {
    const ss__cross *p = jb->p;
    float *T = s->T;
    int64_t dg = jb->nodiag ? NO_DIAG : i0 - j0;
    tile_dots(s, p, i0, bi, j0, bj);
    switch (jb->mode) {
    case MODE_LSE:
        if (s->rmax) tile_rows_lse(T, bi, bj, s->rmax + i0, s->rsum + i0);
        if (s->cmax)
            tile_cols_lse(T, bi, bj, s->cmax + j0, s->csum + j0, s->tmp);
        if (jb->diag) /* each x_ii lies in exactly one tile */
            for (int64_t i = 0; i < bi; i++)
                if (i0 + i >= j0 && i0 + i < j0 + bj)
                    jb->diag[i0 + i] = T[i * bj + (i0 + i - j0)];
        return;
    case MODE_SIG:
        tile_sig_loss(T, bi, bj, p->bias, dg, s->rsum + i0);
        return;
    case MODE_LSE_BWD:
        s->gx += tile_lse_grad(
            T, bi, bj, jb->wr ? jb->wr + i0 : NULL, jb->lr ? jb->lr + i0 : NULL,
            jb->wc ? jb->wc + j0 : NULL, jb->lc ? jb->lc + j0 : NULL, dg,
            jb->wd);
        break;
    default: /* MODE_SIG_BWD */
        tile_sig_grad(T, bi, bj, p->bias, dg, jb->w, &s->gx, &s->gb);
        break;
    }
    tile_backprop(s, p, i0, bi, j0, bj);
}

/* Tiles t in [lo, hi) of the row-major list of tiles. */
static void do_range(slot *s, const job *jb, int64_t lo, int64_t hi) {
    const int64_t TS = SS__CROSS_TILE;
    int64_t nJ = (jb->p->K + TS - 1) / TS;
    for (int64_t t = lo; t < hi; t++) {
        int64_t i0 = (t / nJ) * TS, j0 = (t % nJ) * TS;
        int64_t bi = jb->p->M - i0 < TS ? jb->p->M - i0 : TS;
        int64_t bj = jb->p->K - j0 < TS ? jb->p->K - j0 : TS;
        do_tile(s, jb, i0, bi, j0, bj);
    }
}

/* ---- driver -------------------------------------------------------------- */

/* Merges per-thread (max, sum) pairs into log-sum-exps. */
static void merge_lse(float *lse, slot *sl, int used, int64_t n, int rows) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)                                      \
    num_threads(ss__threads()) if (n > 4096)
#endif
    for (int64_t i = 0; i < n; i++) {
        float m = -INFINITY;
        for (int t = 0; t < used; t++) {
            float mt = rows ? sl[t].rmax[i] : sl[t].cmax[i];
            m = mt > m ? mt : m;
        }
        double sum = 0.0;
        for (int t = 0; t < used; t++) {
            float mt = rows ? sl[t].rmax[i] : sl[t].cmax[i];
            double st = rows ? sl[t].rsum[i] : sl[t].csum[i];
            if (st > 0.0) sum += st * exp((double)mt - m);
        }
        lse[i] = (float)((double)m + log(sum));
    }
}

static void merge_grad(float *d, slot *sl, int used, int64_t n, int rows) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)                                      \
    num_threads(ss__threads()) if (n > 65536)
#endif
    for (int64_t e = 0; e < n; e++) {
        float acc = 0.0f;
        for (int t = 0; t < used; t++)
            acc += rows ? sl[t].dA[e] : sl[t].dB[e];
        d[e] += acc;
    }
}

/* Runs jb over every tile; the caller merges from the returned slots.
 * *mem: the block to free. */
static ss_status run(const job *jb, slot **out, int *used, void **mem) {
    const int64_t TS = SS__CROSS_TILE;
    int64_t ntiles = ((jb->p->M + TS - 1) / TS) * ((jb->p->K + TS - 1) / TS);
    int nt = ss__threads();
    if (nt > ntiles) nt = (int)ntiles;
    slot probe = {0};
    size_t per = slot_layout(&probe, NULL, jb);
    size_t head = al64((size_t)nt * sizeof(slot));
    char *blk = ss__malloc(head + (size_t)nt * per);
    if (!blk) return SS_ERR_NOMEM;
    slot *sl = (slot *)(void *)blk;
    memset(sl, 0, (size_t)nt * sizeof(slot));
    for (int t = 0; t < nt; t++)
        slot_layout(&sl[t], blk + head + (size_t)t * per, jb);
    int team = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#pragma omp single
        team = nth;
#endif
        slot_init(&sl[tid], jb);
        do_range(&sl[tid], jb, ntiles * tid / nth, ntiles * (tid + 1) / nth);
    }
    *out = sl;
    *used = team;
    *mem = blk;
    return SS_OK;
}

static ss_status nomem(const ss__cross *p) {
    return ss__fail(SS_ERR_NOMEM, "ss__cross",
                    "cannot allocate workspace for M=%lld K=%lld D=%lld",
                    (long long)p->M, (long long)p->K, (long long)p->D);
}

ss_status ss__cross_lse(float *row_lse, float *col_lse, float *diag,
                        const ss__cross *p) {
    job jb = {.p = p,
              .mode = MODE_LSE,
              .rows = row_lse != NULL,
              .cols = col_lse != NULL,
              .diag = diag};
    slot *sl;
    int used;
    void *mem;
    if (run(&jb, &sl, &used, &mem) != SS_OK) return nomem(p);
    if (row_lse) merge_lse(row_lse, sl, used, p->M, 1);
    if (col_lse) merge_lse(col_lse, sl, used, p->K, 0);
    ss__free(mem);
    return SS_OK;
}

static void finish_grads(float *dA, float *dB, double *gx, double *gb, slot *sl,
                         int used, const ss__cross *p) {
    if (dA) merge_grad(dA, sl, used, p->M * p->D, 1);
    if (dB) merge_grad(dB, sl, used, p->K * p->D, 0);
    for (int t = 0; t < used; t++) {
        if (gx) *gx += sl[t].gx;
        if (gb) *gb += sl[t].gb;
    }
}

/* Runs a backward job and reduces the per-thread slots into the outputs. */
static ss_status run_grads(const job *jb, float *dA, float *dB, double *gx,
                           double *gb) {
    slot *sl;
    int used;
    void *mem;
    if (run(jb, &sl, &used, &mem) != SS_OK) return nomem(jb->p);
    finish_grads(dA, dB, gx, gb, sl, used, jb->p);
    ss__free(mem);
    return SS_OK;
}

ss_status ss__cross_lse_backward(float *dA, float *dB, double *gx,
                                 const float *wr, const float *row_lse,
                                 const float *wc, const float *col_lse,
                                 float wd, const ss__cross *p) {
    if (!row_lse) wr = NULL;
    if (!col_lse) wc = NULL;
    if (!wr && !wc) return SS_OK;
    job jb = {.p = p,
              .mode = MODE_LSE_BWD,
              .wr = wr,
              .lr = row_lse,
              .wc = wc,
              .lc = col_lse,
              .wd = wd,
              .dA = dA != NULL,
              .dB = dB != NULL};
    return run_grads(&jb, dA, dB, gx, NULL);
}

ss_status ss__cross_sigmoid(double *row_loss, const ss__cross *p) {
    return ss__cross_sigmoid_ex(row_loss, p, 1);
}

ss_status ss__cross_sigmoid_backward(float *dA, float *dB, double *gx,
                                     double *gb, float w, const ss__cross *p) {
    return ss__cross_sigmoid_backward_ex(dA, dB, gx, gb, w, p, 1);
}

ss_status ss__cross_sigmoid_ex(double *row_loss, const ss__cross *p,
                               int positives) {
    job jb = {.p = p, .mode = MODE_SIG, .nodiag = !positives};
    slot *sl;
    int used;
    void *mem;
    if (run(&jb, &sl, &used, &mem) != SS_OK) return nomem(p);
    for (int64_t i = 0; i < p->M; i++) {
        double acc = 0.0;
        for (int t = 0; t < used; t++)
            acc += sl[t].rsum[i];
        row_loss[i] = acc;
    }
    ss__free(mem);
    return SS_OK;
}

ss_status ss__cross_sigmoid_backward_ex(float *dA, float *dB, double *gx,
                                        double *gb, float w,
                                        const ss__cross *p, int positives) {
    job jb = {.p = p,
              .mode = MODE_SIG_BWD,
              .w = w,
              .dA = dA != NULL,
              .dB = dB != NULL,
              .nodiag = !positives};
    return run_grads(&jb, dA, dB, gx, gb);
}

/* ---- helpers for the loss files ------------------------------------------ */

void ss__cross_hdr_set(void *cache, uint64_t magic, int64_t N, int64_t K,
                       int64_t D, float p0, float p1, int cosine) {
    ss__cross_hdr h = {magic, N, K, D, p0, p1, cosine, 0};
    memcpy(cache, &h, sizeof h);
}

ss_status ss__cross_hdr_check(const void *cache, const char *fn, uint64_t magic,
                              int64_t N, int64_t K, int64_t D, float p0,
                              float p1, int cosine) {
    ss__cross_hdr h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || h.N != N || h.K != K || h.D != D || h.p0 != p0 ||
        h.p1 != p1 || h.cosine != cosine)
        return ss__fail(SS_ERR_STATE, fn,
                        "cache was not written by the matching forward call "
                        "(same inputs, sizes and options)");
    return SS_OK;
}

void ss__cross_inv_norms(float *inv, const float *B, int64_t K, int64_t D) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)                                      \
    num_threads(ss__threads()) if (K * D > 65536)
#endif
    for (int64_t j = 0; j < K; j++) {
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++)
            ss += (double)B[j * D + d] * B[j * D + d];
        double nrm = sqrt(ss);
        inv[j] = (float)(1.0 / (nrm > SS_NORM_EPS ? nrm : SS_NORM_EPS));
    }
}

ss_status ss__cross_pair_make(ss__cross_pair *wk, const float *a,
                              const float *b, int64_t N, int64_t D, int cosine,
                              int backward) {
    size_t nd = (size_t)(N * D), n = (size_t)N;
    size_t floats = (cosine ? 2 * nd + 2 * n : 0) +
                    (backward && cosine ? 2 * nd : 0) + n;
    memset(wk, 0, sizeof *wk);
    wk->a = a, wk->b = b;
    float *m = ss__malloc(floats * sizeof(float));
    if (!m) return SS_ERR_NOMEM;
    wk->mem = m;
    if (cosine) {
        wk->an = m, m += nd;
        wk->bn = m, m += nd;
        wk->inva = m, m += n;
        wk->invb = m, m += n;
        ss__normalize_rows(wk->an, wk->inva, a, N, D);
        ss__normalize_rows(wk->bn, wk->invb, b, N, D);
        wk->a = wk->an, wk->b = wk->bn;
    }
    if (backward && cosine) {
        wk->dan = m, m += nd;
        wk->dbn = m, m += nd;
        memset(wk->dan, 0, 2 * nd * sizeof(float));
    }
    wk->w = m;
    return SS_OK;
}

void ss__cross_pair_finish(const ss__cross_pair *wk, float *da, float *db,
                           const float *a, const float *b, int64_t N,
                           int64_t D) {
    if (!wk->dan) return;
    ss__normalize_backward(da, wk->dan, wk->an, wk->inva, a, N, D);
    if (db) ss__normalize_backward(db, wk->dbn, wk->bn, wk->invb, b, N, D);
}

void ss__cross_pair_free(ss__cross_pair *wk) {
    ss__free(wk->mem);
    wk->mem = NULL;
}

ss_status ss__cross_check_loss(const char *fn, double loss) {
    if (fabs(loss) <= FLT_MAX) return SS_OK;
    return ss__fail(SS_ERR_NONFINITE, fn,
                    "the loss overflows float32 (got %g): the logits are too "
                    "large; scale the inputs or the logit scale down",
                    loss);
}

ss_status ss__cross_check_sizes(const char *fn, int64_t N, int64_t D) {
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, N, D, 1);
}

ss_status ss__cross_check_pair(const char *fn, const float *a, const float *b,
                               int64_t N, int64_t D, const char *scale_name,
                               float log_scale, const float *bias,
                               float *scale) {
    SS_TRY(ss__check_ptr(fn, "a", a));
    SS_TRY(ss__check_ptr(fn, "b", b));
    SS_TRY(ss__cross_check_sizes(fn, N, D));
    double s = exp((double)log_scale);
    if (!isfinite(log_scale) || !(s <= FLT_MAX))
        return ss__fail(SS_ERR_PARAM, fn,
                        "%s must be finite with e^%s finite in float32 "
                        "(%s <= 88.7), got %g",
                        scale_name, scale_name, scale_name, (double)log_scale);
    if (bias && !isfinite(*bias))
        return ss__fail(SS_ERR_PARAM, fn, "bias must be finite, got %g",
                        (double)*bias);
    SS_TRY(ss__check_finite(fn, "a", a, N * D));
    SS_TRY(ss__check_finite(fn, "b", b, N * D));
    *scale = (float)s;
    return SS_OK;
}

ss_status ss__cross_nomem(const char *fn, int64_t N, int64_t D) {
    return ss__fail(SS_ERR_NOMEM, fn,
                    "cannot allocate workspace for N=%lld D=%lld", (long long)N,
                    (long long)D);
}
