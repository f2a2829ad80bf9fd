/* Native batch normalisation over axis 1 of plain [N, C, ...] tensors (rank 2 allowed), with
 * the semantics of ops/ref_norm.c (PyTorch's):
 *   inference  y = (x - running_mean) * (gamma / sqrt(running_var + eps)) + beta
 *   training   per plane (one image, one channel: S values, in cache) its mean and sum of
 *              squared deviations in float vectors; per channel the planes combined in double
 *              (Chan's pairwise formula: M2 = sum M2_p + S sum (mean_p - mean)^2), which gives
 *              the batch mean and biased variance, the saved mean and 1/sqrt(var + eps) and the
 *              running statistics updated in place exactly as the reference (in double, the
 *              unbiased variance); then y = (x - mean) * (invstd gamma) + beta per plane.
 *   backward   per plane sum dy and sum dy (x - mean) in float, combined per channel in
 *              double; dbeta = sum dy, dgamma = invstd sum dy (x - mean),
 *              dx = (dy - dbeta/M - (x - mean) invstd dgamma/M) gamma invstd per plane.
 * The planes run in parallel (balanced for any channel count), the per-channel combination on
 * one thread in a fixed order, so results do not depend on the thread count.  Where results may
 * differ from the reference in the last bits: the per-plane sums and y, dx are in float (the
 * reference works in double throughout); the statistics, saved values and running statistics
 * agree to float rounding.
 *
 * Scratch: 2 floats per plane and 2 per channel (see bn_scratch). */
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/simd.h"



/* Scratch floats: (mean, m2) or (sdy, sdyx) per plane, then three per channel. */
static size_t bn_scratch_floats(const op_tensor *x)
{
    if (x->rank < 2)
        return 0;
    return (size_t)(2 * x->d[0] * x->d[1] + 3 * x->d[1]);
}

size_t op_native_batchnorm_scratch(const op_call *c)
{
    if (c->nin < 1 || !c->node || c->in[0].rank < 2)
        return 0;
    if (!c->node->attrs.bn.training) /* the per-channel mean and scale */
        return 2 * (size_t)c->in[0].d[1] * sizeof(float);
    return bn_scratch_floats(&c->in[0]) * sizeof(float);
}

size_t op_native_batchnorm_bwd_scratch(const op_call *c)
{
    if (c->nin < 2)
        return 0;
    return bn_scratch_floats(&c->in[1]) * sizeof(float);
}

/* ---- the memory order of x: plain planes, or channels-last segments */

/* Positions per tile of the element-wise passes over channels-last segments (they split a
 * segment, so that one image on several threads splits too). */
#define CL_TILE 256

/* x as segments of s positions by cw channels (stride cw): plain tensors have none (their
 * planes are the unit); channels-last ones one per image (cw = C), blocked ones one per image
 * and block of 16 channels (channels b * 16 ... + 15). */
typedef struct bn_order {
    bool cl;
    int64_t nb, cw; /* blocks per image, channels per block */
} bn_order;

static bn_order bn_order_of(const op_tensor *x, int64_t ch)
{
    bn_order o = {false, 1, ch};
    if (x->rank >= 3 && x->layout == OP_LAYOUT_NHWC)
        o.cl = true;
    else if (x->rank >= 3 && x->layout == OP_LAYOUT_BLOCK16 && ch % 16 == 0)
        o.cl = true, o.nb = ch / 16, o.cw = 16;
    return o;
}

/* Tile t of the element-wise passes over channels-last segments (tps tiles of CL_TILE
 * positions per segment of s positions): its first float *off, its positions *len, its
 * segment's channel block *b. */
static void cl_tile(const bn_order *o, int64_t s, int64_t tps, int64_t t, int64_t *off, int64_t *len, int64_t *b)
{
    int64_t j = t / tps, p0 = t % tps * CL_TILE;
    *b = j % o->nb;
    *len = s - p0 < CL_TILE ? s - p0 : CL_TILE;
    *off = j * s * o->cw + p0 * o->cw;
}

/* The per-plane (or per-segment) partial sums: image i's pair for channel k is at
 * part[i * 2 * ch + k * sk] and that plus so (plain: pairs side by side, sk 2, so 1;
 * channels-last: the image's first values for every channel, then its second, sk 1, so ch). */
typedef struct bn_parts {
    int64_t sk, so;
} bn_parts;

static bn_parts bn_parts_of(const bn_order *o, int64_t ch)
{
    return o->cl ? (bn_parts){1, ch} : (bn_parts){2, 1};
}

/* One thread, a fixed order: the batch mean and biased variance of channel k from the images'
 * means and sums of squared deviations (Chan's pairwise formula, in double). */
