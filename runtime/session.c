/* Sessions: a plan for one batch size, its arena, the binding of every value to memory, the
 * prepared kernel calls, and the executor that runs them.
 *
 * Threading policy: the executor runs the steps in order on the calling thread; each kernel
 * opens its own OpenMP region of c->nthreads threads (reference kernels) or lets oneDNN, which
 * uses the same OpenMP runtime, do so.  Each step has its own count (runtime/threads.c: one
 * thread for a step too small to split), and omp_set_num_threads() is set to it around the
 * step's preparation and every run of it, so oneDNN and our kernels use the same number, and
 * nothing nests; the caller's setting (omp_get_max_threads()) is restored before the run
 * returns.  A run may instead take every step on one thread, when that was faster
 * (runtime/threads.c): those calls are prepared apart, when first used.  A training step may
 * instead run as replicas of the step, one per thread in one parallel region, each a session
 * of one thread on a share of the batch (runtime/replicas.c), when that was faster; so may an
 * inference run, its replicas taking chunks of the batch.
 *
 * Each tensor of a call carries its value's memory order (op_tensor.layout, from the layout
 * pass); a kernel that takes plain tensors only is never given a channels-last one (checked
 * when the calls are prepared). */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/registry.h"
#include "ops/mem.h"
#include "runtime/dist.h"
#include "runtime/rng.h"
#include "runtime/quantize.h"
#include "runtime/rt.h"
#include "runtime/sysmem.h"

int cnn_default_threads(void) { return omp_get_num_procs(); }

int cnn_max_threads(void)
{
    int procs = omp_get_num_procs();
    return procs > 64 ? 256 : 4 * (procs > 0 ? procs : 1);
}

static float *arena_ptr(cnn_session *s, size_t offset) { return (float *)((char *)s->arena + offset); }

static int optstate_find(const cnn_session *s, const char *name)
{
    for (int i = 0; i < s->noptstate; i++)
        if (strcmp(s->optstate[i].name, name) == 0)
            return i;
    return -1;
}

/* Binds every value of the plan to memory. */
static cnn_status bind_values(cnn_session *s)
{
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    s->data = cnn_mem_calloc((size_t)g->nvals + 1, sizeof(float *));
    if (!s->data)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    int nopt = 0;
    for (int v = 0; v < g->nvals; v++)
        if (p->vals[v].loc == PLAN_LOC_OPTSTATE)
            nopt++;
    s->optstate = cnn_mem_calloc((size_t)nopt + 1, sizeof(rt_tensor));
    if (!s->optstate)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    for (int v = 0; v < g->nvals; v++) {
        const plan_value *pv = &p->vals[v];
        const ir_value *val = &g->vals[v];
        switch (pv->loc) {
        case PLAN_LOC_NONE: break;
        case PLAN_LOC_ARENA: s->data[v] = arena_ptr(s, pv->offset); break;
        case PLAN_LOC_WEIGHTS: {
            int i = rt_weights_find(s->weights, val->name);
            if (i < 0)
                return rt_fail(s->err, CNN_ERR_USAGE, "the weights have no tensor %s", val->name);
            if (!op_shape_equal(&s->weights->t[i].shape, &val->shape))
                return rt_fail(s->err, CNN_ERR_USAGE, "the weights' %s has another shape", val->name);
            s->data[v] = s->weights->t[i].data;
            break;
        }
        case PLAN_LOC_CONST: {
            float *buf = cnn_mem_calloc(pv->bytes / sizeof(float) + 1, sizeof(float)); /* bytes: checked by the plan */
            float **list = cnn_mem_realloc(s->consts, sizeof(float *) * (size_t)(s->nconsts + 1));
            if (!buf || !list) {
                cnn_mem_free(buf);
                if (list)
                    s->consts = list;
                return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
            }
            s->consts = list;
            s->consts[s->nconsts++] = buf;
            s->data[v] = buf;
            break;
        }
        case PLAN_LOC_OPTSTATE: {
            int i = optstate_find(s, val->name);
            if (i < 0) {
                rt_tensor *t = &s->optstate[s->noptstate];
                snprintf(t->name, sizeof t->name, "%s", val->name);
                t->shape = val->shape;
                t->data = cnn_mem_calloc((size_t)op_shape_numel(&val->shape) + 1, sizeof(float));
                if (!t->data)
                    return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
                i = s->noptstate++;
            }
            s->data[v] = s->optstate[i].data;
            break;
        }
        }
    }
    return CNN_OK;
}

