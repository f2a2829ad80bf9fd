/* Native convolution: forward (1-D and 2-D, stride, padding, dilation, groups, fused epilogue
 * bias -> + residual -> activation -> max pooling), backward to the data and to the weights
 * and bias.  Layouts as in ops/ref.h (NCHW activations, OIHW weights; 1-D read as height 1).
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
 * on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_geom.h"
#include "ops/native/native_common.h"
#include "ops/native/native_gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define DIRECT_FPG 4  /* groups with fewer filters than this use the direct loop */

static int thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}


/* ---- geometry ---- */

typedef struct cshape {
    int sdims;
    int64_t n, c, h, w, f, groups, cpg, fpg;
    int64_t kf, p;           /* patch length cpg*kh*kw, output positions oh*ow */
    op_native_convg g;       /* one group of one image */
} cshape;

/* Checks the attributes against input x and weight wt (op_conv_geom_make, as every backend
 * does) and fills s. */
static int conv_shape(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                      const char *name, cshape *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    op_conv_geom cg;
    if (op_conv_geom_make(a, x, wt, name, &cg, err, errlen))
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
    s->kf = s->cpg * g->kh * g->kw;
    s->p = g->oh * g->ow;
    return 0;
}


/* ---- the zero-padded input the GEMM paths read (im2col without bounds checks) ---- */

typedef struct padded_in {
    const float *x;        /* [n][c][h][w] */
    const float *xp;       /* its zero-padded copy [n][c][hp][wp], or x without padding */
    int64_t n, c, h, w, ph, pw, hp, wp;
    bool padded;
    int64_t *koff;         /* per patch row (c, i, j) of a group: c*hp*wp + i*dh*wp + j*dw */
} padded_in;

static void pad_layout(padded_in *pi, const cshape *s)
{
    pi->n = s->n;
    pi->c = s->c;
    pi->h = s->h;
    pi->w = s->w;
    pi->ph = s->g.ph;
    pi->pw = s->g.pw;
    pi->padded = pi->ph > 0 || pi->pw > 0;
    pi->hp = pi->h + 2 * pi->ph;
    pi->wp = pi->w + 2 * pi->pw;
}

/* Floats in the (padded) input. */
static int64_t pad_total(const padded_in *pi) { return pi->n * pi->c * pi->hp * pi->wp; }

/* Floats of scratch for the padded copy and the offsets. */
static size_t pad_floats(const padded_in *pi, const cshape *s)
{
    size_t f = op_native_round16((size_t)s->kf * 2);
    if (pi->padded)
        f += op_native_round16((size_t)(pi->n * pi->c * pi->hp * pi->wp));
    return f;
}

/* Places the padded copy and the offsets in scratch (pad_floats of it) and fills the offsets. */
static void pad_bind(padded_in *pi, const cshape *s, const float *x, float *scratch)
{
    pi->x = x;
    pi->xp = pi->padded ? scratch : x;
    pi->koff = (int64_t *)(scratch + (pi->padded ? op_native_round16((size_t)(pi->n * pi->c *
                                                                             pi->hp * pi->wp))
                                                 : 0));
    const op_native_convg *g = &s->g;
    int64_t k = 0;
    for (int64_t ch = 0; ch < s->cpg; ch++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++)
                pi->koff[k++] = ch * pi->hp * pi->wp + i * g->dh * pi->wp + j * g->dw;
}

/* Input plane item (n*C + c) into its zero-padded copy (plain loops: the rows are short,
 * library calls would cost more than the copying). */
static void pad_item(const padded_in *pi, int64_t item)
{
    const float *src = pi->x + item * pi->h * pi->w;
    float *dst = (float *)pi->xp + item * pi->hp * pi->wp;
    int64_t ph = pi->ph, pw = pi->pw, w = pi->w, wp = pi->wp;
    for (int64_t k = 0; k < ph * wp; k++)
        dst[k] = 0.0f;
    for (int64_t i = 0; i < pi->h; i++) {
        float *d = dst + (i + ph) * wp;
        const float *r = src + i * w;
        for (int64_t k = 0; k < pw; k++)
            d[k] = 0.0f;
        for (int64_t k = 0; k < w; k++)
            d[pw + k] = r[k];
        for (int64_t k = pw + w; k < wp; k++)
            d[k] = 0.0f;
    }
    float *tail = dst + (ph + pi->h) * wp;
    for (int64_t k = 0; k < ph * wp; k++)
        tail[k] = 0.0f;
}

