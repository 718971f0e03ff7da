/* dist_core.c - distributed NT-Xent (all-gather), Barlow Twins and VICReg
 * against the single-process losses on the concatenated batch, and error
 * agreement. Helpers and the registry: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- NT-Xent ------------------------------------------------------------- */

static void ntxent_case(int variant, int64_t V, int64_t base, int64_t D,
                        int cosine, float t, uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base), off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    if (Nt < 2) return; /* one sample: loss and gradient identically 0 */
    ss_ntxent_opts o = ss_ntxent_defaults();
    o.cosine = cosine, o.temperature = t;
    float *zg = malloc((size_t)(V * Nt * D) * sizeof(float));
    float *dzg = calloc((size_t)(V * Nt * D), sizeof(float));
    float *z = malloc((size_t)(V * N * D) * sizeof(float));
    float *dz = malloc((size_t)(V * N * D) * sizeof(float));
    float *pre = malloc((size_t)(V * N * D) * sizeof(float));
    float *lg = malloc((size_t)(V * Nt) * sizeof(float));
    float *ll = malloc((size_t)(V * N) * sizeof(float));
    double *ref = malloc((size_t)(V * N * D) * sizeof(double));
    void *cg = malloc(ss_ntxent_cache_size(V, Nt, D));
    void *cl = malloc(ss_dist_ntxent_cache_size(V, N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, V * Nt * D, &r, 1.0);
    for (int64_t v = 0; v < V; v++)
        memcpy(z + v * N * D, zg + (v * Nt + off) * D,
               (size_t)(N * D) * sizeof(float));
    ss_dt_fill(pre, V * N * D, &r, 1.0);
    memcpy(dz, pre, (size_t)(V * N * D) * sizeof(float));
    float lossg = 0, lossl = 0, dl = 0.7f;
    char what[160];
    snprintf(what, sizeof what, "ntxent variant %d V %lld N %lld D %lld cos %d",
             variant, (long long)V, (long long)N, (long long)D, cosine);
    if (ss_ntxent_forward(&lossg, lg, cg, zg, V, Nt, D, &o) != SS_OK ||
        ss_ntxent_backward(dzg, dl, cg, zg, V, Nt, D, &o) != SS_OK) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    if (ss_dist_ntxent_forward(&lossl, ll, cl, z, V, N, D, &o, ss_dt_comm) != SS_OK ||
        ss_dist_ntxent_backward(dz, dl, cl, z, V, N, D, &o, ss_dt_comm) != SS_OK) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lossg;
    ss_dt_close(what, &lossl, &lref, 1);
    ss_dt_view_rows(ref, NULL, NULL, lg, V, N, Nt, off, 1);
    ss_dt_close(what, ll, ref, V * N); /* per-anchor losses */
    ss_dt_view_rows(ref, dz, pre, dzg, V, N, Nt, off, D);
    ss_dt_close(what, dz, ref, V * N * D);
done:
    free(zg), free(dzg), free(z), free(dz), free(pre), free(lg), free(ll);
    free(ref), free(cg), free(cl);
}

/* ---- Barlow Twins and VICReg --------------------------------------------- */

