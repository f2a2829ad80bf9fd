/* oneDNN inner products: dense forward (fused activation as an eltwise post-op, fused
 * softmax as a softmax primitive run in place on the output), backward data and backward
 * weights.  The source of any rank is read as [N, F] (C,H,W order), so it must be plain (the
 * layout pass reorders channels-last tensors before a dense layer); weights take the layout
 * oneDNN chooses, reordered from our [U, F] each run.
 *
 *   dense:             x [N,...] as [N,F], w [U,F], b [U]?  ->  y [N,U]
 *   dense_bwd_data:    dy [N,U], w [U,F]  ->  dx [N,...]
 *   dense_bwd_weights: dy [N,U], x [N,...]  ->  dw [U,F], db [U]?
 *
 * In a bf16 training graph (attrs.prec bf16) the three read x, w and dy as bf16 and write f32. */
#include "ops/onednn/dnn_common.h"

typedef struct dense_geom {
    int64_t n, f, u;
} dense_geom;

static int dense_geom_read(const op_tensor *x, const op_tensor *w, dense_geom *g, char *err, size_t errlen)
{
    g->n = x->d[0];
    g->f = op_dnn_inner(x);
    g->u = w->d[0];
    if (x->rank < 1 || w->rank != 2 || w->d[1] != g->f)
        return op_dnn_errf(err, errlen, "oneDNN dense: weights [%lld, %lld] do not match %lld input features",
                           (long long)w->d[0], (long long)(w->rank > 1 ? w->d[1] : 0), (long long)g->f);
    return 0;
}

/* The type a node's x, w and dy are read as: bf16 in a bf16 training graph, else f32. */
static dnnl_data_type_t dense_in_type(const op_dense_attrs *a)
{
    return a->prec == OP_PREC_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* Inference at batch DENSE_PLAIN_MAX_BATCH or less reads weights of at least this many bytes in
 * their own [U, F] layout instead of a reordered copy: such a layer is bound by reading its
 * weights once, and the copy would double the memory (VGG-16's first dense layer: 392 MiB, its
 * copy the largest part of the peak).  Measured on VGG-16 (2 threads): at batch 1 the plain
 * 25088x4096 layer took 38-64 ms against 113-189 for oneDNN's blocked copy; at batch 16 it took
 * 368-419 against 145-203 ms, and smaller plain layers (4096x4096, 4096x1000) were slower at
 * batch 1 too, hence both limits. */
#define DENSE_PLAIN_WEIGHT_BYTES (128u << 20)
#define DENSE_PLAIN_MAX_BATCH 4

/* The forward primitive descriptor (also the hint of the backward ones): x and w read as `in`;
 * weights in the plain layout when plain_w (if oneDNN takes it; else its choice). */
static int dense_fwd_pd(const dense_geom *g, bool bias, dnnl_data_type_t in, dnnl_prop_kind_t prop,
                        const_dnnl_primitive_attr_t attr, bool plain_w, dnnl_primitive_desc_t *pd, char *err,
                        size_t errlen)
{
    int64_t xd[2] = {g->n, g->f}, wd[2] = {g->u, g->f}, yd[2] = {g->n, g->u};
    dnnl_memory_desc_t x = op_dnn_md_any(2, xd), w = op_dnn_md_any(2, wd), y = op_dnn_md_any(2, yd);
    x.data_type = w.data_type = in;
    if (plain_w) {
        dnnl_memory_desc_t wp = op_dnn_md(2, wd), b = op_dnn_md(1, &g->u);
        wp.data_type = in;
        dnnl_inner_product_desc_t d;
        if (dnnl_inner_product_forward_desc_init(&d, prop, &x, &wp, bias ? &b : NULL, &y) == dnnl_success &&
            dnnl_primitive_desc_create(pd, &d, attr, op_dnn_engine(), NULL) == dnnl_success)
            return 0;
    }
    dnnl_memory_desc_t b = op_dnn_md(1, &g->u);
    dnnl_inner_product_desc_t d;
    OP_DNN_TRY(dnnl_inner_product_forward_desc_init(&d, prop, &x, &w, bias ? &b : NULL, &y),
               "inner product descriptor");
    OP_DNN_TRY(dnnl_primitive_desc_create(pd, &d, attr, op_dnn_engine(), NULL), "inner product");
    return 0;
}

/* ---- forward */

static int dense_softmax_step(op_dnn_prog *p, int y, char *err, size_t errlen)
{
    dnnl_softmax_desc_t d;
    OP_DNN_TRY(dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, op_dnn_mem_md(p, y), 1),
               "fused softmax descriptor");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "fused softmax", err, errlen);
    int k = op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_SRC, y, DNNL_ARG_DST, y);
    dnnl_primitive_desc_destroy(pd);
    return k < 0 ? -1 : 0;
}

