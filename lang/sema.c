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
 *    schemas (compiler/registry.h) and their defaults filled in.
 * 4. Train sections are checked and their settings filled in with spec section 7's
 *    defaults.
 * Finally this front end's diagnostics are put in source order, repeats (one block expanded
 * many times) dropped, and their number capped.
 *
 * Blocks are expanded inline at each use, so errors inside a block body show at the body,
 * once.  Expansion is bounded (layers, steps, nesting) so no input can exhaust memory, time
 * or the stack. */
#include "lang/lang.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/ast.h"

enum {
    MAX_ERRORS = 100,          /* diagnostics shown; a note counts the rest */
    MAX_COLLECTED = 1000,      /* diagnostics kept before sorting */
    MAX_LAYERS = 10000,        /* layers in one network */
    MAX_STEPS = 1000000,       /* layer applications and block expansions in one network */
    MAX_BLOCK_DEPTH = 100,     /* blocks within blocks */
    MAX_DEPTH = 1000,          /* evaluation recursion, blocks included */
    MAX_LAYER_NAME = 64,       /* a name= argument (room for ".running_mean" after it) */
    TUPLE_MAX = 8,             /* tuple items kept (longer ones are errors anyway) */
    MAX_IO = 16,               /* inputs and outputs of a network (lang.h's arrays) */
};

/* ---------------------------------------------------------------- values */

typedef enum vtype { V_ERROR, V_INT, V_FLOAT, V_STRING, V_BOOL, V_TUPLE, V_TENSOR, V_LAYER } vtype;

typedef struct layer_val layer_val;
typedef struct block_def block_def;

/* A compile-time value.  V_ERROR stands for something already reported: it propagates
 * without further messages. */
typedef struct value {
    vtype t;
    lang_span span;
    int64_t i;                  /* V_INT; V_TENSOR: the tensor id */
    double f;                   /* V_FLOAT */
    bool b;                     /* V_BOOL */
    const char *s;              /* V_STRING */
    int n;                      /* V_TUPLE: number of items */
    int64_t tup[TUPLE_MAX];
    const layer_val *layer;     /* V_LAYER */
} value;

typedef enum lv_kind { LV_OP, LV_BLOCK, LV_SEQ, LV_REPEAT } lv_kind;

/* A layer: what `t -> L` applies to t. */
struct layer_val {
    lv_kind kind;
    lang_span span;             /* the call (LV_OP, LV_BLOCK) */
    const op_def *op;         /* LV_OP */
    const op_argval *args;      /* LV_OP: op->nargs checked values */
    const lang_span *arg_spans; /* LV_OP: where each was written (the call for defaults) */
    const block_def *block;     /* LV_BLOCK */
    const value *params;        /* LV_BLOCK: one per block parameter */
    const layer_val *a, *b;     /* LV_SEQ: a then b; LV_REPEAT: a, count times */
    int64_t count;
};

typedef struct binding {
    const char *name;
    value v;
} binding;

typedef struct scope {
    binding *b;
    int n, cap;
} scope;

typedef struct block_call {
    int callee;
    lang_span at;
} block_call;

struct block_def {
    const ast_item *item;
    bool valid;                 /* the first definition under a name that is not a layer's */
    bool returns;               /* ends with its one return */
    bool recursive;
    block_call *calls;          /* the blocks its body uses, each once */
    int ncalls, capcalls;
};

typedef struct sema {
    diag_list *diags;
    int diag_start;             /* this front end's diagnostics start here */
    ast_arena *arena;           /* layer values and their arguments */
    bool oom;
    const ast_item *items;
    block_def *blocks;
    int nblocks;
    /* the network being expanded */
    lang_network *net;
    int cap_layers;
    int counters[OP_COUNT];
    long steps;
    bool aborted;               /* a limit was hit: everything fails quietly from here */
    int dropped;                /* errors not kept (more than MAX_COLLECTED) */
    int depth, block_depth;
} sema;

/* ---------------------------------------------------------------- diagnostics */

static bool span_equal(lang_span a, lang_span b)
{
    return a.line == b.line && a.col == b.col && a.end_line == b.end_line && a.end_col == b.end_col;
}

/* Reports an error unless the same message at the same place is there already (a block
 * body is checked at each expansion). */
static void sema_error(sema *s, lang_span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sema_error(sema *s, lang_span sp, const char *fmt, ...)
{
    diag_list *d = s->diags;
    if (d->count - s->diag_start >= MAX_COLLECTED) {
        d->errors++;
        s->dropped++;
        return;
    }
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->oom = true;
        return;
    }
    for (int i = s->diag_start; i < d->count; i++)
        if (d->items[i].message && span_equal(d->items[i].span, sp) && strcmp(d->items[i].message, msg) == 0) {
            free(msg);
            return;
        }
    diag_add(d, DIAG_ERROR, sp, "%s", msg);
    free(msg);
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
            free(items[i].message);
        d->count = s->diag_start + MAX_ERRORS;
        diag_add(d, DIAG_NOTE, (lang_span){0, 0, 0, 0}, "too many errors; %d more not shown",
                 n - MAX_ERRORS + s->dropped);
    }
}

/* ---------------------------------------------------------------- "did you mean" */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Optimal string alignment distance (a swap of neighbours counts 1), ignoring case;
 * anything above limit comes back as limit + 1. */
static int edit_distance(const char *a, const char *b, int limit)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (abs(la - lb) > limit)
        return limit + 1;
    if (lb > 64 || la > 64)
        return limit + 1;
    int d[65][65];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]);
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb] > limit ? limit + 1 : d[la][lb];
}

typedef struct suggestion {
    const char *name;
    const char *best;
    int dist, limit;
    char text[128];             /* "; did you mean 'x'?" or "" */
} suggestion;

static void suggest_init(suggestion *g, const char *name)
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

static void suggest_try(suggestion *g, const char *candidate)
{
    if (!candidate || strcmp(candidate, g->name) == 0)
        return;
    int d = edit_distance(g->name, candidate, g->limit);
    if (d < g->dist) {
        g->dist = d;
        g->best = candidate;
    }
}

static const char *suggest_text(suggestion *g)
{
    if (g->best && strlen(g->best) < 100)
        snprintf(g->text, sizeof g->text, "; did you mean '%s'?", g->best);
    return g->text;
}

/* ---------------------------------------------------------------- small helpers */

static void *sema_alloc(sema *s, size_t n)
{
    void *p = lang_ast_arena_alloc(s->arena, n);
    if (!p)
        s->oom = true;
    return p;
}

static bool grow(sema *s, void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return true;
    int cap2 = *cap ? *cap : 8;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, (size_t)cap2 * elem);
    if (!q) {
        s->oom = true;
        return false;
    }
    *p = q;
    *cap = cap2;
    return true;
}

static const binding *scope_find(const scope *sc, const char *name)
{
    for (int i = sc->n - 1; i >= 0; i--)
        if (strcmp(sc->b[i].name, name) == 0)
            return &sc->b[i];
    return NULL;
}

static block_def *find_block(const sema *s, const char *name);

/* Binds name.  A second binding, or one of a block's or layer's name, is ignored:
 * resolution reported it, and the name keeps meaning what it meant there. */
static void scope_add(sema *s, scope *sc, const char *name, value v)
{
    if (scope_find(sc, name) || find_block(s, name) || op_def_find_layer(name))
        return;
    if (!grow(s, (void **)&sc->b, &sc->cap, sc->n + 1, sizeof *sc->b))
        return;
    sc->b[sc->n++] = (binding){name, v};
}

static void scope_free(scope *sc)
{
    free(sc->b);
    sc->b = NULL;
    sc->n = sc->cap = 0;
}

static block_def *find_block(const sema *s, const char *name)
{
    for (int i = 0; i < s->nblocks; i++)
        if (s->blocks[i].valid && strcmp(s->blocks[i].item->name, name) == 0)
            return &s->blocks[i];
    return NULL;
}

/* The span of a statement's leading keyword. */
static lang_span keyword_span(const ast_stmt *st, int len)
{
    return (lang_span){st->span.line, st->span.col, st->span.line, st->span.col + len};
}

