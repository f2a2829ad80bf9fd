/* Native conv_q: the int8 convolution (ops/quant.h's arithmetic, exactly the reference's
 * results) as a direct convolution on tap words (native_conv_q.h): vpdpbusd where the CPU has
 * AVX-512 VNNI (and the active level is avx512), vpmaddwd at the avx2 level, exact integer C at
 * the scalar level.  Inputs as the reference's: x, w, b?, r?, ws [F], si [1], so [1]
 * when the output is u8/s8, sr [1] when the residual is; x f32 (quantised here) or u8/s8 bytes,
 * the residual f32 or u8/s8 (ops/quant.h's residual term).  Plain or channels-last activations
 * (each tensor as its op_tensor.layout says; the kernel prefers channels-last, so that a first
 * layer feeds oneDNN's channels-last convolutions without a reorder of its large output: the
 * tiles then store with a stride of F).  bf16 (and fp32) conv_q and 3-D convolutions run the
 * reference kernel, on plain copies of channels-last tensors. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_geom.h"
#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/native_conv_q.h"
#include "ops/quant.h"
#include "ops/ref.h"

/* Final output rows of one (image, group) are split so that a call has at least this many jobs. */
#define MIN_JOBS 8

static bool delegated(const op_call *c)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    return a->prec != OP_PREC_INT8 || a->sdims == 3;
}

