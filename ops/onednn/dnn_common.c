/* The oneDNN backend's shared pieces: one CPU engine and one stream created once, status
 * messages, memory descriptors, and the build/run machinery of a kernel's program (see
 * dnn_common.h). */
#include "ops/onednn/dnn_common.h"
#include "ops/mem.h"

#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/onednn/onednn.h"

/* ---- the engine: created once, never destroyed (it lives as long as the process).  Each
 * program has a stream of its own (cheap on the CPU), so programs of sessions on different
 * threads share nothing oneDNN does not make thread-safe: the engine, the primitive cache. */

static pthread_once_t dnn_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t dnn_engine_obj;

static void dnn_init_once(void)
{
    dnnl_engine_t e = NULL;
    if (dnnl_engine_create(&e, dnnl_cpu, 0) != dnnl_success) return;
    dnn_engine_obj = e;
}

dnnl_engine_t op_dnn_engine(void)
{
    pthread_once(&dnn_once, dnn_init_once);
    return dnn_engine_obj;
}

const char *op_dnn_status_str(dnnl_status_t s)
{
    switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments (shapes or parameters oneDNN rejects)";
    case dnnl_unimplemented: return "no implementation for this case";
    case dnnl_iterator_ends: return "no more implementations";
    case dnnl_runtime_error: return "runtime error during execution";
    case dnnl_not_required: return "not required";
    }
    return "unknown status";
}

int op_dnn_fail(dnnl_status_t s, const char *what, char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "oneDNN: %s: %s", what, op_dnn_status_str(s));
    return -1;
}

int op_dnn_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- descriptors and attributes */

static dnnl_memory_desc_t dnn_md_tag(int ndims, const int64_t *dims, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    dnnl_dims_t d;
    memset(&md, 0, sizeof md);
    for (int i = 0; i < ndims; i++) d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(&md, ndims, d, dnnl_f32, tag);
    return md;
}

dnnl_memory_desc_t op_dnn_md(int ndims, const int64_t *dims)
{
    static const dnnl_format_tag_t plain[] = {dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd,
                                              dnnl_abcde, dnnl_abcdef};
    return dnn_md_tag(ndims, dims, plain[ndims >= 1 && ndims <= 6 ? ndims : 0]);
}

dnnl_memory_desc_t op_dnn_md_any(int ndims, const int64_t *dims)
{
    return dnn_md_tag(ndims, dims, dnnl_format_tag_any);
}

dnnl_memory_desc_t op_dnn_md_layout(int ndims, const int64_t *dims, op_layout l)
{
    static const dnnl_format_tag_t last[] = {dnnl_acb, dnnl_acdb, dnnl_acdeb};
    static const dnnl_format_tag_t blocked[] = {dnnl_aBc16b, dnnl_aBcd16b, dnnl_aBcde16b};
    if (l == OP_LAYOUT_PLAIN || ndims < 3 || ndims > 5) return op_dnn_md(ndims, dims);
    return dnn_md_tag(ndims, dims, l == OP_LAYOUT_BLOCK16 ? blocked[ndims - 3] : last[ndims - 3]);
}

/* ---- layouts */

bool op_dnn_layout_free(const op_tensor *t)
{
    if (t->rank <= 2) return true;
    int64_t spatial = 1;
    for (int k = 2; k < t->rank; k++) spatial *= t->d[k];
    return t->d[1] == 1 || spatial == 1;
}

op_layout op_dnn_call_layout(const op_call *c)
{
    for (int i = 0; i < c->nin + c->nout; i++) {
        const op_tensor *t = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        if (t->layout != OP_LAYOUT_PLAIN) return (op_layout)t->layout;
    }
    return OP_LAYOUT_PLAIN;
}

op_layout op_dnn_tensor_layout(const op_call *c, const op_tensor *t)
{
    if (t->layout != OP_LAYOUT_PLAIN) return (op_layout)t->layout;
    return op_dnn_layout_free(t) ? op_dnn_call_layout(c) : OP_LAYOUT_PLAIN;
}

int op_dnn_one_layout(const op_call *c, const char *what, char *err, size_t errlen)
{
    int seen = -1;
    for (int i = 0; i < c->nin + c->nout; i++) {
        const op_tensor *t = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        if (op_dnn_layout_free(t)) continue;
        if (seen >= 0 && t->layout != seen)
            return op_dnn_errf(err, errlen, "oneDNN %s: the tensors mix layouts", what);
        seen = t->layout;
    }
    return 0;
}

