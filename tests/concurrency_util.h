/* The scenarios of the concurrency suite, free of Criterion so that the same code also runs as
 * a plain program (tests/tsan_concurrency.c) under ThreadSanitizer, which Criterion's runner
 * cannot start under (Snaipe/Criterion#274).  Each returns 0, or -1 with a message in msg.
 * Public API only. */
#ifndef CNN_TESTS_CONCURRENCY_UTIL_H
#define CNN_TESTS_CONCURRENCY_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"

enum { CU_THREADS = 4, CU_BATCH = 3 };

static inline bool cu_quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

static inline int cu_fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Loads examples/<file> (from $CNN_EXAMPLES); NULL with msg. */
static inline cnn_model *cu_load_example(const char *file, char *msg, size_t len)
{
    const char *dir = getenv("CNN_EXAMPLES");
    if (!dir) {
        cu_fail(msg, len, "CNN_EXAMPLES is not set");
        return NULL;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cnn_model *m = NULL;
    if (cnn_model_load(&m, path, NULL) != CNN_OK) {
        cu_fail(msg, len, "%s", cnn_model_errmsg(m));
        cnn_model_destroy(m);
        return NULL;
    }
    return m;
}

static inline int64_t cu_numel(const cnn_model *m, bool output)
{
    int64_t d[4];
    int r = output ? cnn_model_output_shape(m, 0, d) : cnn_model_input_shape(m, 0, d);
    int64_t n = 1;
    for (int k = 0; k < r; k++)
        n *= d[k];
    return n;
}

/* Input k: a fixed pattern in [-1, 1] that differs per k. */
static inline void cu_fill_input(float *x, int64_t n, int k)
{
    uint32_t s = 12345u + 7919u * (uint32_t)k;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
}

/* One OpenMP thread per session: the sessions' threads are the concurrency under test, and
 * libgomp's own threads are invisible to ThreadSanitizer (libgomp is not instrumented). */
static inline void cu_options(cnn_options *o, cnn_backend b)
{
    cnn_options_default(o);
    o->backend = b;
    o->threads = 1;
}

typedef struct cu_worker {
    cnn_model *m;
    cnn_weights *w;
    cnn_backend backend;
    int k, runs;
    const float *ref; /* this worker's reference output */
    int64_t nin, nout;
    pthread_barrier_t *start;
    int mismatches, failures;
    char msg[512];
} cu_worker;

static inline void *cu_work(void *arg)
{
    cu_worker *wk = arg;
    cnn_options o;
    cu_options(&o, wk->backend);
    cnn_session *s = NULL;
    /* sessions are created concurrently too */
    cnn_status st = cnn_session_create(&s, wk->m, wk->w, &o, CU_BATCH, CNN_MODE_INFER, NULL);
    /* a failure of this thread's own: its message is this session's, whatever the others do */
    cnn_session *bad = NULL;
    if (cnn_session_create(&bad, wk->m, wk->w, &o, 0, CNN_MODE_INFER, NULL) != CNN_ERR_USAGE ||
        !strstr(cnn_session_errmsg(bad), "batch must be between 1 and")) {
        snprintf(wk->msg, sizeof wk->msg, "batch 0: %s", cnn_session_errmsg(bad));
        wk->failures++;
    }
    cnn_session_destroy(bad);
    pthread_barrier_wait(wk->start);
    if (st != CNN_OK) {
        snprintf(wk->msg, sizeof wk->msg, "create: %s", cnn_session_errmsg(s));
        wk->failures++;
        cnn_session_destroy(s);
        return NULL;
    }
    for (int r = 0; r < wk->runs; r++) {
        cu_fill_input(cnn_session_input(s, 0), wk->nin * CU_BATCH, wk->k);
        if (cnn_session_run(s) != CNN_OK) {
            snprintf(wk->msg, sizeof wk->msg, "run %d: %s", r, cnn_session_errmsg(s));
            wk->failures++;
            break;
        }
        if (memcmp(cnn_session_output(s, 0), wk->ref, sizeof(float) * (size_t)(wk->nout * CU_BATCH)) != 0)
            wk->mismatches++;
    }
    cnn_session_destroy(s);
    return NULL;
}

/* CU_THREADS threads, each its own inference session (batch 3, one OpenMP thread) on one shared
 * model and one shared weights object, `runs` runs each, every output bitwise equal to the one
 * a session computed alone beforehand for the same input (a different input per thread). */
static inline int cu_shared_inference(const char *file, cnn_backend backend, int runs, char *msg, size_t len)
{
    cnn_model *m = cu_load_example(file, msg, len);
    if (!m)
        return -1;
    int rc = 0;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    float *ref = NULL;
    if (cnn_weights_create(&w, m, 7) != CNN_OK) {
        rc = cu_fail(msg, len, "weights: %s", cnn_weights_errmsg(w));
        goto done;
    }
    int64_t nin = cu_numel(m, false), nout = cu_numel(m, true), per = nout * CU_BATCH;
    ref = calloc((size_t)(CU_THREADS * per), sizeof(float));
    cnn_options o;
    cu_options(&o, backend);
    if (!ref || cnn_session_create(&s, m, w, &o, CU_BATCH, CNN_MODE_INFER, NULL) != CNN_OK) {
        rc = cu_fail(msg, len, "reference session: %s", cnn_session_errmsg(s));
        goto done;
    }
    for (int k = 0; k < CU_THREADS; k++) {
        cu_fill_input(cnn_session_input(s, 0), nin * CU_BATCH, k);
        if (cnn_session_run(s) != CNN_OK) {
            rc = cu_fail(msg, len, "reference run: %s", cnn_session_errmsg(s));
            goto done;
        }
        memcpy(ref + k * per, cnn_session_output(s, 0), sizeof(float) * (size_t)per);
    }
    /* the references differ per input, so a session that computed another's would show */
    if (memcmp(ref, ref + per, sizeof(float) * (size_t)per) == 0) {
        rc = cu_fail(msg, len, "inputs 0 and 1 give the same output");
        goto done;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, CU_THREADS);
    cu_worker wk[CU_THREADS];
    pthread_t th[CU_THREADS];
    for (int k = 0; k < CU_THREADS; k++) {
        wk[k] = (cu_worker){.m = m, .w = w, .backend = backend, .k = k, .runs = runs,
                            .ref = ref + k * per, .nin = nin, .nout = nout, .start = &start};
        if (pthread_create(&th[k], NULL, cu_work, &wk[k]) != 0)
            abort(); /* the barrier would wait forever */
    }
    for (int k = 0; k < CU_THREADS; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&start);
    for (int k = 0; k < CU_THREADS && rc == 0; k++) {
        if (wk[k].failures)
            rc = cu_fail(msg, len, "%s thread %d: %s", file, k, wk[k].msg);
        else if (wk[k].mismatches)
            rc = cu_fail(msg, len, "%s thread %d: %d of %d runs differ from the reference", file, k,
                         wk[k].mismatches, runs);
    }
done:
    free(ref);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

typedef struct cu_mixed {
    cnn_model *m;
    cnn_weights *w;
    bool train;
    int calls, ok, refused, other;
    char msg[512];
} cu_mixed;

static inline void *cu_mixed_work(void *arg)
{
    cu_mixed *x = arg;
    cnn_options o;
    cu_options(&o, CNN_BACKEND_REF);
    cnn_session *s = NULL;
    if (cnn_session_create(&s, x->m, x->w, &o, CU_BATCH, x->train ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL) != CNN_OK) {
        snprintf(x->msg, sizeof x->msg, "%s", cnn_session_errmsg(s));
        x->other++;
        cnn_session_destroy(s);
        return NULL;
    }
    int64_t nin = cu_numel(x->m, false);
    float labels[CU_BATCH] = {0, 4, 9};
    for (int i = 0; i < x->calls; i++) {
        cu_fill_input(cnn_session_input(s, 0), nin * CU_BATCH, i);
        cnn_status st = x->train ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
        if (st == CNN_OK)
            x->ok++;
        else if (st == CNN_ERR_USAGE && strstr(cnn_session_errmsg(s), "see cnn_session_create"))
            x->refused++;
        else {
            snprintf(x->msg, sizeof x->msg, "%s", cnn_session_errmsg(s));
            x->other++;
        }
    }
    cnn_session_destroy(s);
    return NULL;
}

/* A training session and three inference sessions on one weights object (lenet5), all running
 * at once: every call either runs or is refused with the message; none fails otherwise. */
static inline int cu_training_beside_inference(int calls, char *msg, size_t len)
{
    cnn_model *m = cu_load_example("lenet5.cnn", msg, len);
    if (!m)
        return -1;
    cnn_weights *w = NULL;
    int rc = 0;
    if (cnn_weights_create(&w, m, 5) != CNN_OK) {
        rc = cu_fail(msg, len, "weights: %s", cnn_weights_errmsg(w));
    } else {
        cu_mixed x[CU_THREADS];
        pthread_t th[CU_THREADS];
        for (int k = 0; k < CU_THREADS; k++) {
            x[k] = (cu_mixed){.m = m, .w = w, .train = k == 0, .calls = calls};
            if (pthread_create(&th[k], NULL, cu_mixed_work, &x[k]) != 0)
                abort();
        }
        int ok = 0;
        for (int k = 0; k < CU_THREADS; k++)
            pthread_join(th[k], NULL);
        for (int k = 0; k < CU_THREADS && rc == 0; k++) {
            if (x[k].other || x[k].ok + x[k].refused != x[k].calls)
                rc = cu_fail(msg, len, "thread %d: %s", k, x[k].msg);
            ok += x[k].ok;
        }
        if (rc == 0 && ok == 0)
            rc = cu_fail(msg, len, "no call ran");
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

/* Every model keeps its own message: bad sources compiled on several threads at once. */
static inline void *cu_fail_work(void *arg)
{
    int *id = arg;
    char src[128], want[32];
    snprintf(src, sizeof src, "network n%d { input x[4]; output y = x -> nosuchop%d; }", *id, *id);
    snprintf(want, sizeof want, "nosuchop%d", *id);
    for (int i = 0; i < 20 && *id >= 0; i++) {
        cnn_model *m = NULL;
        if (cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL) == CNN_OK)
            *id = -1;
        else if (!strstr(cnn_model_errmsg(m), want))
            *id = -2;
        cnn_model_destroy(m);
    }
    return NULL;
}

static inline int cu_messages_per_handle(char *msg, size_t len)
{
    int ids[CU_THREADS];
    pthread_t th[CU_THREADS];
    for (int k = 0; k < CU_THREADS; k++) {
        ids[k] = k;
        if (pthread_create(&th[k], NULL, cu_fail_work, &ids[k]) != 0)
            abort();
    }
    int rc = 0;
    for (int k = 0; k < CU_THREADS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < CU_THREADS && rc == 0; k++)
        if (ids[k] != k)
            rc = cu_fail(msg, len, "thread %d: %s", k,
                         ids[k] == -1 ? "a bad source compiled" : "the model's message was another's");
    return rc;
}

#endif
