/* Reference kernels: worked examples with hand-computed results, fused epilogues against the
 * unfused sequence of kernels, optimiser steps against hand-computed values, batch
 * normalisation statistics, dropout masks, agreement between thread counts, error reporting
 * and the kernel table.  Gradient checks are in test_ops_ref_grad.c. */
#include "ops/native/native.h"
#include "tests/ops_ref_util.h"

static op_tensor scalar(void)
{
    return t_new(NULL, 0);
}

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

/* ---- optimisers ---- */

static op_attrs optim_attrs(float lr, float momentum, bool nesterov, float wd)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.optim.lr = lr;
    a.optim.momentum = momentum;
    a.optim.nesterov = nesterov;
    a.optim.weight_decay = wd;
    a.optim.beta1 = 0.9f;
    a.optim.beta2 = 0.999f;
    a.optim.eps = 1e-8f;
    return a;
}

Test(ops_ref, sgd_plain)
{
    /* p -= lr * grad: 1 - 0.1*0.5 = 0.95, -2 - 0.1*0.25 = -2.025 */
    op_attrs a = optim_attrs(0.1f, 0, false, 0);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.95f, -2.025f}, 2, 1e-7, "param");
}

Test(ops_ref, sgd_momentum_weight_decay)
{
    /* lr 0.1, momentum 0.9, wd 0.01, p = [1, -2], grad [0.5, 0.25] each step.
     * step 1: g = grad + 0.01 p = [0.51, 0.23]; v = g; p = [0.949, -2.023]
     * step 2: g = [0.5 + 0.00949, 0.25 - 0.02023] = [0.50949, 0.22977];
     *         v = 0.9 [0.51, 0.23] + g = [0.96849, 0.43677];
     *         p = [0.949 - 0.096849, -2.023 - 0.043677] = [0.852151, -2.066677] */
    op_attrs a = optim_attrs(0.1f, 0.9f, false, 0.01f);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    op_tensor v = t_new(SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.949f, -2.023f}, 2, 1e-6, "param after 1");
    expect_values(&v, (const float[]){0.51f, 0.23f}, 2, 1e-6, "velocity after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&v, (const float[]){0.96849f, 0.43677f}, 2, 1e-6, "velocity after 2");
    expect_values(&p, (const float[]){0.852151f, -2.066677f}, 2, 1e-6, "param after 2");
}

Test(ops_ref, sgd_nesterov)
{
    /* as above with nesterov: the step uses g + momentum * v.
     * step 1: g = [0.51, 0.23], v = g, g' = g + 0.9 v = [0.969, 0.437];
     *         p = [1 - 0.0969, -2 - 0.0437] = [0.9031, -2.0437]
     * step 2: g = [0.5 + 0.009031, 0.25 - 0.020437] = [0.509031, 0.229563];
     *         v = [0.459 + 0.509031, 0.207 + 0.229563] = [0.968031, 0.436563];
     *         g' = g + 0.9 v = [1.3802589, 0.6224697];
     *         p = [0.9031 - 0.13802589, -2.0437 - 0.06224697] = [0.76507411, -2.10594697] */
    op_attrs a = optim_attrs(0.1f, 0.9f, true, 0.01f);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    op_tensor v = t_new(SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.9031f, -2.0437f}, 2, 1e-6, "param after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&v, (const float[]){0.968031f, 0.436563f}, 2, 1e-6, "velocity after 2");
    expect_values(&p, (const float[]){0.76507411f, -2.10594697f}, 2, 1e-6, "param after 2");
}