int op_dnn_plain_only(const op_tensor *t, const char *what, char *err, size_t errlen)
{
    if (t->layout != 0 && !op_dnn_layout_free(t))
        return op_dnn_errf(err, errlen, "oneDNN %s: takes plain tensors, got a %s one", what,
                           t->layout == OP_LAYOUT_BLOCK16 ? "blocked" : "channels-last");
    return 0;
}

int op_dnn_attr(dnnl_primitive_attr_t *attr, char *err, size_t errlen)
{
    *attr = NULL;
    OP_DNN_TRY(dnnl_primitive_attr_create(attr), "attribute");
    dnnl_status_t s = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (s != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
        return op_dnn_fail(s, "scratchpad mode", err, errlen);
    }
    return 0;
}

dnnl_alg_kind_t op_dnn_act_alg(op_act act, float alpha, float *dnn_alpha)
{
    *dnn_alpha = 0.0f;
    switch (act) {
    case OP_ACT_RELU: return dnnl_eltwise_relu;
    case OP_ACT_LEAKY_RELU: *dnn_alpha = alpha; return dnnl_eltwise_relu;
    case OP_ACT_SIGMOID: return dnnl_eltwise_logistic;
    case OP_ACT_TANH: return dnnl_eltwise_tanh;
    case OP_ACT_NONE: break;
    }
    return dnnl_alg_kind_undef;
}

int op_dnn_attr_act(dnnl_primitive_attr_t attr, op_act act, float alpha, bool with_sum,
                    char *err, size_t errlen)
{
    return op_dnn_attr_act_sum(attr, act, alpha, with_sum, 1.0f, dnnl_data_type_undef, err, errlen);
}

int op_dnn_attr_act_sum(dnnl_primitive_attr_t attr, op_act act, float alpha, bool with_sum, float sum_scale,
                        dnnl_data_type_t sum_type, char *err, size_t errlen)
{
    if (act == OP_ACT_NONE && !with_sum) return 0;
    dnnl_post_ops_t po = NULL;
    OP_DNN_TRY(dnnl_post_ops_create(&po), "post-ops");
    dnnl_status_t s = dnnl_success;
    if (with_sum) s = dnnl_post_ops_append_sum_v2(po, sum_scale, sum_type);
    if (s == dnnl_success && act != OP_ACT_NONE) {
        float a;
        dnnl_alg_kind_t alg = op_dnn_act_alg(act, alpha, &a);
        s = dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, 0.0f);
    }
    if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    if (s != dnnl_success) return op_dnn_fail(s, "fused epilogue (post-ops)", err, errlen);
    return 0;
}

/* ---- memories */

static int dnn_add_mem(op_dnn_prog *p, const dnnl_memory_desc_t *md, void *handle,
                       op_dnn_bind bind, int idx, char *err, size_t errlen)
{
    if (p->nmem >= OP_DNN_MAX_MEMS) return op_dnn_errf(err, errlen, "oneDNN: too many memories");
    dnnl_memory_t m = NULL;
    OP_DNN_TRY(dnnl_memory_create(&m, md, op_dnn_engine(), handle ? handle : DNNL_MEMORY_NONE),
               "memory");
    int id = p->nmem++;
    p->mem[id] = m;
    p->bind[id] = bind;
    p->bind_idx[id] = idx;
    p->own[id] = NULL;
    return id;
}

int op_dnn_mem_bound(op_dnn_prog *p, const dnnl_memory_desc_t *md, op_dnn_bind bind, int idx,
                     char *err, size_t errlen)
{
    return dnn_add_mem(p, md, NULL, bind, idx, err, errlen);
}

static void *dnn_alloc(size_t bytes)
{
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0) n = 64;
    return cnn_mem_aligned_alloc(64, n, 1);
}

int op_dnn_mem_own(op_dnn_prog *p, const dnnl_memory_desc_t *md, char *err, size_t errlen)
{
    void *buf = dnn_alloc(dnnl_memory_desc_get_size(md));
    if (!buf) return op_dnn_errf(err, errlen, "oneDNN: out of memory");
    int id = dnn_add_mem(p, md, buf, OP_DNN_OWN, -1, err, errlen);
    if (id < 0) {
        cnn_mem_aligned_free(buf);
        return -1;
    }
    p->own[id] = buf;
    return id;
}

