/* Convolution geometry shared by every backend's convolution kernels: the attributes checked
 * against the input and weight shapes, the sizes derived from them, and the activation-shape
 * check, with one set of messages. */
#ifndef CNN_OPS_CONV_GEOM_H
#define CNN_OPS_CONV_GEOM_H

#include <stddef.h>
#include <stdint.h>

#include "ops/kernels.h"

typedef struct op_conv_geom {
    int64_t n, c, h, w;        /* input x [n, c, (d,) h, w] */
    int64_t f, g, cpg, fpg;    /* filters, groups, channels and filters per group */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t oh, ow;            /* convolution output (before any fused pooling) */
    /* the depth axis of 3-D convolutions; input depth 1, kernel 1, stride 1, pad 0,
     * dilation 1 and output depth 1 for the others */
    int64_t d, kd, sd, pd, dd, od;
} op_conv_geom;

/* Reads [N,C,(H,)W] as 4-D (h = 1 for a rank-3 tensor). */
void op_conv_view4(const op_tensor *t, int64_t *n, int64_t *c, int64_t *h, int64_t *w);

/* Checks the attributes against the input shape x and the weight shape wt and fills g;
 * 0, or -1 with a message that starts with name.  1-D and 2-D convolutions only (sdims 3 is
 * refused, so kernels that know no depth axis never run a 3-D convolution). */
int op_conv_geom_make(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                      const char *name, op_conv_geom *g, char *err, size_t errlen);
/* op_conv_geom_make that also takes 3-D convolutions (sdims 3: x [N,C,D,H,W], wt
 * [F,C/g,kd,kh,kw], the depth attributes kernel_d, stride_d, pad_d, dilation_d), for kernels
 * that loop over g->d.  For 1-D and 2-D it is op_conv_geom_make (depth 1). */
int op_conv_geom_make3(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                       const char *name, op_conv_geom *g, char *err, size_t errlen);

/* Checks that t is [n, c, (h,) w] in the rank of the convolution; 0, or -1 with a message. */
int op_conv_check_act(const op_tensor *t, int sdims, int64_t n, int64_t c, int64_t h, int64_t w,
                      const char *name, const char *what, char *err, size_t errlen);
/* The same for any sdims, 3 included: t is [n, c, d, h, w] when sdims is 3 (d ignored else). */
int op_conv_check_act3(const op_tensor *t, int sdims, int64_t n, int64_t c, int64_t d, int64_t h,
                       int64_t w, const char *name, const char *what, char *err, size_t errlen);

#endif
