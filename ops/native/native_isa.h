/* The interface between the native backend's drivers (native_*.c, compiled with the default
 * flags) and its per-ISA translation units (gemm_<isa>.c with the GEMM micro-kernel, conv_<isa>.c
 * with the convolution packers, each compiled with its own -m flags).  One table per ISA,
 * filled at compile time; native_kernels.c picks one at start-up.  Internal to ops/native/.
 *
 * The GEMM is C (+)= A B with A packed in row panels of MR rows ([k][MR], k-major) and B in
 * column panels of NR columns ([k][NR]); padding rows/columns are zero. */
#ifndef CNN_OPS_NATIVE_ISA_H
#define CNN_OPS_NATIVE_ISA_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"

/* A convolution as the packers see one group of one image: cpg input channels of h x w, the
 * kernel and its sweep, and the oh x ow output (before any fused pooling).  The depth axis
 * (3-D convolutions; depth 1, kernel 1, stride 1, pad 0, dilation 1 otherwise) is read only
 * by the GEMM drivers: the ISA routines that take this struct see 2-D planes. */
typedef struct op_native_convg {
    int64_t c, h, w;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t oh, ow;
    int64_t d, kd, sd, pd, dd, od;
} op_native_convg;

/* A run of consecutive GEMM columns read from one input row: columns dst .. dst+len of a
 * panel take the input at src, src + s, ..., src + (len-1) s (s the convolution's stride),
 * relative to each patch row's offset. */
typedef struct op_native_seg {
    int64_t src;
    int32_t dst, len;
} op_native_seg;

#define OP_NATIVE_MAX_NR 64  /* the widest micro-tile of any level */

/* A channels-last 2-D convolution (one group) as the avx512 level's direct kernels see it:
 * x [n][h][w][c], y [n][oh][ow][f], weights packed in blocks of 16 filters, each block's
 * taps and channels in a run: wp[fp/16][kh][kw][c][16] (fp = f rounded up to 16, zero
 * filters beyond f); res, when not NULL, is added after the bias (it may be y
 * itself).
 * Backward data at stride 1 is this with dy as x and the flipped, transposed weights. */
typedef struct op_native_clconv {
    int64_t n, h, w, c, oh, ow, f, fp;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    const float *x, *wp, *bias, *res;
    float *y;
} op_native_clconv;

/* A channels-last 2-D convolution by Winograd's F(4x4, 3x3) (3x3, stride 1, padding 1: the
 * output as large as the input), as the avx512 level's tile kernels see it: x [n][h][w][c],
 * y (or dy) [n][h][w][f], c and f multiples of 16; the output in tiles of 4x4 pixels, numbered
 * image by image, row by row (tiles_w = ceil(w / 4) a row, tiles_h rows).  Forward: u the
 * transformed weights [36][f/16][c][16] (native_conv_wino.c); bias (or NULL) and res (or NULL,
 * it may be y) added, then a ReLU when relu.  v and m are the calling thread's scratch, one
 * slot per tile of the call: [slot][36][c] and [slot][36][f] floats, 64-byte aligned; a call
 * takes at most OP_NATIVE_WINO_TJ tiles in the forward, OP_NATIVE_WINO_TJW in the weight
 * gradient (whose sums then pass through du half as often), the scratch's slots. */
#define OP_NATIVE_WINO_TJ 16
#define OP_NATIVE_WINO_TJW 32
typedef struct op_native_wino {
    int64_t n, h, w, c, f, tiles_h, tiles_w;
    const float *x, *u, *bias, *res, *dy;
    float *y;
    bool relu;
} op_native_wino;

/* The ring of padded input rows of op_native_isa.conv_cl_row, for one thread: the rows'
 * tags (OP_NATIVE_CL_RING_TAGS int64), then op_native_cl_ring_slots slots of (w + 2 pw) * c
 * floats (rounded up to 16); all tags -1 (op_native_cl_ring_reset) before the thread's first
 * row of a call.  (kh-1)*dh + 1 slots let one output row's tap rows take distinct slots (row
 * iy in slot iy mod slots); beyond OP_NATIVE_CL_RING_TAGS, kh slots copied for each row. */
