/* How sessions use their threads (runtime/threads.c): per-step counts decided at creation (one
 * thread for a step too small to split), a run on one thread when that way was faster.  The
 * counts decided, the results of both ways against a one-thread session (exact on the
 * reference kernels, within rounding on native and oneDNN), the choice between the ways from
 * given timings, and a run that cannot get memory for the one-thread calls.  Nothing is timed
 * here (speed: bench/bench_threads.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"
#include "runtime/rt.h"

typedef struct fixture {
    cnn_model *m;
    cnn_weights *w;
} fixture;

static void load(fixture *f, const char *net)
{
    const char *dir = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "examples", net);
    cr_assert_eq(cnn_model_load(&f->m, path, NULL), CNN_OK, "%s", cnn_model_errmsg(f->m));
    cr_assert_eq(cnn_weights_create(&f->w, f->m, 7), CNN_OK);
}

static void unload(fixture *f)
{
    cnn_weights_destroy(f->w);
    cnn_model_destroy(f->m);
}

static cnn_session *session(fixture *f, cnn_backend b, int threads, int64_t batch, cnn_mode mode)
{
    cnn_options o;
    cnn_options_default(&o);
    o.backend = b;
    o.threads = threads;
    cnn_session *s = NULL;
    /* the threads' ways alone: inference in chunks of the batch is test_replicas.c's */
    if (mode == CNN_MODE_INFER)
        setenv("CNN_REPLICAS", "off", 1);
    cnn_status st = cnn_session_create(&s, f->m, f->w, &o, batch, mode, NULL);
    unsetenv("CNN_REPLICAS");
    cr_assert_eq(st, CNN_OK, "%s", cnn_session_errmsg(s));
    return s;
}

static int64_t input_numel(const cnn_model *m, int64_t batch)
{
    int64_t d[4], n = batch;
    int r = cnn_model_input_shape(m, 0, d);
    for (int k = 0; k < r; k++) n *= d[k];
    return n;
}

static int64_t output_numel(const cnn_model *m, int64_t batch)
{
    int64_t d[4], n = batch;
    int r = cnn_model_output_shape(m, 0, d);
    for (int k = 0; k < r; k++) n *= d[k];
    return n;
}

static void fill(cnn_session *s, int64_t n, unsigned seed)
{
    float *x = cnn_session_input(s, 0);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(((uint64_t)(i + seed) * 2654435761u) % 1000) / 500.0f - 1.0f;
}

/* Pins the session's runs to one way (no tries of the other). */
static void force(cnn_session *s, int way)
{
    s->thr.variant = way;
    s->thr.next_probe = 1e300;
}

Test(threads, batch_1_lenet_on_2_threads_runs_every_step_on_one)
{
    fixture f;
    load(&f, "lenet5.cnn");
    cnn_session *s = session(&f, CNN_BACKEND_AUTO, 2, 1, CNN_MODE_INFER);
    cr_expect_eq(s->nthreads, 2);
    for (int st = 0; st < s->plan->nsteps; st++) {
        cr_expect_eq(s->calls[st].nthreads, 1, "step %d (%s): %d threads for %.0f of work", st,
                     s->calls[st].node->name, s->calls[st].nthreads, rt_step_work(s, st));
        cr_expect_eq(s->calls[st].nthreads, rt_step_threads(s, st));
    }
    cr_expect(!s->thr.adaptive, "nothing to choose between when every step has one thread");
    cr_expect_eq(rt_threads_pick(s, 1e9), RT_RUN_PLANNED);
    cnn_session_destroy(s);
    unload(&f);
}

