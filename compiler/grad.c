/* Gradient rules, one per differentiable op; the registry's entries point here (.grad).
 * Each appends the backward nodes for one forward node and reports the gradient value of each
 * of its inputs (ops/ref.h gives the backward ops' tensor orders).  Only inputs that can carry
 * a gradient get one: activations and trainable parameters, never network inputs or running
 * statistics. */
#include "compiler/grad.h"

#include <stdio.h>
#include <string.h>

static bool wants_grad(const ir_graph *g, int v)
{
    ir_valkind k = g->vals[v].kind;
    return k == IR_VAL_ACT || k == IR_VAL_PARAM;
}

/* A new gradient value shaped like v: GRAD for activations, PGRAD for parameters. */
static int grad_value(ir_graph *g, int v)
{
    char name[IR_NAME_MAX];
    snprintf(name, sizeof name, "d(%.*s)", IR_NAME_MAX - 4, g->vals[v].name);
    ir_value src = g->vals[v];
    bool param = src.kind == IR_VAL_PARAM;
    int gv = ir_add_value(g, param ? IR_VAL_PGRAD : IR_VAL_GRAD, &src.shape, src.batched, name);
    if (gv >= 0)
        g->vals[gv].param_of = param ? v : -1;
    return gv;
}

static int emit(ir_graph *g, ir_op op, const ir_attrs *a, int nin, const int *in, int nout, const int *out,
                const ir_node *fwd, const char *what, ir_err *e)
{
    char name[IR_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s.%s", fwd->name, what);
    name[IR_NAME_MAX - 1] = '\0';
    if (ir_add_node(g, op, a, nin, in, nout, out, name, fwd->span) < 0) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return -1;
    }
    return 0;
}

#define OOM()                                           \
    do {                                                \
        snprintf(e->msg, sizeof e->msg, "out of memory"); \
        return -1;                                      \
    } while (0)

/* conv1d/conv2d and dense share a shape: data gradient from (dy, w), weight gradient from
 * (dy, x). */
static int grad_linear(ir_graph *g, int node, const int *gout, int *gin, ir_err *e, ir_op bwd_data,
                       ir_op bwd_weights)
{
    ir_node fwd = g->nodes[node];
    int dy = gout[0];
    if (dy < 0)
        return 0;
    int x = fwd.in[0], w = fwd.in[1];
    bool bias = fwd.op == IR_OP_DENSE ? fwd.attrs.dense.bias : fwd.attrs.conv.bias;
    int b = bias ? fwd.in[2] : -1;
    if (wants_grad(g, x)) {
        int dx = grad_value(g, x);
        if (dx < 0)
            OOM();
        int in[2] = {dy, w};
        if (emit(g, bwd_data, &fwd.attrs, 2, in, 1, &dx, &fwd, "bwd_data", e))
            return -1;
        gin[0] = dx;
    }
    int dw = grad_value(g, w);
    int db = bias ? grad_value(g, b) : -1;
    if (dw < 0 || (bias && db < 0))
        OOM();
    int in[2] = {dy, x}, out[2] = {dw, db};
    if (emit(g, bwd_weights, &fwd.attrs, 2, in, bias ? 2 : 1, out, &fwd, "bwd_weights", e))
        return -1;
    gin[1] = dw;
    if (bias)
        gin[2] = db;
    return 0;
}

int ir_grad_conv(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    const ir_conv_attrs *c = &g->nodes[node].attrs.conv;
    if (c->residual || c->act != IR_ACT_NONE || c->pool) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused convolution has no gradient rule", g->nodes[node].name);
        return -1;
    }
    return grad_linear(g, node, gout, gin, e, IR_OP_CONV_BWD_DATA, IR_OP_CONV_BWD_WEIGHTS);
}

int ir_grad_dense(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    const ir_dense_attrs *d = &g->nodes[node].attrs.dense;
    if (d->act != IR_ACT_NONE || d->softmax) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused dense layer has no gradient rule", g->nodes[node].name);
        return -1;
    }
    return grad_linear(g, node, gout, gin, e, IR_OP_DENSE_BWD_DATA, IR_OP_DENSE_BWD_WEIGHTS);
}

/* Ops whose input gradient is one backward op of (dy [, extra]) -> dx. */
static int grad_unary(ir_graph *g, int node, const int *gout, int *gin, ir_err *e, ir_op bwd, int extra,
                      const ir_attrs *attrs)
{
    ir_node fwd = g->nodes[node];
    int dy = gout[0], x = fwd.in[0];
    if (dy < 0 || !wants_grad(g, x))
        return 0;
    int dx = grad_value(g, x);
    if (dx < 0)
        OOM();
    int in[2] = {dy, extra};
    if (emit(g, bwd, attrs ? attrs : &fwd.attrs, extra >= 0 ? 2 : 1, in, 1, &dx, &fwd, "bwd", e))
        return -1;
    gin[0] = dx;
    return 0;
}

