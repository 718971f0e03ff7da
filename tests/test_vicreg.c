/* test_vicreg.c - VICReg: PyTorch (lightly) fixtures through both
 * formulations, finite differences of the direct reference, Gram vs D x D
 * vs direct at awkward sizes, accumulation, threads, statuses (N = 1). */
#include "direct_redundancy.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static const ss_moment_form FORMS[3] = {SS_MOMENT_AUTO, SS_MOMENT_GRAM, SS_MOMENT_DXD};

/* Forward + backward; da, db accumulate onto what they hold. */
static ss_status run_vr(float *loss, float *terms, float *da, float *db,
                        const float *a, const float *b, int64_t N, int64_t D,
                        const ss_vicreg_opts *o, float dloss) {
    void *cache = malloc(ss_vicreg_cache_size(N, D, o));
    ss_status st = ss_vicreg_forward(loss, terms, cache, a, b, N, D, o);
    if (st == SS_OK) st = ss_vicreg_backward(da, db, dloss, cache, a, b, N, D, o);
    free(cache);
    return st;
}

static int near_rel(double got, double want, double tol, double floor) {
    return fabs(got - want) <= tol * fmax(fabs(want), floor);
}

SS_TEST(matches_lightly_fixture_both_forms) {
    ss_fixture *fx = fx_load("vicreg.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 22);
    for (int64_t c = 0; c < nc; c++) {
        char k[64];
#define E(name) (snprintf(k, sizeof k, "c%d_" name, (int)c), k)
        int64_t N = fx_int(fx, E("N")), D = fx_int(fx, E("D")), n = N * D;
        ss_vicreg_opts o = ss_vicreg_defaults();
        o.lambda = (float)fx_scalar(fx, E("lambda"));
        o.mu = (float)fx_scalar(fx, E("mu"));
        o.nu = (float)fx_scalar(fx, E("nu"));
        o.eps = (float)fx_scalar(fx, E("eps"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *a = fx_f32_copy(fx, E("a"), NULL), *b = fx_f32_copy(fx, E("b"), NULL);
        const double *wt = fx_f64(fx, E("terms"), NULL);
        double want = fx_scalar(fx, E("loss"));
        for (int f = 0; f < 3; f++) {
            o.form = FORMS[f];
            float *pre = ss_test_alloc(2 * n), *da = ss_test_alloc(n), *db = ss_test_alloc(n);
            float loss, t[3];
            ss_test_fill_normal(pre, 2 * n, &rng);
            memcpy(da, pre, n * sizeof(float)), memcpy(db, pre + n, n * sizeof(float));
            SS_CHECK_OK(run_vr(&loss, t, da, db, a, b, N, D, &o, dloss));
            for (int64_t i = 0; i < n; i++) da[i] -= pre[i], db[i] -= pre[n + i];
            SS_CHECK(near_rel(loss, want, 1e-4, 1e-2));
            for (int i = 0; i < 3; i++) SS_CHECK(near_rel(t[i], wt[i], 1e-4, 1e-2));
            if (!near_rel(loss, want, 1e-4, 1e-2))
                fprintf(stderr, "  case %d form %d: loss %.9g vs %.9g\n", (int)c, f, loss, want);
            SS_CHECK_CLOSE_FD(da, fx_f64(fx, E("da"), NULL), n, 1e-4, "da");
            SS_CHECK_CLOSE_FD(db, fx_f64(fx, E("db"), NULL), n, 1e-4, "db");
            free(pre), free(da), free(db);
        }
#undef E
        free(a), free(b);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    double lambda, mu, nu, eps, *a, *b;
    int which;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    return dr_vicreg(c->which ? c->a : x, c->which ? x : c->b, c->N, c->D, c->lambda,
                     c->mu, c->nu, c->eps, NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 16);
    int64_t sizes[3][2] = {{5, 4}, {3, 7}, {2, 3}};
    for (int s = 0; s < 3; s++) {
        int64_t N = sizes[s][0], D = sizes[s][1];
        fd_ctx c = {N, D, 25, 25, 1, 1e-4, ss_test_alloc_d(N * D), ss_test_alloc_d(N * D), 0};
        ss_test_fill_normal_d(c.a, N * D, &rng);
        ss_test_fill_normal_d(c.b, N * D, &rng);
        for (int64_t i = 0; i < N * D; i++) c.a[i] *= 0.6, c.b[i] *= 0.9; /* hinge active */
        double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D);
        dr_vicreg(c.a, c.b, N, D, c.lambda, c.mu, c.nu, c.eps, NULL, da, db);
        c.which = 0;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.a, da, N * D, 1e-6, 1) < 1e-5);
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.b, db, N * D, 1e-6, 2) < 1e-5);
        free(c.a), free(c.b), free(da), free(db);
    }
}

