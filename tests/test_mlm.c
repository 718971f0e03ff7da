/* test_mlm.c - masked cross-entropy: PyTorch fixtures, finite differences
 * on the direct double reference, float vs direct, all-ignored, large
 * logits, accumulation, threads, errors. */
#include "direct_predictive.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const int64_t *y;
    int64_t T, V;
    double eps;
    const double *w;
} ce_ctx;

static double ce_f(const double *x, void *c) {
    ce_ctx *k = c;
    return ss_direct_ce(x, k->y, k->T, k->V, k->eps, k->w, -100, NULL, NULL);
}

/* forward + backward into dx (as given). */
static ss_status run_mlm(float *loss, float *losses, float *dx, float dloss,
                         const float *x, const int64_t *y, int64_t T,
                         int64_t V, const ss_mlm_opts *o) {
    void *cache = malloc(ss_mlm_cache_size(T, V));
    ss_status st = ss_mlm_forward(loss, losses, cache, x, y, T, V, o);
    if (st == SS_OK) st = ss_mlm_backward(dx, dloss, cache, x, y, T, V, o);
    free(cache);
    return st;
}

static void random_targets(int64_t *y, int64_t T, int64_t V, double p_ign,
                           ss_rng *rng) {
    for (int64_t t = 0; t < T; t++)
        y[t] = ss_rng_uniform(rng) < p_ign
                   ? -100 : (int64_t)(ss_rng_u64(rng) % (uint64_t)V);
}

SS_TEST(defaults_and_cache_size) {
    ss_mlm_opts o = ss_mlm_defaults();
    SS_CHECK(o.ignore_index == -100 && o.label_smoothing == 0.0f);
    SS_CHECK(o.class_weights == NULL);
    SS_CHECK(ss_mlm_cache_size(10, 7) >= 10 * sizeof(float));
    SS_CHECK(ss_mlm_cache_size(0, 7) == 0);
    SS_CHECK_MSG_HAS("T must be >= 1, got 0");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("mlm.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 6);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t T = fx_int(fx, KEY("T")), V = fx_int(fx, KEY("V")), n;
        float *x = fx_f32_copy(fx, KEY("logits"), &n);
        SS_CHECK(x && n == T * V);
        const int64_t *y = fx_i64(fx, KEY("targets"), &n);
        float *w = fx_f32_copy(fx, KEY("w"), &n);
        const double *w64 = fx_f64(fx, KEY("w"), &n);
        int has_w = (int)fx_int(fx, KEY("has_w"));
        const double *want_l = fx_f64(fx, KEY("losses"), &n);
        const double *want_dx = fx_f64(fx, KEY("dlogits"), &n);
        if (!x || !y || !w || !want_l || !want_dx) continue;
        ss_mlm_opts o = ss_mlm_defaults();
        o.label_smoothing = (float)fx_scalar(fx, KEY("eps"));
        o.class_weights = has_w ? w : NULL;
        float loss, *losses = ss_test_alloc(T), *dx = ss_test_alloc(T * V);
        SS_CHECK_OK(run_mlm(&loss, losses, dx, 1.0f, x, y, T, V, &o));
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK_CLOSE_FD(losses, want_l, T, 1e-4, "fixture losses");
        SS_CHECK_CLOSE_FD(dx, want_dx, T * V, 1e-4, "fixture dlogits");
        /* the direct reference matches PyTorch to double precision */
        double *dd = ss_test_alloc_d(T * V), *ld = ss_test_alloc_d(T);
        const double *x64 = fx_f64(fx, KEY("logits"), &n);
        double l = ss_direct_ce(x64, y, T, V, fx_scalar(fx, KEY("eps")),
                                has_w ? w64 : NULL, -100, ld, dd);
        SS_CHECK_NEAR(l, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dd, want_dx, T * V) <= 1e-10);
        SS_CHECK(ss_test_rel_err_dd(ld, want_l, T) <= 1e-10);
#undef KEY
        free(x), free(w), free(losses), free(dx), free(dd), free(ld);
    }
    fx_free(fx);
}

SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 11);
    int64_t T = 6, V = 9;
    double *x = ss_test_alloc_d(T * V), *g = ss_test_alloc_d(T * V);
    double w[9];
    int64_t y[6];
    ss_test_fill_normal_d(x, T * V, &rng);
    for (int k = 0; k < 9; k++) w[k] = 0.3 + ss_rng_uniform(&rng);
    random_targets(y, T, V, 0.3, &rng);
    y[0] = 4;
    const double eps_list[3] = {0.0, 0.1, 1.0};
    for (int e = 0; e < 3; e++)
        for (int wd = 0; wd < 2; wd++) {
            ce_ctx c = {y, T, V, eps_list[e], wd ? w : NULL};
            ss_direct_ce(x, y, T, V, c.eps, c.w, -100, NULL, g);
            SS_CHECK(ss_test_fd_max_err(ce_f, &c, x, g, T * V, 1e-5, 3) < 1e-6);
        }
    free(x), free(g);
}

/* float32 library vs direct double on random data. */
static void check_vs_direct(int64_t T, int64_t V, double eps, int weighted,
                            double p_ign, double scale, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *x = ss_test_alloc(T * V), *dx = ss_test_alloc(T * V);
    float *losses = ss_test_alloc(T), *w = ss_test_alloc(V), loss;
    double *xd = ss_test_alloc_d(T * V), *dd = ss_test_alloc_d(T * V);
    double *wd = ss_test_alloc_d(V), *ld = ss_test_alloc_d(T);
    int64_t *y = calloc((size_t)T, sizeof(int64_t));
    ss_test_fill_normal(x, T * V, &rng);
    for (int64_t i = 0; i < T * V; i++) x[i] *= (float)scale, xd[i] = x[i];
    for (int64_t c = 0; c < V; c++) w[c] = (float)ss_rng_uniform(&rng), wd[c] = w[c];
    random_targets(y, T, V, p_ign, &rng);
    ss_mlm_opts o = ss_mlm_defaults();
    o.label_smoothing = (float)eps;
    o.class_weights = weighted ? w : NULL;
    SS_CHECK_OK(run_mlm(&loss, losses, dx, 1.0f, x, y, T, V, &o));
    double want = ss_direct_ce(xd, y, T, V, eps, weighted ? wd : NULL, -100,
                               ld, dd);
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-5);
    SS_CHECK_CLOSE_FD(losses, ld, T, 1e-5, "losses");
    SS_CHECK_CLOSE_FD(dx, dd, T * V, 1e-5, "dlogits");
    free(x), free(dx), free(losses), free(w), free(xd), free(dd), free(wd);
    free(ld), free(y);
}

SS_TEST(float_vs_direct) {
    check_vs_direct(1, 1, 0.0, 0, 0.0, 1.0, 1);
    check_vs_direct(1, 5, 0.1, 1, 0.0, 1.0, 2);
    check_vs_direct(37, 1000, 0.1, 0, 0.3, 3.0, 3);
    check_vs_direct(20, 333, 0.2, 1, 0.5, 2.0, 4);
    check_vs_direct(8, 50, 0.0, 1, 0.0, 30.0, 5); /* large logits */
}

SS_TEST(large_logits_finite) {
    float x[6] = {1e4f, -1e4f, 3e4f, -3e4f, 0.0f, 2e4f}, dx[6] = {0}, loss;
    int64_t y[2] = {1, 2};
    ss_mlm_opts o = ss_mlm_defaults();
    o.label_smoothing = 0.1f;
    SS_CHECK_OK(run_mlm(&loss, NULL, dx, 1.0f, x, y, 2, 3, &o));
    SS_CHECK(isfinite(loss));
    for (int i = 0; i < 6; i++) SS_CHECK(isfinite(dx[i]));
}

SS_TEST(all_ignored_is_zero) {
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {7, 7, 7, 7, 7, 7}, loss = -1;
    float losses[2] = {5, 5}, w[3] = {0.0f, 1.0f, 1.0f};
    int64_t y[2] = {-100, -100};
    SS_CHECK_OK(run_mlm(&loss, losses, dx, 1.0f, x, y, 2, 3, NULL));
    SS_CHECK(loss == 0.0f && losses[0] == 0.0f && losses[1] == 0.0f);
    for (int i = 0; i < 6; i++) SS_CHECK(dx[i] == 7.0f);
    /* scored targets whose weights sum to 0: also 0, not NaN */
    int64_t y0[2] = {0, -100};
    ss_mlm_opts o = ss_mlm_defaults();
    o.class_weights = w;
    SS_CHECK_OK(run_mlm(&loss, NULL, dx, 1.0f, x, y0, 2, 3, &o));
    SS_CHECK(loss == 0.0f);
    for (int i = 0; i < 6; i++) SS_CHECK(dx[i] == 7.0f);
}

