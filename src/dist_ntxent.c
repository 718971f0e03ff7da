/*
 * dist_ntxent.c - NT-Xent over ranks, all-gather path, with the HCL and
 * debiased options. Contract and semantics: selfsup_comm.h and
 * docs/DISTRIBUTED.md; the tiled O(Ml M D) part is the all-gather engine
 * (dist_gc.h).
 *
 *   plain  one scale 1/t over every gathered row k != i;
 *   HCL    scales (1+beta)/t and beta/t (one when beta = 0) over the
 *          negatives only (rows of other samples), log neg = log Nq +
 *          L0 - L1 with Nq = V Ntot - V; the per-pair terms are ntxent.c's
 *          (ss__ntxent_hcl_pairs), since every sample's views share a rank.
 * Backward all-gathers the weights and log-sum-exps of every anchor and
 * recomputes this rank's tiles: the column terms P_kj of other ranks'
 * anchors need no reduce-scatter.
 */
#include "dist_gc.h"
#include "ntxent_internal.h"
#include "kernels/norm.h"

#include <string.h>

#define DNTX_MAGIC 0x3230584e54534453ull /* "SDSTNX02" */

typedef struct {
    uint64_t magic;
    int64_t V, N, D, Ntot;
    float temperature, hard_beta, tau_plus;
    int32_t cosine;
} dntx_header;

static int dntx_hcl(const ss_ntxent_opts *o) {
    return o->hard_beta > 0.0f || o->debias_tau_plus > 0.0f;
}

/* ---- shared with the ring path (ntxent_internal.h) ---------------------- */

ss_status ss__dntx_check_sizes(const char *fn, int64_t V, int64_t N,
                               int64_t D) {
    SS_TRY(ss__check_size(fn, "V", V, 2));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    return ss__check_product(fn, V, N, D);
}

ss_status ss__dntx_check_forward(const char *fn, const float *loss,
                                 const void *cache) {
    SS_TRY(ss__check_ptr(fn, "loss", loss));
    return ss__check_ptr(fn, "cache", cache);
}

ss_status ss__dntx_check_backward(const char *fn, const float *dz,
                                  const void *cache, float dloss) {
    SS_TRY(ss__check_ptr(fn, "dz", dz));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (!isfinite(dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)dloss);
    return SS_OK;
}

void ss__dntx_header_set(void *cache, uint64_t magic, int64_t V, int64_t N,
                         int64_t D, int64_t Ntot, const ss_ntxent_opts *o) {
    dntx_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.V = V, h.N = N, h.D = D, h.Ntot = Ntot;
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    h.hard_beta = o->hard_beta, h.tau_plus = o->debias_tau_plus;
    memcpy(cache, &h, sizeof h);
}

ss_status ss__dntx_check_cache(const char *fn, const char *writer,
                               const void *cache, uint64_t magic, int64_t V,
                               int64_t N, int64_t D, const ss_ntxent_opts *o) {
    dntx_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic != magic || h.V != V || h.N != N || h.D != D ||
        h.temperature != o->temperature || h.cosine != (o->cosine != 0) ||
        h.hard_beta != o->hard_beta || h.tau_plus != o->debias_tau_plus)
        return ss__fail(SS_ERR_PARAM, fn,
                        "cache was not written by %s with these sizes and "
                        "options (V = %lld, N = %lld, D = %lld)", writer,
                        (long long)V, (long long)N, (long long)D);
    return SS_OK;
}

ss_status ss__dntx_check_ntot(const char *fn, const void *cache,
                              int64_t Ntot) {
    dntx_header h;
    memcpy(&h, cache, sizeof h);
    if (h.Ntot != Ntot)
        return ss__fail(SS_ERR_PARAM, fn, "cache was written for a global "
                        "batch of %lld samples, now %lld", (long long)h.Ntot,
                        (long long)Ntot);
    return SS_OK;
}

/* ---- the all-gather path ------------------------------------------------- */

