/* Semantic analysis: binding a call's arguments (see lang/sema.c, step 3).  One binder
 * places positional and named arguments for every kind of call and reports what does not
 * fit; what is done with each value, and how absent ones are filled, depends on the callee:
 * - layer calls and the train section's optimizer calls follow a schema (ops/registry.h's
 *   op_argspec): each value checked and converted into an op_argval (an int, or where the
 *   schema allows, a pair (h, w) or a triple (d, h, w)), defaults from the schema's text,
 *   "=other" defaults copying another argument;
 * - block calls take compile-time values for the block's parameters, and the defaults are
 *   expressions evaluated with the parameters before them in scope. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/sema_int.h"

static const char *int_kind(unsigned flags)
{
    return flags & OP_ARGF_POSITIVE ? "positive integer" : flags & OP_ARGF_NONNEG ? "non-negative integer" : "integer";
}

/* The tuples an OP_ARG_INTS/PAD argument takes besides an int, for "must be ..." messages
 * about value v: "a pair of", "a triple of", or NULL for none.  An argument that takes
 * both (the pools: 2-D or 3-D by their input) is described by pairs, as 2-D layers are,
 * unless v is a tuple of another length; then it is "a pair or triple of". */
static const char *tuple_words(unsigned flags, const value *v)
{
    bool pair = flags & OP_ARGF_TUPLE_OK, triple = flags & OP_ARGF_TRIPLE_OK;
    if (pair && triple)
        return v->t == V_TUPLE && v->n != 2 ? "a pair or triple of" : "a pair of";
    return pair ? "a pair of" : triple ? "a triple of" : NULL;
}

/* What an argument must be, for "must be ..." messages about value v. */
static void describe_spec(const op_argspec *sp, const value *v, char *buf, size_t cap)
{
    const char *k = int_kind(sp->flags);
    const char *a = sp->flags & (OP_ARGF_POSITIVE | OP_ARGF_NONNEG) ? "a" : "an";
    const char *tuple = tuple_words(sp->flags, v);
    /* "a pair or triple of" is set off by a comma: "a positive integer, or a pair or ..." */
    const char *sep = tuple && strstr(tuple, " or ") ? ", or" : " or";
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
            snprintf(buf, cap, "%s %s%s %s %ss", a, k, sep, tuple, k);
        else
            snprintf(buf, cap, "%s %s", a, k);
        break;
    case OP_ARG_PAD:
        if (tuple)
            snprintf(buf, cap, "%s %s, %s %ss, or \"same\"", a, k, tuple, k);
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
        out->i[0] = out->i[1] = out->i[2] = v->i;
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
            out->i[0] = out->i[1] = out->i[2] = v->i;
            return true;
        }
        /* a pair (h, w) where the spec allows one, a triple (d, h, w) likewise */
        if (v->t == V_TUPLE && ((v->n == 2 && (sp->flags & OP_ARGF_TUPLE_OK)) ||
                                (v->n == 3 && (sp->flags & OP_ARGF_TRIPLE_OK)))) {
            for (int k = 0; k < v->n; k++)
                if (!int_ok(sp->flags, v->tup[k]))
                    return false;
            out->n = v->n;
            for (int k = 0; k < v->n; k++)
                out->i[k] = v->tup[k];
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
        out->i[0] = out->i[1] = out->i[2] = strtoll(t, NULL, 10);
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

/* The offset of the first byte of name that is a control character or not part of valid UTF-8
 * (overlong forms, surrogates and code points past U+10FFFF included), or -1: layer names
 * become keys of the weights files' JSON headers and are printed in tables. */
static long bad_name_byte(const char *name)
{
    const unsigned char *u = (const unsigned char *)name;
    for (long i = 0; u[i];) {
        unsigned c = u[i];
        if (c < 0x20 || c == 0x7f)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        int n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        if (n < 0)
            return i;
        unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
        else if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
        if (u[i + 1] < lo || u[i + 1] > hi)
            return i;
        for (int k = 2; k <= n; k++)
            if (u[i + k] < 0x80 || u[i + k] > 0xbf)
                return i;
        /* C1 control characters (U+0080..U+009F) */
        if (c == 0xc2 && u[i + 1] < 0xa0)
            return i;
        i += n + 1;
    }
    return -1;
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
        long bad = bad_name_byte(v->s);
        if (bad >= 0) {
            sema_error(s, v->span,
                       "%s: 'name' must be UTF-8 text without control characters; byte %ld is 0x%02x", callee, bad,
                       (unsigned char)v->s[bad]);
            return false;
        }
    }
    if (convert_arg(sp, v, out))
        return true;
    char want[128], got[128];
    describe_spec(sp, v, want, sizeof want);
    if (v->t == V_STRING && sp->type == OP_ARG_STRING)
        snprintf(got, sizeof got, "a string of %zu characters", strlen(v->s));
    else
        sema_describe(v, got, sizeof got);
    sema_error(s, v->span, "%s: '%s' must be %s, got %s", callee, sp->name, want, got);
    return false;
}

