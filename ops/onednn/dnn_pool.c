/* oneDNN pooling: max and average (padding counted, pooling_avg_include_padding), global
 * average (average pooling over the whole plane) and their backward.  Tensors are used in
 * their own layout, plain NC(D)HW or channels-last N(D)HWC (pooling is bandwidth-bound; oneDNN's
 * jit pooling handles both, no reorder); 1-D pools run as 2-D ones of height 1, reading
 * size/stride/pad at index 1 as convolutions do; 3-D pools as oneDNN's 3-D pooling.
 * Max-pool backward needs oneDNN's workspace (which element won each window): it runs a
 * forward-training pooling of x first, then the backward primitive.
 *
 *   maxpool, avgpool:    x [N,C,(D,)H,W]  ->  y [N,C,(OD,)OH,OW]
 *   global_avgpool:      x [N,C,...]  ->  y [N,C]
 *   maxpool_bwd:         dy, x  ->  dx      avgpool_bwd, global_avgpool_bwd:  dy  ->  dx */
#include "ops/onednn/dnn_common.h"

typedef struct pool_geom {
    int64_t n, c;
    int sp;                  /* spatial dims given to oneDNN: 2 (1-D as height 1) or 3 */
    int64_t in[3], out[3];   /* (d,) h, w */
    dnnl_dims_t kernel, stride, pad;
} pool_geom;

/* The spatial sizes of activation t as the oneDNN view of sp dims: [N,C,D,H,W] for sp 3;
 * [N,C,H,W], [N,C,L] (H = 1) or [N,C] (H = W = 1) for sp 2.  0, or -1 when t has another rank. */
static int act_view(const op_tensor *t, int sp, int64_t v[5])
{
    if (sp == 3) {
        if (t->rank != 5) return -1;
        for (int k = 0; k < 5; k++) v[k] = t->d[k];
        return 0;
    }
    op_dnn_nchw x;
    if (t->rank < 2 || t->rank > 4 || op_dnn_as_nchw(t, &x, NULL, 0)) return -1;
    v[0] = x.n, v[1] = x.c, v[2] = x.h, v[3] = x.w;
    return 0;
}

/* Geometry of a windowed pool on source xt (global: the window is the whole plane; a rank-5
 * source is then viewed as [N, C, D*H, W], the same bytes in either layout). */
static int pool_geom_read(const op_call *c, const op_tensor *xt, bool global, pool_geom *g,
                          char *err, size_t errlen)
{
    int64_t v[5];
    if (global) {
        g->sp = 2;
        if (xt->rank == 5) {
            v[0] = xt->d[0], v[1] = xt->d[1], v[2] = xt->d[2] * xt->d[3], v[3] = xt->d[4];
        } else if (act_view(xt, 2, v)) {
            return op_dnn_errf(err, errlen, "oneDNN pool: expected a [N,C,...] source of rank 2 to 5");
        }
        for (int i = 0; i < 2; i++) {
            g->kernel[i] = g->stride[i] = v[2 + i];
            g->pad[i] = 0;
        }
    } else {
        const op_pool_attrs *a = &c->node->attrs.pool;
        if (xt->rank < 3 || xt->rank > 5 || (xt->rank == 5) != (a->sdims == 3))
            return op_dnn_errf(err, errlen, "oneDNN pool: a %d-D pool got a rank-%d source", a->sdims,
                               xt->rank);
        g->sp = xt->rank == 5 ? 3 : 2;
        if (act_view(xt, g->sp, v)) return op_dnn_errf(err, errlen, "oneDNN pool: bad source rank");
        if (g->sp == 3) {
            int64_t k[3] = {a->size_d, a->size[0], a->size[1]};
            int64_t s[3] = {a->stride_d, a->stride[0], a->stride[1]};
            int64_t p[3] = {a->pad_d, a->pad[0], a->pad[1]};
            for (int i = 0; i < 3; i++) g->kernel[i] = k[i], g->stride[i] = s[i], g->pad[i] = p[i];
        } else {
            bool one = xt->rank == 3;
            g->kernel[0] = one ? 1 : a->size[0];
            g->stride[0] = one ? 1 : a->stride[0];
            g->pad[0] = one ? 0 : a->pad[0];
            g->kernel[1] = a->size[1];
            g->stride[1] = a->stride[1];
            g->pad[1] = a->pad[1];
        }
    }
    g->n = v[0];
    g->c = v[1];
    for (int i = 0; i < g->sp; i++) {
        g->in[i] = v[2 + i];
        if (g->stride[i] < 1 || g->kernel[i] < 1 || g->pad[i] < 0 ||
            g->in[i] + 2 * g->pad[i] < g->kernel[i])
            return op_dnn_errf(err, errlen, "oneDNN pool: inconsistent geometry");
        g->out[i] = (g->in[i] + 2 * g->pad[i] - g->kernel[i]) / g->stride[i] + 1;
    }
    return 0;
}

