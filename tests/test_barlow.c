/* test_barlow.c - Barlow Twins: PyTorch (lightly) fixtures through both
 * formulations, finite differences of the direct reference, Gram vs D x D
 * vs direct at awkward sizes, accumulation, threads, statuses. */
#include "direct_redundancy.h"
#include "fixture.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* max_i |got_i - want_i| / max(max_i |want_i|, floor). With N = 2 each
 * standardised column is +-sqrt(v / (v + eps)) and the true gradient is
 * O(bn_eps): float32 resolves it only relative to the O(1) terms that
 * cancel, so those cases are judged against that scale (GRAD_FLOOR_N2). */
static double err_floor(const float *got, const double *want, int64_t n,
                        double floor) {
    double e = 0, m = floor;
    for (int64_t i = 0; i < n; i++) {
        e = fmax(e, fabs(got[i] - want[i]));
        m = fmax(m, fabs(want[i]));
    }
    return e / m;
}
#define GRAD_FLOOR 1e-3
#define GRAD_FLOOR_N2 1e-1
#define CHECK_GRAD(got, want, n, N, what)                                          \
    do {                                                                          \
        double e__ = err_floor(got, want, n, (N) == 2 ? GRAD_FLOOR_N2 : GRAD_FLOOR); \
        ss_test_checks++;                                                         \
        if (!(e__ <= 1e-4))                                                       \
            ss_test_fail_at(__FILE__, __LINE__, "%s (N=%d): rel err %.3g > 1e-4", \
                            what, (int)(N), e__);                                 \
    } while (0)

static const ss_moment_form FORMS[3] = {SS_MOMENT_AUTO, SS_MOMENT_GRAM, SS_MOMENT_DXD};

/* Forward + backward; da, db accumulate onto what they hold. */
static ss_status run_bt(float *loss, float *terms, float *da, float *db,
                        const float *a, const float *b, int64_t N, int64_t D,
                        const ss_barlow_opts *o, float dloss) {
    void *cache = malloc(ss_barlow_cache_size(N, D, o));
    ss_status st = ss_barlow_forward(loss, terms, cache, a, b, N, D, o);
    if (st == SS_OK) st = ss_barlow_backward(da, db, dloss, cache, a, b, N, D, o);
    free(cache);
    return st;
}

SS_TEST(matches_lightly_fixture_both_forms) {
    ss_fixture *fx = fx_load("barlow.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t nc = fx_int(fx, "ncases");
    SS_CHECK(nc > 0);
    ss_rng rng;
    ss_rng_seed(&rng, 21);
    for (int64_t c = 0; c < nc; c++) {
        char k[64];
#define E(name) (snprintf(k, sizeof k, "c%d_" name, (int)c), k)
        int64_t N = fx_int(fx, E("N")), D = fx_int(fx, E("D")), n = N * D;
        ss_barlow_opts o = ss_barlow_defaults();
        o.lambda = (float)fx_scalar(fx, E("lambda"));
        o.bn_eps = (float)fx_scalar(fx, E("bn_eps"));
        float dloss = (float)fx_scalar(fx, E("dloss"));
        float *a = fx_f32_copy(fx, E("a"), NULL), *b = fx_f32_copy(fx, E("b"), NULL);
        const double *wterms = fx_f64(fx, E("terms"), NULL);
        double want = fx_scalar(fx, E("loss"));
        for (int f = 0; f < 3; f++) {
            o.form = FORMS[f];
            float *pre = ss_test_alloc(2 * n), *da = ss_test_alloc(n), *db = ss_test_alloc(n);
            float loss, terms[2];
            ss_test_fill_normal(pre, 2 * n, &rng);
            memcpy(da, pre, n * sizeof(float)), memcpy(db, pre + n, n * sizeof(float));
            SS_CHECK_OK(run_bt(&loss, terms, da, db, a, b, N, D, &o, dloss));
            for (int64_t i = 0; i < n; i++) da[i] -= pre[i], db[i] -= pre[n + i];
            SS_CHECK(fabs(loss - want) <= 1e-4 * fmax(fabs(want), 1e-2));
            SS_CHECK(fabs(terms[0] - wterms[0]) <= 1e-4 * fmax(fabs(wterms[0]), 1e-2));
            SS_CHECK(fabs(terms[1] - wterms[1]) <= 1e-4 * fmax(fabs(wterms[1]), 1e-2));
            CHECK_GRAD(da, fx_f64(fx, E("da"), NULL), n, N, "da");
            CHECK_GRAD(db, fx_f64(fx, E("db"), NULL), n, N, "db");
            if (fabs(loss - want) > 1e-4 * fmax(fabs(want), 1e-2))
                fprintf(stderr, "  case %d form %d: loss %.9g vs %.9g\n", (int)c, f, loss, want);
            free(pre), free(da), free(db);
        }
#undef E
        free(a), free(b);
    }
    fx_free(fx);
}

typedef struct {
    int64_t N, D;
    double lambda, eps, *a, *b;
    int which;
} fd_ctx;

static double fd_f(const double *x, void *vc) {
    fd_ctx *c = vc;
    return dr_barlow(c->which ? c->a : x, c->which ? x : c->b, c->N, c->D, c->lambda,
                     c->eps, NULL, NULL, NULL);
}

SS_TEST(direct_reference_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t sizes[3][2] = {{5, 4}, {3, 7}, {2, 3}};
    for (int s = 0; s < 3; s++) {
        int64_t N = sizes[s][0], D = sizes[s][1];
        fd_ctx c = {N, D, 0.05, 1e-5, ss_test_alloc_d(N * D), ss_test_alloc_d(N * D), 0};
        ss_test_fill_normal_d(c.a, N * D, &rng);
        ss_test_fill_normal_d(c.b, N * D, &rng);
        double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D);
        dr_barlow(c.a, c.b, N, D, c.lambda, c.eps, NULL, da, db);
        c.which = 0;
        /* h = 1e-4: with N = 2 the gradient is O(bn_eps) and a smaller
         * step drowns it in rounding */
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.a, da, N * D, 1e-4, 1) < 1e-5);
        c.which = 1;
        SS_CHECK(ss_test_fd_max_err(fd_f, &c, c.b, db, N * D, 1e-4, 2) < 1e-5);
        free(c.a), free(c.b), free(da), free(db);
    }
}

