/* Reference convolution: forward (1-D, 2-D and 3-D, stride, padding, dilation, groups, and the
 * fused epilogue bias -> + residual -> activation -> max pooling; the fused pooling is 2-D and
 * 1-D only), backward to the data and to the weights and bias.  Cross-correlation as in
 * PyTorch.  Every convolution runs as a 3-D one: 2-D tensors [N,C,H,W] are read as
 * [N,C,1,H,W] and 1-D ones [N,C,W] as [N,C,1,1,W]; the attributes then hold the trivial height
 * at index 0 and the depth geometry is 1, 1, 0, 1 (op_conv_geom_make3).  Sums are in double; each
 * output element is computed by one thread in a fixed order, so results do not depend on the
 * thread count. */
#include <stdlib.h>

#include "ops/conv_geom.h"
#include "ops/mem.h"
#include "ops/ref_common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Everything the loops need, in the 4-D view. */

/* Checks a [f] bias vector. */
static int check_bias(const op_tensor *b, int64_t f, const char *name, const char *what,
                      char *err, size_t errlen)
{
    if (op_tensor_numel(b) != f || b->rank != 1)
        return ref_fail(err, errlen, "%s: %s has %lld elements, expected [%lld]", name, what,
                        (long long)op_tensor_numel(b), (long long)f);
    return 0;
}

/* The outputs o in [*lo, *hi) of a sweep with stride s and padding p whose tap at offset off
 * (tap index times dilation) lands inside an input of size in: 0 <= o*s - p + off < in. */
