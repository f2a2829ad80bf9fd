/* Semantic analysis, step 3 (see lang/sema.c): evaluation and expansion.  Expressions are
 * evaluated to compile-time values; a layer value is a tree of layer applications, blocks,
 * compositions and repetitions, and applying one to a tensor appends layer applications to
 * the network being expanded, each named <op>_<k> in expansion order (a name= argument
 * takes the name instead, and still counts).  Blocks are expanded inline at each use.
 * Expansion is bounded (layers, steps, nesting) so no input can exhaust memory, time or the
 * stack. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/sema_int.h"
#include "ops/mem.h"

static int apply(sema *s, const layer_val *L, int t);

/* ---------------------------------------------------------------- layers */

static value layer_value(const layer_val *L, lang_span sp)
{
    value v = sema_err_value(sp);
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
        return sema_err_value(sp);
    if (!sema_bind_spec_args(E, op->name, op->args, op->nargs, args, sp, vals, spans))
        return sema_err_value(sp);
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

/* A block called with arguments: its parameters bound (lang/sema_args.c). */
static value make_block_layer(env *E, const block_def *b, const ast_arg *args, lang_span sp)
{
    sema *s = E->s;
    int n = b->item->nparams;
    value *vals = sema_alloc(s, (size_t)(n > 0 ? n : 1) * sizeof *vals);
    if (!vals)
        return sema_err_value(sp);
    if (!sema_bind_block_args(E, b, args, sp, vals) || b->recursive || !b->returns)
        return sema_err_value(sp);
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
    if (!sema_grow(s, (void **)&net->layers, &s->cap_layers, net->nlayers + 1, sizeof *net->layers))
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
        value v = sema_eval(E, a->value);
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
            sema_error(s, v.span, "%s: argument %d must be a tensor, got %s", op->name, idx, sema_describe(&v, got, sizeof got));
            ok = false;
        } else {
            ok = false;
        }
    }
    if (!ok || n > max)
        return sema_err_value(sp);
    if (n < op->min_inputs) {
        sema_error(s, sp, "%s needs at least %d tensors, got %d", op->name, op->min_inputs, n);
        return sema_err_value(sp);
    }
    int t = emit(s, op, NULL, NULL, ins, n, sp);
    if (t < 0)
        return sema_err_value(sp);
    value r = sema_err_value(sp);
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
        sema_scope_add(s, &sc, p->name, params[k++]);
    env E = {.s = s, .sc = &sc, .has_in = true, .in_tensor = t};
    int result = -1;
    char got[128];
    for (const ast_stmt *st = b->item->stmts; st && !s->aborted; st = st->next) {
        if (st->kind == AST_STMT_BIND) {
            value v = sema_eval(&E, st->value);
            sema_scope_add(s, &sc, st->name, v);
        } else if (st->kind == AST_STMT_RETURN && !st->next) {
            value v = sema_eval(&E, st->value);
            if (v.t == V_TENSOR)
                result = (int)v.i;
            else if (v.t != V_ERROR)
                sema_error(s, v.span, "block '%s' must return a tensor, got %s", b->item->name,
                      sema_describe(&v, got, sizeof got));
        }
    }
    sema_scope_free(&sc);
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
            const layer_val **bigger = cnn_mem_malloc((size_t)cap * 2 * sizeof *bigger);
            if (!bigger) {
                s->oom = true;
                t = -1;
                goto out;
            }
            memcpy(bigger, rest, (size_t)n * sizeof *bigger);
            if (rest != small)
                cnn_mem_free(rest);
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
        cnn_mem_free(rest);
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

/* ---------------------------------------------------------------- expressions */

static value eval_name(env *E, const ast_expr *e)
{
    sema *s = E->s;
    const char *name = e->u.str;
    const binding *b = sema_scope_find(E->sc, name);
    if (b)
        return b->v;
    const block_def *blk = sema_find_block(s, name);
    if (blk)
        return make_block_layer(E, blk, NULL, e->span);
    const op_def *op = op_def_find_layer(name);
    if (op) {
        if (op->max_inputs > 1) {
            sema_error(s, e->span, "%s needs its input tensors as arguments, as in %s(a, b)", name, name);
            return sema_err_value(e->span);
        }
        return make_op_layer(E, op, NULL, e->span);
    }
    return sema_err_value(e->span);   /* reported by resolution */
}

