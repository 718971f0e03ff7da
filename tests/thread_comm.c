/* thread_comm.c - the barrier-based thread ss_comm of thread_comm.h. */
#include "thread_comm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int size;
    pthread_barrier_t bar;
    const void *ptr[SS_TC_MAX_RANKS]; /* each rank's buffer, per call */
} tc_shared;

typedef struct {
    tc_shared *sh;
    ss_comm comm;
    ss_tc_body body;
    void *arg;
    int result;
} tc_rank;

static int tc_allreduce(void *ctx, void *buf, int64_t count, ss_comm_dtype dt,
                        ss_comm_op op) {
    tc_rank *r = ctx;
    tc_shared *sh = r->sh;
    size_t esz = dt == SS_COMM_DOUBLE ? sizeof(double) : sizeof(float);
    void *tmp = malloc((size_t)count * esz + 1);
    int ok = tmp != NULL; /* a failing rank still passes both barriers */
    sh->ptr[r->comm.rank] = buf;
    pthread_barrier_wait(&sh->bar);
    for (int64_t i = 0; ok && i < count; i++) {
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
    if (ok) memcpy(buf, tmp, (size_t)count * esz);
    free(tmp);
    return ok ? 0 : 1;
}

static int tc_allgatherv(void *ctx, const void *send, void *recv,
                         const int64_t *counts) {
    tc_rank *r = ctx;
    tc_shared *sh = r->sh;
    sh->ptr[r->comm.rank] = send;
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
    sh->ptr[r->comm.rank] = send;
    pthread_barrier_wait(&sh->bar);
    if (bytes > 0) memcpy(recv, sh->ptr[src], (size_t)bytes);
    pthread_barrier_wait(&sh->bar);
    return 0;
}

static void *tc_main(void *arg) {
    tc_rank *r = arg;
    r->result = r->body(&r->comm, r->arg);
    return NULL;
}

int ss_tc_run(int size, ss_tc_body body, void *const *args) {
    if (size < 1 || size > SS_TC_MAX_RANKS) return -1;
    tc_shared sh;
    tc_rank ranks[SS_TC_MAX_RANKS];
    pthread_t th[SS_TC_MAX_RANKS];
    sh.size = size;
    if (pthread_barrier_init(&sh.bar, NULL, (unsigned)size)) return -1;
    for (int q = 0; q < size; q++) {
        ss_comm c = {&ranks[q], q, size, tc_allreduce, tc_allgatherv,
                     tc_sendrecv};
        ranks[q].sh = &sh, ranks[q].comm = c;
        ranks[q].body = body, ranks[q].arg = args[q], ranks[q].result = 0;
    }
    for (int q = 0; q < size; q++)
        if (pthread_create(&th[q], NULL, tc_main, &ranks[q])) {
            /* the started ranks would wait at a barrier forever */
            fprintf(stderr, "ss_tc_run: cannot start thread rank %d\n", q);
            abort();
        }
    for (int q = 0; q < size; q++) pthread_join(th[q], NULL);
    pthread_barrier_destroy(&sh.bar);
    int total = 0;
    for (int q = 0; q < size; q++) total += ranks[q].result;
    return total;
}
