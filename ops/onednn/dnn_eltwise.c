/* oneDNN elementwise and channel ops, on plain or channels-last tensors: activations (relu, sigmoid, tanh,
 * leaky_relu) and act_bwd, softmax over axis 1 and softmax_bwd, add of k inputs with the
 * fused activation (a sum primitive, then an eltwise in place), concat along axis 1 and
 * concat_bwd (a reorder out of a channel slice of dy).
 *
 *   relu/sigmoid/tanh/leaky_relu:  x -> y            act_bwd:     dy, y (or x) -> dx
 *   softmax:  x [N,C,...] -> y (over C)              softmax_bwd: dy, y -> dx
 *   add:      x1..xk -> y = act(sum)                 concat:      x1..xk [N,Ci,...] -> y
 *   concat_bwd: dy [N,Ctot,...] -> dx [N,C,...], channels [offset, offset+C)
 * The elementwise ops view their tensors flat, which holds in either layout as long as all of
 * them share it (checked); the channel ops describe each tensor in its own layout. */
#include "ops/onednn/dnn_common.h"
#include "ops/registry.h"

/* [N, inner] view of a tensor (elementwise ops do not care about the rest). */
static dnnl_memory_desc_t flat_md(const op_tensor *t)
{
    int64_t d[2] = {t->rank > 0 ? t->d[0] : 1, t->rank > 0 ? op_dnn_inner(t) : 1};
    return op_dnn_md(2, d);
}

static bool same_numel(const op_tensor *a, const op_tensor *b)
{
    return (a->rank > 0 ? a->d[0] : 1) * op_dnn_inner(a) == (b->rank > 0 ? b->d[0] : 1) * op_dnn_inner(b);
}

/* [N, C, S] view (S = the product of the spatial axes), or [N, C] for rank 2, in plain order,
 * channels-last [N, S, C] or blocked [N, C/16, S, 16] (layout l). */
static dnnl_memory_desc_t ncs_md(const op_tensor *t, op_layout l, int *ndims)
{
    int64_t d[3] = {t->d[0], t->rank > 1 ? t->d[1] : 1, 1};
    for (int k = 2; k < t->rank; k++) d[2] *= t->d[k];
    *ndims = t->rank > 2 ? 3 : 2;
    return op_dnn_md_layout(*ndims, d, l);
}

static int simple_pd(dnnl_primitive_desc_t *pd, const void *desc, const_dnnl_primitive_desc_t hint,
                     const char *what, char *err, size_t errlen)
{
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_status_t s = dnnl_primitive_desc_create(pd, desc, attr, op_dnn_engine(), hint);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, what, err, errlen);
    return 0;
}

/* ---- activations */

int op_dnn_act_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_act act, float alpha, int src, int dst,
                    char *err, size_t errlen)
{
    float a;
    dnnl_alg_kind_t alg = op_dnn_act_alg(act, alpha, &a);
    dnnl_eltwise_desc_t d;
    OP_DNN_TRY(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, md, a, 0.0f), "eltwise descriptor");
    dnnl_primitive_desc_t pd = NULL;
    if (simple_pd(&pd, &d, NULL, "eltwise", err, errlen)) return -1;
    int k = op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_SRC, src, DNNL_ARG_DST, dst);
    dnnl_primitive_desc_destroy(pd);
    return k;
}

static int act_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin != 1 || c->nout != 1 || !same_numel(&c->in[0], &c->out[0]))
        return op_dnn_errf(err, errlen, "oneDNN activation: expected x and y of one shape");
    if (op_dnn_one_layout(c, "activation", err, errlen)) return -1;
    /* the activation ops carry their kind in the registry (.act); others in their attributes */
    const op_def *def = op_def_get(c->node->op);
    op_act act = def && def->act != OP_ACT_NONE ? def->act : c->node->attrs.act.act;
    if (act == OP_ACT_NONE) return op_dnn_errf(err, errlen, "oneDNN activation: no activation given");
    dnnl_memory_desc_t md = flat_md(&c->in[0]);
    int x = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int y = x < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (y >= 0) p->main_step = op_dnn_act_step(p, &md, act, c->node->attrs.act.alpha, x, y, err, errlen);
    return y < 0 || p->main_step < 0 ? -1 : 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_act_kernel, act_build, OP_LAYOUT_EITHER, true);

