/* Matching a weights file to a network: the caller's key renames, the positional mapping of a
 * PyTorch nn.Sequential state_dict ("0.weight", "3.bias" ...), and a report of every mismatch
 * (missing, wrong shape, unknown with the closest network name) when they do not fit.  The rules
 * are cnn_load_options' in cnn.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/strbuf.h"
#include "lang/suggest.h"
#include "ops/mem.h"
#include "runtime/rt.h"
#include "runtime/safetensors.h"

/* ---- renames and the positional mapping ---- */

/* key with every rename applied in order (cnn_mem_malloc'd; NULL: out of memory). */
static char *apply_renames(const char *key, const cnn_load_options *o)
{
    char *cur = cnn_mem_strdup(key);
    for (int r = 0; cur && r < o->nrenames; r++) {
        const char *from = o->renames[r].from, *to = o->renames[r].to ? o->renames[r].to : "";
        size_t lf = strlen(from);
        if (strncmp(cur, from, lf) != 0)
            continue;
        size_t lt = strlen(to), rest = strlen(cur + lf);
        char *next = cnn_mem_malloc(lt + rest + 1);
        if (next) {
            memcpy(next, to, lt);
            memcpy(next + lt, cur + lf, rest + 1);
        }
        cnn_mem_free(cur);
        cur = next;
    }
    return cur;
}

/* The length of key's integer part when key is "<digits>.<suffix>" (suffix not empty), else 0. */
static size_t positional(const char *key)
{
    size_t n = strspn(key, "0123456789");
    return n > 0 && key[n] == '.' && key[n + 1] != '\0' ? n : 0;
}

/* Compares the integer prefixes (digits only, any length) of two positional keys by value. */
static int cmp_int_prefix(const char *a, const char *b)
{
    size_t la = positional(a), lb = positional(b);
    while (la > 1 && *a == '0')
        a++, la--;
    while (lb > 1 && *b == '0')
        b++, lb--;
    if (la != lb)
        return la < lb ? -1 : 1;
    return strncmp(a, b, la);
}

static int cmp_keys_by_int(const void *x, const void *y)
{
    return cmp_int_prefix(*(char *const *)x, *(char *const *)y);
}

/* The layer part of a tensor name: up to its last '.'. */
static size_t layer_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* Maps positional keys to the network's layers when the nn.Sequential rule applies (no key is a
 * network name, every key is "<int>.<suffix>").  Returns false when out of memory. */
static bool map_sequential(const cnn_weights *w, char **keys, int n, bool *applied)
{
    *applied = false;
    if (n == 0)
        return true;
    for (int j = 0; j < n; j++)
        if (!positional(keys[j]) || rt_weights_find(w, keys[j]) >= 0)
            return true;
    /* the layers with weights, in the store's (expansion) order: index of their first tensor */
    int *layers = cnn_mem_malloc(sizeof(int) * ((size_t)w->count + 1));
    char **sorted = cnn_mem_malloc(sizeof(char *) * (size_t)n);
    if (!layers || !sorted) {
        cnn_mem_free(layers);
        cnn_mem_free(sorted);
        return false;
    }
    int nl = 0;
    for (int i = 0; i < w->count; i++) {
        size_t li = layer_len(w->t[i].name);
        bool seen = false;
        for (int k = 0; k < nl && !seen; k++)
            seen = layer_len(w->t[layers[k]].name) == li && strncmp(w->t[layers[k]].name, w->t[i].name, li) == 0;
        if (!seen)
            layers[nl++] = i;
    }
    memcpy(sorted, keys, sizeof(char *) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(char *), cmp_keys_by_int);
    /* every key's rank among the distinct integers, before any key changes */
    int *rank = cnn_mem_malloc(sizeof(int) * (size_t)n);
    bool ok = rank != NULL;
    for (int j = 0; ok && j < n; j++) {
        rank[j] = -1;
        for (int k = 0; k < n; k++) {
            if (k == 0 || cmp_int_prefix(sorted[k], sorted[k - 1]) != 0)
                rank[j]++;
            if (cmp_int_prefix(sorted[k], keys[j]) == 0)
                break;
        }
    }
    for (int j = 0; ok && j < n; j++) {
        if (rank[j] >= nl)
            continue; /* more numbered modules than layers: left as they are, so unknown */
        const char *layer = w->t[layers[rank[j]]].name, *suffix = keys[j] + positional(keys[j]);
        size_t ll = layer_len(layer), ls = strlen(suffix);
        char *name = cnn_mem_malloc(ll + ls + 1);
        if (!(ok = name != NULL))
            break;
        memcpy(name, layer, ll);
        memcpy(name + ll, suffix, ls + 1); /* suffix starts with its '.' */
        cnn_mem_free(keys[j]);
        keys[j] = name;
        *applied = true;
    }
    cnn_mem_free(rank);
    cnn_mem_free(sorted);
    cnn_mem_free(layers);
    return ok;
}

