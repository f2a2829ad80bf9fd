/* The native int8 convolution's job at the AVX-512 VNNI level (native_conv_q.h): the tile as
 * vpdpbusd (u8 tap words by broadcast s8 filter words into s32), FB filters by NV vectors of
 * 16 outputs held in registers (FB * NV accumulators, at most 24 of the 32 zmm registers). */
#include <immintrin.h>
#include <stdint.h>

#include "ops/native/native_conv_q.h"

/* NV vectors per tile for fb filters: 4 up to 6 filters, 3 above (24 accumulators). */
#define NQ_NV(fb) ((fb) <= 6 ? 4 : 3)

static inline __attribute__((always_inline)) void tile_body(const int fb, const int nv, int64_t k4,
                                                            const uint32_t *e, const int64_t *vb,
                                                            const int64_t *to, const int64_t *koff,
                                                            const int32_t *w, int nf, const int32_t *comp,
                                                            const float *bq, const float *m, float *t,
                                                            int64_t tsf)
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
            _mm512_storeu_ps(t + f * tsf + to[v], r);
        }
    }
}

#define TILE_FN(FB)                                                                                             \
    static void tile_##FB(int64_t k4, const uint32_t *e, const int64_t *vb, const int64_t *to,                 \
                          const int64_t *koff, const int32_t *w, int nf, const int32_t *comp, const float *bq, \
                          const float *m, float *t, int64_t tsf)                                               \
    {                                                                                                          \
        tile_body(FB, NQ_NV(FB), k4, e, vb, to, koff, w, nf, comp, bq, m, t, tsf);                            \
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
                         const int64_t *koff, const int32_t *w, int nf, const int32_t *comp, const float *bq,
                         const float *m, float *t, int64_t tsf)
{
    static void (*const fns[NQ_MAX_FB + 1])(int64_t, const uint32_t *, const int64_t *, const int64_t *,
                                            const int64_t *, const int32_t *, int, const int32_t *, const float *,
                                            const float *, float *, int64_t) = {
        NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6, tile_7, tile_8,
    };
    fns[p->fb](p->k4, e, vb, to, koff, w, nf, comp, bq, m, t, tsf);
}

#define NQ_JOB op_native_convq_job_vnni
#define NQ_TILE nq_tile_vnni
#include "ops/native/conv_q_common.h"
