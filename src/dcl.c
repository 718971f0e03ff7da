/*
 * dcl.c - decoupled contrastive loss, DCL and DCLW (Yeh et al. 2021), as
 * lightly's DCLLoss / DCLWLoss.
 *
 * lightly sums two log-sum-exps per anchor, one over the other samples of
 * the anchor's own view and one over the other samples of the other view.
 * Their denominators are "same view minus self" and "other view minus the
 * positive", which are not complements of a grouping, so the group engine
 * (kernels/contrast.h) cannot form them; this file walks the (view, view)
 * blocks of the similarity matrix itself. Block (v, u) holds
 * s_nj = <x_vn, x_uj> / temperature and its diagonal j = n is masked.
 *
 *     lse[v, u, n] = LSE_{j != n} s((v, n), (u, j))            (V, V, N)
 *
 * Forward: one thread per (v, u, row tile) reduces its rows over every column
 * tile. Backward: one thread per (v, row tile) owns dx rows (v, n) and adds,
 * for every block (v, u), the row term w[v,u] P^{vu}_nj and the column term
 * w[u,v] P^{uv}_jn (s is symmetric), so no two threads write the same row
 * and the result does not depend on the thread count. As in the engine,
 * tiles go through ss__tgemm (x^T is formed once per call), exp is
 * vectorised, and a fixed shift scale * max||x||^2 replaces the online max
 * when the logit range allows it. Each block is formed twice (as (v, u) and
 * as (u, v)): about 2x the engine's forward and 4/3 its backward GEMM work.
 *
 * joint_negatives (the paper's single log-sum-exp over all other samples)
 * is exactly the engine's exclude_group = 1 with groups = samples, and uses
 * it.
 */
#include "internal.h"
#include "kernels/contrast.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/tgemm.h"
#include "kernels/vexp.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows per tile: a tile of similarities is DCL_TILE^2 floats per thread. */
#define DCL_TILE 64

/* For the tests' awkward sizes (tile - 1, tile, tile + 1). */
int64_t ss__dcl_tile(void);
int64_t ss__dcl_tile(void) { return DCL_TILE; }

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#ifdef _OPENMP
#define DCL_PRAGMA(x) _Pragma(#x)
#define DCL_SIMD_SUM(v) DCL_PRAGMA(omp simd reduction(+ : v))
#define DCL_SIMD _Pragma("omp simd")
#else
#define DCL_SIMD_SUM(v)
#define DCL_SIMD
#endif

/* The fixed shift scale * max||x||^2 replaces the online max when the
 * logit range [-2 shift, 0] stays inside float exp's normal range. */
#define DCL_FIXED_SHIFT_MAX 40.0

typedef struct {
    const float *x; /* (V, N, D), normalised when cosine */
    int64_t V, N, D;
    float scale;     /* 1 / temperature */
    float shift;     /* fixed exp shift, or 0 for the online max */
    const float *xt; /* (D, V * N) = x^T for ss__tgemm, or NULL */
    int nthreads;
    float *ws; /* nthreads * ws_floats(D) */
} dcl_problem;

/* Per-thread workspace: the similarity tile S (T, T), scratch for
 * ss__tgemm, the row statistics. */
typedef struct {
    float *S, *scratch;
    double *mx, *sm; /* (T) running max and sum per tile row */
} dcl_ws;

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

static int64_t ws_floats(int64_t D) {
    const int64_t T = DCL_TILE, k = D > T ? D : T;
    return round16(T * T) + round16(ss__tgemm_scratch(k)) + round16(4 * T);
}

static dcl_ws ws_of(const dcl_problem *p) {
    const int64_t T = DCL_TILE, D = p->D;
    dcl_ws w;
    w.S = p->ws + (int64_t)thread_id() * ws_floats(D);
    w.scratch = w.S + round16(T * T);
    w.mx = (double *)(w.scratch + round16(ss__tgemm_scratch(D > T ? D : T)));
    w.sm = w.mx + T;
    return w;
}

