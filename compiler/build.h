/* From the front end's expanded network to the inference graph (compiler/build.c), with shape
 * checking, plus the summaries and dumps that `cnnc` and `cnnc emit` print. */
#ifndef CNN_BUILD_H
#define CNN_BUILD_H

#include <stdint.h>

#include "compiler/ir.h"
#include "lang/diag.h"
#include "lang/lang.h"

/* Builds the inference graph of `net`: one IR_VAL_INPUT per network input, then per layer a
 * node named after it, reading its tensor inputs followed by its parameters (IR_VAL_PARAM,
 * IR_VAL_STATE for running statistics, named "<layer>.<suffix>", in ops/ref.h's order), and
 * writing one IR_VAL_ACT value named after the layer.  g->outputs and g->output_names follow
 * net->outputs.
 *
 * Every attribute and shape error is added to diags (at the argument's span when the error
 * concerns one argument, else at the layer's); a layer reading a tensor that failed is
 * skipped silently, so independent errors are all reported in one run.  Returns NULL when
 * any error was reported (or memory ran out, reported as an error too); the caller owns the
 * graph otherwise (ir_graph_destroy). */
ir_graph *ir_build(const lang_network *net, diag_list *diags);

/* Trainable parameter elements read by node n (IR_VAL_PARAM inputs; running statistics are
 * not counted, as in PyTorch's parameters()). */
int64_t ir_node_params(const ir_graph *g, int n);
/* FLOPs of node n per example, by its registry rule (op_def.flops, given every input's shape):
 * the one FLOP count, used by the totals and the model summary alike. */
int64_t ir_node_flops(const ir_graph *g, int n);
/* Totals over the live nodes: trainable parameter elements (each PARAM value counted once,
 * if some live node reads it) and FLOPs per example.  Either pointer may be NULL. */
void ir_graph_totals(const ir_graph *g, int64_t *params, int64_t *flops);

/* A short description of a node's attributes: "6x5x5" for a conv2d with 6 filters of 5x5,
 * "3x3/2" for a pool of 3 with stride 2, "120" for dense(120), "p=0.5", ... plus fused
 * epilogues ("+relu", "+maxpool 2x2").  Empty when there is nothing to say.  Returns buf. */
char *ir_node_summary(const ir_node *node, char *buf, size_t n);

/* The graph as text, one line per live node ("conv2d_1: conv2d 6x5x5 (image,
 * conv2d_1.weight, conv2d_1.bias) -> [6, 28, 28]"), inputs and outputs around them.
 * Returns a malloc'd string, or NULL when out of memory. */
char *ir_graph_dump_text(const ir_graph *g);
/* The graph as Graphviz dot: a digraph with one box per live node labelled
 * "conv2d_1\nconv2d 6x5x5\n[6,28,28]", ellipses for the inputs and outputs, and edges along
 * the activations (parameters are not drawn).  Returns a malloc'd string, or NULL. */
char *ir_graph_dump_dot(const ir_graph *g);

#endif
