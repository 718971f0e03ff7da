/*
 * selfsup_mpi.h - libselfsup_mpi: an ss_comm (selfsup_comm.h) over an MPI
 * communicator. Built when CMake finds MPI; link selfsup_mpi and MPI.
 *
 *     ss_mpi_comm *mc;
 *     ss_status st = ss_mpi_comm_create(&mc, MPI_COMM_WORLD);
 *     const ss_comm *comm = ss_mpi_comm_get(mc);
 *     st = ss_dist_ntxent_forward(&loss, NULL, cache, z, 2, N, D, NULL, comm);
 *     ...
 *     ss_mpi_comm_free(mc);   // before MPI_Finalize
 */
#ifndef SELFSUP_MPI_H
#define SELFSUP_MPI_H

#include <mpi.h>

#include "selfsup_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_mpi_comm ss_mpi_comm;

/* Duplicates mpi_comm (MPI_Comm_dup, collective over mpi_comm) so that the
 * library's messages never mix with the caller's, and sets the duplicate's
 * error handler to MPI_ERRORS_RETURN so that a transport error becomes
 * SS_ERR_STATE instead of an abort. MPI must be initialised.
 * Errors: SS_ERR_NULL, SS_ERR_STATE (MPI not initialised or dup failed),
 * SS_ERR_NOMEM. */
SS_API ss_status ss_mpi_comm_create(ss_mpi_comm **out, MPI_Comm mpi_comm);
/* The ss_comm to pass to the ss_dist_* functions; valid until free. */
SS_API const ss_comm *ss_mpi_comm_get(const ss_mpi_comm *mc);
/* Frees the duplicate communicator (collective). NULL is a no-op. */
SS_API void ss_mpi_comm_free(ss_mpi_comm *mc);

#ifdef __cplusplus
}
#endif

#endif
