/* Data-parallel scaling (docs/distributed.md): times training steps of a network on seeded
 * random inputs through the library, as one process (started without mpirun) or as P
 * processes (mpirun -np P), at the same per-process batch.  Prints per step: the median time
 * with min and max, images/s over all processes, the bytes allreduced, and the time spent
 * waiting for the gradients' allreduce before the update (and in the per-step agreement).
 *
 *   bench_dist NET.cnn [--batch N] [--steps N] [--warmup N] [--threads N] [--no-overlap]
 *              [--bucket-mb X]
 *   mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 bench_dist NET.cnn ...
 *
 *   mpirun ... -np 2 bench_dist --allreduce-mb X   (the allreduce alone: X MB of floats, median of 20)
 *
 * --no-overlap starts every bucket after the whole backward pass (no overlap with it);
 * --bucket-mb 0 (the default) is the library's bucket size. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bench/bench_util.h"
#include "runtime/dist.h"
#include "runtime/rt.h"

/* The time of one blocking MPI_Allreduce of mb MB of floats on MPI_COMM_WORLD. */
static int allreduce_only(double mb)
{
    int n = (int)(mb * 1048576.0 / sizeof(float)), rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *x = calloc((size_t)n + 1, sizeof(float));
    double t[20];
    for (int i = -2; i < 20; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (i >= 0)
            t[i] = now() - t0;
    }
    qsort(t, 20, sizeof(double), cmp_double);
    if (rank == 0)
        printf("allreduce of %.2f MB over %d processes: median %.2f ms (min %.2f, max %.2f), %.2f GB/s of bus "
               "bandwidth (2(P-1)/P x bytes / time)\n",
               mb, size, t[10] * 1e3, t[0] * 1e3, t[19] * 1e3,
               2.0 * (size - 1) / size * (double)n * sizeof(float) / t[10] / 1e9);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--allreduce-mb")) {
        char err[256];
        if (cnn_dist_init(err, sizeof err) != CNN_OK || cnn_dist_size() < 2) {
            fprintf(stderr, "bench_dist --allreduce-mb: run under mpirun with 2 or more processes\n");
            return 2;
        }
        int rc = allreduce_only(atof(argv[2]));
        cnn_dist_finalize();
        return rc;
    }
    const char *net = NULL;
    int64_t batch = 32;
    int steps = 10, warmup = 2, threads = 1;
    bool overlap = true;
    double bucket_mb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bucket-mb") && i + 1 < argc)
            bucket_mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-overlap"))
            overlap = false;
        else if (argv[i][0] != '-' && !net)
            net = argv[i];
        else {
            fprintf(stderr, "usage: bench_dist NET.cnn [--batch N] [--steps N] [--warmup N] [--threads N] "
                            "[--no-overlap] [--bucket-mb X]\n");
            return 2;
        }
    }
    if (!net || batch < 1 || steps < 1 || warmup < 0 || threads < 1 || !(bucket_mb >= 0)) {
        fprintf(stderr, "usage: bench_dist NET.cnn [--batch N] [--steps N] [--warmup N] [--threads N] [--no-overlap] "
                        "[--bucket-mb X]\n");
        return 2;
    }
    char err[1024];
    if (cnn_dist_init(err, sizeof err) != CNN_OK) {
        fprintf(stderr, "bench_dist: %s\n", err);
        return 2;
    }
    rt_dist_set_buckets((size_t)(bucket_mb * 1048576.0), overlap);
    int rank = cnn_dist_rank(), world = cnn_dist_size();
    cnn_model *m;
    if (cnn_model_load(&m, net, NULL) != CNN_OK) {
        fprintf(stderr, "%s", cnn_model_errmsg(m));
        return 1;
    }
    cnn_weights *w;
    cnn_session *s;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = threads;
    if (cnn_weights_create(&w, m, 1) != CNN_OK ||
        cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, NULL) != CNN_OK) {
        fprintf(stderr, "bench_dist: %s\n", cnn_session_errmsg(s));
        return 1;
    }
    int64_t dims[4], per = 1, classes = 1;
    int r = cnn_model_input_shape(m, 0, dims);
    for (int k = 0; k < r; k++)
        per *= dims[k];
    r = cnn_model_output_shape(m, 0, dims);
    for (int k = 0; k < r; k++)
        classes *= dims[k];
    float *x = cnn_session_input(s, 0), *labels = malloc(sizeof(float) * (size_t)batch);
    double *t = malloc(sizeof(double) * (size_t)steps);
    uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1);
    rt_dist_stats base;
    memset(&base, 0, sizeof base);
    for (int i = 0; i < warmup + steps; i++) {
        for (int64_t k = 0; k < batch * per; k++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            x[k] = (float)(seed >> 40) / 16777216.0f;
        }
        for (int64_t k = 0; k < batch; k++)
            labels[k] = (float)((k + i + rank) % classes);
        if (i == warmup) /* the statistics count the timed steps only */
            rt_dist_session_stats(s, &base);
        double t0 = now();
        float loss;
        if (cnn_session_train_step(s, labels, true, &loss, NULL) != CNN_OK) {
            fprintf(stderr, "bench_dist: rank %d: %s\n", rank, cnn_session_errmsg(s));
            return 1;
        }
        if (i >= warmup)
            t[i - warmup] = now() - t0;
    }
    rt_dist_stats st;
    rt_dist_session_stats(s, &st);
    st.steps -= base.steps;
    st.wait_seconds -= base.wait_seconds;
    st.agree_seconds -= base.agree_seconds;
    double sorted[steps];
    memcpy(sorted, t, sizeof(double) * (size_t)steps);
    qsort(sorted, (size_t)steps, sizeof(double), cmp_double);
    double med = sorted[steps / 2], total = 0;
    for (int i = 0; i < steps; i++)
        total += t[i];
    if (rank == 0) {
        int64_t all = st.steps ? st.steps : 1;
        printf("%s batch %" PRId64 " x %d process%s, %d thread%s, %s: step median %.1f ms (min %.1f, max %.1f), "
               "%.1f images/s",
               net, batch, world, world == 1 ? "" : "es", threads, threads == 1 ? "" : "s",
               world == 1 ? "no MPI" : overlap ? "overlap" : "no overlap", med * 1e3, sorted[0] * 1e3,
               sorted[steps - 1] * 1e3, (double)(batch * world) / med);
        if (world > 1)
            printf("; %.2f MB allreduced per step in %d bucket%s; waiting %.1f ms per step (%.0f%%), agreement %.2f ms",
                   (double)st.grad_bytes / 1048576.0, st.nbuckets, st.nbuckets == 1 ? "" : "s",
                   st.wait_seconds / (double)all * 1e3, 100.0 * st.wait_seconds / (double)all / (total / steps),
                   st.agree_seconds / (double)all * 1e3);
        printf("\n");
    }
    free(t);
    free(labels);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    cnn_dist_finalize();
    return 0;
}
