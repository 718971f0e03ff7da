/*
 * dist_gc.c - the all-gather group-contrast engine (dist_gc.h).
 *
 * Tiles: 256 local rows x 256 gathered columns, one ss__tgemm each. The
 * classes of the gathered rows are constant on runs (a rank's block is V
 * runs of N_q rows), so each tile is split into runs once and every row
 * reduces run by run. Exps: ss__vexp, with the fixed shift sc * max||x||^2
 * when 2 sc max||x||^2 <= 40 (then e^{s - shift} stays in [e^-40, 1]; no
 * running max), else an online max per (row, scale, class).
 */
#include "dist_gc.h"
#include "kernels/norm.h"
#include "kernels/tgemm.h"
#include "kernels/vexp.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define DGC_FIXED_SHIFT_MAX 40.0

#ifdef _OPENMP
#define DGC_PRAGMA(x) _Pragma(#x)
#define DGC_SIMD_SUM(v) DGC_PRAGMA(omp simd reduction(+ : v))
#define DGC_SIMD _Pragma("omp simd")
#else
#define DGC_SIMD_SUM(v)
#define DGC_SIMD
#endif

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void ss__dgc_free(ss__dgc *w) {
    ss__free(w->xbuf), ss__free(w->inv), ss__free(w->xall);
    ss__free(w->xallT), ss__free(w->smp_all);
    ss__free(w->cls_loc), ss__free(w->cls_all), ss__free(w->counts);
    ss__free(w->bytes), ss__free(w->tiles), ss__free(w->stats);
    memset(w, 0, sizeof *w);
}

/* Samples and classes of the gathered rows (rank blocks) and the local. */
static void dgc_labels(ss__dgc *w, int size) {
    int64_t k = 0, off = 0;
    for (int q = 0; q < size; q++) {
        int64_t Nq = w->counts[q];
        for (int64_t v = 0; v < w->V; v++)
            for (int64_t n = 0; n < Nq; n++, k++) {
                w->smp_all[k] = off + n;
                w->cls_all[k] = w->o.per_view ? (int32_t)v : 0;
            }
        off += Nq;
    }
    for (int64_t i = 0; i < w->Ml; i++)
        w->cls_loc[i] = w->cls_all[w->self0 + i];
}

static ss_status dgc_alloc(ss__dgc *w, const char *fn) {
    int64_t M = w->M, D = w->D, Ml = w->Ml, T = SS__DGC_TILE;
    if (ss__check_product(fn, w->V, w->Ntot, D) != SS_OK) return SS_ERR_SIZE;
    if (w->o.cosine) {
        w->xbuf = ss__malloc((size_t)(Ml * D) * sizeof(float));
        w->inv = ss__malloc((size_t)Ml * sizeof(float));
    }
    w->xall = ss__malloc((size_t)(M * D) * sizeof(float));
    w->xallT = ss__malloc((size_t)(M * D) * sizeof(float));
    w->smp_all = ss__malloc((size_t)M * sizeof(int64_t));
    w->cls_all = ss__malloc((size_t)M * sizeof(int32_t));
    w->cls_loc = ss__malloc((size_t)Ml * sizeof(int32_t));
    int64_t scr = ss__tgemm_scratch(D > T ? D : T);
    w->stride = 2 * T * T + scr;
    w->tiles = ss__malloc((size_t)(w->nthreads * w->stride) * sizeof(float));
    w->stats = ss__malloc((size_t)(w->nthreads * 2 * T * w->S) *
                          sizeof(double));
    if ((w->o.cosine && (!w->xbuf || !w->inv)) || !w->xall || !w->xallT ||
        !w->smp_all || !w->cls_all || !w->cls_loc || !w->tiles || !w->stats)
        return ss__fail(SS_ERR_NOMEM, fn, "no memory for the %lld x %lld "
                        "gathered rows", (long long)M, (long long)D);
    return SS_OK;
}

