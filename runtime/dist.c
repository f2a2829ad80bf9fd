/* Data-parallel training on Open MPI (runtime/dist.h describes the protocol; cnn.h the
 * public calls).  Compiled only with the `mpi` Meson option.
 *
 * One process-wide communicator (a duplicate of MPI_COMM_WORLD or of the caller's), with
 * MPI_ERRORS_RETURN so that an MPI failure becomes an error status instead of an abort.  Every
 * collective below is called in the same order on every process: the training loop and the
 * session take the same branches everywhere, because every decision that could differ (a
 * failure, a stop, the sizes of the data) is itself agreed on by a collective first. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/mem.h"
#include "runtime/dist.h"
#include "runtime/rt.h"

static MPI_Comm dist_comm = MPI_COMM_NULL;
static int dist_rank_ = 0, dist_size_ = 1;
static bool dist_inited_mpi;      /* cnn_dist_init called MPI_Init_thread */
static bool dist_failed_elsewhere_;
static size_t dist_bucket_bytes = 0; /* 0: bucket_cap() */
static bool dist_overlap = true;

typedef struct dist_bucket {
    size_t offset, bytes;  /* in the arena */
    int last_step;         /* the step that makes its last gradient */
    MPI_Request req;
    bool started, done;
} dist_bucket;

struct rt_dist_session {
    dist_bucket *b;
    int nbuckets;
    int next;              /* the next bucket to start */
    int wait_step;         /* the first step that reads a final gradient */
    bool in_step;          /* between step_begin and step_end */
    bool agreed;           /* this step's agreement is done */
    bool synced;           /* checked and broadcast since creation / cnn_train's start */
    int mpi_err;           /* the first failure of a bucket's MPI call in this step, or MPI_SUCCESS */
    double loss;           /* the mean loss over the processes, from the agreement */
    rt_dist_stats stats;
    char err[256];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static cnn_status mpi_fail(char *err, int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", rc);
    return rt_fail(err, CNN_ERR_INTERNAL, "MPI %s failed: %s", what, msg);
}

bool rt_dist_active(void) { return dist_size_ > 1; }
int rt_dist_rank(void) { return dist_rank_; }
int rt_dist_size(void) { return dist_size_; }

void rt_dist_set_buckets(size_t bytes, bool overlap)
{
    dist_bucket_bytes = bytes;
    dist_overlap = overlap;
}

/* The bucket size: RT_DIST_BUCKET_BYTES, but at least 4 buckets for a small network (and none
 * under 256 KiB), so that its first gradients too start moving during the backward pass. */
static size_t bucket_cap(size_t grad_bytes)
{
    if (dist_bucket_bytes)
        return dist_bucket_bytes;
    size_t cap = grad_bytes / 4;
    if (cap > RT_DIST_BUCKET_BYTES)
        cap = RT_DIST_BUCKET_BYTES;
    return cap < ((size_t)256 << 10) ? (size_t)256 << 10 : cap;
}

/* ---- the public calls ---- */

bool cnn_dist_available(void) { return true; }
int cnn_dist_rank(void) { return dist_rank_; }
int cnn_dist_size(void) { return dist_size_; }
bool cnn_dist_failed_elsewhere(void) { return dist_failed_elsewhere_; }

static cnn_status use_comm(MPI_Comm c, char *err, size_t errlen)
{
    MPI_Comm dup;
    int rc = MPI_Comm_dup(c, &dup);
    if (rc != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Comm_dup failed (error %d)", rc);
        return CNN_ERR_INTERNAL;
    }
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    dist_comm = dup;
    MPI_Comm_rank(dup, &dist_rank_);
    MPI_Comm_size(dup, &dist_size_);
    return CNN_OK;
}

static void drop_comm(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (dist_comm != MPI_COMM_NULL && !fin)
        MPI_Comm_free(&dist_comm);
    dist_comm = MPI_COMM_NULL;
    dist_rank_ = 0;
    dist_size_ = 1;
}

cnn_status cnn_dist_init(char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (dist_comm != MPI_COMM_NULL)
        return CNN_OK;
    if (!getenv("OMPI_COMM_WORLD_SIZE"))
        return CNN_OK; /* not started by mpirun: one process */
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        /* a process waiting for the others yields its core instead of spinning: on a machine
         * with no core to spare (more processes and threads than cores) spinning takes the
         * time the process being waited for needs (docs/distributed.md); the environment may
         * say otherwise */
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            snprintf(err, errlen, "MPI_Init_thread failed");
            return CNN_ERR_INTERNAL;
        }
        dist_inited_mpi = true;
        if (provided < MPI_THREAD_FUNNELED) {
            snprintf(err, errlen, "this MPI gives no MPI_THREAD_FUNNELED support (provided level %d)", provided);
            return CNN_ERR_INTERNAL;
        }
    } else {
        MPI_Query_thread(&provided);
        if (provided < MPI_THREAD_FUNNELED) {
            snprintf(err, errlen, "MPI was initialised below MPI_THREAD_FUNNELED (level %d)", provided);
            return CNN_ERR_USAGE;
        }
    }
    return use_comm(MPI_COMM_WORLD, err, errlen);
}

