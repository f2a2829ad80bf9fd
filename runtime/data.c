/* Datasets (MNIST-format folders, over runtime/idx.c) and whole-dataset evaluation. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/idx.h"
#include "ops/mem.h"
#include "runtime/dist.h"
#include "runtime/rt.h"

struct cnn_dataset {
    rt_idx_set set;
};

cnn_status cnn_dataset_load(cnn_dataset **out, const char *dir, const char *split, bool *absent, char *err,
                            size_t errlen)
{
    *out = NULL;
    if (absent)
        *absent = false;
    rt_idx_split sp;
    if (strcmp(split, "train") == 0)
        sp = RT_IDX_TRAIN;
    else if (strcmp(split, "test") == 0)
        sp = RT_IDX_TEST;
    else {
        snprintf(err, errlen, "unknown split '%s': expected train or test", split);
        return CNN_ERR_USAGE;
    }
    cnn_dataset *d = cnn_mem_calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return CNN_ERR_NOMEM;
    }
    rt_idx_status st = rt_idx_load(&d->set, dir, sp, err, errlen);
    if (st != RT_IDX_OK) {
        cnn_mem_free(d);
        if (st == RT_IDX_ABSENT && absent)
            *absent = true;
        return st == RT_IDX_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INPUT;
    }
    *out = d;
    return CNN_OK;
}

void cnn_dataset_destroy(cnn_dataset *d)
{
    if (!d)
        return;
    rt_idx_free(&d->set);
    cnn_mem_free(d);
}

int64_t cnn_dataset_count(const cnn_dataset *d) { return d->set.count; }

cnn_status cnn_dataset_subset(const cnn_dataset *d, int64_t first, int64_t count, cnn_dataset **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    if (first < 0 || count < 1 || first > d->set.count || count > d->set.count - first) {
        snprintf(err, errlen, "examples [%" PRId64 ", %" PRId64 ") are not a part of the %" PRId64 " examples of %s",
                 first, first + count, d->set.count, d->set.images_path);
        return CNN_ERR_USAGE;
    }
    cnn_dataset *v = cnn_mem_calloc(1, sizeof *v);
    int64_t per = d->set.rows * d->set.cols; /* fits: the whole set is in memory */
    if (v) {
        v->set = d->set;
        v->set.count = count;
        v->set.pixels = cnn_mem_malloc(sizeof(float) * (size_t)(per * count));
        v->set.labels = cnn_mem_malloc((size_t)count);
        v->set.images_path = cnn_mem_malloc(strlen(d->set.images_path) + 1);
    }
    if (!v || !v->set.pixels || !v->set.labels || !v->set.images_path) {
        if (v)
            rt_idx_free(&v->set);
        cnn_mem_free(v);
        snprintf(err, errlen, "out of memory");
        return CNN_ERR_NOMEM;
    }
    memcpy(v->set.pixels, d->set.pixels + first * per, sizeof(float) * (size_t)(per * count));
    memcpy(v->set.labels, d->set.labels + first, (size_t)count);
    strcpy(v->set.images_path, d->set.images_path);
    *out = v;
    return CNN_OK;
}

cnn_status cnn_dataset_check(const cnn_dataset *d, const cnn_model *m, char *err, size_t errlen)
{
    if (cnn_model_input_count(m) != 1) {
        snprintf(err, errlen, "training on IDX data needs a network with one input; %s has %d", cnn_model_name(m),
                 cnn_model_input_count(m));
        return CNN_ERR_INPUT;
    }
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    if (rt_idx_check_input(&d->set, rank, dims, err, errlen) != RT_IDX_OK)
        return CNN_ERR_INPUT;
    int64_t od[4];
    int orank = cnn_model_output_shape(m, 0, od);
    int64_t classes = 1;
    for (int k = 0; k < orank; k++)
        classes *= od[k];
    if (orank != 1 || classes < d->set.classes) {
        snprintf(err, errlen, "%s: labels go up to %d, but the network's output %s has %" PRId64 " values per example",
                 d->set.images_path, d->set.classes - 1, cnn_model_output_name(m, 0), classes);
        return CNN_ERR_INPUT;
    }
    return CNN_OK;
}

