/* The native kernels beyond conv and dense (ops/native/native_{norm,pool,eltwise,train}.c)
 * against the reference kernels: batchnorm (inference, training with its running statistics,
 * backward), max / average / global-average pooling and their backward (1-D, 2-D, 3-D,
 * stride, padding, odd sizes, rows longer than one vector chunk), the activations and act_bwd,
 * add, flatten / copy, dropout, softmax, concat, the losses, the optimiser updates (with
 * clipping) and clip_grad_norm's kernels.  Shapes: odd sizes whose rows are no multiple of any
 * vector width, batch 1, and tensors large enough to split over threads; every ISA level this
 * CPU supports, 1 and 2 threads (tests/native_check_util.h says what agreement means; here
 * inputs an op updates in place are compared with the reference's like outputs). */
#include <criterion/criterion.h>

#include "ops/registry.h"
#include "tests/native_check_util.h"

/* Sets up the random inputs of a case before it runs (labels, positive variances). */
typedef void (*init_fn)(const tcase *tc, float **in);

static int64_t g_step = 1; /* c->step of the optimiser cases */
/* The layout check_ex gives the native call's tensors of rank g_layout_rank (3 or more): plain,
 * channels-last or blocked; the reference always runs plain and outputs are compared plain. */
static int g_layout = 0, g_layout_rank = 0;

static float *in_layout(const float *src, const tspec *t, int layout, bool to);

/* A tensor of the native call as check_ex lays it out. */
static bool laid_out(const tspec *t)
{
    return g_layout != OP_LAYOUT_PLAIN && t->rank == g_layout_rank && t->rank >= 3;
}

/* check_case with an init hook, inputs updated in place (bit k of inplace: input k) compared
 * with the reference's like outputs, and c->step set. */
static void check_ex(const tcase *tc, const char *label, init_fn init, unsigned inplace)
{
    const op_kernel *ref = op_kernel_get(tc->node.op, OP_BACKEND_REF);
    const op_kernel *nat = op_kernel_get(tc->node.op, OP_BACKEND_NATIVE);
    cr_assert_not_null(nat, "%s: no native kernel", label);
    char err[256];
    uint64_t s = label_seed(label);
    float *in[OP_MAX_IN], *rin[OP_MAX_IN], *rout[OP_MAX_OUT];
    for (int i = 0; i < tc->nin; i++)
        in[i] = alloc_random(&tc->in[i], &s);
    if (init)
        init(tc, in);
    op_call rc;
    make_call(&rc, tc, 1);
    rc.step = g_step;
    for (int i = 0; i < tc->nin; i++)
        rc.in[i].data = rin[i] = clone(in[i], &tc->in[i]);
    for (int i = 0; i < tc->nout; i++)
        rc.out[i].data = rout[i] = alloc_nan(&tc->out[i]);
    err[0] = '\0';
    cr_assert_eq(ref->run(&rc, err, sizeof err), 0, "%s: reference: %s", label, err);

    op_native_isa_level top = op_native_isa_supported();
    for (int level = OP_NATIVE_SCALAR; level <= (int)top; level++) {
        cr_assert_eq(op_native_force_isa((op_native_isa_level)level), 0);
        float *first[OP_MAX_IN + OP_MAX_OUT] = {0};
        for (int nt = 1; nt <= 2; nt++) {
            char what[200];
            snprintf(what, sizeof what, "%s [%s, %d thread%s]", label,
                     op_native_isa_name((op_native_isa_level)level), nt, nt > 1 ? "s" : "");
            op_call c;
            make_call(&c, tc, nt);
            c.step = g_step;
            float *din[OP_MAX_IN], *dout[OP_MAX_OUT], *lin[OP_MAX_IN] = {0};
            for (int i = 0; i < tc->nin; i++) {
                bool l = laid_out(&tc->in[i]);
                if (l)
                    lin[i] = in_layout(in[i], &tc->in[i], g_layout, true);
                c.in[i].data = din[i] = clone(l ? lin[i] : in[i], &tc->in[i]);
                c.in[i].layout = l ? g_layout : OP_LAYOUT_PLAIN;
            }
            for (int i = 0; i < tc->nout; i++) {
                c.out[i].data = dout[i] = alloc_nan(&tc->out[i]);
                c.out[i].layout = laid_out(&tc->out[i]) ? g_layout : OP_LAYOUT_PLAIN;
            }
            void *scratch = NULL;
            if (nt == 2 && nat->scratch) {
                size_t bytes = nat->scratch(&c);
                if (bytes > 0) {
                    scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
                    cr_assert_not_null(scratch);
                    c.scratch = scratch;
                }
            }
            err[0] = '\0';
            cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s: run: %s", what, err);
            for (int i = 0; i < tc->nout; i++) {
                float *plain = laid_out(&tc->out[i]) ? in_layout(dout[i], &tc->out[i], g_layout, false) : dout[i];
                expect_close(plain, rout[i], numel(&tc->out[i]), what, "output", i);
                if (plain != dout[i])
                    free(plain);
            }
            for (int i = 0; i < tc->nin; i++) {
                if (inplace & (1u << i))
                    expect_close(din[i], rin[i], numel(&tc->in[i]), what, "updated input", i);
                else
                    cr_assert(memcmp(din[i], lin[i] ? lin[i] : in[i], bytes_of(&tc->in[i])) == 0,
                              "%s: input %d changed by the run", what, i);
                free(lin[i]);
            }
            for (int i = 0; i < tc->nin + tc->nout; i++) {
                float *got = i < tc->nin ? din[i] : dout[i - tc->nin];
                const tspec *t = i < tc->nin ? &tc->in[i] : &tc->out[i - tc->nin];
                if (nt == 1) {
                    first[i] = got;
                    continue;
                }
                cr_assert(memcmp(first[i], got, bytes_of(t)) == 0,
                          "%s: tensor %d differs from the 1-thread run", what, i);
                free(first[i]);
                free(got);
            }
            free(scratch);
        }
    }
    cr_assert_eq(op_native_force_isa(top), 0);
    for (int i = 0; i < tc->nin; i++) {
        free(in[i]);
        free(rin[i]);
    }
    for (int i = 0; i < tc->nout; i++)
        free(rout[i]);
}

static tcase new_case(op_kind op)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.residual_in_place = -1;
    tc.node.op = op;
    snprintf(tc.node.name, sizeof tc.node.name, "%s_1", "node");
    return tc;
}

