/* dist_ring2.c - the ring SupCon and DCL / DCLW (ss_dist_supcon_ring_*,
 * ss_dist_dcl_ring_*) against the single-process losses on the
 * concatenated batch and against the all-gather ss_dist_* paths, and error
 * agreement (including a comm without sendrecv). Helpers: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { PATH_ONE, PATH_GATHER, PATH_RING } path;

typedef struct {
    int dcl; /* else SupCon */
    ss_supcon_opts sc;
    ss_dcl_opts dc;
} spec;

static size_t cache_size(const spec *s, path p, int64_t V, int64_t N,
                         int64_t D) {
    if (s->dcl)
        return p == PATH_ONE      ? ss_dcl_cache_size(V, N, D)
               : p == PATH_GATHER ? ss_dist_dcl_cache_size(V, N, D)
                                  : ss_dist_dcl_ring_cache_size(V, N, D);
    return p == PATH_ONE      ? ss_supcon_cache_size(V, N, D)
           : p == PATH_GATHER ? ss_dist_supcon_cache_size(V, N, D)
                              : ss_dist_supcon_ring_cache_size(V, N, D);
}

static ss_status fwd(const spec *s, path p, const ss_comm *c, float *loss,
                     float *losses, void *cache, const float *z,
                     const int64_t *lab, int64_t V, int64_t N, int64_t D) {
    if (s->dcl)
        return p == PATH_ONE
                   ? ss_dcl_forward(loss, losses, cache, z, V, N, D, &s->dc)
               : p == PATH_GATHER
                   ? ss_dist_dcl_forward(loss, losses, cache, z, V, N, D,
                                         &s->dc, c)
                   : ss_dist_dcl_ring_forward(loss, losses, cache, z, V, N, D,
                                              &s->dc, c);
    return p == PATH_ONE
               ? ss_supcon_forward(loss, losses, cache, z, lab, V, N, D,
                                   &s->sc)
           : p == PATH_GATHER
               ? ss_dist_supcon_forward(loss, losses, cache, z, lab, V, N, D,
                                        &s->sc, c)
               : ss_dist_supcon_ring_forward(loss, losses, cache, z, lab, V, N,
                                             D, &s->sc, c);
}

static ss_status bwd(const spec *s, path p, const ss_comm *c, float *dz,
                     float dl, const void *cache, const float *z,
                     const int64_t *lab, int64_t V, int64_t N, int64_t D) {
    if (s->dcl)
        return p == PATH_ONE
                   ? ss_dcl_backward(dz, dl, cache, z, V, N, D, &s->dc)
               : p == PATH_GATHER
                   ? ss_dist_dcl_backward(dz, dl, cache, z, V, N, D, &s->dc, c)
                   : ss_dist_dcl_ring_backward(dz, dl, cache, z, V, N, D,
                                               &s->dc, c);
    return p == PATH_ONE
               ? ss_supcon_backward(dz, dl, cache, z, lab, V, N, D, &s->sc)
           : p == PATH_GATHER
               ? ss_dist_supcon_backward(dz, dl, cache, z, lab, V, N, D,
                                         &s->sc, c)
               : ss_dist_supcon_ring_backward(dz, dl, cache, z, lab, V, N, D,
                                              &s->sc, c);
}

typedef struct {
    float loss, *losses, *dz;
} out;

/* Forward then backward on dz (pre-filled), freeing its cache. */
static ss_status run(out *o, const spec *s, path p, const float *z,
                     const int64_t *lab, int64_t V, int64_t N, int64_t D,
                     float dl) {
    const ss_comm *c = p == PATH_ONE ? NULL : ss_dt_comm;
    void *cache = malloc(cache_size(s, p, V, N, D));
    ss_status st = fwd(s, p, c, &o->loss, o->losses, cache, z, lab, V, N, D);
    if (st == SS_OK) st = bwd(s, p, c, o->dz, dl, cache, z, lab, V, N, D);
    free(cache);
    return st;
}

/* nclass > 0: labels in [-1, nclass) scaled by a large odd factor (any
 * int64 is a class; few classes: positives on other ranks); 0: all
 * unlabeled. */
