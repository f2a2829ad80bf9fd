/* Convolution geometry shared by every backend's convolution kernels: the attributes checked
 * against the input and weight shapes, the sizes derived from them, and the activation-shape
 * check, with one set of messages. */
#ifndef CNN_OPS_CONV_GEOM_H
#define CNN_OPS_CONV_GEOM_H

#include <stddef.h>
#include <stdint.h>

#include "ops/kernels.h"

typedef struct op_conv_geom {
    int64_t n, c, h, w;        /* input x [n, c, h, w] */
    int64_t f, g, cpg, fpg;    /* filters, groups, channels and filters per group */
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    int64_t oh, ow;            /* convolution output (before any fused pooling) */
} op_conv_geom;

/* Reads [N,C,(H,)W] as 4-D (h = 1 for a rank-3 tensor). */
void op_conv_view4(const op_tensor *t, int64_t *n, int64_t *c, int64_t *h, int64_t *w);

/* Checks the attributes against the input shape x and the weight shape wt and fills g;
 * 0, or -1 with a message that starts with name. */
int op_conv_geom_make(const op_conv_attrs *a, const op_tensor *x, const op_tensor *wt,
                      const char *name, op_conv_geom *g, char *err, size_t errlen);

/* Checks that t is [n, c, (h,) w] in the rank of the convolution; 0, or -1 with a message. */
int op_conv_check_act(const op_tensor *t, int sdims, int64_t n, int64_t c, int64_t h, int64_t w,
                      const char *name, const char *what, char *err, size_t errlen);

#endif
