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

/* Vector v's 16 values of one filter through d's epilogue (native_conv_q.h), stored at i. */
static inline void put16(const nq_dst *d, size_t i, int64_t cnt, __m512 v)
{
    __mmask16 k = lanes(cnt);
    if (d->res && d->res->r)
        v = _mm512_add_ps(v, res16(d->res, i, k));
    if (d->act == OP_ACT_RELU) {
        v = _mm512_max_ps(v, _mm512_setzero_ps()); /* NaN and -0 give +0, as x > 0 ? x : 0 */
    } else if (d->act == OP_ACT_LEAKY_RELU) {
        __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(d->alpha)), v);
    }
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
 * convolution rows t (row cy0 first; r0 its residual plane's first element, or -1) stored at element ybase of
 * the output.  Window order and comparison as the reference's: max_ps(e, best) keeps best
 * when e is NaN or equal, as e > best ? e : best does.  false: another pooling, left to C. */
static bool pool_rows(const nq_conv *p, const float *t, int64_t r0, int64_t cy0, int64_t y0, int64_t y1,
                      size_t ybase)
{
    if (p->psh != 2 || p->psw != 2 || p->pst_h != 2 || p->pst_w != 2 || p->pph != 0 || p->ppw != 0 ||
        (p->act != OP_ACT_NONE && p->act != OP_ACT_RELU && p->act != OP_ACT_LEAKY_RELU))
        return false;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    nq_dst d = {.y = p->y, .dt = p->ydt, .act = OP_ACT_NONE};
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
            put16(&d, ybase + (size_t)(py * p->yw + px), p->yw - px, best);
        }
    }
    return true;
}

#define NQ_POOL_ROWS pool_rows

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
