/* Out of memory: an allocator hook (cnn_set_allocator) that fails the k-th allocation, for
 * every k in a compile-and-run of examples/lenet5.cnn (weights, a reference and an auto
 * session, one run of each).  Every failure must come back as CNN_ERR_NOMEM, with a message
 * where an object exists, free everything it made (counted here; the sanitizer build checks
 * leaks too), and leave the library working once the allocator is restored.  CNN_TEST_QUICK
 * samples every 7th k. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cnn.h"

/* ---- the counting allocator */

typedef struct counter {
    atomic_long calls;   /* malloc and realloc calls */
    atomic_long live;    /* blocks allocated and not freed */
    long fail_at;        /* the call to fail, from 1; 0: none */
    bool fail_after;     /* fail every call from fail_at on, not only that one */
    atomic_long failed;
} counter;

static bool should_fail(counter *c)
{
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    bool f = c->fail_at > 0 && (c->fail_after ? n >= c->fail_at : n == c->fail_at);
    if (f)
        atomic_fetch_add(&c->failed, 1);
    return f;
}

static void *t_malloc(size_t n, void *ud)
{
    counter *c = ud;
    if (should_fail(c))
        return NULL;
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&c->live, 1);
    return p;
}

static void *t_realloc(void *p, size_t n, void *ud)
{
    counter *c = ud;
    if (should_fail(c))
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        atomic_fetch_add(&c->live, 1);
    return q;
}

static void t_free(void *p, void *ud)
{
    counter *c = ud;
    if (p)
        atomic_fetch_sub(&c->live, 1);
    free(p);
}

static void install(counter *c, long fail_at, bool after)
{
    atomic_store(&c->calls, 0);
    atomic_store(&c->live, 0);
    atomic_store(&c->failed, 0);
    c->fail_at = fail_at;
    c->fail_after = after;
    cnn_allocator a = {t_malloc, t_realloc, t_free, c};
    cnn_set_allocator(&a);
}

/* ---- the chain: compile, weights, two sessions, a run of each */

static char *source;
static size_t source_len;

static void load_source(void)
{
    const char *dir = getenv("CNN_EXAMPLES");
    cr_assert(dir, "CNN_EXAMPLES is not set");
    char path[4096];
    snprintf(path, sizeof path, "%s/lenet5.cnn", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    source = malloc((size_t)n + 1);
    cr_assert(source);
    cr_assert_eq(fread(source, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    source_len = (size_t)n;
}

static void unload_source(void)
{
    free(source);
    source = NULL;
}

/* A failed call's message: there, and not empty, where the object exists. */
static void check_msg(const char *what, const char *msg, cnn_status st)
{
    cr_assert(msg != NULL, "%s failed (%d) without a message", what, st);
    cr_assert(msg[0] != '\0', "%s failed (%d) with an empty message", what, st);
}

static cnn_status run_session(cnn_model *m, cnn_weights *w, cnn_backend backend, const char **step)
{
    cnn_options o;
    cnn_options_default(&o);
    o.backend = backend;
    o.threads = 2;
    cnn_session *s = NULL;
    *step = backend == CNN_BACKEND_REF ? "session_create(ref)" : "session_create(auto)";
    cnn_status st = cnn_session_create(&s, m, w, &o, 2, CNN_MODE_INFER, NULL);
    if (st != CNN_OK) {
        if (s)
            check_msg(*step, cnn_session_errmsg(s), st);
        cnn_session_destroy(s);
        return st;
    }
    float *x = cnn_session_input(s, 0);
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    int64_t n = 2;
    for (int k = 0; k < rank; k++)
        n *= dims[k];
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(i % 17) / 17.0f;
    *step = backend == CNN_BACKEND_REF ? "session_run(ref)" : "session_run(auto)";
    st = cnn_session_run(s);
    if (st != CNN_OK)
        check_msg(*step, cnn_session_errmsg(s), st);
    cnn_session_destroy(s);
    return st;
}

static cnn_status chain(const char **step)
{
    cnn_model *m = NULL;
    *step = "model_compile";
    cnn_status st = cnn_model_compile(&m, "lenet5.cnn", source, source_len, NULL);
    if (st != CNN_OK) {
        if (m)
            check_msg(*step, cnn_model_errmsg(m), st);
        cnn_model_destroy(m);
        return st;
    }
    cnn_weights *w = NULL;
    *step = "weights_create";
    st = cnn_weights_create(&w, m, 42);
    if (st != CNN_OK) {
        if (w)
            check_msg(*step, cnn_weights_errmsg(w), st);
    } else {
        st = run_session(m, w, CNN_BACKEND_REF, step);
        if (st == CNN_OK)
            st = run_session(m, w, CNN_BACKEND_AUTO, step);
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return st;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Fails the k-th allocation (and, when `after`, every one after it) for each k. */
static void sweep(bool after)
{
    load_source();
    counter c;
    const char *step;
    install(&c, 0, false);
    cr_assert_eq(chain(&step), CNN_OK, "the chain fails without a failing allocation, at %s", step);
    long total = atomic_load(&c.calls);
    cr_assert_eq(atomic_load(&c.live), 0, "the chain leaks %ld blocks", atomic_load(&c.live));
    cr_assert_gt(total, 0, "no allocation went through the hook");
    long stride = getenv("CNN_TEST_QUICK") ? 7 : 1;
    double t0 = seconds();
    long runs = 0, nomem = 0;
    for (long k = 1; k <= total; k += stride) {
        install(&c, k, after);
        cnn_status st = chain(&step);
        long failed = atomic_load(&c.failed);
        long live = atomic_load(&c.live);
        cnn_set_allocator(NULL);
        runs++;
        if (failed > 0) {
            /* with one failure only, a caller may recover (a message that could not be
             * rendered while the object still works); never another error */
            cr_assert(st == CNN_ERR_NOMEM || (!after && st == CNN_OK),
                      "k=%ld (%s): %s returned %d, not CNN_ERR_NOMEM", k, after ? "and after" : "only", step,
                      st);
            nomem += st == CNN_ERR_NOMEM;
        } else {
            cr_assert_eq(st, CNN_OK, "k=%ld: %s returned %d with no failed allocation", k, step, st);
        }
        cr_assert_eq(live, 0, "k=%ld (%s): %ld blocks leaked after %s failed", k, after ? "and after" : "only",
                     live, step);
        /* the library still works with the C library's allocator */
        if (k % 64 == 1 || k + stride > total)
            cr_assert_eq(chain(&step), CNN_OK, "k=%ld: after restoring the allocator, %s failed", k, step);
    }
    double dt = seconds() - t0;
    cr_log_info("nomem sweep (%s): N=%ld allocations, %ld runs (%ld returned NOMEM) in %.2f s",
                after ? "k-th and after" : "k-th only", total, runs, nomem, dt);
    fprintf(stderr, "nomem sweep (%s): N=%ld allocations, %ld runs (%ld returned NOMEM) in %.2f s\n",
            after ? "k-th and after" : "k-th only", total, runs, nomem, dt);
    unload_source();
}

Test(nomem, fail_kth_and_after, .timeout = 590) { sweep(true); }

Test(nomem, fail_kth_only, .timeout = 590) { sweep(false); }

/* The status and its cnnc exit code are distinct from the others. */
Test(nomem, status_value)
{
    cr_assert_eq(CNN_ERR_NOMEM, 5);
    cr_assert_neq(CNN_ERR_NOMEM, CNN_ERR_INTERNAL);
}
