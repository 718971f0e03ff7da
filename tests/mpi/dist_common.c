/* dist_common.c - see dist_common.h. */
#include "dist_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local int ss_dt_fails; /* per thread: ranks may be threads */
_Thread_local const ss_comm *ss_dt_comm;

void ss_dt_fail(const char *what, const char *detail) {
    fprintf(stderr, "[rank %d] FAIL %s: %s\n", ss_dt_comm->rank, what, detail);
    ss_dt_fails++;
}

double ss_dt_rel_err(const float *a, const double *b, int64_t n) {
    double e = 0.0, s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        e += d * d, s += b[i] * b[i];
    }
    return sqrt(e) / (sqrt(s) > 1e-30 ? sqrt(s) : 1e-30);
}

void ss_dt_close(const char *what, const float *a, const double *b,
                        int64_t n) {
    double e = ss_dt_rel_err(a, b, n);
    if (!(e <= SS_DT_TOL)) {
        char m[128];
        snprintf(m, sizeof m, "relative error %.3g > %g", e, SS_DT_TOL);
        ss_dt_fail(what, m);
    }
}

void ss_dt_close_as(const char *what, const char *tag, const float *a,
                    const double *b, int64_t n) {
    char m[240];
    snprintf(m, sizeof m, "%s: %s", what, tag);
    ss_dt_close(m, a, b, n);
}

void ss_dt_expect(const char *what, ss_status st, ss_status want) {
    if (st != want) {
        char m[512];
        snprintf(m, sizeof m, "got %s, want %s (%s)", ss_status_name(st),
                 ss_status_name(want), ss_last_error());
        ss_dt_fail(what, m);
    }
}

int ss_dt_all_zero(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

void ss_dt_view_rows(double *ref, float *d, const float *pre, const float *g,
                     int64_t views, int64_t n, int64_t nt, int64_t off,
                     int64_t per) {
    int W = ss_dt_comm->size;
    for (int64_t v = 0; v < views; v++)
        for (int64_t e = 0; e < n * per; e++) {
            int64_t i = v * n * per + e;
            if (d) d[i] = (d[i] - pre[i]) / (float)W;
            ref[i] = g[(v * nt + off) * per + e];
        }
}

void ss_dt_fill(float *x, int64_t n, ss_rng *r, double scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * ss_rng_normal(r));
}

int64_t ss_dt_local_n(int variant, int rank, int size, int64_t base) {
    switch (variant) {
    case 0: return base;                      /* even */
    case 1: return base + 2 * rank;           /* growing */
    default: return rank == size - 1 ? 1 : base + rank; /* a tiny rank */
    }
}

int64_t ss_dt_sum_before(int variant, int rank, int size, int64_t base) {
    int64_t s = 0;
    for (int q = 0; q < rank; q++) s += ss_dt_local_n(variant, q, size, base);
    return s;
}

/* ---- registry ------------------------------------------------------------- */

#define SS_DT_MAX 64
static ss_dt_group g_groups[SS_DT_MAX];
static int g_ngroups;

void ss_dt_register(ss_dt_group g) {
    if (g_ngroups < SS_DT_MAX) g_groups[g_ngroups++] = g;
}

int ss_test_dist_all(const ss_comm *comm, int verbose) {
    ss_dt_comm = comm, ss_dt_fails = 0;
    for (int k = 0; k < g_ngroups; k++) g_groups[k].run();
    if (g_ngroups == SS_DT_MAX) ss_dt_fail("registry", "too many groups");
    if (verbose)
        fprintf(stderr, "[rank %d of %d] %s (%d failures, %d groups)\n",
                comm->rank, comm->size, ss_dt_fails ? "FAILED" : "ok",
                ss_dt_fails, g_ngroups);
    return ss_dt_fails;
}
