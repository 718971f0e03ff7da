/* test_ntxent.c - NT-Xent: PyTorch fixtures (lightly / general V / dot
 * product / HCL), finite differences on the direct double reference, tiled
 * vs direct at awkward sizes, accumulation, threads, large logits, errors. */
#include "direct_contrast.h"
#include "fixture.h"
#include "harness.h"
#include "internal.h"
#include "kernels/contrast.h"

#include <stdlib.h>
#include <string.h>

static ss_ntxent_opts opts_of(float t, int cosine, float beta, float tau) {
    ss_ntxent_opts o = ss_ntxent_defaults();
    o.temperature = t, o.cosine = cosine, o.hard_beta = beta;
    o.debias_tau_plus = tau;
    return o;
}

/* Normwise relative error, absolute when want is zero up to double
 * rounding (N = 1 or D = 1 with cosine: the exact gradient is 0). */
static double grad_err_any(const float *gotf, const double *gotd,
                           const double *want, int64_t n) {
    double den = 0.0, num = 0.0;
    for (int64_t i = 0; i < n; i++) den = fmax(den, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((gotf ? gotf[i] : gotd[i]) - want[i]);
        if (!(e <= num)) num = e;
    }
    return den > 1e-12 ? num / den : num;
}
static double grad_err(const float *got, const double *want, int64_t n) {
    return grad_err_any(got, NULL, want, n);
}

#define CHECK_GRAD(got, want, n, tol, what)                                   \
    do {                                                                      \
        double e_ = grad_err(got, want, n);                                   \
        if (!(e_ <= (tol))) fprintf(stderr, "%s: err %.3g\n", what, e_);      \
        SS_CHECK(e_ <= (tol));                                                \
    } while (0)

/* Runs forward + backward (dloss, onto dz as given). */
static void run_ntxent(float *loss, float *losses, float *dz, float dloss,
                       const float *z, int64_t V, int64_t N, int64_t D,
                       const ss_ntxent_opts *o) {
    void *cache = malloc(ss_ntxent_cache_size(V, N, D));
    SS_CHECK_OK(ss_ntxent_forward(loss, losses, cache, z, V, N, D, o));
    SS_CHECK_OK(ss_ntxent_backward(dz, dloss, cache, z, V, N, D, o));
    free(cache);
}

/* The direct reference on float data. Returns the loss. */
static double direct_ntxent(double *losses, double *dz, const float *z,
                            int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *o) {
    int64_t M = V * N;
    double *zd = ss_test_alloc_d(M * D);
    int64_t *g = calloc((size_t)M, sizeof(int64_t));
    for (int64_t i = 0; i < M * D; i++) zd[i] = z[i];
    ss_direct_view_groups(g, V, N);
    int hcl = o->hard_beta > 0 || o->debias_tau_plus > 0;
    ss_direct_gc p = {M, D, g, o->temperature, o->cosine, 0, NULL, hcl,
                      o->hard_beta, o->debias_tau_plus};
    double l = ss_direct_gc_loss(zd, &p, losses, dz);
    free(zd), free(g);
    return l;
}

/* Tiled float32 vs direct double: loss, per-anchor losses, dz. */
static void check_vs_direct(int64_t V, int64_t N, int64_t D,
                            const ss_ntxent_opts *o, double zscale,
                            double tol, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t M = V * N;
    float *z = ss_test_alloc(M * D), *dz = ss_test_alloc(M * D);
    float *losses = ss_test_alloc(M), loss = 0;
    double *ld = ss_test_alloc_d(M), *dzd = ss_test_alloc_d(M * D);
    ss_test_fill_normal(z, M * D, &rng);
    for (int64_t i = 0; i < M * D; i++) z[i] *= (float)zscale;
    run_ntxent(&loss, losses, dz, 1.0f, z, V, N, D, o);
    double want = direct_ntxent(ld, dzd, z, V, N, D, o);
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, tol);
    CHECK_GRAD(losses, ld, M, tol, "per-anchor losses");
    CHECK_GRAD(dz, dzd, M * D, tol, "dz");
    if (grad_err(dz, dzd, M * D) > tol)
        fprintf(stderr, "V=%lld N=%lld D=%lld t=%g cos=%d beta=%g tau=%g: "
                "dz[0] %g vs %g\n", (long long)V, (long long)N, (long long)D,
                (double)o->temperature, o->cosine, (double)o->hard_beta,
                (double)o->debias_tau_plus, (double)dz[0], dzd[0]);
    free(z), free(dz), free(losses), free(ld), free(dzd);
}

