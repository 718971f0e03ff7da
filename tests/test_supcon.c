/* test_supcon.c - SupCon: PyTorch (pytorch-metric-learning) fixtures, the
 * direct double reference (tests/direct_contrast.c) checked by finite
 * differences, tiled vs direct at awkward sizes, anchors without positives,
 * accumulation, thread-count independence and every bad input. */
#include "direct_contrast.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/contrast.h"

#include <stdlib.h>
#include <string.h>

/* Row groups of the direct reference: a label, or a unique id per
 * unlabeled sample (negative, so it never meets a real label). */
static void row_groups(int64_t *g, const int64_t *labels, int64_t V,
                       int64_t N) {
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++)
            g[v * N + n] = labels[n] >= 0 ? labels[n] : -2 - n;
}

typedef struct {
    float loss, *losses, *dz;
    void *cache;
} supcon_out;

static void run_supcon(supcon_out *out, const float *z, const int64_t *labels,
                       int64_t V, int64_t N, int64_t D, const ss_supcon_opts *o,
                       float dloss) {
    out->losses = ss_test_alloc(V * N);
    out->dz = ss_test_alloc(V * N * D);
    out->cache = malloc(ss_supcon_cache_size(V, N, D));
    SS_CHECK_OK(ss_supcon_forward(&out->loss, out->losses, out->cache, z,
                                  labels, V, N, D, o));
    SS_CHECK_OK(
        ss_supcon_backward(out->dz, dloss, out->cache, z, labels, V, N, D, o));
}

static void free_out(supcon_out *out) {
    free(out->losses), free(out->dz), free(out->cache);
}

/* The direct reference on float inputs: loss, losses (V*N), dz (V*N*D). */
static double direct(const float *z, const int64_t *labels, int64_t V,
                     int64_t N, int64_t D, const ss_supcon_opts *o,
                     double *losses, double *dz) {
    int64_t M = V * N;
    double *zd = ss_test_alloc_d(M * D);
    int64_t *g = malloc((size_t)M * sizeof(int64_t));
    for (int64_t i = 0; i < M * D; i++) zd[i] = z[i];
    row_groups(g, labels, V, N);
    ss_direct_gc p = {M, D, g, o->temperature, o->cosine, 0, NULL, 0, 0, 0};
    double loss = ss_direct_gc_loss(zd, &p, losses, dz);
    free(zd), free(g);
    return loss;
}

SS_TEST(defaults) {
    ss_supcon_opts o = ss_supcon_defaults();
    SS_CHECK(o.temperature == 0.1f && o.cosine == 1);
    SS_CHECK_INT(ss_supcon_cache_size(3, 5, 7), 64 + 15 * sizeof(float));
}

SS_TEST(pytorch_fixture) {
    ss_fixture *fx = fx_load("supcon.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 1);
    for (int64_t k = 0; k < ncases; k++) {
        char name[64];
#define FX(what)                                                               \
    (snprintf(name, sizeof name, "c%lld_%s", (long long)k, what), name)
        int64_t V = fx_int(fx, FX("V")), N = fx_int(fx, FX("N")),
                D = fx_int(fx, FX("D"));
        ss_supcon_opts o = ss_supcon_defaults();
        o.temperature = (float)fx_scalar(fx, FX("temperature"));
        o.cosine = (int)fx_int(fx, FX("cosine"));
        int64_t nz, nl;
        float *z = fx_f32_copy(fx, FX("z"), &nz);
        const int64_t *labels = fx_i64(fx, FX("labels"), &nl);
        const double *losses = fx_f64(fx, FX("losses"), NULL);
        const double *dz = fx_f64(fx, FX("dz"), NULL);
        SS_CHECK(z && labels && losses && dz && nz == V * N * D && nl == N);
        if (!z || !labels || !losses || !dz) break;
        supcon_out out;
        run_supcon(&out, z, labels, V, N, D, &o, 1.0f);
        double want = fx_scalar(fx, FX("loss"));
        SS_CHECK(fabs(out.loss - want) <= 1e-4 * fmax(fabs(want), 1e-3));
        SS_CHECK_CLOSE_FD(out.losses, losses, V * N, 1e-4, "per-anchor losses");
        SS_CHECK_CLOSE_FD(out.dz, dz, V * N * D, 1e-4, "dz");
        free_out(&out);
        free(z);
#undef FX
    }
    fx_free(fx);
}

typedef struct {
    ss_direct_gc p;
} fd_ctx;

static double direct_loss_fn(const double *z, void *ctx) {
    return ss_direct_gc_loss(z, &((fd_ctx *)ctx)->p, NULL, NULL);
}

/* The direct reference's gradient (SupCon form) against central
 * differences, with classes, unlabeled samples and positive-less anchors. */
SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 21);
    const int64_t labels[] = {4, -1, 4, 9, -1, 1 << 30};
    const struct {
        int64_t V, N, D;
        int cosine;
    } cs[] = {{2, 6, 3, 1}, {1, 6, 4, 1}, {3, 4, 2, 0}, {1, 5, 5, 0}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int64_t V = cs[c].V, N = cs[c].N, D = cs[c].D, M = V * N, n = M * D;
        int64_t *g = malloc((size_t)M * sizeof(int64_t));
        row_groups(g, labels, V, N);
        fd_ctx ctx = {{M, D, g, cs[c].cosine ? 0.1 : 0.5, cs[c].cosine, 0, NULL,
                       0, 0, 0}};
        double *z = ss_test_alloc_d(n), *grad = ss_test_alloc_d(n);
        ss_test_fill_normal_d(z, n, &rng);
        ss_direct_gc_loss(z, &ctx.p, NULL, grad);
        SS_CHECK(ss_test_fd_max_err(direct_loss_fn, &ctx, z, grad, n, 1e-6,
                                    7 + c) < 1e-6);
        free(z), free(grad), free(g);
    }
}

