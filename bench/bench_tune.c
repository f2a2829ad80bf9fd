/* Backend auto with and without tuning (--tune) against each single backend, on one network,
 * batch, thread count and mode, interleaved in blocks of BLOCK timed runs (each after one
 * untimed run, which finds the caches full of the previous session's data) so that the
 * machine's load falls on every row alike.  Prints per row the median with [min - max] and its ratio to the best single
 * backend (the smaller median of onednn and native), and the same ratio of the minimums (less
 * moved by other work on a shared machine); the tuned row's ratio is what issue 13 bounds (at
 * most 1.03).  When tuning keeps a uniform plan ("plan onednn"), the tuned plan is that
 * backend's plan step for step, and any gap between the two rows is noise.
 *
 *   bench_tune NET.cnn [--train] [--batch N] [--threads N] [--runs N] [--choices]
 *
 * The tuned session measures afresh (no cache); its tuning time is printed apart and not
 * counted in the runs.  --choices then lists the tuned plan's steps with their backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "runtime/cnn.h"

enum { ROWS = 4, BLOCK = 4 };

static cnn_status run(cnn_session *s, bool train, const float *labels)
{
    return train ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool train = false, choices = false;
    long long batch = 1;
    int threads = 1, runs = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--train") == 0)
            train = true;
        else if (strcmp(argv[i], "--choices") == 0)
            choices = true;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: %s NET.cnn [--train] [--batch N] [--threads N] [--runs N] [--choices]\n", argv[0]);
            return 2;
        }
    }
    if (!path || batch < 1 || threads < 1 || runs < 1) {
        fprintf(stderr, "usage: %s NET.cnn [--train] [--batch N] [--threads N] [--runs N] [--choices]\n", argv[0]);
        return 2;
    }
    cnn_model *m = NULL;
    cnn_weights *w = NULL;
    if (cnn_model_load(&m, path, NULL) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_model_errmsg(m));
        return 1;
    }
    if (cnn_weights_create(&w, m, 1) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_weights_errmsg(w));
        return 1;
    }
    static const char *const names[ROWS] = {"auto untuned", "auto tuned", "onednn", "native"};
    static const cnn_backend backends[ROWS] = {CNN_BACKEND_AUTO, CNN_BACKEND_AUTO, CNN_BACKEND_ONEDNN,
                                               CNN_BACKEND_NATIVE};
    cnn_session *s[ROWS] = {NULL};
    double *t[ROWS] = {NULL};
    float *labels = calloc((size_t)batch, sizeof(float));
    cnn_tune_info ti = {0};
    for (int r = 0; r < ROWS; r++) {
        cnn_options o;
        cnn_options_default(&o);
        o.threads = threads;
        o.backend = backends[r];
        o.tune = r == 1 ? CNN_TUNE_ON : CNN_TUNE_OFF;
        o.tune_cache = "none";
        if (cnn_session_create(&s[r], m, w, &o, batch, train ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL) != CNN_OK) {
            fprintf(stderr, "%s: %s\n", names[r], cnn_session_errmsg(s[r]));
            cnn_session_destroy(s[r]);
            s[r] = NULL;
            continue;
        }
        if (r == 1)
            cnn_session_tune_info(s[r], &ti);
        bench_fill_input(m, s[r], batch);
        t[r] = calloc((size_t)runs, sizeof(double));
        for (int k = 0; k < 2; k++)
            run(s[r], train, labels);
    }
    /* blocks of BLOCK timed runs per session, the sessions in turn (each first in turn), each
     * block after one untimed run: a plan runs alone in use, and a run right after another
     * session's finds the caches full of that one's data */
    for (int i0 = 0; i0 < runs; i0 += BLOCK)
        for (int k = 0; k < ROWS; k++) {
            int r = (i0 / BLOCK + k) % ROWS;
            if (!s[r])
                continue;
            for (int i = i0 - 1; i < i0 + BLOCK && i < runs; i++) {
                double t0 = now();
                if (run(s[r], train, labels) != CNN_OK) {
                    fprintf(stderr, "%s: %s\n", names[r], cnn_session_errmsg(s[r]));
                    return 1;
                }
                if (i >= i0)
                    t[r][i] = now() - t0;
            }
        }
    double med[ROWS] = {0}, best = 0, best_min = 0;
    for (int r = 0; r < ROWS; r++)
        if (s[r]) {
            qsort(t[r], (size_t)runs, sizeof(double), cmp_double);
            med[r] = runs % 2 ? t[r][runs / 2] : 0.5 * (t[r][runs / 2 - 1] + t[r][runs / 2]);
            if (r >= 2 && (best == 0 || med[r] < best))
                best = med[r];
            if (r >= 2 && (best_min == 0 || t[r][0] < best_min))
                best_min = t[r][0];
        }
    printf("%s, %s, batch %lld, %d thread%s, %d runs in interleaved blocks of %d (%s, %s)\n", cnn_model_name(m),
           train ? "training step" : "inference", batch, threads, threads == 1 ? "" : "s", runs, BLOCK, cnn_cpu_model(),
           cnn_cpu_isa());
    printf("tuning: %.2f s, %d nodes measured, plan %s%s%s\n", ti.seconds, ti.measured, ti.plan, ti.note[0] ? "; " : "",
           ti.note);
    for (int r = 0; r < ROWS; r++)
        if (s[r])
            printf("  %-13s %10.3f ms  [%.3f - %.3f]  %.3fx best single (mins: %.3fx)\n", names[r], med[r] * 1e3,
                   t[r][0] * 1e3, t[r][runs - 1] * 1e3, best > 0 ? med[r] / best : 0,
                   best_min > 0 ? t[r][0] / best_min : 0);
    if (choices && s[1]) {
        printf("tuned plan's steps:\n");
        for (int i = 0; i < cnn_session_profile_steps(s[1]); i++) {
            cnn_profile_entry e;
            cnn_session_profile_entry(s[1], i, &e);
            printf("  %-28s %-18s %-8s %-7s %s\n", e.name, e.op, e.phase, e.backend, e.layout);
        }
    }
    for (int r = 0; r < ROWS; r++) {
        cnn_session_destroy(s[r]);
        free(t[r]);
    }
    free(labels);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return 0;
}
