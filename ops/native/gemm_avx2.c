/* AVX2 level of the native GEMM (compiled with -mavx2 -mfma): a 6 x 16 micro-kernel (12 ymm
 * accumulators, 2 loads and 6 broadcasts per k, all 16 registers in use), and the portable
 * packers and epilogues of gemm_common.h vectorised for 256-bit registers. */
#include <immintrin.h>

#include "ops/native/gemm_common.h"

#define MR 6
#define NR 16

static void ukr_6x16(int64_t kc, const float *restrict a, const float *restrict b,
                     float *restrict c, int64_t ldc, int accumulate)
{
#define ROW_DECL(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = c##r##0
    ROW_DECL(0); ROW_DECL(1); ROW_DECL(2); ROW_DECL(3); ROW_DECL(4); ROW_DECL(5);
#define ROW_FMA(r)                                          \
    do {                                                    \
        __m256 av = _mm256_broadcast_ss(a + (r));           \
        c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);         \
        c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);         \
    } while (0)
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROW_FMA(0); ROW_FMA(1); ROW_FMA(2); ROW_FMA(3); ROW_FMA(4); ROW_FMA(5);
        a += MR;
        b += NR;
    }
#define ROW_STORE(r)                                                        \
    do {                                                                    \
        float *cr = c + (r) * ldc;                                          \
        if (accumulate) {                                                   \
            c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(cr));          \
            c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(cr + 8));      \
        }                                                                   \
        _mm256_storeu_ps(cr, c##r##0);                                      \
        _mm256_storeu_ps(cr + 8, c##r##1);                                  \
    } while (0)
    ROW_STORE(0); ROW_STORE(1); ROW_STORE(2); ROW_STORE(3); ROW_STORE(4); ROW_STORE(5);
#undef ROW_DECL
#undef ROW_FMA
#undef ROW_STORE
}

const op_native_isa op_native_isa_avx2 = {
    .name = "avx2",
    .mr = MR,
    .nr = NR,
    .ukr = ukr_6x16,
    .pack_t = gc_pack_t,
    .pack_n = gc_pack_n,
    .epilogue = gc_epilogue,
    .softmax = gc_softmax,
    .pack_seg = op_native_pack_seg_avx2,
    .conv_plane = op_native_conv_plane_avx2,
    .conv_wgrad = op_native_conv_wgrad_avx2,
};
