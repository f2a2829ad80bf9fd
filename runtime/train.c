/* The training loop (cnn_train): epochs of shuffled batches on a training session with the
 * learning-rate schedule, a callback per step and per epoch, validation and test evaluation
 * after each epoch, early stopping, checkpoints and exact resume (checkpoint.c), a clean stop
 * when the loss stops being a finite number, and a warning when it goes wrong without that.
 * The `cnnc train` command is a thin user of it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops/mem.h"
#include "runtime/checkpoint.h"
#include "runtime/data.h"
#include "runtime/dist.h"
#include "runtime/fileio.h"
#include "runtime/rt.h"

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
    cnn_dataset *val;            /* the held-out examples (owned) */
    cnn_train_options opt;
    cnn_train_result *res;
    cnn_train_config cfg;        /* the session's config when the call began (the schedule's base) */
    int64_t n, batch, epochs, steps_per_epoch, total_steps, run_steps, classes;
    int64_t *order;
    int64_t *shard;              /* data-parallel: this process's share of the epoch's order, or NULL */
    int64_t nshard;              /* its length */
    cnn_loader *loader;          /* makes the batches (augmented, normalised) on a background thread */
    float *labels;
    rt_ckpt_state cs;            /* where the run is (what a checkpoint holds) */
    bool order_ready;            /* the current epoch's order is already shuffled (resume mid-epoch) */
    float **best_w;              /* patience: the best epoch's weights */
    char *last_path, *best_path; /* in the checkpoint folder */
    double t_call, elapsed0;     /* the call's start; the run's seconds before it */
    int64_t call_steps;
    bool at_best;                /* the weights are the best epoch's (no step since) */
    char warning[512];
} train_run;

static bool step_limit_reached(const train_run *r)
{
    return r->opt.max_steps > 0 && r->cs.step >= r->opt.max_steps;
}

static double run_seconds(const train_run *r) { return r->elapsed0 + (now_seconds() - r->t_call); }

/* Writes the checkpoint at path with the run's state as it is now. */
static cnn_status write_checkpoint(train_run *r, const char *path)
{
    char err[RT_ERR_MAX];
    r->cs.elapsed = run_seconds(r);
    r->cs.session_step = r->s->step;
    cnn_status st = rt_ckpt_write(r->s, path, &r->cs, err, sizeof err);
    if (st != CNN_OK)
        return rt_fail(r->s->err, st, "cannot write the checkpoint %s", err);
    return CNN_OK;
}

/* One epoch's steps, from r->cs.epoch_step on.  Returns CNN_OK (with *stop set when the step
 * callback asked to stop) or the error, with the message in the session. */
