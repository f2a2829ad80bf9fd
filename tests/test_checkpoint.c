/* Checkpoints and exact resume (cnn_train with checkpoint_dir and resume): a run stopped at an
 * epoch boundary or mid-epoch and resumed ends with the same weights, bit for bit, as one that
 * was not stopped (SGD with momentum, Adam; shuffling, a schedule, dropout and batchnorm on); a
 * checkpoint of another set-up is refused and nothing is written; a checkpoint loads as weights;
 * best and last are written when they should be; --val and --patience. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cnn.h"
#include "runtime/safetensors.h"
#include "tests/file_util.h"

static char tmpdir[256];

enum { SIDE = 6, NTRAIN = 100, NTEST = 24, CLASSES = 3 };

/* An IDX split of n SIDExSIDE images: class c has rows 2c and 2c+1 bright, over noise. */
static void write_split(const char *prefix, int n, uint32_t seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/%s-images-idx3-ubyte", tmpdir, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/data/%s-labels-idx1-ubyte", tmpdir, prefix);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    test_put_be32(fi, 0x803), test_put_be32(fi, (uint32_t)n), test_put_be32(fi, SIDE), test_put_be32(fi, SIDE);
    test_put_be32(fl, 0x801), test_put_be32(fl, (uint32_t)n);
    uint32_t x = seed;
    for (int i = 0; i < n; i++) {
        int c = (i * 7 + (int)(seed % 5)) % CLASSES;
        unsigned char img[SIDE * SIDE];
        for (int p = 0; p < SIDE * SIDE; p++) {
            x = x * 1664525u + 1013904223u;
            int v = (int)(x >> 25);
            img[p] = (unsigned char)(p / SIDE / 2 == c ? 100 + v : v);
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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnc-ckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char path[512];
    snprintf(path, sizeof path, "%s/data", tmpdir);
    cr_assert_eq(mkdir(path, 0755), 0);
    write_split("train", NTRAIN, 1);
    write_split("t10k", NTEST, 2);
}

static void remove_data(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(checkpoint, .init = make_data, .fini = remove_data, .timeout = 120);

static const char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Dropout and batchnorm: their state (the session's step counter, running statistics) must
 * survive a resume too. */
static const char net_src[] = "network tiny {\n"
                              "    input image[1, 6, 6];\n"
                              "    output logits = image -> conv2d(4, 3, pad=1) -> batchnorm -> relu -> flatten\n"
                              "        -> dropout(0.2) -> dense(8) -> relu -> dense(3);\n"
                              "}\n";
/* The same layers, another width: the shapes differ. */
static const char wide_src[] = "network tiny {\n"
                               "    input image[1, 6, 6];\n"
                               "    output logits = image -> conv2d(4, 3, pad=1) -> batchnorm -> relu -> flatten\n"
                               "        -> dropout(0.2) -> dense(9) -> relu -> dense(3);\n"
                               "}\n";
static const char other_src[] = "network other { input image[1, 6, 6]; output y = image -> flatten -> dense(3); }\n";

typedef struct setup_opts {
    const char *src;
    int optimizer;        /* 0 sgd with momentum, 1 adam */
    int64_t batch;
    uint64_t seed;
} setup_opts;

typedef struct fixture {
    cnn_model *m;
    cnn_weights *w;
    cnn_session *s;
    cnn_dataset *train, *test;
} fixture;

static void setup(fixture *f, setup_opts so)
{
    const char *src = so.src ? so.src : net_src;
    memset(f, 0, sizeof *f);
    cr_assert_eq(cnn_model_compile(&f->m, "net.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(f->m));
    cr_assert_eq(cnn_weights_create(&f->w, f->m, 5), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(f->m, &tc);
    tc.batch = so.batch ? so.batch : 8;
    if (so.optimizer == 0) {
        tc.optimizer = 0;
        tc.lr = 0.05;
        tc.momentum = 0.9;
    } else {
        tc.optimizer = 1;
        tc.lr = 0.01;
    }
    /* a schedule that changes every step, and the augmentation the data loader applies */
    tc.schedule = CNN_SCHEDULE_COSINE;
    tc.warmup_epochs = 1;
    tc.naugment = 2;
    tc.augment[0] = (cnn_augment_step){.kind = CNN_AUGMENT_RANDOM_CROP, .pad = 1};
    tc.augment[1] = (cnn_augment_step){.kind = CNN_AUGMENT_RANDOM_FLIP};
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    o.backend = CNN_BACKEND_REF;
    o.seed = so.seed;
    cr_assert_eq(cnn_session_create(&f->s, f->m, f->w, &o, tc.batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s",
                 cnn_session_errmsg(f->s));
    char err[1024];
    bool absent;
    cr_assert_eq(cnn_dataset_load(&f->train, path_in("data"), "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_dataset_load(&f->test, path_in("data"), "test", &absent, err, sizeof err), CNN_OK, "%s", err);
}

static void teardown(fixture *f)
{
    cnn_dataset_destroy(f->train);
    cnn_dataset_destroy(f->test);
    cnn_session_destroy(f->s);
    cnn_weights_destroy(f->w);
    cnn_model_destroy(f->m);
}

/* Every weight of a and b, byte for byte. */
static void expect_same_weights(cnn_weights *a, cnn_weights *b, const char *what)
{
    cr_assert_eq(cnn_weights_count(a), cnn_weights_count(b));
    for (int i = 0; i < cnn_weights_count(a); i++) {
        const char *name;
        int rank;
        int64_t dims[CNN_WEIGHT_MAX_RANK];
        float *x = cnn_weights_tensor(a, i, &name, &rank, dims);
        float *y = cnn_weights_tensor(b, i, NULL, NULL, NULL);
        int64_t n = 1;
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        cr_expect_eq(memcmp(x, y, sizeof(float) * (size_t)n), 0, "%s: %s differs", what, name);
    }
}

typedef struct stopper {
    int64_t at_step, at_epoch; /* stop after this step / epoch (0: never) */
    int64_t steps_seen;
    int64_t first_step;
} stopper;

static int stop_step(const cnn_train_step_info *si, void *user)
{
    stopper *st = user;
    if (!st->first_step)
        st->first_step = si->step;
    st->steps_seen++;
    return st->at_step && si->step == st->at_step;
}

static int stop_epoch(const cnn_train_epoch_info *ei, void *user)
{
    stopper *st = user;
    return st->at_epoch && ei->epoch == st->at_epoch;
}

static void train_opts(cnn_train_options *to, stopper *sp, int64_t epochs)
{
    cnn_train_options_default(to);
    to->epochs = epochs;
    to->seed = 11;
    to->val = 12;
    to->on_step = stop_step;
    to->on_epoch = stop_epoch;
    to->user = sp;
}

/* N epochs straight against a run stopped (at epoch stop_epoch, or after step stop_step) and
 * resumed from its last.safetensors. */
static void resume_equals_straight_limit(setup_opts so, int64_t epochs, int64_t at_epoch, int64_t at_step,
                                         int64_t max_steps, const char *dir)
{
    fixture a, b, c;
    cnn_train_options to;
    cnn_train_result ra, rb, rc;
    stopper sa = {0}, sb = {.at_epoch = at_epoch, .at_step = at_step}, sc = {0};

    setup(&a, so);
    train_opts(&to, &sa, epochs);
    cr_assert_eq(cnn_train(a.s, a.train, a.test, &to, &ra), CNN_OK, "%s", cnn_session_errmsg(a.s));
    cr_assert_eq(ra.steps, epochs * ((NTRAIN - 12) / (so.batch ? so.batch : 8)));

    setup(&b, so);
    train_opts(&to, &sb, epochs);
    to.max_steps = max_steps;
    char cdir[512];
    snprintf(cdir, sizeof cdir, "%s", path_in(dir));
    to.checkpoint_dir = cdir;
    cr_assert_eq(cnn_train(b.s, b.train, b.test, &to, &rb), CNN_OK, "%s", cnn_session_errmsg(b.s));
    cr_assert(rb.stopped || max_steps);
    cr_assert_lt(rb.steps, ra.steps);

    char last[512];
    snprintf(last, sizeof last, "%s/last.safetensors", path_in(dir));
    setup(&c, so); /* fresh weights (the same seed: the resume must replace them all) */
    train_opts(&to, &sc, epochs);
    to.resume = last;
    cr_assert_eq(cnn_train(c.s, c.train, c.test, &to, &rc), CNN_OK, "%s", cnn_session_errmsg(c.s));
    cr_expect_eq(rc.resumed_step, rb.steps);
    cr_expect_eq(sc.first_step, rb.steps + 1, "the resumed run went on from step %lld, not %lld",
                 (long long)sc.first_step, (long long)rb.steps + 1);
    cr_expect_eq(rc.steps, ra.steps);
    cr_expect_eq(rb.steps + sc.steps_seen, ra.steps);
    expect_same_weights(a.w, c.w, dir);
    /* the same metrics at the end */
    cr_expect_eq(ra.test_accuracy, rc.test_accuracy);
    cr_expect_eq(ra.val_loss, rc.val_loss);
    cr_expect_eq(ra.train_loss, rc.train_loss, "%.17g %.17g", ra.train_loss, rc.train_loss);
    teardown(&a);
    teardown(&b);
    teardown(&c);
}

static void resume_equals_straight(setup_opts so, int64_t epochs, int64_t at_epoch, int64_t at_step, const char *dir)
{
    resume_equals_straight_limit(so, epochs, at_epoch, at_step, 0, dir);
}

Test(checkpoint, resume_after_a_step_limit_mid_epoch_is_exact)
{
    /* --steps 16 ends in epoch 2 (evaluated, checkpointed there); the resume goes on from it */
    resume_equals_straight_limit((setup_opts){.optimizer = 1}, 3, 0, 0, 16, "limit_mid");
}

Test(checkpoint, resume_at_an_epoch_boundary_is_exact_sgd_momentum)
{
    resume_equals_straight((setup_opts){.optimizer = 0}, 4, 2, 0, "sgd_epoch");
}

Test(checkpoint, resume_at_an_epoch_boundary_is_exact_adam)
{
    resume_equals_straight((setup_opts){.optimizer = 1}, 4, 2, 0, "adam_epoch");
}

Test(checkpoint, resume_mid_epoch_is_exact)
{
    /* 11 steps an epoch: step 16 is the 5th of epoch 2; step 22 the last of epoch 2 */
    resume_equals_straight((setup_opts){.optimizer = 0}, 3, 0, 16, "sgd_mid");
    resume_equals_straight((setup_opts){.optimizer = 1}, 3, 0, 16, "adam_mid");
    resume_equals_straight((setup_opts){.optimizer = 1}, 3, 0, 22, "adam_end");
}

/* Stops a run after one epoch and returns its last.safetensors. */
static const char *one_epoch_checkpoint(const char *dir)
{
    fixture f;
    setup(&f, (setup_opts){.optimizer = 0});
    cnn_train_options to;
    stopper sp = {.at_epoch = 1};
    train_opts(&to, &sp, 3);
    char cdir[512];
    snprintf(cdir, sizeof cdir, "%s", path_in(dir));
    to.checkpoint_dir = cdir;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    teardown(&f);
    static char last[512];
    snprintf(last, sizeof last, "%s/last.safetensors", path_in(dir));
    return last;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* Resuming ckpt with the set-up so fails with CNN_ERR_INPUT, a message holding each of want[],
 * and leaves the checkpoint (and its folder) as they were. */
static void expect_refused(const char *ckpt, setup_opts so, int64_t val, const char *const *want, int nwant)
{
    size_t len0, len1;
    unsigned char *before = read_all(ckpt, &len0);
    fixture f;
    setup(&f, so);
    cnn_train_options to;
    stopper sp = {0};
    train_opts(&to, &sp, 3);
    to.val = val;
    to.resume = ckpt;
    char cdir[512];
    snprintf(cdir, sizeof cdir, "%s", path_in("refused"));
    to.checkpoint_dir = cdir;
    cnn_train_result res;
    cr_expect_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_ERR_INPUT);
    const char *msg = cnn_session_errmsg(f.s);
    for (int k = 0; k < nwant; k++)
        cr_expect(strstr(msg, want[k]) != NULL, "no '%s' in: %s", want[k], msg);
    cr_expect_eq(res.steps, 0);
    cr_expect_eq(sp.steps_seen, 0);
    unsigned char *after = read_all(ckpt, &len1);
    cr_expect(len0 == len1 && memcmp(before, after, len0) == 0, "the checkpoint changed");
    cr_expect_neq(access(path_in("refused/last.safetensors"), F_OK), 0, "a checkpoint was written");
    free(before);
    free(after);
    teardown(&f);
}

Test(checkpoint, a_resume_of_another_setup_is_refused)
{
    const char *ckpt = one_epoch_checkpoint("mis");
    expect_refused(ckpt, (setup_opts){.optimizer = 0, .batch = 4}, 12,
                   (const char *const[]){ckpt, "batch 8", "batch 4"}, 3);
    expect_refused(ckpt, (setup_opts){.optimizer = 1}, 12, (const char *const[]){ckpt, "optimizer sgd", "optimizer adam"},
                   3);
    expect_refused(ckpt, (setup_opts){.optimizer = 0, .seed = 3}, 12, (const char *const[]){ckpt, "seed 0", "seed 3"}, 3);
    expect_refused(ckpt, (setup_opts){.optimizer = 0}, 20,
                   (const char *const[]){ckpt, "validation examples 12", "validation examples 20"}, 3);
    expect_refused(ckpt, (setup_opts){.src = other_src}, 12,
                   (const char *const[]){ckpt, "network tiny", "network other"}, 3);
    expect_refused(ckpt, (setup_opts){.src = wide_src}, 12,
                   (const char *const[]){ckpt, "dense_1.weight has shape [8,144]", "needs [9,144]"}, 3);
    /* a weights file is no checkpoint */
    fixture f;
    setup(&f, (setup_opts){0});
    cr_assert_eq(cnn_weights_save(f.w, path_in("plain.safetensors")), CNN_OK);
    teardown(&f);
    expect_refused(path_in("plain.safetensors"), (setup_opts){0}, 12,
                   (const char *const[]){"plain.safetensors", "not a cnnc checkpoint"}, 2);
}

Test(checkpoint, a_checkpoint_loads_as_weights)
{
    const char *ckpt = one_epoch_checkpoint("asw");
    rt_st_file *sf;
    char err[1024];
    cr_assert_eq(rt_st_read(&sf, ckpt, err, sizeof err), RT_ST_OK, "%s", err);
    cr_expect_not_null(rt_st_find(sf, "dense_1.weight.momentum_buffer"), "no optimiser state in the checkpoint");
    cr_expect_str_eq(rt_st_meta(sf, "format"), "cnnc-checkpoint");
    cr_expect_str_eq(rt_st_meta(sf, "epochs_done"), "1");
    cr_expect_str_eq(rt_st_meta(sf, "network"), "tiny");
    cr_expect_str_eq(rt_st_meta(sf, "optimizer"), "sgd");
    cr_expect_not_null(rt_st_meta(sf, "shuffle_state"));
    cr_expect_not_null(rt_st_meta(sf, "val_accuracy"));
    fixture f;
    setup(&f, (setup_opts){0});
    cr_expect_eq(cnn_weights_load(f.w, ckpt, false), CNN_OK, "%s", cnn_weights_errmsg(f.w));
    /* the weights are the checkpoint's */
    const char *name;
    float *x = cnn_weights_tensor(f.w, 0, &name, NULL, NULL);
    const rt_st_tensor *t = rt_st_find(sf, name);
    cr_assert_not_null(t);
    cr_expect_eq(memcmp(x, t->data, sizeof(float) * (size_t)t->numel), 0);
    /* optimiser-state keys outside a checkpoint, and other unknown keys in one, stay errors */
    rt_st_tensor ts[64];
    int n = 0;
    for (int i = 0; i < sf->count && n < 63; i++)
        ts[n++] = sf->tensors[i];
    cr_assert_eq(rt_st_write(path_in("noformat.safetensors"), n, ts, err, sizeof err), RT_ST_OK, "%s", err);
    cr_expect_eq(cnn_weights_load(f.w, path_in("noformat.safetensors"), false), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_weights_errmsg(f.w), "momentum_buffer") != NULL, "%s", cnn_weights_errmsg(f.w));
    float one = 1;
    ts[n++] = (rt_st_tensor){.name = "stray", .rank = 1, .dims = {1}, .data = &one};
    const char *keys[] = {"format"}, *vals[] = {"cnnc-checkpoint"};
    cr_assert_eq(rt_st_write_meta(path_in("stray.safetensors"), n, ts, 1, keys, vals, err, sizeof err), RT_ST_OK);
    cr_expect_eq(cnn_weights_load(f.w, path_in("stray.safetensors"), false), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_weights_errmsg(f.w), "unknown tensor stray") != NULL, "%s", cnn_weights_errmsg(f.w));
    rt_st_free(sf);
    teardown(&f);
}

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

typedef struct epoch_log {
    int n;
    cnn_train_epoch_info e[16];
} epoch_log;

static int log_epoch(const cnn_train_epoch_info *ei, void *user)
{
    epoch_log *l = user;
    if (l->n < 16)
        l->e[l->n++] = *ei;
    return 0;
}

Test(checkpoint, best_and_last_are_written_when_expected)
{
    fixture f;
    setup(&f, (setup_opts){0});
    cnn_train_options to;
    cnn_train_options_default(&to);
    epoch_log lg = {0};
    to.epochs = 4;
    to.on_epoch = log_epoch;
    to.user = &lg;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path_in("bl/new/deeper"));
    to.checkpoint_dir = dir; /* created with its parents */
    cnn_train_result res;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_assert_eq(lg.n, 4);
    cr_expect(lg.e[0].improved, "the first epoch is the best so far");
    int64_t best = 0;
    for (int k = 0; k < 4; k++) {
        cr_expect(lg.e[k].checkpointed);
        if (lg.e[k].improved)
            best = lg.e[k].epoch;
        cr_expect_eq(lg.e[k].best_epoch, best);
    }
    cr_expect_eq(res.best_epoch, best);
    rt_st_file *sf;
    char err[1024];
    cr_assert_eq(rt_st_read(&sf, path_in("bl/new/deeper/best.safetensors"), err, sizeof err), RT_ST_OK, "%s", err);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)best);
    cr_expect_str_eq(rt_st_meta(sf, "epochs_done"), want);
    rt_st_free(sf);
    cr_assert_eq(rt_st_read(&sf, path_in("bl/new/deeper/last.safetensors"), err, sizeof err), RT_ST_OK, "%s", err);
    cr_expect_str_eq(rt_st_meta(sf, "epochs_done"), "4");
    cr_expect_str_eq(rt_st_meta(sf, "epoch_step"), "0");
    rt_st_free(sf);
    cr_expect_eq(count_tmp_files(path_in("bl/new/deeper")), 0, "temporary files left behind");
    /* atomic replacement: a second run replaces last.safetensors (mode kept, no temporary left) */
    cr_assert_eq(chmod(path_in("bl/new/deeper/last.safetensors"), 0600), 0);
    to.epochs = 1;
    cr_assert_eq(cnn_train(f.s, f.train, f.test, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    struct stat sb;
    cr_assert_eq(stat(path_in("bl/new/deeper/last.safetensors"), &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600);
    cr_expect_eq(count_tmp_files(path_in("bl/new/deeper")), 0);
    teardown(&f);

    /* no validation or test set: last only */
    setup(&f, (setup_opts){0});
    snprintf(dir, sizeof dir, "%s", path_in("bl/notest"));
    to.checkpoint_dir = dir;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(access(path_in("bl/notest/last.safetensors"), F_OK), 0);
    cr_expect_neq(access(path_in("bl/notest/best.safetensors"), F_OK), 0);
    teardown(&f);
}

Test(checkpoint, a_bad_checkpoint_folder_is_an_error_before_the_first_step)
{
    fixture f;
    setup(&f, (setup_opts){0});
    FILE *file = fopen(path_in("afile"), "w");
    cr_assert_not_null(file);
    fclose(file);
    cnn_train_options to;
    stopper sp = {0};
    train_opts(&to, &sp, 1);
    char cdir[512];
    snprintf(cdir, sizeof cdir, "%s", path_in("afile"));
    to.checkpoint_dir = cdir;
    cr_expect_eq(cnn_train(f.s, f.train, f.test, &to, NULL), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_session_errmsg(f.s), "not a folder") != NULL, "%s", cnn_session_errmsg(f.s));
    snprintf(cdir, sizeof cdir, "%s", path_in("afile/sub"));
    cr_expect_eq(cnn_train(f.s, f.train, f.test, &to, NULL), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_session_errmsg(f.s), "cannot create the checkpoint folder") != NULL, "%s",
              cnn_session_errmsg(f.s));
    cr_assert_eq(mkdir(path_in("dirs"), 0755), 0);
    cr_assert_eq(mkdir(path_in("dirs/last.safetensors"), 0755), 0);
    snprintf(cdir, sizeof cdir, "%s", path_in("dirs"));
    cr_expect_eq(cnn_train(f.s, f.train, f.test, &to, NULL), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_session_errmsg(f.s), "is a folder") != NULL, "%s", cnn_session_errmsg(f.s));
    cr_expect_eq(sp.steps_seen, 0);
    teardown(&f);
}

static int count_steps(const cnn_train_step_info *si, void *user)
{
    (void)si;
    (*(int64_t *)user)++;
    return 0;
}

Test(checkpoint, validation_and_patience)
{
    fixture f;
    setup(&f, (setup_opts){0});
    cnn_train_options to;
    cnn_train_options_default(&to);
    epoch_log lg = {0};
    to.epochs = 3;
    to.val = 20;
    to.on_epoch = log_epoch;
    to.user = &lg;
    cnn_train_result res;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect(res.has_val);
    cr_expect(!res.has_test);
    cr_expect_eq(lg.e[0].steps, (NTRAIN - 20) / 8, "the held-out examples do not train");
    cr_expect(lg.e[0].has_val && lg.e[0].val_accuracy >= 0 && lg.e[0].val_accuracy <= 1);
    /* too many held out */
    to.val = NTRAIN;
    cr_expect_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_ERR_USAGE);
    to.val = NTRAIN - 4; /* 4 left, batch 8 */
    cr_expect_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(f.s), "left after --val") != NULL, "%s", cnn_session_errmsg(f.s));
    /* patience without anything to measure */
    to.val = 0;
    to.patience = 2;
    cr_expect_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_ERR_USAGE);
    teardown(&f);

    /* a rate too small to change the accuracy (and no batchnorm statistics): no epoch improves
     * on the first, so patience 2 stops after epoch 3 and the weights are epoch 1's again */
    setup(&f, (setup_opts){.src = other_src});
    cnn_session_set_lr(f.s, 1e-7);
    int64_t steps = 0;
    cnn_train_options_default(&to);
    to.epochs = 20;
    to.val = 20;
    to.patience = 2;
    to.on_step = count_steps;
    to.user = &steps;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path_in("pat"));
    to.checkpoint_dir = dir;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, &res), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect(res.early_stopped);
    cr_expect_eq(res.epochs, 3);
    cr_expect_eq(res.best_epoch, 1);
    cr_expect(res.restored_best);
    cr_expect_eq(steps, 3 * 10);
    cnn_weights *best;
    cr_assert_eq(cnn_weights_create(&best, f.m, 0), CNN_OK);
    cr_assert_eq(cnn_weights_load(best, path_in("pat/best.safetensors"), false), CNN_OK, "%s",
                 cnn_weights_errmsg(best));
    expect_same_weights(f.w, best, "restored best");
    cnn_weights_destroy(best);
    teardown(&f);
}

