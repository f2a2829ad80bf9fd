/* The loops of batchnorm, pooling, element-wise ops and optimiser updates for the avx512 level,
 * compiled with -mavx512f -mavx512vl -mfma: simd_common.h vectorised for this ISA, with the
 * 2x2 max-pool backward's row written by hand. */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#define SIMD_HAVE_POOL2_BWD_ROW 1
#define SIMD_SFX avx512

/* maxpool2_bwd_row (simd_common.h) with 16 windows a step: each input row's 32 values
 * de-interleaved into its windows' left and right taps by two permutes, the four taps' first
 * maximum found with compares (ordered: a NaN never wins, as in the reference), and the four
 * gradient vectors interleaved back by two permutes per row; the last step masked. */
static void maxpool2_bwd_row_avx512(const float *restrict x, int64_t w, const float *restrict dy,
                                    float *restrict dx, int64_t cnt, bool relu)
{
    const float *r0 = x, *r1 = x + w;
    float *d0 = dx, *d1 = dx + w;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t q = 0; q < cnt; q += 16) {
        int64_t left = cnt - q;
        __mmask16 mq = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        /* the 2 left inputs of each window: the first 16 cells, then the next */
        int64_t l2 = 2 * left;
        __mmask16 ma = l2 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << l2) - 1u);
        __mmask16 mb = l2 >= 32 ? (__mmask16)0xFFFF : l2 > 16 ? (__mmask16)((1u << (l2 - 16)) - 1u) : 0;
        const float *p0 = r0 + 2 * q, *p1 = r1 + 2 * q;
        __m512 x0a = _mm512_maskz_loadu_ps(ma, p0), x0b = _mm512_maskz_loadu_ps(mb, p0 + 16);
        __m512 x1a = _mm512_maskz_loadu_ps(ma, p1), x1b = _mm512_maskz_loadu_ps(mb, p1 + 16);
        __m512 a = _mm512_permutex2var_ps(x0a, even, x0b), b = _mm512_permutex2var_ps(x0a, odd, x0b);
        __m512 c = _mm512_permutex2var_ps(x1a, even, x1b), e = _mm512_permutex2var_ps(x1a, odd, x1b);
        __mmask16 wb = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ);
        __m512 m = _mm512_mask_blend_ps(wb, a, b);
        __mmask16 wc = _mm512_cmp_ps_mask(c, m, _CMP_GT_OQ);
        m = _mm512_mask_blend_ps(wc, m, c);
        __mmask16 we = _mm512_cmp_ps_mask(e, m, _CMP_GT_OQ);
        m = _mm512_mask_blend_ps(we, m, e);
        __mmask16 keep = relu ? _mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ) : (__mmask16)0xFFFF;
        __m512 g = _mm512_maskz_loadu_ps(mq & keep, dy + q);
        /* the winner: e if we; else c if wc; else b if wb; else a */
        __mmask16 nwe = (__mmask16)~we, nwc = (__mmask16)~wc;
        __m512 ge = _mm512_maskz_mov_ps(we, g);
        __m512 gc = _mm512_maskz_mov_ps(nwe & wc, g);
        __m512 gb = _mm512_maskz_mov_ps(nwe & nwc & wb, g);
        __m512 ga = _mm512_maskz_mov_ps(nwe & nwc & (__mmask16)~wb, g);
        _mm512_mask_storeu_ps(d0, ma, _mm512_permutex2var_ps(ga, lo, gb));
        _mm512_mask_storeu_ps(d0 + 16, mb, _mm512_permutex2var_ps(ga, hi, gb));
        _mm512_mask_storeu_ps(d1, ma, _mm512_permutex2var_ps(gc, lo, ge));
        _mm512_mask_storeu_ps(d1 + 16, mb, _mm512_permutex2var_ps(gc, hi, ge));
        d0 += 32, d1 += 32;
    }
}

#include "ops/native/simd_common.h"
