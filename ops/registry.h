/* The op registry: one entry per op kind (ops/ops.def), carrying everything the stages need
 * to know about it: the layer's argument schema (read by lang/sema.c to check calls), how to
 * turn checked arguments into typed attributes, the shape rule, the FLOP count, the parameter
 * tensors it owns and how they are initialised, its gradient rule (compiler/autodiff.c), what
 * training mode changes, where a fused activation or a folded bias goes, a one-line summary of
 * its attributes, and its properties.  The passes ask these fields instead of testing op kinds.
 * The entries live by op family in ops/desc_*.c (op_def_<name>); ops/registry.c indexes them.
 * Kernels per backend join by op kind in ops/kernels.h. */
#ifndef CNN_REGISTRY_H
#define CNN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/op.h"

/* ---- argument schema (layers a .cnn file can call) ---- */

typedef enum op_argtype {
    OP_ARG_INT,      /* an int */
    OP_ARG_FLOAT,    /* a float or an int */
    OP_ARG_BOOL,     /* true or false */
    OP_ARG_STRING,
    OP_ARG_INTS,     /* an int, or (conv2d and 2-D pools) a tuple (h, w) of ints */
    OP_ARG_PAD,      /* like OP_ARG_INTS, or the string "same" */
} op_argtype;

/* constraints checked by sema */
enum {
    OP_ARGF_POSITIVE = 1 << 0,   /* every int > 0 */
    OP_ARGF_NONNEG = 1 << 1,     /* every int >= 0 */
    OP_ARGF_UNIT = 1 << 2,       /* float in [0, 1) */
    OP_ARGF_FPOS = 1 << 3,       /* float > 0 */
    OP_ARGF_TUPLE_OK = 1 << 4,   /* OP_ARG_INTS/PAD: a 2-tuple (h, w) is allowed (2-D layers) */
    OP_ARGF_TRIPLE_OK = 1 << 5,  /* OP_ARG_INTS/PAD: a 3-tuple (d, h, w) is allowed (3-D layers) */
};

/* A checked compile-time argument value. */
typedef struct op_argval {
    bool given;          /* false: the default was used (or no default: absent) */
    bool present;        /* false: no value (optional argument without default, e.g. name) */
    int n;               /* OP_ARG_INTS/PAD: 1 for an int, else the tuple length (2 or 3) */
    int64_t i[3];        /* ints (i[0] for OP_ARG_INT) */
    double f;            /* OP_ARG_FLOAT */
    bool b;              /* OP_ARG_BOOL */
    bool same;           /* OP_ARG_PAD: "same" */
    char s[OP_NAME_MAX]; /* OP_ARG_STRING */
} op_argval;

#define OP_MAX_ARGS 10

typedef struct op_argspec {
    const char *name;
    op_argtype type;
    unsigned flags;
    /* The default as source text ("1", "0.5", "true", "1e-5"), NULL if required, or "" for an
     * optional argument without value (name), or "=other" to copy another argument's value
     * (stride defaults to size). */
    const char *dflt;
} op_argspec;

/* What shape/attrs functions report: an error message (written into err) and which argument
 * it concerns (-1: the layer as a whole).  Returns 0 on success. */
typedef struct op_err {
    char msg[256];
    int arg;
} op_err;

/* What a gradient rule sees of the graph it extends (compiler/autodiff.c provides it): the
 * forward node, its value ids, and calls that read values and add gradient values and backward
 * nodes.  Value ids are the graph's; the rule never sees the graph itself. */
typedef struct op_grad_ctx op_grad_ctx;
struct op_grad_ctx {
    const op_node *fwd;        /* kind, attributes, name */
    int nin, nout;
    const int *in, *out;       /* the forward node's values */
    const int *gout;           /* gradient of each output, -1 where none flows */
    int *gin;                  /* written: gradient of each input, -1 where none */
    void *graph;               /* the provider's */
    /* True for values that carry a gradient: activations and trainable parameters. */
    bool (*wants_grad)(const op_grad_ctx *c, int v);
    /* A new gradient value shaped like v, or -1 when out of memory. */
    int (*grad_value)(const op_grad_ctx *c, int v);
    const op_shape *(*shape)(const op_grad_ctx *c, int v);
    /* Appends a backward node named "<forward name>.<what>": 0, or -1 when out of memory. */
    int (*emit)(const op_grad_ctx *c, op_kind op, const op_attrs *a, int nin, const int *in, int nout,
                const int *out, const char *what);
};

/* How a parameter tensor is initialised (runtime/weights.c, PyTorch's defaults). */
typedef enum op_init {
    OP_INIT_NONE = 0,               /* not a parameter (never reported by params) */
    OP_INIT_FAN_IN_UNIFORM,         /* uniform in +-1/sqrt(fan_in), fan_in = numel / dim 0 */
    OP_INIT_BIAS_FAN_IN_UNIFORM,    /* uniform in +-1/sqrt(fan_in) of the layer's weight */
    OP_INIT_ONE,
    OP_INIT_ZERO,
} op_init;

