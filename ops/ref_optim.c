/* Reference optimiser updates, PyTorch's SGD (momentum, dampening 0, Nesterov, L2 weight
 * decay) and Adam (bias-corrected moments, L2 weight decay added to the gradient).  They
 * update their inputs in place (no outputs); c->step counts optimiser steps from 1.  Each
 * element's arithmetic is in double and independent of the others. */
#include "ops/ref_common.h"

static int check_like(const op_tensor *t, const op_tensor *param, const char *name,
                      const char *what, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (ref_numel(t) != ref_numel(param))
        return ref_fail(err, errlen, "%s: %s is %s, param is %s", name, what,
                        ref_shape_str(t, s1, sizeof s1), ref_shape_str(param, s2, sizeof s2));
    return 0;
}

/* g = grad + wd*param; v = momentum*v + g; g = nesterov ? g + momentum*v : v;
 * param -= lr*g.  Without momentum there is no velocity input and g is used directly. */
OP_REF_KERNEL(op_ref_sgd_update)
{
    const char *name = "sgd_update";
    if (ref_check_call(c, name, 2, 3, 0, 0, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    bool momentum = a->momentum != 0.0f;
    if (c->nin != (momentum ? 3 : 2))
        return ref_fail(err, errlen, "%s: expected %d inputs (momentum %g), got %d", name,
                        momentum ? 3 : 2, (double)a->momentum, c->nin);
    if (a->nesterov && !momentum)
        return ref_fail(err, errlen, "%s: nesterov needs a momentum", name);
    if (check_like(&c->in[1], &c->in[0], name, "grad", err, errlen) ||
        (momentum && check_like(&c->in[2], &c->in[0], name, "velocity", err, errlen)))
        return -1;
    float *p = c->in[0].data, *v = momentum ? c->in[2].data : NULL;
    const float *grad = c->in[1].data;
    double lr = a->lr, mu = a->momentum, wd = a->weight_decay;
    bool nesterov = a->nesterov;
    int64_t total = ref_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        double g = (double)grad[i] + wd * (double)p[i];
        if (v) {
            float vi = (float)(mu * (double)v[i] + g);
            v[i] = vi;
            g = nesterov ? g + mu * (double)vi : (double)vi;
        }
        p[i] = (float)((double)p[i] - lr * g);
    }
    return 0;
}

/* g = grad + wd*param; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * param -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
OP_REF_KERNEL(op_ref_adam_update)
{
    const char *name = "adam_update";
    if (ref_check_call(c, name, 4, 4, 0, 0, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    if (c->step < 1)
        return ref_fail(err, errlen, "%s: step is %lld, steps count from 1", name,
                        (long long)c->step);
    if (!(a->beta1 >= 0.0f && a->beta1 < 1.0f && a->beta2 >= 0.0f && a->beta2 < 1.0f))
        return ref_fail(err, errlen, "%s: betas (%g, %g) must be in [0, 1)", name,
                        (double)a->beta1, (double)a->beta2);
    if (check_like(&c->in[1], &c->in[0], name, "grad", err, errlen) ||
        check_like(&c->in[2], &c->in[0], name, "m", err, errlen) ||
        check_like(&c->in[3], &c->in[0], name, "v", err, errlen))
        return -1;
    float *p = c->in[0].data, *m = c->in[2].data, *v = c->in[3].data;
    const float *grad = c->in[1].data;
    double lr = a->lr, wd = a->weight_decay, b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    double bc1 = 1.0 - pow(b1, (double)c->step), bc2 = 1.0 - pow(b2, (double)c->step);
    int64_t total = ref_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        double g = (double)grad[i] + wd * (double)p[i];
        float mi = (float)(b1 * (double)m[i] + (1.0 - b1) * g);
        float vi = (float)(b2 * (double)v[i] + (1.0 - b2) * g * g);
        m[i] = mi;
        v[i] = vi;
        double mhat = (double)mi / bc1, vhat = (double)vi / bc2;
        p[i] = (float)((double)p[i] - lr * mhat / (sqrt(vhat) + eps));
    }
    return 0;
}
