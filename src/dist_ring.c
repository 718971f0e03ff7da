/*
 * dist_ring.c - NT-Xent over ranks, ring path (Inf-CL / SigLIP style):
 * per-rank memory O(N_local D), no gathered rows. Contract and semantics:
 * selfsup_comm.h and docs/DISTRIBUTED.md.
 *
 * Rank r holds Ml = V N_r rows x. The blocks of rows (and, in backward,
 * their log-sum-exps) travel around the ring (ss__dist_ring): at step s
 * rank r holds the block of rank q = r - s, so after W - 1 sendrecvs every
 * rank has seen every block once. With P_ik = exp(s_ik - lse_i):
 *     forward  lse_i = log sum_{k != i} exp(s_ik), online over the blocks;
 *     backward dL/dx_j = (1 / (M t)) sum_{k != j} (P_jk + P_kj) x_k - pos.
 * s is symmetric, so both terms of local row j need only the visiting rows
 * x_k and their lse_k: nothing travels back (2x the forward's
 * multiply-adds, as the all-gather path). Positives share the rank.
 */
#include "dist_gc.h"
#include "ntxent_internal.h"
#include "kernels/norm.h"
#include "kernels/tgemm.h"
#include "kernels/vexp.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define RNTX_MAGIC 0x3130584e47525353ull /* "SSRGNX01" */
#define RNTX_TILE 256
#define RNTX_LDT SS__TGEMM_LDT(RNTX_TILE)
#define RNTX_MAX_LOGIT 1e30
#define RNTX_FIXED_SHIFT_MAX 40.0 /* as kernels/contrast.h's rule */

size_t ss_dist_ntxent_ring_cache_size(int64_t V, int64_t N, int64_t D) {
    if (ss__dntx_check_sizes("ss_dist_ntxent_ring_cache_size", V, N, D) !=
        SS_OK)
        return 0;
    return SS__DNTX_HEADER_BYTES + (size_t)(V * N) * sizeof(float);
}

/* Local checks of everything but the output pointers. */
static ss_status rntx_check(const char *fn, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_ntxent_opts *o,
                            const ss_comm *c) {
    SS_TRY(ss__dist_check_ring(c, fn));
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__dntx_check_sizes(fn, V, N, D));
    SS_TRY(ss__check_positive(fn, "temperature", o->temperature));
    if (!isfinite(1.0f / o->temperature))
        return ss__fail(SS_ERR_PARAM, fn,
                        "temperature must be >= 1/FLT_MAX, got %g",
                        (double)o->temperature);
    if (o->hard_beta != 0.0f || o->debias_tau_plus != 0.0f)
        return ss__fail(SS_ERR_UNSUPPORTED, fn,
                        "hard_beta and debias_tau_plus must be 0 in the ring "
                        "NT-Xent, got %g and %g", (double)o->hard_beta,
                        (double)o->debias_tau_plus);
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    double maxsq = 1.0;
    for (int64_t i = 0; i < V * N && !o->cosine; i++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++) s += (double)z[i * D + d] * z[i * D + d];
        if (s > maxsq) maxsq = s;
    }
    if (!(maxsq / o->temperature <= RNTX_MAX_LOGIT))
        return ss__fail(SS_ERR_PARAM, fn,
                        "logits overflow float32: max ||x||^2 / temperature "
                        "= %g > %g", maxsq / o->temperature, RNTX_MAX_LOGIT);
    return SS_OK;
}

/* ---- per-call workspace ----------------------------------------------------- */

typedef struct {
    int64_t V, N, D, Ml, Kmax, Ntot;
    const float *x;    /* (Ml, D) local rows the loss sees */
    float *xbuf, *inv; /* cosine: normalised rows, 1 / norms */
    void *blk[2];      /* ring buffers: Kmax rows, then Kmax lse (backward) */
    float *tiles;      /* per thread: tile, B^T tile, GEMM scratch */
    int64_t stride;
    int64_t *counts;
    int nthreads;
    float inv_t, c;          /* 1 / t; backward: the gradient factor */
    double shift;            /* forward: fixed shift 1 / t, or -INFINITY */
    const float *lse;        /* backward: (Ml) local lse */
    double *mx, *sm;         /* forward: (Ml) running max and sum */
    float *lsef;             /* forward: (Ml) the lse, as cached */
    float *dx;               /* backward: (Ml, D) private accumulator */
} rntx_work;

