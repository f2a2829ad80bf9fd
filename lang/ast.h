/* The syntax tree of a .cnn file (spec section 3), as the parser builds it and lang/sema.c
 * reads it.  Every node carries its source span.  All nodes and strings live in one arena
 * (ast_arena), freed at once: the parser's error recovery may drop partial trees anywhere,
 * and nothing needs to be freed node by node.  Lists are singly linked through `next`. */
#ifndef CNN_LANG_AST_H
#define CNN_LANG_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/diag.h"
#include "lang/span.h"

/* ---- arena ---- */

typedef struct ast_arena ast_arena;

/* NULL when out of memory. */
ast_arena *lang_ast_arena_create(void);
/* Frees the arena and everything allocated in it; NULL is a no-op. */
void lang_ast_arena_destroy(ast_arena *a);
/* n zeroed bytes, aligned for any type; NULL when out of memory (lang_ast_arena_failed then
 * returns true for good). */
void *lang_ast_arena_alloc(ast_arena *a, size_t n);
/* A NUL-terminated copy of the n bytes at s; NULL when out of memory. */
char *lang_ast_arena_strndup(ast_arena *a, const char *s, size_t n);
bool lang_ast_arena_failed(const ast_arena *a);

/* ---- expressions ---- */

typedef enum ast_expr_kind {
    AST_INT,      /* u.ival */
    AST_FLOAT,    /* u.fval */
    AST_STRING,   /* u.str, escapes decoded */
    AST_BOOL,     /* u.bval */
    AST_NAME,     /* u.str */
    AST_IN,       /* the keyword 'in' */
    AST_CALL,     /* u.call: NAME(args) */
    AST_TUPLE,    /* u.tuple: (e, e, ...) with at least two items */
    AST_BINARY,   /* u.bin */
    AST_NEG,      /* u.operand: unary minus */
    AST_ERROR,    /* something already reported (a bad literal, an unparsable expression) */
} ast_expr_kind;

typedef enum ast_binop { AST_OP_ARROW, AST_OP_ADD, AST_OP_SUB, AST_OP_MUL, AST_OP_DIV } ast_binop;

typedef struct ast_expr ast_expr;

typedef struct ast_arg {
    const char *name;        /* NULL for a positional argument */
    lang_span name_span;
    ast_expr *value;
    lang_span span;          /* the whole argument: `name=value` or `value` */
    struct ast_arg *next;
} ast_arg;

struct ast_expr {
    ast_expr_kind kind;
    lang_span span;
    ast_expr *next;          /* the next item of a tuple or of an input's dimension list */
    union {
        int64_t ival;
        double fval;
        bool bval;
        const char *str;
        struct {
            const char *name;
            lang_span name_span;
            ast_arg *args;
            int nargs;
        } call;
        struct {
            ast_expr *items;
            int n;
        } tuple;
        struct {
            ast_binop op;
            lang_span op_span;   /* the operator token */
            ast_expr *lhs, *rhs;
        } bin;
        ast_expr *operand;
    } u;
};

/* ---- statements and items ---- */

typedef enum ast_stmt_kind {
    AST_STMT_INPUT,    /* input NAME[dims];  dims NULL: the shape failed to parse */
    AST_STMT_BIND,     /* NAME = value; */
    AST_STMT_OUTPUT,   /* output NAME = value; */
    AST_STMT_RETURN,   /* return value; */
} ast_stmt_kind;

typedef struct ast_stmt {
    ast_stmt_kind kind;
    lang_span span;
    const char *name;        /* INPUT, BIND, OUTPUT */
    lang_span name_span;
    ast_expr *value;         /* BIND, OUTPUT, RETURN (AST_ERROR when it failed to parse) */
    ast_expr *dims;          /* INPUT: AST_INT (or AST_ERROR) list */
    int ndims;
    struct ast_stmt *next;
} ast_stmt;

typedef struct ast_param {
    const char *name;
    lang_span name_span;
    ast_expr *dflt;          /* NULL: required */
    struct ast_param *next;
} ast_param;

typedef struct ast_setting {
    const char *name;
    lang_span name_span;
    ast_expr *value;
    lang_span span;
    struct ast_setting *next;
} ast_setting;

typedef enum ast_item_kind { AST_NETWORK, AST_BLOCK, AST_TRAIN } ast_item_kind;

