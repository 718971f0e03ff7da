/* test_dcl.c - DCL / DCLW: PyTorch (lightly) fixtures, a direct double
 * reference checked by finite differences, tiled vs direct at awkward sizes,
 * accumulation, thread-count independence and every bad input. */
#include "direct_contrast.h"
#include "fixture.h"
#include "harness.h"
#include "kernels/contrast.h"

#include <stdlib.h>
#include <string.h>

int64_t ss__dcl_tile(void); /* src/dcl.c */

/* ---- direct double-precision reference ----------------------------------- */

typedef struct {
    int64_t V, N, D;
    ss_dcl_opts o;
    const double *wfix; /* (N) fixed positive weights, or NULL to compute */
} dcl_ref;

static double dot(const double *a, const double *b, int64_t D) {
    double s = 0;
    for (int64_t d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

/* x: (M, D) rows as used in the dot products (normalised when cosine). */
static void ref_rows(double *x, const double *z, const dcl_ref *r) {
    int64_t M = r->V * r->N, D = r->D;
    for (int64_t i = 0; i < M; i++) {
        double nrm =
            r->o.cosine ? fmax(sqrt(dot(z + i * D, z + i * D, D)), 1e-12) : 1;
        for (int64_t d = 0; d < D; d++) x[i * D + d] = z[i * D + d] / nrm;
    }
}

static void ref_weights(double *w, const double *x, const dcl_ref *r) {
    int64_t N = r->N, D = r->D;
    if (r->wfix) {
        memcpy(w, r->wfix, (size_t)N * sizeof(double));
    } else if (!r->o.weighted) {
        for (int64_t n = 0; n < N; n++) w[n] = 1;
    } else {
        double sum = 0;
        for (int64_t n = 0; n < N; n++)
            sum += exp(dot(x + n * D, x + (N + n) * D, D) / r->o.sigma);
        for (int64_t n = 0; n < N; n++)
            w[n] =
                2 -
                N * exp(dot(x + n * D, x + (N + n) * D, D) / r->o.sigma) / sum;
    }
}

/* LSE_{j != n} s((v,n),(u,j)) straight from the definition. */
static double ref_lse(const double *x, const dcl_ref *r, int64_t v, int64_t n,
                      int64_t u) {
    int64_t N = r->N, D = r->D;
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < N; j++)
        if (j != n)
            mx = fmax(mx, dot(x + (v * N + n) * D, x + (u * N + j) * D, D) /
                              r->o.temperature);
    for (int64_t j = 0; j < N; j++)
        if (j != n)
            s += exp(dot(x + (v * N + n) * D, x + (u * N + j) * D, D) /
                         r->o.temperature -
                     mx);
    return mx + log(s);
}

/* Loss; per-anchor losses (V, N) and dL/dz (V, N, D) when not NULL. */
static double ref_dcl(const double *z, const dcl_ref *r, double *losses,
                      double *grad) {
    const int64_t V = r->V, N = r->N, D = r->D, M = V * N;
    const double t = r->o.temperature;
    double *x = ss_test_alloc_d(M * D), *w = ss_test_alloc_d(N);
    double *dx = ss_test_alloc_d(M * D), *lse = ss_test_alloc_d(V * V * N);
    ref_rows(x, z, r);
    ref_weights(w, x, r);
    double total = 0;
    for (int64_t v = 0; v < V; v++)
        for (int64_t n = 0; n < N; n++) {
            double li = 0;
            for (int64_t u = 0; u < V; u++) {
                lse[(v * V + u) * N + n] = ref_lse(x, r, v, n, u);
                if (u == v)
                    li += lse[(v * V + u) * N + n];
                else
                    li +=
                        (lse[(v * V + u) * N + n] -
                         w[n] *
                             dot(x + (v * N + n) * D, x + (u * N + n) * D, D) /
                             t) /
                        (V - 1);
            }
            if (losses) losses[v * N + n] = li;
            total += li;
        }
    if (grad) {
        /* anchor (v,n), block u: softmax P over j != n of the block row. */
        for (int64_t v = 0; v < V; v++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t u = 0; u < V; u++) {
                    double c = (u == v ? 1.0 : 1.0 / (V - 1)) / M / t;
                    const double *xi = x + (v * N + n) * D;
                    for (int64_t j = 0; j < N; j++) {
                        if (j == n) continue;
                        const double *xk = x + (u * N + j) * D;
                        double p =
                            exp(dot(xi, xk, D) / t - lse[(v * V + u) * N + n]);
                        for (int64_t d = 0; d < D; d++) {
                            dx[(v * N + n) * D + d] += c * p * xk[d];
                            dx[(u * N + j) * D + d] += c * p * xi[d];
                        }
                    }
                    if (u == v) continue;
                    const double *xp = x + (u * N + n) * D;
                    for (int64_t d = 0; d < D; d++) {
                        dx[(v * N + n) * D + d] -=
                            w[n] / (V - 1) / M / t * xp[d];
                        dx[(u * N + n) * D + d] -=
                            w[n] / (V - 1) / M / t * xi[d];
                    }
                }
        for (int64_t i = 0; i < M; i++) {
            const double *zi = z + i * D, *xi = x + i * D, *gi = dx + i * D;
            double nrm = sqrt(dot(zi, zi, D)), xg = dot(xi, gi, D);
            for (int64_t d = 0; d < D; d++)
                grad[i * D + d] =
                    r->o.cosine ? (gi[d] - xi[d] * xg) / nrm : gi[d];
        }
    }
    free(x), free(w), free(dx), free(lse);
    return total / M;
}

static double ref_loss_fn(const double *z, void *ctx) {
    return ref_dcl(z, ctx, NULL, NULL);
}

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    float loss, *losses, *dz;
    void *cache;
} dcl_out;

