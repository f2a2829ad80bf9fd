/* ONNX import, one translation per operator (lang/onnx_int.h): each reads its node's inputs
 * (activations or constants), checks the attributes against what the network's layers can
 * express, and adds layers and weights, or folds constants at import (the Shape -> Gather ->
 * Unsqueeze -> Concat -> Reshape chain PyTorch writes for x.view(x.size(0), -1)). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/onnx_int.h"
#include "lang/strbuf.h"
#include "ops/checked.h"

/* ---------------------------------------------------------------- attributes, inputs */

static const Onnx__AttributeProto *attr(onnx_imp *im, const char *name)
{
    const Onnx__NodeProto *n = im->node;
    for (size_t a = 0; a < n->n_attribute; a++)
        if (n->attribute[a] && n->attribute[a]->name && strcmp(n->attribute[a]->name, name) == 0)
            return n->attribute[a];
    return NULL;
}

/* An attribute of the wrong kind is an error (reported once per node and name), never a
 * silent default. */
static bool attr_kind(onnx_imp *im, const Onnx__AttributeProto *a, bool ok, const char *kind)
{
    if (ok)
        return true;
    char msg[160];
    snprintf(msg, sizeof msg, "attribute '%.60s' must be %s", a->name, kind);
    for (int k = 0; k < im->d->count; k++)
        if (im->d->items[k].message && strstr(im->d->items[k].message, msg) &&
            strstr(im->d->items[k].message, im->node->name ? im->node->name : ""))
            return false;
    onnx_node_error(im, "%s", msg);
    return false;
}

static int64_t attr_int(onnx_imp *im, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a || !attr_kind(im, a, a->has_i && (!a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT),
                         "an int"))
        return dflt;
    return a->i;
}

static double attr_float(onnx_imp *im, const char *name, double dflt)
{
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a || !attr_kind(im, a, a->has_f && (!a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT),
                         "a float"))
        return dflt;
    return a->f;
}

/* The ints of attribute name: their count (-1 when absent; -2, reported, when more than max). */
static int attr_ints(onnx_imp *im, const char *name, int64_t *out, int max)
{
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a)
        return -1;
    if (!attr_kind(im, a, !a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, "a list of ints"))
        return -2;
    if (a->n_ints > (size_t)max) {
        onnx_node_error(im, "attribute '%s' has %zu values, at most %d are expected", name, a->n_ints, max);
        return -2;
    }
    for (size_t k = 0; k < a->n_ints; k++)
        out[k] = a->ints[k];
    return (int)a->n_ints;
}

/* The string attribute (NULL when absent), NUL-terminated into buf. */
static const char *attr_str(onnx_imp *im, const char *name, char *buf, size_t n)
{
    const Onnx__AttributeProto *a = attr(im, name);
    if (!a || !attr_kind(im, a, a->has_s && (!a->has_type || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING),
                         "a string"))
        return NULL;
    size_t len = a->s.len < n - 1 ? a->s.len : n - 1;
    if (len > 0)
        memcpy(buf, a->s.data, len);
    buf[len] = '\0';
    return buf;
}

static ov *in_val(onnx_imp *im, size_t k)
{
    const Onnx__NodeProto *n = im->node;
    if (k >= n->n_input || !n->input[k] || !n->input[k][0])
        return NULL;
    int v = onnx_find(im, n->input[k]);
    return v >= 0 ? &im->vals[v] : NULL;
}

static ov *out_val(onnx_imp *im, size_t k)
{
    const Onnx__NodeProto *n = im->node;
    if (k >= n->n_output || !n->output[k] || !n->output[k][0])
        return NULL;
    int v = onnx_find(im, n->output[k]);
    if (v < 0)
        return NULL;
    ov *o = &im->vals[v];
    const char *name = o->name;
    memset(o, 0, sizeof *o);
    o->name = name;
    return o;
}

/* True when output k is read by something (another node or the graph's outputs). */
static bool output_used(onnx_imp *im, size_t k)
{
    const Onnx__NodeProto *n = im->node;
    if (k >= n->n_output || !n->output[k] || !n->output[k][0])
        return false;
    int v = onnx_find(im, n->output[k]);
    return v >= 0 && im->uses && im->uses[v] > 0;
}

static bool need_inputs(onnx_imp *im, size_t lo, size_t hi)
{
    size_t n = im->node->n_input;
    while (n > 0 && (!im->node->input[n - 1] || !im->node->input[n - 1][0]))
        n--;
    if (n < lo || n > hi) {
        if (lo == hi)
            onnx_node_error(im, "expects %zu input%s, has %zu", lo, lo == 1 ? "" : "s", n);
        else
            onnx_node_error(im, "expects %zu to %zu inputs, has %zu", lo, hi, n);
        return false;
    }
    for (size_t k = 0; k < lo; k++)
        if (!in_val(im, k)) {
            onnx_node_error(im, "input %zu is missing", k);
            return false;
        }
    return true;
}

/* Input k as an activation; a pending Pad is an error unless allow_pad. */
static ov *act_in(onnx_imp *im, size_t k, bool allow_pad)
{
    ov *v = in_val(im, k);
    if (!v) {
        onnx_node_error(im, "input %zu is missing", k);
        return NULL;
    }
    if (v->kind != OV_ACT) {
        onnx_node_error(im, "input %zu ('%.200s') is a constant; cnnc supports this operator on activations only", k,
                        v->name);
        return NULL;
    }
    if (v->padded && !allow_pad) {
        onnx_node_error(im, "reads the output of a Pad; cnnc supports Pad only before Conv and AveragePool");
        return NULL;
    }
    return v;
}

/* Input k as a constant of the given kind (OV_FLOAT or OV_INT), or NULL (reported). */
static ov *const_in(onnx_imp *im, size_t k, ov_kind kind, const char *what)
{
    ov *v = in_val(im, k);
    if (!v || v->kind != kind) {
        onnx_node_error(im, "the %s (input %zu%s%.200s%s) must be a %s constant (an initializer or a Constant)", what, k,
                        v ? ", '" : "", v ? v->name : "", v ? "'" : "", kind == OV_FLOAT ? "float" : "integer");
        return NULL;
    }
    return v;
}

/* An activation output of layer tensor t with ONNX dims and the network's shape. */
static void set_act(ov *o, int tensor, int rank, const int64_t *dims, const op_shape *shape)
{
    o->kind = OV_ACT;
    o->tensor = tensor;
    o->rank = rank;
    for (int d = 0; d < rank; d++)
        o->dims[d] = dims[d];
    o->shape = *shape;
}

static int layer_tensor(onnx_imp *im) { return im->x->net.ninputs + im->x->net.nlayers - 1; }

/* The layer name for a layer with weights: the weight initializer's name without ".weight"
 * (PyTorch's module path), or the node's name without its operator ("/layer1/layer1.0/conv1/Conv"
 * gives "layer1.0.conv1"). */
