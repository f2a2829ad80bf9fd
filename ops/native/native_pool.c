/* Native pooling on plain tensors, the semantics of ops/ref_pool.c: max and average pooling
 * (1-D, 2-D and 3-D, stride, padding, PyTorch's floor mode; max pads with -inf and sends the
 * gradient to the first maximum of each window in scan order; average counts padding as
 * zeros, count_include_pad), global average pooling, and their backward.
 *
 * Each (image, channel) volume is one job (simd_common.h): the output columns whose windows
 * need no padding run in vector loops over the columns (2x2 windows at stride 2, the common
 * case, in a dedicated loop; other windows a strided read per tap), the edge columns scalar.
 * Max-pool backward finds each window's first maximum and writes dy there in the same pass
 * (disjoint windows: every window cell written once, dy or 0; overlapping ones: dy added at
 * the winner): it needs only x and dy, so the forward never runs a second time in a training
 * step (the graph gives maxpool_bwd the pool's input, not an index map; see the note in
 * native_kernels.c).
 *
 * Where results may differ from the reference in the last bits: average sums are in float
 * (the reference sums in double), and overlapping windows' gradients are added in another
 * order. */
#include <omp.h>
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/pool_geom.h"
#include "ops/native/simd.h"

/* The shared checks (ops/pool_geom.c: the reference's messages), filling g. */
static int pool_make(const op_pool_attrs *a, const op_tensor *x, bool max, const char *name,
                     op_native_pool *g, char *err, size_t errlen)
{
    op_pool_geom p;
    if (op_pool_geom_make(a, x, max, name, &p, err, errlen))
        return -1;
    *g = (op_native_pool){.d = p.d, .h = p.h, .w = p.w, .kd = p.kd, .kh = p.kh, .kw = p.kw, .sd = p.sd,
                          .sh = p.sh, .sw = p.sw, .pd = p.pd, .ph = p.ph, .pw = p.pw, .od = p.od, .oh = p.oh,
                          .ow = p.ow};
    return 0;
}

static int check_pooled(const op_tensor *t, const op_tensor *x, const op_native_pool *g,
                        int sdims, const char *name, const char *what, char *err, size_t errlen)
{
    char s1[64], s2[64];
    bool ok = t->rank == x->rank && t->d[0] == x->d[0] && t->d[1] == x->d[1] &&
              (t->rank != 5 || t->d[2] == g->od) && (t->rank == 3 || t->d[t->rank - 2] == g->oh) &&
              t->d[t->rank - 1] == g->ow;
    if (ok)
        return 0;
    if (sdims == 3)
        return ref_fail(err, errlen, "%s: %s is %s, input %s pools to %lldx%lldx%lld", name,
                        what, ref_shape_str(t, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2),
                        (long long)g->od, (long long)g->oh, (long long)g->ow);
    return ref_fail(err, errlen, "%s: %s is %s, input %s pools to %lldx%lld", name, what,
                    ref_shape_str(t, s1, sizeof s1), ref_shape_str(x, s2, sizeof s2),
                    (long long)g->oh, (long long)g->ow);
}

/* Runs fn over the n*c volumes in parallel. */
#define POOL_LOOP(c, xt, g, ...)                                                                \
    do {                                                                                       \
        int64_t nvol_ = (xt)->d[0] * (xt)->d[1];                                               \
        int64_t vin_ = (g).d * (g).h * (g).w, vout_ = (g).od * (g).oh * (g).ow;                \
        (void)vin_;                                                                            \
        (void)vout_;                                                                           \
        NAT_FOR(nvol_ * vin_ > 8192 ? nat_threads(c) : 1, p, nvol_, { __VA_ARGS__; });          \
    } while (0)

/* ---- max pooling in channels-last order ([N, D, H, W, C], a 2-D pool's NHWC with D = 1): the
 * channels of one position are contiguous, so every loop runs over them (vectorised by the
 * compiler); the window's taps in the reference's scan order, its first maximum winning (the
 * first real tap, then a strictly greater one), so results equal the reference's bit for bit. */

