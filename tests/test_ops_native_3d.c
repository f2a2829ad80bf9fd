/* The native 3-D convolution (vol2col through the GEMM paths, ops/native/native_conv*.c)
 * against the reference kernels: forward with every fused epilogue (bias, residual,
 * activation; a 3-D convolution has no fused pool), backward to the data (the stride-1
 * transform and col2vol) and to the weights and bias, on shapes with stride, padding and
 * dilation per axis, groups (GEMM-sized and few filters per group, which 2-D would run
 * directly), depthwise, odd sizes, depth 1, several K blocks and split batches; at every ISA
 * level this CPU supports and at 1 and 2 threads (tests/native_check_util.h). */
#include <criterion/criterion.h>

#include "tests/conv_test_util.h"
#include "tests/native_check_util.h"

typedef struct vgeom {
    int64_t n, c, d, h, w, f;
    int64_t k[3], s[3], p[3], dl[3]; /* [d, h, w] */
    int64_t g;
    bool bias;
} vgeom;

static const vgeom vgeoms[] = {
    {1, 3, 5, 6, 7, 8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true},
    {3, 4, 5, 5, 5, 17, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, false},     /* batch */
    {1, 5, 7, 9, 9, 7, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 1, true},       /* stride 2 */
    {2, 3, 7, 7, 7, 5, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, {2, 2, 2}, 1, true},       /* dilation 2 */
    {2, 6, 5, 7, 6, 10, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 2, true},      /* groups 2 */
    {2, 7, 5, 5, 7, 7, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 7, true},       /* depthwise */
    {1, 6, 5, 7, 7, 9, {3, 3, 3}, {2, 1, 2}, {1, 1, 0}, {1, 2, 1}, 3, false},      /* groups 3 */
    {1, 3, 9, 5, 11, 6, {3, 1, 5}, {1, 2, 1}, {0, 0, 2}, {2, 1, 1}, 1, true},      /* uneven */
    {2, 17, 3, 5, 7, 9, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1, true},      /* 1x1x1 */
    {1, 3, 10, 5, 5, 4, {1, 3, 3}, {3, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true},      /* pad > k */
    {2, 16, 6, 8, 9, 33, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true},     /* K blocks */
    {7, 3, 1, 13, 13, 5, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 1, true},     /* depth 1 */
    {1, 2, 4, 4, 4, 5, {2, 2, 2}, {3, 3, 3}, {0, 0, 0}, {1, 1, 1}, 1, false},      /* rows unread */
};
#define NVGEOMS ((int)(sizeof vgeoms / sizeof vgeoms[0]))

static int64_t vout(const vgeom *g, int axis, int64_t in)
{
    return conv_out(in, g->k[axis], g->s[axis], g->p[axis], g->dl[axis]);
}

static op_conv_attrs vattrs(const vgeom *g)
{
    op_conv_attrs a;
    memset(&a, 0, sizeof a);
    a.sdims = 3;
    a.filters = g->f;
    a.kernel_d = g->k[0], a.stride_d = g->s[0], a.pad_d = g->p[0], a.dilation_d = g->dl[0];
    for (int i = 0; i < 2; i++) {
        a.kernel[i] = g->k[i + 1];
        a.stride[i] = g->s[i + 1];
        a.pad[i] = g->p[i + 1];
        a.dilation[i] = g->dl[i + 1];
    }
    a.groups = g->g;
    a.bias = g->bias;
    return a;
}

static tspec vx(const vgeom *g) { return TS(g->n, g->c, g->d, g->h, g->w); }
static tspec vy(const vgeom *g)
{
    return TS(g->n, g->f, vout(g, 0, g->d), vout(g, 1, g->h), vout(g, 2, g->w));
}
static tspec vw(const vgeom *g) { return TS(g->f, g->c / g->g, g->k[0], g->k[1], g->k[2]); }

static tcase vfwd_case(const vgeom *g, const op_conv_attrs *a)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.residual_in_place = -1;
    tc.node.op = OP_CONV3D;
    tc.node.attrs.conv = *a;
    tc.in[tc.nin++] = vx(g);
    tc.in[tc.nin++] = vw(g);
    if (a->bias)
        tc.in[tc.nin++] = TS(g->f);
    if (a->residual)
        tc.in[tc.nin++] = vy(g);
    tc.out[tc.nout++] = vy(g);
    return tc;
}

Test(native_conv3d, forward_geometries, .timeout = 600)
{
    for (int i = 0; i < NVGEOMS; i++) {
        op_conv_attrs a = vattrs(&vgeoms[i]);
        tcase tc = vfwd_case(&vgeoms[i], &a);
        char label[64];
        snprintf(label, sizeof label, "conv3d fwd geometry %d", i);
        check_case(&tc, label);
    }
}

