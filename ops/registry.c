/* The op registry: one table entry per op kind of compiler/ops.def, with the layer argument
 * schemas of spec section 5, typed attributes, shape rules (and their error messages, spec
 * sections 5 and 9), parameter tensors (spec section 6) and FLOP counts.
 *
 * Conventions
 * - 1-D layers (conv1d, and the pools on a [C, L] input) keep their numbers at index 1 of
 *   each [h, w] attribute pair and 1/1/0/1 (kernel or size, stride, pad, dilation) at index
 *   0, so that kernels can treat [C, L] as [C, 1, L].
 * - Output size per spatial axis: floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1
 *   (pools: dilation 1), with a true floor, so a negative numerator gives 0 or less.
 * - FLOPs are per example: a multiply-add counts 2; every other arithmetic operation on an
 *   element counts 1 (bias add, residual add, activation, average-pool sum, max-pool
 *   comparison per window element).  Copies (flatten, concat, inference dropout) count 0.
 *   Ops with several steps per element count an estimate, written next to them.
 * - FLOP rules read in[0] (and in[1] only where it is an activation: the backward weight
 *   ops' x) and the output shape, never a parameter input, so callers may pass the shapes
 *   of all of a node's inputs or of its non-parameter inputs only.
 * - grad: the gradient rules live with autodiff (compiler/grad.h); NULL where an op has none. */
#include "ops/registry.h"
#include "ops/grad.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static int fail(op_err *e, int arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(op_err *e, int arg, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->arg = arg;
    }
    return -1;
}

#define SHAPE_BUF 128

/* "[6, 28]" for messages; each call needs its own buffer. */
static const char *sstr(const op_shape *s, char *buf)
{
    return op_shape_str(s, buf, SHAPE_BUF);
}

static op_shape shape1(int64_t a)
{
    op_shape s = {.rank = 1, .d = {a}};
    return s;
}

static op_shape shape2(int64_t a, int64_t b)
{
    op_shape s = {.rank = 2, .d = {a, b}};
    return s;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Spatial output size of a window op along one axis. */
static int64_t window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation)
{
    return floor_div(in + 2 * pad - dilation * (kernel - 1) - 1, stride) + 1;
}

static const char *const axis_names[2] = {"height", "width"};

/* The axis name for messages: "length" for 1-D layers. */
static const char *axis_name(int sdims, int axis)
{
    return sdims == 1 ? "length" : axis_names[axis];
}

/* Reads an OP_ARG_INTS (or numeric OP_ARG_PAD) value into attribute order [h, w].  1-D layers
 * put the value at index 1 and `h1` at index 0, and take no tuple. */
static int read_pair(const char *op, const char *argname, int argi, const op_argval *v, int sdims,
                     int64_t h1, int64_t out[2], op_err *e)
{
    if (sdims == 1) {
        if (v->n == 2)
            return fail(e, argi, "%s: '%s' takes one int for a [C, L] input, got a tuple (%" PRId64 ", %" PRId64 ")",
                        op, argname, v->i[0], v->i[1]);
        out[0] = h1;
        out[1] = v->i[0];
    } else if (v->n == 2) {
        out[0] = v->i[0];
        out[1] = v->i[1];
    } else {
        out[0] = out[1] = v->i[0];
    }
    return 0;
}

static bool any_tensor(int nin, const op_shape *in)
{
    return nin >= 1 && in != NULL;
}

/* ---------------------------------------------------------------- convolution */

enum { CV_FILTERS, CV_KERNEL, CV_STRIDE, CV_PAD, CV_DILATION, CV_GROUPS, CV_BIAS, CV_NAME, CV_NARGS };

static const char *conv_name(int sdims)
{
    return sdims == 1 ? "conv1d" : "conv2d";
}

static int conv_check_rank(int sdims, const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "%s expects one input tensor", conv_name(sdims));
    if (in[0].rank != sdims + 1)
        return fail(e, -1, "%s expects a %s input, got %s", conv_name(sdims),
                    sdims == 1 ? "[C, L]" : "[C, H, W]", sstr(&in[0], b));
    return 0;
}