/* ---- batchnorm */

static const tspec bn_shapes[] = {
    {4, {1, 3, 5, 7}},     /* batch 1 */
    {4, {7, 5, 13, 13}},
    {4, {4, 17, 1, 1}},    /* one position per plane */
    {2, {9, 17}},          /* rank 2 */
    {3, {3, 6, 37}},       /* 1-D */
    {4, {2, 16, 32, 33}},  /* several threads' worth */
    {5, {2, 3, 3, 5, 7}},  /* 3-D */
};
#define NBN ((int)(sizeof bn_shapes / sizeof bn_shapes[0]))

static void bn_init(const tcase *tc, float **in)
{
    /* x offset from 0 (a mean to subtract), running_var positive */
    for (int64_t i = 0; i < numel(&tc->in[0]); i++)
        in[0][i] = in[0][i] * 2.0f + 0.75f;
    for (int64_t i = 0; i < numel(&tc->in[4]); i++)
        in[4][i] = fabsf(in[4][i]) + 0.1f;
}

Test(native_norm, batchnorm_forward, .timeout = 600)
{
    for (int i = 0; i < NBN; i++)
        for (int training = 0; training < 2; training++) {
            tcase tc = new_case(OP_BATCHNORM);
            tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = training};
            int64_t ch = bn_shapes[i].d[1];
            tc.in[tc.nin++] = bn_shapes[i];
            for (int k = 0; k < 4; k++)
                tc.in[tc.nin++] = TS(ch);
            tc.out[tc.nout++] = bn_shapes[i];
            if (training) {
                tc.out[tc.nout++] = TS(ch);
                tc.out[tc.nout++] = TS(ch);
            }
            char label[96];
            snprintf(label, sizeof label, "batchnorm shape %d %s", i,
                     training ? "training" : "inference");
            /* training updates running_mean and running_var in place */
            check_ex(&tc, label, bn_init, training ? (1u << 3) | (1u << 4) : 0);
        }
}

static void bn_bwd_init(const tcase *tc, float **in)
{
    for (int64_t i = 0; i < numel(&tc->in[1]); i++)
        in[1][i] = in[1][i] * 2.0f + 0.75f;
    for (int64_t i = 0; i < numel(&tc->in[3]); i++) {
        in[3][i] = 0.75f + 0.1f * in[3][i];        /* the saved mean, near x's */
        in[4][i] = 0.8f + 0.3f * fabsf(in[4][i]);   /* invstd */
    }
}

Test(native_norm, batchnorm_backward, .timeout = 600)
{
    for (int i = 0; i < NBN; i++)
        for (int nout = 1; nout <= 3; nout += 2) {
            tcase tc = new_case(OP_BATCHNORM_BWD);
            tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = true};
            int64_t ch = bn_shapes[i].d[1];
            tc.in[tc.nin++] = bn_shapes[i];
            tc.in[tc.nin++] = bn_shapes[i];
            for (int k = 0; k < 3; k++)
                tc.in[tc.nin++] = TS(ch);
            tc.out[tc.nout++] = bn_shapes[i];
            if (nout == 3) {
                tc.out[tc.nout++] = TS(ch);
                tc.out[tc.nout++] = TS(ch);
            }
            char label[96];
            snprintf(label, sizeof label, "batchnorm_bwd shape %d, %d outputs", i, nout);
            check_ex(&tc, label, bn_bwd_init, 0);
        }
}

/* src (plain [N, C, S]) in `layout` (channels-last [N, S, C], blocked [N, C/16, S, 16]), or
 * back to plain when !to (a new buffer either way). */
static float *in_layout(const float *src, const tspec *t, int layout, bool to)
{
    int64_t n = t->d[0], ch = t->d[1], sp = numel(t) / (n * ch > 0 ? n * ch : 1);
    float *dst = malloc(bytes_of(t));
    cr_assert_not_null(dst);
    for (int64_t b = 0; b < n; b++)
        for (int64_t k = 0; k < ch; k++)
            for (int64_t i = 0; i < sp; i++) {
                int64_t plain = (b * ch + k) * sp + i;
                int64_t other = layout == OP_LAYOUT_BLOCK16 ? ((b * (ch / 16) + k / 16) * sp + i) * 16 + k % 16
                                : layout == OP_LAYOUT_NHWC ? (b * sp + i) * ch + k
                                                           : plain;
                dst[to ? other : plain] = src[to ? plain : other];
            }
    return dst;
}

/* check_ex with the tensors shaped like x in `layout`. */
static void check_in_layout(const tcase *tc, const char *label, int layout, init_fn init, unsigned inplace)
{
    g_layout = layout;
    g_layout_rank = tc->in[tc->node.op == OP_BATCHNORM_BWD ? 1 : 0].rank;
    check_ex(tc, label, init, inplace);
    g_layout = OP_LAYOUT_PLAIN;
    g_layout_rank = 0;
}

static const tspec bn_cl_shapes[] = {
    {4, {2, 16, 5, 7}},
    {4, {3, 5, 13, 13}},   /* channels-last only: no multiple of 16 */
    {4, {2, 20, 7, 5}},    /* channels-last only: a chunk of 16 channels and 4 more */
    {4, {1, 32, 9, 9}},    /* batch 1 */
    {4, {2, 48, 32, 33}},  /* several threads' worth, tiles with a partial one */
    {5, {2, 16, 3, 5, 7}}, /* 3-D */
    {3, {3, 32, 37}},      /* 1-D */
};