SS_TEST(defaults_and_cache_size) {
    ss_ntxent_opts o = ss_ntxent_defaults();
    SS_CHECK(o.temperature == 0.5f && o.cosine == 1);
    SS_CHECK(o.hard_beta == 0.0f && o.debias_tau_plus == 0.0f);
    SS_CHECK(ss_ntxent_cache_size(2, 10, 3) >= 2 * 10 * sizeof(float));
    SS_CHECK(ss_ntxent_cache_size(1, 10, 3) == 0);
    SS_CHECK_MSG_HAS("V must be >= 2, got 1");
    SS_CHECK(ss_ntxent_cache_size(2, 0, 3) == 0);
    SS_CHECK(ss_ntxent_cache_size(2, (int64_t)1 << 30, (int64_t)1 << 20) == 0);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("ntxent.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 10);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t V = fx_int(fx, KEY("V")), N = fx_int(fx, KEY("N"));
        int64_t D = fx_int(fx, KEY("D")), M = V * N, n;
        ss_ntxent_opts o = opts_of((float)fx_scalar(fx, KEY("temperature")),
                                   (int)fx_int(fx, KEY("cosine")),
                                   (float)fx_scalar(fx, KEY("hard_beta")),
                                   (float)fx_scalar(fx, KEY("tau_plus")));
        float *z = fx_f32_copy(fx, KEY("z"), &n);
        SS_CHECK(z && n == M * D);
        const double *want_l = fx_f64(fx, KEY("losses"), &n);
        SS_CHECK(want_l && n == M);
        const double *want_dz = fx_f64(fx, KEY("dz"), &n);
        SS_CHECK(want_dz && n == M * D);
        if (!z || !want_l || !want_dz) continue;
        float loss, *losses = ss_test_alloc(M), *dz = ss_test_alloc(M * D);
        run_ntxent(&loss, losses, dz, 1.0f, z, V, N, D, &o);
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        CHECK_GRAD(losses, want_l, M, 1e-4, "fixture per-anchor losses");
        if (grad_err(dz, want_dz, M * D) > 1e-4)
            fprintf(stderr, "case %lld (V=%lld N=%lld D=%lld t=%g cos=%d beta=%g tau=%g)\n",
                    (long long)c, (long long)V, (long long)N, (long long)D,
                    (double)o.temperature, o.cosine, (double)o.hard_beta,
                    (double)o.debias_tau_plus);
        CHECK_GRAD(dz, want_dz, M * D, 1e-4, "fixture dz");
        /* the direct reference agrees with PyTorch to double precision */
        double *ld = ss_test_alloc_d(M), *dzd = ss_test_alloc_d(M * D);
        double *zd = ss_test_alloc_d(M * D);
        const double *z64 = fx_f64(fx, KEY("z"), &n);
        int64_t *g = calloc((size_t)M, sizeof(int64_t));
        ss_direct_view_groups(g, V, N);
        ss_direct_gc p = {M, D, g, fx_scalar(fx, KEY("temperature")),
                          o.cosine, 0, NULL,
                          o.hard_beta > 0 || o.debias_tau_plus > 0,
                          fx_scalar(fx, KEY("hard_beta")),
                          fx_scalar(fx, KEY("tau_plus"))};
        memcpy(zd, z64, sizeof(double) * (size_t)(M * D));
        SS_CHECK_NEAR(ss_direct_gc_loss(zd, &p, ld, dzd), want, 1e-10);
        double edz = grad_err_any(NULL, dzd, want_dz, M * D);
        double el = grad_err_any(NULL, ld, want_l, M);
        if (!(edz <= 1e-10 && el <= 1e-10))
            fprintf(stderr, "case %lld: direct vs PyTorch: dz %.3g, losses %.3g\n",
                    (long long)c, edz, el);
        SS_CHECK(edz <= 1e-10);
        SS_CHECK(el <= 1e-10);
#undef KEY
        free(z), free(losses), free(dz), free(ld), free(dzd), free(zd), free(g);
    }
    fx_free(fx);
}

