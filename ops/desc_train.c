/* Training ops the compiler appends (compiler/autodiff.c): the losses and the optimiser
 * updates.  Losses: output 0 is the scalar loss (output 1, the logits' gradient, has in[0]'s
 * shape).  Updates have no outputs: they write their inputs in place. */
#include "ops/desc_common.h"

static bool always(const op_attrs *a)
{
    (void)a;
    return true;
}

/* cross_entropy: exp, sum, log, subtract per logit */
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
    .op = OP_SGD_UPDATE, .name = "sgd_update", .min_inputs = 2, .max_inputs = 3, .flops = op_desc_flops_4,
    .updates_inputs = always, .props = OP_PROP_TRAINING_ONLY,
};

/* adam: about 12 per parameter element */
const op_def op_def_adam_update = {
    .op = OP_ADAM_UPDATE, .name = "adam_update", .min_inputs = 4, .max_inputs = 4, .flops = op_desc_flops_12,
    .updates_inputs = always, .props = OP_PROP_TRAINING_ONLY,
};