static void fill_tensor(const cnn_session *s, int v, op_tensor *t)
{
    const ir_value *val = &s->plan->graph->vals[v];
    t->data = s->data[v];
    t->layout = (int)val->layout;
    t->dtype = (int)val->dtype;
    t->rank = 0;
    if (val->batched)
        t->d[t->rank++] = s->batch;
    for (int k = 0; k < val->shape.rank; k++)
        t->d[t->rank++] = val->shape.d[k];
}

/* Lets step st's kernel prepare call c (oneDNN primitives, under c's thread count) and gives
 * it its scratch. */
static cnn_status prepare_kernel(cnn_session *s, int st, op_call *c)
{
    const op_kernel *k = s->kernels[st];
    if (k->prepare) {
        char msg[1024];
        if (k->prepare(c, msg, sizeof msg) != 0)
            return rt_fail(s->err, cnn_mem_is_oom(msg) ? CNN_ERR_NOMEM : CNN_ERR_INTERNAL, "%s (%s, %s backend): %s",
                           c->node->name, op_name(c->node->op), op_backend_name(s->plan->steps[st].backend), msg);
    }
    if (k->scratch) {
        size_t bytes = k->scratch(c);
        if (bytes) {
            c->scratch = cnn_mem_aligned_alloc(64, (bytes + 63) / 64 * 64, 0);
            if (!c->scratch)
                return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
        }
    }
    return CNN_OK;
}

/* Makes each step's op_call and lets its kernel prepare (oneDNN primitives). */
static cnn_status prepare_calls(cnn_session *s)
{
    const ir_plan *p = s->plan;
    const ir_graph *g = p->graph;
    s->calls = cnn_mem_calloc((size_t)p->nsteps + 1, sizeof(op_call));
    s->kernels = cnn_mem_calloc((size_t)p->nsteps + 1, sizeof(op_kernel *));
    s->nodes = cnn_mem_calloc((size_t)p->nsteps + 1, sizeof(op_node));
    if (!s->calls || !s->kernels || !s->nodes)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    for (int st = 0; st < p->nsteps; st++) {
        const ir_node *nd = &g->nodes[p->steps[st].node];
        op_call *c = &s->calls[st];
        op_node *kn = &s->nodes[st];
        kn->op = nd->op;
        kn->attrs = nd->attrs;
        memcpy(kn->name, nd->name, sizeof kn->name);
        c->node = kn;
        c->nin = nd->nin;
        c->nout = nd->nout;
        for (int k = 0; k < nd->nin; k++)
            fill_tensor(s, nd->in[k], &c->in[k]);
        for (int k = 0; k < nd->nout; k++)
            fill_tensor(s, nd->out[k], &c->out[k]);
        c->batch = s->batch;
        c->nthreads = rt_step_threads(s, st);
        const op_kernel *k = op_kernel_get(nd->op, p->steps[st].backend);
        if (!k)
            k = op_kernel_get(nd->op, OP_BACKEND_REF);
        if (!k || !k->run)
            return rt_fail(s->err, CNN_ERR_INTERNAL, "no kernel for %s (%s)", nd->name, op_name(nd->op));
        s->kernels[st] = k;
        /* the layout pass gives channels-last and blocked tensors only to kernels that take them */
        for (int t = 0; t < c->nin + c->nout; t++) {
            int l = (t < c->nin ? c->in[t] : c->out[t - c->nin]).layout;
            if ((l != OP_LAYOUT_PLAIN && k->layouts == OP_LAYOUT_PLAIN_ONLY) || (l == OP_LAYOUT_BLOCK16 && !k->blocked))
                return rt_fail(s->err, CNN_ERR_INTERNAL, "%s (%s, %s backend) was given a %s tensor", nd->name,
                               op_name(nd->op), op_backend_name(p->steps[st].backend), op_layout_name((op_layout)l));
        }
        cnn_status ks = prepare_kernel(s, st, c);
        if (ks != CNN_OK)
            return ks;
    }
    return CNN_OK;
}

