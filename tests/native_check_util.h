/* The harness of the native kernel suites (test_ops_native.c, test_ops_native_3d.c): a call
 * described by its shapes (tcase), run through the reference kernel and then through the
 * native one at every ISA level this CPU supports, at 1 and 2 threads (check_case).
 *
 * Agreement, for every output tensor y of a call and the reference's r:
 *     max_i |y_i - r_i| <= RTOL * max_i |r_i|     (RTOL 1e-5 unless the file sets it)
 * (NaN anywhere fails; outputs are filled with NaN before the run, so an unwritten element
 * fails too).  Inputs must be unchanged by the run.  At one ISA level the results at 1 and 2
 * threads must be bitwise equal (the kernels sum each element in an order fixed by the
 * shapes).  The 2-thread runs use the scratch the kernel asks for through scratch(), the
 * 1-thread runs let the kernel allocate its own.  A kernel with a prepare() runs twice, the
 * second run on the state the first left (the convolutions' kept packed weights).  Static
 * functions: include from one test file each. */
#ifndef CNN_TESTS_NATIVE_CHECK_UTIL_H
#define CNN_TESTS_NATIVE_CHECK_UTIL_H

#include <criterion/criterion.h>

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/native/native.h"
#include "ops/ref.h"
#include "ops/ref_common.h"

#ifndef RTOL /* (a suite may allow more: Winograd's rounding, tests/test_ops_native_wino.c) */
#define RTOL 1e-5
#endif

typedef struct tspec {
    int rank;
    int64_t d[OP_MAX_DIMS];
} tspec;

typedef struct tcase {
    op_node node;
    int nin, nout;
    tspec in[OP_MAX_IN], out[OP_MAX_OUT];
    int residual_in_place; /* the residual input (index) is also the output's memory, or -1 */
    /* bit i: input (cl_in) or output (cl_out) i is given to the native kernel channels-last
     * (NHWC, NWC); the reference always gets plain tensors */
    unsigned cl_in, cl_out;
} tcase;

static tspec ts(int rank, const int64_t *d)
{
    tspec t = {.rank = rank};
    for (int i = 0; i < rank; i++)
        t.d[i] = d[i];
    return t;
}
#define TS(...) ts((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                   (const int64_t[]){__VA_ARGS__})

static int64_t numel(const tspec *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->d[i];
    return n;
}

static size_t bytes_of(const tspec *t)
{
    int64_t n = numel(t);
    return (size_t)(n > 0 ? n : 1) * sizeof(float);
}

/* ---- a seeded generator: uniform in [-1, 1) */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t label_seed(const char *label)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = label; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static float *alloc_random(const tspec *t, uint64_t *s)
{
    float *p = malloc(bytes_of(t));
    cr_assert_not_null(p);
    for (int64_t i = 0; i < numel(t); i++)
        p[i] = (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    return p;
}

static float *alloc_nan(const tspec *t)
{
    float *p = malloc(bytes_of(t));
    cr_assert_not_null(p);
    for (int64_t i = 0; i < numel(t); i++)
        p[i] = NAN;
    return p;
}

static float *clone(const float *src, const tspec *t)
{
    float *p = malloc(bytes_of(t));
    cr_assert_not_null(p);
    memcpy(p, src, bytes_of(t));
    return p;
}

static void make_call(op_call *c, const tcase *tc, int nthreads)
{
    memset(c, 0, sizeof *c);
    c->node = &tc->node;
    c->nin = tc->nin;
    c->nout = tc->nout;
    c->batch = tc->in[0].d[0];
    c->nthreads = nthreads;
    for (int i = 0; i < tc->nin; i++) {
        c->in[i].rank = tc->in[i].rank;
        memcpy(c->in[i].d, tc->in[i].d, sizeof c->in[i].d);
    }
    for (int i = 0; i < tc->nout; i++) {
        c->out[i].rank = tc->out[i].rank;
        memcpy(c->out[i].d, tc->out[i].d, sizeof c->out[i].d);
    }
}

/* *p (of shape t) replaced by a copy in channels-last order (to_cl) or back in plain order. */
static void relayout(float **p, const tspec *t, bool to_cl)
{
    int64_t n = t->d[0], ch = t->rank > 1 ? t->d[1] : 1;
    int64_t sp = n * ch > 0 ? numel(t) / (n * ch) : 0;
    float *q = malloc(bytes_of(t));
    cr_assert_not_null(q);
    ref_layout_copy(*p, q, n, ch, sp, sizeof(float), to_cl, 1);
    free(*p);
    *p = q;
}

/* max |got - ref| <= RTOL * max |ref|, NaN failing */
static void expect_close(const float *got, const float *ref, int64_t n, const char *label,
                         const char *what, int idx)
{
    double maxref = 0.0, maxdiff = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxdiff)) {
            maxdiff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    cr_assert(maxdiff <= RTOL * maxref || (maxdiff == 0.0 && maxref == 0.0),
              "%s: %s %d: max |diff| %g at %lld (native %.9g, ref %.9g), max |ref| %g", label,
              what, idx, maxdiff, (long long)worst, n > 0 ? (double)got[worst] : 0.0,
              n > 0 ? (double)ref[worst] : 0.0, maxref);
}

