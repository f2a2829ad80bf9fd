/* Internal to the oneDNN backend: the convolution geometry and helpers of dnn_conv.c, shared
 * with the low-precision convolution (dnn_lowp.c). */
#ifndef CNN_OPS_ONEDNN_CONV_H
#define CNN_OPS_ONEDNN_CONV_H

#include "ops/onednn/dnn_common.h"

typedef struct conv_geom {
    int64_t n, c;            /* source batch and channels */
    int sp;                  /* spatial dims given to oneDNN: 2 (1-D as height 1) or 3 */
    int64_t in[3], k[3], out[3]; /* source size, kernel, conv output: (d,) h, w */
    int64_t f, g;            /* filters, groups */
    dnnl_dims_t stride, dil, pad;
    int wnd;                 /* weights ndims: 2 + sp (oi(d)hw) or 3 + sp (goi(d)hw) */
    int64_t wdims[6];
} conv_geom;

/* The layouts of a call's activations: the source side x and the output side y. */
typedef struct conv_layouts {
    op_layout x, y;
} conv_layouts;

/* Reads the geometry from the attributes and the source shape xt; checks w's shape. */
int op_dnn_conv_geom_read(const op_conv_attrs *a, const op_tensor *xt, const op_tensor *wt, conv_geom *g,
                          char *err, size_t errlen);
/* Whether activation t is [n, ch, sizes...] in the view of g. */
bool op_dnn_conv_act_is(const conv_geom *g, const op_tensor *t, int64_t ch, const int64_t *sizes);
/* f32 descriptors for the primitive (prim: channels-last and blocked activations as they are, plain ones "any";
 * weights "any") or of the call's tensors. */
void op_dnn_conv_mds(const conv_geom *g, conv_layouts cl, bool prim, dnnl_memory_desc_t *x,
                     dnnl_memory_desc_t *w, dnnl_memory_desc_t *y);
/* The fused max pooling after the conv's output memory conv_dst, into the call's output. */
int op_dnn_conv_build_pool(op_dnn_prog *p, const op_call *c, const conv_geom *g, int conv_dst, char *err,
                           size_t errlen);
/* The end of a forward convolution's build, shared by the f32 and the low-precision kernels:
 * the destination (owned when a pool follows, else the call's output or a memory reordered into
 * it), the residual (input rin, of the tensor's type) copied into it for the sum post-op, as
 * elements of type res_view (undef: the destination's own) times res_scale, the primitive on
 * memories x, w, b (-1: no bias) and the destination, then the fused pool.  0, or -1 with err. */
int op_dnn_conv_finish(op_dnn_prog *p, const op_call *c, const conv_geom *g, dnnl_primitive_desc_t pd,
                       const dnnl_memory_desc_t *yp, const op_conv_attrs *a, int rin, float res_scale,
                       dnnl_data_type_t res_view, int x, int w, int b, char *err, size_t errlen);

#endif