typedef struct lr_log {
    int n;
    double lr[64];
    int64_t steps_per_epoch, run_steps;
} lr_log;

static int log_lr(const cnn_train_step_info *si, void *user)
{
    lr_log *l = user;
    if (l->n < 64)
        l->lr[l->n++] = si->lr;
    l->steps_per_epoch = si->steps_per_epoch;
    l->run_steps = si->run_steps;
    return 0;
}

Test(checkpoint, the_schedule_sets_the_rate_of_every_step)
{
    fixture f;
    setup(&f, (setup_opts){0}); /* sgd lr 0.05, cosine with 1 warmup epoch */
    lr_log got = {0};
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = 3;
    to.on_step = log_lr;
    to.user = &got;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_assert_eq(got.n, 36);
    cr_expect_eq(got.run_steps, 36);
    cnn_train_config tc;
    cnn_model_train_config(f.m, &tc);
    tc.lr = 0.05;
    tc.schedule = CNN_SCHEDULE_COSINE;
    tc.warmup_epochs = 1;
    for (int t = 0; t < 36; t++)
        cr_expect_eq(got.lr[t], cnn_train_lr(&tc, t, 12, 36), "step %d: lr %.17g", t, got.lr[t]);
    cr_expect_float_eq(got.lr[0], 0.05 / 12, 1e-15);
    cr_expect_float_eq(got.lr[11], 0.05, 1e-15);
    cr_expect_lt(got.lr[35], got.lr[20]);
    /* a second call starts from the same base rate: the first left the session as it was */
    got.n = 0;
    to.epochs = 1;
    cr_assert_eq(cnn_train(f.s, f.train, NULL, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(f.s));
    cr_expect_float_eq(got.lr[0], 0.05 / 12, 1e-15);
    teardown(&f);
}

/* Rewrites checkpoint `from` to `to` with metadata key set to value. */
static void rewrite_meta(const char *from, const char *to, const char *key, const char *value)
{
    rt_st_file *sf;
    char err[1024];
    cr_assert_eq(rt_st_read(&sf, from, err, sizeof err), RT_ST_OK, "%s", err);
    const char *keys[64], *vals[64];
    int nm = 0;
    for (int i = 0; i < sf->nmeta && nm < 64; i++) {
        keys[nm] = sf->meta_keys[i];
        vals[nm] = strcmp(sf->meta_keys[i], key) == 0 ? value : sf->meta_values[i];
        nm++;
    }
    cr_assert_eq(rt_st_write_meta(to, sf->count, sf->tensors, nm, keys, vals, err, sizeof err), RT_ST_OK, "%s", err);
    rt_st_free(sf);
}

Test(checkpoint, broken_metadata_is_a_located_error)
{
    const char *ckpt = one_epoch_checkpoint("broken");
    char src[512];
    snprintf(src, sizeof src, "%s", ckpt);
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"epochs_done", "1000000000000000", "position is not one"},
        {"epoch_step", "99", "position is not one"},
        {"step", "-3", "not a non-negative integer"},
        {"batch", "eight", "'batch' is 'eight'"},
        {"shuffle", "maybe", "not true or false"},
        {"lr", "fast", "not a number"},
        {"version", "7", "version 7"},
        {"format", "something", "not a cnnc checkpoint"},
        {"shuffle_state", "12", "shuffle state"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rewrite_meta(src, path_in("bad.safetensors"), cases[k].key, cases[k].value);
        expect_refused(path_in("bad.safetensors"), (setup_opts){0}, 12,
                       (const char *const[]){"bad.safetensors", cases[k].want}, 2);
    }
}

