/* Reference element-wise and data-movement kernels: activations (relu, sigmoid, tanh,
 * leaky_relu) and their backward, add (with a fused activation), flatten, dropout (a
 * counter-based mask: the same seed gives the same mask for any thread count), softmax over
 * axis 1 and its backward, concat along axis 1 and its backward.  Outputs may alias input 0
 * where the op allows in-place work: every loop reads an element before writing it. */
#include <string.h>

#include "ops/ref_common.h"
#include "ops/registry.h"

/* ---- activations ---- */

static int check_same(const op_tensor *a, const op_tensor *b, const char *name, const char *wa,
                      const char *wb, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (!ref_same_shape(a, b))
        return ref_fail(err, errlen, "%s: %s is %s but %s is %s", name, wa,
                        ref_shape_str(a, s1, sizeof s1), wb, ref_shape_str(b, s2, sizeof s2));
    return 0;
}

static bool act_known(op_act act)
{
    return act == OP_ACT_NONE || act == OP_ACT_RELU || act == OP_ACT_SIGMOID ||
           act == OP_ACT_TANH || act == OP_ACT_LEAKY_RELU;
}

/* y = act(x) element-wise, act and alpha from attrs.act (which must name an activation). */
OP_REF_KERNEL(op_ref_act)
{
    const char *name = "activation";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    op_act act = c->node->attrs.act.act;
    if (act == OP_ACT_NONE || !act_known(act))
        return ref_fail(err, errlen, "%s: attrs.act names no activation (%d)", name, (int)act);
    if (check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    float alpha = c->node->attrs.act.alpha;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++)
        y[i] = op_apply_act(act, alpha, x[i]);
    return 0;
}

/* dx = dy * act'(...), written in terms of the forward output y (see ops/ref.h). */
OP_REF_KERNEL(op_ref_act_bwd)
{
    const char *name = "act_bwd";
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    if (check_same(&c->in[1], &c->in[0], name, "y", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    op_act act = c->node->attrs.act.act;
    float alpha = c->node->attrs.act.alpha;
    if (!act_known(act))
        return ref_fail(err, errlen, "%s: unknown activation %d", name, (int)act);
    const float *dy = c->in[0].data, *y = c->in[1].data;
    float *dx = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        float g = dy[i], v = y[i];
        switch (act) {
        case OP_ACT_RELU: g = v > 0.0f ? g : 0.0f; break;
        case OP_ACT_SIGMOID: g = g * v * (1.0f - v); break;
        case OP_ACT_TANH: g = g * (1.0f - v * v); break;
        case OP_ACT_LEAKY_RELU: g = v > 0.0f ? g : alpha * g; break;
        case OP_ACT_NONE: break;
        }
        dx[i] = g;
    }
    return 0;
}

/* ---- add, flatten ---- */

/* y = act(x1 + ... + xk), summed in double in input order. */
OP_REF_KERNEL(op_ref_add)
{
    const char *name = "add";
    if (ref_check_call(c, name, 2, OP_MAX_IN, 1, 1, err, errlen))
        return -1;
    for (int k = 1; k < c->nin; k++)
        if (check_same(&c->in[k], &c->in[0], name, "an input", "input 0", err, errlen))
            return -1;
    if (check_same(&c->out[0], &c->in[0], name, "output", "input 0", err, errlen))
        return -1;
    op_act act = c->node->attrs.act.act;
    float alpha = c->node->attrs.act.alpha;
    if (!act_known(act))
        return ref_fail(err, errlen, "%s: unknown activation %d", name, (int)act);
    int nin = c->nin;
    const op_tensor *in = c->in;
    float *y = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);

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
    const char *name = c->node ? op_name(c->node->op) : "flatten"; /* or copy (its gradient) */
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    /* flatten is also autodiff's reshape of a gradient back to the input's shape: any output
     * with the same batch and element count */
    if (x->rank < 1 || y->rank < 1 || y->d[0] != x->d[0] || ref_numel(y) != ref_numel(x))
        return ref_fail(err, errlen, "%s: output %s does not flatten input %s", name,
                        ref_shape_str(y, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2));
    if (y->data != x->data)
        memmove(y->data, x->data, (size_t)ref_numel(x) * sizeof(float));
    return 0;
}

/* ---- dropout ---- */

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Inference: y = x.  Training: mask[i] = 0 with probability p, else 1/(1-p), decided by a
 * 53-bit uniform from splitmix64(splitmix64(seed) ^ i), i the element's index in the whole
 * tensor; y = x * mask. */