static void weighted_name(onnx_imp *im, const ov *w, char *buf, size_t n)
{
    buf[0] = '\0';
    const char *in = w ? w->init_name : NULL;
    size_t len = in ? strlen(in) : 0;
    if (in && len > 7 && strcmp(in + len - 7, ".weight") == 0 && strncmp(in, "onnx::", 6) != 0) {
        snprintf(buf, n, "%.*s", (int)(len - 7), in);
        return;
    }
    const char *nm = im->node->name ? im->node->name : "";
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", nm);
    /* drop the trailing operator component */
    char *slash = strrchr(tmp, '/');
    if (slash && strncmp(slash + 1, im->node->op_type, strlen(im->node->op_type)) == 0)
        *slash = '\0';
    /* PyTorch's scopes: "/layers/layers.0/conv1" is the module layers.0.conv1 (a component that
     * extends the one before it with a '.' replaces it) */
    char path[256] = "";
    size_t last = 0; /* where the last component starts in path */
    for (char *c = strtok(tmp, "/"); c; c = strtok(NULL, "/")) {
        size_t ll = strlen(path) - last;
        if (path[0] && strncmp(c, path + last, ll) == 0 && c[ll] == '.') {
            snprintf(path + last, sizeof path - last, "%s", c);
        } else {
            size_t at = strlen(path);
            if (at && at + 1 < sizeof path)
                path[at++] = '.', path[at] = '\0';
            last = at;
            snprintf(path + at, sizeof path - at, "%s", c);
        }
    }
    snprintf(buf, n, "%s", path);
}

/* ---------------------------------------------------------------- window geometry */

typedef struct window {
    int sdims;
    int64_t k[3], s[3], d[3], p[3];
    int64_t out[3];
} window;

/* Reads kernel (from the weight or kernel_shape), strides, dilations, pads and auto_pad for a
 * window over x's spatial axes; adds x's pending Pad; checks that the padding is the same on
 * both sides.  False when reported. */
static bool window_attrs(onnx_imp *im, const ov *x, window *w, bool has_dilations, const int64_t *wkernel)
{
    int sd = x->rank - 1;
    w->sdims = sd;
    int64_t ks[3], v[6];
    int nk = attr_ints(im, "kernel_shape", ks, 3);
    if (nk == -2)
        return false;
    for (int i = 0; i < sd; i++) {
        w->k[i] = wkernel ? wkernel[i] : nk == sd ? ks[i] : 0;
        if (nk >= 0 && (nk != sd || ks[i] != w->k[i])) {
            onnx_node_error(im, "attribute 'kernel_shape' does not match the %d spatial axes%s", sd,
                            wkernel ? " and the weight's kernel" : "");
            return false;
        }
        if (w->k[i] < 1) {
            onnx_node_error(im, "attribute 'kernel_shape' is missing or not positive");
            return false;
        }
        w->s[i] = 1, w->d[i] = 1, w->p[i] = 0;
    }
    int n = attr_ints(im, "strides", v, 3);
    if (n == -2 || (n >= 0 && n != sd)) {
        if (n != -2)
            onnx_node_error(im, "attribute 'strides' has %d values for %d spatial axes", n, sd);
        return false;
    }
    for (int i = 0; i < n; i++)
        w->s[i] = v[i];
    if (has_dilations) {
        n = attr_ints(im, "dilations", v, 3);
        if (n == -2 || (n >= 0 && n != sd)) {
            if (n != -2)
                onnx_node_error(im, "attribute 'dilations' has %d values for %d spatial axes", n, sd);
            return false;
        }
        for (int i = 0; i < n; i++)
            w->d[i] = v[i];
    }
    for (int i = 0; i < sd; i++)
        if (w->s[i] < 1 || w->d[i] < 1 || w->s[i] > OP_MAX_NUMEL || w->d[i] > OP_MAX_NUMEL || w->k[i] > OP_MAX_NUMEL) {
            onnx_node_error(im, "strides, dilations and kernel sizes must be positive");
            return false;
        }
    int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
    n = attr_ints(im, "pads", v, 6);
    if (n == -2 || (n >= 0 && n != 2 * sd)) {
        if (n != -2)
            onnx_node_error(im, "attribute 'pads' has %d values for %d spatial axes", n, sd);
        return false;
    }
    for (int i = 0; i < n / 2; i++)
        pb[i] = v[i], pe[i] = v[i + sd];
    char ap[32];
    const char *autopad = attr_str(im, "auto_pad", ap, sizeof ap);
    if (autopad && strcmp(autopad, "NOTSET") != 0) {
        if (n > 0) {
            onnx_node_error(im, "attributes 'auto_pad' and 'pads' are both given");
            return false;
        }
        if (strcmp(autopad, "VALID") == 0) {
            /* no padding */
        } else if (strcmp(autopad, "SAME_UPPER") == 0 || strcmp(autopad, "SAME_LOWER") == 0) {
            for (int i = 0; i < sd; i++) {
                int64_t in = x->dims[i + 1], out = (in + w->s[i] - 1) / w->s[i];
                int64_t a, b;
                if (!ck_mul_i64(out - 1, w->s[i], &a) || !ck_mul_i64(w->k[i] - 1, w->d[i], &b) || a > OP_MAX_NUMEL ||
                    b > OP_MAX_NUMEL) {
                    onnx_node_error(im, "the window on spatial axis %d is too large", i);
                    return false;
                }
                int64_t total = a + b + 1 - in;
                if (total < 0)
                    total = 0;
                pb[i] = autopad[5] == 'U' ? total / 2 : total - total / 2;
                pe[i] = total - pb[i];
            }
        } else {
            onnx_node_error(im, "attribute 'auto_pad' = '%s' is not supported", autopad);
            return false;
        }
    }
    for (int i = 0; i < sd; i++) {
        if (x->padded)
            pb[i] += x->padb[i], pe[i] += x->pade[i];
        if (pb[i] < 0 || pe[i] < 0 || pb[i] > OP_MAX_NUMEL || pe[i] > OP_MAX_NUMEL) {
            onnx_node_error(im, "negative or too large padding is not supported");
            return false;
        }
        if (pb[i] != pe[i]) {
            onnx_node_error(im, "attribute 'pads' (with auto_pad and any Pad before it) pads spatial axis %d by %" PRId64
                                " before and %" PRId64 " after; cnnc pads both sides of an axis alike",
                            i, pb[i], pe[i]);
            return false;
        }
        w->p[i] = pb[i];
        int64_t span;
        if (!ck_mul_i64(w->k[i] - 1, w->d[i], &span) || span >= OP_MAX_NUMEL) {
            onnx_node_error(im, "the window on spatial axis %d is too large", i);
            return false;
        }
        span += 1;
        int64_t room = x->dims[i + 1] + 2 * w->p[i] - span;
        if (room < 0) {
            onnx_node_error(im, "the window (%" PRId64 ") is larger than the padded input (%" PRId64 ") on spatial axis %d",
                            span, x->dims[i + 1] + 2 * w->p[i], i);
            return false;
        }
        w->out[i] = room / w->s[i] + 1;
    }
    return true;
}

/* cnnc's tuples are [d,] h, w in that order: the same as ONNX's spatial order. */

/* ---------------------------------------------------------------- operators */

