/* Helpers for the reference-kernel tests (test_ops_ref*.c): tensors, one kernel call through
 * the kernel table, a seeded generator, attribute builders, comparisons and the central
 * finite-difference gradient check. */
#ifndef CNN_TESTS_OPS_REF_UTIL_H
#define CNN_TESTS_OPS_REF_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "ops/ref.h"

/* SHAPE(2, 3, 4) expands to the two arguments `dims, rank`. */
#define SHAPE(...) (const int64_t[]){__VA_ARGS__}, \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

static inline int64_t t_numel(const op_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->d[i];
    return n;
}

/* Every tensor a test makes is recorded here and freed after the test (the suites' .fini),
 * so the sanitizer build sees no leaks.  Weak, so that the files of one suite share a single
 * record and the suite's .fini (in one of them) frees the tensors of the tests in all. */
__attribute__((weak)) float **t_allocs;
__attribute__((weak)) size_t t_nallocs, t_capallocs;

static inline void t_free_all(void)
{
    for (size_t i = 0; i < t_nallocs; i++)
        free(t_allocs[i]);
    free(t_allocs);
    t_allocs = NULL;
    t_nallocs = t_capallocs = 0;
}

/* A zero-filled tensor, freed by t_free_all. */
static inline op_tensor t_new(const int64_t *d, int rank)
{
    op_tensor t = {0};
    t.rank = rank;
    for (int i = 0; i < rank; i++)
        t.d[i] = d[i];
    t.data = calloc((size_t)(t_numel(&t) > 0 ? t_numel(&t) : 1), sizeof(float));
    cr_assert_not_null(t.data);
    if (t_nallocs == t_capallocs) {
        t_capallocs = t_capallocs ? 2 * t_capallocs : 64;
        t_allocs = realloc(t_allocs, sizeof(float *) * t_capallocs);
        cr_assert_not_null(t_allocs);
    }
    t_allocs[t_nallocs++] = t.data;
    return t;
}

/* A rank-0 tensor (one element), freed by t_free_all. */
static inline op_tensor scalar(void)
{
    return t_new(NULL, 0);
}

static inline op_tensor t_from(const float *vals, const int64_t *d, int rank)
{
    op_tensor t = t_new(d, rank);
    memcpy(t.data, vals, (size_t)t_numel(&t) * sizeof(float));
    return t;
}

/* A tensor with the same shape as t, zero-filled, or a copy of t. */
static inline op_tensor t_like(const op_tensor *t)
{
    return t_new(t->d, t->rank);
}

static inline op_tensor t_copy(const op_tensor *t)
{
    return t_from(t->data, t->d, t->rank);
}

/* ---- a seeded generator ---- */

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline double rng_uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static inline op_tensor t_rand(uint64_t *s, double lo, double hi, const int64_t *d, int rank)
{
    op_tensor t = t_new(d, rank);
    for (int64_t i = 0; i < t_numel(&t); i++)
        t.data[i] = (float)rng_uniform(s, lo, hi);
    return t;
}

/* Distinct values: a random permutation of lo, lo+step, ... (no ties within 2*eps of each
 * other, for max pooling and ReLU kinks). */
static inline op_tensor t_distinct(uint64_t *s, double lo, double step, const int64_t *d,
                                   int rank)
{
    op_tensor t = t_new(d, rank);
    int64_t n = t_numel(&t);
    for (int64_t i = 0; i < n; i++)
        t.data[i] = (float)(lo + step * (double)i);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(s) % (uint64_t)(i + 1));
        float tmp = t.data[i];
        t.data[i] = t.data[j];
        t.data[j] = tmp;
    }
    return t;
}

/* ---- one kernel call ---- */

typedef struct kcall {
    op_kind op;
    op_attrs attrs;
    int nin, nout;
    op_tensor in[OP_MAX_IN];
    op_tensor out[OP_MAX_OUT];
    int nthreads;
    uint64_t seed;
    int64_t step;
    op_node node;
    char err[256];
} kcall;

static inline kcall kc_make(op_kind op, const op_attrs *attrs)
{
    kcall k;
    memset(&k, 0, sizeof k);
    k.op = op;
    if (attrs)
        k.attrs = *attrs;
    k.nthreads = 1;
    k.step = 1;
    return k;
}

static inline void kc_in(kcall *k, op_tensor t) { k->in[k->nin++] = t; }
static inline void kc_out(kcall *k, op_tensor t) { k->out[k->nout++] = t; }

/* Runs the reference kernel for k->op through the kernel table; returns its status. */
static inline int kc_run(kcall *k)
{
    const op_kernel *kern = op_kernel_get(k->op, OP_BACKEND_REF);
    cr_assert_not_null(kern, "no reference kernel for op %d", (int)k->op);
    cr_assert_not_null(kern->run);
    memset(&k->node, 0, sizeof k->node);
    k->node.op = k->op;
    k->node.attrs = k->attrs;
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &k->node;
    c.nin = k->nin;
    c.nout = k->nout;
    for (int i = 0; i < k->nin; i++)
        c.in[i] = k->in[i];
    for (int i = 0; i < k->nout; i++)
        c.out[i] = k->out[i];
    c.batch = k->nin > 0 && k->in[0].rank > 0 ? k->in[0].d[0] : 0;
    c.nthreads = k->nthreads;
    c.seed = k->seed;
    c.step = k->step;
    k->err[0] = '\0';
    return kern->run(&c, k->err, sizeof k->err);
}

