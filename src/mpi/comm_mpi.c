/*
 * comm_mpi.c - libselfsup_mpi: the ss_comm callbacks on MPI. Counts larger
 * than INT_MAX elements are split into chunks; the variable all-gather
 * runs as MPI_Allgatherv on bytes when every count fits in an int, else as
 * one MPI_Bcast per rank in chunks.
 */
#include "selfsup_mpi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct ss_mpi_comm {
    MPI_Comm comm;
    ss_comm c;
};

#define CHUNK ((int64_t)1 << 30) /* elements per MPI call */

static int mpi_allreduce(void *ctx, void *buf, int64_t count, ss_comm_dtype dt,
                         ss_comm_op op) {
    MPI_Comm comm = ((ss_mpi_comm *)ctx)->comm;
    MPI_Datatype t = dt == SS_COMM_DOUBLE ? MPI_DOUBLE : MPI_FLOAT;
    size_t esz = dt == SS_COMM_DOUBLE ? sizeof(double) : sizeof(float);
    MPI_Op o = op == SS_COMM_MAX ? MPI_MAX : MPI_SUM;
    for (int64_t k = 0; k < count; k += CHUNK) {
        int64_t n = count - k < CHUNK ? count - k : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)k * esz,
                               (int)n, t, o, comm);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

static int mpi_allgatherv(void *ctx, const void *send, void *recv,
                          const int64_t *counts) {
    ss_mpi_comm *m = ctx;
    int size = m->c.size, small = 1;
    int64_t total = 0;
    for (int r = 0; r < size; r++) {
        total += counts[r];
        if (counts[r] > INT_MAX) small = 0;
    }
    if (small && total <= INT_MAX) {
        int *cnt = malloc(2 * (size_t)size * sizeof(int));
        if (!cnt) return -1;
        int *dsp = cnt + size, off = 0;
        for (int r = 0; r < size; r++)
            cnt[r] = (int)counts[r], dsp[r] = off, off += (int)counts[r];
        /* MPI needs a non-NULL, non-aliased send buffer */
        int rc = MPI_Allgatherv(send, cnt[m->c.rank], MPI_BYTE, recv, cnt, dsp,
                                MPI_BYTE, m->comm);
        free(cnt);
        return rc == MPI_SUCCESS ? 0 : rc;
    }
    int64_t off = 0;
    for (int r = 0; r < size; r++) {
        char *dst = (char *)recv + off;
        if (r == m->c.rank && counts[r] > 0) memmove(dst, send, (size_t)counts[r]);
        for (int64_t k = 0; k < counts[r]; k += CHUNK) {
            int64_t n = counts[r] - k < CHUNK ? counts[r] - k : CHUNK;
            int rc = MPI_Bcast(dst + k, (int)n, MPI_BYTE, r, m->comm);
            if (rc != MPI_SUCCESS) return rc;
        }
        off += counts[r];
    }
    return 0;
}

static int mpi_sendrecv(void *ctx, const void *send, int dst, void *recv,
                        int src, int64_t bytes) {
    MPI_Comm comm = ((ss_mpi_comm *)ctx)->comm;
    for (int64_t k = 0; k < bytes || k == 0; k += CHUNK) {
        int64_t n = bytes - k < CHUNK ? bytes - k : CHUNK;
        int rc = MPI_Sendrecv((const char *)send + k, (int)n, MPI_BYTE, dst,
                              77, (char *)recv + k, (int)n, MPI_BYTE, src, 77,
                              comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (bytes == 0) break;
    }
    return 0;
}

ss_status ss_mpi_comm_create(ss_mpi_comm **out, MPI_Comm mpi_comm) {
    if (!out) return SS_ERR_NULL; /* no message helper outside the core */
    *out = NULL;
    int init = 0;
    MPI_Initialized(&init);
    if (!init) return SS_ERR_STATE;
    ss_mpi_comm *m = calloc(1, sizeof *m);
    if (!m) return SS_ERR_NOMEM;
    if (MPI_Comm_dup(mpi_comm, &m->comm) != MPI_SUCCESS) {
        free(m);
        return SS_ERR_STATE;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &m->c.rank);
    MPI_Comm_size(m->comm, &m->c.size);
    m->c.ctx = m;
    m->c.allreduce = mpi_allreduce;
    m->c.allgatherv = mpi_allgatherv;
    m->c.sendrecv = mpi_sendrecv;
    *out = m;
    return SS_OK;
}

const ss_comm *ss_mpi_comm_get(const ss_mpi_comm *mc) {
    return mc ? &mc->c : NULL;
}

void ss_mpi_comm_free(ss_mpi_comm *mc) {
    if (!mc) return;
    MPI_Comm_free(&mc->comm);
    free(mc);
}
