/*
 * contrast.c - the tiled group-contrastive engine (see contrast.h).
 *
 * Walk: the upper-triangle tiles (I <= J) of X X^T, T rows each, handed out
 * dynamically to the threads. A tile is one GEMM S = X_I X_J^T; masked
 * entries (the diagonal, and same-group pairs when exclude_group) are set
 * to -INFINITY, so one exp yields both the row-i and the column-k term.
 *
 * Two ways to stabilise exp:
 *   fixed shift  logits are bounded by sh = |scale| max||x||^2, so
 *                e^{logit - sh} is in [e^{-2 sh}, 1]: one exp per entry,
 *                plain per-row sums, no max pass;
 *   online max   (bound too large) tile row / column maxima merged
 *                FlashAttention-style into per-thread (max, sum) pairs.
 * Per-thread statistics are merged in double at the end, so results depend
 * on the thread count only through summation order.
 */
#include "contrast.h"
#include "gemm.h"
#include "tgemm.h"
#include "vexp.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef _OPENMP
#define GC_PRAGMA(x) _Pragma(#x)
#define GC_SIMD _Pragma("omp simd")
#define GC_SIMD_SUM(v) GC_PRAGMA(omp simd reduction(+ : v))
#define GC_SIMD_MAX(v) GC_PRAGMA(omp simd reduction(max : v))
#else
#define GC_SIMD_MAX(v)
#define GC_SIMD
#define GC_SIMD_SUM(v)
#endif

/* ---- plan shared by forward and backward ------------------------------- */

typedef struct {
    int64_t T, nb, ntiles;
    int fixed;
    float shift[SS__GC_MAX_SCALES];
    int nth;
} gc_plan;

/* Tile t of the upper triangle in row-major order -> block pair I <= J.
 * Row I starts at off(I) = I nb - I (I - 1) / 2; invert, then fix rounding. */
static void gc_tile_ij(const gc_plan *pl, int64_t t, int64_t *I, int64_t *J) {
    int64_t nb = pl->nb;
    double b = 2.0 * (double)nb + 1.0;
    int64_t i = (int64_t)((b - sqrt(b * b - 8.0 * (double)t)) / 2.0);
    if (i < 0) i = 0;
    if (i > nb - 1) i = nb - 1;
    while (i > 0 && i * nb - i * (i - 1) / 2 > t) i--;
    while (i + 1 < nb && (i + 1) * nb - (i + 1) * i / 2 <= t) i++;
    *I = i;
    *J = i + (t - (i * nb - i * (i - 1) / 2));
}

static ss_status gc_plan_init(gc_plan *pl, const ss__gc *p) {
    pl->T = p->tile > 0 ? p->tile : SS__GC_TILE;
    if (pl->T > p->M) pl->T = p->M;
    pl->nb = (p->M + pl->T - 1) / pl->T;
    if (pl->nb > ((int64_t)1 << 30)) /* keeps nb (nb + 1) / 2 in int64 */
        return ss__fail(SS_ERR_SIZE, "ss__gc", "too many rows for the "
                        "pairwise engine: M = %lld", (long long)p->M);
    pl->ntiles = pl->nb * (pl->nb + 1) / 2;
    double maxsq = 0.0;
    for (int64_t i = 0; i < p->M; i++) {
        const float *xi = p->x + i * p->D;
        double s = 0.0;
        for (int64_t d = 0; d < p->D; d++) s += (double)xi[d] * xi[d];
        if (s > maxsq) maxsq = s;
    }
    pl->fixed = !p->force_online;
    for (int c = 0; c < p->nscales; c++) {
        double sh = fabs((double)p->scale[c]) * maxsq;
        pl->shift[c] = (float)sh;
        if (!(sh <= SS__GC_FIXED_SHIFT_MAX)) pl->fixed = 0;
    }
    int nth = ss__threads();
    pl->nth = nth < pl->ntiles ? nth : (int)pl->ntiles;
    if (pl->nth < 1) pl->nth = 1;
    return SS_OK;
}

#define GC_LDT(T) SS__TGEMM_LDT(T)

