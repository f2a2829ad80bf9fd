/* ONNX out: a model's parsed graph and its weights as an ONNX model (opset 13): one ONNX node
 * per layer (plus a Flatten where cnnc's shapes are flat and ONNX's are not), weights as
 * initializers under their spec names, the batch axis dynamic.  With fold_bn, a batchnorm
 * right after a conv or dense layer (its only reader) is folded into that layer's weights. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/fileio.h"
#include "runtime/rt.h"

#ifdef CNN_HAVE_ONNX
#include "onnx.pb-c.h"

enum { EXPORT_OPSET = 13 };

/* Everything allocated for the message, freed at once. */
typedef struct ex {
    void **blocks;
    int nblocks, cap;
    bool oom;
    Onnx__GraphProto *g;
    size_t capnodes, capinits;
} ex;

static void *ex_alloc(ex *e, size_t n)
{
    if (e->nblocks == e->cap) {
        int cap = e->cap ? e->cap * 2 : 256;
        void **b = cnn_mem_realloc(e->blocks, (size_t)cap * sizeof *b);
        if (!b) {
            e->oom = true;
            return NULL;
        }
        e->blocks = b, e->cap = cap;
    }
    void *p = cnn_mem_calloc(1, n ? n : 1);
    if (!p) {
        e->oom = true;
        return NULL;
    }
    e->blocks[e->nblocks++] = p;
    return p;
}

static char *ex_str(ex *e, const char *s)
{
    char *p = ex_alloc(e, strlen(s) + 1);
    if (p)
        strcpy(p, s);
    return p;
}

static Onnx__NodeProto *ex_node(ex *e, const char *op, const char *name, int nin, const char *const *in,
                                const char *out)
{
    Onnx__NodeProto *n = ex_alloc(e, sizeof *n);
    char **ins = ex_alloc(e, sizeof(char *) * (size_t)(nin ? nin : 1));
    char **outs = ex_alloc(e, sizeof(char *));
    Onnx__AttributeProto **attrs = ex_alloc(e, sizeof(Onnx__AttributeProto *) * 8);
    if (!n || !ins || !outs || !attrs)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = ex_str(e, op);
    n->name = ex_str(e, name);
    for (int k = 0; k < nin; k++)
        ins[k] = ex_str(e, in[k]);
    n->n_input = (size_t)nin;
    n->input = ins;
    outs[0] = ex_str(e, out);
    n->n_output = 1;
    n->output = outs;
    n->attribute = attrs;
    Onnx__GraphProto *g = e->g;
    if (g->n_node == e->capnodes) {
        size_t cap = e->capnodes ? e->capnodes * 2 : 64;
        Onnx__NodeProto **nn = ex_alloc(e, cap * sizeof *nn);
        if (!nn)
            return NULL;
        if (g->n_node)
            memcpy(nn, g->node, g->n_node * sizeof *nn);
        g->node = nn, e->capnodes = cap;
    }
    g->node[g->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *ex_attr(ex *e, Onnx__NodeProto *n, const char *name)
{
    if (!n || n->n_attribute >= 8)
        return NULL;
    Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = ex_str(e, name);
    a->has_type = true;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(ex *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name);
    if (a)
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i = true, a->i = v;
}

static void attr_float(ex *e, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name);
    if (a)
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f = true, a->f = v;
}

static void attr_ints(ex *e, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name);
    int64_t *d = ex_alloc(e, sizeof(int64_t) * (size_t)cnt);
    if (!a || !d)
        return;
    memcpy(d, v, sizeof(int64_t) * (size_t)cnt);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)cnt;
    a->ints = d;
}

