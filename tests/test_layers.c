/* test_layers.c - every engine layer against PyTorch float64 fixtures
 * (tests/ref/layers.py), finite differences on the float path, gradient
 * accumulation, thread-count independence and bad-input statuses. */
#include "engine.h"
#include "fixture.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

static ss_fixture *load(void) {
    ss_fixture *fx = fx_load("layers.bin");
    SS_CHECK(fx != NULL);
    return fx;
}

/* float copy of <p><field>; aborts the test run when missing. */
static float *get(const ss_fixture *fx, const char *p, const char *field,
                  int64_t *n) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", p, field);
    float *v = fx_f32_copy(fx, key, n);
    if (!v) {
        fprintf(stderr, "fixture entry %s missing\n", key);
        abort();
    }
    return v;
}
static const double *want(const ss_fixture *fx, const char *p,
                          const char *field) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", p, field);
    const double *v = fx_f64(fx, key, NULL);
    if (!v) {
        fprintf(stderr, "fixture entry %s missing\n", key);
        abort();
    }
    return v;
}
static const int64_t *dims(const ss_fixture *fx, const char *layer, int i,
                           char *p, size_t np) {
    char key[96];
    snprintf(p, np, "%s.%d.", layer, i);
    snprintf(key, sizeof key, "%sdims", p);
    return fx_i64(fx, key, NULL);
}

/* Random pre-fill r; after the call, got - r must equal the fixture. */
static float *prefill(int64_t n, ss_rng *rng) {
    float *r = ss_test_alloc(n);
    ss_test_fill_normal(r, n, rng);
    return r;
}
static void sub_prefill(float *got, const float *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) got[i] -= r[i];
}

SS_TEST(linear_matches_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    char p[64];
    const int64_t *d;
    int cases = 0;
    for (int i = 0; (d = dims(fx, "linear", i, p, sizeof p)); i++, cases++) {
        int64_t N = d[0], D = d[1], O = d[2], nx, nw, nb, ny;
        float *x = get(fx, p, "x", &nx), *w = get(fx, p, "w", &nw);
        float *b = get(fx, p, "b", &nb), *gy = get(fx, p, "gy", &ny);
        float *y = ss_test_alloc(ny), *dx = ss_test_alloc(nx);
        float *dw = prefill(nw, &rng), *db = prefill(nb, &rng);
        float *rw = ss_test_alloc(nw), *rb = ss_test_alloc(nb);
        memcpy(rw, dw, nw * sizeof *dw);
        memcpy(rb, db, nb * sizeof *db);
        SS_CHECK_OK(sst_linear_forward(y, x, w, d[3] ? b : NULL, N, D, O));
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), ny, TOL, "linear y");
        SS_CHECK_OK(sst_linear_backward(dx, dw, d[3] ? db : NULL, gy, x, w, N,
                                        D, O));
        sub_prefill(dw, rw, nw);
        sub_prefill(db, rb, nb);
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), nx, TOL, "linear dx");
        SS_CHECK_CLOSE_FD(dw, want(fx, p, "dw"), nw, TOL, "linear dw");
        SS_CHECK_CLOSE_FD(db, want(fx, p, "db"), nb, TOL, "linear db");
        free(x), free(w), free(b), free(gy), free(y), free(dx), free(dw);
        free(db), free(rw), free(rb);
    }
    SS_CHECK(cases >= 2);
    fx_free(fx);
}

static sst_conv2d_dims conv_dims(const int64_t *d) {
    sst_conv2d_dims c = {d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]};
    return c;
}

