/* Whole-dataset evaluation through an inference session: cnn_evaluate (loss and top-1, the
 * training loop's, shared across processes when training is data-parallel) and
 * cnn_evaluate_report (also top-5 and the confusion matrix: cnnc eval's report).  One core for
 * both: the batches come from a loader with the session's train config (scaled and normalised
 * as training makes them, never augmented), in order; the last partial batch is padded and its
 * padding ignored. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ops/mem.h"
#include "runtime/data.h"
#include "runtime/dist.h"
#include "runtime/rt.h"

typedef struct eval_sums {
    double loss;
    int64_t top1, top5;
    int64_t *confusion;   /* per_out x per_out (rows: the label), or NULL */
} eval_sums;

/* One example's output row against its label. */
static void score(const float *row, int64_t per_out, int64_t label, int loss_kind, eval_sums *e)
{
    int64_t best = 0, above = 0;
    for (int64_t k = 1; k < per_out; k++)
        if (row[k] > row[best])
            best = k;
    for (int64_t k = 0; k < per_out; k++)
        above += row[k] > row[label];
    e->top1 += best == label;
    e->top5 += above < 5;
    if (e->confusion)
        e->confusion[label * per_out + best]++;
    double mx = row[best];
    if (loss_kind == 0) {
        double sum = 0;
        for (int64_t k = 0; k < per_out; k++)
            sum += exp((double)row[k] - mx);
        e->loss += log(sum) + mx - (double)row[label];
    } else {
        double se = 0;
        for (int64_t k = 0; k < per_out; k++) {
            double t = (k == label ? 1.0 : 0.0) - (double)row[k];
            se += t * t;
        }
        e->loss += se / (double)per_out;
    }
}

/* Checks the call: an inference session, a known loss, a dataset that fits (every label a class
 * of the output: cnn_dataset_check need not have been called). */
static cnn_status eval_check(cnn_session *s, const cnn_dataset *d, int loss_kind, const char *who)
{
    if (!s->plan || s->mode != CNN_MODE_INFER)
        return rt_fail(s->err, CNN_ERR_USAGE, "%s needs an inference session", who);
    if (loss_kind != 0 && loss_kind != 1)
        return rt_fail(s->err, CNN_ERR_USAGE, "%s: loss_kind is 0 (cross_entropy) or 1 (mse), got %d", who, loss_kind);
    char err[1024];
    if (cnn_dataset_check(d, s->model, err, sizeof err) != CNN_OK)
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    return CNN_OK;
}

/* Sums examples [first, end) of d into e. */
static cnn_status eval_range(cnn_session *s, const cnn_dataset *d, int loss_kind, int64_t first, int64_t end,
                             eval_sums *e)
{
    const ir_graph *g = s->plan->graph;
    int64_t per_out = op_shape_numel(&g->vals[g->outputs[0]].shape);
    int64_t per_in = op_shape_numel(&g->vals[g->inputs[0]].shape);
    int64_t dims[4];
    char err[1024];
    cnn_loader_options lo;
    cnn_loader_options_default(&lo);
    lo.batch = s->batch;
    if (rt_dataset_fit(d, cnn_model_input_shape(s->model, 0, dims), dims, &lo.channels, err, sizeof err) != CNN_OK)
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    int64_t count = end - first, *order = NULL;
    if (count <= 0)
        return CNN_OK;
    if (first > 0) {
        if (!(order = cnn_mem_malloc(sizeof(int64_t) * (size_t)count)))
            return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < count; i++)
            order[i] = first + i;
    }
    cnn_loader *l = NULL;
    float *labels = cnn_mem_malloc(sizeof(float) * (size_t)s->batch);
    cnn_status st = labels ? cnn_loader_create(&l, d, &s->train, &lo, err, sizeof err) : CNN_ERR_NOMEM;
    if (st == CNN_OK)
        st = cnn_loader_start(l, order, count, 0, 0);
    else
        rt_fail(s->err, st, "%s", labels ? err : "out of memory");
    float *x = cnn_session_input(s, 0);
    while (st == CNN_OK) {
        int64_t take = 0;
        if ((st = cnn_loader_next(l, x, labels, &take)) != CNN_OK || take == 0)
            break;
        if (take < s->batch)
            memset(x + take * per_in, 0, sizeof(float) * (size_t)((s->batch - take) * per_in));
        if ((st = rt_execute(s)) != CNN_OK)
            break;
        const float *y = cnn_session_output(s, 0);
        for (int64_t i = 0; i < take; i++)
            score(y + i * per_out, per_out, (int64_t)labels[i], loss_kind, e);
    }
    cnn_loader_destroy(l);
    cnn_mem_free(labels);
    cnn_mem_free(order);
    return st;
}

cnn_status cnn_evaluate(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_result *r)
{
    memset(r, 0, sizeof *r);
    cnn_status st = eval_check(s, d, loss_kind, "cnn_evaluate");
    if (st != CNN_OK)
        return st;
    /* data-parallel: rank 0's running statistics, each process a share, the sums agreed on */
    if ((st = rt_dist_sync_state(s->weights, s->err)) != CNN_OK)
        return st;
    int64_t first, end, n = cnn_dataset_count(d);
    rt_dist_eval_range(n, &first, &end);
    eval_sums e = {0};
    st = rt_dist_eval_reduce(s, eval_range(s, d, loss_kind, first, end, &e), &e.loss, &e.top1);
    if (st != CNN_OK)
        return st;
    r->count = n;
    r->loss = e.loss / (double)n;
    r->accuracy = (double)e.top1 / (double)n;
    return CNN_OK;
}

/* Every example on this process (no sharing across processes: no collective). */
cnn_status cnn_evaluate_report(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_report *r,
                               int64_t *confusion, int64_t classes)
{
    memset(r, 0, sizeof *r);
    cnn_status st = eval_check(s, d, loss_kind, "cnn_evaluate_report");
    if (st != CNN_OK)
        return st;
    const ir_graph *g = s->plan->graph;
    int64_t per_out = op_shape_numel(&g->vals[g->outputs[0]].shape), n = cnn_dataset_count(d);
    if (confusion && classes != per_out)
        return rt_fail(s->err, CNN_ERR_USAGE,
                       "cnn_evaluate_report: the confusion matrix is %" PRId64 " x %" PRId64 ", the output has %" PRId64
                       " classes", classes, classes, per_out);
    if (confusion)
        memset(confusion, 0, sizeof(int64_t) * (size_t)(per_out * per_out));
    eval_sums e = {.confusion = confusion};
    if ((st = eval_range(s, d, loss_kind, 0, n, &e)) != CNN_OK)
        return st;
    r->count = n;
    r->classes = per_out;
    r->loss = n ? e.loss / (double)n : 0.0;
    r->accuracy = n ? (double)e.top1 / (double)n : 0.0;
    r->has_top5 = per_out >= 5;
    r->top5 = r->has_top5 && n ? (double)e.top5 / (double)n : 0.0;
    return CNN_OK;
}