static int conv_make_attrs(int sdims, op_attrs *a, const op_argval *args, const op_shape *in, int nin,
                           op_err *e)
{
    const char *op = conv_name(sdims);
    if (conv_check_rank(sdims, in, nin, e) != 0)
        return -1;
    op_conv_attrs *c = &a->conv;
    memset(c, 0, sizeof *c);
    c->sdims = sdims;
    c->filters = args[CV_FILTERS].i[0];
    if (read_pair(op, "kernel", CV_KERNEL, &args[CV_KERNEL], sdims, 1, c->kernel, e) != 0 ||
        read_pair(op, "stride", CV_STRIDE, &args[CV_STRIDE], sdims, 1, c->stride, e) != 0 ||
        read_pair(op, "dilation", CV_DILATION, &args[CV_DILATION], sdims, 1, c->dilation, e) != 0)
        return -1;
    if (args[CV_PAD].same) {
        c->pad[0] = 0;
        for (int ax = 2 - sdims; ax < 2; ax++) {
            int64_t span = c->dilation[ax] * (c->kernel[ax] - 1);
            if (c->stride[ax] != 1)
                return fail(e, CV_PAD, "%s: pad=\"same\" needs stride 1, got stride %" PRId64, op,
                            c->stride[ax]);
            if (span % 2 != 0)
                return fail(e, CV_PAD,
                            "%s: pad=\"same\" needs an odd effective kernel, got %" PRId64
                            " (kernel %" PRId64 ", dilation %" PRId64 ")",
                            op, span + 1, c->kernel[ax], c->dilation[ax]);
            c->pad[ax] = span / 2;
        }
    } else if (read_pair(op, "pad", CV_PAD, &args[CV_PAD], sdims, 0, c->pad, e) != 0) {
        return -1;
    }
    c->groups = args[CV_GROUPS].i[0];
    int64_t C = in[0].d[0];
    if (c->groups < 1)
        return fail(e, CV_GROUPS, "%s: 'groups' must be a positive integer, got %" PRId64, op, c->groups);
    if (C % c->groups != 0)
        return fail(e, CV_GROUPS, "%s: input channels %" PRId64 " are not divisible by groups %" PRId64, op,
                    C, c->groups);
    if (c->filters % c->groups != 0)
        return fail(e, CV_GROUPS, "%s: filters %" PRId64 " are not divisible by groups %" PRId64, op,
                    c->filters, c->groups);
    c->bias = args[CV_BIAS].b;
    c->act = OP_ACT_NONE;
    return 0;
}

static int conv1d_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    return conv_make_attrs(1, a, args, in, nin, e);
}

static int conv2d_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    return conv_make_attrs(2, a, args, in, nin, e);
}

/* The convolution's own output [F, H', W'] (or [F, L']), before any fused pooling. */
static int conv_out_shape(const op_conv_attrs *c, const op_shape *x, op_shape *out, op_err *e)
{
    int sdims = c->sdims;
    const char *op = conv_name(sdims);
    char b[SHAPE_BUF];
    int64_t o[2] = {1, 1};
    for (int ax = 2 - sdims; ax < 2; ax++) {
        int64_t inl = x->d[1 + ax - (2 - sdims)];
        o[ax] = window_out(inl, c->kernel[ax], c->stride[ax], c->pad[ax], c->dilation[ax]);
        if (o[ax] < 1)
            return fail(e, -1,
                        "%s: output %s would be %" PRId64 ": input %s, kernel %" PRId64 ", stride %" PRId64
                        ", pad %" PRId64 ", dilation %" PRId64,
                        op, axis_name(sdims, ax), o[ax], sstr(x, b), c->kernel[ax], c->stride[ax], c->pad[ax],
                        c->dilation[ax]);
    }
    *out = sdims == 1 ? shape2(c->filters, o[1]) : (op_shape){.rank = 3, .d = {c->filters, o[0], o[1]}};
    return 0;
}

/* Pooled size along one axis, for the fused max pooling of a conv epilogue. */
static int fused_pool_out(const op_conv_attrs *c, const op_shape *conv_out, op_shape *out, op_err *e)
{
    int sdims = c->sdims;
    char b[SHAPE_BUF];
    *out = *conv_out;
    for (int ax = 2 - sdims; ax < 2; ax++) {
        int dim = 1 + ax - (2 - sdims);
        int64_t o = window_out(conv_out->d[dim], c->pool_size[ax], c->pool_stride[ax], c->pool_pad[ax], 1);
        if (o < 1)
            return fail(e, -1,
                        "maxpool: output %s would be %" PRId64 ": input %s, size %" PRId64 ", stride %" PRId64
                        ", pad %" PRId64,
                        axis_name(sdims, ax), o, sstr(conv_out, b), c->pool_size[ax], c->pool_stride[ax],
                        c->pool_pad[ax]);
        out->d[dim] = o;
    }
    return 0;
}

