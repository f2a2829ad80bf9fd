/* What the background batch loader buys: LeNet-5 trained on Fashion-MNIST with augmentation
 * (random_crop(2) -> random_flip) and normalisation, its batches made by the loader on its
 * background thread (overlapped with the step) or on the training thread (synchronous), in
 * interleaved repeats; then the loader alone (images/s it prepares, nothing trained).
 *
 *   bench_loader [NET.cnn] [DATA_DIR] [--steps N] [--repeats R] [--threads T] [--batch B]
 *
 * Defaults: examples/lenet5.cnn, /usr/share/datasets/fashion-mnist, 300 steps, 5 repeats,
 * 2 threads, the network's batch.  Prints images/s (median, min, max) for each mode and the
 * ratios of the medians.  Modes: "overlapped" is the default loader (a background thread at idle
 * priority, never waited for), "waited for" a plain double-buffered thread at normal priority. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "runtime/cnn.h"

#define MAX_REPEATS 64

static int64_t overlapped_steps, overlapped_made_here; /* batches the training thread made itself */

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_loader: %s: %s\n", what, msg);
    exit(1);
}

/* Images per second of `steps` training steps with batches from a loader: synchronous (mode 0),
 * background at idle priority, never waited for (1, the default), background waited for (2). */
static double train_run(cnn_session *s, const cnn_dataset *d, const cnn_train_config *tc, int64_t channels,
                        const int64_t *order, int64_t steps, int64_t epoch, int mode)
{
    bool background = mode > 0;
    int64_t batch = cnn_session_batch(s);
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    o.batch = batch;
    o.channels = channels;
    o.augment = true;
    o.seed = 1;
    o.drop_last = true;
    o.background = background;
    o.wait_for_thread = mode == 2;
    cnn_loader *l;
    char err[1024];
    if (cnn_loader_create(&l, d, tc, &o, err, sizeof err) != CNN_OK)
        die("loader", err);
    float *labels = malloc(sizeof(float) * (size_t)batch);
    double t0 = now();
    if (cnn_loader_start(l, order, steps * batch, epoch, 0) != CNN_OK)
        die("loader", "cannot start");
    for (int64_t k = 0; k < steps; k++) {
        int64_t n;
        cnn_loader_next(l, cnn_session_input(s, 0), labels, &n);
        if (n != batch)
            die("loader", "short batch");
        if (cnn_session_train_step(s, labels, true, NULL, NULL) != CNN_OK)
            die("train step", cnn_session_errmsg(s));
    }
    double t = now() - t0;
    if (mode == 1) {
        overlapped_steps += steps;
        overlapped_made_here += cnn_loader_caller_made(l);
    }
    cnn_loader_destroy(l);
    free(labels);
    return (double)(steps * batch) / t;
}

/* Images per second the loader alone prepares (batches taken as fast as they come). */
static double loader_run(const cnn_dataset *d, const cnn_train_config *tc, int64_t channels, int64_t per,
                         int64_t batch, const int64_t *order, int64_t count, bool background)
{
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    o.batch = batch;
    o.channels = channels;
    o.augment = true;
    o.drop_last = true;
    o.background = background;
    cnn_loader *l;
    char err[1024];
    if (cnn_loader_create(&l, d, tc, &o, err, sizeof err) != CNN_OK)
        die("loader", err);
    float *x = malloc(sizeof(float) * (size_t)(batch * per)), *labels = malloc(sizeof(float) * (size_t)batch);
    double t0 = now();
    cnn_loader_start(l, order, count, 1, 0);
    int64_t n, total = 0;
    while (cnn_loader_next(l, x, labels, &n) == CNN_OK && n > 0)
        total += n;
    double t = now() - t0;
    cnn_loader_destroy(l);
    free(x);
    free(labels);
    return (double)total / t;
}

static void summary(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    printf("%-34s median %9.0f images/s  (min %.0f, max %.0f, %d runs)\n", name, v[n / 2], v[0], v[n - 1], n);
}

