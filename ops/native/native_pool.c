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
#include <string.h>

#include "ops/native/native_common.h"
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
#define POOL_LOOP(c, xt, g, body)                                                               \
    do {                                                                                       \
        int64_t nvol_ = (xt)->d[0] * (xt)->d[1];                                               \
        int64_t vin_ = (g).d * (g).h * (g).w, vout_ = (g).od * (g).oh * (g).ow;                \
        (void)vin_;                                                                            \
        (void)vout_;                                                                           \
        _Pragma("omp parallel for schedule(static) num_threads(nat_threads(c)) if (nvol_ * vin_ > 8192)") \
        for (int64_t p = 0; p < nvol_; p++) {                                                  \
            body;                                                                              \
        }                                                                                      \
    } while (0)

int op_native_maxpool(op_call *c, char *err, size_t errlen)
{
    const char *name = "native maxpool";
    op_native_pool g;
    if (nat_check_call(c, name, 1, 1, 1, 1, true, err, errlen) ||
        pool_make(&c->node->attrs.pool, &c->in[0], true, name, &g, err, errlen) ||
        check_pooled(&c->out[0], &c->in[0], &g, c->node->attrs.pool.sdims, name, "output", err,
                     errlen))
        return -1;
    const op_native_simd *v = op_native_simd_table();
    const float *x = c->in[0].data;
    float *y = c->out[0].data;
    POOL_LOOP(c, &c->in[0], g, v->maxpool(&g, x + p * vin_, y + p * vout_));
    return 0;
}

int op_native_maxpool_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native maxpool_bwd";
    char s1[64], s2[64];
    op_native_pool g;
    if (nat_check_call(c, name, 2, 2, 1, 1, true, err, errlen) ||
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
    POOL_LOOP(c, &c->in[1], g, v->maxpool_bwd(&g, x + p * vin_, dy + p * vout_, dx + p * vin_));
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
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (nc * s > 16384)
    for (int64_t p = 0; p < nc; p++)
        y[p] = v->sum(x + p * s, s) / (float)s;
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
#pragma omp parallel for schedule(static) num_threads(nat_threads(c)) if (nc * s > 16384)
    for (int64_t p = 0; p < nc; p++)
        v->fill(dx + p * s, s, (float)((double)dy[p] / (double)s));
    return 0;
}
