/* Semantic analysis (spec sections 4 to 7): from the syntax tree to lang_program.
 *
 * 1. Items: networks, blocks and train sections are collected; names defined twice are
 *    reported.
 * 2. Resolution, a static pass over every network and block: names bound once, no name read
 *    before it is bound, unknown names and layers (with "did you mean"), 'in' only in
 *    blocks, input/output/return where they belong.  It also records which blocks each
 *    block uses, and recursion among blocks is found on that graph.
 * 3. Expansion of each network: expressions are evaluated to values (int, float, string,
 *    bool, tuple of ints, tensor, layer); a layer is a tree of layer applications, blocks,
 *    compositions and repetitions, and applying one to a tensor appends layer applications
 *    to the network, each named <op>_<k> in expansion order (a name= argument takes the
 *    name instead, and still counts).  Layer arguments are checked against the registry's
 *    schemas (ops/registry.h) and their defaults filled in.
 * 4. Train sections are checked and their settings filled in with spec section 7's
 *    defaults.
 * Finally this front end's diagnostics are put in source order, repeats (one block expanded
 * many times) dropped, and their number capped.
 *
 * Blocks are expanded inline at each use, so errors inside a block body show at the body,
 * once.  Expansion is bounded (layers, steps, nesting) so no input can exhaust memory, time
 * or the stack.
 *
 * This file holds step 1, the entry point and the final diagnostics, and the helpers the
 * steps share (lang/sema_int.h); step 2 is lang/sema_resolve.c, step 3 lang/sema_eval.c
 * with call arguments bound by lang/sema_args.c, step 4 lang/sema_train.c. */
#include "lang/lang.h"
#include "lang/suggest.h"
#include "ops/mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/ast.h"
#include "lang/sema_int.h"

/* ---------------------------------------------------------------- diagnostics */

bool sema_span_equal(lang_span a, lang_span b)
{
    return a.line == b.line && a.col == b.col && a.end_line == b.end_line && a.end_col == b.end_col;
}

