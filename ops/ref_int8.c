/* Reference low-precision kernels: conv_q and dense_q in int8 (exact integer arithmetic: u8 or
 * s8 inputs times s8 weights summed in 64-bit integers, then the requantisation of ops/quant.h)
 * and in bf16 (inputs and weights rounded to bf16, then the fp32 reference kernel, whose double
 * sums are exact for products of bf16 values).  Plain tensors only.
 *
 *   conv_q:  x, w, b?, r?, [int8: ws [F], si [1], so [1] (int8 y), sr [1] (int8 r)]  ->  y
 *            (the conv's fused epilogue)
 *   dense_q: x, w, b?, [int8: ws [U], si [1]]      ->  y   (fused activation; no softmax) */
#include <stdlib.h>

#include "ops/conv_geom.h"
#include "ops/mem.h"
#include "ops/quant.h"
#include "ops/ref_common.h"

/* The conv's (or dense layer's) own inputs: x, w, bias, residual. */
static int own_inputs(const op_call *c)
{
    if (c->node->op == OP_CONV_Q) {
        const op_conv_attrs *a = &c->node->attrs.conv;
        return 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    }
    return 2 + (c->node->attrs.dense.bias ? 1 : 0);
}

/* One positive finite scale from input k, or -1 with a message naming it. */
static int one_scale(const op_call *c, int k, const char *what, float *s, char *err, size_t errlen)
{
    const op_tensor *t = &c->in[k];
    if (op_tensor_numel(t) != 1 || !op_q_scales_ok(t->data, 1))
        return ref_fail(err, errlen, "%s: the int8 %s scale is not one positive finite value", c->node->name, what);
    *s = t->data[0];
    return 0;
}

/* The int8 scales of the call: ws (f values), si, so (0 when the output is f32: an int8 output
 * has a third scale input) and sr (0 unless input rin, the residual, is int8: then a scale input
 * follows); 0 or -1 with a message. */
static int read_scales(const op_call *c, int own, int rin, int64_t f, const float **ws, float *si, float *so,
                       float *sr, char *err, size_t errlen)
{
    const char *name = c->node->name;
    bool qout = c->out[0].dtype != OP_DT_F32, qres = rin >= 0 && c->in[rin].dtype != OP_DT_F32;
    int nsc = 2 + qout + qres, want = own + nsc;
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: int8 expects %d inputs (the layer's and %d scales), got %d", name, want,
                        nsc, c->nin);
    *so = *sr = 0.0f;
    if (qout && one_scale(c, own + 2, "output", so, err, errlen))
        return -1;
    if (qres && one_scale(c, own + 2 + qout, "residual", sr, err, errlen))
        return -1;
    const op_tensor *tw = &c->in[own], *ti = &c->in[own + 1];
    if (op_tensor_numel(tw) != f || op_tensor_numel(ti) != 1)
        return ref_fail(err, errlen, "%s: int8 scales must be [%lld] and [1], got %lld and %lld values", name,
                        (long long)f, (long long)op_tensor_numel(tw), (long long)op_tensor_numel(ti));
    if (!op_q_scales_ok(tw->data, f) || !op_q_scales_ok(ti->data, 1))
        return ref_fail(err, errlen, "%s: an int8 scale is zero, negative or not finite", name);
    *ws = tw->data;
    *si = ti->data[0];
    return 0;
}

/* Input 0 quantised into xq: read as the bytes it holds (u8/s8) or converted from f32. */
static void quantise_input(const op_tensor *x, int64_t n, float si, bool is_unsigned, int16_t *xq)
{
    if (x->dtype == OP_DT_U8)
        for (int64_t i = 0; i < n; i++) xq[i] = ((const uint8_t *)(const void *)x->data)[i];
    else if (x->dtype == OP_DT_S8)
        for (int64_t i = 0; i < n; i++) xq[i] = ((const int8_t *)(const void *)x->data)[i];
    else {
        float inv = 1.0f / si;
        for (int64_t i = 0; i < n; i++) xq[i] = (int16_t)op_q_act(x->data[i], inv, is_unsigned);
    }
}

