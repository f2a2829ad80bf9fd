/* Tests of compiler/registry.c, compiler/ir.c and compiler/build.c on hand-made expanded
 * networks (lang_network structs filled here, arguments from the registry's schemas): shape
 * inference for every layer, each shape error and where it is reported, parameter and FLOP
 * counts, and the text and dot dumps. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/build.h"
#include "compiler/ir.h"
#include "ops/registry.h"
#include "lang/diag.h"
#include "lang/lang.h"

/* ---------------------------------------------------------------- a hand-made network */

#define TN_MAX_LAYERS 512

typedef struct tnet {
    lang_network net;
    lang_layer *layers; /* TN_MAX_LAYERS */
    diag_list diags;
    ir_graph *g;
} tnet;

static lang_span mkspan(int line, int col, int len)
{
    lang_span s = {line, col, line, col + len};
    return s;
}

/* The span given to argument a of layer k when written in the "source". */
static lang_span arg_span(int k, int a)
{
    return mkspan(k + 1, 20 + 6 * a, 3);
}

static lang_span layer_span(int k)
{
    return mkspan(k + 1, 5, 12);
}

static void tn_init(tnet *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->net.name, sizeof t->net.name, "%s", name);
    t->layers = calloc(TN_MAX_LAYERS, sizeof *t->layers);
    cr_assert_not_null(t->layers);
    t->net.layers = t->layers;
    diag_init(&t->diags, "test.cnn", NULL, 0);
}

static void tn_fini(tnet *t)
{
    ir_graph_destroy(t->g);
    t->g = NULL;
    free(t->layers);
    t->layers = NULL;
    diag_free(&t->diags);
}

/* Adds an input of the given rank and dims; returns its tensor id. */
static int tn_input(tnet *t, const char *name, int rank, ...)
{
    lang_input *in = &t->net.inputs[t->net.ninputs];
    snprintf(in->name, sizeof in->name, "%s", name);
    in->shape.rank = rank;
    va_list ap;
    va_start(ap, rank);
    for (int k = 0; k < rank; k++)
        in->shape.d[k] = va_arg(ap, int64_t);
    va_end(ap);
    in->span = mkspan(100 + t->net.ninputs, 1, 5);
    return t->net.ninputs++;
}

/* Parses one argument value written as in .cnn ("6", "(3,5)", "same", "true", "0.5",
 * "\"x\"") into v, as the schema's type wants it. */
static void parse_value(const op_argspec *spec, const char *text, op_argval *v)
{
    v->present = true;
    switch (spec->type) {
    case OP_ARG_INT:
        v->n = 1;
        v->i[0] = strtoll(text, NULL, 10);
        break;
    case OP_ARG_FLOAT:
        v->f = strtod(text, NULL);
        break;
    case OP_ARG_BOOL:
        v->b = strcmp(text, "true") == 0;
        break;
    case OP_ARG_STRING: {
        const char *s = text[0] == '"' ? text + 1 : text;
        snprintf(v->s, sizeof v->s, "%s", s);
        size_t n = strlen(v->s);
        if (n > 0 && v->s[n - 1] == '"')
            v->s[n - 1] = '\0';
        break;
    }
    case OP_ARG_INTS:
    case OP_ARG_PAD:
        if (strcmp(text, "same") == 0 || strcmp(text, "\"same\"") == 0) {
            v->same = true;
            v->n = 0;
        } else if (text[0] == '(') {
            /* "(h,w)" or "(d,h,w)" */
            char *end;
            v->n = 2;
            v->i[0] = strtoll(text + 1, &end, 10);
            v->i[1] = strtoll(end + 1, &end, 10);
            if (*end == ',') {
                v->n = 3;
                v->i[2] = strtoll(end + 1, NULL, 10);
            }
        } else {
            v->n = 1;
            v->i[0] = strtoll(text, NULL, 10);
            v->i[1] = 0; /* only i[0] is meaningful for a single int */
        }
        break;
    }
}

/* Adds a layer of kind `op` named `name` (NULL: "<op>_<k>"), with arguments written as in
 * .cnn, separated by spaces ("6 5 pad=2 stride=(1,2)"), reading nin tensors; returns its
 * tensor id.  Unwritten arguments get the schema's defaults, as lang/sema.c does. */
static int tn_layer(tnet *t, const char *opname, const char *args, int nin, ...)
{
    int k = t->net.nlayers++;
    cr_assert(k < TN_MAX_LAYERS);
    lang_layer *L = &t->layers[k];
    memset(L, 0, sizeof *L);
    L->op = op_def_find_layer(opname);
    if (!L->op && strcmp(opname, "add") == 0)
        L->op = op_def_get(OP_ADD);
    cr_assert_not_null(L->op, "no layer %s", opname);
    snprintf(L->name, sizeof L->name, "%s_%d", opname, k + 1);
    L->span = layer_span(k);
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++)
        L->inputs[i] = va_arg(ap, int);
    va_end(ap);
    L->ninputs = nin;

    const op_def *op = L->op;
    bool given[OP_MAX_ARGS] = {false};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", args ? args : "");
    int pos = 0;
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        int a = -1;
        const char *val = tok;
        if (eq && tok[0] != '"') {
            *eq = '\0';
            for (int j = 0; j < op->nargs; j++)
                if (strcmp(op->args[j].name, tok) == 0)
                    a = j;
            val = eq + 1;
        } else {
            a = pos++;
        }
        cr_assert(a >= 0 && a < op->nargs, "bad argument %s for %s", tok, opname);
        parse_value(&op->args[a], val, &L->args[a]);
        L->args[a].given = true;
        L->arg_spans[a] = arg_span(k, a);
        given[a] = true;
        if (op->args[a].type == OP_ARG_STRING && strcmp(op->args[a].name, "name") == 0)
            memcpy(L->name, L->args[a].s, sizeof L->name); /* both OP_NAME_MAX, terminated */
    }
    for (int a = 0; a < op->nargs; a++) {
        if (given[a] || !op->args[a].dflt || op->args[a].dflt[0] == '=')
            continue;
        L->arg_spans[a] = L->span;
        if (op->args[a].dflt[0] != '\0')
            parse_value(&op->args[a], op->args[a].dflt, &L->args[a]);
    }
    for (int a = 0; a < op->nargs; a++) {
        if (given[a] || !op->args[a].dflt || op->args[a].dflt[0] != '=')
            continue;
        for (int j = 0; j < op->nargs; j++)
            if (strcmp(op->args[j].name, op->args[a].dflt + 1) == 0)
                L->args[a] = L->args[j];
        L->args[a].given = false;
        L->arg_spans[a] = L->span;
    }
    return t->net.ninputs + k;
}

static void tn_output(tnet *t, const char *name, int tensor)
{
    lang_output *o = &t->net.outputs[t->net.noutputs++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->tensor = tensor;
}

static ir_graph *tn_build(tnet *t)
{
    t->g = ir_build(&t->net, &t->diags);
    return t->g;
}

/* The value made for tensor id `tensor` (a layer's output): found by the layer's name. */
static const ir_value *tn_val(const tnet *t, int tensor)
{
    cr_assert_not_null(t->g);
    const char *name = tensor < t->net.ninputs ? t->net.inputs[tensor].name
                                                : t->layers[tensor - t->net.ninputs].name;
    for (int v = 0; v < t->g->nvals; v++)
        if (strcmp(t->g->vals[v].name, name) == 0)
            return &t->g->vals[v];
    cr_assert_fail("no value %s", name);
    return NULL;
}

static const ir_node *tn_node(const tnet *t, int tensor)
{
    const ir_value *v = tn_val(t, tensor);
    cr_assert(v->producer >= 0);
    return &t->g->nodes[v->producer];
}

static int tn_node_index(const tnet *t, int tensor)
{
    return tn_val(t, tensor)->producer;
}

static const ir_value *tn_named(const tnet *t, const char *name)
{
    for (int v = 0; v < t->g->nvals; v++)
        if (strcmp(t->g->vals[v].name, name) == 0)
            return &t->g->vals[v];
    return NULL;
}

static char shbuf[8][128];
static int shnext;
static const char *S(const op_shape *s)
{
    char *b = shbuf[shnext++ % 8];
    return op_shape_str(s, b, 128);
}

#define assert_shape(val, text) cr_assert_str_eq(S(&(val)->shape), (text))

/* Builds a one-layer network on an input of the given shape and checks the output shape. */
static void one_layer(tnet *t, const char *op, const char *args, const char *expect, int rank, ...)
{
    tn_init(t, "one");
    lang_input *in = &t->net.inputs[0];
    snprintf(in->name, sizeof in->name, "x");
    in->shape.rank = rank;
    va_list ap;
    va_start(ap, rank);
    for (int k = 0; k < rank; k++)
        in->shape.d[k] = va_arg(ap, int64_t);
    va_end(ap);
    t->net.ninputs = 1;
    int y = tn_layer(t, op, args, 1, 0);
    tn_output(t, "y", y);
    tn_build(t);
    if (expect) {
        cr_assert_not_null(t->g, "%s(%s) on %s: %s", op, args, S(&in->shape),
                           t->diags.count ? t->diags.items[0].message : "");
        assert_shape(tn_val(t, y), expect);
        cr_assert_str_eq(S(&t->g->vals[t->g->outputs[0]].shape), expect);
    }
}

#define D(x) ((int64_t)(x))

/* The only diagnostic; checks its text and place. */
static void assert_one_error(const tnet *t, const char *msg, lang_span where)
{
    cr_assert_null(t->g);
    cr_assert_eq(t->diags.errors, 1, "errors: %d (first: %s)", t->diags.errors,
                 t->diags.count ? t->diags.items[0].message : "");
    cr_assert_str_eq(t->diags.items[0].message, msg);
    cr_assert_eq(t->diags.items[0].span.line, where.line);
    cr_assert_eq(t->diags.items[0].span.col, where.col);
}

/* ---------------------------------------------------------------- registry */

Test(registry, table_matches_ops_def)
{
    static const char *const names[] = {
#define X(e, s) #s,
#include "ops/ops.def"
#undef X
    };
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        cr_assert_not_null(d);
        cr_assert_eq(d->op, (op_kind)op);
        cr_assert_str_eq(d->name, names[op]);
        cr_assert_str_eq(op_name((op_kind)op), names[op]);
        cr_assert(d->nargs >= 0 && d->nargs <= OP_MAX_ARGS);
        if (d->is_layer) {
            cr_assert(op <= OP_ADD, "%s", d->name);
            cr_assert_not_null(d->shape, "%s", d->name);
        } else {
            cr_assert(!d->callable);
        }
    }
    cr_assert_null(op_def_get(OP_COUNT));
}