static void rntx_free(rntx_work *w) {
    ss__free(w->xbuf), ss__free(w->inv), ss__free(w->blk[0]);
    ss__free(w->blk[1]), ss__free(w->tiles), ss__free(w->counts);
    ss__free(w->mx), ss__free(w->sm), ss__free(w->dx), ss__free(w->lsef);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Allocation after the agreement; returns SS_OK or SS_ERR_NOMEM. */
static ss_status rntx_alloc(rntx_work *w, const char *fn, int cosine,
                            int backward) {
    int64_t D = w->D, Kmax = w->Kmax;
    size_t blk = (size_t)(Kmax * D + (backward ? Kmax : 0)) * sizeof(float);
    if (cosine) {
        w->xbuf = ss__malloc((size_t)(w->Ml * D) * sizeof(float));
        w->inv = ss__malloc((size_t)w->Ml * sizeof(float));
    }
    w->blk[0] = ss__calloc(blk), w->blk[1] = ss__calloc(blk); /* padding sent */
    int64_t scr = ss__tgemm_scratch(D), scr2 = ss__tgemm_scratch(RNTX_TILE);
    w->stride = RNTX_TILE * RNTX_TILE + D * RNTX_LDT + (scr > scr2 ? scr : scr2);
    w->tiles = ss__malloc((size_t)(w->nthreads * w->stride) * sizeof(float));
    if (backward) {
        w->dx = ss__calloc((size_t)(w->Ml * D) * sizeof(float));
    } else {
        w->mx = ss__malloc((size_t)w->Ml * sizeof(double));
        w->sm = ss__malloc((size_t)w->Ml * sizeof(double));
        w->lsef = ss__malloc((size_t)w->Ml * sizeof(float));
    }
    if ((cosine && (!w->xbuf || !w->inv)) || !w->blk[0] || !w->blk[1] ||
        !w->tiles || (backward ? !w->dx : !w->mx || !w->sm || !w->lsef))
        return ss__fail(SS_ERR_NOMEM, fn, "no memory for the ring blocks of "
                        "%lld x %lld rows", (long long)Kmax, (long long)D);
    return SS_OK;
}

/* Local checks (st), agreement (options, dloss, row counts), allocation,
 * normalisation, and this rank's block in blk[0]. Frees on error. */
static ss_status rntx_setup(rntx_work *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *o, const ss_comm *c,
                            int backward, float dloss) {
    memset(w, 0, sizeof *w);
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "dloss"};
    double vals[5] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, (double)dloss};
    int64_t off = 0, Ntot = 0;
    st = ss__dgc_agree(c, fn, st, vals, names, 5, N, &w->counts, &off,
                       &Ntot);
    if (st != SS_OK) {
        rntx_free(w);
        return st;
    }
    w->V = V, w->N = N, w->D = D, w->Ml = V * N, w->Ntot = Ntot;
    for (int q = 0; q < c->size; q++)
        if (V * w->counts[q] > w->Kmax) w->Kmax = V * w->counts[q];
    w->nthreads = ss__threads();
    w->inv_t = 1.0f / o->temperature;
    st = ss__check_product(fn, V, Ntot, D);
    if (st == SS_OK) st = rntx_alloc(w, fn, o->cosine, backward);
    st = ss__dist_status(c, fn, st);
    if (st != SS_OK) {
        rntx_free(w);
        return st;
    }
    if (o->cosine) ss__normalize_rows(w->xbuf, w->inv, z, w->Ml, D);
    w->x = o->cosine ? w->xbuf : z;
    memcpy(w->blk[0], w->x, (size_t)(w->Ml * D) * sizeof(float));
    return SS_OK;
}

/* S (mi, nj), row stride RNTX_TILE = inv_t * x[i0..] . B[j0..]^T; the
 * self pair (home block, k == i) set to -inf (no term has it). */