int main(int argc, char **argv)
{
    const char *net = "examples/lenet5.cnn", *data = "/usr/share/datasets/fashion-mnist";
    int64_t steps = 300, batch = 0;
    int repeats = 5, threads = 2, positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoll(argv[++i]);
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoll(argv[++i]);
        else if (argv[i][0] != '-' && positional < 2)
            *(positional++ == 0 ? &net : &data) = argv[i];
        else {
            fprintf(stderr, "usage: bench_loader [NET.cnn] [DATA_DIR] [--steps N] [--repeats R] [--threads T] [--batch B]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > MAX_REPEATS || steps < 1)
        die("arguments", "repeats 1 to 64, steps at least 1");
    cnn_model *m;
    if (cnn_model_load(&m, net, NULL) != CNN_OK)
        die(net, m ? cnn_model_errmsg(m) : "cannot load");
    cnn_dataset *d;
    char err[1024];
    if (cnn_dataset_load(&d, data, "train", NULL, err, sizeof err) != CNN_OK)
        die(data, err);
    if (cnn_dataset_check(d, m, err, sizeof err) != CNN_OK)
        die(data, err);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    if (batch)
        tc.batch = batch;
    tc.naugment = 2;
    tc.augment[0] = (cnn_augment_step){CNN_AUGMENT_RANDOM_CROP, 2};
    tc.augment[1] = (cnn_augment_step){CNN_AUGMENT_RANDOM_FLIP, 0};
    tc.nnormalize = 1;
    tc.mean[0] = 0.2860; /* Fashion-MNIST's training set */
    tc.std[0] = 0.3530;
    int64_t dims[4], per = 1;
    int rank = cnn_model_input_shape(m, 0, dims);
    for (int k = 0; k < rank; k++)
        per *= dims[k];
    int64_t channels = rank == 3 ? dims[0] : 0;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = threads;
    cnn_weights *w;
    cnn_session *s;
    if (cnn_weights_create(&w, m, 1) != CNN_OK)
        die("weights", "cannot create");
    if (cnn_session_create(&s, m, w, &o, tc.batch, CNN_MODE_TRAIN, &tc) != CNN_OK)
        die("session", cnn_session_errmsg(s));
    int64_t n = cnn_dataset_count(d);
    if (steps * tc.batch > n)
        steps = n / tc.batch;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n);
    uint64_t x = 0x5eed;
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* shuffled, as training reads it */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t j = (int64_t)((x >> 11) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    printf("%s on %s: %" PRId64 " steps of batch %" PRId64 ", %d threads, random_crop(2) -> random_flip, normalize; "
           "%d interleaved repeats\n",
           cnn_model_name(m), data, steps, tc.batch, threads, repeats);
    train_run(s, d, &tc, channels, order, steps < 20 ? steps : 20, 1, 1); /* warm-up */
    overlapped_steps = overlapped_made_here = 0;
    double over[MAX_REPEATS], sync[MAX_REPEATS], waited[MAX_REPEATS], alone_sync[MAX_REPEATS], alone_bg[MAX_REPEATS];
    double *by_mode[3] = {sync, over, waited};
    for (int r = 0; r < repeats; r++) {
        for (int k = 0; k < 3; k++) { /* the three modes in a rotating order */
            int mode = (r + k) % 3;
            by_mode[mode][r] = train_run(s, d, &tc, channels, order, steps, r + 1, mode);
        }
        alone_sync[r] = loader_run(d, &tc, channels, per, tc.batch, order, n, false);
        alone_bg[r] = loader_run(d, &tc, channels, per, tc.batch, order, n, true);
    }
    double mo, ms;
    summary("training, loader overlapped (idle)", over, repeats);
    mo = over[repeats / 2];
    summary("training, loader synchronous", sync, repeats);
    ms = sync[repeats / 2];
    summary("training, loader waited for", waited, repeats);
    printf("overlapped / synchronous: %.3f, waited for / synchronous: %.3f (overlapped runs: %.1f%% of the batches "
           "made on the training thread, the background thread having had no idle CPU for them)\n",
           mo / ms, waited[repeats / 2] / ms, 100.0 * (double)overlapped_made_here / (double)overlapped_steps);
    summary("loader alone, synchronous", alone_sync, repeats);
    summary("loader alone, background thread", alone_bg, repeats);
    free(order);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_dataset_destroy(d);
    cnn_model_destroy(m);
    return 0;
}
