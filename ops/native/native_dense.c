/* Native dense (fully connected) layer through the GEMM of native_gemm.c:
 *   forward        y[N][U] = act(x[N][F] w[U][F]^T + b), then softmax over U when fused:
 *                  A = x (transposed while packing), B = w^T (w's rows packed as columns),
 *                  the epilogue adds the bias per column; softmax runs per row afterwards.
 *   backward data  dx[N][F] = dy[N][U] w[U][F].
 *   backward wts   dw[U][F] = dy^T x (the batch is K), db[u] = sum over the batch of dy.
 * x [N, ...] is read as [N, F]; layouts as in ops/ref.h. */
#include <string.h>

#include "ops/native/native_common.h"
#include "ops/mem.h"
#include "ops/native/native_gemm.h"

typedef struct dense_job {
    int64_t n, f, u;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
    op_act act;
    float alpha;
    bool softmax;
} dense_job;

static int check_weight(const op_dense_attrs *a, const op_tensor *w, int64_t f, const char *name,
                        char *err, size_t errlen)
{
    char s1[64];
    if (w->rank != 2 || w->d[1] != f || (a->units > 0 && w->d[0] != a->units))
        return ref_fail(err, errlen, "%s: weight is %s, expected [%lld, %lld]", name,
                        ref_shape_str(w, s1, sizeof s1),
                        (long long)(a->units > 0 ? a->units : w->d[0]), (long long)f);
    return 0;
}

static int check_nu(const op_tensor *t, int64_t n, int64_t u, const char *name, const char *what,
                    char *err, size_t errlen)
{
    char s1[64];
    if (t->rank != 2 || t->d[0] != n || t->d[1] != u)
        return ref_fail(err, errlen, "%s: %s is %s, expected [%lld, %lld]", name, what,
                        ref_shape_str(t, s1, sizeof s1), (long long)n, (long long)u);
    return 0;
}

/* Largest scratch over the ISA levels (the level may be forced after prepare). */
static size_t scratch_max(const op_native_gemm *gm, int nt)
{
    size_t best = 0;
    for (int l = 0; l <= (int)op_native_isa_supported(); l++) {
        size_t b = op_native_gemm_scratch(gm, nat_isa_level(l), nt);
        best = b > best ? b : best;
    }
    return best;
}

static int run_gemm(op_call *c, const op_native_gemm *gm, const char *name, char *err,
                    size_t errlen)
{
    int nt = nat_threads(c);
    size_t bytes = scratch_max(gm, nt);
    bool owned;
    float *scratch = nat_scratch(c, bytes, &owned);
    if (!scratch && bytes > 0)
        return ref_fail(err, errlen, "%s: out of memory", name);
    op_native_gemm_run(gm, op_native_isa_table(), nt, scratch);
    if (owned)
        cnn_mem_aligned_free(scratch);
    return 0;
}

/* ---- forward ---- */

static int fwd_setup(const op_call *c, bool data, dense_job *d, char *err, size_t errlen)
{
    const char *name = "native dense";
    memset(d, 0, sizeof *d);
    if (nat_check_call(c, name, 2, 3, 1, 1, data, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->nin != (a->bias ? 3 : 2))
        return ref_fail(err, errlen, "%s: expected %d inputs (bias %s), got %d", name,
                        a->bias ? 3 : 2, a->bias ? "on" : "off", c->nin);
    if (c->in[0].rank < 2)
        return ref_fail(err, errlen, "%s: input has rank %d, expected a batch axis and features",
                        name, c->in[0].rank);
    d->n = c->in[0].d[0];
    d->f = ref_inner(&c->in[0]);
    if (check_weight(a, &c->in[1], d->f, name, err, errlen))
        return -1;
    d->u = c->in[1].d[0];
    if (a->bias && (c->in[2].rank != 1 || c->in[2].d[0] != d->u))
        return ref_fail(err, errlen, "%s: bias has %lld elements, expected %lld", name,
                        (long long)op_tensor_numel(&c->in[2]), (long long)d->u);
    if (check_nu(&c->out[0], d->n, d->u, name, "output", err, errlen))
        return -1;
    d->act = a->act;
    d->alpha = a->alpha;
    d->softmax = a->softmax;
    return 0;
}

static void fwd_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                       int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    (void)a;
    const dense_job *d = ctx;
    isa->pack_t(d->x + row0 * d->f + k0, d->f, nrows, kc, isa->mr, dst);
}

