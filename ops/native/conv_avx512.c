/* Convolution packers and the direct-plane convolution for the avx512 level, compiled with
 * -mavx512f -mavx512vl -mfma: the loops of conv_common.h vectorised for this ISA, and an
 * im2col packer that copies each run with 16-lane moves.  A run's tail is loaded whole when
 * that stays inside the input (else masked) and stored whole when the panel row has room (the
 * next run, or the zero fill, overwrites the excess): masked moves are slow on Zen 4. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ops/native/native_isa.h"

/* Keeps a loaded vector in a register: where one load feeds several FMAs, the compiler would
 * otherwise fold it into each of them, loading it again every time. */
#define IN_REG(v) __asm__("" : "+v"(v))

#define CC_HAVE_PACK_SEG 1
#define CONV_SFX avx512
#include "ops/native/conv_common.h"

/* conv_plane_pad (native_isa.h): CP_ROWS output rows at a time, two vectors each, for NF
 * filters, held in registers over every channel's taps (independent sums, so the FMAs
 * overlap); a tap's inputs are unaligned loads of the padded rows, each serving the NF filters
 * (their weights broadcast), a row above or below the plane being the zero row after it. */
#define CP_ROWS 4
#define CP_ALWAYS static inline __attribute__((always_inline))

CP_ALWAYS void plane_pad_nf(const op_native_convg *g, const float *xp, int64_t wp, const float *w, int64_t wstride,
                            float *acc, int64_t astride, const int NF)
{
    __mmask16 s0 = g->ow >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << g->ow) - 1u);
    __mmask16 s1 = g->ow > 16 ? (__mmask16)((1u << (g->ow - 16)) - 1u) : 0;
    bool two = s1 != 0;
    int64_t pstride = (g->h + 1) * wp, khw = g->kh * g->kw;
    for (int64_t oy = 0; oy < g->oh; oy += CP_ROWS) {
        __m512 a0[3][CP_ROWS], a1[3][CP_ROWS];
#pragma GCC unroll 3
        for (int k = 0; k < NF; k++)
#pragma GCC unroll 4
            for (int q = 0; q < CP_ROWS; q++)
                a0[k][q] = a1[k][q] = _mm512_setzero_ps();
        for (int64_t c = 0; c < g->c; c++) {
            const float *pc = xp + c * pstride, *wc = w + c * khw;
            for (int64_t i = 0; i < g->kh; i++) {
                const float *rows[CP_ROWS];
#pragma GCC unroll 4
                for (int q = 0; q < CP_ROWS; q++) {
                    int64_t r = (oy + q) * g->sh - g->ph + i * g->dh;
                    rows[q] = pc + (r >= 0 && r < g->h ? r : g->h) * wp;
                }
                const float *wr = wc + i * g->kw;
                for (int64_t j = 0; j < g->kw; j++) {
                    __m512 wv[3];
#pragma GCC unroll 3
                    for (int k = 0; k < NF; k++)
                        wv[k] = _mm512_set1_ps(wr[k * wstride + j]);
#pragma GCC unroll 4
                    for (int q = 0; q < CP_ROWS; q++) {
                        __m512 x0 = _mm512_loadu_ps(rows[q] + j);
                        IN_REG(x0);
#pragma GCC unroll 3
                        for (int k = 0; k < NF; k++)
                            a0[k][q] = _mm512_fmadd_ps(x0, wv[k], a0[k][q]);
                        if (two) {
                            __m512 x1 = _mm512_loadu_ps(rows[q] + j + 16);
                            IN_REG(x1);
#pragma GCC unroll 3
                            for (int k = 0; k < NF; k++)
                                a1[k][q] = _mm512_fmadd_ps(x1, wv[k], a1[k][q]);
                        }
                    }
                }
            }
        }
#pragma GCC unroll 3
        for (int k = 0; k < NF; k++)
#pragma GCC unroll 4
            for (int q = 0; q < CP_ROWS; q++)
                if (oy + q < g->oh) {
                    float *ar = acc + k * astride + (oy + q) * g->ow;
                    _mm512_mask_storeu_ps(ar, s0, a0[k][q]);
                    if (two)
                        _mm512_mask_storeu_ps(ar + 16, s1, a1[k][q]);
                }
    }
}

void op_native_conv_plane_pad_avx512(const op_native_convg *g, const float *xp, int64_t wp, const float *w,
                                     int64_t wstride, int nf, float *acc, int64_t astride)
{
    switch (nf) {
    case 1: plane_pad_nf(g, xp, wp, w, wstride, acc, astride, 1); break;
    case 2: plane_pad_nf(g, xp, wp, w, wstride, acc, astride, 2); break;
    default: plane_pad_nf(g, xp, wp, w, wstride, acc, astride, 3); break;
    }
}

/* conv_wgrad_pad (native_isa.h): IB kernel rows of one channel and one half of the output
 * columns (16 lanes) at a time, IB x KW accumulators held in registers over the images.  Each
 * input row's KW shifted vectors are loaded once and serve every kernel row of the block whose
 * output row reads it (dy's row, zero beyond ow); padding rows add nothing and are skipped. */
#define WG_ALWAYS static inline __attribute__((always_inline))
WG_ALWAYS void wgrad_pad_kw(const op_native_convg *g, const float *xp, int64_t wp, int64_t istride,
                            const float *dy, int64_t dstride, int64_t nimg, float *out, const int KW, const int IB)
{
    /* the geometry in locals: the loop bodies below read them at every row */
    const int64_t pstride = (g->h + 1) * wp, sh = g->sh, ih = g->h, oh = g->oh, ow = g->ow, ph = g->ph, dh = g->dh;
    int halves = ow > 16 ? 2 : 1;
    for (int64_t c = 0; c < g->c; c++)
        for (int64_t i0 = 0; i0 < g->kh; i0 += IB) {
            int nb = g->kh - i0 < IB ? (int)(g->kh - i0) : IB;
            __m512 acc[8][7]; /* constant bounds (not IB x KW, a VLA in memory): IB <= 8, KW <= 7 */
#pragma GCC unroll 8
            for (int q = 0; q < IB; q++)
#pragma GCC unroll 8
                for (int j = 0; j < KW; j++)
                    acc[q][j] = _mm512_setzero_ps();
            for (int h = 0; h < halves; h++) {
                int64_t off = 16 * h, left = ow - off;
                __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
                for (int64_t n = 0; n < nimg; n++) {
                    const float *pc = xp + n * istride + c * pstride, *dn = dy + n * dstride + off;
                    for (int64_t r = 0; r < ih; r++) {
                        const float *row = pc + r * wp + off;
                        __m512 xv[7];
#pragma GCC unroll 8
                        for (int j = 0; j < KW; j++) {
                            xv[j] = _mm512_loadu_ps(row + j);
                            IN_REG(xv[j]);
                        }
#pragma GCC unroll 8
                        for (int q = 0; q < IB; q++) {
                            /* the output row whose kernel row i0 + q reads input row r */
                            int64_t t = r + ph - (i0 + q) * dh;
                            if (q >= nb || t < 0)
                                continue;
                            if (sh > 1) { /* (no division at stride 1) */
                                if (t % sh != 0)
                                    continue;
                                t /= sh;
                            }
                            if (t >= oh)
                                continue;
                            __m512 dv = _mm512_maskz_loadu_ps(m, dn + t * ow);
#pragma GCC unroll 8
                            for (int j = 0; j < KW; j++)
                                acc[q][j] = _mm512_fmadd_ps(dv, xv[j], acc[q][j]);
                        }
                    }
                }
            }
            /* constant bounds, so that acc stays in registers */
#pragma GCC unroll 8
            for (int q = 0; q < IB; q++)
#pragma GCC unroll 8
                for (int j = 0; j < KW; j++)
                    if (q < nb)
                        out[(c * g->kh + i0 + q) * KW + j] = _mm512_reduce_add_ps(acc[q][j]);
        }
}

