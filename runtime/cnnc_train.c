/* cnnc train and cnnc eval.  The training loop is the library's (cnn_train); this file sets it
 * up and does the printing in its callbacks: the progress line, the per-epoch line and the
 * --log CSV. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cnnc.h"

static int load_split(const args *a, const char *split, cnn_model *m, cnn_dataset **d, bool optional)
{
    char err[1024];
    bool absent = false;
    cnn_status st = cnn_dataset_load(d, a->data, split, &absent, err, sizeof err);
    if (st != CNN_OK) {
        if (absent && optional) {
            *d = NULL;
            return EXIT_OK;
        }
        fprintf(stderr, "%s: error: %s\n", prog, err);
        return exit_for(st);
    }
    if (cnn_dataset_check(*d, m, err, sizeof err) != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        cnn_dataset_destroy(*d);
        *d = NULL;
        return EXIT_INPUT;
    }
    return EXIT_OK;
}

/* ---- cnnc eval ---- */

int cmd_eval(const args *a)
{
    if (!a->data)
        return usage_error("cnnc eval needs --data DIR");
    if (!a->weights)
        return usage_error("cnnc eval needs -w WEIGHTS.safetensors");
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *test = NULL;
    if ((rc = make_weights(a, m, &w)) || (rc = load_split(a, "test", m, &test, false)))
        goto done;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    if ((rc = make_session(&s, m, w, a, a->batch ? a->batch : 256, CNN_MODE_INFER, NULL)))
        goto done;
    cnn_eval_result r;
    double t0 = now_seconds();
    cnn_status st = cnn_evaluate(s, test, tc.loss, &r);
    double t1 = now_seconds();
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(s));
        rc = exit_for(st);
        goto done;
    }
    printf("test: loss %.4f, accuracy %.2f%% (%" PRId64 " examples, %.0f images/s)\n", r.loss, r.accuracy * 100.0,
           cnn_dataset_count(test), (double)cnn_dataset_count(test) / (t1 - t0));
done:
    cnn_dataset_destroy(test);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

/* ---- cnnc train ---- */

/* What the callbacks print to. */
typedef struct train_display {
    const args *a;
    FILE *log;         /* --log, or NULL */
    int log_errno;     /* a write to the log failed: its errno (training stops) */
    bool tty;          /* stdout is a terminal and not -q: draw the progress line */
    bool has_test;
    double last_draw;  /* seconds into the epoch of the last progress line */
} train_display;

static void format_duration(char *buf, size_t n, double s)
{
    if (s < 0 || !isfinite(s))
        s = 0;
    int sec = (int)(s + 0.5);
    if (sec >= 3600)
        snprintf(buf, n, "%dh%02dm", sec / 3600, sec / 60 % 60);
    else
        snprintf(buf, n, "%dm%02ds", sec / 60, sec % 60);
}

static int on_step(const cnn_train_step_info *si, void *user)
{
    train_display *d = user;
    if (d->log && (fprintf(d->log, "%" PRId64 ",%" PRId64 ",%.6f,%.6f,%.1f\n", si->epoch, si->step, si->loss,
                           si->accuracy, si->images_per_s) < 0 ||
                   fflush(d->log) != 0)) {
        d->log_errno = errno ? errno : EIO;
        return 1; /* stop: the log is what was asked for */
    }
    if (si->epoch_step == 1)
        d->last_draw = -1.0;
    if (d->tty && (si->seconds - d->last_draw > 0.1 || si->epoch_step == si->steps_per_epoch)) {
        d->last_draw = si->seconds;
        char left[32];
        format_duration(left, sizeof left,
                        si->seconds / (double)si->epoch_step * (double)(si->steps_per_epoch - si->epoch_step));
        printf("\repoch %" PRId64 "/%" PRId64 "  step %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f%%  %.0f img/s  %s left   ",
               si->epoch, si->epochs, si->epoch_step, si->steps_per_epoch, si->epoch_loss, 100.0 * si->epoch_accuracy,
               si->images_per_s, left);
        flush_stdout();
    }
    return 0;
}

