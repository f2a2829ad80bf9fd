/* Reference kernels: scalar, written for obvious correctness; the ground truth that every
 * other backend, fusion and pass is tested against.  One file per op family:
 *   ops/ref_conv.c     conv (1-D, 2-D and 3-D, stride, pad, dilation, groups, fused epilogue),
 *                      conv_bwd_data, conv_bwd_weights
 *   ops/ref_pool.c     maxpool, avgpool, global_avgpool and their backward
 *   ops/ref_dense.c    dense (fused activation / softmax), dense_bwd_data, dense_bwd_weights
 *   ops/ref_eltwise.c  relu, sigmoid, tanh, leaky_relu, act_bwd, add, flatten, dropout,
 *                      dropout_bwd, softmax, softmax_bwd, concat, concat_bwd
 *   ops/ref_norm.c     batchnorm (inference and training), batchnorm_bwd
 *   ops/ref_loss.c     cross_entropy, mse
 *   ops/ref_optim.c    sgd_update, adam_update
 *   ops/ref_layout.c   reorder (the one reference kernel that sees channels-last tensors)
 *
 * Tensor order per op (c->in[], c->out[]); N is the batch; shapes as in ops/kernels.h.
 *
 * Forward
 *   CONV1D/CONV2D/CONV3D  in: x [N,C,((D,)H,)W], w [F,C/g,((kd,)kh,)kw], b [F] if attrs.bias,
 *                      r (same shape as the conv output) if attrs.residual
 *                  out: y.  y = pool(act(conv(x,w) + b + r)); act and pool per attrs
 *                  (pool: max pooling with attrs.pool_size/stride/pad, -inf padding; 1-D and
 *                  2-D only).
 *                  1-D convs: attrs hold kernel/stride/pad/dilation at index 1 and 1/1/0/1 at
 *                  index 0; x is [N,C,W], treat as [N,C,1,W].  3-D convs (sdims 3): the depth
 *                  axis in kernel_d/stride_d/pad_d/dilation_d.
 *                  MAXPOOL/AVGPOOL on [N,C,D,H,W] (sdims 3): the depth in size_d/stride_d/pad_d.
 *   MAXPOOL        in: x  out: y.  Padding is -inf (never chosen).  PyTorch's floor mode.
 *   AVGPOOL        in: x  out: y.  Padding counts as zeros: divide by size_h*size_w always
 *                  (PyTorch count_include_pad=True; windows never extend past the padding).
 *   GLOBAL_AVGPOOL in: x [N,C,...]  out: y [N,C]
 *   DENSE          in: x [N, ...] read as [N,F] (C,H,W order), w [U,F], b [U] if attrs.bias
 *                  out: y [N,U] = act(x w^T + b), then softmax over U if attrs.softmax
 *   FLATTEN        in: x  out: y [N, prod]  (a copy; autodiff also uses it to copy a
 *                  gradient back into the input's shape: any out of equal batch and size)
 *   BATCHNORM      in: x [N,C,...], gamma [C], beta [C], running_mean [C], running_var [C]
 *                  inference (attrs.training false): out: y = (x-rm)/sqrt(rv+eps)*gamma+beta
 *                  training: out: y, save_mean [C], save_invstd [C]; y uses the batch mean
 *                  and biased variance; running stats updated in place in in[3], in[4]:
 *                  rm = (1-momentum) rm + momentum mean, rv likewise with the unbiased var.
 *   DROPOUT        inference: in: x  out: y = x.
 *                  training: out: y, mask (shape of x, each 0 or 1/(1-p)), y = x*mask;
 *                  mask from c->seed with a counter-based generator (same seed, same mask).
 *   RELU, SIGMOID, TANH, LEAKY_RELU   in: x  out: y; attrs.act.act and attrs.act.alpha
 *   SOFTMAX        in: x  out: y, softmax over axis 1 (per batch item and spatial position)
 *   CONCAT         in: x1..xk  out: y, along axis 1
 *   ADD            in: x1..xk (k >= 2, equal shapes)  out: y = act(sum), attrs.act
 *
 * Backward (autodiff)
 *   CONV_BWD_DATA      in: dy, w      out: dx       (attrs: the forward conv's, no epilogue)
 *   CONV_BWD_WEIGHTS   in: dy, x      out: dw, db if attrs.bias
 *   MAXPOOL_BWD        in: dy, x      out: dx   (gradient to the first max in each window)
 *   AVGPOOL_BWD        in: dy         out: dx   (dx's shape given by out[0])
 *   GLOBAL_AVGPOOL_BWD in: dy         out: dx
 *   DENSE_BWD_DATA     in: dy, w      out: dx   (dx's shape given by out[0])
 *   DENSE_BWD_WEIGHTS  in: dy, x      out: dw, db if attrs.bias
 *   BATCHNORM_BWD      in: dy, x, gamma, save_mean, save_invstd   out: dx, dgamma, dbeta
 *   DROPOUT_BWD        in: dy, mask   out: dx = dy*mask
 *   ACT_BWD            in: dy, y (the forward output)  out: dx.  attrs.act: relu: dy*(y>0);
 *                      sigmoid: dy*y*(1-y); tanh: dy*(1-y*y); leaky_relu: dy*(y>0 ? 1 : alpha)
 *                      (alpha > 0; for alpha <= 0 autodiff passes the forward input x instead,
 *                      and x>0 decides the same way).
 *   SOFTMAX_BWD        in: dy, y      out: dx = y*(dy - sum(dy*y)) over axis 1
 *   CONCAT_BWD         in: dy         out: dx, channels [attrs.slice.offset, +C of dx)
 *
 * Weight transforms (weights-only steps, rerun only when the weights change)
 *   BN_FOLD     in: w [F,...], b [F] (only when nin is 6), gamma, beta, running_mean, running_var
 *               out: w' = w*s per output channel, b' = (b - mean)*s + beta, s = gamma/sqrt(var+eps)
 *               (attrs.bn.eps)
 *
 * Losses (mean over the batch, as PyTorch's default reduction)
 *   XENT_LOSS   in: logits [N,K], labels [N,1] (class index as float)
 *               out: loss [] (rank 0), dlogits [N,K] = (softmax - onehot)/N.  Stable (max
 *               subtracted).  A label outside [0,K) is an error (run returns -1).
 *   MSE_LOSS    in: pred [N,...], target (same shape)
 *               out: loss [] = mean((pred-target)^2) over all elements, dpred = 2(pred-target)/count
 *
 * Optimiser updates (nout = 0; they update their inputs in place; c->step counts from 1)
 *   SGD_UPDATE  in: param, grad, velocity (only when attrs.optim.momentum != 0)
 *               g = grad + wd*param; v = momentum*v + g; g = nesterov ? g + momentum*v : v;
 *               param -= lr*g   (PyTorch's SGD with dampening 0)
 *   ADAM_UPDATE in: param, grad, m, v
 *               g = grad + wd*param; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *               param -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)   (PyTorch's Adam)
 *
 * Layout (compiler/pass_layout.c inserts it; every other reference kernel takes plain tensors)
 *   REORDER     in: x [N,C,...]  out: y, the same shape, in the other memory order:
 *               attrs.reorder.from is x's layout (c->in[0].layout), .to is y's (c->out[0].layout).
 *               Plain [N,C,S] <-> channels-last [N,S,C], S the spatial positions (H*W or L);
 *               equal layouts copy.  Never in place.
 */