void op_native_conv_wgrad_pad_avx512(const op_native_convg *g, const float *xp, int64_t wp, int64_t istride,
                                     const float *dy, int64_t dstride, int64_t nimg, float *out)
{
    switch (g->kw) {
    case 3: wgrad_pad_kw(g, xp, wp, istride, dy, dstride, nimg, out, 3, 8); break;
    case 5: wgrad_pad_kw(g, xp, wp, istride, dy, dstride, nimg, out, 5, 5); break;
    case 7: wgrad_pad_kw(g, xp, wp, istride, dy, dstride, nimg, out, 7, 3); break;
    default: break; /* the caller takes this path only for these widths */
    }
}

/* conv_cl_scatter (native_isa.h): PB pixels of one dy row at a time, their NV column vectors
 * in PB x NV accumulators over the filters (each packed weight vector loaded once for the PB
 * pixels, the dy values broadcast); each pixel's kh runs of kw*c floats then added to the
 * padded dx.  The pixels of a block are `step` apart, step pixels' runs being disjoint, and the
 * blocks go phase by phase, so that an add seldom reloads what the previous one has just
 * stored (a masked store forwards to no load).  The sums run over the filters in order, and
 * each dx element takes its pixels' runs in a fixed order. */
#define SC_PB_MAX 4
WG_ALWAYS void scatter_nv(const op_native_clscatter *p, int64_t n, float *dxp, const int NV, const int PB)
{
    const int64_t F = p->f, run = p->kw * p->c, ow = p->ow;
    const int64_t step = (p->kw + p->sw - 1) / p->sw;
    const float *dy = p->dy + n * p->oh * ow * F;
    float tmp[SC_PB_MAX][160] __attribute__((aligned(64)));
    for (int64_t oy = 0; oy < p->oh; oy++)
        for (int64_t ph = 0; ph < step; ph++)
        for (int64_t ox0 = ph; ox0 < ow; ox0 += step * PB) {
            int np = 0;
            while (np < PB && ox0 + np * step < ow)
                np++;
            const float *d0 = dy + (oy * ow + ox0) * F;
            __m512 acc[SC_PB_MAX][10];
#pragma GCC unroll 4
            for (int q = 0; q < PB; q++)
#pragma GCC unroll 10
                for (int v = 0; v < NV; v++)
                    acc[q][v] = _mm512_setzero_ps();
            for (int64_t f = 0; f < F; f++) {
                __m512 b[SC_PB_MAX];
#pragma GCC unroll 4
                for (int q = 0; q < PB; q++)
                    b[q] = _mm512_set1_ps(q < np ? d0[q * step * F + f] : 0.0f);
                const float *wf = p->wp + f * NV * 16;
#pragma GCC unroll 10
                for (int v = 0; v < NV; v++) {
                    __m512 wv = _mm512_load_ps(wf + v * 16);
                    IN_REG(wv);
#pragma GCC unroll 4
                    for (int q = 0; q < PB; q++)
                        acc[q][v] = _mm512_fmadd_ps(b[q], wv, acc[q][v]);
                }
            }
#pragma GCC unroll 4
            for (int q = 0; q < PB; q++)
#pragma GCC unroll 10
                for (int v = 0; v < NV; v++)
                    _mm512_store_ps(tmp[q] + v * 16, acc[q][v]);
            for (int q = 0; q < np; q++) {
                float *base = dxp + oy * p->sh * p->wpad + (ox0 + q * step) * p->sw * p->c;
                for (int64_t i = 0; i < p->kh; i++) {
                    float *dr = base + i * p->dh * p->wpad;
                    const float *tr = tmp[q] + i * run;
                    for (int64_t t = 0; t < run; t += 16) {
                        __mmask16 m = run - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (run - t)) - 1u);
                        __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dr + t), _mm512_maskz_loadu_ps(m, tr + t));
                        _mm512_mask_storeu_ps(dr + t, m, s);
                    }
                }
            }
        }
}

void op_native_conv_cl_scatter_avx512(const op_native_clscatter *p, int64_t n, float *dxp)
{
    switch (p->nv) {
    case 1: scatter_nv(p, n, dxp, 1, 4); break;
    case 2: scatter_nv(p, n, dxp, 2, 4); break;
    case 3: scatter_nv(p, n, dxp, 3, 4); break;
    case 4: scatter_nv(p, n, dxp, 4, 4); break;
    case 5: scatter_nv(p, n, dxp, 5, 4); break;
    case 6: scatter_nv(p, n, dxp, 6, 4); break;
    case 7: scatter_nv(p, n, dxp, 7, 3); break;
    case 8: scatter_nv(p, n, dxp, 8, 3); break;
    case 9: scatter_nv(p, n, dxp, 9, 3); break;
    case 10: scatter_nv(p, n, dxp, 10, 2); break;
    default: break; /* the caller takes this path only for these */
    }
}

/* conv_cl_wgrad_outer (native_isa.h): nb kernel rows by KWC = kw * c values (KWC a
 * compile-time count, so that the accumulators stay in registers), each accumulator a vector
 * over 16 filters; per output pixel one dy vector times the KWC consecutive input values of
 * each kernel row it reads (broadcast). */