/* The runs of output positions col0 .. col0+ncols (numbered over the whole batch, n*P + p)
 * as segments of the padded input; returns their number (at most ncols + 1). */
static int make_segs(const cshape *s, const padded_in *pi, int64_t col0, int64_t ncols,
                     op_native_seg *seg)
{
    const op_native_convg *g = &s->g;
    int nseg = 0;
    int64_t n = col0 / s->p, p = col0 % s->p, oy = p / g->ow, ox = p % g->ow;
    int64_t img = pi->c * pi->hp * pi->wp;
    for (int64_t done = 0; done < ncols;) {
        int64_t len = g->ow - ox < ncols - done ? g->ow - ox : ncols - done;
        seg[nseg].src = n * img + oy * g->sh * pi->wp + ox * g->sw;
        seg[nseg].dst = (int32_t)done;
        seg[nseg].len = (int32_t)len;
        nseg++;
        done += len;
        ox = 0;
        if (++oy == g->oh) {
            oy = 0;
            n++;
        }
    }
    return nseg;
}

/* ---- forward ---- */

typedef struct conv_fwd {
    cshape s;
    const float *x, *w, *b, *r;
    float *y;             /* the output */
    float *t;             /* the convolution's output before pooling (y without pooling) */
    op_act act;
    float alpha;
    bool pool;
    int64_t psh, psw, pst_h, pst_w, pph, ppw, yh, yw;
    bool direct;
    padded_in in;         /* the GEMM path's view of x */
} conv_fwd;

/* Validates a forward call and fills f (no data pointers needed). */
static int fwd_setup(const op_call *c, bool data, conv_fwd *f, char *err, size_t errlen)
{
    const char *name = "native conv";
    memset(f, 0, sizeof *f);
    if (nat_check_call(c, name, 2, 4, 1, 1, data, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: expected %d inputs (bias %s, residual %s), got %d",
                        name, want, a->bias ? "on" : "off", a->residual ? "on" : "off", c->nin);
    if (conv_shape(a, &c->in[0], &c->in[1], name, &f->s, err, errlen))
        return -1;
    const cshape *s = &f->s;
    int k = 2;
    if (a->bias) {
        if (c->in[k].rank != 1 || c->in[k].d[0] != s->f)
            return ref_fail(err, errlen, "%s: bias has %lld elements, expected [%lld]", name,
                            (long long)ref_numel(&c->in[k]), (long long)s->f);
        k++;
    }
    if (a->residual &&
        op_conv_check_act(&c->in[k], a->sdims, s->n, s->f, s->g.oh, s->g.ow, name, "residual", err, errlen))
        return -1;
    f->act = a->act;
    f->alpha = a->alpha;
    f->yh = s->g.oh;
    f->yw = s->g.ow;
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
    if (op_conv_check_act(&c->out[0], a->sdims, s->n, s->f, f->yh, f->yw, name, "output", err, errlen))
        return -1;
    f->direct = s->fpg < DIRECT_FPG;
    return 0;
}

/* Max pooling of one activated plane src [oh][ow] into dst [yh][yw]; padding never wins. */
static void pool_plane(const conv_fwd *f, const float *src, float *dst)
{
    int64_t oh = f->s.g.oh, ow = f->s.g.ow;
    for (int64_t oy = 0; oy < f->yh; oy++) {
        int64_t h0 = oy * f->pst_h - f->pph, h1 = h0 + f->psh;
        h0 = h0 < 0 ? 0 : h0;
        h1 = h1 > oh ? oh : h1;
        for (int64_t ox = 0; ox < f->yw; ox++) {
            int64_t w0 = ox * f->pst_w - f->ppw, w1 = w0 + f->psw;
            w0 = w0 < 0 ? 0 : w0;
            w1 = w1 > ow ? ow : w1;
            float m = -INFINITY;
            for (int64_t i = h0; i < h1; i++)
                for (int64_t j = w0; j < w1; j++)
                    m = src[i * ow + j] > m ? src[i * ow + j] : m;
            dst[oy * f->yw + ox] = m;
        }
    }
}

static void fwd_pad_item(void *ctx, const op_native_isa *isa, int64_t item)
{
    (void)isa;
    pad_item(&((const conv_fwd *)ctx)->in, item);
}

static void fwd_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                       int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    const conv_fwd *f = ctx;
    const float *src = f->w + (a * f->s.fpg + row0) * f->s.kf + k0;
    isa->pack_t(src, f->s.kf, nrows, kc, isa->mr, dst);
}

