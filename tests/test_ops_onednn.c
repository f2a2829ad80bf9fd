/* The oneDNN kernels (ops/onednn/) against the reference kernels (ops/ref_*.c): random
 * inputs on many shapes (odd sizes, stride 2, padding, dilation 2, groups 2 and depthwise,
 * 1-D and 2-D, batch 1 and 7, bias on and off, every fused epilogue), at 1 and 2 threads.
 *
 * Each case runs two rounds with fresh random inputs through the same prepared state (so the
 * weights are re-read each run), prepare() being called with no data.  Outputs are filled
 * with NaN beforehand (an unwritten element fails).  Agreement: for every output tensor (and
 * every input, for the ops that update inputs in place),
 *     max_i |onednn_i - ref_i| <= 1e-4 * max_i |ref_i|
 * i.e. a relative error of 1e-4 measured against the tensor's largest magnitude.
 * Convolution here; dense, pooling, elementwise ops and batchnorm in test_ops_onednn_other.c. */
#include "tests/onednn_util.h"
#include "tests/conv_test_util.h"

/* ---- convolution cases */

static const cgeom conv_geoms[] = {
    {2, 1, 3, 9, 11, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},
    {2, 7, 3, 9, 11, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, false},
    {2, 2, 5, 13, 10, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true},     /* odd, stride 2 */
    {2, 1, 4, 12, 12, 4, {3, 3}, {1, 1}, {2, 2}, {2, 2}, 1, true},     /* dilation 2 */
    {2, 3, 6, 8, 9, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 2, true},       /* groups 2 */
    {2, 2, 8, 10, 10, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 8, true},     /* depthwise */
    {2, 2, 4, 7, 7, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 4, false},      /* depthwise, multiplier 2 */
    {2, 2, 16, 11, 11, 16, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, true},   /* 1x1 */
    {2, 2, 32, 20, 20, 48, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true},   /* blocked (brgconv) path */
    {2, 7, 1, 28, 28, 6, {5, 5}, {1, 1}, {2, 2}, {1, 1}, 1, true},     /* LeNet c1 */
    {2, 1, 3, 10, 12, 5, {3, 5}, {2, 1}, {1, 2}, {1, 2}, 1, true},     /* rectangular */
    {2, 7, 32, 9, 9, 32, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 2, false},    /* groups 2, blocked */
    {2, 2, 3, 8, 10, 4, {2, 2}, {3, 3}, {0, 0}, {1, 1}, 1, true},      /* stride 3: rows never read */
    {2, 1, 6, 11, 11, 6, {3, 3}, {2, 2}, {2, 2}, {2, 2}, 3, true},     /* groups 3, stride 2, dilation 2 */
    {1, 1, 4, 1, 17, 6, {1, 3}, {1, 2}, {0, 1}, {1, 2}, 1, true},      /* 1-D, stride 2, dilation 2 */
    {1, 7, 6, 1, 20, 6, {1, 5}, {1, 1}, {0, 2}, {1, 1}, 2, false},     /* 1-D, groups 2 */
    {1, 2, 8, 1, 16, 8, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 8, true},      /* 1-D depthwise */
    {1, 3, 16, 1, 33, 32, {1, 3}, {1, 1}, {0, 1}, {1, 1}, 1, true},    /* 1-D, blocked */
};
#define NGEOMS ((int)(sizeof conv_geoms / sizeof conv_geoms[0]))

/* An activation-shaped spec [n, c, (h,) w] in the rank of the geometry. */
static tspec act_spec(const cgeom *g, int fill, int64_t n, int64_t c, int64_t h, int64_t w)
{
    return g->sdims == 1 ? TS(fill, n, c, w) : TS(fill, n, c, h, w);
}

static tspec weight_spec(const cgeom *g)
{
    return g->sdims == 1 ? TS(F_RAND, g->f, g->c / g->g, g->k[1])
                         : TS(F_RAND, g->f, g->c / g->g, g->k[0], g->k[1]);
}

/* Forward conv case; epilogue in a (residual, act, pool fields). */
static tcase conv_fwd_case(const cgeom *g, const op_conv_attrs *a)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = g->sdims == 1 ? OP_CONV1D : OP_CONV2D;
    tc.node.attrs.conv = *a;
    int64_t oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
    int64_t ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
    tc.in[tc.nin++] = act_spec(g, F_RAND, g->n, g->c, g->h, g->w);
    tc.in[tc.nin++] = weight_spec(g);
    if (a->bias) tc.in[tc.nin++] = TS(F_RAND, g->f);
    if (a->residual) tc.in[tc.nin++] = act_spec(g, F_RAND, g->n, g->f, oh, ow);
    if (a->pool && a->pool_keep) /* the pool's input kept: output 0 */
        tc.out[tc.nout++] = act_spec(g, F_RAND, g->n, g->f, oh, ow);
    if (a->pool) {
        oh = (oh + 2 * a->pool_pad[0] - a->pool_size[0]) / a->pool_stride[0] + 1;
        ow = (ow + 2 * a->pool_pad[1] - a->pool_size[1]) / a->pool_stride[1] + 1;
    }
    tc.out[tc.nout++] = act_spec(g, F_RAND, g->n, g->f, oh, ow);
    return tc;
}