ss_status ss__dgc_agree(const ss_comm *c, const char *fn, ss_status st,
                        const double *vals, const char *const *names, int nv,
                        int64_t N, int64_t **counts, int64_t *off,
                        int64_t *Ntot) {
    *counts = ss__malloc((size_t)c->size * sizeof(int64_t));
    if (st == SS_OK && !*counts)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    int64_t dummy[1];
    *off = 0, *Ntot = 0;
    st = ss__dist_agree(c, fn, st, vals, names, nv, N,
                        *counts ? *counts : dummy, off, Ntot);
    if (st != SS_OK) ss__free(*counts), *counts = NULL;
    return st;
}

ss_status ss__dgc_setup(ss__dgc *w, const char *fn, ss_status st,
                        const float *z, int64_t V, int64_t N, int64_t D,
                        const ss__dgc_opts *o, const double *vals,
                        const char *const *names, int nv, const ss_comm *c) {
    memset(w, 0, sizeof *w);
    w->bytes = ss__malloc((size_t)c->size * sizeof(int64_t));
    if (st == SS_OK && !w->bytes)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    int64_t off = 0, Ntot = 0;
    st = ss__dgc_agree(c, fn, st, vals, names, nv, N, &w->counts, &off,
                       &Ntot);
    if (st != SS_OK) {
        ss__dgc_free(w);
        return st;
    }
    w->o = *o;
    w->V = V, w->N = N, w->D = D, w->Ml = V * N, w->Ntot = Ntot;
    w->M = V * Ntot, w->off = off, w->self0 = V * off;
    w->nclass = o->per_view ? (int)V : 1;
    w->S = o->nscales * w->nclass;
    w->nthreads = ss__threads();
    st = ss__dist_status(c, fn, dgc_alloc(w, fn));
    if (st == SS_OK) {
        if (o->cosine) ss__normalize_rows(w->xbuf, w->inv, z, w->Ml, D);
        w->x = o->cosine ? w->xbuf : z;
        st = ss__dist_allgather_rows(c, fn, w->x, w->xall, w->counts, V * D,
                                     sizeof(float), w->bytes);
    }
    if (st == SS_OK) {
        ss__transpose(w->xallT, w->M, w->xall, w->M, D);
        dgc_labels(w, c->size);
    } else {
        ss__dgc_free(w);
    }
    return st;
}

/* ---- tiles -------------------------------------------------------------- */

/* Runs of constant class among gathered columns [j0, j0 + nj): run r is
 * columns [rb[r], rb[r + 1]) of class ru[r]. Returns the run count. */
static int64_t dgc_runs(int64_t *rb, int32_t *ru, const ss__dgc *w,
                        int64_t j0, int64_t nj) {
    int64_t nr = 0;
    for (int64_t b = 0; b < nj; b++)
        if (b == 0 || w->cls_all[j0 + b] != w->cls_all[j0 + b - 1])
            rb[nr] = b, ru[nr++] = w->cls_all[j0 + b];
    rb[nr] = nj;
    return nr;
}

/* Sets row[b] = val at the tile columns b in [0, nj) excluded for local
 * row i: the row itself, or every view of its sample (all in this rank's
 * block, at self0 + u N + n). */
static void dgc_mask(float *row, float val, const ss__dgc *w, int64_t i,
                     int64_t j0, int64_t nj) {
    int64_t n = i % w->N, u0 = w->o.same_sample ? 0 : i / w->N;
    int64_t u1 = w->o.same_sample ? w->V : u0 + 1;
    for (int64_t u = u0; u < u1; u++) {
        int64_t b = w->self0 + u * w->N + n - j0;
        if (b >= 0 && b < nj) row[b] = val;
    }
}

/* S (mi, nj), row stride T = local rows [i0, i0 + mi) . gathered [j0, ..). */
static void dgc_dots(float *S, float *scratch, const ss__dgc *w, int64_t i0,
                     int64_t mi, int64_t j0, int64_t nj) {
    ss__tgemm(mi, nj, w->D, w->x + i0 * w->D, w->D, 1, w->xallT + j0, w->M,
              0, S, SS__DGC_TILE, scratch);
}

