/* Models: compile a source into a checked inference graph; report on it (summary, emit). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compiler/build.h"
#include "ops/mem.h"
#include "compiler/compile.h"
#include "compiler/passes.h"
#include "ops/registry.h"
#include "runtime/build_id.h"
#include "runtime/rt.h"
#include "lang/strbuf.h"

cnn_status rt_fail(char *buf, cnn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, RT_ERR_MAX, fmt, ap);
    va_end(ap);
    return status;
}

void cnn_free(void *p) { cnn_mem_free(p); }

void cnn_set_allocator(const cnn_allocator *a)
{
    _Static_assert(sizeof(cnn_allocator) == sizeof(cnn_mem_hooks) &&
                       offsetof(cnn_allocator, realloc) == offsetof(cnn_mem_hooks, realloc) &&
                       offsetof(cnn_allocator, free) == offsetof(cnn_mem_hooks, free) &&
                       offsetof(cnn_allocator, ud) == offsetof(cnn_mem_hooks, ud),
                   "cnn_allocator and cnn_mem_hooks agree");
    if (!a) {
        cnn_mem_set_hooks(NULL);
        return;
    }
    cnn_mem_hooks h = {a->malloc, a->realloc, a->free, a->ud};
    cnn_mem_set_hooks(&h);
}

const char *cnn_version(void) { return "0.1.0"; }

/* (the build outside a git checkout, or at the version's own tag, is the version) */
const char *cnn_build_id(void) { return strcmp(CNN_BUILD_ID, cnn_version()) == 0 ? "" : CNN_BUILD_ID; }

void cnn_options_default(cnn_options *o)
{
    memset(o, 0, sizeof *o);
    o->passes = CNN_PASSES_O2;
    o->backend = CNN_BACKEND_AUTO;
}

unsigned rt_pass_bits(const cnn_options *opt)
{
    _Static_assert((unsigned)CNN_PASS_DCE == (unsigned)PASS_DCE &&
                       (unsigned)CNN_PASS_FOLD_BN == (unsigned)PASS_FOLD_BN &&
                       (unsigned)CNN_PASS_FUSE == (unsigned)PASS_FUSE &&
                       (unsigned)CNN_PASS_PLAN == (unsigned)PASS_PLAN &&
                       (unsigned)CNN_PASS_INPLACE == (unsigned)PASS_INPLACE &&
                       (unsigned)CNN_PASS_LAYOUT == (unsigned)PASS_LAYOUT,
                   "public and compiler pass bits agree");
    return opt->passes;
}

plan_conv_algo rt_conv_algo(const cnn_options *opt)
{
    switch (opt->conv_algo) {
    case CNN_CONV_ALGO_WINOGRAD: return PLAN_CONV_WINOGRAD;
    case CNN_CONV_ALGO_AUTO: return PLAN_CONV_AUTO;
    case CNN_CONV_ALGO_DEFAULT: return opt->tune != CNN_TUNE_OFF ? PLAN_CONV_AUTO : PLAN_CONV_DIRECT;
    default: return PLAN_CONV_DIRECT;
    }
}

static cnn_model *model_new(const char *filename)
{
    cnn_model *m = cnn_mem_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->filename = cnn_mem_strdup(filename ? filename : "<input>");
    m->errmsg = cnn_mem_strdup("");
    if (!m->filename || !m->errmsg) {
        cnn_model_destroy(m);
        return NULL;
    }
    return m;
}

static void model_set_error(cnn_model *m, char *msg)
{
    cnn_mem_free(m->errmsg);
    m->errmsg = msg ? msg : cnn_mem_strdup("out of memory");
}

cnn_model *rt_model_failed(const char *filename, char *msg)
{
    cnn_model *m = model_new(filename);
    if (!m) {
        cnn_mem_free(msg);
        return NULL;
    }
    model_set_error(m, msg);
    return m;
}

