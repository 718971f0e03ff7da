/*
 * dist_contrastive.c - SupCon and DCL / DCLW over ranks, all-gather path,
 * on the engine of dist_gc.h. Contract: selfsup_comm.h; semantics:
 * docs/DISTRIBUTED.md.
 *
 * SupCon: denominators over every gathered row k != i; the labels are
 * all-gathered with the rows, so every rank forms the same global groups
 * (labelled samples by label, each unlabeled sample alone) and the
 * positive term <x_i, G_g - x_i> / (c_g - 1) from per-group sums of the
 * gathered rows.
 * DCL: one log-sum-exp per (anchor, view of the negatives) excluding the
 * anchor's sample (class: the view), or one over all views when joint;
 * positives share the rank. DCLW's softmax over the samples is global: two
 * scalar all-reduces (max, then the sum).
 */
#include "dist_contrastive_internal.h"
#include "dist_gc.h"
#include "kernels/contrast.h"
#include "kernels/norm.h"

#include <stdlib.h>
#include <string.h>

#define DSUP_MAGIC 0x31505553434453ull /* "SDCSUP1" */
#define DDCL_MAGIC 0x314c43444453ull   /* "SDDCL1" */
#define HDR_BYTES SS__DCON_HDR_BYTES

static double dcon_dot(const float *a, const float *b, int64_t D) {
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += (double)a[d] * b[d];
    return s;
}

ss_status ss__dcon_check_cache(const char *fn, const void *cache,
                               const ss__dcon_header *want, const char *what) {
    ss__dcon_header h;
    memcpy(&h, cache, sizeof h);
    if (h.magic == want->magic && h.hash == want->hash && h.V == want->V &&
        h.N == want->N && h.D == want->D &&
        h.temperature == want->temperature && h.sigma == want->sigma &&
        h.cosine == want->cosine && h.flags == want->flags)
        return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "cache was not written by the matching "
                    "%s with these inputs, sizes and options (V = %lld, "
                    "N = %lld, D = %lld)", what, (long long)want->V,
                    (long long)want->N, (long long)want->D);
}

ss_status ss__dcon_check_ntot(const char *fn, const void *cache,
                              int64_t Ntot) {
    ss__dcon_header h;
    memcpy(&h, cache, sizeof h);
    if (h.Ntot == Ntot) return SS_OK;
    return ss__fail(SS_ERR_PARAM, fn, "cache was written for a global batch "
                    "of %lld samples, now %lld", (long long)h.Ntot,
                    (long long)Ntot);
}

ss_status ss__dcon_check_z(const char *fn, const float *z, int64_t V,
                           int64_t N, int64_t D, int64_t vmin, float t,
                           int cosine) {
    SS_TRY(ss__check_ptr(fn, "z", z));
    SS_TRY(ss__check_size(fn, "V", V, vmin));
    SS_TRY(ss__check_size(fn, "N", N, 1));
    SS_TRY(ss__check_size(fn, "D", D, 1));
    SS_TRY(ss__check_product(fn, V, N, D));
    SS_TRY(ss__gc_check_temperature(fn, t));
    SS_TRY(ss__check_finite(fn, "z", z, V * N * D));
    return ss__gc_check_logit_bound(fn, z, V * N, D, t, cosine);
}

ss_status ss__dcon_check_out(const char *fn, const void *out,
                             const char *name, const void *cache,
                             const float *dloss) {
    SS_TRY(ss__check_ptr(fn, name, out));
    SS_TRY(ss__check_ptr(fn, "cache", cache));
    if (dloss && !isfinite(*dloss))
        return ss__fail(SS_ERR_PARAM, fn, "dloss must be finite, got %g",
                        (double)*dloss);
    return SS_OK;
}

/* Sum over ranks of the local loss sum (in place), agreed. */
static ss_status dcon_total(double *total, const char *fn, const ss_comm *c) {
    return ss__dist_allreduce(c, fn, total, 1, SS_COMM_DOUBLE, SS_COMM_SUM);
}