static cnn_status run_steps(train_run *r, int64_t epoch, cnn_train_epoch_info *ei, bool *stop)
{
    cnn_session *s = r->s;
    double t0 = now_seconds();
    int64_t seen_here = 0;
    rt_ckpt_state *cs = &r->cs;
    /* the epoch's batches from its step on (a resume starts mid-epoch), made by the loader */
    cnn_status lst = cnn_loader_start(r->loader, r->shard ? r->shard : r->order, r->shard ? r->nshard : r->n, epoch,
                                      cs->epoch_step < r->steps_per_epoch ? cs->epoch_step : 0);
    if (lst != CNN_OK)
        return rt_dist_fail_step(s, rt_fail(s->err, lst, "cnn_train: %s epoch %" PRId64 "'s batches",
                                            lst == CNN_ERR_NOMEM ? "out of memory starting" : "the loader refused",
                                            epoch));
    while (cs->epoch_step < r->steps_per_epoch && !step_limit_reached(r)) {
        double lr = cnn_train_lr(&r->cfg, cs->step, r->steps_per_epoch, r->total_steps);
        if (!(lr > 0))
            lr = 1e-30; /* a schedule at its very end: set_lr takes positive rates only */
        if (lr != s->train.lr) {
            cnn_status st = cnn_session_set_lr(s, lr);
            if (st != CNN_OK)
                return st;
        }
        int64_t got = 0;
        cnn_status bst = cnn_loader_next(r->loader, cnn_session_input(s, 0), r->labels, &got);
        if (bst == CNN_OK && got != r->batch)
            bst = rt_fail(s->err, CNN_ERR_INTERNAL, "cnn_train: the loader gave %" PRId64 " examples, not a batch", got);
        else if (bst != CNN_OK)
            rt_fail(s->err, bst, "cnn_train: %s at step %" PRId64 " of epoch %" PRId64,
                    bst == CNN_ERR_NOMEM ? "out of memory making the batch" : "the loader failed",
                    cs->epoch_step + 1, epoch);
        if (bst != CNN_OK) /* data-parallel: the others stop too instead of waiting */
            return rt_dist_fail_step(s, bst);
        float loss;
        int64_t correct;
        cnn_status st = cnn_session_train_step(s, r->labels, true, &loss, &correct);
        if (st != CNN_OK)
            return st;
        if (!isfinite(loss))
            return rt_fail(s->err, CNN_ERR_DIVERGED,
                           "the loss became %s at step %" PRId64 " (epoch %" PRId64 ", step %" PRId64 " of the epoch)",
                           isnan(loss) ? "NaN" : loss > 0 ? "inf" : "-inf", cs->step + 1, epoch, cs->epoch_step + 1);
        /* data-parallel: the step's correct predictions over every process, and one stop for all */
        if ((st = rt_dist_sum_and_stop(s, &correct, stop)) != CNN_OK)
            return st;
        int64_t images = r->batch * rt_dist_size();
        if (cs->step == 0)
            cs->first_loss = loss;
        cs->step++;
        cs->epoch_step++;
        r->at_best = false;
        cs->lr = lr;
        r->call_steps++;
        cs->epoch_loss_sum += loss * (double)images;
        cs->epoch_correct += correct;
        cs->epoch_seen += images;
        seen_here += images;
        double t = now_seconds();
        if (r->opt.on_step) {
            cnn_train_step_info si = {
                .step = cs->step, .epoch = epoch, .epochs = r->epochs, .epoch_step = cs->epoch_step,
                .steps_per_epoch = r->steps_per_epoch, .run_steps = r->run_steps, .call_steps = r->call_steps,
                .batch = r->batch, .lr = lr, .loss = loss, .accuracy = (double)correct / (double)images,
                .epoch_loss = cs->epoch_loss_sum / (double)cs->epoch_seen,
                .epoch_accuracy = (double)cs->epoch_correct / (double)cs->epoch_seen,
                .images_per_s = (double)seen_here / (t - t0), .seconds = t - t0, .call_seconds = t - r->t_call,
                .wall_seconds = r->elapsed0 + (t - r->t_call),
            };
            *stop = r->opt.on_step(&si, r->opt.user) != 0;
        }
        if ((st = rt_dist_sum_and_stop(s, NULL, stop)) != CNN_OK) /* one process stops: all do */
            return st;
        if (*stop)
            break;
    }
    double t1 = now_seconds();
    memset(ei, 0, sizeof *ei);
    ei->epoch = epoch;
    ei->epochs = r->epochs;
    ei->steps = cs->epoch_step;
    ei->total_steps = cs->step;
    ei->lr = cs->lr;
    ei->train_loss = cs->epoch_seen ? cs->epoch_loss_sum / (double)cs->epoch_seen : 0.0;
    ei->train_accuracy = cs->epoch_seen ? (double)cs->epoch_correct / (double)cs->epoch_seen : 0.0;
    ei->images_per_s = t1 > t0 ? (double)seen_here / (t1 - t0) : 0.0;
    ei->seconds = t1 - t0;
    r->res->train_loss = cs->train_loss = ei->train_loss;
    r->res->train_accuracy = cs->train_accuracy = ei->train_accuracy;
    return CNN_OK;
}