cnn_status cnn_model_compile(cnn_model **out, const char *filename, const char *source, size_t len,
                             const char *network)
{
    *out = NULL;
    cnn_model *m = model_new(filename);
    if (!m)
        return CNN_ERR_NOMEM;
    *out = m;
    if (len > CNN_MAX_SOURCE_BYTES) {
        char msg[RT_ERR_MAX];
        snprintf(msg, sizeof msg, "%s: error: the source is %zu bytes, more than the limit of %u (16 MiB)\n",
                 m->filename, len, (unsigned)CNN_MAX_SOURCE_BYTES);
        model_set_error(m, cnn_mem_strdup(msg));
        return CNN_ERR_INPUT;
    }
    m->source = cnn_mem_malloc(len + 1);
    if (!m->source) {
        model_set_error(m, NULL);
        return CNN_ERR_NOMEM;
    }
    memcpy(m->source, source, len);
    m->source[len] = '\0';
    m->source_len = len;

    diag_list d;
    diag_init(&d, m->filename, m->source, len);
    m->program = lang_compile(m->source, len, &d);
    if (!m->program) {
        diag_free(&d);
        model_set_error(m, NULL);
        return CNN_ERR_NOMEM;
    }
    bool no_such_network = false; /* the caller named a network the file lacks: a usage error */
    if (d.errors == 0) {
        m->net = lang_program_network(m->program, network);
        no_such_network = !m->net && network;
        if (!m->net) {
            lang_span none = {0, 0, 0, 0};
            if (network)
                diag_add(&d, DIAG_ERROR, none, "no network named '%s' in this file", network);
            else if (m->program->nnetworks == 0)
                diag_add(&d, DIAG_ERROR, none, "no network in this file");
            else
                diag_add(&d, DIAG_ERROR, none,
                         "%d networks in this file; choose one with --network NAME", m->program->nnetworks);
        } else {
            m->graph = compile_graph(m->net, &d);
        }
    }
    cnn_status st = CNN_OK;
    if (d.oom) {
        st = CNN_ERR_NOMEM;
        ir_graph_destroy(m->graph);
        m->graph = NULL;
    } else if (d.errors > 0 || !m->graph) {
        st = no_such_network ? CNN_ERR_USAGE : CNN_ERR_INPUT;
        if (d.errors == 0)
            diag_add(&d, DIAG_ERROR, (lang_span){0, 0, 0, 0}, "could not build the graph");
    }
    if (d.count > 0 || d.oom) {
        char *msg = diag_render(&d);
        if (!msg && st == CNN_OK) {
            st = CNN_ERR_NOMEM;
            ir_graph_destroy(m->graph);
            m->graph = NULL;
        }
        model_set_error(m, msg);
    }
    diag_free(&d);
    return st;
}

/* A model holding only the message "PATH: error: ..." (a source that could not be read). */
static cnn_status load_failed(cnn_model **out, const char *path, const char *fmt, ...)
{
    cnn_model *m = model_new(path);
    if (!m)
        return CNN_ERR_INTERNAL;
    char msg[RT_ERR_MAX];
    int k = snprintf(msg, sizeof msg, "%s: error: ", path);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < sizeof msg)
        vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
    va_end(ap);
    model_set_error(m, cnn_mem_strdup(msg));
    *out = m;
    return CNN_ERR_INPUT;
}

/* True when path names an ONNX model (ends in .onnx, any case). */
static bool is_onnx_path(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}

cnn_status cnn_model_load(cnn_model **out, const char *path, const char *network)
{
    *out = NULL;
    bool onnx = is_onnx_path(path);
    size_t limit = onnx ? rt_onnx_max_bytes() : CNN_MAX_SOURCE_BYTES;
    FILE *f = fopen(path, "rb");
    if (!f)
        return load_failed(out, path, "cannot open: %s\n", strerror(errno));
    strbuf sb;
    sb_init(&sb);
    char chunk[65536];
    size_t n;
    /* reads at most one byte past the limit: /dev/zero or an endless pipe stops there */
    while (sb.len <= limit && !sb.oom &&
           (n = fread(chunk, 1, sizeof chunk < limit + 1 - sb.len ? sizeof chunk : limit + 1 - sb.len, f)) > 0)
        sb_append(&sb, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad || sb.oom || sb.len > limit) {
        bool big = !bad && !sb.oom;
        sb_free(&sb);
        if (big)
            return load_failed(out, path, "the %s is larger than %zu bytes (%s), the limit\n", onnx ? "model" : "source",
                               limit, onnx ? "2 GiB" : "16 MiB");
        return load_failed(out, path, "cannot read the file\n");
    }
    cnn_status st = onnx ? cnn_model_load_onnx_memory(out, path, sb.data ? sb.data : "", sb.len, network)
                         : cnn_model_compile(out, path, sb.data ? sb.data : "", sb.len, network);
    sb_free(&sb);
    return st;
}

