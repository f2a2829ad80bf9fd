/* Native convolution, forward paths (native_conv.c checks the call and picks one):
 *   GEMM     per group: Y[fpg][N*P] = W[fpg][cpg*kd*kh*kw] * im2col(X)[..][N*P] (vol2col for
 *            3-D: P = od*oh*ow), the columns
 *            running over the whole batch, B packed from a zero-padded copy of the input
 *            (runs of an input row copied whole, no bounds checks; the same copy serves the
 *            backward-weights GEMM), the store applying the fused epilogue bias -> + residual
 *            -> activation; fused max pooling runs over the finished planes.
 *   direct   groups with few filters (depthwise): one output plane per item through the ISA's
 *            direct loop, then the same epilogue and pooling.
 * Also the forward half of backward data at stride 1 (native_conv_bwd.c). */
#include <math.h>
#include <string.h>

#include "ops/native/native_conv.h"
#include "ops/native/native_par.h"

/* ---- the zero-padded input the GEMM paths read (im2col without bounds checks) ---- */

/* The padded input's dimensions (nothing placed yet). */
void nconv_pad_layout(padded_in *pi, const cshape *s)
{
    pi->n = s->n;
    pi->c = s->c;
    pi->d = s->g.d;
    pi->h = s->h;
    pi->w = s->w;
    pi->pd = s->g.pd;
    pi->ph = s->g.ph;
    pi->pw = s->g.pw;
    pi->padded = pi->pd > 0 || pi->ph > 0 || pi->pw > 0;
    pi->dp = pi->d + 2 * pi->pd;
    pi->hp = pi->h + 2 * pi->ph;
    pi->wp = pi->w + 2 * pi->pw;
    pi->plane = pi->dp * pi->hp * pi->wp;
}

/* Floats of scratch for the padded copy and the offsets. */
size_t nconv_pad_floats(const padded_in *pi, const cshape *s)
{
    size_t f = op_native_round16((size_t)s->kf * 2);
    if (pi->padded)
        f += op_native_round16((size_t)nconv_pad_total(pi));
    return f;
}

/* Places the padded copy and the offsets in scratch (nconv_pad_floats of it) and fills the
 * offsets: vol2col (im2col for 2-D) as a table of patch-row offsets. */
void nconv_pad_bind(padded_in *pi, const cshape *s, const float *x, float *scratch)
{
    pi->x = x;
    pi->xp = pi->padded ? scratch : x;
    pi->koff = (int64_t *)(scratch +
                           (pi->padded ? op_native_round16((size_t)nconv_pad_total(pi)) : 0));
    const op_native_convg *g = &s->g;
    int64_t k = 0, hwp = pi->hp * pi->wp;
    for (int64_t ch = 0; ch < s->cpg; ch++)
        for (int64_t a = 0; a < g->kd; a++)
            for (int64_t i = 0; i < g->kh; i++)
                for (int64_t j = 0; j < g->kw; j++)
                    pi->koff[k++] = ch * pi->plane + a * g->dd * hwp + i * g->dh * pi->wp +
                                    j * g->dw;
}

/* Input channel item (n*C + c) into its zero-padded copy (plain loops: the rows are short,
 * library calls would cost more than the copying); pd whole zero slices before and after. */
