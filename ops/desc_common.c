/* Helpers shared by the op descriptions (ops/desc_common.h). */
#include "ops/desc_common.h"

#include <stdarg.h>

int op_desc_fail(op_err *e, int arg, const char *fmt, ...)
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

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

bool op_desc_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t *out)
{
    int64_t pad2, span, num, q;
    if (stride < 1 || !ck_mul_i64(pad, 2, &pad2) || !ck_add_i64(in, pad2, &num) || !ck_sub_i64(kernel, 1, &span) ||
        !ck_mul_i64(dilation, span, &span) || !ck_sub_i64(num, span, &num) || !ck_sub_i64(num, 1, &num))
        return false;
    q = floor_div(num, stride);
    return ck_add_i64(q, 1, out);
}

static const char *const axis_names[2] = {"height", "width"};

const char *op_desc_axis_name(int sdims, int axis)
{
    return sdims == 1 ? "length" : axis_names[axis];
}

int op_desc_read_pair(const char *op, const char *argname, int argi, const op_argval *v, int sdims, int64_t h1,
                      int64_t out[2], op_err *e)
{
    if (v->n == 3) /* only flagged OP_ARGF_TRIPLE_OK, for layers that also take [C, D, H, W] */
        return op_desc_fail(e, argi,
                            "%s: '%s' takes %s input, got a triple (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
                            op, argname, sdims == 1 ? "one int for a [C, L]" : "an int or a pair for a [C, H, W]",
                            v->i[0], v->i[1], v->i[2]);
    if (sdims == 1) {
        if (v->n == 2)
            return op_desc_fail(e, argi, "%s: '%s' takes one int for a [C, L] input, got a tuple (%" PRId64 ", %" PRId64 ")",
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

int op_desc_read_triple(const char *op, const char *argname, int argi, const op_argval *v, int64_t *d,
                        int64_t out[2], op_err *e)
{
    if (v->n == 2)
        return op_desc_fail(e, argi,
                            "%s: '%s' takes an int or a triple for a [C, D, H, W] input, got a pair (%" PRId64
                            ", %" PRId64 ")",
                            op, argname, v->i[0], v->i[1]);
    if (v->n == 3) {
        *d = v->i[0];
        out[0] = v->i[1];
        out[1] = v->i[2];
    } else {
        *d = out[0] = out[1] = v->i[0];
    }
    return 0;
}

void op_desc_window_str3(char *buf, size_t n, int64_t d, const int64_t v[2])
{
    if (d == v[0] && d == v[1])
        snprintf(buf, n, "%" PRId64, d);
    else
        snprintf(buf, n, "%" PRId64 "x%" PRId64 "x%" PRId64, d, v[0], v[1]);
}

/* ---------------------------------------------------------------- shared shape and FLOP rules */

int op_desc_same_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (!op_desc_any_tensor(nin, in))
        return op_desc_fail(e, -1, "expected an input tensor");
    *out = in[0];
    return 0;
}

int op_desc_shape_of_second(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    if (nin < 2 || !in)
        return op_desc_fail(e, -1, "expected two input tensors");
    *out = in[1];
    return 0;
}

int op_desc_scalar_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e)
{
    (void)a;
    (void)in;
    (void)nin;
    (void)e;
    out->rank = 0;
    memset(out->d, 0, sizeof out->d);
    return 0;
}

#define ELTWISE_FLOPS(fname, k)                                                                    \
    int64_t fname(const op_attrs *a, const op_shape *in, int nin, const op_shape *out)             \
    {                                                                                              \
        (void)a;                                                                                   \
        (void)out;                                                                                 \
        return op_desc_any_tensor(nin, in) ? ck_sat_mul_i64(k, op_shape_numel(&in[0])) : 0;           \
    }
ELTWISE_FLOPS(op_desc_flops_0, 0)
ELTWISE_FLOPS(op_desc_flops_1, 1)
ELTWISE_FLOPS(op_desc_flops_2, 2)
ELTWISE_FLOPS(op_desc_flops_3, 3)
ELTWISE_FLOPS(op_desc_flops_4, 4)
ELTWISE_FLOPS(op_desc_flops_12, 12)
#undef ELTWISE_FLOPS

/* ---------------------------------------------------------------- summaries */

void op_desc_printf(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    if (!buf || *len >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w > 0)
        *len += (size_t)w < n - *len ? (size_t)w : n - *len - 1;
}

void op_desc_window_str(char *buf, size_t n, int sdims, const int64_t v[2])
{
    if (sdims == 1)
        snprintf(buf, n, "%" PRId64, v[1]);
    else
        snprintf(buf, n, "%" PRId64 "x%" PRId64, v[0], v[1]);
}

bool op_desc_pair_is(int sdims, const int64_t v[2], int64_t x)
{
    return v[1] == x && (sdims == 1 || v[0] == x);
}

bool op_desc_pair_eq(int sdims, const int64_t a[2], const int64_t b[2])
{
    return a[1] == b[1] && (sdims == 1 || a[0] == b[0]);
}

void op_desc_pair_suffix(char *buf, size_t n, size_t *len, const char *label, int sdims, const int64_t v[2])
{
    if (sdims == 1 || v[0] == v[1])
        op_desc_printf(buf, n, len, " %s %" PRId64, label, v[1]);
    else
        op_desc_printf(buf, n, len, " %s %" PRId64 "x%" PRId64, label, v[0], v[1]);
}

/* ---------------------------------------------------------------- gradient building blocks */

int op_desc_grad_oom(op_err *e)
{
    snprintf(e->msg, sizeof e->msg, "out of memory");
    return -1;
}

int op_desc_grad_emit(const op_grad_ctx *c, op_kind op, const op_attrs *a, int nin, const int *in, int nout,
                   const int *out, const char *what, op_err *e)
{
    if (c->emit(c, op, a, nin, in, nout, out, what) < 0)
        return op_desc_grad_oom(e);
    return 0;
}

int op_desc_grad_linear(const op_grad_ctx *c, op_err *e, bool bias, op_kind bwd_data, op_kind bwd_weights)
{
    int dy = c->gout[0];
    if (dy < 0)
        return 0;
    int x = c->in[0], w = c->in[1];
    int b = bias ? c->in[2] : -1;
    if (c->wants_grad(c, x)) {
        int dx = c->grad_value(c, x);
        if (dx < 0)
            return op_desc_grad_oom(e);
        int in[2] = {dy, w};
        if (op_desc_grad_emit(c, bwd_data, &c->fwd->attrs, 2, in, 1, &dx, "bwd_data", e))
            return -1;
        c->gin[0] = dx;
    }
    int dw = c->grad_value(c, w);
    int db = bias ? c->grad_value(c, b) : -1;
    if (dw < 0 || (bias && db < 0))
        return op_desc_grad_oom(e);
    int in[2] = {dy, x}, out[2] = {dw, db};
    if (op_desc_grad_emit(c, bwd_weights, &c->fwd->attrs, 2, in, bias ? 2 : 1, out, "bwd_weights", e))
        return -1;
    c->gin[1] = dw;
    if (bias)
        c->gin[2] = db;
    return 0;
}

int op_desc_grad_unary(const op_grad_ctx *c, op_err *e, op_kind bwd, int extra, const op_attrs *attrs)
{
    int dy = c->gout[0], x = c->in[0];
    if (dy < 0 || !c->wants_grad(c, x))
        return 0;
    int dx = c->grad_value(c, x);
    if (dx < 0)
        return op_desc_grad_oom(e);
    int in[2] = {dy, extra};
    if (op_desc_grad_emit(c, bwd, attrs ? attrs : &c->fwd->attrs, extra >= 0 ? 2 : 1, in, 1, &dx, "bwd", e))
        return -1;
    c->gin[0] = dx;
    return 0;
}