Test(native_norm, batchnorm_channels_last_and_blocked, .timeout = 600)
{
    static const int layouts[] = {OP_LAYOUT_NHWC, OP_LAYOUT_BLOCK16};
    for (size_t i = 0; i < sizeof bn_cl_shapes / sizeof bn_cl_shapes[0]; i++)
        for (int l = 0; l < 2; l++) {
            const tspec *x = &bn_cl_shapes[i];
            int64_t ch = x->d[1];
            if (layouts[l] == OP_LAYOUT_BLOCK16 && ch % 16 != 0)
                continue;
            for (int op = 0; op < 3; op++) { /* inference, training, backward */
                tcase tc = new_case(op < 2 ? OP_BATCHNORM : OP_BATCHNORM_BWD);
                tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = op > 0};
                tc.in[tc.nin++] = *x;
                if (op == 2)
                    tc.in[tc.nin++] = *x;
                for (int k = 0; k < (op == 2 ? 3 : 4); k++)
                    tc.in[tc.nin++] = TS(ch);
                tc.out[tc.nout++] = *x;
                if (op > 0) {
                    tc.out[tc.nout++] = TS(ch);
                    tc.out[tc.nout++] = TS(ch);
                }
                char label[96];
                snprintf(label, sizeof label, "%s shape %zu %s", op == 2 ? "batchnorm_bwd" : "batchnorm", i,
                         l ? "blocked" : "channels-last");
                check_in_layout(&tc, label, layouts[l], op == 2 ? bn_bwd_init : bn_init,
                               op == 1 ? (1u << 3) | (1u << 4) : 0);
            }
        }
}

/* Batchnorm with its fused epilogue (+ residual, activation) and batchnorm_bwd with a fused
 * activation's backward, in every layout. */
Test(native_norm, batchnorm_fused, .timeout = 600)
{
    static const int layouts[] = {OP_LAYOUT_PLAIN, OP_LAYOUT_NHWC, OP_LAYOUT_BLOCK16};
    static const op_act acts[] = {OP_ACT_RELU, OP_ACT_TANH};
    static const tspec shapes[] = {{4, {3, 16, 9, 11}}, {4, {2, 32, 16, 17}}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int l = 0; l < 3; l++)
            for (int a = 0; a < 2; a++)
                for (int op = 0; op < 4; op++) { /* inference, training, training + add, backward */
                    const tspec *x = &shapes[i];
                    int64_t ch = x->d[1];
                    tcase tc = new_case(op < 3 ? OP_BATCHNORM : OP_BATCHNORM_BWD);
                    tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = op > 0,
                                                     .residual = op == 2, .act = acts[a], .alpha = 0.0f};
                    tc.in[tc.nin++] = *x;
                    if (op == 3)
                        tc.in[tc.nin++] = *x;
                    for (int k = 0; k < (op == 3 ? 3 : 4); k++)
                        tc.in[tc.nin++] = TS(ch);
                    if (op == 2 || op == 3) /* the residual; the activation's output */
                        tc.in[tc.nin++] = *x;
                    tc.out[tc.nout++] = *x;
                    if (op > 0) {
                        tc.out[tc.nout++] = TS(ch);
                        tc.out[tc.nout++] = TS(ch);
                    }
                    char label[128];
                    snprintf(label, sizeof label, "%s shape %zu layout %d op %d +%s", op == 3 ? "batchnorm_bwd" : "batchnorm",
                             i, layouts[l], op, op_act_name(acts[a]));
                    check_in_layout(&tc, label, layouts[l], op == 3 ? bn_bwd_init : bn_init,
                                   op == 1 || op == 2 ? (1u << 3) | (1u << 4) : 0);
                }
}

/* A batchnorm whose output is in another layout than its input is refused. */
Test(native_norm, batchnorm_refuses_mixed_layouts)
{
    tspec x = {4, {2, 16, 5, 7}};
    tcase tc = new_case(OP_BATCHNORM);
    tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = true};
    tc.in[tc.nin++] = x;
    for (int k = 0; k < 4; k++)
        tc.in[tc.nin++] = TS(16);
    tc.out[tc.nout++] = x;
    tc.out[tc.nout++] = TS(16);
    tc.out[tc.nout++] = TS(16);
    op_call c;
    make_call(&c, &tc, 1);
    uint64_t s = 7;
    float *bufs[8];
    for (int i = 0; i < tc.nin; i++)
        c.in[i].data = bufs[i] = alloc_random(&tc.in[i], &s);
    for (int i = 0; i < tc.nout; i++)
        c.out[i].data = bufs[tc.nin + i] = alloc_nan(&tc.out[i]);
    c.in[0].layout = OP_LAYOUT_NHWC;
    char err[256] = "";
    cr_assert_eq(op_kernel_get(OP_BATCHNORM, OP_BACKEND_NATIVE)->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "another layout"), "%s", err);
    for (int i = 0; i < tc.nin + tc.nout; i++)
        free(bufs[i]);
}

/* ---- pooling */

typedef struct pgeom {
    int sdims;
    int64_t n, c, d, h, w;
    int64_t k[3], s[3], p[3]; /* depth, height, width */
} pgeom;

static const pgeom pool_geoms[] = {
    {2, 2, 3, 1, 13, 13, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},   /* floor mode: a row unread */
    {2, 1, 5, 1, 17, 17, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},   /* overlapping, padded */
    {2, 2, 4, 1, 9, 11, {1, 3, 3}, {1, 1, 1}, {0, 1, 1}},    /* stride 1 */
    {2, 3, 2, 1, 8, 8, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}},
    {2, 1, 3, 1, 7, 7, {1, 1, 1}, {1, 2, 2}, {0, 0, 0}},     /* stride beyond the window */
    {2, 3, 2, 1, 7, 20, {1, 2, 3}, {1, 1, 2}, {0, 1, 1}},    /* rectangular */
    {2, 1, 2, 1, 3, 600, {1, 1, 3}, {1, 1, 1}, {0, 0, 1}},   /* rows longer than a chunk */
    {2, 2, 16, 1, 32, 32, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},  /* several threads' worth */
    {2, 1, 2, 1, 5, 5, {1, 5, 5}, {1, 1, 1}, {0, 2, 2}},     /* windows wider than the interior */
    {2, 1, 2, 1, 12, 12, {1, 9, 9}, {1, 1, 1}, {0, 4, 4}},   /* more taps than the vector loop keeps */
    {2, 2, 3, 1, 9, 9, {1, 3, 3}, {1, 3, 3}, {0, 1, 1}},     /* disjoint windows, padded */
    {1, 2, 3, 1, 1, 50, {1, 1, 3}, {1, 1, 2}, {0, 0, 1}},    /* 1-D */
    {3, 1, 2, 5, 7, 9, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}},     /* 3-D */
    {3, 2, 1, 4, 5, 6, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}},     /* 3-D padded */
    {3, 2, 3, 3, 6, 6, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},     /* 3-D, 2x2 windows on every depth */
};
#define NPOOL ((int)(sizeof pool_geoms / sizeof pool_geoms[0]))