WG_ALWAYS void outer_kwc(const op_native_clouter *p, int64_t n0, int64_t n1, int64_t fb, int64_t i0, int64_t nb,
                         float *out, const int KWC)
{
    const int NB = 30 / KWC;
    /* the geometry in locals: the pixel loop would reload it through p */
    const int64_t rowf = p->wpix * p->c, F = p->f, drow = p->dh * rowf, oh = p->oh, ow = p->ow;
    const int64_t sy = p->sh * rowf, sx = p->sw * p->c, istride = p->istride;
    const float *xpb = p->xp, *dyb = p->dy;
    int64_t left = F - fb * 16;
    __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
    __m512 acc[30];
#pragma GCC unroll 30
    for (int a = 0; a < NB * KWC; a++)
        acc[a] = _mm512_setzero_ps();
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = xpb + n * istride + i0 * drow, *dn = dyb + n * oh * ow * F + fb * 16;
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                __m512 dv = _mm512_maskz_loadu_ps(m, dn + (oy * ow + ox) * F);
                const float *x0 = xn + oy * sy + ox * sx;
#pragma GCC unroll 30
                for (int q = 0; q < NB; q++) {
                    if (q >= nb)
                        break;
                    const float *xq = x0 + q * drow;
#pragma GCC unroll 30
                    for (int t = 0; t < KWC; t++)
                        acc[q * KWC + t] = _mm512_fmadd_ps(_mm512_set1_ps(xq[t]), dv, acc[q * KWC + t]);
                }
            }
    }
#pragma GCC unroll 30
    for (int q = 0; q < NB; q++)
#pragma GCC unroll 30
        for (int t = 0; t < KWC; t++)
            if (q < nb)
                _mm512_storeu_ps(out + (q * KWC + t) * 16, acc[q * KWC + t]);
}

#define OUTER_CASE(k) case k: outer_kwc(p, n0, n1, fb, i0, nb, out, k); break;
void op_native_conv_cl_wgrad_outer_avx512(const op_native_clouter *p, int64_t n0, int64_t n1, int64_t fb, int64_t i0,
                                          int64_t nb, float *out)
{
    switch (p->kw * p->c) {
        OUTER_CASE(1) OUTER_CASE(2) OUTER_CASE(3) OUTER_CASE(4) OUTER_CASE(5) OUTER_CASE(6) OUTER_CASE(7)
        OUTER_CASE(8) OUTER_CASE(9) OUTER_CASE(10) OUTER_CASE(11) OUTER_CASE(12) OUTER_CASE(13) OUTER_CASE(14)
        OUTER_CASE(15) OUTER_CASE(16) OUTER_CASE(17) OUTER_CASE(18) OUTER_CASE(19) OUTER_CASE(20) OUTER_CASE(21)
        OUTER_CASE(22) OUTER_CASE(23) OUTER_CASE(24) OUTER_CASE(25) OUTER_CASE(26) OUTER_CASE(27) OUTER_CASE(28)
        OUTER_CASE(29) OUTER_CASE(30)
    default: break; /* the caller keeps kw * c within 1 .. 30, and nb * kw * c within 30 */
    }
}

void op_native_pack_seg_avx512(const float *base, int64_t avail, const int64_t *koff,
                               int64_t kc, const op_native_seg *seg, int nseg, int64_t stride,
                               int64_t ncols, int width, float *dst)
{
    for (int s = 0; s < nseg; s++) {
        const float *src = base + seg[s].src;
        float *d = dst + seg[s].dst;
        int32_t len = seg[s].len, room = width - seg[s].dst;
        if (stride != 1) {
            for (int64_t kk = 0; kk < kc; kk++) {
                const float *sr = src + koff[kk];
                float *dr = d + kk * width;
                for (int32_t t = 0; t < len; t++)
                    dr[t] = sr[t * stride];
            }
            continue;
        }
        int32_t full = len / 16 * 16, rem = len - full;
        __mmask16 m = (__mmask16)((1u << rem) - 1u);
        bool whole = full + 16 <= room;
        /* the rows' offsets ascend: the last row decides whether whole loads stay inside */
        bool inside = kc > 0 && seg[s].src + koff[kc - 1] + full + 16 <= avail;
        for (int64_t kk = 0; kk < kc; kk++) {
            const float *sr = src + koff[kk];
            float *dr = d + kk * width;
            for (int32_t t = 0; t < full; t += 16)
                _mm512_storeu_ps(dr + t, _mm512_loadu_ps(sr + t));
            if (rem) {
                __m512 v = inside ? _mm512_loadu_ps(sr + full) : _mm512_maskz_loadu_ps(m, sr + full);
                if (whole)
                    _mm512_storeu_ps(dr + full, v);
                else
                    _mm512_mask_storeu_ps(dr + full, m, v);
            }
        }
    }
    if (ncols < width)
        for (int64_t kk = 0; kk < kc; kk++)
            cc_zero(dst + kk * width + ncols, width - ncols);
}

/* ---- channels-last direct convolution (op_native_clconv) ----
 * An output tile is RW consecutive pixels of one output row by NB blocks of 16 filters, held
 * in RW*NB zmm accumulators; each (tap, channel) step loads the NB weight vectors and
 * broadcasts one input value per pixel.  The input rows a tile reads are first copied into
 * zero-padded rows (the caller's buffer), so no tap leaves its row; a tap row in the padding
 * is skipped.  At dilation 1 a row's taps and channels are one run (j*C + c, in the padded row
 * and in wp alike).  The pixels' distance in the row (S = stride * C floats) is a constant in
 * the variants for the common channel counts, so that the broadcasts need one pointer.  The
 * channels are summed in order, the taps row by row, so every output is computed the same
 * way whatever the tiling.  A tile of one or two filter blocks (one broadcast per FMA or
 * two: bound by the loads) of a 3-wide kernel at stride and dilation 1 and 16, 32 or 64
 * channels is input-stationary instead (cl_steps3: one broadcast per input pixel for up to
 * three FMAs per block); its outputs' sums run over the channels, each channel's three taps
 * in order. */

#define CL_ACC 28 /* accumulators at most */
#define CL_ALWAYS static inline __attribute__((always_inline))

static inline __mmask16 cl_mask(int64_t rem)
{
    return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
}

/* The widest tile of NB filter blocks (accumulators, weights and a broadcast in 32 zmm), with
 * a constant pixel distance (cs) or not. */
static inline int cl_rwmax(int nb, bool cs)
{
    switch (nb) {
    case 1: return cs ? 28 : 14;
    case 2: return 14;
    case 3: return 9;
    default: return 6;
    }
}

/* The padded input rows: rows[i] = input row oy*sh - ph + i*dh of image n with pw zero
 * pixels on either side, or NULL in the padding; from the ring (op_native_cl_ring_floats),
 * copied there unless its slot's tag says it is already. */
static void cl_rows(const op_native_clconv *p, int64_t n, int64_t oy, float *ring, const float **rows)
{
    int64_t C = p->c, wpad = (p->w + 2 * p->pw) * C, ns = op_native_cl_ring_slots(p->kh, p->dh);
    int64_t *tag = (int64_t *)(void *)ring;
    bool keep = ns <= OP_NATIVE_CL_RING_TAGS;
    float *slots = ring + 2 * OP_NATIVE_CL_RING_TAGS;
    for (int64_t i = 0; i < p->kh; i++) {
        int64_t iy = oy * p->sh - p->ph + i * p->dh;
        if (iy < 0 || iy >= p->h) {
            rows[i] = NULL;
            continue;
        }
        int64_t slot = keep ? iy % ns : i, id = n * p->h + iy;
        float *d = slots + slot * ((wpad + 15) / 16 * 16);
        rows[i] = d;
        if (keep && tag[slot] == id)
            continue;
        memset(d, 0, (size_t)(p->pw * C) * sizeof(float));
        memcpy(d + p->pw * C, p->x + id * p->w * C, (size_t)(p->w * C) * sizeof(float));
        memset(d + (p->pw + p->w) * C, 0, (size_t)(p->pw * C) * sizeof(float));
        if (keep)
            tag[slot] = id;
    }
}