static void stats_case(int vicreg, int variant, int64_t base, int64_t D,
                       uint64_t seed) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank;
    int64_t N = ss_dt_local_n(variant, R, W, base), off = ss_dt_sum_before(variant, R, W, base);
    int64_t Nt = ss_dt_sum_before(variant, W, W, base);
    if (Nt < 2) return; /* one process, one row: no batch statistics */
    ss_barlow_opts bo = ss_barlow_defaults();
    ss_vicreg_opts vo = ss_vicreg_defaults();
    bo.form = SS_MOMENT_DXD, vo.form = SS_MOMENT_DXD;
    bo.lambda = 0.05f; /* make the off-diagonal term weigh */
    size_t cgs = vicreg ? ss_vicreg_cache_size(Nt, D, &vo)
                        : ss_barlow_cache_size(Nt, D, &bo);
    size_t cls = vicreg ? ss_dist_vicreg_cache_size(D) : ss_dist_barlow_cache_size(D);
    float *ag = malloc(2 * (size_t)(Nt * D) * sizeof(float)), *bg = ag + Nt * D;
    float *dag = calloc(2 * (size_t)(Nt * D), sizeof(float)), *dbg = dag + Nt * D;
    float *a = ag + off * D, *b = bg + off * D;
    float *d = malloc(4 * (size_t)(N * D) * sizeof(float)), *pre = d + 2 * N * D;
    double *ref = malloc(2 * (size_t)(N * D) * sizeof(double));
    void *cg = malloc(cgs), *cl = malloc(cls);
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(ag, Nt * D, &r, 1.0);
    for (int64_t i = 0; i < Nt * D; i++)
        bg[i] = (float)(0.6 * ag[i] + 0.8 * ss_rng_normal(&r) + 0.3);
    ss_dt_fill(pre, 2 * N * D, &r, 1.0);
    memcpy(d, pre, 2 * (size_t)(N * D) * sizeof(float));
    float lg = 0, ll = 0, tg[3] = {0}, tl[3] = {0}, dl = 1.3f;
    char what[160];
    snprintf(what, sizeof what, "%s variant %d N %lld D %lld",
             vicreg ? "vicreg" : "barlow", variant, (long long)N, (long long)D);
    ss_status s1, s2, s3, s4;
    if (vicreg) {
        s1 = ss_vicreg_forward(&lg, tg, cg, ag, bg, Nt, D, &vo);
        s2 = ss_vicreg_backward(dag, dbg, dl, cg, ag, bg, Nt, D, &vo);
        s3 = ss_dist_vicreg_forward(&ll, tl, cl, a, b, N, D, &vo, ss_dt_comm);
        s4 = ss_dist_vicreg_backward(d, d + N * D, dl, cl, a, b, N, D, &vo,
                                     ss_dt_comm);
    } else {
        s1 = ss_barlow_forward(&lg, tg, cg, ag, bg, Nt, D, &bo);
        s2 = ss_barlow_backward(dag, dbg, dl, cg, ag, bg, Nt, D, &bo);
        s3 = ss_dist_barlow_forward(&ll, tl, cl, a, b, N, D, &bo, ss_dt_comm);
        s4 = ss_dist_barlow_backward(d, d + N * D, dl, cl, a, b, N, D, &bo,
                                     ss_dt_comm);
    }
    if (s1 || s2 || s3 || s4) {
        ss_dt_fail(what, ss_last_error());
        goto done;
    }
    double lref = lg, tref[3] = {tg[0], tg[1], tg[2]};
    ss_dt_close(what, &ll, &lref, 1);
    for (int k = 0; k < (vicreg ? 3 : 2); k++) ss_dt_close(what, tl + k, tref + k, 1);
    for (int64_t i = 0; i < N * D; i++) {
        ref[i] = dag[off * D + i];
        ref[N * D + i] = dbg[off * D + i];
    }
    for (int64_t i = 0; i < 2 * N * D; i++) d[i] = (d[i] - pre[i]) / (float)W;
    ss_dt_close(what, d, ref, N * D);
    ss_dt_close(what, d + N * D, ref + N * D, N * D);
done:
    free(ag), free(dag), free(d), free(ref), free(cg), free(cl);
}

/* ---- errors agree on every rank ------------------------------------------ */