/* Both formulations against the direct reference; loss and gradients. */
static void check_vs_direct(int64_t N, int64_t D, float lambda, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t n = N * D;
    float *a = ss_test_alloc(n), *b = ss_test_alloc(n);
    ss_test_fill_normal(a, n, &rng);
    ss_test_fill_normal(b, n, &rng);
    for (int64_t i = 0; i < n; i++) b[i] = 0.6f * a[i] + 0.8f * b[i] + 0.3f;
    double *ad = ss_test_alloc_d(n), *bd = ss_test_alloc_d(n), *daw = ss_test_alloc_d(n),
           *dbw = ss_test_alloc_d(n), tw[2];
    for (int64_t i = 0; i < n; i++) ad[i] = a[i], bd[i] = b[i];
    double want = dr_barlow(ad, bd, N, D, lambda, 1e-5, tw, daw, dbw);
    ss_barlow_opts o = ss_barlow_defaults();
    o.lambda = lambda;
    float *g[3][2];
    for (int f = 0; f < 3; f++) {
        o.form = FORMS[f];
        float loss, terms[2];
        g[f][0] = ss_test_alloc(n), g[f][1] = ss_test_alloc(n);
        SS_CHECK_OK(run_bt(&loss, terms, g[f][0], g[f][1], a, b, N, D, &o, 1.0f));
        SS_CHECK(fabs(loss - want) <= 1e-4 * fmax(fabs(want), 1e-2));
        SS_CHECK(fabs(terms[1] - tw[1]) <= 1e-4 * fmax(fabs(tw[1]), 1e-2));
        if (fabs(loss - want) > 1e-4 * fmax(fabs(want), 1e-2))
            fprintf(stderr, "  N=%d D=%d form %d: loss %.9g vs %.9g\n", (int)N, (int)D, f,
                    loss, want);
        CHECK_GRAD(g[f][0], daw, n, N, "da vs direct");
        CHECK_GRAD(g[f][1], dbw, n, N, "db vs direct");
    }
    SS_CHECK_CLOSE_FF(g[1][0], g[2][0], n, 1e-4, "da Gram vs DxD");
    SS_CHECK_CLOSE_FF(g[1][1], g[2][1], n, 1e-4, "db Gram vs DxD");
    for (int f = 0; f < 3; f++) free(g[f][0]), free(g[f][1]);
    free(a), free(b), free(ad), free(bd), free(daw), free(dbw);
}

SS_TEST(gram_and_dxd_match_direct_awkward_sizes) {
    int64_t Ns[] = {2, 3, 17, 65}, Ds[] = {1, 3, 40};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) check_vs_direct(Ns[i], Ds[j], 5e-3f, 100 + 10 * i + j);
    check_vs_direct(3, 1000, 5e-3f, 7);   /* N << D: the Gram case */
    check_vs_direct(130, 70, 0.1f, 8);    /* several SYRK tiles */
    check_vs_direct(70, 130, 0.0f, 9);    /* lambda = 0: diagonal only */
}