static const float *row_of(const dcl_problem *p, int64_t v, int64_t n) {
    return p->x + (v * p->N + n) * p->D;
}

/* S (tr, tc), row stride tc = X_v[r0 :] X_u[c0 :]^T (dot products, not yet
 * scaled), with the masked diagonal j = n set to -INFINITY. */
static void tile_dots(const dcl_ws *w, const dcl_problem *p, int64_t v,
                      int64_t r0, int64_t tr, int64_t u, int64_t c0,
                      int64_t tc) {
    const int64_t D = p->D;
    if (p->xt) {
        ss__tgemm(tr, tc, D, row_of(p, v, r0), D, 1, p->xt + u * p->N + c0,
                  p->V * p->N, 0, w->S, tc, w->scratch);
    } else {
        ss__sgemm(0, 1, tr, tc, D, 1.0f, row_of(p, v, r0), D, row_of(p, u, c0),
                  D, 0.0f, w->S, tc);
    }
    for (int64_t i = 0; i < tr; i++)
        if (r0 + i >= c0 && r0 + i < c0 + tc)
            w->S[i * tc + r0 + i - c0] = -INFINITY;
}

/* dx[v, r0 :] (tr, D) += S (tr, tc) X_u[c0 :] (tc, D). */
static void tile_update(float *dx, const dcl_ws *w, const dcl_problem *p,
                        int64_t v, int64_t r0, int64_t tr, int64_t u,
                        int64_t c0, int64_t tc) {
    const int64_t D = p->D;
    float *out = dx + (v * p->N + r0) * D;
    if (p->xt)
        ss__tgemm(tr, D, tc, w->S, tc, 1, row_of(p, u, c0), D, 1, out, D,
                  w->scratch);
    else
        ss__sgemm(0, 0, tr, D, tc, 1.0f, w->S, tc, row_of(p, u, c0), D, 1.0f,
                  out, D);
}

/* One tile row of dot products into the row's log-sum-exp state: with the
 * fixed shift, sm += sum_j e^{scale s_j - shift}; else online (mx, sm). */
static void lse_accumulate(double *mx, double *sm, const float *row, int64_t tc,
                           const dcl_problem *p) {
    const float sc = p->scale;
    float m = p->shift, s = 0.0f;
    if (m == 0.0f) {
        m = -INFINITY;
        for (int64_t j = 0; j < tc; j++) m = row[j] * sc > m ? row[j] * sc : m;
        if (m == -INFINITY) return; /* fully masked */
        if (m > *mx) {
            *sm *= exp(*mx - m);
            *mx = m;
        }
        m = (float)*mx;
    }
    DCL_SIMD_SUM(s)
    for (int64_t j = 0; j < tc; j++) s += ss__vexp(row[j] * sc - m);
    *sm += s;
}

/* lse: (V, V, N), see the file comment. */
static void dcl_lse_forward(float *lse, const dcl_problem *p) {
    const int64_t V = p->V, N = p->N, T = DCL_TILE;
    const int64_t nt = (N + T - 1) / T, items = V * V * nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(p->nthreads)
#endif
    {
        const dcl_ws w = ws_of(p);
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (int64_t it = 0; it < items; it++) {
            int64_t v = it / (V * nt), u = it / nt % V, r0 = it % nt * T;
            int64_t tr = min64(T, N - r0);
            for (int64_t i = 0; i < tr; i++)
                w.mx[i] = p->shift != 0.0f ? p->shift : -INFINITY, w.sm[i] = 0;
            for (int64_t c0 = 0; c0 < N; c0 += T) {
                int64_t tc = min64(T, N - c0);
                tile_dots(&w, p, v, r0, tr, u, c0, tc);
                for (int64_t i = 0; i < tr; i++)
                    lse_accumulate(&w.mx[i], &w.sm[i], w.S + i * tc, tc, p);
            }
            float *out = lse + (v * V + u) * N + r0;
            for (int64_t i = 0; i < tr; i++)
                out[i] =
                    w.sm[i] > 0.0 ? (float)(w.mx[i] + log(w.sm[i])) : -INFINITY;
        }
    }
}