static tspec pool_spec(const pgeom *g, int64_t d, int64_t h, int64_t w)
{
    if (g->sdims == 1)
        return TS(g->n, g->c, w);
    if (g->sdims == 2)
        return TS(g->n, g->c, h, w);
    return TS(g->n, g->c, d, h, w);
}

static op_pool_attrs pool_attrs(const pgeom *g)
{
    op_pool_attrs a = {.sdims = g->sdims};
    a.size[0] = g->k[1], a.size[1] = g->k[2];
    a.stride[0] = g->s[1], a.stride[1] = g->s[2];
    a.pad[0] = g->p[1], a.pad[1] = g->p[2];
    a.size_d = g->k[0], a.stride_d = g->s[0], a.pad_d = g->p[0];
    return a;
}

static int64_t pooled(int64_t n, int64_t k, int64_t s, int64_t p)
{
    return (n + 2 * p - k) / s + 1;
}

/* The pooled output's spec of geometry g. */
static tspec pooled_spec(const pgeom *g)
{
    return pool_spec(g, pooled(g->d, g->k[0], g->s[0], g->p[0]), pooled(g->h, g->k[1], g->s[1], g->p[1]),
                     pooled(g->w, g->k[2], g->s[2], g->p[2]));
}

Test(native_pool, max_and_avg_forward_and_backward, .timeout = 600)
{
    static const op_kind ops[] = {OP_MAXPOOL, OP_MAXPOOL_BWD, OP_AVGPOOL, OP_AVGPOOL_BWD};
    for (int i = 0; i < NPOOL; i++) {
        const pgeom *g = &pool_geoms[i];
        tspec x = pool_spec(g, g->d, g->h, g->w);
        tspec y = pooled_spec(g);
        for (int o = 0; o < 4; o++) {
            bool max = ops[o] == OP_MAXPOOL || ops[o] == OP_MAXPOOL_BWD;
            if (max && (g->p[1] >= g->k[1] || g->p[2] >= g->k[2] || g->p[0] >= g->k[0]))
                continue;
            tcase tc = new_case(ops[o]);
            tc.node.attrs.pool = pool_attrs(g);
            switch (ops[o]) {
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
            default:
                tc.in[tc.nin++] = y;
                tc.out[tc.nout++] = x;
                break;
            }
            char label[96];
            snprintf(label, sizeof label, "%s geometry %d", op_name(ops[o]), i);
            check_case(&tc, label);
            if (ops[o] == OP_MAXPOOL_BWD) /* the activation's backward fused */
                for (int ai = 0; ai < 4; ai++) {
                    op_act act = (const op_act[]){OP_ACT_RELU, OP_ACT_LEAKY_RELU, OP_ACT_SIGMOID, OP_ACT_TANH}[ai];
                    tc.node.attrs.pool.act = act;
                    tc.node.attrs.pool.alpha = 0.1f;
                    snprintf(label, sizeof label, "maxpool_bwd +%s_bwd geometry %d", op_act_name(act), i);
                    check_case(&tc, label);
                }
        }
    }
}


/* Rounds the n values at v to a few levels: ties, where the first maximum in scan order must
 * win. */
static void round_ties(float *v, int64_t n)
{
    for (int64_t e = 0; e < n; e++)
        v[e] = roundf(v[e] * 3.0f);
}

/* Every input rounded (round_ties), and a NaN in every 37th element of x, which the reference's
 * comparisons never pick. */
static void ties_and_nans(const tcase *tc, float **in)
{
    for (int k = 0; k < tc->nin; k++)
        round_ties(in[k], numel(&tc->in[k]));
    for (int64_t e = 5; e < numel(&tc->in[1]); e += 37)
        in[1][e] = NAN;
}

/* Max-pool backward of 2x2 windows at stride 2 on plain tensors (the row loop of
 * simd_common.h, its vector body and tail) gives the reference's gradients with ties and NaNs
 * in x, alone and with an activation's backward fused, at every level. */
Test(native_pool, max_backward_2x2_ties_and_nans)
{
    static const pgeom geoms[] = {
        {2, 3, 6, 1, 28, 28, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},  /* LeNet-5's: 14 windows a row */
        {2, 2, 3, 1, 13, 13, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},  /* floor mode: 6 windows, a column unread */
        {2, 1, 2, 1, 4, 34, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},   /* 17 windows: an odd count */
        {3, 2, 3, 3, 6, 6, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}},    /* 3-D, 2x2 windows on every depth */
    };
    for (int i = 0; i < (int)(sizeof geoms / sizeof geoms[0]); i++) {
        const pgeom *g = &geoms[i];
        tcase tc = new_case(OP_MAXPOOL_BWD);
        tc.node.attrs.pool = pool_attrs(g);
        tc.in[tc.nin++] = pooled_spec(g);
        tc.in[tc.nin++] = pool_spec(g, g->d, g->h, g->w);
        tc.out[tc.nout++] = tc.in[1];
        for (int ai = 0; ai < 3; ai++) {
            tc.node.attrs.pool.act = (const op_act[]){OP_ACT_NONE, OP_ACT_RELU, OP_ACT_LEAKY_RELU}[ai];
            tc.node.attrs.pool.alpha = 0.1f;
            char label[96];
            snprintf(label, sizeof label, "maxpool_bwd 2x2 ties +%s geometry %d", op_act_name(tc.node.attrs.pool.act), i);
            check_ex(&tc, label, ties_and_nans, 0);
        }
    }
}

/* Max pooling and its backward in channels-last order (every tensor of the call) equal the
 * reference's plain results bit for bit, with ties (values rounded to a few levels) so that the
 * first maximum must win, on 1 and 2 threads. */