static void op_conv(onnx_imp *im)
{
    if (!need_inputs(im, 2, 3))
        return;
    ov *x = act_in(im, 0, true);
    ov *W = const_in(im, 1, OV_FLOAT, "weight");
    ov *B = in_val(im, 2) ? const_in(im, 2, OV_FLOAT, "bias") : NULL;
    if (!x || !W || (in_val(im, 2) && !B))
        return;
    int sd = x->rank - 1;
    if (sd < 1 || sd > 3 || x->shape.rank != x->rank) {
        onnx_node_error(im, "the input has shape of rank %d (without the batch axis); cnnc convolves [C, L], [C, H, W] "
                            "and [C, D, H, W]%s",
                        x->rank, x->shape.rank != x->rank ? " (GlobalAveragePool's output is a vector in cnnc)" : "");
        return;
    }
    if (W->crank != sd + 2) {
        onnx_node_error(im, "the weight has rank %d, expected %d", W->crank, sd + 2);
        return;
    }
    int64_t group = attr_int(im, "group", 1), M = W->cdims[0], C = x->dims[0];
    if (group < 1 || M % group != 0 || W->cdims[1] * group != C) {
        onnx_node_error(im, "the weight [%" PRId64 ", %" PRId64 ", ...] with group %" PRId64
                            " does not fit an input of %" PRId64 " channels",
                        M, W->cdims[1], group, C);
        return;
    }
    if (B && B->numel != M) {
        onnx_node_error(im, "the bias has %" PRId64 " values for %" PRId64 " filters", B->numel, M);
        return;
    }
    window w;
    if (!window_attrs(im, x, &w, true, W->cdims + 2))
        return;
    char name[256];
    weighted_name(im, W, name, sizeof name);
    op_kind kind = sd == 1 ? OP_CONV1D : sd == 2 ? OP_CONV2D : OP_CONV3D;
    lang_layer *L = onnx_add_layer(im, kind, name[0] ? name : NULL, 1, &x->tensor);
    if (!L)
        return;
    if (!name[0]) { /* always named, so that the printed source keeps the weight names */
        onnx_set_int(L, "name", 0);
        for (int a = 0; a < L->op->nargs; a++)
            if (strcmp(L->op->args[a].name, "name") == 0)
                snprintf(L->args[a].s, sizeof L->args[a].s, "%s", L->name);
    }
    onnx_set_int(L, "filters", M);
    onnx_set_ints(L, "kernel", sd, w.k);
    bool any_s = false, any_p = false, any_d = false;
    for (int i = 0; i < sd; i++)
        any_s |= w.s[i] != 1, any_p |= w.p[i] != 0, any_d |= w.d[i] != 1;
    if (any_s)
        onnx_set_ints(L, "stride", sd, w.s);
    if (any_p)
        onnx_set_ints(L, "pad", sd, w.p);
    if (any_d)
        onnx_set_ints(L, "dilation", sd, w.d);
    if (group != 1)
        onnx_set_int(L, "groups", group);
    if (!B)
        onnx_set_bool(L, "bias", false);
    float *wd = onnx_add_tensor(im, L->name, "weight", W->crank, W->cdims);
    if (!wd)
        return;
    memcpy(wd, W->f, sizeof(float) * (size_t)W->numel);
    if (B) {
        float *bd = onnx_add_tensor(im, L->name, "bias", 1, &M);
        if (!bd)
            return;
        memcpy(bd, B->f, sizeof(float) * (size_t)M);
    }
    ov *o = out_val(im, 0);
    if (!o)
        return;
    int64_t dims[OP_MAX_RANK] = {M};
    op_shape s = {.rank = sd + 1, .d = {M}};
    for (int i = 0; i < sd; i++)
        dims[i + 1] = s.d[i + 1] = w.out[i];
    set_act(o, layer_tensor(im), sd + 1, dims, &s);
}

static void op_pool(onnx_imp *im, bool avg)
{
    if (!need_inputs(im, 1, 1))
        return;
    ov *x = act_in(im, 0, avg);
    if (!x)
        return;
    int sd = x->rank - 1;
    if (sd < 1 || sd > 3 || x->shape.rank != x->rank) {
        onnx_node_error(im, "the input has rank %d (without the batch axis); cnnc pools [C, L], [C, H, W] and "
                            "[C, D, H, W]",
                        x->rank);
        return;
    }
    if (attr_int(im, "ceil_mode", 0) != 0) {
        onnx_node_error(im, "attribute 'ceil_mode' = 1 is not supported (cnnc's output sizes round down)");
        return;
    }
    if (!avg && attr_int(im, "storage_order", 0) != 0) {
        onnx_node_error(im, "attribute 'storage_order' = 1 is not supported");
        return;
    }
    if (!avg && output_used(im, 1)) {
        onnx_node_error(im, "output 1 (the indices) is not supported");
        return;
    }
    int64_t own[6];
    int nown = attr_ints(im, "pads", own, 6);
    bool own_pad = false;
    for (int i = 0; i < nown; i++)
        own_pad |= own[i] != 0;
    if (avg && own_pad && attr_int(im, "count_include_pad", 0) == 0) {
        onnx_node_error(im, "attribute 'count_include_pad' = 0 with padding is not supported: cnnc's avgpool counts "
                            "the padding as zeros in the mean (count_include_pad = 1, PyTorch's default)");
        return;
    }
    window w;
    if (!window_attrs(im, x, &w, !avg, NULL))
        return;
    for (int i = 0; i < sd; i++)
        if (w.d[i] != 1) {
            onnx_node_error(im, "attribute 'dilations' other than 1 is not supported for pooling");
            return;
        }
    lang_layer *L = onnx_add_layer(im, avg ? OP_AVGPOOL : OP_MAXPOOL, NULL, 1, &x->tensor);
    if (!L)
        return;
    onnx_set_ints(L, "size", sd, w.k);
    bool same = true, any_p = false;
    for (int i = 0; i < sd; i++)
        same &= w.s[i] == w.k[i], any_p |= w.p[i] != 0;
    if (!same)
        onnx_set_ints(L, "stride", sd, w.s);
    if (any_p)
        onnx_set_ints(L, "pad", sd, w.p);
    ov *o = out_val(im, 0);
    if (!o)
        return;
    int64_t dims[OP_MAX_RANK] = {x->dims[0]};
    op_shape s = {.rank = sd + 1, .d = {x->dims[0]}};
    for (int i = 0; i < sd; i++)
        dims[i + 1] = s.d[i + 1] = w.out[i];
    set_act(o, layer_tensor(im), sd + 1, dims, &s);
}

static void op_global_avgpool(onnx_imp *im)
{
    if (!need_inputs(im, 1, 1))
        return;
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    if (x->rank < 2 || x->shape.rank != x->rank) {
        onnx_node_error(im, "the input must be an image, signal or volume ([C, ...] with spatial axes)");
        return;
    }
    if (!onnx_add_layer(im, OP_GLOBAL_AVGPOOL, NULL, 1, &x->tensor))
        return;
    ov *o = out_val(im, 0);
    if (!o)
        return;
    int64_t dims[OP_MAX_RANK] = {x->dims[0], 1, 1, 1, 1};
    op_shape s = {.rank = 1, .d = {x->dims[0]}};
    set_act(o, layer_tensor(im), x->rank, dims, &s);
}

static void op_activation(onnx_imp *im, op_kind kind)
{
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    lang_layer *L = onnx_add_layer(im, kind, NULL, 1, &x->tensor);
    if (!L)
        return;
    if (kind == OP_LEAKY_RELU) {
        double alpha = attr_float(im, "alpha", 0.01);
        if (alpha != (double)0.01f)
            onnx_set_float(L, "alpha", alpha);
    }
    ov *o = out_val(im, 0);
    if (o)
        set_act(o, layer_tensor(im), x->rank, x->dims, &x->shape);
}

