/* Convolution packers and the direct-plane convolution for the avx512 level, compiled with
 * -mavx512f -mavx512vl -mfma: the loops of conv_common.h vectorised for this ISA, and an
 * im2col packer that copies each run with 16-lane moves.  A run's tail is loaded whole when
 * that stays inside the input (else masked) and stored whole when the panel row has room (the
 * next run, or the zero fill, overwrites the excess): masked moves are slow on Zen 4. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops/native/native_isa.h"

#define CC_HAVE_PACK_SEG 1
#define CONV_SFX avx512
#include "ops/native/conv_common.h"

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
 * broadcasts one input value per pixel.  A tap whose input row lies in the padding is skipped;
 * a pixel whose input column does reads the zero buffer.  The channels are summed in order,
 * the taps row by row, so every output is computed the same way whatever the tiling. */

#define CL_RW 14 /* the widest tile (NB 2: 28 accumulators) */
#define CL_ALWAYS static inline __attribute__((always_inline))

static inline __mmask16 cl_mask(int64_t rem)
{
    return rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
}

CL_ALWAYS void cl_tile(const op_native_clconv *p, const float *x, float *y, const float *r,
                       int64_t oy, int64_t ox0, int64_t fb, const int RW, const int NB)
{
    __m512 acc[CL_RW][2];
#pragma GCC unroll 32
    for (int q = 0; q < RW; q++)
#pragma GCC unroll 2
        for (int b = 0; b < NB; b++)
            acc[q][b] = _mm512_setzero_ps();
    const int64_t C = p->c, fp = p->fp;
    /* every tap of every pixel inside the row, the taps' columns adjacent */
    const bool inside = p->dw == 1 && ox0 * p->sw - p->pw >= 0 &&
                        (ox0 + RW - 1) * p->sw - p->pw + p->kw - 1 < p->w;
    for (int64_t i = 0; i < p->kh; i++) {
        int64_t iy = oy * p->sh - p->ph + i * p->dh;
        if (iy < 0 || iy >= p->h)
            continue;
        const float *xr = x + iy * p->w * C;
        if (inside) {
            /* the row's taps and channels as one run: (j, c) -> j*C + c in x and in wp */
            const float *xp[CL_RW];
#pragma GCC unroll 32
            for (int q = 0; q < RW; q++)
                xp[q] = xr + ((ox0 + q) * p->sw - p->pw) * C;
            const float *wt = p->wp + i * p->kw * C * fp + fb * 16;
            for (int64_t k = 0; k < p->kw * C; k++, wt += fp) {
                __m512 wv[2];
#pragma GCC unroll 2
                for (int b = 0; b < NB; b++)
                    wv[b] = _mm512_loadu_ps(wt + b * 16);
#pragma GCC unroll 32
                for (int q = 0; q < RW; q++) {
                    __m512 bc = _mm512_set1_ps(xp[q][k]);
#pragma GCC unroll 2
                    for (int b = 0; b < NB; b++)
                        acc[q][b] = _mm512_fmadd_ps(bc, wv[b], acc[q][b]);
                }
            }
            continue;
        }
        for (int64_t j = 0; j < p->kw; j++) {
            const float *xp[CL_RW];
#pragma GCC unroll 32
            for (int q = 0; q < RW; q++) {
                int64_t ix = (ox0 + q) * p->sw - p->pw + j * p->dw;
                xp[q] = ix >= 0 && ix < p->w ? xr + ix * C : p->zero;
            }
            const float *wt = p->wp + (i * p->kw + j) * C * fp + fb * 16;
            for (int64_t c = 0; c < C; c++, wt += fp) {
                __m512 wv[2];
#pragma GCC unroll 2
                for (int b = 0; b < NB; b++)
                    wv[b] = _mm512_loadu_ps(wt + b * 16);
#pragma GCC unroll 32
                for (int q = 0; q < RW; q++) {
                    __m512 bc = _mm512_set1_ps(xp[q][c]);
#pragma GCC unroll 2
                    for (int b = 0; b < NB; b++)
                        acc[q][b] = _mm512_fmadd_ps(bc, wv[b], acc[q][b]);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int b = 0; b < NB; b++) {
        __mmask16 m = cl_mask(p->f - (fb + b) * 16);
        __m512 bv = p->bias ? _mm512_maskz_loadu_ps(m, p->bias + (fb + b) * 16) : _mm512_setzero_ps();
#pragma GCC unroll 32
        for (int q = 0; q < RW; q++) {
            int64_t off = (ox0 + q) * p->f + (fb + b) * 16;
            float *d = y + off;
            __m512 v = _mm512_add_ps(acc[q][b], bv);
            if (r) /* read before the store: the residual may be the output's memory */
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + off));
            if (m == 0xFFFF)
                _mm512_storeu_ps(d, v);
            else
                _mm512_mask_storeu_ps(d, m, v);
        }
    }
}

typedef void (*cl_tile_fn)(const op_native_clconv *p, const float *x, float *y, const float *r,
                           int64_t oy, int64_t ox0, int64_t fb);

#define CL_T(rw, nb)                                                                              \
    static void cl_tile_##rw##_##nb(const op_native_clconv *p, const float *x, float *y,          \
                                    const float *r, int64_t oy, int64_t ox0, int64_t fb)          \
    {                                                                                             \
        cl_tile(p, x, y, r, oy, ox0, fb, rw, nb);                                                 \
    }