/* Step st's calls on one thread, for the steps of several (rt_threads.single). */
static cnn_status prepare_single(cnn_session *s)
{
    int n = s->plan->nsteps;
    op_call *one = cnn_mem_calloc((size_t)n + 1, sizeof(op_call));
    if (!one)
        return CNN_ERR_NOMEM;
    s->thr.single = one;
    for (int st = 0; st < n; st++) {
        if (s->calls[st].nthreads <= 1)
            continue;
        one[st] = s->calls[st];
        one[st].nthreads = 1;
        one[st].state = NULL;
        one[st].scratch = NULL;
        cnn_status ks = prepare_kernel(s, st, &one[st]);
        if (ks != CNN_OK)
            return ks;
    }
    return CNN_OK;
}

static void release_calls(cnn_session *s, op_call *calls)
{
    if (!calls || !s->kernels)
        return;
    for (int st = 0; st < s->plan->nsteps; st++) {
        if (s->kernels[st] && s->kernels[st]->release && calls[st].state)
            s->kernels[st]->release(calls[st].state);
        cnn_mem_aligned_free(calls[st].scratch);
    }
}

static cnn_status session_create(cnn_session **out, cnn_model *m, cnn_weights *w, const cnn_options *opt,
                                 int64_t batch, cnn_mode mode, const cnn_train_config *train, const plan_pick *picks,
                                 int npicks, bool fixed);

cnn_status cnn_session_create(cnn_session **out, cnn_model *m, cnn_weights *w, const cnn_options *opt,
                              int64_t batch, cnn_mode mode, const cnn_train_config *train)
{
    return session_create(out, m, w, opt, batch, mode, train, NULL, 0, false);
}

cnn_status rt_session_create_picks(cnn_session **out, cnn_model *m, cnn_weights *w, const cnn_options *opt,
                                   int64_t batch, cnn_mode mode, const cnn_train_config *train,
                                   const plan_pick *picks, int npicks)
{
    return session_create(out, m, w, opt, batch, mode, train, picks, npicks, true);
}

/* cnn_session_create; `fixed`: on the plan of `picks` instead of the tuner's. */
static cnn_status session_create(cnn_session **out, cnn_model *m, cnn_weights *w, const cnn_options *opt,
                                 int64_t batch, cnn_mode mode, const cnn_train_config *train, const plan_pick *picks,
                                 int npicks, bool fixed)
{
    *out = NULL;
    cnn_session *s = cnn_mem_calloc(1, sizeof *s);
    if (!s)
        return CNN_ERR_NOMEM;
    *out = s;
    s->model = m;
    s->weights = w;
    s->mode = mode;
    s->batch = batch;
    if (opt)
        s->opt = *opt;
    else
        cnn_options_default(&s->opt);
    if (!m->graph)
        return rt_fail(s->err, CNN_ERR_USAGE, "the model did not compile");
    if (!w || w->model != m)
        return rt_fail(s->err, CNN_ERR_USAGE, "the weights belong to another model");
    if (batch < 1 || batch > (1 << 24))
        return rt_fail(s->err, CNN_ERR_USAGE, "batch must be between 1 and %d, got %" PRId64, 1 << 24, batch);
    if ((unsigned)s->opt.conv_algo > CNN_CONV_ALGO_AUTO)
        return rt_fail(s->err, CNN_ERR_USAGE, "conv_algo must be default, direct, winograd or auto, got %d",
                       (int)s->opt.conv_algo);
    if (s->opt.threads < 0)
        return rt_fail(s->err, CNN_ERR_USAGE, "threads must be positive, got %d", s->opt.threads);
    /* libgomp ends the process when it cannot start a team's threads: absurd counts are refused
     * here, before any parallel region asks for them */
    int procs = omp_get_num_procs();
    int max_threads = cnn_max_threads();
    if (s->opt.threads > max_threads)
        return rt_fail(s->err, CNN_ERR_USAGE, "threads must be at most %d (4 per core on %d core%s, 256 at most), got %d",
                       max_threads, procs, procs == 1 ? "" : "s", s->opt.threads);
    s->nthreads = s->opt.threads > 0 ? s->opt.threads : procs;
    if (train)
        s->train = *train;
    else
        cnn_model_train_config(m, &s->train);
    cnn_status st;
    if (fixed)
        s->plan = rt_model_plan_picks(m, &s->opt, batch, mode == CNN_MODE_TRAIN, &s->train, picks, npicks, &st,
                                      s->err, sizeof s->err);
    else
        s->plan = rt_tune_plan(s, &st); /* runtime/tune.c: rt_model_plan, unless --tune under auto */
    if (!s->plan)
        return st;
    size_t bytes = (s->plan->arena_bytes + 63) / 64 * 64;
    char what[96], msg[256];
    snprintf(what, sizeof what, "the %s arena at batch %" PRId64, mode == CNN_MODE_TRAIN ? "training" : "inference",
             batch);
    if (rt_mem_check(bytes, what, msg, sizeof msg) != 0) /* too large, as a plan past the limits */
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", msg);
    s->arena = cnn_mem_aligned_alloc(64, bytes ? bytes : 64, 0);
    if (!s->arena)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory: the arena needs %zu bytes", bytes);
    memset(s->arena, 0, bytes);
    st = rt_precision_check(s); /* runtime/quantize.c: --precision int8 / bf16 */
    if (st == CNN_OK)
        st = bind_values(s);
    if (st == CNN_OK)
        st = prepare_calls(s);
    if (st == CNN_OK)
        st = rt_dist_session_init(s);
    if (st == CNN_OK)
        st = rt_replicas_init(s);
    if (st == CNN_OK)
        st = rt_threads_init(s);
    return st;
}

