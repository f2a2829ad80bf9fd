/* The .cnn grammar (spec section 3): a pure, reentrant Bison parser building the syntax tree
 * of lang/ast.h.  Syntax errors are reported in our own words ("syntax error: unexpected
 * ')', expected an expression"), and error productions at statement, setting and item level
 * let one run report several of them. */

%code requires {
#include <setjmp.h>
#include <stdbool.h>

#include "lang/ast.h"
#include "lang/diag.h"
#include "lang/span.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* The state shared by the scanner (its yyextra) and the parser. */
typedef struct lang_parser {
    ast_arena *arena;
    diag_list *diags;
    int errors_at_start;        /* diags->errors before this parse */
    ast_item *items, *items_tail;
    int line, col;              /* the scanner's position: the next byte's line and column */
    lang_span last;             /* the span of the last token returned */
    char last_text[48];         /* its text, truncated, for "unexpected ..." messages */
    bool stop;                  /* too many errors: the scanner reports the end of input */
    bool recovered;             /* a syntax error was recovered from in the current item */
    jmp_buf fatal;              /* the scanner's fatal errors (out of memory) land here */
    void *scan_blocks;          /* the scanner's live allocations, freed after a fatal error */
} lang_parser;

/* Adds an error at sp, unless too many were reported already (then the parse winds down). */
void lang_parser_error(lang_parser *p, lang_span sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
}

%code {
#include <stdarg.h>

#include "ops/mem.h"
#include <stdio.h>
#include <string.h>

int lang_yylex(LANG_YYSTYPE *yylval, lang_span *yylloc, yyscan_t scanner);
static void lang_yyerror(const lang_span *loc, yyscan_t scanner, lang_parser *ctx, const char *msg);

#define A (ctx->arena)

/* A nonterminal's span: from its first symbol's start to its last symbol's end; an empty
 * rule sits at the end of what precedes it. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
    do {                                                              \
        if (N) {                                                      \
            (Cur).line = YYRHSLOC(Rhs, 1).line;                       \
            (Cur).col = YYRHSLOC(Rhs, 1).col;                         \
            (Cur).end_line = YYRHSLOC(Rhs, N).end_line;               \
            (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                 \
        } else {                                                      \
            (Cur).line = (Cur).end_line = YYRHSLOC(Rhs, 0).end_line;  \
            (Cur).col = (Cur).end_col = YYRHSLOC(Rhs, 0).end_col;     \
        }                                                             \
    } while (0)

/* Bounds the parser stack, and so the nesting of parentheses and unary minus (and the
 * recursion of everything that walks the tree); deeper input is an error. */
#define YYMAXDEPTH 1000
/* A deeper stack than YYINITDEPTH is allocated through the library's allocator. */
#define YYMALLOC cnn_mem_malloc
#define YYFREE cnn_mem_free

/* Marks an item that held a syntax error (sema then skips the checks that a lost
 * statement would make fail, like "has no output"). */
static ast_item *finish_item(lang_parser *ctx, ast_item *it)
{
    if (it)
        it->syntax_error = ctx->recovered;
    ctx->recovered = false;
    return it;
}

static void add_item(lang_parser *ctx, ast_item *it)
{
    if (!it)
        return;
    if (ctx->items_tail)
        ctx->items_tail->next = it;
    else
        ctx->items = it;
    ctx->items_tail = it;
}
}

%define api.pure full
%define api.prefix {lang_yy}
%define api.token.prefix {TOK_}
%define api.location.type {lang_span}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {lang_parser *ctx}

%union {
    const char *str;                              /* identifier; decoded string (NULL: bad) */
    struct { int64_t v; bool ok; } inum;          /* ok false: reported (too large) */
    struct { double v; bool ok; } fnum;
    ast_expr *expr;
    ast_arg *arg;
    ast_stmt *stmt;
    ast_param *param;
    ast_setting *setting;
    ast_item *item;
    ast_expr_list exprs;
    ast_arg_list args;
    ast_stmt_list stmts;
    ast_param_list params;
    ast_setting_list settings;
}

/* The order here is the order of "expected ..." lists in messages. */
%token NETWORK "network" BLOCK "block" TRAIN "train" INPUT "input" OUTPUT "output"
       RETURN "return" IN "in" TRUE "true" FALSE "false"
%token COMMA "," SEMI ";" LBRACE "{" RBRACE "}" LPAREN "(" RPAREN ")" LBRACKET "[" RBRACKET "]"
       ASSIGN "=" ARROW "->" PLUS "+" MINUS "-" STAR "*" SLASH "/"
%token <str> IDENT "identifier"
%token <inum> INT "integer"
%token <fnum> FLOAT "number"
%token <str> STRING "string"

%type <item> item
%type <stmts> stmts
%type <stmt> stmt
%type <exprs> dims tuple
%type <expr> dim expr primary
%type <args> args
%type <arg> arg
%type <params> params params_opt
%type <param> param
%type <settings> settings
%type <setting> setting

%left "->"
%left "+" "-"
%left "*" "/"
%precedence NEG

%%

file
    : %empty
    | file item                             { add_item(ctx, $2); }
    ;

item
    : "network" IDENT "{" stmts "}"         { $$ = finish_item(ctx, lang_ast_network(A, @$, $2, @2, $4)); }
    | "network" IDENT "{" stmts error "}"   { ctx->recovered = true;
                                              $$ = finish_item(ctx, lang_ast_network(A, @$, $2, @2, $4)); }
    | "block" IDENT "(" params_opt ")" "{" stmts "}"
                                            { $$ = finish_item(ctx, lang_ast_block(A, @$, $2, @2, $4, $7)); }
    | "block" IDENT "(" params_opt ")" "{" stmts error "}"
                                            { ctx->recovered = true;
                                              $$ = finish_item(ctx, lang_ast_block(A, @$, $2, @2, $4, $7)); }
    | "train" IDENT "{" settings "}"        { $$ = finish_item(ctx, lang_ast_train(A, @$, $2, @2, $4)); }
    | "train" IDENT "{" settings error "}"  { ctx->recovered = true;
                                              $$ = finish_item(ctx, lang_ast_train(A, @$, $2, @2, $4)); }
    | error                                 { $$ = finish_item(ctx, NULL); }
    ;

params_opt
    : %empty                                { $$ = (ast_param_list){0}; }
    | params
    ;

params
    : param                                 { $$ = lang_ast_param_list_add((ast_param_list){0}, $1); }
    | params "," param                      { $$ = lang_ast_param_list_add($1, $3); }
    ;

param
    : IDENT                                 { $$ = lang_ast_param_new(A, $1, @1, NULL); }
    | IDENT "=" expr                        { $$ = lang_ast_param_new(A, $1, @1, $3); }
    ;

stmts
    : %empty                                { $$ = (ast_stmt_list){0}; }
    | stmts stmt                            { $$ = lang_ast_stmt_list_add($1, $2); }
    ;

stmt
    : "input" IDENT "[" dims "]" ";"        { $$ = lang_ast_stmt_input(A, @$, $2, @2, &$4); }
    | "input" IDENT error ";"               { ctx->recovered = true; $$ = lang_ast_stmt_input(A, @$, $2, @2, NULL); }
    | IDENT "=" expr ";"                    { $$ = lang_ast_stmt_new(A, AST_STMT_BIND, @$, $1, @1, $3); }
    | IDENT "=" error ";"                   { ctx->recovered = true;
                                              $$ = lang_ast_stmt_new(A, AST_STMT_BIND, @$, $1, @1, lang_ast_error(A, @3)); }
    | "output" IDENT "=" expr ";"           { $$ = lang_ast_stmt_new(A, AST_STMT_OUTPUT, @$, $2, @2, $4); }
    | "output" IDENT "=" error ";"          { ctx->recovered = true;
                                              $$ = lang_ast_stmt_new(A, AST_STMT_OUTPUT, @$, $2, @2, lang_ast_error(A, @4)); }
    | "return" expr ";"                     { $$ = lang_ast_stmt_new(A, AST_STMT_RETURN, @$, NULL, @1, $2); }
    | "return" error ";"                    { ctx->recovered = true;
                                              $$ = lang_ast_stmt_new(A, AST_STMT_RETURN, @$, NULL, @1, lang_ast_error(A, @2)); }
    | error ";"                             { ctx->recovered = true; $$ = NULL; }
    ;

dims
    : dim                                   { $$ = lang_ast_expr_list_add((ast_expr_list){0}, $1); }
    | dims "," dim                          { $$ = lang_ast_expr_list_add($1, $3); }
    ;

dim
    : INT                                   { $$ = $1.ok ? lang_ast_int(A, @1, $1.v) : lang_ast_error(A, @1); }
    ;

settings
    : %empty                                { $$ = (ast_setting_list){0}; }
    | settings setting                      { $$ = lang_ast_setting_list_add($1, $2); }
    ;

setting
    : IDENT "=" expr ";"                    { $$ = lang_ast_setting_new(A, @$, $1, @1, $3); }
    | IDENT "=" error ";"                   { ctx->recovered = true;
                                              $$ = lang_ast_setting_new(A, @$, $1, @1, lang_ast_error(A, @3)); }
    | error ";"                             { ctx->recovered = true; $$ = NULL; }
    ;

expr
    : expr "->" expr                        { $$ = lang_ast_binary(A, @$, AST_OP_ARROW, @2, $1, $3); }
    | expr "+" expr                         { $$ = lang_ast_binary(A, @$, AST_OP_ADD, @2, $1, $3); }
    | expr "-" expr                         { $$ = lang_ast_binary(A, @$, AST_OP_SUB, @2, $1, $3); }
    | expr "*" expr                         { $$ = lang_ast_binary(A, @$, AST_OP_MUL, @2, $1, $3); }
    | expr "/" expr                         { $$ = lang_ast_binary(A, @$, AST_OP_DIV, @2, $1, $3); }
    | "-" expr %prec NEG                    { $$ = lang_ast_neg(A, @$, $2); }
    | primary
    ;

primary
    : IDENT                                 { $$ = lang_ast_name(A, @1, $1); }
    | INT                                   { $$ = $1.ok ? lang_ast_int(A, @1, $1.v) : lang_ast_error(A, @1); }
    | FLOAT                                 { $$ = $1.ok ? lang_ast_float(A, @1, $1.v) : lang_ast_error(A, @1); }
    | STRING                                { $$ = $1 ? lang_ast_string(A, @1, $1) : lang_ast_error(A, @1); }
    | "true"                                { $$ = lang_ast_bool(A, @1, true); }
    | "false"                               { $$ = lang_ast_bool(A, @1, false); }
    | "in"                                  { $$ = lang_ast_in(A, @1); }
    | IDENT "(" ")"                         { $$ = lang_ast_call(A, @$, $1, @1, (ast_arg_list){0}); }
    | IDENT "(" args ")"                    { $$ = lang_ast_call(A, @$, $1, @1, $3); }
    | "(" expr ")"                          { $$ = $2; }
    | "(" tuple ")"                         { $$ = lang_ast_tuple(A, @$, $2); }
    ;

tuple
    : expr "," expr                         { $$ = lang_ast_expr_list_add(lang_ast_expr_list_add((ast_expr_list){0}, $1), $3); }
    | tuple "," expr                        { $$ = lang_ast_expr_list_add($1, $3); }
    ;

args
    : arg                                   { $$ = lang_ast_arg_list_add((ast_arg_list){0}, $1); }
    | args "," arg                          { $$ = lang_ast_arg_list_add($1, $3); }
    ;

arg
    : expr                                  { $$ = lang_ast_arg_new(A, @$, NULL, @1, $1); }
    | IDENT "=" expr                        { $$ = lang_ast_arg_new(A, @$, $1, @1, $3); }
    ;

%%

void lang_parser_error(lang_parser *p, lang_span sp, const char *fmt, ...)
{
    enum { MAX_PARSE_ERRORS = 100 };
    if (p->diags->errors - p->errors_at_start >= MAX_PARSE_ERRORS) {
        p->stop = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(p->diags, DIAG_ERROR, sp, fmt, ap);
    va_end(ap);
}

/* How a token is named in "expected ..." lists. */
static const char *expected_name(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_IDENT: return "an identifier";
    case YYSYMBOL_INT: return "an integer";
    case YYSYMBOL_FLOAT: return "a number";
    case YYSYMBOL_STRING: return "a string";
    case YYSYMBOL_NETWORK: return "'network'";
    case YYSYMBOL_BLOCK: return "'block'";
    case YYSYMBOL_TRAIN: return "'train'";
    case YYSYMBOL_INPUT: return "'input'";
    case YYSYMBOL_OUTPUT: return "'output'";
    case YYSYMBOL_RETURN: return "'return'";
    case YYSYMBOL_IN: return "'in'";
    case YYSYMBOL_TRUE: return "'true'";
    case YYSYMBOL_FALSE: return "'false'";
    case YYSYMBOL_LBRACE: return "'{'";
    case YYSYMBOL_RBRACE: return "'}'";
    case YYSYMBOL_LPAREN: return "'('";
    case YYSYMBOL_RPAREN: return "')'";
    case YYSYMBOL_LBRACKET: return "'['";
    case YYSYMBOL_RBRACKET: return "']'";
    case YYSYMBOL_COMMA: return "','";
    case YYSYMBOL_SEMI: return "';'";
    case YYSYMBOL_ASSIGN: return "'='";
    case YYSYMBOL_ARROW: return "'->'";
    case YYSYMBOL_PLUS: return "'+'";
    case YYSYMBOL_MINUS: return "'-'";
    case YYSYMBOL_STAR: return "'*'";
    case YYSYMBOL_SLASH: return "'/'";
    default: return NULL;
    }
}

/* Appends to buf (capacity cap) without overflowing it. */
static void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
}

