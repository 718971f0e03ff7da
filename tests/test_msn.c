/* test_msn.c - MSN and PMSN: PyTorch fixtures (lightly MSNLoss, PMSNLoss
 * with the lightly#1340 fix), finite differences on the direct double path
 * for anchors and prototypes, awkward sizes (tile edges), accumulation,
 * threads, frozen prototypes, bad inputs. */
#include "direct_distill.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
#define TILE 64 /* MSN_TILE in src/msn.c */

static float run_msn(float *losses, float *da, float *dp, float dloss,
                     const float *a, const float *t, const float *p,
                     int64_t V, int64_t N, int64_t K, int64_t D,
                     const ss_msn_opts *o) {
    float loss = NAN;
    void *cache = malloc(ss_msn_cache_size(V, N, K, D));
    SS_CHECK_OK(ss_msn_forward(&loss, losses, cache, a, t, p, V, N, K, D, o));
    SS_CHECK_OK(ss_msn_backward(da, dp, dloss, cache, a, t, p, V, N, K, D, o));
    free(cache);
    return loss;
}

static ss_direct_msn_opts direct_of(const ss_msn_opts *o) {
    ss_direct_msn_opts d = {o->temperature, o->sharpen_temperature,
                            o->regularization_weight, o->power_law_exponent,
                            o->sinkhorn_iterations,
                            o->prior == SS_MSN_PRIOR_POWER_LAW};
    return d;
}

SS_TEST(defaults) {
    ss_msn_opts o = ss_msn_defaults();
    SS_CHECK(o.temperature == 0.1f && o.sharpen_temperature == 0.25f);
    SS_CHECK(o.sinkhorn_iterations == 3 && o.regularization_weight == 1.0f);
    SS_CHECK(o.prior == SS_MSN_PRIOR_UNIFORM && o.power_law_exponent == 0.25f);
    o = ss_pmsn_defaults();
    SS_CHECK(o.prior == SS_MSN_PRIOR_POWER_LAW && o.temperature == 0.1f);
    SS_CHECK(ss_msn_cache_size(2, 3, 4, 5) > 0);
    SS_CHECK(ss_msn_cache_size(2, 3, 0, 5) == 0);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("msn.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 6);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
        int64_t V = fx_int(fx, KEY("V")), N = fx_int(fx, KEY("N"));
        int64_t K = fx_int(fx, KEY("K")), D = fx_int(fx, KEY("D")), n;
        ss_msn_opts o = ss_msn_defaults();
        o.temperature = (float)fx_scalar(fx, KEY("temperature"));
        o.sharpen_temperature = (float)fx_scalar(fx, KEY("sharpen"));
        o.sinkhorn_iterations = fx_int(fx, KEY("iterations"));
        o.regularization_weight = (float)fx_scalar(fx, KEY("weight"));
        o.prior = fx_int(fx, KEY("prior")) ? SS_MSN_PRIOR_POWER_LAW : SS_MSN_PRIOR_UNIFORM;
        o.power_law_exponent = (float)fx_scalar(fx, KEY("exponent"));
        float *a = fx_f32_copy(fx, KEY("anchors"), &n);
        float *t = fx_f32_copy(fx, KEY("targets"), &n);
        float *p = fx_f32_copy(fx, KEY("prototypes"), &n);
        const double *wl = fx_f64(fx, KEY("losses"), &n);
        const double *wda = fx_f64(fx, KEY("danchors"), &n);
        const double *wdp = fx_f64(fx, KEY("dprototypes"), &n);
        SS_CHECK(a && t && p && wl && wda && wdp);
        if (!a || !t || !p || !wl || !wda || !wdp) continue;
        float *losses = ss_test_alloc(V * N), *da = ss_test_alloc(V * N * D);
        float *dp = ss_test_alloc(K * D);
        float loss = run_msn(losses, da, dp, 1.0f, a, t, p, V, N, K, D, &o);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        double e1 = ss_dd_err(losses, wl, V * N), e2 = ss_dd_err(da, wda, V * N * D);
        double e3 = ss_dd_err(dp, wdp, K * D);
        if (!(e1 <= 1e-4 && e2 <= 1e-4 && e3 <= 1e-4))
            fprintf(stderr, "msn case %lld: %.3g %.3g %.3g\n", (long long)c, e1, e2, e3);
        SS_CHECK(e1 <= 1e-4 && e2 <= 1e-4 && e3 <= 1e-4);
        ss_direct_msn_opts d = direct_of(&o);
        d.temperature = fx_scalar(fx, KEY("temperature"));
        d.sharpen = fx_scalar(fx, KEY("sharpen"));
        d.weight = fx_scalar(fx, KEY("weight"));
        d.exponent = fx_scalar(fx, KEY("exponent"));
        double *dda = ss_test_alloc_d(V * N * D), *ddp = ss_test_alloc_d(K * D);
        double l64 = ss_direct_msn(fx_f64(fx, KEY("anchors"), &n),
                                   fx_f64(fx, KEY("targets"), &n),
                                   fx_f64(fx, KEY("prototypes"), &n), V, N, K,
                                   D, &d, dda, ddp);
        SS_CHECK_NEAR(l64, want, 1e-9);
        SS_CHECK(ss_test_rel_err_dd(dda, wda, V * N * D) <= 1e-9);
        SS_CHECK(ss_test_rel_err_dd(ddp, wdp, K * D) <= 1e-9);
        free(a), free(t), free(p), free(losses), free(da), free(dp), free(dda), free(ddp);
    }
    fx_free(fx);
}

