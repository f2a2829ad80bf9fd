/* Dense layers and flatten: dense, flatten and dense's backward ops. */
#include "ops/desc_common.h"

/* ---------------------------------------------------------------- dense, flatten */

enum { DN_UNITS, DN_BIAS, DN_NAME, DN_NARGS };

static int dense_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in;
    (void)nin;
    (void)e;
    memset(&a->dense, 0, sizeof a->dense);
    a->dense.units = args[DN_UNITS].i[0];
    a->dense.bias = args[DN_BIAS].b;
    a->dense.act = OP_ACT_NONE;
    return 0;
}

static int dense_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "dense expects one input tensor");
    if (in[0].rank < 1)
        return op_desc_fail(e, -1, "dense expects a tensor of rank 1 or more, got %s", op_desc_sstr(&in[0], b));
    *out = op_desc_shape1(a->dense.units);
    return 0;
}

static int dense_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                        bool *trainable, op_init *init)
{
    int n = 0;
    suffix[n] = "weight";
    shapes[n] = op_desc_shape2(a->dense.units, op_shape_numel(&in[0]));
    init[n] = OP_INIT_FAN_IN_UNIFORM;
    trainable[n++] = true;
    if (a->dense.bias) {
        suffix[n] = "bias";
        shapes[n] = op_desc_shape1(a->dense.units);
        init[n] = OP_INIT_BIAS_FAN_IN_UNIFORM;
        trainable[n++] = true;
    }
    return n;
}

/* 2 per multiply-add, 1 per unit each for the bias and a fused activation, 3 per unit for a
 * fused softmax (exponential, sum, division). */
static int64_t dense_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (!op_desc_any_tensor(nin, in))
        return 0;
    const op_dense_attrs *d = &a->dense;
    int64_t f = ck_sat_mul_i64(2, ck_sat_mul_i64(d->units, op_shape_numel(&in[0])));
    int64_t per_unit = (d->bias ? 1 : 0) + (d->act != OP_ACT_NONE ? 1 : 0) + (d->softmax ? 3 : 0);
    return ck_sat_add_i64(f, ck_sat_mul_i64(per_unit, d->units));
}

/* in: dy [U] (w not read); out: dx: one multiply-add per weight */
static int64_t dense_bwd_data_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    if (!op_desc_any_tensor(nin, in) || !out)
        return 0;
    return ck_sat_mul_i64(2, ck_sat_mul_i64(op_shape_numel(&in[0]), op_shape_numel(out)));
}

/* in: dy [U], x [...]: one multiply-add per weight, plus the bias gradient's sum */
static int64_t dense_bwd_weights_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (nin < 2)
        return 0;
    int64_t u = op_shape_numel(&in[0]);
    return ck_sat_add_i64(ck_sat_mul_i64(2, ck_sat_mul_i64(u, op_shape_numel(&in[1]))), a->dense.bias ? u : 0);
}

static int dense_bwd_weights_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    if (nin < 2)
        return op_desc_fail(e, -1, "dense_bwd_weights expects dy and x");
    *out = op_desc_shape2(a->dense.units, op_shape_numel(&in[1]));
    return 0;
}

static int flatten_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "flatten expects one input tensor");
    *out = op_desc_shape1(op_shape_numel(&in[0]));
    return 0;
}

/* ---------------------------------------------------------------- fusion, summaries, gradients */

/* no activation after a fused softmax */
static op_act *dense_act_slot(op_attrs *a, float **alpha)
{
    if (a->dense.softmax)
        return NULL;
    *alpha = &a->dense.alpha;
    return &a->dense.act;
}

static bool *dense_bias_flag(op_attrs *a)
{
    return &a->dense.bias;
}

static bool dense_epilogue(const op_attrs *a)
{
    return a->dense.act != OP_ACT_NONE || a->dense.softmax;
}

