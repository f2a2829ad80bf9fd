/* The oneDNN backend's kernel table, indexed by op kind like the reference (ops/kernels.c) and
 * native (ops/native/native_kernels.c) tables.  The kernels are defined next to their builders
 * (dnn_conv.c, ...), so the table holds their addresses.  Flatten, dropout, losses and
 * optimiser updates are left to the other backends (NULL here). */
#include "ops/onednn/dnn_common.h"
#include "ops/onednn/onednn.h"

static const op_kernel *const onednn_kernels[OP_COUNT] = {
    [OP_CONV1D] = &op_dnn_conv_kernel,
    [OP_CONV2D] = &op_dnn_conv_kernel,
    [OP_CONV3D] = &op_dnn_conv_kernel,
    [OP_CONV_BWD_DATA] = &op_dnn_conv_bwd_data_kernel,
    [OP_CONV_BWD_WEIGHTS] = &op_dnn_conv_bwd_weights_kernel,
    [OP_DENSE] = &op_dnn_dense_kernel,
    [OP_DENSE_BWD_DATA] = &op_dnn_dense_bwd_data_kernel,
    [OP_DENSE_BWD_WEIGHTS] = &op_dnn_dense_bwd_weights_kernel,
    [OP_MAXPOOL] = &op_dnn_maxpool_kernel,
    [OP_AVGPOOL] = &op_dnn_avgpool_kernel,
    [OP_GLOBAL_AVGPOOL] = &op_dnn_global_avgpool_kernel,
    [OP_MAXPOOL_BWD] = &op_dnn_maxpool_bwd_kernel,
    [OP_AVGPOOL_BWD] = &op_dnn_avgpool_bwd_kernel,
    [OP_GLOBAL_AVGPOOL_BWD] = &op_dnn_global_avgpool_bwd_kernel,
    [OP_RELU] = &op_dnn_act_kernel,
    [OP_SIGMOID] = &op_dnn_act_kernel,
    [OP_TANH] = &op_dnn_act_kernel,
    [OP_LEAKY_RELU] = &op_dnn_act_kernel,
    [OP_ACT_BWD] = &op_dnn_act_bwd_kernel,
    [OP_SOFTMAX] = &op_dnn_softmax_kernel,
    [OP_SOFTMAX_BWD] = &op_dnn_softmax_bwd_kernel,
    [OP_ADD] = &op_dnn_add_kernel,
    [OP_CONCAT] = &op_dnn_concat_kernel,
    [OP_CONCAT_BWD] = &op_dnn_concat_bwd_kernel,
    [OP_BATCHNORM] = &op_dnn_batchnorm_kernel,
    [OP_BATCHNORM_BWD] = &op_dnn_batchnorm_bwd_kernel,
    [OP_REORDER] = &op_dnn_reorder_kernel,
    [OP_CONV_Q] = &op_dnn_conv_q_kernel,
    [OP_DENSE_Q] = &op_dnn_dense_q_kernel,
};

const op_kernel *op_onednn_kernel(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return NULL;
    return onednn_kernels[op];
}
