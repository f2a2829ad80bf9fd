/* Native convolution: forward (1-D, 2-D and 3-D, stride, padding, dilation, groups, fused
 * epilogue bias -> + residual -> activation -> max pooling (not 3-D)), backward to the data
 * and to the weights and bias.  Layouts as in ops/ref.h (NCHW / NCDHW activations, OIHW /
 * OIDHW weights; 1-D read as height 1, below 3-D depth 1).
 *
 *   forward        per group: Y[fpg][N*P] = W[fpg][cpg*kh*kw] * im2col(X)[..][N*P], a GEMM
 *                  whose columns run over the whole batch (small images fill the tiles), whose
 *                  B operand is packed from a zero-padded copy of the input (runs of an input
 *                  row copied whole, no bounds checks) and whose store applies the epilogue;
 *                  fused pooling runs over the finished planes.  Groups with fewer than
 *                  DIRECT_FPG filters (depthwise) use a direct loop.
 *   backward data  stride 1: the forward convolution of dY with the flipped, transposed
 *                  weights (padding dil*(k-1) - pad); otherwise col = W^T dY per image and
 *                  group, scattered back (col2im) by jobs that own whole input channels.
 *   backward wts   dW[fpg][cpg*kh*kw] = sum over images of dY * im2col(X)^T, the images
 *                  being the GEMM's K (split into fixed parts when columns are few), im2col
 *                  gathered from the padded input and transposed in registers; direct loops
 *                  for few filters per group; db sums dY.
 * Every output element is computed in an order fixed by the shapes, so results do not depend
 * on the thread count.
 *
 * 3-D convolutions (attrs.sdims 3) always take the GEMM paths (the direct loops and their ISA
 * routines are 2-D): im2col becomes vol2col (patch rows (c, a, i, j) over output positions
 * (oz, oy, ox)), col2im col2vol; a 3-D convolution never has a fused pool.
 *
 * This file checks each call, picks its path (direct or GEMM, the stride-1 transform or col2im)
 * and sizes its scratch, and holds the kernel entry points; the paths run in
 * native_conv_fwd.c, native_conv_bwd.c, native_conv_cl.c and native_conv_wino.c, sharing
 * ops/native/native_conv.h. */
#include <stdlib.h>
#include <string.h>

#include "ops/conv_geom.h"
#include "ops/mem.h"
#include "ops/native/native_common.h"
#include "ops/native/native_conv.h"
#include "ops/ref.h"

#define DIRECT_FPG 4  /* groups with fewer filters than this use the direct loop */
#define DIRECT_CPG 4  /* and, forward, first layers with fewer input channels (first_layer) */

/* ---- geometry ---- */

/* Checks the attributes against input x and weight wt (op_conv_geom_make3, as every backend
 * does) and fills s. */
static int conv_shape(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                      const char *name, cshape *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    op_conv_geom cg;
    if (op_conv_geom_make3(a, x, wt, name, &cg, err, errlen))
        return -1;
    s->sdims = a->sdims;
    s->n = cg.n, s->c = cg.c, s->h = cg.h, s->w = cg.w;
    s->f = cg.f, s->groups = cg.g, s->cpg = cg.cpg, s->fpg = cg.fpg;
    op_native_convg *g = &s->g;
    g->c = cg.cpg;
    g->h = cg.h;
    g->w = cg.w;
    g->kh = cg.kh, g->kw = cg.kw, g->sh = cg.sh, g->sw = cg.sw;
    g->ph = cg.ph, g->pw = cg.pw, g->dh = cg.dh, g->dw = cg.dw;
    g->oh = cg.oh;
    g->ow = cg.ow;
    g->d = cg.d, g->kd = cg.kd, g->sd = cg.sd, g->pd = cg.pd, g->dd = cg.dd, g->od = cg.od;
    s->kf = s->cpg * g->kd * g->kh * g->kw;
    s->p = g->od * g->oh * g->ow;
    return 0;
}

/* The direct loops (few filters per group) are 2-D: 3-D always takes the GEMM path. */
static bool use_direct(const cshape *s)
{
    return s->fpg < DIRECT_FPG && s->sdims != 3;
}

/* First layers take the direct loop too, forward, on a machine with AVX-512 (its conv_plane_pad
 * holds output rows in registers and reads one zero-padded copy of each image): fewer than
 * DIRECT_CPG input channels, one group, column stride and dilation 1, rows of at most 32
 * outputs.  The im2col GEMM packs as much as it computes there and scales poorly (LeNet-5's
 * 1 -> 6 channels 5x5).  It depends on the machine, not on the level in use, so that a forced
 * lower level (tests) runs the same path, through its generic loop. */
