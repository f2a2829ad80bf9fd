/* Internal to the native convolution, shared by its three files: native_conv.c (checks a
 * call, picks a path, sizes the scratch; the kernel entry points), native_conv_fwd.c (the
 * forward paths and the zero-padded input the GEMM paths gather im2col from) and
 * native_conv_bwd.c (backward to the data and to the weights).  Internal to ops/native/. */
#ifndef CNN_OPS_NATIVE_CONV_H
#define CNN_OPS_NATIVE_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/native/native_gemm.h"
#include "ops/native/native_isa.h"
#include "ops/op.h"
#include "ops/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Floats between scratch regions that different threads write (8 KB: a whole page between
 * them, which a prefetcher's stream does not cross).  A line next to another thread's stores
 * pulled in by the prefetcher made the first thread's image 1.4 times slower (LeNet-5's c2
 * backward to the data on 2 threads: 187-210 against 133 us for the same 32 images; with 1 KB
 * between them, 136-159).  With 1 KB, the channels-last forward's rings of padded rows
 * (native_conv_cl.c) still cost the thread of the higher one a third more time on the same
 * rows (resnet20's 64 -> 64 at 8x8, batch 64: 820 against 645 us a call; the other thread
 * took the slow place when the rings were swapped); with 8 KB, 652 and 679. */
#define NCONV_THREAD_GAP 2048

/* ---- geometry ---- */

typedef struct cshape {
    int sdims;
    int64_t n, c, h, w, f, groups, cpg, fpg;
    int64_t kf, p;           /* patch length cpg*kd*kh*kw, output positions od*oh*ow */
    op_native_convg g;       /* one group of one image */
} cshape;

/* ---- the zero-padded input the GEMM paths read (im2col without bounds checks) ---- */

typedef struct padded_in {
    const float *x;        /* [n][c][d][h][w] (d = 1 below 3-D) */
    const float *xp;       /* its zero-padded copy [n][c][dp][hp][wp], or x without padding */
    int64_t n, c, d, h, w, pd, ph, pw, dp, hp, wp;
    int64_t plane;         /* dp*hp*wp, one channel of the padded input */
    bool padded;
    int64_t *koff;         /* per patch row (c, a, i, j) of a group:
                            * c*dp*hp*wp + a*dd*hp*wp + i*dh*wp + j*dw */
} padded_in;

/* Floats in the (padded) input. */
static inline int64_t nconv_pad_total(const padded_in *pi)
{
    return pi->n * pi->c * pi->plane;
}

/* The padded input's dimensions (nothing placed yet). */
void nconv_pad_layout(padded_in *pi, const cshape *s);
/* Floats of scratch for the padded copy and the offsets. */
size_t nconv_pad_floats(const padded_in *pi, const cshape *s);
/* Places the padded copy and the offsets in scratch (nconv_pad_floats of it) and fills the
 * offsets. */
void nconv_pad_bind(padded_in *pi, const cshape *s, const float *x, float *scratch);
/* Input channel item (n*C + c) into its zero-padded copy (whole zero depth slices first and
 * last). */
void nconv_pad_item(const padded_in *pi, int64_t item);

/* The runs of output positions col0 .. col0+ncols (numbered over the whole batch, n*P + p)
 * as segments of the padded input; returns their number (at most ncols + 1).  Inline: called
 * for every B panel the GEMM paths pack. */
static inline int nconv_make_segs(const cshape *s, const padded_in *pi, int64_t col0,
                                  int64_t ncols, op_native_seg *seg)
{
    const op_native_convg *g = &s->g;
    int nseg = 0;
    int64_t n = col0 / s->p, p = col0 % s->p, ohw = g->oh * g->ow;
    int64_t oz = p / ohw, oy = (p % ohw) / g->ow, ox = p % g->ow;
    int64_t img = pi->c * pi->plane, slice = g->sd * pi->hp * pi->wp;
    for (int64_t done = 0; done < ncols;) {
        int64_t len = g->ow - ox < ncols - done ? g->ow - ox : ncols - done;
        seg[nseg].src = n * img + oz * slice + oy * g->sh * pi->wp + ox * g->sw;
        seg[nseg].dst = (int32_t)done;
        seg[nseg].len = (int32_t)len;
        nseg++;
        done += len;
        ox = 0;
        if (++oy == g->oh) {
            oy = 0;
            if (++oz == g->od) {
                oz = 0;
                n++;
            }
        }
    }
    return nseg;
}

/* ---- forward ---- */

/* The channels-last path's packed weights, kept between runs while the weights' version
 * (op_call.weights_version) and address stay: the state of a conv or conv_bwd_data call
 * (op_native_conv_prepare).  Inference repacks nothing; a training step packs once. */