/* Evaluates d (the held-out or the test set) on the evaluation session. */
static cnn_status evaluate(train_run *r, const cnn_dataset *d, const char *what, double *loss, double *acc)
{
    cnn_eval_result er;
    cnn_status st = cnn_evaluate(r->ev, d, r->cfg.loss, &er);
    if (st != CNN_OK)
        return rt_fail(r->s->err, st, "evaluating the %s set: %s", what, cnn_session_errmsg(r->ev));
    *loss = er.loss;
    *acc = er.accuracy;
    return CNN_OK;
}

static cnn_status evaluate_all(train_run *r, cnn_train_epoch_info *ei)
{
    cnn_status st;
    r->cs.val_loss = r->cs.val_accuracy = r->cs.test_loss = r->cs.test_accuracy = NAN;
    if (r->val) {
        if ((st = evaluate(r, r->val, "validation", &ei->val_loss, &ei->val_accuracy)) != CNN_OK)
            return st;
        ei->has_val = r->res->has_val = true;
        r->res->val_loss = r->cs.val_loss = ei->val_loss;
        r->res->val_accuracy = r->cs.val_accuracy = ei->val_accuracy;
    }
    if (r->test) {
        if ((st = evaluate(r, r->test, "test", &ei->test_loss, &ei->test_accuracy)) != CNN_OK)
            return st;
        ei->has_test = r->res->has_test = true;
        r->res->test_loss = r->cs.test_loss = ei->test_loss;
        r->res->test_accuracy = r->cs.test_accuracy = ei->test_accuracy;
    }
    return CNN_OK;
}

/* Training that went wrong without the loss becoming inf or NaN: the accuracy (validation,
 * else test, else training) at chance level (at most 1/classes + 0.02) while the epoch's loss
 * is more than 3 times the first step's, or from the second epoch on not below 0.9 times it;
 * or the loss more than 10 times the first step's. */
static const char *divergence_warning(train_run *r, const cnn_train_epoch_info *ei)
{
    double first = r->cs.first_loss, loss = ei->train_loss;
    if (!(first > 0) || !isfinite(loss))
        return NULL;
    const char *which = ei->has_val ? "validation" : ei->has_test ? "test" : "training";
    double acc = ei->has_val ? ei->val_accuracy : ei->has_test ? ei->test_accuracy : ei->train_accuracy;
    bool chance = r->classes >= 2 && acc <= 1.0 / (double)r->classes + 0.02;
    if (chance && loss > 3.0 * first)
        snprintf(r->warning, sizeof r->warning,
                 "training has diverged: after epoch %" PRId64 " the %s accuracy is %.2f%%, chance level for %" PRId64
                 " classes, and the loss %.4g is %.1f times the first step's %.4g",
                 ei->epoch, which, 100.0 * acc, r->classes, loss, loss / first, first);
    else if (chance && ei->epoch >= 2 && loss >= 0.9 * first)
        snprintf(r->warning, sizeof r->warning,
                 "training is not learning: after epoch %" PRId64 " the %s accuracy is %.2f%%, chance level for %" PRId64
                 " classes, and the loss %.4g is still %.2f times the first step's %.4g",
                 ei->epoch, which, 100.0 * acc, r->classes, loss, loss / first, first);
    else if (loss > 10.0 * first)
        snprintf(r->warning, sizeof r->warning,
                 "training has diverged: after epoch %" PRId64 " the loss %.4g is %.1f times the first step's %.4g",
                 ei->epoch, loss, loss / first, first);
    else
        return NULL;
    return r->warning;
}

static void copy_weights(cnn_weights *w, float **to, bool into_weights)
{
    for (int i = 0; i < w->count; i++) {
        size_t bytes = sizeof(float) * (size_t)op_shape_numel(&w->t[i].shape);
        if (into_weights)
            memcpy(w->t[i].data, to[i], bytes);
        else
            memcpy(to[i], w->t[i].data, bytes);
    }
    if (into_weights)
        atomic_fetch_add(&w->version, 1);
}