Test(ops_ref, adam_two_steps)
{
    /* lr 0.1, betas (0.9, 0.999), eps 1e-8; p = 1; grads 0.5 then -1.
     * step 1: m = 0.05, v = 0.00025; mhat = 0.5, vhat = 0.25; p = 1 - 0.1*0.5/0.5 = 0.9
     * step 2: m = 0.045 - 0.1 = -0.055; v = 0.00024975 + 0.001 = 0.00124975;
     *         mhat = -0.055/0.19 = -0.28947368; vhat = 0.00124975/0.001999 = 0.62518759;
     *         sqrt(vhat) = 0.79068805; p = 0.9 + 0.1*0.28947368/0.79068805 = 0.93661035 */
    op_attrs a = optim_attrs(0.1f, 0, false, 0);
    op_tensor p = t_from((const float[]){1}, SHAPE(1));
    op_tensor g = t_from((const float[]){0.5f}, SHAPE(1));
    op_tensor m = t_new(SHAPE(1)), v = t_new(SHAPE(1));
    kcall k = kc_make(OP_ADAM_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, m);
    kc_in(&k, v);
    k.step = 1;
    kc_ok(&k);
    /* the betas are floats (0.9f = 0.89999998, so 1 - 0.999f = 0.00099998713): the moments
     * differ from the decimal computation by about 1.3e-5 relative; the bias-corrected
     * ratio, and so the parameter, much less */
    expect_values(&m, (const float[]){0.05f}, 1, 1e-7, "m after 1");
    expect_values(&v, (const float[]){0.00025f}, 1, 1e-8, "v after 1");
    expect_values(&p, (const float[]){0.9f}, 1, 1e-6, "param after 1");
    g.data[0] = -1.0f;
    k.step = 2;
    kc_ok(&k);
    expect_values(&m, (const float[]){-0.055f}, 1, 1e-7, "m after 2");
    expect_values(&v, (const float[]){0.00124975f}, 1, 5e-8, "v after 2");
    expect_values(&p, (const float[]){0.93661035f}, 1, 1e-6, "param after 2");
}

Test(ops_ref, adam_weight_decay)
{
    /* lr 0.01, wd 0.1 (L2: added to the gradient), p = 2, grad 0.3 twice.
     * step 1: g = 0.3 + 0.2 = 0.5; the first Adam step moves by lr: p = 1.99
     * step 2: g = 0.3 + 0.199 = 0.499; m = 0.045 + 0.0499 = 0.0949;
     *         v = 0.00024975 + 0.000249001 = 0.000498751;
     *         mhat = 0.0949/0.19 = 0.49947368; vhat = 0.000498751/0.001999 = 0.24950025;
     *         p = 1.99 - 0.01 * 0.49947368/0.49950000 = 1.98000053 */
    op_attrs a = optim_attrs(0.01f, 0, false, 0.1f);
    op_tensor p = t_from((const float[]){2}, SHAPE(1));
    op_tensor g = t_from((const float[]){0.3f}, SHAPE(1));
    op_tensor m = t_new(SHAPE(1)), v = t_new(SHAPE(1));
    kcall k = kc_make(OP_ADAM_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, m);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){1.99f}, 1, 1e-6, "param after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&p, (const float[]){1.98000053f}, 1, 1e-6, "param after 2");
}

/* ---- batch normalisation ---- */

static op_attrs bn_attrs(float eps, float momentum, bool training)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.bn.eps = eps;
    a.bn.momentum = momentum;
    a.bn.training = training;
    return a;
}

Test(ops_ref, batchnorm_inference_running_stats)
{
    /* eps 0; channel 0: rm 1, rv 4, gamma 2, beta 0.5 -> y = (x-1)/2*2 + 0.5 = x - 0.5;
     *        channel 1: rm -2, rv 0.25, gamma -1, beta 3 -> y = -(x+2)/0.5 + 3 = -2x - 1 */
    op_attrs a = bn_attrs(0.0f, 0.1f, false);
    op_tensor x = t_from((const float[]){3, -1, 0, 1, 1, 5, -2, 0.5f}, SHAPE(2, 2, 1, 2));
    op_tensor gamma = t_from((const float[]){2, -1}, SHAPE(2));
    op_tensor beta = t_from((const float[]){0.5f, 3}, SHAPE(2));
    op_tensor rm = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor rv = t_from((const float[]){4, 0.25f}, SHAPE(2));
    op_tensor y = t_like(&x);
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){2.5f, -1.5f, -1, -3, 0.5f, 4.5f, 3, -2}, 8, 1e-6, "y");
    /* the running statistics are not touched in inference */
    expect_values(&rm, (const float[]){1, -2}, 2, 0.0, "running_mean");
    expect_values(&rv, (const float[]){4, 0.25f}, 2, 0.0, "running_var");
}

