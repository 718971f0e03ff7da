/* test_tcr.c - EMP-SSL total coding rate + invariance: fixtures from the
 * official TotalCodingRate (paper sign) and lightly's invariance term,
 * finite differences on the direct reference, library vs direct at
 * awkward sizes (both Gram forms), accumulation, threads, errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <string.h>

static ss_empssl_opts opts_of(float eps, float inv) {
    ss_empssl_opts o = {eps, inv};
    return o;
}

static void run_tcr(float *loss, float *rates, float *dz, float dloss,
                    const float *z, int64_t V, int64_t N, int64_t D,
                    const ss_empssl_opts *o) {
    void *cache = malloc(ss_empssl_cache_size(V, N, D));
    SS_CHECK_OK(ss_empssl_forward(loss, rates, cache, z, V, N, D, o));
    SS_CHECK_OK(ss_empssl_backward(dz, dloss, cache, z, V, N, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_empssl_opts o = ss_empssl_defaults();
    SS_CHECK(o.tcr_eps == 0.2f && o.inv_coef == 200.0f);
    SS_CHECK(ss_empssl_cache_size(2, 3, 4) >= 24 * sizeof(float));
    SS_CHECK(ss_empssl_cache_size(0, 3, 4) == 0);
    SS_CHECK_MSG_HAS("V must be >= 1, got 0");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("tcr.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t V = fx_int(fx, KEY("V")), N = fx_int(fx, KEY("N"));
        int64_t D = fx_int(fx, KEY("D")), n, m = V * N * D;
        double eps = fx_scalar(fx, KEY("eps")), inv = fx_scalar(fx, KEY("inv_coef"));
        ss_empssl_opts o = opts_of((float)eps, (float)inv);
        float *z = fx_f32_copy(fx, KEY("z"), &n);
        const double *z64 = fx_f64(fx, KEY("z"), &n);
        const double *wr = fx_f64(fx, KEY("rates"), &n);
        const double *wdz = fx_f64(fx, KEY("dz"), &n);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(z && wr && wdz && n == m);
        if (!z || !wr || !wdz) continue;
        float loss, *rates = ss_test_alloc(V), *dz = ss_test_alloc(m);
        run_tcr(&loss, rates, dz, 1.0f, z, V, N, D, &o);
        SS_CHECK_NEAR(loss, want, 1e-4);
        GEOM_CHECK_GRAD(rates, wr, V, 1e-4, "tcr rates");
        GEOM_CHECK_GRAD(dz, wdz, m, 1e-4, "tcr dz");
        double *dd = ss_test_alloc_d(m), *rd = ss_test_alloc_d(V);
        SS_CHECK_NEAR(ss_direct_empssl(z64, V, N, D, eps, inv, rd, dd), want, 1e-10);
        SS_CHECK(geom_err_dd(dd, wdz, m) <= 1e-10);
        SS_CHECK(geom_err_dd(rd, wr, V) <= 1e-10);
#undef KEY
        free(z), free(rates), free(dz), free(dd), free(rd);
    }
    fx_free(fx);
}

/* The sign: with inv_coef = 0 the loss is -mean R <= 0, and spreading the
 * embeddings (larger rate) lowers it. */
SS_TEST(sign_maximises_the_coding_rate) {
    ss_rng rng;
    ss_rng_seed(&rng, 2);
    int64_t V = 2, N = 16, D = 4, m = V * N * D;
    float *z = ss_test_alloc(m), *z2 = ss_test_alloc(m), l1, l2, r[2];
    ss_test_fill_normal(z, m, &rng);
    for (int64_t i = 0; i < m; i++) z2[i] = 3.0f * z[i];
    ss_empssl_opts o = opts_of(0.2f, 0.0f);
    void *cache = malloc(ss_empssl_cache_size(V, N, D));
    SS_CHECK_OK(ss_empssl_forward(&l1, r, cache, z, V, N, D, &o));
    SS_CHECK(l1 < 0.0f && r[0] > 0.0f);
    SS_CHECK_NEAR(l1, -(r[0] + r[1]) / 2, 1e-6);
    SS_CHECK_OK(ss_empssl_forward(&l2, NULL, cache, z2, V, N, D, &o));
    SS_CHECK(l2 < l1);
    free(cache), free(z), free(z2);
}

typedef struct {
    int64_t V, N, D;
    double eps, inv;
} fd_ctx;

static double fd_loss(const double *z, void *p) {
    fd_ctx *c = p;
    return ss_direct_empssl(z, c->V, c->N, c->D, c->eps, c->inv, NULL, NULL);
}

static void fd_case(int64_t V, int64_t N, int64_t D, double eps, double inv,
                    uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t m = V * N * D;
    double *z = ss_test_alloc_d(m), *g = ss_test_alloc_d(m);
    ss_test_fill_normal_d(z, m, &rng);
    fd_ctx c = {V, N, D, eps, inv};
    ss_direct_empssl(z, V, N, D, eps, inv, NULL, g);
    double e = ss_test_fd_max_err(fd_loss, &c, z, g, m, 1e-5, seed + 3);
    if (!(e < 1e-6)) fprintf(stderr, "tcr fd: %.3g\n", e);
    SS_CHECK(e < 1e-6);
    free(z), free(g);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(2, 8, 3, 0.2, 200.0, 1);
    fd_case(3, 3, 6, 0.5, 1.0, 2);
    fd_case(1, 5, 5, 0.2, 0.0, 3);
    fd_case(2, 1, 4, 0.1, 5.0, 4);
}

