/* test_recon.c - reconstruction losses: PyTorch fixtures for every kind x
 * reduction x mask, finite differences on the direct reference, float vs
 * direct, empty mask, accumulation, threads, errors. */
#include "direct_predictive.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static ss_recon_opts opts_of(int kind, int red, double beta) {
    ss_recon_opts o = ss_recon_defaults((ss_recon_kind)kind);
    o.reduction = (ss_reduction)red, o.beta = (float)beta;
    return o;
}

SS_TEST(defaults) {
    ss_recon_opts o = ss_recon_defaults(SS_RECON_HUBER);
    SS_CHECK(o.kind == SS_RECON_HUBER && o.reduction == SS_REDUCE_MEAN);
    SS_CHECK(o.beta == 1.0f);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("recon.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 30);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t n = fx_int(fx, KEY("n")), m;
        int kind = (int)fx_int(fx, KEY("kind")), red = (int)fx_int(fx, KEY("reduction"));
        ss_recon_opts o = opts_of(kind, red, fx_scalar(fx, KEY("beta")));
        float *x = fx_f32_copy(fx, KEY("pred"), &m);
        float *y = fx_f32_copy(fx, KEY("target"), &m);
        float *up = fx_f32_copy(fx, KEY("dlosses"), &m);
        const int64_t *mk = fx_i64(fx, KEY("mask"), &m);
        SS_CHECK(x && y && up && mk && m == n);
        if (!x || !y || !up || !mk) continue;
        uint8_t *mask = NULL;
        if (fx_int(fx, KEY("has_mask"))) {
            mask = malloc((size_t)n);
            for (int64_t i = 0; i < n; i++) mask[i] = (uint8_t)mk[i];
        }
        float loss = 0, *losses = ss_test_alloc(n), *dx = ss_test_alloc(n);
        float *dy = ss_test_alloc(n);
        SS_CHECK_OK(ss_recon_forward(&loss, losses, x, y, mask, n, &o));
        SS_CHECK_OK(ss_recon_backward(dx, dy, 1.0f, up, x, y, mask, n, &o));
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK_CLOSE_FD(losses, fx_f64(fx, KEY("losses"), &m), n, 1e-4, "losses");
        SS_CHECK_CLOSE_FD(dx, fx_f64(fx, KEY("dpred"), &m), n, 1e-4, "dpred");
        SS_CHECK_CLOSE_FD(dy, fx_f64(fx, KEY("dtarget"), &m), n, 1e-4, "dtarget");
        /* direct reference vs PyTorch in double */
        double *ddx = ss_test_alloc_d(n), *ddy = ss_test_alloc_d(n);
        double l = ss_direct_recon(kind, red, fx_scalar(fx, KEY("beta")),
                                   fx_f64(fx, KEY("pred"), &m),
                                   fx_f64(fx, KEY("target"), &m), mask,
                                   fx_f64(fx, KEY("dlosses"), &m), n, ddx, ddy);
        if (red != 2) SS_CHECK_NEAR(l, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(ddx, fx_f64(fx, KEY("dpred"), &m), n) <= 1e-10);
        SS_CHECK(ss_test_rel_err_dd(ddy, fx_f64(fx, KEY("dtarget"), &m), n) <= 1e-10);
#undef KEY
        free(x), free(y), free(up), free(mask), free(losses), free(dx);
        free(dy), free(ddx), free(ddy);
    }
    fx_free(fx);
}

typedef struct {
    int kind, red, which;
    double beta;
    const double *other, *up;
    const uint8_t *mask;
    int64_t n;
} rc_ctx;

static double rc_f(const double *v, void *p) {
    rc_ctx *c = p;
    const double *x = c->which ? c->other : v, *y = c->which ? v : c->other;
    return ss_direct_recon(c->kind, c->red, c->beta, x, y, c->mask, c->up,
                           c->n, NULL, NULL);
}

SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    int64_t n = 30;
    double *x = ss_test_alloc_d(n), *y = ss_test_alloc_d(n);
    double *up = ss_test_alloc_d(n), *gx = ss_test_alloc_d(n);
    double *gy = ss_test_alloc_d(n);
    uint8_t mask[30];
    ss_test_fill_normal_d(x, n, &rng);
    ss_test_fill_normal_d(up, n, &rng);
    for (int64_t i = 0; i < n; i++) {
        mask[i] = ss_rng_uniform(&rng) < 0.7;
        /* keep |x - y| away from the kinks (0, beta) for the probes */
        double d = 0.2 + 2.0 * ss_rng_uniform(&rng);
        if (fabs(d - 0.7) < 0.05 || fabs(d - 1.3) < 0.05) d += 0.1;
        y[i] = x[i] - (i % 2 ? d : -d);
    }
    for (int kind = 0; kind < 5; kind++)
        for (int red = 0; red < 3; red++) {
            double beta = kind == 2 ? 0.7 : 1.3;
            ss_direct_recon(kind, red, beta, x, y, mask, up, n, gx, gy);
            rc_ctx c = {kind, red, 0, beta, y, up, mask, n};
            SS_CHECK(ss_test_fd_max_err(rc_f, &c, x, gx, n, 1e-6, 5) < 1e-6);
            c.which = 1, c.other = x;
            SS_CHECK(ss_test_fd_max_err(rc_f, &c, y, gy, n, 1e-6, 6) < 1e-6);
        }
    free(x), free(y), free(up), free(gx), free(gy);
}

SS_TEST(float_vs_direct_large) {
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    int64_t n = 300000; /* above the OpenMP threshold */
    float *x = ss_test_alloc(n), *y = ss_test_alloc(n), *dx = ss_test_alloc(n);
    double *xd = ss_test_alloc_d(n), *yd = ss_test_alloc_d(n);
    double *gx = ss_test_alloc_d(n);
    uint8_t *mask = malloc((size_t)n);
    ss_test_fill_normal(x, n, &rng);
    ss_test_fill_normal(y, n, &rng);
    for (int64_t i = 0; i < n; i++) {
        mask[i] = ss_rng_uniform(&rng) < 0.5;
        xd[i] = x[i], yd[i] = y[i];
    }
    for (int kind = 0; kind < 5; kind++) {
        ss_recon_opts o = opts_of(kind, 0, 0.9);
        float loss;
        memset(dx, 0, sizeof(float) * (size_t)n);
        SS_CHECK_OK(ss_recon_forward(&loss, NULL, x, y, mask, n, &o));
        SS_CHECK_OK(ss_recon_backward(dx, NULL, 1.0f, NULL, x, y, mask, n, &o));
        double want = ss_direct_recon(kind, 0, 0.9, xd, yd, mask, NULL, n, gx, NULL);
        SS_CHECK_NEAR(loss, want, 1e-5);
        SS_CHECK_CLOSE_FD(dx, gx, n, 1e-5, "dpred large");
    }
    free(x), free(y), free(dx), free(xd), free(yd), free(gx), free(mask);
}

