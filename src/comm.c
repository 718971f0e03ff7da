/*
 * comm.c - the single-process ss_comm and the agreement / collective
 * helpers behind the distributed losses (comm_internal.h).
 */
#include "comm_internal.h"

#include <string.h>

/* ---- the local comm: rank 0 of 1, collectives are the identity ------------ */

static int local_allreduce(void *ctx, void *buf, int64_t count,
                           ss_comm_dtype dt, ss_comm_op op) {
    (void)ctx, (void)buf, (void)count, (void)dt, (void)op;
    return 0;
}

static int local_allgatherv(void *ctx, const void *send, void *recv,
                            const int64_t *counts) {
    (void)ctx;
    if (counts[0] > 0 && send != recv) memmove(recv, send, (size_t)counts[0]);
    return 0;
}

static int local_sendrecv(void *ctx, const void *send, int dst, void *recv,
                          int src, int64_t bytes) {
    (void)ctx;
    if (dst != 0 || src != 0) return 1;
    if (bytes > 0 && send != recv) memmove(recv, send, (size_t)bytes);
    return 0;
}

ss_comm ss_comm_local(void) {
    ss_comm c = {NULL, 0, 1, local_allreduce, local_allgatherv, local_sendrecv};
    return c;
}

ss_status ss_comm_check(const ss_comm *c) {
    static const char fn[] = "ss_comm_check";
    SS_TRY(ss__check_ptr(fn, "comm", c));
    if (!c->allreduce || !c->allgatherv)
        return ss__fail(SS_ERR_NULL, fn, "comm->%s is NULL",
                        c->allreduce ? "allgatherv" : "allreduce");
    if (c->size < 1 || c->rank < 0 || c->rank >= c->size)
        return ss__fail(SS_ERR_PARAM, fn,
                        "comm rank must be in [0, size) and size >= 1, got "
                        "rank %d, size %d", c->rank, c->size);
    return SS_OK;
}

/* ---- checked collectives ---------------------------------------------------- */

ss_status ss__dist_allreduce(const ss_comm *c, const char *fn, void *buf,
                             int64_t count, ss_comm_dtype dt, ss_comm_op op) {
    int rc = c->allreduce(c->ctx, buf, count, dt, op);
    if (rc != 0)
        return ss__fail(SS_ERR_STATE, fn,
                        "communicator all-reduce of %lld values failed "
                        "(code %d) on rank %d", (long long)count, rc, c->rank);
    return SS_OK;
}

ss_status ss__dist_allgather_rows(const ss_comm *c, const char *fn,
                                  const void *send, void *recv,
                                  const int64_t *counts, int64_t per,
                                  size_t elem, int64_t *bytes) {
    for (int r = 0; r < c->size; r++)
        bytes[r] = counts[r] * per * (int64_t)elem;
    int rc = c->allgatherv(c->ctx, send, recv, bytes);
    if (rc != 0)
        return ss__fail(SS_ERR_STATE, fn,
                        "communicator all-gather failed (code %d) on rank %d",
                        rc, c->rank);
    return SS_OK;
}

/* ---- agreement -------------------------------------------------------------- */

/* After the max-reduction: the agreed error, or SS_OK. buf[0] status,
 * buf[1] 1 + the highest failing rank. */
static ss_status agreed_status(const char *fn, ss_status st,
                               const double *buf) {
    if (buf[0] == 0.0) return SS_OK;
    if (st != SS_OK) return st; /* this rank failed: keep its message */
    ss_status any = (ss_status)(int)buf[0];
    return ss__fail(any, fn, "rank %d failed with %s", (int)buf[1] - 1,
                    ss_status_name(any));
}

ss_status ss__dist_status(const ss_comm *c, const char *fn, ss_status st) {
    double buf[2] = {(double)st, st != SS_OK ? c->rank + 1.0 : 0.0};
    SS_TRY(ss__dist_allreduce(c, fn, buf, 2, SS_COMM_DOUBLE, SS_COMM_MAX));
    return agreed_status(fn, st, buf);
}

