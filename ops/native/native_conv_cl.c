/* Native convolution on channels-last activations (NHWC, NWC): the direct kernels of the
 * levels that have them (op_native_isa.conv_cl_row, conv_cl_wgrad; avx512), for 1-D and 2-D
 * convolutions of one group without fused pooling:
 *   forward        the weights packed [f/16][kh][kw][c][16] (f rounded up to 16: each block
 *                  of 16 filters one run, read in order), then one job per output
 *                  row (image, oy), split evenly between the threads (consecutive rows each),
 *                  each with its ring of zero-padded input rows (a row copied once for the
 *                  output rows that read it); the kernel adds the bias
 *                  and the residual, the row's activation follows (op_native_isa.epilogue).
 *   backward data  stride 1 (with padding at most dil*(k-1)): the same kernel on dy with the
 *                  flipped, transposed weights, padding dil*(k-1) - pad.
 *   backward wts   dW per part of the work (the parts fixed by the shapes), summed over the
 *                  parts in order into OIHW.  3x3 kernels: parts of the output rows while the
 *                  partial sums are small, tiles of up to 8 filters by 16 channels by one
 *                  kernel row's three taps (conv_cl_wgrad3), the rows walked in chunks that
 *                  stay in L1, db summed per part as the chunks pass (conv_cl_dbias); with
 *                  one part (sums over 64 KB), each tile's last chunk writes OIHW itself.  Others:
 *                  parts of the images unless the tiles are enough for the threads, one job per
 *                  tile of 4 channels by 4 filter blocks per tap (conv_cl_wgrad); db over fixed
 *                  ranges of the pixels, then over the ranges in order.
 * Each output's arithmetic is fixed by the shapes, so results do not depend on the thread
 * count.  native_conv.c picks this path for channels-last calls it covers; other
 * channels-last calls run the plain paths on plain copies (nconv_via_plain). */
#include <string.h>

#include "ops/mem.h"
#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/native_conv.h"

static inline int64_t round16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

bool nconv_cl_fits(const cshape *s, const op_native_isa *isa)
{
    return isa->conv_cl_row && isa->conv_cl_wgrad && isa->conv_cl_dbias && s->sdims <= 2 &&
           s->groups == 1 && s->c > 0 && s->f > 0 && s->g.kh <= 64;
}

/* ---- forward (and backward data through it) ---- */

/* Floats of one thread's ring of padded input rows (op_native_isa.conv_cl_row's buf). */
static int64_t rows_floats(const cshape *s)
{
    return round16(op_native_cl_ring_floats(s->g.kh, s->g.dh, s->w, s->g.pw, s->c)) + NCONV_THREAD_GAP;
}

size_t nconv_cl_fwd_floats(const cshape *s, int nt)
{
    return (size_t)(s->g.kh * s->g.kw * s->c * round16(s->f) + NCONV_THREAD_GAP + nt * rows_floats(s));
}

static void cl_params(const cshape *s, op_native_clconv *p)
{
    memset(p, 0, sizeof *p);
    p->n = s->n, p->h = s->h, p->w = s->w, p->c = s->c;
    p->oh = s->g.oh, p->ow = s->g.ow, p->f = s->f, p->fp = round16(s->f);
    p->kh = s->g.kh, p->kw = s->g.kw, p->sh = s->g.sh, p->sw = s->g.sw;
    p->ph = s->g.ph, p->pw = s->g.pw, p->dh = s->g.dh, p->dw = s->g.dw;
}

/* Bytes of packed weights a forward job keeps reading (in L2): above, the filters go in chunks.
 * vgg_small's 256 -> 256 3x3 at 8x8, batch 1: its 2.4 MB of weights had been read from L3 for
 * every output row of 8 pixels. */
#define CL_CHUNK_BYTES (768 * 1024)

/* Packs the weights w into scratch, then runs convolution p with f's activation, in one
 * parallel region (one wake-up of the threads): wp[o/16][t][c][o%16] = w[o][c][t] for the
 * forward, or with flip (backward data) w[c][o][khw-1-t], w being the forward weights [c][o][kh][kw] there
 * (c the transformed convolution's input channels, o its filters); then one job per output row,
 * each thread with its padded input rows after the packed weights. */