static bool first_layer(const cshape *s)
{
    return s->sdims == 2 && s->groups == 1 && s->cpg < DIRECT_CPG && s->g.sw == 1 && s->g.dw == 1 &&
           s->g.ow <= 32 && op_native_isa_supported() == OP_NATIVE_AVX512;
}

/* ---- forward ---- */

/* Validates a forward call and fills f (no data pointers needed). */
static int fwd_setup(const op_call *c, bool data, conv_fwd *f, char *err, size_t errlen)
{
    const char *name = "native conv";
    memset(f, 0, sizeof *f);
    if (nat_check_call_layouts(c, name, 2, 4, 1, 2, data, false, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: expected %d inputs (bias %s, residual %s), got %d",
                        name, want, a->bias ? "on" : "off", a->residual ? "on" : "off", c->nin);
    bool keep = a->pool && a->pool_keep;
    if (c->nout != (keep ? 2 : 1))
        return ref_fail(err, errlen, "%s: expected %d outputs, got %d", name, keep ? 2 : 1, c->nout);
    if (conv_shape(a, &c->in[0], &c->in[1], name, &f->s, err, errlen))
        return -1;
    const cshape *s = &f->s;
    int k = 2;
    if (a->bias) {
        if (c->in[k].rank != 1 || c->in[k].d[0] != s->f)
            return ref_fail(err, errlen, "%s: bias has %lld elements, expected [%lld]", name,
                            (long long)op_tensor_numel(&c->in[k]), (long long)s->f);
        k++;
    }
    if (a->residual &&
        op_conv_check_act3(&c->in[k], a->sdims, s->n, s->f, s->g.od, s->g.oh, s->g.ow, name,
                           "residual", err, errlen))
        return -1;
    f->act = a->act;
    f->alpha = a->alpha;
    f->yh = s->g.oh;
    f->yw = s->g.ow;
    if (a->pool && a->sdims == 3)
        return ref_fail(err, errlen, "%s: a 3-D convolution has no fused pooling", name);
    if (a->pool) {
        f->pool = true;
        f->psh = a->pool_size[0];
        f->psw = a->pool_size[1];
        f->pst_h = a->pool_stride[0];
        f->pst_w = a->pool_stride[1];
        f->pph = a->pool_pad[0];
        f->ppw = a->pool_pad[1];
        if (a->sdims == 1 && (f->psh != 1 || f->pst_h != 1 || f->pph != 0))
            return ref_fail(err, errlen, "%s: fused 1-D pooling needs size 1, stride 1, pad 0 at "
                            "index 0", name);
        if (f->psh < 1 || f->psw < 1 || f->pst_h < 1 || f->pst_w < 1 || f->pph < 0 ||
            f->ppw < 0 || f->pph >= f->psh || f->ppw >= f->psw)
            return ref_fail(err, errlen, "%s: bad fused pooling size %lldx%lld stride %lldx%lld "
                            "pad %lldx%lld", name, (long long)f->psh, (long long)f->psw,
                            (long long)f->pst_h, (long long)f->pst_w, (long long)f->pph,
                            (long long)f->ppw);
        if (s->g.oh + 2 * f->pph < f->psh || s->g.ow + 2 * f->ppw < f->psw)
            return ref_fail(err, errlen, "%s: fused pooling window larger than the %lldx%lld "
                            "convolution output", name, (long long)s->g.oh, (long long)s->g.ow);
        f->yh = (s->g.oh + 2 * f->pph - f->psh) / f->pst_h + 1;
        f->yw = (s->g.ow + 2 * f->ppw - f->psw) / f->pst_w + 1;
    }
    if (keep && op_conv_check_act3(&c->out[0], a->sdims, s->n, s->f, s->g.od, s->g.oh, s->g.ow, name,
                                   "output", err, errlen))
        return -1;
    if (op_conv_check_act3(&c->out[keep ? 1 : 0], a->sdims, s->n, s->f, s->g.od, f->yh, f->yw, name,
                           keep ? "pooled output" : "output", err, errlen))
        return -1;
    f->first = !use_direct(s) && first_layer(s);
    f->direct = use_direct(s) || f->first;
    return 0;
}

/* The largest scratch any ISA level could ask for (the level may be forced after prepare). */
static size_t fwd_scratch_max(conv_fwd *f, int nt)
{
    size_t best = 0;
    fwd_scratch sc;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = nconv_fwd_scratch_parts(f, nat_isa_level(l), nt, &sc);
        best = b > best ? b : best;
    }
    return best;
}