#define CL_T2(rw) CL_T(rw, 1) CL_T(rw, 2)
CL_T2(1) CL_T2(2) CL_T2(3) CL_T2(4) CL_T2(5) CL_T2(6) CL_T2(7)
CL_T2(8) CL_T2(9) CL_T2(10) CL_T2(11) CL_T2(12) CL_T2(13) CL_T2(14)
#define CL_E(rw) {cl_tile_##rw##_1, cl_tile_##rw##_2}
static const cl_tile_fn cl_tiles[CL_RW][2] = {
    CL_E(1), CL_E(2), CL_E(3), CL_E(4), CL_E(5), CL_E(6), CL_E(7),
    CL_E(8), CL_E(9), CL_E(10), CL_E(11), CL_E(12), CL_E(13), CL_E(14),
};

void op_native_conv_cl_row_avx512(const op_native_clconv *p, int64_t n, int64_t oy)
{
    const float *x = p->x + n * p->h * p->w * p->c;
    int64_t row = (n * p->oh + oy) * p->ow * p->f;
    float *y = p->y + row;
    const float *r = p->res ? p->res + row : NULL;
    int64_t nfb = p->fp / 16;
    /* the row in tiles of near-equal width, at most CL_RW */
    int64_t ntile = (p->ow + CL_RW - 1) / CL_RW;
    for (int64_t fb = 0; fb < nfb;) {
        int nb = nfb - fb >= 2 ? 2 : 1;
        for (int64_t t = 0, ox = 0; t < ntile; t++) {
            int64_t rw = (p->ow - ox) / (ntile - t);
            cl_tiles[rw - 1][nb - 1](p, x, y, r, oy, ox, fb);
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
 * A tile is FB <= 3 filters by the 9 taps by 16 channels, in 9*FB accumulators over the
 * channels, held through all the tile's pixels: per output pixel, FB dy values broadcast and
 * nine input vectors (one per tap) loaded.  Input rows in the padding read a zero row; the
 * columns whose taps leave the input check each tap.  Pixels are taken in order. */

CL_ALWAYS void cl_wg3_px(__m512 (*acc)[9], const float *const *xr, const float *dv, int64_t ox,
                         const op_native_clwgrad *p, __mmask16 m, const int FB, const bool CHECK)
{
    __m512 g[3];
#pragma GCC unroll 3
    for (int fi = 0; fi < FB; fi++)
        g[fi] = _mm512_set1_ps(dv[fi]);
    int64_t ix0 = ox * p->sw - p->pw;
#pragma GCC unroll 3
    for (int i = 0; i < 3; i++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++) {
            int64_t ix = ix0 + j * p->dw;
            if (CHECK && (ix < 0 || ix >= p->w))
                continue;
            __m512 v = _mm512_maskz_loadu_ps(m, xr[i] + ix * p->c);
            __asm__("" : "+v"(v));
#pragma GCC unroll 3
            for (int fi = 0; fi < FB; fi++)
                acc[fi][i * 3 + j] = _mm512_fmadd_ps(g[fi], v, acc[fi][i * 3 + j]);
        }
}

/* The columns whose taps all read inside the input: n pixels from the one at b (9 tap
 * pointers), the next pixel's xs floats on, dy at dv (the next pixel's f floats on). */
CL_ALWAYS void cl_wg3_run(__m512 (*acc)[9], const float *const *b, const float *dv, int64_t n,
                          int64_t xs, int64_t f, __mmask16 m, const int FB, const bool FULL)
{
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3], *b4 = b[4], *b5 = b[5];
    const float *b6 = b[6], *b7 = b[7], *b8 = b[8];
    for (int64_t o = 0, e = n * xs; o < e; o += xs, dv += f) {
        __m512 g[3];
#pragma GCC unroll 3
        for (int fi = 0; fi < FB; fi++)
            g[fi] = _mm512_set1_ps(dv[fi]);
        const float *src[9] = {b0 + o, b1 + o, b2 + o, b3 + o, b4 + o, b5 + o, b6 + o, b7 + o, b8 + o};
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) {
            __m512 v = FULL ? _mm512_loadu_ps(src[t]) : _mm512_maskz_loadu_ps(m, src[t]);
            __asm__("" : "+v"(v)); /* one load, not one per filter folded into the FMAs */
#pragma GCC unroll 3
            for (int fi = 0; fi < FB; fi++)
                acc[fi][t] = _mm512_fmadd_ps(g[fi], v, acc[fi][t]);
        }
    }
}

CL_ALWAYS void cl_wg3_tile(const op_native_clwgrad *p, int64_t n, int64_t oy0, int64_t oy1,
                           int64_t c0, int64_t nc, int64_t f0, const float *zero, float *dw, bool add,
                           const int FB)
{
    int64_t cp = (p->c + 15) / 16 * 16;
    __m512 acc[3][9];
#pragma GCC unroll 3
    for (int fi = 0; fi < FB; fi++)
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++)
            acc[fi][t] = add ? _mm512_loadu_ps(dw + ((f0 + fi) * 9 + t) * cp + c0) : _mm512_setzero_ps();
    __mmask16 m = cl_mask(nc);
    /* the output columns whose three taps all read inside the input */
    int64_t lo = p->pw <= 0 ? 0 : (p->pw + p->sw - 1) / p->sw;
    int64_t last = p->w - 1 + p->pw - 2 * p->dw; /* ox*sw <= last */
    int64_t hi = last < 0 ? 0 : last / p->sw + 1;
    hi = hi > p->ow ? p->ow : hi;
    lo = lo > hi ? hi : lo;
    const float *x = p->x + n * p->h * p->w * p->c + c0;
    for (int64_t oy = oy0; oy < oy1; oy++) {
        const float *xr[3];
        for (int i = 0; i < 3; i++) {
            int64_t iy = oy * p->sh - p->ph + i * p->dh;
            xr[i] = iy >= 0 && iy < p->h ? x + iy * p->w * p->c : zero;
        }
        const float *dv = p->dy + (n * p->oh + oy) * p->ow * p->f + f0;
        int64_t ox = 0;
        for (; ox < lo; ox++)
            cl_wg3_px(acc, xr, dv + ox * p->f, ox, p, m, FB, true);
        if (ox < hi) {
            const float *b[9];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    b[i * 3 + j] = xr[i] + (ox * p->sw - p->pw + j * p->dw) * p->c;
            if (nc == 16)
                cl_wg3_run(acc, b, dv + ox * p->f, hi - ox, p->sw * p->c, p->f, m, FB, true);
            else
                cl_wg3_run(acc, b, dv + ox * p->f, hi - ox, p->sw * p->c, p->f, m, FB, false);
            ox = hi;
        }
        for (; ox < p->ow; ox++)
            cl_wg3_px(acc, xr, dv + ox * p->f, ox, p, m, FB, true);
    }
#pragma GCC unroll 3
    for (int fi = 0; fi < FB; fi++)
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++)
            _mm512_storeu_ps(dw + ((f0 + fi) * 9 + t) * cp + c0, acc[fi][t]);
}

#define CL_W3(fb)                                                                                 \
    static void cl_wg3_##fb(const op_native_clwgrad *p, int64_t n, int64_t oy0, int64_t oy1,      \
                            int64_t c0, int64_t nc, int64_t f0, const float *zero, float *dw,     \
                            bool add)                                                             \
    {                                                                                             \
        cl_wg3_tile(p, n, oy0, oy1, c0, nc, f0, zero, dw, add, fb);                               \
    }
CL_W3(1) CL_W3(2) CL_W3(3)

void op_native_conv_cl_wgrad3_avx512(const op_native_clwgrad *p, int64_t n, int64_t oy0, int64_t oy1,
                                     int64_t c0, int64_t nc, int64_t f0, int64_t nf,
                                     const float *zero, float *dw, bool add)
{
    switch (nf) {
    case 1: cl_wg3_1(p, n, oy0, oy1, c0, nc, f0, zero, dw, add); break;
    case 2: cl_wg3_2(p, n, oy0, oy1, c0, nc, f0, zero, dw, add); break;
    default: cl_wg3_3(p, n, oy0, oy1, c0, nc, f0, zero, dw, add); break;
    }
}
