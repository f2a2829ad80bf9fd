/* The weights store: every parameter and running statistic of a model, by its spec name
 * (conv2d_1.weight, batchnorm_1.running_var...); PyTorch-style seeded initialisation; load
 * and save as safetensors with every mismatch reported by file and tensor (the matching of a
 * file's keys to the network, renames included, is in weights_rename.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/checked.h"
#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/checkpoint.h"
#include "runtime/rng.h"
#include "runtime/quantize.h"
#include "runtime/rt.h"
#include "runtime/sysmem.h"
#include "runtime/safetensors.h"

int rt_weights_find(const cnn_weights *w, const char *name)
{
    for (int i = 0; i < w->count + w->naux; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return i;
    return -1;
}

/* The node that reads parameter value v (its owner), or NULL. */
static const ir_node *owner_of(const ir_graph *g, int v)
{
    for (int n = 0; n < g->nnodes; n++)
        for (int k = 0; k < g->nodes[n].nin; k++)
            if (g->nodes[n].in[k] == v)
                return &g->nodes[n];
    return NULL;
}

/* How the owner's registry entry initialises the parameter called `suffix` (op_def.params);
 * uniform in +-1/sqrt(fan_in) when it does not say. */
static op_init init_rule(const ir_graph *g, const ir_node *own, const char *suffix)
{
    const op_def *def = own ? op_def_get(own->op) : NULL;
    if (!def || !def->params || own->nin < 1)
        return OP_INIT_FAN_IN_UNIFORM;
    const char *sfx[OP_MAX_PARAMS];
    op_shape shapes[OP_MAX_PARAMS];
    bool trainable[OP_MAX_PARAMS];
    op_init init[OP_MAX_PARAMS];
    op_shape in0 = g->vals[own->in[0]].shape;
    int np = def->params(&own->attrs, &in0, sfx, shapes, trainable, init);
    for (int k = 0; k < np; k++)
        if (strcmp(sfx[k], suffix) == 0)
            return init[k];
    return OP_INIT_FAN_IN_UNIFORM;
}

/* PyTorch's defaults, as the registry gives them per parameter (op_init): conv and dense
 * weights Kaiming-uniform with a=sqrt(5), which is uniform in +-1/sqrt(fan_in); their biases
 * uniform in +-1/sqrt(fan_in) of the weight; batchnorm weight 1, bias 0, running mean 0,
 * running var 1.  The random draws go in parameter order, one per element. */
static void init_tensor(const ir_graph *g, int v, rt_tensor *t, rt_rng *rng)
{
    const ir_node *own = owner_of(g, v);
    int64_t n = op_shape_numel(&t->shape);
    const char *suffix = strrchr(t->name, '.');
    suffix = suffix ? suffix + 1 : t->name;
    op_init rule = init_rule(g, own, suffix);
    if (rule == OP_INIT_ONE || rule == OP_INIT_ZERO) {
        float val = rule == OP_INIT_ONE ? 1.0f : 0.0f;
        for (int64_t i = 0; i < n; i++)
            t->data[i] = val;
        return;
    }
    /* OP_INIT_FAN_IN_UNIFORM and OP_INIT_BIAS_FAN_IN_UNIFORM: the fan-in of the layer's
     * weight, its first parameter input of rank 2 or more (the weight itself for a weight) */
    int64_t fan_in = 1;
    if (own) {
        /* fan_in = numel / out_features */
        for (int k = 0; k < own->nin; k++) {
            const ir_value *pv = &g->vals[own->in[k]];
            if (pv->kind == IR_VAL_PARAM && pv->shape.rank >= 2) {
                fan_in = op_shape_numel(&pv->shape) / pv->shape.d[0];
                break;
            }
        }
    }
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    for (int64_t i = 0; i < n; i++)
        t->data[i] = (float)((2.0 * rt_rng_uniform(rng) - 1.0) * bound);
}

