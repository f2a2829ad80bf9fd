/* The native backend's op table and its ISA choice.  The level is decided once (pthread_once)
 * from __builtin_cpu_supports: AVX-512 (avx512f + avx512vl + fma), AVX2 (avx2 + fma), else
 * scalar; CNN_ISA=avx512|avx2|scalar in the environment lowers it (a higher level than the CPU
 * has is ignored).  op_native_force_isa() changes it afterwards, for tests and benchmarks. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ref.h"
#include "ops/native/native.h"
#include "ops/native/native_ops.h"
#include "ops/native/simd.h"

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static op_native_isa_level isa_supported = OP_NATIVE_SCALAR;
static _Atomic int isa_active = OP_NATIVE_SCALAR;

static const char *const isa_names[OP_NATIVE_ISA_COUNT] = {
    [OP_NATIVE_SCALAR] = "scalar",
    [OP_NATIVE_AVX2] = "avx2",
    [OP_NATIVE_AVX512] = "avx512",
};

static void isa_init(void)
{
    op_native_isa_level best = OP_NATIVE_SCALAR;
#ifdef OP_NATIVE_HAVE_X86
    __builtin_cpu_init();
    bool fma = __builtin_cpu_supports("fma");
    if (fma && __builtin_cpu_supports("avx2"))
        best = OP_NATIVE_AVX2;
    if (fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        best = OP_NATIVE_AVX512;
#endif
    isa_supported = best;
    op_native_isa_level use = best;
    const char *env = getenv("CNN_ISA");
    if (env) {
        for (int l = 0; l < OP_NATIVE_ISA_COUNT; l++)
            if (strcmp(env, isa_names[l]) == 0 && (op_native_isa_level)l < use)
                use = (op_native_isa_level)l;
    }
    atomic_store(&isa_active, (int)use);
}

op_native_isa_level op_native_isa_supported(void)
{
    pthread_once(&isa_once, isa_init);
    return isa_supported;
}

op_native_isa_level op_native_isa_active(void)
{
    pthread_once(&isa_once, isa_init);
    return (op_native_isa_level)atomic_load(&isa_active);
}

const char *op_native_isa_name(op_native_isa_level level)
{
    if ((int)level < 0 || level >= OP_NATIVE_ISA_COUNT)
        return "unknown";
    return isa_names[level];
}

int op_native_force_isa(op_native_isa_level level)
{
    if ((int)level < 0 || level > op_native_isa_supported())
        return -1;
    atomic_store(&isa_active, (int)level);
    return 0;
}

const op_native_isa *op_native_isa_table(void)
{
    switch (op_native_isa_active()) {
#ifdef OP_NATIVE_HAVE_X86
    case OP_NATIVE_AVX512: return &op_native_isa_avx512;
    case OP_NATIVE_AVX2: return &op_native_isa_avx2;
#endif
    default: return &op_native_isa_scalar;
    }
}

const op_native_simd *op_native_simd_table(void)
{
    switch (op_native_isa_active()) {
#ifdef OP_NATIVE_HAVE_X86
    case OP_NATIVE_AVX512: return &op_native_simd_avx512;
    case OP_NATIVE_AVX2: return &op_native_simd_avx2;
#endif
    default: return &op_native_simd_scalar;
    }
}

#define K(fn) {.run = op_native_##fn, .scratch = op_native_##fn##_scratch}
#define K0(fn) {.run = op_native_##fn}
/* the fp32 convolutions: either layout, following their inputs (native_conv_cl.c) */
#define KL(fn) {.run = op_native_##fn, .scratch = op_native_##fn##_scratch, .layouts = OP_LAYOUT_FOLLOWS_INPUTS}
/* ... keeping their channels-last packed weights between runs (native_conv.h: nconv_wcache) */
#define KLW(fn)                                                                                    \
    {.run = op_native_##fn, .prepare = op_native_conv_prepare, .release = op_native_conv_release,  \
     .scratch = op_native_##fn##_scratch, .layouts = OP_LAYOUT_FOLLOWS_INPUTS}
/* element-wise over flat memory: any layout (channels-last, blocked too), as long as the node's
 * tensors share one */
#define KE(fn) {.run = op_native_##fn, .layouts = OP_LAYOUT_EITHER, .blocked = true}

/* Every op but bn_fold (a weights-only step, left to the reference) and dense_q (int8
 * dense layers: the reference's).  Dense layers, 3-D convolutions and the rest take plain
 * tensors only; the element-wise ops (KE), batchnorm and max pooling take channels-last ones too
 * (batchnorm the blocked order as well), so that where the tuner puts one of them between oneDNN
 * kernels (which prefer channels-last) no reorder is needed.  The fp32 1-D and 2-D convolutions
 * and their backward (KL) follow their inputs' layout (OP_LAYOUT_FOLLOWS_INPUTS): channels-last
 * between oneDNN kernels, where the avx512 level runs them as direct convolutions
 * (native_conv_cl.c, faster than the plain GEMM paths), plain otherwise; except that with the
 * avx512 level the 2-D ones on 16 channels or more run channels-last whatever their inputs
 * (op_native_wide_cl; compiler/pass_layout.c), so an all-native plan of few-channel layers
 * (LeNet-5) stays plain.  The int8 convolution prefers channels-last (native_conv_q.c: a first
 * layer then feeds oneDNN's convolutions directly); an int8 plan gets its reorders where
 * plain-only nodes read its convolutions' outputs.  Reorders convert plain and channels-last
 * (native_layout.c), not oneDNN's blocked order.
 * Max-pool backward reads the pool's input (the graph's maxpool_bwd has in: dy, x) and finds
 * each window's maximum in the same pass that scatters dy, so the forward runs once per step;
 * storing an index map in the forward instead would need a second maxpool output in training
 * and a maxpool_bwd reading it (compiler/autodiff.c, ops/desc_pool.c). */

static const op_kernel native_kernels[OP_COUNT] = {
    /* between plain and channels-last (not oneDNN's blocked order) */
    [OP_REORDER] = {.run = op_native_reorder, .layouts = OP_LAYOUT_EITHER},
    [OP_CONV1D] = KLW(conv),
    [OP_CONV2D] = KLW(conv),
    [OP_CONV3D] = K(conv),
    /* int8 (bf16 and 3-D: the reference); channels-last preferred: see native_conv_q.c */
    [OP_CONV_Q] = {.run = op_native_conv_q, .scratch = op_native_conv_q_scratch, .layouts = OP_LAYOUT_PREFERS_CL},
    [OP_CONV_BWD_DATA] = KLW(conv_bwd_data),
    [OP_CONV_BWD_WEIGHTS] = KL(conv_bwd_weights),
    [OP_DENSE] = K(dense),
    [OP_DENSE_BWD_DATA] = K(dense_bwd_data),
    [OP_DENSE_BWD_WEIGHTS] = K(dense_bwd_weights),
    /* batchnorm in every layout, channels-last and blocked vectorised over the channels */
    [OP_BATCHNORM] = {.run = op_native_batchnorm, .scratch = op_native_batchnorm_scratch, .layouts = OP_LAYOUT_EITHER, .blocked = true},
    [OP_BATCHNORM_BWD] = {.run = op_native_batchnorm_bwd, .scratch = op_native_batchnorm_bwd_scratch, .layouts = OP_LAYOUT_EITHER, .blocked = true},
    [OP_MAXPOOL] = {.run = op_native_maxpool, .layouts = OP_LAYOUT_EITHER},
    [OP_MAXPOOL_BWD] = {.run = op_native_maxpool_bwd, .layouts = OP_LAYOUT_EITHER},
    [OP_AVGPOOL] = K0(avgpool),
    [OP_AVGPOOL_BWD] = K0(avgpool_bwd),
    [OP_GLOBAL_AVGPOOL] = K0(global_avgpool),
    [OP_GLOBAL_AVGPOOL_BWD] = K0(global_avgpool_bwd),
    [OP_RELU] = KE(act),
    [OP_SIGMOID] = KE(act),
    [OP_TANH] = KE(act),
    [OP_LEAKY_RELU] = KE(act),
    [OP_ACT_BWD] = KE(act_bwd),
    [OP_ADD] = KE(add),
    [OP_FLATTEN] = K0(flatten),
    [OP_COPY] = K0(flatten),
    [OP_DROPOUT] = K0(dropout),
    [OP_DROPOUT_BWD] = K0(dropout_bwd),
    [OP_SOFTMAX] = K0(softmax),
    [OP_SOFTMAX_BWD] = K0(softmax_bwd),
    [OP_CONCAT] = K0(concat),
    [OP_CONCAT_BWD] = K0(concat_bwd),
    [OP_XENT_LOSS] = K0(xent_loss),
    [OP_MSE_LOSS] = K0(mse_loss),
    [OP_SGD_UPDATE] = K0(sgd_update),
    [OP_ADAM_UPDATE] = K0(adam_update),
    [OP_ADAMW_UPDATE] = K0(adamw_update),
    [OP_GRAD_SQNORM] = K0(grad_sqnorm),
    [OP_CLIP_SCALE] = {.run = op_ref_clip_scale}, /* a scalar op in double: the reference's */
};

bool op_native_int8_few_channels(op_kind op)
{
    /* the tap-word direct convolution (native_conv_q.h) with vpdpbusd; its exact C levels are
     * slower than fp32 there */
    return op == OP_CONV_Q && strcmp(op_native_conv_q_level(), "avx512_vnni") == 0;
}

bool op_native_few_channels(op_kind op)
{
    /* max pooling's backward on LeNet-5's channels-last 6x28x28 and 16x10x10, batch 64, 2
     * threads (cnnc bench --train --profile): native 0.12 and 0.09-0.13 ms, oneDNN 0.81 and
     * 0.24.  (Not the forward: native 0.11 and 0.04 ms, oneDNN 0.09 and 0.03.)  The backward to
     * the data of fewer than 16 channels by outer products, on a machine with AVX-512
     * (bench_native --bwd "LeNet c2", one thread: 85 GFLOP/s, oneDNN 66). */
    return op == OP_MAXPOOL_BWD || (op == OP_CONV_BWD_DATA && op_native_isa_supported() == OP_NATIVE_AVX512);
}

bool op_native_preferred(op_kind op)
{
    /* batchnorm in training (forward with the batch statistics, and backward), channels-last,
     * resnet20's shapes at batch 64 on 2 threads (bench_native --mem batchnorm, and the
     * per-node profile of a training step): docs/choices.md, "Memory layout" */
    /* and the dense layer's weight gradient (a GEMM over the batch): LeNet-5's 400 -> 120 at
     * batch 64, one thread, 0.056 ms against oneDNN's 0.100; bench_native --bwd "dense"
     * (1024 -> 1024): 113 GFLOP/s against 102 */
    return op == OP_BATCHNORM || op == OP_BATCHNORM_BWD || op == OP_DENSE_BWD_WEIGHTS;
}

bool op_native_first_layer(op_kind op)
{
    /* the first-layer paths of native_conv.c (conv_plane_pad, conv_wgrad_pad), on a machine
     * with AVX-512: LeNet-5's first layer at batch 64 (bench_native --bwd "LeNet c1"), one
     * thread: forward 60 GFLOP/s against oneDNN's 30, weight gradient 69 against 38 */
    return (op == OP_CONV2D || op == OP_CONV_BWD_WEIGHTS) && op_native_isa_supported() == OP_NATIVE_AVX512;
}

bool op_native_wide_cl(op_kind op)
{
    /* the channels-last direct kernels (native_conv_cl.c, AVX-512) against the plain paths'
     * GEMMs: resnet20's 16 -> 16 3x3 at batch 64, one thread, 178 GFLOP/s against 104 forward,
     * 188 against 94 to the data, 186 against 65 to the weights (bench_native --bwd) */
    return (op == OP_CONV2D || op == OP_CONV_BWD_DATA || op == OP_CONV_BWD_WEIGHTS) &&
           op_native_isa_supported() == OP_NATIVE_AVX512;
}

bool op_native_winograd(op_kind op)
{
    /* Winograd's F(4x4, 3x3) on channels-last activations (native_conv_wino.c), forward and
     * backward, on a machine with AVX-512 */
    return (op == OP_CONV2D || op == OP_CONV_BWD_DATA || op == OP_CONV_BWD_WEIGHTS) &&
           op_native_isa_supported() == OP_NATIVE_AVX512;
}

const op_kernel *op_native_kernel(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return NULL;
    return native_kernels[op].run ? &native_kernels[op] : NULL;
}