static void bn_combine_stats(const float *part, bn_parts pp, int64_t n, int64_t ch, int64_t s, int64_t k,
                             double *mu_out, double *var_out)
{
    double msum = 0.0, m2 = 0.0;
    for (int64_t i = 0; i < n; i++)
        msum += part[i * 2 * ch + k * pp.sk];
    double mu = msum / (double)n, dev = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)part[i * 2 * ch + k * pp.sk] - mu;
        dev += d * d;
        m2 += part[i * 2 * ch + k * pp.sk + pp.so];
    }
    m2 += dev * (double)s;
    *mu_out = mu;
    *var_out = m2 / (double)(n * s);
}

/* The fused epilogue over n values of y (and the residual r at the same places): y = act(y + r),
 * or act(y); nothing when the node has none. */
static void bn_epilogue(const op_native_simd *v, const op_bn_attrs *a, float *y, const float *r, int64_t n)
{
    if (r)
        v->add2(y, r, y, n, a->act, a->alpha);
    else if (a->act != OP_ACT_NONE)
        v->act(y, y, n, a->act, a->alpha);
}

int op_native_batchnorm(op_call *c, char *err, size_t errlen)
{
    const char *name = "native batchnorm";
    int64_t n, ch, s;
    if (ref_bn_check_layouts(c, name, false, false, &n, &ch, &s, err, errlen))
        return -1;
    int64_t m = n * s, planes = n * ch;
    const op_bn_attrs *a = &c->node->attrs.bn;
    const op_tensor *xt = &c->in[0];
    const float *x = xt->data, *gamma = c->in[1].data, *beta = c->in[2].data;
    float *rmean = c->in[3].data, *rvar = c->in[4].data, *y = c->out[0].data;
    const float *res = a->residual ? c->in[5].data : NULL;
    double eps = a->eps;
    const op_native_simd *v = op_native_simd_table();
    int nt = nat_threads(c);
    bn_order o = bn_order_of(xt, ch);
    bn_parts pp = bn_parts_of(&o, ch);
    int64_t segs = n * o.nb, seg = s * o.cw, tps = (s + CL_TILE - 1) / CL_TILE;

    bool owned;
    float *part = nat_scratch(c, op_native_batchnorm_scratch(c), &owned);
    if (!part)
        return ref_fail(err, errlen, "%s: out of memory", name);
    /* y = (x - cmu) * cscale + beta per channel: the running statistics, or the batch's */
    float *cmu = a->training ? part + 2 * planes : part, *cscale = cmu + ch;
    float *save_mean = a->training ? c->out[1].data : NULL, *save_invstd = a->training ? c->out[2].data : NULL;
    double mom = a->momentum;
    if (!a->training)
        for (int64_t k = 0; k < ch; k++) {
            cmu[k] = rmean[k];
            cscale[k] = (float)((double)gamma[k] / sqrt((double)rvar[k] + eps));
        }

    NAT_PAR((planes * s > 16384) ? nt : 1, {
        if (a->training && o.cl) {
            NAT_STATIC(j, segs) {
                int64_t i = j / o.nb, b = j % o.nb;
                v->bn_stats_cl(x + j * seg, s, o.cw, o.cw, part + i * 2 * ch + b * o.cw,
                               part + i * 2 * ch + ch + b * o.cw);
            }
            NAT_BARRIER();
        } else if (a->training) {
            NAT_STATIC(p, planes)
                v->bn_stats(x + p * s, s, &part[2 * p], &part[2 * p + 1]);
            NAT_BARRIER();
        }
        if (a->training) {
            if (nat_tid == 0) {
                for (int64_t k = 0; k < ch; k++) {
                    double mu, var;
                    bn_combine_stats(part, pp, n, ch, s, k, &mu, &var);
                    double invstd = 1.0 / sqrt(var + eps);
                    save_mean[k] = (float)mu;
                    save_invstd[k] = (float)invstd;
                    rmean[k] = (float)((1.0 - mom) * rmean[k] + mom * mu);
                    rvar[k] = (float)((1.0 - mom) * rvar[k] + mom * var * (double)m / (double)(m - 1));
                    cmu[k] = (float)mu;
                    cscale[k] = (float)(invstd * (double)gamma[k]);
                }
            }
            NAT_BARRIER();
        }
        if (o.cl) {
            NAT_STATIC_REV(t, segs * tps) {
                int64_t off, len, b;
                cl_tile(&o, s, tps, t, &off, &len, &b);
                v->bn_apply_cl(x + off, y + off, len, o.cw, o.cw, cmu + b * o.cw, cscale + b * o.cw,
                               beta + b * o.cw);
                bn_epilogue(v, a, y + off, res ? res + off : NULL, len * o.cw);
            }
            NAT_BARRIER();
        } else {
            NAT_STATIC_REV(p, planes) {
                int64_t k = p % ch;
                v->bn_apply(x + p * s, y + p * s, s, cmu[k], cscale[k], beta[k]);
                bn_epilogue(v, a, y + p * s, res ? res + p * s : NULL, s);
            }
            NAT_BARRIER();
        }
    });
    if (owned)
        cnn_mem_aligned_free(part);
    return 0;
}

