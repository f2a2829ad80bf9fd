/* oneDNN convolutions: forward with the fused epilogue (bias, residual as a sum post-op,
 * activation as an eltwise post-op, max pooling as a second primitive; the fused pooling 1-D
 * and 2-D only), backward data and backward weights (with the bias gradient).  1-D
 * convolutions run as 2-D ones of height 1; 3-D ones as oneDNN's 3-D convolutions.
 * Weights take the layout oneDNN chooses (format "any"), reordered from our plain OI(D)HW
 * (goi(d)hw with groups) when they change.  Channels-last activations (op_tensor.layout, NDHWC,
 * NHWC and NWC) are given to the primitive as they are, so brgconv reads and writes them
 * directly; plain ones are described "any" and reordered from and to NC(D)HW around the
 * primitive.
 *
 *   conv:             x [N,C,(D,)H,W], w [F,C/g,(kd,)kh,kw], b [F]?, r [N,F,(OD,)OH,OW]?  ->  y
 *   conv_bwd_data:    dy [N,F,(OD,)OH,OW], w  ->  dx [N,C,(D,)H,W]
 *   conv_bwd_weights: dy, x  ->  dw [F,C/g,(kd,)kh,kw], db [F]?
 *
 * In a bf16 training graph (attrs.prec bf16) the three read x, w and dy as bf16 (the reorders
 * into the primitive's layout round them to nearest even) and write f32. */
#include <string.h>

#include "ops/onednn/dnn_conv.h"



/* The spatial sizes of activation t as the oneDNN view of sp dims: [N,C,D,H,W] for sp 3,
 * [N,C,H,W] or [N,C,L] (H = 1) for sp 2.  0, or -1 when t has another rank. */
static int act_view(const op_tensor *t, int sp, int64_t v[5])
{
    if (sp == 3) {
        if (t->rank != 5) return -1;
        for (int k = 0; k < 5; k++) v[k] = t->d[k];
        return 0;
    }
    if (t->rank != 3 && t->rank != 4) return -1;
    v[0] = t->d[0];
    v[1] = t->d[1];
    v[2] = t->rank == 4 ? t->d[2] : 1;
    v[3] = t->d[t->rank - 1];
    return 0;
}

/* Whether activation t is [n, ch, sizes...] in the view of g. */
bool op_dnn_conv_act_is(const conv_geom *g, const op_tensor *t, int64_t ch, const int64_t *sizes)
{
    int64_t v[5];
    if (act_view(t, g->sp, v)) return false;
    if (v[0] != g->n || v[1] != ch) return false;
    for (int i = 0; i < g->sp; i++)
        if (v[2 + i] != sizes[i]) return false;
    return true;
}

