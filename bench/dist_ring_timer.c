/*
 * dist_ring_timer.c - per-rank compute of the distributed contrastive
 * losses on the one-process comm (W = 1: one rank does the whole global
 * batch, so time / (pairs * D) is the per-rank rate that docs/SCALING.md
 * extrapolates). Prints one line per loss: seconds (median of reps) of
 * forward + backward and the rate in GMAC/s under the FLOP model below.
 *
 * usage: dist_ring_timer N D threads reps
 *   (build: cc -O2 -fopenmp -Iinclude bench/dist_ring_timer.c
 *           build/libselfsup.a -lopenblas -lm -o /tmp/dist_ring_timer)
 *
 * Multiply-add model per forward + backward (M rows, V = 2: M = 2 N):
 *   NT-Xent, ring and all-gather: 3 M^2 D (forward M^2 D, backward
 *     2 M^2 D: both gradient terms of a local row are recomputed);
 *   NT-Xent single process: 1.5 M^2 D (upper triangle);
 *   CLIP / SigLIP ring and single process: 4 N^2 D (forward 1, backward
 *     recompute + dA + dB).
 */
#include "selfsup.h"
#include "selfsup_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { NTX_SP, NTX_AG, NTX_RING, CLIP_SP, CLIP_RING, SIG_RING, NKIND };
static const char *const kind_name[NKIND] = {
    "ntxent_single", "ntxent_allgather", "ntxent_ring",
    "clip_single",   "clip_ring",        "siglip_ring"};

/* One forward + backward of `kind`; returns its status. */
static ss_status run_once(int kind, const float *z, float *dz, void *cache,
                          int64_t N, int64_t D, const ss_comm *c) {
    float loss, ds = 0.0f, db = 0.0f;
    const float *a = z, *b = z + N * D;
    float *da = dz, *dbv = dz + N * D;
    ss_status st;
    switch (kind) {
    case NTX_SP:
        st = ss_ntxent_forward(&loss, NULL, cache, z, 2, N, D, NULL);
        return st ? st : ss_ntxent_backward(dz, 1.0f, cache, z, 2, N, D, NULL);
    case NTX_AG:
        st = ss_dist_ntxent_forward(&loss, NULL, cache, z, 2, N, D, NULL, c);
        return st ? st
                  : ss_dist_ntxent_backward(dz, 1.0f, cache, z, 2, N, D, NULL,
                                            c);
    case NTX_RING:
        st = ss_dist_ntxent_ring_forward(&loss, NULL, cache, z, 2, N, D, NULL,
                                         c);
        return st ? st
                  : ss_dist_ntxent_ring_backward(dz, 1.0f, cache, z, 2, N, D,
                                                 NULL, c);
    case CLIP_SP:
        st = ss_clip_forward(&loss, NULL, cache, a, b, 2.6f, N, D, NULL);
        return st ? st
                  : ss_clip_backward(da, dbv, &ds, 1.0f, cache, a, b, 2.6f, N,
                                     D, NULL);
    case CLIP_RING:
        st = ss_dist_clip_ring_forward(&loss, NULL, cache, a, b, 2.6f, N, D,
                                       NULL, c);
        return st ? st
                  : ss_dist_clip_ring_backward(da, dbv, &ds, 1.0f, cache, a, b,
                                               2.6f, N, D, NULL, c);
    default:
        st = ss_dist_siglip_ring_forward(&loss, NULL, cache, a, b, 2.3f, -10.0f,
                                         N, D, NULL, c);
        return st ? st
                  : ss_dist_siglip_ring_backward(da, dbv, &ds, &db, 1.0f,
                                                 cache, a, b, 2.3f, -10.0f, N,
                                                 D, NULL, c);
    }
}

static double macs(int kind, double N, double D) {
    double M = 2.0 * N;
    switch (kind) {
    case NTX_SP: return 1.5 * M * M * D;
    case NTX_AG: case NTX_RING: return 3.0 * M * M * D;
    default: return 4.0 * N * N * D;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dist_ring_timer N D threads reps\n");
        return 2;
    }
    int64_t N = atoll(argv[1]), D = atoll(argv[2]);
    int reps = atoi(argv[4]);
    if (N < 2 || D < 1 || reps < 1 || reps > 64) return 2;
    ss_set_num_threads(atoi(argv[3]));
    ss_comm c = ss_comm_local();
    float *z = malloc(2 * (size_t)(N * D) * sizeof(float));
    float *dz = calloc(2 * (size_t)(N * D), sizeof(float));
    void *cache = malloc(ss_ntxent_cache_size(2, N, D) + 4096 +
                         8 * (size_t)N);
    ss_rng r;
    ss_rng_seed(&r, 1);
    for (int64_t i = 0; i < 2 * N * D; i++) z[i] = (float)ss_rng_normal(&r);
    for (int kind = 0; kind < NKIND; kind++) {
        double t[64];
        if (run_once(kind, z, dz, cache, N, D, &c) != SS_OK) { /* warmup */
            fprintf(stderr, "%s: %s\n", kind_name[kind], ss_last_error());
            return 1;
        }
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            run_once(kind, z, dz, cache, N, D, &c);
            t[k] = now() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp);
        double med = t[reps / 2];
        printf("%-17s N %6lld D %4lld  %8.3f s  %6.1f GMAC/s\n",
               kind_name[kind], (long long)N, (long long)D, med,
               macs(kind, (double)N, (double)D) / med * 1e-9);
    }
    free(z), free(dz), free(cache);
    return 0;
}
