/* Convolutions: conv1d, conv2d, conv3d and their backward ops (conv_bwd_data, conv_bwd_weights,
 * shared by all three: the attributes' sdims says which). */
#include "ops/desc_common.h"

/* ---------------------------------------------------------------- convolution */

enum { CV_FILTERS, CV_KERNEL, CV_STRIDE, CV_PAD, CV_DILATION, CV_GROUPS, CV_BIAS, CV_NAME, CV_NARGS };

static const char *conv_name(int sdims)
{
    return sdims == 1 ? "conv1d" : sdims == 2 ? "conv2d" : "conv3d";
}

/* The kernel's depth (1 below 3-D) */
static int64_t conv_kd(const op_conv_attrs *c)
{
    return c->sdims == 3 ? c->kernel_d : 1;
}

static int conv_check_rank(int sdims, const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "%s expects one input tensor", conv_name(sdims));
    if (in[0].rank != sdims + 1)
        return op_desc_fail(e, -1, "%s expects a %s input, got %s", conv_name(sdims),
                            sdims == 1 ? "[C, L]" : sdims == 2 ? "[C, H, W]" : "[C, D, H, W]",
                            op_desc_sstr(&in[0], b));
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
    /* the depth axis: 1, 1, 0, 1 below 3-D */
    c->kernel_d = c->stride_d = c->dilation_d = 1;
    c->pad_d = 0;
    if (sdims == 3) {
        if (op_desc_read_triple(op, "kernel", CV_KERNEL, &args[CV_KERNEL], &c->kernel_d, c->kernel, e) != 0 ||
            op_desc_read_triple(op, "stride", CV_STRIDE, &args[CV_STRIDE], &c->stride_d, c->stride, e) != 0 ||
            op_desc_read_triple(op, "dilation", CV_DILATION, &args[CV_DILATION], &c->dilation_d, c->dilation, e) !=
                0)
            return -1;
    } else if (op_desc_read_pair(op, "kernel", CV_KERNEL, &args[CV_KERNEL], sdims, 1, c->kernel, e) != 0 ||
               op_desc_read_pair(op, "stride", CV_STRIDE, &args[CV_STRIDE], sdims, 1, c->stride, e) != 0 ||
               op_desc_read_pair(op, "dilation", CV_DILATION, &args[CV_DILATION], sdims, 1, c->dilation, e) != 0) {
        return -1;
    }
    if (args[CV_PAD].same) {
        c->pad[0] = 0;
        /* axes in the order depth (3-D only), height, width: pointers into the attributes */
        int64_t *k[3] = {&c->kernel_d, &c->kernel[0], &c->kernel[1]};
        int64_t *s[3] = {&c->stride_d, &c->stride[0], &c->stride[1]};
        int64_t *d[3] = {&c->dilation_d, &c->dilation[0], &c->dilation[1]};
        int64_t *p[3] = {&c->pad_d, &c->pad[0], &c->pad[1]};
        for (int ax = sdims == 3 ? 0 : 3 - sdims; ax < 3; ax++) {
            int64_t span;
            if (!ck_mul_i64(*d[ax], *k[ax] - 1, &span))
                return op_desc_fail(e, CV_PAD, "%s: pad=\"same\": kernel %" PRId64 " with dilation %" PRId64
                                    " is too large", op, *k[ax], *d[ax]);
            if (*s[ax] != 1)
                return op_desc_fail(e, CV_PAD, "%s: pad=\"same\" needs stride 1, got stride %" PRId64, op,
                                    *s[ax]);
            if (span % 2 != 0)
                return op_desc_fail(e, CV_PAD,
                                    "%s: pad=\"same\" needs an odd effective kernel, got %" PRId64
                                    " (kernel %" PRId64 ", dilation %" PRId64 ")",
                                    op, span + 1, *k[ax], *d[ax]);
            *p[ax] = span / 2;
        }
    } else if (sdims == 3 ? op_desc_read_triple(op, "pad", CV_PAD, &args[CV_PAD], &c->pad_d, c->pad, e) != 0
                          : op_desc_read_pair(op, "pad", CV_PAD, &args[CV_PAD], sdims, 0, c->pad, e) != 0) {
        return -1;
    }
    c->groups = args[CV_GROUPS].i[0];
    int64_t C = in[0].d[0];
    if (c->groups < 1)
        return op_desc_fail(e, CV_GROUPS, "%s: 'groups' must be a positive integer, got %" PRId64, op, c->groups);
    if (C % c->groups != 0)
        return op_desc_fail(e, CV_GROUPS, "%s: input channels %" PRId64 " are not divisible by groups %" PRId64, op,
                            C, c->groups);
    if (c->filters % c->groups != 0)
        return op_desc_fail(e, CV_GROUPS, "%s: filters %" PRId64 " are not divisible by groups %" PRId64, op,
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

static int conv3d_make_attrs(op_attrs *a, const op_argval *args, const op_shape *in, int nin, op_err *e)
{
    return conv_make_attrs(3, a, args, in, nin, e);
}

/* The convolution's own output [F, H', W'] (or [F, L'], [F, D', H', W']), before any fused
 * pooling. */
static int conv_out_shape(const op_conv_attrs *c, const op_shape *x, op_shape *out, op_err *e)
{
    int sdims = c->sdims;
    const char *op = conv_name(sdims);
    char b[SHAPE_BUF];
    if (sdims == 3) {
        static const char *const names[3] = {"depth", "height", "width"};
        int64_t k[3] = {c->kernel_d, c->kernel[0], c->kernel[1]}, s[3] = {c->stride_d, c->stride[0], c->stride[1]};
        int64_t p[3] = {c->pad_d, c->pad[0], c->pad[1]}, d[3] = {c->dilation_d, c->dilation[0], c->dilation[1]};
        *out = (op_shape){.rank = 4, .d = {c->filters}};
        for (int ax = 0; ax < 3; ax++) {
            int64_t o = 0;
            if (!op_desc_window_out(x->d[1 + ax], k[ax], s[ax], p[ax], d[ax], &o))
                return op_desc_fail(e, -1,
                                    "%s: output %s is too large: input %s, kernel %" PRId64 ", stride %" PRId64
                                    ", pad %" PRId64 ", dilation %" PRId64,
                                    op, names[ax], op_desc_sstr(x, b), k[ax], s[ax], p[ax], d[ax]);
            if (o < 1)
                return op_desc_fail(e, -1,
                                    "%s: output %s would be %" PRId64 ": input %s, kernel %" PRId64 ", stride %" PRId64
                                    ", pad %" PRId64 ", dilation %" PRId64,
                                    op, names[ax], o, op_desc_sstr(x, b), k[ax], s[ax], p[ax], d[ax]);
            out->d[1 + ax] = o;
        }
        return 0;
    }
    int64_t o[2] = {1, 1};
    for (int ax = 2 - sdims; ax < 2; ax++) {
        int64_t inl = x->d[1 + ax - (2 - sdims)];
        if (!op_desc_window_out(inl, c->kernel[ax], c->stride[ax], c->pad[ax], c->dilation[ax], &o[ax]))
            return op_desc_fail(e, -1,
                                "%s: output %s is too large: input %s, kernel %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64 ", dilation %" PRId64,
                                op, op_desc_axis_name(sdims, ax), op_desc_sstr(x, b), c->kernel[ax], c->stride[ax],
                                c->pad[ax], c->dilation[ax]);
        if (o[ax] < 1)
            return op_desc_fail(e, -1,
                                "%s: output %s would be %" PRId64 ": input %s, kernel %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64 ", dilation %" PRId64,
                                op, op_desc_axis_name(sdims, ax), o[ax], op_desc_sstr(x, b), c->kernel[ax],
                                c->stride[ax], c->pad[ax],
                                c->dilation[ax]);
    }
    *out = sdims == 1 ? op_desc_shape2(c->filters, o[1]) : (op_shape){.rank = 3, .d = {c->filters, o[0], o[1]}};
    return 0;
}

/* Pooled size along one axis, for the fused max pooling of a conv epilogue. */
static int fused_pool_out(const op_conv_attrs *c, const op_shape *conv_out, op_shape *out, op_err *e)
{
    int sdims = c->sdims;
    char b[SHAPE_BUF];
    if (sdims == 3) /* the epilogue's pooling has no depth axis: nothing fuses one */
        return op_desc_fail(e, -1, "conv3d: a fused max pooling is for 1-D and 2-D convolutions only");
    *out = *conv_out;
    for (int ax = 2 - sdims; ax < 2; ax++) {
        int dim = 1 + ax - (2 - sdims);
        int64_t o = 0;
        if (!op_desc_window_out(conv_out->d[dim], c->pool_size[ax], c->pool_stride[ax], c->pool_pad[ax], 1, &o))
            return op_desc_fail(e, -1, "maxpool: output %s is too large: input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64,
                                op_desc_axis_name(sdims, ax), op_desc_sstr(conv_out, b), c->pool_size[ax],
                                c->pool_stride[ax], c->pool_pad[ax]);
        if (o < 1)
            return op_desc_fail(e, -1,
                                "maxpool: output %s would be %" PRId64 ": input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64,
                                op_desc_axis_name(sdims, ax), o, op_desc_sstr(conv_out, b), c->pool_size[ax],
                                c->pool_stride[ax],
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
        return op_desc_fail(e, -1, "%s: input channels %" PRId64 " are not divisible by groups %" PRId64,
                            conv_name(c->sdims), in[0].d[0], c->groups);
    op_shape y;
    if (conv_out_shape(c, &in[0], &y, e) != 0)
        return -1;
    if (c->pool) {
        op_shape pooled;
        if (fused_pool_out(c, &y, &pooled, e) != 0)
            return -1;
        *out = c->pool_keep ? y : pooled; /* kept: output 0 is the pool's input */
        return 0;
    }
    *out = y;
    return 0;
}

/* The weight's shape [F, C/g, kh, kw], [F, C/g, k] or [F, C/g, kd, kh, kw] for input channels C. */
static op_shape conv_weight_shape(const op_conv_attrs *c, int64_t C)
{
    int64_t cg = c->groups > 0 ? C / c->groups : C;
    if (c->sdims == 3)
        return (op_shape){.rank = 5, .d = {c->filters, cg, c->kernel_d, c->kernel[0], c->kernel[1]}};
    if (c->sdims == 1)
        return (op_shape){.rank = 3, .d = {c->filters, cg, c->kernel[1]}};
    return (op_shape){.rank = 4, .d = {c->filters, cg, c->kernel[0], c->kernel[1]}};
}

static int conv_params(const op_attrs *a, const op_shape *in, const char **suffix, op_shape *shapes,
                       bool *trainable, op_init *init)
{
    const op_conv_attrs *c = &a->conv;
    int n = 0;
    suffix[n] = "weight";
    shapes[n] = conv_weight_shape(c, in[0].d[0]);
    init[n] = OP_INIT_FAN_IN_UNIFORM;
    trainable[n++] = true;
    if (c->bias) {
        suffix[n] = "bias";
        shapes[n] = op_desc_shape1(c->filters);
        init[n] = OP_INIT_BIAS_FAN_IN_UNIFORM;
        trainable[n++] = true;
    }
    return n;
}

/* Multiply-adds of n output elements over C input channels (saturated at INT64_MAX). */
static int64_t conv_macs(const op_conv_attrs *c, int64_t n, int64_t C)
{
    int64_t k = ck_sat_mul_i64(ck_sat_mul_i64(conv_kd(c), c->kernel[0]), c->kernel[1]);
    return ck_sat_mul_i64(ck_sat_mul_i64(n, C / c->groups), k);
}

/* 2 per multiply-add; then, per conv output element, 1 each for the bias, the residual add
 * and the activation; a fused max pool adds its window comparisons per pooled element. */
static int64_t conv_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    const op_conv_attrs *c = &a->conv;
    if (!op_desc_any_tensor(nin, in) || c->groups < 1)
        return 0;
    op_shape y;
    if (conv_out_shape(c, &in[0], &y, NULL) != 0)
        return 0;
    int64_t nout = op_shape_numel(&y);
    int64_t f = ck_sat_mul_i64(2, conv_macs(c, nout, in[0].d[0]));
    int64_t per_out = (c->bias ? 1 : 0) + (c->residual ? 1 : 0) + (c->act != OP_ACT_NONE ? 1 : 0);
    f = ck_sat_add_i64(f, ck_sat_mul_i64(per_out, nout));
    op_shape pooled;
    if (c->pool && out && fused_pool_out(c, &y, &pooled, NULL) == 0)
        f = ck_sat_add_i64(f, ck_sat_mul_i64(op_shape_numel(&pooled), ck_sat_mul_i64(c->pool_size[0], c->pool_size[1])));
    return f;
}

/* ---------------------------------------------------------------- fusion and summaries */

/* the activation comes before a fused pool: none can be added after one */
static op_act *conv_act_slot(op_attrs *a, float **alpha)
{
    if (a->conv.pool)
        return NULL;
    *alpha = &a->conv.alpha;
    return &a->conv.act;
}

static bool *conv_bias_flag(op_attrs *a)
{
    return &a->conv.bias;
}

static bool *conv_residual_flag(op_attrs *a)
{
    return &a->conv.residual;
}

static bool conv_epilogue(const op_attrs *a)
{
    return a->conv.residual || a->conv.act != OP_ACT_NONE || a->conv.pool;
}

/* The fused residual (after x, w and the bias) when the output has its shape: no fused pool. */
static int conv_sum_input(const op_attrs *a)
{
    return a->conv.residual && !a->conv.pool ? 2 + (a->conv.bias ? 1 : 0) : -1;
}

/* "6x5x5 stride 2 +relu +maxpool 2x2" */
static void conv_describe(const op_attrs *a, char *buf, size_t n)
{
    const op_conv_attrs *c = &a->conv;
    size_t len = 0;
    char w[64];
    if (c->sdims == 3) {
        /* "4x3x3x3 stride 1x2x2 dilation 2x1x1" */
        op_desc_window_str3(w, sizeof w, c->kernel_d, c->kernel);
        if (c->kernel_d == c->kernel[0] && c->kernel_d == c->kernel[1])
            op_desc_printf(buf, n, &len, "%" PRId64 "x%sx%sx%s", c->filters, w, w, w);
        else
            op_desc_printf(buf, n, &len, "%" PRId64 "x%s", c->filters, w);
        if (c->stride_d != 1 || c->stride[0] != 1 || c->stride[1] != 1) {
            op_desc_window_str3(w, sizeof w, c->stride_d, c->stride);
            op_desc_printf(buf, n, &len, " stride %s", w);
        }
        if (c->dilation_d != 1 || c->dilation[0] != 1 || c->dilation[1] != 1) {
            op_desc_window_str3(w, sizeof w, c->dilation_d, c->dilation);
            op_desc_printf(buf, n, &len, " dilation %s", w);
        }
    } else {
        op_desc_window_str(w, sizeof w, c->sdims, c->kernel);
        op_desc_printf(buf, n, &len, "%" PRId64 "x%s", c->filters, w);
        if (!op_desc_pair_is(c->sdims, c->stride, 1))
            op_desc_pair_suffix(buf, n, &len, "stride", c->sdims, c->stride);
        if (!op_desc_pair_is(c->sdims, c->dilation, 1))
            op_desc_pair_suffix(buf, n, &len, "dilation", c->sdims, c->dilation);
    }
    if (c->groups != 1)
        op_desc_printf(buf, n, &len, " groups %" PRId64, c->groups);
    if (c->winograd)
        op_desc_printf(buf, n, &len, " winograd");
    if (c->residual)
        op_desc_printf(buf, n, &len, " +add");
    if (c->act != OP_ACT_NONE)
        op_desc_printf(buf, n, &len, " +%s", op_act_name(c->act));
    if (c->pool) {
        op_desc_window_str(w, sizeof w, c->sdims, c->pool_size);
        op_desc_printf(buf, n, &len, " +maxpool %s", w);
        if (!op_desc_pair_eq(c->sdims, c->pool_stride, c->pool_size))
            op_desc_printf(buf, n, &len, "/%" PRId64, c->pool_stride[1]);
        if (c->pool_keep)
            op_desc_printf(buf, n, &len, " (input kept)");
    }
}

/* ---------------------------------------------------------------- gradient */

static int conv_grad(const op_grad_ctx *c, op_err *e)
{
    const op_conv_attrs *a = &c->fwd->attrs.conv;
    if (a->residual || a->act != OP_ACT_NONE || a->pool) {
        snprintf(e->msg, sizeof e->msg, "%s: a fused convolution has no gradient rule", c->fwd->name);
        return -1;
    }
    return op_desc_grad_linear(c, e, a->bias, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS);
}

/* ---------------------------------------------------------------- backward conv */

static int conv_bwd_weights_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    if (nin < 2 || !in)
        return op_desc_fail(e, -1, "conv_bwd_weights expects dy and x");
    *out = conv_weight_shape(&a->conv, in[1].d[0]);
    return 0;
}

/* in: dy (w not read); out: dx [C, ...]: one multiply-add per (dy element, weight element of
 * its filter), as in the forward conv */
static int64_t conv_bwd_data_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    const op_conv_attrs *c = &a->conv;
    if (!op_desc_any_tensor(nin, in) || !out || out->rank < 1 || c->groups < 1)
        return 0;
    return ck_sat_mul_i64(2, conv_macs(c, op_shape_numel(&in[0]), out->d[0]));
}

