/* test_core.c - status table, error messages, version, threads, RNG, GEMM
 * and normalisation kernels. */
#include "harness.h"
#include "internal.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

#include <stdlib.h>
#include <string.h>

SS_TEST(status_table) {
    SS_CHECK(strcmp(ss_status_name(SS_OK), "SS_OK") == 0);
    SS_CHECK(strcmp(ss_status_name(SS_ERR_NONFINITE), "SS_ERR_NONFINITE") == 0);
    SS_CHECK(strcmp(ss_status_name((ss_status)999), "SS_UNKNOWN") == 0);
    SS_CHECK(strstr(ss_strerror(SS_ERR_NULL), "NULL") != NULL);
    SS_CHECK(strcmp(ss_strerror((ss_status)-3), "unknown status code") == 0);
}

SS_TEST(error_detail_names_value) {
    SS_CHECK_STATUS(ss__check_positive("fn", "temperature", -0.5), SS_ERR_PARAM);
    SS_CHECK_MSG_HAS("fn: temperature");
    SS_CHECK_MSG_HAS("-0.5");
    SS_CHECK_STATUS(ss__check_size("fn", "N", 0, 1), SS_ERR_SIZE);
    SS_CHECK_MSG_HAS("N must be >= 1, got 0");
    float x[5] = {1, 2, 3, NAN, INFINITY};
    SS_CHECK_STATUS(ss__check_finite("fn", "z", x, 5), SS_ERR_NONFINITE);
    SS_CHECK_MSG_HAS("z[3]");
    SS_CHECK_OK(ss__check_finite("fn", "z", x, 3));
    SS_CHECK_STATUS(ss__check_product("fn", (int64_t)1 << 30, (int64_t)1 << 20, 2),
                    SS_ERR_SIZE);
    SS_CHECK_STATUS(ss__check_ptr("fn", "cache", NULL), SS_ERR_NULL);
    SS_CHECK_MSG_HAS("cache must not be NULL");
}

SS_TEST(version) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SS_VERSION_MAJOR, SS_VERSION_MINOR,
             SS_VERSION_PATCH);
    SS_CHECK(strcmp(ss_version(), want) == 0);
    SS_CHECK_INT(ss_version_hex(), SS_VERSION_HEX);
    SS_CHECK(strstr(ss_build_info(), "openmp=") != NULL);
    const char *hint = ss_blas_coretype_hint();
    SS_CHECK(!hint || !strcmp(hint, "SkylakeX") || !strcmp(hint, "Haswell"));
}

SS_TEST(threads) {
    SS_CHECK_STATUS(ss_set_num_threads(-1), SS_ERR_PARAM);
    SS_CHECK_OK(ss_set_num_threads(1));
    SS_CHECK_INT(ss_get_num_threads(), 1);
    SS_CHECK_OK(ss_set_num_threads(0));
    SS_CHECK(ss_get_num_threads() >= 1);
}

SS_TEST(rng_deterministic_and_normal) {
    ss_rng a, b;
    ss_rng_seed(&a, 42);
    ss_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) SS_CHECK(ss_rng_u64(&a) == ss_rng_u64(&b));
    double sum = 0, sq = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = ss_rng_normal(&a);
        sum += x;
        sq += x * x;
    }
    SS_CHECK_NEAR(sum / n, 0.0, 0.01);
    SS_CHECK_NEAR(sq / n, 1.0, 0.01);
}

/* Every transpose combination against a double-precision triple loop. */
SS_TEST(gemm_matches_reference) {
    ss_rng rng;
    ss_rng_seed(&rng, 7);
    int64_t m = 37, n = 19, k = 53;
    float *A = ss_test_alloc(m * k), *B = ss_test_alloc(k * n);
    float *C = ss_test_alloc(m * n);
    double *R = ss_test_alloc_d(m * n);
    ss_test_fill_normal(A, m * k, &rng);
    ss_test_fill_normal(B, k * n, &rng);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int64_t i = 0; i < m * n; i++) C[i] = 1.0f;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double s = 0;
                    for (int64_t p = 0; p < k; p++)
                        s += (double)(ta ? A[p * m + i] : A[i * k + p]) *
                             (tb ? B[j * k + p] : B[p * n + j]);
                    R[i * n + j] = 0.5 * s + 2.0;
                }
            ss__sgemm(ta, tb, m, n, k, 0.5f, A, ta ? m : k, B, tb ? k : n, 2.0f,
                      C, n);
            SS_CHECK_CLOSE_FD(C, R, m * n, 1e-5, "sgemm");
        }
    free(A), free(B), free(C), free(R);
}

