/* oneDNN low-precision inference: conv_q and dense_q in int8 and bf16, with the epilogues of
 * the fp32 kernels (bias, residual as a sum post-op, activation as an eltwise post-op, a fused
 * max pooling as a second primitive).  The f32 input is converted at the start of the node (a
 * reorder: int8 with the scale 1/si, to u8 or s8 saturating, rounding to nearest even; bf16
 * rounding to nearest even) and the output is f32, so the node reads and writes what the fp32
 * layer does; the arithmetic is that of ops/quant.h.
 *
 * int8 weights: quantised per output channel by ops/quant.h into a plain s8 buffer of the
 * program whenever the weights' version changes, then reordered into oneDNN's layout (a
 * weights reorder, skipped while the version stays).  The output scales m[o] = si * sw[o] are
 * attributes of the primitive: the program is rebuilt when the scales change.  The bias is
 * given in accumulator units (b[o] / m[o]): oneDNN adds it before scaling.
 *
 *   conv_q:  x, w, b?, r?, [int8: sw [F], si [1], so [1] (int8 y), sr [1] (int8 r)]  ->  y
 *   dense_q: x, w, b?, [int8: sw [U], si [1]]      ->  y */
#include <stdlib.h>
#include <string.h>

#include "ops/mem.h"
#include "ops/onednn/dnn_conv.h"
#include "ops/quant.h"

static dnnl_memory_desc_t with_type(dnnl_memory_desc_t md, dnnl_data_type_t dt)
{
    md.data_type = dt;
    return md;
}

/* The layer's own inputs (x, w, bias, residual) and whether the node is int8. */
static int own_inputs(const op_call *c, bool *int8)
{
    if (c->node->op == OP_CONV_Q) {
        const op_conv_attrs *a = &c->node->attrs.conv;
        *int8 = a->prec == OP_PREC_INT8;
        return 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    }
    *int8 = c->node->attrs.dense.prec == OP_PREC_INT8;
    return 2 + (c->node->attrs.dense.bias ? 1 : 0);
}

static dnnl_data_type_t dnn_type(int dtype)
{
    return dtype == OP_DT_U8 ? dnnl_u8 : dtype == OP_DT_S8 ? dnnl_s8 : dnnl_f32;
}

/* The output multipliers of an int8 call into m (f values): divided by the output scale when
 * the output is int8; then m[f] = the int8 residual's scale (0 without one: the program is
 * built with it too); 0, or -1 when the scales are bad. */
static int call_multipliers(const op_call *c, int own, int64_t f, float *m, char *err, size_t errlen)
{
    const op_tensor *tw = &c->in[own], *ti = &c->in[own + 1];
    float so = 0.0f;
    if (c->out[0].dtype != OP_DT_F32) {
        const op_tensor *to = &c->in[own + 2];
        if (c->nin < own + 3 || !to->data || !op_q_scales_ok(to->data, 1))
            return op_dnn_errf(err, errlen, "oneDNN %s: the int8 output scale is not one positive finite value",
                               c->node->name);
        so = to->data[0];
    }
    int64_t nw = 1, ni = 1;
    for (int k = 0; k < tw->rank; k++) nw *= tw->d[k];
    for (int k = 0; k < ti->rank; k++) ni *= ti->d[k];
    if (nw != f || ni != 1 || !tw->data || !ti->data)
        return op_dnn_errf(err, errlen, "oneDNN %s: int8 scales must be [%lld] and [1]", c->node->name, (long long)f);
    if (!op_q_scales_ok(tw->data, f) || !op_q_scales_ok(ti->data, 1))
        return op_dnn_errf(err, errlen, "oneDNN %s: an int8 scale is zero, negative or not finite", c->node->name);
    op_q_out_scales(tw->data, ti->data[0], NULL, f, so, m, NULL);
    m[f] = 0.0f;
    if (c->node->op == OP_CONV_Q && c->node->attrs.conv.residual && c->in[own - 1].dtype != OP_DT_F32) {
        const op_tensor *tr = &c->in[own + 2 + (c->out[0].dtype != OP_DT_F32)];
        if (c->nin <= own + 2 + (c->out[0].dtype != OP_DT_F32) || !tr->data || !op_q_scales_ok(tr->data, 1))
            return op_dnn_errf(err, errlen, "oneDNN %s: the int8 residual scale is not one positive finite value",
                               c->node->name);
        m[f] = tr->data[0];
    }
    return 0;
}

