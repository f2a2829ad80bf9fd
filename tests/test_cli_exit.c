/* One command line per error class of spec section 8, pinned to its exit status: 0 success,
 * 1 bad input (source, data, weights; a network too large), 2 bad usage (flags, commands, a
 * --network the file lacks, a --batch too large where batch 1 fits).  Interrupts (130) are not
 * covered here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"
#include "tests/cli_util.h"
#include "tests/file_util.h"

TestSuite(cli_exit, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* %F: the fixtures folder, %E: the examples folder, %T: the test's temporary folder */
static void expand(char *out, size_t n, const char *in)
{
    const char *fx = getenv("CNN_FIXTURES"), *ex = getenv("CNN_EXAMPLES");
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < n; p++) {
        const char *sub = NULL;
        if (p[0] == '%' && p[1] == 'F')
            sub = fx ? fx : "tests/fixtures";
        else if (p[0] == '%' && p[1] == 'E')
            sub = ex ? ex : "examples";
        else if (p[0] == '%' && p[1] == 'T')
            sub = tmpdir;
        if (sub) {
            o += (size_t)snprintf(out + o, n - o, "%s", sub);
            p++;
        } else {
            out[o++] = *p;
        }
        if (o >= n)
            o = n - 1;
    }
    out[o] = '\0';
}

Test(cli_exit, one_command_line_per_error_class)
{
    write_text(tmp("bad.cnn"), "network n {\n    input x[1, 8, 8];\n    output y = x -> conv2d(-3, 5);\n}\n");
    write_text(tmp("short.safetensors"), "abc");
    /* 4 TB of dense weights: past the 1 TiB limit at any batch */
    write_text(tmp("big.cnn"), "network big { input x[1000000];\n output y = x -> dense(1000000); }\n");
    /* 512 MiB per example: fine at batch 1, 1.5 TiB of arena at batch 1024 */
    write_text(tmp("wide.cnn"), "network t {\n  input x[1, 134217728];\n  output y = x -> relu -> relu;\n}\n");
    /* an image output: cross_entropy cannot train it */
    write_text(tmp("img.cnn"), "network img { input x[1, 8, 8];\n output y = x -> conv2d(2, 3); }\n");
    static const struct {
        const char *what;
        int status;
        const char *args;
        const char *needle;
    } cases[] = {
        {"success", 0, "%E/lenet5.cnn", "61,706 parameters"},
        {"source error", 1, "%T/bad.cnn", "bad.cnn:3:28: error: conv2d: 'filters' must be a positive integer"},
        {"missing file", 1, "run %T/missing.cnn", "cannot open"},
        {"bad weights", 1, "run %E/lenet5.cnn -w %T/short.safetensors", "too short"},
        {"bad data folder", 1, "train %F/train_res.cnn --data %T/nodata", "cannot open the data folder"},
        {"too-large network", 1, "run %T/big.cnn", "the limit"},
        {"training an image output", 1, "emit %T/img.cnn --stage training", "cross_entropy needs a vector output"},
        {"bench: every configuration failed", 1, "bench %T/img.cnn --train --repeat 1", "every configuration failed"},
        {"bad flag", 2, "%E/lenet5.cnn --frobnicate", "unknown flag '--frobnicate'"},
        {"bad flag value", 2, "%E/lenet5.cnn --threads 0", "--threads takes an integer"},
        {"a flag of another command", 2, "run %E/lenet5.cnn --save %T/w.safetensors", "--save is not a flag of run"},
        {"unknown command", 2, "trian %E/lenet5.cnn", "unknown command 'trian'"},
        {"unknown network", 2, "%E/lenet5.cnn --network zz", "no network named 'zz'"},
        {"too-large batch", 2, "%T/wide.cnn --batch 1024", "arena of 1649267441664 bytes"},
        {"too many threads", 2, "--threads 1024 run %E/lenet5.cnn", "threads must be at most"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048], *out;
        expand(args, sizeof args, cases[i].args);
        int rc = run_cnnc(&out, args);
        cr_expect_eq(rc, cases[i].status, "%s: cnnc %s: exit %d, expected %d\n%s", cases[i].what, args, rc,
                     cases[i].status, out);
        cr_expect(strstr(out, cases[i].needle) != NULL, "%s: cnnc %s: output lacks \"%s\":\n%s", cases[i].what, args,
                  cases[i].needle, out);
        cr_expect(strstr(out, "runtime error") == NULL && strstr(out, "libgomp") == NULL, "%s", out);
        free(out);
    }
}