SS_TEST(conv2d_matches_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    ss_rng rng;
    ss_rng_seed(&rng, 2);
    char p[64];
    const int64_t *d;
    int cases = 0;
    for (int i = 0; (d = dims(fx, "conv", i, p, sizeof p)); i++, cases++) {
        sst_conv2d_dims cd = conv_dims(d);
        int64_t nx, nw, nb, ny, OH, OW;
        SS_CHECK_OK(sst_conv2d_out_size(&cd, &OH, &OW));
        float *x = get(fx, p, "x", &nx), *w = get(fx, p, "w", &nw);
        float *b = get(fx, p, "b", &nb), *gy = get(fx, p, "gy", &ny);
        SS_CHECK_INT(ny, cd.N * cd.Cout * OH * OW);
        float *y = ss_test_alloc(ny), *dx = prefill(nx, &rng);
        float *dw = prefill(nw, &rng), *db = prefill(nb, &rng);
        float *rw = ss_test_alloc(nw), *rb = ss_test_alloc(nb);
        memcpy(rw, dw, nw * sizeof *dw);
        memcpy(rb, db, nb * sizeof *db);
        SS_CHECK_OK(sst_conv2d_forward(y, x, w, d[9] ? b : NULL, &cd));
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), ny, TOL, "conv y");
        SS_CHECK_OK(sst_conv2d_backward(dx, dw, d[9] ? db : NULL, gy, x, w, &cd));
        sub_prefill(dw, rw, nw);
        sub_prefill(db, rb, nb);
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), nx, TOL, "conv dx (written)");
        SS_CHECK_CLOSE_FD(dw, want(fx, p, "dw"), nw, TOL, "conv dw");
        SS_CHECK_CLOSE_FD(db, want(fx, p, "db"), nb, TOL, "conv db");
        /* dx == NULL skips the input gradient, parameters still accumulate */
        memset(dw, 0, nw * sizeof *dw);
        SS_CHECK_OK(sst_conv2d_backward(NULL, dw, NULL, gy, x, w, &cd));
        SS_CHECK_CLOSE_FD(dw, want(fx, p, "dw"), nw, TOL, "conv dw, dx NULL");
        free(x), free(w), free(b), free(gy), free(y), free(dx), free(dw);
        free(db), free(rw), free(rb);
    }
    SS_CHECK(cases >= 3);
    fx_free(fx);
}

SS_TEST(batchnorm_matches_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    char p[64];
    const int64_t *d;
    int cases = 0;
    for (int i = 0; (d = dims(fx, "bn", i, p, sizeof p)); i++, cases++) {
        int64_t N = d[0], C = d[1], S = d[2], n, nc;
        int train = (int)d[3];
        float *x = get(fx, p, "x", &n), *g = get(fx, p, "gamma", &nc);
        float *b = get(fx, p, "beta", &nc), *gy = get(fx, p, "gy", &n);
        float *rm = get(fx, p, "rm0", &nc), *rv = get(fx, p, "rv0", &nc);
        float *y = ss_test_alloc(n), *dx = prefill(n, &rng);
        float *saved = ss_test_alloc(2 * C);
        float *dg = prefill(nc, &rng), *db = prefill(nc, &rng);
        float *rg = ss_test_alloc(nc), *rb = ss_test_alloc(nc);
        memcpy(rg, dg, nc * sizeof *dg);
        memcpy(rb, db, nc * sizeof *db);
        SS_CHECK_OK(sst_batchnorm_forward(y, saved, x, g, b, rm, rv, N, C, S,
                                          SST_BN_EPS, SST_BN_MOMENTUM, train));
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), n, TOL, "bn y");
        SS_CHECK_CLOSE_FD(rm, want(fx, p, "rm"), nc, TOL, "bn running_mean");
        SS_CHECK_CLOSE_FD(rv, want(fx, p, "rv"), nc, TOL, "bn running_var");
        SS_CHECK_OK(sst_batchnorm_backward(dx, dg, db, gy, saved, x, g, N, C, S,
                                           train));
        sub_prefill(dg, rg, nc);
        sub_prefill(db, rb, nc);
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), n, TOL, "bn dx");
        SS_CHECK_CLOSE_FD(dg, want(fx, p, "dgamma"), nc, TOL, "bn dgamma");
        SS_CHECK_CLOSE_FD(db, want(fx, p, "dbeta"), nc, TOL, "bn dbeta");
        /* in place: dx aliases dy */
        SS_CHECK_OK(sst_batchnorm_backward(gy, dg, db, gy, saved, x, g, N, C, S,
                                           train));
        SS_CHECK_CLOSE_FD(gy, want(fx, p, "dx"), n, TOL, "bn dx in place");
        free(x), free(g), free(b), free(gy), free(rm), free(rv), free(y);
        free(dx), free(saved), free(dg), free(db), free(rg), free(rb);
    }
    SS_CHECK(cases >= 3);
    fx_free(fx);
}