/* Runs the case through the reference, then through the native kernel at every ISA level
 * and at 1 and 2 threads; see the file comment for what is checked. */
static void check_case(const tcase *tc, const char *label)
{
    const op_kernel *ref = op_kernel_get(tc->node.op, OP_BACKEND_REF);
    const op_kernel *nat = op_kernel_get(tc->node.op, OP_BACKEND_NATIVE);
    cr_assert_not_null(ref, "%s: no reference kernel", label);
    cr_assert_not_null(nat, "%s: no native kernel", label);
    cr_assert_eq(nat, op_native_kernel(tc->node.op));
    char err[256];
    uint64_t s = label_seed(label);
    float *in[OP_MAX_IN], *rout[OP_MAX_OUT];
    for (int i = 0; i < tc->nin; i++)
        in[i] = alloc_random(&tc->in[i], &s);
    op_call rc;
    make_call(&rc, tc, 1);
    for (int i = 0; i < tc->nin; i++)
        rc.in[i].data = clone(in[i], &tc->in[i]);
    for (int i = 0; i < tc->nout; i++)
        rc.out[i].data = rout[i] = alloc_nan(&tc->out[i]);
    err[0] = '\0';
    cr_assert_eq(ref->run(&rc, err, sizeof err), 0, "%s: reference: %s", label, err);
    for (int i = 0; i < tc->nin; i++)
        free(rc.in[i].data);

    op_native_isa_level top = op_native_isa_supported();
    for (int level = OP_NATIVE_SCALAR; level <= (int)top; level++) {
        cr_assert_eq(op_native_force_isa((op_native_isa_level)level), 0);
        float *first[OP_MAX_OUT] = {0};
        for (int nt = 1; nt <= 2; nt++) {
            char what[200];
            snprintf(what, sizeof what, "%s [%s, %d thread%s]", label,
                     op_native_isa_name((op_native_isa_level)level), nt, nt > 1 ? "s" : "");
            op_call c;
            make_call(&c, tc, nt);
            float *din[OP_MAX_IN], *dout[OP_MAX_OUT];
            for (int i = 0; i < tc->nin; i++) {
                din[i] = clone(in[i], &tc->in[i]);
                if (tc->cl_in >> i & 1u) {
                    relayout(&din[i], &tc->in[i], true);
                    c.in[i].layout = OP_LAYOUT_NHWC;
                }
                c.in[i].data = din[i];
            }
            for (int i = 0; i < tc->nout; i++) {
                c.out[i].data = dout[i] = alloc_nan(&tc->out[i]);
                if (tc->cl_out >> i & 1u)
                    c.out[i].layout = OP_LAYOUT_NHWC;
            }
            if (tc->residual_in_place >= 0) {
                /* y over r: the output's memory holds the residual */
                int k = tc->residual_in_place;
                memcpy(dout[0], din[k], bytes_of(&tc->in[k]));
                c.in[k].data = dout[0];
            }
            void *scratch = NULL;
            if (nt == 2 && nat->scratch) {
                size_t bytes = nat->scratch(&c);
                if (bytes > 0) {
                    scratch = aligned_alloc(64, (bytes + 63) / 64 * 64);
                    cr_assert_not_null(scratch);
                    c.scratch = scratch;
                }
            }
            omp_set_num_threads(nt);
            err[0] = '\0';
            if (nat->prepare)
                cr_assert_eq(nat->prepare(&c, err, sizeof err), 0, "%s: prepare: %s", what, err);
            cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s: run: %s", what, err);
            /* a kernel with state runs twice: the second run reads what the first kept (the
             * convolutions' packed weights, the weights' version unchanged) */
            if (c.state && tc->residual_in_place < 0)
                cr_assert_eq(nat->run(&c, err, sizeof err), 0, "%s: second run: %s", what, err);
            if (nat->release)
                nat->release(c.state);
            for (int i = 0; i < tc->nout; i++)
                if (tc->cl_out >> i & 1u)
                    relayout(&dout[i], &tc->out[i], false);
            for (int i = 0; i < tc->nin; i++)
                if (tc->cl_in >> i & 1u && i != tc->residual_in_place)
                    relayout(&din[i], &tc->in[i], false);
            for (int i = 0; i < tc->nout; i++)
                expect_close(dout[i], rout[i], numel(&tc->out[i]), what, "output", i);
            for (int i = 0; i < tc->nin; i++) {
                if (i == tc->residual_in_place)
                    continue;
                cr_assert(memcmp(din[i], in[i], bytes_of(&tc->in[i])) == 0,
                          "%s: input %d changed by the run", what, i);
            }
            for (int i = 0; i < tc->nout; i++) {
                if (nt == 1) {
                    first[i] = dout[i];
                    continue;
                }
                cr_assert(memcmp(first[i], dout[i], bytes_of(&tc->out[i])) == 0,
                          "%s: output %d differs from the 1-thread run", what, i);
                free(first[i]);
                free(dout[i]);
            }
            free(scratch);
            for (int i = 0; i < tc->nin; i++)
                free(din[i]);
        }
    }
    cr_assert_eq(op_native_force_isa(top), 0);
    for (int i = 0; i < tc->nin; i++)
        free(in[i]);
    for (int i = 0; i < tc->nout; i++)
        free(rout[i]);
}

#endif