/* B of group b: columns are (image, output position) pairs over the whole batch. */
static void fwd_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                       int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    const conv_fwd *f = ctx;
    op_native_seg seg[OP_NATIVE_MAX_NR + 1];
    int nseg = make_segs(&f->s, &f->in, col0, ncols, seg);
    int64_t off = b * f->s.cpg * f->in.hp * f->in.wp;
    isa->pack_seg(f->in.xp + off, pad_total(&f->in) - off, f->in.koff + k0, kc, seg, nseg,
                  f->s.g.sw, ncols, isa->nr, dst);
}

static void fwd_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                      int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    const conv_fwd *f = ctx;
    for (int64_t r = 0; r < nrows; r++) {
        int64_t ch = b * f->s.fpg + row0 + r;
        float bias = f->b ? f->b[ch] : 0.0f;
        for (int64_t col = col0; col < col0 + ncols;) {
            int64_t n = col / f->s.p, p = col % f->s.p;
            int64_t len = f->s.p - p < col0 + ncols - col ? f->s.p - p : col0 + ncols - col;
            int64_t off = (n * f->s.f + ch) * f->s.p + p;
            isa->epilogue(f->t + off, src + r * ld + (col - col0), len, bias, NULL,
                          f->r ? f->r + off : NULL, f->act, f->alpha);
            col += len;
        }
    }
}

static void fwd_pool_item(void *ctx, const op_native_isa *isa, int64_t item)
{
    (void)isa;
    const conv_fwd *f = ctx;
    pool_plane(f, f->t + item * f->s.p, f->y + item * f->yh * f->yw);
}

static void fwd_gemm_spec(conv_fwd *f, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = f->s.fpg;
    gm->n = f->s.n * f->s.p;
    gm->k = f->s.kf;
    gm->nprob = f->s.groups;
    gm->na = f->s.groups;
    gm->ksplit = 1;
    gm->ctx = f;
    gm->pack_a = fwd_pack_a;
    gm->pack_b = fwd_pack_b;
    gm->store = fwd_store;
    if (f->in.padded) {
        gm->pre = fwd_pad_item;
        gm->npre = f->s.n * f->s.c;
    }
    if (f->pool) {
        gm->post = fwd_pool_item;
        gm->npost = f->s.n * f->s.f;
    }
}

/* Scratch of a forward convolution, in this order: the GEMM's (or the direct loop's planes),
 * the unpooled output when pooling is fused, the padded input and the patch offsets. */
typedef struct fwd_scratch {
    size_t gemm, pool, pad;  /* floats */
} fwd_scratch;

static size_t fwd_scratch_parts(conv_fwd *f, const op_native_isa *isa, int nt, fwd_scratch *sc)
{
    memset(sc, 0, sizeof *sc);
    if (f->direct) {
        sc->gemm = (size_t)nt * op_native_round16((size_t)f->s.p);
    } else {
        op_native_gemm gm;
        pad_layout(&f->in, &f->s);
        fwd_gemm_spec(f, &gm);
        sc->gemm = op_native_gemm_scratch(&gm, isa, nt) / sizeof(float);
        if (f->pool)
            sc->pool = op_native_round16((size_t)(f->s.n * f->s.f * f->s.p));
        sc->pad = pad_floats(&f->in, &f->s);
    }
    return (sc->gemm + sc->pool + sc->pad) * sizeof(float);
}