static int on_epoch(const cnn_train_epoch_info *ei, void *user)
{
    train_display *d = user;
    bool train_part = !d->a->quiet || !d->has_test;
    if (d->tty)
        printf("\r\033[K");
    if (train_part)
        printf("epoch %" PRId64 ": train loss %.4f, accuracy %.2f%%, %.0f images/s, %.1f s", ei->epoch, ei->train_loss,
               100.0 * ei->train_accuracy, ei->images_per_s, ei->seconds);
    if (ei->has_test)
        printf("%stest loss %.4f, test accuracy %.2f%%", train_part ? "; " : "", ei->test_loss,
               ei->test_accuracy * 100.0);
    printf("\n");
    flush_stdout();
    return 0;
}

/* The train section's settings with the command line's overrides. */
static void train_config(const args *a, cnn_model *m, cnn_train_config *tc)
{
    cnn_model_train_config(m, tc);
    if (a->batch)
        tc->batch = a->batch;
    if (a->epochs)
        tc->epochs = a->epochs;
    if (a->lr > 0)
        tc->lr = a->lr;
}

static int log_error(const args *a, int e)
{
    fprintf(stderr, "%s: error: cannot write the log %s: %s\n", prog, a->log, strerror(e));
    return EXIT_INPUT;
}

/* Runs cnn_train with the display's callbacks and saves the weights. */
static int train_and_save(const args *a, cnn_session *s, cnn_weights *w, const cnn_dataset *train,
                          const cnn_dataset *test, const cnn_train_config *tc, train_display *d)
{
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = tc->epochs;
    to.max_steps = a->steps;
    to.shuffle = !a->no_shuffle;
    to.seed = a->opt.seed;
    to.on_step = on_step;
    to.on_epoch = on_epoch;
    to.user = d;
    errno = 0;
    cnn_status st = cnn_train(s, train, test, &to, NULL);
    if (d->log_errno)
        return log_error(a, d->log_errno);
    if (st != CNN_OK) {
        if (d->tty)
            printf("\n");
        fprintf(stderr, "%s: error: %s%s\n", prog, cnn_session_errmsg(s),
                st == CNN_ERR_DIVERGED ? "; try a smaller --lr" : "");
        return exit_for(st);
    }
    if (a->save) {
        if (cnn_weights_save(w, a->save) != CNN_OK) {
            fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(w));
            return EXIT_INPUT;
        }
        if (!a->quiet)
            printf("saved %s\n", a->save);
    }
    return EXIT_OK;
}

int cmd_train(const args *a)
{
    if (!a->data)
        return usage_error("cnnc train needs --data DIR");
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *train = NULL, *test = NULL;
    train_display d = {.a = a, .tty = isatty(fileno(stdout)) && !a->quiet};
    if ((rc = make_weights(a, m, &w)) || (rc = load_split(a, "train", m, &train, false)) ||
        (rc = load_split(a, "test", m, &test, true)))
        goto done;
    d.has_test = test != NULL;
    cnn_train_config tc;
    train_config(a, m, &tc);
    int64_t n = cnn_dataset_count(train);
    if (tc.batch > n) {
        fprintf(stderr, "%s: error: batch %" PRId64 " is larger than the %" PRId64 " training examples\n", prog,
                tc.batch, n);
        rc = EXIT_USAGE;
        goto done;
    }
    if ((rc = make_session(&s, m, w, a, tc.batch, CNN_MODE_TRAIN, &tc)))
        goto done;
    if (a->log) {
        if (!(d.log = fopen(a->log, "w"))) {
            fprintf(stderr, "%s: error: cannot write %s: %s\n", prog, a->log, strerror(errno));
            rc = EXIT_INPUT;
            goto done;
        }
        if (fprintf(d.log, "epoch,step,loss,accuracy,images_per_s\n") < 0 || fflush(d.log) != 0) {
            rc = log_error(a, errno);
            goto done;
        }
    }
    if (!a->quiet)
        printf("training %s on %" PRId64 " examples%s: %" PRId64 " epochs, batch %" PRId64 ", %s lr %g\n",
               cnn_model_name(m), n, test ? " (with a test set)" : "", tc.epochs, tc.batch,
               tc.optimizer ? "adam" : "sgd", tc.lr);
    rc = train_and_save(a, s, w, train, test, &tc, &d);
done:
    if (d.log && fclose(d.log) != 0 && rc == EXIT_OK)
        rc = log_error(a, errno);
    cnn_dataset_destroy(train);
    cnn_dataset_destroy(test);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}