/* The list is derived from the table: exactly the callable layers, in ops.def order, and the
 * same list on every call. */
Test(registry, layer_names_are_the_callable_layers)
{
    const char *const *names = op_layer_names();
    cr_assert_eq(op_layer_names(), names);
    int n = 0;
    for (; names[n]; n++) {
        const op_def *d = op_def_find_layer(names[n]);
        cr_assert_not_null(d, "%s", names[n]);
        cr_assert(d->is_layer && d->callable);
        cr_assert_str_eq(d->name, names[n]);
    }
    int k = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (d->is_layer && d->callable) {
            cr_assert(k < n, "%s is missing from the list", d->name);
            cr_assert_str_eq(names[k], d->name, "list entry %d", k);
            k++;
        }
    }
    cr_assert_eq(n, k);
    cr_assert_str_eq(names[0], "conv1d");
    for (int i = 0; i < n; i++)
        cr_assert(strcmp(names[i], "add") != 0);
    /* add is a layer (it gets a name) but only '+' makes it */
    const op_def *add = op_def_get(OP_ADD);
    cr_assert(add->is_layer);
    cr_assert(!add->callable);
    cr_assert_null(op_def_find_layer("add"));
    cr_assert_null(op_def_find_layer("conv_bwd_data"));
    cr_assert_null(op_def_find_layer("maxpol"));
    cr_assert_null(op_def_find_layer(NULL));
}

/* Every ACT op of ops.def carries its activation kind, and no other op does. */
Test(registry, activation_ops_carry_their_kind)
{
    static const op_act acts[OP_COUNT] = {
#define X(e, s)
#define ACT(e, s) [OP_##e] = OP_ACT_##e,
#include "ops/ops.def"
#undef ACT
#undef X
    };
    int nact = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        cr_assert_eq(d->act, acts[op], "%s", d->name);
        if (d->act != OP_ACT_NONE) {
            nact++;
            cr_assert(d->is_layer && d->inplace, "%s", d->name);
            cr_assert_str_eq(op_act_name(d->act), d->name);
        }
    }
    cr_assert_eq(nact, 4);
}

/* Layers have a shape rule and a FLOP count; an op with parameters says how each is
 * initialised and carries OP_PROP_HAS_WEIGHTS; backward ops, losses and updates are
 * training-only and never layers. */
Test(registry, every_entry_is_complete)
{
    op_shape x = {.rank = 3, .d = {4, 8, 8}};
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (d->is_layer) {
            cr_assert_not_null(d->shape, "%s", d->name);
            cr_assert_not_null(d->flops, "%s", d->name);
            cr_assert(!(d->props & OP_PROP_TRAINING_ONLY), "%s", d->name);
        }
        cr_assert_eq(d->params != NULL, (d->props & OP_PROP_HAS_WEIGHTS) != 0, "%s", d->name);
        if (d->bias_flag)
            cr_assert_not_null(d->params, "%s: a bias flag without parameters", d->name);
        if (!d->params)
            continue;
        op_attrs a;
        memset(&a, 0, sizeof a);
        a.conv.sdims = 2;
        a.conv.filters = 6;
        a.conv.groups = 1;
        a.conv.kernel[0] = a.conv.kernel[1] = 3;
        if (op == OP_DENSE) {
            memset(&a, 0, sizeof a);
            a.dense.units = 10;
        }
        if (d->bias_flag)
            *d->bias_flag(&a) = true;
        const char *suffix[OP_MAX_PARAMS];
        op_shape shapes[OP_MAX_PARAMS];
        bool trainable[OP_MAX_PARAMS];
        op_init init[OP_MAX_PARAMS];
        for (int k = 0; k < OP_MAX_PARAMS; k++)
            init[k] = OP_INIT_NONE;
        int np = d->params(&a, &x, suffix, shapes, trainable, init);
        cr_assert(np >= 1 && np <= OP_MAX_PARAMS, "%s", d->name);
        for (int k = 0; k < np; k++)
            cr_assert_neq(init[k], OP_INIT_NONE, "%s.%s has no init rule", d->name, suffix[k]);
    }
    const op_kind training_only[] = {OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS, OP_MAXPOOL_BWD, OP_AVGPOOL_BWD,
                                     OP_GLOBAL_AVGPOOL_BWD, OP_DENSE_BWD_DATA, OP_DENSE_BWD_WEIGHTS,
                                     OP_BATCHNORM_BWD, OP_DROPOUT_BWD, OP_ACT_BWD, OP_SOFTMAX_BWD,
                                     OP_CONCAT_BWD, OP_XENT_LOSS, OP_MSE_LOSS, OP_SGD_UPDATE, OP_ADAM_UPDATE};
    for (size_t k = 0; k < sizeof training_only / sizeof training_only[0]; k++)
        cr_assert(op_def_get(training_only[k])->props & OP_PROP_TRAINING_ONLY, "%s", op_name(training_only[k]));
    cr_assert(!(op_def_get(OP_REORDER)->props & OP_PROP_TRAINING_ONLY));
    cr_assert(!(op_def_get(OP_BN_FOLD)->props & OP_PROP_TRAINING_ONLY));
}

/* The properties the passes ask for instead of op kinds. */
Test(registry, properties)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    /* batchnorm: its init rules, training outputs and in-place updates */
    const op_def *bn = op_def_get(OP_BATCHNORM);
    op_shape x = {.rank = 3, .d = {4, 8, 8}};
    const char *suffix[OP_MAX_PARAMS];
    op_shape shapes[OP_MAX_PARAMS];
    bool trainable[OP_MAX_PARAMS], batched[OP_MAX_OUT];
    op_init init[OP_MAX_PARAMS];
    cr_assert_eq(bn->params(&a, &x, suffix, shapes, trainable, init), 4);
    cr_assert_eq(init[0], OP_INIT_ONE);
    cr_assert_eq(init[1], OP_INIT_ZERO);
    cr_assert_eq(init[2], OP_INIT_ZERO);
    cr_assert_eq(init[3], OP_INIT_ONE);
    cr_assert(!bn->updates_inputs(&a));
    op_shape extra[OP_MAX_OUT];
    const char *names[OP_MAX_OUT];
    cr_assert_eq(bn->train_outputs(&a, &x, extra, batched, names), 2);
    cr_assert(a.bn.training);
    cr_assert(bn->updates_inputs(&a));
    cr_assert_str_eq(names[0], "save_mean");
    cr_assert_str_eq(names[1], "save_invstd");
    cr_assert_eq(extra[0].rank, 1);
    cr_assert_eq(extra[0].d[0], 4);
    cr_assert(!batched[0] && !batched[1]);
    /* dropout: a mask shaped like its input */
    memset(&a, 0, sizeof a);
    const op_def *dr = op_def_get(OP_DROPOUT);
    cr_assert_eq(dr->train_outputs(&a, &x, extra, batched, names), 1);
    cr_assert(a.dropout.training);
    cr_assert(op_shape_equal(&extra[0], &x));
    cr_assert(batched[0]);
    cr_assert_str_eq(names[0], "mask");
    cr_assert(op_def_get(OP_SGD_UPDATE)->updates_inputs(&a));
    cr_assert(op_def_get(OP_ADAM_UPDATE)->updates_inputs(&a));
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (op != OP_BATCHNORM && op != OP_DROPOUT)
            cr_assert_null(d->train_outputs, "%s", d->name);
        if (op != OP_BATCHNORM && op != OP_SGD_UPDATE && op != OP_ADAM_UPDATE)
            cr_assert_null(d->updates_inputs, "%s", d->name);
    }
    /* fusion slots: a conv with a fused pool, and a dense with a fused softmax, take no
     * activation; add takes one in its act attributes */
    float *alpha = NULL;
    memset(&a, 0, sizeof a);
    const op_def *cv = op_def_get(OP_CONV2D);
    cr_assert(cv->props & OP_PROP_CONV);
    cr_assert(op_def_get(OP_CONV1D)->props & OP_PROP_CONV);
    cr_assert(!(op_def_get(OP_DENSE)->props & OP_PROP_CONV));
    cr_assert_eq(cv->act_slot(&a, &alpha), &a.conv.act);
    cr_assert_eq(alpha, &a.conv.alpha);
    cr_assert(!cv->epilogue(&a));
    a.conv.pool = true;
    cr_assert_null(cv->act_slot(&a, &alpha));
    cr_assert(cv->epilogue(&a));
    cr_assert_eq(cv->bias_flag(&a), &a.conv.bias);
    memset(&a, 0, sizeof a);
    const op_def *dn = op_def_get(OP_DENSE);
    cr_assert_eq(dn->act_slot(&a, &alpha), &a.dense.act);
    cr_assert_eq(dn->bias_flag(&a), &a.dense.bias);
    a.dense.softmax = true;
    cr_assert_null(dn->act_slot(&a, &alpha));
    cr_assert(dn->epilogue(&a));
    memset(&a, 0, sizeof a);
    cr_assert_eq(op_def_get(OP_ADD)->act_slot(&a, &alpha), &a.act.act);
    cr_assert_null(op_def_get(OP_ADD)->bias_flag);
    cr_assert_null(op_def_get(OP_MAXPOOL)->act_slot);
    cr_assert_null(op_def_get(OP_BATCHNORM)->bias_flag);
    /* softmax is the one op folded into a cross-entropy loss */
    for (int op = 0; op < OP_COUNT; op++)
        cr_assert_eq((op_def_get((op_kind)op)->props & OP_PROP_FOLDS_INTO_XENT) != 0, op == OP_SOFTMAX);
}