typedef struct {
    int64_t D;
    const double *w; /* upstream weights: f(x) = <w, normalize(x)> */
} norm_ctx;

static double norm_f(const double *x, void *vctx) {
    norm_ctx *c = vctx;
    double ss = 0, f = 0;
    for (int64_t d = 0; d < c->D; d++) ss += x[d] * x[d];
    double s = 1.0 / fmax(sqrt(ss), 1e-12);
    for (int64_t d = 0; d < c->D; d++) f += c->w[d] * x[d] * s;
    return f;
}

SS_TEST(normalize_forward_backward) {
    ss_rng rng;
    ss_rng_seed(&rng, 3);
    int64_t M = 3, D = 5;
    float x[15], y[15], scale[3], dy[15], dx[15];
    ss_test_fill_normal(x, M * D, &rng);
    memset(x + 2 * D, 0, D * sizeof(float)); /* a zero row: clamped branch */
    ss_test_fill_normal(dy, M * D, &rng);
    ss__normalize_rows(y, scale, x, M, D);
    for (int64_t i = 0; i < 2; i++) {
        double n2 = 0;
        for (int64_t d = 0; d < D; d++) n2 += (double)y[i * D + d] * y[i * D + d];
        SS_CHECK_NEAR(n2, 1.0, 1e-6);
    }
    for (int64_t i = 0; i < M * D; i++) dx[i] = 0.25f; /* accumulates */
    ss__normalize_backward(dx, dy, y, scale, x, M, D);
    for (int64_t i = 0; i < 2; i++) {
        double xd[5], w[5], g[5];
        for (int64_t d = 0; d < D; d++) {
            xd[d] = x[i * D + d];
            w[d] = dy[i * D + d];
            g[d] = dx[i * D + d] - 0.25;
        }
        norm_ctx c = {D, w};
        SS_CHECK(ss_test_fd_max_err(norm_f, &c, xd, g, D, 1e-6, 1) < 1e-5);
    }
    for (int64_t d = 0; d < D; d++) /* zero row: dx = dy / eps */
        SS_CHECK_NEAR(dx[2 * D + d] - 0.25f, dy[2 * D + d] / SS_NORM_EPS, 1e-6);
}

/* ---- fileio: atomic versioned state files -------------------------------- */
#include "fileio.h"
#include <unistd.h>

SS_TEST(fileio_roundtrip_and_errors) {
    char path[] = "/tmp/ss_fileio_XXXXXX";
    int fd = mkstemp(path);
    SS_CHECK(fd >= 0);
    close(fd);
    int64_t a = 42;
    float b[3] = {1, 2, 3};
    const void *bufs[2] = {&a, b};
    size_t lens[2] = {sizeof a, sizeof b};
    SS_CHECK_OK(ss__write_atomic("t", path, "SSTEST01", 3, bufs, lens, 2));

    ss__reader r;
    int64_t a2;
    float b2[3];
    SS_CHECK_OK(ss__reader_open(&r, "t", path, "SSTEST01", 3));
    SS_CHECK_OK(ss__read_i64(&r, &a2, 0, 100, "a"));
    SS_CHECK_OK(ss__read(&r, b2, sizeof b2, "b"));
    SS_CHECK_OK(ss__reader_expect_eof(&r));
    ss__reader_close(&r);
    SS_CHECK_INT(a2, 42);
    SS_CHECK(b2[2] == 3.0f);

    SS_CHECK_STATUS(ss__reader_open(&r, "t", path, "SSOTHER1", 3), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("byte offset 0");
    SS_CHECK_STATUS(ss__reader_open(&r, "t", path, "SSTEST01", 4), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("version 3 at byte offset 8");
    SS_CHECK_OK(ss__reader_open(&r, "t", path, "SSTEST01", 3));
    SS_CHECK_STATUS(ss__read_i64(&r, &a2, 0, 10, "a"), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("a = 42 at byte offset 16");
    SS_CHECK_STATUS(ss__read(&r, b2, 64, "rows"), SS_ERR_FORMAT);
    SS_CHECK_MSG_HAS("truncated reading rows at byte offset 36");
    ss__reader_close(&r);
    SS_CHECK_STATUS(ss__reader_open(&r, "t", "/nonexistent/x", "SSTEST01", 3),
                    SS_ERR_IO);
    SS_CHECK_STATUS(ss__write_atomic("t", "/nonexistent/dir/x", "SSTEST01", 3,
                                     bufs, lens, 2),
                    SS_ERR_IO);
    SS_CHECK_MSG_HAS("/nonexistent/dir/x");
    unlink(path);
}
