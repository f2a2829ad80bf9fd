/* Winograd's F(4x4, 3x3) on channels-last activations for the avx512 level (op_native_isa.
 * wino_tiles; the driver is native_conv_wino.c), compiled with -mavx512f -mfma.  A pixel's 16
 * channels are one vector, so every transform works on whole vectors:
 *   input      V = B^T d B for each tile's 6x6 input pixels (zero outside the image), each
 *              16-channel block, stored v[tile][xi][c] (xi = 6 i + j): a tile's 36 vectors
 *              fill consecutive cache lines (position-major, v[xi][tile][c], had put them 1 KB
 *              apart, in a few L1 sets);
 *   products   for each of the 36 xi, M[tile][xi][f] = sum over c of V[tile][xi][c] U[xi][c][f]:
 *              8 tiles at a time, one (or two) 16-filter blocks of U per channel, each V value
 *              broadcast from memory into its tile's accumulator;
 *   output     Y = A^T M A, 4x4 pixels a tile, plus the bias and the residual, then the ReLU.
 * The 1-D transforms (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2015, with the points 0, 1, -1, 2, -2):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Each output's arithmetic is fixed by the shapes (a tile's sums do not depend on which tiles
 * share its job), so results do not depend on the thread count. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ops/native/native_isa.h"

#define WT_ALWAYS static inline __attribute__((always_inline))
#define WT_GROUP 8 /* tiles whose products are summed at once */

/* o = B^T d (six vectors) */
WT_ALWAYS void bt6(const __m512 d[6], __m512 o[6])
{
    const __m512 f4 = _mm512_set1_ps(4.0f), f5 = _mm512_set1_ps(5.0f), f2 = _mm512_set1_ps(2.0f);
    o[0] = _mm512_fnmadd_ps(f5, d[2], _mm512_fmadd_ps(f4, d[0], d[4]));
    __m512 a = _mm512_fnmadd_ps(f4, d[1], d[3]); /* d3 - 4 d1 */
    __m512 b = _mm512_fnmadd_ps(f4, d[2], d[4]); /* d4 - 4 d2 */
    o[1] = _mm512_add_ps(b, a);
    o[2] = _mm512_sub_ps(b, a);
    __m512 c = _mm512_mul_ps(f2, _mm512_sub_ps(d[3], d[1])); /* 2 (d3 - d1) */
    __m512 e = _mm512_sub_ps(d[4], d[2]);
    o[3] = _mm512_add_ps(e, c);
    o[4] = _mm512_sub_ps(e, c);
    o[5] = _mm512_fnmadd_ps(f5, d[3], _mm512_fmadd_ps(f4, d[1], d[5]));
}

/* o = A^T m (six vectors to four) */
WT_ALWAYS void at6(const __m512 m[6], __m512 o[4])
{
    __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
    __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), m[5]);
}

/* The products of WT_GROUP tiles for one xi: m[t][fb*16 ..] = sum over c of v[t][c] u[fb][c],
 * for NB (1 or 2) filter blocks fb (u's blocks c*16 floats apart; the tiles 36 c floats apart
 * in v, 36 f in m).
 * products_c: the same for a channel count known here, so that the tiles' broadcasts are
 * constant offsets from one pointer (with c in a register the eight offsets took eight
 * registers, reloaded from the stack every channel). */
WT_ALWAYS void products(const float *v, int64_t c, const float *u, float *m, int64_t f, const int NB);

static void products_any(const float *v, int64_t c, const float *u, float *m, int64_t f, int nb)
{
    if (nb > 1)
        products(v, c, u, m, f, 2);
    else
        products(v, c, u, m, f, 1);
}

#define WT_PRODUCTS_C(C)                                                                          \
    static void products_##C(const float *v, const float *u, float *m, int64_t f, int nb)         \
    {                                                                                             \
        if (nb > 1)                                                                               \
            products(v, C, u, m, f, 2);                                                           \
        else                                                                                      \
            products(v, C, u, m, f, 1);                                                           \
    }
