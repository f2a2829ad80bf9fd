/* Reference kernels: worked examples with hand-computed results (convolution, pooling, dense,
 * softmax, concat, flatten, add, activations, losses) and fused epilogues against the unfused
 * sequence of kernels.  Optimiser steps, batch normalisation statistics and dropout masks are
 * in test_ops_ref_train.c; agreement between thread counts, error reporting and the kernel
 * table in test_ops_ref_checks.c; gradient checks in test_ops_ref_grad.c. */
#include "tests/ops_ref_util.h"

/* ---- worked examples ---- */

TestSuite(ops_ref, .fini = t_free_all);

Test(ops_ref, conv1d_lecture_example)
{
    /* input [0,1,0,1,1], filter [-1,1]: y[i] = -x[i] + x[i+1] = [1,-1,1,0] */
    op_attrs a = conv1d_attrs(1, 2, 1, 0, 1, 1, false);
    op_tensor x = t_from((const float[]){0, 1, 0, 1, 1}, SHAPE(1, 1, 5));
    op_tensor w = t_from((const float[]){-1, 1}, SHAPE(1, 1, 2));
    op_tensor y = t_new(SHAPE(1, 1, 4));
    kcall k = kc_make(OP_CONV1D, &a);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){1, -1, 1, 0}, 4, 0.0, "y");
}

Test(ops_ref, conv2d_stride2_pad1_example)
{
    /* x = 1..16 in a 4x4, zero-padded by 1; Sobel filter w = [1 0 -1; 2 0 -2; 1 0 -1];
     * stride 2 gives a 2x2 output ((4 + 2 - 3) / 2 + 1 = 2); bias 0.5.
     * (0,0): rows -1..1, cols -1..1:  row -1: 0;  row 0: 2*0 + 0*1 - 2*2 = -4;
     *        row 1: 1*0 + 0*5 - 1*6 = -6;                     sum -10 -> -9.5
     * (0,1): rows -1..1, cols 1..3:   row 0: 2*2 - 2*4 = -4;  row 1: 6 - 8 = -2;
     *                                                         sum  -6 -> -5.5
     * (1,0): rows 1..3, cols -1..1:   row 1: -6;  row 2: -2*10 = -20;  row 3: -14;
     *                                                         sum -40 -> -39.5
     * (1,1): rows 1..3, cols 1..3:    row 1: 6 - 8 = -2;  row 2: 20 - 24 = -4;
     *        row 3: 14 - 16 = -2;                             sum  -8 -> -7.5 */
    op_attrs a = conv_attrs(2, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, true);
    float xv[16];
    for (int i = 0; i < 16; i++)
        xv[i] = (float)(i + 1);
    op_tensor x = t_from(xv, SHAPE(1, 1, 4, 4));
    op_tensor w = t_from((const float[]){1, 0, -1, 2, 0, -2, 1, 0, -1}, SHAPE(1, 1, 3, 3));
    op_tensor b = t_from((const float[]){0.5f}, SHAPE(1));
    op_tensor y = t_new(SHAPE(1, 1, 2, 2));
    kcall k = kc_make(OP_CONV2D, &a);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_in(&k, b);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){-9.5f, -5.5f, -39.5f, -7.5f}, 4, 0.0, "y");
}