static void check_vs_direct(int64_t N, int64_t D, float scale, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t n = N * D;
    float *a = ss_test_alloc(n), *b = ss_test_alloc(n);
    ss_test_fill_normal(a, n, &rng);
    ss_test_fill_normal(b, n, &rng);
    for (int64_t i = 0; i < n; i++) a[i] *= scale, b[i] = a[i] + 0.3f * b[i] + 1.0f;
    double *ad = ss_test_alloc_d(n), *bd = ss_test_alloc_d(n), *daw = ss_test_alloc_d(n),
           *dbw = ss_test_alloc_d(n), tw[3];
    for (int64_t i = 0; i < n; i++) ad[i] = a[i], bd[i] = b[i];
    double want = dr_vicreg(ad, bd, N, D, 25, 25, 1, 1e-4, tw, daw, dbw);
    ss_vicreg_opts o = ss_vicreg_defaults();
    float *g[3][2];
    for (int f = 0; f < 3; f++) {
        o.form = FORMS[f];
        float loss, t[3];
        g[f][0] = ss_test_alloc(n), g[f][1] = ss_test_alloc(n);
        SS_CHECK_OK(run_vr(&loss, t, g[f][0], g[f][1], a, b, N, D, &o, 1.0f));
        SS_CHECK(near_rel(loss, want, 1e-4, 1e-2));
        SS_CHECK(near_rel(t[2], tw[2], 1e-4, 1e-2));
        if (!near_rel(loss, want, 1e-4, 1e-2))
            fprintf(stderr, "  N=%d D=%d form %d: loss %.9g vs %.9g\n", (int)N, (int)D, f,
                    loss, want);
        SS_CHECK_CLOSE_FD(g[f][0], daw, n, 1e-4, "da vs direct");
        SS_CHECK_CLOSE_FD(g[f][1], dbw, n, 1e-4, "db vs direct");
    }
    SS_CHECK_CLOSE_FF(g[1][0], g[2][0], n, 1e-4, "da Gram vs DxD");
    SS_CHECK_CLOSE_FF(g[1][1], g[2][1], n, 1e-4, "db Gram vs DxD");
    for (int f = 0; f < 3; f++) free(g[f][0]), free(g[f][1]);
    free(a), free(b), free(ad), free(bd), free(daw), free(dbw);
}

SS_TEST(gram_and_dxd_match_direct_awkward_sizes) {
    int64_t Ns[] = {2, 3, 17, 65}, Ds[] = {1, 3, 40};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) check_vs_direct(Ns[i], Ds[j], 0.7f, 100 + 10 * i + j);
    check_vs_direct(3, 1000, 0.7f, 7);  /* N << D: the Gram case */
    check_vs_direct(130, 70, 2.0f, 8);  /* hinge off, several SYRK tiles */
    check_vs_direct(70, 130, 0.3f, 9);
}