SS_TEST(custom_ignore_index) {
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {0}, loss, l2;
    int64_t y[2] = {2, 7}, y2[2] = {2, -100};
    ss_mlm_opts o = ss_mlm_defaults();
    o.ignore_index = 7;
    SS_CHECK_OK(run_mlm(&loss, NULL, dx, 1.0f, x, y, 2, 3, &o));
    SS_CHECK_OK(run_mlm(&l2, NULL, dx, 1.0f, x, y2, 2, 3, NULL));
    SS_CHECK(loss == l2);
    SS_CHECK_STATUS(run_mlm(&loss, NULL, dx, 1.0f, x, y2, 2, 3, &o),
                    SS_ERR_LABEL);
    /* an ignored row is never read */
    x[4] = NAN;
    SS_CHECK_OK(run_mlm(&l2, NULL, dx, 1.0f, x, y2, 2, 3, NULL));
    SS_CHECK(l2 == loss);
}

SS_TEST(accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    int64_t T = 7, V = 13, y[7];
    float x[91], d1[91] = {0}, d2[91], pre[91], loss;
    ss_test_fill_normal(x, T * V, &rng);
    ss_test_fill_normal(pre, T * V, &rng);
    memcpy(d2, pre, sizeof d2);
    random_targets(y, T, V, 0.3, &rng);
    y[0] = 3;
    ss_mlm_opts o = ss_mlm_defaults();
    o.label_smoothing = 0.1f;
    SS_CHECK_OK(run_mlm(&loss, NULL, d1, 1.0f, x, y, T, V, &o));
    SS_CHECK_OK(run_mlm(&loss, NULL, d2, -2.5f, x, y, T, V, &o));
    for (int i = 0; i < T * V; i++)
        SS_CHECK_NEAR(d2[i], pre[i] - 2.5f * d1[i], 1e-5);
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t T = 64, V = 257;
    float *x = ss_test_alloc(T * V), *d1 = ss_test_alloc(T * V);
    float *d2 = ss_test_alloc(T * V), l1, l2;
    int64_t *y = calloc((size_t)T, sizeof(int64_t));
    ss_test_fill_normal(x, T * V, &rng);
    random_targets(y, T, V, 0.2, &rng);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(run_mlm(&l1, NULL, d1, 1.0f, x, y, T, V, NULL));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(run_mlm(&l2, NULL, d2, 1.0f, x, y, T, V, NULL));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(l1 == l2);
    SS_CHECK(memcmp(d1, d2, sizeof(float) * (size_t)(T * V)) == 0);
    free(x), free(d1), free(d2), free(y);
}

SS_TEST(errors) {
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6] = {0}, loss, w[3] = {1, 1, 1};
    int64_t y[2] = {0, 2};
    char cache[256];
    ss_mlm_opts o = ss_mlm_defaults();
    SS_CHECK_STATUS(ss_mlm_forward(NULL, NULL, cache, x, y, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, NULL, x, y, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, NULL, y, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("logits must not be NULL");
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, NULL, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 0, 3, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, -1, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("V must be >= 1, got -1");
    o.label_smoothing = 1.5f;
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("label_smoothing must be in [0, 1], got 1.5");
    o.label_smoothing = NAN;
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, &o), SS_ERR_PARAM);
    o = ss_mlm_defaults();
    w[1] = -1.0f;
    o.class_weights = w;
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("class_weights[1] must be finite and >= 0, got -1");
    w[1] = INFINITY;
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, &o), SS_ERR_PARAM);
    int64_t bad[2] = {0, 3}, neg[2] = {-1, 0};
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, bad, 2, 3, NULL), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("targets[1] = 3");
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, neg, 2, 3, NULL), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("targets[0] = -1");
    x[4] = NAN;
    loss = 42.0f;
    SS_CHECK_STATUS(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("logits[4]");
    SS_CHECK(loss == 42.0f); /* nothing written on failure */
    x[4] = 5.0f;
    SS_CHECK_OK(ss_mlm_forward(&loss, NULL, cache, x, y, 2, 3, NULL));
    SS_CHECK_STATUS(ss_mlm_backward(NULL, 1.0f, cache, x, y, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mlm_backward(dx, 1.0f, NULL, x, y, 2, 3, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_mlm_backward(dx, NAN, cache, x, y, 2, 3, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss is nan");
    SS_CHECK_STATUS(ss_mlm_backward(dx, 1.0f, cache, x, bad, 2, 3, NULL), SS_ERR_LABEL);
    for (int i = 0; i < 6; i++) SS_CHECK(dx[i] == 0.0f);
}
