/*
 * dist_ntxent.c - NT-Xent over ranks, all-gather path. Contract and
 * semantics: selfsup_comm.h and docs/DISTRIBUTED.md.
 *
 * Rank r holds Ml = V N_r local rows; the M = V Ntot gathered rows sit in
 * rank blocks, rank q's block (V, N_q, D) at row V * offset_q, so local
 * row i is gathered row V * offset_r + i. With P_ik = exp(s_ik - lse_i):
 *     forward  lse_i = log sum_{k != i} exp(s_ik)      (i local, k all)
 *     backward dL/dx_j = (1 / (M t)) sum_{k != j} (P_jk + P_kj) x_k - pos,
 * P_kj needs the lse of every anchor k: the M lse values are all-gathered
 * (O(M) floats) and each rank recomputes its (Ml, M) tiles, so it gets the
 * complete gradient of its own rows with no reduce-scatter. Both P terms
 * are <= 1 (each lse contains its s), so no exp can overflow.
 */
#include "comm_internal.h"
#include "ntxent_internal.h"
#include "kernels/tgemm.h"
#include "kernels/vexp.h"
#include "kernels/norm.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define DNTX_MAGIC 0x3130584e54534453ull /* "SDSTNX01" */
#define DNTX_HEADER_BYTES 64
#define DNTX_TILE 256
#define DNTX_MAX_LOGIT 1e30

typedef struct {
    uint64_t magic;
    int64_t V, N, D, Ntot;
    float temperature;
    int32_t cosine;
} dntx_header;

static ss_status dntx_check_sizes(const char *fn, int64_t V, int64_t N,
                                  int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

size_t ss_dist_ntxent_cache_size(int64_t V, int64_t N, int64_t D) {
    if (dntx_check_sizes("ss_dist_ntxent_cache_size", V, N, D) != SS_OK)
        return 0;
    return DNTX_HEADER_BYTES + (size_t)(V * N) * sizeof(float);
}

/* Local checks of everything but the output pointers. */
static ss_status dntx_check(const char *fn, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_ntxent_opts *o) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(dntx_check_sizes(fn, V, N, D));
    SS_TRY(ss__check_positive(fn, "temperature", o->temperature));
    if (!isfinite(1.0f / o->temperature))
        return ss__fail(SS_ERR_PARAM, fn,
                        "temperature must be >= 1/FLT_MAX, got %g",
                        (double)o->temperature);
    if (o->hard_beta != 0.0f || o->debias_tau_plus != 0.0f)
        return ss__fail(SS_ERR_UNSUPPORTED, fn,
                        "hard_beta and debias_tau_plus must be 0 in the "
                        "distributed NT-Xent for now, got %g and %g",
                        (double)o->hard_beta, (double)o->debias_tau_plus);
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    double maxsq = 1.0;
    for (int64_t i = 0; i < V * N && !o->cosine; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) s += (double)z[i * D + d] * z[i * D + d];
        if (s > maxsq) maxsq = s;
    }
    if (!(maxsq / o->temperature <= DNTX_MAX_LOGIT))
        return ss__fail(SS_ERR_PARAM, fn,
                        "logits overflow float32: max ||x||^2 / temperature "
                        "= %g > %g", maxsq / o->temperature, DNTX_MAX_LOGIT);
    return SS_OK;
}

/* ---- per-call workspace: local rows, gathered rows ------------------------ */

typedef struct {
    int64_t V, N, D, Ml, M, Ntot, self0; /* self0: gathered row of local 0 */
    const float *x; /* (Ml, D) local rows the loss sees */
    float *xbuf, *inv, *xall, *xallT, *lall, *tiles;
    int64_t stride; /* floats of tiles per thread: tile, GEMM scratch */
    int64_t *counts, *bytes;
    int nthreads;
} dntx_work;

static void dntx_free(dntx_work *w) {
    ss__free(w->xbuf), ss__free(w->inv), ss__free(w->xall);
    ss__free(w->lall), ss__free(w->tiles), ss__free(w->xallT);
    ss__free(w->counts), ss__free(w->bytes);
}

