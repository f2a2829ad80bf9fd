/* ONNX import (lang/onnx.h): the protobuf, tensors and their data, the names of values, the
 * graph's inputs and outputs, the order of the nodes (cycles, dangling names), layer and weight
 * naming.  The translation of each operator is in lang/onnx_ops.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/onnx_int.h"
#include "lang/strbuf.h"
#include "ops/checked.h"
#include "ops/mem.h"
#include "ops/registry.h"

enum { MAX_NODES = 200000, MAX_VALUES = 1000000, MAX_LAYERS = 10000 };

/* ---------------------------------------------------------------- messages, memory */

void onnx_error(onnx_imp *im, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_add(im->d, DIAG_ERROR, (lang_span){0, 0, 0, 0}, "%s", msg);
}

void onnx_node_error(onnx_imp *im, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = im->node;
    diag_add(im->d, DIAG_ERROR, (lang_span){0, 0, 0, 0}, "node '%.200s' (%.100s, opset %" PRId64 "): %s",
             n && n->name ? n->name : "", n && n->op_type ? n->op_type : "?", im->opset, msg);
}

static void oom(onnx_imp *im)
{
    if (!im->oom)
        im->d->oom = true;
    im->oom = true;
}

void *onnx_alloc(onnx_imp *im, size_t count, size_t size)
{
    if (im->nblocks == im->capblocks) {
        int cap = im->capblocks ? im->capblocks * 2 : 64;
        void **b = cnn_mem_realloc(im->blocks, (size_t)cap * sizeof *b);
        if (!b) {
            oom(im);
            return NULL;
        }
        im->blocks = b, im->capblocks = cap;
    }
    void *p = cnn_mem_calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        oom(im);
        return NULL;
    }
    im->blocks[im->nblocks++] = p;
    return p;
}

/* ---------------------------------------------------------------- names of values */

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

int onnx_find(onnx_imp *im, const char *name)
{
    if (!name || !im->hashcap)
        return -1;
    for (size_t h = hash_str(name) & (im->hashcap - 1);; h = (h + 1) & (im->hashcap - 1)) {
        int k = im->hash[h];
        if (k == 0)
            return -1;
        if (strcmp(im->vals[k - 1].name, name) == 0)
            return k - 1;
    }
}

ov *onnx_define(onnx_imp *im, const char *name)
{
    if (!name)
        name = "";
    int k = onnx_find(im, name);
    if (k >= 0) {
        if (im->vals[k].kind != OV_UNSET) {
            onnx_error(im, "the name '%.200s' is given to two values (graph inputs, initializers or node outputs)", name);
            return NULL;
        }
        return &im->vals[k];
    }
    if (im->nvals >= MAX_VALUES) {
        onnx_error(im, "the graph has more than %d named values", MAX_VALUES);
        return NULL;
    }
    if (im->nvals == im->capvals) {
        int cap = im->capvals ? im->capvals * 2 : 256;
        ov *v = cnn_mem_realloc(im->vals, (size_t)cap * sizeof *v);
        if (!v) {
            oom(im);
            return NULL;
        }
        im->vals = v, im->capvals = cap;
    }
    if ((size_t)(im->nvals + 1) * 2 > im->hashcap) {
        size_t cap = im->hashcap ? im->hashcap * 2 : 1024;
        int *h = cnn_mem_calloc(cap, sizeof *h);
        if (!h) {
            oom(im);
            return NULL;
        }
        for (int i = 0; i < im->nvals; i++) {
            size_t p = hash_str(im->vals[i].name) & (cap - 1);
            while (h[p])
                p = (p + 1) & (cap - 1);
            h[p] = i + 1;
        }
        cnn_mem_free(im->hash);
        im->hash = h, im->hashcap = cap;
    }
    ov *v = &im->vals[im->nvals];
    memset(v, 0, sizeof *v);
    v->name = name;
    size_t p = hash_str(name) & (im->hashcap - 1);
    while (im->hash[p])
        p = (p + 1) & (im->hashcap - 1);
    im->hash[p] = ++im->nvals;
    return v;
}

/* ---------------------------------------------------------------- tensors */