cnn_status cnn_dist_set_comm(const void *mpi_comm, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    drop_comm();
    if (!mpi_comm)
        return CNN_OK;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        snprintf(err, errlen, "cnn_dist_set_comm: MPI is not initialised");
        return CNN_ERR_USAGE;
    }
    MPI_Query_thread(&provided);
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, errlen, "cnn_dist_set_comm: MPI was initialised below MPI_THREAD_FUNNELED (level %d)", provided);
        return CNN_ERR_USAGE;
    }
    return use_comm(*(const MPI_Comm *)mpi_comm, err, errlen);
}

void cnn_dist_finalize(void)
{
    drop_comm();
    int fin = 0;
    MPI_Finalized(&fin);
    if (dist_inited_mpi && !fin)
        MPI_Finalize();
    dist_inited_mpi = false;
}

/* Agreement on a status: every process passes its own; returns the largest failing status on
 * every process (CNN_OK when none failed) and sets dist_failed_elsewhere_ on every process but
 * the lowest failing rank (the one that reports).  *first_failed: that rank. */
static cnn_status agree(cnn_status local, double *extra, int nextra, char *err, int *first_failed)
{
    /* [0..NS): how many processes failed with each status; then the extras, summed */
    enum { NS = 8 };
    double buf[NS + 8];
    memset(buf, 0, sizeof buf);
    if (local != CNN_OK)
        buf[(int)local >= 0 && (int)local < NS ? (int)local : CNN_ERR_INTERNAL] = 1.0;
    for (int i = 0; i < nextra && i < 8; i++)
        buf[NS + i] = extra[i];
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, NS + nextra, MPI_DOUBLE, MPI_SUM, dist_comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Allreduce");
    for (int i = 0; i < nextra; i++)
        extra[i] = buf[NS + i];
    cnn_status worst = CNN_OK;
    for (int k = 1; k < NS; k++)
        if (buf[k] > 0)
            worst = (cnn_status)k;
    int lowest = 0;
    if (worst != CNN_OK) { /* every process knows worst: all or none come here */
        int me = local != CNN_OK ? dist_rank_ : dist_size_;
        if (MPI_Allreduce(&me, &lowest, 1, MPI_INT, MPI_MIN, dist_comm) != MPI_SUCCESS)
            lowest = 0;
    }
    if (first_failed)
        *first_failed = lowest;
    /* the lowest failing rank reports; when several failed (the same bad setting everywhere),
     * the others stay quiet too, so that the error is printed once */
    dist_failed_elsewhere_ = worst != CNN_OK && lowest != dist_rank_;
    return worst;
}

cnn_status cnn_dist_check(cnn_status local)
{
    if (!rt_dist_active())
        return local;
    char err[RT_ERR_MAX];
    return agree(local, NULL, 0, err, NULL);
}