/* dx: (V, N, D) += d/dx sum_{v,u,n} w[v,u] lse[v,u,n]. w: (V, V), one weight
 * per block. Needs N >= 2 (every lse finite). */
static void dcl_lse_backward(float *dx, const float *w, const float *lse,
                             const dcl_problem *p) {
    const int64_t V = p->V, N = p->N, T = DCL_TILE;
    const int64_t nt = (N + T - 1) / T, items = V * nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(p->nthreads)
#endif
    {
        const dcl_ws ws = ws_of(p);
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (int64_t it = 0; it < items; it++) {
            int64_t v = it / nt, r0 = it % nt * T, tr = min64(T, N - r0);
            for (int64_t u = 0; u < V; u++) {
                /* scale folded into the weights: d s / d x = x' * scale */
                const float wr = w[v * V + u] * p->scale;
                const float wc = w[u * V + v] * p->scale;
                const float *lr = lse + (v * V + u) * N,
                            *lc = lse + (u * V + v) * N;
                for (int64_t c0 = 0; c0 < N; c0 += T) {
                    int64_t tc = min64(T, N - c0);
                    tile_dots(&ws, p, v, r0, tr, u, c0, tc);
                    const float sc = p->scale, *lcc = lc + c0;
                    for (int64_t i = 0; i < tr; i++) {
                        float *row = ws.S + i * tc, li = lr[r0 + i];
                        DCL_SIMD
                        for (int64_t j = 0; j < tc;
                             j++) /* masked: e^-inf = 0 */
                            row[j] = wr * ss__vexp(row[j] * sc - li) +
                                     wc * ss__vexp(row[j] * sc - lcc[j]);
                    }
                    tile_update(dx, &ws, p, v, r0, tr, u, c0, tc);
                }
            }
        }
    }
}

/* ---- options, checks and weights ----------------------------------------- */

/* Cache: a header naming the call that wrote it, padded to 64 bytes, then
 * lse (V, V, N) floats, or (M) when joint. */
#define DCL_MAGIC 0x31304c4344535353ull /* "SSSDCL01" */
#define HEADER_BYTES 64

typedef struct {
    uint64_t magic;
    int64_t V, N, D;
    float temperature, sigma;
    int32_t weighted, cosine, joint;
} dcl_header;

ss_dcl_opts ss_dcl_defaults(void) {
    ss_dcl_opts o = {0.1f, 0, 0.5f, 1, 0};
    return o;
}

ss_dcl_opts ss_dclw_defaults(void) {
    ss_dcl_opts o = ss_dcl_defaults();
    o.weighted = 1;
    return o;
}

static ss_status check_sizes(const char *fn, int64_t V, int64_t N, int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 2)); /* N = 1 leaves no negative */
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, V, N, D));
    return ss__check_product(fn, V, V, N); /* the cache */
}

static ss_status check_call(const char *fn, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_dcl_opts *o) {
    SS_TRY(check_sizes(fn, V, N, D));
    SS_TRY(ss__gc_check_temperature(fn, o->temperature));
    if (o->weighted) {
        SS_TRY(ss__check_positive(fn, "sigma", o->sigma));
        if (V != 2)
            return ss__fail(SS_ERR_PARAM, fn,
                            "weighted (DCLW) needs V = 2 views, got V = %lld",
                            (long long)V);
    }
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    return ss__gc_check_logit_bound(fn, z, V * N, D, o->temperature, o->cosine);
}

