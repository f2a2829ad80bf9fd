/* Reverse-mode autodiff over the graph (see autodiff.h).
 *
 *   1. forward layers switch to training mode: batchnorm uses batch statistics and saves
 *      them (two extra outputs), dropout draws a mask (one extra output);
 *   2. the loss node reads output 0 (for cross_entropy, the input of a final softmax, which
 *      the loss then includes) and the labels, and makes the loss and its gradient;
 *   3. forward nodes are visited in reverse; each one's registry gradient rule appends its
 *      backward nodes; a value read by several nodes gets the sum of their contributions
 *      (an add node) before its producer is visited;
 *   4. with clip_grad_norm, grad_sqnorm nodes (up to OP_MAX_IN gradients each, chained
 *      through a partial sum) after every gradient is final, and a clip_scale node;
 *   5. one optimiser update node per trainable parameter, reading its gradient and state
 *      (and clip_scale's factor).  Clipping is its own steps so that anything that must
 *      happen to the final gradients first (averaging across processes) can go before it. */
#include "compiler/autodiff.h"
#include "ops/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/registry.h"

typedef struct contrib {
    int value;   /* the gradient value contributed */
    int next;    /* next contribution to the same value, or -1 */
} contrib;

typedef struct ad_state {
    ir_graph *g;
    int nfwd_vals;
    int *head;            /* per forward value: first contribution, or -1 */
    contrib *list;
    int nlist, caplist;
    int *total;           /* per forward value: its summed gradient once materialised, or -1 */
} ad_state;

static int add_contrib(ad_state *s, int v, int gv)
{
    if (s->nlist == s->caplist) {
        int cap = s->caplist ? s->caplist * 2 : 64;
        contrib *l = cnn_mem_realloc(s->list, sizeof(contrib) * (size_t)cap);
        if (!l)
            return -1;
        s->list = l;
        s->caplist = cap;
    }
    s->list[s->nlist] = (contrib){gv, s->head[v]};
    s->head[v] = s->nlist++;
    return 0;
}

/* The gradient of forward value v: its one contribution, or their sum (add nodes of at most
 * OP_MAX_IN inputs, chained).  -1: no gradient reaches v; -2: error. */
static int materialise(ad_state *s, int v, char *err, size_t errlen)
{
    if (s->total[v] >= 0 || s->head[v] < 0)
        return s->total[v];
    ir_graph *g = s->g;
    int m = 0;
    for (int c = s->head[v]; c >= 0; c = s->list[c].next)
        m++;
    int *order = cnn_mem_malloc(sizeof(int) * (size_t)m);
    if (!order)
        goto oom;
    int i = m;
    for (int c = s->head[v]; c >= 0; c = s->list[c].next)
        order[--i] = s->list[c].value; /* the list runs newest first */
    int acc = order[0];
    for (i = 1; i < m;) {
        int ins[OP_MAX_IN], n = 0;
        ins[n++] = acc;
        while (i < m && n < OP_MAX_IN)
            ins[n++] = order[i++];
        const ir_value first = g->vals[ins[0]];
        char name[OP_NAME_MAX];
        snprintf(name, sizeof name, "d(%.*s)+", OP_NAME_MAX - 5, g->vals[v].name);
        int sum = ir_add_value(g, first.kind, &first.shape, first.batched, name);
        if (sum < 0) {
            cnn_mem_free(order);
            goto oom;
        }
        g->vals[sum].param_of = first.param_of;
        op_attrs a;
        memset(&a, 0, sizeof a);
        snprintf(name, sizeof name, "d(%.*s).sum", OP_NAME_MAX - 8, g->vals[v].name);
        if (ir_add_node(g, OP_ADD, &a, n, ins, 1, &sum, name, (lang_span){0, 0, 0, 0}) < 0) {
            cnn_mem_free(order);
            goto oom;
        }
        acc = sum;
    }
    cnn_mem_free(order);
    s->total[v] = acc;
    return acc;
oom:
    snprintf(err, errlen, "out of memory in autodiff");
    return -2;
}

