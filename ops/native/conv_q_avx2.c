/* The native int8 convolution's job at the AVX2 level (native_conv_q.h).  No VNNI here, and
 * vpmaddubsw would saturate (two products of 255 and 127 overflow 16 bits), so the tile widens
 * the tap words' bytes to 16 bits and uses vpmaddwd: each 32-bit lane gets two of a word's four
 * products, and the halves are added pairwise at the end (vphaddd) -- exact, about ten times the
 * instructions of vpdpbusd per product. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ops/native/native_conv_q.h"

#define NQ_NV(fb) NQ_MAX_NV
#define FC 4 /* filters per pass: 8 accumulators of 8 lanes, 2 inputs, 1 weight register */

/* Filters [f0, f0 + fc) (fc <= FC) of 8 outputs: the tap words at x (+ koff[k]) by the weight
 * words w[k * fb + f], the sums of filter f to s[f][0 .. 8). */
static inline __attribute__((always_inline)) void dot8(const int fc, int64_t k4, const uint32_t *x,
                                                       const int64_t *koff, const int32_t *w, int64_t fb,
                                                       int32_t s[FC][8])
{
    __m256i lo[FC], hi[FC];
#pragma GCC unroll 4
    for (int f = 0; f < fc; f++)
        lo[f] = hi[f] = _mm256_setzero_si256();
    for (int64_t k = 0; k < k4; k++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(x + koff[k]));
        __m256i xl = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(xv));
        __m256i xh = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(xv, 1));
        const int32_t *wk = w + k * fb;
#pragma GCC unroll 4
        for (int f = 0; f < fc; f++) {
            __m256i wv = _mm256_cvtepi8_epi16(_mm_set1_epi32(wk[f]));
            lo[f] = _mm256_add_epi32(lo[f], _mm256_madd_epi16(xl, wv));
            hi[f] = _mm256_add_epi32(hi[f], _mm256_madd_epi16(xh, wv));
        }
    }
#pragma GCC unroll 4
    for (int f = 0; f < fc; f++) {
        /* lo: outputs 0-3 as pairs of half sums, hi: 4-7; hadd gives 0 1 4 5 | 2 3 6 7 */
        __m256i r = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[f], hi[f]), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)s[f], r);
    }
}

#define DOT_FN(N)                                                                                           \
    static void dot8_##N(int64_t k4, const uint32_t *x, const int64_t *koff, const int32_t *w, int64_t fb, \
                         int32_t s[FC][8])                                                                   \
    {                                                                                                        \
        dot8(N, k4, x, koff, w, fb, s);                                                                      \
    }
DOT_FN(1)
DOT_FN(2)
DOT_FN(3)
DOT_FN(4)

static inline void nq_put(const nq_dst *d, size_t i, float v);

static void nq_tile_avx2(const nq_conv *p, const uint32_t *e, const int64_t *vb, const int64_t *to,
                         const int64_t *cnt, const int64_t *koff, const int32_t *w, int nf, const int32_t *comp,
                         const float *bq, const float *m, const nq_dst *d)
{
    static void (*const fns[FC + 1])(int64_t, const uint32_t *, const int64_t *, const int32_t *, int64_t,
                                     int32_t[FC][8]) = {NULL, dot8_1, dot8_2, dot8_3, dot8_4};
    for (int v = 0; v < NQ_MAX_NV; v++) {
        if (cnt[v] == 0)
            continue;
        for (int half = 0; half < 2; half++) {
            int64_t l0 = half * 8;
            if (l0 >= cnt[v])
                break;
            for (int f0 = 0; f0 < nf; f0 += FC) {
                int fc = nf - f0 < FC ? nf - f0 : FC;
                int32_t s[FC][8];
                fns[fc](p->k4, e + vb[v] + l0, koff, w + f0, p->fb, s);
                for (int f = 0; f < fc; f++) {
                    __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(const void *)s[f]),
                                                 _mm256_set1_epi32(comp[f0 + f]));
                    __m256 r = _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(bq[f0 + f])),
                                             _mm256_set1_ps(m[f0 + f]));
                    size_t at = d->base + (size_t)((f0 + f) * d->fs + to[v] + l0 * d->ls);
                    bool res = d->res && d->res->r;
                    if (d->dt == OP_DT_F32 && l0 + 8 <= cnt[v] && d->act != OP_ACT_LEAKY_RELU && d->ls == 1 &&
                        (!res || d->res->mode == NQ_R_F32)) {
                        if (res)
                            r = _mm256_add_ps(r, _mm256_loadu_ps((const float *)d->res->r + at));
                        if (d->act == OP_ACT_RELU)
                            r = _mm256_max_ps(r, _mm256_setzero_ps()); /* NaN, -0: +0 as x > 0 ? x : 0 */
                        _mm256_storeu_ps((float *)d->y + at, r);
                        continue;
                    }
                    float t[8];
                    _mm256_storeu_ps(t, r);
                    for (int64_t l = 0; l < 8 && l0 + l < cnt[v]; l++)
                        nq_put(d, at + (size_t)(l * d->ls), t[l]);
                }
            }
        }
    }
}

#define NQ_JOB op_native_convq_job_avx2
#define NQ_TILE nq_tile_avx2
#include "ops/native/conv_q_common.h"