/* Runs and fails the test with the kernel's message when it does not return 0. */
static inline void kc_ok(kcall *k)
{
    int rc = kc_run(k);
    cr_assert_eq(rc, 0, "kernel for op %d failed: %s", (int)k->op, k->err);
}

/* ---- attributes ---- */

static inline op_attrs conv_attrs(int sdims, int64_t filters, int64_t kh, int64_t kw, int64_t sh,
                                  int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                                  int64_t groups, bool bias)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.sdims = sdims;
    a.conv.filters = filters;
    a.conv.kernel[0] = kh;
    a.conv.kernel[1] = kw;
    a.conv.stride[0] = sh;
    a.conv.stride[1] = sw;
    a.conv.pad[0] = ph;
    a.conv.pad[1] = pw;
    a.conv.dilation[0] = dh;
    a.conv.dilation[1] = dw;
    a.conv.groups = groups;
    a.conv.bias = bias;
    return a;
}

static inline op_attrs conv1d_attrs(int64_t filters, int64_t k, int64_t s, int64_t p, int64_t d,
                                    int64_t groups, bool bias)
{
    return conv_attrs(1, filters, 1, k, 1, s, 0, p, 1, d, groups, bias);
}

static inline op_attrs pool_attrs(int sdims, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                  int64_t ph, int64_t pw)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.pool.sdims = sdims;
    a.pool.size[0] = kh;
    a.pool.size[1] = kw;
    a.pool.stride[0] = sh;
    a.pool.stride[1] = sw;
    a.pool.pad[0] = ph;
    a.pool.pad[1] = pw;
    return a;
}

static inline op_attrs act_attrs(op_act act, float alpha)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.act.act = act;
    a.act.alpha = alpha;
    return a;
}

/* The optimisers' attributes (Adam's betas and eps at their usual values). */
static inline op_attrs optim_attrs(float lr, float momentum, bool nesterov, float wd)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.optim.lr = lr;
    a.optim.momentum = momentum;
    a.optim.nesterov = nesterov;
    a.optim.weight_decay = wd;
    a.optim.beta1 = 0.9f;
    a.optim.beta2 = 0.999f;
    a.optim.eps = 1e-8f;
    return a;
}

static inline op_attrs bn_attrs(float eps, float momentum, bool training)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.bn.eps = eps;
    a.bn.momentum = momentum;
    a.bn.training = training;
    return a;
}

static inline op_attrs dropout_attrs(float p, bool training)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.dropout.p = p;
    a.dropout.training = training;
    return a;
}

/* ---- comparisons ---- */

static inline void expect_values(const op_tensor *t, const float *want, int64_t n, double tol,
                                 const char *what)
{
    cr_assert_eq(t_numel(t), n, "%s: %lld elements, expected %lld", what,
                 (long long)t_numel(t), (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs((double)t->data[i] - (double)want[i]) <= tol,
                  "%s[%lld] = %.9g, expected %.9g", what, (long long)i, (double)t->data[i],
                  (double)want[i]);
}

static inline void expect_close(const op_tensor *a, const op_tensor *b, double tol,
                                const char *what)
{
    cr_assert_eq(t_numel(a), t_numel(b), "%s: sizes differ", what);
    for (int64_t i = 0; i < t_numel(a); i++) {
        double x = a->data[i], y = b->data[i];
        cr_assert(fabs(x - y) <= tol * fmax(1.0, fmax(fabs(x), fabs(y))),
                  "%s[%lld]: %.9g vs %.9g", what, (long long)i, x, y);
    }
}

static inline void expect_bitwise(const op_tensor *a, const op_tensor *b, const char *what)
{
    cr_assert_eq(t_numel(a), t_numel(b), "%s: sizes differ", what);
    cr_assert(memcmp(a->data, b->data, (size_t)t_numel(a) * sizeof(float)) == 0,
              "%s: results differ between thread counts", what);
}

/* ---- finite differences ---- */

/* The scalar objective a gradient check differentiates: sum of out[0] * weights over all
 * elements (weights NULL: out[0][0], for losses), after running the forward call k. */
typedef struct fd_objective {
    kcall *k;
    const float *weights;
} fd_objective;

static inline double fd_eval(fd_objective *o)
{
    kc_ok(o->k);
    const op_tensor *y = &o->k->out[0];
    if (!o->weights)
        return y->data[0];
    double s = 0.0;
    for (int64_t i = 0; i < t_numel(y); i++)
        s += (double)y->data[i] * (double)o->weights[i];
    return s;
}

/* Compares analytic[i] with the central difference of the objective in x[i], for every
 * element of x (which must be one of the forward call's inputs).  The step actually taken in
 * float is used as the denominator.  Tolerance: |a - fd| <= atol + rtol * max(|a|, |fd|). */
static inline double fd_check(const char *what, float *x, int64_t n, const float *analytic,
                              fd_objective *o, double eps, double rtol, double atol)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float save = x[i];
        float xp = (float)((double)save + eps), xm = (float)((double)save - eps);
        x[i] = xp;
        double lp = fd_eval(o);
        x[i] = xm;
        double lm = fd_eval(o);
        x[i] = save;
        double fd = (lp - lm) / ((double)xp - (double)xm), an = analytic[i];
        double diff = fabs(fd - an), bound = atol + rtol * fmax(fabs(fd), fabs(an));
        if (diff / bound > worst)
            worst = diff / bound;
        cr_assert(diff <= bound, "%s[%lld]: analytic %.7g, finite difference %.7g", what,
                  (long long)i, an, fd);
    }
    return worst;
}

#endif