/* Every fused epilogue but pooling. */
Test(native_conv3d, forward_epilogues, .timeout = 600)
{
    static const int geoms[] = {0, 2, 4, 5, 7};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const vgeom *g = &vgeoms[geoms[gi]];
        for (int e = 0; e < 7; e++) {
            op_conv_attrs a = vattrs(g);
            switch (e) {
            case 0: a.act = OP_ACT_RELU; break;
            case 1: a.act = OP_ACT_LEAKY_RELU; a.alpha = 0.1f; break;
            case 2: a.act = OP_ACT_SIGMOID; break;
            case 3: a.act = OP_ACT_TANH; break;
            case 4: a.residual = true; break;
            case 5: a.residual = true; a.act = OP_ACT_RELU; break;
            default: a.bias = !a.bias; a.residual = true; a.act = OP_ACT_TANH; break;
            }
            tcase tc = vfwd_case(g, &a);
            char label[64];
            snprintf(label, sizeof label, "conv3d fwd geometry %d epilogue %d", geoms[gi], e);
            check_case(&tc, label);
        }
    }
}

Test(native_conv3d, residual_in_place)
{
    op_conv_attrs a = vattrs(&vgeoms[1]);
    a.residual = true;
    a.act = OP_ACT_RELU;
    tcase tc = vfwd_case(&vgeoms[1], &a);
    tc.residual_in_place = tc.nin - 1;
    check_case(&tc, "conv3d residual in place");
}

Test(native_conv3d, backward_data, .timeout = 600)
{
    for (int i = 0; i < NVGEOMS; i++) {
        const vgeom *g = &vgeoms[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.residual_in_place = -1;
        tc.node.op = OP_CONV_BWD_DATA;
        tc.node.attrs.conv = vattrs(g);
        tc.in[tc.nin++] = vy(g);
        tc.in[tc.nin++] = vw(g);
        tc.out[tc.nout++] = vx(g);
        char label[64];
        snprintf(label, sizeof label, "conv3d bwd data geometry %d", i);
        check_case(&tc, label);
    }
}

static void check_bwd_weights(const vgeom *g, bool bias, const char *label)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.residual_in_place = -1;
    tc.node.op = OP_CONV_BWD_WEIGHTS;
    tc.node.attrs.conv = vattrs(g);
    tc.node.attrs.conv.bias = bias;
    tc.in[tc.nin++] = vy(g);
    tc.in[tc.nin++] = vx(g);
    tc.out[tc.nout++] = vw(g);
    if (bias)
        tc.out[tc.nout++] = TS(g->f);
    check_case(&tc, label);
}

Test(native_conv3d, backward_weights, .timeout = 600)
{
    for (int i = 0; i < NVGEOMS; i++)
        for (int bias = 0; bias < 2; bias++) {
            char label[64];
            snprintf(label, sizeof label, "conv3d bwd weights geometry %d bias %d", i, bias);
            check_bwd_weights(&vgeoms[i], bias, label);
        }
}

/* Many images, few weights: the weight gradient splits the images into parts. */
Test(native_conv3d, backward_weights_split_batch)
{
    static const vgeom g = {19, 2, 4, 5, 6, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true};
    check_bwd_weights(&g, true, "conv3d bwd weights split batch");
}

Test(native_conv3d, rejects_fused_pool_and_bad_depth)
{
    const vgeom *g = &vgeoms[0];
    for (int t = 0; t < 2; t++) {
        op_conv_attrs a = vattrs(g);
        if (t == 0) {
            a.pool = true;
            a.pool_size[0] = a.pool_size[1] = 1;
            a.pool_stride[0] = a.pool_stride[1] = 1;
        }
        tcase tc = vfwd_case(g, &a);
        if (t == 1)
            tc.in[1].d[2] += 1; /* weight depth against kernel_d */
        op_call c;
        make_call(&c, &tc, 1);
        float *bufs[OP_MAX_IN];
        for (int i = 0; i < tc.nin; i++)
            c.in[i].data = bufs[i] = calloc((size_t)numel(&tc.in[i]), sizeof(float));
        float *y = calloc((size_t)numel(&tc.out[0]), sizeof(float));
        c.out[0].data = y;
        char err[256] = "";
        const op_kernel *k = op_native_kernel(OP_CONV3D);
        cr_assert_not_null(k);
        cr_assert_eq(k->run(&c, err, sizeof err), -1);
        cr_assert(strstr(err, "native conv") &&
                      strstr(err, t == 0 ? "no fused pooling" : "does not fit"),
                  "message: %s", err);
        cr_assert_eq(k->scratch(&c), 0);
        for (int i = 0; i < tc.nin; i++)
            free(bufs[i]);
        free(y);
    }
}
