/* test_swav.c - SwAV and the log-domain Sinkhorn: PyTorch fixtures
 * (lightly sinkhorn / SwaVLoss with multi-crop and queue, epsilon 0.01 and
 * scores where exp overflows float64), finite differences on the direct
 * double path, awkward sizes, accumulation, threads, bad inputs. */
#include "direct_distill.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/sinkhorn.h"

#include <stdlib.h>
#include <string.h>

#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)

static ss_swav_opts opts_of(double t, int64_t iters, double eps) {
    ss_swav_opts o = ss_swav_defaults();
    o.temperature = (float)t, o.sinkhorn_iterations = iters;
    o.sinkhorn_epsilon = (float)eps;
    return o;
}

static float run_swav(float *losses, float *dh, float *dl, float dloss,
                      const float *high, const float *low, const float *queue,
                      int64_t H, int64_t L, int64_t N, int64_t Q, int64_t K,
                      const ss_swav_opts *o) {
    float loss = NAN;
    void *cache = malloc(ss_swav_cache_size(H, L, N, Q, K));
    SS_CHECK_OK(ss_swav_forward(&loss, losses, cache, high, low, queue, H, L, N, Q, K, o));
    SS_CHECK_OK(ss_swav_backward(dh, dl, dloss, cache, high, low, queue, H, L, N, Q, K, o));
    free(cache);
    return loss;
}

/* Codes of rows [x0 (n0 rows); x1 (n1 rows)] from the kernel: q (n0, K). */
static void kernel_codes(float *q, const float *x0, int64_t n0,
                         const float *x1, int64_t n1, int64_t K,
                         int64_t iters, double eps) {
    double *u = ss_test_alloc_d(K), *v = ss_test_alloc_d(n0 + n1);
    double *ws = ss_test_alloc_d(2 * K);
    ss__sk_kernel kern = {{x0, x1}, {n0, n1}, NULL, 1.0 / eps, K};
    ss__sinkhorn_log(&kern, iters, u, v, ws);
    for (int64_t n = 0; n < n0; n++)
        for (int64_t k = 0; k < K; k++)
            q[n * K + k] = (float)exp(ss__sk_logit(&kern, n, k) + u[k] + v[n]);
    free(u), free(v), free(ws);
}

