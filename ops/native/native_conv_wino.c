/* Native convolution by Winograd's F(4x4, 3x3) on channels-last activations (the tile kernel
 * op_native_isa.wino_tiles, avx512: ops/native/wino_avx512.c): 3x3 kernels, stride 1,
 * padding 1, no dilation, one group, 16k channels and 16k filters, 2-D.  A node runs it when it
 * asks for Winograd (attrs.conv.winograd, compiler/pass_conv_algo.c: by measurement under
 * tuning) and the call fits; otherwise the direct kernels run it (native_conv.c).
 *   forward        the weights transformed once per version (U = G g G^T, kept with the
 *                  call's packed-weight cache), then jobs of OP_NATIVE_WINO_TJ output tiles
 *                  split evenly between the threads (consecutive jobs each), each through the
 *                  thread's own scratch (with fewer than two jobs a thread, a job's filters in
 *                  chunks, each chunk a job); the bias, the residual and a ReLU in the kernel, any
 *                  other activation in a pass after; a fused max pooling in a pass after that,
 *                  from the activated output (kept as output 0, or in the scratch);
 *   backward data  padding 1 stays padding 1 (3x3): the same on dy with the flipped, transposed
 *                  weights;
 *   backward wts   dU[xi][c][f] = the sum over the tiles of (B^T d B)[xi][c] (A dy A^T)[xi][f]
 *                  (d a tile's input pixels, dy its output gradient), in parts of the tiles
 *                  fixed by the shapes (WG_PARTS at most, fewer when their sums would pass
 *                  WG_PART_BYTES; a part's filters split in chunks when the parts are fewer
 *                  than WG_PARTS), each part's sums in tile order, then summed over the parts
 *                  in order and dW = G^T dU G; the bias gradient over as many fixed ranges of
 *                  the pixels (op_native_isa.conv_cl_dbias), summed in order.
 * G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].  Its
 * results round differently from direct convolution's (relative differences about 1e-6 to
 * 1e-5, as oneDNN's Winograd), but each output's arithmetic is fixed by the shapes. */
#include <math.h>
#include <string.h>

#include "ops/mem.h"
#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/native_conv.h"

#define TJ OP_NATIVE_WINO_TJ
#define TJW OP_NATIVE_WINO_TJW

static inline int64_t round16(int64_t v)
{
    return (int64_t)op_native_round16((size_t)v);
}

/* The geometry the tile kernels take. */
static bool geometry_fits(const cshape *s)
{
    const op_native_convg *g = &s->g;
    return s->sdims == 2 && s->groups == 1 && s->n > 0 && s->c > 0 && s->f > 0 && s->c % 16 == 0 && s->f % 16 == 0 &&
           g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->ph == 1 &&
           g->pw == 1 && g->oh == s->h && g->ow == s->w && s->h > 0 && s->w > 0;
}

bool nconv_wino_fits(const cshape *s, const op_native_isa *isa)
{
    return isa->wino_tiles && geometry_fits(s);
}

bool nconv_wino_wgrad_fits(const cshape *s, const op_native_isa *isa)
{
    return isa->wino_wgrad && geometry_fits(s);
}

/* Floats of the transformed weights, and of one thread's tile scratch (v, then m). */
static int64_t u_floats(const cshape *s)
{
    return round16(36 * s->c * s->f);
}

static int64_t job_floats(const cshape *s, int64_t tj)
{
    return 36 * tj * (s->c + s->f) + NCONV_THREAD_GAP;
}

size_t nconv_wino_floats(const cshape *s, int nt)
{
    return (size_t)(u_floats(s) + NCONV_THREAD_GAP + (nt > 1 ? nt : 1) * job_floats(s, TJ));
}

/* o = G (a, b, d)^T: one column (or row) of a 3x3 kernel to the 6 points */
static inline void g6(float a, float b, float d, float o[6])
{
    o[0] = a * 0.25f;
    o[1] = (a + b + d) * (-1.0f / 6.0f);
    o[2] = (a - b + d) * (-1.0f / 6.0f);
    o[3] = a * (1.0f / 24.0f) + b * (1.0f / 12.0f) + d * (1.0f / 6.0f);
    o[4] = a * (1.0f / 24.0f) - b * (1.0f / 12.0f) + d * (1.0f / 6.0f);
    o[5] = d;
}

