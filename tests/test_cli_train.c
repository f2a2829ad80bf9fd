/* `cnnc train` with checkpoints, resume, --val and --patience, its output places checked
 * before training, Ctrl-C with a checkpoint; `cnnc eval`'s report (top-5, per class, the
 * confusion matrix); `cnnc plot` (a PNG of the requested size; bad CSVs located). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cnn.h"
#include "runtime/safetensors.h"
#include "tests/cli_util.h"

TestSuite(cli_train, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

static const char *fx(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    const char *d = getenv("CNN_FIXTURES");
    snprintf(buf[k], sizeof buf[k], "%s/%s", d ? d : "tests/fixtures", name);
    return buf[k];
}

static const char *cnnc(void)
{
    const char *c = getenv("CNNC");
    return c ? c : "build/cnnc";
}

#define EXPECT_RUN(code, needle, ...)                                                                  \
    do {                                                                                               \
        char args_[8192], *out_;                                                                       \
        snprintf(args_, sizeof args_, __VA_ARGS__);                                                    \
        int rc_ = run_cnnc(&out_, args_);                                                              \
        cr_expect_eq(rc_, code, "cnnc %s: exit %d, expected %d; output:\n%s", args_, rc_, code, out_); \
        cr_expect(strstr(out_, needle) != NULL, "cnnc %s: output lacks \"%s\":\n%s", args_, needle, out_); \
        free(out_);                                                                                    \
    } while (0)

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    fclose(f);
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 22;
    char *b = calloc(cap, 1);
    *len = fread(b, 1, cap - 1, f);
    fclose(f);
    return b;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The train_plain command with its data: 12 examples of 8x8, 4 classes, batch 4. */
#define PLAIN_FMT "train %s --data %s --batch 4 --lr 0.05 --threads 1"
#define PLAIN_ARGS fx("train_plain.cnn"), fx("train_plain_data")

Test(cli_train, help_lists_the_flags)
{
    EXPECT_RUN(0, "--checkpoint DIR", "train --help");
    EXPECT_RUN(0, "--resume CKPT", "train --help");
    EXPECT_RUN(0, "--val N", "train --help");
    EXPECT_RUN(0, "--patience N", "train --help");
    EXPECT_RUN(0, "cnnc plot METRICS.csv -o CURVES.png", "plot --help");
    EXPECT_RUN(0, "cnnc plot", "--help");
    EXPECT_RUN(2, "--checkpoint is not a flag of eval", "eval %s -w x --data y --checkpoint d", fx("train_plain.cnn"));
    EXPECT_RUN(2, "--val takes", "train %s --data %s --val 0", fx("train_plain.cnn"), fx("train_plain_data"));
}

Test(cli_train, output_places_are_checked_before_training)
{
    char args[4096], *out;
    /* --save in a folder that does not exist: nothing trains, no log is made */
    snprintf(args, sizeof args, "train %s --data %s --batch 4 --save %s --log %s", fx("train_plain.cnn"),
             fx("train_plain_data"), tmp("nowhere/w.safetensors"), tmp("m.csv"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "nowhere does not exist") != NULL, "%s", out);
    cr_expect(strstr(out, "epoch 1") == NULL, "it trained:\n%s", out);
    cr_expect_neq(access(tmp("m.csv"), F_OK), 0, "the log was made");
    free(out);
    mkdir(tmp("adir"), 0755);
    EXPECT_RUN(1, "is a folder", "train %s --data %s --batch 4 --save %s", fx("train_plain.cnn"), fx("train_plain_data"),
               tmp("adir"));
    EXPECT_RUN(1, "is a folder", "train %s --data %s --batch 4 --log %s", fx("train_plain.cnn"), fx("train_plain_data"),
               tmp("adir"));
    write_text(tmp("afile"), "x");
    EXPECT_RUN(1, "the checkpoint folder is not a folder", "train %s --data %s --batch 4 --checkpoint %s",
               fx("train_plain.cnn"), fx("train_plain_data"), tmp("afile"));
    /* a checkpoint folder that does not exist is made */
    EXPECT_RUN(0, "epoch 1", "train %s --data %s --batch 4 --epochs 1 --checkpoint %s", fx("train_plain.cnn"),
               fx("train_plain_data"), tmp("new/ck"));
    cr_expect_eq(access(tmp("new/ck/last.safetensors"), F_OK), 0);
    cr_expect_eq(access(tmp("new/ck/best.safetensors"), F_OK), 0);
    EXPECT_RUN(2, "-w cannot be given with it", "train %s --data %s --resume %s -w %s", fx("train_plain.cnn"),
               fx("train_plain_data"), tmp("new/ck/last.safetensors"), tmp("new/ck/last.safetensors"));
}

