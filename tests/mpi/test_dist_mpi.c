/*
 * test_dist_mpi.c - the distributed losses over MPI. Run as
 *     mpirun --oversubscribe --allow-run-as-root -np K test_dist_mpi
 * Exit status 0 when every check passed on every rank.
 */
#include "dist_common.h"
#include "selfsup_mpi.h"

#include <stdio.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    ss_set_num_threads(1); /* ranks share the cores */
    ss_mpi_comm *mc = NULL;
    int fails = 0;
    if (ss_mpi_comm_create(&mc, MPI_COMM_WORLD) != SS_OK) {
        fprintf(stderr, "ss_mpi_comm_create failed\n");
        fails = 1;
    } else {
        fails = ss_test_dist_all(ss_mpi_comm_get(mc), 1);
    }
    int total = 0;
    MPI_Allreduce(&fails, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    ss_mpi_comm_free(mc);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
