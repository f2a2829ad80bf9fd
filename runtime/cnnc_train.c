/* cnnc train and cnnc eval.  The training loop is the library's (cnn_train); this file sets it
 * up and does the printing in its callbacks: the progress line, the per-epoch line and the
 * --log CSV. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cnnc.h"

/* A split loaded (cnn_dataset_load) and checked against the model, nothing reported yet: on
 * the caller's thread, or on one of its own while the caller loads another split. */
typedef struct split_job {
    const args *a;
    const char *split;
    cnn_model *m;
    cnn_dataset *d;
    bool absent;
    cnn_status st;
    bool checked; /* cnn_dataset_check passed */
    char err[1024];
} split_job;

static void *split_thread(void *p)
{
    split_job *j = p;
    j->st = cnn_dataset_load(&j->d, j->a->data, j->split, &j->absent, j->err, sizeof j->err);
    if (j->st == CNN_OK)
        j->checked = cnn_dataset_check(j->d, j->m, j->err, sizeof j->err) == CNN_OK;
    return NULL;
}

/* Job j's outcome: its dataset in *d and EXIT_OK, or an exit status with its error reported
 * (*d NULL; an absent optional split is no error). */
static int split_result(split_job *j, bool optional, cnn_dataset **d)
{
    *d = NULL;
    if (j->st != CNN_OK) {
        if (j->absent && optional)
            return EXIT_OK;
        fprintf(stderr, "%s: error: %s\n", prog, j->err);
        return exit_for(j->st);
    }
    if (!j->checked) {
        fprintf(stderr, "%s: error: %s\n", prog, j->err);
        cnn_dataset_destroy(j->d);
        return EXIT_INPUT;
    }
    *d = j->d;
    return EXIT_OK;
}

static int load_split(const args *a, const char *split, cnn_model *m, cnn_dataset **d, bool optional)
{
    split_job j = {.a = a, .split = split, .m = m};
    split_thread(&j);
    return split_result(&j, optional, d);
}

/* The train split (required) and the test split (optional: *test NULL when absent), the test
 * split on a second thread while this one loads the train split (the two files decompress at
 * once); a failing train split is the one error reported. */
static int load_train_test(const args *a, cnn_model *m, cnn_dataset **train, cnn_dataset **test)
{
    split_job j = {.a = a, .split = "test", .m = m};
    pthread_t t;
    bool threaded = pthread_create(&t, NULL, split_thread, &j) == 0;
    int rc = load_split(a, "train", m, train, false);
    if (threaded)
        pthread_join(t, NULL);
    else
        split_thread(&j);
    if (rc == EXIT_OK)
        return split_result(&j, true, test);
    cnn_dataset_destroy(j.d);
    *test = NULL;
    return rc;
}

/* ---- cnnc eval ---- */

/* The accuracy of every class and the confusion matrix (rows: the label, columns: the
 * prediction); classes with no example are left out of the first, and the matrix is printed for
 * at most 30 classes. */
static void print_classes(const int64_t *cm, int64_t classes)
{
    printf("per class:\n  class  accuracy  examples\n");
    for (int64_t c = 0; c < classes; c++) {
        int64_t total = 0;
        for (int64_t p = 0; p < classes; p++)
            total += cm[c * classes + p];
        if (total > 0)
            printf("  %5" PRId64 "  %7.2f%%  %8" PRId64 "\n", c, 100.0 * (double)cm[c * classes + c] / (double)total, total);
    }
    if (classes > 30) {
        printf("(the confusion matrix is printed for at most 30 classes; this output has %" PRId64 ")\n", classes);
        return;
    }
    int64_t most = 0;
    for (int64_t i = 0; i < classes * classes; i++)
        most = cm[i] > most ? cm[i] : most;
    int w = 1;
    for (int64_t v = most > classes ? most : classes; v >= 10; v /= 10)
        w++;
    printf("confusion matrix (rows: the label, columns: the predicted class):\n  %*s", w, "");
    for (int64_t p = 0; p < classes; p++)
        printf(" %*" PRId64, w, p);
    printf("\n");
    for (int64_t c = 0; c < classes; c++) {
        printf("  %*" PRId64, w, c);
        for (int64_t p = 0; p < classes; p++)
            printf(" %*" PRId64, w, cm[c * classes + p]);
        printf("\n");
    }
}

