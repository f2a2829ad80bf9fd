/* Parallel work in the native kernels, without a parallel region when one thread does it
 * (docs/choices.md, "Threads").  An OpenMP region costs 1 to 3 us even of one thread, and
 * 2.5 us nested inside the replicas' region (runtime/replicas.c: every kernel of a replica
 * runs on one thread there): LeNet-5's inference at batch 1 on one thread, two regions a run,
 * took 0.022 ms a run with them and 0.011 without; a replica of its training step opened 18.
 *
 * NAT_PAR(nt, ...) runs the statements on nt threads in one region, or on the calling thread
 * alone when nt <= 1.  Inside, nat_tid and nat_nt are the thread's index and the team's size
 * (0 and 1 alone); never omp_get_thread_num(), which inside the replicas' region is the
 * replica's thread, and no OpenMP construct (a work-sharing loop or barrier met outside a
 * region of its own would bind to the replicas' region).  Instead:
 *   NAT_STATIC(i, n)        this thread's share of [0, n), contiguous (OpenMP's static);
 *   NAT_DYNAMIC(i, n, ctr)  items of [0, n) taken one at a time from the shared int64_t
 *                           counter ctr (zero it before the region; one loop per counter);
 *   NAT_BARRIER()           waits for the team (nothing alone).
 * NAT_FOR(nt, i, n, ...) is a loop over [0, n) in static shares, and NAT_CHUNKED(nt, total, ...)
 * runs the statements for every chunk [o, o + len) of NAT_CHUNK elements of [0, total) (one
 * chunk: on the calling thread).  The statements are compiled twice (the region's and the
 * calling thread's); they may not hold a preprocessor line. */
#ifndef CNN_OPS_NATIVE_PAR_H
#define CNN_OPS_NATIVE_PAR_H

#include <omp.h>
#include <stdint.h>

#define NAT_PAR(nt, ...)                                                                   \
    do {                                                                                   \
        int nat_want_ = (nt);                                                              \
        if (nat_want_ > 1) {                                                               \
            _Pragma("omp parallel num_threads(nat_want_)")                                 \
            {                                                                              \
                const int nat_tid = omp_get_thread_num(), nat_nt = omp_get_num_threads(); \
                (void)nat_tid;                                                             \
                (void)nat_nt;                                                              \
                __VA_ARGS__                                                                \
            }                                                                              \
        } else {                                                                           \
            const int nat_tid = 0, nat_nt = 1;                                             \
            (void)nat_tid;                                                                 \
            (void)nat_nt;                                                                  \
            __VA_ARGS__                                                                    \
        }                                                                                  \
    } while (0)

#define NAT_STATIC(i, n)                                                                   \
    for (int64_t i = (int64_t)(n) * nat_tid / nat_nt, i##_end_ = (int64_t)(n) * (nat_tid + 1) / nat_nt; \
         i < i##_end_; i++)

/* NAT_STATIC's share of this thread, last item first: a pass over what the thread's previous
 * pass read in order meets the most recent (still cached) items first. */
#define NAT_STATIC_REV(i, n)                                                               \
    for (int64_t i##_lo_ = (int64_t)(n) * nat_tid / nat_nt, i = (int64_t)(n) * (nat_tid + 1) / nat_nt - 1; \
         i >= i##_lo_; i--)

static inline int64_t nat_take_(int64_t *ctr, int nt)
{
    return nt > 1 ? __atomic_fetch_add(ctr, 1, __ATOMIC_RELAXED) : (*ctr)++;
}

#define NAT_DYNAMIC(i, n, ctr) for (int64_t i; (i = nat_take_(&(ctr), nat_nt)) < (int64_t)(n);)

#define NAT_BARRIER()                  \
    do {                               \
        if (nat_nt > 1) {              \
            _Pragma("omp barrier")     \
        }                              \
    } while (0)

#define NAT_FOR(nt, i, n, ...) NAT_PAR(nt, NAT_STATIC(i, n) { __VA_ARGS__ })

#define NAT_CHUNK 16384 /* elements per parallel job of the element-wise kernels */

#define NAT_CHUNKED(nt, total, ...)                                                         \
    do {                                                                                    \
        int64_t nat_nch_ = ((total) + NAT_CHUNK - 1) / NAT_CHUNK;                           \
        NAT_FOR(nat_nch_ > 1 ? (nt) : 1, nat_q_, nat_nch_, {                                \
            int64_t o = nat_q_ * NAT_CHUNK, len = (total) - o < NAT_CHUNK ? (total) - o : NAT_CHUNK; \
            __VA_ARGS__;                                                                    \
        });                                                                                 \
    } while (0)

#endif