static const char *dtype_name(int32_t t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32",
                                        "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64",
                                        "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    return t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]) ? names[t] : "an unknown type";
}

bool onnx_tensor(onnx_imp *im, const Onnx__TensorProto *t, ov *v, const char *what)
{
    const char *name = t->name && t->name[0] ? t->name : what;
    if (t->n_external_data > 0 || (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)) {
        const char *loc = "";
        for (size_t k = 0; k < t->n_external_data; k++)
            if (t->external_data[k] && t->external_data[k]->key && strcmp(t->external_data[k]->key, "location") == 0 &&
                t->external_data[k]->value)
                loc = t->external_data[k]->value;
        onnx_error(im, "tensor '%.200s' keeps its data in an external file ('%.200s'); cnnc never opens files beside "
                       "the model: save it with the weights inside (onnx.save_model(..., save_as_external_data=False))",
                   name, loc);
        return false;
    }
    if (t->segment) {
        onnx_error(im, "tensor '%.200s' is split into segments, which cnnc does not read", name);
        return false;
    }
    if (t->n_dims > ONNX_MAX_CRANK) {
        onnx_error(im, "tensor '%.200s' has %zu dimensions, more than %d", name, t->n_dims, ONNX_MAX_CRANK);
        return false;
    }
    int64_t n = 1;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] < 0 || !ck_mul_i64(n, t->dims[k], &n) || n > OP_MAX_NUMEL) {
            onnx_error(im, "tensor '%.200s' has an invalid or too large shape (dimension %zu is %" PRId64 ")", name, k,
                       t->dims[k]);
            return false;
        }
    }
    v->crank = (int)t->n_dims;
    for (size_t k = 0; k < t->n_dims; k++)
        v->cdims[k] = t->dims[k];
    v->numel = n;
    int32_t dt = t->has_data_type ? t->data_type : 0;
    size_t esize = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? 4
                   : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8
                   : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ? 4
                                                                : 0;
    if (!esize) {
        onnx_error(im, "tensor '%.200s' has data type %s; cnnc reads FLOAT (float32) tensors, and INT64 or INT32 for "
                       "shapes and indices",
                   name, dtype_name(dt));
        return false;
    }
    size_t have;
    if (t->has_raw_data)
        have = t->raw_data.len / esize;
    else
        have = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT   ? t->n_float_data
               : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? t->n_int64_data
                                                            : t->n_int32_data;
    if ((t->has_raw_data && t->raw_data.len % esize != 0) || (uint64_t)have != (uint64_t)n) {
        onnx_error(im, "tensor '%.200s' has shape of %" PRId64 " elements but holds %s %zu (%s)", name, n,
                   t->has_raw_data ? "raw data for" : "", t->has_raw_data ? t->raw_data.len / esize : have,
                   t->has_raw_data ? "raw_data" : "typed data");
        return false;
    }
    const uint8_t *raw = t->has_raw_data ? t->raw_data.data : NULL;
    if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        v->kind = OV_FLOAT;
        v->f = onnx_alloc(im, (size_t)n, sizeof(float));
        if (!v->f)
            return false;
        for (int64_t k = 0; k < n; k++) {
            if (raw) {
                const uint8_t *b = raw + 4 * k;
                uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
                memcpy(&v->f[k], &u, 4);
            } else {
                v->f[k] = t->float_data[k];
            }
        }
    } else {
        v->kind = OV_INT;
        v->i = onnx_alloc(im, (size_t)n, sizeof(int64_t));
        if (!v->i)
            return false;
        for (int64_t k = 0; k < n; k++) {
            if (raw && esize == 8) {
                uint64_t u = 0;
                for (int b = 7; b >= 0; b--)
                    u = u << 8 | raw[8 * k + b];
                v->i[k] = (int64_t)u;
            } else if (raw) {
                uint32_t u = 0;
                for (int b = 3; b >= 0; b--)
                    u = u << 8 | raw[4 * k + b];
                v->i[k] = (int32_t)u;
            } else {
                v->i[k] = esize == 8 ? t->int64_data[k] : t->int32_data[k];
            }
        }
    }
    return true;
}

