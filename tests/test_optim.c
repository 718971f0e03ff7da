/* test_optim.c - SGD, AdamW and LARS trajectories, schedules and EMA against
 * tests/ref/optim.py (torch.optim / solo-learn, float64), the parameter
 * arena, and bad-input statuses. */
#include "engine.h"
#include "fixture.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

typedef struct {
    ss_fixture *fx;
    sst_params P;
    int64_t n, T; /* packed element count, steps */
    const double *p0, *grads;
} model;

static int model_init(model *m) {
    memset(m, 0, sizeof *m);
    m->fx = fx_load("optim.bin");
    if (!m->fx) return 0;
    int64_t nt, nf, ng;
    const int64_t *sizes = fx_i64(m->fx, "arena.sizes", &nt);
    const int64_t *flags = fx_i64(m->fx, "arena.flags", &nf);
    m->p0 = fx_f64(m->fx, "p0", &m->n);
    m->grads = fx_f64(m->fx, "grads", &ng);
    if (!sizes || !flags || nt != nf || !m->p0 || !m->grads) return 0;
    m->T = ng / m->n;
    sst_params_init(&m->P);
    for (int64_t k = 0; k < nt; k++) {
        char name[32];
        snprintf(name, sizeof name, "t%lld", (long long)k);
        if (sst_params_add(&m->P, name, sizes[k], (unsigned)flags[k], NULL))
            return 0;
    }
    return sst_params_alloc(&m->P) == SS_OK;
}

/* packed (fixture order) <-> arena (aligned offsets) */
static void scatter(float *arena, const sst_params *P, const double *packed) {
    int64_t at = 0;
    for (int64_t k = 0; k < P->count; k++)
        for (int64_t i = 0; i < P->t[k].numel; i++)
            arena[P->t[k].offset + i] = (float)packed[at++];
}
static void gather(float *packed, const sst_params *P, const float *arena) {
    int64_t at = 0;
    for (int64_t k = 0; k < P->count; k++)
        for (int64_t i = 0; i < P->t[k].numel; i++)
            packed[at++] = arena[P->t[k].offset + i];
}

enum { OPT_SGD, OPT_ADAMW, OPT_LARS };

/* Runs every <name>.<i> config of the fixture step by step. */
static void check_trajectories(int opt, const char *name) {
    model m;
    SS_CHECK(model_init(&m));
    if (!m.fx) return;
    float *s1 = ss_test_alloc(m.P.numel), *s2 = ss_test_alloc(m.P.numel);
    float *packed = ss_test_alloc(m.n);
    int cases = 0;
    for (int i = 0;; i++, cases++) {
        char key[64];
        snprintf(key, sizeof key, "%s.%d.cfg", name, i);
        const double *c = fx_f64(m.fx, key, NULL);
        snprintf(key, sizeof key, "%s.%d.traj", name, i);
        const double *traj = fx_f64(m.fx, key, NULL);
        if (!c || !traj) break;
        scatter(m.P.data, &m.P, m.p0);
        memset(s1, 0, m.P.numel * sizeof *s1);
        memset(s2, 0, m.P.numel * sizeof *s2);
        for (int64_t t = 0; t < m.T; t++) {
            scatter(m.P.grad, &m.P, m.grads + t * m.n);
            if (opt == OPT_SGD) {
                sst_sgd_cfg k = {c[0], c[1], c[2], c[3], (int)c[4]};
                SS_CHECK_OK(sst_sgd_step(&m.P, s1, &k, t + 1));
            } else if (opt == OPT_ADAMW) {
                sst_adamw_cfg k = {c[0], c[1], c[2], c[3], c[4]};
                SS_CHECK_OK(sst_adamw_step(&m.P, s1, s2, &k, t + 1));
            } else {
                sst_lars_cfg k = {c[0], c[1], c[2], c[3], c[4], (int)c[5],
                                  (int)c[6]};
                SS_CHECK_OK(sst_lars_step(&m.P, s1, &k, t + 1));
            }
            gather(packed, &m.P, m.P.data);
            char what[64];
            snprintf(what, sizeof what, "%s.%d step %lld", name, i,
                     (long long)t + 1);
            SS_CHECK_CLOSE_FD(packed, traj + t * m.n, m.n, TOL, what);
        }
    }
    SS_CHECK(cases >= 2);
    free(s1), free(s2), free(packed);
    sst_params_free(&m.P);
    fx_free(m.fx);
}

SS_TEST(sgd_matches_torch) { check_trajectories(OPT_SGD, "sgd"); }
SS_TEST(adamw_matches_torch) { check_trajectories(OPT_ADAMW, "adamw"); }
SS_TEST(lars_matches_solo_learn) { check_trajectories(OPT_LARS, "lars"); }

