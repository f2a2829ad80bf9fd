/* End-to-end tests of the `cnnc` command: every subcommand on good input, and bad input of
 * every kind (source, flags, weights, tensors, data) giving a clear message and the exit
 * status of spec section 8, never a crash. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cnn.h"

static char tmpdir[256];

static void make_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnc-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmp(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(cli, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

static const char *cnnc(void)
{
    const char *p = getenv("CNNC");
    return p ? p : "build/cnnc";
}

static const char *fx(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    const char *d = getenv("CNN_FIXTURES");
    snprintf(buf[k], sizeof buf[k], "%s/%s", d ? d : "tests/fixtures", name);
    return buf[k];
}

static const char *ex(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    const char *d = getenv("CNN_EXAMPLES");
    snprintf(buf[k], sizeof buf[k], "%s/%s.cnn", d ? d : "examples", name);
    return buf[k];
}

static const char *tmp(const char *name)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Runs cnnc with the arguments (a shell-quoted string); returns the exit status and the
 * combined output in *out (malloc'd). */
static int run(char **out, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", cnnc(), args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    cr_assert(WIFEXITED(st), "cnnc %s did not exit normally (status %d):\n%s", args, st, buf);
    return WEXITSTATUS(st);
}

#define EXPECT_RUN(code, needle, ...)                                                              \
    do {                                                                                           \
        char args_[8192], *out_;                                                                   \
        snprintf(args_, sizeof args_, __VA_ARGS__);                                                \
        int rc_ = run(&out_, args_);                                                               \
        cr_expect_eq(rc_, code, "cnnc %s: exit %d, expected %d; output:\n%s", args_, rc_, code, out_); \
        cr_expect(strstr(out_, needle) != NULL, "cnnc %s: output lacks \"%s\":\n%s", args_, needle, out_); \
        free(out_);                                                                                \
    } while (0)

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

Test(cli, help_version_and_usage_errors)
{
    EXPECT_RUN(0, "usage: cnnc", "--help");
    EXPECT_RUN(0, "cnnc 0.1.0", "--version");
    EXPECT_RUN(2, "no source file given", "%s", "");
    EXPECT_RUN(2, "unknown flag '--frobnicate'", "%s --frobnicate", ex("lenet5"));
    EXPECT_RUN(2, "--threads takes an integer", "%s --threads 0", ex("lenet5"));
    EXPECT_RUN(2, "--backend takes auto, native, onednn or ref, got 'gpu'", "%s --backend gpu", ex("lenet5"));
    EXPECT_RUN(2, "--batch needs a value", "run %s --batch", ex("lenet5"));
    EXPECT_RUN(2, "--batch takes an integer", "run %s --batch -3", ex("lenet5"));
    EXPECT_RUN(2, "cnnc train needs --data DIR", "train %s", ex("lenet5"));
    EXPECT_RUN(2, "cnnc eval needs --data DIR", "eval %s -w x", ex("lenet5"));
    EXPECT_RUN(2, "unknown --format", "emit %s --format svg", ex("lenet5"));
}

Test(cli, flag_forms_command_help_and_suggestions)
{
    /* --flag=value and --flag value */
    EXPECT_RUN(0, "epoch 2", "train %s --data=%s --epochs=2 --batch=2 --lr=0.01 --steps 8", fx("train_plain.cnn"),
               fx("train_plain_data"));
    EXPECT_RUN(2, "--epochs takes an integer", "train %s --data %s --epochs=0", fx("train_plain.cnn"), fx("train_plain_data"));
    EXPECT_RUN(2, "--no-shuffle takes no value", "train %s --data %s --no-shuffle=1", fx("train_plain.cnn"),
               fx("train_plain_data"));
    EXPECT_RUN(0, "fusions: 0", "%s -O0", ex("lenet5"));
    EXPECT_RUN(2, "-O takes 0, 1 or 2", "%s -O7", ex("lenet5"));
    /* a command's help: its usage and its flags from the table */
    EXPECT_RUN(0, "usage: cnnc train NET.cnn --data DIR", "train --help");
    EXPECT_RUN(0, "--epochs N", "train --help");
    EXPECT_RUN(0, "--log METRICS.csv", "train -h");
    EXPECT_RUN(0, "--stage STAGE", "emit --help");
    /* misspelt commands and flags */
    EXPECT_RUN(2, "unknown command 'trian'; did you mean 'train'?", "trian %s", ex("lenet5"));
    EXPECT_RUN(2, "unknown command 'evl'; did you mean 'eval'?", "evl");
    EXPECT_RUN(2, "unknown flag '--epoch'; did you mean '--epochs'?", "train %s --data %s --epoch 2",
               fx("train_plain.cnn"), fx("train_plain_data"));
    EXPECT_RUN(2, "unknown flag '--bacth'; did you mean '--batch'?", "run %s --bacth=3", ex("lenet5"));
    EXPECT_RUN(2, "unknown flag '--frobnicate'", "%s --frobnicate", ex("lenet5"));
    /* a diverging run says where, and exits 1 */
    EXPECT_RUN(1, "the loss became", "train %s --data %s --lr 1e30 --batch 2", fx("train_plain.cnn"),
               fx("train_plain_data"));
}