/* sc * max_k ||x_k||^2 per scale, or 0 where the online max is needed. */
static void dgc_shifts(double *shift, const ss__dgc *w) {
    double mx = 0.0;
    for (int64_t k = 0; k < w->M && !w->o.cosine; k++) {
        double s = 0.0;
        for (int64_t d = 0; d < w->D; d++)
            s += (double)w->xall[k * w->D + d] * w->xall[k * w->D + d];
        if (s > mx) mx = s;
    }
    if (w->o.cosine) mx = 1.0;
    for (int c = 0; c < w->o.nscales; c++) {
        double b = mx * w->o.scale[c];
        shift[c] = 2.0 * b <= DGC_FIXED_SHIFT_MAX && b > 0.0 ? b : 0.0;
    }
}

/* One run of scaled logits into a (max, sum) state. */
static void dgc_accumulate(double *mx, double *sm, const float *s, int64_t n,
                           float sc, double shift) {
    double m = *mx;
    if (shift == 0.0) {
        for (int64_t b = 0; b < n; b++)
            if (s[b] * sc > m) m = s[b] * sc;
        if (m == -INFINITY) return;
    }
    float mf = (float)m, acc = 0.0f;
    DGC_SIMD_SUM(acc)
    for (int64_t b = 0; b < n; b++) acc += ss__vexp(s[b] * sc - mf);
    double prev = shift != 0.0 || *mx == -INFINITY ? *sm : *sm * exp(*mx - m);
    *mx = m, *sm = prev + (double)acc;
}

void ss__dgc_lse(float *L, const ss__dgc *w) {
    int64_t T = SS__DGC_TILE, nti = (w->Ml + T - 1) / T, S = w->S;
    int nc = w->nclass, ns = w->o.nscales;
    double shift[2] = {0.0, 0.0};
    dgc_shifts(shift, w);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        int tid = ss__dgc_thread_id();
        float *St = w->tiles + (size_t)tid * w->stride;
        float *scratch = St + 2 * T * T;
        double *mx = w->stats + (size_t)tid * 2 * T * S, *sm = mx + T * S;
        int64_t rb[SS__DGC_TILE + 1];
        int32_t ru[SS__DGC_TILE];
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t a = 0; a < mi; a++)
            for (int64_t e = 0; e < S; e++)
                mx[a * S + e] = shift[e / nc] != 0.0 ? shift[e / nc]
                                                      : -INFINITY,
                sm[a * S + e] = 0.0;
        for (int64_t j0 = 0; j0 < w->M; j0 += T) {
            int64_t nj = min64(T, w->M - j0);
            dgc_dots(St, scratch, w, i0, mi, j0, nj);
            int64_t nr = dgc_runs(rb, ru, w, j0, nj);
            for (int64_t a = 0; a < mi; a++) {
                float *s = St + a * T;
                dgc_mask(s, -INFINITY, w, i0 + a, j0, nj);
                for (int c = 0; c < ns; c++)
                    for (int64_t r = 0; r < nr; r++) {
                        int64_t e = a * S + c * nc + ru[r];
                        dgc_accumulate(mx + e, sm + e, s + rb[r],
                                       rb[r + 1] - rb[r], w->o.scale[c],
                                       shift[c]);
                    }
            }
        }
        for (int64_t e = 0; e < mi * S; e++)
            L[i0 * S + e] = sm[e] > 0.0 ? (float)(mx[e] + log(sm[e]))
                                        : -INFINITY;
    }
}