/* Copies a name into a fixed buffer, reporting one that does not fit. */
static void copy_name(sema *s, char *dst, const char *name, lang_span sp)
{
    size_t n = strlen(name);
    if (n >= OP_NAME_MAX) {
        sema_error(s, sp, "name '%.20s...' is too long (at most %d characters)", name, OP_NAME_MAX - 1);
        n = OP_NAME_MAX - 1;
    }
    memcpy(dst, name, n);
    dst[n] = '\0';
}

static const char *type_name(vtype t)
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

/* A value as messages show it after "got": 3, 2.5, "same", true, (3, 3), a tensor. */
static const char *describe(const value *v, char *buf, size_t cap)
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

static value err_value(lang_span sp)
{
    value v;
    memset(&v, 0, sizeof v);
    v.t = V_ERROR;
    v.span = sp;
    return v;
}

/* ================================================================ resolution */

typedef struct resolver {
    sema *s;
    const ast_item *item;       /* the network or block */
    block_def *block;           /* the block, when resolving one */
    scope names;                /* names bound so far (values unused) */
    bool in_ok;                 /* 'in' is allowed here */
    const ast_stmt *stmt;       /* the statement being resolved, NULL in parameters */
} resolver;

/* True when the statement being resolved, or one after it, binds name. */
static bool bound_later(const resolver *r, const char *name)
{
    for (const ast_stmt *st = r->stmt; st; st = st->next)
        if (st->kind != AST_STMT_RETURN && strcmp(st->name, name) == 0)
            return true;
    return false;
}

static void add_call(resolver *r, const block_def *callee, lang_span at)
{
    block_def *b = r->block;
    sema *s = r->s;
    if (!b)
        return;
    int idx = (int)(callee - s->blocks);
    for (int i = 0; i < b->ncalls; i++)
        if (b->calls[i].callee == idx)
            return;
    if (!grow(s, (void **)&b->calls, &b->capcalls, b->ncalls + 1, sizeof *b->calls))
        return;
    b->calls[b->ncalls++] = (block_call){idx, at};
}

/* A name read (as_call: called).  layer_pos: it stands where a layer must be (right of
 * '->'), so an unknown one is called an unknown layer. */
static void resolve_name(resolver *r, const char *name, lang_span sp, bool as_call, bool layer_pos)
{
    sema *s = r->s;
    if (scope_find(&r->names, name)) {
        if (as_call)
            sema_error(s, sp, "'%s' is a variable, not a layer or block; it cannot be called", name);
        return;
    }
    const block_def *b = find_block(s, name);
    if (b) {
        add_call(r, b, sp);
        return;
    }
    if (op_def_find_layer(name))
        return;
    if (!as_call && bound_later(r, name)) {
        sema_error(s, sp, "'%s' is used before it is bound", name);
        return;
    }
    if (strcmp(name, "add") == 0) {
        sema_error(s, sp, "unknown layer 'add'; tensors are added with '+'");
        return;
    }
    suggestion g;
    suggest_init(&g, name);
    bool layer = as_call || layer_pos;
    if (!layer)
        for (int i = 0; i < r->names.n; i++)
            suggest_try(&g, r->names.b[i].name);
    for (const char *const *l = op_layer_names(); l && *l; l++)
        suggest_try(&g, *l);
    for (int i = 0; i < s->nblocks; i++)
        if (s->blocks[i].valid)
            suggest_try(&g, s->blocks[i].item->name);
    if (layer)
        for (int i = 0; i < r->names.n; i++)
            suggest_try(&g, r->names.b[i].name);
    sema_error(s, sp, "unknown %s '%s'%s", layer ? "layer" : "name", name, suggest_text(&g));
}

static void resolve_expr(resolver *r, const ast_expr *e, bool layer_pos);

static void resolve_call(resolver *r, const ast_expr *e)
{
    resolve_name(r, e->u.call.name, e->u.call.name_span, true, true);
    bool named = false;
    for (const ast_arg *a = e->u.call.args; a; a = a->next) {
        if (a->name)
            named = true;
        else if (named)
            sema_error(r->s, a->span, "positional argument after named argument");
        resolve_expr(r, a->value, false);
    }
}

static void resolve_expr(resolver *r, const ast_expr *e, bool layer_pos)
{
    while (e) {
        switch (e->kind) {
        case AST_NAME:
            resolve_name(r, e->u.str, e->span, false, layer_pos);
            return;
        case AST_IN:
            if (!r->in_ok)
                sema_error(r->s, e->span, r->block ? "'in' cannot be used in a parameter's default value"
                                              : "'in' is only allowed inside a block");
            return;
        case AST_CALL:
            resolve_call(r, e);
            return;
        case AST_TUPLE:
            for (const ast_expr *x = e->u.tuple.items; x; x = x->next)
                resolve_expr(r, x, false);
            return;
        case AST_NEG:
            e = e->u.operand;
            layer_pos = false;
            break;
        case AST_BINARY:
            /* the right operand recursively, the left one (long chains) in this loop */
            switch (e->u.bin.op) {
            case AST_OP_ARROW: resolve_expr(r, e->u.bin.rhs, true); break;
            case AST_OP_MUL: resolve_expr(r, e->u.bin.rhs, false); break;
            default:
                resolve_expr(r, e->u.bin.rhs, false);
                layer_pos = false;
                break;
            }
            e = e->u.bin.lhs;
            break;
        default:
            return;
        }
    }
}

static void bind_name(resolver *r, const char *name, lang_span sp)
{
    sema *s = r->s;
    if (scope_find(&r->names, name)) {
        sema_error(s, sp, "'%s' is already bound", name);
        return;
    }
    if (find_block(s, name)) {
        sema_error(s, sp, "cannot bind '%s': it is the name of a block", name);
        return;
    }
    if (op_def_find_layer(name)) {
        sema_error(s, sp, "cannot bind '%s': it is the name of a layer", name);
        return;
    }
    scope_add(s, &r->names, name, err_value(sp));
}

/* An input's shape: rank 1 to 3, positive dimensions.  False when it is unusable. */
static bool check_input_shape(sema *s, const ast_stmt *st)
{
    if (!st->dims)
        return false;   /* a syntax error, reported */
    bool ok = true;
    if (st->ndims > 3) {
        const ast_expr *last = st->dims;
        while (last->next)
            last = last->next;
        lang_span sp = {st->dims->span.line, st->dims->span.col, last->span.end_line, last->span.end_col};
        sema_error(s, sp, "input '%s' has %d dimensions; 1 to 3 are supported ([F], [C, L] or [C, H, W])",
              st->name, st->ndims);
        ok = false;
    }
    for (const ast_expr *d = st->dims; d; d = d->next) {
        if (d->kind != AST_INT) {
            ok = false;
        } else if (d->u.ival <= 0) {
            sema_error(s, d->span, "input '%s': dimensions must be positive, got %" PRId64, st->name, d->u.ival);
            ok = false;
        }
    }
    return ok;
}

static void resolve_network(sema *s, const ast_item *it)
{
    resolver r = {.s = s, .item = it};
    bool has_input = false, has_output = false;
    for (const ast_stmt *st = it->stmts; st; st = st->next) {
        r.stmt = st;
        switch (st->kind) {
        case AST_STMT_INPUT:
            has_input = true;
            check_input_shape(s, st);
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_BIND:
            resolve_expr(&r, st->value, false);
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_OUTPUT:
            has_output = true;
            resolve_expr(&r, st->value, false);
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_RETURN:
            sema_error(s, keyword_span(st, 6), "'return' is only allowed in a block; a network names its results with 'output'");
            resolve_expr(&r, st->value, false);
            break;
        }
    }
    if (!has_input && !it->syntax_error)
        sema_error(s, it->name_span, "network '%s' has no input", it->name);
    if (!has_output && !it->syntax_error)
        sema_error(s, it->name_span, "network '%s' has no output", it->name);
    scope_free(&r.names);
}