/* ---------------------------------------------------------------- layers and weights */

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A valid identifier from s (at most 56 characters): other characters become '_', a leading
 * digit gets "l" before it, keywords and layer names get "_" after them. */
static void make_ident(char *out, size_t n, const char *s)
{
    size_t o = 0;
    if (s[0] >= '0' && s[0] <= '9')
        out[o++] = 'l';
    for (; *s && o + 2 < n && o < 56; s++) {
        char c = is_ident_char(*s) ? *s : '_';
        if (c == '_' && o > 0 && out[o - 1] == '_')
            continue;
        out[o++] = c;
    }
    while (o > 1 && out[o - 1] == '_')
        o--;
    out[o] = '\0';
    if (o == 0)
        snprintf(out, n, "layer");
    static const char *const kw[] = {"network", "block", "train", "input", "output", "return", "in", "true", "false"};
    bool clash = op_def_find_layer(out) != NULL;
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
        clash = clash || strcmp(out, kw[k]) == 0;
    /* "relu_3" and the like are the names lang gives unnamed layers */
    const char *us = strrchr(out, '_');
    if (us && us[1]) {
        char kind[OP_NAME_MAX];
        snprintf(kind, sizeof kind, "%.*s", (int)(us - out), out);
        bool digits = true;
        for (const char *p = us + 1; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        for (int k = 0; k < OP_COUNT && digits && !clash; k++)
            clash = strcmp(op_name((op_kind)k), kind) == 0;
    }
    if (clash && strlen(out) + 2 < n)
        strcat(out, "_");
}

static bool name_taken(onnx_imp *im, const char *s)
{
    for (int k = 0; k < im->x->net.nlayers; k++)
        if (strcmp(im->x->net.layers[k].name, s) == 0)
            return true;
    return false;
}

lang_layer *onnx_add_layer(onnx_imp *im, op_kind op, const char *name, int nin, const int *in)
{
    lang_network *net = &im->x->net;
    if (net->nlayers >= MAX_LAYERS) {
        onnx_node_error(im, "the network would have more than %d layers", MAX_LAYERS);
        return NULL;
    }
    if (net->nlayers == im->caplayers) {
        int cap = im->caplayers ? im->caplayers * 2 : 64;
        lang_layer *l = cnn_mem_realloc(net->layers, (size_t)cap * sizeof *l);
        if (!l) {
            oom(im);
            return NULL;
        }
        net->layers = l, im->caplayers = cap;
    }
    lang_layer *L = &net->layers[net->nlayers];
    memset(L, 0, sizeof *L);
    L->op = op_def_get(op);
    int k = ++im->counters[op];
    if (name) {
        char base[OP_NAME_MAX];
        make_ident(base, sizeof base, name);
        snprintf(L->name, sizeof L->name, "%s", base);
        for (int u = 2; name_taken(im, L->name); u++)
            snprintf(L->name, sizeof L->name, "%.80s_%d", base, u);
        onnx_set_int(L, "name", 0);
        for (int a = 0; a < L->op->nargs; a++)
            if (strcmp(L->op->args[a].name, "name") == 0)
                snprintf(L->args[a].s, sizeof L->args[a].s, "%s", L->name);
    } else {
        snprintf(L->name, sizeof L->name, "%s_%d", L->op->name, k);
    }
    L->ninputs = nin;
    for (int i = 0; i < nin && i < OP_MAX_IN; i++)
        L->inputs[i] = in[i];
    net->nlayers++;
    return L;
}

static op_argval *arg_slot(lang_layer *L, const char *arg)
{
    for (int a = 0; a < L->op->nargs; a++)
        if (strcmp(L->op->args[a].name, arg) == 0) {
            L->args[a].given = L->args[a].present = true;
            return &L->args[a];
        }
    return NULL;
}

void onnx_set_int(lang_layer *L, const char *arg, int64_t v)
{
    op_argval *a = arg_slot(L, arg);
    if (a)
        a->n = 1, a->i[0] = v;
}

void onnx_set_ints(lang_layer *L, const char *arg, int n, const int64_t *v)
{
    op_argval *a = arg_slot(L, arg);
    if (!a)
        return;
    bool same = true;
    for (int k = 1; k < n; k++)
        same = same && v[k] == v[0];
    a->n = same ? 1 : n;
    for (int k = 0; k < n && k < 3; k++)
        a->i[k] = v[k];
}

void onnx_set_float(lang_layer *L, const char *arg, double v)
{
    op_argval *a = arg_slot(L, arg);
    if (a)
        a->f = v;
}

void onnx_set_bool(lang_layer *L, const char *arg, bool v)
{
    op_argval *a = arg_slot(L, arg);
    if (a)
        a->b = v;
}

float *onnx_add_tensor(onnx_imp *im, const char *layer, const char *suffix, int rank, const int64_t *dims)
{
    lang_onnx *x = im->x;
    if (x->ntensors == im->captensors) {
        int cap = im->captensors ? im->captensors * 2 : 64;
        lang_tensor *t = cnn_mem_realloc(x->tensors, (size_t)cap * sizeof *t);
        if (!t) {
            oom(im);
            return NULL;
        }
        x->tensors = t, im->captensors = cap;
    }
    lang_tensor *t = &x->tensors[x->ntensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", layer, suffix);
    t->shape.rank = rank;
    int64_t n = 1;
    for (int k = 0; k < rank && k < OP_MAX_RANK; k++)
        t->shape.d[k] = dims[k], n *= dims[k];
    t->data = cnn_mem_calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!t->data) {
        oom(im);
        return NULL;
    }
    x->ntensors++;
    return t->data;
}

lang_tensor *onnx_find_tensor(onnx_imp *im, const char *name)
{
    for (int k = 0; k < im->x->ntensors; k++)
        if (strcmp(im->x->tensors[k].name, name) == 0)
            return &im->x->tensors[k];
    return NULL;
}

/* ---------------------------------------------------------------- the graph */

static void *pb_alloc(void *ud, size_t n)
{
    void *p = cnn_mem_malloc(n ? n : 1);
    if (!p)
        oom(ud); /* protobuf-c then fails as for a corrupt message: this tells them apart */
    return p;
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    cnn_mem_free(p);
}

static bool graph_inputs(onnx_imp *im)
{
    const Onnx__GraphProto *g = im->g;
    lang_network *net = &im->x->net;
    bool ok = true;
    im->static_batch = -1;
    for (size_t k = 0; k < g->n_input; k++) {
        const Onnx__ValueInfoProto *vi = g->input[k];
        if (!vi || !vi->name) {
            onnx_error(im, "graph input %zu has no name", k);
            ok = false;
            continue;
        }
        int found = onnx_find(im, vi->name);
        if (found >= 0 && im->vals[found].kind != OV_UNSET)
            continue; /* an initializer listed as an input (older exporters) */
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
            onnx_error(im, "graph input '%.200s' is not a tensor", vi->name);
            ok = false;
            continue;
        }
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            onnx_error(im, "graph input '%.200s' has data type %s; cnnc's inputs are FLOAT (float32)", vi->name,
                       dtype_name(tt->has_elem_type ? tt->elem_type : 0));
            ok = false;
            continue;
        }
        const Onnx__TensorShapeProto *sh = tt->shape;
        if (!sh || sh->n_dim < 2 || sh->n_dim > 5) {
            onnx_error(im, "graph input '%.200s' must have a known shape of rank 2 to 5 ([batch, C], [batch, C, L], "
                           "[batch, C, H, W] or [batch, C, D, H, W]), has %s",
                       vi->name, sh ? "another rank" : "none");
            ok = false;
            continue;
        }
        if (net->ninputs >= 16) {
            onnx_error(im, "the graph has more than 16 inputs");
            return false;
        }
        op_shape s = {.rank = (int)sh->n_dim - 1};
        bool dims_ok = true;
        for (size_t d = 0; d < sh->n_dim; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
            bool fixed = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            if (d == 0) {
                if (fixed && dim->dim_value >= 1)
                    im->static_batch = dim->dim_value;
                continue;
            }
            if (!fixed || dim->dim_value < 1 || dim->dim_value > OP_MAX_NUMEL) {
                bool param = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                onnx_error(im, "graph input '%.200s': dimension %zu is %s%.100s%s; only the batch axis (0) may be "
                               "dynamic, the others must be fixed sizes",
                           vi->name, d, param ? "the unresolved '" : fixed ? "not a positive size" : "unknown",
                           param && dim->dim_param ? dim->dim_param : "", param ? "'" : "");
                dims_ok = false;
                break;
            }
            s.d[d - 1] = dim->dim_value;
        }
        if (!dims_ok) {
            ok = false;
            continue;
        }
        ov *v = onnx_define(im, vi->name);
        if (!v)
            return false;
        lang_input *in = &net->inputs[net->ninputs];
        make_ident(in->name, sizeof in->name, vi->name);
        for (int j = 0; j < net->ninputs; j++)
            if (strcmp(net->inputs[j].name, in->name) == 0)
                snprintf(in->name + strlen(in->name), sizeof in->name - strlen(in->name), "_%d", net->ninputs + 1);
        in->shape = s;
        v->kind = OV_ACT;
        v->tensor = net->ninputs++;
        v->rank = s.rank;
        for (int d = 0; d < s.rank; d++)
            v->dims[d] = s.d[d];
        v->shape = s;
    }
    if (ok && net->ninputs == 0) {
        onnx_error(im, "the graph has no input (besides its initializers)");
        ok = false;
    }
    return ok;
}

