/* test_negcos.c - negative cosine similarity (BYOL / SimSiam): PyTorch
 * (lightly) fixtures, finite differences of the direct reference, the
 * stop-gradient contract, the symmetric form, accumulation, threads,
 * statuses. */
#include "direct_redundancy.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static float *copy_f(const float *x, int64_t n) {
    float *y = ss_test_alloc(n);
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

/* got - pre, in place: isolates what backward accumulated. */
static void sub(float *got, const float *pre, int64_t n) {
    for (int64_t i = 0; i < n; i++) got[i] -= pre[i];
}

SS_TEST(matches_lightly_fixture) {
    ss_fixture *fx = fx_load("negcos.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    for (int64_t c = 0; c < nc; c++) {
        char k[64];
#define E(name) (snprintf(k, sizeof k, "c%d_" name, (int)c), k)
        int64_t N = fx_int(fx, E("N")), D = fx_int(fx, E("D")), n = N * D;
        ss_negcos_opts o = ss_negcos_defaults();
        o.eps = (float)fx_scalar(fx, E("eps"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *p = fx_f32_copy(fx, E("p"), NULL), *z = fx_f32_copy(fx, E("z"), NULL);
        float *pre = ss_test_alloc(4 * n), *losses = ss_test_alloc(2 * N), loss;
        ss_test_fill_normal(pre, 4 * n, &rng);
        float *dp = copy_f(pre, n), *dz = copy_f(pre + n, n);
        void *cache = malloc(ss_negcos_sym_cache_size(N, D));
        SS_CHECK_OK(ss_negcos_forward(&loss, losses, cache, p, z, N, D, &o));
        SS_CHECK_OK(ss_negcos_backward(dp, dz, dloss, cache, p, z, N, D, &o));
        sub(dp, pre, n), sub(dz, pre + n, n);
        double want = fx_scalar(fx, E("loss"));
        SS_CHECK(fabs(loss - want) <= 1e-4 * fmax(fabs(want), 1e-3));
        SS_CHECK_CLOSE_FD(losses, fx_f64(fx, E("losses"), NULL), N, 1e-4, "losses");
        SS_CHECK_CLOSE_FD(dp, fx_f64(fx, E("dp"), NULL), n, 1e-4, "dp");
        SS_CHECK_CLOSE_FD(dz, fx_f64(fx, E("dz"), NULL), n, 1e-4, "dz");
        /* symmetric form: targets are stop-gradient */
        float *p1 = fx_f32_copy(fx, E("p1"), NULL), *p2 = fx_f32_copy(fx, E("p2"), NULL);
        float *z1 = fx_f32_copy(fx, E("z1"), NULL), *z2 = fx_f32_copy(fx, E("z2"), NULL);
        float *dp1 = copy_f(pre + 2 * n, n), *dp2 = copy_f(pre + 3 * n, n);
        SS_CHECK_OK(ss_negcos_sym_forward(&loss, losses, cache, p1, p2, z1, z2, N, D, &o));
        SS_CHECK_OK(ss_negcos_sym_backward(dp1, dp2, NULL, NULL, dloss, cache, p1, p2,
                                           z1, z2, N, D, &o));
        sub(dp1, pre + 2 * n, n), sub(dp2, pre + 3 * n, n);
        want = fx_scalar(fx, E("sym_loss"));
        SS_CHECK(fabs(loss - want) <= 1e-4 * fmax(fabs(want), 1e-3));
        SS_CHECK_CLOSE_FD(dp1, fx_f64(fx, E("dp1"), NULL), n, 1e-4, "dp1");
        SS_CHECK_CLOSE_FD(dp2, fx_f64(fx, E("dp2"), NULL), n, 1e-4, "dp2");
        double mean = 0; /* loss is the mean of the (2, N) per-row losses */
        for (int64_t i = 0; i < 2 * N; i++) mean += losses[i];
        SS_CHECK_NEAR(loss, mean / (2 * N), 1e-6);
#undef E
        free(p), free(z), free(p1), free(p2), free(z1), free(z2), free(pre);
        free(losses), free(dp), free(dz), free(dp1), free(dp2), free(cache);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    double eps, *p, *z;
    int which;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    return dr_negcos(c->which ? c->p : x, c->which ? x : c->z, c->N, c->D, c->eps,
                     NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    double scales[] = {1.0, 1e-3}; /* the second is below eps = 1e-2 */
    for (int s = 0; s < 2; s++) {
        int64_t N = 4, D = 5;
        fd_ctx c = {N, D, 1e-2, ss_test_alloc_d(N * D), ss_test_alloc_d(N * D), 0};
        ss_test_fill_normal_d(c.p, N * D, &rng);
        ss_test_fill_normal_d(c.z, N * D, &rng);
        for (int64_t i = 0; i < N * D; i++) c.p[i] *= scales[s];
        double *dp = ss_test_alloc_d(N * D), *dz = ss_test_alloc_d(N * D);
        dr_negcos(c.p, c.z, N, D, c.eps, NULL, dp, dz);
        if (s == 0) { /* torch's clamp is inside the derivative: FD only off it */
            c.which = 0;
            SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.p, dp, N * D, 1e-6, 1) < 1e-6);
        }
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.z, dz, N * D, 1e-6, 2) < 1e-6);
        free(c.p), free(c.z), free(dp), free(dz);
    }
}