static void check_vs_direct(int64_t V, int64_t N, int64_t D, ss_empssl_opts o,
                            uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t m = V * N * D;
    float *z = ss_test_alloc(m), *dz = ss_test_alloc(m), *r = ss_test_alloc(V), loss;
    ss_test_fill_normal(z, m, &rng);
    run_tcr(&loss, r, dz, 1.0f, z, V, N, D, &o);
    double *zd = geom_to_d(z, m), *wd = ss_test_alloc_d(m), *wr = ss_test_alloc_d(V);
    double want = ss_direct_empssl(zd, V, N, D, o.tcr_eps, o.inv_coef, wr, wd);
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(r, wr, V, 1e-4, "tcr rates vs direct");
    GEOM_CHECK_GRAD(dz, wd, m, 1e-4, "tcr dz vs direct");
    free(z), free(dz), free(r), free(zd), free(wd), free(wr);
}

SS_TEST(library_vs_direct_awkward_sizes) {
    ss_empssl_opts o = ss_empssl_defaults();
    check_vs_direct(1, 1, 1, o, 10);
    check_vs_direct(2, 1, 3, o, 11);
    check_vs_direct(2, 3, 1, o, 12);
    check_vs_direct(4, 50, 7, o, 13);    /* D x D form */
    check_vs_direct(3, 7, 50, o, 14);    /* N x N form */
    check_vs_direct(2, 3, 1000, opts_of(0.2f, 0.0f), 15);
    check_vs_direct(2, 64, 64, opts_of(0.5f, 1.0f), 16);
}

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t V = 3, N = 20, D = 6, m = V * N * D;
    float *z = ss_test_alloc(m), *g1 = ss_test_alloc(m), *g2 = ss_test_alloc(m);
    float *pre = ss_test_alloc(m), loss;
    ss_test_fill_normal(z, m, &rng);
    ss_test_fill_normal(pre, m, &rng);
    memcpy(g2, pre, sizeof(float) * (size_t)m);
    run_tcr(&loss, NULL, g1, 1.0f, z, V, N, D, NULL);
    run_tcr(&loss, NULL, g2, -2.5f, z, V, N, D, NULL);
    for (int64_t i = 0; i < m; i++) g2[i] = (g2[i] - pre[i]) / -2.5f;
    SS_CHECK_CLOSE_FF(g2, g1, m, 1e-5, "accumulated dz");
    free(z), free(g1), free(g2), free(pre);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t V = 8, N = 64, D = 24, m = V * N * D;
    float *z = ss_test_alloc(m), *g1 = ss_test_alloc(m), *g2 = ss_test_alloc(m), a, b;
    ss_test_fill_normal(z, m, &rng);
    SS_CHECK_OK(ss_set_num_threads(1));
    run_tcr(&a, NULL, g1, 1.0f, z, V, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_tcr(&b, NULL, g2, 1.0f, z, V, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(a, b, 1e-6);
    SS_CHECK_CLOSE_FF(g2, g1, m, 1e-6, "dz 1 vs 2 threads");
    free(z), free(g1), free(g2);
}

SS_TEST(bad_inputs) {
    int64_t V = 2, N = 3, D = 2, m = V * N * D;
    float z[12], dz[12] = {0}, loss = 42.0f, rates[2] = {0}, zn[12];
    for (int i = 0; i < 12; i++) z[i] = (float)(i % 5) - 1.5f;
    char *cache = calloc(1, ss_empssl_cache_size(V, N, D));
    ss_empssl_opts o = ss_empssl_defaults(), b;
    SS_CHECK_STATUS(ss_empssl_forward(NULL, NULL, cache, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, NULL, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, NULL, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("z must not be NULL");
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, z, 0, N, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, z, V, 0, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got 0");
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, z, V, N, 0, &o), SS_ERR_SIZE);
    float bad[] = {0.0f, -0.2f, NAN, INFINITY};
    for (int k = 0; k < 4; k++) {
        b = o, b.tcr_eps = bad[k];
        SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("tcr_eps must be finite and > 0");
    }
    b = o, b.inv_coef = NAN;
    SS_CHECK_STATUS(ss_empssl_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("inv_coef must be finite, got nan");
    memcpy(zn, z, sizeof z), zn[7] = INFINITY;
    SS_CHECK_STATUS(ss_empssl_forward(&loss, rates, cache, zn, V, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[7]");
    SS_CHECK(loss == 42.0f && rates[0] == 0.0f);
    SS_CHECK_OK(ss_empssl_forward(&loss, NULL, cache, z, V, N, D, NULL));
    SS_CHECK_STATUS(ss_empssl_backward(NULL, 1.0f, cache, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dz must not be NULL");
    SS_CHECK_STATUS(ss_empssl_backward(dz, 1.0f, NULL, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_empssl_backward(dz, NAN, cache, z, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b = o, b.inv_coef = 1.0f;
    SS_CHECK_STATUS(ss_empssl_backward(dz, 1.0f, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_empssl_backward(dz, 1.0f, cache, z, V, 2, D, &o), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_empssl_backward(dz, 1.0f, cache, zn, V, N, D, &o), SS_ERR_NONFINITE);
    for (int64_t i = 0; i < m; i++) SS_CHECK(dz[i] == 0.0f);
    SS_CHECK_OK(ss_empssl_backward(dz, 1.0f, cache, z, V, N, D, NULL));
    free(cache);
}
