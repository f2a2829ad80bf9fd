/* The portable half of each conv_<isa>.c: im2col from the zero-padded input straight into
 * GEMM panels, and the direct convolution of one output plane (few filters per group), as
 * plain loops that the including file's flags vectorise.  The including file
 * defines CONV_SFX (scalar, avx2, avx512), which names the exported functions.  Internal to
 * ops/native/. */
#ifndef CNN_OPS_NATIVE_CONV_COMMON_H
#define CNN_OPS_NATIVE_CONV_COMMON_H

#include <stdint.h>
#include <string.h>

#include "ops/native/native_isa.h"

#define CC_CAT2(a, b) a##b
#define CC_CAT(a, b) CC_CAT2(a, b)
#define CC_NAME(base) CC_CAT(base, CONV_SFX)

/* The outputs o in [*lo, *hi) whose tap at offset off (tap index times dilation) reads inside
 * an input of size in: 0 <= o*s - p + off < in. */
static inline void cc_tap_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t off,
                                int64_t *lo, int64_t *hi)
{
    int64_t first = p - off, last = in - 1 + p - off;
    int64_t l = first <= 0 ? 0 : (first + s - 1) / s;
    int64_t h = last < 0 ? 0 : last / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

static inline void cc_zero(float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = 0.0f;
}

#ifndef CC_HAVE_PACK_SEG
void CC_NAME(op_native_pack_seg_)(const float *base, int64_t avail, const int64_t *koff,
                                  int64_t kc, const op_native_seg *seg, int nseg, int64_t stride,
                                  int64_t ncols, int width, float *dst)
{
    (void)avail;
    /* segment by segment, each over all the rows */
    for (int s = 0; s < nseg; s++) {
        const float *src = base + seg[s].src;
        float *d = dst + seg[s].dst;
        int32_t len = seg[s].len;
        for (int64_t kk = 0; kk < kc; kk++) {
            const float *sr = src + koff[kk];
            float *dr = d + kk * width;
            if (stride == 1) {
                for (int32_t t = 0; t < len; t++)
                    dr[t] = sr[t];
            } else {
                for (int32_t t = 0; t < len; t++)
                    dr[t] = sr[t * stride];
            }
        }
    }
    if (ncols < width)
        for (int64_t kk = 0; kk < kc; kk++)
            cc_zero(dst + kk * width + ncols, width - ncols);
}
#endif

void CC_NAME(op_native_conv_plane_)(const op_native_convg *g, const float *x, const float *w,
                                    float *acc)
{
    int64_t np = g->oh * g->ow, plane = g->h * g->w;
    cc_zero(acc, np);
    for (int64_t c = 0; c < g->c; c++) {
        const float *xc = x + c * plane;
        const float *wc = w + c * g->kh * g->kw;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t oh0, oh1;
            cc_tap_range(g->oh, g->h, g->sh, g->ph, i * g->dh, &oh0, &oh1);
            for (int64_t j = 0; j < g->kw; j++) {
                int64_t ow0, ow1, xoff = j * g->dw - g->pw;
                cc_tap_range(g->ow, g->w, g->sw, g->pw, j * g->dw, &ow0, &ow1);
                float wv = wc[i * g->kw + j];
                for (int64_t oy = oh0; oy < oh1; oy++) {
                    const float *xr = xc + (oy * g->sh - g->ph + i * g->dh) * g->w;
                    float *ar = acc + oy * g->ow;
                    if (g->sw == 1) {
                        const float *xs = xr + (ow0 + xoff);
                        float *as = ar + ow0;
                        for (int64_t t = 0; t < ow1 - ow0; t++)
                            as[t] += xs[t] * wv;
                    } else {
                        for (int64_t ox = ow0; ox < ow1; ox++)
                            ar[ox] += xr[ox * g->sw + xoff] * wv;
                    }
                }
            }
        }
    }
}

#define CC_LANES 16

void CC_NAME(op_native_conv_wgrad_)(const op_native_convg *g, const float *x, const float *dy,
                                    double *acc)
{
    for (int64_t i = 0; i < g->kh; i++) {
        int64_t oh0, oh1;
        cc_tap_range(g->oh, g->h, g->sh, g->ph, i * g->dh, &oh0, &oh1);
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t ow0, ow1, xoff = j * g->dw - g->pw;
            cc_tap_range(g->ow, g->w, g->sw, g->pw, j * g->dw, &ow0, &ow1);
            int64_t n = ow1 - ow0;
            /* the image's products summed in CC_LANES float lanes, then in double */
            float part[CC_LANES];
            for (int l = 0; l < CC_LANES; l++)
                part[l] = 0.0f;
            for (int64_t oy = oh0; oy < oh1; oy++) {
                const float *xr = x + (oy * g->sh - g->ph + i * g->dh) * g->w + (ow0 * g->sw + xoff);
                const float *dr = dy + oy * g->ow + ow0;
                int64_t t = 0;
                if (g->sw == 1) {
                    for (; t + CC_LANES <= n; t += CC_LANES)
                        for (int l = 0; l < CC_LANES; l++)
                            part[l] += dr[t + l] * xr[t + l];
                }
                /* the rest (all of it when strided) through zero-padded lane buffers */
                for (; t < n; t += CC_LANES) {
                    float bx[CC_LANES], bd[CC_LANES];
                    int64_t m = n - t < CC_LANES ? n - t : CC_LANES;
                    for (int l = 0; l < CC_LANES; l++) {
                        bx[l] = l < m ? xr[(t + l) * g->sw] : 0.0f;
                        bd[l] = l < m ? dr[t + l] : 0.0f;
                    }
                    for (int l = 0; l < CC_LANES; l++)
                        part[l] += bd[l] * bx[l];
                }
            }
            double sum = 0.0;
            for (int l = 0; l < CC_LANES; l++)
                sum += part[l];
            acc[i * g->kw + j] += sum;
        }
    }
}

#endif
