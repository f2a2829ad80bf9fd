/* Native convolution, backward paths (native_conv.c checks the call and picks one; 3-D
 * convolutions take the GEMM paths, with vol2col in place of im2col):
 *   backward data  stride 1: the forward convolution (native_conv_fwd.c) of dY with the
 *                  flipped, transposed weights (nconv_flip_weights; padding dil*(k-1) - pad);
 *                  otherwise col = W^T dY per image and group, scattered back (col2im) by
 *                  jobs that own whole input channels.
 *   backward wts   dW[fpg][cpg*kh*kw] = sum over images of dY * im2col(X)^T, the images
 *                  being the GEMM's K (split into fixed parts when columns are few), im2col
 *                  gathered from the padded input and transposed in registers; direct loops
 *                  for few filters per group; db sums dY. */
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/native_conv.h"

/* ---- backward to the data ---- */

/* The transformed weights W'[g*cpg + c][f][a][i][j] = W[g*fpg + f][c][kd-1-a][kh-1-i][kw-1-j]
 * (the taps of a channel reversed as one run flip every axis). */
void nconv_flip_weights(const conv_bwd_data *d, float *wt)
{
    const cshape *s = &d->s;
    int64_t khw = s->g.kd * s->g.kh * s->g.kw;
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

/* The block's columns col0 .. col0+ncols as runs within output rows: (oz, oy, first ox,
 * length, first column); returns their number. */
static int64_t bd_runs(const op_native_convg *g, int64_t col0, int64_t ncols, int64_t (*runs)[5])
{
    int64_t nrun = 0, ohw = g->oh * g->ow;
    for (int64_t q = 0, p = col0; q < ncols;) {
        int64_t ox = p % g->ow;
        int64_t len = g->ow - ox < ncols - q ? g->ow - ox : ncols - q;
        runs[nrun][0] = p / ohw;
        runs[nrun][1] = (p % ohw) / g->ow;
        runs[nrun][2] = ox;
        runs[nrun][3] = len;
        runs[nrun][4] = q;
        nrun++;
        q += len;
        p += len;
    }
    return nrun;
}

/* col2im (col2vol): adds rows (c, a, i, j) of the column block to dx, an output row's run at
 * a time. */
static void bd_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                     int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)isa;
    const conv_bwd_data *d = ctx;
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    int64_t n = b / s->groups, grp = b % s->groups, khw = g->kh * g->kw, kvol = g->kd * khw;
    int64_t cap = ncols / (g->ow > 0 ? g->ow : 1) + 2;
    int64_t runs[cap][5];
    int64_t nrun = bd_runs(g, col0, ncols, runs);
    for (int64_t r = 0; r < nrows; r++) {
        int64_t m = row0 + r, ch = m / kvol, a = (m % kvol) / khw;
        int64_t i = (m % khw) / g->kw, j = m % g->kw;
        float *dxp = d->dx + (n * s->c + grp * s->cpg + ch) * g->d * s->h * s->w;
        const float *sr = src + r * ld;
        int64_t lo, hi, xoff = j * g->dw - g->pw;
        tap_range(g->ow, s->w, g->sw, g->pw, j * g->dw, &lo, &hi);
        for (int64_t u = 0; u < nrun; u++) {
            int64_t iz = runs[u][0] * g->sd - g->pd + a * g->dd;
            int64_t iy = runs[u][1] * g->sh - g->ph + i * g->dh;
            if (iz < 0 || iz >= g->d || iy < 0 || iy >= s->h)
                continue;
            int64_t a0 = lo > runs[u][2] ? lo : runs[u][2];
            int64_t a1 = hi < runs[u][2] + runs[u][3] ? hi : runs[u][2] + runs[u][3];
            const float *sv = sr + runs[u][4] + (a0 - runs[u][2]);
            float *dv = dxp + (iz * s->h + iy) * s->w + a0 * g->sw + xoff;
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
    int64_t vol = d->s.g.d * d->s.h * d->s.w;
    memset(d->dx + item * vol, 0, (size_t)vol * sizeof(float));
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
    gm->row_align = d->s.g.kd * d->s.g.kh * d->s.g.kw;
    gm->ksplit = 1;
    gm->ctx = d;
    gm->pack_a = bd_pack_a;
    gm->pack_b = bd_pack_b;
    gm->store = bd_store;
    gm->pre = bd_zero;
    gm->npre = d->s.n * d->s.c;
}

size_t nconv_bd_scratch_bytes(conv_bwd_data *d, const op_native_isa *isa, int nt)
{
    fwd_scratch sc;
    if (d->transform)
        return op_native_round16((size_t)(d->s.f * d->s.kf)) * sizeof(float) +
               nconv_fwd_scratch_parts(&d->fw, isa, nt, &sc);
    op_native_gemm gm;
    bd_gemm_spec(d, &gm);
    return op_native_gemm_scratch(&gm, isa, nt);
}

/* The col2im path: the GEMM's stores scatter into dx, zeroed by its pre phase. */
void nconv_bd_col2im(conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch)
{
    op_native_gemm gm;
    bd_gemm_spec(d, &gm);
    op_native_gemm_run(&gm, isa, nt, scratch);
}

/* ---- backward to the weights ---- */

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
    int nseg = nconv_make_segs(&d->s, &d->in, k0, kc, seg);
    int64_t off = b * d->s.cpg * d->in.plane;
    isa->pack_seg(d->in.xp + off, nconv_pad_total(&d->in) - off, d->in.koff + col0, ncols, seg,
                  nseg, d->s.g.sw, kc, (int)kc, rows);
    isa->pack_t(rows, kc, ncols, kc, isa->nr, dst);
}