static void resolve_block(sema *s, block_def *b)
{
    const ast_item *it = b->item;
    resolver r = {.s = s, .item = it, .block = b};
    for (const ast_param *p = it->params; p; p = p->next) {
        if (p->dflt)
            resolve_expr(&r, p->dflt, false);
        bind_name(&r, p->name, p->name_span);
    }
    r.in_ok = true;
    int nreturn = 0;
    const ast_stmt *last = NULL;
    for (const ast_stmt *st = it->stmts; st; st = st->next) {
        r.stmt = st;
        last = st;
        switch (st->kind) {
        case AST_STMT_INPUT:
            sema_error(s, keyword_span(st, 5), "'input' is only allowed in a network; a block's input is 'in'");
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_OUTPUT:
            sema_error(s, keyword_span(st, 6), "'output' is only allowed in a network; a block ends with 'return'");
            resolve_expr(&r, st->value, false);
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_BIND:
            resolve_expr(&r, st->value, false);
            bind_name(&r, st->name, st->name_span);
            break;
        case AST_STMT_RETURN:
            nreturn++;
            resolve_expr(&r, st->value, false);
            if (st->next)
                sema_error(s, keyword_span(st, 6), "'return' must be the last statement of block '%s'", it->name);
            break;
        }
    }
    if (nreturn == 0 && !it->syntax_error)
        sema_error(s, it->name_span, "block '%s' has no 'return' statement", it->name);
    b->returns = last && last->kind == AST_STMT_RETURN;
    scope_free(&r.names);
}

/* Recursion among blocks: a depth-first walk of the use graph, with an explicit stack.
 * Each edge back to a block on the stack closes a cycle: reported at the use that starts
 * it, and every block on it marked recursive (never expanded). */
static void find_recursion(sema *s)
{
    int n = s->nblocks;
    if (n == 0)
        return;
    int *color = calloc((size_t)n, sizeof *color);   /* 0 new, 1 on the stack, 2 done */
    int *stack = malloc((size_t)n * sizeof *stack);
    int *next = calloc((size_t)n, sizeof *next);     /* per block: the next edge to follow */
    if (!color || !stack || !next) {
        s->oom = true;
        goto out;
    }
    for (int root = 0; root < n; root++) {
        if (color[root] || !s->blocks[root].valid)
            continue;
        int sp = 0;
        stack[sp++] = root;
        color[root] = 1;
        while (sp > 0) {
            int u = stack[sp - 1];
            block_def *bu = &s->blocks[u];
            if (next[u] >= bu->ncalls) {
                color[u] = 2;
                sp--;
                continue;
            }
            const block_call *c = &bu->calls[next[u]++];
            int v = c->callee;
            if (color[v] == 0) {
                color[v] = 1;
                stack[sp++] = v;
            } else if (color[v] == 1) {
                int pos = sp - 1;
                while (stack[pos] != v)
                    pos--;
                /* "a -> b -> a", at the use of b in a */
                char path[512];
                size_t len = 0;
                path[0] = '\0';
                for (int k = pos; k < sp && len < 400; k++) {
                    s->blocks[stack[k]].recursive = true;
                    len += (size_t)snprintf(path + len, sizeof path - len, "%.60s -> ",
                                            s->blocks[stack[k]].item->name);
                }
                if (len >= 400)
                    snprintf(path + len, sizeof path - len, "... -> ");
                len = strlen(path);
                snprintf(path + len, sizeof path - len, "%.60s", s->blocks[v].item->name);
                const block_def *first = &s->blocks[stack[pos]];
                lang_span at = first->calls[next[stack[pos]] - 1].at;
                sema_error(s, at, "block '%s' is recursive: %s", first->item->name, path);
            }
        }
    }
out:
    free(color);
    free(stack);
    free(next);
}

/* ================================================================ evaluation */

typedef struct env {
    sema *s;
    scope *sc;
    bool has_in;
    int in_tensor;
} env;

static value eval(env *E, const ast_expr *e);
static int apply(sema *s, const layer_val *L, int t);

/* ---- argument checking against a schema ---- */

static const char *int_kind(unsigned flags)
{
    return flags & OP_ARGF_POSITIVE ? "positive integer" : flags & OP_ARGF_NONNEG ? "non-negative integer" : "integer";
}

/* What an argument must be, for "must be ..." messages. */
static void describe_spec(const op_argspec *sp, char *buf, size_t cap)
{
    const char *k = int_kind(sp->flags);
    const char *a = sp->flags & (OP_ARGF_POSITIVE | OP_ARGF_NONNEG) ? "a" : "an";
    bool tuple = sp->flags & OP_ARGF_TUPLE_OK;
    switch (sp->type) {
    case OP_ARG_INT:
        snprintf(buf, cap, "%s %s", a, k);
        break;
    case OP_ARG_FLOAT:
        snprintf(buf, cap, "%s", sp->flags & OP_ARGF_UNIT ? "a number in [0, 1)"
                                 : sp->flags & (OP_ARGF_FPOS | OP_ARGF_POSITIVE) ? "a positive number"
                                 : sp->flags & OP_ARGF_NONNEG ? "a non-negative number" : "a number");
        break;
    case OP_ARG_BOOL:
        snprintf(buf, cap, "true or false");
        break;
    case OP_ARG_STRING:
        snprintf(buf, cap, "a string");
        break;
    case OP_ARG_INTS:
        if (tuple)
            snprintf(buf, cap, "%s %s or a pair of %ss", a, k, k);
        else
            snprintf(buf, cap, "%s %s", a, k);
        break;
    case OP_ARG_PAD:
        if (tuple)
            snprintf(buf, cap, "%s %s, a pair of %ss, or \"same\"", a, k, k);
        else
            snprintf(buf, cap, "%s %s or \"same\"", a, k);
        break;
    }
}

static bool int_ok(unsigned flags, int64_t v)
{
    if ((flags & OP_ARGF_POSITIVE) && v <= 0)
        return false;
    if ((flags & OP_ARGF_NONNEG) && v < 0)
        return false;
    return true;
}

/* Converts a checked value into an argument slot; false when it does not fit the spec. */
static bool convert_arg(const op_argspec *sp, const value *v, op_argval *out)
{
    switch (sp->type) {
    case OP_ARG_INT:
        if (v->t != V_INT || !int_ok(sp->flags, v->i))
            return false;
        out->n = 1;
        out->i[0] = out->i[1] = v->i;
        return true;
    case OP_ARG_FLOAT: {
        double f;
        if (v->t == V_INT)
            f = (double)v->i;
        else if (v->t == V_FLOAT)
            f = v->f;
        else
            return false;
        if ((sp->flags & OP_ARGF_UNIT) && !(f >= 0.0 && f < 1.0))
            return false;
        if ((sp->flags & (OP_ARGF_FPOS | OP_ARGF_POSITIVE)) && !(f > 0.0))
            return false;
        if ((sp->flags & OP_ARGF_NONNEG) && !(f >= 0.0))
            return false;
        out->f = f;
        return true;
    }
    case OP_ARG_BOOL:
        if (v->t != V_BOOL)
            return false;
        out->b = v->b;
        return true;
    case OP_ARG_STRING:
        if (v->t != V_STRING || strlen(v->s) >= OP_NAME_MAX)
            return false;
        strcpy(out->s, v->s);
        return true;
    case OP_ARG_PAD:
        if (v->t == V_STRING && strcmp(v->s, "same") == 0) {
            out->same = true;
            out->n = 1;
            out->i[0] = out->i[1] = 0;
            return true;
        }
        /* fall through */
    case OP_ARG_INTS:
        if (v->t == V_INT && int_ok(sp->flags, v->i)) {
            out->n = 1;
            out->i[0] = out->i[1] = v->i;
            return true;
        }
        if (v->t == V_TUPLE && v->n == 2 && (sp->flags & OP_ARGF_TUPLE_OK) && int_ok(sp->flags, v->tup[0]) &&
            int_ok(sp->flags, v->tup[1])) {
            out->n = 2;
            out->i[0] = v->tup[0];
            out->i[1] = v->tup[1];
            return true;
        }
        return false;
    }
    return false;
}

