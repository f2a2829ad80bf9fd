/* Normalisation and regularisation: batchnorm (and its fold into a preceding layer, bn_fold),
 * dropout, and their backward ops. */
#include "ops/desc_common.h"

/* ---------------------------------------------------------------- batchnorm, dropout */

enum { BN_EPS, BN_MOMENTUM, BN_NAME, BN_NARGS };

static int bn_check_rank(const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "batchnorm expects one input tensor");
    if (in[0].rank < 1 || in[0].rank > 4)
        return op_desc_fail(e, -1, "batchnorm expects a [C], [C, L], [C, H, W] or [C, D, H, W] input, got %s",
                            op_desc_sstr(&in[0], b));
    return 0;
}

static int bn_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    if (bn_check_rank(in, nin, e) != 0)
        return -1;
    double eps = args[BN_EPS].f, mom = args[BN_MOMENTUM].f;
    if (!(eps > 0.0))
        return op_desc_fail(e, BN_EPS, "batchnorm: 'eps' must be a positive number, got %g", eps);
    if (!(mom >= 0.0 && mom <= 1.0))
        return op_desc_fail(e, BN_MOMENTUM, "batchnorm: 'momentum' must be between 0 and 1, got %g", mom);
    memset(&a->bn, 0, sizeof a->bn);
    a->bn.eps = (float)eps;
    a->bn.momentum = (float)mom;
    a->bn.training = false;
    return 0;
}

static int bn_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (bn_check_rank(in, nin, e) != 0)
        return -1;
    *out = in[0];
    return 0;
}

/* PyTorch's defaults: weight 1, bias 0, running mean 0, running var 1 */
static int bn_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                     bool *trainable, op_init *init)
{
    (void)a;
    static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
    static const op_init inits[4] = {OP_INIT_ONE, OP_INIT_ZERO, OP_INIT_ZERO, OP_INIT_ONE};
    for (int k = 0; k < 4; k++) {
        suffix[k] = names[k];
        shapes[k] = op_desc_shape1(in[0].d[0]);
        trainable[k] = k < 2;
        init[k] = inits[k];
    }
    return 4;
}

/* inference: one scale and one shift per element (mean and variance folded into them);
 * training adds about 3 per element for the batch statistics. */
static int64_t bn_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (!op_desc_any_tensor(nin, in))
        return 0;
    return ck_sat_mul_i64(op_shape_numel(&in[0]), a->bn.training ? 5 : 2);
}

/* about 8 per element: two reductions and the input gradient */
static int64_t bn_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)out;
    return op_desc_any_tensor(nin, in) ? ck_sat_mul_i64(8, op_shape_numel(&in[0])) : 0;
}

static int dropout_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in;
    (void)nin;
    double p = args[0].f;
    if (!(p >= 0.0 && p < 1.0))
        return op_desc_fail(e, 0, "dropout: 'p' must be in [0, 1), got %g", p);
    a->dropout.p = (float)p;
    a->dropout.training = false;
    return 0;
}

/* identity at inference; one multiply per element in training */
static int64_t dropout_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    return op_desc_any_tensor(nin, in) && a->dropout.training ? op_shape_numel(&in[0]) : 0;
}

/* ---------------------------------------------------------------- training mode */

/* training: batch statistics, the running statistics updated in place, and the batch mean
 * and inverse standard deviation saved for the backward op ([C] each, no batch axis) */
static int bn_train_outputs(op_attrs *a, const op_shape *in0, op_shape *shapes, bool *batched,
                            const char **suffix)
{
    a->bn.training = true;
    shapes[0] = shapes[1] = op_desc_shape1(in0->d[0]);
    batched[0] = batched[1] = false;
    suffix[0] = "save_mean";
    suffix[1] = "save_invstd";
    return 2;
}

static bool bn_updates_inputs(const op_attrs *a)
{
    return a->bn.training;
}

/* training: the mask it drew, shaped like the input (per example) */
static int dropout_train_outputs(op_attrs *a, const op_shape *in0, op_shape *shapes, bool *batched,
                                 const char **suffix)
{
    a->dropout.training = true;
    shapes[0] = *in0;
    batched[0] = true;
    suffix[0] = "mask";
    return 1;
}

static void dropout_describe(const op_attrs *a, char *buf, size_t n)
{
    snprintf(buf, n, "p=%g", (double)a->dropout.p);
}

/* ---------------------------------------------------------------- gradients */

static bool bn_epilogue(const op_attrs *a);