/* Whether t is [N, ch, sizes...] in the view of g (a global pool's output: [N, C]). */
static bool act_is(const pool_geom *g, const op_tensor *t, bool global, const int64_t *sizes)
{
    int64_t v[5];
    if (global) {
        if (act_view(t, 2, v)) return false;
    } else if (act_view(t, g->sp, v)) {
        return false;
    }
    if (v[0] != g->n || v[1] != g->c) return false;
    for (int i = 0; i < (global ? 2 : g->sp); i++)
        if (v[2 + i] != sizes[i]) return false;
    return true;
}

/* The pooled tensor yt must be [N, C, (OD,) OH, OW] (or [N, C] for a global pool). */
static int pool_check_out(const pool_geom *g, const op_tensor *yt, bool global, char *err, size_t errlen)
{
    if (!act_is(g, yt, global, g->out))
        return op_dnn_errf(err, errlen, "oneDNN pool: output shape does not match the attributes");
    return 0;
}

/* The descriptors of the source side (x, dx) and the pooled side (y, dy) in the call's layout. */
static void pool_mds(const pool_geom *g, op_layout cl, dnnl_memory_desc_t *x, dnnl_memory_desc_t *y)
{
    int nd = 2 + g->sp;
    int64_t xd[5] = {g->n, g->c}, yd[5] = {g->n, g->c};
    for (int i = 0; i < g->sp; i++) {
        xd[2 + i] = g->in[i];
        yd[2 + i] = g->out[i];
    }
    *x = op_dnn_md_layout(nd, xd, cl);
    *y = op_dnn_md_layout(nd, yd, cl);
}

static int pool_fwd_pd(const pool_geom *g, op_layout cl, dnnl_prop_kind_t prop, dnnl_alg_kind_t alg,
                       dnnl_primitive_desc_t *pd, char *err, size_t errlen)
{
    dnnl_memory_desc_t x, y;
    pool_mds(g, cl, &x, &y);
    dnnl_pooling_desc_t d;
    OP_DNN_TRY(dnnl_pooling_forward_desc_init(&d, prop, alg, &x, &y, g->stride, g->kernel, g->pad, g->pad),
               "pooling descriptor");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_status_t s = dnnl_primitive_desc_create(pd, &d, attr, op_dnn_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "pooling", err, errlen);
    return 0;
}

/* ---- forward */

static int pool_build_fwd(op_dnn_prog *p, const op_call *c, dnnl_alg_kind_t alg, bool global,
                          char *err, size_t errlen)
{
    if (c->nin != 1 || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN pool: expected 1 input and 1 output");
    pool_geom g;
    if (pool_geom_read(c, &c->in[0], global, &g, err, errlen) ||
        pool_check_out(&g, &c->out[0], global, err, errlen) ||
        op_dnn_one_layout(c, "pool", err, errlen))
        return -1;
    op_layout cl = op_dnn_call_layout(c);
    dnnl_primitive_desc_t pd = NULL;
    if (pool_fwd_pd(&g, cl, dnnl_forward_inference, alg, &pd, err, errlen)) return -1;
    dnnl_memory_desc_t xp, yp;
    pool_mds(&g, cl, &xp, &yp);
    int x = op_dnn_mem_bound(p, &xp, OP_DNN_IN, 0, err, errlen);
    int y = x < 0 ? -1 : op_dnn_mem_bound(p, &yp, OP_DNN_OUT, 0, err, errlen);
    if (y >= 0) p->main_step = op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_SRC, x, DNNL_ARG_DST, y);
    dnnl_primitive_desc_destroy(pd);
    return y < 0 || p->main_step < 0 ? -1 : 0;
}

static int maxpool_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_fwd(p, c, dnnl_pooling_max, false, err, errlen);
}

static int avgpool_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_fwd(p, c, dnnl_pooling_avg_include_padding, false, err, errlen);
}

static int global_avgpool_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_fwd(p, c, dnnl_pooling_avg_include_padding, true, err, errlen);
}