SS_TEST(layernorm_matches_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    ss_rng rng;
    ss_rng_seed(&rng, 4);
    char p[64];
    const int64_t *d;
    int cases = 0;
    for (int i = 0; (d = dims(fx, "ln", i, p, sizeof p)); i++, cases++) {
        int64_t N = d[0], D = d[1], n, nd;
        float *x = get(fx, p, "x", &n), *g = get(fx, p, "gamma", &nd);
        float *b = get(fx, p, "beta", &nd), *gy = get(fx, p, "gy", &n);
        float *y = ss_test_alloc(n), *dx = prefill(n, &rng);
        float *saved = ss_test_alloc(2 * N);
        float *dg = prefill(nd, &rng), *db = prefill(nd, &rng);
        float *rg = ss_test_alloc(nd), *rb = ss_test_alloc(nd);
        memcpy(rg, dg, nd * sizeof *dg);
        memcpy(rb, db, nd * sizeof *db);
        SS_CHECK_OK(sst_layernorm_forward(y, saved, x, g, b, N, D, 1e-5f));
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), n, TOL, "ln y");
        SS_CHECK_OK(sst_layernorm_backward(dx, dg, db, gy, saved, x, g, N, D));
        sub_prefill(dg, rg, nd);
        sub_prefill(db, rb, nd);
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), n, TOL, "ln dx");
        SS_CHECK_CLOSE_FD(dg, want(fx, p, "dgamma"), nd, TOL, "ln dgamma");
        SS_CHECK_CLOSE_FD(db, want(fx, p, "dbeta"), nd, TOL, "ln dbeta");
        free(x), free(g), free(b), free(gy), free(y), free(dx), free(saved);
        free(dg), free(db), free(rg), free(rb);
    }
    SS_CHECK(cases >= 2);
    fx_free(fx);
}

SS_TEST(activations_match_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    char p[64];
    const int64_t *d;
    for (int gelu = 0; gelu < 2; gelu++) {
        d = dims(fx, gelu ? "gelu" : "relu", 0, p, sizeof p);
        SS_CHECK(d != NULL);
        if (!d) continue;
        int64_t n;
        float *x = get(fx, p, "x", &n), *gy = get(fx, p, "gy", &n);
        float *y = ss_test_alloc(n), *dx = ss_test_alloc(n);
        if (gelu) {
            SS_CHECK_OK(sst_gelu_forward(y, x, n));
            SS_CHECK_OK(sst_gelu_backward(dx, gy, x, n));
        } else {
            SS_CHECK_OK(sst_relu_forward(y, x, n));
            SS_CHECK_OK(sst_relu_backward(dx, gy, y, n));
        }
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), n, TOL, gelu ? "gelu y" : "relu y");
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), n, TOL,
                          gelu ? "gelu dx" : "relu dx");
        /* in place forward and backward */
        if (!gelu) {
            SS_CHECK_OK(sst_relu_forward(x, x, n));
            SS_CHECK_OK(sst_relu_backward(gy, gy, x, n));
            SS_CHECK_CLOSE_FD(gy, want(fx, p, "dx"), n, TOL, "relu in place");
        }
        free(x), free(gy), free(y), free(dx);
    }
    fx_free(fx);
}

