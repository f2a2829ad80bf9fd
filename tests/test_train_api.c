/* The training loop as a library call (cnn_train): the step and epoch callbacks, stopping from
 * a callback, the step limit, the shuffle order (the one cnnc has always used), the
 * non-finite-loss stop, and the caller's OpenMP setting left as it was. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cnn.h"

static char tmpdir[256];

enum { SIDE = 6, NTRAIN = 96, NTEST = 24, CLASSES = 3 };

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    cr_assert_eq(fwrite(b, 1, 4, f), 4);
}

/* Writes an IDX split of n SIDExSIDE images: class c has rows 2c and 2c+1 bright, over noise. */
static void write_split(const char *prefix, int n, uint32_t seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", tmpdir, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", tmpdir, prefix);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)n), put_be32(fi, SIDE), put_be32(fi, SIDE);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)n);
    uint32_t x = seed;
    for (int i = 0; i < n; i++) {
        int c = (i * 7 + (int)(seed % 5)) % CLASSES;
        unsigned char img[SIDE * SIDE];
        for (int p = 0; p < SIDE * SIDE; p++) {
            x = x * 1664525u + 1013904223u;
            int v = (int)(x >> 25); /* 0..127 */
            img[p] = (unsigned char)(p / SIDE / 2 == c ? 128 + v : v);
        }
        unsigned char lab = (unsigned char)c;
        cr_assert_eq(fwrite(img, 1, sizeof img, fi), sizeof img);
        cr_assert_eq(fwrite(&lab, 1, 1, fl), 1);
    }
    fclose(fi);
    fclose(fl);
}

static void make_data(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnc-train-api-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    write_split("train", NTRAIN, 1);
    write_split("t10k", NTEST, 2);
}