#define OP_NATIVE_CL_RING_TAGS 64
static inline int64_t op_native_cl_ring_slots(int64_t kh, int64_t dh)
{
    int64_t ns = (kh - 1) * dh + 1;
    return ns <= OP_NATIVE_CL_RING_TAGS ? ns : kh;
}
static inline int64_t op_native_cl_ring_floats(int64_t kh, int64_t dh, int64_t w, int64_t pw, int64_t c)
{
    int64_t row = ((w + 2 * pw) * c + 15) / 16 * 16;
    return 2 * OP_NATIVE_CL_RING_TAGS + op_native_cl_ring_slots(kh, dh) * row;
}
static inline void op_native_cl_ring_reset(float *ring)
{
    int64_t *tag = (int64_t *)(void *)ring;
    for (int k = 0; k < OP_NATIVE_CL_RING_TAGS; k++)
        tag[k] = -1;
}

typedef struct op_native_clwgrad {
    int64_t n, h, w, c, oh, ow, f, fp;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    const float *x, *dy;
} op_native_clwgrad;

/* Channels-last backward to the data by outer products (one group, column dilation 1): for
 * each dy pixel, its F values times the packed weights wp[f][nv*16] (columns (i, j, c) of
 * W[f][c][i][j], zero beyond kh*kw*c) give kh runs of kw*c floats, added to a zero-padded dx
 * image dxp (row (oy*sh + i*dh), pixel (ox*sw + j) for output pixel (oy, ox); wpad floats a
 * row). */
typedef struct op_native_clscatter {
    const float *dy, *wp;
    int64_t f, c, kh, kw, oh, ow, sh, sw, dh, nv, wpad;
} op_native_clscatter;

/* The weight gradient by outer products (channels-last, one group, column dilation 1, few
 * channels): over the output pixels of images n0 .. n1, dy's vector of 16 filters (from fb*16;
 * zero beyond f) times the input values its taps read, for the kernel rows i0 .. i0+nb: xp
 * holds the images zero-padded channels-last (row r*wpix*c, pixel x*c; istride floats an
 * image), out[((q*kw + j)*c + cc)*16 + lane] the sums of row i0+q, stored. */
typedef struct op_native_clouter {
    const float *xp, *dy;
    int64_t f, c, kw, oh, ow, sh, sw, dh, wpix, istride;
} op_native_clouter;

