/* Replicas: a training step of small layers on several threads (docs/choices.md, "Threads").
 *
 * Splitting each kernel of a small network over threads gains nothing: LeNet's steps take a
 * few microseconds, about what waking and joining a second thread costs.  A training step of
 * such a network instead runs as R replicas (R = the session's threads, at most the batch),
 * all in one OpenMP region, one replica per thread:
 *  - replica r is a session of the same network on the same weights, of one thread and of the
 *    session's backends and convolution algorithms node by node, at batch n_r (the batch cut
 *    into R consecutive shares that differ by at most one example); it runs its plan's steps
 *    up to the first that reads a final gradient (compiler/plan.h: grads_read_step): the
 *    forward pass, the loss, the backward pass;
 *  - once every replica is done (a barrier in the region), each of the session's final
 *    gradients becomes sum over r of (n_r / N) times replica r's, each thread summing a slice
 *    of every gradient (slices of whole cache lines); its loss is the same sum of the
 *    replicas' losses: a replica's loss is the mean over its share, so these are the full
 *    batch's mean loss and its gradients; the replicas' outputs are copied into the
 *    session's (the step's accuracy is counted from them);
 *  - the session's own steps from grads_read_step on (gradient clipping, the optimiser's
 *    updates) then run once, on the shared weights, as in a step without replicas; when they
 *    are all updates without clipping, each reading one gradient, each thread instead runs
 *    the updates of its slices right after summing them (plan_ahead; an update works element
 *    by element), so a thread always writes the same slice of the weights and their moments.
 *    (Summing each gradient as soon as the last replica had made it, and updating it at once
 *    on that thread, overlapped the other replicas' backward pass, but was slower: LeNet-5's
 *    step at batch 64 on 2 threads 0.955 ms against 0.91; docs/choices.md.)
 * The result is the plain step's up to float rounding (the same sums in another order).
 *
 * Only for networks whose step is that function of the batch's shares: no batchnorm (its
 * statistics are the whole batch's), no dropout (its masks are drawn over the whole batch's
 * elements: a replica would draw others), a mean loss (cross-entropy or mse), and no
 * reference backend (its results do not depend on the thread count; replicas would change
 * their last bits).  Never in data-parallel (MPI) training or while profiling.
 *
 * When: the environment variable CNN_REPLICAS, read when a training session is made: `auto`
 * (the default) chooses by timing between the step as planned (itself the choice of
 * runtime/threads.c between per-step thread counts and one thread) and replicas, as
 * runtime/threads.c chooses (rt_choice_*), after 16 steps of replicas alone; `on` always uses
 * them where the network allows, `off` never.
 *
 * Memory: made at the first step that uses them, the replicas' arenas at batch n_r (together
 * about the session's own arena again), their weights-only steps' buffers and their optimiser
 * state (never used: a replica runs no update).
 *
 * Inference runs as replicas too, in chunks of the batch.  In inference an example's outputs
 * depend on its inputs alone, so a run of several threads may cut the batch into chunks of C
 * examples and let the threads take chunks in turn from a shared counter, each running its
 * replica (a session of one thread at batch C, made as above) on the chunks it takes: the
 * chunk's examples copied in, the replica's whole plan, its outputs copied out (of a last,
 * shorter chunk only the examples it has; the rest of the replica's input holds what an earlier
 * chunk left, and its outputs there are dropped).  C: REP_CHUNKS chunks per thread, but no
 * fewer than REP_MIN_CHUNK examples unless the batch cut evenly over the threads is smaller (on
 * one thread vgg_small ran 7% slower per example at batch 16 than at 64, 4% at 32).  One
 * parallel region per run instead of one per kernel (LeNet-5's steps are a few microseconds),
 * and no thread waits for another before the run's end, where a step split over the threads
 * waits at every join for a thread a busy neighbour has descheduled.  The chunks are runtime/
 * threads.c's way of several threads for such a session, in place of the per-step counts, so
 * runs choose between them and one thread by timing.  Not for the reference backend (as above),
 * networks of more than RT_WEIGHT_COPIES_MAX of weights (each replica holds its own copy of
 * oneDNN's reordered weights), while profiling, nor for a session whose values are read after
 * the run (int8 calibration: rt_replicas_off). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"
#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/dist.h"
#include "runtime/rt.h"

enum { REP_AUTO, REP_ON, REP_OFF };

/* Steps of replicas before the first try of the step as planned. */
#define REP_FIRST 16

