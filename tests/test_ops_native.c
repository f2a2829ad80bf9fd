/* The native SIMD kernels (ops/native/) against the reference kernels (ops/ref_*.c): random
 * inputs on many shapes (C = 3, 5, 7, 17; H, W = 1, 5, 13; F not a multiple of any vector
 * width; stride 2 and 3, padding, dilation 2, groups 2 and 3, depthwise; 1-D and 2-D; batch 1
 * and 7; bias on and off; every fused epilogue; shapes large enough for several K blocks,
 * column chunks and row blocks), at every ISA level this CPU supports, at 1 and 2 threads;
 * what agreement means is in tests/native_check_util.h.  3-D: test_ops_native_3d.c. */
#include <criterion/criterion.h>

#include <sys/wait.h>
#include <unistd.h>

#include "tests/native_conv_cases.h"

/* ---- convolution */


static const cgeom conv_geoms[] = {
    {2, 1, 3, 13, 13, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {2, 7, 3, 5, 5, 17, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},
    {2, 1, 5, 13, 13, 7, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},      /* stride 2 */
    {2, 7, 7, 13, 5, 5, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true},       /* dilation 2 */
    {2, 1, 17, 5, 13, 17, {3, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},     /* uneven padding */
    {2, 7, 6, 13, 13, 10, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true},     /* groups 2 (GEMM) */
    {2, 7, 6, 13, 13, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, false},     /* groups 2 (direct) */
    {2, 1, 7, 13, 13, 7, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 7, true},      /* depthwise */
    {2, 7, 5, 13, 5, 10, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 5, false},     /* depthwise x2, stride 2 */
    {2, 1, 5, 1, 1, 7, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},        /* 1x1 image */
    {2, 7, 3, 1, 13, 5, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},       /* height 1 */
    {2, 1, 17, 13, 13, 17, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},    /* 1x1 kernel */
    {2, 1, 3, 13, 5, 7, {3, 5}, {2, 1}, {1, 2}, {1, 2}, 1, true},       /* rectangular */
    {2, 1, 5, 13, 13, 7, {2, 2}, {3, 3}, {0, 0}, {1, 1}, 1, true},      /* stride 3: rows unread */
    {2, 7, 1, 28, 28, 6, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},      /* LeNet c1 */
    {2, 1, 6, 11, 11, 9, {3, 3}, {2, 2}, {2, 2}, {2, 2}, 3, true},      /* groups 3 (direct) */
    {2, 1, 12, 11, 11, 12, {3, 3}, {2, 2}, {2, 2}, {2, 2}, 3, true},    /* groups 3 (GEMM) */
    {2, 1, 3, 5, 5, 4, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, true},        /* pad beyond the kernel */
    {2, 2, 40, 20, 21, 33, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* K blocks, chunks */
    {2, 1, 64, 9, 9, 600, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, false},    /* row blocks */
    {2, 2, 16, 13, 13, 24, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},    /* strided, wider */
    {1, 1, 3, 1, 13, 5, {1, 3}, {1, 2}, {0, 1}, {1, 2}, 1, true},       /* 1-D stride 2 dil 2 */
    {1, 7, 6, 1, 13, 10, {1, 5}, {1, 1}, {0, 2}, {1, 1}, 2, false},     /* 1-D groups 2 */
    {1, 1, 7, 1, 13, 7, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 7, true},       /* 1-D depthwise */
    {1, 7, 17, 1, 50, 33, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},     /* 1-D wider */
    {1, 1, 5, 1, 1, 3, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},        /* 1-D length 1 */
};
#define NGEOMS ((int)(sizeof conv_geoms / sizeof conv_geoms[0]))

static void set_pool(op_conv_attrs *a, int64_t size, int64_t stride, int64_t pad)
{
    bool one = a->sdims == 1;
    a->pool = true;
    a->pool_size[0] = one ? 1 : size;
    a->pool_stride[0] = one ? 1 : stride;
    a->pool_pad[0] = one ? 0 : pad;
    a->pool_size[1] = size;
    a->pool_stride[1] = stride;
    a->pool_pad[1] = pad;
}

Test(native_conv, forward_geometries, .timeout = 600)
{
    for (int i = 0; i < NGEOMS; i++) {
        op_conv_attrs a = conv_attrs(&conv_geoms[i]);
        tcase tc = conv_fwd_case(&conv_geoms[i], &a);
        char label[64];
        snprintf(label, sizeof label, "conv fwd geometry %d", i);
        check_case(&tc, label);
    }
}

/* Applies epilogue variant e (0..13) to a; 12 and 13 keep the pool's input (training). */
static void set_epilogue(op_conv_attrs *a, int e)
{
    switch (e) {
    case 0: a->act = OP_ACT_RELU; break;
    case 1: a->act = OP_ACT_LEAKY_RELU; a->alpha = 0.1f; break;
    case 2: a->act = OP_ACT_SIGMOID; break;
    case 3: a->act = OP_ACT_TANH; break;
    case 4: a->residual = true; break;
    case 5: a->residual = true; a->act = OP_ACT_RELU; break;
    case 6: set_pool(a, 2, 2, 0); break;
    case 7: set_pool(a, 3, 2, 1); a->act = OP_ACT_RELU; break;
    case 8: a->residual = true; a->act = OP_ACT_LEAKY_RELU; a->alpha = 0.2f; set_pool(a, 2, 2, 0); break;
    case 9: a->residual = true; a->act = OP_ACT_TANH; set_pool(a, 3, 1, 1); break;
    case 10: a->bias = !a->bias; a->residual = true; a->act = OP_ACT_SIGMOID; set_pool(a, 2, 1, 0); break;
    case 11: a->bias = !a->bias; a->act = OP_ACT_TANH; break;
    case 12: a->act = OP_ACT_RELU; set_pool(a, 2, 2, 0); a->pool_keep = true; break;
    default: a->residual = true; a->act = OP_ACT_LEAKY_RELU; a->alpha = 0.2f; set_pool(a, 3, 2, 1); a->pool_keep = true; break;
    }
}
#define NEPILOGUES 14

/* Every fused epilogue on GEMM and direct geometries, 2-D and 1-D. */
Test(native_conv, forward_epilogues, .timeout = 600)
{
    static const int geoms[] = {0, 2, 5, 7, 14, 18, 21, 23, 24};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const cgeom *g = &conv_geoms[geoms[gi]];
        for (int e = 0; e < NEPILOGUES; e++) {
            op_conv_attrs a = conv_attrs(g);
            set_epilogue(&a, e);
            tcase tc = conv_fwd_case(g, &a);
            char label[64];
            snprintf(label, sizeof label, "conv fwd geometry %d epilogue %d", geoms[gi], e);
            check_case(&tc, label);
        }
    }
}

/* The residual may share the output's memory (an in-place add folded into the conv). */
Test(native_conv, residual_in_place)
{
    static const int geoms[] = {0, 7, 18, 24};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const cgeom *g = &conv_geoms[geoms[gi]];
        op_conv_attrs a = conv_attrs(g);
        a.residual = true;
        a.act = OP_ACT_RELU;
        tcase tc = conv_fwd_case(g, &a);
        tc.residual_in_place = tc.nin - 1;
        char label[64];
        snprintf(label, sizeof label, "conv residual in place geometry %d", geoms[gi]);
        check_case(&tc, label);
    }
}

Test(native_conv, backward_data, .timeout = 600)
{
    for (int i = 0; i < NGEOMS; i++) {
        tcase tc = conv_bwd_data_case(&conv_geoms[i]);
        char label[64];
        snprintf(label, sizeof label, "conv bwd data geometry %d", i);
        check_case(&tc, label);
    }
}

Test(native_conv, backward_weights, .timeout = 600)
{
    for (int i = 0; i < NGEOMS; i++) {
        for (int bias = 0; bias < 2; bias++) {
            tcase tc = conv_bwd_weights_case(&conv_geoms[i], bias);
            char label[64];
            snprintf(label, sizeof label, "conv bwd weights geometry %d bias %d", i, bias);
            check_case(&tc, label);
        }
    }
}

/* Many images, few weights: the weight gradient splits the images into parts. */
Test(native_conv, backward_weights_split_batch)
{
    static const cgeom gs[] = {
        {2, 37, 3, 13, 13, 5, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
        {2, 9, 2, 28, 28, 6, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},
        {1, 23, 4, 1, 13, 8, {1, 3}, {1, 2}, {0, 1}, {1, 1}, 2, false},
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        const cgeom *g = &gs[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.residual_in_place = -1;
        tc.node.op = OP_CONV_BWD_WEIGHTS;
        tc.node.attrs.conv = conv_attrs(g);
        int64_t oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
        int64_t ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
        tc.in[tc.nin++] = conv_act_spec(g, g->n, g->f, oh, ow);
        tc.in[tc.nin++] = conv_act_spec(g, g->n, g->c, g->h, g->w);
        tc.out[tc.nout++] = conv_weight_spec(g);
        if (g->bias)
            tc.out[tc.nout++] = TS(g->f);
        char label[64];
        snprintf(label, sizeof label, "conv bwd weights split batch %zu", i);
        check_case(&tc, label);
    }
}

/* First layers (fewer than 4 channels, rows of at most 32 outputs): the weight gradient from
 * padded copies of the images, in parts of 8 images, on a machine with AVX-512 (elsewhere and
 * on the lower levels the GEMM path: the same results within the tolerance). */
Test(native_conv, backward_weights_first_layer)
{
    static const cgeom gs[] = {
        {2, 19, 1, 28, 28, 6, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},   /* LeNet c1, 3 parts */
        {2, 9, 3, 32, 32, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},    /* RGB, rows of 32 */
        {2, 10, 2, 15, 12, 5, {7, 7}, {2, 1}, {3, 3}, {2, 1}, 1, false},  /* row stride and dilation 2 */
        {2, 3, 1, 9, 16, 2, {3, 3}, {1, 1}, {0, 0}, {1, 1}, 1, true},     /* no padding, rows of 14 */
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        tcase tc = conv_bwd_weights_case(&gs[i], gs[i].bias);
        char label[64];
        snprintf(label, sizeof label, "conv bwd weights first layer %zu", i);
        check_case(&tc, label);
    }
}

Test(native_conv, rejects_bad_shapes)
{
    const cgeom *g = &conv_geoms[0];
    op_conv_attrs a = conv_attrs(g);
    tcase tc = conv_fwd_case(g, &a);
    tc.in[1].d[1] += 1; /* wrong channels per group */
    float *bufs[4];
    op_call c;
    make_call(&c, &tc, 1);
    for (int i = 0; i < tc.nin; i++)
        c.in[i].data = bufs[i] = calloc((size_t)numel(&tc.in[i]), sizeof(float));
    float *y = calloc((size_t)numel(&tc.out[0]), sizeof(float));
    c.out[0].data = y;
    char err[256] = "";
    const op_kernel *k = op_native_kernel(OP_CONV2D);
    cr_assert_eq(k->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "native conv") && strstr(err, "does not fit"), "message: %s", err);
    cr_assert_eq(k->scratch(&c), 0);
    for (int i = 0; i < tc.nin; i++)
        free(bufs[i]);
    free(y);
}

/* ---- dense */

typedef struct dgeom {
    int64_t n;
    int xrank;
    int64_t xd[3]; /* after the batch */
    int64_t u;
    bool bias;
} dgeom;

static const dgeom dense_geoms[] = {
    {1, 1, {10}, 7, true},
    {7, 1, {33}, 10, false},
    {7, 3, {4, 3, 5}, 9, true},  /* image input read as [N, 60] */
    {2, 1, {64}, 33, true},
    {5, 2, {2, 11}, 17, false},
    {16, 1, {256}, 128, true},
    {9, 1, {300}, 50, true},     /* two K blocks */
    {3, 1, {17}, 600, true},     /* several column chunks */
    {600, 1, {20}, 5, false},    /* several row blocks */
    {1, 1, {1}, 1, true},
};
#define NDENSE ((int)(sizeof dense_geoms / sizeof dense_geoms[0]))

static tspec dense_x(const dgeom *g)
{
    tspec t = {.rank = g->xrank + 1};
    t.d[0] = g->n;
    for (int i = 0; i < g->xrank; i++)
        t.d[i + 1] = g->xd[i];
    return t;
}

static int64_t dense_f(const dgeom *g)
{
    int64_t f = 1;
    for (int i = 0; i < g->xrank; i++)
        f *= g->xd[i];
    return f;
}

Test(native_dense, forward_and_epilogues, .timeout = 600)
{
    for (int i = 0; i < NDENSE; i++) {
        const dgeom *g = &dense_geoms[i];
        for (int e = 0; e < 7; e++) {
            tcase tc;
            memset(&tc, 0, sizeof tc);
            tc.residual_in_place = -1;
            tc.node.op = OP_DENSE;
            op_dense_attrs *a = &tc.node.attrs.dense;
            a->units = g->u;
            a->bias = g->bias;
            switch (e) {
            case 1: a->act = OP_ACT_RELU; break;
            case 2: a->act = OP_ACT_LEAKY_RELU; a->alpha = 0.05f; break;
            case 3: a->act = OP_ACT_SIGMOID; break;
            case 4: a->act = OP_ACT_TANH; break;
            case 5: a->softmax = true; break;
            case 6: a->act = OP_ACT_RELU; a->softmax = true; break;
            default: break;
            }
            tc.in[tc.nin++] = dense_x(g);
            tc.in[tc.nin++] = TS(g->u, dense_f(g));
            if (g->bias)
                tc.in[tc.nin++] = TS(g->u);
            tc.out[tc.nout++] = TS(g->n, g->u);
            char label[64];
            snprintf(label, sizeof label, "dense geometry %d epilogue %d", i, e);
            check_case(&tc, label);
        }
    }
}

Test(native_dense, backward, .timeout = 600)
{
    for (int i = 0; i < NDENSE; i++) {
        const dgeom *g = &dense_geoms[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.residual_in_place = -1;
        tc.node.op = OP_DENSE_BWD_DATA;
        tc.node.attrs.dense.units = g->u;
        tc.node.attrs.dense.bias = g->bias;
        tc.in[tc.nin++] = TS(g->n, g->u);
        tc.in[tc.nin++] = TS(g->u, dense_f(g));
        tc.out[tc.nout++] = dense_x(g);
        char label[64];
        snprintf(label, sizeof label, "dense bwd data geometry %d", i);
        check_case(&tc, label);

        memset(&tc, 0, sizeof tc);
        tc.residual_in_place = -1;
        tc.node.op = OP_DENSE_BWD_WEIGHTS;
        tc.node.attrs.dense.units = g->u;
        tc.node.attrs.dense.bias = g->bias;
        tc.in[tc.nin++] = TS(g->n, g->u);
        tc.in[tc.nin++] = dense_x(g);
        tc.out[tc.nout++] = TS(g->u, dense_f(g));
        if (g->bias)
            tc.out[tc.nout++] = TS(g->u);
        snprintf(label, sizeof label, "dense bwd weights geometry %d", i);
        check_case(&tc, label);
    }
}

/* ---- the table and the ISA choice */

Test(native_table, conv_and_dense_have_scratch)
{
    static const op_kind covered[] = {OP_CONV1D, OP_CONV2D, OP_CONV3D, OP_CONV_BWD_DATA,
                                    OP_CONV_BWD_WEIGHTS, OP_DENSE, OP_DENSE_BWD_DATA,
                                    OP_DENSE_BWD_WEIGHTS};
    for (size_t i = 0; i < sizeof covered / sizeof covered[0]; i++) {
        const op_kernel *k = op_kernel_get(covered[i], OP_BACKEND_NATIVE);
        cr_assert_not_null(k);
        cr_assert_not_null(k->run);
        cr_assert_not_null(k->scratch);
        /* the fp32 2-D, 1-D and backward convolutions take channels-last too */
        bool either = covered[i] == OP_CONV1D || covered[i] == OP_CONV2D ||
                      covered[i] == OP_CONV_BWD_DATA || covered[i] == OP_CONV_BWD_WEIGHTS;
        cr_assert_eq(k->layouts, either ? OP_LAYOUT_FOLLOWS_INPUTS : OP_LAYOUT_PLAIN_ONLY);
    }
    cr_assert_null(op_native_kernel(OP_COUNT));
}

Test(native_isa, levels_and_override)
{
    op_native_isa_level top = op_native_isa_supported();
    cr_assert_str_eq(op_native_isa_name(OP_NATIVE_SCALAR), "scalar");
    cr_assert_str_eq(op_native_isa_name(OP_NATIVE_AVX2), "avx2");
    cr_assert_str_eq(op_native_isa_name(OP_NATIVE_AVX512), "avx512");
    cr_assert_str_eq(op_native_isa_name(OP_NATIVE_ISA_COUNT), "unknown");
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        cr_assert_eq(top, OP_NATIVE_AVX512);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cr_assert_eq(top, OP_NATIVE_AVX2);
#endif
    for (int l = 0; l <= (int)top; l++) {
        cr_assert_eq(op_native_force_isa((op_native_isa_level)l), 0);
        cr_assert_eq(op_native_isa_active(), (op_native_isa_level)l);
    }
    if (top + 1 < OP_NATIVE_ISA_COUNT) /* never above what the CPU has */
        cr_assert_eq(op_native_force_isa(top + 1), -1);
    cr_assert_eq(op_native_force_isa(OP_NATIVE_ISA_COUNT), -1);
    cr_assert_eq(op_native_isa_active(), top);
}

/* CNN_ISA, read once at the first use, in a fresh child process each. */
static int level_with_env(const char *value)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        setenv("CNN_ISA", value, 1);
        _exit((int)op_native_isa_active());
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(native_isa, environment_lowers_never_raises)
{
    /* the children must be forked before this process makes its own choice */
    int scalar = level_with_env("scalar"), avx2 = level_with_env("avx2");
    int avx512 = level_with_env("avx512"), bogus = level_with_env("sse9");
    op_native_isa_level top = op_native_isa_supported();
    cr_assert_eq(scalar, OP_NATIVE_SCALAR);
    cr_assert_eq(avx2, top < OP_NATIVE_AVX2 ? (int)top : OP_NATIVE_AVX2);
    cr_assert_eq(avx512, (int)top);
    cr_assert_eq(bogus, (int)top);
}
