/* The native int8 convolution (ops/native/native_conv_q.c) against the int8 reference kernel
 * (ops/ref_int8.c): bit-identical outputs over input channels 1, 2, 3, 4, 16, kernels 1x1, 3x3,
 * 5x5 (and 1-D, dilation), strides 1 and 2, padding, groups, u8 and s8 inputs (quantised from
 * f32 or given as bytes), bias, relu / leaky_relu / tanh, residual, fused max pooling, f32 and
 * u8/s8 outputs, plain and channels-last tensors, odd sizes, batches 1 and 3, 1 and 2 threads,
 * at every ISA level the CPU has (the AVX-512 VNNI tile, AVX2's vpmaddwd, exact C); bad scales
 * refused with the node's name. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/native/native.h"
#include "ops/quant.h"
#include "ops/ref.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float uni(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 8) / 16777216.0f; }

typedef struct qcase {
    int64_t n, c, h, w, f, kh, kw, stride, pad, dil, groups;
    bool bias, residual, pool, pool3;  /* pool: 2x2 stride 2; pool3: 3x3 stride 2 pad 1 */
    op_act act;
    int xdt;          /* OP_DT_F32 (quantised in the kernel), OP_DT_U8, OP_DT_S8 */
    bool is_unsigned; /* f32 input quantised as u8 */
    int ydt;          /* OP_DT_F32, OP_DT_U8, OP_DT_S8 */
    int sdims;        /* 2, or 1 (h = kh = 1, rank-3 tensors) */
    int rdt;          /* the residual's: OP_DT_F32, or OP_DT_U8 / OP_DT_S8 (with its scale) */
    bool res_unsigned;
} qcase;

typedef struct buf {
    op_tensor t;
    size_t bytes;
} buf;

static buf mkbuf(int rank, const int64_t *d, int dtype)
{
    buf b = {.t = {.rank = rank, .dtype = dtype}};
    int64_t n = 1;
    for (int i = 0; i < rank; i++) b.t.d[i] = d[i], n *= d[i];
    b.bytes = (size_t)n * (dtype == OP_DT_F32 ? 4 : 1);
    b.t.data = calloc(b.bytes + 4, 1);
    cr_assert_not_null(b.t.data);
    return b;
}

static int64_t osz(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static int run(op_backend be, op_call *c, int nt, char *msg)
{
    const op_kernel *k = op_kernel_get(OP_CONV_Q, be);
    cr_assert_not_null(k);
    c->nthreads = nt;
    c->scratch = NULL;
    void *scratch = NULL;
    if (k->scratch && (rnd() & 1)) { /* half the time from the caller, as the runtime does */
        size_t b = k->scratch(c);
        if (b) {
            scratch = aligned_alloc(64, (b + 63) / 64 * 64);
            c->scratch = scratch;
        }
    }
    int rc = k->run(c, msg, 512);
    free(scratch);
    return rc;
}

static int64_t ncases;

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

/* A copy of activation b (N, C, spatial...) in channels-last order (to_cl) or back to plain; the
 * layout flag set as the layout pass would: channels-last only when both orders differ. */
static buf relayout(const buf *b, bool to_cl)
{
    buf o = *b;
    o.t.data = calloc(b->bytes + 4, 1);
    cr_assert_not_null(o.t.data);
    int64_t n = b->t.d[0], c = b->t.d[1], sp = 1;
    for (int i = 2; i < b->t.rank; i++) sp *= b->t.d[i];
    size_t sz = b->t.dtype == OP_DT_F32 ? 4 : 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t j = 0; j < sp; j++) {
                size_t pl = (size_t)((i * c + ch) * sp + j), cl = (size_t)((i * sp + j) * c + ch);
                memcpy((char *)o.t.data + (to_cl ? cl : pl) * sz, (char *)b->t.data + (to_cl ? pl : cl) * sz, sz);
            }
    o.t.layout = to_cl && c > 1 && sp > 1;
    return o;
}