Test(native_pool, max_channels_last, .timeout = 600)
{
    for (int i = 0; i < NPOOL; i++) {
        const pgeom *g = &pool_geoms[i];
        if (g->p[1] >= g->k[1] || g->p[2] >= g->k[2] || g->p[0] >= g->k[0])
            continue;
        tspec x = pool_spec(g, g->d, g->h, g->w);
        tspec y = pooled_spec(g);
        for (int bwd = 0; bwd < 3; bwd++) { /* 2: backward with the relu's backward fused */
            tcase tc = new_case(bwd ? OP_MAXPOOL_BWD : OP_MAXPOOL);
            tc.node.attrs.pool = pool_attrs(g);
            if (bwd == 2)
                tc.node.attrs.pool.act = OP_ACT_RELU;
            if (bwd) {
                tc.in[tc.nin++] = y;
                tc.in[tc.nin++] = x;
                tc.out[tc.nout++] = x;
            } else {
                tc.in[tc.nin++] = x;
                tc.out[tc.nout++] = y;
            }
            char label[96];
            snprintf(label, sizeof label, "channels-last %s%s geometry %d", op_name(tc.node.op), bwd == 2 ? " +relu_bwd" : "", i);
            uint64_t seed = label_seed(label);
            float *in[2], *cin[2];
            for (int k = 0; k < tc.nin; k++) {
                in[k] = alloc_random(&tc.in[k], &seed);
                round_ties(in[k], numel(&tc.in[k]));
                cin[k] = in_layout(in[k], &tc.in[k], OP_LAYOUT_NHWC, true);
            }
            char err[256] = "";
            op_call rc;
            make_call(&rc, &tc, 1);
            for (int k = 0; k < tc.nin; k++) rc.in[k].data = in[k];
            float *ref = alloc_nan(&tc.out[0]);
            rc.out[0].data = ref;
            cr_assert_eq(op_kernel_get(tc.node.op, OP_BACKEND_REF)->run(&rc, err, sizeof err), 0, "%s: %s", label, err);
            for (int nt = 1; nt <= 2; nt++) {
                op_call c;
                make_call(&c, &tc, nt);
                for (int k = 0; k < tc.nin; k++) c.in[k].data = cin[k], c.in[k].layout = OP_LAYOUT_NHWC;
                float *got = alloc_nan(&tc.out[0]);
                c.out[0].data = got, c.out[0].layout = OP_LAYOUT_NHWC;
                cr_assert_eq(op_kernel_get(tc.node.op, OP_BACKEND_NATIVE)->run(&c, err, sizeof err), 0, "%s: %s", label,
                             err);
                float *plain = in_layout(got, &tc.out[0], OP_LAYOUT_NHWC, false);
                for (int64_t e = 0; e < numel(&tc.out[0]); e++)
                    cr_assert(memcmp(&plain[e], &ref[e], sizeof(float)) == 0, "%s, %d threads: element %lld: %g vs %g",
                              label, nt, (long long)e, plain[e], ref[e]);
                free(got), free(plain);
            }
            for (int k = 0; k < tc.nin; k++) free(in[k]), free(cin[k]);
            free(ref);
        }
    }
}

/* The element-wise kernels take channels-last and blocked tensors as they are (every element
 * alone): relu, act_bwd (with a summed gradient too) and add give the reference's results after
 * reordering; tensors of one call in two layouts are refused, and the reference refuses any but
 * plain ones. */
Test(native_eltwise, channels_last_and_blocked_accepted)
{
    static const op_kind ops[] = {OP_RELU, OP_ACT_BWD, OP_ACT_BWD, OP_ADD};
    static const int layouts[] = {OP_LAYOUT_NHWC, OP_LAYOUT_BLOCK16};
    for (int o = 0; o < 4; o++)
        for (int l = 0; l < 2; l++) {
            tcase tc = new_case(ops[o]);
            tc.node.attrs.act.act = OP_ACT_RELU;
            int nin = ops[o] == OP_RELU ? 1 : o == 2 ? 3 : 2;
            for (int k = 0; k < nin; k++)
                tc.in[tc.nin++] = TS(2, 32, 7, 3);
            tc.out[tc.nout++] = TS(2, 32, 7, 3);
            char label[96];
            snprintf(label, sizeof label, "%s with %d inputs, layout %d", op_name(ops[o]), nin, layouts[l]);
            check_in_layout(&tc, label, layouts[l], NULL, 0);

            op_call c;
            make_call(&c, &tc, 1);
            uint64_t seed = 5;
            float *bufs[4];
            for (int k = 0; k < tc.nin; k++)
                c.in[k].data = bufs[k] = alloc_random(&tc.in[k], &seed), c.in[k].layout = layouts[l];
            c.out[0].data = bufs[tc.nin] = alloc_nan(&tc.out[0]);
            c.out[0].layout = layouts[1 - l];
            char err[256] = "";
            cr_assert_neq(op_kernel_get(ops[o], OP_BACKEND_NATIVE)->run(&c, err, sizeof err), 0, "%s", label);
            cr_assert(strstr(err, "different layouts"), "%s: %s", label, err);
            c.out[0].layout = layouts[l];
            cr_assert_neq(op_kernel_get(ops[o], OP_BACKEND_REF)->run(&c, err, sizeof err), 0, "%s", label);
            for (int k = 0; k <= tc.nin; k++)
                free(bufs[k]);
        }
}

Test(native_pool, global_average, .timeout = 600)
{
    static const tspec shapes[] = {
        {4, {3, 7, 5, 5}}, {4, {1, 64, 8, 8}}, {3, {2, 3, 17}}, {4, {2, 3, 1, 1}},
        {4, {4, 32, 33, 33}},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        tspec y = TS(shapes[i].d[0], shapes[i].d[1]);
        tcase f = new_case(OP_GLOBAL_AVGPOOL);
        f.in[f.nin++] = shapes[i];
        f.out[f.nout++] = y;
        tcase b = new_case(OP_GLOBAL_AVGPOOL_BWD);
        b.in[b.nin++] = y;
        b.out[b.nout++] = shapes[i];
        char label[96];
        snprintf(label, sizeof label, "global_avgpool shape %zu", i);
        check_case(&f, label);
        snprintf(label, sizeof label, "global_avgpool_bwd shape %zu", i);
        check_case(&b, label);
    }
}

Test(native_pool, refuses_what_the_reference_refuses)
{
    const op_kernel *k = op_kernel_get(OP_MAXPOOL, OP_BACKEND_NATIVE);
    tcase tc = new_case(OP_MAXPOOL);
    tc.node.attrs.pool = (op_pool_attrs){.sdims = 2, .size = {2, 2}, .stride = {2, 2}, .pad = {2, 0}};
    tc.in[tc.nin++] = TS(1, 1, 6, 6);
    tc.out[tc.nout++] = TS(1, 1, 5, 3);
    op_call c;
    make_call(&c, &tc, 1);
    float x[36] = {0}, y[15];
    c.in[0].data = x;
    c.out[0].data = y;
    char err[256] = "";
    cr_assert_eq(k->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "pad 2 must be smaller than size 2"), "%s", err);
    c.node = &tc.node;
    tc.node.attrs.pool.pad[0] = 0;
    c.out[0].d[2] = 4; /* should be 3 */
    cr_assert_eq(k->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "pools to 3x3"), "%s", err);
}

