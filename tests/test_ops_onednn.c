/* The oneDNN kernels (ops/onednn/) against the reference kernels (ops/ref_*.c): random
 * inputs on many shapes (odd sizes, stride 2, padding, dilation 2, groups 2 and depthwise,
 * 1-D and 2-D, batch 1 and 7, bias on and off, every fused epilogue), at 1 and 2 threads.
 *
 * Each case runs two rounds with fresh random inputs through the same prepared state (so the
 * weights are re-read each run), prepare() being called with no data.  Outputs are filled
 * with NaN beforehand (an unwritten element fails).  Agreement: for every output tensor (and
 * every input, for the ops that update inputs in place),
 *     max_i |onednn_i - ref_i| <= 1e-4 * max_i |ref_i|
 * i.e. a relative error of 1e-4 measured against the tensor's largest magnitude. */
#include <criterion/criterion.h>

#include "tests/conv_test_util.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/registry.h"
#include "ops/kernels.h"
#include "ops/onednn/onednn.h"
#include "ops/ref.h"

#define RTOL 1e-4

enum fill { F_RAND, F_POS, F_RELU, F_UNIT };

typedef struct tspec {
    int rank;
    int64_t d[OP_MAX_DIMS];
    int fill;
} tspec;

typedef struct tcase {
    op_node node;
    int nin, nout;
    tspec in[OP_MAX_IN], out[OP_MAX_OUT];
} tcase;

static tspec ts(int fill, int rank, const int64_t *d)
{
    tspec t = {.rank = rank, .fill = fill};
    for (int i = 0; i < rank; i++) t.d[i] = d[i];
    return t;
}
#define TS(fill, ...) ts((fill), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                         (const int64_t[]){__VA_ARGS__})

static int64_t numel(const tspec *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->d[i];
    return n;
}

/* ---- a seeded generator */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_unit(uint64_t *s) /* in [0, 1) */
{
    return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0));
}

static uint64_t label_seed(const char *label, int round)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = label; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ (uint64_t)(round + 1) * 0x9e3779b97f4a7c15ull) | 1;
}

static float *alloc_filled(const tspec *t, uint64_t *s)
{
    int64_t n = numel(t);
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++) {
        float u = rng_unit(s);
        switch (t->fill) {
        case F_POS: p[i] = 0.5f + u; break;
        case F_RELU: p[i] = u < 0.5f ? 0.0f : 2.0f * u - 1.0f; break;
        case F_UNIT: p[i] = 0.02f + 0.96f * u; break;
        default: p[i] = 2.0f * u - 1.0f; break;
        }
    }
    return p;
}

static float *clone(const float *src, const tspec *t)
{
    size_t bytes = (size_t)(numel(t) > 0 ? numel(t) : 1) * sizeof(float);
    float *p = malloc(bytes);
    cr_assert_not_null(p);
    memcpy(p, src, bytes);
    return p;
}

static void set_tensor(op_tensor *o, const tspec *t, float *data)
{
    memset(o, 0, sizeof *o);
    o->rank = t->rank;
    for (int i = 0; i < t->rank; i++) o->d[i] = t->d[i];
    o->data = data;
}

static void make_call(op_call *c, const tcase *tc, int nthreads)
{
    memset(c, 0, sizeof *c);
    c->node = &tc->node;
    c->nin = tc->nin;
    c->nout = tc->nout;
    c->batch = tc->in[0].rank > 0 ? tc->in[0].d[0] : 1;
    c->nthreads = nthreads;
    for (int i = 0; i < tc->nin; i++) set_tensor(&c->in[i], &tc->in[i], NULL);
    for (int i = 0; i < tc->nout; i++) set_tensor(&c->out[i], &tc->out[i], NULL);
}

