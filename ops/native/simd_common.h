/* The loops of op_native_simd (simd.h), written once as plain C with `omp simd` hints and
 * compiled per ISA level by simd_<isa>.c, which define SIMD_SFX (scalar, avx2, avx512) before
 * including this file; the compiler's vectoriser turns them into that level's vectors (masked
 * or scalar tails, strided pooling reads as permutes or gathers).  Each includer gets one
 * table, op_native_simd_<SIMD_SFX>.
 *
 * Rounding: these loops work in float (the reference kernels of ops/ref_*.c often in double),
 * and the levels contract a*b+c into FMAs where the ISA has them, so results may differ from
 * the reference and between levels in the last bits; the reductions (sums over a plane) run
 * in vector lanes, whose order is fixed by the level and the length, never by the threads. */
#ifndef SIMD_SFX
#error "define SIMD_SFX before including simd_common.h"
#endif

#include <math.h>
#include <string.h>

#include "ops/native/simd.h"

#define SIMD_CAT2(a, b) a##_##b
#define SIMD_CAT(a, b) SIMD_CAT2(a, b)
#define SX(name) SIMD_CAT(name, SIMD_SFX)
#define SIMD_STR2(x) #x
#define SIMD_STR(x) SIMD_STR2(x)

/* ---- batchnorm */

static void SX(bn_stats)(const float *restrict x, int64_t s, float *mean, float *m2)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < s; i++)
        sum += x[i];
    float mu = s > 0 ? sum / (float)s : 0.0f, sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < s; i++) {
        float d = x[i] - mu;
        sq += d * d;
    }
    *mean = mu;
    *m2 = sq;
}

static void SX(bn_apply)(const float *restrict x, float *restrict y, int64_t s, float mu,
                         float scale, float shift)
{
#pragma omp simd
    for (int64_t i = 0; i < s; i++)
        y[i] = (x[i] - mu) * scale + shift;
}

static void SX(bn_bwd_sums)(const float *restrict dy, const float *restrict x, int64_t s,
                            float mu, float *sdy, float *sdyx)
{
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t i = 0; i < s; i++) {
        a += dy[i];
        b += dy[i] * (x[i] - mu);
    }
    *sdy = a;
    *sdyx = b;
}

static void SX(bn_bwd_dx)(const float *dy, const float *restrict x, float *dx, int64_t s,
                          float mu, float k, float mdy, float scale)
{
#pragma omp simd
    for (int64_t i = 0; i < s; i++)
        dx[i] = (dy[i] - mdy - (x[i] - mu) * k) * scale;
}

/* ---- batchnorm, channels-last (see simd.h) */

/* The channels-last sums run over channels in chunks of BN_W (a vector of the widest level)
 * held in locals, each with four partial sums over the positions (position i into part i % 4,
 * the tail's into part 0; combined as (0 + 1) + (2 + 3)); channels past the last whole chunk
 * one sum each.  Summing into the output arrays instead made every position a load, an add and
 * a store of the same 64 bytes, a chain of about ten cycles. */
#define BN_W 16

static void SX(bn_stats_cl)(const float *restrict x, int64_t p, int64_t ch, int64_t stride,
                            float *restrict mean, float *restrict m2)
{
    float inv = p > 0 ? 1.0f / (float)p : 0.0f;
    int64_t k0 = 0;
    for (; k0 + BN_W <= ch; k0 += BN_W) {
        float a[4][BN_W], mu[BN_W];
        memset(a, 0, sizeof a);
        int64_t i = 0;
        for (; i + 4 <= p; i += 4)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const float *xr = x + (i + u) * stride + k0;
#pragma omp simd
                for (int kk = 0; kk < BN_W; kk++)
                    a[u][kk] += xr[kk];
            }
        for (; i < p; i++) {
            const float *xr = x + i * stride + k0;
#pragma omp simd
            for (int kk = 0; kk < BN_W; kk++)
                a[0][kk] += xr[kk];
        }
#pragma omp simd
        for (int kk = 0; kk < BN_W; kk++)
            mu[kk] = p > 0 ? ((a[0][kk] + a[1][kk]) + (a[2][kk] + a[3][kk])) * inv : 0.0f;
        memset(a, 0, sizeof a);
        for (i = 0; i + 4 <= p; i += 4)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const float *xr = x + (i + u) * stride + k0;
#pragma omp simd
                for (int kk = 0; kk < BN_W; kk++) {
                    float d = xr[kk] - mu[kk];
                    a[u][kk] += d * d;
                }
            }
        for (; i < p; i++) {
            const float *xr = x + i * stride + k0;
#pragma omp simd
            for (int kk = 0; kk < BN_W; kk++) {
                float d = xr[kk] - mu[kk];
                a[0][kk] += d * d;
            }
        }