/* Stores value v at index i of output t (f32, or quantised to its u8/s8). */
static inline void store_out(const op_tensor *t, int64_t i, float v)
{
    if (t->dtype == OP_DT_U8)
        ((uint8_t *)(void *)t->data)[i] = (uint8_t)op_q_out(v, true);
    else if (t->dtype == OP_DT_S8)
        ((int8_t *)(void *)t->data)[i] = (int8_t)op_q_out(v, false);
    else
        t->data[i] = v;
}

/* bf16: the fp32 reference on rounded copies of x and w. */
typedef int (*fp32_kernel)(op_call *c, char *err, size_t errlen);

static int run_bf16(op_call *c, fp32_kernel fp32, char *err, size_t errlen)
{
    int own = own_inputs(c);
    if (c->nin != own)
        return ref_fail(err, errlen, "%s: bf16 expects %d inputs, got %d", c->node->name, own, c->nin);
    if (c->in[0].dtype != OP_DT_F32 || c->out[0].dtype != OP_DT_F32)
        return ref_fail(err, errlen, "%s: bf16 takes f32 tensors", c->node->name);
    int64_t nx = op_tensor_numel(&c->in[0]), nw = op_tensor_numel(&c->in[1]);
    float *x = cnn_mem_malloc(sizeof(float) * (size_t)(nx + nw + 1));
    if (!x)
        return ref_fail(err, errlen, "%s: out of memory", c->node->name);
    float *w = x + nx;
    for (int64_t i = 0; i < nx; i++)
        x[i] = op_bf16_round(c->in[0].data[i]);
    for (int64_t i = 0; i < nw; i++)
        w[i] = op_bf16_round(c->in[1].data[i]);
    op_call k = *c;
    k.in[0].data = x;
    k.in[1].data = w;
    int rc = fp32(&k, err, errlen);
    cnn_mem_free(x);
    return rc;
}

/* ---------------------------------------------------------------- conv */

static int64_t pool_out(int64_t in, int64_t size, int64_t stride, int64_t pad)
{
    return (in + 2 * pad - size) / stride + 1;
}