/* Floats of per-thread tile workspace beyond S: X_J^T and GEMM scratch. */
static int64_t gc_gemm_floats(const ss__gc *p, int64_t T) {
    int64_t k = p->D > T ? p->D : T;
    return p->D * GC_LDT(T) + ss__tgemm_scratch(k);
}

/* S = X_I X_J^T with masked entries set to -INFINITY. gw: gc_gemm_floats. */
static void gc_tile(float *S, float *gw, const ss__gc *p, const gc_plan *pl,
                    int64_t I, int64_t J, int64_t *ti, int64_t *tj) {
    int64_t T = pl->T, i0 = I * T, k0 = J * T, D = p->D;
    int64_t ni = p->M - i0 < T ? p->M - i0 : T;
    int64_t nk = p->M - k0 < T ? p->M - k0 : T;
    if (ss__tgemm_native()) {
        float *Bt = gw; /* X_J^T: (D, GC_LDT(T)) */
        ss__transpose(Bt, GC_LDT(T), p->x + k0 * D, nk, D);
        ss__tgemm(ni, nk, D, p->x + i0 * D, D, 1, Bt, GC_LDT(T), 0, S, T,
                  gw + D * GC_LDT(T));
    } else {
        ss__sgemm(0, 1, ni, nk, D, 1.0f, p->x + i0 * D, D, p->x + k0 * D, D,
                  0.0f, S, T);
    }
    if (I == J) /* strict upper triangle only: (k, i) is the same entry */
        for (int64_t r = 0; r < ni; r++)
            for (int64_t k = 0; k <= r; k++) S[r * T + k] = -INFINITY;
    if (p->exclude_group && p->group) {
        const int64_t *gk = p->group + k0;
        for (int64_t r = 0; r < ni; r++) {
            int64_t gi = p->group[i0 + r];
            float *s = S + r * T;
            GC_SIMD
            for (int64_t k = 0; k < nk; k++)
                s[k] = gk[k] == gi ? -INFINITY : s[k];
        }
    }
    *ti = ni;
    *tj = nk;
}

/* logit of a (possibly masked) entry: -inf stays -inf whatever the scale. */
static inline float gc_logit(float s, float sc) {
    return s == -INFINITY ? -INFINITY : sc * s;
}

/* ---- forward ------------------------------------------------------------- */

typedef struct {
    double *sum;  /* (nscales, M) sum of e^{logit - ref} */
    double *ref;  /* (nscales, M) online max (online mode only) */
    float *S;     /* (T, T) tile */
    float *colv;  /* (2, T) column max / sum of one tile */
    float *gw;    /* GEMM workspace, gc_gemm_floats */
} gc_fwd_ws;

static void merge_online(double *ref, double *sum, double m, double l) {
    if (l <= 0.0) return;
    if (m > *ref) {
        *sum = *sum * exp(*ref - m) + l;
        *ref = m;
    } else {
        *sum += l * exp(m - *ref);
    }
}

static void fwd_tile_fixed(gc_fwd_ws *w, const ss__gc *p, const gc_plan *pl,
                           int c, int64_t i0, int64_t k0, int64_t ni,
                           int64_t nk) {
    const float *S = w->S;
    float *col = w->colv, sc = p->scale[c], sh = pl->shift[c];
    double *sum = w->sum + (int64_t)c * p->M;
    for (int64_t k = 0; k < nk; k++) col[k] = 0.0f;
    for (int64_t r = 0; r < ni; r++) {
        const float *s = S + r * pl->T;
        float row = 0.0f;
        GC_SIMD_SUM(row)
        for (int64_t k = 0; k < nk; k++) {
            float e = ss__vexp(gc_logit(s[k], sc) - sh);
            row += e;
            col[k] += e;
        }
        sum[i0 + r] += row;
    }
    for (int64_t k = 0; k < nk; k++) sum[k0 + k] += col[k];
}

