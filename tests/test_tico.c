/* test_tico.c - TiCo: lightly fixtures over several steps of one state,
 * finite differences on the direct double reference, library vs direct at
 * awkward sizes, accumulation, threads, state save / load and corrupt
 * files, errors. */
#include "direct_geometry.h"
#include "fixture.h"
#include "geom_testutil.h"
#include "harness.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static ss_tico_opts opts_of(float beta, float rho, int update) {
    ss_tico_opts o = ss_tico_defaults();
    o.beta = beta, o.rho = rho, o.update = update;
    return o;
}

/* forward + backward on state st; dza / dzb accumulated. */
static void run_tico(float *loss, float *losses, float *dza, float *dzb,
                     float dloss, ss_tico_state *st, const float *za,
                     const float *zb, int64_t N, int64_t D,
                     const ss_tico_opts *o) {
    void *cache = malloc(ss_tico_cache_size(N, D));
    SS_CHECK_OK(ss_tico_forward(loss, losses, cache, st, za, zb, N, D, o));
    SS_CHECK_OK(ss_tico_backward(dza, dzb, dloss, cache, za, zb, N, D, o));
    free(cache);
}

SS_TEST(defaults_and_cache_size) {
    ss_tico_opts o = ss_tico_defaults();
    SS_CHECK(o.beta == 0.9f && o.rho == 8.0f && o.update == 1);
    SS_CHECK(ss_tico_cache_size(4, 3) >= 9 * sizeof(float));
    SS_CHECK(ss_tico_cache_size(1, 3) == 0);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK(ss_tico_cache_size(4, 0) == 0);
}

SS_TEST(pytorch_fixtures) {
    ss_fixture *fx = fx_load("tico.bin");
    SS_CHECK(fx != NULL);
    if (!fx) return;
    int64_t ncases = fx_int(fx, "ncases");
    SS_CHECK(ncases >= 5);
    for (int64_t c = 0; c < ncases; c++) {
        char key[64];
#define KEY(f) (snprintf(key, sizeof key, "c%lld_" f, (long long)c), key)
        int64_t N = fx_int(fx, KEY("N")), D = fx_int(fx, KEY("D"));
        int64_t T = fx_int(fx, KEY("steps")), n;
        double beta = fx_scalar(fx, KEY("beta")), rho = fx_scalar(fx, KEY("rho"));
        ss_tico_opts o = opts_of((float)beta, (float)rho, 1);
        float *C0 = fx_f32_copy(fx, KEY("C0"), &n);
        float *za = fx_f32_copy(fx, KEY("za"), &n);
        float *zb = fx_f32_copy(fx, KEY("zb"), &n);
        SS_CHECK(za && n == T * N * D);
        const double *za64 = fx_f64(fx, KEY("za"), &n);
        const double *zb64 = fx_f64(fx, KEY("zb"), &n);
        const double *wl = fx_f64(fx, KEY("loss"), &n);
        const double *wls = fx_f64(fx, KEY("losses"), &n);
        const double *wa = fx_f64(fx, KEY("dza"), &n);
        const double *wb = fx_f64(fx, KEY("dzb"), &n);
        const double *wC = fx_f64(fx, KEY("C"), &n);
        SS_CHECK(wC && n == T * D * D);
        if (!C0 || !za || !zb || !wl || !wls || !wa || !wb || !wC) continue;
        ss_tico_state *st;
        SS_CHECK_OK(ss_tico_state_create(&st, D));
        SS_CHECK_OK(ss_tico_state_write(st, C0));
        const double *C064 = fx_f64(fx, KEY("C0"), &n);
        double *Cd = ss_test_alloc_d(D * D), *Cn = ss_test_alloc_d(D * D);
        memcpy(Cd, C064, sizeof(double) * (size_t)(D * D));
        float *losses = ss_test_alloc(N), *C = ss_test_alloc(D * D), loss;
        for (int64_t s = 0; s < T; s++) {
            int64_t off = s * N * D;
            float *dza = ss_test_alloc(N * D), *dzb = ss_test_alloc(N * D);
            run_tico(&loss, losses, dza, dzb, 1.0f, st, za + off, zb + off, N,
                     D, &o);
            SS_CHECK_NEAR(loss, wl[s], 1e-4);
            GEOM_CHECK_GRAD(losses, wls + s * N, N, 1e-4, "tico losses");
            GEOM_CHECK_GRAD(dza, wa + off, N * D, 1e-4, "tico dza");
            GEOM_CHECK_GRAD(dzb, wb + off, N * D, 1e-4, "tico dzb");
            SS_CHECK_OK(ss_tico_state_read(st, C));
            GEOM_CHECK_GRAD(C, wC + s * D * D, D * D, 1e-4, "tico state C");
            SS_CHECK_INT(ss_tico_state_steps(st), s + 1);
            /* the direct reference matches PyTorch to double precision */
            double *da = ss_test_alloc_d(N * D), *db = ss_test_alloc_d(N * D);
            double l = ss_direct_tico(za64 + off, zb64 + off, Cd, N, D, beta,
                                      rho, NULL, da, db, Cn);
            SS_CHECK_NEAR(l, wl[s], 1e-10);
            SS_CHECK(geom_err_dd(da, wa + off, N * D) <= 1e-10);
            SS_CHECK(geom_err_dd(db, wb + off, N * D) <= 1e-10);
            memcpy(Cd, Cn, sizeof(double) * (size_t)(D * D));
            free(dza), free(dzb), free(da), free(db);
        }
        ss_tico_state_free(st);
        free(C0), free(za), free(zb), free(Cd), free(Cn), free(losses), free(C);
#undef KEY
    }
    fx_free(fx);
}