static int eval_command(const args *a);

int cmd_eval(const args *a)
{
    args local;
    int rc = dist_begin(&a, &local);
    return dist_end(rc ? rc : eval_command(a));
}

static int eval_command(const args *a)
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
    if ((rc = dist_check(rc)))
        goto done;
    int64_t odims[4], classes = 0;
    if (cnn_model_output_shape(m, 0, odims) == 1)
        classes = odims[0];
    int64_t *confusion = NULL;
    if (classes > 0 && classes <= 100000 && !(confusion = calloc((size_t)(classes * classes), sizeof *confusion))) {
        fprintf(stderr, "%s: error: out of memory for the %" PRId64 " x %" PRId64 " confusion matrix\n", prog, classes,
                classes);
        rc = EXIT_INTERNAL;
        goto done;
    }
    cnn_eval_report r;
    double t0 = now_seconds();
    cnn_status st = cnn_evaluate_report(s, test, tc.loss, &r, confusion, confusion ? classes : 0);
    double t1 = now_seconds();
    if (st != CNN_OK) {
        if (!cnn_dist_failed_elsewhere())
            fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(s));
        rc = exit_for(st);
        free(confusion);
        goto done;
    }
    if (!isfinite(r.loss) && !a->allow_nonfinite) {
        fprintf(stderr, "%s: error: the test-set loss is %s, not a finite number: the network's outputs overflow "
                "with these weights (--allow-nonfinite to print it anyway)\n", prog, isnan(r.loss) ? "NaN" : "inf");
        rc = EXIT_INPUT;
        free(confusion);
        goto done;
    }
    printf("test: loss %.4f, accuracy %.2f%%", r.loss, r.accuracy * 100.0);
    if (r.has_top5)
        printf(", top-5 accuracy %.2f%%", r.top5 * 100.0);
    printf(" (%" PRId64 " examples, %.0f images/s)\n", cnn_dataset_count(test), (double)cnn_dataset_count(test) / (t1 - t0));
    if (confusion)
        print_classes(confusion, classes);
    free(confusion);
done:
    cnn_dataset_destroy(test);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

/* ---- cnnc train ---- */

/* SIGINT and SIGTERM during training: the handler only records the signal; the step callback
 * sees it and stops cnn_train after the step it is in (cnn_train then writes --checkpoint's
 * last.safetensors at that step), and cmd_train closes the log, writes --save when there is no
 * checkpoint and exits 130 (SIGINT) or 143 (SIGTERM).  SA_RESETHAND: a second signal of the
 * same kind ends the process at once. */
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

/* The --log CSV: one header, then a row per step and a row per epoch (docs/commands.md). */
static const char log_header[] =
    "kind,epoch,step,lr,loss,accuracy,images_per_s,time,val_loss,val_accuracy,test_loss,test_accuracy\n";