/* Fills a slot from the schema's default text ("1", "0.5", "true", "1e-5", "same"). */
static void default_arg(const op_argspec *sp, op_argval *out)
{
    const char *t = sp->dflt;
    out->present = true;
    switch (sp->type) {
    case OP_ARG_INT:
    case OP_ARG_INTS:
    case OP_ARG_PAD:
        if (sp->type == OP_ARG_PAD && strcmp(t, "same") == 0) {
            out->same = true;
            out->n = 1;
            break;
        }
        out->n = 1;
        out->i[0] = out->i[1] = strtoll(t, NULL, 10);
        break;
    case OP_ARG_FLOAT:
        if (!lang_strtod(t, strlen(t), &out->f))
            out->f = 0;
        break;
    case OP_ARG_BOOL:
        out->b = strcmp(t, "true") == 0;
        break;
    case OP_ARG_STRING:
        snprintf(out->s, sizeof out->s, "%s", t);
        break;
    }
}

/* Checks one argument value for callee's argument sp; reports and returns false when it
 * does not fit. */
static bool check_value(sema *s, const char *callee, const op_argspec *sp, const value *v, op_argval *out)
{
    if (v->t == V_ERROR)
        return false;
    if (sp->type == OP_ARG_STRING && strcmp(sp->name, "name") == 0 && v->t == V_STRING) {
        size_t len = strlen(v->s);
        if (len == 0) {
            sema_error(s, v->span, "%s: 'name' must not be empty", callee);
            return false;
        }
        if (len > MAX_LAYER_NAME) {
            sema_error(s, v->span, "%s: 'name' is too long (at most %d characters)", callee, MAX_LAYER_NAME);
            return false;
        }
    }
    if (convert_arg(sp, v, out))
        return true;
    char want[128], got[128];
    describe_spec(sp, want, sizeof want);
    if (v->t == V_STRING && sp->type == OP_ARG_STRING)
        snprintf(got, sizeof got, "a string of %zu characters", strlen(v->s));
    else
        describe(v, got, sizeof got);
    sema_error(s, v->span, "%s: '%s' must be %s, got %s", callee, sp->name, want, got);
    return false;
}

static int find_spec(const op_argspec *spec, int nspec, const char *name)
{
    for (int k = 0; k < nspec; k++)
        if (strcmp(spec[k].name, name) == 0)
            return k;
    return -1;
}

/* Checks a call's arguments against a schema: positional ones in order, then named ones;
 * fills out[0..nspec) (given, present, value, span) with the schema's defaults where absent.
 * Returns false when anything was wrong (all of it reported). */
static bool check_args(env *E, const char *callee, const op_argspec *spec, int nspec, const ast_arg *args,
                       lang_span call_span, op_argval *out, lang_span *spans)
{
    sema *s = E->s;
    bool ok = true;
    bool misplaced = false;   /* an argument that went nowhere: "missing" would be noise */
    bool given[OP_MAX_ARGS] = {false};
    int pos = 0;
    bool named = false;
    memset(out, 0, (size_t)nspec * sizeof *out);
    for (const ast_arg *a = args; a; a = a->next) {
        value v = eval(E, a->value);
        int slot;
        if (!a->name) {
            if (named) {   /* reported by resolution */
                ok = false;
                misplaced = true;
                continue;
            }
            if (pos >= nspec) {
                if (pos == nspec) {
                    if (nspec == 0)
                        sema_error(s, a->span, "too many arguments for %s: it takes none", callee);
                    else
                        sema_error(s, a->span, "too many arguments for %s: it takes at most %d", callee, nspec);
                }
                pos++;
                ok = false;
                continue;
            }
            slot = pos++;
        } else {
            named = true;
            slot = find_spec(spec, nspec, a->name);
            if (slot < 0) {
                suggestion g;
                suggest_init(&g, a->name);
                for (int k = 0; k < nspec; k++)
                    suggest_try(&g, spec[k].name);
                sema_error(s, a->name_span, "unknown argument '%s' for %s%s", a->name, callee, suggest_text(&g));
                ok = false;
                misplaced = true;
                continue;
            }
            if (given[slot]) {
                sema_error(s, a->name_span, "argument '%s' for %s is given twice", spec[slot].name, callee);
                ok = false;
                continue;
            }
        }
        given[slot] = true;
        if (!check_value(s, callee, &spec[slot], &v, &out[slot])) {
            ok = false;
            continue;
        }
        out[slot].given = out[slot].present = true;
        spans[slot] = a->value->span;
    }
    for (int k = 0; k < nspec; k++) {
        if (given[k])
            continue;
        spans[k] = call_span;
        const char *d = spec[k].dflt;
        if (!d) {
            if (!misplaced)
                sema_error(s, call_span, "missing argument '%s' for %s", spec[k].name, callee);
            ok = false;
        } else if (d[0] != '\0' && d[0] != '=') {
            default_arg(&spec[k], &out[k]);
        }
    }
    /* "=other": a copy of another argument's value */
    for (int k = 0; k < nspec; k++) {
        const char *d = spec[k].dflt;
        if (given[k] || !d || d[0] != '=')
            continue;
        int ref = find_spec(spec, nspec, d + 1);
        if (ref >= 0 && ref != k) {
            out[k] = out[ref];
            out[k].given = false;
            spans[k] = call_span;
        }
    }
    return ok;
}

/* ---- layers ---- */

static value layer_value(const layer_val *L, lang_span sp)
{
    value v = err_value(sp);
    if (L) {
        v.t = V_LAYER;
        v.layer = L;
    }
    return v;
}

static value make_op_layer(env *E, const op_def *op, const ast_arg *args, lang_span sp)
{
    sema *s = E->s;
    op_argval *vals = sema_alloc(s, (size_t)(op->nargs > 0 ? op->nargs : 1) * sizeof *vals);
    lang_span *spans = sema_alloc(s, (size_t)(op->nargs > 0 ? op->nargs : 1) * sizeof *spans);
    if (!vals || !spans)
        return err_value(sp);
    if (!check_args(E, op->name, op->args, op->nargs, args, sp, vals, spans))
        return err_value(sp);
    layer_val *L = sema_alloc(s, sizeof *L);
    if (L) {
        L->kind = LV_OP;
        L->span = sp;
        L->op = op;
        L->args = vals;
        L->arg_spans = spans;
    }
    return layer_value(L, sp);
}

/* A block called with arguments: its parameters bound (positional, then named, then the
 * defaults, each evaluated with the parameters before it in scope). */
