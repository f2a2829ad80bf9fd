/* The native backend's blocked SGEMM driver: C = A B for a set of independent problems, with
 * A packed once per call, B packed per column chunk into an L2-sized block, K blocked for the
 * caches, an ISA micro-kernel on MR x NR tiles, and callbacks that pack the operands (so
 * transposes and im2col happen while packing) and store each finished block (so epilogues are
 * fused).  One OpenMP region per call.  Each element of C is summed in an order that depends
 * only on the shapes (never on the thread count), so results are reproducible across thread
 * counts.  Internal to ops/native/. */
#ifndef CNN_OPS_NATIVE_GEMM_H
#define CNN_OPS_NATIVE_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/native/native_isa.h"

#define OP_NATIVE_KC_MAX 256  /* the longest K block: an A panel (MR x KC) stays in L1 */

typedef struct op_native_gemm {
    int64_t m, n, k;     /* each problem: C[m][n] = A[m][k] B[k][n] */
    int64_t nprob;       /* independent problems 0..nprob-1 */
    int64_t na;          /* distinct A matrices: problem b uses A number b % na */
    int64_t kseg;        /* > 0: no K block crosses a multiple of kseg (e.g. an image) */
    /* Own-rows mode: each job takes a block of rows (starting at a multiple of row_align) and
     * all columns, so stores to anything keyed by the rows never race (col2im). */
    bool own_rows;
    int64_t row_align;
    int64_t ksplit;      /* > 1: K split in parts computed by separate jobs, summed in order */
    void *ctx;
    /* dst[kk*MR + r] = A[row0 + r][k0 + kk] for r < nrows (rows beyond: zero; the packer
     * writes them) */
    void (*pack_a)(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0, int64_t nrows,
                   int64_t k0, int64_t kc, float *dst);
    /* dst[kk*NR + q] = B[k0 + kk][col0 + q] of problem b, q < ncols, the rest zero */
    void (*pack_b)(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0, int64_t ncols,
                   int64_t k0, int64_t kc, float *dst);
    /* Stores C[row0 .. row0+nrows][col0 .. col0+ncols] of problem b, given as src (row stride
     * ld).  src may be modified. */
    void (*store)(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0, int64_t nrows,
                  int64_t col0, int64_t ncols, float *src, int64_t ld);
    /* Optional phases in the same parallel region: pre items before anything else (e.g.
     * zeroing an output that stores add to), post items after every store. */
    void (*pre)(void *ctx, const op_native_isa *isa, int64_t item);
    int64_t npre;
    void (*post)(void *ctx, const op_native_isa *isa, int64_t item);
    int64_t npost;
} op_native_gemm;

/* Bytes of scratch op_native_gemm_run needs for this problem on isa with nthreads threads. */
size_t op_native_gemm_scratch(const op_native_gemm *g, const op_native_isa *isa, int nthreads);

/* Runs the GEMM with nthreads threads; scratch holds op_native_gemm_scratch() bytes, 64-byte
 * aligned.  On the AVX-512 level a problem too small for its 8 x 48 tile in both directions
 * runs on the AVX2 tile instead; the callbacks get the table in use. */
void op_native_gemm_run(const op_native_gemm *g, const op_native_isa *isa, int nthreads,
                        float *scratch);

/* Runs fn(ctx, isa, item) for items 0..n-1 in one parallel region of nthreads threads. */
void op_native_parallel_for(int64_t n, int nthreads, const op_native_isa *isa, void *ctx,
                            void (*fn)(void *ctx, const op_native_isa *isa, int64_t item));

/* Rounds a float count up to a whole number of 64-byte lines. */
static inline size_t op_native_round16(size_t floats) { return (floats + 15) / 16 * 16; }

#endif