static void expect_close(const float *got, const float *ref, int64_t n, const char *label, const char *what,
                         int idx, int nthreads)
{
    double maxref = 0.0, maxdiff = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxdiff)) { /* NaN counts as the worst */
            maxdiff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    cr_assert(maxdiff <= RTOL * (maxref > 1e-30 ? maxref : 1e-30),
              "%s (%d threads): %s %d: max |diff| %g at %lld (onednn %g, ref %g), max |ref| %g", label,
              nthreads, what, idx, maxdiff, (long long)worst, (double)got[worst], (double)ref[worst], maxref);
}

/* Runs the case on both backends and compares; see the file comment. */
static void check_case(const tcase *tc, const char *label)
{
    const op_kernel *ref = op_kernel_get(tc->node.op, OP_BACKEND_REF);
    const op_kernel *dnn = op_kernel_get(tc->node.op, OP_BACKEND_ONEDNN);
    cr_assert_not_null(ref, "%s: no reference kernel", label);
    cr_assert_not_null(dnn, "%s: no oneDNN kernel", label);
    cr_assert_eq(dnn, op_onednn_kernel(tc->node.op));
    char err[256];
    op_call dc[2];
    for (int t = 0; t < 2; t++) {
        make_call(&dc[t], tc, t + 1);
        omp_set_num_threads(t + 1);
        err[0] = 0;
        cr_assert_not_null(dnn->prepare);
        cr_assert_eq(dnn->prepare(&dc[t], err, sizeof err), 0, "%s: prepare: %s", label, err);
        cr_assert_not_null(dc[t].state);
        cr_assert_eq(dnn->scratch, NULL);
    }
    for (int round = 0; round < 2; round++) {
        uint64_t s = label_seed(label, round);
        float *in[OP_MAX_IN], *rin[OP_MAX_IN], *rout[OP_MAX_OUT];
        for (int i = 0; i < tc->nin; i++) in[i] = alloc_filled(&tc->in[i], &s);
        op_call rc;
        make_call(&rc, tc, 1);
        for (int i = 0; i < tc->nin; i++) rc.in[i].data = rin[i] = clone(in[i], &tc->in[i]);
        for (int i = 0; i < tc->nout; i++) {
            rout[i] = calloc((size_t)(numel(&tc->out[i]) > 0 ? numel(&tc->out[i]) : 1), sizeof(float));
            rc.out[i].data = rout[i];
        }
        omp_set_num_threads(1);
        err[0] = 0;
        cr_assert_eq(ref->run(&rc, err, sizeof err), 0, "%s: reference: %s", label, err);
        for (int t = 0; t < 2; t++) {
            op_call *c = &dc[t];
            float *din[OP_MAX_IN], *dout[OP_MAX_OUT];
            for (int i = 0; i < tc->nin; i++) c->in[i].data = din[i] = clone(in[i], &tc->in[i]);
            for (int i = 0; i < tc->nout; i++) {
                int64_t n = numel(&tc->out[i]);
                dout[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
                for (int64_t k = 0; k < n; k++) dout[i][k] = NAN;
                c->out[i].data = dout[i];
            }
            omp_set_num_threads(t + 1);
            err[0] = 0;
            cr_assert_eq(dnn->run(c, err, sizeof err), 0, "%s (%d threads): run: %s", label, t + 1, err);
            for (int i = 0; i < tc->nout; i++)
                expect_close(dout[i], rout[i], numel(&tc->out[i]), label, "output", i, t + 1);
            for (int i = 0; i < tc->nin; i++)
                expect_close(din[i], rin[i], numel(&tc->in[i]), label, "input (after the run)", i, t + 1);
            for (int i = 0; i < tc->nin; i++) free(din[i]);
            for (int i = 0; i < tc->nout; i++) free(dout[i]);
        }
        for (int i = 0; i < tc->nin; i++) {
            free(in[i]);
            free(rin[i]);
        }
        for (int i = 0; i < tc->nout; i++) free(rout[i]);
    }
    for (int t = 0; t < 2; t++) dnn->release(dc[t].state);
}

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

/* Every fused epilogue on a few geometries (2-D plain, stride 2, blocked, 1-D). */
Test(onednn_conv, forward_epilogues)
{
    static const int geoms[] = {0, 2, 8, 14, 5};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const cgeom *g = &conv_geoms[geoms[gi]];
        for (int e = 0; e < 11; e++) {
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
            default: a.bias = !a.bias; a.residual = true; a.act = OP_ACT_SIGMOID; set_pool(&a, 2, 1, 0); break;
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

/* The blocked copy of the weights is kept while they do not change, and redone when any
 * element changes (first, last), whether or not the data pointer moves. */
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
        run_and_compare(tc, &c, in, "first run");
        free(in[0]);
        in[0] = alloc_filled(&tc->in[0], &s);
        run_and_compare(tc, &c, in, "new x, same w");
        in[1][nw - 1] += 0.5f;
        run_and_compare(tc, &c, in, "last weight changed");
        in[1][0] -= 0.25f;
        run_and_compare(tc, &c, in, "first weight changed");
        float *moved = clone(in[1], &tc->in[1]);
        free(in[1]);
        in[1] = moved;
        run_and_compare(tc, &c, in, "weights moved, unchanged");
        in[1][nw / 2] *= -1.0f;
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

/* ---- dense */

typedef struct dgeom {
    int64_t n;
    int xrank;
    int64_t xd[4]; /* after the batch */
    int64_t u;
    bool bias;
} dgeom;

static const dgeom dense_geoms[] = {
    {1, 1, {10}, 7, true},
    {7, 1, {33}, 10, false},
    {7, 3, {4, 3, 5}, 9, true}, /* image input read as [N, 60] */
    {2, 1, {64}, 33, true},
    {5, 2, {2, 11}, 16, false},
    {16, 1, {256}, 128, true},
};
#define NDENSE ((int)(sizeof dense_geoms / sizeof dense_geoms[0]))

static tspec dense_x(const dgeom *g)
{
    tspec t = {.rank = g->xrank + 1, .fill = F_RAND};
    t.d[0] = g->n;
    for (int i = 0; i < g->xrank; i++) t.d[i + 1] = g->xd[i];
    return t;
}

static int64_t dense_f(const dgeom *g)
{
    int64_t f = 1;
    for (int i = 0; i < g->xrank; i++) f *= g->xd[i];
    return f;
}

Test(onednn_dense, forward_and_epilogues)
{
    for (int i = 0; i < NDENSE; i++) {
        const dgeom *g = &dense_geoms[i];
        for (int e = 0; e < 7; e++) {
            tcase tc;
            memset(&tc, 0, sizeof tc);
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
            tc.in[tc.nin++] = TS(F_RAND, g->u, dense_f(g));
            if (g->bias) tc.in[tc.nin++] = TS(F_RAND, g->u);
            tc.out[tc.nout++] = TS(F_RAND, g->n, g->u);
            char label[64];
            snprintf(label, sizeof label, "dense geometry %d epilogue %d", i, e);
            check_case(&tc, label);
        }
    }
}

Test(onednn_dense, backward)
{
    for (int i = 0; i < NDENSE; i++) {
        const dgeom *g = &dense_geoms[i];
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_DENSE_BWD_DATA;
        tc.node.attrs.dense.units = g->u;
        tc.node.attrs.dense.bias = g->bias;
        tc.in[tc.nin++] = TS(F_RAND, g->n, g->u);
        tc.in[tc.nin++] = TS(F_RAND, g->u, dense_f(g));
        tc.out[tc.nout++] = dense_x(g);
        char label[64];
        snprintf(label, sizeof label, "dense bwd data geometry %d", i);
        check_case(&tc, label);

        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_DENSE_BWD_WEIGHTS;
        tc.node.attrs.dense.units = g->u;
        tc.node.attrs.dense.bias = g->bias;
        tc.in[tc.nin++] = TS(F_RAND, g->n, g->u);
        tc.in[tc.nin++] = dense_x(g);
        tc.out[tc.nout++] = TS(F_RAND, g->u, dense_f(g));
        if (g->bias) tc.out[tc.nout++] = TS(F_RAND, g->u);
        snprintf(label, sizeof label, "dense bwd weights geometry %d", i);
        check_case(&tc, label);
    }
}

/* ---- pooling */

typedef struct pgeom {
    int sdims;
    int64_t n, c, h, w;
    int64_t k[2], s[2], p[2];
} pgeom;

static const pgeom pool_geoms[] = {
    {2, 1, 3, 8, 8, {2, 2}, {2, 2}, {0, 0}},
    {2, 7, 4, 9, 11, {3, 3}, {2, 2}, {1, 1}},
    {2, 2, 5, 7, 10, {3, 3}, {1, 1}, {1, 1}},
    {2, 2, 3, 6, 9, {2, 3}, {1, 2}, {0, 1}},
    {2, 2, 16, 12, 13, {2, 2}, {2, 2}, {0, 0}},
    {1, 2, 3, 1, 17, {1, 3}, {1, 2}, {0, 1}},
    {1, 7, 2, 1, 10, {1, 2}, {1, 2}, {0, 0}},
};
#define NPOOL ((int)(sizeof pool_geoms / sizeof pool_geoms[0]))

static tspec pool_act(const pgeom *g, int fill, int64_t h, int64_t w)
{
    return g->sdims == 1 ? TS(fill, g->n, g->c, w) : TS(fill, g->n, g->c, h, w);
}

static tcase pool_case(const pgeom *g, op_kind op, int fill)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = op;
    op_pool_attrs *a = &tc.node.attrs.pool;
    a->sdims = g->sdims;
    for (int i = 0; i < 2; i++) {
        a->size[i] = g->k[i];
        a->stride[i] = g->s[i];
        a->pad[i] = g->p[i];
    }
    int64_t oh = (g->h + 2 * g->p[0] - g->k[0]) / g->s[0] + 1;
    int64_t ow = (g->w + 2 * g->p[1] - g->k[1]) / g->s[1] + 1;
    tspec x = pool_act(g, fill, g->h, g->w), y = pool_act(g, F_RAND, oh, ow);
    switch (op) {
    case OP_MAXPOOL:
    case OP_AVGPOOL:
        tc.in[tc.nin++] = x;
        tc.out[tc.nout++] = y;
        break;
    case OP_MAXPOOL_BWD:
        tc.in[tc.nin++] = y;
        tc.in[tc.nin++] = x;
        tc.out[tc.nout++] = x;
        break;
    default: /* AVGPOOL_BWD */
        tc.in[tc.nin++] = y;
        tc.out[tc.nout++] = x;
        break;
    }
    return tc;
}

Test(onednn_pool, max_and_avg)
{
    static const op_kind ops[] = {OP_MAXPOOL, OP_AVGPOOL, OP_MAXPOOL_BWD, OP_AVGPOOL_BWD};
    for (int i = 0; i < NPOOL; i++)
        for (int o = 0; o < 4; o++) {
            tcase tc = pool_case(&pool_geoms[i], ops[o], F_RAND);
            char label[64];
            snprintf(label, sizeof label, "%s geometry %d", op_name(ops[o]), i);
            check_case(&tc, label);
        }
}

/* After a relu many windows hold only zeros: the gradient goes to the first maximum. */
Test(onednn_pool, max_with_ties)
{
    for (int i = 0; i < NPOOL; i++) {
        tcase tc = pool_case(&pool_geoms[i], OP_MAXPOOL_BWD, F_RELU);
        char label[64];
        snprintf(label, sizeof label, "maxpool_bwd ties geometry %d", i);
        check_case(&tc, label);
        tc = pool_case(&pool_geoms[i], OP_MAXPOOL, F_RELU);
        snprintf(label, sizeof label, "maxpool ties geometry %d", i);
        check_case(&tc, label);
    }
}

Test(onednn_pool, global_avg)
{
    static const tspec xs[] = {
        {4, {2, 5, 7, 9}, F_RAND}, {3, {7, 3, 10}, F_RAND}, {4, {3, 16, 1, 1}, F_RAND}, {4, {1, 64, 8, 8}, F_RAND}};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_GLOBAL_AVGPOOL;
        tc.in[tc.nin++] = xs[i];
        tc.out[tc.nout++] = TS(F_RAND, xs[i].d[0], xs[i].d[1]);
        char label[64];
        snprintf(label, sizeof label, "global_avgpool %zu", i);
        check_case(&tc, label);
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_GLOBAL_AVGPOOL_BWD;
        tc.in[tc.nin++] = TS(F_RAND, xs[i].d[0], xs[i].d[1]);
        tc.out[tc.nout++] = xs[i];
        snprintf(label, sizeof label, "global_avgpool_bwd %zu", i);
        check_case(&tc, label);
    }
}

/* ---- elementwise, softmax, add, concat */

static const tspec elt_shapes[] = {{4, {7, 5, 3, 4}, F_RAND}, {2, {1, 33}, F_RAND}, {3, {2, 3, 17}, F_RAND}};
#define NELT ((int)(sizeof elt_shapes / sizeof elt_shapes[0]))

Test(onednn_eltwise, activations)
{
    static const op_kind ops[] = {OP_RELU, OP_SIGMOID, OP_TANH, OP_LEAKY_RELU};
    static const op_act acts[] = {OP_ACT_RELU, OP_ACT_SIGMOID, OP_ACT_TANH, OP_ACT_LEAKY_RELU};
    for (int i = 0; i < NELT; i++)
        for (int o = 0; o < 4; o++) {
            tcase tc;
            memset(&tc, 0, sizeof tc);
            tc.node.op = ops[o];
            tc.node.attrs.act.act = acts[o];
            tc.node.attrs.act.alpha = ops[o] == OP_LEAKY_RELU ? 0.01f : 0.0f;
            tc.in[tc.nin++] = elt_shapes[i];
            tc.out[tc.nout++] = elt_shapes[i];
            char label[64];
            snprintf(label, sizeof label, "%s shape %d", op_name(ops[o]), i);
            check_case(&tc, label);
        }
}

Test(onednn_eltwise, act_backward)
{
    /* leaky_relu with alpha <= 0 gets the forward input: any sign is meaningful there */
    static const struct { op_act act; float alpha; int fill; } v[] = {
        {OP_ACT_RELU, 0.0f, F_RELU},       {OP_ACT_SIGMOID, 0.0f, F_UNIT}, {OP_ACT_TANH, 0.0f, F_RAND},
        {OP_ACT_LEAKY_RELU, 0.1f, F_RAND}, {OP_ACT_LEAKY_RELU, -0.2f, F_RAND}, {OP_ACT_RELU, 0.0f, F_RAND},
    };
    for (int i = 0; i < NELT; i++)
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            tcase tc;
            memset(&tc, 0, sizeof tc);
            tc.node.op = OP_ACT_BWD;
            tc.node.attrs.act.act = v[k].act;
            tc.node.attrs.act.alpha = v[k].alpha;
            tc.in[tc.nin++] = elt_shapes[i];
            tc.in[tc.nin] = elt_shapes[i];
            tc.in[tc.nin++].fill = v[k].fill;
            tc.out[tc.nout++] = elt_shapes[i];
            char label[64];
            snprintf(label, sizeof label, "act_bwd %zu shape %d", k, i);
            check_case(&tc, label);
        }
}