/* op_def.props */
enum {
    OP_PROP_TRAINING_ONLY = 1u << 0,   /* made for training graphs only: backward ops, losses, updates */
    OP_PROP_HAS_WEIGHTS = 1u << 1,     /* owns parameter tensors (params != NULL) */
    OP_PROP_CONV = 1u << 2,            /* a convolution (attrs.conv): the conv epilogue fusions apply */
    OP_PROP_FOLDS_INTO_XENT = 1u << 3, /* as a graph's last op, part of a cross-entropy loss (softmax) */
    OP_PROP_POOL_EPILOGUE = 1u << 4,   /* a following max pooling fuses into its epilogue (1-D, 2-D conv) */
};

typedef struct op_def {
    op_kind op;
    const char *name;
    bool is_layer;                 /* callable from .cnn */
    int min_inputs, max_inputs;    /* tensor inputs (not parameters) of the layer */
    int nargs;
    op_argspec args[OP_MAX_ARGS];
    /* Layer ops: fill typed attributes from checked arguments and the input shapes.  May
     * reject combinations (e.g. groups not dividing channels).  NULL: no attributes. */
    int (*make_attrs)(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e);
    /* Output shape of output 0 from the tensor input shapes; 0 or -1 with e filled. */
    int (*shape)(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e);
    /* Parameters (weights) the layer owns, in order; writes their suffix ("weight", "bias",
     * "running_mean"...), shapes, whether trainable and how initialised.  Returns the count. */
    int (*params)(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                  bool *trainable, op_init *init);
    /* Multiply-adds counted as 2 FLOPs, per example, for one node.  in[k] is the shape of the
     * node's input k, parameters included (nin of them); out the shape of output 0, or NULL
     * for an op without outputs (updates). */
    int64_t (*flops)(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
    /* Gradient rule: given the forward node and the gradient values of its outputs, append
     * the backward nodes through c and write the gradient value of each input into c->gin
     * (-1 where none; parameters included).  0, or -1 with e filled.  NULL: the op is not
     * differentiable. */
    int (*grad)(const op_grad_ctx *c, op_err *e);
    /* True when the op writes some of its inputs (optimiser updates; batchnorm in training,
     * its running statistics).  NULL: never. */
    bool (*updates_inputs)(const op_attrs *a);
    /* Switches a to training mode and returns how many outputs the op makes beyond output 0
     * when training (at most OP_MAX_OUT - 1), with each one's shape, whether it has the batch
     * axis, and its name suffix ("mask", "save_mean").  in0: input 0's shape.  NULL: training
     * changes nothing. */
    int (*train_outputs)(op_attrs *a, const op_shape *in0, op_shape *shapes, bool *batched,
                         const char **suffix);
    /* Where a following activation can be fused into this node (and its slope in *alpha), or
     * NULL when it cannot take one now (e.g. a conv with a fused pool).  The slot holds
     * OP_ACT_NONE while free.  NULL: the op never takes one. */
    op_act *(*act_slot)(op_attrs *a, float **alpha);
    /* Where the node's fused-residual flag lives (conv, batchnorm): an add of its output 0 and
     * another tensor fuses in, the other tensor appended to its inputs, the add's activation
     * moving into act_slot.  NULL: the op never takes one. */
    bool *(*residual_flag)(op_attrs *a);
    /* Where the layer's bias flag lives (conv, dense): the layer reads (x, weight[, bias]), and
     * a batchnorm following it can be folded into its weight and bias.  NULL otherwise. */
    bool *(*bias_flag)(op_attrs *a);
    /* True when the node carries fused work after its main computation (residual add,
     * activation, pooling, softmax).  NULL: it never does. */
    bool (*epilogue)(const op_attrs *a);
    /* The one-line attribute summary of the layer table ("6x5x5 +relu", "p=0.5"); writes ""
     * or nothing when there is none to say.  NULL: none. */
    void (*describe)(const op_attrs *a, char *buf, size_t n);
    /* OP_PROP_* */
    unsigned props;
    /* True when output 0 may share input 0's memory (elementwise ops). */
    bool inplace;
    /* The input whose memory output 0 may take over although the op is no elementwise one: a
     * fused residual, summed into the output at the positions it is read from (a conv's fused
     * add without a fused pool); -1 when none now.  NULL: never. */
    int (*sum_input)(const op_attrs *a);
    /* The activation ops (ACT entries of ops.def): which activation they apply. */
    op_act act;
    /* is_layer ops: true when a .cnn file may call it by name.  False for add, which only
     * '+' makes (it still gets a layer name, add_1, ...).  op_def_find_layer and
     * op_layer_names only know the callable ones. */
    bool callable;
} op_def;

/* The most parameter tensors one op owns (batchnorm: weight, bias, running_mean,
 * running_var): the size of the arrays given to op_def.params. */
#define OP_MAX_PARAMS 4

const op_def *op_def_get(op_kind op);
/* The layer called `name`, or NULL. */
const op_def *op_def_find_layer(const char *name);
const char *op_name(op_kind op);
/* All callable layer names (is_layer && callable), NULL-terminated, in ops.def order, for "did
 * you mean" suggestions: derived from the table once. */
const char *const *op_layer_names(void);

#endif
