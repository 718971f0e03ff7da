/*
 * dist_ring_group.c - the ring group-contrast engine (dist_ring_group.h).
 *
 * A ring block is [labels: Nmax int64, with labels only][rows: Kmax x D
 * floats][backward: W then L, Kmax x S floats each], Kmax = V Nmax, padded
 * to the largest rank (sendrecv has one byte count). Tiles: 256 local rows
 * x 256 block rows, one ss__tgemm each; exps through ss__vexp, with the
 * fixed shift sc for cosine logits when 2 sc <= 40 (no running max), else
 * an online max per (row, class). Each tile of local rows belongs to one
 * thread, so results do not depend on the thread count.
 */
#include "dist_ring_group.h"
#include "dist_gc.h"
#include "kernels/norm.h"
#include "kernels/tgemm.h"
#include "kernels/vexp.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define DRG_TILE 256
#define DRG_LDT SS__TGEMM_LDT(DRG_TILE)
#define DRG_FIXED_SHIFT_MAX 40.0

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void ss__drg_free(ss__drg *w) {
    ss__free(w->xbuf), ss__free(w->inv), ss__free(w->blk[0]);
    ss__free(w->blk[1]), ss__free(w->tiles), ss__free(w->counts);
    ss__free(w->mx), ss__free(w->sm), ss__free(w->wloc), ss__free(w->dx);
    ss__free(w->pos), ss__free(w->cnt), ss__free(w->pairs);
    ss__free(w->gsum);
    memset(w, 0, sizeof *w);
}

/* Parts of a block: labels, rows, then (W, L). */
static int64_t drg_lab_bytes(const ss__drg *w) {
    return w->o.labels ? w->Nmax * (int64_t)sizeof(int64_t) : 0;
}
static float *drg_rows(const ss__drg *w, void *blk) {
    return (float *)(void *)((char *)blk + drg_lab_bytes(w));
}

static ss_status drg_alloc(ss__drg *w, const char *fn) {
    int64_t Ml = w->Ml, D = w->D, S = w->S, Kmax = w->Kmax;
    int lab = w->o.labels != NULL;
    w->blk_bytes = drg_lab_bytes(w) +
                   (Kmax * D + (w->backward ? 2 * Kmax * S : 0)) *
                       (int64_t)sizeof(float);
    if (w->o.cosine) {
        w->xbuf = ss__malloc((size_t)(Ml * D) * sizeof(float));
        w->inv = ss__malloc((size_t)Ml * sizeof(float));
    }
    /* calloc: the padding is sent too */
    w->blk[0] = ss__calloc((size_t)w->blk_bytes);
    w->blk[1] = ss__calloc((size_t)w->blk_bytes);
    int64_t scr = ss__tgemm_scratch(D), scr2 = ss__tgemm_scratch(DRG_TILE);
    w->stride = DRG_TILE * DRG_TILE + D * DRG_LDT + (scr > scr2 ? scr : scr2);
    w->tiles = ss__malloc((size_t)(w->nthreads * w->stride) * sizeof(float));
    int ok = (!w->o.cosine || (w->xbuf && w->inv)) && w->blk[0] && w->blk[1] &&
             w->tiles;
    if (w->backward) {
        w->wloc = ss__malloc((size_t)(2 * Ml * S) * sizeof(float));
        w->dx = ss__calloc((size_t)(Ml * D) * sizeof(float));
        ok = ok && w->wloc && w->dx;
    } else {
        w->mx = ss__malloc((size_t)(Ml * S) * sizeof(double));
        w->sm = ss__malloc((size_t)(Ml * S) * sizeof(double));
        ok = ok && w->mx && w->sm;
    }
    if (lab) {
        w->pos = ss__malloc((size_t)(Ml * D) * sizeof(double));
        w->cnt = ss__malloc((size_t)Ml * sizeof(int64_t));
        w->pairs = ss__malloc((size_t)(2 * w->Nmax) * sizeof(int64_t));
        w->gsum = ss__malloc((size_t)(w->Nmax * D) * sizeof(double));
        ok = ok && w->pos && w->cnt && w->pairs && w->gsum;
    }
    if (!ok)
        return ss__fail(SS_ERR_NOMEM, fn, "no memory for the ring blocks of "
                        "%lld x %lld rows", (long long)Kmax, (long long)D);
    return SS_OK;
}