static void fwd_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                       int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    (void)b;
    const dense_job *d = ctx;
    isa->pack_t(d->w + col0 * d->f + k0, d->f, ncols, kc, isa->nr, dst);
}

static void fwd_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                      int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)b;
    const dense_job *d = ctx;
    for (int64_t r = 0; r < nrows; r++)
        isa->epilogue(d->y + (row0 + r) * d->u + col0, src + r * ld, ncols, 0.0f,
                      d->b ? d->b + col0 : NULL, NULL, d->act, d->alpha);
}

static void fwd_softmax(void *ctx, const op_native_isa *isa, int64_t row)
{
    const dense_job *d = ctx;
    isa->softmax(d->y + row * d->u, d->u);
}

static void fwd_spec(dense_job *d, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = d->n;
    gm->n = d->u;
    gm->k = d->f;
    gm->nprob = 1;
    gm->na = 1;
    gm->ksplit = 1;
    gm->ctx = d;
    gm->pack_a = fwd_pack_a;
    gm->pack_b = fwd_pack_b;
    gm->store = fwd_store;
    if (d->softmax) {
        gm->post = fwd_softmax;
        gm->npost = d->n;
    }
}

size_t op_native_dense_scratch(const op_call *c)
{
    dense_job d;
    op_native_gemm gm;
    if (fwd_setup(c, false, &d, NULL, 0))
        return 0;
    fwd_spec(&d, &gm);
    return scratch_max(&gm, nat_threads(c));
}

int op_native_dense(op_call *c, char *err, size_t errlen)
{
    dense_job d;
    op_native_gemm gm;
    if (fwd_setup(c, true, &d, err, errlen))
        return -1;
    d.x = c->in[0].data;
    d.w = c->in[1].data;
    d.b = c->node->attrs.dense.bias ? c->in[2].data : NULL;
    d.y = c->out[0].data;
    fwd_spec(&d, &gm);
    return run_gemm(c, &gm, "native dense", err, errlen);
}

/* ---- backward to the data ---- */

static int bd_setup(const op_call *c, bool data, dense_job *d, char *err, size_t errlen)
{
    const char *name = "native dense_bwd_data";
    memset(d, 0, sizeof *d);
    if (nat_check_call(c, name, 2, 2, 1, 1, data, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->out[0].rank < 2)
        return ref_fail(err, errlen, "%s: dx has rank %d, expected a batch axis and features",
                        name, c->out[0].rank);
    d->n = c->out[0].d[0];
    d->f = ref_inner(&c->out[0]);
    if (check_weight(a, &c->in[1], d->f, name, err, errlen))
        return -1;
    d->u = c->in[1].d[0];
    return check_nu(&c->in[0], d->n, d->u, name, "dy", err, errlen);
}

static void bd_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                      int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    (void)a;
    const dense_job *d = ctx;
    isa->pack_t(d->dy + row0 * d->u + k0, d->u, nrows, kc, isa->mr, dst);
}

static void bd_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                      int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    (void)b;
    const dense_job *d = ctx;
    isa->pack_n(d->w + k0 * d->f + col0, d->f, ncols, kc, isa->nr, dst);
}

static void bd_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                     int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)isa;
    (void)b;
    const dense_job *d = ctx;
    for (int64_t r = 0; r < nrows; r++)
        memcpy(d->dx + (row0 + r) * d->f + col0, src + r * ld, (size_t)ncols * sizeof(float));
}

static void bd_spec(dense_job *d, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = d->n;
    gm->n = d->f;
    gm->k = d->u;
    gm->nprob = 1;
    gm->na = 1;
    gm->ksplit = 1;
    gm->ctx = d;
    gm->pack_a = bd_pack_a;
    gm->pack_b = bd_pack_b;
    gm->store = bd_store;
}

size_t op_native_dense_bwd_data_scratch(const op_call *c)
{
    dense_job d;
    op_native_gemm gm;
    if (bd_setup(c, false, &d, NULL, 0))
        return 0;
    bd_spec(&d, &gm);
    return scratch_max(&gm, nat_threads(c));
}

int op_native_dense_bwd_data(op_call *c, char *err, size_t errlen)
{
    dense_job d;
    op_native_gemm gm;
    if (bd_setup(c, true, &d, err, errlen))
        return -1;
    d.dy = c->in[0].data;
    d.w = c->in[1].data;
    d.dx = c->out[0].data;
    bd_spec(&d, &gm);
    return run_gemm(c, &gm, "native dense_bwd_data", err, errlen);
}

