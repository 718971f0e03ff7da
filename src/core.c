/* core.c - version, build info, threads, allocation, random numbers. */
#include "internal.h"
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define SS__STR2(x) #x
#define SS__STR(x) SS__STR2(x)

const char *ss_version(void) {
    return SS__STR(SS_VERSION_MAJOR) "." SS__STR(SS_VERSION_MINOR) "." SS__STR(
        SS_VERSION_PATCH);
}

unsigned ss_version_hex(void) { return SS_VERSION_HEX; }

const char *ss_build_info(void) {
    return "openmp="
#ifdef _OPENMP
           "yes"
#else
           "no"
#endif
           " blas="
#ifdef SS_HAVE_CBLAS
           "openblas"
#else
           "portable"
#endif
        ;
}

/* ---- threads: the library's only global mutable state ------------------ */

static int ss__nthreads; /* 0: OpenMP default */

ss_status ss_set_num_threads(int n) {
    if (n < 0)
        return ss__fail(SS_ERR_PARAM, "ss_set_num_threads",
                        "n must be >= 0, got %d", n);
    ss__nthreads = n;
    return SS_OK;
}

int ss_get_num_threads(void) { return ss__threads(); }

int ss__threads(void) {
#ifdef _OPENMP
    if (ss__nthreads > 0) return ss__nthreads;
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

/* ---- memory -------------------------------------------------------------- */

void *ss__malloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    return p;
}

void *ss__calloc(size_t bytes) {
    void *p = ss__malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ss__free(void *p) { free(p); }

/* ---- random numbers: xoshiro256** seeded with splitmix64 --------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ss_rng_seed(ss_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ss_rng_u64(ss_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ss_rng_uniform(ss_rng *rng) {
    return (double)(ss_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double ss_rng_normal(ss_rng *rng) {
    double u1 = 1.0 - ss_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = ss_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