/* The largest scratch any ISA level could ask for (the level may be forced after prepare). */
static size_t fwd_scratch_max(conv_fwd *f, int nt)
{
    size_t best = 0;
    fwd_scratch sc;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = fwd_scratch_parts(f, nat_isa_level(l), nt, &sc);
        best = b > best ? b : best;
    }
    return best;
}

/* Direct path: one output plane per item, into the thread's plane, then epilogue and pool. */
static void fwd_direct(conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &f->s;
    size_t plane = op_native_round16((size_t)s->p);
    int64_t items = s->n * s->f;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t it = 0; it < items; it++) {
        float *acc = scratch + (size_t)thread_num() * plane;
        int64_t n = it / s->f, ch = it % s->f, g = ch / s->fpg;
        const float *x = f->x + (n * s->c + g * s->cpg) * s->h * s->w;
        isa->conv_plane(&s->g, x, f->w + ch * s->kf, acc);
        float *dst = f->pool ? acc : f->y + it * s->p;
        isa->epilogue(dst, acc, s->p, f->b ? f->b[ch] : 0.0f, NULL,
                      f->r ? f->r + it * s->p : NULL, f->act, f->alpha);
        if (f->pool)
            pool_plane(f, acc, f->y + it * f->yh * f->yw);
    }
}

/* Runs a set-up forward convolution (data pointers filled in). */
static void fwd_run(conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    if (f->direct) {
        fwd_direct(f, isa, nt, scratch);
        return;
    }
    fwd_scratch sc;
    fwd_scratch_parts(f, isa, nt, &sc);
    float *pool = scratch + sc.gemm;
    f->t = f->pool ? pool : f->y;
    pad_bind(&f->in, &f->s, f->x, pool + sc.pool);
    op_native_gemm gm;
    fwd_gemm_spec(f, &gm);
    op_native_gemm_run(&gm, isa, nt, scratch);
}

size_t op_native_conv_scratch(const op_call *c)
{
    conv_fwd f;
    if (fwd_setup(c, false, &f, NULL, 0))
        return 0;
    return fwd_scratch_max(&f, nat_threads(c));
}

