/* The precision pass: under --precision int8 or bf16, every conv and dense node (after
 * batchnorm folding and fusion, so the epilogue travels with it) becomes a conv_q / dense_q
 * node of that precision; everything else stays fp32.  A low-precision node reads and writes
 * f32 tensors: it converts its input at its start (int8: u8 when the input can never be
 * negative, s8 otherwise, with the calibrated input scale) and writes its output in f32
 * (dequantised in the epilogue), so the conversions sit at the node's edges and layers without
 * a low-precision kernel need nothing around them.  In int8 the node gains two inputs, the
 * stored tensors NAME.weight_scale [F] and NAME.input_scale [1] (spec section 10: the weights
 * file made by `cnnc quantize`).  Dense layers with a fused softmax stay fp32, and so do
 * convolutions over fewer than 4 input channels per group in int8 unless the backend that runs
 * them has an int8 kernel fast there (LOWP_MIN_CHANNELS below).  In training (bf16 only) the nodes keep
 * their ops and are marked bf16, backward ones too (precision_training). */
#include <stdio.h>
#include <string.h>

#include "compiler/passes.h"
#include "ops/registry.h"

/* int8: convolutions over fewer input channels per group than this stay fp32, unless the
 * backend that will run them has an int8 kernel that is fast there (op_caps.int8_few_channels:
 * the native one with AVX-512 VNNI, a direct convolution on four-tap words).  Each output of
 * such a layer sums a few dozen products at most (LeNet's and the CIFAR networks' first layers):
 * GEMM-style int8 kernels spend their time converting and packing the input, and oneDNN's is
 * slower than its fp32 one there (LeNet-5's 1-channel 5x5 conv: 0.57 against 0.45 ms at batch
 * 64).  So with --backend onednn (or ref, or a CPU without VNNI) they stay fp32; with native,
 * or auto (the backend pass then puts them on the backend that said so), they become int8.
 * (bf16 has no such cost: oneDNN's bf16 kernels are faster there too.) */
#define LOWP_MIN_CHANNELS 4

bool pass_precision_few_channels(const ir_graph *g, const ir_node *nd)
{
    const op_def *def = op_def_get(nd->op);
    if (!(def && (def->props & OP_PROP_CONV)) && nd->op != OP_CONV_Q)
        return false;
    int64_t groups = nd->attrs.conv.groups > 0 ? nd->attrs.conv.groups : 1;
    return g->vals[nd->in[0]].shape.d[0] / groups < LOWP_MIN_CHANNELS;
}

/* Whether the backends ctx allows have an int8 conv kernel fast on few channels (ctx NULL:
 * any backend may run the graph, as for calibration). */
static bool few_channels_ok(const pass_ctx *ctx)
{
    if (!ctx)
        return true;
    if (!ctx->caps)
        return false;
    if (ctx->backend != PLAN_BACKEND_AUTO)
        return ctx->caps->int8_few_channels[OP_CONV_Q][pass_choose_backend(ctx->caps, OP_CONV_Q, ctx->backend)];
    for (int b = 0; b < OP_BACKEND_COUNT; b++)
        if (ctx->caps->int8_few_channels[OP_CONV_Q][b])
            return true;
    return false;
}

bool pass_precision_candidate(const ir_graph *g, const ir_node *nd, op_precision prec, const pass_ctx *ctx)
{
    const op_def *def = op_def_get(nd->op);
    if (def && (def->props & OP_PROP_CONV))
        return prec != OP_PREC_INT8 || !pass_precision_few_channels(g, nd) || few_channels_ok(ctx);
    return nd->op == OP_DENSE && !nd->attrs.dense.softmax;
}

static op_act node_act(const ir_node *nd)
{
    const op_def *def = op_def_get(nd->op);
    if (def && def->act != OP_ACT_NONE)
        return def->act;
    if ((def && (def->props & OP_PROP_CONV)) || nd->op == OP_CONV_Q)
        return nd->attrs.conv.act;
    if (nd->op == OP_DENSE || nd->op == OP_DENSE_Q)
        return nd->attrs.dense.softmax ? OP_ACT_SIGMOID /* softmax: never negative */ : nd->attrs.dense.act;
    return OP_ACT_NONE;
}

