/*
 * comm_internal.h - helpers of the distributed losses (src/dist_*.c) over
 * an ss_comm: status agreement and checked collectives. Not installed.
 */
#ifndef SS_COMM_INTERNAL_H
#define SS_COMM_INTERNAL_H

#include "internal.h"
#include "selfsup_comm.h"

/* Agreement of one collective call. Every rank passes its local status st
 * (message already set when failing), nv option values that must be equal
 * on all ranks (names[k] names vals[k]) and its local row count n. One
 * all-reduce (max) of (status, failing rank, vals, -vals, counts). On
 * success: counts[r] = rank r's n (counts: comm->size), *offset = sum of
 * counts below this rank, *total = sum of all. Returns SS_OK on every rank,
 * or an error on every rank (see selfsup_comm.h). */
ss_status ss__dist_agree(const ss_comm *c, const char *fn, ss_status st,
                         const double *vals, const char *const *names, int nv,
                         int64_t n, int64_t *counts, int64_t *offset,
                         int64_t *total);

/* ss__dist_agree when only the total of n over the ranks is needed (the
 * per-rank counts are allocated and freed inside). */
ss_status ss__dist_agree_total(const ss_comm *c, const char *fn, ss_status st,
                               const double *vals, const char *const *names,
                               int nv, int64_t n, int64_t *total);

/* After an agreement (st: its result, the same on every rank): SS_ERR_SIZE
 * "the global batch must have >= min_total <what>" when Ntot < min_total,
 * so that every rank gives the same verdict; else st. */
ss_status ss__dist_min_total(const char *fn, ss_status st, int64_t Ntot,
                             int64_t min_total, const char *what);

/* After an agreement: the global batch size a cache was written for
 * (cached) must be this call's Ntot (SS_ERR_STATE otherwise). */
ss_status ss__dist_check_ntot(const char *fn, int64_t cached, int64_t Ntot);

/* Agrees on a status only (e.g. after allocations). */
ss_status ss__dist_status(const ss_comm *c, const char *fn, ss_status st);

/* Checked collectives: SS_ERR_STATE naming fn on a callback failure. */
ss_status ss__dist_allreduce(const ss_comm *c, const char *fn, void *buf,
                             int64_t count, ss_comm_dtype dt, ss_comm_op op);
/* Gathers `per` elements of `elem` bytes per local row: rank r sends
 * counts[r] * per elements. bytes: (size) scratch of int64_t. */
ss_status ss__dist_allgather_rows(const ss_comm *c, const char *fn,
                                  const void *send, void *recv,
                                  const int64_t *counts, int64_t per,
                                  size_t elem, int64_t *bytes);

/* Checked ring step: sends `bytes` bytes to rank dst while receiving as
 * many from rank src. SS_ERR_NULL when comm->sendrecv is NULL (callers
 * check that before their agreement, so that every rank fails alike),
 * SS_ERR_STATE naming fn on a callback failure. */
ss_status ss__dist_sendrecv(const ss_comm *c, const char *fn, const void *send,
                            int dst, void *recv, int src, int64_t bytes);

/* SS_ERR_NULL naming fn when c->sendrecv is NULL (the ring paths need it). */
ss_status ss__dist_check_ring(const ss_comm *c, const char *fn);

/* One step of a ring pass over the blocks of every rank: rank q's block is
 * on rank (q + s) mod W at step s. blk: the block held now; Kq: counts[q];
 * s: the step (0: this rank's own block). Returns SS_OK or an error. */
typedef ss_status (*ss__ring_step)(void *ctx, int s, int q, int64_t Kq,
                                   void *blk);

/* Runs step(ctx, s, ...) for s = 0 .. W-1 while the blocks travel to rank
 * r + 1: *cur holds this rank's block on entry (acc_bytes of accumulator,
 * then the payload; `bytes` in all, the same on every rank, padded to the
 * largest block). After the last step the accumulator travels once more
 * (when acc_bytes > 0), so that on return *cur holds this rank's own
 * accumulator, summed over every rank's step (Inf-CL style); *cur and *nxt
 * may be swapped. A failing step skips the later steps but the ring runs
 * to the end (no rank is left waiting); its status is returned after the
 * ring, for the caller's agreement. counts: (W) rows per rank. */
ss_status ss__dist_ring(const ss_comm *c, const char *fn, void **cur,
                        void **nxt, int64_t acc_bytes, int64_t bytes,
                        const int64_t *counts, ss__ring_step step, void *ctx);

#endif