/* The offsets (of channel 0) of a window's taps from its first one, in the reference's scan
 * order, into rel (kd*kh*kw of them). */
static void window_rel(const op_native_pool *g, int64_t ch, int64_t *rel)
{
    int64_t n = 0;
    for (int64_t t = 0; t < g->kd; t++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++)
                rel[n++] = ((t * g->h + i) * g->w + j) * ch;
}

/* The real taps of output (oz, oy, ox)'s window, in the reference's scan order: *base plus each
 * of the offsets (of channel 0) *taps points at, and how many.  A window wholly inside the input
 * (most of them) takes rel (window_rel); one at a border gets its real taps' offsets in off
 * (room for kd*kh*kw), base 0.  There is at least one: op_pool_geom_make checked that max
 * pooling's padding is smaller than its window. */
static int64_t window_taps(const op_native_pool *g, int64_t ch, const int64_t *rel, int64_t oz, int64_t oy,
                           int64_t ox, int64_t *off, const int64_t **taps, int64_t *base)
{
    int64_t d0 = oz * g->sd - g->pd, h0 = oy * g->sh - g->ph, w0 = ox * g->sw - g->pw;
    if (d0 >= 0 && d0 + g->kd <= g->d && h0 >= 0 && h0 + g->kh <= g->h && w0 >= 0 && w0 + g->kw <= g->w) {
        *taps = rel;
        *base = ((d0 * g->h + h0) * g->w + w0) * ch;
        return g->kd * g->kh * g->kw;
    }
    *taps = off;
    *base = 0;
    int64_t n = 0;
    for (int64_t t = 0; t < g->kd; t++) {
        int64_t id = oz * g->sd - g->pd + t;
        for (int64_t i = 0; id >= 0 && id < g->d && i < g->kh; i++) {
            int64_t ih = oy * g->sh - g->ph + i;
            for (int64_t j = 0; ih >= 0 && ih < g->h && j < g->kw; j++) {
                int64_t iw = ox * g->sw - g->pw + j;
                if (iw >= 0 && iw < g->w)
                    off[n++] = ((id * g->h + ih) * g->w + iw) * ch;
            }
        }
    }
    return n;
}

/* Whether g pools images (one depth: the fast paths below index rows only) with unpadded
 * windows that never overlap (stride at least the window): then every input position is in one
 * window at most. */
static bool disjoint_windows(const op_native_pool *g)
{
    return g->d == 1 && g->kd == 1 && g->pd == 0 && g->ph == 0 && g->pw == 0 && g->sh >= g->kh && g->sw >= g->kw;
}

/* y of the output row (depth oz, row oy) of one image; rel: window_rel's; off: room for a
 * window's taps. */
static void maxpool_cl_row(const op_native_pool *g, int64_t ch, const int64_t *rel, const float *x, float *y,
                           int64_t oz, int64_t oy, int64_t *off)
{
    if (disjoint_windows(g) && g->kh * g->kw == 4) { /* 2x2 windows (all inside), the common ones, unrolled */
        const float *x0 = x + oy * g->sh * g->w * ch, *x1 = x0 + rel[1], *x2 = x0 + rel[2], *x3 = x0 + rel[3];
        float *yp = y + oy * g->ow * ch;
        for (int64_t ox = 0; ox < g->ow; ox++, yp += ch) {
            int64_t o = ox * g->sw * ch;
            for (int64_t k = 0; k < ch; k++) {
                float m = x0[o + k];
                m = x1[o + k] > m ? x1[o + k] : m;
                m = x2[o + k] > m ? x2[o + k] : m;
                yp[k] = x3[o + k] > m ? x3[o + k] : m;
            }
        }
        return;
    }
    for (int64_t ox = 0; ox < g->ow; ox++) {
        float *yp = y + ((oz * g->oh + oy) * g->ow + ox) * ch;
        const int64_t *taps;
        int64_t base;
        int64_t n = window_taps(g, ch, rel, oz, oy, ox, off, &taps, &base);
        const float *xw = x + base;
        memcpy(yp, xw + taps[0], (size_t)ch * sizeof(float));
        for (int64_t t = 1; t < n; t++) {
            const float *xp = xw + taps[t];
#pragma omp simd
            for (int64_t k = 0; k < ch; k++)
                yp[k] = xp[k] > yp[k] ? xp[k] : yp[k];
        }
    }
}

