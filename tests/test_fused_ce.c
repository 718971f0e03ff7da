/* test_fused_ce.c - fused linear + CE: PyTorch fixtures, finite
 * differences on the direct reference, fused vs direct at awkward sizes
 * (chunk and block edges, T = 1, all ignored), one-pass vs pair,
 * accumulation, optional gradients, threads, errors. */
#include "direct_predictive.h"
#include "fixture.h"
#include "harness.h"
#include "predictive.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 512 /* FCE_CHUNK in src/fused_ce.c */

typedef struct {
    float *h, *w, *b, *dh, *dw, *db, *losses;
    int64_t *y;
    int64_t T, H, V;
    float *cw; /* (V) class weights */
} fce_case;

enum { USE_BIAS = 1, USE_WEIGHTS = 2 };

static void case_free(fce_case *c) {
    free(c->h), free(c->w), free(c->b), free(c->dh), free(c->dw);
    free(c->db), free(c->losses), free(c->y), free(c->cw);
}

static fce_case case_new(int64_t T, int64_t H, int64_t V, double p_ign,
                         uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    fce_case c = {ss_test_alloc(T * H), ss_test_alloc(V * H), ss_test_alloc(V),
                  ss_test_alloc(T * H), ss_test_alloc(V * H), ss_test_alloc(V),
                  ss_test_alloc(T), calloc((size_t)T, sizeof(int64_t)), T, H, V,
                  ss_test_alloc(V)};
    for (int64_t i = 0; i < V; i++) c.cw[i] = (float)(0.2 + 1.8 * ss_rng_uniform(&rng));
    ss_test_fill_normal(c.h, T * H, &rng);
    ss_test_fill_normal(c.w, V * H, &rng);
    ss_test_fill_normal(c.b, V, &rng);
    for (int64_t i = 0; i < V * H; i++) c.w[i] *= (float)(2.0 / sqrt((double)H));
    for (int64_t t = 0; t < T; t++)
        c.y[t] = ss_rng_uniform(&rng) < p_ign
                     ? -100 : (int64_t)(ss_rng_u64(&rng) % (uint64_t)V);
    return c;
}

/* forward + backward (pair) onto the case's gradient buffers. */
static ss_status run_pair(fce_case *c, float *loss, int use_bias, float dloss,
                          const ss_fused_ce_opts *o) {
    use_bias &= USE_BIAS;
    void *cache = malloc(ss_fused_ce_cache_size(c->T, c->H, c->V));
    const float *b = use_bias ? c->b : NULL;
    ss_status st = ss_fused_ce_forward(loss, c->losses, cache, c->h, c->w, b,
                                       c->y, c->T, c->H, c->V, o);
    if (st == SS_OK)
        st = ss_fused_ce_backward(c->dh, c->dw, use_bias ? c->db : NULL, dloss,
                                  cache, c->h, c->w, b, c->y, c->T, c->H,
                                  c->V, o);
    free(cache);
    return st;
}

static double direct_of(const fce_case *c, int flags, double eps,
                        double *ld, double *dh, double *dw, double *db) {
    int64_t T = c->T, H = c->H, V = c->V;
    double *h = ss_test_alloc_d(T * H), *w = ss_test_alloc_d(V * H);
    double *b = ss_test_alloc_d(V), *cw = ss_test_alloc_d(V);
    for (int64_t i = 0; i < T * H; i++) h[i] = c->h[i];
    for (int64_t i = 0; i < V * H; i++) w[i] = c->w[i];
    for (int64_t i = 0; i < V; i++) b[i] = c->b[i], cw[i] = c->cw[i];
    double l = ss_direct_linear_ce(h, w, (flags & USE_BIAS) ? b : NULL, c->y,
                                   T, H, V, eps,
                                   (flags & USE_WEIGHTS) ? cw : NULL, -100, ld,
                                   dh, dw, db);
    free(h), free(w), free(b), free(cw);
    return l;
}

/* opts.block_bytes for check_vs_direct; 0 keeps the default. */
static size_t block_bytes;

