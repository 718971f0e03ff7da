/* test_hypersphere.c - alignment and uniformity: lightly fixtures (and the
 * stable form where lightly underflows), finite differences on the direct
 * reference, tiled vs direct at awkward sizes, large t, accumulation,
 * threads, errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <string.h>

static ss_hypersphere_opts opts_of(float t, float lam, float alpha) {
    ss_hypersphere_opts o = {t, lam, alpha};
    return o;
}

static void run_hs(float *loss, float *dza, float *dzb, float dloss,
                   const float *za, const float *zb, int64_t N, int64_t D,
                   const ss_hypersphere_opts *o) {
    void *cache = malloc(ss_hypersphere_cache_size(N, D));
    SS_CHECK_OK(ss_hypersphere_forward(loss, cache, za, zb, N, D, o));
    SS_CHECK_OK(ss_hypersphere_backward(dza, dzb, dloss, cache, za, zb, N, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_hypersphere_opts o = ss_hypersphere_defaults();
    SS_CHECK(o.t == 1.0f && o.lambda == 1.0f && o.alpha == 2.0f);
    SS_CHECK(ss_hypersphere_cache_size(2, 3) > 0);
    SS_CHECK(ss_hypersphere_cache_size(1, 3) == 0);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("hypersphere.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t N = fx_int(fx, KEY("N")), D = fx_int(fx, KEY("D")), n;
        double t = fx_scalar(fx, KEY("t")), lam = fx_scalar(fx, KEY("lam"));
        double alpha = fx_scalar(fx, KEY("alpha"));
        ss_hypersphere_opts o = opts_of((float)t, (float)lam, (float)alpha);
        float *za = fx_f32_copy(fx, KEY("za"), &n);
        float *zb = fx_f32_copy(fx, KEY("zb"), &n);
        const double *za64 = fx_f64(fx, KEY("za"), &n);
        const double *zb64 = fx_f64(fx, KEY("zb"), &n);
        const double *wa = fx_f64(fx, KEY("dza"), &n);
        const double *wb = fx_f64(fx, KEY("dzb"), &n);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(za && zb && wa && wb && n == N * D);
        if (!za || !zb || !wa || !wb) continue;
        float loss, *dza = ss_test_alloc(N * D), *dzb = ss_test_alloc(N * D);
        run_hs(&loss, dza, dzb, 1.0f, za, zb, N, D, &o);
        SS_CHECK_NEAR(loss, want, 1e-4);
        GEOM_CHECK_GRAD(dza, wa, N * D, 1e-4, "hypersphere dza");
        GEOM_CHECK_GRAD(dzb, wb, N * D, 1e-4, "hypersphere dzb");
        double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D);
        SS_CHECK_NEAR(ss_direct_hypersphere(za64, zb64, N, D, t, lam, alpha, da, db),
                      want, 1e-10);
        SS_CHECK(geom_err_dd(da, wa, N * D) <= 1e-10);
        SS_CHECK(geom_err_dd(db, wb, N * D) <= 1e-10);
#undef KEY
        free(za), free(zb), free(dza), free(dzb), free(da), free(db);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    double t, lam, alpha;
} fd_ctx;

static double fd_loss(const double *x, void *p) {
    fd_ctx *c = p;
    return ss_direct_hypersphere(x, x + c->N * c->D, c->N, c->D, c->t, c->lam,
                                 c->alpha, NULL, NULL);
}

static void fd_case(int64_t N, int64_t D, double t, double lam, double alpha,
                    uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    double *x = ss_test_alloc_d(2 * N * D), *g = ss_test_alloc_d(2 * N * D);
    ss_test_fill_normal_d(x, 2 * N * D, &rng);
    fd_ctx c = {N, D, t, lam, alpha};
    ss_direct_hypersphere(x, x + N * D, N, D, t, lam, alpha, g, g + N * D);
    double e = ss_test_fd_max_err(fd_loss, &c, x, g, 2 * N * D, 1e-5, seed + 3);
    if (!(e < 1e-6)) fprintf(stderr, "hypersphere fd: %.3g\n", e);
    SS_CHECK(e < 1e-6);
    free(x), free(g);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(5, 3, 1.0, 1.0, 2.0, 1);
    fd_case(2, 4, 2.0, 0.5, 1.0, 2);
    fd_case(6, 2, 10.0, 1.0, 3.0, 3);
    fd_case(4, 1, 0.5, 2.0, 2.0, 4);
}

static void check_vs_direct(int64_t N, int64_t D, ss_hypersphere_opts o,
                            uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *za = ss_test_alloc(N * D), *zb = ss_test_alloc(N * D), loss;
    float *dza = ss_test_alloc(N * D), *dzb = ss_test_alloc(N * D);
    ss_test_fill_normal(za, N * D, &rng);
    ss_test_fill_normal(zb, N * D, &rng);
    for (int64_t i = 0; i < N * D; i++) zb[i] = za[i] + 0.5f * zb[i];
    run_hs(&loss, dza, dzb, 1.0f, za, zb, N, D, &o);
    double *a = geom_to_d(za, N * D), *b = geom_to_d(zb, N * D);
    double *wa = ss_test_alloc_d(N * D), *wb = ss_test_alloc_d(N * D);
    double want = ss_direct_hypersphere(a, b, N, D, o.t, o.lambda, o.alpha, wa, wb);
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(dza, wa, N * D, 1e-4, "hypersphere dza vs direct");
    GEOM_CHECK_GRAD(dzb, wb, N * D, 1e-4, "hypersphere dzb vs direct");
    free(za), free(zb), free(dza), free(dzb), free(a), free(b), free(wa), free(wb);
}

SS_TEST(tiled_vs_direct_awkward_sizes) {
    ss_hypersphere_opts o = ss_hypersphere_defaults();
    int64_t Ns[] = {2, 3, 127, 128, 129, 257};
    for (int k = 0; k < 6; k++) {
        check_vs_direct(Ns[k], 1, o, 10 + k);
        check_vs_direct(Ns[k], 3, o, 20 + k);
    }
    check_vs_direct(3, 1000, o, 30);
    check_vs_direct(130, 16, opts_of(3.0f, 0.5f, 1.0f), 31);
}

/* lightly's exp().mean().log() is -inf here; ours stays exact */
SS_TEST(large_t_stays_finite) {
    check_vs_direct(40, 8, opts_of(500.0f, 1.0f, 2.0f), 40);
    check_vs_direct(129, 4, opts_of(5000.0f, 1.0f, 2.0f), 41);
}

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t N = 37, D = 9, n = N * D;
    float *za = ss_test_alloc(n), *zb = ss_test_alloc(n), loss;
    float *a1 = ss_test_alloc(n), *b1 = ss_test_alloc(n);
    float *a2 = ss_test_alloc(n), *b2 = ss_test_alloc(n), *pre = ss_test_alloc(2 * n);
    ss_test_fill_normal(za, n, &rng);
    ss_test_fill_normal(zb, n, &rng);
    ss_test_fill_normal(pre, 2 * n, &rng);
    memcpy(a2, pre, sizeof(float) * (size_t)n), memcpy(b2, pre + n, sizeof(float) * (size_t)n);
    run_hs(&loss, a1, b1, 1.0f, za, zb, N, D, NULL);
    run_hs(&loss, a2, b2, -2.5f, za, zb, N, D, NULL);
    for (int64_t i = 0; i < n; i++)
        a2[i] = (a2[i] - pre[i]) / -2.5f, b2[i] = (b2[i] - pre[n + i]) / -2.5f;
    SS_CHECK_CLOSE_FF(a2, a1, n, 1e-5, "accumulated dza");
    SS_CHECK_CLOSE_FF(b2, b1, n, 1e-5, "accumulated dzb");
    float *b3 = ss_test_alloc(n);
    run_hs(&loss, NULL, b3, 1.0f, za, zb, N, D, NULL);
    SS_CHECK_CLOSE_FF(b3, b1, n, 1e-6, "dzb alone");
    free(za), free(zb), free(a1), free(b1), free(a2), free(b2), free(pre), free(b3);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t N = 400, D = 12, n = N * D;
    float *za = ss_test_alloc(n), *zb = ss_test_alloc(n), a, b;
    float *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n);
    ss_test_fill_normal(za, n, &rng);
    ss_test_fill_normal(zb, n, &rng);
    SS_CHECK_OK(ss_set_num_threads(1));
    run_hs(&a, g1, NULL, 1.0f, za, zb, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_hs(&b, g2, NULL, 1.0f, za, zb, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(a == b);
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-6, "dza 1 vs 2 threads");
    free(za), free(zb), free(g1), free(g2);
}

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float za[6] = {1, 2, 3, 4, 5, 6}, zb[6] = {2, 1, 0, 1, 2, 3}, dz[6] = {0};
    float loss = 42.0f, zn[6];
    char *cache = calloc(1, ss_hypersphere_cache_size(N, D));
    ss_hypersphere_opts o = ss_hypersphere_defaults(), b;
    SS_CHECK_STATUS(ss_hypersphere_forward(NULL, cache, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, NULL, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, NULL, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, NULL, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("zb must not be NULL");
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zb, 1, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zb, N, 0, &o), SS_ERR_SIZE);
    float bad_t[] = {0.0f, -1.0f, NAN, INFINITY};
    for (int k = 0; k < 4; k++) {
        b = o, b.t = bad_t[k];
        SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zb, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("t must be finite and > 0");
        b = o, b.alpha = bad_t[k];
        SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zb, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("alpha must be finite and > 0");
    }
    b = o, b.lambda = NAN;
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zb, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("lambda must be finite, got nan");
    memcpy(zn, za, sizeof za), zn[5] = -INFINITY;
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, zn, zb, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("za[5]");
    SS_CHECK_STATUS(ss_hypersphere_forward(&loss, cache, za, zn, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("zb[5]");
    SS_CHECK(loss == 42.0f);
    SS_CHECK_OK(ss_hypersphere_forward(&loss, cache, za, zb, N, D, NULL));
    SS_CHECK_STATUS(ss_hypersphere_backward(dz, dz, 1.0f, NULL, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_hypersphere_backward(dz, NULL, INFINITY, cache, za, zb, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b = o, b.t = 2.0f;
    SS_CHECK_STATUS(ss_hypersphere_backward(dz, NULL, 1.0f, cache, za, zb, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_hypersphere_backward(dz, NULL, 1.0f, cache, zn, zb, N, D, &o), SS_ERR_NONFINITE);
    for (int i = 0; i < 6; i++) SS_CHECK(dz[i] == 0.0f);
    SS_CHECK_OK(ss_hypersphere_backward(NULL, NULL, 1.0f, cache, za, zb, N, D, NULL));
    free(cache);
}
