/* Reference optimiser updates, PyTorch's SGD (momentum, dampening 0, Nesterov, L2 weight
 * decay), Adam (bias-corrected moments, L2 weight decay added to the gradient) and AdamW
 * (Adam with decoupled weight decay).  They update their inputs in place (no outputs);
 * c->step counts optimiser steps from 1.  Each element's arithmetic is in double and
 * independent of the others.  With attrs.optim.clip, the last input is clip_scale's scalar
 * and each gradient element is first multiplied by it in float, as PyTorch's
 * clip_grad_norm_ does to .grad.
 *
 * clip_grad_norm's own kernels are here too: grad_sqnorm (the sum of squares of its
 * gradients, plus a partial sum given as in[0] when accumulating) and clip_scale
 * (min(1, max_norm / (sqrt(sum) + 1e-6)), torch.nn.utils.clip_grad_norm_'s factor). */
#include "ops/ref_common.h"

/* The gradient scale of an update with attrs.optim.clip: its last input, a scalar in
 * (0, 1]; 1 without clipping.  -1 (with err) when it is malformed. */
int ref_optim_grad_scale(const op_call *c, const char *name, float *scale, char *err, size_t errlen)
{
    *scale = 1.0f;
    if (!c->node->attrs.optim.clip)
        return 0;
    const op_tensor *t = &c->in[c->nin - 1];
    if (op_tensor_numel(t) != 1)
        return ref_fail(err, errlen, "%s: the gradient scale is not a scalar", name);
    *scale = t->data[0];
    if (!(*scale > 0.0f && *scale <= 1.0f))
        return ref_fail(err, errlen, "%s: gradient scale %g is not in (0, 1]", name, (double)*scale);
    return 0;
}

/* grad[i] as the update uses it: scaled in float when clipping (scale 1 leaves it as is). */
static inline double scaled(float g, float scale)
{
    return (double)(g * scale);
}

int ref_check_numel_like(const op_tensor *t, const op_tensor *param, const char *name, const char *what, char *err,
                         size_t errlen)
{
    char s1[64], s2[64];
    if (op_tensor_numel(t) != op_tensor_numel(param))
        return ref_fail(err, errlen, "%s: %s is %s, param is %s", name, what,
                        ref_shape_str(t, s1, sizeof s1), ref_shape_str(param, s2, sizeof s2));
    return 0;
}

int ref_adam_check(const op_call *c, const char *name, char *err, size_t errlen)
{
    const op_optim_attrs *a = &c->node->attrs.optim;
    if (c->nin != (a->clip ? 5 : 4))
        return ref_fail(err, errlen, "%s: expected %d inputs%s, got %d", name, a->clip ? 5 : 4,
                        a->clip ? " (clipped)" : "", c->nin);
    if (c->step < 1)
        return ref_fail(err, errlen, "%s: step is %lld, steps count from 1", name,
                        (long long)c->step);
    if (!(a->beta1 >= 0.0f && a->beta1 < 1.0f && a->beta2 >= 0.0f && a->beta2 < 1.0f))
        return ref_fail(err, errlen, "%s: betas (%g, %g) must be in [0, 1)", name,
                        (double)a->beta1, (double)a->beta2);
    if (ref_check_numel_like(&c->in[1], &c->in[0], name, "grad", err, errlen) ||
        ref_check_numel_like(&c->in[2], &c->in[0], name, "m", err, errlen) ||
        ref_check_numel_like(&c->in[3], &c->in[0], name, "v", err, errlen))
        return -1;
    return 0;
}

/* g = grad + wd*param; v = momentum*v + g; g = nesterov ? g + momentum*v : v;
 * param -= lr*g.  Without momentum there is no velocity input and g is used directly. */
OP_REF_KERNEL(op_ref_sgd_update)
{
    const char *name = "sgd_update";
    if (ref_check_call(c, name, 2, 4, 0, 0, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    bool momentum = a->momentum != 0.0f;
    int want = (momentum ? 3 : 2) + (a->clip ? 1 : 0);
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: expected %d inputs (momentum %g%s), got %d", name, want,
                        (double)a->momentum, a->clip ? ", clipped" : "", c->nin);
    float scale;
    if (ref_optim_grad_scale(c, name, &scale, err, errlen))
        return -1;
    if (a->nesterov && !momentum)
        return ref_fail(err, errlen, "%s: nesterov needs a momentum", name);
    if (ref_check_numel_like(&c->in[1], &c->in[0], name, "grad", err, errlen) ||
        (momentum && ref_check_numel_like(&c->in[2], &c->in[0], name, "velocity", err, errlen)))
        return -1;
    float *p = c->in[0].data, *v = momentum ? c->in[2].data : NULL;
    const float *grad = c->in[1].data;
    double lr = a->lr, mu = a->momentum, wd = a->weight_decay;
    bool nesterov = a->nesterov;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        double g = scaled(grad[i], scale) + wd * (double)p[i];
        if (v) {
            float vi = (float)(mu * (double)v[i] + g);
            v[i] = vi;
            g = nesterov ? g + mu * (double)vi : (double)vi;
        }
        p[i] = (float)((double)p[i] - lr * g);
    }
    return 0;
}