int op_native_batchnorm_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native batchnorm_bwd";
    int64_t n, ch, s;
    if (ref_bn_check_layouts(c, name, true, false, &n, &ch, &s, err, errlen))
        return -1;
    int64_t m = n * s, planes = n * ch;
    const op_tensor *dyt = &c->in[0], *xt = &c->in[1];
    const float *dy = dyt->data, *x = xt->data, *gamma = c->in[2].data;
    const float *mean = c->in[3].data, *invstd = c->in[4].data;
    float *dx = c->out[0].data;
    float *dgamma = c->nout > 1 ? c->out[1].data : NULL;
    float *dbeta = c->nout > 2 ? c->out[2].data : NULL;
    bool owned;
    float *part = nat_scratch(c, bn_scratch_floats(xt) * sizeof(float), &owned);
    if (!part)
        return ref_fail(err, errlen, "%s: out of memory", name);
    float *cmdy = part + 2 * planes, *ck = cmdy + ch, *cg = ck + ch;
    const op_native_simd *v = op_native_simd_table();
    /* a fused activation: dy is its output's gradient and ay its output; the gradient at its
     * input goes to dx first, segment by segment (in cache for the sums), and the dx pass reads
     * it there (its dy = dx) */
    op_act act = c->node->attrs.bn.act;
    float alpha = c->node->attrs.bn.alpha;
    const float *ay = act != OP_ACT_NONE ? c->in[5].data : NULL;
    const float *g = ay ? dx : dy;
    int nt = nat_threads(c);
    bn_order o = bn_order_of(xt, ch);
    bn_parts pp = bn_parts_of(&o, ch);
    int64_t segs = n * o.nb, seg = s * o.cw, tps = (s + CL_TILE - 1) / CL_TILE;

    NAT_PAR((planes * s > 16384) ? nt : 1, {
        if (o.cl) {
            NAT_STATIC(j, segs) {
                int64_t i = j / o.nb, b = j % o.nb;
                if (ay)
                    v->act_bwd(dy + j * seg, ay + j * seg, dx + j * seg, seg, act, alpha);
                v->bn_bwd_sums_cl(g + j * seg, x + j * seg, s, o.cw, o.cw, mean + b * o.cw,
                                  part + i * 2 * ch + b * o.cw, part + i * 2 * ch + ch + b * o.cw);
            }
            NAT_BARRIER();
        } else {
            NAT_STATIC(p, planes) {
                int64_t k = p % ch;
                if (ay)
                    v->act_bwd(dy + p * s, ay + p * s, dx + p * s, s, act, alpha);
                v->bn_bwd_sums(g + p * s, x + p * s, s, mean[k], &part[2 * p], &part[2 * p + 1]);
            }
            NAT_BARRIER();
        }
        if (nat_tid == 0) {
            for (int64_t k = 0; k < ch; k++) {
                double sdy = 0.0, sdyx = 0.0, is = invstd[k];
                for (int64_t i = 0; i < n; i++) {
                    sdy += part[i * 2 * ch + k * pp.sk];
                    sdyx += part[i * 2 * ch + k * pp.sk + pp.so];
                }
                sdyx *= is;
                if (dgamma)
                    dgamma[k] = (float)sdyx;
                if (dbeta)
                    dbeta[k] = (float)sdy;
                cmdy[k] = (float)(sdy / (double)m);
                ck[k] = (float)(is * sdyx / (double)m);
                cg[k] = gamma[k] * invstd[k];
            }
        }
        NAT_BARRIER();
        if (o.cl) {
            NAT_STATIC_REV(t, segs * tps) {
                int64_t off, len, b;
                cl_tile(&o, s, tps, t, &off, &len, &b);
                v->bn_bwd_dx_cl(g + off, x + off, dx + off, len, o.cw, o.cw, mean + b * o.cw, ck + b * o.cw,
                                cmdy + b * o.cw, cg + b * o.cw);
            }
            NAT_BARRIER();
        } else {
            NAT_STATIC_REV(p, planes) {
                int64_t k = p % ch;
                v->bn_bwd_dx(g + p * s, x + p * s, dx + p * s, s, mean[k], ck[k], cmdy[k], cg[k]);
            }
            NAT_BARRIER();
        }
    });
    if (owned)
        cnn_mem_aligned_free(part);
    return 0;
}