/* o = G^T s: the 6 points back to 3 (the adjoint of g6) */
static inline void gt3(const float s[6], float o[3])
{
    o[0] = s[0] * 0.25f - (s[1] + s[2]) * (1.0f / 6.0f) + (s[3] + s[4]) * (1.0f / 24.0f);
    o[1] = (s[2] - s[1]) * (1.0f / 6.0f) + (s[3] - s[4]) * (1.0f / 12.0f);
    o[2] = (s[3] + s[4] - s[1] - s[2]) * (1.0f / 6.0f) + s[5];
}

/* U[xi][o/16][c][o%16] = (G g G^T)[xi] for filter o's channel c, g = w[o][c] (or, with flip,
 * w[c][o] turned by 180 degrees: backward data), for the channel blocks cb (16 filters each) of
 * this thread's share. */
static void transform_weights(const float *w, int64_t C, int64_t F, bool flip, float *u, int64_t o0,
                              int64_t c)
{
    int64_t nfb = F / 16;
    for (int l = 0; l < 16; l++) {
        int64_t o = o0 + l;
        float g[9], t[6][3], r[6];
        for (int k = 0; k < 9; k++)
            g[k] = flip ? w[(c * F + o) * 9 + (8 - k)] : w[(o * C + c) * 9 + k];
        for (int j = 0; j < 3; j++) { /* G g: the kernel's columns */
            g6(g[j], g[3 + j], g[6 + j], r);
            for (int i = 0; i < 6; i++)
                t[i][j] = r[i];
        }
        for (int i = 0; i < 6; i++) { /* (G g) G^T: its rows */
            g6(t[i][0], t[i][1], t[i][2], r);
            for (int j = 0; j < 6; j++)
                u[(((i * 6 + j) * nfb + o0 / 16) * C + c) * 16 + l] = r[j];
        }
    }
}

/* The fused max pooling of the activated output t (channels-last, the convolution's size) into
 * f->y (channels-last), the images of this thread's share; padding never wins. */
static void pool_cl(const conv_fwd *f, const float *t, int nat_tid, int nat_nt)
{
    const cshape *s = &f->s;
    int64_t F = s->f, h = s->h, w = s->w;
    NAT_STATIC(r, s->n * f->yh) {
        int64_t n = r / f->yh, h0, h1;
        nconv_pool_range(r % f->yh, f->pst_h, f->pph, f->psh, h, &h0, &h1);
        for (int64_t ox = 0; ox < f->yw; ox++) {
            int64_t w0, w1;
            nconv_pool_range(ox, f->pst_w, f->ppw, f->psw, w, &w0, &w1);
            float *restrict d = f->y + ((n * f->yh + r % f->yh) * f->yw + ox) * F;
            for (int64_t k = 0; k < F; k++)
                d[k] = -INFINITY;
            for (int64_t i = h0; i < h1; i++)
                for (int64_t j = w0; j < w1; j++) {
                    const float *restrict q = t + ((n * h + i) * w + j) * F;
#pragma omp simd
                    for (int64_t k = 0; k < F; k++)
                        d[k] = q[k] > d[k] ? q[k] : d[k];
                }
        }
    }
}

/* Runs convolution s (x -> y, the kernel's weights w: [F][C][3][3], or with flip the forward
 * weights [C][F][3][3] of the convolution this is the backward of) in one parallel region;
 * with f's fused pooling, y is the activated output and the pooled one goes to f->y. */