/* ---- finite differences on the direct double path --------------------------- */

typedef struct {
    const double *anchors, *targets, *protos; /* the one not probed is fixed */
    int64_t V, N, K, D;
    ss_direct_msn_opts o;
} fd_ctx;

static double fd_anchors(const double *x, void *p) {
    fd_ctx *c = p;
    return ss_direct_msn(x, c->targets, c->protos, c->V, c->N, c->K, c->D,
                         &c->o, NULL, NULL);
}

static double fd_protos(const double *x, void *p) {
    fd_ctx *c = p;
    return ss_direct_msn(c->anchors, c->targets, x, c->V, c->N, c->K, c->D,
                         &c->o, NULL, NULL);
}

/* Anchors: the codes do not depend on them. Prototypes: the codes do (they
 * are stop-gradient), so those probes use zero targets, whose normalised
 * rows and logits are 0 whatever the prototypes: the codes stay uniform. */
SS_TEST(direct_finite_differences) {
    struct { int64_t V, N, K, D, iters; double w; int pl; } cases[] = {
        {2, 3, 4, 5, 3, 1.0, 0}, {1, 4, 3, 3, 0, 1.0, 1}, {3, 2, 5, 4, 3, 0.5, 1}};
    for (int i = 0; i < 3; i++) {
        ss_rng rng;
        ss_rng_seed(&rng, 70 + i);
        int64_t V = cases[i].V, N = cases[i].N, K = cases[i].K, D = cases[i].D;
        int64_t na = V * N * D, np = K * D;
        double *a = ss_test_alloc_d(na), *p = ss_test_alloc_d(np);
        double *tg = ss_test_alloc_d(N * D), *zero = ss_test_alloc_d(N * D);
        double *ga = ss_test_alloc_d(na), *gp = ss_test_alloc_d(np);
        ss_test_fill_normal_d(a, na, &rng);
        ss_test_fill_normal_d(p, np, &rng);
        ss_test_fill_normal_d(tg, N * D, &rng);
        fd_ctx c = {a, tg, p, V, N, K, D,
                    {0.5, 0.5, cases[i].w, 0.5, cases[i].iters, cases[i].pl}};
        ss_direct_msn(a, tg, p, V, N, K, D, &c.o, ga, NULL);
        double e = ss_test_fd_max_err(fd_anchors, &c, a, ga, na, 1e-5, 5 + i);
        if (!(e < 1e-6)) fprintf(stderr, "msn fd anchors case %d: %.3g\n", i, e);
        SS_CHECK(e < 1e-6);
        c.targets = zero;
        ss_direct_msn(a, zero, p, V, N, K, D, &c.o, NULL, gp);
        e = ss_test_fd_max_err(fd_protos, &c, p, gp, np, 1e-5, 15 + i);
        if (!(e < 1e-6)) fprintf(stderr, "msn fd prototypes case %d: %.3g\n", i, e);
        SS_CHECK(e < 1e-6);
        free(a), free(p), free(tg), free(zero), free(ga), free(gp);
    }
}

