/* The arithmetic of low-precision inference, shared by every backend's conv_q and dense_q
 * kernels so that they agree exactly where the math is exact (ops/ref_int8.c is the reference).
 *
 * int8 (spec section 10: per-output-channel weight scales sw[o], a per-tensor input scale si):
 *   input      xq = sat(rne(x * (1/si)))            u8 [0, 255] or s8 [-128, 127]
 *   weights    wq = clamp(rne(w * (1/sw[o])), -127, 127)   (symmetric)
 *   accumulate acc = sum xq * wq                    exact, s32
 *   output     y = ((float)acc + bq[o]) * m[o]     m[o] = si * sw[o], bq[o] = b[o] / m[o]
 * then the fused epilogue in f32 (+ residual, activation, max pooling) as the fp32 layer.
 * Between two int8 nodes the tensor stays int8 (op_tensor.dtype): the producer, with an output
 * scale so, writes sat(rne(act(((float)acc + bq[o]) * (m[o] / so)))) (activation none, relu or
 * leaky_relu; a residual as below), max-pooled after; the consumer reads those bytes with si = so.
 * The residual of a conv_q (the fused add) is f32 or int8 (u8/s8 with its producer's output
 * scale sr, an input after the others); it joins as the term t of v = ((float)acc + bq[o]) * m[o]
 * + k * t, before the activation (op_q_res_term):
 *   f32 output:  t = r (f32 residual) or (float)rq * sr (int8), k = 1
 *   int8 output: t = sat(rne(r * (1/so))) as u8/s8 (f32 residual), k = 1; or t = rq, k = sr / so
 * (this is oneDNN's order: the residual put in the destination's type first, then the sum).
 * rne is round to nearest, ties to even; 1/si and 1/sw[o] are float reciprocals.
 *
 * bf16: inputs and weights rounded to bf16 (nearest even), products accumulated in f32 or
 * better, bias and epilogue in f32. */
#ifndef CNN_OPS_QUANT_H
#define CNN_OPS_QUANT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline float op_q_sat(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* An activation value quantised to u8 (unsigned) or s8, as an int. */
static inline int op_q_act(float x, float inv_scale, bool is_unsigned)
{
    float v = rintf(x * inv_scale);
    if (v != v)
        return 0;
    return (int)(is_unsigned ? op_q_sat(v, 0.0f, 255.0f) : op_q_sat(v, -128.0f, 127.0f));
}

/* Weights [f, per] quantised per output channel: q[o*per+k] = clamp(rne(w * (1/ws[o])), -127, 127). */
static inline void op_q_weights(const float *w, const float *ws, int64_t f, int64_t per, int8_t *q)
{
    for (int64_t o = 0; o < f; o++) {
        float inv = 1.0f / ws[o];
        for (int64_t k = 0; k < per; k++) {
            float v = rintf(w[o * per + k] * inv);
            q[o * per + k] = (int8_t)(v != v ? 0.0f : op_q_sat(v, -127.0f, 127.0f));
        }
    }
}

/* The output multipliers m[o] = si * ws[o] and the bias in accumulator units bq[o] = b[o] / m[o]
 * (0 without a bias); with an int8 output of scale so > 0, m[o] is then divided by so (the
 * output is sat(rne(act(((float)acc + bq[o]) * m[o])))). */
static inline void op_q_out_scales(const float *ws, float si, const float *b, int64_t f, float so, float *m,
                                   float *bq)
{
    for (int64_t o = 0; o < f; o++) {
        m[o] = si * ws[o];
        if (bq)
            bq[o] = b ? b[o] / m[o] : 0.0f;
        if (so > 0.0f)
            m[o] = m[o] / so;
    }
}

/* The residual's term t and its factor k (above) for one element: r is the f32 residual's value
 * or the int8 one's byte value (r_int8), so 0 for an f32 output. */
static inline float op_q_res_term(float r, bool r_int8, float sr, float so, bool res_unsigned, float *k)
{
    *k = 1.0f;
    if (so > 0.0f) {
        if (!r_int8)
            return (float)op_q_act(r, 1.0f / so, res_unsigned);
        *k = sr / so;
        return r;
    }
    return r_int8 ? r * sr : r;
}

/* An int8 output value: sat(rne(v)) as u8 or s8. */
static inline int op_q_out(float v, bool is_unsigned)
{
    return op_q_act(v, 1.0f, is_unsigned);
}

/* Whether the scales are usable: finite and positive (checked before any kernel runs; the
 * kernels check again and fail rather than divide by zero). */
static inline bool op_q_scales_ok(const float *s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(s[i] > 0.0f) || !isfinite(s[i]))
            return false;
    return true;
}

/* x rounded to the nearest bf16 (ties to even), as a float; NaN stays NaN. */
static inline float op_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) {
        if (u & 0x007fffffu)
            u |= 0x00400000u; /* quiet NaN */
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
    }
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

#endif