static void ring_case(const spec *s0, int variant, int64_t V, int64_t base,
                      int64_t D, int cosine, int nclass, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    /* one sample: DCL has no negative; SupCon's loss is identically 0 (its
     * only pair is the positive), the gradient pure rounding */
    if (Nt < 2) return;
    spec s = *s0;
    s.sc.cosine = s.dc.cosine = cosine;
    int64_t Mg = V * Nt * D, Ml = V * N * D;
    float *zg = malloc((size_t)Mg * sizeof(float));
    float *lg = malloc((size_t)(V * Nt) * sizeof(float));
    float *z = malloc((size_t)Ml * sizeof(float));
    float *pre = malloc((size_t)Ml * sizeof(float));
    double *ref = malloc((size_t)Ml * sizeof(double));
    int64_t *labg = malloc((size_t)Nt * sizeof(int64_t));
    out one = {0, lg, calloc((size_t)Mg, sizeof(float))};
    out ring = {0, malloc((size_t)(V * N) * sizeof(float)),
                malloc((size_t)Ml * sizeof(float))};
    out ag = {0, malloc((size_t)(V * N) * sizeof(float)),
              malloc((size_t)Ml * sizeof(float))};
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, Mg, &r, 1.0);
    for (int64_t n = 0; n < Nt; n++) {
        int64_t l = nclass ? (int64_t)(ss_rng_u64(&r) % (uint64_t)(nclass + 1))
                           - 1 : -1;
        labg[n] = l >= 0 ? l * 1000003 + 7 : -1;
    }
    for (int64_t v = 0; v < V; v++)
        memcpy(z + v * N * D, zg + (v * Nt + off) * D,
               (size_t)(N * D) * sizeof(float));
    /* pre-filled (accumulation) at the gradients' scale */
    ss_dt_fill(pre, Ml, &r, 1e-3);
    memcpy(ring.dz, pre, (size_t)Ml * sizeof(float));
    memcpy(ag.dz, pre, (size_t)Ml * sizeof(float));
    float dl = 0.7f;
    char what[200];
    snprintf(what, sizeof what, "ring %s variant %d V %lld N %lld D %lld cos "
             "%d classes %d%s%s", s.dcl ? "dcl" : "supcon", variant,
             (long long)V, (long long)N, (long long)D, cosine, nclass,
             s.dcl && s.dc.weighted ? " weighted" : "",
             s.dcl && s.dc.joint_negatives ? " joint" : "");
    if (run(&one, &s, PATH_ONE, zg, labg, V, Nt, D, dl) ||
        run(&ring, &s, PATH_RING, z, labg + off, V, N, D, dl) ||
        run(&ag, &s, PATH_GATHER, z, labg + off, V, N, D, dl)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = one.loss;
    ss_dt_close_as(what, "loss", &ring.loss, &lref, 1);
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++) ref[v * N + n] = lg[v * Nt + off + n];
    ss_dt_close_as(what, "losses", ring.losses, ref, V * N);
    for (int64_t v = 0; v < V; v++)
        for (int64_t e = 0; e < N * D; e++) {
            int64_t i = v * N * D + e;
            ring.dz[i] = (ring.dz[i] - pre[i]) / (float)W; /* mean conv. */
            ag.dz[i] = (ag.dz[i] - pre[i]) / (float)W;
            ref[i] = one.dz[(v * Nt + off) * D + e];
        }
    ss_dt_close_as(what, "dz", ring.dz, ref, Ml);
    /* ring == all-gather */
    lref = ag.loss;
    ss_dt_close_as(what, "loss vs all-gather", &ring.loss, &lref, 1);
    for (int64_t i = 0; i < Ml; i++) ref[i] = ag.dz[i];
    ss_dt_close_as(what, "dz vs all-gather", ring.dz, ref, Ml);
done:
    free(zg), free(lg), free(z), free(pre), free(ref), free(labg);
    free(one.dz), free(ring.losses), free(ring.dz), free(ag.losses);
    free(ag.dz);
}

