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

#endif