/* Local checks (st_local), agreement, allocation, normalisation and the
 * all-gather of the rows. On error everything is freed. */
static ss_status dntx_setup(dntx_work *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *o, const ss_comm *c,
                            int need_lse, float dloss) {
    memset(w, 0, sizeof *w);
    w->counts = ss__malloc((size_t)c->size * sizeof(int64_t));
    w->bytes = ss__malloc((size_t)c->size * sizeof(int64_t));
    if (st == SS_OK && (!w->counts || !w->bytes))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "dloss"};
    double vals[5] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, (double)dloss};
    int64_t off = 0, Ntot = 0, dummy[1];
    st = ss__dist_agree(c, fn, st, vals, names, 5, N,
                        w->counts ? w->counts : dummy, &off, &Ntot);
    if (st != SS_OK) {
        dntx_free(w);
        return st;
    }
    w->V = V, w->N = N, w->D = D, w->Ml = V * N, w->Ntot = Ntot;
    w->M = V * Ntot, w->self0 = V * off;
    w->nthreads = ss__threads();
    if (o->cosine) {
        w->xbuf = ss__malloc((size_t)(w->Ml * D) * sizeof(float));
        w->inv = ss__malloc((size_t)w->Ml * sizeof(float));
    }
    w->xall = ss__malloc((size_t)(w->M * D) * sizeof(float));
    if (need_lse) w->lall = ss__malloc((size_t)w->M * sizeof(float));
    int64_t scr = ss__tgemm_scratch(D), scr2 = ss__tgemm_scratch(DNTX_TILE);
    w->stride = DNTX_TILE * DNTX_TILE + (scr > scr2 ? scr : scr2);
    w->tiles = ss__malloc((size_t)(w->nthreads * w->stride) * sizeof(float));
    w->xallT = ss__malloc((size_t)(w->M * D) * sizeof(float));
    if (ss__check_product(fn, V, Ntot, D) != SS_OK) {
        st = SS_ERR_SIZE;
    } else if ((o->cosine && (!w->xbuf || !w->inv)) || !w->xall ||
               (need_lse && !w->lall) || !w->tiles || !w->xallT) {
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for the %lld x %lld "
                      "gathered rows", (long long)w->M, (long long)D);
    }
    st = ss__dist_status(c, fn, st);
    if (st == SS_OK) {
        if (o->cosine) ss__normalize_rows(w->xbuf, w->inv, z, w->Ml, D);
        w->x = o->cosine ? w->xbuf : z;
        st = ss__dist_allgather_rows(c, fn, w->x, w->xall, w->counts, V * D,
                                     sizeof(float), w->bytes);
    }
    if (st == SS_OK) /* X_all^T: the (D, M) right factor of the tiles */
        for (int64_t k = 0; k < w->M; k++)
            for (int64_t d = 0; d < D; d++)
                w->xallT[d * w->M + k] = w->xall[k * D + d];
    if (st != SS_OK) dntx_free(w);
    return st;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Logit bound max_k ||x_k||^2 / t over the gathered rows: with
 * 2 * bound <= SS__GC_FIXED_SHIFT_MAX (kernels/contrast.h's rule), the
 * fixed shift e^{s - bound} lies in [e^-40, 1]: no running max needed. */
#define DNTX_FIXED_SHIFT_MAX 40.0
static double dntx_bound(const dntx_work *w, int cosine, float inv_t) {
    if (cosine) return inv_t;
    double mx = 0.0;
    for (int64_t k = 0; k < w->M; k++) {
        double s = 0.0;
        for (int64_t d = 0; d < w->D; d++)
            s += (double)w->xall[k * w->D + d] * w->xall[k * w->D + d];
        if (s > mx) mx = s;
    }
    return mx * inv_t;
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* lse: (Ml) log-sum-exp of each local row against every other gathered
 * row, scale inv_t. Parallel over local row tiles; per row either the
 * fixed shift (see dntx_bound) or an online max. */
static void dntx_lse(float *lse, const dntx_work *w, float inv_t, int cosine) {
    int64_t T = DNTX_TILE, nti = (w->Ml + T - 1) / T, D = w->D;
    double bound = dntx_bound(w, cosine, inv_t);
    int fixed = 2.0 * bound <= DNTX_FIXED_SHIFT_MAX;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *S = w->tiles + (size_t)thread_id() * w->stride;
        float *scratch = S + T * T;
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        double mx[DNTX_TILE], sm[DNTX_TILE];
        for (int64_t a = 0; a < mi; a++)
            mx[a] = fixed ? bound : -INFINITY, sm[a] = 0.0;
        for (int64_t j0 = 0; j0 < w->M; j0 += T) {
            int64_t nj = min64(T, w->M - j0);
            ss__tgemm(mi, nj, D, w->x + i0 * D, D, 1, w->xallT + j0, w->M, 0,
                      S, T, scratch);
            for (int64_t a = 0; a < mi; a++) {
                int64_t self = w->self0 + i0 + a - j0; /* column of i */
                float *s = S + a * T;
                for (int64_t b = 0; b < nj; b++) s[b] *= inv_t;
                if (self >= 0 && self < nj) s[self] = -INFINITY;
                double m = mx[a];
                if (!fixed) {
                    for (int64_t b = 0; b < nj; b++)
                        if (s[b] > m) m = s[b];
                    if (m == -INFINITY) continue;
                }
                float mf = (float)m, acc = 0.0f;
                for (int64_t b = 0; b < nj; b++) acc += ss__vexp(s[b] - mf);
                double prev = fixed || mx[a] == -INFINITY
                                  ? sm[a] : sm[a] * exp(mx[a] - m);
                mx[a] = m, sm[a] = prev + (double)acc;
            }
        }
        for (int64_t a = 0; a < mi; a++)
            lse[i0 + a] = (float)(mx[a] + log(sm[a]));
    }
}

/* dx: (Ml, D) += c * sum_{k != j} (P_jk + P_kj) x_k. lall: (M) gathered
 * lse, local ones at self0. */
static void dntx_grad(float *dx, const dntx_work *w, float inv_t, float c) {
    int64_t T = DNTX_TILE, nti = (w->Ml + T - 1) / T, D = w->D;
    const float *lloc = w->lall + w->self0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *S = w->tiles + (size_t)thread_id() * w->stride;
        float *scratch = S + T * T;
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t j0 = 0; j0 < w->M; j0 += T) {
            int64_t nj = min64(T, w->M - j0);
            ss__tgemm(mi, nj, D, w->x + i0 * D, D, 1, w->xallT + j0, w->M, 0,
                      S, T, scratch);
            for (int64_t a = 0; a < mi; a++) {
                int64_t self = w->self0 + i0 + a - j0;
                float *s = S + a * T;
                double li = lloc[i0 + a];
                float lf = (float)li;
                const float *lk = w->lall + j0;
                for (int64_t b = 0; b < nj; b++)
                    s[b] = c * (ss__vexp(s[b] * inv_t - lf) +
                                ss__vexp(s[b] * inv_t - lk[b]));
                if (self >= 0 && self < nj) s[self] = 0.0f;
            }
            ss__tgemm(mi, D, nj, S, T, 1, w->xall + j0 * D, D, 1, dx + i0 * D,
                      D, scratch);
        }
    }
}