static value make_block_layer(env *E, const block_def *b, const ast_arg *args, lang_span sp)
{
    sema *s = E->s;
    const ast_item *it = b->item;
    const char *bname = it->name;
    int n = it->nparams;
    value *vals = sema_alloc(s, (size_t)(n > 0 ? n : 1) * sizeof *vals);
    bool *given = sema_alloc(s, (size_t)(n > 0 ? n : 1) * sizeof *given);
    if (!vals || !given)
        return err_value(sp);
    const ast_param **params = sema_alloc(s, (size_t)(n > 0 ? n : 1) * sizeof *params);
    if (!params)
        return err_value(sp);
    int k = 0;
    for (const ast_param *p = it->params; p && k < n; p = p->next)
        params[k++] = p;

    bool ok = true;
    int pos = 0;
    bool named = false;
    for (const ast_arg *a = args; a; a = a->next) {
        value v = eval(E, a->value);
        int slot = -1;
        if (!a->name) {
            if (named) {
                ok = false;
                continue;
            }
            if (pos >= n) {
                if (pos == n) {
                    if (n == 0)
                        sema_error(s, a->span, "too many arguments for %s: it takes none", bname);
                    else
                        sema_error(s, a->span, "too many arguments for %s: it takes at most %d", bname, n);
                }
                pos++;
                ok = false;
                continue;
            }
            slot = pos++;
        } else {
            named = true;
            for (int j = 0; j < n; j++)
                if (strcmp(params[j]->name, a->name) == 0) {
                    slot = j;
                    break;
                }
            if (slot < 0) {
                suggestion g;
                suggest_init(&g, a->name);
                for (int j = 0; j < n; j++)
                    suggest_try(&g, params[j]->name);
                sema_error(s, a->name_span, "unknown argument '%s' for %s%s", a->name, bname, suggest_text(&g));
                ok = false;
                continue;
            }
            if (given[slot]) {
                sema_error(s, a->name_span, "argument '%s' for %s is given twice", params[slot]->name, bname);
                ok = false;
                continue;
            }
        }
        given[slot] = true;
        if (v.t == V_TENSOR) {
            sema_error(s, v.span, "%s: '%s' must be a compile-time value, got a tensor", bname, params[slot]->name);
            ok = false;
        } else if (v.t == V_ERROR) {
            ok = false;
        }
        vals[slot] = v;
    }
    if (!ok)
        return err_value(sp);

    scope sc = {0};
    for (int j = 0; j < n && ok; j++) {
        if (!given[j]) {
            if (!params[j]->dflt) {
                sema_error(s, sp, "missing argument '%s' for %s", params[j]->name, bname);
                ok = false;
                continue;
            }
            env D = {.s = s, .sc = &sc};
            vals[j] = eval(&D, params[j]->dflt);
            if (vals[j].t == V_TENSOR) {
                sema_error(s, vals[j].span, "%s: '%s' must be a compile-time value, got a tensor", bname, params[j]->name);
                ok = false;
            } else if (vals[j].t == V_ERROR) {
                ok = false;
            }
        }
        scope_add(s, &sc, params[j]->name, vals[j]);
    }
    scope_free(&sc);
    if (!ok || b->recursive || !b->returns)
        return err_value(sp);
    layer_val *L = sema_alloc(s, sizeof *L);
    if (L) {
        L->kind = LV_BLOCK;
        L->span = sp;
        L->block = b;
        L->params = vals;
    }
    return layer_value(L, sp);
}

static int name_arg(const op_def *op)
{
    for (int k = 0; k < op->nargs; k++)
        if (op->args[k].type == OP_ARG_STRING && strcmp(op->args[k].name, "name") == 0)
            return k;
    return -1;
}

/* Appends a layer application; returns its output tensor id, or -1. */
static int emit(sema *s, const op_def *op, const op_argval *args, const lang_span *spans, const int *ins, int nin,
                lang_span sp)
{
    lang_network *net = s->net;
    if (!net || s->aborted)
        return -1;
    if (net->nlayers >= MAX_LAYERS) {
        sema_error(s, sp, "network '%s' has more than %d layers", net->name, MAX_LAYERS);
        s->aborted = true;
        return -1;
    }
    if (!grow(s, (void **)&net->layers, &s->cap_layers, net->nlayers + 1, sizeof *net->layers))
        return -1;
    lang_layer *L = &net->layers[net->nlayers];
    memset(L, 0, sizeof *L);
    L->op = op;
    L->span = sp;
    L->ninputs = nin;
    for (int i = 0; i < nin && i < OP_MAX_IN; i++)
        L->inputs[i] = ins[i];
    for (int k = 0; k < op->nargs && k < OP_MAX_ARGS; k++) {
        if (args)
            L->args[k] = args[k];
        L->arg_spans[k] = args ? spans[k] : sp;
    }
    int k = ++s->counters[op->op];
    int na = name_arg(op);
    if (na >= 0 && L->args[na].present && L->args[na].given)
        snprintf(L->name, sizeof L->name, "%s", L->args[na].s);
    else
        snprintf(L->name, sizeof L->name, "%s_%d", op->name, k);
    return net->ninputs + net->nlayers++;
}

/* concat(t1, t2, ...): a layer whose arguments are its input tensors, applied at once. */
static value apply_multi(env *E, const op_def *op, const ast_arg *args, lang_span sp)
{
    sema *s = E->s;
    int ins[OP_MAX_IN];
    int n = 0, idx = 0;
    int max = op->max_inputs < OP_MAX_IN ? op->max_inputs : OP_MAX_IN;
    bool ok = true;
    char got[128];
    for (const ast_arg *a = args; a; a = a->next) {
        idx++;
        value v = eval(E, a->value);
        if (a->name) {
            sema_error(s, a->name_span, "unknown argument '%s' for %s", a->name, op->name);
            ok = false;
        } else if (v.t == V_TENSOR) {
            if (n < max)
                ins[n] = (int)v.i;
            else if (n == max)
                sema_error(s, a->span, "too many arguments for %s: it takes at most %d tensors", op->name, max);
            n++;
        } else if (v.t != V_ERROR) {
            sema_error(s, v.span, "%s: argument %d must be a tensor, got %s", op->name, idx, describe(&v, got, sizeof got));
            ok = false;
        } else {
            ok = false;
        }
    }
    if (!ok || n > max)
        return err_value(sp);
    if (n < op->min_inputs) {
        sema_error(s, sp, "%s needs at least %d tensors, got %d", op->name, op->min_inputs, n);
        return err_value(sp);
    }
    int t = emit(s, op, NULL, NULL, ins, n, sp);
    if (t < 0)
        return err_value(sp);
    value r = err_value(sp);
    r.t = V_TENSOR;
    r.i = t;
    return r;
}

static int expand_block(sema *s, const block_def *b, const value *params, int t, lang_span call_span)
{
    if (b->recursive || !b->returns)
        return -1;
    if (s->block_depth >= MAX_BLOCK_DEPTH) {
        sema_error(s, call_span, "blocks are nested more than %d deep", MAX_BLOCK_DEPTH);
        s->aborted = true;
        return -1;
    }
    s->block_depth++;
    scope sc = {0};
    int k = 0;
    for (const ast_param *p = b->item->params; p; p = p->next)
        scope_add(s, &sc, p->name, params[k++]);
    env E = {.s = s, .sc = &sc, .has_in = true, .in_tensor = t};
    int result = -1;
    char got[128];
    for (const ast_stmt *st = b->item->stmts; st && !s->aborted; st = st->next) {
        if (st->kind == AST_STMT_BIND) {
            value v = eval(&E, st->value);
            scope_add(s, &sc, st->name, v);
        } else if (st->kind == AST_STMT_RETURN && !st->next) {
            value v = eval(&E, st->value);
            if (v.t == V_TENSOR)
                result = (int)v.i;
            else if (v.t != V_ERROR)
                sema_error(s, v.span, "block '%s' must return a tensor, got %s", b->item->name,
                      describe(&v, got, sizeof got));
        }
    }
    scope_free(&sc);
    s->block_depth--;
    return result;
}

static int apply_one(sema *s, const layer_val *L, int t);

/* Applies layer L to tensor t; returns the resulting tensor id, or -1.  A composition
 * a -> b -> c ... is nested to the left, as long as it was written: its spine is walked
 * with an explicit stack. */
static int apply(sema *s, const layer_val *L, int t)
{
    if (L->kind != LV_SEQ)
        return apply_one(s, L, t);
    const layer_val *small[32];
    const layer_val **rest = small;
    int n = 0, cap = 32;
    const layer_val *x = L;
    for (; x->kind == LV_SEQ; x = x->a) {
        if (n == cap) {
            const layer_val **bigger = malloc((size_t)cap * 2 * sizeof *bigger);
            if (!bigger) {
                s->oom = true;
                t = -1;
                goto out;
            }
            memcpy(bigger, rest, (size_t)n * sizeof *bigger);
            if (rest != small)
                free(rest);
            rest = bigger;
            cap *= 2;
        }
        rest[n++] = x->b;
    }
    t = apply_one(s, x, t);
    for (int k = n - 1; k >= 0 && t >= 0; k--)
        t = apply(s, rest[k], t);
out:
    if (rest != small)
        free(rest);
    return t;
}

