/* The kernel table: for each op kind and backend, the kernel that runs it.  The reference
 * backend covers every op; the native SIMD backend's table (conv and dense, forward and
 * backward) lives in ops/native/ and is reached through op_native_kernel(); the oneDNN
 * backend's table lives in ops/onednn/ and is reached through op_onednn_kernel() when the
 * build has oneDNN. */
#include "ops/kernels.h"
#include "ops/native/native.h"
#include "ops/ref.h"
#ifdef CNN_HAVE_ONEDNN
#include "ops/onednn/onednn.h"
#endif

/* Reference kernels, indexed by op kind.  CONV1D and CONV2D share one kernel (1-D is the
 * height-1 case), as do the four activations. */
static const op_kernel ref_kernels[IR_OP_COUNT] = {
    [IR_OP_CONV1D] = {.run = op_ref_conv},
    [IR_OP_CONV2D] = {.run = op_ref_conv},
    [IR_OP_MAXPOOL] = {.run = op_ref_maxpool},
    [IR_OP_AVGPOOL] = {.run = op_ref_avgpool},
    [IR_OP_GLOBAL_AVGPOOL] = {.run = op_ref_global_avgpool},
    [IR_OP_DENSE] = {.run = op_ref_dense},
    [IR_OP_FLATTEN] = {.run = op_ref_flatten},
    [IR_OP_BATCHNORM] = {.run = op_ref_batchnorm},
    [IR_OP_DROPOUT] = {.run = op_ref_dropout},
    [IR_OP_RELU] = {.run = op_ref_act},
    [IR_OP_SIGMOID] = {.run = op_ref_act},
    [IR_OP_TANH] = {.run = op_ref_act},
    [IR_OP_LEAKY_RELU] = {.run = op_ref_act},
    [IR_OP_SOFTMAX] = {.run = op_ref_softmax},
    [IR_OP_CONCAT] = {.run = op_ref_concat},
    [IR_OP_ADD] = {.run = op_ref_add},
    [IR_OP_CONV_BWD_DATA] = {.run = op_ref_conv_bwd_data},
    [IR_OP_CONV_BWD_WEIGHTS] = {.run = op_ref_conv_bwd_weights},
    [IR_OP_MAXPOOL_BWD] = {.run = op_ref_maxpool_bwd},
    [IR_OP_AVGPOOL_BWD] = {.run = op_ref_avgpool_bwd},
    [IR_OP_GLOBAL_AVGPOOL_BWD] = {.run = op_ref_global_avgpool_bwd},
    [IR_OP_DENSE_BWD_DATA] = {.run = op_ref_dense_bwd_data},
    [IR_OP_DENSE_BWD_WEIGHTS] = {.run = op_ref_dense_bwd_weights},
    [IR_OP_BATCHNORM_BWD] = {.run = op_ref_batchnorm_bwd},
    [IR_OP_DROPOUT_BWD] = {.run = op_ref_dropout_bwd},
    [IR_OP_ACT_BWD] = {.run = op_ref_act_bwd},
    [IR_OP_SOFTMAX_BWD] = {.run = op_ref_softmax_bwd},
    [IR_OP_CONCAT_BWD] = {.run = op_ref_concat_bwd},
    [IR_OP_BN_FOLD] = {.run = op_ref_bn_fold},
    [IR_OP_XENT_LOSS] = {.run = op_ref_xent_loss},
    [IR_OP_MSE_LOSS] = {.run = op_ref_mse_loss},
    [IR_OP_SGD_UPDATE] = {.run = op_ref_sgd_update},
    [IR_OP_ADAM_UPDATE] = {.run = op_ref_adam_update},
    [IR_OP_REORDER] = {.run = op_ref_reorder, .layouts = OP_LAYOUT_EITHER},
};

const op_kernel *op_kernel_get(ir_op op, op_backend b)
{
    if ((int)op < 0 || op >= IR_OP_COUNT)
        return NULL;
    switch (b) {
    case OP_BACKEND_REF:
        return ref_kernels[op].run ? &ref_kernels[op] : NULL;
    case OP_BACKEND_NATIVE:
        /* native SIMD kernels: ops/native/ provides the table */
        return op_native_kernel(op);
    case OP_BACKEND_ONEDNN:
        /* oneDNN kernels: ops/onednn/ provides the table */
#ifdef CNN_HAVE_ONEDNN
        return op_onednn_kernel(op);
#else
        return NULL;
#endif
    case OP_BACKEND_COUNT:
        break;
    }
    return NULL;
}

const char *op_backend_name(op_backend b)
{
    static const char *const names[OP_BACKEND_COUNT] = {
        [OP_BACKEND_REF] = "ref",
        [OP_BACKEND_NATIVE] = "native",
        [OP_BACKEND_ONEDNN] = "onednn",
    };
    if ((int)b < 0 || b >= OP_BACKEND_COUNT)
        return "unknown";
    return names[b];
}