int op_native_conv(op_call *c, char *err, size_t errlen)
{
    conv_fwd f;
    if (fwd_setup(c, true, &f, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int k = 2;
    f.x = c->in[0].data;
    f.w = c->in[1].data;
    f.b = a->bias ? c->in[k++].data : NULL;
    f.r = a->residual ? c->in[k++].data : NULL;
    f.y = c->out[0].data;
    if (ref_numel(&c->out[0]) == 0)
        return 0;
    const op_native_isa *isa = op_native_isa_table();
    int nt = nat_threads(c);
    size_t bytes = fwd_scratch_max(&f, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv: out of memory");
    fwd_run(&f, isa, nt, scratch);
    if (owned)
        free(scratch);
    return 0;
}

/* ---- backward to the data ---- */

typedef struct conv_bwd_data {
    cshape s;              /* the forward convolution: x = dx, y = dy */
    bool transform;        /* stride 1: a forward convolution of dy with flipped weights */
    conv_fwd fw;           /* that convolution */
    const float *dy, *w;
    float *dx;
} conv_bwd_data;

static int bwd_data_setup(const op_call *c, bool data, conv_bwd_data *d, char *err,
                          size_t errlen)
{
    const char *name = "native conv_bwd_data";
    memset(d, 0, sizeof *d);
    if (nat_check_call(c, name, 2, 2, 1, 1, data, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    if (conv_shape(a, &c->out[0], &c->in[1], name, &d->s, err, errlen))
        return -1;
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    if (op_conv_check_act(&c->in[0], a->sdims, s->n, s->f, g->oh, g->ow, name, "dy", err, errlen))
        return -1;
    d->transform = g->sh == 1 && g->sw == 1 && g->ph <= g->dh * (g->kh - 1) &&
                   g->pw <= g->dw * (g->kw - 1);
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
        t->kf = t->cpg * g->kh * g->kw;
        t->p = s->h * s->w;
        f->act = OP_ACT_NONE;
        f->yh = s->h;
        f->yw = s->w;
        f->direct = t->fpg < DIRECT_FPG;
    }
    return 0;
}

/* The transformed weights W'[g*cpg + c][f][i][j] = W[g*fpg + f][c][kh-1-i][kw-1-j]. */
static void flip_weights(const conv_bwd_data *d, float *wt)
{
    const cshape *s = &d->s;
    int64_t khw = s->g.kh * s->g.kw;
    for (int64_t g = 0; g < s->groups; g++)
        for (int64_t f = 0; f < s->fpg; f++)
            for (int64_t ch = 0; ch < s->cpg; ch++) {
                const float *src = d->w + ((g * s->fpg + f) * s->cpg + ch) * khw;
                float *dst = wt + ((g * s->cpg + ch) * s->fpg + f) * khw;
                for (int64_t t = 0; t < khw; t++)
                    dst[t] = src[khw - 1 - t];
            }
}

static void bd_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                      int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    const conv_bwd_data *d = ctx;
    const float *src = d->w + (a * d->s.fpg + k0) * d->s.kf + row0;
    isa->pack_n(src, d->s.kf, nrows, kc, isa->mr, dst);
}

static void bd_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                      int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    const conv_bwd_data *d = ctx;
    int64_t n = b / d->s.groups, g = b % d->s.groups;
    const float *src = d->dy + (n * d->s.f + g * d->s.fpg + k0) * d->s.p + col0;
    isa->pack_n(src, d->s.p, ncols, kc, isa->nr, dst);
}

/* The outputs o in [*lo, *hi) whose tap at offset off (tap index times dilation) reads inside
 * an input of size in: 0 <= o*s - p + off < in. */
static void tap_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t off, int64_t *lo,
                      int64_t *hi)
{
    int64_t first = p - off, last = in - 1 + p - off;
    int64_t l = first <= 0 ? 0 : (first + s - 1) / s;
    int64_t h = last < 0 ? 0 : last / s + 1;
    *hi = h > out ? out : h;
    *lo = l > *hi ? *hi : l;
}

/* col2im: adds rows (c, i, j) of the column block to dx, an output row's run at a time. */
static void bd_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                     int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)isa;
    const conv_bwd_data *d = ctx;
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    int64_t n = b / s->groups, grp = b % s->groups, khw = g->kh * g->kw;
    /* the block's columns as runs within output rows: (oy, first ox, length, first column) */
    int64_t nrun = 0, cap = ncols / (g->ow > 0 ? g->ow : 1) + 2;
    int64_t runs[cap][4];
    for (int64_t q = 0, p = col0; q < ncols;) {
        int64_t oy = p / g->ow, ox = p % g->ow;
        int64_t len = g->ow - ox < ncols - q ? g->ow - ox : ncols - q;
        runs[nrun][0] = oy;
        runs[nrun][1] = ox;
        runs[nrun][2] = len;
        runs[nrun][3] = q;
        nrun++;
        q += len;
        p += len;
    }
    for (int64_t r = 0; r < nrows; r++) {
        int64_t m = row0 + r, ch = m / khw, i = (m % khw) / g->kw, j = m % g->kw;
        float *dxp = d->dx + (n * s->c + grp * s->cpg + ch) * s->h * s->w;
        const float *sr = src + r * ld;
        int64_t lo, hi, xoff = j * g->dw - g->pw;
        tap_range(g->ow, s->w, g->sw, g->pw, j * g->dw, &lo, &hi);
        for (int64_t u = 0; u < nrun; u++) {
            int64_t iy = runs[u][0] * g->sh - g->ph + i * g->dh;
            if (iy < 0 || iy >= s->h)
                continue;
            int64_t a0 = lo > runs[u][1] ? lo : runs[u][1];
            int64_t a1 = hi < runs[u][1] + runs[u][2] ? hi : runs[u][1] + runs[u][2];
            const float *sv = sr + runs[u][3] + (a0 - runs[u][1]);
            float *dv = dxp + iy * s->w + a0 * g->sw + xoff;
            if (g->sw == 1) {
                for (int64_t t = 0; t < a1 - a0; t++)
                    dv[t] += sv[t];
            } else {
                for (int64_t t = 0; t < a1 - a0; t++)
                    dv[t * g->sw] += sv[t];
            }
        }
    }
}