static dcl_header make_header(int64_t V, int64_t N, int64_t D,
                              const ss_dcl_opts *o) {
    dcl_header h;
    memset(&h, 0, sizeof h);
    h.magic = DCL_MAGIC, h.V = V, h.N = N, h.D = D;
    h.temperature = o->temperature, h.weighted = o->weighted != 0;
    h.sigma = o->weighted ? o->sigma : 0.0f; /* unused otherwise */
    h.cosine = o->cosine != 0, h.joint = o->joint_negatives != 0;
    return h;
}

static ss_status check_cache(const char *fn, const void *cache, int64_t V,
                             int64_t N, int64_t D, const ss_dcl_opts *o) {
    dcl_header h, want = make_header(V, N, D, o);
    memcpy(&h, cache, sizeof h);
    if (memcmp(&h, &want, sizeof h) == 0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn,
                    "cache was not written by ss_dcl_forward with these sizes "
                    "and options (V = %lld, N = %lld, D = %lld)",
                    (long long)V, (long long)N, (long long)D);
}

size_t ss_dcl_cache_size(int64_t V, int64_t N, int64_t D) {
    if (check_sizes("ss_dcl_cache_size", V, N, D) != SS_OK) return 0;
    return HEADER_BYTES + (size_t)(V * V * N) * sizeof(float);
}

static double dot_d(const float *a, const float *b, int64_t D) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s;
}

/* scale * max ||x||^2 bounds every logit; 0 (online max) when too large. */
static float fixed_shift(const dcl_problem *p) {
    double maxsq = 0.0;
    for (int64_t i = 0; i < p->V * p->N; i++) {
        const float *x = p->x + i * p->D;
        double s = dot_d(x, x, p->D);
        maxsq = s > maxsq ? s : maxsq;
    }
    double sh = maxsq * p->scale;
    return sh > 0.0 && sh <= DCL_FIXED_SHIFT_MAX ? (float)sh : 0.0f;
}

/* w: (N) positive weights: 1 (DCL), or lightly's negative von Mises-Fisher
 * weights 2 - N softmax_n(<x_0n, x_1n> / sigma) (DCLW, V = 2), detached. */
static void positive_weights(double *w, const dcl_problem *p,
                             const ss_dcl_opts *o) {
    const int64_t N = p->N, D = p->D;
    if (!o->weighted) {
        for (int64_t n = 0; n < N; n++) w[n] = 1.0;
        return;
    }
    double mx = -INFINITY, sum = 0.0;
    for (int64_t n = 0; n < N; n++) {
        w[n] = dot_d(row_of(p, 0, n), row_of(p, 1, n), D) / o->sigma;
        if (w[n] > mx) mx = w[n];
    }
    for (int64_t n = 0; n < N; n++) sum += exp(w[n] - mx);
    for (int64_t n = 0; n < N; n++)
        w[n] = 2.0 - (double)N * exp(w[n] - mx) / sum;
}

/* Shared set-up of forward and backward: the rows (normalised copy when
 * cosine), the tile workspace and the weights, all allocated at once. */
typedef struct {
    dcl_problem p;
    float *xn, *scale; /* owned; NULL when !cosine */
    float *xt;         /* owned x^T; NULL without a native ss__tgemm */
    double *w;         /* (N) */
    int64_t *group;    /* (M) sample of each row, joint_negatives only */
    ss__gc gc;         /* engine problem, joint_negatives only */
} dcl_setup;

static void setup_free(dcl_setup *s) {
    ss__free(s->xt);
    ss__free(s->group);
    ss__free(s->xn);
    ss__free(s->scale);
    ss__free(s->p.ws);
    ss__free(s->w);
}

