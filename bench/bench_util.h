/* Timing helpers shared by the benchmarks, and the input they feed whole networks. */
#ifndef CNN_BENCH_UTIL_H
#define CNN_BENCH_UTIL_H

#include <time.h>

#include "runtime/cnn.h"

/* Monotonic seconds. */
static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* qsort comparator for doubles, ascending (for medians). */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills the first input of s, a session of m at `batch`, with a fixed pattern in [0, 1) (the one
 * `cnnc bench` feeds). */
static inline void bench_fill_input(const cnn_model *m, cnn_session *s, int64_t batch)
{
    float *x = cnn_session_input(s, 0);
    int64_t dims[4], per = 1;
    int rank = cnn_model_input_shape(m, 0, dims);
    for (int k = 0; k < rank && k < 4; k++)
        per *= dims[k];
    for (int64_t i = 0; i < batch * per && x; i++)
        x[i] = (float)((i * 7919) % 1000) / 1000.0f;
}

#endif