/* Inference: chunks per thread, and the fewest examples a chunk has (see the top). */
#define REP_CHUNKS 2
#define REP_MIN_CHUNK 32

typedef struct rt_replicas {
    int mode;                /* REP_AUTO, REP_ON or REP_OFF (CNN_REPLICAS) */
    char why_not[160];       /* why the session's steps never use replicas ("" when they may) */
    int n;                   /* replicas */
    int built;               /* 0: not made yet; 1: made; -1: could not be made (not tried again) */
    cnn_session **rep;       /* n sessions of one thread */
    int64_t *first;          /* replica r takes the examples [first[r], first[r + 1]) */
    float *share;            /* n_r / N */
    int *grad;               /* grad[r * ngrads + i]: replica r's value of the session's i-th final gradient */
    int *read_step;          /* per replica: the first step of its plan that reads a final gradient */
    cnn_status *status;      /* per replica: its last step's */
    int *ahead;              /* per final gradient: the session's update step of its parameter, run by
                              * slices in the region (-1: in the tail, after the region) */
    unsigned char *done;     /* per session step: runs in the region (by slices), not in the tail */
    uint64_t version;        /* the weights' version of the step being run */
    int ahead_status;        /* the first failure of an update in the region (0: none) */
    char ahead_err[RT_STEP_ERR_MAX];
    int64_t steps;           /* steps taken as replicas */
    rt_threads choose;       /* RT_STEP_PLANNED or RT_STEP_REPLICAS, by timing */
    /* inference */
    int64_t chunk;           /* examples per chunk (each replica's batch) */
    int nchunks;
    int next;                /* the next chunk to take in this run */
    int failed;              /* a replica failed in this run: the others take no more chunks */
    bool cold;               /* some replica ran its weights-only steps in this run (not timed) */
} rt_replicas;

/* The mode CNN_REPLICAS asks for, or -1 when it is not a mode. */
static int env_mode(const char **value)
{
    const char *v = getenv("CNN_REPLICAS");
    *value = v;
    if (!v || !*v || strcmp(v, "auto") == 0)
        return REP_AUTO;
    if (strcmp(v, "on") == 0 || strcmp(v, "1") == 0)
        return REP_ON;
    if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0)
        return REP_OFF;
    return -1;
}

static bool batched_f32(const ir_graph *g, int v)
{
    return v >= 0 && g->vals[v].batched && g->vals[v].dtype == OP_DT_F32;
}