static void set_pool(op_conv_attrs *a, int64_t size, int64_t stride, int64_t pad)
{
    a->pool = true;
    bool one = a->sdims == 1;
    a->pool_size[0] = one ? 1 : size;
    a->pool_stride[0] = one ? 1 : stride;
    a->pool_pad[0] = one ? 0 : pad;
    a->pool_size[1] = size;
    a->pool_stride[1] = stride;
    a->pool_pad[1] = pad;
}

Test(onednn_conv, forward_geometries)
{
    for (int i = 0; i < NGEOMS; i++) {
        op_conv_attrs a = conv_attrs(&conv_geoms[i]);
        tcase tc = conv_fwd_case(&conv_geoms[i], &a);
        char label[64];
        snprintf(label, sizeof label, "conv fwd geometry %d", i);
        check_case(&tc, label);
    }
}

/* Every fused epilogue on a few geometries (2-D plain, stride 2, blocked, 1-D), the pooling ones
 * also with the pool's input kept. */
Test(onednn_conv, forward_epilogues)
{
    static const int geoms[] = {0, 2, 8, 14, 5};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const cgeom *g = &conv_geoms[geoms[gi]];
        for (int e = 0; e < 13; e++) {
            op_conv_attrs a = conv_attrs(g);
            switch (e) {
            case 0: a.act = OP_ACT_RELU; break;
            case 1: a.act = OP_ACT_LEAKY_RELU; a.alpha = 0.1f; break;
            case 2: a.act = OP_ACT_SIGMOID; break;
            case 3: a.act = OP_ACT_TANH; break;
            case 4: a.residual = true; break;
            case 5: a.residual = true; a.act = OP_ACT_RELU; break;
            case 6: set_pool(&a, 2, 2, 0); break;
            case 7: set_pool(&a, 3, 2, 1); a.act = OP_ACT_RELU; break;
            case 8: a.residual = true; a.act = OP_ACT_LEAKY_RELU; a.alpha = 0.2f; set_pool(&a, 2, 2, 0); break;
            case 9: a.residual = true; a.act = OP_ACT_TANH; set_pool(&a, 3, 1, 1); break;
            case 10: a.bias = !a.bias; a.residual = true; a.act = OP_ACT_SIGMOID; set_pool(&a, 2, 1, 0); break;
            /* the pool's input kept as output 0 (training) */
            case 11: a.act = OP_ACT_RELU; set_pool(&a, 2, 2, 0); a.pool_keep = true; break;
            default: a.residual = true; a.act = OP_ACT_TANH; set_pool(&a, 3, 1, 1); a.pool_keep = true; break;
            }
            tcase tc = conv_fwd_case(g, &a);
            char label[64];
            snprintf(label, sizeof label, "conv fwd geometry %d epilogue %d", geoms[gi], e);
            check_case(&tc, label);
        }
    }
}

