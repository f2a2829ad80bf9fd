/* AVX-512 level of the native GEMM (compiled with -mavx512f -mavx512vl -mfma): an 8 x 48
 * micro-kernel (24 zmm accumulators, 3 loads and 8 broadcasts per k), and the portable packers
 * and epilogues of gemm_common.h vectorised for 512-bit registers.  On Zen 4 a zmm FMA is two
 * 256-bit halves, so the gain over AVX2 is the 32 registers (a bigger tile), not width. */
#include <immintrin.h>

#include "ops/native/gemm_common.h"

#define MR 8
#define NR 48

static void ukr_8x48(int64_t kc, const float *restrict a, const float *restrict b,
                     float *restrict c, int64_t ldc, int accumulate)
{
#define ROW_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = c##r##0, c##r##2 = c##r##0
    ROW_DECL(0); ROW_DECL(1); ROW_DECL(2); ROW_DECL(3);
    ROW_DECL(4); ROW_DECL(5); ROW_DECL(6); ROW_DECL(7);
#define ROW_FMA(r)                                          \
    do {                                                    \
        __m512 av = _mm512_set1_ps(a[r]);                   \
        c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);         \
        c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);         \
        c##r##2 = _mm512_fmadd_ps(av, b2, c##r##2);         \
    } while (0)
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32);
        ROW_FMA(0); ROW_FMA(1); ROW_FMA(2); ROW_FMA(3);
        ROW_FMA(4); ROW_FMA(5); ROW_FMA(6); ROW_FMA(7);
        a += MR;
        b += NR;
    }
#define ROW_STORE(r)                                                        \
    do {                                                                    \
        float *cr = c + (r) * ldc;                                          \
        if (accumulate) {                                                   \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(cr));          \
            c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(cr + 16));     \
            c##r##2 = _mm512_add_ps(c##r##2, _mm512_loadu_ps(cr + 32));     \
        }                                                                   \
        _mm512_storeu_ps(cr, c##r##0);                                      \
        _mm512_storeu_ps(cr + 16, c##r##1);                                 \
        _mm512_storeu_ps(cr + 32, c##r##2);                                 \
    } while (0)
    ROW_STORE(0); ROW_STORE(1); ROW_STORE(2); ROW_STORE(3);
    ROW_STORE(4); ROW_STORE(5); ROW_STORE(6); ROW_STORE(7);
#undef ROW_DECL
#undef ROW_FMA
#undef ROW_STORE
}

const op_native_isa op_native_isa_avx512 = {
    .name = "avx512",
    .mr = MR,
    .nr = NR,
    .ukr = ukr_8x48,
    .pack_t = gc_pack_t,
    .pack_n = gc_pack_n,
    .epilogue = gc_epilogue,
    .softmax = gc_softmax,
    .pack_seg = op_native_pack_seg_avx512,
    .conv_plane = op_native_conv_plane_avx512,
    .conv_plane_pad = op_native_conv_plane_pad_avx512,
    .conv_wgrad_pad = op_native_conv_wgrad_pad_avx512,
    .conv_cl_scatter = op_native_conv_cl_scatter_avx512,
    .conv_cl_wgrad_outer = op_native_conv_cl_wgrad_outer_avx512,
    .conv_wgrad = op_native_conv_wgrad_avx512,
    .conv_cl_row = op_native_conv_cl_row_avx512,
    .conv_cl_wgrad = op_native_conv_cl_wgrad_avx512,
    .conv_cl_wgrad3 = op_native_conv_cl_wgrad3_avx512,
    .conv_cl_dbias = op_native_conv_cl_dbias_avx512,
    .wino_tiles = op_native_wino_tiles_avx512,
    .wino_wgrad = op_native_wino_wgrad_avx512,
};
