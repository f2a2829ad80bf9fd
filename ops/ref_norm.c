/* Reference batch normalisation over axis 1 of [N, C, ...] (rank 2 allowed), PyTorch's
 * semantics: inference uses the running statistics; training normalises with the batch mean
 * and biased variance, saves the mean and 1/sqrt(var+eps) for the backward, and updates the
 * running statistics in place with the unbiased variance.  Statistics are in double (two
 * passes: mean, then squared deviations).  Work is split over channels. */
#include "ops/ref_common.h"



int ref_bn_check(const op_call *c, const char *name, bool bwd, int64_t *n, int64_t *ch, int64_t *s, char *err,
                 size_t errlen)
{
    return ref_bn_check_layouts(c, name, bwd, true, n, ch, s, err, errlen);
}

int ref_bn_check_layouts(const op_call *c, const char *name, bool bwd, bool plain_only, int64_t *n, int64_t *ch,
                         int64_t *s, char *err, size_t errlen)
{
    if (ref_check_call_layouts(c, name, 5, 6, 1, 3, plain_only, err, errlen))
        return -1;
    const op_bn_attrs *ba = &c->node->attrs.bn;
    /* the fused epilogue's extra input: the residual (forward), the activation's output (backward) */
    bool extra = bwd ? ba->act != OP_ACT_NONE : ba->residual;
    if (c->nin != (extra ? 6 : 5))
        return ref_fail(err, errlen, "%s: expected %d inputs%s, got %d", name, extra ? 6 : 5,
                        !extra ? "" : bwd ? " (with the activation's output)" : " (with the residual)", c->nin);
    const op_tensor *xt = &c->in[bwd ? 1 : 0];
    if (xt->rank < 2)
        return ref_fail(err, errlen, "%s: %s has rank %d, expected [N, C, ...]", name, bwd ? "x" : "input", xt->rank);
    if (extra && ref_check_like_x(&c->in[5], xt, name, bwd ? "the activation's output" : "the residual", err, errlen))
        return -1;
    if (!plain_only) {
        const op_tensor *like[] = {&c->out[0], bwd ? &c->in[0] : &c->out[0], extra ? &c->in[5] : &c->out[0]};
        static const char *const names[2][3] = {{"the output", "the output", "the residual"},
                                                {"dx", "dy", "the activation's output"}};
        for (int i = 0; i < 3; i++)
            if (like[i]->layout != xt->layout)
                return ref_fail(err, errlen, "%s: %s is in another layout than %s", name, names[bwd][i],
                                bwd ? "x" : "the input");
        if (xt->layout == OP_LAYOUT_BLOCK16 && (xt->rank < 3 || xt->d[1] % 16 != 0))
            return ref_fail(err, errlen, "%s: a blocked %s needs [N, 16n, ...], got %lld channels", name,
                            bwd ? "x" : "input", (long long)xt->d[1]);
    }
    *n = xt->d[0], *ch = xt->d[1], *s = ref_spatial(xt);
    int64_t m = *n * *s, k = *ch;
    if (bwd) {
        if (ref_check_like_x(&c->in[0], xt, name, "dy", err, errlen) ||
            ref_check_like_x(&c->out[0], xt, name, "dx", err, errlen) ||
            ref_check_channel_vec(&c->in[2], k, name, "gamma", err, errlen) ||
            ref_check_channel_vec(&c->in[3], k, name, "save_mean", err, errlen) ||
            ref_check_channel_vec(&c->in[4], k, name, "save_invstd", err, errlen) ||
            (c->nout > 1 && ref_check_channel_vec(&c->out[1], k, name, "dgamma", err, errlen)) ||
            (c->nout > 2 && ref_check_channel_vec(&c->out[2], k, name, "dbeta", err, errlen)))
            return -1;
        if (m < 1)
            return ref_fail(err, errlen, "%s: no values per channel", name);
        return 0;
    }
    static const char *const vec_names[] = {"gamma", "beta", "running_mean", "running_var"};
    for (int i = 1; i < 5; i++)
        if (ref_check_channel_vec(&c->in[i], k, name, vec_names[i - 1], err, errlen))
            return -1;
    if (ref_check_like_x(&c->out[0], xt, name, "output", err, errlen))
        return -1;
    const op_bn_attrs *a = &c->node->attrs.bn;
    if (!(a->eps >= 0.0f) || !(a->momentum >= 0.0f && a->momentum <= 1.0f))
        return ref_fail(err, errlen, "%s: bad eps %g or momentum %g", name, (double)a->eps, (double)a->momentum);
    if (!a->training) {
        if (c->nout != 1)
            return ref_fail(err, errlen, "%s: inference makes 1 output, got %d", name, c->nout);
        const float *rvar = c->in[4].data;
        for (int64_t i = 0; i < k; i++)
            if (!((double)rvar[i] + (double)a->eps > 0.0))
                return ref_fail(err, errlen, "%s: running_var[%lld] = %g is not positive", name, (long long)i,
                                (double)rvar[i]);
        return 0;
    }
    if (c->nout != 3)
        return ref_fail(err, errlen, "%s: training makes 3 outputs (y, save_mean, save_invstd), got %d", name,
                        c->nout);
    if (ref_check_channel_vec(&c->out[1], k, name, "save_mean", err, errlen) ||
        ref_check_channel_vec(&c->out[2], k, name, "save_invstd", err, errlen))
        return -1;
    if (m < 2)
        return ref_fail(err, errlen, "%s: training needs more than 1 value per channel, got %lld", name,
                        (long long)m);
    return 0;
}

