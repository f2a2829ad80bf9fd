/* int8 post-training quantisation (spec sections 8 and 10) and the scale tensors of a weights
 * store.
 *
 * Scales: `NAME.weight_scale` [F] (per output channel of layer NAME's weight, symmetric:
 * max |w| / 127 of the weights the layer computes with, batchnorm folded in), `NAME.input_scale`
 * [1] and `NAME.output_scale` [1] (per tensor: the calibrated range / 255 for a tensor that is
 * never negative (u8), / 127 otherwise (s8); compiler/pass_precision.c decides which).  They
 * live after the weights in cnn_weights.t (w->naux of them), are read from a weights file when
 * present (and then checked: shape, finite, positive) and written back by cnn_weights_save.
 *
 * Calibration: fp32 inference over the first N training examples with every tensor kept
 * (no memory planning), recording for each conv and dense node the range of its input and of
 * its output in a histogram of |x| (2048 bins, widened by merging as the maximum grows).  Two
 * thresholds are tried per tensor: the maximum and the 99.99th percentile; the one with the
 * smaller estimated mean squared quantisation error (rounding noise inside, clipping outside)
 * is kept. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"
#include "ops/mem.h"
#include "ops/registry.h"
#include "runtime/data.h"
#include "runtime/quantize.h"
#include "runtime/safetensors.h"

static const char *const scale_suffix[3] = {"weight_scale", "input_scale", "output_scale"};

int64_t rt_scale_numel(const cnn_weights *w, const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return -1;
    int which = -1;
    for (int k = 0; k < 3; k++)
        if (strcmp(dot + 1, scale_suffix[k]) == 0)
            which = k;
    if (which < 0 || (size_t)(dot - name) + 8 > OP_NAME_MAX)
        return -1;
    char wname[OP_NAME_MAX + 8];
    snprintf(wname, sizeof wname, "%.*s.weight", (int)(dot - name), name);
    int i = rt_weights_find(w, wname);
    if (i < 0 || i >= w->count || w->t[i].shape.rank < 2)
        return -1; /* not a conv or dense layer's */
    return which == 0 ? w->t[i].shape.d[0] : 1;
}

cnn_status rt_scales_split(cnn_weights *w, const rt_st_file *f, const char *path, rt_st_file *view,
                           rt_st_tensor **kept)
{
    *kept = cnn_mem_malloc(sizeof(rt_st_tensor) * ((size_t)f->count + 1));
    if (!*kept)
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < f->count; i++) {
        const rt_st_tensor *t = &f->tensors[i];
        int64_t want = rt_scale_numel(w, t->name);
        if (want < 0) {
            (*kept)[n++] = *t;
            continue;
        }
        if (t->rank != 1 || t->dims[0] != want)
            return rt_fail(w->err, CNN_ERR_INPUT, "%s: %s has %d dims and %" PRId64 " values, the network needs [%" PRId64 "]",
                           path, t->name, t->rank, t->numel, want);
        for (int64_t k = 0; k < t->numel; k++)
            if (!(t->data[k] > 0.0f) || !isfinite(t->data[k]))
                return rt_fail(w->err, CNN_ERR_INPUT, "%s: %s[%" PRId64 "] is %g: scales must be positive and finite", path,
                               t->name, k, (double)t->data[k]);
    }
    view->count = n;
    view->tensors = *kept;
    return CNN_OK;
}

cnn_status rt_scale_set(cnn_weights *w, const char *name, int64_t numel, const float *data)
{
    int i = rt_weights_find(w, name);
    if (i >= 0 && i >= w->count && op_shape_numel(&w->t[i].shape) == numel) {
        memcpy(w->t[i].data, data, sizeof(float) * (size_t)numel);
        w->t[i].present = true;
        return CNN_OK;
    }
    if (i >= 0)
        return rt_fail(w->err, CNN_ERR_INTERNAL, "%s is no scale of these weights", name);
    rt_tensor *t = cnn_mem_realloc(w->t, sizeof(rt_tensor) * (size_t)(w->count + w->naux + 2));
    if (!t)
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    w->t = t;
    rt_tensor *a = &w->t[w->count + w->naux];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->shape.rank = 1;
    a->shape.d[0] = numel;
    a->data = cnn_mem_malloc(sizeof(float) * (size_t)(numel + 1));
    if (!a->data)
        return rt_fail(w->err, CNN_ERR_NOMEM, "out of memory");
    memcpy(a->data, data, sizeof(float) * (size_t)numel);
    a->present = true;
    w->naux++;
    return CNN_OK;
}