/* dz += dx through the normalisation (cosine) or directly. */
static void dcon_finish(float *dz, const float *dx, const ss__dgc *w,
                        const float *z) {
    if (w->o.cosine)
        ss__normalize_backward(dz, dx, w->x, w->inv, z, w->Ml, w->D);
    else
        for (int64_t i = 0; i < w->Ml * w->D; i++) dz[i] += dx[i];
}

/* ==== SupCon ============================================================== */

typedef struct {
    int64_t *gid;   /* (Ntot) group of each global sample */
    int64_t *rows;  /* (Ntot) rows per group */
    double *G;      /* (ngroups, D) per-group sums of the gathered rows */
    int64_t active; /* anchors with a positive, global */
} dsup_groups;

static void dsup_free(dsup_groups *g) {
    ss__free(g->gid), ss__free(g->rows), ss__free(g->G);
}

static int cmp_pair(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Groups of the global labels lab (Ntot): sorted (label, sample) pairs;
 * pairs: (2 Ntot) scratch. Then the per-group sums of the gathered rows. */
static void dsup_group(dsup_groups *g, int64_t *pairs, const int64_t *lab,
                       const ss__dgc *w) {
    int64_t Nt = w->Ntot, nl = 0, ng = 0, D = w->D;
    for (int64_t n = 0; n < Nt; n++)
        if (lab[n] >= 0) pairs[2 * nl] = lab[n], pairs[2 * nl++ + 1] = n;
    qsort(pairs, (size_t)nl, 2 * sizeof(int64_t), cmp_pair);
    for (int64_t k = 0; k < nl; k++) {
        if (k == 0 || pairs[2 * k] != pairs[2 * k - 2]) g->rows[ng++] = 0;
        g->gid[pairs[2 * k + 1]] = ng - 1, g->rows[ng - 1] += w->V;
    }
    for (int64_t n = 0; n < Nt; n++)
        if (lab[n] < 0) g->gid[n] = ng, g->rows[ng++] = w->V;
    memset(g->G, 0, (size_t)(ng * D) * sizeof(double));
    for (int64_t k = 0; k < w->M; k++) {
        double *s = g->G + g->gid[w->smp_all[k]] * D;
        for (int64_t d = 0; d < D; d++) s[d] += w->xall[k * D + d];
    }
    g->active = 0;
    for (int64_t n = 0; n < Nt; n++)
        if (g->rows[g->gid[n]] >= 2) g->active += w->V;
}

/* Gathers the labels and forms the groups (agreed). */
static ss_status dsup_groups_make(dsup_groups *g, const char *fn,
                                  const int64_t *labels, const ss__dgc *w,
                                  const ss_comm *c) {
    int64_t Nt = w->Ntot;
    memset(g, 0, sizeof *g);
    int64_t *lab = ss__malloc((size_t)(3 * Nt) * sizeof(int64_t));
    g->gid = ss__malloc((size_t)Nt * sizeof(int64_t));
    g->rows = ss__malloc((size_t)Nt * sizeof(int64_t));
    g->G = ss__malloc((size_t)(Nt * w->D) * sizeof(double));
    ss_status st = lab && g->gid && g->rows && g->G
                       ? SS_OK
                       : ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld "
                                  "groups", (long long)Nt);
    st = ss__dist_status(c, fn, st);
    if (st == SS_OK)
        st = ss__dist_allgather_rows(c, fn, labels, lab, w->counts, 1,
                                     sizeof(int64_t), w->bytes);
    if (st == SS_OK) dsup_group(g, lab + Nt, lab, w);
    ss__free(lab);
    if (st != SS_OK) dsup_free(g);
    return st;
}

/* Group and its row count of local row i. */
static int64_t dsup_gid(const dsup_groups *g, const ss__dgc *w, int64_t i) {
    return g->gid[w->off + i % w->N];
}

/* li (Ml) = lse - <x_i, G - x_i> / (t (c - 1)) for active anchors, else 0;
 * returns the local sum. */