/* What the callbacks print to. */
typedef struct train_display {
    const args *a;
    FILE *log;         /* --log, opened at the first row (the path is checked before training) */
    bool log_append;   /* --resume onto a log of ours: rows are appended */
    int log_errno;     /* a write to the log failed: its errno (training stops) */
    bool tty;          /* stdout is a terminal and not -q: draw the progress line */
    bool has_test, has_val;
    double last_draw;  /* seconds into the epoch of the last progress line */
    int64_t steps, epoch; /* the last step taken and its epoch */
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

/* Opens the log at the first row: a new file with the header, or (--resume onto a log that
 * starts with the header) the end of the existing one.  false with log_errno on failure. */
static bool open_log(train_display *d)
{
    if (d->log || d->log_errno)
        return d->log != NULL;
    errno = 0;
    d->log = fopen(d->a->log, d->log_append ? "a" : "w");
    if (!d->log || (!d->log_append && (fputs(log_header, d->log) < 0 || fflush(d->log) != 0))) {
        d->log_errno = errno ? errno : EIO;
        return false;
    }
    return true;
}

/* Writes one row, whole, and flushes it: a stopped run leaves no half line. */
static bool log_row(train_display *d, const char *row)
{
    if (!d->a->log)
        return true;
    if (!open_log(d))
        return false;
    errno = 0;
    if (fputs(row, d->log) < 0 || fflush(d->log) != 0) {
        d->log_errno = errno ? errno : EIO;
        return false;
    }
    return true;
}

static int on_step(const cnn_train_step_info *si, void *user)
{
    train_display *d = user;
    char row[512];
    snprintf(row, sizeof row, "step,%" PRId64 ",%" PRId64 ",%.6g,%.6f,%.6f,%.1f,%.3f,,,,\n", si->epoch, si->step,
             si->lr, si->loss, si->accuracy, si->images_per_s, si->wall_seconds);
    if (!log_row(d, row))
        return 1; /* stop: the log is what was asked for */
    d->steps = si->step;
    d->epoch = si->epoch;
    if (stop_signal)
        return 1; /* SIGINT or SIGTERM: stop after this step */
    if (si->epoch_step == 1 || si->call_steps == 1)
        d->last_draw = -1.0;
    if (d->tty && (si->seconds - d->last_draw > 0.1 || si->epoch_step == si->steps_per_epoch)) {
        d->last_draw = si->seconds;
        char left[32];
        /* the time left of the whole run (--steps included), at this call's pace */
        format_duration(left, sizeof left,
                        si->call_seconds / (double)si->call_steps * (double)(si->run_steps - si->step));
        printf("\repoch %" PRId64 "/%" PRId64 "  step %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f%%  lr %.3g  %.0f img/s  "
               "%s left   ",
               si->epoch, si->epochs, si->epoch_step, si->steps_per_epoch, si->epoch_loss, 100.0 * si->epoch_accuracy,
               si->lr, si->images_per_s, left);
        flush_stdout();
    }
    return 0;
}

static void csv_num(char *buf, size_t n, bool has, double v)
{
    if (has)
        snprintf(buf, n, "%.6f", v);
    else
        buf[0] = '\0';
}

static int on_epoch(const cnn_train_epoch_info *ei, void *user)
{
    train_display *d = user;
    char vl[32], va[32], tl[32], ta[32], row[512];
    csv_num(vl, sizeof vl, ei->has_val, ei->val_loss);
    csv_num(va, sizeof va, ei->has_val, ei->val_accuracy);
    csv_num(tl, sizeof tl, ei->has_test, ei->test_loss);
    csv_num(ta, sizeof ta, ei->has_test, ei->test_accuracy);
    snprintf(row, sizeof row, "epoch,%" PRId64 ",%" PRId64 ",%.6g,%.6f,%.6f,%.1f,%.3f,%s,%s,%s,%s\n", ei->epoch,
             ei->total_steps, ei->lr, ei->train_loss, ei->train_accuracy, ei->images_per_s, ei->wall_seconds, vl, va,
             tl, ta);
    if (!log_row(d, row))
        return 1;
    bool train_part = !d->a->quiet || (!ei->has_test && !ei->has_val);
    if (d->tty)
        printf("\r\033[K");
    const char *sep = "";
    if (train_part) {
        printf("epoch %" PRId64 ": train loss %.4f, accuracy %.2f%%, %.0f images/s, %.1f s", ei->epoch, ei->train_loss,
               100.0 * ei->train_accuracy, ei->images_per_s, ei->seconds);
        sep = "; ";
    }
    if (ei->has_val) {
        printf("%sval loss %.4f, val accuracy %.2f%%", sep, ei->val_loss, ei->val_accuracy * 100.0);
        sep = "; ";
    }
    if (ei->has_test)
        printf("%stest loss %.4f, test accuracy %.2f%%", sep, ei->test_loss, ei->test_accuracy * 100.0);
    if (ei->improved && (d->a->checkpoint || d->a->patience) && !d->a->quiet)
        printf(" (best)");
    printf("\n");
    flush_stdout();
    if (ei->warning && !d->warned && cnn_dist_rank() == 0) {
        d->warned = true;
        fprintf(stderr, "%s: warning: %s; %s\n", prog, ei->warning,
                strncmp(ei->warning, "training has diverged", 21) == 0 ? "try a smaller --lr"
                                                                      : "try another --lr (or check the data)");
    }
    if (ei->early_stop && !d->a->quiet)
        printf("early stop: no better %s accuracy for %" PRId64 " epoch%s; the best was epoch %" PRId64 " (%.2f%%)\n",
               ei->has_val ? "validation" : "test", ei->epochs_without_improvement,
               ei->epochs_without_improvement == 1 ? "" : "s", ei->best_epoch, 100.0 * ei->best_accuracy);
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
    if (a->lr_scale_by_world) /* linear scaling for the global batch of P x batch */
        tc->lr *= cnn_dist_size();
}

static int log_error(const args *a, int e)
{
    fprintf(stderr, "%s: error: cannot write the log %s: %s\n", prog, a->log, strerror(e));
    return EXIT_INPUT;
}

/* Checks, before any training, that a file can be written at path (what: the flag): not a
 * folder, in a folder that exists and can be written.  An exit status (reported) or 0. */
static int check_output_file(const char *what, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: error: %s %s is a folder; a file is to be written there\n", prog, what, path);
        return EXIT_INPUT;
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return 0; /* a device or a pipe: written in place */
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "%s: error: cannot write %s %s: the folder %s %s\n", prog, what, path, dir,
                stat(dir, &sb) != 0 ? "does not exist" : "is not a folder");
        return EXIT_INPUT;
    }
    if (access(dir, W_OK | X_OK) != 0 || (access(path, F_OK) == 0 && access(path, W_OK) != 0)) {
        fprintf(stderr, "%s: error: cannot write %s %s: %s\n", prog, what, path, strerror(errno));
        return EXIT_INPUT;
    }
    return 0;
}

