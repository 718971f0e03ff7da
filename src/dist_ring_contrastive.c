/*
 * dist_ring_contrastive.c - SupCon and DCL / DCLW over ranks, ring path
 * (per-rank memory O(N_local D)), on the engine of dist_ring_group.h.
 * Contract: selfsup_comm.h; semantics: docs/DISTRIBUTED.md.
 *
 * SupCon: the labels travel with the row blocks; each rank keeps, per
 * local anchor, the online log-sum-exp over every k != i and the positive
 * sum pos_i = sum_{p in P(i)} x_p with cnt_i = |P(i)| (positives may be on
 * any rank). Every anchor of a group has the same |P(i)|, so the positive
 * term's gradient on x_j, as anchor and as positive, is 2 sc pos_j / cnt_j:
 * the backward pass forms pos_j again and nothing else is needed.
 * DCL: one log-sum-exp per (anchor, view of the negatives) excluding the
 * anchor's sample, or one when joint; positives share the rank. DCLW's
 * softmax over the samples is global: two scalar all-reduces.
 */
#include "dist_ring_group.h"
#include "kernels/contrast.h"
#include "kernels/norm.h"

#include <string.h>

#define RSUP_MAGIC 0x3150555347525353ull /* "SSRGSUP1" */
#define RDCL_MAGIC 0x314c434447525353ull /* "SSRGDCL1" */
#define HDR_BYTES 64

typedef struct {
    uint64_t magic, hash;
    int64_t V, N, D, Ntot;
    float temperature, sigma;
    int32_t cosine, flags;
} rcon_header;

/* The header matches want's call (all but Ntot): SS_ERR_PARAM otherwise. */
static ss_status rcon_check_cache(const char *fn, const void *cache,
                                  const rcon_header *want) {
    rcon_header h;
    memcpy(&h, cache, sizeof h);
    h.Ntot = want->Ntot;
    if (memcmp(&h, want, sizeof h) == 0) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "cache was not written by the matching "
                    "ring forward with these inputs, sizes and options (V = "
                    "%lld, N = %lld, D = %lld)", (long long)want->V,
                    (long long)want->N, (long long)want->D);
}

/* After the agreement: the cache's global batch is this call's. */
static ss_status rcon_check_ntot(const char *fn, const void *cache,
                                 int64_t Ntot) {
    rcon_header h;
    memcpy(&h, cache, sizeof h);
    if (h.Ntot == Ntot) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "cache was written for a global batch "
                    "of %lld samples, now %lld", (long long)h.Ntot,
                    (long long)Ntot);
}

/* Local checks shared by every call: outputs (out, cache, finite dloss when
 * given), sendrecv, z (V >= vmin), temperature and the logit bound. */
static ss_status rcon_check(const char *fn, const void *out, const char *name,
                            const void *cache, const float *dloss,
                            const ss_comm *c, const float *z, int64_t V,
                            int64_t N, int64_t D, int64_t vmin, float t,
                            int cosine) {
    SS_TRY(ss__check_ptr(fn, name, out));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (dloss && !isfinite(*dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)*dloss);
    SS_TRY(ss__dist_check_ring(c, fn));
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_size(fn, "V", V, vmin));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, V, N, D));
    SS_TRY(ss__gc_check_temperature(fn, t));
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    return ss__gc_check_logit_bound(fn, z, V * N, D, t, cosine);
}

/* Allocates n floats, agreed; NULL on every rank's error. */
static ss_status rcon_floats(float **p, int64_t n, const char *fn,
                             const ss_comm *c) {
    *p = ss__malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ss_status st = *p ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for "
                                         "%lld floats", (long long)n);
    st = ss__dist_status(c, fn, st);
    if (st != SS_OK) ss__free(*p), *p = NULL;
    return st;
}

/* dz += dx through the normalisation (cosine) or directly. */
static void rcon_finish(float *dz, const ss__drg *w, const float *z) {
    if (w->o.cosine)
        ss__normalize_backward(dz, w->dx, w->x, w->inv, z, w->Ml, w->D);
    else
        for (int64_t e = 0; e < w->Ml * w->D; e++) dz[e] += w->dx[e];
}

