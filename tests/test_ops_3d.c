/* 3-D convolution and pooling on [N, C, D, H, W]: the reference kernels against a naive
 * 7-loop formula (stride, padding, dilation, groups, bias, residual, activation), finite-
 * difference checks of both convolution backward kernels and the pool backwards, a 3-D
 * convolution and pool of depth 1 equal to the 2-D ones, the refusals (fused pooling, a
 * kernel larger than the padded volume), and the oneDNN kernels against the reference in both
 * layouts (NCDHW, NDHWC) at 1 and 2 threads. */
#include "tests/ops_ref_util.h"

#include <stdio.h>

#ifdef CNN_HAVE_ONEDNN
#include "ops/onednn/onednn.h"
#endif

#define CONV3D_OP OP_CONV3D

#define FD_EPS 1e-2
#define FD_RTOL 2e-3
#define FD_ATOL 2e-4

TestSuite(ops_3d, .fini = t_free_all);

typedef struct c3 {
    int64_t n, c, d, h, w, f;
    int64_t k[3], s[3], p[3], dl[3]; /* d, h, w */
    int64_t groups;
    bool bias, residual;
    op_act act;
} c3;

static int64_t osz(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static op_attrs c3_attrs(const c3 *cc)
{
    op_attrs a = conv_attrs(3, cc->f, cc->k[1], cc->k[2], cc->s[1], cc->s[2], cc->p[1], cc->p[2],
                            cc->dl[1], cc->dl[2], cc->groups, cc->bias);
    a.conv.kernel_d = cc->k[0];
    a.conv.stride_d = cc->s[0];
    a.conv.pad_d = cc->p[0];
    a.conv.dilation_d = cc->dl[0];
    a.conv.residual = cc->residual;
    a.conv.act = cc->act;
    a.conv.alpha = 0.1f;
    return a;
}

typedef struct c3t {
    op_tensor x, w, b, r, y;
    int64_t od, oh, ow;
} c3t;

static c3t c3_tensors(const c3 *cc, uint64_t *rng)
{
    c3t t;
    t.od = osz(cc->d, cc->k[0], cc->s[0], cc->p[0], cc->dl[0]);
    t.oh = osz(cc->h, cc->k[1], cc->s[1], cc->p[1], cc->dl[1]);
    t.ow = osz(cc->w, cc->k[2], cc->s[2], cc->p[2], cc->dl[2]);
    t.x = t_rand(rng, -1, 1, SHAPE(cc->n, cc->c, cc->d, cc->h, cc->w));
    t.w = t_rand(rng, -1, 1, SHAPE(cc->f, cc->c / cc->groups, cc->k[0], cc->k[1], cc->k[2]));
    t.b = t_rand(rng, -1, 1, SHAPE(cc->f));
    t.r = t_rand(rng, -1, 1, SHAPE(cc->n, cc->f, t.od, t.oh, t.ow));
    t.y = t_new(SHAPE(cc->n, cc->f, t.od, t.oh, t.ow));
    return t;
}

static kcall c3_fwd_call(const c3 *cc, const op_attrs *a, const c3t *t, op_tensor y)
{
    kcall k = kc_make(CONV3D_OP, a);
    kc_in(&k, t->x);
    kc_in(&k, t->w);
    if (cc->bias)
        kc_in(&k, t->b);
    if (cc->residual)
        kc_in(&k, t->r);
    kc_out(&k, y);
    return k;
}

/* The definition, one output element at a time. */
static void c3_naive(const c3 *cc, const c3t *t, float *y)
{
    int64_t cpg = cc->c / cc->groups, fpg = cc->f / cc->groups;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t f = 0; f < cc->f; f++)
            for (int64_t z = 0; z < t->od; z++)
                for (int64_t i = 0; i < t->oh; i++)
                    for (int64_t j = 0; j < t->ow; j++) {
                        double s = cc->bias ? t->b.data[f] : 0.0;
                        for (int64_t cl = 0; cl < cpg; cl++) {
                            int64_t ch = (f / fpg) * cpg + cl;
                            for (int64_t a = 0; a < cc->k[0]; a++)
                                for (int64_t b = 0; b < cc->k[1]; b++)
                                    for (int64_t e = 0; e < cc->k[2]; e++) {
                                        int64_t zd = z * cc->s[0] - cc->p[0] + a * cc->dl[0];
                                        int64_t yh = i * cc->s[1] - cc->p[1] + b * cc->dl[1];
                                        int64_t xw = j * cc->s[2] - cc->p[2] + e * cc->dl[2];
                                        if (zd < 0 || zd >= cc->d || yh < 0 || yh >= cc->h ||
                                            xw < 0 || xw >= cc->w)
                                            continue;
                                        double xv = t->x.data[(((n * cc->c + ch) * cc->d + zd) *
                                                                   cc->h + yh) * cc->w + xw];
                                        double wv = t->w.data[(((f * cpg + cl) * cc->k[0] + a) *
                                                                   cc->k[1] + b) * cc->k[2] + e];
                                        s += xv * wv;
                                    }
                        }
                        int64_t o = (((n * cc->f + f) * t->od + z) * t->oh + i) * t->ow + j;
                        float v = (float)s;
                        if (cc->residual)
                            v += t->r.data[o];
                        y[o] = op_apply_act(cc->act, 0.1f, v);
                    }
}