static int conv_int8(op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    const char *name = c->node->name;
    int own = own_inputs(c);
    op_conv_geom g;
    if (op_conv_geom_make3(a, &c->in[0], &c->in[1], name, &g, err, errlen))
        return -1;
    const float *ws, *b = NULL;
    const op_tensor *r = NULL;
    float si, so, sr;
    if (read_scales(c, own, a->residual ? own - 1 : -1, g.f, &ws, &si, &so, &sr, err, errlen))
        return -1;
    if (so > 0 && a->act != OP_ACT_NONE && a->act != OP_ACT_RELU && a->act != OP_ACT_LEAKY_RELU)
        return ref_fail(err, errlen, "%s: an int8 output takes no activation but relu and leaky_relu", name);
    int k = 2;
    if (a->bias) {
        if (op_tensor_numel(&c->in[k]) != g.f)
            return ref_fail(err, errlen, "%s: bias must be [%lld]", name, (long long)g.f);
        b = c->in[k++].data;
    }
    int64_t ovol = g.od * g.oh * g.ow;
    if (a->residual) {
        if (op_conv_check_act3(&c->in[k], a->sdims, g.n, g.f, g.od, g.oh, g.ow, name, "residual", err, errlen))
            return -1;
        r = &c->in[k++];
        if (sr > 0 && so > 0 && r->dtype != (a->res_unsigned ? OP_DT_U8 : OP_DT_S8))
            return ref_fail(err, errlen, "%s: the int8 residual is %s but the node reads it as %s", name,
                            r->dtype == OP_DT_U8 ? "u8" : "s8", a->res_unsigned ? "u8" : "s8");
    }
    int64_t yh = g.oh, yw = g.ow;
    if (a->pool) {
        if (a->sdims == 3)
            return ref_fail(err, errlen, "%s: fused pooling is for 1-D and 2-D convolutions only", name);
        if (a->pool_size[0] < 1 || a->pool_size[1] < 1 || a->pool_stride[0] < 1 || a->pool_stride[1] < 1 ||
            a->pool_pad[0] < 0 || a->pool_pad[1] < 0 || g.oh + 2 * a->pool_pad[0] < a->pool_size[0] ||
            g.ow + 2 * a->pool_pad[1] < a->pool_size[1])
            return ref_fail(err, errlen, "%s: bad fused pooling", name);
        yh = pool_out(g.oh, a->pool_size[0], a->pool_stride[0], a->pool_pad[0]);
        yw = pool_out(g.ow, a->pool_size[1], a->pool_stride[1], a->pool_pad[1]);
    }
    if (op_conv_check_act3(&c->out[0], a->sdims, g.n, g.f, g.od, yh, yw, name, "output", err, errlen))
        return -1;

    int64_t nx = op_tensor_numel(&c->in[0]), per = g.cpg * g.kd * g.kh * g.kw;
    int16_t *xq = cnn_mem_malloc(sizeof(int16_t) * (size_t)(nx + 1));
    int8_t *wq = cnn_mem_malloc((size_t)(g.f * per + 1));
    float *m = cnn_mem_malloc(sizeof(float) * (size_t)(2 * g.f + 1));
    bool qout = so > 0;
    float *pre = a->pool || qout ? cnn_mem_malloc(sizeof(float) * (size_t)(g.n * g.f * ovol + 1)) : NULL;
    if (!xq || !wq || !m || ((a->pool || qout) && !pre)) {
        cnn_mem_free(xq), cnn_mem_free(wq), cnn_mem_free(m), cnn_mem_free(pre);
        return ref_fail(err, errlen, "%s: out of memory", name);
    }
    float *bq = m + g.f;
    quantise_input(&c->in[0], nx, si, a->q_unsigned, xq);
    op_q_weights(c->in[1].data, ws, g.f, per, wq);
    op_q_out_scales(ws, si, b, g.f, so, m, bq);
    float *y = pre ? pre : c->out[0].data;
    int nt = ref_threads(c);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t f = 0; f < g.f; f++) {
            int64_t grp = f / g.fpg;
            const int8_t *wf = wq + f * per;
            for (int64_t od = 0; od < g.od; od++)
                for (int64_t oh = 0; oh < g.oh; oh++)
                    for (int64_t ow = 0; ow < g.ow; ow++) {
                        int64_t acc = 0;
                        for (int64_t cl = 0; cl < g.cpg; cl++) {
                            const int16_t *xc = xq + (n * g.c + grp * g.cpg + cl) * g.d * g.h * g.w;
                            for (int64_t t = 0; t < g.kd; t++) {
                                int64_t id = od * g.sd - g.pd + t * g.dd;
                                if (id < 0 || id >= g.d)
                                    continue;
                                for (int64_t i = 0; i < g.kh; i++) {
                                    int64_t ih = oh * g.sh - g.ph + i * g.dh;
                                    if (ih < 0 || ih >= g.h)
                                        continue;
                                    for (int64_t j = 0; j < g.kw; j++) {
                                        int64_t iw = ow * g.sw - g.pw + j * g.dw;
                                        if (iw < 0 || iw >= g.w)
                                            continue;
                                        acc += (int64_t)xc[(id * g.h + ih) * g.w + iw] *
                                               wf[((cl * g.kd + t) * g.kh + i) * g.kw + j];
                                    }
                                }
                            }
                        }
                        int64_t e = (od * g.oh + oh) * g.ow + ow;
                        int64_t at = (n * g.f + f) * ovol + e;
                        float v = ((float)(int32_t)acc + bq[f]) * m[f];
                        if (r) {
                            float rk, rv = r->dtype == OP_DT_U8   ? (float)((const uint8_t *)(const void *)r->data)[at]
                                           : r->dtype == OP_DT_S8 ? (float)((const int8_t *)(const void *)r->data)[at]
                                                                  : r->data[at];
                            float t = op_q_res_term(rv, r->dtype != OP_DT_F32, sr, so, a->res_unsigned, &rk);
                            v += rk * t;
                        }
                        y[at] = op_apply_act(a->act, a->alpha, v);
                    }
        }
    if (a->pool) {
        const op_tensor *out = &c->out[0];
        for (int64_t p = 0; p < g.n * g.f; p++)
            for (int64_t oy = 0; oy < yh; oy++)
                for (int64_t ox = 0; ox < yw; ox++) {
                    float best = -INFINITY;
                    for (int64_t i = 0; i < a->pool_size[0]; i++) {
                        int64_t ch = oy * a->pool_stride[0] - a->pool_pad[0] + i;
                        for (int64_t j = 0; ch >= 0 && ch < g.oh && j < a->pool_size[1]; j++) {
                            int64_t cw = ox * a->pool_stride[1] - a->pool_pad[1] + j;
                            if (cw >= 0 && cw < g.ow && pre[p * ovol + ch * g.ow + cw] > best)
                                best = pre[p * ovol + ch * g.ow + cw];
                        }
                    }
                    store_out(out, (p * yh + oy) * yw + ox, best);
                }
    } else if (qout) {
        for (int64_t i = 0; i < g.n * g.f * ovol; i++)
            store_out(&c->out[0], i, pre[i]);
    }
    cnn_mem_free(xq), cnn_mem_free(wq), cnn_mem_free(m), cnn_mem_free(pre);
    return 0;
}