SS_TEST(constant_input_finite) {
    /* zero variance: std = sqrt(eps), the hinge is fully active, no NaN */
    int64_t N = 4, D = 3, n = 12;
    float a[12], b[12], da[12] = {0}, db[12] = {0}, loss, t[3];
    for (int i = 0; i < n; i++) a[i] = 2.0f, b[i] = -1.0f;
    SS_CHECK_OK(run_vr(&loss, t, da, db, a, b, N, D, NULL, 1.0f));
    SS_CHECK_NEAR(t[1], 1.0 - 1e-2, 1e-6);
    SS_CHECK_NEAR(t[0], 9.0, 1e-6);
    SS_CHECK(t[2] == 0.0f);
    for (int i = 0; i < n; i++) SS_CHECK(isfinite(da[i]) && isfinite(db[i]));
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 43);
    /* Gram and D x D with several SYRK tiles, then both with more than
     * SS__PAR_STREAM elements so the streaming loops run parallel too */
    int64_t shapes[4][2] = {{300, 600}, {600, 300}, {64, 17000}, {17000, 64}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], D = shapes[s][1], n = N * D;
        float *a = ss_test_alloc(n), *b = ss_test_alloc(n), *d1 = ss_test_alloc(2 * n),
              *d2 = ss_test_alloc(2 * n), l1, l2;
        ss_test_fill_normal(a, n, &rng);
        ss_test_fill_normal(b, n, &rng);
        SS_CHECK_OK(ss_set_num_threads(1));
        SS_CHECK_OK(run_vr(&l1, NULL, d1, d1 + n, a, b, N, D, NULL, 1.0f));
        SS_CHECK_OK(ss_set_num_threads(2));
        SS_CHECK_OK(run_vr(&l2, NULL, d2, d2 + n, a, b, N, D, NULL, 1.0f));
        SS_CHECK_OK(ss_set_num_threads(0));
        SS_CHECK_NEAR(l1, l2, 1e-6);
        SS_CHECK_CLOSE_FF(d2, d1, 2 * n, 1e-5, "grad 1 vs 2 threads");
        free(a), free(b), free(d1), free(d2);
    }
}

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float a[6] = {1, 2, 3, 4, 5, 7}, b[6] = {1, 0, 0, 1, 1, 1}, loss, da[6], db[6];
    char cache[1024];
    ss_vicreg_opts o = ss_vicreg_defaults();
    SS_CHECK(ss_vicreg_cache_size(N, D, NULL) <= sizeof cache);
    SS_CHECK(ss_vicreg_cache_size(1, D, NULL) == 0);
    loss = 3.0f;
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, 1, D, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 2");
    SS_CHECK_MSG_HAS("N - 1");
    SS_CHECK(loss == 3.0f); /* never NaN, never written */
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, 0, D, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, -3, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got -3");
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, (int64_t)1 << 30,
                                      (int64_t)1 << 20, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_vicreg_forward(NULL, NULL, cache, a, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, NULL, a, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, NULL, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("a must not be NULL");
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, NULL, N, D, NULL), SS_ERR_NULL);
    const char *names[4] = {"lambda", "mu", "nu", "eps"};
    for (int k = 0; k < 4; k++) {
        o = ss_vicreg_defaults();
        float *field = k == 0 ? &o.lambda : k == 1 ? &o.mu : k == 2 ? &o.nu : &o.eps;
        *field = NAN;
        SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS(names[k]);
    }
    o = ss_vicreg_defaults();
    o.eps = -1e-4f;
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("eps must be finite and >= 0, got -0.0001");
    o = ss_vicreg_defaults();
    o.form = (ss_moment_form)-1;
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("form");
    o = ss_vicreg_defaults();
    b[4] = NAN;
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("b[4]");
    b[4] = 1;
    a[1] = INFINITY;
    SS_CHECK_STATUS(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("a[1]");
    a[1] = 2;
    SS_CHECK_OK(ss_vicreg_forward(&loss, NULL, cache, a, b, N, D, &o));
    for (int i = 0; i < 6; i++) da[i] = db[i] = 7.0f;
    SS_CHECK_STATUS(ss_vicreg_backward(NULL, db, 1, cache, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_vicreg_backward(da, NULL, 1, cache, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, NULL, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, NAN, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss");
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, cache, a, b, 1, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, cache, a, b, 2, D, &o), SS_ERR_STATE);
    o.mu = 3.0f;
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_STATE);
    o = ss_vicreg_defaults();
    o.form = SS_MOMENT_GRAM;
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_STATE);
    o = ss_vicreg_defaults();
    b[0] = -INFINITY;
    SS_CHECK_STATUS(ss_vicreg_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    b[0] = 1;
    for (int i = 0; i < 6; i++) SS_CHECK(da[i] == 7.0f && db[i] == 7.0f);
    SS_CHECK_OK(ss_vicreg_backward(da, db, 1, cache, a, b, N, D, &o));
}