/* An initializer name[dims] holding n floats (copied, little-endian). */
static void ex_init(ex *e, const char *name, int rank, const int64_t *dims, const float *data, int64_t n)
{
    Onnx__TensorProto *t = ex_alloc(e, sizeof *t);
    int64_t *d = ex_alloc(e, sizeof(int64_t) * (size_t)(rank ? rank : 1));
    uint8_t *raw = ex_alloc(e, (size_t)n * 4);
    if (!t || !d || !raw)
        return;
    onnx__tensor_proto__init(t);
    t->name = ex_str(e, name);
    t->has_data_type = true;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (rank > 0)
        memcpy(d, dims, sizeof(int64_t) * (size_t)rank);
    t->n_dims = (size_t)rank;
    t->dims = d;
    for (int64_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &data[k], 4);
        raw[4 * k] = (uint8_t)u, raw[4 * k + 1] = (uint8_t)(u >> 8), raw[4 * k + 2] = (uint8_t)(u >> 16),
                    raw[4 * k + 3] = (uint8_t)(u >> 24);
    }
    t->has_raw_data = true;
    t->raw_data.len = (size_t)n * 4;
    t->raw_data.data = raw;
    Onnx__GraphProto *g = e->g;
    if (g->n_initializer == e->capinits) {
        size_t cap = e->capinits ? e->capinits * 2 : 64;
        Onnx__TensorProto **nt = ex_alloc(e, cap * sizeof *nt);
        if (!nt)
            return;
        if (g->n_initializer)
            memcpy(nt, g->initializer, g->n_initializer * sizeof *nt);
        g->initializer = nt, e->capinits = cap;
    }
    g->initializer[g->n_initializer++] = t;
}

static Onnx__ValueInfoProto *ex_value_info(ex *e, const char *name, const op_shape *s)
{
    Onnx__ValueInfoProto *vi = ex_alloc(e, sizeof *vi);
    Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_alloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, sizeof *dims * (size_t)(s->rank + 1));
    if (!vi || !tp || !tt || !sh || !dims)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int d = 0; d <= s->rank; d++) {
        dims[d] = ex_alloc(e, sizeof **dims);
        if (!dims[d])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[d]);
        if (d == 0) {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[d]->dim_param = ex_str(e, "batch");
        } else {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[d]->dim_value = s->d[d - 1];
        }
    }
    sh->n_dim = (size_t)s->rank + 1;
    sh->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = ex_str(e, name);
    vi->type = tp;
    return vi;
}

/* The spatial values of a conv or pool, ONNX order (d, h, w), and their count. */
static int spatial(int sdims, int64_t dval, const int64_t hw[2], int64_t *out)
{
    if (sdims == 1) {
        out[0] = hw[1];
        return 1;
    }
    int k = 0;
    if (sdims == 3)
        out[k++] = dval;
    out[k++] = hw[0];
    out[k++] = hw[1];
    return k;
}

static const float *weight_of(cnn_weights *w, const char *name, const op_shape **shape)
{
    int i = rt_weights_find(w, name);
    if (i < 0)
        return NULL;
    if (shape)
        *shape = &w->t[i].shape;
    return w->t[i].data;
}

static void add_param(ex *e, cnn_weights *w, const char *name)
{
    const op_shape *s;
    const float *d = weight_of(w, name, &s);
    if (!d)
        return;
    ex_init(e, name, s->rank, s->d, d, op_shape_numel(s));
}

/* True when node n is a batchnorm that folds into the conv or dense layer producing its input. */
static int folds_into(const ir_graph *g, int n)
{
    const ir_node *bn = &g->nodes[n];
    if (bn->op != OP_BATCHNORM || bn->nin < 1)
        return -1;
    int v = bn->in[0], p = g->vals[v].producer;
    if (p < 0)
        return -1;
    const ir_node *pn = &g->nodes[p];
    if (!op_def_get(pn->op)->bias_flag) /* the registry: a batchnorm after it folds into it */
        return -1;
    for (int k = 0; k < g->nnodes; k++)
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (k != n && g->nodes[k].in[i] == v)
                return -1;
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o] == v)
            return -1;
    return p;
}

/* What a layer's writer sees: the message being built, the weights, the graph, the node, its
 * first input's and its output's ONNX names, and which batchnorm folds into which layer. */
typedef struct wctx {
    ex *e;
    cnn_weights *w;
    const ir_graph *g;
    int n;                  /* the node */
    const ir_node *nd;
    const char *x, *out;
    const op_shape *xs;
    const int *folded_bn;   /* per node: the batchnorm folded into it + 1, or 0 */
    const char *onnx;       /* the ONNX operator of the writers' table */
    char *err;
} wctx;

