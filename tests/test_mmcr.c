/* test_mmcr.c - MMCR: lightly fixtures (with and without the momentum
 * branch), finite differences on the direct reference (eigen-based, not
 * SVD-based), library vs direct at awkward sizes, accumulation, threads,
 * errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <string.h>

static void run_mmcr(float *loss, float *don, float *dmo, float dloss,
                     const float *on, const float *mo, int64_t B, int64_t K,
                     int64_t D, const ss_mmcr_opts *o) {
    void *cache = malloc(ss_mmcr_cache_size(B, K, D));
    SS_CHECK_OK(ss_mmcr_forward(loss, cache, on, mo, B, K, D, o));
    SS_CHECK_OK(ss_mmcr_backward(don, dmo, dloss, cache, on, mo, B, K, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_mmcr_opts o = ss_mmcr_defaults();
    SS_CHECK(o.lambda == 5e-3f);
    SS_CHECK(ss_mmcr_cache_size(2, 2, 3) >= (2 * 3 + 2 * 4 * 3) * sizeof(float));
    SS_CHECK(ss_mmcr_cache_size(0, 2, 3) == 0);
    SS_CHECK_MSG_HAS("B must be >= 1, got 0");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("mmcr.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t B = fx_int(fx, KEY("B")), K = fx_int(fx, KEY("K"));
        int64_t D = fx_int(fx, KEY("D")), n, m = B * K * D;
        int mom = (int)fx_int(fx, KEY("has_momentum"));
        double lam = fx_scalar(fx, KEY("lmda"));
        ss_mmcr_opts o = {(float)lam};
        float *on = fx_f32_copy(fx, KEY("online"), &n);
        float *mo = fx_f32_copy(fx, KEY("momentum"), &n);
        const double *on64 = fx_f64(fx, KEY("online"), &n);
        const double *mo64 = fx_f64(fx, KEY("momentum"), &n);
        const double *won = fx_f64(fx, KEY("donline"), &n);
        const double *wmo = fx_f64(fx, KEY("dmomentum"), &n);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(on && mo && won && wmo && n == m);
        if (!on || !mo || !won || !wmo) continue;
        float loss, *don = ss_test_alloc(m), *dmo = ss_test_alloc(m);
        run_mmcr(&loss, don, mom ? dmo : NULL, 1.0f, on, mom ? mo : NULL, B, K, D, &o);
        SS_CHECK_NEAR(loss, want, 1e-4);
        GEOM_CHECK_GRAD(don, won, m, 1e-4, "mmcr donline");
        if (mom) GEOM_CHECK_GRAD(dmo, wmo, m, 1e-4, "mmcr dmomentum");
        double *a = ss_test_alloc_d(m), *b = ss_test_alloc_d(m);
        SS_CHECK_NEAR(ss_direct_mmcr(on64, mom ? mo64 : NULL, B, K, D, lam, a, b),
                      want, 1e-9);
        SS_CHECK(geom_err_dd(a, won, m) <= 1e-8);
        if (mom) SS_CHECK(geom_err_dd(b, wmo, m) <= 1e-8);
#undef KEY
        free(on), free(mo), free(don), free(dmo), free(a), free(b);
    }
    fx_free(fx);
}

typedef struct {
    int64_t B, K, D;
    double lam;
    int mom;
} fd_ctx;

static double fd_loss(const double *x, void *p) {
    fd_ctx *c = p;
    int64_t m = c->B * c->K * c->D;
    return ss_direct_mmcr(x, c->mom ? x + m : NULL, c->B, c->K, c->D, c->lam,
                          NULL, NULL);
}

static void fd_case(int64_t B, int64_t K, int64_t D, double lam, int mom,
                    uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t m = B * K * D;
    double *x = ss_test_alloc_d(2 * m), *g = ss_test_alloc_d(2 * m);
    ss_test_fill_normal_d(x, 2 * m, &rng);
    fd_ctx c = {B, K, D, lam, mom};
    ss_direct_mmcr(x, mom ? x + m : NULL, B, K, D, lam, g, g + m);
    double e = ss_test_fd_max_err(fd_loss, &c, x, g, mom ? 2 * m : m, 1e-5, seed + 3);
    /* the nuclear norm curves like 1 / sigma_min: central differences are
     * good to a few 1e-6 on these random cases */
    if (!(e < 1e-5)) fprintf(stderr, "mmcr fd: %.3g\n", e);
    SS_CHECK(e < 1e-5);
    free(x), free(g);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(3, 2, 5, 0.5, 1, 1);  /* B < D */
    fd_case(6, 2, 3, 0.3, 1, 2);  /* B > D */
    fd_case(2, 3, 4, 1.0, 0, 3);
    fd_case(4, 1, 2, 0.2, 1, 4);
}

