/* The batch loader (cnn.h): batches made by rt_batch_make (data_batch.c), on a background
 * thread into two slots while the caller trains on the batch before, or on the caller's thread
 * (synchronous mode).  Both modes make every batch with the same function from the same
 * inputs, so their batches are the same bit for bit, whoever made them.
 *
 * The worker makes batch k into slot k % 2 once the caller has taken batch k - 2 out of it; it
 * works outside the lock, on the epoch's order copied by cnn_loader_start, which waits for the
 * batch in progress before it changes anything the worker reads.  No OpenMP in here: the
 * worker is one thread beside the training step's team, scheduled SCHED_IDLE: it takes only
 * CPU time nothing else wants, so the step's threads are never preempted for it (on two
 * cores, an OpenMP team that loses one thread to another for a moment waits for it at every
 * barrier).  The caller never waits for it either: a batch that is not ready when asked for
 * is made on the caller's thread, and the worker drops its copy and goes on with the next. */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ops/checked.h"
#include "ops/mem.h"
#include "runtime/data.h"

typedef struct loader_slot {
    float *x, *labels;
    int64_t index;              /* the batch it holds when ready */
    int64_t n;                  /* its examples */
    bool ready;
} loader_slot;

struct cnn_loader {
    rt_batch_maker maker;
    int64_t batch, per;         /* examples per batch, floats per example */
    bool background, drop_last, wait;
    /* the epoch (written by cnn_loader_start only while the worker is idle) */
    int64_t *order;
    int64_t order_cap, count, epoch, nbatches;
    bool identity;              /* no order: examples 0 .. count - 1 */
    int64_t next;               /* the batch cnn_loader_next hands out next */
    uint8_t *scratch;           /* the caller's (synchronous mode) */
    /* the background thread */
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit, busy;
    uint64_t generation;        /* bumped by cnn_loader_start: older work is dropped */
    int64_t produce;            /* the batch the worker makes next */
    int64_t made_here;          /* batches the caller made because the worker had not */
    loader_slot slot[2];
    uint8_t *worker_scratch;
};

void cnn_loader_options_default(cnn_loader_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->background = true;
}

static int64_t batch_size(const cnn_loader *l, int64_t k)
{
    int64_t first = k * l->batch;
    return l->count - first < l->batch ? l->count - first : l->batch;
}