#ifndef CNN_OPS_REF_H
#define CNN_OPS_REF_H

#include "ops/kernels.h"

#define OP_REF_KERNEL(fn) int fn(op_call *c, char *err, size_t errlen)

/* reorder's checks (ops/ref_layout.c), shared with the native kernel: -1 with err; 1 when done
 * (nothing to move, or the same order: copied); 0 when the caller moves the elements, to
 * channels-last when *to_cl, else back to plain. */
int ref_reorder_check(op_call *c, const char *name, bool *to_cl, char *err, size_t errlen);

OP_REF_KERNEL(op_ref_conv);
OP_REF_KERNEL(op_ref_conv_bwd_data);
OP_REF_KERNEL(op_ref_conv_bwd_weights);
OP_REF_KERNEL(op_ref_maxpool);
OP_REF_KERNEL(op_ref_avgpool);
OP_REF_KERNEL(op_ref_global_avgpool);
OP_REF_KERNEL(op_ref_maxpool_bwd);
OP_REF_KERNEL(op_ref_avgpool_bwd);
OP_REF_KERNEL(op_ref_global_avgpool_bwd);
OP_REF_KERNEL(op_ref_dense);
OP_REF_KERNEL(op_ref_dense_bwd_data);
OP_REF_KERNEL(op_ref_dense_bwd_weights);
OP_REF_KERNEL(op_ref_flatten);
OP_REF_KERNEL(op_ref_batchnorm);
OP_REF_KERNEL(op_ref_batchnorm_bwd);
OP_REF_KERNEL(op_ref_bn_fold);
OP_REF_KERNEL(op_ref_dropout);
OP_REF_KERNEL(op_ref_dropout_bwd);
OP_REF_KERNEL(op_ref_act);       /* relu, sigmoid, tanh, leaky_relu */
OP_REF_KERNEL(op_ref_act_bwd);
OP_REF_KERNEL(op_ref_softmax);
OP_REF_KERNEL(op_ref_softmax_bwd);
OP_REF_KERNEL(op_ref_concat);
OP_REF_KERNEL(op_ref_concat_bwd);
OP_REF_KERNEL(op_ref_add);
OP_REF_KERNEL(op_ref_xent_loss);
OP_REF_KERNEL(op_ref_mse_loss);
OP_REF_KERNEL(op_ref_sgd_update);
OP_REF_KERNEL(op_ref_adam_update);
OP_REF_KERNEL(op_ref_adamw_update);
OP_REF_KERNEL(op_ref_grad_sqnorm);
OP_REF_KERNEL(op_ref_clip_scale);
OP_REF_KERNEL(op_ref_reorder);
OP_REF_KERNEL(op_ref_conv_q);    /* ops/ref_int8.c: int8 and bf16 */
OP_REF_KERNEL(op_ref_dense_q);

/* Applies an activation to one value (shared by every backend's epilogues). */
static inline float op_apply_act(op_act act, float alpha, float x);

#include <math.h>
static inline float op_apply_act(op_act act, float alpha, float x)
{
    switch (act) {
    case OP_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case OP_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case OP_ACT_TANH: return tanhf(x);
    case OP_ACT_LEAKY_RELU: return x > 0.0f ? x : alpha * x;
    case OP_ACT_NONE: break;
    }
    return x;
}

/* The gradient at an activation's input from g at its output y = act(x). */
static inline float op_act_grad(op_act act, float alpha, float g, float y)
{
    switch (act) {
    case OP_ACT_RELU: return y > 0.0f ? g : 0.0f;
    case OP_ACT_SIGMOID: return g * y * (1.0f - y);
    case OP_ACT_TANH: return g * (1.0f - y * y);
    case OP_ACT_LEAKY_RELU: return y > 0.0f ? g : alpha * g;
    case OP_ACT_NONE: break;
    }
    return g;
}

#endif
