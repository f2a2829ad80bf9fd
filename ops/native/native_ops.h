/* The native backend's kernels by op family (native_conv.c, native_dense.c, native_norm.c,
 * native_pool.c, native_eltwise.c, native_train.c), gathered into the op table by
 * native_kernels.c, and the active ISA table they call.  Internal to ops/native/. */
#ifndef CNN_OPS_NATIVE_OPS_H
#define CNN_OPS_NATIVE_OPS_H

#include "ops/kernels.h"
#include "ops/native/native_isa.h"

/* The ISA table in use (chosen once; see native.h). */
const op_native_isa *op_native_isa_table(void);

#define OP_NATIVE_KERNEL(fn)                                         \
    int op_native_##fn(op_call *c, char *err, size_t errlen);        \
    size_t op_native_##fn##_scratch(const op_call *c);

OP_NATIVE_KERNEL(conv)
OP_NATIVE_KERNEL(conv_q)
OP_NATIVE_KERNEL(conv_bwd_data)
OP_NATIVE_KERNEL(conv_bwd_weights)
OP_NATIVE_KERNEL(dense)
OP_NATIVE_KERNEL(dense_bwd_data)
OP_NATIVE_KERNEL(dense_bwd_weights)
OP_NATIVE_KERNEL(batchnorm)
OP_NATIVE_KERNEL(batchnorm_bwd)
/* the state of conv and conv_bwd_data calls: their channels-last packed weights (native_conv.h) */
int op_native_conv_prepare(op_call *c, char *err, size_t errlen);
void op_native_conv_release(void *state);

/* kernels that need no scratch */
#define OP_NATIVE_KERNEL0(fn) int op_native_##fn(op_call *c, char *err, size_t errlen);

OP_NATIVE_KERNEL0(reorder)
OP_NATIVE_KERNEL0(maxpool)
OP_NATIVE_KERNEL0(maxpool_bwd)
OP_NATIVE_KERNEL0(avgpool)
OP_NATIVE_KERNEL0(avgpool_bwd)
OP_NATIVE_KERNEL0(global_avgpool)
OP_NATIVE_KERNEL0(global_avgpool_bwd)
OP_NATIVE_KERNEL0(act)
OP_NATIVE_KERNEL0(act_bwd)
OP_NATIVE_KERNEL0(add)
OP_NATIVE_KERNEL0(flatten)
OP_NATIVE_KERNEL0(dropout)
OP_NATIVE_KERNEL0(dropout_bwd)
OP_NATIVE_KERNEL0(softmax)
OP_NATIVE_KERNEL0(softmax_bwd)
OP_NATIVE_KERNEL0(concat)
OP_NATIVE_KERNEL0(concat_bwd)
OP_NATIVE_KERNEL0(xent_loss)
OP_NATIVE_KERNEL0(mse_loss)
OP_NATIVE_KERNEL0(sgd_update)
OP_NATIVE_KERNEL0(adam_update)
OP_NATIVE_KERNEL0(adamw_update)
OP_NATIVE_KERNEL0(grad_sqnorm)

#endif