cnn_status cnn_weights_create(cnn_weights **out, const cnn_model *m, uint64_t seed)
{
    *out = NULL;
    cnn_weights *w = cnn_mem_calloc(1, sizeof *w);
    if (!w)
        return CNN_ERR_NOMEM;
    *out = w;
    w->model = m;
    const ir_graph *g = m->graph;
    if (!g)
        return rt_fail(w->err, CNN_ERR_USAGE, "the model did not compile");
    int n = 0;
    for (int v = 0; v < g->nvals; v++)
        if (g->vals[v].kind == IR_VAL_PARAM || g->vals[v].kind == IR_VAL_STATE)
            n++;
    size_t total = 0;
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        size_t bytes;
        if ((val->kind == IR_VAL_PARAM || val->kind == IR_VAL_STATE) &&
            (!ck_bytes(op_shape_numel(&val->shape), 1, sizeof(float), &bytes) || !ck_add_size(total, bytes, &total) ||
             total > OP_MAX_BYTES))
            return rt_fail(w->err, CNN_ERR_USAGE, "the weights exceed the limit of %zu bytes (1 TiB) at %s",
                           OP_MAX_BYTES, val->name);
    }
    char msg[256];
    if (rt_mem_check(total, "storing the weights", msg, sizeof msg) != 0)
        return rt_fail(w->err, CNN_ERR_NOMEM, "%s", msg);
    w->t = cnn_mem_calloc((size_t)n + 1, sizeof(rt_tensor));
    if (!w->t)
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    rt_rng rng;
    rt_rng_seed(&rng, seed);
    for (int v = 0; v < g->nvals; v++) {
        const ir_value *val = &g->vals[v];
        if (val->kind != IR_VAL_PARAM && val->kind != IR_VAL_STATE)
            continue;
        rt_tensor *t = &w->t[w->count];
        snprintf(t->name, sizeof t->name, "%s", val->name);
        t->shape = val->shape;
        t->trainable = val->kind == IR_VAL_PARAM;
        t->data = cnn_mem_malloc(sizeof(float) * (size_t)op_shape_numel(&val->shape) + 1);
        if (!t->data)
            return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory for %s", t->name);
        w->count++;
        init_tensor(g, v, t, &rng);
    }
    /* an imported model's weights (ONNX) replace the initial values */
    for (int k = 0; k < m->nimported; k++) {
        int i = rt_weights_find(w, m->imported[k].name);
        if (i < 0 || !op_shape_equal(&w->t[i].shape, &m->imported[k].shape))
            return rt_fail(w->err, CNN_ERR_INTERNAL, "the imported tensor %s does not fit the network",
                           m->imported[k].name);
        memcpy(w->t[i].data, m->imported[k].data, sizeof(float) * (size_t)op_shape_numel(&w->t[i].shape));
    }
    return CNN_OK;
}

void cnn_weights_destroy(cnn_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->count + w->naux; i++)
        cnn_mem_free(w->t[i].data);
    cnn_mem_free(w->t);
    cnn_mem_free(w->long_err);
    cnn_mem_free(w);
}

const char *cnn_weights_errmsg(const cnn_weights *w) { return !w ? "out of memory" : w->long_err ? w->long_err : w->err; }
int cnn_weights_count(const cnn_weights *w) { return w->count; }

bool rt_weights_claim_read(cnn_weights *w)
{
    unsigned c = atomic_load(&w->claims);
    do {
        if (c & RT_CLAIM_WRITE || c + 1 == RT_CLAIM_WRITE)
            return false;
    } while (!atomic_compare_exchange_weak(&w->claims, &c, c + 1));
    return true;
}

void rt_weights_release_read(cnn_weights *w) { atomic_fetch_sub(&w->claims, 1); }

bool rt_weights_claim_write(cnn_weights *w)
{
    unsigned idle = 0;
    return atomic_compare_exchange_strong(&w->claims, &idle, RT_CLAIM_WRITE);
}