cnn_status rt_scales_store(cnn_weights *w, const rt_st_file *f)
{
    for (int i = w->count; i < w->count + w->naux; i++)
        w->t[i].present = false; /* a file without scales leaves none in force */
    for (int i = 0; i < f->count; i++) {
        const rt_st_tensor *t = &f->tensors[i];
        if (rt_scale_numel(w, t->name) < 0)
            continue;
        cnn_status st = rt_scale_set(w, t->name, t->numel, t->data);
        if (st != CNN_OK)
            return st;
    }
    return CNN_OK;
}

/* Whether node nd computes in bf16: a conv_q / dense_q of that precision, or a conv or dense
 * node (forward or backward) of a bf16 training graph. */
static bool node_is_bf16(const ir_node *nd)
{
    switch (nd->op) {
    case OP_CONV_Q: case OP_CONV1D: case OP_CONV2D: case OP_CONV3D: case OP_CONV_BWD_DATA: case OP_CONV_BWD_WEIGHTS:
        return nd->attrs.conv.prec == OP_PREC_BF16;
    case OP_DENSE_Q: case OP_DENSE: case OP_DENSE_BWD_DATA: case OP_DENSE_BWD_WEIGHTS:
        return nd->attrs.dense.prec == OP_PREC_BF16;
    default:
        return false;
    }
}

/* bf16 runs on oneDNN's kernels on a CPU with avx512_bf16, never emulated. */
static cnn_status bf16_check(cnn_session *s)
{
    if (!strstr(cnn_cpu_isa(), "bf16"))
        return rt_fail(s->err, CNN_ERR_USAGE, "--precision bf16 needs a CPU with avx512_bf16 (this one: %s, %s); "
                       "it is not emulated", cnn_cpu_model(), cnn_cpu_isa());
    for (int st = 0; st < s->plan->nsteps; st++) {
        const ir_node *nd = &s->plan->graph->nodes[s->plan->steps[st].node];
        if (node_is_bf16(nd) && s->plan->steps[st].backend != OP_BACKEND_ONEDNN)
            return rt_fail(s->err, CNN_ERR_USAGE, "--precision bf16 runs on the oneDNN backend; %s would run on %s",
                           nd->name, op_backend_name(s->plan->steps[st].backend));
    }
    return CNN_OK;
}

cnn_status rt_precision_check(cnn_session *s)
{
    if (s->mode == CNN_MODE_TRAIN) {
        if (s->opt.precision == CNN_PRECISION_INT8)
            return rt_fail(s->err, CNN_ERR_USAGE, "--precision int8 is for inference; training runs in fp32 or bf16");
        /* the steps will change the weights: their int8 scales no longer hold (quantize again) */
        for (int i = s->weights->count; i < s->weights->count + s->weights->naux; i++)
            s->weights->t[i].present = false;
        return s->opt.precision == CNN_PRECISION_BF16 ? bf16_check(s) : CNN_OK;
    }
    if (s->opt.precision == CNN_PRECISION_FP32)
        return CNN_OK;
    if (s->opt.precision == CNN_PRECISION_BF16)
        return bf16_check(s);
    if (s->opt.precision != CNN_PRECISION_INT8)
        return rt_fail(s->err, CNN_ERR_USAGE, "unknown precision %d", (int)s->opt.precision);
    const ir_graph *g = s->plan->graph;
    for (int v = 0; v < g->nvals; v++) {
        if (s->plan->vals[v].loc != PLAN_LOC_WEIGHTS || g->vals[v].kind != IR_VAL_STATE ||
            rt_scale_numel(s->weights, g->vals[v].name) < 0)
            continue;
        int i = rt_weights_find(s->weights, g->vals[v].name);
        if (i < 0 || !s->weights->t[i].present)
            return rt_fail(s->err, CNN_ERR_INPUT,
                           "%s%sthe weights have no %s: --precision int8 needs a weights file with the scales that "
                           "`cnnc quantize` writes", s->weights->source, s->weights->source[0] ? ": " : "", g->vals[v].name);
    }
    return CNN_OK;
}

/* ---------------------------------------------------------------- calibration */