/* cnn_train stopped on signal sig (after writing --checkpoint's last.safetensors, when given):
 * closes the log (every line of it complete: each is written and flushed whole), writes --save
 * with the weights as they are when there is no checkpoint, and reports, on one line. */
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
    bool save = a->save && !a->checkpoint;
    if (save && cnn_weights_save(w, a->save) != CNN_OK) {
        fprintf(stderr, "%s: error: interrupted by %s after step %" PRId64 ", and cannot save the weights: %s\n",
                prog, name, d->steps, cnn_weights_errmsg(w));
        return EXIT_INPUT;
    }
    char what[8192];
    if (a->checkpoint)
        snprintf(what, sizeof what, "; wrote the checkpoint %s/last.safetensors (--resume it to go on)%s", a->checkpoint,
                 a->save ? "; --save is written when training ends" : "");
    else if (save)
        snprintf(what, sizeof what, "; saved the weights as they are, mid-training, to %s", a->save);
    else
        snprintf(what, sizeof what, "; nothing saved (no --save or --checkpoint)");
    if (cnn_dist_rank() == 0) /* data-parallel: every process stopped after the same step; rank 0 says so */
        fprintf(stderr, "%s: interrupted by %s after step %" PRId64 " (epoch %" PRId64 ")%s%s\n", prog, name,
                d->steps, d->epoch, a->log ? "; the log is complete to that step" : "", what);
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
    to.val = a->val;
    to.patience = a->patience;
    to.checkpoint_dir = a->checkpoint;
    to.resume = a->resume;
    to.on_step = on_step;
    to.on_epoch = on_epoch;
    to.user = d;
    errno = 0;
    saved_handlers old;
    install_stop_handlers(&old);
    cnn_train_result res;
    cnn_status st = cnn_train(s, train, test, &to, &res);
    restore_handlers(&old);
    int sig = stop_signal;
    if (d->log_errno)
        return log_error(a, d->log_errno);
    if (sig && st == CNN_OK && res.stopped)
        return interrupted(a, w, d, sig);
    if (st != CNN_OK) {
        if (d->tty)
            printf("\n");
        /* data-parallel: the process that failed says why (a divergence, seen by all: rank 0) */
        if (!cnn_dist_failed_elsewhere() && (st != CNN_ERR_DIVERGED || cnn_dist_rank() == 0))
            fprintf(stderr, "%s: error: %s%s\n", prog, cnn_session_errmsg(s),
                    st == CNN_ERR_DIVERGED ? "; try a smaller --lr" : "");
        return exit_for(st);
    }
    if (a->resume && !a->quiet && res.resumed_step >= res.steps)
        printf("%s had already taken the run's %" PRId64 " steps: nothing to train\n", a->resume, res.steps);
    if (res.restored_best && !a->quiet)
        printf("restored the weights of epoch %" PRId64 ", the best (%s accuracy %.2f%%)\n", res.best_epoch,
               res.has_val ? "validation" : "test", 100.0 * res.best_accuracy);
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