static void wino_run(const conv_fwd *f, const float *w, bool flip, const float *x, const float *bias,
                     const float *res, float *y, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &f->s;
    int64_t C = s->c, F = s->f;
    float *u = scratch, *jobs_at = scratch + u_floats(s) + NCONV_THREAD_GAP;
    bool transform;
    float *kept = nconv_wcache_take(f->wcache, (size_t)u_floats(s), true, f->wversion, w, &transform);
    if (kept) /* (else transformed into the scratch, as without a cache) */
        u = kept;
    op_native_wino p = {.n = s->n, .h = s->h, .w = s->w, .c = C, .f = F, .tiles_h = (s->h + 3) / 4,
                        .tiles_w = (s->w + 3) / 4, .x = x, .u = u, .bias = bias, .res = res, .y = y,
                        .relu = f->act == OP_ACT_RELU};
    int64_t tiles = p.n * p.tiles_h * p.tiles_w, njobs = (tiles + TJ - 1) / TJ, per = job_floats(s, TJ);
    /* few jobs for the threads (a small image at batch 1): each job's filters in chunks too,
     * each chunk transforming the job's input again */
    int64_t nfb = F / 16, chunks = 1;
    while (njobs * chunks < 2 * nt && chunks * 2 <= nfb)
        chunks *= 2;
    bool post = f->act != OP_ACT_NONE && f->act != OP_ACT_RELU;
    int64_t len = s->h * s->w * F; /* one image's outputs (the pass after) */
    NAT_PAR(nt, {
        if (transform) {
            NAT_STATIC(k, F / 16 * C)
                transform_weights(w, C, F, flip, u, k / C * 16, k % C);
            NAT_BARRIER();
        }
        float *v = jobs_at + nat_tid * per, *m = v + 36 * TJ * C;
        NAT_STATIC(j, njobs * chunks) {
            int64_t t0 = j / chunks * TJ, q = j % chunks;
            isa->wino_tiles(&p, t0, tiles - t0 < TJ ? tiles - t0 : TJ, nfb * q / chunks, nfb * (q + 1) / chunks, v, m);
        }
        if (post) {
            NAT_BARRIER();
            NAT_STATIC(i, s->n) {
                float *yi = y + i * len;
                isa->epilogue(yi, yi, len, 0.0f, NULL, NULL, f->act, f->alpha);
            }
        }
        if (f->pool) {
            NAT_BARRIER();
            pool_cl(f, y, nat_tid, nat_nt);
        }
    });
    nconv_wcache_keep(f->wcache, kept, true, f->wversion, w);
}

size_t nconv_wino_fwd_floats(const cshape *s, bool pooled, int nt)
{
    return nconv_wino_floats(s, nt) + (pooled ? (size_t)round16(s->n * s->h * s->w * s->f) : 0);
}

void nconv_wino_fwd(const conv_fwd *f, const op_native_isa *isa, int nt, float *scratch)
{
    /* with a fused pooling, the activated output into the kept output (or after the scratch) */
    float *y = !f->pool ? f->y : f->kept ? f->kept : scratch + nconv_wino_floats(&f->s, nt);
    wino_run(f, f->w, false, f->x, f->b, f->r, y, isa, nt, scratch);
}

void nconv_wino_bwd_data(const conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch)
{
    /* the transformed convolution d->fw: its channels are the forward filters and back */
    wino_run(&d->fw, d->w, true, d->dy, NULL, NULL, d->dx, isa, nt, scratch);
}

/* ---- backward to the weights ---- */

/* Parts of the weight gradient's tiles, fewer when all parts' sums would pass WG_PART_BYTES.
 * With 2 MB, resnet20's 64 -> 64 at batch 64 took 3 parts of two filter chunks, each chunk
 * transforming its part's input again: 315 GFLOP/s on 2 threads; with 8 MB, 4 parts of all the
 * filters: 414 (bench_native --wino, oneDNN's Winograd 370-375 beside each). */
#define WG_PARTS 4
#define WG_PART_BYTES (8 * 1024 * 1024)

/* The weight gradient's parts of the tiles and chunks of the filter blocks (fixed by the
 * shapes), and the floats of one part's sums. */
typedef struct wg_split {
    int64_t tiles, jobs, parts, chunks, part_floats;
} wg_split;

static void wg_split_of(const cshape *s, wg_split *w)
{
    w->tiles = s->n * ((s->h + 3) / 4) * ((s->w + 3) / 4);
    w->jobs = (w->tiles + TJW - 1) / TJW;
    w->part_floats = u_floats(s);
    int64_t p = WG_PARTS;
    while (p > 1 && p * w->part_floats * (int64_t)sizeof(float) > WG_PART_BYTES)
        p--;
    w->parts = p < w->jobs ? p : (w->jobs > 0 ? w->jobs : 1);
    int64_t nfb = s->f / 16, k = (WG_PARTS + w->parts - 1) / w->parts;
    w->chunks = k < nfb ? k : nfb;
}

/* Floats of the bias gradient's partial sums (parts x f doubles), last in the scratch. */
static int64_t db_floats(const cshape *s, const wg_split *w)
{
    return round16(2 * w->parts * s->f);
}

