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
        labg[n] = nclass ? (int64_t)(ss_rng_u64(&r) % (uint64_t)(nclass + 1)) - 1
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
    size_t wl = strlen(what);
    ss_dt_close(strcat(what, " loss"), &lossl, &lref, 1);
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++) ref[v * N + n] = lg[v * Nt + off + n];
    what[wl] = 0;
    ss_dt_close(strcat(what, " losses"), ll, ref, V * N);
    what[wl] = 0;
    strcat(what, " dz");
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t d = 0; d < D; d++) {
                int64_t i = (v * N + n) * D + d;
                dz[i] = (dz[i] - pre[i]) / (float)W; /* mean convention */
                ref[i] = dzg[(v * Nt + off + n) * D + d];
            }
    if (getenv("DT_DEBUG") && ss_dt_rel_err(dz, ref, Ml) > 1e-5)
        for (int64_t i = 0; i < Ml; i++)
            fprintf(stderr, "%lld %g %g\n", (long long)i, dz[i], ref[i]);
    ss_dt_close(what, dz, ref, Ml);
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
    /* SupCon: labels with -1, all unlabeled, V = 1, dot products */
    s.kind = ZK_SUPCON;
    z_case(&s, variant, 2, 5, 6, 1, 3, sd + 4);
    z_case(&s, variant, 2, 4, 5, 1, 0, sd + 5);
    z_case(&s, variant, 3, 70, 8, 1, 5, sd + 6);
    z_case(&s, variant, 1, 6, 4, 0, 2, sd + 7);
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

SS_DIST_GROUP(contrastive) {
    for (int variant = 0; variant < 3; variant++) z_cases(variant);
}
