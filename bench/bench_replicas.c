/* A training step on 1 thread, and on T threads as planned and as replicas of the step
 * (runtime/replicas.c), interleaved so that a busy neighbour slows each alike.
 *
 *   bench_replicas NET.cnn [batch=64] [threads=2] [steps=50] [rounds=10] [tune=off|on]
 *
 * Four training sessions, each on its own copy of the weights (the file's train section; with
 * tune=on, backend auto by measurement, without a cache: each session tunes for itself):
 * 1 thread; T threads with CNN_REPLICAS=off (the step as planned: per-step thread counts, or
 * one thread per run when that proved faster); T threads with CNN_REPLICAS=on; T threads with
 * CNN_REPLICAS=auto (the default: replicas or not by timing).  Each round runs each session in
 * turn (odd rounds in the other order): 5 untimed steps, then `steps` timed ones (steps of
 * several sessions taken in turn one by one would wake the OpenMP threads at every step under
 * OMP_WAIT_POLICY=passive).  A configuration's figure is the median step time over all rounds' steps, as images/s,
 * with the slowest and fastest round's medians; then each one's speed-up over 1 thread, and a
 * one-line summary ("RESULT ...") for tables. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "runtime/cnn.h"

enum { NCFG = 4 };

static const char *const cfg_name[NCFG] = {"1 thread", "T threads, planned", "T threads, replicas",
                                           "T threads, auto"};
static const char *const cfg_env[NCFG] = {"off", "off", "on", "auto"};

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s NET.cnn [batch=64] [threads=2] [steps=50] [rounds=10] [tune=off|on]\n", argv[0]);
        return 2;
    }
    int64_t batch = argc > 2 ? atoll(argv[2]) : 64;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int steps = argc > 4 ? atoi(argv[4]) : 50;
    int rounds = argc > 5 ? atoi(argv[5]) : 10;
    bool tune = argc > 6 && strcmp(argv[6], "on") == 0;
    if (batch < 1 || threads < 2 || steps < 1 || rounds < 1) {
        fprintf(stderr, "%s: batch, steps and rounds must be positive, threads at least 2\n", argv[0]);
        return 2;
    }
    cnn_model *m = NULL;
    if (cnn_model_load(&m, argv[1], NULL) != CNN_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], cnn_model_errmsg(m));
        return 1;
    }
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.lr = 1e-4; /* small steps: the weights stay in range however long it runs */
    int64_t dims[4], classes = 1;
    if (cnn_model_output_shape(m, 0, dims) >= 1)
        classes = dims[0];
    float *labels = malloc(sizeof(float) * (size_t)batch);
    double *t = malloc(sizeof(double) * (size_t)NCFG * (size_t)rounds * (size_t)steps);
    double *round_med = malloc(sizeof(double) * (size_t)NCFG * (size_t)rounds);
    double *one = malloc(sizeof(double) * (size_t)steps);
    cnn_weights *w[NCFG] = {0};
    cnn_session *s[NCFG] = {0};
    int rc = 0;
    if (!labels || !t || !round_med || !one) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    for (int64_t i = 0; i < batch; i++)
        labels[i] = (float)(i % classes);
    for (int c = 0; c < NCFG && rc == 0; c++) {
        cnn_options o;
        cnn_options_default(&o);
        o.threads = c == 0 ? 1 : threads;
        if (tune) {
            o.tune = CNN_TUNE_ON;
            o.tune_cache = "none";
        }
        setenv("CNN_REPLICAS", cfg_env[c], 1);
        if (cnn_weights_create(&w[c], m, 1) != CNN_OK ||
            cnn_session_create(&s[c], m, w[c], &o, batch, CNN_MODE_TRAIN, &tc) != CNN_OK) {
            fprintf(stderr, "%s: %s: %s\n", argv[0], cfg_name[c], s[c] ? cnn_session_errmsg(s[c]) : "no weights");
            rc = 1;
            break;
        }
        bench_fill_input(m, s[c], batch);
    }
    unsetenv("CNN_REPLICAS");
    for (int r = 0; r < rounds && rc == 0; r++)
        for (int j = 0; j < NCFG && rc == 0; j++) {
            int c = r % 2 ? NCFG - 1 - j : j; /* odd rounds in the other order */
            for (int k = -5; k < steps && rc == 0; k++) {
                double t0 = now();
                if (cnn_session_train_step(s[c], labels, true, NULL, NULL) != CNN_OK) {
                    fprintf(stderr, "%s: %s: %s\n", argv[0], cfg_name[c], cnn_session_errmsg(s[c]));
                    rc = 1;
                }
                if (k >= 0)
                    t[((size_t)c * (size_t)rounds + (size_t)r) * (size_t)steps + (size_t)k] = now() - t0;
            }
            if (rc == 0) {
                memcpy(one, &t[((size_t)c * (size_t)rounds + (size_t)r) * (size_t)steps],
                       sizeof(double) * (size_t)steps);
                round_med[c * rounds + r] = median(one, steps);
            }
        }
    if (rc == 0) {
        printf("%s, batch %lld, training step, %d threads%s: %d rounds of %d steps per configuration, interleaved by "
               "round\n",
               cnn_model_name(m), (long long)batch, threads, tune ? ", tuned" : "", rounds, steps);
        printf("%-22s %10s %12s %22s %9s\n", "configuration", "median ms", "images/s", "rounds' medians ms",
               "vs 1T");
        double ips[NCFG];
        for (int c = 0; c < NCFG; c++) {
            double med = median(&t[(size_t)c * (size_t)rounds * (size_t)steps], rounds * steps);
            double *rm = &round_med[c * rounds];
            qsort(rm, (size_t)rounds, sizeof(double), cmp_double);
            ips[c] = (double)batch / med;
            printf("%-22s %10.3f %12.1f %10.3f - %-9.3f %8.2fx\n", cfg_name[c], 1e3 * med, ips[c], 1e3 * rm[0],
                   1e3 * rm[rounds - 1], ips[c] / ips[0]);
        }
        printf("RESULT %s batch %lld threads %d%s: 1T %.0f, planned %.0f (%.2fx), replicas %.0f (%.2fx), auto %.0f "
               "(%.2fx) images/s\n",
               cnn_model_name(m), (long long)batch, threads, tune ? " tuned" : "", ips[0], ips[1], ips[1] / ips[0], ips[2], ips[2] / ips[0],
               ips[3], ips[3] / ips[0]);
    }
    for (int c = 0; c < NCFG; c++) {
        cnn_session_destroy(s[c]);
        cnn_weights_destroy(w[c]);
    }
    cnn_model_destroy(m);
    free(labels);
    free(t);
    free(round_med);
    free(one);
    return rc;
}