/* ---- out of memory: every allocation of a resumed run with validation, patience and
 * checkpoints failed in turn comes back as CNN_ERR_NOMEM (or, failing the checkpoint's own
 * write or read, an error naming it), with everything freed */

static atomic_long calls, live;
static long fail_at;

static void *f_malloc(size_t n, void *ud)
{
    (void)ud;
    if (atomic_fetch_add(&calls, 1) + 1 == fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *f_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (atomic_fetch_add(&calls, 1) + 1 == fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        atomic_fetch_add(&live, 1);
    return q;
}

static void f_free(void *p, void *ud)
{
    (void)ud;
    if (p)
        atomic_fetch_sub(&live, 1);
    free(p);
}

Test(checkpoint, every_failed_allocation_is_reported)
{
    one_epoch_checkpoint("oom_src"); /* with best.safetensors beside it */
    char ckpt[512], dir[512];
    snprintf(ckpt, sizeof ckpt, "%s", path_in("oom_src/last.safetensors"));
    snprintf(dir, sizeof dir, "%s", path_in("oom_dst"));
    fixture f;
    setup(&f, (setup_opts){0});
    int stride = getenv("CNN_TEST_QUICK") ? 7 : 1;
    long k;
    for (k = 1;; k += stride) {
        cnn_train_options to;
        stopper sp = {0};
        train_opts(&to, &sp, 2);
        to.patience = 2;
        to.resume = ckpt;
        to.checkpoint_dir = dir;
        atomic_store(&calls, 0);
        atomic_store(&live, 0);
        fail_at = k;
        cnn_allocator a = {f_malloc, f_realloc, f_free, NULL};
        cnn_set_allocator(&a);
        cnn_train_result res;
        cnn_status st = cnn_train(f.s, f.train, f.test, &to, &res);
        cnn_set_allocator(NULL);
        cr_assert_eq(atomic_load(&live), 0, "failing allocation %ld: %ld blocks not freed (status %d: %s)", k, atomic_load(&live), st, cnn_session_errmsg(f.s));
        if (atomic_load(&calls) < k) {
            cr_assert_eq(st, CNN_OK, "no allocation failed, yet: %s", cnn_session_errmsg(f.s));
            break;
        }
        cr_assert(st == CNN_ERR_NOMEM || st == CNN_ERR_INPUT, "failing allocation %ld: status %d (%s)", k, st,
                  cnn_session_errmsg(f.s));
        const char *msg = cnn_session_errmsg(f.s);
        cr_assert(strstr(msg, "out of memory") != NULL || strstr(msg, "memory") != NULL,
                  "failing allocation %ld: '%s'", k, msg);
    }
    cr_expect_gt(k, 20, "only %ld allocations", k);
    teardown(&f);
}
