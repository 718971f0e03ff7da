/* test_dino.c - DINO and the teacher centre: PyTorch fixtures (lightly
 * DINOLoss, centre EMA, warm-up schedule), finite differences on the direct
 * double path, awkward sizes, accumulation, threads, centre save/load and
 * corrupt files, and every bad input. */
#include "direct_distill.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)

static ss_center *center_of(const float *values, int64_t K) {
    ss_center *c = NULL;
    SS_CHECK_OK(ss_center_create(&c, K));
    if (c && values) SS_CHECK_OK(ss_center_set(c, values));
    return c;
}

/* Forward + backward with dloss onto dstudent as given. */
static float run_dino(float *losses, float *ds, float dloss, const float *t,
                      const float *s, const ss_center *c, float tt, int64_t G,
                      int64_t V, int64_t N, int64_t K, const ss_dino_opts *o) {
    float loss = NAN;
    void *cache = malloc(ss_dino_cache_size(G, V, N, K));
    SS_CHECK_OK(ss_dino_forward(&loss, losses, cache, t, s, c, tt, G, V, N, K, o));
    SS_CHECK_OK(ss_dino_backward(ds, dloss, cache, t, s, c, tt, G, V, N, K, o));
    free(cache);
    return loss;
}

SS_TEST(defaults_and_schedule) {
    ss_dino_opts o = ss_dino_defaults();
    SS_CHECK(o.student_temp == 0.1f && o.teacher_temp == 0.04f);
    SS_CHECK(o.warmup_teacher_temp == 0.04f && o.warmup_teacher_temp_epochs == 30);
    SS_CHECK(o.center_momentum == 0.9f);
    ss_fixture *fx = fx_load("dino.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ns = fx_int(fx, "nsched");
    SS_CHECK(ns >= 3);
    for (int64_t c = 0; c < ns; c++) {
        char key[64];
        snprintf(key, sizeof key, "s%lld_", (long long)c);
#define SKEY(f) (snprintf(key, sizeof key, "s%lld_" f, (long long)c), key)
        o.warmup_teacher_temp = (float)fx_scalar(fx, SKEY("warmup"));
        o.teacher_temp = (float)fx_scalar(fx, SKEY("final"));
        o.warmup_teacher_temp_epochs = fx_int(fx, SKEY("epochs"));
        int64_t n;
        const double *want = fx_f64(fx, SKEY("values"), &n);
        SS_CHECK(want != NULL);
        for (int64_t e = 0; want && e < n; e++) {
            float t = 0;
            SS_CHECK_OK(ss_dino_teacher_temp(&t, e, &o));
            SS_CHECK_NEAR(t, want[e], 1e-6);
        }
#undef SKEY
    }
    fx_free(fx);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("dino.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
        int64_t G = fx_int(fx, KEY("G")), V = fx_int(fx, KEY("V"));
        int64_t N = fx_int(fx, KEY("N")), K = fx_int(fx, KEY("K")), n;
        double tt = fx_scalar(fx, KEY("teacher_temp"));
        ss_dino_opts o = ss_dino_defaults();
        o.student_temp = (float)fx_scalar(fx, KEY("student_temp"));
        float *t = fx_f32_copy(fx, KEY("teacher"), &n);
        float *s = fx_f32_copy(fx, KEY("student"), &n);
        float *cen = fx_f32_copy(fx, KEY("center"), &n);
        const double *wl = fx_f64(fx, KEY("losses"), &n);
        const double *wds = fx_f64(fx, KEY("dstudent"), &n);
        const double *wnext = fx_f64(fx, KEY("center_next"), &n);
        SS_CHECK(t && s && cen && wl && wds && wnext);
        if (!t || !s || !cen || !wl || !wds || !wnext) continue;
        ss_center *ctr = center_of(cen, K);
        float *losses = ss_test_alloc(N), *ds = ss_test_alloc(V * N * K);
        float loss = run_dino(losses, ds, 1.0f, t, s, ctr, (float)tt, G, V, N,
                              K, &o);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK(ss_dd_err(losses, wl, N) <= 1e-4);
        SS_CHECK(ss_dd_err(ds, wds, V * N * K) <= 1e-4);
        /* the direct double path agrees with PyTorch to double precision */
        const double *t64 = fx_f64(fx, KEY("teacher"), &n);
        const double *s64 = fx_f64(fx, KEY("student"), &n);
        const double *c64 = fx_f64(fx, KEY("center"), &n);
        double *dd = ss_test_alloc_d(V * N * K);
        double l64 = ss_direct_dino(t64, s64, c64, tt,
                                    fx_scalar(fx, KEY("student_temp")), G, V,
                                    N, K, dd);
        SS_CHECK_NEAR(l64, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dd, wds, V * N * K) <= 1e-10);
        /* centre EMA as lightly: one batch, momentum */
        SS_CHECK_OK(ss_center_accumulate(ctr, t, G * N));
        SS_CHECK_OK(ss_center_update(ctr, (float)fx_scalar(fx, KEY("momentum"))));
        SS_CHECK(ss_dd_err(ss_center_data(ctr), wnext, K) <= 1e-5);
        ss_center_free(ctr);
        free(t), free(s), free(cen), free(losses), free(ds), free(dd);
    }
    fx_free(fx);
}