static int dense_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_dense_attrs *a = &c->node->attrs.dense;
    int nin = a->bias ? 3 : 2;
    if (c->nin != nin || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN dense: expected %d inputs and 1 output", nin);
    dense_geom g;
    if (dense_geom_read(&c->in[0], &c->in[1], &g, err, errlen) ||
        op_dnn_plain_only(&c->in[0], "dense", err, errlen))
        return -1;
    if (op_dnn_inner(&c->out[0]) != g.u || c->out[0].d[0] != g.n)
        return op_dnn_errf(err, errlen, "oneDNN dense: output must be [N, %lld]", (long long)g.u);
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (op_dnn_attr_act(attr, a->act, a->alpha, false, err, errlen) ||
        dense_fwd_pd(&g, a->bias, dense_in_type(a), dnnl_forward_inference, attr,
                     g.n <= DENSE_PLAIN_MAX_BATCH &&
                         (uint64_t)g.u * (uint64_t)g.f * sizeof(float) >= DENSE_PLAIN_WEIGHT_BYTES,
                     &pd, err, errlen))
        goto done;
    int64_t xd[2] = {g.n, g.f}, wd[2] = {g.u, g.f}, yd[2] = {g.n, g.u};
    dnnl_memory_desc_t xp = op_dnn_md(2, xd), wp = op_dnn_md(2, wd), yp = op_dnn_md(2, yd);
    dnnl_memory_desc_t bp = op_dnn_md(1, &g.u);
    int x = op_dnn_input(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), OP_DNN_IN, 0,
                         err, errlen);
    int w = x < 0 ? -1
                  : op_dnn_weights(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 1,
                                   err, errlen);
    int b = w < 0 || !a->bias ? -1
                              : op_dnn_input(p, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                                             OP_DNN_IN, 2, err, errlen);
    int user = -1;
    int y = w < 0 || (a->bias && b < 0)
                ? -1
                : op_dnn_output(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), OP_DNN_OUT,
                                0, &user, err, errlen);
    if (y < 0) goto done;
    p->main_step = a->bias ? op_dnn_prim(p, pd, err, errlen, 4, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_BIAS, b, DNNL_ARG_DST, y)
                           : op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_DST, y);
    if (p->main_step < 0) goto done;
    if (user >= 0) {
        if (op_dnn_reorder(p, y, user, false, err, errlen) < 0) goto done;
        y = user;
    }
    rc = a->softmax ? dense_softmax_step(p, y, err, errlen) : 0;
done:
    dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_dense_kernel, dense_build, OP_LAYOUT_PLAIN_ONLY, false);

/* ---- backward data: dy, w -> dx */

static int dense_bwd_data_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->nin != 2 || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN dense_bwd_data: expected 2 inputs and 1 output");
    dense_geom g;
    if (dense_geom_read(&c->out[0], &c->in[1], &g, err, errlen) ||
        op_dnn_plain_only(&c->out[0], "dense_bwd_data", err, errlen))
        return -1;
    if (c->in[0].d[0] != g.n || op_dnn_inner(&c->in[0]) != g.u)
        return op_dnn_errf(err, errlen, "oneDNN dense_bwd_data: dy must be [N, %lld]", (long long)g.u);
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int rc = -1;
    if (dense_fwd_pd(&g, false, dense_in_type(a), dnnl_forward_training, attr, false, &hint, err, errlen)) goto done;
    int64_t xd[2] = {g.n, g.f}, wd[2] = {g.u, g.f}, yd[2] = {g.n, g.u};
    dnnl_memory_desc_t xa = op_dnn_md_any(2, xd), wa = op_dnn_md_any(2, wd), ya = op_dnn_md_any(2, yd);
    dnnl_memory_desc_t xp = op_dnn_md(2, xd), wp = op_dnn_md(2, wd), yp = op_dnn_md(2, yd);
    wa.data_type = ya.data_type = dense_in_type(a); /* w and dy; dx stays f32 */
    dnnl_inner_product_desc_t d;
    dnnl_status_t s = dnnl_inner_product_backward_data_desc_init(&d, &xa, &wa, &ya);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), hint);
    if (s != dnnl_success) {
        op_dnn_fail(s, "inner product backward data", err, errlen);
        goto done;
    }
    int dy = op_dnn_input(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0), OP_DNN_IN, 0,
                          err, errlen);
    int w = dy < 0 ? -1
                   : op_dnn_weights(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 1,
                                    err, errlen);
    int user = -1;
    int dx = w < 0 ? -1
                   : op_dnn_output(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0),
                                   OP_DNN_OUT, 0, &user, err, errlen);
    if (dx < 0) goto done;
    p->main_step = op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_WEIGHTS, w,
                               DNNL_ARG_DIFF_SRC, dx);
    if (p->main_step < 0) goto done;
    rc = user >= 0 && op_dnn_reorder(p, dx, user, false, err, errlen) < 0 ? -1 : 0;