size_t ss_dist_ntxent_cache_size(int64_t V, int64_t N, int64_t D) {
    if (ss__dntx_check_sizes("ss_dist_ntxent_cache_size", V, N, D) != SS_OK)
        return 0;
    return SS__DNTX_HEADER_BYTES + (size_t)(2 * V * N) * sizeof(float);
}

/* Agreement, gathered rows and the engine problem for these options. */
static ss_status dntx_setup(ss__dgc *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *o, const ss_comm *c,
                            float dloss) {
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "hard_beta", "debias_tau_plus",
                                        "dloss"};
    double vals[7] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, (double)o->hard_beta,
                      (double)o->debias_tau_plus, (double)dloss};
    int hcl = dntx_hcl(o);
    float t = o->temperature, b = o->hard_beta;
    ss__dgc_opts go = {o->cosine != 0, hcl, 0, 1, {1.0f / t, 0.0f}};
    if (hcl) go.scale[0] = (1.0f + b) / t;
    if (hcl && b > 0.0f) go.nscales = 2, go.scale[1] = b / t;
    return ss__dgc_setup(w, fn, st, z, V, N, D, &go, vals, names, 7, c);
}

/* HCL: (Ml, S) engine layout <-> (2, Ml) of ss__ntxent_hcl_pairs. */
static void dntx_split(float *lse2, const float *L, const ss__dgc *w) {
    for (int64_t i = 0; i < w->Ml; i++)
        for (int64_t c = 0; c < w->S; c++)
            lse2[c * w->Ml + i] = L[i * w->S + c];
}

/* Per-anchor losses li (Ml) from the lse L (Ml, S); returns their sum. */
static double dntx_losses(double *li, const float *L, const ss__dgc *w,
                          const ss_ntxent_opts *o, float *tmp2) {
    int64_t V = w->V, N = w->N, Ml = w->Ml;
    if (dntx_hcl(o)) {
        dntx_split(tmp2, L, w);
        return ss__ntxent_hcl_pairs(li, NULL, NULL, 0.0, w->x, tmp2, V, N,
                                    w->D, o, w->S == 2, w->M - V);
    }
    double k = 1.0 / ((double)o->temperature * (double)(V - 1)), total = 0.0;
    ss__ntxent_pos_dots(li, w->x, V, N, w->D, ss__threads());
    for (int64_t i = 0; i < Ml; i++) {
        li[i] = (double)L[i] - k * li[i];
        total += li[i];
    }
    return total;
}

ss_status ss_dist_ntxent_forward(float *loss, float *losses, void *cache,
                                 const float *z, int64_t V, int64_t N,
                                 int64_t D, const ss_ntxent_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_forward";
    SS_TRY(ss_comm_check(comm)); /* cannot agree without a comm */
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__dntx_check_forward(fn, loss, cache);
    if (st == SS_OK) st = ss__ntxent_check(fn, z, V, N, D, &o);
    ss__dgc w;
    SS_TRY(dntx_setup(&w, fn, st, z, V, N, D, &o, comm, 0.0f));
    float *L = ss__malloc((size_t)(2 * w.Ml) * sizeof(float));
    float *tmp2 = ss__malloc((size_t)(2 * w.Ml) * sizeof(float));
    double *li = ss__malloc((size_t)w.Ml * sizeof(double));
    st = L && tmp2 && li ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for "
                                            "%lld anchors", (long long)w.Ml);
    st = ss__dist_status(comm, fn, st);
    double total = 0.0;
    if (st == SS_OK) {
        ss__dgc_lse(L, &w);
        total = dntx_losses(li, L, &w, &o, tmp2);
        st = ss__dist_allreduce(comm, fn, &total, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    }
    if (st == SS_OK) {
        ss__dntx_header_set(cache, DNTX_MAGIC, V, N, D, w.Ntot, &o);
        memcpy((char *)cache + SS__DNTX_HEADER_BYTES, L,
               (size_t)(w.Ml * w.S) * sizeof(float));
        if (losses)
            for (int64_t i = 0; i < w.Ml; i++) losses[i] = (float)li[i];
        *loss = (float)(total / (double)w.M);
    }
    ss__free(L), ss__free(tmp2), ss__free(li);
    ss__dgc_free(&w);
    return st;
}