/* --resume onto an existing log of ours: its rows go on (no second header). */
static bool log_continues(const args *a)
{
    if (!a->resume || !a->log)
        return false;
    FILE *f = fopen(a->log, "r");
    if (!f)
        return false;
    char line[256];
    bool ours = fgets(line, sizeof line, f) && strcmp(line, log_header) == 0;
    fclose(f);
    return ours;
}

/* The header line: what is trained on what, for how long. */
static void print_header(const args *a, cnn_model *m, const cnn_train_config *tc, int64_t n, bool has_test)
{
    int64_t trained = n - a->val, per_epoch = tc->batch > 0 ? trained / tc->batch : 0;
    printf("training %s on %" PRId64 " examples", cnn_model_name(m), trained);
    if (a->val)
        printf(" (%" PRId64 " more held out for validation)", a->val);
    printf("%s: ", has_test ? " (with a test set)" : "");
    int64_t all = tc->epochs * per_epoch;
    if (a->steps && a->steps < all)
        printf("%" PRId64 " steps (epochs of %" PRId64 " steps), ", a->steps, per_epoch);
    else
        printf("%" PRId64 " epochs of %" PRId64 " steps, ", tc->epochs, per_epoch);
    char opt_text[160];
    printf("batch %" PRId64 ", %s\n", tc->batch, optimizer_text(tc, opt_text, sizeof opt_text));
    if (a->resume)
        printf("resuming from %s\n", a->resume);
}

static int train_command(const args *a);

int cmd_train(const args *a)
{
    args local;
    int rc = dist_begin(&a, &local);
    return dist_end(rc ? rc : train_command(a));
}

static int train_command(const args *a)
{
    if (!a->data)
        return usage_error("cnnc train needs --data DIR");
    if (a->resume && a->weights)
        return usage_error("--resume restores the weights of its checkpoint; -w cannot be given with it");
    /* every output place, before anything is loaded or trained */
    int rc;
    if ((a->save && (rc = check_output_file("--save", a->save))) || (a->log && (rc = check_output_file("--log", a->log))))
        return rc;
    cnn_model *m;
    if ((rc = load_model(a, &m)))
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *train = NULL, *test = NULL;
    train_display d = {.a = a, .tty = isatty(fileno(stdout)) && !a->quiet, .log_append = log_continues(a)};
    if ((rc = make_weights(a, m, &w)) || (rc = load_train_test(a, m, &train, &test)))
        goto done;
    d.has_test = test != NULL;
    d.has_val = a->val > 0;
    cnn_train_config tc;
    train_config(a, m, &tc);
    int64_t n = cnn_dataset_count(train);
    if (a->val >= n) {
        fprintf(stderr, "%s: error: --val %" PRId64 " holds out every one of the %" PRId64 " training examples\n", prog,
                a->val, n);
        rc = EXIT_USAGE;
        goto done;
    }
    if (tc.batch > n - a->val) {
        fprintf(stderr, "%s: error: batch %" PRId64 " is larger than the %" PRId64 " training examples%s\n", prog,
                tc.batch, n - a->val, a->val ? " left after --val" : "");
        rc = EXIT_USAGE;
        goto done;
    }
    if (a->patience && !a->val && !test) {
        fprintf(stderr, "%s: error: --patience needs a validation set (--val N) or a test set in %s to measure "
                "improvement\n", prog, a->data);
        rc = EXIT_USAGE;
        goto done;
    }
    if ((rc = make_session(&s, m, w, a, tc.batch, CNN_MODE_TRAIN, &tc)))
        goto done;
    if ((rc = dist_check(rc))) /* data-parallel: every process is ready, or none starts */
        goto done;
    if (!a->quiet)
        print_header(a, m, &tc, n, test != NULL);
    flush_stdout();
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