Test(threads, large_steps_keep_the_sessions_threads_and_small_ones_get_one)
{
    fixture f;
    load(&f, "lenet5.cnn");
    cnn_session *s = session(&f, CNN_BACKEND_AUTO, 2, 64, CNN_MODE_INFER);
    int many = 0, one = 0;
    for (int st = 0; st < s->plan->nsteps; st++) {
        int want = rt_step_work(s, st) < 2.0e6 ? 1 : 2;
        cr_expect_eq(s->calls[st].nthreads, want, "step %d (%s)", st, s->calls[st].node->name);
        many += want == 2;
        one += want == 1;
        if (strcmp(s->calls[st].node->name, "conv2d_1") == 0) /* 6x5x5 on 28x28, 64 images: 15 MFLOP */
            cr_expect_eq(s->calls[st].nthreads, 2);
    }
    cr_expect_gt(many, 0);
    cr_expect_gt(one, 0, "the last dense layer (84 -> 10) is small even at batch 64");
    cr_expect(s->thr.adaptive);
    cnn_session_destroy(s);
    /* one thread asked: every step has one, and nothing is chosen at run time */
    s = session(&f, CNN_BACKEND_AUTO, 1, 64, CNN_MODE_INFER);
    for (int st = 0; st < s->plan->nsteps; st++)
        cr_expect_eq(s->calls[st].nthreads, 1);
    cr_expect(!s->thr.adaptive);
    cnn_session_destroy(s);
    unload(&f);
}

/* Inference of both ways on 2 threads against a session of 1 thread. */
static void same_inference(const char *net, cnn_backend b, int64_t batch, bool exact)
{
    fixture f;
    load(&f, net);
    int64_t nin = input_numel(f.m, batch), nout = output_numel(f.m, batch);
    cnn_session *one = session(&f, b, 1, batch, CNN_MODE_INFER);
    cnn_session *two = session(&f, b, 2, batch, CNN_MODE_INFER);
    fill(one, nin, 3);
    fill(two, nin, 3);
    cr_assert_eq(cnn_session_run(one), CNN_OK, "%s", cnn_session_errmsg(one));
    const float *ref = cnn_session_output(one, 0);
    for (int way = 0; way < 2; way++) {
        force(two, way);
        for (int r = 0; r < 2; r++) { /* a way's first run prepares it */
            int caller = omp_get_max_threads();
            cr_assert_eq(cnn_session_run(two), CNN_OK, "%s", cnn_session_errmsg(two));
            cr_expect_eq(omp_get_max_threads(), caller, "the caller's OpenMP count is restored");
        }
        if (way == RT_RUN_SINGLE && two->thr.adaptive)
            cr_expect_not_null(two->thr.single, "the one-thread calls were prepared");
        const float *y = cnn_session_output(two, 0);
        for (int64_t i = 0; i < nout; i++) {
            if (exact)
                cr_assert_eq(y[i], ref[i], "%s way %d: output %lld: %.9g vs %.9g", net, way, (long long)i, (double)y[i],
                             (double)ref[i]);
            else
                cr_assert(fabsf(y[i] - ref[i]) <= 1e-4f + 1e-4f * fabsf(ref[i]), "%s way %d: output %lld: %.9g vs %.9g",
                          net, way, (long long)i, (double)y[i], (double)ref[i]);
        }
    }
    cnn_session_destroy(one);
    cnn_session_destroy(two);
    unload(&f);
}

Test(threads, inference_on_both_ways_equals_one_thread_ref_exactly)
{
    same_inference("lenet5.cnn", CNN_BACKEND_REF, 16, true);
    same_inference("lenet5.cnn", CNN_BACKEND_REF, 1, true);
}

Test(threads, inference_on_both_ways_matches_one_thread_native_and_onednn)
{
    same_inference("lenet5.cnn", CNN_BACKEND_NATIVE, 64, false);
    same_inference("lenet5.cnn", CNN_BACKEND_ONEDNN, 64, false);
    same_inference("lenet5.cnn", CNN_BACKEND_AUTO, 1, false);
    same_inference("resnet20.cnn", CNN_BACKEND_AUTO, 4, false);
}

/* Training steps of 1 thread, 2 threads on the planned counts and 2 threads on one thread per
 * step, from the same weights: the losses and the weights after 3 steps. */
