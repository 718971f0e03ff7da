/*
 * thread_comm.h - "ranks" that are threads of one process, joined by a
 * barrier-based ss_comm (selfsup_comm.h), for tests of data-parallel code
 * without MPI. Collectives reduce in rank order, so results are
 * deterministic and identical on every rank. sendrecv serves the ring:
 * every rank calls it in the same step.
 */
#ifndef SS_THREAD_COMM_H
#define SS_THREAD_COMM_H

#include "selfsup_comm.h"

#define SS_TC_MAX_RANKS 8

/* One rank's body: returns 0 when it passed (any int is summed). */
typedef int (*ss_tc_body)(const ss_comm *comm, void *arg);

/* Runs body on size thread ranks (1 <= size <= SS_TC_MAX_RANKS), rank r
 * with args[r]; returns the sum of the bodies' return values (-1 for a
 * bad size; aborts when a thread cannot be started). */
int ss_tc_run(int size, ss_tc_body body, void *const *args);

#endif
