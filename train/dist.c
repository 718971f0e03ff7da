/* dist.c - data-parallel training helpers (engine.h): status-carrying sums,
 * batch slices, gradient averaging. The synchronised BatchNorm is in
 * layers.c, next to the local one whose arithmetic it shares. */
#include "engine.h"

#include "comm_internal.h"

#include <string.h>

ss_status sst_dist_sum_agree(const ss_comm *comm, const char *fn,
                             ss_status st, double *buf, int64_t n) {
    double *slot = buf + n;
    if (st != SS_OK) memset(buf, 0, (size_t)n * sizeof *buf);
    memset(slot, 0, (size_t)comm->size * sizeof *slot);
    slot[comm->rank] = (double)st;
    SS_TRY(ss__dist_allreduce(comm, fn, buf, n + comm->size, SS_COMM_DOUBLE,
                              SS_COMM_SUM));
    if (st != SS_OK) return st; /* keep this rank's own message */
    for (int r = 0; r < comm->size; r++)
        if (slot[r] != 0.0) {
            ss_status any = (ss_status)(int)slot[r];
            return ss__fail(any, fn, "rank %d failed with %s", r,
                            ss_status_name(any));
        }
    return SS_OK;
}

void sst_dist_slice(int64_t B, int rank, int size, int64_t *first,
                    int64_t *count) {
    *first = B * rank / size;
    *count = B * (rank + 1) / size - *first;
}

ss_status sst_dist_average_grads(const ss_comm *comm, sst_params *P) {
    SS_TRY(ss__dist_allreduce(comm, "sst_dist_average_grads", P->grad,
                              P->numel, SS_COMM_FLOAT, SS_COMM_SUM));
    const float w = (float)comm->size;
    for (int64_t i = 0; i < P->numel; i++) P->grad[i] /= w;
    return SS_OK;
}
