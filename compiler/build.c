/* lang_network -> ir_graph: the inference graph, shape-checked layer by layer through the
 * registry (make_attrs, shape, params), with errors turned into diagnostics.  Also the
 * per-node and total parameter and FLOP counts, and the text and dot dumps of a graph. */
#include "compiler/build.h"
#include "ops/mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/strbuf.h"
#include "ops/checked.h"
#include "ops/registry.h"

/* ---------------------------------------------------------------- building */

typedef struct builder {
    const lang_network *net;
    diag_list *diags;
    ir_graph *g;
    int *tval;      /* tensor id -> value index, or -1 when the tensor could not be made */
    bool oom;
} builder;

static bool span_empty(lang_span s)
{
    return s.line == 0 && s.col == 0 && s.end_line == 0 && s.end_col == 0;
}

/* Reports an op_err of layer L: at the argument's span when it names one. */
static void report(builder *b, const lang_layer *L, const op_err *e)
{
    lang_span sp = L->span;
    if (e->arg >= 0 && e->arg < L->op->nargs && e->arg < OP_MAX_ARGS && !span_empty(L->arg_spans[e->arg]))
        sp = L->arg_spans[e->arg];
    diag_add(b->diags, DIAG_ERROR, sp, "%s", e->msg);
}

static void report_oom(builder *b)
{
    if (!b->oom)
        diag_add(b->diags, DIAG_ERROR, b->net->span, "out of memory while building the graph");
    b->oom = true;
    b->diags->oom = true;
}

/* True when a tensor of shape s fits OP_MAX_NUMEL (ops/checked.h); else reports "<who>: <what>
 * of A x B elements is too large" at sp. */
static bool size_ok(builder *b, lang_span sp, const char *who, const char *what, const op_shape *s)
{
    int64_t n;
    if (op_shape_numel_checked(s, &n) && n <= OP_MAX_NUMEL)
        return true;
    char dims[OP_MAX_RANK * 24];
    diag_add(b->diags, DIAG_ERROR, sp, "%s: %s of %s elements is too large (the limit is %" PRId64 " per tensor)",
             who, what, op_shape_dims_str(s, dims, sizeof dims), OP_MAX_NUMEL);
    return false;
}

