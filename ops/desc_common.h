/* Helpers shared by the op descriptions (ops/desc_*.c): error reporting, shape builders,
 * window arithmetic, argument reading, the shape and FLOP rules several families use, the
 * summary text builders, and the gradient rule building blocks.
 *
 * Conventions
 * - 1-D layers (conv1d, and the pools on a [C, L] input) keep their numbers at index 1 of
 *   each [h, w] attribute pair and 1/1/0/1 (kernel or size, stride, pad, dilation) at index
 *   0, so that kernels can treat [C, L] as [C, 1, L].  3-D layers (conv3d, and the pools on a
 *   [C, D, H, W] input) keep [h, w] in the pairs and the depth in the *_d fields.
 * - Output size per spatial axis: floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1
 *   (pools: dilation 1), with a true floor, so a negative numerator gives 0 or less.
 * - FLOPs are per example: a multiply-add counts 2; every other arithmetic operation on an
 *   element counts 1 (bias add, residual add, activation, average-pool sum, max-pool
 *   comparison per window element).  Copies (flatten, concat, inference dropout) count 0.
 *   Ops with several steps per element count an estimate, written next to them.
 * - FLOP rules get every input's shape (op_def.flops) but read in[0] (and in[1] only where
 *   it is an activation: the backward weight ops' x) and the output shape, never a
 *   parameter input.
 * - Gradient rules append backward nodes through the op_grad_ctx their caller
 *   (compiler/autodiff.c) provides and report the gradient value of each input (ops/ref.h
 *   gives the backward ops' tensor orders).  Only inputs that can carry a gradient get one:
 *   activations and trainable parameters, never network inputs or running statistics. */
#ifndef CNN_OPS_DESC_COMMON_H
#define CNN_OPS_DESC_COMMON_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ops/checked.h"
#include "ops/registry.h"

/* Fills e (when given) and returns -1. */
int op_desc_fail(op_err *e, int arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define SHAPE_BUF 128

/* "[6, 28]" for messages; each call needs its own buffer of SHAPE_BUF. */
static inline const char *op_desc_sstr(const op_shape *s, char *buf)
{
    return op_shape_str(s, buf, SHAPE_BUF);
}

static inline op_shape op_desc_shape1(int64_t a)
{
    op_shape s = {.rank = 1, .d = {a}};
    return s;
}

static inline op_shape op_desc_shape2(int64_t a, int64_t b)
{
    op_shape s = {.rank = 2, .d = {a, b}};
    return s;
}

static inline bool op_desc_any_tensor(int nin, const op_shape *in)
{
    return nin >= 1 && in != NULL;
}

/* Spatial output size of a window op along one axis into *out; false when a step of the
 * formula overflows int64_t (huge pad, dilation or kernel) or stride < 1. */
bool op_desc_window_out(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t *out);
/* The axis name for messages: "length" for 1-D layers, else "height" or "width". */
const char *op_desc_axis_name(int sdims, int axis);
/* Reads an OP_ARG_INTS (or numeric OP_ARG_PAD) value into attribute order [h, w].  1-D layers
 * put the value at index 1 and `h1` at index 0, and take no tuple. */
int op_desc_read_pair(const char *op, const char *argname, int argi, const op_argval *v, int sdims, int64_t h1,
                   int64_t out[2], op_err *e);

/* The same for 3-D layers ([C, D, H, W] inputs): an int or a (d, h, w) triple, the depth into
 * *d and [h, w] into out. */
int op_desc_read_triple(const char *op, const char *argname, int argi, const op_argval *v, int64_t *d,
                        int64_t out[2], op_err *e);

/* Shape rules: output 0 like input 0; like input 1 (maxpool_bwd's and batchnorm_bwd's x); a
 * scalar (losses). */
int op_desc_same_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e);
int op_desc_shape_of_second(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e);
int op_desc_scalar_shape(const op_attrs *a, const op_shape *in, int nin, op_shape *out, op_err *e);

/* k FLOPs per element of input 0 (0: copies such as flatten and concat) */
int64_t op_desc_flops_0(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
int64_t op_desc_flops_1(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
int64_t op_desc_flops_2(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
int64_t op_desc_flops_3(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
int64_t op_desc_flops_4(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);
int64_t op_desc_flops_12(const op_attrs *a, const op_shape *in, int nin, const op_shape *out);

/* Summary text: appends to buf (size n, *len used so far), truncating like snprintf. */
void op_desc_printf(char *buf, size_t n, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "5x5", "5" (1-D) or "3x5": a window pair in attribute order; 1-D windows use index 1. */
void op_desc_window_str(char *buf, size_t n, int sdims, const int64_t v[2]);
/* "3" or "1x3x3": a 3-D window, depth first */
void op_desc_window_str3(char *buf, size_t n, int64_t d, const int64_t v[2]);
bool op_desc_pair_is(int sdims, const int64_t v[2], int64_t x);
bool op_desc_pair_eq(int sdims, const int64_t a[2], const int64_t b[2]);
/* " <label> 2" or " <label> 2x3" */
void op_desc_pair_suffix(char *buf, size_t n, size_t *len, const char *label, int sdims, const int64_t v[2]);

/* Gradient building blocks.  op_desc_grad_emit appends a backward node (e filled on failure). */
int op_desc_grad_emit(const op_grad_ctx *c, op_kind op, const op_attrs *a, int nin, const int *in, int nout,
                   const int *out, const char *what, op_err *e);
int op_desc_grad_oom(op_err *e);
/* Ops whose input gradient is one backward op of (dy [, extra]) -> dx; attrs NULL: the
 * forward node's. */
int op_desc_grad_unary(const op_grad_ctx *c, op_err *e, op_kind bwd, int extra, const op_attrs *attrs);
/* conv and dense: data gradient from (dy, w), weight gradient from (dy, x). */
int op_desc_grad_linear(const op_grad_ctx *c, op_err *e, bool bias, op_kind bwd_data, op_kind bwd_weights);

#endif