static double dsup_losses(double *li, const float *L, const dsup_groups *g,
                          const ss__dgc *w) {
    double total = 0.0, sc = w->o.scale[0];
    for (int64_t i = 0; i < w->Ml; i++) {
        int64_t gi = dsup_gid(g, w, i), c = g->rows[gi];
        li[i] = 0.0;
        if (c >= 2) {
            const float *xi = w->x + i * w->D;
            const double *G = g->G + gi * w->D;
            double pos = 0.0;
            for (int64_t d = 0; d < w->D; d++)
                pos += (double)xi[d] * (G[d] - xi[d]);
            li[i] = (double)L[i] - pos * sc / (double)(c - 1);
        }
        total += li[i];
    }
    return total;
}

/* dx += d/dx of the positive terms: -2 f sc (G - x_i) / (c - 1). */
static void dsup_pos_grad(float *dx, double f, const dsup_groups *g,
                          const ss__dgc *w) {
    for (int64_t i = 0; i < w->Ml; i++) {
        int64_t gi = dsup_gid(g, w, i), c = g->rows[gi];
        if (c < 2) continue;
        double k = -2.0 * f * w->o.scale[0] / (double)(c - 1);
        const double *G = g->G + gi * w->D;
        for (int64_t d = 0; d < w->D; d++)
            dx[i * w->D + d] += (float)(k * (G[d] - w->x[i * w->D + d]));
    }
}

/* FNV-1a of the local labels: backward checks forward's. */
static uint64_t dcon_label_hash(const int64_t *labels, int64_t N) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t n = 0; n < N; n++)
        for (int b = 0; b < 64; b += 8)
            h = (h ^ (((uint64_t)labels[n] >> b) & 0xff)) * 0x100000001b3ull;
    return h;
}

ss__dcon_header ss__dcon_supcon_header(uint64_t magic, const int64_t *labels,
                                       int64_t V, int64_t N, int64_t D,
                                       const ss_supcon_opts *o) {
    ss__dcon_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.hash = labels ? dcon_label_hash(labels, N) : 0;
    h.V = V, h.N = N, h.D = D;
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    return h;
}

size_t ss_dist_supcon_cache_size(int64_t V, int64_t N, int64_t D) {
    static const char fn[] = "ss_dist_supcon_cache_size";
    if (ss__check_size(fn, "V", V, 1) || ss__check_size(fn, "N", N, 1) ||
        ss__check_size(fn, "D", D, 1) || ss__check_product(fn, V, N, D))
        return 0;
    return HDR_BYTES + (size_t)(V * N) * sizeof(float);
}

/* Local checks of the inputs shared by forward and backward. */
static ss_status dsup_check(const char *fn, const float *z,
                            const int64_t *labels, int64_t V, int64_t N,
                            int64_t D, const ss_supcon_opts *o) {
    SS_TRY(ss__check_ptr(fn, "labels", labels));
    SS_TRY(ss__dcon_check_z(fn, z, V, N, D, 1, o->temperature, o->cosine));
    for (int64_t n = 0; n < N; n++)
        if (labels[n] < -1)
            return ss__fail(SS_ERR_LABEL, fn, "labels[%lld] must be >= 0 (a "
                            "class) or -1 (unlabeled), got %lld",
                            (long long)n, (long long)labels[n]);
    return SS_OK;
}

/* Agreement, rows, labels and groups. */
static ss_status dsup_setup(ss__dgc *w, dsup_groups *g, const char *fn,
                            ss_status st, const float *z,
                            const int64_t *labels, int64_t V, int64_t N,
                            int64_t D, const ss_supcon_opts *o,
                            const ss_comm *c, float dloss) {
    static const char *const names[] = {"V", "D", "temperature", "cosine",
                                        "dloss"};
    double vals[5] = {(double)V, (double)D, (double)o->temperature,
                      o->cosine ? 1.0 : 0.0, (double)dloss};
    ss__dgc_opts go = {o->cosine != 0, 0, 0, 1, {1.0f / o->temperature, 0}};
    SS_TRY(ss__dgc_setup(w, fn, st, z, V, N, D, &go, vals, names, 5, c));
    st = dsup_groups_make(g, fn, labels, w, c);
    if (st != SS_OK) ss__dgc_free(w);
    return st;
}