static int conv_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    const op_conv_attrs *c = &a->conv;
    if (conv_check_rank(c->sdims, in, nin, e) != 0)
        return -1;
    if (c->groups < 1 || in[0].d[0] % c->groups != 0)
        return fail(e, -1, "%s: input channels %" PRId64 " are not divisible by groups %" PRId64,
                    conv_name(c->sdims), in[0].d[0], c->groups);
    op_shape y;
    if (conv_out_shape(c, &in[0], &y, e) != 0)
        return -1;
    if (c->pool)
        return fused_pool_out(c, &y, out, e);
    *out = y;
    return 0;
}

/* The weight's shape [F, C/g, kh, kw] or [F, C/g, k] for input channels C. */
static op_shape conv_weight_shape(const op_conv_attrs *c, int64_t C)
{
    int64_t cg = c->groups > 0 ? C / c->groups : C;
    if (c->sdims == 1)
        return (op_shape){.rank = 3, .d = {c->filters, cg, c->kernel[1]}};
    return (op_shape){.rank = 4, .d = {c->filters, cg, c->kernel[0], c->kernel[1]}};
}

static int conv_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                       bool *trainable)
{
    const op_conv_attrs *c = &a->conv;
    int n = 0;
    suffix[n] = "weight";
    shapes[n] = conv_weight_shape(c, in[0].d[0]);
    trainable[n++] = true;
    if (c->bias) {
        suffix[n] = "bias";
        shapes[n] = shape1(c->filters);
        trainable[n++] = true;
    }
    return n;
}

/* 2 per multiply-add; then, per conv output element, 1 each for the bias, the residual add
 * and the activation; a fused max pool adds its window comparisons per pooled element. */
static int64_t conv_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    const op_conv_attrs *c = &a->conv;
    if (!any_tensor(nin, in) || c->groups < 1)
        return 0;
    op_shape y;
    if (conv_out_shape(c, &in[0], &y, NULL) != 0)
        return 0;
    int64_t nout = op_shape_numel(&y);
    int64_t macs = nout * (in[0].d[0] / c->groups) * c->kernel[0] * c->kernel[1];
    int64_t f = 2 * macs;
    if (c->bias)
        f += nout;
    if (c->residual)
        f += nout;
    if (c->act != OP_ACT_NONE)
        f += nout;
    if (c->pool && out)
        f += op_shape_numel(out) * c->pool_size[0] * c->pool_size[1];
    return f;
}

/* ---------------------------------------------------------------- pooling */

enum { PL_SIZE, PL_STRIDE, PL_PAD, PL_NARGS };

static int pool_check_rank(const char *op, const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "%s expects one input tensor", op);
    if (in[0].rank != 2 && in[0].rank != 3)
        return fail(e, -1, "%s expects a [C, L] or [C, H, W] input, got %s", op, sstr(&in[0], b));
    return 0;
}

static int pool_make_attrs(const char *op, op_attrs *a, const op_argval *args, const op_shape *in, int nin,
                           op_err *e)
{
    if (pool_check_rank(op, in, nin, e) != 0)
        return -1;
    op_pool_attrs *p = &a->pool;
    memset(p, 0, sizeof *p);
    int sdims = in[0].rank - 1;
    p->sdims = sdims;
    if (read_pair(op, "size", PL_SIZE, &args[PL_SIZE], sdims, 1, p->size, e) != 0 ||
        read_pair(op, "stride", PL_STRIDE, &args[PL_STRIDE], sdims, 1, p->stride, e) != 0 ||
        read_pair(op, "pad", PL_PAD, &args[PL_PAD], sdims, 0, p->pad, e) != 0)
        return -1;
    for (int ax = 2 - sdims; ax < 2; ax++) {
        /* PyTorch's rule: pad at most half the window */
        if (p->pad[ax] > p->size[ax] / 2)
            return fail(e, PL_PAD, "%s: pad %" PRId64 " is more than half the window size %" PRId64, op,
                        p->pad[ax], p->size[ax]);
    }
    return 0;
}

static int maxpool_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    return pool_make_attrs("maxpool", a, args, in, nin, e);
}

static int avgpool_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    return pool_make_attrs("avgpool", a, args, in, nin, e);
}

static int pool_shape(const char *op, const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    const op_pool_attrs *p = &a->pool;
    char b[SHAPE_BUF];
    if (pool_check_rank(op, in, nin, e) != 0)
        return -1;
    int sdims = in[0].rank - 1;
    if (p->sdims != sdims)
        return fail(e, -1, "%s: attributes are for a %d-D input, got %s", op, p->sdims, sstr(&in[0], b));
    *out = in[0];
    for (int ax = 2 - sdims; ax < 2; ax++) {
        int dim = 1 + ax - (2 - sdims);
        int64_t o = window_out(in[0].d[dim], p->size[ax], p->stride[ax], p->pad[ax], 1);
        if (o < 1)
            return fail(e, -1,
                        "%s: output %s would be %" PRId64 ": input %s, size %" PRId64 ", stride %" PRId64
                        ", pad %" PRId64,
                        op, axis_name(sdims, ax), o, sstr(&in[0], b), p->size[ax], p->stride[ax], p->pad[ax]);
        out->d[dim] = o;
    }
    return 0;
}

