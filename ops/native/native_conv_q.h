/* The native int8 convolution (conv_q in int8): the call as the per-ISA job routines see it,
 * shared by the driver (native_conv_q.c) and the job code (conv_q_common.h, compiled once per
 * level into conv_q_scalar.c, conv_q_avx2.c and conv_q_vnni.c).  Internal to ops/native/.
 *
 * The arithmetic is ops/quant.h's, exactly: the input is quantised (or taken as its bytes), the
 * weights quantised per output channel, the products summed in s32, then the reference's
 * epilogue ((float)acc + bq[o]) * m[o], + residual, activation, max pooling, f32 or u8/s8 store.
 *
 * A direct convolution built around the dot product of four u8 by four s8 (vpdpbusd): every
 * kernel row is cut into groups of four taps (the last one padded with zero weights), and each
 * input row of the image is expanded once into "tap words": word X of a row holds the four
 * input bytes the four taps of a group read for a window starting at padded column X (X, X +
 * dw, X + 2 dw, X + 3 dw).  Sixteen consecutive output columns then read sixteen consecutive
 * words of one row (for stride s the words are stored split by X mod s, so that they stay
 * consecutive), and one vpdpbusd adds four taps of one filter to sixteen outputs.  A tile is
 * FB filters by NV vectors of sixteen outputs (any rows), its reduction running over the
 * channels, kernel rows and tap groups (k4 words per filter).  s8 inputs are stored plus 128
 * (u8, the padding too) and each filter's sum gets -128 times its weights' sum, which gives the
 * signed products exactly.  Few input channels and small kernels (LeNet's and the CIFAR
 * networks' first layers) are what this is for: there the GEMM formulations spend their time
 * packing.  Any 1-D or 2-D shape runs here; 3-D convolutions and bf16 go to the reference.
 *
 * Activations may be plain or channels-last (each tensor as its layout says): a channels-last
 * input row is quantised once for all its channels and split by channel; a channels-last output
 * takes the tile's filters of each position together (a transpose in registers at the VNNI
 * level), so that a first layer writes what oneDNN's channels-last convolutions read.
 *
 * Work is split in jobs of (image, group, run of final output rows); a job quantises and
 * expands the input rows it needs, computes its convolution rows and finishes them (epilogue,
 * pooling, store).  Every output is computed the same way whatever the split, so results do
 * not depend on the thread count. */
#ifndef CNN_OPS_NATIVE_CONV_Q_H
#define CNN_OPS_NATIVE_CONV_Q_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/op.h"

#define NQ_MAX_FB 8   /* filters per tile, at most */
#define NQ_MAX_NV 4   /* vectors of 16 outputs per tile, at most */

/* The fused residual add (ops/quant.h): v += k * t, t by mode from the residual's element. */
typedef enum nq_rmode {
    NQ_R_F32,    /* f32 residual, f32 output: t = r, k = 1 */
    NQ_R_F32_Q,  /* f32 residual, int8 output: t = sat(rne(r * inv)) as u8/s8 (uns), k = 1 */
    NQ_R_I8_DQ,  /* u8/s8 residual (dt), f32 output: t = rq * sr, k = 1 */
    NQ_R_I8,     /* u8/s8 residual (dt), int8 output: t = rq, k = sr / so */
} nq_rmode;

typedef struct nq_res {
    const void *r;                                 /* [n, f, oh, ow], or NULL: no residual */
    nq_rmode mode;
    int dt;                                        /* the residual's dtype */
    bool uns;                                      /* NQ_R_F32_Q: quantised as u8 */
    bool cl;                                       /* channels-last (NHWC) */
    float k, sr, inv;
} nq_res;

