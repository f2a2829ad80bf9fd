/* Native convolution on channels-last activations (NHWC, NWC): the direct kernels of the
 * levels that have them (op_native_isa.conv_cl_row, conv_cl_wgrad; avx512), for 1-D and 2-D
 * convolutions of one group without fused pooling:
 *   forward        the weights packed [kh][kw][c][f rounded to 16], then one job per output
 *                  row (image, oy), split evenly between the threads, each with its buffer of
 *                  zero-padded input rows; the kernel adds the bias
 *                  and the residual, the row's activation follows (op_native_isa.epilogue).
 *   backward data  stride 1 (with padding at most dil*(k-1)): the same kernel on dy with the
 *                  flipped, transposed weights, padding dil*(k-1) - pad.
 *   backward wts   dW per part of the images (one part unless the tiles are too few for the
 *                  threads; the parts fixed by the shapes), one job per tile: 3x3 kernels 3
 *                  filters by 16 channels by the 9 taps (conv_cl_wgrad3), others 4 channels by
 *                  4 filter blocks per tap (conv_cl_wgrad); then summed over the parts in order
 *                  into OIHW; db sums dy in double over fixed ranges of the pixels, then over
 *                  the ranges in order.
 * Each output's arithmetic is fixed by the shapes, so results do not depend on the thread
 * count.  native_conv.c picks this path for channels-last calls it covers; other
 * channels-last calls run the plain paths on plain copies (nconv_via_plain). */
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/native_conv.h"

static inline int64_t round16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

bool nconv_cl_fits(const cshape *s, const op_native_isa *isa)
{
    return isa->conv_cl_row && isa->conv_cl_wgrad && s->sdims <= 2 && s->groups == 1 && s->c > 0 &&
           s->f > 0 && s->g.kh <= 64;
}

/* ---- forward (and backward data through it) ---- */

/* Floats of one thread's padded input rows (op_native_isa.conv_cl_row's buf). */
static int64_t rows_floats(const cshape *s)
{
    return round16(s->g.kh * (s->w + 2 * s->g.pw) * s->c);
}

size_t nconv_cl_fwd_floats(const cshape *s, int nt)
{
    return (size_t)(s->g.kh * s->g.kw * s->c * round16(s->f) + nt * rows_floats(s));
}

static void cl_params(const cshape *s, op_native_clconv *p)
{
    memset(p, 0, sizeof *p);
    p->n = s->n, p->h = s->h, p->w = s->w, p->c = s->c;
    p->oh = s->g.oh, p->ow = s->g.ow, p->f = s->f, p->fp = round16(s->f);
    p->kh = s->g.kh, p->kw = s->g.kw, p->sh = s->g.sh, p->sw = s->g.sw;
    p->ph = s->g.ph, p->pw = s->g.pw, p->dh = s->g.dh, p->dw = s->g.dw;
}

/* Packs the weights w into scratch, then runs convolution p with f's activation, in one
 * parallel region (one wake-up of the threads): wp[t][c][o] = w[o][c][t] for the forward, or
 * with flip (backward data) w[c][o][khw-1-t], w being the forward weights [c][o][kh][kw] there
 * (c the transformed convolution's input channels, o its filters); then one job per output row,
 * each thread with its padded input rows after the packed weights. */
static void cl_conv(const conv_fwd *f, op_native_clconv *p, const float *w, bool flip,
                    const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &f->s;
    int64_t khw = s->g.kh * s->g.kw, C = s->c, F = s->f, fp = p->fp;
    int64_t rows = p->n * p->oh, len = p->ow * p->f, per = rows_floats(s);
    float *wp = scratch, *bufs = scratch + khw * C * fp;
    bool epi = f->act != OP_ACT_NONE;
    p->wp = wp;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < khw; t++) {
                float *d = wp + (t * C + c) * fp;
                if (flip)
                    for (int64_t o = 0; o < F; o++)
                        d[o] = w[(c * F + o) * khw + (khw - 1 - t)];
                else
                    for (int64_t o = 0; o < F; o++)
                        d[o] = w[(o * C + c) * khw + t];
                for (int64_t o = F; o < fp; o++)
                    d[o] = 0.0f;
            }
        float *buf = bufs + nconv_thread_num() * per;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            isa->conv_cl_row(p, r / p->oh, r % p->oh, buf);
            if (epi) {
                float *y = p->y + r * len;
                isa->epilogue(y, y, len, 0.0f, NULL, NULL, f->act, f->alpha);
            }
        }
    }
}