static ss_status setup_init(dcl_setup *s, const char *fn, const float *z,
                            int64_t V, int64_t N, int64_t D,
                            const ss_dcl_opts *o) {
    const int64_t M = V * N;
    memset(s, 0, sizeof *s);
    s->p = (dcl_problem){
        z, V, N, D, 1.0f / o->temperature, 0.0f, NULL, ss__threads(), NULL};
    s->p.ws =
        ss__malloc((size_t)(s->p.nthreads * ws_floats(D)) * sizeof(float));
    s->w = ss__malloc((size_t)N * sizeof(double));
    if (o->cosine) {
        s->xn = ss__malloc((size_t)(M * D) * sizeof(float));
        s->scale = ss__malloc((size_t)M * sizeof(float));
    }
    if (o->joint_negatives) s->group = ss__malloc((size_t)M * sizeof(int64_t));
    int want_xt = !o->joint_negatives && ss__tgemm_native();
    if (want_xt) s->xt = ss__malloc((size_t)(M * D) * sizeof(float));
    if (!s->p.ws || !s->w || (o->cosine && (!s->xn || !s->scale)) ||
        (o->joint_negatives && !s->group) || (want_xt && !s->xt)) {
        setup_free(s);
        return ss__fail(SS_ERR_NOMEM, fn, "workspace for V=%lld N=%lld D=%lld",
                        (long long)V, (long long)N, (long long)D);
    }
    if (o->cosine) {
        ss__normalize_rows(s->xn, s->scale, z, M, D);
        s->p.x = s->xn;
    }
    s->p.shift = fixed_shift(&s->p);
    if (want_xt) {
        ss__transpose(s->xt, M, s->p.x, M, D);
        s->p.xt = s->xt;
    }
    positive_weights(s->w, &s->p, o);
    if (o->joint_negatives) {
        for (int64_t i = 0; i < M; i++) s->group[i] = i % N;
        s->gc.x = s->p.x, s->gc.M = M, s->gc.D = D;
        s->gc.group = s->group, s->gc.exclude_group = 1;
        s->gc.nscales = 1, s->gc.scale[0] = s->p.scale;
    }
    return SS_OK;
}

/* ---- loss terms ---------------------------------------------------------- */

/* lse: the cache, (V, V, N) block statistics, or (M) per-row statistics of
 * the engine when joint. Writes it only when nothing fails. */
static ss_status negatives_forward(float *lse, dcl_setup *s, int joint,
                                   const char *fn) {
    if (!joint) {
        dcl_lse_forward(lse, &s->p);
        return SS_OK;
    }
    float *tmp = ss__malloc((size_t)s->gc.M * sizeof(float));
    ss_status st = tmp ? ss__gc_forward(tmp, &s->gc)
                       : ss__fail(SS_ERR_NOMEM, fn, "lse of %lld rows",
                                  (long long)s->gc.M);
    if (st == SS_OK) memcpy(lse, tmp, (size_t)s->gc.M * sizeof(float));
    ss__free(tmp);
    return st;
}

/* dx += g * d/dx of the negative terms: block (v, v) enters loss_vn once,
 * block (v, u) through a mean over u; joint: one lse per row. */
static ss_status negatives_backward(float *dx, double g, const float *lse,
                                    const dcl_setup *s, int joint,
                                    const char *fn) {
    const int64_t V = s->p.V, n = joint ? s->gc.M : V * V;
    float *w = ss__malloc((size_t)n * sizeof(float));
    if (!w) return ss__fail(SS_ERR_NOMEM, fn, "%lld weights", (long long)n);
    ss_status st = SS_OK;
    if (joint) {
        for (int64_t i = 0; i < n; i++) w[i] = (float)g;
        st = ss__gc_backward(dx, w, lse, &s->gc);
    } else {
        for (int64_t v = 0; v < V; v++)
            for (int64_t u = 0; u < V; u++)
                w[v * V + u] = (float)(u == v ? g : g / (double)(V - 1));
        dcl_lse_backward(dx, w, lse, &s->p);
    }
    ss__free(w);
    return st;
}

/* dx += g * d/dx of the positive terms -w_n s((v,n),(u,n)) / (V - 1); each
 * appears in the losses of both anchors (v, n) and (u, n), hence the 2. */
