/* test_clip.c - CLIP loss: PyTorch (OpenCLIP) fixtures, finite differences
 * of the direct reference, tiled vs direct, accumulation, threads,
 * extremes, statuses. */
#include "direct_cross.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/cross.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    float loss, *losses, *da, *db, dt;
} clip_out;

/* Forward + backward; gradients accumulate onto the values already in out
 * (the caller pre-fills them). */
static ss_status run_clip(clip_out *o, const float *a, const float *b, float t,
                          int64_t N, int64_t D, int cosine, float dloss) {
    ss_clip_opts opt = ss_clip_defaults();
    opt.cosine = cosine;
    void *cache = malloc(ss_clip_cache_size(N, D));
    ss_status st =
        ss_clip_forward(&o->loss, o->losses, cache, a, b, t, N, D, &opt);
    if (st == SS_OK)
        st = ss_clip_backward(o->da, o->db, &o->dt, dloss, cache, a, b, t, N, D,
                              &opt);
    free(cache);
    return st;
}

static clip_out out_alloc(int64_t N, int64_t D) {
    clip_out o = {0, ss_test_alloc(N), ss_test_alloc(N * D),
                  ss_test_alloc(N * D), 0};
    return o;
}
static void out_free(clip_out *o) { free(o->losses), free(o->da), free(o->db); }

SS_TEST(matches_openclip_fixture) {
    ss_fixture *fx = fx_load("clip.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 11);
    for (int64_t c = 0; c < nc; c++) {
        char k[64];
#define E(name) (snprintf(k, sizeof k, "c%d_" name, (int)c), k)
        int64_t N = fx_int(fx, E("N")), D = fx_int(fx, E("D"));
        int cosine = (int)fx_int(fx, E("cosine"));
        float t = (float)fx_scalar(fx, E("log_scale"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *a = fx_f32_copy(fx, E("a"), NULL),
              *b = fx_f32_copy(fx, E("b"), NULL);
        clip_out o = out_alloc(N, D), acc = out_alloc(N, D);
        SS_CHECK_OK(run_clip(&o, a, b, t, N, D, cosine, dloss));
        float *pre = ss_test_alloc(2 * N * D); /* gradients accumulate */
        ss_test_fill_normal(pre, 2 * N * D, &rng);
        memcpy(acc.da, pre, N * D * sizeof(float));
        memcpy(acc.db, pre + N * D, N * D * sizeof(float));
        acc.dt = 0.25f;
        SS_CHECK_OK(run_clip(&acc, a, b, t, N, D, cosine, dloss));
        SS_CHECK(dc_accumulated(acc.da, pre, o.da, N * D));
        SS_CHECK(dc_accumulated(acc.db, pre + N * D, o.db, N * D));
        SS_CHECK(dc_accumulated(&acc.dt, (float[]){0.25f}, &o.dt, 1));
        out_free(&acc);
        double want = fx_scalar(fx, E("loss"));
        SS_CHECK(fabs(o.loss - want) <= 1e-4 * fmax(fabs(want), 1e-3));
        SS_CHECK_CLOSE_FD(o.losses, fx_f64(fx, E("losses"), NULL), N, 1e-4,
                          "losses");
        SS_CHECK_CLOSE_FD(o.da, fx_f64(fx, E("da"), NULL), N * D, 1e-4, "da");
        SS_CHECK_CLOSE_FD(o.db, fx_f64(fx, E("db"), NULL), N * D, 1e-4, "db");
        double wt = fx_scalar(fx, E("dlog_scale"));
        SS_CHECK(fabs(o.dt - wt) <= 1e-4 * fmax(fabs(wt), 1e-3));
#undef E
        out_free(&o);
        free(a), free(b), free(pre);
    }
    fx_free(fx);
}

/* ---- finite differences of the direct double reference ------------------- */

typedef struct {
    int64_t N, D;
    int cosine, which; /* which: 0 a, 1 b, 2 log_scale */
    double *a, *b, t;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    if (c->which == 2)
        return dc_clip(c->a, c->b, x[0], c->N, c->D, c->cosine, NULL, NULL,
                       NULL, NULL);
    return dc_clip(c->which == 0 ? x : c->a, c->which == 1 ? x : c->b, c->t,
                   c->N, c->D, c->cosine, NULL, NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    for (int cosine = 0; cosine < 2; cosine++) {
        int64_t N = 5, D = 4;
        fd_ctx c = {
            N,  D, cosine, 0, ss_test_alloc_d(N * D), ss_test_alloc_d(N * D),
            0.7};
        ss_test_fill_normal_d(c.a, N * D, &rng);
        ss_test_fill_normal_d(c.b, N * D, &rng);
        double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D), dt;
        dc_clip(c.a, c.b, c.t, N, D, cosine, NULL, da, db, &dt);
        c.which = 0;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.a, da, N * D, 1e-6, 1) < 1e-6);
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.b, db, N * D, 1e-6, 2) < 1e-6);
        c.which = 2;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, &c.t, &dt, 1, 1e-6, 3) < 1e-6);
        free(c.a), free(c.b), free(da), free(db);
    }
}