static void bd_zero(void *ctx, const op_native_isa *isa, int64_t item)
{
    (void)isa;
    const conv_bwd_data *d = ctx;
    memset(d->dx + item * d->s.h * d->s.w, 0, (size_t)(d->s.h * d->s.w) * sizeof(float));
}

static void bd_gemm_spec(conv_bwd_data *d, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = d->s.kf;
    gm->n = d->s.p;
    gm->k = d->s.fpg;
    gm->nprob = d->s.n * d->s.groups;
    gm->na = d->s.groups;
    gm->own_rows = true;
    gm->row_align = d->s.g.kh * d->s.g.kw;
    gm->ksplit = 1;
    gm->ctx = d;
    gm->pack_a = bd_pack_a;
    gm->pack_b = bd_pack_b;
    gm->store = bd_store;
    gm->pre = bd_zero;
    gm->npre = d->s.n * d->s.c;
}

static size_t bd_scratch_bytes(conv_bwd_data *d, const op_native_isa *isa, int nt)
{
    fwd_scratch sc;
    if (d->transform)
        return op_native_round16((size_t)(d->s.f * d->s.kf)) * sizeof(float) +
               fwd_scratch_parts(&d->fw, isa, nt, &sc);
    op_native_gemm gm;
    bd_gemm_spec(d, &gm);
    return op_native_gemm_scratch(&gm, isa, nt);
}

static size_t bd_scratch_max(conv_bwd_data *d, int nt)
{
    size_t best = 0;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = bd_scratch_bytes(d, nat_isa_level(l), nt);
        best = b > best ? b : best;
    }
    return best;
}

size_t op_native_conv_bwd_data_scratch(const op_call *c)
{
    conv_bwd_data d;
    if (bwd_data_setup(c, false, &d, NULL, 0))
        return 0;
    return bd_scratch_max(&d, nat_threads(c));
}

