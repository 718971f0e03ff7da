/* test_ibot.c - iBOT masked-patch loss: PyTorch fixtures (lightly
 * IBOTPatchLoss and its centre update), finite differences on the direct
 * double path, awkward sizes, accumulation, threads, M = 0, bad inputs. */
#include "direct_distill.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)

static float run_ibot(float *losses, float *ds, float dloss, const float *t,
                      const float *s, const uint8_t *mask, const ss_center *c,
                      int64_t B, int64_t T, int64_t M, int64_t K,
                      const ss_ibot_opts *o) {
    float loss = NAN;
    void *cache = malloc(ss_ibot_cache_size(M, K));
    SS_CHECK_OK(ss_ibot_forward(&loss, losses, cache, t, s, mask, c, B, T, M, K, o));
    SS_CHECK_OK(ss_ibot_backward(ds, dloss, cache, t, s, mask, c, B, T, M, K, o));
    free(cache);
    return loss;
}

SS_TEST(defaults) {
    ss_ibot_opts o = ss_ibot_defaults();
    SS_CHECK(o.teacher_temp == 0.04f && o.student_temp == 0.1f);
    SS_CHECK(o.center_momentum == 0.9f);
    SS_CHECK(ss_ibot_cache_size(0, 3) > 0);
    SS_CHECK(ss_ibot_cache_size(-1, 3) == 0);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("ibot.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 3);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
        int64_t B = fx_int(fx, KEY("B")), T = fx_int(fx, KEY("T"));
        int64_t M = fx_int(fx, KEY("M")), K = fx_int(fx, KEY("K")), n;
        ss_ibot_opts o = ss_ibot_defaults();
        o.teacher_temp = (float)fx_scalar(fx, KEY("teacher_temp"));
        o.student_temp = (float)fx_scalar(fx, KEY("student_temp"));
        const int64_t *m64 = fx_i64(fx, KEY("mask"), &n);
        float *t = fx_f32_copy(fx, KEY("teacher"), &n);
        float *s = fx_f32_copy(fx, KEY("student"), &n);
        float *cen = fx_f32_copy(fx, KEY("center"), &n);
        const double *wl = fx_f64(fx, KEY("losses"), &n);
        const double *wds = fx_f64(fx, KEY("dstudent"), &n);
        const double *wnext = fx_f64(fx, KEY("center_next"), &n);
        SS_CHECK(m64 && t && s && cen && wl && wds && wnext);
        if (!m64 || !t || !s || !cen || !wl || !wds || !wnext) continue;
        uint8_t *mask = malloc((size_t)(B * T));
        for (int64_t i = 0; i < B * T; i++) mask[i] = (uint8_t)m64[i];
        ss_center *ctr = NULL;
        SS_CHECK_OK(ss_center_create(&ctr, K));
        SS_CHECK_OK(ss_center_set(ctr, cen));
        float *losses = ss_test_alloc(M), *ds = ss_test_alloc(M * K);
        float loss = run_ibot(losses, ds, 1.0f, t, s, mask, ctr, B, T, M, K, &o);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK(ss_dd_err(losses, wl, M) <= 1e-4);
        SS_CHECK(ss_dd_err(ds, wds, M * K) <= 1e-4);
        const double *t64 = fx_f64(fx, KEY("teacher"), &n);
        const double *s64 = fx_f64(fx, KEY("student"), &n);
        const double *c64 = fx_f64(fx, KEY("center"), &n);
        double *dd = ss_test_alloc_d(M * K);
        double l64 = ss_direct_ibot(t64, s64, mask, c64,
                                    fx_scalar(fx, KEY("teacher_temp")),
                                    fx_scalar(fx, KEY("student_temp")), B, T,
                                    M, K, dd);
        SS_CHECK_NEAR(l64, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dd, wds, M * K) <= 1e-10);
        SS_CHECK_OK(ss_center_accumulate(ctr, t, M));
        SS_CHECK_OK(ss_center_update(ctr, o.center_momentum));
        SS_CHECK(ss_dd_err(ss_center_data(ctr), wnext, K) <= 1e-5);
        ss_center_free(ctr);
        free(mask), free(t), free(s), free(cen), free(losses), free(ds), free(dd);
    }
    fx_free(fx);
}