static void bw_pad_item(void *ctx, const op_native_isa *isa, int64_t item)
{
    (void)isa;
    nconv_pad_item(&((const conv_bwd_w *)ctx)->in, item);
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

/* The GEMM's scratch in floats (the largest over the ISA levels); the padded input and the
 * offsets follow it. */
size_t nconv_bw_gemm_floats(conv_bwd_w *d, int nt)
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

/* Direct path: one (filter, channel) pair per item, summed over the images in order; then the
 * bias gradient. */
void nconv_bw_direct(conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    int64_t khw = s->g.kh * s->g.kw, items = s->f * s->cpg;
    size_t per = op_native_round16((size_t)(2 * khw));
    int64_t next = 0;
    NAT_PAR(nt, {
        double *acc = (double *)(scratch + (size_t)nat_tid * per);
        NAT_DYNAMIC(it, items, next) {
            int64_t f = it / s->cpg, cl = it % s->cpg, ch = (f / s->fpg) * s->cpg + cl;
            for (int64_t t = 0; t < khw; t++)
                acc[t] = 0.0;
            for (int64_t n = 0; n < s->n; n++)
                isa->conv_wgrad(&s->g, d->x + (n * s->c + ch) * s->h * s->w,
                                d->dy + (n * s->f + f) * s->p, acc);
            for (int64_t t = 0; t < khw; t++)
                d->dw[it * khw + t] = (float)acc[t];
        }
        NAT_BARRIER();
        if (d->db) {
            NAT_STATIC(f, s->f)
                bw_bias(d, isa, f);
            NAT_BARRIER();
        }
    });
}

/* ---- backward to the data by outer products, channels-last ---- */

/* One image's ch planes of sp values (plain) into channels-last order: dst[q*ch + k] =
 * src[k*sp + q] (the outer-product paths' dy from plain tensors). */
static void image_to_cl(const float *src, float *dst, int64_t ch, int64_t sp)
{
    for (int64_t q = 0; q < sp; q++)
        for (int64_t k = 0; k < ch; k++)
            dst[q * ch + k] = src[k * sp + q];
}

/* The padded dx image: rows (oy*sh + i*dh) and pixels (ox*sw + j) every output pixel's taps
 * reach, and the image itself at (ph, pw). */
static void scatter_pad(const conv_bwd_data *d, int64_t *hp, int64_t *wpix)
{
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    int64_t h = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1, w = (g->ow - 1) * g->sw + g->kw;
    *hp = h > s->h + g->ph ? h : s->h + g->ph;
    *wpix = w > s->w + g->pw ? w : s->w + g->pw;
}

static int64_t scatter_nv(const conv_bwd_data *d)
{
    return (d->s.g.kh * d->s.g.kw * d->s.c + 15) / 16;
}

bool nconv_bd_scatter_fits(const conv_bwd_data *d, const op_native_isa *isa)
{
    const cshape *s = &d->s;
    /* with 16 channels or more the transformed convolution is the faster (resnet20's 16 -> 16
     * 3x3 at batch 64, one thread: 144 GFLOP/s against 95) */
    return isa->conv_cl_scatter && s->sdims == 2 && s->groups == 1 && s->g.dw == 1 && s->g.d == 1 &&
           s->g.kd == 1 && s->c < 16 && scatter_nv(d) <= 10;
}

/* Per thread: the padded dx image, and for plain tensors the image's dy channels-last. */
static size_t scatter_thread_floats(const conv_bwd_data *d)
{
    int64_t hp, wpix;
    scatter_pad(d, &hp, &wpix);
    return op_native_round16((size_t)(hp * wpix * d->s.c)) + op_native_round16((size_t)(d->s.g.oh * d->s.g.ow * d->s.f)) +
           NCONV_THREAD_GAP;
}

/* The packed weights (and a gap), then each thread's part. */
static size_t scatter_packed_floats(const conv_bwd_data *d)
{
    return op_native_round16((size_t)(d->s.f * scatter_nv(d) * 16)) + NCONV_THREAD_GAP;
}

size_t nconv_bd_scatter_floats(const conv_bwd_data *d, int nt)
{
    return scatter_packed_floats(d) + (size_t)nt * scatter_thread_floats(d);
}

/* The weights packed by filter, columns (i, j, c) zero-padded to whole vectors; then each
 * image into the thread's padded dx (zeroed), whose inside is copied to dx.  Plain tensors
 * (cl false) go through per-image transposed copies: dy's in, dx's out. */
void nconv_bd_scatter(conv_bwd_data *d, bool cl, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    int64_t nv = scatter_nv(d), hp, wpix, khw = g->kh * g->kw, pdy = g->oh * g->ow;
    scatter_pad(d, &hp, &wpix);
    float *wp = scratch;
    size_t packed = scatter_packed_floats(d), img = op_native_round16((size_t)(hp * wpix * s->c));
    op_native_clscatter p0 = {.dy = d->dy, .wp = wp, .f = s->f, .c = s->c, .kh = g->kh, .kw = g->kw, .oh = g->oh,
                              .ow = g->ow, .sh = g->sh, .sw = g->sw, .dh = g->dh, .nv = nv, .wpad = wpix * s->c};
    NAT_PAR(nt, {
        op_native_clscatter p = p0;
        NAT_STATIC(f, s->f) {
            float *wf = wp + f * nv * 16;
            memset(wf, 0, (size_t)(nv * 16) * sizeof(float));
            for (int64_t c = 0; c < s->c; c++)
                for (int64_t t = 0; t < khw; t++) /* t = i*kw + j */
                    wf[t * s->c + c] = d->w[(f * s->c + c) * khw + t];
        }
        NAT_BARRIER();
        float *dxp = scratch + packed + (size_t)nat_tid * scatter_thread_floats(d), *dyt = dxp + img;
        NAT_STATIC(n, s->n) {
            memset(dxp, 0, img * sizeof(float));
            if (cl) {
                isa->conv_cl_scatter(&p, n, dxp);
                for (int64_t y = 0; y < s->h; y++)
                    memcpy(d->dx + (n * s->h + y) * s->w * s->c, dxp + ((y + g->ph) * wpix + g->pw) * s->c,
                           (size_t)(s->w * s->c) * sizeof(float));
                continue;
            }
            image_to_cl(d->dy + n * s->f * pdy, dyt, s->f, pdy);
            p.dy = dyt;
            isa->conv_cl_scatter(&p, 0, dxp);
            float *dxn = d->dx + n * s->c * s->h * s->w;
            for (int64_t c = 0; c < s->c; c++)
                for (int64_t y = 0; y < s->h; y++) {
                    const float *src = dxp + ((y + g->ph) * wpix + g->pw) * s->c + c;
                    float *dst = dxn + (c * s->h + y) * s->w;
                    for (int64_t x = 0; x < s->w; x++)
                        dst[x] = src[x * s->c];
                }
        }
    });
}

/* ---- weight gradient by outer products, few channels ---- */

#define BW_OUTER_PARTS 8 /* parts of the images, summed in order: fixed, whatever the threads */
#define BW_OUTER_ACC 30  /* accumulators of the kernel */

/* Kernel rows per item: as many as fit the accumulators. */
static int64_t outer_rows(const cshape *s)
{
    int64_t nb = BW_OUTER_ACC / (s->g.kw * s->c);
    return nb > s->g.kh ? s->g.kh : nb;
}

bool nconv_bw_outer_fits(const conv_bwd_w *d, const op_native_isa *isa)
{
    const cshape *s = &d->s;
    return isa->conv_cl_wgrad_outer && s->sdims == 2 && s->groups == 1 && s->g.dw == 1 && s->g.d == 1 &&
           s->g.kd == 1 && s->c < 16 && s->g.kw * s->c <= BW_OUTER_ACC;
}

/* The padded images, dy channels-last (plain tensors), the parts' sums. */
static void outer_sizes(const cshape *s, size_t *img, size_t *dyt, size_t *part)
{
    *img = (size_t)((s->h + 2 * s->g.ph) * (s->w + 2 * s->g.pw) * s->c);
    *dyt = op_native_round16((size_t)(s->n * s->g.oh * s->g.ow * s->f));
    /* and each image's bias sums */
    *part = (size_t)(BW_OUTER_PARTS * (s->f + 15) / 16 * 16 * s->g.kh * s->g.kw * s->c + s->n * s->f);
}

size_t nconv_bw_outer_floats(const conv_bwd_w *d)
{
    size_t img, dyt, part;
    outer_sizes(&d->s, &img, &dyt, &part);
    return op_native_round16((size_t)d->s.n * img) + dyt + op_native_round16(part);
}

/* The images padded channels-last once (and dy transposed, plain tensors); then per (part of
 * the images, filter block, kernel rows) item the kernel's sums; the parts summed in order in
 * double; the bias gradient from dy channels-last, image by image in order. */
void nconv_bw_outer(conv_bwd_w *d, bool cl, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    const op_native_convg *g = &s->g;
    size_t img, dytn, partn;
    outer_sizes(s, &img, &dytn, &partn);
    int64_t wpix = s->w + 2 * g->pw, pdy = g->oh * g->ow, kwc = g->kw * s->c, khwc = g->kh * kwc;
    int64_t nfb = (s->f + 15) / 16, nb = outer_rows(s), nib = (g->kh + nb - 1) / nb;
    int64_t parts = s->n < BW_OUTER_PARTS ? s->n : BW_OUTER_PARTS;
    float *xp = scratch, *dyt = xp + op_native_round16((size_t)s->n * img), *part = dyt + dytn;
    float *bsum = part + (partn - (size_t)(s->n * s->f)); /* [n][f] */
    const float *dyc = cl ? d->dy : dyt; /* dy channels-last */
    op_native_clouter p = {.xp = xp, .dy = dyc, .f = s->f, .c = s->c, .kw = g->kw, .oh = g->oh, .ow = g->ow,
                           .sh = g->sh, .sw = g->sw, .dh = g->dh, .wpix = wpix, .istride = (int64_t)img};
    NAT_PAR(nt, {
        NAT_STATIC(n, s->n) {
            float *xn = xp + (size_t)n * img;
            memset(xn, 0, img * sizeof(float));
            for (int64_t y = 0; y < s->h; y++) {
                float *row = xn + ((y + g->ph) * wpix + g->pw) * s->c;
                if (cl) {
                    memcpy(row, d->x + (n * s->h + y) * s->w * s->c, (size_t)(s->w * s->c) * sizeof(float));
                    continue;
                }
                for (int64_t c = 0; c < s->c; c++) {
                    const float *src = d->x + ((n * s->c + c) * s->h + y) * s->w;
                    for (int64_t x = 0; x < s->w; x++)
                        row[x * s->c + c] = src[x];
                }
            }
            if (!cl)
                image_to_cl(d->dy + n * s->f * pdy, dyt + n * pdy * s->f, s->f, pdy);
            if (d->db) { /* the image's bias sums, pixel by pixel in order */
                float *bs = bsum + n * s->f;
                memset(bs, 0, (size_t)s->f * sizeof(float));
                for (int64_t q = 0; q < pdy; q++) {
                    const float *dq = dyc + (n * pdy + q) * s->f;
                    for (int64_t f = 0; f < s->f; f++)
                        bs[f] += dq[f];
                }
            }
        }
        NAT_BARRIER();
        /* static chunks of the parts in order: a thread mostly reads the images it padded */
        NAT_STATIC(it, parts * nfb * nib) {
            int64_t q = it / (nfb * nib), fb = it / nib % nfb, i0 = it % nib * nb;
            int64_t rows = g->kh - i0 < nb ? g->kh - i0 : nb;
            isa->conv_cl_wgrad_outer(&p, q * s->n / parts, (q + 1) * s->n / parts, fb, i0, rows,
                                     part + ((q * nfb + fb) * khwc + i0 * kwc) * 16);
        }
        NAT_BARRIER();
        NAT_STATIC(f, s->f) {
            int64_t fb = f / 16, lane = f % 16;
            for (int64_t i = 0; i < g->kh; i++)
                for (int64_t j = 0; j < g->kw; j++)
                    for (int64_t c = 0; c < s->c; c++) {
                        int64_t a = (i * g->kw + j) * s->c + c;
                        double acc = 0.0;
                        for (int64_t q = 0; q < parts; q++)
                            acc += part[((q * nfb + fb) * khwc + a) * 16 + lane];
                        d->dw[((f * s->c + c) * g->kh + i) * g->kw + j] = (float)acc;
                    }
            if (d->db) {
                double acc = 0.0;
                for (int64_t n = 0; n < s->n; n++)
                    acc += bsum[n * s->f + f];
                d->db[f] = (float)acc;
            }
        }
    });
}

/* First layers: the images in parts of BW_FIRST_PART, fixed by the shapes, so that the sums do
 * not depend on the threads. */
#define BW_FIRST_PART 8

static int64_t bw_first_parts(const cshape *s)
{
    return (s->n + BW_FIRST_PART - 1) / BW_FIRST_PART;
}

/* Every image's padded copy, then each (filter, part) item's sums. */
size_t nconv_bw_first_floats(const cshape *s)
{
    return (size_t)s->n * nconv_first_pad_floats(s) + op_native_round16((size_t)(s->f * bw_first_parts(s) * s->kf));
}

/* The first-layer path: the images padded once; per (filter, part of the images) item the
 * kernel's sums of every tap and channel; the parts summed in order in double; then the bias
 * gradient. */
void nconv_bw_first(conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    size_t img = nconv_first_pad_floats(s);
    int64_t parts = bw_first_parts(s), items = s->f * parts, wp = nconv_first_wp(s);
    float *part = scratch + (size_t)s->n * img;
    NAT_PAR(nt, {
        NAT_STATIC(n, s->n)
            nconv_first_pad(s, d->x, n, scratch + (size_t)n * img);
        NAT_BARRIER();
        /* the parts in order of their images, in static chunks: a thread mostly reads the
         * images it padded (was 1.65 times one thread's speed on two, with dynamic items) */
        NAT_STATIC(it, items) {
            int64_t q = it / s->f, f = it % s->f, n0 = q * BW_FIRST_PART;
            int64_t nimg = s->n - n0 < BW_FIRST_PART ? s->n - n0 : BW_FIRST_PART;
            isa->conv_wgrad_pad(&s->g, scratch + (size_t)n0 * img, wp, (int64_t)img, d->dy + (n0 * s->f + f) * s->p,
                                s->f * s->p, nimg, part + (f * parts + q) * s->kf);
        }
        NAT_BARRIER();
        NAT_STATIC(f, s->f) {
            for (int64_t k = 0; k < s->kf; k++) {
                double acc = 0.0;
                for (int64_t q = 0; q < parts; q++)
                    acc += part[(f * parts + q) * s->kf + k];
                d->dw[f * s->kf + k] = (float)acc;
            }
            if (d->db)
                bw_bias(d, isa, f);
        }
    });
}

/* The GEMM path: the padded input and offsets after the GEMM's own scratch. */
void nconv_bw_gemm(conv_bwd_w *d, bool bias, const op_native_isa *isa, int nt, float *scratch)
{
    nconv_pad_bind(&d->in, &d->s, d->x, scratch + nconv_bw_gemm_floats(d, nt));
    op_native_gemm gm;
    bw_gemm_spec(d, bias, &gm);
    op_native_gemm_run(&gm, isa, nt, scratch);
}
