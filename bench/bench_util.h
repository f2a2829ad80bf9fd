/* Timing helpers shared by the kernel benchmarks. */
#ifndef CNN_BENCH_UTIL_H
#define CNN_BENCH_UTIL_H

#include <time.h>

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

#endif