Test(ops_ref, batchnorm_training_statistics_and_running_update)
{
    /* x [3, 2]: channel 0 = {1, 2, 6}: mean 3, biased var 14/3, unbiased 7;
     *           channel 1 = {0, 0, 3}: mean 1, biased var 2, unbiased 3.
     * momentum 0.1: rm = 0.9 [0.5, -1] + 0.1 [3, 1] = [0.75, -0.8];
     *               rv = 0.9 [2, 1] + 0.1 [7, 3] = [2.5, 1.2] */
    float eps = 1e-5f;
    op_attrs a = bn_attrs(eps, 0.1f, true);
    op_tensor x = t_from((const float[]){1, 0, 2, 0, 6, 3}, SHAPE(3, 2));
    op_tensor gamma = t_from((const float[]){1, 2}, SHAPE(2));
    op_tensor beta = t_from((const float[]){0, -1}, SHAPE(2));
    op_tensor rm = t_from((const float[]){0.5f, -1}, SHAPE(2));
    op_tensor rv = t_from((const float[]){2, 1}, SHAPE(2));
    op_tensor y = t_like(&x), mean = t_new(SHAPE(2)), invstd = t_new(SHAPE(2));
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_out(&k, mean);
    kc_out(&k, invstd);
    kc_ok(&k);
    double is0 = 1.0 / sqrt(14.0 / 3.0 + eps), is1 = 1.0 / sqrt(2.0 + eps);
    expect_values(&mean, (const float[]){3, 1}, 2, 1e-6, "save_mean");
    expect_values(&invstd, (const float[]){(float)is0, (float)is1}, 2, 1e-6, "save_invstd");
    expect_values(&rm, (const float[]){0.75f, -0.8f}, 2, 1e-6, "running_mean");
    expect_values(&rv, (const float[]){2.5f, 1.2f}, 2, 1e-6, "running_var");
    float want[6] = {(float)(-2 * is0), (float)(2 * (-1 * is1) - 1), (float)(-1 * is0),
                     (float)(2 * (-1 * is1) - 1), (float)(3 * is0), (float)(2 * (2 * is1) - 1)};
    expect_values(&y, want, 6, 1e-6, "y");
}

Test(ops_ref, batchnorm_training_normalises_each_channel)
{
    uint64_t rng = 400;
    op_attrs a = bn_attrs(1e-5f, 0.1f, true);
    op_tensor x = t_rand(&rng, -3, 5, SHAPE(4, 3, 5, 3));
    op_tensor gamma = t_from((const float[]){1.5f, 0.5f, 2}, SHAPE(3));
    op_tensor beta = t_from((const float[]){0.25f, -1, 3}, SHAPE(3));
    op_tensor rm = t_new(SHAPE(3)), rv = t_from((const float[]){1, 1, 1}, SHAPE(3));
    op_tensor y = t_like(&x), mean = t_new(SHAPE(3)), invstd = t_new(SHAPE(3));
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_out(&k, mean);
    kc_out(&k, invstd);
    kc_ok(&k);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0, sq = 0;
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 15; j++)
                s += y.data[(n * 3 + ch) * 15 + j];
        double mu = s / 60;
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 15; j++) {
                double d = y.data[(n * 3 + ch) * 15 + j] - mu;
                sq += d * d;
            }
        cr_assert(fabs(mu - beta.data[ch]) < 1e-5, "channel %d mean %g", ch, mu);
        cr_assert(fabs(sqrt(sq / 60) - gamma.data[ch]) < 1e-4, "channel %d std %g", ch,
                  sqrt(sq / 60));
    }
}

/* ---- dropout ---- */

static op_attrs dropout_attrs(float p, bool training)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.dropout.p = p;
    a.dropout.training = training;
    return a;
}

Test(ops_ref, dropout_mask_values_and_rate)
{
    const int64_t n = 1 << 18;
    float p = 0.3f;
    op_attrs a = dropout_attrs(p, true);
    op_tensor x = t_new(SHAPE(4, n / 4));
    for (int64_t i = 0; i < n; i++)
        x.data[i] = (float)(i % 7) - 3.0f;
    op_tensor y = t_like(&x), mask = t_like(&x);
    kcall k = kc_make(OP_DROPOUT, &a);
    k.seed = 42;
    kc_in(&k, x);
    kc_out(&k, y);
    kc_out(&k, mask);
    kc_ok(&k);
    float scale = 1.0f / (1.0f - p);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(mask.data[i] == 0.0f || mask.data[i] == scale, "mask[%lld] = %g",
                  (long long)i, (double)mask.data[i]);
        cr_assert_eq(y.data[i], x.data[i] * mask.data[i]);
        kept += mask.data[i] != 0.0f;
    }
    /* kept fraction 1-p within 5 standard deviations (sqrt(p(1-p)/n) ~ 0.0009) */
    double frac = (double)kept / (double)n;
    cr_assert(fabs(frac - (1.0 - p)) < 0.0045, "kept fraction %g, expected %g", frac, 1.0 - p);
}

