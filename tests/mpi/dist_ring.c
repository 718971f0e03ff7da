/* dist_ring.c - the ring paths (ss_dist_*_ring_*: NT-Xent, CLIP, SigLIP)
 * against the single-process losses on the concatenated batch, the ring
 * NT-Xent against the all-gather one, and error agreement (including a
 * comm without sendrecv). Helpers and the registry: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows [off, off + n) of each of the V (Nt, D) views of g into l. */
static void take_rows(float *l, const float *g, int64_t V, int64_t Nt,
                      int64_t off, int64_t n, int64_t D) {
    for (int64_t v = 0; v < V; v++)
        memcpy(l + v * n * D, g + (v * Nt + off) * D,
               (size_t)(n * D) * sizeof(float));
}

/* ref (V n per) = the same rows of g (doubles). */
static void take_ref(double *ref, const float *g, int64_t V, int64_t Nt,
                     int64_t off, int64_t n, int64_t per) {
    for (int64_t v = 0; v < V; v++)
        for (int64_t e = 0; e < n * per; e++)
            ref[v * n * per + e] = g[(v * Nt + off) * per + e];
}

/* d <- (d - pre) / W: the local part of the global gradient. */
static void unscale(float *d, const float *pre, int64_t n) {
    float W = (float)ss_dt_comm->size;
    for (int64_t i = 0; i < n; i++) d[i] = (d[i] - pre[i]) / W;
}

/* ---- NT-Xent: ring == single process == all-gather ------------------------ */

typedef struct {
    float loss, *losses, *dz;
} ntx_out;

static ss_status ntx_run(ntx_out *out, int ring, const float *z,
                         const float *pre, int64_t V, int64_t N, int64_t D,
                         const ss_ntxent_opts *o, float dl) {
    size_t cs = ring ? ss_dist_ntxent_ring_cache_size(V, N, D)
                     : ss_dist_ntxent_cache_size(V, N, D);
    void *c = malloc(cs);
    memcpy(out->dz, pre, (size_t)(V * N * D) * sizeof(float));
    ss_status st = ring ? ss_dist_ntxent_ring_forward(&out->loss, out->losses, c,
                                                      z, V, N, D, o, ss_dt_comm)
                        : ss_dist_ntxent_forward(&out->loss, out->losses, c, z,
                                                 V, N, D, o, ss_dt_comm);
    if (st == SS_OK)
        st = ring ? ss_dist_ntxent_ring_backward(out->dz, dl, c, z, V, N, D, o,
                                                 ss_dt_comm)
                  : ss_dist_ntxent_backward(out->dz, dl, c, z, V, N, D, o,
                                            ss_dt_comm);
    free(c);
    return st;
}

static void ntx_case(int variant, int64_t V, int64_t base, int64_t D,
                     int cosine, float t, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base), M = V * N * D;
    if (Nt < 2) return; /* one sample: loss and gradient identically 0 */
    ss_ntxent_opts o = ss_ntxent_defaults();
    o.cosine = cosine, o.temperature = t;
    float *zg = malloc((size_t)(V * Nt * D) * sizeof(float));
    float *dzg = calloc((size_t)(V * Nt * D), sizeof(float));
    float *lg = malloc((size_t)(V * Nt) * sizeof(float));
    float *z = malloc((size_t)M * sizeof(float));
    float *pre = malloc((size_t)M * sizeof(float));
    ntx_out ring = {0, malloc((size_t)(V * N) * sizeof(float)),
                    malloc((size_t)M * sizeof(float))};
    ntx_out ag = {0, malloc((size_t)(V * N) * sizeof(float)),
                  malloc((size_t)M * sizeof(float))};
    double *ref = malloc((size_t)M * sizeof(double));
    void *cg = malloc(ss_ntxent_cache_size(V, Nt, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, V * Nt * D, &r, 1.0);
    take_rows(z, zg, V, Nt, off, N, D);
    ss_dt_fill(pre, M, &r, 1.0);
    float lossg = 0, dl = 0.7f;
    char what[160];
    snprintf(what, sizeof what, "ntxent ring variant %d V %lld N %lld D %lld "
             "cos %d", variant, (long long)V, (long long)N, (long long)D,
             cosine);
    if (ss_ntxent_forward(&lossg, lg, cg, zg, V, Nt, D, &o) != SS_OK ||
        ss_ntxent_backward(dzg, dl, cg, zg, V, Nt, D, &o) != SS_OK ||
        ntx_run(&ring, 1, z, pre, V, N, D, &o, dl) != SS_OK ||
        ntx_run(&ag, 0, z, pre, V, N, D, &o, dl) != SS_OK) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lossg;
    ss_dt_close(what, &ring.loss, &lref, 1);
    take_ref(ref, lg, V, Nt, off, N, 1);
    ss_dt_close(what, ring.losses, ref, V * N);
    take_ref(ref, dzg, V, Nt, off, N, D);
    unscale(ring.dz, pre, M);
    ss_dt_close(what, ring.dz, ref, M);
    /* ring == all-gather (both already checked against one process) */
    lref = ag.loss;
    ss_dt_close(what, &ring.loss, &lref, 1);
    unscale(ag.dz, pre, M);
    for (int64_t i = 0; i < M; i++) ref[i] = ag.dz[i];
    ss_dt_close(what, ring.dz, ref, M);
done:
    free(zg), free(dzg), free(lg), free(z), free(pre), free(ring.losses);
    free(ring.dz), free(ag.losses), free(ag.dz), free(ref), free(cg);
}