void nconv_cl_fwd(const conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    op_native_clconv p;
    cl_params(&f->s, &p);
    p.x = f->x, p.bias = f->b, p.res = f->r, p.y = f->y;
    cl_conv(f, &p, f->w, false, isa, nt, scratch);
}

void nconv_cl_bwd_data(const conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch)
{
    /* the transformed convolution d->fw: its channels are the forward filters and back */
    op_native_clconv p;
    cl_params(&d->fw.s, &p);
    p.x = d->dy, p.bias = NULL, p.res = NULL, p.y = d->dx;
    cl_conv(&d->fw, &p, d->w, true, isa, nt, scratch);
}

/* ---- backward to the weights ---- */

#define CL_WG_CB 4  /* channels per tile (CB x NB kernel) */
#define CL_WG_FB 4  /* filter blocks per tile */
#define CL_WG3_F 3  /* filters per tile at most (3x3 kernel; by 16 channels), as even as can be */
#define CL_WG_JOBS 16 /* fewer tiles than this: the images split into parts */
#define CL_WG_CHUNK (256 * 1024) /* bytes of x and dy per chunk of rows (3x3) */
#define CL_DB_PARTS 8 /* the bias gradient's ranges of pixels */

/* The weight gradient's tiling, fixed by the shapes: the 3x3 kernel (three) or the other;
 * tiles along the channels (ncb) and the filters (nfg), parts of the images, floats per part. */
typedef struct wg_plan {
    bool three;
    int64_t ncb, nfg, parts, part_floats, zero_floats;
} wg_plan;

static void wg_layout(const cshape *s, const op_native_isa *isa, wg_plan *w)
{
    int64_t fp = round16(s->f), cp = round16(s->c), khw = s->g.kh * s->g.kw;
    w->three = isa->conv_cl_wgrad3 && s->g.kh == 3 && s->g.kw == 3;
    if (w->three) {
        w->ncb = cp / 16;
        w->nfg = (s->f + CL_WG3_F - 1) / CL_WG3_F;
        w->part_floats = s->f * khw * cp;
        w->zero_floats = round16(s->w * s->c + 16);
    } else {
        w->ncb = (s->c + CL_WG_CB - 1) / CL_WG_CB;
        w->nfg = (fp / 16 + CL_WG_FB - 1) / CL_WG_FB;
        w->part_floats = khw * s->c * fp;
        w->zero_floats = 0;
    }
    int64_t tiles = w->ncb * w->nfg, p = tiles >= CL_WG_JOBS ? 1 : (CL_WG_JOBS + tiles - 1) / tiles;
    w->parts = p > s->n ? (s->n > 0 ? s->n : 1) : p;
}

/* Floats of the bias gradient's partial sums (CL_DB_PARTS x f doubles), last in the scratch. */
static int64_t db_floats(const cshape *s)
{
    return round16(2 * CL_DB_PARTS * s->f);
}

size_t nconv_cl_bw_floats(const cshape *s, const op_native_isa *isa)
{
    wg_plan w;
    wg_layout(s, isa, &w);
    return (size_t)(w.parts * w.part_floats + w.zero_floats + db_floats(s));
}

