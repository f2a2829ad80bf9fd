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
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/simd.h"
#include "ops/registry.h"

#define CHUNK 16384  /* elements per parallel job */

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

/* Runs body over [o, o + len) chunks of total elements. */
#define CHUNKED(c, total, body)                                                                \
    do {                                                                                       \
        int64_t nch_ = ((total) + CHUNK - 1) / CHUNK;                                          \
        _Pragma("omp parallel for schedule(static) num_threads(nat_threads(c)) if (nch_ > 1)") \
        for (int64_t q_ = 0; q_ < nch_; q_++) {                                                \
            int64_t o = q_ * CHUNK, len = (total) - o < CHUNK ? (total) - o : CHUNK;           \
            body;                                                                              \
        }                                                                                      \
    } while (0)

int op_native_act(op_call *c, char *err, size_t errlen)
{
    const char *name = "native activation";
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen))
        return -1;
    op_act act = c->node->attrs.act.act;
    if (act == OP_ACT_NONE || !act_known(act))
        return ref_fail(err, errlen, "%s: attrs.act names no activation (%d)", name, (int)act);
    if (check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    float alpha = c->node->attrs.act.alpha;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    const op_native_simd *v = op_native_simd_table();
    int64_t total = ref_numel(&c->in[0]);
    CHUNKED(c, total, v->act(x + o, y + o, len, act, alpha));
    return 0;
}

int op_native_act_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native act_bwd";
    if (nat_check_call(c, name, 2, 2, 1, 1, true, err, errlen))
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
    const op_native_simd *v = op_native_simd_table();
    int64_t total = ref_numel(&c->in[0]);
    CHUNKED(c, total, v->act_bwd(dy + o, y + o, dx + o, len, act, alpha));
    return 0;
}

int op_native_add(op_call *c, char *err, size_t errlen)
{
    const char *name = "native add";
    if (nat_check_call(c, name, 2, OP_MAX_IN, 1, 1, true, err, errlen))
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
    const op_native_simd *v = op_native_simd_table();
    int nin = c->nin;
    const op_tensor *in = c->in;
    float *y = c->out[0].data;
    int64_t total = ref_numel(&c->in[0]);
    if (nin == 2) {
        const float *a = in[0].data, *b = in[1].data;
        CHUNKED(c, total, v->add2(a + o, b + o, y + o, len, act, alpha));
        return 0;
    }
    CHUNKED(c, total, {
        for (int64_t i = o; i < o + len; i++) {
            double s = 0.0;
            for (int k = 0; k < nin; k++)
                s += (double)in[k].data[i];
            y[i] = (float)s;
        }
        if (act != OP_ACT_NONE)
            v->act(y + o, y + o, len, act, alpha);
    });
    return 0;
}

/* flatten, and copy (its gradient): any output with the same batch and element count */
int op_native_flatten(op_call *c, char *err, size_t errlen)
{
    const char *name = c->node ? op_name(c->node->op) : "flatten";
    char s1[64], s2[64];
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen))
        return -1;
    const op_tensor *x = &c->in[0], *y = &c->out[0];
    if (x->rank < 1 || y->rank < 1 || y->d[0] != x->d[0] || ref_numel(y) != ref_numel(x))
        return ref_fail(err, errlen, "native %s: output %s does not flatten input %s", name,
                        ref_shape_str(y, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2));
    if (y->data == x->data)
        return 0;
    const float *src = x->data;
    float *dst = y->data;
    int64_t total = ref_numel(x);
    if (src < dst + total && dst < src + total) { /* overlapping: never split */
        memmove(dst, src, (size_t)total * sizeof(float));
        return 0;
    }
    CHUNKED(c, total, memcpy(dst + o, src + o, (size_t)len * sizeof(float)));
    return 0;
}