/* After an epoch's evaluation: the best accuracy, patience and the checkpoints. */
static cnn_status after_epoch(train_run *r, cnn_train_epoch_info *ei, bool complete)
{
    rt_ckpt_state *cs = &r->cs;
    bool has_metric = ei->has_val || ei->has_test;
    double metric = ei->has_val ? ei->val_accuracy : ei->test_accuracy;
    if (complete && has_metric) {
        if (cs->best_epoch == 0 || metric > cs->best_accuracy) {
            cs->best_accuracy = metric;
            cs->best_epoch = ei->epoch;
            cs->bad_epochs = 0;
            ei->improved = true;
            if (r->best_w)
                copy_weights(r->s->weights, r->best_w, false);
            r->at_best = true;
        } else {
            cs->bad_epochs++;
        }
    }
    ei->best_epoch = cs->best_epoch;
    ei->best_accuracy = cs->best_epoch ? cs->best_accuracy : 0.0;
    ei->epochs_without_improvement = cs->bad_epochs;
    ei->early_stop = complete && r->opt.patience > 0 && cs->bad_epochs >= r->opt.patience;
    r->res->best_epoch = cs->best_epoch;
    r->res->best_accuracy = ei->best_accuracy;
    ei->warning = divergence_warning(r, ei);
    if (complete) {
        cs->epochs_done++;
        cs->epoch_step = 0;
        cs->epoch_loss_sum = 0;
        cs->epoch_correct = cs->epoch_seen = 0;
    }
    if (r->last_path) {
        cnn_status st;
        if (ei->improved && (st = write_checkpoint(r, r->best_path)) != CNN_OK)
            return st;
        if ((st = write_checkpoint(r, r->last_path)) != CNN_OK)
            return st;
        ei->checkpointed = true;
    }
    ei->wall_seconds = run_seconds(r);
    return CNN_OK;
}

/* "dir/name", malloc'd (NULL: out of memory). */
static char *join_path(const char *dir, const char *name)
{
    size_t ld = strlen(dir), ln = strlen(name);
    char *p = cnn_mem_malloc(ld + ln + 2);
    if (p) {
        memcpy(p, dir, ld);
        p[ld] = '/';
        memcpy(p + ld + 1, name, ln + 1);
    }
    return p;
}

/* Creates the checkpoint folder when missing (and its parents) and checks that it is a
 * writable folder and that its two files, where they exist, are regular files. */