static int apply_one(sema *s, const layer_val *L, int t)
{
    if (s->aborted || t < 0)
        return -1;
    if (++s->steps > MAX_STEPS) {
        sema_error(s, L->span, "network '%s' is too large to expand (more than %d steps)", s->net ? s->net->name : "?",
              MAX_STEPS);
        s->aborted = true;
        return -1;
    }
    if (s->depth >= MAX_DEPTH) {
        sema_error(s, L->span, "layers nested too deeply");
        s->aborted = true;
        return -1;
    }
    s->depth++;
    switch (L->kind) {
    case LV_OP:
        t = emit(s, L->op, L->args, L->arg_spans, &t, 1, L->span);
        break;
    case LV_SEQ:   /* not reached: apply walks compositions */
        t = -1;
        break;
    case LV_REPEAT:
        for (int64_t k = 0; k < L->count && t >= 0; k++)
            t = apply(s, L->a, t);
        break;
    case LV_BLOCK:
        t = expand_block(s, L->block, L->params, t, L->span);
        break;
    }
    s->depth--;
    return t;
}

/* ---- expressions ---- */

static value eval_name(env *E, const ast_expr *e)
{
    sema *s = E->s;
    const char *name = e->u.str;
    const binding *b = scope_find(E->sc, name);
    if (b)
        return b->v;
    const block_def *blk = find_block(s, name);
    if (blk)
        return make_block_layer(E, blk, NULL, e->span);
    const op_def *op = op_def_find_layer(name);
    if (op) {
        if (op->max_inputs > 1) {
            sema_error(s, e->span, "%s needs its input tensors as arguments, as in %s(a, b)", name, name);
            return err_value(e->span);
        }
        return make_op_layer(E, op, NULL, e->span);
    }
    return err_value(e->span);   /* reported by resolution */
}

static value eval_call(env *E, const ast_expr *e)
{
    sema *s = E->s;
    const char *name = e->u.call.name;
    if (scope_find(E->sc, name))
        return err_value(e->span);
    const block_def *blk = find_block(s, name);
    if (blk)
        return make_block_layer(E, blk, e->u.call.args, e->span);
    const op_def *op = op_def_find_layer(name);
    if (!op)
        return err_value(e->span);
    if (op->max_inputs > 1)
        return apply_multi(E, op, e->u.call.args, e->span);
    return make_op_layer(E, op, e->u.call.args, e->span);
}

static value eval_tuple(env *E, const ast_expr *e)
{
    value r = err_value(e->span);
    r.t = V_TUPLE;
    bool ok = true;
    char got[128];
    for (const ast_expr *x = e->u.tuple.items; x; x = x->next) {
        value v = eval(E, x);
        if (v.t == V_INT) {
            if (r.n < TUPLE_MAX)
                r.tup[r.n] = v.i;
        } else {
            if (v.t != V_ERROR)
                sema_error(E->s, v.span, "tuple items must be integers, got %s", describe(&v, got, sizeof got));
            ok = false;
        }
        r.n++;
    }
    return ok ? r : err_value(e->span);
}

static value eval_neg(env *E, const ast_expr *e)
{
    value v = eval(E, e->u.operand);
    value r = err_value(e->span);
    if (v.t == V_INT) {
        if (v.i == INT64_MIN) {
            sema_error(E->s, e->span, "integer overflow in '-'");
            return r;
        }
        r.t = V_INT;
        r.i = -v.i;
    } else if (v.t == V_FLOAT) {
        r.t = V_FLOAT;
        r.f = -v.f;
    } else if (v.t != V_ERROR) {
        sema_error(E->s, e->span, "invalid operand to unary '-': %s", type_name(v.t));
    }
    return r;
}

static bool is_number(const value *v)
{
    return v->t == V_INT || v->t == V_FLOAT;
}

/* Compile-time arithmetic on two numbers. */
static value arith(sema *s, const ast_expr *node, const value *a, const value *b)
{
    value r = err_value(node->span);
    const char *opname = lang_ast_binop_str(node->u.bin.op);
    ast_binop op = node->u.bin.op;
    if (a->t == V_INT && b->t == V_INT) {
        int64_t x = a->i, y = b->i, z = 0;
        bool overflow = false;
        switch (op) {
        case AST_OP_ADD: overflow = __builtin_add_overflow(x, y, &z); break;
        case AST_OP_SUB: overflow = __builtin_sub_overflow(x, y, &z); break;
        case AST_OP_MUL: overflow = __builtin_mul_overflow(x, y, &z); break;
        case AST_OP_DIV:
            if (y == 0) {
                sema_error(s, b->span, "division by zero");
                return r;
            }
            if (x == INT64_MIN && y == -1) {
                overflow = true;
                break;
            }
            if (x % y != 0) {
                sema_error(s, node->span, "integer division %" PRId64 " / %" PRId64 " is not exact", x, y);
                return r;
            }
            z = x / y;
            break;
        case AST_OP_ARROW: return r;
        }
        if (overflow) {
            sema_error(s, node->u.bin.op_span, "integer overflow in '%s'", opname);
            return r;
        }
        r.t = V_INT;
        r.i = z;
        return r;
    }
    double x = a->t == V_INT ? (double)a->i : a->f;
    double y = b->t == V_INT ? (double)b->i : b->f;
    double z = 0;
    switch (op) {
    case AST_OP_ADD: z = x + y; break;
    case AST_OP_SUB: z = x - y; break;
    case AST_OP_MUL: z = x * y; break;
    case AST_OP_DIV:
        if (y == 0) {
            sema_error(s, b->span, "division by zero");
            return r;
        }
        z = x / y;
        break;
    case AST_OP_ARROW: return r;
    }
    if (!isfinite(z)) {
        sema_error(s, node->u.bin.op_span, "result of '%s' is out of range", opname);
        return r;
    }
    r.t = V_FLOAT;
    r.f = z;
    return r;
}

static value combine(env *E, const ast_expr *node, const value *a, const value *b)
{
    sema *s = E->s;
    value r = err_value(node->span);
    char got[128];
    if (a->t == V_ERROR || b->t == V_ERROR)
        return r;
    ast_binop op = node->u.bin.op;
    lang_span op_span = node->u.bin.op_span;
    if (op == AST_OP_ARROW) {
        if (b->t != V_LAYER) {
            sema_error(s, b->span, "the right side of '->' must be a layer, got %s", describe(b, got, sizeof got));
            return r;
        }
        if (a->t == V_TENSOR) {
            int t = apply(s, b->layer, (int)a->i);
            if (t >= 0) {
                r.t = V_TENSOR;
                r.i = t;
            }
            return r;
        }
        if (a->t == V_LAYER) {
            layer_val *L = sema_alloc(s, sizeof *L);
            if (!L)
                return r;
            L->kind = LV_SEQ;
            L->span = node->span;
            L->a = a->layer;
            L->b = b->layer;
            return layer_value(L, node->span);
        }
        sema_error(s, a->span, "the left side of '->' must be a tensor or a layer, got %s", describe(a, got, sizeof got));
        return r;
    }
    if (is_number(a) && is_number(b))
        return arith(s, node, a, b);
    if (op == AST_OP_ADD && a->t == V_TENSOR && b->t == V_TENSOR) {
        int ins[2] = {(int)a->i, (int)b->i};
        int t = emit(s, op_def_get(OP_ADD), NULL, NULL, ins, 2, op_span);
        if (t >= 0) {
            r.t = V_TENSOR;
            r.i = t;
        }
        return r;
    }
    if (op == AST_OP_MUL && a->t == V_LAYER) {
        if (b->t != V_INT || b->i <= 0) {
            sema_error(s, b->span, "repetition count must be a positive integer, got %s", describe(b, got, sizeof got));
            return r;
        }
        layer_val *L = sema_alloc(s, sizeof *L);
        if (!L)
            return r;
        L->kind = LV_REPEAT;
        L->span = node->span;
        L->a = a->layer;
        L->count = b->i;
        return layer_value(L, node->span);
    }
    if (op == AST_OP_MUL && b->t == V_LAYER && a->t == V_INT) {
        sema_error(s, op_span, "invalid operands to '*': int and layer; to repeat a layer, write the layer first (layer * %" PRId64 ")",
              a->i);
        return r;
    }
    sema_error(s, op_span, "invalid operands to '%s': %s and %s", lang_ast_binop_str(op), type_name(a->t), type_name(b->t));
    return r;
}

/* Binary operators: the left spine of a chain (a -> b -> c ... is left-nested) is walked
 * in a loop, so long chains need no deep recursion. */