static void check(const qcase *q)
{
    op_node nd = {.op = OP_CONV_Q};
    snprintf(nd.name, sizeof nd.name, "conv_q_test");
    op_conv_attrs *a = &nd.attrs.conv;
    a->sdims = q->sdims, a->filters = q->f, a->groups = q->groups, a->bias = q->bias, a->residual = q->residual;
    int64_t kh = q->sdims == 1 ? 1 : q->kh, h = q->sdims == 1 ? 1 : q->h;
    a->kernel[0] = kh, a->kernel[1] = q->kw;
    for (int i = 0; i < 2; i++) a->stride[i] = q->stride, a->dilation[i] = q->dil;
    a->pad[0] = q->sdims == 1 ? 0 : q->pad, a->pad[1] = q->pad;
    if (q->sdims == 1)
        a->stride[0] = a->dilation[0] = 1;
    a->kernel_d = a->stride_d = a->dilation_d = 1;
    a->act = q->act, a->alpha = 0.125f;
    a->prec = OP_PREC_INT8;
    a->q_unsigned = q->is_unsigned;
    a->res_unsigned = q->res_unsigned;
    int64_t oh = osz(h, kh, a->stride[0], a->pad[0], a->dilation[0]), ow = osz(q->w, q->kw, q->stride, q->pad, q->dil);
    int64_t yh = oh, yw = ow;
    if (q->pool || q->pool3) {
        a->pool = true;
        int64_t s = q->pool ? 2 : 3, p = q->pool ? 0 : 1;
        a->pool_size[1] = s, a->pool_stride[1] = 2, a->pool_pad[1] = p;
        if (q->sdims == 1)
            a->pool_size[0] = a->pool_stride[0] = 1, a->pool_pad[0] = 0;
        else
            a->pool_size[0] = s, a->pool_stride[0] = 2, a->pool_pad[0] = p;
        yh = (oh + 2 * a->pool_pad[0] - a->pool_size[0]) / a->pool_stride[0] + 1;
        yw = (ow + 2 * p - s) / 2 + 1;
    }
    int64_t cpg = q->c / q->groups, per = cpg * kh * q->kw;
    buf in[8];
    int nin = 0;
    if (q->sdims == 1) {
        in[nin++] = mkbuf(3, (int64_t[]){q->n, q->c, q->w}, q->xdt);
        in[nin++] = mkbuf(3, (int64_t[]){q->f, cpg, q->kw}, OP_DT_F32);
    } else {
        in[nin++] = mkbuf(4, (int64_t[]){q->n, q->c, h, q->w}, q->xdt);
        in[nin++] = mkbuf(4, (int64_t[]){q->f, cpg, kh, q->kw}, OP_DT_F32);
    }
    int ib = nin;
    if (q->bias)
        in[nin++] = mkbuf(1, (int64_t[]){q->f}, OP_DT_F32);
    int ir = nin;
    if (q->residual)
        in[nin++] = q->sdims == 1 ? mkbuf(3, (int64_t[]){q->n, q->f, ow}, q->rdt)
                                  : mkbuf(4, (int64_t[]){q->n, q->f, oh, ow}, q->rdt);
    int iws = nin;
    in[nin++] = mkbuf(1, (int64_t[]){q->f}, OP_DT_F32);
    in[nin++] = mkbuf(1, (int64_t[]){1}, OP_DT_F32);
    if (q->ydt != OP_DT_F32)
        in[nin++] = mkbuf(1, (int64_t[]){1}, OP_DT_F32);
    bool qres = q->residual && q->rdt != OP_DT_F32;
    if (qres)
        in[nin++] = mkbuf(1, (int64_t[]){1}, OP_DT_F32);
    /* values: inputs past the int8 range on purpose (saturation), real-valued weights */
    float si = 0.03125f * uni(0.7f, 1.3f);
    int64_t nx = (int64_t)(in[0].bytes / (q->xdt == OP_DT_F32 ? 4 : 1));
    for (int64_t i = 0; i < nx; i++) {
        if (q->xdt == OP_DT_F32)
            in[0].t.data[i] = uni(q->is_unsigned ? -0.5f : -5.0f, 9.0f);
        else
            ((uint8_t *)in[0].t.data)[i] = (uint8_t)rnd();
    }
    for (int64_t o = 0; o < q->f; o++) {
        float mx = 0;
        for (int64_t i = 0; i < per; i++) {
            float v = uni(-1.0f, 1.0f);
            in[1].t.data[o * per + i] = v;
            mx = fabsf(v) > mx ? fabsf(v) : mx;
        }
        in[iws].t.data[o] = mx / 127.0f * uni(0.8f, 1.2f); /* < 1: some weights saturate */
    }
    in[iws + 1].t.data[0] = si;
    if (q->ydt != OP_DT_F32)
        in[iws + 2].t.data[0] = uni(0.5f, 2.0f);
    if (q->bias)
        for (int64_t o = 0; o < q->f; o++) in[ib].t.data[o] = uni(-2.0f, 2.0f);
    if (qres) {
        in[nin - 1].t.data[0] = uni(0.005f, 0.03f);
        for (size_t i = 0; i < in[ir].bytes; i++) ((uint8_t *)in[ir].t.data)[i] = (uint8_t)rnd();
    } else if (q->residual) {
        for (size_t i = 0; i < in[ir].bytes / 4; i++) in[ir].t.data[i] = uni(-3.0f, 3.0f);
    }
    int yrank = q->sdims == 1 ? 3 : 4;
    const int64_t *yd = q->sdims == 1 ? (int64_t[]){q->n, q->f, yw} : (int64_t[]){q->n, q->f, yh, yw};
    buf yr = mkbuf(yrank, yd, q->ydt), yn = mkbuf(yrank, yd, q->ydt);
    op_call c = {.node = &nd, .nin = nin, .nout = 1, .batch = q->n, .weights_version = 1};
    for (int i = 0; i < nin; i++) c.in[i] = in[i].t;
    c.out[0] = yr.t;
    char msg[512];
    cr_assert_eq(run(OP_BACKEND_REF, &c, 1, msg), 0, "%s", msg);
    /* channels-last copies of the activations for the native kernel's second pass */
    buf xcl = relayout(&in[0], true), rcl = q->residual ? relayout(&in[ir], true) : in[ir];
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        cr_assert_eq(op_native_force_isa((op_native_isa_level)l), 0);
        for (int nt = 1; nt <= 2; nt++) {
            bool cl = nt == 2 && (l == (int)op_native_isa_supported() || !quick());
            memset(yn.t.data, 0xa5, yn.bytes);
            c.in[0] = cl ? xcl.t : in[0].t;
            if (q->residual)
                c.in[ir] = cl ? rcl.t : in[ir].t;
            c.out[0] = yn.t;
            if (cl) {
                buf ycl = relayout(&yn, true);
                c.out[0] = ycl.t;
                cr_assert_eq(run(OP_BACKEND_NATIVE, &c, nt, msg), 0, "%s", msg);
                ycl.t.layout = 1;
                buf back = relayout(&ycl, false);
                memcpy(yn.t.data, back.t.data, yn.bytes);
                free(back.t.data);
                free(ycl.t.data);
            } else {
                cr_assert_eq(run(OP_BACKEND_NATIVE, &c, nt, msg), 0, "%s", msg);
            }
            if (memcmp(yr.t.data, yn.t.data, yr.bytes) != 0) {
                size_t i = 0;
                while (((char *)yr.t.data)[i] == ((char *)yn.t.data)[i]) i++;
                size_t e = q->ydt == OP_DT_F32 ? i / 4 : i;
                double rv = q->ydt == OP_DT_F32 ? yr.t.data[e] : ((uint8_t *)yr.t.data)[e];
                double nv = q->ydt == OP_DT_F32 ? yn.t.data[e] : ((uint8_t *)yn.t.data)[e];
                cr_assert_fail("%s level, %d threads%s, case n%lld c%lld %lldx%lld f%lld k%lldx%lld s%lld p%lld d%lld "
                               "g%lld bias%d res%d pool%d/%d act%d xdt%d u%d ydt%d sdims%d: element %zu: %.9g vs "
                               "ref %.9g",
                               op_native_conv_q_level(), nt, cl ? " channels-last" : "", (long long)q->n,
                               (long long)q->c, (long long)h, (long long)q->w, (long long)q->f, (long long)kh, (long long)q->kw, (long long)q->stride,
                               (long long)q->pad, (long long)q->dil, (long long)q->groups, q->bias, q->residual,
                               q->pool, q->pool3, (int)q->act, q->xdt, q->is_unsigned, q->ydt, q->sdims, e, nv, rv);
            }
        }
    }
    op_native_force_isa(op_native_isa_supported());
    free(xcl.t.data);
    if (q->residual)
        free(rcl.t.data);
    for (int i = 0; i < nin; i++) free(in[i].t.data);
    free(yr.t.data);
    free(yn.t.data);
    ncases++;
}