Test(ops_ref, conv_dilation_examples)
{
    /* 1-D, dilation 2, w = [1, 10]: y[i] = x[i] + 10 x[i+2] over x = 1..5 -> [31, 42, 53] */
    op_attrs a1 = conv1d_attrs(1, 2, 1, 0, 2, 1, false);
    op_tensor x1 = t_from((const float[]){1, 2, 3, 4, 5}, SHAPE(1, 1, 5));
    op_tensor w1 = t_from((const float[]){1, 10}, SHAPE(1, 1, 2));
    op_tensor y1 = t_new(SHAPE(1, 1, 3));
    kcall k1 = kc_make(OP_CONV1D, &a1);
    kc_in(&k1, x1);
    kc_in(&k1, w1);
    kc_out(&k1, y1);
    kc_ok(&k1);
    expect_values(&y1, (const float[]){31, 42, 53}, 3, 0.0, "1-D y");

    /* 2-D, dilation 2, w = [1 2; 3 4] over x = 1..16 (4x4): the taps are (i,j), (i,j+2),
     * (i+2,j), (i+2,j+2):  y00 = 1 + 2*3 + 3*9 + 4*11 = 78,  y01 = 2 + 8 + 30 + 48 = 88,
     * y10 = 5 + 14 + 39 + 60 = 118,  y11 = 6 + 16 + 42 + 64 = 128 */
    op_attrs a2 = conv_attrs(2, 1, 2, 2, 1, 1, 0, 0, 2, 2, 1, false);
    float xv[16];
    for (int i = 0; i < 16; i++)
        xv[i] = (float)(i + 1);
    op_tensor x2 = t_from(xv, SHAPE(1, 1, 4, 4));
    op_tensor w2 = t_from((const float[]){1, 2, 3, 4}, SHAPE(1, 1, 2, 2));
    op_tensor y2 = t_new(SHAPE(1, 1, 2, 2));
    kcall k2 = kc_make(OP_CONV2D, &a2);
    kc_in(&k2, x2);
    kc_in(&k2, w2);
    kc_out(&k2, y2);
    kc_ok(&k2);
    expect_values(&y2, (const float[]){78, 88, 118, 128}, 4, 0.0, "2-D y");
}

Test(ops_ref, conv_groups_example)
{
    /* 4 channels [1,2], [3,4], [5,6], [7,8]; groups 2, 2 filters of kernel 1:
     * filter 0 = [1, 10] sees channels 0,1:      y0 = c0 + 10 c1 = [31, 42]
     * filter 1 = [100, 1000] sees channels 2,3:  y1 = 100 c2 + 1000 c3 = [7500, 8600] */
    op_attrs a = conv1d_attrs(2, 1, 1, 0, 1, 2, false);
    op_tensor x = t_from((const float[]){1, 2, 3, 4, 5, 6, 7, 8}, SHAPE(1, 4, 2));
    op_tensor w = t_from((const float[]){1, 10, 100, 1000}, SHAPE(2, 2, 1));
    op_tensor y = t_new(SHAPE(1, 2, 2));
    kcall k = kc_make(OP_CONV1D, &a);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){31, 42, 7500, 8600}, 4, 0.0, "y");

    /* depthwise-style: groups 2 with 2 filters per group, 2-D 1x1 kernel on 2 channels:
     * filters 0,1 see channel 0 (values 1, 2), filters 2,3 see channel 1 (values 3, 4) */
    op_attrs a2 = conv_attrs(2, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, false);
    op_tensor x2 = t_from((const float[]){1, 2, 3, 4}, SHAPE(1, 2, 1, 2));
    op_tensor w2 = t_from((const float[]){2, -1, 10, 0.5f}, SHAPE(4, 1, 1, 1));
    op_tensor y2 = t_new(SHAPE(1, 4, 1, 2));
    kcall k2 = kc_make(OP_CONV2D, &a2);
    kc_in(&k2, x2);
    kc_in(&k2, w2);
    kc_out(&k2, y2);
    kc_ok(&k2);
    expect_values(&y2, (const float[]){2, 4, -1, -2, 30, 40, 1.5f, 2}, 8, 0.0, "depthwise y");
}

Test(ops_ref, maxpool2d_example)
{
    /* [1 3 2 4; 5 7 6 8; 9 2 1 0; 3 4 5 6], size 2: maxima of the four 2x2 blocks */
    op_attrs a = pool_attrs(2, 2, 2, 2, 2, 0, 0);
    op_tensor x = t_from((const float[]){1, 3, 2, 4, 5, 7, 6, 8, 9, 2, 1, 0, 3, 4, 5, 6},
                         SHAPE(1, 1, 4, 4));
    op_tensor y = t_new(SHAPE(1, 1, 2, 2));
    kcall k = kc_make(OP_MAXPOOL, &a);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){7, 8, 9, 6}, 4, 0.0, "y");
}