static int maxpool_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    return pool_shape("maxpool", a, in, nin, out, e);
}

static int avgpool_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    return pool_shape("avgpool", a, in, nin, out, e);
}

/* One comparison (max) or add (average) per window element per output element; the
 * average's division is folded into a scale and not counted separately. */
static int64_t pool_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)in;
    (void)nin;
    return out ? op_shape_numel(out) * a->pool.size[0] * a->pool.size[1] : 0;
}

/* backward: in[0] is dy, one op per window element per dy element */
static int64_t pool_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    return any_tensor(nin, in) ? op_shape_numel(&in[0]) * a->pool.size[0] * a->pool.size[1] : 0;
}

static int global_avgpool_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "global_avgpool expects one input tensor");
    if (in[0].rank < 2)
        return fail(e, -1, "global_avgpool expects a [C, L] or [C, H, W] input, got %s", sstr(&in[0], b));
    *out = shape1(in[0].d[0]);
    return 0;
}

/* one add per input element */
static int64_t global_avgpool_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)out;
    return any_tensor(nin, in) ? op_shape_numel(&in[0]) : 0;
}

/* one per dx element */
static int64_t global_avgpool_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)in;
    (void)nin;
    return out ? op_shape_numel(out) : 0;
}

/* ---------------------------------------------------------------- dense, flatten */

enum { DN_UNITS, DN_BIAS, DN_NAME, DN_NARGS };

static int dense_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in;
    (void)nin;
    (void)e;
    memset(&a->dense, 0, sizeof a->dense);
    a->dense.units = args[DN_UNITS].i[0];
    a->dense.bias = args[DN_BIAS].b;
    a->dense.act = OP_ACT_NONE;
    return 0;
}

static int dense_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "dense expects one input tensor");
    if (in[0].rank < 1)
        return fail(e, -1, "dense expects a tensor of rank 1 or more, got %s", sstr(&in[0], b));
    *out = shape1(a->dense.units);
    return 0;
}

static int dense_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                        bool *trainable)
{
    int n = 0;
    suffix[n] = "weight";
    shapes[n] = shape2(a->dense.units, op_shape_numel(&in[0]));
    trainable[n++] = true;
    if (a->dense.bias) {
        suffix[n] = "bias";
        shapes[n] = shape1(a->dense.units);
        trainable[n++] = true;
    }
    return n;
}

/* 2 per multiply-add, 1 per unit each for the bias and a fused activation, 3 per unit for a
 * fused softmax (exponential, sum, division). */
static int64_t dense_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (!any_tensor(nin, in))
        return 0;
    const op_dense_attrs *d = &a->dense;
    int64_t f = 2 * d->units * op_shape_numel(&in[0]);
    if (d->bias)
        f += d->units;
    if (d->act != OP_ACT_NONE)
        f += d->units;
    if (d->softmax)
        f += 3 * d->units;
    return f;
}

/* in: dy [U] (w not read); out: dx: one multiply-add per weight */
static int64_t dense_bwd_data_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    if (!any_tensor(nin, in) || !out)
        return 0;
    return 2 * op_shape_numel(&in[0]) * op_shape_numel(out);
}

/* in: dy [U], x [...]: one multiply-add per weight, plus the bias gradient's sum */
static int64_t dense_bwd_weights_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (nin < 2)
        return 0;
    int64_t u = op_shape_numel(&in[0]);
    return 2 * u * op_shape_numel(&in[1]) + (a->dense.bias ? u : 0);
}

static int dense_bwd_weights_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    if (nin < 2)
        return fail(e, -1, "dense_bwd_weights expects dy and x");
    *out = shape2(a->dense.units, op_shape_numel(&in[1]));
    return 0;
}

static int flatten_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (!any_tensor(nin, in))
        return fail(e, -1, "flatten expects one input tensor");
    *out = shape1(op_shape_numel(&in[0]));
    return 0;
}

/* ---------------------------------------------------------------- batchnorm, dropout */

enum { BN_EPS, BN_MOMENTUM, BN_NAME, BN_NARGS };

static int bn_check_rank(const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "batchnorm expects one input tensor");
    if (in[0].rank < 1 || in[0].rank > 3)
        return fail(e, -1, "batchnorm expects a [C], [C, L] or [C, H, W] input, got %s", sstr(&in[0], b));
    return 0;
}