/* conv1d/2d/3d and dense: Conv or Gemm (after a Flatten when dense reads more than a vector),
 * with a following batchnorm folded in when asked. */
static cnn_status write_conv_dense(wctx *c)
{
    ex *e = c->e;
    const ir_node *nd = c->nd;
    bool conv = strcmp(c->onnx, "Conv") == 0;
    char buf[OP_NAME_MAX + 32], wname[OP_NAME_MAX + 16], bname[OP_NAME_MAX + 16];
    snprintf(wname, sizeof wname, "%s.weight", nd->name);
    snprintf(bname, sizeof bname, "%s.bias", nd->name);
    bool bias = conv ? nd->attrs.conv.bias : nd->attrs.dense.bias;
    const char *in = c->x;
    if (!conv && c->xs->rank > 1) {
        snprintf(buf, sizeof buf, "%s.flat", nd->name);
        Onnx__NodeProto *f = ex_node(e, "Flatten", buf, 1, &in, buf);
        attr_int(e, f, "axis", 1);
        in = buf;
    }
    const char *final_out = c->out;
    if (c->folded_bn[c->n]) {
        /* w' = w * gamma / sqrt(var + eps) per output, b' = (b - mean) * that + beta */
        const ir_node *bn = &c->g->nodes[c->folded_bn[c->n] - 1];
        final_out = c->g->vals[bn->out[0]].name;
        char pn[4][OP_NAME_MAX + 16];
        static const char *const sfx[4] = {"weight", "bias", "running_mean", "running_var"};
        const float *p[4];
        for (int k = 0; k < 4; k++) {
            snprintf(pn[k], sizeof pn[k], "%s.%s", bn->name, sfx[k]);
            p[k] = weight_of(c->w, pn[k], NULL);
        }
        const op_shape *ws;
        const float *wd = weight_of(c->w, wname, &ws);
        const float *bd = bias ? weight_of(c->w, bname, NULL) : NULL;
        if (!wd || !p[0] || !p[1] || !p[2] || !p[3] || (bias && !bd))
            return rt_fail(c->err, CNN_ERR_INTERNAL, "missing weights of %s", nd->name);
        int64_t M = ws->d[0], per = op_shape_numel(ws) / M;
        float *nw = cnn_mem_malloc(sizeof(float) * (size_t)(M * per) + 1);
        float *nb = cnn_mem_malloc(sizeof(float) * (size_t)M + 1);
        if (!nw || !nb) {
            cnn_mem_free(nw);
            cnn_mem_free(nb);
            return rt_fail(c->err, CNN_ERR_NOMEM, "out of memory");
        }
        for (int64_t o = 0; o < M; o++) {
            double s = (double)p[0][o] / sqrt((double)p[3][o] + (double)bn->attrs.bn.eps);
            for (int64_t k = 0; k < per; k++)
                nw[o * per + k] = (float)((double)wd[o * per + k] * s);
            nb[o] = (float)(((bd ? (double)bd[o] : 0.0) - (double)p[2][o]) * s + (double)p[1][o]);
        }
        ex_init(e, wname, ws->rank, ws->d, nw, M * per);
        ex_init(e, bname, 1, &M, nb, M);
        cnn_mem_free(nw);
        cnn_mem_free(nb);
        bias = true;
    } else {
        add_param(e, c->w, wname);
        if (bias)
            add_param(e, c->w, bname);
    }
    const char *ins[3] = {in, wname, bname};
    Onnx__NodeProto *o = ex_node(e, c->onnx, nd->name, bias ? 3 : 2, ins, final_out);
    if (!conv) {
        attr_int(e, o, "transB", 1);
        return CNN_OK;
    }
    const op_conv_attrs *ca = &nd->attrs.conv;
    int64_t v[3], pads[6];
    int k = spatial(ca->sdims, ca->kernel_d, ca->kernel, v);
    attr_ints(e, o, "kernel_shape", k, v);
    spatial(ca->sdims, ca->stride_d, ca->stride, v);
    attr_ints(e, o, "strides", k, v);
    spatial(ca->sdims, ca->dilation_d, ca->dilation, v);
    attr_ints(e, o, "dilations", k, v);
    spatial(ca->sdims, ca->pad_d, ca->pad, pads);
    memcpy(pads + k, pads, sizeof(int64_t) * (size_t)k);
    attr_ints(e, o, "pads", 2 * k, pads);
    attr_int(e, o, "group", ca->groups);
    return CNN_OK;
}