/* ==== SupCon ============================================================== */

/* FNV-1a of the local labels: backward checks forward's. */
static uint64_t rsup_hash(const int64_t *labels, int64_t N) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t n = 0; n < N; n++)
        for (int b = 0; b < 64; b += 8)
            h = (h ^ (((uint64_t)labels[n] >> b) & 0xff)) * 0x100000001b3ull;
    return h;
}

static rcon_header rsup_header(const int64_t *labels, int64_t V, int64_t N,
                               int64_t D, const ss_supcon_opts *o) {
    rcon_header h;
    memset(&h, 0, sizeof h);
    h.magic = RSUP_MAGIC, h.hash = labels ? rsup_hash(labels, N) : 0;
    h.V = V, h.N = N, h.D = D;
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    return h;
}

size_t ss_dist_supcon_ring_cache_size(int64_t V, int64_t N, int64_t D) {
    static const char fn[] = "ss_dist_supcon_ring_cache_size";
    if (ss__check_size(fn, "V", V, 1) || ss__check_size(fn, "N", N, 1) ||
        ss__check_size(fn, "D", D, 1) || ss__check_product(fn, V, N, D))
        return 0;
    return HDR_BYTES + (size_t)(2 * V * N) * sizeof(float); /* lse, cnt */
}

static ss_status rsup_check(const char *fn, const void *out, const char *name,
                            const void *cache, const float *dloss,
                            const ss_comm *c, const float *z,
                            const int64_t *labels, int64_t V, int64_t N,
                            int64_t D, const ss_supcon_opts *o) {
    SS_TRY(rcon_check(fn, out, name, cache, dloss, c, z, V, N, D, 1,
                      o->temperature, o->cosine));
    SS_TRY(ss__check_ptr(fn, "labels", labels));
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < -1)
            return ss__fail(SS_ERR_LABEL, fn, "labels[%lld] must be >= 0 (a "
                            "class) or -1 (unlabeled), got %lld",
                            (long long)n, (long long)labels[n]);
    return SS_OK;
}

static ss_status rsup_setup(ss__drg *w, const char *fn, ss_status st,
                            const float *z, const int64_t *labels, int64_t V,
                            int64_t N, int64_t D, const ss_supcon_opts *o,
                            int backward, float dloss, const ss_comm *c) {
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "dloss"};
    double vals[5] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, (double)dloss};
    ss__drg_opts go = {o->cosine != 0, 0, 0, 1.0f / o->temperature, labels};
    return ss__drg_setup(w, fn, st, z, V, N, D, &go, vals, names, 5,
                         backward, c);
}

/* loss_i = L_i - sc <x_i, pos_i> / cnt_i, 0 without a positive. */
static double rsup_loss_i(const ss__drg *w, const float *L, int64_t i) {
    if (w->cnt[i] <= 0) return 0.0;
    double dot = 0.0;
    for (int64_t d = 0; d < w->D; d++)
        dot += (double)w->x[i * w->D + d] * w->pos[i * w->D + d];
    return (double)L[i] - dot * w->o.scale / (double)w->cnt[i];
}

ss_status ss_dist_supcon_ring_forward(float *loss, float *losses, void *cache,
                                      const float *z, const int64_t *labels,
                                      int64_t V, int64_t N, int64_t D,
                                      const ss_supcon_opts *opts,
                                      const ss_comm *comm) {
    static const char fn[] = "ss_dist_supcon_ring_forward";
    SS_TRY(ss_comm_check(comm));
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    ss_status st = rsup_check(fn, loss, "loss", cache, NULL, comm, z, labels,
                              V, N, D, &o);
    ss__drg w;
    SS_TRY(rsup_setup(&w, fn, st, z, labels, V, N, D, &o, 0, 0.0f, comm));
    float *L = NULL;
    st = rcon_floats(&L, w.Ml, fn, comm);
    if (st == SS_OK) st = ss__drg_forward(L, &w, fn, comm);
    double sum[2] = {0.0, 0.0}; /* loss sum, anchors with a positive */
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        sum[0] += rsup_loss_i(&w, L, i), sum[1] += w.cnt[i] > 0;
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, sum, 2, SS_COMM_DOUBLE, SS_COMM_SUM);
    if (st == SS_OK) {
        rcon_header h = rsup_header(labels, V, N, D, &o);
        h.Ntot = w.Ntot;
        memcpy(cache, &h, sizeof h);
        float *c = (float *)(void *)((char *)cache + HDR_BYTES);
        for (int64_t i = 0; i < w.Ml; i++) {
            c[i] = L[i], c[w.Ml + i] = (float)w.cnt[i];
            if (losses) losses[i] = (float)rsup_loss_i(&w, L, i);
        }
        *loss = sum[1] > 0 ? (float)(sum[0] / sum[1]) : 0.0f;
    }
    ss__free(L);
    ss__drg_free(&w);
    return st;
}

