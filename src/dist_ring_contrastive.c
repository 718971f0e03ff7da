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
#include "dist_contrastive_internal.h"
#include "dist_ring_group.h"
#include "kernels/contrast.h"
#include "kernels/norm.h"

#include <string.h>

#define RSUP_MAGIC 0x3150555347525353ull /* "SSRGSUP1" */
#define RDCL_MAGIC 0x314c434447525353ull /* "SSRGDCL1" */
#define HDR_BYTES SS__DCON_HDR_BYTES

/* Local checks shared by every call: outputs (out, cache, finite dloss when
 * given), sendrecv, z (V >= vmin), temperature and the logit bound. */
static ss_status rcon_check(const char *fn, const void *out, const char *name,
                            const void *cache, const float *dloss,
                            const ss_comm *c, const float *z, int64_t V,
                            int64_t N, int64_t D, int64_t vmin, float t,
                            int cosine) {
    SS_TRY(ss__dcon_check_out(fn, out, name, cache, dloss));
    SS_TRY(ss__dist_check_ring(c, fn));
    return ss__dcon_check_z(fn, z, V, N, D, vmin, t, cosine);
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
        ss__dcon_header h =
            ss__dcon_supcon_header(RSUP_MAGIC, labels, V, N, D, &o);
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
        ss__dcon_header want =
            ss__dcon_supcon_header(RSUP_MAGIC, labels, V, N, D, &o);
        st = ss__dcon_check_cache(fn, cache, &want, "ring forward");
    }
    ss__drg w;
    SS_TRY(rsup_setup(&w, fn, st, z, labels, V, N, D, &o, 1,
                      isfinite(dloss) ? dloss : 0.0f, comm));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    const float *cnt = L + w.Ml;
    float *Wl = NULL;
    st = ss__dist_status(comm, fn, ss__dcon_check_ntot(fn, cache, w.Ntot));
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

size_t ss_dist_dcl_ring_cache_size(int64_t V, int64_t N, int64_t D) {
    return ss__dcon_dcl_cache_size("ss_dist_dcl_ring_cache_size", V, N, D);
}

static ss_status rdcl_check(const char *fn, const void *out, const char *name,
                            const void *cache, const float *dloss,
                            const ss_comm *c, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_dcl_opts *o) {
    SS_TRY(rcon_check(fn, out, name, cache, dloss, c, z, V, N, D, 2,
                      o->temperature, o->cosine));
    return ss__dcon_dcl_check(fn, V, N, o);
}

/* Agreement, allocation; the global batch needs Ntot >= 2 (a negative). */
static ss_status rdcl_setup(ss__drg *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_dcl_opts *o, int backward, float dloss,
                            const ss_comm *c) {
    double vals[SS__DCON_DCL_NAGREE];
    ss__dcon_dcl_vals(vals, V, D, o, dloss);
    ss__drg_opts go = {o->cosine != 0, 1, !o->joint_negatives,
                       1.0f / o->temperature, NULL};
    SS_TRY(ss__drg_setup(w, fn, st, z, V, N, D, &go, vals, ss__dcon_dcl_names,
                         SS__DCON_DCL_NAGREE, backward, c));
    st = ss__dist_min_total(fn, SS_OK, w->Ntot, 2, "samples (a negative)");
    if (st != SS_OK) ss__drg_free(w); /* the same verdict on every rank */
    return st;
}

/* loss_i of local anchor i (dist_contrastive_internal.h). */
static double rdcl_loss_i(const float *L, const double *pw, const ss__drg *w,
                          int64_t i) {
    return ss__dcon_dcl_loss_i(L, pw, w->x, w->V, w->N, w->D, w->S,
                               w->o.scale, i);
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
    if (st == SS_OK)
        st = ss__dcon_dcl_weights(pw, fn, w.x, N, D, w.Ntot, &o, comm);
    if (st == SS_OK) st = ss__drg_forward(L, &w, fn, comm);
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        sum += rdcl_loss_i(L, pw, &w, i);
    if (st == SS_OK)
        st = ss__dist_allreduce(comm, fn, &sum, 1, SS_COMM_DOUBLE, SS_COMM_SUM);
    if (st == SS_OK) {
        ss__dcon_header h = ss__dcon_dcl_header(RDCL_MAGIC, V, N, D, &o);
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
        ss__dcon_header want = ss__dcon_dcl_header(RDCL_MAGIC, V, N, D, &o);
        st = ss__dcon_check_cache(fn, cache, &want, "ring forward");
    }
    ss__drg w;
    SS_TRY(rdcl_setup(&w, fn, st, z, V, N, D, &o, 1,
                      isfinite(dloss) ? dloss : 0.0f, comm));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    int64_t nl = w.Ml * w.S;
    float *Wl = NULL; /* (Ml, S) weights, then N doubles */
    st = ss__dist_status(comm, fn, ss__dcon_check_ntot(fn, cache, w.Ntot));
    if (st == SS_OK) st = rcon_floats(&Wl, nl + 2 * N + 2, fn, comm);
    double *pw = Wl ? (double *)(void *)(Wl + nl + (nl & 1)) : NULL;
    double f = (double)dloss * comm->size / (double)(V * w.Ntot); /* mean */
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        for (int64_t u = 0; u < w.S; u++)
            Wl[i * w.S + u] = (float)(w.S == 1 || u == i / N
                                          ? f : f / (double)(V - 1));
    if (st == SS_OK)
        st = ss__dcon_dcl_weights(pw, fn, w.x, N, D, w.Ntot, &o, comm);
    if (st == SS_OK) st = ss__drg_backward(&w, Wl, L, fn, comm);
    if (st == SS_OK) {
        ss__dcon_dcl_pos_grad(w.dx, f, pw, w.x, V, N, D, w.o.scale);
        rcon_finish(dz, &w, z);
    }
    ss__free(Wl);
    ss__drg_free(&w);
    return st;
}