static void op_clip(onnx_imp *im)
{
    if (!need_inputs(im, 1, 3))
        return;
    ov *lo = in_val(im, 1) ? const_in(im, 1, OV_FLOAT, "minimum") : NULL;
    ov *hi = in_val(im, 2) ? const_in(im, 2, OV_FLOAT, "maximum") : NULL;
    if ((in_val(im, 1) && !lo) || (in_val(im, 2) && !hi))
        return;
    bool relu = lo && lo->numel == 1 && lo->f[0] == 0.0f && (!hi || (hi->numel == 1 && isinf(hi->f[0]) && hi->f[0] > 0));
    if (!relu) {
        onnx_node_error(im, "Clip to [%g, %g] has no cnnc layer: only a minimum of 0 without a maximum (relu) maps",
                        lo && lo->numel == 1 ? (double)lo->f[0] : -INFINITY, hi && hi->numel == 1 ? (double)hi->f[0] : INFINITY);
        return;
    }
    op_activation(im, OP_RELU);
}

static void op_batchnorm(onnx_imp *im)
{
    if (!need_inputs(im, 5, 5))
        return;
    ov *x = act_in(im, 0, false);
    ov *p[4] = {const_in(im, 1, OV_FLOAT, "scale"), const_in(im, 2, OV_FLOAT, "bias"), const_in(im, 3, OV_FLOAT, "mean"),
                const_in(im, 4, OV_FLOAT, "variance")};
    if (!x || !p[0] || !p[1] || !p[2] || !p[3])
        return;
    int64_t C = x->dims[0];
    for (int k = 0; k < 4; k++)
        if (p[k]->numel != C) {
            onnx_node_error(im, "input %d has %" PRId64 " values for %" PRId64 " channels", k + 1, p[k]->numel, C);
            return;
        }
    if (attr_int(im, "training_mode", 0) != 0 || output_used(im, 1) || output_used(im, 2)) {
        onnx_node_error(im, "training mode (attribute 'training_mode' or the running statistics' outputs) is not "
                            "supported: export the model in eval mode");
        return;
    }
    double eps = attr_float(im, "epsilon", 1e-5), mom = attr_float(im, "momentum", 0.9);
    if (!(eps > 0)) {
        onnx_node_error(im, "attribute 'epsilon' must be positive");
        return;
    }
    char name[256];
    weighted_name(im, p[0], name, sizeof name);
    lang_layer *L = onnx_add_layer(im, OP_BATCHNORM, name[0] ? name : "batchnorm", 1, &x->tensor);
    if (!L)
        return;
    if (fabs(eps - 1e-5) > 1e-12)
        onnx_set_float(L, "eps", eps);
    if (1.0 - mom >= 0 && 1.0 - mom < 1 && fabs(1.0 - mom - 0.1) > 1e-7)
        onnx_set_float(L, "momentum", 1.0 - mom);
    static const char *const sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        float *d = onnx_add_tensor(im, L->name, sfx[k], 1, &C);
        if (!d)
            return;
        memcpy(d, p[k]->f, sizeof(float) * (size_t)C);
    }
    ov *o = out_val(im, 0);
    if (o)
        set_act(o, layer_tensor(im), x->rank, x->dims, &x->shape);
}

/* A dense layer of M units on x ([K]), weight w[M][K] (filled by the caller). */
static float *dense_layer(onnx_imp *im, const ov *x, const ov *Wv, int64_t M, bool bias, float **bdata)
{
    char name[256];
    weighted_name(im, Wv, name, sizeof name);
    lang_layer *L = onnx_add_layer(im, OP_DENSE, name[0] ? name : "dense", 1, &x->tensor);
    if (!L)
        return NULL;
    onnx_set_int(L, "units", M);
    if (!bias)
        onnx_set_bool(L, "bias", false);
    int64_t dims[2] = {M, x->dims[0]};
    float *w = onnx_add_tensor(im, L->name, "weight", 2, dims);
    if (w && bias)
        *bdata = onnx_add_tensor(im, L->name, "bias", 1, &M);
    ov *o = out_val(im, 0);
    if (!o)
        return NULL;
    op_shape s = {.rank = 1, .d = {M}};
    set_act(o, layer_tensor(im), 1, &M, &s);
    return w && (!bias || *bdata) ? w : NULL;
}

static bool vector_input(onnx_imp *im, const ov *x)
{
    if (x->rank != 1 || x->shape.rank != 1) {
        onnx_node_error(im, "the input must be [batch, features] (rank 2); it has rank %d", x->rank + 1);
        return false;
    }
    return true;
}

static void op_gemm(onnx_imp *im)
{
    if (!need_inputs(im, 2, 3))
        return;
    ov *x = act_in(im, 0, false);
    ov *B = const_in(im, 1, OV_FLOAT, "weight");
    ov *C = in_val(im, 2) ? const_in(im, 2, OV_FLOAT, "bias") : NULL;
    if (!x || !B || (in_val(im, 2) && !C) || !vector_input(im, x))
        return;
    if (attr_int(im, "transA", 0) != 0) {
        onnx_node_error(im, "attribute 'transA' = 1 is not supported (the activation must be [batch, features])");
        return;
    }
    bool tb = attr_int(im, "transB", 0) != 0;
    int64_t K = x->dims[0];
    if (B->crank != 2 || B->cdims[tb ? 1 : 0] != K) {
        onnx_node_error(im, "the weight's shape does not fit an input of %" PRId64 " features%s", K,
                        tb ? " (transB = 1)" : "");
        return;
    }
    int64_t M = B->cdims[tb ? 0 : 1];
    if (C && C->numel != M && C->numel != 1) {
        onnx_node_error(im, "the bias has %" PRId64 " values for %" PRId64 " units; only a vector or a scalar is "
                            "supported",
                        C->numel, M);
        return;
    }
    double alpha = attr_float(im, "alpha", 1.0), beta = attr_float(im, "beta", 1.0);
    float *bd = NULL;
    float *w = dense_layer(im, x, B, M, C != NULL, &bd);
    if (!w)
        return;
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++)
            w[m * K + k] = (float)(alpha * (double)(tb ? B->f[m * K + k] : B->f[k * M + m]));
    for (int64_t m = 0; C && m < M; m++)
        bd[m] = (float)(beta * (double)C->f[C->numel == 1 ? 0 : m]);
}

static void op_matmul(onnx_imp *im)
{
    if (!need_inputs(im, 2, 2))
        return;
    ov *x = act_in(im, 0, false);
    ov *B = const_in(im, 1, OV_FLOAT, "right-hand side");
    if (!x || !B || !vector_input(im, x))
        return;
    int64_t K = x->dims[0];
    if (B->crank != 2 || B->cdims[0] != K) {
        onnx_node_error(im, "the right-hand side must be [%" PRId64 ", units]", K);
        return;
    }
    int64_t M = B->cdims[1];
    float *w = dense_layer(im, x, B, M, false, NULL);
    if (!w)
        return;
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++)
            w[m * K + k] = B->f[k * M + m];
}

/* Flatten (axis 1) and Reshape to [batch, -1]: a flatten layer, or nothing for a vector. */
/* Elements of one example of x (saturated at INT64_MAX). */
static int64_t act_numel(const ov *x)
{
    int64_t n = 1;
    for (int d = 0; d < x->rank; d++)
        if (!ck_mul_i64(n, x->dims[d], &n))
            return INT64_MAX;
    return n;
}

