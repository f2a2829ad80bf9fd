/* Inference time of one network in fp32, bf16 and int8 (spec section 8, --precision), the
 * three interleaved run by run so that the machine's load falls on all of them alike.  Prints
 * per precision the median with [min - max] and the speed-up of the medians over fp32.
 *
 *   bench_precision NET.cnn Q.safetensors [batch=64] [threads=1] [runs=20]
 *
 * Q.safetensors: weights with int8 scales (cnnc quantize, or bench/make_int8_weights.py).
 * Then, from the library's per-node profile (the same runs again, interleaved), the sum of the
 * convolution nodes' medians per precision: the convolutions alone, their conversions included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_util.h"
#include "runtime/cnn.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NET.cnn Q.safetensors [batch] [threads] [runs]\n", argv[0]);
        return 2;
    }
    int64_t batch = argc > 3 ? atoll(argv[3]) : 64;
    int threads = argc > 4 ? atoi(argv[4]) : 1, runs = argc > 5 ? atoi(argv[5]) : 20;
    cnn_model *m = NULL;
    cnn_weights *w = NULL;
    if (cnn_model_load(&m, argv[1], NULL) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_model_errmsg(m));
        return 1;
    }
    if (cnn_weights_create(&w, m, 1) != CNN_OK || cnn_weights_load(w, argv[2], false) != CNN_OK) {
        fprintf(stderr, "%s\n", cnn_weights_errmsg(w));
        return 1;
    }
    const char *names[3] = {"fp32", "bf16", "int8"};
    cnn_session *s[3] = {NULL, NULL, NULL};
    double *t[3];
    for (int p = 0; p < 3; p++) {
        cnn_options o;
        cnn_options_default(&o);
        o.threads = threads;
        o.precision = (cnn_precision)p;
        if (cnn_session_create(&s[p], m, w, &o, batch, CNN_MODE_INFER, NULL) != CNN_OK) {
            fprintf(stderr, "%s: %s\n", names[p], cnn_session_errmsg(s[p]));
            cnn_session_destroy(s[p]);
            s[p] = NULL;
            continue;
        }
        bench_fill_input(m, s[p], batch);
        cnn_session_run(s[p]); /* warm-up: primitives, weight reorders */
        cnn_session_run(s[p]);
    }
    for (int p = 0; p < 3; p++) t[p] = calloc((size_t)runs, sizeof(double));
    for (int r = 0; r < runs; r++)
        for (int p = 0; p < 3; p++) {
            if (!s[p]) continue;
            double t0 = now();
            cnn_session_run(s[p]);
            t[p][r] = now() - t0;
        }
    /* the convolutions alone: per-node profile of more runs */
    double conv_ms[3] = {0, 0, 0};
    for (int p = 0; p < 3; p++)
        if (s[p]) cnn_session_profile_start(s[p], runs);
    for (int r = 0; r < runs; r++)
        for (int p = 0; p < 3; p++)
            if (s[p]) cnn_session_run(s[p]);
    for (int p = 0; p < 3; p++) {
        if (!s[p]) continue;
        for (int i = 0; i < cnn_session_profile_steps(s[p]); i++) {
            cnn_profile_entry e;
            if (cnn_session_profile_entry(s[p], i, &e) == CNN_OK && strncmp(e.op, "conv", 4) == 0)
                conv_ms[p] += e.median_s * 1e3;
        }
    }
    printf("%s, batch %lld, %d thread%s, %d interleaved runs (%s)\n", argv[1], (long long)batch, threads,
           threads == 1 ? "" : "s", runs, cnn_cpu_isa());
    double base = 0;
    for (int p = 0; p < 3; p++) {
        if (!s[p]) {
            printf("  %-5s unavailable\n", names[p]);
            continue;
        }
        qsort(t[p], (size_t)runs, sizeof(double), cmp_double);
        double med = t[p][runs / 2];
        if (p == 0) base = med;
        printf("  %-5s median %9.3f ms  [%.3f - %.3f]  %10.1f images/s  %5.2fx   convolutions %8.3f ms  %5.2fx\n",
               names[p], med * 1e3, t[p][0] * 1e3, t[p][runs - 1] * 1e3, (double)batch / med, base > 0 ? base / med : 0,
               conv_ms[p], conv_ms[p] > 0 ? conv_ms[0] / conv_ms[p] : 0);
        cnn_session_destroy(s[p]);
        free(t[p]);
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return 0;
}