/* ---- the session's replica state ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s, strlen(s) + 1); }

static uint64_t fnv_i64(uint64_t h, int64_t v) { return fnv(h, &v, sizeof v); }

static uint64_t fnv_f64(uint64_t h, double v) { return fnv(h, &v, sizeof v); }

/* The plan's shape: every step's op, name and tensors, the batch and the training settings. */
static uint64_t plan_hash(const cnn_session *s)
{
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv_i64(h, p->batch);
    h = fnv_i64(h, p->nsteps);
    for (int st = 0; st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        h = fnv_i64(h, nd->op);
        h = fnv_str(h, nd->name);
        for (int k = 0; k < nd->nin + nd->nout; k++) {
            const ir_value *v = &g->vals[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
            h = fnv_i64(h, v->kind);
            h = fnv_i64(h, v->shape.rank);
            for (int d = 0; d < v->shape.rank; d++)
                h = fnv_i64(h, v->shape.d[d]);
        }
    }
    const cnn_train_config *t = &s->train;
    h = fnv_i64(h, t->loss);
    h = fnv_i64(h, t->optimizer);
    double f[] = {t->lr, t->momentum, t->weight_decay, t->beta1, t->beta2, t->eps, t->label_smoothing,
                  t->clip_grad_norm};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        h = fnv_f64(h, f[i]);
    return fnv_i64(h, t->nesterov);
}

static uint64_t tensors_hash(const rt_tensor *t, int n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) {
        h = fnv_str(h, t[i].name);
        h = fnv(h, t[i].data, sizeof(float) * (size_t)op_shape_numel(&t[i].shape));
    }
    return h;
}

static cnn_status bcast_floats(float *p, int64_t n, char *err)
{
    while (n > 0) {
        int chunk = n > (1 << 28) ? 1 << 28 : (int)n;
        int rc = MPI_Bcast(p, chunk, MPI_FLOAT, 0, dist_comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Bcast");
        p += chunk;
        n -= chunk;
    }
    return CNN_OK;
}

static cnn_status sync_checked(cnn_session *s, const uint64_t mine[3], uint64_t *all);

/* Checks that every process has rank 0's plan, weights and optimiser state, then copies rank
 * 0's (bit for bit: what each process computes from them is then the same). */
static cnn_status sync_replica(cnn_session *s)
{
    uint64_t mine[3] = {plan_hash(s), tensors_hash(s->weights->t, s->weights->count),
                        tensors_hash(s->optstate, s->noptstate)};
    uint64_t *all = cnn_mem_malloc(sizeof(uint64_t) * 3 * (size_t)dist_size_);
    /* the broadcast writes the weights: as a training step, it needs them to itself */
    bool claimed = rt_weights_claim_write(s->weights);
    cnn_status local = !all ? CNN_ERR_NOMEM : !claimed ? CNN_ERR_USAGE : CNN_OK;
    cnn_status st = agree(local, NULL, 0, s->err, NULL);
    if (st != CNN_OK) {
        cnn_mem_free(all);
        if (claimed)
            rt_weights_release_write(s->weights);
        if (dist_failed_elsewhere_)
            return rt_fail(s->err, st, "another process failed (it reports the error)");
        return local == CNN_ERR_NOMEM ? rt_fail(s->err, st, "out of memory")
                                      : rt_fail(s->err, local, "the weights are in use by another session running on "
                                                "another thread; a training step needs them to itself");
    }
    st = sync_checked(s, mine, all);
    rt_weights_release_write(s->weights);
    if (st == CNN_OK)
        atomic_fetch_add(&s->weights->version, 1);
    return st;
}

/* sync_replica once the weights are claimed: compares the checksums, broadcasts rank 0's. */
static cnn_status sync_checked(cnn_session *s, const uint64_t mine[3], uint64_t *all)
{
    struct rt_dist_session *d = s->dist;
    cnn_status st = CNN_OK;
    int rc = MPI_Allgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, dist_comm);
    if (rc != MPI_SUCCESS) {
        cnn_mem_free(all);
        return mpi_fail(s->err, rc, "MPI_Allgather");
    }
    static const char *const what[3] = {"network (its plan)", "weights", "optimiser state"};
    int bad = -1, kind = 0;
    uint64_t theirs = 0;
    for (int r = 1; r < dist_size_ && bad < 0; r++)
        for (int k = 0; k < 3 && bad < 0; k++)
            if (all[3 * r + k] != all[k])
                bad = r, kind = k, theirs = all[3 * r + k];
    cnn_mem_free(all);
    if (bad >= 0) {
        dist_failed_elsewhere_ = dist_rank_ != 0;
        if (dist_rank_ != 0)
            return rt_fail(s->err, CNN_ERR_INPUT, "the processes' networks or weights differ (rank 0 reports it)");
        return rt_fail(s->err, CNN_ERR_INPUT,
                       "process %d of %d differs from process 0 in its %s (checksums %016" PRIx64 " and %016" PRIx64
                       "): every process must compile the same network with the same settings and start from "
                       "the same weights",
                       bad, dist_size_, what[kind], theirs, mine[kind]);
    }
    for (int i = 0; i < s->weights->count && st == CNN_OK; i++)
        st = bcast_floats(s->weights->t[i].data, op_shape_numel(&s->weights->t[i].shape), s->err);
    for (int i = 0; i < s->noptstate && st == CNN_OK; i++)
        st = bcast_floats(s->optstate[i].data, op_shape_numel(&s->optstate[i].shape), s->err);
    if (st == CNN_OK)
        d->synced = true;
    return st;
}