void rt_weights_release_write(cnn_weights *w) { atomic_store(&w->claims, 0u); }

_Static_assert(CNN_WEIGHT_MAX_RANK >= OP_MAX_RANK, "cnn_weights_tensor reports every dim of a weight");

float *cnn_weights_tensor(cnn_weights *w, int i, const char **name, int *rank, int64_t dims[CNN_WEIGHT_MAX_RANK])
{
    if (i < 0 || i >= w->count)
        return NULL;
    rt_tensor *t = &w->t[i];
    atomic_fetch_add(&w->version, 1); /* the caller may write through the pointer */
    if (name)
        *name = t->name;
    if (rank)
        *rank = t->shape.rank;
    if (dims)
        for (int k = 0; k < t->shape.rank && k < CNN_WEIGHT_MAX_RANK; k++)
            dims[k] = t->shape.d[k];
    return t->data;
}

void cnn_load_options_default(cnn_load_options *o)
{
    memset(o, 0, sizeof *o);
}

cnn_status cnn_weights_load(cnn_weights *w, const char *path, bool allow_extra)
{
    cnn_load_options o;
    cnn_load_options_default(&o);
    o.allow_extra = allow_extra;
    return cnn_weights_load_opts(w, path, &o);
}

/* A training checkpoint (checkpoint.h) loads as weights: its optimiser state (NAME.exp_avg ...
 * of the network's tensors) is left out of view, so that only other unknown keys are errors.
 * *view is f itself, or f without those keys (its tensors array in *kept, to free). */
static bool checkpoint_view(const cnn_weights *w, const rt_st_file *f, rt_st_file *view, rt_st_tensor **kept)
{
    *view = *f;
    *kept = NULL;
    const char *fmt = rt_st_meta(f, "format");
    if (!fmt || strcmp(fmt, RT_CKPT_FORMAT) != 0)
        return true;
    if (!(*kept = cnn_mem_calloc((size_t)f->count + 1, sizeof **kept)))
        return false;
    int n = 0;
    for (int j = 0; j < f->count; j++)
        if (!rt_ckpt_is_optstate_key(w, f->tensors[j].name))
            (*kept)[n++] = f->tensors[j];
    view->count = n;
    view->tensors = *kept;
    return true;
}

/* Matches the tensors of f (read from `path`, the name in messages) to the weights as opt says
 * and, when all is well, copies them in; frees f.  A writer of the weights. */
static cnn_status load_tensors(cnn_weights *w, rt_st_file *file, const char *path, const cnn_load_options *opt)
{
    rt_st_file view, *f = &view;
    rt_st_tensor *kept;
    if (!checkpoint_view(w, file, &view, &kept)) {
        rt_st_free(file);
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    }
    if (!rt_weights_claim_write(w)) {
        cnn_mem_free(kept);
        rt_st_free(file);
        return rt_fail(w->err, CNN_ERR_USAGE,
                       "%s: the weights are in use by a session running on another thread; loading "
                       "would change them under it", path);
    }
    /* check everything first, so a failed load changes nothing; the int8 scales (runtime/quantize.c)
     * are checked apart and matched by name only */
    rt_st_file qview;
    rt_st_tensor *qkept = NULL;
    cnn_status st = rt_scales_split(w, f, path, &qview, &qkept);
    f = &qview;
    int *idx = cnn_mem_malloc(sizeof(int) * ((size_t)w->count + 1));
    if (st == CNN_OK)
        st = idx ? rt_weights_match(w, path, f, opt, idx) : rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < w->count && st == CNN_OK && !opt->allow_nonfinite; i++) {
        const rt_st_tensor *t = &f->tensors[idx[i]];
        for (int64_t k = 0; k < t->numel; k++)
            if (!isfinite(t->data[k])) {
                st = rt_fail(w->err, CNN_ERR_INPUT, "%s: %s holds a non-finite value (%s) at index %lld", path,
                             w->t[i].name, isnan(t->data[k]) ? "NaN" : t->data[k] > 0 ? "inf" : "-inf",
                             (long long)k);
                break;
            }
    }
    if (st == CNN_OK) {
        for (int i = 0; i < w->count; i++) {
            const rt_st_tensor *t = &f->tensors[idx[i]];
            memcpy(w->t[i].data, t->data, sizeof(float) * (size_t)t->numel);
        }
        st = rt_scales_store(w, file);
        snprintf(w->source, sizeof w->source, "%s", path);
        atomic_fetch_add(&w->version, 1);
    }
    rt_weights_release_write(w);
    cnn_mem_free(idx);
    cnn_mem_free(kept);
    cnn_mem_free(qkept);
    rt_st_free(file);
    return st;
}