#pragma omp simd
        for (int kk = 0; kk < BN_W; kk++) {
            mean[k0 + kk] = mu[kk];
            m2[k0 + kk] = (a[0][kk] + a[1][kk]) + (a[2][kk] + a[3][kk]);
        }
    }
    if (k0 == ch)
        return;
    for (int64_t k = k0; k < ch; k++)
        mean[k] = 0.0f, m2[k] = 0.0f;
    for (int64_t i = 0; i < p; i++) {
        const float *xr = x + i * stride;
#pragma omp simd
        for (int64_t k = k0; k < ch; k++)
            mean[k] += xr[k];
    }
    for (int64_t k = k0; k < ch; k++)
        mean[k] = p > 0 ? mean[k] * inv : 0.0f;
    for (int64_t i = 0; i < p; i++) {
        const float *xr = x + i * stride;
#pragma omp simd
        for (int64_t k = k0; k < ch; k++) {
            float d = xr[k] - mean[k];
            m2[k] += d * d;
        }
    }
}

static void SX(bn_apply_cl)(const float *restrict x, float *restrict y, int64_t p, int64_t ch,
                            int64_t stride, const float *restrict mu, const float *restrict scale,
                            const float *restrict shift)
{
    for (int64_t i = 0; i < p; i++) {
        const float *xr = x + i * stride;
        float *yr = y + i * stride;
#pragma omp simd
        for (int64_t k = 0; k < ch; k++)
            yr[k] = (xr[k] - mu[k]) * scale[k] + shift[k];
    }
}

static void SX(bn_bwd_sums_cl)(const float *restrict dy, const float *restrict x, int64_t p,
                               int64_t ch, int64_t stride, const float *restrict mu,
                               float *restrict sdy, float *restrict sdyx)
{
    int64_t k0 = 0;
    for (; k0 + BN_W <= ch; k0 += BN_W) {
        float a[4][BN_W], b[4][BN_W], m[BN_W];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
#pragma omp simd
        for (int kk = 0; kk < BN_W; kk++)
            m[kk] = mu[k0 + kk];
        int64_t i = 0;
        for (; i + 4 <= p; i += 4)
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const float *dr = dy + (i + u) * stride + k0, *xr = x + (i + u) * stride + k0;
#pragma omp simd
                for (int kk = 0; kk < BN_W; kk++) {
                    a[u][kk] += dr[kk];
                    b[u][kk] += dr[kk] * (xr[kk] - m[kk]);
                }
            }
        for (; i < p; i++) {
            const float *dr = dy + i * stride + k0, *xr = x + i * stride + k0;
#pragma omp simd
            for (int kk = 0; kk < BN_W; kk++) {
                a[0][kk] += dr[kk];
                b[0][kk] += dr[kk] * (xr[kk] - m[kk]);
            }
        }
#pragma omp simd
        for (int kk = 0; kk < BN_W; kk++) {
            sdy[k0 + kk] = (a[0][kk] + a[1][kk]) + (a[2][kk] + a[3][kk]);
            sdyx[k0 + kk] = (b[0][kk] + b[1][kk]) + (b[2][kk] + b[3][kk]);
        }
    }
    if (k0 == ch)
        return;
    for (int64_t k = k0; k < ch; k++)
        sdy[k] = 0.0f, sdyx[k] = 0.0f;
    for (int64_t i = 0; i < p; i++) {
        const float *dr = dy + i * stride, *xr = x + i * stride;
#pragma omp simd
        for (int64_t k = k0; k < ch; k++) {
            sdy[k] += dr[k];
            sdyx[k] += dr[k] * (xr[k] - mu[k]);
        }
    }
}

