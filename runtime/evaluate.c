/* cnn_evaluate_report: a whole dataset through an inference session, measuring the loss, top-1
 * and top-5 accuracy and the confusion matrix (cnnc eval's report).  The batches come through
 * cnn_dataset_batch, in order; the last partial batch is padded and its padding ignored. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ops/mem.h"
#include "runtime/rt.h"

/* One example's output row against its label: loss, top-1, top-5, the predicted class. */
static void score(const float *row, int64_t per_out, int64_t label, int loss_kind, double *loss, int64_t *top1,
                  int64_t *top5, int64_t *pred)
{
    int64_t best = 0, above = 0;
    for (int64_t k = 1; k < per_out; k++)
        if (row[k] > row[best])
            best = k;
    for (int64_t k = 0; k < per_out; k++)
        above += row[k] > row[label];
    *pred = best;
    *top1 += best == label;
    *top5 += above < 5;
    double mx = row[best];
    if (loss_kind == 0) {
        double sum = 0;
        for (int64_t k = 0; k < per_out; k++)
            sum += exp((double)row[k] - mx);
        *loss += log(sum) + mx - (double)row[label];
    } else {
        double se = 0;
        for (int64_t k = 0; k < per_out; k++) {
            double t = (k == label ? 1.0 : 0.0) - (double)row[k];
            se += t * t;
        }
        *loss += se / (double)per_out;
    }
}

cnn_status cnn_evaluate_report(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_report *r,
                               int64_t *confusion, int64_t classes)
{
    memset(r, 0, sizeof *r);
    if (!s->plan || s->mode != CNN_MODE_INFER)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_evaluate_report needs an inference session");
    const ir_graph *g = s->plan->graph;
    int64_t per_out = op_shape_numel(&g->vals[g->outputs[0]].shape);
    int64_t per_in = op_shape_numel(&g->vals[g->inputs[0]].shape);
    char err[1024];
    if (cnn_dataset_check(d, s->model, err, sizeof err) != CNN_OK)
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    if (loss_kind != 0 && loss_kind != 1)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_evaluate_report: loss_kind is 0 (cross_entropy) or 1 (mse), got %d",
                       loss_kind);
    if (confusion && classes != per_out)
        return rt_fail(s->err, CNN_ERR_USAGE,
                       "cnn_evaluate_report: the confusion matrix is %" PRId64 " x %" PRId64 ", the output has %" PRId64
                       " classes", classes, classes, per_out);
    if (confusion)
        memset(confusion, 0, sizeof(int64_t) * (size_t)(per_out * per_out));
    float *labels = cnn_mem_malloc(sizeof(float) * (size_t)s->batch);
    if (!labels)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    double loss = 0;
    int64_t top1 = 0, top5 = 0, n = cnn_dataset_count(d);
    float *x = cnn_session_input(s, 0);
    cnn_status st = CNN_OK;
    for (int64_t first = 0; first < n && st == CNN_OK; first += s->batch) {
        int64_t take = n - first < s->batch ? n - first : s->batch;
        cnn_dataset_batch(d, NULL, first, take, x, labels);
        for (int64_t i = 0; i < take; i++)
            if (!(labels[i] >= 0 && labels[i] < (float)per_out) || labels[i] != floorf(labels[i])) {
                st = rt_fail(s->err, CNN_ERR_INPUT, "label %g of example %" PRId64 " is not a class in [0, %" PRId64 ")",
                             (double)labels[i], first + i, per_out);
                break;
            }
        if (st != CNN_OK)
            break;
        if (take < s->batch)
            memset(x + take * per_in, 0, sizeof(float) * (size_t)((s->batch - take) * per_in));
        if ((st = rt_execute(s)) != CNN_OK)
            break;
        const float *y = cnn_session_output(s, 0);
        for (int64_t i = 0; i < take; i++) {
            int64_t label = (int64_t)labels[i], pred;
            score(y + i * per_out, per_out, label, loss_kind, &loss, &top1, &top5, &pred);
            if (confusion)
                confusion[label * per_out + pred]++;
        }
    }
    cnn_mem_free(labels);
    if (st != CNN_OK)
        return st;
    r->count = n;
    r->classes = per_out;
    r->loss = n ? loss / (double)n : 0.0;
    r->accuracy = n ? (double)top1 / (double)n : 0.0;
    r->has_top5 = per_out >= 5;
    r->top5 = r->has_top5 && n ? (double)top5 / (double)n : 0.0;
    return CNN_OK;
}