static cnn_status write_pool(wctx *c)
{
    bool max = strcmp(c->onnx, "MaxPool") == 0;
    Onnx__NodeProto *p = ex_node(c->e, c->onnx, c->nd->name, 1, &c->x, c->out);
    const op_pool_attrs *pa = &c->nd->attrs.pool;
    int64_t v[6];
    int k = spatial(pa->sdims, pa->size_d, pa->size, v);
    attr_ints(c->e, p, "kernel_shape", k, v);
    spatial(pa->sdims, pa->stride_d, pa->stride, v);
    attr_ints(c->e, p, "strides", k, v);
    spatial(pa->sdims, pa->pad_d, pa->pad, v);
    memcpy(v + k, v, sizeof(int64_t) * (size_t)k);
    attr_ints(c->e, p, "pads", 2 * k, v);
    if (!max)
        attr_int(c->e, p, "count_include_pad", 1);
    return CNN_OK;
}

/* cnnc's global_avgpool makes [C]: GlobalAveragePool, then Flatten. */
static cnn_status write_global_avgpool(wctx *c)
{
    char pooled[OP_NAME_MAX + 16], flat[OP_NAME_MAX + 16];
    snprintf(pooled, sizeof pooled, "%s.pooled", c->nd->name);
    snprintf(flat, sizeof flat, "%s.flat", c->nd->name);
    ex_node(c->e, "GlobalAveragePool", c->nd->name, 1, &c->x, pooled);
    const char *pin = pooled;
    attr_int(c->e, ex_node(c->e, "Flatten", flat, 1, &pin, c->out), "axis", 1);
    return CNN_OK;
}

static cnn_status write_flatten(wctx *c)
{
    attr_int(c->e, ex_node(c->e, "Flatten", c->nd->name, 1, &c->x, c->out), "axis", 1);
    return CNN_OK;
}

static cnn_status write_batchnorm(wctx *c)
{
    for (int p = 0; p < c->g->nnodes; p++)
        if (c->folded_bn[p] == c->n + 1)
            return CNN_OK; /* folded into the layer before it */
    static const char *const sfx[4] = {"weight", "bias", "running_mean", "running_var"};
    char pn[4][OP_NAME_MAX + 16];
    const char *ins[5] = {c->x, pn[0], pn[1], pn[2], pn[3]};
    for (int k = 0; k < 4; k++) {
        snprintf(pn[k], sizeof pn[k], "%s.%s", c->nd->name, sfx[k]);
        add_param(c->e, c->w, pn[k]);
    }
    Onnx__NodeProto *b = ex_node(c->e, "BatchNormalization", c->nd->name, 5, ins, c->out);
    attr_float(c->e, b, "epsilon", c->nd->attrs.bn.eps);
    attr_float(c->e, b, "momentum", 1.0f - c->nd->attrs.bn.momentum);
    return CNN_OK;
}

static cnn_status write_dropout(wctx *c)
{
    char ratio[OP_NAME_MAX + 16];
    snprintf(ratio, sizeof ratio, "%s.ratio", c->nd->name);
    ex_init(c->e, ratio, 0, NULL, &c->nd->attrs.dropout.p, 1);
    const char *ins[2] = {c->x, ratio};
    ex_node(c->e, "Dropout", c->nd->name, 2, ins, c->out);
    return CNN_OK;
}

static cnn_status write_unary(wctx *c)
{
    ex_node(c->e, c->onnx, c->nd->name, 1, &c->x, c->out);
    return CNN_OK;
}

static cnn_status write_leaky_relu(wctx *c)
{
    attr_float(c->e, ex_node(c->e, "LeakyRelu", c->nd->name, 1, &c->x, c->out), "alpha", c->nd->attrs.act.alpha);
    return CNN_OK;
}

static cnn_status write_softmax(wctx *c)
{
    attr_int(c->e, ex_node(c->e, "Softmax", c->nd->name, 1, &c->x, c->out), "axis", 1);
    return CNN_OK;
}