Test(ops_ref, dropout_same_seed_same_mask_any_threads)
{
    op_attrs a = dropout_attrs(0.5f, true);
    uint64_t rng = 500;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(8, 1000));
    op_tensor y1 = t_like(&x), m1 = t_like(&x), y2 = t_like(&x), m2 = t_like(&x);
    op_tensor y3 = t_like(&x), m3 = t_like(&x);
    kcall k1 = kc_make(OP_DROPOUT, &a), k2, k3;
    k1.seed = 7;
    kc_in(&k1, x);
    k2 = k1;
    k3 = k1;
    kc_out(&k1, y1);
    kc_out(&k1, m1);
    kc_out(&k2, y2);
    kc_out(&k2, m2);
    kc_out(&k3, y3);
    kc_out(&k3, m3);
    k1.nthreads = 1;
    k2.nthreads = 2;
    k3.nthreads = 2;
    k3.seed = 8;
    kc_ok(&k1);
    kc_ok(&k2);
    kc_ok(&k3);
    expect_bitwise(&m1, &m2, "mask");
    expect_bitwise(&y1, &y2, "y");
    int64_t differ = 0;
    for (int64_t i = 0; i < t_numel(&x); i++)
        differ += m1.data[i] != m3.data[i];
    /* independent masks agree on half the elements: about 4000 of 8000 differ */
    cr_assert(differ > 3000 && differ < 5000, "%lld mask elements differ between seeds",
              (long long)differ);
}

Test(ops_ref, dropout_p0_and_inference)
{
    uint64_t rng = 600;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(3, 10)), y = t_like(&x), mask = t_like(&x);
    op_attrs a0 = dropout_attrs(0.0f, true);
    kcall k = kc_make(OP_DROPOUT, &a0);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_out(&k, mask);
    kc_ok(&k);
    for (int64_t i = 0; i < 30; i++) {
        cr_assert_eq(mask.data[i], 1.0f);
        cr_assert_eq(y.data[i], x.data[i]);
    }
    op_attrs ai = dropout_attrs(0.9f, false);
    op_tensor yi = t_like(&x);
    kcall ki = kc_make(OP_DROPOUT, &ai);
    kc_in(&ki, x);
    kc_out(&ki, yi);
    kc_ok(&ki);
    expect_bitwise(&yi, &x, "inference dropout");
}

/* ---- thread counts agree ---- */

/* Runs k with 1 and with 2 threads from the same inputs (inputs updated in place are
 * restored in between) and requires bitwise-equal outputs and in-place results. */
static void check_threads(kcall *k, const char *what)
{
    op_tensor in0[OP_MAX_IN], out1[OP_MAX_OUT], in1[OP_MAX_IN];
    for (int i = 0; i < k->nin; i++)
        in0[i] = t_copy(&k->in[i]);
    k->nthreads = 1;
    kc_ok(k);
    for (int i = 0; i < k->nout; i++)
        out1[i] = t_copy(&k->out[i]);
    for (int i = 0; i < k->nin; i++) {
        in1[i] = t_copy(&k->in[i]);
        memcpy(k->in[i].data, in0[i].data, (size_t)t_numel(&in0[i]) * sizeof(float));
    }
    for (int i = 0; i < k->nout; i++)
        memset(k->out[i].data, 0xff, (size_t)t_numel(&k->out[i]) * sizeof(float));
    k->nthreads = 2;
    kc_ok(k);
    for (int i = 0; i < k->nout; i++)
        expect_bitwise(&out1[i], &k->out[i], what);
    for (int i = 0; i < k->nin; i++)
        expect_bitwise(&in1[i], &k->in[i], what);
}