ss_status ss__dist_agree(const ss_comm *c, const char *fn, ss_status st,
                         const double *vals, const char *const *names, int nv,
                         int64_t n, int64_t *counts, int64_t *offset,
                         int64_t *total) {
    int W = c->size;
    int64_t len = 2 + 2 * (int64_t)nv + W;
    double *buf = ss__malloc((size_t)len * sizeof(double));
    if (!buf) { /* cannot agree without the buffer: fall back to status */
        if (st == SS_OK)
            st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %lld doubles",
                          (long long)len);
        ss_status a = ss__dist_status(c, fn, st);
        return a != SS_OK ? a : st;
    }
    memset(buf, 0, (size_t)len * sizeof(double));
    buf[0] = (double)st;
    buf[1] = st != SS_OK ? c->rank + 1.0 : 0.0;
    for (int k = 0; k < nv; k++) {
        buf[2 + k] = st == SS_OK ? vals[k] : 0.0;
        buf[2 + nv + k] = st == SS_OK ? -vals[k] : 0.0;
    }
    buf[2 + 2 * nv + c->rank] = st == SS_OK ? (double)n : 0.0;
    ss_status r = ss__dist_allreduce(c, fn, buf, len, SS_COMM_DOUBLE,
                                     SS_COMM_MAX);
    if (r == SS_OK) r = agreed_status(fn, st, buf);
    for (int k = 0; r == SS_OK && k < nv; k++)
        if (buf[2 + k] != -buf[2 + nv + k]) /* identical on every rank */
            r = ss__fail(SS_ERR_PARAM, fn,
                         "%s must be equal on all ranks, got %g here and "
                         "values in [%g, %g] over the ranks", names[k],
                         vals[k], -buf[2 + nv + k], buf[2 + k]);
    if (r == SS_OK) {
        int64_t sum = 0;
        for (int q = 0; q < W; q++) {
            counts[q] = (int64_t)buf[2 + 2 * nv + q];
            if (q < c->rank) *offset = sum + counts[q];
            sum += counts[q];
        }
        if (c->rank == 0) *offset = 0;
        *total = sum;
    }
    ss__free(buf);
    return r;
}

ss_status ss__dist_agree_total(const ss_comm *c, const char *fn, ss_status st,
                               const double *vals, const char *const *names,
                               int nv, int64_t n, int64_t *total) {
    int64_t *counts = ss__malloc((size_t)c->size * sizeof(int64_t)), off = 0;
    int64_t one[1];
    if (st == SS_OK && !counts)
        st = ss__fail(SS_ERR_NOMEM, fn, "no memory for %d counts", c->size);
    st = ss__dist_agree(c, fn, st, vals, names, nv, n, counts ? counts : one,
                        &off, total);
    ss__free(counts);
    return st;
}

ss_status ss__dist_min_total(const char *fn, ss_status st, int64_t Ntot,
                             int64_t min_total, const char *what) {
    if (st == SS_OK && Ntot < min_total)
        st = ss__fail(SS_ERR_SIZE, fn, "the global batch must have >= %lld "
                      "%s, got %lld", (long long)min_total, what,
                      (long long)Ntot);
    return st;
}

ss_status ss__dist_check_ntot(const char *fn, int64_t cached, int64_t Ntot) {
    if (cached != Ntot)
        return ss__fail(SS_ERR_STATE, fn, "cache was written for a global "
                        "batch of %lld rows, now %lld", (long long)cached,
                        (long long)Ntot);
    return SS_OK;
}

/* ---- the ring (sendrecv) ---------------------------------------------------- */

ss_status ss__dist_check_ring(const ss_comm *c, const char *fn) {
    if (!c->sendrecv)
        return ss__fail(SS_ERR_NULL, fn,
                        "comm->sendrecv is NULL: the ring path needs it (use "
                        "the all-gather path, or a comm with sendrecv)");
    return SS_OK;
}

ss_status ss__dist_sendrecv(const ss_comm *c, const char *fn, const void *send,
                            int dst, void *recv, int src, int64_t bytes) {
    SS_TRY(ss__dist_check_ring(c, fn));
    int rc = c->sendrecv(c->ctx, send, dst, recv, src, bytes);
    if (rc != 0)
        return ss__fail(SS_ERR_STATE, fn,
                        "communicator sendrecv of %lld bytes failed (code %d) "
                        "on rank %d", (long long)bytes, rc, c->rank);
    return SS_OK;
}

ss_status ss__dist_ring(const ss_comm *c, const char *fn, void **cur,
                        void **nxt, int64_t acc_bytes, int64_t bytes,
                        const int64_t *counts, ss__ring_step step, void *ctx) {
    int W = c->size, r = c->rank, dst = (r + 1) % W, src = (r + W - 1) % W;
    ss_status st = SS_OK;
    for (int s = 0; s < W; s++) {
        int q = (r + W - s) % W; /* the block's home rank */
        if (st == SS_OK) st = step(ctx, s, q, counts[q], *cur);
        int64_t n = s < W - 1 ? bytes : acc_bytes; /* last: home again */
        if (n == 0) continue;
        SS_TRY(ss__dist_sendrecv(c, fn, *cur, dst, *nxt, src, n));
        void *t = *cur;
        *cur = *nxt, *nxt = t;
    }
    return st;
}