/* The summaries the layer table prints. */
Test(registry, describe)
{
    char buf[128];
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.sdims = 2;
    a.conv.filters = 6;
    a.conv.groups = 1;
    for (int k = 0; k < 2; k++) {
        a.conv.kernel[k] = 5;
        a.conv.stride[k] = 1;
        a.conv.dilation[k] = 1;
    }
    a.conv.act = OP_ACT_RELU;
    op_def_get(OP_CONV2D)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "6x5x5 +relu");
    op_def_get(OP_CONV2D)->describe(&a, buf, 4);
    cr_assert_str_eq(buf, "6x5");
    memset(&a, 0, sizeof a);
    a.dropout.p = 0.25f;
    op_def_get(OP_DROPOUT)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "p=0.25");
    memset(&a, 0, sizeof a);
    a.reorder.from = OP_LAYOUT_PLAIN;
    a.reorder.to = OP_LAYOUT_NHWC;
    op_def_get(OP_REORDER)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "nchw->nhwc");
}

static void assert_arg(const op_def *d, int k, const char *name, op_argtype type, unsigned flags,
                       const char *dflt)
{
    cr_assert(k < d->nargs, "%s has no argument %d", d->name, k);
    cr_assert_str_eq(d->args[k].name, name, "%s argument %d", d->name, k);
    cr_assert_eq(d->args[k].type, type, "%s.%s type", d->name, name);
    cr_assert_eq(d->args[k].flags, flags, "%s.%s flags", d->name, name);
    if (dflt)
        cr_assert_str_eq(d->args[k].dflt, dflt, "%s.%s default", d->name, name);
    else
        cr_assert_null(d->args[k].dflt, "%s.%s is required", d->name, name);
}

Test(registry, conv_schemas)
{
    static const char *const names[] = {"conv1d", "conv2d", "conv3d"};
    static const unsigned tuples[] = {0, OP_ARGF_TUPLE_OK, OP_ARGF_TRIPLE_OK};
    for (int two = 0; two <= 2; two++) {
        const op_def *d = op_def_find_layer(names[two]);
        unsigned t = tuples[two];
        cr_assert_not_null(d, "%s", names[two]);
        cr_assert(d->props & OP_PROP_CONV, "%s", names[two]);
        cr_assert_eq(d->nargs, 8);
        assert_arg(d, 0, "filters", OP_ARG_INT, OP_ARGF_POSITIVE, NULL);
        assert_arg(d, 1, "kernel", OP_ARG_INTS, OP_ARGF_POSITIVE | t, NULL);
        assert_arg(d, 2, "stride", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "1");
        assert_arg(d, 3, "pad", OP_ARG_PAD, OP_ARGF_NONNEG | t, "0");
        assert_arg(d, 4, "dilation", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "1");
        assert_arg(d, 5, "groups", OP_ARG_INT, OP_ARGF_POSITIVE, "1");
        assert_arg(d, 6, "bias", OP_ARG_BOOL, 0, "true");
        assert_arg(d, 7, "name", OP_ARG_STRING, 0, "");
        cr_assert_eq(d->min_inputs, 1);
        cr_assert_eq(d->max_inputs, 1);
        cr_assert_not_null(d->params);
        cr_assert(!d->inplace);
    }
}

Test(registry, other_schemas)
{
    const char *pools[] = {"maxpool", "avgpool"};
    for (int k = 0; k < 2; k++) {
        const op_def *d = op_def_find_layer(pools[k]);
        cr_assert_eq(d->nargs, 3);
        unsigned t = OP_ARGF_TUPLE_OK | OP_ARGF_TRIPLE_OK; /* (h, w) and (d, h, w) */
        assert_arg(d, 0, "size", OP_ARG_INTS, OP_ARGF_POSITIVE | t, NULL);
        assert_arg(d, 1, "stride", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "=size");
        assert_arg(d, 2, "pad", OP_ARG_INTS, OP_ARGF_NONNEG | t, "0");
    }
    const op_def *d = op_def_find_layer("dense");
    cr_assert_eq(d->nargs, 3);
    assert_arg(d, 0, "units", OP_ARG_INT, OP_ARGF_POSITIVE, NULL);
    assert_arg(d, 1, "bias", OP_ARG_BOOL, 0, "true");
    assert_arg(d, 2, "name", OP_ARG_STRING, 0, "");
    d = op_def_find_layer("batchnorm");
    cr_assert_eq(d->nargs, 3);
    assert_arg(d, 0, "eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-5");
    assert_arg(d, 1, "momentum", OP_ARG_FLOAT, 0, "0.1");
    assert_arg(d, 2, "name", OP_ARG_STRING, 0, "");
    d = op_def_find_layer("dropout");
    cr_assert_eq(d->nargs, 1);
    assert_arg(d, 0, "p", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.5");
    d = op_def_find_layer("leaky_relu");
    cr_assert_eq(d->nargs, 1);
    assert_arg(d, 0, "alpha", OP_ARG_FLOAT, 0, "0.01");
    const char *noargs[] = {"global_avgpool", "flatten", "relu", "sigmoid", "tanh", "softmax", "concat"};
    for (int k = 0; k < 7; k++)
        cr_assert_eq(op_def_find_layer(noargs[k])->nargs, 0, "%s", noargs[k]);
    d = op_def_find_layer("concat");
    cr_assert_eq(d->min_inputs, 2);
    cr_assert_eq(d->max_inputs, OP_MAX_IN);
    d = op_def_get(OP_ADD);
    cr_assert_eq(d->min_inputs, 2);
    cr_assert_eq(d->max_inputs, 2);
    cr_assert(op_def_find_layer("relu")->inplace);
    cr_assert(!op_def_find_layer("softmax")->inplace);
}

/* Backward ops: shapes where the inputs decide them, FLOPs equal to the forward's
 * multiply-adds, and rules that never read a parameter input. */
Test(registry, backward_rules)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    op_conv_attrs *c = &a.conv;
    c->sdims = 2;
    c->filters = 8;
    c->groups = 2;
    c->bias = true;
    for (int k = 0; k < 2; k++) {
        c->kernel[k] = 3;
        c->stride[k] = 1;
        c->dilation[k] = 1;
        c->pad[k] = 1;
    }
    op_shape x = {.rank = 3, .d = {4, 6, 6}}, dy = {.rank = 3, .d = {8, 6, 6}};
    op_shape w = {.rank = 4, .d = {8, 2, 3, 3}};
    op_shape out, in2[2];
    op_err e = {.arg = -1};
    const op_def *fw = op_def_get(OP_CONV2D);
    int64_t fwd = fw->flops(&a, &x, 1, &dy) - 8 * 36; /* without the bias adds */

    const op_def *d = op_def_get(OP_CONV_BWD_WEIGHTS);
    in2[0] = dy;
    in2[1] = x;
    cr_assert_eq(d->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &w));
    cr_assert_eq(d->flops(&a, in2, 2, &out), fwd + 8 * 36);
    d = op_def_get(OP_CONV_BWD_DATA);
    cr_assert_null(d->shape, "a strided conv's dx is ambiguous: its maker gives the shape");
    in2[1] = w;
    cr_assert_eq(d->flops(&a, in2, 2, &x), fwd);
    cr_assert_eq(d->flops(&a, in2, 1, &x), fwd, "the weight is not read");

    memset(&a, 0, sizeof a);
    a.dense.units = 10;
    a.dense.bias = true;
    op_shape feat = {.rank = 3, .d = {4, 5, 5}}, dz = {.rank = 1, .d = {10}};
    d = op_def_get(OP_DENSE_BWD_WEIGHTS);
    in2[0] = dz;
    in2[1] = feat;
    cr_assert_eq(d->shape(&a, in2, 2, &out, &e), 0);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.d[0], 10);
    cr_assert_eq(out.d[1], 100);
    cr_assert_eq(d->flops(&a, in2, 2, &out), 2 * 1000 + 10);
    d = op_def_get(OP_DENSE_BWD_DATA);
    cr_assert_eq(d->flops(&a, in2, 1, &feat), 2 * 1000);

    memset(&a, 0, sizeof a);
    op_shape p = {.rank = 3, .d = {4, 3, 3}};
    in2[0] = p;
    in2[1] = x;
    cr_assert_eq(op_def_get(OP_MAXPOOL_BWD)->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &x));
    cr_assert_eq(op_def_get(OP_ACT_BWD)->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &p));
    cr_assert(op_def_get(OP_ACT_BWD)->inplace);
    op_shape logits = {.rank = 1, .d = {10}};
    cr_assert_eq(op_def_get(OP_XENT_LOSS)->shape(&a, &logits, 2, &out, &e), 0);
    cr_assert_eq(out.rank, 0);
    cr_assert_eq(op_def_get(OP_GLOBAL_AVGPOOL_BWD)->flops(&a, &logits, 1, &x), 4 * 36);
}