static void check_vs_direct(int64_t T, int64_t H, int64_t V, double eps,
                            int use_bias, double p_ign, uint64_t seed) {
    fce_case c = case_new(T, H, V, p_ign, seed);
    ss_fused_ce_opts o = ss_fused_ce_defaults();
    if (block_bytes) o.block_bytes = block_bytes;
    o.label_smoothing = (float)eps;
    o.class_weights = (use_bias & USE_WEIGHTS) ? c.cw : NULL;
    float loss;
    SS_CHECK_OK(run_pair(&c, &loss, use_bias, 1.0f, &o));
    double *ld = ss_test_alloc_d(T), *dh = ss_test_alloc_d(T * H);
    double *dw = ss_test_alloc_d(V * H), *db = ss_test_alloc_d(V);
    double want = direct_of(&c, use_bias, eps, ld, dh, dw, db);
    SS_CHECK(isfinite(loss));
    SS_CHECK_NEAR(loss, want, 2e-5);
    SS_CHECK_CLOSE_FD(c.losses, ld, T, 2e-5, "losses");
    SS_CHECK_CLOSE_FD(c.dh, dh, T * H, 2e-5, "dhidden");
    SS_CHECK_CLOSE_FD(c.dw, dw, V * H, 2e-5, "dweight");
    if (use_bias & USE_BIAS) SS_CHECK_CLOSE_FD(c.db, db, V, 2e-5, "dbias");
    /* the one-pass call gives the same loss and gradients */
    fce_case d = case_new(T, H, V, p_ign, seed);
    float l2;
    int ub = use_bias & USE_BIAS;
    SS_CHECK_OK(ss_fused_ce_forward_backward(&l2, d.losses, d.dh, d.dw,
                                             ub ? d.db : NULL, 1.0f, d.h, d.w,
                                             ub ? d.b : NULL, d.y, T, H, V,
                                             &o));
    SS_CHECK_NEAR(l2, loss, 1e-6);
    SS_CHECK_CLOSE_FF(d.dh, c.dh, T * H, 1e-5, "one-pass dhidden");
    SS_CHECK_CLOSE_FF(d.dw, c.dw, V * H, 1e-5, "one-pass dweight");
    SS_CHECK_CLOSE_FF(d.db, c.db, V, 1e-5, "one-pass dbias");
    case_free(&c), case_free(&d);
    free(ld), free(dh), free(dw), free(db);
}

SS_TEST(defaults_and_cache_size) {
    ss_fused_ce_opts o = ss_fused_ce_defaults();
    SS_CHECK(o.ignore_index == -100 && o.label_smoothing == 0.0f);
    SS_CHECK(ss_fused_ce_cache_size(10, 4, 7) >= 10 * sizeof(float));
    SS_CHECK(ss_fused_ce_cache_size(10, 0, 7) == 0);
    SS_CHECK_MSG_HAS("H must be >= 1, got 0");
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("fused_ce.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t k = 0; k < ncases; k++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)k), key)
        int64_t T = fx_int(fx, KEY("T")), H = fx_int(fx, KEY("H"));
        int64_t V = fx_int(fx, KEY("V")), n;
        int hb = (int)fx_int(fx, KEY("has_bias"));
        fce_case c = {fx_f32_copy(fx, KEY("hidden"), &n),
                      fx_f32_copy(fx, KEY("weight"), &n),
                      fx_f32_copy(fx, KEY("bias"), &n), ss_test_alloc(T * H),
                      ss_test_alloc(V * H), ss_test_alloc(V), ss_test_alloc(T),
                      calloc((size_t)T, sizeof(int64_t)), T, H, V,
                      fx_f32_copy(fx, KEY("w"), &n)};
        int hw = (int)fx_int(fx, KEY("has_w"));
        const int64_t *y = fx_i64(fx, KEY("targets"), &n);
        SS_CHECK(c.h && c.w && c.b && c.cw && y && n == T);
        if (!c.h || !c.w || !c.b || !c.cw || !y) continue;
        memcpy(c.y, y, sizeof(int64_t) * (size_t)T);
        ss_fused_ce_opts o = ss_fused_ce_defaults();
        o.label_smoothing = (float)fx_scalar(fx, KEY("eps"));
        o.class_weights = hw ? c.cw : NULL;
        float loss;
        SS_CHECK_OK(run_pair(&c, &loss, hb, 1.0f, &o));
        double want = fx_scalar(fx, KEY("loss"));
        SS_CHECK_NEAR(loss, want, 1e-4);
        SS_CHECK_CLOSE_FD(c.losses, fx_f64(fx, KEY("losses"), &n), T, 1e-4,
                          "fixture losses");
        SS_CHECK_CLOSE_FD(c.dh, fx_f64(fx, KEY("dhidden"), &n), T * H, 1e-4,
                          "fixture dhidden");
        SS_CHECK_CLOSE_FD(c.dw, fx_f64(fx, KEY("dweight"), &n), V * H, 1e-4,
                          "fixture dweight");
        if (hb)
            SS_CHECK_CLOSE_FD(c.db, fx_f64(fx, KEY("dbias"), &n), V, 1e-4,
                              "fixture dbias");
        /* the direct reference matches PyTorch to double precision */
        double *dh = ss_test_alloc_d(T * H), *dw = ss_test_alloc_d(V * H);
        double *db = ss_test_alloc_d(V);
        double l = ss_direct_linear_ce(fx_f64(fx, KEY("hidden"), &n),
                                       fx_f64(fx, KEY("weight"), &n),
                                       hb ? fx_f64(fx, KEY("bias"), &n) : NULL,
                                       y, T, H, V, fx_scalar(fx, KEY("eps")),
                                       hw ? fx_f64(fx, KEY("w"), &n) : NULL,
                                       -100, NULL, dh, dw, db);
        SS_CHECK_NEAR(l, want, 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dh, fx_f64(fx, KEY("dhidden"), &n), T * H) <= 1e-10);
        SS_CHECK(ss_test_rel_err_dd(dw, fx_f64(fx, KEY("dweight"), &n), V * H) <= 1e-10);
#undef KEY
        case_free(&c), free(dh), free(dw), free(db);
    }
    fx_free(fx);
}