static void ring_cases(int variant) {
    spec s;
    memset(&s, 0, sizeof s);
    s.sc = ss_supcon_defaults(), s.dc = ss_dcl_defaults();
    uint64_t sd = 500 + 20 * (uint64_t)variant;
    /* SupCon: labels with -1, all unlabeled, V = 1 and 3, dot products,
     * few classes (positives across ranks) */
    ring_case(&s, variant, 2, 5, 6, 1, 3, sd + 1);
    ring_case(&s, variant, 2, 4, 5, 1, 0, sd + 2);
    ring_case(&s, variant, 3, 6, 4, 0, 2, sd + 3);
    ring_case(&s, variant, 1, 6, 4, 0, 2, sd + 4);
    ring_case(&s, variant, 1, 3, 4, 1, 0, sd + 5); /* no positive: loss 0 */
    s.sc.temperature = 0.5f;
    ring_case(&s, variant, 3, 5, 3, 1, 4, sd + 6);
    /* DCL, joint negatives, V = 3, DCLW */
    s.dcl = 1;
    ring_case(&s, variant, 2, 5, 6, 1, 0, sd + 7);
    ring_case(&s, variant, 3, 4, 5, 0, 0, sd + 8);
    s.dc.joint_negatives = 1;
    ring_case(&s, variant, 3, 4, 5, 0, 0, sd + 9);
    ring_case(&s, variant, 2, 5, 3, 1, 0, sd + 10);
    s.dc = ss_dclw_defaults();
    ring_case(&s, variant, 2, 6, 5, 1, 0, sd + 11);
    ring_case(&s, variant, 2, 5, 4, 0, 0, sd + 12);
}

/* ---- errors agree on every rank ------------------------------------------ */

static void want(const char *what, ss_status st, ss_status w) {
    if (st != w) {
        char m[300];
        snprintf(m, sizeof m, "got %s, want %s (%s)", ss_status_name(st),
                 ss_status_name(w), ss_last_error());
        ss_dt_fail(what, m);
    }
}

static void nothing_written(const char *what, const float *d, int n) {
    for (int i = 0; i < n; i++)
        if (d[i] != 0.0f) {
            ss_dt_fail(what, "wrote the gradient");
            return;
        }
}

enum { EV = 2, EN = 3, ED = 4 };

static void supcon_errors(const ss_comm *c, const ss_comm *nosr, float *z,
                          void *cache) {
    int R = c->rank, bad = c->size - 1;
    int64_t lab[EN] = {0, 1, 0};
    float dz[EV * EN * ED] = {0}, loss = 0;
    ss_supcon_opts o = ss_supcon_defaults(), o2 = o;
    if (R == bad) z[5] = NAN;
    want("ring supcon NaN on one rank", ss_dist_supcon_ring_forward(
             &loss, NULL, cache, z, lab, EV, EN, ED, &o, c), SS_ERR_NONFINITE);
    z[5] = 0.5f;
    if (R == bad) lab[1] = -2;
    want("ring supcon label -2 on one rank", ss_dist_supcon_ring_forward(
             &loss, NULL, cache, z, lab, EV, EN, ED, &o, c), SS_ERR_LABEL);
    lab[1] = 1;
    if (R == bad) o2.temperature = 0.3f;
    if (c->size > 1)
        want("ring supcon temperature differs", ss_dist_supcon_ring_forward(
                 &loss, NULL, cache, z, lab, EV, EN, ED, &o2, c),
             SS_ERR_PARAM);
    want("ring supcon no sendrecv", ss_dist_supcon_ring_forward(
             &loss, NULL, cache, z, lab, EV, EN, ED, &o, nosr), SS_ERR_NULL);
    if (ss_dist_supcon_ring_forward(&loss, NULL, cache, z, lab, EV, EN, ED, &o,
                                    c)) {
        ss_dt_fail("ring supcon forward", ss_last_error());
        return;
    }
    want("ring supcon no sendrecv (backward)", ss_dist_supcon_ring_backward(
             dz, 1.0f, cache, z, lab, EV, EN, ED, &o, nosr), SS_ERR_NULL);
    if (R == bad) lab[2] = 5; /* other labels: the cache does not match */
    want("ring supcon other labels on one rank", ss_dist_supcon_ring_backward(
             dz, 1.0f, cache, z, lab, EV, EN, ED, &o, c), SS_ERR_PARAM);
    lab[2] = 0;
    if (R == bad) memset(cache, 0, 8);
    want("ring supcon bad cache on one rank", ss_dist_supcon_ring_backward(
             dz, 1.0f, cache, z, lab, EV, EN, ED, &o, c), SS_ERR_PARAM);
    nothing_written("ring supcon failed backward", dz, EV * EN * ED);
}

