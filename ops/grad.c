/* Gradient rules, one per differentiable op; the registry's entries point here (.grad).
 * Each appends the backward nodes for one forward node through the op_grad_ctx its caller
 * (compiler/autodiff.c) provides, and reports the gradient value of each of its inputs
 * (ops/ref.h gives the backward ops' tensor orders).  Only inputs that can carry a gradient
 * get one: activations and trainable parameters, never network inputs or running statistics. */
#include "ops/grad.h"

#include <stdio.h>
#include <string.h>

static int emit(const op_grad_ctx *c, op_kind op, const op_attrs *a, int nin, const int *in, int nout,
                const int *out, const char *what, op_err *e)
{
    if (c->emit(c, op, a, nin, in, nout, out, what) < 0) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return -1;
    }
    return 0;
}

#define OOM()                                             \
    do {                                                  \
        snprintf(e->msg, sizeof e->msg, "out of memory"); \
        return -1;                                        \
    } while (0)

/* conv1d/conv2d/conv3d and dense share a shape: data gradient from (dy, w), weight gradient
 * from (dy, x). */
static int grad_linear(const op_grad_ctx *c, op_err *e, bool bias, op_kind bwd_data, op_kind bwd_weights)
{
    int dy = c->gout[0];
    if (dy < 0)
        return 0;
    int x = c->in[0], w = c->in[1];
    int b = bias ? c->in[2] : -1;
    if (c->wants_grad(c, x)) {
        int dx = c->grad_value(c, x);
        if (dx < 0)
            OOM();
        int in[2] = {dy, w};
        if (emit(c, bwd_data, &c->fwd->attrs, 2, in, 1, &dx, "bwd_data", e))
            return -1;
        c->gin[0] = dx;
    }
    int dw = c->grad_value(c, w);
    int db = bias ? c->grad_value(c, b) : -1;
    if (dw < 0 || (bias && db < 0))
        OOM();
    int in[2] = {dy, x}, out[2] = {dw, db};
    if (emit(c, bwd_weights, &c->fwd->attrs, 2, in, bias ? 2 : 1, out, "bwd_weights", e))
        return -1;
    c->gin[1] = dw;
    if (bias)
        c->gin[2] = db;
    return 0;
}

int op_grad_conv(const op_grad_ctx *c, op_err *e)
{
    const op_conv_attrs *a = &c->fwd->attrs.conv;
    if (a->residual || a->act != OP_ACT_NONE || a->pool) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused convolution has no gradient rule", c->fwd->name);
        return -1;
    }
    return grad_linear(c, e, a->bias, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS);
}

int op_grad_dense(const op_grad_ctx *c, op_err *e)
{
    const op_dense_attrs *d = &c->fwd->attrs.dense;
    if (d->act != OP_ACT_NONE || d->softmax) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused dense layer has no gradient rule", c->fwd->name);
        return -1;
    }
    return grad_linear(c, e, d->bias, OP_DENSE_BWD_DATA, OP_DENSE_BWD_WEIGHTS);
}

/* Ops whose input gradient is one backward op of (dy [, extra]) -> dx. */
static int grad_unary(const op_grad_ctx *c, op_err *e, op_kind bwd, int extra, const op_attrs *attrs)
{
    int dy = c->gout[0], x = c->in[0];
    if (dy < 0 || !c->wants_grad(c, x))
        return 0;
    int dx = c->grad_value(c, x);
    if (dx < 0)
        OOM();
    int in[2] = {dy, extra};
    if (emit(c, bwd, attrs ? attrs : &c->fwd->attrs, extra >= 0 ? 2 : 1, in, 1, &dx, "bwd", e))
        return -1;
    c->gin[0] = dx;
    return 0;
}

int op_grad_maxpool(const op_grad_ctx *c, op_err *e)
{
    return grad_unary(c, e, OP_MAXPOOL_BWD, c->in[0], NULL);
}

int op_grad_avgpool(const op_grad_ctx *c, op_err *e)
{
    return grad_unary(c, e, OP_AVGPOOL_BWD, -1, NULL);
}