Test(ops_ref, threads_agree_bitwise)
{
    uint64_t rng = 700;
    /* fused conv with every epilogue stage */
    op_attrs ca = conv_attrs(2, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true);
    ca.conv.residual = true;
    ca.conv.act = OP_ACT_RELU;
    ca.conv.pool = true;
    ca.conv.pool_size[0] = ca.conv.pool_size[1] = 2;
    ca.conv.pool_stride[0] = ca.conv.pool_stride[1] = 2;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(3, 4, 8, 7)), w = t_rand(&rng, -1, 1, SHAPE(6, 2, 3, 3));
    op_tensor b = t_rand(&rng, -1, 1, SHAPE(6)), r = t_rand(&rng, -1, 1, SHAPE(3, 6, 8, 7));
    kcall k = kc_make(OP_CONV2D, &ca);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_in(&k, b);
    kc_in(&k, r);
    kc_out(&k, t_new(SHAPE(3, 6, 4, 3)));
    check_threads(&k, "conv fused");

    op_attrs cb = conv_attrs(2, 6, 3, 3, 2, 1, 1, 0, 1, 2, 2, true);
    op_tensor dy = t_rand(&rng, -1, 1, SHAPE(3, 6, 4, 3));
    k = kc_make(OP_CONV_BWD_DATA, &cb);
    kc_in(&k, dy);
    kc_in(&k, w);
    kc_out(&k, t_like(&x));
    check_threads(&k, "conv_bwd_data");
    k = kc_make(OP_CONV_BWD_WEIGHTS, &cb);
    kc_in(&k, dy);
    kc_in(&k, x);
    kc_out(&k, t_like(&w));
    kc_out(&k, t_like(&b));
    check_threads(&k, "conv_bwd_weights");

    op_attrs pa = pool_attrs(2, 3, 3, 2, 2, 1, 1);
    op_tensor py = t_rand(&rng, -1, 1, SHAPE(3, 4, 4, 4));
    k = kc_make(OP_MAXPOOL, &pa);
    kc_in(&k, x);
    kc_out(&k, t_like(&py));
    check_threads(&k, "maxpool");
    k = kc_make(OP_AVGPOOL, &pa);
    kc_in(&k, x);
    kc_out(&k, t_like(&py));
    check_threads(&k, "avgpool");
    k = kc_make(OP_MAXPOOL_BWD, &pa);
    kc_in(&k, py);
    kc_in(&k, x);
    kc_out(&k, t_like(&x));
    check_threads(&k, "maxpool_bwd");
    k = kc_make(OP_AVGPOOL_BWD, &pa);
    kc_in(&k, py);
    kc_out(&k, t_like(&x));
    check_threads(&k, "avgpool_bwd");
    k = kc_make(OP_GLOBAL_AVGPOOL, NULL);
    kc_in(&k, x);
    kc_out(&k, t_new(SHAPE(3, 4)));
    check_threads(&k, "global_avgpool");

    op_attrs da;
    memset(&da, 0, sizeof da);
    da.dense.units = 5;
    da.dense.bias = true;
    da.dense.act = OP_ACT_TANH;
    da.dense.softmax = true;
    op_tensor dw = t_rand(&rng, -1, 1, SHAPE(5, 224)), db = t_rand(&rng, -1, 1, SHAPE(5));
    op_tensor ddy = t_rand(&rng, -1, 1, SHAPE(3, 5));
    k = kc_make(OP_DENSE, &da);
    kc_in(&k, x);
    kc_in(&k, dw);
    kc_in(&k, db);
    kc_out(&k, t_new(SHAPE(3, 5)));
    check_threads(&k, "dense");
    k = kc_make(OP_DENSE_BWD_DATA, &da);
    kc_in(&k, ddy);
    kc_in(&k, dw);
    kc_out(&k, t_like(&x));
    check_threads(&k, "dense_bwd_data");
    k = kc_make(OP_DENSE_BWD_WEIGHTS, &da);
    kc_in(&k, ddy);
    kc_in(&k, x);
    kc_out(&k, t_like(&dw));
    kc_out(&k, t_like(&db));
    check_threads(&k, "dense_bwd_weights");

    op_attrs ba = bn_attrs(1e-5f, 0.1f, true);
    op_tensor g4 = t_rand(&rng, 0.5, 1.5, SHAPE(4)), b4 = t_rand(&rng, -1, 1, SHAPE(4));
    op_tensor rm = t_rand(&rng, -1, 1, SHAPE(4)), rv = t_rand(&rng, 0.5, 2, SHAPE(4));
    op_tensor sm = t_new(SHAPE(4)), si = t_new(SHAPE(4));
    k = kc_make(OP_BATCHNORM, &ba);
    kc_in(&k, x);
    kc_in(&k, g4);
    kc_in(&k, b4);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, t_like(&x));
    kc_out(&k, sm);
    kc_out(&k, si);
    check_threads(&k, "batchnorm training");
    k = kc_make(OP_BATCHNORM_BWD, &ba);
    kc_in(&k, r);
    kc_in(&k, x);
    kc_in(&k, g4);
    kc_in(&k, sm);
    kc_in(&k, si);
    kc_out(&k, t_like(&x));
    kc_out(&k, t_new(SHAPE(4)));
    kc_out(&k, t_new(SHAPE(4)));
    k.in[0] = t_rand(&rng, -1, 1, SHAPE(3, 4, 8, 7));
    check_threads(&k, "batchnorm_bwd");
    ba.bn.training = false;
    k = kc_make(OP_BATCHNORM, &ba);
    kc_in(&k, x);
    kc_in(&k, g4);
    kc_in(&k, b4);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, t_like(&x));
    check_threads(&k, "batchnorm inference");

    k = kc_make(OP_SOFTMAX, NULL);
    kc_in(&k, x);
    kc_out(&k, t_like(&x));
    check_threads(&k, "softmax");
    op_tensor sy = t_like(&x);
    kcall ks = kc_make(OP_SOFTMAX, NULL);
    kc_in(&ks, x);
    kc_out(&ks, sy);
    kc_ok(&ks);
    k = kc_make(OP_SOFTMAX_BWD, NULL);
    kc_in(&k, r);
    kc_in(&k, sy);
    kc_out(&k, t_like(&x));
    k.in[0] = t_rand(&rng, -1, 1, SHAPE(3, 4, 8, 7));
    check_threads(&k, "softmax_bwd");

    op_attrs aa = act_attrs(OP_ACT_SIGMOID, 0);
    k = kc_make(OP_SIGMOID, &aa);
    kc_in(&k, x);
    kc_out(&k, t_like(&x));
    check_threads(&k, "sigmoid");
    k = kc_make(OP_ACT_BWD, &aa);
    kc_in(&k, t_rand(&rng, -1, 1, SHAPE(3, 4, 8, 7)));
    kc_in(&k, sy);
    kc_out(&k, t_like(&x));
    check_threads(&k, "act_bwd");
    k = kc_make(OP_ADD, &aa);
    kc_in(&k, x);
    kc_in(&k, sy);
    kc_out(&k, t_like(&x));
    check_threads(&k, "add");
    k = kc_make(OP_CONCAT, NULL);
    kc_in(&k, x);
    kc_in(&k, sy);
    kc_out(&k, t_new(SHAPE(3, 8, 8, 7)));
    check_threads(&k, "concat");

    op_tensor logits = t_rand(&rng, -2, 2, SHAPE(16, 10)), labels = t_new(SHAPE(16, 1));
    for (int i = 0; i < 16; i++)
        labels.data[i] = (float)(i % 10);
    k = kc_make(OP_XENT_LOSS, NULL);
    kc_in(&k, logits);
    kc_in(&k, labels);
    kc_out(&k, scalar());
    kc_out(&k, t_like(&logits));
    check_threads(&k, "cross_entropy");

    op_attrs oa = optim_attrs(0.01f, 0.9f, true, 1e-4f);
    op_tensor prm = t_rand(&rng, -1, 1, SHAPE(1000)), grd = t_rand(&rng, -1, 1, SHAPE(1000));
    k = kc_make(OP_SGD_UPDATE, &oa);
    kc_in(&k, prm);
    kc_in(&k, grd);
    kc_in(&k, t_rand(&rng, -1, 1, SHAPE(1000)));
    check_threads(&k, "sgd_update");
    k = kc_make(OP_ADAM_UPDATE, &oa);
    k.step = 3;
    kc_in(&k, prm);
    kc_in(&k, grd);
    kc_in(&k, t_rand(&rng, -1, 1, SHAPE(1000)));
    kc_in(&k, t_rand(&rng, 0, 1, SHAPE(1000)));
    check_threads(&k, "adam_update");
}

