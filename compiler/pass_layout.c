/* Layout choice: keeps activations in channels-last order (NHWC, NWC) between the kernels
 * that take it, and inserts reorder nodes only where a value must change order.
 *
 * Which backend runs a node is known here (ir_node.backend, from the backend pass), and the
 * capability table says what its kernel takes (op_caps.layouts).  In schedule order, each live node
 * gets a layout:
 *   - a kernel that takes plain tensors only (reference kernels, flatten, dense, losses) runs
 *     plain;
 *   - a kernel clearly faster in channels-last (oneDNN convolutions) runs channels-last;
 *   - a kernel indifferent to the layout (oneDNN pools, activations, add, batchnorm, concat,
 *     softmax and their backward) follows its inputs: channels-last when at least half of its
 *     layout-bearing inputs are (or it has none), so a chain of them never flips order;
 *   - a kernel that follows its inputs (native fp32 convolutions) does the same, except that
 *     with no layout-bearing input (a first layer on one channel) it runs plain; and one that
 *     is faster channels-last on 16 channels or more (op_caps.wide_cl: the native direct
 *     kernels with AVX-512; oneDNN's batchnorms, indifferent otherwise) runs channels-last on
 *     such images even when its inputs are plain.
 * A node's layout-bearing outputs take its layout.  Layout-bearing means a batched value of
 * shape [C, L] or [C, H, W] with more than one channel and more than one position: for the
 * others (vectors, one channel, one position) both orders are the same bytes, so they stay
 * plain and are never reordered.  Values made by no node (graph inputs, labels) are plain.
 *
 * A third order, channels blocked by 16 (OP_LAYOUT_BLOCK16, oneDNN's nChw16c), is the only one
 * oneDNN's Winograd convolutions read and write.  A oneDNN Winograd convolution
 * (attrs.conv.winograd; the native one runs channels-last) runs blocked; so do the kernels that
 * take blocked tensors (op_caps.blocked) and either read or write a value of the shape of one a
 * Winograd node reads or writes (the stretch of the network at that resolution and width: its
 * batchnorms, activations, residual adds, pools, projection and strided convolutions, forward and
 * backward), or whose layout-bearing inputs are mostly blocked (a tie goes the other way: a
 * backward node of a direct stretch reading a blocked gradient and a channels-last activation
 * stays channels-last, so the gradient is reordered once rather than every activation).  So a
 * stretch of Winograd layers runs blocked from end to end, with reorders at its edges only.  A node
 * runs blocked only when every batched value it touches is an image [C, H, W] whose C is a
 * multiple of 16 (or a vector): then a one-position image is the same bytes blocked as plain.
 *
 * Then every read of a value in another order than the reader's goes through a reorder:
 * one per value and target order, placed just before the first node that needs it and shared
 * by every later reader (gradients are ordinary values, so training graphs follow the same
 * rule).  Graph outputs must be plain for the public API: a channels-last output is reordered
 * at the end and the output points at the plain copy.  The graph's node order stays a valid
 * schedule (a reorder comes after the value's maker and before its reader).
 *
 * Runs last: it needs the final nodes.  Gradients are made before the passes run, so a
 * reorder never needs a gradient rule. */
#include "compiler/passes.h"
#include "ops/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/plan.h"
#include "ops/registry.h"

/* A value whose two orders are different bytes (see the header comment). */
static bool layout_bearing(const ir_value *v)
{
    if (!v->batched || v->shape.rank < 2)
        return false;
    int64_t spatial = 1;
    for (int k = 1; k < v->shape.rank; k++)
        spatial *= v->shape.d[k];
    return v->shape.d[0] > 1 && spatial > 1;
}

static op_layout_support node_support(const ir_node *nd, const op_caps *caps)
{
    return caps->has[nd->op][nd->backend] ? caps->layouts[nd->op][nd->backend] : OP_LAYOUT_PLAIN_ONLY;
}

/* A native convolution forward that runs by Winograd, a fused pooling included: the calls
 * ops/native/native_conv_wino.c takes (nconv_wino_fits: fp32, 2-D, 3x3, stride 1, padding 1,
 * no dilation, one group, 16k channels and filters), on a machine where it has them. */