/* The first layers the kernel is for, in each input and output form. */
Test(int8_native, first_layers)
{
    static const qcase base[] = {
        /* LeNet-5's conv1 (1 channel, 5x5, pad 2, relu, 2x2 pool) and the CIFAR stems */
        {.n = 3, .c = 1, .h = 28, .w = 28, .f = 6, .kh = 5, .kw = 5, .stride = 1, .pad = 2, .bias = true, .pool = true,
         .act = OP_ACT_RELU},
        {.n = 1, .c = 3, .h = 32, .w = 32, .f = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .act = OP_ACT_RELU},
        {.n = 3, .c = 3, .h = 17, .w = 19, .f = 64, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .bias = true,
         .act = OP_ACT_RELU},
    };
    int forms[][3] = {
        {OP_DT_F32, 1, OP_DT_F32}, {OP_DT_F32, 0, OP_DT_F32}, {OP_DT_U8, 1, OP_DT_F32},
        {OP_DT_S8, 0, OP_DT_F32},  {OP_DT_F32, 1, OP_DT_U8},  {OP_DT_S8, 0, OP_DT_S8},
    };
    for (size_t b = 0; b < sizeof base / sizeof base[0]; b++)
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            qcase q = base[b];
            q.dil = 1, q.groups = 1, q.sdims = 2;
            q.xdt = forms[f][0], q.is_unsigned = forms[f][1], q.ydt = forms[f][2];
            check(&q);
        }
}