ss_status ss_dist_supcon_forward(float *loss, float *losses, void *cache,
                                 const float *z, const int64_t *labels,
                                 int64_t V, int64_t N, int64_t D,
                                 const ss_supcon_opts *opts,
                                 const ss_comm *comm) {
    static const char fn[] = "ss_dist_supcon_forward";
    SS_TRY(ss_comm_check(comm));
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    ss_status st = ss__dcon_check_out(fn, loss, "loss", cache, NULL);
    if (st == SS_OK) st = dsup_check(fn, z, labels, V, N, D, &o);
    ss__dgc w;
    dsup_groups g;
    SS_TRY(dsup_setup(&w, &g, fn, st, z, labels, V, N, D, &o, comm, 0.0f));
    float *L = ss__malloc((size_t)w.Ml * sizeof(float));
    double *li = ss__malloc((size_t)w.Ml * sizeof(double)), total = 0.0;
    st = L && li ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld "
                                    "anchors", (long long)w.Ml);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK) {
        ss__dgc_lse(L, &w);
        total = dsup_losses(li, L, &g, &w);
        st = dcon_total(&total, fn, comm);
    }
    if (st == SS_OK) {
        ss__dcon_header h =
            ss__dcon_supcon_header(DSUP_MAGIC, labels, V, N, D, &o);
        h.Ntot = w.Ntot;
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + HDR_BYTES, L, (size_t)w.Ml * sizeof(float));
        for (int64_t i = 0; losses && i < w.Ml; i++) losses[i] = (float)li[i];
        *loss = g.active ? (float)(total / (double)g.active) : 0.0f;
    }
    ss__free(L), ss__free(li);
    dsup_free(&g);
    ss__dgc_free(&w);
    return st;
}

ss_status ss_dist_supcon_backward(float *dz, float dloss, const void *cache,
                                  const float *z, const int64_t *labels,
                                  int64_t V, int64_t N, int64_t D,
                                  const ss_supcon_opts *opts,
                                  const ss_comm *comm) {
    static const char fn[] = "ss_dist_supcon_backward";
    SS_TRY(ss_comm_check(comm));
    ss_supcon_opts o = opts ? *opts : ss_supcon_defaults();
    ss_status st = ss__dcon_check_out(fn, dz, "dz", cache, &dloss);
    if (st == SS_OK) st = dsup_check(fn, z, labels, V, N, D, &o);
    if (st == SS_OK) {
        ss__dcon_header want =
            ss__dcon_supcon_header(DSUP_MAGIC, labels, V, N, D, &o);
        st = ss__dcon_check_cache(fn, cache, &want, "forward");
    }
    ss__dgc w;
    dsup_groups g;
    SS_TRY(dsup_setup(&w, &g, fn, st, z, labels, V, N, D, &o, comm,
                      isfinite(dloss) ? dloss : 0.0f));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    float *dx = ss__calloc((size_t)(w.Ml * D) * sizeof(float));
    float *Wl = ss__malloc((size_t)w.Ml * sizeof(float)), *wl = NULL;
    st = ss__dcon_check_ntot(fn, cache, w.Ntot);
    if (st == SS_OK && (!dx || !Wl))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld rows",
                      (long long)w.Ml, (long long)D);
    st = ss__dist_status(comm, fn, st);
    /* mean convention; anchors without a positive have no lse term */
    double f = g.active ? (double)dloss * comm->size / (double)g.active : 0;
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++)
        Wl[i] = g.rows[dsup_gid(&g, &w, i)] >= 2 ? (float)f : 0.0f;
    if (st == SS_OK && g.active) st = ss__dgc_stats(&wl, fn, comm, &w, Wl, L);
    if (st == SS_OK && g.active) {
        ss__dgc_grad(dx, wl, &w);
        dsup_pos_grad(dx, f, &g, &w);
        dcon_finish(dz, dx, &w, z);
    }
    ss__free(dx), ss__free(Wl), ss__free(wl);
    dsup_free(&g);
    ss__dgc_free(&w);
    return st;
}