/* The conversion of input 0 (bound with descriptor plain) into an owned memory of descriptor
 * want: int8 scaled by 1/si.  Returns the owned memory's id. */
static int convert_input(op_dnn_prog *p, const op_call *c, const dnnl_memory_desc_t *plain,
                         const dnnl_memory_desc_t *want, bool int8, int own, char *err, size_t errlen)
{
    if (c->in[0].dtype != OP_DT_F32) { /* already quantised by the int8 node before: as it is */
        dnnl_memory_desc_t typed = with_type(*plain, dnn_type(c->in[0].dtype));
        return op_dnn_input(p, &typed, want, OP_DNN_IN, 0, err, errlen);
    }
    int src = op_dnn_mem_bound(p, plain, OP_DNN_IN, 0, err, errlen);
    int dst = src < 0 ? -1 : op_dnn_mem_own(p, want, err, errlen);
    if (dst < 0) return -1;
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_status_t s = dnnl_success;
    if (int8) {
        float inv = 1.0f / c->in[own + 1].data[0];
        s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &inv);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (s == dnnl_success)
        s = dnnl_reorder_primitive_desc_create(&pd, plain, op_dnn_engine(), want, op_dnn_engine(), attr);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "input conversion", err, errlen);
    int k = op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_FROM, src, DNNL_ARG_TO, dst);
    dnnl_primitive_desc_destroy(pd);
    return k < 0 ? -1 : dst;
}

/* int8 weights: a plain s8 buffer of the program (memid[0], filled by the run) reordered to
 * want when that differs.  Returns the memory the primitive reads. */
static int int8_weights(op_dnn_prog *p, const dnnl_memory_desc_t *plain_s8, const dnnl_memory_desc_t *want,
                        char *err, size_t errlen)
{
    int q = op_dnn_mem_own(p, plain_s8, err, errlen);
    if (q < 0) return -1;
    p->memid[0] = q;
    if (dnnl_memory_desc_equal(plain_s8, want)) return q;
    int w = op_dnn_mem_own(p, want, err, errlen);
    int k = w < 0 ? -1 : op_dnn_reorder(p, q, w, false, err, errlen);
    if (k < 0) return -1;
    p->step[k].weights_reorder = true;
    return w;
}

/* The bias: int8 an owned f32 buffer in accumulator units (memid[1], filled by the run), bf16
 * the call's own. */
static int bias_mem(op_dnn_prog *p, bool int8, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                    char *err, size_t errlen)
{
    if (!int8) return op_dnn_input(p, plain, want, OP_DNN_IN, 2, err, errlen);
    int b = op_dnn_mem_own(p, want, err, errlen);
    p->memid[1] = b;
    return b;
}

/* An attribute with the int8 output scales (m: f values) and the post-ops: the sum (of scale
 * sum_scale, reading the destination as sum_type) and the activation. */
static int lowp_attr(dnnl_primitive_attr_t *attr, const op_call *c, bool int8, int own, int64_t f, op_act act,
                     float alpha, bool residual, float sum_scale, dnnl_data_type_t sum_type, char *err,
                     size_t errlen)
{
    if (op_dnn_attr(attr, err, errlen)) return -1;
    int rc = 0;
    if (int8) {
        float *m = cnn_mem_malloc(sizeof(float) * (size_t)(f + 1));
        if (!m) rc = op_dnn_errf(err, errlen, "oneDNN: out of memory");
        if (!rc) rc = call_multipliers(c, own, f, m, err, errlen);
        dnnl_status_t s = rc ? dnnl_success : dnnl_primitive_attr_set_output_scales(*attr, f, 1 << 1, m);
        if (s != dnnl_success) rc = op_dnn_fail(s, "output scales", err, errlen);
        cnn_mem_free(m);
    }
    if (!rc) rc = op_dnn_attr_act_sum(*attr, act, alpha, residual, sum_scale, sum_type, err, errlen);
    if (rc) dnnl_primitive_attr_destroy(*attr);
    return rc;
}

/* ---- conv_q */

