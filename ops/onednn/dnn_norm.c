/* oneDNN batch normalization, x [N,C,...] viewed as [N,C,1,S], in plain order or channels-last
 * (x, y, dy, dx share one layout; the per-channel vectors have none).
 *
 *   inference: x, gamma, beta, running_mean, running_var -> y          (use_global_stats)
 *   training:  same inputs -> y, save_mean, save_invstd; running stats updated in place
 *              (oneDNN gives the batch mean and biased variance; here the variance becomes
 *              save_invstd = 1/sqrt(var+eps) and the running variance takes the unbiased one)
 *   batchnorm_bwd: dy, x, gamma, save_mean, save_invstd -> dx, dgamma, dbeta
 *              (oneDNN wants the variance: var = 1/invstd^2 - eps, recomputed each run)
 * Fused epilogues (compiler/pass_fuse.c): batchnorm + residual (a sixth input) + activation
 * as more steps in place on y; batchnorm_bwd with an activation (dy its output's gradient, a
 * sixth input its output) as the activation's backward into dx, then the normalisation's
 * backward in place on dx. */
#include <math.h>

#include "ops/onednn/dnn_common.h"

/* mark/memid use: memid[0] = the owned variance buffer */

/* The layout oneDNN is told for the call's tensors: channels-last with exactly 16 channels is
 * its blocked layout (nChw16c) byte for byte, and its batchnorm runs that layout's kernels
 * much faster than its channels-last ones (16x32x32 at batch 64, bench_native --mem, three
 * interleaved pairs: forward training 9.3-10.1 -> 13.0-15.4 GB/s on one thread, 19.8-22.1 ->
 * 29.7-37.7 on two; backward 9.6-9.8 -> 17.2-17.8 and 18.4-19.3 -> 32.3-36.6), which is
 * ResNet-20's first stage.  Its convolutions gain nothing so (they keep channels-last). */
static op_layout bn_layout(const op_call *c, const int64_t *dims)
{
    op_layout l = op_dnn_call_layout(c);
    return l == OP_LAYOUT_NHWC && dims[1] == 16 ? OP_LAYOUT_BLOCK16 : l;
}

static int bn_geom(const op_tensor *x, int64_t dims[4], char *err, size_t errlen)
{
    if (x->rank < 2) return op_dnn_errf(err, errlen, "oneDNN batchnorm: expected x [N,C,...]");
    dims[0] = x->d[0];
    dims[1] = x->d[1];
    dims[2] = 1;
    dims[3] = op_dnn_inner(x) / x->d[1];
    return 0;
}

static int bn_check_vec(const op_tensor *t, int64_t ch, const char *name, char *err, size_t errlen)
{
    if (op_dnn_inner(t) * (t->rank > 0 ? t->d[0] : 1) != ch)
        return op_dnn_errf(err, errlen, "oneDNN batchnorm: %s must have %lld values", name, (long long)ch);
    return 0;
}

static int bn_pd(const void *desc, const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                 char *err, size_t errlen)
{
    dnnl_primitive_attr_t attr;
    if (op_dnn_attr(&attr, err, errlen)) return -1;
    dnnl_status_t s = dnnl_primitive_desc_create(pd, desc, attr, op_dnn_engine(), hint);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return op_dnn_fail(s, "batch normalization", err, errlen);
    return 0;
}

/* ---- forward */

