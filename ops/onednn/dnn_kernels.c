/* The oneDNN backend's kernel table: one entry per op kind it implements.  Flatten, dropout,
 * losses and optimiser updates are left to the other backends (NULL here). */
#include "ops/onednn/dnn_common.h"
#include "ops/onednn/onednn.h"

const op_kernel *op_onednn_kernel(ir_op op)
{
    switch (op) {
    case IR_OP_CONV1D:
    case IR_OP_CONV2D: return &op_dnn_conv_kernel;
    case IR_OP_CONV_BWD_DATA: return &op_dnn_conv_bwd_data_kernel;
    case IR_OP_CONV_BWD_WEIGHTS: return &op_dnn_conv_bwd_weights_kernel;
    case IR_OP_DENSE: return &op_dnn_dense_kernel;
    case IR_OP_DENSE_BWD_DATA: return &op_dnn_dense_bwd_data_kernel;
    case IR_OP_DENSE_BWD_WEIGHTS: return &op_dnn_dense_bwd_weights_kernel;
    case IR_OP_MAXPOOL: return &op_dnn_maxpool_kernel;
    case IR_OP_AVGPOOL: return &op_dnn_avgpool_kernel;
    case IR_OP_GLOBAL_AVGPOOL: return &op_dnn_global_avgpool_kernel;
    case IR_OP_MAXPOOL_BWD: return &op_dnn_maxpool_bwd_kernel;
    case IR_OP_AVGPOOL_BWD: return &op_dnn_avgpool_bwd_kernel;
    case IR_OP_GLOBAL_AVGPOOL_BWD: return &op_dnn_global_avgpool_bwd_kernel;
    case IR_OP_RELU:
    case IR_OP_SIGMOID:
    case IR_OP_TANH:
    case IR_OP_LEAKY_RELU: return &op_dnn_act_kernel;
    case IR_OP_ACT_BWD: return &op_dnn_act_bwd_kernel;
    case IR_OP_SOFTMAX: return &op_dnn_softmax_kernel;
    case IR_OP_SOFTMAX_BWD: return &op_dnn_softmax_bwd_kernel;
    case IR_OP_ADD: return &op_dnn_add_kernel;
    case IR_OP_CONCAT: return &op_dnn_concat_kernel;
    case IR_OP_CONCAT_BWD: return &op_dnn_concat_bwd_kernel;
    case IR_OP_BATCHNORM: return &op_dnn_batchnorm_kernel;
    case IR_OP_BATCHNORM_BWD: return &op_dnn_batchnorm_bwd_kernel;
    case IR_OP_REORDER: return &op_dnn_reorder_kernel;
    default: break;
    }
    return NULL;
}