typedef struct {
    const int64_t *y;
    int64_t T, H, V;
    double eps;
    const double *cw;
} lin_ctx;

/* x = [h (T*H), w (V*H), b (V)] */
static double lin_f(const double *x, void *p) {
    lin_ctx *k = p;
    return ss_direct_linear_ce(x, x + k->T * k->H, x + (k->T + k->V) * k->H,
                               k->y, k->T, k->H, k->V, k->eps, k->cw, -100,
                               NULL, NULL, NULL, NULL);
}

SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 21);
    int64_t T = 5, H = 4, V = 7, n = (T + V) * H + V;
    int64_t y[5] = {3, -100, 0, 6, 2};
    double *x = ss_test_alloc_d(n), *g = ss_test_alloc_d(n);
    double cw[7] = {0.5, 1.5, 1.0, 0.3, 2.0, 0.8, 1.1};
    ss_test_fill_normal_d(x, n, &rng);
    for (int e = 0; e < 4; e++) {
        lin_ctx c = {y, T, H, V, (e & 1) ? 0.2 : 0.0, (e & 2) ? cw : NULL};
        ss_direct_linear_ce(x, x + T * H, x + (T + V) * H, y, T, H, V, c.eps,
                            c.cw, -100, NULL, g, g + T * H, g + (T + V) * H);
        SS_CHECK(ss_test_fd_max_err(lin_f, &c, x, g, n, 1e-5, 4) < 1e-6);
    }
    free(x), free(g);
}

SS_TEST(fused_vs_direct_awkward_sizes) {
    const int64_t Vs[] = {1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7};
    uint64_t seed = 100;
    for (size_t i = 0; i < sizeof Vs / sizeof *Vs; i++) {
        check_vs_direct(1, 3, Vs[i], 0.0, 1, 0.0, seed++); /* T = 1 */
        check_vs_direct(9, 5, Vs[i], 0.1, 1, 0.3, seed++);
        check_vs_direct(6, 1, Vs[i], 0.0, 0, 0.2, seed++); /* H = 1 */
    }
    check_vs_direct(40, 33, 700, 0.05, 1, 0.5, seed++);
    /* class weights, with and without smoothing, across chunks */
    check_vs_direct(1, 3, CHUNK + 1, 0.1, USE_BIAS | USE_WEIGHTS, 0.0, seed++);
    check_vs_direct(17, 6, 2 * CHUNK + 7, 0.0, USE_WEIGHTS, 0.3, seed++);
    check_vs_direct(17, 6, 2 * CHUNK + 7, 0.2, USE_BIAS | USE_WEIGHTS, 0.3, seed++);
}

/* Small row blocks: 2 KiB of logits per block is 1 row at V = 600, 2 rows
 * at V = 300 and 4 at V = 130, so blocks are full, partial and single. */