typedef struct {
    const double *t, *c;
    const uint8_t *mask;
    int64_t B, T, M, K;
} fd_ctx;

static double fd_loss(const double *s, void *p) {
    fd_ctx *x = p;
    return ss_direct_ibot(x->t, s, x->mask, x->c, 0.04, 0.1, x->B, x->T, x->M,
                          x->K, NULL);
}

/* Random mask with every image's count in [0, T]; returns M. */
static int64_t random_mask(uint8_t *mask, int64_t B, int64_t T, ss_rng *rng) {
    int64_t M = 0;
    for (int64_t i = 0; i < B * T; i++) M += mask[i] = ss_rng_uniform(rng) < 0.4;
    return M;
}

SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 31);
    int64_t B = 3, T = 5, K = 6;
    uint8_t mask[15];
    random_mask(mask, B, T, &rng);
    mask[0] = 1; /* at least one masked token */
    int64_t M = 0;
    for (int i = 0; i < 15; i++) M += mask[i];
    double *t = ss_test_alloc_d(M * K), *s = ss_test_alloc_d(M * K);
    double *c = ss_test_alloc_d(K), *ds = ss_test_alloc_d(M * K);
    ss_test_fill_normal_d(t, M * K, &rng);
    ss_test_fill_normal_d(s, M * K, &rng);
    ss_test_fill_normal_d(c, K, &rng);
    for (int64_t j = 0; j < M * K; j++) s[j] *= 0.1, t[j] *= 0.05;
    fd_ctx x = {t, c, mask, B, T, M, K};
    ss_direct_ibot(t, s, mask, c, 0.04, 0.1, B, T, M, K, ds);
    double e = ss_test_fd_max_err(fd_loss, &x, s, ds, M * K, 1e-5, 3);
    if (!(e < 1e-6)) fprintf(stderr, "ibot fd: %.3g\n", e);
    SS_CHECK(e < 1e-6);
    free(t), free(s), free(c), free(ds);
}

static void vs_direct(int64_t B, int64_t T, int64_t K, double scale,
                      uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    uint8_t *mask = malloc((size_t)(B * T));
    int64_t M = random_mask(mask, B, T, &rng);
    float *t = ss_test_alloc(M * K + 1), *s = ss_test_alloc(M * K + 1);
    float *cen = ss_test_alloc(K), *ds = ss_test_alloc(M * K + 1);
    float *pre = ss_test_alloc(M * K + 1);
    ss_test_fill_normal(t, M * K, &rng);
    ss_test_fill_normal(s, M * K, &rng);
    ss_test_fill_normal(cen, K, &rng);
    ss_test_fill_normal(pre, M * K, &rng);
    for (int64_t i = 0; i < M * K; i++) t[i] *= (float)scale, s[i] *= (float)scale;
    memcpy(ds, pre, sizeof(float) * (size_t)(M * K));
    ss_center *ctr = NULL;
    SS_CHECK_OK(ss_center_create(&ctr, K));
    SS_CHECK_OK(ss_center_set(ctr, cen));
    float dloss = -1.5f;
    float loss = run_ibot(NULL, ds, dloss, t, s, mask, ctr, B, T, M, K, NULL);
    double *td = ss_dd_from_f(t, M * K), *sd = ss_dd_from_f(s, M * K);
    double *cd = ss_dd_from_f(cen, K), *dd = ss_test_alloc_d(M * K + 1);
    double want = ss_direct_ibot(td, sd, mask, cd, (double)0.04f, (double)0.1f,
                                 B, T, M, K, dd);
    for (int64_t i = 0; i < M * K; i++) dd[i] = dd[i] * dloss + pre[i];
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-5);
    SS_CHECK(ss_dd_err(ds, dd, M * K) <= 1e-5);
    ss_center_free(ctr);
    free(mask), free(t), free(s), free(cen), free(ds), free(pre), free(td);
    free(sd), free(cd), free(dd);
}

SS_TEST(vs_direct_awkward_sizes_and_accumulation) {
    vs_direct(1, 1, 1, 1.0, 1);
    vs_direct(2, 3, 1, 1.0, 2);
    vs_direct(3, 7, 5, 1.0, 3);
    vs_direct(2, 9, 1000, 1.0, 4);
    vs_direct(5, 16, 65, 30.0, 5);
}