ss_status ss_dist_ntxent_forward(float *loss, float *losses, void *cache,
                                 const float *z, int64_t V, int64_t N,
                                 int64_t D, const ss_ntxent_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_forward";
    SS_TRY(ss_comm_check(comm)); /* cannot agree without a comm */
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__check_ptr(fn, "loss", loss);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK) st = dntx_check(fn, z, V, N, D, &o);
    dntx_work w;
    SS_TRY(dntx_setup(&w, fn, st, z, V, N, D, &o, comm, 0, 0.0f));
    float *lse = ss__malloc((size_t)w.Ml * sizeof(float));
    double *li = ss__malloc((size_t)w.Ml * sizeof(double));
    st = lse && li ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld "
                                      "anchors", (long long)w.Ml);
    st = ss__dist_status(comm, fn, st);
    double total = 0.0;
    if (st == SS_OK) {
        float inv_t = 1.0f / o.temperature;
        dntx_lse(lse, &w, inv_t, o.cosine);
        ss__ntxent_pos_dots(li, w.x, V, N, D, 1);
        double k = 1.0 / ((double)o.temperature * (double)(V - 1));
        for (int64_t i = 0; i < w.Ml; i++) {
            li[i] = (double)lse[i] - k * li[i];
            total += li[i];
        }
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) {
        dntx_header h;
        memset(&h, 0, sizeof h);
        h.magic = DNTX_MAGIC, h.V = V, h.N = N, h.D = D, h.Ntot = w.Ntot;
        h.temperature = o.temperature, h.cosine = o.cosine != 0;
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + DNTX_HEADER_BYTES, lse,
               (size_t)w.Ml * sizeof(float));
        if (losses)
            for (int64_t i = 0; i < w.Ml; i++) losses[i] = (float)li[i];
        *loss = (float)(total / (double)w.M);
    }
    ss__free(lse), ss__free(li);
    dntx_free(&w);
    return st;
}