int op_dnn_mem_view(op_dnn_prog *p, int id, dnnl_data_type_t dt, char *err, size_t errlen)
{
    dnnl_memory_desc_t md = *op_dnn_mem_md(p, id);
    if (md.data_type == dt) return id;
    if (dnnl_data_type_size(md.data_type) != dnnl_data_type_size(dt))
        return op_dnn_errf(err, errlen, "oneDNN: internal error: a view of another element size");
    md.data_type = dt;
    if (p->bind[id] != OP_DNN_OWN) return dnn_add_mem(p, &md, NULL, p->bind[id], p->bind_idx[id], err, errlen);
    return dnn_add_mem(p, &md, p->own[id], OP_DNN_OWN, -1, err, errlen); /* own[] stays NULL: freed once */
}

const dnnl_memory_desc_t *op_dnn_mem_md(const op_dnn_prog *p, int id)
{
    const dnnl_memory_desc_t *md = NULL;
    dnnl_memory_get_memory_desc(p->mem[id], &md);
    return md;
}

float *op_dnn_mem_data(const op_dnn_prog *p, int id)
{
    void *h = NULL;
    dnnl_memory_get_data_handle(p->mem[id], &h);
    return h;
}

/* ---- steps */

static int dnn_add_step(op_dnn_prog *p, const_dnnl_primitive_desc_t pd, int nargs, const int *arg,
                        const int *mem, char *err, size_t errlen)
{
    if (p->nsteps >= OP_DNN_MAX_STEPS) return op_dnn_errf(err, errlen, "oneDNN: too many steps");
    if (nargs > OP_DNN_MAX_ARGS - 1) return op_dnn_errf(err, errlen, "oneDNN: too many arguments");
    op_dnn_step *s = &p->step[p->nsteps];
    memset(s, 0, sizeof *s);
    OP_DNN_TRY(dnnl_primitive_create(&s->prim, pd), "primitive creation");
    p->nsteps++;
    s->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        s->arg[i] = arg[i];
        s->mem[i] = mem[i];
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (need > 0) {
        OP_DNN_TRY(dnnl_memory_create(&s->scratch, smd, op_dnn_engine(), DNNL_MEMORY_NONE),
                   "scratchpad memory");
        if (need > p->scratchpad_size) p->scratchpad_size = need;
    }
    return p->nsteps - 1;
}

int op_dnn_prim(op_dnn_prog *p, const_dnnl_primitive_desc_t pd, char *err, size_t errlen,
                int nargs, ...)
{
    int arg[OP_DNN_MAX_ARGS], mem[OP_DNN_MAX_ARGS];
    if (nargs > OP_DNN_MAX_ARGS) return op_dnn_errf(err, errlen, "oneDNN: too many arguments");
    va_list ap;
    va_start(ap, nargs);
    for (int i = 0; i < nargs; i++) {
        arg[i] = va_arg(ap, int);
        mem[i] = va_arg(ap, int);
    }
    va_end(ap);
    for (int i = 0; i < nargs; i++)
        if (mem[i] < 0 || mem[i] >= p->nmem)
            return op_dnn_errf(err, errlen, "oneDNN: internal error: bad memory id");
    return dnn_add_step(p, pd, nargs, arg, mem, err, errlen);
}

int op_dnn_reorder(op_dnn_prog *p, int src, int dst, bool skip_if_alias, char *err, size_t errlen)
{
    return op_dnn_reorder_scaled(p, src, dst, 1.0f, skip_if_alias, err, errlen);
}

int op_dnn_reorder_scaled(op_dnn_prog *p, int src, int dst, float scale, bool skip_if_alias, char *err,
                          size_t errlen)
{
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_status_t s = scale == 1.0f ? dnnl_success : dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    dnnl_primitive_desc_t pd = NULL;
    if (s == dnnl_success)
        s = dnnl_reorder_primitive_desc_create(&pd, op_dnn_mem_md(p, src), op_dnn_engine(), op_dnn_mem_md(p, dst),
                                               op_dnn_engine(), attr);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "reorder", err, errlen);
    int arg[2] = {DNNL_ARG_FROM, DNNL_ARG_TO}, mem[2] = {src, dst};
    int k = dnn_add_step(p, pd, 2, arg, mem, err, errlen);
    dnnl_primitive_desc_destroy(pd);
    if (k >= 0) p->step[k].skip_if_alias = skip_if_alias;
    return k;
}

int op_dnn_input(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                 op_dnn_bind bind, int idx, char *err, size_t errlen)
{
    int user = op_dnn_mem_bound(p, plain, bind, idx, err, errlen);
    if (user < 0 || dnnl_memory_desc_equal(plain, want)) return user;
    int own = op_dnn_mem_own(p, want, err, errlen);
    if (own < 0 || op_dnn_reorder(p, user, own, false, err, errlen) < 0) return -1;
    return own;
}

