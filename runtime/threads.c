/* How a session uses its threads (docs/choices.md, "Threads").
 *
 * 1. Per step, at session creation: a step whose work is too small to split runs on one thread
 *    (its kernel is prepared and run with op_call.nthreads 1, and the executor sets the OpenMP
 *    count to 1 around it, so oneDNN creates and runs its primitives on one thread too).  The
 *    work of a step is its FLOPs, or 4 per element of its tensors when that is more.
 *
 * 2. Per run, by timing: a session of several threads has two ways to run its plan, the
 *    planned counts of (1) and every step on one thread.  Beside a busy process, OpenMP
 *    threads that wait for a descheduled partner (libgomp spins before it sleeps) make
 *    parallel runs many times slower than one thread, and so may a machine whose cores are
 *    shared.  Runs use the way whose mean run time (a moving average: a collapse counts, not
 *    only the median) is lower.  Now and then runs try the other way: first once the way in
 *    use has been timed, then at gaps from 50 ms growing 4 times up to 2 s (or 32 runs)
 *    while the other way loses, never less than 8 runs of the way in use apart (tries of one
 *    thread while the planned counts are in use: from 1 s after a clear win, growing up to
 *    30 s); and at once (8 runs after the last try) when the way in use becomes 1.2 times
 *    slower than the other was.  A try first runs untimed for 3 ms (at least one run), which
 *    wakes threads that slept meanwhile; the faster of its next two runs is the way's new
 *    estimate.  Runs start on one thread.  A run on the planned counts that falls behind the
 *    one-thread pace goes on with its remaining steps on one thread (rt_threads_cut): before
 *    a step, once it has taken 3 ms + (RT_CUT_BASE + RT_CUT_PER x the share of the work done)
 *    times the one-thread run time; and that way is then left at once (a try of it is lost),
 *    so a busy neighbour costs a few runs' share, and a try little even when two threads
 *    crawl (the planned counts' first run, which warms them up, gets longer:
 *    RT_FIRST_RUN_FACTOR times the one-thread run, whatever its share).  The
 *    one-thread calls are prepared at the first run.  Off while profiling, in data-parallel
 *    training and for networks of more than 128 MB of weights (the one-thread calls hold a
 *    second copy of oneDNN's reordered weights).  An inference session whose runs may take
 *    chunks of the batch on replicas (runtime/replicas.c) has those as its way of several
 *    threads, in place of the planned counts, and chooses in the same way between them and one
 *    thread (CNN_REPLICAS=on: always the chunks).
 *
 * Results: the reference kernels' results do not depend on the thread count; native and
 * oneDNN kernels may differ in the last bits between counts, as between --threads 1 and 2. */
#include <math.h>

#include "compiler/build.h"
#include "ops/mem.h"
#include "runtime/rt.h"

/* Work (FLOPs or 4 per tensor element) under which a step runs on one thread: about 20 us of
 * one core's work, where waking and joining a second thread costs as much as it saves. */
#define RT_THREADS_MIN_WORK 2.0e6

/* How long a try of the other way runs untimed first: waking a sleeping OpenMP thread (on an
 * idle vCPU) took about 1.5 ms on the 2-vCPU machine of docs/choices.md. */
#define RT_WAKE 0.003

/* The deadline of the planned counts' first run, their warm-up (untimed): RT_FIRST_RUN_FACTOR
 * times the one-thread run time, and at least RT_FIRST_RUN_MIN seconds.  That run makes the
 * multi-thread kernels' first passes (oneDNN's Winograd convolutions transform their weights;
 * scratch pages are touched for the first time): vgg_small's first run at batch 1 took 18.6 ms
 * on 2 threads against 2.1 ms on one.  Under the normal deadline it went on on one thread after
 * 3 ms, which left the later steps cold, so the next runs were cut too and the try lost (runs of
 * 5 ms against 2 ms), and runs stayed on one thread for another 0.2 s. */
#define RT_FIRST_RUN_FACTOR 10.0
#define RT_FIRST_RUN_MIN 0.02

/* A run of the planned counts is cut before a step once it has taken RT_WAKE + (RT_CUT_BASE +
 * RT_CUT_PER x the share of the planned work (rt_step_work) before the step) times the
 * one-thread run time: at most 1.3 times that run time at the end (it was 1.5, at the end
 * only).  Beside a `yes`, resnet20's training runs at batch 64 on 2 threads took 99, 122, 153
 * and 239 ms (one thread: 99-114, two idle: 61) before the moving average called for a try of
 * one thread, and a later try of two threads 201, 195 and 117 ms before it was lost. */