Test(onednn_eltwise, softmax)
{
    static const tspec xs[] = {{2, {7, 10}, F_RAND}, {4, {2, 5, 3, 4}, F_RAND}, {3, {3, 4, 7}, F_RAND},
                               {2, {1, 1000}, F_RAND}};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_SOFTMAX;
        tc.in[tc.nin++] = xs[i];
        tc.out[tc.nout++] = xs[i];
        char label[64];
        snprintf(label, sizeof label, "softmax %zu", i);
        check_case(&tc, label);
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_SOFTMAX_BWD;
        tc.in[tc.nin++] = xs[i];
        tc.in[tc.nin] = xs[i];
        tc.in[tc.nin++].fill = F_UNIT;
        tc.out[tc.nout++] = xs[i];
        snprintf(label, sizeof label, "softmax_bwd %zu", i);
        check_case(&tc, label);
    }
}

Test(onednn_eltwise, add)
{
    static const struct { int k; op_act act; float alpha; int shape; } v[] = {
        {2, OP_ACT_NONE, 0.0f, 0}, {3, OP_ACT_RELU, 0.0f, 1}, {2, OP_ACT_LEAKY_RELU, 0.1f, 2},
        {4, OP_ACT_SIGMOID, 0.0f, 0}, {5, OP_ACT_TANH, 0.0f, 2}, {16, OP_ACT_RELU, 0.0f, 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        tcase tc;
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_ADD;
        tc.node.attrs.act.act = v[i].act;
        tc.node.attrs.act.alpha = v[i].alpha;
        for (int k = 0; k < v[i].k; k++) tc.in[tc.nin++] = elt_shapes[v[i].shape];
        tc.out[tc.nout++] = elt_shapes[v[i].shape];
        char label[64];
        snprintf(label, sizeof label, "add %zu", i);
        check_case(&tc, label);
    }
}

Test(onednn_eltwise, concat)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_CONCAT;
    tc.in[tc.nin++] = TS(F_RAND, 2, 3, 4, 5);
    tc.in[tc.nin++] = TS(F_RAND, 2, 5, 4, 5);
    tc.in[tc.nin++] = TS(F_RAND, 2, 1, 4, 5);
    tc.out[tc.nout++] = TS(F_RAND, 2, 9, 4, 5);
    check_case(&tc, "concat 4-D");

    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_CONCAT;
    tc.in[tc.nin++] = TS(F_RAND, 7, 3);
    tc.in[tc.nin++] = TS(F_RAND, 7, 8);
    tc.out[tc.nout++] = TS(F_RAND, 7, 11);
    check_case(&tc, "concat 2-D");

    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_CONCAT;
    tc.in[tc.nin++] = TS(F_RAND, 1, 16, 9);
    tc.in[tc.nin++] = TS(F_RAND, 1, 32, 9);
    tc.out[tc.nout++] = TS(F_RAND, 1, 48, 9);
    check_case(&tc, "concat 1-D");

    static const int64_t offs[] = {0, 3, 8};
    static const int64_t cs[] = {3, 5, 1};
    for (int i = 0; i < 3; i++) {
        memset(&tc, 0, sizeof tc);
        tc.node.op = OP_CONCAT_BWD;
        tc.node.attrs.slice.offset = offs[i];
        tc.in[tc.nin++] = TS(F_RAND, 2, 9, 4, 5);
        tc.out[tc.nout++] = TS(F_RAND, 2, cs[i], 4, 5);
        char label[64];
        snprintf(label, sizeof label, "concat_bwd offset %lld", (long long)offs[i]);
        check_case(&tc, label);
    }
    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_CONCAT_BWD;
    tc.node.attrs.slice.offset = 3;
    tc.in[tc.nin++] = TS(F_RAND, 7, 11);
    tc.out[tc.nout++] = TS(F_RAND, 7, 8);
    check_case(&tc, "concat_bwd 2-D");
}