/* ---------------------------------------------------------------- ir helpers */

Test(ir, shape_helpers)
{
    char b[64];
    op_shape s = {.rank = 3, .d = {6, 28, 28}};
    cr_assert_str_eq(op_shape_str(&s, b, sizeof b), "[6, 28, 28]");
    cr_assert_eq(op_shape_numel(&s), 6 * 28 * 28);
    op_shape v = {.rank = 1, .d = {10}};
    cr_assert_str_eq(op_shape_str(&v, b, sizeof b), "[10]");
    op_shape z = {.rank = 0};
    cr_assert_str_eq(op_shape_str(&z, b, sizeof b), "[]");
    cr_assert_eq(op_shape_numel(&z), 1);
    char small[6];
    cr_assert_str_eq(op_shape_str(&s, small, sizeof small), "[6, 2"); /* truncated, terminated */
    op_shape s2 = s;
    cr_assert(op_shape_equal(&s, &s2));
    s2.d[2] = 27;
    cr_assert(!op_shape_equal(&s, &s2));
    cr_assert(!op_shape_equal(&s, &v));
    cr_assert_str_eq(op_act_name(OP_ACT_RELU), "relu");
    cr_assert_str_eq(op_act_name(OP_ACT_LEAKY_RELU), "leaky_relu");
}

Test(ir, values_nodes_clone_readers)
{
    ir_graph *g = ir_graph_create("g");
    cr_assert_eq(g->loss, -1);
    cr_assert_eq(g->label, -1);
    op_shape s = {.rank = 1, .d = {4}};
    int v[40];
    for (int k = 0; k < 40; k++) /* past the first growth */
        v[k] = ir_add_value(g, IR_VAL_ACT, &s, true, "v");
    cr_assert_eq(v[39], 39);
    cr_assert_eq(g->vals[5].producer, -1);
    cr_assert_eq(g->vals[5].param_of, -1);
    int n0 = ir_add_node(g, OP_RELU, NULL, 1, &v[0], 1, &v[1], "relu_1", (lang_span){0});
    int in2[2] = {v[1], v[0]};
    int n1 = ir_add_node(g, OP_ADD, NULL, 2, in2, 1, &v[2], "add_1", (lang_span){1, 2, 1, 3});
    int n2 = ir_add_node(g, OP_RELU, NULL, 1, &v[1], 1, &v[3], "relu_2", (lang_span){0});
    cr_assert_eq(n0, 0);
    cr_assert_eq(n1, 1);
    cr_assert_eq(g->vals[v[1]].producer, n0);
    cr_assert_eq(g->vals[v[2]].producer, n1);
    cr_assert_str_eq(g->nodes[n1].name, "add_1");
    cr_assert_eq(g->nodes[n1].span.col, 2);
    cr_assert_eq(ir_value_readers(g, v[1]), 2);
    cr_assert_eq(ir_value_readers(g, v[0]), 2);
    g->nodes[n2].dead = true;
    cr_assert_eq(ir_value_readers(g, v[1]), 1);

    ir_graph *c = ir_graph_clone(g);
    cr_assert_eq(c->nvals, 40);
    cr_assert_eq(c->nnodes, 3);
    c->nodes[0].dead = true;
    c->vals[0].shape.d[0] = 99;
    cr_assert(!g->nodes[0].dead);
    cr_assert_eq(g->vals[0].shape.d[0], 4);
    cr_assert(ir_add_value(c, IR_VAL_ACT, &s, true, "w") == 40);
    ir_graph_destroy(c);
    ir_graph_destroy(g);
    ir_graph_destroy(NULL);
}

/* ---------------------------------------------------------------- shapes: convolutions */

Test(shape, conv2d_basic_and_params)
{
    tnet t;
    one_layer(&t, "conv2d", "6 5 pad=2", "[6, 28, 28]", 3, D(1), D(28), D(28));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->op, OP_CONV2D);
    cr_assert_str_eq(n->name, "conv2d_1");
    cr_assert_eq(n->attrs.conv.sdims, 2);
    cr_assert_eq(n->attrs.conv.kernel[0], 5);
    cr_assert_eq(n->attrs.conv.kernel[1], 5);
    cr_assert_eq(n->attrs.conv.pad[0], 2);
    cr_assert_eq(n->attrs.conv.pad[1], 2);
    cr_assert_eq(n->attrs.conv.stride[0], 1);
    cr_assert_eq(n->attrs.conv.dilation[1], 1);
    cr_assert_eq(n->attrs.conv.groups, 1);
    cr_assert(n->attrs.conv.bias);
    cr_assert_eq(n->attrs.conv.act, OP_ACT_NONE);
    cr_assert(!n->attrs.conv.pool && !n->attrs.conv.residual);
    /* x, weight, bias */
    cr_assert_eq(n->nin, 3);
    cr_assert_eq(n->nout, 1);
    const ir_value *w = &t.g->vals[n->in[1]], *b = &t.g->vals[n->in[2]];
    cr_assert_str_eq(t.g->vals[n->in[0]].name, "x");
    cr_assert_eq(t.g->vals[n->in[0]].kind, IR_VAL_INPUT);
    cr_assert_str_eq(w->name, "conv2d_1.weight");
    cr_assert_str_eq(b->name, "conv2d_1.bias");
    cr_assert_eq(w->kind, IR_VAL_PARAM);
    cr_assert(!w->batched);
    assert_shape(w, "[6, 1, 5, 5]");
    assert_shape(b, "[6]");
    const ir_value *y = tn_val(&t, 1);
    cr_assert_eq(y->kind, IR_VAL_ACT);
    cr_assert(y->batched);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 156);
    /* 2 * 6*28*28 outputs * 25 taps, plus a bias add per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 6 * 28 * 28 * 25 + 6 * 28 * 28);
    tn_fini(&t);

    one_layer(&t, "conv2d", "16 5", "[16, 10, 10]", 3, D(6), D(14), D(14));
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 16 * 6 * 25 + 16);
    tn_fini(&t);
}

Test(shape, conv3d_shapes_params_flops)
{
    tnet t;
    one_layer(&t, "conv3d", "4 3 pad=1", "[4, 6, 8, 8]", 4, D(2), D(6), D(8), D(8));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->op, OP_CONV3D);
    cr_assert_str_eq(n->name, "conv3d_1");
    cr_assert_eq(n->attrs.conv.sdims, 3);
    cr_assert_eq(n->attrs.conv.kernel_d, 3);
    cr_assert_eq(n->attrs.conv.kernel[0], 3);
    cr_assert_eq(n->attrs.conv.kernel[1], 3);
    cr_assert_eq(n->attrs.conv.pad_d, 1);
    cr_assert_eq(n->attrs.conv.stride_d, 1);
    cr_assert_eq(n->attrs.conv.dilation_d, 1);
    cr_assert_eq(n->nin, 3);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[4, 2, 3, 3, 3]");
    assert_shape(tn_named(&t, "conv3d_1.bias"), "[4]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 4 * 2 * 27 + 4);
    char d3[128];
    op_def_get(OP_CONV3D)->describe(&n->attrs, d3, sizeof d3);
    cr_assert_str_eq(d3, "4x3x3x3");
    /* 2 * outputs * C * taps, plus a bias add per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * (4 * 6 * 8 * 8) * 2 * 27 + 4 * 6 * 8 * 8);
    tn_fini(&t);
    /* tuples (d, h, w): only height and width strided */
    one_layer(&t, "conv3d", "6 (1,3,3) stride=(1,2,2) pad=(0,1,1)", "[6, 3, 2, 2]", 4, D(4), D(3), D(4), D(4));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.conv.kernel_d, 1);
    cr_assert_eq(n->attrs.conv.stride_d, 1);
    cr_assert_eq(n->attrs.conv.stride[0], 2);
    cr_assert_eq(n->attrs.conv.pad[1], 1);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[6, 4, 1, 3, 3]");
    char desc[128];
    op_def_get(OP_CONV3D)->describe(&n->attrs, desc, sizeof desc);
    cr_assert_str_eq(desc, "6x1x3x3 stride 1x2x2");
    tn_fini(&t);
    /* depth dilation and padding, groups, no bias */
    one_layer(&t, "conv3d", "8 (3,1,1) pad=(2,0,0) dilation=(2,1,1) groups=2 bias=false", "[8, 4, 1, 1]", 4, D(6),
              D(4), D(1), D(1));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.conv.dilation_d, 2);
    cr_assert_eq(n->attrs.conv.pad_d, 2);
    cr_assert_eq(n->nin, 2);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[8, 3, 3, 1, 1]");
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * (8 * 4) * 3 * 3);
    tn_fini(&t);
    /* pad="same" on every axis */
    one_layer(&t, "conv3d", "2 3 pad=same", "[2, 5, 5, 5]", 4, D(1), D(5), D(5), D(5));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad_d, 1);
    tn_fini(&t);
    /* 2-D convolutions keep the trivial depth 1, 1, 0, 1 */
    one_layer(&t, "conv2d", "2 3", "[2, 3, 3]", 3, D(1), D(5), D(5));
    n = tn_node(&t, 1);
    cr_assert(n->attrs.conv.kernel_d == 1 && n->attrs.conv.stride_d == 1 && n->attrs.conv.pad_d == 0 &&
              n->attrs.conv.dilation_d == 1);
    tn_fini(&t);
}

