/* test_koleo.c - KoLeo: DINOv2 fixtures (loss, per-sample losses,
 * neighbours, gradient), finite differences on the direct reference, tiled
 * vs direct at awkward sizes, accumulation, threads, errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <string.h>

static void run_koleo(float *loss, float *losses, float *dx, float dloss,
                      const float *x, int64_t N, int64_t D,
                      const ss_koleo_opts *o) {
    void *cache = malloc(ss_koleo_cache_size(N, D));
    SS_CHECK_OK(ss_koleo_forward(loss, losses, cache, x, N, D, o));
    SS_CHECK_OK(ss_koleo_backward(dx, dloss, cache, x, N, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_koleo_opts o = ss_koleo_defaults();
    SS_CHECK(o.eps == 1e-8f);
    SS_CHECK(ss_koleo_cache_size(2, 3) >= 2 * sizeof(int64_t));
    SS_CHECK(ss_koleo_cache_size(1, 3) == 0);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("koleo.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t N = fx_int(fx, KEY("N")), D = fx_int(fx, KEY("D")), n;
        double eps = fx_scalar(fx, KEY("eps"));
        ss_koleo_opts o = {(float)eps};
        float *x = fx_f32_copy(fx, KEY("x"), &n);
        const double *x64 = fx_f64(fx, KEY("x"), &n);
        const double *wls = fx_f64(fx, KEY("losses"), &n);
        const double *wdx = fx_f64(fx, KEY("dx"), &n);
        const int64_t *wnn = fx_i64(fx, KEY("nn"), &n);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(x && wls && wdx && wnn && n == N);
        if (!x || !wls || !wdx || !wnn) continue;
        float loss, *ls = ss_test_alloc(N), *dx = ss_test_alloc(N * D);
        run_koleo(&loss, ls, dx, 1.0f, x, N, D, &o);
        SS_CHECK_NEAR(loss, want, 1e-4);
        GEOM_CHECK_GRAD(ls, wls, N, 1e-4, "koleo losses");
        GEOM_CHECK_GRAD(dx, wdx, N * D, 1e-4, "koleo dx");
        double *dd = ss_test_alloc_d(N * D);
        int64_t *nn = calloc((size_t)N, sizeof(int64_t));
        SS_CHECK_NEAR(ss_direct_koleo(x64, N, D, eps, NULL, nn, dd), want, 1e-10);
        SS_CHECK(geom_err_dd(dd, wdx, N * D) <= 1e-9);
        for (int64_t i = 0; i < N; i++) SS_CHECK_INT(nn[i], wnn[i]);
#undef KEY
        free(x), free(ls), free(dx), free(dd), free(nn);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    double eps;
} fd_ctx;

static double fd_loss(const double *x, void *p) {
    fd_ctx *c = p;
    return ss_direct_koleo(x, c->N, c->D, c->eps, NULL, NULL, NULL);
}

static void fd_case(int64_t N, int64_t D, double eps, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    double *x = ss_test_alloc_d(N * D), *g = ss_test_alloc_d(N * D);
    ss_test_fill_normal_d(x, N * D, &rng);
    fd_ctx c = {N, D, eps};
    ss_direct_koleo(x, N, D, eps, NULL, NULL, g);
    double e = ss_test_fd_max_err(fd_loss, &c, x, g, N * D, 1e-6, seed + 3);
    if (!(e < 1e-5)) fprintf(stderr, "koleo fd: %.3g\n", e);
    SS_CHECK(e < 1e-5);
    free(x), free(g);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(6, 3, 1e-8, 1);
    fd_case(2, 4, 1e-8, 2);
    fd_case(9, 2, 1e-3, 3);
    fd_case(5, 5, 0.1, 4);
}

static void check_vs_direct(int64_t N, int64_t D, float eps, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *x = ss_test_alloc(N * D), *dx = ss_test_alloc(N * D);
    float *ls = ss_test_alloc(N), loss;
    ss_test_fill_normal(x, N * D, &rng);
    ss_koleo_opts o = {eps};
    run_koleo(&loss, ls, dx, 1.0f, x, N, D, &o);
    double *xd = geom_to_d(x, N * D), *wl = ss_test_alloc_d(N);
    double *wd = ss_test_alloc_d(N * D);
    double want = ss_direct_koleo(xd, N, D, eps, wl, NULL, wd);
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(ls, wl, N, 1e-4, "koleo losses vs direct");
    GEOM_CHECK_GRAD(dx, wd, N * D, 1e-4, "koleo dx vs direct");
    free(x), free(dx), free(ls), free(xd), free(wl), free(wd);
}

SS_TEST(tiled_vs_direct_awkward_sizes) {
    int64_t Ns[] = {2, 3, 127, 128, 129, 257};
    for (int k = 0; k < 6; k++) {
        check_vs_direct(Ns[k], 3, 1e-8f, 10 + k);
        check_vs_direct(Ns[k], 8, 1e-8f, 20 + k);
    }
    check_vs_direct(3, 1000, 1e-8f, 30);
    check_vs_direct(50, 2, 1e-8f, 31);
    check_vs_direct(60, 4, 1e-2f, 32);
}

SS_TEST(duplicate_rows_are_finite) {
    int64_t N = 4, D = 3;
    float x[12] = {1, 2, 3, 1, 2, 3, 0, 1, 0, 2, 4, 6}; /* rows 0, 1, 3 parallel */
    float loss, ls[4], dx[12] = {0};
    run_koleo(&loss, ls, dx, 1.0f, x, N, D, NULL);
    SS_CHECK(isfinite(loss));
    for (int i = 0; i < 12; i++) SS_CHECK(isfinite(dx[i]));
    double xd[12];
    for (int i = 0; i < 12; i++) xd[i] = x[i];
    SS_CHECK_NEAR(loss, ss_direct_koleo(xd, N, D, 1e-8, NULL, NULL, NULL), 1e-4);
}

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t N = 37, D = 9, n = N * D;
    float *x = ss_test_alloc(n), *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n);
    float *pre = ss_test_alloc(n), loss;
    ss_test_fill_normal(x, n, &rng);
    ss_test_fill_normal(pre, n, &rng);
    memcpy(g2, pre, sizeof(float) * (size_t)n);
    run_koleo(&loss, NULL, g1, 1.0f, x, N, D, NULL);
    run_koleo(&loss, NULL, g2, -2.5f, x, N, D, NULL);
    for (int64_t i = 0; i < n; i++) g2[i] = (g2[i] - pre[i]) / -2.5f;
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-5, "accumulated dx");
    free(x), free(g1), free(g2), free(pre);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t N = 500, D = 16, n = N * D;
    float *x = ss_test_alloc(n), *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n), a, b;
    float *l1 = ss_test_alloc(N), *l2 = ss_test_alloc(N);
    ss_test_fill_normal(x, n, &rng);
    SS_CHECK_OK(ss_set_num_threads(1));
    run_koleo(&a, l1, g1, 1.0f, x, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_koleo(&b, l2, g2, 1.0f, x, N, D, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(a == b);
    SS_CHECK(memcmp(l1, l2, sizeof(float) * (size_t)N) == 0);
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-6, "dx 1 vs 2 threads");
    free(x), free(g1), free(g2), free(l1), free(l2);
}

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {0}, loss = 42.0f, ls[3] = {0}, xn[6];
    char *cache = calloc(1, ss_koleo_cache_size(N, D));
    ss_koleo_opts o = ss_koleo_defaults(), b;
    SS_CHECK_STATUS(ss_koleo_forward(NULL, NULL, cache, x, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_koleo_forward(&loss, NULL, NULL, x, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_koleo_forward(&loss, NULL, cache, NULL, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("x must not be NULL");
    SS_CHECK_STATUS(ss_koleo_forward(&loss, NULL, cache, x, 1, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK_STATUS(ss_koleo_forward(&loss, NULL, cache, x, N, -2, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got -2");
    float bad[] = {0.0f, -1e-8f, NAN, INFINITY};
    for (int k = 0; k < 4; k++) {
        b.eps = bad[k];
        SS_CHECK_STATUS(ss_koleo_forward(&loss, NULL, cache, x, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("eps must be finite and > 0");
    }
    memcpy(xn, x, sizeof x), xn[3] = NAN;
    SS_CHECK_STATUS(ss_koleo_forward(&loss, ls, cache, xn, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("x[3]");
    SS_CHECK(loss == 42.0f && ls[0] == 0.0f);
    SS_CHECK_OK(ss_koleo_forward(&loss, NULL, cache, x, N, D, NULL));
    SS_CHECK_STATUS(ss_koleo_backward(NULL, 1.0f, cache, x, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dx must not be NULL");
    SS_CHECK_STATUS(ss_koleo_backward(dx, 1.0f, NULL, x, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_koleo_backward(dx, NAN, cache, x, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b.eps = 1e-3f;
    SS_CHECK_STATUS(ss_koleo_backward(dx, 1.0f, cache, x, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_koleo_backward(dx, 1.0f, cache, x, 2, D, &o), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_koleo_backward(dx, 1.0f, cache, xn, N, D, &o), SS_ERR_NONFINITE);
    int64_t *nn = (int64_t *)(cache + 64);
    int64_t keep = nn[1];
    nn[1] = 1; /* its own neighbour: corrupt */
    SS_CHECK_STATUS(ss_koleo_backward(dx, 1.0f, cache, x, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("neighbour of row 1 is 1");
    nn[1] = keep;
    for (int i = 0; i < 6; i++) SS_CHECK(dx[i] == 0.0f);
    SS_CHECK_OK(ss_koleo_backward(dx, 1.0f, cache, x, N, D, NULL));
    free(cache);
}