static void fwd_tile_online(gc_fwd_ws *w, const ss__gc *p, const gc_plan *pl,
                            int c, int64_t i0, int64_t k0, int64_t ni,
                            int64_t nk) {
    const float *S = w->S;
    float *cmax = w->colv, *csum = w->colv + pl->T, sc = p->scale[c];
    double *sum = w->sum + (int64_t)c * p->M, *ref = w->ref + (int64_t)c * p->M;
    for (int64_t k = 0; k < nk; k++) cmax[k] = -INFINITY, csum[k] = 0.0f;
    for (int64_t r = 0; r < ni; r++) {
        const float *s = S + r * pl->T;
        float m = -INFINITY;
        GC_SIMD_MAX(m)
        for (int64_t k = 0; k < nk; k++) {
            float v = gc_logit(s[k], sc);
            m = v > m ? v : m;
            cmax[k] = v > cmax[k] ? v : cmax[k];
        }
        if (m == -INFINITY) continue;
        float row = 0.0f;
        GC_SIMD_SUM(row)
        for (int64_t k = 0; k < nk; k++) row += ss__vexp(gc_logit(s[k], sc) - m);
        merge_online(ref + i0 + r, sum + i0 + r, m, row);
    }
    for (int64_t k = 0; k < nk; k++) /* all-masked column: keep -inf - 0 */
        cmax[k] = cmax[k] == -INFINITY ? 0.0f : cmax[k];
    for (int64_t r = 0; r < ni; r++) {
        const float *s = S + r * pl->T;
        GC_SIMD
        for (int64_t k = 0; k < nk; k++)
            csum[k] += ss__vexp(gc_logit(s[k], sc) - cmax[k]);
    }
    for (int64_t k = 0; k < nk; k++)
        merge_online(ref + k0 + k, sum + k0 + k, cmax[k], csum[k]);
}

static void fwd_merge(float *lse, gc_fwd_ws *ws, const ss__gc *p,
                      const gc_plan *pl) {
    int64_t n = (int64_t)p->nscales * p->M;
    for (int64_t j = 0; j < n; j++) {
        int c = (int)(j / p->M);
        double out;
        if (pl->fixed) {
            double s = 0.0;
            for (int t = 0; t < pl->nth; t++) s += ws[t].sum[j];
            out = s > 0.0 ? pl->shift[c] + log(s) : -INFINITY;
        } else {
            double m = -INFINITY, s = 0.0;
            for (int t = 0; t < pl->nth; t++)
                merge_online(&m, &s, ws[t].ref[j], ws[t].sum[j]);
            out = s > 0.0 ? m + log(s) : -INFINITY;
        }
        lse[j] = (float)out;
    }
}

ss_status ss__gc_forward(float *lse, const ss__gc *p) {
    gc_plan pl;
    SS_TRY(gc_plan_init(&pl, p));
    int64_t nsm = (int64_t)p->nscales * p->M;
    gc_fwd_ws ws[pl.nth];
    int ok = 1;
    for (int t = 0; t < pl.nth; t++) {
        ws[t].sum = ss__calloc((size_t)nsm * sizeof(double));
        ws[t].ref = pl.fixed ? NULL : ss__malloc((size_t)nsm * sizeof(double));
        int64_t nf = pl.T * pl.T + 2 * pl.T + gc_gemm_floats(p, pl.T);
        ws[t].S = ss__malloc((size_t)nf * sizeof(float));
        ws[t].colv = ws[t].S ? ws[t].S + pl.T * pl.T : NULL;
        ws[t].gw = ws[t].S ? ws[t].colv + 2 * pl.T : NULL;
        if (!ws[t].sum || !ws[t].S || (!pl.fixed && !ws[t].ref)) ok = 0;
        else if (!pl.fixed)
            for (int64_t j = 0; j < nsm; j++) ws[t].ref[j] = -INFINITY;
    }
    if (ok) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(pl.nth)
#endif
        for (int64_t t = 0; t < pl.ntiles; t++) {
#ifdef _OPENMP
            gc_fwd_ws *w = &ws[omp_get_thread_num()];
#else
            gc_fwd_ws *w = &ws[0];
#endif
            int64_t I, J, ni, nk;
            gc_tile_ij(&pl, t, &I, &J);
            gc_tile(w->S, w->gw, p, &pl, I, J, &ni, &nk);
            for (int c = 0; c < p->nscales; c++) {
                if (pl.fixed)
                    fwd_tile_fixed(w, p, &pl, c, I * pl.T, J * pl.T, ni, nk);
                else
                    fwd_tile_online(w, p, &pl, c, I * pl.T, J * pl.T, ni, nk);
            }
        }
        fwd_merge(lse, ws, p, &pl);
    }
    for (int t = 0; t < pl.nth; t++) {
        ss__free(ws[t].sum);
        ss__free(ws[t].ref);
        ss__free(ws[t].S);
    }
    if (!ok)
        return ss__fail(SS_ERR_NOMEM, "ss__gc_forward",
                        "no memory for the workspace (M = %lld)",
                        (long long)p->M);
    return SS_OK;
}