/* ---- batchnorm */

static const tspec bn_shapes[] = {{4, {7, 5, 6, 4}, F_RAND}, {2, {7, 12}, F_RAND}, {3, {3, 4, 10}, F_RAND},
                                  {4, {1, 16, 5, 5}, F_RAND}, {4, {2, 32, 7, 7}, F_RAND}};
#define NBN ((int)(sizeof bn_shapes / sizeof bn_shapes[0]))

static tcase bn_case(const tspec *x, bool training)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_BATCHNORM;
    tc.node.attrs.bn.eps = 1e-5f;
    tc.node.attrs.bn.momentum = 0.1f;
    tc.node.attrs.bn.training = training;
    int64_t ch = x->d[1];
    tc.in[tc.nin++] = *x;
    tc.in[tc.nin++] = TS(F_POS, ch);  /* gamma */
    tc.in[tc.nin++] = TS(F_RAND, ch); /* beta */
    tc.in[tc.nin++] = TS(F_RAND, ch); /* running mean */
    tc.in[tc.nin++] = TS(F_POS, ch);  /* running var */
    tc.out[tc.nout++] = *x;
    if (training) {
        tc.out[tc.nout++] = TS(F_RAND, ch);
        tc.out[tc.nout++] = TS(F_RAND, ch);
    }
    return tc;
}