cnn_status rt_dist_session_init(cnn_session *s)
{
    if (!rt_dist_active() || s->mode != CNN_MODE_TRAIN)
        return CNN_OK;
    struct rt_dist_session *d = cnn_mem_calloc(1, sizeof *d);
    const ir_plan *p = s->plan;
    if (!d || !(d->b = cnn_mem_calloc((size_t)p->ngrads + 1, sizeof(dist_bucket)))) {
        cnn_mem_free(d);
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    }
    s->dist = d;
    size_t cap = bucket_cap(p->grad_bytes);
    for (int i = 0; i < p->ngrads; i++) {
        const plan_grad *gr = &p->grads[i];
        dist_bucket *b = d->nbuckets ? &d->b[d->nbuckets - 1] : NULL;
        if (!b || b->bytes >= cap) {
            b = &d->b[d->nbuckets++];
            b->offset = gr->offset;
            b->req = MPI_REQUEST_NULL;
        }
        b->bytes = gr->offset + gr->bytes - b->offset;
        b->last_step = gr->step;
        if (b->bytes / sizeof(float) > (size_t)INT_MAX) /* one MPI call counts in int */
            return rt_fail(s->err, CNN_ERR_INPUT, "%s's gradient has more than %d floats: too large for "
                           "data-parallel training", s->plan->graph->vals[gr->value].name, INT_MAX);
    }
    d->wait_step = p->grads_read_step;
    d->stats.nbuckets = d->nbuckets;
    d->stats.grad_bytes = p->grad_bytes;
    return CNN_OK;
}

void rt_dist_session_free(cnn_session *s)
{
    if (!s->dist)
        return;
    for (int i = 0; i < s->dist->nbuckets; i++)
        if (s->dist->b[i].started && !s->dist->b[i].done)
            MPI_Request_free(&s->dist->b[i].req);
    cnn_mem_free(s->dist->b);
    cnn_mem_free(s->dist);
    s->dist = NULL;
}

void rt_dist_session_stats(const cnn_session *s, rt_dist_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s->dist)
        *out = s->dist->stats;
}

cnn_status rt_dist_step_begin(cnn_session *s)
{
    struct rt_dist_session *d = s->dist;
    if (!d->synced) {
        cnn_status st = sync_replica(s);
        if (st != CNN_OK)
            return st;
    }
    d->in_step = true;
    d->agreed = false;
    d->next = 0;
    d->mpi_err = MPI_SUCCESS;
    for (int i = 0; i < d->nbuckets; i++)
        d->b[i].started = d->b[i].done = false;
    return CNN_OK;
}

static int start_bucket(cnn_session *s, dist_bucket *b)
{
    b->started = true;
    return MPI_Iallreduce(MPI_IN_PLACE, (char *)s->arena + b->offset, (int)(b->bytes / sizeof(float)), MPI_FLOAT,
                          MPI_SUM, dist_comm, &b->req);
}