/* The fused epilogue of a normalised value v at element e: + residual, then the activation,
 * rounded as the unfused sequence batchnorm -> add (in double) -> activation rounds. */
static inline float bn_epilogue(const op_bn_attrs *a, float v, const float *res, int64_t e)
{
    if (res)
        v = (float)((double)v + (double)res[e]);
    return op_apply_act(a->act, a->alpha, v);
}

OP_REF_KERNEL(op_ref_batchnorm)
{
    int64_t n, ch, s, m;
    if (ref_bn_check(c, "batchnorm", false, &n, &ch, &s, err, errlen))
        return -1;
    m = n * s;
    const op_bn_attrs *a = &c->node->attrs.bn;
    const op_tensor *xt = &c->in[0];
    const float *x = xt->data, *gamma = c->in[1].data, *beta = c->in[2].data;
    const float *res = a->residual ? c->in[5].data : NULL;
    float *rmean = c->in[3].data, *rvar = c->in[4].data, *y = c->out[0].data;
    double eps = a->eps;

    if (!a->training) {
#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
        for (int64_t k = 0; k < ch; k++) {
            double invstd = 1.0 / sqrt((double)rvar[k] + eps), mu = rmean[k];
            double g = gamma[k], b = beta[k];
            for (int64_t i = 0; i < n; i++) {
                const float *xp = x + (i * ch + k) * s;
                float *yp = y + (i * ch + k) * s;
                for (int64_t j = 0; j < s; j++)
                    yp[j] = bn_epilogue(a, (float)(((double)xp[j] - mu) * invstd * g + b), res,
                                        (i * ch + k) * s + j);
            }
        }
        return 0;
    }

    float *save_mean = c->out[1].data, *save_invstd = c->out[2].data;
    double mom = a->momentum;

    /* x is (N, C, S): per channel k, mean and variance over N*S values */
#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t k = 0; k < ch; k++) {
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * ch + k) * s;
            for (int64_t j = 0; j < s; j++)
                sum += xp[j];
        }
        double mu = sum / (double)m, sq = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * ch + k) * s;
            for (int64_t j = 0; j < s; j++) {
                double d = (double)xp[j] - mu;
                sq += d * d;
            }
        }
        double var = sq / (double)m, invstd = 1.0 / sqrt(var + eps);
        double g = gamma[k], b = beta[k];
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * ch + k) * s;
            float *yp = y + (i * ch + k) * s;
            for (int64_t j = 0; j < s; j++)
                yp[j] = bn_epilogue(a, (float)(((double)xp[j] - mu) * invstd * g + b), res, (i * ch + k) * s + j);
        }
        save_mean[k] = (float)mu;
        save_invstd[k] = (float)invstd;
        rmean[k] = (float)((1.0 - mom) * rmean[k] + mom * mu);
        rvar[k] = (float)((1.0 - mom) * rvar[k] + mom * var * (double)m / (double)(m - 1));
    }
    return 0;
}

/* With xhat = (x - mean) * invstd and M = N*S values per channel:
 *   dbeta = sum dy,  dgamma = sum dy*xhat,
 *   dx = gamma * invstd * (dy - dbeta/M - xhat * dgamma/M). */