SS_TEST(defaults) {
    ss_swav_opts o = ss_swav_defaults();
    SS_CHECK(o.temperature == 0.1f && o.sinkhorn_iterations == 3);
    SS_CHECK(o.sinkhorn_epsilon == 0.05f);
    SS_CHECK(ss_swav_cache_size(2, 0, 4, 0, 3) > 0);
    SS_CHECK(ss_swav_cache_size(1, 0, 4, 0, 3) == 0);
    SS_CHECK_MSG_HAS("need at least two crops");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("swav.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 6);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
        int64_t H = fx_int(fx, KEY("H")), L = fx_int(fx, KEY("L"));
        int64_t N = fx_int(fx, KEY("N")), Q = fx_int(fx, KEY("Q"));
        int64_t K = fx_int(fx, KEY("K")), iters = fx_int(fx, KEY("iterations")), n;
        double t = fx_scalar(fx, KEY("temperature")), eps = fx_scalar(fx, KEY("epsilon"));
        ss_swav_opts o = opts_of(t, iters, eps);
        float *high = fx_f32_copy(fx, KEY("high"), &n);
        float *low = L ? fx_f32_copy(fx, KEY("low"), &n) : NULL;
        float *queue = Q ? fx_f32_copy(fx, KEY("queue"), &n) : NULL;
        const double *wl = fx_f64(fx, KEY("losses"), &n);
        const double *wdh = fx_f64(fx, KEY("dhigh"), &n);
        const double *wdl = fx_f64(fx, KEY("dlow"), &n);
        const double *wq = fx_f64(fx, KEY("codes"), &n);
        SS_CHECK(high && wl && wdh && wq && (L == 0 || (low && wdl)));
        if (!high || !wl || !wdh || !wq) continue;
        float *losses = ss_test_alloc(N), *dh = ss_test_alloc(H * N * K);
        float *dl = L ? ss_test_alloc(L * N * K) : NULL;
        float loss = run_swav(losses, dh, dl, 1.0f, high, low, queue, H, L, N,
                              Q, K, &o);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK(isfinite(loss));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK(ss_dd_err(losses, wl, N) <= 1e-4);
        SS_CHECK(ss_dd_err(dh, wdh, H * N * K) <= 1e-4);
        if (L) SS_CHECK(ss_dd_err(dl, wdl, L * N * K) <= 1e-4);
        /* the kernel's codes, crop by crop */
        float *q = ss_test_alloc(N * K);
        for (int64_t i = 0; i < H; i++) {
            kernel_codes(q, high + i * N * K, N, Q ? queue + i * Q * K : NULL,
                         Q, K, iters, eps);
            double e = ss_dd_err(q, wq + i * N * K, N * K);
            if (!(e <= 1e-4)) fprintf(stderr, "swav case %lld codes %lld: %.3g\n",
                                      (long long)c, (long long)i, e);
            SS_CHECK(e <= 1e-4);
        }
        /* the direct double path agrees with PyTorch */
        const double *h64 = fx_f64(fx, KEY("high"), &n);
        const double *l64 = L ? fx_f64(fx, KEY("low"), &n) : NULL;
        const double *q64 = Q ? fx_f64(fx, KEY("queue"), &n) : NULL;
        double *ddh = ss_test_alloc_d(H * N * K), *ddl = ss_test_alloc_d(L * N * K + 1);
        double lw = ss_direct_swav(h64, l64, q64, NULL, H, L, N, Q, K, t, iters,
                                   eps, ddh, ddl);
        SS_CHECK_NEAR(lw, want, 1e-9);
        SS_CHECK(ss_test_rel_err_dd(ddh, wdh, H * N * K) <= 1e-9);
        if (L) SS_CHECK(ss_test_rel_err_dd(ddl, wdl, L * N * K) <= 1e-9);
        free(high), free(low), free(queue), free(losses), free(dh), free(dl);
        free(q), free(ddh), free(ddl);
    }
    fx_free(fx);
}

/* ---- finite differences (codes frozen: they are stop-gradient) ----------- */

typedef struct {
    const double *queue, *codes;
    int64_t H, L, N, Q, K, iters;
} fd_ctx;

static double fd_loss(const double *x, void *p) {
    fd_ctx *c = p;
    const double *high = x, *low = x + c->H * c->N * c->K;
    return ss_direct_swav(high, c->L ? low : NULL, c->queue, c->codes, c->H,
                          c->L, c->N, c->Q, c->K, 0.1, c->iters, 0.05, NULL,
                          NULL);
}

SS_TEST(direct_finite_differences) {
    int64_t cases[][6] = {{2, 0, 3, 0, 4, 3}, {2, 3, 2, 4, 5, 3}, {1, 2, 3, 0, 3, 0}};
    for (int i = 0; i < 3; i++) {
        ss_rng rng;
        ss_rng_seed(&rng, 50 + i);
        int64_t H = cases[i][0], L = cases[i][1], N = cases[i][2];
        int64_t Q = cases[i][3], K = cases[i][4], iters = cases[i][5];
        int64_t nh = H * N * K, nl = L * N * K;
        double *x = ss_test_alloc_d(nh + nl), *g = ss_test_alloc_d(nh + nl);
        double *queue = ss_test_alloc_d(H * Q * K + 1), *codes = ss_test_alloc_d(nh);
        ss_test_fill_normal_d(x, nh + nl, &rng);
        ss_test_fill_normal_d(queue, H * Q * K, &rng);
        for (int64_t j = 0; j < nh + nl; j++) x[j] *= 0.1;
        memcpy(codes, x, sizeof(double) * (size_t)nh);
        fd_ctx c = {Q ? queue : NULL, codes, H, L, N, Q, K, iters};
        ss_direct_swav(x, L ? x + nh : NULL, c.queue, codes, H, L, N, Q, K, 0.1,
                       iters, 0.05, g, L ? g + nh : NULL);
        double e = ss_test_fd_max_err(fd_loss, &c, x, g, nh + nl, 1e-5, 9 + i);
        if (!(e < 1e-6)) fprintf(stderr, "swav fd case %d: %.3g\n", i, e);
        SS_CHECK(e < 1e-6);
        free(x), free(g), free(queue), free(codes);
    }
}

