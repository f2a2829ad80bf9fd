/* Helpers shared by the reference kernels (ops/ref_*.c): argument checking with messages,
 * element counts, the 4-D view of 1-D and 2-D activations, and the softmax every kernel that
 * needs one uses (so fused and unfused paths round identically).  Internal to ops/. */
#ifndef CNN_OPS_REF_COMMON_H
#define CNN_OPS_REF_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops/ref.h"

/* Writes a message into err and returns -1, so a check reads `return ref_fail(...)`. */
static inline int ref_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int ref_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Elements per batch item (all axes after the first). */
static inline int64_t ref_inner(const op_tensor *t)
{
    int64_t n = 1;
    for (int i = 1; i < t->rank; i++)
        n *= t->d[i];
    return n;
}

/* Elements per channel of one batch item (all axes after the second; 1 for rank 2). */
static inline int64_t ref_spatial(const op_tensor *t)
{
    int64_t n = 1;
    for (int i = 2; i < t->rank; i++)
        n *= t->d[i];
    return n;
}

/* "[2, 3, 5]" into buf; returns buf. */
static inline const char *ref_shape_str(const op_tensor *t, char *buf, size_t n)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->d[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

static inline bool ref_same_shape(const op_tensor *a, const op_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

/* Threads a kernel may use (at least 1). */
static inline int ref_threads(const op_call *c)
{
    return c->nthreads > 0 ? c->nthreads : 1;
}

/* Checks the node, the tensor counts and that every tensor has data, sane dimensions and the
 * plain layout.  name is the op's name for messages. */
static inline int ref_check_call_layouts(const op_call *c, const char *name, int min_in, int max_in, int min_out,
                                         int max_out, bool plain_only, char *err, size_t errlen);

static inline int ref_check_call(const op_call *c, const char *name, int min_in, int max_in,
                                 int min_out, int max_out, char *err, size_t errlen)
{
    return ref_check_call_layouts(c, name, min_in, max_in, min_out, max_out, true, err, errlen);
}

/* ref_check_call for kernels that also take channels-last tensors (plain_only false): the
 * layout pass then gives the node's tensors one layout (those whose two orders coincide aside). */
static inline int ref_check_call_layouts(const op_call *c, const char *name, int min_in, int max_in, int min_out,
                                         int max_out, bool plain_only, char *err, size_t errlen)
{
    if (!c->node)
        return ref_fail(err, errlen, "%s: call has no node (attributes)", name);
    if (c->nin < min_in || c->nin > max_in) {
        if (min_in == max_in)
            return ref_fail(err, errlen, "%s: expected %d inputs, got %d", name, min_in, c->nin);
        return ref_fail(err, errlen, "%s: expected %d to %d inputs, got %d", name, min_in, max_in,
                        c->nin);
    }
    if (c->nout < min_out || c->nout > max_out) {
        if (min_out == max_out)
            return ref_fail(err, errlen, "%s: expected %d outputs, got %d", name, min_out,
                            c->nout);
        return ref_fail(err, errlen, "%s: expected %d to %d outputs, got %d", name, min_out,
                        max_out, c->nout);
    }
    for (int k = 0; k < c->nin + c->nout; k++) {
        const op_tensor *t = k < c->nin ? &c->in[k] : &c->out[k - c->nin];
        const char *what = k < c->nin ? "input" : "output";
        int idx = k < c->nin ? k : k - c->nin;
        if (t->rank < 0 || t->rank > OP_MAX_DIMS)
            return ref_fail(err, errlen, "%s: %s %d has rank %d", name, what, idx, t->rank);
        for (int i = 0; i < t->rank; i++)
            if (t->d[i] < 0)
                return ref_fail(err, errlen, "%s: %s %d has a negative dimension", name, what,
                                idx);
        if (!t->data && op_tensor_numel(t) > 0)
            return ref_fail(err, errlen, "%s: %s %d has no data", name, what, idx);
        if (plain_only && t->layout != 0) /* the layout pass never gives them one */
            return ref_fail(err, errlen, "%s: %s %d is channels-last; reference kernels take plain tensors",
                            name, what, idx);
    }
    return 0;
}

/* Softmax of k values spaced stride apart, from x into y (which may be x).  The maximum is
 * subtracted; exponentials and their sum are in double. */
static inline void ref_softmax_strided(const float *x, float *y, int64_t k, int64_t stride)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < k; i++)
        if (x[i * stride] > m)
            m = x[i * stride];
    double s = 0.0;
    for (int64_t i = 0; i < k; i++)
        s += exp((double)x[i * stride] - (double)m);
    for (int64_t i = 0; i < k; i++)
        y[i * stride] = (float)(exp((double)x[i * stride] - (double)m) / s);
}