Test(onednn_norm, batchnorm_inference_and_training)
{
    for (int i = 0; i < NBN; i++)
        for (int t = 0; t < 2; t++) {
            tcase tc = bn_case(&bn_shapes[i], t == 1);
            char label[64];
            snprintf(label, sizeof label, "batchnorm %s shape %d", t ? "training" : "inference", i);
            check_case(&tc, label);
        }
}

Test(onednn_norm, batchnorm_backward)
{
    for (int i = 0; i < NBN; i++)
        for (int nout = 3; nout >= 1; nout -= 2) {
            const tspec *x = &bn_shapes[i];
            int64_t ch = x->d[1];
            tcase tc;
            memset(&tc, 0, sizeof tc);
            tc.node.op = OP_BATCHNORM_BWD;
            tc.node.attrs.bn.eps = 1e-5f;
            tc.node.attrs.bn.momentum = 0.1f;
            tc.node.attrs.bn.training = true;
            tc.in[tc.nin++] = *x;             /* dy */
            tc.in[tc.nin++] = *x;             /* x */
            tc.in[tc.nin++] = TS(F_POS, ch);  /* gamma */
            tc.in[tc.nin++] = TS(F_RAND, ch); /* save_mean */
            tc.in[tc.nin++] = TS(F_POS, ch);  /* save_invstd */
            tc.out[tc.nout++] = *x;
            for (int k = 1; k < nout; k++) tc.out[tc.nout++] = TS(F_RAND, ch);
            char label[64];
            snprintf(label, sizeof label, "batchnorm_bwd shape %d outputs %d", i, nout);
            check_case(&tc, label);
        }
}