static int bn_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    if (bn_check_rank(in, nin, e) != 0)
        return -1;
    double eps = args[BN_EPS].f, mom = args[BN_MOMENTUM].f;
    if (!(eps > 0.0))
        return fail(e, BN_EPS, "batchnorm: 'eps' must be a positive number, got %g", eps);
    if (!(mom >= 0.0 && mom <= 1.0))
        return fail(e, BN_MOMENTUM, "batchnorm: 'momentum' must be between 0 and 1, got %g", mom);
    memset(&a->bn, 0, sizeof a->bn);
    a->bn.eps = (float)eps;
    a->bn.momentum = (float)mom;
    a->bn.training = false;
    return 0;
}

static int bn_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (bn_check_rank(in, nin, e) != 0)
        return -1;
    *out = in[0];
    return 0;
}

static int bn_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                     bool *trainable)
{
    (void)a;
    static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        suffix[k] = names[k];
        shapes[k] = shape1(in[0].d[0]);
        trainable[k] = k < 2;
    }
    return 4;
}

/* inference: one scale and one shift per element (mean and variance folded into them);
 * training adds about 3 per element for the batch statistics. */
static int64_t bn_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (!any_tensor(nin, in))
        return 0;
    return op_shape_numel(&in[0]) * (a->bn.training ? 5 : 2);
}

/* about 8 per element: two reductions and the input gradient */
static int64_t bn_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)out;
    return any_tensor(nin, in) ? 8 * op_shape_numel(&in[0]) : 0;
}

static int dropout_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in;
    (void)nin;
    double p = args[0].f;
    if (!(p >= 0.0 && p < 1.0))
        return fail(e, 0, "dropout: 'p' must be in [0, 1), got %g", p);
    a->dropout.p = (float)p;
    a->dropout.training = false;
    return 0;
}

/* identity at inference; one multiply per element in training */
static int64_t dropout_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    return any_tensor(nin, in) && a->dropout.training ? op_shape_numel(&in[0]) : 0;
}

/* ---------------------------------------------------------------- elementwise */

static int same_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (!any_tensor(nin, in))
        return fail(e, -1, "expected an input tensor");
    *out = in[0];
    return 0;
}

/* output 0 has the shape of in[1] (maxpool_bwd's and batchnorm_bwd's x) */
static int shape_of_second(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (nin < 2 || !in)
        return fail(e, -1, "expected two input tensors");
    *out = in[1];
    return 0;
}

static int scalar_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    (void)in;
    (void)nin;
    (void)e;
    out->rank = 0;
    memset(out->d, 0, sizeof out->d);
    return 0;
}

static int set_act(op_attrs *a, op_act act, float alpha)
{
    a->act.act = act;
    a->act.alpha = alpha;
    return 0;
}

static int relu_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_RELU, 0.0f);
}

static int sigmoid_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_SIGMOID, 0.0f);
}

static int tanh_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)args, (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_TANH, 0.0f);
}

static int leaky_relu_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    (void)in, (void)nin, (void)e;
    return set_act(a, OP_ACT_LEAKY_RELU, (float)args[0].f);
}

/* k per element of input 0 */
#define ELTWISE_FLOPS(fname, k)                                                                    \
    static int64_t fname(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)      \
    {                                                                                              \
        (void)a;                                                                                   \
        (void)out;                                                                                 \
        return any_tensor(nin, in) ? (int64_t)(k)*op_shape_numel(&in[0]) : 0;                      \
    }
ELTWISE_FLOPS(flops_1, 1)        /* activations, dropout_bwd */
ELTWISE_FLOPS(flops_2, 2)        /* act_bwd: a test and a multiply */
ELTWISE_FLOPS(flops_3, 3)        /* softmax (exp, sum, divide), mse (subtract, square, sum) */
ELTWISE_FLOPS(flops_4, 4)        /* softmax_bwd; cross_entropy (exp, sum, log, subtract); sgd */
ELTWISE_FLOPS(flops_12, 12)      /* adam's update per parameter element */
#undef ELTWISE_FLOPS

static int softmax_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b[SHAPE_BUF];
    if (!any_tensor(nin, in))
        return fail(e, -1, "softmax expects one input tensor");
    if (in[0].rank < 1)
        return fail(e, -1, "softmax expects a tensor of rank 1 or more, got %s", sstr(&in[0], b));
    *out = in[0];
    return 0;
}

/* ---------------------------------------------------------------- concat, add */