void rt_dist_after_step(cnn_session *s, int step)
{
    struct rt_dist_session *d = s->dist;
    if (!dist_overlap)
        return;
    while (d->next < d->nbuckets && d->b[d->next].last_step <= step && step < d->wait_step) {
        int rc = start_bucket(s, &d->b[d->next++]);
        if (rc != MPI_SUCCESS && d->mpi_err == MPI_SUCCESS)
            d->mpi_err = rc; /* reported at the wait */
    }
    /* progress: Open MPI moves a nonblocking collective on only inside MPI calls */
    for (int i = 0; i < d->next; i++)
        if (!d->b[i].done) {
            int flag = 0, rc = MPI_Test(&d->b[i].req, &flag, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS && d->mpi_err == MPI_SUCCESS)
                d->mpi_err = rc;
            d->b[i].done = flag != 0 || rc != MPI_SUCCESS;
            break;
        }
}

/* Starts what is not started, waits for every bucket, then agrees on the status (and sums the
 * losses).  local: this process's status so far. */
static cnn_status finish_and_agree(cnn_session *s, cnn_status local)
{
    struct rt_dist_session *d = s->dist;
    const ir_graph *g = s->plan->graph;
    double t0 = now_s();
    int rc = d->mpi_err;
    while (d->next < d->nbuckets) {
        int r = start_bucket(s, &d->b[d->next++]);
        if (r != MPI_SUCCESS && rc == MPI_SUCCESS)
            rc = r;
    }
    for (int i = 0; i < d->nbuckets; i++) {
        if (d->b[i].done)
            continue;
        int r = MPI_Wait(&d->b[i].req, MPI_STATUS_IGNORE);
        d->b[i].done = true;
        if (r != MPI_SUCCESS && rc == MPI_SUCCESS)
            rc = r;
    }
    double t1 = now_s();
    if (rc != MPI_SUCCESS)
        return mpi_fail(s->err, rc, "MPI_Iallreduce of the gradients");
    float scale = 1.0f / (float)dist_size_;
    if (local == CNN_OK)
        for (int i = 0; i < d->nbuckets; i++) {
            float *x = (float *)((char *)s->arena + d->b[i].offset);
            int64_t n = (int64_t)(d->b[i].bytes / sizeof(float));
#pragma omp parallel for num_threads(s->nthreads) if (n > (1 << 18)) schedule(static)
            for (int64_t k = 0; k < n; k++)
                x[k] *= scale;
        }
    double loss = local == CNN_OK && g->loss >= 0 ? (double)s->data[g->loss][0] : 0.0;
    int first = 0;
    char err[RT_ERR_MAX];
    cnn_status st = agree(local, &loss, 1, err, &first);
    d->agreed = true;
    d->loss = loss / (double)dist_size_;
    d->stats.wait_seconds += t1 - t0;
    d->stats.agree_seconds += now_s() - t1;
    d->stats.steps++;
    if (st != CNN_OK && local == CNN_OK)
        return rt_fail(s->err, st, "process %d of %d failed in step %" PRId64 " (it reports the error)", first,
                       dist_size_, s->step);
    return st == CNN_OK ? CNN_OK : local;
}

cnn_status rt_dist_before_step(cnn_session *s, int step)
{
    struct rt_dist_session *d = s->dist;
    if (step != d->wait_step || d->agreed || !d->in_step)
        return CNN_OK;
    return finish_and_agree(s, CNN_OK);
}

cnn_status rt_dist_step_end(cnn_session *s, cnn_status st, float *loss)
{
    struct rt_dist_session *d = s->dist;
    if (!d->in_step)
        return st;
    d->in_step = false;
    if (!d->agreed) {
        /* failed before the wait (or a plan without updates): join the collectives anyway */
        cnn_status a = finish_and_agree(s, st);
        if (st == CNN_OK)
            st = a;
    } else if (st != CNN_OK) {
        return st;
    }
    if (st == CNN_OK && loss)
        *loss = (float)d->loss;
    if (st == CNN_OK)
        dist_failed_elsewhere_ = false;
    return st;
}

cnn_status rt_dist_fail_step(cnn_session *s, cnn_status st)
{
    if (!s->dist || rt_dist_step_begin(s) != CNN_OK)
        return st;
    rt_dist_step_end(s, st, NULL);
    return st;
}

