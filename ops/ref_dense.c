/* Reference dense (fully connected) layer: y = act(x w^T + b), then softmax over the units
 * when fused; backward to the data and to the weights and bias.  x [N, ...] is read as [N, F]
 * in C,H,W order; w is [U, F] (PyTorch's layout).  Sums are in double and each output
 * element is computed by one thread in a fixed order, so results do not depend on the thread
 * count. */
#include <stdlib.h>

#include "ops/ref_common.h"
#include "ops/mem.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Checks w [U, F] against x's per-item size F and (when the attributes give it) the units. */
static int check_weight(const op_dense_attrs *a, const op_tensor *w, int64_t f, const char *name,
                        char *err, size_t errlen)
{
    char s1[64];
    if (w->rank != 2 || w->d[1] != f || (a->units > 0 && w->d[0] != a->units))
        return ref_fail(err, errlen, "%s: weight is %s, expected [%lld, %lld]", name,
                        ref_shape_str(w, s1, sizeof s1), (long long)(a->units > 0 ? a->units
                                                                                  : w->d[0]),
                        (long long)f);
    return 0;
}

static int check_batch_units(const op_tensor *t, int64_t n, int64_t u, const char *name,
                             const char *what, char *err, size_t errlen)
{
    char s1[64];
    if (t->rank != 2 || t->d[0] != n || t->d[1] != u)
        return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld]", name, what,
                        ref_shape_str(t, s1, sizeof s1), (long long)n, (long long)u);
    return 0;
}

OP_REF_KERNEL(op_ref_dense)
{
    const char *name = "dense";
    if (ref_check_call(c, name, 2, 3, 1, 1, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->nin != (a->bias ? 3 : 2))
        return ref_fail(err, errlen, "%s: expected %d inputs (bias %s), got %d", name,
                        a->bias ? 3 : 2, a->bias ? "on" : "off", c->nin);
    const op_tensor *xt = &c->in[0];
    if (xt->rank < 2)
        return ref_fail(err, errlen, "%s: input has rank %d, expected a batch axis and features",
                        name, xt->rank);
    int64_t n = xt->d[0], f = ref_inner(xt);
    if (check_weight(a, &c->in[1], f, name, err, errlen))
        return -1;
    int64_t u = c->in[1].d[0];
    if (a->bias && (c->in[2].rank != 1 || c->in[2].d[0] != u))
        return ref_fail(err, errlen, "%s: bias has %lld elements, expected %lld", name,
                        (long long)op_tensor_numel(&c->in[2]), (long long)u);
    if (check_batch_units(&c->out[0], n, u, name, "output", err, errlen))
        return -1;
    const float *x = xt->data, *w = c->in[1].data, *b = a->bias ? c->in[2].data : NULL;
    float *y = c->out[0].data;
    int nt = ref_threads(c);

    /* x is (N, F), w is (U, F), y is (N, U) */
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < u; k++) {
            const float *xr = x + i * f, *wr = w + k * f;
            double acc = 0.0;
            for (int64_t j = 0; j < f; j++)
                acc += (double)xr[j] * (double)wr[j];
            if (b)
                acc += (double)b[k];
            y[i * u + k] = op_apply_act(a->act, a->alpha, (float)acc);
        }
    }
    if (a->softmax) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            ref_softmax_strided(y + i * u, y + i * u, u, 1);
    }
    return 0;
}

/* dx[n,f] = sum over u of dy[n,u] * w[u,f].  Rows of w are streamed into a per-thread double
 * accumulator row; dx's shape comes from out[0]. */
OP_REF_KERNEL(op_ref_dense_bwd_data)
{
    const char *name = "dense_bwd_data";
    if (ref_check_call(c, name, 2, 2, 1, 1, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    const op_tensor *dxt = &c->out[0];
    if (dxt->rank < 2)
        return ref_fail(err, errlen, "%s: dx has rank %d, expected a batch axis and features",
                        name, dxt->rank);
    int64_t n = dxt->d[0], f = ref_inner(dxt);
    if (check_weight(a, &c->in[1], f, name, err, errlen))
        return -1;
    int64_t u = c->in[1].d[0];
    if (check_batch_units(&c->in[0], n, u, name, "dy", err, errlen))
        return -1;
    const float *dy = c->in[0].data, *w = c->in[1].data;
    float *dx = dxt->data;
    int nt = ref_threads(c);
    double *acc = cnn_mem_malloc((size_t)nt * (size_t)(f > 0 ? f : 1) * sizeof(double));
    if (!acc)
        return ref_fail(err, errlen, "%s: out of memory", name);

#pragma omp parallel num_threads(nt)
    {
        double *row = acc + (size_t)thread_index() * (size_t)f;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < f; j++)
                row[j] = 0.0;
            for (int64_t k = 0; k < u; k++) {
                double g = dy[i * u + k];
                const float *wr = w + k * f;
                for (int64_t j = 0; j < f; j++)
                    row[j] += g * (double)wr[j];
            }
            for (int64_t j = 0; j < f; j++)
                dx[i * f + j] = (float)row[j];
        }
    }
    cnn_mem_free(acc);
    return 0;
}

/* dw[u,f] = sum over n of dy[n,u] * x[n,f]; db[u] = sum over n of dy[n,u].  Parallel over the
 * units: each thread owns whole rows of dw. */
OP_REF_KERNEL(op_ref_dense_bwd_weights)
{
    const char *name = "dense_bwd_weights";
    if (ref_check_call(c, name, 2, 2, 1, 2, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->nout != (a->bias ? 2 : 1))
        return ref_fail(err, errlen, "%s: expected %d outputs (bias %s), got %d", name,
                        a->bias ? 2 : 1, a->bias ? "on" : "off", c->nout);
    const op_tensor *xt = &c->in[1];
    if (xt->rank < 2)
        return ref_fail(err, errlen, "%s: x has rank %d, expected a batch axis and features",
                        name, xt->rank);
    int64_t n = xt->d[0], f = ref_inner(xt);
    if (check_weight(a, &c->out[0], f, name, err, errlen))
        return -1;
    int64_t u = c->out[0].d[0];
    if (check_batch_units(&c->in[0], n, u, name, "dy", err, errlen))
        return -1;
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != u))
        return ref_fail(err, errlen, "%s: bias gradient has %lld elements, expected %lld", name,
                        (long long)op_tensor_numel(&c->out[1]), (long long)u);
    const float *dy = c->in[0].data, *x = xt->data;
    float *dw = c->out[0].data, *db = a->bias ? c->out[1].data : NULL;
    int nt = ref_threads(c);
    double *acc = cnn_mem_malloc((size_t)nt * (size_t)(f > 0 ? f : 1) * sizeof(double));
    if (!acc)
        return ref_fail(err, errlen, "%s: out of memory", name);

#pragma omp parallel num_threads(nt)
    {
        double *row = acc + (size_t)thread_index() * (size_t)f;
#pragma omp for schedule(static)
        for (int64_t k = 0; k < u; k++) {
            double bsum = 0.0;
            for (int64_t j = 0; j < f; j++)
                row[j] = 0.0;
            for (int64_t i = 0; i < n; i++) {
                double g = dy[i * u + k];
                const float *xr = x + i * f;
                for (int64_t j = 0; j < f; j++)
                    row[j] += g * (double)xr[j];
                bsum += g;
            }
            for (int64_t j = 0; j < f; j++)
                dw[k * f + j] = (float)row[j];
            if (db)
                db[k] = (float)bsum;
        }
    }
    cnn_mem_free(acc);
    return 0;
}
