/* The plan: what the compiler hands the runtime.  An immutable schedule of kernel calls (one
 * per live node, in topological order), each node's backend, and where every value lives:
 * at an offset in one activation arena, in the weights store (parameters, running
 * statistics) or in the optimiser store.  Made by compiler/plan.c for one batch size. */
#ifndef CNN_PLAN_H
#define CNN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/ir.h"
#include "ops/caps.h"

typedef enum plan_loc {
    PLAN_LOC_NONE,     /* not used by any live node */
    PLAN_LOC_ARENA,    /* activations, gradients, inputs, outputs, scratch */
    PLAN_LOC_WEIGHTS,  /* PARAM and STATE values: the session's weights store, by name */
    PLAN_LOC_OPTSTATE, /* optimiser state: the session's own store, by name */
    PLAN_LOC_CONST,    /* made by weights-only steps (folded weights): the session's own
                        * buffers, kept between runs */
} plan_loc;

typedef struct plan_value {
    plan_loc loc;
    size_t offset;     /* PLAN_LOC_ARENA: byte offset in the arena */
    size_t bytes;      /* for the whole batch */
    int first, last;   /* live range over steps (inclusive); pinned values span everything */
    int alias_of;      /* shares the memory of this value (in-place), or -1 */
} plan_value;

typedef struct plan_step {
    int node;
    op_backend backend;
    bool constant;     /* reads only weights (or other constant steps' outputs): rerun only
                        * when the weights change */
    bool view;         /* a reorder between two orders that are the same bytes (16 channels,
                        * channels-last and blocked by 16): its output aliases its input, and
                        * it does not run */
} plan_step;

typedef enum plan_backend_choice {
    PLAN_BACKEND_AUTO, PLAN_BACKEND_REF, PLAN_BACKEND_NATIVE, PLAN_BACKEND_ONEDNN
} plan_backend_choice;

/* How 3x3 convolutions are computed (compiler/pass_conv_algo.c). */
typedef enum plan_conv_algo {
    PLAN_CONV_DIRECT = 0,  /* directly, everywhere */
    PLAN_CONV_WINOGRAD,    /* by Winograd's algorithm wherever a backend has it */
    PLAN_CONV_AUTO,        /* by Winograd's algorithm where it is faster */
} plan_conv_algo;

/* A node's convolution algorithm as a pick fixes it (compiler/pass_conv_algo.c). */
typedef enum plan_algo_pick {
    PLAN_ALGO_ANY = 0,     /* as plan_conv_algo says */
    PLAN_ALGO_DIRECT,
    PLAN_ALGO_WINOGRAD,    /* when the node's backend has Winograd for it */
} plan_algo_pick;

/* A backend fixed for one node by the caller (the runtime's tuner, runtime/tune.c): the live
 * node called `name` running `op` runs on `backend` when that backend has a kernel for it, by
 * algorithm `algo` (convolutions); nodes without a pick (and the layout pass's reorders) get
 * the choice's fixed order. */
typedef struct plan_pick {
    char name[OP_NAME_MAX];
    op_kind op;
    op_backend backend;
    plan_algo_pick algo;
} plan_pick;

typedef struct plan_options {
    int64_t batch;
    plan_backend_choice backend;
    bool plan_memory;   /* false: every arena value gets its own buffer */
    bool inplace;       /* reuse an input's buffer for ops that declare it safe */
} plan_options;

/* A parameter's gradient as the backward pass finalises it (training plans): the value, the
 * step that makes it, and where it lives in the arena. */
typedef struct plan_grad {
    int value;
    int step;
    size_t offset, bytes;
} plan_grad;

typedef struct ir_plan {
    ir_graph *graph;    /* owned */
    int64_t batch;
    plan_value *vals;   /* one per graph value */
    plan_step *steps;
    int nsteps;
    size_t arena_bytes;  /* planned */
    size_t naive_bytes;  /* every arena value its own buffer, no in-place */
    size_t lower_bound;  /* the largest total of buffers live at one step */
    /* Training plans: every parameter's final gradient, in the order the steps make them
     * (the backward pass: last layer first), placed one after the other (64-byte aligned) in
     * [grad_offset, grad_offset + grad_bytes) of the arena, so that a data-parallel run can
     * average them in a few contiguous pieces as soon as they are made (runtime/dist.c).  A
     * final gradient is a parameter's first PGRAD value that no step sums further (a step
     * reading only gradients of that parameter and making one); each keeps its own live
     * range, so the region serves activations before the backward pass reaches it.  grads_read_step: the first step that
     * reads a final gradient (an optimiser update, a gradient-norm step), nsteps if none. */
    plan_grad *grads;
    int ngrads;
    size_t grad_offset, grad_bytes;
    int grads_read_step;
} ir_plan;

/* Why planning failed: PLAN_TOO_LARGE when a value or the arena passes the size limits (the
 * input's fault: a network or batch too large), PLAN_INVALID when the network cannot be
 * compiled as asked (training a loss its output does not fit; set by compile_plan),
 * PLAN_NOMEM when out of memory (set by compile_plan), PLAN_FAILED otherwise (an internal
 * error); PLAN_OK after a success. */
typedef enum plan_status { PLAN_OK, PLAN_FAILED, PLAN_TOO_LARGE, PLAN_INVALID, PLAN_NOMEM } plan_status;

/* Plans graph g (taken over: the plan owns and frees it).  Returns NULL with a message in err
 * and the reason in *why (may be NULL) on failure (g is freed then too). */
ir_plan *plan_create(ir_graph *g, const plan_options *opt, plan_status *why, char *err, size_t errlen);
void plan_destroy(ir_plan *p);
/* Checks that no two arena values live at the same step overlap in memory (aliases aside).
 * Returns 0, or -1 with the first conflict described in err. */
int plan_check_overlap(const ir_plan *p, char *err, size_t errlen);

#endif
