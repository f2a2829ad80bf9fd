/* What the kernels can do, as plain data: per op and backend, whether a kernel exists and which
 * activation layouts it takes.  ops/kernels.c fills it from the kernel tables
 * (op_kernel_caps); the runtime hands it to the compiler, whose backend-assignment and layout
 * passes read only this table, never the kernel tables themselves. */
#ifndef CNN_OPS_CAPS_H
#define CNN_OPS_CAPS_H

#include <stdbool.h>

#include "ops/op.h"

typedef enum op_backend { OP_BACKEND_REF, OP_BACKEND_NATIVE, OP_BACKEND_ONEDNN, OP_BACKEND_COUNT } op_backend;

/* What a kernel accepts for its batched activation tensors (op_tensor.layout).  A kernel that
 * takes channels-last takes it for all of them at once: the layout pass gives every batched
 * activation of such a node one layout (except tensors whose two orders coincide: rank 2, one
 * channel, or one position, which stay plain and may be read either way). */
typedef enum op_layout_support {
    OP_LAYOUT_PLAIN_ONLY = 0,  /* plain tensors only (the default) */
    OP_LAYOUT_EITHER,          /* either layout, at about the same speed */
    OP_LAYOUT_PREFERS_CL,      /* either layout, clearly faster in channels-last */
    OP_LAYOUT_FOLLOWS_INPUTS,  /* either layout: channels-last only when its layout-bearing
                                * inputs mostly are (plain when it has none), so that a plan of
                                * such kernels fed plain inputs stays plain (the native fp32
                                * convolutions) */
} op_layout_support;

typedef struct op_caps {
    bool has[OP_COUNT][OP_BACKEND_COUNT];
    op_layout_support layouts[OP_COUNT][OP_BACKEND_COUNT];
    bool blocked[OP_COUNT][OP_BACKEND_COUNT]; /* takes OP_LAYOUT_BLOCK16 activations too */
    /* conv_q: the backend's int8 kernel stays fast on convolutions with fewer than 4 input
     * channels per group (LeNet's first layer), where oneDNN's int8 is slower than its fp32:
     * only such a backend gets those convolutions in int8 (compiler/pass_precision.c) */
    bool int8_few_channels[OP_COUNT][OP_BACKEND_COUNT];
    /* conv2d, conv_bwd_data, conv_bwd_weights: the backend's kernel runs fp32 3x3 stride-1 2-D
     * convolutions by Winograd's algorithm when a node asks (attrs.conv.winograd, set by
     * compiler/pass_conv_algo.c), on this machine */
    bool winograd[OP_COUNT][OP_BACKEND_COUNT];
    /* the backend's kernel is the fast one on images of 16 channels or fewer, where another
     * backend first in auto's order is slow (oneDNN's max pooling backward on LeNet-5's 6 and 16
     * channels, channels-last: 2.5-7 times the native kernel's time; a convolution's backward
     * to the data of fewer than 16 channels: 1.3 times): untuned auto runs such nodes there
     * (compiler/pass_backend.c) */
    bool few_channels[OP_COUNT][OP_BACKEND_COUNT];
    /* the backend's kernel is the fast one for the op in every layout, where another backend
     * first in auto's order is slow (batchnorm in training: oneDNN's channels-last kernels take
     * 2-3 times the native ones' time on resnet20; the dense layer's weight gradient: up to 1.8
     * times on LeNet-5): untuned auto runs such nodes there (compiler/pass_backend.c) */
    bool preferred[OP_COUNT][OP_BACKEND_COUNT];
    /* conv2d, conv_bwd_weights: the backend's kernel is the fast one on fp32 first layers of
     * one input channel (grayscale images, rows of at most 32 outputs at column stride 1),
     * where oneDNN's kernels are slow (LeNet-5's 1 -> 6 channels 5x5 at batch 64, one thread:
     * forward 60 GFLOP/s against 30, weight gradient 69 against 38): untuned auto runs such
     * nodes there (compiler/pass_backend.c) */
    bool first_layer[OP_COUNT][OP_BACKEND_COUNT];
    /* a kernel that follows its inputs' layout (OP_LAYOUT_FOLLOWS_INPUTS) or takes either
     * (OP_LAYOUT_EITHER) is nonetheless faster channels-last on images of 16 channels or more,
     * on this machine (the native convolutions' direct kernels with AVX-512; oneDNN's
     * batchnorms): the layout pass runs such a node channels-last even where its inputs are
     * plain, so that an all-native plan runs them (and the tuner measures them as they run) */
    bool wide_cl[OP_COUNT][OP_BACKEND_COUNT];
} op_caps;

const char *op_backend_name(op_backend b);

#endif