/* ---- the training loop ---- */

cnn_status rt_dist_train_begin(cnn_session *s, cnn_status st, int64_t ntrain, int64_t ntest, int64_t epochs,
                               int64_t max_steps, bool shuffle, uint64_t seed)
{
    if (!rt_dist_active())
        return st;
    int first = 0;
    char err[RT_ERR_MAX];
    cnn_status a = agree(st, NULL, 0, err, &first);
    if (a != CNN_OK)
        return st != CNN_OK ? st
                            : rt_fail(s->err, a, "process %d of %d failed to start training (it reports the error)",
                                      first, dist_size_);
    int64_t mine[7] = {ntrain, ntest, epochs, max_steps, shuffle, (int64_t)(seed >> 1), s->batch};
    int64_t lo[7], hi[7];
    int rc = MPI_Allreduce(mine, lo, 7, MPI_INT64_T, MPI_MIN, dist_comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(mine, hi, 7, MPI_INT64_T, MPI_MAX, dist_comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(s->err, rc, "MPI_Allreduce");
    static const char *const what[7] = {"training examples", "test examples (-1: no test set)", "epochs",
                                        "step limit", "shuffle setting", "seed", "batch"};
    for (int k = 0; k < 7; k++)
        if (lo[k] != hi[k]) {
            dist_failed_elsewhere_ = dist_rank_ != 0;
            if (dist_rank_ != 0)
                return rt_fail(s->err, CNN_ERR_INPUT, "the processes disagree on the %s (rank 0 reports it)", what[k]);
            return rt_fail(s->err, CNN_ERR_INPUT,
                           "the processes disagree on the %s: from %" PRId64 " to %" PRId64
                           " (every process must read the same data with the same settings)",
                           what[k], lo[k], hi[k]);
        }
    if (s->dist)
        s->dist->synced = false; /* the first step checks and copies rank 0's state again */
    return CNN_OK;
}

int64_t rt_dist_shard(const int64_t *order, int64_t n, int64_t batch, int64_t *out)
{
    int64_t p = dist_size_, count = n / (p * batch) * batch;
    for (int64_t i = 0; i < count; i++)
        out[i] = order[i * p + dist_rank_];
    return count;
}

cnn_status rt_dist_sum_and_stop(cnn_session *s, int64_t *v, bool *stop)
{
    if (!rt_dist_active())
        return CNN_OK;
    int64_t buf[2] = {v ? *v : 0, *stop ? 1 : 0};
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, 2, MPI_INT64_T, MPI_SUM, dist_comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(s->err, rc, "MPI_Allreduce");
    if (v)
        *v = buf[0];
    *stop = buf[1] != 0;
    return CNN_OK;
}

cnn_status rt_dist_sync_state(cnn_weights *w, char *err)
{
    if (!rt_dist_active())
        return CNN_OK;
    cnn_status st = CNN_OK;
    bool any = false;
    for (int i = 0; i < w->count && st == CNN_OK; i++)
        if (!w->t[i].trainable) {
            st = bcast_floats(w->t[i].data, op_shape_numel(&w->t[i].shape), err);
            any = true;
        }
    if (any)
        atomic_fetch_add(&w->version, 1); /* folded constants are made again */
    return st;
}

/* ---- evaluation ---- */

void rt_dist_eval_range(int64_t n, int64_t *first, int64_t *end)
{
    int64_t p = dist_size_, r = dist_rank_;
    *first = n * r / p;
    *end = n * (r + 1) / p;
}

cnn_status rt_dist_eval_reduce(cnn_session *s, cnn_status st, double *loss, int64_t *correct)
{
    if (!rt_dist_active())
        return st;
    double x[2] = {*loss, (double)*correct};
    int first = 0;
    char err[RT_ERR_MAX];
    cnn_status a = agree(st, x, 2, err, &first);
    if (a != CNN_OK)
        return st != CNN_OK ? st
                            : rt_fail(s->err, a, "process %d of %d failed in the evaluation (it reports the error)",
                                      first, dist_size_);
    *loss = x[0];
    *correct = (int64_t)llround(x[1]);
    return CNN_OK;
}