static int bn_grad(const op_grad_ctx *c, op_err *e)
{
    int dy = c->gout[0];
    if (dy < 0)
        return 0;
    if (!c->fwd->attrs.bn.training || c->nout < 3) {
        snprintf(e->msg, sizeof e->msg, "%s: batchnorm in inference mode has no gradient rule here", c->fwd->name);
        return -1;
    }
    if (bn_epilogue(&c->fwd->attrs)) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused batchnorm has no gradient rule", c->fwd->name);
        return -1;
    }
    int x = c->in[0], gamma = c->in[1], beta = c->in[2];
    int dx = c->grad_value(c, x), dgamma = c->grad_value(c, gamma), dbeta = c->grad_value(c, beta);
    if (dx < 0 || dgamma < 0 || dbeta < 0)
        return op_desc_grad_oom(e);
    int in[5] = {dy, x, gamma, c->out[1], c->out[2]}, out[3] = {dx, dgamma, dbeta};
    if (op_desc_grad_emit(c, OP_BATCHNORM_BWD, &c->fwd->attrs, 5, in, 3, out, "bwd", e))
        return -1;
    /* a network input's gradient is computed (batchnorm_bwd always makes dx) but not passed on */
    c->gin[0] = c->wants_grad(c, x) ? dx : -1;
    c->gin[1] = dgamma;
    c->gin[2] = dbeta;
    return 0;
}

static int dropout_grad(const op_grad_ctx *c, op_err *e)
{
    if (!c->fwd->attrs.dropout.training || c->nout < 2) /* identity outside training */
        return op_desc_grad_unary(c, e, OP_COPY, -1, NULL);
    return op_desc_grad_unary(c, e, OP_DROPOUT_BWD, c->out[1], NULL);
}

/* ---------------------------------------------------------------- fusion, summaries */

/* batchnorm takes the activation that follows it, and a residual add before that */
static op_act *bn_act_slot(op_attrs *a, float **alpha)
{
    *alpha = &a->bn.alpha;
    return &a->bn.act;
}

static bool *bn_residual_flag(op_attrs *a)
{
    return &a->bn.residual;
}

static bool bn_epilogue(const op_attrs *a)
{
    return a->bn.residual || a->bn.act != OP_ACT_NONE;
}

static void bn_describe(const op_attrs *a, char *buf, size_t n)
{
    size_t len = 0;
    if (n > 0)
        buf[0] = '\0';
    if (a->bn.residual)
        op_desc_printf(buf, n, &len, "+add");
    if (a->bn.act != OP_ACT_NONE)
        op_desc_printf(buf, n, &len, "%s+%s", len ? " " : "", op_act_name(a->bn.act));
}

/* ---------------------------------------------------------------- entries */

const op_def op_def_batchnorm = {
    .op = OP_BATCHNORM, .name = "batchnorm", .is_layer = true, .callable = true, .min_inputs = 1,
    .max_inputs = 1, .nargs = BN_NARGS,
    .args = {
        {"eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-5"},
        {"momentum", OP_ARG_FLOAT, 0, "0.1"},
        {"name", OP_ARG_STRING, 0, ""},
    },
    .make_attrs = bn_make_attrs, .shape = bn_shape, .params = bn_params, .flops = bn_flops, .grad = bn_grad,
    .updates_inputs = bn_updates_inputs, .train_outputs = bn_train_outputs, .act_slot = bn_act_slot,
    .residual_flag = bn_residual_flag, .epilogue = bn_epilogue, .describe = bn_describe, .props = OP_PROP_HAS_WEIGHTS,
};

const op_def op_def_dropout = {
    .op = OP_DROPOUT, .name = "dropout", .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1,
    .nargs = 1, .args = {{"p", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.5"}},
    .make_attrs = dropout_make_attrs, .shape = op_desc_same_shape, .flops = dropout_flops, .inplace = true,
    .grad = dropout_grad, .train_outputs = dropout_train_outputs, .describe = dropout_describe,
};

const op_def op_def_batchnorm_bwd = {
    .op = OP_BATCHNORM_BWD, .name = "batchnorm_bwd", .min_inputs = 5, .max_inputs = 6,
    .shape = op_desc_shape_of_second, .flops = bn_bwd_flops, .describe = bn_describe, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_dropout_bwd = {
    .op = OP_DROPOUT_BWD, .name = "dropout_bwd", .min_inputs = 2, .max_inputs = 2, .shape = op_desc_same_shape,
    .flops = op_desc_flops_1, .inplace = true, .props = OP_PROP_TRAINING_ONLY,
};

/* A weight transform (compiler/pass_fold_bn.c): in: w, b (when the layer has a bias), gamma,
 * beta, running_mean, running_var; out: w', b'.  Output 0 has w's shape.  It runs when the
 * weights change, not per example: no FLOPs counted. */
const op_def op_def_bn_fold = {
    .op = OP_BN_FOLD, .name = "bn_fold", .min_inputs = 5, .max_inputs = 6, .shape = op_desc_same_shape,
};