/* ==== DCL / DCLW ========================================================== */

static const float *dcon_row(const float *x, int64_t N, int64_t D,
                             int64_t v, int64_t n) {
    return x + (v * N + n) * D;
}

ss_status ss__dcon_dcl_weights(double *pw, const char *fn, const float *x,
                               int64_t N, int64_t D, int64_t Ntot,
                               const ss_dcl_opts *o, const ss_comm *c) {
    for (int64_t n = 0; n < N; n++) pw[n] = 1.0;
    if (!o->weighted) return SS_OK;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t n = 0; n < N; n++) {
        pw[n] = dcon_dot(dcon_row(x, N, D, 0, n), dcon_row(x, N, D, 1, n),
                         D) / o->sigma;
        if (pw[n] > mx) mx = pw[n];
    }
    SS_TRY(ss__dist_allreduce(c, fn, &mx, 1, SS_COMM_DOUBLE, SS_COMM_MAX));
    for (int64_t n = 0; n < N; n++) sum += exp(pw[n] - mx);
    SS_TRY(ss__dist_allreduce(c, fn, &sum, 1, SS_COMM_DOUBLE, SS_COMM_SUM));
    for (int64_t n = 0; n < N; n++)
        pw[n] = 2.0 - (double)Ntot * exp(pw[n] - mx) / sum;
    return SS_OK;
}

ss__dcon_header ss__dcon_dcl_header(uint64_t magic, int64_t V, int64_t N,
                                    int64_t D, const ss_dcl_opts *o) {
    ss__dcon_header h;
    memset(&h, 0, sizeof h);
    h.magic = magic, h.V = V, h.N = N, h.D = D;
    h.temperature = o->temperature, h.cosine = o->cosine != 0;
    h.sigma = o->weighted ? o->sigma : 0.0f; /* unused otherwise */
    h.flags = (o->weighted != 0) | (o->joint_negatives != 0) << 1;
    return h;
}

size_t ss__dcon_dcl_cache_size(const char *fn, int64_t V, int64_t N,
                               int64_t D) {
    if (ss__check_size(fn, "V", V, 2) || ss__check_size(fn, "N", N, 1) ||
        ss__check_size(fn, "D", D, 1) || ss__check_product(fn, V, N, D) ||
        ss__check_product(fn, V, V, N))
        return 0;
    return HDR_BYTES + (size_t)(V * V * N) * sizeof(float);
}

size_t ss_dist_dcl_cache_size(int64_t V, int64_t N, int64_t D) {
    return ss__dcon_dcl_cache_size("ss_dist_dcl_cache_size", V, N, D);
}

ss_status ss__dcon_dcl_check(const char *fn, int64_t V, int64_t N,
                             const ss_dcl_opts *o) {
    SS_TRY(ss__check_product(fn, V, V, N));
    if (o->weighted) {
        SS_TRY(ss__check_positive(fn, "sigma", o->sigma));
        if (V != 2)
            return ss__fail(SS_ERR_PARAM, fn, "weighted (DCLW) needs V = 2 "
                            "views, got V = %lld", (long long)V);
    }
    return SS_OK;
}

const char *const ss__dcon_dcl_names[SS__DCON_DCL_NAGREE] = {
    "V", "D", "temperature", "cosine", "weighted", "sigma", "joint_negatives",
    "dloss"};

void ss__dcon_dcl_vals(double *vals, int64_t V, int64_t D,
                       const ss_dcl_opts *o, float dloss) {
    double v[SS__DCON_DCL_NAGREE] = {
        (double)V, (double)D, (double)o->temperature, o->cosine ? 1.0 : 0.0,
        o->weighted ? 1.0 : 0.0, o->weighted ? (double)o->sigma : 0.0,
        o->joint_negatives ? 1.0 : 0.0, (double)dloss};
    memcpy(vals, v, sizeof v);
}

