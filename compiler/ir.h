/* The graph IR: values (tensors with a shape and a role) and nodes (ops with typed
 * attributes, input values and output values).  Built from lang/'s expanded network by
 * compiler/build.c, rewritten by the passes, scheduled and planned by compiler/plan.c. */
#ifndef CNN_IR_H
#define CNN_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/span.h"

#define IR_MAX_RANK 4  /* without the batch axis: [C, H, W] at most, plus room */
#define IR_MAX_IN 16   /* a node's inputs: concat is the widest */
#define IR_MAX_OUT 4
#define IR_NAME_MAX 96

typedef enum ir_op {
#define X(e, s) IR_OP_##e,
#include "compiler/ops.def"
#undef X
    IR_OP_COUNT
} ir_op;

/* A shape without the batch axis.  rank 0 is a scalar (a loss). */
typedef struct ir_shape {
    int rank;
    int64_t d[IR_MAX_RANK];
} ir_shape;

/* The memory order of a batched activation.  The logical shape (ir_value.shape, and the dims
 * a kernel sees) stays [C, H, W] / [C, L] in both; only the order of the elements differs.
 * Set by compiler/pass_layout.c; everything the public API exposes stays plain. */
typedef enum ir_layout {
    IR_LAYOUT_PLAIN = 0,   /* NCHW, NCL, NC: the public layout and the reference kernels' */
    IR_LAYOUT_NHWC,        /* channels last: NHWC for images, NWC for signals */
} ir_layout;

typedef enum ir_act { IR_ACT_NONE, IR_ACT_RELU, IR_ACT_SIGMOID, IR_ACT_TANH, IR_ACT_LEAKY_RELU } ir_act;

/* conv1d, conv2d and their backward ops.  1-D convolutions use index 1 (width) of each pair
 * and treat height as 1 with kernel 1, stride 1, pad 0, dilation 1, so kernels see one form. */
typedef struct ir_conv_attrs {
    int sdims;             /* 1 or 2 spatial dims */
    int64_t filters;
    int64_t kernel[2], stride[2], pad[2], dilation[2]; /* [h, w] */
    int64_t groups;
    bool bias;
    /* fused epilogue, in this order: + residual (input after the bias), activation, maxpool */
    bool residual;         /* an extra input: added to the conv output before act */
    ir_act act;
    float alpha;           /* leaky_relu slope */
    bool pool;             /* fused max pooling of the activated output */
    int64_t pool_size[2], pool_stride[2], pool_pad[2];
} ir_conv_attrs;

typedef struct ir_pool_attrs {
    int sdims;
    int64_t size[2], stride[2], pad[2];
} ir_pool_attrs;

typedef struct ir_dense_attrs {
    int64_t units;
    bool bias;
    ir_act act;            /* fused activation */
    float alpha;
    bool softmax;          /* fused softmax (inference) */
} ir_dense_attrs;

typedef struct ir_bn_attrs {
    float eps, momentum;
    bool training;         /* batch statistics, running-statistics update, saved mean/invstd */
} ir_bn_attrs;

typedef struct ir_act_attrs {
    ir_act act;            /* for the activation ops and act_bwd */
    float alpha;
} ir_act_attrs;

typedef struct ir_dropout_attrs {
    float p;
    bool training;
} ir_dropout_attrs;

typedef struct ir_optim_attrs {
    double lr, momentum, weight_decay, beta1, beta2, eps; /* double: 1 - beta2 exactly as PyTorch */
    bool nesterov;
} ir_optim_attrs;

typedef struct ir_slice_attrs {
    int64_t offset;        /* concat_bwd: first channel of this input in the concatenation */
} ir_slice_attrs;

/* reorder (made by pass_layout): the value's memory order before and after */
typedef struct ir_reorder_attrs {
    ir_layout from, to;
} ir_reorder_attrs;

typedef union ir_attrs {
    ir_conv_attrs conv;
    ir_pool_attrs pool;
    ir_dense_attrs dense;
    ir_bn_attrs bn;
    ir_act_attrs act;
    ir_dropout_attrs dropout;
    ir_optim_attrs optim;
    ir_slice_attrs slice;
    ir_reorder_attrs reorder;
} ir_attrs;

typedef enum ir_valkind {
    IR_VAL_INPUT,     /* a network input, batched */
    IR_VAL_ACT,       /* an activation made by a node, batched */
    IR_VAL_PARAM,     /* a trainable weight, named, unbatched */
    IR_VAL_STATE,     /* a non-trainable stored tensor (running_mean/var), named, unbatched */
    IR_VAL_LABEL,     /* training labels, batched, one float per example (class index) or a target */
    IR_VAL_GRAD,      /* gradient of an activation, batched */
    IR_VAL_PGRAD,     /* gradient of a parameter, unbatched */
    IR_VAL_OPTSTATE,  /* optimiser state (momentum, adam moments), named, unbatched */
    IR_VAL_SCRATCH,   /* saved statistics, masks, losses: made by a node, read by another */
} ir_valkind;

typedef struct ir_value {
    ir_shape shape;
    bool batched;            /* true: the runtime prepends the batch axis */
    ir_valkind kind;
    char name[IR_NAME_MAX];  /* weight name for PARAM/STATE/OPTSTATE, else a readable name */
    int producer;            /* node index, or -1 */
    int param_of;            /* PGRAD/OPTSTATE: the PARAM value it belongs to, else -1 */
    ir_layout layout;        /* memory order (batched activations only; plain by default) */
} ir_value;

typedef struct ir_node {
    ir_op op;
    ir_attrs attrs;
    int nin, nout;
    int in[IR_MAX_IN];
    int out[IR_MAX_OUT];
    char name[IR_NAME_MAX];  /* the layer's name (conv2d_1, relu_3, ...) */
    lang_span span;          /* where it came from in the source, or all zero */
    bool dead;               /* removed by a pass; skipped everywhere */
    char fused[IR_NAME_MAX]; /* names of the layers folded into it, for reports */
} ir_node;

typedef struct ir_graph {
    char name[IR_NAME_MAX];
    ir_value *vals;
    int nvals, capvals;
    ir_node *nodes;
    int nnodes, capnodes;
    int ninputs, noutputs;
    int inputs[16];
    int outputs[16];
    char output_names[16][IR_NAME_MAX];
    int loss;                /* training graphs: the scalar loss value, else -1 */
    int label;               /* training graphs: the label value, else -1 */
} ir_graph;

ir_graph *ir_graph_create(const char *name);
void ir_graph_destroy(ir_graph *g);
ir_graph *ir_graph_clone(const ir_graph *g);

/* Adds a value; returns its index, or -1 when out of memory. */
int ir_add_value(ir_graph *g, ir_valkind kind, const ir_shape *shape, bool batched, const char *name);
/* Adds a node with its inputs and outputs (indices of existing values); sets each output's
 * producer.  Returns the node index, or -1 when out of memory. */
int ir_add_node(ir_graph *g, ir_op op, const ir_attrs *attrs, int nin, const int *in, int nout,
                const int *out, const char *name, lang_span span);

/* Elements in one example of a value (product of its shape). */
int64_t ir_shape_numel(const ir_shape *s);
bool ir_shape_equal(const ir_shape *a, const ir_shape *b);
/* "[6, 28, 28]" into buf; returns buf. */
char *ir_shape_str(const ir_shape *s, char *buf, size_t n);
const char *ir_act_name(ir_act a);

/* The number of live (not dead) nodes that read value v. */
int ir_value_readers(const ir_graph *g, int v);

#endif