size_t nconv_wino_wgrad_floats(const cshape *s, int nt)
{
    wg_split w;
    wg_split_of(s, &w);
    return (size_t)(w.parts * w.part_floats + NCONV_THREAD_GAP + (nt > 1 ? nt : 1) * job_floats(s, TJW) +
                    db_floats(s, &w));
}

/* dw[o][c][3][3] = G^T s G for the 16 filters o0 .. o0+16 of channel c, s[xi][l] the sum over
 * the parts (in order) of their dU[xi][c][o0 + l]. */
static void inverse_transform(const float *du, int64_t parts, int64_t part_floats, int64_t C, int64_t F, int64_t c,
                              int64_t o0, float *dw)
{
    float sx[36][16];
    for (int xi = 0; xi < 36; xi++) {
        const float *d = du + (xi * C + c) * F + o0;
        for (int l = 0; l < 16; l++)
            sx[xi][l] = d[l];
        for (int64_t p = 1; p < parts; p++)
            for (int l = 0; l < 16; l++)
                sx[xi][l] += d[p * part_floats + l];
    }
    for (int l = 0; l < 16; l++) {
        float t[3][6], col[6], r[3];
        for (int j = 0; j < 6; j++) { /* G^T s: the columns */
            for (int i = 0; i < 6; i++)
                col[i] = sx[i * 6 + j][l];
            gt3(col, r);
            for (int i = 0; i < 3; i++)
                t[i][j] = r[i];
        }
        for (int i = 0; i < 3; i++) /* (G^T s) G: the rows, into filter o0 + l's kernel */
            gt3(t[i], dw + ((o0 + l) * C + c) * 9 + i * 3);
    }
}

void nconv_wino_bwd_w(const conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch)
{
    const cshape *s = &d->s;
    int64_t C = s->c, F = s->f, nfb = F / 16;
    wg_split w;
    wg_split_of(s, &w);
    float *du = scratch, *jobs_at = scratch + w.parts * w.part_floats + NCONV_THREAD_GAP;
    int64_t per = job_floats(s, TJW);
    double *dbp = (double *)(jobs_at + (nt > 1 ? nt : 1) * per);
    int64_t pixels = s->n * s->h * s->w;
    op_native_wino p = {.n = s->n, .h = s->h, .w = s->w, .c = C, .f = F, .tiles_h = (s->h + 3) / 4,
                        .tiles_w = (s->w + 3) / 4, .x = d->x, .dy = d->dy};
    NAT_PAR(nt, {
        float *v = jobs_at + nat_tid * per, *m = v + 36 * TJW * C;
        NAT_STATIC(it, w.parts * w.chunks) {
            int64_t part = it / w.chunks, q = it % w.chunks;
            int64_t fb0 = nfb * q / w.chunks, fb1 = nfb * (q + 1) / w.chunks;
            float *dup = du + part * w.part_floats;
            for (int64_t r = 0; r < 36 * C; r++)
                memset(dup + r * F + fb0 * 16, 0, (size_t)(fb1 - fb0) * 16 * sizeof(float));
            for (int64_t j = w.jobs * part / w.parts, j1 = w.jobs * (part + 1) / w.parts; j < j1; j++) {
                int64_t t0 = j * TJW;
                isa->wino_wgrad(&p, t0, w.tiles - t0 < TJW ? w.tiles - t0 : TJW, fb0, fb1, v, m, dup);
            }
            if (d->db && q == 0) {
                int64_t r0 = pixels * part / w.parts, r1 = pixels * (part + 1) / w.parts;
                memset(dbp + part * F, 0, (size_t)F * sizeof(double));
                isa->conv_cl_dbias(d->dy + r0 * F, r1 - r0, F, dbp + part * F);
            }
        }
        NAT_BARRIER();
        NAT_STATIC(k, C * nfb)
            inverse_transform(du, w.parts, w.part_floats, C, F, k / nfb, k % nfb * 16, d->dw);
        if (d->db) {
            NAT_STATIC(o, F) {
                double sum = dbp[o];
                for (int64_t q = 1; q < w.parts; q++)
                    sum += dbp[q * F + o];
                d->db[o] = (float)sum;
            }
        }
    });
}