static void check_vs_direct(int64_t B, int64_t K, int64_t D, float lam,
                            int mom, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t m = B * K * D;
    float *on = ss_test_alloc(m), *mo = ss_test_alloc(m), loss;
    float *don = ss_test_alloc(m), *dmo = ss_test_alloc(m);
    ss_test_fill_normal(on, m, &rng);
    ss_test_fill_normal(mo, m, &rng);
    ss_mmcr_opts o = {lam};
    run_mmcr(&loss, don, mom ? dmo : NULL, 1.0f, on, mom ? mo : NULL, B, K, D, &o);
    double *a = geom_to_d(on, m), *b = geom_to_d(mo, m);
    double *wa = ss_test_alloc_d(m), *wb = ss_test_alloc_d(m);
    double want = ss_direct_mmcr(a, mom ? b : NULL, B, K, D, lam, wa, wb);
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(don, wa, m, 1e-4, "mmcr donline vs direct");
    if (mom) GEOM_CHECK_GRAD(dmo, wb, m, 1e-4, "mmcr dmomentum vs direct");
    free(on), free(mo), free(don), free(dmo), free(a), free(b), free(wa), free(wb);
}

SS_TEST(library_vs_direct_awkward_sizes) {
    check_vs_direct(1, 1, 1, 5e-3f, 1, 10);
    check_vs_direct(2, 1, 3, 5e-3f, 1, 11);
    check_vs_direct(3, 2, 1, 0.5f, 0, 12);
    check_vs_direct(17, 2, 8, 5e-3f, 1, 13);
    check_vs_direct(5, 4, 40, 0.1f, 1, 14);
    check_vs_direct(3, 2, 1000, 5e-3f, 1, 15);
}

