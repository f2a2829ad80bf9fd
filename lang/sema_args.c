/* Semantic analysis: binding a call's arguments (see lang/sema.c, step 3).  Layer calls and
 * the train section's optimizer calls are checked against a schema (ops/registry.h's
 * op_argspec): positional and named arguments, defaults (also "=other": a copy of another
 * argument), each value checked and converted into an op_argval. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/sema_int.h"

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

/* Checks a call's arguments against a schema: positional ones in order, then named ones;
 * fills out[0..nspec) (given, present, value, span) with the schema's defaults where absent.
 * Returns false when anything was wrong (all of it reported). */
bool sema_bind_spec_args(env *E, const char *callee, const op_argspec *spec, int nspec, const ast_arg *args,
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
        value v = sema_eval(E, a->value);
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
            slot = sema_find_spec(spec, nspec, a->name);
            if (slot < 0) {
                suggestion g;
                sema_suggest_init(&g, a->name);
                for (int k = 0; k < nspec; k++)
                    sema_suggest_try(&g, spec[k].name);
                sema_error(s, a->name_span, "unknown argument '%s' for %s%s", a->name, callee, sema_suggest_text(&g));
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
        int ref = sema_find_spec(spec, nspec, d + 1);
        if (ref >= 0 && ref != k) {
            out[k] = out[ref];
            out[k].given = false;
            spans[k] = call_span;
        }
    }
    return ok;
}
