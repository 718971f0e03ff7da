/*
 * dist_ring2_timer.c - per-rank compute of the distributed SupCon and DCL,
 * all-gather vs ring, on the one-process comm (W = 1: one rank does the
 * whole global batch; the ring makes no sendrecv, so this is its compute
 * alone). Prints one line per path: seconds of forward + backward (median
 * of reps).
 *
 * usage: dist_ring2_timer N D threads reps   (V = 2, cosine, 100 classes)
 *   (build: cc -O2 -fopenmp -Iinclude bench/dist_ring2_timer.c
 *           build/libselfsup.a -lopenblas -lm -o /tmp/dist_ring2_timer)
 */
#include "selfsup.h"
#include "selfsup_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const float *z;
    const int64_t *lab;
    float *dz;
    void *cache;
    int64_t V, N, D;
} bench;

/* One forward + backward of path k: 0 SupCon all-gather, 1 SupCon ring,
 * 2 DCL all-gather, 3 DCL ring. */
static ss_status run(int k, const bench *b, const ss_comm *c) {
    ss_supcon_opts so = ss_supcon_defaults();
    ss_dcl_opts dco = ss_dcl_defaults();
    float loss;
    ss_status st;
    switch (k) {
    case 0:
        st = ss_dist_supcon_forward(&loss, NULL, b->cache, b->z, b->lab, b->V,
                                    b->N, b->D, &so, c);
        return st ? st : ss_dist_supcon_backward(b->dz, 1.0f, b->cache, b->z,
                                                 b->lab, b->V, b->N, b->D,
                                                 &so, c);
    case 1:
        st = ss_dist_supcon_ring_forward(&loss, NULL, b->cache, b->z, b->lab,
                                         b->V, b->N, b->D, &so, c);
        return st ? st : ss_dist_supcon_ring_backward(b->dz, 1.0f, b->cache,
                                                      b->z, b->lab, b->V,
                                                      b->N, b->D, &so, c);
    case 2:
        st = ss_dist_dcl_forward(&loss, NULL, b->cache, b->z, b->V, b->N,
                                 b->D, &dco, c);
        return st ? st : ss_dist_dcl_backward(b->dz, 1.0f, b->cache, b->z,
                                              b->V, b->N, b->D, &dco, c);
    default:
        st = ss_dist_dcl_ring_forward(&loss, NULL, b->cache, b->z, b->V, b->N,
                                      b->D, &dco, c);
        return st ? st : ss_dist_dcl_ring_backward(b->dz, 1.0f, b->cache,
                                                   b->z, b->V, b->N, b->D,
                                                   &dco, c);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: dist_ring2_timer N D threads reps\n");
        return 2;
    }
    int64_t V = 2, N = atoll(argv[1]), D = atoll(argv[2]);
    int reps = atoi(argv[4]);
    if (ss_set_num_threads(atoi(argv[3])) != SS_OK) return 2;
    if (N < 2 || D < 1 || reps < 1 || reps > 99) return 2;
    float *z = malloc((size_t)(V * N * D) * sizeof(float));
    float *dz = calloc((size_t)(V * N * D), sizeof(float));
    int64_t *lab = malloc((size_t)N * sizeof(int64_t));
    void *cache = malloc(ss_dist_dcl_cache_size(V, N, D) +
                         ss_dist_supcon_ring_cache_size(V, N, D));
    if (!z || !dz || !lab || !cache) return 1;
    ss_rng r;
    ss_rng_seed(&r, 1);
    for (int64_t i = 0; i < V * N * D; i++) z[i] = (float)ss_rng_normal(&r);
    for (int64_t n = 0; n < N; n++) lab[n] = (int64_t)(ss_rng_u64(&r) % 100);
    bench b = {z, lab, dz, cache, V, N, D};
    ss_comm c = ss_comm_local();
    static const char *const names[] = {"supcon all-gather", "supcon ring",
                                        "dcl all-gather", "dcl ring"};
    for (int k = 0; k < 4; k++) {
        double t[99];
        for (int i = 0; i < reps; i++) {
            double t0 = now();
            if (run(k, &b, &c) != SS_OK) {
                fprintf(stderr, "%s: %s\n", names[k], ss_last_error());
                return 1;
            }
            t[i] = now() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        printf("%-18s N %lld D %lld: %.3f s\n", names[k], (long long)N,
               (long long)D, t[reps / 2]);
    }
    free(z), free(dz), free(lab), free(cache);
    return 0;
}
