/* The native convolution suites' cases (plain in test_ops_native.c, channels-last in
 * test_ops_native_cl.c): a geometry's activation and weight shapes, and its forward, backward
 * data and backward weights calls. */
#ifndef CNN_TESTS_NATIVE_CONV_CASES_H
#define CNN_TESTS_NATIVE_CONV_CASES_H

#include "tests/conv_test_util.h"
#include "tests/native_check_util.h"

static inline tspec conv_act_spec(const cgeom *g, int64_t n, int64_t c, int64_t h, int64_t w)
{
    return g->sdims == 1 ? TS(n, c, w) : TS(n, c, h, w);
}

static inline tspec conv_weight_spec(const cgeom *g)
{
    return g->sdims == 1 ? TS(g->f, g->c / g->g, g->k[1]) : TS(g->f, g->c / g->g, g->k[0], g->k[1]);
}

static inline void conv_out_hw(const cgeom *g, int64_t *oh, int64_t *ow)
{
    *oh = conv_out(g->h, g->k[0], g->s[0], g->p[0], g->d[0]);
    *ow = conv_out(g->w, g->k[1], g->s[1], g->p[1], g->d[1]);
}

static inline tcase conv_case(const cgeom *g, op_kind op)
{
    tcase tc;
    memset(&tc, 0, sizeof tc);
    tc.residual_in_place = -1;
    tc.node.op = op;
    tc.node.attrs.conv = conv_attrs(g);
    return tc;
}

/* x, w[, b][, residual] -> [the pool's input when kept,] y (pooled when a pools), with attributes a */
static inline tcase conv_fwd_case(const cgeom *g, const op_conv_attrs *a)
{
    tcase tc = conv_case(g, g->sdims == 1 ? OP_CONV1D : OP_CONV2D);
    tc.node.attrs.conv = *a;
    int64_t oh, ow;
    conv_out_hw(g, &oh, &ow);
    tc.in[tc.nin++] = conv_act_spec(g, g->n, g->c, g->h, g->w);
    tc.in[tc.nin++] = conv_weight_spec(g);
    if (a->bias)
        tc.in[tc.nin++] = TS(g->f);
    if (a->residual)
        tc.in[tc.nin++] = conv_act_spec(g, g->n, g->f, oh, ow);
    if (a->pool && a->pool_keep) /* the pool's input kept: output 0 */
        tc.out[tc.nout++] = conv_act_spec(g, g->n, g->f, oh, ow);
    if (a->pool) {
        oh = (oh + 2 * a->pool_pad[0] - a->pool_size[0]) / a->pool_stride[0] + 1;
        ow = (ow + 2 * a->pool_pad[1] - a->pool_size[1]) / a->pool_stride[1] + 1;
    }
    tc.out[tc.nout++] = conv_act_spec(g, g->n, g->f, oh, ow);
    return tc;
}

/* dy, w -> dx */
static inline tcase conv_bwd_data_case(const cgeom *g)
{
    tcase tc = conv_case(g, OP_CONV_BWD_DATA);
    int64_t oh, ow;
    conv_out_hw(g, &oh, &ow);
    tc.in[tc.nin++] = conv_act_spec(g, g->n, g->f, oh, ow);
    tc.in[tc.nin++] = conv_weight_spec(g);
    tc.out[tc.nout++] = conv_act_spec(g, g->n, g->c, g->h, g->w);
    return tc;
}

/* dy, x -> dw[, db] */
static inline tcase conv_bwd_weights_case(const cgeom *g, bool bias)
{
    tcase tc = conv_case(g, OP_CONV_BWD_WEIGHTS);
    tc.node.attrs.conv.bias = bias;
    int64_t oh, ow;
    conv_out_hw(g, &oh, &ow);
    tc.in[tc.nin++] = conv_act_spec(g, g->n, g->f, oh, ow);
    tc.in[tc.nin++] = conv_act_spec(g, g->n, g->c, g->h, g->w);
    tc.out[tc.nout++] = conv_weight_spec(g);
    if (bias)
        tc.out[tc.nout++] = TS(g->f);
    return tc;
}

#endif
