/* The native int8 convolution's job at the AVX-512 VNNI level (native_conv_q.h): the tile as
 * vpdpbusd (u8 tap words by broadcast s8 filter words into s32), FB filters by NV vectors of
 * 16 outputs held in registers (FB * NV accumulators, at most 24 of the 32 zmm registers). */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops/native/native_conv_q.h"

/* NV vectors per tile for fb filters: 4 up to 6 filters, 3 above (24 accumulators). */
#define NQ_NV(fb) ((fb) <= 6 ? 4 : 3)

/* sat(rne(v)) of 16 floats as ints in [lo, hi] (NaN: 0), as op_q_act with a scale of 1 */
static inline __m512i q16(__m512 v, __m512 lo, __m512 hi)
{
    __mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    return _mm512_maskz_mov_epi32(ord, _mm512_cvtps_epi32(v));
}

static inline __mmask16 lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* The quantised row: sat(rne(x * inv)), s8 stored plus 128. */
static void quant_row(uint8_t *d, const float *x, int64_t n, float inv, bool is_unsigned)
{
    __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(is_unsigned ? 0.0f : -128.0f);
    __m512 hi = _mm512_set1_ps(is_unsigned ? 255.0f : 127.0f);
    __m512i off = _mm512_set1_epi32(is_unsigned ? 0 : 128);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = lanes(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vi);
        _mm512_mask_cvtepi32_storeu_epi8(d + i, k, _mm512_add_epi32(q16(v, lo, hi), off));
    }
}

/* 16 bytes at b, zero-extended to 16 words and shifted left by sh bits */
static inline __m512i widen(const uint8_t *b, int sh)
{
    return _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)b)), sh);
}

static void expand(uint32_t *d, const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3, int64_t n)
{
    for (int64_t m = 0; m < n; m += 16) {
        __m512i w = _mm512_or_si512(_mm512_or_si512(widen(b0 + m, 0), widen(b1 + m, 8)),
                                    _mm512_or_si512(widen(b2 + m, 16), widen(b3 + m, 24)));
        _mm512_storeu_si512((void *)(d + m), w);
    }
}

#define NQ_QUANT_ROW quant_row
#define NQ_EXPAND expand

/* The residual's k * t of elements i .. i + 15 (lanes k; ops/quant.h's op_q_res_term). */
static inline __m512 res16(const nq_res *r, size_t i, __mmask16 k)
{
    __m512 t;
    if (r->dt == OP_DT_F32) {
        t = _mm512_maskz_loadu_ps(k, (const float *)r->r + i);
        __m512 lo = _mm512_set1_ps(r->uns ? 0.0f : -128.0f), hi = _mm512_set1_ps(r->uns ? 255.0f : 127.0f);
        if (r->mode == NQ_R_F32_Q)
            t = _mm512_cvtepi32_ps(q16(_mm512_mul_ps(t, _mm512_set1_ps(r->inv)), lo, hi));
        else
            return t; /* k = 1 */
    } else {
        __m128i b = _mm_maskz_loadu_epi8(k, (const uint8_t *)r->r + i);
        t = _mm512_cvtepi32_ps(r->dt == OP_DT_U8 ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b));
        if (r->mode == NQ_R_I8_DQ)
            t = _mm512_mul_ps(t, _mm512_set1_ps(r->sr));
    }
    return _mm512_mul_ps(_mm512_set1_ps(r->k), t);
}

static inline void nq_put(const nq_dst *d, size_t i, float v);
static inline float nq_res_kt(const nq_res *r, size_t i);

/* d's activation of 16 values */
static inline __m512 dact16(const nq_dst *d, __m512 v)
{
    if (d->act == OP_ACT_RELU) {
        v = _mm512_max_ps(v, _mm512_setzero_ps()); /* NaN and -0 give +0, as x > 0 ? x : 0 */
    } else if (d->act == OP_ACT_LEAKY_RELU) {
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(d->alpha)), v);
    }
    return v;
}

/* lane l's element offset l * ls of a channels-last output */
static inline __m512i lane_idx(int64_t ls)
{
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)ls));
}

/* The residual's k * t of the lanes k at elements i + l * ls (gathered). */
static inline __m512 res_strided(const nq_dst *d, size_t i, __mmask16 k, __m512i idx)
{
    if (d->res->mode == NQ_R_F32)
        return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, (const float *)d->res->r + i, 4);
    float t[16] = {0};
    for (int l = 0; l < 16; l++)
        if (k >> l & 1)
            t[l] = nq_res_kt(d->res, i + (size_t)(l * d->ls));
    return _mm512_loadu_ps(t);
}