/* ---- finite differences on the direct double path ------------------------ */

typedef struct {
    ss_direct_gc p;
} fd_ctx;

static double fd_loss(const double *z, void *ctx) {
    return ss_direct_gc_loss(z, &((fd_ctx *)ctx)->p, NULL, NULL);
}

static void fd_case(int64_t V, int64_t N, int64_t D, double t, int cosine,
                    int exclude_pos, int weighted, int hcl, double beta,
                    double tau, uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    int64_t M = V * N;
    double *z = ss_test_alloc_d(M * D), *dz = ss_test_alloc_d(M * D);
    double *w = ss_test_alloc_d(M);
    int64_t *g = calloc((size_t)M, sizeof(int64_t));
    ss_test_fill_normal_d(z, M * D, &rng);
    for (int64_t i = 0; i < M; i++) w[i] = 0.5 + ss_rng_uniform(&rng);
    ss_direct_view_groups(g, V, N);
    fd_ctx c = {{M, D, g, t, cosine, exclude_pos, weighted ? w : NULL, hcl,
                 beta, tau}};
    ss_direct_gc_loss(z, &c.p, NULL, dz);
    double e = ss_test_fd_max_err(fd_loss, &c, z, dz, M * D, 1e-5, seed + 1000);
    if (!(e < 1e-6))
        fprintf(stderr, "fd V=%lld N=%lld hcl=%d beta=%g tau=%g: %.3g\n",
                (long long)V, (long long)N, hcl, beta, tau, e);
    SS_CHECK(e < 1e-6);
    free(z), free(dz), free(w), free(g);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(2, 4, 5, 0.5, 1, 0, 0, 0, 0, 0, 1);   /* NT-Xent */
    fd_case(3, 3, 4, 0.3, 1, 0, 0, 0, 0, 0, 2);   /* three views */
    fd_case(2, 4, 3, 0.7, 0, 0, 0, 0, 0, 0, 3);   /* dot product */
    fd_case(2, 4, 5, 0.5, 1, 1, 0, 0, 0, 0, 4);   /* DCL */
    fd_case(2, 4, 5, 0.5, 1, 1, 1, 0, 0, 0, 5);   /* DCLW weights */
    fd_case(2, 5, 4, 0.5, 1, 0, 0, 1, 1.0, 0.1, 6); /* HCL */
    fd_case(3, 3, 4, 0.5, 1, 0, 0, 1, 0.5, 0.0, 7);
    fd_case(2, 5, 4, 0.5, 1, 0, 0, 1, 0.0, 0.2, 8); /* debiased */
    fd_case(2, 5, 4, 0.5, 0, 0, 0, 1, 0.5, 0.1, 9);
}

/* ---- tiled vs direct ------------------------------------------------------- */

SS_TEST(tiled_vs_direct_awkward_sizes) {
    int64_t T = SS__GC_TILE;
    ss_ntxent_opts o = ss_ntxent_defaults();
    int64_t Ns[] = {1, 2, 3};
    for (int64_t V = 2; V <= 3; V++)
        for (size_t a = 0; a < 3; a++)
            for (int64_t D = 1; D <= 3; D += 2)
                check_vs_direct(V, Ns[a], D, &o, 1.0, 1e-4, 10 + a + 3 * D);
    /* rows M = V N around the tile edge */
    int64_t Ms[] = {T - 1, T, T + 1, 2 * T + 1};
    for (size_t a = 0; a < 4; a++) {
        if (Ms[a] % 2 == 0) check_vs_direct(2, Ms[a] / 2, 3, &o, 1.0, 1e-4, 20 + a);
        if (Ms[a] % 3 == 0) check_vs_direct(3, Ms[a] / 3, 3, &o, 1.0, 1e-4, 30 + a);
    }
    for (int64_t V = 2; V <= 3; V++) /* N at the tile edge */
        for (int64_t N = T - 1; N <= T + 1; N++)
            check_vs_direct(V, N, 2, &o, 1.0, 1e-4, 40 + (uint64_t)(V * N));
    check_vs_direct(2, 3, 1000, &o, 1.0, 1e-4, 43);
    ss_ntxent_opts dot = opts_of(0.7f, 0, 0, 0);
    check_vs_direct(3, 50, 7, &dot, 0.5, 1e-4, 44);
}