/* ---- finite differences on the direct double path ------------------------ */

typedef struct {
    const double *t, *c;
    double tt, ts;
    int64_t G, V, N, K;
} fd_ctx;

static double fd_loss(const double *s, void *p) {
    fd_ctx *x = p;
    return ss_direct_dino(x->t, s, x->c, x->tt, x->ts, x->G, x->V, x->N, x->K,
                          NULL);
}

SS_TEST(direct_finite_differences) {
    int64_t cases[][4] = {{2, 2, 3, 5}, {2, 5, 2, 4}, {1, 3, 2, 3}, {3, 2, 2, 6}};
    for (int i = 0; i < 4; i++) {
        ss_rng rng;
        ss_rng_seed(&rng, 100 + i);
        int64_t G = cases[i][0], V = cases[i][1], N = cases[i][2], K = cases[i][3];
        double *t = ss_test_alloc_d(G * N * K), *s = ss_test_alloc_d(V * N * K);
        double *c = ss_test_alloc_d(K), *ds = ss_test_alloc_d(V * N * K);
        ss_test_fill_normal_d(t, G * N * K, &rng);
        ss_test_fill_normal_d(s, V * N * K, &rng);
        ss_test_fill_normal_d(c, K, &rng);
        /* moderate logits: saturated softmax components are ~1e-9 and a
         * relative probe of them measures only rounding */
        for (int64_t j = 0; j < V * N * K; j++) s[j] *= 0.1;
        for (int64_t j = 0; j < G * N * K; j++) t[j] *= 0.1;
        fd_ctx x = {t, c, 0.07, 0.1, G, V, N, K};
        ss_direct_dino(t, s, c, x.tt, x.ts, G, V, N, K, ds);
        double e = ss_test_fd_max_err(fd_loss, &x, s, ds, V * N * K, 1e-5, 7 + i);
        if (!(e < 1e-6)) fprintf(stderr, "dino fd case %d: %.3g\n", i, e);
        SS_CHECK(e < 1e-6);
        free(t), free(s), free(c), free(ds);
    }
}

/* ---- library vs direct: awkward sizes, accumulation, threads --------------- */