static void flatten_to(onnx_imp *im, ov *x)
{
    int64_t n = act_numel(x);
    int tensor = x->tensor;
    if (x->shape.rank != 1) {
        if (!onnx_add_layer(im, OP_FLATTEN, NULL, 1, &x->tensor))
            return;
        tensor = layer_tensor(im);
    }
    ov *o = out_val(im, 0);
    if (!o)
        return;
    op_shape s = {.rank = 1, .d = {n}};
    set_act(o, tensor, 1, &n, &s);
}

static void op_flatten(onnx_imp *im)
{
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    int64_t axis = attr_int(im, "axis", 1);
    if (axis < 0)
        axis += x->rank + 1;
    if (axis != 1) {
        onnx_node_error(im, "attribute 'axis' = %" PRId64 " is not supported (only 1: keep the batch axis)",
                        attr_int(im, "axis", 1));
        return;
    }
    flatten_to(im, x);
}

static void op_reshape(onnx_imp *im)
{
    if (!need_inputs(im, 2, 2))
        return;
    ov *x = act_in(im, 0, false);
    ov *sh = const_in(im, 1, OV_INT, "shape");
    if (!x || !sh)
        return;
    if (attr_int(im, "allowzero", 0) != 0) {
        onnx_node_error(im, "attribute 'allowzero' = 1 is not supported");
        return;
    }
    int64_t n = act_numel(x);
    bool ok = sh->numel == 2;
    if (ok) {
        int64_t a = sh->i[0], b = sh->i[1];
        bool batch = a == ONNX_BATCH || a == 0 || (im->static_batch > 0 && a == im->static_batch) || (a == -1 && b == n);
        ok = batch && (b == -1 || b == n);
    }
    if (!ok) {
        strbuf sb;
        sb_init(&sb);
        for (int64_t k = 0; k < sh->numel && k < 8; k++) {
            if (sh->i[k] == ONNX_BATCH)
                sb_printf(&sb, "%sbatch", k ? ", " : "");
            else
                sb_printf(&sb, "%s%" PRId64, k ? ", " : "", sh->i[k]);
        }
        onnx_node_error(im, "Reshape to [%s] is not supported: only a flattening to [batch, -1] or [batch, %" PRId64
                            "] maps to a cnnc layer",
                        sb.data ? sb.data : "", n);
        sb_free(&sb);
        return;
    }
    flatten_to(im, x);
}

/* Adds constant c to the bias of the layer that made x, when that layer is a conv or dense
 * layer and x has no other reader.  False when it cannot. */
static bool fold_bias(onnx_imp *im, ov *x, const ov *c, int xval)
{
    lang_network *net = &im->x->net;
    int k = x->tensor - net->ninputs;
    if (k < 0 || k != net->nlayers - 1 || im->uses[xval] != 1)
        return false;
    lang_layer *L = &net->layers[k];
    if (!L->op->bias_flag) /* the registry: a layer with a bias (conv, dense) */
        return false;
    int64_t M = x->dims[0];
    /* the constant must vary along the channel axis only: [M], [1, M] for dense, [M, 1, 1] or
     * [1, M, 1, 1] for a conv, or one value */
    bool ok = c->numel == 1;
    if (!ok && c->numel == M) {
        int r = c->crank, first = -1;
        for (int d = 0; d < r; d++)
            if (c->cdims[d] != 1) {
                first = d;
                break;
            }
        ok = first >= 0 && r - first == x->rank && r <= x->rank + 1;
    }
    if (!ok)
        return false;
    char bname[OP_NAME_MAX + 8];
    snprintf(bname, sizeof bname, "%s.bias", L->name);
    lang_tensor *bt = onnx_find_tensor(im, bname);
    float *bd = bt ? bt->data : NULL;
    if (!bt) {
        for (int a = 0; a < L->op->nargs; a++)
            if (strcmp(L->op->args[a].name, "bias") == 0)
                L->args[a].given = L->args[a].present = false; /* back to the default: true */
        bd = onnx_add_tensor(im, L->name, "bias", 1, &M);
        if (!bd)
            return true; /* out of memory: reported */
    }
    for (int64_t m = 0; m < M; m++)
        bd[m] += c->f[c->numel == 1 ? 0 : m];
    return true;
}

static void op_add(onnx_imp *im)
{
    if (!need_inputs(im, 2, 2))
        return;
    ov *a = in_val(im, 0), *b = in_val(im, 1);
    if (a->kind == OV_ACT && b->kind == OV_ACT) {
        if (a->padded || b->padded) {
            onnx_node_error(im, "reads the output of a Pad; cnnc supports Pad only before Conv and AveragePool");
            return;
        }
        bool same = a->rank == b->rank && op_shape_equal(&a->shape, &b->shape);
        for (int d = 0; same && d < a->rank; d++)
            same = a->dims[d] == b->dims[d];
        if (!same) {
            onnx_node_error(im, "the two inputs have different shapes; cnnc adds tensors of equal shape only (no "
                                "broadcasting)");
            return;
        }
        int in[2] = {a->tensor, b->tensor};
        if (!onnx_add_layer(im, OP_ADD, NULL, 2, in))
            return;
        ov *o = out_val(im, 0);
        if (o)
            set_act(o, layer_tensor(im), a->rank, a->dims, &a->shape);
        return;
    }
    ov *x = a->kind == OV_ACT ? a : b, *c = a->kind == OV_ACT ? b : a;
    if (x->kind != OV_ACT || c->kind != OV_FLOAT || x->padded ||
        !fold_bias(im, x, c, (int)(x - im->vals))) {
        onnx_node_error(im, "adding a constant is supported only as the bias of the Conv, Gemm or MatMul just before "
                            "it (per channel, nothing else reading that layer's output)");
        return;
    }
    ov *o = out_val(im, 0);
    if (o) {
        ov keep = *x;
        keep.name = o->name;
        *o = keep;
        o->init_name = NULL;
    }
}

