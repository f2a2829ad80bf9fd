/* Reverse-mode autodiff over the graph: turns an inference graph into a training graph by
 * switching layers to training mode, appending the loss, the backward nodes (each op's
 * registry gradient rule), with clip_grad_norm the gradient-norm steps, and one optimiser
 * update node per parameter.  The result is an
 * ordinary graph: the passes and the memory planner treat it like any other. */
#ifndef CNN_AUTODIFF_H
#define CNN_AUTODIFF_H

#include <stddef.h>

#include "compiler/ir.h"

typedef enum ad_loss { AD_LOSS_CROSS_ENTROPY, AD_LOSS_MSE } ad_loss;
typedef enum ad_optim { AD_OPTIM_SGD, AD_OPTIM_ADAM, AD_OPTIM_ADAMW } ad_optim;

typedef struct ad_options {
    ad_loss loss;
    ad_optim optimizer;
    op_optim_attrs optim;
    double label_smoothing;   /* cross_entropy's, 0 none */
    double clip_grad_norm;    /* > 0: gradients scaled to this global L2 norm at most */
} ad_options;

/* Rewrites g (an inference graph from ir_build) into a training graph on output 0.  Sets
 * g->loss and g->label.  Returns 0, or -1 with a message. */
int ir_autodiff(ir_graph *g, const ad_options *opt, char *err, size_t errlen);

#endif
