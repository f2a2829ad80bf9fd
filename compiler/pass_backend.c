/* Backend assignment: records in every live node which backend runs it, from the capability
 * table the caller hands in (pass_ctx.caps, filled by the runtime from the kernel tables) and
 * the backend asked for.  Runs after the rewriting passes, so it sees the final ops (fused
 * ones included), and before the layout pass, which reads the backends.  It always runs,
 * even at -O0: the planner takes each step's backend from its node.  Under auto, a node the
 * caller picked a backend for (pass_ctx.picks: the runtime's measurements, runtime/tune.c) runs
 * there; the layout pass then puts in the reorders the mix implies.  Untuned, auto runs a node
 * on images of 16 channels or fewer on a backend whose kernel says it is the fast one there
 * (op_caps.few_channels: native max pooling's backward), an op on the backend whose kernel
 * is the fast one everywhere (op_caps.preferred: native batchnorm), and a first layer over one
 * input channel on the backend whose kernel is fast there (op_caps.first_layer). */
#include "compiler/passes.h"

#include <stdio.h>
#include <string.h>

#include "ops/registry.h"

op_backend pass_choose_backend(const op_caps *caps, op_kind op, plan_backend_choice c)
{
    static const op_backend order_auto[] = {OP_BACKEND_ONEDNN, OP_BACKEND_NATIVE, OP_BACKEND_REF};
    if (!caps || (int)op < 0 || op >= OP_COUNT)
        return OP_BACKEND_REF;
    switch (c) {
    case PLAN_BACKEND_REF: return OP_BACKEND_REF;
    case PLAN_BACKEND_NATIVE: return caps->has[op][OP_BACKEND_NATIVE] ? OP_BACKEND_NATIVE : OP_BACKEND_REF;
    case PLAN_BACKEND_ONEDNN: return caps->has[op][OP_BACKEND_ONEDNN] ? OP_BACKEND_ONEDNN : OP_BACKEND_REF;
    case PLAN_BACKEND_AUTO: break;
    }
    for (size_t i = 0; i < sizeof order_auto / sizeof order_auto[0]; i++)
        if (caps->has[op][order_auto[i]])
            return order_auto[i];
    return OP_BACKEND_REF;
}

/* The caller's pick for node nd, or OP_BACKEND_COUNT when it has none (or one without a kernel). */
static op_backend picked(const pass_ctx *ctx, const ir_node *nd)
{
    for (int i = 0; i < ctx->npicks; i++) {
        const plan_pick *p = &ctx->picks[i];
        if (p->op == nd->op && (int)p->backend >= 0 && p->backend < OP_BACKEND_COUNT &&
            strcmp(p->name, nd->name) == 0)
            return ctx->caps->has[nd->op][p->backend] ? p->backend : OP_BACKEND_COUNT;
    }
    return OP_BACKEND_COUNT;
}

/* Whether node nd computes in fp32 (bf16 training marks its conv and dense nodes, forward and
 * backward, which then stay on the backend the precision asks for; conv_q is int8 or bf16). */
static bool fp32(const ir_node *nd)
{
    switch (nd->op) {
    case OP_DENSE:
    case OP_DENSE_BWD_DATA:
    case OP_DENSE_BWD_WEIGHTS: return nd->attrs.dense.prec == OP_PREC_FP32;
    case OP_CONV_Q:
    case OP_CONV_BWD_DATA:
    case OP_CONV_BWD_WEIGHTS: return nd->attrs.conv.prec == OP_PREC_FP32;
    default: return !(op_def_get(nd->op)->props & OP_PROP_CONV) || nd->attrs.conv.prec == OP_PREC_FP32;
    }
}

/* Whether node nd works on images (or signals, volumes) of 16 channels or fewer: its first
 * input is a batched [C, ...] value with spatial positions.  For a convolution's backward to
 * the data: in fp32, dx (the forward's input) has fewer than 16 channels, and the 2-D kernel
 * of one group, column dilation 1, over them is at most 160 values (native_conv.h's outer
 * products). */