Test(ops_ref, maxpool_padding_is_never_chosen)
{
    /* all-negative input, size 2 stride 2 pad 1 on a 1x3 signal: windows [-1,0], [1,2] */
    op_attrs a = pool_attrs(1, 1, 2, 1, 2, 0, 1);
    op_tensor x = t_from((const float[]){-5, -2, -7}, SHAPE(1, 1, 3));
    op_tensor y = t_new(SHAPE(1, 1, 2));
    kcall k = kc_make(OP_MAXPOOL, &a);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){-5, -2}, 2, 0.0, "y");
}

Test(ops_ref, maxpool1d_example)
{
    op_attrs a = pool_attrs(1, 1, 2, 1, 2, 0, 0);
    op_tensor x = t_from((const float[]){1, 5, 2, 2, 9, 3, 4}, SHAPE(1, 1, 7));
    op_tensor y = t_new(SHAPE(1, 1, 3));
    kcall k = kc_make(OP_MAXPOOL, &a);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){5, 2, 9}, 3, 0.0, "y");
}

Test(ops_ref, maxpool_bwd_first_max_takes_the_gradient)
{
    /* a tie in the window [2 2; 1 2]: the first maximum in row-major order gets dy */
    op_attrs a = pool_attrs(2, 2, 2, 2, 2, 0, 0);
    op_tensor x = t_from((const float[]){2, 2, 1, 2}, SHAPE(1, 1, 2, 2));
    op_tensor dy = t_from((const float[]){3}, SHAPE(1, 1, 1, 1));
    op_tensor dx = t_new(SHAPE(1, 1, 2, 2));
    kcall k = kc_make(OP_MAXPOOL_BWD, &a);
    kc_in(&k, dy);
    kc_in(&k, x);
    kc_out(&k, dx);
    kc_ok(&k);
    expect_values(&dx, (const float[]){3, 0, 0, 0}, 4, 0.0, "dx");
}

/* maxpool_bwd with the activation backward fused (x is the activation's output) equals
 * maxpool_bwd then act_bwd, for every activation. */
Test(ops_ref, maxpool_bwd_fused_activation_equals_unfused)
{
    const op_act acts[] = {OP_ACT_RELU, OP_ACT_LEAKY_RELU, OP_ACT_SIGMOID, OP_ACT_TANH};
    static const op_kind act_op[] = {[OP_ACT_RELU] = OP_RELU, [OP_ACT_SIGMOID] = OP_SIGMOID,
                                   [OP_ACT_TANH] = OP_TANH, [OP_ACT_LEAKY_RELU] = OP_LEAKY_RELU};
    uint64_t rng = 300;
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        /* x: the activation's output over random inputs, so relu's has zeros */
        op_tensor pre = t_rand(&rng, -1, 1, SHAPE(2, 3, 6, 7)), x = t_like(&pre);
        op_attrs aa = act_attrs(acts[ai], 0.1f);
        kcall ka = kc_make(act_op[acts[ai]], &aa);
        kc_in(&ka, pre);
        kc_out(&ka, x);
        kc_ok(&ka);
        op_tensor dy = t_rand(&rng, -1, 1, SHAPE(2, 3, 3, 3)), dxp = t_like(&x), want = t_like(&x);
        op_attrs a = pool_attrs(2, 2, 2, 2, 2, 0, 0);
        kcall kp = kc_make(OP_MAXPOOL_BWD, &a);
        kc_in(&kp, dy);
        kc_in(&kp, x);
        kc_out(&kp, dxp);
        kc_ok(&kp);
        op_attrs ab = act_attrs(acts[ai], 0.1f);
        kcall kb = kc_make(OP_ACT_BWD, &ab);
        kc_in(&kb, dxp);
        kc_in(&kb, x);
        kc_out(&kb, want);
        kc_ok(&kb);
        a.pool.act = acts[ai];
        a.pool.alpha = 0.1f;
        op_tensor got = t_like(&x);
        kcall kf = kc_make(OP_MAXPOOL_BWD, &a);
        kc_in(&kf, dy);
        kc_in(&kf, x);
        kc_out(&kf, got);
        kc_ok(&kf);
        expect_close(&got, &want, 0.0, "maxpool_bwd with a fused activation backward");
    }
}