WT_PRODUCTS_C(16)
WT_PRODUCTS_C(32)
WT_PRODUCTS_C(64)
WT_PRODUCTS_C(128)
WT_PRODUCTS_C(256)

static void products_c(const float *v, int64_t c, const float *u, float *m, int64_t f, int nb)
{
    switch (c) {
    case 16: products_16(v, u, m, f, nb); break;
    case 32: products_32(v, u, m, f, nb); break;
    case 64: products_64(v, u, m, f, nb); break;
    case 128: products_128(v, u, m, f, nb); break;
    case 256: products_256(v, u, m, f, nb); break;
    default: products_any(v, c, u, m, f, nb); break;
    }
}

WT_ALWAYS void products(const float *v, int64_t c, const float *u, float *m, int64_t f, const int NB)
{
    __m512 acc[2][WT_GROUP];
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < WT_GROUP; t++)
            acc[b][t] = _mm512_setzero_ps();
    for (int64_t k = 0; k < c; k++) {
        __m512 u0 = _mm512_load_ps(u + k * 16), u1 = NB > 1 ? _mm512_load_ps(u + (c + k) * 16) : u0;
#pragma GCC unroll 8
        for (int t = 0; t < WT_GROUP; t++) {
            __m512 x = _mm512_set1_ps(v[t * 36 * c + k]);
            acc[0][t] = _mm512_fmadd_ps(x, u0, acc[0][t]);
            if (NB > 1)
                acc[1][t] = _mm512_fmadd_ps(x, u1, acc[1][t]);
        }
    }
    for (int b = 0; b < NB; b++)
        for (int t = 0; t < WT_GROUP; t++)
            _mm512_store_ps(m + t * 36 * f + b * 16, acc[b][t]);
}

/* Tile q's image, tile row and column from its number. */
WT_ALWAYS void tile_at(const op_native_wino *p, int64_t q, int64_t *n, int64_t *ty, int64_t *tx)
{
    *tx = q % p->tiles_w;
    *ty = q / p->tiles_w % p->tiles_h;
    *n = q / p->tiles_w / p->tiles_h;
}

static void input_transform(const op_native_wino *p, int64_t q, int64_t slot, float *v)
{
    int64_t n, ty, tx, c = p->c;
    tile_at(p, q, &n, &ty, &tx);
    const float *img = p->x + n * p->h * p->w * c;
    /* a tile whose 6x6 pixels are all inside the image: no checks */
    bool inside = ty > 0 && tx > 0 && ty * 4 + 5 <= p->h && tx * 4 + 5 <= p->w;
    const float *corner = img + ((ty * 4 - 1) * p->w + tx * 4 - 1) * c;
    int64_t row = p->w * c;
    for (int64_t cb = 0; cb < c; cb += 16) {
        __m512 t[6][6];
        for (int j = 0; j < 6; j++) {
            __m512 d[6], o[6];
            int64_t ix = tx * 4 - 1 + j;
            if (inside) {
                for (int i = 0; i < 6; i++)
                    d[i] = _mm512_loadu_ps(corner + i * row + j * c + cb);
            } else {
                for (int i = 0; i < 6; i++) {
                    int64_t iy = ty * 4 - 1 + i;
                    d[i] = iy >= 0 && iy < p->h && ix >= 0 && ix < p->w
                               ? _mm512_loadu_ps(img + (iy * p->w + ix) * c + cb)
                               : _mm512_setzero_ps();
                }
            }
            bt6(d, o);
            for (int i = 0; i < 6; i++)
                t[i][j] = o[i];
        }
        for (int i = 0; i < 6; i++) {
            __m512 o[6];
            bt6(t[i], o);
            for (int j = 0; j < 6; j++)
                _mm512_store_ps(v + (slot * 36 + i * 6 + j) * c + cb, o[j]);
        }
    }
}