/* Why the session's steps cannot run as replicas, or NULL when they can. */
static const char *why_not(const cnn_session *s, int mode)
{
    if (mode == REP_OFF)
        return "CNN_REPLICAS=off";
    if (s->nthreads < 2)
        return "one thread";
    if (s->batch < 2)
        return "batch 1";
    if (s->opt.backend == CNN_BACKEND_REF)
        return "the reference backend (its results do not depend on the thread count)";
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    if (s->mode != CNN_MODE_TRAIN) {
        for (int i = 0; i < g->ninputs; i++)
            if (!batched_f32(g, g->inputs[i]))
                return "an input without a batch axis";
        if (g->noutputs < 1)
            return "no output";
        for (int i = 0; i < g->noutputs; i++)
            if (!batched_f32(g, g->outputs[i]))
                return "an output without a batch axis";
        if (!rt_weight_copies_fit(s->weights))
            return "more than 128 MB of weights (each replica would hold its own copy of oneDNN's reordered weights)";
        return NULL;
    }
    if (s->dist || rt_dist_active())
        return "data-parallel (MPI) training";
    if (g->label < 0 || g->loss < 0 || g->noutputs < 1 || p->ngrads < 1)
        return "no loss or no parameter to train";
    if (!batched_f32(g, g->label))
        return "labels without a batch axis";
    for (int i = 0; i < g->ninputs; i++)
        if (!batched_f32(g, g->inputs[i]))
            return "an input without a batch axis";
    for (int i = 0; i < g->noutputs; i++)
        if (!batched_f32(g, g->outputs[i]))
            return "an output without a batch axis";
    int read = p->grads_read_step;
    for (int st = 0; st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        switch (nd->op) {
        case OP_BATCHNORM: case OP_BATCHNORM_BWD: case OP_BN_FOLD:
            return "batchnorm (its statistics are the whole batch's)";
        case OP_DROPOUT: case OP_DROPOUT_BWD:
            return "dropout (its masks are drawn over the whole batch)";
        default: break;
        }
        bool makes_loss = false;
        for (int k = 0; k < nd->nout; k++)
            makes_loss |= nd->out[k] == g->loss;
        if (makes_loss && nd->op != OP_XENT_LOSS && nd->op != OP_MSE_LOSS)
            return "a loss that is not a mean over the examples";
        const op_def *def = op_def_get(nd->op);
        if (st < read && def->updates_inputs && def->updates_inputs(&nd->attrs))
            return "a step that updates its inputs before the gradients are complete";
        /* the steps from `read` on run on the session alone: they may read the final
         * gradients and what they make themselves, nothing of the forward or backward pass */
        for (int k = 0; k < nd->nin && st >= read; k++) {
            int v = nd->in[k];
            if (p->vals[v].loc != PLAN_LOC_ARENA)
                continue;
            bool ok = g->vals[v].producer >= 0 && p->vals[v].first >= read;
            for (int i = 0; i < p->ngrads && !ok; i++)
                ok = p->grads[i].value == v;
            if (!ok)
                return "the optimiser's steps read values of the forward or backward pass";
        }
    }
    for (int i = 0; i < p->ngrads; i++)
        if (p->grads[i].step >= read)
            return "a gradient made after the optimiser's first step";
    return NULL;
}

cnn_status rt_replicas_init(cnn_session *s)
{
    const char *value;
    int mode = env_mode(&value);
    if (mode < 0)
        return rt_fail(s->err, CNN_ERR_USAGE, "the environment variable CNN_REPLICAS must be auto, on or off, not \"%.100s\"", value);
    rt_replicas *r = cnn_mem_calloc(1, sizeof *r);
    if (!r)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    s->rep = r;
    r->mode = mode;
    const char *why = why_not(s, mode);
    snprintf(r->why_not, sizeof r->why_not, "%s", why ? why : "");
    rt_choice_init(&r->choose, RT_STEP_REPLICAS, -1);
    return CNN_OK;
}

void rt_replicas_off(cnn_session *s, const char *why)
{
    if (s->rep && !s->rep->why_not[0])
        snprintf(s->rep->why_not, sizeof s->rep->why_not, "%s", why);
}

const char *rt_replicas_why_not(const cnn_session *s)
{
    if (!s->rep)
        return "not made";
    if (s->rep->built < 0)
        return "the replicas could not be made";
    return s->rep->why_not;
}

int64_t rt_replicas_steps(const cnn_session *s) { return s->rep ? s->rep->steps : 0; }

cnn_session *rt_replicas_session(const cnn_session *s, int i)
{
    return s->rep && s->rep->built > 0 && i >= 0 && i < s->rep->n ? s->rep->rep[i] : NULL;
}

static void free_replicas(rt_replicas *r)
{
    for (int i = 0; r->rep && i < r->n; i++)
        cnn_session_destroy(r->rep[i]);
    cnn_mem_free(r->rep);
    cnn_mem_free(r->first);
    cnn_mem_free(r->share);
    cnn_mem_free(r->grad);
    cnn_mem_free(r->read_step);
    cnn_mem_free(r->status);
    cnn_mem_free(r->ahead);
    cnn_mem_free(r->done);
    r->ahead = NULL;
    r->done = NULL;
    r->rep = NULL;
    r->first = NULL;
    r->share = NULL;
    r->grad = NULL;
    r->read_step = NULL;
    r->status = NULL;
    r->n = 0;
}

void rt_replicas_free(cnn_session *s)
{
    if (!s->rep)
        return;
    free_replicas(s->rep);
    cnn_mem_free(s->rep);
    s->rep = NULL;
}