/* "120 +relu", "10 +softmax" */
static void dense_describe(const op_attrs *a, char *buf, size_t n)
{
    size_t len = 0;
    op_desc_printf(buf, n, &len, "%" PRId64, a->dense.units);
    if (a->dense.act != OP_ACT_NONE)
        op_desc_printf(buf, n, &len, " +%s", op_act_name(a->dense.act));
    if (a->dense.softmax)
        op_desc_printf(buf, n, &len, " +softmax");
}

static int dense_grad(const op_grad_ctx *c, op_err *e)
{
    const op_dense_attrs *d = &c->fwd->attrs.dense;
    if (d->act != OP_ACT_NONE || d->softmax) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused dense layer has no gradient rule", c->fwd->name);
        return -1;
    }
    return op_desc_grad_linear(c, e, d->bias, OP_DENSE_BWD_DATA, OP_DENSE_BWD_WEIGHTS);
}

/* flatten's gradient is a copy back into the input's shape */
static int flatten_grad(const op_grad_ctx *c, op_err *e)
{
    return op_desc_grad_unary(c, e, OP_COPY, -1, NULL);
}

/* ---------------------------------------------------------------- entries */

const op_def op_def_dense = {
    .op = OP_DENSE, .name = "dense", .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1,
    .nargs = DN_NARGS,
    .args = {
        {"units", OP_ARG_INT, OP_ARGF_POSITIVE, NULL},
        {"bias", OP_ARG_BOOL, 0, "true"},
        {"name", OP_ARG_STRING, 0, ""},
    },
    .make_attrs = dense_make_attrs, .shape = dense_shape, .params = dense_params, .flops = dense_flops,
    .grad = dense_grad, .act_slot = dense_act_slot, .bias_flag = dense_bias_flag, .epilogue = dense_epilogue,
    .describe = dense_describe, .props = OP_PROP_HAS_WEIGHTS,
};

const op_def op_def_flatten = {
    .op = OP_FLATTEN, .name = "flatten", .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1,
    .shape = flatten_shape, .flops = op_desc_flops_0, .grad = flatten_grad,
};

/* A copy into another shape of as many elements (flatten's and inference dropout's gradient):
 * the output's shape comes from its maker, so there is no shape rule. */
const op_def op_def_copy = {
    .op = OP_COPY, .name = "copy", .min_inputs = 1, .max_inputs = 1, .flops = op_desc_flops_0,
    .props = OP_PROP_TRAINING_ONLY,
};

/* dense_bwd_data's dx takes the forward input's shape (a flattened input is not determined
 * by dy and w) from its maker */
const op_def op_def_dense_bwd_data = {
    .op = OP_DENSE_BWD_DATA, .name = "dense_bwd_data", .min_inputs = 2, .max_inputs = 2,
    .flops = dense_bwd_data_flops, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_dense_bwd_weights = {
    .op = OP_DENSE_BWD_WEIGHTS, .name = "dense_bwd_weights", .min_inputs = 2, .max_inputs = 2,
    .shape = dense_bwd_weights_shape, .flops = dense_bwd_weights_flops, .props = OP_PROP_TRAINING_ONLY,
};

/* A dense layer in low precision (compiler/pass_precision.c), as conv_q: x, w, b?, then in
 * int8 the weight scales [U] and the input scale [1]. */
static void dense_q_describe(const op_attrs *a, char *buf, size_t n)
{
    dense_describe(a, buf, n);
    size_t len = strlen(buf);
    if (a->dense.prec == OP_PREC_INT8)
        op_desc_printf(buf, n, &len, " int8 (%s input)", a->dense.q_unsigned ? "u8" : "s8");
    else if (a->dense.prec == OP_PREC_BF16)
        op_desc_printf(buf, n, &len, " bf16");
}

const op_def op_def_dense_q = {
    .op = OP_DENSE_Q, .name = "dense_q", .min_inputs = 2, .max_inputs = 6, .shape = dense_shape,
    .flops = dense_flops, .epilogue = dense_epilogue, .describe = dense_q_describe,
};