/* ---- the table */

Test(onednn_table, covers_its_ops_and_leaves_the_rest)
{
    static const op_kind have[] = {
        OP_CONV1D, OP_CONV2D, OP_MAXPOOL, OP_AVGPOOL, OP_GLOBAL_AVGPOOL, OP_DENSE,
        OP_BATCHNORM, OP_RELU, OP_SIGMOID, OP_TANH, OP_LEAKY_RELU, OP_SOFTMAX,
        OP_CONCAT, OP_ADD, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS, OP_MAXPOOL_BWD,
        OP_AVGPOOL_BWD, OP_GLOBAL_AVGPOOL_BWD, OP_DENSE_BWD_DATA, OP_DENSE_BWD_WEIGHTS,
        OP_BATCHNORM_BWD, OP_ACT_BWD, OP_SOFTMAX_BWD, OP_CONCAT_BWD};
    static const op_kind none[] = {OP_FLATTEN, OP_DROPOUT, OP_DROPOUT_BWD, OP_XENT_LOSS,
                                 OP_MSE_LOSS, OP_SGD_UPDATE, OP_ADAM_UPDATE};
    for (size_t i = 0; i < sizeof have / sizeof have[0]; i++) {
        const op_kernel *k = op_onednn_kernel(have[i]);
        cr_assert_not_null(k, "no oneDNN kernel for %s", op_name(have[i]));
        cr_expect(k->run && k->prepare && k->release && !k->scratch);
        cr_expect_eq(op_kernel_get(have[i], OP_BACKEND_ONEDNN), k);
    }
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) cr_expect_null(op_onednn_kernel(none[i]));
    cr_expect_null(op_onednn_kernel(OP_COUNT));
}