/* Makes layer k; returns its output value index, or -1. */
static int build_layer(builder *b, int k)
{
    const lang_network *net = b->net;
    const lang_layer *L = &net->layers[k];
    const op_def *op = L->op;
    int tensor_id = net->ninputs + k;

    if (!op) {
        diag_add(b->diags, DIAG_ERROR, L->span, "layer '%s' has no op", L->name);
        return -1;
    }
    if (L->ninputs < op->min_inputs || L->ninputs > op->max_inputs || L->ninputs > OP_MAX_IN) {
        if (op->min_inputs == op->max_inputs)
            diag_add(b->diags, DIAG_ERROR, L->span, "%s takes %d input tensor%s, got %d", op->name,
                     op->min_inputs, op->min_inputs == 1 ? "" : "s", L->ninputs);
        else
            diag_add(b->diags, DIAG_ERROR, L->span, "%s takes %d to %d input tensors, got %d", op->name,
                     op->min_inputs, op->max_inputs, L->ninputs);
        return -1;
    }

    int in[OP_MAX_IN + OP_MAX_PARAMS];
    op_shape shapes[OP_MAX_IN];
    for (int i = 0; i < L->ninputs; i++) {
        int t = L->inputs[i];
        if (t < 0 || t >= tensor_id) {
            diag_add(b->diags, DIAG_ERROR, L->span, "%s reads tensor %d, which is not made before it", L->name, t);
            return -1;
        }
        if (b->tval[t] < 0)
            return -1; /* an earlier error: already reported */
        in[i] = b->tval[t];
        shapes[i] = b->g->vals[in[i]].shape;
    }
    for (int a = 0; a < op->nargs; a++) {
        if (op->args[a].dflt == NULL && !L->args[a].present) {
            diag_add(b->diags, DIAG_ERROR, L->span, "%s: missing argument '%s'", op->name, op->args[a].name);
            return -1;
        }
    }

    op_attrs attrs;
    memset(&attrs, 0, sizeof attrs);
    op_err e = {.msg = "", .arg = -1};
    if (op->make_attrs && op->make_attrs(&attrs, L->args, shapes, L->ninputs, &e) != 0) {
        report(b, L, &e);
        return -1;
    }
    op_shape out;
    memset(&out, 0, sizeof out);
    e.arg = -1;
    if (!op->shape) {
        diag_add(b->diags, DIAG_ERROR, L->span, "%s has no shape rule", op->name);
        return -1;
    }
    if (op->shape(&attrs, shapes, L->ninputs, &out, &e) != 0) {
        report(b, L, &e);
        return -1;
    }

    int nin = L->ninputs;
    if (op->params) {
        const char *suffix[OP_MAX_PARAMS];
        op_shape pshape[OP_MAX_PARAMS];
        bool trainable[OP_MAX_PARAMS];
        op_init init[OP_MAX_PARAMS];
        int np = op->params(&attrs, shapes, suffix, pshape, trainable, init);
        for (int p = 0; p < np; p++)
            if (!size_ok(b, L->span, L->name, suffix[p], &pshape[p]))
                return -1;
        for (int p = 0; p < np; p++) {
            char name[OP_NAME_MAX];
            int w = snprintf(name, sizeof name, "%s.%s", L->name, suffix[p]);
            if (w < 0 || (size_t)w >= sizeof name) {
                diag_add(b->diags, DIAG_ERROR, L->span, "layer name '%s' is too long for its weight names",
                         L->name);
                return -1;
            }
            int v = ir_add_value(b->g, trainable[p] ? IR_VAL_PARAM : IR_VAL_STATE, &pshape[p], false, name);
            if (v < 0) {
                report_oom(b);
                return -1;
            }
            in[nin++] = v;
        }
    }
    if (!size_ok(b, L->span, L->name, "output", &out))
        return -1;
    int v = ir_add_value(b->g, IR_VAL_ACT, &out, true, L->name);
    if (v < 0 || ir_add_node(b->g, op->op, &attrs, nin, in, 1, &v, L->name, L->span) < 0) {
        report_oom(b);
        return -1;
    }
    return v;
}

ir_graph *ir_build(const lang_network *net, diag_list *diags)
{
    int errors_before = diags->errors;
    builder b = {.net = net, .diags = diags};
    b.g = ir_graph_create(net->name);
    int ntensors = net->ninputs + net->nlayers;
    b.tval = cnn_mem_malloc((size_t)(ntensors > 0 ? ntensors : 1) * sizeof *b.tval);
    if (!b.g || !b.tval) {
        report_oom(&b);
        goto fail;
    }
    if (net->ninputs > (int)(sizeof b.g->inputs / sizeof b.g->inputs[0]) ||
        net->noutputs > (int)(sizeof b.g->outputs / sizeof b.g->outputs[0])) {
        diag_add(diags, DIAG_ERROR, net->span, "network '%s' has too many inputs or outputs", net->name);
        goto fail;
    }

    for (int i = 0; i < net->ninputs; i++) {
        const lang_input *in = &net->inputs[i];
        bool ok = in->shape.rank >= 1 && in->shape.rank <= OP_MAX_RANK;
        for (int d = 0; ok && d < in->shape.rank; d++)
            ok = in->shape.d[d] >= 1;
        if (!ok) {
            char buf[128];
            diag_add(diags, DIAG_ERROR, in->span, "input '%s' has an invalid shape %s", in->name,
                     op_shape_str(&in->shape, buf, sizeof buf));
            b.tval[i] = -1;
            continue;
        }
        if (!size_ok(&b, in->span, in->name, "input", &in->shape)) {
            b.tval[i] = -1;
            continue;
        }
        int v = ir_add_value(b.g, IR_VAL_INPUT, &in->shape, true, in->name);
        if (v < 0) {
            report_oom(&b);
            goto fail;
        }
        b.tval[i] = v;
        b.g->inputs[b.g->ninputs++] = v;
    }
    for (int k = 0; k < net->nlayers && !b.oom; k++)
        b.tval[net->ninputs + k] = build_layer(&b, k);
    if (b.oom)
        goto fail;
    for (int i = 0; i < net->noutputs; i++) {
        const lang_output *o = &net->outputs[i];
        if (o->tensor < 0 || o->tensor >= ntensors) {
            diag_add(diags, DIAG_ERROR, o->span, "output '%s' refers to no tensor", o->name);
            continue;
        }
        int v = b.tval[o->tensor];
        if (v < 0)
            continue;
        b.g->outputs[b.g->noutputs] = v;
        snprintf(b.g->output_names[b.g->noutputs], OP_NAME_MAX, "%s", o->name);
        b.g->noutputs++;
    }
    if (diags->errors > errors_before)
        goto fail;
    cnn_mem_free(b.tval);
    return b.g;
fail:
    cnn_mem_free(b.tval);
    ir_graph_destroy(b.g);
    return NULL;
}

