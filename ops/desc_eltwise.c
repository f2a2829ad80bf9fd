/* Elementwise and channel ops: the activations (relu, sigmoid, tanh, leaky_relu), softmax,
 * concat, add, and their backward ops (act_bwd, softmax_bwd, concat_bwd). */
#include "ops/desc_common.h"

static int set_act(op_attrs *a, op_act act, float alpha)
{
    a->act.act = act;
    a->act.alpha = alpha;
    return 0;
}

static int relu_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_RELU, 0.0f);
}

static int sigmoid_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_SIGMOID, 0.0f);
}

static int tanh_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_TANH, 0.0f);
}

static int leaky_relu_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_LEAKY_RELU, (float)args[0].f);
}


static int softmax_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "softmax expects one input tensor");
    if (in[0].rank < 1)
        return op_desc_fail(e, -1, "softmax expects a tensor of rank 1 or more, got %s", op_desc_sstr(&in[0], b));
    *out = in[0];
    return 0;
}

/* ---------------------------------------------------------------- concat, add */

static int concat_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b0[SHAPE_BUF], b1[SHAPE_BUF];
    if (nin < 2 || !in)
        return op_desc_fail(e, -1, "concat expects at least 2 input tensors, got %d", nin);
    *out = in[0];
    for (int k = 1; k < nin; k++) {
        bool ok = in[k].rank == in[0].rank && in[k].rank >= 1;
        for (int d = 1; ok && d < in[0].rank; d++)
            ok = in[k].d[d] == in[0].d[d];
        if (!ok)
            return op_desc_fail(e, -1,
                                "concat: input %d has shape %s, which does not match input 1's %s outside the channel axis",
                                k + 1, op_desc_sstr(&in[k], b0), op_desc_sstr(&in[0], b1));
        if (!ck_add_i64(out->d[0], in[k].d[0], &out->d[0]))
            return op_desc_fail(e, -1, "concat: the channels add up to more than %" PRId64, INT64_MAX);
    }
    return 0;
}

static int add_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b0[SHAPE_BUF], b1[SHAPE_BUF];
    if (nin < 2 || !in)
        return op_desc_fail(e, -1, "add expects at least 2 input tensors, got %d", nin);
    for (int k = 1; k < nin; k++)
        if (!op_shape_equal(&in[k], &in[0]))
            return op_desc_fail(e, -1, "add: the shapes differ: %s + %s", op_desc_sstr(&in[0], b0),
                                op_desc_sstr(&in[k], b1));
    *out = in[0];
    return 0;
}

/* (inputs - 1) adds per element, plus 1 for a fused activation */
static int64_t add_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (nin < 2 || !in)
        return 0;
    int64_t n = op_shape_numel(&in[0]);
    return ck_sat_mul_i64(nin - 1 + (a->act.act != OP_ACT_NONE ? 1 : 0), n);
}

/* ---------------------------------------------------------------- fusion, summaries */

/* add takes the activation that follows it (and passes it on to a residual conv) */
static op_act *add_act_slot(op_attrs *a, float **alpha)
{
    *alpha = &a->act.alpha;
    return &a->act.act;
}

static bool add_epilogue(const op_attrs *a)
{
    return a->act.act != OP_ACT_NONE;
}

static void add_describe(const op_attrs *a, char *buf, size_t n)
{
    size_t len = 0;
    if (a->act.act != OP_ACT_NONE)
        op_desc_printf(buf, n, &len, "+%s", op_act_name(a->act.act));
}

static void leaky_relu_describe(const op_attrs *a, char *buf, size_t n)
{
    snprintf(buf, n, "alpha=%g", (double)a->act.alpha);
}

static void act_bwd_describe(const op_attrs *a, char *buf, size_t n)
{
    snprintf(buf, n, "%s", op_act_name(a->act.act));
}

/* ---------------------------------------------------------------- gradients */

/* The activation ops: act_bwd with the op's activation kind (its registry entry's .act). */
static int act_grad(const op_grad_ctx *c, op_err *e)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.act = c->fwd->attrs.act;
    a.act.act = op_def_get(c->fwd->op)->act;
    /* act_bwd reads the forward output, except leaky_relu with a slope <= 0, whose output's
     * sign no longer tells the input's */
    int t = (a.act.act == OP_ACT_LEAKY_RELU && a.act.alpha <= 0.0f) ? c->in[0] : c->out[0];
    return op_desc_grad_unary(c, e, OP_ACT_BWD, t, &a);
}

