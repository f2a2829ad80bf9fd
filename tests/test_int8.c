/* Low-precision kernels (ops/ref_int8.c, ops/onednn/dnn_lowp.c): the int8 reference against an
 * independent computation where the math is exact (integer-valued inputs, power-of-two scales),
 * the oneDNN int8 kernels against the reference (exactly equal where every step is exact, within
 * a float rounding with a bias), bf16 against the bf16 reference (inference and the training
 * nodes), weight re-quantisation when
 * the weights' version changes, and bad scales refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/quant.h"
#include "ops/ref.h"
#include "ops/registry.h"

typedef struct tens {
    int rank;
    int64_t d[OP_MAX_DIMS];
    float *data;
} tens;

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static tens mk(int rank, const int64_t *d)
{
    tens t = {.rank = rank};
    int64_t n = 1;
    for (int i = 0; i < rank; i++) t.d[i] = d[i], n *= d[i];
    t.data = calloc((size_t)n + 1, sizeof(float));
    cr_assert_not_null(t.data);
    return t;
}
#define MK(...) mk((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__})

static int64_t nel(const tens *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->d[i];
    return n;
}

/* integers in [lo, hi] times scale: exactly representable, quantising to themselves */
static void fill_int(tens *t, int lo, int hi, float scale)
{
    for (int64_t i = 0; i < nel(t); i++) t->data[i] = (float)(lo + (int)(rnd() % (uint32_t)(hi - lo + 1))) * scale;
}

__attribute__((unused)) static void fill_real(tens *t, float lo, float hi)
{
    for (int64_t i = 0; i < nel(t); i++) t->data[i] = lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f;
}

static op_tensor ot(const tens *t)
{
    op_tensor o = {.data = t->data, .rank = t->rank};
    for (int i = 0; i < t->rank; i++) o.d[i] = t->d[i];
    return o;
}

static int in_dtype, out_dtype; /* of the next run()'s input 0 and output */
static int res_at = -1, res_dtype;  /* and of its input res_at (-1: none) */

/* Runs the kernel of op on backend b with inputs in and output out; returns its status. */
static int run(op_backend b, const op_node *node, int nin, tens *in, tens *out, uint64_t version, char *msg)
{
    const op_kernel *k = op_kernel_get(node->op, b);
    cr_assert_not_null(k, "no kernel for %s on %s", op_name(node->op), op_backend_name(b));
    op_call c = {.node = node, .nin = nin, .nout = 1, .batch = in[0].d[0], .nthreads = 1, .weights_version = version};
    for (int i = 0; i < nin; i++) c.in[i] = ot(&in[i]);
    c.out[0] = ot(out);
    c.in[0].dtype = in_dtype;
    c.out[0].dtype = out_dtype;
    if (res_at >= 0) c.in[res_at].dtype = res_dtype;
    int rc = k->prepare ? k->prepare(&c, msg, 512) : 0;
    if (rc == 0) rc = k->run(&c, msg, 512);
    if (k->release && c.state) k->release(c.state);
    return rc;
}

static op_node conv_node(int64_t f, int64_t k, int64_t stride, int64_t pad, int64_t groups, bool bias)
{
    op_node n = {.op = OP_CONV_Q};
    snprintf(n.name, sizeof n.name, "conv2d_1");
    op_conv_attrs *a = &n.attrs.conv;
    a->sdims = 2, a->filters = f, a->groups = groups, a->bias = bias;
    for (int i = 0; i < 2; i++) a->kernel[i] = k, a->stride[i] = stride, a->pad[i] = pad, a->dilation[i] = 1;
    a->kernel_d = a->stride_d = a->dilation_d = 1;
    a->prec = OP_PREC_INT8;
    return n;
}

__attribute__((unused)) static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

__attribute__((unused)) static void expect_equal(const tens *a, const tens *b, double rtol, const char *what)
{
    for (int64_t i = 0; i < nel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(d <= rtol * fabs((double)b->data[i]) + (rtol ? 1e-6 : 0), "%s: element %lld: %.9g vs %.9g", what,
                  (long long)i, (double)a->data[i], (double)b->data[i]);
    }
}

