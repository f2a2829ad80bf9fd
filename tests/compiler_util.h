/* The compiler suite's hand-made networks: lang_network structs filled by the tests (arguments
 * parsed from text against the registry's schemas), built with ir_build, and helpers to look at
 * the result.  Shared by tests/test_compiler*.c. */
#ifndef CNN_TESTS_COMPILER_UTIL_H
#define CNN_TESTS_COMPILER_UTIL_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/build.h"
#include "compiler/ir.h"
#include "lang/diag.h"
#include "lang/lang.h"
#include "ops/registry.h"

/* ---------------------------------------------------------------- a hand-made network */

#define TN_MAX_LAYERS 512

typedef struct tnet {
    lang_network net;
    lang_layer *layers; /* TN_MAX_LAYERS */
    diag_list diags;
    ir_graph *g;
} tnet;

static inline lang_span mkspan(int line, int col, int len)
{
    lang_span s = {line, col, line, col + len};
    return s;
}

/* The span given to argument a of layer k when written in the "source". */
static inline lang_span arg_span(int k, int a)
{
    return mkspan(k + 1, 20 + 6 * a, 3);
}

static inline lang_span layer_span(int k)
{
    return mkspan(k + 1, 5, 12);
}

static inline void tn_init(tnet *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->net.name, sizeof t->net.name, "%s", name);
    t->layers = calloc(TN_MAX_LAYERS, sizeof *t->layers);
    cr_assert_not_null(t->layers);
    t->net.layers = t->layers;
    diag_init(&t->diags, "test.cnn", NULL, 0);
}

static inline void tn_fini(tnet *t)
{
    ir_graph_destroy(t->g);
    t->g = NULL;
    free(t->layers);
    t->layers = NULL;
    diag_free(&t->diags);
}

/* Adds an input of the given rank and dims; returns its tensor id. */
static inline int tn_input(tnet *t, const char *name, int rank, ...)
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
static inline void parse_value(const op_argspec *spec, const char *text, op_argval *v)
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
static inline int tn_layer(tnet *t, const char *opname, const char *args, int nin, ...)
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

static inline void tn_output(tnet *t, const char *name, int tensor)
{
    lang_output *o = &t->net.outputs[t->net.noutputs++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->tensor = tensor;
}

static inline ir_graph *tn_build(tnet *t)
{
    t->g = ir_build(&t->net, &t->diags);
    return t->g;
}

/* The value made for tensor id `tensor` (a layer's output): found by the layer's name. */
static inline const ir_value *tn_val(const tnet *t, int tensor)
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

static inline const ir_node *tn_node(const tnet *t, int tensor)
{
    const ir_value *v = tn_val(t, tensor);
    cr_assert(v->producer >= 0);
    return &t->g->nodes[v->producer];
}

static inline int tn_node_index(const tnet *t, int tensor)
{
    return tn_val(t, tensor)->producer;
}

static inline const ir_value *tn_named(const tnet *t, const char *name)
{
    for (int v = 0; v < t->g->nvals; v++)
        if (strcmp(t->g->vals[v].name, name) == 0)
            return &t->g->vals[v];
    return NULL;
}

/* S()'s rotating buffers: one copy per translation unit that uses them */
static char shbuf[8][128] __attribute__((unused));
static int shnext __attribute__((unused));
static inline const char *S(const op_shape *s)
{
    char *b = shbuf[shnext++ % 8];
    return op_shape_str(s, b, 128);
}

#define assert_shape(val, text) cr_assert_str_eq(S(&(val)->shape), (text))

/* Builds a one-layer network on an input of the given shape and checks the output shape. */
static inline void one_layer(tnet *t, const char *op, const char *args, const char *expect, int rank, ...)
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
static inline void assert_one_error(const tnet *t, const char *msg, lang_span where)
{
    cr_assert_null(t->g);
    cr_assert_eq(t->diags.errors, 1, "errors: %d (first: %s)", t->diags.errors,
                 t->diags.count ? t->diags.items[0].message : "");
    cr_assert_str_eq(t->diags.items[0].message, msg);
    cr_assert_eq(t->diags.items[0].span.line, where.line);
    cr_assert_eq(t->diags.items[0].span.col, where.col);
}

#endif