ss_status ss__drg_setup(ss__drg *w, const char *fn, ss_status st,
                        const float *z, int64_t V, int64_t N, int64_t D,
                        const ss__drg_opts *o, const double *vals,
                        const char *const *names, int nv, int backward,
                        const ss_comm *c) {
    memset(w, 0, sizeof *w);
    int64_t off = 0, Ntot = 0;
    st = ss__dgc_agree(c, fn, st, vals, names, nv, N, &w->counts, &off,
                       &Ntot);
    if (st != SS_OK) {
        ss__drg_free(w);
        return st;
    }
    w->o = *o;
    w->V = V, w->N = N, w->D = D, w->Ml = V * N, w->Ntot = Ntot;
    for (int q = 0; q < c->size; q++)
        if (w->counts[q] > w->Nmax) w->Nmax = w->counts[q];
    w->Kmax = V * w->Nmax;
    w->S = o->per_view ? (int)V : 1;
    w->nthreads = ss__threads();
    w->backward = backward;
    st = ss__check_product(fn, V, Ntot, D);
    if (st == SS_OK) st = drg_alloc(w, fn);
    st = ss__dist_status(c, fn, st);
    if (st != SS_OK) {
        ss__drg_free(w);
        return st;
    }
    if (o->cosine) ss__normalize_rows(w->xbuf, w->inv, z, w->Ml, D);
    w->x = o->cosine ? w->xbuf : z;
    if (o->labels)
        memcpy(w->blk[0], o->labels, (size_t)N * sizeof(int64_t));
    memcpy(drg_rows(w, w->blk[0]), w->x, (size_t)(w->Ml * D) * sizeof(float));
    return SS_OK;
}

/* ---- tiles -------------------------------------------------------------- */

/* T (mi, nj), row stride DRG_TILE = sc x[i0..] . B[j0..]^T. */
static void drg_tile(float *T, const ss__drg *w, const float *B, int64_t i0,
                     int64_t mi, int64_t j0, int64_t nj) {
    int64_t D = w->D;
    float *Bt = T + DRG_TILE * DRG_TILE, *scr = Bt + D * DRG_LDT;
    ss__transpose(Bt, DRG_LDT, B + j0 * D, nj, D);
    ss__tgemm(mi, nj, D, w->x + i0 * D, D, 1, Bt, DRG_LDT, 0, T, DRG_TILE, scr);
    for (int64_t a = 0; a < mi; a++)
        for (int64_t b = 0; b < nj; b++) T[a * DRG_TILE + b] *= w->o.scale;
}

/* Home block only: row[b] = val at the columns excluded for local row i
 * (itself, or every view of its sample). */
static void drg_mask(float *row, float val, const ss__drg *w, int64_t i,
                     int64_t j0, int64_t nj) {
    int64_t n = i % w->N, u0 = w->o.same_sample ? 0 : i / w->N;
    int64_t u1 = w->o.same_sample ? w->V : u0 + 1;
    for (int64_t u = u0; u < u1; u++) {
        int64_t b = u * w->N + n - j0;
        if (b >= 0 && b < nj) row[b] = val;
    }
}

/* End (exclusive, tile column) of the class run that starts at column b
 * of the tile at j0; *u: its class. Blocks are (V, Nq): view = k / Nq. */
static int64_t drg_run(int *u, const ss__drg *w, int64_t Nq, int64_t j0,
                       int64_t b, int64_t nj) {
    if (!w->o.per_view) {
        *u = 0;
        return nj;
    }
    *u = (int)((j0 + b) / Nq);
    return min64(nj, (*u + 1) * Nq - j0);
}

/* One run of logits s (n) into a (max, sum) state. */
static void drg_accumulate(double *mx, double *sm, const float *s, int64_t n,
                           int fixed) {
    double m = *mx;
    if (!fixed) {
        for (int64_t b = 0; b < n; b++)
            if (s[b] > m) m = s[b];
        if (m == -INFINITY) return;
    }
    float mf = (float)m, acc = 0.0f;
    for (int64_t b = 0; b < n; b++) acc += ss__vexp(s[b] - mf);
    double prev = fixed || *mx == -INFINITY ? *sm : *sm * exp(*mx - m);
    *mx = m, *sm = prev + (double)acc;
}

/* ---- positives (labels) ------------------------------------------------- */

static int cmp_pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Groups of the block's labelled samples: pairs[2 g] = label, pairs[2 g +
 * 1] = rows; gsum[g] = the sum of the group's rows. Returns the count. */