/* acc += the n steps of a run: block b's weights at wt + b*bs (the next step's 16 floats
 * on), the pixel q's input at xb[q*S + k] for step k. */
CL_ALWAYS void cl_steps(__m512 (*acc)[4], const float *xb, int64_t sx, const float *wt, int64_t n,
                        int64_t bs, const int RW, const int NB, const int S)
{
    const int64_t s = S ? S : sx;
    for (int64_t k = 0; k < n; k++, wt += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            wv[b] = _mm512_loadu_ps(wt + b * bs);
#pragma GCC unroll 28
        for (int q = 0; q < RW; q++) {
            __m512 bc = _mm512_set1_ps(xb[q * s + k]);
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++)
                acc[q][b] = _mm512_fmadd_ps(bc, wv[b], acc[q][b]);
        }
    }
}

/* NB (1 or 2) blocks of filters, three taps at stride and dilation 1 (IS3 below): acc += the
 * C channels of a tap row, input-stationary: per channel, the three taps' weight vectors
 * (at wt, wt + 16 C, wt + 32 C; block b's bs floats on) loaded once and each of the RW + 2 input pixels the tile
 * reads (xb[P*S + c]) broadcast once into the (up to three) outputs it reaches, 3 NB RW FMAs
 * for 3 NB + RW + 2 loads.  An output's sum runs over the channels, each channel's three
 * taps in order. */
CL_ALWAYS void cl_steps3(__m512 (*acc)[4], const float *xb, const float *wt, int64_t C, int64_t bs,
                         const int RW, const int NB, const int S)
{
    for (int64_t c = 0; c < C; c++, xb++, wt += 16) {
        __m512 w[3][2];
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++)
#pragma GCC unroll 2
            for (int b = 0; b < NB; b++)
                w[j][b] = _mm512_loadu_ps(wt + j * C * 16 + b * bs);
#pragma GCC unroll 30
        for (int P = 0; P < RW + 2; P++) {
            __m512 bc = _mm512_set1_ps(xb[P * S]);
#pragma GCC unroll 2
            for (int b = 0; b < NB; b++) {
                if (P < RW)
                    acc[P][b] = _mm512_fmadd_ps(bc, w[0][b], acc[P][b]);
                if (P >= 1 && P - 1 < RW)
                    acc[P - 1][b] = _mm512_fmadd_ps(bc, w[1][b], acc[P - 1][b]);
                if (P >= 2)
                    acc[P - 2][b] = _mm512_fmadd_ps(bc, w[2][b], acc[P - 2][b]);
            }
        }
    }
}

/* IS3: cl_steps3 for each tap row (kw 3, stride and dilation 1 along the row, NB 1 or 2, S
 * the channel count); else cl_steps: each output's sum over a tap row's taps, each tap's
 * channels in order. */
CL_ALWAYS void cl_tile(const op_native_clconv *p, const float *const *rows, float *y,
                       const float *r, int64_t ox0, int64_t fb, const int RW, const int NB,
                       const int S, const bool IS3)
{
    __m512 acc[CL_ACC][4];
#pragma GCC unroll 28
    for (int q = 0; q < RW; q++)
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            acc[q][b] = _mm512_setzero_ps();
    const int64_t C = p->c, sx = p->sw * C, bs = p->kh * p->kw * C * 16;
    for (int64_t i = 0; i < p->kh; i++) {
        if (!rows[i])
            continue;
        const float *xb = rows[i] + ox0 * sx;
        const float *wt = p->wp + fb * bs + i * p->kw * C * 16;
        if (IS3) {
            cl_steps3(acc, xb, wt, C, bs, RW, NB, S);
        } else if (p->dw == 1) {
            cl_steps(acc, xb, sx, wt, p->kw * C, bs, RW, NB, S);
        } else {
            for (int64_t j = 0; j < p->kw; j++)
                cl_steps(acc, xb + j * p->dw * C, sx, wt + j * C * 16, C, bs, RW, NB, S);
        }
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        __mmask16 m = cl_mask(p->f - (fb + b) * 16);
        __m512 bv = p->bias ? _mm512_maskz_loadu_ps(m, p->bias + (fb + b) * 16) : _mm512_setzero_ps();
#pragma GCC unroll 28
        for (int q = 0; q < RW; q++) {
            int64_t off = (ox0 + q) * p->f + (fb + b) * 16;
            __m512 v = _mm512_add_ps(acc[q][b], bv);
            if (r) /* read before the store: the residual may be the output's memory */
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + off));
            if (m == 0xFFFF)
                _mm512_storeu_ps(y + off, v);
            else
                _mm512_mask_storeu_ps(y + off, m, v);
        }
    }
}

typedef void (*cl_tile_fn)(const op_native_clconv *p, const float *const *rows, float *y,
                           const float *r, int64_t ox0, int64_t fb);

#define CL_T(rw, nb, s)                                                                           \
    static void cl_tile_##rw##_##nb##_##s(const op_native_clconv *p, const float *const *rows,    \
                                          float *y, const float *r, int64_t ox0, int64_t fb)      \
    {                                                                                             \
        cl_tile(p, rows, y, r, ox0, fb, rw, nb, s, false);                                        \
    }
/* NB 1 with a constant distance (16, 32, 64 floats) up to 28 pixels; the others up to their
 * cl_rwmax with the distance in a register */
#define CL_T1(rw) CL_T(rw, 1, 16) CL_T(rw, 1, 32) CL_T(rw, 1, 64)
CL_T1(1) CL_T1(2) CL_T1(3) CL_T1(4) CL_T1(5) CL_T1(6) CL_T1(7) CL_T1(8) CL_T1(9) CL_T1(10)
CL_T1(11) CL_T1(12) CL_T1(13) CL_T1(14) CL_T1(15) CL_T1(16) CL_T1(17) CL_T1(18) CL_T1(19)
CL_T1(20) CL_T1(21) CL_T1(22) CL_T1(23) CL_T1(24) CL_T1(25) CL_T1(26) CL_T1(27) CL_T1(28)
#define CL_TR(rw) CL_T(rw, 1, 0) CL_T(rw, 2, 0)
CL_TR(1) CL_TR(2) CL_TR(3) CL_TR(4) CL_TR(5) CL_TR(6) CL_TR(7) CL_TR(8) CL_TR(9) CL_TR(10)
CL_TR(11) CL_TR(12) CL_TR(13) CL_TR(14)
#define CL_T34(rw) CL_T(rw, 3, 0) CL_T(rw, 4, 0)
CL_T34(1) CL_T34(2) CL_T34(3) CL_T34(4) CL_T34(5) CL_T34(6)
CL_T(7, 3, 0) CL_T(8, 3, 0) CL_T(9, 3, 0)
/* IS3 tiles up to CL_RW3 pixels (one block) or CL_RW3B (two), channel counts 16, 32, 64 */
#define CL_RW3 24
#define CL_RW3B 12
#define CL_T3(rw, nb, s)                                                                          \
    static void cl_tile3_##rw##_##nb##_##s(const op_native_clconv *p, const float *const *rows,   \
                                           float *y, const float *r, int64_t ox0, int64_t fb)     \
    {                                                                                             \
        cl_tile(p, rows, y, r, ox0, fb, rw, nb, s, true);                                         \
    }