int op_native_conv_bwd_data(op_call *c, char *err, size_t errlen)
{
    conv_bwd_data d;
    if (bwd_data_setup(c, true, &d, err, errlen))
        return -1;
    d.dy = c->in[0].data;
    d.w = c->in[1].data;
    d.dx = c->out[0].data;
    if (ref_numel(&c->out[0]) == 0)
        return 0;
    const op_native_isa *isa = op_native_isa_table();
    int nt = nat_threads(c);
    size_t bytes = bd_scratch_max(&d, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv_bwd_data: out of memory");
    if (d.transform) {
        float *wt = scratch;
        flip_weights(&d, wt);
        d.fw.x = d.dy;
        d.fw.w = wt;
        d.fw.y = d.dx;
        fwd_run(&d.fw, isa, nt, wt + op_native_round16((size_t)(d.s.f * d.s.kf)));
    } else {
        op_native_gemm gm;
        bd_gemm_spec(&d, &gm);
        op_native_gemm_run(&gm, isa, nt, scratch);
    }
    if (owned)
        free(scratch);
    return 0;
}

/* ---- backward to the weights ---- */

typedef struct conv_bwd_w {
    cshape s;
    const float *dy, *x;
    float *dw, *db;
    int64_t ksplit;
    padded_in in;
    bool direct;           /* few filters per group: per (filter, channel) pair, no GEMM */
} conv_bwd_w;

static int bwd_w_setup(const op_call *c, bool data, conv_bwd_w *d, char *err, size_t errlen)
{
    const char *name = "native conv_bwd_weights";
    memset(d, 0, sizeof *d);
    if (nat_check_call(c, name, 2, 2, 1, 2, data, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = a->bias ? 2 : 1;
    if (c->nout != want)
        return ref_fail(err, errlen, "%s: expected %d outputs (bias %s), got %d", name, want,
                        a->bias ? "on" : "off", c->nout);
    if (conv_shape(a, &c->in[1], &c->out[0], name, &d->s, err, errlen))
        return -1;
    const cshape *s = &d->s;
    if (op_conv_check_act(&c->in[0], a->sdims, s->n, s->f, s->g.oh, s->g.ow, name, "dy", err, errlen))
        return -1;
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != s->f))
        return ref_fail(err, errlen, "%s: bias gradient has %lld elements, expected [%lld]",
                        name, (long long)ref_numel(&c->out[1]), (long long)s->f);
    /* Split the images into parts when the weight matrix gives too few column jobs to keep
     * the threads busy; decided by the shapes alone, so results do not vary with threads. */
    int64_t cols = s->groups * ((s->kf + 63) / 64);
    d->ksplit = cols >= 8 ? 1 : (8 + cols - 1) / cols;
    if (d->ksplit > s->n)
        d->ksplit = s->n > 0 ? s->n : 1;
    pad_layout(&d->in, s);
    d->direct = s->fpg < DIRECT_FPG;
    return 0;
}

static void bw_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                      int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    const conv_bwd_w *d = ctx;
    int64_t img = k0 / d->s.p, p0 = k0 % d->s.p;
    const float *src = d->dy + (img * d->s.f + a * d->s.fpg + row0) * d->s.p + p0;
    isa->pack_t(src, d->s.p, nrows, kc, isa->mr, dst);
}

/* B = im2col(x)^T of one image: the patch rows gathered from the padded input into a
 * row-major block (pack_seg), then transposed into the panel (pack_t). */
static void bw_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                      int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    const conv_bwd_w *d = ctx;
    op_native_seg seg[OP_NATIVE_KC_MAX + 1];
    float rows[OP_NATIVE_MAX_NR * OP_NATIVE_KC_MAX];
    int nseg = make_segs(&d->s, &d->in, k0, kc, seg);
    int64_t off = b * d->s.cpg * d->in.hp * d->in.wp;
    isa->pack_seg(d->in.xp + off, pad_total(&d->in) - off, d->in.koff + col0, ncols, seg, nseg,
                  d->s.g.sw, kc, (int)kc, rows);
    isa->pack_t(rows, kc, ncols, kc, isa->nr, dst);
}

static void bw_pad_item(void *ctx, const op_native_isa *isa, int64_t item)
{
    (void)isa;
    pad_item(&((const conv_bwd_w *)ctx)->in, item);
}

static void bw_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                     int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)isa;
    const conv_bwd_w *d = ctx;
    for (int64_t r = 0; r < nrows; r++)
        memcpy(d->dw + (b * d->s.fpg + row0 + r) * d->s.kf + col0, src + r * ld,
               (size_t)ncols * sizeof(float));
}