/* ---- element-wise */

static const tspec elt_shapes[] = {
    {4, {3, 5, 7, 9}}, {2, {1, 17}}, {4, {2, 16, 40, 41}}, {3, {1, 1, 1}},
};
#define NELT ((int)(sizeof elt_shapes / sizeof elt_shapes[0]))

static const op_act_attrs acts[] = {
    {OP_ACT_RELU, 0.0f}, {OP_ACT_LEAKY_RELU, 0.1f}, {OP_ACT_SIGMOID, 0.0f}, {OP_ACT_TANH, 0.0f},
};
static const op_kind act_ops[] = {OP_RELU, OP_LEAKY_RELU, OP_SIGMOID, OP_TANH};

Test(native_eltwise, activations_forward_and_backward, .timeout = 600)
{
    for (int i = 0; i < NELT; i++)
        for (int a = 0; a < 4; a++) {
            tcase f = new_case(act_ops[a]);
            f.node.attrs.act = acts[a];
            f.in[f.nin++] = elt_shapes[i];
            f.out[f.nout++] = elt_shapes[i];
            char label[96];
            snprintf(label, sizeof label, "%s shape %d", op_name(act_ops[a]), i);
            check_case(&f, label);
            tcase b = new_case(OP_ACT_BWD);
            b.node.attrs.act = acts[a];
            b.in[b.nin++] = elt_shapes[i];
            b.in[b.nin++] = elt_shapes[i];
            b.out[b.nout++] = elt_shapes[i];
            snprintf(label, sizeof label, "act_bwd %s shape %d", op_name(act_ops[a]), i);
            check_case(&b, label);
            for (int more = 1; more <= 2; more++) { /* a fused gradient sum: dy + inputs 2... */
                b.in[b.nin++] = elt_shapes[i];
                snprintf(label, sizeof label, "act_bwd %s shape %d, %d summed", op_name(act_ops[a]), i, more + 1);
                check_case(&b, label);
            }
        }
}

Test(native_eltwise, add_with_activations, .timeout = 600)
{
    for (int i = 0; i < NELT; i++)
        for (int a = -1; a < 4; a++)
            for (int nin = 2; nin <= 3; nin++) {
                tcase tc = new_case(OP_ADD);
                if (a >= 0)
                    tc.node.attrs.act = acts[a];
                for (int k = 0; k < nin; k++)
                    tc.in[tc.nin++] = elt_shapes[i];
                tc.out[tc.nout++] = elt_shapes[i];
                char label[96];
                snprintf(label, sizeof label, "add of %d, act %d, shape %d", nin, a, i);
                check_case(&tc, label);
            }
}

Test(native_eltwise, in_place)
{
    /* an activation, add and act_bwd writing over their first input */
    const op_kind ops[] = {OP_RELU, OP_ADD, OP_ACT_BWD};
    for (int o = 0; o < 3; o++) {
        tcase tc = new_case(ops[o]);
        tc.node.attrs.act = acts[0];
        tc.in[tc.nin++] = elt_shapes[2];
        if (ops[o] != OP_RELU)
            tc.in[tc.nin++] = elt_shapes[2];
        tc.out[tc.nout++] = elt_shapes[2];
        tc.residual_in_place = 0;
        char label[96];
        snprintf(label, sizeof label, "%s in place", op_name(ops[o]));
        check_case(&tc, label);
    }
}

Test(native_eltwise, data_movement_dropout_softmax, .timeout = 600)
{
    char label[96];
    for (int i = 0; i < NELT; i++) {
        const tspec *x = &elt_shapes[i];
        tcase fl = new_case(OP_FLATTEN);
        fl.in[fl.nin++] = *x;
        fl.out[fl.nout++] = TS(x->d[0], numel(x) / x->d[0]);
        snprintf(label, sizeof label, "flatten shape %d", i);
        check_case(&fl, label);
        tcase cp = new_case(OP_COPY);
        cp.in[cp.nin++] = fl.out[0];
        cp.out[cp.nout++] = *x;
        snprintf(label, sizeof label, "copy shape %d", i);
        check_case(&cp, label);
        for (int training = 0; training < 2; training++) {
            tcase d = new_case(OP_DROPOUT);
            d.node.attrs.dropout = (op_dropout_attrs){.p = 0.3f, .training = training};
            d.in[d.nin++] = *x;
            d.out[d.nout++] = *x;
            if (training)
                d.out[d.nout++] = *x;
            snprintf(label, sizeof label, "dropout shape %d training %d", i, training);
            check_case(&d, label);
        }
        tcase db = new_case(OP_DROPOUT_BWD);
        db.in[db.nin++] = *x;
        db.in[db.nin++] = *x;
        db.out[db.nout++] = *x;
        snprintf(label, sizeof label, "dropout_bwd shape %d", i);
        check_case(&db, label);
        if (x->rank >= 2) {
            tcase sm = new_case(OP_SOFTMAX);
            sm.in[sm.nin++] = *x;
            sm.out[sm.nout++] = *x;
            snprintf(label, sizeof label, "softmax shape %d", i);
            check_case(&sm, label);
            tcase sb = new_case(OP_SOFTMAX_BWD);
            sb.in[sb.nin++] = *x;
            sb.in[sb.nin++] = *x;
            sb.out[sb.nout++] = *x;
            snprintf(label, sizeof label, "softmax_bwd shape %d", i);
            check_case(&sb, label);
        }
    }
    tcase cc = new_case(OP_CONCAT);
    cc.in[cc.nin++] = TS(2, 3, 4, 5);
    cc.in[cc.nin++] = TS(2, 5, 4, 5);
    cc.in[cc.nin++] = TS(2, 1, 4, 5);
    cc.out[cc.nout++] = TS(2, 9, 4, 5);
    check_case(&cc, "concat");
    tcase cb = new_case(OP_CONCAT_BWD);
    cb.node.attrs.slice.offset = 3;
    cb.in[cb.nin++] = TS(2, 9, 4, 5);
    cb.out[cb.nout++] = TS(2, 5, 4, 5);
    check_case(&cb, "concat_bwd");
}