static ss_status dntx_check_cache(const char *fn, const void *cache,
                                  int64_t V, int64_t N, int64_t D,
                                  const ss_ntxent_opts *o) {
    dntx_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != DNTX_MAGIC || h.V != V || h.N != N || h.D != D ||
        h.temperature != o->temperature || h.cosine != (o->cosine != 0))
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by ss_dist_ntxent_forward with "
                        "these sizes and options (V = %lld, N = %lld, D = "
                        "%lld)", (long long)V, (long long)N, (long long)D);
    return SS_OK;
}

ss_status ss_dist_ntxent_backward(float *dz, float dloss, const void *cache,
                                  const float *z, int64_t V, int64_t N,
                                  int64_t D, const ss_ntxent_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_backward";
    SS_TRY(ss_comm_check(comm));
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__check_ptr(fn, "dz", dz);
    if (st == SS_OK) st = ss__check_ptr(fn, "cache", cache);
    if (st == SS_OK && !isfinite(dloss))
        st = ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                      (double)dloss);
    if (st == SS_OK) st = dntx_check(fn, z, V, N, D, &o);
    if (st == SS_OK) st = dntx_check_cache(fn, cache, V, N, D, &o);
    dntx_work w;
    SS_TRY(dntx_setup(&w, fn, st, z, V, N, D, &o, comm, 1,
                      isfinite(dloss) ? dloss : 0.0f));
    dntx_header h;
    memcpy(&h, cache, sizeof h);
    float *dx = o.cosine ? ss__calloc((size_t)(w.Ml * D) * sizeof(float)) : dz;
    if (h.Ntot != w.Ntot)
        st = ss__fail(SS_ERR_PARAM, fn, "cache was written for a global "
                      "batch of %lld samples, now %lld", (long long)h.Ntot,
                      (long long)w.Ntot);
    else if (!dx)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld rows",
                      (long long)w.Ml, (long long)D);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK)
        st = ss__dist_allgather_rows(comm, fn,
                                     (const char *)cache + DNTX_HEADER_BYTES,
                                     w.lall, w.counts, V, sizeof(float),
                                     w.bytes);
    if (st == SS_OK) {
        /* mean convention: world_size * dLglobal / dx_local */
        double f = (double)dloss * comm->size / (double)w.M;
        float inv_t = 1.0f / o.temperature;
        dntx_grad(dx, &w, inv_t, (float)(f * inv_t));
        ss__ntxent_pos_grad(dx, w.x,
                            -2.0 * f / ((double)o.temperature * (V - 1)),
                            V, N, D, 1);
        if (o.cosine) ss__normalize_backward(dz, dx, w.x, w.inv, z, w.Ml, D);
    }
    if (o.cosine) ss__free(dx);
    dntx_free(&w);
    return st;
}