static cnn_status read_failed(cnn_weights *w, rt_st_status rs, const char *msg)
{
    return rt_fail(w->err, rs == RT_ST_ENOMEM ? CNN_ERR_NOMEM : rs == RT_ST_EARG ? CNN_ERR_USAGE : CNN_ERR_INPUT,
                   "%s", msg);
}

cnn_status cnn_weights_load_opts(cnn_weights *w, const char *path, const cnn_load_options *opt)
{
    cnn_load_options defaults;
    if (!opt) {
        cnn_load_options_default(&defaults);
        opt = &defaults;
    }
    cnn_mem_free(w->long_err);
    w->long_err = NULL;
    rt_st_file *f = NULL;
    char msg[RT_ERR_MAX];
    rt_st_status rs = rt_st_read(&f, path, msg, sizeof msg);
    if (rs != RT_ST_OK)
        return read_failed(w, rs, msg);
    return load_tensors(w, f, path, opt);
}

cnn_status cnn_weights_load_memory(cnn_weights *w, const void *data, size_t len, bool allow_extra)
{
    cnn_load_options o;
    cnn_load_options_default(&o);
    o.allow_extra = allow_extra;
    cnn_mem_free(w->long_err);
    w->long_err = NULL;
    rt_st_file *f = NULL;
    char msg[RT_ERR_MAX];
    rt_st_status rs = rt_st_read_memory(&f, "<memory>", data, len, msg, sizeof msg);
    if (rs != RT_ST_OK)
        return read_failed(w, rs, msg);
    return load_tensors(w, f, "<memory>", &o);
}

cnn_status cnn_weights_save(cnn_weights *w, const char *path)
{
    cnn_mem_free(w->long_err);
    w->long_err = NULL;
    /* a reader, as inference: it may run beside inference sessions, not beside a training step */
    if (!rt_weights_claim_read(w))
        return rt_fail(w->err, CNN_ERR_USAGE,
                       "%s: the weights are being written by a training step on another thread", path);
    rt_st_tensor *ts = cnn_mem_calloc((size_t)(w->count + w->naux) + 1, sizeof *ts);
    if (!ts) {
        rt_weights_release_read(w);
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    for (int i = 0; i < w->count + w->naux; i++) {
        if (i >= w->count && !w->t[i].present)
            continue;
        ts[n].name = w->t[i].name;
        ts[n].rank = w->t[i].shape.rank;
        for (int k = 0; k < w->t[i].shape.rank; k++)
            ts[n].dims[k] = w->t[i].shape.d[k];
        ts[n++].data = w->t[i].data;
    }
    char msg[RT_ERR_MAX];
    rt_st_status rs = rt_st_write(path, n, ts, msg, sizeof msg);
    rt_weights_release_read(w);
    cnn_mem_free(ts);
    if (rs != RT_ST_OK)
        return rt_fail(w->err, rs == RT_ST_EIO ? CNN_ERR_INPUT : rs == RT_ST_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INTERNAL,
                       "%s", msg);
    return CNN_OK;
}