/* The int8 reference conv equals a double convolution of the dequantised values when the
 * inputs are exact multiples of the scales (quantisation is then lossless). */
Test(int8_ref, conv_exact_against_double)
{
    int64_t n = 2, c = 3, h = 7, w = 6, f = 4, k = 3;
    op_node nd = conv_node(f, k, 1, 1, 1, false);
    nd.attrs.conv.q_unsigned = true;
    float si = 0.25f;
    tens in[4] = {MK(n, c, h, w), MK(f, c, k, k), MK(f), MK(1)};
    fill_int(&in[0], 0, 255, si);
    in[3].data[0] = si;
    for (int64_t o = 0; o < f; o++) in[2].data[o] = ldexpf(1.0f, -(int)o - 3);
    for (int64_t o = 0; o < f; o++)
        for (int64_t i = 0; i < c * k * k; i++)
            in[1].data[o * c * k * k + i] = (float)((int)(rnd() % 255) - 127) * in[2].data[o];
    tens y = MK(n, f, h, w);
    char msg[512];
    cr_assert_eq(run(OP_BACKEND_REF, &nd, 4, in, &y, 1, msg), 0, "%s", msg);
    for (int64_t b = 0; b < n; b++)
        for (int64_t o = 0; o < f; o++)
            for (int64_t oy = 0; oy < h; oy++)
                for (int64_t ox = 0; ox < w; ox++) {
                    double s = 0;
                    for (int64_t ch = 0; ch < c; ch++)
                        for (int64_t i = 0; i < k; i++)
                            for (int64_t j = 0; j < k; j++) {
                                int64_t iy = oy - 1 + i, ix = ox - 1 + j;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                s += (double)in[0].data[((b * c + ch) * h + iy) * w + ix] *
                                     in[1].data[((o * c + ch) * k + i) * k + j];
                            }
                    float got = y.data[((b * f + o) * h + oy) * w + ox];
                    cr_assert_eq(got, (float)s, "at %lld,%lld,%lld,%lld: %.9g vs %.9g", (long long)b, (long long)o,
                                 (long long)oy, (long long)ox, (double)got, s);
                }
    for (int i = 0; i < 4; i++) free(in[i].data);
    free(y.data);
}

Test(int8_ref, rounding_and_saturation)
{
    cr_assert_eq(op_q_act(2.5f, 1.0f, true), 2);   /* ties to even */
    cr_assert_eq(op_q_act(3.5f, 1.0f, true), 4);
    cr_assert_eq(op_q_act(-2.5f, 1.0f, false), -2);
    cr_assert_eq(op_q_act(300.0f, 1.0f, true), 255);
    cr_assert_eq(op_q_act(-3.0f, 1.0f, true), 0);
    cr_assert_eq(op_q_act(-300.0f, 1.0f, false), -128);
    cr_assert_eq(op_q_act(NAN, 1.0f, false), 0);
    float w[3] = {1.0f, -2.0f, 0.5f}, ws = 1.0f / 127.0f;
    int8_t q[3];
    op_q_weights(w, &ws, 1, 3, q);
    cr_assert_eq(q[0], 127);
    cr_assert_eq(q[1], -127); /* symmetric: never -128 */
    cr_assert_eq(q[2], 64);   /* 63.5 -> 64 (even) */
    cr_assert_eq(op_bf16_round(1.0f + ldexpf(1.0f, -8)), 1.0f);          /* tie to even */
    cr_assert_eq(op_bf16_round(1.0f + 3 * ldexpf(1.0f, -8)), 1.0f + ldexpf(1.0f, -6));
}

#ifdef CNN_HAVE_ONEDNN
typedef struct conv_case {
    int64_t n, c, h, w, f, k, stride, pad, groups;
    bool bias, residual, relu, pool, is_unsigned;
} conv_case;

/* oneDNN int8 conv against the reference.  Without a bias every step is exact (power-of-two
 * scales, |acc| < 2^24): equal; with one, within a float rounding of the epilogue. */
