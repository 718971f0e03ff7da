/*
 * engine_bench.c - forward + backward images/s of the small CNN encoder of
 * `selfsup train`, to set side by side with bench/engine_bench.py (PyTorch,
 * same architecture, same batch, same thread count).
 *
 *   conv3x3 1->32 (pad 1) -> BN -> ReLU -> maxpool 2   28x28 -> 14x14
 *   conv3x3 32->64        -> BN -> ReLU -> maxpool 2   14x14 -> 7x7
 *   conv3x3 64->128       -> BN -> ReLU -> global avg  7x7   -> 128
 *
 * Napkin math (batch B = 256, MACs x 2 = FLOP): conv1 0.12, conv2 1.85,
 * conv3 1.85 GFLOP forward; backward is dw for all three plus dx for conv2
 * and conv3, ~7.4 GFLOP; ~11.2 GFLOP per batch in all. At the measured
 * ~150 GFLOP/s OpenBLAS rate of this 2-core machine the GEMMs alone bound
 * us near 3400 images/s; BN, pooling and im2col are memory-bound extras.
 *
 * usage: engine_bench [iters=20] [threads=2] [batch=256] [-v]
 * -v: also print the seconds per layer kind (summed over the blocks).
 */
#include "engine.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Process CPU seconds (all threads): on a loaded shared machine this is a
 * steadier measure of work than wall time (spinning OpenMP threads count). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *buf(int64_t n) {
    float *p = ss__calloc((size_t)n * sizeof(float));
    if (!p) {
        fprintf(stderr, "engine_bench: out of memory (%lld floats)\n",
                (long long)n);
        exit(1);
    }
    return p;
}

typedef struct {
    sst_conv2d_dims d;
    int64_t OH, S;       /* output side, OH * OH */
    float *w, *dw, *g, *b, *dg, *db, *rm, *rv, *saved;
    float *x;            /* input of the conv (not owned) */
    float *c, *a;        /* conv output, BN+ReLU output (N, Cout, S) */
    float *p;            /* pooled (or GAP) output */
    int64_t PS;          /* pooled side */
} block;

static void block_init(block *k, int64_t N, int64_t Cin, int64_t H,
                       int64_t Cout, int gap, ss_rng *rng) {
    sst_conv2d_dims d = {N, Cin, H, H, Cout, 3, 3, 1, 1};
    k->d = d;
    if (sst_conv2d_out_size(&d, &k->OH, NULL)) exit(1);
    k->S = k->OH * k->OH;
    int64_t nw = Cout * Cin * 9;
    k->w = buf(nw), k->dw = buf(nw);
    for (int64_t i = 0; i < nw; i++)
        k->w[i] = (float)(ss_rng_normal(rng) / sqrt((double)(Cin * 9)));
    k->g = buf(Cout), k->b = buf(Cout), k->dg = buf(Cout), k->db = buf(Cout);
    k->rm = buf(Cout), k->rv = buf(Cout), k->saved = buf(2 * Cout);
    for (int64_t i = 0; i < Cout; i++) k->g[i] = 1.0f, k->rv[i] = 1.0f;
    k->c = buf(N * Cout * k->S), k->a = buf(N * Cout * k->S);
    k->PS = gap ? 1 : k->OH / 2;
    k->p = buf(N * Cout * k->PS * k->PS);
}

/* Per-layer seconds, printed with -v (index: layer kind). */
static double g_t[8];
static const char *g_names[8] = {"conv fwd", "bn fwd", "relu/pool fwd",
                                 "pool/relu bwd", "bn bwd", "conv bwd", "", ""};
#define TIMED(k, call)               \
    do {                             \
        double t0_ = now();          \
        call;                        \
        g_t[k] += now() - t0_;       \
    } while (0)

static void block_free(block *k) {
    float *all[] = {k->w, k->dw, k->g, k->b, k->dg, k->db, k->rm, k->rv,
                    k->saved, k->c, k->a, k->p};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ss__free(all[i]);
}

static void check(ss_status st) {
    if (st != SS_OK) {
        fprintf(stderr, "engine_bench: %s\n", ss_last_error());
        exit(1);
    }
}