Test(ops_ref, avgpool_padding_counts_zeros)
{
    /* [1 2 3; 4 5 6; 7 8 9], size 2, stride 2, pad 1 -> 2x2 windows each divided by 4:
     * (0,0) holds only 1 -> 0.25;  (0,1) holds 2, 3 -> 1.25;  (1,0) holds 4, 7 -> 2.75;
     * (1,1) holds 5, 6, 8, 9 -> 7 */
    op_attrs a = pool_attrs(2, 2, 2, 2, 2, 1, 1);
    op_tensor x = t_from((const float[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, SHAPE(1, 1, 3, 3));
    op_tensor y = t_new(SHAPE(1, 1, 2, 2));
    kcall k = kc_make(OP_AVGPOOL, &a);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){0.25f, 1.25f, 2.75f, 7}, 4, 0.0, "y");

    /* 1-D, size 3, stride 1, pad 1 over [3, 6, 9, 12]: (0+3+6)/3, 18/3, 27/3, (9+12+0)/3 */
    op_attrs a1 = pool_attrs(1, 1, 3, 1, 1, 0, 1);
    op_tensor x1 = t_from((const float[]){3, 6, 9, 12}, SHAPE(1, 1, 4));
    op_tensor y1 = t_new(SHAPE(1, 1, 4));
    kcall k1 = kc_make(OP_AVGPOOL, &a1);
    kc_in(&k1, x1);
    kc_out(&k1, y1);
    kc_ok(&k1);
    expect_values(&y1, (const float[]){3, 6, 9, 7}, 4, 0.0, "1-D y");

    /* backward of the 2-D case: each input gets dy/4 from the one window holding it */
    op_tensor dy = t_from((const float[]){4, 8, 12, 16}, SHAPE(1, 1, 2, 2));
    op_tensor dx = t_new(SHAPE(1, 1, 3, 3));
    kcall kb = kc_make(OP_AVGPOOL_BWD, &a);
    kc_in(&kb, dy);
    kc_out(&kb, dx);
    kc_ok(&kb);
    expect_values(&dx, (const float[]){1, 2, 2, 3, 4, 4, 3, 4, 4}, 9, 0.0, "dx");
}

Test(ops_ref, global_avgpool_example)
{
    op_tensor x = t_from((const float[]){1, 2, 3, 6, -1, -2, -3, 2}, SHAPE(1, 2, 2, 2));
    op_tensor y = t_new(SHAPE(1, 2));
    kcall k = kc_make(OP_GLOBAL_AVGPOOL, NULL);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){3, -1}, 2, 0.0, "y");
}

Test(ops_ref, dense_example)
{
    /* x = [[1,2,3],[-1,0,1]], w = [[1,0,-1],[0.5,0.5,0.5]], b = [1,-2]:
     * row 0: 1 - 3 + 1 = -1,  0.5*6 - 2 = 1;   row 1: -1 - 1 + 1 = -1,  0 - 2 = -2;
     * relu: [0, 1, 0, 0] */
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.dense.units = 2;
    a.dense.bias = true;
    op_tensor x = t_from((const float[]){1, 2, 3, -1, 0, 1}, SHAPE(2, 3));
    op_tensor w = t_from((const float[]){1, 0, -1, 0.5f, 0.5f, 0.5f}, SHAPE(2, 3));
    op_tensor b = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor y = t_new(SHAPE(2, 2));
    kcall k = kc_make(OP_DENSE, &a);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_in(&k, b);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){-1, 1, -1, -2}, 4, 0.0, "y");
    k.attrs.dense.act = OP_ACT_RELU;
    kc_ok(&k);
    expect_values(&y, (const float[]){0, 1, 0, 0}, 4, 0.0, "relu y");
}