/* Random labels in [-1, nclass). */
static void random_labels(int64_t *labels, int64_t N, int64_t nclass,
                          ss_rng *rng) {
    for (int64_t n = 0; n < N; n++)
        labels[n] = (int64_t)(ss_rng_uniform(rng) * (double)(nclass + 1)) - 1;
}

/* dz against the direct gradient. With D = 1 and cosine the exact gradient
 * is 0 (normalising a scalar gives its sign), so there an absolute bound
 * replaces the relative one. */
static void check_grad(const float *got, const double *want, int64_t n) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    if (mx > 1e-8) {
        SS_CHECK_CLOSE_FD(got, want, n, 1e-4, "dz");
    } else {
        for (int64_t i = 0; i < n; i++) SS_CHECK(fabs(got[i]) < 1e-4);
    }
}

/* Tiled float path vs direct double path; M = V * N around the engine tile. */
SS_TEST(tiled_matches_direct) {
    const int64_t T = SS__GC_TILE;
    const struct {
        int64_t V, N, D, nclass;
        int cosine;
    } cs[] = {{1, 1, 3, 2, 1},        {2, 1, 1, 2, 1},
              {1, 2, 3, 1, 1},        {2, 3, 1000, 2, 1},
              {3, 3, 1, 2, 0},        {1, T - 1, 3, 7, 1},
              {1, T, 1, 5, 1},        {1, T + 1, 3, 40, 1},
              {2, T / 2, 3, 9, 0},    {2, (T + 1) / 2 + 1, 1000, 4, 1},
              {3, T / 3 + 1, 3, 3, 1}};
    ss_rng rng;
    ss_rng_seed(&rng, 22);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int64_t V = cs[c].V, N = cs[c].N, D = cs[c].D, M = V * N, n = M * D;
        ss_supcon_opts o = ss_supcon_defaults();
        o.cosine = cs[c].cosine;
        if (!o.cosine) o.temperature = 2.0f;
        float *z = ss_test_alloc(n);
        int64_t *labels = malloc((size_t)N * sizeof(int64_t));
        ss_test_fill_normal(z, n, &rng);
        random_labels(labels, N, cs[c].nclass, &rng);
        double *losses = ss_test_alloc_d(M), *g = ss_test_alloc_d(n);
        double want = direct(z, labels, V, N, D, &o, losses, g);
        supcon_out out;
        run_supcon(&out, z, labels, V, N, D, &o, 1.0f);
        SS_CHECK_NEAR(out.loss, want, 1e-5);
        SS_CHECK_CLOSE_FD(out.losses, losses, M, 1e-5, "per-anchor losses");
        check_grad(out.dz, g, n);
        free_out(&out);
        free(z), free(labels), free(losses), free(g);
    }
}

/* V = 1: unlabeled and singleton anchors have loss 0 and no gradient; with
 * no positive anywhere the loss is 0 and dz stays untouched. */