static int conv_q_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    bool int8;
    int own = own_inputs(c, &int8);
    bool qout = c->out[0].dtype != OP_DT_F32, qres = a->residual && c->in[own - 1].dtype != OP_DT_F32;
    int extra = int8 ? 2 + qout + qres : 0;
    if (c->nin != own + extra || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN conv_q: expected %d inputs and 1 output", own + extra);
    if (!int8 && (c->in[0].dtype != OP_DT_F32 || c->out[0].dtype != OP_DT_F32 || qres))
        return op_dnn_errf(err, errlen, "oneDNN conv_q: bf16 takes f32 tensors");
    /* the residual (ops/quant.h): into an f32 destination as f32 (an int8 one times sr); into an
     * int8 one as u8/s8 bytes (an f32 one quantised with 1/so), summed times sr/so or 1 */
    const float *pso = qout ? c->in[own + 2].data : NULL, *psr = qres ? c->in[own + 2 + qout].data : NULL;
    float so = pso ? pso[0] : 0.0f, sr = psr ? psr[0] : 0.0f;
    if ((qout && (!pso || !op_q_scales_ok(&so, 1))) || (qres && (!psr || !op_q_scales_ok(&sr, 1))))
        return op_dnn_errf(err, errlen, "oneDNN %s: the int8 output or residual scale is not one positive finite value",
                           c->node->name);
    dnnl_data_type_t res_view = qout ? (a->res_unsigned ? dnnl_u8 : dnnl_s8) : dnnl_data_type_undef;
    if (qout && qres && dnn_type(c->in[own - 1].dtype) != res_view)
        return op_dnn_errf(err, errlen, "oneDNN %s: the int8 residual's sign does not match the node's",
                           c->node->name);
    float res_scale = qres && !qout ? sr : qout && !qres ? 1.0f / so : 1.0f;
    float sum_scale = qres && qout ? sr / so : 1.0f;
    conv_geom g;
    if (op_dnn_conv_geom_read(a, &c->in[0], &c->in[1], &g, err, errlen)) return -1;
    if (a->pool && g.sp != 2)
        return op_dnn_errf(err, errlen, "oneDNN conv: fused pooling is for 1-D and 2-D convolutions only");
    if (!a->pool && !op_dnn_conv_act_is(&g, &c->out[0], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv: output shape does not match the attributes");
    if (a->residual && !op_dnn_conv_act_is(&g, &c->in[own - 1], g.f, g.out))
        return op_dnn_errf(err, errlen, "oneDNN conv: residual shape does not match the attributes");
    dnnl_primitive_attr_t attr;
    if (lowp_attr(&attr, c, int8, own, g.f, a->act, a->alpha, a->residual, sum_scale, res_view, err, errlen))
        return -1;
    conv_layouts cl = {op_dnn_tensor_layout(c, &c->in[0]), op_dnn_tensor_layout(c, &c->out[0])};
    dnnl_data_type_t xt = int8 ? (a->q_unsigned ? dnnl_u8 : dnnl_s8) : dnnl_bf16;
    dnnl_data_type_t wt = int8 ? dnnl_s8 : dnnl_bf16;
    dnnl_memory_desc_t xa, wa, ya, xp, wp, yp;
    op_dnn_conv_mds(&g, cl, true, &xa, &wa, &ya);
    op_dnn_conv_mds(&g, cl, false, &xp, &wp, &yp);
    xa = with_type(xa, xt);
    wa = with_type(wa, wt);
    ya = with_type(ya, dnn_type(c->out[0].dtype));
    yp = with_type(yp, dnn_type(c->out[0].dtype));
    dnnl_memory_desc_t bp = op_dnn_md(1, &g.f);
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_dilated_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct,
                                                                 &xa, &wa, a->bias ? &bp : NULL, &ya, g.stride,
                                                                 g.dil, g.pad, g.pad);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, int8 ? "int8 convolution" : "bf16 convolution", err, errlen);
    int rc = -1;
    int x = convert_input(p, c, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), int8, own, err, errlen);
    dnnl_memory_desc_t wq = with_type(wp, dnnl_s8);
    const dnnl_memory_desc_t *wwant = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    int w = x < 0 ? -1 : int8 ? int8_weights(p, &wq, wwant, err, errlen) : op_dnn_weights(p, &wp, wwant, 1, err, errlen);
    int b = w < 0 || !a->bias ? -1
                              : bias_mem(p, int8, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                                         err, errlen);
    if (w < 0 || (a->bias && b < 0)) goto done;
    rc = op_dnn_conv_finish(p, c, &g, pd, &yp, a, own - 1, res_scale, res_view, x, w, b, err, errlen);
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* ---- dense_q */

