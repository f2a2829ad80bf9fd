/* Gradient checks for the reference kernels: every backward op, and the losses' gradients,
 * against central finite differences of the forward kernel.  The objective is
 * L = sum(y * G) for a random G, so the analytic gradient is the backward op run with dy = G.
 * Shapes are small and odd; strides, padding, dilation and groups are all exercised. */
#include "tests/ops_ref_util.h"

/* Step and tolerance: linear ops are exact up to float rounding of the outputs, smooth ones
 * have an O(eps^2) truncation error; a wrong sign, a missing term or a wrong stride gives
 * errors of order one. */
#define FD_EPS 1e-2
#define FD_RTOL 2e-3
#define FD_ATOL 2e-4

/* ---- convolution ---- */

typedef struct conv_case {
    int sdims;
    int64_t n, c, h, w, f;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
    bool bias;
} conv_case;

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static void check_conv_grad(const conv_case *cc, uint64_t seed)
{
    uint64_t rng = seed;
    op_attrs a = conv_attrs(cc->sdims, cc->f, cc->kh, cc->kw, cc->sh, cc->sw, cc->ph, cc->pw,
                            cc->dh, cc->dw, cc->groups, cc->bias);
    int64_t oh = out_size(cc->h, cc->kh, cc->sh, cc->ph, cc->dh);
    int64_t ow = out_size(cc->w, cc->kw, cc->sw, cc->pw, cc->dw);
    op_tensor x, w, y, dy;
    int64_t cpg = cc->c / cc->groups;
    if (cc->sdims == 2) {
        x = t_rand(&rng, -1, 1, SHAPE(cc->n, cc->c, cc->h, cc->w));
        w = t_rand(&rng, -1, 1, SHAPE(cc->f, cpg, cc->kh, cc->kw));
        y = t_new(SHAPE(cc->n, cc->f, oh, ow));
    } else {
        x = t_rand(&rng, -1, 1, SHAPE(cc->n, cc->c, cc->w));
        w = t_rand(&rng, -1, 1, SHAPE(cc->f, cpg, cc->kw));
        y = t_new(SHAPE(cc->n, cc->f, ow));
    }
    op_tensor b = t_rand(&rng, -1, 1, SHAPE(cc->f));
    dy = t_rand(&rng, -1, 1, y.d, y.rank);

    kcall fwd = kc_make(cc->sdims == 2 ? OP_CONV2D : OP_CONV1D, &a);
    kc_in(&fwd, x);
    kc_in(&fwd, w);
    if (cc->bias)
        kc_in(&fwd, b);
    kc_out(&fwd, y);

    kcall bd = kc_make(OP_CONV_BWD_DATA, &a);
    op_tensor dx = t_like(&x);
    kc_in(&bd, dy);
    kc_in(&bd, w);
    kc_out(&bd, dx);
    kc_ok(&bd);

    kcall bw = kc_make(OP_CONV_BWD_WEIGHTS, &a);
    op_tensor dw = t_like(&w), db = t_like(&b);
    kc_in(&bw, dy);
    kc_in(&bw, x);
    kc_out(&bw, dw);
    if (cc->bias)
        kc_out(&bw, db);
    kc_ok(&bw);

    fd_objective o = {&fwd, dy.data};
    fd_check("conv dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    fd_check("conv dw", w.data, t_numel(&w), dw.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    if (cc->bias)
        fd_check("conv db", b.data, t_numel(&b), db.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}


TestSuite(ops_ref_grad, .fini = t_free_all);

Test(ops_ref_grad, conv2d_plain)
{
    conv_case cc = {2, 2, 3, 5, 6, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, true};
    check_conv_grad(&cc, 1);
}

Test(ops_ref_grad, conv2d_stride2_pad)
{
    /* 7x6 input, 3x2 kernel, stride 2, pad 1: the last input column is read by no window */
    conv_case cc = {2, 2, 3, 7, 6, 2, 3, 2, 2, 2, 1, 1, 1, 1, 1, true};
    check_conv_grad(&cc, 2);
}

Test(ops_ref_grad, conv2d_dilation2_no_bias)
{
    conv_case cc = {2, 1, 2, 7, 8, 3, 3, 3, 1, 1, 2, 1, 2, 2, 1, false};
    check_conv_grad(&cc, 3);
}

Test(ops_ref_grad, conv2d_groups2)
{
    conv_case cc = {2, 2, 4, 5, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, true};
    check_conv_grad(&cc, 4);
}

Test(ops_ref_grad, conv2d_mixed_geometry)
{
    /* stride (1,2), pad (0,1), dilation (2,1), groups 2, no bias */
    conv_case cc = {2, 3, 2, 9, 7, 4, 2, 3, 1, 2, 0, 1, 2, 1, 2, false};
    check_conv_grad(&cc, 5);
}

Test(ops_ref_grad, conv1d_stride2_pad)
{
    conv_case cc = {1, 2, 3, 1, 9, 2, 1, 3, 1, 2, 0, 1, 1, 1, 1, true};
    check_conv_grad(&cc, 6);
}

Test(ops_ref_grad, conv1d_dilation2_groups2)
{
    conv_case cc = {1, 2, 4, 1, 11, 4, 1, 3, 1, 1, 0, 2, 1, 2, 2, false};
    check_conv_grad(&cc, 7);
}

/* ---- pooling ---- */

static void check_pool_grad(bool max, int sdims, const int64_t *xd, int xr, int64_t kh,
                            int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                            uint64_t seed)
{
    uint64_t rng = seed;
    op_attrs a = pool_attrs(sdims, kh, kw, sh, sw, ph, pw);
    /* distinct values 0.1 apart: no window max changes within +-eps */
    op_tensor x = max ? t_distinct(&rng, -3.0, 0.1, xd, xr) : t_rand(&rng, -1, 1, xd, xr);
    int64_t h = xr == 4 ? xd[2] : 1, w = xd[xr - 1];
    int64_t oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    op_tensor y = xr == 4 ? t_new(SHAPE(xd[0], xd[1], oh, ow)) : t_new(SHAPE(xd[0], xd[1], ow));
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

    fd_objective o = {&fwd, dy.data};
    fd_check(max ? "maxpool dx" : "avgpool dx", x.data, t_numel(&x), dx.data, &o, FD_EPS,
             FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, maxpool2d)
{
    check_pool_grad(true, 2, SHAPE(2, 3, 6, 5), 2, 2, 2, 2, 0, 0, 11);
}

Test(ops_ref_grad, maxpool2d_overlapping_pad)
{
    check_pool_grad(true, 2, SHAPE(2, 2, 7, 6), 3, 3, 2, 2, 1, 1, 12);
}

Test(ops_ref_grad, maxpool1d)
{
    check_pool_grad(true, 1, SHAPE(2, 3, 9), 1, 3, 1, 2, 0, 1, 13);
}

Test(ops_ref_grad, avgpool2d_pad)
{
    check_pool_grad(false, 2, SHAPE(2, 2, 7, 5), 3, 3, 2, 2, 1, 1, 14);
}

Test(ops_ref_grad, avgpool2d_asymmetric)
{
    check_pool_grad(false, 2, SHAPE(1, 3, 5, 8), 2, 3, 1, 2, 0, 1, 15);
}

Test(ops_ref_grad, avgpool1d)
{
    check_pool_grad(false, 1, SHAPE(2, 2, 7), 1, 2, 1, 1, 0, 1, 16);
}

static void check_global_avgpool_grad(const int64_t *xd, int xr, uint64_t seed)
{
    uint64_t rng = seed;
    op_tensor x = t_rand(&rng, -1, 1, xd, xr), y = t_new(SHAPE(xd[0], xd[1]));
    op_tensor dy = t_rand(&rng, -1, 1, y.d, y.rank), dx = t_like(&x);
    kcall fwd = kc_make(OP_GLOBAL_AVGPOOL, NULL);
    kc_in(&fwd, x);
    kc_out(&fwd, y);
    kcall bwd = kc_make(OP_GLOBAL_AVGPOOL_BWD, NULL);
    kc_in(&bwd, dy);
    kc_out(&bwd, dx);
    kc_ok(&bwd);
    fd_objective o = {&fwd, dy.data};
    fd_check("global_avgpool dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, global_avgpool)
{
    check_global_avgpool_grad(SHAPE(2, 3, 3, 5), 21);
    check_global_avgpool_grad(SHAPE(3, 2, 7), 22);
}

/* ---- dense ---- */

static void check_dense_grad(const int64_t *xd, int xr, int64_t units, bool bias, uint64_t seed)
{
    uint64_t rng = seed;
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.dense.units = units;
    a.dense.bias = bias;
    op_tensor x = t_rand(&rng, -1, 1, xd, xr);
    int64_t f = t_numel(&x) / xd[0];
    op_tensor w = t_rand(&rng, -1, 1, SHAPE(units, f)), b = t_rand(&rng, -1, 1, SHAPE(units));
    op_tensor y = t_new(SHAPE(xd[0], units)), dy = t_rand(&rng, -1, 1, y.d, y.rank);

    kcall fwd = kc_make(OP_DENSE, &a);
    kc_in(&fwd, x);
    kc_in(&fwd, w);
    if (bias)
        kc_in(&fwd, b);
    kc_out(&fwd, y);

    op_tensor dx = t_like(&x), dw = t_like(&w), db = t_like(&b);
    kcall bd = kc_make(OP_DENSE_BWD_DATA, &a);
    kc_in(&bd, dy);
    kc_in(&bd, w);
    kc_out(&bd, dx);
    kc_ok(&bd);
    kcall bw = kc_make(OP_DENSE_BWD_WEIGHTS, &a);
    kc_in(&bw, dy);
    kc_in(&bw, x);
    kc_out(&bw, dw);
    if (bias)
        kc_out(&bw, db);
    kc_ok(&bw);

    fd_objective o = {&fwd, dy.data};
    fd_check("dense dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    fd_check("dense dw", w.data, t_numel(&w), dw.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    if (bias)
        fd_check("dense db", b.data, t_numel(&b), db.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, dense_vector)
{
    check_dense_grad(SHAPE(3, 7), 5, true, 31);
}

Test(ops_ref_grad, dense_image_input_no_bias)
{
    /* [N, C, H, W] read as [N, C*H*W] */
    check_dense_grad(SHAPE(2, 2, 3, 3), 4, false, 32);
}

/* ---- batch normalisation (training mode) ---- */

static void check_bn_grad(const int64_t *xd, int xr, uint64_t seed)
{
    uint64_t rng = seed;
    int64_t ch = xd[1];
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.bn.eps = 1e-5f;
    a.bn.momentum = 0.1f;
    a.bn.training = true;
    op_tensor x = t_rand(&rng, -2, 2, xd, xr);
    op_tensor gamma = t_rand(&rng, 0.5, 1.5, SHAPE(ch)), beta = t_rand(&rng, -1, 1, SHAPE(ch));
    op_tensor rm = t_new(SHAPE(ch)), rv = t_new(SHAPE(ch));
    op_tensor y = t_like(&x), mean = t_new(SHAPE(ch)), invstd = t_new(SHAPE(ch));
    op_tensor dy = t_rand(&rng, -1, 1, x.d, x.rank);

    kcall fwd = kc_make(OP_BATCHNORM, &a);
    kc_in(&fwd, x);
    kc_in(&fwd, gamma);
    kc_in(&fwd, beta);
    kc_in(&fwd, rm);
    kc_in(&fwd, rv);
    kc_out(&fwd, y);
    kc_out(&fwd, mean);
    kc_out(&fwd, invstd);
    kc_ok(&fwd);

    op_tensor dx = t_like(&x), dgamma = t_like(&gamma), dbeta = t_like(&beta);
    kcall bwd = kc_make(OP_BATCHNORM_BWD, &a);
    kc_in(&bwd, dy);
    kc_in(&bwd, x);
    kc_in(&bwd, gamma);
    kc_in(&bwd, mean);
    kc_in(&bwd, invstd);
    kc_out(&bwd, dx);
    kc_out(&bwd, dgamma);
    kc_out(&bwd, dbeta);
    kc_ok(&bwd);

    fd_objective o = {&fwd, dy.data};
    fd_check("batchnorm dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    fd_check("batchnorm dgamma", gamma.data, ch, dgamma.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
    fd_check("batchnorm dbeta", beta.data, ch, dbeta.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, batchnorm_image)
{
    check_bn_grad(SHAPE(3, 2, 3, 3), 41);
}

Test(ops_ref_grad, batchnorm_vector)
{
    check_bn_grad(SHAPE(7, 3), 42);
}

Test(ops_ref_grad, batchnorm_signal)
{
    check_bn_grad(SHAPE(2, 3, 5), 43);
}

/* ---- softmax, concat, activations, dropout ---- */

static void check_softmax_grad(const int64_t *xd, int xr, uint64_t seed)
{
    uint64_t rng = seed;
    op_tensor x = t_rand(&rng, -2, 2, xd, xr), y = t_like(&x);
    op_tensor dy = t_rand(&rng, -1, 1, xd, xr), dx = t_like(&x);
    kcall fwd = kc_make(OP_SOFTMAX, NULL);
    kc_in(&fwd, x);
    kc_out(&fwd, y);
    kc_ok(&fwd);
    kcall bwd = kc_make(OP_SOFTMAX_BWD, NULL);
    kc_in(&bwd, dy);
    kc_in(&bwd, y);
    kc_out(&bwd, dx);
    kc_ok(&bwd);
    fd_objective o = {&fwd, dy.data};
    fd_check("softmax dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, softmax)
{
    check_softmax_grad(SHAPE(3, 5), 51);
    /* over channels, per spatial position */
    check_softmax_grad(SHAPE(2, 4, 3, 2), 52);
}

Test(ops_ref_grad, concat)
{
    uint64_t rng = 61;
    op_tensor x[3] = {t_rand(&rng, -1, 1, SHAPE(2, 2, 3, 2)), t_rand(&rng, -1, 1, SHAPE(2, 3, 3, 2)),
                      t_rand(&rng, -1, 1, SHAPE(2, 1, 3, 2))};
    op_tensor y = t_new(SHAPE(2, 6, 3, 2)), dy = t_rand(&rng, -1, 1, SHAPE(2, 6, 3, 2));
    kcall fwd = kc_make(OP_CONCAT, NULL);
    for (int k = 0; k < 3; k++)
        kc_in(&fwd, x[k]);
    kc_out(&fwd, y);
    fd_objective o = {&fwd, dy.data};
    int64_t offset = 0;
    for (int k = 0; k < 3; k++) {
        op_attrs a;
        memset(&a, 0, sizeof a);
        a.slice.offset = offset;
        op_tensor dx = t_like(&x[k]);
        kcall bwd = kc_make(OP_CONCAT_BWD, &a);
        kc_in(&bwd, dy);
        kc_out(&bwd, dx);
        kc_ok(&bwd);
        fd_check("concat dx", x[k].data, t_numel(&x[k]), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
        offset += x[k].d[1];
    }
}

static void check_act_grad(const char *what, op_kind op, op_act act, float alpha, uint64_t seed)
{
    uint64_t rng = seed;
    op_attrs a = act_attrs(act, alpha);
    /* values 0.05 apart from -1.525: none within 2*eps of the kink at 0 */
    op_tensor x = t_distinct(&rng, -1.525, 0.05, SHAPE(3, 4, 5));
    op_tensor y = t_like(&x), dy = t_rand(&rng, -1, 1, SHAPE(3, 4, 5)), dx = t_like(&x);
    for (int64_t i = 0; i < t_numel(&x); i++)
        cr_assert(fabsf(x.data[i]) > 2 * FD_EPS);
    kcall fwd = kc_make(op, &a);
    kc_in(&fwd, x);
    kc_out(&fwd, y);
    kc_ok(&fwd);
    kcall bwd = kc_make(OP_ACT_BWD, &a);
    kc_in(&bwd, dy);
    kc_in(&bwd, y);
    kc_out(&bwd, dx);
    kc_ok(&bwd);
    fd_objective o = {&fwd, dy.data};
    fd_check(what, x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL,
             FD_ATOL);
}

Test(ops_ref_grad, act_bwd_each_activation)
{
    check_act_grad("relu dx", OP_RELU, OP_ACT_RELU, 0.0f, 71);
    check_act_grad("sigmoid dx", OP_SIGMOID, OP_ACT_SIGMOID, 0.0f, 72);
    check_act_grad("tanh dx", OP_TANH, OP_ACT_TANH, 0.0f, 73);
    check_act_grad("leaky_relu dx", OP_LEAKY_RELU, OP_ACT_LEAKY_RELU, 0.1f, 74);
}

Test(ops_ref_grad, dropout)
{
    uint64_t rng = 81;
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.dropout.p = 0.4f;
    a.dropout.training = true;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(3, 4, 5)), y = t_like(&x), mask = t_like(&x);
    op_tensor dy = t_rand(&rng, -1, 1, SHAPE(3, 4, 5)), dx = t_like(&x);
    kcall fwd = kc_make(OP_DROPOUT, &a);
    fwd.seed = 12345;
    kc_in(&fwd, x);
    kc_out(&fwd, y);
    kc_out(&fwd, mask);
    kc_ok(&fwd);
    kcall bwd = kc_make(OP_DROPOUT_BWD, &a);
    kc_in(&bwd, dy);
    kc_in(&bwd, mask);
    kc_out(&bwd, dx);
    kc_ok(&bwd);
    fd_objective o = {&fwd, dy.data};
    fd_check("dropout dx", x.data, t_numel(&x), dx.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

/* ---- losses ---- */

Test(ops_ref_grad, cross_entropy)
{
    uint64_t rng = 91;
    op_tensor x = t_rand(&rng, -3, 3, SHAPE(5, 7)), labels = t_new(SHAPE(5, 1));
    for (int i = 0; i < 5; i++)
        labels.data[i] = (float)(rng_next(&rng) % 7);
    op_tensor loss = t_new(NULL, 0), dx = t_like(&x);
    kcall k = kc_make(OP_XENT_LOSS, NULL);
    kc_in(&k, x);
    kc_in(&k, labels);
    kc_out(&k, loss);
    kc_out(&k, dx);
    kc_ok(&k);
    op_tensor an = t_copy(&dx);
    fd_objective o = {&k, NULL};
    fd_check("cross_entropy dlogits", x.data, t_numel(&x), an.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_grad, mse)
{
    uint64_t rng = 92;
    op_tensor p = t_rand(&rng, -1, 1, SHAPE(3, 2, 4)), t = t_rand(&rng, -1, 1, SHAPE(3, 2, 4));
    op_tensor loss = t_new(NULL, 0), dp = t_like(&p);
    kcall k = kc_make(OP_MSE_LOSS, NULL);
    kc_in(&k, p);
    kc_in(&k, t);
    kc_out(&k, loss);
    kc_out(&k, dp);
    kc_ok(&k);
    op_tensor an = t_copy(&dp);
    fd_objective o = {&k, NULL};
    fd_check("mse dpred", p.data, t_numel(&p), an.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}