static void same_training(cnn_backend b, int64_t batch, bool exact)
{
    enum { WAYS = 3, STEPS = 3 };
    float loss[WAYS][STEPS];
    float *weights[WAYS];
    int64_t nin = 0, total = 0;
    for (int k = 0; k < WAYS; k++) {
        fixture f;
        load(&f, "lenet5.cnn");
        nin = input_numel(f.m, batch);
        cnn_session *s = session(&f, b, k == 0 ? 1 : 2, batch, CNN_MODE_TRAIN);
        if (k > 0)
            force(s, k == 1 ? RT_RUN_PLANNED : RT_RUN_SINGLE);
        float *labels = calloc((size_t)batch, sizeof(float));
        for (int64_t i = 0; i < batch; i++) labels[i] = (float)(i % 10);
        for (int t = 0; t < STEPS; t++) {
            fill(s, nin, (unsigned)t);
            cr_assert_eq(cnn_session_train_step(s, labels, true, &loss[k][t], NULL), CNN_OK, "%s",
                         cnn_session_errmsg(s));
        }
        /* every tensor's values, in order */
        total = 0;
        for (int i = 0; i < cnn_weights_count(f.w); i++) total += op_shape_numel(&f.w->t[i].shape);
        weights[k] = malloc(sizeof(float) * (size_t)total + 1);
        int64_t at = 0;
        for (int i = 0; i < cnn_weights_count(f.w); i++) {
            int64_t n = op_shape_numel(&f.w->t[i].shape);
            memcpy(weights[k] + at, f.w->t[i].data, sizeof(float) * (size_t)n);
            at += n;
        }
        free(labels);
        cnn_session_destroy(s);
        unload(&f);
    }
    for (int k = 1; k < WAYS; k++) {
        for (int t = 0; t < STEPS; t++) {
            if (exact)
                cr_expect_eq(loss[k][t], loss[0][t], "way %d step %d: loss %.9g vs %.9g", k, t, (double)loss[k][t],
                             (double)loss[0][t]);
            else
                cr_expect(fabsf(loss[k][t] - loss[0][t]) <= 1e-4f * (1 + fabsf(loss[0][t])),
                          "way %d step %d: %.9g vs %.9g", k, t, (double)loss[k][t], (double)loss[0][t]);
        }
    }
    (void)nin;
    for (int k = 1; k < WAYS; k++)
        for (int64_t i = 0; i < total; i++) {
            float a = weights[k][i], r = weights[0][i];
            if (exact)
                cr_assert_eq(a, r, "way %d: weight value %lld: %.9g vs %.9g", k, (long long)i, (double)a, (double)r);
            else
                cr_assert(fabsf(a - r) <= 1e-5f + 1e-4f * fabsf(r), "way %d: weight value %lld: %.9g vs %.9g", k,
                          (long long)i, (double)a, (double)r);
        }
    for (int k = 0; k < WAYS; k++) free(weights[k]);
}

Test(threads, training_steps_on_both_ways_equal_one_thread)
{
    same_training(CNN_BACKEND_REF, 32, true);
    same_training(CNN_BACKEND_NATIVE, 32, false);
    same_training(CNN_BACKEND_AUTO, 32, false);
}