const char *cnn_model_source(const cnn_model *m, size_t *len)
{
    if (len)
        *len = m && m->source ? m->source_len : 0;
    return m && m->source ? m->source : "";
}

void cnn_model_destroy(cnn_model *m)
{
    if (!m)
        return;
    ir_graph_destroy(m->graph);
    lang_program_free(m->program);
    rt_model_free_imported(m);
    cnn_mem_free(m->source);
    cnn_mem_free(m->filename);
    cnn_mem_free(m->errmsg);
    cnn_mem_free(m);
}

const char *cnn_model_errmsg(const cnn_model *m) { return m && m->errmsg ? m->errmsg : "out of memory"; }
const char *cnn_model_name(const cnn_model *m) { return m->graph ? m->graph->name : ""; }
int cnn_model_input_count(const cnn_model *m) { return m->graph ? m->graph->ninputs : 0; }
int cnn_model_output_count(const cnn_model *m) { return m->graph ? m->graph->noutputs : 0; }

static int value_shape(const ir_graph *g, int v, int64_t dims[4])
{
    const op_shape *s = &g->vals[v].shape;
    for (int k = 0; k < s->rank && k < 4; k++)
        dims[k] = s->d[k];
    return s->rank;
}

int cnn_model_input_shape(const cnn_model *m, int i, int64_t dims[4])
{
    if (!m->graph || i < 0 || i >= m->graph->ninputs)
        return -1;
    return value_shape(m->graph, m->graph->inputs[i], dims);
}

int cnn_model_output_shape(const cnn_model *m, int i, int64_t dims[4])
{
    if (!m->graph || i < 0 || i >= m->graph->noutputs)
        return -1;
    return value_shape(m->graph, m->graph->outputs[i], dims);
}

const char *cnn_model_input_name(const cnn_model *m, int i)
{
    if (!m->graph || i < 0 || i >= m->graph->ninputs)
        return NULL;
    return m->graph->vals[m->graph->inputs[i]].name;
}

const char *cnn_model_output_name(const cnn_model *m, int i)
{
    if (!m->graph || i < 0 || i >= m->graph->noutputs)
        return NULL;
    return m->graph->output_names[i];
}

void cnn_model_train_config(const cnn_model *m, cnn_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    const lang_train *t = m->net ? &m->net->train : NULL;
    if (!t || !t->present) {
        cfg->loss = 0;
        cfg->optimizer = 0;
        cfg->lr = 0.01;
        cfg->beta1 = 0.9, cfg->beta2 = 0.999, cfg->eps = 1e-8;
        cfg->batch = 64;
        cfg->epochs = 1;
        cfg->schedule = CNN_SCHEDULE_CONSTANT;
        cfg->schedule_gamma = 0.1;
        return;
    }
    cfg->loss = t->loss == LANG_LOSS_MSE ? 1 : 0;
    cfg->optimizer = t->optimizer == LANG_OPTIM_ADAMW ? 2 : t->optimizer == LANG_OPTIM_ADAM ? 1 : 0;
    cfg->lr = t->lr, cfg->momentum = t->momentum, cfg->weight_decay = t->weight_decay;
    cfg->beta1 = t->beta1, cfg->beta2 = t->beta2, cfg->eps = t->eps;
    cfg->nesterov = t->nesterov;
    cfg->batch = t->batch, cfg->epochs = t->epochs;
    cfg->label_smoothing = t->label_smoothing;
    cfg->schedule = t->schedule == LANG_SCHEDULE_COSINE ? CNN_SCHEDULE_COSINE
                    : t->schedule == LANG_SCHEDULE_STEP ? CNN_SCHEDULE_STEP
                                                        : CNN_SCHEDULE_CONSTANT;
    cfg->schedule_every = t->schedule_every;
    cfg->schedule_gamma = t->schedule_gamma;
    cfg->warmup_epochs = t->warmup_epochs;
    cfg->clip_grad_norm = t->clip_grad_norm;
    cfg->naugment = t->naugment < CNN_MAX_AUGMENT ? t->naugment : CNN_MAX_AUGMENT;
    for (int i = 0; i < cfg->naugment; i++) {
        cfg->augment[i].kind = t->augment[i].kind == LANG_AUGMENT_RANDOM_FLIP ? CNN_AUGMENT_RANDOM_FLIP
                                                                              : CNN_AUGMENT_RANDOM_CROP;
        cfg->augment[i].pad = t->augment[i].pad;
    }
    cfg->nnormalize = t->nnormalize < CNN_MAX_NORMALIZE ? t->nnormalize : CNN_MAX_NORMALIZE;
    for (int i = 0; i < cfg->nnormalize; i++)
        cfg->mean[i] = t->mean[i], cfg->std[i] = t->std[i];
}

