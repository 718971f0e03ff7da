/*
 * ntxent_kernel.c - times ss_ntxent forward + backward and measures peak
 * extra memory (VmHWM after resetting it through /proc/self/clear_refs).
 *
 *   ntxent_kernel N D threads reps [temperature [hard_beta tau_plus]]
 *
 * Build (after the library): gcc -O2 -Iinclude bench/ntxent_kernel.c
 *   build/libselfsup.a -lm -fopenmp -lopenblas -o ntxent_kernel
 *
 * Napkin math (V = 2, M = 2N rows): forward 0.5 M^2 D MAC (upper-triangle
 * tiles), backward 1.5 M^2 D MAC (recompute + two tile GEMMs), i.e.
 * 4 M^2 D FLOP in all; at N = 4096, D = 128 that is 34.4 GFLOP, 0.18 s on
 * the two cores at the measured ~190 GFLOP/s FMA peak.
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
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): robust to other jobs
 * sharing the cores, unlike wall time. */
static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec +
           ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
}

static long status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) v = atol(line + strlen(key));
    if (f) fclose(f);
    return v;
}

static void reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) fputs("5", f), fclose(f);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s N D threads reps [t [beta tau]]\n", argv[0]);
        return 2;
    }
    int64_t N = atoll(argv[1]), D = atoll(argv[2]), V = 2, M = V * N;
    int th = atoi(argv[3]), reps = atoi(argv[4]);
    ss_ntxent_opts o = ss_ntxent_defaults();
    if (argc > 5) o.temperature = (float)atof(argv[5]);
    if (argc > 7) o.hard_beta = (float)atof(argv[6]), o.debias_tau_plus = (float)atof(argv[7]);
    ss_set_num_threads(th);
    float *z = malloc(sizeof(float) * M * D), *dz = calloc(M * D, sizeof(float));
    void *cache = malloc(ss_ntxent_cache_size(V, N, D));
    ss_rng rng;
    ss_rng_seed(&rng, 1);
    for (int64_t i = 0; i < M * D; i++) z[i] = (float)ss_rng_normal(&rng);
    memset(cache, 0, ss_ntxent_cache_size(V, N, D));
    float loss;
    double *tf = malloc(sizeof(double) * reps), *tb = malloc(sizeof(double) * reps);
    double *tc = malloc(sizeof(double) * reps);
    long base = 0, peak = 0;
    for (int r = 0; r < reps; r++) {
        reset_hwm();
        base = status_kib("VmRSS:");
        double c0 = cpu_now(), t0 = now();
        if (ss_ntxent_forward(&loss, NULL, cache, z, V, N, D, &o) != SS_OK) {
            fprintf(stderr, "%s\n", ss_last_error());
            return 1;
        }
        double t1 = now();
        if (ss_ntxent_backward(dz, 1.0f, cache, z, V, N, D, &o) != SS_OK) {
            fprintf(stderr, "%s\n", ss_last_error());
            return 1;
        }
        double t2 = now();
        long p = status_kib("VmHWM:") - base;
        if (p > peak) peak = p;
        tf[r] = t1 - t0, tb[r] = t2 - t1, tc[r] = cpu_now() - c0;
    }
    double tot[64];
    for (int r = 0; r < reps && r < 64; r++) tot[r] = tf[r] + tb[r];
    qsort(tf, reps, sizeof *tf, cmp);
    qsort(tb, reps, sizeof *tb, cmp);
    qsort(tc, reps, sizeof *tc, cmp);
    qsort(tot, reps < 64 ? reps : 64, sizeof *tot, cmp);
    double flop = 4.0 * (double)M * M * D;
    double med = tot[(reps < 64 ? reps : 64) / 2];
    printf("N=%lld D=%lld threads=%d t=%g beta=%g tau=%g loss=%.6f\n",
           (long long)N, (long long)D, th, o.temperature, o.hard_beta,
           o.debias_tau_plus, loss);
    printf("  forward  median %.4f s (min %.4f)\n", tf[reps / 2], tf[0]);
    printf("  backward median %.4f s (min %.4f)\n", tb[reps / 2], tb[0]);
    printf("  total    median %.4f s (min %.4f), %.1f GFLOP/s\n", med, tot[0],
           flop / med * 1e-9);
    printf("  CPU time median %.4f s (all threads; min %.4f)\n", tc[reps / 2],
           tc[0]);
    printf("  peak extra memory %.1f MiB (VmHWM - VmRSS before the call); "
           "RSS %.1f MiB\n", peak / 1024.0, status_kib("VmHWM:") / 1024.0);
    free(z), free(dz), free(cache), free(tf), free(tb), free(tc);
    return 0;
}