/* The choice between the ways from given run times (no clock: `now` is given). */
Test(threads, runs_take_the_faster_way_and_try_the_other_now_and_then)
{
    fixture f;
    load(&f, "lenet5.cnn");
    cnn_session *s = session(&f, CNN_BACKEND_REF, 2, 64, CNN_MODE_INFER);
    cr_assert(s->thr.adaptive);
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE, "runs start on one thread");
    cr_expect_null(s->thr.single);
    fill(s, input_numel(s->model, 64), 1);
    cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_assert_not_null(s->thr.single, "the first run prepared the one-thread calls");
    /* from here on, given times */
    s->thr.runs[0] = s->thr.runs[1] = 0;
    s->thr.est[0] = s->thr.est[1] = 0;
    s->thr.next_probe = -1;
    s->thr.gap = 0.05;
    double now = 100.0;
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_SINGLE);
    rt_threads_record(s, RT_RUN_SINGLE, 0.010, now, false); /* a way's first run: not timed */
    cr_expect_eq(s->thr.est[RT_RUN_SINGLE], 0.0);
    now += 0.002;
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_SINGLE, "no try before the way in use is timed");
    rt_threads_record(s, RT_RUN_SINGLE, 0.002, now, false);
    cr_expect_float_eq(s->thr.est[RT_RUN_SINGLE], 0.002, 1e-12);
    rt_cut cut;
    cr_expect_not(rt_threads_cut(s, RT_RUN_SINGLE, 10.0, &cut));
    cr_assert(rt_threads_cut(s, RT_RUN_PLANNED, 10.0, &cut));
    cr_expect_float_eq(cut.start + cut.slack + cut.per, 10.02, 1e-9,
                       "the planned way's first run (its warm-up) gets 10 times the one-thread time, and 20 ms");
    cr_expect_null(cut.done, "whatever its share of the work");
    /* then the planned way is tried: its first run warms it up, the next two are timed, and
     * the faster of them wins */
    now += 0.002;
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED, "tried once the way in use is timed");
    rt_threads_record(s, RT_RUN_PLANNED, 0.010, now, false);
    cr_assert(rt_threads_cut(s, RT_RUN_PLANNED, 10.0, &cut));
    cr_assert_not_null(cut.done);
    int n = s->plan->nsteps;
    cr_expect_float_eq(cut.done[0], 0.0, 1e-12);
    cr_expect_float_eq(cut.done[n], 1.0, 1e-12);
    for (int st = 0; st < n; st++)
        cr_expect(cut.done[st] <= cut.done[st + 1], "the shares of the work grow (step %d)", st);
    cr_expect_float_eq(cut.start + cut.slack, 10.0035, 1e-9,
                       "before the first step: 3 ms and a quarter of the one-thread time");
    cr_expect_float_eq(cut.start + cut.slack + cut.per * cut.done[n], 10.0056, 1e-9,
                       "at the end: 3 ms and 1.3 times the one-thread time");
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED, "the try goes on after its warm-up");
    rt_threads_record(s, RT_RUN_PLANNED, 0.003, now, false);
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE, "not decided on one timed run");
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
    rt_threads_record(s, RT_RUN_PLANNED, 0.001, now, false);
    cr_expect_eq(s->thr.variant, RT_RUN_PLANNED, "two threads were faster");
    cr_expect_float_eq(s->thr.est[RT_RUN_PLANNED], 0.001, 1e-12, "the faster timed run of the try");
    cr_expect_eq(s->thr.switches, 1);
    cr_expect_float_eq(s->thr.next_probe, now + 1.0, 1e-9,
                       "a clear win of the planned counts (2 times): one thread is tried again 1 s later");
    for (int r = 0; r < 5; r++) {
        now += 0.001;
        cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
        rt_threads_record(s, RT_RUN_PLANNED, 0.001, now, false);
    }
    /* a busy neighbour: the planned runs become 20 times slower; one thread is tried at once
     * (three runs: a wake-up, then two timed) */
    now += 0.1;
    rt_threads_record(s, RT_RUN_PLANNED, 0.020, now, false);
    for (int r = 0; r < 3; r++) { /* the first run, and any until 3 ms have passed, is untimed */
        cr_expect_eq(rt_threads_pick(s, now), RT_RUN_SINGLE, "slower than one thread was: tried at once (run %d)",
                     r);
        now += r == 0 ? 0.004 : 0.0021;
        rt_threads_record(s, RT_RUN_SINGLE, r == 0 ? 0.004 : 0.0021, now, false);
    }
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE, "switched to one thread");
    cr_expect_eq(s->thr.switches, 2);
    /* a try of two threads that loses: the next waits 4 times longer */
    now += 0.06;
    for (int r = 0; r < 3; r++) {
        cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
        now += 0.030;
        rt_threads_record(s, RT_RUN_PLANNED, 0.030, now, false);
    }
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE);
    cr_expect_float_eq(s->thr.next_probe, now + 0.2, 1e-9);
    cr_expect_eq(rt_threads_pick(s, now + 0.15), RT_RUN_SINGLE);
    /* the neighbour stops: the next try wins */
    now += 0.25;
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
        now += r == 0 ? 0.004 : 0.001;
        rt_threads_record(s, RT_RUN_PLANNED, r == 0 ? 0.004 : 0.001, now, false); /* the wake-up run is slow */
    }
    cr_expect_eq(s->thr.variant, RT_RUN_PLANNED, "back on two threads");
    cr_expect_eq(s->thr.switches, 3);
    /* while the planned counts win, tries of one thread wait 4 times longer each, up to 30 s */
    double gaps[] = {4.0, 16.0, 30.0, 30.0};
    for (int k = 0; k < 4; k++) {
        now = s->thr.next_probe;
        cr_expect_eq(rt_threads_pick(s, now - 0.01), RT_RUN_PLANNED, "no try before its time (%d)", k);
        for (int r = 0; r < 3; r++) {
            cr_assert_eq(rt_threads_pick(s, now), RT_RUN_SINGLE);
            now += 0.004;
            rt_threads_record(s, RT_RUN_SINGLE, 0.004, now, false);
        }
        cr_expect_eq(s->thr.variant, RT_RUN_PLANNED);
        cr_expect_float_eq(s->thr.next_probe, now + gaps[k], 1e-9, "gap %d", k);
    }
    /* short runs: a try stays untimed until 3 ms have passed (at 0.1 ms a run, about 30) */
    s->thr.est[RT_RUN_PLANNED] = 0.0003;
    s->thr.est[RT_RUN_SINGLE] = 0.0001;
    s->thr.next_probe = now;
    int untimed = 0;
    while (rt_threads_pick(s, now) == RT_RUN_SINGLE && s->thr.probe < 2 && untimed < 100) {
        now += 0.0001;
        rt_threads_record(s, RT_RUN_SINGLE, 0.0001, now, false);
        untimed++;
    }
    cr_expect(untimed >= 29 && untimed <= 31, "%d untimed runs of 0.1 ms", untimed);
    cr_expect_eq(s->thr.probe, 2, "then the timed runs");
    /* a run of the planned counts cut (it fell behind one thread's pace): one thread at once,
     * and a try of the planned counts that is cut is lost at once */
    s->thr.variant = RT_RUN_PLANNED;
    s->thr.est[RT_RUN_PLANNED] = 0.001;
    s->thr.est[RT_RUN_SINGLE] = 0.002;
    s->thr.probe = 0;
    int switches = s->thr.switches;
    now += 1.0;
    s->thr.next_probe = now + 10;
    rt_threads_record(s, RT_RUN_PLANNED, 0.0025, now, true);
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE, "a cut run: one thread at once");
    cr_expect_eq(s->thr.switches, switches + 1);
    cr_expect_float_eq(s->thr.est[RT_RUN_PLANNED], 0.0025, 1e-12);
    cr_expect_float_eq(s->thr.next_probe, now + 0.05, 1e-9, "the planned counts tried again from 50 ms");
    now = s->thr.next_probe;
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
    rt_threads_record(s, RT_RUN_PLANNED, 0.004, now, false); /* the try's wake-up run */
    now += 0.004;
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
    rt_threads_record(s, RT_RUN_PLANNED, 0.003, now, true);
    cr_expect_eq(s->thr.variant, RT_RUN_SINGLE, "the try was cut: lost");
    cr_expect_eq(s->thr.probe, 0);
    cr_expect_float_eq(s->thr.next_probe, now + 0.2, 1e-9, "the next try 4 times later");
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_SINGLE);
    /* profiling pins the planned way */
    cr_assert_eq(cnn_session_profile_start(s, 4), CNN_OK);
    force(s, RT_RUN_SINGLE);
    cr_expect_eq(rt_threads_pick(s, now), RT_RUN_PLANNED);
    cr_expect_not(rt_threads_cut(s, RT_RUN_PLANNED, now, &cut));
    cnn_session_destroy(s);
    unload(&f);
}