static const c3 cases[] = {
    /* n  c  d  h  w  f   k          s          p          dl        g  bias   res    act */
    {1, 1, 3, 3, 3, 1, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1, false, false, OP_ACT_NONE},
    {2, 3, 5, 6, 4, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true, false, OP_ACT_RELU},
    {2, 4, 7, 5, 6, 6, {3, 2, 3}, {2, 1, 2}, {1, 0, 1}, {1, 1, 1}, 2, true, true, OP_ACT_RELU},
    {1, 2, 8, 7, 7, 3, {2, 3, 3}, {1, 2, 1}, {0, 1, 2}, {2, 1, 2}, 1, false, true,
     OP_ACT_LEAKY_RELU},
    {3, 4, 4, 6, 5, 4, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, 4, true, false, OP_ACT_TANH},
    {2, 6, 6, 4, 5, 4, {3, 1, 2}, {3, 1, 1}, {2, 0, 1}, {1, 1, 2}, 2, true, true,
     OP_ACT_SIGMOID},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

Test(ops_3d, conv_matches_naive_formula)
{
    for (int ci = 0; ci < NCASES; ci++) {
        const c3 *cc = &cases[ci];
        uint64_t rng = 100 + (uint64_t)ci;
        op_attrs a = c3_attrs(cc);
        c3t t = c3_tensors(cc, &rng);
        op_tensor want = t_like(&t.y);
        c3_naive(cc, &t, want.data);
        for (int nt = 1; nt <= 2; nt++) {
            op_tensor y = t_like(&t.y);
            kcall k = c3_fwd_call(cc, &a, &t, y);
            k.nthreads = nt;
            kc_ok(&k);
            char what[64];
            snprintf(what, sizeof what, "case %d, %d threads", ci, nt);
            expect_close(&y, &want, 1e-5, what);
        }
    }
}

Test(ops_3d, conv_depth1_equals_2d)
{
    uint64_t rng = 7;
    op_attrs a2 = conv_attrs(2, 5, 3, 2, 2, 1, 1, 1, 1, 2, 1, true);
    a2.conv.residual = true;
    a2.conv.act = OP_ACT_RELU;
    op_attrs a3 = a2;
    a3.conv.sdims = 3;
    a3.conv.kernel_d = a3.conv.stride_d = a3.conv.dilation_d = 1;
    a3.conv.pad_d = 0;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(2, 3, 7, 6)), w = t_rand(&rng, -1, 1, SHAPE(5, 3, 3, 2));
    op_tensor b = t_rand(&rng, -1, 1, SHAPE(5));
    int64_t oh = osz(7, 3, 2, 1, 1), ow = osz(6, 2, 1, 1, 2);
    op_tensor r = t_rand(&rng, -1, 1, SHAPE(2, 5, oh, ow));
    op_tensor y2 = t_new(SHAPE(2, 5, oh, ow)), y3 = t_new(SHAPE(2, 5, 1, oh, ow));
    op_tensor x3 = t_from(x.data, SHAPE(2, 3, 1, 7, 6)), w3 = t_from(w.data, SHAPE(5, 3, 1, 3, 2));
    op_tensor r3 = t_from(r.data, SHAPE(2, 5, 1, oh, ow));
    kcall k2 = kc_make(OP_CONV2D, &a2), k3 = kc_make(CONV3D_OP, &a3);
    kc_in(&k2, x), kc_in(&k2, w), kc_in(&k2, b), kc_in(&k2, r), kc_out(&k2, y2);
    kc_in(&k3, x3), kc_in(&k3, w3), kc_in(&k3, b), kc_in(&k3, r3), kc_out(&k3, y3);
    kc_ok(&k2);
    kc_ok(&k3);
    expect_bitwise(&y2, &y3, "depth-1 conv3d vs conv2d");

    /* backward: the same gradients */
    op_tensor dy = t_rand(&rng, -1, 1, y2.d, y2.rank), dy3 = t_from(dy.data, y3.d, y3.rank);
    op_tensor dx2 = t_like(&x), dx3 = t_like(&x3), dw2 = t_like(&w), dw3 = t_like(&w3);
    op_tensor db2 = t_like(&b), db3 = t_like(&b);
    a2.conv.residual = a3.conv.residual = false;
    a2.conv.act = a3.conv.act = OP_ACT_NONE;
    kcall d2 = kc_make(OP_CONV_BWD_DATA, &a2), d3 = kc_make(OP_CONV_BWD_DATA, &a3);
    kc_in(&d2, dy), kc_in(&d2, w), kc_out(&d2, dx2);
    kc_in(&d3, dy3), kc_in(&d3, w3), kc_out(&d3, dx3);
    kc_ok(&d2);
    kc_ok(&d3);
    expect_bitwise(&dx2, &dx3, "depth-1 conv3d dx vs conv2d");
    kcall g2 = kc_make(OP_CONV_BWD_WEIGHTS, &a2), g3 = kc_make(OP_CONV_BWD_WEIGHTS, &a3);
    kc_in(&g2, dy), kc_in(&g2, x), kc_out(&g2, dw2), kc_out(&g2, db2);
    kc_in(&g3, dy3), kc_in(&g3, x3), kc_out(&g3, dw3), kc_out(&g3, db3);
    kc_ok(&g2);
    kc_ok(&g3);
    expect_bitwise(&dw2, &dw3, "depth-1 conv3d dw vs conv2d");
    expect_bitwise(&db2, &db3, "depth-1 conv3d db vs conv2d");
}