static void remove_data(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(train_api, .init = make_data, .fini = remove_data, .timeout = 120);

static const char source[] = "network tiny {\n"
                             "    input image[1, 6, 6];\n"
                             "    output logits = image -> flatten -> dense(8) -> relu -> dense(3);\n"
                             "}\n"
                             "train tiny {\n"
                             "    loss = cross_entropy;\n"
                             "    optimizer = sgd(lr=0.1);\n"
                             "    batch = 8;\n"
                             "    epochs = 2;\n"
                             "}\n";

/* A model, weights, a training session (threads 1, reference kernels: reproducible) and the
 * two splits. */
typedef struct fixture {
    cnn_model *m;
    cnn_weights *w;
    cnn_session *s;
    cnn_dataset *train, *test;
} fixture;

/* A linear model with mse: at a large learning rate its weights grow geometrically. */
static const char linear_mse[] = "network lin { input image[1, 6, 6]; output y = image -> flatten -> dense(3); }\n"
                                 "train lin { loss = mse; optimizer = sgd(lr=0.1); batch = 8; }\n";

static void setup_source(fixture *f, const char *src, double lr)
{
    cr_assert_eq(cnn_model_compile(&f->m, "tiny.cnn", src, strlen(src), NULL), CNN_OK, "%s",
                 cnn_model_errmsg(f->m));
    cr_assert_eq(cnn_weights_create(&f->w, f->m, 5), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(f->m, &tc);
    if (lr > 0)
        tc.lr = lr;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    o.backend = CNN_BACKEND_REF;
    cr_assert_eq(cnn_session_create(&f->s, f->m, f->w, &o, tc.batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s",
                 cnn_session_errmsg(f->s));
    char err[1024];
    bool absent;
    cr_assert_eq(cnn_dataset_load(&f->train, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_dataset_load(&f->test, tmpdir, "test", &absent, err, sizeof err), CNN_OK, "%s", err);
}

static void setup(fixture *f, double lr) { setup_source(f, source, lr); }

static void teardown(fixture *f)
{
    cnn_dataset_destroy(f->train);
    cnn_dataset_destroy(f->test);
    cnn_session_destroy(f->s);
    cnn_weights_destroy(f->w);
    cnn_model_destroy(f->m);
}

/* What the callbacks saw. */
typedef struct record {
    int nsteps, nepochs;
    double loss[256];
    int64_t step[256];
    cnn_train_epoch_info epochs[32];
    int stop_at_step, stop_at_epoch; /* 0: never */
} record;

static int record_step(const cnn_train_step_info *si, void *user)
{
    record *r = user;
    if (r->nsteps < 256) {
        r->loss[r->nsteps] = si->loss;
        r->step[r->nsteps] = si->step;
    }
    r->nsteps++;
    return r->stop_at_step && si->step == r->stop_at_step;
}

static int record_epoch(const cnn_train_epoch_info *ei, void *user)
{
    record *r = user;
    if (r->nepochs < 32)
        r->epochs[r->nepochs] = *ei;
    r->nepochs++;
    return r->stop_at_epoch && ei->epoch == r->stop_at_epoch;
}

static void options(cnn_train_options *to, record *r)
{
    cnn_train_options_default(to);
    to->on_step = record_step;
    to->on_epoch = record_epoch;
    to->user = r;
}

Test(train_api, step_callback_every_step_with_a_falling_loss)
{
    fixture f;
    setup(&f, 0);
    record r = {0};
    cnn_train_options to;
    options(&to, &r);
    to.epochs = 20;
    to.max_steps = 100;
    cnn_train_result res;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(r.nsteps, 100);
    cr_expect_eq(res.steps, 100);
    cr_expect(!res.stopped);
    double first = 0, last = 0;
    for (int i = 0; i < 100; i++) {
        cr_expect_eq(r.step[i], i + 1);
        cr_expect(isfinite(r.loss[i]), "step %d: loss %g", i + 1, r.loss[i]);
        if (i < 10)
            first += r.loss[i] / 10;
        if (i >= 90)
            last += r.loss[i] / 10;
    }
    cr_expect_lt(last, first * 0.7, "the loss fell from %.4f to %.4f only", first, last);
    /* 12 steps an epoch: the step limit ends the 9th epoch after 4 steps, and it is reported */
    cr_expect_eq(r.nepochs, 9);
    cr_expect_eq(res.epochs, 9);
    cr_expect_eq(r.epochs[8].steps, 4);
    cr_expect(res.has_test);
    cr_expect_gt(res.test_accuracy, 0.8, "test accuracy %.3f", res.test_accuracy);
    teardown(&f);
}

Test(train_api, epoch_callback_every_epoch)
{
    fixture f;
    setup(&f, 0);
    record r = {0};
    cnn_train_options to;
    options(&to, &r);
    to.epochs = 3;
    cnn_train_result res;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_assert_eq(r.nepochs, 3);
    cr_expect_eq(r.nsteps, 36);
    for (int e = 0; e < 3; e++) {
        const cnn_train_epoch_info *ei = &r.epochs[e];
        cr_expect_eq(ei->epoch, e + 1);
        cr_expect_eq(ei->epochs, 3);
        cr_expect_eq(ei->steps, NTRAIN / 8);
        cr_expect_eq(ei->total_steps, (e + 1) * (NTRAIN / 8));
        cr_expect(ei->has_test);
        cr_expect(isfinite(ei->train_loss) && ei->train_accuracy >= 0 && ei->train_accuracy <= 1);
        cr_expect(isfinite(ei->test_loss) && ei->test_accuracy >= 0 && ei->test_accuracy <= 1);
        cr_expect_geq(ei->seconds, 0);
    }
    cr_expect_float_eq(res.test_loss, r.epochs[2].test_loss, 1e-12);
    /* without a test set, no evaluation; the epochs default to the train section's (2) */
    record r2 = {0};
    options(&to, &r2);
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(r2.nepochs, 2);
    cr_expect(!r2.epochs[0].has_test && !res.has_test);
    teardown(&f);
}

Test(train_api, a_callback_stops_training)
{
    fixture f;
    setup(&f, 0);
    record r = {.stop_at_step = 5};
    cnn_train_options to;
    options(&to, &r);
    to.epochs = 3;
    cnn_train_result res;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(r.nsteps, 5);
    cr_expect_eq(res.steps, 5);
    cr_expect(res.stopped);
    cr_expect_eq(r.nepochs, 0, "no epoch callback for the unfinished epoch");
    record r2 = {.stop_at_epoch = 2};
    options(&to, &r2);
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(r2.nepochs, 2);
    cr_expect_eq(res.steps, 2 * (NTRAIN / 8));
    cr_expect(res.stopped);
    teardown(&f);
}

/* The shuffle is the one the driver has always used: Fisher-Yates over a xorshift64 seeded with
 * seed ^ 0x5eed, carried across epochs.  A hand-written loop with it gives the same losses. */
Test(train_api, shuffle_order_is_the_drivers)
{
    fixture f, g;
    setup(&f, 0);
    setup(&g, 0);
    record r = {0};
    cnn_train_options to;
    options(&to, &r);
    to.epochs = 2;
    to.seed = 42;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    int64_t order[NTRAIN];
    for (int i = 0; i < NTRAIN; i++)
        order[i] = i;
    uint64_t st = 42 ^ 0x5eedULL;
    float labels[8];
    int k = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
        for (int64_t i = NTRAIN - 1; i > 0; i--) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            int64_t j = (int64_t)((st >> 11) % (uint64_t)(i + 1));
            int64_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int step = 0; step < NTRAIN / 8; step++, k++) {
            cnn_dataset_batch(g.train, order, step * 8, 8, cnn_session_input(g.s, 0), labels);
            float loss;
            cr_assert_eq(cnn_session_train_step(g.s, labels, true, &loss, NULL), CNN_OK);
            cr_expect_eq((float)r.loss[k], loss, "step %d: cnn_train %.9g, by hand %.9g", k + 1, r.loss[k], (double)loss);
        }
    }
    cr_expect_eq(r.nsteps, k);
    teardown(&f);
    teardown(&g);
}

Test(train_api, a_diverging_run_stops_with_the_step)
{
    fixture f;
    setup_source(&f, linear_mse, 1e4);
    record r = {0};
    cnn_train_options to;
    options(&to, &r);
    to.epochs = 20;
    cnn_train_result res;
    cnn_status st = cnn_train(f.s, f.train, f.test, &to, &res);
    cr_assert_eq(st, CNN_ERR_DIVERGED, "status %d: %s", st, cnn_session_errmsg(f.s));
    char want[64];
    snprintf(want, sizeof want, "at step %d ", r.nsteps + 1);
    cr_expect(strstr(cnn_session_errmsg(f.s), "the loss became") != NULL, "%s", cnn_session_errmsg(f.s));
    cr_expect(strstr(cnn_session_errmsg(f.s), want) != NULL, "message lacks '%s': %s", want, cnn_session_errmsg(f.s));
    cr_expect_eq(res.steps, r.nsteps, "the steps before the bad one are counted");
    cr_log_info("%s", cnn_session_errmsg(f.s));
    teardown(&f);
}

Test(train_api, bad_calls)
{
    fixture f;
    setup(&f, 0);
    cnn_session *inf;
    cr_assert_eq(cnn_session_create(&inf, f.m, f.w, NULL, 8, CNN_MODE_INFER, NULL), CNN_OK);
    cr_expect_eq(cnn_train(inf, f.train, NULL, NULL, NULL), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(inf), "training session") != NULL, "%s", cnn_session_errmsg(inf));
    cnn_session_destroy(inf);
    cr_expect_eq(cnn_train(f.s, NULL, NULL, NULL, NULL), CNN_ERR_USAGE);
    teardown(&f);
}

Test(train_api, the_callers_openmp_setting_is_restored)
{
    omp_set_num_threads(3);
    fixture f;
    setup(&f, 0); /* threads = 1 */
    cnn_session *inf;
    cr_assert_eq(cnn_session_create(&inf, f.m, f.w, NULL, 8, CNN_MODE_INFER, NULL), CNN_OK);
    cnn_session_destroy(inf);
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    cr_assert_eq(cnn_session_create(&inf, f.m, f.w, &o, 8, CNN_MODE_INFER, NULL), CNN_OK);
    cr_expect_eq(omp_get_max_threads(), 3, "after cnn_session_create");
    cr_assert_eq(cnn_session_run(inf), CNN_OK, "%s", cnn_session_errmsg(inf));
    cr_expect_eq(omp_get_max_threads(), 3, "after cnn_session_run");
    float labels[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    cr_assert_eq(cnn_session_train_step(f.s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(omp_get_max_threads(), 3, "after cnn_session_train_step");
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = 1;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(omp_get_max_threads(), 3, "after cnn_train");
    cnn_eval_result er;
    cr_assert_eq(cnn_evaluate(inf, f.test, 0, &er), CNN_OK, "%s", cnn_session_errmsg(inf));
    cr_expect_eq(omp_get_max_threads(), 3, "after cnn_evaluate");
    cnn_session_destroy(inf);
    teardown(&f);
}

/* Spec section 7's formulas, value by value. */
Test(train_api, schedule_formulas)
{
    cnn_train_config c;
    memset(&c, 0, sizeof c);
    c.lr = 0.1;
    cr_expect_eq(cnn_train_lr(&c, 123, 10, 500), 0.1);
    c.schedule = CNN_SCHEDULE_STEP, c.schedule_every = 3, c.schedule_gamma = 0.5;
    cr_expect_eq(cnn_train_lr(&c, 29, 10, 500), 0.1, "epoch 2 is before the first decay");
    cr_expect_float_eq(cnn_train_lr(&c, 30, 10, 500), 0.05, 1e-15);
    cr_expect_float_eq(cnn_train_lr(&c, 69, 10, 500), 0.025, 1e-15);
    c.schedule = CNN_SCHEDULE_COSINE, c.warmup_epochs = 2;
    cr_expect_float_eq(cnn_train_lr(&c, 0, 10, 120), 0.1 * 1 / 20, 1e-15);
    cr_expect_float_eq(cnn_train_lr(&c, 19, 10, 120), 0.1, 1e-15);
    cr_expect_float_eq(cnn_train_lr(&c, 20, 10, 120), 0.1, 1e-15);
    cr_expect_float_eq(cnn_train_lr(&c, 70, 10, 120), 0.05, 1e-12);
    cr_expect_float_eq(cnn_train_lr(&c, 119, 10, 120), 0.1 * 0.5 * (1 + cos(M_PI * 99.0 / 100.0)), 1e-15);
    c.warmup_epochs = 0;
    cr_expect_float_eq(cnn_train_lr(&c, 0, 10, 120), 0.1, 1e-15);
}

/* A rate set between steps is the one the next update uses: a session made at lr 0.01 and set
 * to 0.3 takes the same step, bit for bit, as one made at 0.3. */
static void one_step(fixture *f)
{
    float *x = cnn_session_input(f->s, 0), labels[64];
    int64_t order[64];
    for (int i = 0; i < 64; i++)
        order[i] = i;
    cnn_dataset_batch(f->train, order, 0, cnn_session_batch(f->s), x, labels);
    float loss;
    cr_assert_eq(cnn_session_train_step(f->s, labels, true, &loss, NULL), CNN_OK, "%s", cnn_session_errmsg(f->s));
}

Test(train_api, set_lr_changes_the_next_step)
{
    fixture f, g;
    setup(&f, 0.3);
    setup(&g, 0.01);
    cr_assert_eq(cnn_session_set_lr(g.s, 0.3), CNN_OK);
    one_step(&f);
    one_step(&g);
    int changed = 0;
    for (int i = 0; i < cnn_weights_count(f.w); i++) {
        int rank;
        int64_t dims[8], n = 1;
        const char *name;
        float *a = cnn_weights_tensor(f.w, i, &name, &rank, dims), *b = cnn_weights_tensor(g.w, i, &name, &rank, dims);
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        cr_expect(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "%s differs", name);
        changed++;
    }
    cr_expect_gt(changed, 0);
    cr_expect_eq(cnn_session_set_lr(g.s, -1), CNN_ERR_USAGE);
    cr_expect_eq(cnn_session_set_lr(g.s, NAN), CNN_ERR_USAGE);
    cnn_session *inf;
    cr_assert_eq(cnn_session_create(&inf, f.m, f.w, NULL, 8, CNN_MODE_INFER, NULL), CNN_OK);
    cr_expect_eq(cnn_session_set_lr(inf, 0.1), CNN_ERR_USAGE);
    cnn_session_destroy(inf);
    teardown(&f);
    teardown(&g);
}

/* --val's hold-out: a subset is a copy of the range, and a range outside the set is refused. */
Test(train_api, dataset_subset)
{
    fixture f;
    setup(&f, 0);
    char err[512];
    cnn_dataset *v = NULL;
    cr_assert_eq(cnn_dataset_subset(f.train, NTRAIN - 10, 10, &v, err, sizeof err), CNN_OK, "%s", err);
    cr_expect_eq(cnn_dataset_count(v), 10);
    enum { PER = SIDE * SIDE };
    float a[10 * PER], b[10 * PER], la[10], lb[10];
    int64_t order[10];
    for (int i = 0; i < 10; i++)
        order[i] = NTRAIN - 10 + i;
    cnn_dataset_batch(f.train, order, 0, 10, a, la);
    cnn_dataset_batch(v, NULL, 0, 10, b, lb);
    cr_expect(memcmp(a, b, sizeof a) == 0 && memcmp(la, lb, sizeof la) == 0);
    cnn_dataset_destroy(v);
    cr_expect_eq(cnn_dataset_subset(f.train, NTRAIN - 10, 11, &v, err, sizeof err), CNN_ERR_USAGE);
    cr_expect_null(v);
    cr_expect(strstr(err, "are not a part of") != NULL, "%s", err);
    cr_expect_eq(cnn_dataset_subset(f.train, -1, 3, &v, err, sizeof err), CNN_ERR_USAGE);
    cr_expect_eq(cnn_dataset_subset(f.train, 0, 0, &v, err, sizeof err), CNN_ERR_USAGE);
    teardown(&f);
}