OP_DNN_SIMPLE_KERNEL(op_dnn_maxpool_kernel, maxpool_build, OP_LAYOUT_EITHER, true);
OP_DNN_SIMPLE_KERNEL(op_dnn_avgpool_kernel, avgpool_build, OP_LAYOUT_EITHER, true);
OP_DNN_SIMPLE_KERNEL(op_dnn_global_avgpool_kernel, global_avgpool_build, OP_LAYOUT_EITHER, true);

/* ---- backward */

static int pool_build_bwd(op_dnn_prog *p, const op_call *c, dnnl_alg_kind_t alg, bool global,
                          char *err, size_t errlen)
{
    bool max = alg == dnnl_pooling_max;
    if (c->nin != (max ? 2 : 1) || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN pool backward: expected %d inputs and 1 output", max ? 2 : 1);
    pool_geom g;
    if (pool_geom_read(c, &c->out[0], global, &g, err, errlen) ||
        pool_check_out(&g, &c->in[0], global, err, errlen))
        return -1;
    if (max && !act_is(&g, &c->in[1], false, g.in))
        return op_dnn_errf(err, errlen, "oneDNN maxpool_bwd: x and dx differ in shape");
    if (op_dnn_one_layout(c, "pool backward", err, errlen)) return -1;
    op_layout cl = op_dnn_call_layout(c);
    dnnl_memory_desc_t xp, yp;
    pool_mds(&g, cl, &xp, &yp);
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int rc = -1;
    if (pool_fwd_pd(&g, cl, dnnl_forward_training, alg, &hint, err, errlen)) return -1;
    dnnl_pooling_desc_t d;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t s = dnnl_pooling_backward_desc_init(&d, alg, &xp, &yp, g.stride, g.kernel, g.pad, g.pad);
    if (s == dnnl_success) {
        if (op_dnn_attr(&attr, err, errlen)) goto done;
        s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), hint);
    }
    if (s != dnnl_success) {
        op_dnn_fail(s, "pooling backward", err, errlen);
        goto done;
    }
    int ws = -1, x = -1;
    if (max) {
        /* recompute the forward pass for the workspace (argmax per window) */
        const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(hint, dnnl_query_workspace_md, 0);
        x = op_dnn_mem_bound(p, &xp, OP_DNN_IN, 1, err, errlen);
        int y = x < 0 ? -1 : op_dnn_mem_own(p, &yp, err, errlen);
        ws = y < 0 || !wsmd ? -1 : op_dnn_mem_own(p, wsmd, err, errlen);
        if (ws < 0 ||
            op_dnn_prim(p, hint, err, errlen, 3, DNNL_ARG_SRC, x, DNNL_ARG_DST, y, DNNL_ARG_WORKSPACE, ws) < 0)
            goto done;
    }
    int dy = op_dnn_mem_bound(p, &yp, OP_DNN_IN, 0, err, errlen);
    int dx = dy < 0 ? -1 : op_dnn_mem_bound(p, &xp, OP_DNN_OUT, 0, err, errlen);
    if (dx < 0) goto done;
    p->main_step = max ? op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_WORKSPACE, ws,
                                     DNNL_ARG_DIFF_SRC, dx)
                       : op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_DIFF_SRC, dx);
    rc = p->main_step < 0 ? -1 : 0;
    /* a fused activation backward (maxpool_bwd; x is the activation's output): in place on dx */
    op_act act = c->node->attrs.pool.act;
    if (rc == 0 && max && act != OP_ACT_NONE &&
        op_dnn_act_bwd_step(p, &xp, act, c->node->attrs.pool.alpha, dx, x, dx, err, errlen) < 0)
        rc = -1;
done:
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int maxpool_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_bwd(p, c, dnnl_pooling_max, false, err, errlen);
}

static int avgpool_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_bwd(p, c, dnnl_pooling_avg_include_padding, false, err, errlen);
}

static int global_avgpool_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    return pool_build_bwd(p, c, dnnl_pooling_avg_include_padding, true, err, errlen);
}

OP_DNN_SIMPLE_KERNEL(op_dnn_maxpool_bwd_kernel, maxpool_bwd_build, OP_LAYOUT_EITHER, true);
OP_DNN_SIMPLE_KERNEL(op_dnn_avgpool_bwd_kernel, avgpool_bwd_build, OP_LAYOUT_EITHER, true);
OP_DNN_SIMPLE_KERNEL(op_dnn_global_avgpool_bwd_kernel, global_avgpool_bwd_build, OP_LAYOUT_EITHER, true);