#define RT_CUT_BASE 0.25
#define RT_CUT_PER 1.05

/* The gaps between tries of the other way, in seconds.  While the patient way (here the planned
 * counts) is in use, tries of the other wait longer (RT_PROBE_CLEAR after it has won by
 * RT_CLEAR_MARGIN, growing up to RT_PROBE_MAX_PATIENT): a busy neighbour shows first as slower
 * planned runs, which start a try at once, and each try of one thread costs about three runs
 * of twice the time (resnet20 at batch 64 on 2 threads: 3 x 26 ms every 2 s had been 4% of
 * the run time, and a try in a short benchmark's timed runs moved its median). */
#define RT_PROBE_MIN 0.05
#define RT_PROBE_MAX 2.0
#define RT_PROBE_CLEAR 1.0
#define RT_PROBE_MAX_PATIENT 30.0
#define RT_CLEAR_MARGIN 1.5

bool rt_weight_copies_fit(const cnn_weights *w)
{
    double bytes = 0;
    for (int i = 0; i < w->count; i++)
        bytes += 4.0 * (double)op_shape_numel(&w->t[i].shape);
    return bytes <= RT_WEIGHT_COPIES_MAX;
}

double rt_step_work(const cnn_session *s, int st)
{
    const ir_graph *g = s->plan->graph;
    int n = s->plan->steps[st].node;
    const ir_node *nd = &g->nodes[n];
    bool batched = false;
    double elems = 0;
    for (int k = 0; k < nd->nin + nd->nout; k++) {
        const ir_value *v = &g->vals[k < nd->nin ? nd->in[k] : nd->out[k - nd->nin]];
        double e = (double)op_shape_numel(&v->shape);
        if (v->batched) {
            e *= (double)s->batch;
            batched = true;
        }
        elems += e;
    }
    double flops = (double)ir_node_flops(g, n) * (batched ? (double)s->batch : 1.0);
    return fmax(flops, 4.0 * elems);
}

int rt_step_threads(const cnn_session *s, int st)
{
    if (s->nthreads <= 1)
        return 1;
    return rt_step_work(s, st) < RT_THREADS_MIN_WORK ? 1 : s->nthreads;
}

cnn_status rt_threads_init(cnn_session *s)
{
    rt_threads *t = &s->thr;
    t->variant = RT_RUN_PLANNED;
    t->adaptive = false;
    t->planned_threads = 1;
    for (int st = 0; st < s->plan->nsteps; st++)
        if (s->calls[st].nthreads > t->planned_threads)
            t->planned_threads = s->calls[st].nthreads;
    /* inference that may run in chunks of the batch (runtime/replicas.c): that is the way of
     * several threads, on all of them */
    t->split = t->planned_threads;
    bool chunks = rt_replicas_chunks_may(s);
    if (chunks)
        t->planned_threads = s->nthreads;
    if (t->planned_threads > 1)
        t->adaptive = true;
    /* the one-thread calls hold their own copies of oneDNN's reordered weights: not for
     * networks whose weights are large (their steps are large too, and split well) */
    if (!rt_weight_copies_fit(s->weights) || (chunks && rt_replicas_forced(s))) /* CNN_REPLICAS=on: chunks */
        t->adaptive = false;
    /* runs start on one thread (its runs bound the others', below); the planned counts are the
     * patient way (RT_PROBE_MAX_PATIENT) */
    rt_choice_init(t, t->adaptive ? RT_RUN_SINGLE : RT_RUN_PLANNED, RT_RUN_PLANNED);
    if (!t->adaptive)
        return CNN_OK;
    /* the share of the planned work before each step, for rt_threads_cut */
    int n = s->plan->nsteps;
    t->done = cnn_mem_calloc((size_t)n + 1, sizeof(double));
    if (!t->done)
        return rt_fail(s->err, CNN_ERR_NOMEM, "out of memory: the steps' shares of the work");
    double sum = 0;
    for (int st = 0; st < n; st++) {
        t->done[st] = sum;
        sum += rt_step_work(s, st);
    }
    t->done[n] = sum;
    for (int st = 0; st <= n; st++)
        t->done[st] = sum > 0 ? t->done[st] / sum : 1.0;
    return CNN_OK;
}

int rt_choice_pick(rt_threads *t, double now)
{
    if (t->next_probe < 0) /* the first try as soon as the way in use is timed */
        t->next_probe = now;
    if (now >= t->next_probe && t->est[t->variant] > 0) /* the way in use timed first */
        return 1 - t->variant;
    return t->variant;
}