/* ---- out of memory while preparing the one-thread calls: the run goes on on the planned counts */

typedef struct fail_switch {
    long calls, fail_at, failed, live; /* fail_at: the call to fail, from 1 after arming; 0 none */
} fail_switch;

static bool fs_fails(fail_switch *f)
{
    if (f->fail_at <= 0)
        return false;
    if (++f->calls != f->fail_at)
        return false;
    f->failed++;
    return true;
}

static void *fs_malloc(size_t n, void *ud)
{
    fail_switch *f = ud;
    if (fs_fails(f))
        return NULL;
    void *p = malloc(n);
    if (p)
        f->live++;
    return p;
}

static void *fs_realloc(void *p, size_t n, void *ud)
{
    fail_switch *f = ud;
    if (fs_fails(f))
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        f->live++;
    return q;
}

static void fs_free(void *p, void *ud)
{
    fail_switch *f = ud;
    if (p)
        f->live--;
    free(p);
}

/* Fails the k-th allocation of an adaptive session's first run, for every k: a failure while
 * its one-thread calls are prepared leaves the run on the planned counts, with the right
 * outputs; a later one fails the run with CNN_ERR_NOMEM; nothing leaks. */
Test(threads, no_memory_for_the_one_thread_calls_keeps_the_planned_counts)
{
    static fail_switch fs;
    cnn_allocator a = {fs_malloc, fs_realloc, fs_free, &fs};
    cnn_set_allocator(&a);
    fixture f;
    load(&f, "lenet5.cnn");
    int64_t nin = input_numel(f.m, 64), nout = output_numel(f.m, 64);
    cnn_session *one = session(&f, CNN_BACKEND_REF, 1, 64, CNN_MODE_INFER);
    fill(one, nin, 5);
    cr_assert_eq(cnn_session_run(one), CNN_OK, "%s", cnn_session_errmsg(one));
    const float *ref = cnn_session_output(one, 0);
    int kept = 0;
    for (long k = 1; k < 400; k++) {
        cnn_session *two = session(&f, CNN_BACKEND_REF, 2, 64, CNN_MODE_INFER);
        cr_assert(two->thr.adaptive);
        fill(two, nin, 5);
        fs.calls = fs.failed = 0;
        fs.fail_at = k;
        cnn_status st = cnn_session_run(two);
        fs.fail_at = 0;
        if (fs.failed == 0) { /* past the run's allocations */
            cr_expect_eq(st, CNN_OK);
            cr_expect_not_null(two->thr.single);
            cnn_session_destroy(two);
            break;
        }
        cr_assert(st == CNN_OK || st == CNN_ERR_NOMEM, "allocation %ld: status %d (%s)", k, (int)st,
                  cnn_session_errmsg(two));
        if (st == CNN_OK) { /* the failure was the one-thread calls' */
            kept++;
            cr_expect_null(two->thr.single, "allocation %ld", k);
            cr_expect(!two->thr.adaptive, "allocation %ld: the planned counts only from then on", k);
            cr_expect_eq(rt_threads_pick(two, 1e9), RT_RUN_PLANNED);
            const float *y = cnn_session_output(two, 0);
            for (int64_t i = 0; i < nout; i++)
                cr_assert_eq(y[i], ref[i], "allocation %ld: output %lld", k, (long long)i);
        }
        cnn_session_destroy(two);
    }
    cr_expect_gt(kept, 0, "some allocation was the one-thread calls'");
    cnn_session_destroy(one);
    unload(&f);
    cr_expect_eq(fs.live, 0, "%ld blocks not freed", fs.live);
    cnn_set_allocator(NULL);
}