/* ---- gradients */

static void check_c3_grad(const c3 *cc0, uint64_t seed)
{
    c3 cc = *cc0;
    cc.residual = false; /* the backward ops see the plain convolution */
    cc.act = OP_ACT_NONE;
    uint64_t rng = seed;
    op_attrs a = c3_attrs(&cc);
    c3t t = c3_tensors(&cc, &rng);
    op_tensor dy = t_rand(&rng, -1, 1, t.y.d, t.y.rank);
    kcall fwd = c3_fwd_call(&cc, &a, &t, t.y);

    kcall bd = kc_make(OP_CONV_BWD_DATA, &a);
    op_tensor dx = t_like(&t.x);
    kc_in(&bd, dy);
    kc_in(&bd, t.w);
    kc_out(&bd, dx);
    kc_ok(&bd);

    kcall bw = kc_make(OP_CONV_BWD_WEIGHTS, &a);
    op_tensor dw = t_like(&t.w), db = t_like(&t.b);
    kc_in(&bw, dy);
    kc_in(&bw, t.x);
    kc_out(&bw, dw);
    if (cc.bias)
        kc_out(&bw, db);
    kc_ok(&bw);

    fd_objective o = {&fwd, dy.data};
    fd_check("conv3d dx", t.x.data, t_numel(&t.x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    fd_check("conv3d dw", t.w.data, t_numel(&t.w), dw.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    if (cc.bias)
        fd_check("conv3d db", t.b.data, t_numel(&t.b), db.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_3d, conv_grad_plain)
{
    check_c3_grad(&cases[1], 21);
}

Test(ops_3d, conv_grad_stride_pad_groups)
{
    check_c3_grad(&cases[2], 22);
}

Test(ops_3d, conv_grad_dilation)
{
    check_c3_grad(&cases[3], 23);
}

Test(ops_3d, conv_grad_depth_stride3)
{
    check_c3_grad(&cases[5], 24);
}

/* ---- pools */

typedef struct p3 {
    int64_t n, c, d, h, w;
    int64_t k[3], s[3], p[3];
} p3;

static op_attrs p3_attrs(const p3 *pc)
{
    op_attrs a = pool_attrs(3, pc->k[1], pc->k[2], pc->s[1], pc->s[2], pc->p[1], pc->p[2]);
    a.pool.size_d = pc->k[0];
    a.pool.stride_d = pc->s[0];
    a.pool.pad_d = pc->p[0];
    return a;
}

static void p3_out(const p3 *pc, int64_t o[3])
{
    int64_t in[3] = {pc->d, pc->h, pc->w};
    for (int i = 0; i < 3; i++)
        o[i] = (in[i] + 2 * pc->p[i] - pc->k[i]) / pc->s[i] + 1;
}

static void p3_naive(const p3 *pc, bool max, const float *x, float *y)
{
    int64_t o[3];
    p3_out(pc, o);
    for (int64_t q = 0; q < pc->n * pc->c; q++)
        for (int64_t z = 0; z < o[0]; z++)
            for (int64_t i = 0; i < o[1]; i++)
                for (int64_t j = 0; j < o[2]; j++) {
                    double s = 0.0;
                    float m = -INFINITY;
                    for (int64_t a = 0; a < pc->k[0]; a++)
                        for (int64_t b = 0; b < pc->k[1]; b++)
                            for (int64_t e = 0; e < pc->k[2]; e++) {
                                int64_t zd = z * pc->s[0] - pc->p[0] + a;
                                int64_t yh = i * pc->s[1] - pc->p[1] + b;
                                int64_t xw = j * pc->s[2] - pc->p[2] + e;
                                if (zd < 0 || zd >= pc->d || yh < 0 || yh >= pc->h || xw < 0 ||
                                    xw >= pc->w)
                                    continue;
                                float v = x[((q * pc->d + zd) * pc->h + yh) * pc->w + xw];
                                s += v;
                                if (v > m)
                                    m = v;
                            }
                    y[((q * o[0] + z) * o[1] + i) * o[2] + j] =
                        max ? m : (float)(s / (double)(pc->k[0] * pc->k[1] * pc->k[2]));
                }
}

static const p3 pcases[] = {
    {2, 3, 4, 6, 6, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}},
    {1, 2, 5, 7, 6, {3, 3, 2}, {2, 2, 1}, {1, 1, 0}},
    {2, 2, 6, 5, 5, {2, 3, 3}, {1, 2, 2}, {1, 1, 1}},
    {1, 4, 3, 4, 8, {1, 2, 3}, {1, 2, 3}, {0, 1, 1}},
};
#define NPCASES (int)(sizeof pcases / sizeof pcases[0])

Test(ops_3d, pools_match_naive_formula)
{
    for (int pi = 0; pi < NPCASES; pi++)
        for (int max = 0; max <= 1; max++) {
            const p3 *pc = &pcases[pi];
            uint64_t rng = 300 + (uint64_t)pi;
            int64_t o[3];
            p3_out(pc, o);
            op_attrs a = p3_attrs(pc);
            op_tensor x = t_rand(&rng, -1, 1, SHAPE(pc->n, pc->c, pc->d, pc->h, pc->w));
            op_tensor y = t_new(SHAPE(pc->n, pc->c, o[0], o[1], o[2])), want = t_like(&y);
            p3_naive(pc, max, x.data, want.data);
            kcall k = kc_make(max ? OP_MAXPOOL : OP_AVGPOOL, &a);
            kc_in(&k, x);
            kc_out(&k, y);
            k.nthreads = 2;
            kc_ok(&k);
            expect_close(&y, &want, 1e-6, max ? "maxpool3d" : "avgpool3d");
        }
}

static void check_p3_grad(const p3 *pc, bool max, uint64_t seed)
{
    uint64_t rng = seed;
    int64_t o[3];
    p3_out(pc, o);
    op_attrs a = p3_attrs(pc);
    op_tensor x = max ? t_distinct(&rng, -3.0, 0.05, SHAPE(pc->n, pc->c, pc->d, pc->h, pc->w))
                      : t_rand(&rng, -1, 1, SHAPE(pc->n, pc->c, pc->d, pc->h, pc->w));
    op_tensor y = t_new(SHAPE(pc->n, pc->c, o[0], o[1], o[2]));
    op_tensor dy = t_rand(&rng, -1, 1, y.d, y.rank), dx = t_like(&x);
    kcall fwd = kc_make(max ? OP_MAXPOOL : OP_AVGPOOL, &a);
    kc_in(&fwd, x);
    kc_out(&fwd, y);
    kcall bwd = kc_make(max ? OP_MAXPOOL_BWD : OP_AVGPOOL_BWD, &a);
    kc_in(&bwd, dy);
    if (max)
        kc_in(&bwd, x);
    kc_out(&bwd, dx);
    kc_ok(&bwd);
    fd_objective obj = {&fwd, dy.data};
    fd_check(max ? "maxpool3d dx" : "avgpool3d dx", x.data, t_numel(&x), dx.data, &obj, 1e-2,
             FD_RTOL, FD_ATOL);
}

Test(ops_3d, maxpool_grad)
{
    check_p3_grad(&pcases[0], true, 31);
    check_p3_grad(&pcases[1], true, 32);
    check_p3_grad(&pcases[2], true, 33);
}

Test(ops_3d, avgpool_grad)
{
    check_p3_grad(&pcases[0], false, 41);
    check_p3_grad(&pcases[1], false, 42);
    check_p3_grad(&pcases[2], false, 43);
}

Test(ops_3d, pool_depth1_equals_2d)
{
    uint64_t rng = 9;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(2, 3, 7, 6)), x3 = t_from(x.data, SHAPE(2, 3, 1, 7, 6));
    for (int max = 0; max <= 1; max++) {
        op_attrs a2 = pool_attrs(2, 3, 2, 2, 2, 1, 1), a3 = a2;
        a3.pool.sdims = 3;
        a3.pool.size_d = a3.pool.stride_d = 1;
        op_tensor y2 = t_new(SHAPE(2, 3, 4, 4)), y3 = t_new(SHAPE(2, 3, 1, 4, 4));
        kcall k2 = kc_make(max ? OP_MAXPOOL : OP_AVGPOOL, &a2), k3 = kc_make(max ? OP_MAXPOOL : OP_AVGPOOL, &a3);
        kc_in(&k2, x), kc_out(&k2, y2);
        kc_in(&k3, x3), kc_out(&k3, y3);
        kc_ok(&k2);
        kc_ok(&k3);
        expect_bitwise(&y2, &y3, "depth-1 pool vs 2-D pool");
    }
}

Test(ops_3d, global_avgpool_rank5)
{
    uint64_t rng = 5;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(2, 3, 2, 3, 4)), y = t_new(SHAPE(2, 3));
    kcall k = kc_make(OP_GLOBAL_AVGPOOL, NULL);
    kc_in(&k, x), kc_out(&k, y);
    kc_ok(&k);
    for (int p = 0; p < 6; p++) {
        double s = 0;
        for (int e = 0; e < 24; e++)
            s += x.data[p * 24 + e];
        cr_assert_float_eq(y.data[p], (float)(s / 24), 1e-6);
    }
}

/* ---- refusals */

Test(ops_3d, kernel_larger_than_padded_volume)
{
    c3 cc = {1, 2, 2, 5, 5, 3, {4, 3, 3}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1, false, false,
             OP_ACT_NONE};
    op_attrs a = c3_attrs(&cc);
    op_tensor x = t_new(SHAPE(1, 2, 2, 5, 5)), w = t_new(SHAPE(3, 2, 4, 3, 3));
    op_tensor y = t_new(SHAPE(1, 3, 1, 3, 3));
    kcall k = kc_make(CONV3D_OP, &a);
    kc_in(&k, x), kc_in(&k, w), kc_out(&k, y);
    cr_assert_eq(kc_run(&k), -1);
    cr_assert_str_eq(k.err, "conv: input [1, 2, 2, 5, 5] is smaller than the kernel");

    p3 pc = {1, 2, 2, 5, 5, {3, 2, 2}, {1, 1, 1}, {0, 0, 0}};
    op_attrs pa = p3_attrs(&pc);
    kcall kp = kc_make(OP_MAXPOOL, &pa);
    kc_in(&kp, x), kc_out(&kp, t_new(SHAPE(1, 2, 1, 4, 4)));
    cr_assert_eq(kc_run(&kp), -1);
    cr_assert_str_eq(kp.err, "maxpool: input [1, 2, 2, 5, 5] is smaller than the 3x2x2 window");
}

Test(ops_3d, fused_pool_refused_for_3d)
{
    c3 cc = cases[1];
    uint64_t rng = 3;
    op_attrs a = c3_attrs(&cc);
    a.conv.pool = true;
    a.conv.pool_size[0] = a.conv.pool_size[1] = 2;
    a.conv.pool_stride[0] = a.conv.pool_stride[1] = 2;
    c3t t = c3_tensors(&cc, &rng);
    kcall k = c3_fwd_call(&cc, &a, &t, t.y);
    cr_assert_eq(kc_run(&k), -1);
    cr_assert(strstr(k.err, "fused pooling is for 1-D and 2-D") != NULL, "%s", k.err);
}

/* ---- oneDNN against the reference */

#ifdef CNN_HAVE_ONEDNN

/* NCDHW -> NDHWC (to_cl) or back, of a [N, C, S...] tensor. */
static void reorder_cl(const op_tensor *t, const float *src, float *dst, bool to_cl)
{
    int64_t n = t->d[0], ch = t->d[1], sp = 1;
    for (int i = 2; i < t->rank; i++)
        sp *= t->d[i];
    for (int64_t b = 0; b < n; b++)
        for (int64_t s = 0; s < sp; s++)
            for (int64_t k = 0; k < ch; k++) {
                int64_t plain = (b * ch + k) * sp + s, cl = (b * sp + s) * ch + k;
                if (to_cl)
                    dst[cl] = src[plain];
                else
                    dst[plain] = src[cl];
            }
}

/* Runs k's op on oneDNN (prepare without data, then run), the activations in channels-last
 * when cl (bit i of acts: tensor i, inputs first, then outputs; those of rank >= 3 only);
 * compares every output with the reference run of k. */
static void dnn_vs_ref(kcall *k, bool cl, unsigned acts, int nthreads, const char *what)
{
    kc_ok(k); /* reference outputs */
    const op_kernel *dnn = op_onednn_kernel(k->op);
    cr_assert_not_null(dnn, "%s: no oneDNN kernel", what);
    op_node node = {.op = k->op, .attrs = k->attrs};
    snprintf(node.name, sizeof node.name, "%s", what);
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.nin = k->nin;
    c.nout = k->nout;
    c.nthreads = nthreads;
    c.batch = k->in[0].d[0];
    c.step = 1;
    for (int i = 0; i < k->nin + k->nout; i++) {
        const op_tensor *src = i < k->nin ? &k->in[i] : &k->out[i - k->nin];
        op_tensor *dst = i < k->nin ? &c.in[i] : &c.out[i - k->nin];
        *dst = *src;
        dst->data = NULL;
    }
    char err[256] = "";
    cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s: prepare: %s", what, err);
    for (int i = 0; i < k->nin + k->nout; i++) {
        const op_tensor *src = i < k->nin ? &k->in[i] : &k->out[i - k->nin];
        op_tensor *dst = i < k->nin ? &c.in[i] : &c.out[i - k->nin];
        op_tensor buf = t_like(src);
        bool act = src->rank >= 3 && (acts >> i & 1u);
        dst->layout = cl && act ? 1 : 0;
        if (i < k->nin) {
            if (dst->layout)
                reorder_cl(src, src->data, buf.data, true);
            else
                memcpy(buf.data, src->data, (size_t)t_numel(src) * sizeof(float));
        } else {
            for (int64_t e = 0; e < t_numel(src); e++)
                buf.data[e] = NAN;
        }
        dst->data = buf.data;
    }
    if (cl) { /* prepare saw plain tensors: run() rebuilds for the new layouts */
        dnn->release(c.state);
        c.state = NULL;
    }
    cr_assert_eq(dnn->run(&c, err, sizeof err), 0, "%s: run: %s", what, err);
    for (int o = 0; o < k->nout; o++) {
        op_tensor got = t_like(&k->out[o]);
        if (c.out[o].layout)
            reorder_cl(&k->out[o], c.out[o].data, got.data, false);
        else
            memcpy(got.data, c.out[o].data, (size_t)t_numel(&got) * sizeof(float));
        double mx = 0, diff = 0;
        for (int64_t e = 0; e < t_numel(&got); e++) {
            mx = fmax(mx, fabs(k->out[o].data[e]));
            double dd = fabs((double)got.data[e] - k->out[o].data[e]);
            diff = isnan(dd) ? INFINITY : fmax(diff, dd);
        }
        cr_assert(diff <= 1e-4 * fmax(mx, 1.0), "%s (%s, %d threads) output %d: max diff %g (max %g)",
                  what, cl ? "ndhwc" : "ncdhw", nthreads, o, diff, mx);
    }
    dnn->release(c.state);
}

Test(ops_3d, onednn_conv_matches_ref)
{
    for (int ci = 0; ci < NCASES; ci++)
        for (int cl = 0; cl <= 1; cl++)
            for (int nt = 1; nt <= 2; nt++) {
                const c3 *cc = &cases[ci];
                uint64_t rng = 500 + (uint64_t)ci;
                op_attrs a = c3_attrs(cc);
                c3t t = c3_tensors(cc, &rng);
                char what[64];
                snprintf(what, sizeof what, "conv3d case %d", ci);
                kcall k = c3_fwd_call(cc, &a, &t, t.y);
                unsigned xr = 1u | (cc->residual ? 1u << (k.nin - 1) : 0u);
                dnn_vs_ref(&k, cl, xr | 1u << k.nin, nt, what);

                op_attrs ab = a;
                ab.conv.residual = false;
                ab.conv.act = OP_ACT_NONE;
                op_tensor dy = t_rand(&rng, -1, 1, t.y.d, t.y.rank);
                kcall bd = kc_make(OP_CONV_BWD_DATA, &ab);
                kc_in(&bd, dy), kc_in(&bd, t.w), kc_out(&bd, t_like(&t.x));
                snprintf(what, sizeof what, "conv3d_bwd_data case %d", ci);
                dnn_vs_ref(&bd, cl, 1u | 4u, nt, what);

                kcall bw = kc_make(OP_CONV_BWD_WEIGHTS, &ab);
                kc_in(&bw, dy), kc_in(&bw, t.x), kc_out(&bw, t_like(&t.w));
                if (cc->bias)
                    kc_out(&bw, t_like(&t.b));
                snprintf(what, sizeof what, "conv3d_bwd_weights case %d", ci);
                dnn_vs_ref(&bw, cl, 1u | 2u, nt, what);
            }
}

Test(ops_3d, onednn_pools_match_ref)
{
    for (int pi = 0; pi < NPCASES; pi++)
        for (int max = 0; max <= 1; max++)
            for (int cl = 0; cl <= 1; cl++)
                for (int nt = 1; nt <= 2; nt++) {
                    const p3 *pc = &pcases[pi];
                    uint64_t rng = 700 + (uint64_t)pi;
                    int64_t o[3];
                    p3_out(pc, o);
                    op_attrs a = p3_attrs(pc);
                    op_tensor x = t_distinct(&rng, -3.0, 0.01, SHAPE(pc->n, pc->c, pc->d, pc->h, pc->w));
                    op_tensor y = t_new(SHAPE(pc->n, pc->c, o[0], o[1], o[2]));
                    char what[64];
                    snprintf(what, sizeof what, "%s3d case %d", max ? "maxpool" : "avgpool", pi);
                    kcall k = kc_make(max ? OP_MAXPOOL : OP_AVGPOOL, &a);
                    kc_in(&k, x), kc_out(&k, y);
                    dnn_vs_ref(&k, cl, ~0u, nt, what);

                    op_tensor dy = t_rand(&rng, -1, 1, y.d, y.rank);
                    kcall b = kc_make(max ? OP_MAXPOOL_BWD : OP_AVGPOOL_BWD, &a);
                    kc_in(&b, dy);
                    if (max)
                        kc_in(&b, x);
                    kc_out(&b, t_like(&x));
                    snprintf(what, sizeof what, "%s3d_bwd case %d", max ? "maxpool" : "avgpool", pi);
                    dnn_vs_ref(&b, cl, ~0u, nt, what);
                }
    /* global average pooling of a volume, and its backward */
    for (int cl = 0; cl <= 1; cl++) {
        uint64_t rng = 77;
        op_tensor x = t_rand(&rng, -1, 1, SHAPE(2, 3, 3, 4, 5)), y = t_new(SHAPE(2, 3));
        kcall k = kc_make(OP_GLOBAL_AVGPOOL, NULL);
        kc_in(&k, x), kc_out(&k, y);
        dnn_vs_ref(&k, cl, ~0u, 2, "global_avgpool rank 5");
        kcall b = kc_make(OP_GLOBAL_AVGPOOL_BWD, NULL);
        kc_in(&b, t_rand(&rng, -1, 1, SHAPE(2, 3))), kc_out(&b, t_like(&x));
        dnn_vs_ref(&b, cl, ~0u, 2, "global_avgpool_bwd rank 5");
    }
}

Test(ops_3d, onednn_refuses_fused_pool_for_3d)
{
    c3 cc = cases[1];
    uint64_t rng = 3;
    op_attrs a = c3_attrs(&cc);
    a.conv.pool = true;
    a.conv.pool_size[0] = a.conv.pool_size[1] = 2;
    a.conv.pool_stride[0] = a.conv.pool_stride[1] = 2;
    c3t t = c3_tensors(&cc, &rng);
    op_node node = {.op = CONV3D_OP, .attrs = a};
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.nin = 3;
    c.nout = 1;
    c.in[0] = t.x, c.in[1] = t.w, c.in[2] = t.b, c.out[0] = t.y;
    c.nthreads = 1;
    char err[256] = "";
    cr_assert_eq(op_onednn_kernel(CONV3D_OP)->prepare(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "fused pooling") != NULL, "%s", err);
}

#endif
