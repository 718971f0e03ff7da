/* test_moco.c - InfoNCE with a negative queue: PyTorch (lightly
 * NTXentLoss with a memory bank) fixtures, finite differences of the
 * direct reference, tiled vs direct, accumulation, threads, extremes,
 * statuses, and a step with ss_queue. */
#include "direct_cross.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/cross.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    float loss, *losses, *dq, *dk;
} moco_out;

/* Forward + backward; gradients accumulate onto what out holds (dk may be
 * NULL: stop-gradient keys). */
static ss_status run_moco(moco_out *o, const float *q, const float *k,
                          const float *queue, int64_t N, int64_t K, int64_t D,
                          float temperature, int cosine, float dloss) {
    ss_moco_opts opt = ss_moco_defaults();
    opt.temperature = temperature;
    opt.cosine = cosine;
    void *cache = malloc(ss_moco_cache_size(N, K, D));
    ss_status st =
        ss_moco_forward(&o->loss, o->losses, cache, q, k, queue, N, K, D, &opt);
    if (st == SS_OK)
        st = ss_moco_backward(o->dq, o->dk, dloss, cache, q, k, queue, N, K, D,
                              &opt);
    free(cache);
    return st;
}

static moco_out out_alloc(int64_t N, int64_t D) {
    moco_out o = {0, ss_test_alloc(N), ss_test_alloc(N * D),
                  ss_test_alloc(N * D)};
    return o;
}
static void out_free(moco_out *o) { free(o->losses), free(o->dq), free(o->dk); }

static int scalar_close(double got, double want, double tol) {
    int ok = fabs(got - want) <= tol * fmax(fabs(want), 1e-3);
    if (!ok) fprintf(stderr, "  %.9g vs %.9g\n", got, want);
    return ok;
}

SS_TEST(matches_lightly_memory_bank_fixture) {
    ss_fixture *fx = fx_load("moco.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 13);
    for (int64_t c = 0; c < nc; c++) {
        char s[64];
#define E(name) (snprintf(s, sizeof s, "c%d_" name, (int)c), s)
        int64_t N = fx_int(fx, E("N")), K = fx_int(fx, E("K")),
                D = fx_int(fx, E("D"));
        int cosine = (int)fx_int(fx, E("cosine"));
        float temp = (float)fx_scalar(fx, E("temperature"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *q = fx_f32_copy(fx, E("q"), NULL),
              *k = fx_f32_copy(fx, E("k"), NULL);
        float *queue = fx_f32_copy(fx, E("queue"), NULL);
        moco_out o = out_alloc(N, D), acc = out_alloc(N, D);
        SS_CHECK_OK(run_moco(&o, q, k, queue, N, K, D, temp, cosine, dloss));
        float *pre = ss_test_alloc(2 * N * D); /* gradients accumulate */
        ss_test_fill_normal(pre, 2 * N * D, &rng);
        memcpy(acc.dq, pre, N * D * sizeof(float));
        memcpy(acc.dk, pre + N * D, N * D * sizeof(float));
        SS_CHECK_OK(run_moco(&acc, q, k, queue, N, K, D, temp, cosine, dloss));
        SS_CHECK(dc_accumulated(acc.dq, pre, o.dq, N * D));
        SS_CHECK(dc_accumulated(acc.dk, pre + N * D, o.dk, N * D));
        out_free(&acc);
        SS_CHECK(scalar_close(o.loss, fx_scalar(fx, E("loss")), 1e-4));
        SS_CHECK_CLOSE_FD(o.losses, fx_f64(fx, E("losses"), NULL), N, 1e-4,
                          "losses");
        SS_CHECK_CLOSE_FD(o.dq, fx_f64(fx, E("dq"), NULL), N * D, 1e-4, "dq");
        SS_CHECK_CLOSE_FD(o.dk, fx_f64(fx, E("dk"), NULL), N * D, 1e-4, "dk");
        /* stop-gradient keys: dq unchanged, nothing else touched */
        float *dq2 = ss_test_alloc(N * D);
        moco_out o2 = {0, NULL, dq2, NULL};
        SS_CHECK_OK(run_moco(&o2, q, k, queue, N, K, D, temp, cosine, dloss));
        SS_CHECK_CLOSE_FD(dq2, fx_f64(fx, E("dq"), NULL), N * D, 1e-4,
                          "dq (dk NULL)");
#undef E
        out_free(&o);
        free(q), free(k), free(queue), free(pre), free(dq2);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, K, D;
    int cosine, which; /* 0 q, 1 k */
    double *q, *k, *queue, temp;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    return dc_moco(c->which == 0 ? x : c->q, c->which == 1 ? x : c->k, c->queue,
                   c->N, c->K, c->D, c->temp, c->cosine, NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 7);
    for (int cosine = 0; cosine < 2; cosine++) {
        int64_t N = 4, K = 6, D = 5;
        fd_ctx c = {N,
                    K,
                    D,
                    cosine,
                    0,
                    ss_test_alloc_d(N * D),
                    ss_test_alloc_d(N * D),
                    ss_test_alloc_d(K * D),
                    0.6};
        ss_test_fill_normal_d(c.q, N * D, &rng);
        ss_test_fill_normal_d(c.k, N * D, &rng);
        ss_test_fill_normal_d(c.queue, K * D, &rng);
        double *dq = ss_test_alloc_d(N * D), *dk = ss_test_alloc_d(N * D);
        dc_moco(c.q, c.k, c.queue, N, K, D, c.temp, cosine, NULL, dq, dk);
        c.which = 0;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.q, dq, N * D, 1e-6, 1) < 1e-6);
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.k, dk, N * D, 1e-6, 2) < 1e-6);
        free(c.q), free(c.k), free(c.queue), free(dq), free(dk);
    }
}