static void op_concat(onnx_imp *im)
{
    const Onnx__NodeProto *n = im->node;
    if (n->n_input < 1 || n->n_input > OP_MAX_IN) {
        onnx_node_error(im, "expects 1 to %d inputs, has %zu", OP_MAX_IN, n->n_input);
        return;
    }
    ov *in[OP_MAX_IN];
    int nacts = 0, nints = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        in[k] = in_val(im, k);
        if (!in[k]) {
            onnx_node_error(im, "input %zu is missing", k);
            return;
        }
        nacts += in[k]->kind == OV_ACT;
        nints += in[k]->kind == OV_INT;
    }
    int64_t axis = attr_int(im, "axis", INT64_MIN);
    if (axis == INT64_MIN) {
        onnx_node_error(im, "attribute 'axis' is missing");
        return;
    }
    if (nints == (int)n->n_input) {
        /* shapes being put together: 1-D integer constants */
        int64_t total = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            if (in[k]->crank != 1) {
                onnx_node_error(im, "only 1-D integer constants are concatenated at import");
                return;
            }
            total += in[k]->numel;
        }
        ov *o = out_val(im, 0);
        if (!o)
            return;
        o->kind = OV_INT;
        o->crank = 1;
        o->cdims[0] = o->numel = total;
        o->i = onnx_alloc(im, (size_t)total, sizeof(int64_t));
        if (!o->i)
            return;
        int64_t at = 0;
        for (size_t k = 0; k < n->n_input; k++)
            for (int64_t j = 0; j < in[k]->numel; j++)
                o->i[at++] = in[k]->i[j];
        return;
    }
    if (nacts != (int)n->n_input || n->n_input < 2) {
        onnx_node_error(im, "concatenates %s; cnnc concatenates two or more activations along the channel axis",
                        nacts ? "activations with constants" : "float constants");
        return;
    }
    int r = in[0]->rank;
    if (axis < 0)
        axis += r + 1;
    if (axis != 1) {
        onnx_node_error(im, "attribute 'axis' = %" PRId64 " is not supported (only the channel axis, 1)",
                        attr_int(im, "axis", 1));
        return;
    }
    int t[OP_MAX_IN];
    int64_t C = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        if (in[k]->padded || in[k]->rank != r || in[k]->shape.rank != r) {
            onnx_node_error(im, "input %zu does not match the others' rank (or is the output of a Pad)", k);
            return;
        }
        for (int d = 1; d < r; d++)
            if (in[k]->dims[d] != in[0]->dims[d]) {
                onnx_node_error(im, "input %zu has another size on axis %d than input 0", k, d + 1);
                return;
            }
        t[k] = in[k]->tensor;
        C += in[k]->dims[0];
    }
    if (!onnx_add_layer(im, OP_CONCAT, NULL, (int)n->n_input, t))
        return;
    ov *o = out_val(im, 0);
    if (!o)
        return;
    int64_t dims[OP_MAX_RANK];
    op_shape s = in[0]->shape;
    for (int d = 0; d < r; d++)
        dims[d] = in[0]->dims[d];
    dims[0] = s.d[0] = C;
    set_act(o, layer_tensor(im), r, dims, &s);
}

static void op_softmax(onnx_imp *im)
{
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    int R = x->rank + 1;
    int64_t axis = attr_int(im, "axis", im->opset >= 13 ? -1 : 1);
    if (axis < 0)
        axis += R;
    if (axis != 1 || (R > 2 && im->opset < 13) || x->shape.rank != x->rank) {
        onnx_node_error(im, "attribute 'axis' = %" PRId64 " on a rank-%d input is not supported: cnnc's softmax runs "
                            "over the channels (axis 1)%s",
                        attr_int(im, "axis", im->opset >= 13 ? -1 : 1), R,
                        R > 2 && im->opset < 13 ? " and opsets before 13 flatten the trailing axes" : "");
        return;
    }
    if (!onnx_add_layer(im, OP_SOFTMAX, NULL, 1, &x->tensor))
        return;
    ov *o = out_val(im, 0);
    if (o)
        set_act(o, layer_tensor(im), x->rank, x->dims, &x->shape);
}

static void op_dropout(onnx_imp *im)
{
    if (!need_inputs(im, 1, 3))
        return;
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    double p = 0.5;
    if (in_val(im, 1)) {
        ov *r = const_in(im, 1, OV_FLOAT, "ratio");
        if (!r)
            return;
        if (r->numel != 1) {
            onnx_node_error(im, "the ratio must be one value");
            return;
        }
        p = r->f[0];
    } else if (attr(im, "ratio")) {
        p = attr_float(im, "ratio", 0.5);
    }
    if (in_val(im, 2)) {
        ov *t = in_val(im, 2);
        bool off = (t->kind == OV_INT && t->numel == 1 && t->i[0] == 0) ||
                   (t->kind == OV_FLOAT && t->numel == 1 && t->f[0] == 0);
        if (!off) {
            onnx_node_error(im, "training mode (input 2) is not supported");
            return;
        }
    }
    if (output_used(im, 1)) {
        onnx_node_error(im, "output 1 (the mask) is not supported");
        return;
    }
    if (!(p >= 0 && p < 1)) {
        onnx_node_error(im, "the ratio %g is outside [0, 1)", p);
        return;
    }
    lang_layer *L = onnx_add_layer(im, OP_DROPOUT, NULL, 1, &x->tensor);
    if (!L)
        return;
    if (p != 0.5)
        onnx_set_float(L, "p", p);
    ov *o = out_val(im, 0);
    if (o)
        set_act(o, layer_tensor(im), x->rank, x->dims, &x->shape);
}

static void op_identity(onnx_imp *im)
{
    if (!need_inputs(im, 1, 1))
        return;
    ov *x = in_val(im, 0);
    ov *o = out_val(im, 0);
    if (!o)
        return;
    ov keep = *x;
    keep.name = o->name;
    keep.init_name = x->init_name;
    *o = keep;
}

static void op_constant(onnx_imp *im)
{
    const Onnx__NodeProto *n = im->node;
    if (n->n_attribute != 1 || !n->attribute[0]) {
        onnx_node_error(im, "expects exactly one attribute (value, value_float, value_floats, value_int or value_ints)");
        return;
    }
    const Onnx__AttributeProto *a = n->attribute[0];
    ov *o = out_val(im, 0);
    if (!o)
        return;
    if (strcmp(a->name, "value") == 0) {
        if (!a->t) {
            onnx_node_error(im, "attribute 'value' holds no tensor");
            return;
        }
        onnx_tensor(im, a->t, o, "value");
        return;
    }
    bool isf = strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_floats") == 0;
    bool many = strcmp(a->name, "value_floats") == 0 || strcmp(a->name, "value_ints") == 0;
    size_t cnt = many ? (isf ? a->n_floats : a->n_ints) : 1;
    if (!many && !(isf ? a->has_f : a->has_i)) {
        onnx_node_error(im, "attribute '%s' has no value", a->name);
        return;
    }
    o->kind = isf ? OV_FLOAT : OV_INT;
    o->crank = many ? 1 : 0;
    o->cdims[0] = (int64_t)cnt;
    o->numel = (int64_t)cnt;
    if (isf) {
        o->f = onnx_alloc(im, cnt, sizeof(float));
        for (size_t k = 0; o->f && k < cnt; k++)
            o->f[k] = many ? a->floats[k] : a->f;
    } else {
        o->i = onnx_alloc(im, cnt, sizeof(int64_t));
        for (size_t k = 0; o->i && k < cnt; k++)
            o->i[k] = many ? a->ints[k] : a->i;
    }
}

static void op_shape_of(onnx_imp *im)
{
    ov *x = act_in(im, 0, false);
    if (!x)
        return;
    int64_t R = x->rank + 1, start = attr_int(im, "start", 0), end = attr_int(im, "end", R);
    if (start < 0)
        start += R;
    if (end < 0)
        end += R;
    start = start < 0 ? 0 : start > R ? R : start;
    end = end < start ? start : end > R ? R : end;
    ov *o = out_val(im, 0);
    if (!o)
        return;
    o->kind = OV_INT;
    o->crank = 1;
    o->cdims[0] = o->numel = end - start;
    o->i = onnx_alloc(im, (size_t)(end - start), sizeof(int64_t));
    for (int64_t k = start; o->i && k < end; k++)
        o->i[k - start] = k == 0 ? (im->static_batch > 0 ? im->static_batch : ONNX_BATCH) : x->dims[k - 1];
}