/* ---- denormals (runtime/fpenv.c): flushed to zero during runs unless keep_denormals, on
 * every thread that computes; each thread's own control bits are back after the run */

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>

static const char tiny_net[] = "network tiny {\n    input x[256];\n    output y = x -> dense(256);\n}\n";

/* y = x W with every x 1e-20 and every weight 1e-21: each product (1e-41) and their sum
 * (2.56e-39) are below FLT_MIN, also where the sum is made in double (the reference) */
static void denormal_run(cnn_backend b, int threads, bool keep, int way)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "tiny.cnn", tiny_net, sizeof tiny_net - 1, NULL), CNN_OK, "%s",
                 cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    for (int i = 0; i < cnn_weights_count(w); i++) {
        const char *name;
        int rank;
        int64_t dims[8], n = 1;
        float *p = cnn_weights_tensor(w, i, &name, &rank, dims);
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        for (int64_t j = 0; j < n; j++)
            p[j] = strstr(name, "bias") ? 0.0f : 1e-21f;
    }
    cnn_options o;
    cnn_options_default(&o);
    o.backend = b;
    o.threads = threads;
    o.keep_denormals = keep;
    const int64_t batch = 256;
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    const char *rep = getenv("CNN_REPLICAS");
    bool chunks = b != CNN_BACKEND_REF && threads > 1 && way == RT_RUN_PLANNED && rep && strcmp(rep, "on") == 0;
    float *x = cnn_session_input(s, 0);
    for (int64_t i = 0; i < batch * 256; i++)
        x[i] = 1e-20f;
    force(s, way);
    unsigned before[2] = {0, 0}, after[2] = {0, 0};