void cnn_session_destroy(cnn_session *s)
{
    if (!s)
        return;
    rt_dist_session_free(s);
    rt_replicas_free(s);
    release_calls(s, s->calls);
    release_calls(s, s->thr.single);
    cnn_mem_free(s->thr.single);
    cnn_mem_free(s->thr.done);
    cnn_mem_free(s->calls);
    cnn_mem_free(s->kernels);
    cnn_mem_free(s->nodes);
    for (int i = 0; i < s->noptstate; i++)
        cnn_mem_free(s->optstate[i].data);
    for (int i = 0; i < s->nconsts; i++)
        cnn_mem_free(s->consts[i]);
    cnn_mem_free(s->consts);
    cnn_mem_free(s->optstate);
    cnn_mem_free(s->prof);
    cnn_mem_free(s->data);
    cnn_mem_aligned_free(s->arena);
    plan_destroy(s->plan);
    cnn_mem_free(s);
}

const char *cnn_session_errmsg(const cnn_session *s) { return s ? s->err : "out of memory"; }
int64_t cnn_session_batch(const cnn_session *s) { return s->batch; }

float *cnn_session_input(cnn_session *s, int i)
{
    const ir_graph *g = s->plan ? s->plan->graph : NULL;
    if (!g || i < 0 || i >= g->ninputs)
        return NULL;
    return s->data[g->inputs[i]];
}

const float *cnn_session_output(const cnn_session *s, int i)
{
    const ir_graph *g = s->plan ? s->plan->graph : NULL;
    if (!g || i < 0 || i >= g->noutputs)
        return NULL;
    return s->data[g->outputs[i]];
}

/* FNV-1a of a node's name. */
static uint64_t name_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

static cnn_status execute_steps(cnn_session *s, int way, rt_cut *cut, bool *steady);