SS_TEST(row_blocks) {
    block_bytes = 2048;
    check_vs_direct(9, 5, 600, 0.1, 1, 0.2, 7);
    check_vs_direct(11, 4, 300, 0.0, 1, 0.0, 8);
    check_vs_direct(23, 3, 130, 0.2, USE_WEIGHTS, 0.3, 9);
    block_bytes = 0;
}

SS_TEST(all_ignored_and_optional_grads) {
    fce_case c = case_new(5, 3, 11, 1.0, 3); /* every target ignored */
    float loss = -1, pre = c.dh[0] = 0.25f;
    c.dw[0] = 0.5f;
    SS_CHECK_OK(run_pair(&c, &loss, 1, 1.0f, NULL));
    SS_CHECK(loss == 0.0f && c.losses[0] == 0.0f);
    SS_CHECK(c.dh[0] == pre && c.dw[0] == 0.5f && c.db[0] == 0.0f);
    SS_CHECK_OK(ss_fused_ce_forward_backward(&loss, NULL, c.dh, c.dw, c.db,
                                             1.0f, c.h, c.w, c.b, c.y, 5, 3,
                                             11, NULL));
    SS_CHECK(loss == 0.0f && c.dh[0] == pre);
    /* scored targets whose class weights are all 0: 0, not NaN */
    ss_fused_ce_opts o = ss_fused_ce_defaults();
    memset(c.cw, 0, sizeof(float) * 11);
    o.class_weights = c.cw;
    c.y[1] = 4;
    SS_CHECK_OK(run_pair(&c, &loss, 1, 1.0f, &o));
    SS_CHECK(loss == 0.0f && c.dh[0] == pre && c.dw[0] == 0.5f);
    SS_CHECK_OK(ss_fused_ce_forward_backward(&loss, NULL, c.dh, c.dw, c.db,
                                             1.0f, c.h, c.w, c.b, c.y, 5, 3,
                                             11, &o));
    SS_CHECK(loss == 0.0f && c.dh[0] == pre && c.dw[0] == 0.5f);
    case_free(&c);
    /* only dweight requested; ignored rows of dhidden stay untouched */
    fce_case d = case_new(6, 4, 9, 0.5, 4), e = case_new(6, 4, 9, 0.5, 4);
    d.y[0] = -100, e.y[0] = -100;
    void *cache = malloc(ss_fused_ce_cache_size(6, 4, 9));
    SS_CHECK_OK(ss_fused_ce_forward(&loss, NULL, cache, d.h, d.w, NULL, d.y,
                                    6, 4, 9, NULL));
    SS_CHECK_OK(ss_fused_ce_backward(NULL, d.dw, NULL, 1.0f, cache, d.h, d.w,
                                     NULL, d.y, 6, 4, 9, NULL));
    SS_CHECK_OK(run_pair(&e, &loss, 0, 1.0f, NULL));
    SS_CHECK_CLOSE_FF(d.dw, e.dw, 36, 1e-6, "dweight alone");
    for (int h = 0; h < 4; h++) SS_CHECK(e.dh[h] == 0.0f);
    /* an ignored row is never read: NaN there changes nothing */
    float l1;
    memset(e.dh, 0, sizeof(float) * 24);
    e.h[1] = NAN;
    SS_CHECK_OK(run_pair(&e, &l1, 0, 1.0f, NULL));
    SS_CHECK(l1 == loss);
    for (int h = 0; h < 4; h++) SS_CHECK(e.dh[h] == 0.0f);
    for (int h = 4; h < 24; h++) SS_CHECK(isfinite(e.dh[h]));
    free(cache), case_free(&d), case_free(&e);
}

SS_TEST(accumulates_and_scales) {
    fce_case a = case_new(12, 6, 600, 0.2, 8), b = case_new(12, 6, 600, 0.2, 8);
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    ss_test_fill_normal(b.dh, 72, &rng);
    ss_test_fill_normal(b.dw, 3600, &rng);
    ss_test_fill_normal(b.db, 600, &rng);
    float *pre = ss_test_alloc(72 + 3600 + 600), loss;
    memcpy(pre, b.dh, 72 * 4), memcpy(pre + 72, b.dw, 3600 * 4);
    memcpy(pre + 3672, b.db, 600 * 4);
    SS_CHECK_OK(run_pair(&a, &loss, 1, 1.0f, NULL));
    SS_CHECK_OK(run_pair(&b, &loss, 1, 3.0f, NULL));
    for (int i = 0; i < 72; i++) SS_CHECK_NEAR(b.dh[i], pre[i] + 3 * a.dh[i], 1e-5);
    for (int i = 0; i < 3600; i++)
        SS_CHECK_NEAR(b.dw[i], pre[72 + i] + 3 * a.dw[i], 1e-5);
    for (int i = 0; i < 600; i++)
        SS_CHECK_NEAR(b.db[i], pre[3672 + i] + 3 * a.db[i], 1e-5);
    case_free(&a), case_free(&b), free(pre);
}