SS_TEST(no_masked_tokens) {
    uint8_t mask[6] = {0};
    float t[1] = {0}, s[1] = {0}, ds[1] = {7}, loss = NAN;
    double cache[8];
    ss_center *ctr = NULL;
    SS_CHECK_OK(ss_center_create(&ctr, 4));
    SS_CHECK_OK(ss_ibot_forward(&loss, NULL, cache, t, s, mask, ctr, 2, 3, 0, 4, NULL));
    SS_CHECK(loss == 0.0f);
    SS_CHECK_OK(ss_ibot_backward(ds, 1.0f, cache, t, s, mask, ctr, 2, 3, 0, 4, NULL));
    SS_CHECK(ds[0] == 7.0f);
    ss_center_free(ctr);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t B = 8, T = 100, K = 97; /* M K above SS__PAR_MIN */
    uint8_t *mask = malloc((size_t)(B * T));
    int64_t M = random_mask(mask, B, T, &rng);
    float *t = ss_test_alloc(M * K), *s = ss_test_alloc(M * K);
    float *d1 = ss_test_alloc(M * K), *d2 = ss_test_alloc(M * K);
    ss_test_fill_normal(t, M * K, &rng);
    ss_test_fill_normal(s, M * K, &rng);
    ss_center *ctr = NULL;
    SS_CHECK_OK(ss_center_create(&ctr, K));
    SS_CHECK_OK(ss_set_num_threads(1));
    float l1 = run_ibot(NULL, d1, 1.0f, t, s, mask, ctr, B, T, M, K, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    float l2 = run_ibot(NULL, d2, 1.0f, t, s, mask, ctr, B, T, M, K, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(l1 == l2);
    SS_CHECK(memcmp(d1, d2, sizeof(float) * (size_t)(M * K)) == 0);
    ss_center_free(ctr);
    free(mask), free(t), free(s), free(d1), free(d2);
}

SS_TEST(bad_inputs) {
    int64_t B = 2, T = 3, M = 3, K = 4;
    uint8_t mask[6] = {1, 0, 1, 0, 1, 0};
    float t[12] = {0}, s[12] = {0}, ds[12] = {0}, loss = 0;
    double cache[64];
    ss_center *c = NULL, *c5 = NULL;
    SS_CHECK_OK(ss_center_create(&c, K));
    SS_CHECK_OK(ss_center_create(&c5, 5));
    ss_ibot_opts o = ss_ibot_defaults();
    SS_CHECK(ss_ibot_cache_size(M, K) <= sizeof cache);
    SS_CHECK_STATUS(ss_ibot_forward(NULL, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, NULL, t, s, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, NULL, s, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, NULL, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, NULL, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("mask");
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, NULL, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, 0, T, M, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, 0, M, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, -1, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, 0, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, 2, K, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("M = 2 but the mask has 3");
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c5, B, T, M, K, &o), SS_ERR_SIZE);
    mask[3] = 2;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("mask[3] = 2");
    mask[3] = 0;
    o.teacher_temp = 0;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("teacher_temp");
    o = ss_ibot_defaults(), o.student_temp = INFINITY;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_PARAM);
    o = ss_ibot_defaults(), o.center_momentum = -1;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_PARAM);
    o = ss_ibot_defaults();
    t[11] = NAN;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("teacher[11]");
    t[11] = 0, s[0] = -INFINITY;
    SS_CHECK_STATUS(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("student[0]");
    s[0] = 0;
    SS_CHECK(loss == 0);
    SS_CHECK_OK(ss_ibot_forward(&loss, NULL, cache, t, s, mask, c, B, T, M, K, &o));
    SS_CHECK_STATUS(ss_ibot_backward(NULL, 1, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_backward(ds, 1, NULL, t, s, mask, c, B, T, M, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ibot_backward(ds, NAN, cache, t, s, mask, c, B, T, M, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_STATUS(ss_ibot_backward(ds, 1, cache, t, s, mask, c, B, T, 4, K, &o), SS_ERR_SIZE);
    for (int i = 0; i < 12; i++) SS_CHECK(ds[i] == 0);
    ss_center_free(c), ss_center_free(c5);
}
