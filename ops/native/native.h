/* The native SIMD backend (ops/native/): convolution forward and backward, dense forward and
 * backward, as a packed SGEMM (register-blocked micro-kernel per ISA) with im2col packing and
 * fused epilogues, and on channels-last activations as direct convolutions (avx512,
 * native_conv_cl.c); the int8 convolution (conv_q: a direct convolution with vpdpbusd where the
 * CPU has AVX-512 VNNI, native_conv_q.h); and every other op but reorder, bn_fold and dense_q
 * (batchnorm, pooling, element-wise
 * and data-movement ops, softmax, losses, optimiser updates, gradient clipping) as float loops
 * vectorised per ISA (simd.h).  The instruction set is chosen once, at the first call, from the
 * CPU's features (__builtin_cpu_supports); CNN_ISA=avx512|avx2|scalar in the environment forces
 * a lower one (never a higher one than the CPU has).  Kernels follow ops/kernels.h and the
 * in/out order and math of ops/ref.h, on plain (NCHW) tensors, and on channels-last ones where
 * their table entry says so (element-wise ops, max pooling, the fp32 1-D/2-D convolutions and
 * their backward, conv_q: native_kernels.c). */
#ifndef CNN_OPS_NATIVE_H
#define CNN_OPS_NATIVE_H

#include "ops/kernels.h"

/* The native kernel for op, or NULL when the native backend has none (the planner then falls
 * back).  op_kernel_get(op, OP_BACKEND_NATIVE) forwards here. */
const op_kernel *op_native_kernel(op_kind op);
/* Whether the native int8 kernel of op stays fast on convolutions with fewer than 4 input
 * channels per group (op_caps.int8_few_channels): conv_q where the AVX-512 VNNI path runs. */
bool op_native_int8_few_channels(op_kind op);
/* Whether the native kernel of op is the fast one on images of 16 channels or fewer
 * (op_caps.few_channels). */
bool op_native_few_channels(op_kind op);
/* Whether the native kernel of op is the fast one in every layout, so that untuned auto runs
 * the op natively (op_caps.preferred). */
bool op_native_preferred(op_kind op);
/* Whether the native kernel of op is the fast one on fp32 first layers of one input channel
 * on this machine (op_caps.first_layer). */
bool op_native_first_layer(op_kind op);
/* Whether the native kernel of op runs faster channels-last on images of 16 channels or more
 * on this machine, whatever its inputs' layout (op_caps.wide_cl). */
bool op_native_wide_cl(op_kind op);
/* Whether the native kernel of op can run a node by Winograd's algorithm on this machine
 * (op_caps.winograd: native_conv_wino.c, for the calls that fit). */
bool op_native_winograd(op_kind op);

/* Instruction-set levels, lowest first. */
typedef enum op_native_isa_level {
    OP_NATIVE_SCALAR,
    OP_NATIVE_AVX2,     /* AVX2 + FMA */
    OP_NATIVE_AVX512,   /* AVX-512 F + VL + FMA */
    OP_NATIVE_ISA_COUNT
} op_native_isa_level;

/* The highest level this CPU (and this build) supports, ignoring any override. */
op_native_isa_level op_native_isa_supported(void);
/* The level the kernels use now: the supported one, lowered by CNN_ISA at the first call or by
 * op_native_force_isa(). */
op_native_isa_level op_native_isa_active(void);
/* "scalar", "avx2", "avx512" */
const char *op_native_isa_name(op_native_isa_level level);
/* Testing and benchmarking: makes the kernels use level from now on.  Returns 0, or -1 (and
 * changes nothing) when the CPU does not support it.  Not to be called while a native kernel
 * runs on another thread. */
int op_native_force_isa(op_native_isa_level level);

/* The int8 convolution's path at the active level: "avx512_vnni" (vpdpbusd), "avx2" or
 * "scalar" (exact integer C). */
const char *op_native_conv_q_level(void);

#endif
