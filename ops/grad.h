/* Gradient rules (ops/grad.c), referenced by the registry's entries (.grad).  Each has
 * the signature of op_def.grad: append the backward nodes of forward node `node` given the
 * gradients of its outputs, and report its inputs' gradients. */
#ifndef CNN_GRAD_H
#define CNN_GRAD_H

#include "ops/registry.h"

int op_grad_conv(const op_grad_ctx *c, op_err *e);
int op_grad_dense(const op_grad_ctx *c, op_err *e);
int op_grad_maxpool(const op_grad_ctx *c, op_err *e);
int op_grad_avgpool(const op_grad_ctx *c, op_err *e);
int op_grad_global_avgpool(const op_grad_ctx *c, op_err *e);
int op_grad_flatten(const op_grad_ctx *c, op_err *e);
int op_grad_dropout(const op_grad_ctx *c, op_err *e);
int op_grad_act(const op_grad_ctx *c, op_err *e);
int op_grad_softmax(const op_grad_ctx *c, op_err *e);
int op_grad_batchnorm(const op_grad_ctx *c, op_err *e);
int op_grad_concat(const op_grad_ctx *c, op_err *e);
int op_grad_add(const op_grad_ctx *c, op_err *e);

#endif