#define HBINS 2048

typedef struct range_hist {
    double range;          /* bins cover [0, range) */
    double count[HBINS];
    double total;
    float amax;
} range_hist;

static void hist_add(range_hist *h, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!isfinite(a))
            continue; /* an overflowing activation says nothing about the range to keep */
        if (a > h->amax)
            h->amax = a;
        if (a > 0 && !(h->range > 0))
            h->range = (double)a * 1.0001;
        while (a >= h->range && h->range > 0 && isfinite(h->range)) {
            for (int b = 0; b < HBINS / 2; b++)
                h->count[b] = h->count[2 * b] + h->count[2 * b + 1];
            memset(h->count + HBINS / 2, 0, sizeof(double) * HBINS / 2);
            h->range *= 2;
        }
        int b = h->range > 0 ? (int)((double)a / h->range * HBINS) : 0;
        h->count[b < 0 ? 0 : b >= HBINS ? HBINS - 1 : b]++;
        h->total++;
    }
}

/* Estimated mean squared error of quantising with threshold t into `levels` steps. */
static double hist_error(const range_hist *h, double t, double levels)
{
    double step = t / levels, e = 0;
    for (int b = 0; b < HBINS; b++) {
        double c = (b + 0.5) * h->range / HBINS;
        e += h->count[b] * (c <= t ? step * step / 12.0 : (c - t) * (c - t));
    }
    return e;
}

static double hist_percentile(const range_hist *h, double p)
{
    double want = h->total * p, run = 0;
    for (int b = 0; b < HBINS; b++) {
        run += h->count[b];
        if (run >= want)
            return (b + 1) * h->range / HBINS;
    }
    return h->amax;
}

/* The scale of a tensor: the better threshold / levels (1 when it is all zeros). */
static float hist_scale(const range_hist *h, bool is_unsigned, int *chose_pct)
{
    double levels = is_unsigned ? 255.0 : 127.0;
    double tmax = h->amax, tpct = hist_percentile(h, 0.9999);
    if (tpct > tmax)
        tpct = tmax;
    *chose_pct = tpct > 0 && tpct < tmax && hist_error(h, tpct, levels) < hist_error(h, tmax, levels);
    double t = *chose_pct ? tpct : tmax;
    return t > 0 && isfinite(t) ? (float)(t / levels) : 1.0f;
}

typedef struct calib_node {
    int node;
    range_hist in, out;
    bool in_unsigned, out_unsigned;
} calib_node;