/* ---------------------------------------------------------------- counts */

int64_t ir_node_params(const ir_graph *g, int n)
{
    const ir_node *node = &g->nodes[n];
    int64_t total = 0;
    for (int k = 0; k < node->nin; k++) {
        const ir_value *v = &g->vals[node->in[k]];
        if (v->kind == IR_VAL_PARAM)
            total = ck_sat_add_i64(total, op_shape_numel(&v->shape));
    }
    return total;
}

int64_t ir_node_flops(const ir_graph *g, int n)
{
    const ir_node *node = &g->nodes[n];
    const op_def *op = op_def_get(node->op);
    if (!op || !op->flops)
        return 0;
    op_shape in[OP_MAX_IN];
    for (int k = 0; k < node->nin; k++)
        in[k] = g->vals[node->in[k]].shape;
    const op_shape *out = node->nout > 0 ? &g->vals[node->out[0]].shape : NULL;
    return op->flops(&node->attrs, in, node->nin, out);
}

void ir_graph_totals(const ir_graph *g, int64_t *params, int64_t *flops)
{
    int64_t p = 0, f = 0;
    bool *read = cnn_mem_calloc((size_t)(g->nvals > 0 ? g->nvals : 1), sizeof *read);
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *node = &g->nodes[n];
        if (node->dead)
            continue;
        f = ck_sat_add_i64(f, ir_node_flops(g, n));
        for (int k = 0; k < node->nin; k++) {
            int v = node->in[k];
            if (g->vals[v].kind != IR_VAL_PARAM)
                continue;
            if (read) {
                if (read[v])
                    continue;
                read[v] = true;
            }
            p = ck_sat_add_i64(p, op_shape_numel(&g->vals[v].shape));
        }
    }
    cnn_mem_free(read);
    if (params)
        *params = p;
    if (flops)
        *flops = f;
}

/* ---------------------------------------------------------------- dumps */


/* The layer table's attribute column: the op's registry summary (describe). */
char *ir_node_summary(const ir_node *node, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    buf[0] = '\0';
    const op_def *def = op_def_get(node->op);
    if (def && def->describe)
        def->describe(&node->attrs, buf, n);
    return buf;
}

static const char *valkind_name(ir_valkind k)
{
    switch (k) {
    case IR_VAL_INPUT: return "input";
    case IR_VAL_ACT: return "act";
    case IR_VAL_PARAM: return "param";
    case IR_VAL_STATE: return "state";
    case IR_VAL_LABEL: return "label";
    case IR_VAL_GRAD: return "grad";
    case IR_VAL_PGRAD: return "pgrad";
    case IR_VAL_OPTSTATE: return "optstate";
    case IR_VAL_SCRATCH: return "scratch";
    }
    return "?";
}