void nconv_cl_bwd_w(const conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    wg_plan w;
    wg_layout(s, isa, &w);
    op_native_clwgrad p;
    memset(&p, 0, sizeof p);
    p.n = s->n, p.h = s->h, p.w = s->w, p.c = s->c;
    p.oh = s->g.oh, p.ow = s->g.ow, p.f = s->f, p.fp = round16(s->f);
    p.kh = s->g.kh, p.kw = s->g.kw, p.sh = s->g.sh, p.sw = s->g.sw;
    p.ph = s->g.ph, p.pw = s->g.pw, p.dh = s->g.dh, p.dw = s->g.dw;
    p.x = d->x, p.dy = d->dy;
    int64_t khw = p.kh * p.kw, C = s->c, F = s->f, fp = p.fp, nfb = fp / 16, cp = round16(C);
    int64_t ncb = w.ncb, nfg = w.nfg, parts = w.parts, jobs = parts * ncb * nfg;
    float *zero = scratch + parts * w.part_floats;
    if (w.zero_floats)
        memset(zero, 0, (size_t)w.zero_floats * sizeof(float));
    /* 3x3: each thread takes an even share of the jobs and walks the images in chunks of
     * output rows (about CL_WG_CHUNK bytes of x and dy), running its jobs on each chunk while
     * the chunk is in cache; a job's sum runs over the chunks in order whoever runs it */
    int64_t chunk_px = CL_WG_CHUNK / ((C + F) * (int64_t)sizeof(float));
    int64_t rows = p.ow > 0 ? chunk_px / p.ow : 1, imgs = 1;
    rows = rows < 1 ? 1 : rows;
    if (rows >= p.oh && p.oh * p.ow > 0) {
        imgs = chunk_px / (p.oh * p.ow);
        imgs = imgs < 1 ? 1 : imgs;
    }
#pragma omp parallel num_threads(nt)
    {
        if (w.three) {
            int th = nconv_thread_num(), nth = nconv_num_threads();
            int64_t j0 = jobs * th / nth, j1 = jobs * (th + 1) / nth, tpp = ncb * nfg;
            for (int64_t part = j0 / tpp; j0 < j1 && part <= (j1 - 1) / tpp; part++) {
                int64_t n0 = s->n * part / parts, n1 = s->n * (part + 1) / parts;
                int64_t a = j0 > part * tpp ? j0 : part * tpp, b = j1 < (part + 1) * tpp ? j1 : (part + 1) * tpp;
                float *dst = scratch + part * w.part_floats;
                /* chunks: whole images (imgs of them) when an image is small, else rows */
                for (int64_t n = n0; n < n1; n += imgs) {
                    int64_t ne = n + imgs < n1 ? n + imgs : n1;
                    for (int64_t oy = 0; oy < p.oh; oy += rows)
                        for (int64_t jb = a; jb < b; jb++) {
                            int64_t cb = (jb % tpp) / nfg, fg = jb % nfg;
                            int64_t c0 = cb * 16, nc = C - c0 < 16 ? C - c0 : 16;
                            int64_t f0 = F * fg / nfg, nf = F * (fg + 1) / nfg - f0;
                            int64_t oy1 = oy + rows < p.oh ? oy + rows : p.oh;
                            isa->conv_cl_wgrad3(&p, n, ne, oy, oy1, c0, nc, f0, nf, zero, dst,
                                                n > n0 || oy > 0);
                        }
                }
                if (n0 == n1 || p.oh == 0) /* no pixels: zeros */
                    for (int64_t jb = a; jb < b; jb++) {
                        int64_t cb = (jb % tpp) / nfg, fg = jb % nfg;
                        int64_t f0 = F * fg / nfg, nf = F * (fg + 1) / nfg - f0;
                        for (int64_t o = f0; o < f0 + nf; o++)
                            for (int64_t t = 0; t < khw; t++)
                                memset(dst + (o * khw + t) * cp + cb * 16, 0, 16 * sizeof(float));
                    }
            }
        } else {
#pragma omp for schedule(static) nowait
            for (int64_t jb = 0; jb < jobs; jb++) {
                int64_t part = jb / (ncb * nfg), cb = (jb / nfg) % ncb, fg = jb % nfg;
                int64_t n0 = s->n * part / parts, n1 = s->n * (part + 1) / parts;
                int64_t c0 = cb * CL_WG_CB, nc = C - c0 < CL_WG_CB ? C - c0 : CL_WG_CB;
                int64_t fb0 = fg * CL_WG_FB, nf = nfb - fb0 < CL_WG_FB ? nfb - fb0 : CL_WG_FB;
                isa->conv_cl_wgrad(&p, n0, n1, c0, nc, fb0, nf, scratch + part * w.part_floats);
            }
        }
        /* db: dy summed in double over CL_DB_PARTS fixed ranges of the pixels (in order within
         * each), then (below) over the ranges in order */
        double *dbp = (double *)(scratch + nconv_cl_bw_floats(s, isa) - db_floats(s));
        if (d->db) {
            int64_t pix = s->n * s->p;
#pragma omp for schedule(static) nowait
            for (int64_t q = 0; q < CL_DB_PARTS; q++) {
                double *acc = dbp + q * F;
                for (int64_t o = 0; o < F; o++)
                    acc[o] = 0.0;
                for (int64_t k = pix * q / CL_DB_PARTS; k < pix * (q + 1) / CL_DB_PARTS; k++) {
                    const float *r = d->dy + k * F;
                    for (int64_t o = 0; o < F; o++)
                        acc[o] += r[o];
                }
            }
        }
#pragma omp barrier
        /* dW[o][c][t] = the parts' sums in order; db[o] the ranges' sums in order */
#pragma omp for schedule(static)
        for (int64_t o = 0; o < F; o++) {
            for (int64_t c = 0; c < C; c++)
                for (int64_t t = 0; t < khw; t++) {
                    const float *src = scratch + (w.three ? (o * khw + t) * cp + c : (t * C + c) * fp + o);
                    float v = src[0];
                    for (int64_t q = 1; q < parts; q++)
                        v += src[q * w.part_floats];
                    d->dw[(o * C + c) * khw + t] = v;
                }
            if (d->db) {
                double v = 0.0;
                for (int64_t q = 0; q < CL_DB_PARTS; q++)
                    v += dbp[q * F + o];
                d->db[o] = (float)v;
            }
        }
    }
}