static int64_t drg_block_groups(ss__drg *w, int64_t Nq, const int64_t *lab,
                                const float *B) {
    int64_t np = 0, ng = 0, D = w->D, *p = w->pairs;
    for (int64_t n = 0; n < Nq; n++)
        if (lab[n] >= 0) p[2 * np] = lab[n], p[2 * np++ + 1] = n;
    qsort(p, (size_t)np, 2 * sizeof(int64_t), cmp_pair);
    for (int64_t k = 0; k < np; k++) {
        int64_t l = p[2 * k], n = p[2 * k + 1]; /* read before overwriting */
        if (k == 0 || l != p[2 * ng - 2]) {
            memset(w->gsum + ng * D, 0, (size_t)D * sizeof(double));
            p[2 * ng] = l, p[2 * ng++ + 1] = 0;
        }
        double *g = w->gsum + (ng - 1) * D;
        for (int64_t v = 0; v < w->V; v++)
            for (int64_t d = 0; d < D; d++) g[d] += B[(v * Nq + n) * D + d];
        p[2 * ng - 1] += w->V;
    }
    return ng;
}

/* Index of label l among the ng groups (sorted), or -1. */
static int64_t drg_find(const int64_t *p, int64_t ng, int64_t l) {
    int64_t lo = 0, hi = ng;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (p[2 * mid] < l) lo = mid + 1;
        else hi = mid;
    }
    return lo < ng && p[2 * lo] == l ? lo : -1;
}

/* pos, cnt += the block's rows that share a label with the local samples;
 * on the home block also the unlabeled samples' own views, less the row
 * itself. */
static void drg_positives(ss__drg *w, int home, int64_t Nq,
                          const int64_t *lab, const float *B) {
    int64_t ng = drg_block_groups(w, Nq, lab, B), N = w->N, D = w->D;
    const int64_t *ll = w->o.labels;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(w->nthreads)
#endif
    for (int64_t n = 0; n < N; n++) {
        for (int64_t v = 0; v < w->V; v++) {
            int64_t i = v * N + n;
            double *p = w->pos + i * D;
            if (ll[n] >= 0) {
                int64_t g = drg_find(w->pairs, ng, ll[n]);
                if (g < 0) continue;
                for (int64_t d = 0; d < D; d++) p[d] += w->gsum[g * D + d];
                w->cnt[i] += w->pairs[2 * g + 1];
            } else if (home) {
                for (int64_t u = 0; u < w->V; u++)
                    for (int64_t d = 0; d < D; d++)
                        p[d] += w->x[(u * N + n) * D + d];
                w->cnt[i] += w->V;
            }
            if (!home) continue;
            for (int64_t d = 0; d < D; d++) p[d] -= w->x[i * D + d];
            w->cnt[i] -= 1;
        }
    }
}

static void drg_positives_reset(ss__drg *w) {
    if (!w->o.labels) return;
    memset(w->pos, 0, (size_t)(w->Ml * w->D) * sizeof(double));
    memset(w->cnt, 0, (size_t)w->Ml * sizeof(int64_t));
}

/* ---- a ring step: every tile of local rows x block rows -------------- */

/* One visiting block: rows B (V Nq, D), (W, L) rows wb, lb (backward). */
typedef struct {
    const float *B, *wb, *lb;
    int64_t Nq;
    int home;
} drg_block;

/* Work on the logit tile Tl (mi, nj) of local rows i0.. x block rows j0..;
 * scr: GEMM scratch of the calling thread. */
typedef void (*drg_tile_fn)(ss__drg *w, const drg_block *k, float *Tl,
                            float *scr, int64_t i0, int64_t mi, int64_t j0,
                            int64_t nj);

/* Runs fn on every tile, one thread per tile row (no shared writes), then
 * the positive sums (labels). */
static ss_status drg_step(ss__drg *w, int s, int64_t Nq, void *blk,
                          drg_tile_fn fn) {
    drg_block k = {drg_rows(w, blk), NULL, NULL, Nq, s == 0};
    if (w->backward) k.wb = k.B + w->Kmax * w->D, k.lb = k.wb + w->Kmax * w->S;
    int64_t T = DRG_TILE, nti = (w->Ml + T - 1) / T, Kq = w->V * Nq;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *Tl = w->tiles + (size_t)ss__dgc_thread_id() * w->stride;
        float *scr = Tl + T * T + w->D * DRG_LDT;
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t j0 = 0; j0 < Kq; j0 += T) {
            int64_t nj = min64(T, Kq - j0);
            drg_tile(Tl, w, k.B, i0, mi, j0, nj);
            fn(w, &k, Tl, scr, i0, mi, j0, nj);
        }
    }
    if (w->o.labels) drg_positives(w, s == 0, Nq, blk, k.B);
    return SS_OK;
}

/* ---- forward ------------------------------------------------------------ */