/* The name of the parameter whose final gradient is value v. */
static const char *grad_param(const ir_graph *g, int v)
{
    int p = g->vals[v].param_of;
    return p >= 0 && p < g->nvals ? g->vals[p].name : "";
}

/* Checks that replica q's plan matches the session's (its inputs, outputs and final
 * gradients) and maps its gradients: 0, or -1 when it does not. */
static int map_replica(const cnn_session *s, rt_replicas *r, int i)
{
    const ir_plan *p = s->plan, *qp = r->rep[i]->plan;
    const ir_graph *g = p->graph, *qg = qp->graph;
    if (qg->ninputs != g->ninputs || qg->noutputs != g->noutputs || qg->label < 0 || qg->loss < 0 ||
        qp->ngrads != p->ngrads)
        return -1;
    for (int k = 0; k < p->ngrads; k++) {
        const char *name = grad_param(g, p->grads[k].value);
        int found = -1;
        for (int j = 0; j < qp->ngrads && found < 0; j++)
            if (strcmp(grad_param(qg, qp->grads[j].value), name) == 0 &&
                op_shape_equal(&qg->vals[qp->grads[j].value].shape, &g->vals[p->grads[k].value].shape))
                found = j;
        if (found < 0 || qp->grads[found].step >= qp->grads_read_step)
            return -1;
        r->grad[(size_t)i * (size_t)p->ngrads + (size_t)k] = qp->grads[found].value;
    }
    r->read_step[i] = qp->grads_read_step;
    return 0;
}

/* Which of the session's tail steps run in the region, by slices after their gradient's sums:
 * all or none, and only when every tail step is an optimiser update without clipping
 * (clipping reads every gradient's norm) that reads one final gradient no other step reads. */
static void plan_ahead(const cnn_session *s, rt_replicas *r)
{
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    for (int k = 0; k < p->ngrads; k++)
        r->ahead[k] = -1;
    for (int st = p->grads_read_step; st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        bool update = nd->op == OP_SGD_UPDATE || nd->op == OP_ADAM_UPDATE || nd->op == OP_ADAMW_UPDATE;
        int reads = 0, k = -1;
        for (int j = 0; update && j < nd->nin; j++)
            for (int q = 0; q < p->ngrads; q++)
                if (nd->in[j] == p->grads[q].value) {
                    reads++;
                    k = q;
                }
        if (!update || nd->attrs.optim.clip || reads != 1 || r->ahead[k] >= 0) {
            for (int q = 0; q < p->ngrads; q++)
                r->ahead[q] = -1;
            return;
        }
        r->ahead[k] = st;
    }
    for (int k = 0; k < p->ngrads; k++)
        if (r->ahead[k] >= 0)
            r->done[r->ahead[k]] = 1; /* (run in the region: the step fails if one does) */
}

/* The session's backends and convolution algorithms, node by node (tuned ones too; auto's
 * Winograd rule depends on the batch), for its replicas: malloc'd, or NULL. */
static plan_pick *session_picks(const cnn_session *s)
{
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    plan_pick *picks = cnn_mem_calloc((size_t)p->nsteps + 1, sizeof(plan_pick));
    for (int st = 0; picks && st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        snprintf(picks[st].name, sizeof picks[st].name, "%s", nd->name);
        picks[st].op = nd->op;
        picks[st].backend = p->steps[st].backend;
        picks[st].algo = pass_conv_algo_pick(nd);
    }
    return picks;
}