Test(ops_ref, softmax_and_concat_examples)
{
    /* softmax([1,2,3]) = e^k / (e + e^2 + e^3) = [0.09003057, 0.24472847, 0.66524096] */
    op_tensor x = t_from((const float[]){1, 2, 3}, SHAPE(1, 3));
    op_tensor y = t_new(SHAPE(1, 3));
    kcall k = kc_make(OP_SOFTMAX, NULL);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){0.09003057f, 0.24472847f, 0.66524096f}, 3, 1e-7, "y");

    /* a large logit must not overflow: softmax([1000, 0]) = [1, e^-1000 = 0] */
    op_tensor xb = t_from((const float[]){1000, 0}, SHAPE(1, 2));
    op_tensor yb = t_new(SHAPE(1, 2));
    kcall kb = kc_make(OP_SOFTMAX, NULL);
    kc_in(&kb, xb);
    kc_out(&kb, yb);
    kc_ok(&kb);
    expect_values(&yb, (const float[]){1, 0}, 2, 0.0, "stable y");

    /* concat [N=2, 1, 2] and [2, 2, 2] along axis 1 */
    op_tensor a = t_from((const float[]){1, 2, 3, 4}, SHAPE(2, 1, 2));
    op_tensor bb = t_from((const float[]){10, 20, 30, 40, 50, 60, 70, 80}, SHAPE(2, 2, 2));
    op_tensor c = t_new(SHAPE(2, 3, 2));
    kcall kc = kc_make(OP_CONCAT, NULL);
    kc_in(&kc, a);
    kc_in(&kc, bb);
    kc_out(&kc, c);
    kc_ok(&kc);
    expect_values(&c, (const float[]){1, 2, 10, 20, 30, 40, 3, 4, 50, 60, 70, 80}, 12, 0.0,
                  "concat");
}

Test(ops_ref, flatten_and_add)
{
    op_tensor x = t_from((const float[]){1, 2, 3, 4, 5, 6}, SHAPE(1, 2, 3));
    op_tensor y = t_new(SHAPE(1, 6));
    kcall k = kc_make(OP_FLATTEN, NULL);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){1, 2, 3, 4, 5, 6}, 6, 0.0, "flatten");

    op_attrs a = act_attrs(OP_ACT_RELU, 0.0f);
    op_tensor p = t_from((const float[]){1, -2, 3}, SHAPE(1, 3));
    op_tensor q = t_from((const float[]){-4, 1, 0.5f}, SHAPE(1, 3));
    op_tensor r = t_from((const float[]){2, 0, -5}, SHAPE(1, 3));
    op_tensor s = t_new(SHAPE(1, 3));
    kcall ka = kc_make(OP_ADD, &a);
    kc_in(&ka, p);
    kc_in(&ka, q);
    kc_in(&ka, r);
    kc_out(&ka, s);
    kc_ok(&ka);
    /* sums -1, -1, -1.5 -> relu 0; change r so two are positive */
    expect_values(&s, (const float[]){0, 0, 0}, 3, 0.0, "add relu");
    r.data[0] = 10;
    r.data[1] = 4;
    kc_ok(&ka);
    expect_values(&s, (const float[]){7, 3, 0}, 3, 0.0, "add relu");
}