/* Spec section 7: step lr * gamma^floor(epoch / every); cosine lr * (t+1)/W while t < W, then
 * lr * (1 + cos(pi (t - W) / (T - W))) / 2, with W = warmup epochs * steps per epoch. */
double cnn_train_lr(const cnn_train_config *cfg, int64_t t, int64_t steps_per_epoch, int64_t total_steps)
{
    if (t < 0)
        t = 0;
    if (steps_per_epoch < 1)
        steps_per_epoch = 1;
    switch (cfg->schedule) {
    case CNN_SCHEDULE_STEP: {
        int64_t epoch = t / steps_per_epoch, every = cfg->schedule_every > 0 ? cfg->schedule_every : 1;
        return cfg->lr * pow(cfg->schedule_gamma, (double)(epoch / every));
    }
    case CNN_SCHEDULE_COSINE: {
        double w = floor(cfg->warmup_epochs * (double)steps_per_epoch);
        if ((double)t < w)
            return cfg->lr * ((double)t + 1.0) / w;
        double span = (double)total_steps - w;
        if (span <= 0)
            return cfg->lr;
        double x = ((double)t - w) / span;
        if (x > 1)
            x = 1;
        return cfg->lr * 0.5 * (1.0 + cos(M_PI * x));
    }
    default:
        return cfg->lr;
    }
}

/* ---- reports ---- */

static void fmt_count(char *buf, size_t n, int64_t v)
{
    /* 61706 -> "61,706" */
    char raw[32];
    snprintf(raw, sizeof raw, "%" PRId64, v < 0 ? -v : v);
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n)
        buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len)
            buf[o++] = ',';
    }
    buf[o] = '\0';
}

static void fmt_bytes(char *buf, size_t n, size_t b)
{
    if (b >= (size_t)1 << 30)
        snprintf(buf, n, "%.2f GiB", (double)b / (double)((size_t)1 << 30));
    else if (b >= (size_t)1 << 20)
        snprintf(buf, n, "%.2f MiB", (double)b / (double)((size_t)1 << 20));
    else if (b >= 1024)
        snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, n, "%zu B", b);
}