bool pass_value_nonneg(const ir_graph *g, int v)
{
    for (int depth = 0; depth < 64; depth++) {
        if (v < 0 || v >= g->nvals)
            return false;
        int p = g->vals[v].producer;
        if (p < 0)
            return false; /* a network input: anything */
        const ir_node *nd = &g->nodes[p];
        op_act act = node_act(nd);
        if (act == OP_ACT_RELU || act == OP_ACT_SIGMOID || nd->op == OP_SOFTMAX)
            return true;
        switch (nd->op) {
        case OP_MAXPOOL: case OP_AVGPOOL: case OP_GLOBAL_AVGPOOL: case OP_FLATTEN: case OP_DROPOUT:
        case OP_REORDER:
            v = nd->in[0];
            continue;
        case OP_ADD: case OP_CONCAT:
            for (int k = 0; k < nd->nin; k++)
                if (g->vals[nd->in[k]].batched && !pass_value_nonneg(g, nd->in[k]))
                    return false;
            return true;
        default:
            return false;
        }
    }
    return false;
}

/* A stored tensor NAME.suffix of shape [n] for node nd: its value, or -1 when out of memory. */
static int scale_value(ir_graph *g, const ir_node *nd, const char *suffix, int64_t n)
{
    char name[2 * OP_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", nd->name, suffix);
    if (strlen(name) >= OP_NAME_MAX)
        return -1;
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == IR_VAL_STATE && strcmp(g->vals[v].name, name) == 0)
            return v;
    op_shape s = {.rank = 1, .d = {n}};
    return ir_add_value(g, IR_VAL_STATE, &s, false, name);
}

/* bf16 training: every conv and dense node, forward and backward (data and weights), keeps its
 * op and gains prec = bf16: its kernel reads x, w and dy rounded to bf16 and writes f32 (oneDNN
 * converts them at the node's start), so master weights, optimiser state, activations and
 * gradients between nodes all stay f32. */
static int precision_training(ir_graph *g, op_precision prec, int *changes, char *err, size_t errlen)
{
    if (prec != OP_PREC_BF16) {
        snprintf(err, errlen, "--precision int8 is for inference; training runs in fp32 or bf16");
        return -1;
    }
    for (int n = 0; n < g->nnodes; n++) {
        ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        const op_def *def = op_def_get(nd->op);
        if ((def && (def->props & OP_PROP_CONV)) || nd->op == OP_CONV_BWD_DATA || nd->op == OP_CONV_BWD_WEIGHTS)
            nd->attrs.conv.prec = prec;
        else if ((nd->op == OP_DENSE && !nd->attrs.dense.softmax) || nd->op == OP_DENSE_BWD_DATA ||
                 nd->op == OP_DENSE_BWD_WEIGHTS)
            nd->attrs.dense.prec = prec;
        else
            continue;
        (*changes)++;
    }
    return 0;
}

int pass_precision(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    if (ctx->precision == OP_PREC_FP32)
        return 0;
    if (ctx->training)
        return precision_training(g, ctx->precision, changes, err, errlen);
    /* decide the input signs on the fp32 graph first: a converted node's input keeps its producer */
    int nn = g->nnodes;
    for (int n = 0; n < nn; n++) {
        ir_node *nd = &g->nodes[n];
        if (nd->dead || !pass_precision_candidate(g, nd, ctx->precision, ctx))
            continue;
        bool nonneg = pass_value_nonneg(g, nd->in[0]);
        int64_t f = g->vals[nd->in[1]].shape.d[0]; /* the weight's output channels */
        int nin = nd->nin;
        if (ctx->precision == OP_PREC_INT8) {
            if (nin + 2 > OP_MAX_IN) {
                snprintf(err, errlen, "%s: too many inputs for int8", nd->name);
                return -1;
            }
            int ws = scale_value(g, nd, "weight_scale", f);
            int is = ws < 0 ? -1 : scale_value(g, nd, "input_scale", 1);
            if (is < 0) {
                snprintf(err, errlen, "%s: cannot add its int8 scales (name too long or out of memory)", nd->name);
                return -1;
            }
            nd = &g->nodes[n]; /* values may have moved the graph's arrays: nodes did not, but be safe */
            nd->in[nin] = ws;
            nd->in[nin + 1] = is;
            nd->nin = nin + 2;
        }
        if (nd->op == OP_DENSE) {
            nd->op = OP_DENSE_Q;
            nd->attrs.dense.prec = ctx->precision;
            nd->attrs.dense.q_unsigned = nonneg;
        } else {
            nd->op = OP_CONV_Q;
            nd->attrs.conv.prec = ctx->precision;
            nd->attrs.conv.q_unsigned = nonneg;
        }
        (*changes)++;
    }
    return 0;
}

/* ---- int8 tensors between int8 nodes */