typedef struct op_native_isa {
    const char *name;
    int mr, nr;     /* micro-tile: MR rows of C by NR columns */
    /* c[MR][NR] (row stride ldc) = (accumulate ? c : 0) + a[kc][MR]^T b[kc][NR] */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int accumulate);
    /* Transposing pack: dst[k*width + r] = src[r*ld + k] for r < rows, 0 for rows <= r < width */
    void (*pack_t)(const float *src, int64_t ld, int64_t rows, int64_t kc, int width, float *dst);
    /* Copying pack: dst[k*width + r] = src[k*ld + r] for r < cols, 0 for cols <= r < width */
    void (*pack_n)(const float *src, int64_t ld, int64_t cols, int64_t kc, int width, float *dst);
    /* y[j] = act(c[j] + (bias_vec ? bias_vec[j] : bias) + (res ? res[j] : 0)), j < n; y may be
     * res or c (same elements). */
    void (*epilogue)(float *y, const float *c, int64_t n, float bias, const float *bias_vec,
                     const float *res, op_act act, float alpha);
    /* y = softmax(y) over n values (maximum subtracted) */
    void (*softmax)(float *y, int64_t n);
    /* im2col from a padded input into a column panel: for kk < kc, row kk of dst (width
     * floats) takes base[koff[kk] + seg.src + t*stride] at column seg.dst + t for each of the
     * nseg segments; columns ncols..width are zero.  base[0 .. avail) may be read (runs are
     * read in whole vectors where that stays inside). */
    void (*pack_seg)(const float *base, int64_t avail, const int64_t *koff, int64_t kc,
                     const op_native_seg *seg, int nseg, int64_t stride, int64_t ncols, int width,
                     float *dst);
    /* Direct convolution of one output plane: acc[oh*ow] = sum over the g->c channels of x and
     * their taps of w[c][kh][kw] (used when a group has too few filters for the GEMM). */
    void (*conv_plane)(const op_native_convg *g, const float *x, const float *w, float *acc);
    /* conv_plane from a zero-padded copy of the image's g->c input planes (NULL on the levels
     * without one): plane c's row r at xp + (c * (g->h + 1) + r) * wp, g->pw zeros left of it
     * and zeros to wp right (wp >= w + 2 pw + 32), a zero row after each plane; for rows of at
     * most 32 outputs at column stride and dilation 1 (nconv_fwd's first-layer path).  nf
     * (1 to 3) filters at once: their weights wstride floats apart, their planes astride. */
    void (*conv_plane_pad)(const op_native_convg *g, const float *xp, int64_t wp, const float *w, int64_t wstride,
                           int nf, float *acc, int64_t astride);
    /* The weight gradient of one filter from the same padded copies (NULL on the levels without
     * one; kernels 3, 5 or 7 wide): out[(c*kh + i)*kw + j] = sum over the nimg images (copies
     * istride floats apart, dy planes dstride floats apart) and their outputs of
     * dy[oy][ox] * x[c][oy*sh - ph + i*dh][ox - pw + j], stored; per vector lane in a fixed
     * order, whatever the threads (nconv's first-layer backward). */
    void (*conv_wgrad_pad)(const op_native_convg *g, const float *xp, int64_t wp, int64_t istride,
                           const float *dy, int64_t dstride, int64_t nimg, float *out);
    /* The weight gradient by outer products (NULL on the levels without one): nb * kw * c <= 30
     * accumulators. */
    void (*conv_cl_wgrad_outer)(const op_native_clouter *p, int64_t n0, int64_t n1, int64_t fb, int64_t i0,
                                int64_t nb, float *out);
    /* Channels-last backward to the data of image n by outer products into its padded dx
     * (added; NULL on the levels without one; nv <= 10 vectors a pixel). */
    void (*conv_cl_scatter)(const op_native_clscatter *p, int64_t n, float *dxp);
    /* Weight gradient of one (input channel, filter) pair over one image, added to acc:
     * acc[i*kw + j] += sum over outputs of dy[oy][ox] * x[oy*sh - ph + i*dh][ox*sw - pw + j*dw]
     * (x one h x w plane, dy one oh x ow plane; the direct path's backward). */
    void (*conv_wgrad)(const op_native_convg *g, const float *x, const float *dy, double *acc);
    /* Channels-last direct convolution (NULL on the levels without one): output row oy of
     * image n, the filters of blocks fb0 .. fb1 (16 each), y = conv + bias (no activation).
     * buf is the calling thread's ring of zero-padded input rows (op_native_cl_ring_floats,
     * reset before the thread's first row of a call): a row copied for one output row serves
     * the next ones. */
    void (*conv_cl_row)(const op_native_clconv *p, int64_t n, int64_t oy, int64_t fb0, int64_t fb1, float *buf);
    /* Channels-last weight gradient (NULL where none): dw[tap][c][fp] for the channels c0 ..
     * c0+nc (nc <= 16) and filter blocks fb0 .. fb0+nfb (nfb <= 4) of every tap, summed over
     * the images n0 .. n1 in order, stored (not added) at dw (the whole packed array). */
    void (*conv_cl_wgrad)(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0,
                          int64_t nc, int64_t fb0, int64_t nfb, float *dw);
    /* The same for a 3x3 kernel (NULL where none), in another order and a row range at a
     * time: dw[f][tap][cp] (cp = c rounded up to 16) for the three taps of kernel row i, the
     * channels c0 .. c0+nc (nc <= 16, c0 a multiple of 16) and the filters f0 .. f0+nf
     * (nf <= 8), summed over the output rows r0 .. r1 (row r: image r / oh, row r % oh) in
     * order, added to dw when add (else stored).  When out is not NULL the sums go there
     * instead, in the weights' own layout (filter f's tap (i, j) of channel c at
     * out[(f*p->c + c)*9 + i*3 + j], the whole array), and dw is only read (when add). */
    void (*conv_cl_wgrad3)(const op_native_clwgrad *p, int64_t r0, int64_t r1, int64_t i, int64_t c0,
                           int64_t nc, int64_t f0, int64_t nf, float *dw, bool add, float *out);
    /* acc[o] += the sum over n pixels of dy[k][o] (dy [n][f]), in an order fixed by n (the
     * bias gradient; NULL where the level has no channels-last kernels). */
    void (*conv_cl_dbias)(const float *dy, int64_t n, int64_t f, double *acc);
    /* Winograd F(4x4, 3x3) on channels-last activations (NULL where none): the tiles t0 ..
     * t0+nt (nt <= OP_NATIVE_WINO_TJ) of p, their filters fb0*16 .. fb1*16, through the
     * scratch v and m. */
    void (*wino_tiles)(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                       float *m);
    /* Its weight gradient before the inverse transform: du[xi][c][f] (the filters fb0*16 ..
     * fb1*16 of it) += the sum over the tiles t0 .. t0+nt, in order, of (B^T d B)[xi][c] times
     * (A dy A^T)[xi][f], d a tile's input pixels and dy its output gradient (zero outside the
     * image); through the scratch v and m as above. */
    void (*wino_wgrad)(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                       float *m, float *du);
} op_native_isa;