/* ---- errors: -1 with a message, no crash ---- */

static void expect_error(kcall *k, const char *fragment)
{
    int rc = kc_run(k);
    cr_assert_eq(rc, -1, "expected an error containing \"%s\", got %d", fragment, rc);
    cr_assert(strstr(k->err, fragment) != NULL, "message \"%s\" lacks \"%s\"", k->err, fragment);
}

Test(ops_ref, error_label_out_of_range)
{
    uint64_t rng = 800;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(5, 10)), labels = t_new(SHAPE(5, 1));
    for (int i = 0; i < 5; i++)
        labels.data[i] = (float)i;
    labels.data[3] = 12;
    kcall k = kc_make(OP_XENT_LOSS, NULL);
    kc_in(&k, x);
    kc_in(&k, labels);
    kc_out(&k, scalar());
    kc_out(&k, t_like(&x));
    expect_error(&k, "label 12 out of range [0, 10) at example 3");
    labels.data[3] = -1;
    expect_error(&k, "label -1 out of range [0, 10) at example 3");
    labels.data[3] = 2.5f;
    expect_error(&k, "label 2.5 is not a class index at example 3");
    labels.data[3] = NAN;
    expect_error(&k, "out of range");
}

Test(ops_ref, error_conv_shapes)
{
    uint64_t rng = 801;
    op_attrs a = conv_attrs(2, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, false);
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(1, 3, 5, 5));
    op_tensor w = t_rand(&rng, -1, 1, SHAPE(4, 2, 3, 3));
    kcall k = kc_make(OP_CONV2D, &a);
    kc_in(&k, x);
    kc_in(&k, w);
    kc_out(&k, t_new(SHAPE(1, 4, 3, 3)));
    expect_error(&k, "does not fit input");

    /* groups that do not divide the channels */
    k.attrs.conv.groups = 2;
    expect_error(&k, "groups do not divide");

    /* a wrong output shape */
    k.attrs.conv.groups = 1;
    k.in[1] = t_rand(&rng, -1, 1, SHAPE(4, 3, 3, 3));
    k.out[0] = t_new(SHAPE(1, 4, 4, 4));
    expect_error(&k, "output is [1, 4, 4, 4], expected [1, 4, 3, 3]");

    /* bias promised but not given */
    k.out[0] = t_new(SHAPE(1, 4, 3, 3));
    k.attrs.conv.bias = true;
    expect_error(&k, "expected 3 inputs");

    /* a kernel larger than the input */
    k.attrs.conv.bias = false;
    k.attrs.conv.kernel[0] = k.attrs.conv.kernel[1] = 7;
    k.in[1] = t_rand(&rng, -1, 1, SHAPE(4, 3, 7, 7));
    expect_error(&k, "smaller than the kernel");

    /* a 1-D conv on a 2-D tensor */
    op_attrs a1 = conv1d_attrs(4, 3, 1, 0, 1, 1, false);
    kcall k1 = kc_make(OP_CONV1D, &a1);
    kc_in(&k1, x);
    kc_in(&k1, t_rand(&rng, -1, 1, SHAPE(4, 3, 3)));
    kc_out(&k1, t_new(SHAPE(1, 4, 3)));
    expect_error(&k1, "needs a rank-3 input");

    /* conv_bwd_data with a dy of the wrong shape */
    kcall kb = kc_make(OP_CONV_BWD_DATA, &a);
    kc_in(&kb, t_new(SHAPE(1, 4, 2, 3)));
    kc_in(&kb, t_rand(&rng, -1, 1, SHAPE(4, 3, 3, 3)));
    kc_out(&kb, t_like(&x));
    expect_error(&kb, "dy is [1, 4, 2, 3]");
}