int sema_find_spec(const op_argspec *spec, int nspec, const char *name)
{
    for (int k = 0; k < nspec; k++)
        if (strcmp(spec[k].name, name) == 0)
            return k;
    return -1;
}

/* ---------------------------------------------------------------- the binder */

/* What a call's arguments are bound to: the callee's argument names, and what to do with a
 * value given for one.  take checks the value written for slot k (at arg), keeps it, and
 * returns false when it does not fit (reported). */
typedef struct binder {
    env *E;
    const char *callee;
    int n;
    const char *const *names;
    bool (*take)(void *ctx, int k, const ast_arg *arg, const value *v);
    void *ctx;
} binder;

static int find_name(const binder *B, const char *name)
{
    for (int k = 0; k < B->n; k++)
        if (strcmp(B->names[k], name) == 0)
            return k;
    return -1;
}

/* Binds a call's arguments to slots: positional ones in order, then named ones.  Every
 * argument is evaluated, in order, and each one that lands in a slot goes to B->take.
 * Fills given[0..B->n); *misplaced tells whether an argument went nowhere ("missing" would
 * then be noise).  Returns false when anything was wrong (reported). */
static bool bind(const binder *B, const ast_arg *args, bool *given, bool *misplaced)
{
    sema *s = B->E->s;
    const char *callee = B->callee;
    int n = B->n;
    bool ok = true;
    int pos = 0;
    bool named = false;
    memset(given, 0, (size_t)n * sizeof *given);
    *misplaced = false;
    for (const ast_arg *a = args; a; a = a->next) {
        value v = sema_eval(B->E, a->value);
        int slot;
        if (!a->name) {
            if (named) {   /* reported by resolution */
                ok = false;
                *misplaced = true;
                continue;
            }
            if (pos >= n) {
                if (pos == n) {
                    if (n == 0)
                        sema_error(s, a->span, "too many arguments for %s: it takes none", callee);
                    else
                        sema_error(s, a->span, "too many arguments for %s: it takes at most %d", callee, n);
                }
                pos++;
                ok = false;
                continue;
            }
            slot = pos++;
        } else {
            named = true;
            slot = find_name(B, a->name);
            if (slot < 0) {
                suggestion g;
                sema_suggest_init(&g, a->name);
                for (int k = 0; k < n; k++)
                    sema_suggest_try(&g, B->names[k]);
                sema_error(s, a->name_span, "unknown argument '%s' for %s%s", a->name, callee, sema_suggest_text(&g));
                ok = false;
                *misplaced = true;
                continue;
            }
            if (given[slot]) {
                sema_error(s, a->name_span, "argument '%s' for %s is given twice", B->names[slot], callee);
                ok = false;
                continue;
            }
        }
        given[slot] = true;
        if (!B->take(B->ctx, slot, a, &v))
            ok = false;
    }
    return ok;
}

/* ---------------------------------------------------------------- schemas */