/* put16 for a channels-last output: lane l at element i + l * ls (gather, scatter). */
static void put16_strided(const nq_dst *d, size_t i, __mmask16 k, __m512 v)
{
    __m512i idx = lane_idx(d->ls);
    if (d->res && d->res->r)
        v = _mm512_add_ps(v, res_strided(d, i, k, idx));
    v = dact16(d, v);
    if (d->dt == OP_DT_F32) {
        _mm512_mask_i32scatter_ps((float *)d->y + i, k, idx, v, 4);
        return;
    }
    bool u = d->dt == OP_DT_U8;
    int32_t t[16];
    _mm512_storeu_si512((void *)t, q16(v, _mm512_set1_ps(u ? 0.0f : -128.0f), _mm512_set1_ps(u ? 255.0f : 127.0f)));
    uint8_t *y = (uint8_t *)d->y + i;
    for (int l = 0; l < 16; l++)
        if (k >> l & 1)
            y[l * d->ls] = (uint8_t)t[l];
}

/* store_cl's f32 case: the 8 x 16 floats transposed in 128-bit lanes (unpack, shuffle), each
 * position's filters two masked 4-float stores. */
static inline void store_cl_f32(const nq_dst *d, size_t i, __mmask16 k, __m512i idx, __m512 *r, int nf)
{
    __m512 v[8];
    for (int f = 0; f < 8; f++) {
        if (f >= nf) {
            v[f] = _mm512_setzero_ps();
            continue;
        }
        v[f] = r[f];
        if (d->res && d->res->r)
            v[f] = _mm512_add_ps(v[f], res_strided(d, i + (size_t)f, k, idx));
        v[f] = dact16(d, v[f]);
    }
    /* per 128-bit lane c (positions 4c .. 4c + 3): a[j] holds filters 0-3 of position 4c + j,
     * b[j] filters 4-7 */
    __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
    __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
    __m512 t4 = _mm512_unpacklo_ps(v[4], v[5]), t5 = _mm512_unpackhi_ps(v[4], v[5]);
    __m512 t6 = _mm512_unpacklo_ps(v[6], v[7]), t7 = _mm512_unpackhi_ps(v[6], v[7]);
    __m512 a[4] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xee), _mm512_shuffle_ps(t1, t3, 0x44),
                   _mm512_shuffle_ps(t1, t3, 0xee)};
    __m512 b[4] = {_mm512_shuffle_ps(t4, t6, 0x44), _mm512_shuffle_ps(t4, t6, 0xee), _mm512_shuffle_ps(t5, t7, 0x44),
                   _mm512_shuffle_ps(t5, t7, 0xee)};
    __mmask8 lo = (__mmask8)(nf >= 4 ? 0xf : (1u << nf) - 1u), hi = (__mmask8)(nf <= 4 ? 0 : (1u << (nf - 4)) - 1u);
    float *y = (float *)d->y + i;
#define NQ_CL_LANE(c)                                                                              \
    for (int j = 0; j < 4; j++) {                                                                  \
        int l = 4 * (c) + j;                                                                       \
        if (!(k >> l & 1))                                                                         \
            continue;                                                                              \
        _mm_mask_storeu_ps(y + l * d->ls, lo, _mm512_extractf32x4_ps(a[j], c));                    \
        if (hi)                                                                                    \
            _mm_mask_storeu_ps(y + l * d->ls + 4, hi, _mm512_extractf32x4_ps(b[j], c));            \
    }
    NQ_CL_LANE(0)
    NQ_CL_LANE(1)
    NQ_CL_LANE(2)
    NQ_CL_LANE(3)
#undef NQ_CL_LANE
}

/* The nf (<= 8) filters r[f] of 16 consecutive positions into a channels-last output from
 * element i (filter f of lane l at i + f + l * ls; lanes < cnt): u8/s8 transposed in registers
 * (8 filters by 16 positions of bytes), each position's filters one masked store; f32 as
 * store_cl_f32. */