cnn_status rt_execute(cnn_session *s)
{
    if (!s->plan)
        return rt_fail(s->err, CNN_ERR_USAGE, "the session was not created");
    /* inference reads the weights (with any number of other inference runs); a training step
     * writes them, so it runs alone: a conflict is an error, never a wait or a race */
    bool train = s->mode == CNN_MODE_TRAIN;
    if (train ? !rt_weights_claim_write(s->weights) : !rt_weights_claim_read(s->weights)) {
        if (train)
            return rt_fail(s->err, CNN_ERR_USAGE,
                           "the weights are in use by another session running on another thread; a training "
                           "step needs them to itself (see cnn_session_create)");
        return rt_fail(s->err, CNN_ERR_USAGE,
                       "the weights are being written (a training step or cnn_weights_load on another thread); "
                       "inference may not run on them meanwhile (see cnn_session_create)");
    }
    int caller_threads = omp_get_max_threads();
    double t0 = rt_seconds();
    rt_fpenv fp;
    if (train && rt_replicas_pick(s, t0) == RT_STEP_REPLICAS) {
        rt_fpenv_enter(&fp, !s->opt.keep_denormals, 1); /* (the others' in the replicas' region) */
        t0 = rt_seconds(); /* (after the replicas' creation, at the first such step) */
        cnn_status st = rt_replicas_run(s, &fp);
        rt_fpenv_leave(&fp);
        if (omp_get_max_threads() != caller_threads)
            omp_set_num_threads(caller_threads);
        if (st == CNN_OK) {
            double t1 = rt_seconds();
            rt_replicas_record(s, RT_STEP_REPLICAS, t1 - t0, t1);
        }
        rt_weights_release_write(s->weights);
        return st;
    }
    int way = rt_threads_pick(s, t0);
    if (way == RT_RUN_SINGLE && !s->thr.single && s->thr.split > 1) {
        char keep[RT_ERR_MAX];
        memcpy(keep, s->err, sizeof keep);
        if (prepare_single(s) != CNN_OK) { /* the planned counts only, then */
            release_calls(s, s->thr.single);
            cnn_mem_free(s->thr.single);
            s->thr.single = NULL;
            s->thr.adaptive = false;
            way = RT_RUN_PLANNED;
        }
        memcpy(s->err, keep, sizeof keep);
        t0 = rt_seconds();
    }
    bool steady = true, chunks = !train && way == RT_RUN_PLANNED && rt_replicas_chunks_ready(s);
    rt_cut cut = {0};
    cnn_status st;
    rt_fpenv_enter(&fp, !s->opt.keep_denormals, way == RT_RUN_PLANNED && !chunks ? s->thr.planned_threads : 1);
    if (chunks) { /* inference in chunks of the batch on the replicas (made at the first) */
        t0 = rt_seconds();
        st = rt_replicas_run(s, &fp);
        steady = !rt_replicas_cold(s);
    } else {
        st = execute_steps(s, way, rt_threads_cut(s, way, t0, &cut) ? &cut : NULL, &steady);
    }
    rt_fpenv_leave(&fp);
    if (omp_get_max_threads() != caller_threads)
        omp_set_num_threads(caller_threads);
    if (st == CNN_OK && steady) {
        double t1 = rt_seconds();
        rt_threads_record(s, way, t1 - t0, t1, cut.hit);
        if (train)
            rt_replicas_record(s, RT_STEP_PLANNED, t1 - t0, t1);
    }
    if (train)
        rt_weights_release_write(s->weights);
    else
        rt_weights_release_read(s->weights);
    return st;
}

/* Runs step st's kernel on call c, counted as step `step` of the weights at `version`, its
 * dropout seed from seed_base and its name: CNN_OK, or a failure status with "name (op):
 * reason" in msg. */
static cnn_status call_step(cnn_session *s, op_call *c, int st, uint64_t seed_base, int64_t step, uint64_t version,
                            char *msg, size_t len)
{
    if (s->plan->steps[st].view) /* its output is its input's memory, already in order */
        return CNN_OK;
    /* per node by name, not by step index: passes that add or remove steps (fusion, the
     * layout pass's reorders) leave every dropout mask as it was */
    uint64_t x = seed_base ^ name_hash(c->node->name);
    c->seed = rt_splitmix64(&x);
    c->step = step;
    c->weights_version = version;
    char why[RT_KERNEL_ERR_MAX];
    why[0] = '\0';
    if (s->kernels[st]->run(c, why, sizeof why) == 0)
        return CNN_OK;
    snprintf(msg, len, "%s (%s): %s", c->node->name, op_name(c->node->op), why);
    return cnn_mem_is_oom(why) ? CNN_ERR_NOMEM : CNN_ERR_INPUT;
}

/* Runs steps [first, end), each on its own thread count (`way` RT_RUN_PLANNED) or all on one
 * thread, and the rest on one thread once `cut` (when not NULL) says so; the weights-only
 * steps only when `refresh`. */