static void SX(bn_bwd_dx_cl)(const float *dy, const float *restrict x, float *dx, int64_t p,
                             int64_t ch, int64_t stride, const float *restrict mu,
                             const float *restrict k, const float *restrict mdy,
                             const float *restrict scale)
{
    for (int64_t i = 0; i < p; i++) {
        const float *dr = dy + i * stride, *xr = x + i * stride;
        float *o = dx + i * stride;
#pragma omp simd
        for (int64_t c = 0; c < ch; c++)
            o[c] = (dr[c] - mdy[c] - (xr[c] - mu[c]) * k[c]) * scale[c];
    }
}

/* ---- element-wise */

static void SX(act)(const float *x, float *y, int64_t n, op_act act, float alpha)
{
    switch (act) {
    case OP_ACT_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    case OP_ACT_LEAKY_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
        return;
    case OP_ACT_SIGMOID: /* libm's expf and tanhf, as the reference: the same bits */
        for (int64_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        return;
    case OP_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        return;
    case OP_ACT_NONE:
        break;
    }
    if (y != x)
        memmove(y, x, (size_t)n * sizeof(float));
}

static void SX(act_bwd)(const float *dy, const float *y, float *dx, int64_t n, op_act act,
                        float alpha)
{
    switch (act) {
    case OP_ACT_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        return;
    case OP_ACT_LEAKY_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
        return;
    case OP_ACT_SIGMOID:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        return;
    case OP_ACT_TANH:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        return;
    case OP_ACT_NONE:
        break;
    }
    if (dx != dy)
        memmove(dx, dy, (size_t)n * sizeof(float));
}

/* a + b rounds once in float: the same bits as the reference's sum in double, rounded */
static void SX(add2)(const float *a, const float *b, float *y, int64_t n, op_act act, float alpha)
{
    switch (act) {
    case OP_ACT_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = a[i] + b[i];
            y[i] = v > 0.0f ? v : 0.0f;
        }
        return;
    case OP_ACT_LEAKY_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float v = a[i] + b[i];
            y[i] = v > 0.0f ? v : alpha * v;
        }
        return;
    default:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] + b[i];
        if (act != OP_ACT_NONE)
            SX(act)(y, y, n, act, alpha);
        return;
    }
}