/* The layer's own inputs of a conv_q / dense_q node (x, w, bias, residual). */
static int own_inputs(const ir_node *nd)
{
    if (nd->op == OP_CONV_Q)
        return 2 + (nd->attrs.conv.bias ? 1 : 0) + (nd->attrs.conv.residual ? 1 : 0);
    return 2 + (nd->attrs.dense.bias ? 1 : 0);
}

static bool is_int8(const ir_node *nd)
{
    return !nd->dead && ((nd->op == OP_CONV_Q && nd->attrs.conv.prec == OP_PREC_INT8) ||
                         (nd->op == OP_DENSE_Q && nd->attrs.dense.prec == OP_PREC_INT8));
}

static bool is_output(const ir_graph *g, int v)
{
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i] == v)
            return true;
    return false;
}

/* Whether int8 node a may write its output as u8/s8 (`is_unsigned`): every reader is an int8
 * node reading it as its input (of that sign) or as its residual (the fused add), it is no
 * network output, and a's activation commutes with the requantisation (none, relu, leaky_relu). */
static bool int8_output_ok(const ir_graph *g, const ir_node *a, bool is_unsigned)
{
    bool conv = a->op == OP_CONV_Q;
    op_act act = conv ? a->attrs.conv.act : a->attrs.dense.act;
    if (act != OP_ACT_NONE && act != OP_ACT_RELU && act != OP_ACT_LEAKY_RELU)
        return false;
    int v = a->out[0];
    if (!g->vals[v].batched || is_output(g, v) || a->nin != own_inputs(a) + 2)
        return false;
    int readers = 0;
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *b = &g->nodes[n];
        if (b->dead)
            continue;
        for (int k = 0; k < b->nin; k++) {
            if (b->in[k] != v)
                continue;
            if (!is_int8(b) || b->nin != own_inputs(b) + 2)
                return false;
            bool b_unsigned = b->op == OP_CONV_Q ? b->attrs.conv.q_unsigned : b->attrs.dense.q_unsigned;
            bool as_input = k == 0 && b_unsigned == is_unsigned;
            bool as_residual = b->op == OP_CONV_Q && b->attrs.conv.residual && k == own_inputs(b) - 1;
            if (!as_input && !as_residual)
                return false;
            readers++;
        }
    }
    return readers > 0;
}

int pass_precision_io(ir_graph *g, const pass_ctx *ctx, int *changes, char *err, size_t errlen)
{
    if (ctx->precision != OP_PREC_INT8)
        return 0;
    int nn = g->nnodes;
    for (int n = 0; n < nn; n++) {
        ir_node *a = &g->nodes[n];
        if (!is_int8(a))
            continue;
        int v = a->out[0];
        bool is_unsigned = pass_value_nonneg(g, v);
        if (!int8_output_ok(g, a, is_unsigned) || a->nin + 1 > OP_MAX_IN)
            continue;
        int so = scale_value(g, a, "output_scale", 1);
        if (so < 0) {
            snprintf(err, errlen, "%s: cannot add its int8 output scale", a->name);
            return -1;
        }
        a = &g->nodes[n];
        a->in[a->nin++] = so;
        g->vals[v].dtype = is_unsigned ? OP_DT_U8 : OP_DT_S8;
        /* the readers of it as their input take the bytes with the scale they were written with */
        for (int k = 0; k < g->nnodes; k++) {
            ir_node *b = &g->nodes[k];
            if (!b->dead && b->nin > 0 && b->in[0] == v)
                b->in[own_inputs(b) + 1] = so;
        }
        (*changes)++;
    }
    /* residuals: the sign their bytes have in an int8 output, and an int8 one's scale (the
     * producer's output scale) after the node's other scales (ops/quant.h) */
    for (int n = 0; n < nn; n++) {
        ir_node *b = &g->nodes[n];
        if (!is_int8(b) || b->op != OP_CONV_Q || !b->attrs.conv.residual)
            continue;
        int r = b->in[own_inputs(b) - 1];
        b->attrs.conv.res_unsigned = pass_value_nonneg(g, r);
        if (g->vals[r].dtype == OP_DT_F32)
            continue;
        const ir_node *p = &g->nodes[g->vals[r].producer];
        if (b->nin + 1 > OP_MAX_IN || p->nin < own_inputs(p) + 3) {
            snprintf(err, errlen, "%s: cannot add its int8 residual scale", b->name);
            return -1;
        }
        b->in[b->nin++] = p->in[own_inputs(p) + 2];
    }
    return 0;
}