static bool native_winograd(const ir_graph *g, const ir_node *nd, const op_caps *caps)
{
    const op_conv_attrs *a = &nd->attrs.conv;
    if (nd->op != OP_CONV2D || nd->backend != OP_BACKEND_NATIVE || !a->winograd ||
        !caps->winograd[nd->op][nd->backend] || nd->nin < 2 || nd->nout < 1)
        return false;
    const op_shape *x = &g->vals[nd->in[0]].shape, *w = &g->vals[nd->in[1]].shape;
    return a->prec == OP_PREC_FP32 && a->sdims == 2 && a->groups <= 1 && a->kernel[0] == 3 && a->kernel[1] == 3 &&
           a->stride[0] == 1 && a->stride[1] == 1 && a->pad[0] == 1 && a->pad[1] == 1 && a->dilation[0] == 1 &&
           a->dilation[1] == 1 && x->rank == 3 && w->rank == 4 && x->d[0] % 16 == 0 && w->d[0] % 16 == 0;
}

/* A node faster channels-last on images of 16 channels or more (op_caps.wide_cl) on such
 * images; for a convolution, a native fp32 2-D one the direct channels-last kernels take: one
 * group, no fused pooling, the backward to the data at stride 1.  (1-D ones stay with their
 * inputs: signal1d's all-native step took 1.7 times as long with them channels-last.) */