/* ---- CLIP and SigLIP: ring == single process ----------------------------- */

typedef struct {
    float loss, *losses, *da, *db, dp[2]; /* dp: log-scale (and bias) */
} pair_out;

/* The single-process loss (comm NULL) on the global pairs or the ring on
 * the local ones; sig: SigLIP (p0 = log_t, p1 = bias) else CLIP. */
static ss_status pair_run(pair_out *out, int sig, const ss_comm *comm,
                          const float *a, const float *b, float p0, float p1,
                          int64_t N, int64_t D, int cosine, float dl) {
    ss_clip_opts co = {cosine};
    ss_siglip_opts so = {cosine};
    size_t cs = sig ? (comm ? ss_dist_siglip_ring_cache_size(N, D)
                            : ss_siglip_cache_size(N, D))
                    : (comm ? ss_dist_clip_ring_cache_size(N, D)
                            : ss_clip_cache_size(N, D));
    void *c = malloc(cs);
    ss_status st;
    if (sig && comm)
        st = ss_dist_siglip_ring_forward(&out->loss, out->losses, c, a, b, p0,
                                         p1, N, D, &so, comm);
    else if (sig)
        st = ss_siglip_forward(&out->loss, out->losses, c, a, b, p0, p1, N, D,
                               &so);
    else if (comm)
        st = ss_dist_clip_ring_forward(&out->loss, out->losses, c, a, b, p0, N,
                                       D, &co, comm);
    else
        st = ss_clip_forward(&out->loss, out->losses, c, a, b, p0, N, D, &co);
    if (st == SS_OK && sig && comm)
        st = ss_dist_siglip_ring_backward(out->da, out->db, &out->dp[0],
                                          &out->dp[1], dl, c, a, b, p0, p1, N,
                                          D, &so, comm);
    else if (st == SS_OK && sig)
        st = ss_siglip_backward(out->da, out->db, &out->dp[0], &out->dp[1], dl,
                                c, a, b, p0, p1, N, D, &so);
    else if (st == SS_OK && comm)
        st = ss_dist_clip_ring_backward(out->da, out->db, &out->dp[0], dl, c,
                                        a, b, p0, N, D, &co, comm);
    else if (st == SS_OK)
        st = ss_clip_backward(out->da, out->db, &out->dp[0], dl, c, a, b, p0,
                              N, D, &co);
    free(c);
    return st;
}

static void pair_case(int sig, int variant, int64_t base, int64_t D,
                      int cosine, float p0, float p1, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base), M = N * D;
    float *ag = malloc(2 * (size_t)(Nt * D) * sizeof(float)), *bg = ag + Nt * D;
    float *a = ag + off * D, *b = bg + off * D;
    pair_out g = {0, malloc((size_t)Nt * sizeof(float)),
                  calloc(2 * (size_t)(Nt * D), sizeof(float)), NULL, {0, 0}};
    pair_out l = {0, malloc((size_t)N * sizeof(float)),
                  malloc(4 * (size_t)M * sizeof(float)), NULL, {0.25f, -0.5f}};
    float *pre = l.da + 2 * M;
    double *ref = malloc(2 * (size_t)M * sizeof(double));
    g.db = g.da + Nt * D, l.db = l.da + M;
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(ag, Nt * D, &r, 1.0);
    for (int64_t i = 0; i < Nt * D; i++) /* correlated pairs */
        bg[i] = (float)(0.7 * ag[i] + 0.7 * ss_rng_normal(&r));
    ss_dt_fill(pre, 2 * M, &r, 1.0);
    memcpy(l.da, pre, 2 * (size_t)M * sizeof(float));
    float dl = 0.9f;
    char what[160];
    snprintf(what, sizeof what, "%s ring variant %d N %lld D %lld cos %d",
             sig ? "siglip" : "clip", variant, (long long)N, (long long)D,
             cosine);
    if (pair_run(&g, sig, NULL, ag, bg, p0, p1, Nt, D, cosine, dl) != SS_OK ||
        pair_run(&l, sig, ss_dt_comm, a, b, p0, p1, N, D, cosine, dl) !=
            SS_OK) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = g.loss;
    ss_dt_close(what, &l.loss, &lref, 1);
    for (int64_t i = 0; i < N; i++) ref[i] = g.losses[off + i];
    ss_dt_close(what, l.losses, ref, N);
    for (int64_t e = 0; e < M; e++)
        ref[e] = g.da[off * D + e], ref[M + e] = g.db[off * D + e];
    unscale(l.da, pre, 2 * M);
    ss_dt_close(what, l.da, ref, M);
    ss_dt_close(what, l.db, ref + M, M);
    for (int k = 0; k < 1 + sig; k++) { /* global on every rank */
        double want = g.dp[k] + (k ? -0.5 : 0.25);
        ss_dt_close(what, &l.dp[k], &want, 1);
    }
