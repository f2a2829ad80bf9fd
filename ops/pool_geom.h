/* Pooling geometry shared by every backend's pooling kernels (as ops/conv_geom.h for
 * convolutions): the attributes checked against the input shape, with one set of messages, and
 * the sizes derived from them.  Every pool is read as a 3-D one: 2-D tensors [N,C,H,W] as
 * [N,C,1,H,W] and 1-D ones [N,C,W] as [N,C,1,1,W], with depth size 1, stride 1, pad 0. */
#ifndef CNN_OPS_POOL_GEOM_H
#define CNN_OPS_POOL_GEOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/kernels.h"

typedef struct op_pool_geom {
    int sdims;
    int64_t n, c, d, h, w;   /* input [n, c, (d,) (h,) w] */
    int64_t kd, kh, kw, sd, sh, sw, pd, ph, pw;
    int64_t od, oh, ow;
} op_pool_geom;

/* Checks the attributes against the input shape x and fills g.  max: padding must be smaller
 * than the window so that every window holds at least one real element.  0, or -1 with a
 * message naming `name` in err. */
int op_pool_geom_make(const op_pool_attrs *a, const op_tensor *x, bool max, const char *name, op_pool_geom *g,
                      char *err, size_t errlen);

/* global_avgpool (bwd: global_avgpool_bwd, dy -> dx) checked: the plane tensor [N, C, ...] with
 * spatial elements and the pooled one [N, C]; *nc planes of *s elements.  0, or -1 with err. */
int op_global_pool_check(const op_call *c, const char *name, bool bwd, int64_t *nc, int64_t *s, char *err,
                         size_t errlen);

#endif