/* ---- backward ------------------------------------------------------------ */
/*
 * G_ik = sum_c scale_c (w_ci P_ik + w_ck P_ki) on one tile, then
 * dX_I += G X_J and dX_J += G^T X_I. Fixed shift: P_ik = E_ik a_i with
 * E = e^{logit - sh} (one exp for both terms) and a_i = e^{sh - lse_i}.
 * Online: two exps, e^{logit - lse_i} and e^{logit - lse_k}.
 */

typedef struct {
    float *coef; /* (nscales, M): a_i (fixed) or w_i (online) */
    float *lse;  /* (nscales, M): lse with -inf replaced by 0 (online) */
} gc_bwd_rows;

static void bwd_tile_g(float *G, const float *S, const gc_bwd_rows *rw,
                       const ss__gc *p, const gc_plan *pl, int64_t i0,
                       int64_t k0, int64_t ni, int64_t nk) {
    int64_t T = pl->T;
    for (int c = 0; c < p->nscales; c++) {
        const float *a = rw->coef + (int64_t)c * p->M;
        const float *l = rw->lse + (int64_t)c * p->M;
        float sc = p->scale[c], sh = pl->shift[c];
        for (int64_t r = 0; r < ni; r++) {
            const float *s = S + r * T;
            float *g = G + r * T;
            float ai = a[i0 + r], li = l[i0 + r];
            const float *ak = a + k0, *lk = l + k0;
            if (pl->fixed) {
                if (c == 0) {
                    GC_SIMD
                    for (int64_t k = 0; k < nk; k++)
                        g[k] = sc * ss__vexp(gc_logit(s[k], sc) - sh) *
                               (ai + ak[k]);
                } else {
                    GC_SIMD
                    for (int64_t k = 0; k < nk; k++)
                        g[k] += sc * ss__vexp(gc_logit(s[k], sc) - sh) *
                                (ai + ak[k]);
                }
            } else {
                if (c == 0) {
                    GC_SIMD
                    for (int64_t k = 0; k < nk; k++) {
                        float v = gc_logit(s[k], sc);
                        g[k] = sc * (ai * ss__vexp(v - li) +
                                     ak[k] * ss__vexp(v - lk[k]));
                    }
                } else {
                    GC_SIMD
                    for (int64_t k = 0; k < nk; k++) {
                        float v = gc_logit(s[k], sc);
                        g[k] += sc * (ai * ss__vexp(v - li) +
                                      ak[k] * ss__vexp(v - lk[k]));
                    }
                }
            }
        }
    }
}

static ss_status bwd_rows_init(gc_bwd_rows *rw, const float *w,
                               const float *lse, const ss__gc *p,
                               const gc_plan *pl) {
    int64_t n = (int64_t)p->nscales * p->M;
    rw->coef = ss__malloc((size_t)n * 2 * sizeof(float));
    if (!rw->coef) return SS_ERR_NOMEM;
    rw->lse = rw->coef + n;
    for (int64_t j = 0; j < n; j++) {
        int c = (int)(j / p->M);
        int live = lse[j] > -INFINITY && w[j] != 0.0f;
        rw->lse[j] = live ? lse[j] : 0.0f;
        if (!live)
            rw->coef[j] = 0.0f;
        else if (pl->fixed) /* sh - lse <= 2 sh: e^{...} stays finite */
            rw->coef[j] = (float)(w[j] * exp((double)pl->shift[c] - lse[j]));
        else
            rw->coef[j] = w[j];
    }
    return SS_OK;
}

