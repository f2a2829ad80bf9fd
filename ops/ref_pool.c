/* Reference pooling: max and average pooling (1-D, 2-D and 3-D, stride, padding, PyTorch's
 * floor mode), global average pooling, and their backward.  Max pooling pads with -inf (padding
 * is never chosen) and sends the gradient to the first maximum of each window in row-major scan
 * order (slice, row, column); average pooling counts padding as zeros (divides by
 * size_d*size_h*size_w always).  Every pool runs as a 3-D one: 2-D tensors [N,C,H,W] are read
 * as [N,C,1,H,W] and 1-D ones [N,C,W] as [N,C,1,1,W], with depth size 1, stride 1, pad 0.
 * Work is split over (batch, channel) volumes, so no two threads write the same element. */
#include <string.h>

#include "ops/pool_geom.h"
#include "ops/ref_common.h"

typedef op_pool_geom pool_geom;

/* Checks that t is the pooled shape [n, c, (od,) (oh,) ow]. */
static int check_pooled(const op_tensor *t, const op_tensor *x, const pool_geom *g,
                        const char *name, const char *what, char *err, size_t errlen)
{
    char s1[64], s2[64];
    bool ok = t->rank == x->rank && t->d[0] == g->n && t->d[1] == g->c &&
              (t->rank != 5 || t->d[2] == g->od) && (t->rank == 3 || t->d[t->rank - 2] == g->oh) &&
              t->d[t->rank - 1] == g->ow;
    if (ok)
        return 0;
    if (g->sdims == 3)
        return ref_fail(err, errlen, "%s: %s is %s, input %s pools to %lldx%lldx%lld", name,
                        what, ref_shape_str(t, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2),
                        (long long)g->od, (long long)g->oh, (long long)g->ow);
    return ref_fail(err, errlen, "%s: %s is %s, input %s pools to %lldx%lld", name, what,
                    ref_shape_str(t, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2),
                    (long long)g->oh, (long long)g->ow);
}

/* The row-major index within the (d, h, w) volume of the first maximum of window
 * (oz, oy, ox). */
static int64_t max_index(const pool_geom *g, const float *xp, int64_t oz, int64_t oy, int64_t ox)
{
    float m = -INFINITY;
    int64_t best = -1;
    for (int64_t t = 0; t < g->kd; t++) {
        int64_t id = oz * g->sd - g->pd + t;
        if (id < 0 || id >= g->d)
            continue;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t ih = oy * g->sh - g->ph + i;
            if (ih < 0 || ih >= g->h)
                continue;
            for (int64_t j = 0; j < g->kw; j++) {
                int64_t iw = ox * g->sw - g->pw + j;
                if (iw < 0 || iw >= g->w)
                    continue;
                int64_t k = (id * g->h + ih) * g->w + iw;
                float v = xp[k];
                if (best < 0 || v > m) {
                    m = v;
                    best = k;
                }
            }
        }
    }
    return best;
}

OP_REF_KERNEL(op_ref_maxpool)
{
    const char *name = "maxpool";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    pool_geom g;
    if (op_pool_geom_make(&c->node->attrs.pool, &c->in[0], true, name, &g, err, errlen) ||
        check_pooled(&c->out[0], &c->in[0], &g, name, "output", err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;

    /* x is (N, C, D, H, W), y is (N, C, OD, OH, OW) */
#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *xp = x + p * g.d * g.h * g.w;
        float *yp = y + p * g.od * g.oh * g.ow;
        for (int64_t oz = 0; oz < g.od; oz++)
            for (int64_t oy = 0; oy < g.oh; oy++)
                for (int64_t ox = 0; ox < g.ow; ox++)
                    yp[(oz * g.oh + oy) * g.ow + ox] = xp[max_index(&g, xp, oz, oy, ox)];
    }
    return 0;
}

OP_REF_KERNEL(op_ref_maxpool_bwd)
{
    const char *name = "maxpool_bwd";
    char s1[64], s2[64];
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    pool_geom g;
    if (op_pool_geom_make(&c->node->attrs.pool, &c->in[1], true, name, &g, err, errlen) ||
        check_pooled(&c->in[0], &c->in[1], &g, name, "dy", err, errlen))
        return -1;
    if (!ref_same_shape(&c->out[0], &c->in[1]))
        return ref_fail(err, errlen, "%s: dx is %s, x is %s", name,
                        ref_shape_str(&c->out[0], s1, sizeof s1),
                        ref_shape_str(&c->in[1], s2, sizeof s2));
    const float *dy = c->in[0].data, *x = c->in[1].data;
    float *dx = c->out[0].data;
    op_act act = c->node->attrs.pool.act;
    float alpha = c->node->attrs.pool.alpha;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *xp = x + p * g.d * g.h * g.w;
        const float *dyp = dy + p * g.od * g.oh * g.ow;
        float *dxp = dx + p * g.d * g.h * g.w;
        memset(dxp, 0, (size_t)(g.d * g.h * g.w) * sizeof(float));
        for (int64_t oz = 0; oz < g.od; oz++)
            for (int64_t oy = 0; oy < g.oh; oy++)
                for (int64_t ox = 0; ox < g.ow; ox++)
                    dxp[max_index(&g, xp, oz, oy, ox)] += dyp[(oz * g.oh + oy) * g.ow + ox];
        /* the fused activation backward: x is the activation's output */
        if (act != OP_ACT_NONE)
            for (int64_t i = 0; i < g.d * g.h * g.w; i++)
                dxp[i] = op_act_grad(act, alpha, dxp[i], xp[i]);
    }
    return 0;
}

