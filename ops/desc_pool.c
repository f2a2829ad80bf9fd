/* Pooling: maxpool, avgpool (on [C, L], [C, H, W] and [C, D, H, W]), global_avgpool and their
 * backward ops. */
#include "ops/desc_common.h"

/* ---------------------------------------------------------------- pooling */

enum { PL_SIZE, PL_STRIDE, PL_PAD, PL_NARGS };

static int pool_check_rank(const char *op, const op_shape *in, int nin, op_err *e)
{
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "%s expects one input tensor", op);
    if (in[0].rank < 2 || in[0].rank > 4)
        return op_desc_fail(e, -1, "%s expects a [C, L], [C, H, W] or [C, D, H, W] input, got %s", op,
                            op_desc_sstr(&in[0], b));
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
    if (sdims == 3) {
        if (op_desc_read_triple(op, "size", PL_SIZE, &args[PL_SIZE], &p->size_d, p->size, e) != 0 ||
            op_desc_read_triple(op, "stride", PL_STRIDE, &args[PL_STRIDE], &p->stride_d, p->stride, e) != 0 ||
            op_desc_read_triple(op, "pad", PL_PAD, &args[PL_PAD], &p->pad_d, p->pad, e) != 0)
            return -1;
        if (p->pad_d > p->size_d / 2)
            return op_desc_fail(e, PL_PAD, "%s: pad %" PRId64 " is more than half the window size %" PRId64, op,
                                p->pad_d, p->size_d);
    } else {
        p->size_d = p->stride_d = 1; /* no depth axis */
        if (op_desc_read_pair(op, "size", PL_SIZE, &args[PL_SIZE], sdims, 1, p->size, e) != 0 ||
            op_desc_read_pair(op, "stride", PL_STRIDE, &args[PL_STRIDE], sdims, 1, p->stride, e) != 0 ||
            op_desc_read_pair(op, "pad", PL_PAD, &args[PL_PAD], sdims, 0, p->pad, e) != 0)
            return -1;
    }
    for (int ax = sdims == 3 ? 0 : 2 - sdims; ax < 2; ax++) {
        /* PyTorch's rule: pad at most half the window */
        if (p->pad[ax] > p->size[ax] / 2)
            return op_desc_fail(e, PL_PAD, "%s: pad %" PRId64 " is more than half the window size %" PRId64, op,
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
        return op_desc_fail(e, -1, "%s: attributes are for a %d-D input, got %s", op, p->sdims,
                            op_desc_sstr(&in[0], b));
    *out = in[0];
    if (sdims == 3) {
        int64_t o = 0;
        if (!op_desc_window_out(in[0].d[1], p->size_d, p->stride_d, p->pad_d, 1, &o))
            return op_desc_fail(e, -1, "%s: output depth is too large: input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64, op, op_desc_sstr(&in[0], b), p->size_d, p->stride_d, p->pad_d);
        if (o < 1)
            return op_desc_fail(e, -1,
                                "%s: output depth would be %" PRId64 ": input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64,
                                op, o, op_desc_sstr(&in[0], b), p->size_d, p->stride_d, p->pad_d);
        out->d[1] = o;
    }
    for (int ax = sdims == 3 ? 0 : 2 - sdims; ax < 2; ax++) {
        int dim = sdims == 3 ? 2 + ax : 1 + ax - (2 - sdims);
        int64_t o = 0;
        if (!op_desc_window_out(in[0].d[dim], p->size[ax], p->stride[ax], p->pad[ax], 1, &o))
            return op_desc_fail(e, -1, "%s: output %s is too large: input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64, op, op_desc_axis_name(sdims == 3 ? 2 : sdims, ax),
                                op_desc_sstr(&in[0], b), p->size[ax], p->stride[ax], p->pad[ax]);
        if (o < 1)
            return op_desc_fail(e, -1,
                                "%s: output %s would be %" PRId64 ": input %s, size %" PRId64 ", stride %" PRId64
                                ", pad %" PRId64,
                                op, op_desc_axis_name(sdims == 3 ? 2 : sdims, ax), o, op_desc_sstr(&in[0], b), p->size[ax],
                                p->stride[ax], p->pad[ax]);
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

/* The window's depth (1 below 3-D) */
static int64_t pool_window_d(const op_pool_attrs *p)
{
    return p->sdims == 3 ? p->size_d : 1;
}

/* Elements of one window (saturated) */
static int64_t pool_window(const op_pool_attrs *p)
{
    return ck_sat_mul_i64(ck_sat_mul_i64(pool_window_d(p), p->size[0]), p->size[1]);
}

/* One comparison (max) or add (average) per window element per output element; the
 * average's division is folded into a scale and not counted separately. */
static int64_t pool_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)in;
    (void)nin;
    return out ? ck_sat_mul_i64(op_shape_numel(out), pool_window(&a->pool)) : 0;
}

/* backward: in[0] is dy, one op per window element per dy element */
static int64_t pool_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)out;
    return op_desc_any_tensor(nin, in)
               ? ck_sat_mul_i64(op_shape_numel(&in[0]), pool_window(&a->pool))
               : 0;
}

static int global_avgpool_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    char b[SHAPE_BUF];
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "global_avgpool expects one input tensor");
    if (in[0].rank < 2)
        return op_desc_fail(e, -1, "global_avgpool expects a [C, L] or [C, H, W] input, got %s",
                            op_desc_sstr(&in[0], b));
    *out = op_desc_shape1(in[0].d[0]);
    return 0;
}

/* one add per input element */
static int64_t global_avgpool_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)out;
    return op_desc_any_tensor(nin, in) ? op_shape_numel(&in[0]) : 0;
}