static void SX(mul)(const float *a, const float *b, float *y, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

static float SX(sum)(const float *restrict x, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

static float SX(sumsq)(const float *restrict x, int64_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}

static void SX(fill)(float *restrict y, int64_t n, float v)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        y[i] = v;
}

/* ---- pooling */

/* The output columns [*lo, *hi) whose windows lie inside the row (no padding read). */
static void SX(interior)(const op_native_pool *g, int64_t *lo, int64_t *hi)
{
    int64_t a = (g->pw + g->sw - 1) / g->sw;
    int64_t last = g->w - g->kw + g->pw;
    int64_t b = last < 0 ? 0 : last / g->sw + 1;
    if (b > g->ow)
        b = g->ow;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* Valid taps [*t0, *t1) of a window starting at `start` (= o*s - p) along an axis of n. */
static inline void SX(taps)(int64_t start, int64_t k, int64_t n, int64_t *t0, int64_t *t1)
{
    *t0 = start < 0 ? -start : 0;
    *t1 = start + k > n ? n - start : k;
}

/* Scalar window (an edge column): first maximum in scan order and its index, or the sum. */
static int64_t SX(window_max)(const op_native_pool *g, const float *x, int64_t oz, int64_t oy,
                              int64_t ox, float *best_v)
{
    int64_t t0, t1, i0, i1, j0, j1;
    int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph, sx = ox * g->sw - g->pw;
    SX(taps)(sz, g->kd, g->d, &t0, &t1);
    SX(taps)(sy, g->kh, g->h, &i0, &i1);
    SX(taps)(sx, g->kw, g->w, &j0, &j1);
    int64_t best = -1;
    float m = -INFINITY;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = j0; j < j1; j++) {
                int64_t k = ((sz + t) * g->h + sy + i) * g->w + sx + j;
                if (best < 0 || x[k] > m) {
                    m = x[k];
                    best = k;
                }
            }
    *best_v = m;
    return best;
}

static float SX(window_sum)(const op_native_pool *g, const float *x, int64_t oz, int64_t oy,
                            int64_t ox)
{
    int64_t t0, t1, i0, i1, j0, j1;
    int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph, sx = ox * g->sw - g->pw;
    SX(taps)(sz, g->kd, g->d, &t0, &t1);
    SX(taps)(sy, g->kh, g->h, &i0, &i1);
    SX(taps)(sx, g->kw, g->w, &j0, &j1);
    float s = 0.0f;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = j0; j < j1; j++)
                s += x[((sz + t) * g->h + sy + i) * g->w + sx + j];
    return s;
}

/* The offsets of a window's valid taps (depth and height clipped to [t0,t1) x [i0,i1), every
 * column) from its first column's position in row sy+i0 of slice sz+t0, in scan order.
 * Returns the count, or -1 when there are more than POOL_MAX_TAPS. */
#define POOL_MAX_TAPS 64

static int SX(tap_offsets)(const op_native_pool *g, int64_t t0, int64_t t1, int64_t i0,
                           int64_t i1, int64_t *off)
{
    int n = 0;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                if (n == POOL_MAX_TAPS)
                    return -1;
                off[n++] = ((t - t0) * g->h + (i - i0)) * g->w + j;
            }
    return n;
}

/* Max pooling of one volume.  Interior columns (windows inside the row): 2x2 windows at
 * stride 2 in one vector loop over the columns; other windows taps-outer, a strided vector
 * read per tap into the output row; both in scan order, so the first maximum wins as in the
 * reference.  Edge columns scalar. */
static void SX(maxpool)(const op_native_pool *g, const float *restrict x, float *restrict y)
{
    int64_t lo, hi;
    SX(interior)(g, &lo, &hi);
    const int64_t sw = g->sw, cnt = hi - lo;
    for (int64_t oz = 0; oz < g->od; oz++)
        for (int64_t oy = 0; oy < g->oh; oy++) {
            float *yr = y + (oz * g->oh + oy) * g->ow;
            for (int64_t ox = 0; ox < lo; ox++)
                SX(window_max)(g, x, oz, oy, ox, &yr[ox]);
            for (int64_t ox = hi > lo ? hi : lo; ox < g->ow; ox++)
                SX(window_max)(g, x, oz, oy, ox, &yr[ox]);
            if (cnt <= 0)
                continue;
            int64_t t0, t1, i0, i1;
            int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph;
            SX(taps)(sz, g->kd, g->d, &t0, &t1);
            SX(taps)(sy, g->kh, g->h, &i0, &i1);
            /* the first tap of column lo's window (never before the row: lo*sw >= pw) */
            const float *xw = x + ((sz + t0) * g->h + sy + i0) * g->w + (lo * sw - g->pw);
            float *yb = yr + lo;
            if (g->kw == 2 && sw == 2 && i1 - i0 == 2 && t1 - t0 == 1) {
                /* the common 2x2 window, stride 2 across: two rows, scan order */
                const float *r0 = xw, *r1 = xw + g->w;
#pragma omp simd
                for (int64_t q = 0; q < cnt; q++) {
                    float m = r0[2 * q], v = r0[2 * q + 1];
                    m = v > m ? v : m;
                    v = r1[2 * q];
                    m = v > m ? v : m;
                    v = r1[2 * q + 1];
                    yb[q] = v > m ? v : m;
                }
                continue;
            }
            bool first = true;
            for (int64_t t = t0; t < t1; t++)
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = 0; j < g->kw; j++) {
                        const float *xb = xw + ((t - t0) * g->h + (i - i0)) * g->w + j;
#pragma omp simd
                        for (int64_t q = 0; q < cnt; q++) {
                            float v = xb[q * sw];
                            yb[q] = first || v > yb[q] ? v : yb[q];
                        }
                        first = false;
                    }
        }
}