/* Forward + backward(dloss) of the library on z; dz starts at zero. */
static void run_dcl(dcl_out *out, const float *z, int64_t V, int64_t N,
                    int64_t D, const ss_dcl_opts *o, float dloss) {
    out->losses = ss_test_alloc(V * N);
    out->dz = ss_test_alloc(V * N * D);
    out->cache = malloc(ss_dcl_cache_size(V, N, D));
    SS_CHECK_OK(
        ss_dcl_forward(&out->loss, out->losses, out->cache, z, V, N, D, o));
    SS_CHECK_OK(ss_dcl_backward(out->dz, dloss, out->cache, z, V, N, D, o));
}

static void free_out(dcl_out *out) {
    free(out->losses), free(out->dz), free(out->cache);
}

static double *to_double(const float *x, int64_t n) {
    double *d = ss_test_alloc_d(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ---- tests --------------------------------------------------------------- */

SS_TEST(defaults) {
    ss_dcl_opts a = ss_dcl_defaults(), b = ss_dclw_defaults();
    SS_CHECK(a.temperature == 0.1f && a.weighted == 0 && a.sigma == 0.5f &&
             a.cosine == 1 && a.joint_negatives == 0);
    SS_CHECK(b.temperature == 0.1f && b.weighted == 1 && b.sigma == 0.5f &&
             b.cosine == 1 && b.joint_negatives == 0);
    SS_CHECK_INT(ss_dcl_cache_size(3, 5, 7), 64 + 3 * 3 * 5 * sizeof(float));
}

SS_TEST(pytorch_fixture) {
    ss_fixture *fx = fx_load("dcl.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 1);
    for (int64_t k = 0; k < ncases; k++) {
        char name[64];
#define FX(what)                                                               \
    (snprintf(name, sizeof name, "c%lld_%s", (long long)k, what), name)
        int64_t V = fx_int(fx, FX("V")), N = fx_int(fx, FX("N")),
                D = fx_int(fx, FX("D"));
        ss_dcl_opts o = ss_dcl_defaults();
        o.temperature = (float)fx_scalar(fx, FX("temperature"));
        o.weighted = (int)fx_int(fx, FX("weighted"));
        o.sigma = (float)fx_scalar(fx, FX("sigma"));
        o.cosine = (int)fx_int(fx, FX("cosine"));
        o.joint_negatives = fx_int(fx, FX("joint_negatives")) > 0;
        int64_t nz;
        float *z = fx_f32_copy(fx, FX("z"), &nz);
        const double *losses = fx_f64(fx, FX("losses"), NULL);
        const double *dz = fx_f64(fx, FX("dz"), NULL);
        SS_CHECK(z && losses && dz && nz == V * N * D);
        if (!z || !losses || !dz) break;
        dcl_out out;
        run_dcl(&out, z, V, N, D, &o, 1.0f);
        double want = fx_scalar(fx, FX("loss"));
        SS_CHECK(fabs(out.loss - want) <= 1e-4 * fmax(fabs(want), 1e-3));
        SS_CHECK_CLOSE_FD(out.losses, losses, V * N, 1e-4, "per-anchor losses");
        SS_CHECK_CLOSE_FD(out.dz, dz, V * N * D, 1e-4, "dz");
        free_out(&out);
        free(z);
#undef FX
    }
    fx_free(fx);
}

/* The direct reference's analytic gradient against central differences
 * (DCLW with its weights held fixed: they are detached). */
SS_TEST(direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 11);
    const struct {
        int64_t V, N, D;
        int weighted, cosine;
    } cs[] = {{2, 4, 3, 0, 1},
              {2, 5, 4, 1, 1},
              {3, 3, 2, 0, 1},
              {2, 3, 3, 1, 0},
              {4, 2, 5, 0, 0}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        dcl_ref r = {cs[c].V, cs[c].N, cs[c].D, ss_dcl_defaults(), NULL};
        r.o.weighted = cs[c].weighted;
        r.o.cosine = cs[c].cosine;
        r.o.temperature = cs[c].cosine ? 0.1f : 0.5f;
        int64_t n = r.V * r.N * r.D;
        double *z = ss_test_alloc_d(n), *g = ss_test_alloc_d(n);
        double *x = ss_test_alloc_d(n), *w = ss_test_alloc_d(r.N);
        ss_test_fill_normal_d(z, n, &rng);
        ref_rows(x, z, &r);
        ref_weights(w, x, &r);
        r.wfix = w;
        ref_dcl(z, &r, NULL, g);
        double err = ss_test_fd_max_err(ref_loss_fn, &r, z, g, n, 1e-6, 5 + c);
        SS_CHECK(err < 1e-6);
        free(z), free(g), free(x), free(w);
    }
}

/* dz against the direct gradient. With D = 1 and cosine the exact gradient
 * is 0 (normalising a scalar gives its sign), so there an absolute bound
 * replaces the relative one. */
static void check_grad(const float *got, const double *want, int64_t n) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    if (mx > 1e-8) {
        SS_CHECK_CLOSE_FD(got, want, n, 1e-4, "dz");
    } else {
        for (int64_t i = 0; i < n; i++) SS_CHECK(fabs(got[i]) < 1e-4);
    }
}

/* The tiled float path against the direct double path at awkward sizes. */
SS_TEST(tiled_matches_direct) {
    const int64_t T = ss__dcl_tile();
    const struct {
        int64_t V, N, D;
        int weighted, cosine;
    } cs[] = {
        {2, 2, 3, 0, 1},        {3, 3, 1, 0, 1},     {2, 3, 1000, 1, 1},
        {2, T - 1, 3, 1, 1},    {3, T, 3, 0, 1},     {2, T + 1, 3, 0, 0},
        {2, T + 1, 1000, 0, 1}, {3, T + 1, 1, 0, 1}, {2, 2 * T + 3, 3, 1, 1}};
    ss_rng rng;
    ss_rng_seed(&rng, 12);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int64_t V = cs[c].V, N = cs[c].N, D = cs[c].D, n = V * N * D;
        dcl_ref r = {V, N, D, ss_dcl_defaults(), NULL};
        r.o.weighted = cs[c].weighted;
        r.o.cosine = cs[c].cosine;
        if (!r.o.cosine) r.o.temperature = 2.0f;
        float *z = ss_test_alloc(n);
        ss_test_fill_normal(z, n, &rng);
        double *zd = to_double(z, n), *g = ss_test_alloc_d(n);
        double *losses = ss_test_alloc_d(V * N);
        double want = ref_dcl(zd, &r, losses, g);
        dcl_out out;
        run_dcl(&out, z, V, N, D, &r.o, 1.0f);
        SS_CHECK_NEAR(out.loss, want, 1e-5);
        SS_CHECK_CLOSE_FD(out.losses, losses, V * N, 1e-5, "per-anchor losses");
        check_grad(out.dz, g, n);
        free_out(&out);
        free(z), free(zd), free(g), free(losses);
    }
}