int op_dnn_weights(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want, int idx,
                   char *err, size_t errlen)
{
    int before = p->nsteps;
    int id = op_dnn_input(p, plain, want, OP_DNN_IN, idx, err, errlen);
    if (id < 0 || p->nsteps == before) return id;
    p->step[p->nsteps - 1].weights_reorder = true;
    (void)plain;
    return id;
}

int op_dnn_output(op_dnn_prog *p, const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want,
                  op_dnn_bind bind, int idx, int *user, char *err, size_t errlen)
{
    *user = -1;
    int u = op_dnn_mem_bound(p, plain, bind, idx, err, errlen);
    if (u < 0 || dnnl_memory_desc_equal(plain, want)) return u;
    *user = u;
    return op_dnn_mem_own(p, want, err, errlen);
}

/* ---- program life cycle */

static void dnn_prog_free(op_dnn_prog *p)
{
    if (!p) return;
    for (int i = 0; i < p->nsteps; i++) {
        if (p->step[i].prim) dnnl_primitive_destroy(p->step[i].prim);
        if (p->step[i].scratch) dnnl_memory_destroy(p->step[i].scratch);
    }
    for (int i = 0; i < p->nmem; i++) {
        dnnl_memory_destroy(p->mem[i]);
        cnn_mem_aligned_free(p->own[i]);
    }
    cnn_mem_aligned_free(p->scratchpad);
    if (p->stream)
        dnnl_stream_destroy(p->stream);
    cnn_mem_free(p);
}

void op_dnn_release(void *state)
{
    dnn_prog_free(state);
}

static void dnn_record_shapes(op_dnn_prog *p, const op_call *c)
{
    p->nthreads = c->nthreads;
    p->nin = c->nin;
    p->nout = c->nout;
    for (int i = 0; i < c->nin + c->nout && i < OP_MAX_IN + OP_MAX_OUT; i++) {
        const op_tensor *t = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        p->rank[i] = t->rank;
        p->layout[i] = t->layout;
        for (int k = 0; k < OP_MAX_DIMS; k++) p->dims[i][k] = k < t->rank ? t->d[k] : 0;
    }
}

static bool dnn_same_shapes(const op_dnn_prog *p, const op_call *c)
{
    if (p->nthreads != c->nthreads || p->nin != c->nin || p->nout != c->nout) return false;
    for (int i = 0; i < c->nin + c->nout && i < OP_MAX_IN + OP_MAX_OUT; i++) {
        const op_tensor *t = i < c->nin ? &c->in[i] : &c->out[i - c->nin];
        if (p->rank[i] != t->rank || p->layout[i] != t->layout) return false;
        for (int k = 0; k < t->rank; k++)
            if (p->dims[i][k] != t->d[k]) return false;
    }
    return true;
}

/* Builds a program for c with the call's thread count in force (oneDNN sizes its thread
 * partitioning when primitives are created). */
static op_dnn_prog *dnn_build(const op_call *c, op_dnn_build_fn build, char *err, size_t errlen)
{
    if (!op_dnn_engine()) {
        op_dnn_errf(err, errlen, "oneDNN: could not create the CPU engine");
        return NULL;
    }
    if (c->nin > OP_MAX_IN || c->nout > OP_MAX_OUT) {
        op_dnn_errf(err, errlen, "oneDNN: too many tensors in the call");
        return NULL;
    }
    op_dnn_prog *p = cnn_mem_calloc(1, sizeof *p);
    if (!p) {
        op_dnn_errf(err, errlen, "oneDNN: out of memory");
        return NULL;
    }
    p->main_step = -1;
    for (int i = 0; i < 4; i++) p->mark[i] = p->memid[i] = -1;
    dnnl_status_t ss = dnnl_stream_create(&p->stream, op_dnn_engine(), dnnl_stream_default_flags);
    if (ss != dnnl_success) {
        p->stream = NULL;
        op_dnn_fail(ss, "stream", err, errlen);
        dnn_prog_free(p);
        return NULL;
    }
    int prev = omp_get_max_threads();
    if (c->nthreads > 0 && c->nthreads != prev) omp_set_num_threads(c->nthreads);
    int rc = build(p, c, err, errlen);
    if (c->nthreads > 0 && c->nthreads != prev) omp_set_num_threads(prev);
    if (rc == 0 && p->scratchpad_size > 0) {
        p->scratchpad = dnn_alloc(p->scratchpad_size);
        if (!p->scratchpad) rc = op_dnn_errf(err, errlen, "oneDNN: out of memory (scratchpad)");
        for (int i = 0; rc == 0 && i < p->nsteps; i++)
            if (p->step[i].scratch &&
                dnnl_memory_set_data_handle(p->step[i].scratch, p->scratchpad) != dnnl_success)
                rc = op_dnn_errf(err, errlen, "oneDNN: scratchpad binding failed");
    }
    if (rc != 0) {
        dnn_prog_free(p);
        return NULL;
    }
    dnn_record_shapes(p, c);
    return p;
}

