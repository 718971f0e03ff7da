/*
 * dist_common.h - shared checks of the distributed-loss tests: the same
 * cases run over any ss_comm (MPI ranks in test_dist_mpi.c, the local comm
 * and thread "ranks" in tests/test_dist.c). Each rank builds the whole
 * global batch from a seed, takes its own rows, and compares the ss_dist_*
 * result with the single-process loss on the global batch:
 *     loss equal, local gradient == world_size * global gradient rows.
 *
 * Cases live in tests/mpi/dist_<family>.c, one SS_DIST_GROUP per family;
 * groups run in link order, the same on every rank.
 */
#ifndef SS_TEST_DIST_COMMON_H
#define SS_TEST_DIST_COMMON_H

#include "selfsup_comm.h"

#define SS_DT_TOL 1e-5

/* The comm of the running rank and its failure count (thread-local: the
 * thread "ranks" of test_dist.c run concurrently). */
extern _Thread_local const ss_comm *ss_dt_comm;
extern _Thread_local int ss_dt_fails;

/* Records a failure (stderr, prefixed with the rank). */
void ss_dt_fail(const char *what, const char *detail);
/* Normwise relative error of a (n) against b. */
double ss_dt_rel_err(const float *a, const double *b, int64_t n);
/* Fails when ss_dt_rel_err(a, b, n) > SS_DT_TOL. */
void ss_dt_close(const char *what, const float *a, const double *b, int64_t n);
/* ss_dt_close naming the quantity too ("what: tag"). */
void ss_dt_close_as(const char *what, const char *tag, const float *a,
                    const double *b, int64_t n);
/* Fails unless st == want (the message names both and the last error). */
void ss_dt_expect(const char *what, ss_status st, ss_status want);
/* 1 when every x[i] == 0 (a failed call wrote nothing). */
int ss_dt_all_zero(const float *x, int64_t n);
/* This rank's part of a global result, mean convention: ref (views, n,
 * per) = rows [off, off + n) of each view of g (views, nt, per); when d is
 * non-NULL, d = (d - pre) / world_size (the accumulated local gradient). */
void ss_dt_view_rows(double *ref, float *d, const float *pre, const float *g,
                     int64_t views, int64_t n, int64_t nt, int64_t off,
                     int64_t per);
/* x[i] = scale * N(0, 1). */
void ss_dt_fill(float *x, int64_t n, ss_rng *r, double scale);
/* Local sample count of `rank`: variant 0 even (base), 1 growing
 * (base + 2 rank), 2 a tiny last rank (1 row, others base + rank). */
int64_t ss_dt_local_n(int variant, int rank, int size, int64_t base);
/* Sum of ss_dt_local_n over ranks below `rank` (rank = size: the total). */
int64_t ss_dt_sum_before(int variant, int rank, int size, int64_t base);

typedef struct { const char *name; void (*run)(void); } ss_dt_group;
void ss_dt_register(ss_dt_group g);

/* SS_DIST_GROUP(name) { ...cases using ss_dt_comm... } */
#define SS_DIST_GROUP(name)                                                  \
    static void ss_dt_run_##name(void);                                      \
    __attribute__((constructor)) static void ss_dt_reg_##name(void) {        \
        ss_dt_group g = {#name, ss_dt_run_##name};                           \
        ss_dt_register(g);                                                   \
    }                                                                        \
    static void ss_dt_run_##name(void)

/* Returns the number of failed checks on this rank. */
int ss_test_dist_all(const ss_comm *comm, int verbose);

#endif
