/* Convolution packers and the direct-plane convolution for the avx512 level, compiled with
 * -mavx512f -mavx512vl -mfma: the loops of conv_common.h vectorised for this ISA, and an
 * im2col packer that copies each run with 16-lane moves.  A run's tail is loaded whole when
 * that stays inside the input (else masked) and stored whole when the panel row has room (the
 * next run, or the zero fill, overwrites the excess): masked moves are slow on Zen 4. */
#include <immintrin.h>
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
