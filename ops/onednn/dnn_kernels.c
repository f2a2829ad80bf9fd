/* The oneDNN backend's kernel table: one entry per op kind it implements.  Flatten, dropout,
 * losses and optimiser updates are left to the other backends (NULL here). */
#include "ops/onednn/dnn_common.h"
#include "ops/onednn/onednn.h"

const op_kernel *op_onednn_kernel(op_kind op)
{
    switch (op) {
    case OP_CONV1D:
    case OP_CONV2D: return &op_dnn_conv_kernel;
    case OP_CONV_BWD_DATA: return &op_dnn_conv_bwd_data_kernel;
    case OP_CONV_BWD_WEIGHTS: return &op_dnn_conv_bwd_weights_kernel;
    case OP_DENSE: return &op_dnn_dense_kernel;
    case OP_DENSE_BWD_DATA: return &op_dnn_dense_bwd_data_kernel;
    case OP_DENSE_BWD_WEIGHTS: return &op_dnn_dense_bwd_weights_kernel;
    case OP_MAXPOOL: return &op_dnn_maxpool_kernel;
    case OP_AVGPOOL: return &op_dnn_avgpool_kernel;
    case OP_GLOBAL_AVGPOOL: return &op_dnn_global_avgpool_kernel;
    case OP_MAXPOOL_BWD: return &op_dnn_maxpool_bwd_kernel;
    case OP_AVGPOOL_BWD: return &op_dnn_avgpool_bwd_kernel;
    case OP_GLOBAL_AVGPOOL_BWD: return &op_dnn_global_avgpool_bwd_kernel;
    case OP_RELU:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_LEAKY_RELU: return &op_dnn_act_kernel;
    case OP_ACT_BWD: return &op_dnn_act_bwd_kernel;
    case OP_SOFTMAX: return &op_dnn_softmax_kernel;
    case OP_SOFTMAX_BWD: return &op_dnn_softmax_bwd_kernel;
    case OP_ADD: return &op_dnn_add_kernel;
    case OP_CONCAT: return &op_dnn_concat_kernel;
    case OP_CONCAT_BWD: return &op_dnn_concat_bwd_kernel;
    case OP_BATCHNORM: return &op_dnn_batchnorm_kernel;
    case OP_BATCHNORM_BWD: return &op_dnn_batchnorm_bwd_kernel;
    case OP_REORDER: return &op_dnn_reorder_kernel;
    default: break;
    }
    return NULL;
}