/* ---- library vs direct ----------------------------------------------------------- */

static void vs_direct(int64_t H, int64_t L, int64_t N, int64_t Q, int64_t K,
                      double scale, double eps, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t nh = H * N * K, nl = L * N * K, nq = H * Q * K;
    float *high = ss_test_alloc(nh), *low = ss_test_alloc(nl + 1);
    float *queue = ss_test_alloc(nq + 1), *dh = ss_test_alloc(nh);
    float *dl = ss_test_alloc(nl + 1), *pre = ss_test_alloc(nh + nl);
    ss_test_fill_normal(high, nh, &rng);
    ss_test_fill_normal(low, nl, &rng);
    ss_test_fill_normal(queue, nq, &rng);
    ss_test_fill_normal(pre, nh + nl, &rng);
    for (int64_t i = 0; i < nh; i++) high[i] *= (float)scale;
    for (int64_t i = 0; i < nl; i++) low[i] *= (float)scale;
    for (int64_t i = 0; i < nq; i++) queue[i] *= (float)scale;
    memcpy(dh, pre, sizeof(float) * (size_t)nh);
    memcpy(dl, pre + nh, sizeof(float) * (size_t)nl);
    ss_swav_opts o = opts_of(0.1, 3, eps);
    float dloss = 0.6f;
    float loss = run_swav(NULL, dh, L ? dl : NULL, dloss, high, L ? low : NULL,
                          Q ? queue : NULL, H, L, N, Q, K, &o);
    double *hd = ss_dd_from_f(high, nh), *ld = ss_dd_from_f(low, nl);
    double *qd = ss_dd_from_f(queue, nq), *gh = ss_test_alloc_d(nh);
    double *gl = ss_test_alloc_d(nl + 1);
    double want = ss_direct_swav(hd, L ? ld : NULL, Q ? qd : NULL, NULL, H, L,
                                 N, Q, K, (double)0.1f, 3, (double)(float)eps,
                                 gh, gl);
    for (int64_t i = 0; i < nh; i++) gh[i] = gh[i] * dloss + pre[i];
    for (int64_t i = 0; i < nl; i++) gl[i] = gl[i] * dloss + pre[nh + i];
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 1e-5);
    double e1 = ss_dd_err(dh, gh, nh), e2 = L ? ss_dd_err(dl, gl, nl) : 0;
    if (!(e1 <= 1e-5 && e2 <= 1e-5))
        fprintf(stderr, "swav H=%lld L=%lld N=%lld Q=%lld K=%lld eps=%g: %.3g %.3g\n",
                (long long)H, (long long)L, (long long)N, (long long)Q,
                (long long)K, eps, e1, e2);
    SS_CHECK(e1 <= 1e-5 && e2 <= 1e-5);
    free(high), free(low), free(queue), free(dh), free(dl), free(pre);
    free(hd), free(ld), free(qd), free(gh), free(gl);
}

SS_TEST(vs_direct_awkward_sizes_and_accumulation) {
    vs_direct(1, 1, 1, 0, 1, 1.0, 0.05, 1);
    vs_direct(2, 0, 1, 0, 3, 1.0, 0.05, 2);
    vs_direct(2, 0, 3, 0, 1000, 1.0, 0.05, 3);
    vs_direct(2, 6, 5, 7, 33, 1.0, 0.05, 4);
    vs_direct(3, 2, 64, 65, 63, 1.0, 0.05, 5);
    vs_direct(2, 1, 2, 1, 65, 1.0, 0.05, 6);
}

/* epsilon 0.01 and 0.001 with scores up to ~±100: scores / epsilon reach
 * 1e5, far past exp's range in float32 and float64. */