/* joint_negatives: the paper's form is direct_contrast's plain form with
 * the positives excluded from the denominator and per-row weights. */
static double direct_joint(const double *z, const dcl_ref *r, double *losses,
                           double *grad) {
    const int64_t M = r->V * r->N, D = r->D;
    double *x = ss_test_alloc_d(M * D), *w = ss_test_alloc_d(r->N);
    double *wrow = ss_test_alloc_d(M);
    int64_t *g = malloc((size_t)M * sizeof(int64_t));
    ref_rows(x, z, r);
    ref_weights(w, x, r);
    for (int64_t i = 0; i < M; i++) wrow[i] = w[i % r->N];
    ss_direct_view_groups(g, r->V, r->N);
    ss_direct_gc p = {M, D, g, r->o.temperature, r->o.cosine, 1, wrow, 0, 0, 0};
    double loss = ss_direct_gc_loss(z, &p, losses, grad);
    free(x), free(w), free(wrow), free(g);
    return loss;
}

static double direct_joint_fn(const double *z, void *ctx) {
    return direct_joint(z, ctx, NULL, NULL);
}

SS_TEST(joint_direct_finite_differences) {
    ss_rng rng;
    ss_rng_seed(&rng, 16);
    const struct {
        int64_t V, N, D;
        int weighted, cosine;
    } cs[] = {{2, 4, 3, 0, 1}, {2, 5, 4, 1, 1}, {3, 3, 2, 0, 0}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        dcl_ref r = {cs[c].V, cs[c].N, cs[c].D, ss_dcl_defaults(), NULL};
        r.o.weighted = cs[c].weighted;
        r.o.cosine = cs[c].cosine;
        r.o.joint_negatives = 1;
        int64_t n = r.V * r.N * r.D;
        double *z = ss_test_alloc_d(n), *g = ss_test_alloc_d(n);
        double *x = ss_test_alloc_d(n), *w = ss_test_alloc_d(r.N);
        ss_test_fill_normal_d(z, n, &rng);
        ref_rows(x, z, &r);
        ref_weights(w, x, &r);
        r.wfix = w; /* DCLW weights are detached */
        direct_joint(z, &r, NULL, g);
        SS_CHECK(ss_test_fd_max_err(direct_joint_fn, &r, z, g, n, 1e-6, 9 + c) <
                 1e-6);
        free(z), free(g), free(x), free(w);
    }
}