/* dx of one image: zeroed, then dy added at each window's winner, channel by channel, in the
 * reference's order of the output positions (the same sums when windows overlap).  best and
 * arg: ch floats and ch offsets of scratch; rel: window_rel's; off: room for a window's taps. */
static void maxpool_bwd_cl_image(const op_native_pool *g, int64_t ch, const int64_t *rel, const float *x,
                                 const float *dy, float *dx, float *best, int64_t *arg, int64_t *off)
{
    memset(dx, 0, (size_t)(g->d * g->h * g->w * ch) * sizeof(float));
    for (int64_t oz = 0; oz < g->od; oz++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++) {
                const int64_t *taps;
                int64_t base;
                int64_t n = window_taps(g, ch, rel, oz, oy, ox, off, &taps, &base);
                for (int64_t k = 0; k < ch; k++)
                    best[k] = x[base + taps[0] + k], arg[k] = base + taps[0] + k;
                for (int64_t t = 1; t < n; t++) {
                    int64_t o = base + taps[t];
                    const float *xp = x + o;
#pragma omp simd
                    for (int64_t k = 0; k < ch; k++) {
                        bool gt = xp[k] > best[k];
                        best[k] = gt ? xp[k] : best[k];
                        arg[k] = gt ? o + k : arg[k];
                    }
                }
                const float *dyp = dy + ((oz * g->oh + oy) * g->ow + ox) * ch;
                for (int64_t k = 0; k < ch; k++)
                    dx[arg[k]] += dyp[k];
            }
}

/* One 2x2 window of maxpool_bwd_cl_disjoint, all ch channels: the first maximum in scan order
 * (taps 0, 1, 2, 3 at rel[0..3], rel[0] = 0) gets 0 + dy, the other taps 0; branch-free so
 * that it vectorises over the channels. */
static void maxpool2_bwd_cl(const float *restrict xw, const int64_t *rel, const float *restrict dyp,
                            float *restrict dxw, int64_t ch)
{
    const float *x1 = xw + rel[1], *x2 = xw + rel[2], *x3 = xw + rel[3];
    float *d1 = dxw + rel[1], *d2 = dxw + rel[2], *d3 = dxw + rel[3];
#pragma omp simd
    for (int64_t k = 0; k < ch; k++) {
        float a = xw[k], b = x1[k], c = x2[k], e = x3[k];
        bool wb = b > a;
        float m = wb ? b : a;
        bool wc = c > m;
        m = wc ? c : m;
        bool we = e > m;
        float gq = 0.0f + dyp[k];
        float rest = we ? 0.0f : gq, rest2 = wc ? 0.0f : rest;
        d3[k] = we ? gq : 0.0f;
        d2[k] = wc ? rest : 0.0f;
        d1[k] = wb ? rest2 : 0.0f;
        dxw[k] = wb ? 0.0f : rest2;
    }
}

/* maxpool_bwd_cl_image for disjoint_windows: each window's taps get their dx once, dy at the
 * first maximum and zero elsewhere (0 + dy, as the reference's sum gives it: +0 for a -0),
 * channel by channel with the window's best kept in registers; positions under no window are
 * zeroed. */
static void maxpool_bwd_cl_disjoint(const op_native_pool *g, int64_t ch, const int64_t *rel, const float *x,
                                    const float *dy, float *dx)
{
    int64_t taps = g->kh * g->kw, row = g->w * ch;
    if (g->oh * g->sh != g->h || g->ow * g->sw != g->w || g->sh != g->kh || g->sw != g->kw)
        memset(dx, 0, (size_t)(g->h * row) * sizeof(float));
    for (int64_t oy = 0; oy < g->oh; oy++)
        for (int64_t ox = 0; ox < g->ow; ox++) {
            int64_t base = (oy * g->sh * g->w + ox * g->sw) * ch;
            const float *xw = x + base, *dyp = dy + (oy * g->ow + ox) * ch;
            float *dxw = dx + base;
            if (taps == 4) { /* 2x2, the common window */
                maxpool2_bwd_cl(xw, rel, dyp, dxw, ch);
                continue;
            }
            for (int64_t k = 0; k < ch; k++) {
                float best = xw[rel[0] + k];
                int64_t bi = 0;
                for (int64_t t = 1; t < taps; t++) {
                    float v = xw[rel[t] + k];
                    if (v > best)
                        best = v, bi = t;
                }
                float grad = 0.0f + dyp[k];
                for (int64_t t = 0; t < taps; t++)
                    dxw[rel[t] + k] = t == bi ? grad : 0.0f;
            }
        }
}