SS_TEST(anchors_without_positive) {
    ss_rng rng;
    ss_rng_seed(&rng, 23);
    const int64_t N = 6, D = 4;
    float z[24], dz[24];
    ss_test_fill_normal(z, N * D, &rng);
    const int64_t mixed[6] = {5, -1, 5, 77, -1, 5};
    supcon_out out;
    run_supcon(&out, z, mixed, 1, N, D, NULL, 1.0f);
    for (int64_t n = 0; n < N; n++) {
        int has_pos = mixed[n] == 5;
        SS_CHECK(isfinite(out.losses[n]));
        SS_CHECK(has_pos ? out.losses[n] > 0 : out.losses[n] == 0.0f);
    }
    /* Their rows still get gradient as negatives of the other anchors. */
    double want_losses[6], want_dz[24];
    ss_supcon_opts o = ss_supcon_defaults();
    direct(z, mixed, 1, N, D, &o, want_losses, want_dz);
    SS_CHECK_CLOSE_FD(out.dz, want_dz, N * D, 1e-4, "dz");
    SS_CHECK_NEAR(out.loss,
                  (out.losses[0] + out.losses[2] + out.losses[5]) / 3.0, 1e-6);
    free_out(&out);

    const int64_t none[6] = {-1, 0, 1, 2, -1, 1000};
    float loss = 5.0f, losses[6], cache[64];
    for (int i = 0; i < 24; i++) dz[i] = 3.0f;
    SS_CHECK_OK(
        ss_supcon_forward(&loss, losses, cache, z, none, 1, N, D, NULL));
    SS_CHECK(loss == 0.0f);
    for (int i = 0; i < 6; i++) SS_CHECK(losses[i] == 0.0f);
    SS_CHECK_OK(ss_supcon_backward(dz, 1.0f, cache, z, none, 1, N, D, NULL));
    for (int i = 0; i < 24; i++) SS_CHECK(dz[i] == 3.0f);
    /* a single row */
    SS_CHECK_OK(
        ss_supcon_forward(&loss, losses, cache, z, none + 1, 1, 1, D, NULL));
    SS_CHECK(loss == 0.0f && losses[0] == 0.0f);
    SS_CHECK_OK(
        ss_supcon_backward(dz, 1.0f, cache, z, none + 1, 1, 1, D, NULL));
    for (int i = 0; i < 24; i++) SS_CHECK(dz[i] == 3.0f);
}

/* Unlabeled samples with V = 2 are SimCLR: equal to all-distinct labels. */
SS_TEST(unlabeled_equals_distinct_labels) {
    ss_rng rng;
    ss_rng_seed(&rng, 24);
    const int64_t V = 2, N = 7, D = 5;
    float z[70];
    ss_test_fill_normal(z, V * N * D, &rng);
    int64_t unl[7], distinct[7];
    for (int64_t n = 0; n < N; n++)
        unl[n] = -1, distinct[n] = (int64_t)1 << (n + 50);
    supcon_out a, b;
    run_supcon(&a, z, unl, V, N, D, NULL, 1.0f);
    run_supcon(&b, z, distinct, V, N, D, NULL, 1.0f);
    SS_CHECK(a.loss == b.loss);
    SS_CHECK_CLOSE_FF(a.dz, b.dz, V * N * D, 0.0, "dz");
    free_out(&a), free_out(&b);
}

SS_TEST(backward_accumulates) {
    ss_rng rng;
    ss_rng_seed(&rng, 25);
    const int64_t V = 2, N = 9, D = 6, n = V * N * D;
    float *z = ss_test_alloc(n), *dz = ss_test_alloc(n),
          *pre = ss_test_alloc(n);
    int64_t labels[9];
    ss_test_fill_normal(z, n, &rng);
    ss_test_fill_normal(pre, n, &rng);
    random_labels(labels, N, 3, &rng);
    for (int cosine = 0; cosine < 2; cosine++) {
        ss_supcon_opts o = ss_supcon_defaults();
        o.cosine = cosine;
        supcon_out out;
        run_supcon(&out, z, labels, V, N, D, &o, 1.0f);
        float loss;
        void *cache = malloc(ss_supcon_cache_size(V, N, D));
        SS_CHECK_OK(
            ss_supcon_forward(&loss, NULL, cache, z, labels, V, N, D, &o));
        SS_CHECK(loss == out.loss); /* losses = NULL changes nothing */
        memcpy(dz, pre, (size_t)n * sizeof(float));
        SS_CHECK_OK(
            ss_supcon_backward(dz, -0.75f, cache, z, labels, V, N, D, &o));
        for (int64_t i = 0; i < n; i++) dz[i] -= pre[i], out.dz[i] *= -0.75f;
        SS_CHECK_CLOSE_FF(dz, out.dz, n, 1e-4, "accumulated dz");
        free(cache);
        free_out(&out);
    }
    free(z), free(dz), free(pre);
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 26);
    const int64_t V = 2, N = SS__GC_TILE + 37, D = 17, n = V * N * D;
    float *z = ss_test_alloc(n);
    int64_t *labels = malloc((size_t)N * sizeof(int64_t));
    ss_test_fill_normal(z, n, &rng);
    random_labels(labels, N, 20, &rng);
    supcon_out one, two;
    SS_CHECK_OK(ss_set_num_threads(1));
    run_supcon(&one, z, labels, V, N, D, NULL, 1.0f);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_supcon(&two, z, labels, V, N, D, NULL, 1.0f);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(one.loss, two.loss, 1e-6);
    SS_CHECK_CLOSE_FF(two.losses, one.losses, V * N, 1e-5, "losses");
    SS_CHECK_CLOSE_FF(two.dz, one.dz, n, 1e-5, "dz");
    free_out(&one), free_out(&two);
    free(z), free(labels);
}