/* in: dy, x: as the forward multiply-adds, plus the bias gradient's sum */
static int64_t conv_bwd_weights_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    const op_conv_attrs *c = &a->conv;
    if (nin < 2 || !in || c->groups < 1)
        return 0;
    int64_t ndy = op_shape_numel(&in[0]);
    int64_t f = ck_sat_mul_i64(2, conv_macs(c, ndy, in[1].d[0]));
    return ck_sat_add_i64(f, c->bias ? ndy : 0);
}

/* ---------------------------------------------------------------- entries */

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
#define CONV_COMMON                                                                                \
    .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1, .shape = conv_shape,     \
    .params = conv_params, .flops = conv_flops, .grad = conv_grad, .act_slot = conv_act_slot,      \
    .bias_flag = conv_bias_flag, .residual_flag = conv_residual_flag, .epilogue = conv_epilogue, .describe = conv_describe,          \
    .sum_input = conv_sum_input

const op_def op_def_conv1d = {
    .op = OP_CONV1D, .name = "conv1d", CONV_COMMON, CONV_ARGS(0), .make_attrs = conv1d_make_attrs,
    .props = OP_PROP_HAS_WEIGHTS | OP_PROP_CONV | OP_PROP_POOL_EPILOGUE,
};

const op_def op_def_conv2d = {
    .op = OP_CONV2D, .name = "conv2d", CONV_COMMON, CONV_ARGS(OP_ARGF_TUPLE_OK), .make_attrs = conv2d_make_attrs,
    .props = OP_PROP_HAS_WEIGHTS | OP_PROP_CONV | OP_PROP_POOL_EPILOGUE,
};

