/* Semantic analysis, step 2 (see lang/sema.c): name resolution, a static pass over every
 * network and block.  Names are bound once and never read before they are bound; unknown
 * names and layers are reported (with "did you mean"); 'in' only in blocks; input, output
 * and return only where they belong.  It records which blocks each block uses, and
 * recursion among blocks is found on that graph. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/sema_int.h"
#include "ops/mem.h"

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
    if (!sema_grow(s, (void **)&b->calls, &b->capcalls, b->ncalls + 1, sizeof *b->calls))
        return;
    b->calls[b->ncalls++] = (block_call){idx, at};
}

/* A name read (as_call: called).  layer_pos: it stands where a layer must be (right of
 * '->'), so an unknown one is called an unknown layer. */
static void resolve_name(resolver *r, const char *name, lang_span sp, bool as_call, bool layer_pos)
{
    sema *s = r->s;
    if (sema_scope_find(&r->names, name)) {
        if (as_call)
            sema_error(s, sp, "'%s' is a variable, not a layer or block; it cannot be called", name);
        return;
    }
    const block_def *b = sema_find_block(s, name);
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
    sema_suggest_init(&g, name);
    bool layer = as_call || layer_pos;
    if (!layer)
        for (int i = 0; i < r->names.n; i++)
            sema_suggest_try(&g, r->names.b[i].name);
    for (const char *const *l = op_layer_names(); l && *l; l++)
        sema_suggest_try(&g, *l);
    for (int i = 0; i < s->nblocks; i++)
        if (s->blocks[i].valid)
            sema_suggest_try(&g, s->blocks[i].item->name);
    if (layer)
        for (int i = 0; i < r->names.n; i++)
            sema_suggest_try(&g, r->names.b[i].name);
    sema_error(s, sp, "unknown %s '%s'%s", layer ? "layer" : "name", name, sema_suggest_text(&g));
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

void sema_resolve_free_expr(sema *s, const ast_expr *e)
{
    resolver r = {.s = s};
    resolve_expr(&r, e, false);
}

static void bind_name(resolver *r, const char *name, lang_span sp)
{
    sema *s = r->s;
    if (sema_scope_find(&r->names, name)) {
        sema_error(s, sp, "'%s' is already bound", name);
        return;
    }
    if (sema_find_block(s, name)) {
        sema_error(s, sp, "cannot bind '%s': it is the name of a block", name);
        return;
    }
    if (op_def_find_layer(name)) {
        sema_error(s, sp, "cannot bind '%s': it is the name of a layer", name);
        return;
    }
    sema_scope_add(s, &r->names, name, sema_err_value(sp));
}

/* The span of a statement's leading keyword. */
static lang_span keyword_span(const ast_stmt *st, int len)
{
    return (lang_span){st->span.line, st->span.col, st->span.line, st->span.col + len};
}

/* An input's shape: rank 1 to 4, positive dimensions.  False when it is unusable. */
static bool check_input_shape(sema *s, const ast_stmt *st)
{
    if (!st->dims)
        return false;   /* a syntax error, reported */
    bool ok = true;
    if (st->ndims > 4) {
        const ast_expr *last = st->dims;
        while (last->next)
            last = last->next;
        lang_span sp = {st->dims->span.line, st->dims->span.col, last->span.end_line, last->span.end_col};
        sema_error(s, sp, "input '%s' has %d dimensions; 1 to 4 are supported ([F], [C, L], [C, H, W] or [C, D, H, W])",
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

void sema_resolve_network(sema *s, const ast_item *it)
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
    sema_scope_free(&r.names);
}

void sema_resolve_block(sema *s, block_def *b)
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
    sema_scope_free(&r.names);
}

/* Recursion among blocks: a depth-first walk of the use graph, with an explicit stack.
 * Each edge back to a block on the stack closes a cycle: reported at the use that starts
 * it, and every block on it marked recursive (never expanded). */
void sema_find_recursion(sema *s)
{
    int n = s->nblocks;
    if (n == 0)
        return;
    int *color = cnn_mem_calloc((size_t)n, sizeof *color);   /* 0 new, 1 on the stack, 2 done */
    int *stack = cnn_mem_malloc((size_t)n * sizeof *stack);
    int *next = cnn_mem_calloc((size_t)n, sizeof *next);     /* per block: the next edge to follow */
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
    cnn_mem_free(color);
    cnn_mem_free(stack);
    cnn_mem_free(next);
}