static int bn_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_bn_attrs *a = &c->node->attrs.bn;
    int nin = a->residual ? 6 : 5;
    if (c->nin != nin || c->nout != (a->training ? 3 : 1))
        return op_dnn_errf(err, errlen, "oneDNN batchnorm: expected %d inputs and %d outputs", nin, a->training ? 3 : 1);
    if (a->residual && op_dnn_inner(&c->in[5]) != op_dnn_inner(&c->in[0]))
        return op_dnn_errf(err, errlen, "oneDNN batchnorm: the residual differs in shape from x");
    int64_t dims[4];
    if (bn_geom(&c->in[0], dims, err, errlen)) return -1;
    int64_t ch = dims[1];
    for (int i = 1; i < 5; i++)
        if (bn_check_vec(&c->in[i], ch, "each parameter", err, errlen)) return -1;
    for (int i = 1; i < c->nout; i++)
        if (bn_check_vec(&c->out[i], ch, "each saved statistic", err, errlen)) return -1;
    if (a->training && dims[0] * dims[3] < 2)
        return op_dnn_errf(err, errlen, "oneDNN batchnorm: training needs more than 1 value per channel");
    if (op_dnn_one_layout(c, "batchnorm", err, errlen)) return -1;
    dnnl_memory_desc_t md = op_dnn_md_layout(4, dims, bn_layout(c, dims)), vmd = op_dnn_md(1, &ch);
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (a->training ? 0u : (unsigned)dnnl_use_global_stats);
    dnnl_batch_normalization_desc_t d;
    OP_DNN_TRY(dnnl_batch_normalization_forward_desc_init(
                   &d, a->training ? dnnl_forward_training : dnnl_forward_inference, &md, a->eps, flags),
               "batch normalization descriptor");
    dnnl_primitive_desc_t pd = NULL;
    if (bn_pd(&d, NULL, &pd, err, errlen)) return -1;
    int rc = -1;
    int x = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int gamma = x < 0 ? -1 : op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 1, err, errlen);
    int beta = gamma < 0 ? -1 : op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 2, err, errlen);
    int y = beta < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    if (y < 0) goto done;
    int mean, var;
    if (a->training) {
        mean = op_dnn_mem_bound(p, &vmd, OP_DNN_OUT, 1, err, errlen);
        var = mean < 0 ? -1 : op_dnn_mem_own(p, &vmd, err, errlen);
        p->memid[0] = var;
    } else {
        mean = op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 3, err, errlen);
        var = mean < 0 ? -1 : op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 4, err, errlen);
    }
    if (var < 0) goto done;
    p->main_step = op_dnn_prim(p, pd, err, errlen, 6, DNNL_ARG_SRC, x, DNNL_ARG_SCALE, gamma, DNNL_ARG_SHIFT,
                               beta, DNNL_ARG_MEAN, mean, DNNL_ARG_VARIANCE, var, DNNL_ARG_DST, y);
    if (p->main_step < 0) goto done;
    /* the fused epilogue: + residual, activation, in place on y */
    if (a->residual) {
        int src[2] = {y, op_dnn_mem_bound(p, &md, OP_DNN_IN, 5, err, errlen)};
        if (src[1] < 0 || op_dnn_sum_step(p, &md, 2, src, y, err, errlen) < 0) goto done;
    }
    if (a->act != OP_ACT_NONE && op_dnn_act_step(p, &md, a->act, a->alpha, y, y, err, errlen) < 0) goto done;
    rc = 0;
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int bn_prepare(op_call *c, char *err, size_t errlen)
{
    return op_dnn_prepare(c, bn_build, err, errlen);
}

static int bn_run(op_call *c, char *err, size_t errlen)
{
    op_dnn_prog *p = op_dnn_ready(c, bn_build, err, errlen);
    if (!p || op_dnn_exec(p, c, 0, p->nsteps, err, errlen)) return -1;
    const op_bn_attrs *a = &c->node->attrs.bn;
    if (!a->training) return 0;
    /* saved inverse std and the running statistics (unbiased variance), per channel */
    int64_t ch = c->in[0].d[1], count = c->in[0].d[0] * (op_dnn_inner(&c->in[0]) / ch);
    const float *var = op_dnn_mem_data(p, p->memid[0]), *mean = c->out[1].data;
    float *invstd = c->out[2].data, *rm = c->in[3].data, *rv = c->in[4].data;
    double unbias = count > 1 ? (double)count / (double)(count - 1) : 1.0;
    float m = a->momentum;
    for (int64_t i = 0; i < ch; i++) {
        invstd[i] = (float)(1.0 / sqrt((double)var[i] + (double)a->eps));
        rm[i] = (1.0f - m) * rm[i] + m * mean[i];
        rv[i] = (1.0f - m) * rv[i] + m * (float)(var[i] * unbias);
    }
    return 0;
}

const op_kernel op_dnn_batchnorm_kernel = {bn_run, bn_prepare, op_dnn_release, NULL, OP_LAYOUT_EITHER, true};

/* ---- backward */