/* Builds the plan the options ask for (inference or training) from the model's graph. */
static ir_plan *model_plan_picks(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                                 const cnn_train_config *tc, const plan_pick *picks, int npicks, cnn_status *st,
                                 char *err, size_t errlen)
{
    op_caps caps;
    op_kernel_caps(&caps);
    compile_options co = {
        .batch = batch,
        .training = training,
        .passes = rt_pass_bits(opt),
        .backend = (plan_backend_choice)opt->backend,
        .caps = &caps,
        /* training: fp32 or bf16 (int8 is refused by rt_precision_check) */
        .precision = training && opt->precision != CNN_PRECISION_BF16 ? OP_PREC_FP32 : (op_precision)opt->precision,
        .picks = picks,
        .npicks = npicks,
        .conv_algo = rt_conv_algo(opt),
#ifdef NDEBUG
        .verify = false,
#else
        .verify = true,
#endif
    };
    if (training) {
        co.ad.loss = tc->loss == 1 ? AD_LOSS_MSE : AD_LOSS_CROSS_ENTROPY;
        co.ad.optimizer = tc->optimizer == 2 ? AD_OPTIM_ADAMW : tc->optimizer == 1 ? AD_OPTIM_ADAM : AD_OPTIM_SGD;
        co.ad.label_smoothing = tc->label_smoothing;
        co.ad.clip_grad_norm = tc->clip_grad_norm;
        co.ad.optim.lr = tc->lr;
        co.ad.optim.momentum = tc->momentum;
        co.ad.optim.weight_decay = tc->weight_decay;
        co.ad.optim.beta1 = tc->beta1;
        co.ad.optim.beta2 = tc->beta2;
        co.ad.optim.eps = tc->eps;
        co.ad.optim.nesterov = tc->nesterov;
    }
    if (co.precision == OP_PREC_INT8)
        co.passes |= PASS_FOLD_BN | PASS_FUSE | PASS_DCE; /* the scales are the folded layers' */
    plan_status why;
    ir_plan *p = compile_plan(m->graph, &co, &why, err, errlen);
    if (st)
        *st = p                                                  ? CNN_OK
              : why == PLAN_TOO_LARGE || why == PLAN_INVALID ? CNN_ERR_INPUT
              : why == PLAN_NOMEM                            ? CNN_ERR_NOMEM
                                                             : CNN_ERR_INTERNAL;
    return p;
}

static ir_plan *model_plan(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                           const cnn_train_config *tc, cnn_status *st, char *err, size_t errlen)
{
    return model_plan_picks(m, opt, batch, training, tc, NULL, 0, st, err, errlen);
}

ir_plan *rt_model_plan(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                       const cnn_train_config *tc, cnn_status *st, char *err, size_t errlen)
{
    return model_plan(m, opt, batch, training, tc, st, err, errlen);
}

ir_plan *rt_model_plan_picks(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                             const cnn_train_config *tc, const plan_pick *picks, int npicks, cnn_status *st,
                             char *err, size_t errlen)
{
    return model_plan_picks(m, opt, batch, training, tc, picks, npicks, st, err, errlen);
}

static void summary_memory(strbuf *sb, const char *what, const ir_plan *p)
{
    char a[32], b[32], c[32];
    fmt_bytes(a, sizeof a, p->naive_bytes);
    fmt_bytes(b, sizeof b, p->arena_bytes);
    fmt_bytes(c, sizeof c, p->lower_bound);
    sb_printf(sb, "memory (%s, batch %" PRId64 "): naive %s (%zu B), planned arena %s (%zu B), lower bound %s (%zu B)\n",
              what, p->batch, a, p->naive_bytes, b, p->arena_bytes, c, p->lower_bound);
}

/* The optimised node that runs layer nd of the unoptimised graph: its own node, or the one it
 * was fused into; NULL when it runs nowhere (removed).  *step gets its step. */
static const ir_node *layer_runner(const ir_plan *p, const ir_node *nd, int *step)
{
    const ir_graph *og = p->graph;
    size_t len = strlen(nd->name);
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *on = &og->nodes[p->steps[s].node];
        const char *f = on->fused;
        bool in_fused = false;
        while ((f = strstr(f, nd->name)) != NULL) {
            if ((f == on->fused || f[-1] == '+') && (f[len] == '\0' || f[len] == '+'))
                in_fused = true;
            f += len;
        }
        if (strcmp(on->name, nd->name) == 0 || in_fused) {
            *step = s;
            return on;
        }
    }
    return NULL;
}

/* The backend running layer nd, marked "*" when tuning measured it (--tune). */
static const char *layer_backend(const ir_plan *p, const ir_node *nd, bool tuned, char *buf, size_t n)
{
    int s;
    if (!layer_runner(p, nd, &s))
        return "-";
    snprintf(buf, n, "%s%s", op_backend_name(p->steps[s].backend), tuned ? "*" : "");
    return buf;
}

