/*
 * fused_ce_timer.c - times ss_fused_ce at one size and reports the extra
 * memory (peak RSS growth beyond inputs and gradient buffers). Built and run
 * by bench/fused_ce_bench.py; prints one JSON line.
 *
 * usage: fused_ce_timer T H V threads reps
 *
 * Napkin math (T = 2048, H = 768, V = 30522): one GEMM over the logits is
 * 2 T H V = 96 GFLOP. The one-pass call needs 3 of them (logits, dH, dW):
 * 288 GFLOP, ~1.6 s at the measured 180 GFLOP/s sgemm peak of 2 cores;
 * the forward/backward pair needs 4 (backward recomputes the logits).
 */
#include "selfsup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long peak_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static float *fill(int64_t n, ss_rng *rng, double scale) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(ss_rng_normal(rng) * scale);
    return x;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s T H V threads reps\n", argv[0]);
        return 2;
    }
    int64_t T = atoll(argv[1]), H = atoll(argv[2]), V = atoll(argv[3]);
    int threads = atoi(argv[4]), reps = atoi(argv[5]);
    ss_set_num_threads(threads);
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    float *h = fill(T * H, &rng, 1.0), *w = fill(V * H, &rng, 0.02);
    float *b = fill(V, &rng, 0.02);
    float *dh = malloc((size_t)(T * H) * 4), *dw = malloc((size_t)(V * H) * 4);
    float *db = malloc((size_t)V * 4), loss = 0;
    /* touch the gradient buffers so their pages are in the baseline (a
     * zero fill would be turned into calloc and left untouched) */
    for (int64_t i = 0; i < T * H; i++) dh[i] = 1e-3f;
    for (int64_t i = 0; i < V * H; i++) dw[i] = 1e-3f;
    for (int64_t i = 0; i < V; i++) db[i] = 1e-3f;
    int64_t *y = malloc(sizeof(int64_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) y[t] = (int64_t)(ss_rng_u64(&rng) % (uint64_t)V);
    void *cache = malloc(ss_fused_ce_cache_size(T, H, V));
    memset(cache, 0, ss_fused_ce_cache_size(T, H, V));
    /* Warm-up on a small problem: BLAS and OpenMP allocate their per-thread
     * buffers once per process; that is not memory of this algorithm. */
    int64_t Tw = T < 64 ? T : 64, Vw = V < 1024 ? V : 1024, yw[64];
    for (int64_t t = 0; t < Tw; t++) yw[t] = y[t] % Vw;
    if (ss_fused_ce_forward_backward(&loss, NULL, dh, dw, db, 1.0f, h, w, b,
                                     yw, Tw, H, Vw, NULL) != SS_OK) {
        fprintf(stderr, "%s\n", ss_last_error());
        return 1;
    }
    long base = peak_kib();
    double one[64], pair[64];
    for (int r = 0; r < reps && r < 64; r++) {
        double t0 = now();
        if (ss_fused_ce_forward_backward(&loss, NULL, dh, dw, db, 1.0f, h, w, b,
                                         y, T, H, V, NULL) != SS_OK) {
            fprintf(stderr, "%s\n", ss_last_error());
            return 1;
        }
        double t1 = now();
        ss_fused_ce_forward(&loss, NULL, cache, h, w, b, y, T, H, V, NULL);
        ss_fused_ce_backward(dh, dw, db, 1.0f, cache, h, w, b, y, T, H, V, NULL);
        double t2 = now();
        one[r] = t1 - t0, pair[r] = t2 - t1;
    }
    qsort(one, (size_t)reps, sizeof(double), cmp);
    qsort(pair, (size_t)reps, sizeof(double), cmp);
    printf("{\"loss\": %.6f, \"one_pass_s\": %.4f, \"pair_s\": %.4f, "
           "\"extra_mib\": %.1f, \"gflop_one_pass\": %.1f}\n",
           (double)loss, one[reps / 2], pair[reps / 2],
           (peak_kib() - base) / 1024.0, 6.0 * T * H * V / 1e9);
    return 0;
}