static cnn_status run_range(cnn_session *s, int first, int end, int way, rt_cut *cut, uint64_t seed_base,
                            uint64_t version, bool refresh, const unsigned char *skip)
{
    int threads = omp_get_max_threads();
    for (int st = first; st < end; st++) {
        if (skip && skip[st])
            continue;
        op_call *c = &s->calls[st];
        if (cut && way == RT_RUN_PLANNED && c->nthreads > 1 &&
            rt_seconds() > cut->start + cut->slack + cut->per * (cut->done ? cut->done[st] : 1.0)) {
            way = RT_RUN_SINGLE;
            cut->hit = true;
        }
        if (way == RT_RUN_SINGLE && s->thr.single && c->nthreads > 1)
            c = &s->thr.single[st];
        if (c->nthreads != threads) /* oneDNN reads it, and made the step's primitives under it */
            omp_set_num_threads(threads = c->nthreads);
        if (s->dist) { /* data-parallel: the gradients are averaged before the first step reading one */
            cnn_status ds = rt_dist_before_step(s, st);
            if (ds != CNN_OK)
                return ds;
        }
        if (s->plan->steps[st].constant && !refresh)
            continue;
        char msg[RT_STEP_ERR_MAX];
        double t0 = s->prof ? rt_seconds() : 0;
        cnn_status cs = call_step(s, c, st, seed_base, s->step, version, msg, sizeof msg);
        if (cs != CNN_OK)
            return rt_fail(s->err, cs, "%s", msg);
        if (s->prof)
            rt_profile_record(s, st, rt_seconds() - t0);
        if (s->dist) /* starts the allreduce of the gradients this step completed */
            rt_dist_after_step(s, st);
    }
    return CNN_OK;
}

/* The seeds of a run's dropout masks, from the session's seed and its runs so far. */
static uint64_t run_seed_base(const cnn_session *s)
{
    return s->opt.seed ^ ((uint64_t)s->step * 0x9e3779b97f4a7c15ULL);
}

/* Runs the steps (run_range over the plan); *steady is false when the weights-only steps ran
 * again (a run not to time). */
static cnn_status execute_steps(cnn_session *s, int way, rt_cut *cut, bool *steady)
{
    uint64_t seed_base = run_seed_base(s);
    s->step++;
    uint64_t version = atomic_load(&s->weights->version);
    bool refresh = !s->consts_valid || s->weights_seen != version;
    *steady = !refresh || s->mode == CNN_MODE_TRAIN;
    cnn_status st = run_range(s, 0, s->plan->nsteps, way, cut, seed_base, version, refresh, NULL);
    if (st != CNN_OK)
        return st;
    if (s->prof)
        rt_profile_end_run(s);
    if (s->mode == CNN_MODE_TRAIN)
        version = atomic_fetch_add(&s->weights->version, 1) + 1; /* the step updated them */
    s->weights_seen = version;
    s->consts_valid = true;
    return CNN_OK;
}

cnn_status rt_execute_head(cnn_session *s, int end, uint64_t version)
{
    uint64_t seed_base = run_seed_base(s);
    s->step++;
    bool refresh = !s->consts_valid || s->weights_seen != version;
    cnn_status st = run_range(s, 0, end, RT_RUN_PLANNED, NULL, seed_base, version, refresh, NULL);
    if (st == CNN_OK) {
        s->weights_seen = version;
        s->consts_valid = true;
    }
    return st;
}

int rt_execute_update_part(cnn_session *s, int st, uint64_t version, int64_t lo, int64_t hi, char *msg, size_t len)
{
    op_call c = s->calls[st];
    int64_t n = op_tensor_numel(&c.in[0]);
    for (int j = 0; j < c.nin + c.nout; j++) {
        op_tensor *t = j < c.nin ? &c.in[j] : &c.out[j - c.nin];
        if (op_tensor_numel(t) != n) /* (a clipping scale) */
            continue;
        t->data += lo;
        t->rank = 1;
        t->d[0] = hi - lo;
        t->layout = OP_LAYOUT_PLAIN;
    }
    c.nthreads = 1;
    return (int)call_step(s, &c, st, run_seed_base(s), s->step + 1, version, msg, len);
}

cnn_status rt_execute_tail(cnn_session *s, int first, uint64_t version, const unsigned char *done)
{
    uint64_t seed_base = run_seed_base(s);
    s->step++;
    cnn_status st = run_range(s, first, s->plan->nsteps, RT_RUN_PLANNED, NULL, seed_base, version, true, done);
    if (st != CNN_OK)
        return st;
    atomic_fetch_add(&s->weights->version, 1); /* the step updated them */
    s->consts_valid = false; /* the weights-only steps before `first` did not run */
    return CNN_OK;
}