/* The library refuses a team OpenMP could not start, instead of libgomp ending the process. */
Test(cli_exit, absurd_thread_counts_are_refused_by_the_library)
{
    const char *src = "network t { input x[4];\n output y = x -> dense(3); }\n";
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cr_expect_geq(cnn_max_threads(), cnn_default_threads());
    cr_expect_leq(cnn_max_threads(), 256);
    cnn_options o;
    cnn_options_default(&o);
    const int counts[] = {cnn_max_threads() + 1, 1024, 1 << 30};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        o.threads = counts[i];
        cnn_session *s = NULL;
        cr_expect_eq(cnn_session_create(&s, m, w, &o, 1, CNN_MODE_INFER, NULL), CNN_ERR_USAGE, "threads %d", counts[i]);
        cr_expect(strstr(cnn_session_errmsg(s), "threads must be at most") != NULL, "%s", cnn_session_errmsg(s));
        cnn_session_destroy(s);
    }
    o.threads = cnn_max_threads();
    cnn_session *s = NULL;
    cr_expect_eq(cnn_session_create(&s, m, w, &o, 1, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    if (s)
        cr_expect_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* A train split of three 2x2 images with the given labels, in folder dir. */
static void write_tiny_idx(const char *dir, const unsigned char labels[3])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    test_put_be32(fi, 0x803), test_put_be32(fi, 3), test_put_be32(fi, 2), test_put_be32(fi, 2);
    test_put_be32(fl, 0x801), test_put_be32(fl, 3);
    const unsigned char px[12] = {0, 50, 100, 150, 200, 250, 10, 20, 30, 40, 60, 70};
    cr_assert_eq(fwrite(px, 1, sizeof px, fi), sizeof px);
    cr_assert_eq(fwrite(labels, 1, 3, fl), 3);
    fclose(fi);
    fclose(fl);
}

/* cnn_evaluate on its own: a label past the output's classes (cnn_dataset_check skipped) is an
 * error with a message, never a read past the output row. */
Test(cli_exit, evaluate_refuses_labels_past_the_output)
{
    const char *src = "network t { input x[1, 2, 2];\n output y = x -> flatten -> dense(3); }\n";
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, NULL, 2, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    const unsigned char bad[3] = {0, 200, 1}, good[3] = {0, 2, 1};
    char err[512];
    bool absent = false;
    cnn_dataset *d = NULL;
    cnn_eval_result r;
    for (int kind = 0; kind < 2; kind++) {
        write_tiny_idx(tmpdir, bad);
        cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
        cr_expect_eq(cnn_dataset_check(d, m, err, sizeof err), CNN_ERR_INPUT);
        cr_expect_eq(cnn_evaluate(s, d, kind, &r), CNN_ERR_INPUT);
        cr_expect(strstr(cnn_session_errmsg(s), "example 1 has label 200), but the network's output y has 3 values") != NULL, "%s",
                  cnn_session_errmsg(s));
        cnn_dataset_destroy(d);
        write_tiny_idx(tmpdir, good);
        cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
        cr_expect_eq(cnn_evaluate(s, d, kind, &r), CNN_OK, "%s", cnn_session_errmsg(s));
        cr_expect_eq(r.count, 3);
        cr_expect(isfinite(r.loss));
        cnn_dataset_destroy(d);
    }
    cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cr_expect_eq(cnn_evaluate(s, d, 7, &r), CNN_ERR_USAGE);
    cnn_dataset_destroy(d);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}