SS_TEST(sinkhorn_tiny_epsilon_stability) {
    vs_direct(2, 2, 6, 5, 17, 1.0, 0.01, 11);
    vs_direct(2, 2, 6, 5, 17, 30.0, 0.01, 12);
    vs_direct(2, 1, 8, 0, 9, 30.0, 0.001, 13);
    /* codes stay a valid plan: rows sum to 1 */
    int64_t N = 7, K = 5;
    float x[35], q[35];
    ss_rng rng;
    ss_rng_seed(&rng, 14);
    ss_test_fill_normal(x, N * K, &rng);
    for (int i = 0; i < 35; i++) x[i] *= 100.0f;
    kernel_codes(q, x, N, NULL, 0, K, 3, 0.01);
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) {
            SS_CHECK(isfinite(q[n * K + k]) && q[n * K + k] >= 0);
            s += q[n * K + k];
        }
        SS_CHECK_NEAR(s, 1.0, 1e-5);
    }
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 21);
    int64_t H = 2, L = 4, N = 67, Q = 130, K = 200;
    float *high = ss_test_alloc(H * N * K), *low = ss_test_alloc(L * N * K);
    float *queue = ss_test_alloc(H * Q * K);
    float *d1 = ss_test_alloc((H + L) * N * K), *d2 = ss_test_alloc((H + L) * N * K);
    ss_test_fill_normal(high, H * N * K, &rng);
    ss_test_fill_normal(low, L * N * K, &rng);
    ss_test_fill_normal(queue, H * Q * K, &rng);
    ss_swav_opts o = ss_swav_defaults();
    SS_CHECK_OK(ss_set_num_threads(1));
    float l1 = run_swav(NULL, d1, d1 + H * N * K, 1.0f, high, low, queue, H, L, N, Q, K, &o);
    SS_CHECK_OK(ss_set_num_threads(2));
    float l2 = run_swav(NULL, d2, d2 + H * N * K, 1.0f, high, low, queue, H, L, N, Q, K, &o);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(l1 == l2);
    SS_CHECK(memcmp(d1, d2, sizeof(float) * (size_t)((H + L) * N * K)) == 0);
    free(high), free(low), free(queue), free(d1), free(d2);
}

SS_TEST(bad_inputs) {
    int64_t H = 2, L = 1, N = 2, Q = 2, K = 3;
    float high[12] = {0}, low[6] = {0}, queue[12] = {0}, dh[12] = {0}, dl[6] = {0};
    float loss = 0;
    double cache[64];
    ss_swav_opts o = ss_swav_defaults();
    SS_CHECK(ss_swav_cache_size(H, L, N, Q, K) <= sizeof cache);
    SS_CHECK_STATUS(ss_swav_forward(NULL, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, NULL, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, NULL, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, NULL, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("low");
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, NULL, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("queue");
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, 0, L, N, Q, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, 1, 0, N, Q, K, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("need at least two crops");
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, -1, N, Q, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, 0, Q, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, -1, K, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, 0, &o), SS_ERR_SIZE);
    o.temperature = 0;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("temperature");
    o = ss_swav_defaults(), o.sinkhorn_epsilon = -0.05f;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("sinkhorn_epsilon");
    o = ss_swav_defaults(), o.sinkhorn_iterations = -1;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("sinkhorn_iterations must be >= 0, got -1");
    o = ss_swav_defaults();
    high[4] = NAN;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("high[4]");
    high[4] = 0, low[5] = INFINITY;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("low[5]");
    low[5] = 0, queue[11] = NAN;
    SS_CHECK_STATUS(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("queue[11]");
    queue[11] = 0;
    SS_CHECK(loss == 0);
    SS_CHECK_OK(ss_swav_forward(&loss, NULL, cache, high, low, queue, H, L, N, Q, K, &o));
    SS_CHECK_STATUS(ss_swav_backward(NULL, dl, 1, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_backward(dh, NULL, 1, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_backward(dh, dl, 1, NULL, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_swav_backward(dh, dl, NAN, cache, high, low, queue, H, L, N, Q, K, &o), SS_ERR_NONFINITE);
    for (int i = 0; i < 12; i++) SS_CHECK(dh[i] == 0);
    for (int i = 0; i < 6; i++) SS_CHECK(dl[i] == 0);
}