static void op_gather(onnx_imp *im)
{
    if (!need_inputs(im, 2, 2))
        return;
    ov *data = const_in(im, 0, OV_INT, "data");
    ov *idx = const_in(im, 1, OV_INT, "indices");
    if (!data || !idx)
        return;
    if (data->crank != 1 || attr_int(im, "axis", 0) != 0 || idx->crank > 1) {
        onnx_node_error(im, "only gathering from a 1-D integer constant (a shape) along axis 0 is supported");
        return;
    }
    ov *o = out_val(im, 0);
    if (!o)
        return;
    o->kind = OV_INT;
    o->crank = idx->crank;
    o->cdims[0] = o->numel = idx->numel;
    o->i = onnx_alloc(im, (size_t)idx->numel, sizeof(int64_t));
    for (int64_t k = 0; o->i && k < idx->numel; k++) {
        int64_t j = idx->i[k] < 0 ? idx->i[k] + data->numel : idx->i[k];
        if (j < 0 || j >= data->numel) {
            onnx_node_error(im, "index %" PRId64 " is outside the %" PRId64 " values", idx->i[k], data->numel);
            return;
        }
        o->i[k] = data->i[j];
    }
}

/* Unsqueeze and Squeeze of constants: the values stay, the dims change. */
static void op_squeeze(onnx_imp *im, bool unsqueeze)
{
    ov *x = in_val(im, 0);
    if (!x || (x->kind != OV_INT && x->kind != OV_FLOAT)) {
        onnx_node_error(im, "only constants (shapes being computed) are %ssqueezed at import", unsqueeze ? "un" : "");
        return;
    }
    int64_t axes[ONNX_MAX_CRANK];
    int na;
    if (im->opset >= 13) {
        ov *a = in_val(im, 1) ? const_in(im, 1, OV_INT, "axes") : NULL;
        if (in_val(im, 1) && !a)
            return;
        na = a ? (int)(a->numel <= ONNX_MAX_CRANK ? a->numel : ONNX_MAX_CRANK + 1) : -1;
        for (int k = 0; a && k < na && k < ONNX_MAX_CRANK; k++)
            axes[k] = a->i[k];
    } else {
        na = attr_ints(im, "axes", axes, ONNX_MAX_CRANK);
        if (na == -2)
            return;
    }
    int r = x->crank, nr;
    bool keep[2 * ONNX_MAX_CRANK];
    int64_t nd[ONNX_MAX_CRANK + 1];
    if (unsqueeze) {
        if (na < 0 || na > ONNX_MAX_CRANK || r + na > ONNX_MAX_CRANK) {
            onnx_node_error(im, "the axes are missing or too many");
            return;
        }
        nr = r + na;
        memset(keep, 0, sizeof keep);
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + nr : axes[k];
            if (a < 0 || a >= nr || keep[a]) {
                onnx_node_error(im, "axis %" PRId64 " is out of range or repeated", axes[k]);
                return;
            }
            keep[a] = true; /* here: a new axis */
        }
        for (int k = 0, j = 0; k < nr; k++)
            nd[k] = keep[k] ? 1 : x->cdims[j++];
    } else {
        memset(keep, 0, sizeof keep);
        if (na > ONNX_MAX_CRANK) {
            onnx_node_error(im, "too many axes");
            return;
        }
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
            if (a < 0 || a >= r || x->cdims[a] != 1) {
                onnx_node_error(im, "axis %" PRId64 " is out of range or not of size 1", axes[k]);
                return;
            }
            keep[a] = true; /* here: an axis removed */
        }
        nr = 0;
        for (int k = 0; k < r; k++)
            if (!(na < 0 ? x->cdims[k] == 1 : keep[k]))
                nd[nr++] = x->cdims[k];
    }
    ov *o = out_val(im, 0);
    if (!o)
        return;
    ov keep_v = *x;
    keep_v.name = o->name;
    keep_v.init_name = NULL;
    keep_v.crank = nr;
    for (int k = 0; k < nr; k++)
        keep_v.cdims[k] = nd[k];
    *o = keep_v;
}

static void op_pad(onnx_imp *im)
{
    if (!need_inputs(im, 2, 3))
        return;
    ov *x = act_in(im, 0, true);
    ov *p = const_in(im, 1, OV_INT, "pads");
    if (!x || !p)
        return;
    char mode[32];
    const char *m = attr_str(im, "mode", mode, sizeof mode);
    if (m && strcmp(m, "constant") != 0) {
        onnx_node_error(im, "attribute 'mode' = '%s' is not supported (only constant zeros)", m);
        return;
    }
    if (in_val(im, 2)) {
        ov *c = const_in(im, 2, OV_FLOAT, "constant value");
        if (!c)
            return;
        if (c->numel > 1 || (c->numel == 1 && c->f[0] != 0.0f)) {
            onnx_node_error(im, "padding with a value other than 0 is not supported");
            return;
        }
    }
    int R = x->rank + 1, sd = x->rank - 1;
    if (p->numel != 2 * R || sd < 1 || sd > 3 || x->shape.rank != x->rank) {
        onnx_node_error(im, "the pads must be %d values for a rank-%d image, signal or volume", 2 * R, R);
        return;
    }
    if (p->i[0] || p->i[1] || p->i[R] || p->i[R + 1]) {
        onnx_node_error(im, "padding the batch or channel axis is not supported");
        return;
    }
    ov *o = out_val(im, 0);
    if (!o)
        return;
    ov keep = *x;
    keep.name = o->name;
    keep.init_name = NULL;
    for (int i = 0; i < sd; i++) {
        int64_t b = p->i[2 + i], e = p->i[R + 2 + i];
        if (b < 0 || e < 0 || b > OP_MAX_NUMEL || e > OP_MAX_NUMEL) {
            onnx_node_error(im, "negative or too large padding is not supported");
            return;
        }
        keep.padb[i] += b, keep.pade[i] += e;
        keep.padded = keep.padded || b || e;
    }
    *o = keep;
}

/* ---------------------------------------------------------------- attribute values */

