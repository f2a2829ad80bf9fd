/* The oneDNN kernels against the reference kernels, continued from test_ops_onednn.c (which
 * describes the method and tolerance): dense forward with epilogues and backward; max, average
 * and global average pooling, ties included; activations and their backward, softmax, add and
 * concat; batchnorm in inference and training, and its backward. */
#include "tests/onednn_util.h"

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
        /* with the activation's backward fused (x its output) */
        for (int ai = 0; ai < 4; ai++) {
                    op_act act = (const op_act[]){OP_ACT_RELU, OP_ACT_LEAKY_RELU, OP_ACT_SIGMOID, OP_ACT_TANH}[ai];
            tc = pool_case(&pool_geoms[i], OP_MAXPOOL_BWD, act == OP_ACT_RELU ? F_RELU : F_RAND);
            tc.node.attrs.pool.act = act;
            tc.node.attrs.pool.alpha = 0.1f;
            snprintf(label, sizeof label, "maxpool_bwd +%s_bwd geometry %d", op_act_name(act), i);
            check_case(&tc, label);
        }
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
            for (int more = 1; more <= 2; more++) { /* a fused gradient sum: dy + inputs 2... */
                tc.in[tc.nin++] = elt_shapes[i];
                snprintf(label, sizeof label, "act_bwd %zu shape %d, %d summed", k, i, more + 1);
                check_case(&tc, label);
            }
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

/* batchnorm_bwd on x with nout outputs (dx, then dgamma and dbeta) and, when act is not
 * OP_ACT_NONE, a fused activation's backward: dy is at the activation's output, which is a
 * sixth input. */
static tcase bn_bwd_case(const tspec *x, int nout, op_act act)
{
    int64_t ch = x->d[1];
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_BATCHNORM_BWD;
    tc.node.attrs.bn = (op_bn_attrs){.eps = 1e-5f, .momentum = 0.1f, .training = true, .act = act};
    tc.in[tc.nin++] = *x;             /* dy */
    tc.in[tc.nin++] = *x;             /* x */
    tc.in[tc.nin++] = TS(F_POS, ch);  /* gamma */
    tc.in[tc.nin++] = TS(F_RAND, ch); /* save_mean */
    tc.in[tc.nin++] = TS(F_POS, ch);  /* save_invstd */
    if (act != OP_ACT_NONE) tc.in[tc.nin++] = *x; /* the activation's output */
    for (int k = 0; k < nout; k++) tc.out[tc.nout++] = k ? TS(F_RAND, ch) : *x;
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
            tcase tc = bn_bwd_case(&bn_shapes[i], nout, OP_ACT_NONE);
            char label[64];
            snprintf(label, sizeof label, "batchnorm_bwd shape %d outputs %d", i, nout);
            check_case(&tc, label);
        }
}

/* batchnorm with its fused epilogue (+ residual, activation) and batchnorm_bwd with a fused
 * activation's backward (dy at the activation's output, its output a sixth input) */
Test(onednn_norm, batchnorm_fused)
{
    static const op_act acts[] = {OP_ACT_RELU, OP_ACT_SIGMOID};
    for (int i = 0; i < NBN; i++)
        for (int t = 0; t < 2; t++)
            for (int res = 0; res < 2; res++)
                for (int a = 0; a < 2; a++) {
                    tcase tc = bn_case(&bn_shapes[i], t == 1);
                    tc.node.attrs.bn.act = acts[a];
                    if (res) {
                        tc.node.attrs.bn.residual = true;
                        tc.in[tc.nin++] = bn_shapes[i];
                    }
                    char label[96];
                    snprintf(label, sizeof label, "batchnorm %s shape %d%s +%s", t ? "training" : "inference", i,
                             res ? " +add" : "", op_act_name(acts[a]));
                    check_case(&tc, label);
                }
    for (int i = 0; i < NBN; i++)
        for (int a = 0; a < 2; a++) {
            tcase tc = bn_bwd_case(&bn_shapes[i], 3, acts[a]);
            char label[64];
            snprintf(label, sizeof label, "batchnorm_bwd shape %d +%s", i, op_act_name(acts[a]));
            check_case(&tc, label);
        }
}

/* Batchnorm and its backward on channels-last tensors, fused epilogues included: 16 channels
 * (which ops/onednn/dnn_norm.c describes to oneDNN as its blocked layout, the same bytes),
 * others (its channels-last kernels), 1-D and 3-D. */
Test(onednn_norm, batchnorm_channels_last)
{
    static const tspec shapes[] = {{4, {3, 16, 9, 11}, F_RAND}, {4, {2, 16, 32, 32}, F_RAND},
                                   {4, {2, 32, 7, 7}, F_RAND},  {4, {3, 5, 6, 4}, F_RAND},
                                   {3, {3, 16, 37}, F_RAND},    {5, {2, 16, 3, 5, 7}, F_RAND}};
    g_dnn_layout = OP_LAYOUT_NHWC;
    for (int i = 0; i < (int)(sizeof shapes / sizeof shapes[0]); i++) {
        const tspec *x = &shapes[i];
        for (int op = 0; op < 5; op++) { /* inference, training, training +add+relu, backward, backward +relu */
            tcase tc;
            if (op < 3) {
                tc = bn_case(x, op > 0);
                if (op == 2) {
                    tc.node.attrs.bn.residual = true;
                    tc.node.attrs.bn.act = OP_ACT_RELU;
                    tc.in[tc.nin++] = *x;
                }
            } else {
                tc = bn_bwd_case(x, 3, op == 4 ? OP_ACT_RELU : OP_ACT_NONE);
            }
            char label[96];
            snprintf(label, sizeof label, "channels-last batchnorm shape %d op %d", i, op);
            check_case(&tc, label);
        }
    }
    g_dnn_layout = OP_LAYOUT_PLAIN;
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
                                 OP_MSE_LOSS, OP_SGD_UPDATE, OP_ADAM_UPDATE,
                                 OP_ADAMW_UPDATE, OP_GRAD_SQNORM, OP_CLIP_SCALE};
    for (size_t i = 0; i < sizeof have / sizeof have[0]; i++) {
        const op_kernel *k = op_onednn_kernel(have[i]);
        cr_assert_not_null(k, "no oneDNN kernel for %s", op_name(have[i]));
        cr_expect(k->run && k->prepare && k->release && !k->scratch);
        cr_expect_eq(op_kernel_get(have[i], OP_BACKEND_ONEDNN), k);
    }
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) cr_expect_null(op_onednn_kernel(none[i]));
    cr_expect_null(op_onednn_kernel(OP_COUNT));
}

/* A dense layer of 128 MiB of weights at batch 2 reads them in their own layout (no reordered
 * copy, ops/onednn/dnn_dense.c): the same results as the reference.  (Skipped in the quick
 * sanitizer run: the tensors take half a GiB there.) */
Test(onednn_dense, huge_weights_read_in_place)
{
    if (getenv("CNN_TEST_QUICK")) return;
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.node.op = OP_DENSE;
    tc.node.attrs.dense.units = 1024;
    tc.node.attrs.dense.bias = true;
    tc.node.attrs.dense.act = OP_ACT_RELU;
    tc.in[tc.nin++] = TS(F_RAND, 2, 32768);
    tc.in[tc.nin++] = TS(F_RAND, 1024, 32768);
    tc.in[tc.nin++] = TS(F_RAND, 1024);
    tc.out[tc.nout++] = TS(F_RAND, 2, 1024);
    check_case(&tc, "dense 32768 -> 1024");
}