/* A try of the other way lost (`cur`: the way in use's time): the next after a longer gap. */
static void try_lost(rt_threads *t, double cur)
{
    double most = t->variant == t->patient ? RT_PROBE_MAX_PATIENT : RT_PROBE_MAX;
    t->gap = fmin(4 * t->gap, fmax(most, 32 * cur));
}

void rt_choice_record(rt_threads *t, int used, double seconds, double now, bool cut)
{
    if (t->runs[used]++ == 0) { /* a way's first run warms it up (weight reorders, caches): not timed */
        if (used != t->variant) {
            t->next_probe = now; /* go on with the try at once */
            t->probe = 1;
            t->try_start = now - seconds;
        }
        return;
    }
    if (cut) { /* fell behind the other way's pace (rt_threads_cut): leave it at once */
        t->probe = 0;
        t->last_try = now;
        t->est[used] = fmax(t->est[used], seconds);
        if (used == t->variant) {
            t->variant = 1 - used;
            t->switches++;
            t->gap = RT_PROBE_MIN;
        } else {
            try_lost(t, t->est[t->variant]);
        }
        t->gap = fmax(t->gap, 8 * t->est[t->variant]);
        t->next_probe = now + t->gap;
        return;
    }
    if (used != t->variant) {
        /* a try is three runs: the first wakes threads that have slept since the way was last
         * used (in a virtual machine, a halted vCPU), the faster of the other two counts */
        t->next_probe = now;
        if (t->probe == 0) {
            t->probe = 1;
            t->try_start = now - seconds;
            return;
        }
        if (t->probe == 1 && now - t->try_start < RT_WAKE)
            return; /* still waking: short runs wake no faster than long ones */
        if (t->probe == 1) {
            t->probe = 2;
            t->probe_best = seconds;
            return;
        }
        t->probe = 0;
        t->last_try = now;
        double best = fmin(t->probe_best, seconds), cur = t->est[t->variant];
        t->est[used] = best;
        if (best < 0.9 * cur) {
            t->variant = used;
            t->switches++;
            t->gap = used == t->patient && RT_CLEAR_MARGIN * best < cur ? RT_PROBE_CLEAR : RT_PROBE_MIN;
        } else if (best < cur) {
            t->gap = RT_PROBE_MIN; /* close: try again soon */
        } else { /* lost: wait 4 times longer */
            try_lost(t, cur);
        }
        /* a try costs up to about two runs: at least 8 runs of the way in use between tries */
        t->gap = fmax(t->gap, 8 * t->est[t->variant]);
        t->next_probe = now + t->gap;
        return;
    }
    t->probe = 0;
    t->est[used] = t->est[used] > 0 ? 0.7 * t->est[used] + 0.3 * seconds : seconds;
    /* slower than the other way was: try it now (a busy neighbour has just started), if the
     * last try is 8 runs back */
    int other = 1 - used;
    if (t->est[other] > 0 && t->est[used] > 1.2 * t->est[other] && t->next_probe > now &&
        now - t->last_try >= 8 * t->est[used]) {
        t->next_probe = now;
        t->gap = RT_PROBE_MIN;
    }
}

void rt_choice_init(rt_threads *t, int first, int patient)
{
    t->variant = first;
    t->patient = patient;
    t->gap = RT_PROBE_MIN;
    t->next_probe = -1; /* set by the first run */
}

int rt_threads_pick(cnn_session *s, double now)
{
    if (!s->thr.adaptive || s->prof || s->dist)
        return RT_RUN_PLANNED;
    return rt_choice_pick(&s->thr, now);
}

void rt_threads_record(cnn_session *s, int used, double seconds, double now, bool cut)
{
    if (!s->thr.adaptive || s->prof || s->dist)
        return;
    rt_choice_record(&s->thr, used, seconds, now, cut);
}

bool rt_threads_cut(const cnn_session *s, int way, double start, rt_cut *cut)
{
    const rt_threads *t = &s->thr;
    double one = t->est[RT_RUN_SINGLE];
    if (way != RT_RUN_PLANNED || !t->adaptive || !t->single || !(one > 0) || s->prof || s->dist)
        return false;
    *cut = (rt_cut){.start = start};
    if (t->runs[RT_RUN_PLANNED] == 0) { /* its warm-up run: see RT_FIRST_RUN */
        cut->slack = fmax(RT_FIRST_RUN_FACTOR * one, RT_FIRST_RUN_MIN);
    } else {
        cut->slack = RT_WAKE + RT_CUT_BASE * one;
        cut->per = RT_CUT_PER * one;
        cut->done = t->done;
    }
    return true;
}
