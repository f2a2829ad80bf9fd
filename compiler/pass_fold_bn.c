/* Batchnorm folding (inference graphs only): a batchnorm whose input is made by a convolution
 * or dense layer (with no epilogue) and read by nothing else is folded into that layer:
 *
 *   s = gamma / sqrt(running_var + eps)
 *   W' = W * s (per output channel),  b' = (b - running_mean) * s + beta
 *
 * The weights are not constants of the graph (they are loaded and can change), so the fold
 * is a bn_fold node that computes W' and b' from the stored tensors; the planner marks it a
 * weights-only step, which the executor reruns only when the weights change.  The layer then
 * reads W' and b' and makes the batchnorm's output itself. */
#include "compiler/passes.h"
#include "ops/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_output(const ir_graph *g, int v)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v)
            return true;
    return false;
}

/* Moves node `from` (the last one) to index `to`, shifting the ones between. */
static void move_node_before(ir_graph *g, int from, int to)
{
    ir_node moved = g->nodes[from];
    memmove(&g->nodes[to + 1], &g->nodes[to], sizeof(ir_node) * (size_t)(from - to));
    g->nodes[to] = moved;
    for (int v = 0; v < g->nvals; v++) {
        int p = g->vals[v].producer;
        if (p == from)
            g->vals[v].producer = to;
        else if (p >= to && p < from)
            g->vals[v].producer = p + 1;
    }
}

/* A layer with weights whose bias flag the registry locates (conv, dense: it reads x, weight
 * [, bias]) and no fused epilogue. */
static bool foldable_producer(const ir_node *p)
{
    if (p->dead)
        return false;
    const op_def *def = op_def_get(p->op);
    if (!def->bias_flag || !def->params)
        return false;
    return !(def->epilogue && def->epilogue(&p->attrs));
}

static int readers(const ir_graph *g, int v)
{
    int r = 0;
    for (int n = 0; n < g->nnodes; n++)
        if (!g->nodes[n].dead)
            for (int k = 0; k < g->nodes[n].nin; k++)
                r += g->nodes[n].in[k] == v;
    return r;
}

int pass_fold_bn(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    if (ctx->training)
        return 0; /* batch statistics in training: nothing to fold */
    for (int n = 0; n < g->nnodes; n++) {
        if (g->nodes[n].dead || g->nodes[n].op != OP_BATCHNORM || g->nodes[n].attrs.bn.training)
            continue;
        int x = g->nodes[n].in[0];
        int pi = g->vals[x].producer;
        if (pi < 0 || !foldable_producer(&g->nodes[pi]) || readers(g, x) != 1 || is_output(g, x))
            continue;
        /* a dense layer on a rank-3 input feeds batchnorm a rank-1 tensor: channels = units */
        ir_node p = g->nodes[pi], bn = g->nodes[n];
        const op_def *pdef = op_def_get(p.op);
        bool bias = *pdef->bias_flag(&p.attrs);
        int w = p.in[1], b = bias ? p.in[2] : -1;
        char name[OP_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.weight(folded)", p.name);
        op_shape wsh = g->vals[w].shape;
        int wf = ir_add_value(g, IR_VAL_SCRATCH, &wsh, false, name);
        snprintf(name, sizeof name, "%s.bias(folded)", p.name);
        op_shape bsh = {.rank = 1, .d = {wsh.d[0]}};
        int bf = ir_add_value(g, IR_VAL_SCRATCH, &bsh, false, name);
        if (wf < 0 || bf < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int in[6], nin = 0;
        in[nin++] = w;
        if (bias)
            in[nin++] = b;
        for (int k = 1; k <= 4; k++)
            in[nin++] = bn.in[k]; /* gamma, beta, running_mean, running_var */
        int out[2] = {wf, bf};
        snprintf(name, sizeof name, "%s.fold", bn.name);
        int f = ir_add_node(g, OP_BN_FOLD, &bn.attrs, nin, in, 2, out, name, bn.span);
        if (f < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        move_node_before(g, f, pi); /* the fold runs before the layer; pi and n shift by one */
        pi++, n++;
        ir_node *pp = &g->nodes[pi];
        pp->in[1] = wf;
        pp->in[2] = bf;
        if (!bias) {
            pp->nin = 3;
            *pdef->bias_flag(&pp->attrs) = true;
        }
        int old = pp->out[0];
        pp->out[0] = g->nodes[n].out[0];
        g->vals[pp->out[0]].producer = pi;
        g->vals[old].producer = -1;
        pass_note_fused(pp, &g->nodes[n]);
        g->nodes[n].dead = true;
        (*changes)++;
    }
    return 0;
}
