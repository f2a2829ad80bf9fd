/* The syntax tree of lang/ast.h: an arena for its nodes, the node constructors the parser
 * calls, list building, and the locale-independent number conversion the lexer and sema
 * share. */
#include "lang/ast.h"
#include "ops/mem.h"

#include <locale.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
} arena_chunk;

struct ast_arena {
    arena_chunk *chunks;
    bool failed;
};

enum { ARENA_CHUNK = 64 * 1024 };

ast_arena *lang_ast_arena_create(void)
{
    return cnn_mem_calloc(1, sizeof(ast_arena));
}

void lang_ast_arena_destroy(ast_arena *a)
{
    if (!a)
        return;
    arena_chunk *c = a->chunks;
    while (c) {
        arena_chunk *next = c->next;
        cnn_mem_free(c);
        c = next;
    }
    cnn_mem_free(a);
}

void *lang_ast_arena_alloc(ast_arena *a, size_t n)
{
    if (!a || a->failed)
        return NULL;
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 2)
        goto fail;
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    arena_chunk *c = a->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = cnn_mem_malloc(sizeof(arena_chunk) + size);
        if (!c)
            goto fail;
        c->size = size;
        c->used = 0;
        c->next = a->chunks;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
fail:
    a->failed = true;
    return NULL;
}