done:
    dnnl_primitive_attr_destroy(attr);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_dense_bwd_data_kernel, dense_bwd_data_build, OP_LAYOUT_PLAIN_ONLY, false);

/* ---- backward weights: dy, x -> dw, db */

static int dense_bwd_weights_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_dense_attrs *a = &c->node->attrs.dense;
    int nout = a->bias ? 2 : 1;
    if (c->nin != 2 || c->nout != nout)
        return op_dnn_errf(err, errlen, "oneDNN dense_bwd_weights: expected 2 inputs and %d outputs", nout);
    dense_geom g;
    if (dense_geom_read(&c->in[1], &c->out[0], &g, err, errlen) ||
        op_dnn_plain_only(&c->in[1], "dense_bwd_weights", err, errlen))
        return -1;
    if (c->in[0].d[0] != g.n || op_dnn_inner(&c->in[0]) != g.u)
        return op_dnn_errf(err, errlen, "oneDNN dense_bwd_weights: dy must be [N, %lld]", (long long)g.u);
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != g.u))
        return op_dnn_errf(err, errlen, "oneDNN dense_bwd_weights: db must be [%lld]", (long long)g.u);
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int rc = -1;
    if (dense_fwd_pd(&g, a->bias, dense_in_type(a), dnnl_forward_training, attr, false, &hint, err, errlen)) goto done;
    int64_t xd[2] = {g.n, g.f}, wd[2] = {g.u, g.f}, yd[2] = {g.n, g.u};
    dnnl_memory_desc_t xa = op_dnn_md_any(2, xd), wa = op_dnn_md_any(2, wd), ya = op_dnn_md_any(2, yd);
    dnnl_memory_desc_t xp = op_dnn_md(2, xd), wp = op_dnn_md(2, wd), yp = op_dnn_md(2, yd);
    xa.data_type = ya.data_type = dense_in_type(a); /* x and dy; dw and db stay f32 */
    dnnl_memory_desc_t bp = op_dnn_md(1, &g.u);
    dnnl_inner_product_desc_t d;
    dnnl_status_t s = dnnl_inner_product_backward_weights_desc_init(&d, &xa, &wa, a->bias ? &bp : NULL, &ya);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), hint);
    if (s != dnnl_success) {
        op_dnn_fail(s, "inner product backward weights", err, errlen);
        goto done;
    }
    int dy = op_dnn_input(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0), OP_DNN_IN, 0,
                          err, errlen);
    int x = dy < 0 ? -1
                   : op_dnn_input(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), OP_DNN_IN,
                                  1, err, errlen);
    int wuser = -1, buser = -1;
    int dw = x < 0 ? -1
                   : op_dnn_output(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0),
                                   OP_DNN_OUT, 0, &wuser, err, errlen);
    int db = dw < 0 || !a->bias
                 ? -1
                 : op_dnn_output(p, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 1),
                                 OP_DNN_OUT, 1, &buser, err, errlen);
    if (dw < 0 || (a->bias && db < 0)) goto done;
    p->main_step = a->bias ? op_dnn_prim(p, pd, err, errlen, 4, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_SRC, x,
                                         DNNL_ARG_DIFF_WEIGHTS, dw, DNNL_ARG_DIFF_BIAS, db)
                           : op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_SRC, x,
                                         DNNL_ARG_DIFF_WEIGHTS, dw);
    if (p->main_step < 0) goto done;
    if (wuser >= 0 && op_dnn_reorder(p, dw, wuser, false, err, errlen) < 0) goto done;
    if (buser >= 0 && op_dnn_reorder(p, db, buser, false, err, errlen) < 0) goto done;
    rc = 0;
done:
    dnnl_primitive_attr_destroy(attr);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_dense_bwd_weights_kernel, dense_bwd_weights_build, OP_LAYOUT_PLAIN_ONLY, false);