/* Every combination of the shape and epilogue options over few and more channels. */
Test(int8_native, shapes_and_epilogues)
{
    static const int64_t chans[] = {1, 2, 3, 4, 16};
    static const int64_t kern[][2] = {{3, 3}, {5, 5}, {1, 1}, {3, 5}};
    int64_t step = quick() ? 5 : 1, i = 0;
    for (size_t ci = 0; ci < 5; ci++)
        for (size_t ki = 0; ki < 4; ki++)
            for (int stride = 1; stride <= 2; stride++)
                for (int var = 0; var < 6; var++, i++) {
                    if (i % step)
                        continue;
                    qcase q = {.n = var % 2 ? 3 : 1, .c = chans[ci], .h = 9 + var, .w = 11 + 2 * var,
                               .f = var < 3 ? 5 : 10, .kh = kern[ki][0], .kw = kern[ki][1], .stride = stride,
                               .pad = var % 3, .dil = 1, .groups = 1, .sdims = 2};
                    q.bias = var != 1;
                    q.residual = var == 2 || var == 5;
                    q.pool = var == 3;
                    q.pool3 = var == 4;
                    q.act = (op_act[]){OP_ACT_RELU, OP_ACT_NONE, OP_ACT_LEAKY_RELU, OP_ACT_RELU, OP_ACT_TANH,
                                       OP_ACT_RELU}[var];
                    q.xdt = (int[]){OP_DT_F32, OP_DT_F32, OP_DT_U8, OP_DT_S8, OP_DT_F32, OP_DT_S8}[var];
                    q.is_unsigned = var == 0 || var == 2;
                    q.ydt = var == 0 ? OP_DT_U8 : var == 3 ? OP_DT_S8 : OP_DT_F32;
                    if (q.f % 2 == 0 && q.c % 2 == 0 && var == 4)
                        q.groups = 2;
                    check(&q);
                }
    cr_assert_gt(ncases, 10);
}