static void check_vs_direct(int64_t N, int64_t D, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t n = N * D;
    float *p = ss_test_alloc(n), *z = ss_test_alloc(n), *dp = ss_test_alloc(n),
          *dz = ss_test_alloc(n), *losses = ss_test_alloc(N), loss;
    ss_test_fill_normal(p, n, &rng);
    ss_test_fill_normal(z, n, &rng);
    double *pd = ss_test_alloc_d(n), *zd = ss_test_alloc_d(n), *dpw = ss_test_alloc_d(n),
           *dzw = ss_test_alloc_d(n), *lw = ss_test_alloc_d(N);
    for (int64_t i = 0; i < n; i++) pd[i] = p[i], zd[i] = z[i];
    double want = dr_negcos(pd, zd, N, D, 1e-8, lw, dpw, dzw);
    void *cache = malloc(ss_negcos_cache_size(N, D));
    SS_CHECK_OK(ss_negcos_forward(&loss, losses, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_negcos_backward(dp, dz, 1.0f, cache, p, z, N, D, NULL));
    SS_CHECK(fabs(loss - want) <= 1e-5);
    SS_CHECK_CLOSE_FD(losses, lw, N, 1e-5, "losses");
    SS_CHECK_CLOSE_FD(dp, dpw, n, 1e-4, "dp");
    SS_CHECK_CLOSE_FD(dz, dzw, n, 1e-4, "dz");
    free(p), free(z), free(dp), free(dz), free(losses), free(pd), free(zd), free(dpw);
    free(dzw), free(lw), free(cache);
}

SS_TEST(matches_direct_awkward_sizes) {
    int64_t Ns[] = {1, 2, 3, 257}, Ds[] = {1, 3, 1000};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) check_vs_direct(Ns[i], Ds[j], 10 * i + j);
}

SS_TEST(stop_gradient_target_untouched) {
    int64_t N = 3, D = 4;
    float p[12], z[12], dp[12] = {0}, loss;
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    ss_test_fill_normal(p, 12, &rng);
    ss_test_fill_normal(z, 12, &rng);
    float zc[12];
    memcpy(zc, z, sizeof z);
    char cache[1024];
    SS_CHECK(ss_negcos_cache_size(N, D) <= sizeof cache);
    SS_CHECK_OK(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_negcos_backward(dp, NULL, 1.0f, cache, p, z, N, D, NULL));
    SS_CHECK(memcmp(z, zc, sizeof z) == 0);
    /* p parallel to z: cos = 1, loss -1, zero gradient along p */
    for (int i = 0; i < 12; i++) p[i] = 2.5f * z[i];
    SS_CHECK_OK(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, NULL));
    SS_CHECK_NEAR(loss, -1.0, 1e-6);
    float g[12] = {0};
    SS_CHECK_OK(ss_negcos_backward(g, NULL, 1.0f, cache, p, z, N, D, NULL));
    for (int i = 0; i < 12; i++) SS_CHECK(fabsf(g[i]) < 1e-6f);
}

SS_TEST(zero_rows_are_finite) {
    float p[6] = {0, 0, 0, 1, 2, 3}, z[6] = {1, 1, 1, 0, 0, 0}, dp[6] = {0}, dz[6] = {0};
    float loss, losses[2];
    char cache[512];
    SS_CHECK_OK(ss_negcos_forward(&loss, losses, cache, p, z, 2, 3, NULL));
    SS_CHECK(loss == 0.0f && losses[0] == 0.0f && losses[1] == 0.0f);
    SS_CHECK_OK(ss_negcos_backward(dp, dz, 1.0f, cache, p, z, 2, 3, NULL));
    for (int i = 0; i < 6; i++) SS_CHECK(isfinite(dp[i]) && isfinite(dz[i]));
}