#define POOL_CHUNK 256
#ifndef SIMD_POOL2_LEN
#define SIMD_POOL2_LEN 4
#endif

/* Max-pool backward of one output row of 2x2 windows at stride 2 across (two input rows
 * r0 = x, r1 = x + w; dx likewise), every cell of the two rows written.  With relu (x being a
 * ReLU's output), the ReLU's backward too: the winner gets dy only where its x is above 0.
 * Four lanes: wider vectors spend more on the permutes of the compiler's stride-2 loads and
 * stores than they save, scalar code more on its selects (bench_native --mem); a level with
 * its own row kernel (SIMD_HAVE_POOL2_BWD_ROW: avx512's permutes by hand) defines it before
 * including this file. */
#ifndef SIMD_HAVE_POOL2_BWD_ROW
static void SX(maxpool2_bwd_row)(const float *restrict x, int64_t w, const float *restrict dy,
                                 float *restrict dx, int64_t cnt, bool relu)
{
    const float *r0 = x, *r1 = x + w;
    float *d0 = dx, *d1 = dx + w;
#pragma omp simd simdlen(SIMD_POOL2_LEN)
    for (int64_t q = 0; q < cnt; q++) {
        float a = r0[2 * q], b = r0[2 * q + 1], c = r1[2 * q], e = r1[2 * q + 1];
        /* the first maximum in scan order (a, b, c, e) gets dy, branch-free */
        bool wb = b > a;
        float m = wb ? b : a;
        bool wc = c > m;
        m = wc ? c : m;
        bool we = e > m;
        m = we ? e : m;
        float gq = relu && !(m > 0.0f) ? 0.0f : dy[q];
        float rest = we ? 0.0f : gq, rest2 = wc ? 0.0f : rest;
        d1[2 * q + 1] = we ? gq : 0.0f;
        d1[2 * q] = wc ? rest : 0.0f;
        d0[2 * q + 1] = wb ? rest2 : 0.0f;
        d0[2 * q] = wb ? 0.0f : rest2;
    }
}
#endif

/* Max-pool backward of one volume, then the backward of activation act (x its output).  2x2
 * windows at stride 2 that tile the volume: row by row (maxpool2_bwd_row, the ReLU's backward
 * in the same pass).  Otherwise dx zeroed, then each dy added at its window's first maximum:
 * interior columns of 2x2 windows at stride 2 in one pass (maxpool2_bwd_row); other windows
 * find the winning tap per column in one loop over the columns, then, when windows cannot
 * overlap (kernel <= stride on every axis), write each tap's cells in a strided store (dy
 * where the tap won, else 0), otherwise add dy at each winner one by one (overlapping windows
 * may share it); edge columns scalar; the activation's backward in a pass over the volume. */