int ir_grad_maxpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    return grad_unary(g, node, gout, gin, e, IR_OP_MAXPOOL_BWD, g->nodes[node].in[0], NULL);
}

int ir_grad_avgpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    return grad_unary(g, node, gout, gin, e, IR_OP_AVGPOOL_BWD, -1, NULL);
}

int ir_grad_global_avgpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    return grad_unary(g, node, gout, gin, e, IR_OP_GLOBAL_AVGPOOL_BWD, -1, NULL);
}

/* flatten's gradient is the same copy back into the input's shape */
int ir_grad_flatten(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    return grad_unary(g, node, gout, gin, e, IR_OP_FLATTEN, -1, NULL);
}

int ir_grad_dropout(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    const ir_node *fwd = &g->nodes[node];
    if (!fwd->attrs.dropout.training || fwd->nout < 2) /* identity outside training */
        return grad_unary(g, node, gout, gin, e, IR_OP_FLATTEN, -1, NULL);
    return grad_unary(g, node, gout, gin, e, IR_OP_DROPOUT_BWD, fwd->out[1], NULL);
}

int ir_grad_act(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    const ir_node *fwd = &g->nodes[node];
    ir_attrs a;
    memset(&a, 0, sizeof a);
    a.act = fwd->attrs.act;
    switch (fwd->op) {
    case IR_OP_RELU: a.act.act = IR_ACT_RELU; break;
    case IR_OP_SIGMOID: a.act.act = IR_ACT_SIGMOID; break;
    case IR_OP_TANH: a.act.act = IR_ACT_TANH; break;
    case IR_OP_LEAKY_RELU: a.act.act = IR_ACT_LEAKY_RELU; break;
    default: break;
    }
    /* act_bwd reads the forward output, except leaky_relu with a slope <= 0, whose output's
     * sign no longer tells the input's */
    int t = (a.act.act == IR_ACT_LEAKY_RELU && a.act.alpha <= 0.0f) ? fwd->in[0] : fwd->out[0];
    return grad_unary(g, node, gout, gin, e, IR_OP_ACT_BWD, t, &a);
}

int ir_grad_softmax(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    return grad_unary(g, node, gout, gin, e, IR_OP_SOFTMAX_BWD, g->nodes[node].out[0], NULL);
}

int ir_grad_batchnorm(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    ir_node fwd = g->nodes[node];
    int dy = gout[0];
    if (dy < 0)
        return 0;
    if (!fwd.attrs.bn.training || fwd.nout < 3) {
        snprintf(e->msg, sizeof e->msg, "%s: batchnorm in inference mode has no gradient rule here", fwd.name);
        return -1;
    }
    int x = fwd.in[0], gamma = fwd.in[1], beta = fwd.in[2];
    int dx = grad_value(g, x), dgamma = grad_value(g, gamma), dbeta = grad_value(g, beta);
    if (dx < 0 || dgamma < 0 || dbeta < 0)
        OOM();
    int in[5] = {dy, x, gamma, fwd.out[1], fwd.out[2]}, out[3] = {dx, dgamma, dbeta};
    if (emit(g, IR_OP_BATCHNORM_BWD, &fwd.attrs, 5, in, 3, out, &fwd, "bwd", e))
        return -1;
    /* a network input's gradient is computed (batchnorm_bwd always makes dx) but not passed on */
    gin[0] = wants_grad(g, x) ? dx : -1;
    gin[1] = dgamma;
    gin[2] = dbeta;
    return 0;
}

int ir_grad_concat(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    ir_node fwd = g->nodes[node];
    int dy = gout[0];
    if (dy < 0)
        return 0;
    int64_t offset = 0;
    for (int k = 0; k < fwd.nin; k++) {
        int x = fwd.in[k];
        int64_t ch = g->vals[x].shape.d[0];
        if (wants_grad(g, x)) {
            int dx = grad_value(g, x);
            if (dx < 0)
                OOM();
            ir_attrs a;
            memset(&a, 0, sizeof a);
            a.slice.offset = offset;
            char what[32];
            snprintf(what, sizeof what, "bwd%d", k + 1);
            if (emit(g, IR_OP_CONCAT_BWD, &a, 1, &dy, 1, &dx, &fwd, what, e))
                return -1;
            gin[k] = dx;
        }
        offset += ch;
    }
    return 0;
}

/* y = act(x1 + x2 + ...): without an activation every input's gradient is dy itself. */
int ir_grad_add(ir_graph *g, int node, const int *gout, int *gin, ir_err *e)
{
    const ir_node *fwd = &g->nodes[node];
    if (fwd->attrs.act.act != IR_ACT_NONE) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused add has no gradient rule", fwd->name);
        return -1;
    }
    for (int k = 0; k < fwd->nin; k++)
        gin[k] = (gout[0] >= 0 && wants_grad(g, fwd->in[k])) ? gout[0] : -1;
    return 0;
}
