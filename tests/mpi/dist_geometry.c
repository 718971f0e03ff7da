/* dist_geometry.c - distributed geometry-family losses (negcos, TiCo,
 * W-MSE, hypersphere, KoLeo, MMCR, EMP-SSL) against the single-process
 * losses on the concatenated batch, and error agreement. Helpers and the
 * registry: dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

typedef struct {
    int W, R, variant;
    int64_t N, off, Nt; /* local rows, rows below this rank, global rows */
} dg_layout;

static dg_layout dg_lay(int variant, int64_t base) {
    dg_layout l;
    l.W = ss_dt_comm->size, l.R = ss_dt_comm->rank, l.variant = variant;
    l.N = ss_dt_local_n(variant, l.R, l.W, base);
    l.off = ss_dt_sum_before(variant, l.R, l.W, base);
    l.Nt = ss_dt_sum_before(variant, l.W, l.W, base);
    return l;
}

/* loc (V, N, D) = this rank's rows of glob (V, Nt, D). */
static void dg_take(float *loc, const float *glob, const dg_layout *l,
                    int64_t V, int64_t D) {
    for (int64_t v = 0; v < V; v++)
        memcpy(loc + v * l->N * D, glob + (v * l->Nt + l->off) * D,
               (size_t)(l->N * D) * sizeof(float));
}

/* Checks local accumulated gradient d (V, N, D), pre-filled with pre,
 * against the single-process gradient g (V, Nt, D): (d - pre) / W == g's
 * rows (mean convention). */
static void dg_grad(const char *what, const float *d, const float *pre,
                    const float *g, const dg_layout *l, int64_t V, int64_t D) {
    int64_t n = V * l->N * D;
    float *got = malloc((size_t)n * sizeof(float));
    double *ref = malloc((size_t)n * sizeof(double));
    for (int64_t v = 0; v < V; v++)
        for (int64_t i = 0; i < l->N * D; i++) {
            int64_t k = v * l->N * D + i;
            got[k] = (d[k] - pre[k]) / (float)l->W;
            ref[k] = g[(v * l->Nt + l->off) * D + i];
        }
    ss_dt_close(what, got, ref, n);
    free(got), free(ref);
}

/* Per-row outputs: loc (V, N) against the rows of glob (V, Nt). */
static void dg_rows(const char *what, const float *loc, const float *glob,
                    const dg_layout *l, int64_t V) {
    double *ref = malloc((size_t)(V * l->N) * sizeof(double));
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < l->N; n++) ref[v * l->N + n] = glob[v * l->Nt + l->off + n];
    ss_dt_close(what, loc, ref, V * l->N);
    free(ref);
}

static void dg_scalar(const char *what, float got, float want) {
    double w = want;
    ss_dt_close(what, &got, &w, 1);
}

/* Random pre-filled gradient buffer (n) and its copy. */
static float *dg_prefill(float **pre, int64_t n, ss_rng *r) {
    float *d = malloc((size_t)n * sizeof(float));
    *pre = malloc((size_t)n * sizeof(float));
    ss_dt_fill(*pre, n, r, 1.0);
    memcpy(d, *pre, (size_t)n * sizeof(float));
    return d;
}

static int dg_ok(const char *what, ss_status st) {
    if (st != SS_OK) ss_dt_fail(what, ss_last_error());
    return st == SS_OK;
}

static int dg_unchanged(const char *what, const float *d, const float *pre,
                        int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (d[i] != pre[i]) {
            ss_dt_fail(what, "a failed call wrote into the gradient");
            return 0;
        }
    return 1;
}

/* ---- negcos ------------------------------------------------------------------ */

/* sym: the symmetric form (x = p1, p2, z1, z2), else (p, z). with_dz:
 * gradients into the targets too. */