typedef struct nconv_wcache {
    float *wp;
    size_t floats;
    uint64_t version;
    const float *src;
    bool valid;
    bool wino;             /* wp holds Winograd's transformed weights (native_conv_wino.c) */
} nconv_wcache;

/* The input rows (or columns) [*lo, *hi) of a fused max pooling's output o: window size at
 * stride, less padding pad, clipped to [0, limit) (padding never wins). */
static inline void nconv_pool_range(int64_t o, int64_t stride, int64_t pad, int64_t size, int64_t limit, int64_t *lo,
                                    int64_t *hi)
{
    int64_t a = o * stride - pad, b = a + size;
    *lo = a < 0 ? 0 : a;
    *hi = b > limit ? limit : b;
}

/* The cache wc's buffer for `need` floats of prepared weights (Winograd's transformed ones when
 * wino, else the direct kernels' packing) of the weights src at version, or NULL (no cache, or
 * out of memory: prepare them into the scratch); *prepare: whether they must be prepared (not
 * already there).  The cache stays invalid until nconv_wcache_keep says the run prepared them. */
float *nconv_wcache_take(nconv_wcache *wc, size_t need, bool wino, uint64_t version, const float *src, bool *prepare);
void nconv_wcache_keep(nconv_wcache *wc, const float *buf, bool wino, uint64_t version, const float *src);

typedef struct conv_fwd {
    nconv_wcache *wcache;  /* or NULL: packed into the scratch at every call */
    uint64_t wversion;
    cshape s;
    const float *x, *w, *b, *r;
    float *y;             /* the output (the pooled one with a fused pool) */
    float *t;             /* the convolution's output before pooling (y without pooling) */
    float *kept;          /* pool_keep: the activated output before pooling, output 0 */
    op_act act;
    float alpha;
    bool pool;
    int64_t psh, psw, pst_h, pst_w, pph, ppw, yh, yw;
    bool direct;
    bool first;           /* direct, a first layer: from one zero-padded copy per image (conv_plane_pad) */
    padded_in in;         /* the GEMM path's view of x */
} conv_fwd;

/* The first-layer paths' zero-padded copy of one image (conv_plane_pad, conv_wgrad_pad): per
 * input channel, h rows and a zero row, each nconv_first_wp floats (w + 2 pw + 32, rounded up
 * to 16); nconv_first_pad_floats in all. */
int64_t nconv_first_wp(const cshape *s);
size_t nconv_first_pad_floats(const cshape *s);
/* Image n of x into its padded copy xp. */
void nconv_first_pad(const cshape *s, const float *x, int64_t n, float *xp);

/* Scratch of a forward convolution, in this order: the GEMM's (or the direct loop's planes),
 * the unpooled output when pooling is fused, the padded input and the patch offsets. */
typedef struct fwd_scratch {
    size_t gemm, pool, pad;  /* floats */
} fwd_scratch;

/* Floats of each part of the forward scratch on isa (sc) and their bytes in total; lays out
 * f->in for the GEMM path. */
size_t nconv_fwd_scratch_parts(conv_fwd *f, const op_native_isa *isa, int nt, fwd_scratch *sc);
/* Runs a set-up forward convolution (data pointers filled in) on the path f->direct names. */
void nconv_fwd_run(conv_fwd *f, const op_native_isa *isa, int nt, float *scratch);

/* ---- backward to the data ---- */

typedef struct conv_bwd_data {
    cshape s;              /* the forward convolution: x = dx, y = dy */
    bool transform;        /* stride 1: a forward convolution of dy with flipped weights */
    conv_fwd fw;           /* that convolution */
    const float *dy, *w;
    float *dx;
} conv_bwd_data;

/* The transformed weights W'[g*cpg + c][f][a][i][j] = W[g*fpg + f][c][kd-1-a][kh-1-i][kw-1-j]. */
void nconv_flip_weights(const conv_bwd_data *d, float *wt);
/* Bytes of scratch of either path on isa: the flipped weights and the forward convolution's,
 * or the col2im GEMM's. */
size_t nconv_bd_scratch_bytes(conv_bwd_data *d, const op_native_isa *isa, int nt);
/* The outer-product path (isa->conv_cl_scatter): whether it takes d (one group, column
 * dilation 1, 2-D, dx of fewer than 16 channels, kh*kw*c <= 160), its scratch in floats, and
 * the run (dy and dx channels-last when cl, else plain through per-image copies).  LeNet-5's 6 <- 16 channels 5x5 at batch 64, one
 * thread: 85 GFLOP/s, oneDNN's 66. */
bool nconv_bd_scatter_fits(const conv_bwd_data *d, const op_native_isa *isa);
size_t nconv_bd_scatter_floats(const conv_bwd_data *d, int nt);
void nconv_bd_scatter(conv_bwd_data *d, bool cl, const op_native_isa *isa, int nt, float *scratch);
/* The col2im path (where the transform does not apply): col = W^T dY per image and group,
 * scattered into dx. */
