/* Scalar level of the native GEMM (default flags: what every target has): a 4 x 8
 * micro-kernel in plain C (the compiler may still use SSE2), and the portable packers and
 * epilogues of gemm_common.h.  The fallback on CPUs without AVX2/FMA, and with CNN_ISA=scalar
 * the baseline the SIMD levels are tested against. */
#include "ops/native/gemm_common.h"

#define MR 4
#define NR 8

static void ukr_4x8(int64_t kc, const float *restrict a, const float *restrict b,
                    float *restrict c, int64_t ldc, int accumulate)
{
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int q = 0; q < NR; q++)
            acc[r][q] = 0.0f;
    for (int64_t k = 0; k < kc; k++) {
        for (int r = 0; r < MR; r++)
            for (int q = 0; q < NR; q++)
                acc[r][q] += a[r] * b[q];
        a += MR;
        b += NR;
    }
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        for (int q = 0; q < NR; q++)
            cr[q] = accumulate ? cr[q] + acc[r][q] : acc[r][q];
    }
}

const op_native_isa op_native_isa_scalar = {
    .name = "scalar",
    .mr = MR,
    .nr = NR,
    .ukr = ukr_4x8,
    .pack_t = gc_pack_t,
    .pack_n = gc_pack_n,
    .epilogue = gc_epilogue,
    .softmax = gc_softmax,
    .pack_seg = op_native_pack_seg_scalar,
    .conv_plane = op_native_conv_plane_scalar,
    .conv_wgrad = op_native_conv_wgrad_scalar,
};