Test(shape, conv3d_errors_are_located)
{
    tnet t;
    /* a kernel deeper than the padded volume names the layer, the input and the numbers */
    one_layer(&t, "conv3d", "4 (4,3,3)", NULL, 4, D(2), D(2), D(5), D(5));
    assert_one_error(&t, "conv3d: output depth would be -1: input [2, 2, 5, 5], kernel 4, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 3 pad=(1,0,0)", NULL, 4, D(2), D(3), D(2), D(5));
    assert_one_error(&t, "conv3d: output height would be 0: input [2, 3, 2, 5], kernel 3, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 3", NULL, 3, D(3), D(8), D(8));
    assert_one_error(&t, "conv3d expects a [C, D, H, W] input, got [3, 8, 8]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 (3,3)", NULL, 4, D(2), D(4), D(8), D(8));
    assert_one_error(&t, "conv3d: 'kernel' takes an int or a triple for a [C, D, H, W] input, got a pair (3, 3)",
                     arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "conv3d", "6 3 groups=4", NULL, 4, D(8), D(4), D(4), D(4));
    assert_one_error(&t, "conv3d: filters 6 are not divisible by groups 4", arg_span(0, 5));
    tn_fini(&t);
    one_layer(&t, "conv3d", "2 (2,3,3) pad=same", NULL, 4, D(1), D(5), D(5), D(5));
    assert_one_error(&t, "conv3d: pad=\"same\" needs an odd effective kernel, got 2 (kernel 2, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
}

Test(shape, pools_3d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[4, 3, 4, 4]", 4, D(4), D(6), D(8), D(8));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.pool.sdims, 3);
    cr_assert_eq(n->attrs.pool.size_d, 2);
    cr_assert_eq(n->attrs.pool.stride_d, 2);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 4 * 3 * 4 * 4 * 8);
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2,2) stride=1 pad=(1,0,0)", "[6, 4, 1, 1]", 4, D(6), D(3), D(2), D(2));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.pool.pad_d, 1);
    cr_assert_eq(n->attrs.pool.stride_d, 1);
    char dp[128];
    op_def_get(OP_AVGPOOL)->describe(&n->attrs, dp, sizeof dp);
    cr_assert_str_eq(dp, "2/1 pad 1x0x0");
    tn_fini(&t);
    one_layer(&t, "maxpool", "(1,2,2)", "[3, 5, 3, 3]", 4, D(3), D(5), D(7), D(6));
    tn_fini(&t);
    /* errors name the layer, the input and the numbers; 'depth' for the new axis */
    one_layer(&t, "maxpool", "(3,2,2)", NULL, 4, D(2), D(2), D(5), D(5));
    assert_one_error(&t, "maxpool: output depth would be 0: input [2, 2, 5, 5], size 3, stride 3, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2,2) pad=(2,0,0)", NULL, 4, D(2), D(4), D(5), D(5));
    assert_one_error(&t, "avgpool: pad 2 is more than half the window size 2", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "maxpool", "(2,2,2)", NULL, 3, D(2), D(8), D(8));
    assert_one_error(&t, "maxpool: 'size' takes an int or a pair for a [C, H, W] input, got a triple (2, 2, 2)",
                     arg_span(0, 0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2)", NULL, 4, D(2), D(4), D(8), D(8));
    assert_one_error(&t, "avgpool: 'size' takes an int or a triple for a [C, D, H, W] input, got a pair (2, 2)",
                     arg_span(0, 0));
    tn_fini(&t);
}

Test(shape, conv2d_stride_dilation_groups)
{
    tnet t;
    /* AlexNet's first layer: floor((224 + 4 - 10 - 1) / 4) + 1 = 55 */
    one_layer(&t, "conv2d", "64 11 stride=4 pad=2", "[64, 55, 55]", 3, D(3), D(224), D(224));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.stride[1], 4);
    tn_fini(&t);
    /* dilation 2: effective kernel 5 */
    one_layer(&t, "conv2d", "8 3 dilation=2", "[8, 28, 28]", 3, D(3), D(32), D(32));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.dilation[0], 2);
    tn_fini(&t);
    /* stride 2, pad 1 on an even size: ResNet's downsampling */
    one_layer(&t, "conv2d", "32 3 stride=2 pad=1 bias=false", "[32, 16, 16]", 3, D(16), D(32), D(32));
    const ir_node *n = tn_node(&t, 1);
    cr_assert(!n->attrs.conv.bias);
    cr_assert_eq(n->nin, 2);
    cr_assert_null(tn_named(&t, "conv2d_1.bias"));
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 32 * 16 * 9);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2LL * 32 * 16 * 16 * 16 * 9);
    tn_fini(&t);
    /* groups: weight [F, C/g, kh, kw], FLOPs per group */
    one_layer(&t, "conv2d", "8 3 groups=2", "[8, 6, 6]", 3, D(4), D(8), D(8));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.groups, 2);
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[8, 2, 3, 3]");
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 8 * 36 * 2 * 9 + 8 * 36);
    tn_fini(&t);
    /* depthwise */
    one_layer(&t, "conv2d", "8 3 groups=8 pad=1", "[8, 8, 8]", 3, D(8), D(8), D(8));
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[8, 1, 3, 3]");
    tn_fini(&t);
    /* a stride that does not divide: floor */
    one_layer(&t, "conv2d", "2 3 stride=3", "[2, 3, 3]", 3, D(1), D(10), D(11));
    tn_fini(&t);
    /* a kernel as large as the input: 1x1 output */
    one_layer(&t, "conv2d", "2 7", "[2, 1, 1]", 3, D(1), D(7), D(7));
    tn_fini(&t);
}

Test(shape, conv2d_tuples)
{
    tnet t;
    /* H: 32 + 2 - 2 - 1 + 1 = 32; W: floor((16 + 4 - 4 - 1) / 2) + 1 = 8 */
    one_layer(&t, "conv2d", "4 (3,5) stride=(1,2) pad=(1,2)", "[4, 32, 8]", 3, D(3), D(32), D(16));
    const op_conv_attrs *c = &tn_node(&t, 1)->attrs.conv;
    cr_assert_eq(c->kernel[0], 3);
    cr_assert_eq(c->kernel[1], 5);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->stride[1], 2);
    cr_assert_eq(c->pad[0], 1);
    cr_assert_eq(c->pad[1], 2);
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[4, 3, 3, 5]");
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 3 dilation=(1,3)", "[4, 8, 4]", 3, D(3), D(10), D(10));
    tn_fini(&t);
}

Test(shape, conv_pad_same)
{
    tnet t;
    one_layer(&t, "conv2d", "4 5 pad=same", "[4, 17, 17]", 3, D(3), D(17), D(17));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 2);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    /* dilation 2, kernel 3: effective 5 */
    one_layer(&t, "conv2d", "4 3 pad=same dilation=2", "[4, 9, 12]", 3, D(3), D(9), D(12));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 (3,5) pad=same", "[4, 6, 7]", 3, D(3), D(6), D(7));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 1);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    one_layer(&t, "conv1d", "4 7 pad=same", "[4, 50]", 2, D(2), D(50));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 3);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 0);
    tn_fini(&t);
}