Test(cli, common_flags_before_the_command)
{
    /* cnnc [common flags] COMMAND ...: the same as after the command */
    EXPECT_RUN(0, "logits[1]", "--threads 2 run %s --batch 2", ex("lenet5"));
    EXPECT_RUN(0, "logits[2]", "--threads=1 --batch 3 --seed 4 run %s", ex("lenet5"));
    EXPECT_RUN(0, "\"batch\": 4, \"mode\": \"infer\", \"threads\": 1", "-O0 --threads 1 --batch 4 bench %s --repeat 1 --json",
               ex("lenet5"));
    EXPECT_RUN(0, "digraph", "-O1 emit %s --format dot", ex("lenet5"));
    EXPECT_RUN(0, "fusions: 0", "-O0 compile %s", ex("lenet5"));
    EXPECT_RUN(0, "usage: cnnc run NET.cnn", "--help run");
    /* flags with values that look like commands are values, not commands */
    EXPECT_RUN(2, "no network named 'run'", "--network run %s", ex("lenet5"));
    EXPECT_RUN(2, "unknown command 'trian'; did you mean 'train'?", "--threads 2 trian %s", ex("lenet5"));
    EXPECT_RUN(2, "--threads takes an integer", "--threads 0 run %s", ex("lenet5"));
    EXPECT_RUN(2, "unknown flag '--bacth'; did you mean '--batch'?", "--bacth 3 run %s", ex("lenet5"));
    /* a flag the command does not use is refused, before or after the command */
    EXPECT_RUN(2, "cnnc run: --epochs is not a flag of run (see cnnc run --help)", "--epochs 2 run %s", ex("lenet5"));
    EXPECT_RUN(2, "cnnc run: --save is not a flag of run (see cnnc run --help)", "run %s --save x.safetensors",
               ex("lenet5"));
    EXPECT_RUN(2, "cnnc compile: -w is not a flag of compile (see cnnc compile --help)", "%s -w x.safetensors",
               ex("lenet5"));
    EXPECT_RUN(2, "cnnc emit: --batch is not a flag of emit", "emit %s --batch 2", ex("lenet5"));
}

