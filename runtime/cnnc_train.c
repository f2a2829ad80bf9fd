/* cnnc train and cnnc eval.  The training loop is the library's (cnn_train); this file sets it
 * up and does the printing in its callbacks: the progress line, the per-epoch line and the
 * --log CSV. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
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
    if (!isfinite(r.loss) && !a->allow_nonfinite) {
        fprintf(stderr, "%s: error: the test-set loss is %s, not a finite number: the network's outputs overflow "
                "with these weights (--allow-nonfinite to print it anyway)\n", prog, isnan(r.loss) ? "NaN" : "inf");
        rc = EXIT_INPUT;
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

/* SIGINT and SIGTERM during training: the handler only records the signal; the step callback
 * sees it and stops cnn_train after the step it is in, and cmd_train then closes the log,
 * writes --save and exits 130 (SIGINT) or 143 (SIGTERM).  SA_RESETHAND: a second signal of
 * the same kind ends the process at once. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

typedef struct saved_handlers {
    struct sigaction intr, term;
} saved_handlers;

static void install_stop_handlers(saved_handlers *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old->intr);
    sigaction(SIGTERM, &sa, &old->term);
}

static void restore_handlers(const saved_handlers *old)
{
    sigaction(SIGINT, &old->intr, NULL);
    sigaction(SIGTERM, &old->term, NULL);
}

/* What the callbacks print to. */
typedef struct train_display {
    const args *a;
    FILE *log;         /* --log, or NULL */
    int log_errno;     /* a write to the log failed: its errno (training stops) */
    bool tty;          /* stdout is a terminal and not -q: draw the progress line */
    bool has_test;
    double last_draw;  /* seconds into the epoch of the last progress line */
    int64_t steps, epoch; /* the last step taken and its epoch */
    int64_t classes;   /* the output vector's length (0: not a vector output) */
    bool mse;          /* mse loss: the training accuracy is not measured */
    double first_loss; /* the first step's loss */
    bool warned;       /* the divergence warning was printed */
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
    if (si->step == 1)
        d->first_loss = si->loss;
    d->steps = si->step;
    d->epoch = si->epoch;
    if (stop_signal)
        return 1; /* SIGINT or SIGTERM: stop after this step */
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

/* Training that went wrong without the loss becoming inf or NaN: accuracy at chance level (at
 * most 1/classes + 0.02, on the test set when there is one) while the epoch's loss is more than
 * 3 times the first step's.  A warning, once: the run goes on. */
static void warn_if_diverged(const cnn_train_epoch_info *ei, train_display *d)
{
    if (d->warned || d->classes < 2 || !(d->first_loss > 0) || (d->mse && !ei->has_test))
        return;
    double acc = ei->has_test ? ei->test_accuracy : ei->train_accuracy;
    double chance = 1.0 / (double)d->classes;
    if (acc > chance + 0.02 || !(ei->train_loss > 3.0 * d->first_loss))
        return;
    d->warned = true;
    fprintf(stderr, "%s: warning: training has diverged: after epoch %" PRId64 " the %s accuracy is %.2f%%, chance "
            "level for %" PRId64 " classes, and the loss %.4g is %.1f times the first step's %.4g; try a smaller --lr\n",
            prog, ei->epoch, ei->has_test ? "test" : "training", 100.0 * acc, d->classes, ei->train_loss,
            ei->train_loss / d->first_loss, d->first_loss);
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
    warn_if_diverged(ei, d);
    return stop_signal != 0;
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

/* cnn_train stopped on signal sig: closes the log (every line of it complete: each is written
 * and flushed whole), writes --save with the weights as they are and reports, on one line. */
static int interrupted(const args *a, cnn_weights *w, train_display *d, int sig)
{
    if (d->tty)
        printf("\n");
    flush_stdout();
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (d->log) {
        FILE *f = d->log;
        d->log = NULL;
        if (fclose(f) != 0)
            return log_error(a, errno);
    }
    if (a->save && cnn_weights_save(w, a->save) != CNN_OK) {
        fprintf(stderr, "%s: error: interrupted by %s after step %" PRId64 ", and cannot save the weights: %s\n",
                prog, name, d->steps, cnn_weights_errmsg(w));
        return EXIT_INPUT;
    }
    fprintf(stderr, "%s: interrupted by %s after step %" PRId64 " (epoch %" PRId64 ")%s%s%s%s\n", prog, name,
            d->steps, d->epoch, a->log ? "; the log is complete to that step" : "",
            a->save ? "; saved the weights as they are, mid-training, to " : "", a->save ? a->save : "",
            a->save ? "" : "; nothing saved (no --save)");
    return sig == SIGINT ? EXIT_SIGINT : EXIT_SIGTERM;
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
    saved_handlers old;
    install_stop_handlers(&old);
    cnn_status st = cnn_train(s, train, test, &to, NULL);
    restore_handlers(&old);
    int sig = stop_signal;
    if (d->log_errno)
        return log_error(a, d->log_errno);
    if (sig && st == CNN_OK)
        return interrupted(a, w, d, sig);
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

/* The header line's "adamw lr 0.001, cosine schedule (warmup 1 epochs)": the optimizer, its
 * rate, and the schedule when there is one. */
static const char *optimizer_text(const cnn_train_config *tc, char *buf, size_t n)
{
    const char *name = tc->optimizer == 2 ? "adamw" : tc->optimizer == 1 ? "adam" : "sgd";
    if (tc->schedule == CNN_SCHEDULE_STEP)
        snprintf(buf, n, "%s lr %g, step schedule (x%g every %" PRId64 " epoch%s)", name, tc->lr, tc->schedule_gamma,
                 tc->schedule_every, tc->schedule_every == 1 ? "" : "s");
    else if (tc->schedule == CNN_SCHEDULE_COSINE && tc->warmup_epochs > 0)
        snprintf(buf, n, "%s lr %g, cosine schedule (warmup %g epoch%s)", name, tc->lr, tc->warmup_epochs,
                 tc->warmup_epochs == 1 ? "" : "s");
    else if (tc->schedule == CNN_SCHEDULE_COSINE)
        snprintf(buf, n, "%s lr %g, cosine schedule", name, tc->lr);
    else
        snprintf(buf, n, "%s lr %g", name, tc->lr);
    return buf;
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
    int64_t odims[4];
    if (cnn_model_output_shape(m, 0, odims) == 1)
        d.classes = odims[0];
    d.mse = tc.loss == 1;
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
    if (!a->quiet) {
        char opt_text[160];
        printf("training %s on %" PRId64 " examples%s: %" PRId64 " epochs, batch %" PRId64 ", %s\n",
               cnn_model_name(m), n, test ? " (with a test set)" : "", tc.epochs, tc.batch,
               optimizer_text(&tc, opt_text, sizeof opt_text));
    }
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
