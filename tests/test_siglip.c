/* test_siglip.c - SigLIP sigmoid loss: PyTorch (big_vision-style)
 * fixtures, finite differences of the direct reference, tiled vs direct,
 * accumulation, threads, extremes, statuses. */
#include "direct_cross.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/cross.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    float loss, *losses, *da, *db, dt, dbias;
} sig_out;

/* Forward + backward; gradients accumulate onto what out holds. */
static ss_status run_sig(sig_out *o, const float *a, const float *b, float t,
                         float bias, int64_t N, int64_t D, int cosine,
                         float dloss) {
    ss_siglip_opts opt = ss_siglip_defaults();
    opt.cosine = cosine;
    void *cache = malloc(ss_siglip_cache_size(N, D));
    ss_status st = ss_siglip_forward(&o->loss, o->losses, cache, a, b, t, bias,
                                     N, D, &opt);
    if (st == SS_OK)
        st = ss_siglip_backward(o->da, o->db, &o->dt, &o->dbias, dloss, cache,
                                a, b, t, bias, N, D, &opt);
    free(cache);
    return st;
}

static sig_out out_alloc(int64_t N, int64_t D) {
    sig_out o = {
        0, ss_test_alloc(N), ss_test_alloc(N * D), ss_test_alloc(N * D), 0, 0};
    return o;
}
static void out_free(sig_out *o) { free(o->losses), free(o->da), free(o->db); }

static int scalar_close(double got, double want, double tol) {
    int ok = fabs(got - want) <= tol * fmax(fabs(want), 1e-3);
    if (!ok) fprintf(stderr, "  %.9g vs %.9g\n", got, want);
    return ok;
}

SS_TEST(matches_big_vision_fixture) {
    ss_fixture *fx = fx_load("siglip.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 12);
    for (int64_t c = 0; c < nc; c++) {
        char k[64];
#define E(name) (snprintf(k, sizeof k, "c%d_" name, (int)c), k)
        int64_t N = fx_int(fx, E("N")), D = fx_int(fx, E("D"));
        int cosine = (int)fx_int(fx, E("cosine"));
        float t = (float)fx_scalar(fx, E("log_t")),
              bias = (float)fx_scalar(fx, E("bias"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *a = fx_f32_copy(fx, E("a"), NULL),
              *b = fx_f32_copy(fx, E("b"), NULL);
        sig_out o = out_alloc(N, D), acc = out_alloc(N, D);
        SS_CHECK_OK(run_sig(&o, a, b, t, bias, N, D, cosine, dloss));
        float *pre = ss_test_alloc(2 * N * D); /* gradients accumulate */
        ss_test_fill_normal(pre, 2 * N * D, &rng);
        memcpy(acc.da, pre, N * D * sizeof(float));
        memcpy(acc.db, pre + N * D, N * D * sizeof(float));
        acc.dt = 0.5f, acc.dbias = -0.25f;
        SS_CHECK_OK(run_sig(&acc, a, b, t, bias, N, D, cosine, dloss));
        SS_CHECK(dc_accumulated(acc.da, pre, o.da, N * D));
        SS_CHECK(dc_accumulated(acc.db, pre + N * D, o.db, N * D));
        SS_CHECK(dc_accumulated(&acc.dt, (float[]){0.5f}, &o.dt, 1));
        SS_CHECK(dc_accumulated(&acc.dbias, (float[]){-0.25f}, &o.dbias, 1));
        out_free(&acc);
        SS_CHECK(scalar_close(o.loss, fx_scalar(fx, E("loss")), 1e-4));
        SS_CHECK_CLOSE_FD(o.losses, fx_f64(fx, E("losses"), NULL), N, 1e-4,
                          "losses");
        SS_CHECK_CLOSE_FD(o.da, fx_f64(fx, E("da"), NULL), N * D, 1e-4, "da");
        SS_CHECK_CLOSE_FD(o.db, fx_f64(fx, E("db"), NULL), N * D, 1e-4, "db");
        SS_CHECK(scalar_close(o.dt, fx_scalar(fx, E("dlog_t")), 1e-4));
        SS_CHECK(scalar_close(o.dbias, fx_scalar(fx, E("dbias")), 1e-4));
#undef E
        out_free(&o);
        free(a), free(b), free(pre);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    int cosine, which; /* 0 a, 1 b, 2 log_t, 3 bias */
    double *a, *b, t, bias;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    return dc_siglip(c->which == 0 ? x : c->a, c->which == 1 ? x : c->b,
                     c->which == 2 ? x[0] : c->t,
                     c->which == 3 ? x[0] : c->bias, c->N, c->D, c->cosine,
                     NULL, NULL, NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    for (int cosine = 0; cosine < 2; cosine++) {
        int64_t N = 5, D = 4;
        fd_ctx c = {
            N,   D,   cosine, 0, ss_test_alloc_d(N * D), ss_test_alloc_d(N * D),
            1.2, -2.0};
        ss_test_fill_normal_d(c.a, N * D, &rng);
        ss_test_fill_normal_d(c.b, N * D, &rng);
        double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D), dt,
               dbias;
        dc_siglip(c.a, c.b, c.t, c.bias, N, D, cosine, NULL, da, db, &dt,
                  &dbias);
        c.which = 0;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.a, da, N * D, 1e-6, 1) < 1e-6);
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.b, db, N * D, 1e-6, 2) < 1e-6);
        c.which = 2;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, &c.t, &dt, 1, 1e-6, 3) < 1e-6);
        c.which = 3;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, &c.bias, &dbias, 1, 1e-6, 4) <
                 1e-6);
        free(c.a), free(c.b), free(da), free(db);
    }
}