static void tap_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t off, int64_t *lo,
                      int64_t *hi)
{
    int64_t first = p - off;          /* o*s >= first */
    int64_t last = in - 1 + p - off;  /* o*s <= last */
    int64_t l = first <= 0 ? 0 : (first + s - 1) / s;
    int64_t h = last < 0 ? 0 : last / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* The raw convolution of filter f over batch item n into acc (od*oh*ow doubles).  Every
 * element sums its terms in the same order: input channel, tap slice, tap row, tap column. */
static void conv_plane(const op_conv_geom *g, const float *x, const float *w, int64_t n, int64_t f,
                       double *acc)
{
    int64_t grp = f / g->fpg, hw = g->h * g->w, ohw = g->oh * g->ow;
    for (int64_t k = 0; k < g->od * ohw; k++)
        acc[k] = 0.0;
    for (int64_t cl = 0; cl < g->cpg; cl++) {
        const float *xc = x + (n * g->c + grp * g->cpg + cl) * g->d * hw;
        const float *wc = w + (f * g->cpg + cl) * g->kd * g->kh * g->kw;
        for (int64_t t = 0; t < g->kd; t++) {
            int64_t od0, od1;
            tap_range(g->od, g->d, g->sd, g->pd, t * g->dd, &od0, &od1);
            for (int64_t i = 0; i < g->kh; i++) {
                int64_t oh0, oh1;
                tap_range(g->oh, g->h, g->sh, g->ph, i * g->dh, &oh0, &oh1);
                for (int64_t j = 0; j < g->kw; j++) {
                    int64_t ow0, ow1, col = j * g->dw - g->pw;
                    tap_range(g->ow, g->w, g->sw, g->pw, j * g->dw, &ow0, &ow1);
                    double wv = wc[(t * g->kh + i) * g->kw + j];
                    for (int64_t od = od0; od < od1; od++) {
                        const float *xs = xc + (od * g->sd - g->pd + t * g->dd) * hw;
                        double *as = acc + od * ohw;
                        for (int64_t oh = oh0; oh < oh1; oh++) {
                            const float *xr = xs + (oh * g->sh - g->ph + i * g->dh) * g->w;
                            double *ar = as + oh * g->ow;
                            for (int64_t ow = ow0; ow < ow1; ow++)
                                ar[ow] += (double)xr[ow * g->sw + col] * wv;
                        }
                    }
                }
            }
        }
    }
}

/* Output size of a floor-mode pooling window sweep. */
static int64_t pool_out(int64_t in, int64_t size, int64_t stride, int64_t pad)
{
    return (in + 2 * pad - size) / stride + 1;
}

/* The fused max pooling of a convolution's epilogue: window, stride, padding per [h, w], and
 * the pooled output size. */
typedef struct fused_pool {
    int64_t sh, sw, st_h, st_w, ph, pw;
    int64_t yh, yw;
} fused_pool;

/* Reads and checks a's fused pooling against the convolution output g.oh x g.ow; without one,
 * a 1x1 window that keeps the output. */
static int fused_pool_make(const op_conv_attrs *a, const op_conv_geom *g, const char *name, fused_pool *p,
                           char *err, size_t errlen)
{
    *p = (fused_pool){1, 1, 1, 1, 0, 0, g->oh, g->ow};
    if (!a->pool)
        return 0;
    if (a->sdims == 3)
        return ref_fail(err, errlen, "%s: fused pooling is for 1-D and 2-D convolutions only", name);
    p->sh = a->pool_size[0];
    p->sw = a->pool_size[1];
    p->st_h = a->pool_stride[0];
    p->st_w = a->pool_stride[1];
    p->ph = a->pool_pad[0];
    p->pw = a->pool_pad[1];
    if (a->sdims == 1 && (p->sh != 1 || p->st_h != 1 || p->ph != 0))
        return ref_fail(err, errlen, "%s: fused 1-D pooling needs size 1, stride 1, pad 0 at index 0", name);
    if (p->sh < 1 || p->sw < 1 || p->st_h < 1 || p->st_w < 1 || p->ph < 0 || p->pw < 0 || p->ph >= p->sh ||
        p->pw >= p->sw)
        return ref_fail(err, errlen, "%s: bad fused pooling size %lldx%lld stride %lldx%lld pad %lldx%lld", name,
                        (long long)p->sh, (long long)p->sw, (long long)p->st_h, (long long)p->st_w,
                        (long long)p->ph, (long long)p->pw);
    if (g->oh + 2 * p->ph < p->sh || g->ow + 2 * p->pw < p->sw)
        return ref_fail(err, errlen, "%s: fused pooling window larger than the %lldx%lld convolution output",
                        name, (long long)g->oh, (long long)g->ow);
    p->yh = pool_out(g->oh, p->sh, p->st_h, p->ph);
    p->yw = pool_out(g->ow, p->sw, p->st_w, p->pw);
    return 0;
}

/* Max pooling of one activated oh x ow plane into yp; padding is never chosen. */
static void pool_plane(const fused_pool *p, const float *actp, int64_t oh, int64_t ow, float *yp)
{
    for (int64_t oy = 0; oy < p->yh; oy++) {
        for (int64_t ox = 0; ox < p->yw; ox++) {
            float m = -INFINITY;
            for (int64_t i = 0; i < p->sh; i++) {
                int64_t ch = oy * p->st_h - p->ph + i;
                if (ch < 0 || ch >= oh)
                    continue;
                for (int64_t j = 0; j < p->sw; j++) {
                    int64_t cw = ox * p->st_w - p->pw + j;
                    if (cw >= 0 && cw < ow && actp[ch * ow + cw] > m)
                        m = actp[ch * ow + cw];
                }
            }
            yp[oy * p->yw + ox] = m;
        }
    }
}

OP_REF_KERNEL(op_ref_conv)
{
    const char *name = "conv";
    if (ref_check_call(c, name, 2, 4, 1, 2, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = 2 + (a->bias ? 1 : 0) + (a->residual ? 1 : 0);
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: expected %d inputs (bias %s, residual %s), got %d",
                        name, want, a->bias ? "on" : "off", a->residual ? "on" : "off", c->nin);
    bool keep = a->pool && a->pool_keep;
    if (c->nout != (keep ? 2 : 1))
        return ref_fail(err, errlen, "%s: expected %d outputs, got %d", name, keep ? 2 : 1, c->nout);
    op_conv_geom g;
    if (op_conv_geom_make3(a, &c->in[0], &c->in[1], name, &g, err, errlen))
        return -1;
    fused_pool pool;
    if (fused_pool_make(a, &g, name, &pool, err, errlen))
        return -1;
    const float *x = c->in[0].data, *w = c->in[1].data, *b = NULL, *r = NULL;
    int k = 2;
    if (a->bias) {
        if (check_bias(&c->in[k], g.f, name, "bias", err, errlen))
            return -1;
        b = c->in[k++].data;
    }
    if (a->residual) {
        if (op_conv_check_act3(&c->in[k], a->sdims, g.n, g.f, g.od, g.oh, g.ow, name, "residual",
                               err, errlen))
            return -1;
        r = c->in[k++].data;
    }
    if (keep && op_conv_check_act3(&c->out[0], a->sdims, g.n, g.f, g.od, g.oh, g.ow, name, "output", err, errlen))
        return -1;
    if (op_conv_check_act3(&c->out[keep ? 1 : 0], a->sdims, g.n, g.f, g.od, pool.yh, pool.yw, name,
                           keep ? "pooled output" : "output", err, errlen))
        return -1;
    /* y: the pooled values (or the activated output without a pool); kept: the activated output */
    float *y = c->out[keep ? 1 : 0].data, *kept = keep ? c->out[0].data : NULL;

    int nt = ref_threads(c);
    int64_t ovol = g.od * g.oh * g.ow, yvol = g.od * pool.yh * pool.yw; /* od is 1 when pooling */
    size_t plane = (size_t)ovol > 0 ? (size_t)ovol : 1;
    double *acc = cnn_mem_malloc((size_t)nt * plane * sizeof(double));
    float *act = a->pool && !keep ? cnn_mem_malloc((size_t)nt * plane * sizeof(float)) : NULL;
    if (!acc || (a->pool && !keep && !act)) {
        cnn_mem_free(acc);
        cnn_mem_free(act);
        return ref_fail(err, errlen, "%s: out of memory", name);
    }

    /* y is (N, F, (od,) yh, yw); each (n, f) volume is written by one thread */
#pragma omp parallel num_threads(nt)
    {
        double *accp = acc + (size_t)thread_index() * plane;
        float *actp = act ? act + (size_t)thread_index() * plane : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < g.n; n++) {
            for (int64_t f = 0; f < g.f; f++) {
                conv_plane(&g, x, w, n, f, accp);
                /* epilogue: act((float)(sum + b) + r), rounded as the unfused sequence
                 * conv(+bias) -> add -> activation rounds */
                float *yp = y + (n * g.f + f) * yvol;
                float *vp = kept ? kept + (n * g.f + f) * ovol : actp ? actp : yp;
                const float *rp = r ? r + (n * g.f + f) * ovol : NULL;
                for (int64_t e = 0; e < ovol; e++) {
                    double sum = accp[e];
                    if (b)
                        sum += (double)b[f];
                    float v = (float)sum;
                    if (rp)
                        v += rp[e];
                    vp[e] = op_apply_act(a->act, a->alpha, v);
                }
                if (a->pool)
                    pool_plane(&pool, vp, g.oh, g.ow, yp);
            }
        }
    }
    cnn_mem_free(acc);
    cnn_mem_free(act);
    return 0;
}

/* dx[n,c,ih,iw] = sum over the filters f of c's group, taps (i,j) and outputs (oh,ow) with
 * oh*sh - ph + i*dh = ih and ow*sw - pw + j*dw = iw of dy[n,f,oh,ow] * w[f,c-group*cpg,i,j]:
 * the forward's loops run backwards, scattering into a per-thread double plane. */
OP_REF_KERNEL(op_ref_conv_bwd_data)
{
    const char *name = "conv_bwd_data";
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    op_conv_geom g;
    if (op_conv_geom_make3(a, &c->out[0], &c->in[1], name, &g, err, errlen))
        return -1;
    if (op_conv_check_act3(&c->in[0], a->sdims, g.n, g.f, g.od, g.oh, g.ow, name, "dy", err,
                           errlen))
        return -1;
    const float *dy = c->in[0].data, *w = c->in[1].data;
    float *dx = c->out[0].data;
    int nt = ref_threads(c);
    int64_t hw = g.h * g.w, ohw = g.oh * g.ow;
    size_t plane = (size_t)(g.d * hw);
    double *acc = cnn_mem_malloc((size_t)nt * (plane > 0 ? plane : 1) * sizeof(double));
    if (!acc)
        return ref_fail(err, errlen, "%s: out of memory", name);

    /* dx is (N, C, (D,) H, W); each (n, c) volume is written by one thread */
#pragma omp parallel num_threads(nt)
    {
        double *dxd = acc + (size_t)thread_index() * plane;
#pragma omp for collapse(2) schedule(static)
        for (int64_t n = 0; n < g.n; n++) {
            for (int64_t ch = 0; ch < g.c; ch++) {
                int64_t grp = ch / g.cpg, cl = ch % g.cpg;
                for (size_t k = 0; k < plane; k++)
                    dxd[k] = 0.0;
                for (int64_t f = grp * g.fpg; f < (grp + 1) * g.fpg; f++) {
                    const float *dyp = dy + (n * g.f + f) * g.od * ohw;
                    const float *wp = w + (f * g.cpg + cl) * g.kd * g.kh * g.kw;
                    for (int64_t t = 0; t < g.kd; t++) {
                        int64_t od0, od1;
                        tap_range(g.od, g.d, g.sd, g.pd, t * g.dd, &od0, &od1);
                        for (int64_t i = 0; i < g.kh; i++) {
                            int64_t oh0, oh1;
                            tap_range(g.oh, g.h, g.sh, g.ph, i * g.dh, &oh0, &oh1);
                            for (int64_t j = 0; j < g.kw; j++) {
                                int64_t ow0, ow1, col = j * g.dw - g.pw;
                                tap_range(g.ow, g.w, g.sw, g.pw, j * g.dw, &ow0, &ow1);
                                double wv = wp[(t * g.kh + i) * g.kw + j];
                                for (int64_t od = od0; od < od1; od++) {
                                    double *ds = dxd + (od * g.sd - g.pd + t * g.dd) * hw;
                                    const float *dys = dyp + od * ohw;
                                    for (int64_t oh = oh0; oh < oh1; oh++) {
                                        double *dr = ds + (oh * g.sh - g.ph + i * g.dh) * g.w;
                                        const float *dyr = dys + oh * g.ow;
                                        for (int64_t ow = ow0; ow < ow1; ow++)
                                            dr[ow * g.sw + col] += (double)dyr[ow] * wv;
                                    }
                                }
                            }
                        }
                    }
                }
                float *dxp = dx + (n * g.c + ch) * (int64_t)plane;
                for (size_t k = 0; k < plane; k++)
                    dxp[k] = (float)dxd[k];
            }
        }
    }
    cnn_mem_free(acc);
    return 0;
}

/* dw[f,cl,i,j] = sum over n, oh, ow of dy[n,f,oh,ow] * x[n, group*cpg+cl, ih, iw];
 * db[f] = sum over n, oh, ow of dy[n,f,oh,ow].  Parallel over filters: no two threads write
 * the same gradient element. */
OP_REF_KERNEL(op_ref_conv_bwd_weights)
{
    const char *name = "conv_bwd_weights";
    if (ref_check_call(c, name, 2, 2, 1, 2, err, errlen))
        return -1;
    const op_conv_attrs *a = &c->node->attrs.conv;
    int want = a->bias ? 2 : 1;
    if (c->nout != want)
        return ref_fail(err, errlen, "%s: expected %d outputs (bias %s), got %d", name, want,
                        a->bias ? "on" : "off", c->nout);
    op_conv_geom g;
    if (op_conv_geom_make3(a, &c->in[1], &c->out[0], name, &g, err, errlen))
        return -1;
    if (op_conv_check_act3(&c->in[0], a->sdims, g.n, g.f, g.od, g.oh, g.ow, name, "dy", err,
                           errlen))
        return -1;
    if (a->bias && check_bias(&c->out[1], g.f, name, "bias gradient", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *x = c->in[1].data;
    float *dw = c->out[0].data, *db = a->bias ? c->out[1].data : NULL;
    int nt = ref_threads(c);

    int64_t hw = g.h * g.w, ohw = g.oh * g.ow;

    /* dw is (F, C/g, (kd,) kh, kw) */
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
    for (int64_t f = 0; f < g.f; f++) {
        for (int64_t cl = 0; cl < g.cpg; cl++) {
            int64_t ch = (f / g.fpg) * g.cpg + cl;
            for (int64_t t = 0; t < g.kd; t++) {
                int64_t od0, od1;
                tap_range(g.od, g.d, g.sd, g.pd, t * g.dd, &od0, &od1);
                for (int64_t i = 0; i < g.kh; i++) {
                    int64_t oh0, oh1;
                    tap_range(g.oh, g.h, g.sh, g.ph, i * g.dh, &oh0, &oh1);
                    for (int64_t j = 0; j < g.kw; j++) {
                        int64_t ow0, ow1, col = j * g.dw - g.pw;
                        tap_range(g.ow, g.w, g.sw, g.pw, j * g.dw, &ow0, &ow1);
                        double acc = 0.0;
                        for (int64_t n = 0; n < g.n; n++) {
                            const float *dyp = dy + (n * g.f + f) * g.od * ohw;
                            const float *xp = x + (n * g.c + ch) * g.d * hw;
                            for (int64_t od = od0; od < od1; od++) {
                                const float *xs = xp + (od * g.sd - g.pd + t * g.dd) * hw;
                                const float *dys = dyp + od * ohw;
                                for (int64_t oh = oh0; oh < oh1; oh++) {
                                    const float *xr = xs + (oh * g.sh - g.ph + i * g.dh) * g.w;
                                    const float *dyr = dys + oh * g.ow;
                                    for (int64_t ow = ow0; ow < ow1; ow++)
                                        acc += (double)dyr[ow] * (double)xr[ow * g.sw + col];
                                }
                            }
                        }
                        dw[(((f * g.cpg + cl) * g.kd + t) * g.kh + i) * g.kw + j] = (float)acc;
                    }
                }
            }
        }
    }
    if (db) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t f = 0; f < g.f; f++) {
            double acc = 0.0;
            for (int64_t n = 0; n < g.n; n++) {
                const float *dyp = dy + (n * g.f + f) * g.od * ohw;
                for (int64_t k = 0; k < g.od * ohw; k++)
                    acc += dyp[k];
            }
            db[f] = (float)acc;
        }
    }
    return 0;
}