OP_REF_KERNEL(op_ref_conv_q)
{
    if (ref_check_call(c, "conv_q", 2, 8, 1, 1, err, errlen))
        return -1;
    switch (c->node->attrs.conv.prec) {
    case OP_PREC_INT8: return conv_int8(c, err, errlen);
    case OP_PREC_BF16: return run_bf16(c, op_ref_conv, err, errlen);
    default: return op_ref_conv(c, err, errlen);
    }
}

/* ---------------------------------------------------------------- dense */

static int dense_int8(op_call *c, char *err, size_t errlen)
{
    const op_dense_attrs *a = &c->node->attrs.dense;
    const char *name = c->node->name;
    if (a->softmax)
        return ref_fail(err, errlen, "%s: int8 dense takes no fused softmax", name);
    const op_tensor *x = &c->in[0], *w = &c->in[1];
    int64_t n = x->rank ? x->d[0] : 0, f = ref_inner(x);
    if (w->rank != 2 || w->d[1] != f)
        return ref_fail(err, errlen, "%s: weights do not match %lld input features", name, (long long)f);
    int64_t u = w->d[0];
    if (c->out[0].rank != 2 || c->out[0].d[0] != n || c->out[0].d[1] != u)
        return ref_fail(err, errlen, "%s: output must be [%lld, %lld]", name, (long long)n, (long long)u);
    const float *ws, *b = NULL;
    float si, so, sr;
    if (read_scales(c, own_inputs(c), -1, u, &ws, &si, &so, &sr, err, errlen))
        return -1;
    if (so > 0 && a->act != OP_ACT_NONE && a->act != OP_ACT_RELU && a->act != OP_ACT_LEAKY_RELU)
        return ref_fail(err, errlen, "%s: an int8 output takes no activation but relu", name);
    if (a->bias) {
        if (op_tensor_numel(&c->in[2]) != u)
            return ref_fail(err, errlen, "%s: bias must be [%lld]", name, (long long)u);
        b = c->in[2].data;
    }
    int16_t *xq = cnn_mem_malloc(sizeof(int16_t) * (size_t)(n * f + 1));
    int8_t *wq = cnn_mem_malloc((size_t)(u * f + 1));
    float *m = cnn_mem_malloc(sizeof(float) * (size_t)(2 * u + 1));
    if (!xq || !wq || !m) {
        cnn_mem_free(xq), cnn_mem_free(wq), cnn_mem_free(m);
        return ref_fail(err, errlen, "%s: out of memory", name);
    }
    float *bq = m + u;
    quantise_input(x, n * f, si, a->q_unsigned, xq);
    op_q_weights(w->data, ws, u, f, wq);
    op_q_out_scales(ws, si, b, u, so, m, bq);
    const op_tensor *y = &c->out[0];
    int nt = ref_threads(c);
#pragma omp parallel for collapse(2) num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < u; o++) {
            int64_t acc = 0;
            for (int64_t k = 0; k < f; k++)
                acc += (int64_t)xq[i * f + k] * wq[o * f + k];
            float v = ((float)(int32_t)acc + bq[o]) * m[o];
            store_out(y, i * u + o, op_apply_act(a->act, a->alpha, v));
        }
    cnn_mem_free(xq), cnn_mem_free(wq), cnn_mem_free(m);
    return 0;
}

OP_REF_KERNEL(op_ref_dense_q)
{
    if (ref_check_call(c, "dense_q", 2, 6, 1, 1, err, errlen))
        return -1;
    switch (c->node->attrs.dense.prec) {
    case OP_PREC_INT8: return dense_int8(c, err, errlen);
    case OP_PREC_BF16: return run_bf16(c, op_ref_dense, err, errlen);
    default: return op_ref_dense(c, err, errlen);
    }
}