static void check_vs_direct(int64_t N, int64_t D, int cosine, float t,
                            float bias, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *a = ss_test_alloc(N * D), *b = ss_test_alloc(N * D);
    ss_test_fill_normal(a, N * D, &rng);
    ss_test_fill_normal(b, N * D, &rng);
    if (!cosine)
        for (int64_t i = 0; i < N * D; i++)
            a[i] /= (float)sqrt((double)D);
    double *ad = dc_to_double(a, N * D), *bd = dc_to_double(b, N * D);
    double *lw = ss_test_alloc_d(N), *daw = ss_test_alloc_d(N * D),
           *dbw = ss_test_alloc_d(N * D);
    double dtw, dbw1;
    double lossw =
        dc_siglip(ad, bd, t, bias, N, D, cosine, lw, daw, dbw, &dtw, &dbw1);
    sig_out o = out_alloc(N, D);
    SS_CHECK_OK(run_sig(&o, a, b, t, bias, N, D, cosine, 1.0f));
    double tol = 1e-4, fl = D == 1 && cosine ? 1e-2 : 1e-3;
    SS_CHECK(scalar_close(o.loss, lossw, tol));
    DC_CHECK_GRAD(o.losses, lw, N, tol, 1e-2, "losses");
    DC_CHECK_GRAD(o.da, daw, N * D, tol, fl, "da");
    DC_CHECK_GRAD(o.db, dbw, N * D, tol, fl, "db");
    SS_CHECK(scalar_close(o.dt, dtw, tol));
    SS_CHECK(scalar_close(o.dbias, dbw1, tol));
    out_free(&o);
    free(a), free(b), free(ad), free(bd), free(lw), free(daw), free(dbw);
}

SS_TEST(tiled_matches_direct_awkward_sizes) {
    const int64_t T = SS__CROSS_TILE;
    int64_t Ns[] = {1, 2, 3, T - 1, T, T + 1};
    for (int k = 0; k < 6; k++) {
        check_vs_direct(Ns[k], 3, 1, 2.3f, -10.0f, 100 + k);
        check_vs_direct(Ns[k], 5, 0, 0.2f, -1.0f, 200 + k);
    }
    check_vs_direct(3, 1, 1, 1.0f, 0.0f, 301);
    check_vs_direct(3, 1000, 1, 2.0f, -2.0f, 303);
    check_vs_direct(T + 1, 17, 1, 4.0f, 3.0f, 304);
}

