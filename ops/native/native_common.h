/* Helpers shared by the native backend's op drivers (native_conv*.c, native_dense.c): call
 * checking (as the reference does, but with data optional so that scratch() can size a call
 * before its buffers exist), scratch handling, and the ISA tables by level.  Internal to
 * ops/native/. */
#ifndef CNN_OPS_NATIVE_COMMON_H
#define CNN_OPS_NATIVE_COMMON_H

#include <stdlib.h>

#include "ops/mem.h"
#include "ops/native/native.h"
#include "ops/native/native_ops.h"
#include "ops/ref_common.h"

static inline int nat_threads(const op_call *c) { return c->nthreads > 0 ? c->nthreads : 1; }

/* ref_check_call_layouts without the data check when need_data is false (so that scratch()
 * can size a call before its buffers exist); plain_only false for kernels that also take
 * channels-last tensors. */
static inline int nat_check_call_layouts(const op_call *c, const char *name, int min_in, int max_in, int min_out,
                                         int max_out, bool need_data, bool plain_only, char *err, size_t errlen)
{
    if (need_data)
        return ref_check_call_layouts(c, name, min_in, max_in, min_out, max_out, plain_only, err, errlen);
    op_call probe = *c;
    static float dummy;
    for (int k = 0; k < OP_MAX_IN; k++)
        probe.in[k].data = &dummy;
    for (int k = 0; k < OP_MAX_OUT; k++)
        probe.out[k].data = &dummy;
    return ref_check_call_layouts(&probe, name, min_in, max_in, min_out, max_out, plain_only, err, errlen);
}

/* ref_check_call without the data check when need_data is false. */
static inline int nat_check_call(const op_call *c, const char *name, int min_in, int max_in,
                                 int min_out, int max_out, bool need_data, char *err,
                                 size_t errlen)
{
    return nat_check_call_layouts(c, name, min_in, max_in, min_out, max_out, need_data, true, err, errlen);
}

/* The ISA table of a level (the scalar one where the build has no x86 levels). */
static inline const op_native_isa *nat_isa_level(int l)
{
    switch (l) {
#ifdef OP_NATIVE_HAVE_X86
    case OP_NATIVE_AVX512: return &op_native_isa_avx512;
    case OP_NATIVE_AVX2: return &op_native_isa_avx2;
#endif
    default: return &op_native_isa_scalar;
    }
}

/* Scratch from the runtime (sized by the kernel's scratch() for this call), else allocated
 * here (*owned: the caller frees it). */
static inline float *nat_scratch(op_call *c, size_t bytes, bool *owned)
{
    *owned = false;
    if (bytes == 0)
        return NULL;
    if (c->scratch)
        return c->scratch;
    *owned = true;
    return cnn_mem_aligned_alloc(64, (bytes + 63) / 64 * 64, 0);
}

#endif