/* one per dx element */
static int64_t global_avgpool_bwd_flops(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)
{
    (void)a;
    (void)in;
    (void)nin;
    return out ? op_shape_numel(out) : 0;
}

/* ---------------------------------------------------------------- summaries, gradients */

/* "2x2", "3/2" (stride), " pad 1" */
static void pool_describe(const op_attrs *a, char *buf, size_t n)
{
    const op_pool_attrs *p = &a->pool;
    size_t len = 0;
    char w[64];
    if (p->sdims == 3) {
        /* "2x2x2", "3/2" (stride), "1x2x2/1x2x2", " pad 1x0x0" */
        op_desc_window_str3(w, sizeof w, p->size_d, p->size);
        op_desc_printf(buf, n, &len, "%s", w);
        if (p->stride_d != p->size_d || p->stride[0] != p->size[0] || p->stride[1] != p->size[1]) {
            op_desc_window_str3(w, sizeof w, p->stride_d, p->stride);
            op_desc_printf(buf, n, &len, "/%s", w);
        }
        if (p->pad_d != 0 || p->pad[0] != 0 || p->pad[1] != 0) {
            op_desc_window_str3(w, sizeof w, p->pad_d, p->pad);
            op_desc_printf(buf, n, &len, " pad %s", w);
        }
        return;
    }
    op_desc_window_str(w, sizeof w, p->sdims, p->size);
    op_desc_printf(buf, n, &len, "%s", w);
    if (!op_desc_pair_eq(p->sdims, p->stride, p->size)) {
        if (p->sdims == 1 || p->stride[0] == p->stride[1])
            op_desc_printf(buf, n, &len, "/%" PRId64, p->stride[1]);
        else
            op_desc_printf(buf, n, &len, "/%" PRId64 "x%" PRId64, p->stride[0], p->stride[1]);
    }
    if (!op_desc_pair_is(p->sdims, p->pad, 0))
        op_desc_pair_suffix(buf, n, &len, "pad", p->sdims, p->pad);
}

static int maxpool_grad(const op_grad_ctx *c, op_err *e)
{
    return op_desc_grad_unary(c, e, OP_MAXPOOL_BWD, c->in[0], NULL);
}

static int avgpool_grad(const op_grad_ctx *c, op_err *e)
{
    return op_desc_grad_unary(c, e, OP_AVGPOOL_BWD, -1, NULL);
}

static int global_avgpool_grad(const op_grad_ctx *c, op_err *e)
{
    return op_desc_grad_unary(c, e, OP_GLOBAL_AVGPOOL_BWD, -1, NULL);
}

/* ---------------------------------------------------------------- entries */

#define POOL_ARGS                                                                                  \
    .nargs = PL_NARGS,                                                                             \
    .args = {                                                                                      \
        {"size", OP_ARG_INTS, OP_ARGF_POSITIVE | OP_ARGF_TUPLE_OK | OP_ARGF_TRIPLE_OK, NULL},      \
        {"stride", OP_ARG_INTS, OP_ARGF_POSITIVE | OP_ARGF_TUPLE_OK | OP_ARGF_TRIPLE_OK, "=size"}, \
        {"pad", OP_ARG_INTS, OP_ARGF_NONNEG | OP_ARGF_TUPLE_OK | OP_ARGF_TRIPLE_OK, "0"},          \
    }
#define POOL_LAYER .is_layer = true, .callable = true, .min_inputs = 1, .max_inputs = 1

const op_def op_def_maxpool = {
    .op = OP_MAXPOOL, .name = "maxpool", POOL_LAYER, POOL_ARGS, .make_attrs = maxpool_make_attrs,
    .shape = maxpool_shape, .flops = pool_flops, .grad = maxpool_grad, .describe = pool_describe,
};

const op_def op_def_avgpool = {
    .op = OP_AVGPOOL, .name = "avgpool", POOL_LAYER, POOL_ARGS, .make_attrs = avgpool_make_attrs,
    .shape = avgpool_shape, .flops = pool_flops, .grad = avgpool_grad, .describe = pool_describe,
};

const op_def op_def_global_avgpool = {
    .op = OP_GLOBAL_AVGPOOL, .name = "global_avgpool", POOL_LAYER, .shape = global_avgpool_shape,
    .flops = global_avgpool_flops, .grad = global_avgpool_grad,
};

/* backward: maxpool_bwd reads (dy, x) and makes dx like x; the average pools' dx shape comes
 * from the forward value (a strided window does not determine it) */
/* "2x2 +relu_bwd": the window, and the fused activation backward */
static void maxpool_bwd_describe(const op_attrs *a, char *buf, size_t n)
{
    pool_describe(a, buf, n);
    if (a->pool.act != OP_ACT_NONE) {
        size_t len = strlen(buf);
        op_desc_printf(buf, n, &len, " +%s_bwd", op_act_name(a->pool.act));
    }
}

const op_def op_def_maxpool_bwd = {
    .op = OP_MAXPOOL_BWD, .name = "maxpool_bwd", .min_inputs = 2, .max_inputs = 2,
    .shape = op_desc_shape_of_second, .flops = pool_bwd_flops, .props = OP_PROP_TRAINING_ONLY,
    .describe = maxpool_bwd_describe,
};

const op_def op_def_avgpool_bwd = {
    .op = OP_AVGPOOL_BWD, .name = "avgpool_bwd", .min_inputs = 1, .max_inputs = 1,
    .flops = pool_bwd_flops, .props = OP_PROP_TRAINING_ONLY,
};

const op_def op_def_global_avgpool_bwd = {
    .op = OP_GLOBAL_AVGPOOL_BWD, .name = "global_avgpool_bwd", .min_inputs = 1, .max_inputs = 1,
    .flops = global_avgpool_bwd_flops, .props = OP_PROP_TRAINING_ONLY,
};
