/* Data-parallel training under `mpirun -np 2` (tests/mpi/run.sh): the program hands the library
 * its own communicator (cnn_dist_set_comm) and checks
 *  - equality: for a network without batchnorm or dropout, 2 processes at batch B end with the
 *    weights one process reaches at batch 2B (shuffled, several epochs, sgd with momentum,
 *    adam, adamw with gradient clipping and label smoothing), within float rounding; the two replicas are bit for bit the same; the sharded test
 *    evaluation gives the one-process figures;
 *  - a second cnn_train on the same session (as after a resume) checks and copies rank 0's
 *    state again: it continues as one process does, and a process whose weights changed in
 *    between is refused;
 *  - a step that fails on one process (a bad label, a batch it could not fetch) fails on both,
 *    without a hang, without an update, with the message on the process that saw it; the next
 *    step works;
 *  - different weights or networks across processes are refused at the first step;
 *  - cnn_dist_check agrees on a status.
 * `test_mpi_dist --write-data DIR` (no mpirun) writes the IDX data folder run.sh uses;
 * `--compare A B` prints the largest difference between two of the network's weights files. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cnn.h"
#include "runtime/dist.h"

enum { SIDE = 12, NTRAIN = 100, NTEST = 30, CLASSES = 4, B = 8 };

static int rank, failures;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            fprintf(stderr, "rank %d: FAIL %s:%d: ", rank, __FILE__, __LINE__);                     \
            fprintf(stderr, __VA_ARGS__);                                                           \
            fprintf(stderr, "\n");                                                                  \
            failures++;                                                                             \
        }                                                                                           \
    } while (0)

static const char *net_src(int units)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "network tiny {\n"
             "    input image[1, %d, %d];\n"
             "    output logits = image -> conv2d(4, 3, pad=1) -> relu -> maxpool(2) -> flatten\n"
             "        -> dense(%d) -> relu -> dense(%d);\n"
             "}\n"
             "train tiny { loss = cross_entropy; optimizer = sgd(lr=0.05, momentum=0.9); batch = %d; epochs = 3; }\n",
             SIDE, SIDE, units, CLASSES, B);
    return buf;
}

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* An IDX split of n images: class c has rows 3c..3c+2 bright, over noise. */
static int write_split(const char *dir, const char *prefix, int n, uint32_t seed)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(path, "wb");
    if (!fi || !fl)
        return -1;
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)n), put_be32(fi, SIDE), put_be32(fi, SIDE);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)n);
    uint32_t x = seed;
    for (int i = 0; i < n; i++) {
        int c = i % CLASSES;
        for (int p = 0; p < SIDE * SIDE; p++) {
            x = x * 1664525u + 1013904223u;
            int v = (int)(x >> 26);
            if (p / SIDE >= 3 * c && p / SIDE < 3 * c + 3)
                v += 180;
            fputc(v, fi);
        }
        fputc(c, fl);
    }
    return fclose(fi) | fclose(fl);
}

static int write_data(const char *dir)
{
    mkdir(dir, 0755);
    return write_split(dir, "train", NTRAIN, 7) | write_split(dir, "t10k", NTEST, 11);
}

static cnn_model *compile(int units)
{
    cnn_model *m = NULL;
    const char *src = net_src(units);
    cnn_status st = cnn_model_compile(&m, "tiny.cnn", src, strlen(src), NULL);
    CHECK(st == CNN_OK, "compile: %s", cnn_model_errmsg(m));
    return m;
}

static float *flat_weights(cnn_weights *w, int64_t *n)
{
    int64_t total = 0;
    for (int i = 0; i < cnn_weights_count(w); i++) {
        int rk;
        int64_t d[CNN_WEIGHT_MAX_RANK], k = 1;
        cnn_weights_tensor(w, i, NULL, &rk, d);
        for (int j = 0; j < rk; j++)
            k *= d[j];
        total += k;
    }
    float *out = malloc(sizeof(float) * (size_t)total), *p = out;
    for (int i = 0; i < cnn_weights_count(w); i++) {
        int rk;
        int64_t d[CNN_WEIGHT_MAX_RANK], k = 1;
        const float *t = cnn_weights_tensor(w, i, NULL, &rk, d);
        for (int j = 0; j < rk; j++)
            k *= d[j];
        memcpy(p, t, sizeof(float) * (size_t)k);
        p += k;
    }
    *n = total;
    return out;
}