/* ---- channels-last calls the direct kernels do not cover ---- */

int nconv_layout_mode(const op_call *c, const int *acts, int nacts)
{
    bool cl = false, plain = false;
    for (int k = 0; k < nacts; k++) {
        const op_tensor *t = acts[k] < c->nin ? &c->in[acts[k]] : &c->out[acts[k] - c->nin];
        if (t->layout == OP_LAYOUT_BLOCK16)
            return -1;
        int64_t n = t->rank > 0 ? t->d[0] : 1, ch = t->rank > 1 ? t->d[1] : 1;
        int64_t sp = n * ch > 0 ? ref_numel(t) / (n * ch) : 0;
        if (ch <= 1 || sp <= 1) /* both orders are the same bytes */
            continue;
        if (t->layout == OP_LAYOUT_NHWC)
            cl = true;
        else
            plain = true;
    }
    return cl ? (plain ? NCONV_MIXED : NCONV_CL) : NCONV_PLAIN;
}

int nconv_via_plain(op_call *c, const int *acts, int nacts, int (*run)(op_call *, char *, size_t),
                    char *err, size_t errlen)
{
    op_call k = *c;
    void *copy[8] = {NULL};
    int rc = 0, nt = nat_threads(c);
    for (int i = 0; i < nacts && rc == 0; i++) {
        bool in = acts[i] < c->nin;
        const op_tensor *t = in ? &c->in[acts[i]] : &c->out[acts[i] - c->nin];
        op_tensor *kt = in ? &k.in[acts[i]] : &k.out[acts[i] - c->nin];
        if (t->layout != OP_LAYOUT_NHWC)
            continue;
        int64_t n = t->d[0], ch = t->rank > 1 ? t->d[1] : 1;
        int64_t sp = n * ch > 0 ? ref_numel(t) / (n * ch) : 0;
        copy[i] = cnn_mem_malloc(sizeof(float) * (size_t)(n * ch * sp) + 1);
        if (!copy[i]) {
            rc = ref_fail(err, errlen, "%s: out of memory", c->node->name);
            break;
        }
        if (in)
            ref_layout_copy(t->data, copy[i], n, ch, sp, sizeof(float), false, nt);
        kt->data = copy[i];
        kt->layout = OP_LAYOUT_PLAIN;
    }
    if (rc == 0)
        rc = run(&k, err, errlen);
    for (int i = 0; i < nacts; i++) {
        const op_tensor *t = acts[i] < c->nin ? NULL : &c->out[acts[i] - c->nin];
        if (rc == 0 && t && copy[i]) {
            int64_t n = t->d[0], ch = t->rank > 1 ? t->d[1] : 1;
            int64_t sp = n * ch > 0 ? ref_numel(t) / (n * ch) : 0;
            ref_layout_copy(copy[i], t->data, n, ch, sp, sizeof(float), true, nt);
        }
        cnn_mem_free(copy[i]);
    }
    return rc;
}