/* Adam and AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * param -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps), where
 * adam:  g = grad + wd*param (L2 weight decay in the gradient);
 * adamw: g = grad, and param *= 1 - lr*wd first (decoupled, torch.optim.AdamW). */
static int adam_like(const op_call *c, const char *name, bool decoupled, char *err, size_t errlen)
{
    if (ref_check_call(c, name, 4, 5, 0, 0, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    if (ref_adam_check(c, name, err, errlen))
        return -1;
    float scale;
    if (ref_optim_grad_scale(c, name, &scale, err, errlen))
        return -1;
    float *p = c->in[0].data, *m = c->in[2].data, *v = c->in[3].data;
    const float *grad = c->in[1].data;
    double lr = a->lr, wd = a->weight_decay, b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    double bc1 = 1.0 - pow(b1, (double)c->step), bc2 = 1.0 - pow(b2, (double)c->step);
    double l2 = decoupled ? 0.0 : wd, decay = decoupled ? 1.0 - lr * wd : 1.0;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        float pi = decoupled ? (float)((double)p[i] * decay) : p[i];
        double g = scaled(grad[i], scale) + l2 * (double)pi;
        float mi = (float)(b1 * (double)m[i] + (1.0 - b1) * g);
        float vi = (float)(b2 * (double)v[i] + (1.0 - b2) * g * g);
        m[i] = mi;
        v[i] = vi;
        double mhat = (double)mi / bc1, vhat = (double)vi / bc2;
        p[i] = (float)((double)pi - lr * mhat / (sqrt(vhat) + eps));
    }
    return 0;
}

OP_REF_KERNEL(op_ref_adam_update)
{
    return adam_like(c, "adam_update", false, err, errlen);
}

OP_REF_KERNEL(op_ref_adamw_update)
{
    return adam_like(c, "adamw_update", true, err, errlen);
}

/* out = sum of squares of every element of the inputs (in[0] added as it is when
 * accumulating: a partial sum from the grad_sqnorm before), in double in a fixed order. */
OP_REF_KERNEL(op_ref_grad_sqnorm)
{
    const char *name = "grad_sqnorm";
    if (ref_check_call(c, name, 1, OP_MAX_IN, 1, 1, err, errlen))
        return -1;
    if (op_tensor_numel(&c->out[0]) != 1)
        return ref_fail(err, errlen, "%s: the output is not a scalar", name);
    bool acc = c->node->attrs.clip.accumulate;
    if (acc && op_tensor_numel(&c->in[0]) != 1)
        return ref_fail(err, errlen, "%s: the partial sum is not a scalar", name);
    double sum = acc ? (double)c->in[0].data[0] : 0.0;
    for (int k = acc ? 1 : 0; k < c->nin; k++) {
        const float *g = c->in[k].data;
        int64_t n = op_tensor_numel(&c->in[k]);
        double part = 0.0;
        for (int64_t i = 0; i < n; i++)
            part += (double)g[i] * (double)g[i];
        sum += part;
    }
    c->out[0].data[0] = (float)sum;
    return 0;
}

/* out = min(1, max_norm / (sqrt(sum of squares) + 1e-6)); a non-finite norm is an error
 * (PyTorch would scale every gradient to NaN). */
OP_REF_KERNEL(op_ref_clip_scale)
{
    const char *name = "clip_scale";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    if (op_tensor_numel(&c->in[0]) != 1 || op_tensor_numel(&c->out[0]) != 1)
        return ref_fail(err, errlen, "%s: expected scalars", name);
    double max_norm = c->node->attrs.clip.max_norm;
    if (!(max_norm > 0.0))
        return ref_fail(err, errlen, "%s: max_norm %g is not positive", name, max_norm);
    double sq = (double)c->in[0].data[0];
    if (!isfinite(sq))
        return ref_fail(err, errlen, "%s: the gradients' norm is not finite (%g): the training diverged", name,
                        sqrt(sq));
    double s = max_norm / (sqrt(sq) + 1e-6);
    c->out[0].data[0] = s < 1.0 ? (float)s : 1.0f;
    return 0;
}