/* The arithmetic layer nd runs in, with the conversions at its node's edges: "int8 f32>u8,
 * >f32" (the f32 input converted to u8, the output dequantised to f32), "int8 u8, >u8" (int8
 * tensors from and to other int8 nodes), "int8 u8 +s8, >u8" (and a residual of s8 bytes; +f32>u8
 * an f32 one quantised into an int8 output, +u8>f32 an int8 one dequantised into an f32 one), "bf16 f32>bf16, >f32", "fp32", "-". */
static void layer_precision(const ir_plan *p, const ir_node *nd, char *buf, size_t n)
{
    static const char *const dt[3] = {"f32", "u8", "s8"};
    int s;
    const ir_node *on = layer_runner(p, nd, &s);
    snprintf(buf, n, "%s", on ? "fp32" : "-");
    if (on && on->op == OP_CONV2D && on->attrs.conv.winograd)
        snprintf(buf, n, "fp32 winograd");
    if (!on || (on->op != OP_CONV_Q && on->op != OP_DENSE_Q))
        return;
    bool conv = on->op == OP_CONV_Q;
    op_precision pr = conv ? on->attrs.conv.prec : on->attrs.dense.prec;
    bool u = conv ? on->attrs.conv.q_unsigned : on->attrs.dense.q_unsigned;
    op_dtype in = p->graph->vals[on->in[0]].dtype, out = p->graph->vals[on->out[0]].dtype;
    if (pr == OP_PREC_BF16)
        snprintf(buf, n, "bf16 f32>bf16, >f32");
    else if (pr == OP_PREC_INT8) {
        char res[16] = "";
        if (conv && on->attrs.conv.residual) { /* the fused add's residual, as the sum reads it */
            op_dtype r = p->graph->vals[on->in[1 + on->attrs.conv.bias + 1]].dtype;
            const char *rv = on->attrs.conv.res_unsigned ? "u8" : "s8";
            if (out == OP_DT_F32)
                snprintf(res, sizeof res, " +%s%s", dt[r], r == OP_DT_F32 ? "" : ">f32");
            else
                snprintf(res, sizeof res, " +%s%s", r == OP_DT_F32 ? "f32>" : "", r == OP_DT_F32 ? rv : dt[r]);
        }
        snprintf(buf, n, "int8 %s%s%s, >%s", in == OP_DT_F32 ? "f32>" : "", in == OP_DT_F32 ? (u ? "u8" : "s8") : dt[in],
                 res, dt[out]);
    }
}

/* One row per layer of the source (name, kind, output shape, parameters, FLOPs, backend),
 * then the totals and the outputs. */
static void summary_layers(strbuf *sb, const ir_graph *g, const ir_plan *p, bool tuned)
{
    char bk[32];
    sb_printf(sb, "\n%-16s %-16s %-16s %12s %14s  %-8s %s\n", "layer", "kind", "output", "params", "FLOPs", "backend",
              "precision");
    int64_t tparams = 0, tflops = 0;
    char sh[64], pc[32], fc[32], prec[64];
    for (int n = 0; n < g->nnodes; n++) {
        const ir_node *nd = &g->nodes[n];
        int64_t np = ir_node_params(g, n), nf = ir_node_flops(g, n);
        layer_precision(p, nd, prec, sizeof prec);
        tparams += np, tflops += nf;
        fmt_count(pc, sizeof pc, np);
        fmt_count(fc, sizeof fc, nf);
        sb_printf(sb, "%-16s %-16s %-16s %12s %14s  %-8s %s\n", nd->name, op_name(nd->op),
                  nd->nout ? op_shape_str(&g->vals[nd->out[0]].shape, sh, sizeof sh) : "-", pc, fc,
                  layer_backend(p, nd, tuned, bk, sizeof bk), prec);
    }
    fmt_count(pc, sizeof pc, tparams);
    fmt_count(fc, sizeof fc, tflops);
    sb_printf(sb, "\ntotal: %d layers, %s parameters, %s FLOPs per example\n", g->nnodes, pc, fc);
    for (int i = 0; i < g->noutputs; i++)
        sb_printf(sb, "output %s %s\n", g->output_names[i], op_shape_str(&g->vals[g->outputs[i]].shape, sh, sizeof sh));
}