/* The activations of a forward call (x, the residual, y) as nconv_layout_mode takes them. */
static int fwd_acts(const op_call *c, int *acts)
{
    const op_conv_attrs *a = &c->node->attrs.conv;
    int n = 0;
    acts[n++] = 0;
    if (a->residual)
        acts[n++] = 2 + (a->bias ? 1 : 0);
    acts[n++] = c->nin;
    if (a->pool && a->pool_keep)
        acts[n++] = c->nin + 1;
    return n;
}

/* The channels-last direct path takes forward f on isa. */
static bool cl_fwd_ok(const conv_fwd *f, const op_native_isa *isa)
{
    return nconv_cl_fits(&f->s, isa) && !f->pool;
}

/* Whether call c's node asks for Winograd's algorithm (compiler/pass_conv_algo.c): the
 * channels-last calls that fit run it (native_conv_wino.c), the others directly. */
static bool wino_asked(const op_call *c)
{
    return c->node->attrs.conv.winograd;
}

/* The highest level's table: the level may be raised back after the scratch is sized, and
 * only the highest has the channels-last kernels. */
static const op_native_isa *top_isa(void)
{
    return nat_isa_level((int)op_native_isa_supported());
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int blocked_fail(const char *name, char *err, size_t errlen)
{
    return ref_fail(err, errlen, "%s: blocked (nChw16c) tensors are not taken", name);
}

/* The scratch covers the plain paths and the channels-last one alike (the layouts may be set
 * after sizing). */
size_t op_native_conv_scratch(const op_call *c)
{
    conv_fwd f;
    if (fwd_setup(c, false, &f, NULL, 0))
        return 0;
    size_t b = fwd_scratch_max(&f, nat_threads(c));
    if (cl_fwd_ok(&f, top_isa()))
        b = max_size(b, nconv_cl_fwd_floats(&f.s, nat_threads(c)) * sizeof(float));
    if (wino_asked(c) && nconv_wino_fits(&f.s, top_isa()))
        b = max_size(b, nconv_wino_fwd_floats(&f.s, f.pool && !c->node->attrs.conv.pool_keep, nat_threads(c)) *
                            sizeof(float));
    return b;
}

int op_native_conv_prepare(op_call *c, char *err, size_t errlen)
{
    c->state = cnn_mem_calloc(1, sizeof(nconv_wcache));
    if (!c->state)
        return ref_fail(err, errlen, "native conv: out of memory");
    return 0;
}

float *nconv_wcache_take(nconv_wcache *wc, size_t need, bool wino, uint64_t version, const float *src, bool *prepare)
{
    *prepare = true;
    if (!wc)
        return NULL;
    if (wc->floats < need) {
        cnn_mem_aligned_free(wc->wp);
        wc->wp = cnn_mem_aligned_alloc(64, need * sizeof(float), 0);
        wc->floats = wc->wp ? need : 0;
        wc->valid = false;
    }
    if (!wc->wp)
        return NULL;
    *prepare = !(wc->valid && wc->wino == wino && wc->version == version && wc->src == src);
    wc->valid = false;
    return wc->wp;
}

void nconv_wcache_keep(nconv_wcache *wc, const float *buf, bool wino, uint64_t version, const float *src)
{
    if (!wc || !buf || wc->wp != buf)
        return;
    wc->valid = true;
    wc->wino = wino;
    wc->version = version;
    wc->src = src;
}

void op_native_conv_release(void *state)
{
    nconv_wcache *wc = state;
    if (wc)
        cnn_mem_aligned_free(wc->wp);
    cnn_mem_free(wc);
}

int op_native_conv(op_call *c, char *err, size_t errlen)
{
    conv_fwd f;
    if (fwd_setup(c, true, &f, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int acts[4], na = fwd_acts(c, acts), mode = nconv_layout_mode(c, acts, na);
    if (mode < 0)
        return blocked_fail("native conv", err, errlen);
    bool wino = mode == NCONV_CL && wino_asked(c) && nconv_wino_fits(&f.s, op_native_isa_table());
    if (mode == NCONV_MIXED || (mode == NCONV_CL && !wino && !cl_fwd_ok(&f, op_native_isa_table())))
        return nconv_via_plain(c, acts, na, op_native_conv, err, errlen);
    int k = 2;
    f.x = c->in[0].data;
    f.w = c->in[1].data;
    f.b = a->bias ? c->in[k++].data : NULL;
    f.r = a->residual ? c->in[k++].data : NULL;
    bool keep = a->pool && a->pool_keep;
    f.y = c->out[keep ? 1 : 0].data;
    f.kept = keep ? c->out[0].data : NULL;
    f.wcache = c->state;
    f.wversion = c->weights_version;
    if (op_tensor_numel(&c->out[0]) == 0)
        return 0;
    const op_native_isa *isa = op_native_isa_table();
    int nt = nat_threads(c);
    size_t bytes = wino               ? nconv_wino_fwd_floats(&f.s, f.pool && !keep, nt) * sizeof(float)
                   : mode == NCONV_CL ? nconv_cl_fwd_floats(&f.s, nt) * sizeof(float)
                                      : fwd_scratch_max(&f, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv: out of memory");
    if (wino)
        nconv_wino_fwd(&f, isa, nt, scratch);
    else if (mode == NCONV_CL)
        nconv_cl_fwd(&f, isa, nt, scratch);
    else
        nconv_fwd_run(&f, isa, nt, scratch);
    if (owned)
        cnn_mem_aligned_free(scratch);
    return 0;
}

/* ---- backward to the data ---- */

static int bwd_data_setup(const op_call *c, bool data, conv_bwd_data *d, char *err,
                          size_t errlen)
{
    const char *name = "native conv_bwd_data";
    memset(d, 0, sizeof *d);
    if (nat_check_call_layouts(c, name, 2, 2, 1, 1, data, false, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    if (conv_shape(a, &c->out[0], &c->in[1], name, &d->s, err, errlen))
        return -1;
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    if (op_conv_check_act3(&c->in[0], a->sdims, s->n, s->f, g->od, g->oh, g->ow, name, "dy",
                           err, errlen))
        return -1;
    d->transform = g->sh == 1 && g->sw == 1 && g->ph <= g->dh * (g->kh - 1) &&
                   g->pw <= g->dw * (g->kw - 1) && g->sd == 1 && g->pd <= g->dd * (g->kd - 1);
    if (d->transform) {
        conv_fwd *f = &d->fw;
        cshape *t = &f->s;
        t->sdims = s->sdims;
        t->n = s->n;
        t->c = s->f;
        t->h = g->oh;
        t->w = g->ow;
        t->f = s->c;
        t->groups = s->groups;
        t->cpg = s->fpg;
        t->fpg = s->cpg;
        t->g = *g;
        t->g.c = s->fpg;
        t->g.h = g->oh;
        t->g.w = g->ow;
        t->g.ph = g->dh * (g->kh - 1) - g->ph;
        t->g.pw = g->dw * (g->kw - 1) - g->pw;
        t->g.oh = s->h;
        t->g.ow = s->w;
        t->g.d = g->od;
        t->g.pd = g->dd * (g->kd - 1) - g->pd;
        t->g.od = g->d;
        t->kf = t->cpg * g->kd * g->kh * g->kw;
        t->p = g->d * s->h * s->w;
        f->act = OP_ACT_NONE;
        f->yh = s->h;
        f->yw = s->w;
        f->direct = use_direct(t);
    }
    return 0;
}

/* The largest scratch any ISA level could ask for. */
static size_t bd_scratch_max(conv_bwd_data *d, int nt)
{
    size_t best = 0;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = nconv_bd_scratch_bytes(d, nat_isa_level(l), nt);
        best = b > best ? b : best;
    }
    return best;
}

/* The channels-last direct path takes backward data d on isa: the stride-1 transform. */
static bool cl_bd_ok(const conv_bwd_data *d, const op_native_isa *isa)
{
    return d->transform && nconv_cl_fits(&d->fw.s, isa);
}

size_t op_native_conv_bwd_data_scratch(const op_call *c)
{
    conv_bwd_data d;
    if (bwd_data_setup(c, false, &d, NULL, 0))
        return 0;
    size_t b = bd_scratch_max(&d, nat_threads(c));
    if (cl_bd_ok(&d, top_isa()))
        b = max_size(b, nconv_cl_fwd_floats(&d.fw.s, nat_threads(c)) * sizeof(float));
    if (nconv_bd_scatter_fits(&d, top_isa()))
        b = max_size(b, nconv_bd_scatter_floats(&d, nat_threads(c)) * sizeof(float));
    if (wino_asked(c) && d.transform && nconv_wino_fits(&d.fw.s, top_isa()))
        b = max_size(b, nconv_wino_floats(&d.fw.s, nat_threads(c)) * sizeof(float));
    return b;
}

int op_native_conv_bwd_data(op_call *c, char *err, size_t errlen)
{
    conv_bwd_data d;
    if (bwd_data_setup(c, true, &d, err, errlen))
        return -1;
    int acts[2] = {0, c->nin}, mode = nconv_layout_mode(c, acts, 2);
    if (mode < 0)
        return blocked_fail("native conv_bwd_data", err, errlen);
    /* by outer products where they fit (few channels of dx); else channels-last the transformed
     * convolution */
    bool wino = mode == NCONV_CL && wino_asked(c) && d.transform && nconv_wino_fits(&d.fw.s, op_native_isa_table());
    bool scatter = !wino && mode != NCONV_MIXED && nconv_bd_scatter_fits(&d, op_native_isa_table());
    if (mode == NCONV_MIXED || (mode == NCONV_CL && !scatter && !cl_bd_ok(&d, op_native_isa_table())))
        return nconv_via_plain(c, acts, 2, op_native_conv_bwd_data, err, errlen);
    d.dy = c->in[0].data;
    d.w = c->in[1].data;
    d.dx = c->out[0].data;
    d.fw.wcache = c->state;
    d.fw.wversion = c->weights_version;
    if (op_tensor_numel(&c->out[0]) == 0)
        return 0;
    const op_native_isa *isa = op_native_isa_table();
    int nt = nat_threads(c);
    size_t bytes = wino              ? nconv_wino_floats(&d.fw.s, nt) * sizeof(float)
                   : scatter         ? nconv_bd_scatter_floats(&d, nt) * sizeof(float)
                   : mode == NCONV_CL ? nconv_cl_fwd_floats(&d.fw.s, nt) * sizeof(float)
                                      : bd_scratch_max(&d, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv_bwd_data: out of memory");
    if (wino) {
        nconv_wino_bwd_data(&d, isa, nt, scratch);
    } else if (scatter) {
        nconv_bd_scatter(&d, mode == NCONV_CL, isa, nt, scratch);
    } else if (mode == NCONV_CL) {
        nconv_cl_bwd_data(&d, isa, nt, scratch);
    } else if (d.transform) {
        float *wt = scratch;
        nconv_flip_weights(&d, wt);
        d.fw.x = d.dy;
        d.fw.w = wt;
        d.fw.y = d.dx;
        nconv_fwd_run(&d.fw, isa, nt, wt + op_native_round16((size_t)(d.s.f * d.s.kf)));
    } else {
        nconv_bd_col2im(&d, isa, nt, scratch);
    }
    if (owned)
        cnn_mem_aligned_free(scratch);
    return 0;
}

/* ---- backward to the weights ---- */

static int bwd_w_setup(const op_call *c, bool data, conv_bwd_w *d, char *err, size_t errlen)
{
    const char *name = "native conv_bwd_weights";
    memset(d, 0, sizeof *d);
    if (nat_check_call_layouts(c, name, 2, 2, 1, 2, data, false, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = a->bias ? 2 : 1;
    if (c->nout != want)
        return ref_fail(err, errlen, "%s: expected %d outputs (bias %s), got %d", name, want,
                        a->bias ? "on" : "off", c->nout);
    if (conv_shape(a, &c->in[1], &c->out[0], name, &d->s, err, errlen))
        return -1;
    const cshape *s = &d->s;
    if (op_conv_check_act3(&c->in[0], a->sdims, s->n, s->f, s->g.od, s->g.oh, s->g.ow, name,
                           "dy", err, errlen))
        return -1;
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != s->f))
        return ref_fail(err, errlen, "%s: bias gradient has %lld elements, expected [%lld]",
                        name, (long long)op_tensor_numel(&c->out[1]), (long long)s->f);
    /* Split the images into parts when the weight matrix gives too few column jobs to keep
     * the threads busy; decided by the shapes alone, so results do not vary with threads. */
    int64_t cols = s->groups * ((s->kf + 63) / 64);
    d->ksplit = cols >= 8 ? 1 : (8 + cols - 1) / cols;
    if (d->ksplit > s->n)
        d->ksplit = s->n > 0 ? s->n : 1;
    nconv_pad_layout(&d->in, s);
    d->direct = use_direct(s);
    d->first = first_layer(s) && (s->g.kw == 3 || s->g.kw == 5 || s->g.kw == 7);
    return 0;
}

/* The largest scratch any ISA level could ask for: the direct path's accumulators, or the
 * GEMM's scratch followed by the padded input and the offsets. */
static size_t bw_scratch_max(conv_bwd_w *d, int nt)
{
    /* a first layer takes the GEMM or direct path on the levels without conv_wgrad_pad */
    size_t first = d->first ? nconv_bw_first_floats(&d->s) * sizeof(float) : 0;
    if (d->direct) /* each thread's kh*kw double accumulators */
        return max_size(first, (size_t)nt * op_native_round16((size_t)(2 * d->s.g.kh * d->s.g.kw)) * sizeof(float));
    return max_size(first, (nconv_bw_gemm_floats(d, nt) + nconv_pad_floats(&d->in, &d->s)) * sizeof(float));
}

size_t op_native_conv_bwd_weights_scratch(const op_call *c)
{
    conv_bwd_w d;
    if (bwd_w_setup(c, false, &d, NULL, 0))
        return 0;
    size_t b = bw_scratch_max(&d, nat_threads(c));
    if (nconv_bw_outer_fits(&d, top_isa()))
        b = max_size(b, nconv_bw_outer_floats(&d) * sizeof(float));
    if (nconv_cl_fits(&d.s, top_isa()))
        b = max_size(b, nconv_cl_bw_floats(&d.s, top_isa()) * sizeof(float));
    if (wino_asked(c) && nconv_wino_wgrad_fits(&d.s, top_isa()))
        b = max_size(b, nconv_wino_wgrad_floats(&d.s, nat_threads(c)) * sizeof(float));
    return b;
}

int op_native_conv_bwd_weights(op_call *c, char *err, size_t errlen)
{
    conv_bwd_w d;
    if (bwd_w_setup(c, true, &d, err, errlen))
        return -1;
    int acts[2] = {0, 1}, mode = nconv_layout_mode(c, acts, 2);
    if (mode < 0)
        return blocked_fail("native conv_bwd_weights", err, errlen);
    const op_native_isa *isa = op_native_isa_table();
    bool wino = mode == NCONV_CL && wino_asked(c) && nconv_wino_wgrad_fits(&d.s, isa);
    /* few channels (and 8 filters or more, else a first layer's own path): by outer products,
     * channels-last or plain */
    bool outer = !wino && mode != NCONV_MIXED && nconv_bw_outer_fits(&d, isa) && (d.s.f >= 8 || !(d.first && isa->conv_wgrad_pad));
    /* a first layer's plain path, through plain copies, beats the channels-last kernel there */
    if (!outer && !wino && (mode == NCONV_MIXED ||
                   (mode == NCONV_CL && (!nconv_cl_fits(&d.s, isa) || (d.first && isa->conv_wgrad_pad)))))
        return nconv_via_plain(c, acts, 2, op_native_conv_bwd_weights, err, errlen);
    bool bias = c->node->attrs.conv.bias;
    d.dy = c->in[0].data;
    d.x = c->in[1].data;
    d.dw = c->out[0].data;
    d.db = bias ? c->out[1].data : NULL;
    int nt = nat_threads(c);
    size_t bytes = wino               ? nconv_wino_wgrad_floats(&d.s, nt) * sizeof(float)
                   : outer            ? nconv_bw_outer_floats(&d) * sizeof(float)
                   : mode == NCONV_CL ? nconv_cl_bw_floats(&d.s, isa) * sizeof(float)
                                      : bw_scratch_max(&d, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv_bwd_weights: out of memory");
    if (wino)
        nconv_wino_bwd_w(&d, isa, nt, scratch);
    else if (outer)
        nconv_bw_outer(&d, mode == NCONV_CL, isa, nt, scratch);
    else if (mode == NCONV_CL)
        nconv_cl_bwd_w(&d, isa, nt, scratch);
    else if (d.first && isa->conv_wgrad_pad)
        nconv_bw_first(&d, isa, nt, scratch);
    else if (d.direct)
        nconv_bw_direct(&d, isa, nt, scratch);
    else
        nconv_bw_gemm(&d, bias, isa, nt, scratch);
    if (owned)
        cnn_mem_aligned_free(scratch);
    return 0;
}