SS_TEST(schedules) {
    ss_fixture *fx = fx_load("optim.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t n;
    const double *c = fx_f64(fx, "sched.lr.cfg", NULL);
    const double *v = fx_f64(fx, "sched.lr.values", &n);
    SS_CHECK(c && v);
    for (int64_t k = 0; c && v && k < n; k++)
        SS_CHECK_NEAR(sst_lr_warmup_cosine(k, (int64_t)c[0], (int64_t)c[1], c[2],
                                           c[3], c[4]),
                      v[k], 1e-12);
    c = fx_f64(fx, "sched.tau.cfg", NULL);
    v = fx_f64(fx, "sched.tau.values", &n);
    SS_CHECK(c && v);
    for (int64_t k = 0; c && v && k < n; k++)
        SS_CHECK_NEAR(sst_momentum_cosine(k, (int64_t)c[0], c[1], c[2]), v[k],
                      1e-12);
    /* fixed points: warm-up starts at start_lr, peaks at base, ends at final */
    SS_CHECK_NEAR(sst_lr_warmup_cosine(0, 10, 100, 0.0, 1.0, 0.0), 0.0, 1e-15);
    SS_CHECK_NEAR(sst_lr_warmup_cosine(10, 10, 100, 0.0, 1.0, 0.0), 1.0, 1e-15);
    SS_CHECK_NEAR(sst_lr_warmup_cosine(100, 10, 100, 0.0, 1.0, 0.1), 0.1, 1e-15);
    SS_CHECK_NEAR(sst_momentum_cosine(0, 50, 0.996, 1.0), 0.996, 1e-15);
    fx_free(fx);
}

SS_TEST(ema_matches_torch) {
    ss_fixture *fx = fx_load("optim.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t n, nm;
    float *tgt = fx_f32_copy(fx, "ema.target0", &n);
    float *onl = fx_f32_copy(fx, "ema.online", NULL);
    const double *ms = fx_f64(fx, "ema.m", &nm);
    SS_CHECK(tgt && onl && ms);
    if (tgt && onl && ms) {
        for (int64_t k = 0; k < nm; k++)
            SS_CHECK_OK(sst_ema_update(tgt, onl + k * n, n, ms[k]));
        SS_CHECK_CLOSE_FD(tgt, fx_f64(fx, "ema.target", NULL), n, TOL, "ema");
    }
    free(tgt), free(onl);
    fx_free(fx);
}

SS_TEST(arena) {
    sst_params P;
    sst_params_init(&P);
    int64_t o1, o2;
    SS_CHECK_OK(sst_params_add(&P, "conv1.w", 288, 0, &o1));
    SS_CHECK_OK(sst_params_add(&P, "conv1.b", 5, SST_P_NO_DECAY, &o2));
    SS_CHECK_INT(o1, 0);
    SS_CHECK_INT(o2 % 16, 0); /* 64-byte aligned tensors */
    SS_CHECK(o2 >= 288);
    SS_CHECK_STATUS(sst_params_add(&P, "x", 0, 0, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_params_add(&P, "a-name-that-is-far-too-long-for-the-arena-slot-x",
                                   1, 0, NULL),
                    SS_ERR_PARAM);
    SS_CHECK_OK(sst_params_alloc(&P));
    SS_CHECK(P.data && P.grad);
    SS_CHECK_STATUS(sst_params_add(&P, "late", 3, 0, NULL), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("after sst_params_alloc");
    SS_CHECK_INT(sst_params_find(&P, "conv1.b"), 1);
    SS_CHECK_INT(sst_params_find(&P, "nope"), -1);
    sst_params_grad(&P, o2)[0] = 3.0f;
    sst_params_zero_grad(&P);
    SS_CHECK(sst_params_grad(&P, o2)[0] == 0.0f);
    /* frozen tensors never move */
    sst_params_free(&P);
    sst_params_init(&P);
    SS_CHECK_OK(sst_params_add(&P, "w", 4, 0, &o1));
    SS_CHECK_OK(sst_params_add(&P, "running_mean", 4, SST_P_FROZEN, &o2));
    SS_CHECK_OK(sst_params_alloc(&P));
    for (int64_t i = 0; i < P.numel; i++) P.data[i] = 1.0f, P.grad[i] = 1.0f;
    float buf[64] = {0}, m2[64] = {0};
    sst_sgd_cfg sgd = {0.1, 0.9, 0.0, 0.01, 0};
    sst_adamw_cfg adam = {0.1, 0.9, 0.999, 1e-8, 0.01};
    sst_lars_cfg lars = {0.1, 0.9, 0.01, 0.001, 1e-8, 0, 1};
    SS_CHECK_OK(sst_sgd_step(&P, buf, &sgd, 1));
    SS_CHECK_OK(sst_adamw_step(&P, buf, m2, &adam, 1));
    SS_CHECK_OK(sst_lars_step(&P, buf, &lars, 1));
    SS_CHECK(P.data[o1] < 1.0f);
    for (int64_t i = 0; i < 4; i++) SS_CHECK(P.data[o2 + i] == 1.0f);
    sst_params_free(&P);
    sst_params_free(&P); /* idempotent */
}

SS_TEST(bad_inputs) {
    sst_params P;
    sst_params_init(&P);
    float buf[32] = {0};
    sst_sgd_cfg sgd = {0.1, 0.9, 0.0, 0.0, 0};
    SS_CHECK_STATUS(sst_sgd_step(&P, buf, &sgd, 1), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("arena not allocated");
    SS_CHECK_OK(sst_params_add(&P, "w", 8, 0, NULL));
    SS_CHECK_OK(sst_params_alloc(&P));
    SS_CHECK_STATUS(sst_sgd_step(&P, buf, &sgd, 0), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("step must be >= 1, got 0");
    SS_CHECK_STATUS(sst_sgd_step(&P, NULL, &sgd, 1), SS_ERR_NULL);
    sgd.lr = -1.0;
    SS_CHECK_STATUS(sst_sgd_step(&P, buf, &sgd, 1), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("lr must be finite and >= 0, got -1");
    sgd.lr = 0.1, sgd.nesterov = 1, sgd.dampening = 0.5;
    SS_CHECK_STATUS(sst_sgd_step(&P, buf, &sgd, 1), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("nesterov");
    sgd.nesterov = 0, sgd.momentum = 0.0, sgd.dampening = 0.0;
    SS_CHECK_OK(sst_sgd_step(&P, NULL, &sgd, 1)); /* no buffer needed */
    sst_adamw_cfg adam = {0.1, 1.0, 0.999, 1e-8, 0.0};
    SS_CHECK_STATUS(sst_adamw_step(&P, buf, buf + 16, &adam, 1), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("beta1 must be in [0, 1), got 1");
    adam.beta1 = 0.9, adam.eps = NAN;
    SS_CHECK_STATUS(sst_adamw_step(&P, buf, buf + 16, &adam, 1), SS_ERR_PARAM);
    SS_CHECK_STATUS(sst_adamw_step(&P, buf, NULL, &adam, 1), SS_ERR_NULL);
    sst_lars_cfg lars = {0.1, 0.9, 0.0, 0.0, 1e-8, 0, 0};
    SS_CHECK_STATUS(sst_lars_step(&P, buf, &lars, 1), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("eta must be finite and > 0, got 0");
    lars.eta = 0.001, lars.lr = 0.0, lars.clip_lr = 1;
    SS_CHECK_STATUS(sst_lars_step(&P, buf, &lars, 1), SS_ERR_PARAM);
    SS_CHECK_STATUS(sst_ema_update(buf, buf, 4, 1.5), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("m must be in [0, 1], got 1.5");
    SS_CHECK_STATUS(sst_ema_update(buf, NULL, 4, 0.5), SS_ERR_NULL);
    SS_CHECK_STATUS(sst_ema_update(buf, buf, 0, 0.5), SS_ERR_SIZE);
    sst_params_free(&P);
}

SS_TEST(torch_default_init) {
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    int64_t n = 100000, fan_in = 288;
    float *w = ss_test_alloc(n);
    sst_init_torch_default(w, n, fan_in, &rng);
    double bound = 1.0 / sqrt((double)fan_in), s = 0.0, q = 0.0, mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += w[i], q += (double)w[i] * w[i];
        mx = fmax(mx, fabs(w[i]));
    }
    SS_CHECK(mx <= bound);
    SS_CHECK(mx > 0.99 * bound);
    SS_CHECK_NEAR(s / n / bound, 0.0, 0.01);
    SS_CHECK_NEAR(q / n / (bound * bound), 1.0 / 3.0, 0.01); /* U variance */
    free(w);
}

/* The pieces compose: Linear -> BatchNorm1d -> ReLU -> Linear with softmax
 * cross-entropy (written here) on a separable toy task; AdamW with the
 * warm-up cosine schedule must cut the loss by 5x, and an EMA copy tracks. */
SS_TEST(tiny_mlp_trains) {
    enum { N = 64, D = 4, Hd = 16, K = 3, STEPS = 60 };
    ss_rng rng;
    ss_rng_seed(&rng, 12);
    sst_params P;
    sst_params_init(&P);
    int64_t w1, b1, g, be, w2, b2;
    SS_CHECK_OK(sst_params_add(&P, "fc1.w", Hd * D, 0, &w1));
    SS_CHECK_OK(sst_params_add(&P, "fc1.b", Hd, SST_P_NO_DECAY, &b1));
    SS_CHECK_OK(sst_params_add(&P, "bn.g", Hd, SST_P_NO_DECAY, &g));
    SS_CHECK_OK(sst_params_add(&P, "bn.b", Hd, SST_P_NO_DECAY, &be));
    SS_CHECK_OK(sst_params_add(&P, "fc2.w", K * Hd, 0, &w2));
    SS_CHECK_OK(sst_params_add(&P, "fc2.b", K, SST_P_NO_DECAY, &b2));
    SS_CHECK_OK(sst_params_alloc(&P));
    float *W = P.data;
    sst_init_torch_default(W + w1, Hd * D, D, &rng);
    sst_init_torch_default(W + b1, Hd, D, &rng);
    sst_init_torch_default(W + w2, K * Hd, Hd, &rng);
    sst_init_torch_default(W + b2, K, Hd, &rng);
    for (int i = 0; i < Hd; i++) W[g + i] = 1.0f;
    float x[N * D], h[N * Hd], a[N * Hd], z[N * K], dz[N * K], dh[N * Hd];
    float saved[2 * Hd], rm[Hd] = {0}, rv[Hd];
    int label[N];
    for (int i = 0; i < Hd; i++) rv[i] = 1.0f;
    for (int n = 0; n < N; n++) {
        label[n] = n % K;
        for (int j = 0; j < D; j++)
            x[n * D + j] = (float)(ss_rng_normal(&rng) * 0.5 +
                                   (j == label[n] ? 2.0 : 0.0));
    }
    float *m = ss_test_alloc(P.numel), *v = ss_test_alloc(P.numel);
    float *ema = ss_test_alloc(P.numel);
    memcpy(ema, P.data, P.numel * sizeof *ema);
    double first = 0.0, last = 0.0;
    for (int t = 0; t < STEPS; t++) {
        SS_CHECK_OK(sst_linear_forward(h, x, W + w1, W + b1, N, D, Hd));
        SS_CHECK_OK(sst_batchnorm_forward(a, saved, h, W + g, W + be, rm, rv, N,
                                          Hd, 1, SST_BN_EPS, SST_BN_MOMENTUM, 1));
        SS_CHECK_OK(sst_relu_forward(a, a, N * Hd));
        SS_CHECK_OK(sst_linear_forward(z, a, W + w2, W + b2, N, Hd, K));
        double loss = 0.0;
        for (int n = 0; n < N; n++) { /* mean softmax cross-entropy */
            double mx = z[n * K], s = 0.0;
            for (int k = 1; k < K; k++) mx = fmax(mx, z[n * K + k]);
            for (int k = 0; k < K; k++) s += exp(z[n * K + k] - mx);
            loss += mx + log(s) - z[n * K + label[n]];
            for (int k = 0; k < K; k++)
                dz[n * K + k] = (float)((exp(z[n * K + k] - mx) / s -
                                         (k == label[n])) / N);
        }
        loss /= N;
        if (t == 0) first = loss;
        last = loss;
        sst_params_zero_grad(&P);
        SS_CHECK_OK(sst_linear_backward(dh, P.grad + w2, P.grad + b2, dz, a,
                                        W + w2, N, Hd, K));
        SS_CHECK_OK(sst_relu_backward(dh, dh, a, N * Hd));
        SS_CHECK_OK(sst_batchnorm_backward(dh, P.grad + g, P.grad + be, dh,
                                           saved, h, W + g, N, Hd, 1, 1));
        SS_CHECK_OK(sst_linear_backward(NULL, P.grad + w1, P.grad + b1, dh, x,
                                        W + w1, N, D, Hd));
        sst_adamw_cfg c = {sst_lr_warmup_cosine(t, 5, STEPS, 0.0, 0.05, 0.0),
                           0.9, 0.999, 1e-8, 1e-4};
        SS_CHECK_OK(sst_adamw_step(&P, m, v, &c, t + 1));
        SS_CHECK_OK(sst_ema_update(ema, P.data, P.numel,
                                   sst_momentum_cosine(t, STEPS, 0.9, 1.0)));
    }
    if (!(last < first / 5) || getenv("SS_VERBOSE"))
        fprintf(stderr, "  loss %g -> %g\n", first, last);
    SS_CHECK(last < first / 5);
    double diff = 0.0;
    for (int64_t i = 0; i < P.numel; i++) diff = fmax(diff, fabs(ema[i] - P.data[i]));
    SS_CHECK(diff > 0.0 && diff < 1.0);
    free(m), free(v), free(ema);
    sst_params_free(&P);
}
