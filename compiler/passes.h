/* Graph passes and their pipeline.  One file per pass (compiler/pass_*.c); the table in
 * compiler/passes.c lists them in order with the bit that switches each on.  After every pass
 * the verifier checks the graph (always in debug builds, on request otherwise). */
#ifndef CNN_PASSES_H
#define CNN_PASSES_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler/ir.h"
#include "compiler/plan.h"

/* The bits match CNN_PASS_* in runtime/cnn.h. */
enum {
    PASS_DCE = 1u << 0,
    PASS_FOLD_BN = 1u << 1,
    PASS_FUSE = 1u << 2,
    PASS_PLAN = 1u << 3,     /* read by compiler/plan.c, not a graph rewrite */
    PASS_INPLACE = 1u << 4,  /* likewise */
    PASS_LAYOUT = 1u << 5,
};

typedef struct pass_ctx {
    bool training;                /* the graph holds backward and update nodes */
    plan_backend_choice backend;  /* the backends asked for */
    const op_caps *caps;          /* which kernels exist (the caller's; ops/caps.h) */
    op_precision precision;       /* inference arithmetic of conv and dense (pass_precision) */
    const plan_pick *picks;       /* per-node backends fixed by the caller (pass_backend), or NULL */
    int npicks;
    plan_conv_algo conv_algo;     /* pass_conv_algo */
    int64_t batch;                /* the plan's batch (pass_conv_algo's rule) */
} pass_ctx;

typedef struct pass_info {
    const char *name;        /* "dce", "fold_bn", "fuse", "backend", "layout" */
    unsigned bit;            /* the PASS_* bit that switches it on; 0: always runs */
    /* Rewrites g; returns 0, or -1 with a message.  *changes counts what it did. */
    int (*run)(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
} pass_info;

/* The pipeline, in order, NULL-name terminated. */
const pass_info *pass_pipeline(void);
/* Runs every pass whose bit is in `passes`, verifying after each when `verify`. */
int pass_run_pipeline(ir_graph *g, unsigned passes, const pass_ctx *ctx, bool verify, char *err,
                      size_t errlen);
/* Structural checks: indices in range, each value made by at most one live node, nodes read
 * only values made earlier (or from outside), shapes agree with the op's shape rule. */
int pass_verify(const ir_graph *g, char *err, size_t errlen);

/* Records in into->fused that `from` (and whatever was fused into it) now runs inside `into`:
 * "conv2d_1+batchnorm_1+relu_1", truncated to the field. */
void pass_note_fused(ir_node *into, const ir_node *from);

int pass_dce(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
int pass_fold_bn(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
int pass_fuse(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
int pass_backend(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
int pass_conv_algo(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
/* Whether node nd's attributes carry a convolution algorithm (attrs.conv.winograd): conv2d and
 * the convolutions' backward nodes. */
bool pass_conv_algo_node(const ir_node *nd);
/* Node nd's algorithm as a pick that fixes it (plan_pick.algo): ANY for a node without one. */
plan_algo_pick pass_conv_algo_pick(const ir_node *nd);
int pass_precision(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
/* Whether value v can never be negative (made by a relu, sigmoid or softmax, possibly through
 * pooling, flatten, dropout, or adds and concats of such values): an int8 input is then u8. */
bool pass_value_nonneg(const ir_graph *g, int v);
/* Whether pass_precision makes node nd `prec` (a conv: in int8, over 4 or more input channels
 * per group, or fewer when a backend ctx allows has an int8 kernel fast there; a dense layer
 * without a fused softmax).  ctx NULL: any backend (cnnc quantize calibrates those nodes). */
bool pass_precision_candidate(const ir_graph *g, const ir_node *nd, op_precision prec, const pass_ctx *ctx);
/* Whether conv (or conv_q) node nd has fewer than 4 input channels per group: in int8 it must
 * run on a backend whose kernel is fast there (op_caps.int8_few_channels; pass_backend). */
bool pass_precision_few_channels(const ir_graph *g, const ir_node *nd);
/* After the layout pass: the outputs of int8 nodes read only by int8 nodes stay u8/s8. */
int pass_precision_io(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);
int pass_layout(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen);

/* The backend that runs op under choice c, from the capability table: the first of oneDNN,
 * native, reference with a kernel for it (auto), or the one asked for, reference where it
 * has none.  The backend pass and the layout pass (for the reorders it makes) both ask here. */
op_backend pass_choose_backend(const op_caps *caps, op_kind op, plan_backend_choice c);

#endif