static void dcl_errors(const ss_comm *c, const ss_comm *nosr, float *z,
                       void *cache) {
    int R = c->rank, bad = c->size - 1;
    float dz[EV * EN * ED] = {0}, loss = 0;
    ss_dcl_opts o = ss_dclw_defaults(), o2 = o;
    if (R == bad) z[2] = INFINITY;
    want("ring dcl Inf on one rank", ss_dist_dcl_ring_forward(
             &loss, NULL, cache, z, EV, EN, ED, &o, c), SS_ERR_NONFINITE);
    z[2] = 0.5f;
    if (R == bad) o2.sigma = 0.25f;
    if (c->size > 1)
        want("ring dclw sigma differs", ss_dist_dcl_ring_forward(
                 &loss, NULL, cache, z, EV, EN, ED, &o2, c), SS_ERR_PARAM);
    o2 = o;
    if (R == bad) o2.joint_negatives = 1;
    if (c->size > 1)
        want("ring dcl joint_negatives differs", ss_dist_dcl_ring_forward(
                 &loss, NULL, cache, z, EV, EN, ED, &o2, c), SS_ERR_PARAM);
    if (c->size == 1)
        want("ring dcl one sample", ss_dist_dcl_ring_forward(
                 &loss, NULL, cache, z, EV, 1, ED, &o, c), SS_ERR_SIZE);
    want("ring dcl no sendrecv", ss_dist_dcl_ring_forward(
             &loss, NULL, cache, z, EV, EN, ED, &o, nosr), SS_ERR_NULL);
    if (ss_dist_dcl_ring_forward(&loss, NULL, cache, z, EV, EN, ED, &o, c)) {
        ss_dt_fail("ring dcl forward", ss_last_error());
        return;
    }
    want("ring dcl no sendrecv (backward)", ss_dist_dcl_ring_backward(
             dz, 1.0f, cache, z, EV, EN, ED, &o, nosr), SS_ERR_NULL);
    want("ring dcl dloss differs", ss_dist_dcl_ring_backward(
             dz, R == bad ? 2.0f : 1.0f, cache, z, EV, EN, ED, &o, c),
         c->size > 1 ? SS_ERR_PARAM : SS_OK);
    memset(dz, 0, sizeof dz);
    if (R == bad) memset(cache, 0, 8);
    want("ring dcl bad cache on one rank", ss_dist_dcl_ring_backward(
             dz, 1.0f, cache, z, EV, EN, ED, &o, c), SS_ERR_PARAM);
    nothing_written("ring dcl failed backward", dz, EV * EN * ED);
}

static void ring2_errors(void) {
    const ss_comm *c = ss_dt_comm;
    ss_comm nosr = *c;
    nosr.sendrecv = NULL;
    float z[EV * EN * ED];
    _Alignas(64) char cache[1024]; /* per rank: thread ranks share statics */
    ss_rng r;
    ss_rng_seed(&r, 91 + (uint64_t)c->rank);
    ss_dt_fill(z, EV * EN * ED, &r, 1.0);
    supcon_errors(c, &nosr, z, cache);
    dcl_errors(c, &nosr, z, cache);
    float loss; /* and the comm still works */
    if (ss_dist_dcl_ring_forward(&loss, NULL, cache, z, EV, EN, ED, NULL, c))
        ss_dt_fail("ring dcl after errors", ss_last_error());
}

SS_DIST_GROUP(ring2) {
    for (int variant = 0; variant < 3; variant++) ring_cases(variant);
    /* > 1 tile of 256 rows per block, both ways */
    spec s;
    memset(&s, 0, sizeof s);
    s.sc = ss_supcon_defaults(), s.dc = ss_dcl_defaults();
    ring_case(&s, 1, 2, 140, 3, 1, 5, 601);
    s.dcl = 1;
    ring_case(&s, 1, 2, 140, 3, 1, 0, 602);
    ring2_errors();
}
