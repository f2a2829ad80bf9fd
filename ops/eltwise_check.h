/* The checks of the element-wise and data-movement ops' calls, shared by the reference kernels
 * (ops/ref_eltwise.c) and the native ones (ops/native/native_eltwise.c), as ops/pool_geom.h is
 * for pooling: one set of rules and messages, and what the kernels derive from them (the
 * activation, the dropout mask's generator, concat's offsets).  Each returns 0, or -1 with a
 * message naming `name` in err.  The element-wise ones take plain_only: false for a kernel that
 * reads any layout (the node's tensors share one), true for one that reads plain tensors only. */
#ifndef CNN_OPS_ELTWISE_CHECK_H
#define CNN_OPS_ELTWISE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/kernels.h"

/* act: y = act(x) with a named activation (*act, *alpha from attrs.act). */
int op_elt_check_act(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                     size_t errlen);
/* act_bwd: dy, y[, more gradients] -> dx, all of one shape; the activation may be none.  The
 * inputs after y (compiler/pass_fuse.c: a gradient sum before it) add to dy, in their order. */
int op_elt_check_act_bwd(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                         size_t errlen);
/* add: two or more inputs and the output of one shape, a fused activation. */
int op_elt_check_add(const op_call *c, const char *name, bool plain_only, op_act *act, float *alpha, char *err,
                     size_t errlen);
/* flatten and copy: an output with input 0's batch and element count. */
int op_elt_check_flatten(const op_call *c, const char *name, char *err, size_t errlen);

/* dropout's mask: element i is 0 with probability p, else 1/(1-p), decided by a 53-bit uniform
 * from splitmix64(splitmix64(seed) ^ i), i the element's index in the whole tensor: the same
 * mask for any thread count and on every backend. */
typedef struct op_dropout_gen {
    uint64_t key, threshold;
    float scale;
} op_dropout_gen;

static inline uint64_t op_splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline float op_dropout_mask(const op_dropout_gen *g, int64_t i)
{
    return (op_splitmix64(g->key ^ (uint64_t)i) >> 11) < g->threshold ? 0.0f : g->scale;
}

/* dropout: x -> y (and the mask in training).  Returns 1 in inference, after copying x into y;
 * 0 in training with *gen set. */
int op_elt_check_dropout(const op_call *c, const char *name, op_dropout_gen *gen, char *err, size_t errlen);
/* dropout_bwd: dy, mask -> dx, all of one shape. */
int op_elt_check_dropout_bwd(const op_call *c, const char *name, char *err, size_t errlen);
/* softmax over axis 1 (bwd: dy, y -> dx): [N, C, ...] tensors of one shape; *n, *ch, *s the batch,
 * the channels and the spatial size. */
int op_elt_check_softmax(const op_call *c, const char *name, bool bwd, int64_t *n, int64_t *ch, int64_t *s,
                         char *err, size_t errlen);
/* concat along axis 1: every input fits the output outside axis 1 and the channels add up. */
int op_elt_check_concat(const op_call *c, const char *name, char *err, size_t errlen);
/* concat_bwd: dx is dy's channels [*off, *off + C). */
int op_elt_check_concat_bwd(const op_call *c, const char *name, int64_t *off, char *err, size_t errlen);

#endif