static bool graph_outputs(onnx_imp *im)
{
    const Onnx__GraphProto *g = im->g;
    lang_network *net = &im->x->net;
    bool ok = true;
    if (g->n_output == 0) {
        onnx_error(im, "the graph has no output");
        return false;
    }
    for (size_t k = 0; k < g->n_output; k++) {
        const Onnx__ValueInfoProto *vi = g->output[k];
        int found = vi && vi->name ? onnx_find(im, vi->name) : -1;
        if (found < 0 || im->vals[found].kind == OV_UNSET) {
            onnx_error(im, "graph output '%.200s' is made by no node", vi && vi->name ? vi->name : "");
            ok = false;
            continue;
        }
        const ov *v = &im->vals[found];
        if (v->kind == OV_FAILED) {
            ok = false;
            continue;
        }
        if (v->kind != OV_ACT || v->tensor < net->ninputs) {
            onnx_error(im, "graph output '%.200s' is %s; cnnc's outputs are computed from the inputs", vi->name,
                       v->kind == OV_ACT ? "a graph input" : "a constant");
            ok = false;
            continue;
        }
        if (v->padded) {
            onnx_error(im, "graph output '%.200s' is the output of a Pad, which cnnc only supports before Conv and "
                           "AveragePool", vi->name);
            ok = false;
            continue;
        }
        if (net->noutputs >= 16) {
            onnx_error(im, "the graph has more than 16 outputs");
            return false;
        }
        lang_output *o = &net->outputs[net->noutputs++];
        make_ident(o->name, sizeof o->name, vi->name);
        for (int j = 0; j < net->noutputs - 1; j++)
            if (strcmp(net->outputs[j].name, o->name) == 0)
                snprintf(o->name + strlen(o->name), sizeof o->name - strlen(o->name), "_%d", net->noutputs);
        for (int j = 0; j < net->ninputs; j++)
            if (strcmp(net->inputs[j].name, o->name) == 0)
                snprintf(o->name + strlen(o->name), sizeof o->name - strlen(o->name), "_out");
        o->tensor = v->tensor;
    }
    return ok;
}

