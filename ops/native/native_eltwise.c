/* Native element-wise and data-movement kernels on plain tensors, the semantics of
 * ops/ref_eltwise.c: activations and act_bwd, add (a fused activation; two inputs round once
 * in float, the same bits as the reference's double sum; more inputs sum in double as the
 * reference), flatten / copy, dropout (the reference's counter-based mask, bit for bit) and
 * dropout_bwd, softmax over axis 1 and its backward, concat and concat_bwd.  Outputs may alias
 * input 0 where the op is in place (activations, add, act_bwd, dropout).
 *
 * Element-wise work is cut into fixed chunks run in parallel (small tensors on one thread);
 * every element is computed alone, so results do not depend on the threads.  Softmax works in
 * float (the reference's sums and exponentials are in double): results may differ in the last
 * bits. */
#include <stdio.h>
#include <string.h>

#include "ops/eltwise_check.h"
#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/simd.h"
#include "ops/registry.h"

/* y[o, o + len) = the sum of the n arrays src at those elements: two round once in float (the
 * reference's double sum, the same bits), more sum in double in their order. */
static void sum_chunk(const op_native_simd *v, const float *const *src, int n, float *y, int64_t o, int64_t len)
{
    if (n == 2) {
        v->add2(src[0] + o, src[1] + o, y + o, len, OP_ACT_NONE, 0.0f);
        return;
    }
    for (int64_t i = o; i < o + len; i++) {
        double s = 0.0;
        for (int k = 0; k < n; k++)
            s += (double)src[k][i];
        y[i] = (float)s;
    }
}