static void rntx_tile(float *S, const rntx_work *w, const float *B, int64_t i0,
                      int64_t mi, int64_t j0, int64_t nj, int home) {
    int64_t T = RNTX_TILE, D = w->D;
    float *Bt = S + T * T, *scr = Bt + D * RNTX_LDT;
    ss__transpose(Bt, RNTX_LDT, B + j0 * D, nj, D);
    ss__tgemm(mi, nj, D, w->x + i0 * D, D, 1, Bt, RNTX_LDT, 0, S, T, scr);
    for (int64_t a = 0; a < mi; a++) {
        float *s = S + a * T;
        for (int64_t b = 0; b < nj; b++) s[b] *= w->inv_t;
        int64_t self = i0 + a - j0;
        if (home && self >= 0 && self < nj) s[self] = -INFINITY;
    }
}

/* Forward step: online log-sum-exp of the local rows against block B,
 * the V Nq rows of rank q. */
static ss_status rntx_fwd_step(void *ctx, int s, int q, int64_t Nq,
                               void *blk) {
    rntx_work *w = ctx;
    const float *B = blk;
    int64_t T = RNTX_TILE, nti = (w->Ml + T - 1) / T, Kq = w->V * Nq;
    int fixed = w->shift != -INFINITY;
    (void)q;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *S = w->tiles + (size_t)ss__dgc_thread_id() * w->stride;
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t j0 = 0; j0 < Kq; j0 += T) {
            int64_t nj = min64(T, Kq - j0);
            rntx_tile(S, w, B, i0, mi, j0, nj, s == 0);
            for (int64_t a = 0; a < mi; a++) {
                const float *r = S + a * T;
                double m = w->mx[i0 + a];
                if (!fixed) {
                    float mt = -INFINITY;
                    for (int64_t b = 0; b < nj; b++) mt = r[b] > mt ? r[b] : mt;
                    if (mt > m) m = mt;
                }
                if (m == -INFINITY) continue;
                float mf = (float)m, acc = 0.0f;
                for (int64_t b = 0; b < nj; b++) acc += ss__vexp(r[b] - mf);
                double *sm = w->sm + i0 + a, old = w->mx[i0 + a];
                *sm = (old == -INFINITY ? 0.0 : *sm * exp(old - m)) + acc;
                w->mx[i0 + a] = m;
            }
        }
    }
    return SS_OK;
}

/* Backward step: dx += c sum_k (P_jk + P_kj) x_k over the block's rows k;
 * the block's lse follow its Kmax rows. */
static ss_status rntx_bwd_step(void *ctx, int s, int q, int64_t Nq,
                               void *blk) {
    rntx_work *w = ctx;
    const float *B = blk, *lk = B + w->Kmax * w->D;
    int64_t T = RNTX_TILE, nti = (w->Ml + T - 1) / T, D = w->D;
    int64_t Kq = w->V * Nq;
    (void)q;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->nthreads)
#endif
    for (int64_t ti = 0; ti < nti; ti++) {
        float *S = w->tiles + (size_t)ss__dgc_thread_id() * w->stride;
        float *scr = S + T * T + D * RNTX_LDT;
        int64_t i0 = ti * T, mi = min64(T, w->Ml - i0);
        for (int64_t j0 = 0; j0 < Kq; j0 += T) {
            int64_t nj = min64(T, Kq - j0);
            rntx_tile(S, w, B, i0, mi, j0, nj, s == 0);
            for (int64_t a = 0; a < mi; a++) {
                float *r = S + a * T, li = w->lse[i0 + a];
                const float *l = lk + j0;
                for (int64_t b = 0; b < nj; b++)
                    r[b] = w->c * (ss__vexp(r[b] - li) + ss__vexp(r[b] - l[b]));
            }
            ss__tgemm(mi, D, nj, S, T, 1, B + j0 * D, D, 1, w->dx + i0 * D,
                      D, scr);
        }
    }
    return SS_OK;
}

