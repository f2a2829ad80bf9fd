/* The native Winograd F(4x4, 3x3) convolution (ops/native/native_conv_wino.c) against the
 * reference kernels, through tests/native_check_util.h (every ISA level, 1 and 2 threads,
 * bitwise equal across thread counts, a second run on the kept transformed weights), with the
 * relative tolerance oneDNN's Winograd gets (1e-4: its transforms round differently from a
 * direct sum): channels-last forward with bias, residual (also in place), activations and a
 * fused max pooling (its input kept or not), backward to the data and to the weights (and the
 * bias), on sizes that are and are not multiples of the 4x4 tile, 16 to 64 channels, one to
 * three filter blocks, batch 1 to 3, a last job of fewer tiles than the others.  On an AVX-512
 * CPU the calls really run by Winograd: their results are not the direct kernels' bit for bit.
 * Calls the path does not take (channels not a multiple of 16, stride 2, no padding, a 5x5
 * kernel) run directly and agree to the direct kernels' tolerance. */
#define RTOL 1e-4
#include <criterion/criterion.h>

#include "tests/native_conv_cases.h"

static const cgeom wino_geoms[] = {
    {2, 2, 16, 32, 32, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},  /* resnet20's first stage */
    {2, 3, 32, 16, 16, 32, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false}, /* two filter blocks at once */
    {2, 1, 64, 8, 8, 64, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* resnet20's last stage */
    {2, 2, 16, 9, 11, 48, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},   /* partial tiles, 3 blocks */
    {2, 1, 48, 5, 6, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* fewer tiles than a group */
    {2, 3, 16, 1, 7, 32, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* one row */
};
#define NWG ((int)(sizeof wino_geoms / sizeof wino_geoms[0]))

/* Epilogue e: 0 none, 1 relu, 2 residual + relu, 3 residual in place + relu, 4 leaky relu
 * with the residual, 5 sigmoid without bias (the pass after), 6 relu and a fused 2x2 max
 * pooling, 7 the same with the pool's input kept (training), 8 a fused 3x3 pooling at stride 2
 * with padding 1. */
#define NEPI 9
static tcase fwd_case(const cgeom *g, int e)
{
    op_conv_attrs a = conv_attrs(g);
    a.winograd = true;
    switch (e) {
    case 1: a.act = OP_ACT_RELU; break;
    case 2: case 3: a.residual = true; a.act = OP_ACT_RELU; break;
    case 4: a.residual = true; a.act = OP_ACT_LEAKY_RELU; a.alpha = 0.1f; break;
    case 5: a.bias = false; a.act = OP_ACT_SIGMOID; break;
    case 6: case 7: case 8:
        a.act = OP_ACT_RELU;
        a.pool = true;
        a.pool_keep = e == 7;
        for (int k = 0; k < 2; k++) {
            a.pool_size[k] = e == 8 ? 3 : 2;
            a.pool_stride[k] = 2;
            a.pool_pad[k] = e == 8 ? 1 : 0;
        }
        break;
    default: break;
    }
    tcase tc = conv_fwd_case(g, &a);
    tc.cl_in = 1u;
    tc.cl_out = a.pool_keep ? 3u : 1u;
    if (a.residual) {
        tc.cl_in |= 1u << (tc.nin - 1);
        if (e == 3)
            tc.residual_in_place = tc.nin - 1;
    }
    return tc;
}

static tcase bwd_data_case(const cgeom *g)
{
    tcase tc = conv_bwd_data_case(g);
    tc.node.attrs.conv.bias = false;
    tc.node.attrs.conv.winograd = true;
    tc.cl_in = 1u;
    tc.cl_out = 1u;
    return tc;
}

/* Output 0 of case tc from the native kernel at the top ISA level on 2 threads, in the case's
 * layouts (a fresh buffer; inputs seeded by label). */
static float *native_out(const tcase *tc, const char *label)
{
    const op_kernel *nat = op_native_kernel(tc->node.op);
    cr_assert_eq(op_native_force_isa(op_native_isa_supported()), 0);
    uint64_t s = label_seed(label);
    op_call c;
    make_call(&c, tc, 2);
    float *in[OP_MAX_IN];
    for (int i = 0; i < tc->nin; i++) {
        in[i] = alloc_random(&tc->in[i], &s);
        if (tc->cl_in >> i & 1u) {
            relayout(&in[i], &tc->in[i], true);
            c.in[i].layout = OP_LAYOUT_NHWC;
        }
        c.in[i].data = in[i];
    }
    float *out[OP_MAX_OUT];
    for (int i = 0; i < tc->nout; i++) {
        out[i] = alloc_nan(&tc->out[i]);
        c.out[i].data = out[i];
        if (tc->cl_out >> i & 1u)
            c.out[i].layout = OP_LAYOUT_NHWC;
    }
    omp_set_num_threads(2);
    char err[256] = "";
    if (nat->prepare)
        cr_assert_eq(nat->prepare(&c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s: %s", label, err);
    if (nat->release)
        nat->release(c.state);
    for (int i = 0; i < tc->nin; i++)
        free(in[i]);
    for (int i = 1; i < tc->nout; i++)
        free(out[i]);
    return out[0];
}

/* Whether case tc (asking for Winograd) gives other bits than the same case run directly. */
static bool differs_from_direct(const tcase *tc, const char *label)
{
    tcase direct = *tc;
    direct.node.attrs.conv.winograd = false;
    float *a = native_out(tc, label), *b = native_out(&direct, label);
    bool differ = memcmp(a, b, bytes_of(&tc->out[0])) != 0;
    free(a);
    free(b);
    return differ;
}

Test(native_conv_wino, forward, .timeout = 600)
{
    for (int i = 0; i < NWG; i++)
        for (int e = 0; e < NEPI; e++) {
            if (e >= 6 && (wino_geoms[i].h < 2 || wino_geoms[i].w < 2))
                continue;
            tcase tc = fwd_case(&wino_geoms[i], e);
            char label[80];
            snprintf(label, sizeof label, "wino conv fwd geometry %d epilogue %d", i, e);
            check_case(&tc, label);
            if (op_native_winograd(OP_CONV2D) && e != 3)
                cr_assert(differs_from_direct(&tc, label), "%s: the same bits as the direct kernels", label);
        }
}

Test(native_conv_wino, backward_data, .timeout = 600)
{
    for (int i = 0; i < NWG; i++) {
        tcase tc = bwd_data_case(&wino_geoms[i]);
        char label[80];
        snprintf(label, sizeof label, "wino conv bwd data geometry %d", i);
        check_case(&tc, label);
        if (op_native_winograd(OP_CONV_BWD_DATA))
            cr_assert(differs_from_direct(&tc, label), "%s: the same bits as the direct kernels", label);
    }
}

/* The weight gradient, with and without the bias's; resnet20's 64 -> 64 at batch 64 has its
 * tiles in 3 parts of two filter chunks, its 16 -> 16 in 4 parts. */
Test(native_conv_wino, backward_weights, .timeout = 600)
{
    static const cgeom big[] = {
        {2, 64, 64, 8, 8, 64, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
        {2, 64, 16, 32, 32, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},
    };
    for (int i = 0; i < NWG + 2; i++) {
        const cgeom *g = i < NWG ? &wino_geoms[i] : &big[i - NWG];
        for (int bias = 0; bias < 2; bias++) {
            tcase tc = conv_bwd_weights_case(g, bias);
            tc.node.attrs.conv.winograd = true;
            tc.cl_in = 3u;
            char label[80];
            snprintf(label, sizeof label, "wino conv bwd weights geometry %d bias %d", i, bias);
            check_case(&tc, label);
            if (op_native_winograd(OP_CONV_BWD_WEIGHTS))
                cr_assert(differs_from_direct(&tc, label), "%s: the same bits as the direct kernels", label);
        }
    }
}

/* Calls the Winograd path does not take: they run directly (the same bits as without asking). */
Test(native_conv_wino, others_run_directly, .timeout = 600)
{
    static const cgeom others[] = {
        {2, 2, 20, 9, 9, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true}, /* 20 channels */
        {2, 2, 16, 9, 9, 24, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true}, /* 24 filters */
        {2, 2, 16, 9, 9, 16, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true}, /* stride 2 */
        {2, 2, 16, 9, 9, 16, {3, 3}, {1, 1}, {0, 0}, {1, 1}, 1, true}, /* no padding */
        {2, 2, 16, 9, 9, 16, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true}, /* 5x5 */
    };
    for (int i = 0; i < (int)(sizeof others / sizeof others[0]); i++) {
        char label[80];
        snprintf(label, sizeof label, "wino conv fwd, not taken, geometry %d", i);
        tcase f = fwd_case(&others[i], 1);
        check_case(&f, label);
        cr_assert(!differs_from_direct(&f, label), "%s: other bits than the direct kernels", label);
        if (others[i].s[0] == 1) { /* (stride 2: its backward to the data goes through copies) */
            snprintf(label, sizeof label, "wino conv bwd data, not taken, geometry %d", i);
            tcase d = bwd_data_case(&others[i]);
            check_case(&d, label);
            cr_assert(!differs_from_direct(&d, label), "%s: other bits than the direct kernels", label);
        }
    }
    /* fused pooling on channels it does not take (through plain copies) */
    tcase p = fwd_case(&others[0], 6);
    check_case(&p, "wino conv fwd with fused pooling, not taken");
    cr_assert(!differs_from_direct(&p, "wino conv fwd with fused pooling, not taken"));
}