/* The engine path against direct, with M = V * N around the engine tile. */
SS_TEST(joint_tiled_matches_direct) {
    const int64_t T = SS__GC_TILE;
    const struct {
        int64_t V, N, D;
        int weighted, cosine;
    } cs[] = {{2, 2, 3, 0, 1},
              {3, 3, 1, 0, 0},
              {2, 3, 1000, 1, 1},
              {2, T / 2 - 1, 3, 1, 1},
              {2, T / 2, 1, 0, 1},
              {3, T / 3, 3, 0, 1},
              {2, T / 2 + 1, 1000, 1, 1},
              {4, T / 4 + 1, 3, 0, 0}};
    ss_rng rng;
    ss_rng_seed(&rng, 17);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int64_t V = cs[c].V, N = cs[c].N, D = cs[c].D, n = V * N * D;
        dcl_ref r = {V, N, D, ss_dcl_defaults(), NULL};
        r.o.weighted = cs[c].weighted;
        r.o.cosine = cs[c].cosine;
        r.o.joint_negatives = 1;
        if (!r.o.cosine) r.o.temperature = 2.0f;
        float *z = ss_test_alloc(n);
        ss_test_fill_normal(z, n, &rng);
        double *zd = to_double(z, n), *g = ss_test_alloc_d(n);
        double *losses = ss_test_alloc_d(V * N);
        double want = direct_joint(zd, &r, losses, g);
        dcl_out out;
        run_dcl(&out, z, V, N, D, &r.o, 1.0f);
        SS_CHECK_NEAR(out.loss, want, 1e-5);
        SS_CHECK_CLOSE_FD(out.losses, losses, V * N, 1e-5, "per-anchor losses");
        check_grad(out.dz, g, n);
        free_out(&out);
        free(z), free(zd), free(g), free(losses);
    }
}