/* ---- finite differences on the direct double path ------------------------ */

typedef struct {
    int64_t N, D;
    const double *C0;
    double beta, rho;
} fd_ctx;

static double fd_loss(const double *x, void *p) {
    fd_ctx *c = p;
    return ss_direct_tico(x, x + c->N * c->D, c->C0, c->N, c->D, c->beta,
                          c->rho, NULL, NULL, NULL, NULL);
}

static void fd_case(int64_t N, int64_t D, double beta, double rho, int sym,
                    uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    double *x = ss_test_alloc_d(2 * N * D), *g = ss_test_alloc_d(2 * N * D);
    double *C0 = ss_test_alloc_d(D * D);
    ss_test_fill_normal_d(x, 2 * N * D, &rng);
    ss_test_fill_normal_d(C0, D * D, &rng);
    if (sym) /* a state from earlier steps is symmetric; a written one need not be */
        for (int64_t i = 0; i < D; i++)
            for (int64_t j = 0; j < i; j++) C0[j * D + i] = C0[i * D + j];
    fd_ctx c = {N, D, C0, beta, rho};
    ss_direct_tico(x, x + N * D, C0, N, D, beta, rho, NULL, g, g + N * D, NULL);
    double e = ss_test_fd_max_err(fd_loss, &c, x, g, 2 * N * D, 1e-5, seed + 7);
    if (!(e < 1e-6)) fprintf(stderr, "tico fd N=%lld D=%lld: %.3g\n",
                             (long long)N, (long long)D, e);
    SS_CHECK(e < 1e-6);
    free(x), free(g), free(C0);
}

SS_TEST(direct_reference_finite_differences) {
    fd_case(4, 3, 0.9, 8.0, 1, 1);
    fd_case(2, 5, 0.5, 2.0, 0, 2);
    fd_case(6, 2, 0.0, 1.0, 1, 3);
    fd_case(3, 4, 1.0, 3.0, 0, 4);
}

/* ---- library vs direct ------------------------------------------------------- */

static void check_vs_direct(int64_t N, int64_t D, ss_tico_opts o,
                            uint64_t seed) {
    ss_rng rng;
    ss_rng_seed(&rng, seed);
    float *za = ss_test_alloc(N * D), *zb = ss_test_alloc(N * D);
    float *C0 = ss_test_alloc(D * D), *dza = ss_test_alloc(N * D);
    float *dzb = ss_test_alloc(N * D), *ls = ss_test_alloc(N), loss;
    ss_test_fill_normal(za, N * D, &rng);
    ss_test_fill_normal(zb, N * D, &rng);
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j <= i; j++)
            C0[i * D + j] = C0[j * D + i] = (float)(0.1 * ss_rng_normal(&rng));
    ss_tico_state *st;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    SS_CHECK_OK(ss_tico_state_write(st, C0));
    run_tico(&loss, ls, dza, dzb, 1.0f, st, za, zb, N, D, &o);
    double *a = geom_to_d(za, N * D), *b = geom_to_d(zb, N * D);
    double *c0 = geom_to_d(C0, D * D), *wl = ss_test_alloc_d(N);
    double *wa = ss_test_alloc_d(N * D), *wb = ss_test_alloc_d(N * D);
    double want = ss_direct_tico(a, b, c0, N, D, o.beta, o.rho, wl, wa, wb, NULL);
    SS_CHECK_NEAR(loss, want, 1e-4);
    GEOM_CHECK_GRAD(ls, wl, N, 1e-4, "tico losses vs direct");
    GEOM_CHECK_GRAD(dza, wa, N * D, 1e-4, "tico dza vs direct");
    GEOM_CHECK_GRAD(dzb, wb, N * D, 1e-4, "tico dzb vs direct");
    ss_tico_state_free(st);
    free(za), free(zb), free(C0), free(dza), free(dzb), free(ls);
    free(a), free(b), free(c0), free(wl), free(wa), free(wb);
}