/* The activation's backward: relu and leaky_relu decide on the sign of the tensor given (y,
 * or x when alpha <= 0), which is oneDNN's relu backward "from src" applied to that tensor;
 * sigmoid and tanh use oneDNN's backward from the forward output. */
int op_dnn_act_bwd_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_act act, float alpha, int dy, int y,
                        int dx, char *err, size_t errlen)
{
    dnnl_alg_kind_t alg;
    float a = 0.0f;
    int data_arg = DNNL_ARG_SRC;
    switch (act) {
    case OP_ACT_RELU: alg = dnnl_eltwise_relu; break;
    case OP_ACT_LEAKY_RELU: alg = dnnl_eltwise_relu; a = alpha; break;
    case OP_ACT_SIGMOID: alg = dnnl_eltwise_logistic_use_dst_for_bwd; data_arg = DNNL_ARG_DST; break;
    case OP_ACT_TANH: alg = dnnl_eltwise_tanh_use_dst_for_bwd; data_arg = DNNL_ARG_DST; break;
    default: return op_dnn_errf(err, errlen, "oneDNN act_bwd: no activation given");
    }
    dnnl_eltwise_desc_t fd, bd;
    OP_DNN_TRY(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, alg, md, a, 0.0f), "eltwise descriptor");
    OP_DNN_TRY(dnnl_eltwise_backward_desc_init(&bd, alg, md, md, a, 0.0f), "eltwise backward descriptor");
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int k = -1;
    if (!simple_pd(&hint, &fd, NULL, "eltwise", err, errlen) &&
        !simple_pd(&pd, &bd, hint, "eltwise backward", err, errlen))
        k = op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dy, data_arg, y, DNNL_ARG_DIFF_SRC, dx);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return k;
}

/* act_bwd; inputs after y (a fused gradient sum) are summed with dy into dx first, and the
 * activation's backward runs in place on dx */
static int act_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin < 2 || c->nout != 1 || !same_numel(&c->in[0], &c->out[0]) ||
        !same_numel(&c->in[0], &c->in[1]))
        return op_dnn_errf(err, errlen, "oneDNN act_bwd: expected dy, y and dx of one shape");
    for (int k = 2; k < c->nin; k++)
        if (!same_numel(&c->in[k], &c->in[0]))
            return op_dnn_errf(err, errlen, "oneDNN act_bwd: input %d differs in shape from dy", k);
    if (op_dnn_one_layout(c, "act_bwd", err, errlen)) return -1;
    dnnl_memory_desc_t md = flat_md(&c->in[0]);
    int dy = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int y = dy < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_IN, 1, err, errlen);
    int dx = y < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (dx < 0) return -1;
    if (c->nin > 2) {
        int src[OP_MAX_IN];
        src[0] = dy;
        for (int k = 2; k < c->nin; k++)
            if ((src[k - 1] = op_dnn_mem_bound(p, &md, OP_DNN_IN, k, err, errlen)) < 0) return -1;
        if (op_dnn_sum_step(p, &md, c->nin - 1, src, dx, err, errlen) < 0) return -1;
        dy = dx;
    }
    p->main_step = op_dnn_act_bwd_step(p, &md, c->node->attrs.act.act, c->node->attrs.act.alpha, dy, y, dx, err,
                                       errlen);
    return p->main_step < 0 ? -1 : 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_act_bwd_kernel, act_bwd_build, OP_LAYOUT_EITHER, true);

/* ---- softmax over axis 1 */

static int softmax_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin != 1 || c->nout != 1 || c->in[0].rank < 2 || !same_numel(&c->in[0], &c->out[0]))
        return op_dnn_errf(err, errlen, "oneDNN softmax: expected x [N,C,...] and y of its shape");
    if (op_dnn_one_layout(c, "softmax", err, errlen)) return -1;
    int nd;
    dnnl_memory_desc_t md = ncs_md(&c->in[0], op_dnn_call_layout(c), &nd);
    dnnl_softmax_desc_t d;
    OP_DNN_TRY(dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, &md, 1), "softmax descriptor");
    dnnl_primitive_desc_t pd = NULL;
    if (simple_pd(&pd, &d, NULL, "softmax", err, errlen)) return -1;
    int x = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int y = x < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (y >= 0) p->main_step = op_dnn_prim(p, pd, err, errlen, 2, DNNL_ARG_SRC, x, DNNL_ARG_DST, y);
    dnnl_primitive_desc_destroy(pd);
    return y < 0 || p->main_step < 0 ? -1 : 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_softmax_kernel, softmax_build, OP_LAYOUT_EITHER, false);

