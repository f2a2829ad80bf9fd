/* oneDNN's Winograd convolutions (op_conv_attrs.winograd, asked for by
 * compiler/pass_conv_algo.c) against the reference kernels, as tests/test_ops_onednn.c does
 * for direct ones (relative error 1e-4 of the tensor's largest magnitude, 1 and 2 threads, two
 * rounds of fresh inputs and weights): forward with its epilogues and with weights that change
 * every step, backward data and backward weights with the bias gradient.  On an AVX-512 CPU
 * oneDNN must really run them by Winograd; a call it has no Winograd kernel for (stride 2)
 * runs directly and still agrees. */
#include "tests/onednn_util.h"
#include "tests/conv_test_util.h"

static const cgeom wgeoms[] = {
    {2, 2, 32, 16, 16, 32, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {2, 3, 16, 9, 11, 48, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false}, /* odd sizes */
    {2, 1, 64, 8, 8, 64, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {2, 2, 32, 10, 10, 32, {3, 3}, {1, 1}, {0, 0}, {1, 1}, 1, true}, /* no padding */
};
#define NW ((int)(sizeof wgeoms / sizeof wgeoms[0]))

static tcase wcase(const cgeom *g, op_kind op, const op_conv_attrs *a)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = op;
    tc.node.attrs.conv = *a;
    int64_t oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
    int64_t ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
    tspec x = TS(F_RAND, g->n, g->c, g->h, g->w), w = TS(F_RAND, g->f, g->c, 3, 3);
    tspec y = TS(F_RAND, g->n, g->f, oh, ow);
    if (op == OP_CONV2D) {
        tc.in[tc.nin++] = x;
        tc.in[tc.nin++] = w;
        if (a->bias) tc.in[tc.nin++] = TS(F_RAND, g->f);
        if (a->residual) tc.in[tc.nin++] = y;
        if (a->pool) y = TS(F_RAND, g->n, g->f, oh / 2, ow / 2);
        tc.out[tc.nout++] = y;
    } else if (op == OP_CONV_BWD_DATA) {
        tc.in[tc.nin++] = y;
        tc.in[tc.nin++] = w;
        tc.out[tc.nout++] = x;
    } else {
        tc.in[tc.nin++] = y;
        tc.in[tc.nin++] = x;
        tc.out[tc.nout++] = w;
        if (a->bias) tc.out[tc.nout++] = TS(F_RAND, g->f);
    }
    return tc;
}

/* The implementation oneDNN chose for the case's main primitive. */
static void impl_of(const tcase *tc, char *buf, size_t n)
{
    const op_kernel *dnn = op_onednn_kernel(tc->node.op);
    op_call c;
    make_call(&c, tc, 2);
    omp_set_num_threads(2);
    char err[256] = "";
    cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s", err);
    snprintf(buf, n, "%s", op_onednn_impl_name(c.state));
    dnn->release(c.state);
}

/* Checks the case against the reference, and that it ran by Winograd when oneDNN has it. */
static void check_winograd(const tcase *tc, const char *label, bool expect_wino)
{
    check_case(tc, label);
    char impl[128];
    impl_of(tc, impl, sizeof impl);
    if (expect_wino && op_onednn_winograd(tc->node.op))
        cr_assert(strstr(impl, "wino"), "%s: oneDNN ran %s, not Winograd", label, impl);
    if (!expect_wino)
        cr_assert(!strstr(impl, "wino"), "%s: oneDNN ran %s", label, impl);
}

Test(onednn_winograd, forward_with_epilogues)
{
    for (int i = 0; i < NW; i++) {
        for (int e = 0; e < 5; e++) {
            op_conv_attrs a = conv_attrs(&wgeoms[i]);
            a.winograd = true;
            switch (e) {
            case 0: break;
            case 1: a.act = OP_ACT_RELU; break;
            case 2: a.residual = true; a.act = OP_ACT_RELU; break;
            case 3: a.act = OP_ACT_RELU; a.pool = true;
                for (int k = 0; k < 2; k++) a.pool_size[k] = a.pool_stride[k] = 2;
                break;
            default: a.weights_vary = true; a.act = OP_ACT_RELU; break;
            }
            tcase tc = wcase(&wgeoms[i], OP_CONV2D, &a);
            char label[96];
            snprintf(label, sizeof label, "winograd conv fwd geometry %d epilogue %d", i, e);
            check_winograd(&tc, label, true);
        }
    }
}

Test(onednn_winograd, backward_data_and_weights)
{
    for (int i = 0; i < NW; i++) {
        op_conv_attrs a = conv_attrs(&wgeoms[i]);
        a.winograd = a.weights_vary = true;
        char label[96];
        tcase d = wcase(&wgeoms[i], OP_CONV_BWD_DATA, &a);
        snprintf(label, sizeof label, "winograd conv bwd data geometry %d", i);
        check_winograd(&d, label, true);
        tcase w = wcase(&wgeoms[i], OP_CONV_BWD_WEIGHTS, &a);
        snprintf(label, sizeof label, "winograd conv bwd weights geometry %d", i);
        check_winograd(&w, label, true);
    }
}

/* A call oneDNN has no Winograd kernel for (stride 2) runs directly, with the same results. */
Test(onednn_winograd, falls_back_to_direct)
{
    cgeom g = wgeoms[0];
    g.s[0] = g.s[1] = 2;
    op_conv_attrs a = conv_attrs(&g);
    a.winograd = true;
    a.act = OP_ACT_RELU;
    tcase f = wcase(&g, OP_CONV2D, &a);
    check_winograd(&f, "stride-2 conv asking for Winograd", false);
    tcase d = wcase(&g, OP_CONV_BWD_DATA, &a);
    check_winograd(&d, "stride-2 conv bwd data asking for Winograd", false);
    tcase w = wcase(&g, OP_CONV_BWD_WEIGHTS, &a);
    check_winograd(&w, "stride-2 conv bwd weights asking for Winograd", false);
}
