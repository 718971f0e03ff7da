/* dist_contrastive.c - distributed SupCon, DCL / DCLW, NT-Xent with the
 * HCL / debiased options (all-gather path), CLIP, SigLIP and MoCo (with the
 * distributed enqueue) against the single-process losses on the
 * concatenated batch, and error agreement. Helpers: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- (V, N, D) losses: NT-Xent (HCL), SupCon, DCL ------------------------ */

typedef enum { ZK_NTXENT, ZK_SUPCON, ZK_DCL } zkind;

typedef struct {
    zkind kind;
    ss_ntxent_opts nt;
    ss_supcon_opts sc;
    ss_dcl_opts dc;
} zspec;

static size_t z_cache(const zspec *s, int dist, int64_t V, int64_t N,
                      int64_t D) {
    switch (s->kind) {
    case ZK_NTXENT:
        return dist ? ss_dist_ntxent_cache_size(V, N, D)
                    : ss_ntxent_cache_size(V, N, D);
    case ZK_SUPCON:
        return dist ? ss_dist_supcon_cache_size(V, N, D)
                    : ss_supcon_cache_size(V, N, D);
    default:
        return dist ? ss_dist_dcl_cache_size(V, N, D)
                    : ss_dcl_cache_size(V, N, D);
    }
}

/* Forward then backward, single-process (comm NULL) or distributed. */
static ss_status z_run(const zspec *s, const ss_comm *c, float *loss,
                       float *losses, void *cache, float *dz, float dl,
                       const float *z, const int64_t *lab, int64_t V,
                       int64_t N, int64_t D) {
    ss_status st;
    switch (s->kind) {
    case ZK_NTXENT:
        st = c ? ss_dist_ntxent_forward(loss, losses, cache, z, V, N, D,
                                        &s->nt, c)
               : ss_ntxent_forward(loss, losses, cache, z, V, N, D, &s->nt);
        if (st == SS_OK)
            st = c ? ss_dist_ntxent_backward(dz, dl, cache, z, V, N, D,
                                             &s->nt, c)
                   : ss_ntxent_backward(dz, dl, cache, z, V, N, D, &s->nt);
        return st;
    case ZK_SUPCON:
        st = c ? ss_dist_supcon_forward(loss, losses, cache, z, lab, V, N, D,
                                        &s->sc, c)
               : ss_supcon_forward(loss, losses, cache, z, lab, V, N, D,
                                   &s->sc);
        if (st == SS_OK)
            st = c ? ss_dist_supcon_backward(dz, dl, cache, z, lab, V, N, D,
                                             &s->sc, c)
                   : ss_supcon_backward(dz, dl, cache, z, lab, V, N, D,
                                        &s->sc);
        return st;
    default:
        st = c ? ss_dist_dcl_forward(loss, losses, cache, z, V, N, D, &s->dc,
                                     c)
               : ss_dcl_forward(loss, losses, cache, z, V, N, D, &s->dc);
        if (st == SS_OK)
            st = c ? ss_dist_dcl_backward(dz, dl, cache, z, V, N, D, &s->dc,
                                          c)
                   : ss_dcl_backward(dz, dl, cache, z, V, N, D, &s->dc);
        return st;
    }
}

static const char *z_name(zkind k) {
    return k == ZK_NTXENT ? "ntxent" : k == ZK_SUPCON ? "supcon" : "dcl";
}

/* nclass > 0: labels in [-1, nclass) scaled by a large odd factor (any
 * int64 is a class); 0: all unlabeled. */