SS_TEST(thread_count_independent) {
    int64_t N = 1100, D = 1000, n = N * D; /* > SS__PAR_STREAM: parallel loops */
    ss_rng rng;
    ss_rng_seed(&rng, 12);
    float *p = ss_test_alloc(n), *z = ss_test_alloc(n), *d1 = ss_test_alloc(n),
          *d2 = ss_test_alloc(n), l1, l2;
    ss_test_fill_normal(p, n, &rng);
    ss_test_fill_normal(z, n, &rng);
    void *cache = malloc(ss_negcos_cache_size(N, D));
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(ss_negcos_forward(&l1, NULL, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_negcos_backward(d1, NULL, 1.0f, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(ss_negcos_forward(&l2, NULL, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_negcos_backward(d2, NULL, 1.0f, cache, p, z, N, D, NULL));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(l1 == l2);
    SS_CHECK_CLOSE_FF(d2, d1, n, 1e-6, "dp 1 vs 2 threads");
    free(p), free(z), free(d1), free(d2), free(cache);
}

SS_TEST(bad_inputs) {
    int64_t N = 2, D = 3;
    float p[6] = {1, 2, 3, 4, 5, 6}, z[6] = {1, 0, 0, 1, 1, 1}, loss, dp[6], dz[6];
    char cache[512];
    ss_negcos_opts o = ss_negcos_defaults();
    SS_CHECK(ss_negcos_cache_size(0, D) == 0);
    SS_CHECK_MSG_HAS("N must be >= 1");
    SS_CHECK(ss_negcos_sym_cache_size(N, -2) == 0);
    SS_CHECK_STATUS(ss_negcos_forward(NULL, NULL, cache, p, z, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss");
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, NULL, p, z, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, NULL, z, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("p must not be NULL");
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, NULL, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, 0, D, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, N, 0, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got 0");
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, (int64_t)1 << 30,
                                      (int64_t)1 << 20, NULL), SS_ERR_SIZE);
    o.eps = 0.0f;
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("eps must be finite and > 0, got 0");
    o.eps = NAN;
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, &o), SS_ERR_PARAM);
    o = ss_negcos_defaults();
    p[4] = NAN;
    loss = 42.0f;
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("p[4]");
    SS_CHECK(loss == 42.0f);
    p[4] = 5;
    z[2] = INFINITY;
    SS_CHECK_STATUS(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[2]");
    z[2] = 0;
    SS_CHECK_OK(ss_negcos_forward(&loss, NULL, cache, p, z, N, D, &o));
    for (int i = 0; i < 6; i++) dp[i] = dz[i] = 7.0f;
    SS_CHECK_STATUS(ss_negcos_backward(NULL, dz, 1, cache, p, z, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dp");
    SS_CHECK_STATUS(ss_negcos_backward(dp, dz, 1, NULL, p, z, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_negcos_backward(dp, dz, NAN, cache, p, z, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss");
    SS_CHECK_STATUS(ss_negcos_backward(dp, dz, 1, cache, p, z, 1, D, &o), SS_ERR_STATE);
    o.eps = 1e-3f;
    SS_CHECK_STATUS(ss_negcos_backward(dp, dz, 1, cache, p, z, N, D, &o), SS_ERR_STATE);
    o = ss_negcos_defaults();
    z[5] = NAN;
    SS_CHECK_STATUS(ss_negcos_backward(dp, dz, 1, cache, p, z, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[5]");
    z[5] = 1;
    for (int i = 0; i < 6; i++) SS_CHECK(dp[i] == 7.0f && dz[i] == 7.0f);
    /* a pair cache is not a symmetric cache */
    SS_CHECK_STATUS(ss_negcos_sym_backward(dp, dz, NULL, NULL, 1, cache, p, p, z, z, N, D,
                                           &o), SS_ERR_STATE);
    SS_CHECK_STATUS(ss_negcos_sym_forward(&loss, NULL, cache, p, NULL, z, z, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("p2");
    SS_CHECK_STATUS(ss_negcos_sym_forward(&loss, NULL, cache, p, p, z, z, N, 0, &o),
                    SS_ERR_SIZE);
    SS_CHECK_OK(ss_negcos_sym_forward(&loss, NULL, cache, p, p, z, z, N, D, &o));
    SS_CHECK_STATUS(ss_negcos_sym_backward(dp, NULL, NULL, NULL, 1, cache, p, p, z, z, N,
                                           D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dp2");
    SS_CHECK_OK(ss_negcos_sym_backward(dp, dz, NULL, NULL, 1, cache, p, p, z, z, N, D, &o));
}
