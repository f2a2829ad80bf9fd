/* The kernel table: for each op kind and backend, the kernel that runs it.  The reference
 * backend covers every op; the native SIMD backend's table (every op but the layout reorder,
 * batchnorm folding and the low-precision conv_q/dense_q) lives in ops/native/ and is reached
 * through op_native_kernel(); the oneDNN
 * backend's table lives in ops/onednn/ and is reached through op_onednn_kernel() when the
 * build has oneDNN. */
#include "ops/kernels.h"
#include "ops/native/native.h"
#include "ops/ref.h"
#ifdef CNN_HAVE_ONEDNN
#include "ops/onednn/onednn.h"
#endif

/* Reference kernels, indexed by op kind.  CONV1D, CONV2D and CONV3D share one kernel (1-D and
 * 2-D are the depth-1 cases), as do the four activations. */
static const op_kernel ref_kernels[OP_COUNT] = {
    [OP_CONV1D] = {.run = op_ref_conv},
    [OP_CONV2D] = {.run = op_ref_conv},
    [OP_CONV3D] = {.run = op_ref_conv},
    [OP_MAXPOOL] = {.run = op_ref_maxpool},
    [OP_AVGPOOL] = {.run = op_ref_avgpool},
    [OP_GLOBAL_AVGPOOL] = {.run = op_ref_global_avgpool},
    [OP_DENSE] = {.run = op_ref_dense},
    [OP_FLATTEN] = {.run = op_ref_flatten},
    [OP_COPY] = {.run = op_ref_flatten},
    [OP_BATCHNORM] = {.run = op_ref_batchnorm},
    [OP_DROPOUT] = {.run = op_ref_dropout},
    [OP_RELU] = {.run = op_ref_act},
    [OP_SIGMOID] = {.run = op_ref_act},
    [OP_TANH] = {.run = op_ref_act},
    [OP_LEAKY_RELU] = {.run = op_ref_act},
    [OP_SOFTMAX] = {.run = op_ref_softmax},
    [OP_CONCAT] = {.run = op_ref_concat},
    [OP_ADD] = {.run = op_ref_add},
    [OP_CONV_BWD_DATA] = {.run = op_ref_conv_bwd_data},
    [OP_CONV_BWD_WEIGHTS] = {.run = op_ref_conv_bwd_weights},
    [OP_MAXPOOL_BWD] = {.run = op_ref_maxpool_bwd},
    [OP_AVGPOOL_BWD] = {.run = op_ref_avgpool_bwd},
    [OP_GLOBAL_AVGPOOL_BWD] = {.run = op_ref_global_avgpool_bwd},
    [OP_DENSE_BWD_DATA] = {.run = op_ref_dense_bwd_data},
    [OP_DENSE_BWD_WEIGHTS] = {.run = op_ref_dense_bwd_weights},
    [OP_BATCHNORM_BWD] = {.run = op_ref_batchnorm_bwd},
    [OP_DROPOUT_BWD] = {.run = op_ref_dropout_bwd},
    [OP_ACT_BWD] = {.run = op_ref_act_bwd},
    [OP_SOFTMAX_BWD] = {.run = op_ref_softmax_bwd},
    [OP_CONCAT_BWD] = {.run = op_ref_concat_bwd},
    [OP_BN_FOLD] = {.run = op_ref_bn_fold},
    [OP_XENT_LOSS] = {.run = op_ref_xent_loss},
    [OP_MSE_LOSS] = {.run = op_ref_mse_loss},
    [OP_SGD_UPDATE] = {.run = op_ref_sgd_update},
    [OP_ADAM_UPDATE] = {.run = op_ref_adam_update},
    [OP_ADAMW_UPDATE] = {.run = op_ref_adamw_update},
    [OP_GRAD_SQNORM] = {.run = op_ref_grad_sqnorm},
    [OP_CLIP_SCALE] = {.run = op_ref_clip_scale},
    [OP_REORDER] = {.run = op_ref_reorder, .layouts = OP_LAYOUT_EITHER},
    [OP_CONV_Q] = {.run = op_ref_conv_q},
    [OP_DENSE_Q] = {.run = op_ref_dense_q},
};

const op_kernel *op_kernel_get(op_kind op, op_backend b)
{
    if ((int)op < 0 || op >= OP_COUNT)
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

void op_kernel_caps(op_caps *caps)
{
    for (int op = 0; op < OP_COUNT; op++)
        for (int b = 0; b < OP_BACKEND_COUNT; b++) {
            const op_kernel *k = op_kernel_get((op_kind)op, (op_backend)b);
            caps->has[op][b] = k != NULL;
            caps->layouts[op][b] = k ? k->layouts : OP_LAYOUT_PLAIN_ONLY;
            caps->blocked[op][b] = k && k->blocked;
            caps->int8_few_channels[op][b] = k && b == OP_BACKEND_NATIVE && op_native_int8_few_channels((op_kind)op);
            caps->winograd[op][b] = k && b == OP_BACKEND_NATIVE && op_native_winograd((op_kind)op);
            caps->few_channels[op][b] = k && b == OP_BACKEND_NATIVE && op_native_few_channels((op_kind)op);
            caps->preferred[op][b] = k && b == OP_BACKEND_NATIVE && op_native_preferred((op_kind)op);
            caps->first_layer[op][b] = k && b == OP_BACKEND_NATIVE && op_native_first_layer((op_kind)op);
            caps->wide_cl[op][b] = k && b == OP_BACKEND_NATIVE && op_native_wide_cl((op_kind)op);
#ifdef CNN_HAVE_ONEDNN
            caps->winograd[op][b] |= k && b == OP_BACKEND_ONEDNN && op_onednn_winograd((op_kind)op);
            caps->wide_cl[op][b] |= k && b == OP_BACKEND_ONEDNN && op_onednn_wide_cl((op_kind)op);
#endif
        }
}
