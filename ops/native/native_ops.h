/* The native backend's kernels by op family (native_conv.c, native_dense.c), gathered into the
 * op table by native_kernels.c, and the active ISA table they call.  Internal to ops/native/. */
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
OP_NATIVE_KERNEL(conv_bwd_data)
OP_NATIVE_KERNEL(conv_bwd_weights)
OP_NATIVE_KERNEL(dense)
OP_NATIVE_KERNEL(dense_bwd_data)
OP_NATIVE_KERNEL(dense_bwd_weights)

#endif
