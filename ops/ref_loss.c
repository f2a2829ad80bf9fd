/* Reference losses, mean over the batch as PyTorch's default reduction: cross-entropy on
 * logits with integer class labels (stable: the row maximum is subtracted), and mean squared
 * error.  Each writes the scalar loss to out[0] and, when a second output is given, the
 * gradient with respect to its first input.  Losses are cheap, so they run on one thread and
 * sum in a fixed order in double. */
#include "ops/ref_common.h"

int ref_xent_check(const op_call *c, const char *name, int64_t *n_out, int64_t *k_out, char *err, size_t errlen)
{
    char s1[64], s2[64];
    const op_tensor *xt = &c->in[0], *lt = &c->in[1];
    if (xt->rank != 2)
        return ref_fail(err, errlen, "%s: logits are %s, expected [N, K]", name,
                        ref_shape_str(xt, s1, sizeof s1));
    int64_t n = xt->d[0], k = xt->d[1];
    if (lt->rank < 1 || lt->d[0] != n || ref_inner(lt) != 1)
        return ref_fail(err, errlen, "%s: labels are %s, expected [%lld, 1] for logits %s", name,
                        ref_shape_str(lt, s1, sizeof s1), (long long)n,
                        ref_shape_str(xt, s2, sizeof s2));
    if (op_tensor_numel(&c->out[0]) != 1)
        return ref_fail(err, errlen, "%s: loss output is %s, expected a scalar", name,
                        ref_shape_str(&c->out[0], s1, sizeof s1));
    if (c->nout > 1 && !ref_same_shape(&c->out[1], xt))
        return ref_fail(err, errlen, "%s: dlogits is %s, logits are %s", name,
                        ref_shape_str(&c->out[1], s1, sizeof s1), ref_shape_str(xt, s2, sizeof s2));
    if (n < 1 || k < 1)
        return ref_fail(err, errlen, "%s: empty logits %s", name, ref_shape_str(xt, s1, sizeof s1));
    double eps = c->node->attrs.loss.label_smoothing;
    if (!(eps >= 0.0 && eps < 1.0))
        return ref_fail(err, errlen, "%s: label smoothing %g is not in [0, 1)", name, eps);
    const float *labels = lt->data;
    for (int64_t i = 0; i < n; i++) {
        float l = labels[i];
        if (!(l >= 0.0f && l < (float)k))
            return ref_fail(err, errlen, "%s: label %g out of range [0, %lld) at example %lld",
                            name, (double)l, (long long)k, (long long)i);
        if (l != floorf(l))
            return ref_fail(err, errlen, "%s: label %g is not a class index at example %lld",
                            name, (double)l, (long long)i);
    }
    *n_out = n;
    *k_out = k;
    return 0;
}

/* With label smoothing e (attrs.loss, 0 without), as PyTorch's
 * CrossEntropyLoss(label_smoothing=e):
 * loss = mean over n of (1-e) (lse - x[n,label]) + e mean_k (lse - x[n,k]), lse = logsumexp(x[n,:]);
 * dlogits[n,k] = (softmax(x[n,:])[k] - (1-e) (k == label) - e/K) / N. */
OP_REF_KERNEL(op_ref_xent_loss)
{
    const char *name = "cross_entropy";
    if (ref_check_call(c, name, 2, 2, 1, 2, err, errlen))
        return -1;
    const op_tensor *xt = &c->in[0], *lt = &c->in[1];
    int64_t n, k;
    if (ref_xent_check(c, name, &n, &k, err, errlen))
        return -1;
    const float *x = xt->data, *labels = lt->data;
    double eps = c->node->attrs.loss.label_smoothing;
    float *dx = c->nout > 1 ? c->out[1].data : NULL;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * k;
        int64_t label = (int64_t)labels[i];
        float m = -INFINITY;
        for (int64_t j = 0; j < k; j++)
            if (xr[j] > m)
                m = xr[j];
        double s = 0.0, sx = 0.0;
        for (int64_t j = 0; j < k; j++) {
            s += exp((double)xr[j] - (double)m);
            sx += (double)xr[j];
        }
        double lse = log(s) + (double)m;
        double nll = lse - (double)xr[label];
        total += eps == 0.0 ? nll : (1.0 - eps) * nll + eps * (lse - sx / (double)k);
        if (dx)
            for (int64_t j = 0; j < k; j++) {
                double p = exp((double)xr[j] - (double)m) / s;
                double target = (j == label ? 1.0 - eps : 0.0) + eps / (double)k;
                dx[i * k + j] = (float)((p - target) / (double)n);
            }
    }
    c->out[0].data[0] = (float)(total / (double)n);
    return 0;
}

int ref_mse_check(const op_call *c, const char *name, int64_t *count, char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (ref_check_call(c, name, 2, 2, 1, 2, err, errlen))
        return -1;
    const op_tensor *pt = &c->in[0], *tt = &c->in[1];
    if (pt->rank < 1 || tt->rank < 1 || op_tensor_numel(tt) != op_tensor_numel(pt) || tt->d[0] != pt->d[0])
        return ref_fail(err, errlen, "%s: target is %s, prediction is %s", name, ref_shape_str(tt, s1, sizeof s1),
                        ref_shape_str(pt, s2, sizeof s2));
    if (op_tensor_numel(&c->out[0]) != 1)
        return ref_fail(err, errlen, "%s: loss output is %s, expected a scalar", name,
                        ref_shape_str(&c->out[0], s1, sizeof s1));
    if (c->nout > 1 && !ref_same_shape(&c->out[1], pt))
        return ref_fail(err, errlen, "%s: dpred is %s, prediction is %s", name,
                        ref_shape_str(&c->out[1], s1, sizeof s1), ref_shape_str(pt, s2, sizeof s2));
    *count = op_tensor_numel(pt);
    if (*count < 1)
        return ref_fail(err, errlen, "%s: empty prediction", name);
    return 0;
}

/* loss = mean over all elements of (pred - target)^2; dpred = 2 (pred - target) / count. */
OP_REF_KERNEL(op_ref_mse_loss)
{
    int64_t count;
    if (ref_mse_check(c, "mse", &count, err, errlen))
        return -1;
    const op_tensor *pt = &c->in[0], *tt = &c->in[1];
    const float *p = pt->data, *t = tt->data;
    float *dp = c->nout > 1 ? c->out[1].data : NULL;
    double total = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)p[i] - (double)t[i];
        total += d * d;
        if (dp)
            dp[i] = (float)(2.0 * d / (double)count);
    }
    c->out[0].data[0] = (float)(total / (double)count);
    return 0;
}