#pragma omp parallel num_threads(2)
    before[omp_get_thread_num()] = _mm_getcsr();
    for (int r = 0; r < 2; r++) /* the first run prepares the one-thread calls */
        cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    if (chunks) /* the bits set inside the replicas' region, not by regions of their own */
        cr_expect(rt_replicas_steps(s) >= 2, "the runs took chunks of the batch");
#pragma omp parallel num_threads(2)
    after[omp_get_thread_num()] = _mm_getcsr();
    for (int t = 0; t < 2; t++) /* (not the exception flags, bits 0-5: a run may raise them) */
        cr_expect_eq(after[t] & ~0x3fu, before[t] & ~0x3fu,
                     "thread %d's control bits are back after the run: %#x, were %#x", t, after[t], before[t]);
    const float *y = cnn_session_output(s, 0);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < batch * 256; i++)
        nonzero += y[i] != 0.0f;
    if (keep)
        cr_expect_gt(nonzero, 0, "backend %d, %d threads, way %d: denormals kept, yet every output is 0", (int)b,
                     threads, way);
    else
        cr_expect_eq(nonzero, 0, "backend %d, %d threads, way %d: %lld of %lld outputs are not 0 (y[0] %g)",
                     (int)b, threads, way, (long long)nonzero, (long long)(batch * 256), (double)y[0]);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(threads, denormals_are_flushed_on_every_thread_and_the_bits_put_back)
{
    cnn_backend bs[] = {CNN_BACKEND_REF, CNN_BACKEND_NATIVE, CNN_BACKEND_AUTO};
    for (size_t k = 0; k < sizeof bs / sizeof bs[0]; k++) {
        denormal_run(bs[k], 1, false, RT_RUN_PLANNED);
        denormal_run(bs[k], 2, false, RT_RUN_PLANNED);
        denormal_run(bs[k], 2, false, RT_RUN_SINGLE);
        denormal_run(bs[k], 2, true, RT_RUN_PLANNED);
        for (int on = 0; on < 2; on++) { /* inference in chunks of the batch, or not */
            setenv("CNN_REPLICAS", on ? "on" : "off", 1);
            denormal_run(bs[k], 2, false, RT_RUN_PLANNED);
            denormal_run(bs[k], 2, true, RT_RUN_PLANNED);
            unsetenv("CNN_REPLICAS");
        }
    }
}
#endif