/* ---- losses */

static void label_init(const tcase *tc, float **in)
{
    int64_t k = tc->in[0].d[1];
    for (int64_t i = 0; i < numel(&tc->in[1]); i++)
        in[1][i] = (float)((int64_t)((in[1][i] + 1.0f) * 0.5f * (float)k) % k);
    for (int64_t i = 0; i < numel(&tc->in[0]); i++)
        in[0][i] *= 4.0f;
}

Test(native_train, cross_entropy_and_mse)
{
    static const int64_t nk[][2] = {{1, 10}, {7, 10}, {64, 10}, {5, 3}, {3, 1000}};
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++)
        for (int e = 0; e < 2; e++)
            for (int nout = 1; nout <= 2; nout++) {
                tcase tc = new_case(OP_XENT_LOSS);
                tc.node.attrs.loss.label_smoothing = e ? 0.1 : 0.0;
                tc.in[tc.nin++] = TS(nk[i][0], nk[i][1]);
                tc.in[tc.nin++] = TS(nk[i][0], 1);
                tc.out[tc.nout++] = TS(1);
                if (nout == 2)
                    tc.out[tc.nout++] = TS(nk[i][0], nk[i][1]);
                char label[96];
                snprintf(label, sizeof label, "cross_entropy %zu smoothing %d outputs %d", i, e, nout);
                check_ex(&tc, label, label_init, 0);
            }
    tcase m = new_case(OP_MSE_LOSS);
    m.in[m.nin++] = TS(5, 3, 7);
    m.in[m.nin++] = TS(5, 3, 7);
    m.out[m.nout++] = TS(1);
    m.out[m.nout++] = TS(5, 3, 7);
    check_ex(&m, "mse", NULL, 0);
}

Test(native_train, cross_entropy_refuses_bad_labels)
{
    const op_kernel *k = op_kernel_get(OP_XENT_LOSS, OP_BACKEND_NATIVE);
    tcase tc = new_case(OP_XENT_LOSS);
    tc.in[tc.nin++] = TS(2, 3);
    tc.in[tc.nin++] = TS(2, 1);
    tc.out[tc.nout++] = TS(1);
    op_call c;
    make_call(&c, &tc, 1);
    float x[6] = {0}, l[2] = {1, 3}, loss;
    c.in[0].data = x;
    c.in[1].data = l;
    c.out[0].data = &loss;
    char err[256] = "";
    cr_assert_eq(k->run(&c, err, sizeof err), -1);
    cr_assert(strstr(err, "label 3 out of range [0, 3) at example 1"), "%s", err);
}

/* ---- optimiser updates and clipping */

static void optim_init(const tcase *tc, float **in)
{
    /* Adam's second moment is never negative; the clip scale is in (0, 1] */
    if (tc->node.op != OP_SGD_UPDATE)
        for (int64_t i = 0; i < numel(&tc->in[3]); i++)
            in[3][i] = fabsf(in[3][i]) * 0.01f;
    if (tc->node.attrs.optim.clip)
        in[tc->nin - 1][0] = 0.375f;
}

static const int64_t optim_sizes[] = {1, 17, 257, 40001}; /* 257: a block of the updates and one more */

Test(native_train, sgd_updates, .timeout = 600)
{
    for (size_t i = 0; i < sizeof optim_sizes / sizeof optim_sizes[0]; i++)
        for (int variant = 0; variant < 4; variant++)
            for (int clip = 0; clip < 2; clip++) {
                tcase tc = new_case(OP_SGD_UPDATE);
                op_optim_attrs *a = &tc.node.attrs.optim;
                a->lr = 0.1;
                a->momentum = variant == 0 ? 0.0 : 0.9;
                a->nesterov = variant == 2;
                a->weight_decay = variant == 3 ? 0.0 : 5e-4;
                a->clip = clip;
                int64_t n = optim_sizes[i];
                tc.in[tc.nin++] = TS(n);
                tc.in[tc.nin++] = TS(n);
                if (a->momentum != 0.0)
                    tc.in[tc.nin++] = TS(n);
                if (clip)
                    tc.in[tc.nin++] = TS(1);
                unsigned inplace = 1u | (a->momentum != 0.0 ? 4u : 0u);
                char label[96];
                snprintf(label, sizeof label, "sgd %lld variant %d clip %d", (long long)n, variant, clip);
                g_step = 1;
                check_ex(&tc, label, optim_init, inplace);
            }
}

Test(native_train, adam_and_adamw_updates, .timeout = 600)
{
    for (size_t i = 0; i < sizeof optim_sizes / sizeof optim_sizes[0]; i++)
        for (int w = 0; w < 2; w++)
            for (int clip = 0; clip < 2; clip++)
                for (int step = 1; step <= 7; step += 6) {
                    tcase tc = new_case(w ? OP_ADAMW_UPDATE : OP_ADAM_UPDATE);
                    op_optim_attrs *a = &tc.node.attrs.optim;
                    a->lr = 1e-3;
                    a->beta1 = 0.9;
                    a->beta2 = 0.999;
                    a->eps = 1e-8;
                    a->weight_decay = 1e-2;
                    a->clip = clip;
                    int64_t n = optim_sizes[i];
                    for (int k = 0; k < 4; k++)
                        tc.in[tc.nin++] = TS(n);
                    if (clip)
                        tc.in[tc.nin++] = TS(1);
                    char label[96];
                    snprintf(label, sizeof label, "%s %lld clip %d step %d", w ? "adamw" : "adam",
                             (long long)n, clip, step);
                    g_step = step;
                    check_ex(&tc, label, optim_init, 1u | 4u | 8u);
                }
    g_step = 1;
}

static void sq_init(const tcase *tc, float **in)
{
    if (tc->node.attrs.clip.accumulate)
        in[0][0] = 2.5f;
}