const char *onnx_attr_kind_error(const Onnx__AttributeProto *a)
{
    static const struct {
        const char *names[16];
        Onnx__AttributeProto__AttributeType type;
        const char *kind;
    } kinds[] = {
        {{"group", "ceil_mode", "storage_order", "count_include_pad", "transA", "transB", "axis", "allowzero",
          "training_mode", "seed", "start", "end", "value_int"},
         ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, "an int"},
        {{"alpha", "beta", "epsilon", "momentum", "ratio", "value_float"}, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
         "a float"},
        {{"dilations", "kernel_shape", "pads", "strides", "axes", "value_ints"},
         ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, "a list of ints"},
        {{"auto_pad", "mode"}, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, "a string"},
        {{"value_floats"}, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, "a list of floats"},
        {{"value"}, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, "a tensor"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int j = 0; j < 16 && kinds[k].names[j]; j++)
            if (strcmp(kinds[k].names[j], a->name) == 0) {
                Onnx__AttributeProto__AttributeType t = kinds[k].type;
                bool ok = !a->has_type || a->type == t;
                if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
                    ok = ok && a->has_i;
                else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
                    ok = ok && a->has_f;
                else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
                    ok = ok && a->has_s;
                else if (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR)
                    ok = ok && a->t != NULL;
                return ok ? NULL : kinds[k].kind;
            }
    return NULL;
}

/* The attribute values no translation could take, whatever the inputs: checked on every node
 * before anything is translated, so that they are all listed at once. */
void onnx_check_attrs(onnx_imp *im)
{
    const char *t = im->node->op_type;
    bool conv = strcmp(t, "Conv") == 0, maxp = strcmp(t, "MaxPool") == 0, avgp = strcmp(t, "AveragePool") == 0;
    if (conv || maxp || avgp) {
        int64_t v[8];
        const Onnx__AttributeProto *pa = attr(im, "pads");
        if (pa && pa->n_ints % 2 == 0 && pa->n_ints <= 6) {
            size_t sd = pa->n_ints / 2;
            for (size_t i = 0; i < sd; i++)
                if (pa->ints[i] != pa->ints[i + sd]) {
                    onnx_node_error(im, "attribute 'pads' pads spatial axis %zu by %" PRId64 " before and %" PRId64
                                        " after; cnnc pads both sides of an axis alike",
                                    i, pa->ints[i], pa->ints[i + sd]);
                    break;
                }
        }
        char ap[32];
        const char *autopad = attr_str(im, "auto_pad", ap, sizeof ap);
        if (autopad && strcmp(autopad, "NOTSET") != 0 && strcmp(autopad, "VALID") != 0 &&
            strcmp(autopad, "SAME_UPPER") != 0 && strcmp(autopad, "SAME_LOWER") != 0)
            onnx_node_error(im, "attribute 'auto_pad' = '%s' is not supported", autopad);
        if (!conv && attr_int(im, "ceil_mode", 0) != 0)
            onnx_node_error(im, "attribute 'ceil_mode' = 1 is not supported (cnnc's output sizes round down)");
        if (maxp && attr_int(im, "storage_order", 0) != 0)
            onnx_node_error(im, "attribute 'storage_order' = 1 is not supported");
        int n = maxp ? attr_ints(im, "dilations", v, 8) : -1;
        for (int i = 0; i < n; i++)
            if (v[i] != 1) {
                onnx_node_error(im, "attribute 'dilations' other than 1 is not supported for pooling");
                break;
            }
        bool own_pad = false;
        for (size_t i = 0; pa && i < pa->n_ints; i++)
            own_pad |= pa->ints[i] != 0;
        if (avgp && own_pad && attr_int(im, "count_include_pad", 0) == 0)
            onnx_node_error(im, "attribute 'count_include_pad' = 0 with padding is not supported: cnnc's avgpool "
                                "counts the padding as zeros in the mean (count_include_pad = 1, PyTorch's default)");
    } else if (strcmp(t, "Gemm") == 0 && attr_int(im, "transA", 0) != 0) {
        onnx_node_error(im, "attribute 'transA' = 1 is not supported (the activation must be [batch, features])");
    } else if (strcmp(t, "Reshape") == 0 && attr_int(im, "allowzero", 0) != 0) {
        onnx_node_error(im, "attribute 'allowzero' = 1 is not supported");
    } else if (strcmp(t, "BatchNormalization") == 0 && attr_int(im, "training_mode", 0) != 0) {
        onnx_node_error(im, "attribute 'training_mode' = 1 is not supported: export the model in eval mode");
    } else if (strcmp(t, "Pad") == 0) {
        char mode[32];
        const char *m = attr_str(im, "mode", mode, sizeof mode);
        if (m && strcmp(m, "constant") != 0)
            onnx_node_error(im, "attribute 'mode' = '%s' is not supported (only constant zeros)", m);
    } else if (strcmp(t, "Flatten") == 0 && attr_int(im, "axis", 1) != 1 && attr_int(im, "axis", 1) >= 0) {
        onnx_node_error(im, "attribute 'axis' = %" PRId64 " is not supported (only 1: keep the batch axis)",
                        attr_int(im, "axis", 1));
    }
}

/* ---------------------------------------------------------------- the table */

static void op_relu(onnx_imp *im) { op_activation(im, OP_RELU); }
static void op_leaky_relu(onnx_imp *im) { op_activation(im, OP_LEAKY_RELU); }
static void op_sigmoid(onnx_imp *im) { op_activation(im, OP_SIGMOID); }
static void op_tanh(onnx_imp *im) { op_activation(im, OP_TANH); }
static void op_maxpool(onnx_imp *im) { op_pool(im, false); }
static void op_avgpool(onnx_imp *im) { op_pool(im, true); }
static void op_unsqueeze(onnx_imp *im) { op_squeeze(im, true); }
static void op_squeeze_axes(onnx_imp *im) { op_squeeze(im, false); }

/* Every operator the importer knows: its attributes (any other is refused) and its translation. */
typedef struct onnx_op {
    const char *name;
    const char *attrs[12];
    void (*translate)(onnx_imp *im);
} onnx_op;

static const onnx_op table[] = {
    {"Conv", {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}, op_conv},
    {"Relu", {0}, op_relu},
    {"LeakyRelu", {"alpha"}, op_leaky_relu},
    {"Sigmoid", {0}, op_sigmoid},
    {"Tanh", {0}, op_tanh},
    {"Clip", {0}, op_clip},
    {"MaxPool", {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}, op_maxpool},
    {"AveragePool", {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"}, op_avgpool},
    {"GlobalAveragePool", {0}, op_global_avgpool},
    {"Gemm", {"alpha", "beta", "transA", "transB"}, op_gemm},
    {"MatMul", {0}, op_matmul},
    {"Flatten", {"axis"}, op_flatten},
    {"Reshape", {"allowzero"}, op_reshape},
    {"BatchNormalization", {"epsilon", "momentum", "training_mode"}, op_batchnorm},
    {"Add", {0}, op_add},
    {"Concat", {"axis"}, op_concat},
    {"Softmax", {"axis"}, op_softmax},
    {"Dropout", {"seed", "ratio"}, op_dropout},
    {"Identity", {0}, op_identity},
    {"Constant", {"value", "value_float", "value_floats", "value_int", "value_ints"}, op_constant},
    {"Shape", {"start", "end"}, op_shape_of},
    {"Gather", {"axis"}, op_gather},
    {"Unsqueeze", {"axes"}, op_unsqueeze},
    {"Squeeze", {"axes"}, op_squeeze_axes},
    {"Pad", {"mode"}, op_pad},
};

static const onnx_op *find_op(const char *op_type)
{
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        if (strcmp(table[k].name, op_type) == 0)
            return &table[k];
    return NULL;
}

bool onnx_known_op(const char *op_type, const char *const **attrs)
{
    const onnx_op *op = find_op(op_type);
    if (op)
        *attrs = op->attrs;
    return op != NULL;
}

const char *lang_onnx_operators(void)
{
    return "Conv (1-D, 2-D, 3-D), Relu, LeakyRelu, Sigmoid, Tanh, Clip (min 0, no max), MaxPool, AveragePool, "
           "GlobalAveragePool, Gemm, MatMul (constant right side), Flatten, Reshape (to [batch, -1]), "
           "BatchNormalization, Add, Concat, Softmax, Dropout, Identity, Constant, Pad (zeros, before Conv and "
           "AveragePool), and Shape, Gather, Unsqueeze, Squeeze and Concat on shapes (folded at import)";
}

void onnx_translate(onnx_imp *im)
{
    const onnx_op *op = find_op(im->node->op_type);
    if (op)
        op->translate(im);
    else
        onnx_node_error(im, "operator %s is not supported", im->node->op_type);
}
