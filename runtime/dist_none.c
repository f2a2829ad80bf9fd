/* cnn.h's data-parallel calls in a build without MPI (the `mpi` Meson option off): one
 * process, and a clear refusal to run as P independent copies under mpirun. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/cnn.h"

bool cnn_dist_available(void) { return false; }
int cnn_dist_rank(void) { return 0; }
int cnn_dist_size(void) { return 1; }
bool cnn_dist_failed_elsewhere(void) { return false; }
cnn_status cnn_dist_check(cnn_status local) { return local; }
void cnn_dist_finalize(void) {}

cnn_status cnn_dist_init(char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    /* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; other launchers PMI_SIZE or PMIX_SIZE... */
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atol(v) > 1) {
            snprintf(err, errlen,
                     "started by mpirun as one of %ld processes (%s=%s), but this build has no MPI support: each "
                     "process would train alone and write the same files; rebuild with Open MPI "
                     "(libopenmpi-dev, meson setup -Dmpi=enabled) or run a single process",
                     atol(v), names[i], v);
            return CNN_ERR_USAGE;
        }
    }
    return CNN_OK;
}

cnn_status cnn_dist_set_comm(const void *mpi_comm, char *err, size_t errlen)
{
    if (!mpi_comm)
        return CNN_OK;
    snprintf(err, errlen, "cnn_dist_set_comm: this build of the library has no MPI support (the mpi Meson option)");
    return CNN_ERR_USAGE;
}