Test(ops_ref, activations_example)
{
    op_tensor x = t_from((const float[]){-2, 0, 3}, SHAPE(1, 3));
    op_tensor y = t_new(SHAPE(1, 3));
    struct { op_kind op; op_act act; float alpha; float want[3]; } cases[] = {
        {OP_RELU, OP_ACT_RELU, 0, {0, 0, 3}},
        {OP_LEAKY_RELU, OP_ACT_LEAKY_RELU, 0.1f, {-0.2f, 0, 3}},
        {OP_SIGMOID, OP_ACT_SIGMOID, 0, {0.11920292f, 0.5f, 0.95257413f}},
        {OP_TANH, OP_ACT_TANH, 0, {-0.96402758f, 0, 0.99505475f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        op_attrs a = act_attrs(cases[i].act, cases[i].alpha);
        kcall k = kc_make(cases[i].op, &a);
        kc_in(&k, x);
        kc_out(&k, y);
        kc_ok(&k);
        expect_values(&y, cases[i].want, 3, 1e-7, "activation");
    }
}

/* ---- losses ---- */

Test(ops_ref, cross_entropy_example)
{
    /* logits [[0,0],[ln 3, 0]], labels [1, 0]:
     * row 0: -log(1/2) = ln 2;  row 1: -log(3/4) = ln(4/3);  loss = (ln 2 + ln 4/3) / 2
     * dlogits = (softmax - onehot) / 2 = [[0.25, -0.25], [-0.125, 0.125]] */
    op_tensor x = t_from((const float[]){0, 0, (float)log(3.0), 0}, SHAPE(2, 2));
    op_tensor labels = t_from((const float[]){1, 0}, SHAPE(2, 1));
    op_tensor loss = scalar(), dx = t_new(SHAPE(2, 2));
    kcall k = kc_make(OP_XENT_LOSS, NULL);
    kc_in(&k, x);
    kc_in(&k, labels);
    kc_out(&k, loss);
    kc_out(&k, dx);
    kc_ok(&k);
    float want = (float)((log(2.0) + log(4.0 / 3.0)) / 2.0);
    expect_values(&loss, &want, 1, 1e-7, "loss");
    expect_values(&dx, (const float[]){0.25f, -0.25f, -0.125f, 0.125f}, 4, 1e-7, "dlogits");

    /* the loss alone (no gradient output) */
    kcall k1 = kc_make(OP_XENT_LOSS, NULL);
    kc_in(&k1, x);
    kc_in(&k1, labels);
    kc_out(&k1, loss);
    kc_ok(&k1);
    expect_values(&loss, &want, 1, 1e-7, "loss alone");
}

Test(ops_ref, mse_example)
{
    /* pred [1, 2, 3, 4], target [0, 2, 5, 4]: diffs 1, 0, -2, 0 -> loss 5/4;
     * dpred = 2 * diff / 4 = [0.5, 0, -1, 0] */
    op_tensor p = t_from((const float[]){1, 2, 3, 4}, SHAPE(2, 2));
    op_tensor t = t_from((const float[]){0, 2, 5, 4}, SHAPE(2, 2));
    op_tensor loss = scalar(), dp = t_new(SHAPE(2, 2));
    kcall k = kc_make(OP_MSE_LOSS, NULL);
    kc_in(&k, p);
    kc_in(&k, t);
    kc_out(&k, loss);
    kc_out(&k, dp);
    kc_ok(&k);
    expect_values(&loss, (const float[]){1.25f}, 1, 0.0, "loss");
    expect_values(&dp, (const float[]){0.5f, 0, -1, 0}, 4, 0.0, "dpred");
}

/* ---- fused epilogues equal the unfused sequence ---- */

static void check_fused_conv(int sdims, op_act act, bool residual, bool pool, int64_t psize,
                             int64_t pstride, int64_t ppad, uint64_t seed)
{
    uint64_t rng = seed;
    int64_t n = 2, c = 3, h = sdims == 2 ? 9 : 1, w = 8, f = 4;
    op_attrs a = sdims == 2 ? conv_attrs(2, f, 3, 3, 1, 1, 1, 1, 1, 1, 1, true)
                            : conv1d_attrs(f, 3, 1, 1, 1, 1, true);
    op_tensor x = sdims == 2 ? t_rand(&rng, -1, 1, SHAPE(n, c, h, w))
                             : t_rand(&rng, -1, 1, SHAPE(n, c, w));
    op_tensor wt = sdims == 2 ? t_rand(&rng, -1, 1, SHAPE(f, c, 3, 3))
                              : t_rand(&rng, -1, 1, SHAPE(f, c, 3));
    op_tensor b = t_rand(&rng, -1, 1, SHAPE(f));
    /* conv output keeps the spatial size (kernel 3, pad 1) */
    op_tensor conv_out = sdims == 2 ? t_new(SHAPE(n, f, h, w)) : t_new(SHAPE(n, f, w));
    op_tensor r = t_rand(&rng, -1, 1, conv_out.d, conv_out.rank);

    /* unfused: conv(+bias) -> add residual -> activation -> maxpool */
    kcall k = kc_make(sdims == 2 ? OP_CONV2D : OP_CONV1D, &a);
    kc_in(&k, x);
    kc_in(&k, wt);
    kc_in(&k, b);
    kc_out(&k, conv_out);
    kc_ok(&k);
    op_tensor cur = conv_out;
    if (residual) {
        op_attrs none = act_attrs(OP_ACT_NONE, 0);
        op_tensor sum = t_like(&cur);
        kcall ka = kc_make(OP_ADD, &none);
        kc_in(&ka, cur);
        kc_in(&ka, r);
        kc_out(&ka, sum);
        kc_ok(&ka);
        cur = sum;
    }
    if (act != OP_ACT_NONE) {
        static const op_kind act_op[] = {[OP_ACT_RELU] = OP_RELU, [OP_ACT_SIGMOID] = OP_SIGMOID,
                                       [OP_ACT_TANH] = OP_TANH,
                                       [OP_ACT_LEAKY_RELU] = OP_LEAKY_RELU};
        op_attrs aa = act_attrs(act, 0.05f);
        op_tensor out = t_like(&cur);
        kcall kact = kc_make(act_op[act], &aa);
        kc_in(&kact, cur);
        kc_out(&kact, out);
        kc_ok(&kact);
        cur = out;
    }
    op_tensor prepool = cur;
    if (pool) {
        int64_t ph = sdims == 2 ? (h + 2 * ppad - psize) / pstride + 1 : 1;
        int64_t pw = (w + 2 * ppad - psize) / pstride + 1;
        op_attrs pa = sdims == 2 ? pool_attrs(2, psize, psize, pstride, pstride, ppad, ppad)
                                 : pool_attrs(1, 1, psize, 1, pstride, 0, ppad);
        op_tensor out = sdims == 2 ? t_new(SHAPE(n, f, ph, pw)) : t_new(SHAPE(n, f, pw));
        kcall kp = kc_make(OP_MAXPOOL, &pa);
        kc_in(&kp, cur);
        kc_out(&kp, out);
        kc_ok(&kp);
        cur = out;
    }

    /* fused */
    op_attrs fa = a;
    fa.conv.residual = residual;
    fa.conv.act = act;
    fa.conv.alpha = 0.05f;
    fa.conv.pool = pool;
    if (pool) {
        int i0 = sdims == 2 ? 0 : 1;
        fa.conv.pool_size[0] = fa.conv.pool_stride[0] = 1;
        fa.conv.pool_pad[0] = 0;
        for (int i = i0; i < 2; i++) {
            fa.conv.pool_size[i] = psize;
            fa.conv.pool_stride[i] = pstride;
            fa.conv.pool_pad[i] = ppad;
        }
    }
    op_tensor fused = t_like(&cur);
    kcall kf = kc_make(sdims == 2 ? OP_CONV2D : OP_CONV1D, &fa);
    kc_in(&kf, x);
    kc_in(&kf, wt);
    kc_in(&kf, b);
    if (residual)
        kc_in(&kf, r);
    kc_out(&kf, fused);
    kc_ok(&kf);
    expect_close(&fused, &cur, 1e-6, "fused conv");
    if (!pool)
        return;
    /* the pool's input kept (training): output 0 as before the pooling, output 1 pooled */
    fa.conv.pool_keep = true;
    op_tensor kept = t_like(&prepool), pooled = t_like(&cur);
    kcall kk = kc_make(sdims == 2 ? OP_CONV2D : OP_CONV1D, &fa);
    kc_in(&kk, x);
    kc_in(&kk, wt);
    kc_in(&kk, b);
    if (residual)
        kc_in(&kk, r);
    kc_out(&kk, kept);
    kc_out(&kk, pooled);
    kc_ok(&kk);
    expect_close(&kept, &prepool, 1e-6, "fused conv, kept input");
    expect_close(&pooled, &cur, 1e-6, "fused conv, pooled with the input kept");
}

Test(ops_ref, fused_conv_epilogue_equals_unfused)
{
    const op_act acts[] = {OP_ACT_NONE, OP_ACT_RELU, OP_ACT_SIGMOID, OP_ACT_TANH,
                           OP_ACT_LEAKY_RELU};
    uint64_t seed = 100;
    for (int sd = 1; sd <= 2; sd++)
        for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++)
            for (int res = 0; res < 2; res++) {
                check_fused_conv(sd, acts[ai], res, false, 0, 0, 0, seed++);
                check_fused_conv(sd, acts[ai], res, true, 2, 2, 0, seed++);
                /* overlapping windows with padding: -inf padding is never chosen */
                check_fused_conv(sd, acts[ai], res, true, 3, 2, 1, seed++);
            }
}

Test(ops_ref, fused_dense_epilogue_equals_unfused)
{
    const op_act acts[] = {OP_ACT_NONE, OP_ACT_RELU, OP_ACT_SIGMOID, OP_ACT_TANH,
                           OP_ACT_LEAKY_RELU};
    static const op_kind act_op[] = {[OP_ACT_RELU] = OP_RELU, [OP_ACT_SIGMOID] = OP_SIGMOID,
                                   [OP_ACT_TANH] = OP_TANH,
                                   [OP_ACT_LEAKY_RELU] = OP_LEAKY_RELU};
    uint64_t rng = 200;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(3, 2, 5)), w = t_rand(&rng, -1, 1, SHAPE(7, 10));
    op_tensor b = t_rand(&rng, -1, 1, SHAPE(7));
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        for (int sm = 0; sm < 2; sm++) {
            op_attrs a;
            memset(&a, 0, sizeof a);
            a.dense.units = 7;
            a.dense.bias = true;
            op_tensor cur = t_new(SHAPE(3, 7));
            kcall k = kc_make(OP_DENSE, &a);
            kc_in(&k, x);
            kc_in(&k, w);
            kc_in(&k, b);
            kc_out(&k, cur);
            kc_ok(&k);
            if (acts[ai] != OP_ACT_NONE) {
                op_attrs aa = act_attrs(acts[ai], 0.05f);
                op_tensor out = t_like(&cur);
                kcall kact = kc_make(act_op[acts[ai]], &aa);
                kc_in(&kact, cur);
                kc_out(&kact, out);
                kc_ok(&kact);
                cur = out;
            }
            if (sm) {
                op_tensor out = t_like(&cur);
                kcall ks = kc_make(OP_SOFTMAX, NULL);
                kc_in(&ks, cur);
                kc_out(&ks, out);
                kc_ok(&ks);
                cur = out;
            }
            a.dense.act = acts[ai];
            a.dense.alpha = 0.05f;
            a.dense.softmax = sm;
            op_tensor fused = t_like(&cur);
            kcall kf = kc_make(OP_DENSE, &a);
            kc_in(&kf, x);
            kc_in(&kf, w);
            kc_in(&kf, b);
            kc_out(&kf, fused);
            kc_ok(&kf);
            expect_close(&fused, &cur, 1e-6, "fused dense");
        }
    }
}

Test(ops_ref, add_fused_activation_equals_add_then_activation)
{
    uint64_t rng = 300;
    op_tensor p = t_rand(&rng, -1, 1, SHAPE(2, 3, 4)), q = t_rand(&rng, -1, 1, SHAPE(2, 3, 4));
    op_attrs none = act_attrs(OP_ACT_NONE, 0), lr = act_attrs(OP_ACT_LEAKY_RELU, 0.2f);
    op_tensor s = t_like(&p), y = t_like(&p), fused = t_like(&p);
    kcall k1 = kc_make(OP_ADD, &none);
    kc_in(&k1, p);
    kc_in(&k1, q);
    kc_out(&k1, s);
    kc_ok(&k1);
    kcall k2 = kc_make(OP_LEAKY_RELU, &lr);
    kc_in(&k2, s);
    kc_out(&k2, y);
    kc_ok(&k2);
    kcall k3 = kc_make(OP_ADD, &lr);
    kc_in(&k3, p);
    kc_in(&k3, q);
    kc_out(&k3, fused);
    kc_ok(&k3);
    expect_close(&fused, &y, 1e-6, "fused add");
}