static inline void store_cl(const nq_dst *d, size_t i, int64_t cnt, __m512 *r, int nf)
{
    __mmask16 k = lanes(cnt);
    if (!k)
        return;
    __m512i idx = lane_idx(d->ls);
    if (d->dt == OP_DT_F32) {
        store_cl_f32(d, i, k, idx, r, nf);
        return;
    }
    bool u = d->dt == OP_DT_U8;
    __m512 lo = _mm512_set1_ps(u ? 0.0f : -128.0f), hi = _mm512_set1_ps(u ? 255.0f : 127.0f);
    __m128i b[8];
    for (int f = 0; f < 8; f++) {
        if (f >= nf) {
            b[f] = _mm_setzero_si128();
            continue;
        }
        __m512 v = r[f];
        if (d->res && d->res->r)
            v = _mm512_add_ps(v, res_strided(d, i + (size_t)f, k, idx));
        b[f] = _mm512_cvtepi32_epi8(q16(dact16(d, v), lo, hi));
    }
    __m128i t0 = _mm_unpacklo_epi8(b[0], b[1]), t1 = _mm_unpackhi_epi8(b[0], b[1]);
    __m128i t2 = _mm_unpacklo_epi8(b[2], b[3]), t3 = _mm_unpackhi_epi8(b[2], b[3]);
    __m128i t4 = _mm_unpacklo_epi8(b[4], b[5]), t5 = _mm_unpackhi_epi8(b[4], b[5]);
    __m128i t6 = _mm_unpacklo_epi8(b[6], b[7]), t7 = _mm_unpackhi_epi8(b[6], b[7]);
    __m128i u0 = _mm_unpacklo_epi16(t0, t2), u1 = _mm_unpackhi_epi16(t0, t2); /* positions 0-3, 4-7: f0-3 */
    __m128i u2 = _mm_unpacklo_epi16(t1, t3), u3 = _mm_unpackhi_epi16(t1, t3); /* 8-11, 12-15 */
    __m128i w0 = _mm_unpacklo_epi16(t4, t6), w1 = _mm_unpackhi_epi16(t4, t6); /* the same: f4-7 */
    __m128i w2 = _mm_unpacklo_epi16(t5, t7), w3 = _mm_unpackhi_epi16(t5, t7);
    __m128i x[8] = {_mm_unpacklo_epi32(u0, w0), _mm_unpackhi_epi32(u0, w0), _mm_unpacklo_epi32(u1, w1),
                    _mm_unpackhi_epi32(u1, w1), _mm_unpacklo_epi32(u2, w2), _mm_unpackhi_epi32(u2, w2),
                    _mm_unpacklo_epi32(u3, w3), _mm_unpackhi_epi32(u3, w3)}; /* two positions each */
    __mmask16 fm = (__mmask16)((1u << nf) - 1u);
    uint8_t *y = (uint8_t *)d->y + i;
    for (int l = 0; l < 16; l++) {
        if (!(k >> l & 1))
            break;
        __m128i pl = l & 1 ? _mm_srli_si128(x[l >> 1], 8) : x[l >> 1];
        _mm_mask_storeu_epi8(y + l * d->ls, fm, pl);
    }
}

/* Vector v's 16 values of one filter through d's epilogue (native_conv_q.h), stored at i. */
static inline void put16(const nq_dst *d, size_t i, int64_t cnt, __m512 v)
{
    __mmask16 k = lanes(cnt);
    if (d->ls != 1) {
        if (k)
            put16_strided(d, i, k, v);
        return;
    }
    if (d->res && d->res->r)
        v = _mm512_add_ps(v, res16(d->res, i, k));
    v = dact16(d, v);
    if (d->dt == OP_DT_U8)
        _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)d->y + i, k,
                                         q16(v, _mm512_setzero_ps(), _mm512_set1_ps(255.0f)));
    else if (d->dt == OP_DT_S8)
        _mm512_mask_cvtepi32_storeu_epi8((int8_t *)d->y + i, k,
                                         q16(v, _mm512_set1_ps(-128.0f), _mm512_set1_ps(127.0f)));
    else
        _mm512_mask_storeu_ps((float *)d->y + i, k, v);
}

/* The residual (from element r0; r0 < 0: none) and activation of 16 values at once. */
static inline __m512 act16(const nq_conv *p, __m512 v, int64_t r0, __mmask16 k)
{
    if (r0 >= 0)
        v = _mm512_add_ps(v, res16(&p->res, (size_t)r0, k));
    if (p->act == OP_ACT_RELU) {
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    } else if (p->act == OP_ACT_LEAKY_RELU) {
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(p->alpha)), v);
    }
    return v;
}

/* Fused 2x2 max pooling of stride 2 without padding (LeNet's, VGG's), with the residual and
 * activation before it (none, relu, leaky_relu): pooled rows [y0, y1) of one filter from its
 * convolution rows t (row cy0 first; r0 its residual plane's first element, or -1; plain
 * residuals only) stored from element ybase of the output (ys the step between columns).
 * Window order and comparison as the reference's: max_ps(e, best) keeps best
 * when e is NaN or equal, as e > best ? e : best does.  false: another pooling, left to C. */