/* The "step" metadata of a checkpoint. */
static long long checkpoint_step(const char *path)
{
    rt_st_file *f;
    char err[512];
    cr_assert_eq(rt_st_read(&f, path, err, sizeof err), RT_ST_OK, "%s", err);
    const char *v = rt_st_meta(f, "step");
    cr_assert_not_null(v);
    long long step = atoll(v);
    rt_st_free(f);
    return step;
}

/* Sends sig to a long `cnnc train --checkpoint` once its log has a few steps: exit 128 + sig, the
 * checkpoint written and loadable, --save not written, the log whole; then resumes it. */
static void interrupt_with_checkpoint(int sig, const char *name)
{
    char log[1024], save[1024], out[1024], dir[1024];
    snprintf(log, sizeof log, "%s/%s.csv", tmpdir, name);
    snprintf(save, sizeof save, "%s/%s.safetensors", tmpdir, name);
    snprintf(out, sizeof out, "%s/%s.out", tmpdir, name);
    snprintf(dir, sizeof dir, "%s/%s.ck", tmpdir, name);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        FILE *o = freopen(out, "w", stdout);
        if (!o || dup2(fileno(stdout), 2) < 0)
            _exit(99);
        execl(cnnc(), cnnc(), "train", fx("train_plain.cnn"), "--data", fx("train_plain_data"), "--epochs", "1000000",
              "--batch", "4", "--lr", "0.01", "--threads", "1", "--log", log, "--save", save, "--checkpoint", dir,
              (char *)NULL);
        _exit(98);
    }
    int st;
    for (int i = 0; i < 600 && count_lines(log) < 8; i++) {
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "cnnc train ended early (status %d)", st);
        usleep(100000);
    }
    cr_assert_eq(kill(pid, sig), 0);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    size_t len;
    char *msg = read_text(out, &len);
    cr_assert_not_null(msg);
    cr_assert(WIFEXITED(st), "killed by the signal (status %d)", st);
    cr_expect_eq(WEXITSTATUS(st), 128 + sig);
    const char *tail = len > 2000 ? msg + len - 2000 : msg;
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, "interrupted by %s after step", name);
    cr_expect(strstr(tail, want_msg) != NULL, "%s", tail);
    cr_expect(strstr(tail, "wrote the checkpoint") != NULL, "%s", tail);
    free(msg);
    /* the checkpoint is there and loads as weights; --save waits for the end of training */
    char last[1100];
    snprintf(last, sizeof last, "%.1000s/last.safetensors", dir);
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, fx("train_plain.cnn"), NULL), CNN_OK);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_expect_eq(cnn_weights_load(w, last, false), CNN_OK, "%s", cnn_weights_errmsg(w));
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    cr_expect_neq(access(save, F_OK), 0, "--save was written mid-training");
    /* the log ends on a whole row, at the checkpoint's step */
    char *text = read_text(log, &len);
    cr_assert(text && len > 0);
    cr_expect_eq(text[len - 1], '\n', "the log ends mid-line");
    text[len - 1] = '\0';
    const char *lastrow = strrchr(text, '\n') + 1;
    long long epoch, step;
    char kind[16];
    cr_assert_eq(sscanf(lastrow, "%15[a-z],%lld,%lld,", kind, &epoch, &step), 3, "'%s'", lastrow);
    long long at = checkpoint_step(last);
    cr_expect_eq(step, at, "the log's last row is step %lld, the checkpoint's %lld", step, at);
    free(text);
    /* resume: five more steps, logged after the others */
    char args[8192], *o;
    snprintf(args, sizeof args, "train %s --data %s --epochs 1000000 --batch 4 --lr 0.01 --threads 1 --log %s "
             "--save %s --checkpoint %s --resume %s --steps %lld", fx("train_plain.cnn"), fx("train_plain_data"), log, save,
             dir, last, at + 5);
    cr_expect_eq(run_cnnc(&o, args), 0, "%s", o);
    free(o);
    cr_expect_eq(access(save, F_OK), 0);
    text = read_text(log, &len);
    char want[64];
    snprintf(want, sizeof want, "\nstep,%lld,%lld,", epoch + (at % 3 == 0), at + 1);
    cr_expect(strstr(text, want) != NULL, "no row '%s' after the resume", want + 1);
    cr_expect_eq(strstr(text + 1, "kind,epoch"), NULL, "a second header");
    free(text);
    cr_expect_eq(checkpoint_step(last), at + 5);
}