ss_status ss__dgc_stats(float **out, const char *fn, const ss_comm *c,
                        const ss__dgc *w, const float *Wl, const float *Ll) {
    int64_t S = w->S, M = w->M;
    float *all = ss__malloc((size_t)(2 * S * M) * sizeof(float));
    float *tmp = ss__malloc((size_t)(S * M) * sizeof(float));
    ss_status st = all && tmp ? SS_OK
                              : ss__fail(SS_ERR_NOMEM, fn, "no memory for "
                                         "%lld statistics", (long long)(S * M));
    st = ss__dist_status(c, fn, st);
    float *WT = all, *LT = all ? all + S * M : NULL;
    for (int pass = 0; pass < 2 && st == SS_OK; pass++) {
        st = ss__dist_allgather_rows(c, fn, pass ? Ll : Wl, tmp, w->counts,
                                     w->V * S, sizeof(float), w->bytes);
        float *dst = pass ? LT : WT;
        for (int64_t k = 0; st == SS_OK && k < M; k++)
            for (int64_t e = 0; e < S; e++) dst[e * M + k] = tmp[k * S + e];
    }
    for (int64_t e = 0; st == SS_OK && e < S * M; e++)
        if (LT[e] == -INFINITY) LT[e] = INFINITY, WT[e] = 0.0f;
    ss__free(tmp);
    if (st != SS_OK) ss__free(all), all = NULL;
    *out = all;
    return st;
}

/* g[b] (+)= sc (wr e^{sc s_b - lr} + wc_b e^{sc s_b - lc_b}), b < n. */
static void dgc_grow_run(float *g, const float *s, int64_t n, float sc,
                         float wr, float lr, const float *wc, const float *lc,
                         int add) {
    if (add) {
        DGC_SIMD
        for (int64_t b = 0; b < n; b++)
            g[b] += sc * (wr * ss__vexp(s[b] * sc - lr) +
                          wc[b] * ss__vexp(s[b] * sc - lc[b]));
    } else {
        DGC_SIMD
        for (int64_t b = 0; b < n; b++)
            g[b] = sc * (wr * ss__vexp(s[b] * sc - lr) +
                         wc[b] * ss__vexp(s[b] * sc - lc[b]));
    }
}

/* G row (nj) for local row i: sum_c sc_c (W[i,c,u_k] e^{sc_c s - L[i,c,u_k]}
 * + W[k,c,v_i] e^{sc_c s - L[k,c,v_i]}), 0 at the excluded columns. */
static void dgc_grow(float *g, const float *s, const ss__dgc *w,
                     const float *wl, int64_t i, int64_t j0, int64_t nj,
                     const int64_t *rb, const int32_t *ru, int64_t nr) {
    int64_t M = w->M, S = w->S, nc = w->nclass, gi = w->self0 + i;
    const float *WT = wl, *LT = wl + S * M;
    for (int c = 0; c < w->o.nscales; c++) {
        float sc = w->o.scale[c];
        int64_t ec = (c * nc + w->cls_loc[i]) * M + j0;
        const float *wc = WT + ec, *lc = LT + ec;
        for (int64_t r = 0; r < nr; r++) {
            int64_t er = (c * nc + ru[r]) * M + gi;
            dgc_grow_run(g + rb[r], s + rb[r], rb[r + 1] - rb[r], sc,
                         WT[er], LT[er], wc + rb[r], lc + rb[r], c > 0);
        }
    }
    dgc_mask(g, 0.0f, w, i, j0, nj);
}

void ss__dgc_grad(float *dx, const float *wl, const ss__dgc *w) {
    int64_t T = SS__DGC_TILE, nti = (w->Ml + T - 1) / T, D = w->D;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *St = w->tiles + (size_t)ss__dgc_thread_id() * w->stride;
        float *scratch = St + 2 * T * T;
        /* one scale: G over the dots in place (each entry reads only its
         * own dot); two: the second tile keeps the dots for scale 2 */
        float *G = w->o.nscales == 1 ? St : St + T * T;
        int64_t rb[SS__DGC_TILE + 1];
        int32_t ru[SS__DGC_TILE];
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t j0 = 0; j0 < w->M; j0 += T) {
            int64_t nj = min64(T, w->M - j0);
            dgc_dots(St, scratch, w, i0, mi, j0, nj);
            int64_t nr = dgc_runs(rb, ru, w, j0, nj);
            for (int64_t a = 0; a < mi; a++)
                dgc_grow(G + a * T, St + a * T, w, wl, i0 + a, j0, nj, rb, ru,
                         nr);
            ss__tgemm(mi, D, nj, G, T, 1, w->xall + j0 * D, D, 1,
                      dx + i0 * D, D, scratch);
        }
    }
}
