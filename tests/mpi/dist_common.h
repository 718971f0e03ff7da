/*
 * dist_common.h - shared checks of the distributed-loss tests: the same
 * cases run over any ss_comm (MPI ranks in test_dist_mpi.c, the local comm
 * in tests/test_dist.c). Each rank builds the whole global batch from a
 * seed, takes its own rows, and compares the ss_dist_* result with the
 * single-process loss on the global batch:
 *     loss equal, local gradient == world_size * global gradient rows.
 */
#ifndef SS_TEST_DIST_COMMON_H
#define SS_TEST_DIST_COMMON_H

#include "selfsup_comm.h"

/* Returns the number of failed checks on this rank (messages on stderr,
 * prefixed with the rank). nlocal(rank, size, variant) gives local N. */
int ss_test_dist_all(const ss_comm *comm, int verbose);

#endif