Test(shape, conv_pad_same_errors)
{
    tnet t;
    one_layer(&t, "conv2d", "4 3 stride=2 pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs stride 1, got stride 2", arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 4 pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs an odd effective kernel, got 4 (kernel 4, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 (3,2) pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs an odd effective kernel, got 2 (kernel 2, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv1d", "4 3 stride=3 pad=same", NULL, 2, D(3), D(16));
    assert_one_error(&t, "conv1d: pad=\"same\" needs stride 1, got stride 3", arg_span(0, 3));
    tn_fini(&t);
}

Test(shape, conv1d)
{
    tnet t;
    one_layer(&t, "conv1d", "16 5 pad=2", "[16, 128]", 2, D(1), D(128));
    const ir_node *n = tn_node(&t, 1);
    const op_conv_attrs *c = &n->attrs.conv;
    cr_assert_eq(n->op, OP_CONV1D);
    cr_assert_eq(c->sdims, 1);
    /* the length's numbers at index 1; height 1/1/0/1 at index 0 */
    cr_assert_eq(c->kernel[1], 5);
    cr_assert_eq(c->pad[1], 2);
    cr_assert_eq(c->kernel[0], 1);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->pad[0], 0);
    cr_assert_eq(c->dilation[0], 1);
    assert_shape(tn_named(&t, "conv1d_1.weight"), "[16, 1, 5]");
    assert_shape(tn_named(&t, "conv1d_1.bias"), "[16]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 96);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 16 * 128 * 5 + 16 * 128);
    tn_fini(&t);
    /* floor((100 - 2*2 - 1) / 2) + 1 = 48 */
    one_layer(&t, "conv1d", "4 3 stride=2 dilation=2", "[4, 48]", 2, D(2), D(100));
    c = &tn_node(&t, 1)->attrs.conv;
    cr_assert_eq(c->stride[1], 2);
    cr_assert_eq(c->dilation[1], 2);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->dilation[0], 1);
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 3 groups=3 bias=false", "[6, 8]", 2, D(3), D(10));
    assert_shape(tn_named(&t, "conv1d_1.weight"), "[6, 1, 3]");
    cr_assert_null(tn_named(&t, "conv1d_1.bias"));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- shapes: pools */

Test(shape, pools_2d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[6, 14, 14]", 3, D(6), D(28), D(28));
    const op_pool_attrs *p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(tn_node(&t, 1)->op, OP_MAXPOOL);
    cr_assert_eq(p->sdims, 2);
    cr_assert_eq(p->size[0], 2);
    cr_assert_eq(p->stride[0], 2); /* stride defaults to size */
    cr_assert_eq(p->stride[1], 2);
    cr_assert_eq(p->pad[1], 0);
    cr_assert_eq(tn_node(&t, 1)->nin, 1);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 0);
    /* one comparison per window element per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 6 * 14 * 14 * 4);
    tn_fini(&t);
    one_layer(&t, "maxpool", "3 stride=2", "[64, 27, 27]", 3, D(64), D(55), D(55));
    tn_fini(&t);
    /* ResNet-18's stem pool */
    one_layer(&t, "maxpool", "3 stride=2 pad=1", "[64, 56, 56]", 3, D(64), D(112), D(112));
    cr_assert_eq(tn_node(&t, 1)->attrs.pool.pad[0], 1);
    tn_fini(&t);
    /* odd input: floor */
    one_layer(&t, "avgpool", "2", "[3, 3, 3]", 3, D(3), D(7), D(7));
    cr_assert_eq(tn_node(&t, 1)->op, OP_AVGPOOL);
    tn_fini(&t);
    /* tuples; the stride default copies the tuple */
    one_layer(&t, "maxpool", "(2,1)", "[3, 4, 7]", 3, D(3), D(8), D(7));
    p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(p->size[0], 2);
    cr_assert_eq(p->size[1], 1);
    cr_assert_eq(p->stride[0], 2);
    cr_assert_eq(p->stride[1], 1);
    tn_fini(&t);
    one_layer(&t, "avgpool", "(3,2) stride=(1,2) pad=(1,0)", "[3, 8, 4]", 3, D(3), D(8), D(8));
    tn_fini(&t);
    /* pad exactly half the window is allowed */
    one_layer(&t, "maxpool", "2 pad=1", "[1, 5, 5]", 3, D(1), D(8), D(8));
    tn_fini(&t);
}

Test(shape, pools_1d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[16, 64]", 2, D(16), D(128));
    const op_pool_attrs *p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(p->sdims, 1);
    cr_assert_eq(p->size[1], 2);
    cr_assert_eq(p->stride[1], 2);
    cr_assert_eq(p->size[0], 1);
    cr_assert_eq(p->stride[0], 1);
    cr_assert_eq(p->pad[0], 0);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 16 * 64 * 2);
    tn_fini(&t);
    one_layer(&t, "avgpool", "3 stride=1 pad=1", "[4, 10]", 2, D(4), D(10));
    tn_fini(&t);
}

Test(shape, pool_errors)
{
    tnet t;
    one_layer(&t, "maxpool", "(2,2)", NULL, 2, D(16), D(128));
    assert_one_error(&t, "maxpool: 'size' takes one int for a [C, L] input, got a tuple (2, 2)", arg_span(0, 0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "2 stride=(1,2)", NULL, 2, D(16), D(128));
    assert_one_error(&t, "avgpool: 'stride' takes one int for a [C, L] input, got a tuple (1, 2)", arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "maxpool", "3 pad=2", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "maxpool: pad 2 is more than half the window size 3", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(4,2) pad=(2,2)", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "avgpool: pad 2 is more than half the window size 2", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "maxpool", "2", NULL, 3, D(16), D(1), D(1));
    assert_one_error(&t, "maxpool: output height would be 0: input [16, 1, 1], size 2, stride 2, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(1,3)", NULL, 3, D(16), D(4), D(2));
    assert_one_error(&t, "avgpool: output width would be 0: input [16, 4, 2], size 3, stride 3, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "maxpool", "4", NULL, 2, D(16), D(3));
    assert_one_error(&t, "maxpool: output length would be 0: input [16, 3], size 4, stride 4, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "maxpool", "2", NULL, 1, D(120));
    assert_one_error(&t, "maxpool expects a [C, L], [C, H, W] or [C, D, H, W] input, got [120]", layer_span(0));
    tn_fini(&t);
}

Test(shape, global_avgpool)
{
    tnet t;
    one_layer(&t, "global_avgpool", "", "[64]", 3, D(64), D(7), D(7));
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 64 * 49);
    tn_fini(&t);
    one_layer(&t, "global_avgpool", "", "[64]", 2, D(64), D(32));
    tn_fini(&t);
    one_layer(&t, "global_avgpool", "", NULL, 1, D(64));
    assert_one_error(&t, "global_avgpool expects a [C, L] or [C, H, W] input, got [64]", layer_span(0));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- shapes: the rest */

Test(shape, dense_and_flatten)
{
    tnet t;
    /* dense reads any rank in C,H,W order */
    one_layer(&t, "dense", "120", "[120]", 3, D(16), D(5), D(5));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.dense.units, 120);
    cr_assert(n->attrs.dense.bias);
    cr_assert_eq(n->nin, 3);
    assert_shape(tn_named(&t, "dense_1.weight"), "[120, 400]");
    assert_shape(tn_named(&t, "dense_1.bias"), "[120]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 48120);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 120 * 400 + 120);
    tn_fini(&t);
    one_layer(&t, "dense", "10 bias=false", "[10]", 1, D(84));
    cr_assert_eq(tn_node(&t, 1)->nin, 2);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 840);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 840);
    tn_fini(&t);
    one_layer(&t, "dense", "4", "[4]", 2, D(64), D(3));
    assert_shape(tn_named(&t, "dense_1.weight"), "[4, 192]");
    tn_fini(&t);
    one_layer(&t, "flatten", "", "[400]", 3, D(16), D(5), D(5));
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 0);
    cr_assert_eq(tn_node(&t, 1)->nin, 1);
    tn_fini(&t);
    one_layer(&t, "flatten", "", "[10]", 1, D(10));
    tn_fini(&t);
}

Test(shape, batchnorm)
{
    tnet t;
    one_layer(&t, "batchnorm", "", "[16, 32, 32]", 3, D(16), D(32), D(32));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_float_eq(n->attrs.bn.eps, 1e-5f, 1e-12);
    cr_assert_float_eq(n->attrs.bn.momentum, 0.1f, 1e-7);
    cr_assert(!n->attrs.bn.training);
    /* x, weight, bias, running_mean, running_var */
    cr_assert_eq(n->nin, 5);
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        const ir_value *v = &t.g->vals[n->in[k + 1]];
        char want[64];
        snprintf(want, sizeof want, "batchnorm_1.%s", suffix[k]);
        cr_assert_str_eq(v->name, want);
        assert_shape(v, "[16]");
        cr_assert_eq(v->kind, k < 2 ? IR_VAL_PARAM : IR_VAL_STATE, "%s", v->name);
        cr_assert(!v->batched);
    }
    /* running statistics are not parameters */
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 32);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 16 * 32 * 32);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "eps=0.001 momentum=0.3", "[8, 20]", 2, D(8), D(20));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.bn.eps, 1e-3f, 1e-9);
    cr_assert_float_eq(tn_node(&t, 1)->attrs.bn.momentum, 0.3f, 1e-7);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "momentum=1", "[100]", 1, D(100));
    tn_fini(&t);
    one_layer(&t, "batchnorm", "momentum=1.5", NULL, 1, D(100));
    assert_one_error(&t, "batchnorm: 'momentum' must be between 0 and 1, got 1.5", arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "batchnorm", "", "[2, 3, 4, 5]", 4, D(2), D(3), D(4), D(5)); /* a volume */
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 4);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "", NULL, 5, D(2), D(3), D(4), D(5), D(6));
    assert_one_error(&t, "batchnorm expects a [C], [C, L], [C, H, W] or [C, D, H, W] input, got [2, 3, 4, 5, 6]",
                     layer_span(0));
    tn_fini(&t);
}

Test(shape, elementwise_layers)
{
    tnet t;
    const char *acts[] = {"relu", "sigmoid", "tanh", "leaky_relu"};
    const op_act kinds[] = {OP_ACT_RELU, OP_ACT_SIGMOID, OP_ACT_TANH, OP_ACT_LEAKY_RELU};
    for (int k = 0; k < 4; k++) {
        one_layer(&t, acts[k], "", "[6, 28, 28]", 3, D(6), D(28), D(28));
        cr_assert_eq(tn_node(&t, 1)->attrs.act.act, kinds[k], "%s", acts[k]);
        cr_assert_eq(tn_node(&t, 1)->nin, 1);
        cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 6 * 28 * 28);
        tn_fini(&t);
    }
    one_layer(&t, "leaky_relu", "", "[5]", 1, D(5));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.act.alpha, 0.01f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "leaky_relu", "alpha=0.2", "[5, 3]", 2, D(5), D(3));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.act.alpha, 0.2f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "dropout", "", "[4096]", 1, D(4096));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.dropout.p, 0.5f, 1e-9);
    cr_assert(!tn_node(&t, 1)->attrs.dropout.training);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 0);
    tn_fini(&t);
    one_layer(&t, "dropout", "0.25", "[3, 4, 4]", 3, D(3), D(4), D(4));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.dropout.p, 0.25f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "softmax", "", "[10]", 1, D(10));
    tn_fini(&t);
    one_layer(&t, "softmax", "", "[5, 4, 4]", 3, D(5), D(4), D(4));
    tn_fini(&t);
}