static int concat_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b0[SHAPE_BUF], b1[SHAPE_BUF];
    if (nin < 2 || !in)
        return fail(e, -1, "concat expects at least 2 input tensors, got %d", nin);
    *out = in[0];
    for (int k = 1; k < nin; k++) {
        bool ok = in[k].rank == in[0].rank && in[k].rank >= 1;
        for (int d = 1; ok && d < in[0].rank; d++)
            ok = in[k].d[d] == in[0].d[d];
        if (!ok)
            return fail(e, -1,
                        "concat: input %d has shape %s, which does not match input 1's %s outside the channel axis",
                        k + 1, sstr(&in[k], b0), sstr(&in[0], b1));
        out->d[0] += in[k].d[0];
    }
    return 0;
}

static int add_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b0[SHAPE_BUF], b1[SHAPE_BUF];
    if (nin < 2 || !in)
        return fail(e, -1, "add expects at least 2 input tensors, got %d", nin);
    for (int k = 1; k < nin; k++)
        if (!op_shape_equal(&in[k], &in[0]))
            return fail(e, -1, "add: the shapes differ: %s + %s", sstr(&in[0], b0), sstr(&in[k], b1));
    *out = in[0];
    return 0;
}

/* (inputs - 1) adds per element, plus 1 for a fused activation */
static int64_t add_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    if (nin < 2 || !in)
        return 0;
    int64_t n = op_shape_numel(&in[0]);
    return (nin - 1) * n + (a->act.act != OP_ACT_NONE ? n : 0);
}

/* ---------------------------------------------------------------- backward conv */

static int conv_bwd_weights_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    if (nin < 2 || !in)
        return fail(e, -1, "conv_bwd_weights expects dy and x");
    *out = conv_weight_shape(&a->conv, in[1].d[0]);
    return 0;
}

/* in: dy (w not read); out: dx [C, ...]: one multiply-add per (dy element, weight element of
 * its filter), as in the forward conv */
static int64_t conv_bwd_data_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    const op_conv_attrs *c = &a->conv;
    if (!any_tensor(nin, in) || !out || out->rank < 1 || c->groups < 1)
        return 0;
    return 2 * op_shape_numel(&in[0]) * (out->d[0] / c->groups) * c->kernel[0] * c->kernel[1];
}

/* in: dy, x: as the forward multiply-adds, plus the bias gradient's sum */
static int64_t conv_bwd_weights_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    const op_conv_attrs *c = &a->conv;
    if (nin < 2 || !in || c->groups < 1)
        return 0;
    int64_t ndy = op_shape_numel(&in[0]);
    int64_t f = 2 * ndy * (in[1].d[0] / c->groups) * c->kernel[0] * c->kernel[1];
    return f + (c->bias ? ndy : 0);
}

/* ---------------------------------------------------------------- updates */

/* sgd: weight decay, momentum, step: about 4 per parameter element (in[0] is the parameter) */
#define sgd_flops flops_4
#define adam_flops flops_12

/* ---------------------------------------------------------------- the table */

#define NOARGS .nargs = 0
#define CONV_ARGS(tuple)                                                                           \
    .nargs = CV_NARGS,                                                                             \
    .args = {                                                                                      \
        {"filters", OP_ARG_INT, OP_ARGF_POSITIVE, NULL},                                           \
        {"kernel", OP_ARG_INTS, OP_ARGF_POSITIVE | (tuple), NULL},                                 \
        {"stride", OP_ARG_INTS, OP_ARGF_POSITIVE | (tuple), "1"},                                  \
        {"pad", OP_ARG_PAD, OP_ARGF_NONNEG | (tuple), "0"},                                        \
        {"dilation", OP_ARG_INTS, OP_ARGF_POSITIVE | (tuple), "1"},                                \
        {"groups", OP_ARG_INT, OP_ARGF_POSITIVE, "1"},                                             \
        {"bias", OP_ARG_BOOL, 0, "true"},                                                          \
        {"name", OP_ARG_STRING, 0, ""},                                                            \
    }
#define POOL_ARGS                                                                                  \
    .nargs = PL_NARGS,                                                                             \
    .args = {                                                                                      \
        {"size", OP_ARG_INTS, OP_ARGF_POSITIVE | OP_ARGF_TUPLE_OK, NULL},                          \
        {"stride", OP_ARG_INTS, OP_ARGF_POSITIVE | OP_ARGF_TUPLE_OK, "=size"},                     \
        {"pad", OP_ARG_INTS, OP_ARGF_NONNEG | OP_ARGF_TUPLE_OK, "0"},                              \
    }
#define LAYER(lo, hi) .is_layer = true, .callable = true, .min_inputs = (lo), .max_inputs = (hi)
#define INTERNAL(lo, hi) .is_layer = false, .callable = false, .min_inputs = (lo), .max_inputs = (hi)