/* Small temperatures and large dot products take the online-max path
 * (logit range beyond the fixed shift): same agreement with direct. */
SS_TEST(online_max_matches_direct) {
    const int64_t T = ss__dcl_tile();
    const struct {
        int64_t V, N, D;
        int cosine;
        float temperature;
    } cs[] = {{2, T + 1, 3, 1, 0.01f},
              {3, 5, 7, 1, 0.02f},
              {2, T - 1, 4, 0, 0.05f},
              {2, 9, 2, 0, 0.1f}};
    ss_rng rng;
    ss_rng_seed(&rng, 18);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int64_t V = cs[c].V, N = cs[c].N, D = cs[c].D, n = V * N * D;
        for (int joint = 0; joint < 2; joint++) {
            dcl_ref r = {V, N, D, ss_dcl_defaults(), NULL};
            r.o.cosine = cs[c].cosine;
            r.o.temperature = cs[c].temperature;
            r.o.joint_negatives = joint;
            float *z = ss_test_alloc(n);
            ss_test_fill_normal(z, n, &rng);
            double *zd = to_double(z, n), *g = ss_test_alloc_d(n);
            double *losses = ss_test_alloc_d(V * N);
            double want = joint ? direct_joint(zd, &r, losses, g)
                                : ref_dcl(zd, &r, losses, g);
            dcl_out out;
            run_dcl(&out, z, V, N, D, &r.o, 1.0f);
            SS_CHECK_NEAR(out.loss, want, 1e-5);
            SS_CHECK_CLOSE_FD(out.losses, losses, V * N, 1e-5,
                              "per-anchor losses");
            SS_CHECK_CLOSE_FD(out.dz, g, n, 1e-4, "dz");
            free_out(&out);
            free(z), free(zd), free(g), free(losses);
        }
    }
}