SS_TEST(pooling_matches_torch) {
    ss_fixture *fx = load();
    if (!fx) return;
    char p[64];
    const int64_t *d;
    for (int avg = 0; avg < 2; avg++) {
        int cases = 0;
        for (int i = 0; (d = dims(fx, avg ? "avgpool" : "maxpool", i, p, sizeof p));
             i++, cases++) {
            int64_t P = d[0], H = d[1], W = d[2], K = d[3], s = d[4], nx, ny;
            float *x = get(fx, p, "x", &nx), *gy = get(fx, p, "gy", &ny);
            float *y = ss_test_alloc(ny), *dx = ss_test_alloc(nx);
            for (int64_t j = 0; j < nx; j++) dx[j] = 7.0f; /* dx is written */
            if (avg) {
                SS_CHECK_OK(sst_avgpool2d_forward(y, x, P, H, W, K, s));
                SS_CHECK_OK(sst_avgpool2d_backward(dx, gy, P, H, W, K, s));
            } else {
                SS_CHECK_OK(sst_maxpool2d_forward(y, x, P, H, W, K, s));
                SS_CHECK_OK(sst_maxpool2d_backward(dx, gy, x, P, H, W, K, s));
            }
            SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), ny, TOL, "pool y");
            SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), nx, TOL, "pool dx");
            free(x), free(gy), free(y), free(dx);
        }
        SS_CHECK(cases >= 3);
    }
    d = dims(fx, "gap", 0, p, sizeof p);
    SS_CHECK(d != NULL);
    if (d) {
        int64_t nx, ny;
        float *x = get(fx, p, "x", &nx), *gy = get(fx, p, "gy", &ny);
        float *y = ss_test_alloc(ny), *dx = ss_test_alloc(nx);
        SS_CHECK_OK(sst_gap_forward(y, x, d[0], d[1]));
        SS_CHECK_OK(sst_gap_backward(dx, gy, d[0], d[1]));
        SS_CHECK_CLOSE_FD(y, want(fx, p, "y"), ny, TOL, "gap y");
        SS_CHECK_CLOSE_FD(dx, want(fx, p, "dx"), nx, TOL, "gap dx");
        free(x), free(gy), free(y), free(dx);
    }
    fx_free(fx);
}

/* ---- finite differences on the float path --------------------------------
 * loss(x) = sum(gy * f(x)) accumulated in double; a central difference with
 * h = 1e-2 on inputs of unit scale is accurate to ~1e-4 here, so the check
 * (tolerance 1e-2) catches any wrong backward formula. */
typedef void (*fwd_fn)(float *y, const float *x, void *ctx);
static double fd_loss(fwd_fn f, void *ctx, const float *x, const float *gy,
                      float *y, int64_t ny) {
    f(y, x, ctx);
    double s = 0.0;
    for (int64_t i = 0; i < ny; i++) s += (double)gy[i] * y[i];
    return s;
}
static double fd_check(fwd_fn f, void *ctx, float *x, int64_t nx,
                       const float *gy, int64_t ny, const float *dx) {
    float *y = ss_test_alloc(ny);
    double worst = 0.0, scale = 1e-8;
    for (int64_t i = 0; i < nx; i++) scale = fmax(scale, fabs(dx[i]));
    int64_t step = nx / 24 + 1;
    for (int64_t i = 0; i < nx; i += step) {
        const float h = 1e-2f, x0 = x[i];
        x[i] = x0 + h;
        double lp = fd_loss(f, ctx, x, gy, y, ny);
        x[i] = x0 - h;
        double lm = fd_loss(f, ctx, x, gy, y, ny);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(fd - dx[i]) / scale);
    }
    free(y);
    return worst;
}

typedef struct { sst_conv2d_dims d; const float *w, *b; } conv_ctx;
static void conv_fwd(float *y, const float *x, void *c) {
    conv_ctx *k = c;
    sst_conv2d_forward(y, x, k->w, k->b, &k->d);
}
typedef struct { int64_t N, C, S; const float *g, *b; float *saved; } bn_ctx;
static void bn_fwd(float *y, const float *x, void *c) {
    bn_ctx *k = c;
    sst_batchnorm_forward(y, k->saved, x, k->g, k->b, NULL, NULL, k->N, k->C,
                          k->S, SST_BN_EPS, SST_BN_MOMENTUM, 1);
}
static void ln_fwd(float *y, const float *x, void *c) {
    bn_ctx *k = c;
    sst_layernorm_forward(y, k->saved, x, k->g, k->b, k->N, k->S, 1e-5f);
}
static void gelu_fwd(float *y, const float *x, void *c) {
    sst_gelu_forward(y, x, *(int64_t *)c);
}

