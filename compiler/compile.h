/* The compiler's entry points: from the front end's checked network to the graph, and from
 * the graph to an immutable plan (autodiff for training, the pass pipeline with its verifier,
 * backend assignment, memory plan).  The runtime calls these two and nothing else of the
 * pipeline. */
#ifndef CNN_COMPILE_H
#define CNN_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler/autodiff.h"
#include "compiler/ir.h"
#include "compiler/plan.h"
#include "lang/diag.h"
#include "lang/lang.h"
#include "ops/caps.h"

typedef struct compile_options {
    int64_t batch;
    bool training;                /* append loss, backward and updates (ad) */
    ad_options ad;
    unsigned passes;              /* PASS_* bits (compiler/passes.h) */
    plan_backend_choice backend;
    const op_caps *caps;          /* which kernels exist; the caller's (ops/kernels.c fills one) */
    bool verify;                  /* check the graph after every pass (shapes included) */
    op_precision precision;       /* inference arithmetic of conv and dense (pass_precision) */
    const plan_pick *picks;       /* auto: per-node backends measured by the runtime (NULL: none) */
    int npicks;
    plan_conv_algo conv_algo;     /* direct or Winograd (pass_conv_algo) */
} compile_options;

/* The inference graph of a checked network, errors reported into diags (ir_build). */
ir_graph *compile_graph(const lang_network *net, diag_list *diags);

/* Plans a copy of g (which is not changed) as o asks.  Returns NULL with a message in err and
 * the reason in *why (may be NULL): PLAN_TOO_LARGE when the sizes pass the limits, PLAN_INVALID
 * when the network cannot be trained as asked, PLAN_NOMEM when out of memory. */
ir_plan *compile_plan(const ir_graph *g, const compile_options *o, plan_status *why, char *err, size_t errlen);

#endif