ss_status ss__gc_backward(float *dx, const float *w, const float *lse,
                          const ss__gc *p) {
    gc_plan pl;
    SS_TRY(gc_plan_init(&pl, p));
    gc_bwd_rows rw = {NULL, NULL};
    int64_t T = pl.T, MD = p->M * p->D;
    int sep = p->nscales > 1; /* G needs its own buffer when S is reused */
    float *S[pl.nth], *dxt[pl.nth];
    int ok = bwd_rows_init(&rw, w, lse, p, &pl) == SS_OK;
    for (int t = 0; t < pl.nth; t++) {
        int64_t nf = T * T * (sep ? 2 : 1) + gc_gemm_floats(p, T);
        S[t] = ss__malloc((size_t)nf * sizeof(float));
        /* thread 0 accumulates straight into dx; the others privately */
        dxt[t] = t == 0 ? dx : ss__calloc((size_t)MD * sizeof(float));
        if (!S[t] || !dxt[t]) ok = 0;
    }
    if (ok) {
#ifdef _OPENMP
#pragma omp parallel num_threads(pl.nth)
#endif
        {
#ifdef _OPENMP
            int tid = omp_get_thread_num();
#else
            int tid = 0;
#endif
            float *St = S[tid], *G = sep ? S[tid] + T * T : S[tid];
            float *gw = S[tid] + T * T * (sep ? 2 : 1);
            float *d = dxt[tid];
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t t = 0; t < pl.ntiles; t++) {
                int64_t I, J, ni, nk;
                gc_tile_ij(&pl, t, &I, &J);
                int64_t i0 = I * T, k0 = J * T;
                gc_tile(St, gw, p, &pl, I, J, &ni, &nk);
                bwd_tile_g(G, St, &rw, p, &pl, i0, k0, ni, nk);
                int64_t D = p->D;
                const float *xi = p->x + i0 * D, *xk = p->x + k0 * D;
                float *scr = gw + D * GC_LDT(T);
                /* dX_I += G X_J, dX_J += G^T X_I */
                ss__tgemm(ni, D, nk, G, T, 1, xk, D, 1, d + i0 * D, D, scr);
                ss__tgemm(nk, D, ni, G, 1, T, xi, D, 1, d + k0 * D, D, scr);
            }
            /* implicit barrier; then fold the private buffers into dx */
            if (pl.nth > 1) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int64_t j = 0; j < MD; j++) {
                    float s = 0.0f;
                    for (int u = 1; u < pl.nth; u++) s += dxt[u][j];
                    dx[j] += s;
                }
            }
        }
    }
    for (int t = 0; t < pl.nth; t++) {
        ss__free(S[t]);
        if (t > 0) ss__free(dxt[t]);
    }
    ss__free(rw.coef);
    if (!ok)
        return ss__fail(SS_ERR_NOMEM, "ss__gc_backward",
                        "no memory for the workspace (M = %lld, D = %lld)",
                        (long long)p->M, (long long)p->D);
    return SS_OK;
}

ss_status ss__gc_check_temperature(const char *fn, float t) {
    SS_TRY(ss__check_positive(fn, "temperature", t));
    if (!isfinite(1.0f / t))
        return ss__fail(SS_ERR_PARAM, fn,
                        "temperature must be >= 1/FLT_MAX, got %g", (double)t);
    return SS_OK;
}

ss_status ss__gc_check_logit_bound(const char *fn, const float *z, int64_t M,
                                   int64_t D, float t, int cosine) {
    double maxsq = cosine ? 1.0 : 0.0;
    for (int64_t i = 0; i < M && !cosine; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++)
            s += (double)z[i * D + d] * z[i * D + d];
        if (s > maxsq) maxsq = s;
    }
    if (maxsq / t <= SS__GC_MAX_LOGIT) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn,
                    "logits overflow float32: max ||x||^2 / temperature = %g "
                    "> %g",
                    maxsq / t, SS__GC_MAX_LOGIT);
}
