/* oneDNN pooling: max and average (padding counted, pooling_avg_include_padding), global
 * average (average pooling over the whole plane) and their backward.  Tensors are used in
 * their own layout, plain NCHW or channels-last NHWC (pooling is bandwidth-bound; oneDNN's jit
 * pooling handles both, no reorder); 1-D pools run as 2-D ones of height 1, reading size/stride/pad at index 1 as convolutions do.
 * Max-pool backward needs oneDNN's workspace (which element won each window): it runs a
 * forward-training pooling of x first, then the backward primitive.
 *
 *   maxpool, avgpool:    x [N,C,H,W]  ->  y [N,C,OH,OW]
 *   global_avgpool:      x [N,C,...]  ->  y [N,C]
 *   maxpool_bwd:         dy, x  ->  dx      avgpool_bwd, global_avgpool_bwd:  dy  ->  dx */
#include "ops/onednn/dnn_common.h"

typedef struct pool_geom {
    op_dnn_nchw x;
    int64_t oh, ow;
    dnnl_dims_t kernel, stride, pad;
} pool_geom;

/* Geometry of a windowed pool on source xt (global: the window is the whole plane). */
static int pool_geom_read(const op_call *c, const op_tensor *xt, bool global, pool_geom *g,
                          char *err, size_t errlen)
{
    if (op_dnn_as_nchw(xt, &g->x, err, errlen)) return -1;
    if (global) {
        g->kernel[0] = g->stride[0] = g->x.h;
        g->kernel[1] = g->stride[1] = g->x.w;
        g->pad[0] = g->pad[1] = 0;
    } else {
        const op_pool_attrs *a = &c->node->attrs.pool;
        bool one = xt->rank == 3;
        if (xt->rank != 3 && xt->rank != 4)
            return op_dnn_errf(err, errlen, "oneDNN pool: expected a [N,C,L] or [N,C,H,W] source");
        g->kernel[0] = one ? 1 : a->size[0];
        g->stride[0] = one ? 1 : a->stride[0];
        g->pad[0] = one ? 0 : a->pad[0];
        g->kernel[1] = a->size[1];
        g->stride[1] = a->stride[1];
        g->pad[1] = a->pad[1];
    }
    g->oh = (g->x.h + 2 * g->pad[0] - g->kernel[0]) / g->stride[0] + 1;
    g->ow = (g->x.w + 2 * g->pad[1] - g->kernel[1]) / g->stride[1] + 1;
    if (g->oh < 1 || g->ow < 1 || g->stride[0] < 1 || g->stride[1] < 1)
        return op_dnn_errf(err, errlen, "oneDNN pool: inconsistent geometry");
    return 0;
}

/* The pooled tensor yt must be [N, C, OH, OW] (or [N, C] for a global pool). */
static int pool_check_out(const pool_geom *g, const op_tensor *yt, char *err, size_t errlen)
{
    op_dnn_nchw y;
    if (op_dnn_as_nchw(yt, &y, err, errlen)) return -1;
    if (y.n != g->x.n || y.c != g->x.c || y.h != g->oh || y.w != g->ow)
        return op_dnn_errf(err, errlen, "oneDNN pool: output shape does not match the attributes");
    return 0;
}

/* The descriptors of the source side (x, dx) and the pooled side (y, dy) in the call's layout. */
static void pool_mds(const pool_geom *g, bool cl, dnnl_memory_desc_t *x, dnnl_memory_desc_t *y)
{
    int64_t xd[4] = {g->x.n, g->x.c, g->x.h, g->x.w}, yd[4] = {g->x.n, g->x.c, g->oh, g->ow};
    *x = op_dnn_md_layout(4, xd, cl);
    *y = op_dnn_md_layout(4, yd, cl);
}

static int pool_fwd_pd(const pool_geom *g, bool cl, dnnl_prop_kind_t prop, dnnl_alg_kind_t alg,
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
    if (pool_geom_read(c, &c->in[0], global, &g, err, errlen) || pool_check_out(&g, &c->out[0], err, errlen) ||
        op_dnn_one_layout(c, "pool", err, errlen))
        return -1;
    bool cl = op_dnn_call_cl(c);
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

OP_DNN_SIMPLE_KERNEL(op_dnn_maxpool_kernel, maxpool_build, OP_LAYOUT_EITHER);
OP_DNN_SIMPLE_KERNEL(op_dnn_avgpool_kernel, avgpool_build, OP_LAYOUT_EITHER);
OP_DNN_SIMPLE_KERNEL(op_dnn_global_avgpool_kernel, global_avgpool_build, OP_LAYOUT_EITHER);

/* ---- backward */

static int pool_build_bwd(op_dnn_prog *p, const op_call *c, dnnl_alg_kind_t alg, bool global,
                          char *err, size_t errlen)
{
    bool max = alg == dnnl_pooling_max;
    if (c->nin != (max ? 2 : 1) || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN pool backward: expected %d inputs and 1 output", max ? 2 : 1);
    pool_geom g;
    if (pool_geom_read(c, &c->out[0], global, &g, err, errlen) || pool_check_out(&g, &c->in[0], err, errlen))
        return -1;
    if (max) {
        op_dnn_nchw x;
        if (op_dnn_as_nchw(&c->in[1], &x, err, errlen)) return -1;
        if (x.n != g.x.n || x.c != g.x.c || x.h != g.x.h || x.w != g.x.w)
            return op_dnn_errf(err, errlen, "oneDNN maxpool_bwd: x and dx differ in shape");
    }
    if (op_dnn_one_layout(c, "pool backward", err, errlen)) return -1;
    bool cl = op_dnn_call_cl(c);
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
    int ws = -1;
    if (max) {
        /* recompute the forward pass for the workspace (argmax per window) */
        const dnnl_memory_desc_t *wsmd = dnnl_primitive_desc_query_md(hint, dnnl_query_workspace_md, 0);
        int x = op_dnn_mem_bound(p, &xp, OP_DNN_IN, 1, err, errlen);
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

OP_DNN_SIMPLE_KERNEL(op_dnn_maxpool_bwd_kernel, maxpool_bwd_build, OP_LAYOUT_EITHER);
OP_DNN_SIMPLE_KERNEL(op_dnn_avgpool_bwd_kernel, avgpool_bwd_build, OP_LAYOUT_EITHER);
OP_DNN_SIMPLE_KERNEL(op_dnn_global_avgpool_bwd_kernel, global_avgpool_bwd_build, OP_LAYOUT_EITHER);