int op_grad_global_avgpool(const op_grad_ctx *c, op_err *e)
{
    return grad_unary(c, e, OP_GLOBAL_AVGPOOL_BWD, -1, NULL);
}

/* flatten's gradient is a copy back into the input's shape */
int op_grad_flatten(const op_grad_ctx *c, op_err *e)
{
    return grad_unary(c, e, OP_COPY, -1, NULL);
}

int op_grad_dropout(const op_grad_ctx *c, op_err *e)
{
    if (!c->fwd->attrs.dropout.training || c->nout < 2) /* identity outside training */
        return grad_unary(c, e, OP_COPY, -1, NULL);
    return grad_unary(c, e, OP_DROPOUT_BWD, c->out[1], NULL);
}

/* The activation ops: act_bwd with the op's activation kind (its registry entry's .act). */
int op_grad_act(const op_grad_ctx *c, op_err *e)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.act = c->fwd->attrs.act;
    a.act.act = op_def_get(c->fwd->op)->act;
    /* act_bwd reads the forward output, except leaky_relu with a slope <= 0, whose output's
     * sign no longer tells the input's */
    int t = (a.act.act == OP_ACT_LEAKY_RELU && a.act.alpha <= 0.0f) ? c->in[0] : c->out[0];
    return grad_unary(c, e, OP_ACT_BWD, t, &a);
}

int op_grad_softmax(const op_grad_ctx *c, op_err *e)
{
    return grad_unary(c, e, OP_SOFTMAX_BWD, c->out[0], NULL);
}

int op_grad_batchnorm(const op_grad_ctx *c, op_err *e)
{
    int dy = c->gout[0];
    if (dy < 0)
        return 0;
    if (!c->fwd->attrs.bn.training || c->nout < 3) {
        snprintf(e->msg, sizeof e->msg, "%s: batchnorm in inference mode has no gradient rule here", c->fwd->name);
        return -1;
    }
    int x = c->in[0], gamma = c->in[1], beta = c->in[2];
    int dx = c->grad_value(c, x), dgamma = c->grad_value(c, gamma), dbeta = c->grad_value(c, beta);
    if (dx < 0 || dgamma < 0 || dbeta < 0)
        OOM();
    int in[5] = {dy, x, gamma, c->out[1], c->out[2]}, out[3] = {dx, dgamma, dbeta};
    if (emit(c, OP_BATCHNORM_BWD, &c->fwd->attrs, 5, in, 3, out, "bwd", e))
        return -1;
    /* a network input's gradient is computed (batchnorm_bwd always makes dx) but not passed on */
    c->gin[0] = c->wants_grad(c, x) ? dx : -1;
    c->gin[1] = dgamma;
    c->gin[2] = dbeta;
    return 0;
}

int op_grad_concat(const op_grad_ctx *c, op_err *e)
{
    int dy = c->gout[0];
    if (dy < 0)
        return 0;
    int64_t offset = 0;
    for (int k = 0; k < c->nin; k++) {
        int x = c->in[k];
        int64_t ch = c->shape(c, x)->d[0];
        if (c->wants_grad(c, x)) {
            int dx = c->grad_value(c, x);
            if (dx < 0)
                OOM();
            op_attrs a;
            memset(&a, 0, sizeof a);
            a.slice.offset = offset;
            char what[32];
            snprintf(what, sizeof what, "bwd%d", k + 1);
            if (emit(c, OP_CONCAT_BWD, &a, 1, &dy, 1, &dx, what, e))
                return -1;
            c->gin[k] = dx;
        }
        offset += ch;
    }
    return 0;
}

/* y = act(x1 + x2 + ...): without an activation every input's gradient is dy itself. */
int op_grad_add(const op_grad_ctx *c, op_err *e)
{
    if (c->fwd->attrs.act.act != OP_ACT_NONE) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused add has no gradient rule", c->fwd->name);
        return -1;
    }
    for (int k = 0; k < c->nin; k++)
        c->gin[k] = (c->gout[0] >= 0 && c->wants_grad(c, c->in[k])) ? c->gout[0] : -1;
    return 0;
}