SS_TEST(tiled_vs_direct_hard_negatives) {
    int64_t T = SS__GC_TILE;
    ss_ntxent_opts hcl = opts_of(0.5f, 1, 1.0f, 0.1f);
    ss_ntxent_opts hard = opts_of(0.2f, 1, 0.5f, 0.0f);
    ss_ntxent_opts deb = opts_of(0.5f, 1, 0.0f, 0.1f);
    ss_ntxent_opts clamp = opts_of(0.5f, 1, 0.5f, 0.7f);
    ss_ntxent_opts dot = opts_of(1.0f, 0, 1.0f, 0.1f);
    const ss_ntxent_opts *os[] = {&hcl, &hard, &deb, &clamp, &dot};
    for (int k = 0; k < 5; k++) {
        check_vs_direct(2, 1, 3, os[k], 0.5, 1e-4, 50 + k);
        check_vs_direct(2, 5, 4, os[k], 0.5, 1e-4, 60 + k);
        check_vs_direct(3, 4, 3, os[k], 0.5, 1e-4, 70 + k);
    }
    check_vs_direct(2, T / 2 + 1, 5, &hcl, 1.0, 1e-4, 80);
    check_vs_direct(3, T / 3 + 1, 3, &hard, 1.0, 1e-4, 81);
}

/* Low temperature (the online-max path) and big raw dot products. */
SS_TEST(large_logits_finite_and_exact) {
    ss_ntxent_opts cold = opts_of(0.01f, 1, 0, 0);
    check_vs_direct(2, 40, 8, &cold, 1.0, 1e-4, 90);
    check_vs_direct(3, 13, 4, &cold, 1.0, 1e-4, 91);
    ss_ntxent_opts big = opts_of(0.5f, 0, 0, 0);
    check_vs_direct(2, 30, 8, &big, 10.0, 1e-4, 92);
    ss_ntxent_opts cold_hcl = opts_of(0.02f, 1, 1.0f, 0.1f);
    check_vs_direct(2, 30, 8, &cold_hcl, 1.0, 1e-4, 93);
}

/* ---- accumulation, dloss, threads ------------------------------------------ */

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t V = 2, N = 37, D = 9, M = V * N;
    ss_ntxent_opts os[] = {ss_ntxent_defaults(), opts_of(0.5f, 1, 1.0f, 0.1f),
                           opts_of(0.3f, 0, 0, 0)};
    float *z = ss_test_alloc(M * D), *g1 = ss_test_alloc(M * D);
    float *g2 = ss_test_alloc(M * D), *pre = ss_test_alloc(M * D);
    ss_test_fill_normal(z, M * D, &rng);
    for (int k = 0; k < 3; k++) {
        float loss;
        memset(g1, 0, sizeof(float) * (size_t)(M * D));
        run_ntxent(&loss, NULL, g1, 1.0f, z, V, N, D, &os[k]);
        ss_test_fill_normal(pre, M * D, &rng);
        memcpy(g2, pre, sizeof(float) * (size_t)(M * D));
        run_ntxent(&loss, NULL, g2, -2.5f, z, V, N, D, &os[k]);
        for (int64_t i = 0; i < M * D; i++) g2[i] = (g2[i] - pre[i]) / -2.5f;
        SS_CHECK_CLOSE_FF(g2, g1, M * D, 1e-5, "accumulated, scaled dz");
    }
    free(z), free(g1), free(g2), free(pre);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t V = 3, N = 150, D = 12, M = V * N;
    float *z = ss_test_alloc(M * D), *g1 = ss_test_alloc(M * D);
    float *g2 = ss_test_alloc(M * D), *l1 = ss_test_alloc(M);
    float *l2 = ss_test_alloc(M), a, b;
    ss_test_fill_normal(z, M * D, &rng);
    ss_ntxent_opts os[] = {ss_ntxent_defaults(), opts_of(0.5f, 1, 1.0f, 0.1f)};
    for (int k = 0; k < 2; k++) {
        memset(g1, 0, sizeof(float) * (size_t)(M * D));
        memset(g2, 0, sizeof(float) * (size_t)(M * D));
        SS_CHECK_OK(ss_set_num_threads(1));
        run_ntxent(&a, l1, g1, 1.0f, z, V, N, D, &os[k]);
        SS_CHECK_OK(ss_set_num_threads(2));
        run_ntxent(&b, l2, g2, 1.0f, z, V, N, D, &os[k]);
        SS_CHECK_OK(ss_set_num_threads(0));
        SS_CHECK_NEAR(a, b, 1e-6);
        SS_CHECK_CLOSE_FF(l2, l1, M, 1e-6, "losses 1 vs 2 threads");
        SS_CHECK_CLOSE_FF(g2, g1, M * D, 1e-5, "dz 1 vs 2 threads");
    }
    free(z), free(g1), free(g2), free(l1), free(l2);
}

