/* Fusion: folds cheap elementwise and pooling layers into the convolution or dense layer that
 * feeds them, so they run as that kernel's epilogue and no intermediate tensor is written:
 *
 *   add -> activation                      add with a fused activation
 *   conv/dense/batchnorm -> activation     conv/dense/batchnorm with a fused activation
 *   conv/batchnorm -> add(another tensor)  conv/batchnorm with a residual input (ResNet's block
 *                                          tail; the add's fused activation moves along)
 *   act_bwd -> batchnorm_bwd               batchnorm_bwd that applies the activation's backward
 *                                          to its dy first (training: the activation after a
 *                                          batchnorm)
 *   add -> act_bwd (as its dy)             act_bwd that sums its dy first (training: a gradient
 *                                          sum where a shortcut joins, before a block's relu)
 *   maxpool_bwd -> act_bwd                 maxpool_bwd that applies the backward of the
 *                                          activation before the pool (training: LeNet's relus)
 *   conv(+act) -> maxpool                  conv with fused max pooling (in training, where
 *                                          backward nodes read the pool's input, the conv
 *                                          keeps it as output 0 and pools into output 1)
 *   dense -> softmax                       dense with a fused softmax (inference)
 *
 * A producer is fused with its consumer only when the consumer is its only reader and the
 * producer's output is not a graph output (except the kept pool input): so in training graphs
 * every tensor the backward nodes read is still made (act_bwd reads the activation's output,
 * which the fused node now makes; maxpool_bwd reads the pool's input, which the conv keeps).
 * A batchnorm's other outputs (its saved statistics in training) stay its own. */
#include "compiler/passes.h"
#include "ops/registry.h"

#include <stdio.h>
#include <string.h>

static bool is_output(const ir_graph *g, int v)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v)
            return true;
    return v == g->loss;
}

/* The single live node reading v, or -1 (none, several, or v is an output). */
static int sole_reader(const ir_graph *g, int v)
{
    if (is_output(g, v))
        return -1;
    int reader = -1;
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] == v) {
                if (reader >= 0 && reader != n)
                    return -1;
                if (reader == n) /* read twice by the same node */
                    return -1;
                reader = n;
            }
    }
    return reader;
}

/* `into` takes over `from`'s output 0; `from` dies. */
static void absorb(ir_graph *g, int into, int from)
{
    ir_node *a = &g->nodes[into], *b = &g->nodes[from];
    int old = a->out[0];
    a->out[0] = b->out[0];
    g->vals[b->out[0]].producer = into;
    g->vals[old].producer = -1;
    pass_note_fused(a, b);
    b->dead = true;
}

/* `into` now reads what `from` read instead of `from`'s output 0, which no node makes any
 * more; `from` dies (the backward fusions: the consumer absorbs its producer). */
static void absorb_input(ir_graph *g, ir_node *into, ir_node *from)
{
    g->vals[from->out[0]].producer = -1;
    pass_note_fused(into, from);
    from->dead = true;
}

/* The activation an activation op applies (its registry entry's .act), else OP_ACT_NONE. */
static op_act act_of(const ir_node *nd)
{
    return op_def_get(nd->op)->act;
}

/* True when the node carries a fused epilogue already (registry: epilogue). */
static bool has_epilogue(const ir_node *nd)
{
    const op_def *def = op_def_get(nd->op);
    return def->epilogue && def->epilogue(&nd->attrs);
}

/* producer -> activation */
static int fuse_activations(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *p = &g->nodes[n];
        if (p->dead || p->nout < 1)
            continue;
        /* where the producer takes a fused activation (registry: act_slot), if it is free */
        const op_def *def = op_def_get(p->op);
        float *alpha = NULL;
        op_act *slot = def->act_slot ? def->act_slot(&p->attrs, &alpha) : NULL;
        if (!slot || *slot != OP_ACT_NONE)
            continue;
        int r = sole_reader(g, p->out[0]);
        if (r < 0 || act_of(&g->nodes[r]) == OP_ACT_NONE)
            continue;
        *slot = act_of(&g->nodes[r]);
        *alpha = g->nodes[r].attrs.act.alpha;
        absorb(g, n, r);
        changes++;
    }
    return changes;
}