ss_status ss_dist_supcon_ring_backward(float *dz, float dloss,
                                       const void *cache, const float *z,
                                       const int64_t *labels, int64_t V,
                                       int64_t N, int64_t D,
                                       const ss_supcon_opts *opts,
                                       const ss_comm *comm) {
    static const char fn[] = "ss_dist_supcon_ring_backward";
    SS_TRY(ss_comm_check(comm));
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    ss_status st = rsup_check(fn, dz, "dz", cache, &dloss, comm, z, labels, V,
                              N, D, &o);
    if (st == SS_OK) {
        rcon_header want = rsup_header(labels, V, N, D, &o);
        st = rcon_check_cache(fn, cache, &want);
    }
    ss__drg w;
    SS_TRY(rsup_setup(&w, fn, st, z, labels, V, N, D, &o, 1,
                      isfinite(dloss) ? dloss : 0.0f, comm));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    const float *cnt = L + w.Ml;
    float *Wl = NULL;
    st = ss__dist_status(comm, fn, rcon_check_ntot(fn, cache, w.Ntot));
    if (st == SS_OK) st = rcon_floats(&Wl, w.Ml, fn, comm);
    double active = 0.0;
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++) active += cnt[i] > 0;
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &active, 1, SS_COMM_DOUBLE,
                                SS_COMM_SUM);
    /* mean convention; anchors without a positive have no lse term */
    double f = active > 0 ? (double)dloss * comm->size / active : 0.0;
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        Wl[i] = cnt[i] > 0 ? (float)f : 0.0f;
    if (st == SS_OK && active > 0) st = ss__drg_backward(&w, Wl, L, fn, comm);
    if (st == SS_OK && active > 0) {
        for (int64_t i = 0; i < w.Ml; i++) {
            if (w.cnt[i] <= 0) continue;
            double k = -2.0 * f * w.o.scale / (double)w.cnt[i];
            for (int64_t d = 0; d < D; d++)
                w.dx[i * D + d] += (float)(k * w.pos[i * D + d]);
        }
        rcon_finish(dz, &w, z);
    }
    ss__free(Wl);
    ss__drg_free(&w);
    return st;
}

/* ==== DCL / DCLW ========================================================== */

static const float *rdcl_row(const ss__drg *w, int64_t v, int64_t n) {
    return w->x + (v * w->N + n) * w->D;
}

static double rdcl_dot(const float *a, const float *b, int64_t D) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s;
}

/* pw: (N) positive weights, 1 (DCL) or 2 - Ntot softmax_n(<x_0n, x_1n> /
 * sigma) over the GLOBAL samples (DCLW): all-reduced max and sum. */
static ss_status rdcl_weights(double *pw, const char *fn, const ss__drg *w,
                              const ss_dcl_opts *o, const ss_comm *c) {
    int64_t N = w->N;
    for (int64_t n = 0; n < N; n++) pw[n] = 1.0;
    if (!o->weighted) return SS_OK;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t n = 0; n < N; n++) {
        pw[n] = rdcl_dot(rdcl_row(w, 0, n), rdcl_row(w, 1, n), w->D) /
                o->sigma;
        if (pw[n] > mx) mx = pw[n];
    }
    SS_TRY(ss__dist_allreduce(c, fn, &mx, 1, SS_COMM_DOUBLE, SS_COMM_MAX));
    for (int64_t n = 0; n < N; n++) sum += exp(pw[n] - mx);
    SS_TRY(ss__dist_allreduce(c, fn, &sum, 1, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int64_t n = 0; n < N; n++)
        pw[n] = 2.0 - (double)w->Ntot * exp(pw[n] - mx) / sum;
    return SS_OK;
}

