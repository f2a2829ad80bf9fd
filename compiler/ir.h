/* The graph IR: values (tensors with a shape and a role) and nodes (ops with typed
 * attributes, input values and output values).  Built from lang/'s expanded network by
 * compiler/build.c, rewritten by the passes, scheduled and planned by compiler/plan.c. */
#ifndef CNN_IR_H
#define CNN_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/span.h"
#include "ops/caps.h"
#include "ops/op.h"

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
    op_shape shape;
    bool batched;            /* true: the runtime prepends the batch axis */
    ir_valkind kind;
    char name[OP_NAME_MAX];  /* weight name for PARAM/STATE/OPTSTATE, else a readable name */
    int producer;            /* node index, or -1 */
    int param_of;            /* PGRAD/OPTSTATE: the PARAM value it belongs to, else -1 */
    op_layout layout;        /* memory order (batched activations only; plain by default) */
    op_dtype dtype;          /* element type (f32; u8/s8 between int8 nodes: pass_precision) */
} ir_value;

typedef struct ir_node {
    op_kind op;
    op_attrs attrs;
    int nin, nout;
    int in[OP_MAX_IN];
    int out[OP_MAX_OUT];
    char name[OP_NAME_MAX];  /* the layer's name (conv2d_1, relu_3, ...) */
    lang_span span;          /* where it came from in the source, or all zero */
    bool dead;               /* removed by a pass; skipped everywhere */
    op_backend backend;      /* which backend runs it (compiler/pass_backend.c) */
    char fused[OP_NAME_MAX]; /* names of the layers folded into it, for reports */
} ir_node;

typedef struct ir_graph {
    char name[OP_NAME_MAX];
    ir_value *vals;
    int nvals, capvals;
    ir_node *nodes;
    int nnodes, capnodes;
    int ninputs, noutputs;
    int inputs[16];
    int outputs[16];
    char output_names[16][OP_NAME_MAX];
    int loss;                /* training graphs: the scalar loss value, else -1 */
    int label;               /* training graphs: the label value, else -1 */
} ir_graph;

ir_graph *ir_graph_create(const char *name);
void ir_graph_destroy(ir_graph *g);
ir_graph *ir_graph_clone(const ir_graph *g);

/* Adds a value; returns its index, or -1 when out of memory. */
int ir_add_value(ir_graph *g, ir_valkind kind, const op_shape *shape, bool batched, const char *name);
/* Adds a node with its inputs and outputs (indices of existing values); sets each output's
 * producer.  Returns the node index, or -1 when out of memory. */
int ir_add_node(ir_graph *g, op_kind op, const op_attrs *attrs, int nin, const int *in, int nout,
                const int *out, const char *name, lang_span span);


/* The number of live (not dead) nodes that read value v. */
int ir_value_readers(const ir_graph *g, int v);

#endif