/* Reads the geometry from the attributes and the source shape `xt`; checks w's shape. */
int op_dnn_conv_geom_read(const op_conv_attrs *a, const op_tensor *xt, const op_tensor *wt,
                          conv_geom *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (a->sdims < 1 || a->sdims > 3 || xt->rank != a->sdims + 2)
        return op_dnn_errf(err, errlen, "oneDNN conv: a %d-D convolution got a rank-%d source",
                           a->sdims, xt->rank);
    g->sp = a->sdims == 3 ? 3 : 2;
    int64_t v[5];
    if (act_view(xt, g->sp, v)) return op_dnn_errf(err, errlen, "oneDNN conv: bad source rank");
    g->n = v[0];
    g->c = v[1];
    g->f = wt->d[0];
    if (a->filters > 0 && a->filters != g->f)
        return op_dnn_errf(err, errlen, "oneDNN conv: attributes say %lld filters, the weights have %lld",
                           (long long)a->filters, (long long)g->f);
    g->g = a->groups > 0 ? a->groups : 1;
    /* per spatial axis in oneDNN's order: kernel, stride, pad, dilation */
    int64_t k[3], st[3], pd[3], dl[3];
    if (g->sp == 3) {
        int64_t kk[3] = {a->kernel_d, a->kernel[0], a->kernel[1]};
        int64_t ss[3] = {a->stride_d, a->stride[0], a->stride[1]};
        int64_t pp[3] = {a->pad_d, a->pad[0], a->pad[1]};
        int64_t dd[3] = {a->dilation_d, a->dilation[0], a->dilation[1]};
        memcpy(k, kk, sizeof k), memcpy(st, ss, sizeof st), memcpy(pd, pp, sizeof pd), memcpy(dl, dd, sizeof dl);
    } else {
        bool one = a->sdims == 1;
        int64_t kk[2] = {one ? 1 : a->kernel[0], a->kernel[1]};
        int64_t ss[2] = {one ? 1 : a->stride[0], a->stride[1]};
        int64_t pp[2] = {one ? 0 : a->pad[0], a->pad[1]};
        int64_t dd[2] = {one ? 1 : a->dilation[0], a->dilation[1]};
        memcpy(k, kk, sizeof kk), memcpy(st, ss, sizeof ss), memcpy(pd, pp, sizeof pp), memcpy(dl, dd, sizeof dd);
    }
    for (int i = 0; i < g->sp; i++) {
        if (k[i] < 1 || st[i] < 1 || dl[i] < 1 || pd[i] < 0)
            return op_dnn_errf(err, errlen, "oneDNN conv: inconsistent geometry");
        int64_t span = v[2 + i] + 2 * pd[i] - dl[i] * (k[i] - 1) - 1;
        if (span < 0) return op_dnn_errf(err, errlen, "oneDNN conv: inconsistent geometry");
        g->in[i] = v[2 + i];
        g->k[i] = k[i];
        g->out[i] = span / st[i] + 1;
        g->stride[i] = st[i];
        g->dil[i] = dl[i] - 1; /* oneDNN counts the gaps: PyTorch's dilation minus one */
        g->pad[i] = pd[i];
    }
    if (g->f % g->g || g->c % g->g)
        return op_dnn_errf(err, errlen, "oneDNN conv: inconsistent geometry");
    int64_t cg = g->c / g->g;
    bool wok = wt->rank == a->sdims + 2 && wt->d[0] == g->f && wt->d[1] == cg;
    /* the weight's kernel axes are the last sdims of k (1-D: only the width) */
    for (int i = 0; wok && i < a->sdims; i++)
        wok = wt->d[2 + i] == k[g->sp - a->sdims + i];
    if (!wok) return op_dnn_errf(err, errlen, "oneDNN conv: weights do not match the attributes");
    int nd = 0;
    if (g->g > 1) g->wdims[nd++] = g->g;
    g->wdims[nd++] = g->f / g->g;
    g->wdims[nd++] = cg;
    for (int i = 0; i < g->sp; i++) g->wdims[nd++] = g->k[i];
    g->wnd = nd;
    return 0;
}



/* Descriptors for the primitive (prim: channels-last activations as they are, else "any";
 * weights "any") or of the call's tensors (activations in their layouts, weights plain). */
void op_dnn_conv_mds(const conv_geom *g, conv_layouts cl, bool prim, dnnl_memory_desc_t *x,
                     dnnl_memory_desc_t *w, dnnl_memory_desc_t *y)
{
    int nd = 2 + g->sp;
    int64_t xd[5] = {g->n, g->c}, yd[5] = {g->n, g->f};
    for (int i = 0; i < g->sp; i++) {
        xd[2 + i] = g->in[i];
        yd[2 + i] = g->out[i];
    }
    *x = prim && cl.x == OP_LAYOUT_PLAIN ? op_dnn_md_any(nd, xd) : op_dnn_md_layout(nd, xd, cl.x);
    *w = prim ? op_dnn_md_any(g->wnd, g->wdims) : op_dnn_md(g->wnd, g->wdims);
    *y = prim && cl.y == OP_LAYOUT_PLAIN ? op_dnn_md_any(nd, yd) : op_dnn_md_layout(nd, yd, cl.y);
}