/* ---- errors ------------------------------------------------------------------ */

SS_TEST(bad_inputs) {
    int64_t V = 2, N = 3, D = 2, M = V * N;
    float z[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dz[12] = {0};
    float loss = 42.0f, losses[6] = {0};
    size_t cs = ss_ntxent_cache_size(V, N, D);
    char *cache = calloc(1, cs);
    ss_ntxent_opts o = ss_ntxent_defaults();
    SS_CHECK_STATUS(ss_ntxent_forward(NULL, NULL, cache, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, NULL, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, NULL, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("z must not be NULL");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, 1, N, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("V must be >= 2, got 1");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, 0, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got 0");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, -1, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got -1");
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, 2, (int64_t)1 << 30,
                                      (int64_t)1 << 20, &o), SS_ERR_SIZE);
    float bad_t[] = {0.0f, -0.5f, NAN, INFINITY, 1e-39f};
    for (int k = 0; k < 5; k++) {
        ss_ntxent_opts b = o;
        b.temperature = bad_t[k];
        SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b),
                        SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("temperature");
        SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, z, V, N, D, &b),
                        SS_ERR_PARAM);
    }
    ss_ntxent_opts b = o;
    b.temperature = -0.5f;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("-0.5");
    b = o, b.hard_beta = -1.0f;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("hard_beta must be finite and >= 0, got -1");
    b = o, b.hard_beta = NAN;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
    float bad_tau[] = {1.0f, -0.1f, NAN, 2.0f};
    for (int k = 0; k < 4; k++) {
        b = o, b.debias_tau_plus = bad_tau[k];
        SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b),
                        SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("debias_tau_plus must be in [0, 1)");
    }
    /* raw dot products that overflow float32 */
    float huge[12];
    for (int k = 0; k < 12; k++) huge[k] = 1e19f;
    b = o, b.cosine = 0;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, huge, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("overflow");
    b = o, b.hard_beta = 1e38f, b.temperature = 1e-3f; /* cosine, too */
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("overflow");
    float zn[12];
    memcpy(zn, z, sizeof z);
    zn[7] = NAN;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, losses, cache, zn, V, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[7]");
    zn[7] = 1, zn[10] = -INFINITY;
    SS_CHECK_STATUS(ss_ntxent_forward(&loss, losses, cache, zn, V, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[10]");
    SS_CHECK(loss == 42.0f); /* nothing written on failure */
    for (int64_t i = 0; i < M; i++) SS_CHECK(losses[i] == 0.0f);
    /* backward: NULLs, dloss, a cache from other sizes or options */
    SS_CHECK_OK(ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, NULL));
    SS_CHECK_STATUS(ss_ntxent_backward(NULL, 1.0f, cache, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dz must not be NULL");
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, NULL, z, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, NULL, V, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_ntxent_backward(dz, NAN, cache, z, V, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b = o, b.cosine = 0; /* valid options, but not the cache's */
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, z, V, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, z, 3, 2, D, &o), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, z, 1, N, D, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_ntxent_backward(dz, 1.0f, cache, zn, V, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[10]");
    for (int64_t i = 0; i < M * D; i++) SS_CHECK(dz[i] == 0.0f);
    SS_CHECK_OK(ss_ntxent_backward(dz, 1.0f, cache, z, V, N, D, NULL));
    free(cache);
}