/* Trains from seed 1 at batch `batch`; returns the flattened weights and the result. */
static float *train(const char *dir, int optimizer, int64_t batch, int64_t *n, cnn_train_result *res)
{
    cnn_model *m = compile(16);
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *tr = NULL, *te = NULL;
    char err[1024];
    bool absent;
    CHECK(cnn_dataset_load(&tr, dir, "train", &absent, err, sizeof err) == CNN_OK, "%s", err);
    CHECK(cnn_dataset_load(&te, dir, "test", &absent, err, sizeof err) == CNN_OK, "%s", err);
    CHECK(cnn_weights_create(&w, m, 1) == CNN_OK, "weights");
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.batch = batch;
    if (optimizer == 1) {
        tc.optimizer = 1;
        tc.lr = 0.01;
    } else if (optimizer == 2) { /* clipping reads the averaged gradients: the global norm is P's */
        tc.optimizer = 2;
        tc.lr = 0.01;
        tc.clip_grad_norm = 0.5;
        tc.label_smoothing = 0.1;
    }
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    cnn_status st = cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc);
    CHECK(st == CNN_OK, "session: %s", cnn_session_errmsg(s));
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.seed = 5; /* shuffled */
    to.eval_batch = 7;
    st = cnn_train(s, tr, te, &to, res);
    CHECK(st == CNN_OK, "cnn_train: %s", cnn_session_errmsg(s));
    float *flat = flat_weights(w, n);
    cnn_session_destroy(s);
    cnn_dataset_destroy(tr);
    cnn_dataset_destroy(te);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return flat;
}

static void test_equality(const char *dir, int optimizer, double *worst)
{
    MPI_Comm world = MPI_COMM_WORLD;
    char err[256];
    CHECK(cnn_dist_set_comm(&world, err, sizeof err) == CNN_OK, "%s", err);
    CHECK(cnn_dist_size() == 2 && cnn_dist_rank() == rank, "size %d rank %d", cnn_dist_size(), cnn_dist_rank());
    int64_t n, n1;
    cnn_train_result rd, r1;
    float *wd = train(dir, optimizer, B, &n, &rd);
    CHECK(rd.steps == 3 * (NTRAIN / (2 * B)), "steps %lld", (long long)rd.steps);
    /* the replicas agree bit for bit */
    float *other = malloc(sizeof(float) * (size_t)n);
    MPI_Sendrecv(wd, (int)n, MPI_FLOAT, 1 - rank, 0, other, (int)n, MPI_FLOAT, 1 - rank, 0, world, MPI_STATUS_IGNORE);
    CHECK(memcmp(wd, other, sizeof(float) * (size_t)n) == 0, "the replicas' weights differ");
    free(other);
    CHECK(cnn_dist_set_comm(NULL, err, sizeof err) == CNN_OK && cnn_dist_size() == 1, "leaving");
    /* one process at batch 2B */
    float *w1 = train(dir, optimizer, 2 * B, &n1, &r1);
    CHECK(n == n1 && r1.steps == rd.steps, "sizes");
    double maxabs = 0, maxw = 0;
    for (int64_t i = 0; i < n && i < n1; i++) {
        double e = fabs((double)wd[i] - (double)w1[i]);
        maxabs = e > maxabs ? e : maxabs;
        maxw = fabs(w1[i]) > maxw ? fabs(w1[i]) : maxw;
    }
    double moved = 0; /* how far training moved the weights, so the error means something */
    if (rank == 0)
        printf("%s: %lld weights after %lld steps: worst |2 ranks at batch %d - 1 process at batch %d| = %.3g "
               "(largest weight %.3g); train loss %.6f vs %.6f, test loss %.6f vs %.6f, test accuracy %.4f vs %.4f\n",
               optimizer == 2 ? "adamw, clip_grad_norm 0.5, label smoothing 0.1" : optimizer ? "adam" : "sgd momentum", (long long)n, (long long)rd.steps, B, 2 * B, maxabs, maxw,
               rd.train_loss, r1.train_loss, rd.test_loss, r1.test_loss, rd.test_accuracy, r1.test_accuracy);
    (void)moved;
    CHECK(maxabs < 1e-4, "weights differ by %g", maxabs);
    CHECK(fabs(rd.test_loss - r1.test_loss) < 1e-4 && fabs(rd.test_accuracy - r1.test_accuracy) < 1e-9,
          "evaluation differs: %g %g", rd.test_loss, r1.test_loss);
    CHECK(fabs(rd.train_loss - r1.train_loss) < 1e-4, "train loss differs: %g %g", rd.train_loss, r1.train_loss);
    if (maxabs > *worst)
        *worst = maxabs;
    free(wd);
    free(w1);
}

/* Two cnn_train calls on one session (the second as a resume would: the weights and the
 * optimiser state carried over, a new seed): the same as one process at 2B doing the same; then
 * a process whose weights changed between the calls (another checkpoint) is refused. */