/* The node's fused-residual flag (registry: residual_flag), or NULL. */
static bool *residual_flag(ir_node *nd)
{
    const op_def *def = op_def_get(nd->op);
    return def->residual_flag ? def->residual_flag(&nd->attrs) : NULL;
}

/* p -> add(p's output, other), p a conv or batchnorm: p adds `other` before its activation */
static int fuse_residuals(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *add = &g->nodes[n];
        if (add->dead || add->op != OP_ADD || add->nin != 2)
            continue;
        /* the later-made conv input takes the residual, so the other is ready before it runs */
        int best = -1, other = -1;
        for (int k = 0; k < 2; k++) {
            int p = g->vals[add->in[k]].producer;
            if (p < 0 || g->nodes[p].dead || !residual_flag(&g->nodes[p]))
                continue;
            if (has_epilogue(&g->nodes[p]) || sole_reader(g, add->in[k]) != n)
                continue;
            int o = add->in[1 - k];
            int op = g->vals[o].producer;
            if (op >= p)
                continue;
            if (best < 0 || p > best)
                best = p, other = o;
        }
        if (best < 0)
            continue;
        ir_node *p = &g->nodes[best];
        const op_def *def = op_def_get(p->op);
        float *alpha = NULL;
        op_act *act = def->act_slot ? def->act_slot(&p->attrs, &alpha) : NULL;
        if (p->nin >= OP_MAX_IN || !act)
            continue;
        *residual_flag(p) = true;
        *act = add->attrs.act.act;
        *alpha = add->attrs.act.alpha;
        p->in[p->nin++] = other;
        absorb(g, best, n);
        changes++;
    }
    return changes;
}

/* act_bwd(dy, y) -> batchnorm_bwd(its output, x, ...): the batchnorm_bwd reads dy and, as a
 * last input, y, and applies the activation's backward itself */
static int fuse_act_bwd(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *ab = &g->nodes[n];
        if (ab->dead || ab->op != OP_ACT_BWD || ab->nin != 2)
            continue;
        int r = sole_reader(g, ab->out[0]);
        if (r < 0)
            continue;
        ir_node *bb = &g->nodes[r];
        if (bb->op != OP_BATCHNORM_BWD || bb->nin != 5 || bb->in[0] != ab->out[0] || bb->attrs.bn.act != OP_ACT_NONE)
            continue;
        bb->attrs.bn.act = ab->attrs.act.act;
        bb->attrs.bn.alpha = ab->attrs.act.alpha;
        bb->in[0] = ab->in[0];
        bb->in[bb->nin++] = ab->in[1];
        absorb_input(g, bb, ab);
        changes++;
    }
    return changes;
}

/* The live node of kind op that makes the dy of node ab, an act_bwd of two inputs (dy, y), or
 * -1. */
static int act_bwd_dy_producer(const ir_graph *g, const ir_node *ab, op_kind op)
{
    if (ab->dead || ab->op != OP_ACT_BWD || ab->nin != 2)
        return -1;
    int p = g->vals[ab->in[0]].producer;
    return p >= 0 && !g->nodes[p].dead && g->nodes[p].op == op ? p : -1;
}

/* maxpool_bwd(dy, x) -> act_bwd(its output, x): the activation before a max pooling, whose
 * output is the pool's input; maxpool_bwd applies the activation's backward to each plane it
 * writes (LeNet's relu -> maxpool) */
static int fuse_pool_act_bwd(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *ab = &g->nodes[n];
        int p = act_bwd_dy_producer(g, ab, OP_MAXPOOL_BWD);
        if (p < 0)
            continue;
        ir_node *pb = &g->nodes[p];
        if (pb->nin != 2 || pb->attrs.pool.act != OP_ACT_NONE || pb->in[1] != ab->in[1] ||
            sole_reader(g, pb->out[0]) != n)
            continue;
        pb->attrs.pool.act = ab->attrs.act.act;
        pb->attrs.pool.alpha = ab->attrs.act.alpha;
        absorb(g, p, n);
        changes++;
    }
    return changes;
}