static rcon_header rdcl_header(int64_t V, int64_t N, int64_t D,
                               const ss_dcl_opts *o) {
    rcon_header h;
    memset(&h, 0, sizeof h);
    h.magic = RDCL_MAGIC, h.V = V, h.N = N, h.D = D;
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    h.sigma = o->weighted ? o->sigma : 0.0f; /* unused otherwise */
    h.flags = (o->weighted != 0) | (o->joint_negatives != 0) << 1;
    return h;
}

size_t ss_dist_dcl_ring_cache_size(int64_t V, int64_t N, int64_t D) {
    static const char fn[] = "ss_dist_dcl_ring_cache_size";
    if (ss__check_size(fn, "V", V, 2) || ss__check_size(fn, "N", N, 1) ||
        ss__check_size(fn, "D", D, 1) || ss__check_product(fn, V, N, D) ||
        ss__check_product(fn, V, V, N))
        return 0;
    return HDR_BYTES + (size_t)(V * V * N) * sizeof(float);
}

static ss_status rdcl_check(const char *fn, const void *out, const char *name,
                            const void *cache, const float *dloss,
                            const ss_comm *c, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_dcl_opts *o) {
    SS_TRY(rcon_check(fn, out, name, cache, dloss, c, z, V, N, D, 2,
                      o->temperature, o->cosine));
    SS_TRY(ss__check_product(fn, V, V, N));
    if (o->weighted) {
        SS_TRY(ss__check_positive(fn, "sigma", o->sigma));
        if (V != 2)
            return ss__fail(SS_ERR_PARAM, fn, "weighted (DCLW) needs V = 2 "
                            "views, got V = %lld", (long long)V);
    }
    return SS_OK;
}

/* Agreement, allocation; the global batch needs Ntot >= 2 (a negative). */
static ss_status rdcl_setup(ss__drg *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_dcl_opts *o, int backward, float dloss,
                            const ss_comm *c) {
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "weighted", "sigma",
                                        "joint_negatives", "dloss"};
    double vals[8] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, o->weighted ? 1.0 : 0.0,
                      o->weighted ? (double)o->sigma : 0.0,
                      o->joint_negatives ? 1.0 : 0.0, (double)dloss};
    ss__drg_opts go = {o->cosine != 0, 1, !o->joint_negatives,
                       1.0f / o->temperature, NULL};
    SS_TRY(ss__drg_setup(w, fn, st, z, V, N, D, &go, vals, names, 8,
                         backward, c));
    st = ss__dist_min_total(fn, SS_OK, w->Ntot, 2, "samples (a negative)");
    if (st != SS_OK) ss__drg_free(w); /* the same verdict on every rank */
    return st;
}

/* loss_i from L (Ml, S) and the positive weights. */
static double rdcl_loss_i(const float *L, const double *pw, const ss__drg *w,
                          int64_t i) {
    int64_t V = w->V, N = w->N, S = w->S, v = i / N, n = i % N;
    double neg = S == 1 ? L[i] : L[i * S + v], mean = 0.0;
    for (int64_t u = 0; u < V; u++) {
        if (u == v) continue;
        double pos = rdcl_dot(rdcl_row(w, v, n), rdcl_row(w, u, n), w->D);
        if (S > 1) mean += L[i * S + u];
        mean -= pw[n] * pos * w->o.scale;
    }
    return neg + mean / (double)(V - 1);
}

