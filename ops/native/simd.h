/* The inner loops of the native backend's memory-bound ops (batchnorm, pooling, element-wise
 * ops, losses, optimiser updates), one table per ISA level like op_native_isa: simd_<isa>.c
 * compile the loops of simd_common.h with their own -m flags (simd_scalar.c with the default
 * ones), and op_native_simd_table() returns the table of the active level.  The drivers
 * (native_norm.c, native_pool.c, native_eltwise.c, native_train.c) check calls, split the work
 * over threads and call these on whole rows, planes or chunks.  Internal to ops/native/.
 *
 * Every routine computes each output from its inputs in an order fixed by its arguments, so
 * the results do not depend on how the drivers split the work. */
#ifndef CNN_OPS_NATIVE_SIMD_H
#define CNN_OPS_NATIVE_SIMD_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"

/* One pooling volume: input d x h x w, window, stride, padding, output od x oh x ow (2-D pools
 * have d = od = kd = sd = 1, pd = 0; 1-D ones also h = oh = kh = sh = 1, ph = 0). */
typedef struct op_native_pool {
    int64_t d, h, w, kd, kh, kw, sd, sh, sw, pd, ph, pw, od, oh, ow;
} op_native_pool;

/* SGD and Adam constants in float (see native_train.c for how they come from the attributes). */
typedef struct op_native_sgd {
    float lr, momentum, wd, scale;
    bool has_velocity, nesterov;
} op_native_sgd;

typedef struct op_native_adam {
    float decay;      /* param *= decay first (AdamW: 1 - lr*wd; 1 otherwise) */
    float l2;         /* g += l2 * param (Adam's weight decay; 0 for AdamW) */
    float scale;      /* the clip scale (1 without clipping) */
    float b1, a1, b2, a2; /* a1 = 1 - b1, a2 = 1 - b2 */
    float step;       /* lr / (1 - b1^t) */
    float inv_bc2;    /* 1 / (1 - b2^t) */
    float eps;
} op_native_adam;

typedef struct op_native_simd {
    const char *name;
    /* ---- batchnorm, per plane of s values (one image, one channel) */
    /* *mean = the plane's mean, *m2 = sum of (x - mean)^2 (two passes over the plane) */
    void (*bn_stats)(const float *x, int64_t s, float *mean, float *m2);
    /* y = (x - mu) * scale + shift */
    void (*bn_apply)(const float *x, float *y, int64_t s, float mu, float scale, float shift);
    /* *sdy = sum dy, *sdyx = sum dy * (x - mu) */
    void (*bn_bwd_sums)(const float *dy, const float *x, int64_t s, float mu, float *sdy,
                        float *sdyx);
    /* dx = (dy - mdy - (x - mu) * k) * scale */
    void (*bn_bwd_dx)(const float *dy, const float *x, float *dx, int64_t s, float mu, float k,
                      float mdy, float scale);
    /* ---- batchnorm, channels-last: p positions of ch channels, `stride` floats apart (ch for
     * NHWC; 16 for a channel block of nChw16c), per-channel arrays of ch values */
    /* mean[k] = the positions' mean, m2[k] = sum of (x - mean)^2 (two passes over them) */
    void (*bn_stats_cl)(const float *x, int64_t p, int64_t ch, int64_t stride, float *mean,
                        float *m2);
    /* y = (x - mu[k]) * scale[k] + shift[k] */
    void (*bn_apply_cl)(const float *x, float *y, int64_t p, int64_t ch, int64_t stride,
                        const float *mu, const float *scale, const float *shift);
    /* sdy[k] = sum dy, sdyx[k] = sum dy * (x - mu[k]) */
    void (*bn_bwd_sums_cl)(const float *dy, const float *x, int64_t p, int64_t ch,
                           int64_t stride, const float *mu, float *sdy, float *sdyx);
    /* dx = (dy - mdy[k] - (x - mu[k]) * k[k]) * scale[k] (dx may be dy) */
    void (*bn_bwd_dx_cl)(const float *dy, const float *x, float *dx, int64_t p, int64_t ch,
                         int64_t stride, const float *mu, const float *k, const float *mdy,
                         const float *scale);
    /* ---- element-wise (y may be x; dx may be dy) */
    void (*act)(const float *x, float *y, int64_t n, op_act act, float alpha);
    void (*act_bwd)(const float *dy, const float *y, float *dx, int64_t n, op_act act,
                    float alpha);
    /* y = act(a + b) (y may be a or b) */
    void (*add2)(const float *a, const float *b, float *y, int64_t n, op_act act, float alpha);
    /* y = a * b */
    void (*mul)(const float *a, const float *b, float *y, int64_t n);
    float (*sum)(const float *x, int64_t n);
    float (*sumsq)(const float *x, int64_t n);
    void (*fill)(float *y, int64_t n, float v);
    /* ---- pooling, one (image, channel) volume */
    void (*maxpool)(const op_native_pool *g, const float *x, float *y);
    /* dx (zeroed here) gets each dy at the first maximum of its window, then the backward of
     * activation act (x being its output) */
    void (*maxpool_bwd)(const op_native_pool *g, const float *x, const float *dy, float *dx, op_act act,
                        float alpha);
    void (*avgpool)(const op_native_pool *g, const float *x, float *y);
    void (*avgpool_bwd)(const op_native_pool *g, const float *dy, float *dx);
    /* ---- optimiser updates of n elements in place */
    void (*sgd)(float *p, const float *grad, float *v, int64_t n, const op_native_sgd *k);
    void (*adam)(float *p, const float *grad, float *m, float *v, int64_t n,
                 const op_native_adam *k);
} op_native_simd;

extern const op_native_simd op_native_simd_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
extern const op_native_simd op_native_simd_avx2;
extern const op_native_simd op_native_simd_avx512;
#endif

/* The table of the active ISA level (native_kernels.c). */
const op_native_simd *op_native_simd_table(void);

#endif