static void error_cases(void) {
    int W = ss_dt_comm->size, R = ss_dt_comm->rank, bad = W - 1;
    int64_t V = 2, N = 3, D = 4;
    float z[2 * 3 * 4], dz[2 * 3 * 4] = {0}, loss;
    char cache[1024];
    ss_rng r;
    ss_rng_seed(&r, 99 + (uint64_t)R);
    ss_dt_fill(z, V * N * D, &r, 1.0);
    ss_ntxent_opts o = ss_ntxent_defaults();
    /* NaN on the last rank only */
    if (R == bad) z[5] = NAN;
    ss_dt_expect("ntxent NaN on one rank",
                    ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D, &o,
                                           ss_dt_comm), SS_ERR_NONFINITE);
    if (R == bad) z[5] = 0.5f;
    /* a NULL output on rank 0 */
    ss_dt_expect("ntxent NULL loss on rank 0",
                    ss_dist_ntxent_forward(R == 0 ? NULL : &loss, NULL, cache,
                                           z, V, N, D, &o, ss_dt_comm),
                    SS_ERR_NULL);
    /* temperature differing on one rank (only with W > 1) */
    if (W > 1) {
        ss_ntxent_opts o2 = o;
        if (R == bad) o2.temperature = 0.25f;
        ss_dt_expect("ntxent temperature differs",
                        ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D,
                                               &o2, ss_dt_comm), SS_ERR_PARAM);
        /* D differing */
        ss_dt_expect("ntxent D differs",
                        ss_dist_ntxent_forward(&loss, NULL, cache, z, V,
                                               R == bad ? 2 : N,
                                               R == bad ? 6 : D, &o, ss_dt_comm),
                        SS_ERR_PARAM);
    }
    /* backward with a bad cache on one rank, after a good forward */
    if (ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D, &o, ss_dt_comm) !=
        SS_OK) {
        ss_dt_fail("ntxent forward before bad cache", ss_last_error());
        return;
    }
    if (R == bad) memset(cache, 0, 8);
    ss_dt_expect("ntxent bad cache on one rank",
                    ss_dist_ntxent_backward(dz, 1.0f, cache, z, V, N, D, &o,
                                            ss_dt_comm), SS_ERR_PARAM);
    for (int i = 0; i < 24; i++)
        if (dz[i] != 0.0f) {
            ss_dt_fail("ntxent failed backward", "wrote into dz");
            break;
        }
    /* dloss differing on one rank */
    if (W > 1 && ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D, &o,
                                        ss_dt_comm) == SS_OK)
        ss_dt_expect("ntxent dloss differs",
                        ss_dist_ntxent_backward(dz, R == bad ? 2.0f : 1.0f,
                                                cache, z, V, N, D, &o, ss_dt_comm),
                        SS_ERR_PARAM);
    /* HCL options: a negative hard_beta on one rank */
    ss_ntxent_opts o3 = o;
    if (R == bad) o3.hard_beta = -1.0f;
    ss_dt_expect("ntxent bad hard_beta on one rank",
                    ss_dist_ntxent_forward(&loss, NULL, cache, z, V, N, D, &o3,
                                           ss_dt_comm), SS_ERR_PARAM);
    /* Barlow: Inf in b on one rank; VICReg: negative eps on one rank */
    float a[12], b[12], dcache[4096], terms[3];
    ss_dt_fill(a, 12, &r, 1.0), ss_dt_fill(b, 12, &r, 1.0);
    if (R == bad) b[7] = INFINITY;
    ss_barlow_opts bo = ss_barlow_defaults();
    ss_dt_expect("barlow Inf on one rank",
                    ss_dist_barlow_forward(&loss, terms, dcache, a, b, 3, 4,
                                           &bo, ss_dt_comm), SS_ERR_NONFINITE);
    b[7] = 0.1f;
    bo.form = SS_MOMENT_GRAM;
    ss_dt_expect("barlow Gram form",
                    ss_dist_barlow_forward(&loss, terms, dcache, a, b, 3, 4,
                                           &bo, ss_dt_comm), SS_ERR_UNSUPPORTED);
    ss_vicreg_opts vo = ss_vicreg_defaults();
    if (R == bad) vo.eps = -1.0f;
    ss_dt_expect("vicreg bad eps on one rank",
                    ss_dist_vicreg_forward(&loss, terms, dcache, a, b, 3, 4,
                                           &vo, ss_dt_comm), SS_ERR_PARAM);
    vo.eps = 1e-4f;
    ss_dt_expect("vicreg N = 0 on one rank",
                    ss_dist_vicreg_forward(&loss, terms, dcache, a, b,
                                           R == bad ? 0 : 3, 4, &vo, ss_dt_comm),
                    SS_ERR_SIZE);
    /* and the comm still works afterwards */
    if (ss_dist_vicreg_forward(&loss, terms, dcache, a, b, 3, 4, &vo, ss_dt_comm) !=
        SS_OK)
        ss_dt_fail("vicreg after errors", ss_last_error());
}

SS_DIST_GROUP(core) {

    for (int variant = 0; variant < 3; variant++) {
        ntxent_case(variant, 2, 5, 7, 1, 0.5f, 11 + variant);
        ntxent_case(variant, 3, 4, 3, 0, 0.2f, 21 + variant);
        ntxent_case(variant, 2, 70, 33, 1, 0.1f, 31 + variant); /* > 1 tile */
        stats_case(0, variant, 6, 5, 41 + variant);
        stats_case(0, variant, 40, 17, 51 + variant);
        stats_case(1, variant, 6, 5, 61 + variant);
        stats_case(1, variant, 40, 17, 71 + variant);
    }
    ntxent_case(1, 2, 129, 3, 1, 0.3f, 7); /* > 1 local row tile (256) */
    ntxent_case(0, 2, 1, 1, 0, 0.5f, 5); /* N = 1, D = 1 (dot: cosine
                                            rows of D = 1 have no gradient) */
    error_cases();
}