static void vs_direct(int64_t G, int64_t V, int64_t N, int64_t K, double scale,
                      uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *t = ss_test_alloc(G * N * K), *s = ss_test_alloc(V * N * K);
    float *cen = ss_test_alloc(K), *ds = ss_test_alloc(V * N * K);
    float *pre = ss_test_alloc(V * N * K);
    ss_test_fill_normal(t, G * N * K, &rng);
    ss_test_fill_normal(s, V * N * K, &rng);
    ss_test_fill_normal(cen, K, &rng);
    for (int64_t i = 0; i < G * N * K; i++) t[i] *= (float)scale;
    for (int64_t i = 0; i < V * N * K; i++) s[i] *= (float)scale;
    ss_test_fill_normal(pre, V * N * K, &rng);
    memcpy(ds, pre, sizeof(float) * (size_t)(V * N * K));
    ss_center *ctr = center_of(cen, K);
    ss_dino_opts o = ss_dino_defaults();
    float dloss = 0.75f;
    float loss = run_dino(NULL, ds, dloss, t, s, ctr, 0.04f, G, V, N, K, &o);
    double *td = ss_dd_from_f(t, G * N * K), *sd = ss_dd_from_f(s, V * N * K);
    double *cd = ss_dd_from_f(cen, K), *dd = ss_test_alloc_d(V * N * K);
    double want = ss_direct_dino(td, sd, cd, (double)0.04f, (double)0.1f, G, V,
                                 N, K, dd);
    for (int64_t i = 0; i < V * N * K; i++) dd[i] = dd[i] * dloss + pre[i];
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-5);
    double e = ss_dd_err(ds, dd, V * N * K);
    if (!(e <= 1e-5)) fprintf(stderr, "dino G=%lld V=%lld N=%lld K=%lld: %.3g\n",
                              (long long)G, (long long)V, (long long)N, (long long)K, e);
    SS_CHECK(e <= 1e-5);
    ss_center_free(ctr);
    free(t), free(s), free(cen), free(ds), free(pre), free(td), free(sd), free(cd), free(dd);
}

SS_TEST(vs_direct_awkward_sizes_and_accumulation) {
    vs_direct(1, 2, 1, 1, 1.0, 1);
    vs_direct(2, 2, 1, 3, 1.0, 2);
    vs_direct(2, 10, 3, 7, 1.0, 3);
    vs_direct(2, 3, 2, 1000, 1.0, 4);
    vs_direct(4, 2, 5, 33, 1.0, 5);
    vs_direct(2, 4, 3, 65, 40.0, 6); /* logits / 0.04 ~ 1e3: no overflow */
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    int64_t G = 2, V = 6, N = 37, K = 129;
    float *t = ss_test_alloc(G * N * K), *s = ss_test_alloc(V * N * K);
    float *d1 = ss_test_alloc(V * N * K), *d2 = ss_test_alloc(V * N * K);
    ss_test_fill_normal(t, G * N * K, &rng);
    ss_test_fill_normal(s, V * N * K, &rng);
    ss_center *ctr = center_of(NULL, K);
    SS_CHECK_OK(ss_set_num_threads(1));
    float l1 = run_dino(NULL, d1, 1.0f, t, s, ctr, 0.04f, G, V, N, K, NULL);
    SS_CHECK_OK(ss_set_num_threads(2));
    float l2 = run_dino(NULL, d2, 1.0f, t, s, ctr, 0.04f, G, V, N, K, NULL);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(l1 == l2);
    SS_CHECK(memcmp(d1, d2, sizeof(float) * (size_t)(V * N * K)) == 0);
    ss_center_free(ctr);
    free(t), free(s), free(d1), free(d2);
}

/* ---- centre state ------------------------------------------------------------ */

