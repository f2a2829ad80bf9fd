/* Data-parallel training on MPI (spec section 8, "Many machines"; docs/distributed.md): the
 * hooks the session, the training loop and the evaluation call.  runtime/dist.c implements
 * them with Open MPI when the `mpi` Meson option is on (CNN_HAVE_MPI); otherwise they are the
 * inline no-ops below and runtime/dist_none.c gives cnn.h's cnn_dist_* calls.
 *
 * The protocol, the same on every process:
 *  - a training session created while a communicator of P > 1 processes is set gets a bucket
 *    table (s->dist): the plan's final gradients (compiler/plan.h: contiguous, in the order
 *    the backward pass makes them) cut into buckets of about RT_DIST_BUCKET_BYTES;
 *  - its first step (and the first after cnn_train starts) checks that every process has the
 *    same plan, weights and optimiser state (a checksum) and broadcasts rank 0's;
 *  - during a step, after the step that makes a bucket's last gradient, that bucket's
 *    MPI_Iallreduce starts (in bucket order); MPI_Test runs between steps; before the first
 *    step that reads a final gradient (the optimiser's) every bucket is waited for, the sums
 *    are divided by P, and one small allreduce agrees on whether every process got there
 *    (and sums the losses): a process that failed earlier in the step still starts every
 *    bucket and joins that agreement, so nobody waits for it; on a failure no process updates.
 * MPI is called only from the thread that runs the plan (MPI_THREAD_FUNNELED). */
#ifndef CNN_RT_DIST_H
#define CNN_RT_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/cnn.h"

/* Bucket size: a few MB, so that the first buckets start early in the backward pass (a
 * network of less than 16 MB of gradients gets 4 buckets, none under 256 KiB). */
#define RT_DIST_BUCKET_BYTES ((size_t)4 << 20)

/* What a data-parallel session measured (bench/bench_dist.c). */
typedef struct rt_dist_stats {
    int64_t steps;
    int nbuckets;
    size_t grad_bytes;      /* bytes allreduced per step */
    double wait_seconds;    /* spent waiting for the buckets before the update */
    double agree_seconds;   /* the per-step agreement allreduce */
} rt_dist_stats;

#if CNN_HAVE_MPI

bool rt_dist_active(void);
int rt_dist_rank(void);
int rt_dist_size(void);
/* Bucket size (0: the default above) and overlap for sessions created from now on (overlap
 * false: every bucket starts at the wait, after the whole backward pass). */
void rt_dist_set_buckets(size_t bytes, bool overlap);

/* session.c */
cnn_status rt_dist_session_init(cnn_session *s);
void rt_dist_session_free(cnn_session *s);
cnn_status rt_dist_step_begin(cnn_session *s);
cnn_status rt_dist_before_step(cnn_session *s, int step);
void rt_dist_after_step(cnn_session *s, int step);
cnn_status rt_dist_step_end(cnn_session *s, cnn_status st, float *loss);
void rt_dist_session_stats(const cnn_session *s, rt_dist_stats *out);
/* A step this process cannot take (its batch could not be fetched: st): joins the step's
 * collectives as a failed step, so the others stop too instead of waiting.  Returns st. */
cnn_status rt_dist_fail_step(cnn_session *s, cnn_status st);

/* train.c: agrees on the setup (status, dataset sizes, batch, epochs...) and makes the next step
 * check and broadcast the state again (what a resume loaded). */
cnn_status rt_dist_train_begin(cnn_session *s, cnn_status st, int64_t ntrain, int64_t ntest, int64_t epochs,
                               int64_t max_steps, bool shuffle, uint64_t seed);
/* DistributedSampler: out[i] = order[i * P + rank] for the first (n / (P * batch)) * batch
 * positions; returns that count (the same on every process). */
int64_t rt_dist_shard(const int64_t *order, int64_t n, int64_t batch, int64_t *out);
/* Sums *v over the processes (the step's correct predictions); *stop becomes true on every
 * process when it is on one.  Collective. */
cnn_status rt_dist_sum_and_stop(cnn_session *s, int64_t *v, bool *stop);
/* Copies rank 0's running statistics (non-trainable tensors) to every process.  Collective. */
cnn_status rt_dist_sync_state(cnn_weights *w, char *err);

/* data.c: this process's share [*first, *end) of n evaluation examples, and the sums of the
 * shares with the agreement on the status.  Collective. */
void rt_dist_eval_range(int64_t n, int64_t *first, int64_t *end);
cnn_status rt_dist_eval_reduce(cnn_session *s, cnn_status st, double *loss, int64_t *correct);

#else

static inline bool rt_dist_active(void) { return false; }
static inline int rt_dist_rank(void) { return 0; }
static inline int rt_dist_size(void) { return 1; }
static inline cnn_status rt_dist_session_init(cnn_session *s) { (void)s; return CNN_OK; }
static inline void rt_dist_session_free(cnn_session *s) { (void)s; }
static inline cnn_status rt_dist_step_begin(cnn_session *s) { (void)s; return CNN_OK; }
static inline cnn_status rt_dist_before_step(cnn_session *s, int step) { (void)s, (void)step; return CNN_OK; }
static inline void rt_dist_after_step(cnn_session *s, int step) { (void)s, (void)step; }
static inline cnn_status rt_dist_step_end(cnn_session *s, cnn_status st, float *loss)
{
    (void)s, (void)loss;
    return st;
}
static inline cnn_status rt_dist_fail_step(cnn_session *s, cnn_status st)
{
    (void)s;
    return st;
}
static inline cnn_status rt_dist_train_begin(cnn_session *s, cnn_status st, int64_t ntrain, int64_t ntest,
                                             int64_t epochs, int64_t max_steps, bool shuffle, uint64_t seed)
{
    (void)s, (void)ntrain, (void)ntest, (void)epochs, (void)max_steps, (void)shuffle, (void)seed;
    return st;
}
static inline int64_t rt_dist_shard(const int64_t *order, int64_t n, int64_t batch, int64_t *out)
{
    (void)order, (void)out;
    return n / batch * batch;
}
static inline cnn_status rt_dist_sum_and_stop(cnn_session *s, int64_t *v, bool *stop)
{
    (void)s, (void)v, (void)stop;
    return CNN_OK;
}
static inline cnn_status rt_dist_sync_state(cnn_weights *w, char *err)
{
    (void)w, (void)err;
    return CNN_OK;
}
static inline void rt_dist_eval_range(int64_t n, int64_t *first, int64_t *end)
{
    *first = 0;
    *end = n;
}
static inline cnn_status rt_dist_eval_reduce(cnn_session *s, cnn_status st, double *loss, int64_t *correct)
{
    (void)s, (void)loss, (void)correct;
    return st;
}

#endif
#endif