SS_TEST(backward_accumulates) {
    ss_rng rng;
    ss_rng_seed(&rng, 13);
    const int64_t V = 2, N = 9, D = 6, n = V * N * D;
    float *z = ss_test_alloc(n), *dz = ss_test_alloc(n),
          *pre = ss_test_alloc(n);
    ss_test_fill_normal(z, n, &rng);
    ss_test_fill_normal(pre, n, &rng);
    memcpy(dz, pre, (size_t)n * sizeof(float));
    for (int variant = 0; variant < 4; variant++) {
        ss_dcl_opts o = variant & 1 ? ss_dclw_defaults() : ss_dcl_defaults();
        o.joint_negatives = variant >> 1;
        o.cosine = variant != 2;
        dcl_out out;
        run_dcl(&out, z, V, N, D, &o, 1.0f);
        float loss;
        void *cache = malloc(ss_dcl_cache_size(V, N, D));
        SS_CHECK_OK(ss_dcl_forward(&loss, NULL, cache, z, V, N, D, &o));
        SS_CHECK(loss == out.loss); /* losses = NULL changes nothing */
        memcpy(dz, pre, (size_t)n * sizeof(float));
        SS_CHECK_OK(ss_dcl_backward(dz, -0.75f, cache, z, V, N, D, &o));
        for (int64_t i = 0; i < n; i++) dz[i] -= pre[i];
        for (int64_t i = 0; i < n; i++) out.dz[i] *= -0.75f;
        SS_CHECK_CLOSE_FF(dz, out.dz, n, 1e-4, "accumulated dz");
        free(cache);
        free_out(&out);
    }
    free(z), free(dz), free(pre);
}

SS_TEST(thread_count_independent) {
    ss_rng rng;
    ss_rng_seed(&rng, 14);
    const int64_t V = 3, N = 2 * ss__dcl_tile() + 5, D = 17, n = V * N * D;
    float *z = ss_test_alloc(n);
    ss_test_fill_normal(z, n, &rng);
    for (int joint = 0; joint < 2; joint++) {
        ss_dcl_opts o = ss_dcl_defaults();
        o.joint_negatives = joint;
        dcl_out one, two;
        SS_CHECK_OK(ss_set_num_threads(1));
        run_dcl(&one, z, V, N, D, &o, 1.0f);
        SS_CHECK_OK(ss_set_num_threads(2));
        run_dcl(&two, z, V, N, D, &o, 1.0f);
        SS_CHECK_OK(ss_set_num_threads(0));
        SS_CHECK_NEAR(one.loss, two.loss, 1e-6);
        SS_CHECK_CLOSE_FF(two.losses, one.losses, V * N, 1e-5, "losses");
        SS_CHECK_CLOSE_FF(two.dz, one.dz, n, 1e-5, "dz");
        free_out(&one), free_out(&two);
    }
    free(z);
}

/* Far-apart views and a tiny temperature: still finite, matches direct. */
SS_TEST(extreme_logits_finite) {
    const int64_t V = 2, N = 5, D = 4, n = V * N * D;
    float z[40];
    ss_rng rng;
    ss_rng_seed(&rng, 15);
    ss_test_fill_normal(z, n, &rng);
    for (int64_t i = 0; i < N * D; i++)
        z[i] = 30.0f * (i % D == 0); /* view 0 identical */
    dcl_ref r = {V, N, D, ss_dcl_defaults(), NULL};
    r.o.temperature = 1e-3f;
    double zd[40], g[40], losses[10];
    for (int64_t i = 0; i < n; i++) zd[i] = z[i];
    double want = ref_dcl(zd, &r, losses, g);
    dcl_out out;
    run_dcl(&out, z, V, N, D, &r.o, 1.0f);
    SS_CHECK(isfinite(out.loss));
    SS_CHECK_NEAR(out.loss, want, 1e-4);
    SS_CHECK_CLOSE_FD(out.dz, g, n, 1e-3, "dz");
    free_out(&out);
}