static void SX(maxpool_bwd)(const op_native_pool *g, const float *restrict x,
                            const float *restrict dy, float *restrict dx, op_act act, float alpha)
{
    /* 2x2 windows at stride 2 that tile the whole volume: every cell written by the row
     * kernel, with the ReLU's backward (no zeroing first, no pass after) */
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
        g->kd == 1 && g->sd == 1 && g->pd == 0 && g->h == 2 * g->oh && g->w == 2 * g->ow &&
        g->d == g->od && (act == OP_ACT_NONE || act == OP_ACT_RELU)) {
        for (int64_t z = 0; z < g->od; z++)
            for (int64_t oy = 0; oy < g->oh; oy++) {
                int64_t at = (z * g->h + 2 * oy) * g->w;
                SX(maxpool2_bwd_row)(x + at, g->w, dy + (z * g->oh + oy) * g->ow, dx + at, g->ow,
                                     act == OP_ACT_RELU);
            }
        return;
    }
    memset(dx, 0, (size_t)(g->d * g->h * g->w) * sizeof(float));
    int64_t lo, hi;
    SX(interior)(g, &lo, &hi);
    const int64_t sw = g->sw;
    const bool disjoint = g->kd <= g->sd && g->kh <= g->sh && g->kw <= g->sw;
    int64_t off[POOL_MAX_TAPS];
    int32_t best[POOL_CHUNK];
    for (int64_t oz = 0; oz < g->od; oz++)
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const float *dyr = dy + (oz * g->oh + oy) * g->ow;
            for (int64_t ox = 0; ox < g->ow; ox++)
                if (ox < lo || ox >= hi) {
                    float v;
                    dx[SX(window_max)(g, x, oz, oy, ox, &v)] += dyr[ox];
                }
            if (lo >= hi)
                continue;
            int64_t t0, t1, i0, i1;
            int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph;
            SX(taps)(sz, g->kd, g->d, &t0, &t1);
            SX(taps)(sy, g->kh, g->h, &i0, &i1);
            int64_t wbase = ((sz + t0) * g->h + sy + i0) * g->w + lo * sw - g->pw;
            if (g->kw == 2 && sw == 2 && i1 - i0 == 2 && t1 - t0 == 1 && g->sh >= 2 &&
                g->sd >= g->kd) {
                /* the common 2x2 window, stride 2 (disjoint): the winner of each window gets
                 * dy, its other three cells 0, in one pass */
                SX(maxpool2_bwd_row)(x + wbase, g->w, dyr + lo, dx + wbase, hi - lo, false);
                continue;
            }
            int nt = SX(tap_offsets)(g, t0, t1, i0, i1, off);
            if (nt < 0) { /* a huge window: scalar */
                for (int64_t ox = lo; ox < hi; ox++) {
                    float v;
                    dx[SX(window_max)(g, x, oz, oy, ox, &v)] += dyr[ox];
                }
                continue;
            }
            for (int64_t c0 = 0; c0 < hi - lo; c0 += POOL_CHUNK) {
                int64_t cnt = hi - lo - c0 < POOL_CHUNK ? hi - lo - c0 : POOL_CHUNK;
                const float *xw = x + wbase + c0 * sw;
                float *dw = dx + wbase + c0 * sw;
                const float *db = dyr + lo + c0;
#pragma omp simd
                for (int64_t q = 0; q < cnt; q++) {
                    const float *xq = xw + q * sw;
                    float m = xq[0];
                    int32_t bt = 0;
                    for (int k = 1; k < nt; k++) {
                        float v = xq[off[k]];
                        bool gt = v > m;
                        m = gt ? v : m;
                        bt = gt ? k : bt;
                    }
                    best[q] = bt;
                }
                if (disjoint) {
                    for (int k = 0; k < nt; k++) {
                        float *dk = dw + off[k];
#pragma omp simd
                        for (int64_t q = 0; q < cnt; q++)
                            dk[q * sw] = best[q] == k ? db[q] : 0.0f;
                    }
                } else {
                    for (int64_t q = 0; q < cnt; q++)
                        dw[q * sw + off[best[q]]] += db[q];
                }
            }
        }
    if (act != OP_ACT_NONE) /* over the volume while in cache (x is the activation's output) */
        SX(act_bwd)(dx, x, dx, g->d * g->h * g->w, act, alpha);
}