static int softmax_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin != 2 || c->nout != 1 || c->in[0].rank < 2 || !same_numel(&c->in[0], &c->out[0]) ||
        !same_numel(&c->in[0], &c->in[1]))
        return op_dnn_errf(err, errlen, "oneDNN softmax_bwd: expected dy, y and dx of one shape");
    if (op_dnn_one_layout(c, "softmax_bwd", err, errlen)) return -1;
    int nd;
    dnnl_memory_desc_t md = ncs_md(&c->in[0], op_dnn_call_layout(c), &nd);
    dnnl_softmax_desc_t fd, bd;
    OP_DNN_TRY(dnnl_softmax_forward_desc_init(&fd, dnnl_forward_training, &md, 1), "softmax descriptor");
    OP_DNN_TRY(dnnl_softmax_backward_desc_init(&bd, &md, &md, 1), "softmax backward descriptor");
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int rc = -1;
    if (simple_pd(&hint, &fd, NULL, "softmax", err, errlen) ||
        simple_pd(&pd, &bd, hint, "softmax backward", err, errlen))
        goto done;
    int dy = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int y = dy < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_IN, 1, err, errlen);
    int dx = y < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (dx < 0) goto done;
    p->main_step =
        op_dnn_prim(p, pd, err, errlen, 3, DNNL_ARG_DIFF_DST, dy, DNNL_ARG_DST, y, DNNL_ARG_DIFF_SRC, dx);
    rc = p->main_step < 0 ? -1 : 0;
done:
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_softmax_bwd_kernel, softmax_bwd_build, OP_LAYOUT_EITHER, false);

/* ---- add: a sum primitive, then the activation in place */

int op_dnn_sum_step(op_dnn_prog *p, const dnnl_memory_desc_t *md, int n, const int *srcs, int dst, char *err,
                    size_t errlen)
{
    dnnl_memory_desc_t mds[OP_MAX_IN];
    float scales[OP_MAX_IN];
    if (n < 1 || n > OP_MAX_IN) return op_dnn_errf(err, errlen, "oneDNN sum: %d inputs", n);
    for (int i = 0; i < n; i++) {
        mds[i] = *md;
        scales[i] = 1.0f;
    }
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_sum_primitive_desc_create(&pd, md, n, scales, mds, attr, op_dnn_engine());
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "sum", err, errlen);
    int k = op_dnn_prim(p, pd, err, errlen, 1, DNNL_ARG_DST, dst);
    dnnl_primitive_desc_destroy(pd);
    if (k < 0) return -1;
    op_dnn_step *st = &p->step[k];
    for (int i = 0; i < n; i++) {
        st->arg[st->nargs] = DNNL_ARG_MULTIPLE_SRC + i;
        st->mem[st->nargs++] = srcs[i];
    }
    return k;
}

static int add_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin < 2 || c->nin > OP_MAX_IN || c->nout != 1)
        return op_dnn_errf(err, errlen, "oneDNN add: expected 2 to %d inputs and 1 output", OP_MAX_IN);
    if (op_dnn_one_layout(c, "add", err, errlen)) return -1;
    dnnl_memory_desc_t md = flat_md(&c->out[0]);
    int mem[OP_MAX_IN];
    for (int i = 0; i < c->nin; i++)
        if (!same_numel(&c->in[i], &c->out[0]))
            return op_dnn_errf(err, errlen, "oneDNN add: input %d differs in shape", i + 1);
    for (int i = 0; i < c->nin; i++)
        if ((mem[i] = op_dnn_mem_bound(p, &md, OP_DNN_IN, i, err, errlen)) < 0) return -1;
    int y = op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (y < 0 || (p->main_step = op_dnn_sum_step(p, &md, c->nin, mem, y, err, errlen)) < 0) return -1;
    const op_act_attrs *a = &c->node->attrs.act;
    if (a->act != OP_ACT_NONE && op_dnn_act_step(p, &md, a->act, a->alpha, y, y, err, errlen) < 0)
        return -1;
    return 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_add_kernel, add_build, OP_LAYOUT_EITHER, true);