typedef struct nq_conv {
    int64_t n, c, h, w, f, cpg, fpg;               /* input [n, c, h, w]; f filters in groups */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;  /* the convolution (1-D: h = kh = 1) */
    bool pool;                                     /* fused max pooling */
    int64_t psh, psw, pst_h, pst_w, pph, ppw;
    int64_t yh, yw;                                /* the output planes (pooled or not) */
    op_act act;
    float alpha;
    const void *x;                                 /* f32, or bytes when xdt is u8/s8 */
    int xdt;
    bool xcl, ycl;                                 /* x, y channels-last (NHWC; NWC) */
    bool is_unsigned;                              /* u8 input (xdt u8, or f32 quantised as u8) */
    float inv_si;                                  /* 1 / si (f32 input) */
    uint8_t padval;                                /* the stored zero: 0 (u8), 128 (s8) */
    void *y;                                       /* f32, or bytes when ydt is u8/s8 */
    int ydt;
    nq_res res;                                    /* the fused residual add (res.r NULL: none) */
    /* weights: per group, blocks of fb filters (fpgp = fpg rounded up to fb), each [k4][fb]
     * words of four s8 taps; k = (channel * kh + kernel row) * t + tap group */
    int64_t t, k4, fb, fpgp;
    const int32_t *wd;                             /* [groups][fpgp / fb][k4][fb] */
    const int32_t *comp;                           /* [groups * fpgp]: s8 compensation */
    const float *bq, *m;                           /* [groups * fpgp]: ops/quant.h's bq, m */
    /* the jobs' extent and the scratch they use */
    int64_t rows;                                  /* final output rows per job */
    int64_t crows, irows;                          /* at most: conv rows, padded input rows */
    int64_t owv, owp;                              /* vectors per output row, owv * 16 */
    int64_t wm, wq;                                /* tap words per phase row, bytes per row */
} nq_conv;

/* Where a tile puts its outputs: element to[v] + l (l < cnt[v]) of vector v of filter f of the
 * tile goes to element base + f * fs + to[v] + l * ls of y (f32, or u8/s8 as dt), after
 * ((float)(acc + comp) + bq) * m, the residual's term at the same element (res->r NULL: none),
 * activation act (none, relu or leaky_relu).  Either the output itself (no pooling), or the
 * job's f32 rows. */
typedef struct nq_dst {
    void *y;
    int dt;
    size_t base;
    int64_t fs, ls;                                /* filter and lane strides */
    const nq_res *res;                             /* (its elements are y's) */
    op_act act;
    float alpha;
} nq_dst;

/* Per-thread scratch of a job, in bytes (64-byte multiples). */
static inline size_t nq_part_q(const nq_conv *p)
{
    /* one input row quantised into phase rows, and a channels-last row of all channels */
    return (size_t)((p->sw * p->wq + p->w * p->c + 63) / 64 * 64);
}
static inline size_t nq_part_e(const nq_conv *p)
{
    return (size_t)((p->cpg * p->irows * p->sw * p->wm * 4 + 63) / 64 * 64);
}
static inline size_t nq_part_t(const nq_conv *p)
{
    return (size_t)(((p->fpgp * p->crows * p->owp + p->yw) * 4 + 63) / 64 * 64); /* + a pooled row */
}
static inline size_t nq_part_idx(const nq_conv *p)
{
    /* tap offsets [k4], then per vector its E base, output offset and count (+ NQ_MAX_NV) */
    return (size_t)(((p->k4 + 3 * (p->crows * p->owv + NQ_MAX_NV)) * 8 + 63) / 64 * 64);
}
static inline size_t nq_thread_bytes(const nq_conv *p)
{
    return nq_part_q(p) + nq_part_e(p) + nq_part_t(p) + nq_part_idx(p) + 64;
}

/* One job: image n, group grp, final output rows [y0, y1).  scratch: nq_thread_bytes(p),
 * 64-byte aligned. */
typedef void (*nq_job_fn)(const nq_conv *p, int64_t n, int64_t grp, int64_t y0, int64_t y1, void *scratch);

void op_native_convq_job_scalar(const nq_conv *p, int64_t n, int64_t grp, int64_t y0, int64_t y1, void *scratch);
#if defined(__x86_64__) && defined(__GNUC__)
void op_native_convq_job_avx2(const nq_conv *p, int64_t n, int64_t grp, int64_t y0, int64_t y1, void *scratch);
void op_native_convq_job_vnni(const nq_conv *p, int64_t n, int64_t grp, int64_t y0, int64_t y1, void *scratch);
#endif

#endif