static bool pool_rows(const nq_conv *p, const float *t, int64_t r0, int64_t rs, int64_t cy0, int64_t y0,
                      int64_t y1, size_t ybase, int64_t ys)
{
    if (p->psh != 2 || p->psw != 2 || p->pst_h != 2 || p->pst_w != 2 || p->pph != 0 || p->ppw != 0 ||
        (p->act != OP_ACT_NONE && p->act != OP_ACT_RELU && p->act != OP_ACT_LEAKY_RELU) || (r0 >= 0 && rs != 1))
        return false;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    nq_dst d = {.y = p->y, .dt = p->ydt, .ls = ys, .act = OP_ACT_NONE};
    int64_t ow = p->ow;
    for (int64_t py = y0; py < y1; py++) {
        const float *a = t + (2 * py - cy0) * p->owp, *b = a + p->owp;
        int64_t ra = r0 >= 0 ? r0 + 2 * py * ow : -1, rb = r0 >= 0 ? ra + ow : -1;
        for (int64_t px = 0; px < p->yw; px += 16) {
            int64_t c0 = 2 * px;
            __mmask16 k0 = lanes(ow - c0), k1 = lanes(ow - c0 - 16);
            __m512 a0 = act16(p, _mm512_maskz_loadu_ps(k0, a + c0), ra >= 0 ? ra + c0 : -1, k0);
            __m512 a1 = act16(p, _mm512_maskz_loadu_ps(k1, a + c0 + 16), ra >= 0 ? ra + c0 + 16 : -1, k1);
            __m512 b0 = act16(p, _mm512_maskz_loadu_ps(k0, b + c0), rb >= 0 ? rb + c0 : -1, k0);
            __m512 b1 = act16(p, _mm512_maskz_loadu_ps(k1, b + c0 + 16), rb >= 0 ? rb + c0 + 16 : -1, k1);
            __m512 best = _mm512_set1_ps(-INFINITY);
            best = _mm512_max_ps(_mm512_permutex2var_ps(a0, ie, a1), best);
            best = _mm512_max_ps(_mm512_permutex2var_ps(a0, io, a1), best);
            best = _mm512_max_ps(_mm512_permutex2var_ps(b0, ie, b1), best);
            best = _mm512_max_ps(_mm512_permutex2var_ps(b0, io, b1), best);
            put16(&d, ybase + (size_t)((py * p->yw + px) * ys), p->yw - px, best);
        }
    }
    return true;
}

#define NQ_POOL_ROWS pool_rows

/* pool_rows for a channels-last output without a residual: all the group's filters of 16
 * pooled positions at once, stored transposed (store_cl).  false: another case. */
static bool pool_group_cl(const nq_conv *p, const float *tb, int64_t tsf, int64_t n, int64_t grp, int64_t cy0,
                          int64_t y0, int64_t y1)
{
    if (!p->ycl || p->res.r || p->psh != 2 || p->psw != 2 || p->pst_h != 2 || p->pst_w != 2 || p->pph != 0 ||
        p->ppw != 0 || (p->act != OP_ACT_NONE && p->act != OP_ACT_RELU && p->act != OP_ACT_LEAKY_RELU))
        return false;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    nq_dst d = {.y = p->y, .dt = p->ydt, .ls = p->f, .act = OP_ACT_NONE};
    int64_t ow = p->ow;
    for (int64_t py = y0; py < y1; py++)
        for (int64_t px = 0; px < p->yw; px += 16) {
            int64_t c0 = 2 * px;
            __mmask16 k0 = lanes(ow - c0), k1 = lanes(ow - c0 - 16);
            for (int64_t f0 = 0; f0 < p->fpg; f0 += 8) {
                int nf = (int)(p->fpg - f0 < 8 ? p->fpg - f0 : 8);
                __m512 best[8];
                for (int f = 0; f < nf; f++) {
                    const float *a = tb + (f0 + f) * tsf + (2 * py - cy0) * p->owp, *b = a + p->owp;
                    __m512 a0 = act16(p, _mm512_maskz_loadu_ps(k0, a + c0), -1, k0);
                    __m512 a1 = act16(p, _mm512_maskz_loadu_ps(k1, a + c0 + 16), -1, k1);
                    __m512 b0 = act16(p, _mm512_maskz_loadu_ps(k0, b + c0), -1, k0);
                    __m512 b1 = act16(p, _mm512_maskz_loadu_ps(k1, b + c0 + 16), -1, k1);
                    __m512 m = _mm512_set1_ps(-INFINITY);
                    m = _mm512_max_ps(_mm512_permutex2var_ps(a0, ie, a1), m);
                    m = _mm512_max_ps(_mm512_permutex2var_ps(a0, io, a1), m);
                    m = _mm512_max_ps(_mm512_permutex2var_ps(b0, ie, b1), m);
                    best[f] = _mm512_max_ps(_mm512_permutex2var_ps(b0, io, b1), m);
                }
                size_t at = ((size_t)(n * p->yh + py) * (size_t)p->yw + (size_t)px) * (size_t)p->f +
                            (size_t)(grp * p->fpg + f0);
                store_cl(&d, at, p->yw - px, best, nf);
            }
        }
    return true;
}