cnn_status cnn_weights_quantize(cnn_weights *w, cnn_model *m, const cnn_dataset *d, const cnn_options *opt,
                                int64_t examples, cnn_quantize_report *rep, char *err, size_t errlen)
{
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (examples < 1)
        return (cnn_status)(snprintf(err, errlen, "--calibrate must be at least 1, got %" PRId64, examples), CNN_ERR_USAGE);
    char msg[RT_ERR_MAX];
    if (cnn_dataset_check(d, m, msg, sizeof msg) != CNN_OK)
        return (cnn_status)(snprintf(err, errlen, "%s", msg), CNN_ERR_INPUT);
    int64_t total = cnn_dataset_count(d);
    if (examples > total)
        examples = total;
    cnn_options o = opt ? *opt : (cnn_options){0};
    if (!opt)
        cnn_options_default(&o);
    o.precision = CNN_PRECISION_FP32;
    o.passes = (o.passes | CNN_PASS_FOLD_BN | CNN_PASS_FUSE | CNN_PASS_DCE) & ~(CNN_PASS_PLAN | CNN_PASS_INPLACE);
    int64_t batch = examples < 64 ? examples : 64;
    cnn_session *s = NULL;
    cnn_status st = cnn_session_create(&s, m, w, &o, batch, CNN_MODE_INFER, NULL);
    if (st != CNN_OK) {
        snprintf(err, errlen, "%s", cnn_session_errmsg(s));
        cnn_session_destroy(s);
        return st;
    }
    rt_replicas_off(s, "int8 calibration reads the session's values");
    const ir_graph *g = s->plan->graph;
    cnn_loader *loader = NULL;
    calib_node *cn = cnn_mem_calloc((size_t)g->nnodes + 1, sizeof *cn);
    float *labels = cnn_mem_malloc(sizeof(float) * (size_t)batch);
    int ncn = 0;
    if (!cn || !labels) {
        st = CNN_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        /* every node some backend may run in int8 (the few-channel convolutions too) */
        if (nd->dead || !pass_precision_candidate(g, nd, OP_PREC_INT8, NULL))
            continue;
        cn[ncn].node = n;
        cn[ncn].in_unsigned = pass_value_nonneg(g, nd->in[0]);
        cn[ncn].out_unsigned = pass_value_nonneg(g, nd->out[0]);
        ncn++;
    }
    /* the examples as training and evaluation make them: scaled and normalised by the model's
     * train config (never augmented) */
    float *x = cnn_session_input(s, 0);
    int64_t per_in = op_shape_numel(&g->vals[g->inputs[0]].shape);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    cnn_loader_options lo;
    cnn_loader_options_default(&lo);
    lo.batch = batch;
    lo.background = false;
    int64_t dims[4];
    if ((st = rt_dataset_fit(d, cnn_model_input_shape(m, 0, dims), dims, &lo.channels, msg, sizeof msg)) != CNN_OK ||
        (st = cnn_loader_create(&loader, d, &tc, &lo, msg, sizeof msg)) != CNN_OK ||
        (st = cnn_loader_start(loader, NULL, examples, 0, 0)) != CNN_OK) {
        snprintf(err, errlen, "%s", msg);
        goto done;
    }
    for (;;) {
        int64_t take = 0;
        if ((st = cnn_loader_next(loader, x, labels, &take)) != CNN_OK) {
            snprintf(err, errlen, "making the calibration batches failed");
            goto done;
        }
        if (take == 0)
            break;
        if (take < batch)
            memset(x + take * per_in, 0, sizeof(float) * (size_t)((batch - take) * per_in));
        if ((st = cnn_session_run(s)) != CNN_OK) {
            snprintf(err, errlen, "%s", cnn_session_errmsg(s));
            goto done;
        }
        for (int k = 0; k < ncn; k++) {
            const ir_node *nd = &g->nodes[cn[k].node];
            int64_t nin = op_shape_numel(&g->vals[nd->in[0]].shape), nout = op_shape_numel(&g->vals[nd->out[0]].shape);
            hist_add(&cn[k].in, s->data[nd->in[0]], take * nin);
            hist_add(&cn[k].out, s->data[nd->out[0]], take * nout);
        }
    }
    for (int k = 0; k < ncn && st == CNN_OK; k++) {
        const ir_node *nd = &g->nodes[cn[k].node];
        const ir_value *wv = &g->vals[nd->in[1]];
        const float *wd = s->data[nd->in[1]];
        int64_t f = wv->shape.d[0], per = op_shape_numel(&wv->shape) / (f > 0 ? f : 1);
        float *ws = cnn_mem_malloc(sizeof(float) * (size_t)(f + 1));
        if (!ws) {
            st = CNN_ERR_NOMEM;
            break;
        }
        for (int64_t oc = 0; oc < f; oc++) {
            float a = 0;
            for (int64_t i = 0; i < per; i++)
                a = fmaxf(a, fabsf(wd[oc * per + i]));
            ws[oc] = a > 0 && isfinite(a) ? a / 127.0f : 1.0f;
        }
        int pi, po;
        float si = hist_scale(&cn[k].in, cn[k].in_unsigned, &pi), so = hist_scale(&cn[k].out, cn[k].out_unsigned, &po);
        if (rep) {
            rep->layers++;
            rep->percentile_chosen += pi + po;
        }
        char name[2 * OP_NAME_MAX];
        snprintf(name, sizeof name, "%s.weight_scale", nd->name);
        st = rt_scale_set(w, name, f, ws);
        snprintf(name, sizeof name, "%s.input_scale", nd->name);
        if (st == CNN_OK)
            st = rt_scale_set(w, name, 1, &si);
        snprintf(name, sizeof name, "%s.output_scale", nd->name);
        if (st == CNN_OK)
            st = rt_scale_set(w, name, 1, &so);
        if (st != CNN_OK)
            snprintf(err, errlen, "%s", w->err);
        cnn_mem_free(ws);
    }
    if (rep)
        rep->examples = examples;
done:
    cnn_loader_destroy(loader);
    cnn_mem_free(cn);
    cnn_mem_free(labels);
    cnn_session_destroy(s);
    return st;
}