static int bn_bwd_build(op_dnn_prog *p, const op_call *c, char *err, size_t errlen)
{
    const op_bn_attrs *a = &c->node->attrs.bn;
    int nin = a->act != OP_ACT_NONE ? 6 : 5;
    if (c->nin != nin || c->nout < 1 || c->nout > 3)
        return op_dnn_errf(err, errlen, "oneDNN batchnorm_bwd: expected %d inputs and 1 to 3 outputs", nin);
    if (nin == 6 && op_dnn_inner(&c->in[5]) != op_dnn_inner(&c->in[1]))
        return op_dnn_errf(err, errlen, "oneDNN batchnorm_bwd: the activation's output differs in shape from x");
    int64_t dims[4];
    if (bn_geom(&c->in[1], dims, err, errlen)) return -1;
    int64_t ch = dims[1];
    if (op_dnn_inner(&c->in[0]) != op_dnn_inner(&c->in[1]) || op_dnn_inner(&c->out[0]) != op_dnn_inner(&c->in[1]))
        return op_dnn_errf(err, errlen, "oneDNN batchnorm_bwd: dy, x and dx differ in shape");
    for (int i = 2; i < 5; i++)
        if (bn_check_vec(&c->in[i], ch, "gamma and the saved statistics", err, errlen)) return -1;
    for (int i = 1; i < c->nout; i++)
        if (bn_check_vec(&c->out[i], ch, "dgamma and dbeta", err, errlen)) return -1;
    if (op_dnn_one_layout(c, "batchnorm_bwd", err, errlen)) return -1;
    dnnl_memory_desc_t md = op_dnn_md_layout(4, dims, bn_layout(c, dims)), vmd = op_dnn_md(1, &ch);
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_batch_normalization_desc_t fd, bd;
    OP_DNN_TRY(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &md, a->eps, flags),
               "batch normalization descriptor");
    OP_DNN_TRY(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md, a->eps, flags),
               "batch normalization backward descriptor");
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int rc = -1;
    if (bn_pd(&fd, NULL, &hint, err, errlen) || bn_pd(&bd, hint, &pd, err, errlen)) goto done;
    int dy = op_dnn_mem_bound(p, &md, OP_DNN_IN, 0, err, errlen);
    int x = dy < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_IN, 1, err, errlen);
    int gamma = x < 0 ? -1 : op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 2, err, errlen);
    int mean = gamma < 0 ? -1 : op_dnn_mem_bound(p, &vmd, OP_DNN_IN, 3, err, errlen);
    int var = mean < 0 ? -1 : op_dnn_mem_own(p, &vmd, err, errlen);
    int dx = var < 0 ? -1 : op_dnn_mem_bound(p, &md, OP_DNN_OUT, 0, err, errlen);
    /* dgamma and dbeta are optional outputs: oneDNN computes them anyway */
    int dgamma = dx < 0 ? -1
                        : c->nout > 1 ? op_dnn_mem_bound(p, &vmd, OP_DNN_OUT, 1, err, errlen)
                                      : op_dnn_mem_own(p, &vmd, err, errlen);
    int dbeta = dgamma < 0 ? -1
                           : c->nout > 2 ? op_dnn_mem_bound(p, &vmd, OP_DNN_OUT, 2, err, errlen)
                                         : op_dnn_mem_own(p, &vmd, err, errlen);
    /* with use_shift the primitive counts a shift among its inputs, though dx does not
     * depend on it: give it zeros */
    int beta = dbeta < 0 ? -1 : op_dnn_mem_own(p, &vmd, err, errlen);
    if (beta < 0) goto done;
    p->memid[0] = var;
    if (a->act != OP_ACT_NONE) {
        /* a fused activation: the gradient at its input into dx first, then the
         * normalisation's backward in place on dx */
        int ay = op_dnn_mem_bound(p, &md, OP_DNN_IN, 5, err, errlen);
        if (ay < 0 || op_dnn_act_bwd_step(p, &md, a->act, a->alpha, dy, ay, dx, err, errlen) < 0) goto done;
        dy = dx;
    }
    p->main_step = op_dnn_prim(p, pd, err, errlen, 9, DNNL_ARG_SRC, x, DNNL_ARG_MEAN, mean, DNNL_ARG_VARIANCE,
                               var, DNNL_ARG_SCALE, gamma, DNNL_ARG_SHIFT, beta, DNNL_ARG_DIFF_DST, dy,
                               DNNL_ARG_DIFF_SRC, dx, DNNL_ARG_DIFF_SCALE, dgamma, DNNL_ARG_DIFF_SHIFT, dbeta);
    rc = p->main_step < 0 ? -1 : 0;
done:
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int bn_bwd_prepare(op_call *c, char *err, size_t errlen)
{
    return op_dnn_prepare(c, bn_bwd_build, err, errlen);
}

static int bn_bwd_run(op_call *c, char *err, size_t errlen)
{
    op_dnn_prog *p = op_dnn_ready(c, bn_bwd_build, err, errlen);
    if (!p) return -1;
    const op_bn_attrs *a = &c->node->attrs.bn;
    int64_t ch = c->in[1].d[1];
    const float *invstd = c->in[4].data;
    float *var = op_dnn_mem_data(p, p->memid[0]);
    if (!invstd) return op_dnn_errf(err, errlen, "oneDNN batchnorm_bwd: save_invstd has no data");
    for (int64_t i = 0; i < ch; i++) {
        double is = invstd[i];
        var[i] = (float)(1.0 / (is * is) - (double)a->eps);
    }
    return op_dnn_exec(p, c, 0, p->nsteps, err, errlen);
}

const op_kernel op_dnn_batchnorm_bwd_kernel = {bn_bwd_run, bn_bwd_prepare, op_dnn_release, NULL,
                                               OP_LAYOUT_EITHER, true};
