/* The kernel interface: how the executor calls one op on one backend.  Kernels join the op
 * registry by op kind: ops/kernels.c fills a table [op][backend] once at start-up.
 *
 * Tensors are float32, dense, row-major, batch first: activations are [N, C, H, W] for
 * images, [N, C, L] for signals, [N, F] for vectors; parameters have no batch axis and use
 * PyTorch's layouts (spec section 6).  Kernels that declare it (op_kernel.layouts) may also
 * get activations in channels-last order (op_tensor.layout); reference kernels never do, except
 * reorder's.  A kernel reads node->attrs for its parameters, and the
 * order of in[]/out[] for each op is written next to it in ops/ref.h. */
#ifndef CNN_OPS_KERNELS_H
#define CNN_OPS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/caps.h"
#include "ops/op.h"

#define OP_MAX_DIMS (OP_MAX_RANK + 1)

/* One tensor as a kernel sees it: data and its full shape, batch axis included when the
 * value is batched. */
typedef struct op_tensor {
    float *data;
    int rank;
    int64_t d[OP_MAX_DIMS];
    int layout;            /* op_layout: 0 plain (NCHW, NCL, NC); 1 channels-last (NHWC, NWC);
                            * 2 channels blocked by 16 (nChw16c): the elements in that order,
                            * d[] still N, C, H, W */
    int dtype;             /* op_dtype: OP_DT_F32 (data is float), or u8 / s8 bytes at data
                            * (only conv_q and dense_q in int8 read or write those) */
} op_tensor;

/* Elements of a tensor (1 for rank 0). */
static inline int64_t op_tensor_numel(const op_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->d[i];
    return n;
}

typedef struct op_call {
    const op_node *node;   /* op, attributes and name */
    int nin, nout;
    op_tensor in[OP_MAX_IN];
    op_tensor out[OP_MAX_OUT];
    int64_t batch;
    int nthreads;          /* threads this call may use (OpenMP) */
    uint64_t seed;         /* dropout: a per-step seed */
    int64_t step;          /* optimiser updates: 1 for the first step */
    uint64_t weights_version; /* changes whenever the weights may have changed: a kernel may keep
                             * what it derived from a weights slot (which holds the weights or
                             * values computed from them alone) while this stays the same */
    void *state;           /* backend state made by prepare(), or NULL */
    float *scratch;        /* scratch()'s bytes, or NULL */
} op_call;

typedef struct op_kernel {
    /* Runs the op. Returns 0, or -1 after writing a message to err. */
    int (*run)(op_call *c, char *err, size_t errlen);
    /* Optional: plan-time set-up (oneDNN primitives) from a call whose shapes are final (data
     * pointers may be NULL).  Stores its state in c->state. 0 or -1 with err. */
    int (*prepare)(op_call *c, char *err, size_t errlen);
    void (*release)(void *state);
    /* Optional: scratch bytes the kernel needs per call. */
    size_t (*scratch)(const op_call *c);
    /* Which activation layouts it takes (compiler/pass_layout.c decides from this). */
    op_layout_support layouts;
    bool blocked;          /* it also takes OP_LAYOUT_BLOCK16 activations (oneDNN kernels) */
} op_kernel;

/* The kernel for op on backend, or NULL when that backend has none. */
const op_kernel *op_kernel_get(op_kind op, op_backend b);
/* Fills caps from the kernel tables: what the compiler is told about the kernels. */
void op_kernel_caps(op_caps *caps);

#ifdef CNN_HAVE_ONEDNN
/* The oneDNN backend's kernel for op, or NULL (ops/onednn/); op_kernel_get() forwards to it. */
const op_kernel *op_onednn_kernel(op_kind op);
#endif

#endif