static void *worker(void *arg)
{
    cnn_loader *l = arg;
#ifdef SCHED_IDLE
    /* only the CPU time nothing else wants: the training step's threads are never preempted
     * for a batch (which the caller makes itself when the worker got no time for it) */
    if (!l->wait) {
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
#endif
    pthread_mutex_lock(&l->mu);
    while (!l->quit) {
        int64_t k = l->produce;
        loader_slot *s = &l->slot[k % 2];
        if (k >= l->nbatches || s->ready) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        uint64_t gen = l->generation;
        l->busy = true;
        pthread_mutex_unlock(&l->mu);
        int64_t n = batch_size(l, k);
        rt_batch_make(&l->maker, l->identity ? NULL : l->order, k * l->batch, n, l->epoch, s->x, s->labels,
                      l->worker_scratch);
        pthread_mutex_lock(&l->mu);
        l->busy = false;
        if (gen == l->generation && l->produce == k) { /* else dropped: a new epoch, or made by the caller */
            s->index = k;
            s->n = n;
            s->ready = true;
            l->produce = k + 1;
        }
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

cnn_status cnn_loader_create(cnn_loader **out, const cnn_dataset *d, const cnn_train_config *tc,
                             const cnn_loader_options *opt, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    cnn_loader_options def;
    if (!opt) {
        cnn_loader_options_default(&def);
        opt = &def;
    }
    if (!d || opt->batch < 1 || opt->channels < 0) {
        snprintf(err, errlen, "cnn_loader_create: %s", !d ? "no dataset" : opt->batch < 1 ? "the batch must be at least 1"
                                                                                           : "a negative channel count");
        return CNN_ERR_USAGE;
    }
    cnn_loader *l = cnn_mem_calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return CNN_ERR_NOMEM;
    }
    cnn_status st = rt_batch_maker_init(&l->maker, d, opt->channels, tc, opt->augment, opt->seed, err, errlen);
    if (st != CNN_OK) {
        cnn_mem_free(l);
        return st;
    }
    l->batch = opt->batch;
    l->per = l->maker.channels * d->height * d->width;
    l->drop_last = opt->drop_last;
    l->wait = opt->wait_for_thread;
    size_t xbytes, sbytes = rt_batch_scratch_bytes(&l->maker);
    if (!ck_bytes(l->per, l->batch, sizeof(float), &xbytes) || xbytes > OP_MAX_BYTES) {
        cnn_mem_free(l);
        snprintf(err, errlen, "cnn_loader_create: batches of %" PRId64 " examples are too large", opt->batch);
        return CNN_ERR_USAGE;
    }
    l->scratch = cnn_mem_malloc(sbytes);
    bool ok = l->scratch != NULL;
    if (ok && opt->background) {
        for (int k = 0; k < 2 && ok; k++) {
            l->slot[k].x = cnn_mem_malloc(xbytes);
            l->slot[k].labels = cnn_mem_malloc(sizeof(float) * (size_t)l->batch);
            ok = l->slot[k].x && l->slot[k].labels;
        }
        ok = ok && (l->worker_scratch = cnn_mem_malloc(sbytes)) != NULL;
    }
    if (!ok) {
        cnn_loader_destroy(l);
        snprintf(err, errlen, "out of memory for the loader's batches");
        return CNN_ERR_NOMEM;
    }
    if (opt->background && pthread_mutex_init(&l->mu, NULL) == 0) {
        if (pthread_cond_init(&l->cv, NULL) == 0) {
            /* the worker takes no signals: they stay with the threads that expect them */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            l->running = pthread_create(&l->thread, NULL, worker, l) == 0;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (!l->running)
                pthread_cond_destroy(&l->cv);
        }
        if (!l->running)
            pthread_mutex_destroy(&l->mu);
    }
    /* without a thread (none asked, or none could start) the batches are made on the caller's
     * thread: the same batches, only not overlapped */
    l->background = l->running;
    *out = l;
    return CNN_OK;
}

void cnn_loader_destroy(cnn_loader *l)
{
    if (!l)
        return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    for (int k = 0; k < 2; k++) {
        cnn_mem_free(l->slot[k].x);
        cnn_mem_free(l->slot[k].labels);
    }
    cnn_mem_free(l->worker_scratch);
    cnn_mem_free(l->scratch);
    cnn_mem_free(l->order);
    cnn_mem_free(l);
}

bool cnn_loader_background(const cnn_loader *l) { return l->background; }

int64_t cnn_loader_caller_made(const cnn_loader *l) { return l->made_here; }

cnn_status cnn_loader_start(cnn_loader *l, const int64_t *order, int64_t count, int64_t epoch, int64_t first_batch)
{
    const cnn_dataset *d = l->maker.d;
    cnn_status st = CNN_OK;
    if (count < 0 || (!order && count > d->count) || first_batch < 0)
        st = CNN_ERR_USAGE;
    for (int64_t i = 0; order && st == CNN_OK && i < count; i++)
        if (order[i] < 0 || order[i] >= d->count)
            st = CNN_ERR_USAGE;
    int64_t nbatches = st != CNN_OK ? 0 : l->drop_last ? count / l->batch : (count + l->batch - 1) / l->batch;
    if (first_batch > nbatches)
        st = CNN_ERR_USAGE;
    /* the epoch before ends here, whatever follows */
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->generation++;
        while (l->busy)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    if (st == CNN_OK && order && count > l->order_cap) {
        int64_t *p = cnn_mem_realloc(l->order, sizeof(int64_t) * (size_t)count);
        if (p) {
            l->order = p;
            l->order_cap = count;
        } else {
            st = CNN_ERR_NOMEM;
        }
    }
    if (st == CNN_OK) {
        if (order && count)
            memcpy(l->order, order, sizeof(int64_t) * (size_t)count);
        l->identity = !order;
        l->count = count;
        l->epoch = epoch;
        l->nbatches = nbatches;
        l->next = l->produce = first_batch;
    } else {
        l->count = l->nbatches = l->next = l->produce = 0;
    }
    l->slot[0].ready = l->slot[1].ready = false;
    if (l->running) {
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    return st;
}

cnn_status cnn_loader_next(cnn_loader *l, float *x, float *labels, int64_t *n)
{
    if (l->next >= l->nbatches) {
        *n = 0;
        return CNN_OK;
    }
    int64_t k = l->next;
    if (!l->running) {
        *n = batch_size(l, k);
        rt_batch_make(&l->maker, l->identity ? NULL : l->order, k * l->batch, *n, l->epoch, x, labels, l->scratch);
        l->next++;
        l->made_here++;
        return CNN_OK;
    }
    loader_slot *s = &l->slot[k % 2];
    pthread_mutex_lock(&l->mu);
    while (l->wait && !(s->ready && s->index == k))
        pthread_cond_wait(&l->cv, &l->mu);
    if (!(s->ready && s->index == k)) {
        /* not ready: the worker had no CPU time for it.  Never wait: make it here, and let the
         * worker drop it (if it is making it now) and go on with the next one. */
        if (l->produce <= k)
            l->produce = k + 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        *n = batch_size(l, k);
        rt_batch_make(&l->maker, l->identity ? NULL : l->order, k * l->batch, *n, l->epoch, x, labels, l->scratch);
        pthread_mutex_lock(&l->mu);
        l->next++;
        pthread_mutex_unlock(&l->mu);
        l->made_here++; /* the caller's own count */
        return CNN_OK;
    }
    pthread_mutex_unlock(&l->mu);
    /* the slot stays ready (the worker leaves it alone) while it is copied out */
    *n = s->n;
    memcpy(x, s->x, sizeof(float) * (size_t)(s->n * l->per));
    memcpy(labels, s->labels, sizeof(float) * (size_t)s->n);
    pthread_mutex_lock(&l->mu);
    s->ready = false;
    l->next++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return CNN_OK;
}
