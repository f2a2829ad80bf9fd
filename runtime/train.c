/* The training loop (cnn_train): epochs of shuffled batches on a training session, a callback
 * per step and per epoch, test-set evaluation after each epoch, and a clean stop when the loss
 * stops being a finite number.  The `cnnc train` command is a thin user of it. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/data.h"
#include "runtime/rt.h"
#include "ops/mem.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cnn_train_options_default(cnn_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->shuffle = true;
}

/* Fisher-Yates over order[0..n) with a xorshift64 whose state carries from epoch to epoch
 * (the order cnnc has always used: accuracy figures reproduce for the same seed). */
static void shuffle_order(int64_t *order, int64_t n, uint64_t *state)
{
    uint64_t x = *state;
    for (int64_t i = n - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t j = (int64_t)((x >> 11) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    *state = x;
}

/* The state of one cnn_train call. */
typedef struct train_run {
    cnn_session *s, *ev;
    const cnn_dataset *train, *test;
    cnn_train_options opt;
    cnn_train_result *res;
    int64_t n, batch, epochs, steps_per_epoch;
    int64_t *order;
    float *labels;
    cnn_loader *loader;      /* makes the batches (augmented, normalised) on a background thread */
} train_run;

static bool step_limit_reached(const train_run *r)
{
    return r->opt.max_steps > 0 && r->res->steps >= r->opt.max_steps;
}

/* One epoch of steps.  Returns CNN_OK (with *stop set when the step callback asked to stop)
 * or the error, with the message in the session. */
static cnn_status run_epoch(train_run *r, int64_t epoch, cnn_train_epoch_info *ei, bool *stop)
{
    cnn_session *s = r->s;
    double loss_sum = 0, t0 = now_seconds();
    int64_t correct_sum = 0, seen = 0, step;
    cnn_status lst = cnn_loader_start(r->loader, r->order, r->n, epoch, 0);
    if (lst != CNN_OK)
        return rt_fail(s->err, lst, "cnn_train: the loader refused epoch %" PRId64, epoch);
    for (step = 0; step < r->steps_per_epoch && !step_limit_reached(r); step++) {
        int64_t got = 0;
        cnn_loader_next(r->loader, cnn_session_input(s, 0), r->labels, &got);
        if (got != r->batch)
            return rt_fail(s->err, CNN_ERR_INTERNAL, "cnn_train: the loader gave %" PRId64 " examples, not a batch", got);
        float loss;
        int64_t correct;
        cnn_status st = cnn_session_train_step(s, r->labels, true, &loss, &correct);
        if (st != CNN_OK)
            return st;
        if (!isfinite(loss))
            return rt_fail(s->err, CNN_ERR_DIVERGED,
                           "the loss became %s at step %" PRId64 " (epoch %" PRId64 ", step %" PRId64 " of the epoch)",
                           isnan(loss) ? "NaN" : loss > 0 ? "inf" : "-inf", r->res->steps + 1, epoch, step + 1);
        r->res->steps++;
        loss_sum += loss * (double)r->batch;
        correct_sum += correct;
        seen += r->batch;
        double t = now_seconds();
        if (r->opt.on_step) {
            cnn_train_step_info si = {
                .step = r->res->steps, .epoch = epoch, .epochs = r->epochs, .epoch_step = step + 1,
                .steps_per_epoch = r->steps_per_epoch, .batch = r->batch, .loss = loss,
                .accuracy = (double)correct / (double)r->batch, .epoch_loss = loss_sum / (double)seen,
                .epoch_accuracy = (double)correct_sum / (double)seen, .images_per_s = (double)seen / (t - t0),
                .seconds = t - t0,
            };
            if (r->opt.on_step(&si, r->opt.user) != 0) {
                *stop = true;
                step++;
                break;
            }
        }
    }
    double t1 = now_seconds();
    memset(ei, 0, sizeof *ei);
    ei->epoch = epoch;
    ei->epochs = r->epochs;
    ei->steps = step;
    ei->total_steps = r->res->steps;
    ei->train_loss = seen ? loss_sum / (double)seen : 0.0;
    ei->train_accuracy = seen ? (double)correct_sum / (double)seen : 0.0;
    ei->images_per_s = (double)seen / (t1 - t0);
    ei->seconds = t1 - t0;
    r->res->train_loss = ei->train_loss;
    r->res->train_accuracy = ei->train_accuracy;
    return CNN_OK;
}

/* Evaluates the test set into ei and the result. */
static cnn_status evaluate_test(train_run *r, cnn_train_epoch_info *ei)
{
    cnn_eval_result er;
    cnn_status st = cnn_evaluate(r->ev, r->test, r->s->train.loss, &er);
    if (st != CNN_OK)
        return rt_fail(r->s->err, st, "evaluating the test set: %s", cnn_session_errmsg(r->ev));
    ei->has_test = true;
    ei->test_loss = er.loss;
    ei->test_accuracy = er.accuracy;
    r->res->has_test = true;
    r->res->test_loss = er.loss;
    r->res->test_accuracy = er.accuracy;
    return CNN_OK;
}

/* Checks the arguments and allocates the run's buffers and evaluation session. */
static cnn_status train_setup(train_run *r)
{
    cnn_session *s = r->s;
    char err[1024];
    if (!s->plan || s->mode != CNN_MODE_TRAIN)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_train needs a training session");
    if (!r->train)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_train needs a training set");
    if (cnn_dataset_check(r->train, s->model, err, sizeof err) != CNN_OK ||
        (r->test && cnn_dataset_check(r->test, s->model, err, sizeof err) != CNN_OK))
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    if (r->opt.epochs < 0 || r->opt.max_steps < 0 || r->opt.eval_batch < 0)
        return rt_fail(s->err, CNN_ERR_USAGE, "cnn_train: epochs, max_steps and eval_batch must not be negative");
    r->n = cnn_dataset_count(r->train);
    r->batch = s->batch;
    if (r->batch > r->n)
        return rt_fail(s->err, CNN_ERR_USAGE, "batch %" PRId64 " is larger than the %" PRId64 " training examples",
                       r->batch, r->n);
    r->epochs = r->opt.epochs ? r->opt.epochs : (s->train.epochs > 0 ? s->train.epochs : 1);
    r->steps_per_epoch = r->n / r->batch; /* the last partial batch is dropped, as drop_last */
    r->order = cnn_mem_malloc(sizeof(int64_t) * (size_t)r->n);
    r->labels = cnn_mem_malloc(sizeof(float) * (size_t)r->batch);
    if (!r->order || !r->labels)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < r->n; i++)
        r->order[i] = i;
    /* the batches: converted to the input's channels, augmented and normalised by the session's
     * train config, on a background thread */
    int64_t dims[4];
    cnn_loader_options lo;
    cnn_loader_options_default(&lo);
    lo.batch = r->batch;
    lo.augment = true;
    lo.seed = r->opt.seed;
    lo.drop_last = true;
    if (rt_dataset_fit(r->train, cnn_model_input_shape(s->model, 0, dims), dims, &lo.channels, err, sizeof err) != CNN_OK)
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    cnn_status lst = cnn_loader_create(&r->loader, r->train, &s->train, &lo, err, sizeof err);
    if (lst != CNN_OK)
        return rt_fail(s->err, lst, "%s", err);
    if (r->test) {
        /* evaluated with the training session's config: the same normalisation */
        cnn_status st = cnn_session_create(&r->ev, s->model, s->weights, &s->opt,
                                           r->opt.eval_batch ? r->opt.eval_batch : 256, CNN_MODE_INFER, &s->train);
        if (st != CNN_OK)
            return rt_fail(s->err, st, "the evaluation session: %s", cnn_session_errmsg(r->ev));
    }
    return CNN_OK;
}

cnn_status cnn_train(cnn_session *s, const cnn_dataset *train, const cnn_dataset *test, const cnn_train_options *opt,
                     cnn_train_result *res)
{
    if (!s)
        return CNN_ERR_USAGE;
    double t_start = now_seconds();
    cnn_train_result local;
    train_run r = {.s = s, .train = train, .test = test, .res = res ? res : &local};
    memset(r.res, 0, sizeof *r.res);
    if (opt)
        r.opt = *opt;
    else
        cnn_train_options_default(&r.opt);
    cnn_status st = train_setup(&r);
    uint64_t shuffle_state = r.opt.seed ^ 0x5eedULL;
    bool stop = false;
    for (int64_t epoch = 1; st == CNN_OK && !stop && epoch <= r.epochs && !step_limit_reached(&r); epoch++) {
        if (r.opt.shuffle)
            shuffle_order(r.order, r.n, &shuffle_state);
        r.res->epochs = epoch;
        cnn_train_epoch_info ei;
        st = run_epoch(&r, epoch, &ei, &stop);
        if (st != CNN_OK || stop)
            break;
        if (r.test && (st = evaluate_test(&r, &ei)) != CNN_OK)
            break;
        if (r.opt.on_epoch && r.opt.on_epoch(&ei, r.opt.user) != 0)
            stop = true;
    }
    r.res->stopped = stop && st == CNN_OK;
    r.res->seconds = now_seconds() - t_start;
    cnn_session_destroy(r.ev);
    cnn_loader_destroy(r.loader);
    cnn_mem_free(r.order);
    cnn_mem_free(r.labels);
    return st;
}