void nconv_bd_col2im(conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch);

/* ---- backward to the weights ---- */

typedef struct conv_bwd_w {
    cshape s;
    const float *dy, *x;
    float *dw, *db;
    int64_t ksplit;
    padded_in in;
    bool direct;           /* few filters per group: per (filter, channel) pair, no GEMM */
    bool first;            /* a first layer (as the forward's, kernel 3, 5 or 7 wide): per
                            * filter from padded copies of the images (conv_wgrad_pad) */
} conv_bwd_w;

/* Floats of the GEMM path's own scratch (the largest over the ISA levels); the padded input
 * and the offsets follow it. */
size_t nconv_bw_gemm_floats(conv_bwd_w *d, int nt);
/* The direct path: few filters per group. */
void nconv_bw_direct(conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch);
/* The outer-product path (isa->conv_cl_wgrad_outer): whether it takes d (one group, 2-D,
 * column dilation 1, fewer than 16 channels, kw * c <= 30), its scratch in floats, and the run
 * (x and dy channels-last when cl, else plain through copies).  resnet20's 3 -> 16 first layer
 * and LeNet-5's 6 -> 16 second one. */
bool nconv_bw_outer_fits(const conv_bwd_w *d, const op_native_isa *isa);
size_t nconv_bw_outer_floats(const conv_bwd_w *d);
void nconv_bw_outer(conv_bwd_w *d, bool cl, const op_native_isa *isa, int nt, float *scratch);
/* The first-layer path (isa->conv_wgrad_pad): its scratch in floats, and the run. */
size_t nconv_bw_first_floats(const cshape *s);
void nconv_bw_first(conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch);
/* The GEMM path: dW = dY im2col(X)^T over the images, db with it when bias. */
void nconv_bw_gemm(conv_bwd_w *d, bool bias, const op_native_isa *isa, int nt, float *scratch);

/* ---- channels-last activations (native_conv_cl.c) ---- */

enum { NCONV_PLAIN, NCONV_CL, NCONV_MIXED };

/* The layout of a call's activations acts (indices: inputs, then nin + outputs): NCONV_PLAIN,
 * NCONV_CL (every one channels-last or of one channel or position), NCONV_MIXED; -1 for a
 * blocked tensor. */
int nconv_layout_mode(const op_call *c, const int *acts, int nacts);
/* Runs `run` on plain copies of the channels-last activations acts, copying the outputs back. */
int nconv_via_plain(op_call *c, const int *acts, int nacts, int (*run)(op_call *, char *, size_t),
                    char *err, size_t errlen);
/* Whether the level's direct channels-last kernels take convolution s (2-D or 1-D, one group). */
bool nconv_cl_fits(const cshape *s, const op_native_isa *isa);
/* Floats of scratch of the channels-last forward of s on nt threads (packed weights, each
 * thread's padded input rows). */
size_t nconv_cl_fwd_floats(const cshape *s, int nt);
void nconv_cl_fwd(const conv_fwd *f, const op_native_isa *isa, int nt, float *scratch);
/* Backward data at stride 1 (d->transform), through d->fw's shape. */
void nconv_cl_bwd_data(const conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch);
size_t nconv_cl_bw_floats(const cshape *s, const op_native_isa *isa);
void nconv_cl_bwd_w(const conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch);

/* ---- Winograd's F(4x4, 3x3), channels-last (native_conv_wino.c) ---- */

/* Whether the Winograd path takes convolution s on isa (3x3, stride 1, padding 1, 16k channels
 * and filters, 2-D, one group, a level with the tile kernel). */
bool nconv_wino_fits(const cshape *s, const op_native_isa *isa);
/* Floats of scratch for nt threads. */
size_t nconv_wino_floats(const cshape *s, int nt);
/* The forward's scratch in floats (pooled: with the activated output, for a fused pooling whose
 * input is not kept), and the run (x, y and the residual channels-last; a fused max pooling
 * after). */
size_t nconv_wino_fwd_floats(const cshape *s, bool pooled, int nt);
void nconv_wino_fwd(const conv_fwd *f, const op_native_isa *isa, int nt, float *scratch);
void nconv_wino_bwd_data(const conv_bwd_data *d, const op_native_isa *isa, int nt, float *scratch);
/* The weight gradient (and the bias's) by the same transforms: whether it takes s, its scratch
 * in floats, the run (x and dy channels-last). */
bool nconv_wino_wgrad_fits(const cshape *s, const op_native_isa *isa);
size_t nconv_wino_wgrad_floats(const cshape *s, int nt);
void nconv_wino_bwd_w(const conv_bwd_w *d, const op_native_isa *isa, int nt, float *scratch);

#endif