static float *train_twice(const char *dir, int64_t batch, bool perturb, cnn_status *second, int64_t *n)
{
    cnn_model *m = compile(16);
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *tr = NULL;
    char err[1024];
    bool absent;
    CHECK(cnn_dataset_load(&tr, dir, "train", &absent, err, sizeof err) == CNN_OK, "%s", err);
    CHECK(cnn_weights_create(&w, m, 1) == CNN_OK, "weights");
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.batch = batch;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    CHECK(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc) == CNN_OK, "%s", cnn_session_errmsg(s));
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = 1;
    to.seed = 5;
    CHECK(cnn_train(s, tr, NULL, &to, NULL) == CNN_OK, "first call: %s", cnn_session_errmsg(s));
    if (perturb) {
        int rk;
        int64_t d[CNN_WEIGHT_MAX_RANK];
        cnn_weights_tensor(w, 0, NULL, &rk, d)[0] += 1.0f;
    }
    to.seed = 6;
    *second = cnn_train(s, tr, NULL, &to, NULL);
    float *flat = flat_weights(w, n);
    cnn_session_destroy(s);
    cnn_dataset_destroy(tr);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return flat;
}

static void test_continue(const char *dir, double *worst)
{
    MPI_Comm world = MPI_COMM_WORLD;
    char err[256];
    cnn_dist_set_comm(&world, err, sizeof err);
    cnn_status st;
    int64_t n, n1;
    float *wd = train_twice(dir, B, false, &st, &n);
    CHECK(st == CNN_OK, "second call: %d", st);
    cnn_status refused;
    float *bad = train_twice(dir, B, rank == 1, &refused, &n);
    CHECK(refused == CNN_ERR_INPUT && cnn_dist_failed_elsewhere() == (rank == 1),
          "weights changed on rank 1 between the calls: status %d", refused);
    free(bad);
    cnn_dist_set_comm(NULL, err, sizeof err);
    float *w1 = train_twice(dir, 2 * B, false, &st, &n1);
    double maxabs = 0;
    for (int64_t i = 0; i < n && i < n1; i++)
        maxabs = fmax(maxabs, fabs((double)wd[i] - (double)w1[i]));
    if (rank == 0)
        printf("two cnn_train calls (continued state): worst difference %.3g\n", maxabs);
    CHECK(n == n1 && maxabs < 1e-4, "continued training differs by %g", maxabs);
    *worst = fmax(*worst, maxabs);
    free(wd);
    free(w1);
}

/* A session of batch B on the tiny network, in data-parallel mode. */
static void make(cnn_model **m, cnn_weights **w, cnn_session **s, int units, uint64_t seed)
{
    *m = compile(units);
    CHECK(cnn_weights_create(w, *m, seed) == CNN_OK, "weights");
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    CHECK(cnn_session_create(s, *m, *w, &o, B, CNN_MODE_TRAIN, NULL) == CNN_OK, "session: %s", cnn_session_errmsg(*s));
}

static void fill(cnn_session *s, float *labels, int bad)
{
    float *x = cnn_session_input(s, 0);
    for (int i = 0; i < B * SIDE * SIDE; i++)
        x[i] = (float)((i * 37 + rank * 11) % 17) / 17.0f;
    for (int i = 0; i < B; i++)
        labels[i] = (float)(i % CLASSES);
    if (bad)
        labels[3] = 99.0f;
}

static void test_step_failure(void)
{
    MPI_Comm world = MPI_COMM_WORLD;
    char err[256];
    cnn_dist_set_comm(&world, err, sizeof err);
    cnn_model *m;
    cnn_weights *w;
    cnn_session *s;
    make(&m, &w, &s, 16, 1);
    float labels[B], loss;
    int64_t correct;
    fill(s, labels, 0);
    CHECK(cnn_session_train_step(s, labels, true, &loss, &correct) == CNN_OK, "step 1: %s", cnn_session_errmsg(s));
    int64_t n;
    float *before = flat_weights(w, &n);
    fill(s, labels, rank == 1);
    cnn_status st = cnn_session_train_step(s, labels, true, &loss, &correct);
    CHECK(st == CNN_ERR_INPUT, "a bad label on rank 1: status %d on rank %d", st, rank);
    CHECK(cnn_dist_failed_elsewhere() == (rank == 0), "failed elsewhere on rank %d", rank);
    if (rank == 1)
        CHECK(strstr(cnn_session_errmsg(s), "label 99") != NULL, "message: %s", cnn_session_errmsg(s));
    else
        CHECK(strstr(cnn_session_errmsg(s), "process 1 of 2 failed") != NULL, "message: %s", cnn_session_errmsg(s));
    float *after = flat_weights(w, &n);
    CHECK(memcmp(before, after, sizeof(float) * (size_t)n) == 0, "a failed step changed the weights");
    fill(s, labels, 0);
    CHECK(cnn_session_train_step(s, labels, true, &loss, &correct) == CNN_OK, "the step after: %s",
          cnn_session_errmsg(s));
    CHECK(!cnn_dist_failed_elsewhere(), "flag cleared");
    /* rank 1 cannot even fetch its batch (the training loop's data path): it joins as failed */
    free(before);
    before = flat_weights(w, &n);
    st = rank == 1 ? rt_dist_fail_step(s, CNN_ERR_INPUT) : cnn_session_train_step(s, labels, true, &loss, &correct);
    CHECK(st == CNN_ERR_INPUT && cnn_dist_failed_elsewhere() == (rank == 0), "a failed fetch: %d", st);
    free(after);
    after = flat_weights(w, &n);
    CHECK(memcmp(before, after, sizeof(float) * (size_t)n) == 0, "a failed fetch changed the weights");
    CHECK(cnn_session_train_step(s, labels, true, &loss, &correct) == CNN_OK, "after the failed fetch: %s",
          cnn_session_errmsg(s));
    free(before);
    free(after);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    cnn_dist_set_comm(NULL, err, sizeof err);
}

