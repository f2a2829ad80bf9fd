/* The oneDNN backend's hook into the kernel table (ops/kernels.c, under CNN_HAVE_ONEDNN).
 *
 * Every kernel here builds its oneDNN primitives in prepare() (format "any" where oneDNN
 * chooses a faster layout, with reorders from and to our plain layouts), keeps them in
 * c->state and only executes them in run().  run() also builds the state itself when
 * prepare() was not called, or again when the call's shapes or thread count changed since
 * (a smaller last batch); release() frees it.  Scratch memory (oneDNN's scratchpad and the
 * blocked copies of tensors) is allocated per state in prepare(): scratch() is not used. */
#ifndef CNN_OPS_ONEDNN_H
#define CNN_OPS_ONEDNN_H

#include "ops/kernels.h"

/* The oneDNN kernel for op, or NULL when this backend leaves it to another (flatten,
 * dropout, losses, optimiser updates). */
const op_kernel *op_onednn_kernel(op_kind op);

/* The name of the implementation oneDNN chose for the main primitive of a prepared call
 * ("brgconv:avx512_core", "jit:avx512_core", ...), or "" when there is none.  For reports
 * and benchmarks. */
const char *op_onednn_impl_name(const void *state);

/* Whether oneDNN runs op (conv, conv_bwd_data, conv_bwd_weights) by Winograd's algorithm on
 * this CPU when a node asks (op_conv_attrs.winograd): its f32 Winograd kernels need AVX-512. */
bool op_onednn_winograd(op_kind op);

/* Whether oneDNN's kernel for op is much faster channels-last than on plain images of 16
 * channels or more (op_caps.wide_cl): batchnorm forward and backward, whose NCHW
 * implementation ran 6-8 times slower than the NHWC one (bench_native --mem, 16x32x32 at
 * batch 64 on 2 threads: training 7.9 against 45 GB/s, backward 9.1 against 54). */
bool op_onednn_wide_cl(op_kind op);

#endif
