/* Semantic analysis, internal: what the steps of lang/sema.c share.  The steps are
 * lang/sema.c (items, the entry point, diagnostics, shared helpers), lang/sema_resolve.c
 * (name resolution, recursion among blocks), lang/sema_args.c (binding call arguments),
 * lang/sema_eval.c (evaluation and expansion of networks) and lang/sema_train.c (train
 * sections).  Not for use outside lang/. */
#ifndef CNN_LANG_SEMA_INT_H
#define CNN_LANG_SEMA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lang/ast.h"
#include "lang/lang.h"

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

/* Where expressions are evaluated: the names in scope and, inside a block, its input. */
typedef struct env {
    sema *s;
    scope *sc;
    bool has_in;
    int in_tensor;
} env;

/* ---------------------------------------------------------------- lang/sema.c */

bool sema_span_equal(lang_span a, lang_span b);

/* Reports an error unless the same message at the same place is there already (a block
 * body is checked at each expansion). */
void sema_error(sema *s, lang_span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "Did you mean": the closest candidate to name within a few edits, ignoring case. */
typedef struct suggestion {
    const char *name;
    const char *best;
    int dist, limit;
    char text[128];             /* "; did you mean 'x'?" or "" */
} suggestion;

void sema_suggest_init(suggestion *g, const char *name);
void sema_suggest_try(suggestion *g, const char *candidate);
/* "; did you mean 'x'?", or "" when no candidate was close. */
const char *sema_suggest_text(suggestion *g);

/* n zeroed bytes from the arena; NULL (and s->oom set) when out of memory. */
void *sema_alloc(sema *s, size_t n);
/* Grows *p to hold need elements of elem bytes; false (and s->oom set) when out of memory. */
bool sema_grow(sema *s, void **p, int *cap, int need, size_t elem);

const binding *sema_scope_find(const scope *sc, const char *name);
/* Binds name.  A second binding, or one of a block's or layer's name, is ignored:
 * resolution reported it, and the name keeps meaning what it meant there. */
void sema_scope_add(sema *s, scope *sc, const char *name, value v);
void sema_scope_free(scope *sc);
/* The valid block called name, or NULL. */
block_def *sema_find_block(const sema *s, const char *name);

const char *sema_type_name(vtype t);
/* A value as messages show it after "got": 3, 2.5, "same", true, (3, 3), a tensor. */
const char *sema_describe(const value *v, char *buf, size_t cap);
/* A V_ERROR value at sp. */
value sema_err_value(lang_span sp);

/* ---------------------------------------------------------------- lang/sema_resolve.c */

void sema_resolve_network(sema *s, const ast_item *it);
void sema_resolve_block(sema *s, block_def *b);
/* Resolves an expression outside any network or block (no names in scope, no 'in'). */
void sema_resolve_free_expr(sema *s, const ast_expr *e);
/* Marks the blocks on each cycle of the use graph recursive and reports each cycle. */
void sema_find_recursion(sema *s);

/* ---------------------------------------------------------------- lang/sema_args.c */

/* The index of the argument called name in spec[0..nspec), or -1. */
int sema_find_spec(const op_argspec *spec, int nspec, const char *name);

/* Binds a call's arguments to a schema (a layer's or an optimizer's): positional ones in
 * order, then named ones; each value checked and converted; fills out[0..nspec) (given,
 * present, value) and spans[0..nspec), with the schema's defaults where absent.  Returns
 * false when anything was wrong (all of it reported). */
bool sema_bind_spec_args(env *E, const char *callee, const op_argspec *spec, int nspec, const ast_arg *args,
                         lang_span call_span, op_argval *out, lang_span *spans);

/* Binds a block call's arguments to the block's parameters: fills vals[0..nparams), the
 * defaults evaluated in order, each with the parameters before it in scope.  Returns false
 * when anything was wrong (all of it reported). */
bool sema_bind_block_args(env *E, const block_def *b, const ast_arg *args, lang_span call_span, value *vals);

/* ---------------------------------------------------------------- lang/sema_eval.c */

value sema_eval(env *E, const ast_expr *e);
/* Expands network item it into net (named, inputs, layers, outputs). */
void sema_expand_network(sema *s, const ast_item *it, lang_network *net);

/* ---------------------------------------------------------------- lang/sema_train.c */

/* Spec section 7's training settings, for a network without a train section. */
lang_train sema_train_defaults(void);
/* Checks train section it and fills in its network's settings in prog. */
void sema_check_train(sema *s, const ast_item *it, lang_program *prog);

#endif