SS_TEST(bad_inputs) {
    const int64_t V = 2, N = 3, D = 4;
    float z[24], dz[24], loss = 42.0f, losses[6], cache[64];
    int64_t labels[3] = {0, -1, 0};
    for (int i = 0; i < 24; i++) z[i] = (float)(i % 5) - 2.0f, dz[i] = 7.0f;
    ss_supcon_opts o = ss_supcon_defaults();
    SS_CHECK_STATUS(
        ss_supcon_forward(NULL, losses, cache, z, labels, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, NULL, z, labels, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache must not be NULL");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, NULL, labels, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("z must not be NULL");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, NULL, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("labels must not be NULL");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, 0, N, D, &o),
        SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("V must be >= 1, got 0");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, -3, D, &o),
        SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got -3");
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, 0, &o),
        SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got 0");
    SS_CHECK_STATUS(ss_supcon_forward(&loss, losses, cache, z, labels,
                                      (int64_t)1 << 21, (int64_t)1 << 20,
                                      1 << 10, &o),
                    SS_ERR_SIZE);
    SS_CHECK_INT(ss_supcon_cache_size(V, 0, D), 0);
    float bad_t[] = {0.0f, -0.5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        ss_supcon_opts b = o;
        b.temperature = bad_t[i];
        SS_CHECK_STATUS(
            ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, &b),
            SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("temperature must be finite and > 0");
    }
    labels[2] = -5;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, &o),
        SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("labels[2]");
    SS_CHECK_MSG_HAS("got -5");
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, D, &o),
                    SS_ERR_LABEL);
    labels[2] = INT64_MIN;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, &o),
        SS_ERR_LABEL);
    labels[2] = 0;
    z[13] = NAN;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, &o),
        SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[13]");
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, D, &o),
                    SS_ERR_NONFINITE);
    z[13] = 0.0f;
    z[22] = INFINITY;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, &o),
        SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[22]");
    SS_CHECK(loss == 42.0f); /* nothing written on failure */
    z[22] = 0.0f;
    SS_CHECK_OK(
        ss_supcon_forward(&loss, losses, cache, z, labels, V, N, D, NULL));
    SS_CHECK_STATUS(
        ss_supcon_backward(NULL, 1.0f, cache, z, labels, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dz must not be NULL");
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, NULL, z, labels, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_supcon_backward(dz, 1.0f, cache, NULL, labels, V, N, D, &o),
        SS_ERR_NULL);
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, cache, z, NULL, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_supcon_backward(dz, INFINITY, cache, z, labels, V, N, D, &o),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss must be finite");
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, 0, &o),
                    SS_ERR_SIZE);
    /* a cache from another call: other options, labels or sizes */
    ss_supcon_opts other = o;
    other.temperature = 0.2f;
    SS_CHECK_STATUS(
        ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, D, &other),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written by ss_supcon_forward");
    labels[1] = 3;
    SS_CHECK_STATUS(ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, D, &o),
                    SS_ERR_PARAM);
    labels[1] = -1;
    SS_CHECK_STATUS(
        ss_supcon_backward(dz, 1.0f, cache, z, labels, 1, N, 2 * D, &o),
        SS_ERR_PARAM);
    for (int i = 0; i < 24; i++) SS_CHECK(dz[i] == 7.0f); /* untouched */
    SS_CHECK_OK(ss_supcon_backward(dz, 1.0f, cache, z, labels, V, N, D, NULL));
}

/* A temperature whose inverse overflows, and dot-product logits that could
 * overflow float32, are parameter errors (NaN-free by construction). */
SS_TEST(overflowing_parameters) {
    float z[8] = {1, 2, 3, 4, 5, 6, 7, 8}, loss, cache[64];
    int64_t labels[2] = {0, 0};
    ss_supcon_opts o = ss_supcon_defaults();
    o.temperature = 1e-45f;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, NULL, cache, z, labels, 1, 2, 4, &o),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("temperature must be >= 1/FLT_MAX");
    o = ss_supcon_defaults();
    o.cosine = 0;
    z[5] = 1e18f;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, NULL, cache, z, labels, 1, 2, 4, &o),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("logits overflow float32");
    o.temperature = 1e-31f; /* cosine: |logit| <= 1 / temperature */
    o.cosine = 1;
    z[5] = 6.0f;
    SS_CHECK_STATUS(
        ss_supcon_forward(&loss, NULL, cache, z, labels, 1, 2, 4, &o),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("logits overflow float32");
    z[5] = 1e18f;
    o.temperature = 0.1f; /* normalised: fine */
    SS_CHECK_OK(ss_supcon_forward(&loss, NULL, cache, z, labels, 1, 2, 4, &o));
    SS_CHECK(isfinite(loss));
}