static void SX(avgpool)(const op_native_pool *g, const float *restrict x, float *restrict y)
{
    int64_t lo, hi;
    SX(interior)(g, &lo, &hi);
    const int64_t sw = g->sw;
    const float area = (float)(g->kd * g->kh * g->kw);
    for (int64_t oz = 0; oz < g->od; oz++)
        for (int64_t oy = 0; oy < g->oh; oy++) {
            float *yr = y + (oz * g->oh + oy) * g->ow;
            for (int64_t ox = 0; ox < g->ow; ox++)
                if (ox < lo || ox >= hi)
                    yr[ox] = SX(window_sum)(g, x, oz, oy, ox);
            int64_t t0, t1, i0, i1;
            int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph;
            SX(taps)(sz, g->kd, g->d, &t0, &t1);
            SX(taps)(sy, g->kh, g->h, &i0, &i1);
            float *yb = yr + lo;
            int64_t cnt = hi - lo;
            if (cnt > 0) {
#pragma omp simd
                for (int64_t q = 0; q < cnt; q++)
                    yb[q] = 0.0f;
            }
            for (int64_t t = t0; t < t1 && cnt > 0; t++)
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = 0; j < g->kw; j++) {
                        const float *xb = x + ((sz + t) * g->h + sy + i) * g->w + j + lo * sw - g->pw;
#pragma omp simd
                        for (int64_t q = 0; q < cnt; q++)
                            yb[q] += xb[q * sw];
                    }
#pragma omp simd
            for (int64_t ox = 0; ox < g->ow; ox++)
                yr[ox] = yr[ox] / area;
        }
}

static void SX(avgpool_bwd)(const op_native_pool *g, const float *restrict dy,
                            float *restrict dx)
{
    memset(dx, 0, (size_t)(g->d * g->h * g->w) * sizeof(float));
    int64_t lo, hi;
    SX(interior)(g, &lo, &hi);
    const int64_t sw = g->sw;
    const float area = (float)(g->kd * g->kh * g->kw);
    for (int64_t oz = 0; oz < g->od; oz++)
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const float *dyr = dy + (oz * g->oh + oy) * g->ow;
            int64_t t0, t1, i0, i1;
            int64_t sz = oz * g->sd - g->pd, sy = oy * g->sh - g->ph;
            SX(taps)(sz, g->kd, g->d, &t0, &t1);
            SX(taps)(sy, g->kh, g->h, &i0, &i1);
            for (int64_t ox = 0; ox < g->ow; ox++) {
                if (ox >= lo && ox < hi)
                    continue;
                int64_t j0, j1, sx = ox * sw - g->pw;
                SX(taps)(sx, g->kw, g->w, &j0, &j1);
                float v = dyr[ox] / area;
                for (int64_t t = t0; t < t1; t++)
                    for (int64_t i = i0; i < i1; i++)
                        for (int64_t j = j0; j < j1; j++)
                            dx[((sz + t) * g->h + sy + i) * g->w + sx + j] += v;
            }
            int64_t cnt = hi - lo;
            const float *db = dyr + lo;
            for (int64_t t = t0; t < t1 && cnt > 0; t++)
                for (int64_t i = i0; i < i1; i++)
                    for (int64_t j = 0; j < g->kw; j++) {
                        float *xb = dx + ((sz + t) * g->h + sy + i) * g->w + j + lo * sw - g->pw;
                        /* one tap: distinct columns for distinct q (sw >= 1) */
#pragma omp simd
                        for (int64_t q = 0; q < cnt; q++)
                            xb[q * sw] += db[q] / area;
                    }
        }
}

/* ---- optimiser updates
 *
 * In blocks of UPD_BLOCK elements, each block's arrays written (the parameter, its moments)
 * prefetched for writing one block ahead.  A parameter that another core has read since its
 * last update (a training step's replicas all read the shared weights, runtime/replicas.c) is
 * in both cores' caches, and each store must first take its line from the other core; without
 * the prefetch those transfers go one at a time: an SGD update with momentum of 48,000
 * parameters took 137 us instead of 31 on this machine (32 with it).  On the x86 levels the
 * prefetch is PREFETCHW (-mprfchw); a plain prefetch did not help. */
#define UPD_BLOCK 256

