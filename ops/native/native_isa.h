/* The interface between the native backend's drivers (native_*.c, compiled with the default
 * flags) and its per-ISA translation units (gemm_<isa>.c with the GEMM micro-kernel, conv_<isa>.c
 * with the convolution packers, each compiled with its own -m flags).  One table per ISA,
 * filled at compile time; native_kernels.c picks one at start-up.  Internal to ops/native/.
 *
 * The GEMM is C (+)= A B with A packed in row panels of MR rows ([k][MR], k-major) and B in
 * column panels of NR columns ([k][NR]); padding rows/columns are zero. */
#ifndef CNN_OPS_NATIVE_ISA_H
#define CNN_OPS_NATIVE_ISA_H

#include <stdint.h>

#include "compiler/ir.h"

/* A convolution as the packers see one group of one image: cpg input channels of h x w, the
 * kernel and its sweep, and the oh x ow output (before any fused pooling). */
typedef struct op_native_convg {
    int64_t c, h, w;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t oh, ow;
} op_native_convg;

typedef struct op_native_isa {
    const char *name;
    int mr, nr;     /* micro-tile: MR rows of C by NR columns */
    /* c[MR][NR] (row stride ldc) = (accumulate ? c : 0) + a[kc][MR]^T b[kc][NR] */
    void (*ukr)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int accumulate);
    /* Transposing pack: dst[k*width + r] = src[r*ld + k] for r < rows, 0 for rows <= r < width */
    void (*pack_t)(const float *src, int64_t ld, int64_t rows, int64_t kc, int width, float *dst);
    /* Copying pack: dst[k*width + r] = src[k*ld + r] for r < cols, 0 for cols <= r < width */
    void (*pack_n)(const float *src, int64_t ld, int64_t cols, int64_t kc, int width, float *dst);
    /* y[j] = act(c[j] + (bias_vec ? bias_vec[j] : bias) + (res ? res[j] : 0)), j < n; y may be
     * res or c (same elements). */
    void (*epilogue)(float *y, const float *c, int64_t n, float bias, const float *bias_vec,
                     const float *res, ir_act act, float alpha);
    /* y = softmax(y) over n values (maximum subtracted) */
    void (*softmax)(float *y, int64_t n);
    /* im2col into column panels: rows k0..k0+kc of the patch matrix (k = (c*kh + i)*kw + j) and
     * output positions p0..p0+ncols (ncols <= width) of the group's image x, as
     * dst[(k-k0)*width + (p-p0)]; columns ncols..width zero. */
    void (*im2col)(const op_native_convg *g, const float *x, int64_t k0, int64_t kc, int64_t p0,
                   int64_t ncols, int width, float *dst);
    /* Transposed im2col for the weight gradient: dst[(p-p0)*width + (k-k0)] for patch rows
     * k0..k0+nk (nk <= width, the rest zero) and positions p0..p0+np. */
    void (*im2col_t)(const op_native_convg *g, const float *x, int64_t k0, int64_t nk, int64_t p0,
                     int64_t np, int width, float *dst);
    /* Direct convolution of one output plane: acc[oh*ow] = sum over the g->c channels of x and
     * their taps of w[c][kh][kw] (used when a group has too few filters for the GEMM). */
    void (*conv_plane)(const op_native_convg *g, const float *x, const float *w, float *acc);
} op_native_isa;

extern const op_native_isa op_native_isa_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
#define OP_NATIVE_HAVE_X86 1
extern const op_native_isa op_native_isa_avx2;
extern const op_native_isa op_native_isa_avx512;
#endif

/* The per-ISA convolution packers (conv_<isa>.c), gathered into the tables by gemm_<isa>.c. */
#define OP_NATIVE_CONV_DECL(sfx)                                                                  \
    void op_native_im2col_##sfx(const op_native_convg *g, const float *x, int64_t k0, int64_t kc,  \
                                int64_t p0, int64_t ncols, int width, float *dst);                \
    void op_native_im2col_t_##sfx(const op_native_convg *g, const float *x, int64_t k0,            \
                                  int64_t nk, int64_t p0, int64_t np, int width, float *dst);     \
    void op_native_conv_plane_##sfx(const op_native_convg *g, const float *x, const float *w,      \
                                    float *acc);
OP_NATIVE_CONV_DECL(scalar)
OP_NATIVE_CONV_DECL(avx2)
OP_NATIVE_CONV_DECL(avx512)

#endif