/* ---- the closest network name ---- */


static bool shape_fits(const rt_st_tensor *st, const op_shape *s);

/* The network name closest to key (a tensor t of the file): among those the file lacks, one of
 * t's shape first, then one with the same suffix (".weight"), then the smallest edit distance;
 * when the file lacks none, a name within a few edits.  NULL when there is none. */
static const char *closest(const cnn_weights *w, const char *key, const rt_st_tensor *t, const int *idx)
{
    const char *ks = strrchr(key, '.');
    const char *best = NULL;
    long best_score = 0;
    bool any_missing = false;
    for (int i = 0; i < w->count; i++)
        any_missing |= idx[i] < 0;
    int near = (int)strlen(key) / 3 > 2 ? (int)strlen(key) / 3 : 2;
    for (int i = 0; i < w->count; i++) {
        if (any_missing && idx[i] >= 0)
            continue;
        const char *ns = strrchr(w->t[i].name, '.');
        bool same_suffix = ks && ns && strcmp(ks, ns) == 0;
        int d = lang_edit_distance(key, w->t[i].name, LANG_SUGGEST_MAX);
        if (!any_missing && d > near)
            continue;
        long score = d + (same_suffix ? 0 : 10000) + (shape_fits(t, &w->t[i].shape) ? 0 : 20000);
        if (!best || score < best_score)
            best = w->t[i].name, best_score = score;
    }
    return best;
}

/* ---- matching and the report ---- */

static bool shape_fits(const rt_st_tensor *st, const op_shape *s)
{
    if (st->rank != s->rank)
        return false;
    for (int k = 0; k < s->rank; k++)
        if (st->dims[k] != s->d[k])
            return false;
    return true;
}

static void format_need(char *buf, size_t n, const op_shape *s)
{
    int64_t d[OP_MAX_RANK];
    for (int k = 0; k < s->rank; k++)
        d[k] = s->d[k];
    rt_st_format_shape(buf, n, s->rank, d);
}

/* " (key K)" when the key was renamed, else "". */
static const char *from_key(char *buf, size_t n, const char *key, const char *orig)
{
    if (strcmp(key, orig) == 0)
        return "";
    snprintf(buf, n, " (key %s)", orig);
    return buf;
}

enum { P_MISSING, P_SHAPE, P_UNKNOWN, P_DUP };

/* Writes problem line(s) of one kind; `single` words it as the one-problem message. */
static void report_line(strbuf *b, const cnn_weights *w, const rt_st_file *f, char **keys, const int *idx, int kind,
                        int i, int j, bool single)
{
    char have[128], need[128], fk[512];
    switch (kind) {
    case P_MISSING:
        format_need(need, sizeof need, &w->t[i].shape);
        if (single)
            sb_printf(b, "missing tensor %s", w->t[i].name);
        else
            sb_printf(b, "missing tensor %s %s", w->t[i].name, need);
        break;
    case P_SHAPE: {
        const rt_st_tensor *t = &f->tensors[j];
        rt_st_format_shape(have, sizeof have, t->rank, t->dims);
        format_need(need, sizeof need, &w->t[i].shape);
        sb_printf(b, "%s%s has shape %s, the network needs %s", w->t[i].name, from_key(fk, sizeof fk, keys[j], t->name),
                  have, need);
        break;
    }
    case P_UNKNOWN: {
        const rt_st_tensor *t = &f->tensors[j];
        const char *near = closest(w, keys[j], t, idx);
        rt_st_format_shape(have, sizeof have, t->rank, t->dims);
        sb_printf(b, "unknown tensor %s%s", keys[j], from_key(fk, sizeof fk, keys[j], t->name));
        if (single)
            sb_printf(b, ": the network has no such weight");
        else
            sb_printf(b, " %s", have);
        if (near)
            sb_printf(b, "%sdid you mean %s?", single ? "; " : ": ", near);
        if (single)
            sb_printf(b, " (--allow-extra ignores it)");
        break;
    }
    case P_DUP:
        sb_printf(b, "keys %s and %s both give tensor %s", f->tensors[i].name, f->tensors[j].name, keys[j]);
        break;
    }
}