static void check_vs_direct(int64_t N, int64_t K, int64_t D, int cosine,
                            float temp, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *q = ss_test_alloc(N * D), *k = ss_test_alloc(N * D),
          *u = ss_test_alloc(K * D);
    ss_test_fill_normal(q, N * D, &rng);
    ss_test_fill_normal(k, N * D, &rng);
    ss_test_fill_normal(u, K * D, &rng);
    if (!cosine)
        for (int64_t i = 0; i < N * D; i++)
            q[i] /= (float)sqrt((double)D);
    double *qd = dc_to_double(q, N * D), *kd = dc_to_double(k, N * D);
    double *ud = dc_to_double(u, K * D);
    double *lw = ss_test_alloc_d(N), *dqw = ss_test_alloc_d(N * D),
           *dkw = ss_test_alloc_d(N * D);
    double lossw = dc_moco(qd, kd, ud, N, K, D, temp, cosine, lw, dqw, dkw);
    moco_out o = out_alloc(N, D);
    SS_CHECK_OK(run_moco(&o, q, k, u, N, K, D, temp, cosine, 1.0f));
    double tol = 1e-4, fl = D == 1 && cosine ? 1e-2 : 1e-3;
    SS_CHECK(scalar_close(o.loss, lossw, tol));
    DC_CHECK_GRAD(o.losses, lw, N, tol, 1e-2, "losses");
    DC_CHECK_GRAD(o.dq, dqw, N * D, tol, fl, "dq");
    DC_CHECK_GRAD(o.dk, dkw, N * D, tol, fl, "dk");
    out_free(&o);
    free(q), free(k), free(u), free(qd), free(kd), free(ud), free(lw),
        free(dqw), free(dkw);
}

SS_TEST(tiled_matches_direct_awkward_sizes) {
    const int64_t T = SS__CROSS_TILE;
    int64_t Ns[] = {1, 2, 3, T - 1, T, T + 1};
    for (int i = 0; i < 6; i++) {
        check_vs_direct(Ns[i], T + 1, 3, 1, 0.2f, 100 + i);
        check_vs_direct(Ns[i], 1, 4, 0, 0.5f, 200 + i);
    }
    check_vs_direct(5, T - 1, 1, 1, 0.5f, 301);
    check_vs_direct(3, 7, 1000, 1, 0.1f, 302);
    check_vs_direct(2, 3 * T + 5, 8, 1, 0.07f, 303);
    check_vs_direct(T + 1, T, 6, 0, 1.0f, 304);
}