/* One OPDEF_<ENUM> per X(ENUM, ...) of ops.def: the fields after op and name. */
#define OPDEF_CONV1D LAYER(1, 1), CONV_ARGS(0), .make_attrs = conv1d_make_attrs, .shape = conv_shape, \
    .params = conv_params, .flops = conv_flops, .grad = op_grad_conv
#define OPDEF_CONV2D LAYER(1, 1), CONV_ARGS(OP_ARGF_TUPLE_OK), .make_attrs = conv2d_make_attrs, \
    .shape = conv_shape, .params = conv_params, .flops = conv_flops, .grad = op_grad_conv
#define OPDEF_MAXPOOL LAYER(1, 1), POOL_ARGS, .make_attrs = maxpool_make_attrs, .shape = maxpool_shape, \
    .flops = pool_flops, .grad = op_grad_maxpool
#define OPDEF_AVGPOOL LAYER(1, 1), POOL_ARGS, .make_attrs = avgpool_make_attrs, .shape = avgpool_shape, \
    .flops = pool_flops, .grad = op_grad_avgpool
#define OPDEF_GLOBAL_AVGPOOL LAYER(1, 1), NOARGS, .shape = global_avgpool_shape, .flops = global_avgpool_flops, \
    .grad = op_grad_global_avgpool
#define OPDEF_DENSE LAYER(1, 1), .nargs = DN_NARGS,                                                \
    .args = {                                                                                      \
        {"units", OP_ARG_INT, OP_ARGF_POSITIVE, NULL},                                             \
        {"bias", OP_ARG_BOOL, 0, "true"},                                                          \
        {"name", OP_ARG_STRING, 0, ""},                                                            \
    },                                                                                             \
    .make_attrs = dense_make_attrs, .shape = dense_shape, .params = dense_params, .flops = dense_flops, \
    .grad = op_grad_dense
#define OPDEF_FLATTEN LAYER(1, 1), NOARGS, .shape = flatten_shape, .grad = op_grad_flatten
#define OPDEF_BATCHNORM LAYER(1, 1), .nargs = BN_NARGS,                                            \
    .args = {                                                                                      \
        {"eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-5"},                                               \
        {"momentum", OP_ARG_FLOAT, 0, "0.1"},                                                      \
        {"name", OP_ARG_STRING, 0, ""},                                                            \
    },                                                                                             \
    .make_attrs = bn_make_attrs, .shape = bn_shape, .params = bn_params, .flops = bn_flops, \
    .grad = op_grad_batchnorm
#define OPDEF_DROPOUT LAYER(1, 1), .nargs = 1, .args = {{"p", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.5"}},  \
    .make_attrs = dropout_make_attrs, .shape = same_shape, .flops = dropout_flops, .inplace = true, \
    .grad = op_grad_dropout
#define OPDEF_RELU LAYER(1, 1), .act = OP_ACT_RELU, NOARGS, .make_attrs = relu_make_attrs, .shape = same_shape, \
    .flops = flops_1, .inplace = true, .grad = op_grad_act
#define OPDEF_SIGMOID LAYER(1, 1), .act = OP_ACT_SIGMOID, NOARGS, .make_attrs = sigmoid_make_attrs, .shape = same_shape, \
    .flops = flops_1, .inplace = true, .grad = op_grad_act
#define OPDEF_TANH LAYER(1, 1), .act = OP_ACT_TANH, NOARGS, .make_attrs = tanh_make_attrs, .shape = same_shape, \
    .flops = flops_1, .inplace = true, .grad = op_grad_act
#define OPDEF_LEAKY_RELU LAYER(1, 1), .act = OP_ACT_LEAKY_RELU, .nargs = 1, .args = {{"alpha", OP_ARG_FLOAT, 0, "0.01"}},     \
    .make_attrs = leaky_relu_make_attrs, .shape = same_shape, .flops = flops_1, .inplace = true, \
    .grad = op_grad_act
#define OPDEF_SOFTMAX LAYER(1, 1), NOARGS, .shape = softmax_shape, .flops = flops_3, .grad = op_grad_softmax
#define OPDEF_CONCAT LAYER(2, OP_MAX_IN), NOARGS, .shape = concat_shape, .grad = op_grad_concat
#define OPDEF_ADD .is_layer = true, .callable = false, .min_inputs = 2, .max_inputs = 2, NOARGS,    \
    .shape = add_shape, .flops = add_flops, .inplace = true, .grad = op_grad_add