static inline void SX(prefetch_w)(float *p, int64_t from, int64_t n)
{
    if (!p)
        return;
    int64_t end = from + UPD_BLOCK < n ? from + UPD_BLOCK : n;
    for (int64_t j = from; j < end; j += 16)
        __builtin_prefetch(p + j, 1, 3);
}

static void SX(sgd)(float *restrict p, const float *restrict grad, float *restrict v, int64_t n,
                    const op_native_sgd *k)
{
    const float lr = k->lr, mu = k->momentum, wd = k->wd, sc = k->scale;
    const bool vel = k->has_velocity, nest = k->nesterov;
    SX(prefetch_w)(p, 0, n);
    SX(prefetch_w)(v, 0, n); /* (NULL without velocity) */
    for (int64_t b = 0; b < n; b += UPD_BLOCK) {
        int64_t e = b + UPD_BLOCK < n ? b + UPD_BLOCK : n;
        SX(prefetch_w)(p, e, n);
        SX(prefetch_w)(v, e, n);
        if (!vel) {
#pragma omp simd
            for (int64_t i = b; i < e; i++)
                p[i] = p[i] - lr * (grad[i] * sc + wd * p[i]);
        } else if (!nest) {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                float g = grad[i] * sc + wd * p[i];
                float vi = mu * v[i] + g;
                v[i] = vi;
                p[i] = p[i] - lr * vi;
            }
        } else {
#pragma omp simd
            for (int64_t i = b; i < e; i++) {
                float g = grad[i] * sc + wd * p[i];
                float vi = mu * v[i] + g;
                v[i] = vi;
                p[i] = p[i] - lr * (g + mu * vi);
            }
        }
    }
}

static void SX(adam)(float *restrict p, const float *restrict grad, float *restrict m,
                     float *restrict v, int64_t n, const op_native_adam *k)
{
    const float decay = k->decay, l2 = k->l2, sc = k->scale, b1 = k->b1, a1 = k->a1;
    const float b2 = k->b2, a2 = k->a2, step = k->step, ibc2 = k->inv_bc2, eps = k->eps;
    SX(prefetch_w)(p, 0, n);
    SX(prefetch_w)(m, 0, n);
    SX(prefetch_w)(v, 0, n);
    for (int64_t b = 0; b < n; b += UPD_BLOCK) {
        int64_t e = b + UPD_BLOCK < n ? b + UPD_BLOCK : n;
        SX(prefetch_w)(p, e, n);
        SX(prefetch_w)(m, e, n);
        SX(prefetch_w)(v, e, n);
#pragma omp simd
        for (int64_t i = b; i < e; i++) {
            float pi = p[i] * decay;
            float g = grad[i] * sc + l2 * pi;
            float mi = b1 * m[i] + a1 * g;
            float vi = b2 * v[i] + a2 * (g * g);
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - step * mi / (sqrtf(vi * ibc2) + eps);
        }
    }
}

const op_native_simd SIMD_CAT(op_native_simd, SIMD_SFX) = {
    .name = SIMD_STR(SIMD_SFX),
    .bn_stats = SX(bn_stats),
    .bn_apply = SX(bn_apply),
    .bn_bwd_sums = SX(bn_bwd_sums),
    .bn_bwd_dx = SX(bn_bwd_dx),
    .bn_stats_cl = SX(bn_stats_cl),
    .bn_apply_cl = SX(bn_apply_cl),
    .bn_bwd_sums_cl = SX(bn_bwd_sums_cl),
    .bn_bwd_dx_cl = SX(bn_bwd_dx_cl),
    .act = SX(act),
    .act_bwd = SX(act_bwd),
    .add2 = SX(add2),
    .mul = SX(mul),
    .sum = SX(sum),
    .sumsq = SX(sumsq),
    .fill = SX(fill),
    .maxpool = SX(maxpool),
    .maxpool_bwd = SX(maxpool_bwd),
    .avgpool = SX(avgpool),
    .avgpool_bwd = SX(avgpool_bwd),
    .sgd = SX(sgd),
    .adam = SX(adam),
};
