/* Shared helpers of the lang suite (test_lang*.c): compiling a source and looking into the
 * networks it expands to, reading the examples, the invariants every network keeps, and the
 * golden-diagnostics check with its GOLDEN test macro. */
#ifndef CNN_TESTS_LANG_UTIL_H
#define CNN_TESTS_LANG_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/file_util.h"
#include "lang/lang.h"

/* ---------------------------------------------------------------- helpers */

typedef struct compiled {
    char *src;
    size_t len;
    diag_list d;
    lang_program *p;
    char *text;   /* rendered diagnostics */
} compiled;

static inline compiled *compile_n(const char *src, size_t len)
{
    compiled *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->src = malloc(len ? len : 1);
    cr_assert_not_null(c->src);
    memcpy(c->src, src, len);
    c->len = len;
    diag_init(&c->d, "t.cnn", c->src, len);
    c->p = lang_compile(c->src, len, &c->d);
    cr_assert_not_null(c->p, "lang_compile returned NULL");
    c->text = diag_render(&c->d);
    cr_assert_not_null(c->text);
    return c;
}

static inline compiled *compile(const char *src)
{
    return compile_n(src, strlen(src));
}

static inline void compiled_free(compiled *c)
{
    lang_program_free(c->p);
    diag_free(&c->d);
    free(c->text);
    free(c->src);
    free(c);
}

/* The only network of a source that must compile without a diagnostic. */
static inline const lang_network *only_network(const compiled *c)
{
    cr_assert_eq(c->d.count, 0, "unexpected diagnostics:\n%s", c->text);
    const lang_network *n = lang_program_network(c->p, NULL);
    cr_assert_not_null(n);
    return n;
}

static const char *const example_names[] = {
    "alexnet", "lenet5", "resnet18", "resnet20", "signal1d", "vgg16", "vgg_small",
};
#define NEXAMPLES (sizeof example_names / sizeof example_names[0])

static inline char *read_example(const char *name, size_t *len)
{
    const char *dir = getenv("CNN_EXAMPLES");
    cr_assert_not_null(dir, "CNN_EXAMPLES is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.cnn", dir, name);
    return test_read_file(path, len);
}

static inline compiled *compile_example(const char *name)
{
    size_t len;
    char *src = read_example(name, &len);
    compiled *c = compile_n(src, len);
    free(src);
    return c;
}

static inline int count_op(const lang_network *n, op_kind op)
{
    int k = 0;
    for (int i = 0; i < n->nlayers; i++)
        k += n->layers[i].op->op == op;
    return k;
}

static inline const lang_layer *layer_named(const lang_network *n, const char *name)
{
    for (int i = 0; i < n->nlayers; i++)
        if (strcmp(n->layers[i].name, name) == 0)
            return &n->layers[i];
    cr_assert_fail("no layer named %s", name);
    return NULL;
}

static inline int layer_index(const lang_network *n, const char *name)
{
    return (int)(layer_named(n, name) - n->layers);
}

/* The tensor a layer makes. */
static inline int tensor_of(const lang_network *n, const char *name)
{
    return n->ninputs + layer_index(n, name);
}

static inline const op_argval *arg(const lang_layer *L, const char *name)
{
    for (int k = 0; k < L->op->nargs; k++)
        if (strcmp(L->op->args[k].name, name) == 0)
            return &L->args[k];
    cr_assert_fail("%s has no argument %s", L->op->name, name);
    return NULL;
}

/* Where argument `name` of L was written (the call's span for a default). */
static inline lang_span arg_span(const lang_layer *L, const char *name)
{
    for (int k = 0; k < L->op->nargs; k++)
        if (strcmp(L->op->args[k].name, name) == 0)
            return L->arg_spans[k];
    cr_assert_fail("%s has no argument %s", L->op->name, name);
    return L->span;
}

static inline bool span_is(lang_span s, int line, int col, int end_line, int end_col)
{
    return s.line == line && s.col == col && s.end_line == end_line && s.end_col == end_col;
}

/* The invariants of lang.h that every compiled network keeps. */
static inline void check_network_invariants(const lang_network *n)
{
    cr_assert(n->ninputs >= 0 && n->ninputs <= 16);
    cr_assert(n->noutputs >= 0 && n->noutputs <= 16);
    cr_assert(n->nlayers >= 0);
    for (int i = 0; i < n->ninputs; i++) {
        cr_assert(n->inputs[i].shape.rank >= 1 && n->inputs[i].shape.rank <= 3);
        for (int d = 0; d < n->inputs[i].shape.rank; d++)
            cr_assert_gt(n->inputs[i].shape.d[d], 0);
    }
    for (int k = 0; k < n->nlayers; k++) {
        const lang_layer *L = &n->layers[k];
        cr_assert_not_null(L->op);
        cr_assert(L->op->is_layer);
        cr_assert(L->name[0] != '\0');
        cr_assert(L->ninputs >= L->op->min_inputs && L->ninputs <= L->op->max_inputs);
        for (int i = 0; i < L->ninputs; i++)
            cr_assert(L->inputs[i] >= 0 && L->inputs[i] < n->ninputs + k, "layer %s reads tensor %d", L->name,
                      L->inputs[i]);
    }
    for (int i = 0; i < n->noutputs; i++)
        cr_assert(n->outputs[i].tensor >= 0 && n->outputs[i].tensor < n->ninputs + n->nlayers);
}

/* ---------------------------------------------------------------- golden diagnostics */

/* Compiles the len bytes at src and checks the rendered diagnostics. */
static inline void expect_diags(const char *src, size_t len, const char *expected)
{
    /* a copy of exactly len bytes, so that nothing reads past the end */
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, src, len);
    diag_list d;
    diag_init(&d, "t.cnn", copy, len);
    lang_program *p = lang_compile(copy, len, &d);
    cr_assert_not_null(p, "lang_compile returned NULL");
    char *text = diag_render(&d);
    cr_assert_not_null(text);
    cr_expect_gt(d.errors, 0, "no error reported");
    cr_expect_str_eq(text, expected, "diagnostics differ; got:\n%s\nexpected:\n%s", text, expected);
    free(text);
    lang_program_free(p);
    diag_free(&d);
    free(copy);
}

/* sizeof, not strlen: some sources hold a NUL byte */
#define GOLDEN(name, src, expected) \
    Test(lang_diag, name) { expect_diags(src, sizeof(src) - 1, expected); }

#endif