cnn_status rt_weights_match(cnn_weights *w, const char *path, const rt_st_file *f, const cnn_load_options *opt,
                            int *idx)
{
    for (int r = 0; r < opt->nrenames; r++)
        if (!opt->renames || !opt->renames[r].from || !opt->renames[r].from[0])
            return rt_fail(w->err, CNN_ERR_USAGE, "rename %d has no FROM prefix", r + 1);
    int n = f->count;
    char **keys = cnn_mem_calloc((size_t)n + 1, sizeof *keys);
    int *owner = cnn_mem_malloc(sizeof(int) * ((size_t)n + 1)); /* per key: its weight, or -1 */
    int *dup_of = cnn_mem_malloc(sizeof(int) * ((size_t)n + 1)); /* per key: an earlier key with its name, or -1 */
    bool ok = keys && owner && dup_of;
    for (int j = 0; ok && j < n; j++)
        ok = (keys[j] = apply_renames(f->tensors[j].name, opt)) != NULL;
    bool sequential = false;
    if (ok)
        ok = map_sequential(w, keys, n, &sequential);
    cnn_status st = CNN_OK;
    if (!ok) {
        st = rt_fail(w->err, CNN_ERR_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < w->count; i++)
        idx[i] = -1;
    int count[4] = {0, 0, 0, 0};
    for (int j = 0; j < n; j++) {
        owner[j] = rt_weights_find(w, keys[j]);
        dup_of[j] = -1;
        for (int k = 0; k < j && dup_of[j] < 0; k++)
            if (strcmp(keys[k], keys[j]) == 0)
                dup_of[j] = k;
        if (dup_of[j] >= 0)
            count[P_DUP]++;
        else if (owner[j] >= 0)
            idx[owner[j]] = j;
        else if (!opt->allow_extra)
            count[P_UNKNOWN]++;
    }
    for (int i = 0; i < w->count; i++) {
        if (idx[i] < 0)
            count[P_MISSING]++;
        else if (!shape_fits(&f->tensors[idx[i]], &w->t[i].shape))
            count[P_SHAPE]++;
    }
    int total = count[0] + count[1] + count[2] + count[3];
    if (total == 0)
        goto out;
    st = CNN_ERR_INPUT;
    bool single = total == 1;
    strbuf b = {0};
    sb_printf(&b, "%s: ", path);
    if (!single) {
        static const char *const what[4] = {"missing", "of another shape", "unknown", "duplicated after renaming"};
        sb_printf(&b, "the tensors do not fit the network (");
        const char *sep = "";
        for (int k = 0; k < 4; k++)
            if (count[k]) {
                sb_printf(&b, "%s%d %s", sep, count[k], what[k]);
                sep = ", ";
            }
        sb_printf(&b, ")%s:", sequential ? "; keys mapped by position as an nn.Sequential state_dict's" : "");
    }
    /* the network's tensors in order, then the file's unknown and duplicated keys */
    for (int i = 0; i < w->count; i++) {
        int kind = idx[i] < 0 ? P_MISSING : !shape_fits(&f->tensors[idx[i]], &w->t[i].shape) ? P_SHAPE : -1;
        if (kind < 0)
            continue;
        if (!single)
            sb_printf(&b, "\n  ");
        report_line(&b, w, f, keys, idx, kind, i, idx[i], single);
    }
    for (int j = 0; j < n; j++) {
        int kind = dup_of[j] >= 0 ? P_DUP : owner[j] < 0 && !opt->allow_extra ? P_UNKNOWN : -1;
        if (kind < 0)
            continue;
        if (!single)
            sb_printf(&b, "\n  ");
        report_line(&b, w, f, keys, idx, kind, dup_of[j], j, single);
    }
    if (!single && count[P_UNKNOWN])
        sb_printf(&b, "\n  (--rename FROM=TO renames keys; --allow-extra ignores unknown ones)");
    if (single && sequential)
        sb_printf(&b, " (keys mapped by position as an nn.Sequential state_dict's)");
    char *text = sb_take(&b);
    if (!text) {
        sb_free(&b);
        st = rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    } else if (strlen(text) < sizeof w->err) {
        memcpy(w->err, text, strlen(text) + 1);
        cnn_mem_free(text);
    } else {
        memcpy(w->err, text, sizeof w->err - 1); /* the short form; the whole text in long_err */
        w->err[sizeof w->err - 1] = '\0';
        w->long_err = text;
    }
out:
    for (int j = 0; keys && j < n; j++)
        cnn_mem_free(keys[j]);
    cnn_mem_free(keys);
    cnn_mem_free(owner);
    cnn_mem_free(dup_of);
    return st;
}