static value eval_call(env *E, const ast_expr *e)
{
    sema *s = E->s;
    const char *name = e->u.call.name;
    if (sema_scope_find(E->sc, name))
        return sema_err_value(e->span);
    const block_def *blk = sema_find_block(s, name);
    if (blk)
        return make_block_layer(E, blk, e->u.call.args, e->span);
    const op_def *op = op_def_find_layer(name);
    if (!op)
        return sema_err_value(e->span);
    if (op->max_inputs > 1)
        return apply_multi(E, op, e->u.call.args, e->span);
    return make_op_layer(E, op, e->u.call.args, e->span);
}

static value eval_tuple(env *E, const ast_expr *e)
{
    value r = sema_err_value(e->span);
    r.t = V_TUPLE;
    bool ok = true;
    char got[128];
    for (const ast_expr *x = e->u.tuple.items; x; x = x->next) {
        value v = sema_eval(E, x);
        if (v.t == V_INT) {
            if (r.n < TUPLE_MAX)
                r.tup[r.n] = v.i;
        } else {
            if (v.t != V_ERROR)
                sema_error(E->s, v.span, "tuple items must be integers, got %s", sema_describe(&v, got, sizeof got));
            ok = false;
        }
        r.n++;
    }
    return ok ? r : sema_err_value(e->span);
}

static value eval_neg(env *E, const ast_expr *e)
{
    value v = sema_eval(E, e->u.operand);
    value r = sema_err_value(e->span);
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
        sema_error(E->s, e->span, "invalid operand to unary '-': %s", sema_type_name(v.t));
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
    value r = sema_err_value(node->span);
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
    value r = sema_err_value(node->span);
    char got[128];
    if (a->t == V_ERROR || b->t == V_ERROR)
        return r;
    ast_binop op = node->u.bin.op;
    lang_span op_span = node->u.bin.op_span;
    if (op == AST_OP_ARROW) {
        if (b->t != V_LAYER) {
            sema_error(s, b->span, "the right side of '->' must be a layer, got %s", sema_describe(b, got, sizeof got));
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
        sema_error(s, a->span, "the left side of '->' must be a tensor or a layer, got %s", sema_describe(a, got, sizeof got));
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
            sema_error(s, b->span, "repetition count must be a positive integer, got %s", sema_describe(b, got, sizeof got));
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
    sema_error(s, op_span, "invalid operands to '%s': %s and %s", lang_ast_binop_str(op), sema_type_name(a->t), sema_type_name(b->t));
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
            const ast_expr **bigger = cnn_mem_malloc((size_t)cap * 2 * sizeof *bigger);
            if (!bigger) {
                s->oom = true;
                if (spine != small)
                    cnn_mem_free(spine);
                return sema_err_value(e->span);
            }
            memcpy(bigger, spine, (size_t)n * sizeof *bigger);
            if (spine != small)
                cnn_mem_free(spine);
            spine = bigger;
            cap *= 2;
        }
        spine[n++] = x;
    }
    value acc = sema_eval(E, spine[n - 1]->u.bin.lhs);
    for (int k = n - 1; k >= 0; k--) {
        value rhs = sema_eval(E, spine[k]->u.bin.rhs);
        acc = combine(E, spine[k], &acc, &rhs);
        acc.span = spine[k]->span;
    }
    if (spine != small)
        cnn_mem_free(spine);
    return acc;
}

value sema_eval(env *E, const ast_expr *e)
{
    sema *s = E->s;
    value v = sema_err_value(e->span);
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

/* ---------------------------------------------------------------- networks */

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
    int *idx = cnn_mem_malloc((size_t)n * sizeof *idx);
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
                else if (!first && sema_span_equal(sp, first_span))
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
    cnn_mem_free(idx);
}

void sema_expand_network(sema *s, const ast_item *it, lang_network *net)
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
        if (k >= MAX_IO || !st->dims || st->ndims > 4)
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
            v = sema_err_value(st->name_span);
            if (k < MAX_IO && tensor_of[k] >= 0) {
                v.t = V_TENSOR;
                v.i = tensor_of[k];
            }
            sema_scope_add(s, &sc, st->name, v);
            break;
        }
        case AST_STMT_BIND:
            v = sema_eval(&E, st->value);
            sema_scope_add(s, &sc, st->name, v);
            break;
        case AST_STMT_OUTPUT:
            v = sema_eval(&E, st->value);
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
                sema_error(s, v.span, "output '%s' must be a tensor, got %s", st->name, sema_describe(&v, got, sizeof got));
            }
            sema_scope_add(s, &sc, st->name, v);
            break;
        case AST_STMT_RETURN:
            break;
        }
    }
    sema_scope_free(&sc);
    check_layer_names(s, net);
    s->net = NULL;
}