/* rank-deficient centroids (duplicate samples): finite, minimal subgradient */
SS_TEST(rank_deficient_is_finite) {
    int64_t B = 3, K = 2, D = 4, m = B * K * D;
    float on[24], dz[24] = {0}, loss;
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    ss_test_fill_normal(on, 8, &rng);
    memcpy(on + 8, on, 8 * sizeof(float));  /* sample 1 = sample 0 */
    ss_test_fill_normal(on + 16, 8, &rng);
    ss_mmcr_opts o = {0.1f};
    run_mmcr(&loss, dz, NULL, 1.0f, on, NULL, B, K, D, &o);
    SS_CHECK(isfinite(loss));
    for (int64_t i = 0; i < m; i++) SS_CHECK(isfinite(dz[i]));
    float zero[24] = {0}, dz0[24] = {0};
    run_mmcr(&loss, dz0, NULL, 1.0f, zero, NULL, B, K, D, &o);
    SS_CHECK(loss == 0.0f);
    for (int64_t i = 0; i < m; i++) SS_CHECK(dz0[i] == 0.0f);
}

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t B = 9, K = 2, D = 7, m = B * K * D;
    float *on = ss_test_alloc(m), *mo = ss_test_alloc(m), loss;
    float *a1 = ss_test_alloc(m), *b1 = ss_test_alloc(m), *a2 = ss_test_alloc(m);
    float *b2 = ss_test_alloc(m), *pre = ss_test_alloc(2 * m);
    ss_test_fill_normal(on, m, &rng);
    ss_test_fill_normal(mo, m, &rng);
    ss_test_fill_normal(pre, 2 * m, &rng);
    memcpy(a2, pre, sizeof(float) * (size_t)m), memcpy(b2, pre + m, sizeof(float) * (size_t)m);
    run_mmcr(&loss, a1, b1, 1.0f, on, mo, B, K, D, NULL);
    run_mmcr(&loss, a2, b2, -2.5f, on, mo, B, K, D, NULL);
    for (int64_t i = 0; i < m; i++)
        a2[i] = (a2[i] - pre[i]) / -2.5f, b2[i] = (b2[i] - pre[m + i]) / -2.5f;
    SS_CHECK_CLOSE_FF(a2, a1, m, 1e-5, "accumulated donline");
    SS_CHECK_CLOSE_FF(b2, b1, m, 1e-5, "accumulated dmomentum");
    float *a3 = ss_test_alloc(m);
    run_mmcr(&loss, a3, NULL, 1.0f, on, mo, B, K, D, NULL); /* stop-gradient momentum */
    SS_CHECK_CLOSE_FF(a3, a1, m, 1e-6, "donline with dmomentum NULL");
    free(on), free(mo), free(a1), free(b1), free(a2), free(b2), free(pre), free(a3);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t B = 64, K = 2, D = 32, m = B * K * D;
    float *on = ss_test_alloc(m), *mo = ss_test_alloc(m), a, b;
    float *g1 = ss_test_alloc(m), *g2 = ss_test_alloc(m);
    ss_test_fill_normal(on, m, &rng);
    ss_test_fill_normal(mo, m, &rng);
    SS_CHECK_OK(ss_set_num_threads(1));
    run_mmcr(&a, g1, NULL, 1.0f, on, mo, B, K, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_mmcr(&b, g2, NULL, 1.0f, on, mo, B, K, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(a, b, 1e-6);
    SS_CHECK_CLOSE_FF(g2, g1, m, 1e-6, "donline 1 vs 2 threads");
    free(on), free(mo), free(g1), free(g2);
}

SS_TEST(bad_inputs) {
    int64_t B = 2, K = 2, D = 3, m = B * K * D;
    float on[12], mo[12], don[12] = {0}, dmo[12] = {0}, loss = 42.0f, zn[12];
    for (int i = 0; i < 12; i++) on[i] = (float)(i % 5) - 1.5f, mo[i] = (float)(i % 3);
    char *cache = calloc(1, ss_mmcr_cache_size(B, K, D));
    ss_mmcr_opts o = ss_mmcr_defaults(), b;
    SS_CHECK_STATUS(ss_mmcr_forward(NULL, cache, on, mo, B, K, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, NULL, on, mo, B, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, NULL, mo, B, K, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("online must not be NULL");
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, mo, 0, K, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, mo, B, 0, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("K must be >= 1, got 0");
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, mo, B, K, 0, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, mo, (int64_t)1 << 30, K,
                                    (int64_t)1 << 20, &o), SS_ERR_SIZE);
    float bad[] = {-1e-3f, NAN, INFINITY};
    for (int k = 0; k < 3; k++) {
        b.lambda = bad[k];
        SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, mo, B, K, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("lambda must be finite and >= 0");
    }
    memcpy(zn, on, sizeof on), zn[11] = NAN;
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, zn, mo, B, K, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("online[11]");
    SS_CHECK_STATUS(ss_mmcr_forward(&loss, cache, on, zn, B, K, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("momentum[11]");
    SS_CHECK(loss == 42.0f);
    SS_CHECK_OK(ss_mmcr_forward(&loss, cache, on, mo, B, K, D, NULL));
    SS_CHECK_STATUS(ss_mmcr_backward(don, dmo, 1.0f, NULL, on, mo, B, K, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mmcr_backward(don, dmo, NAN, cache, on, mo, B, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    SS_CHECK_STATUS(ss_mmcr_backward(don, dmo, 1.0f, cache, on, NULL, B, K, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dmomentum is given but momentum is NULL");
    SS_CHECK_STATUS(ss_mmcr_backward(don, NULL, 1.0f, cache, on, NULL, B, K, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    b.lambda = 0.5f;
    SS_CHECK_STATUS(ss_mmcr_backward(don, dmo, 1.0f, cache, on, mo, B, K, D, &b), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_mmcr_backward(don, dmo, 1.0f, cache, zn, mo, B, K, D, &o), SS_ERR_NONFINITE);
    for (int64_t i = 0; i < m; i++) SS_CHECK(don[i] == 0.0f && dmo[i] == 0.0f);
    SS_CHECK_OK(ss_mmcr_backward(NULL, dmo, 1.0f, cache, on, mo, B, K, D, NULL));
    free(cache);
}