ss_status ss_dist_ntxent_ring_forward(float *loss, float *losses, void *cache,
                                      const float *z, int64_t V, int64_t N,
                                      int64_t D, const ss_ntxent_opts *opts,
                                      const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_ring_forward";
    SS_TRY(ss_comm_check(comm)); /* cannot agree without a comm */
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__dntx_check_forward(fn, loss, cache);
    if (st == SS_OK) st = rntx_check(fn, z, V, N, D, &o, comm);
    rntx_work w;
    SS_TRY(rntx_setup(&w, fn, st, z, V, N, D, &o, comm, 0, 0.0f));
    /* cosine: every logit is in [-1/t, 1/t]; with 2 / t <= 40 the fixed
     * shift 1/t keeps every e^{s - 1/t} >= e^-40 in float: no max pass */
    w.shift = o.cosine && 2.0 * w.inv_t <= RNTX_FIXED_SHIFT_MAX
                  ? (double)w.inv_t : -INFINITY;
    for (int64_t i = 0; i < w.Ml; i++) w.mx[i] = w.shift, w.sm[i] = 0.0;
    int64_t bytes = w.Kmax * D * (int64_t)sizeof(float);
    st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], 0, bytes, w.counts,
                       rntx_fwd_step, &w);
    double total = 0.0;
    if (st == SS_OK) {
        for (int64_t i = 0; i < w.Ml; i++)
            w.lsef[i] = (float)(w.mx[i] + log(w.sm[i]));
        ss__ntxent_pos_dots(w.sm, w.x, V, N, D, 1); /* sm: positive dots */
        double k = 1.0 / ((double)o.temperature * (double)(V - 1));
        for (int64_t i = 0; i < w.Ml; i++) {
            w.mx[i] = (double)w.lsef[i] - k * w.sm[i]; /* mx: loss_i */
            total += w.mx[i];
        }
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) {
        ss__dntx_header_set(cache, RNTX_MAGIC, V, N, D, w.Ntot, &o);
        memcpy((char *)cache + SS__DNTX_HEADER_BYTES, w.lsef,
               (size_t)w.Ml * sizeof(float));
        for (int64_t i = 0; losses && i < w.Ml; i++)
            losses[i] = (float)w.mx[i];
        *loss = (float)(total / (double)(V * w.Ntot));
    }
    rntx_free(&w);
    return st;
}

ss_status ss_dist_ntxent_ring_backward(float *dz, float dloss,
                                       const void *cache, const float *z,
                                       int64_t V, int64_t N, int64_t D,
                                       const ss_ntxent_opts *opts,
                                       const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_ring_backward";
    SS_TRY(ss_comm_check(comm));
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__dntx_check_backward(fn, dz, cache, dloss);
    if (st == SS_OK) st = rntx_check(fn, z, V, N, D, &o, comm);
    if (st == SS_OK)
        st = ss__dntx_check_cache(fn, "ss_dist_ntxent_ring_forward", cache,
                                  RNTX_MAGIC, V, N, D, &o);
    rntx_work w;
    SS_TRY(rntx_setup(&w, fn, st, z, V, N, D, &o, comm, 1,
                      isfinite(dloss) ? dloss : 0.0f));
    st = ss__dist_status(comm, fn, ss__dntx_check_ntot(fn, cache, w.Ntot));
    if (st == SS_OK) {
        /* mean convention: world_size * dLglobal / dx_local */
        double f = (double)dloss * comm->size / (double)(V * w.Ntot);
        w.lse = (const float *)(const void *)((const char *)cache +
                                              SS__DNTX_HEADER_BYTES);
        memcpy((float *)w.blk[0] + w.Kmax * D, w.lse,
               (size_t)w.Ml * sizeof(float));
        w.c = (float)(f * w.inv_t);
        int64_t bytes = w.Kmax * (D + 1) * (int64_t)sizeof(float);
        st = ss__dist_ring(comm, fn, &w.blk[0], &w.blk[1], 0, bytes, w.counts,
                           rntx_bwd_step, &w);
        if (st == SS_OK) {
            ss__ntxent_pos_grad(w.dx, w.x,
                                -2.0 * f / ((double)o.temperature * (V - 1)),
                                V, N, D, 1);
            if (o.cosine)
                ss__normalize_backward(dz, w.dx, w.x, w.inv, z, w.Ml, D);
            else
                for (int64_t e = 0; e < w.Ml * D; e++) dz[e] += w.dx[e];
        }
    }
    rntx_free(&w);
    return st;
}