/* concat and add: every input by name. */
static cnn_status write_nary(wctx *c)
{
    const char *ins[OP_MAX_IN];
    for (int k = 0; k < c->nd->nin && k < OP_MAX_IN; k++)
        ins[k] = c->g->vals[c->nd->in[k]].name;
    Onnx__NodeProto *o = ex_node(c->e, c->onnx, c->nd->name, c->nd->nin, ins, c->out);
    if (strcmp(c->onnx, "Concat") == 0)
        attr_int(c->e, o, "axis", 1);
    return CNN_OK;
}

/* The ONNX form of each layer kind. */
static const struct {
    op_kind op;
    const char *onnx;
    cnn_status (*write)(wctx *c);
} writers[] = {
    {OP_CONV1D, "Conv", write_conv_dense},
    {OP_CONV2D, "Conv", write_conv_dense},
    {OP_CONV3D, "Conv", write_conv_dense},
    {OP_DENSE, "Gemm", write_conv_dense},
    {OP_MAXPOOL, "MaxPool", write_pool},
    {OP_AVGPOOL, "AveragePool", write_pool},
    {OP_GLOBAL_AVGPOOL, "GlobalAveragePool", write_global_avgpool},
    {OP_FLATTEN, "Flatten", write_flatten},
    {OP_BATCHNORM, "BatchNormalization", write_batchnorm},
    {OP_DROPOUT, "Dropout", write_dropout},
    {OP_RELU, "Relu", write_unary},
    {OP_SIGMOID, "Sigmoid", write_unary},
    {OP_TANH, "Tanh", write_unary},
    {OP_LEAKY_RELU, "LeakyRelu", write_leaky_relu},
    {OP_SOFTMAX, "Softmax", write_softmax},
    {OP_CONCAT, "Concat", write_nary},
    {OP_ADD, "Add", write_nary},
};

static cnn_status export_graph(cnn_model *m, cnn_weights *w, ex *e, bool fold_bn, char *err)
{
    const ir_graph *g = m->graph;
    int *folded_bn = cnn_mem_calloc((size_t)g->nnodes + 1, sizeof *folded_bn);
    if (!folded_bn)
        return rt_fail(err, CNN_ERR_NOMEM, "out of memory");
    if (fold_bn)
        for (int n = 0; n < g->nnodes; n++) {
            int p = folds_into(g, n);
            if (p >= 0)
                folded_bn[p] = n + 1;
        }
    cnn_status st = CNN_OK;
    for (int n = 0; n < g->nnodes && !e->oom && st == CNN_OK; n++) {
        const ir_node *nd = &g->nodes[n];
        wctx c = {.e = e, .w = w, .g = g, .n = n, .nd = nd, .x = nd->nin > 0 ? g->vals[nd->in[0]].name : "",
                  .out = g->vals[nd->out[0]].name, .xs = nd->nin > 0 ? &g->vals[nd->in[0]].shape : NULL,
                  .folded_bn = folded_bn, .err = err};
        size_t k = 0;
        while (k < sizeof writers / sizeof writers[0] && writers[k].op != nd->op)
            k++;
        if (k < sizeof writers / sizeof writers[0])
            c.onnx = writers[k].onnx;
        st = k < sizeof writers / sizeof writers[0]
                 ? writers[k].write(&c)
                 : rt_fail(err, CNN_ERR_INTERNAL, "layer %s (%s) has no ONNX form", nd->name, op_name(nd->op));
    }
    cnn_mem_free(folded_bn);
    return st;
}