static int softmax_grad(const op_grad_ctx *c, op_err *e)
{
    return op_desc_grad_unary(c, e, OP_SOFTMAX_BWD, c->out[0], NULL);
}

static int concat_grad(const op_grad_ctx *c, op_err *e)
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
                return op_desc_grad_oom(e);
            op_attrs a;
            memset(&a, 0, sizeof a);
            a.slice.offset = offset;
            char what[32];
            snprintf(what, sizeof what, "bwd%d", k + 1);
            if (op_desc_grad_emit(c, OP_CONCAT_BWD, &a, 1, &dy, 1, &dx, what, e))
                return -1;
            c->gin[k] = dx;
        }
        offset += ch;
    }
    return 0;
}

/* y = act(x1 + x2 + ...): without an activation every input's gradient is dy itself. */
static int add_grad(const op_grad_ctx *c, op_err *e)
{
    if (c->fwd->attrs.act.act != OP_ACT_NONE) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused add has no gradient rule", c->fwd->name);
        return -1;
    }
    for (int k = 0; k < c->nin; k++)
        c->gin[k] = (c->gout[0] >= 0 && c->wants_grad(c, c->in[k])) ? c->gout[0] : -1;
    return 0;
}

/* ---------------------------------------------------------------- entries */

/* The activation ops: 1 FLOP per element, in place; .act says which activation they apply
 * (pass_fuse moves it into a producer's act_slot). */
#define ACT_LAYER(E, s)                                                                            \
    .op = OP_##E, .name = #s, .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1, \
    .act = OP_ACT_##E, .make_attrs = s##_make_attrs, .shape = op_desc_same_shape, .flops = op_desc_flops_1, \
    .inplace = true, .grad = act_grad

const op_def op_def_relu = {ACT_LAYER(RELU, relu)};
const op_def op_def_sigmoid = {ACT_LAYER(SIGMOID, sigmoid)};
const op_def op_def_tanh = {ACT_LAYER(TANH, tanh)};
const op_def op_def_leaky_relu = {
    ACT_LAYER(LEAKY_RELU, leaky_relu), .nargs = 1, .args = {{"alpha", OP_ARG_FLOAT, 0, "0.01"}},
    .describe = leaky_relu_describe,
};

/* 3 per element: exp, sum, divide.  As a network's last op it is part of a cross-entropy
 * loss (compiler/autodiff.c). */
const op_def op_def_softmax = {
    .op = OP_SOFTMAX, .name = "softmax", .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1,
    .shape = softmax_shape, .flops = op_desc_flops_3, .grad = softmax_grad, .props = OP_PROP_FOLDS_INTO_XENT,
};

const op_def op_def_concat = {
    .op = OP_CONCAT, .name = "concat", .is_layer = true, .callable = true, .min_inputs = 2,
    .max_inputs = OP_MAX_IN, .shape = concat_shape, .flops = op_desc_flops_0, .grad = concat_grad,
};

/* a layer (it gets a name, add_1, ...) that only '+' makes */
const op_def op_def_add = {
    .op = OP_ADD, .name = "add", .is_layer = true, .callable = false, .min_inputs = 2, .max_inputs = 2,
    .shape = add_shape, .flops = add_flops, .inplace = true, .grad = add_grad, .act_slot = add_act_slot,
    .epilogue = add_epilogue, .describe = add_describe,
};

/* act_bwd: a test and a multiply per element */
const op_def op_def_act_bwd = {
    .op = OP_ACT_BWD, .name = "act_bwd", .min_inputs = 2, .max_inputs = OP_MAX_IN, .shape = op_desc_same_shape,
    .flops = op_desc_flops_2, .inplace = true, .describe = act_bwd_describe, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_softmax_bwd = {
    .op = OP_SOFTMAX_BWD, .name = "softmax_bwd", .min_inputs = 2, .max_inputs = 2, .shape = op_desc_same_shape,
    .flops = op_desc_flops_4, .props = OP_PROP_TRAINING_ONLY,
};

/* a slice of dy: its shape comes from the forward input */
const op_def op_def_concat_bwd = {
    .op = OP_CONCAT_BWD, .name = "concat_bwd", .min_inputs = 1, .max_inputs = 1,
    .props = OP_PROP_TRAINING_ONLY,
};