OP_REF_KERNEL(op_ref_dropout)
{
    const char *name = "dropout";
    if (ref_check_call(c, name, 1, 1, 1, 2, err, errlen))
        return -1;
    const op_dropout_attrs *a = &c->node->attrs.dropout;
    if (check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);
    if (!a->training) {
        if (c->nout != 1)
            return ref_fail(err, errlen, "%s: inference makes 1 output, got %d", name, c->nout);
        if (y != x)
            memmove(y, x, (size_t)total * sizeof(float));
        return 0;
    }
    if (c->nout != 2)
        return ref_fail(err, errlen, "%s: training makes 2 outputs (y, mask), got %d", name,
                        c->nout);
    if (check_same(&c->out[1], &c->in[0], name, "mask", "input", err, errlen))
        return -1;
    if (!(a->p >= 0.0f && a->p < 1.0f))
        return ref_fail(err, errlen, "%s: p = %g is outside [0, 1)", name, (double)a->p);
    float *mask = c->out[1].data;
    /* P(u < threshold) = threshold / 2^53 = p exactly (p*2^53 is an integer for p >= 2^-29) */
    uint64_t threshold = (uint64_t)llround((double)a->p * 9007199254740992.0);
    float scale = (float)(1.0 / (1.0 - (double)a->p));
    uint64_t key = splitmix64(c->seed);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++) {
        uint64_t u = splitmix64(key ^ (uint64_t)i) >> 11;
        float m = u < threshold ? 0.0f : scale;
        mask[i] = m;
        y[i] = x[i] * m;
    }
    return 0;
}

OP_REF_KERNEL(op_ref_dropout_bwd)
{
    const char *name = "dropout_bwd";
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    if (check_same(&c->in[1], &c->in[0], name, "mask", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *mask = c->in[1].data;
    float *dx = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < total; i++)
        dx[i] = dy[i] * mask[i];
    return 0;
}

/* ---- softmax ---- */

/* Softmax over axis 1 of [N, C, ...], independently per batch item and spatial position. */
OP_REF_KERNEL(op_ref_softmax)
{
    const char *name = "softmax";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    if (c->in[0].rank < 2)
        return ref_fail(err, errlen, "%s: input has rank %d, expected a batch axis and features",
                        name, c->in[0].rank);
    if (check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    int64_t n = c->in[0].d[0], ch = c->in[0].d[1], s = ref_spatial(&c->in[0]);
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
    const char *name = "softmax_bwd";
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    if (c->in[0].rank < 2)
        return ref_fail(err, errlen, "%s: dy has rank %d, expected a batch axis and features",
                        name, c->in[0].rank);
    if (check_same(&c->in[1], &c->in[0], name, "y", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    int64_t n = c->in[0].d[0], ch = c->in[0].d[1], s = ref_spatial(&c->in[0]);
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

/* Checks that t is [n, any, rest of ref] (every axis but 1 equal to ref's). */
static bool concat_fits(const op_tensor *t, const op_tensor *ref)
{
    if (t->rank != ref->rank || t->rank < 2 || t->d[0] != ref->d[0])
        return false;
    for (int i = 2; i < t->rank; i++)
        if (t->d[i] != ref->d[i])
            return false;
    return true;
}

/* y = [x1, x2, ...] along axis 1. */
OP_REF_KERNEL(op_ref_concat)
{
    const char *name = "concat";
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, OP_MAX_IN, 1, 1, err, errlen))
        return -1;
    const op_tensor *y = &c->out[0];
    int64_t total_c = 0;
    for (int k = 0; k < c->nin; k++) {
        if (!concat_fits(&c->in[k], y))
            return ref_fail(err, errlen, "%s: input %d is %s, which does not fit output %s "
                            "outside axis 1", name, k, ref_shape_str(&c->in[k], s1, sizeof s1),
                            ref_shape_str(y, s2, sizeof s2));
        total_c += c->in[k].d[1];
    }
    if (total_c != y->d[1])
        return ref_fail(err, errlen, "%s: inputs have %lld channels together, output has %lld",
                        name, (long long)total_c, (long long)y->d[1]);
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
    const char *name = "concat_bwd";
    char s1[64], s2[64];
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    const op_tensor *dy = &c->in[0], *dx = &c->out[0];
    int64_t off = c->node->attrs.slice.offset;
    if (!concat_fits(dx, dy) || off < 0 || off + dx->d[1] > dy->d[1])
        return ref_fail(err, errlen, "%s: dx %s at channel offset %lld is not a slice of dy %s",
                        name, ref_shape_str(dx, s1, sizeof s1), (long long)off,
                        ref_shape_str(dy, s2, sizeof s2));
    int64_t n = dy->d[0], s = ref_spatial(dy), len = dx->d[1] * s;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t i = 0; i < n; i++)
        memcpy(dx->data + i * len, dy->data + (i * dy->d[1] + off) * s,
               (size_t)len * sizeof(float));
    return 0;
}