typedef struct spec_ctx {
    sema *s;
    const char *callee;
    const op_argspec *spec;
    op_argval *out;
    lang_span *spans;
} spec_ctx;

static bool take_spec_arg(void *ctx, int k, const ast_arg *arg, const value *v)
{
    spec_ctx *c = ctx;
    if (!check_value(c->s, c->callee, &c->spec[k], v, &c->out[k]))
        return false;
    c->out[k].given = c->out[k].present = true;
    c->spans[k] = arg->value->span;
    return true;
}

bool sema_bind_spec_args(env *E, const char *callee, const op_argspec *spec, int nspec, const ast_arg *args,
                         lang_span call_span, op_argval *out, lang_span *spans)
{
    sema *s = E->s;
    const char *names[OP_MAX_ARGS];
    bool given[OP_MAX_ARGS];
    bool misplaced;
    for (int k = 0; k < nspec; k++)
        names[k] = spec[k].name;
    memset(out, 0, (size_t)nspec * sizeof *out);
    spec_ctx c = {s, callee, spec, out, spans};
    binder B = {E, callee, nspec, names, take_spec_arg, &c};
    bool ok = bind(&B, args, given, &misplaced);
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
        int ref = sema_find_spec(spec, nspec, d + 1);
        if (ref >= 0 && ref != k) {
            out[k] = out[ref];
            out[k].given = false;
            spans[k] = call_span;
        }
    }
    return ok;
}

/* ---------------------------------------------------------------- block parameters */

typedef struct block_ctx {
    sema *s;
    const char *callee;
    const char *const *names;
    value *vals;
} block_ctx;

/* A block's arguments are compile-time values of any type. */
static bool take_block_arg(void *ctx, int k, const ast_arg *arg, const value *v)
{
    block_ctx *c = ctx;
    bool ok = true;
    (void)arg;
    if (v->t == V_TENSOR) {
        sema_error(c->s, v->span, "%s: '%s' must be a compile-time value, got a tensor", c->callee, c->names[k]);
        ok = false;
    } else if (v->t == V_ERROR) {
        ok = false;
    }
    c->vals[k] = *v;
    return ok;
}

bool sema_bind_block_args(env *E, const block_def *b, const ast_arg *args, lang_span call_span, value *vals)
{
    sema *s = E->s;
    const ast_item *it = b->item;
    const char *bname = it->name;
    int n = it->nparams;
    size_t cap = (size_t)(n > 0 ? n : 1);
    bool *given = sema_alloc(s, cap * sizeof *given);
    const ast_param **params = sema_alloc(s, cap * sizeof *params);
    const char **names = sema_alloc(s, cap * sizeof *names);
    if (!given || !params || !names)
        return false;
    int k = 0;
    for (const ast_param *p = it->params; p && k < n; p = p->next) {
        names[k] = p->name;
        params[k++] = p;
    }
    block_ctx c = {s, bname, names, vals};
    binder B = {E, bname, n, names, take_block_arg, &c};
    bool misplaced;
    if (!bind(&B, args, given, &misplaced))
        return false;

    /* the defaults, in order, up to the first that fails */
    bool ok = true;
    scope sc = {0};
    for (int j = 0; j < n && ok; j++) {
        if (!given[j]) {
            if (!params[j]->dflt) {
                sema_error(s, call_span, "missing argument '%s' for %s", params[j]->name, bname);
                ok = false;
                continue;
            }
            env D = {.s = s, .sc = &sc};
            vals[j] = sema_eval(&D, params[j]->dflt);
            if (vals[j].t == V_TENSOR) {
                sema_error(s, vals[j].span, "%s: '%s' must be a compile-time value, got a tensor", bname, params[j]->name);
                ok = false;
            } else if (vals[j].t == V_ERROR) {
                ok = false;
            }
        }
        sema_scope_add(s, &sc, params[j]->name, vals[j]);
    }
    sema_scope_free(&sc);
    return ok;
}