static bool channels_last(const op_tensor *t)
{
    return t->layout == OP_LAYOUT_NHWC && t->rank >= 3;
}

int op_native_maxpool(op_call *c, char *err, size_t errlen)
{
    const char *name = "native maxpool";
    op_native_pool g;
    if (nat_check_call_layouts(c, name, 1, 1, 1, 1, true, false, err, errlen) ||
        pool_make(&c->node->attrs.pool, &c->in[0], true, name, &g, err, errlen) ||
        check_pooled(&c->out[0], &c->in[0], &g, c->node->attrs.pool.sdims, name, "output", err,
                     errlen))
        return -1;
    const op_native_simd *v = op_native_simd_table();
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    if (channels_last(&c->in[0])) {
        int64_t n = c->in[0].d[0], ch = c->in[0].d[1], rows = n * g.od * g.oh, taps = g.kd * g.kh * g.kw;
        int64_t vin = g.d * g.h * g.w * ch, vout = g.od * g.oh * g.ow * ch;
        int nt = nat_threads(c);
        int64_t *offs = cnn_mem_malloc(sizeof(int64_t) * (size_t)((nt + 1) * taps) + 1);
        if (!offs)
            return ref_fail(err, errlen, "%s: out of memory", name);
        window_rel(&g, ch, offs + nt * taps);
        NAT_PAR((n * vin > 8192) ? nt : 1, {
            int64_t *off = offs + nat_tid * taps;
            NAT_STATIC(r, rows) {
                int64_t b = r / (g.od * g.oh), oz = r / g.oh % g.od, oy = r % g.oh;
                maxpool_cl_row(&g, ch, offs + nt * taps, x + b * vin, y + b * vout, oz, oy, off);
            }
        });
        cnn_mem_free(offs);
        return 0;
    }
    POOL_LOOP(c, &c->in[0], g, v->maxpool(&g, x + p * vin_, y + p * vout_));
    return 0;
}

int op_native_maxpool_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native maxpool_bwd";
    char s1[64], s2[64];
    op_native_pool g;
    if (nat_check_call_layouts(c, name, 2, 2, 1, 1, true, false, err, errlen) ||
        pool_make(&c->node->attrs.pool, &c->in[1], true, name, &g, err, errlen) ||
        check_pooled(&c->in[0], &c->in[1], &g, c->node->attrs.pool.sdims, name, "dy", err,
                     errlen))
        return -1;
    if (!ref_same_shape(&c->out[0], &c->in[1]))
        return ref_fail(err, errlen, "%s: dx is %s, x is %s", name,
                        ref_shape_str(&c->out[0], s1, sizeof s1),
                        ref_shape_str(&c->in[1], s2, sizeof s2));
    const op_native_simd *v = op_native_simd_table();
    const float *dy = c->in[0].data, *x = c->in[1].data;
    float *dx = c->out[0].data;
    /* the fused activation backward (x is its output), over each image or plane while in cache */
    op_act act = c->node->attrs.pool.act;
    float alpha = c->node->attrs.pool.alpha;
    if (channels_last(&c->in[1])) {
        int64_t n = c->in[1].d[0], ch = c->in[1].d[1], nt = nat_threads(c);
        int64_t vin = g.d * g.h * g.w * ch, vout = g.od * g.oh * g.ow * ch;
        int64_t taps = g.kd * g.kh * g.kw;
        float *bests = cnn_mem_malloc(sizeof(float) * (size_t)(nt * ch) + 1);
        int64_t *args = cnn_mem_malloc(sizeof(int64_t) * (size_t)(nt * (ch + taps) + taps) + 1);
        if (!bests || !args) {
            cnn_mem_free(bests), cnn_mem_free(args);
            return ref_fail(err, errlen, "%s: out of memory", name);
        }
        const int64_t *rel = args + nt * (ch + taps);
        window_rel(&g, ch, args + nt * (ch + taps));
        NAT_PAR((n * vin > 8192) ? nt : 1, {
            int t = nat_tid;
            int64_t *arg = args + t * (ch + taps);
            NAT_STATIC(b, n) {
                if (disjoint_windows(&g))
                    maxpool_bwd_cl_disjoint(&g, ch, rel, x + b * vin, dy + b * vout, dx + b * vin);
                else
                    maxpool_bwd_cl_image(&g, ch, rel, x + b * vin, dy + b * vout, dx + b * vin, bests + t * ch, arg,
                                         arg + ch);
                if (act != OP_ACT_NONE)
                    v->act_bwd(dx + b * vin, x + b * vin, dx + b * vin, vin, act, alpha);
            }
        });
        cnn_mem_free(bests), cnn_mem_free(args);
        return 0;
    }
    POOL_LOOP(c, &c->in[1], g, v->maxpool_bwd(&g, x + p * vin_, dy + p * vout_, dx + p * vin_, act, alpha));
    return 0;
}