/* The tile's logits into the online (max, sum) of its rows and classes. */
static void drg_fwd_tile(ss__drg *w, const drg_block *k, float *Tl,
                         float *scr, int64_t i0, int64_t mi, int64_t j0,
                         int64_t nj) {
    int fixed = w->shift != -INFINITY;
    (void)scr;
    for (int64_t a = 0; a < mi; a++) {
        float *r = Tl + a * DRG_TILE;
        if (k->home) drg_mask(r, -INFINITY, w, i0 + a, j0, nj);
        for (int64_t b = 0, e; b < nj; b = e) {
            int u;
            e = drg_run(&u, w, k->Nq, j0, b, nj);
            int64_t x = (i0 + a) * w->S + u;
            drg_accumulate(w->mx + x, w->sm + x, r + b, e - b, fixed);
        }
    }
}

static ss_status drg_fwd_step(void *ctx, int s, int q, int64_t Nq,
                              void *blk) {
    (void)q;
    return drg_step(ctx, s, Nq, blk, drg_fwd_tile);
}

ss_status ss__drg_forward(float *L, ss__drg *w, const char *fn,
                          const ss_comm *c) {
    /* cosine: logits in [-sc, sc]; with 2 sc <= 40 the fixed shift sc
     * keeps every e^{s - sc} >= e^-40 in float */
    w->shift = w->o.cosine && 2.0 * w->o.scale <= DRG_FIXED_SHIFT_MAX
                   ? (double)w->o.scale : -INFINITY;
    for (int64_t e = 0; e < w->Ml * w->S; e++)
        w->mx[e] = w->shift, w->sm[e] = 0.0;
    drg_positives_reset(w);
    ss_status st = ss__dist_ring(c, fn, &w->blk[0], &w->blk[1], 0,
                                 w->blk_bytes, w->counts, drg_fwd_step, w);
    for (int64_t e = 0; st == SS_OK && e < w->Ml * w->S; e++)
        L[e] = w->sm[e] > 0.0 ? (float)(w->mx[e] + log(w->sm[e])) : -INFINITY;
    return st;
}

/* ---- backward ----------------------------------------------------------- */

/* Row a of the gradient tile in place over its logits r (nj): local row i
 * (class vi), block columns from j0, the block's (W, L) rows wb, lb. */
static void drg_grow(float *r, const ss__drg *w, int64_t i, int64_t Nq,
                     int64_t j0, int64_t nj, const float *wb,
                     const float *lb) {
    int64_t S = w->S, Ml = w->Ml;
    int vi = w->o.per_view ? (int)(i / w->N) : 0;
    const float *wi = w->wloc + i * S, *li = w->wloc + Ml * S + i * S;
    float sc = w->o.scale;
    for (int64_t b = 0, e; b < nj; b = e) {
        int u;
        e = drg_run(&u, w, Nq, j0, b, nj);
        float wr = wi[u], lr = li[u];
        for (int64_t t = b; t < e; t++) {
            int64_t k = (j0 + t) * S + vi;
            r[t] = sc * (wr * ss__vexp(r[t] - lr) +
                         wb[k] * ss__vexp(r[t] - lb[k]));
        }
    }
}

/* dx rows i0.. += the gradient tile (over the logits, in place) . B. */
static void drg_bwd_tile(ss__drg *w, const drg_block *k, float *Tl,
                         float *scr, int64_t i0, int64_t mi, int64_t j0,
                         int64_t nj) {
    int64_t T = DRG_TILE, D = w->D;
    for (int64_t a = 0; a < mi; a++) {
        drg_grow(Tl + a * T, w, i0 + a, k->Nq, j0, nj, k->wb, k->lb);
        if (k->home) drg_mask(Tl + a * T, 0.0f, w, i0 + a, j0, nj);
    }
    ss__tgemm(mi, D, nj, Tl, T, 1, k->B + j0 * D, D, 1, w->dx + i0 * D, D,
              scr);
}

static ss_status drg_bwd_step(void *ctx, int s, int q, int64_t Nq,
                              void *blk) {
    (void)q;
    return drg_step(ctx, s, Nq, blk, drg_bwd_tile);
}

ss_status ss__drg_backward(ss__drg *w, const float *Wl, const float *Ll,
                           const char *fn, const ss_comm *c) {
    int64_t n = w->Ml * w->S;
    float *wl = w->wloc, *ll = w->wloc + n;
    for (int64_t e = 0; e < n; e++) { /* an empty sum has no term */
        int empty = Ll[e] == -INFINITY;
        wl[e] = empty ? 0.0f : Wl[e], ll[e] = empty ? INFINITY : Ll[e];
    }
    float *b = drg_rows(w, w->blk[0]) + w->Kmax * w->D;
    memcpy(b, wl, (size_t)n * sizeof(float));
    memcpy(b + w->Kmax * w->S, ll, (size_t)n * sizeof(float));
    drg_positives_reset(w);
    return ss__dist_ring(c, fn, &w->blk[0], &w->blk[1], 0, w->blk_bytes,
                         w->counts, drg_bwd_step, w);
}