/* Backward ops: output shapes come from the forward values.  Where input shapes determine
 * output 0 a shape rule is given (the verifier checks it); where they do not (a strided
 * conv's dx, a flattened dense input, concat slices), shape is NULL and the node's maker
 * gives the output the forward value's shape. */
#define OPDEF_CONV_BWD_DATA INTERNAL(2, 2), NOARGS, .flops = conv_bwd_data_flops
#define OPDEF_CONV_BWD_WEIGHTS INTERNAL(2, 2), NOARGS, .shape = conv_bwd_weights_shape, \
    .flops = conv_bwd_weights_flops
#define OPDEF_MAXPOOL_BWD INTERNAL(2, 2), NOARGS, .shape = shape_of_second, .flops = pool_bwd_flops
#define OPDEF_AVGPOOL_BWD INTERNAL(1, 1), NOARGS, .flops = pool_bwd_flops
#define OPDEF_GLOBAL_AVGPOOL_BWD INTERNAL(1, 1), NOARGS, .flops = global_avgpool_bwd_flops
#define OPDEF_DENSE_BWD_DATA INTERNAL(2, 2), NOARGS, .flops = dense_bwd_data_flops
#define OPDEF_DENSE_BWD_WEIGHTS INTERNAL(2, 2), NOARGS, .shape = dense_bwd_weights_shape, \
    .flops = dense_bwd_weights_flops
#define OPDEF_BATCHNORM_BWD INTERNAL(5, 5), NOARGS, .shape = shape_of_second, .flops = bn_bwd_flops
#define OPDEF_DROPOUT_BWD INTERNAL(2, 2), NOARGS, .shape = same_shape, .flops = flops_1, .inplace = true
#define OPDEF_ACT_BWD INTERNAL(2, 2), NOARGS, .shape = same_shape, .flops = flops_2, .inplace = true
#define OPDEF_SOFTMAX_BWD INTERNAL(2, 2), NOARGS, .shape = same_shape, .flops = flops_4
#define OPDEF_CONCAT_BWD INTERNAL(1, 1), NOARGS
#define OPDEF_COPY INTERNAL(1, 1), NOARGS

/* Weight transforms.  bn_fold (compiler/pass_fold_bn.c): in: w, b (when the layer has a
 * bias), gamma, beta, running_mean, running_var; out: w', b'.  Output 0 has w's shape.  It
 * runs when the weights change, not per example: no FLOPs counted. */
#define OPDEF_BN_FOLD INTERNAL(5, 6), NOARGS, .shape = same_shape

/* Losses: output 0 is the scalar loss (output 1, the logits' gradient, has in[0]'s shape).
 * Updates have no outputs: they write their inputs in place. */
#define OPDEF_XENT_LOSS INTERNAL(2, 2), NOARGS, .shape = scalar_shape, .flops = flops_4
#define OPDEF_MSE_LOSS INTERNAL(2, 2), NOARGS, .shape = scalar_shape, .flops = flops_3
#define OPDEF_SGD_UPDATE INTERNAL(2, 3), NOARGS, .flops = sgd_flops
#define OPDEF_ADAM_UPDATE INTERNAL(4, 4), NOARGS, .flops = adam_flops

/* A change of memory order (attrs.reorder), made by compiler/pass_layout.c after autodiff: a
 * copy, so no FLOPs and no gradient rule; never in place (it reads and writes every element
 * at another position). */
#define OPDEF_REORDER INTERNAL(1, 1), NOARGS, .shape = same_shape

static const op_def op_table[OP_COUNT] = {
#define X(e, s) [OP_##e] = {.op = OP_##e, .name = #s, OPDEF_##e},
#include "ops/ops.def"
#undef X
};

/* The callable layers' names (every is_layer op but add), in ops.def order.  The tests check
 * that this list and the table agree. */
static const char *const layer_names[] = {
    "conv1d", "conv2d", "maxpool", "avgpool", "global_avgpool", "dense", "flatten", "batchnorm",
    "dropout", "relu", "sigmoid", "tanh", "leaky_relu", "softmax", "concat", NULL,
};

const op_def *op_def_get(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return NULL;
    return &op_table[op];
}

const op_def *op_def_find_layer(const char *name)
{
    if (!name)
        return NULL;
    for (int k = 0; k < OP_COUNT; k++)
        if (op_table[k].is_layer && op_table[k].callable && strcmp(op_table[k].name, name) == 0)
            return &op_table[k];
    return NULL;
}

const char *op_name(op_kind op)
{
    if ((int)op < 0 || op >= OP_COUNT)
        return "?";
    return op_table[op].name;
}

const char *const *op_layer_names(void)
{
    return layer_names;
}