SS_TEST(library_vs_direct_awkward_sizes) {
    ss_tico_opts o = ss_tico_defaults();
    int64_t Ns[] = {2, 3, 127, 128, 129};
    for (int k = 0; k < 5; k++) {
        check_vs_direct(Ns[k], 1, o, 10 + k);
        check_vs_direct(Ns[k], 3, o, 20 + k);
    }
    check_vs_direct(3, 1000, o, 30);
    check_vs_direct(40, 64, opts_of(0.3f, 20.0f, 1), 31);
    check_vs_direct(5, 7, opts_of(1.0f, -2.0f, 0), 32);
}

SS_TEST(update_flag_and_steps) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    int64_t N = 6, D = 4;
    float za[24], zb[24], C[16], C2[16], loss;
    ss_test_fill_normal(za, N * D, &rng);
    ss_test_fill_normal(zb, N * D, &rng);
    ss_tico_state *st;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    SS_CHECK_INT(ss_tico_state_dim(st), D);
    void *cache = malloc(ss_tico_cache_size(N, D));
    ss_tico_opts keep = opts_of(0.9f, 8.0f, 0);
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, &keep));
    SS_CHECK_OK(ss_tico_state_read(st, C));
    for (int i = 0; i < 16; i++) SS_CHECK(C[i] == 0.0f);
    SS_CHECK_INT(ss_tico_state_steps(st), 0);
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, NULL));
    SS_CHECK_INT(ss_tico_state_steps(st), 1);
    SS_CHECK_OK(ss_tico_state_read(st, C));
    /* first update from zeros: C = (1 - beta) a^T a / N, symmetric, trace
     * (1 - beta) (unit rows) */
    double tr = 0;
    for (int i = 0; i < 4; i++) tr += C[i * 5];
    SS_CHECK_NEAR(tr, 0.1, 1e-6);
    SS_CHECK(C[1] == C[4]);
    /* backward uses the cached C even after the state moved on */
    float g1[24] = {0}, g2[24] = {0};
    SS_CHECK_OK(ss_tico_backward(g1, g2, 1.0f, cache, za, zb, N, D, NULL));
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, za,
                                zb, N, D, NULL));
    SS_CHECK_OK(ss_tico_state_read(st, C2));
    SS_CHECK(C2[0] != C[0]);
    free(cache);
    ss_tico_state_free(st);
    ss_tico_state_free(NULL);
    SS_CHECK_INT(ss_tico_state_dim(NULL), 0);
}

/* ---- accumulation, threads --------------------------------------------------- */

SS_TEST(backward_accumulates_and_scales) {
    ss_rng rng;
    ss_rng_seed(&rng, 5);
    int64_t N = 37, D = 9, n = N * D;
    float *za = ss_test_alloc(n), *zb = ss_test_alloc(n), loss;
    float *a1 = ss_test_alloc(n), *b1 = ss_test_alloc(n);
    float *a2 = ss_test_alloc(n), *b2 = ss_test_alloc(n);
    float *pa = ss_test_alloc(n), *pb = ss_test_alloc(n);
    ss_test_fill_normal(za, n, &rng);
    ss_test_fill_normal(zb, n, &rng);
    ss_test_fill_normal(pa, n, &rng);
    ss_test_fill_normal(pb, n, &rng);
    memcpy(a2, pa, sizeof(float) * (size_t)n), memcpy(b2, pb, sizeof(float) * (size_t)n);
    ss_tico_opts keep = opts_of(0.9f, 8.0f, 0);
    ss_tico_state *st;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    run_tico(&loss, NULL, a1, b1, 1.0f, st, za, zb, N, D, &keep);
    run_tico(&loss, NULL, a2, b2, -2.5f, st, za, zb, N, D, &keep);
    for (int64_t i = 0; i < n; i++)
        a2[i] = (a2[i] - pa[i]) / -2.5f, b2[i] = (b2[i] - pb[i]) / -2.5f;
    SS_CHECK_CLOSE_FF(a2, a1, n, 1e-5, "accumulated dza");
    SS_CHECK_CLOSE_FF(b2, b1, n, 1e-5, "accumulated dzb");
    float *a3 = ss_test_alloc(n); /* dzb = NULL: same dza */
    run_tico(&loss, NULL, a3, NULL, 1.0f, st, za, zb, N, D, &keep);
    SS_CHECK_CLOSE_FF(a3, a1, n, 1e-6, "dza with dzb NULL");
    ss_tico_state_free(st);
    free(za), free(zb), free(a1), free(b1), free(a2), free(b2), free(pa), free(pb), free(a3);
}