/* The level's job routine. */
static nq_job_fn job_fn(void)
{
#ifdef OP_NATIVE_HAVE_X86
    op_native_isa_level l = op_native_isa_active();
    if (l >= OP_NATIVE_AVX512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"))
        return op_native_convq_job_vnni;
    if (l >= OP_NATIVE_AVX2)
        return op_native_convq_job_avx2;
#endif
    return op_native_convq_job_scalar;
}

const char *op_native_conv_q_level(void)
{
#ifdef OP_NATIVE_HAVE_X86
    nq_job_fn fn = job_fn();
    if (fn == op_native_convq_job_vnni)
        return "avx512_vnni";
    if (fn == op_native_convq_job_avx2)
        return "avx2";
#endif
    return "scalar";
}

static int64_t up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* nat_check_call, channels-last tensors allowed */
static int check_call(const op_call *c, bool data, char *err, size_t errlen)
{
    return nat_check_call_layouts(c, "native conv_q", 2, 8, 1, 1, data, false, err, errlen);
}

/* Checks an int8 call as the reference does (the scale values only when data) and fills p
 * (pointers only when data). */
static int setup(const op_call *c, bool data, nq_conv *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const op_conv_attrs *a = &c->node->attrs.conv;
    const char *name = c->node->name;
    int own = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    bool qout = c->out[0].dtype != OP_DT_F32, qres = a->residual && c->in[own - 1].dtype != OP_DT_F32;
    int nsc = 2 + qout + qres, want = own + nsc;
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: int8 expects %d inputs (the layer's and %d scales), got %d", name, want, nsc,
                        c->nin);
    op_conv_geom g;
    if (op_conv_geom_make(a, &c->in[0], &c->in[1], name, &g, err, errlen))
        return -1;
    for (int k = own + 2; k < want; k++)
        if (op_tensor_numel(&c->in[k]) != 1 || (data && !op_q_scales_ok(c->in[k].data, 1)))
            return ref_fail(err, errlen, "%s: the int8 %s scale is not one positive finite value", name,
                            k == own + 2 && qout ? "output" : "residual");
    if (op_tensor_numel(&c->in[own]) != g.f || op_tensor_numel(&c->in[own + 1]) != 1)
        return ref_fail(err, errlen, "%s: int8 scales must be [%lld] and [1], got %lld and %lld values", name,
                        (long long)g.f, (long long)op_tensor_numel(&c->in[own]), (long long)op_tensor_numel(&c->in[own + 1]));
    if (data && (!op_q_scales_ok(c->in[own].data, g.f) || !op_q_scales_ok(c->in[own + 1].data, 1)))
        return ref_fail(err, errlen, "%s: an int8 scale is zero, negative or not finite", name);
    if (qout && a->act != OP_ACT_NONE && a->act != OP_ACT_RELU && a->act != OP_ACT_LEAKY_RELU)
        return ref_fail(err, errlen, "%s: an int8 output takes no activation but relu and leaky_relu", name);
    if (c->in[1].dtype != OP_DT_F32 || (c->in[0].dtype != OP_DT_F32 && c->in[0].dtype != OP_DT_U8 &&
                                        c->in[0].dtype != OP_DT_S8))
        return ref_fail(err, errlen, "%s: int8 takes f32 weights and an f32, u8 or s8 input", name);
    int k = 2;
    if (a->bias) {
        if (op_tensor_numel(&c->in[k]) != g.f)
            return ref_fail(err, errlen, "%s: bias must be [%lld]", name, (long long)g.f);
        k++;
    }
    if (a->residual) {
        const op_tensor *r = &c->in[k];
        if (op_conv_check_act(r, a->sdims, g.n, g.f, g.oh, g.ow, name, "residual", err, errlen))
            return -1;
        if (r->dtype != OP_DT_F32 && r->dtype != OP_DT_U8 && r->dtype != OP_DT_S8)
            return ref_fail(err, errlen, "%s: the residual is neither f32 nor u8/s8", name);
        if (qres && qout && r->dtype != (a->res_unsigned ? OP_DT_U8 : OP_DT_S8))
            return ref_fail(err, errlen, "%s: the int8 residual is %s but the node reads it as %s", name,
                            r->dtype == OP_DT_U8 ? "u8" : "s8", a->res_unsigned ? "u8" : "s8");
        nq_res *q = &p->res;
        q->dt = r->dtype;
        q->cl = r->layout != 0;
        q->uns = a->res_unsigned;
        q->mode = qres ? (qout ? NQ_R_I8 : NQ_R_I8_DQ) : (qout ? NQ_R_F32_Q : NQ_R_F32);
        q->k = 1.0f;
        if (data) {
            float so = qout ? c->in[own + 2].data[0] : 0.0f, sr = qres ? c->in[own + 2 + qout].data[0] : 0.0f;
            q->r = r->data;
            q->sr = sr;
            q->inv = qout ? 1.0f / so : 0.0f;
            if (q->mode == NQ_R_I8)
                q->k = sr / so;
        } else {
            q->r = r; /* not NULL: a residual (no data yet) */
        }
        k++;
    }
    p->yh = g.oh, p->yw = g.ow;
    if (a->pool) {
        if (a->pool_size[0] < 1 || a->pool_size[1] < 1 || a->pool_stride[0] < 1 || a->pool_stride[1] < 1 ||
            a->pool_pad[0] < 0 || a->pool_pad[1] < 0 || g.oh + 2 * a->pool_pad[0] < a->pool_size[0] ||
            g.ow + 2 * a->pool_pad[1] < a->pool_size[1])
            return ref_fail(err, errlen, "%s: bad fused pooling", name);
        p->pool = true;
        p->psh = a->pool_size[0], p->psw = a->pool_size[1];
        p->pst_h = a->pool_stride[0], p->pst_w = a->pool_stride[1];
        p->pph = a->pool_pad[0], p->ppw = a->pool_pad[1];
        p->yh = (g.oh + 2 * p->pph - p->psh) / p->pst_h + 1;
        p->yw = (g.ow + 2 * p->ppw - p->psw) / p->pst_w + 1;
    }
    if (op_conv_check_act(&c->out[0], a->sdims, g.n, g.f, p->yh, p->yw, name, "output", err, errlen))
        return -1;

    p->n = g.n, p->c = g.c, p->h = g.h, p->w = g.w, p->f = g.f, p->cpg = g.cpg, p->fpg = g.fpg;
    p->kh = g.kh, p->kw = g.kw, p->sh = g.sh, p->sw = g.sw, p->ph = g.ph, p->pw = g.pw;
    p->dh = g.dh, p->dw = g.dw, p->oh = g.oh, p->ow = g.ow;
    p->act = a->act, p->alpha = a->alpha;
    p->xdt = c->in[0].dtype;
    p->xcl = c->in[0].layout != 0;
    p->ycl = c->out[0].layout != 0;
    p->is_unsigned = p->xdt == OP_DT_U8 || (p->xdt == OP_DT_F32 && a->q_unsigned);
    p->padval = p->is_unsigned ? 0 : 128;
    p->ydt = c->out[0].dtype;
    p->t = (g.kw + 3) / 4;
    p->k4 = g.cpg * g.kh * p->t;
    p->fb = g.fpg <= NQ_MAX_FB ? g.fpg : NQ_MAX_FB;
    p->fpgp = up(g.fpg, p->fb);
    p->owv = (g.ow + 15) / 16;
    p->owp = p->owv * 16;
    p->wm = up(p->owp + 4 * (p->t - 1) * g.dw / g.sw + 1, 16);
    int64_t wq = p->wm + (g.sw - 1 + 3 * g.dw) / g.sw;
    p->wq = up(wq > g.pw + g.w ? wq : g.pw + g.w, 16);
    int64_t per = g.n * g.g, chunks = per >= MIN_JOBS ? 1 : (MIN_JOBS + per - 1) / per;
    if (chunks > p->yh)
        chunks = p->yh;
    p->rows = (p->yh + chunks - 1) / chunks;
    p->crows = p->pool ? (p->rows - 1) * p->pst_h + p->psh : p->rows;
    if (p->crows > g.oh)
        p->crows = g.oh;
    p->irows = (p->crows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    if (data) {
        p->x = c->in[0].data;
        p->y = c->out[0].data;
        p->inv_si = 1.0f / c->in[own + 1].data[0];
    }
    return 0;
}

/* Bytes of the call's prepared weights: wd, then comp, bq, m, then the quantised weights. */
static size_t prep_bytes(const nq_conv *p)
{
    int64_t groups = p->f / p->fpg, gf = groups * p->fpgp;
    return (size_t)up((gf * p->k4 + 3 * gf) * 4 + p->f * p->cpg * p->kh * p->kw, 64);
}

static size_t total_bytes(const nq_conv *p, int nt)
{
    return prep_bytes(p) + (size_t)nt * nq_thread_bytes(p) + 64;
}

size_t op_native_conv_q_scratch(const op_call *c)
{
    if (!c->node || delegated(c) || c->nin < 2 || c->nout != 1)
        return 0;
    nq_conv p;
    if (check_call(c, false, NULL, 0) || setup(c, false, &p, NULL, 0))
        return 0;
    return total_bytes(&p, nat_threads(c));
}

/* Fills the prepared weights at buf (prep_bytes) and points p at them. */
static void prepare_weights(nq_conv *p, const op_call *c, char *buf)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int own = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    int64_t groups = p->f / p->fpg, gf = groups * p->fpgp, nblk = p->fpgp / p->fb;
    int64_t per = p->cpg * p->kh * p->kw;
    int32_t *wd = (int32_t *)(void *)buf, *comp = wd + gf * p->k4;
    float *bq = (float *)(void *)(comp + gf), *m = bq + gf;
    int8_t *wq = (int8_t *)(m + gf);
    const float *ws = c->in[own].data;
    float si = c->in[own + 1].data[0];
    float so = c->out[0].dtype != OP_DT_F32 ? c->in[own + 2].data[0] : 0.0f;
    op_q_weights(c->in[1].data, ws, p->f, per, wq);
    memset(wd, 0, sizeof(int32_t) * (size_t)(gf * p->k4 + gf));
    memset(bq, 0, sizeof(float) * (size_t)(2 * gf));
    for (int64_t fg = 0; fg < p->f; fg++) {
        int64_t grp = fg / p->fpg, fl = fg % p->fpg, blk = fl / p->fb, j = fl % p->fb;
        int64_t slot = grp * p->fpgp + fl;
        const int8_t *src = wq + fg * per;
        int8_t *dst = (int8_t *)(wd + (grp * nblk + blk) * p->k4 * p->fb);
        int64_t sum = 0;
        for (int64_t ch = 0; ch < p->cpg; ch++)
            for (int64_t i = 0; i < p->kh; i++)
                for (int64_t kx = 0; kx < p->kw; kx++) {
                    int8_t v = src[(ch * p->kh + i) * p->kw + kx];
                    int64_t kk = (ch * p->kh + i) * p->t + kx / 4;
                    dst[(kk * p->fb + j) * 4 + kx % 4] = v;
                    sum += v;
                }
        comp[slot] = p->is_unsigned ? 0 : (int32_t)(uint32_t)(uint64_t)(-128 * sum);
        float mm, bb;
        op_q_out_scales(ws + fg, si, a->bias ? c->in[2].data + fg : NULL, 1, so, &mm, &bb);
        m[slot] = mm;
        bq[slot] = bb;
    }
    p->wd = wd, p->comp = comp, p->bq = bq, p->m = m;
}

/* The reference kernel (bf16, 3-D) on plain copies of the channels-last activations, if any. */
static int run_reference(op_call *c, char *err, size_t errlen)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int act[3] = {0, a->residual ? 2 + (a->bias ? 1 : 0) : -1, -1}; /* x, residual; then y */
    op_tensor *t[3] = {&c->in[0], act[1] >= 0 ? &c->in[act[1]] : NULL, &c->out[0]};
    if (!t[0]->layout && !(t[1] && t[1]->layout) && !t[2]->layout)
        return op_ref_conv_q(c, err, errlen);
    op_call k = *c;
    op_tensor *kt[3] = {&k.in[0], t[1] ? &k.in[act[1]] : NULL, &k.out[0]};
    void *copy[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (!t[i] || !t[i]->layout)
            continue;
        int64_t n = t[i]->d[0], ch = t[i]->rank > 1 ? t[i]->d[1] : 1, sp = op_tensor_numel(t[i]) / (n * ch > 0 ? n * ch : 1);
        size_t size = t[i]->dtype == OP_DT_F32 ? sizeof(float) : 1;
        copy[i] = cnn_mem_malloc(size * (size_t)(n * ch * sp) + 1);
        if (!copy[i]) {
            rc = ref_fail(err, errlen, "%s: out of memory", c->node->name);
            break;
        }
        if (i < 2)
            ref_layout_copy(t[i]->data, copy[i], n, ch, sp, size, false, nat_threads(c));
        kt[i]->data = copy[i];
        kt[i]->layout = 0;
    }
    if (rc == 0)
        rc = op_ref_conv_q(&k, err, errlen);
    if (rc == 0 && copy[2]) {
        const op_tensor *y = t[2];
        int64_t n = y->d[0], ch = y->rank > 1 ? y->d[1] : 1, sp = op_tensor_numel(y) / (n * ch > 0 ? n * ch : 1);
        ref_layout_copy(copy[2], y->data, n, ch, sp, y->dtype == OP_DT_F32 ? sizeof(float) : 1, true, nat_threads(c));
    }
    for (int i = 0; i < 3; i++)
        cnn_mem_free(copy[i]);
    return rc;
}