int op_native_act(op_call *c, char *err, size_t errlen)
{
    op_act act;
    float alpha;
    if (op_elt_check_act(c, "native activation", false, &act, &alpha, err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    const op_native_simd *v = op_native_simd_table();
    int64_t total = op_tensor_numel(&c->in[0]);
    NAT_CHUNKED(nat_threads(c), total, v->act(x + o, y + o, len, act, alpha));
    return 0;
}

int op_native_act_bwd(op_call *c, char *err, size_t errlen)
{
    op_act act;
    float alpha;
    if (op_elt_check_act_bwd(c, "native act_bwd", false, &act, &alpha, err, errlen))
        return -1;
    const float *dy = c->in[0].data, *y = c->in[1].data;
    float *dx = c->out[0].data;
    const op_native_simd *v = op_native_simd_table();
    int64_t total = op_tensor_numel(&c->in[0]);
    if (c->nin == 2) {
        NAT_CHUNKED(nat_threads(c), total, v->act_bwd(dy + o, y + o, dx + o, len, act, alpha));
        return 0;
    }
    /* a fused gradient sum (inputs 2...): summed into dx chunk by chunk as add sums, then the
     * activation's backward in place while the chunk is in cache */
    const float *src[OP_MAX_IN];
    int n = 0;
    src[n++] = dy;
    for (int k = 2; k < c->nin; k++)
        src[n++] = c->in[k].data;
    NAT_CHUNKED(nat_threads(c), total, {
        sum_chunk(v, src, n, dx, o, len);
        v->act_bwd(dx + o, y + o, dx + o, len, act, alpha);
    });
    return 0;
}

int op_native_add(op_call *c, char *err, size_t errlen)
{
    op_act act;
    float alpha;
    if (op_elt_check_add(c, "native add", false, &act, &alpha, err, errlen))
        return -1;
    const op_native_simd *v = op_native_simd_table();
    float *y = c->out[0].data;
    int64_t total = op_tensor_numel(&c->in[0]);
    if (c->nin == 2) { /* the activation in the same pass */
        const float *a = c->in[0].data, *b = c->in[1].data;
        NAT_CHUNKED(nat_threads(c), total, v->add2(a + o, b + o, y + o, len, act, alpha));
        return 0;
    }
    const float *src[OP_MAX_IN];
    for (int k = 0; k < c->nin; k++)
        src[k] = c->in[k].data;
    int n = c->nin;
    NAT_CHUNKED(nat_threads(c), total, {
        sum_chunk(v, src, n, y, o, len);
        if (act != OP_ACT_NONE)
            v->act(y + o, y + o, len, act, alpha);
    });
    return 0;
}

/* flatten, and copy (its gradient): any output with the same batch and element count */
int op_native_flatten(op_call *c, char *err, size_t errlen)
{
    char name[48];
    snprintf(name, sizeof name, "native %s", c->node ? op_name(c->node->op) : "flatten");
    if (op_elt_check_flatten(c, name, err, errlen))
        return -1;
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    if (y->data == x->data)
        return 0;
    const float *src = x->data;
    float *dst = y->data;
    int64_t total = op_tensor_numel(x);
    if (src < dst + total && dst < src + total) { /* overlapping: never split */
        memmove(dst, src, (size_t)total * sizeof(float));
        return 0;
    }
    NAT_CHUNKED(nat_threads(c), total, memcpy(dst + o, src + o, (size_t)len * sizeof(float)));
    return 0;
}

/* ---- dropout: the reference's generator (ops/ref_eltwise.c), bit for bit */

int op_native_dropout(op_call *c, char *err, size_t errlen)
{
    op_dropout_gen gen;
    int rc = op_elt_check_dropout(c, "native dropout", &gen, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0; /* inference: copied */
    const float *x = c->in[0].data;
    float *y = c->out[0].data, *mask = c->out[1].data;
    int64_t total = op_tensor_numel(&c->in[0]);
    NAT_CHUNKED(nat_threads(c), total, {
        for (int64_t i = o; i < o + len; i++) {
            float m = op_dropout_mask(&gen, i);
            mask[i] = m;
            y[i] = x[i] * m;
        }
    });
    return 0;
}

int op_native_dropout_bwd(op_call *c, char *err, size_t errlen)
{
    if (op_elt_check_dropout_bwd(c, "native dropout_bwd", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *mask = c->in[1].data;
    float *dx = c->out[0].data;
    const op_native_simd *v = op_native_simd_table();
    int64_t total = op_tensor_numel(&c->in[0]);
    NAT_CHUNKED(nat_threads(c), total, v->mul(dy + o, mask + o, dx + o, len));
    return 0;
}

/* ---- softmax over axis 1, in float */

/* y = softmax(x) over k values at stride st (maximum subtracted). */
static void softmax_strided(const float *x, float *y, int64_t k, int64_t st)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < k; i++)
        if (x[i * st] > m)
            m = x[i * st];
    float s = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float e = expf(x[i * st] - m);
        y[i * st] = e;
        s += e;
    }
    float inv = 1.0f / s;
    for (int64_t i = 0; i < k; i++)
        y[i * st] *= inv;
}

int op_native_softmax(op_call *c, char *err, size_t errlen)
{
    int64_t n, ch, s;
    if (op_elt_check_softmax(c, "native softmax", false, &n, &ch, &s, err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    NAT_FOR(n * s * ch > NAT_CHUNK ? nat_threads(c) : 1, p, n * s, {
        int64_t base = (p / s) * ch * s + p % s;
        softmax_strided(x + base, y + base, ch, s);
    });
    return 0;
}

int op_native_softmax_bwd(op_call *c, char *err, size_t errlen)
{
    int64_t n, ch, s;
    if (op_elt_check_softmax(c, "native softmax_bwd", true, &n, &ch, &s, err, errlen))
        return -1;
    const float *dy = c->in[0].data, *y = c->in[1].data;
    float *dx = c->out[0].data;
    NAT_FOR(n * s * ch > NAT_CHUNK ? nat_threads(c) : 1, p, n * s, {
        int64_t base = (p / s) * ch * s + p % s;
        float dot = 0.0f;
        for (int64_t k = 0; k < ch; k++)
            dot += dy[base + k * s] * y[base + k * s];
        for (int64_t k = 0; k < ch; k++) {
            int64_t i = base + k * s;
            dx[i] = y[i] * (dy[i] - dot);
        }
    });
    return 0;
}

/* ---- concat along axis 1 */

int op_native_concat(op_call *c, char *err, size_t errlen)
{
    if (op_elt_check_concat(c, "native concat", err, errlen))
        return -1;
    const op_tensor *y = &c->out[0];
    int64_t n = y->d[0], s = ref_spatial(y), yc = y->d[1];
    int nin = c->nin;
    const op_tensor *in = c->in;
    NAT_FOR(n * yc * s > NAT_CHUNK ? nat_threads(c) : 1, i, n, {
        int64_t off = 0;
        for (int k = 0; k < nin; k++) {
            int64_t len = in[k].d[1] * s;
            memcpy(y->data + (i * yc) * s + off, in[k].data + i * len, (size_t)len * sizeof(float));
            off += len;
        }
    });
    return 0;
}

int op_native_concat_bwd(op_call *c, char *err, size_t errlen)
{
    int64_t off;
    if (op_elt_check_concat_bwd(c, "native concat_bwd", &off, err, errlen))
        return -1;
    const op_tensor *dy = &c->in[0], *dx = &c->out[0];
    int64_t n = dy->d[0], s = ref_spatial(dy), len = dx->d[1] * s;
    NAT_FOR(n * len > NAT_CHUNK ? nat_threads(c) : 1, i, n,
            memcpy(dx->data + i * len, dy->data + (i * dy->d[1] + off) * s, (size_t)len * sizeof(float)););
    return 0;
}
