/* Reference kernels across the board: bitwise agreement between 1 and 2 threads, errors
 * reported as -1 with a message and no crash, and the kernel table (every op has a reference
 * kernel; the native and oneDNN entries; backend names). */
#include "ops/native/native.h"
#include "tests/ops_ref_util.h"

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