/* The type a node's x, w and dy are read as: bf16 in a bf16 training graph, else f32. */
static dnnl_data_type_t conv_in_type(const op_conv_attrs *a)
{
    return a->prec == OP_PREC_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* The algorithm a node asks for: Winograd (attrs.winograd, from compiler/pass_conv_algo.c) or
 * direct. */
static dnnl_alg_kind_t conv_alg(const op_conv_attrs *a)
{
    return a->winograd ? dnnl_convolution_winograd : dnnl_convolution_direct;
}

/* The layouts a primitive of algorithm `alg` is described with: oneDNN's Winograd kernels read
 * and write their own blocked layout only, so their activations are "any" (it is nChw16c, the
 * layout pass's OP_LAYOUT_BLOCK16, which then needs no reorder; plain and channels-last tensors
 * are reordered around them). */
static conv_layouts prim_layouts(conv_layouts cl, dnnl_alg_kind_t alg)
{
    if (alg == dnnl_convolution_winograd) cl.x = cl.y = OP_LAYOUT_PLAIN;
    return cl;
}

/* The forward primitive descriptor (also the hint of the backward ones), its x and w read as
 * `in` (f32 or bf16), y f32, by algorithm *alg.  A Winograd request oneDNN has no kernel for
 * (shape, post-ops, ISA) falls back to direct, and *alg says so. */
static int conv_fwd_pd(const conv_geom *g, conv_layouts cl, bool bias, dnnl_data_type_t in, dnnl_prop_kind_t prop,
                       const_dnnl_primitive_attr_t attr, dnnl_alg_kind_t *alg, dnnl_primitive_desc_t *pd,
                       char *err, size_t errlen)
{
    dnnl_memory_desc_t b = op_dnn_md(1, &g->f);
    for (;; *alg = dnnl_convolution_direct) {
        dnnl_memory_desc_t x, w, y;
        op_dnn_conv_mds(g, prim_layouts(cl, *alg), true, &x, &w, &y);
        x.data_type = w.data_type = in;
        dnnl_convolution_desc_t d;
        dnnl_status_t s = dnnl_dilated_convolution_forward_desc_init(&d, prop, *alg, &x, &w, bias ? &b : NULL, &y,
                                                                     g->stride, g->dil, g->pad, g->pad);
        if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &d, attr, op_dnn_engine(), NULL);
        if (s == dnnl_success) return 0;
        if (*alg == dnnl_convolution_direct) return op_dnn_fail(s, "convolution", err, errlen);
    }
}

/* A backward primitive descriptor (data, or weights with the bias gradient when `bias`), x, w and
 * dy read as `in`, with the forward one as its hint, by the node's algorithm; a Winograd request
 * oneDNN has no kernel for falls back to direct. */
static int conv_bwd_pd(const conv_geom *g, conv_layouts cl, bool weights, bool bias, dnnl_data_type_t in,
                       const_dnnl_primitive_attr_t attr, dnnl_alg_kind_t alg, dnnl_primitive_desc_t *pd,
                       char *err, size_t errlen)
{
    for (;; alg = dnnl_convolution_direct) {
        dnnl_alg_kind_t fwd_alg = alg;
        dnnl_primitive_desc_t hint = NULL;
        if (conv_fwd_pd(g, cl, bias, in, dnnl_forward_training, attr, &fwd_alg, &hint, err, errlen)) return -1;
        alg = fwd_alg;
        dnnl_memory_desc_t xa, wa, ya;
        op_dnn_conv_mds(g, prim_layouts(cl, alg), true, &xa, &wa, &ya);
        dnnl_memory_desc_t bp = op_dnn_md(1, &g->f);
        dnnl_convolution_desc_t d;
        dnnl_status_t s;
        if (weights) {
            xa.data_type = ya.data_type = in; /* x and dy; dw and db stay f32 */
            s = dnnl_dilated_convolution_backward_weights_desc_init(&d, alg, &xa, &wa, bias ? &bp : NULL, &ya,
                                                                    g->stride, g->dil, g->pad, g->pad);
        } else {
            wa.data_type = ya.data_type = in; /* w and dy; dx stays f32 */
            s = dnnl_dilated_convolution_backward_data_desc_init(&d, alg, &xa, &wa, &ya, g->stride, g->dil,
                                                                 g->pad, g->pad);
        }
        if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &d, attr, op_dnn_engine(), hint);
        dnnl_primitive_desc_destroy(hint);
        if (s == dnnl_success) return 0;
        if (alg == dnnl_convolution_direct)
            return op_dnn_fail(s, weights ? "convolution backward weights" : "convolution backward data", err,
                               errlen);
    }
}