OP_REF_KERNEL(op_ref_avgpool)
{
    const char *name = "avgpool";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    pool_geom g;
    if (op_pool_geom_make(&c->node->attrs.pool, &c->in[0], false, name, &g, err, errlen) ||
        check_pooled(&c->out[0], &c->in[0], &g, name, "output", err, errlen))
        return -1;
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    double area = (double)(g.kd * g.kh * g.kw);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *xp = x + p * g.d * g.h * g.w;
        float *yp = y + p * g.od * g.oh * g.ow;
        for (int64_t oz = 0; oz < g.od; oz++) {
            for (int64_t oy = 0; oy < g.oh; oy++) {
                for (int64_t ox = 0; ox < g.ow; ox++) {
                    double s = 0.0;
                    for (int64_t t = 0; t < g.kd; t++) {
                        int64_t id = oz * g.sd - g.pd + t;
                        if (id < 0 || id >= g.d)
                            continue;
                        const float *xs = xp + id * g.h * g.w;
                        for (int64_t i = 0; i < g.kh; i++) {
                            int64_t ih = oy * g.sh - g.ph + i;
                            if (ih < 0 || ih >= g.h)
                                continue;
                            for (int64_t j = 0; j < g.kw; j++) {
                                int64_t iw = ox * g.sw - g.pw + j;
                                if (iw >= 0 && iw < g.w)
                                    s += xs[ih * g.w + iw];
                            }
                        }
                    }
                    yp[(oz * g.oh + oy) * g.ow + ox] = (float)(s / area);
                }
            }
        }
    }
    return 0;
}

/* dx[id,ih,iw] = sum over the windows that contain (id,ih,iw) of dy / (size_d*size_h*size_w).
 * dx's shape comes from out[0]. */
OP_REF_KERNEL(op_ref_avgpool_bwd)
{
    const char *name = "avgpool_bwd";
    if (ref_check_call(c, name, 1, 1, 1, 1, err, errlen))
        return -1;
    pool_geom g;
    if (op_pool_geom_make(&c->node->attrs.pool, &c->out[0], false, name, &g, err, errlen) ||
        check_pooled(&c->in[0], &c->out[0], &g, name, "dy", err, errlen))
        return -1;
    const float *dy = c->in[0].data;
    float *dx = c->out[0].data;
    double area = (double)(g.kd * g.kh * g.kw);

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const float *dyp = dy + p * g.od * g.oh * g.ow;
        float *dxp = dx + p * g.d * g.h * g.w;
        for (int64_t id = 0; id < g.d; id++) {
            for (int64_t ih = 0; ih < g.h; ih++) {
                for (int64_t iw = 0; iw < g.w; iw++) {
                    /* windows oy with oy*sh - ph <= ih < oy*sh - ph + kh, likewise for oz, ox */
                    double s = 0.0;
                    for (int64_t t = 0; t < g.kd; t++) {
                        int64_t td = id + g.pd - t;
                        if (td < 0 || td % g.sd != 0 || td / g.sd >= g.od)
                            continue;
                        const float *dys = dyp + (td / g.sd) * g.oh * g.ow;
                        for (int64_t i = 0; i < g.kh; i++) {
                            int64_t th = ih + g.ph - i;
                            if (th < 0 || th % g.sh != 0 || th / g.sh >= g.oh)
                                continue;
                            for (int64_t j = 0; j < g.kw; j++) {
                                int64_t tw = iw + g.pw - j;
                                if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.ow)
                                    continue;
                                s += dys[(th / g.sh) * g.ow + tw / g.sw];
                            }
                        }
                    }
                    dxp[(id * g.h + ih) * g.w + iw] = (float)(s / area);
                }
            }
        }
    }
    return 0;
}

OP_REF_KERNEL(op_ref_global_avgpool)
{
    int64_t nc, s;
    if (op_global_pool_check(c, "global_avgpool", false, &nc, &s, err, errlen))
        return -1;
    const op_tensor *xt = &c->in[0], *yt = &c->out[0];
    const float *x = xt->data;
    float *y = yt->data;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < nc; p++) {
        double acc = 0.0;
        for (int64_t k = 0; k < s; k++)
            acc += x[p * s + k];
        y[p] = (float)(acc / (double)s);
    }
    return 0;
}

OP_REF_KERNEL(op_ref_global_avgpool_bwd)
{
    int64_t nc, s;
    if (op_global_pool_check(c, "global_avgpool_bwd", true, &nc, &s, err, errlen))
        return -1;
    const op_tensor *dyt = &c->in[0], *dxt = &c->out[0];
    const float *dy = dyt->data;
    float *dx = dxt->data;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t p = 0; p < nc; p++) {
        float v = (float)((double)dy[p] / (double)s);
        for (int64_t k = 0; k < s; k++)
            dx[p * s + k] = v;
    }
    return 0;
}