/* Batch normalisation's argument checks, shared by the backends: a per-channel vector [ch],
 * and a tensor (`what`) of x's shape. */
static inline int ref_check_channel_vec(const op_tensor *t, int64_t ch, const char *name, const char *what,
                                        char *err, size_t errlen)
{
    char s1[64];
    if (t->rank != 1 || t->d[0] != ch)
        return ref_fail(err, errlen, "%s: %s is %s, expected [%lld]", name, what, ref_shape_str(t, s1, sizeof s1),
                        (long long)ch);
    return 0;
}

static inline int ref_check_like_x(const op_tensor *t, const op_tensor *x, const char *name, const char *what,
                                   char *err, size_t errlen)
{
    char s1[64], s2[64];
    if (!ref_same_shape(t, x))
        return ref_fail(err, errlen, "%s: %s is %s, x is %s", name, what, ref_shape_str(t, s1, sizeof s1),
                        ref_shape_str(x, s2, sizeof s2));
    return 0;
}

/* Cross-entropy's argument checks, shared by the backends (ops/ref_loss.c): logits [N, K],
 * labels [N] of class indices, a scalar loss, dlogits (when asked) of the logits' shape, label
 * smoothing in [0, 1).  Sets *n and *k; 0, or -1 with a message naming `name`. */
int ref_xent_check(const op_call *c, const char *name, int64_t *n, int64_t *k, char *err, size_t errlen);
/* mse's call checked (prediction and target of one batch and size, a scalar loss, dpred like the
 * prediction); *count the elements (ops/ref_loss.c). */
int ref_mse_check(const op_call *c, const char *name, int64_t *count, char *err, size_t errlen);

/* The optimiser updates' argument checks, shared by the backends (ops/ref_optim.c): the
 * gradient scale of an update with attrs.optim.clip (its last input, a scalar in (0, 1]; 1
 * without clipping); a state or gradient tensor with param's element count; Adam's and AdamW's
 * inputs, step and betas.  0, or -1 with a message naming `name`. */
int ref_optim_grad_scale(const op_call *c, const char *name, float *scale, char *err, size_t errlen);
int ref_check_numel_like(const op_tensor *t, const op_tensor *param, const char *name, const char *what, char *err,
                         size_t errlen);
int ref_adam_check(const op_call *c, const char *name, char *err, size_t errlen);

/* batchnorm's (bwd: batchnorm_bwd's) call checked as every backend's kernel must: shapes, the
 * channel vectors, eps and momentum, the outputs of inference or training, positive running
 * variances; *n, *ch, *s the batch, channels and spatial size of x (ops/ref_norm.c). */
int ref_bn_check(const op_call *c, const char *name, bool bwd, int64_t *n, int64_t *ch, int64_t *s, char *err,
                 size_t errlen);
/* ref_bn_check for kernels that take x in any layout (plain_only false): the tensors shaped
 * like x (y; dy, dx) must have x's layout (op_tensor.layout), blocked ones 16n channels. */
int ref_bn_check_layouts(const op_call *c, const char *name, bool bwd, bool plain_only, int64_t *n, int64_t *ch,
                         int64_t *s, char *err, size_t errlen);

/* Copies the n x ch x sp elements (each `size` bytes) of src into dst, from the plain order
 * (index (b*ch + k)*sp + s) into channels-last ((b*sp + s)*ch + k) when to_cl, else back; on
 * nthreads threads.  The reference reorder's arithmetic, for any element type. */
static inline void ref_layout_copy(const void *src, void *dst, int64_t n, int64_t ch, int64_t sp, size_t size,
                                   bool to_cl, int nthreads)
{
    const char *from = src;
    char *to = dst;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nthreads)
    for (int64_t b = 0; b < n; b++)
        for (int64_t s = 0; s < sp; s++)
            for (int64_t k = 0; k < ch; k++) {
                size_t plain = (size_t)((b * ch + k) * sp + s), cl = (size_t)((b * sp + s) * ch + k);
                memcpy(to + (to_cl ? cl : plain) * size, from + (to_cl ? plain : cl) * size, size);
            }
}

#endif