cnn_status cnn_session_set_lr(cnn_session *s, double lr)
{
    if (s->mode != CNN_MODE_TRAIN || !s->plan)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_session_set_lr needs a training session");
    if (!(lr > 0) || !isfinite(lr))
        return rt_fail(s->err, CNN_ERR_USAGE, "the learning rate must be a positive number, got %g", lr);
    s->train.lr = lr;
    for (int st = 0; st < s->plan->nsteps; st++)
        if (s->nodes[st].op == OP_SGD_UPDATE || s->nodes[st].op == OP_ADAM_UPDATE ||
            s->nodes[st].op == OP_ADAMW_UPDATE)
            s->nodes[st].attrs.optim.lr = lr;
    return CNN_OK;
}

cnn_status cnn_session_run(cnn_session *s)
{
    if (s->mode == CNN_MODE_TRAIN)
        return rt_fail(s->err, CNN_ERR_USAGE, "a training session runs with cnn_session_train_step");
    return rt_execute(s);
}

static cnn_status train_step(cnn_session *s, const float *labels, bool labels_are_classes, float *loss,
                             int64_t *correct);

cnn_status cnn_session_train_step(cnn_session *s, const float *labels, bool labels_are_classes, float *loss,
                                  int64_t *correct)
{
    if (!s->plan || s->mode != CNN_MODE_TRAIN)
        return rt_fail(s->err, CNN_ERR_USAGE, "not a training session");
    if (!s->dist)
        return train_step(s, labels, labels_are_classes, loss, correct);
    /* data-parallel: collective, whatever happens in the step (runtime/dist.h) */
    cnn_status st = rt_dist_step_begin(s);
    if (st != CNN_OK)
        return st;
    return rt_dist_step_end(s, train_step(s, labels, labels_are_classes, loss, correct), loss);
}

static cnn_status train_step(cnn_session *s, const float *labels, bool labels_are_classes, float *loss,
                             int64_t *correct)
{
    const ir_graph *g = s->plan->graph;
    if (g->label < 0 || g->loss < 0 || g->noutputs < 1)
        return rt_fail(s->err, CNN_ERR_INTERNAL, "the training plan has no loss");
    float *lab = s->data[g->label];
    const ir_value *out = &g->vals[g->outputs[0]];
    int64_t per = op_shape_numel(&out->shape);
    bool xent = s->train.loss == 0;
    if (xent || labels_are_classes) {
        for (int64_t i = 0; i < s->batch; i++) {
            float l = labels[i];
            if (!(l >= 0.0f && l < (float)per) || l != floorf(l))
                return rt_fail(s->err, CNN_ERR_INPUT, "label %g of example %" PRId64 " is not a class in [0, %" PRId64 ")",
                               (double)l, i, per);
        }
    }
    if (xent) {
        memcpy(lab, labels, sizeof(float) * (size_t)s->batch);
    } else if (labels_are_classes) {
        memset(lab, 0, sizeof(float) * (size_t)(s->batch * per));
        for (int64_t i = 0; i < s->batch; i++)
            lab[i * per + (int64_t)labels[i]] = 1.0f;
    } else {
        memcpy(lab, labels, sizeof(float) * (size_t)(s->batch * per));
    }
    cnn_status st = rt_execute(s);
    if (st != CNN_OK)
        return st;
    if (loss)
        *loss = s->data[g->loss][0];
    if (correct) {
        *correct = 0;
        if (xent || labels_are_classes) {
            const float *y = s->data[g->outputs[0]];
            for (int64_t i = 0; i < s->batch; i++) {
                int64_t best = 0;
                for (int64_t k = 1; k < per; k++)
                    if (y[i * per + k] > y[i * per + best])
                        best = k;
                if (best == (int64_t)labels[i])
                    (*correct)++;
            }
        }
    }
    return CNN_OK;
}

void cnn_session_memory(const cnn_session *s, cnn_memory_info *info)
{
    memset(info, 0, sizeof *info);
    if (!s->plan)
        return;
    info->naive = s->plan->naive_bytes;
    info->planned = s->plan->arena_bytes;
    info->lower_bound = s->plan->lower_bound;
}