/* ---- concat along axis 1 and its backward */

static int concat_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin < 1 || c->nin > OP_MAX_IN || c->nout != 1 || c->out[0].rank < 2)
        return op_dnn_errf(err, errlen, "oneDNN concat: expected inputs [N,Ci,...] and one output");
    dnnl_memory_desc_t srcs[OP_MAX_IN];
    int mem[OP_MAX_IN], nd;
    int64_t ctot = 0;
    for (int i = 0; i < c->nin; i++) {
        if (c->in[i].rank != c->out[0].rank)
            return op_dnn_errf(err, errlen, "oneDNN concat: input %d differs in rank", i + 1);
        srcs[i] = ncs_md(&c->in[i], op_dnn_tensor_layout(c, &c->in[i]), &nd);
        ctot += c->in[i].d[1];
    }
    dnnl_memory_desc_t ymd = ncs_md(&c->out[0], op_dnn_tensor_layout(c, &c->out[0]), &nd);
    if (ctot != c->out[0].d[1])
        return op_dnn_errf(err, errlen, "oneDNN concat: channels do not add up to the output's");
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_concat_primitive_desc_create(&pd, &ymd, c->nin, 1, srcs, attr, op_dnn_engine());
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "concat", err, errlen);
    int rc = -1;
    for (int i = 0; i < c->nin; i++)
        if ((mem[i] = op_dnn_mem_bound(p, &srcs[i], OP_DNN_IN, i, err, errlen)) < 0) goto done;
    int y = op_dnn_mem_bound(p, &ymd, OP_DNN_OUT, 0, err, errlen);
    int k = y < 0 ? -1 : op_dnn_prim(p, pd, err, errlen, 1, DNNL_ARG_DST, y);
    if (k < 0) goto done;
    op_dnn_step *st = &p->step[k];
    for (int i = 0; i < c->nin; i++) {
        st->arg[st->nargs] = DNNL_ARG_MULTIPLE_SRC + i;
        st->mem[st->nargs++] = mem[i];
    }
    p->main_step = k;
    rc = 0;
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_concat_kernel, concat_build, OP_LAYOUT_EITHER, true);

static int concat_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    if (c->nin != 1 || c->nout != 1 || c->in[0].rank < 2 || c->in[0].rank != c->out[0].rank)
        return op_dnn_errf(err, errlen, "oneDNN concat_bwd: expected dy and dx of one rank");
    int nd;
    dnnl_memory_desc_t dymd = ncs_md(&c->in[0], op_dnn_tensor_layout(c, &c->in[0]), &nd);
    dnnl_memory_desc_t dxmd = ncs_md(&c->out[0], op_dnn_tensor_layout(c, &c->out[0]), &nd);
    int64_t off = c->node->attrs.slice.offset;
    if (off < 0 || off + c->out[0].d[1] > c->in[0].d[1] || op_dnn_inner(&c->in[0]) / c->in[0].d[1] !=
                                                                op_dnn_inner(&c->out[0]) / c->out[0].d[1])
        return op_dnn_errf(err, errlen, "oneDNN concat_bwd: the slice does not fit in dy");
    dnnl_dims_t dims = {0}, offs = {0, off, 0};
    for (int k = 0; k < nd; k++) dims[k] = dxmd.dims[k];
    dnnl_memory_desc_t slice;
    OP_DNN_TRY(dnnl_memory_desc_init_submemory(&slice, &dymd, dims, offs), "channel slice");
    int dy = op_dnn_mem_bound(p, &slice, OP_DNN_IN, 0, err, errlen);
    int dx = dy < 0 ? -1 : op_dnn_mem_bound(p, &dxmd, OP_DNN_OUT, 0, err, errlen);
    if (dx < 0) return -1;
    p->main_step = op_dnn_reorder(p, dy, dx, false, err, errlen);
    return p->main_step < 0 ? -1 : 0;
}

OP_DNN_SIMPLE_KERNEL(op_dnn_concat_bwd_kernel, concat_bwd_build, OP_LAYOUT_EITHER, true);