SS_TEST(center_accumulate_and_update) {
    int64_t K = 5;
    float x[4 * 5], cen[5];
    for (int i = 0; i < 20; i++) x[i] = (float)(i % 7) - 2.5f;
    for (int k = 0; k < 5; k++) cen[k] = 0.1f * (float)k;
    ss_center *a = center_of(cen, K), *b = center_of(cen, K);
    /* two micro-batches of 1 and 3 rows == one batch of 4 rows */
    SS_CHECK_OK(ss_center_accumulate(a, x, 1));
    SS_CHECK_OK(ss_center_accumulate(a, x + 5, 3));
    SS_CHECK_INT(ss_center_pending(a), 4);
    SS_CHECK_OK(ss_center_update(a, 0.9f));
    SS_CHECK_INT(ss_center_pending(a), 0);
    SS_CHECK_OK(ss_center_accumulate(b, x, 4));
    SS_CHECK_OK(ss_center_update(b, 0.9f));
    for (int k = 0; k < 5; k++) {
        double mean = 0;
        for (int r = 0; r < 4; r++) mean += x[r * 5 + k] / 4.0;
        SS_CHECK_NEAR(ss_center_data(a)[k], 0.9 * cen[k] + 0.1 * mean, 1e-6);
        SS_CHECK(ss_center_data(a)[k] == ss_center_data(b)[k]);
    }
    /* no pending rows: update is a no-op */
    float before = ss_center_data(a)[2];
    SS_CHECK_OK(ss_center_update(a, 0.5f));
    SS_CHECK(ss_center_data(a)[2] == before);
    SS_CHECK_INT(ss_center_dim(a), 5);
    ss_center_free(a), ss_center_free(b);
    ss_center_free(NULL);
}

SS_TEST(center_save_load_and_corrupt_files) {
    char path[] = "/tmp/ss_center_XXXXXX";
    int fd = mkstemp(path);
    SS_CHECK(fd >= 0);
    close(fd);
    int64_t K = 6;
    float cen[6] = {1, -2, 3.5f, 0, 1e-3f, -7}, x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i * 0.25f;
    ss_center *a = center_of(cen, K), *b = NULL;
    SS_CHECK_OK(ss_center_accumulate(a, x, 2)); /* pending state survives */
    SS_CHECK_OK(ss_center_save(a, path));
    SS_CHECK_OK(ss_center_load(&b, path));
    SS_CHECK(b != NULL);
    if (b) {
        SS_CHECK_INT(ss_center_dim(b), K);
        SS_CHECK_INT(ss_center_pending(b), 2);
        SS_CHECK(memcmp(ss_center_data(a), ss_center_data(b), sizeof cen) == 0);
        SS_CHECK_OK(ss_center_update(a, 0.9f));
        SS_CHECK_OK(ss_center_update(b, 0.9f));
        SS_CHECK(memcmp(ss_center_data(a), ss_center_data(b), sizeof cen) == 0);
    }
    ss_center_free(b);
    b = NULL;
    size_t n;
    unsigned char *good = ss_dd_read_file(path, &n);
    SS_CHECK(good && n == 16 + 16 + 6 * 4 + 6 * 8);
    unsigned char *bad = malloc(n + 8);
    /* bad magic */
    memcpy(bad, good, n), bad[0] = 'X';
    ss_dd_write_file(path, bad, n);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 0");
    /* bad version */
    memcpy(bad, good, n), bad[8] = 9;
    ss_dd_write_file(path, bad, n);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 8");
    /* K = 0 */
    memcpy(bad, good, n), memset(bad + 16, 0, 8);
    ss_dd_write_file(path, bad, n);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 16");
    /* huge K: rejected before any allocation */
    memcpy(bad, good, n);
    int64_t hugeK = (int64_t)1 << 35;
    memcpy(bad + 16, &hugeK, 8);
    ss_dd_write_file(path, bad, n);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("truncated");
    /* truncated inside the centre */
    ss_dd_write_file(path, good, 32 + 10);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("truncated");
    /* non-finite centre value */
    memcpy(bad, good, n);
    float inf = INFINITY;
    memcpy(bad + 32 + 8, &inf, 4);
    ss_dd_write_file(path, bad, n);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 40");
    /* trailing bytes */
    memcpy(bad, good, n), memset(bad + n, 0, 8);
    ss_dd_write_file(path, bad, n + 3);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("after the payload");
    SS_CHECK(b == NULL);
    unlink(path);
    SS_CHECK_STATUS(ss_center_load(&b, path), SS_ERR_IO);
    SS_CHECK_STATUS(ss_center_save(a, "/nonexistent-dir/x/center.bin"), SS_ERR_IO);
    free(good), free(bad);
    ss_center_free(a);
}