static void negcos_case(int variant, int64_t base, int64_t D, int sym,
                        int with_dz, uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    int nx = sym ? 4 : 2, P = nx / 2;
    int64_t gn = l.Nt * D, ln = l.N * D;
    float *xg = malloc((size_t)(nx * gn) * sizeof(float));
    float *dg = calloc((size_t)(nx * gn), sizeof(float));
    float *xl = malloc((size_t)(nx * ln) * sizeof(float));
    float *lg = malloc((size_t)(P * l.Nt) * sizeof(float));
    float *ll = malloc((size_t)(P * l.N) * sizeof(float));
    void *cg = malloc(sym ? ss_negcos_sym_cache_size(l.Nt, D)
                          : ss_negcos_cache_size(l.Nt, D));
    void *cl = malloc(sym ? ss_dist_negcos_sym_cache_size(l.N, D)
                          : ss_dist_negcos_cache_size(l.N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(xg, nx * gn, &r, 1.0);
    for (int k = 0; k < nx; k++) dg_take(xl + k * ln, xg + k * gn, &l, 1, D);
    float *pre, *d = dg_prefill(&pre, nx * ln, &r);
    float lossg = 0, lossl = 0, dl = 0.8f;
    const ss_comm *c = ss_dt_comm;
    char what[160];
    snprintf(what, sizeof what, "negcos%s variant %d N %lld D %lld dz %d",
             sym ? "_sym" : "", variant, (long long)l.N, (long long)D, with_dz);
    float *G[4], *L[4], *X[4], *Gx[4];
    for (int k = 0; k < 4; k++) {
        int kk = k < nx ? k : 0;
        G[k] = dg + kk * gn, L[k] = d + kk * ln, X[k] = xl + kk * ln;
        Gx[k] = xg + kk * gn;
    }
    ss_status s1, s2, s3, s4;
    if (sym) {
        s1 = ss_negcos_sym_forward(&lossg, lg, cg, Gx[0], Gx[1], Gx[2], Gx[3],
                                   l.Nt, D, NULL);
        s2 = ss_negcos_sym_backward(G[0], G[1], with_dz ? G[2] : NULL,
                                    with_dz ? G[3] : NULL, dl, cg, Gx[0], Gx[1],
                                    Gx[2], Gx[3], l.Nt, D, NULL);
        s3 = ss_dist_negcos_sym_forward(&lossl, ll, cl, X[0], X[1], X[2], X[3],
                                        l.N, D, NULL, c);
        s4 = ss_dist_negcos_sym_backward(L[0], L[1], with_dz ? L[2] : NULL,
                                         with_dz ? L[3] : NULL, dl, cl, X[0],
                                         X[1], X[2], X[3], l.N, D, NULL, c);
    } else {
        s1 = ss_negcos_forward(&lossg, lg, cg, Gx[0], Gx[1], l.Nt, D, NULL);
        s2 = ss_negcos_backward(G[0], with_dz ? G[1] : NULL, dl, cg, Gx[0],
                                Gx[1], l.Nt, D, NULL);
        s3 = ss_dist_negcos_forward(&lossl, ll, cl, X[0], X[1], l.N, D, NULL, c);
        s4 = ss_dist_negcos_backward(L[0], with_dz ? L[1] : NULL, dl, cl, X[0],
                                     X[1], l.N, D, NULL, c);
    }
    if (dg_ok(what, s1) && dg_ok(what, s2) && dg_ok(what, s3) && dg_ok(what, s4)) {
        dg_scalar(what, lossl, lossg);
        dg_rows(what, ll, lg, &l, P);
        for (int k = 0; k < nx; k++) /* targets without dz: still unchanged */
            dg_grad(what, d + k * ln, pre + k * ln, dg + k * gn, &l, 1, D);
    }
    free(xg), free(dg), free(xl), free(lg), free(ll), free(cg), free(cl);
    free(d), free(pre);
}

static void negcos_errors(void) {
    const ss_comm *c = ss_dt_comm;
    int W = c->size, R = c->rank, bad = W - 1;
    float p[12], z[12], dp[12] = {0}, loss, losses[3];
    _Alignas(64) char cache[1024];
    ss_rng r;
    ss_rng_seed(&r, 7 + (uint64_t)R);
    ss_dt_fill(p, 12, &r, 1.0), ss_dt_fill(z, 12, &r, 1.0);
    ss_negcos_opts o = ss_negcos_defaults();
    if (R == bad) z[3] = NAN;
    ss_dt_expect("negcos NaN on one rank",
              ss_dist_negcos_forward(&loss, losses, cache, p, z, 3, 4, &o, c),
              SS_ERR_NONFINITE);
    z[3] = 0.25f;
    if (W > 1) {
        ss_negcos_opts o2 = o;
        if (R == bad) o2.eps = 1e-6f;
        ss_dt_expect("negcos eps differs",
                  ss_dist_negcos_forward(&loss, losses, cache, p, z, 3, 4, &o2,
                                         c), SS_ERR_PARAM);
    }
    if (!dg_ok("negcos forward",
               ss_dist_negcos_forward(&loss, losses, cache, p, z, 3, 4, &o, c)))
        return;
    if (W > 1)
        ss_dt_expect("negcos dloss differs",
                  ss_dist_negcos_backward(dp, NULL, R == bad ? 2.0f : 1.0f,
                                          cache, p, z, 3, 4, &o, c),
                  SS_ERR_PARAM);
    if (R == bad) memset(cache, 0, 8);
    ss_dt_expect("negcos bad cache on one rank",
              ss_dist_negcos_backward(dp, NULL, 1.0f, cache, p, z, 3, 4, &o, c),
              SS_ERR_STATE);
    float zero[12] = {0};
    dg_unchanged("negcos failed backward", dp, zero, 12);
    ss_dt_expect("negcos N = 0 on one rank",
              ss_dist_negcos_forward(&loss, losses, cache, p, z,
                                     R == bad ? 0 : 3, 4, &o, c), SS_ERR_SIZE);
}

/* ---- TiCo ------------------------------------------------------------------------ */

/* Two steps with a shared state history: the second step's loss, losses,
 * gradients, and both states afterwards. */
static void tico_case(int variant, int64_t base, int64_t D, int update,
                      uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    if (l.Nt < 2) return; /* TiCo needs 2 rows */
    int64_t gn = l.Nt * D, ln = l.N * D;
    float *xg = malloc((size_t)(4 * gn) * sizeof(float));
    float *dg = calloc((size_t)(2 * gn), sizeof(float));
    float *xl = malloc((size_t)(4 * ln) * sizeof(float));
    float *lg = malloc((size_t)l.Nt * sizeof(float));
    float *ll = malloc((size_t)l.N * sizeof(float));
    float *Cg = malloc((size_t)(2 * D * D) * sizeof(float)), *Cl = Cg + D * D;
    void *cg = malloc(ss_tico_cache_size(l.Nt, D));
    void *cl = malloc(ss_dist_tico_cache_size(D));
    ss_tico_state *sg = NULL, *sl = NULL;
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(xg, 4 * gn, &r, 1.0);
    for (int k = 0; k < 4; k++) dg_take(xl + k * ln, xg + k * gn, &l, 1, D);
    float *pre, *d = dg_prefill(&pre, 2 * ln, &r);
    const ss_comm *c = ss_dt_comm;
    ss_tico_opts o = ss_tico_defaults();
    o.update = update, o.beta = 0.6f, o.rho = 3.0f;
    char what[160];
    snprintf(what, sizeof what, "tico variant %d N %lld D %lld update %d",
             variant, (long long)l.N, (long long)D, update);
    float lossg = 0, lossl = 0, dl = 1.1f;
    float *a1 = xg, *b1 = xg + gn, *a2 = xg + 2 * gn, *b2 = xg + 3 * gn;
    if (!dg_ok(what, ss_tico_state_create(&sg, D)) ||
        !dg_ok(what, ss_tico_state_create(&sl, D)))
        goto done;
    if (!dg_ok(what, ss_tico_forward(&lossg, NULL, cg, sg, a1, b1, l.Nt, D, &o)) ||
        !dg_ok(what, ss_dist_tico_forward(&lossl, NULL, cl, sl, xl, xl + ln,
                                          l.N, D, &o, c)))
        goto done;
    dg_scalar(what, lossl, lossg);
    if (!dg_ok(what, ss_tico_forward(&lossg, lg, cg, sg, a2, b2, l.Nt, D, &o)) ||
        !dg_ok(what, ss_tico_backward(dg, dg + gn, dl, cg, a2, b2, l.Nt, D, &o)) ||
        !dg_ok(what, ss_dist_tico_forward(&lossl, ll, cl, sl, xl + 2 * ln,
                                          xl + 3 * ln, l.N, D, &o, c)) ||
        !dg_ok(what, ss_dist_tico_backward(d, d + ln, dl, cl, xl + 2 * ln,
                                           xl + 3 * ln, l.N, D, &o, c)))
        goto done;
    dg_scalar(what, lossl, lossg);
    dg_rows(what, ll, lg, &l, 1);
    dg_grad(what, d, pre, dg, &l, 1, D);
    dg_grad(what, d + ln, pre + ln, dg + gn, &l, 1, D);
    ss_tico_state_read(sg, Cg), ss_tico_state_read(sl, Cl);
    double *ref = malloc((size_t)(D * D) * sizeof(double));
    for (int64_t i = 0; i < D * D; i++) ref[i] = Cg[i];
    ss_dt_close(what, Cl, ref, D * D);
    free(ref);
    if (ss_tico_state_steps(sl) != ss_tico_state_steps(sg))
        ss_dt_fail(what, "state steps differ");
done:
    ss_tico_state_free(sg), ss_tico_state_free(sl);
    free(xg), free(dg), free(xl), free(lg), free(ll), free(Cg), free(cg);
    free(cl), free(d), free(pre);
}

static void tico_errors(void) {
    const ss_comm *c = ss_dt_comm;
    int W = c->size, R = c->rank, bad = W - 1;
    enum { N = 3, D = 4 };
    float za[N * D], zb[N * D], dz[N * D] = {0}, loss, C[D * D];
    _Alignas(64) char cache[1024];
    ss_rng r;
    ss_rng_seed(&r, 17 + (uint64_t)R);
    ss_dt_fill(za, N * D, &r, 1.0), ss_dt_fill(zb, N * D, &r, 1.0);
    ss_tico_state *s = NULL;
    if (!dg_ok("tico state", ss_tico_state_create(&s, D))) return;
    ss_tico_opts o = ss_tico_defaults();
    if (W > 1) {
        for (int i = 0; i < D * D; i++) C[i] = R == bad ? 0.01f : 0.0f;
        ss_tico_state_write(s, C);
        ss_dt_expect("tico state differs on one rank",
                  ss_dist_tico_forward(&loss, NULL, cache, s, za, zb, N, D, &o,
                                       c), SS_ERR_PARAM);
        for (int i = 0; i < D * D; i++) C[i] = 0.0f;
        ss_tico_state_write(s, C);
        if (ss_tico_state_steps(s) != 0) ss_dt_fail("tico failed forward", "state updated");
    }
    if (R == bad) zb[2] = INFINITY;
    ss_dt_expect("tico Inf on one rank",
              ss_dist_tico_forward(&loss, NULL, cache, s, za, zb, N, D, &o, c),
              SS_ERR_NONFINITE);
    zb[2] = 0.5f;
    if (dg_ok("tico forward",
              ss_dist_tico_forward(&loss, NULL, cache, s, za, zb, N, D, &o, c))) {
        if (R == bad) memset(cache, 0, 8);
        ss_dt_expect("tico bad cache on one rank",
                  ss_dist_tico_backward(dz, NULL, 1.0f, cache, za, zb, N, D, &o,
                                        c), SS_ERR_STATE);
        float zero[N * D] = {0};
        dg_unchanged("tico failed backward", dz, zero, N * D);
    }
    ss_tico_state_free(s);
}

/* ---- W-MSE ---------------------------------------------------------------------- */

/* ng sub-batches when they divide the global batch with w_size >= 2 D,
 * else one; perm: random permutations (the same on every rank) or NULL. */
static void wmse_case(int variant, int64_t V, int64_t base, int64_t D,
                      int64_t ng, int64_t iters, int use_perm, float eps,
                      uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    if (ng < 1 || l.Nt % ng || l.Nt / ng < 2 * D) ng = 1;
    if (l.Nt < 2 * D) return;
    ss_wmse_opts o = ss_wmse_defaults();
    o.w_size = l.Nt / ng, o.w_iter = iters, o.eps = eps;
    int64_t gn = V * l.Nt * D, ln = V * l.N * D;
    float *zg = malloc((size_t)gn * sizeof(float));
    float *dzg = calloc((size_t)gn, sizeof(float));
    float *zl = malloc((size_t)ln * sizeof(float));
    int64_t *perm = use_perm ? malloc((size_t)(iters * l.Nt) * sizeof(int64_t)) : NULL;
    void *cg = malloc(ss_wmse_cache_size(V, l.Nt, D));
    void *cl = malloc(ss_dist_wmse_cache_size(V, l.N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, gn, &r, 1.0);
    for (int64_t i = 0; i < gn; i++) zg[i] += (float)(0.3 * (i % D)); /* non-zero means */
    if (perm) ss_wmse_permutation(perm, iters, l.Nt, &r);
    dg_take(zl, zg, &l, V, D);
    float *pre, *d = dg_prefill(&pre, ln, &r);
    float lossg = 0, lossl = 0, dl = 0.9f;
    const ss_comm *c = ss_dt_comm;
    char what[200];
    snprintf(what, sizeof what, "wmse variant %d V %lld N %lld D %lld w %lld "
             "iter %lld perm %d", variant, (long long)V, (long long)l.N,
             (long long)D, (long long)o.w_size, (long long)iters, use_perm);
    if (dg_ok(what, ss_wmse_forward(&lossg, cg, zg, perm, V, l.Nt, D, &o)) &&
        dg_ok(what, ss_wmse_backward(dzg, dl, cg, zg, perm, V, l.Nt, D, &o)) &&
        dg_ok(what, ss_dist_wmse_forward(&lossl, cl, zl, perm, V, l.N, D, &o, c)) &&
        dg_ok(what, ss_dist_wmse_backward(d, dl, cl, zl, perm, V, l.N, D, &o, c))) {
        dg_scalar(what, lossl, lossg);
        dg_grad(what, d, pre, dzg, &l, V, D);
    }
    free(zg), free(dzg), free(zl), free(perm), free(cg), free(cl), free(d);
    free(pre);
}

static void wmse_errors(void) {
    const ss_comm *c = ss_dt_comm;
    int W = c->size, R = c->rank, bad = W - 1;
    enum { V = 2, N = 4, D = 2 };
    int64_t Nt = (int64_t)N * W;
    float z[V * N * D], dz[V * N * D] = {0}, zero[V * N * D] = {0}, loss;
    _Alignas(64) char cache[256];
    ss_rng r;
    ss_rng_seed(&r, 23 + (uint64_t)R);
    ss_dt_fill(z, V * N * D, &r, 1.0);
    ss_wmse_opts o = ss_wmse_defaults();
    o.w_size = Nt;
    int64_t *perm = malloc((size_t)Nt * sizeof(int64_t));
    for (int64_t i = 0; i < Nt; i++) perm[i] = Nt - 1 - i;
    if (W > 1) {
        if (R == bad) perm[0] = 0, perm[Nt - 1] = Nt - 1; /* still valid */
        ss_dt_expect("wmse perm differs on one rank",
                  ss_dist_wmse_forward(&loss, cache, z, perm, V, N, D, &o, c),
                  SS_ERR_PARAM);
        perm[0] = Nt - 1, perm[Nt - 1] = 0;
        ss_wmse_opts o2 = o;
        if (R == bad) o2.w_iter = 2;
        ss_dt_expect("wmse w_iter differs on one rank",
                  ss_dist_wmse_forward(&loss, cache, z, perm, V, N, D, &o2, c),
                  SS_ERR_PARAM);
    }
    if (R == bad) perm[1] = perm[2];
    ss_dt_expect("wmse perm not a permutation on one rank",
              ss_dist_wmse_forward(&loss, cache, z, perm, V, N, D, &o, c),
              SS_ERR_PARAM);
    for (int64_t i = 0; i < Nt; i++) perm[i] = Nt - 1 - i;
    o.w_size = Nt + 2; /* Ntot not a multiple of w_size */
    ss_dt_expect("wmse Ntot % w_size",
              ss_dist_wmse_forward(&loss, cache, z, perm, V, N, D, &o, c),
              SS_ERR_SIZE);
    o.w_size = Nt;
    float zc[V * N * D]; /* a rank-deficient covariance: dimension 1 = 0 */
    for (int i = 0; i < V * N * D; i++) zc[i] = i % D ? 1.0f : z[i];
    ss_dt_expect("wmse singular covariance",
              ss_dist_wmse_forward(&loss, cache, zc, perm, V, N, D, &o, c),
              SS_ERR_PARAM);
    if (dg_ok("wmse forward",
              ss_dist_wmse_forward(&loss, cache, z, perm, V, N, D, &o, c))) {
        if (R == bad) memset(cache, 0, 8);
        ss_dt_expect("wmse bad cache on one rank",
                  ss_dist_wmse_backward(dz, 1.0f, cache, z, perm, V, N, D, &o, c),
                  SS_ERR_STATE);
        dg_unchanged("wmse failed backward", dz, zero, V * N * D);
    }
    free(perm);
}

/* ---- hypersphere and KoLeo ---------------------------------------------------------- */

/* only_a: dzb = NULL (a stop-gradient second view). */
static void hypersphere_case(int variant, int64_t base, int64_t D, float t,
                             float alpha, int only_a, uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    if (l.Nt < 2) return;
    int64_t gn = l.Nt * D, ln = l.N * D;
    float *xg = malloc((size_t)(2 * gn) * sizeof(float));
    float *dg = calloc((size_t)(2 * gn), sizeof(float));
    float *xl = malloc((size_t)(2 * ln) * sizeof(float));
    void *cg = malloc(ss_hypersphere_cache_size(l.Nt, D));
    void *cl = malloc(ss_dist_hypersphere_cache_size(l.N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(xg, 2 * gn, &r, 1.0);
    for (int k = 0; k < 2; k++) dg_take(xl + k * ln, xg + k * gn, &l, 1, D);
    float *pre, *d = dg_prefill(&pre, 2 * ln, &r);
    ss_hypersphere_opts o = ss_hypersphere_defaults();
    o.t = t, o.alpha = alpha, o.lambda = 0.7f;
    const ss_comm *c = ss_dt_comm;
    float lossg = 0, lossl = 0, dl = 1.2f;
    char what[160];
    snprintf(what, sizeof what, "hypersphere variant %d N %lld D %lld t %g "
             "alpha %g only_a %d", variant, (long long)l.N, (long long)D,
             (double)t, (double)alpha, only_a);
    if (dg_ok(what, ss_hypersphere_forward(&lossg, cg, xg, xg + gn, l.Nt, D, &o)) &&
        dg_ok(what, ss_hypersphere_backward(dg, only_a ? NULL : dg + gn, dl, cg,
                                            xg, xg + gn, l.Nt, D, &o)) &&
        dg_ok(what, ss_dist_hypersphere_forward(&lossl, cl, xl, xl + ln, l.N, D,
                                                &o, c)) &&
        dg_ok(what, ss_dist_hypersphere_backward(d, only_a ? NULL : d + ln, dl,
                                                 cl, xl, xl + ln, l.N, D, &o, c))) {
        dg_scalar(what, lossl, lossg);
        dg_grad(what, d, pre, dg, &l, 1, D);
        dg_grad(what, d + ln, pre + ln, dg + gn, &l, 1, D);
    }
    free(xg), free(dg), free(xl), free(cg), free(cl), free(d), free(pre);
}

/* dup: row 0 of the global batch repeated as the last row, so that the
 * first and last ranks' rows are each other's neighbours (distance eps). */
static void koleo_case(int variant, int64_t base, int64_t D, int dup,
                       uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    if (l.Nt < 2) return;
    int64_t gn = l.Nt * D, ln = l.N * D;
    float *xg = malloc((size_t)gn * sizeof(float));
    float *dg = calloc((size_t)gn, sizeof(float));
    float *xl = malloc((size_t)ln * sizeof(float));
    float *lg = malloc((size_t)l.Nt * sizeof(float));
    float *ll = malloc((size_t)l.N * sizeof(float));
    void *cg = malloc(ss_koleo_cache_size(l.Nt, D));
    void *cl = malloc(ss_dist_koleo_cache_size(l.N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(xg, gn, &r, 1.0);
    if (dup) /* a near-duplicate (not exact: the gradient stays smooth) */
        for (int64_t k = 0; k < D; k++) xg[gn - D + k] = 1.01f * xg[k] + 0.01f;
    dg_take(xl, xg, &l, 1, D);
    float *pre, *d = dg_prefill(&pre, ln, &r);
    const ss_comm *c = ss_dt_comm;
    float lossg = 0, lossl = 0, dl = 0.6f;
    char what[160];
    snprintf(what, sizeof what, "koleo variant %d N %lld D %lld dup %d",
             variant, (long long)l.N, (long long)D, dup);
    if (dg_ok(what, ss_koleo_forward(&lossg, lg, cg, xg, l.Nt, D, NULL)) &&
        dg_ok(what, ss_koleo_backward(dg, dl, cg, xg, l.Nt, D, NULL)) &&
        dg_ok(what, ss_dist_koleo_forward(&lossl, ll, cl, xl, l.N, D, NULL, c)) &&
        dg_ok(what, ss_dist_koleo_backward(d, dl, cl, xl, l.N, D, NULL, c))) {
        dg_scalar(what, lossl, lossg);
        dg_rows(what, ll, lg, &l, 1);
        dg_grad(what, d, pre, dg, &l, 1, D);
    }
    free(xg), free(dg), free(xl), free(lg), free(ll), free(cg), free(cl);
    free(d), free(pre);
}

static void pairwise_errors(void) {
    const ss_comm *c = ss_dt_comm;
    int W = c->size, R = c->rank, bad = W - 1;
    enum { N = 3, D = 4 };
    float za[N * D], zb[N * D], dz[N * D] = {0}, zero[N * D] = {0}, loss;
    _Alignas(64) char cache[256];
    ss_rng r;
    ss_rng_seed(&r, 29 + (uint64_t)R);
    ss_dt_fill(za, N * D, &r, 1.0), ss_dt_fill(zb, N * D, &r, 1.0);
    ss_hypersphere_opts ho = ss_hypersphere_defaults();
    ss_koleo_opts ko = ss_koleo_defaults();
    if (W > 1) {
        ss_hypersphere_opts h2 = ho;
        if (R == bad) h2.t = 2.0f;
        ss_dt_expect("hypersphere t differs",
                  ss_dist_hypersphere_forward(&loss, cache, za, zb, N, D, &h2, c),
                  SS_ERR_PARAM);
        ss_dt_expect("koleo D differs",
                  ss_dist_koleo_forward(&loss, NULL, cache, za, N,
                                        R == bad ? 3 : D, &ko, c), SS_ERR_PARAM);
    }
    if (R == bad) za[1] = NAN;
    ss_dt_expect("koleo NaN on one rank",
              ss_dist_koleo_forward(&loss, NULL, cache, za, N, D, &ko, c),
              SS_ERR_NONFINITE);
    ss_dt_expect("hypersphere NaN on one rank",
              ss_dist_hypersphere_forward(&loss, cache, za, zb, N, D, &ho, c),
              SS_ERR_NONFINITE);
    za[1] = 0.5f;
    if (dg_ok("koleo forward",
              ss_dist_koleo_forward(&loss, NULL, cache, za, N, D, &ko, c))) {
        int64_t far = 1000000; /* corrupt the second row's neighbour */
        if (R == bad) memcpy(cache + 64 + sizeof far, &far, sizeof far);
        ss_dt_expect("koleo corrupt cache on one rank",
                  ss_dist_koleo_backward(dz, 1.0f, cache, za, N, D, &ko, c),
                  SS_ERR_STATE);
        dg_unchanged("koleo failed backward", dz, zero, N * D);
    }
    if (dg_ok("hypersphere forward",
              ss_dist_hypersphere_forward(&loss, cache, za, zb, N, D, &ho, c)) &&
        W > 1)
        ss_dt_expect("hypersphere dloss differs",
                  ss_dist_hypersphere_backward(dz, NULL, R == bad ? 1.5f : 1.0f,
                                               cache, za, zb, N, D, &ho, c),
                  SS_ERR_PARAM);
    dg_unchanged("hypersphere failed backward", dz, zero, N * D);
}

/* ---- MMCR and EMP-SSL ------------------------------------------------------------ */

/* mom: a momentum branch (its gradient too); rankdef: dimension D-1 is 0
 * and dimension 1 copies dimension 0 (rank-deficient centroids). */
static void mmcr_case(int variant, int64_t base, int64_t K, int64_t D,
                      int mom, int rankdef, uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    int64_t gn = l.Nt * K * D, ln = l.N * K * D;
    float *xg = malloc((size_t)(2 * gn) * sizeof(float));
    float *dg = calloc((size_t)(2 * gn), sizeof(float));
    float *xl = malloc((size_t)(2 * ln) * sizeof(float));
    void *cg = malloc(ss_mmcr_cache_size(l.Nt, K, D));
    void *cl = malloc(ss_dist_mmcr_cache_size(l.N, K, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(xg, 2 * gn, &r, 1.0);
    if (rankdef)
        for (int64_t i = 0; i < 2 * gn; i += D) xg[i + D - 1] = 0.0f, xg[i + 1] = xg[i];
    for (int k = 0; k < 2; k++) dg_take(xl + k * ln, xg + k * gn, &l, 1, K * D);
    float *pre, *d = dg_prefill(&pre, 2 * ln, &r);
    ss_mmcr_opts o = ss_mmcr_defaults();
    o.lambda = 0.3f;
    const ss_comm *c = ss_dt_comm;
    const float *mg = mom ? xg + gn : NULL, *ml = mom ? xl + ln : NULL;
    float lossg = 0, lossl = 0, dl = 1.4f;
    char what[160];
    snprintf(what, sizeof what, "mmcr variant %d B %lld Btot %lld K %lld D %lld "
             "mom %d rankdef %d", variant, (long long)l.N, (long long)l.Nt,
             (long long)K, (long long)D, mom, rankdef);
    if (dg_ok(what, ss_mmcr_forward(&lossg, cg, xg, mg, l.Nt, K, D, &o)) &&
        dg_ok(what, ss_mmcr_backward(dg, mom ? dg + gn : NULL, dl, cg, xg, mg,
                                     l.Nt, K, D, &o)) &&
        dg_ok(what, ss_dist_mmcr_forward(&lossl, cl, xl, ml, l.N, K, D, &o, c)) &&
        dg_ok(what, ss_dist_mmcr_backward(d, mom ? d + ln : NULL, dl, cl, xl, ml,
                                          l.N, K, D, &o, c))) {
        dg_scalar(what, lossl, lossg);
        dg_grad(what, d, pre, dg, &l, 1, K * D);
        dg_grad(what, d + ln, pre + ln, dg + gn, &l, 1, K * D);
    }
    free(xg), free(dg), free(xl), free(cg), free(cl), free(d), free(pre);
}

static void empssl_case(int variant, int64_t V, int64_t base, int64_t D,
                        float inv_coef, uint64_t seed) {
    dg_layout l = dg_lay(variant, base);
    int64_t gn = V * l.Nt * D, ln = V * l.N * D;
    float *zg = malloc((size_t)gn * sizeof(float));
    float *dzg = calloc((size_t)gn, sizeof(float));
    float *zl = malloc((size_t)ln * sizeof(float));
    float *rg = malloc((size_t)V * sizeof(float)), *rl = malloc((size_t)V * sizeof(float));
    void *cg = malloc(ss_empssl_cache_size(V, l.Nt, D));
    void *cl = malloc(ss_dist_empssl_cache_size(V, l.N, D));
    ss_rng r;
    ss_rng_seed(&r, seed);
    ss_dt_fill(zg, gn, &r, 1.0);
    dg_take(zl, zg, &l, V, D);
    float *pre, *d = dg_prefill(&pre, ln, &r);
    ss_empssl_opts o = ss_empssl_defaults();
    o.inv_coef = inv_coef;
    const ss_comm *c = ss_dt_comm;
    float lossg = 0, lossl = 0, dl = 0.5f;
    char what[160];
    snprintf(what, sizeof what, "empssl variant %d V %lld N %lld Ntot %lld D %lld",
             variant, (long long)V, (long long)l.N, (long long)l.Nt, (long long)D);
    if (dg_ok(what, ss_empssl_forward(&lossg, rg, cg, zg, V, l.Nt, D, &o)) &&
        dg_ok(what, ss_empssl_backward(dzg, dl, cg, zg, V, l.Nt, D, &o)) &&
        dg_ok(what, ss_dist_empssl_forward(&lossl, rl, cl, zl, V, l.N, D, &o, c)) &&
        dg_ok(what, ss_dist_empssl_backward(d, dl, cl, zl, V, l.N, D, &o, c))) {
        dg_scalar(what, lossl, lossg);
        for (int64_t v = 0; v < V; v++) dg_scalar(what, rl[v], rg[v]);
        dg_grad(what, d, pre, dzg, &l, V, D);
    }
    free(zg), free(dzg), free(zl), free(rg), free(rl), free(cg), free(cl);
    free(d), free(pre);
}

static void coding_rate_errors(void) {
    const ss_comm *c = ss_dt_comm;
    int W = c->size, R = c->rank, bad = W - 1;
    enum { B = 3, K = 2, D = 4 };
    float on[B * K * D], mo[B * K * D], d[B * K * D] = {0}, zero[B * K * D] = {0};
    float loss, rates[2];
    _Alignas(64) char cache[2048];
    ss_rng r;
    ss_rng_seed(&r, 31 + (uint64_t)R);
    ss_dt_fill(on, B * K * D, &r, 1.0), ss_dt_fill(mo, B * K * D, &r, 1.0);
    ss_mmcr_opts mo_ = ss_mmcr_defaults();
    ss_empssl_opts eo = ss_empssl_defaults();
    if (W > 1) {
        ss_dt_expect("mmcr momentum on one rank only",
                  ss_dist_mmcr_forward(&loss, cache, on, R == bad ? mo : NULL, B,
                                       K, D, &mo_, c), SS_ERR_PARAM);
        ss_empssl_opts e2 = eo;
        if (R == bad) e2.tcr_eps = 0.5f;
        ss_dt_expect("empssl tcr_eps differs",
                  ss_dist_empssl_forward(&loss, rates, cache, on, K, B, D, &e2, c),
                  SS_ERR_PARAM);
    }
    ss_mmcr_opts m2 = mo_;
    if (R == bad) m2.lambda = -1.0f;
    ss_dt_expect("mmcr bad lambda on one rank",
              ss_dist_mmcr_forward(&loss, cache, on, mo, B, K, D, &m2, c),
              SS_ERR_PARAM);
    if (R == bad) on[3] = INFINITY;
    ss_dt_expect("empssl Inf on one rank",
              ss_dist_empssl_forward(&loss, rates, cache, on, K, B, D, &eo, c),
              SS_ERR_NONFINITE);
    on[3] = 0.5f;
    if (dg_ok("mmcr forward",
              ss_dist_mmcr_forward(&loss, cache, on, mo, B, K, D, &mo_, c))) {
        if (R == bad) memset(cache, 0, 8);
        ss_dt_expect("mmcr bad cache on one rank",
                  ss_dist_mmcr_backward(d, NULL, 1.0f, cache, on, mo, B, K, D,
                                        &mo_, c), SS_ERR_STATE);
        dg_unchanged("mmcr failed backward", d, zero, B * K * D);
    }
    if (dg_ok("empssl forward",
              ss_dist_empssl_forward(&loss, rates, cache, on, K, B, D, &eo, c)) &&
        W > 1) {
        ss_dt_expect("empssl dloss differs",
                  ss_dist_empssl_backward(d, R == bad ? 3.0f : 1.0f, cache, on, K,
                                          B, D, &eo, c), SS_ERR_PARAM);
        dg_unchanged("empssl failed backward", d, zero, B * K * D);
    }
}

SS_DIST_GROUP(geometry) {
    for (int variant = 0; variant < 3; variant++) {
        negcos_case(variant, 5, 7, 0, 0, 101 + variant);
        negcos_case(variant, 4, 3, 0, 1, 111 + variant);
        negcos_case(variant, 6, 5, 1, 0, 121 + variant);
        negcos_case(variant, 3, 8, 1, 1, 131 + variant);
        tico_case(variant, 5, 6, 1, 141 + variant);
        tico_case(variant, 4, 9, 0, 151 + variant);
    }
    for (int variant = 0; variant < 3; variant++) {
        wmse_case(variant, 2, 6, 3, 2, 1, 0, 0.0f, 161 + variant);
        wmse_case(variant, 3, 8, 2, 2, 2, 1, 0.1f, 171 + variant);
        wmse_case(variant, 2, 12, 4, 3, 2, 1, 0.0f, 181 + variant);
    }
    for (int variant = 0; variant < 3; variant++) {
        hypersphere_case(variant, 5, 6, 1.0f, 2.0f, 0, 191 + variant);
        hypersphere_case(variant, 4, 3, 3.0f, 1.5f, 1, 201 + variant);
        koleo_case(variant, 5, 6, 0, 211 + variant);
        koleo_case(variant, 4, 3, 1, 221 + variant);
    }
    hypersphere_case(1, 70, 5, 2.0f, 2.0f, 0, 231); /* > 1 tile (128) */
    koleo_case(1, 70, 5, 1, 241);
    for (int variant = 0; variant < 3; variant++) {
        mmcr_case(variant, 6, 2, 4, 0, 0, 251 + variant);  /* Gram route */
        mmcr_case(variant, 5, 3, 3, 1, 0, 261 + variant);
        mmcr_case(variant, 2, 2, 16, 1, 0, 271 + variant); /* gathered */
        mmcr_case(variant, 8, 2, 4, 0, 1, 281 + variant);  /* rank 2 */
        empssl_case(variant, 2, 5, 4, 200.0f, 291 + variant);
        empssl_case(variant, 3, 3, 12, 0.5f, 301 + variant); /* N < D */
        empssl_case(variant, 1, 4, 3, 0.0f, 311 + variant);
    }
    negcos_errors();
    wmse_errors();
    pairwise_errors();
    coding_rate_errors();
    tico_errors();
}