/* A min-heap of node indices: the nodes whose inputs are all made, smallest index first, so
 * that a graph already in order keeps it. */
static void heap_push(int *h, int *n, int v)
{
    int i = (*n)++;
    h[i] = v;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int p = (i - 1) / 2, t = h[p];
        h[p] = h[i], h[i] = t, i = p;
    }
}

static int heap_pop(int *h, int *n)
{
    int top = h[0];
    h[0] = h[--(*n)];
    for (int i = 0;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m])
            m = l;
        if (r < *n && h[r] < h[m])
            m = r;
        if (m == i)
            break;
        int t = h[m];
        h[m] = h[i], h[i] = t, i = m;
    }
    return top;
}

static bool node_known_attrs(onnx_imp *im, const Onnx__NodeProto *n)
{
    const char *const *attrs = NULL;
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0) {
        im->node = n;
        onnx_node_error(im, "operator domain '%.100s' is not supported (only the default ONNX domain)", n->domain);
        im->unsupported_op = true;
        return false;
    }
    if (!onnx_known_op(n->op_type, &attrs)) {
        im->node = n;
        onnx_node_error(im, "operator %.100s is not supported", n->op_type);
        im->unsupported_op = true;
        return false;
    }
    bool ok = true;
    for (size_t a = 0; a < n->n_attribute; a++) {
        const Onnx__AttributeProto *at = n->attribute[a];
        if (!at || !at->name) {
            ok = false;
            continue;
        }
        bool known = false;
        for (int k = 0; attrs && attrs[k] && !known; k++)
            known = strcmp(attrs[k], at->name) == 0;
        const char *kind = known ? onnx_attr_kind_error(at) : NULL;
        if (!known || (at->ref_attr_name && at->ref_attr_name[0])) {
            im->node = n;
            onnx_node_error(im, "attribute '%.100s' is not supported", at->name);
            ok = false;
        } else if (kind) {
            im->node = n;
            onnx_node_error(im, "attribute '%.100s' must be %s", at->name, kind);
            ok = false;
        }
    }
    if (ok) {
        int before = im->d->errors;
        im->node = n;
        onnx_check_attrs(im);
        ok = im->d->errors == before;
    }
    return ok;
}