/* ---- dropout: the reference's generator (ops/ref_eltwise.c), bit for bit */

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int op_native_dropout(op_call *c, char *err, size_t errlen)
{
    const char *name = "native dropout";
    if (nat_check_call(c, name, 1, 1, 1, 2, true, err, errlen))
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
    uint64_t threshold = (uint64_t)llround((double)a->p * 9007199254740992.0);
    float scale = (float)(1.0 / (1.0 - (double)a->p));
    uint64_t key = splitmix64(c->seed);
    CHUNKED(c, total, {
        for (int64_t i = o; i < o + len; i++) {
            uint64_t u = splitmix64(key ^ (uint64_t)i) >> 11;
            float m = u < threshold ? 0.0f : scale;
            mask[i] = m;
            y[i] = x[i] * m;
        }
    });
    return 0;
}

int op_native_dropout_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native dropout_bwd";
    if (nat_check_call(c, name, 2, 2, 1, 1, true, err, errlen))
        return -1;
    if (check_same(&c->in[1], &c->in[0], name, "mask", "dy", err, errlen) ||
        check_same(&c->out[0], &c->in[0], name, "dx", "dy", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *mask = c->in[1].data;
    float *dx = c->out[0].data;
    const op_native_simd *v = op_native_simd_table();
    int64_t total = ref_numel(&c->in[0]);
    CHUNKED(c, total, v->mul(dy + o, mask + o, dx + o, len));
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
    const char *name = "native softmax";
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen))
        return -1;
    if (c->in[0].rank < 2)
        return ref_fail(err, errlen, "%s: input has rank %d, expected a batch axis and features",
                        name, c->in[0].rank);
    if (check_same(&c->out[0], &c->in[0], name, "output", "input", err, errlen))
        return -1;
    int64_t n = c->in[0].d[0], ch = c->in[0].d[1], s = ref_spatial(&c->in[0]);
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (n * s * ch > CHUNK)
    for (int64_t p = 0; p < n * s; p++) {
        int64_t base = (p / s) * ch * s + p % s;
        softmax_strided(x + base, y + base, ch, s);
    }
    return 0;
}

int op_native_softmax_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native softmax_bwd";
    if (nat_check_call(c, name, 2, 2, 1, 1, true, err, errlen))
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
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (n * s * ch > CHUNK)
    for (int64_t p = 0; p < n * s; p++) {
        int64_t base = (p / s) * ch * s + p % s;
        float dot = 0.0f;
        for (int64_t k = 0; k < ch; k++)
            dot += dy[base + k * s] * y[base + k * s];
        for (int64_t k = 0; k < ch; k++) {
            int64_t i = base + k * s;
            dx[i] = y[i] * (dy[i] - dot);
        }
    }
    return 0;
}

/* ---- concat along axis 1 */

static bool concat_fits(const op_tensor *t, const op_tensor *ref)
{
    if (t->rank != ref->rank || t->rank < 2 || t->d[0] != ref->d[0])
        return false;
    for (int i = 2; i < t->rank; i++)
        if (t->d[i] != ref->d[i])
            return false;
    return true;
}

int op_native_concat(op_call *c, char *err, size_t errlen)
{
    const char *name = "native concat";
    char s1[64], s2[64];
    if (nat_check_call(c, name, 1, OP_MAX_IN, 1, 1, true, err, errlen))
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
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (n * yc * s > CHUNK)
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

int op_native_concat_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native concat_bwd";
    char s1[64], s2[64];
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen))
        return -1;
    const op_tensor *dy = &c->in[0], *dx = &c->out[0];
    int64_t off = c->node->attrs.slice.offset;
    if (!concat_fits(dx, dy) || off < 0 || off + dx->d[1] > dy->d[1])
        return ref_fail(err, errlen, "%s: dx %s at channel offset %lld is not a slice of dy %s",
                        name, ref_shape_str(dx, s1, sizeof s1), (long long)off,
                        ref_shape_str(dy, s2, sizeof s2));
    int64_t n = dy->d[0], s = ref_spatial(dy), len = dx->d[1] * s;
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (n * len > CHUNK)
    for (int64_t i = 0; i < n; i++)
        memcpy(dx->data + i * len, dy->data + (i * dy->d[1] + off) * s,
               (size_t)len * sizeof(float));
    return 0;
}
