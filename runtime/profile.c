/* Per-node profiling of a session: the executor (runtime/session.c) hands every step's time of
 * a recorded run to rt_profile_record; cnn_session_profile_entry turns the runs into a median
 * with its spread, and names the node's backend, layout and phase for the report. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler/build.h"
#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/rt.h"

double rt_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

cnn_status cnn_session_profile_start(cnn_session *s, int runs)
{
    if (!s || !s->plan)
        return CNN_ERR_USAGE;
    if (runs < 0 || runs > 100000)
        return rt_fail(s->err, CNN_ERR_USAGE, "profiling records 0 to 100000 runs, not %d", runs);
    cnn_mem_free(s->prof);
    s->prof = NULL;
    s->prof_cap = s->prof_runs = 0;
    if (runs == 0)
        return CNN_OK;
    size_t n = (size_t)runs * (size_t)(s->plan->nsteps > 0 ? s->plan->nsteps : 1);
    s->prof = cnn_mem_calloc(n, sizeof(double));
    if (!s->prof)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    s->prof_cap = runs;
    return CNN_OK;
}

void rt_profile_record(cnn_session *s, int st, double seconds)
{
    if (s->prof_runs < s->prof_cap)
        s->prof[(size_t)s->prof_runs * (size_t)s->plan->nsteps + (size_t)st] = seconds;
}

void rt_profile_end_run(cnn_session *s)
{
    if (s->prof_runs < s->prof_cap)
        s->prof_runs++;
}

int cnn_session_profile_steps(const cnn_session *s) { return s && s->plan ? s->plan->nsteps : 0; }

int rt_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* forward, backward (it makes a gradient) or update (it writes a weight in place) */
const char *rt_node_phase(const ir_graph *g, const ir_node *nd)
{
    const op_def *d = op_def_get(nd->op);
    if (d && d->updates_inputs && d->updates_inputs(&nd->attrs))
        return "update";
    for (int k = 0; k < nd->nout; k++) {
        ir_valkind kind = g->vals[nd->out[k]].kind;
        if (kind == IR_VAL_GRAD || kind == IR_VAL_PGRAD)
            return "backward";
    }
    return "forward";
}

cnn_status cnn_session_profile_entry(const cnn_session *s, int i, cnn_profile_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!s || !s->plan || i < 0 || i >= s->plan->nsteps)
        return CNN_ERR_USAGE;
    const ir_graph *g = s->plan->graph;
    int n = s->plan->steps[i].node;
    const ir_node *nd = &g->nodes[n];
    e->name = nd->name;
    e->op = op_name(nd->op);
    e->backend = op_backend_name(s->plan->steps[i].backend);
    e->layout = op_layout_name(nd->nin > 0 ? g->vals[nd->in[0]].layout : OP_LAYOUT_PLAIN);
    e->phase = rt_node_phase(g, nd);
    e->flops = (double)ir_node_flops(g, n) * (double)s->batch;
    e->runs = s->prof_runs;
    if (s->prof_runs == 0)
        return CNN_OK;
    double *t = malloc(sizeof(double) * (size_t)s->prof_runs);
    if (!t)
        return CNN_ERR_NOMEM;
    for (int r = 0; r < s->prof_runs; r++)
        t[r] = s->prof[(size_t)r * (size_t)s->plan->nsteps + (size_t)i];
    qsort(t, (size_t)s->prof_runs, sizeof(double), rt_cmp_double);
    int m = s->prof_runs;
    e->min_s = t[0];
    e->max_s = t[m - 1];
    e->median_s = m % 2 ? t[m / 2] : 0.5 * (t[m / 2 - 1] + t[m / 2]);
    free(t);
    return CNN_OK;
}