static int switch_to_training(ir_graph *g, int nfwd, char *err, size_t errlen)
{
    for (int n = 0; n < nfwd; n++) {
        ir_node *nd = &g->nodes[n];
        if (nd->dead)
            continue;
        const op_def *def = op_def_get(nd->op);
        if (!def->train_outputs || nd->nin < 1)
            continue;
        /* the op switches its attributes to training mode and names the outputs it adds
         * (batchnorm: save_mean, save_invstd; dropout: mask) */
        op_shape shapes[OP_MAX_OUT];
        bool batched[OP_MAX_OUT];
        const char *suffix[OP_MAX_OUT];
        op_shape in0 = g->vals[nd->in[0]].shape;
        int extra = def->train_outputs(&nd->attrs, &in0, shapes, batched, suffix);
        for (int k = 0; k < extra && nd->nout < OP_MAX_OUT; k++) {
            char name[OP_NAME_MAX];
            snprintf(name, sizeof name, "%.*s.%s", (int)(OP_NAME_MAX - 2 - strlen(suffix[k])), nd->name,
                     suffix[k]);
            int v = ir_add_value(g, IR_VAL_SCRATCH, &shapes[k], batched[k], name);
            if (v < 0)
                goto oom;
            nd = &g->nodes[n];
            nd->out[nd->nout++] = v;
            g->vals[v].producer = n;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory in autodiff");
    return -1;
}

/* The gradient rules' view of the graph (ops/registry.h, op_grad_ctx). */
typedef struct grad_graph {
    ir_graph *g;
    lang_span span;   /* the forward node's, given to its backward nodes */
} grad_graph;

static bool ctx_wants_grad(const op_grad_ctx *c, int v)
{
    const ir_graph *g = ((const grad_graph *)c->graph)->g;
    ir_valkind k = g->vals[v].kind;
    return k == IR_VAL_ACT || k == IR_VAL_PARAM;
}

/* A new gradient value shaped like v: GRAD for activations, PGRAD for parameters. */
static int ctx_grad_value(const op_grad_ctx *c, int v)
{
    ir_graph *g = ((const grad_graph *)c->graph)->g;
    char name[OP_NAME_MAX];
    snprintf(name, sizeof name, "d(%.*s)", OP_NAME_MAX - 4, g->vals[v].name);
    ir_value src = g->vals[v];
    bool param = src.kind == IR_VAL_PARAM;
    int gv = ir_add_value(g, param ? IR_VAL_PGRAD : IR_VAL_GRAD, &src.shape, src.batched, name);
    if (gv >= 0)
        g->vals[gv].param_of = param ? v : -1;
    return gv;
}

static const op_shape *ctx_shape(const op_grad_ctx *c, int v)
{
    return &((const grad_graph *)c->graph)->g->vals[v].shape;
}

static int ctx_emit(const op_grad_ctx *c, op_kind op, const op_attrs *a, int nin, const int *in, int nout,
                    const int *out, const char *what)
{
    const grad_graph *gg = c->graph;
    char name[OP_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s.%s", c->fwd->name, what);
    name[OP_NAME_MAX - 1] = '\0';
    return ir_add_node(gg->g, op, a, nin, in, nout, out, name, gg->span) < 0 ? -1 : 0;
}

/* Appends the loss; returns the gradient of the value the loss reads (and which value). */
static int append_loss(ir_graph *g, const ad_options *opt, int *logits_out, char *err, size_t errlen)
{
    int out = g->outputs[0];
    const ir_value *ov = &g->vals[out];
    int logits = out;
    if (opt->loss == AD_LOSS_CROSS_ENTROPY) {
        if (ov->shape.rank != 1) {
            char sh[64];
            snprintf(err, errlen, "cross_entropy needs a vector output ([classes]); %s is %s", g->output_names[0],
                     op_shape_str(&ov->shape, sh, sizeof sh));
            return -1;
        }
        int p = ov->producer;
        if (p >= 0 && (op_def_get(g->nodes[p].op)->props & OP_PROP_FOLDS_INTO_XENT))
            logits = g->nodes[p].in[0]; /* the final softmax is part of the loss */
    }
    op_shape label_shape = {.rank = 1, .d = {1}};
    if (opt->loss == AD_LOSS_MSE)
        label_shape = g->vals[logits].shape;
    int label = ir_add_value(g, IR_VAL_LABEL, &label_shape, true, "labels");
    op_shape scalar = {.rank = 0};
    int loss = ir_add_value(g, IR_VAL_SCRATCH, &scalar, false, "loss");
    op_shape lsh = g->vals[logits].shape;
    char name[OP_NAME_MAX];
    snprintf(name, sizeof name, "d(%.*s)", OP_NAME_MAX - 4, g->vals[logits].name);
    int dlogits = ir_add_value(g, IR_VAL_GRAD, &lsh, true, name);
    if (label < 0 || loss < 0 || dlogits < 0) {
        snprintf(err, errlen, "out of memory in autodiff");
        return -1;
    }
    op_attrs a;
    memset(&a, 0, sizeof a);
    if (opt->loss == AD_LOSS_CROSS_ENTROPY)
        a.loss.label_smoothing = opt->label_smoothing;
    int in[2] = {logits, label}, outs[2] = {loss, dlogits};
    op_kind op = opt->loss == AD_LOSS_MSE ? OP_MSE_LOSS : OP_XENT_LOSS;
    if (ir_add_node(g, op, &a, 2, in, 2, outs, op_name(op), (lang_span){0, 0, 0, 0}) < 0) {
        snprintf(err, errlen, "out of memory in autodiff");
        return -1;
    }
    g->loss = loss;
    g->label = label;
    *logits_out = logits;
    return dlogits;
}

/* The clip_grad_norm steps over the parameters' gradients grads[0..n): returns the value
 * of the scale the updates read, -1 when out of memory. */
static int append_clip(ir_graph *g, const ad_options *opt, const int *grads, int n)
{
    op_shape scalar = {.rank = 0};
    int acc = -1, chunk = 0;
    for (int i = 0; i < n; chunk++) {
        int ins[OP_MAX_IN], nin = 0;
        op_attrs a;
        memset(&a, 0, sizeof a);
        if (acc >= 0) {
            ins[nin++] = acc;
            a.clip.accumulate = true;
        }
        while (i < n && nin < OP_MAX_IN)
            ins[nin++] = grads[i++];
        char name[OP_NAME_MAX];
        snprintf(name, sizeof name, "grad_sqnorm.%d", chunk);
        int out = ir_add_value(g, IR_VAL_SCRATCH, &scalar, false, name);
        if (out < 0 || ir_add_node(g, OP_GRAD_SQNORM, &a, nin, ins, 1, &out, name, (lang_span){0, 0, 0, 0}) < 0)
            return -1;
        acc = out;
    }
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.clip.max_norm = opt->clip_grad_norm;
    int scale = ir_add_value(g, IR_VAL_SCRATCH, &scalar, false, "clip_scale");
    if (scale < 0 || ir_add_node(g, OP_CLIP_SCALE, &a, 1, &acc, 1, &scale, "clip_scale", (lang_span){0, 0, 0, 0}) < 0)
        return -1;
    return scale;
}

static int append_updates(ad_state *s, const ad_options *opt, char *err, size_t errlen)
{
    ir_graph *g = s->g;
    /* every parameter's final gradient first: clipping reads them all */
    int *params = cnn_mem_malloc(sizeof(int) * (size_t)(s->nfwd_vals + 1));
    int *grads = cnn_mem_malloc(sizeof(int) * (size_t)(s->nfwd_vals + 1));
    int n = 0;
    if (!params || !grads)
        goto oom;
    for (int v = 0; v < s->nfwd_vals; v++) {
        if (g->vals[v].kind != IR_VAL_PARAM)
            continue;
        int gv = materialise(s, v, err, errlen);
        if (gv == -2)
            goto fail;
        if (gv < 0)
            continue; /* no gradient reaches it (unused parameter) */
        params[n] = v;
        grads[n++] = gv;
    }
    int scale = -1;
    if (opt->clip_grad_norm > 0 && n > 0 && (scale = append_clip(g, opt, grads, n)) < 0)
        goto oom;
    bool adam = opt->optimizer == AD_OPTIM_ADAM || opt->optimizer == AD_OPTIM_ADAMW;
    for (int i = 0; i < n; i++) {
        int v = params[i], gv = grads[i];
        op_attrs a;
        memset(&a, 0, sizeof a);
        a.optim = opt->optim;
        a.optim.clip = scale >= 0;
        int in[5] = {v, gv, -1, -1, -1}, nin = 2;
        const char *states[2] = {NULL, NULL};
        if (adam)
            states[0] = "exp_avg", states[1] = "exp_avg_sq";
        else if (opt->optim.momentum != 0.0)
            states[0] = "momentum_buffer";
        op_shape sh = g->vals[v].shape;
        for (int k = 0; k < 2 && states[k]; k++) {
            char name[OP_NAME_MAX];
            snprintf(name, sizeof name, "%.*s.%s", OP_NAME_MAX - 20, g->vals[v].name, states[k]);
            int sv = ir_add_value(g, IR_VAL_OPTSTATE, &sh, false, name);
            if (sv < 0)
                goto oom;
            g->vals[sv].param_of = v;
            in[nin++] = sv;
        }
        if (scale >= 0)
            in[nin++] = scale;
        char name[OP_NAME_MAX];
        snprintf(name, sizeof name, "%.*s.update", OP_NAME_MAX - 8, g->vals[v].name);
        op_kind op = opt->optimizer == AD_OPTIM_ADAMW ? OP_ADAMW_UPDATE
                     : opt->optimizer == AD_OPTIM_ADAM ? OP_ADAM_UPDATE
                                                       : OP_SGD_UPDATE;
        if (ir_add_node(g, op, &a, nin, in, 0, NULL, name, (lang_span){0, 0, 0, 0}) < 0)
            goto oom;
    }
    cnn_mem_free(params);
    cnn_mem_free(grads);
    return 0;
oom:
    snprintf(err, errlen, "out of memory in autodiff");
fail:
    cnn_mem_free(params);
    cnn_mem_free(grads);
    return -1;
}

int ir_autodiff(ir_graph *g, const ad_options *opt, char *err, size_t errlen)
{
    if (g->noutputs < 1) {
        snprintf(err, errlen, "the network has no output to train");
        return -1;
    }
    if (!(opt->label_smoothing >= 0.0 && opt->label_smoothing < 1.0)) {
        snprintf(err, errlen, "label_smoothing must be in [0, 1), got %g", opt->label_smoothing);
        return -1;
    }
    if (!(opt->clip_grad_norm >= 0.0) || isinf(opt->clip_grad_norm)) {
        snprintf(err, errlen, "clip_grad_norm must be a positive number (or 0 for none), got %g", opt->clip_grad_norm);
        return -1;
    }
    int nfwd_nodes = g->nnodes;
    if (switch_to_training(g, nfwd_nodes, err, errlen) != 0)
        return -1;
    ad_state s = {.g = g, .nfwd_vals = g->nvals};
    s.head = cnn_mem_malloc(sizeof(int) * (size_t)s.nfwd_vals);
    s.total = cnn_mem_malloc(sizeof(int) * (size_t)s.nfwd_vals);
    int rc = -1;
    if (!s.head || !s.total) {
        snprintf(err, errlen, "out of memory in autodiff");
        goto done;
    }
    for (int v = 0; v < s.nfwd_vals; v++)
        s.head[v] = s.total[v] = -1;
    int logits;
    int dlogits = append_loss(g, opt, &logits, err, errlen);
    if (dlogits < 0 || add_contrib(&s, logits, dlogits) != 0)
        goto done;
    for (int n = nfwd_nodes - 1; n >= 0; n--) {
        if (g->nodes[n].dead)
            continue;
        int gout[OP_MAX_OUT], gin[OP_MAX_IN];
        bool any = false;
        for (int k = 0; k < g->nodes[n].nout; k++) {
            gout[k] = materialise(&s, g->nodes[n].out[k], err, errlen);
            if (gout[k] == -2)
                goto done;
            any |= gout[k] >= 0;
        }
        if (!any)
            continue;
        const op_def *def = op_def_get(g->nodes[n].op);
        if (!def->grad) {
            snprintf(err, errlen, "%s: %s has no gradient rule", g->nodes[n].name, def->name);
            goto done;
        }
        for (int k = 0; k < OP_MAX_IN; k++)
            gin[k] = -1;
        op_err e = {.msg = "", .arg = -1};
        int nin = g->nodes[n].nin;
        int ins[OP_MAX_IN], outs[OP_MAX_OUT];
        memcpy(ins, g->nodes[n].in, sizeof ins);
        memcpy(outs, g->nodes[n].out, sizeof outs);
        op_node fwd = {.op = g->nodes[n].op, .attrs = g->nodes[n].attrs};
        memcpy(fwd.name, g->nodes[n].name, sizeof fwd.name);
        grad_graph gg = {.g = g, .span = g->nodes[n].span};
        op_grad_ctx c = {.fwd = &fwd, .nin = nin, .nout = g->nodes[n].nout, .in = ins, .out = outs,
                         .gout = gout, .gin = gin, .graph = &gg, .wants_grad = ctx_wants_grad,
                         .grad_value = ctx_grad_value, .shape = ctx_shape, .emit = ctx_emit};
        if (def->grad(&c, &e) != 0) {
            snprintf(err, errlen, "%s", e.msg);
            goto done;
        }
        for (int k = 0; k < nin; k++)
            if (gin[k] >= 0 && ins[k] < s.nfwd_vals && add_contrib(&s, ins[k], gin[k]) != 0) {
                snprintf(err, errlen, "out of memory in autodiff");
                goto done;
            }
    }
    rc = append_updates(&s, opt, err, errlen);
done:
    cnn_mem_free(s.head);
    cnn_mem_free(s.total);
    cnn_mem_free(s.list);
    return rc;
}