OP_REF_KERNEL(op_ref_batchnorm_bwd)
{
    int64_t n, ch, s, m;
    if (ref_bn_check(c, "batchnorm_bwd", true, &n, &ch, &s, err, errlen))
        return -1;
    m = n * s;
    const op_tensor *dyt = &c->in[0], *xt = &c->in[1];
    const float *dy = dyt->data, *x = xt->data, *gamma = c->in[2].data;
    const float *mean = c->in[3].data, *invstd = c->in[4].data;
    float *dx = c->out[0].data;
    float *dgamma = c->nout > 1 ? c->out[1].data : NULL;
    float *dbeta = c->nout > 2 ? c->out[2].data : NULL;
    /* a fused activation: dy is its output's gradient, in[5] its output */
    op_act act = c->node->attrs.bn.act;
    float alpha = c->node->attrs.bn.alpha;
    const float *ay = act != OP_ACT_NONE ? c->in[5].data : NULL;

#pragma omp parallel for schedule(static) num_threads(ref_threads(c))
    for (int64_t k = 0; k < ch; k++) {
        double mu = mean[k], is = invstd[k], sdy = 0.0, sdyx = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * ch + k) * s, *dyp = dy + (i * ch + k) * s;
            const float *yp = ay ? ay + (i * ch + k) * s : NULL;
            for (int64_t j = 0; j < s; j++) {
                float g = yp ? op_act_grad(act, alpha, dyp[j], yp[j]) : dyp[j];
                sdy += g;
                sdyx += (double)g * (((double)xp[j] - mu) * is);
            }
        }
        double scale = (double)gamma[k] * is, mdy = sdy / (double)m, mdyx = sdyx / (double)m;
        for (int64_t i = 0; i < n; i++) {
            const float *xp = x + (i * ch + k) * s, *dyp = dy + (i * ch + k) * s;
            const float *yp = ay ? ay + (i * ch + k) * s : NULL;
            float *dxp = dx + (i * ch + k) * s;
            for (int64_t j = 0; j < s; j++) {
                float g = yp ? op_act_grad(act, alpha, dyp[j], yp[j]) : dyp[j];
                double xhat = ((double)xp[j] - mu) * is;
                dxp[j] = (float)(scale * ((double)g - mdy - xhat * mdyx));
            }
        }
        if (dgamma)
            dgamma[k] = (float)sdyx;
        if (dbeta)
            dbeta[k] = (float)sdy;
    }
    return 0;
}

/* Batchnorm folded into the layer before it (weights-only):
 *   s = gamma / sqrt(var + eps);  w' = w * s per output channel;  b' = (b - mean) * s + beta
 * in: w [F, ...], b [F] (when nin is 6), gamma, beta, running_mean, running_var [F]
 * out: w' (w's shape), b' [F] */
OP_REF_KERNEL(op_ref_bn_fold)
{
    const char *name = "bn_fold";
    if (ref_check_call(c, name, 5, 6, 2, 2, err, errlen))
        return -1;
    bool has_bias = c->nin == 6;
    const op_tensor *w = &c->in[0];
    int64_t f = w->rank >= 1 ? w->d[0] : 0;
    if (f < 1 || op_tensor_numel(&c->out[0]) != op_tensor_numel(w))
        return ref_fail(err, errlen, "%s: the folded weight does not match the weight", name);
    int first = has_bias ? 2 : 1;
    if ((has_bias && ref_check_channel_vec(&c->in[1], f, name, "bias", err, errlen)) ||
        ref_check_channel_vec(&c->in[first], f, name, "gamma", err, errlen) ||
        ref_check_channel_vec(&c->in[first + 1], f, name, "beta", err, errlen) ||
        ref_check_channel_vec(&c->in[first + 2], f, name, "running_mean", err, errlen) ||
        ref_check_channel_vec(&c->in[first + 3], f, name, "running_var", err, errlen) ||
        ref_check_channel_vec(&c->out[1], f, name, "folded bias", err, errlen))
        return -1;
    const float *b = has_bias ? c->in[1].data : NULL;
    const float *gamma = c->in[first].data, *beta = c->in[first + 1].data;
    const float *mean = c->in[first + 2].data, *var = c->in[first + 3].data;
    double eps = c->node->attrs.bn.eps;
    int64_t per = op_tensor_numel(w) / f;
    for (int64_t k = 0; k < f; k++) {
        double s = (double)gamma[k] / sqrt((double)var[k] + eps);
        for (int64_t i = 0; i < per; i++)
            c->out[0].data[k * per + i] = (float)((double)w->data[k * per + i] * s);
        c->out[1].data[k] = (float)(((b ? (double)b[k] : 0.0) - (double)mean[k]) * s + (double)beta[k]);
    }
    return 0;
}