SS_TEST(bad_inputs) {
    const int64_t V = 2, N = 3, D = 4;
    float z[24] = {0}, dz[24], loss = 42.0f, losses[6];
    for (int i = 0; i < 24; i++) z[i] = (float)(i % 5) - 2.0f, dz[i] = 7.0f;
    char cache[256];
    ss_dcl_opts o = ss_dcl_defaults();
    SS_CHECK_STATUS(ss_dcl_forward(NULL, losses, cache, z, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, NULL, z, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, NULL, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("z must not be NULL");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, 1, N, D, &o),
                    SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("V must be >= 2, got 1");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, 1, D, &o),
                    SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, N, 0, &o),
                    SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("D must be >= 1, got 0");
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, (int64_t)1 << 30,
                                   (int64_t)1 << 20, &o),
                    SS_ERR_SIZE);
    SS_CHECK_INT(ss_dcl_cache_size(V, 1, D), 0);
    SS_CHECK_INT(ss_dcl_cache_size(1 << 21, 1 << 20, 1), 0); /* V * V * N */
    float bad_t[] = {0.0f, -0.5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        ss_dcl_opts b = o;
        b.temperature = bad_t[i];
        SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, N, D, &b),
                        SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("temperature must be finite and > 0");
    }
    ss_dcl_opts w = ss_dclw_defaults();
    w.sigma = -1.0f;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, N, D, &w),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("sigma must be finite and > 0, got -1");
    o.sigma = -1.0f; /* ignored unless weighted */
    SS_CHECK_OK(ss_dcl_forward(&loss, NULL, cache, z, V, N, D, &o));
    o = ss_dcl_defaults();
    w = ss_dclw_defaults();
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, 3, 2, D, &w),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("V = 2 views, got V = 3");
    loss = 42.0f;
    z[13] = NAN;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[13]");
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, V, N, D, &o),
                    SS_ERR_NONFINITE);
    z[13] = 0.0f;
    z[7] = -INFINITY;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, losses, cache, z, V, N, D, &o),
                    SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[7]");
    SS_CHECK(loss == 42.0f); /* nothing written on failure */
    z[7] = 0.0f;
    SS_CHECK_OK(ss_dcl_forward(&loss, losses, cache, z, V, N, D, NULL));
    SS_CHECK_STATUS(ss_dcl_backward(NULL, 1.0f, cache, z, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dz must not be NULL");
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, NULL, z, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, NULL, V, N, D, &o),
                    SS_ERR_NULL);
    SS_CHECK_STATUS(ss_dcl_backward(dz, NAN, cache, z, V, N, D, &o),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss must be finite");
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, V, 1, D, &o),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, 3, 2, D, &w),
                    SS_ERR_PARAM);
    /* a cache from another call: other options or sizes */
    ss_dcl_opts other = o;
    other.joint_negatives = 1;
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, V, N, D, &other),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written by ss_dcl_forward");
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, V, N, D, &w),
                    SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_dcl_backward(dz, 1.0f, cache, z, 3, 2, D, &o),
                    SS_ERR_PARAM);
    for (int i = 0; i < 24; i++) SS_CHECK(dz[i] == 7.0f); /* untouched */
    SS_CHECK_OK(ss_dcl_backward(dz, 1.0f, cache, z, V, N, D, NULL));
}

/* A temperature whose inverse overflows, and dot-product logits that could
 * overflow float32, are parameter errors (NaN-free by construction). */
SS_TEST(overflowing_parameters) {
    float z[8] = {1, 2, 3, 4, 5, 6, 7, 8}, loss, cache[64];
    ss_dcl_opts o = ss_dcl_defaults();
    o.temperature = 1e-45f;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, NULL, cache, z, 2, 2, 2, &o),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("temperature must be >= 1/FLT_MAX");
    o = ss_dclw_defaults();
    o.cosine = 0;
    z[5] = 1e18f;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, NULL, cache, z, 2, 2, 2, &o),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("logits overflow float32");
    o.temperature = 1e-31f; /* cosine: |logit| <= 1 / temperature */
    o.cosine = 1;
    z[5] = 6.0f;
    SS_CHECK_STATUS(ss_dcl_forward(&loss, NULL, cache, z, 2, 2, 2, &o),
                    SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("logits overflow float32");
    z[5] = 1e18f;
    o.temperature = 0.1f; /* normalised: fine */
    SS_CHECK_OK(ss_dcl_forward(&loss, NULL, cache, z, 2, 2, 2, &o));
    SS_CHECK(isfinite(loss));
}