/* ---- forward with the epilogue */

int op_dnn_conv_build_pool(op_dnn_prog *p, const op_call *c, const conv_geom *g, int conv_dst,
                           char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int one = a->sdims == 1;
    dnnl_dims_t kernel = {one ? 1 : a->pool_size[0], a->pool_size[1]};
    dnnl_dims_t stride = {one ? 1 : a->pool_stride[0], a->pool_stride[1]};
    dnnl_dims_t pad = {one ? 0 : a->pool_pad[0], a->pool_pad[1]};
    if (g->sp != 2)
        return op_dnn_errf(err, errlen, "oneDNN conv: fused pooling is for 1-D and 2-D convolutions only");
    int64_t pooled[2] = {(g->out[0] + 2 * pad[0] - kernel[0]) / stride[0] + 1,
                         (g->out[1] + 2 * pad[1] - kernel[1]) / stride[1] + 1};
    int po = a->pool_keep ? 1 : 0; /* the pooled output (kept: output 0 is the conv's) */
    if (!op_dnn_conv_act_is(g, &c->out[po], g->f, pooled))
        return op_dnn_errf(err, errlen, "oneDNN conv: output shape does not match the fused pooling");
    int64_t yd[4] = {g->n, g->f, pooled[0], pooled[1]};
    dnnl_memory_desc_t y_any = op_dnn_md_any(4, yd);
    dnnl_memory_desc_t y_plain = op_dnn_md_layout(4, yd, op_dnn_tensor_layout(c, &c->out[po]));
    /* the conv's type (f32; u8/s8 from an int8 conv_q) */
    y_any.data_type = y_plain.data_type = op_dnn_mem_md(p, conv_dst)->data_type;
    dnnl_pooling_desc_t d;
    OP_DNN_TRY(dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, dnnl_pooling_max,
                                              op_dnn_mem_md(p, conv_dst), &y_any, stride, kernel, pad, pad),
               "fused pooling descriptor");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "fused pooling", err, errlen);
    int user, rc = -1;
    int dst = op_dnn_output(p, &y_plain, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
                            OP_DNN_OUT, po, &user, err, errlen);
    if (dst >= 0 && op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_SRC, conv_dst, DNNL_ARG_DST, dst) >= 0)
        rc = user >= 0 && op_dnn_reorder(p, dst, user, false, err, errlen) < 0 ? -1 : 0;
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

int op_dnn_conv_finish(op_dnn_prog *p, const op_call *c, const conv_geom *g, dnnl_primitive_desc_t pd,
                       const dnnl_memory_desc_t *yp, const op_conv_attrs *a, int rin, float res_scale,
                       dnnl_data_type_t res_view, int x, int w, int b, char *err, size_t errlen)
{
    const dnnl_memory_desc_t *ywant = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int user = -1, y;
    if (a->pool && !a->pool_keep)
        y = op_dnn_mem_own(p, ywant, err, errlen);
    else
        y = op_dnn_output(p, yp, ywant, OP_DNN_OUT, 0, &user, err, errlen);
    if (y < 0) return -1;
    if (a->residual) {
        /* the sum post-op adds what dst holds: put the residual there first */
        int64_t rd[5] = {g->n, g->f};
        for (int i = 0; i < g->sp; i++) rd[2 + i] = g->out[i];
        dnnl_memory_desc_t rp = op_dnn_md_layout(2 + g->sp, rd, op_dnn_tensor_layout(c, &c->in[rin]));
        int rt = c->in[rin].dtype;
        rp.data_type = rt == OP_DT_U8 ? dnnl_u8 : rt == OP_DT_S8 ? dnnl_s8 : dnnl_f32;
        int r = op_dnn_mem_bound(p, &rp, OP_DNN_IN, rin, err, errlen);
        int yv = r < 0 ? -1 : res_view == dnnl_data_type_undef ? y : op_dnn_mem_view(p, y, res_view, err, errlen);
        /* (the copy is skipped when the residual already is the destination's buffer, as the same values) */
        bool same = rp.data_type == op_dnn_mem_md(p, yv < 0 ? y : yv)->data_type && res_scale == 1.0f;
        if (yv < 0 || op_dnn_reorder_scaled(p, r, yv, res_scale, same, err, errlen) < 0) return -1;
    }
    p->main_step = a->bias ? op_dnn_prim(p, pd, err, errlen, 4, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_BIAS, b, DNNL_ARG_DST, y)
                           : op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_DST, y);
    if (p->main_step < 0) return -1;
    if (user >= 0 && op_dnn_reorder(p, y, user, false, err, errlen) < 0) return -1;
    return a->pool ? op_dnn_conv_build_pool(p, c, g, y, err, errlen) : 0;
}