void sema_error(sema *s, lang_span sp, const char *fmt, ...)
{
    diag_list *d = s->diags;
    if (d->count - s->diag_start >= MAX_COLLECTED) {
        d->errors++;
        s->dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = cnn_mem_vasprintf(fmt, ap);
    va_end(ap);
    if (!msg) {
        s->oom = true;
        return;
    }
    for (int i = s->diag_start; i < d->count; i++)
        if (d->items[i].message && sema_span_equal(d->items[i].span, sp) && strcmp(d->items[i].message, msg) == 0) {
            cnn_mem_free(msg);
            return;
        }
    diag_add(d, DIAG_ERROR, sp, "%s", msg);
    cnn_mem_free(msg);
}

static int diag_cmp(const void *pa, const void *pb)
{
    const diag *a = pa, *b = pb;
    if (a->span.line != b->span.line)
        return a->span.line < b->span.line ? -1 : 1;
    if (a->span.col != b->span.col)
        return a->span.col < b->span.col ? -1 : 1;
    return 0;
}

/* Source order (stable: insertion order breaks ties), then at most MAX_ERRORS shown. */
static void finish_diags(sema *s)
{
    diag_list *d = s->diags;
    int n = d->count - s->diag_start;
    if (n <= 1)
        return;
    diag *items = d->items + s->diag_start;
    /* insertion sort: stable, and n is at most MAX_COLLECTED plus the parser's errors */
    for (int i = 1; i < n; i++) {
        diag x = items[i];
        int j = i;
        while (j > 0 && diag_cmp(&items[j - 1], &x) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = x;
    }
    if (n > MAX_ERRORS) {
        for (int i = MAX_ERRORS; i < n; i++)
            cnn_mem_free(items[i].message);
        d->count = s->diag_start + MAX_ERRORS;
        diag_add(d, DIAG_NOTE, (lang_span){0, 0, 0, 0}, "too many errors; %d more not shown",
                 n - MAX_ERRORS + s->dropped);
    }
}

/* ---------------------------------------------------------------- "did you mean" */

void sema_suggest_init(suggestion *g, const char *name)
{
    int len = (int)strlen(name);
    g->name = name;
    g->best = NULL;
    /* one edit per three characters, at least one and at most two; a one-letter name only
     * matches another case */
    g->limit = len < 2 ? 0 : len / 3 < 1 ? 1 : len / 3 > 2 ? 2 : len / 3;
    g->dist = g->limit + 1;
    g->text[0] = '\0';
}

void sema_suggest_try(suggestion *g, const char *candidate)
{
    if (!candidate || strcmp(candidate, g->name) == 0)
        return;
    int d = lang_edit_distance(g->name, candidate, g->limit);
    if (d < g->dist) {
        g->dist = d;
        g->best = candidate;
    }
}

const char *sema_suggest_text(suggestion *g)
{
    if (g->best && strlen(g->best) < 100)
        snprintf(g->text, sizeof g->text, "; did you mean '%s'?", g->best);
    return g->text;
}

/* ---------------------------------------------------------------- small helpers */

void *sema_alloc(sema *s, size_t n)
{
    void *p = lang_ast_arena_alloc(s->arena, n);
    if (!p)
        s->oom = true;
    return p;
}

bool sema_grow(sema *s, void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int cap2 = *cap ? *cap : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *q = cnn_mem_realloc(*p, (size_t)cap2 * elem);
    if (!q) {
        s->oom = true;
        return false;
    }
    *p = q;
    *cap = cap2;
    return true;
}

const binding *sema_scope_find(const scope *sc, const char *name)
{
    for (int i = sc->n - 1; i >= 0; i--)
        if (strcmp(sc->b[i].name, name) == 0)
            return &sc->b[i];
    return NULL;
}

void sema_scope_add(sema *s, scope *sc, const char *name, value v)
{
    if (sema_scope_find(sc, name) || sema_find_block(s, name) || op_def_find_layer(name))
        return;
    if (!sema_grow(s, (void **)&sc->b, &sc->cap, sc->n + 1, sizeof *sc->b))
        return;
    sc->b[sc->n++] = (binding){name, v};
}

void sema_scope_free(scope *sc)
{
    cnn_mem_free(sc->b);
    sc->b = NULL;
    sc->n = sc->cap = 0;
}

block_def *sema_find_block(const sema *s, const char *name)
{
    for (int i = 0; i < s->nblocks; i++)
        if (s->blocks[i].valid && strcmp(s->blocks[i].item->name, name) == 0)
            return &s->blocks[i];
    return NULL;
}

const char *sema_type_name(vtype t)
{
    switch (t) {
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STRING: return "string";
    case V_BOOL: return "bool";
    case V_TUPLE: return "tuple";
    case V_TENSOR: return "tensor";
    case V_LAYER: return "layer";
    case V_ERROR: break;
    }
    return "error";
}

static void format_float(double f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%g", f);
    if (!strpbrk(buf, ".eEni"))
        snprintf(buf + strlen(buf), cap - strlen(buf), ".0");
}

const char *sema_describe(const value *v, char *buf, size_t cap)
{
    switch (v->t) {
    case V_INT: snprintf(buf, cap, "%" PRId64, v->i); break;
    case V_FLOAT: format_float(v->f, buf, cap); break;
    case V_STRING:
        if (strlen(v->s) > 40)
            snprintf(buf, cap, "\"%.40s...\"", v->s);
        else
            snprintf(buf, cap, "\"%s\"", v->s);
        break;
    case V_BOOL: snprintf(buf, cap, "%s", v->b ? "true" : "false"); break;
    case V_TUPLE: {
        size_t len = 0;
        buf[0] = '\0';
        for (int k = 0; k < v->n && k < TUPLE_MAX && len + 24 < cap; k++)
            len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, k ? ", " : "(", v->tup[k]);
        snprintf(buf + len, cap - len, "%s)", v->n > TUPLE_MAX ? ", ..." : "");
        break;
    }
    case V_TENSOR: snprintf(buf, cap, "a tensor"); break;
    case V_LAYER: snprintf(buf, cap, "a layer"); break;
    case V_ERROR: snprintf(buf, cap, "an error"); break;
    }
    return buf;
}

value sema_err_value(lang_span sp)
{
    value v;
    memset(&v, 0, sizeof v);
    v.t = V_ERROR;
    v.span = sp;
    return v;
}

/* ================================================================ the whole file */

static void collect_blocks(sema *s)
{
    int n = 0;
    for (const ast_item *it = s->items; it; it = it->next)
        if (it->kind == AST_BLOCK)
            n++;
    if (n == 0)
        return;
    s->blocks = cnn_mem_calloc((size_t)n, sizeof *s->blocks);
    if (!s->blocks) {
        s->oom = true;
        return;
    }
    for (const ast_item *it = s->items; it; it = it->next) {
        if (it->kind != AST_BLOCK)
            continue;
        block_def *b = &s->blocks[s->nblocks];
        b->item = it;
        if (op_def_find_layer(it->name) || strcmp(it->name, "add") == 0)
            sema_error(s, it->name_span, "block '%s' has the name of a built-in layer", it->name);
        else if (sema_find_block(s, it->name))
            sema_error(s, it->name_span, "block '%s' is already defined", it->name);
        else
            b->valid = true;
        s->nblocks++;
    }
}

static void free_blocks(sema *s)
{
    for (int i = 0; i < s->nblocks; i++)
        cnn_mem_free(s->blocks[i].calls);
    cnn_mem_free(s->blocks);
    s->blocks = NULL;
    s->nblocks = 0;
}

void lang_program_free(lang_program *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nnetworks; i++)
        cnn_mem_free(p->networks[i].layers);
    cnn_mem_free(p->networks);
    cnn_mem_free(p);
}

