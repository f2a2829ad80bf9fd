/* Reference element-wise and data-movement kernels: activations (relu, sigmoid, tanh,
 * leaky_relu) and their backward, add (with a fused activation), flatten, dropout (a
 * counter-based mask: the same seed gives the same mask for any thread count), softmax over
 * axis 1 and its backward, concat along axis 1 and its backward.  Outputs may alias input 0
 * where the op allows in-place work: every loop reads an element before writing it. */
#include <string.h>

#include "ops/eltwise_check.h"
#include "ops/ref_common.h"
#include "ops/registry.h"

/* ---- activations ---- */

/* y = act(x) element-wise, act and alpha from attrs.act (which must name an activation). */
OP_REF_KERNEL(op_ref_act)
{
    op_act act;
    float alpha;
    if (op_elt_check_act(c, "activation", true, &act, &alpha, err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++)
        y[i] = op_apply_act(act, alpha, x[i]);
    return 0;
}

/* dx = dy * act'(...), written in terms of the forward output y (see ops/ref.h). */
OP_REF_KERNEL(op_ref_act_bwd)
{
    op_act act;
    float alpha;
    if (op_elt_check_act_bwd(c, "act_bwd", true, &act, &alpha, err, errlen))
        return -1;
    const float *dy = c->in[0].data, *y = c->in[1].data;
    float *dx = c->out[0].data;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        float g = dy[i];
        if (c->nin > 2) { /* a fused gradient sum: as add sums, in double in input order */
            double s = g;
            for (int k = 2; k < c->nin; k++)
                s += (double)c->in[k].data[i];
            g = (float)s;
        }
        dx[i] = op_act_grad(act, alpha, g, y[i]);
    }
    return 0;
}

/* ---- add, flatten ---- */

/* y = act(x1 + ... + xk), summed in double in input order. */
OP_REF_KERNEL(op_ref_add)
{
    op_act act;
    float alpha;
    if (op_elt_check_add(c, "add", true, &act, &alpha, err, errlen))
        return -1;
    int nin = c->nin;
    const op_tensor *in = c->in;
    float *y = c->out[0].data;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        double s = 0.0;
        for (int k = 0; k < nin; k++)
            s += (double)in[k].data[i];
        y[i] = op_apply_act(act, alpha, (float)s);
    }
    return 0;
}

OP_REF_KERNEL(op_ref_flatten)
{
    /* or copy (its gradient) */
    if (op_elt_check_flatten(c, c->node ? op_name(c->node->op) : "flatten", err, errlen))
        return -1;
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    if (y->data != x->data)
        memmove(y->data, x->data, (size_t)op_tensor_numel(x) * sizeof(float));
    return 0;
}

/* ---- dropout ---- */

/* Inference: y = x.  Training: mask[i] = 0 with probability p, else 1/(1-p), decided by a
 * 53-bit uniform from splitmix64(splitmix64(seed) ^ i), i the element's index in the whole
 * tensor; y = x * mask. */
OP_REF_KERNEL(op_ref_dropout)
{
    op_dropout_gen gen;
    int rc = op_elt_check_dropout(c, "dropout", &gen, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0; /* inference: copied */
    const float *x = c->in[0].data;
    float *y = c->out[0].data, *mask = c->out[1].data;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        float m = op_dropout_mask(&gen, i);
        mask[i] = m;
        y[i] = x[i] * m;
    }
    return 0;
}

OP_REF_KERNEL(op_ref_dropout_bwd)
{
    if (op_elt_check_dropout_bwd(c, "dropout_bwd", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *mask = c->in[1].data;
    float *dx = c->out[0].data;
    int64_t total = op_tensor_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++)
        dx[i] = dy[i] * mask[i];
    return 0;
}

/* ---- softmax ---- */

/* Softmax over axis 1 of [N, C, ...], independently per batch item and spatial position. */
OP_REF_KERNEL(op_ref_softmax)
{
    int64_t n, ch, s;
    if (op_elt_check_softmax(c, "softmax", false, &n, &ch, &s, err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < n * s; p++) {
        int64_t base = (p / s) * ch * s + p % s;
        ref_softmax_strided(x + base, y + base, ch, s);
    }
    return 0;
}

/* dx = y * (dy - sum over axis 1 of dy*y). */
OP_REF_KERNEL(op_ref_softmax_bwd)
{
    int64_t n, ch, s;
    if (op_elt_check_softmax(c, "softmax_bwd", true, &n, &ch, &s, err, errlen))
        return -1;
    const float *dy = c->in[0].data, *y = c->in[1].data;
    float *dx = c->out[0].data;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < n * s; p++) {
        int64_t base = (p / s) * ch * s + p % s;
        double dot = 0.0;
        for (int64_t k = 0; k < ch; k++)
            dot += (double)dy[base + k * s] * (double)y[base + k * s];
        for (int64_t k = 0; k < ch; k++) {
            int64_t i = base + k * s;
            dx[i] = (float)((double)y[i] * ((double)dy[i] - dot));
        }
    }
    return 0;
}

/* ---- concat ---- */

/* y = [x1, x2, ...] along axis 1. */
OP_REF_KERNEL(op_ref_concat)
{
    if (op_elt_check_concat(c, "concat", err, errlen))
        return -1;
    const op_tensor *y = &c->out[0];
    int64_t n = y->d[0], s = ref_spatial(y), yc = y->d[1];
    int nin = c->nin;
    const op_tensor *in = c->in;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int k = 0; k < nin; k++) {
            int64_t len = in[k].d[1] * s;
            memcpy(y->data + (i * yc) * s + off, in[k].data + i * len, (size_t)len * sizeof(float));
            off += len;
        }
    }
    return 0;
}

/* dx = dy[:, offset : offset + C] along axis 1. */
OP_REF_KERNEL(op_ref_concat_bwd)
{
    int64_t off;
    if (op_elt_check_concat_bwd(c, "concat_bwd", &off, err, errlen))
        return -1;
    const op_tensor *dy = &c->in[0], *dx = &c->out[0];
    int64_t n = dy->d[0], s = ref_spatial(dy), len = dx->d[1] * s;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < n; i++)
        memcpy(dx->data + i * len, dy->data + (i * dy->d[1] + off) * s,
               (size_t)len * sizeof(float));
    return 0;
}