/* Wl (Ml, S): weights of the engine terms, f = dloss W / M folded in. */
static void dntx_weights(float *Wl, const float *L, float *tmp2,
                         const ss__dgc *w, const ss_ntxent_opts *o, double f) {
    if (!dntx_hcl(o)) {
        for (int64_t i = 0; i < w->Ml; i++) Wl[i] = (float)f;
        return;
    }
    float *w2 = tmp2 + 2 * w->Ml; /* (2, Ml) weights, then to (Ml, S) */
    dntx_split(tmp2, L, w);
    ss__ntxent_hcl_pairs(NULL, w2, NULL, f, w->x, tmp2, w->V, w->N, w->D, o,
                         w->S == 2, w->M - w->V);
    for (int64_t i = 0; i < w->Ml; i++)
        for (int64_t c = 0; c < w->S; c++) Wl[i * w->S + c] = w2[c * w->Ml + i];
}

ss_status ss_dist_ntxent_backward(float *dz, float dloss, const void *cache,
                                  const float *z, int64_t V, int64_t N,
                                  int64_t D, const ss_ntxent_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_ntxent_backward";
    SS_TRY(ss_comm_check(comm));
    ss_ntxent_opts o = opts ? *opts : ss_ntxent_defaults();
    ss_status st = ss__dntx_check_backward(fn, dz, cache, dloss);
    if (st == SS_OK) st = ss__ntxent_check(fn, z, V, N, D, &o);
    if (st == SS_OK)
        st = ss__dntx_check_cache(fn, "ss_dist_ntxent_forward", cache,
                                  DNTX_MAGIC, V, N, D, &o);
    ss__dgc w;
    SS_TRY(dntx_setup(&w, fn, st, z, V, N, D, &o, comm,
                      isfinite(dloss) ? dloss : 0.0f));
    float *dx = o.cosine ? ss__calloc((size_t)(w.Ml * D) * sizeof(float)) : dz;
    float *Wl = ss__malloc((size_t)(2 * w.Ml) * sizeof(float));
    float *tmp = ss__malloc((size_t)(4 * w.Ml) * sizeof(float)), *wl = NULL;
    st = ss__dntx_check_ntot(fn, cache, w.Ntot);
    if (st == SS_OK && (!dx || !Wl || !tmp))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld rows",
                      (long long)w.Ml, (long long)D);
    st = ss__dist_status(comm, fn, st);
    /* mean convention: world_size * dLglobal / dx_local */
    double f = (double)dloss * comm->size / (double)w.M;
    const float *L = (const float *)((const char *)cache + SS__DNTX_HEADER_BYTES);
    if (st == SS_OK) {
        dntx_weights(Wl, L, tmp, &w, &o, f);
        st = ss__dgc_stats(&wl, fn, comm, &w, Wl, L);
    }
    if (st == SS_OK) {
        ss__dgc_grad(dx, wl, &w);
        if (dntx_hcl(&o)) {
            dntx_split(tmp, L, &w);
            ss__ntxent_hcl_pairs(NULL, NULL, dx, f, w.x, tmp, V, N, D, &o,
                                 w.S == 2, w.M - V);
        } else {
            ss__ntxent_pos_grad(dx, w.x,
                                -2.0 * f / ((double)o.temperature * (V - 1)),
                                V, N, D, 1);
        }
        if (o.cosine) ss__normalize_backward(dz, dx, w.x, w.inv, z, w.Ml, D);
    }
    if (o.cosine) ss__free(dx);
    ss__free(Wl), ss__free(tmp), ss__free(wl);
    ss__dgc_free(&w);
    return st;
}
