/* A convolution case as the backend test suites (native, oneDNN) describe it, turned into
 * attributes and output sizes the same way in both. */
#ifndef CNN_TESTS_CONV_TEST_UTIL_H
#define CNN_TESTS_CONV_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "compiler/ir.h"

typedef struct cgeom {
    int sdims;
    int64_t n, c, h, w, f;
    int64_t k[2], s[2], p[2], d[2];
    int64_t g;
    bool bias;
} cgeom;

static inline op_conv_attrs conv_attrs(const cgeom *g)
{
    op_conv_attrs a;
    memset(&a, 0, sizeof a);
    a.sdims = g->sdims;
    a.filters = g->f;
    for (int i = 0; i < 2; i++) {
        a.kernel[i] = g->k[i];
        a.stride[i] = g->s[i];
        a.pad[i] = g->p[i];
        a.dilation[i] = g->d[i];
    }
    a.groups = g->g;
    a.bias = g->bias;
    return a;
}

static inline int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

#endif