/* db[f]: each image's plane summed in 8 float lanes, the images' sums added in double. */
static void bw_bias(void *ctx, const op_native_isa *isa, int64_t f)
{
    (void)isa;
    const conv_bwd_w *d = ctx;
    double acc = 0.0;
    for (int64_t n = 0; n < d->s.n; n++) {
        const float *p = d->dy + (n * d->s.f + f) * d->s.p;
        float lane[8] = {0};
        int64_t k = 0;
        for (; k + 8 <= d->s.p; k += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += p[k + l];
        double part = 0.0;
        for (int l = 0; l < 8; l++)
            part += lane[l];
        for (; k < d->s.p; k++)
            part += p[k];
        acc += part;
    }
    d->db[f] = (float)acc;
}

static void bw_gemm_spec(conv_bwd_w *d, bool bias, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = d->s.fpg;
    gm->n = d->s.kf;
    gm->k = d->s.n * d->s.p;
    gm->kseg = d->s.p;
    gm->nprob = d->s.groups;
    gm->na = d->s.groups;
    gm->ksplit = d->ksplit;
    gm->ctx = d;
    gm->pack_a = bw_pack_a;
    gm->pack_b = bw_pack_b;
    gm->store = bw_store;
    if (d->in.padded) {
        gm->pre = bw_pad_item;
        gm->npre = d->s.n * d->s.c;
    }
    if (bias) {
        gm->post = bw_bias;
        gm->npost = d->s.f;
    }
}

/* The GEMM's scratch (the largest over the ISA levels), then the padded input and offsets. */
static size_t bw_gemm_floats(conv_bwd_w *d, int nt)
{
    op_native_gemm gm;
    bw_gemm_spec(d, false, &gm);
    size_t best = 0;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = op_native_gemm_scratch(&gm, nat_isa_level(l), nt);
        best = b > best ? b : best;
    }
    return op_native_round16(best / sizeof(float));
}

static size_t bw_scratch_max(conv_bwd_w *d, int nt)
{
    if (d->direct) /* each thread's kh*kw double accumulators */
        return (size_t)nt * op_native_round16((size_t)(2 * d->s.g.kh * d->s.g.kw)) * sizeof(float);
    return (bw_gemm_floats(d, nt) + pad_floats(&d->in, &d->s)) * sizeof(float);
}

/* Direct path: one (filter, channel) pair per item, summed over the images in order; then the
 * bias gradient. */
static void bw_direct(conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    int64_t khw = s->g.kh * s->g.kw, items = s->f * s->cpg;
    size_t per = op_native_round16((size_t)(2 * khw));
#pragma omp parallel num_threads(nt)
    {
        double *acc = (double *)(scratch + (size_t)thread_num() * per);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            int64_t f = it / s->cpg, cl = it % s->cpg, ch = (f / s->fpg) * s->cpg + cl;
            for (int64_t t = 0; t < khw; t++)
                acc[t] = 0.0;
            for (int64_t n = 0; n < s->n; n++)
                isa->conv_wgrad(&s->g, d->x + (n * s->c + ch) * s->h * s->w,
                                d->dy + (n * s->f + f) * s->p, acc);
            for (int64_t t = 0; t < khw; t++)
                d->dw[it * khw + t] = (float)acc[t];
        }
        if (d->db) {
#pragma omp for schedule(static)
            for (int64_t f = 0; f < s->f; f++)
                bw_bias(d, isa, f);
        }
    }
}

size_t op_native_conv_bwd_weights_scratch(const op_call *c)
{
    conv_bwd_w d;
    if (bwd_w_setup(c, false, &d, NULL, 0))
        return 0;
    return bw_scratch_max(&d, nat_threads(c));
}

int op_native_conv_bwd_weights(op_call *c, char *err, size_t errlen)
{
    conv_bwd_w d;
    if (bwd_w_setup(c, true, &d, err, errlen))
        return -1;
    bool bias = c->node->attrs.conv.bias;
    d.dy = c->in[0].data;
    d.x = c->in[1].data;
    d.dw = c->out[0].data;
    d.db = bias ? c->out[1].data : NULL;
    const op_native_isa *isa = op_native_isa_table();
    int nt = nat_threads(c);
    size_t bytes = bw_scratch_max(&d, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "native conv_bwd_weights: out of memory");
    if (d.direct) {
        bw_direct(&d, isa, nt, scratch);
        if (owned)
            free(scratch);
        return 0;
    }
    pad_bind(&d.in, &d.s, d.x, scratch + bw_gemm_floats(&d, nt));
    op_native_gemm gm;
    bw_gemm_spec(&d, bias, &gm);
    op_native_gemm_run(&gm, isa, nt, scratch);
    if (owned)
        free(scratch);
    return 0;
}