#define CL_T3S(rw, nb) CL_T3(rw, nb, 16) CL_T3(rw, nb, 32) CL_T3(rw, nb, 64)
CL_T3S(1, 1) CL_T3S(2, 1) CL_T3S(3, 1) CL_T3S(4, 1) CL_T3S(5, 1) CL_T3S(6, 1) CL_T3S(7, 1)
CL_T3S(8, 1) CL_T3S(9, 1) CL_T3S(10, 1) CL_T3S(11, 1) CL_T3S(12, 1) CL_T3S(13, 1) CL_T3S(14, 1)
CL_T3S(15, 1) CL_T3S(16, 1) CL_T3S(17, 1) CL_T3S(18, 1) CL_T3S(19, 1) CL_T3S(20, 1)
CL_T3S(21, 1) CL_T3S(22, 1) CL_T3S(23, 1) CL_T3S(24, 1)
CL_T3S(1, 2) CL_T3S(2, 2) CL_T3S(3, 2) CL_T3S(4, 2) CL_T3S(5, 2) CL_T3S(6, 2) CL_T3S(7, 2)
CL_T3S(8, 2) CL_T3S(9, 2) CL_T3S(10, 2) CL_T3S(11, 2) CL_T3S(12, 2)

#define CL_E1(rw, s) cl_tile_##rw##_1_##s
#define CL_ROW1(s)                                                                                \
    {CL_E1(1, s), CL_E1(2, s), CL_E1(3, s), CL_E1(4, s), CL_E1(5, s), CL_E1(6, s), CL_E1(7, s),   \
     CL_E1(8, s), CL_E1(9, s), CL_E1(10, s), CL_E1(11, s), CL_E1(12, s), CL_E1(13, s),            \
     CL_E1(14, s), CL_E1(15, s), CL_E1(16, s), CL_E1(17, s), CL_E1(18, s), CL_E1(19, s),          \
     CL_E1(20, s), CL_E1(21, s), CL_E1(22, s), CL_E1(23, s), CL_E1(24, s), CL_E1(25, s),          \
     CL_E1(26, s), CL_E1(27, s), CL_E1(28, s)}
static const cl_tile_fn cl_tiles_c[3][CL_ACC] = {CL_ROW1(16), CL_ROW1(32), CL_ROW1(64)};
#define CL_EN(rw, nb) cl_tile_##rw##_##nb##_0
static const cl_tile_fn cl_tiles_r[4][14] = {
    {CL_EN(1, 1), CL_EN(2, 1), CL_EN(3, 1), CL_EN(4, 1), CL_EN(5, 1), CL_EN(6, 1), CL_EN(7, 1),
     CL_EN(8, 1), CL_EN(9, 1), CL_EN(10, 1), CL_EN(11, 1), CL_EN(12, 1), CL_EN(13, 1), CL_EN(14, 1)},
    {CL_EN(1, 2), CL_EN(2, 2), CL_EN(3, 2), CL_EN(4, 2), CL_EN(5, 2), CL_EN(6, 2), CL_EN(7, 2),
     CL_EN(8, 2), CL_EN(9, 2), CL_EN(10, 2), CL_EN(11, 2), CL_EN(12, 2), CL_EN(13, 2), CL_EN(14, 2)},
    {CL_EN(1, 3), CL_EN(2, 3), CL_EN(3, 3), CL_EN(4, 3), CL_EN(5, 3), CL_EN(6, 3), CL_EN(7, 3),
     CL_EN(8, 3), CL_EN(9, 3)},
    {CL_EN(1, 4), CL_EN(2, 4), CL_EN(3, 4), CL_EN(4, 4), CL_EN(5, 4), CL_EN(6, 4)},
};

#define CL_E3(rw, nb, s) cl_tile3_##rw##_##nb##_##s
#define CL_ROW3(s)                                                                                \
    {CL_E3(1, 1, s), CL_E3(2, 1, s), CL_E3(3, 1, s), CL_E3(4, 1, s), CL_E3(5, 1, s),              \
     CL_E3(6, 1, s), CL_E3(7, 1, s), CL_E3(8, 1, s), CL_E3(9, 1, s), CL_E3(10, 1, s),             \
     CL_E3(11, 1, s), CL_E3(12, 1, s), CL_E3(13, 1, s), CL_E3(14, 1, s), CL_E3(15, 1, s),         \
     CL_E3(16, 1, s), CL_E3(17, 1, s), CL_E3(18, 1, s), CL_E3(19, 1, s), CL_E3(20, 1, s),         \
     CL_E3(21, 1, s), CL_E3(22, 1, s), CL_E3(23, 1, s), CL_E3(24, 1, s)}
#define CL_ROW3B(s)                                                                               \
    {CL_E3(1, 2, s), CL_E3(2, 2, s), CL_E3(3, 2, s), CL_E3(4, 2, s), CL_E3(5, 2, s),              \
     CL_E3(6, 2, s), CL_E3(7, 2, s), CL_E3(8, 2, s), CL_E3(9, 2, s), CL_E3(10, 2, s),             \
     CL_E3(11, 2, s), CL_E3(12, 2, s)}
static const cl_tile_fn cl_tiles3[3][CL_RW3] = {CL_ROW3(16), CL_ROW3(32), CL_ROW3(64)};
static const cl_tile_fn cl_tiles3b[3][CL_RW3B] = {CL_ROW3B(16), CL_ROW3B(32), CL_ROW3B(64)};

/* The tile of nb filter blocks and rw pixels for pixel distance sx. */
static cl_tile_fn cl_pick(int nb, int64_t rw, int64_t sx)
{
    if (nb == 1 && (sx == 16 || sx == 32 || sx == 64))
        return cl_tiles_c[sx == 16 ? 0 : sx == 32 ? 1 : 2][rw - 1];
    return cl_tiles_r[nb - 1][rw - 1];
}

/* Estimated cycles of one step (a tap and a channel) of the tiles of a row of ow pixels in
 * blocks of nb, the weights of the nb blocks in L2 (l2) or in L1, the IS3 tiles for one or
 * two blocks where is3. */