static int dense_q_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_dense_attrs *a = &c->node->attrs.dense;
    bool int8;
    int own = own_inputs(c, &int8);
    int extra = int8 ? (c->out[0].dtype != OP_DT_F32 ? 3 : 2) : 0;
    if (c->nin != own + extra || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN dense_q: expected %d inputs and 1 output", own + extra);
    if (!int8 && (c->in[0].dtype != OP_DT_F32 || c->out[0].dtype != OP_DT_F32))
        return op_dnn_errf(err, errlen, "oneDNN dense_q: bf16 takes f32 tensors");
    if (a->softmax) return op_dnn_errf(err, errlen, "oneDNN dense_q: no fused softmax");
    if (op_dnn_plain_only(&c->in[0], "dense_q", err, errlen)) return -1;
    const op_tensor *xt = &c->in[0], *wt = &c->in[1];
    int64_t n = xt->d[0], f = op_dnn_inner(xt), u = wt->d[0];
    if (xt->rank < 1 || wt->rank != 2 || wt->d[1] != f)
        return op_dnn_errf(err, errlen, "oneDNN dense_q: weights do not match %lld input features", (long long)f);
    if (op_dnn_inner(&c->out[0]) != u || c->out[0].d[0] != n)
        return op_dnn_errf(err, errlen, "oneDNN dense_q: output must be [N, %lld]", (long long)u);
    dnnl_primitive_attr_t attr;
    if (lowp_attr(&attr, c, int8, own, u, a->act, a->alpha, false, 1.0f, dnnl_data_type_undef, err, errlen))
        return -1;
    int64_t xd[2] = {n, f}, wd[2] = {u, f}, yd[2] = {n, u};
    dnnl_data_type_t xdt = int8 ? (a->q_unsigned ? dnnl_u8 : dnnl_s8) : dnnl_bf16;
    dnnl_memory_desc_t xa = with_type(op_dnn_md_any(2, xd), xdt);
    dnnl_memory_desc_t wa = with_type(op_dnn_md_any(2, wd), int8 ? dnnl_s8 : dnnl_bf16);
    dnnl_data_type_t ydt = dnn_type(c->out[0].dtype);
    dnnl_memory_desc_t ya = with_type(op_dnn_md_any(2, yd), ydt), bp = op_dnn_md(1, &u);
    dnnl_memory_desc_t xp = op_dnn_md(2, xd), wp = op_dnn_md(2, wd), yp = with_type(op_dnn_md(2, yd), ydt);
    dnnl_inner_product_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &xa, &wa,
                                                           a->bias ? &bp : NULL, &ya);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &d, attr, op_dnn_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, int8 ? "int8 inner product" : "bf16 inner product", err, errlen);
    int rc = -1;
    int x = convert_input(p, c, &xp, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), int8, own, err, errlen);
    dnnl_memory_desc_t wq = with_type(wp, dnnl_s8);
    const dnnl_memory_desc_t *wwant = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    int w = x < 0 ? -1 : int8 ? int8_weights(p, &wq, wwant, err, errlen) : op_dnn_weights(p, &wp, wwant, 1, err, errlen);
    int b = w < 0 || !a->bias ? -1
                              : bias_mem(p, int8, &bp, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                                         err, errlen);
    int user = -1;
    int y = w < 0 || (a->bias && b < 0)
                ? -1
                : op_dnn_output(p, &yp, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), OP_DNN_OUT, 0,
                                &user, err, errlen);
    if (y < 0) goto done;
    p->main_step = a->bias ? op_dnn_prim(p, pd, err, errlen, 4, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_BIAS, b, DNNL_ARG_DST, y)
                           : op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_SRC, x, DNNL_ARG_WEIGHTS, w,
                                         DNNL_ARG_DST, y);
    if (p->main_step < 0) goto done;
    rc = user >= 0 && op_dnn_reorder(p, y, user, false, err, errlen) < 0 ? -1 : 0;
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* ---- kernels: the program, the multipliers it was built with, the weights' version its
 * quantised weights come from */

typedef struct lowp_state {
    op_dnn_prog *p;
    float *m;           /* int8: the output multipliers the program was built with */
    float *m_now;       /* scratch for this run's */
    int64_t f;
    uint64_t version;
    bool quantised;     /* the program's s8 weights and bias are from `version` */
} lowp_state;