static bool few_channels(const ir_graph *g, const ir_node *nd)
{
    if (nd->nin < 1)
        return false;
    if (nd->op == OP_CONV_BWD_DATA) {
        const op_conv_attrs *a = &nd->attrs.conv;
        const ir_value *dx = &g->vals[nd->out[0]];
        return nd->nout == 1 && fp32(nd) && a->sdims == 2 && a->groups == 1 && a->dilation[1] == 1 && dx->shape.rank == 3 &&
               dx->shape.d[0] < 16 && dx->shape.d[0] * a->kernel[0] * a->kernel[1] <= 160;
    }
    const ir_value *v = &g->vals[nd->in[0]];
    return v->batched && v->shape.rank >= 2 && v->shape.d[0] <= 16;
}

/* Whether node nd is an fp32 2-D convolution (or its weight gradient) of one group over one
 * input channel with rows of at most 32 outputs at column stride and dilation 1 (what
 * op_caps.first_layer speaks of). */
static bool grey_first_layer(const ir_graph *g, const ir_node *nd)
{
    int xi = nd->op == OP_CONV2D ? 0 : nd->op == OP_CONV_BWD_WEIGHTS ? 1 : -1;
    if (xi < 0 || nd->nin <= xi)
        return false;
    const op_conv_attrs *a = &nd->attrs.conv;
    const ir_value *x = &g->vals[nd->in[xi]];
    if (!fp32(nd) || a->groups != 1 || a->sdims != 2 || x->shape.rank != 3 || x->shape.d[0] != 1 ||
        a->stride[1] != 1 || a->dilation[1] != 1)
        return false;
    int64_t ow = x->shape.d[2] + 2 * a->pad[1] - a->kernel[1] + 1;
    return ow >= 1 && ow <= 32;
}

/* The first backend a capability row names, or OP_BACKEND_COUNT when none. */
static op_backend first_backend(const bool row[OP_BACKEND_COUNT])
{
    for (int k = 0; k < OP_BACKEND_COUNT; k++)
        if (row[k])
            return (op_backend)k;
    return OP_BACKEND_COUNT;
}

int pass_backend(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    if (!ctx->caps) {
        snprintf(err, errlen, "no kernel capability table given to the compiler");
        return -1;
    }
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        op_backend b = ctx->backend == PLAN_BACKEND_AUTO ? picked(ctx, nd) : OP_BACKEND_COUNT;
        bool unpicked = b == OP_BACKEND_COUNT && ctx->backend == PLAN_BACKEND_AUTO; /* untuned auto, or a node the tuner left */
        if (unpicked && fp32(nd))
            b = first_backend(ctx->caps->preferred[nd->op]);
        if (unpicked && b == OP_BACKEND_COUNT && few_channels(g, nd))
            b = first_backend(ctx->caps->few_channels[nd->op]);
        if (unpicked && b == OP_BACKEND_COUNT && grey_first_layer(g, nd))
            b = first_backend(ctx->caps->first_layer[nd->op]);
        if (b == OP_BACKEND_COUNT)
            b = pass_choose_backend(ctx->caps, nd->op, ctx->backend);
        /* an int8 conv over few input channels is int8 only because some backend's kernel is
         * fast there (pass_precision): under auto it runs on that backend, whatever was picked */
        if (ctx->backend == PLAN_BACKEND_AUTO && nd->op == OP_CONV_Q && nd->attrs.conv.prec == OP_PREC_INT8 &&
            !ctx->caps->int8_few_channels[nd->op][b] && pass_precision_few_channels(g, nd))
            for (int k = 0; k < OP_BACKEND_COUNT; k++)
                if (ctx->caps->int8_few_channels[nd->op][k])
                    b = (op_backend)k;
        if (!ctx->caps->has[nd->op][b]) {
            snprintf(err, errlen, "%s (%s): no kernel on any backend", nd->name, op_name(nd->op));
            return -1;
        }
        *changes += nd->backend != b;
        nd->backend = b;
    }
    return 0;
}