static void check_conv(const conv_case *cc)
{
    op_node nd = conv_node(cc->f, cc->k, cc->stride, cc->pad, cc->groups, cc->bias);
    op_conv_attrs *a = &nd.attrs.conv;
    a->residual = cc->residual;
    a->act = cc->relu ? OP_ACT_RELU : OP_ACT_NONE;
    a->q_unsigned = cc->is_unsigned;
    int64_t oh = out_size(cc->h, cc->k, cc->stride, cc->pad), ow = out_size(cc->w, cc->k, cc->stride, cc->pad);
    int64_t yh = oh, yw = ow;
    if (cc->pool) {
        a->pool = true;
        for (int i = 0; i < 2; i++) a->pool_size[i] = a->pool_stride[i] = 2, a->pool_pad[i] = 0;
        yh = oh / 2, yw = ow / 2;
    }
    tens in[6];
    int nin = 0;
    in[nin++] = MK(cc->n, cc->c, cc->h, cc->w);
    in[nin++] = MK(cc->f, cc->c / cc->groups, cc->k, cc->k);
    if (cc->bias) in[nin++] = MK(cc->f);
    if (cc->residual) in[nin++] = MK(cc->n, cc->f, oh, ow);
    in[nin++] = MK(cc->f);
    in[nin++] = MK(1);
    float si = 0.5f;
    fill_real(&in[0], cc->is_unsigned ? -5.0f : -70.0f, 140.0f); /* out of range on purpose: saturation */
    fill_real(&in[1], -1.0f, 1.0f);
    in[nin - 1].data[0] = si;
    for (int64_t o = 0; o < cc->f; o++) in[nin - 2].data[o] = ldexpf(1.0f, -7 - (int)(o % 3));
    if (cc->bias) fill_real(&in[2], -3.0f, 3.0f);
    if (cc->residual) fill_int(&in[2 + cc->bias], -50, 50, 1.0f);
    tens yr = MK(cc->n, cc->f, yh, yw), yd = MK(cc->n, cc->f, yh, yw);
    char msg[512];
    cr_assert_eq(run(OP_BACKEND_REF, &nd, nin, in, &yr, 1, msg), 0, "ref: %s", msg);
    cr_assert_eq(run(OP_BACKEND_ONEDNN, &nd, nin, in, &yd, 1, msg), 0, "onednn: %s", msg);
    expect_equal(&yd, &yr, cc->bias ? 1e-6 : 0.0, "conv int8");
    for (int i = 0; i < nin; i++) free(in[i].data);
    free(yr.data), free(yd.data);
}