/* ---- tiled engine vs the direct reference
 * ---------------------------------------- */

static void check_vs_direct(int64_t N, int64_t D, int cosine, float t,
                            uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *a = ss_test_alloc(N * D), *b = ss_test_alloc(N * D);
    ss_test_fill_normal(a, N * D, &rng);
    ss_test_fill_normal(b, N * D, &rng);
    if (!cosine) /* keep raw logits moderate */
        for (int64_t i = 0; i < N * D; i++)
            a[i] /= (float)sqrt((double)D), b[i] *= 0.5f;
    double *ad = dc_to_double(a, N * D), *bd = dc_to_double(b, N * D);
    double *lw = ss_test_alloc_d(N), *daw = ss_test_alloc_d(N * D),
           *dbw = ss_test_alloc_d(N * D), dtw;
    double lossw = dc_clip(ad, bd, t, N, D, cosine, lw, daw, dbw, &dtw);
    clip_out o = out_alloc(N, D);
    SS_CHECK_OK(run_clip(&o, a, b, t, N, D, cosine, 1.0f));
    double tol = 1e-4;
    SS_CHECK(fabs(o.loss - lossw) <= tol * fmax(fabs(lossw), 1e-2));
    /* floors: per-pair losses are O(1); with D = 1 and cosine the true
     * gradient is exactly zero and float leaves ~1e-7 behind */
    double fl = D == 1 && cosine ? 1e-2 : 1e-3;
    DC_CHECK_GRAD(o.losses, lw, N, tol, 1e-2, "losses");
    DC_CHECK_GRAD(o.da, daw, N * D, tol, fl, "da");
    DC_CHECK_GRAD(o.db, dbw, N * D, tol, fl, "db");
    SS_CHECK(fabs(o.dt - dtw) <= tol * fmax(fabs(dtw), 1e-2));
    if (fabs(o.dt - dtw) > tol * fmax(fabs(dtw), 1e-2) ||
        fabs(o.loss - lossw) > tol * fmax(fabs(lossw), 1e-2))
        fprintf(stderr,
                "  N=%d D=%d cos=%d: loss %.9g vs %.9g, dt %.9g vs %.9g\n",
                (int)N, (int)D, cosine, o.loss, lossw, o.dt, dtw);
    out_free(&o);
    free(a), free(b), free(ad), free(bd), free(lw), free(daw), free(dbw);
}

SS_TEST(tiled_matches_direct_awkward_sizes) {
    const int64_t T = SS__CROSS_TILE;
    int64_t Ns[] = {1, 2, 3, T - 1, T, T + 1};
    for (int k = 0; k < 6; k++) {
        check_vs_direct(Ns[k], 3, 1, 2.66f, 100 + k);
        check_vs_direct(Ns[k], 5, 0, 0.3f, 200 + k);
    }
    check_vs_direct(3, 1, 1, 1.0f, 301);
    check_vs_direct(7, 1, 0, 1.0f, 302);
    check_vs_direct(3, 1000, 1, 2.0f, 303);
    check_vs_direct(T + 1, 17, 1, 4.6f, 304);
}

