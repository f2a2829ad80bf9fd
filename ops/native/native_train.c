/* Native losses, optimiser updates and gradient clipping, the semantics of ops/ref_loss.c and
 * ops/ref_optim.c (PyTorch's CrossEntropyLoss with label smoothing, MSELoss, SGD with
 * momentum / Nesterov / L2 weight decay, Adam, AdamW, clip_grad_norm_).
 *
 * The updates run in float vectors over fixed chunks in parallel (simd_common.h); their
 * constants are rounded to float here (lr, momentum, weight decay, betas, eps, the bias
 * corrections 1/(1-b1^t) and 1/(1-b2^t), computed in double first).  The reference computes
 * each element in double and rounds the new param, velocity and moments once, so results may
 * differ from it in the last bit of each updated value (about 1e-7 relative per step).
 * The losses are small (one row per example): cross-entropy works per row in float
 * (exponentials, their sum, the gradient) and sums the batch's loss in double; mse likewise.
 * grad_sqnorm sums squares in float vectors over fixed chunks and the chunks in double. */
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/native/native_par.h"
#include "ops/native/simd.h"

#define CHUNK NAT_CHUNK

/* ---- losses */

int op_native_xent_loss(op_call *c, char *err, size_t errlen)
{
    const char *name = "native cross_entropy";
    if (nat_check_call(c, name, 2, 2, 1, 2, true, err, errlen))
        return -1;
    const op_tensor *xt = &c->in[0], *lt = &c->in[1];
    int64_t n, k;
    if (ref_xent_check(c, name, &n, &k, err, errlen))
        return -1;
    const float *x = xt->data, *labels = lt->data;
    double eps = c->node->attrs.loss.label_smoothing;
    float *dx = c->nout > 1 ? c->out[1].data : NULL;
    const float fe = (float)eps, on = (float)(1.0 - eps), off = (float)(eps / (double)k);
    const float inv_n = (float)(1.0 / (double)n);
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x + i * k;
        int64_t label = (int64_t)labels[i];
        float m = -INFINITY;
        for (int64_t j = 0; j < k; j++)
            m = xr[j] > m ? xr[j] : m;
        float s = 0.0f, sx = 0.0f;
        for (int64_t j = 0; j < k; j++) {
            s += expf(xr[j] - m);
            sx += xr[j];
        }
        float lse = logf(s) + m;
        float nll = lse - xr[label];
        total += eps == 0.0 ? (double)nll
                            : (double)(on * nll + fe * (lse - sx / (float)k));
        if (dx) {
            float inv_s = 1.0f / s;
            float *dr = dx + i * k;
            for (int64_t j = 0; j < k; j++) {
                float p = expf(xr[j] - m) * inv_s;
                float target = (j == label ? on : 0.0f) + off;
                dr[j] = (p - target) * inv_n;
            }
        }
    }
    c->out[0].data[0] = (float)(total / (double)n);
    return 0;
}

int op_native_mse_loss(op_call *c, char *err, size_t errlen)
{
    int64_t count;
    if (ref_mse_check(c, "native mse", &count, err, errlen))
        return -1;
    const op_tensor *pt = &c->in[0], *tt = &c->in[1];
    const float *p = pt->data, *t = tt->data;
    float *dp = c->nout > 1 ? c->out[1].data : NULL;
    const float two_n = (float)(2.0 / (double)count);
    double total = 0.0;
    for (int64_t o = 0; o < count; o += CHUNK) {
        int64_t len = count - o < CHUNK ? count - o : CHUNK;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int64_t i = o; i < o + len; i++) {
            float d = p[i] - t[i];
            part += d * d;
        }
        total += part;
        if (dp)
#pragma omp simd
            for (int64_t i = o; i < o + len; i++)
                dp[i] = (p[i] - t[i]) * two_n;
    }
    c->out[0].data[0] = (float)(total / (double)count);
    return 0;
}

/* ---- optimiser updates */