static void block_forward(block *k, const float *x, int gap) {
    const sst_conv2d_dims *d = &k->d;
    int64_t P = d->N * d->Cout;
    TIMED(0, check(sst_conv2d_forward(k->c, x, k->w, NULL, d)));
    TIMED(1, check(sst_batchnorm_forward(k->a, k->saved, k->c, k->g, k->b, k->rm, k->rv,
                                d->N, d->Cout, k->S, SST_BN_EPS,
                                SST_BN_MOMENTUM, 1)));
    double t0 = now();
    check(sst_relu_forward(k->a, k->a, P * k->S));
    if (gap)
        check(sst_gap_forward(k->p, k->a, P, k->S));
    else
        check(sst_maxpool2d_forward(k->p, k->a, P, k->OH, k->OH, 2, 2));
    g_t[2] += now() - t0;
}

/* dp: gradient of the block output; dx: gradient of its input or NULL.
 * Scratch dc (N, Cout, S) is reused for every step (all written in place). */
static void block_backward(block *k, float *dx, const float *dp,
                           const float *x, float *dc, int gap) {
    const sst_conv2d_dims *d = &k->d;
    int64_t P = d->N * d->Cout;
    double t0 = now();
    if (gap)
        check(sst_gap_backward(dc, dp, P, k->S));
    else
        check(sst_maxpool2d_backward(dc, dp, k->a, P, k->OH, k->OH, 2, 2));
    check(sst_relu_backward(dc, dc, k->a, P * k->S));
    g_t[3] += now() - t0;
    TIMED(4, check(sst_batchnorm_backward(dc, k->dg, k->db, dc, k->saved, k->c,
                                          k->g, d->N, d->Cout, k->S, 1)));
    TIMED(5, check(sst_conv2d_backward(dx, k->dw, NULL, dc, x, k->w, d)));
}

int main(int argc, char **argv) {
    sst_blas_reexec(argv); /* AVX2/AVX-512 OpenBLAS kernels in a VM */
    int iters = argc > 1 ? atoi(argv[1]) : 20;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int64_t N = argc > 3 ? atoll(argv[3]) : 256;
    check(ss_set_num_threads(threads));
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    block b1, b2, b3;
    block_init(&b1, N, 1, 28, 32, 0, &rng);
    block_init(&b2, N, 32, 14, 64, 0, &rng);
    block_init(&b3, N, 64, 7, 128, 1, &rng);
    float *x = buf(N * 28 * 28), *dout = buf(N * 128);
    float *dc = buf(N * 32 * 28 * 28);          /* largest conv output */
    float *dp1 = buf(N * 32 * 14 * 14), *dp2 = buf(N * 64 * 7 * 7);
    for (int64_t i = 0; i < N * 784; i++) x[i] = (float)ss_rng_uniform(&rng);
    for (int64_t i = 0; i < N * 128; i++) dout[i] = (float)ss_rng_normal(&rng);

    double best = 1e30, total = 0.0, cpu = 0.0;
    for (int it = -2; it < iters; it++) { /* two warm-up iterations */
        double t0 = now(), c0 = cpu_now();
        block_forward(&b1, x, 0);
        block_forward(&b2, b1.p, 0);
        block_forward(&b3, b2.p, 1);
        block_backward(&b3, dp2, dout, b2.p, dc, 1);
        block_backward(&b2, dp1, dp2, b1.p, dc, 0);
        block_backward(&b1, NULL, dp1, x, dc, 0);
        double t = now() - t0;
        if (it >= 0) {
            total += t;
            cpu += cpu_now() - c0;
            if (t < best) best = t;
        }
    }
    double flop = 2.0 * N *
                  (784.0 * 32 * 9 * 2 + 196.0 * 64 * 288 * 3 +
                   49.0 * 128 * 576 * 3);
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("selfsup engine (OPENBLAS_CORETYPE=%s): batch %lld, %d threads, "
           "%d iters: mean %.1f ms/iter, best %.1f ms -> %.0f images/s "
           "(mean), %.0f (best); %.0f images per CPU-second; %.1f GFLOP/s "
           "conv\n",
           core ? core : "auto", (long long)N, threads, iters,
           1e3 * total / iters, 1e3 * best, N * iters / total, N / best,
           N * iters / cpu, flop * iters / total * 1e-9);
    if (argc > 4 && strcmp(argv[4], "-v") == 0)
        for (int k = 0; k < 6; k++)
            printf("  %-14s %7.1f ms/iter\n", g_names[k],
                   1e3 * g_t[k] / (iters + 2));
    block_free(&b1), block_free(&b2), block_free(&b3);
    ss__free(x), ss__free(dout), ss__free(dc), ss__free(dp1), ss__free(dp2);
    return 0;
}