done:
    free(ag), free(g.losses), free(g.da), free(l.losses), free(l.da);
    free(ref);
}

/* ---- errors agree on every rank ------------------------------------------ */

static void want(const char *what, ss_status st, ss_status w) {
    if (st != w) {
        char m[256];
        snprintf(m, sizeof m, "got %s, want %s (%s)", ss_status_name(st),
                 ss_status_name(w), ss_last_error());
        ss_dt_fail(what, m);
    }
}

static void nothing_written(const char *what, const float *d, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (d[i] != 0.0f) {
            ss_dt_fail(what, "a failed call wrote into its gradient");
            return;
        }
}

static void ntx_errors(const ss_comm *c, ss_comm *nosr, float *z,
                       char *cache) {
    int R = c->rank, bad = c->size - 1;
    int64_t V = 2, N = 3, D = 4;
    float loss, dz[24] = {0};
    ss_ntxent_opts o = ss_ntxent_defaults(), o2 = o;
    if (R == bad) z[5] = NAN;
    want("ring ntxent NaN on one rank",
         ss_dist_ntxent_ring_forward(&loss, NULL, cache, z, V, N, D, &o, c),
         SS_ERR_NONFINITE);
    z[5] = 0.5f;
    want("ring ntxent NULL loss on rank 0",
         ss_dist_ntxent_ring_forward(R == 0 ? NULL : &loss, NULL, cache, z, V,
                                     N, D, &o, c), SS_ERR_NULL);
    if (R == bad) o2.temperature = 0.25f;
    if (c->size > 1)
        want("ring ntxent temperature differs",
             ss_dist_ntxent_ring_forward(&loss, NULL, cache, z, V, N, D, &o2,
                                         c), SS_ERR_PARAM);
    o2 = o, o2.debias_tau_plus = 0.1f;
    want("ring ntxent debiased", ss_dist_ntxent_ring_forward(
             &loss, NULL, cache, z, V, N, D, &o2, c), SS_ERR_UNSUPPORTED);
    want("ring ntxent no sendrecv", ss_dist_ntxent_ring_forward(
             &loss, NULL, cache, z, V, N, D, &o, nosr), SS_ERR_NULL);
    if (ss_dist_ntxent_ring_forward(&loss, NULL, cache, z, V, N, D, &o, c)) {
        ss_dt_fail("ring ntxent forward", ss_last_error());
        return;
    }
    if (c->size > 1)
        want("ring ntxent dloss differs",
             ss_dist_ntxent_ring_backward(dz, R == bad ? 2.0f : 1.0f, cache, z,
                                          V, N, D, &o, c), SS_ERR_PARAM);
    want("ring ntxent no sendrecv (backward)", ss_dist_ntxent_ring_backward(
             dz, 1.0f, cache, z, V, N, D, &o, nosr), SS_ERR_NULL);
    if (R == bad) memset(cache, 0, 8);
    want("ring ntxent bad cache on one rank", ss_dist_ntxent_ring_backward(
             dz, 1.0f, cache, z, V, N, D, &o, c), SS_ERR_PARAM);
    nothing_written("ring ntxent", dz, 24);
}