Test(ops_ref, error_other_kernels)
{
    uint64_t rng = 802;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(2, 3, 4, 4));

    /* max pooling with padding as large as the window */
    op_attrs pa = pool_attrs(2, 2, 2, 2, 2, 2, 2);
    kcall kp = kc_make(OP_MAXPOOL, &pa);
    kc_in(&kp, x);
    kc_out(&kp, t_new(SHAPE(2, 3, 4, 4)));
    expect_error(&kp, "pad 2 must be smaller than size 2");

    /* batchnorm training with one value per channel */
    op_attrs ba = bn_attrs(1e-5f, 0.1f, true);
    kcall kbn = kc_make(OP_BATCHNORM, &ba);
    kc_in(&kbn, t_rand(&rng, -1, 1, SHAPE(1, 3)));
    for (int i = 0; i < 4; i++)
        kc_in(&kbn, t_rand(&rng, 0.5, 1, SHAPE(3)));
    kc_out(&kbn, t_new(SHAPE(1, 3)));
    kc_out(&kbn, t_new(SHAPE(3)));
    kc_out(&kbn, t_new(SHAPE(3)));
    expect_error(&kbn, "more than 1 value per channel");

    /* batchnorm inference with a negative running variance */
    op_attrs bi = bn_attrs(1e-5f, 0.1f, false);
    kcall kbi = kc_make(OP_BATCHNORM, &bi);
    kc_in(&kbi, t_rand(&rng, -1, 1, SHAPE(2, 3)));
    for (int i = 0; i < 3; i++)
        kc_in(&kbi, t_rand(&rng, 0.5, 1, SHAPE(3)));
    kc_in(&kbi, t_from((const float[]){1, -1, 1}, SHAPE(3)));
    kc_out(&kbi, t_new(SHAPE(2, 3)));
    expect_error(&kbi, "running_var[1]");

    /* concat with disagreeing spatial sizes */
    kcall kc = kc_make(OP_CONCAT, NULL);
    kc_in(&kc, x);
    kc_in(&kc, t_new(SHAPE(2, 1, 4, 5)));
    kc_out(&kc, t_new(SHAPE(2, 4, 4, 4)));
    expect_error(&kc, "does not fit");

    /* dense weight that does not match the features */
    op_attrs da;
    memset(&da, 0, sizeof da);
    da.dense.units = 5;
    kcall kd = kc_make(OP_DENSE, &da);
    kc_in(&kd, x);
    kc_in(&kd, t_new(SHAPE(5, 47)));
    kc_out(&kd, t_new(SHAPE(2, 5)));
    expect_error(&kd, "weight is [5, 47], expected [5, 48]");

    /* dropout with p = 1 */
    op_attrs dr = dropout_attrs(1.0f, true);
    kcall kdr = kc_make(OP_DROPOUT, &dr);
    kc_in(&kdr, x);
    kc_out(&kdr, t_like(&x));
    kc_out(&kdr, t_like(&x));
    expect_error(&kdr, "outside [0, 1)");

    /* an activation op without an activation */
    op_attrs none = act_attrs(OP_ACT_NONE, 0);
    kcall ka = kc_make(OP_RELU, &none);
    kc_in(&ka, x);
    kc_out(&ka, t_like(&x));
    expect_error(&ka, "names no activation");

    /* mse with mismatched sizes */
    kcall km = kc_make(OP_MSE_LOSS, NULL);
    kc_in(&km, x);
    kc_in(&km, t_new(SHAPE(2, 5)));
    kc_out(&km, scalar());
    expect_error(&km, "target is [2, 5]");

    /* optimisers: Adam at step 0, SGD with momentum but no velocity */
    op_attrs oa = optim_attrs(0.1f, 0.9f, false, 0);
    kcall ko = kc_make(OP_ADAM_UPDATE, &oa);
    for (int i = 0; i < 4; i++)
        kc_in(&ko, t_new(SHAPE(3)));
    ko.step = 0;
    expect_error(&ko, "step is 0");
    kcall ks = kc_make(OP_SGD_UPDATE, &oa);
    kc_in(&ks, t_new(SHAPE(3)));
    kc_in(&ks, t_new(SHAPE(3)));
    expect_error(&ks, "expected 3 inputs");
    kc_in(&ks, t_new(SHAPE(4)));
    expect_error(&ks, "velocity is [4], param is [3]");

    /* too many outputs, missing data, no node */
    kcall kf = kc_make(OP_FLATTEN, NULL);
    kc_in(&kf, x);
    kc_out(&kf, t_new(SHAPE(2, 48)));
    kc_out(&kf, t_new(SHAPE(2, 48)));
    expect_error(&kf, "expected 1 outputs, got 2");
    kf.nout = 1;
    kf.out[0].data = NULL;
    expect_error(&kf, "output 0 has no data");

    op_call c;
    memset(&c, 0, sizeof c);
    char err[128] = "";
    cr_assert_eq(op_ref_flatten(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "no node") != NULL, "message: %s", err);
}

