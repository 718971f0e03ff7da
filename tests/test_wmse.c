/* test_wmse.c - W-MSE: lightly fixtures (explicit permutations), finite
 * differences on the direct reference (gradient through the Cholesky
 * whitening), library vs direct at awkward sizes, accumulation, threads,
 * the permutation helper, errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <string.h>

static ss_wmse_opts opts_of(int64_t w, int64_t iters, float eps) {
    ss_wmse_opts o = {w, iters, eps};
    return o;
}

static void run_wmse(float *loss, float *dz, float dloss, const float *z,
                     const int64_t *perm, int64_t V, int64_t N, int64_t D,
                     const ss_wmse_opts *o) {
    void *cache = malloc(ss_wmse_cache_size(V, N, D));
    SS_CHECK_OK(ss_wmse_forward(loss, cache, z, perm, V, N, D, o));
    SS_CHECK_OK(ss_wmse_backward(dz, dloss, cache, z, perm, V, N, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_wmse_opts o = ss_wmse_defaults();
    SS_CHECK(o.w_size == 256 && o.w_iter == 1 && o.eps == 0.0f);
    SS_CHECK(ss_wmse_cache_size(2, 8, 2) > 0);
    SS_CHECK(ss_wmse_cache_size(1, 8, 2) == 0);
    SS_CHECK_MSG_HAS("V must be >= 2, got 1");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("wmse.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t V = fx_int(fx, KEY("V")), N = fx_int(fx, KEY("N"));
        int64_t D = fx_int(fx, KEY("D")), w = fx_int(fx, KEY("w_size"));
        int64_t it = fx_int(fx, KEY("w_iter")), n;
        double eps = fx_scalar(fx, KEY("eps"));
        int identity = (int)fx_int(fx, KEY("identity"));
        ss_wmse_opts o = opts_of(w, it, (float)eps);
        float *z = fx_f32_copy(fx, KEY("z"), &n);
        const double *z64 = fx_f64(fx, KEY("z"), &n);
        const double *wdz = fx_f64(fx, KEY("dz"), &n);
        const int64_t *perm = fx_i64(fx, KEY("perm"), &n);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(z && wdz && perm && n == it * N);
        if (!z || !wdz || !perm) continue;
        float loss, *dz = ss_test_alloc(V * N * D);
        run_wmse(&loss, dz, 1.0f, z, identity ? NULL : perm, V, N, D, &o);
        SS_CHECK_NEAR(loss, want, 1e-4);
        GEOM_CHECK_GRAD(dz, wdz, V * N * D, 1e-4, "wmse dz");
        double *dd = ss_test_alloc_d(V * N * D);
        SS_CHECK_NEAR(ss_direct_wmse(z64, perm, V, N, D, w, it, eps, dd), want, 1e-10);
        SS_CHECK(geom_err_dd(dd, wdz, V * N * D) <= 1e-9);
#undef KEY
        free(z), free(dz), free(dd);
    }
    fx_free(fx);
}

typedef struct {
    int64_t V, N, D, w, it;
    double eps;
    const int64_t *perm;
} fd_ctx;

static double fd_loss(const double *z, void *p) {
    fd_ctx *c = p;
    return ss_direct_wmse(z, c->perm, c->V, c->N, c->D, c->w, c->it, c->eps, NULL);
}

static void fd_case(int64_t V, int64_t N, int64_t D, int64_t w, int64_t it,
                    double eps, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t n = V * N * D, *perm = calloc((size_t)(it * N), sizeof(int64_t));
    double *z = ss_test_alloc_d(n), *g = ss_test_alloc_d(n);
    ss_test_fill_normal_d(z, n, &rng);
    SS_CHECK_OK(ss_wmse_permutation(perm, it, N, &rng));
    fd_ctx c = {V, N, D, w, it, eps, perm};
    ss_direct_wmse(z, perm, V, N, D, w, it, eps, g);
    double e = ss_test_fd_max_err(fd_loss, &c, z, g, n, 1e-5, seed + 3);
    /* small sub-batches whiten ill-conditioned covariances: the central
     * differences themselves are good to a few 1e-6 only */
    if (!(e < 1e-5)) fprintf(stderr, "wmse fd: %.3g\n", e);
    SS_CHECK(e < 1e-5);
    free(z), free(g), free(perm);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(2, 4, 2, 4, 1, 0.0, 1);
    fd_case(2, 12, 3, 6, 2, 0.0, 2);
    fd_case(3, 8, 2, 4, 1, 0.2, 3);
    fd_case(2, 6, 1, 2, 1, 0.0, 4);
}