static int conv_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int nin = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    int nout = a->pool && a->pool_keep ? 2 : 1;
    if (c->nin != nin || c->nout != nout)
        return op_dnn_errf(err, errlen, "oneDNN conv: expected %d inputs and %d output%s", nin, nout,
                           nout > 1 ? "s" : "");
    conv_geom g;
    if (op_dnn_conv_geom_read(a, &c->in[0], &c->in[1], &g, err, errlen)) return -1;
    if (a->pool && g.sp != 2)
        return op_dnn_errf(err, errlen, "oneDNN conv: fused pooling is for 1-D and 2-D convolutions only");
    if ((!a->pool || a->pool_keep) && !op_dnn_conv_act_is(&g, &c->out[0], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv: output shape does not match the attributes");
    if (a->residual && !op_dnn_conv_act_is(&g, &c->in[nin - 1], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv: residual shape does not match the attributes");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    if (op_dnn_attr_act(attr, a->act, a->alpha, a->residual, err, errlen)) {
        dnnl_primitive_attr_destroy(attr);
        return -1;
    }
    conv_layouts cl = {op_dnn_tensor_layout(c, &c->in[0]), op_dnn_tensor_layout(c, &c->out[0])};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_alg_kind_t alg = conv_alg(a);
    /* (oneDNN's inference Winograd takes its weights pre-transformed, which a training step
     * would redo every time: there the training kernel transforms them itself) */
    dnnl_prop_kind_t prop = a->weights_vary ? dnnl_forward_training : dnnl_forward_inference;
    int rc = conv_fwd_pd(&g, cl, a->bias, conv_in_type(a), prop, attr, &alg, &pd, err, errlen);
    dnnl_primitive_attr_destroy(attr);
    if (rc) return -1;

    rc = -1;
    dnnl_memory_desc_t xp, wp, yp;
    op_dnn_conv_mds(&g, cl, false, &xp, &wp, &yp);
    dnnl_memory_desc_t bp = op_dnn_md(1, &g.f);
    int x = op_dnn_input(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), OP_DNN_IN, 0,
                         err, errlen);
    int w = x < 0 ? -1
                  : op_dnn_weights(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 1,
                                   err, errlen);
    int b = w < 0 || !a->bias ? -1
                              : op_dnn_input(p, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                                             OP_DNN_IN, 2, err, errlen);
    if (w < 0 || (a->bias && b < 0)) goto done;
    rc = op_dnn_conv_finish(p, c, &g, pd, &yp, a, nin - 1, 1.0f, dnnl_data_type_undef, x, w, b, err, errlen);
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_conv_kernel, conv_build, OP_LAYOUT_PREFERS_CL, true);

/* ---- backward data: dy, w -> dx */

static int conv_bwd_data_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    if (c->nin != 2 || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN conv_bwd_data: expected 2 inputs and 1 output");
    conv_geom g;
    if (op_dnn_conv_geom_read(a, &c->out[0], &c->in[1], &g, err, errlen)) return -1;
    if (!op_dnn_conv_act_is(&g, &c->in[0], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv_bwd_data: dy does not match the attributes");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    conv_layouts cl = {op_dnn_tensor_layout(c, &c->out[0]), op_dnn_tensor_layout(c, &c->in[0])};
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (conv_bwd_pd(&g, cl, false, false, conv_in_type(a), attr, conv_alg(a), &pd, err, errlen)) goto done;
    dnnl_memory_desc_t xp, wp, yp;
    op_dnn_conv_mds(&g, cl, false, &xp, &wp, &yp);
    int dyid = op_dnn_input(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0),
                            OP_DNN_IN, 0, err, errlen);
    int w = dyid < 0 ? -1
                     : op_dnn_weights(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), 1,
                                      err, errlen);
    int user = -1;
    int dx = w < 0 ? -1
                   : op_dnn_output(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0),
                                   OP_DNN_OUT, 0, &user, err, errlen);
    if (dx < 0) goto done;
    p->main_step = op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dyid, DNNL_ARG_WEIGHTS, w,
                               DNNL_ARG_DIFF_SRC, dx);
    if (p->main_step < 0) goto done;
    rc = user >= 0 && op_dnn_reorder(p, dx, user, false, err, errlen) < 0 ? -1 : 0;
