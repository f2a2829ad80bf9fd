/* The op registry: one entry per op kind (compiler/ops.def), carrying everything the stages
 * need to know about it: the layer's argument schema (read by lang/sema.c to check calls),
 * how to turn checked arguments into typed attributes, the shape rule, the FLOP count, the
 * parameter tensors it owns, and its gradient rule (compiler/autodiff.c).  Kernels per
 * backend join by op kind in ops/kernels.h. */
#ifndef CNN_REGISTRY_H
#define CNN_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "compiler/ir.h"

/* ---- argument schema (layers a .cnn file can call) ---- */

typedef enum ir_argtype {
    IR_ARG_INT,      /* an int */
    IR_ARG_FLOAT,    /* a float or an int */
    IR_ARG_BOOL,     /* true or false */
    IR_ARG_STRING,
    IR_ARG_INTS,     /* an int, or (conv2d and 2-D pools) a tuple (h, w) of ints */
    IR_ARG_PAD,      /* like IR_ARG_INTS, or the string "same" */
} ir_argtype;

/* constraints checked by sema */
enum {
    IR_ARGF_POSITIVE = 1 << 0,   /* every int > 0 */
    IR_ARGF_NONNEG = 1 << 1,     /* every int >= 0 */
    IR_ARGF_UNIT = 1 << 2,       /* float in [0, 1) */
    IR_ARGF_FPOS = 1 << 3,       /* float > 0 */
    IR_ARGF_TUPLE_OK = 1 << 4,   /* IR_ARG_INTS/PAD: a 2-tuple is allowed (2-D layers) */
};

/* A checked compile-time argument value. */
typedef struct ir_argval {
    bool given;          /* false: the default was used (or no default: absent) */
    bool present;        /* false: no value (optional argument without default, e.g. name) */
    int n;               /* IR_ARG_INTS/PAD: 1 for an int, 2 for a tuple */
    int64_t i[2];        /* ints (i[0] for IR_ARG_INT) */
    double f;            /* IR_ARG_FLOAT */
    bool b;              /* IR_ARG_BOOL */
    bool same;           /* IR_ARG_PAD: "same" */
    char s[IR_NAME_MAX]; /* IR_ARG_STRING */
    lang_span span;      /* where it was written (the call's span for defaults) */
} ir_argval;

#define IR_MAX_ARGS 10

typedef struct ir_argspec {
    const char *name;
    ir_argtype type;
    unsigned flags;
    /* The default as source text ("1", "0.5", "true", "1e-5"), NULL if required, or "" for an
     * optional argument without value (name), or "=other" to copy another argument's value
     * (stride defaults to size). */
    const char *dflt;
} ir_argspec;

/* What shape/attrs functions report: an error message (written into err) and which argument
 * it concerns (-1: the layer as a whole).  Returns 0 on success. */
typedef struct ir_err {
    char msg[256];
    int arg;
} ir_err;

typedef struct ir_opdef {
    ir_op op;
    const char *name;
    bool is_layer;                 /* callable from .cnn */
    int min_inputs, max_inputs;    /* tensor inputs (not parameters) of the layer */
    int nargs;
    ir_argspec args[IR_MAX_ARGS];
    /* Layer ops: fill typed attributes from checked arguments and the input shapes.  May
     * reject combinations (e.g. groups not dividing channels).  NULL: no attributes. */
    int (*make_attrs)(ir_attrs *a, const ir_argval *args, const ir_shape *in, int nin, ir_err *e);
    /* Output shape of output 0 from the tensor input shapes; 0 or -1 with e filled. */
    int (*shape)(const ir_attrs *a, const ir_shape *in, int nin, ir_shape *out, ir_err *e);
    /* Parameters (weights) the layer owns, in order; writes their suffix ("weight", "bias",
     * "running_mean"...), shapes and whether trainable.  Returns the count. */
    int (*params)(const ir_attrs *a, const ir_shape *in, const char **suffix, ir_shape *shapes,
                  bool *trainable);
    /* Multiply-adds counted as 2 FLOPs, per example, for one node. */
    int64_t (*flops)(const ir_attrs *a, const ir_shape *in, int nin, const ir_shape *out);
    /* Gradient rule (compiler/autodiff.c): given the node and the gradient values of its
     * outputs (gout[k], -1 where none flows), append the backward nodes to g and write the
     * gradient value of each input into gin[k] (-1 where none; parameters included).
     * Returns 0, or -1 with e filled.  NULL: the op is not differentiable. */
    int (*grad)(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
    /* True when output 0 may share input 0's memory (elementwise ops). */
    bool inplace;
    /* is_layer ops: true when a .cnn file may call it by name.  False for add, which only
     * '+' makes (it still gets a layer name, add_1, ...).  ir_opdef_find_layer and
     * ir_layer_names only know the callable ones. */
    bool callable;
} ir_opdef;

/* The most parameter tensors one op owns (batchnorm: weight, bias, running_mean,
 * running_var): the size of the arrays given to ir_opdef.params. */
#define IR_MAX_PARAMS 4

const ir_opdef *ir_opdef_get(ir_op op);
/* The layer called `name`, or NULL. */
const ir_opdef *ir_opdef_find_layer(const char *name);
const char *ir_op_name(ir_op op);
/* All layer names, NULL-terminated, for "did you mean" suggestions. */
const char *const *ir_layer_names(void);

#endif