SS_TEST(finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    /* conv 2x3x7x6 -> 4, 3x3, stride 2, pad 1 */
    conv_ctx cc = {{2, 3, 7, 6, 4, 3, 3, 2, 1}, NULL, NULL};
    int64_t OH, OW;
    SS_CHECK_OK(sst_conv2d_out_size(&cc.d, &OH, &OW));
    int64_t nx = 2 * 3 * 7 * 6, nw = 4 * 3 * 9, ny = 2 * 4 * OH * OW;
    float *x = prefill(nx, &rng), *w = prefill(nw, &rng), *b = prefill(4, &rng);
    float *gy = prefill(ny, &rng), *dx = ss_test_alloc(nx);
    float *dw = ss_test_alloc(nw);
    cc.w = w, cc.b = b;
    SS_CHECK_OK(sst_conv2d_backward(dx, dw, NULL, gy, x, w, &cc.d));
    SS_CHECK(fd_check(conv_fwd, &cc, x, nx, gy, ny, dx) < 1e-2);
    free(x), free(w), free(b), free(gy), free(dx), free(dw);

    /* batchnorm train (5, 3, 4) and layernorm (6, 9) */
    for (int ln = 0; ln < 2; ln++) {
        bn_ctx k = {ln ? 6 : 5, 3, ln ? 9 : 4, NULL, NULL, NULL};
        int64_t n = k.N * (ln ? 1 : k.C) * k.S, np = ln ? k.S : k.C;
        float *xx = prefill(n, &rng), *g = prefill(np, &rng);
        float *bb = prefill(np, &rng), *gg = prefill(n, &rng);
        float *y = ss_test_alloc(n), *d = ss_test_alloc(n);
        float *dg = ss_test_alloc(np), *db = ss_test_alloc(np);
        k.g = g, k.b = bb, k.saved = ss_test_alloc(2 * (ln ? k.N : k.C));
        if (ln) {
            ln_fwd(y, xx, &k);
            SS_CHECK_OK(sst_layernorm_backward(d, dg, db, gg, k.saved, xx, g,
                                               k.N, k.S));
        } else {
            bn_fwd(y, xx, &k);
            SS_CHECK_OK(sst_batchnorm_backward(d, dg, db, gg, k.saved, xx, g,
                                               k.N, k.C, k.S, 1));
        }
        double e = fd_check(ln ? ln_fwd : bn_fwd, &k, xx, n, gg, n, d);
        if (!(e < 1e-2)) fprintf(stderr, "  %s fd err %.3g\n", ln ? "ln" : "bn", e);
        SS_CHECK(e < 1e-2);
        free(xx), free(g), free(bb), free(gg), free(y), free(d), free(dg);
        free(db), free(k.saved);
    }
    int64_t n = 40;
    float *xg = prefill(n, &rng), *gg = prefill(n, &rng), *d = ss_test_alloc(n);
    SS_CHECK_OK(sst_gelu_backward(d, gg, xg, n));
    SS_CHECK(fd_check(gelu_fwd, &n, xg, n, gg, n, d) < 1e-2);
    free(xg), free(gg), free(d);
}

/* The encoder's conv shapes at a small batch: 1 vs 2 threads agree. */
SS_TEST(conv2d_thread_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    sst_conv2d_dims d = {5, 8, 14, 14, 16, 3, 3, 1, 1};
    int64_t nx = 5 * 8 * 196, nw = 16 * 8 * 9, ny = 5 * 16 * 196;
    float *x = prefill(nx, &rng), *w = prefill(nw, &rng), *gy = prefill(ny, &rng);
    float *y[2], *dx[2], *dw[2], *db[2];
    for (int t = 0; t < 2; t++) {
        y[t] = ss_test_alloc(ny), dx[t] = ss_test_alloc(nx);
        dw[t] = ss_test_alloc(nw), db[t] = ss_test_alloc(16);
        SS_CHECK_OK(ss_set_num_threads(t + 1));
        SS_CHECK_OK(sst_conv2d_forward(y[t], x, w, NULL, &d));
        SS_CHECK_OK(sst_conv2d_backward(dx[t], dw[t], db[t], gy, x, w, &d));
    }
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_CLOSE_FF(y[1], y[0], ny, 1e-6, "conv y threads");
    SS_CHECK_CLOSE_FF(dx[1], dx[0], nx, 1e-6, "conv dx threads");
    SS_CHECK_CLOSE_FF(dw[1], dw[0], nw, 1e-5, "conv dw threads");
    SS_CHECK_CLOSE_FF(db[1], db[0], 16, 1e-5, "conv db threads");
    for (int t = 0; t < 2; t++) free(y[t]), free(dx[t]), free(dw[t]), free(db[t]);
    free(x), free(w), free(gy);
}