done:
    dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_conv_bwd_data_kernel, conv_bwd_data_build, OP_LAYOUT_PREFERS_CL, true);

/* ---- backward weights: dy, x -> dw, db */

static int conv_bwd_weights_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int nout = a->bias ? 2 : 1;
    if (c->nin != 2 || c->nout != nout)
        return op_dnn_errf(err, errlen, "oneDNN conv_bwd_weights: expected 2 inputs and %d outputs", nout);
    conv_geom g;
    if (op_dnn_conv_geom_read(a, &c->in[1], &c->out[0], &g, err, errlen)) return -1;
    if (!op_dnn_conv_act_is(&g, &c->in[0], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv_bwd_weights: dy does not match the attributes");
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != g.f))
        return op_dnn_errf(err, errlen, "oneDNN conv_bwd_weights: db must be [F]");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    conv_layouts cl = {op_dnn_tensor_layout(c, &c->in[1]), op_dnn_tensor_layout(c, &c->in[0])};
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (conv_bwd_pd(&g, cl, true, a->bias, conv_in_type(a), attr, conv_alg(a), &pd, err, errlen)) goto done;
    dnnl_memory_desc_t xp, wp, yp;
    op_dnn_conv_mds(&g, cl, false, &xp, &wp, &yp);
    dnnl_memory_desc_t bp = op_dnn_md(1, &g.f);
    int dyid = op_dnn_input(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0),
                            OP_DNN_IN, 0, err, errlen);
    int x = dyid < 0 ? -1
                     : op_dnn_input(p, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                                    OP_DNN_IN, 1, err, errlen);
    int wuser = -1, buser = -1;
    int dw = x < 0 ? -1
                   : op_dnn_output(p, &wp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0),
                                   OP_DNN_OUT, 0, &wuser, err, errlen);
    int db = dw < 0 || !a->bias
                 ? -1
                 : op_dnn_output(p, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 1),
                                 OP_DNN_OUT, 1, &buser, err, errlen);
    if (dw < 0 || (a->bias && db < 0)) goto done;
    p->main_step = a->bias ? op_dnn_prim(p, pd, err, errlen, 4, DNNL_ARG_DIFF_DST, dyid, DNNL_ARG_SRC, x,
                                         DNNL_ARG_DIFF_WEIGHTS, dw, DNNL_ARG_DIFF_BIAS, db)
                           : op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dyid, DNNL_ARG_SRC, x,
                                         DNNL_ARG_DIFF_WEIGHTS, dw);
    if (p->main_step < 0) goto done;
    if (wuser >= 0 && op_dnn_reorder(p, dw, wuser, false, err, errlen) < 0) goto done;
    if (buser >= 0 && op_dnn_reorder(p, db, buser, false, err, errlen) < 0) goto done;
    rc = 0;
done:
    dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_conv_bwd_weights_kernel, conv_bwd_weights_build, OP_LAYOUT_PREFERS_CL, true);
