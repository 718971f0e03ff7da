/*
 * test_dist.c - the distributed losses without MPI: the shared cases of
 * tests/mpi/dist_common.c on the single-process comm (must equal the
 * single-process losses) and on 2 and 3 "ranks" that are threads of this
 * process, joined by a barrier-based ss_comm (thread_comm below).
 */
#include "harness.h"
#include "dist_common.h"

#include <pthread.h>
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

/* ---- ranks as threads ---------------------------------------------------- */

#define TC_MAX 4

typedef struct {
    int size;
    pthread_barrier_t bar;
    const void *ptr[TC_MAX]; /* each rank's buffer, published per call */
} tc_shared;

typedef struct {
    tc_shared *sh;
    int rank;
    ss_comm comm;
    int fails;
} tc_rank;

static int tc_allreduce(void *ctx, void *buf, int64_t count, ss_comm_dtype dt,
                        ss_comm_op op) {
    tc_rank *r = ctx;
    tc_shared *sh = r->sh;
    size_t esz = dt == SS_COMM_DOUBLE ? sizeof(double) : sizeof(float);
    void *tmp = malloc((size_t)count * esz + 1);
    if (!tmp) return 1;
    sh->ptr[r->rank] = buf;
    pthread_barrier_wait(&sh->bar);
    for (int64_t i = 0; i < count; i++) { /* rank order: deterministic */
        double acc = 0.0;
        for (int q = 0; q < sh->size; q++) {
            double v = dt == SS_COMM_DOUBLE ? ((const double *)sh->ptr[q])[i]
                                            : ((const float *)sh->ptr[q])[i];
            acc = q == 0 ? v : op == SS_COMM_MAX ? (v > acc ? v : acc) : acc + v;
        }
        if (dt == SS_COMM_DOUBLE) ((double *)tmp)[i] = acc;
        else ((float *)tmp)[i] = (float)acc;
    }
    pthread_barrier_wait(&sh->bar);
    memcpy(buf, tmp, (size_t)count * esz);
    free(tmp);
    return 0;
}

static int tc_allgatherv(void *ctx, const void *send, void *recv,
                         const int64_t *counts) {
    tc_rank *r = ctx;
    tc_shared *sh = r->sh;
    sh->ptr[r->rank] = send;
    pthread_barrier_wait(&sh->bar);
    int64_t off = 0;
    for (int q = 0; q < sh->size; q++) {
        if (counts[q] > 0)
            memcpy((char *)recv + off, sh->ptr[q], (size_t)counts[q]);
        off += counts[q];
    }
    pthread_barrier_wait(&sh->bar);
    return 0;
}

/* Every rank calls it in the same step (the ring): publish, copy from src. */
static int tc_sendrecv(void *ctx, const void *send, int dst, void *recv,
                       int src, int64_t bytes) {
    tc_rank *r = ctx;
    tc_shared *sh = r->sh;
    (void)dst; /* rank src sends to this rank in the ring */
    sh->ptr[r->rank] = send;
    pthread_barrier_wait(&sh->bar);
    if (bytes > 0) memcpy(recv, sh->ptr[src], (size_t)bytes);
    pthread_barrier_wait(&sh->bar);
    return 0;
}

static void *tc_main(void *arg) {
    tc_rank *r = arg;
    r->fails = ss_test_dist_all(&r->comm, 0);
    return NULL;
}

static void run_threads(int size) {
    tc_shared sh;
    tc_rank ranks[TC_MAX];
    pthread_t th[TC_MAX];
    sh.size = size;
    pthread_barrier_init(&sh.bar, NULL, (unsigned)size);
    for (int q = 0; q < size; q++) {
        ranks[q].sh = &sh, ranks[q].rank = q, ranks[q].fails = 0;
        ss_comm c = {&ranks[q], q, size, tc_allreduce, tc_allgatherv,
                     tc_sendrecv};
        ranks[q].comm = c;
    }
    for (int q = 0; q < size; q++) pthread_create(&th[q], NULL, tc_main, &ranks[q]);
    for (int q = 0; q < size; q++) pthread_join(th[q], NULL);
    pthread_barrier_destroy(&sh.bar);
    for (int q = 0; q < size; q++) SS_CHECK_INT(ranks[q].fails, 0);
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