int op_dnn_prepare(op_call *c, op_dnn_build_fn build, char *err, size_t errlen)
{
    op_dnn_prog *p = dnn_build(c, build, err, errlen);
    if (!p) return -1;
    dnn_prog_free(c->state);
    c->state = p;
    return 0;
}

op_dnn_prog *op_dnn_ready(op_call *c, op_dnn_build_fn build, char *err, size_t errlen)
{
    op_dnn_prog *p = c->state;
    if (p && dnn_same_shapes(p, c)) return p;
    if (op_dnn_prepare(c, build, err, errlen)) return NULL;
    return c->state;
}

int op_dnn_exec(op_dnn_prog *p, const op_call *c, int from, int to, char *err, size_t errlen)
{
    for (int i = 0; i < p->nmem; i++) {
        if (p->bind[i] == OP_DNN_OWN) continue;
        const op_tensor *t = p->bind[i] == OP_DNN_IN ? &c->in[p->bind_idx[i]] : &c->out[p->bind_idx[i]];
        if (!t->data) return op_dnn_errf(err, errlen, "oneDNN: a tensor of the call has no data");
        OP_DNN_TRY(dnnl_memory_set_data_handle(p->mem[i], t->data), "binding a tensor");
    }
    dnnl_stream_t stream = p->stream;
    for (int k = from; k < to; k++) {
        op_dnn_step *s = &p->step[k];
        dnnl_exec_arg_t args[OP_DNN_MAX_ARGS];
        int n = 0;
        if (s->skip_if_alias && op_dnn_mem_data(p, s->mem[0]) == op_dnn_mem_data(p, s->mem[1]))
            continue;
        const void *src = s->weights_reorder ? op_dnn_mem_data(p, s->mem[0]) : NULL;
        if (src && s->reordered && s->reordered_version == c->weights_version && s->reordered_src == src)
            continue;
        for (int i = 0; i < s->nargs; i++) {
            args[n].arg = s->arg[i];
            args[n++].memory = p->mem[s->mem[i]];
        }
        if (s->scratch) {
            args[n].arg = DNNL_ARG_SCRATCHPAD;
            args[n++].memory = s->scratch;
        }
        OP_DNN_TRY(dnnl_primitive_execute(s->prim, stream, n, args), "execution");
        if (src) {
            s->reordered = true;
            s->reordered_version = c->weights_version;
            s->reordered_src = src;
        }
    }
    OP_DNN_TRY(dnnl_stream_wait(stream), "stream wait");
    return 0;
}

/* ---- shapes */

int op_dnn_as_nchw(const op_tensor *t, op_dnn_nchw *g, char *err, size_t errlen)
{
    switch (t->rank) {
    case 4: *g = (op_dnn_nchw){t->d[0], t->d[1], t->d[2], t->d[3]}; return 0;
    case 3: *g = (op_dnn_nchw){t->d[0], t->d[1], 1, t->d[2]}; return 0;
    case 2: *g = (op_dnn_nchw){t->d[0], t->d[1], 1, 1}; return 0;
    default: break;
    }
    return op_dnn_errf(err, errlen, "oneDNN: expected a [N,C], [N,C,L] or [N,C,H,W] tensor, got rank %d",
                       t->rank);
}

int64_t op_dnn_inner(const op_tensor *t)
{
    int64_t n = 1;
    for (int k = 1; k < t->rank; k++) n *= t->d[k];
    return n;
}

const char *op_onednn_impl_name(const void *state)
{
    const op_dnn_prog *p = state;
    if (!p || p->main_step < 0 || p->main_step >= p->nsteps) return "";
    const_dnnl_primitive_desc_t pd = NULL;
    const char *name = NULL;
    if (dnnl_primitive_get_primitive_desc(p->step[p->main_step].prim, &pd) != dnnl_success) return "";
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success || !name)
        return "";
    return name;
}

bool op_onednn_wide_cl(op_kind op)
{
    return op == OP_BATCHNORM || op == OP_BATCHNORM_BWD;
}

bool op_onednn_winograd(op_kind op)
{
    if (op != OP_CONV2D && op != OP_CONV_BWD_DATA && op != OP_CONV_BWD_WEIGHTS) return false;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core;
}