SS_TEST(affine_invariant_and_constant_columns_finite) {
    int64_t N = 9, D = 6, n = N * D;
    ss_rng rng;
    ss_rng_seed(&rng, 31);
    float *a = ss_test_alloc(n), *b = ss_test_alloc(n), *da = ss_test_alloc(n),
          *db = ss_test_alloc(n), l1, l2;
    ss_test_fill_normal(a, n, &rng);
    for (int64_t i = 0; i < n; i++) b[i] = 3.0f * a[i] - 2.0f;
    SS_CHECK_OK(run_bt(&l1, NULL, da, db, a, a, N, D, NULL, 1.0f));
    SS_CHECK_OK(run_bt(&l2, NULL, da, db, a, b, N, D, NULL, 1.0f));
    SS_CHECK_NEAR(l1, l2, 1e-4); /* corr(x, 3x - 2) = corr(x, x) */
    for (int64_t i = 0; i < N; i++) a[i * D + 2] = 1.5f; /* a constant column */
    memset(da, 0, n * sizeof(float)), memset(db, 0, n * sizeof(float));
    SS_CHECK_OK(run_bt(&l1, NULL, da, db, a, b, N, D, NULL, 1.0f));
    SS_CHECK(isfinite(l1));
    for (int64_t i = 0; i < n; i++) SS_CHECK(isfinite(da[i]) && isfinite(db[i]));
    free(a), free(b), free(da), free(db);
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 41);
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
        SS_CHECK_OK(run_bt(&l1, NULL, d1, d1 + n, a, b, N, D, NULL, 1.0f));
        SS_CHECK_OK(ss_set_num_threads(2));
        SS_CHECK_OK(run_bt(&l2, NULL, d2, d2 + n, a, b, N, D, NULL, 1.0f));
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
    ss_barlow_opts o = ss_barlow_defaults();
    SS_CHECK(ss_barlow_cache_size(N, D, NULL) <= sizeof cache);
    SS_CHECK(ss_barlow_cache_size(1, D, NULL) == 0);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK_STATUS(ss_barlow_forward(NULL, NULL, cache, a, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss");
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, NULL, a, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache");
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, NULL, b, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, NULL, N, D, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("b must not be NULL");
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, 1, D, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, 0, NULL), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got 0");
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, (int64_t)1 << 30,
                                      (int64_t)1 << 20, NULL), SS_ERR_SIZE);
    o.form = SS_MOMENT_DXD; /* a (2^21)^2 D x D matrix is too large */
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, 2, (int64_t)1 << 21, &o),
                    SS_ERR_SIZE);
    o = ss_barlow_defaults();
    o.lambda = -1.0f;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("lambda must be finite and >= 0, got -1");
    o.lambda = INFINITY;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    o = ss_barlow_defaults();
    o.bn_eps = 0.0f;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("bn_eps");
    o = ss_barlow_defaults();
    o.form = (ss_moment_form)7;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("got 7");
    SS_CHECK(ss_barlow_cache_size(N, D, &o) == 0);
    o = ss_barlow_defaults();
    a[3] = NAN;
    loss = 5.0f;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("a[3]");
    SS_CHECK(loss == 5.0f);
    a[3] = 4;
    b[5] = -INFINITY;
    SS_CHECK_STATUS(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("b[5]");
    b[5] = 1;
    SS_CHECK_OK(ss_barlow_forward(&loss, NULL, cache, a, b, N, D, &o));
    for (int i = 0; i < 6; i++) da[i] = db[i] = 7.0f;
    SS_CHECK_STATUS(ss_barlow_backward(NULL, db, 1, cache, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_barlow_backward(da, NULL, 1, cache, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("db");
    SS_CHECK_STATUS(ss_barlow_backward(da, db, 1, NULL, a, b, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_barlow_backward(da, db, INFINITY, cache, a, b, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("dloss");
    SS_CHECK_STATUS(ss_barlow_backward(da, db, 1, cache, a, b, 2, D, &o), SS_ERR_STATE);
    o.lambda = 0.5f;
    SS_CHECK_STATUS(ss_barlow_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_STATE);
    o = ss_barlow_defaults();
    o.form = SS_MOMENT_GRAM; /* the forward call resolved AUTO to D x D */
    SS_CHECK_STATUS(ss_barlow_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_STATE);
    o = ss_barlow_defaults();
    a[0] = NAN;
    SS_CHECK_STATUS(ss_barlow_backward(da, db, 1, cache, a, b, N, D, &o), SS_ERR_NONFINITE);
    a[0] = 1;
    for (int i = 0; i < 6; i++) SS_CHECK(da[i] == 7.0f && db[i] == 7.0f);
    SS_CHECK_OK(ss_barlow_backward(da, db, 1, cache, a, b, N, D, &o));
}