/* Groups (depthwise too), dilation, 1-D, wide filter counts, large strides. */
Test(int8_native, groups_dilation_1d)
{
    qcase cases[] = {
        {.n = 3, .c = 4, .h = 10, .w = 13, .f = 8, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .groups = 2, .bias = true},
        {.n = 1, .c = 6, .h = 9, .w = 9, .f = 6, .kh = 3, .kw = 3, .stride = 2, .pad = 1, .groups = 3,
         .residual = true},
        {.n = 3, .c = 5, .h = 12, .w = 7, .f = 5, .kh = 5, .kw = 5, .stride = 1, .pad = 2, .groups = 5,
         .act = OP_ACT_RELU, .pool = true},
        {.n = 1, .c = 2, .h = 13, .w = 15, .f = 3, .kh = 3, .kw = 3, .stride = 1, .pad = 2, .dil = 2, .bias = true},
        {.n = 1, .c = 3, .h = 11, .w = 40, .f = 7, .kh = 5, .kw = 7, .stride = 3, .pad = 3, .dil = 2},
        {.n = 3, .c = 1, .h = 1, .w = 37, .f = 9, .kh = 1, .kw = 5, .stride = 1, .pad = 2, .sdims = 1, .bias = true,
         .act = OP_ACT_RELU, .pool = true},
        {.n = 1, .c = 3, .h = 1, .w = 50, .f = 4, .kh = 1, .kw = 9, .stride = 2, .pad = 0, .sdims = 1,
         .residual = true},
        {.n = 3, .c = 2, .h = 8, .w = 8, .f = 33, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .bias = true,
         .act = OP_ACT_RELU},
        {.n = 1, .c = 1, .h = 6, .w = 70, .f = 12, .kh = 2, .kw = 4, .stride = 1, .pad = 0},
        {.n = 3, .c = 2, .h = 15, .w = 45, .f = 6, .kh = 3, .kw = 3, .stride = 1, .pad = 1, .bias = true,
         .residual = true, .pool = true, .act = OP_ACT_LEAKY_RELU},
        {.n = 1, .c = 3, .h = 13, .w = 13, .f = 4, .kh = 3, .kw = 3, .stride = 1, .pad = 0, .pool3 = true,
         .residual = true, .act = OP_ACT_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qcase q = cases[i];
        q.dil = q.dil ? q.dil : 1;
        q.groups = q.groups ? q.groups : 1;
        q.sdims = q.sdims ? q.sdims : 2;
        for (int form = 0; form < 2; form++) {
            q.xdt = form ? OP_DT_S8 : OP_DT_F32;
            q.is_unsigned = !form;
            q.ydt = form && !q.residual && q.act != OP_ACT_TANH ? OP_DT_U8 : OP_DT_F32;
            check(&q);
        }
    }
}

/* Every residual form of ops/quant.h: f32 or u8/s8 residual into an f32 or u8/s8 output, with
 * and without pooling, few and more channels. */
Test(int8_native, residual_forms)
{
    static const int dts[] = {OP_DT_F32, OP_DT_U8, OP_DT_S8};
    static const int64_t chans[] = {1, 3, 16};
    int i = 0;
    for (int rd = 0; rd < 3; rd++)
        for (int yd = 0; yd < 3; yd++)
            for (int pool = 0; pool < 2; pool++, i++) {
                qcase q = {.n = 1 + i % 3, .c = chans[i % 3], .h = 8 + i % 5, .w = 13 + 3 * (i % 4), .f = 3 + i % 9,
                           .kh = 3, .kw = i % 2 ? 5 : 3, .stride = 1, .pad = 1 + i % 2, .dil = 1, .groups = 1,
                           .sdims = 2, .bias = i % 3 != 0, .residual = true, .pool = pool};
                q.act = (op_act[]){OP_ACT_RELU, OP_ACT_NONE, OP_ACT_LEAKY_RELU}[i % 3];
                q.xdt = i % 2 ? OP_DT_U8 : OP_DT_F32;
                q.is_unsigned = true;
                q.rdt = dts[rd];
                q.ydt = dts[yd];
                q.res_unsigned = q.rdt == OP_DT_U8 || (q.rdt == OP_DT_F32 && i % 4 == 0);
                check(&q);
            }
}

/* Bad scales: refused with the node's name, as the reference does. */
Test(int8_native, bad_scales)
{
    op_node nd = {.op = OP_CONV_Q};
    snprintf(nd.name, sizeof nd.name, "conv2d_7");
    op_conv_attrs *a = &nd.attrs.conv;
    a->sdims = 2, a->filters = 2, a->groups = 1;
    for (int i = 0; i < 2; i++) a->kernel[i] = 3, a->stride[i] = 1, a->pad[i] = 1, a->dilation[i] = 1;
    a->kernel_d = a->stride_d = a->dilation_d = 1;
    a->prec = OP_PREC_INT8;
    float x[1 * 1 * 4 * 4] = {0}, w[2 * 9] = {0}, y[2 * 16], ws[2] = {0.1f, 0.0f}, si = 0.5f, ws3[3] = {1, 1, 1};
    op_call c = {.node = &nd, .nin = 4, .nout = 1, .batch = 1, .nthreads = 1};
    c.in[0] = (op_tensor){.data = x, .rank = 4, .d = {1, 1, 4, 4}};
    c.in[1] = (op_tensor){.data = w, .rank = 4, .d = {2, 1, 3, 3}};
    c.in[2] = (op_tensor){.data = ws, .rank = 1, .d = {2}};
    c.in[3] = (op_tensor){.data = &si, .rank = 1, .d = {1}};
    c.out[0] = (op_tensor){.data = y, .rank = 4, .d = {1, 2, 4, 4}};
    const op_kernel *k = op_kernel_get(OP_CONV_Q, OP_BACKEND_NATIVE);
    char msg[512] = "";
    cr_assert_neq(k->run(&c, msg, sizeof msg), 0);
    cr_assert(strstr(msg, "conv2d_7") && strstr(msg, "scale"), "%s", msg);
    ws[1] = NAN;
    cr_assert_neq(k->run(&c, msg, sizeof msg), 0);
    ws[1] = 0.1f, si = -1.0f;
    cr_assert_neq(k->run(&c, msg, sizeof msg), 0);
    cr_assert(strstr(msg, "conv2d_7"), "%s", msg);
    si = 0.5f;
    c.in[2] = (op_tensor){.data = ws3, .rank = 1, .d = {3}};
    cr_assert_neq(k->run(&c, msg, sizeof msg), 0);
    cr_assert(strstr(msg, "conv2d_7") && strstr(msg, "[2]"), "%s", msg);
    c.in[2] = (op_tensor){.data = ws, .rank = 1, .d = {2}};
    cr_assert_eq(k->run(&c, msg, sizeof msg), 0, "%s", msg);
    c.nin = 3; /* a scale missing */
    cr_assert_neq(k->run(&c, msg, sizeof msg), 0);
    cr_assert(strstr(msg, "conv2d_7"), "%s", msg);
}
