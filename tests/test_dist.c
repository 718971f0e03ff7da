/*
 * test_dist.c - the distributed losses without MPI: the shared cases of
 * tests/mpi/dist_common.c on the single-process comm (must equal the
 * single-process losses) and on 2 and 3 "ranks" that are threads of this
 * process, joined by the barrier-based ss_comm of thread_comm.h.
 */
#include "harness.h"
#include "dist_common.h"
#include "thread_comm.h"

#include <stdlib.h>
#include <string.h>

SS_TEST(local_comm_equals_single_process) {
    ss_comm c = ss_comm_local();
    SS_CHECK_OK(ss_comm_check(&c));
    SS_CHECK_INT(ss_test_dist_all(&c, 0), 0);
}

SS_TEST(comm_check) {
    ss_comm c = ss_comm_local();
    SS_CHECK_STATUS(ss_comm_check(NULL), SS_ERR_NULL);
    c.allreduce = NULL;
    SS_CHECK_STATUS(ss_comm_check(&c), SS_ERR_NULL);
    c = ss_comm_local();
    c.rank = 1;
    SS_CHECK_STATUS(ss_comm_check(&c), SS_ERR_PARAM);
    float loss;
    char cache[256];
    float z[4] = {1, 2, 3, 4};
    SS_CHECK_STATUS(ss_dist_ntxent_forward(&loss, NULL, cache, z, 2, 1, 2,
                                           NULL, NULL), SS_ERR_NULL);
}

/* ---- ranks as threads (thread_comm.h) ------------------------------------ */

static int dist_body(const ss_comm *comm, void *arg) {
    (void)arg;
    return ss_test_dist_all(comm, 0);
}

static void run_threads(int size) {
    void *args[SS_TC_MAX_RANKS] = {NULL};
    SS_CHECK_INT(ss_tc_run(size, dist_body, args), 0);
}

SS_TEST(thread_ranks_2) {
    int keep = ss_get_num_threads();
    ss_set_num_threads(1);
    run_threads(2);
    ss_set_num_threads(keep);
}

SS_TEST(thread_ranks_3) {
    int keep = ss_get_num_threads();
    ss_set_num_threads(1);
    run_threads(3);
    ss_set_num_threads(keep);
}

/* ss_dist_ntxent on the local comm: 1 vs 2 OpenMP threads, more than one
 * local row tile, equal up to float summation order. */
SS_TEST(thread_count_independent) {
    enum { V = 2, N = 150, D = 9 };
    static float z[V * N * D], d1[V * N * D], d2[V * N * D];
    ss_rng r;
    ss_rng_seed(&r, 3);
    for (int i = 0; i < V * N * D; i++) z[i] = (float)ss_rng_normal(&r);
    ss_comm c = ss_comm_local();
    void *cache = malloc(ss_dist_ntxent_cache_size(V, N, D));
    float l1 = 0, l2 = 0;
    int keep = ss_get_num_threads();
    memset(d1, 0, sizeof d1), memset(d2, 0, sizeof d2);
    ss_set_num_threads(1);
    SS_CHECK_OK(ss_dist_ntxent_forward(&l1, NULL, cache, z, V, N, D, NULL, &c));
    SS_CHECK_OK(ss_dist_ntxent_backward(d1, 1.0f, cache, z, V, N, D, NULL, &c));
    ss_set_num_threads(2);
    SS_CHECK_OK(ss_dist_ntxent_forward(&l2, NULL, cache, z, V, N, D, NULL, &c));
    SS_CHECK_OK(ss_dist_ntxent_backward(d2, 1.0f, cache, z, V, N, D, NULL, &c));
    ss_set_num_threads(keep);
    SS_CHECK(fabsf(l1 - l2) <= 1e-6f * fabsf(l1));
    double e = 0.0, s = 0.0;
    for (int i = 0; i < V * N * D; i++)
        e += (double)(d1[i] - d2[i]) * (d1[i] - d2[i]), s += (double)d1[i] * d1[i];
    SS_CHECK(sqrt(e) <= 1e-6 * sqrt(s));
    free(cache);
}