/* [C, D, H, W] -> [F, D', H', W'], weights [F, C/groups, kd, kh, kw]; the conv epilogue's fused
 * max pooling is 1-D/2-D only, so a conv3d takes none (no OP_PROP_POOL_EPILOGUE; fused_pool_out
 * refuses one too). */
const op_def op_def_conv3d = {
    .op = OP_CONV3D, .name = "conv3d", CONV_COMMON, CONV_ARGS(OP_ARGF_TRIPLE_OK), .make_attrs = conv3d_make_attrs,
    .props = OP_PROP_HAS_WEIGHTS | OP_PROP_CONV,
};

/* Backward ops: output shapes come from the forward values.  Where input shapes determine
 * output 0 a shape rule is given (the verifier checks it); where they do not (a strided
 * conv's dx), shape is NULL and the node's maker gives the output the forward value's shape. */
const op_def op_def_conv_bwd_data = {
    .op = OP_CONV_BWD_DATA, .name = "conv_bwd_data", .min_inputs = 2, .max_inputs = 2,
    .flops = conv_bwd_data_flops, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_conv_bwd_weights = {
    .op = OP_CONV_BWD_WEIGHTS, .name = "conv_bwd_weights", .min_inputs = 2, .max_inputs = 2,
    .shape = conv_bwd_weights_shape, .flops = conv_bwd_weights_flops, .props = OP_PROP_TRAINING_ONLY,
};

/* A convolution in low precision (compiler/pass_precision.c): the layer's node with its
 * attributes, epilogue and name kept, attrs.conv.prec set, and in int8 two more inputs after
 * the conv's own (x, w, b?, r?): the weight scales [F] and the input scale [1], then the output
 * scale [1] when its output stays int8 and the residual's [1] when that is int8 (ops/quant.h). */
static void conv_q_describe(const op_attrs *a, char *buf, size_t n)
{
    conv_describe(a, buf, n);
    size_t len = strlen(buf);
    if (a->conv.prec == OP_PREC_INT8)
        op_desc_printf(buf, n, &len, " int8 (%s input)", a->conv.q_unsigned ? "u8" : "s8");
    else if (a->conv.prec == OP_PREC_BF16)
        op_desc_printf(buf, n, &len, " bf16");
}

const op_def op_def_conv_q = {
    .op = OP_CONV_Q, .name = "conv_q", .min_inputs = 2, .max_inputs = 8, .shape = conv_shape,
    .flops = conv_flops, .epilogue = conv_epilogue, .describe = conv_q_describe, .sum_input = conv_sum_input,
};
