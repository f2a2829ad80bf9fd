/* Convolution algorithm: asks for Winograd's algorithm (attrs.conv.winograd) on the fp32 3x3
 * stride-1 2-D convolutions where it pays, on the backends whose kernels have it
 * (op_caps.winograd: oneDNN, and native's channels-last kernels, on AVX-512; a kernel takes
 * the calls it can and runs the others directly).  Winograd's F(4x4, 3x3) does a quarter of
 * direct convolution's multiplications, but transforms every input and output tile; its results round
 * differently from direct ones (relative differences about 1e-6 to 1e-5 per layer).
 *
 * pass_ctx.conv_algo says where:
 *   - direct: nowhere (the default without tuning);
 *   - winograd: every eligible node;
 *   - auto: the node's pick when the caller measured it (pass_ctx.picks, runtime/tune.c), else
 *     eligible nodes with at least 32 input and 32 output channels doing at least 8 MFLOP
 *     per call.  Below that the transforms cost more than they save: on the machine we measured
 *     (AVX-512, 2 threads), Winograd took 1.3-1.4x direct's time at 16 channels and batch 64,
 *     and 1.5x at 64 channels, 8x8, batch 1 (4.7 MFLOP), while it took 0.4-0.75x from 9.4 MFLOP
 *     up with 32 or more channels (`cnnc bench NET --profile --conv-algo direct` and `winograd` give them per node).
 * A convolution's backward nodes carry its attributes, so they get the same choice (oneDNN runs
 * all three passes by Winograd, with the forward as their hint).  In a training graph the
 * weights change every step: the nodes say so (attrs.conv.weights_vary), and oneDNN then
 * transforms them inside the kernel instead of in a reorder made for weights that stay.
 * Runs after the backend pass:
 * only the backend running a node decides whether it can. */
#include "compiler/passes.h"

#include <string.h>

#include "ops/registry.h"

bool pass_conv_algo_node(const ir_node *nd)
{
    return nd->op == OP_CONV2D || nd->op == OP_CONV_BWD_DATA || nd->op == OP_CONV_BWD_WEIGHTS;
}

plan_algo_pick pass_conv_algo_pick(const ir_node *nd)
{
    if (!pass_conv_algo_node(nd))
        return PLAN_ALGO_ANY;
    return nd->attrs.conv.winograd ? PLAN_ALGO_WINOGRAD : PLAN_ALGO_DIRECT;
}

/* The weight shape [F, C, kh, kw] and the output's [F, OH, OW] of a conv-family node, or false. */
static bool conv_shapes(const ir_graph *g, const ir_node *nd, const op_shape **w, const op_shape **y)
{
    switch (nd->op) {
    case OP_CONV2D:
        if (nd->nin < 2 || nd->nout < 1) return false;
        *w = &g->vals[nd->in[1]].shape;
        *y = &g->vals[nd->out[0]].shape;
        return true;
    case OP_CONV_BWD_DATA: /* dy, w -> dx */
        if (nd->nin < 2) return false;
        *w = &g->vals[nd->in[1]].shape;
        *y = &g->vals[nd->in[0]].shape;
        return true;
    case OP_CONV_BWD_WEIGHTS: /* dy, x -> dw */
        if (nd->nin < 1 || nd->nout < 1) return false;
        *w = &g->vals[nd->out[0]].shape;
        *y = &g->vals[nd->in[0]].shape;
        return true;
    default:
        return false;
    }
}

/* Whether node nd may run by Winograd at all: an fp32 3x3, stride-1, undilated, ungrouped 2-D
 * convolution on a backend that has it. */
static bool eligible(const ir_graph *g, const ir_node *nd, const pass_ctx *ctx, const op_shape **w,
                     const op_shape **y)
{
    const op_conv_attrs *a = &nd->attrs.conv;
    if (nd->dead || !ctx->caps || !ctx->caps->winograd[nd->op][nd->backend] || !conv_shapes(g, nd, w, y))
        return false;
    return a->sdims == 2 && a->prec == OP_PREC_FP32 && a->kernel[0] == 3 && a->kernel[1] == 3 &&
           a->stride[0] == 1 && a->stride[1] == 1 && a->dilation[0] == 1 && a->dilation[1] == 1 &&
           a->groups <= 1 && (*w)->rank == 4 && (*y)->rank == 3;
}

/* auto's rule (the header comment). */
static bool pays(const op_shape *w, const op_shape *y, int64_t batch)
{
    int64_t f = w->d[0], c = w->d[1];
    double flop = 2.0 * (double)(batch > 0 ? batch : 1) * (double)y->d[1] * (double)y->d[2] * (double)f *
                  (double)c * 9.0;
    return c >= 32 && f >= 32 && flop >= 8e6;
}

/* The caller's algorithm for node nd (pass_ctx.picks: the runtime's measurements), or ANY. */
static plan_algo_pick picked(const pass_ctx *ctx, const ir_node *nd)
{
    for (int i = 0; i < ctx->npicks; i++)
        if (ctx->picks[i].op == nd->op && strcmp(ctx->picks[i].name, nd->name) == 0)
            return ctx->picks[i].algo;
    return PLAN_ALGO_ANY;
}

int pass_conv_algo(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *nd = &g->nodes[n];
        const op_shape *w, *y;
        bool wino = false;
        plan_algo_pick pick = ctx->conv_algo == PLAN_CONV_AUTO ? picked(ctx, nd) : PLAN_ALGO_ANY;
        if (ctx->conv_algo != PLAN_CONV_DIRECT && eligible(g, nd, ctx, &w, &y))
            wino = pick != PLAN_ALGO_ANY ? pick == PLAN_ALGO_WINOGRAD
                                         : ctx->conv_algo == PLAN_CONV_WINOGRAD || pays(w, y, ctx->batch);
        if (pass_conv_algo_node(nd)) {
            *changes += nd->attrs.conv.winograd != wino;
            nd->attrs.conv.winograd = wino;
            nd->attrs.conv.weights_vary = wino && ctx->training;
        }
    }
    return 0;
}