Test(onednn_conv, backward_data)
{
    for (int i = 0; i < NGEOMS; i++) {
        const cgeom *g = &conv_geoms[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_CONV_BWD_DATA;
        tc.node.attrs.conv = conv_attrs(g);
        int64_t oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
        int64_t ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
        tc.in[tc.nin++] = act_spec(g, F_RAND, g->n, g->f, oh, ow);
        tc.in[tc.nin++] = weight_spec(g);
        tc.out[tc.nout++] = act_spec(g, F_RAND, g->n, g->c, g->h, g->w);
        char label[64];
        snprintf(label, sizeof label, "conv bwd data geometry %d", i);
        check_case(&tc, label);
    }
}

Test(onednn_conv, backward_weights)
{
    for (int i = 0; i < NGEOMS; i++) {
        const cgeom *g = &conv_geoms[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_CONV_BWD_WEIGHTS;
        tc.node.attrs.conv = conv_attrs(g);
        int64_t oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
        int64_t ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
        tc.in[tc.nin++] = act_spec(g, F_RAND, g->n, g->f, oh, ow);
        tc.in[tc.nin++] = act_spec(g, F_RAND, g->n, g->c, g->h, g->w);
        tc.out[tc.nout++] = weight_spec(g);
        if (g->bias) tc.out[tc.nout++] = TS(F_RAND, g->f);
        char label[64];
        snprintf(label, sizeof label, "conv bwd weights geometry %d", i);
        check_case(&tc, label);
    }
}

/* A prepared state meets a smaller batch (the last batch of an epoch): it is rebuilt. */
Test(onednn_conv, rebuilds_for_a_new_batch)
{
    const cgeom *g = &conv_geoms[8];
    op_conv_attrs a = conv_attrs(g);
    a.act = OP_ACT_RELU;
    tcase big = conv_fwd_case(g, &a);
    cgeom g3 = *g;
    g3.n = 3;
    tcase small = conv_fwd_case(&g3, &a);
    const op_kernel *dnn = op_onednn_kernel(OP_CONV2D), *ref = op_kernel_get(OP_CONV2D, OP_BACKEND_REF);
    char err[256] = "";
    op_call c;
    make_call(&c, &big, 2);
    omp_set_num_threads(2);
    cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s", err);
    void *first = c.state;
    /* now run a batch-3 call through the state prepared for batch 2 */
    op_call r;
    make_call(&r, &small, 1);
    uint64_t s = 7;
    float *in[4], *rin[4];
    for (int i = 0; i < small.nin; i++) {
        in[i] = alloc_filled(&small.in[i], &s);
        rin[i] = clone(in[i], &small.in[i]);
        r.in[i].data = rin[i];
    }
    int64_t n = numel(&small.out[0]);
    float *ry = calloc((size_t)n, sizeof(float)), *dy = calloc((size_t)n, sizeof(float));
    r.out[0].data = ry;
    cr_assert_eq(ref->run(&r, err, sizeof err), 0, "%s", err);
    op_call c3;
    make_call(&c3, &small, 2);
    c3.state = first;
    for (int i = 0; i < small.nin; i++) c3.in[i].data = in[i];
    c3.out[0].data = dy;
    cr_assert_eq(dnn->run(&c3, err, sizeof err), 0, "%s", err);
    expect_close(dy, ry, n, "conv rebuilt for batch 3", "output", 0, 2);
    dnn->release(c3.state);
    for (int i = 0; i < small.nin; i++) {
        free(in[i]);
        free(rin[i]);
    }
    free(ry);
    free(dy);
}

/* Runs the prepared call c (inputs in[]) and the reference on copies; compares outputs. */
static void run_and_compare(const tcase *tc, op_call *c, float **in, const char *label)
{
    const op_kernel *ref = op_kernel_get(tc->node.op, OP_BACKEND_REF), *dnn = op_onednn_kernel(tc->node.op);
    char err[256] = "";
    op_call r;
    make_call(&r, tc, 1);
    float *rout[OP_MAX_OUT], *dout[OP_MAX_OUT];
    for (int i = 0; i < tc->nin; i++) r.in[i].data = c->in[i].data = in[i];
    for (int i = 0; i < tc->nout; i++) {
        int64_t n = numel(&tc->out[i]);
        r.out[i].data = rout[i] = calloc((size_t)n, sizeof(float));
        c->out[i].data = dout[i] = malloc((size_t)n * sizeof(float));
        for (int64_t k = 0; k < n; k++) dout[i][k] = NAN;
    }
    cr_assert_eq(ref->run(&r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dnn->run(c, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < tc->nout; i++) {
        expect_close(dout[i], rout[i], numel(&tc->out[i]), label, "output", i, c->nthreads);
        free(rout[i]);
        free(dout[i]);
    }
}

/* The blocked copy of the weights is kept while the weights' version stays (even when the data
 * changed behind its back: every writer of the weights bumps the version), and redone when the
 * version changes or the weights move. */
Test(onednn_conv, weights_reordered_only_when_changed)
{
    op_conv_attrs a = conv_attrs(&conv_geoms[8]);
    tcase tcs[2];
    tcs[0] = conv_fwd_case(&conv_geoms[8], &a);
    memset(&tcs[1], 0, sizeof tcs[1]);
    tcs[1].node.op = OP_DENSE;
    tcs[1].node.attrs.dense.units = 97;
    tcs[1].node.attrs.dense.bias = true;
    tcs[1].in[tcs[1].nin++] = TS(F_RAND, 16, 256);
    tcs[1].in[tcs[1].nin++] = TS(F_RAND, 97, 256);
    tcs[1].in[tcs[1].nin++] = TS(F_RAND, 97);
    tcs[1].out[tcs[1].nout++] = TS(F_RAND, 16, 97);
    for (int t = 0; t < 2; t++) {
        const tcase *tc = &tcs[t];
        op_call c;
        make_call(&c, tc, 1);
        omp_set_num_threads(1);
        char err[256] = "";
        const op_kernel *dnn = op_onednn_kernel(tc->node.op);
        cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s", err);
        uint64_t s = 99;
        float *in[4];
        for (int i = 0; i < tc->nin; i++) in[i] = alloc_filled(&tc->in[i], &s);
        int64_t nw = numel(&tc->in[1]);
        c.weights_version = 1;
        run_and_compare(tc, &c, in, "first run");
        free(in[0]);
        in[0] = alloc_filled(&tc->in[0], &s);
        run_and_compare(tc, &c, in, "new x, same w");
        in[1][nw - 1] += 0.5f;
        c.weights_version = 2;
        run_and_compare(tc, &c, in, "last weight changed");
        in[1][0] -= 0.25f;
        c.weights_version = 3;
        run_and_compare(tc, &c, in, "first weight changed");
        float *moved = clone(in[1], &tc->in[1]);
        free(in[1]);
        in[1] = moved;
        run_and_compare(tc, &c, in, "weights moved, same version");
        /* a change without a new version is not seen: the kept copy is used */
        int64_t ny = numel(&tc->out[0]);
        float *before = malloc((size_t)ny * sizeof(float)), *after = malloc((size_t)ny * sizeof(float));
        c.out[0].data = before;
        cr_assert_eq(dnn->run(&c, err, sizeof err), 0, "%s", err);
        in[1][nw / 2] *= -1.0f;
        c.out[0].data = after;
        cr_assert_eq(dnn->run(&c, err, sizeof err), 0, "%s", err);
        cr_expect(memcmp(before, after, (size_t)ny * sizeof(float)) == 0, "the weights were reordered again");
        free(before);
        free(after);
        c.weights_version = 4;
        run_and_compare(tc, &c, in, "middle weight changed");
        dnn->release(c.state);
        for (int i = 0; i < tc->nin; i++) free(in[i]);
    }
}

/* The residual may share the output's memory (the planner's in-place add): the copy into
 * the output is skipped and the sum post-op adds to it. */
Test(onednn_conv, residual_in_place)
{
    static const int geoms[] = {0, 8};
    for (int gi = 0; gi < 2; gi++) {
        const cgeom *g = &conv_geoms[geoms[gi]];
        op_conv_attrs a = conv_attrs(g);
        a.residual = true;
        a.act = OP_ACT_RELU;
        tcase tc = conv_fwd_case(g, &a);
        const op_kernel *ref = op_kernel_get(tc.node.op, OP_BACKEND_REF), *dnn = op_onednn_kernel(tc.node.op);
        char err[256] = "";
        op_call c, r;
        make_call(&c, &tc, 2);
        omp_set_num_threads(2);
        cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s", err);
        for (int round = 0; round < 2; round++) {
            uint64_t s = 5 + (uint64_t)round;
            float *in[4];
            for (int i = 0; i < tc.nin; i++) in[i] = alloc_filled(&tc.in[i], &s);
            int64_t n = numel(&tc.out[0]);
            float *ry = calloc((size_t)n, sizeof(float));
            make_call(&r, &tc, 1);
            for (int i = 0; i < tc.nin; i++) r.in[i].data = in[i];
            r.out[0].data = ry;
            cr_assert_eq(ref->run(&r, err, sizeof err), 0, "%s", err);
            for (int i = 0; i < tc.nin; i++) c.in[i].data = in[i];
            c.out[0].data = in[tc.nin - 1]; /* y over r */
            c.weights_version = (uint64_t)round + 1;
            cr_assert_eq(dnn->run(&c, err, sizeof err), 0, "%s", err);
            expect_close(in[tc.nin - 1], ry, n, "conv residual in place", "output", 0, 2);
            for (int i = 0; i < tc.nin; i++) free(in[i]);
            free(ry);
        }
        dnn->release(c.state);
    }
}

Test(onednn_conv, reports_its_implementation)
{
    const cgeom *g = &conv_geoms[8];
    op_conv_attrs a = conv_attrs(g);
    tcase tc = conv_fwd_case(g, &a);
    op_call c;
    make_call(&c, &tc, 1);
    char err[256] = "";
    const op_kernel *dnn = op_onednn_kernel(OP_CONV2D);
    cr_assert_eq(dnn->prepare(&c, err, sizeof err), 0, "%s", err);
    cr_assert_gt(strlen(op_onednn_impl_name(c.state)), 0);
    cr_assert_str_eq(op_onednn_impl_name(NULL), "");
    dnn->release(c.state);
}

Test(onednn_conv, rejects_mismatched_weights)
{
    const cgeom *g = &conv_geoms[0];
    op_conv_attrs a = conv_attrs(g);
    tcase tc = conv_fwd_case(g, &a);
    tc.in[1].d[1] += 1; /* wrong channels per group */
    op_call c;
    make_call(&c, &tc, 1);
    char err[256] = "";
    cr_assert_eq(op_onednn_kernel(OP_CONV2D)->prepare(&c, err, sizeof err), -1);
    cr_assert_null(c.state);
    cr_assert(strstr(err, "oneDNN conv") != NULL, "message: %s", err);
}