/* The fusions the optimiser made and the reorders the layout pass put in. */
static void summary_rewrites(strbuf *sb, const ir_plan *p)
{
    const ir_graph *og = p->graph;
    int nf = 0;
    for (int s = 0; s < p->nsteps; s++)
        if (og->nodes[p->steps[s].node].fused[0])
            nf++;
    sb_printf(sb, "\nfusions: %d\n", nf);
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *on = &og->nodes[p->steps[s].node];
        if (on->fused[0])
            sb_printf(sb, "  %s: %s\n", on->name, on->fused);
    }
    int nr = 0, ncl = 0, nblk = 0;
    for (int s = 0; s < p->nsteps; s++)
        nr += og->nodes[p->steps[s].node].op == OP_REORDER;
    for (int v = 0; v < og->nvals; v++) {
        ncl += og->vals[v].layout == OP_LAYOUT_NHWC && p->vals[v].loc != PLAN_LOC_NONE;
        nblk += og->vals[v].layout == OP_LAYOUT_BLOCK16 && p->vals[v].loc != PLAN_LOC_NONE;
    }
    sb_printf(sb, "\nlayout: %d tensors channels-last, %d reorders", ncl, nr);
    if (nblk)
        sb_printf(sb, ", %d tensors blocked (nChw16c, between Winograd convolutions)", nblk);
    sb_printf(sb, "\n");
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *on = &og->nodes[p->steps[s].node];
        op_layout to = on->attrs.reorder.to;
        if (on->op == OP_REORDER)
            sb_printf(sb, "  %s: %s to %s%s\n", on->name, og->vals[on->in[0]].name,
                      to == OP_LAYOUT_NHWC ? "channels-last" : to == OP_LAYOUT_BLOCK16 ? "blocked" : "plain",
                      p->steps[s].view ? " (the same bytes: a view, no copy)" : "");
    }
    /* --precision bf16 / int8: the low-precision nodes and the conversions at their edges */
    int nq = 0, nconv = 0, nbytes = 0;
    const char *prec = "";
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *on = &og->nodes[p->steps[s].node];
        if (on->op != OP_CONV_Q && on->op != OP_DENSE_Q)
            continue;
        nq++;
        op_precision pr = on->op == OP_CONV_Q ? on->attrs.conv.prec : on->attrs.dense.prec;
        prec = pr == OP_PREC_INT8 ? "int8" : "bf16";
        nconv += (og->vals[on->in[0]].dtype == OP_DT_F32) + (og->vals[on->out[0]].dtype == OP_DT_F32);
        nbytes += og->vals[on->out[0]].dtype != OP_DT_F32;
    }
    if (nq && prec[0] == 'i')
        sb_printf(sb, "\nprecision int8: %d of %d nodes, %d tensors kept in int8 between them, %d conversions from or to "
                  "f32 at their edges\n", nq, p->nsteps, nbytes, nconv);
    else if (nq)
        sb_printf(sb, "\nprecision bf16: %d of %d nodes, each converting its f32 input to bf16 and writing f32\n", nq,
                  p->nsteps);
}