Test(cli_train, sigint_and_sigterm_write_the_checkpoint_and_resume_goes_on)
{
    interrupt_with_checkpoint(SIGINT, "SIGINT");
    interrupt_with_checkpoint(SIGTERM, "SIGTERM");
}

Test(cli_train, a_resume_of_another_setup_is_refused_and_writes_nothing)
{
    EXPECT_RUN(0, "epoch 2", PLAIN_FMT " --epochs 2 --checkpoint %s", PLAIN_ARGS, tmp("ck"));
    size_t l0, l1;
    char *before = read_text(tmp("ck/last.safetensors"), &l0);
    write_text(tmp("keep.csv"), "not to be touched\n");
    EXPECT_RUN(1, "the checkpoint was written with batch 4, this run has batch 2",
               "train %s --data %s --batch 2 --epochs 4 --resume %s --checkpoint %s --log %s", fx("train_plain.cnn"),
               fx("train_plain_data"), tmp("ck/last.safetensors"), tmp("ck"), tmp("keep.csv"));
    EXPECT_RUN(1, "seed 0, this run has seed 7", PLAIN_FMT " --epochs 4 --seed 7 --resume %s", PLAIN_ARGS, tmp("ck/last.safetensors"));
    /* the same network trained with adam */
    size_t ln;
    char *net = read_text(fx("train_plain.cnn"), &ln), src[8192];
    cr_assert_not_null(net);
    snprintf(src, sizeof src, "%s\ntrain train_plain { optimizer = adam(lr=0.001); }\n", net);
    free(net);
    write_text(tmp("adam.cnn"), src);
    EXPECT_RUN(1, "optimizer sgd, this run has optimizer adam", "train %s --data %s --batch 4 --epochs 4 --resume %s",
               tmp("adam.cnn"), fx("train_plain_data"), tmp("ck/last.safetensors"));
    char *after = read_text(tmp("ck/last.safetensors"), &l1);
    cr_expect(l0 == l1 && memcmp(before, after, l0) == 0, "the checkpoint changed");
    free(before);
    free(after);
    size_t lk;
    char *keep = read_text(tmp("keep.csv"), &lk);
    cr_expect_str_eq(keep, "not to be touched\n");
    free(keep);
    EXPECT_RUN(1, "cannot open", PLAIN_FMT " --resume %s", PLAIN_ARGS, tmp("nothere.safetensors"));
}

Test(cli_train, validation_and_patience)
{
    EXPECT_RUN(0, "val accuracy", PLAIN_FMT " --epochs 2 --val 4", PLAIN_ARGS);
    EXPECT_RUN(0, "(4 more held out for validation)", PLAIN_FMT " --epochs 1 --val 4", PLAIN_ARGS);
    EXPECT_RUN(2, "holds out every one of the 12 training examples", PLAIN_FMT " --val 12", PLAIN_ARGS);
    EXPECT_RUN(2, "left after --val", PLAIN_FMT " --val 10", PLAIN_ARGS);
    EXPECT_RUN(0, "early stop", PLAIN_FMT " --epochs 60 --val 4 --patience 1 --lr 0.000001 --save %s", PLAIN_ARGS, tmp("p.safetensors"));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp %s/train-* '%s'/", tmp("notest"), fx("train_plain_data"),
             tmp("notest"));
    cr_assert_eq(system(cmd), 0);
    EXPECT_RUN(2, "--patience needs a validation set", "train %s --data %s --batch 4 --patience 2", fx("train_plain.cnn"),
               tmp("notest"));
}