SS_TEST(thread_count_independence) {
    ss_rng rng;
    ss_rng_seed(&rng, 6);
    int64_t N = 300, D = 40, n = N * D;
    float *za = ss_test_alloc(n), *zb = ss_test_alloc(n), a, b;
    float *g1 = ss_test_alloc(n), *g2 = ss_test_alloc(n);
    ss_test_fill_normal(za, n, &rng);
    ss_test_fill_normal(zb, n, &rng);
    ss_tico_opts keep = opts_of(0.9f, 8.0f, 0);
    ss_tico_state *st;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    SS_CHECK_OK(ss_set_num_threads(1));
    run_tico(&a, NULL, g1, NULL, 1.0f, st, za, zb, N, D, &keep);
    SS_CHECK_OK(ss_set_num_threads(2));
    run_tico(&b, NULL, g2, NULL, 1.0f, st, za, zb, N, D, &keep);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK_NEAR(a, b, 1e-6);
    SS_CHECK_CLOSE_FF(g2, g1, n, 1e-5, "dza 1 vs 2 threads");
    ss_tico_state_free(st);
    free(za), free(zb), free(g1), free(g2);
}

/* ---- state files -------------------------------------------------------------- */

static char *tmp_path(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/ss_test_tico_%ld_%s", (long)getpid(), name);
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    SS_CHECK(f != NULL);
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

SS_TEST(state_save_load_round_trip) {
    ss_rng rng;
    ss_rng_seed(&rng, 8);
    int64_t N = 5, D = 3;
    float za[15], zb[15], C[9], C2[9], loss;
    ss_test_fill_normal(za, 15, &rng);
    ss_test_fill_normal(zb, 15, &rng);
    ss_tico_state *st, *back = NULL;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    void *cache = malloc(ss_tico_cache_size(N, D));
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, NULL));
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, zb, za, N, D, NULL));
    char path[256];
    snprintf(path, sizeof path, "%s", tmp_path("state.bin"));
    SS_CHECK_OK(ss_tico_state_save(st, path));
    SS_CHECK_OK(ss_tico_state_load(&back, path));
    if (back) {
        SS_CHECK_INT(ss_tico_state_dim(back), D);
        SS_CHECK_INT(ss_tico_state_steps(back), 2);
        SS_CHECK_OK(ss_tico_state_read(st, C));
        SS_CHECK_OK(ss_tico_state_read(back, C2));
        SS_CHECK(memcmp(C, C2, sizeof C) == 0);
        /* the loaded state continues identically */
        float l1, l2;
        SS_CHECK_OK(ss_tico_forward(&l1, NULL, cache, st, za, zb, N, D, NULL));
        SS_CHECK_OK(ss_tico_forward(&l2, NULL, cache, back, za, zb, N, D, NULL));
        SS_CHECK(l1 == l2);
        ss_tico_state_free(back);
    }
    /* the file: 16-byte header, D, steps, D*D floats */
    FILE *f = fopen(path, "rb");
    unsigned char bytes[16 + 16 + 36 + 1];
    size_t got = f ? fread(bytes, 1, sizeof bytes, f) : 0;
    if (f) fclose(f);
    SS_CHECK_INT(got, 68);
    SS_CHECK(memcmp(bytes, "SSTICOC1", 8) == 0);
    /* corrupt files: each names the byte offset */
    unsigned char bad[68 + 4];
    memcpy(bad, bytes, 68);
    bad[0] = 'X';
    write_bytes(tmp_path("bad"), bad, 68);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("bad magic at byte offset 0");
    memcpy(bad, bytes, 68), bad[8] = 9;
    write_bytes(tmp_path("bad"), bad, 68);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("version 9 at byte offset 8");
    memcpy(bad, bytes, 68), memset(bad + 16, 0, 8);
    write_bytes(tmp_path("bad"), bad, 68);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("D = 0 at byte offset 16");
    memcpy(bad, bytes, 68), memset(bad + 24, 0xff, 8);
    write_bytes(tmp_path("bad"), bad, 68);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("steps = -1 at byte offset 24");
    write_bytes(tmp_path("bad"), bytes, 60);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("truncated reading C at byte offset 60");
    memcpy(bad, bytes, 68);
    float nan = NAN;
    memcpy(bad + 32 + 8, &nan, 4);
    write_bytes(tmp_path("bad"), bad, 68);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("C[2] = nan at byte offset 40");
    memcpy(bad, bytes, 68), memset(bad + 68, 0, 4);
    write_bytes(tmp_path("bad"), bad, 72);
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("bad")), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("unexpected bytes after the payload at byte offset 68");
    unlink(tmp_path("bad"));
    SS_CHECK_STATUS(ss_tico_state_load(&back, tmp_path("missing")), SS_ERR_IO);
    SS_CHECK_STATUS(ss_tico_state_save(st, "/nonexistent-dir/x.bin"), SS_ERR_IO);
    SS_CHECK_STATUS(ss_tico_state_save(NULL, path), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_state_load(NULL, path), SS_ERR_NULL);
    unlink(path);
    free(cache);
    ss_tico_state_free(st);
}