/* Makes the replicas: CNN_OK, or a failure (then the session's steps run as planned). */
static cnn_status build(cnn_session *s)
{
    rt_replicas *r = s->rep;
    const ir_plan *p = s->plan;
    bool train = s->mode == CNN_MODE_TRAIN;
    int n = s->nthreads < s->batch ? s->nthreads : (int)s->batch;
    if (!train) { /* REP_CHUNKS chunks per thread of REP_MIN_CHUNK examples or more (fewer when the
                   * batch over the threads is less), and no more replicas than chunks */
        int64_t want = (int64_t)n * REP_CHUNKS, even = (s->batch + n - 1) / n;
        r->chunk = (s->batch + want - 1) / want;
        if (r->chunk < REP_MIN_CHUNK)
            r->chunk = even < REP_MIN_CHUNK ? even : REP_MIN_CHUNK;
        r->nchunks = (int)((s->batch + r->chunk - 1) / r->chunk);
        if (n > r->nchunks)
            n = r->nchunks;
    }
    r->n = n;
    size_t ng = (size_t)p->ngrads + 1;
    r->rep = cnn_mem_calloc((size_t)n, sizeof(cnn_session *));
    r->first = cnn_mem_calloc((size_t)n + 1, sizeof(int64_t));
    r->share = cnn_mem_calloc((size_t)n, sizeof(float));
    r->grad = cnn_mem_calloc((size_t)n * ng, sizeof(int));
    r->read_step = cnn_mem_calloc((size_t)n, sizeof(int));
    r->status = cnn_mem_calloc((size_t)n, sizeof(cnn_status));
    r->ahead = cnn_mem_calloc(ng, sizeof(int));
    r->done = cnn_mem_calloc((size_t)p->nsteps + 1, 1);
    plan_pick *picks = session_picks(s);
    if (!r->rep || !r->first || !r->share || !r->grad || !r->read_step ||
        !r->status || !r->ahead || !r->done || !picks) {
        cnn_mem_free(picks);
        return CNN_ERR_NOMEM;
    }
    if (train)
        plan_ahead(s, r);
    cnn_options o = s->opt;
    o.threads = 1;
    o.tune = CNN_TUNE_OFF;
    o.conv_algo = CNN_CONV_ALGO_AUTO; /* where the picks' algorithms apply: every convolution has one */
    cnn_status st = CNN_OK;
    for (int i = 0; i <= n && train; i++)
        r->first[i] = s->batch * i / n;
    for (int i = 0; i < n && st == CNN_OK; i++) {
        int64_t b = train ? r->first[i + 1] - r->first[i] : r->chunk;
        r->share[i] = train ? (float)((double)b / (double)s->batch) : 0.0f; /* n_r / N: training only */
        st = rt_session_create_picks(&r->rep[i], s->model, s->weights, &o, b, s->mode, &s->train, picks,
                                     p->nsteps);
        if (st == CNN_OK && train && map_replica(s, r, i) != 0)
            st = CNN_ERR_INTERNAL;
    }
    cnn_mem_free(picks);
    return st;
}

/* Makes the replicas when first used: whether they are there (when they cannot be made, the
 * session's steps run as planned from then on). */
static bool ensure_built(cnn_session *s)
{
    rt_replicas *r = s->rep;
    if (r->built == 0) {
        if (build(s) != CNN_OK) {
            free_replicas(r);
            r->built = -1;
            return false;
        }
        r->built = 1;
    }
    return r->built > 0;
}

bool rt_replicas_chunks_may(const cnn_session *s)
{
    return s->rep && s->mode != CNN_MODE_TRAIN && !s->rep->why_not[0] && s->rep->built >= 0;
}

bool rt_replicas_forced(const cnn_session *s) { return s->rep && s->rep->mode == REP_ON && !s->rep->why_not[0]; }

bool rt_replicas_chunks_ready(cnn_session *s)
{
    return rt_replicas_chunks_may(s) && !s->prof && ensure_built(s);
}

bool rt_replicas_cold(const cnn_session *s) { return s->rep && s->rep->cold; }

int rt_replicas_pick(cnn_session *s, double now)
{
    rt_replicas *r = s->rep;
    if (!r || s->mode != CNN_MODE_TRAIN || r->why_not[0] || r->built < 0 || s->prof || s->dist)
        return RT_STEP_PLANNED;
    /* replicas alone for the first steps (a short run, as `cnnc bench`'s, measures them), then
     * by timing */
    int way = r->mode == REP_ON || r->choose.runs[RT_STEP_REPLICAS] < REP_FIRST ? RT_STEP_REPLICAS
                                                                              : rt_choice_pick(&r->choose, now);
    if (way == RT_STEP_REPLICAS && !ensure_built(s)) /* the step as planned, then */
        return RT_STEP_PLANNED;
    return way;
}