/* Translates the nodes in an order where each comes after what it reads. */
static void graph_nodes(onnx_imp *im)
{
    const Onnx__GraphProto *g = im->g;
    size_t nn = g->n_node;
    if (nn > MAX_NODES) {
        onnx_error(im, "the graph has %zu nodes, more than %d", nn, MAX_NODES);
        return;
    }
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *n = g->node[k];
        if (!n || !n->op_type) {
            onnx_error(im, "node %zu has no operator", k);
            return;
        }
    }
    /* every node's outputs are named first, so the order can be found */
    int *producer = cnn_mem_calloc(nn + 1, sizeof *producer);
    int *indeg = cnn_mem_calloc(nn + 1, sizeof *indeg);
    int *heap = cnn_mem_calloc(nn + 1, sizeof *heap);
    size_t nedges = 0;
    for (size_t k = 0; k < nn; k++)
        nedges += g->node[k]->n_input;
    int *estart = cnn_mem_calloc(nn + 2, sizeof *estart);
    int *edges = cnn_mem_calloc(nedges + 1, sizeof *edges);
    bool *done = cnn_mem_calloc(nn + 1, sizeof *done);
    if (!producer || !indeg || !heap || !estart || !edges || !done) {
        oom(im);
        goto out;
    }
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *n = g->node[k];
        for (size_t o = 0; o < n->n_output; o++) {
            if (!n->output[o] || !n->output[o][0])
                continue;
            ov *v = onnx_define(im, n->output[o]);
            if (!v)
                goto out;
            if (v->tensor < 0) {
                onnx_error(im, "'%.200s' is the output of two nodes", n->output[o]);
                goto out;
            }
            v->kind = OV_UNSET;
            v->tensor = -1 - (int)k; /* its producer, until it is made */
        }
    }
    if (im->d->errors)
        goto out;
    int nvals = im->nvals;
    im->uses = cnn_mem_calloc((size_t)nvals + 1, sizeof *im->uses);
    if (!im->uses) {
        oom(im);
        goto out;
    }
    /* edges: producer -> reader, counted then filled (CSR) */
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *n = g->node[k];
        for (size_t i = 0; i < n->n_input; i++) {
            int v = n->input[i] && n->input[i][0] ? onnx_find(im, n->input[i]) : -1;
            if (v >= 0) {
                im->uses[v]++;
                if (im->vals[v].kind == OV_UNSET && im->vals[v].tensor < 0) {
                    estart[-1 - im->vals[v].tensor + 1]++;
                    indeg[k]++;
                }
            }
        }
    }
    for (size_t k = 0; k < g->n_output; k++) {
        int v = g->output[k] && g->output[k]->name ? onnx_find(im, g->output[k]->name) : -1;
        if (v >= 0)
            im->uses[v]++;
    }
    for (size_t k = 0; k < nn; k++)
        estart[k + 1] += estart[k];
    int *fill = producer; /* reused as the fill position */
    for (size_t k = 0; k < nn; k++)
        fill[k] = estart[k];
    for (size_t k = 0; k < nn; k++) {
        const Onnx__NodeProto *n = g->node[k];
        for (size_t i = 0; i < n->n_input; i++) {
            int v = n->input[i] && n->input[i][0] ? onnx_find(im, n->input[i]) : -1;
            if (v >= 0 && im->vals[v].kind == OV_UNSET && im->vals[v].tensor < 0)
                edges[fill[-1 - im->vals[v].tensor]++] = (int)k;
        }
    }
    /* operators and attribute names, every node at once */
    bool known = true;
    for (size_t k = 0; k < nn; k++)
        known = node_known_attrs(im, g->node[k]) && known;
    if (!known) {
        if (im->unsupported_op)
            diag_add(im->d, DIAG_NOTE, (lang_span){0, 0, 0, 0}, "the operators cnnc imports: %s", lang_onnx_operators());
        goto out;
    }
    int nh = 0;
    for (size_t k = 0; k < nn; k++)
        if (indeg[k] == 0)
            heap_push(heap, &nh, (int)k);
    while (nh > 0 && !im->oom) {
        int k = heap_pop(heap, &nh);
        const Onnx__NodeProto *n = g->node[k];
        done[k] = true;
        im->node = n;
        bool failed = false, missing = false;
        for (size_t i = 0; i < n->n_input; i++) {
            if (!n->input[i] || !n->input[i][0])
                continue;
            int v = onnx_find(im, n->input[i]);
            if (v < 0 || im->vals[v].kind == OV_UNSET) {
                onnx_node_error(im, "input '%.200s' is made by no node, graph input or initializer", n->input[i]);
                missing = true;
            } else if (im->vals[v].kind == OV_FAILED) {
                failed = true;
            }
        }
        if (!failed && !missing) {
            int before = im->d->errors;
            onnx_translate(im);
            if (im->oom)
                break;
            failed = im->d->errors > before;
        } else {
            failed = true;
        }
        for (size_t o = 0; o < n->n_output; o++) {
            int v = n->output[o] && n->output[o][0] ? onnx_find(im, n->output[o]) : -1;
            if (v >= 0 && (failed || im->vals[v].kind == OV_UNSET)) {
                if (!failed && im->uses[v] > 0) {
                    onnx_node_error(im, "output %zu ('%.200s') is not supported", o, n->output[o]);
                }
                im->vals[v].kind = OV_FAILED;
            }
        }
        for (int e = estart[k]; e < estart[k + 1]; e++)
            if (--indeg[edges[e]] == 0)
                heap_push(heap, &nh, edges[e]);
    }
    if (!im->oom) {
        strbuf sb;
        sb_init(&sb);
        int ncyc = 0;
        for (size_t k = 0; k < nn; k++)
            if (!done[k]) {
                if (ncyc < 10)
                    sb_printf(&sb, "%s'%.100s' (%.50s)", ncyc ? ", " : "", g->node[k]->name ? g->node[k]->name : "",
                              g->node[k]->op_type);
                ncyc++;
            }
        if (ncyc)
            onnx_error(im, "the graph has a cycle: %d node%s wait%s on each other: %s%s", ncyc, ncyc == 1 ? "" : "s",
                       ncyc == 1 ? "s" : "", sb.data ? sb.data : "", ncyc > 10 ? ", ..." : "");
        sb_free(&sb);
    }
