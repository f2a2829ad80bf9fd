/* cnnc under mpirun (spec section 8, "Many machines"): train and eval start data-parallel
 * mode, agree on their setup before the collective work starts, and leave the printing and the
 * files to rank 0.  A process that fails prints its own error; the others exit with the same
 * status, quietly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnnc.h"

static bool setup_checked;

static cnn_status status_of_exit(int rc)
{
    switch (rc) {
    case EXIT_OK: return CNN_OK;
    case EXIT_INPUT: return CNN_ERR_INPUT;
    case EXIT_USAGE: return CNN_ERR_USAGE;
    default: return CNN_ERR_INTERNAL;
    }
}

int dist_begin(const args **a, args *local)
{
    char err[1024];
    cnn_status st = cnn_dist_init(err, sizeof err);
    if (st != CNN_OK) {
        const char *rank = getenv("OMPI_COMM_WORLD_RANK"); /* said once, not by every copy */
        if (!rank || strcmp(rank, "0") == 0)
            fprintf(stderr, "%s: error: %s\n", prog, err);
        cnn_dist_finalize();
        return exit_for(st);
    }
    setup_checked = false;
    if (cnn_dist_rank() > 0) {
        /* only rank 0 prints, logs and writes files */
        *local = **a;
        local->save = NULL;
        local->log = NULL;
        local->checkpoint = NULL; /* every process may --resume; rank 0 alone writes checkpoints */
        local->quiet = true;
        *a = local;
        fflush(stdout);
        if (!freopen("/dev/null", "w", stdout))
            return EXIT_INTERNAL;
    }
    return EXIT_OK;
}

int dist_check(int rc)
{
    setup_checked = true;
    cnn_status st = cnn_dist_check(status_of_exit(rc));
    return rc ? rc : exit_for(st);
}

int dist_end(int rc)
{
    if (!setup_checked && cnn_dist_size() > 1) /* failed before the check: the others wait in it */
        rc = dist_check(rc);
    cnn_dist_finalize();
    return rc;
}