void rt_replicas_record(cnn_session *s, int used, double seconds, double now)
{
    rt_replicas *r = s->rep;
    if (!r || s->mode != CNN_MODE_TRAIN || r->why_not[0] || r->built < 0 || r->mode == REP_ON || s->prof || s->dist)
        return;
    rt_choice_record(&r->choose, used, seconds, now, false);
}

/* Elements [lo, hi) of the session's final gradient k: the sum over the replicas of their
 * share times theirs. */
static void sum_gradient(cnn_session *s, int k, int64_t lo, int64_t hi)
{
    rt_replicas *r = s->rep;
    const ir_plan *p = s->plan;
    float *restrict dst = s->data[p->grads[k].value];
    for (int i = 0; i < r->n; i++) {
        const float *restrict src = r->rep[i]->data[r->grad[(size_t)i * (size_t)p->ngrads + (size_t)k]];
        float w = r->share[i];
        if (i == 0) {
#pragma omp simd
            for (int64_t e = lo; e < hi; e++)
                dst[e] = w * src[e];
        } else {
#pragma omp simd
            for (int64_t e = lo; e < hi; e++)
                dst[e] += w * src[e];
        }
    }
}

/* Thread t of nt's part of the step's end, once every replica is done: its slice of every
 * final gradient summed, and when the updates run here (plan_ahead), the update of that slice
 * of its parameter.  Slice t of n elements: [n t / nt, n (t + 1) / nt), each end rounded up to
 * 16 floats (a cache line: no two threads write one). */
static void sum_and_update(cnn_session *s, int t, int nt)
{
    rt_replicas *r = s->rep;
    const ir_plan *p = s->plan;
    for (int k = 0; k < p->ngrads; k++) {
        int64_t n = op_shape_numel(&p->graph->vals[p->grads[k].value].shape);
        int64_t lo = (n * t / nt + 15) / 16 * 16, hi = (n * (t + 1) / nt + 15) / 16 * 16;
        lo = lo < n ? lo : n;
        hi = t == nt - 1 || hi > n ? n : hi;
        if (lo >= hi)
            continue;
        sum_gradient(s, k, lo, hi);
        if (r->ahead[k] < 0)
            continue;
        char msg[RT_STEP_ERR_MAX];
        int rc = rt_execute_update_part(s, r->ahead[k], r->version, lo, hi, msg, sizeof msg);
        int none = 0;
        if (rc != 0 && __atomic_compare_exchange_n(&r->ahead_status, &none, rc, false, __ATOMIC_ACQ_REL,
                                                   __ATOMIC_ACQUIRE))
            snprintf(r->ahead_err, sizeof r->ahead_err, "%s", msg);
    }
}

/* Examples [off, off + n) of the session's inputs (then its labels, when `labels`) into the
 * first n of replica q's. */
static void share_in(const cnn_session *s, cnn_session *q, int64_t off, int64_t n, bool labels)
{
    const ir_graph *g = s->plan->graph, *qg = q->plan->graph;
    for (int k = 0; k < g->ninputs + (labels ? 1 : 0); k++) {
        int v = k < g->ninputs ? g->inputs[k] : g->label, qv = k < g->ninputs ? qg->inputs[k] : qg->label;
        int64_t per = op_shape_numel(&g->vals[v].shape);
        memcpy(q->data[qv], s->data[v] + off * per, sizeof(float) * (size_t)(n * per));
    }
}

/* The first n examples of replica q's outputs out to examples [off, off + n) of the session's. */
static void share_out(cnn_session *s, const cnn_session *q, int64_t off, int64_t n)
{
    const ir_graph *g = s->plan->graph, *qg = q->plan->graph;
    for (int k = 0; k < g->noutputs; k++) {
        int64_t per = op_shape_numel(&g->vals[g->outputs[k]].shape);
        memcpy(s->data[g->outputs[k]] + off * per, q->data[qg->outputs[k]], sizeof(float) * (size_t)(n * per));
    }
}

/* Replica i's share of the step: its examples in, its forward and backward pass, its outputs
 * out to the session's. */
static cnn_status replica_step(cnn_session *s, int i, uint64_t version)
{
    rt_replicas *r = s->rep;
    cnn_session *q = r->rep[i];
    int64_t off = r->first[i], n = r->first[i + 1] - off;
    share_in(s, q, off, n, true);
    cnn_status st = rt_execute_head(q, r->read_step[i], version);
    if (st != CNN_OK)
        return st;
    share_out(s, q, off, n);
    return CNN_OK;
}