static ss_status ddcl_check(const char *fn, const float *z, int64_t V,
                            int64_t N, int64_t D, const ss_dcl_opts *o) {
    SS_TRY(ss__dcon_check_z(fn, z, V, N, D, 2, o->temperature, o->cosine));
    return ss__dcon_dcl_check(fn, V, N, o);
}

/* Agreement and rows; the global batch needs Ntot >= 2 (a negative). */
static ss_status ddcl_setup(ss__dgc *w, const char *fn, ss_status st,
                            const float *z, int64_t V, int64_t N, int64_t D,
                            const ss_dcl_opts *o, const ss_comm *c,
                            float dloss) {
    double vals[SS__DCON_DCL_NAGREE];
    ss__dcon_dcl_vals(vals, V, D, o, dloss);
    ss__dgc_opts go = {o->cosine != 0, 1, !o->joint_negatives, 1,
                       {1.0f / o->temperature, 0.0f}};
    SS_TRY(ss__dgc_setup(w, fn, st, z, V, N, D, &go, vals,
                         ss__dcon_dcl_names, SS__DCON_DCL_NAGREE, c));
    int64_t Ntot = w->Ntot;
    if (Ntot >= 2) return SS_OK; /* the same on every rank */
    ss__dgc_free(w);
    return ss__fail(SS_ERR_SIZE, fn, "the global batch needs N >= 2 samples "
                    "(a negative), got %lld", (long long)Ntot);
}

double ss__dcon_dcl_loss_i(const float *L, const double *pw, const float *x,
                           int64_t V, int64_t N, int64_t D, int64_t S,
                           double scale, int64_t i) {
    int64_t v = i / N, n = i % N;
    double neg = S == 1 ? L[i] : L[i * S + v], mean = 0.0;
    for (int64_t u = 0; u < V; u++) {
        if (u == v) continue;
        double pos = dcon_dot(dcon_row(x, N, D, v, n), dcon_row(x, N, D, u, n),
                              D);
        if (S > 1) mean += L[i * S + u];
        mean -= pw[n] * pos * scale;
    }
    return neg + mean / (double)(V - 1);
}

/* li (Ml) from L (Ml, S) and the positive weights; returns the sum. */
static double ddcl_losses(double *li, const float *L, const double *pw,
                          const ss__dgc *w) {
    double total = 0.0;
    for (int64_t i = 0; i < w->Ml; i++) {
        li[i] = ss__dcon_dcl_loss_i(L, pw, w->x, w->V, w->N, w->D, w->S,
                                    w->o.scale[0], i);
        total += li[i];
    }
    return total;
}

void ss__dcon_dcl_pos_grad(float *dx, double f, const double *pw,
                           const float *x, int64_t V, int64_t N, int64_t D,
                           double scale) {
    double k = -2.0 * f * scale / (double)(V - 1);
    for (int64_t i = 0; i < V * N; i++) {
        int64_t v = i / N, n = i % N;
        float c = (float)(k * pw[n]);
        for (int64_t u = 0; u < V; u++) {
            const float *xu = dcon_row(x, N, D, u, n);
            for (int64_t d = 0; u != v && d < D; d++)
                dx[i * D + d] += c * xu[d];
        }
    }
}