static void cl_conv(const conv_fwd *f, op_native_clconv *p, const float *w, bool flip,
                    const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &f->s;
    int64_t khw = s->g.kh * s->g.kw, C = s->c, F = s->f, fp = p->fp;
    int64_t rows = p->n * p->oh, len = p->ow * p->f, per = rows_floats(s);
    float *wp = scratch, *bufs = scratch + khw * C * fp + NCONV_THREAD_GAP;
    bool epi = f->act != OP_ACT_NONE, pack;
    float *kept = nconv_wcache_take(f->wcache, (size_t)(khw * C * fp), false, f->wversion, w, &pack);
    if (kept) /* (else packed into the scratch, as without a cache) */
        wp = kept;
    p->wp = wp;
    /* filter blocks per chunk: all of them when their weights fit CL_CHUNK_BYTES, else a
     * multiple of 4 blocks (the tiles' most) */
    int64_t nfb = fp / 16, block = khw * C * 16 * (int64_t)sizeof(float), cb = nfb;
    if (nfb * block > CL_CHUNK_BYTES) {
        cb = CL_CHUNK_BYTES / block / 4 * 4;
        cb = cb < 4 ? 4 : cb;
    }
    int64_t chunks = (nfb + cb - 1) / cb;
    NAT_PAR(nt, {
        NAT_STATIC(c, (pack ? C : 0))
            for (int64_t t = 0; t < khw; t++)
                for (int64_t o = 0; o < fp; o++) {
                    float v = o >= F ? 0.0f
                              : flip ? w[(c * F + o) * khw + (khw - 1 - t)]
                                     : w[(o * C + c) * khw + t];
                    wp[((o / 16 * khw + t) * C + c) * 16 + o % 16] = v;
                }
        NAT_BARRIER();
        float *buf = bufs + nat_tid * per;
        op_native_cl_ring_reset(buf);
        if (chunks == 1) {
            NAT_STATIC(r, rows) {
                isa->conv_cl_row(p, r / p->oh, r % p->oh, 0, nfb, buf);
                if (epi) {
                    float *y = p->y + r * len;
                    isa->epilogue(y, y, len, 0.0f, NULL, NULL, f->act, f->alpha);
                }
            }
            NAT_BARRIER();
        } else {
            /* chunk by chunk of the filters, each chunk's weights kept in L2 over the rows (a
             * thread's consecutive jobs: the threads split the filters when the rows are few) */
            NAT_STATIC(j, chunks * rows) {
                int64_t k = j / rows, r = j % rows, fb1 = (k + 1) * cb < nfb ? (k + 1) * cb : nfb;
                isa->conv_cl_row(p, r / p->oh, r % p->oh, k * cb, fb1, buf);
            }
            NAT_BARRIER();
            if (epi) {
                NAT_STATIC(r, rows) {
                    float *y = p->y + r * len;
                    isa->epilogue(y, y, len, 0.0f, NULL, NULL, f->act, f->alpha);
                }
                NAT_BARRIER();
            }
        }
    });
    nconv_wcache_keep(f->wcache, kept, false, f->wversion, w);
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
#define CL_WG_JOBS 16 /* fewer tiles than this: the images split into parts */
#define CL_DB_PARTS 8 /* the bias gradient's ranges of pixels (not 3x3) */
#define CL_WG3_F 8  /* 3x3: filters per tile at most, as even as can be */
#define CL_WG3_PARTS 4 /* 3x3: parts of the output rows at most ... */
#define CL_WG3_PART_BYTES (1280 * 1024) /* ... with partial sums of at most this many bytes, */
#define CL_WG3_ONE_PART (64 * 1024) /* ... and one part when a part's sums pass this */
#define CL_WG3_CHUNK (24 * 1024) /* 3x3: bytes of dy and x per chunk of output rows (in L1) ... */
#define CL_WG3_MIN_PX 64 /* ... but this many pixels at least (a tile's sums pass through dW) */

/* The weight gradient's tiling, fixed by the shapes: the 3x3 kernel (three) or the other;
 * tiles along the channels (ncb) and the filters (nfg), parts of the images (of the output
 * rows for 3x3), floats per part; 3x3: output rows per chunk; the bias gradient's partial
 * sums (dbparts x f doubles); 3x3: whether the tiles write dW themselves (one part of one row
 * or more). */
typedef struct wg_plan {
    bool three, direct;
    int64_t ncb, nfg, parts, part_floats, chunk_rows, dbparts;
} wg_plan;

static void wg_layout(const cshape *s, const op_native_isa *isa, wg_plan *w)
{
    int64_t fp = round16(s->f), cp = round16(s->c), khw = s->g.kh * s->g.kw;
    w->three = isa->conv_cl_wgrad3 && s->g.kh == 3 && s->g.kw == 3;
    if (w->three) {
        w->ncb = cp / 16;
        w->nfg = (s->f + CL_WG3_F - 1) / CL_WG3_F;
        w->part_floats = s->f * khw * cp;
        int64_t row_bytes = (s->g.ow * s->f + s->g.sh * s->w * s->c) * (int64_t)sizeof(float);
        w->chunk_rows = row_bytes > 0 && CL_WG3_CHUNK / row_bytes > 1 ? CL_WG3_CHUNK / row_bytes : 1;
        if (s->g.ow > 0 && w->chunk_rows * s->g.ow < CL_WG3_MIN_PX)
            w->chunk_rows = (CL_WG3_MIN_PX + s->g.ow - 1) / s->g.ow;
        /* parts of the rows (partial sums in order) when the partial sums are small and each
         * part has a chunk or more */
        int64_t rows = s->n * s->g.oh, p = CL_WG3_PARTS;
        if (w->part_floats * (int64_t)sizeof(float) > CL_WG3_ONE_PART)
            p = 1;
        while (p > 1 && (p * w->part_floats * (int64_t)sizeof(float) > CL_WG3_PART_BYTES ||
                         rows < p * w->chunk_rows))
            p /= 2;
        w->parts = p;
        w->dbparts = p;
        w->direct = p == 1 && rows > 0;
        return;
    }
    w->direct = false;
    w->ncb = (s->c + CL_WG_CB - 1) / CL_WG_CB;
    w->nfg = (fp / 16 + CL_WG_FB - 1) / CL_WG_FB;
    w->part_floats = khw * s->c * fp;
    w->chunk_rows = 0;
    w->dbparts = CL_DB_PARTS;
    int64_t tiles = w->ncb * w->nfg, p = tiles >= CL_WG_JOBS ? 1 : (CL_WG_JOBS + tiles - 1) / tiles;
    w->parts = p > s->n ? (s->n > 0 ? s->n : 1) : p;
}

/* Floats of the bias gradient's partial sums (dbparts x f doubles), last in the scratch. */
static int64_t db_floats(const cshape *s, const wg_plan *w)
{
    return round16(2 * w->dbparts * s->f);
}

size_t nconv_cl_bw_floats(const cshape *s, const op_native_isa *isa)
{
    wg_plan w;
    wg_layout(s, isa, &w);
    return (size_t)(w.parts * w.part_floats + db_floats(s, &w));
}

/* 3x3: tile t of a part (filter group first, then channel block, then kernel row), so that
 * the tiles of one thread, a run of t, sum into one range of dW (and of the partial sums).
 * Numbered by channel block first, two threads' tiles wrote interleaved pieces of each
 * filter's sums, and the weight gradients with one part ran at 68-89% of oneDNN's speed on
 * 2 threads against 83-97% (bench_native --bwd, 3x3 layers of 64 and 128 channels). */
static void wg3_tile(int64_t t, int64_t ncb, int64_t *cb, int64_t *fg, int64_t *i)
{
    *fg = t / (ncb * 3);
    *cb = t / 3 % ncb;
    *i = t % 3;
}

/* 3x3: the jobs j0 .. j1 of this thread, parts * tiles of them (part-major); a part is a
 * range of the output rows (of every image, in order), a tile three taps of one kernel row
 * by 16 channels by up to CL_WG3_F filters (op_native_isa.conv_cl_wgrad3).  The thread walks
 * each of its parts' rows in chunks (about CL_WG3_CHUNK bytes of dy and x), running its tiles
 * on each chunk while the chunk is in cache: a tile's sum runs over its part's rows in order,
 * whoever runs it.  With one part, a tile's last chunk writes its sums into dW itself (no
 * pass over partial sums that may not fit in L2).  The thread with a part's first tile also
 * sums the part's dy (db). */
static void wg3_jobs(const conv_bwd_w *d, const op_native_clwgrad *p, const wg_plan *w,
                     const op_native_isa *isa, int64_t j0, int64_t j1, float *scratch, double *dbp)
{
    const cshape *s = &d->s;
    int64_t C = s->c, F = s->f, cp = round16(C), nfg = w->nfg, T = w->ncb * nfg * 3;
    int64_t rows = s->n * p->oh, R = w->chunk_rows;
    for (int64_t part = j0 / T; j0 < j1 && part <= (j1 - 1) / T; part++) {
        int64_t a = j0 > part * T ? j0 - part * T : 0, b = j1 < (part + 1) * T ? j1 - part * T : T;
        int64_t r0 = rows * part / w->parts, r1 = rows * (part + 1) / w->parts;
        float *dst = scratch + part * w->part_floats;
        double *db = d->db && a == 0 ? dbp + part * F : NULL;
        if (db)
            memset(db, 0, (size_t)F * sizeof(double));
        for (int64_t r = r0; r < r1; r += R) {
            int64_t re = r + R < r1 ? r + R : r1;
            float *out = w->direct && re == r1 ? d->dw : NULL;
            for (int64_t t = a; t < b; t++) {
                int64_t cb, fg, i;
                wg3_tile(t, w->ncb, &cb, &fg, &i);
                int64_t c0 = cb * 16, nc = C - c0 < 16 ? C - c0 : 16;
                int64_t f0 = F * fg / nfg, nf = F * (fg + 1) / nfg - f0;
                isa->conv_cl_wgrad3(p, r, re, i, c0, nc, f0, nf, dst, r > r0, out);
            }
            if (db)
                isa->conv_cl_dbias(d->dy + r * p->ow * F, (re - r) * p->ow, F, db);
        }
        if (r0 == r1) /* no rows: zeros */
            for (int64_t t = a; t < b; t++) {
                int64_t cb, fg, i;
                wg3_tile(t, w->ncb, &cb, &fg, &i);
                int64_t f0 = F * fg / nfg, nf = F * (fg + 1) / nfg - f0;
                for (int64_t o = f0; o < f0 + nf; o++)
                    for (int64_t j = 0; j < 3; j++)
                        memset(dst + (o * 9 + i * 3 + j) * cp + cb * 16, 0, 16 * sizeof(float));
            }
    }
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
    int64_t ncb = w.ncb, nfg = w.nfg, parts = w.parts;
    double *dbp = (double *)(scratch + parts * w.part_floats);
    NAT_PAR(nt, {
        if (w.three) {
            int th = nat_tid, nth = nat_nt;
            int64_t jobs = parts * ncb * nfg * 3;
            wg3_jobs(d, &p, &w, isa, jobs * th / nth, jobs * (th + 1) / nth, scratch, dbp);
        } else {
            int64_t jobs = parts * ncb * nfg;
            NAT_STATIC(jb, jobs) {
                int64_t part = jb / (ncb * nfg), cb = (jb / nfg) % ncb, fg = jb % nfg;
                int64_t n0 = s->n * part / parts, n1 = s->n * (part + 1) / parts;
                int64_t c0 = cb * CL_WG_CB, nc = C - c0 < CL_WG_CB ? C - c0 : CL_WG_CB;
                int64_t fb0 = fg * CL_WG_FB, nf = nfb - fb0 < CL_WG_FB ? nfb - fb0 : CL_WG_FB;
                isa->conv_cl_wgrad(&p, n0, n1, c0, nc, fb0, nf, scratch + part * w.part_floats);
            }
            /* db: dy summed over CL_DB_PARTS fixed ranges of the pixels, then (below) over
             * the ranges in order */
            if (d->db) {
                int64_t pix = s->n * s->p;
                NAT_STATIC(q, CL_DB_PARTS) {
                    int64_t k0 = pix * q / CL_DB_PARTS, k1 = pix * (q + 1) / CL_DB_PARTS;
                    memset(dbp + q * F, 0, (size_t)F * sizeof(double));
                    isa->conv_cl_dbias(d->dy + k0 * F, k1 - k0, F, dbp + q * F);
                }
            }
        }
        NAT_BARRIER();
        /* dW[o][c][t] = the parts' sums in order; db[o] the partial sums in order */
        NAT_STATIC(o, F) {
            for (int64_t t = 0; t < (w.direct ? 0 : khw); t++) /* the channels inner: 3x3's order */
                for (int64_t c = 0; c < C; c++) {
                    const float *src = scratch + (w.three ? (o * khw + t) * cp + c : (t * C + c) * fp + o);
                    float v = src[0];
                    for (int64_t q = 1; q < parts; q++)
                        v += src[q * w.part_floats];
                    d->dw[(o * C + c) * khw + t] = v;
                }
            if (d->db) {
                double v = 0.0;
                for (int64_t q = 0; q < w.dbparts; q++)
                    v += dbp[q * F + o];
                d->db[o] = (float)v;
            }
        }
    });
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
        int64_t sp = n * ch > 0 ? op_tensor_numel(t) / (n * ch) : 0;
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
        int64_t sp = n * ch > 0 ? op_tensor_numel(t) / (n * ch) : 0;
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
            int64_t sp = n * ch > 0 ? op_tensor_numel(t) / (n * ch) : 0;
            ref_layout_copy(copy[i], t->data, n, ch, sp, sizeof(float), true, nt);
        }
        cnn_mem_free(copy[i]);
    }
    return rc;
}
