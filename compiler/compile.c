/* The compile pipeline (compiler/compile.h): graph -> [autodiff] -> passes -> plan. */
#include "compiler/compile.h"

#include <stdint.h>
#include <stdio.h>

#include "compiler/build.h"
#include "compiler/passes.h"
#include "ops/checked.h"
#include "ops/mem.h"

ir_graph *compile_graph(const lang_network *net, diag_list *diags)
{
    return ir_build(net, diags);
}

/* Every tensor of the unoptimised graph in its own buffer, 64-byte aligned: what planning
 * is measured against. */
static size_t naive_bytes(const ir_graph *g, int64_t batch)
{
    size_t naive = 0;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind == IR_VAL_PARAM || val->kind == IR_VAL_STATE || val->kind == IR_VAL_OPTSTATE)
            continue;
        size_t bytes;
        if (!ck_bytes(op_shape_numel(&val->shape), val->batched ? batch : 1, sizeof(float), &bytes) ||
            !ck_align_up(bytes, 64, &bytes) || !ck_add_size(naive, bytes, &naive))
            return SIZE_MAX; /* saturated: the planner refuses such a graph */
    }
    return naive;
}

/* Why a step failed that reports only a message: autodiff, the passes and the planner say
 * "out of memory" when that was the cause. */
static plan_status failure(const char *err, plan_status otherwise)
{
    return cnn_mem_is_oom(err) ? PLAN_NOMEM : otherwise;
}

ir_plan *compile_plan(const ir_graph *src, const compile_options *o, plan_status *why, char *err, size_t errlen)
{
    plan_status ignored;
    if (!why)
        why = &ignored;
    if (errlen)
        err[0] = '\0';
    *why = PLAN_FAILED;
    ir_graph *g = ir_graph_clone(src);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        *why = PLAN_NOMEM;
        return NULL;
    }
    /* autodiff refuses networks it cannot train as asked (cross_entropy on an output that is
     * no vector): the network's fault */
    if (o->training && ir_autodiff(g, &o->ad, err, errlen) != 0) {
        *why = failure(err, PLAN_INVALID);
        ir_graph_destroy(g);
        return NULL;
    }
    size_t naive = naive_bytes(g, o->batch);
    pass_ctx ctx = {.training = o->training, .backend = o->backend, .caps = o->caps, .precision = o->precision,
                    .picks = o->picks, .npicks = o->npicks, .conv_algo = o->conv_algo, .batch = o->batch};
    if (pass_run_pipeline(g, o->passes, &ctx, o->verify, err, errlen) != 0) {
        *why = failure(err, PLAN_FAILED);
        ir_graph_destroy(g);
        return NULL;
    }
    plan_options po = {
        .batch = o->batch,
        .backend = o->backend,
        .plan_memory = (o->passes & PASS_PLAN) != 0,
        .inplace = (o->passes & PASS_INPLACE) != 0,
    };
    ir_plan *p = plan_create(g, &po, why, err, errlen);
    if (p)
        p->naive_bytes = naive;
    else if (*why == PLAN_FAILED)
        *why = failure(err, PLAN_FAILED);
    return p;
}