/* cnnc run NET -w W -i IN -o tmp(OUT) matches the PyTorch output file `want` within 2e-5. */
static void expect_run_matches(const char *net, const char *weights, const char *extra, const char *in,
                               const char *want_path)
{
    EXPECT_RUN(0, "logits[2]", "run %s -w %s %s -i %s -o %s", net, weights, extra, in, tmp("seq.npy"));
    float *got, *want;
    int rank, rank2;
    int64_t dims[8], dims2[8];
    char err[512];
    cr_assert_eq(cnn_npy_read(tmp("seq.npy"), &got, &rank, dims, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_npy_read(want_path, &want, &rank2, dims2, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(rank, 2);
    cr_assert_eq(rank2, 2);
    cr_assert_eq(dims[0], 3);
    cr_assert_eq(dims[1], 10);
    cr_assert_eq(dims2[0], 3);
    for (int i = 0; i < 30; i++)
        cr_expect(fabsf(got[i] - want[i]) <= 2e-5f, "%s: output %d is %g, PyTorch's %g", extra, i, got[i], want[i]);
    free(got);
    free(want);
}

Test(cli, weights_from_a_pytorch_sequential)
{
    /* the state_dict of an nn.Sequential twin of lenet5 (make_sequential.py): keys 0, 3, 7, 9,
     * 11 map by position to conv2d_1, conv2d_2, dense_1, dense_2, dense_3 (11 sorts after 9) */
    expect_run_matches(ex("lenet5"), fx("lenet5_seq.safetensors"), "", fx("lenet5_seq.in3.npy"),
                       fx("lenet5_seq.out3.npy"));
    /* the same by explicit prefix renames, applied in order ("1" then "11." is never reached) */
    expect_run_matches(ex("lenet5"), fx("lenet5_seq.safetensors"),
                       "--rename 11.=dense_3. --rename 0.=conv2d_1. --rename=3.=conv2d_2. --rename 7.=dense_1. "
                       "--rename 9.=dense_2.",
                       fx("lenet5_seq.in3.npy"), fx("lenet5_seq.out3.npy"));
    /* renames run before the positional rule: a "model." prefix removed, then by position */
    expect_run_matches(ex("lenet5"), fx("lenet5_seq.safetensors"), "--rename 0.=model.0. --rename model.=",
                       fx("lenet5_seq.in3.npy"), fx("lenet5_seq.out3.npy"));
    EXPECT_RUN(2, "--rename takes FROM=TO", "run %s -w %s --rename x", ex("lenet5"), fx("lenet5_seq.safetensors"));
    EXPECT_RUN(2, "--rename takes FROM=TO", "run %s -w %s --rename =x", ex("lenet5"), fx("lenet5_seq.safetensors"));
    /* a positional file for a network it does not fit: every shape named, by key */
    EXPECT_RUN(1, "conv2d_2.weight (key 3.weight) has shape [16,6,5,5], the network needs [8,8,3,3]", "run %s -w %s",
               fx("vgg_tiny.cnn"), fx("lenet5_seq.safetensors"));
    EXPECT_RUN(1, "keys mapped by position as an nn.Sequential state_dict's", "run %s -w %s", fx("vgg_tiny.cnn"),
               fx("lenet5_seq.safetensors"));
}

Test(cli, weights_mismatch_lists_every_problem)
{
    char *out, args[4096];
    snprintf(args, sizeof args, "run '%s' -w '%s'", fx("lenet5.cnn"), fx("bn_dense.safetensors"));
    int rc = run(&out, args);
    cr_expect_eq(rc, 1);
    const char *lines[] = {
        "bn_dense.safetensors: the tensors do not fit the network (4 missing, 6 of another shape, 8 unknown):\n",
        "\n  missing tensor conv2d_1.weight [6,1,5,5]\n",
        "\n  missing tensor conv2d_1.bias [6]\n",
        "\n  missing tensor conv2d_2.weight [16,6,5,5]\n",
        "\n  missing tensor conv2d_2.bias [16]\n",
        "\n  dense_1.weight has shape [16,90], the network needs [120,400]\n",
        "\n  dense_3.bias has shape [4], the network needs [10]\n",
        "\n  unknown tensor batchnorm_1.weight [16]: did you mean conv2d_2.bias?\n", /* same shape */
        "\n  unknown tensor batchnorm_2.bias [8]: did you mean conv2d_2.bias?\n",
        "\n  unknown tensor batchnorm_2.running_var [8]: did you mean conv2d_2.weight?\n",
        "\n  (--rename FROM=TO renames keys; --allow-extra ignores unknown ones)",
    };
    /* keys of another tool: each suggestion is the missing tensor of its shape and suffix */
    EXPECT_RUN(1, "unknown tensor features.0.weight (key conv2d_1.weight) [6,1,5,5]: did you mean conv2d_1.weight?\n"
                  "  unknown tensor features.0.bias (key conv2d_1.bias) [6]: did you mean conv2d_1.bias?\n"
                  "  unknown tensor fc.weight (key dense_3.weight) [10,84]: did you mean dense_3.weight?\n",
               "run %s -w %s --rename conv2d_1.=features.0. --rename dense_3.=fc.", fx("lenet5.cnn"), fx("lenet5.safetensors"));
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++)
        cr_expect(strstr(out, lines[k]), "no \"%s\" in:\n%s", lines[k], out);
    free(out);
    /* with --allow-extra only the missing and misshapen ones */
    EXPECT_RUN(1, "(4 missing, 6 of another shape):", "run %s -w %s --allow-extra", fx("lenet5.cnn"),
               fx("bn_dense.safetensors"));
    /* two keys renamed to one name */
    EXPECT_RUN(1, "keys conv2d_1.weight and conv2d_2.weight both give tensor conv2d_1.weight", "run %s -w %s --rename %s",
               fx("lenet5.cnn"), fx("lenet5.safetensors"), "conv2d_2.=conv2d_1.");
    /* a renamed unknown key names its key in the file */
    EXPECT_RUN(1, "unknown tensor x.weight (key conv2d_1.weight) [6,1,5,5]: did you mean conv2d_1.weight?",
               "run %s -w %s --rename conv2d_1.=x.", fx("lenet5.cnn"), fx("lenet5.safetensors"));
}

Test(cli, weights_load_opts_api)
{
    /* one problem: the one-line message */
    cnn_model *m = NULL, *m2 = NULL;
    const char *src = "network s { input image[1, 28, 28];\n output y = image -> conv2d(6, 5, pad=2); }\n";
    const char *src2 = "network s { input image[1, 28, 28];\n output y = image -> conv2d(6, 5, pad=2, bias=false); }\n";
    cr_assert_eq(cnn_model_compile(&m, "s.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cr_assert_eq(cnn_model_compile(&m2, "s2.cnn", src2, strlen(src2), NULL), CNN_OK, "%s", cnn_model_errmsg(m2));
    cnn_weights *w = NULL, *w2 = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cr_assert_eq(cnn_weights_create(&w2, m2, 2), CNN_OK);
    cr_assert_eq(cnn_weights_save(w, tmp("s.safetensors")), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_expect_eq(cnn_weights_load(w2, tmp("s.safetensors"), false), CNN_ERR_INPUT);
    char want[2048];
    snprintf(want, sizeof want,
             "%s: unknown tensor conv2d_1.bias: the network has no such weight (--allow-extra ignores it)",
             tmp("s.safetensors"));
    cr_expect_str_eq(cnn_weights_errmsg(w2), want);
    cr_expect_eq(cnn_weights_load(w2, tmp("s.safetensors"), true), CNN_OK, "%s", cnn_weights_errmsg(w2));
    /* renames through the API: the file's conv2d_1.* as c.*, renamed back */
    cnn_rename back[] = {{"c.", "conv2d_1."}}, away[] = {{"conv2d_1.", "c."}};
    cnn_load_options o;
    cnn_load_options_default(&o);
    cr_expect_eq(o.nrenames, 0);
    cr_expect(!o.allow_extra);
    o.renames = away;
    o.nrenames = 1;
    cr_expect_eq(cnn_weights_load_opts(w, tmp("s.safetensors"), &o), CNN_ERR_INPUT);
    cr_expect(strstr(cnn_weights_errmsg(w), "(2 missing, 2 unknown)"), "%s", cnn_weights_errmsg(w));
    cr_expect(strstr(cnn_weights_errmsg(w), "unknown tensor c.bias (key conv2d_1.bias) [6]: did you mean conv2d_1.bias?"),
              "%s", cnn_weights_errmsg(w));
    o.renames = back;
    cr_expect_eq(cnn_weights_load_opts(w, tmp("s.safetensors"), &o), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_expect_eq(cnn_weights_load_opts(w, tmp("s.safetensors"), NULL), CNN_OK, "%s", cnn_weights_errmsg(w));
    cnn_rename bad[] = {{"", "x"}};
    o.renames = bad;
    cr_expect_eq(cnn_weights_load_opts(w, tmp("s.safetensors"), &o), CNN_ERR_USAGE);
    cnn_weights_destroy(w);
    cnn_weights_destroy(w2);
    cnn_model_destroy(m);
    cnn_model_destroy(m2);
    /* a report longer than any fixed buffer: resnet20 given lenet5's weights names all 100+ */
    cr_assert_eq(cnn_model_load(&m, ex("resnet20"), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_expect_eq(cnn_weights_load(w, fx("lenet5.safetensors"), false), CNN_ERR_INPUT);
    const char *msg = cnn_weights_errmsg(w);
    cr_expect(strlen(msg) > 4096, "%zu", strlen(msg));
    cr_expect(strstr(msg, "\n  missing tensor batchnorm_21.running_var [64]\n"), "%s", msg);
    cr_expect(strstr(msg, "\n  dense_1.bias has shape [120], the network needs [10]\n"), "%s", msg);
    cr_expect(strstr(msg, "unknown tensor dense_3.weight [10,84]"), "%s", msg);
    /* a later success clears it */
    cr_expect_eq(cnn_weights_save(w, tmp("r.safetensors")), CNN_OK);
    cr_expect_eq(cnn_weights_load(w, tmp("r.safetensors"), false), CNN_OK);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(cli, compile_prints_the_table)
{
    EXPECT_RUN(0, "61,706 parameters", "%s", ex("lenet5"));
    EXPECT_RUN(0, "conv2d_1+relu_1+maxpool_1", "%s", ex("lenet5"));
    EXPECT_RUN(0, "planned arena", "%s --batch 64", ex("resnet20"));
    EXPECT_RUN(0, "memory (training, batch 8)", "%s --batch 8 --train", ex("resnet20"));
    EXPECT_RUN(0, "fusions: 0", "%s -O0", ex("lenet5"));
    EXPECT_RUN(0, "digraph", "emit %s --format dot", ex("resnet20"));
    EXPECT_RUN(0, "conv2d_1", "emit %s --stage optimized", ex("lenet5"));
    EXPECT_RUN(0, "sgd_update", "emit %s --stage training", ex("lenet5"));
}

Test(cli, bad_sources)
{
    EXPECT_RUN(1, "cannot open", "%s", tmp("missing.cnn"));
    write_text(tmp("bad.cnn"), "network n {\n    input x[1, 8, 8];\n    output y = x -> conv2d(-3, 5);\n}\n");
    EXPECT_RUN(1, "bad.cnn:3:28: error: conv2d: 'filters' must be a positive integer, got -3", "%s", tmp("bad.cnn"));
    write_text(tmp("shape.cnn"), "network n {\n    input x[1, 4, 4];\n    output y = x -> maxpool(8);\n}\n");
    EXPECT_RUN(1, "shape.cnn:3:21: error: maxpool", "%s", tmp("shape.cnn"));
    write_text(tmp("two.cnn"), "network a { input x[2]; output y = x -> relu; }\nnetwork b { input x[2]; output y = x; }\n");
    EXPECT_RUN(1, "--network", "%s", tmp("two.cnn"));
    EXPECT_RUN(2, "no network named 'c'", "%s --network c", tmp("two.cnn"));
    EXPECT_RUN(0, "network a", "%s --network a", tmp("two.cnn"));
    write_file(tmp("binary.cnn"), "\x00\xff\x7f{{{->", 9);
    EXPECT_RUN(1, "error", "%s", tmp("binary.cnn"));
}

Test(cli, run_matches_pytorch_and_writes_npy)
{
    EXPECT_RUN(0, "logits[6]", "run %s -w %s -i %s -o %s", fx("lenet5.cnn"), fx("lenet5.safetensors"), fx("lenet5.in7.npy"),
               tmp("out.npy"));
    float *got, *want;
    int rank, rank2;
    int64_t dims[8], dims2[8];
    char err[512];
    cr_assert_eq(cnn_npy_read(tmp("out.npy"), &got, &rank, dims, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_npy_read(fx("lenet5.out7.npy"), &want, &rank2, dims2, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(rank, 2);
    cr_assert_eq(dims[0], 7);
    cr_assert_eq(dims[1], 10);
    for (int i = 0; i < 70; i++)
        cr_expect_float_eq(got[i], want[i], 2e-5 + 1e-4 * (want[i] < 0 ? -want[i] : want[i]));
    free(got);
    free(want);
    /* a second output goes to OUT.NAME.npy */
    EXPECT_RUN(0, "time:", "run %s -w %s -i %s -o %s", fx("two_outputs.cnn"), fx("two_outputs.safetensors"),
               fx("two_outputs.in1.npy"), tmp("two.npy"));
    struct stat sb;
    cr_expect_eq(stat(tmp("two.aux.npy"), &sb), 0, "two.aux.npy was not written");
    /* random input, every example network */
    const char *nets[] = {"lenet5", "vgg_small", "resnet20", "signal1d", "alexnet", "resnet18", "vgg16"};
    size_t nnets = getenv("CNN_TEST_QUICK") ? 4 : sizeof nets / sizeof nets[0];
    for (size_t i = 0; i < nnets; i++)
        EXPECT_RUN(0, "logits[2]", "run %s --batch 3", ex(nets[i]));
}

Test(cli, bad_weights)
{
    EXPECT_RUN(1, "cannot open", "run %s -w %s", fx("lenet5.cnn"), tmp("none.safetensors"));
    write_file(tmp("short.safetensors"), "abc", 3);
    EXPECT_RUN(1, "too short", "run %s -w %s", fx("lenet5.cnn"), tmp("short.safetensors"));
    /* the weights of another network: missing tensors */
    EXPECT_RUN(1, "missing tensor conv2d_1.weight", "run %s -w %s", fx("lenet5.cnn"), fx("bn_dense.safetensors"));
    /* same names, other shapes */
    write_text(tmp("k3.cnn"), "network lenet5 { input image[1, 28, 28];\n output logits = image\n"
                              " -> conv2d(6, 3, pad=2) -> relu -> maxpool(2) -> conv2d(16, 5) -> relu -> maxpool(2)\n"
                              " -> flatten -> dense(120) -> relu -> dense(84) -> relu -> dense(10); }\n");
    EXPECT_RUN(1, "conv2d_1.weight has shape [6,1,5,5], the network needs [6,1,3,3]", "run %s -w %s", tmp("k3.cnn"),
               fx("lenet5.safetensors"));
    /* extra tensors: an error unless --allow-extra */
    write_text(tmp("small.cnn"), "network s { input image[1, 28, 28];\n output y = image -> conv2d(6, 5, pad=2); }\n");
    EXPECT_RUN(1, "unknown tensor", "run %s -w %s", tmp("small.cnn"), fx("lenet5.safetensors"));
    EXPECT_RUN(0, "time:", "run %s -w %s --allow-extra", tmp("small.cnn"), fx("lenet5.safetensors"));
    /* truncated data */
    FILE *f = fopen(fx("lenet5.safetensors"), "rb");
    cr_assert_not_null(f);
    char *buf = malloc(300000);
    size_t n = fread(buf, 1, 300000, f);
    fclose(f);
    write_file(tmp("trunc.safetensors"), buf, n - 100);
    free(buf);
    EXPECT_RUN(1, "trunc.safetensors", "run %s -w %s", fx("lenet5.cnn"), tmp("trunc.safetensors"));
}

Test(cli, bad_tensors)
{
    EXPECT_RUN(1, "cannot open", "run %s -i %s", fx("lenet5.cnn"), tmp("none.npy"));
    /* wrong shape: a [7,3,16,16] input for a [1,28,28] network */
    EXPECT_RUN(1, "does not fit the network's input [1, 28, 28]", "run %s -i %s", fx("lenet5.cnn"), fx("vgg_tiny.in7.npy"));
    /* wrong dtype and Fortran order, written by hand */
    const char hdr8[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 28, 28), }";
    char file[128 + 6272];
    memset(file, 0, sizeof file);
    memcpy(file, hdr8, sizeof hdr8 - 1);
    memset(file + sizeof hdr8 - 1, ' ', 128 - (sizeof hdr8 - 1));
    file[127] = '\n';
    write_file(tmp("f8.npy"), file, 128 + 6272);
    EXPECT_RUN(1, "'<f8' is not supported", "run %s -i %s", fx("lenet5.cnn"), tmp("f8.npy"));
    const char hdrf[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 28, 28), }";
    memset(file, 0, sizeof file);
    memcpy(file, hdrf, sizeof hdrf - 1);
    memset(file + sizeof hdrf - 1, ' ', 128 - (sizeof hdrf - 1));
    file[127] = '\n';
    write_file(tmp("fortran.npy"), file, 128 + 3136);
    EXPECT_RUN(1, "fortran_order is True", "run %s -i %s", fx("lenet5.cnn"), tmp("fortran.npy"));
    /* truncated: header says 28x28 but data is short */
    memcpy(file, hdrf, sizeof hdrf - 1);
    memcpy(file + 28, "False,", 6);
    write_file(tmp("short.npy"), file, 128 + 100);
    EXPECT_RUN(1, "short.npy", "run %s -i %s", fx("lenet5.cnn"), tmp("short.npy"));
    EXPECT_RUN(2, "holds 7 examples but --batch is 3", "run %s -i %s --batch 3", fx("lenet5.cnn"), fx("lenet5.in7.npy"));
}

Test(cli, train_save_eval_on_small_data)
{
    EXPECT_RUN(0, "test accuracy", "train %s --data %s -w %s --no-shuffle --save %s --log %s", fx("train_res.sgd.cnn"),
               fx("train_res_data"), fx("train_res.init.safetensors"), tmp("w.safetensors"), tmp("m.csv"));
    FILE *f = fopen(tmp("m.csv"), "r");
    cr_assert_not_null(f);
    char line[256];
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "kind,epoch,step,lr,loss,accuracy,images_per_s,time,val_loss,val_accuracy,test_loss,"
                           "test_accuracy\n");
    int steps = 0, epochs = 0;
    while (fgets(line, sizeof line, f)) {
        steps += strncmp(line, "step,", 5) == 0;
        epochs += strncmp(line, "epoch,", 6) == 0;
    }
    fclose(f);
    cr_expect_eq(steps, 3, "12 images at batch 4: 3 steps logged");
    cr_expect_eq(epochs, 1, "one epoch row");
    EXPECT_RUN(0, "test: loss", "eval %s -w %s --data %s", fx("train_res.sgd.cnn"), tmp("w.safetensors"),
               fx("train_res_data"));
    EXPECT_RUN(0, "epoch 2", "train %s --data %s --epochs 3 --steps 8 --batch 2 --lr 0.01", fx("train_plain.cnn"),
               fx("train_plain_data"));
}

Test(cli, bad_data)
{
    EXPECT_RUN(1, "cannot open the data folder", "train %s --data %s", fx("train_res.cnn"), tmp("nodata"));
    mkdir(tmp("empty"), 0755);
    EXPECT_RUN(1, "missing", "train %s --data %s", fx("train_res.cnn"), tmp("empty"));
    /* images that do not fit the network */
    EXPECT_RUN(1, "images are 8x8", "train %s --data %s", ex("lenet5"), fx("train_res_data"));
    /* a labels file with the images' magic number */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp %s/train-images-idx3-ubyte* '%s'/ && cp %s/train-images-idx3-ubyte '%s'/train-labels-idx1-ubyte 2>/dev/null || cp %s/train-images-idx3-ubyte.gz '%s'/train-labels-idx1-ubyte.gz",
             tmp("badlab"), fx("train_res_data"), tmp("badlab"), fx("train_res_data"), tmp("badlab"), fx("train_res_data"),
             tmp("badlab"));
    cr_assert_eq(system(cmd), 0);
    EXPECT_RUN(1, "bad magic number 0x00000803, expected 0x00000801", "train %s --data %s", fx("train_res.cnn"),
               tmp("badlab"));
    EXPECT_RUN(2, "larger than the 12 training examples", "train %s --data %s --batch 64", fx("train_res.cnn"),
               fx("train_res_data"));
}

Test(cli, bench_prints_a_table_and_json)
{
    EXPECT_RUN(0, "images/s", "bench %s --batch 4 --repeat 2", ex("lenet5"));
    EXPECT_RUN(0, "\"results\": [", "bench %s --batch 4 --repeat 2 --json --train", ex("lenet5"));
    EXPECT_RUN(0, "[min - max] ms", "bench %s --batch 4 --repeat 2", ex("lenet5"));
}

/* --only-o2: one row, the -O2 plan on the chosen backend, as bench/compare reads it. */
Test(cli, bench_only_o2_times_one_row)
{
    char args[1024], *out;
    snprintf(args, sizeof args, "bench %s --batch 2 --repeat 2 --threads 1 --backend native --only-o2 --json",
             ex("lenet5"));
    cr_assert_eq(run(&out, args), 0, "%s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cJSON *rows = cJSON_GetObjectItem(j, "results");
    cr_assert(cJSON_IsArray(rows) && cJSON_GetArraySize(rows) == 1, "%s", out);
    cJSON *r = cJSON_GetArrayItem(rows, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(r, "passes")->valuestring, "-O2");
    cr_expect_str_eq(cJSON_GetObjectItem(r, "backend")->valuestring, "native");
    cr_expect_gt(cJSON_GetObjectItem(r, "ms")->valuedouble, 0.0);
    cJSON_Delete(j);
    free(out);
}

/* --profile: every node of the -O2 training step, forward, backward and update, each with its
 * median inside its range, the shares summing to one; the JSON parses and names the machine. */
Test(cli, bench_profile_times_every_node)
{
    char args[1024], *out;
    snprintf(args, sizeof args, "bench %s --batch 4 --repeat 3 --threads 1 --train --profile --json", ex("lenet5"));
    cr_assert_eq(run(&out, args), 0, "%s", out);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %s", out);
    cr_expect(cJSON_IsString(cJSON_GetObjectItem(j, "cpu")) && cJSON_IsString(cJSON_GetObjectItem(j, "isa")) &&
              cJSON_IsString(cJSON_GetObjectItem(j, "cnnc_version")));
    cJSON *nodes = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "profile"), "nodes");
    cr_assert(cJSON_IsArray(nodes), "%s", out);
    double share = 0;
    bool phases[3] = {false, false, false};
    const char *names[3] = {"forward", "backward", "update"};
    bool conv1 = false;
    cJSON *n;
    cJSON_ArrayForEach(n, nodes)
    {
        cJSON *ms = cJSON_GetObjectItem(n, "ms");
        double lo = cJSON_GetObjectItem(ms, "min")->valuedouble, med = cJSON_GetObjectItem(ms, "median")->valuedouble,
               hi = cJSON_GetObjectItem(ms, "max")->valuedouble;
        cr_expect(lo <= med && med <= hi, "%g %g %g", lo, med, hi);
        share += cJSON_GetObjectItem(n, "share")->valuedouble;
        const char *ph = cJSON_GetObjectItem(n, "phase")->valuestring;
        for (int k = 0; k < 3; k++)
            phases[k] |= strcmp(ph, names[k]) == 0;
        conv1 |= strcmp(cJSON_GetObjectItem(n, "node")->valuestring, "conv2d_1") == 0;
    }
    cr_expect_gt(cJSON_GetArraySize(nodes), 20);
    cr_expect_float_eq(share, 1.0, 1e-3);
    cr_expect(phases[0] && phases[1] && phases[2]);
    cr_expect(conv1);
    cJSON_Delete(j);
    free(out);
    EXPECT_RUN(0, "profile: -O2 on auto", "bench %s --batch 4 --repeat 2 --profile", ex("lenet5"));
}

/* Counts the complete lines of a file (0 when it cannot be read). */
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

/* Starts a long `cnnc train` with --log and --save, sends sig once the log has a few steps and
 * checks the exit status, the message, the log's last line and the saved weights. */
static void interrupt_training(int sig, int want_status, const char *sig_name)
{
    char log[1024], save[1024], out[1024];
    snprintf(log, sizeof log, "%s", tmp(sig == SIGINT ? "int.csv" : "term.csv"));
    snprintf(save, sizeof save, "%s", tmp(sig == SIGINT ? "int.safetensors" : "term.safetensors"));
    snprintf(out, sizeof out, "%s", tmp(sig == SIGINT ? "int.out" : "term.out"));
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        FILE *o = freopen(out, "w", stdout);
        if (!o || dup2(fileno(stdout), 2) < 0)
            _exit(99);
        execl(cnnc(), cnnc(), "train", fx("train_plain.cnn"), "--data", fx("train_plain_data"), "--epochs", "1000000",
              "--batch", "4", "--lr", "0.01", "--threads", "1", "--log", log, "--save", save, (char *)NULL);
        _exit(98);
    }
    /* wait for the header and at least 5 steps (up to a minute) */
    int st;
    for (int i = 0; i < 600 && count_lines(log) < 6; i++) {
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "cnnc train ended early (status %d)", st);
        usleep(100000);
    }
    cr_assert_geq(count_lines(log), 6, "the log did not grow");
    cr_assert_eq(kill(pid, sig), 0);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char *msg = NULL;
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    /* the end of the output: a fast machine prints many epochs before the signal lands */
    size_t cap = 1 << 16;
    msg = calloc(cap, 1);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_eq(fseek(f, size > (long)cap - 1 ? size - ((long)cap - 1) : 0, SEEK_SET), 0);
    size_t got = fread(msg, 1, cap - 1, f);
    fclose(f);
    msg[got] = '\0';
    cr_assert(WIFEXITED(st), "cnnc train was killed by the signal (status %d):\n%s", st, msg);
    cr_expect_eq(WEXITSTATUS(st), want_status, "exit %d, expected %d:\n%s", WEXITSTATUS(st), want_status, msg);
    char want[64];
    snprintf(want, sizeof want, "interrupted by %s after step", sig_name);
    cr_expect(strstr(msg, want) != NULL, "no \"%s\" in:\n%s", want, msg);
    cr_expect(strstr(msg, "saved the weights as they are") != NULL, "%s", msg);
    free(msg);
    /* the log ends on a complete line of 12 fields */
    f = fopen(log, "rb");
    cr_assert_not_null(f);
    char *text = calloc(1 << 20, 1);
    size_t len = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    cr_assert_gt(len, 0);
    cr_expect_eq(text[len - 1], '\n', "the log ends mid-line");
    text[len - 1] = '\0';
    const char *last = strrchr(text, '\n');
    cr_assert_not_null(last);
    last++;
    int commas = 0;
    for (const char *p = last; *p; p++)
        commas += *p == ',';
    cr_expect_eq(commas, 11, "last line '%s'", last);
    long long epoch, step;
    double lr, loss, acc, ips;
    cr_expect_eq(sscanf(last + strcspn(last, ","), ",%lld,%lld,%lf,%lf,%lf,%lf", &epoch, &step, &lr, &loss, &acc, &ips), 6,
                 "last line '%s'", last);
    free(text);
    /* the saved weights load */
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, fx("train_plain.cnn"), NULL), CNN_OK);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cr_expect_eq(cnn_weights_load(w, save, false), CNN_OK, "%s", cnn_weights_errmsg(w));
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(cli, train_interrupted_by_sigint_and_sigterm)
{
    interrupt_training(SIGINT, 130, "SIGINT");
    interrupt_training(SIGTERM, 143, "SIGTERM");
}

/* Writes the weights of `net` (from `from`, or fresh from seed 0 when NULL) to `to`, after
 * setting element `at` of tensor `which` to v, or, when `at` is -1, every element of the last
 * two tensors (the last dense layer's weight and bias) to v. */
static void write_weights_with(const char *net, const char *from, const char *to, int which, int64_t at, float v)
{
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, net, NULL), CNN_OK);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    if (from)
        cr_assert_eq(cnn_weights_load(w, from, false), CNN_OK, "%s", cnn_weights_errmsg(w));
    int count = cnn_weights_count(w);
    for (int i = 0; i < count; i++) {
        const char *name;
        int rank;
        int64_t dims[CNN_WEIGHT_MAX_RANK], n = 1;
        float *data = cnn_weights_tensor(w, i, &name, &rank, dims);
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        if (at >= 0 && i == which)
            data[at] = v;
        else if (at < 0 && i >= count - 2) {
            cr_assert(strstr(name, "dense") != NULL, "%s", name);
            for (int64_t k = 0; k < n; k++)
                data[k] = v;
        }
    }
    cr_assert_eq(cnn_weights_save(w, to), CNN_OK, "%s", cnn_weights_errmsg(w));
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(cli, nonfinite_inputs_weights_outputs_and_losses)
{
    /* NaN and Inf in -i: named by input and index; --allow-nonfinite runs it */
    float *x;
    int rank;
    int64_t dims[8];
    char err[512];
    cr_assert_eq(cnn_npy_read(fx("lenet5.in1.npy"), &x, &rank, dims, err, sizeof err), CNN_OK, "%s", err);
    x[100] = NAN;
    cr_assert_eq(cnn_npy_write(tmp("nan.npy"), x, rank, dims, err, sizeof err), CNN_OK, "%s", err);
    x[100] = 0.5f;
    x[5] = -INFINITY;
    cr_assert_eq(cnn_npy_write(tmp("inf.npy"), x, rank, dims, err, sizeof err), CNN_OK, "%s", err);
    free(x);
    EXPECT_RUN(1, "input image[0, 0, 3, 16] (element 100) is NaN", "run %s -w %s -i %s", fx("lenet5.cnn"),
               fx("lenet5.safetensors"), tmp("nan.npy"));
    EXPECT_RUN(1, "input image[0, 0, 0, 5] (element 5) is -inf", "run %s -w %s -i %s", fx("lenet5.cnn"),
               fx("lenet5.safetensors"), tmp("inf.npy"));
    EXPECT_RUN(0, "logits[0]: class", "run %s -w %s -i %s --allow-nonfinite", fx("lenet5.cnn"),
               fx("lenet5.safetensors"), tmp("nan.npy"));

    /* NaN in -w: refused at load unless --allow-nonfinite (here relu drops the NaN) */
    write_weights_with(fx("lenet5.cnn"), fx("lenet5.safetensors"), tmp("nanw.safetensors"), 0, 7, NAN);
    EXPECT_RUN(1, "conv2d_1.weight holds a non-finite value (NaN) at index 7", "run %s -w %s", fx("lenet5.cnn"),
               tmp("nanw.safetensors"));
    EXPECT_RUN(0, "logits[0]: class", "run %s -w %s --allow-nonfinite", fx("lenet5.cnn"), tmp("nanw.safetensors"));
    /* ... and through the library's load options */
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, fx("lenet5.cnn"), NULL), CNN_OK);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
    cnn_load_options lo;
    cnn_load_options_default(&lo);
    cr_expect(!lo.allow_nonfinite);
    cr_expect_eq(cnn_weights_load_opts(w, tmp("nanw.safetensors"), &lo), CNN_ERR_INPUT);
    lo.allow_nonfinite = true;
    cr_expect_eq(cnn_weights_load_opts(w, tmp("nanw.safetensors"), &lo), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_expect(isnan(cnn_weights_tensor(w, 0, NULL, NULL, NULL)[7]));
    cnn_weights_destroy(w);
    cnn_model_destroy(m);

    /* finite weights (3e38) whose outputs overflow: an error naming the output and index */
    write_weights_with(fx("lenet5.cnn"), fx("lenet5.safetensors"), tmp("big.safetensors"), 0, -1, 3e38f);
    EXPECT_RUN(1, "output logits[0, 0] is inf", "run %s -w %s -i %s -o %s", fx("lenet5.cnn"), tmp("big.safetensors"),
               fx("lenet5.in1.npy"), tmp("big_out.npy"));
    struct stat sb;
    cr_expect_neq(stat(tmp("big_out.npy"), &sb), 0, "-o was written with non-finite outputs");
    EXPECT_RUN(0, "(inf)", "run %s -w %s -i %s --allow-nonfinite", fx("lenet5.cnn"), tmp("big.safetensors"),
               fx("lenet5.in1.npy"));

    /* eval: a non-finite test-set loss is an error, not a printed inf or nan */
    write_weights_with(fx("train_plain.cnn"), NULL, tmp("plain_big.safetensors"), 0, -1, 3e38f);
    char args[4096], *out;
    snprintf(args, sizeof args, "eval %s -w %s --data %s", fx("train_plain.cnn"), tmp("plain_big.safetensors"),
             fx("train_plain_data"));
    int rc = run(&out, args);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "error: the test-set loss is") != NULL && strstr(out, "not a finite number") != NULL, "%s",
              out);
    cr_expect(strstr(out, "test: loss") == NULL, "%s", out);
    free(out);
}

Test(cli, training_that_diverges_is_warned_about)
{
    /* no test split: the training accuracy is the one compared with chance (4 classes) */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp %s/train-* '%s'/", tmp("notest"), fx("train_plain_data"),
             tmp("notest"));
    cr_assert_eq(system(cmd), 0);
    EXPECT_RUN(0, "warning: training has diverged: after epoch 1 the training accuracy is 25.00%, chance level for 4 classes",
               "train %s --data %s --epochs 2 --batch 4 --lr 100 --no-shuffle", fx("train_plain.cnn"), tmp("notest"));
    /* a run that learns is not warned about */
    char args[4096], *out;
    snprintf(args, sizeof args, "train %s --data %s --epochs 20 --batch 4 --lr 0.05 --no-shuffle", fx("train_plain.cnn"),
             tmp("notest"));
    cr_expect_eq(run(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "warning") == NULL, "%s", out);
    free(out);
}