/* ---- backward to the weights ---- */

static int bw_setup(const op_call *c, bool data, dense_job *d, char *err, size_t errlen)
{
    const char *name = "native dense_bwd_weights";
    memset(d, 0, sizeof *d);
    if (nat_check_call(c, name, 2, 2, 1, 2, data, err, errlen))
        return -1;
    const op_dense_attrs *a = &c->node->attrs.dense;
    if (c->nout != (a->bias ? 2 : 1))
        return ref_fail(err, errlen, "%s: expected %d outputs (bias %s), got %d", name,
                        a->bias ? 2 : 1, a->bias ? "on" : "off", c->nout);
    if (c->in[1].rank < 2)
        return ref_fail(err, errlen, "%s: x has rank %d, expected a batch axis and features",
                        name, c->in[1].rank);
    d->n = c->in[1].d[0];
    d->f = ref_inner(&c->in[1]);
    if (check_weight(a, &c->out[0], d->f, name, err, errlen))
        return -1;
    d->u = c->out[0].d[0];
    if (check_nu(&c->in[0], d->n, d->u, name, "dy", err, errlen))
        return -1;
    if (a->bias && (c->out[1].rank != 1 || c->out[1].d[0] != d->u))
        return ref_fail(err, errlen, "%s: bias gradient has %lld elements, expected %lld", name,
                        (long long)op_tensor_numel(&c->out[1]), (long long)d->u);
    return 0;
}

static void bw_pack_a(void *ctx, const op_native_isa *isa, int64_t a, int64_t row0,
                      int64_t nrows, int64_t k0, int64_t kc, float *dst)
{
    (void)a;
    const dense_job *d = ctx;
    isa->pack_n(d->dy + k0 * d->u + row0, d->u, nrows, kc, isa->mr, dst);
}

static void bw_pack_b(void *ctx, const op_native_isa *isa, int64_t b, int64_t col0,
                      int64_t ncols, int64_t k0, int64_t kc, float *dst)
{
    (void)b;
    const dense_job *d = ctx;
    isa->pack_n(d->x + k0 * d->f + col0, d->f, ncols, kc, isa->nr, dst);
}

static void bw_store(void *ctx, const op_native_isa *isa, int64_t b, int64_t row0,
                     int64_t nrows, int64_t col0, int64_t ncols, float *src, int64_t ld)
{
    (void)isa;
    (void)b;
    const dense_job *d = ctx;
    for (int64_t r = 0; r < nrows; r++)
        memcpy(d->dw + (row0 + r) * d->f + col0, src + r * ld, (size_t)ncols * sizeof(float));
}

static void bw_bias(void *ctx, const op_native_isa *isa, int64_t u)
{
    (void)isa;
    const dense_job *d = ctx;
    double acc = 0.0;
    for (int64_t i = 0; i < d->n; i++)
        acc += d->dy[i * d->u + u];
    d->db[u] = (float)acc;
}

static void bw_spec(dense_job *d, bool bias, op_native_gemm *gm)
{
    memset(gm, 0, sizeof *gm);
    gm->m = d->u;
    gm->n = d->f;
    gm->k = d->n;
    gm->nprob = 1;
    gm->na = 1;
    gm->ksplit = 1;
    gm->ctx = d;
    gm->pack_a = bw_pack_a;
    gm->pack_b = bw_pack_b;
    gm->store = bw_store;
    if (bias) {
        gm->post = bw_bias;
        gm->npost = d->u;
    }
}

size_t op_native_dense_bwd_weights_scratch(const op_call *c)
{
    dense_job d;
    op_native_gemm gm;
    if (bw_setup(c, false, &d, NULL, 0))
        return 0;
    bw_spec(&d, false, &gm);
    return scratch_max(&gm, nat_threads(c));
}

int op_native_dense_bwd_weights(op_call *c, char *err, size_t errlen)
{
    dense_job d;
    op_native_gemm gm;
    if (bw_setup(c, true, &d, err, errlen))
        return -1;
    bool bias = c->node->attrs.dense.bias;
    d.dy = c->in[0].data;
    d.x = c->in[1].data;
    d.dw = c->out[0].data;
    d.db = bias ? c->out[1].data : NULL;
    bw_spec(&d, bias, &gm);
    return run_gemm(c, &gm, "native dense_bwd_weights", err, errlen);
}
