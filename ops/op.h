/* What an op is, below every stage: the op kinds (ops/ops.def), shapes without the batch axis,
 * the typed attributes of each op family, and the instance a kernel runs (kind, attributes,
 * name).  lang/ checks calls against these, compiler/ builds graphs of them, runtime/ runs them;
 * this header includes none of those. */
#ifndef CNN_OPS_OP_H
#define CNN_OPS_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_MAX_RANK 5  /* without the batch axis: [C, D, H, W] activations, [F, C/g, kd, kh, kw]
                        * conv3d weights */
#define OP_MAX_IN 16   /* a node's inputs: concat is the widest */
#define OP_MAX_OUT 4
#define OP_NAME_MAX 96

typedef enum op_kind {
#define X(e, s) OP_##e,
#include "ops/ops.def"
#undef X
    OP_COUNT
} op_kind;

/* A shape without the batch axis.  rank 0 is a scalar (a loss). */
typedef struct op_shape {
    int rank;
    int64_t d[OP_MAX_RANK];
} op_shape;

/* The memory order of a batched activation.  The logical shape (ir_value.shape, and the dims
 * a kernel sees) stays [C, H, W] / [C, L] in both; only the order of the elements differs.
 * Set by compiler/pass_layout.c; everything the public API exposes stays plain. */
typedef enum op_layout {
    OP_LAYOUT_PLAIN = 0,   /* NCHW, NCL, NC: the public layout and the reference kernels' */
    OP_LAYOUT_NHWC,        /* channels last: NHWC for images, NWC for signals */
    OP_LAYOUT_BLOCK16,     /* channels in blocks of 16, innermost: [N, C/16, H, W, 16] (oneDNN's
                            * nChw16c), for images whose channel count is a multiple of 16; only
                            * kernels that declare it take it (op_kernel.blocked), between
                            * Winograd convolutions, which read and write nothing else */
} op_layout;

/* The element type of an activation in memory (op_tensor.dtype, ir_value.dtype): f32 everywhere
 * except between two int8 nodes (compiler/pass_precision.c), where it is the quantised u8 or s8
 * value, each element one byte (the buffer is still sized as for f32). */
typedef enum op_dtype {
    OP_DT_F32 = 0,
    OP_DT_U8,
    OP_DT_S8,
} op_dtype;

/* The activation kinds: none, then one per ACT(...) op of ops/ops.def, in that order. */
typedef enum op_act {
    OP_ACT_NONE,
#define X(e, s)
#define ACT(e, s) OP_ACT_##e,
#include "ops/ops.def"
#undef ACT
#undef X
} op_act;

/* The arithmetic of a low-precision node (conv_q, dense_q: compiler/pass_precision.c makes them
 * from conv and dense layers). */
typedef enum op_precision {
    OP_PREC_FP32 = 0,
    OP_PREC_BF16,          /* bf16 inputs and weights (rounded to nearest even), f32 accumulation */
    OP_PREC_INT8,          /* u8/s8 inputs x s8 weights -> s32, per-output-channel weight scales */
} op_precision;

/* conv1d, conv2d and their backward ops.  1-D convolutions use index 1 (width) of each pair
 * and treat height as 1 with kernel 1, stride 1, pad 0, dilation 1, so kernels see one form. */
typedef struct op_conv_attrs {
    int sdims;             /* 1, 2 or 3 spatial dims */
    int64_t filters;
    int64_t kernel[2], stride[2], pad[2], dilation[2]; /* [h, w] */
    /* 3-D convolutions only (sdims 3): the depth axis; 1, 1, 0, 1 for the others */
    int64_t kernel_d, stride_d, pad_d, dilation_d;
    int64_t groups;
    bool bias;
    /* fused epilogue, in this order: + residual (input after the bias), activation, maxpool */
    bool residual;         /* an extra input: added to the conv output before act */
    op_act act;
    float alpha;           /* leaky_relu slope */
    bool pool;             /* fused max pooling of the activated output */
    int64_t pool_size[2], pool_stride[2], pool_pad[2];
    /* with pool: the activated output, which the pooling reads, is kept as output 0 and the
     * pooled one is output 1 (training: maxpool_bwd and act_bwd read output 0); else the
     * pooled one is the only output */
    bool pool_keep;
    /* conv_q; and bf16 on conv, conv_bwd_data, conv_bwd_weights of a bf16 training graph (their
     * x, w and dy read as bf16, outputs f32) */
    op_precision prec;
    bool q_unsigned;       /* int8: the input is quantised as u8 (it is never negative), else s8 */
    bool res_unsigned;     /* int8 output with a residual: the residual's bytes are u8 (it is never
                            * negative), else s8 (ops/quant.h) */
    /* fp32 conv, conv_bwd_data, conv_bwd_weights: by Winograd's algorithm F(4x4, 3x3) (or
     * F(2x2, 3x3)) instead of directly; set by compiler/pass_conv_algo.c on backends that have
     * it (op_caps.winograd).  A kernel without Winograd for the call runs it directly. */
    bool winograd;
    bool weights_vary;     /* a Winograd conv of a training graph: its weights change every step, so
                            * they are transformed inside the kernel, not once ahead */
} op_conv_attrs;