int op_native_sgd_update(op_call *c, char *err, size_t errlen)
{
    const char *name = "native sgd_update";
    if (nat_check_call(c, name, 2, 4, 0, 0, true, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    bool momentum = a->momentum != 0.0f;
    int want = (momentum ? 3 : 2) + (a->clip ? 1 : 0);
    if (c->nin != want)
        return ref_fail(err, errlen, "%s: expected %d inputs (momentum %g%s), got %d", name, want,
                        (double)a->momentum, a->clip ? ", clipped" : "", c->nin);
    op_native_sgd k = {.lr = (float)a->lr, .momentum = (float)a->momentum,
                       .wd = (float)a->weight_decay, .has_velocity = momentum,
                       .nesterov = a->nesterov};
    if (ref_optim_grad_scale(c, name, &k.scale, err, errlen))
        return -1;
    if (a->nesterov && !momentum)
        return ref_fail(err, errlen, "%s: nesterov needs a momentum", name);
    if (ref_check_numel_like(&c->in[1], &c->in[0], name, "grad", err, errlen) ||
        (momentum && ref_check_numel_like(&c->in[2], &c->in[0], name, "velocity", err, errlen)))
        return -1;
    float *p = c->in[0].data, *v = momentum ? c->in[2].data : NULL;
    const float *grad = c->in[1].data;
    const op_native_simd *vt = op_native_simd_table();
    int64_t total = op_tensor_numel(&c->in[0]);
    NAT_CHUNKED(nat_threads(c), total, vt->sgd(p + o, grad + o, v ? v + o : NULL, len, &k));
    return 0;
}

static int adam_like(op_call *c, const char *name, bool decoupled, char *err, size_t errlen)
{
    if (nat_check_call(c, name, 4, 5, 0, 0, true, err, errlen))
        return -1;
    const op_optim_attrs *a = &c->node->attrs.optim;
    if (ref_adam_check(c, name, err, errlen))
        return -1;
    op_native_adam k;
    if (ref_optim_grad_scale(c, name, &k.scale, err, errlen))
        return -1;
    double lr = a->lr, wd = a->weight_decay, b1 = a->beta1, b2 = a->beta2;
    double bc1 = 1.0 - pow(b1, (double)c->step), bc2 = 1.0 - pow(b2, (double)c->step);
    k.decay = decoupled ? (float)(1.0 - lr * wd) : 1.0f;
    k.l2 = decoupled ? 0.0f : (float)wd;
    k.b1 = (float)b1;
    k.a1 = (float)(1.0 - b1);
    k.b2 = (float)b2;
    k.a2 = (float)(1.0 - b2);
    k.step = (float)(lr / bc1);
    k.inv_bc2 = (float)(1.0 / bc2);
    k.eps = (float)a->eps;
    float *p = c->in[0].data, *m = c->in[2].data, *v = c->in[3].data;
    const float *grad = c->in[1].data;
    const op_native_simd *vt = op_native_simd_table();
    int64_t total = op_tensor_numel(&c->in[0]);
    NAT_CHUNKED(nat_threads(c), total, vt->adam(p + o, grad + o, m + o, v + o, len, &k));
    return 0;
}

int op_native_adam_update(op_call *c, char *err, size_t errlen)
{
    return adam_like(c, "native adam_update", false, err, errlen);
}

int op_native_adamw_update(op_call *c, char *err, size_t errlen)
{
    return adam_like(c, "native adamw_update", true, err, errlen);
}

/* ---- clip_grad_norm */

int op_native_grad_sqnorm(op_call *c, char *err, size_t errlen)
{
    const char *name = "native grad_sqnorm";
    if (nat_check_call(c, name, 1, OP_MAX_IN, 1, 1, true, err, errlen))
        return -1;
    if (op_tensor_numel(&c->out[0]) != 1)
        return ref_fail(err, errlen, "%s: the output is not a scalar", name);
    bool acc = c->node->attrs.clip.accumulate;
    if (acc && op_tensor_numel(&c->in[0]) != 1)
        return ref_fail(err, errlen, "%s: the partial sum is not a scalar", name);
    const op_native_simd *vt = op_native_simd_table();
    double sum = acc ? (double)c->in[0].data[0] : 0.0;
    for (int k = acc ? 1 : 0; k < c->nin; k++) {
        const float *g = c->in[k].data;
        int64_t n = op_tensor_numel(&c->in[k]);
        for (int64_t o = 0; o < n; o += CHUNK)
            sum += (double)vt->sumsq(g + o, n - o < CHUNK ? n - o : CHUNK);
    }
    c->out[0].data[0] = (float)sum;
    return 0;
}