ss_status ss_dist_dcl_forward(float *loss, float *losses, void *cache,
                              const float *z, int64_t V, int64_t N, int64_t D,
                              const ss_dcl_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_dcl_forward";
    SS_TRY(ss_comm_check(comm));
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    ss_status st = ss__dcon_check_out(fn, loss, "loss", cache, NULL);
    if (st == SS_OK) st = ddcl_check(fn, z, V, N, D, &o);
    ss__dgc w;
    SS_TRY(ddcl_setup(&w, fn, st, z, V, N, D, &o, comm, 0.0f));
    float *L = ss__malloc((size_t)(w.Ml * w.S) * sizeof(float));
    double *li = ss__malloc((size_t)(w.Ml + N) * sizeof(double)), total = 0;
    st = L && li ? SS_OK : ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld "
                                    "anchors", (long long)w.Ml);
    st = ss__dist_status(comm, fn, st);
    if (st == SS_OK)
        st = ss__dcon_dcl_weights(li + w.Ml, fn, w.x, N, D, w.Ntot, &o, comm);
    if (st == SS_OK) {
        ss__dgc_lse(L, &w);
        total = ddcl_losses(li, L, li + w.Ml, &w);
        st = dcon_total(&total, fn, comm);
    }
    if (st == SS_OK) {
        ss__dcon_header h = ss__dcon_dcl_header(DDCL_MAGIC, V, N, D, &o);
        h.Ntot = w.Ntot;
        memcpy(cache, &h, sizeof h);
        memcpy((char *)cache + HDR_BYTES, L,
               (size_t)(w.Ml * w.S) * sizeof(float));
        for (int64_t i = 0; losses && i < w.Ml; i++) losses[i] = (float)li[i];
        *loss = (float)(total / (double)w.M);
    }
    ss__free(L), ss__free(li);
    ss__dgc_free(&w);
    return st;
}

ss_status ss_dist_dcl_backward(float *dz, float dloss, const void *cache,
                               const float *z, int64_t V, int64_t N, int64_t D,
                               const ss_dcl_opts *opts, const ss_comm *comm) {
    static const char fn[] = "ss_dist_dcl_backward";
    SS_TRY(ss_comm_check(comm));
    ss_dcl_opts o = opts ? *opts : ss_dcl_defaults();
    ss_status st = ss__dcon_check_out(fn, dz, "dz", cache, &dloss);
    if (st == SS_OK) st = ddcl_check(fn, z, V, N, D, &o);
    if (st == SS_OK) {
        ss__dcon_header want = ss__dcon_dcl_header(DDCL_MAGIC, V, N, D, &o);
        st = ss__dcon_check_cache(fn, cache, &want, "forward");
    }
    ss__dgc w;
    SS_TRY(ddcl_setup(&w, fn, st, z, V, N, D, &o, comm,
                      isfinite(dloss) ? dloss : 0.0f));
    const float *L = (const float *)((const char *)cache + HDR_BYTES);
    float *dx = ss__calloc((size_t)(w.Ml * D) * sizeof(float)), *wl = NULL;
    float *Wl = ss__malloc((size_t)(w.Ml * w.S) * sizeof(float));
    double *pw = ss__malloc((size_t)N * sizeof(double));
    st = ss__dcon_check_ntot(fn, cache, w.Ntot);
    if (st == SS_OK && (!dx || !Wl || !pw))
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld x %lld rows",
                      (long long)w.Ml, (long long)D);
    st = ss__dist_status(comm, fn, st);
    double f = (double)dloss * comm->size / (double)w.M; /* mean convention */
    for (int64_t i = 0; st == SS_OK && i < w.Ml; i++) /* block weights */
        for (int64_t u = 0; u < w.S; u++)
            Wl[i * w.S + u] = (float)(w.S == 1 || u == i / N
                                          ? f : f / (double)(V - 1));
    if (st == SS_OK)
        st = ss__dcon_dcl_weights(pw, fn, w.x, N, D, w.Ntot, &o, comm);
    if (st == SS_OK) st = ss__dgc_stats(&wl, fn, comm, &w, Wl, L);
    if (st == SS_OK) {
        ss__dgc_grad(dx, wl, &w);
        ss__dcon_dcl_pos_grad(dx, f, pw, w.x, V, N, D, w.o.scale[0]);
        dcon_finish(dz, dx, &w, z);
    }
    ss__free(dx), ss__free(Wl), ss__free(wl), ss__free(pw);
    ss__dgc_free(&w);
    return st;
}