Test(shape, concat_and_add)
{
    tnet t;
    tn_init(&t, "branches");
    int x = tn_input(&t, "x", 3, D(3), D(8), D(8));
    int a = tn_layer(&t, "conv2d", "6 3 pad=1", 1, x);
    int b = tn_layer(&t, "conv2d", "10 1", 1, x);
    int c = tn_layer(&t, "concat", "", 2, a, b);
    int d = tn_layer(&t, "concat", "", 3, c, x, a);
    int e = tn_layer(&t, "conv2d", "16 3 pad=1", 1, x);
    int s = tn_layer(&t, "add", "", 2, c, e);
    tn_output(&t, "cat", d);
    tn_output(&t, "sum", s);
    cr_assert_not_null(tn_build(&t));
    assert_shape(tn_val(&t, c), "[16, 8, 8]");
    assert_shape(tn_val(&t, d), "[25, 8, 8]");
    assert_shape(tn_val(&t, s), "[16, 8, 8]");
    const ir_node *cn = tn_node(&t, d);
    cr_assert_eq(cn->op, OP_CONCAT);
    cr_assert_eq(cn->nin, 3);
    cr_assert_str_eq(t.g->vals[cn->in[1]].name, "x");
    const ir_node *an = tn_node(&t, s);
    cr_assert_eq(an->op, OP_ADD);
    cr_assert_str_eq(an->name, "add_6");
    cr_assert_eq(an->attrs.act.act, OP_ACT_NONE);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, s)), 16 * 64);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, d)), 0);
    cr_assert_eq(t.g->noutputs, 2);
    cr_assert_str_eq(t.g->output_names[0], "cat");
    cr_assert_str_eq(t.g->output_names[1], "sum");
    assert_shape(&t.g->vals[t.g->outputs[1]], "[16, 8, 8]");
    tn_fini(&t);

    /* concat of vectors */
    tn_init(&t, "vec");
    int u = tn_input(&t, "u", 1, D(5));
    int v = tn_input(&t, "v", 1, D(7));
    tn_output(&t, "y", tn_layer(&t, "concat", "", 2, u, v));
    cr_assert_not_null(tn_build(&t));
    assert_shape(&t.g->vals[t.g->outputs[0]], "[12]");
    cr_assert_eq(t.g->ninputs, 2);
    tn_fini(&t);
}

Test(shape, concat_and_add_errors)
{
    tnet t;
    tn_init(&t, "bad");
    int x = tn_input(&t, "x", 3, D(6), D(28), D(28));
    int y = tn_input(&t, "y", 3, D(16), D(14), D(14));
    tn_output(&t, "o", tn_layer(&t, "concat", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(&t,
                     "concat: input 2 has shape [16, 14, 14], which does not match input 1's [6, 28, 28] outside "
                     "the channel axis",
                     layer_span(0));
    tn_fini(&t);

    tn_init(&t, "bad");
    x = tn_input(&t, "x", 3, D(6), D(28), D(28));
    y = tn_input(&t, "y", 2, D(6), D(28));
    tn_output(&t, "o", tn_layer(&t, "concat", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(
        &t, "concat: input 2 has shape [6, 28], which does not match input 1's [6, 28, 28] outside the channel axis",
        layer_span(0));
    tn_fini(&t);

    tn_init(&t, "bad");
    x = tn_input(&t, "x", 3, D(16), D(32), D(32));
    y = tn_input(&t, "y", 3, D(32), D(16), D(16));
    tn_output(&t, "o", tn_layer(&t, "add", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(&t, "add: the shapes differ: [16, 32, 32] + [32, 16, 16]", layer_span(0));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- shape errors */

Test(errors, wrong_rank)
{
    tnet t;
    one_layer(&t, "conv2d", "6 5", NULL, 2, D(6), D(28));
    assert_one_error(&t, "conv2d expects a [C, H, W] input, got [6, 28]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 5", NULL, 3, D(1), D(28), D(28));
    assert_one_error(&t, "conv1d expects a [C, L] input, got [1, 28, 28]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv2d", "6 5", NULL, 1, D(400));
    assert_one_error(&t, "conv2d expects a [C, H, W] input, got [400]", layer_span(0));
    tn_fini(&t);
}

Test(errors, groups)
{
    tnet t;
    one_layer(&t, "conv2d", "8 3 groups=2", NULL, 3, D(3), D(8), D(8));
    assert_one_error(&t, "conv2d: input channels 3 are not divisible by groups 2", arg_span(0, 5));
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 3 groups=4", NULL, 2, D(8), D(8));
    assert_one_error(&t, "conv1d: filters 6 are not divisible by groups 4", arg_span(0, 5));
    tn_fini(&t);
}

Test(errors, output_below_one)
{
    tnet t;
    one_layer(&t, "conv2d", "8 5", NULL, 3, D(3), D(4), D(4));
    assert_one_error(&t, "conv2d: output height would be 0: input [3, 4, 4], kernel 5, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv2d", "8 (1,3) dilation=(1,4)", NULL, 3, D(3), D(4), D(6));
    assert_one_error(&t, "conv2d: output width would be -2: input [3, 4, 6], kernel 3, stride 1, pad 0, dilation 4",
                     layer_span(0));
    tn_fini(&t);
    /* a true floor: floor((2 - 4 - 1) / 2) + 1 = -1, where truncation would give 0 */
    one_layer(&t, "conv1d", "2 5 stride=2", NULL, 2, D(1), D(2));
    assert_one_error(&t, "conv1d: output length would be -1: input [1, 2], kernel 5, stride 2, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
}

Test(errors, several_in_one_run)
{
    tnet t;
    tn_init(&t, "two");
    int x = tn_input(&t, "x", 3, D(3), D(8), D(8));
    int a = tn_layer(&t, "maxpool", "16", 1, x);          /* error 1 */
    int a2 = tn_layer(&t, "conv2d", "4 3", 1, a);         /* reads a failed tensor: silent */
    int a3 = tn_layer(&t, "relu", "", 1, a2);
    int b = tn_layer(&t, "conv2d", "8 3 groups=2", 1, x); /* error 2, at groups */
    int c = tn_layer(&t, "conv2d", "8 3", 1, x);          /* fine */
    int d = tn_layer(&t, "flatten", "", 1, c);
    int e = tn_layer(&t, "conv2d", "2 3", 1, d);          /* error 3: rank */
    tn_output(&t, "a", a3);
    tn_output(&t, "b", b);
    tn_output(&t, "e", e);
    cr_assert_null(tn_build(&t));
    cr_assert_eq(t.diags.errors, 3);
    cr_assert_str_eq(t.diags.items[0].message,
                     "maxpool: output height would be 0: input [3, 8, 8], size 16, stride 16, pad 0");
    cr_assert_eq(t.diags.items[0].span.line, 1);
    cr_assert_str_eq(t.diags.items[1].message, "conv2d: input channels 3 are not divisible by groups 2");
    cr_assert_eq(t.diags.items[1].span.line, arg_span(3, 5).line);
    cr_assert_eq(t.diags.items[1].span.col, arg_span(3, 5).col);
    cr_assert_str_eq(t.diags.items[2].message, "conv2d expects a [C, H, W] input, got [288]");
    cr_assert_eq(t.diags.items[2].span.line, 7);
    tn_fini(&t);
}

Test(errors, bad_input_and_missing_argument)
{
    tnet t;
    tn_init(&t, "bad");
    int x = tn_input(&t, "x", 3, D(3), D(0), D(8));
    tn_output(&t, "y", tn_layer(&t, "relu", "", 1, x));
    cr_assert_null(tn_build(&t));
    cr_assert_eq(t.diags.errors, 1);
    cr_assert_str_eq(t.diags.items[0].message, "input 'x' has an invalid shape [3, 0, 8]");
    tn_fini(&t);

    tn_init(&t, "missing");
    x = tn_input(&t, "x", 1, D(8));
    int y = tn_layer(&t, "dense", "", 1, x);
    t.layers[0].args[0].present = false;
    tn_output(&t, "y", y);
    cr_assert_null(tn_build(&t));
    assert_one_error(&t, "dense: missing argument 'units'", layer_span(0));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- whole networks */

static void build_lenet5(tnet *t)
{
    tn_init(t, "lenet5");
    int h = tn_input(t, "image", 3, D(1), D(28), D(28));
    h = tn_layer(t, "conv2d", "6 5 pad=2", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "maxpool", "2", 1, h);
    h = tn_layer(t, "conv2d", "16 5", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "maxpool", "2", 1, h);
    h = tn_layer(t, "flatten", "", 1, h);
    h = tn_layer(t, "dense", "120", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "dense", "84", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "dense", "10", 1, h);
    tn_output(t, "logits", h);
}

Test(network, lenet5_counts)
{
    tnet t;
    build_lenet5(&t);
    cr_assert_not_null(tn_build(&t));
    cr_assert_eq(t.g->nnodes, 12);
    cr_assert_eq(t.g->ninputs, 1);
    cr_assert_eq(t.g->noutputs, 1);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    cr_assert_str_eq(t.g->output_names[0], "logits");
    cr_assert_str_eq(t.g->name, "lenet5");
    cr_assert_eq(t.g->loss, -1);
    int64_t params = -1, flops = -1;
    ir_graph_totals(t.g, &params, &flops);
    cr_assert_eq(params, 61706);
    int64_t expect = (2 * 6 * 784 * 25 + 6 * 784) + 6 * 784 + 6 * 196 * 4      /* conv, relu, pool */
                     + (2 * 16 * 100 * 150 + 1600) + 1600 + 400 * 4            /* conv, relu, pool */
                     + 0                                                        /* flatten */
                     + (2 * 120 * 400 + 120) + 120 + (2 * 84 * 120 + 84) + 84 + (2 * 10 * 84 + 10);
    cr_assert_eq(flops, expect);
    int64_t sum = 0;
    for (int n = 0; n < t.g->nnodes; n++)
        sum += ir_node_params(t.g, n);
    cr_assert_eq(sum, 61706);
    /* dead nodes do not count */
    t.g->nodes[11].dead = true;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 61706 - 850);
    tn_fini(&t);
}

/* A basic residual block with batchnorm, as in ResNet: counts and the add. */
Test(network, residual_block)
{
    tnet t;
    tn_init(&t, "res");
    int x = tn_input(&t, "x", 3, D(16), D(32), D(32));
    int h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false", 1, x);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, h);
    h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false name=\"second\"", 1, h);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "add", "", 2, h, x);
    h = tn_layer(&t, "relu", "", 1, h);
    tn_output(&t, "y", h);
    cr_assert_not_null(tn_build(&t));
    cr_assert_not_null(tn_named(&t, "second.weight"));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 2 * (16 * 16 * 9) + 2 * 32);
    int states = 0;
    for (int v = 0; v < t.g->nvals; v++)
        states += t.g->vals[v].kind == IR_VAL_STATE;
    cr_assert_eq(states, 4);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[16, 32, 32]");
    tn_fini(&t);
}

/* The examples' blocks, expanded by hand as lang/sema.c would. */
static int res_basic(tnet *t, int x, int c)
{
    char a[64];
    snprintf(a, sizeof a, "%d 3 pad=1 bias=false", c);
    int y = tn_layer(t, "conv2d", a, 1, x);
    y = tn_layer(t, "batchnorm", "", 1, y);
    y = tn_layer(t, "relu", "", 1, y);
    y = tn_layer(t, "conv2d", a, 1, y);
    y = tn_layer(t, "batchnorm", "", 1, y);
    return tn_layer(t, "relu", "", 1, tn_layer(t, "add", "", 2, y, x));
}

static int res_down(tnet *t, int x, int c)
{
    char a[64];
    snprintf(a, sizeof a, "%d 3 stride=2 pad=1 bias=false", c);
    int y = tn_layer(t, "conv2d", a, 1, x);
    y = tn_layer(t, "batchnorm", "", 1, y);
    y = tn_layer(t, "relu", "", 1, y);
    snprintf(a, sizeof a, "%d 3 pad=1 bias=false", c);
    y = tn_layer(t, "conv2d", a, 1, y);
    y = tn_layer(t, "batchnorm", "", 1, y);
    snprintf(a, sizeof a, "%d 1 stride=2 bias=false", c);
    int s = tn_layer(t, "conv2d", a, 1, x);
    s = tn_layer(t, "batchnorm", "", 1, s);
    return tn_layer(t, "relu", "", 1, tn_layer(t, "add", "", 2, y, s));
}

Test(network, resnet20_by_hand)
{
    tnet t;
    tn_init(&t, "resnet20");
    int h = tn_input(&t, "image", 3, D(3), D(32), D(32));
    h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false", 1, h);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, h);
    for (int k = 0; k < 3; k++)
        h = res_basic(&t, h, 16);
    h = res_down(&t, h, 32);
    for (int k = 0; k < 2; k++)
        h = res_basic(&t, h, 32);
    h = res_down(&t, h, 64);
    for (int k = 0; k < 2; k++)
        h = res_basic(&t, h, 64);
    h = tn_layer(&t, "global_avgpool", "", 1, h);
    h = tn_layer(&t, "dense", "10", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t), "%s", t.diags.count ? t.diags.items[0].message : "");
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 272474);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    tn_fini(&t);
}

Test(network, vgg_small_by_hand)
{
    tnet t;
    tn_init(&t, "vgg_small");
    int h = tn_input(&t, "image", 3, D(3), D(32), D(32));
    const int widths[3] = {64, 128, 256};
    for (int s = 0; s < 3; s++) {
        char a[32];
        snprintf(a, sizeof a, "%d 3 pad=1", widths[s]);
        for (int k = 0; k < 2; k++)
            h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv2d", a, 1, h));
        h = tn_layer(&t, "maxpool", "2", 1, h);
    }
    h = tn_layer(&t, "flatten", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "dense", "256", 1, h));
    h = tn_layer(&t, "dense", "10", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 2196810);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    tn_fini(&t);
}

Test(network, signal1d_by_hand)
{
    tnet t;
    tn_init(&t, "signal1d");
    int h = tn_input(&t, "signal", 2, D(1), D(128));
    h = tn_layer(&t, "maxpool", "2", 1, tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "16 5 pad=2", 1, h)));
    h = tn_layer(&t, "maxpool", "2", 1, tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "32 5 pad=2", 1, h)));
    h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "64 3 pad=1", 1, h));
    assert_shape(&t.net.inputs[0], "[1, 128]");
    h = tn_layer(&t, "global_avgpool", "", 1, h);
    h = tn_layer(&t, "dense", "4", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 9156);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[4]");
    tn_fini(&t);
}