/* ---- the kernel table ---- */

Test(ops_ref, kernel_table)
{
    for (int op = 0; op < OP_COUNT; op++) {
        const op_kernel *k = op_kernel_get((op_kind)op, OP_BACKEND_REF);
        cr_assert_not_null(k, "op %d has no reference kernel", op);
        cr_assert_not_null(k->run);
        cr_assert_eq(op_kernel_get((op_kind)op, OP_BACKEND_NATIVE), op_native_kernel((op_kind)op));
#ifdef CNN_HAVE_ONEDNN
        cr_assert_eq(op_kernel_get((op_kind)op, OP_BACKEND_ONEDNN), op_onednn_kernel((op_kind)op));
#else
        cr_assert_null(op_kernel_get((op_kind)op, OP_BACKEND_ONEDNN));
#endif
    }
    cr_assert_null(op_kernel_get(OP_COUNT, OP_BACKEND_REF));
    cr_assert_null(op_kernel_get(OP_CONV2D, OP_BACKEND_COUNT));
    cr_assert_eq(op_kernel_get(OP_CONV1D, OP_BACKEND_REF)->run, op_ref_conv);
    cr_assert_eq(op_kernel_get(OP_LEAKY_RELU, OP_BACKEND_REF)->run, op_ref_act);
    cr_assert_str_eq(op_backend_name(OP_BACKEND_REF), "ref");
    cr_assert_str_eq(op_backend_name(OP_BACKEND_NATIVE), "native");
    cr_assert_str_eq(op_backend_name(OP_BACKEND_ONEDNN), "onednn");
    cr_assert_str_eq(op_backend_name(OP_BACKEND_COUNT), "unknown");
}
