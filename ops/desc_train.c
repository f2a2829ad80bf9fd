/* Training ops the compiler appends (compiler/autodiff.c): the losses, the optimiser updates
 * and gradient clipping.  Losses: output 0 is the scalar loss (output 1, the logits' gradient,
 * has in[0]'s shape).  Updates have no outputs: they write their inputs in place (param, grad,
 * optimiser state, and with attrs.optim.clip a last input: clip_scale's scalar).
 * clip_grad_norm is two scalar-valued ops: grad_sqnorm (chained over up to OP_MAX_IN
 * gradients each) and clip_scale, which every update reads. */
#include "ops/desc_common.h"

static bool always(const op_attrs *a)
{
    (void)a;
    return true;
}

/* cross_entropy (attrs.loss: label smoothing): exp, sum, log, subtract per logit */
const op_def op_def_cross_entropy = {
    .op = OP_XENT_LOSS, .name = "cross_entropy", .min_inputs = 2, .max_inputs = 2,
    .shape = op_desc_scalar_shape, .flops = op_desc_flops_4, .props = OP_PROP_TRAINING_ONLY,
};

/* mse: subtract, square, sum per element */
const op_def op_def_mse = {
    .op = OP_MSE_LOSS, .name = "mse", .min_inputs = 2, .max_inputs = 2, .shape = op_desc_scalar_shape,
    .flops = op_desc_flops_3, .props = OP_PROP_TRAINING_ONLY,
};

/* sgd: weight decay, momentum, step: about 4 per parameter element (in[0] is the parameter) */
const op_def op_def_sgd_update = {
    .op = OP_SGD_UPDATE, .name = "sgd_update", .min_inputs = 2, .max_inputs = 4, .flops = op_desc_flops_4,
    .updates_inputs = always, .props = OP_PROP_TRAINING_ONLY,
};

/* adam: about 12 per parameter element */
const op_def op_def_adam_update = {
    .op = OP_ADAM_UPDATE, .name = "adam_update", .min_inputs = 4, .max_inputs = 5, .flops = op_desc_flops_12,
    .updates_inputs = always, .props = OP_PROP_TRAINING_ONLY,
};

/* adamw: adam's work plus the decoupled decay, about 13 per parameter element */
static int64_t flops_13(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)out;
    return op_desc_any_tensor(nin, in) ? ck_sat_mul_i64(13, op_shape_numel(&in[0])) : 0;
}

const op_def op_def_adamw_update = {
    .op = OP_ADAMW_UPDATE, .name = "adamw_update", .min_inputs = 4, .max_inputs = 5, .flops = flops_13,
    .updates_inputs = always, .props = OP_PROP_TRAINING_ONLY,
};

/* grad_sqnorm: a multiply-add per gradient element */
static int64_t flops_sqnorm(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    int64_t f = 0;
    for (int k = a && a->clip.accumulate ? 1 : 0; in && k < nin; k++)
        f = ck_sat_add_i64(f, ck_sat_mul_i64(2, op_shape_numel(&in[k])));
    return f;
}

const op_def op_def_grad_sqnorm = {
    .op = OP_GRAD_SQNORM, .name = "grad_sqnorm", .min_inputs = 1, .max_inputs = OP_MAX_IN,
    .shape = op_desc_scalar_shape, .flops = flops_sqnorm, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_clip_scale = {
    .op = OP_CLIP_SCALE, .name = "clip_scale", .min_inputs = 1, .max_inputs = 1, .shape = op_desc_scalar_shape,
    .flops = op_desc_flops_4, .props = OP_PROP_TRAINING_ONLY,
};