SS_TEST(thread_count_independent) {
    int64_t N = 70, K = 3 * SS__CROSS_TILE + 11, D = 20;
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    float *q = ss_test_alloc(N * D), *k = ss_test_alloc(N * D),
          *u = ss_test_alloc(K * D);
    ss_test_fill_normal(q, N * D, &rng);
    ss_test_fill_normal(k, N * D, &rng);
    ss_test_fill_normal(u, K * D, &rng);
    moco_out o1 = out_alloc(N, D), o2 = out_alloc(N, D);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(run_moco(&o1, q, k, u, N, K, D, 0.2f, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(run_moco(&o2, q, k, u, N, K, D, 0.2f, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(o1.loss, o2.loss, 1e-6);
    SS_CHECK_CLOSE_FF(o2.dq, o1.dq, N * D, 1e-5, "dq 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(o2.dk, o1.dk, N * D, 1e-5, "dk 1 vs 2 threads");
    out_free(&o1), out_free(&o2);
    free(q), free(k), free(u);
}

static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

SS_TEST(extreme_parameters_stay_finite) {
    int64_t N = 20, K = 50, D = 8;
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    float *q = ss_test_alloc(N * D), *k = ss_test_alloc(N * D),
          *u = ss_test_alloc(K * D);
    ss_test_fill_normal(q, N * D, &rng);
    ss_test_fill_normal(k, N * D, &rng);
    ss_test_fill_normal(u, K * D, &rng);
    float temps[] = {1e-30f, 1e-6f, 1e-3f, 1e6f, 1e30f};
    for (int i = 0; i < 5; i++) {
        moco_out o = out_alloc(N, D);
        SS_CHECK_OK(run_moco(&o, q, k, u, N, K, D, temps[i], 1, 1.0f));
        SS_CHECK(isfinite(o.loss) && all_finite(o.losses, N));
        SS_CHECK(all_finite(o.dq, N * D) && all_finite(o.dk, N * D));
        if (temps[i] > 1e5f) SS_CHECK_NEAR(o.loss, log((double)K + 1), 1e-5);
        out_free(&o);
    }
    check_vs_direct(6, 30, 5, 1, 0.01f, 55);
    free(q), free(k), free(u);
}

/* One MoCo step: loss against the queue, then enqueue the keys. */
SS_TEST(step_with_queue) {
    int64_t N = 4, K = 10, D = 6;
    ss_rng rng;
    ss_rng_seed(&rng, 21);
    ss_queue *qu;
    SS_CHECK_OK(ss_queue_create(&qu, K, D, &rng));
    float q[24], k[24];
    ss_test_fill_normal(q, N * D, &rng);
    ss_test_fill_normal(k, N * D, &rng);
    moco_out o = out_alloc(N, D);
    SS_CHECK_OK(run_moco(&o, q, k, ss_queue_data(qu), N, K, D, 0.2f, 1, 1.0f));
    double *qd = dc_to_double(q, N * D), *kd = dc_to_double(k, N * D);
    double *ud = dc_to_double(ss_queue_data(qu), K * D);
    SS_CHECK(scalar_close(
        o.loss, dc_moco(qd, kd, ud, N, K, D, 0.2, 1, NULL, NULL, NULL), 1e-5));
    SS_CHECK_OK(ss_queue_enqueue(qu, k, N));
    SS_CHECK_INT(ss_queue_count(qu), N);
    out_free(&o);
    free(qd), free(kd), free(ud);
    ss_queue_free(qu);
}

SS_TEST(bad_inputs) {
    int64_t N = 2, K = 3, D = 2;
    float q[4] = {1, 2, 3, 4}, k[4] = {1, 0, 0, 1}, u[6] = {1, 1, 0, 1, 1, 0};
    float loss, dq[4], dk[4];
    float cache[128]; /* float-aligned, as malloc would give */
    ss_moco_opts o = ss_moco_defaults();
    SS_CHECK(o.temperature == 0.5f && o.cosine == 1);
    SS_CHECK(ss_moco_cache_size(N, K, D) <= sizeof cache);
    SS_CHECK(ss_moco_cache_size(N, 0, D) == 0);
    SS_CHECK_MSG_HAS("K must be >= 1, got 0");
    SS_CHECK_STATUS(ss_moco_forward(NULL, NULL, cache, q, k, u, N, K, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, NULL, q, k, u, N, K, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_moco_forward(&loss, NULL, cache, NULL, k, u, N, K, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_moco_forward(&loss, NULL, cache, q, NULL, u, N, K, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_moco_forward(&loss, NULL, cache, q, k, NULL, N, K, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("queue must not be NULL");
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, 0, K, D, NULL),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(
        ss_moco_forward(&loss, NULL, cache, q, k, u, N, -1, D, NULL),
        SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, 0, NULL),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, N,
                                    (int64_t)1 << 40, 2, NULL),
                    SS_ERR_SIZE);
    float bad_t[] = {0.0f, -0.5f, NAN, INFINITY, 1e-39f};
    for (int i = 0; i < 5; i++) {
        o.temperature = bad_t[i];
        SS_CHECK_STATUS(
            ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, D, &o),
            SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("temperature");
    }
    SS_CHECK_MSG_HAS("got 1e-39");
    o = ss_moco_defaults();
    loss = 9.0f;
    q[3] = NAN;
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("q[3]");
    q[3] = 4;
    k[2] = INFINITY;
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("k[2]");
    k[2] = 0;
    u[5] = -INFINITY;
    SS_CHECK_STATUS(ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("queue[5]");
    u[5] = 0;
    SS_CHECK(loss == 9.0f);
    SS_CHECK_OK(ss_moco_forward(&loss, NULL, cache, q, k, u, N, K, D, NULL));
    for (int i = 0; i < 4; i++)
        dq[i] = dk[i] = 2.0f;
    SS_CHECK_STATUS(
        ss_moco_backward(NULL, dk, 1, cache, q, k, u, N, K, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(ss_moco_backward(dq, dk, 1, NULL, q, k, u, N, K, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_moco_backward(dq, dk, NAN, cache, q, k, u, N, K, D, NULL),
        SS_ERR_NONFINITE);
    o.temperature = 0.2f;
    SS_CHECK_STATUS(ss_moco_backward(dq, dk, 1, cache, q, k, u, N, K, D, &o),
                    SS_ERR_STATE);
    SS_CHECK_STATUS(
        ss_moco_backward(dq, dk, 1, cache, q, k, u, N, K - 1, D, NULL),
        SS_ERR_STATE);
    for (int i = 0; i < 4; i++)
        SS_CHECK(dq[i] == 2.0f && dk[i] == 2.0f);
    SS_CHECK_OK(ss_moco_backward(dq, dk, 1, cache, q, k, u, N, K, D, NULL));
    SS_CHECK_OK(ss_moco_backward(dq, NULL, 1, cache, q, k, u, N, K, D, NULL));
}