static void test_mismatch(int units, uint64_t seed, const char *what)
{
    MPI_Comm world = MPI_COMM_WORLD;
    char err[256];
    cnn_dist_set_comm(&world, err, sizeof err);
    cnn_model *m;
    cnn_weights *w;
    cnn_session *s;
    make(&m, &w, &s, rank == 1 ? units : 16, rank == 1 ? seed : 1);
    float labels[B], loss;
    int64_t correct;
    fill(s, labels, 0);
    cnn_status st = cnn_session_train_step(s, labels, true, &loss, &correct);
    CHECK(st == CNN_ERR_INPUT, "%s: status %d", what, st);
    if (rank == 0) {
        CHECK(strstr(cnn_session_errmsg(s), what) != NULL, "message: %s", cnn_session_errmsg(s));
        printf("refused: %s\n", cnn_session_errmsg(s));
    }
    CHECK(cnn_dist_failed_elsewhere() == (rank != 0), "failed elsewhere");
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    cnn_dist_set_comm(NULL, err, sizeof err);
}

static void test_check(void)
{
    MPI_Comm world = MPI_COMM_WORLD;
    char err[256];
    cnn_dist_set_comm(&world, err, sizeof err);
    CHECK(cnn_dist_check(CNN_OK) == CNN_OK, "all fine");
    cnn_status st = cnn_dist_check(rank == 1 ? CNN_ERR_NOMEM : CNN_OK);
    CHECK(st == CNN_ERR_NOMEM && cnn_dist_failed_elsewhere() == (rank == 0), "one failed: %d", st);
    cnn_dist_set_comm(NULL, err, sizeof err);
}

/* --compare A B: the largest difference between two weights files of the tiny network. */
static int compare_files(const char *a, const char *b)
{
    cnn_model *m = compile(16);
    cnn_weights *wa = NULL, *wb = NULL;
    if (failures || cnn_weights_create(&wa, m, 1) != CNN_OK || cnn_weights_create(&wb, m, 1) != CNN_OK ||
        cnn_weights_load(wa, a, false) != CNN_OK || cnn_weights_load(wb, b, false) != CNN_OK) {
        fprintf(stderr, "cannot load %s and %s: %s %s\n", a, b, cnn_weights_errmsg(wa), cnn_weights_errmsg(wb));
        return 2;
    }
    int64_t n, nb;
    float *x = flat_weights(wa, &n), *y = flat_weights(wb, &nb);
    double worst = 0;
    for (int64_t i = 0; i < n && i < nb; i++)
        worst = fmax(worst, fabs((double)x[i] - (double)y[i]));
    printf("%.3g\n", worst);
    free(x), free(y);
    cnn_weights_destroy(wa), cnn_weights_destroy(wb);
    cnn_model_destroy(m);
    return n == nb ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-data") == 0)
        return write_data(argv[2]) == 0 ? 0 : 1;
    if (argc == 4 && strcmp(argv[1], "--compare") == 0)
        return compare_files(argv[2], argv[3]);
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "run with mpirun -np 2\n");
        MPI_Finalize();
        return 2;
    }
    char dir[256] = "";
    if (rank == 0) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/cnn_mpi_XXXXXX", tmp);
        if (!mkdtemp(dir) || write_data(dir) != 0)
            dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!dir[0]) {
        MPI_Finalize();
        return 1;
    }
    double worst = 0;
    test_equality(dir, 0, &worst);
    test_equality(dir, 1, &worst);
    test_equality(dir, 2, &worst);
    test_continue(dir, &worst);
    test_step_failure();
    test_mismatch(16, 2, "weights");
    test_mismatch(15, 1, "network");
    test_check();
    int all = 0;
    MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("worst weight error, 2 ranks at batch %d vs 1 process at batch %d: %.3g\n", B, 2 * B, worst);
        printf("%s (%d failure%s)\n", all ? "FAILED" : "passed", all, all == 1 ? "" : "s");
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
    }
    MPI_Finalize();
    return all ? 1 : 0;
}
