/* Shared harness of the ops_onednn suite (test_ops_onednn*.c): tensor and case specs, a seeded
 * generator, and check_case, which runs a case on the oneDNN and the reference kernels and
 * compares them (the method is described in test_ops_onednn.c). */
#ifndef CNN_TESTS_ONEDNN_UTIL_H
#define CNN_TESTS_ONEDNN_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/registry.h"
#include "ops/kernels.h"
#include "ops/onednn/onednn.h"
#include "ops/ref.h"
#include "ops/ref_common.h"

#define RTOL 1e-4

enum fill { F_RAND, F_POS, F_RELU, F_UNIT };

typedef struct tspec {
    int rank;
    int64_t d[OP_MAX_DIMS];
    int fill;
} tspec;

typedef struct tcase {
    op_node node;
    int nin, nout;
    tspec in[OP_MAX_IN], out[OP_MAX_OUT];
} tcase;

static inline tspec ts(int fill, int rank, const int64_t *d)
{
    tspec t = {.rank = rank, .fill = fill};
    for (int i = 0; i < rank; i++) t.d[i] = d[i];
    return t;
}
#define TS(fill, ...) ts((fill), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                         (const int64_t[]){__VA_ARGS__})

static inline int64_t numel(const tspec *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->d[i];
    return n;
}

/* ---- a seeded generator */

static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static inline float rng_unit(uint64_t *s) /* in [0, 1) */
{
    return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0));
}

static inline uint64_t label_seed(const char *label, int round)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = label; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (h ^ (uint64_t)(round + 1) * 0x9e3779b97f4a7c15ull) | 1;
}

static inline float *alloc_filled(const tspec *t, uint64_t *s)
{
    int64_t n = numel(t);
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++) {
        float u = rng_unit(s);
        switch (t->fill) {
        case F_POS: p[i] = 0.5f + u; break;
        case F_RELU: p[i] = u < 0.5f ? 0.0f : 2.0f * u - 1.0f; break;
        case F_UNIT: p[i] = 0.02f + 0.96f * u; break;
        default: p[i] = 2.0f * u - 1.0f; break;
        }
    }
    return p;
}

static inline float *clone(const float *src, const tspec *t)
{
    size_t bytes = (size_t)(numel(t) > 0 ? numel(t) : 1) * sizeof(float);
    float *p = malloc(bytes);
    cr_assert_not_null(p);
    memcpy(p, src, bytes);
    return p;
}

static inline void set_tensor(op_tensor *o, const tspec *t, float *data)
{
    memset(o, 0, sizeof *o);
    o->rank = t->rank;
    for (int i = 0; i < t->rank; i++) o->d[i] = t->d[i];
    o->data = data;
}

static inline void make_call(op_call *c, const tcase *tc, int nthreads)
{
    memset(c, 0, sizeof *c);
    c->node = &tc->node;
    c->nin = tc->nin;
    c->nout = tc->nout;
    c->batch = tc->in[0].rank > 0 ? tc->in[0].d[0] : 1;
    c->nthreads = nthreads;
    for (int i = 0; i < tc->nin; i++) set_tensor(&c->in[i], &tc->in[i], NULL);
    for (int i = 0; i < tc->nout; i++) set_tensor(&c->out[i], &tc->out[i], NULL);
}

static inline void expect_close(const float *got, const float *ref, int64_t n, const char *label, const char *what,
                         int idx, int nthreads)
{
    double maxref = 0.0, maxdiff = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxdiff)) { /* NaN counts as the worst */
            maxdiff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    cr_assert(maxdiff <= RTOL * (maxref > 1e-30 ? maxref : 1e-30),
              "%s (%d threads): %s %d: max |diff| %g at %lld (onednn %g, ref %g), max |ref| %g", label,
              nthreads, what, idx, maxdiff, (long long)worst, (double)got[worst], (double)ref[worst], maxref);
}

/* The layout check_case gives oneDNN's tensors of rank 3 or more: plain, or OP_LAYOUT_NHWC (the
 * inputs copied into channels-last order before the run, the outputs and inputs copied back
 * before they are compared; the reference always runs plain). */
static int g_dnn_layout = OP_LAYOUT_PLAIN;