/* add(g1, g2, ...) -> act_bwd(its output, y): the act_bwd reads g1 as its dy and the others
 * after y, and sums them first */
static int fuse_grad_sums(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *ab = &g->nodes[n];
        int p = act_bwd_dy_producer(g, ab, OP_ADD);
        if (p < 0)
            continue;
        ir_node *add = &g->nodes[p];
        if (add->attrs.act.act != OP_ACT_NONE || add->nin < 2 ||
            ab->nin + add->nin - 1 > OP_MAX_IN || sole_reader(g, add->out[0]) != n)
            continue;
        ab->in[0] = add->in[0];
        for (int k = 1; k < add->nin; k++)
            ab->in[ab->nin++] = add->in[k];
        absorb_input(g, ab, add);
        changes++;
    }
    return changes;
}

/* A live max pooling node reading v as its input, or -1. */
static int pool_reader(const ir_graph *g, int v)
{
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        if (!nd->dead && nd->op == OP_MAXPOOL && nd->nin == 1 && nd->nout == 1 && nd->in[0] == v)
            return n;
    }
    return -1;
}

/* conv(+act) -> maxpool.  When the pool is the conv output's only reader, the pooled values
 * become the conv's output; in fp32 training (keep), where maxpool_bwd and act_bwd read the
 * pool's input too, the conv keeps that as output 0 and writes the pooled values as output 1
 * (pool_keep): the pooling then runs over each plane while it is in cache, and no pooling node
 * remains. */
static int fuse_pools(ir_graph *g, bool keep_ok)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *p = &g->nodes[n];
        if (p->dead || !(op_def_get(p->op)->props & OP_PROP_POOL_EPILOGUE) || p->attrs.conv.pool || p->nout != 1)
            continue;
        int r = sole_reader(g, p->out[0]);
        bool keep = false;
        if (r < 0 || g->nodes[r].op != OP_MAXPOOL) {
            r = keep_ok ? pool_reader(g, p->out[0]) : -1;
            if (r < 0)
                continue;
            keep = true;
        }
        const op_pool_attrs *pa = &g->nodes[r].attrs.pool;
        op_conv_attrs *c = &p->attrs.conv;
        c->pool = true;
        c->pool_keep = keep;
        for (int k = 0; k < 2; k++) {
            c->pool_size[k] = pa->size[k];
            c->pool_stride[k] = pa->stride[k];
            c->pool_pad[k] = pa->pad[k];
        }
        if (keep) {
            ir_node *m = &g->nodes[r];
            p->out[p->nout++] = m->out[0];
            g->vals[m->out[0]].producer = n;
            pass_note_fused(p, m);
            m->dead = true;
        } else {
            absorb(g, n, r);
        }
        changes++;
    }
    return changes;
}

/* dense -> softmax, in inference graphs */
static int fuse_softmax(ir_graph *g)
{
    int changes = 0;
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *p = &g->nodes[n];
        if (p->dead || p->op != OP_DENSE || p->attrs.dense.softmax)
            continue;
        int r = sole_reader(g, p->out[0]);
        if (r < 0 || g->nodes[r].op != OP_SOFTMAX)
            continue;
        p->attrs.dense.softmax = true;
        absorb(g, n, r);
        changes++;
    }
    return changes;
}

int pass_fuse(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    /* order matters: add+act first, so the residual fusion carries the activation along */
    *changes += fuse_activations(g);
    *changes += fuse_residuals(g);
    *changes += fuse_pools(g, ctx->training && ctx->precision == OP_PREC_FP32);
    *changes += fuse_act_bwd(g);
    *changes += fuse_pool_act_bwd(g);
    *changes += fuse_grad_sums(g); /* after those, which take act_bwd of two inputs */
    if (!ctx->training)
        *changes += fuse_softmax(g);
    return 0;
}