static void lowp_release(void *state)
{
    lowp_state *s = state;
    if (!s) return;
    op_dnn_release(s->p);
    cnn_mem_free(s->m);
    cnn_mem_free(s->m_now);
    cnn_mem_free(s);
}

static op_dnn_build_fn build_of(const op_call *c)
{
    return c->node->op == OP_CONV_Q ? conv_q_build : dense_q_build;
}

/* (Re)builds the program of the call into s. */
static int lowp_build(lowp_state *s, op_call *c, char *err, size_t errlen)
{
    op_call tmp = *c;
    tmp.state = s->p;
    s->p = NULL;
    int rc = op_dnn_prepare(&tmp, build_of(c), err, errlen);
    s->p = tmp.state;
    s->quantised = false;
    return rc;
}

static int lowp_prepare(op_call *c, char *err, size_t errlen)
{
    lowp_state *s = cnn_mem_calloc(1, sizeof *s);
    if (!s) return op_dnn_errf(err, errlen, "oneDNN: out of memory");
    bool int8;
    own_inputs(c, &int8);
    s->f = c->in[1].rank > 0 ? c->in[1].d[0] : 0;
    if (int8) {
        s->m = cnn_mem_calloc((size_t)s->f + 1, sizeof(float));
        s->m_now = cnn_mem_calloc((size_t)s->f + 1, sizeof(float));
        if (!s->m || !s->m_now) {
            lowp_release(s);
            return op_dnn_errf(err, errlen, "oneDNN: out of memory");
        }
    }
    lowp_release(c->state);
    c->state = s;
    /* the scales may not be loaded yet: a failed build is retried by the first run */
    char msg[256];
    if (!int8 || call_multipliers(c, own_inputs(c, &int8), s->f, s->m, msg, sizeof msg) == 0)
        return lowp_build(s, c, err, errlen);
    return 0;
}

static int lowp_run(op_call *c, char *err, size_t errlen)
{
    lowp_state *s = c->state;
    if (!s) return op_dnn_errf(err, errlen, "oneDNN %s: not prepared", c->node->name);
    bool int8;
    int own = own_inputs(c, &int8);
    int64_t f = c->in[1].rank > 0 ? c->in[1].d[0] : 0;
    if (f != s->f) return op_dnn_errf(err, errlen, "oneDNN %s: the weights changed shape", c->node->name);
    bool rebuild = !s->p;
    if (int8) {
        if (call_multipliers(c, own, f, s->m_now, err, errlen)) return -1;
        if (memcmp(s->m, s->m_now, sizeof(float) * (size_t)(f + 1)) != 0) {
            memcpy(s->m, s->m_now, sizeof(float) * (size_t)(f + 1));
            rebuild = true;
        }
    }
    if (!rebuild) {
        op_call tmp = *c;
        tmp.state = s->p;
        op_dnn_prog *p = op_dnn_ready(&tmp, build_of(c), err, errlen);
        if (p != s->p) s->quantised = false;
        s->p = tmp.state;
        if (!p) return -1;
    } else if (lowp_build(s, c, err, errlen)) {
        return -1;
    }
    op_dnn_prog *p = s->p;
    if (int8 && (!s->quantised || s->version != c->weights_version)) {
        const float *ws = c->in[own].data;
        int64_t per = 1;
        for (int k = 1; k < c->in[1].rank; k++) per *= c->in[1].d[k];
        op_q_weights(c->in[1].data, ws, f, per, (int8_t *)(void *)op_dnn_mem_data(p, p->memid[0]));
        if (p->memid[1] >= 0) /* the bias in accumulator units: b / (si * ws) */
            op_q_out_scales(ws, c->in[own + 1].data[0], c->in[2].data, f, 0.0f, s->m_now,
                            op_dnn_mem_data(p, p->memid[1]));
        s->quantised = true;
        s->version = c->weights_version;
    }
    return op_dnn_exec(p, c, 0, p->nsteps, err, errlen);
}

const op_kernel op_dnn_conv_q_kernel = {lowp_run, lowp_prepare, lowp_release, NULL, OP_LAYOUT_PREFERS_CL, false};
const op_kernel op_dnn_dense_q_kernel = {lowp_run, lowp_prepare, lowp_release, NULL, OP_LAYOUT_PLAIN_ONLY, false};