int op_native_avgpool(op_call *c, char *err, size_t errlen)
{
    const char *name = "native avgpool";
    op_native_pool g;
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen) ||
        pool_make(&c->node->attrs.pool, &c->in[0], false, name, &g, err, errlen) ||
        check_pooled(&c->out[0], &c->in[0], &g, c->node->attrs.pool.sdims, name, "output", err,
                     errlen))
        return -1;
    const op_native_simd *v = op_native_simd_table();
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    POOL_LOOP(c, &c->in[0], g, v->avgpool(&g, x + p * vin_, y + p * vout_));
    return 0;
}

int op_native_avgpool_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native avgpool_bwd";
    op_native_pool g;
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen) ||
        pool_make(&c->node->attrs.pool, &c->out[0], false, name, &g, err, errlen) ||
        check_pooled(&c->in[0], &c->out[0], &g, c->node->attrs.pool.sdims, name, "dy", err,
                     errlen))
        return -1;
    const op_native_simd *v = op_native_simd_table();
    const float *dy = c->in[0].data;
    float *dx = c->out[0].data;
    POOL_LOOP(c, &c->out[0], g, v->avgpool_bwd(&g, dy + p * vout_, dx + p * vin_));
    return 0;
}

/* y[n, c] = mean of the plane: a float vector sum (the reference sums in double). */
int op_native_global_avgpool(op_call *c, char *err, size_t errlen)
{
    int64_t nc, s;
    if (op_global_pool_check(c, "native global_avgpool", false, &nc, &s, err, errlen))
        return -1;
    const op_tensor *xt = &c->in[0], *yt = &c->out[0];
    const op_native_simd *v = op_native_simd_table();
    const float *x = xt->data;
    float *y = yt->data;
    NAT_FOR(nc * s > 16384 ? nat_threads(c) : 1, p, nc, y[p] = v->sum(x + p * s, s) / (float)s;);
    return 0;
}

/* dx = dy / S over each plane (the reference's rounding: the quotient in double). */
int op_native_global_avgpool_bwd(op_call *c, char *err, size_t errlen)
{
    int64_t nc, s;
    if (op_global_pool_check(c, "native global_avgpool_bwd", true, &nc, &s, err, errlen))
        return -1;
    const op_tensor *dyt = &c->in[0], *dxt = &c->out[0];
    const op_native_simd *v = op_native_simd_table();
    const float *dy = dyt->data;
    float *dx = dxt->data;
    NAT_FOR(nc * s > 16384 ? nat_threads(c) : 1, p, nc, v->fill(dx + p * s, s, (float)((double)dy[p] / (double)s)););
    return 0;
}