cnn_status cnn_model_export_onnx(cnn_model *m, cnn_weights *w, const char *path, bool fold_bn)
{
    char err[RT_ERR_MAX];
    if (!m->graph || !w || w->model != m) {
        snprintf(err, sizeof err, "%s: the model did not compile, or the weights are another model's", path);
        cnn_mem_free(m->errmsg);
        m->errmsg = cnn_mem_strdup(err);
        return CNN_ERR_USAGE;
    }
    const ir_graph *g = m->graph;
    ex e = {0};
    Onnx__ModelProto *mp = ex_alloc(&e, sizeof *mp);
    Onnx__GraphProto *gp = ex_alloc(&e, sizeof *gp);
    Onnx__OperatorSetIdProto *os = ex_alloc(&e, sizeof *os);
    Onnx__OperatorSetIdProto **osl = ex_alloc(&e, sizeof *osl);
    Onnx__ValueInfoProto **ins = ex_alloc(&e, sizeof *ins * (size_t)(g->ninputs + 1));
    Onnx__ValueInfoProto **outs = ex_alloc(&e, sizeof *outs * (size_t)(g->noutputs + 1));
    cnn_status st = CNN_OK;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!rt_weights_claim_read(w)) {
        st = rt_fail(err, CNN_ERR_USAGE, "%s: the weights are being written by a training step on another thread", path);
        goto done_noclaim;
    }
    if (e.oom)
        goto oom;
    onnx__model_proto__init(mp);
    onnx__graph_proto__init(gp);
    onnx__operator_set_id_proto__init(os);
    os->domain = ex_str(&e, "");
    os->has_version = true;
    os->version = EXPORT_OPSET;
    osl[0] = os;
    mp->has_ir_version = true;
    mp->ir_version = 7; /* the IR version of opset 13 */
    mp->n_opset_import = 1;
    mp->opset_import = osl;
    mp->producer_name = ex_str(&e, "cnnc");
    mp->producer_version = ex_str(&e, cnn_version());
    mp->graph = gp;
    gp->name = ex_str(&e, g->name);
    e.g = gp;
    for (int i = 0; i < g->ninputs; i++)
        ins[i] = ex_value_info(&e, g->vals[g->inputs[i]].name, &g->vals[g->inputs[i]].shape);
    gp->n_input = (size_t)g->ninputs;
    gp->input = ins;
    st = export_graph(m, w, &e, fold_bn, err);
    if (st != CNN_OK)
        goto done;
    for (int o = 0; o < g->noutputs; o++) {
        const char *vname = g->vals[g->outputs[o]].name;
        if (strcmp(vname, g->output_names[o]) != 0) {
            char nm[OP_NAME_MAX + 16];
            snprintf(nm, sizeof nm, "output.%s", g->output_names[o]);
            ex_node(&e, "Identity", nm, 1, &vname, g->output_names[o]);
        }
        outs[o] = ex_value_info(&e, g->output_names[o], &g->vals[g->outputs[o]].shape);
    }
    gp->n_output = (size_t)g->noutputs;
    gp->output = outs;
    if (e.oom)
        goto oom;
    len = onnx__model_proto__get_packed_size(mp);
    buf = cnn_mem_malloc(len + 1);
    if (!buf)
        goto oom;
    onnx__model_proto__pack(mp, buf);
    rt_outfile of;
    if (rt_out_open(&of, path) != 0) {
        st = rt_fail(err, CNN_ERR_INPUT, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    if (fwrite(buf, 1, len, of.fp) != len) {
        rt_out_abort(&of);
        st = rt_fail(err, CNN_ERR_INPUT, "%s: write error", path);
        goto done;
    }
    char msg[RT_ERR_MAX / 2];
    if (rt_out_commit(&of, msg, sizeof msg) != 0)
        st = rt_fail(err, CNN_ERR_INPUT, "%s: %s", path, msg);
    goto done;
oom:
    st = rt_fail(err, CNN_ERR_NOMEM, "out of memory");
done:
    rt_weights_release_read(w);
done_noclaim:
    cnn_mem_free(buf);
    for (int k = 0; k < e.nblocks; k++)
        cnn_mem_free(e.blocks[k]);
    cnn_mem_free(e.blocks);
    if (st != CNN_OK) {
        cnn_mem_free(m->errmsg);
        m->errmsg = cnn_mem_strdup(err);
    }
    return st;
}

#else

cnn_status cnn_model_export_onnx(cnn_model *m, cnn_weights *w, const char *path, bool fold_bn)
{
    (void)w, (void)fold_bn;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: cnnc was built without ONNX support (rebuild with -Donnx=enabled)", path);
    cnn_mem_free(m->errmsg);
    m->errmsg = cnn_mem_strdup(msg);
    return CNN_ERR_INPUT;
}

#endif