static value eval_binary(env *E, const ast_expr *e)
{
    sema *s = E->s;
    const ast_expr *small[32];
    const ast_expr **spine = small;
    int n = 0, cap = 32;
    for (const ast_expr *x = e; x->kind == AST_BINARY; x = x->u.bin.lhs) {
        if (n == cap) {
            const ast_expr **bigger = malloc((size_t)cap * 2 * sizeof *bigger);
            if (!bigger) {
                s->oom = true;
                if (spine != small)
                    free(spine);
                return err_value(e->span);
            }
            memcpy(bigger, spine, (size_t)n * sizeof *bigger);
            if (spine != small)
                free(spine);
            spine = bigger;
            cap *= 2;
        }
        spine[n++] = x;
    }
    value acc = eval(E, spine[n - 1]->u.bin.lhs);
    for (int k = n - 1; k >= 0; k--) {
        value rhs = eval(E, spine[k]->u.bin.rhs);
        acc = combine(E, spine[k], &acc, &rhs);
        acc.span = spine[k]->span;
    }
    if (spine != small)
        free(spine);
    return acc;
}

static value eval(env *E, const ast_expr *e)
{
    sema *s = E->s;
    value v = err_value(e->span);
    if (s->aborted || s->oom)
        return v;
    if (s->depth >= MAX_DEPTH) {
        sema_error(s, e->span, "expression nested too deeply");
        s->aborted = true;
        return v;
    }
    s->depth++;
    switch (e->kind) {
    case AST_INT:
        v.t = V_INT;
        v.i = e->u.ival;
        break;
    case AST_FLOAT:
        v.t = V_FLOAT;
        v.f = e->u.fval;
        break;
    case AST_STRING:
        v.t = V_STRING;
        v.s = e->u.str;
        break;
    case AST_BOOL:
        v.t = V_BOOL;
        v.b = e->u.bval;
        break;
    case AST_NAME: v = eval_name(E, e); break;
    case AST_IN:
        if (E->has_in) {
            v.t = V_TENSOR;
            v.i = E->in_tensor;
        }
        break;
    case AST_CALL: v = eval_call(E, e); break;
    case AST_TUPLE: v = eval_tuple(E, e); break;
    case AST_NEG: v = eval_neg(E, e); break;
    case AST_BINARY: v = eval_binary(E, e); break;
    case AST_ERROR: break;
    }
    s->depth--;
    v.span = e->span;
    return v;
}

/* ================================================================ networks */

static int name_cmp(const void *pa, const void *pb, void *ctx)
{
    const lang_network *net = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    int c = strcmp(net->layers[a].name, net->layers[b].name);
    return c ? c : (a > b) - (a < b);
}

static bool explicit_name(const lang_layer *L, lang_span *sp)
{
    int na = name_arg(L->op);
    if (na < 0 || !L->args[na].given)
        return false;
    *sp = L->arg_spans[na];
    return true;
}

/* Layer names are unique: a name= twice, or a name= equal to another layer's automatic
 * name, is an error at the name= argument. */
static void check_layer_names(sema *s, lang_network *net)
{
    int n = net->nlayers;
    if (n < 2)
        return;
    int *idx = malloc((size_t)n * sizeof *idx);
    if (!idx) {
        s->oom = true;
        return;
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof *idx, name_cmp, net);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && strcmp(net->layers[idx[i]].name, net->layers[idx[j]].name) == 0)
            j++;
        if (j - i > 1) {
            bool has_auto = false;
            lang_span sp;
            for (int k = i; k < j; k++)
                if (!explicit_name(&net->layers[idx[k]], &sp))
                    has_auto = true;
            bool first = true;
            lang_span first_span = {0, 0, 0, 0};
            for (int k = i; k < j; k++) {
                const lang_layer *L = &net->layers[idx[k]];
                if (!explicit_name(L, &sp))
                    continue;
                if (has_auto)
                    sema_error(s, sp, "layer name '%s' is the automatic name of another layer", L->name);
                else if (!first && span_equal(sp, first_span))
                    sema_error(s, sp, "duplicate layer name '%s' (this layer is expanded more than once)", L->name);
                else if (!first)
                    sema_error(s, sp, "duplicate layer name '%s'", L->name);
                if (first)
                    first_span = sp;
                first = false;
            }
        }
        i = j;
    }
    free(idx);
}

static void expand_network(sema *s, const ast_item *it, lang_network *net)
{
    copy_name(s, net->name, it->name, it->name_span);
    net->span = it->name_span;
    s->net = net;
    s->cap_layers = 0;
    memset(s->counters, 0, sizeof s->counters);
    s->steps = 0;
    s->aborted = false;
    s->depth = s->block_depth = 0;

    /* inputs first: they are tensors 0 .. ninputs-1 wherever they are declared */
    int tensor_of[MAX_IO];
    int ninput_stmts = 0;
    for (const ast_stmt *st = it->stmts; st; st = st->next) {
        if (st->kind != AST_STMT_INPUT)
            continue;
        int k = ninput_stmts++;
        if (k < MAX_IO)
            tensor_of[k] = -1;
        if (k == MAX_IO)
            sema_error(s, st->name_span, "network '%s' has more than %d inputs", it->name, MAX_IO);
        if (k >= MAX_IO || !st->dims || st->ndims > 3)
            continue;
        lang_input *in = &net->inputs[net->ninputs];
        copy_name(s, in->name, st->name, st->name_span);
        in->span = st->span;
        in->shape.rank = st->ndims;
        bool ok = true;
        int d = 0;
        for (const ast_expr *x = st->dims; x; x = x->next, d++) {
            if (x->kind != AST_INT || x->u.ival <= 0)
                ok = false;
            else
                in->shape.d[d] = x->u.ival;
        }
        if (ok)
            tensor_of[k] = net->ninputs++;
    }

    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    int input_k = 0;
    char got[128];
    for (const ast_stmt *st = it->stmts; st; st = st->next) {
        value v;
        switch (st->kind) {
        case AST_STMT_INPUT: {
            int k = input_k++;
            v = err_value(st->name_span);
            if (k < MAX_IO && tensor_of[k] >= 0) {
                v.t = V_TENSOR;
                v.i = tensor_of[k];
            }
            scope_add(s, &sc, st->name, v);
            break;
        }
        case AST_STMT_BIND:
            v = eval(&E, st->value);
            scope_add(s, &sc, st->name, v);
            break;
        case AST_STMT_OUTPUT:
            v = eval(&E, st->value);
            if (v.t == V_TENSOR) {
                if (net->noutputs < MAX_IO) {
                    lang_output *o = &net->outputs[net->noutputs++];
                    copy_name(s, o->name, st->name, st->name_span);
                    o->tensor = (int)v.i;
                    o->span = st->span;
                } else {
                    sema_error(s, st->name_span, "network '%s' has more than %d outputs", it->name, MAX_IO);
                }
            } else if (v.t != V_ERROR) {
                sema_error(s, v.span, "output '%s' must be a tensor, got %s", st->name, describe(&v, got, sizeof got));
            }
            scope_add(s, &sc, st->name, v);
            break;
        case AST_STMT_RETURN:
            break;
        }
    }
    scope_free(&sc);
    check_layer_names(s, net);
    s->net = NULL;
}

/* ================================================================ train sections */