/* ---------------------------------------------------------------- dumps */

Test(dump, text)
{
    tnet t;
    tn_init(&t, "tiny");
    int x = tn_input(&t, "image", 3, D(1), D(8), D(8));
    int h = tn_layer(&t, "conv2d", "4 3 pad=1", 1, x);
    h = tn_layer(&t, "relu", "", 1, h);
    h = tn_layer(&t, "maxpool", "3 stride=2", 1, h);
    h = tn_layer(&t, "dense", "10 bias=false", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    char *s = ir_graph_dump_text(t.g);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "network tiny\n"
                        "  input image [1, 8, 8]\n"
                        "  conv2d_1: conv2d 4x3x3 (image, conv2d_1.weight, conv2d_1.bias) -> [4, 8, 8]\n"
                        "  relu_2: relu (conv2d_1) -> [4, 8, 8]\n"
                        "  maxpool_3: maxpool 3x3/2 (relu_2) -> [4, 3, 3]\n"
                        "  dense_4: dense 10 (maxpool_3, dense_4.weight) -> [10]\n"
                        "  output logits = dense_4 [10]\n");
    free(s);
    t.g->nodes[1].dead = true;
    snprintf(t.g->nodes[0].fused, OP_NAME_MAX, "relu_2");
    t.g->nodes[0].attrs.conv.act = OP_ACT_RELU;
    s = ir_graph_dump_text(t.g);
    cr_assert_not_null(strstr(s, "  conv2d_1: conv2d 4x3x3 +relu (image, conv2d_1.weight, conv2d_1.bias) -> "
                                 "[4, 8, 8]  [fused: relu_2]\n"));
    cr_assert_null(strstr(s, "relu_2: relu"));
    free(s);
    tn_fini(&t);
}

Test(dump, dot)
{
    tnet t;
    build_lenet5(&t);
    cr_assert_not_null(tn_build(&t));
    char *s = ir_graph_dump_dot(t.g);
    cr_assert_not_null(s);
    cr_assert(strncmp(s, "digraph \"lenet5\" {\n", 19) == 0, "%s", s);
    cr_assert_not_null(strstr(s, "  v0 [shape=ellipse, label=\"image\\n[1,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n0 [label=\"conv2d_1\\nconv2d 6x5x5\\n[6,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n2 [label=\"maxpool_3\\nmaxpool 2x2\\n[6,14,14]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n7 [label=\"dense_8\\ndense 120\\n[120]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n1 [label=\"relu_2\\nrelu\\n[6,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  v0 -> n0;\n"));
    cr_assert_not_null(strstr(s, "  n0 -> n1;\n"));
    cr_assert_not_null(strstr(s, "  n10 -> n11;\n"));
    cr_assert_not_null(strstr(s, "  out0 [shape=ellipse, label=\"logits\\n[10]\"];\n  n11 -> out0;\n"));
    cr_assert_null(strstr(s, "weight"), "parameters are not drawn");
    size_t len = strlen(s);
    cr_assert_str_eq(s + len - 2, "}\n");
    free(s);
    tn_fini(&t);
}

Test(dump, summaries)
{
    tnet t;
    tn_init(&t, "sum");
    int x = tn_input(&t, "x", 2, D(4), D(64));
    int a = tn_layer(&t, "conv1d", "8 5 stride=2 dilation=2 groups=2", 1, x);
    int b = tn_layer(&t, "avgpool", "2 pad=1", 1, a);
    int c = tn_layer(&t, "dropout", "0.25", 1, b);
    int d = tn_layer(&t, "leaky_relu", "alpha=0.2", 1, c);
    tn_output(&t, "y", d);
    cr_assert_not_null(tn_build(&t));
    char buf[128];
    cr_assert_str_eq(ir_node_summary(tn_node(&t, a), buf, sizeof buf), "8x5 stride 2 dilation 2 groups 2");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, b), buf, sizeof buf), "2 pad 1");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, c), buf, sizeof buf), "p=0.25");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, d), buf, sizeof buf), "alpha=0.2");
    tn_fini(&t);
}