#define NQ_POOL_GROUP pool_group_cl

static inline __attribute__((always_inline)) void tile_body(const int fb, const int nv, int64_t k4,
                                                            const uint32_t *e, const int64_t *vb,
                                                            const int64_t *to, const int64_t *cnt,
                                                            const int64_t *koff, const int32_t *w, int nf,
                                                            const int32_t *comp, const float *bq, const float *m,
                                                            const nq_dst *d)
{
    __m512i acc[NQ_MAX_FB][NQ_MAX_NV];
    const uint32_t *base[NQ_MAX_NV];
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++) {
        base[v] = e + vb[v];
#pragma GCC unroll 8
        for (int f = 0; f < fb; f++)
            acc[f][v] = _mm512_setzero_si512();
    }
    for (int64_t k = 0; k < k4; k++) {
        int64_t o = koff[k];
        __m512i x[NQ_MAX_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            x[v] = _mm512_loadu_si512((const void *)(base[v] + o));
        const int32_t *wk = w + k * fb;
#pragma GCC unroll 8
        for (int f = 0; f < fb; f++) {
            __m512i wv = _mm512_set1_epi32(wk[f]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[f][v] = _mm512_dpbusd_epi32(acc[f][v], x[v], wv);
        }
    }
    if (d->ls != 1) { /* channels-last: all filters of a position together */
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            __m512 r[NQ_MAX_FB];
#pragma GCC unroll 8
            for (int f = 0; f < fb; f++) {
                __m512 a = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[f][v], _mm512_set1_epi32(comp[f])));
                r[f] = _mm512_mul_ps(_mm512_add_ps(a, _mm512_set1_ps(bq[f])), _mm512_set1_ps(m[f]));
            }
            store_cl(d, d->base + (size_t)to[v], cnt[v], r, nf);
        }
        return;
    }
#pragma GCC unroll 8
    for (int f = 0; f < fb; f++) {
        if (f >= nf)
            break;
        __m512i cv = _mm512_set1_epi32(comp[f]);
        __m512 bv = _mm512_set1_ps(bq[f]), mv = _mm512_set1_ps(m[f]);
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[f][v], cv));
            r = _mm512_mul_ps(_mm512_add_ps(r, bv), mv);
            put16(d, d->base + (size_t)(f * d->fs + to[v]), cnt[v], r);
        }
    }
}

#define TILE_FN(FB)                                                                                          \
    static void tile_##FB(int64_t k4, const uint32_t *e, const int64_t *vb, const int64_t *to,              \
                          const int64_t *cnt, const int64_t *koff, const int32_t *w, int nf,                \
                          const int32_t *comp, const float *bq, const float *m, const nq_dst *d)            \
    {                                                                                                       \
        tile_body(FB, NQ_NV(FB), k4, e, vb, to, cnt, koff, w, nf, comp, bq, m, d);                          \
    }
TILE_FN(1)
TILE_FN(2)
TILE_FN(3)
TILE_FN(4)
TILE_FN(5)
TILE_FN(6)
TILE_FN(7)
TILE_FN(8)

static void nq_tile_vnni(const nq_conv *p, const uint32_t *e, const int64_t *vb, const int64_t *to,
                         const int64_t *cnt, const int64_t *koff, const int32_t *w, int nf, const int32_t *comp,
                         const float *bq, const float *m, const nq_dst *d)
{
    static void (*const fns[NQ_MAX_FB + 1])(int64_t, const uint32_t *, const int64_t *, const int64_t *,
                                            const int64_t *, const int64_t *, const int32_t *, int,
                                            const int32_t *, const float *, const float *, const nq_dst *) = {
        NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6, tile_7, tile_8,
    };
    fns[p->fb](p->k4, e, vb, to, cnt, koff, w, nf, comp, bq, m, d);
}

#define NQ_JOB op_native_convq_job_vnni
#define NQ_TILE nq_tile_vnni
#include "ops/native/conv_q_common.h"