SS_TEST(thread_count_independent) {
    int64_t N = 2 * SS__CROSS_TILE + 37, D = 24;
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    float *a = ss_test_alloc(N * D), *b = ss_test_alloc(N * D);
    ss_test_fill_normal(a, N * D, &rng);
    ss_test_fill_normal(b, N * D, &rng);
    sig_out o1 = out_alloc(N, D), o2 = out_alloc(N, D);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(run_sig(&o1, a, b, 2.3f, -10.0f, N, D, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(run_sig(&o2, a, b, 2.3f, -10.0f, N, D, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(o1.loss, o2.loss, 1e-6);
    SS_CHECK_CLOSE_FF(o2.da, o1.da, N * D, 1e-5, "da 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(o2.db, o1.db, N * D, 1e-5, "db 1 vs 2 threads");
    SS_CHECK_NEAR(o1.dt, o2.dt, 1e-5);
    SS_CHECK_NEAR(o1.dbias, o2.dbias, 1e-5);
    out_free(&o1), out_free(&o2);
    free(a), free(b);
}

static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

SS_TEST(extreme_parameters_stay_finite) {
    int64_t N = 40, D = 8;
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    float *a = ss_test_alloc(N * D), *b = ss_test_alloc(N * D);
    ss_test_fill_normal(a, N * D, &rng);
    ss_test_fill_normal(b, N * D, &rng);
    float ts[] = {60.0f, 30.0f, -100.0f, 2.3f, 2.3f};
    float bs[] = {0.0f, -1e30f, 1e30f, 1e4f, -1e4f};
    for (int k = 0; k < 5; k++) {
        sig_out o = out_alloc(N, D);
        SS_CHECK_OK(run_sig(&o, a, b, ts[k], bs[k], N, D, 1, 1.0f));
        SS_CHECK(isfinite(o.loss) && isfinite(o.dt) && isfinite(o.dbias));
        SS_CHECK(all_finite(o.losses, N) && all_finite(o.da, N * D) &&
                 all_finite(o.db, N * D));
        out_free(&o);
    }
    /* e^88 * N overflows the loss: reported, never a NaN */
    sig_out big = out_alloc(N, D);
    ss_status st = run_sig(&big, a, b, 88.0f, 0.0f, N, D, 1, 1.0f);
    SS_CHECK(st == SS_ERR_NONFINITE || (st == SS_OK && isfinite(big.loss)));
    out_free(&big);
    /* bias -1e4: every negative is free, every positive costs ~1e4 */
    sig_out o = out_alloc(N, D);
    SS_CHECK_OK(run_sig(&o, a, b, 0.0f, -1e4f, N, D, 1, 1.0f));
    SS_CHECK_NEAR(o.loss, 1e4, 1e-5);
    SS_CHECK_NEAR(o.dbias, -1.0, 1e-5);
    out_free(&o);
    free(a), free(b);
}

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, loss, da[6],
          db[6];
    float cache[128]; /* float-aligned, as malloc would give */
    SS_CHECK(ss_siglip_cache_size(N, D) <= sizeof cache);
    SS_CHECK(ss_siglip_cache_size(N, 0) == 0);
    SS_CHECK_STATUS(
        ss_siglip_forward(NULL, NULL, cache, a, b, 1, 0, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, NULL, a, b, 1, 0, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, NULL, b, 1, 0, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_MSG_HAS("a must not be NULL");
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, NULL, 1, 0, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, 1, 0, -2, D, NULL),
        SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got -2");
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, 1, 0, N, 0, NULL),
        SS_ERR_SIZE);
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, 100.0f, 0, N, D, NULL),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("log_t");
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, NAN, 0, N, D, NULL),
        SS_ERR_PARAM);
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, 1, INFINITY, N, D, NULL),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("bias must be finite, got inf");
    b[3] = NAN;
    loss = 5.0f;
    SS_CHECK_STATUS(
        ss_siglip_forward(&loss, NULL, cache, a, b, 1, 0, N, D, NULL),
        SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("b[3]");
    SS_CHECK(loss == 5.0f);
    b[3] = 1;
    SS_CHECK_OK(ss_siglip_forward(&loss, NULL, cache, a, b, 1, 0, N, D, NULL));
    for (int i = 0; i < 6; i++)
        da[i] = db[i] = 3.0f;
    SS_CHECK_STATUS(ss_siglip_backward(NULL, db, NULL, NULL, 1, cache, a, b, 1,
                                       0, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_siglip_backward(da, NULL, NULL, NULL, 1, cache, a, b, 1,
                                       0, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_siglip_backward(da, db, NULL, NULL, 1, NULL, a, b, 1, 0, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(ss_siglip_backward(da, db, NULL, NULL, INFINITY, cache, a,
                                       b, 1, 0, N, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_STATUS(ss_siglip_backward(da, db, NULL, NULL, 1, cache, a, b, 1,
                                       0.5f, N, D, NULL),
                    SS_ERR_STATE);
    a[0] = INFINITY;
    SS_CHECK_STATUS(ss_siglip_backward(da, db, NULL, NULL, 1, cache, a, b, 1, 0,
                                       N, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("a[0]");
    a[0] = 1;
    for (int i = 0; i < 6; i++)
        SS_CHECK(da[i] == 3.0f && db[i] == 3.0f);
    SS_CHECK_OK(ss_siglip_backward(da, db, NULL, NULL, 1, cache, a, b, 1, 0, N,
                                   D, NULL));
}