static double cl_row_cost(int nb, int64_t ow, bool cs, bool l2, bool is3)
{
    bool t3 = is3 && nb <= 2;
    int64_t rwmax = t3 ? (nb == 1 ? CL_RW3 : CL_RW3B) : cl_rwmax(nb, cs);
    int64_t ntile = (ow + rwmax - 1) / rwmax;
    double c = 0.0;
    for (int64_t t = 0, ox = 0; t < ntile; t++) {
        int64_t rw = (ow - ox) / (ntile - t);
        /* two FMAs and two loads a cycle, each accumulator's FMA latency (4 cycles and
         * slack), and from L2 the step's nb weight vectors at about 16 bytes a cycle */
        double fma = 0.5 * (double)(nb * rw), ld = 0.5 * (t3 ? (double)(3 * nb + rw + 2) / 3.0 : (double)(nb + rw));
        double lat = 5.0, wl = l2 ? 4.0 * (double)nb : 0.0;
        double m = fma > ld ? fma : ld;
        m = m > wl ? m : wl;
        c += m > lat ? m : lat;
        ox += rw;
    }
    return c;
}

#define CL_L1_WEIGHTS (32 * 1024) /* bytes of a tile's weights (all steps) that stay in L1 */

/* The blocks per tile for a row's nfb filter blocks (a call's: the driver's chunk of them):
 * the least estimated time, the most blocks (fewest loads per FMA) among those within 2% of
 * it.  A chunk of 4 blocks at 8 pixels a row takes two tiles of 2, not 3 and 1 (vgg_small's
 * 256 -> 256 at 8x8). */
static int cl_blocks(const op_native_clconv *p, int64_t nfb, bool cs, bool is3)
{
    int64_t wstep = p->kh * p->kw * p->c * 16 * (int64_t)sizeof(float);
    int best = 0;
    double bc = 0.0;
    for (int nb = nfb < 4 ? (int)nfb : 4; nb >= 1; nb--) {
        int rem = (int)(nfb % nb);
        double c = (double)(nfb / nb) * cl_row_cost(nb, p->ow, cs, nb * wstep > CL_L1_WEIGHTS, is3);
        if (rem)
            c += cl_row_cost(rem, p->ow, cs, rem * wstep > CL_L1_WEIGHTS, is3);
        if (best == 0 || c < 0.98 * bc)
            best = nb, bc = c;
    }
    return best;
}

void op_native_conv_cl_row_avx512(const op_native_clconv *p, int64_t n, int64_t oy, int64_t fb0, int64_t fb1,
                                  float *buf)
{
    const float *rows[64];
    const float **rp = p->kh <= 64 ? rows : NULL;
    if (!rp)
        return; /* the driver sends taller kernels elsewhere */
    cl_rows(p, n, oy, buf, rp);
    int64_t row = (n * p->oh + oy) * p->ow * p->f;
    float *y = p->y + row;
    const float *r = p->res ? p->res + row : NULL;
    int64_t sx = p->sw * p->c;
    bool cs = sx == 16 || sx == 32 || sx == 64;
    bool is3 = cs && p->kw == 3 && p->sw == 1 && p->dw == 1;
    int nb0 = cl_blocks(p, fb1 - fb0, cs, is3);
    for (int64_t fb = fb0; fb < fb1;) {
        int nb = fb1 - fb >= nb0 ? nb0 : (int)(fb1 - fb);
        bool t3 = is3 && nb <= 2;
        int64_t rwmax = t3 ? (nb == 1 ? CL_RW3 : CL_RW3B) : cl_rwmax(nb, cs);
        int64_t ntile = (p->ow + rwmax - 1) / rwmax, sc = sx == 16 ? 0 : sx == 32 ? 1 : 2;
        for (int64_t t = 0, ox = 0; t < ntile; t++) {
            int64_t rw = (p->ow - ox) / (ntile - t);
            cl_tile_fn fn = !t3 ? cl_pick(nb, rw, sx) : nb == 1 ? cl_tiles3[sc][rw - 1] : cl_tiles3b[sc][rw - 1];
            fn(p, rp, y, r, ox, fb);
            ox += rw;
        }
        fb += nb;
    }
}

/* ---- channels-last weight gradient (op_native_clwgrad) ----
 * A tile is CB <= 4 channels by NB <= 4 filter blocks of one tap, in CB*NB accumulators; each
 * output pixel broadcasts its CB input values and loads its NB dy vectors.  The images' rows
 * are taken in chunks of at least CL_WG_PIX pixels; per chunk every tap's tile is loaded from
 * dw, summed over the chunk and stored back, so the chunk's rows stay in cache across the
 * taps.  The order of the sums is fixed by the shapes. */

#define CL_WG_PIX 64

/* acc += the outer products of n pixels: x values at xv (CB of them, the next pixel's xs
 * floats on) by dy vectors at dv (NB of them, masked by mk unless FULL; the next pixel's F
 * floats on). */
CL_ALWAYS void cl_wg_px(__m512 (*acc)[4], const float *xv, const float *dv, int64_t n, int64_t xs,
                        int64_t F, const __mmask16 *mk, const int CB, const int NB, const bool FULL)
{
    for (int64_t t = 0; t < n; t++, xv += xs, dv += F) {
        __m512 g[4];
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            g[b] = FULL ? _mm512_loadu_ps(dv + b * 16) : _mm512_maskz_loadu_ps(mk[b], dv + b * 16);
#pragma GCC unroll 4
        for (int cc = 0; cc < CB; cc++) {
            __m512 bc = _mm512_set1_ps(xv[cc]);
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++)
                acc[cc][b] = _mm512_fmadd_ps(bc, g[b], acc[cc][b]);
        }
    }
}