SS_TEST(thread_count_independent) {
    fce_case a = case_new(33, 16, 1500, 0.2, 12), b = case_new(33, 16, 1500, 0.2, 12);
    float la, lb;
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_OK(run_pair(&a, &la, 1, 1.0f, NULL));
    SS_CHECK_OK(ss_set_num_threads(2));
    SS_CHECK_OK(run_pair(&b, &lb, 1, 1.0f, NULL));
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(la, lb, 1e-6);
    SS_CHECK_CLOSE_FF(b.dh, a.dh, 33 * 16, 1e-6, "dhidden 1 vs 2 threads");
    SS_CHECK(memcmp(a.dw, b.dw, sizeof(float) * 1500 * 16) == 0);
    SS_CHECK(memcmp(a.db, b.db, sizeof(float) * 1500) == 0);
    case_free(&a), case_free(&b);
}

SS_TEST(errors) {
    fce_case c = case_new(3, 2, 5, 0.0, 2);
    char cache[256];
    float loss = 42.0f;
    ss_fused_ce_opts o = ss_fused_ce_defaults();
#define FWD(l, ca, h, w, b, y, T, H, V, op) \
    ss_fused_ce_forward(l, NULL, ca, h, w, b, y, T, H, V, op)
    SS_CHECK_STATUS(FWD(NULL, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(FWD(&loss, NULL, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(FWD(&loss, cache, NULL, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("hidden must not be NULL");
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, NULL, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, NULL, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 0, 2, 5, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 0, 5, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 0, NULL), SS_ERR_SIZE);
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, (int64_t)1 << 30,
                        (int64_t)1 << 20, 5, NULL), SS_ERR_SIZE);
    o.label_smoothing = -0.1f;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("label_smoothing must be in [0, 1], got -0.1");
    o = ss_fused_ce_defaults();
    c.cw[2] = -1.0f;
    o.class_weights = c.cw;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("class_weights[2] must be finite and >= 0, got -1");
    o = ss_fused_ce_defaults();
    o.block_bytes = 0;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("block_bytes must be >= 1, got 0");
    c.y[2] = 5;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_LABEL);
    SS_CHECK_MSG_HAS("targets[2] = 5");
    c.y[2] = 1;
    c.w[3] = INFINITY;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("weight[3]");
    c.w[3] = 0.0f, c.h[5] = NAN;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("hidden[5]");
    c.h[5] = 0.0f, c.b[4] = NAN;
    SS_CHECK_STATUS(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("bias[4]");
    SS_CHECK(loss == 42.0f);
    c.b[4] = 0.0f;
    SS_CHECK_OK(FWD(&loss, cache, c.h, c.w, c.b, c.y, 3, 2, 5, NULL));
    SS_CHECK_STATUS(ss_fused_ce_backward(c.dh, c.dw, c.db, 1.0f, NULL, c.h, c.w,
                                         c.b, c.y, 3, 2, 5, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_fused_ce_backward(c.dh, c.dw, c.db, INFINITY, cache, c.h,
                                         c.w, c.b, c.y, 3, 2, 5, NULL),
                    SS_ERR_NONFINITE);
    SS_CHECK_STATUS(ss_fused_ce_forward_backward(NULL, NULL, c.dh, c.dw, c.db,
                                                 1.0f, c.h, c.w, c.b, c.y, 3,
                                                 2, 5, NULL), SS_ERR_NULL);
    c.y[0] = -7;
    SS_CHECK_STATUS(ss_fused_ce_forward_backward(&loss, NULL, c.dh, c.dw, c.db,
                                                 1.0f, c.h, c.w, c.b, c.y, 3,
                                                 2, 5, NULL), SS_ERR_LABEL);
    for (int i = 0; i < 6; i++) SS_CHECK(c.dh[i] == 0.0f);
#undef FWD
    case_free(&c);
}