typedef struct op_pool_attrs {
    int sdims;             /* 1, 2 or 3 */
    int64_t size[2], stride[2], pad[2]; /* [h, w] */
    int64_t size_d, stride_d, pad_d;    /* 3-D pools only (sdims 3): the depth axis */
    /* maxpool_bwd: the backward of the activation before the pool (whose output is the pool's
     * input x), fused: dx = act'(x) * the pooled gradient's scatter; OP_ACT_NONE: none */
    op_act act;
    float alpha;           /* leaky_relu slope */
} op_pool_attrs;

typedef struct op_dense_attrs {
    int64_t units;
    bool bias;
    op_act act;            /* fused activation */
    float alpha;
    bool softmax;          /* fused softmax (inference) */
    /* dense_q; and bf16 on dense, dense_bwd_data, dense_bwd_weights of a bf16 training graph */
    op_precision prec;
    bool q_unsigned;       /* int8: the input is quantised as u8, else s8 */
} op_dense_attrs;

typedef struct op_bn_attrs {
    float eps, momentum;
    bool training;         /* batch statistics, running-statistics update, saved mean/invstd */
    /* fused epilogue (compiler/pass_fuse.c), in this order: + residual (an input after the four
     * parameter vectors), activation.  batchnorm_bwd with an activation: its dy is the
     * activation's output gradient and it also reads the activation's output (a last input),
     * so it applies the activation's backward first */
    bool residual;
    op_act act;
    float alpha;
} op_bn_attrs;

typedef struct op_act_attrs {
    op_act act;            /* for the activation ops and act_bwd */
    float alpha;
} op_act_attrs;

typedef struct op_dropout_attrs {
    float p;
    bool training;
} op_dropout_attrs;

typedef struct op_optim_attrs {
    double lr, momentum, weight_decay, beta1, beta2, eps; /* double: 1 - beta2 exactly as PyTorch */
    bool nesterov;
    bool clip;             /* the last input is clip_scale's scalar: the gradient is scaled by it */
} op_optim_attrs;

typedef struct op_loss_attrs {
    double label_smoothing; /* cross_entropy: (1 - e) CE + e mean_k(-log p_k), as PyTorch */
} op_loss_attrs;

/* grad_sqnorm and clip_scale (clip_grad_norm) */
typedef struct op_clip_attrs {
    double max_norm;       /* clip_scale: scale = min(1, max_norm / (sqrt(sum) + 1e-6)) */
    bool accumulate;       /* grad_sqnorm: in[0] is a partial sum to add to, not a gradient */
} op_clip_attrs;

typedef struct op_slice_attrs {
    int64_t offset;        /* concat_bwd: first channel of this input in the concatenation */
} op_slice_attrs;

/* reorder (made by pass_layout): the value's memory order before and after */
typedef struct op_reorder_attrs {
    op_layout from, to;
} op_reorder_attrs;

typedef union op_attrs {
    op_conv_attrs conv;
    op_pool_attrs pool;
    op_dense_attrs dense;
    op_bn_attrs bn;
    op_act_attrs act;
    op_dropout_attrs dropout;
    op_optim_attrs optim;
    op_loss_attrs loss;
    op_clip_attrs clip;
    op_slice_attrs slice;
    op_reorder_attrs reorder;
} op_attrs;

/* One op instance as a kernel sees it: the compiler's node reduced to what the kernels read. */
typedef struct op_node {
    op_kind op;
    op_attrs attrs;
    char name[OP_NAME_MAX];  /* the layer's name (conv2d_1, relu_3, ...) for messages */
} op_node;

/* Elements in one example of a shape (product of its dims), or INT64_MAX when the product
 * overflows or a dim is negative (saturated: compare with OP_MAX_NUMEL of ops/checked.h). */
int64_t op_shape_numel(const op_shape *s);
/* The same, exact: false when the product overflows int64_t or a dim is negative. */
bool op_shape_numel_checked(const op_shape *s, int64_t *n);
/* "16 x 4611686018427387904" (the dims joined by " x ", for size messages) into buf. */
char *op_shape_dims_str(const op_shape *s, char *buf, size_t n);
bool op_shape_equal(const op_shape *a, const op_shape *b);
/* "[6, 28, 28]" into buf; returns buf. */
char *op_shape_str(const op_shape *s, char *buf, size_t n);
/* The same with another separator between the sizes ("," for compact labels). */
char *op_shape_format(const op_shape *s, const char *sep, char *buf, size_t n);
const char *op_act_name(op_act a);
/* "nchw" (plain), "nhwc" (channels-last), "nChw16c" (blocked) */
const char *op_layout_name(op_layout l);

#endif