CL_ALWAYS void cl_wg_tile(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0,
                          int64_t fb0, float *dw, const int CB, const int NB)
{
    const int64_t C = p->c, F = p->f, fp = p->fp, xs = p->sw * C;
    __mmask16 mk[4];
    bool full = true;
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        mk[b] = cl_mask(F - (fb0 + b) * 16);
        full = full && mk[b] == 0xFFFF;
    }
    int64_t rows = (CL_WG_PIX + p->ow - 1) / p->ow;
    bool first = true;
    for (int64_t n = n0; n < n1; n++) {
        const float *x = p->x + n * p->h * p->w * C + c0;
        for (int64_t oy0 = 0; oy0 < p->oh; oy0 += rows, first = false) {
            int64_t oy1 = oy0 + rows < p->oh ? oy0 + rows : p->oh;
            for (int64_t i = 0; i < p->kh; i++)
                for (int64_t j = 0; j < p->kw; j++) {
                    float *d = dw + ((i * p->kw + j) * C + c0) * fp + fb0 * 16;
                    __m512 acc[4][4];
#pragma GCC unroll 4
                    for (int cc = 0; cc < CB; cc++)
#pragma GCC unroll 4
                        for (int b = 0; b < NB; b++)
                            acc[cc][b] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(d + cc * fp + b * 16);
                    int64_t lo, hi;
                    cc_tap_range(p->ow, p->w, p->sw, p->pw, j * p->dw, &lo, &hi);
                    for (int64_t oy = oy0; oy < oy1 && lo < hi; oy++) {
                        int64_t iy = oy * p->sh - p->ph + i * p->dh;
                        if (iy < 0 || iy >= p->h)
                            continue;
                        const float *dv = p->dy + ((n * p->oh + oy) * p->ow + lo) * F + fb0 * 16;
                        const float *xv = x + (iy * p->w + lo * p->sw - p->pw + j * p->dw) * C;
                        if (full)
                            cl_wg_px(acc, xv, dv, hi - lo, xs, F, mk, CB, NB, true);
                        else
                            cl_wg_px(acc, xv, dv, hi - lo, xs, F, mk, CB, NB, false);
                    }
#pragma GCC unroll 4
                    for (int cc = 0; cc < CB; cc++)
#pragma GCC unroll 4
                        for (int b = 0; b < NB; b++)
                            _mm512_storeu_ps(d + cc * fp + b * 16, acc[cc][b]);
                }
        }
    }
    if (first) /* no images: zeros */
        for (int64_t t = 0; t < p->kh * p->kw; t++)
            for (int cc = 0; cc < CB; cc++)
                for (int b = 0; b < NB; b++)
                    _mm512_storeu_ps(dw + (t * C + c0 + cc) * fp + (fb0 + b) * 16, _mm512_setzero_ps());
}

typedef void (*cl_wg_fn)(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0,
                         int64_t fb0, float *dw);
#define CL_W(cb, nb)                                                                              \
    static void cl_wg_##cb##_##nb(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0, \
                                  int64_t fb0, float *dw)                                         \
    {                                                                                             \
        cl_wg_tile(p, n0, n1, c0, fb0, dw, cb, nb);                                               \
    }
#define CL_W4(cb) CL_W(cb, 1) CL_W(cb, 2) CL_W(cb, 3) CL_W(cb, 4)
CL_W4(1) CL_W4(2) CL_W4(3) CL_W4(4)
#define CL_WE(cb) {cl_wg_##cb##_1, cl_wg_##cb##_2, cl_wg_##cb##_3, cl_wg_##cb##_4}
static const cl_wg_fn cl_wgs[4][4] = {CL_WE(1), CL_WE(2), CL_WE(3), CL_WE(4)};

void op_native_conv_cl_wgrad_avx512(const op_native_clwgrad *p, int64_t n0, int64_t n1, int64_t c0,
                                    int64_t nc, int64_t fb0, int64_t nfb, float *dw)
{
    for (int64_t c = c0; c < c0 + nc; c += 4) {
        int64_t cb = c0 + nc - c < 4 ? c0 + nc - c : 4;
        cl_wgs[cb - 1][nfb - 1](p, n0, n1, c, fb0, dw);
    }
}

/* ---- channels-last weight gradient of a 3x3 kernel (op_native_clwgrad, kh = kw = 3) ----
 * A tile is FB <= 8 filters by the three taps of one kernel row i by 16 channels, in 3*FB
 * accumulators held through a range of output rows: per output pixel, the three input
 * vectors of its taps are loaded (channels c0 .. c0+16 of the pixels left of, at and right of
 * it, at dilation 1) and each of the FB dy values broadcast once (3 + FB loads for 3*FB
 * FMAs).  Output rows whose tap row i lies in the padding are skipped; in a row, the pixels
 * whose three taps read inside the input run as one loop, the edge pixels each with only the
 * taps that do (a compile-time tap mask), so no FMA reads padding.  Pixels are taken in
 * order. */

/* acc[.][j] += the pixel's tap j (j in MASK) times its FB dy values: taps at x + xo + j*dj
 * (masked by m unless FULL), dy at dv. */
CL_ALWAYS void cl_wg3_px(__m512 (*acc)[3], const float *x, int64_t xo, int64_t dj, const float *dv,
                         __mmask16 m, const int FB, const int MASK, const bool FULL)
{
    __m512 v[3];
#pragma GCC unroll 3
    for (int j = 0; j < 3; j++)
        if (MASK & (1 << j)) {
            v[j] = FULL ? _mm512_loadu_ps(x + xo + j * dj) : _mm512_maskz_loadu_ps(m, x + xo + j * dj);
            __asm__("" : "+v"(v[j])); /* one load, not one per filter folded into the FMAs */
        }
#pragma GCC unroll 8
    for (int fi = 0; fi < FB; fi++) {
        __m512 g = _mm512_set1_ps(dv[fi]);
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++)
            if (MASK & (1 << j))
                acc[fi][j] = _mm512_fmadd_ps(g, v[j], acc[fi][j]);
    }
}

/* An edge pixel: its taps inside the input (mask, 1..7) as a constant. */
CL_ALWAYS void cl_wg3_edge(__m512 (*acc)[3], const float *x, int64_t xo, int64_t dj, const float *dv,
                           __mmask16 m, int mask, const int FB, const bool FULL)
{
    switch (mask) {
    case 1: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 1, FULL); break;
    case 2: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 2, FULL); break;
    case 3: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 3, FULL); break;
    case 4: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 4, FULL); break;
    case 5: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 5, FULL); break;
    case 6: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 6, FULL); break;
    case 7: cl_wg3_px(acc, x, xo, dj, dv, m, FB, 7, FULL); break;
    default: break;
    }
}

/* PAD1: padding 1, stride 1, dilation 1 and rows of 2 or more, the edge pixels known (the
 * first without its left tap, the last without its right one), the row in straight code. */