/* Inference: replica i takes chunks until none is left (or another failed): 0, or its
 * failure's status (the message in its session). */
static cnn_status take_chunks(cnn_session *s, int i, uint64_t version)
{
    rt_replicas *r = s->rep;
    cnn_session *q = r->rep[i];
    for (;;) {
        int c = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);
        if (c >= r->nchunks || __atomic_load_n(&r->failed, __ATOMIC_RELAXED))
            return CNN_OK;
        int64_t off = (int64_t)c * r->chunk, n = s->batch - off < r->chunk ? s->batch - off : r->chunk;
        share_in(s, q, off, n, false);
        if (q->weights_seen != version || !q->consts_valid)
            __atomic_store_n(&r->cold, true, __ATOMIC_RELAXED);
        cnn_status st = rt_execute_head(q, q->plan->nsteps, version);
        if (st != CNN_OK) {
            __atomic_store_n(&r->failed, 1, __ATOMIC_RELAXED);
            return st;
        }
        share_out(s, q, off, n);
    }
}

/* Inference: the batch's chunks on the replicas, one thread each, in one region. */
static cnn_status run_chunks(cnn_session *s, const rt_fpenv *fp)
{
    rt_replicas *r = s->rep;
    uint64_t version = atomic_load(&s->weights->version);
    int n = r->n;
    r->next = 0;
    r->failed = 0;
    r->cold = false;
    for (int i = 0; i < n; i++)
        r->status[i] = CNN_OK;
    /* a smaller team than n: its threads take all the chunks between them */
#pragma omp parallel num_threads(n)
    {
        int t = omp_get_thread_num();
        unsigned saved = t ? rt_fpenv_thread_set(fp) : 0; /* (the caller's are set) */
        if (t < n)
            r->status[t] = take_chunks(s, t, version);
        if (t)
            rt_fpenv_thread_restore(fp, saved);
    }
    for (int i = 0; i < n; i++)
        if (r->status[i] != CNN_OK)
            return rt_fail(s->err, r->status[i], "%s", cnn_session_errmsg(r->rep[i]));
    r->steps++;
    return CNN_OK;
}

cnn_status rt_replicas_run(cnn_session *s, const rt_fpenv *fp)
{
    if (s->mode != CNN_MODE_TRAIN)
        return run_chunks(s, fp);
    rt_replicas *r = s->rep;
    const ir_graph *g = s->plan->graph;
    uint64_t version = atomic_load(&s->weights->version);
    int n = r->n;
    r->version = version;
    r->ahead_status = 0;
    /* one region: a replica per thread (a smaller team takes several each); oneDNN runs a
     * primitive on the calling thread inside a parallel region, and the replicas' kernels
     * were made for one thread; then the sums (and updates) by slices */
#pragma omp parallel num_threads(n)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        unsigned saved = t ? rt_fpenv_thread_set(fp) : 0; /* (the caller's are set) */
        for (int i = t; i < n; i += nt)
            r->status[i] = replica_step(s, i, version);
#pragma omp barrier
        bool ok = true;
        for (int i = 0; i < n; i++)
            ok = ok && r->status[i] == CNN_OK;
        if (ok)
            sum_and_update(s, t, nt);
        if (t)
            rt_fpenv_thread_restore(fp, saved);
    }
    for (int i = 0; i < n; i++)
        if (r->status[i] != CNN_OK)
            return rt_fail(s->err, r->status[i], "%s", cnn_session_errmsg(r->rep[i]));
    if (r->ahead_status)
        return rt_fail(s->err, (cnn_status)r->ahead_status, "%s", r->ahead_err);
    double loss = 0;
    for (int i = 0; i < n; i++)
        loss += (double)r->share[i] * (double)r->rep[i]->data[r->rep[i]->plan->graph->loss][0];
    s->data[g->loss][0] = (float)loss;
    cnn_status st = rt_execute_tail(s, s->plan->grads_read_step, version, r->done);
    if (st == CNN_OK)
        r->steps++;
    return st;
}