extern const op_native_isa op_native_isa_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
#define OP_NATIVE_HAVE_X86 1
extern const op_native_isa op_native_isa_avx2;
extern const op_native_isa op_native_isa_avx512;
#endif

/* The per-ISA convolution packers (conv_<isa>.c), gathered into the tables by gemm_<isa>.c. */
#define OP_NATIVE_CONV_DECL(sfx)                                                                  \
    void op_native_pack_seg_##sfx(const float *base, int64_t avail, const int64_t *koff,          \
                                  int64_t kc, const op_native_seg *seg, int nseg, int64_t stride, \
                                  int64_t ncols, int width, float *dst);                          \
    void op_native_conv_plane_##sfx(const op_native_convg *g, const float *x, const float *w,      \
                                    float *acc);                                                  \
    void op_native_conv_wgrad_##sfx(const op_native_convg *g, const float *x, const float *dy,     \
                                    double *acc);
OP_NATIVE_CONV_DECL(scalar)
OP_NATIVE_CONV_DECL(avx2)
OP_NATIVE_CONV_DECL(avx512)
void op_native_conv_plane_pad_avx512(const op_native_convg *g, const float *xp, int64_t wp, const float *w,
                                     int64_t wstride, int nf, float *acc, int64_t astride);
void op_native_conv_cl_scatter_avx512(const op_native_clscatter *p, int64_t n, float *dxp);
void op_native_conv_cl_wgrad_outer_avx512(const op_native_clouter *p, int64_t n0, int64_t n1, int64_t fb, int64_t i0,
                                          int64_t nb, float *out);
void op_native_conv_wgrad_pad_avx512(const op_native_convg *g, const float *xp, int64_t wp, int64_t istride,
                                     const float *dy, int64_t dstride, int64_t nimg, float *out);
void op_native_conv_cl_row_avx512(const op_native_clconv *p, int64_t n, int64_t oy, int64_t fb0, int64_t fb1,
                                  float *buf);
void op_native_conv_cl_wgrad_avx512(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0,
                                    int64_t nc, int64_t fb0, int64_t nfb, float *dw);
void op_native_conv_cl_wgrad3_avx512(const op_native_clwgrad *p, int64_t r0, int64_t r1, int64_t i,
                                     int64_t c0, int64_t nc, int64_t f0, int64_t nf, float *dw,
                                     bool add, float *out);
void op_native_conv_cl_dbias_avx512(const float *dy, int64_t n, int64_t f, double *acc);
void op_native_wino_tiles_avx512(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                                 float *m);
void op_native_wino_wgrad_avx512(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                                 float *m, float *du);

#endif