/* ---- errors -------------------------------------------------------------------- */

SS_TEST(bad_inputs) {
    int64_t N = 3, D = 2;
    float za[6] = {1, 2, 3, 4, 5, 6}, zb[6] = {2, 1, 0, 1, 2, 3}, dz[6] = {0};
    float loss = 42.0f, losses[3] = {0}, C[4], Cw[4] = {1, 0, 0, NAN};
    char *cache = calloc(1, ss_tico_cache_size(N, D));
    ss_tico_state *st, *st3;
    SS_CHECK_OK(ss_tico_state_create(&st, D));
    SS_CHECK_OK(ss_tico_state_create(&st3, 3));
    SS_CHECK_STATUS(ss_tico_state_create(NULL, 2), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_state_create(&st3, 0), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_tico_state_create(&st3, (int64_t)1 << 21), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_tico_state_read(NULL, C), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_state_read(st, NULL), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_state_write(st, Cw), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("C[3]");
    ss_tico_opts o = ss_tico_defaults(), b;
    SS_CHECK_STATUS(ss_tico_forward(NULL, NULL, cache, st, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("loss must not be NULL");
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, NULL, st, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, NULL, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("state must not be NULL");
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, NULL, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, NULL, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, zb, 1, D, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 2, got 1");
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, 0, &o), SS_ERR_SIZE);
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, zb, 2, 3, &o), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("state has dimension 2, inputs D=3");
    float bad_beta[] = {-0.1f, 1.5f, NAN};
    for (int k = 0; k < 3; k++) {
        b = o, b.beta = bad_beta[k];
        SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, &b), SS_ERR_PARAM);
        SS_CHECK_MSG_HAS("beta must be in [0, 1]");
    }
    b = o, b.rho = INFINITY;
    SS_CHECK_STATUS(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("rho must be finite, got inf");
    float zn[6];
    memcpy(zn, za, sizeof za);
    zn[4] = NAN;
    SS_CHECK_STATUS(ss_tico_forward(&loss, losses, cache, st, zn, zb, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("za[4]");
    SS_CHECK_STATUS(ss_tico_forward(&loss, losses, cache, st, za, zn, N, D, &o), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("zb[4]");
    SS_CHECK(loss == 42.0f && losses[0] == 0.0f);
    SS_CHECK_INT(ss_tico_state_steps(st), 0); /* unchanged on error */
    SS_CHECK_OK(ss_tico_forward(&loss, NULL, cache, st, za, zb, N, D, NULL));
    SS_CHECK_STATUS(ss_tico_backward(NULL, NULL, 1.0f, cache, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("dza must not be NULL");
    SS_CHECK_STATUS(ss_tico_backward(dz, NULL, 1.0f, NULL, za, zb, N, D, &o), SS_ERR_NULL);
    SS_CHECK_STATUS(ss_tico_backward(dz, NULL, NAN, cache, za, zb, N, D, &o), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("dloss");
    b = o, b.rho = 3.0f;
    SS_CHECK_STATUS(ss_tico_backward(dz, NULL, 1.0f, cache, za, zb, N, D, &b), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("cache was not written");
    SS_CHECK_STATUS(ss_tico_backward(dz, NULL, 1.0f, cache, za, zb, 2, D, &o), SS_ERR_PARAM);
    SS_CHECK_STATUS(ss_tico_backward(dz, NULL, 1.0f, cache, zn, zb, N, D, &o), SS_ERR_NONFINITE);
    for (int i = 0; i < 6; i++) SS_CHECK(dz[i] == 0.0f);
    SS_CHECK_OK(ss_tico_backward(dz, NULL, 1.0f, cache, za, zb, N, D, NULL));
    ss_tico_state_free(st);
    ss_tico_state_free(st3);
    free(cache);
}