static void output_transform(const op_native_wino *p, int64_t q, int64_t slot, int64_t fb0, int64_t fb1,
                             const float *m)
{
    int64_t n, ty, tx, f = p->f;
    tile_at(p, q, &n, &ty, &tx);
    /* the tile's rows and columns inside the output (4 but at the bottom and right edges) */
    int64_t rows = p->h - ty * 4 < 4 ? p->h - ty * 4 : 4, cols = p->w - tx * 4 < 4 ? p->w - tx * 4 : 4;
    int64_t first = ((n * p->h + ty * 4) * p->w + tx * 4) * f, rs = p->w * f;
    const float *ms = m + slot * 36 * f;
    for (int64_t fb = fb0 * 16; fb < fb1 * 16; fb += 16) {
        __m512 t[4][6];
        for (int j = 0; j < 6; j++) {
            __m512 mm[6], o[4];
            for (int i = 0; i < 6; i++)
                mm[i] = _mm512_load_ps(ms + (i * 6 + j) * f + fb);
            at6(mm, o);
            for (int i = 0; i < 4; i++)
                t[i][j] = o[i];
        }
        __m512 bias = p->bias ? _mm512_loadu_ps(p->bias + fb) : _mm512_setzero_ps();
        float *yr = p->y + first + fb;
        const float *rr = p->res ? p->res + first + fb : NULL;
        for (int i = 0; i < rows; i++, yr += rs, rr = rr ? rr + rs : NULL) {
            __m512 o[4];
            at6(t[i], o);
            for (int j = 0; j < 4; j++) {
                if (j >= cols)
                    break;
                __m512 r = _mm512_add_ps(o[j], bias);
                if (rr)
                    r = _mm512_add_ps(r, _mm512_loadu_ps(rr + j * f));
                if (p->relu)
                    r = _mm512_max_ps(r, _mm512_setzero_ps());
                _mm512_storeu_ps(yr + j * f, r);
            }
        }
    }
}

void op_native_wino_tiles_avx512(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                                 float *m)
{
    int64_t c = p->c, f = p->f, groups = (nt + WT_GROUP - 1) / WT_GROUP;
    for (int64_t s = 0; s < nt; s++)
        input_transform(p, t0 + s, s, v);
    /* a last group's slots past nt: zeros (their products are never read) */
    if (nt < groups * WT_GROUP)
        memset(v + nt * 36 * c, 0, (size_t)((groups * WT_GROUP - nt) * 36 * c) * sizeof(float));
    int64_t nfb = f / 16;
    for (int xi = 0; xi < 36; xi++) {
        const float *uxi = p->u + xi * nfb * c * 16;
        for (int64_t g = 0; g < groups; g++) {
            const float *vg = v + (g * WT_GROUP * 36 + xi) * c;
            float *mg = m + (g * WT_GROUP * 36 + xi) * f;
            int64_t fb = fb0;
            for (; fb + 2 <= fb1; fb += 2)
                products_c(vg, c, uxi + fb * c * 16, mg + fb * 16, f, 2);
            if (fb < fb1)
                products_c(vg, c, uxi + fb * c * 16, mg + fb * 16, f, 1);
        }
    }
    for (int64_t s = 0; s < nt; s++)
        output_transform(p, t0 + s, s, fb0, fb1, m);
}

/* ---- the weight gradient ---- */

/* o = A m (four vectors to six): A = (A^T)^T, the adjoint of the output transform */
WT_ALWAYS void a4(const __m512 y[4], __m512 o[6])
{
    __m512 e = _mm512_add_ps(y[0], y[2]), od = _mm512_add_ps(y[1], y[3]);
    __m512 e4 = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[2], y[0]);
    __m512 o2 = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), y[3], _mm512_add_ps(y[1], y[1]));
    o[0] = y[0];
    o[1] = _mm512_add_ps(e, od);
    o[2] = _mm512_sub_ps(e, od);
    o[3] = _mm512_add_ps(e4, o2);
    o[4] = _mm512_sub_ps(e4, o2);
    o[5] = y[3];
}

