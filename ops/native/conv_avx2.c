/* Convolution packers and the direct-plane convolution for the avx2 level, compiled with
 * -mavx2 -mfma: the loops of conv_common.h vectorised for this ISA, and an im2col packer that
 * copies each run with 8-lane moves (a run's tail loaded whole when that stays inside the
 * input, stored whole when the panel row has room: the next run, or the zero fill, overwrites
 * the excess). */
#include <immintrin.h>
#include <stdint.h>

#include "ops/native/native_isa.h"

#define CC_HAVE_PACK_SEG 1
#define CONV_SFX avx2
#include "ops/native/conv_common.h"

void op_native_pack_seg_avx2(const float *base, int64_t avail, const int64_t *koff,
                             int64_t kc, const op_native_seg *seg, int nseg, int64_t stride,
                             int64_t ncols, int width, float *dst)
{
    static const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
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
        int32_t full = len / 8 * 8, rem = len - full;
        __m256i m = _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
        bool whole = full + 8 <= room;
        /* the rows' offsets ascend: the last row decides whether whole loads stay inside */
        bool inside = kc > 0 && seg[s].src + koff[kc - 1] + full + 8 <= avail;
        for (int64_t kk = 0; kk < kc; kk++) {
            const float *sr = src + koff[kk];
            float *dr = d + kk * width;
            for (int32_t t = 0; t < full; t += 8)
                _mm256_storeu_ps(dr + t, _mm256_loadu_ps(sr + t));
            if (rem) {
                __m256 v = inside ? _mm256_loadu_ps(sr + full) : _mm256_maskload_ps(sr + full, m);
                if (whole)
                    _mm256_storeu_ps(dr + full, v);
                else
                    _mm256_maskstore_ps(dr + full, m, v);
            }
        }
    }
    if (ncols < width)
        for (int64_t kk = 0; kk < kc; kk++)
            cc_zero(dst + kk * width + ncols, width - ncols);
}