typedef struct ast_item {
    ast_item_kind kind;
    lang_span span;
    const char *name;
    lang_span name_span;
    ast_param *params;       /* AST_BLOCK */
    int nparams;
    ast_stmt *stmts;         /* AST_NETWORK, AST_BLOCK */
    int nstmts;
    ast_setting *settings;   /* AST_TRAIN */
    bool syntax_error;       /* a syntax error was recovered from inside it */
    struct ast_item *next;
} ast_item;

/* ---- list building (the parser's semantic values) ---- */

typedef struct ast_expr_list { ast_expr *head, *tail; int n; } ast_expr_list;
typedef struct ast_arg_list { ast_arg *head, *tail; int n; } ast_arg_list;
typedef struct ast_stmt_list { ast_stmt *head, *tail; int n; } ast_stmt_list;
typedef struct ast_param_list { ast_param *head, *tail; int n; } ast_param_list;
typedef struct ast_setting_list { ast_setting *head, *tail; int n; } ast_setting_list;

/* Each returns the list with x appended; a NULL x (out of memory, or a statement lost to
 * error recovery) leaves the list as it is. */
ast_expr_list lang_ast_expr_list_add(ast_expr_list l, ast_expr *x);
ast_arg_list lang_ast_arg_list_add(ast_arg_list l, ast_arg *x);
ast_stmt_list lang_ast_stmt_list_add(ast_stmt_list l, ast_stmt *x);
ast_param_list lang_ast_param_list_add(ast_param_list l, ast_param *x);
ast_setting_list lang_ast_setting_list_add(ast_setting_list l, ast_setting *x);

/* ---- constructors: each returns NULL when out of memory, and accepts NULL children ---- */

ast_expr *lang_ast_int(ast_arena *a, lang_span sp, int64_t v);
ast_expr *lang_ast_float(ast_arena *a, lang_span sp, double v);
ast_expr *lang_ast_string(ast_arena *a, lang_span sp, const char *s);
ast_expr *lang_ast_bool(ast_arena *a, lang_span sp, bool v);
ast_expr *lang_ast_name(ast_arena *a, lang_span sp, const char *name);
ast_expr *lang_ast_in(ast_arena *a, lang_span sp);
ast_expr *lang_ast_error(ast_arena *a, lang_span sp);
ast_expr *lang_ast_call(ast_arena *a, lang_span sp, const char *name, lang_span name_span, ast_arg_list args);
ast_expr *lang_ast_tuple(ast_arena *a, lang_span sp, ast_expr_list items);
ast_expr *lang_ast_binary(ast_arena *a, lang_span sp, ast_binop op, lang_span op_span, ast_expr *lhs,
                     ast_expr *rhs);
ast_expr *lang_ast_neg(ast_arena *a, lang_span sp, ast_expr *operand);
ast_arg *lang_ast_arg_new(ast_arena *a, lang_span sp, const char *name, lang_span name_span, ast_expr *value);

ast_stmt *lang_ast_stmt_input(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                         const ast_expr_list *dims);
ast_stmt *lang_ast_stmt_new(ast_arena *a, ast_stmt_kind kind, lang_span sp, const char *name,
                       lang_span name_span, ast_expr *value);
ast_param *lang_ast_param_new(ast_arena *a, const char *name, lang_span name_span, ast_expr *dflt);
ast_setting *lang_ast_setting_new(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                             ast_expr *value);

ast_item *lang_ast_network(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                      ast_stmt_list stmts);
ast_item *lang_ast_block(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                    ast_param_list params, ast_stmt_list stmts);
ast_item *lang_ast_train(ast_arena *a, lang_span sp, const char *name, lang_span name_span,
                    ast_setting_list settings);

const char *lang_ast_binop_str(ast_binop op);

/* ---- the parser (lang/parser.y, lang/lexer.l) ---- */

/* Scans and parses source (len bytes, need not be NUL-terminated) into a list of items
 * allocated in arena, reporting lexical and syntax errors into diags (the parse goes on after
 * them; items that failed to parse are left out).  Returns 0, or -1 when memory ran out. */
int lang_parse(const char *source, size_t len, ast_arena *arena, diag_list *diags, ast_item **items);

/* Converts the decimal number text s[0..n) (digits, '.', exponent) independently of the C
 * locale.  Returns false when it is not a number. */
bool lang_strtod(const char *s, size_t n, double *out);

#endif