static inline void dnn_relayout(float **p, const op_tensor *t, bool to_cl)
{
    if (g_dnn_layout == OP_LAYOUT_PLAIN || t->rank < 3) return;
    int64_t n = t->d[0], ch = t->d[1], sp = 1;
    for (int k = 2; k < t->rank; k++) sp *= t->d[k];
    float *q = malloc((size_t)(n * ch * sp > 0 ? n * ch * sp : 1) * sizeof(float));
    cr_assert_not_null(q);
    ref_layout_copy(*p, q, n, ch, sp, sizeof(float), to_cl, 1);
    free(*p);
    *p = q;
}

/* Runs the case on both backends and compares; see the file comment. */
static inline void check_case(const tcase *tc, const char *label)
{
    const op_kernel *ref = op_kernel_get(tc->node.op, OP_BACKEND_REF);
    const op_kernel *dnn = op_kernel_get(tc->node.op, OP_BACKEND_ONEDNN);
    cr_assert_not_null(ref, "%s: no reference kernel", label);
    cr_assert_not_null(dnn, "%s: no oneDNN kernel", label);
    cr_assert_eq(dnn, op_onednn_kernel(tc->node.op));
    char err[256];
    op_call dc[2];
    for (int t = 0; t < 2; t++) {
        make_call(&dc[t], tc, t + 1);
        for (int i = 0; i < tc->nin + tc->nout; i++) {
            op_tensor *o = i < tc->nin ? &dc[t].in[i] : &dc[t].out[i - tc->nin];
            if (o->rank >= 3) o->layout = g_dnn_layout;
        }
        omp_set_num_threads(t + 1);
        err[0] = 0;
        cr_assert_not_null(dnn->prepare);
        cr_assert_eq(dnn->prepare(&dc[t], err, sizeof err), 0, "%s: prepare: %s", label, err);
        cr_assert_not_null(dc[t].state);
        cr_assert_eq(dnn->scratch, NULL);
    }
    for (int round = 0; round < 2; round++) {
        uint64_t s = label_seed(label, round);
        float *in[OP_MAX_IN], *rin[OP_MAX_IN], *rout[OP_MAX_OUT];
        for (int i = 0; i < tc->nin; i++) in[i] = alloc_filled(&tc->in[i], &s);
        op_call rc;
        make_call(&rc, tc, 1);
        for (int i = 0; i < tc->nin; i++) rc.in[i].data = rin[i] = clone(in[i], &tc->in[i]);
        for (int i = 0; i < tc->nout; i++) {
            rout[i] = calloc((size_t)(numel(&tc->out[i]) > 0 ? numel(&tc->out[i]) : 1), sizeof(float));
            rc.out[i].data = rout[i];
        }
        omp_set_num_threads(1);
        err[0] = 0;
        cr_assert_eq(ref->run(&rc, err, sizeof err), 0, "%s: reference: %s", label, err);
        for (int t = 0; t < 2; t++) {
            op_call *c = &dc[t];
            float *din[OP_MAX_IN], *dout[OP_MAX_OUT];
            for (int i = 0; i < tc->nin; i++) {
                din[i] = clone(in[i], &tc->in[i]);
                dnn_relayout(&din[i], &c->in[i], true);
                c->in[i].data = din[i];
            }
            for (int i = 0; i < tc->nout; i++) {
                int64_t n = numel(&tc->out[i]);
                dout[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
                for (int64_t k = 0; k < n; k++) dout[i][k] = NAN;
                c->out[i].data = dout[i];
            }
            omp_set_num_threads(t + 1);
            err[0] = 0;
            c->weights_version = (uint64_t)round + 1; /* new weights every round */
            cr_assert_eq(dnn->run(c, err, sizeof err), 0, "%s (%d threads): run: %s", label, t + 1, err);
            for (int i = 0; i < tc->nout; i++) dnn_relayout(&dout[i], &c->out[i], false);
            for (int i = 0; i < tc->nin; i++) dnn_relayout(&din[i], &c->in[i], false);
            for (int i = 0; i < tc->nout; i++)
                expect_close(dout[i], rout[i], numel(&tc->out[i]), label, "output", i, t + 1);
            for (int i = 0; i < tc->nin; i++)
                expect_close(din[i], rin[i], numel(&tc->in[i]), label, "input (after the run)", i, t + 1);
            for (int i = 0; i < tc->nin; i++) free(din[i]);
            for (int i = 0; i < tc->nout; i++) free(dout[i]);
        }
        for (int i = 0; i < tc->nin; i++) {
            free(in[i]);
            free(rin[i]);
        }
        for (int i = 0; i < tc->nout; i++) free(rout[i]);
    }
    for (int t = 0; t < 2; t++) dnn->release(dc[t].state);
}

#endif
