/* Gradient rules (compiler/grad.c), referenced by the registry's entries (.grad).  Each has
 * the signature of ir_opdef.grad: append the backward nodes of forward node `node` given the
 * gradients of its outputs, and report its inputs' gradients. */
#ifndef CNN_GRAD_H
#define CNN_GRAD_H

#include "compiler/registry.h"

int ir_grad_conv(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_dense(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_maxpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_avgpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_global_avgpool(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_flatten(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_dropout(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_act(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_softmax(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_batchnorm(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_concat(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);
int ir_grad_add(ir_graph *g, int node, const int *gout, int *gin, ir_err *e);

#endif