Test(cli_train, the_log_has_step_and_epoch_rows)
{
    EXPECT_RUN(0, "epoch 2", PLAIN_FMT " --epochs 2 --val 4 --log %s", PLAIN_ARGS, tmp("m.csv"));
    size_t len;
    char *text = read_text(tmp("m.csv"), &len);
    cr_assert_not_null(text);
    static const char header[] =
        "kind,epoch,step,lr,loss,accuracy,images_per_s,time,val_loss,val_accuracy,test_loss,test_accuracy\n";
    cr_expect(strncmp(text, header, strlen(header)) == 0, "%s", text);
    int steps = 0, epochs = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int commas = 0;
        for (char *p = line; *p; p++)
            commas += *p == ',';
        cr_expect_eq(commas, 11, "'%s'", line);
        if (strncmp(line, "step,", 5) == 0) {
            steps++;
            double lr;
            cr_expect_eq(sscanf(line, "step,%*d,%*d,%lf,", &lr), 1);
            cr_expect_float_eq(lr, 0.05, 1e-9);
            cr_expect(strstr(line, ",,,,") != NULL, "'%s'", line);
        } else if (strncmp(line, "epoch,", 6) == 0) {
            epochs++;
            cr_expect(strstr(line, ",,") == NULL, "an epoch row with validation and test lacks a value: '%s'", line);
        }
    }
    cr_expect_eq(steps, 4);
    cr_expect_eq(epochs, 2);
    free(text);
    /* --steps: the header says how many */
    EXPECT_RUN(0, "3 steps (epochs of 3 steps)", PLAIN_FMT " --epochs 5 --steps 3", PLAIN_ARGS);
}

/* An IDX folder of n 8x8 images with labels 0..9 (for a 10-class output). */
static void write_ten_class_data(const char *dir, const char *prefix, int n)
{
    mkdir(dir, 0755);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    unsigned char hi[16] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, 8, 0, 0, 0, 8};
    unsigned char hl[8] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    fwrite(hi, 1, 16, fi);
    fwrite(hl, 1, 8, fl);
    for (int i = 0; i < n; i++) {
        unsigned char img[64], lab = (unsigned char)(i % 10);
        for (int p = 0; p < 64; p++)
            img[p] = (unsigned char)(p == 3 * lab ? 255 : (p * 37 + i * 11) % 50);
        fwrite(img, 1, 64, fi);
        fwrite(&lab, 1, 1, fl);
    }
    fclose(fi);
    fclose(fl);
}