CL_ALWAYS void cl_wg3_tile(const op_native_clwgrad *p, int64_t r0, int64_t r1, int64_t i, int64_t c0,
                           int64_t nc, int64_t f0, float *dw, bool add, float *out, const int FB,
                           const bool FULL, const bool PAD1)
{
    const int64_t C = p->c, F = p->f, cp = (C + 15) / 16 * 16, W = p->w, OW = p->ow, OH = p->oh;
    const int64_t H = p->h, xs = p->sw * C, dj = p->dw * C;
    float *d = dw + (f0 * 9 + i * 3) * cp + c0; /* filter fi, tap j at d + (fi*9 + j)*cp */
    __m512 acc[8][3];
#pragma GCC unroll 8
    for (int fi = 0; fi < FB; fi++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++)
            acc[fi][j] = add ? _mm512_loadu_ps(d + (fi * 9 + j) * cp) : _mm512_setzero_ps();
    __mmask16 m = cl_mask(nc);
    /* the columns whose three taps all read inside the input: lo .. hi */
    int64_t lo = p->pw <= 0 ? 0 : (p->pw + p->sw - 1) / p->sw;
    int64_t last = W - 1 + p->pw - 2 * p->dw; /* ox*sw <= last */
    int64_t hi = last < 0 ? 0 : last / p->sw + 1;
    hi = hi > OW ? OW : hi;
    lo = lo > hi ? hi : lo;
    int64_t n = r0 / OH, oy = r0 % OH, iy = oy * p->sh - p->ph + i * p->dh;
    const float *xi = p->x + c0, *dv = p->dy + r0 * OW * F + f0;
    for (int64_t r = r0; r < r1; r++, dv += OW * F) {
        if (iy >= 0 && iy < H) {
            const float *x = xi + (n * H + iy) * W * C;
            if (PAD1) {
                /* pixel ox's taps at x + (ox - 1 + j)*C */
                cl_wg3_px(acc, x, -C, C, dv, m, FB, 6, FULL);
                const float *xm = x, *dm = dv + F;
                for (int64_t q = 1; q < OW - 1; q++, xm += C, dm += F)
                    cl_wg3_px(acc, xm, 0, C, dm, m, FB, 7, FULL);
                cl_wg3_px(acc, xm, 0, C, dm, m, FB, 3, FULL);
            } else {
                /* pixel ox's tap j at x + (ox*sw - pw)*C + j*dj, offsets kept as integers (the
                 * edge pixels' would-be taps lie before or after the row) */
                for (int64_t ox = 0; ox < OW; ox++) {
                    if (ox == lo) {
                        const float *xm = x + (lo * p->sw - p->pw) * C, *dm = dv + lo * F;
                        for (int64_t q = lo; q < hi; q++, xm += xs, dm += F)
                            cl_wg3_px(acc, xm, 0, dj, dm, m, FB, 7, FULL);
                        ox = hi;
                        if (ox >= OW)
                            break;
                    }
                    int64_t ix = ox * p->sw - p->pw;
                    int mask = 0;
                    for (int j = 0; j < 3; j++)
                        mask |= (ix + j * p->dw >= 0 && ix + j * p->dw < W) << j;
                    cl_wg3_edge(acc, x, ix * C, dj, dv + ox * F, m, mask, FB, FULL);
                }
            }
        }
        if (++oy == OH)
            oy = 0, n++, iy = i * p->dh - p->ph;
        else
            iy += p->sh;
    }
    if (out) {
        /* filter f's tap (i, j) of channel c at out[(f*C + c)*9 + i*3 + j]: 16 channels 9 floats
         * apart */
        const __m512i nine = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                _mm512_set1_epi32(9));
        float *o = out + (f0 * C + c0) * 9 + i * 3;
#pragma GCC unroll 8
        for (int fi = 0; fi < FB; fi++)
#pragma GCC unroll 3
            for (int j = 0; j < 3; j++)
                _mm512_mask_i32scatter_ps(o + fi * C * 9 + j, m, nine, acc[fi][j], 4);
        return;
    }
#pragma GCC unroll 8
    for (int fi = 0; fi < FB; fi++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++)
            _mm512_storeu_ps(d + (fi * 9 + j) * cp, acc[fi][j]);
}

typedef void (*cl_wg3_fn)(const op_native_clwgrad *p, int64_t r0, int64_t r1, int64_t i, int64_t c0,
                          int64_t nc, int64_t f0, float *dw, bool add, float *out);
#define CL_W3(fb, full, pad1)                                                                     \
    static void cl_wg3_##fb##_##full##_##pad1(const op_native_clwgrad *p, int64_t r0, int64_t r1, \
                                              int64_t i, int64_t c0, int64_t nc, int64_t f0,      \
                                              float *dw, bool add, float *out)                    \
    {                                                                                             \
        cl_wg3_tile(p, r0, r1, i, c0, nc, f0, dw, add, out, fb, full, pad1);                      \
    }
#define CL_W3F(fb) CL_W3(fb, 0, 0) CL_W3(fb, 0, 1) CL_W3(fb, 1, 0) CL_W3(fb, 1, 1)
CL_W3F(1) CL_W3F(2) CL_W3F(3) CL_W3F(4) CL_W3F(5) CL_W3F(6) CL_W3F(7) CL_W3F(8)
#define CL_W3E(fb) {{cl_wg3_##fb##_0_0, cl_wg3_##fb##_0_1}, {cl_wg3_##fb##_1_0, cl_wg3_##fb##_1_1}}
static const cl_wg3_fn cl_wg3s[8][2][2] = {CL_W3E(1), CL_W3E(2), CL_W3E(3), CL_W3E(4),
                                           CL_W3E(5), CL_W3E(6), CL_W3E(7), CL_W3E(8)};

void op_native_conv_cl_wgrad3_avx512(const op_native_clwgrad *p, int64_t r0, int64_t r1, int64_t i,
                                     int64_t c0, int64_t nc, int64_t f0, int64_t nf, float *dw,
                                     bool add, float *out)
{
    bool pad1 = p->pw == 1 && p->sw == 1 && p->dw == 1 && p->w >= 2;
    cl_wg3s[nf - 1][nc == 16][pad1](p, r0, r1, i, c0, nc, f0, dw, add, out);
}

/* acc[o] += the sum of dy[k][o] over the n pixels k, in double (the bias gradient): four
 * partial sums per filter (pixels k mod 4, in order), then ((s0 + s1) + (s2 + s3)) added. */
void op_native_conv_cl_dbias_avx512(const float *dy, int64_t n, int64_t f, double *acc)
{
    for (int64_t o = 0; o < f; o += 16) {
        int64_t rem = f - o < 16 ? f - o : 16;
        __mmask8 m0 = (__mmask8)(rem >= 8 ? 0xFF : (1u << rem) - 1u);
        __mmask8 m1 = (__mmask8)(rem <= 8 ? 0 : rem >= 16 ? 0xFF : (1u << (rem - 8)) - 1u);
        __m512d s[4][2];
        for (int u = 0; u < 4; u++)
            s[u][0] = s[u][1] = _mm512_setzero_pd();
        const float *r = dy + o;
        int64_t k = 0;
        for (; k + 4 <= n; k += 4, r += 4 * f)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                s[u][0] = _mm512_add_pd(s[u][0], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m0, r + u * f)));
                s[u][1] = _mm512_add_pd(s[u][1], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m1, r + u * f + 8)));
            }
        for (int u = 0; k < n; k++, u++, r += f) {
            s[u][0] = _mm512_add_pd(s[u][0], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m0, r)));
            s[u][1] = _mm512_add_pd(s[u][1], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m1, r + 8)));
        }
        for (int h = 0; h < 2; h++) {
            __mmask8 mh = h ? m1 : m0;
            __m512d t = _mm512_add_pd(_mm512_add_pd(s[0][h], s[1][h]), _mm512_add_pd(s[2][h], s[3][h]));
            t = _mm512_add_pd(_mm512_maskz_loadu_pd(mh, acc + o + 8 * h), t);
            _mm512_mask_storeu_pd(acc + o + 8 * h, mh, t);
        }
    }
}