/* CLIP (sig 0) or SigLIP (sig 1) error cases on (3, 4) pairs a, b. */
static void pair_errors(int sig, const ss_comm *c, ss_comm *nosr, float *a,
                        float *b, char *cache) {
    int R = c->rank, bad = c->size - 1;
    float loss, d[24] = {0}, dp = 0.0f, p0 = 1.0f, p1 = -2.0f;
    char what[96];
#define PAIR_FWD(cc, lp, A, P0, P1)                                                (sig ? ss_dist_siglip_ring_forward(lp, NULL, cache, A, b, P0, P1, 3, 4,                                           NULL, cc)                                        : ss_dist_clip_ring_forward(lp, NULL, cache, A, b, P0, 3, 4, NULL,                                         cc))
#define PAIR_BWD(cc, dl)                                                           (sig ? ss_dist_siglip_ring_backward(d, d + 12, &dp, &dp, dl, cache, a, b,                                          p0, p1, 3, 4, NULL, cc)                         : ss_dist_clip_ring_backward(d, d + 12, &dp, dl, cache, a, b, p0, 3,                                        4, NULL, cc))
#define NAME(s) (snprintf(what, sizeof what, "ring %s %s",                                              sig ? "siglip" : "clip", s), what)
    if (R == bad) a[7] = INFINITY;
    want(NAME("Inf on one rank"), PAIR_FWD(c, &loss, a, p0, p1),
         SS_ERR_NONFINITE);
    a[7] = 0.5f;
    want(NAME("NULL loss on rank 0"),
         PAIR_FWD(c, R == 0 ? NULL : &loss, a, p0, p1), SS_ERR_NULL);
    if (c->size > 1) /* the scale (SigLIP: the bias) differs on one rank */
        want(NAME("parameter differs"),
             PAIR_FWD(c, &loss, a, R == bad && !sig ? 2.0f : p0,
                      R == bad ? -3.0f : p1), SS_ERR_PARAM);
    want(NAME("no sendrecv"), PAIR_FWD(nosr, &loss, a, p0, p1), SS_ERR_NULL);
    if (PAIR_FWD(c, &loss, a, p0, p1) != SS_OK) {
        ss_dt_fail(NAME("forward"), ss_last_error());
        return;
    }
    if (c->size > 1)
        want(NAME("dloss differs"), PAIR_BWD(c, R == bad ? 2.0f : 1.0f),
             SS_ERR_PARAM);
    want(NAME("no sendrecv (backward)"), PAIR_BWD(nosr, 1.0f), SS_ERR_NULL);
    if (R == bad) memset(cache, 0, 8);
    want(NAME("bad cache on one rank"), PAIR_BWD(c, 1.0f), SS_ERR_STATE);
    nothing_written(NAME("failed backward"), d, 24);
    if (dp != 0.0f) ss_dt_fail(NAME("failed backward"), "wrote the scale");
#undef PAIR_FWD
#undef PAIR_BWD
#undef NAME
}

static void ring_errors(void) {
    const ss_comm *c = ss_dt_comm;
    ss_comm nosr = *c;
    nosr.sendrecv = NULL;
    float z[24], a[12], b[12];
    char cache[1024];
    ss_rng r;
    ss_rng_seed(&r, 77 + (uint64_t)c->rank);
    ss_dt_fill(z, 24, &r, 1.0), ss_dt_fill(a, 12, &r, 1.0);
    ss_dt_fill(b, 12, &r, 1.0);
    ntx_errors(c, &nosr, z, cache);
    pair_errors(0, c, &nosr, a, b, cache);
    pair_errors(1, c, &nosr, a, b, cache);
    float loss; /* and the comm still works */
    if (ss_dist_siglip_ring_forward(&loss, NULL, cache, a, b, 1.0f, -2.0f, 3, 4,
                                    NULL, c) != SS_OK)
        ss_dt_fail("ring siglip after errors", ss_last_error());
}

SS_DIST_GROUP(ring) {
    for (int variant = 0; variant < 3; variant++) {
        ntx_case(variant, 2, 5, 7, 1, 0.5f, 111 + variant);
        ntx_case(variant, 3, 4, 3, 0, 0.2f, 121 + variant);
        ntx_case(variant, 2, 70, 5, 1, 0.1f, 131 + variant);
    }
    ntx_case(1, 2, 140, 3, 1, 0.3f, 17); /* > 1 tile per block, both ways */
    for (int variant = 0; variant < 3; variant++) {
        pair_case(0, variant, 5, 6, 1, 2.0f, 0.0f, 211 + variant);
        pair_case(0, variant, 4, 3, 0, 0.5f, 0.0f, 221 + variant);
        pair_case(1, variant, 5, 6, 1, 2.3f, -4.0f, 231 + variant);
        pair_case(1, variant, 4, 3, 0, 0.2f, -1.0f, 241 + variant);
    }
    pair_case(0, 1, 270, 5, 1, 2.6f, 0.0f, 251); /* > 1 tile (256) */
    pair_case(1, 1, 270, 5, 1, 2.3f, -10.0f, 261);
    ring_errors();
}