static const op_argspec sgd_args[] = {
    {"lr", OP_ARG_FLOAT, OP_ARGF_FPOS, NULL},
    {"momentum", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
    {"nesterov", OP_ARG_BOOL, 0, "false"},
    {"weight_decay", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
};

static const op_argspec adam_args[] = {
    {"lr", OP_ARG_FLOAT, OP_ARGF_FPOS, "0.001"},
    {"beta1", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.9"},
    {"beta2", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.999"},
    {"eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-8"},
    {"weight_decay", OP_ARG_FLOAT, OP_ARGF_NONNEG, "0"},
};

static const char *const train_settings[] = {"loss", "optimizer", "batch", "epochs"};

static lang_train train_defaults(void)
{
    return (lang_train){
        .present = false,
        .loss = LANG_LOSS_CROSS_ENTROPY,
        .optimizer = LANG_OPTIM_SGD,
        .lr = 0.01,
        .momentum = 0,
        .weight_decay = 0,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .nesterov = false,
        .batch = 64,
        .epochs = 1,
    };
}

/* The name a loss or optimizer setting is written as (a name, a string, or a call's name). */
static const char *setting_word(const ast_expr *e)
{
    if (e->kind == AST_NAME || e->kind == AST_STRING)
        return e->u.str;
    if (e->kind == AST_CALL)
        return e->u.call.name;
    return NULL;
}

static void train_loss(sema *s, const ast_expr *e, lang_train *t)
{
    const char *w = e->kind == AST_CALL && e->u.call.nargs == 0 ? e->u.call.name : setting_word(e);
    if (e->kind == AST_ERROR)
        return;
    if (!w || (e->kind == AST_CALL && e->u.call.nargs > 0)) {
        sema_error(s, e->span, "'loss' must be cross_entropy or mse");
        return;
    }
    if (strcmp(w, "cross_entropy") == 0) {
        t->loss = LANG_LOSS_CROSS_ENTROPY;
    } else if (strcmp(w, "mse") == 0) {
        t->loss = LANG_LOSS_MSE;
    } else {
        suggestion g;
        suggest_init(&g, w);
        suggest_try(&g, "cross_entropy");
        suggest_try(&g, "mse");
        sema_error(s, e->span, "unknown loss '%s'%s", w, g.best ? suggest_text(&g) : "; expected cross_entropy or mse");
    }
}

static void train_optimizer(sema *s, const ast_expr *e, lang_train *t)
{
    if (e->kind == AST_ERROR)
        return;
    const char *w = e->kind == AST_NAME || e->kind == AST_CALL ? setting_word(e) : NULL;
    if (!w) {
        sema_error(s, e->span, "'optimizer' must be sgd(...) or adam(...)");
        return;
    }
    const ast_arg *args = e->kind == AST_CALL ? e->u.call.args : NULL;
    bool sgd = strcmp(w, "sgd") == 0;
    if (!sgd && strcmp(w, "adam") != 0) {
        suggestion g;
        suggest_init(&g, w);
        suggest_try(&g, "sgd");
        suggest_try(&g, "adam");
        sema_error(s, e->kind == AST_CALL ? e->u.call.name_span : e->span, "unknown optimizer '%s'%s", w,
              g.best ? suggest_text(&g) : "; expected sgd or adam");
        return;
    }
    /* the arguments: compile-time values, no names in scope */
    resolver r = {.s = s};
    for (const ast_arg *a = args; a; a = a->next)
        resolve_expr(&r, a->value, false);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    op_argval v[OP_MAX_ARGS];
    lang_span vspan[OP_MAX_ARGS];
    if (sgd) {
        if (!check_args(&E, "sgd", sgd_args, 4, args, e->span, v, vspan))
            return;
        t->optimizer = LANG_OPTIM_SGD;
        t->lr = v[0].f;
        t->momentum = v[1].f;
        t->nesterov = v[2].b;
        t->weight_decay = v[3].f;
        if (t->nesterov && !(t->momentum > 0))
            sema_error(s, vspan[2], "sgd: nesterov needs a positive momentum");
    } else {
        if (!check_args(&E, "adam", adam_args, 5, args, e->span, v, vspan))
            return;
        t->optimizer = LANG_OPTIM_ADAM;
        t->lr = v[0].f;
        t->beta1 = v[1].f;
        t->beta2 = v[2].f;
        t->eps = v[3].f;
        t->weight_decay = v[4].f;
        t->momentum = 0;
        t->nesterov = false;
    }
}

static void train_count(sema *s, const char *setting, const ast_expr *e, int64_t *out)
{
    resolver r = {.s = s};
    resolve_expr(&r, e, false);
    scope sc = {0};
    env E = {.s = s, .sc = &sc};
    value v = eval(&E, e);
    char got[128];
    if (v.t == V_ERROR)
        return;
    if (v.t != V_INT || v.i <= 0) {
        sema_error(s, v.span, "'%s' must be a positive integer, got %s", setting, describe(&v, got, sizeof got));
        return;
    }
    *out = v.i;
}

static void check_train(sema *s, const ast_item *it, lang_program *prog)
{
    lang_network *net = NULL;
    for (int i = 0; i < prog->nnetworks; i++)
        if (strcmp(prog->networks[i].name, it->name) == 0)
            net = &prog->networks[i];
    if (!net) {
        suggestion g;
        suggest_init(&g, it->name);
        for (int i = 0; i < prog->nnetworks; i++)
            suggest_try(&g, prog->networks[i].name);
        sema_error(s, it->name_span, "train section for unknown network '%s'%s", it->name, suggest_text(&g));
        return;
    }
    if (net->train.present) {
        sema_error(s, it->name_span, "network '%s' already has a train section", it->name);
        return;
    }
    lang_train t = train_defaults();
    t.present = true;
    bool seen[4] = {false};
    for (const ast_setting *st = it->settings; st; st = st->next) {
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (strcmp(st->name, train_settings[j]) == 0)
                k = j;
        if (k < 0) {
            if (find_spec(sgd_args, 4, st->name) >= 0 || find_spec(adam_args, 5, st->name) >= 0) {
                sema_error(s, st->name_span, "unknown setting '%s' in train section; '%s' is an argument of the optimizer, as in optimizer = sgd(%s=...)",
                      st->name, st->name, st->name);
                continue;
            }
            suggestion g;
            suggest_init(&g, st->name);
            for (int j = 0; j < 4; j++)
                suggest_try(&g, train_settings[j]);
            sema_error(s, st->name_span, "unknown setting '%s' in train section%s", st->name, suggest_text(&g));
            continue;
        }
        if (seen[k]) {
            sema_error(s, st->name_span, "setting '%s' is given twice", st->name);
            continue;
        }
        seen[k] = true;
        switch (k) {
        case 0: train_loss(s, st->value, &t); break;
        case 1: train_optimizer(s, st->value, &t); break;
        case 2: train_count(s, "batch", st->value, &t.batch); break;
        case 3: train_count(s, "epochs", st->value, &t.epochs); break;
        }
    }
    net->train = t;
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
    s->blocks = calloc((size_t)n, sizeof *s->blocks);
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
        else if (find_block(s, it->name))
            sema_error(s, it->name_span, "block '%s' is already defined", it->name);
        else
            b->valid = true;
        s->nblocks++;
    }
}

static void free_blocks(sema *s)
{
    for (int i = 0; i < s->nblocks; i++)
        free(s->blocks[i].calls);
    free(s->blocks);
    s->blocks = NULL;
    s->nblocks = 0;
}

void lang_program_free(lang_program *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nnetworks; i++)
        free(p->networks[i].layers);
    free(p->networks);
    free(p);
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
    lang_program *prog = calloc(1, sizeof *prog);
    ast_arena *tree = lang_ast_arena_create();
    sema s = {.diags = diags, .diag_start = diags->count};
    s.arena = lang_ast_arena_create();
    ast_item *items = NULL;
    if (!source)
        len = 0;
    if (!prog || !tree || !s.arena || lang_parse(source, len, tree, diags, &items) != 0) {
        s.oom = true;
        goto out;
    }
    s.items = items;

    collect_blocks(&s);
    for (int i = 0; i < s.nblocks; i++)
        resolve_block(&s, &s.blocks[i]);
    find_recursion(&s);

    int nnet = 0;
    for (const ast_item *it = items; it; it = it->next)
        if (it->kind == AST_NETWORK)
            nnet++;
    if (nnet > 0) {
        prog->networks = calloc((size_t)nnet, sizeof *prog->networks);
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
        resolve_network(&s, it);
        lang_network *net = &prog->networks[prog->nnetworks++];
        net->train = train_defaults();
        expand_network(&s, it, net);
    }
    for (const ast_item *it = items; it && !s.oom; it = it->next)
        if (it->kind == AST_TRAIN)
            check_train(&s, it, prog);

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