static void check_vs_direct(int64_t V, int64_t N, int64_t D, ss_wmse_opts o,
                            int use_perm, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t n = V * N * D, *perm = calloc((size_t)(o.w_iter * N), sizeof(int64_t));
    float *z = ss_test_alloc(n), *dz = ss_test_alloc(n), loss;
    ss_test_fill_normal(z, n, &rng);
    SS_CHECK_OK(ss_wmse_permutation(perm, o.w_iter, N, &rng));
    run_wmse(&loss, dz, 1.0f, z, use_perm ? perm : NULL, V, N, D, &o);
    double *zd = geom_to_d(z, n), *wd = ss_test_alloc_d(n);
    double want = ss_direct_wmse(zd, use_perm ? perm : NULL, V, N, D, o.w_size,
                                 o.w_iter, o.eps, wd);
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(dz, wd, n, 1e-4, "wmse dz vs direct");
    free(z), free(dz), free(zd), free(wd), free(perm);
}

SS_TEST(library_vs_direct_awkward_sizes) {
    check_vs_direct(2, 2, 1, opts_of(2, 1, 0.0f), 1, 10);   /* N = w = 2, D = 1 */
    check_vs_direct(2, 6, 1, opts_of(3, 2, 0.0f), 1, 11);
    check_vs_direct(3, 6, 3, opts_of(6, 1, 0.0f), 0, 12);
    check_vs_direct(2, 21, 3, opts_of(7, 3, 0.1f), 1, 13);
    check_vs_direct(2, 128, 16, opts_of(64, 1, 0.0f), 1, 14);
    check_vs_direct(4, 66, 33, opts_of(66, 1, 0.0f), 0, 15);
}

SS_TEST(permutation_helper) {
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    int64_t perm[3 * 50];
    SS_CHECK_OK(ss_wmse_permutation(perm, 3, 50, &rng));
    for (int it = 0; it < 3; it++) {
        int seen[50] = {0};
        for (int i = 0; i < 50; i++) seen[perm[it * 50 + i]]++;
        for (int i = 0; i < 50; i++) SS_CHECK(seen[i] == 1);
    }
    SS_CHECK(memcmp(perm, perm + 50, 50 * sizeof(int64_t)) != 0);
    SS_CHECK_STATUS(ss_wmse_permutation(NULL, 1, 5, &rng), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_wmse_permutation(perm, 1, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_wmse_permutation(perm, 0, 5, &rng), SS_ERR_SIZE);
}

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t V = 3, N = 40, D = 5, n = V * N * D;
    ss_wmse_opts o = opts_of(10, 2, 0.05f);
    float *z = ss_test_alloc(n), *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n);
    float *pre = ss_test_alloc(n), loss;
    ss_test_fill_normal(z, n, &rng);
    ss_test_fill_normal(pre, n, &rng);
    memcpy(g2, pre, sizeof(float) * (size_t)n);
    run_wmse(&loss, g1, 1.0f, z, NULL, V, N, D, &o);
    run_wmse(&loss, g2, -2.5f, z, NULL, V, N, D, &o);
    for (int64_t i = 0; i < n; i++) g2[i] = (g2[i] - pre[i]) / -2.5f;
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-5, "accumulated dz");
    free(z), free(g1), free(g2), free(pre);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t V = 2, N = 512, D = 16, n = V * N * D, perm[512];
    ss_wmse_opts o = opts_of(64, 1, 0.0f);
    float *z = ss_test_alloc(n), *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n), a, b;
    ss_test_fill_normal(z, n, &rng);
    SS_CHECK_OK(ss_wmse_permutation(perm, 1, N, &rng));
    SS_CHECK_OK(ss_set_num_threads(1));
    run_wmse(&a, g1, 1.0f, z, perm, V, N, D, &o);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_wmse(&b, g2, 1.0f, z, perm, V, N, D, &o);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(a, b, 1e-6);
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-6, "dz 1 vs 2 threads");
    free(z), free(g1), free(g2);
}