/* ---- library vs direct -------------------------------------------------------- */

static void vs_direct(int64_t V, int64_t N, int64_t K, int64_t D,
                      const ss_msn_opts *o, int frozen, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t na = V * N * D, np = K * D;
    float *a = ss_test_alloc(na), *t = ss_test_alloc(N * D), *p = ss_test_alloc(np);
    float *da = ss_test_alloc(na), *dp = ss_test_alloc(np);
    float *pre = ss_test_alloc(na + np);
    ss_test_fill_normal(a, na, &rng);
    ss_test_fill_normal(t, N * D, &rng);
    ss_test_fill_normal(p, np, &rng);
    ss_test_fill_normal(pre, na + np, &rng);
    memcpy(da, pre, sizeof(float) * (size_t)na);
    memcpy(dp, pre + na, sizeof(float) * (size_t)np);
    float dloss = 1.25f;
    float loss = run_msn(NULL, da, frozen ? NULL : dp, dloss, a, t, p, V, N, K, D, o);
    double *ad = ss_dd_from_f(a, na), *td = ss_dd_from_f(t, N * D);
    double *pd = ss_dd_from_f(p, np), *ga = ss_test_alloc_d(na), *gp = ss_test_alloc_d(np);
    ss_direct_msn_opts d = direct_of(o);
    double want = ss_direct_msn(ad, td, pd, V, N, K, D, &d, ga, gp);
    for (int64_t i = 0; i < na; i++) ga[i] = ga[i] * dloss + pre[i];
    for (int64_t i = 0; i < np; i++) gp[i] = frozen ? pre[na + i] : gp[i] * dloss + pre[na + i];
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-5);
    double e1 = ss_dd_err(da, ga, na), e2 = ss_dd_err(dp, gp, np);
    if (!(e1 <= 1e-5 && e2 <= 1e-5))
        fprintf(stderr, "msn V=%lld N=%lld K=%lld D=%lld: %.3g %.3g\n", (long long)V,
                (long long)N, (long long)K, (long long)D, e1, e2);
    SS_CHECK(e1 <= 1e-5 && e2 <= 1e-5);
    free(a), free(t), free(p), free(da), free(dp), free(pre);
    free(ad), free(td), free(pd), free(ga), free(gp);
}