/* ---- bad inputs -------------------------------------------------------------- */

SS_TEST(bad_inputs) {
    int64_t G = 2, V = 3, N = 2, K = 4;
    float t[2 * 2 * 4] = {0}, s[3 * 2 * 4] = {0}, ds[3 * 2 * 4] = {0}, loss = 0;
    double cache[64];
    ss_center *c = center_of(NULL, K), *c5 = center_of(NULL, 5), *out = NULL;
    ss_dino_opts o = ss_dino_defaults();
    SS_CHECK(ss_dino_cache_size(G, V, N, K) <= sizeof cache);
    SS_CHECK(ss_dino_cache_size(0, V, N, K) == 0);
    SS_CHECK_STATUS(ss_dino_forward(NULL, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, NULL, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, NULL, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("teacher");
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, NULL, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, NULL, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, 0, V, N, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, 0, N, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, 0, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, 1, 1, N, K, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("G = 1, V = 1");
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c5, 0.04f, G, V, N, K, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("centre dimension 5");
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.0f, G, V, N, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("teacher_temp");
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, NAN, G, V, N, K, &o), SS_ERR_PARAM);
    o.student_temp = -1;
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("student_temp");
    o = ss_dino_defaults();
    o.center_momentum = 1.5f;
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_PARAM);
    o = ss_dino_defaults();
    t[5] = NAN;
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("teacher[5]");
    t[5] = 0, s[7] = INFINITY;
    SS_CHECK_STATUS(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("student[7]");
    s[7] = 0;
    SS_CHECK(loss == 0);
    SS_CHECK_OK(ss_dino_forward(&loss, NULL, cache, t, s, c, 0.04f, G, V, N, K, &o));
    SS_CHECK_STATUS(ss_dino_backward(NULL, 1, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_backward(ds, 1, NULL, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_backward(ds, NAN, cache, t, s, c, 0.04f, G, V, N, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_STATUS(ss_dino_backward(ds, 1, cache, t, s, c5, 0.04f, G, V, N, K, &o), SS_ERR_SIZE);
    for (int i = 0; i < 24; i++) SS_CHECK(ds[i] == 0);
    /* schedule */
    float temp = 0;
    SS_CHECK_STATUS(ss_dino_teacher_temp(NULL, 0, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dino_teacher_temp(&temp, -1, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("epoch must be >= 0, got -1");
    o.warmup_teacher_temp_epochs = -2;
    SS_CHECK_STATUS(ss_dino_teacher_temp(&temp, 0, &o), SS_ERR_PARAM);
    o = ss_dino_defaults(), o.warmup_teacher_temp = 0;
    SS_CHECK_STATUS(ss_dino_teacher_temp(&temp, 0, &o), SS_ERR_PARAM);
    SS_CHECK_OK(ss_dino_teacher_temp(&temp, 100, NULL));
    SS_CHECK(temp == 0.04f);
    /* centre */
    SS_CHECK_STATUS(ss_center_create(NULL, 3), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_create(&out, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_center_set(c, NULL), SS_ERR_NULL);
    float vals[4] = {0, 0, NAN, 0};
    SS_CHECK_STATUS(ss_center_set(c, vals), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("values[2]");
    SS_CHECK_STATUS(ss_center_accumulate(c, NULL, 1), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_accumulate(c, t, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_center_accumulate(c, vals, 1), SS_ERR_NONFINITE);
    SS_CHECK_INT(ss_center_pending(c), 0);
    SS_CHECK_STATUS(ss_center_update(c, -0.1f), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("momentum must be in [0, 1], got -0.1");
    SS_CHECK_STATUS(ss_center_update(NULL, 0.9f), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_save(NULL, "/tmp/x"), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_save(c, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_load(NULL, "/tmp/x"), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_center_load(&out, NULL), SS_ERR_NULL);
    ss_center_free(c), ss_center_free(c5);
}