Test(native_train, grad_sqnorm_and_clip_scale)
{
    for (int acc = 0; acc < 2; acc++) {
        tcase tc = new_case(OP_GRAD_SQNORM);
        tc.node.attrs.clip.accumulate = acc;
        if (acc)
            tc.in[tc.nin++] = TS(1);
        tc.in[tc.nin++] = TS(17);
        tc.in[tc.nin++] = TS(40001);
        tc.in[tc.nin++] = TS(3, 3);
        tc.out[tc.nout++] = TS(1);
        check_ex(&tc, acc ? "grad_sqnorm accumulating" : "grad_sqnorm", sq_init, 0);
    }
    tcase cs = new_case(OP_CLIP_SCALE);
    cs.node.attrs.clip.max_norm = 0.25;
    cs.in[cs.nin++] = TS(1);
    cs.out[cs.nout++] = TS(1);
    check_ex(&cs, "clip_scale", sq_init, 0);
}

/* ---- the table */

/* (the low-precision dense_q runs on oneDNN and the reference only; conv_q is native too:
 * tests/test_int8_native.c) */
Test(native_table, covers_every_op_but_bn_fold_and_dense_q)
{
    for (int op = 0; op < OP_COUNT; op++) {
        const op_kernel *k = op_kernel_get((op_kind)op, OP_BACKEND_NATIVE);
        if (op == OP_BN_FOLD || op == OP_DENSE_Q) {
            cr_assert_null(k, "%s", op_name((op_kind)op));
            continue;
        }
        cr_assert_not_null(k, "%s has no native kernel", op_name((op_kind)op));
        /* element-wise ops, batchnorm and max pooling take either layout (element-wise ops and
         * batchnorm the blocked one too), the fp32 1-D/2-D convolutions and their backward
         * follow their inputs' (an all-native fp32 plan stays plain); the int8 convolution
         * prefers channels-last */
        bool bn = op == OP_BATCHNORM || op == OP_BATCHNORM_BWD;
        bool either = op == OP_RELU || op == OP_SIGMOID || op == OP_TANH || op == OP_LEAKY_RELU ||
                      op == OP_ACT_BWD || op == OP_ADD || op == OP_MAXPOOL || op == OP_MAXPOOL_BWD || bn ||
                      op == OP_REORDER;
        bool conv = op == OP_CONV1D || op == OP_CONV2D || op == OP_CONV_BWD_DATA || op == OP_CONV_BWD_WEIGHTS;
        op_layout_support want = op == OP_CONV_Q ? OP_LAYOUT_PREFERS_CL
                                 : conv      ? OP_LAYOUT_FOLLOWS_INPUTS
                                 : either    ? OP_LAYOUT_EITHER
                                             : OP_LAYOUT_PLAIN_ONLY;
        cr_assert_eq(k->layouts, want, "%s", op_name((op_kind)op));
        bool elementwise = op == OP_RELU || op == OP_SIGMOID || op == OP_TANH || op == OP_LEAKY_RELU ||
                           op == OP_ACT_BWD || op == OP_ADD;
        cr_assert_eq(k->blocked, bn || elementwise, "%s", op_name((op_kind)op));
    }
}

/* ---- reorder: the reference's bytes, both ways, 1 and 2 threads; oneDNN's blocked order refused */

static void reorder_run(const op_kernel *k, const float *x, float *y, const int64_t *d, int rank, bool to_cl,
                        int nt)
{
    op_node node;
    memset(&node, 0, sizeof node);
    node.op = OP_REORDER;
    node.attrs.reorder.from = to_cl ? OP_LAYOUT_PLAIN : OP_LAYOUT_NHWC;
    node.attrs.reorder.to = to_cl ? OP_LAYOUT_NHWC : OP_LAYOUT_PLAIN;
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.nin = c.nout = 1;
    c.nthreads = nt;
    c.batch = d[0];
    c.in[0].rank = c.out[0].rank = rank;
    memcpy(c.in[0].d, d, sizeof(int64_t) * (size_t)rank);
    memcpy(c.out[0].d, d, sizeof(int64_t) * (size_t)rank);
    c.in[0].layout = (int)node.attrs.reorder.from;
    c.out[0].layout = (int)node.attrs.reorder.to;
    c.in[0].data = (float *)x;
    c.out[0].data = y;
    char err[256] = "";
    cr_assert_eq(k->run(&c, err, sizeof err), 0, "%s", err);
}

Test(native_layout, reorder_matches_the_reference)
{
    const op_kernel *nat = op_kernel_get(OP_REORDER, OP_BACKEND_NATIVE), *ref = op_kernel_get(OP_REORDER, OP_BACKEND_REF);
    cr_assert(nat && ref && nat != ref);
    static const struct {
        int rank;
        int64_t d[4];
    } shapes[] = {{4, {3, 19, 5, 7}}, {4, {2, 16, 32, 32}}, {3, {2, 33, 17}}, {4, {1, 1, 4, 4}}, {4, {2, 40, 1, 1}}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t n = 1;
        for (int k = 0; k < shapes[i].rank; k++)
            n *= shapes[i].d[k];
        float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n),
              *got = malloc(sizeof(float) * (size_t)n);
        cr_assert(x && want && got);
        for (int64_t e = 0; e < n; e++)
            x[e] = (float)e * 0.5f - 3.0f;
        for (int to_cl = 0; to_cl < 2; to_cl++)
            for (int nt = 1; nt <= 2; nt++) {
                reorder_run(ref, x, want, shapes[i].d, shapes[i].rank, to_cl, 1);
                memset(got, 0xff, sizeof(float) * (size_t)n);
                reorder_run(nat, x, got, shapes[i].d, shapes[i].rank, to_cl, nt);
                cr_expect(memcmp(got, want, sizeof(float) * (size_t)n) == 0, "shape %zu, to_cl %d, %d threads", i,
                          to_cl, nt);
            }
        free(x);
        free(want);
        free(got);
    }
    op_node node;
    memset(&node, 0, sizeof node);
    node.op = OP_REORDER;
    node.attrs.reorder.to = OP_LAYOUT_BLOCK16;
    float x[32 * 4] = {0}, y[32 * 4];
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &node;
    c.nin = c.nout = 1;
    c.nthreads = 1;
    c.in[0].rank = c.out[0].rank = 4;
    int64_t d[4] = {1, 32, 2, 2};
    memcpy(c.in[0].d, d, sizeof d);
    memcpy(c.out[0].d, d, sizeof d);
    c.out[0].layout = OP_LAYOUT_BLOCK16;
    c.in[0].data = x;
    c.out[0].data = y;
    char err[256] = "";
    cr_expect_eq(nat->run(&c, err, sizeof err), -1);
    cr_expect(strstr(err, "blocked") != NULL, "%s", err);
}