SS_TEST(bad_inputs) {
    int64_t V = 2, N = 4, D = 2, perm[4] = {3, 1, 0, 2}, bad_perm[4] = {0, 1, 1, 2};
    float z[16], dz[16] = {0}, loss = 42.0f, zn[16];
    for (int i = 0; i < 16; i++) z[i] = (float)((i * 7) % 5) - 2.0f + 0.1f * i;
    char *cache = calloc(1, ss_wmse_cache_size(V, N, D));
    ss_wmse_opts o = opts_of(4, 1, 0.0f), b;
    SS_CHECK_STATUS(ss_wmse_forward(NULL, cache, z, perm, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_wmse_forward(&loss, NULL, z, perm, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, NULL, perm, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, perm, 1, N, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("V must be >= 2, got 1");
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, perm, V, 0, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, perm, V, N, 0, &o), SS_ERR_SIZE);
    /* the sub-batch too small for the dimension */
    b = opts_of(3, 1, 0.0f);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, NULL, V, 3, D, &b), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("w_size = 3 is too small for D = 2");
    b = opts_of(4, 1, 0.0f);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, NULL, 2, 6, D, &b), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N = 6 must be a positive multiple of w_size = 4");
    b = opts_of(1, 1, 0.0f);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, NULL, V, N, 1, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("w_size must be >= 2, got 1");
    b = opts_of(4, 0, 0.0f);
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, NULL, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("w_iter must be >= 1");
    float bad_eps[] = {-0.1f, 1.0f, NAN};
    for (int k = 0; k < 3; k++) {
        b = opts_of(4, 1, bad_eps[k]);
        SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, NULL, V, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("eps must be in [0, 1)");
    }
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, bad_perm, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("perm[2] = 1");
    bad_perm[2] = 4;
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, z, bad_perm, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("perm[2] = 4");
    /* a singular covariance: the second view has a constant column */
    float zs[16];
    memcpy(zs, z, sizeof z);
    for (int r = 0; r < 4; r++) zs[8 + r * 2 + 1] = 1.0f;
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, zs, NULL, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("sub-batch 0, view 1 (iteration 0) is not positive definite");
    b = opts_of(4, 1, 0.1f); /* shrinkage fixes it */
    SS_CHECK_OK(ss_wmse_forward(&loss, cache, zs, NULL, V, N, D, &b));
    loss = 42.0f;
    memcpy(zn, z, sizeof z), zn[9] = NAN;
    SS_CHECK_STATUS(ss_wmse_forward(&loss, cache, zn, NULL, V, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[9]");
    SS_CHECK(loss == 42.0f);
    SS_CHECK_OK(ss_wmse_forward(&loss, cache, z, perm, V, N, D, &o));
    SS_CHECK_STATUS(ss_wmse_backward(NULL, 1.0f, cache, z, perm, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dz must not be NULL");
    SS_CHECK_STATUS(ss_wmse_backward(dz, 1.0f, NULL, z, perm, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_wmse_backward(dz, NAN, cache, z, perm, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b = opts_of(4, 1, 0.1f);
    SS_CHECK_STATUS(ss_wmse_backward(dz, 1.0f, cache, z, perm, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_wmse_backward(dz, 1.0f, cache, zs, perm, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_wmse_backward(dz, 1.0f, cache, zn, perm, V, N, D, &o), SS_ERR_NONFINITE);
    for (int i = 0; i < 16; i++) SS_CHECK(dz[i] == 0.0f);
    SS_CHECK_OK(ss_wmse_backward(dz, 1.0f, cache, z, perm, V, N, D, &o));
    free(cache);
}