static cnn_status prepare_checkpoint_dir(train_run *r)
{
    const char *dir = r->opt.checkpoint_dir;
    char *err = r->s->err;
    if (!dir[0])
        return rt_fail(err, CNN_ERR_USAGE, "the checkpoint folder's name is empty");
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        char failed[4096];
        if (rt_mkdir_p(dir, failed, sizeof failed) != 0)
            return rt_fail(err, CNN_ERR_INPUT, "%s: cannot create the checkpoint folder %s: %s", dir, failed,
                           strerror(errno));
        if (stat(dir, &sb) != 0)
            return rt_fail(err, CNN_ERR_INPUT, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return rt_fail(err, CNN_ERR_INPUT, "%s: the checkpoint folder is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return rt_fail(err, CNN_ERR_INPUT, "%s: cannot write in the checkpoint folder: %s", dir, strerror(errno));
    r->last_path = join_path(dir, "last.safetensors");
    r->best_path = join_path(dir, "best.safetensors");
    if (!r->last_path || !r->best_path)
        return rt_fail(err, CNN_ERR_NOMEM, "out of memory");
    const char *files[2] = {r->last_path, r->best_path};
    for (int k = 0; k < 2; k++)
        if (stat(files[k], &sb) == 0 && S_ISDIR(sb.st_mode))
            return rt_fail(err, CNN_ERR_INPUT, "%s is a folder; the checkpoint is to be written there as a file",
                           files[k]);
    return CNN_OK;
}

/* The folder part of path ("." when none), malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cnn_mem_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = cnn_mem_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* opt->resume: reads and checks the checkpoint, loads the session's tensors and replays the
 * shuffles so that the order is the one of the epoch it stopped in. */
static cnn_status resume(train_run *r)
{
    cnn_session *s = r->s;
    rt_ckpt_state want = r->cs, got;
    char err[RT_ERR_MAX];
    cnn_status st = rt_ckpt_read(s, r->opt.resume, &want, &got, err, sizeof err);
    if (st != CNN_OK)
        return rt_fail(s->err, st, "%s", err);
    if (got.steps_per_epoch != r->steps_per_epoch)
        return rt_fail(s->err, CNN_ERR_INPUT,
                       "%s: the checkpoint has %" PRId64 " steps per epoch, this run %" PRId64, r->opt.resume,
                       got.steps_per_epoch, r->steps_per_epoch);
    /* the orders of the epochs begun, from the seed: the same permutations, the same state
     * (not when the run has no epoch left: then nothing trains) */
    int64_t shuffles = got.epochs_done + (got.epoch_step > 0 ? 1 : 0);
    bool replay = got.shuffle && shuffles > 0 && shuffles <= r->epochs;
    uint64_t state = r->cs.shuffle_state;
    for (int64_t e = 0; replay && e < shuffles; e++)
        shuffle_order(r->order, r->n, &state);
    if (replay && state != got.shuffle_state)
        return rt_fail(s->err, CNN_ERR_INPUT,
                       "%s: the shuffle state after %" PRId64 " epochs is not the checkpoint's: another training set?",
                       r->opt.resume, shuffles);
    r->order_ready = got.epoch_step > 0;
    r->cs = got;
    r->elapsed0 = got.elapsed;
    r->res->resumed_step = got.step;
    /* patience: the best epoch's weights, from best.safetensors beside the checkpoint (the
     * folder of the run that wrote it) */
    if (r->best_w && got.best_epoch > 0) {
        char *dir = dir_of(r->opt.resume); /* the run's own best, beside its checkpoint */
        char *best = dir ? join_path(dir, "best.safetensors") : NULL;
        cnn_mem_free(dir);
        if (!best)
            return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
        int64_t at = 0;
        st = rt_ckpt_read_weights(s->weights, best, r->best_w, &at, err, sizeof err);
        if (st == CNN_OK && at != got.best_epoch)
            st = rt_fail(s->err, CNN_ERR_INPUT,
                         "%s is of epoch %" PRId64 ", but %s's best epoch is %" PRId64 " (--patience needs its weights)",
                         best, at, r->opt.resume, got.best_epoch);
        else if (st != CNN_OK)
            st = rt_fail(s->err, st, "%s (--patience needs the best epoch's weights, of epoch %" PRId64 ")", err,
                         got.best_epoch);
        cnn_mem_free(best);
        if (st != CNN_OK)
            return st;
    }
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
    if (r->opt.epochs < 0 || r->opt.max_steps < 0 || r->opt.eval_batch < 0 || r->opt.val < 0 || r->opt.patience < 0)
        return rt_fail(s->err, CNN_ERR_USAGE,
                       "cnn_train: epochs, max_steps, eval_batch, val and patience must not be negative");
    int64_t all = cnn_dataset_count(r->train);
    r->batch = s->batch;
    if (r->opt.val > 0) {
        if (r->opt.val >= all)
            return rt_fail(s->err, CNN_ERR_USAGE,
                           "--val %" PRId64 " holds out every one of the %" PRId64 " training examples", r->opt.val,
                           all);
        cnn_status st = cnn_dataset_subset(r->train, all - r->opt.val, r->opt.val, &r->val, err, sizeof err);
        if (st != CNN_OK)
            return rt_fail(s->err, st, "%s", err);
    }
    r->n = all - r->opt.val; /* the first n examples train; the validation set is the rest */
    int64_t world = rt_dist_size(); /* data-parallel: the global batch is world x batch */
    if (r->batch * world > r->n)
        return rt_fail(s->err, CNN_ERR_USAGE, "batch %" PRId64 "%s is larger than the %" PRId64 " training examples%s",
                       r->batch * world, world > 1 ? " (over all processes)" : "", r->n,
                       r->opt.val ? " left after --val" : "");
    if (r->opt.patience > 0 && !r->val && !r->test)
        return rt_fail(s->err, CNN_ERR_USAGE,
                       "patience needs a validation set (--val N) or a test set to measure improvement");
    r->epochs = r->opt.epochs ? r->opt.epochs : (s->train.epochs > 0 ? s->train.epochs : 1);
    r->steps_per_epoch = r->n / (r->batch * world); /* the last partial batch is dropped, as drop_last */
    if (world > 1 && !(r->shard = cnn_mem_malloc(sizeof(int64_t) * (size_t)r->n)))
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    if (__builtin_mul_overflow(r->epochs, r->steps_per_epoch, &r->total_steps))
        return rt_fail(s->err, CNN_ERR_USAGE, "%" PRId64 " epochs of %" PRId64 " steps are too many", r->epochs,
                       r->steps_per_epoch);
    r->run_steps = r->opt.max_steps > 0 && r->opt.max_steps < r->total_steps ? r->opt.max_steps : r->total_steps;
    int64_t odims[4];
    if (cnn_model_output_shape(s->model, 0, odims) == 1)
        r->classes = odims[0];
    r->order = cnn_mem_malloc(sizeof(int64_t) * (size_t)r->n);
    r->labels = cnn_mem_malloc(sizeof(float) * (size_t)r->batch);
    if (!r->order || !r->labels)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < r->n; i++)
        r->order[i] = i;
    if (r->opt.patience > 0) {
        cnn_weights *w = s->weights;
        r->best_w = cnn_mem_calloc((size_t)w->count + 1, sizeof(float *));
        for (int i = 0; r->best_w && i < w->count; i++)
            if (!(r->best_w[i] = cnn_mem_malloc(sizeof(float) * (size_t)op_shape_numel(&w->t[i].shape) + 1)))
                return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
        if (!r->best_w)
            return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory");
    }
    /* the state of a new run; a resume replaces it */
    rt_ckpt_state *cs = &r->cs;
    cs->steps_per_epoch = r->steps_per_epoch;
    cs->total_steps = r->total_steps;
    cs->shuffle = r->opt.shuffle;
    cs->shuffle_seed = r->opt.seed;
    cs->shuffle_state = r->opt.seed ^ 0x5eedULL;
    cs->seed = s->opt.seed;
    cs->batch = r->batch;
    cs->examples = all;
    cs->val = r->opt.val;
    cs->lr = r->cfg.lr;
    cs->first_loss = NAN;
    cs->train_loss = cs->train_accuracy = cs->val_loss = cs->val_accuracy = cs->test_loss = cs->test_accuracy = NAN;
    cnn_status st;
    /* every output place is checked before the first step */
    if (r->opt.checkpoint_dir && (st = prepare_checkpoint_dir(r)) != CNN_OK)
        return st;
    if (r->opt.resume && (st = resume(r)) != CNN_OK)
        return st;
    /* the batches: converted to the input's channels, augmented and normalised by the session's
     * train config, on a background thread */
    int64_t dims[4];
    cnn_loader_options lo;
    cnn_loader_options_default(&lo);
    lo.batch = r->batch;
    lo.augment = true;
    lo.seed = r->opt.seed;
    lo.drop_last = true;
    if (rt_dataset_fit(r->train, cnn_model_input_shape(s->model, 0, dims), dims, &lo.channels, err, sizeof err) !=
        CNN_OK)
        return rt_fail(s->err, CNN_ERR_INPUT, "%s", err);
    if ((st = cnn_loader_create(&r->loader, r->train, &r->cfg, &lo, err, sizeof err)) != CNN_OK)
        return rt_fail(s->err, st, "%s", err);
    if (r->test || r->val) {
        /* evaluated with the training config: the same normalisation */
        st = cnn_session_create(&r->ev, s->model, s->weights, &s->opt, r->opt.eval_batch ? r->opt.eval_batch : 256,
                                CNN_MODE_INFER, &r->cfg);
        if (st != CNN_OK)
            return rt_fail(s->err, st, "the evaluation session: %s", cnn_session_errmsg(r->ev));
    }
    return CNN_OK;
}

/* The epochs. */
static cnn_status train_loop(train_run *r, bool *stop)
{
    rt_ckpt_state *cs = &r->cs;
    /* (a run resumed at its step limit has nothing to do: not even the evaluation again) */
    while (cs->epochs_done < r->epochs && !step_limit_reached(r)) {
        int64_t epoch = cs->epochs_done + 1;
        if (!r->order_ready && cs->shuffle)
            shuffle_order(r->order, r->n, &cs->shuffle_state);
        r->order_ready = false;
        if (r->shard) /* every P-th example of the same order, this process's rank first */
            r->nshard = rt_dist_shard(r->order, r->n, r->batch, r->shard);
        r->res->epochs = epoch;
        cnn_train_epoch_info ei;
        cnn_status st = run_steps(r, epoch, &ei, stop);
        if (st != CNN_OK)
            return st;
        if (*stop) {
            /* a callback stopped it mid-epoch: the checkpoint goes on from this step */
            if (r->last_path && (st = write_checkpoint(r, r->last_path)) != CNN_OK)
                return st;
            return CNN_OK;
        }
        bool complete = cs->epoch_step == r->steps_per_epoch;
        if ((st = evaluate_all(r, &ei)) != CNN_OK || (st = after_epoch(r, &ei, complete)) != CNN_OK)
            return st;
        *stop = r->opt.on_epoch && r->opt.on_epoch(&ei, r->opt.user) != 0;
        if ((st = rt_dist_sum_and_stop(r->s, NULL, stop)) != CNN_OK)
            return st;
        if (*stop)
            return CNN_OK;
        if (ei.early_stop) {
            r->res->early_stopped = true;
            return CNN_OK;
        }
        if (!complete)
            return CNN_OK; /* the step limit ended it mid-epoch */
    }
    return CNN_OK;
}

cnn_status cnn_train(cnn_session *s, const cnn_dataset *train, const cnn_dataset *test, const cnn_train_options *opt,
                     cnn_train_result *res)
{
    if (!s)
        return CNN_ERR_USAGE;
    cnn_train_result local;
    train_run r = {.s = s, .train = train, .test = test, .res = res ? res : &local, .cfg = s->train};
    r.t_call = now_seconds();
    memset(r.res, 0, sizeof *r.res);
    if (opt)
        r.opt = *opt;
    else
        cnn_train_options_default(&r.opt);
    bool stop = false;
    cnn_status st = train_setup(&r);
    /* data-parallel: every process agrees on the setup; the first step copies rank 0's state */
    st = rt_dist_train_begin(s, st, r.n, test ? cnn_dataset_count(test) : -1, r.epochs, r.opt.max_steps,
                             r.opt.shuffle, r.opt.seed);
    if (st == CNN_OK)
        st = train_loop(&r, &stop);
    r.res->steps = r.cs.step;
    r.res->stopped = stop && st == CNN_OK;
    /* patience: a run that ended by itself ends with the best epoch's weights */
    if (st == CNN_OK && !stop && r.best_w && r.cs.best_epoch > 0 && !r.at_best) {
        copy_weights(s->weights, r.best_w, true);
        r.res->restored_best = true;
    }
    if (st == CNN_OK) /* data-parallel: the running statistics are rank 0's */
        st = rt_dist_sync_state(s->weights, s->err);
    if (s->plan && s->mode == CNN_MODE_TRAIN && s->train.lr != r.cfg.lr && r.cfg.lr > 0)
        cnn_session_set_lr(s, r.cfg.lr);
    r.res->seconds = now_seconds() - r.t_call;
    cnn_session_destroy(r.ev);
    cnn_loader_destroy(r.loader);
    cnn_dataset_destroy(r.val);
    if (r.best_w)
        for (int i = 0; i < s->weights->count; i++)
            cnn_mem_free(r.best_w[i]);
    cnn_mem_free(r.best_w);
    cnn_mem_free(r.last_path);
    cnn_mem_free(r.best_path);
    cnn_mem_free(r.order);
    cnn_mem_free(r.shard);
    cnn_mem_free(r.labels);
    return st;
}