static bool wide_cl(const ir_graph *g, const ir_node *nd, const op_caps *caps)
{
    if (!caps->has[nd->op][nd->backend] || !caps->wide_cl[nd->op][nd->backend])
        return false;
    const op_conv_attrs *a = &nd->attrs.conv;
    if (pass_conv_algo_node(nd) &&
        (a->prec != OP_PREC_FP32 || a->groups != 1 || (a->pool && !native_winograd(g, nd, caps)) || a->sdims != 2 ||
         (nd->op == OP_CONV_BWD_DATA && (a->stride[0] != 1 || a->stride[1] != 1))))
        return false;
    bool any = false;
    for (int k = 0; k < nd->nin + nd->nout; k++) {
        const ir_value *v = &g->vals[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
        if (layout_bearing(v)) {
            if (v->shape.d[0] < 16)
                return false;
            any = true;
        }
    }
    return any;
}

/* A native fp32 2-D convolution with a fused pooling, which the direct channels-last kernels do
 * not take (they would run it on plain copies of its tensors): on a machine with them
 * (op_caps.wide_cl) it runs plain, so the reorders around it are shared nodes; unless it runs by
 * Winograd, which takes the pooling channels-last. */
static bool pooled_plain(const ir_graph *g, const ir_node *nd, const op_caps *caps)
{
    return nd->op == OP_CONV2D && caps->has[nd->op][nd->backend] && caps->wide_cl[nd->op][nd->backend] &&
           nd->attrs.conv.pool && !native_winograd(g, nd, caps);
}

/* Whether node nd may run blocked (see the header comment). */
static bool blockable(const ir_graph *g, const ir_node *nd, const op_caps *caps)
{
    if (!caps->has[nd->op][nd->backend] || !caps->blocked[nd->op][nd->backend])
        return false;
    for (int k = 0; k < nd->nin + nd->nout; k++) {
        const ir_value *v = &g->vals[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
        if (v->batched && v->shape.rank != 1 && (v->shape.rank != 3 || v->shape.d[0] % 16 != 0))
            return false;
    }
    return true;
}

/* A oneDNN Winograd convolution (blocked only); the native one runs channels-last like the
 * native direct kernels. */
static bool winograd(const ir_node *nd)
{
    return pass_conv_algo_node(nd) && nd->attrs.conv.winograd && nd->backend == OP_BACKEND_ONEDNN;
}

/* Marks (wshape[v]) the layout-bearing values whose shape is that of a value a Winograd node
 * reads or writes: the stretch of the network at a Winograd convolution's resolution and width. */
static void winograd_shapes(const ir_graph *g, bool *wshape)
{
    for (int v = 0; v < g->nvals; v++)
        wshape[v] = false;
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        if (nd->dead || !winograd(nd))
            continue;
        for (int k = 0; k < nd->nin + nd->nout; k++) {
            const ir_value *w = &g->vals[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
            if (!layout_bearing(w))
                continue;
            for (int v = 0; v < g->nvals; v++)
                wshape[v] |= layout_bearing(&g->vals[v]) && op_shape_equal(&g->vals[v].shape, &w->shape);
        }
    }
}

/* Decides every live node's layout (lay[n]) and sets the layouts of the values they make;
 * blocked ones only when `blocked` (the reorders can convert them).  wshape: scratch, one per
 * value. */
static void choose_layouts(ir_graph *g, const op_caps *caps, bool blocked, op_layout *lay, bool *wshape)
{
    for (int v = 0; v < g->nvals; v++)
        g->vals[v].layout = OP_LAYOUT_PLAIN;
    winograd_shapes(g, wshape);
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        lay[n] = OP_LAYOUT_PLAIN;
        if (nd->dead)
            continue;
        int count[3] = {0, 0, 0};      /* layout-bearing inputs per layout */
        int64_t elems[3] = {0, 0, 0};  /* and their elements per example */
        for (int k = 0; k < nd->nin; k++) {
            const ir_value *v = &g->vals[nd->in[k]];
            if (layout_bearing(v)) {
                count[v->layout]++;
                elems[v->layout] += op_shape_numel(&v->shape);
            }
        }
        /* channels-last when most inputs are; on a tie, when most of their elements are (the
         * reorders then copy the smaller tensors: maxpool_bwd reads its pooled gradient and
         * the 4 times larger pool input) */
        int cl_n = count[OP_LAYOUT_NHWC] + count[OP_LAYOUT_BLOCK16];
        bool cl_most = cl_n > count[OP_LAYOUT_PLAIN] ||
                       (cl_n == count[OP_LAYOUT_PLAIN] &&
                        elems[OP_LAYOUT_NHWC] + elems[OP_LAYOUT_BLOCK16] >= elems[OP_LAYOUT_PLAIN]);
        bool blk = blocked && blockable(g, nd, caps);
        bool near = false; /* it reads or writes a value of a Winograd stretch's shape */
        for (int k = 0; k < nd->nin + nd->nout; k++)
            near |= wshape[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
        switch (node_support(nd, caps)) {
        case OP_LAYOUT_PLAIN_ONLY:
            break;
        case OP_LAYOUT_PREFERS_CL:
            lay[n] = blk && (winograd(nd) || near || count[OP_LAYOUT_BLOCK16] > count[OP_LAYOUT_PLAIN] + count[OP_LAYOUT_NHWC])
                         ? OP_LAYOUT_BLOCK16
                         : OP_LAYOUT_NHWC;
            break;
        case OP_LAYOUT_FOLLOWS_INPUTS:
            if (pooled_plain(g, nd, caps) || (cl_n == 0 && !wide_cl(g, nd, caps)))
                break;
            if (cl_n == 0) {
                lay[n] = OP_LAYOUT_NHWC;
                break;
            }
            /* fall through */
        case OP_LAYOUT_EITHER:
            if (blk && (near || count[OP_LAYOUT_BLOCK16] > count[OP_LAYOUT_NHWC] + count[OP_LAYOUT_PLAIN]))
                lay[n] = OP_LAYOUT_BLOCK16;
            else
                lay[n] = cl_most || wide_cl(g, nd, caps) ? OP_LAYOUT_NHWC : OP_LAYOUT_PLAIN;
            break;
        }
        if (lay[n] != OP_LAYOUT_PLAIN)
            for (int k = 0; k < nd->nout; k++)
                if (layout_bearing(&g->vals[nd->out[k]]))
                    g->vals[nd->out[k]].layout = lay[n];
    }
}

typedef struct rewrite {
    ir_graph *g;
    ir_node *nodes;       /* the new node list */
    int nnodes, cap;
    int *copy[3];         /* per original value: its copy in each op_layout, or -1 */
    int nvals0;           /* values before the pass */
    int made;             /* reorders made */
    op_backend reorder_backend; /* where the reorders run */
} rewrite;

/* The copy of value v in layout `to`, made by a reorder appended to the new list now if there
 * is none yet.  Returns the value, or -1 when out of memory. */
static int copy_in(rewrite *r, int v, op_layout to)
{
    int *slot = &r->copy[to][v];
    if (*slot >= 0)
        return *slot;
    ir_graph *g = r->g;
    const ir_value src = g->vals[v];
    const char *order = to == OP_LAYOUT_NHWC     ? (src.shape.rank == 2 ? "nwc" : "nhwc")
                        : to == OP_LAYOUT_BLOCK16 ? "nChw16c"
                                                  : (src.shape.rank == 2 ? "ncl" : "nchw");
    char name[OP_NAME_MAX];
    snprintf(name, sizeof name, "%.*s.%s", OP_NAME_MAX - 9, src.name, order);
    /* the copy is an activation like its source, but never an input or label (those are
     * pinned and the public API's) */
    ir_valkind kind = src.kind == IR_VAL_INPUT || src.kind == IR_VAL_LABEL ? IR_VAL_ACT : src.kind;
    int c = ir_add_value(g, kind, &src.shape, true, name);
    if (c < 0 || r->nnodes >= r->cap)
        return -1;
    g->vals[c].layout = to;
    ir_node *nd = &r->nodes[r->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->op = OP_REORDER;
    nd->backend = r->reorder_backend;
    nd->attrs.reorder.from = src.layout;
    nd->attrs.reorder.to = to;
    nd->nin = 1;
    nd->in[0] = v;
    nd->nout = 1;
    nd->out[0] = c;
    snprintf(nd->name, sizeof nd->name, "reorder_%d", ++r->made);
    g->vals[c].producer = r->nnodes++;
    *slot = c;
    return c;
}

int pass_layout(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    rewrite r = {.g = g, .nvals0 = g->nvals,
                 .reorder_backend = pass_choose_backend(ctx->caps, OP_REORDER, ctx->backend)};
    /* at most one reorder per value and order */
    r.cap = g->nnodes + 2 * g->nvals + 1;
    r.nodes = cnn_mem_malloc(sizeof(ir_node) * (size_t)r.cap);
    for (int l = 0; l < 3; l++)
        r.copy[l] = cnn_mem_malloc(sizeof(int) * (size_t)(g->nvals + 1));
    int *newidx = cnn_mem_malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    op_layout *lay = cnn_mem_malloc(sizeof(op_layout) * (size_t)(g->nnodes + 1));
    bool *wshape = cnn_mem_malloc(sizeof(bool) * (size_t)(g->nvals + 1));
    if (!r.nodes || !r.copy[0] || !r.copy[1] || !r.copy[2] || !newidx || !lay || !wshape)
        goto oom;
    for (int v = 0; v < g->nvals; v++)
        r.copy[0][v] = r.copy[1][v] = r.copy[2][v] = -1;
    /* blocked tensors only when the reorders can convert them */
    choose_layouts(g, ctx->caps, ctx->caps->blocked[OP_REORDER][r.reorder_backend], lay, wshape);

    for (int n = 0; n < g->nnodes; n++) {
        ir_node nd = g->nodes[n];
        if (!nd.dead) {
            op_layout want = lay[n];
            for (int k = 0; k < nd.nin; k++) {
                int v = nd.in[k];
                if (v >= r.nvals0 || !layout_bearing(&g->vals[v]) || g->vals[v].layout == want)
                    continue;
                if ((nd.in[k] = copy_in(&r, v, want)) < 0)
                    goto oom;
            }
        }
        newidx[n] = r.nnodes;
        r.nodes[r.nnodes++] = nd;
    }
    for (int i = 0; i < g->noutputs; i++) {
        int v = g->outputs[i];
        if (g->vals[v].layout != OP_LAYOUT_PLAIN && (g->outputs[i] = copy_in(&r, v, OP_LAYOUT_PLAIN)) < 0)
            goto oom;
    }
    /* the new list replaces the old; producers move with their nodes */
    for (int v = 0; v < r.nvals0; v++)
        if (g->vals[v].producer >= 0)
            g->vals[v].producer = newidx[g->vals[v].producer];
    cnn_mem_free(g->nodes);
    g->nodes = r.nodes;
    g->nnodes = r.nnodes;
    g->capnodes = r.cap;
    *changes += r.made;
    for (int l = 0; l < 3; l++)
        cnn_mem_free(r.copy[l]);
    cnn_mem_free(newidx);
    cnn_mem_free(lay);
    cnn_mem_free(wshape);
    return 0;
oom:
    cnn_mem_free(r.nodes);
    for (int l = 0; l < 3; l++)
        cnn_mem_free(r.copy[l]);
    cnn_mem_free(newidx);
    cnn_mem_free(lay);
    cnn_mem_free(wshape);
    snprintf(err, errlen, "out of memory in the layout pass");
    return -1;
}