Test(int8_onednn, conv_against_ref)
{
    const conv_case cases[] = {
        {2, 3, 9, 8, 5, 3, 1, 1, 1, false, false, false, false, false},
        {1, 16, 8, 8, 16, 3, 1, 1, 1, false, false, true, false, true},
        {3, 8, 10, 10, 12, 3, 2, 1, 1, false, false, false, false, true},
        {2, 8, 7, 7, 8, 3, 1, 1, 2, false, true, true, false, true},
        {2, 1, 12, 12, 6, 5, 1, 0, 1, false, false, true, true, false},
        {2, 16, 8, 8, 32, 1, 1, 0, 1, true, false, true, false, true},
        {1, 6, 12, 12, 16, 5, 1, 0, 1, true, true, true, false, true},
        {2, 6, 12, 12, 16, 5, 1, 0, 1, true, false, true, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_conv(&cases[i]);
}

static op_node dense_node(int64_t u, bool bias, op_precision prec)
{
    op_node n = {.op = OP_DENSE_Q};
    snprintf(n.name, sizeof n.name, "dense_1");
    n.attrs.dense.units = u, n.attrs.dense.bias = bias, n.attrs.dense.prec = prec;
    return n;
}

Test(int8_onednn, dense_against_ref)
{
    for (int bias = 0; bias < 2; bias++)
        for (int uns = 0; uns < 2; uns++) {
            op_node nd = dense_node(10, bias, OP_PREC_INT8);
            nd.attrs.dense.q_unsigned = uns;
            nd.attrs.dense.act = uns ? OP_ACT_RELU : OP_ACT_NONE;
            tens in[5];
            int nin = 0;
            in[nin++] = MK(3, 4, 5, 5);
            in[nin++] = MK(10, 100);
            if (bias) in[nin++] = MK(10);
            in[nin++] = MK(10);
            in[nin++] = MK(1);
            fill_real(&in[0], -20.0f, 20.0f);
            fill_real(&in[1], -0.5f, 0.5f);
            if (bias) fill_real(&in[2], -1.0f, 1.0f);
            for (int o = 0; o < 10; o++) in[nin - 2].data[o] = ldexpf(1.0f, -8 + o % 2);
            in[nin - 1].data[0] = 0.125f;
            tens yr = MK(3, 10), yd = MK(3, 10);
            char msg[512];
            cr_assert_eq(run(OP_BACKEND_REF, &nd, nin, in, &yr, 1, msg), 0, "ref: %s", msg);
            cr_assert_eq(run(OP_BACKEND_ONEDNN, &nd, nin, in, &yd, 1, msg), 0, "onednn: %s", msg);
            expect_equal(&yd, &yr, bias ? 1e-6 : 0.0, "dense int8");
            for (int i = 0; i < nin; i++) free(in[i].data);
            free(yr.data), free(yd.data);
        }
}

/* The quantised weights follow the weights: a new version re-quantises them. */
Test(int8_onednn, weights_version)
{
    op_node nd = dense_node(4, false, OP_PREC_INT8);
    tens in[4] = {MK(2, 8), MK(4, 8), MK(4), MK(1)};
    fill_int(&in[0], -10, 10, 1.0f);
    fill_int(&in[1], -100, 100, 1.0f / 128);
    for (int o = 0; o < 4; o++) in[2].data[o] = 1.0f / 128;
    in[3].data[0] = 1.0f;
    tens y1 = MK(2, 4), y2 = MK(2, 4), yr = MK(2, 4);
    const op_kernel *k = op_kernel_get(OP_DENSE_Q, OP_BACKEND_ONEDNN);
    op_call c = {.node = &nd, .nin = 4, .nout = 1, .batch = 2, .nthreads = 1, .weights_version = 1};
    for (int i = 0; i < 4; i++) c.in[i] = ot(&in[i]);
    c.out[0] = ot(&y1);
    char msg[512];
    cr_assert_eq(k->prepare(&c, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(k->run(&c, msg, sizeof msg), 0, "%s", msg);
    for (int64_t i = 0; i < 32; i++) in[1].data[i] = -in[1].data[i];
    c.out[0] = ot(&y2);
    c.weights_version = 2;
    cr_assert_eq(k->run(&c, msg, sizeof msg), 0, "%s", msg);
    k->release(c.state);
    for (int i = 0; i < 8; i++) cr_assert_eq(y2.data[i], -y1.data[i]);
    cr_assert_eq(run(OP_BACKEND_REF, &nd, 4, in, &yr, 2, msg), 0, "%s", msg);
    expect_equal(&y2, &yr, 0.0, "after the change");
    for (int i = 0; i < 4; i++) free(in[i].data);
    free(y1.data), free(y2.data), free(yr.data);
}

Test(int8_onednn, bad_scales_refused)
{
    float bad[] = {0.0f, -1.0f, NAN, INFINITY};
    for (int b = 0; b < 4; b++)
        for (int be = 0; be < 2; be++) {
            op_node nd = dense_node(4, false, OP_PREC_INT8);
            tens in[4] = {MK(2, 8), MK(4, 8), MK(4), MK(1)};
            for (int o = 0; o < 4; o++) in[2].data[o] = 0.01f;
            in[3].data[0] = 0.1f;
            in[b % 2 ? 3 : 2].data[b % 2 ? 0 : 1] = bad[b];
            tens y = MK(2, 4);
            char msg[512] = "";
            cr_assert_neq(run(be ? OP_BACKEND_ONEDNN : OP_BACKEND_REF, &nd, 4, in, &y, 1, msg), 0);
            cr_assert(strstr(msg, "scale"), "%s", msg);
            for (int i = 0; i < 4; i++) free(in[i].data);
            free(y.data);
        }
}

/* Between two int8 nodes the tensor stays u8/s8: a conv writing u8 (with its output scale, relu,
 * and a fused max pool) and a dense layer reading those bytes agree exactly on both backends,
 * and the u8 values are the f32 output requantised. */
Test(int8_onednn, int8_tensors_between_nodes)
{
    for (int pool = 0; pool < 2; pool++) {
        op_node nd = conv_node(16, 3, 1, 1, 1, false);
        nd.attrs.conv.act = OP_ACT_RELU;
        nd.attrs.conv.q_unsigned = true;
        if (pool) {
            nd.attrs.conv.pool = true;
            for (int i = 0; i < 2; i++) nd.attrs.conv.pool_size[i] = nd.attrs.conv.pool_stride[i] = 2;
        }
        int64_t yh = pool ? 4 : 8;
        tens in[5] = {MK(2, 16, 8, 8), MK(16, 16, 3, 3), MK(16), MK(1), MK(1)};
        fill_real(&in[0], 0.0f, 60.0f);
        fill_real(&in[1], -1.0f, 1.0f);
        for (int o = 0; o < 16; o++) in[2].data[o] = ldexpf(1.0f, -7);
        in[3].data[0] = 0.25f;
        in[4].data[0] = 4.0f; /* the output scale */
        tens yf = MK(2, 16, yh, yh), yr = MK(2, 16, yh, yh), yd = MK(2, 16, yh, yh);
        char msg[512];
        in_dtype = out_dtype = OP_DT_F32;
        cr_assert_eq(run(OP_BACKEND_REF, &nd, 4, in, &yf, 1, msg), 0, "%s", msg);
        out_dtype = OP_DT_U8;
        cr_assert_eq(run(OP_BACKEND_REF, &nd, 5, in, &yr, 1, msg), 0, "ref: %s", msg);
        cr_assert_eq(run(OP_BACKEND_ONEDNN, &nd, 5, in, &yd, 1, msg), 0, "onednn: %s", msg);
        out_dtype = OP_DT_F32;
        const uint8_t *qr = (const uint8_t *)(void *)yr.data, *qd = (const uint8_t *)(void *)yd.data;
        int64_t n = 2 * 16 * yh * yh;
        for (int64_t i = 0; i < n; i++) {
            cr_assert_eq(qr[i], qd[i], "pool %d, element %lld: ref %d, onednn %d", pool, (long long)i, qr[i], qd[i]);
            cr_assert_eq(qr[i], (uint8_t)op_q_act(yf.data[i], 0.25f, true), "element %lld", (long long)i);
        }
        /* a dense layer reading the bytes (si = the conv's output scale) */
        op_node dn = dense_node(10, false, OP_PREC_INT8);
        dn.attrs.dense.q_unsigned = true;
        tens din[4] = {yr, MK(10, 16 * yh * yh), MK(10), MK(1)};
        fill_real(&din[1], -0.5f, 0.5f);
        for (int o = 0; o < 10; o++) din[2].data[o] = ldexpf(1.0f, -8);
        din[3].data[0] = 4.0f;
        tens zr = MK(2, 10), zd = MK(2, 10);
        in_dtype = OP_DT_U8;
        cr_assert_eq(run(OP_BACKEND_REF, &dn, 4, din, &zr, 1, msg), 0, "ref: %s", msg);
        din[0] = yd;
        cr_assert_eq(run(OP_BACKEND_ONEDNN, &dn, 4, din, &zd, 1, msg), 0, "onednn: %s", msg);
        in_dtype = OP_DT_F32;
        expect_equal(&zd, &zr, 0.0, "dense on u8");
        for (int i = 0; i < 5; i++) free(in[i].data);
        for (int i = 1; i < 4; i++) free(din[i].data);
        free(yf.data), free(yr.data), free(yd.data), free(zr.data), free(zd.data);
    }
}

/* A fused residual in every combination of types (ops/quant.h): f32 or u8/s8 bytes (with their
 * scale sr) into an f32 or u8/s8 output.  Power-of-two scales make every step exact, so oneDNN
 * equals the reference; the reference equals the formula computed here. */
Test(int8_onednn, residual_of_every_type)
{
    const int types[3] = {OP_DT_F32, OP_DT_U8, OP_DT_S8};
    for (int rt = 0; rt < 3; rt++)
        for (int yt = 0; yt < 3; yt++)
            for (int relu = 0; relu < 2; relu++) {
                if (types[yt] == OP_DT_U8 && !relu) continue; /* a u8 output is a relu's */
                op_node nd = conv_node(8, 3, 1, 1, 1, false);
                op_conv_attrs *a = &nd.attrs.conv;
                a->residual = true;
                a->act = relu ? OP_ACT_RELU : OP_ACT_NONE;
                a->q_unsigned = true;
                a->res_unsigned = types[rt] == OP_DT_U8 || (types[rt] == OP_DT_F32 && rt == 0 && relu);
                bool qout = types[yt] != OP_DT_F32, qres = types[rt] != OP_DT_F32;
                float si = 0.5f, so = 2.0f, sr = 0.25f;
                tens in[8];
                int nin = 0;
                in[nin++] = MK(2, 8, 7, 7);
                in[nin++] = MK(8, 8, 3, 3);
                in[nin++] = MK(2, 8, 7, 7); /* the residual */
                in[nin++] = MK(8);
                in[nin++] = MK(1);
                if (qout) in[nin++] = MK(1);
                if (qres) in[nin++] = MK(1);
                fill_int(&in[0], 0, 60, si);
                fill_real(&in[1], -1.0f, 1.0f);
                for (int o = 0; o < 8; o++) in[3].data[o] = ldexpf(1.0f, -7 - o % 2);
                in[4].data[0] = si;
                if (qout) in[5].data[0] = so;
                if (qres) in[5 + qout].data[0] = sr;
                int64_t nr = 2 * 8 * 7 * 7;
                if (types[rt] == OP_DT_F32) {
                    fill_int(&in[2], a->res_unsigned ? 0 : -90, 90, 1.0f);
                } else {
                    for (int64_t i = 0; i < nr; i++) {
                        int v = (int)(rnd() % 200);
                        if (types[rt] == OP_DT_U8)
                            ((uint8_t *)(void *)in[2].data)[i] = (uint8_t)v;
                        else
                            ((int8_t *)(void *)in[2].data)[i] = (int8_t)(v - 100);
                    }
                }
                tens yr = MK(2, 8, 7, 7), yd = MK(2, 8, 7, 7), ye = MK(2, 8, 7, 7);
                char msg[512];
                in_dtype = OP_DT_F32, out_dtype = types[yt], res_at = 2, res_dtype = types[rt];
                int rr = run(OP_BACKEND_REF, &nd, nin, in, &yr, 1, msg);
                {
                    cr_assert_eq(rr, 0, "ref r%d y%d: %s", rt, yt, msg);
                    cr_assert_eq(run(OP_BACKEND_ONEDNN, &nd, nin, in, &yd, 1, msg), 0, "onednn r%d y%d: %s", rt, yt, msg);
                    /* the same conv without residual, f32 out: the formula's first term */
                    op_node pn = nd;
                    pn.attrs.conv.residual = false, pn.attrs.conv.act = OP_ACT_NONE;
                    tens pin[4] = {in[0], in[1], in[3], in[4]};
                    out_dtype = OP_DT_F32, res_at = -1;
                    cr_assert_eq(run(OP_BACKEND_REF, &pn, 4, pin, &ye, 1, msg), 0, "%s", msg);
                    size_t es = qout ? 1 : 4;
                    for (int64_t i = 0; i < nr; i++) {
                        float rv = types[rt] == OP_DT_U8   ? (float)((uint8_t *)(void *)in[2].data)[i]
                                   : types[rt] == OP_DT_S8 ? (float)((int8_t *)(void *)in[2].data)[i]
                                                           : in[2].data[i];
                        float v;
                        if (!qout)
                            v = ye.data[i] + (qres ? rv * sr : rv);
                        else
                            v = ye.data[i] / so + (qres ? rv * (sr / so) : (float)op_q_act(rv, 1.0f / so, a->res_unsigned));
                        if (relu && v < 0) v = 0;
                        float want = qout ? (float)op_q_out(v, types[yt] == OP_DT_U8) : v;
                        float got_r, got_d;
                        if (es == 4) {
                            got_r = yr.data[i], got_d = yd.data[i];
                        } else if (types[yt] == OP_DT_U8) {
                            got_r = ((uint8_t *)(void *)yr.data)[i], got_d = ((uint8_t *)(void *)yd.data)[i];
                        } else {
                            got_r = ((int8_t *)(void *)yr.data)[i], got_d = ((int8_t *)(void *)yd.data)[i];
                        }
                        cr_assert_eq(got_r, want, "r%d y%d relu%d element %lld: ref %g, formula %g", rt, yt, relu,
                                     (long long)i, got_r, want);
                        cr_assert_eq(got_d, got_r, "r%d y%d relu%d element %lld: onednn %g, ref %g", rt, yt, relu,
                                     (long long)i, got_d, got_r);
                    }
                }
                /* bytes of the other sign than the node reads them as: refused on both backends */
                if (qout && qres) {
                    nd.attrs.conv.res_unsigned = !a->res_unsigned;
                    out_dtype = types[yt], res_at = 2;
                    cr_expect_neq(run(OP_BACKEND_REF, &nd, nin, in, &yr, 1, msg), 0);
                    cr_expect(strstr(msg, "residual"), "%s", msg);
                    cr_expect_neq(run(OP_BACKEND_ONEDNN, &nd, nin, in, &yd, 1, msg), 0);
                    cr_expect(strstr(msg, "residual"), "%s", msg);
                }
                in_dtype = out_dtype = OP_DT_F32, res_at = -1;
                for (int i = 0; i < nin; i++) free(in[i].data);
                free(yr.data), free(yd.data), free(ye.data);
            }
}

Test(bf16_onednn, conv_and_dense_against_ref)
{
    const op_kernel *k = op_kernel_get(OP_CONV_Q, OP_BACKEND_ONEDNN);
    cr_assert_not_null(k);
    op_node nd = conv_node(8, 3, 1, 1, 1, true);
    nd.attrs.conv.prec = OP_PREC_BF16;
    nd.attrs.conv.act = OP_ACT_RELU;
    tens in[3] = {MK(2, 4, 6, 6), MK(8, 4, 3, 3), MK(8)};
    fill_real(&in[0], -2, 2), fill_real(&in[1], -1, 1), fill_real(&in[2], -1, 1);
    tens yr = MK(2, 8, 6, 6), yd = MK(2, 8, 6, 6);
    char msg[512];
    cr_assert_eq(run(OP_BACKEND_REF, &nd, 3, in, &yr, 1, msg), 0, "%s", msg);
    int rc = run(OP_BACKEND_ONEDNN, &nd, 3, in, &yd, 1, msg);
    if (rc != 0) {
        cr_log_warn("bf16 convolution unavailable here: %s", msg);
    } else {
        expect_equal(&yd, &yr, 1e-5, "conv bf16");
    }
    for (int i = 0; i < 3; i++) free(in[i].data);
    free(yr.data), free(yd.data);
}
/* bf16 training: conv and dense forward, backward data and backward weights marked bf16 read x, w
 * and dy as bf16 and write f32: oneDNN against the fp32 reference on inputs rounded to bf16 (the
 * products are then exact; only the f32 accumulation order differs). */
static tens rounded(const tens *t)
{
    tens r = mk(t->rank, t->d);
    for (int64_t i = 0; i < nel(t); i++) r.data[i] = op_bf16_round(t->data[i]);
    return r;
}

/* |a - b| within 1e-4 of b's largest magnitude, and some element differing from the fp32 result
 * on the unrounded inputs (so the bf16 rounding did happen). */
static void expect_bf16(const tens *a, const tens *b, const tens *f32, const char *what)
{
    double big = 0;
    for (int64_t i = 0; i < nel(b); i++) big = fmax(big, fabs((double)b->data[i]));
    bool differs = false;
    for (int64_t i = 0; i < nel(a); i++) {
        cr_assert(fabs((double)a->data[i] - b->data[i]) <= 1e-4 * big, "%s: element %lld: %.9g vs %.9g", what,
                  (long long)i, (double)a->data[i], (double)b->data[i]);
        differs |= fabs((double)a->data[i] - f32->data[i]) > 1e-6 * big;
    }
    cr_expect(differs, "%s: the bf16 result equals the fp32 one", what);
}

/* Runs node nd (2 or 3 inputs) on oneDNN as given, and on the reference twice: on the inputs
 * rounded to bf16 and as they are; compares. */
static void check_bf16_node(const op_node *nd, int nin, tens *in, tens *out_shape, const char *what)
{
    tens rin[3], yd = mk(out_shape->rank, out_shape->d), yr = mk(out_shape->rank, out_shape->d),
                 yf = mk(out_shape->rank, out_shape->d);
    for (int i = 0; i < nin; i++) rin[i] = i < 2 ? rounded(&in[i]) : in[i]; /* the bias stays f32 */
    char msg[512];
    op_node ref = *nd;
    if (ref.op == OP_CONV2D || ref.op == OP_CONV_BWD_DATA || ref.op == OP_CONV_BWD_WEIGHTS)
        ref.attrs.conv.prec = OP_PREC_FP32;
    else
        ref.attrs.dense.prec = OP_PREC_FP32;
    int rc = run(OP_BACKEND_ONEDNN, nd, nin, in, &yd, 1, msg);
    if (rc != 0) {
        cr_log_warn("%s: bf16 unavailable here: %s", what, msg);
    } else {
        cr_assert_eq(run(OP_BACKEND_REF, &ref, nin, rin, &yr, 1, msg), 0, "%s ref: %s", what, msg);
        cr_assert_eq(run(OP_BACKEND_REF, &ref, nin, in, &yf, 1, msg), 0, "%s ref: %s", what, msg);
        expect_bf16(&yd, &yr, &yf, what);
    }
    for (int i = 0; i < 2; i++) free(rin[i].data);
    free(yd.data), free(yr.data), free(yf.data);
}

Test(bf16_onednn, training_nodes_against_rounded_ref)
{
    op_node conv = conv_node(8, 3, 1, 1, 1, true);
    conv.attrs.conv.prec = OP_PREC_BF16;
    conv.op = OP_CONV2D;
    tens x = MK(2, 4, 6, 6), w = MK(8, 4, 3, 3), b = MK(8), dy = MK(2, 8, 6, 6);
    fill_real(&x, -2, 2), fill_real(&w, -1, 1), fill_real(&b, -1, 1), fill_real(&dy, -1, 1);
    check_bf16_node(&conv, 3, (tens[]){x, w, b}, &dy, "conv forward");
    op_node bwd = conv;
    bwd.op = OP_CONV_BWD_DATA;
    bwd.attrs.conv.bias = false;
    check_bf16_node(&bwd, 2, (tens[]){dy, w}, &x, "conv backward data");
    bwd.op = OP_CONV_BWD_WEIGHTS;
    check_bf16_node(&bwd, 2, (tens[]){dy, x}, &w, "conv backward weights");
    op_node dense = dense_node(10, true, OP_PREC_BF16);
    dense.op = OP_DENSE;
    tens dx = MK(3, 20), dw = MK(10, 20), db = MK(10), ddy = MK(3, 10);
    fill_real(&dx, -2, 2), fill_real(&dw, -1, 1), fill_real(&db, -1, 1), fill_real(&ddy, -1, 1);
    check_bf16_node(&dense, 3, (tens[]){dx, dw, db}, &ddy, "dense forward");
    op_node dbwd = dense;
    dbwd.op = OP_DENSE_BWD_DATA;
    dbwd.attrs.dense.bias = false;
    check_bf16_node(&dbwd, 2, (tens[]){ddy, dw}, &dx, "dense backward data");
    dbwd.op = OP_DENSE_BWD_WEIGHTS;
    check_bf16_node(&dbwd, 2, (tens[]){ddy, dx}, &dw, "dense backward weights");
    free(x.data), free(w.data), free(b.data), free(dy.data);
    free(dx.data), free(dw.data), free(db.data), free(ddy.data);
}
#endif