SS_TEST(empty_mask_and_accumulation) {
    float x[4] = {1, 2, 3, 4}, y[4] = {0, 0, 0, 0}, dx[4] = {1, 1, 1, 1};
    uint8_t none[4] = {0, 0, 0, 0};
    float loss = -1;
    ss_recon_opts o = ss_recon_defaults(SS_RECON_MSE);
    SS_CHECK_OK(ss_recon_forward(&loss, NULL, x, y, none, 4, &o));
    SS_CHECK(loss == 0.0f);
    SS_CHECK_OK(ss_recon_backward(dx, NULL, 1.0f, NULL, x, y, none, 4, &o));
    for (int i = 0; i < 4; i++) SS_CHECK(dx[i] == 1.0f);
    /* accumulation: dx = 1 + 2 (x - y) * 2 / 4 */
    SS_CHECK_OK(ss_recon_backward(dx, NULL, 2.0f, NULL, x, y, NULL, 4, &o));
    for (int i = 0; i < 4; i++) SS_CHECK_NEAR(dx[i], 1.0f + x[i], 1e-6);
    /* L1 at d = 0 has gradient 0 as torch's sign */
    ss_recon_opts l1 = ss_recon_defaults(SS_RECON_L1);
    float z[1] = {0.5f}, dz[1] = {0};
    SS_CHECK_OK(ss_recon_backward(dz, NULL, 1.0f, NULL, z, z, NULL, 1, &l1));
    SS_CHECK(dz[0] == 0.0f);
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 2);
    int64_t n = 200000;
    float *x = ss_test_alloc(n), *y = ss_test_alloc(n);
    float *d1 = ss_test_alloc(n), *d2 = ss_test_alloc(n), l1, l2;
    ss_test_fill_normal(x, n, &rng);
    ss_test_fill_normal(y, n, &rng);
    ss_recon_opts o = ss_recon_defaults(SS_RECON_SMOOTH_L1);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(ss_recon_forward(&l1, NULL, x, y, NULL, n, &o));
    SS_CHECK_OK(ss_recon_backward(d1, NULL, 1.0f, NULL, x, y, NULL, n, &o));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(ss_recon_forward(&l2, NULL, x, y, NULL, n, &o));
    SS_CHECK_OK(ss_recon_backward(d2, NULL, 1.0f, NULL, x, y, NULL, n, &o));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(l1, l2, 1e-6);
    SS_CHECK(memcmp(d1, d2, sizeof(float) * (size_t)n) == 0);
    free(x), free(y), free(d1), free(d2);
}

SS_TEST(errors) {
    float x[3] = {1, 2, 3}, y[3] = {0, 1, 0}, l[3], dx[3] = {0}, loss = 7;
    ss_recon_opts o = ss_recon_defaults(SS_RECON_MSE);
    SS_CHECK_STATUS(ss_recon_forward(NULL, NULL, x, y, NULL, 3, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_recon_forward(&loss, NULL, NULL, y, NULL, 3, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("pred must not be NULL");
    SS_CHECK_STATUS(ss_recon_forward(&loss, NULL, x, NULL, NULL, 3, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_recon_forward(&loss, NULL, x, y, NULL, 0, &o), SS_ERR_SIZE);
    o.reduction = SS_REDUCE_NONE;
    SS_CHECK_STATUS(ss_recon_forward(&loss, NULL, x, y, NULL, 3, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("losses must not be NULL");
    SS_CHECK_STATUS(ss_recon_backward(dx, NULL, 1.0f, NULL, x, y, NULL, 3, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dlosses must not be NULL");
    float badup[3] = {1, NAN, 1};
    SS_CHECK_STATUS(ss_recon_backward(dx, NULL, 1.0f, badup, x, y, NULL, 3, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dlosses[1]");
    o = ss_recon_defaults((ss_recon_kind)7);
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("kind must be 0..4, got 7");
    o = ss_recon_defaults(SS_RECON_MSE);
    o.reduction = (ss_reduction)5;
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("reduction must be 0..2, got 5");
    o = ss_recon_defaults(SS_RECON_SMOOTH_L1);
    o.beta = -1.0f;
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("got -1");
    o = ss_recon_defaults(SS_RECON_HUBER);
    o.beta = 0.0f;
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_PARAM);
    o = ss_recon_defaults(SS_RECON_MSE);
    y[2] = INFINITY;
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("target[2]");
    y[2] = 0, x[0] = NAN;
    SS_CHECK_STATUS(ss_recon_forward(&loss, l, x, y, NULL, 3, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("pred[0]");
    SS_CHECK_STATUS(ss_recon_backward(dx, NULL, 1.0f, NULL, x, y, NULL, 3, &o),
                    SS_ERR_NONFINITE);
    x[0] = 1;
    SS_CHECK_STATUS(ss_recon_backward(NULL, NULL, 1.0f, NULL, x, y, NULL, 3, &o),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_recon_backward(dx, NULL, NAN, NULL, x, y, NULL, 3, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK(loss == 7.0f);
    for (int i = 0; i < 3; i++) SS_CHECK(dx[i] == 0.0f);
}