static void z_case(const zspec *s, int variant, int64_t V, int64_t base,
                   int64_t D, int cosine, int nclass, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    if (Nt < 2) return; /* NT-Xent, DCL: no negative in one sample */
    zspec sp = *s;
    sp.nt.cosine = sp.sc.cosine = sp.dc.cosine = cosine;
    int64_t Mg = V * Nt * D, Ml = V * N * D;
    float *zg = malloc((size_t)Mg * sizeof(float));
    float *dzg = calloc((size_t)Mg, sizeof(float));
    float *z = malloc((size_t)Ml * sizeof(float));
    float *dz = malloc((size_t)Ml * sizeof(float));
    float *pre = malloc((size_t)Ml * sizeof(float));
    float *lg = malloc((size_t)(V * Nt) * sizeof(float));
    float *ll = malloc((size_t)(V * N) * sizeof(float));
    double *ref = malloc((size_t)Ml * sizeof(double));
    int64_t *labg = malloc((size_t)Nt * sizeof(int64_t));
    void *cg = malloc(z_cache(&sp, 0, V, Nt, D));
    void *cl = malloc(z_cache(&sp, 1, V, N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, Mg, &r, 1.0);
    for (int64_t n = 0; n < Nt; n++)
        labg[n] = nclass ? (int64_t)(ss_rng_u64(&r) % (uint64_t)(nclass + 1))
                               - 1
                         : -1;
    for (int64_t n = 0; n < Nt; n++)
        if (labg[n] >= 0) labg[n] = labg[n] * 1000003 + 7;
    for (int64_t v = 0; v < V; v++)
        memcpy(z + v * N * D, zg + (v * Nt + off) * D,
               (size_t)(N * D) * sizeof(float));
    /* pre-filled (accumulation) at the gradients' scale: over O(1) values
     * float32 would round the O(1e-4) gradients to ~1e-4 relative */
    ss_dt_fill(pre, Ml, &r, 1e-3);
    memcpy(dz, pre, (size_t)Ml * sizeof(float));
    float lossg = 0, lossl = 0, dl = 0.7f;
    char what[200];
    snprintf(what, sizeof what, "%s variant %d V %lld N %lld D %lld cos %d "
             "classes %d", z_name(sp.kind), variant, (long long)V,
             (long long)N, (long long)D, cosine, nclass);
    if (z_run(&sp, NULL, &lossg, lg, cg, dzg, dl, zg, labg, V, Nt, D) ||
        z_run(&sp, ss_dt_comm, &lossl, ll, cl, dz, dl, z, labg + off, V, N,
              D)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lossg;
    ss_dt_close_as(what, "loss", &lossl, &lref, 1);
    ss_dt_view_rows(ref, NULL, NULL, lg, V, N, Nt, off, 1);
    ss_dt_close_as(what, "losses", ll, ref, V * N);
    ss_dt_view_rows(ref, dz, pre, dzg, V, N, Nt, off, D);
    if (getenv("DT_DEBUG") && ss_dt_rel_err(dz, ref, Ml) > 1e-5)
        for (int64_t i = 0; i < Ml; i++)
            fprintf(stderr, "%lld %g %g\n", (long long)i, dz[i], ref[i]);
    ss_dt_close_as(what, "dz", dz, ref, Ml);
done:
    free(zg), free(dzg), free(z), free(dz), free(pre), free(lg), free(ll);
    free(ref), free(labg), free(cg), free(cl);
}

static void z_cases(int variant) {
    zspec s;
    memset(&s, 0, sizeof s);
    s.nt = ss_ntxent_defaults(), s.sc = ss_supcon_defaults();
    s.dc = ss_dcl_defaults();
    uint64_t sd = 100 + 10 * (uint64_t)variant;
    /* NT-Xent: HCL at two scales, debiased alone, both */
    s.kind = ZK_NTXENT;
    s.nt.hard_beta = 1.0f;
    z_case(&s, variant, 2, 5, 7, 1, 0, sd + 1);
    s.nt.hard_beta = 0.0f, s.nt.debias_tau_plus = 0.1f;
    z_case(&s, variant, 3, 4, 3, 0, 0, sd + 2);
    s.nt.hard_beta = 0.5f, s.nt.temperature = 0.2f;
    z_case(&s, variant, 2, 70, 9, 1, 0, sd + 3); /* > 1 column tile */
    z_case(&s, variant, 2, 1, 3, 1, 0, sd + 12); /* one sample per rank */
    /* SupCon: labels with -1, all unlabeled, V = 1, dot products */
    s.kind = ZK_SUPCON;
    z_case(&s, variant, 2, 5, 6, 1, 3, sd + 4);
    z_case(&s, variant, 2, 4, 5, 1, 0, sd + 5);
    z_case(&s, variant, 3, 70, 8, 1, 5, sd + 6);
    z_case(&s, variant, 1, 6, 4, 0, 2, sd + 7);
    z_case(&s, variant, 1, 3, 4, 1, 0, sd + 13); /* no positive: loss 0 */
    /* DCL, DCLW, joint negatives, V = 3 */
    s.kind = ZK_DCL;
    z_case(&s, variant, 2, 5, 6, 1, 0, sd + 8);
    s.dc.joint_negatives = 1;
    z_case(&s, variant, 3, 4, 5, 0, 0, sd + 9);
    s.dc.joint_negatives = 0;
    z_case(&s, variant, 3, 70, 7, 1, 0, sd + 10);
    s.dc = ss_dclw_defaults();
    z_case(&s, variant, 2, 6, 5, 1, 0, sd + 11);
}

/* ---- CLIP and SigLIP ----------------------------------------------------- */

/* pars: CLIP {log_scale}, SigLIP {log_t, bias}; dp: the parameter
 * gradients (pre-filled, accumulated). */
static ss_status pair_run(int siglip, const ss_comm *c, float *loss,
                          float *losses, void *cache, float *da, float *db,
                          float *dp, float dl, const float *a, const float *b,
                          const float *pars, int64_t N, int64_t D, int cosine) {
    ss_clip_opts co = {cosine};
    ss_siglip_opts so = {cosine};
    ss_status st;
    if (!siglip) {
        st = c ? ss_dist_clip_forward(loss, losses, cache, a, b, pars[0], N, D,
                                      &co, c)
               : ss_clip_forward(loss, losses, cache, a, b, pars[0], N, D, &co);
        if (st == SS_OK)
            st = c ? ss_dist_clip_backward(da, db, dp, dl, cache, a, b,
                                           pars[0], N, D, &co, c)
                   : ss_clip_backward(da, db, dp, dl, cache, a, b, pars[0], N,
                                      D, &co);
        return st;
    }
    st = c ? ss_dist_siglip_forward(loss, losses, cache, a, b, pars[0],
                                    pars[1], N, D, &so, c)
           : ss_siglip_forward(loss, losses, cache, a, b, pars[0], pars[1], N,
                               D, &so);
    if (st == SS_OK)
        st = c ? ss_dist_siglip_backward(da, db, dp, dp + 1, dl, cache, a, b,
                                         pars[0], pars[1], N, D, &so, c)
               : ss_siglip_backward(da, db, dp, dp + 1, dl, cache, a, b,
                                    pars[0], pars[1], N, D, &so);
    return st;
}

static void pair_case(int siglip, int variant, int64_t base, int64_t D,
                      int cosine, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    /* CLIP dot: log_scale 1 keeps dL/dlog_scale away from 0, where it is
     * a difference of O(Ntot) terms and float32 rounding dominates; with a
     * few pairs (base 1) at e^2.66 the positives' softmax saturates and the
     * gradients fall to ~1e-9, all rounding */
    float pars[2] = {siglip ? 2.3f : cosine && base > 1 ? 2.66f : 1.0f,
                     siglip ? -3.0f : 0.0f};
    size_t cgs = siglip ? ss_siglip_cache_size(Nt, D)
                        : ss_clip_cache_size(Nt, D);
    size_t cls = siglip ? ss_dist_siglip_cache_size(N, D)
                        : ss_dist_clip_cache_size(N, D);
    float *ag = malloc(2 * (size_t)(Nt * D) * sizeof(float)), *bg = ag + Nt * D;
    float *dg = calloc(2 * (size_t)(Nt * D), sizeof(float));
    float *d = malloc(4 * (size_t)(N * D) * sizeof(float));
    float *pre = d + 2 * N * D, *lg = malloc((size_t)Nt * sizeof(float));
    float *ll = malloc((size_t)N * sizeof(float));
    double *ref = malloc(2 * (size_t)(N * D) * sizeof(double));
    void *cg = malloc(cgs), *cl = malloc(cls);
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(ag, Nt * D, &r, cosine ? 1.0 : 0.3);
    for (int64_t i = 0; i < Nt * D; i++) /* correlated pairs */
        bg[i] = (float)(0.7 * ag[i] + (cosine ? 0.7 : 0.2) * ss_rng_normal(&r));
    ss_dt_fill(pre, 2 * N * D, &r, 1e-3);
    memcpy(d, pre, 2 * (size_t)(N * D) * sizeof(float));
    float lossg = 0, lossl = 0, dl = 0.9f, dpg[2] = {0, 0};
    float dpl[2] = {1e-3f, -2e-3f};
    char what[160];
    snprintf(what, sizeof what, "%s variant %d N %lld D %lld cos %d",
             siglip ? "siglip" : "clip", variant, (long long)N, (long long)D,
             cosine);
    if (pair_run(siglip, NULL, &lossg, lg, cg, dg, dg + Nt * D, dpg, dl, ag,
                 bg, pars, Nt, D, cosine) ||
        pair_run(siglip, ss_dt_comm, &lossl, ll, cl, d, d + N * D, dpl, dl,
                 ag + off * D, bg + off * D, pars, N, D, cosine)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lossg, pref[2] = {dpg[0], dpg[1]};
    ss_dt_close_as(what, "loss", &lossl, &lref, 1);
    for (int64_t i = 0; i < N; i++) ref[i] = lg[off + i];
    ss_dt_close_as(what, "losses", ll, ref, N);
    /* parameter gradients: the global derivative on every rank */
    dpl[0] -= 1e-3f, dpl[1] += 2e-3f; /* pre-filled at their scale */
    ss_dt_close_as(what, "dparams", dpl, pref, siglip ? 2 : 1);
    ss_dt_view_rows(ref, d, pre, dg, 2, N, Nt, off, D); /* (a|q, b|k) */
    ss_dt_close_as(what, "da", d, ref, N * D);
    ss_dt_close_as(what, "db", d + N * D, ref + N * D, N * D);
done:
    free(ag), free(dg), free(d), free(lg), free(ll), free(ref), free(cg);
    free(cl);
}

/* ---- MoCo and the distributed enqueue ------------------------------------ */

static void moco_case(int variant, int64_t base, int64_t K, int64_t D,
                      int cosine, int with_dk, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    ss_moco_opts o = ss_moco_defaults();
    o.cosine = cosine, o.temperature = 0.2f;
    float *qg = malloc((size_t)(2 * Nt * D + K * D) * sizeof(float));
    float *kg = qg + Nt * D, *queue = kg + Nt * D;
    float *dg = calloc(2 * (size_t)(Nt * D), sizeof(float));
    float *d = malloc(4 * (size_t)(N * D) * sizeof(float));
    float *pre = d + 2 * N * D, *lg = malloc((size_t)Nt * sizeof(float));
    float *ll = malloc((size_t)N * sizeof(float));
    double *ref = malloc(2 * (size_t)(N * D) * sizeof(double));
    void *cg = malloc(ss_moco_cache_size(Nt, K, D));
    void *cl = malloc(ss_dist_moco_cache_size(N, K, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(qg, 2 * Nt * D + K * D, &r, cosine ? 1.0 : 0.3);
    for (int64_t i = 0; i < Nt * D; i++) kg[i] += 0.8f * qg[i];
    ss_dt_fill(pre, 2 * N * D, &r, 1e-3);
    memcpy(d, pre, 2 * (size_t)(N * D) * sizeof(float));
    float lossg = 0, lossl = 0, dl = 1.1f;
    char what[160];
    snprintf(what, sizeof what, "moco variant %d N %lld K %lld D %lld cos %d",
             variant, (long long)N, (long long)K, (long long)D, cosine);
    if (ss_moco_forward(&lossg, lg, cg, qg, kg, queue, Nt, K, D, &o) ||
        ss_moco_backward(dg, with_dk ? dg + Nt * D : NULL, dl, cg, qg, kg,
                         queue, Nt, K, D, &o) ||
        ss_dist_moco_forward(&lossl, ll, cl, qg + off * D, kg + off * D, queue,
                             N, K, D, &o, ss_dt_comm) ||
        ss_dist_moco_backward(d, with_dk ? d + N * D : NULL, dl, cl,
                              qg + off * D, kg + off * D, queue, N, K, D, &o,
                              ss_dt_comm)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lossg;
    ss_dt_close_as(what, "loss", &lossl, &lref, 1);
    for (int64_t i = 0; i < N; i++) ref[i] = lg[off + i];
    ss_dt_close_as(what, "losses", ll, ref, N);
    ss_dt_view_rows(ref, d, pre, dg, 2, N, Nt, off, D); /* (a|q, b|k) */
    ss_dt_close_as(what, "dq, dk", d, ref, with_dk ? 2 * N * D : N * D);
done:
    free(qg), free(dg), free(d), free(lg), free(ll), free(ref), free(cg);
    free(cl);
}

/* After ss_dist_queue_enqueue of the local keys, every rank's queue equals
 * one queue fed the concatenated keys (bit for bit). */
static void enqueue_case(int variant, int64_t base, int64_t K, int64_t D,
                         uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base);
    int64_t off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    ss_queue *qd = NULL, *qs = NULL;
    ss_rng r1, r2;
    ss_rng_seed(&r1, seed), ss_rng_seed(&r2, seed);
    float *keys = malloc((size_t)(Nt * D) * sizeof(float));
    float *a = malloc(2 * (size_t)(K * D) * sizeof(float)), *b = a + K * D;
    char what[96];
    snprintf(what, sizeof what, "enqueue variant %d N %lld K %lld", variant,
             (long long)N, (long long)K);
    if (ss_queue_create(&qd, K, D, &r1) || ss_queue_create(&qs, K, D, &r2)) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    for (int step = 0; step < 3; step++) {
        ss_dt_fill(keys, Nt * D, &r1, 1.0);
        if (ss_dist_queue_enqueue(qd, keys + off * D, N, ss_dt_comm) ||
            ss_queue_enqueue(qs, keys, Nt)) {
            ss_dt_fail(what, ss_last_error());
            goto done;
        }
        ss_queue_read(qd, a), ss_queue_read(qs, b);
        if (memcmp(a, b, (size_t)(K * D) * sizeof(float)) ||
            memcmp(ss_queue_data(qd), ss_queue_data(qs),
                   (size_t)(K * D) * sizeof(float)) ||
            ss_queue_count(qd) != ss_queue_count(qs))
            ss_dt_fail(what, "queue differs from the single-process queue");
    }
done:
    ss_queue_free(qd), ss_queue_free(qs);
    free(keys), free(a);
}

/* ---- errors agree on every rank ------------------------------------------ */

static void error_cases(void) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank, bad = W - 1;
    const ss_comm *c = ss_dt_comm;
    enum { V = 2, N = 3, D = 4, K = 5 };
    float z[V * N * D], dz[V * N * D] = {0}, loss = 0, dp[2] = {0, 0};
    int64_t lab[N] = {0, 1, 0};
    _Alignas(64) char cache[4096]; /* per rank: thread ranks share statics */
    ss_rng r;
    ss_rng_seed(&r, 7); /* the same on every rank: the queue must agree */
    float queue[K * D];
    ss_dt_fill(queue, K * D, &r, 1.0);
    ss_rng_seed(&r, 77 + (uint64_t)R);
    ss_dt_fill(z, V * N * D, &r, 1.0);
    /* NT-Xent: debias_tau_plus out of range on one rank */
    ss_ntxent_opts no = ss_ntxent_defaults();
    if (R == bad) no.debias_tau_plus = 1.0f;
    ss_dt_expect("ntxent tau_plus = 1 on one rank",
           ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D, &no, c),
           SS_ERR_PARAM);
    /* SupCon: a bad label on one rank; a corrupted cache on one rank */
    ss_supcon_opts so = ss_supcon_defaults();
    if (R == bad) lab[1] = -2;
    ss_dt_expect("supcon label -2 on one rank",
           ss_dist_supcon_forward(&loss, NULL, cache, z, lab, V, N, D, &so, c),
           SS_ERR_LABEL);
    lab[1] = 1;
    if (ss_dist_supcon_forward(&loss, NULL, cache, z, lab, V, N, D, &so, c))
        ss_dt_fail("supcon forward", ss_last_error());
    if (R == bad) lab[2] = 5; /* labels changed: cache mismatch */
    ss_dt_expect("supcon other labels on one rank",
           ss_dist_supcon_backward(dz, 1.0f, cache, z, lab, V, N, D, &so, c),
           SS_ERR_PARAM);
    if (!ss_dt_all_zero(dz, V * N * D))
        ss_dt_fail("supcon failed backward", "wrote dz");
    /* DCL: sigma differing (DCLW), NaN on one rank */
    ss_dcl_opts dco = ss_dclw_defaults();
    if (W > 1 && R == bad) dco.sigma = 0.25f;
    if (W > 1)
        ss_dt_expect("dclw sigma differs",
               ss_dist_dcl_forward(&loss, NULL, cache, z, V, N, D, &dco, c),
               SS_ERR_PARAM);
    dco = ss_dcl_defaults();
    if (R == bad) z[3] = NAN;
    ss_dt_expect("dcl NaN on one rank",
           ss_dist_dcl_forward(&loss, NULL, cache, z, V, N, D, &dco, c),
           SS_ERR_NONFINITE);
    z[3] = 0.5f;
    /* CLIP: log_scale differing; bad cache on one rank writes nothing */
    const float *a = z, *b = z + N * D;
    ss_clip_opts co = ss_clip_defaults();
    if (W > 1)
        ss_dt_expect("clip log_scale differs",
               ss_dist_clip_forward(&loss, NULL, cache, a, b,
                                    R == bad ? 1.0f : 2.0f, N, D, &co, c),
               SS_ERR_PARAM);
    if (ss_dist_clip_forward(&loss, NULL, cache, a, b, 2.0f, N, D, &co, c))
        ss_dt_fail("clip forward", ss_last_error());
    if (R == bad) memset(cache, 0, 8);
    ss_dt_expect("clip bad cache on one rank",
           ss_dist_clip_backward(dz, dz + N * D, dp, 1.0f, cache, a, b, 2.0f,
                                 N, D, &co, c), SS_ERR_STATE);
    if (!ss_dt_all_zero(dz, V * N * D) || dp[0] != 0.0f)
        ss_dt_fail("clip failed backward", "wrote da, db or dlog_scale");
    /* SigLIP: bias differing; Inf on one rank */
    ss_siglip_opts sgo = ss_siglip_defaults();
    if (W > 1)
        ss_dt_expect("siglip bias differs",
               ss_dist_siglip_forward(&loss, NULL, cache, a, b, 2.3f,
                                      R == bad ? -1.0f : -10.0f, N, D, &sgo, c),
               SS_ERR_PARAM);
    if (R == bad) z[N * D + 1] = INFINITY;
    ss_dt_expect("siglip Inf on one rank",
           ss_dist_siglip_forward(&loss, NULL, cache, a, b, 2.3f, -10.0f, N, D,
                                  &sgo, c), SS_ERR_NONFINITE);
    z[N * D + 1] = 0.5f;
    /* MoCo: a drifted queue on one rank; NaN keys in the enqueue */
    ss_moco_opts mo = ss_moco_defaults();
    if (W > 1 && R == bad) queue[7] += 1.0f;
    if (W > 1)
        ss_dt_expect("moco queue differs",
               ss_dist_moco_forward(&loss, NULL, cache, a, b, queue, N, K, D,
                                    &mo, c), SS_ERR_PARAM);
    if (W > 1 && R == bad) queue[7] -= 1.0f;
    ss_queue *q = NULL;
    ss_rng_seed(&r, 5);
    if (ss_queue_create(&q, K, D, &r) == SS_OK) {
        float before[K * D], after[K * D];
        ss_queue_read(q, before);
        if (R == bad) z[2] = NAN;
        ss_dt_expect("enqueue NaN on one rank",
                     ss_dist_queue_enqueue(q, z, N, c), SS_ERR_NONFINITE);
        z[2] = 0.5f;
        ss_queue_read(q, after);
        if (memcmp(before, after, sizeof before))
            ss_dt_fail("enqueue failed", "changed the queue");
        ss_dt_expect("enqueue after errors", ss_dist_queue_enqueue(q, z, N, c),
               SS_OK);
        ss_queue_free(q);
    }
    /* and the comm still works */
    ss_dt_expect("moco after errors",
           ss_dist_moco_forward(&loss, NULL, cache, a, b, queue, N, K, D, &mo,
                                c), SS_OK);
}

SS_DIST_GROUP(contrastive) {
    for (int variant = 0; variant < 3; variant++) {
        uint64_t sd = 300 + 10 * (uint64_t)variant;
        z_cases(variant);
        pair_case(0, variant, 5, 7, 1, sd + 1);
        pair_case(0, variant, 4, 3, 0, sd + 2);
        pair_case(1, variant, 5, 7, 1, sd + 3);
        pair_case(1, variant, 4, 3, 0, sd + 4);
        pair_case(variant == 1, variant, 140, 9, 1, sd + 5); /* > 1 tile */
        pair_case(variant == 2, variant, 1, 4, 1, sd + 10); /* one pair */
        moco_case(variant, 5, 11, 6, 1, 0, sd + 6);
        moco_case(variant, 4, 300, 3, 0, 1, sd + 7);
        enqueue_case(variant, 3, 8, 2, sd + 8);
        enqueue_case(variant, 4, 5, 3, sd + 9); /* wraps every step */
    }
    error_cases();
}