void nconv_pad_item(const padded_in *pi, int64_t item)
{
    int64_t ph = pi->ph, pw = pi->pw, w = pi->w, wp = pi->wp, hwp = pi->hp * wp;
    float *base = (float *)pi->xp + item * pi->plane;
    for (int64_t k = 0; k < pi->pd * hwp; k++)
        base[k] = 0.0f;
    for (int64_t z = 0; z < pi->d; z++) {
        const float *src = pi->x + (item * pi->d + z) * pi->h * w;
        float *dst = base + (pi->pd + z) * hwp;
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
    float *after = base + (pi->pd + pi->d) * hwp;
    for (int64_t k = 0; k < pi->pd * hwp; k++)
        after[k] = 0.0f;
}

/* ---- forward ---- */

/* Max pooling of one activated plane src [oh][ow] into dst [yh][yw]; padding never wins. */
static void pool_plane(const conv_fwd *f, const float *src, float *dst)
{
    int64_t oh = f->s.g.oh, ow = f->s.g.ow;
    if (f->psh == 2 && f->psw == 2 && f->pst_h == 2 && f->pst_w == 2 && f->pph == 0 && f->ppw == 0 &&
        2 * f->yh <= oh && 2 * f->yw <= ow) {
        /* the common 2x2 window at stride 2, unpadded: the same compares in the same order,
         * branch-free over the output row */
        for (int64_t oy = 0; oy < f->yh; oy++) {
            const float *restrict r0 = src + 2 * oy * ow, *restrict r1 = r0 + ow;
            float *restrict d = dst + oy * f->yw;
#pragma omp simd
            for (int64_t ox = 0; ox < f->yw; ox++) {
                float m = -INFINITY, a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], e = r1[2 * ox + 1];
                m = a > m ? a : m;
                m = b > m ? b : m;
                m = c > m ? c : m;
                m = e > m ? e : m;
                d[ox] = m;
            }
        }
        return;
    }
    for (int64_t oy = 0; oy < f->yh; oy++) {
        int64_t h0, h1;
        nconv_pool_range(oy, f->pst_h, f->pph, f->psh, oh, &h0, &h1);
        for (int64_t ox = 0; ox < f->yw; ox++) {
            int64_t w0, w1;
            nconv_pool_range(ox, f->pst_w, f->ppw, f->psw, ow, &w0, &w1);
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
    nconv_pad_item(&((const conv_fwd *)ctx)->in, item);
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
    int nseg = nconv_make_segs(&f->s, &f->in, col0, ncols, seg);
    int64_t off = b * f->s.cpg * f->in.plane;
    isa->pack_seg(f->in.xp + off, nconv_pad_total(&f->in) - off, f->in.koff + k0, kc, seg,
                  nseg, f->s.g.sw, ncols, isa->nr, dst);
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

int64_t nconv_first_wp(const cshape *s)
{
    return (int64_t)op_native_round16((size_t)(s->w + 2 * s->g.pw + 32));
}

size_t nconv_first_pad_floats(const cshape *s)
{
    return op_native_round16((size_t)(s->cpg * (s->h + 1) * nconv_first_wp(s)));
}

void nconv_first_pad(const cshape *s, const float *x, int64_t n, float *xp)
{
    int64_t wp = nconv_first_wp(s);
    memset(xp, 0, nconv_first_pad_floats(s) * sizeof(float));
    for (int64_t c = 0; c < s->cpg; c++)
        for (int64_t r = 0; r < s->h; r++)
            memcpy(xp + (c * (s->h + 1) + r) * wp + s->g.pw, x + ((n * s->c + c) * s->h + r) * s->w,
                   (size_t)s->w * sizeof(float));
}

#define FIRST_NF 3 /* a first layer's filters per conv_plane_pad call */

/* Fills sc for isa (laying out f->in on the GEMM path); returns the bytes of all parts. */
size_t nconv_fwd_scratch_parts(conv_fwd *f, const op_native_isa *isa, int nt, fwd_scratch *sc)
{
    memset(sc, 0, sizeof *sc);
    if (f->direct) {
        sc->gemm = (size_t)nt * (op_native_round16((size_t)f->s.p) * (f->first ? FIRST_NF : 1) +
                                 (f->first ? nconv_first_pad_floats(&f->s) : 0));
    } else {
        op_native_gemm gm;
        nconv_pad_layout(&f->in, &f->s);
        fwd_gemm_spec(f, &gm);
        sc->gemm = op_native_gemm_scratch(&gm, isa, nt) / sizeof(float);
        if (f->pool && !f->kept)
            sc->pool = op_native_round16((size_t)(f->s.n * f->s.f * f->s.p));
        sc->pad = nconv_pad_floats(&f->in, &f->s);
    }
    return (sc->gemm + sc->pool + sc->pad) * sizeof(float);
}

/* The epilogue and pooling of item it (image, filter) from its plane acc. */
static void direct_finish(const conv_fwd *f, const op_native_isa *isa, int64_t it, float *acc)
{
    const cshape *s = &f->s;
    int64_t ch = it % s->f;
    float *dst = f->kept ? f->kept + it * s->p : f->pool ? acc : f->y + it * s->p;
    isa->epilogue(dst, acc, s->p, f->b ? f->b[ch] : 0.0f, NULL, f->r ? f->r + it * s->p : NULL, f->act,
                  f->alpha);
    if (f->pool)
        pool_plane(f, dst, f->y + it * f->yh * f->yw);
}

/* Direct path: one output plane per item, into the thread's plane, then epilogue and pool.  A
 * first layer's items are an image's filters FIRST_NF at a time (each input load serves them),
 * in static chunks (an image's items together), the image padded once per thread and run of
 * items. */
static void fwd_direct(conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &f->s;
    size_t plane = op_native_round16((size_t)s->p);
    int64_t items = s->n * s->f;
    if (f->first && isa->conv_plane_pad) {
        size_t per = FIRST_NF * plane + nconv_first_pad_floats(s);
        int64_t wp = nconv_first_wp(s), groups = (s->f + FIRST_NF - 1) / FIRST_NF;
        NAT_PAR(nt, {
            float *acc = scratch + (size_t)nat_tid * per, *xp = acc + FIRST_NF * plane;
            int64_t have = -1;
            NAT_STATIC(it, s->n * groups) {
                int64_t n = it / groups, f0 = it % groups * FIRST_NF;
                int nf = s->f - f0 < FIRST_NF ? (int)(s->f - f0) : FIRST_NF;
                if (n != have)
                    nconv_first_pad(s, f->x, n, xp), have = n;
                isa->conv_plane_pad(&s->g, xp, wp, f->w + f0 * s->kf, s->kf, nf, acc, (int64_t)plane);
                for (int k = 0; k < nf; k++)
                    direct_finish(f, isa, n * s->f + f0 + k, acc + k * plane);
            }
        });
        return;
    }
    size_t per = plane + (f->first ? nconv_first_pad_floats(s) : 0);
    int64_t next = 0;
    NAT_PAR(nt, NAT_DYNAMIC(it, items, next) {
        float *acc = scratch + (size_t)nat_tid * per;
        int64_t n = it / s->f, ch = it % s->f, g = ch / s->fpg;
        const float *x = f->x + (n * s->c + g * s->cpg) * s->h * s->w;
        isa->conv_plane(&s->g, x, f->w + ch * s->kf, acc);
        direct_finish(f, isa, it, acc);
    });
}

/* Runs a set-up forward convolution (data pointers filled in) on its path. */
void nconv_fwd_run(conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    if (f->direct) {
        fwd_direct(f, isa, nt, scratch);
        return;
    }
    fwd_scratch sc;
    nconv_fwd_scratch_parts(f, isa, nt, &sc);
    float *pool = scratch + sc.gemm;
    f->t = f->kept ? f->kept : f->pool ? pool : f->y;
    nconv_pad_bind(&f->in, &f->s, f->x, pool + sc.pool);
    op_native_gemm gm;
    fwd_gemm_spec(f, &gm);
    op_native_gemm_run(&gm, isa, nt, scratch);
}