int op_native_conv_q(op_call *c, char *err, size_t errlen)
{
    if (check_call(c, true, err, errlen))
        return -1;
    if (delegated(c))
        return run_reference(c, err, errlen);
    nq_conv p;
    if (setup(c, true, &p, err, errlen))
        return -1;
    if (op_tensor_numel(&c->out[0]) == 0)
        return 0;
    int nt = nat_threads(c);
    size_t bytes = total_bytes(&p, nt);
    bool owned;
    char *buf = (char *)nat_scratch(c, bytes, &owned);
    if (!buf)
        return ref_fail(err, errlen, "%s: out of memory", c->node->name);
    char *aligned = (char *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    prepare_weights(&p, c, aligned);
    char *threads = aligned + prep_bytes(&p);
    size_t tb = nq_thread_bytes(&p);
    nq_job_fn job = job_fn();
    int64_t groups = p.f / p.fpg, chunks = (p.yh + p.rows - 1) / p.rows, njobs = p.n * groups * chunks;
    if (nt > njobs)
        nt = (int)njobs;
    NAT_PAR(nt, {
        void *mine = threads + (size_t)nat_tid * tb;
        NAT_STATIC(j, njobs) {
            int64_t ch = j % chunks, ng = j / chunks, y0 = ch * p.rows;
            int64_t y1 = y0 + p.rows < p.yh ? y0 + p.rows : p.yh;
            job(&p, ng / groups, ng % groups, y0, y1, mine);
        }
    });
    if (owned)
        cnn_mem_aligned_free(buf);
    return 0;
}