static void positives_backward(float *dx, double g, const dcl_setup *s) {
    const int64_t V = s->p.V, N = s->p.N, D = s->p.D, M = V * N;
    const double gp = -2.0 * g * s->p.scale / (double)(V - 1);
#ifdef _OPENMP
#pragma omp parallel for num_threads(s->p.nthreads) if (M * D > (1 << 16))
#endif
    for (int64_t i = 0; i < M; i++) {
        int64_t v = i / N, n = i % N;
        float c = (float)(gp * s->w[n]);
        for (int64_t u = 0; u < V; u++) {
            if (u == v) continue;
            const float *xu = row_of(&s->p, u, n);
            for (int64_t d = 0; d < D; d++) dx[i * D + d] += c * xu[d];
        }
    }
}

/* ---- public API ---------------------------------------------------------- */

ss_status ss_dcl_forward(float *loss, float *losses, void *cache,
                         const float *z, int64_t V, int64_t N, int64_t D,
                         const ss_dcl_opts *opts) {
    static const char fn[] = "ss_dcl_forward";
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(check_call(fn, z, V, N, D, &o));
    dcl_setup s;
    SS_TRY(setup_init(&s, fn, z, V, N, D, &o));
    float *lse = (float *)((char *)cache + HEADER_BYTES);
    ss_status st = negatives_forward(lse, &s, o.joint_negatives, fn);
    if (st != SS_OK) {
        setup_free(&s);
        return st;
    }
    /* loss_vn = neg + mean_{u != v} (cross - w_n s((v,n),(u,n))), with
     * neg = lse[v,v,n] and cross = lse[v,u,n] (lightly), or neg = lse[vn]
     * and cross = 0 (joint). */
    double total = 0.0;
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++) {
            double neg =
                o.joint_negatives ? lse[v * N + n] : lse[(v * V + v) * N + n];
            double mean = 0.0;
            for (int64_t u = 0; u < V; u++) {
                if (u == v) continue;
                double pos = dot_d(row_of(&s.p, v, n), row_of(&s.p, u, n), D);
                if (!o.joint_negatives) mean += lse[(v * V + u) * N + n];
                mean -= s.w[n] * pos * s.p.scale;
            }
            double li = neg + mean / (double)(V - 1);
            if (losses) losses[v * N + n] = (float)li;
            total += li;
        }
    *loss = (float)(total / (double)(V * N));
    dcl_header h = make_header(V, N, D, &o);
    memcpy(cache, &h, sizeof h);
    setup_free(&s);
    return SS_OK;
}

ss_status ss_dcl_backward(float *dz, float dloss, const void *cache,
                          const float *z, int64_t V, int64_t N, int64_t D,
                          const ss_dcl_opts *opts) {
    static const char fn[] = "ss_dcl_backward";
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    SS_TRY(ss__check_ptr(fn, "z", z));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    SS_TRY(check_call(fn, z, V, N, D, &o));
    SS_TRY(check_cache(fn, cache, V, N, D, &o));
    const float *lse = (const float *)((const char *)cache + HEADER_BYTES);
    const int64_t M = V * N;
    dcl_setup s;
    SS_TRY(setup_init(&s, fn, z, V, N, D, &o));
    /* dz is touched only at the end, after everything that can fail. */
    float *dx = ss__calloc((size_t)(M * D) * sizeof(float));
    const double g = (double)dloss / (double)M;
    ss_status st =
        dx ? negatives_backward(dx, g, lse, &s, o.joint_negatives, fn)
           : ss__fail(SS_ERR_NOMEM, fn, "gradient buffer of %lld x %lld",
                      (long long)M, (long long)D);
    if (st == SS_OK) {
        positives_backward(dx, g, &s);
        if (o.cosine) {
            ss__normalize_backward(dz, dx, s.xn, s.scale, z, M, D);
        } else {
            for (int64_t i = 0; i < M * D; i++) dz[i] += dx[i];
        }
    }
    ss__free(dx);
    setup_free(&s);
    return st;
}