SS_TEST(thread_count_independent) {
    int64_t N = 2 * SS__CROSS_TILE + 37, D = 24;
    ss_rng rng;
    ss_rng_seed(&rng, 9);
    float *a = ss_test_alloc(N * D), *b = ss_test_alloc(N * D);
    ss_test_fill_normal(a, N * D, &rng);
    ss_test_fill_normal(b, N * D, &rng);
    clip_out o1 = out_alloc(N, D), o2 = out_alloc(N, D);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(run_clip(&o1, a, b, 2.0f, N, D, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(run_clip(&o2, a, b, 2.0f, N, D, 1, 1.0f));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(o1.loss, o2.loss, 1e-6);
    SS_CHECK_CLOSE_FF(o2.da, o1.da, N * D, 1e-5, "da 1 vs 2 threads");
    SS_CHECK_CLOSE_FF(o2.db, o1.db, N * D, 1e-5, "db 1 vs 2 threads");
    SS_CHECK_NEAR(o1.dt, o2.dt, 1e-5);
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
    float ts[] = {88.0f, 60.0f, 20.0f, -100.0f, -200.0f};
    for (int k = 0; k < 5; k++) {
        clip_out o = out_alloc(N, D);
        SS_CHECK_OK(run_clip(&o, a, b, ts[k], N, D, 1, 1.0f));
        SS_CHECK(isfinite(o.loss) && isfinite(o.dt));
        SS_CHECK(all_finite(o.losses, N) && all_finite(o.da, N * D) &&
                 all_finite(o.db, N * D));
        if (ts[k] < -50)
            SS_CHECK_NEAR(o.loss, log((double)N), 1e-5); /* uniform */
        out_free(&o);
    }
    /* a huge scale makes the loss a hard max: compare with the direct path */
    check_vs_direct(9, 4, 1, 30.0f, 77);
    free(a), free(b);
}

/* Finite inputs whose raw logits overflow float: an error, never NaN. */
SS_TEST(overflowing_logits_are_reported) {
    float a[4] = {1e20f, 0, 0, 1e20f}, b[4] = {1e20f, 1, 2, -1e20f}, loss = 3;
    float cache[64], *losses = ss_test_alloc(2);
    ss_clip_opts o = {.cosine = 0};
    SS_CHECK_STATUS(ss_clip_forward(&loss, losses, cache, a, b, 0, 2, 2, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("overflows");
    SS_CHECK(loss == 3.0f && losses[0] == 0.0f);
    free(losses);
}

SS_TEST(zero_row_is_finite) {
    int64_t N = 4, D = 3;
    float a[12] = {0}, b[12] = {1, 2, 3, -1, 0, 2, 0.5f, 0.5f, 0, 3, 1, -2};
    clip_out o = out_alloc(N, D);
    SS_CHECK_OK(run_clip(&o, a, b, 1.0f, N, D, 1, 1.0f));
    SS_CHECK(all_finite(o.da, N * D) && all_finite(o.db, N * D) &&
             isfinite(o.loss));
    out_free(&o);
}

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, loss, da[6],
          db[6];
    float cache[128]; /* float-aligned, as malloc would give */
    SS_CHECK(ss_clip_cache_size(N, D) <= sizeof cache);
    SS_CHECK(ss_clip_cache_size(0, D) == 0);
    SS_CHECK_MSG_HAS("N must be >= 1");
    SS_CHECK_STATUS(ss_clip_forward(NULL, NULL, cache, a, b, 1, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss");
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, NULL, a, b, 1, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache");
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, NULL, b, 1, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, NULL, 1, N, D, NULL),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("b must not be NULL");
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, 1, 0, D, NULL),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, 1, N, -1, NULL),
                    SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got -1");
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, 1,
                                    (int64_t)1 << 30, (int64_t)1 << 20, NULL),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, NAN, N, D, NULL),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("log_scale");
    SS_CHECK_STATUS(
        ss_clip_forward(&loss, NULL, cache, a, b, 89.0f, N, D, NULL),
        SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("got 89");
    SS_CHECK_STATUS(
        ss_clip_forward(&loss, NULL, cache, a, b, INFINITY, N, D, NULL),
        SS_ERR_PARAM);
    a[4] = NAN;
    loss = 123.0f;
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, 1, N, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("a[4]");
    SS_CHECK(loss == 123.0f); /* nothing written on failure */
    a[4] = 5;
    b[1] = -INFINITY;
    SS_CHECK_STATUS(ss_clip_forward(&loss, NULL, cache, a, b, 1, N, D, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("b[1]");
    b[1] = 0;
    SS_CHECK_OK(ss_clip_forward(&loss, NULL, cache, a, b, 1, N, D, NULL));
    for (int i = 0; i < 6; i++)
        da[i] = db[i] = 7.0f;
    SS_CHECK_STATUS(
        ss_clip_backward(NULL, db, NULL, 1, cache, a, b, 1, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_clip_backward(da, NULL, NULL, 1, cache, a, b, 1, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_clip_backward(da, db, NULL, 1, NULL, a, b, 1, N, D, NULL),
        SS_ERR_NULL);
    SS_CHECK_STATUS(
        ss_clip_backward(da, db, NULL, NAN, cache, a, b, 1, N, D, NULL),
        SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss");
    SS_CHECK_STATUS(
        ss_clip_backward(da, db, NULL, 1, cache, a, b, 2, N, D, NULL),
        SS_ERR_STATE);
    SS_CHECK_STATUS(
        ss_clip_backward(da, db, NULL, 1, cache, a, b, 1, N, 1, NULL),
        SS_ERR_STATE);
    a[5] = NAN;
    SS_CHECK_STATUS(
        ss_clip_backward(da, db, NULL, 1, cache, a, b, 1, N, D, NULL),
        SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("a[5]");
    a[5] = 6;
    for (int i = 0; i < 6; i++)
        SS_CHECK(da[i] == 7.0f && db[i] == 7.0f);
    SS_CHECK_OK(ss_clip_backward(da, db, NULL, 1, cache, a, b, 1, N, D, NULL));
}
