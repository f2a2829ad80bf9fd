/* The portable half of each gemm_<isa>.c: operand packers, the fused epilogue (bias, residual,
 * activation), softmax and a branch-free exp, written as plain loops so that each including
 * file's flags (-mavx512f, -mavx2, none) vectorise them.  Included once per ISA translation
 * unit; everything here is static.  Internal to ops/native/. */
#ifndef CNN_OPS_NATIVE_GEMM_COMMON_H
#define CNN_OPS_NATIVE_GEMM_COMMON_H

#include <stdint.h>
#include <string.h>

#include "ops/native/native_isa.h"

/* The transposing pack, row by row, for whatever the vector blocks below leave. */
static void gc_pack_t_rows(const float *restrict src, int64_t ld, int64_t r0, int64_t r1,
                           int64_t kc, int width, float *restrict dst)
{
    int64_t k = 0;
    /* blocks of 8 k: each source row contributes 8 values */
    for (; k + 8 <= kc; k += 8) {
        float *d = dst + k * width;
        for (int64_t r = r0; r < r1; r++) {
            const float *s = src + r * ld + k;
            for (int kk = 0; kk < 8; kk++)
                d[kk * width + r] = s[kk];
        }
    }
    for (; k < kc; k++) {
        float *d = dst + k * width;
        for (int64_t r = r0; r < r1; r++)
            d[r] = src[r * ld + k];
    }
}

#ifdef __AVX2__
#include <immintrin.h>

/* Rows r0..r0+8 in 8 x 8 blocks transposed in ymm registers. */
static void gc_pack_t_block8(const float *restrict src, int64_t ld, int64_t r0, int64_t kc,
                             int width, float *restrict dst)
{
    const float *s = src + r0 * ld;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8], t[8], u[8];
        for (int i = 0; i < 8; i++)
            r[i] = _mm256_loadu_ps(s + i * ld + k);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        float *d = dst + k * width + r0;
        for (int i = 0; i < 4; i++) {
            _mm256_storeu_ps(d + i * width, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
            _mm256_storeu_ps(d + (i + 4) * width, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
        }
    }
    for (; k < kc; k++)
        for (int i = 0; i < 8; i++)
            dst[k * width + r0 + i] = s[i * ld + k];
}
#endif

/* dst[k*width + r] = src[r*ld + k]: blocks of 8 rows transposed in registers where the ISA
 * has them (8, not 16 with AVX-512: 16 rows a power-of-two stride apart share one L1 set and
 * evict each other), the rest row by row; rows..width zero. */
static void gc_pack_t(const float *restrict src, int64_t ld, int64_t rows, int64_t kc, int width,
                      float *restrict dst)
{
    int64_t r = 0;
#ifdef __AVX2__
    for (; r + 8 <= rows; r += 8)
        gc_pack_t_block8(src, ld, r, kc, width, dst);
#endif
    gc_pack_t_rows(src, ld, r, rows, kc, width, dst);
    if (rows < width)
        for (int64_t k = 0; k < kc; k++)
            for (int64_t q = rows; q < width; q++)
                dst[k * width + q] = 0.0f;
}

static void gc_pack_n(const float *restrict src, int64_t ld, int64_t cols, int64_t kc, int width,
                      float *restrict dst)
{
    for (int64_t k = 0; k < kc; k++) {
        float *d = dst + k * width;
        const float *s = src + k * ld;
        for (int64_t r = 0; r < cols; r++)
            d[r] = s[r];
        for (int64_t r = cols; r < width; r++)
            d[r] = 0.0f;
    }
}

/* e^x for x in float range: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact
 * product), e^r by its Taylor series to degree 7 (error below 1e-8 relative), 2^k built in the
 * exponent bits.  Inputs are clamped to [-88, 88]; below about -87.3 the result is 0. */
static inline float gc_exp(float x)
{
    x = x > 88.0f ? 88.0f : x;
    x = x < -88.0f ? -88.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440054690583e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) * (1 << 23);
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

static inline float gc_sigmoid(float x) { return 1.0f / (1.0f + gc_exp(-x)); }

/* tanh: odd Taylor polynomial to x^7 for |x| < 0.2 (error below 1e-8 relative), else
 * 1 - 2/(e^{2|x|} + 1) with the sign put back. */
static inline float gc_tanh(float x)
{
    float a = x < 0.0f ? -x : x;
    float z = x * x;
    float small = x + x * z * (-1.0f / 3.0f + z * (2.0f / 15.0f + z * (-17.0f / 315.0f)));
    float big = 1.0f - 2.0f / (gc_exp(2.0f * a) + 1.0f);
    big = x < 0.0f ? -big : big;
    return a < 0.2f ? small : big;
}

static void gc_epilogue(float *y, const float *c, int64_t n, float bias, const float *bias_vec,
                        const float *res, op_act act, float alpha)
{
    if (bias_vec && res) {
#pragma GCC ivdep
        for (int64_t j = 0; j < n; j++)
            y[j] = (c[j] + bias_vec[j]) + res[j];
    } else if (bias_vec) {
#pragma GCC ivdep
        for (int64_t j = 0; j < n; j++)
            y[j] = c[j] + bias_vec[j];
    } else if (res) {
#pragma GCC ivdep
        for (int64_t j = 0; j < n; j++)
            y[j] = (c[j] + bias) + res[j];
    } else {
#pragma GCC ivdep
        for (int64_t j = 0; j < n; j++)
            y[j] = c[j] + bias;
    }
    switch (act) {
    case OP_ACT_RELU:
        for (int64_t j = 0; j < n; j++)
            y[j] = y[j] > 0.0f ? y[j] : 0.0f;
        break;
    case OP_ACT_LEAKY_RELU:
        for (int64_t j = 0; j < n; j++)
            y[j] = y[j] > 0.0f ? y[j] : alpha * y[j];
        break;
    case OP_ACT_SIGMOID:
        for (int64_t j = 0; j < n; j++)
            y[j] = gc_sigmoid(y[j]);
        break;
    case OP_ACT_TANH:
        for (int64_t j = 0; j < n; j++)
            y[j] = gc_tanh(y[j]);
        break;
    case OP_ACT_NONE:
        break;
    }
}

#define GC_LANES 16

static void gc_softmax(float *y, int64_t n)
{
    if (n <= 0)
        return;
    float mx[GC_LANES], sm[GC_LANES];
    for (int l = 0; l < GC_LANES; l++)
        mx[l] = y[0];
    int64_t j = 0;
    for (; j + GC_LANES <= n; j += GC_LANES)
        for (int l = 0; l < GC_LANES; l++)
            mx[l] = y[j + l] > mx[l] ? y[j + l] : mx[l];
    float m = mx[0];
    for (int l = 1; l < GC_LANES; l++)
        m = mx[l] > m ? mx[l] : m;
    for (; j < n; j++)
        m = y[j] > m ? y[j] : m;
    for (j = 0; j < n; j++)
        y[j] = gc_exp(y[j] - m);
    for (int l = 0; l < GC_LANES; l++)
        sm[l] = 0.0f;
    for (j = 0; j + GC_LANES <= n; j += GC_LANES)
        for (int l = 0; l < GC_LANES; l++)
            sm[l] += y[j + l];
    double s = 0.0;
    for (int l = 0; l < GC_LANES; l++)
        s += sm[l];
    for (; j < n; j++)
        s += y[j];
    float inv = (float)(1.0 / s);
    for (j = 0; j < n; j++)
        y[j] *= inv;
}

#endif
