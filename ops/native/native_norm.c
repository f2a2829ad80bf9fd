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
#include "ops/native/simd.h"



/* Scratch floats: (mean, m2) or (sdy, sdyx) per plane, then two per channel. */
static size_t bn_scratch_floats(const op_tensor *x)
{
    if (x->rank < 2)
        return 0;
    return (size_t)(2 * x->d[0] * x->d[1] + 2 * x->d[1]);
}

size_t op_native_batchnorm_scratch(const op_call *c)
{
    if (c->nin < 1 || !c->node || !c->node->attrs.bn.training)
        return 0;
    return bn_scratch_floats(&c->in[0]) * sizeof(float);
}

size_t op_native_batchnorm_bwd_scratch(const op_call *c)
{
    if (c->nin < 2)
        return 0;
    return bn_scratch_floats(&c->in[1]) * sizeof(float);
}

int op_native_batchnorm(op_call *c, char *err, size_t errlen)
{
    const char *name = "native batchnorm";
    int64_t n, ch, s;
    if (ref_bn_check(c, name, false, &n, &ch, &s, err, errlen))
        return -1;
    int64_t m = n * s, planes = n * ch;
    const op_bn_attrs *a = &c->node->attrs.bn;
    const op_tensor *xt = &c->in[0];
    const float *x = xt->data, *gamma = c->in[1].data, *beta = c->in[2].data;
    float *rmean = c->in[3].data, *rvar = c->in[4].data, *y = c->out[0].data;
    double eps = a->eps;
    const op_native_simd *v = op_native_simd_table();
    int nt = nat_threads(c);

    if (!a->training) {
#pragma omp parallel for schedule(static) num_threads(nt) if (planes * s > 16384)
        for (int64_t p = 0; p < planes; p++) {
            int64_t k = p % ch;
            float scale = (float)((double)gamma[k] / sqrt((double)rvar[k] + eps));
            v->bn_apply(x + p * s, y + p * s, s, rmean[k], scale, beta[k]);
        }
        return 0;
    }

    bool owned;
    float *part = nat_scratch(c, bn_scratch_floats(xt) * sizeof(float), &owned);
    if (!part)
        return ref_fail(err, errlen, "%s: out of memory", name);
    float *cmu = part + 2 * planes, *cscale = cmu + ch;
    float *save_mean = c->out[1].data, *save_invstd = c->out[2].data;
    double mom = a->momentum;

#pragma omp parallel num_threads(nt) if (planes * s > 16384)
    {
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++)
            v->bn_stats(x + p * s, s, &part[2 * p], &part[2 * p + 1]);
#pragma omp single
        for (int64_t k = 0; k < ch; k++) {
            double msum = 0.0, m2 = 0.0;
            for (int64_t i = 0; i < n; i++)
                msum += part[2 * (i * ch + k)];
            double mu = msum / (double)n, dev = 0.0;
            for (int64_t i = 0; i < n; i++) {
                double d = (double)part[2 * (i * ch + k)] - mu;
                dev += d * d;
                m2 += part[2 * (i * ch + k) + 1];
            }
            m2 += dev * (double)s;
            double var = m2 / (double)m, invstd = 1.0 / sqrt(var + eps);
            save_mean[k] = (float)mu;
            save_invstd[k] = (float)invstd;
            rmean[k] = (float)((1.0 - mom) * rmean[k] + mom * mu);
            rvar[k] = (float)((1.0 - mom) * rvar[k] + mom * var * (double)m / (double)(m - 1));
            cmu[k] = (float)mu;
            cscale[k] = (float)(invstd * (double)gamma[k]);
        }
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            int64_t k = p % ch;
            v->bn_apply(x + p * s, y + p * s, s, cmu[k], cscale[k], beta[k]);
        }
    }
    if (owned)
        cnn_mem_aligned_free(part);
    return 0;
}

int op_native_batchnorm_bwd(op_call *c, char *err, size_t errlen)
{
    const char *name = "native batchnorm_bwd";
    int64_t n, ch, s;
    if (ref_bn_check(c, name, true, &n, &ch, &s, err, errlen))
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
    float *cmdy = part + 2 * planes, *ck = cmdy + ch;
    const op_native_simd *v = op_native_simd_table();
    int nt = nat_threads(c);

#pragma omp parallel num_threads(nt) if (planes * s > 16384)
    {
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            int64_t k = p % ch;
            v->bn_bwd_sums(dy + p * s, x + p * s, s, mean[k], &part[2 * p], &part[2 * p + 1]);
        }
#pragma omp single
        for (int64_t k = 0; k < ch; k++) {
            double sdy = 0.0, sdyx = 0.0, is = invstd[k];
            for (int64_t i = 0; i < n; i++) {
                sdy += part[2 * (i * ch + k)];
                sdyx += part[2 * (i * ch + k) + 1];
            }
            sdyx *= is;
            if (dgamma)
                dgamma[k] = (float)sdyx;
            if (dbeta)
                dbeta[k] = (float)sdy;
            cmdy[k] = (float)(sdy / (double)m);
            ck[k] = (float)(is * sdyx / (double)m);
        }
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            int64_t k = p % ch;
            v->bn_bwd_dx(dy + p * s, x + p * s, dx + p * s, s, mean[k], ck[k], cmdy[k],
                         gamma[k] * invstd[k]);
        }
    }
    if (owned)
        cnn_mem_aligned_free(part);
    return 0;
}