/* "unexpected ...": the lookahead token, with its text where that helps. */
static void describe_unexpected(char *buf, size_t cap, yysymbol_kind_t k, const lang_parser *ctx)
{
    switch (k) {
    case YYSYMBOL_YYEOF: append(buf, cap, "end of file"); break;
    case YYSYMBOL_IDENT: append(buf, cap, "identifier '%s'", ctx->last_text); break;
    case YYSYMBOL_INT: append(buf, cap, "integer %s", ctx->last_text); break;
    case YYSYMBOL_FLOAT: append(buf, cap, "number %s", ctx->last_text); break;
    case YYSYMBOL_STRING: append(buf, cap, "string %s", ctx->last_text); break;
    default: {
        const char *name = expected_name(k);
        append(buf, cap, "%s", name ? name : "token");
        break;
    }
    }
}

/* "syntax error: unexpected X, expected A, B or C".  The tokens that start an expression
 * are summed up as "an expression", the binary operators as "an operator"; a list of more
 * than five is left out. */
static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner, lang_parser *ctx)
{
    (void)scanner;
    static const yysymbol_kind_t expr_start[] = {
        YYSYMBOL_IDENT, YYSYMBOL_INT, YYSYMBOL_FLOAT, YYSYMBOL_STRING, YYSYMBOL_TRUE,
        YYSYMBOL_FALSE, YYSYMBOL_IN, YYSYMBOL_LPAREN, YYSYMBOL_MINUS,
    };
    static const yysymbol_kind_t operators[] = {
        YYSYMBOL_ARROW, YYSYMBOL_PLUS, YYSYMBOL_MINUS, YYSYMBOL_STAR, YYSYMBOL_SLASH,
    };
    enum { NSTART = sizeof expr_start / sizeof expr_start[0], NOPS = sizeof operators / sizeof operators[0] };

    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
    if (n < 0)
        n = 0;
    bool in_set[YYNTOKENS];
    memset(in_set, 0, sizeof in_set);
    for (int i = 0; i < n; i++)
        if (exp[i] >= 0 && exp[i] < YYNTOKENS)
            in_set[exp[i]] = true;

    bool all_start = true, all_ops = true;
    for (int i = 0; i < NSTART; i++)
        all_start = all_start && in_set[expr_start[i]];
    for (int i = 0; i < NOPS; i++)
        all_ops = all_ops && in_set[operators[i]];
    if (all_start)
        for (int i = 0; i < NSTART; i++)
            in_set[expr_start[i]] = false;
    if (all_ops)
        for (int i = 0; i < NOPS; i++)
            in_set[operators[i]] = false;

    const char *names[YYNTOKENS + 2];
    int nnames = 0;
    for (int k = 0; k < YYNTOKENS; k++)
        if (in_set[k] && k != YYSYMBOL_YYEOF && expected_name((yysymbol_kind_t)k))
            names[nnames++] = expected_name((yysymbol_kind_t)k);
    if (all_start)
        names[nnames++] = "an expression";
    if (all_ops)
        names[nnames++] = "an operator";
    if (nnames == 0 && in_set[YYSYMBOL_YYEOF])
        names[nnames++] = "end of file";

    char msg[512] = "syntax error: unexpected ";
    describe_unexpected(msg, sizeof msg, yypcontext_token(yyctx), ctx);
    if (nnames > 0 && nnames <= 5) {
        append(msg, sizeof msg, ", expected ");
        for (int i = 0; i < nnames; i++)
            append(msg, sizeof msg, "%s%s", i == 0 ? "" : i == nnames - 1 ? " or " : ", ", names[i]);
    }
    lang_parser_error(ctx, *yypcontext_location(yyctx), "%s", msg);
    return 0;
}

/* Bison's own messages: only "memory exhausted" reaches here, when the stack would grow
 * past YYMAXDEPTH (or memory ran out). */
static void lang_yyerror(const lang_span *loc, yyscan_t scanner, lang_parser *ctx, const char *msg)
{
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        lang_parser_error(ctx, *loc, "syntax error: nesting too deep");
    else
        lang_parser_error(ctx, *loc, "%s", msg);
}