SS_TEST(bad_inputs) {
    float v[64] = {0};
    sst_conv2d_dims d = {1, 1, 4, 4, 1, 3, 3, 1, 1};
    SS_CHECK_STATUS(sst_linear_forward(NULL, v, v, NULL, 1, 1, 1), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("y must not be NULL");
    SS_CHECK_STATUS(sst_linear_forward(v, v, v, NULL, 0, 1, 1), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got 0");
    SS_CHECK_STATUS(sst_linear_backward(v, NULL, v, v, v, v, 1, 1, 1),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(sst_conv2d_forward(v, v, v, NULL, NULL), SS_ERR_NULL);
    d.pad = 3;
    SS_CHECK_STATUS(sst_conv2d_forward(v, v, v, NULL, &d), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("pad must be < the kernel size");
    d.pad = 0, d.H = 2;
    SS_CHECK_STATUS(sst_conv2d_forward(v, v, v, NULL, &d), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("larger than the padded input");
    d.H = 4, d.stride = 0;
    SS_CHECK_STATUS(sst_conv2d_backward(v, v, v, v, v, v, &d), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("stride must be >= 1, got 0");
    float s[8];
    SS_CHECK_STATUS(sst_batchnorm_forward(v, s, v, v, v, v, v, 1, 1, 1, 1e-5f,
                                          0.1f, 1),
                    SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("more than 1 value per channel");
    SS_CHECK_STATUS(sst_batchnorm_forward(v, s, v, v, NULL, v, v, 2, 1, 1,
                                          1e-5f, 0.1f, 1),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(sst_batchnorm_forward(v, s, v, v, v, NULL, NULL, 2, 1, 1,
                                          1e-5f, 0.1f, 0),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("eval mode needs running_mean");
    SS_CHECK_STATUS(sst_batchnorm_forward(v, s, v, v, v, v, v, 2, 1, 1, 0.0f,
                                          0.1f, 1),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("eps");
    SS_CHECK_STATUS(sst_batchnorm_forward(v, s, v, v, v, v, v, 2, 1, 1, 1e-5f,
                                          1.5f, 1),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("momentum must be in [0, 1], got 1.5");
    SS_CHECK_STATUS(sst_batchnorm_backward(v, NULL, v, v, s, v, v, 2, 1, 1, 1),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(sst_layernorm_forward(v, s, v, NULL, NULL, 1, 0, 1e-5f),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_relu_forward(v, NULL, 4), SS_ERR_NULL);
    SS_CHECK_STATUS(sst_gelu_backward(v, v, v, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_maxpool2d_forward(v, v, 1, 2, 2, 3, 1), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("kernel K = 3 larger than the input 2 x 2");
    SS_CHECK_STATUS(sst_avgpool2d_backward(v, v, 1, 4, 4, 2, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_gap_forward(v, v, 0, 4), SS_ERR_SIZE);
    SS_CHECK_STATUS(sst_gap_backward(NULL, v, 1, 4), SS_ERR_NULL);
}

/* BatchNorm, LayerNorm, pooling and Linear at 1 vs 2 threads. */
SS_TEST(other_layers_thread_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    const int64_t N = 6, C = 5, S = 36, n = N * C * S; /* S = 6 x 6 */
    float *x = prefill(n, &rng), *gy = prefill(n, &rng), *g = prefill(C, &rng);
    float *b = prefill(C, &rng), *w = prefill(C * S, &rng);
    float *out[2][8];
    for (int t = 0; t < 2; t++) {
        for (int k = 0; k < 8; k++) out[t][k] = ss_test_alloc(n);
        float saved[64], rm[5] = {0}, rv[5] = {1, 1, 1, 1, 1};
        SS_CHECK_OK(ss_set_num_threads(t + 1));
        SS_CHECK_OK(sst_batchnorm_forward(out[t][0], saved, x, g, b, rm, rv, N,
                                          C, S, SST_BN_EPS, SST_BN_MOMENTUM, 1));
        SS_CHECK_OK(sst_batchnorm_backward(out[t][1], out[t][2], out[t][2] + C,
                                           gy, saved, x, g, N, C, S, 1));
        SS_CHECK_OK(sst_layernorm_forward(out[t][3], saved, x, NULL, NULL,
                                          N * C, S, 1e-5f));
        SS_CHECK_OK(sst_maxpool2d_forward(out[t][4], x, N * C, 6, 6, 2, 2));
        SS_CHECK_OK(sst_maxpool2d_backward(out[t][5], gy, x, N * C, 6, 6, 2, 2));
        SS_CHECK_OK(sst_linear_forward(out[t][6], x, w, NULL, N, C * S, 1));
        SS_CHECK_OK(sst_linear_backward(out[t][7], out[t][6] + N, NULL,
                                        gy, x, w, N, C * S, 1));
    }
    SS_CHECK_OK(ss_set_num_threads(0));
    const int64_t len[8] = {n, n, 2 * C, n, n / 4, n, N + C * S, n};
    for (int k = 0; k < 8; k++) {
        char what[32];
        snprintf(what, sizeof what, "output %d, 1 vs 2 threads", k);
        SS_CHECK_CLOSE_FF(out[1][k], out[0][k], len[k], 1e-6, what);
    }
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 8; k++) free(out[t][k]);
    free(x), free(gy), free(g), free(b), free(w);
}

/* Several images per GEMM (chunks of ceil(512 / L), the last one partial)
 * against one call per image, whose single-image path the fixtures check. */
static void conv_chunk_case(sst_conv2d_dims d, ss_rng *rng) {
    int64_t OH, OW;
    SS_CHECK_OK(sst_conv2d_out_size(&d, &OH, &OW));
    const int64_t N = d.N, xs = d.Cin * d.H * d.W, ys = d.Cout * OH * OW;
    const int64_t nw = d.Cout * d.Cin * d.KH * d.KW, C = d.Cout;
    float *x = prefill(N * xs, rng), *w = prefill(nw, rng), *b = prefill(C, rng);
    float *gy = prefill(N * ys, rng);
    float *y = ss_test_alloc(N * ys), *dx = ss_test_alloc(N * xs);
    float *dw = ss_test_alloc(nw), *db = ss_test_alloc(C);
    float *y1 = ss_test_alloc(N * ys), *dx1 = ss_test_alloc(N * xs);
    float *dw1 = ss_test_alloc(nw), *db1 = ss_test_alloc(C);
    SS_CHECK_OK(sst_conv2d_forward(y, x, w, b, &d));
    SS_CHECK_OK(sst_conv2d_backward(dx, dw, db, gy, x, w, &d));
    sst_conv2d_dims one = d;
    one.N = 1;
    for (int64_t n = 0; n < N; n++) {
        SS_CHECK_OK(sst_conv2d_forward(y1 + n * ys, x + n * xs, w, b, &one));
        SS_CHECK_OK(sst_conv2d_backward(dx1 + n * xs, dw1, db1, gy + n * ys,
                                        x + n * xs, w, &one));
    }
    SS_CHECK_CLOSE_FF(y, y1, N * ys, 1e-6, "conv chunked y");
    SS_CHECK_CLOSE_FF(dx, dx1, N * xs, 1e-6, "conv chunked dx");
    SS_CHECK_CLOSE_FF(dw, dw1, nw, 1e-5, "conv chunked dw");
    SS_CHECK_CLOSE_FF(db, db1, C, 1e-5, "conv chunked db");
    free(x), free(w), free(b), free(gy), free(y), free(dx), free(dw), free(db);
    free(y1), free(dx1), free(dw1), free(db1);
}

SS_TEST(conv2d_chunks_match_per_image) {
    ss_rng rng;
    ss_rng_seed(&rng, 10);
    /* L = 182: chunks of 3 images, the last one partial */
    conv_chunk_case((sst_conv2d_dims){7, 3, 14, 13, 5, 3, 3, 1, 1}, &rng);
    /* L = 552 > 512: one image per GEMM, written in place */
    conv_chunk_case((sst_conv2d_dims){3, 2, 24, 23, 4, 3, 3, 1, 1}, &rng);
}