void cnn_dataset_batch(const cnn_dataset *d, const int64_t *order, int64_t first, int64_t n, float *x,
                       float *labels)
{
    int64_t per = d->set.rows * d->set.cols;
    for (int64_t i = 0; i < n; i++) {
        int64_t idx = order ? order[first + i] : first + i;
        memcpy(x + i * per, d->set.pixels + idx * per, sizeof(float) * (size_t)per);
        labels[i] = (float)d->set.labels[idx];
    }
}

/* Loss and correct predictions summed over examples [first, end) of d. */
static cnn_status evaluate_range(cnn_session *s, const cnn_dataset *d, int loss_kind, int64_t first_ex, int64_t end,
                                 double *loss_out, int64_t *correct_out)
{
    if (s->mode != CNN_MODE_INFER)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_evaluate needs an inference session");
    const ir_graph *g = s->plan->graph;
    int64_t per_out = op_shape_numel(&g->vals[g->outputs[0]].shape);
    int64_t per_in = d->set.rows * d->set.cols;
    if (op_shape_numel(&g->vals[g->inputs[0]].shape) != per_in)
        return rt_fail(s->err, CNN_ERR_INPUT, "the images do not fit the network's input");
    if (loss_kind != 0 && loss_kind != 1)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_evaluate: loss_kind is 0 (cross_entropy) or 1 (mse), got %d", loss_kind);
    /* every label must index the output row (cnn_dataset_check may not have been called) */
    for (int64_t i = 0; i < d->set.count; i++)
        if ((int64_t)d->set.labels[i] >= per_out)
            return rt_fail(s->err, CNN_ERR_INPUT,
                           "%s: label %d of example %" PRId64 " is not a class in [0, %" PRId64
                           "): the network's output %s has %" PRId64 " values per example",
                           d->set.images_path, d->set.labels[i], i, per_out, g->output_names[0], per_out);
    float *labels = cnn_mem_malloc(sizeof(float) * (size_t)s->batch);
    if (!labels)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    double loss = 0;
    int64_t correct = 0, n = end;
    float *x = cnn_session_input(s, 0);
    for (int64_t first = first_ex; first < n; first += s->batch) {
        int64_t take = n - first < s->batch ? n - first : s->batch;
        cnn_dataset_batch(d, NULL, first, take, x, labels);
        if (take < s->batch)
            memset(x + take * per_in, 0, sizeof(float) * (size_t)((s->batch - take) * per_in));
        cnn_status st = rt_execute(s);
        if (st != CNN_OK) {
            cnn_mem_free(labels);
            return st;
        }
        const float *y = cnn_session_output(s, 0);
        for (int64_t i = 0; i < take; i++) {
            const float *row = y + i * per_out;
            int64_t label = (int64_t)labels[i], best = 0;
            double mx = row[0];
            for (int64_t k = 1; k < per_out; k++)
                if (row[k] > row[best])
                    best = k;
            mx = row[best];
            correct += best == label;
            if (loss_kind == 0) {
                double sum = 0;
                for (int64_t k = 0; k < per_out; k++)
                    sum += exp((double)row[k] - mx);
                loss += log(sum) + mx - (double)row[label];
            } else {
                double se = 0;
                for (int64_t k = 0; k < per_out; k++) {
                    double t = (k == label ? 1.0 : 0.0) - (double)row[k];
                    se += t * t;
                }
                loss += se / (double)per_out;
            }
        }
    }
    cnn_mem_free(labels);
    *loss_out = loss;
    *correct_out = correct;
    return CNN_OK;
}

cnn_status cnn_evaluate(cnn_session *s, const cnn_dataset *d, int loss_kind, cnn_eval_result *r)
{
    memset(r, 0, sizeof *r);
    /* data-parallel: rank 0's running statistics, each process a share, the sums agreed on */
    cnn_status st = rt_dist_sync_state(s->weights, s->err);
    if (st != CNN_OK)
        return st;
    int64_t first, end, n = d->set.count, correct = 0;
    double loss = 0;
    rt_dist_eval_range(n, &first, &end);
    st = rt_dist_eval_reduce(s, evaluate_range(s, d, loss_kind, first, end, &loss, &correct), &loss, &correct);
    if (st != CNN_OK)
        return st;
    r->count = n;
    r->loss = loss / (double)n;
    r->accuracy = (double)correct / (double)n;
    return CNN_OK;
}