Test(cli_train, eval_reports_top5_per_class_and_the_confusion_matrix)
{
    write_text(tmp("ten.cnn"), "network ten { input image[1, 8, 8]; output logits = image -> flatten -> dense(10); }\n");
    write_ten_class_data(tmp("ten_data"), "train", 40);
    write_ten_class_data(tmp("ten_data"), "t10k", 20);
    EXPECT_RUN(0, "saved", "train %s --data %s --batch 8 --epochs 3 --lr 0.5 --save %s", tmp("ten.cnn"), tmp("ten_data"),
               tmp("ten.safetensors"));
    char args[4096], *out;
    snprintf(args, sizeof args, "eval %s -w %s --data %s", tmp("ten.cnn"), tmp("ten.safetensors"), tmp("ten_data"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "top-5 accuracy") != NULL, "%s", out);
    cr_expect(strstr(out, "per class:") != NULL, "%s", out);
    cr_expect(strstr(out, "confusion matrix (rows: the label, columns: the predicted class):") != NULL, "%s", out);
    /* every class has 2 test examples: the matrix's rows sum to 2 */
    const char *cm = strstr(out, "confusion matrix");
    cr_assert_not_null(cm);
    const char *row = strchr(strchr(cm, '\n') + 1, '\n') + 1; /* past the column numbers */
    for (int c = 0; c < 10; c++) {
        int label, sum = 0, v, used;
        const char *p = row;
        cr_assert_eq(sscanf(p, " %d%n", &label, &used), 1, "row %d: '%.60s'", c, p);
        cr_expect_eq(label, c);
        p += used;
        for (int k = 0; k < 10; k++) {
            cr_assert_eq(sscanf(p, " %d%n", &v, &used), 1);
            sum += v;
            p += used;
        }
        cr_expect_eq(sum, 2, "row %d sums to %d", c, sum);
        row = strchr(p, '\n') + 1;
    }
    free(out);
    /* four classes: no top-5 */
    EXPECT_RUN(0, "saved", PLAIN_FMT " --epochs 1 --save %s", PLAIN_ARGS, tmp("p.safetensors"));
    snprintf(args, sizeof args, "eval %s -w %s --data %s", fx("train_plain.cnn"), tmp("p.safetensors"),
             fx("train_plain_data"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "top-5") == NULL, "%s", out);
    cr_expect(strstr(out, "per class:") != NULL, "%s", out);
    free(out);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

Test(cli_train, plot_draws_a_png_of_the_requested_size)
{
    EXPECT_RUN(0, "epoch 3", PLAIN_FMT " --epochs 3 --val 4 --log %s", PLAIN_ARGS, tmp("m.csv"));
    char args[4096], *out;
    snprintf(args, sizeof args, "plot %s -o %s --width 640 --height 480", tmp("m.csv"), tmp("c.png"));
    int rc = run_cnnc(&out, args);
    if (rc == 1 && strstr(out, "built without PLplot")) {
        free(out);
        cr_skip_test("cnnc was built without PLplot");
    }
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    size_t len;
    unsigned char *png = (unsigned char *)read_text(tmp("c.png"), &len);
    cr_assert_not_null(png);
    cr_assert_gt(len, 33);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    cr_expect_eq(memcmp(png, sig, 8), 0, "no PNG signature");
    cr_expect_eq(memcmp(png + 12, "IHDR", 4), 0);
    cr_expect_eq(be32(png + 16), 640);
    cr_expect_eq(be32(png + 20), 480);
    free(png);
    /* a folder is no place for it; an existing image is replaced */
    mkdir(tmp("adir"), 0755);
    EXPECT_RUN(1, "is a folder", "plot %s -o %s", tmp("m.csv"), tmp("adir"));
    EXPECT_RUN(0, "drew", "plot %s -o %s", tmp("m.csv"), tmp("c.png"));
    png = (unsigned char *)read_text(tmp("c.png"), &len);
    cr_expect_eq(be32(png + 16), 1200, "the default width");
    free(png);
}

Test(cli_train, plot_refuses_bad_csvs_with_their_place)
{
    static const char header[] =
        "kind,epoch,step,lr,loss,accuracy,images_per_s,time,val_loss,val_accuracy,test_loss,test_accuracy\n";
    EXPECT_RUN(2, "-o CURVES.png", "plot %s", tmp("x.csv"));
    EXPECT_RUN(1, "cannot open", "plot %s -o %s", tmp("none.csv"), tmp("c.png"));
    write_text(tmp("empty.csv"), "");
    EXPECT_RUN(1, "empty.csv: error: empty", "plot %s -o %s", tmp("empty.csv"), tmp("c.png"));
    write_text(tmp("other.csv"), "a,b,c\n1,2,3\n");
    EXPECT_RUN(1, "other.csv:1: error: not a cnnc train --log CSV", "plot %s -o %s", tmp("other.csv"), tmp("c.png"));
    char text[2048];
    snprintf(text, sizeof text, "%sstep,1,1,0.1,1.0,0.5,100,0.1,,,,\nepoch,1,1,0.1,1.0\n", header);
    write_text(tmp("broken.csv"), text);
    EXPECT_RUN(1, "broken.csv:3: error: 5 fields, expected 12", "plot %s -o %s", tmp("broken.csv"), tmp("c.png"));
    snprintf(text, sizeof text, "%sepoch,1,1,0.1,abc,0.5,100,0.1,,,,\n", header);
    write_text(tmp("nan.csv"), text);
    EXPECT_RUN(1, "nan.csv:2: error: loss is 'abc', not a number", "plot %s -o %s", tmp("nan.csv"), tmp("c.png"));
    snprintf(text, sizeof text, "%sbatch,1,1,0.1,1,0.5,100,0.1,,,,\n", header);
    write_text(tmp("kind.csv"), text);
    EXPECT_RUN(1, "kind.csv:2: error: unknown row kind 'batch'", "plot %s -o %s", tmp("kind.csv"), tmp("c.png"));
    snprintf(text, sizeof text, "%sstep,1,1,0.1,1.0,0.5,100,0.1,,,,\n", header);
    write_text(tmp("steps.csv"), text);
    EXPECT_RUN(1, "no epoch rows", "plot %s -o %s", tmp("steps.csv"), tmp("c.png"));
    cr_expect_neq(access(tmp("c.png"), F_OK), 0, "an image was drawn from a bad CSV");
}