/* dx += f d/dx of -w_n s((v,n),(u,n)) / (V - 1) (each in two anchors). */
static void rdcl_pos_grad(ss__drg *w, double f, const double *pw) {
    int64_t V = w->V, N = w->N, D = w->D;
    double k = -2.0 * f * w->o.scale / (double)(V - 1);
    for (int64_t i = 0; i < w->Ml; i++) {
        int64_t v = i / N, n = i % N;
        float c = (float)(k * pw[n]);
        for (int64_t u = 0; u < V; u++) {
            const float *xu = rdcl_row(w, u, n);
            for (int64_t d = 0; u != v && d < D; d++)
                w->dx[i * D + d] += c * xu[d];
        }
    }
}

ss_status ss_dist_dcl_ring_forward(float *loss, float *losses, void *cache,
                                   const float *z, int64_t V, int64_t N,
                                   int64_t D, const ss_dcl_opts *opts,
                                   const ss_comm *comm) {
    static const char fn[] = "ss_dist_dcl_ring_forward";
    SS_TRY(ss_comm_check(comm));
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    ss_status st = rdcl_check(fn, loss, "loss", cache, NULL, comm, z, V, N, D,
                              &o);
    ss__drg w;
    SS_TRY(rdcl_setup(&w, fn, st, z, V, N, D, &o, 0, 0.0f, comm));
    float *L = NULL; /* (Ml, S) lse, then N doubles of weights */
    int64_t nl = w.Ml * w.S;
    st = rcon_floats(&L, nl + 2 * N + 2, fn, comm);
    double *pw = L ? (double *)(void *)(L + nl + (nl & 1)) : NULL, sum = 0;
    if (st == SS_OK) st = rdcl_weights(pw, fn, &w, &o, comm);
    if (st == SS_OK) st = ss__drg_forward(L, &w, fn, comm);
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        sum += rdcl_loss_i(L, pw, &w, i);
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &sum, 1, SS_COMM_DOUBLE, SS_COMM_SUM);
    if (st == SS_OK) {
        rcon_header h = rdcl_header(V, N, D, &o);
        h.Ntot = w.Ntot;
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + HDR_BYTES, L, (size_t)nl * sizeof(float));
        for (int64_t i = 0; losses && i < w.Ml; i++)
            losses[i] = (float)rdcl_loss_i(L, pw, &w, i);
        *loss = (float)(sum / (double)(V * w.Ntot));
    }
    ss__free(L);
    ss__drg_free(&w);
    return st;
}

ss_status ss_dist_dcl_ring_backward(float *dz, float dloss, const void *cache,
                                    const float *z, int64_t V, int64_t N,
                                    int64_t D, const ss_dcl_opts *opts,
                                    const ss_comm *comm) {
    static const char fn[] = "ss_dist_dcl_ring_backward";
    SS_TRY(ss_comm_check(comm));
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    ss_status st = rdcl_check(fn, dz, "dz", cache, &dloss, comm, z, V, N, D,
                              &o);
    if (st == SS_OK) {
        rcon_header want = rdcl_header(V, N, D, &o);
        st = rcon_check_cache(fn, cache, &want);
    }
    ss__drg w;
    SS_TRY(rdcl_setup(&w, fn, st, z, V, N, D, &o, 1,
                      isfinite(dloss) ? dloss : 0.0f, comm));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    int64_t nl = w.Ml * w.S;
    float *Wl = NULL; /* (Ml, S) weights, then N doubles */
    st = ss__dist_status(comm, fn, rcon_check_ntot(fn, cache, w.Ntot));
    if (st == SS_OK) st = rcon_floats(&Wl, nl + 2 * N + 2, fn, comm);
    double *pw = Wl ? (double *)(void *)(Wl + nl + (nl & 1)) : NULL;
    double f = (double)dloss * comm->size / (double)(V * w.Ntot); /* mean */
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        for (int64_t u = 0; u < w.S; u++)
            Wl[i * w.S + u] = (float)(w.S == 1 || u == i / N
                                          ? f : f / (double)(V - 1));
    if (st == SS_OK) st = rdcl_weights(pw, fn, &w, &o, comm);
    if (st == SS_OK) st = ss__drg_backward(&w, Wl, L, fn, comm);
    if (st == SS_OK) {
        rdcl_pos_grad(&w, f, pw);
        rcon_finish(dz, &w, z);
    }
    ss__free(Wl);
    ss__drg_free(&w);
    return st;
}