char *ir_graph_dump_text(const ir_graph *g)
{
    strbuf sb = {0};
    char sh[128], sum[256];
    sb_printf(&sb, "network %s\n", g->name);
    for (int i = 0; i < g->ninputs; i++) {
        const ir_value *v = &g->vals[g->inputs[i]];
        sb_printf(&sb, "  input %s %s\n", v->name, op_shape_str(&v->shape, sh, sizeof sh));
    }
    for (int i = 0; i < g->nvals; i++) {
        const ir_value *v = &g->vals[i];
        if (v->kind == IR_VAL_LABEL)
            sb_printf(&sb, "  %s %s %s\n", valkind_name(v->kind), v->name, op_shape_str(&v->shape, sh, sizeof sh));
    }
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *node = &g->nodes[n];
        if (node->dead)
            continue;
        ir_node_summary(node, sum, sizeof sum);
        sb_printf(&sb, "  %s: %s%s%s (", node->name, op_name(node->op), sum[0] ? " " : "", sum);
        for (int k = 0; k < node->nin; k++)
            sb_printf(&sb, "%s%s", k ? ", " : "", g->vals[node->in[k]].name);
        sb_printf(&sb, ")");
        for (int k = 0; k < node->nout; k++) {
            const ir_value *v = &g->vals[node->out[k]];
            sb_printf(&sb, "%s%s%s", k ? ", " : " -> ", op_shape_str(&v->shape, sh, sizeof sh),
                      v->layout == OP_LAYOUT_NHWC ? " channels-last" : v->layout == OP_LAYOUT_BLOCK16 ? " blocked" : "");
        }
        if (node->fused[0])
            sb_printf(&sb, "  [fused: %s]", node->fused);
        sb_printf(&sb, "\n");
    }
    for (int i = 0; i < g->noutputs; i++) {
        const ir_value *v = &g->vals[g->outputs[i]];
        sb_printf(&sb, "  output %s = %s %s\n", g->output_names[i], v->name,
                  op_shape_str(&v->shape, sh, sizeof sh));
    }
    if (g->loss >= 0)
        sb_printf(&sb, "  loss = %s\n", g->vals[g->loss].name);
    return sb_take(&sb);
}

/* Writes s as the inside of a dot string: quotes and backslashes escaped. */
static void dot_escaped(strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(sb, "\\%c", *s);
        else
            sb_printf(sb, "%c", *s);
    }
}

char *ir_graph_dump_dot(const ir_graph *g)
{
    strbuf sb = {0};
    char sh[128], sum[256];
    sb_printf(&sb, "digraph \"");
    dot_escaped(&sb, g->name);
    sb_printf(&sb, "\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    /* values that no node makes and that are not weights: inputs, labels */
    for (int i = 0; i < g->nvals; i++) {
        const ir_value *v = &g->vals[i];
        if (v->kind != IR_VAL_INPUT && v->kind != IR_VAL_LABEL)
            continue;
        sb_printf(&sb, "  v%d [shape=ellipse, label=\"", i);
        dot_escaped(&sb, v->name);
        sb_printf(&sb, "\\n%s\"];\n", op_shape_format(&v->shape, ",", sh, sizeof sh));
    }
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *node = &g->nodes[n];
        if (node->dead)
            continue;
        ir_node_summary(node, sum, sizeof sum);
        sb_printf(&sb, "  n%d [label=\"", n);
        dot_escaped(&sb, node->name);
        sb_printf(&sb, "\\n%s%s", op_name(node->op), sum[0] ? " " : "");
        dot_escaped(&sb, sum);
        for (int k = 0; k < node->nout; k++)
            sb_printf(&sb, "%s%s", k ? " " : "\\n", op_shape_format(&g->vals[node->out[k]].shape, ",", sh, sizeof sh));
        if (node->fused[0]) {
            sb_printf(&sb, "\\nfused: ");
            dot_escaped(&sb, node->fused);
        }
        sb_printf(&sb, "\"];\n");
    }
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *node = &g->nodes[n];
        if (node->dead)
            continue;
        for (int k = 0; k < node->nin; k++) {
            int v = node->in[k];
            const ir_value *val = &g->vals[v];
            if (val->kind == IR_VAL_INPUT || val->kind == IR_VAL_LABEL)
                sb_printf(&sb, "  v%d -> n%d;\n", v, n);
            else if (val->producer >= 0 && !g->nodes[val->producer].dead)
                sb_printf(&sb, "  n%d -> n%d;\n", val->producer, n);
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        int v = g->outputs[i];
        const ir_value *val = &g->vals[v];
        sb_printf(&sb, "  out%d [shape=ellipse, label=\"", i);
        dot_escaped(&sb, g->output_names[i]);
        sb_printf(&sb, "\\n%s\"];\n", op_shape_format(&val->shape, ",", sh, sizeof sh));
        if (val->kind == IR_VAL_INPUT)
            sb_printf(&sb, "  v%d -> out%d;\n", v, i);
        else if (val->producer >= 0)
            sb_printf(&sb, "  n%d -> out%d;\n", val->producer, i);
    }
    sb_printf(&sb, "}\n");
    return sb_take(&sb);
}
