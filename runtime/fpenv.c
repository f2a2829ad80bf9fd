/* Denormal floats during runs (docs/choices.md, "Denormals").
 *
 * x86 CPUs compute with denormal (subnormal) operands or results many times slower than with
 * normal ones, in every kernel alike (oneDNN's, native, reference).  A network trained on the
 * same examples for a while makes them: the cross-entropy gradient of a confident prediction
 * holds probabilities below FLT_MIN, and the backward pass carries them down through every
 * layer.  LeNet-5's training step at batch 32 on one thread took 1.2 ms against 0.84 ms with
 * them flushed (and no slower at the first steps, before any appear).
 *
 * So a run, unless cnn_options.keep_denormals, sets the SSE control register's flush-to-zero
 * (denormal results become 0) and denormals-are-zero (denormal inputs read as 0) bits on every
 * thread that runs its kernels, as TensorFlow does for its ops, and puts back each thread's
 * own bits after: the calling thread's always, and OpenMP's other threads' (one parallel region
 * before the run and one after, each thread saving its bits in a thread-local) when the run
 * uses several threads, or in the run's own region (the replicas': rt_fpenv_thread_set).  A
 * run on one thread, which is how runs go beside a busy process, opens no region for it.
 * Results change only where a value below FLT_MIN (1.2e-38) was made or read.  Elsewhere than
 * x86 the calls do nothing. */
#include <omp.h>
#include <stdbool.h>

#include "runtime/rt.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FP_FLUSH_BITS 0x8040u /* MXCSR: FTZ (bit 15) and DAZ (bit 6) */
static unsigned fp_get(void) { return _mm_getcsr(); }
static void fp_set(unsigned v) { _mm_setcsr(v); }
#else
#define FP_FLUSH_BITS 0u
static unsigned fp_get(void) { return 0; }
static void fp_set(unsigned v) { (void)v; }
#endif

/* each of OpenMP's threads' own bits while a run of several threads has set them */
static _Thread_local unsigned worker_saved;

void rt_fpenv_enter(rt_fpenv *e, bool flush, int nthreads)
{
    e->flush = flush && FP_FLUSH_BITS != 0;
    e->nthreads = 1;
    if (!e->flush)
        return;
    e->caller = fp_get();
    fp_set(e->caller | FP_FLUSH_BITS);
    if (nthreads > 1 && !omp_in_parallel()) {
        e->nthreads = nthreads;
#pragma omp parallel num_threads(nthreads)
        if (omp_get_thread_num() != 0) {
            worker_saved = fp_get();
            fp_set(worker_saved | FP_FLUSH_BITS);
        }
    }
}

unsigned rt_fpenv_thread_set(const rt_fpenv *e)
{
    if (!e->flush)
        return 0;
    unsigned saved = fp_get();
    fp_set(saved | FP_FLUSH_BITS);
    return saved;
}

void rt_fpenv_thread_restore(const rt_fpenv *e, unsigned saved)
{
    if (e->flush)
        fp_set(saved);
}

void rt_fpenv_leave(const rt_fpenv *e)
{
    if (!e->flush)
        return;
    if (e->nthreads > 1) {
#pragma omp parallel num_threads(e->nthreads)
        if (omp_get_thread_num() != 0)
            fp_set(worker_saved);
    }
    fp_set(e->caller);
}