char *lang_ast_arena_strndup(ast_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = lang_ast_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool lang_ast_arena_failed(const ast_arena *a)
{
    return !a || a->failed;
}

/* ---------------------------------------------------------------- lists */

#define LIST_ADD(l, x)                  \
    do {                                \
        if (!(x))                       \
            return l;                   \
        if ((l).tail)                   \
            (l).tail->next = (x);       \
        else                            \
            (l).head = (x);             \
        (l).tail = (x);                 \
        (l).n++;                        \
        return l;                       \
    } while (0)

ast_expr_list lang_ast_expr_list_add(ast_expr_list l, ast_expr *x) { LIST_ADD(l, x); }
ast_arg_list lang_ast_arg_list_add(ast_arg_list l, ast_arg *x) { LIST_ADD(l, x); }
ast_stmt_list lang_ast_stmt_list_add(ast_stmt_list l, ast_stmt *x) { LIST_ADD(l, x); }
ast_param_list lang_ast_param_list_add(ast_param_list l, ast_param *x) { LIST_ADD(l, x); }
ast_setting_list lang_ast_setting_list_add(ast_setting_list l, ast_setting *x) { LIST_ADD(l, x); }

/* ---------------------------------------------------------------- expressions */

static ast_expr *new_expr(ast_arena *a, ast_expr_kind kind, lang_span sp)
{
    ast_expr *e = lang_ast_arena_alloc(a, sizeof *e);
    if (e) {
        e->kind = kind;
        e->span = sp;
    }
    return e;
}

ast_expr *lang_ast_int(ast_arena *a, lang_span sp, int64_t v)
{
    ast_expr *e = new_expr(a, AST_INT, sp);
    if (e)
        e->u.ival = v;
    return e;
}

ast_expr *lang_ast_float(ast_arena *a, lang_span sp, double v)
{
    ast_expr *e = new_expr(a, AST_FLOAT, sp);
    if (e)
        e->u.fval = v;
    return e;
}

ast_expr *lang_ast_string(ast_arena *a, lang_span sp, const char *s)
{
    if (!s)
        return NULL;
    ast_expr *e = new_expr(a, AST_STRING, sp);
    if (e)
        e->u.str = s;
    return e;
}

ast_expr *lang_ast_bool(ast_arena *a, lang_span sp, bool v)
{
    ast_expr *e = new_expr(a, AST_BOOL, sp);
    if (e)
        e->u.bval = v;
    return e;
}

ast_expr *lang_ast_name(ast_arena *a, lang_span sp, const char *name)
{
    if (!name)
        return NULL;
    ast_expr *e = new_expr(a, AST_NAME, sp);
    if (e)
        e->u.str = name;
    return e;
}

ast_expr *lang_ast_in(ast_arena *a, lang_span sp)
{
    return new_expr(a, AST_IN, sp);
}

ast_expr *lang_ast_error(ast_arena *a, lang_span sp)
{
    return new_expr(a, AST_ERROR, sp);
}

ast_expr *lang_ast_call(ast_arena *a, lang_span sp, const char *name, lang_span name_span, ast_arg_list args)
{
    if (!name)
        return NULL;
    ast_expr *e = new_expr(a, AST_CALL, sp);
    if (e) {
        e->u.call.name = name;
        e->u.call.name_span = name_span;
        e->u.call.args = args.head;
        e->u.call.nargs = args.n;
    }
    return e;
}

ast_expr *lang_ast_tuple(ast_arena *a, lang_span sp, ast_expr_list items)
{
    ast_expr *e = new_expr(a, AST_TUPLE, sp);
    if (e) {
        e->u.tuple.items = items.head;
        e->u.tuple.n = items.n;
    }
    return e;
}

ast_expr *lang_ast_binary(ast_arena *a, lang_span sp, ast_binop op, lang_span op_span, ast_expr *lhs,
                     ast_expr *rhs)
{
    if (!lhs || !rhs)
        return NULL;
    ast_expr *e = new_expr(a, AST_BINARY, sp);
    if (e) {
        e->u.bin.op = op;
        e->u.bin.op_span = op_span;
        e->u.bin.lhs = lhs;
        e->u.bin.rhs = rhs;
    }
    return e;
}

ast_expr *lang_ast_neg(ast_arena *a, lang_span sp, ast_expr *operand)
{
    if (!operand)
        return NULL;
    ast_expr *e = new_expr(a, AST_NEG, sp);
    if (e)
        e->u.operand = operand;
    return e;
}

ast_arg *lang_ast_arg_new(ast_arena *a, lang_span sp, const char *name, lang_span name_span, ast_expr *value)
{
    if (!value)
        return NULL;
    ast_arg *g = lang_ast_arena_alloc(a, sizeof *g);
    if (g) {
        g->name = name;
        g->name_span = name_span;
        g->value = value;
        g->span = sp;
    }
    return g;
}

const char *lang_ast_binop_str(ast_binop op)
{
    switch (op) {
    case AST_OP_ARROW: return "->";
    case AST_OP_ADD: return "+";
    case AST_OP_SUB: return "-";
    case AST_OP_MUL: return "*";
    case AST_OP_DIV: return "/";
    }
    return "?";
}

/* ---------------------------------------------------------------- statements and items */

ast_stmt *lang_ast_stmt_input(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                         const ast_expr_list *dims)
{
    if (!name)
        return NULL;
    ast_stmt *s = lang_ast_arena_alloc(a, sizeof *s);
    if (s) {
        s->kind = AST_STMT_INPUT;
        s->span = sp;
        s->name = name;
        s->name_span = name_span;
        s->dims = dims ? dims->head : NULL;
        s->ndims = dims ? dims->n : 0;
    }
    return s;
}

ast_stmt *lang_ast_stmt_new(ast_arena *a, ast_stmt_kind kind, lang_span sp, const char *name,
                       lang_span name_span, ast_expr *value)
{
    if (!value || (kind != AST_STMT_RETURN && !name))
        return NULL;
    ast_stmt *s = lang_ast_arena_alloc(a, sizeof *s);
    if (s) {
        s->kind = kind;
        s->span = sp;
        s->name = name;
        s->name_span = name_span;
        s->value = value;
    }
    return s;
}

ast_param *lang_ast_param_new(ast_arena *a, const char *name, lang_span name_span, ast_expr *dflt)
{
    if (!name)
        return NULL;
    ast_param *p = lang_ast_arena_alloc(a, sizeof *p);
    if (p) {
        p->name = name;
        p->name_span = name_span;
        p->dflt = dflt;
    }
    return p;
}

ast_setting *lang_ast_setting_new(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                             ast_expr *value)
{
    if (!name || !value)
        return NULL;
    ast_setting *s = lang_ast_arena_alloc(a, sizeof *s);
    if (s) {
        s->name = name;
        s->name_span = name_span;
        s->value = value;
        s->span = sp;
    }
    return s;
}

static ast_item *new_item(ast_arena *a, ast_item_kind kind, lang_span sp, const char *name,
                          lang_span name_span)
{
    if (!name)
        return NULL;
    ast_item *it = lang_ast_arena_alloc(a, sizeof *it);
    if (it) {
        it->kind = kind;
        it->span = sp;
        it->name = name;
        it->name_span = name_span;
    }
    return it;
}

ast_item *lang_ast_network(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                      ast_stmt_list stmts)
{
    ast_item *it = new_item(a, AST_NETWORK, sp, name, name_span);
    if (it) {
        it->stmts = stmts.head;
        it->nstmts = stmts.n;
    }
    return it;
}

ast_item *lang_ast_block(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                    ast_param_list params, ast_stmt_list stmts)
{
    ast_item *it = new_item(a, AST_BLOCK, sp, name, name_span);
    if (it) {
        it->params = params.head;
        it->nparams = params.n;
        it->stmts = stmts.head;
        it->nstmts = stmts.n;
    }
    return it;
}

ast_item *lang_ast_train(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                    ast_setting_list settings)
{
    ast_item *it = new_item(a, AST_TRAIN, sp, name, name_span);
    if (it)
        it->settings = settings.head;
    return it;
}

/* ---------------------------------------------------------------- numbers */

bool lang_strtod(const char *s, size_t n, double *out)
{
    char small[128];
    if (n == 0 || n == SIZE_MAX)
        return false;
    char *buf = n < sizeof small ? small : cnn_mem_malloc(n + 1);
    if (!buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    bool ok = false;
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c != (locale_t)0) {
        char *end = NULL;
        double v = strtod_l(buf, &end, c);
        freelocale(c);
        if (end == buf + n) {
            *out = v;
            ok = true;
        }
    }
    if (buf != small)
        cnn_mem_free(buf);
    return ok;
}