SS_TEST(vs_direct_awkward_sizes_and_accumulation) {
    ss_msn_opts m = ss_msn_defaults(), pm = ss_pmsn_defaults();
    vs_direct(1, 1, 1, 1, &m, 0, 1);
    vs_direct(2, 1, 3, 1, &pm, 0, 2);
    vs_direct(1, TILE - 1, 7, 3, &m, 0, 3);
    vs_direct(1, TILE, 5, 9, &pm, 0, 4);
    vs_direct(1, TILE + 1, 9, 4, &m, 0, 5);
    vs_direct(3, 11, 16, 1000, &pm, 0, 6);
    vs_direct(2, 5, 100, 8, &m, 1, 7); /* frozen prototypes */
    m.sinkhorn_iterations = 0, m.regularization_weight = 0;
    vs_direct(2, 7, 6, 5, &m, 0, 8);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 41);
    int64_t V = 3, N = 70, K = 50, D = 24;
    float *a = ss_test_alloc(V * N * D), *t = ss_test_alloc(N * D), *p = ss_test_alloc(K * D);
    float *da1 = ss_test_alloc(V * N * D), *da2 = ss_test_alloc(V * N * D);
    float *dp1 = ss_test_alloc(K * D), *dp2 = ss_test_alloc(K * D);
    ss_test_fill_normal(a, V * N * D, &rng);
    ss_test_fill_normal(t, N * D, &rng);
    ss_test_fill_normal(p, K * D, &rng);
    ss_msn_opts o = ss_pmsn_defaults();
    SS_CHECK_OK(ss_set_num_threads(1));
    float l1 = run_msn(NULL, da1, dp1, 1.0f, a, t, p, V, N, K, D, &o);
    SS_CHECK_OK(ss_set_num_threads(2));
    float l2 = run_msn(NULL, da2, dp2, 1.0f, a, t, p, V, N, K, D, &o);
    SS_CHECK_OK(ss_set_num_threads(0));
    /* pbar and dprototypes are summed per thread: only summation order */
    SS_CHECK_NEAR(l1, l2, 1e-6);
    SS_CHECK_CLOSE_FF(da1, da2, V * N * D, 1e-5, "danchors 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(dp1, dp2, K * D, 1e-5, "dprototypes 1 vs 2 threads");
    free(a), free(t), free(p), free(da1), free(da2), free(dp1), free(dp2);
}

SS_TEST(bad_inputs) {
    int64_t V = 2, N = 2, K = 3, D = 2;
    float a[8] = {1, 0, 0, 1, 1, 1, -1, 0}, t[4] = {1, 0, 0, 1};
    float p[6] = {1, 0, 0, 1, 1, 1}, da[8] = {0}, dp[6] = {0}, loss = 0;
    double cache[64];
    ss_msn_opts o = ss_msn_defaults();
    SS_CHECK(ss_msn_cache_size(V, N, K, D) <= sizeof cache);
    SS_CHECK_STATUS(ss_msn_forward(NULL, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, NULL, a, t, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, NULL, t, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("anchors");
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, NULL, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, NULL, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("prototypes");
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, 0, N, K, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, 0, K, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, 0, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, 0, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, (int64_t)1 << 30, K, (int64_t)1 << 20, &o), SS_ERR_SIZE);
    o.temperature = 0;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("temperature");
    o = ss_msn_defaults(), o.sharpen_temperature = NAN;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("sharpen_temperature");
    o = ss_msn_defaults(), o.sinkhorn_iterations = -3;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    o = ss_msn_defaults(), o.regularization_weight = -1;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("regularization_weight must be finite and >= 0, got -1");
    o = ss_msn_defaults(), o.prior = (ss_msn_prior)7;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("got 7");
    o = ss_pmsn_defaults(), o.power_law_exponent = -0.5f;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_PARAM);
    o = ss_msn_defaults();
    a[6] = NAN;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("anchors[6]");
    a[6] = -1, t[3] = INFINITY;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("targets[3]");
    t[3] = 1, p[5] = NAN;
    SS_CHECK_STATUS(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("prototypes[5]");
    p[5] = 1;
    SS_CHECK(loss == 0);
    SS_CHECK_OK(ss_msn_forward(&loss, NULL, cache, a, t, p, V, N, K, D, &o));
    SS_CHECK_STATUS(ss_msn_backward(NULL, dp, 1, cache, a, t, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_msn_backward(da, dp, 1, NULL, a, t, p, V, N, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_msn_backward(da, dp, INFINITY, cache, a, t, p, V, N, K, D, &o), SS_ERR_NONFINITE);
    for (int i = 0; i < 8; i++) SS_CHECK(da[i] == 0);
    for (int i = 0; i < 6; i++) SS_CHECK(dp[i] == 0);
}