/* dM = A dY A^T of tile q for the filter blocks fb0 .. fb1, into slot `slot` of m */
static void grad_transform(const op_native_wino *p, int64_t q, int64_t slot, int64_t fb0, int64_t fb1, float *m)
{
    int64_t n, ty, tx, f = p->f;
    tile_at(p, q, &n, &ty, &tx);
    const float *img = p->dy + n * p->h * p->w * f;
    for (int64_t fb = fb0 * 16; fb < fb1 * 16; fb += 16) {
        __m512 t[6][4];
        for (int j = 0; j < 4; j++) {
            __m512 y[4], o[6];
            int64_t ox = tx * 4 + j;
            for (int i = 0; i < 4; i++) {
                int64_t oy = ty * 4 + i;
                y[i] = oy < p->h && ox < p->w ? _mm512_loadu_ps(img + (oy * p->w + ox) * f + fb) : _mm512_setzero_ps();
            }
            a4(y, o);
            for (int i = 0; i < 6; i++)
                t[i][j] = o[i];
        }
        for (int i = 0; i < 6; i++) {
            __m512 o[6];
            a4(t[i], o);
            for (int j = 0; j < 6; j++)
                _mm512_store_ps(m + (slot * 36 + i * 6 + j) * f + fb, o[j]);
        }
    }
}

/* du[c0 + k][fb*16 ..] += sum over the nt tiles of v[t][c0 + k] m[t][fb*16 ..], for NC channels
 * (k < NC) and NB (1 or 2) filter blocks (the tiles 36 c floats apart in v, 36 f in m) */
WT_ALWAYS void wgrad_block(const float *v, int64_t c, const float *m, int64_t f, int64_t nt, float *du, const int NC,
                           const int NB)
{
    __m512 acc[16][2];
    for (int k = 0; k < NC; k++)
        for (int b = 0; b < NB; b++)
            acc[k][b] = _mm512_setzero_ps();
    for (int64_t t = 0; t < nt; t++) {
        __m512 m0 = _mm512_load_ps(m + t * 36 * f), m1 = NB > 1 ? _mm512_load_ps(m + t * 36 * f + 16) : m0;
#pragma GCC unroll 16
        for (int k = 0; k < NC; k++) {
            __m512 x = _mm512_set1_ps(v[t * 36 * c + k]);
            acc[k][0] = _mm512_fmadd_ps(x, m0, acc[k][0]);
            if (NB > 1)
                acc[k][1] = _mm512_fmadd_ps(x, m1, acc[k][1]);
        }
    }
    for (int k = 0; k < NC; k++)
        for (int b = 0; b < NB; b++) {
            float *d = du + k * f + b * 16;
            _mm512_store_ps(d, _mm512_add_ps(_mm512_load_ps(d), acc[k][b]));
        }
}

void op_native_wino_wgrad_avx512(const op_native_wino *p, int64_t t0, int64_t nt, int64_t fb0, int64_t fb1, float *v,
                                 float *m, float *du)
{
    int64_t c = p->c, f = p->f;
    for (int64_t s = 0; s < nt; s++) {
        input_transform(p, t0 + s, s, v);
        grad_transform(p, t0 + s, s, fb0, fb1, m);
    }
    for (int xi = 0; xi < 36; xi++) {
        const float *vx = v + xi * c, *mx = m + xi * f;
        float *dx = du + xi * c * f;
        int64_t fb = fb0;
        for (; fb + 2 <= fb1; fb += 2)
            for (int64_t k = 0; k < c; k += 8)
                wgrad_block(vx + k, c, mx + fb * 16, f, nt, dx + k * f + fb * 16, 8, 2);
        if (fb < fb1)
            for (int64_t k = 0; k < c; k += 16)
                wgrad_block(vx + k, c, mx + fb * 16, f, nt, dx + k * f + fb * 16, 16, 1);
    }
}