cnn_status cnn_model_summary(cnn_model *m, const cnn_options *opt, int64_t batch, bool training,
                             char **text)
{
    *text = NULL;
    if (!m->graph)
        return CNN_ERR_USAGE;
    cnn_options dflt;
    if (!opt) {
        cnn_options_default(&dflt);
        opt = &dflt;
    }
    char err[RT_ERR_MAX];
    cnn_status st;
    /* --tune: the backends measured (or cached) for inference at this batch */
    plan_pick *picks = NULL;
    int npicks = 0;
    rt_tune_state ts;
    memset(&ts, 0, sizeof ts);
    st = rt_tune_picks(m, opt, batch, NULL, &picks, &npicks, &ts, err, sizeof err);
    if (st == CNN_ERR_USAGE) {
        model_set_error(m, cnn_mem_strdup(err));
        return st;
    }
    if (st != CNN_OK)
        snprintf(ts.note, sizeof ts.note, "tuning failed (%.300s): the fixed order was used", err);
    ir_plan *p = model_plan_picks(m, opt, batch, false, NULL, picks, npicks, &st, err, sizeof err);
    cnn_mem_free(picks);
    if (!p) {
        model_set_error(m, cnn_mem_strdup(err));
        return st;
    }
    const ir_graph *g = m->graph;
    strbuf sb;
    sb_init(&sb);
    sb_printf(&sb, "network %s\n", g->name);
    for (int i = 0; i < g->ninputs; i++) {
        char sh[64];
        sb_printf(&sb, "input %s %s\n", g->vals[g->inputs[i]].name,
                  op_shape_str(&g->vals[g->inputs[i]].shape, sh, sizeof sh));
    }
    summary_layers(&sb, g, p, ts.tuned);
    if (ts.tuned)
        sb_printf(&sb, "backends marked * were chosen by measurement (--tune): %d nodes, %d measured now, %d from the "
                  "cache%s%s, plan %s, %.2f s\n", ts.nodes, ts.measured, ts.cached, ts.cache[0] ? " " : "", ts.cache,
                  ts.plan, ts.seconds);
    if (ts.note[0])
        sb_printf(&sb, "tuning: %s\n", ts.note);
    summary_rewrites(&sb, p);
    sb_putc(&sb, '\n');
    summary_memory(&sb, "inference", p);
    plan_destroy(p);
    if (training) {
        cnn_train_config tc;
        cnn_model_train_config(m, &tc);
        ir_plan *tp = model_plan(m, opt, batch, true, &tc, NULL, err, sizeof err);
        if (tp) {
            summary_memory(&sb, "training", tp);
            plan_destroy(tp);
        } else {
            sb_printf(&sb, "memory (training): not available: %s\n", err);
        }
    }
    if (sb.oom) {
        sb_free(&sb);
        return CNN_ERR_NOMEM;
    }
    *text = sb_take(&sb);
    return CNN_OK;
}

cnn_status cnn_model_emit(cnn_model *m, const cnn_options *opt, const char *stage, const char *format,
                          char **text)
{
    *text = NULL;
    if (!m->graph)
        return CNN_ERR_USAGE;
    bool dot;
    if (strcmp(format, "text") == 0)
        dot = false;
    else if (strcmp(format, "dot") == 0)
        dot = true;
    else {
        model_set_error(m, cnn_mem_strdup("unknown --format: expected text or dot"));
        return CNN_ERR_USAGE;
    }
    cnn_options dflt;
    if (!opt) {
        cnn_options_default(&dflt);
        opt = &dflt;
    }
    if (strcmp(stage, "parsed") == 0) {
        *text = dot ? ir_graph_dump_dot(m->graph) : ir_graph_dump_text(m->graph);
        return *text ? CNN_OK : CNN_ERR_NOMEM;
    }
    bool training;
    if (strcmp(stage, "optimized") == 0)
        training = false;
    else if (strcmp(stage, "training") == 0)
        training = true;
    else {
        model_set_error(m, cnn_mem_strdup("unknown --stage: expected parsed, optimized or training"));
        return CNN_ERR_USAGE;
    }
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    char err[RT_ERR_MAX];
    cnn_status st;
    /* --tune: the backends measured (or cached) at batch 1 */
    plan_pick *picks = NULL;
    int npicks = 0;
    rt_tune_state ts;
    st = rt_tune_picks(m, opt, 1, training ? &tc : NULL, &picks, &npicks, &ts, err, sizeof err);
    if (st == CNN_ERR_USAGE) {
        model_set_error(m, cnn_mem_strdup(err));
        return st;
    }
    ir_plan *p = model_plan_picks(m, opt, 1, training, &tc, picks, npicks, &st, err, sizeof err);
    cnn_mem_free(picks);
    if (!p) {
        model_set_error(m, cnn_mem_strdup(err));
        return st;
    }
    *text = dot ? ir_graph_dump_dot(p->graph) : ir_graph_dump_text(p->graph);
    plan_destroy(p);
    return *text ? CNN_OK : CNN_ERR_NOMEM;
}