out:
    cnn_mem_free(producer);
    cnn_mem_free(indeg);
    cnn_mem_free(heap);
    cnn_mem_free(estart);
    cnn_mem_free(edges);
    cnn_mem_free(done);
}

void lang_onnx_free(lang_onnx *x)
{
    if (!x)
        return;
    for (int k = 0; k < x->ntensors; k++)
        cnn_mem_free(x->tensors[k].data);
    cnn_mem_free(x->tensors);
    cnn_mem_free(x->net.layers);
    cnn_mem_free(x);
}

lang_onnx *lang_onnx_import(const void *data, size_t len, diag_list *diags)
{
    onnx_imp im = {.d = diags};
    lang_onnx *x = cnn_mem_calloc(1, sizeof *x);
    if (!x) {
        diags->oom = true;
        return NULL;
    }
    im.x = x;
    if (len > LANG_ONNX_MAX_BYTES) {
        onnx_error(&im, "the model is %zu bytes, more than the limit of 2 GiB", len);
        goto fail;
    }
    ProtobufCAllocator alloc = {pb_alloc, pb_free, &im};
    Onnx__ModelProto *m = onnx__model_proto__unpack(&alloc, len, data);
    if (!m && im.oom)
        goto fail;
    if (!m) {
        onnx_error(&im, "not an ONNX model: the protobuf is truncated or corrupt (%zu bytes)", len);
        goto fail;
    }
    im.m = m;
    im.opset = -1;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (o && (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0))
            im.opset = o->has_version ? o->version : -1;
    }
    snprintf(x->producer, sizeof x->producer, "%.60s%s%.60s", m->producer_name ? m->producer_name : "",
             m->producer_version && m->producer_version[0] ? " " : "", m->producer_version ? m->producer_version : "");
    for (char *p = x->producer; *p; p++)
        if (*p < 32 || *p > 126)
            *p = '?';
    x->opset = im.opset;
    if (!m->graph) {
        onnx_error(&im, "the model has no graph");
    } else if (im.opset < LANG_ONNX_MIN_OPSET || im.opset > LANG_ONNX_MAX_OPSET) {
        onnx_error(&im, "the model uses opset %" PRId64 " of the ONNX domain; cnnc imports opsets %d to %d "
                        "(convert it with onnx.version_converter)",
                   im.opset, LANG_ONNX_MIN_OPSET, LANG_ONNX_MAX_OPSET);
    } else {
        im.g = m->graph;
        /* the graph's name, or the file's when it is empty or PyTorch's generic one */
        const char *gname = m->graph->name ? m->graph->name : "";
        char stem[OP_NAME_MAX];
        if (!gname[0] || strcmp(gname, "torch_jit") == 0 || strcmp(gname, "main_graph") == 0) {
            const char *f = diags->file ? diags->file : "model";
            const char *b = strrchr(f, '/');
            snprintf(stem, sizeof stem, "%s", b ? b + 1 : f);
            char *dot = strrchr(stem, '.');
            if (dot && dot != stem)
                *dot = '\0';
            gname = stem;
        }
        make_ident(x->net.name, sizeof x->net.name, gname);
        if (m->graph->n_sparse_initializer > 0)
            onnx_error(&im, "the graph has sparse initializers, which cnnc does not read");
        for (size_t k = 0; k < m->graph->n_initializer && !im.oom; k++) {
            const Onnx__TensorProto *t = m->graph->initializer[k];
            if (!t)
                continue;
            ov *v = onnx_define(&im, t->name);
            if (v && onnx_tensor(&im, t, v, "initializer"))
                v->init_name = v->name;
            else if (v)
                v->kind = OV_FAILED;
        }
        if (diags->errors == 0 && !im.oom && graph_inputs(&im) && diags->errors == 0) {
            graph_nodes(&im);
            if (diags->errors == 0 && !im.oom)
                graph_outputs(&im);
        }
    }
    onnx__model_proto__free_unpacked(m, &alloc);
    for (int k = 0; k < im.nblocks; k++)
        cnn_mem_free(im.blocks[k]);
    cnn_mem_free(im.blocks);
    cnn_mem_free(im.vals);
    cnn_mem_free(im.hash);
    cnn_mem_free(im.uses);
    if (im.oom || diags->errors)
        goto fail_nofree;
    return x;
fail:
fail_nofree:
    lang_onnx_free(x);
    return NULL;
}