const lang_network *lang_program_network(const lang_program *p, const char *name)
{
    if (!p)
        return NULL;
    if (!name)
        return p->nnetworks == 1 ? &p->networks[0] : NULL;
    for (int i = 0; i < p->nnetworks; i++)
        if (strcmp(p->networks[i].name, name) == 0)
            return &p->networks[i];
    return NULL;
}

lang_program *lang_compile(const char *source, size_t len, diag_list *diags)
{
    lang_program *prog = cnn_mem_calloc(1, sizeof *prog);
    ast_arena *tree = lang_ast_arena_create();
    sema s = {.diags = diags, .diag_start = diags->count};
    s.arena = lang_ast_arena_create();
    ast_item *items = NULL;
    if (!source)
        len = 0;
    /* a UTF-8 byte-order mark is no part of the text: skipped, and columns of line 1 count from
     * after it (lang/diag.c skips it too when quoting the line) */
    if (len >= 3 && memcmp(source, "\xef\xbb\xbf", 3) == 0)
        source += 3, len -= 3;
    if (!prog || !tree || !s.arena || lang_parse(source, len, tree, diags, &items) != 0) {
        s.oom = true;
        goto out;
    }
    s.items = items;

    collect_blocks(&s);
    for (int i = 0; i < s.nblocks; i++)
        sema_resolve_block(&s, &s.blocks[i]);
    sema_find_recursion(&s);

    int nnet = 0;
    for (const ast_item *it = items; it; it = it->next)
        if (it->kind == AST_NETWORK)
            nnet++;
    if (nnet > 0) {
        prog->networks = cnn_mem_calloc((size_t)nnet, sizeof *prog->networks);
        if (!prog->networks) {
            s.oom = true;
            goto out;
        }
    }
    for (const ast_item *it = items; it && !s.oom; it = it->next) {
        if (it->kind != AST_NETWORK)
            continue;
        bool dup = false;
        for (const ast_item *o = items; o != it; o = o->next)
            if (o->kind == AST_NETWORK && strcmp(o->name, it->name) == 0)
                dup = true;
        if (dup) {
            sema_error(&s, it->name_span, "network '%s' is already defined", it->name);
            continue;
        }
        sema_resolve_network(&s, it);
        lang_network *net = &prog->networks[prog->nnetworks++];
        net->train = sema_train_defaults();
        sema_expand_network(&s, it, net);
    }
    for (const ast_item *it = items; it && !s.oom; it = it->next)
        if (it->kind == AST_TRAIN)
            sema_check_train(&s, it, prog);

out:
    finish_diags(&s);
    free_blocks(&s);
    lang_ast_arena_destroy(s.arena);
    lang_ast_arena_destroy(tree);
    if (s.oom) {
        lang_program_free(prog);
        return NULL;
    }
    return prog;
}
