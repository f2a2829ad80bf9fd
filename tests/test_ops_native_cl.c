/* The native convolutions on channels-last activations (NHWC, NWC) against the reference
 * kernels (which get plain copies), through tests/native_check_util.h: every ISA level, 1 and 2
 * threads, bitwise equal across thread counts.  The direct kernels (2-D and 1-D, one group:
 * forward with bias, residual and activation, backward data at stride 1, backward weights) on
 * 3x3 pad 1 stride 1 geometries with channel counts that are not multiples of 16, tile widths
 * that do not divide the rows, batch 1 and more; 3x3 weight gradients split into parts and
 * chunks of rows, without padding, with padding 2, on one column; one and two blocks of
 * filters (the input-stationary tiles) at 16, 32 and 64 channels; everything else (groups, dilation, stride
 * 2, fused pooling, padding beyond the kernel) through plain copies. */
#include <criterion/criterion.h>

#include "tests/native_conv_cases.h"

static const cgeom cl_geoms[] = {
    {2, 1, 20, 9, 31, 35, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},     /* 3x3: C, F odd, tiles */
    {2, 3, 16, 6, 16, 48, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},     /* F 3 blocks, batch 3 */
    {2, 2, 7, 5, 5, 17, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},      /* small, no bias */
    {2, 1, 3, 4, 45, 64, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},      /* wide rows */
    {2, 2, 64, 8, 8, 64, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},      /* resnet20's last stage */
    {2, 1, 5, 9, 9, 6, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},        /* 1x1 */
    {2, 2, 6, 7, 9, 5, {3, 5}, {1, 1}, {0, 2}, {1, 1}, 1, true},        /* rectangular, uneven */
    {2, 3, 9, 11, 11, 20, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},     /* stride 2 (bwd data: copies) */
    {2, 2, 8, 9, 9, 8, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true},        /* dilation 2 */
    {2, 2, 6, 9, 9, 10, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true},       /* groups: copies */
    {2, 1, 3, 5, 5, 4, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, true},        /* pad beyond the kernel */
    {1, 2, 7, 1, 40, 19, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},      /* 1-D */
    {1, 1, 1, 1, 13, 5, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},       /* 1-D, one channel */
    {2, 2, 5, 1, 1, 7, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},        /* one position */
    {2, 8, 16, 12, 12, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* 3x3 dW: 4 parts, chunks */
    {2, 2, 5, 6, 7, 9, {3, 3}, {1, 1}, {0, 0}, {1, 1}, 1, true},        /* 3x3 without padding */
    {2, 2, 4, 5, 6, 3, {3, 3}, {1, 1}, {2, 2}, {1, 1}, 1, true},        /* 3x3 padding 2 */
    {2, 3, 6, 5, 1, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},        /* 3x3 on one column */
    {2, 2, 33, 6, 5, 17, {3, 3}, {2, 1}, {1, 1}, {1, 2}, 1, true},      /* 3x3 mixed strides */
    {2, 2, 32, 5, 30, 10, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},     /* one filter block, C 32 */
    {2, 1, 64, 4, 27, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},    /* one filter block, C 64 */
    {2, 2, 10, 6, 9, 32, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},      /* bwd data: one block, C 32 */
    {2, 2, 32, 5, 11, 20, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},     /* two blocks, C 32, masked */
    {2, 1, 16, 6, 20, 32, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},     /* two blocks, C 16 */
    {2, 2, 32, 4, 10, 40, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},    /* two blocks and one */
    /* fewer than 16 channels: backward data and weight gradient by outer products */
    {2, 3, 6, 14, 14, 16, {5, 5}, {1, 1}, {0, 0}, {1, 1}, 1, true},     /* LeNet's c2 */
    {2, 2, 4, 12, 11, 6, {5, 5}, {2, 2}, {2, 1}, {2, 1}, 1, true},      /* strides 2, row dilation 2 */
    {2, 2, 15, 6, 7, 33, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},     /* 9 vectors a pixel */
    {2, 1, 10, 5, 6, 3, {4, 4}, {1, 2}, {3, 0}, {1, 1}, 1, true},       /* 10 vectors, pad 3 rows */
};
#define FIRST_IS3 19 /* the input-stationary geometries (one or two filter blocks) from here */
#define FIRST_OUTER 25 /* to here; then the outer-product ones (fewer than 16 channels) */
#define NCL ((int)(sizeof cl_geoms / sizeof cl_geoms[0]))

/* Epilogue e: 0 none, 1 relu, 2 residual + relu, 3 residual + leaky relu, 4 tanh without bias,
 * 5 sigmoid, 6 residual in place + relu, 7 fused pooling (copies), 8 relu and fused pooling
 * with the pool's input kept (copies). */
static void fwd_case(const cgeom *g, int e, const char *label)
{
    op_conv_attrs a = conv_attrs(g);
    switch (e) {
    case 1: a.act = OP_ACT_RELU; break;
    case 2: case 6: a.residual = true; a.act = OP_ACT_RELU; break;
    case 3: a.residual = true; a.act = OP_ACT_LEAKY_RELU; a.alpha = 0.1f; break;
    case 4: a.bias = !a.bias; a.act = OP_ACT_TANH; break;
    case 5: a.act = OP_ACT_SIGMOID; break;
    case 7: case 8:
        a.act = e == 8 ? OP_ACT_RELU : OP_ACT_NONE;
        a.pool_keep = e == 8;
        a.pool = true;
        a.pool_size[0] = a.pool_stride[0] = g->sdims == 1 ? 1 : 2;
        a.pool_size[1] = a.pool_stride[1] = 2;
        break;
    default: break;
    }
    tcase tc = conv_fwd_case(g, &a);
    tc.cl_in = 1u;
    tc.cl_out = a.pool_keep ? 3u : 1u;
    if (a.residual) { /* the last input */
        tc.cl_in |= 1u << (tc.nin - 1);
        if (e == 6)
            tc.residual_in_place = tc.nin - 1;
    }
    check_case(&tc, label);
}

Test(native_conv_cl, forward, .timeout = 600)
{
    for (int i = 0; i < NCL; i++) {
        /* every epilogue on the direct kernel's shapes */
        int ne = i < 5 || i == 11 || (i >= FIRST_IS3 && i < FIRST_OUTER) ? 9 : 1;
        for (int e = 0; e < ne; e++) {
            if (e >= 7 && (cl_geoms[i].h < 2 && cl_geoms[i].sdims == 2))
                continue;
            char label[80];
            snprintf(label, sizeof label, "cl conv fwd geometry %d epilogue %d", i, e);
            fwd_case(&cl_geoms[i], e, label);
        }
    }
}

Test(native_conv_cl, backward_data, .timeout = 600)
{
    for (int i = 0; i < NCL; i++) {
        tcase tc = conv_bwd_data_case(&cl_geoms[i]);
        tc.node.attrs.conv.bias = false;
        tc.cl_in = 1u;
        tc.cl_out = 1u;
        char label[80];
        snprintf(label, sizeof label, "cl conv bwd data geometry %d", i);
        check_case(&tc, label);
    }
}

Test(native_conv_cl, backward_weights, .timeout = 600)
{
    for (int i = 0; i < NCL; i++) {
        for (int bias = 0; bias < 2; bias++) {
            tcase tc = conv_bwd_weights_case(&cl_geoms[i], bias);
            tc.cl_in = 3u;
            char label[80];
            snprintf(label, sizeof label, "cl conv bwd weights geometry %d bias %d", i, bias);
            check_case(&tc, label);
        }
    }
}

/* Many images, few tiles: the weight gradient's images in parts, summed in order. */
Test(native_conv_cl, backward_weights_parts)
{
    static const cgeom g = {2, 37, 3, 7, 7, 5, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true};
    tcase tc = conv_bwd_weights_case(&g, true);
    tc.cl_in = 3u;
    check_case(&tc, "cl conv bwd weights parts");
}

/* 128 -> 250 channels: 1.2 MB of packed weights, more than the forward keeps in L2, so the
 * filters go in chunks (native_conv_cl.c: CL_CHUNK_BYTES; here two of 8 blocks), with the
 * activations applied after every chunk of a row is done. */
Test(native_conv_cl, filters_in_chunks, .timeout = 600)
{
    static const cgeom g = {2, 2, 128, 3, 5, 250, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true};
    for (int e = 0; e < 7; e++) {
        if (e == 4 || e == 5) /* tanh and sigmoid: outputs near 1 where the sums of 1152 terms
                               * are large, beyond the relative tolerance of their errors */
            continue;
        char label[80];
        snprintf(label, sizeof label, "cl conv fwd in chunks epilogue %d", e);
        fwd_case(&g, e, label);
    }
    tcase tc = conv_bwd_data_case(&g);
    tc.node.attrs.conv.bias = false;
    tc.cl_in = 1u;
    tc.cl_out = 1u;
    check_case(&tc, "cl conv bwd data in chunks");
}

/* The packed weights a convolution keeps between runs: used while the weights' version stays,
 * packed again when it changes (the weights rewritten in place, as an optimiser step does). */
Test(native_conv_cl, kept_weights_follow_the_version)
{
    const cgeom *g = &cl_geoms[4];
    op_conv_attrs a = conv_attrs(g);
    tcase tc = conv_fwd_case(g, &a);
    const op_kernel *nat = op_kernel_get(tc.node.op, OP_BACKEND_NATIVE);
    cr_assert(nat && nat->prepare && nat->release);
    uint64_t seed = 11;
    float *in[OP_MAX_IN], *y[3];
    for (int i = 0; i < tc.nin; i++)
        in[i] = alloc_random(&tc.in[i], &seed);
    relayout(&in[0], &tc.in[0], true);
    op_call c, fresh;
    make_call(&c, &tc, 1);
    make_call(&fresh, &tc, 1);
    for (int i = 0; i < tc.nin; i++)
        c.in[i].data = fresh.in[i].data = in[i];
    c.in[0].layout = fresh.in[0].layout = c.out[0].layout = fresh.out[0].layout = OP_LAYOUT_NHWC;
    for (int k = 0; k < 3; k++)
        y[k] = alloc_nan(&tc.out[0]);
    char err[256] = "";
    cr_assert_eq(nat->prepare(&c, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(c.state);
    c.weights_version = 1;
    c.out[0].data = y[0];
    cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s", err);
    for (int64_t i = 0; i < numel(&tc.in[1]); i++) /* new weights in place, a new version */
        in[1][i] = 0.5f - in[1][i];
    c.weights_version = 2;
    c.out[0].data = y[1];
    cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s", err);
    fresh.out[0].data = y[2]; /* no state: packed at the call */
    cr_assert_eq(nat->run(&fresh, err, sizeof err), 0, "%s", err);
    size_t bytes = bytes_of(&tc.out[0]);
    cr_expect(memcmp(y[0], y[1], bytes) != 0, "the new weights changed the output");
    cr_expect(memcmp(y[1], y[2], bytes) == 0, "after a new version, the output of a call without kept weights");
    nat->release(c.state);
    for (int k = 0; k < 3; k++)
        free(y[k]);
    for (int i = 0; i < tc.nin; i++)
        free(in[i]);
}

/* A blocked tensor is refused with a message. */
Test(native_conv_cl, refuses_blocked)
{
    const cgeom *g = &cl_geoms[1];
    op_conv_attrs a = conv_attrs(g);
    a.bias = false;
    tcase tc = conv_fwd_case(g, &a);
    op_call c;
    make_call(&c, &tc, 1);
    float *x = calloc((size_t)numel(&tc.in[0]), sizeof(float));
    float *w = calloc((size_t)numel(&tc.in[1]), sizeof(float));
    float *y = calloc((size_t)numel(&tc.out[0]), sizeof(float));
    c.in[0].data = x, c.in[1].data = w, c.out[0].data = y;
    c.in[0].layout = c.out[0].layout = OP_LAYOUT_BLOCK16;
    char err[256] = "";
    cr_assert_eq(op_native_kernel(OP_CONV2D)->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "native conv") && strstr(err, "blocked"), "message: %s", err);
    free(x);
    free(w);
    free(y);
}
