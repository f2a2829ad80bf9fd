/* Hostile sizes cannot corrupt memory: shapes, parameters, FLOPs and plans whose sizes
 * overflow or pass the limits of ops/checked.h are refused with located messages, through the
 * library and through `cnnc`, before anything is allocated.  Run under the sanitizer build too
 * (no "signed integer overflow"). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compiler/build.h"
#include "ops/checked.h"
#include "ops/registry.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"

#include "cli_util.h"

TestSuite(limits, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

/* Compiles src and expects CNN_ERR_INPUT with every needle in the message. */
static void expect_compile_error(const char *src, const char *needle1, const char *needle2)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL);
    const char *msg = cnn_model_errmsg(m);
    cr_expect_eq(st, CNN_ERR_INPUT, "status %d for\n%s\n%s", st, src, msg);
    cr_expect(strstr(msg, needle1) != NULL, "message lacks \"%s\":\n%s", needle1, msg);
    if (needle2)
        cr_expect(strstr(msg, needle2) != NULL, "message lacks \"%s\":\n%s", needle2, msg);
    cnn_model_destroy(m);
}

static void expect_cnnc(int code, const char *needle, const char *src, const char *extra)
{
    const char *path = tmp("t.cnn");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(src, f);
    fclose(f);
    char args[2048], *out;
    snprintf(args, sizeof args, "%s '%s'", extra, path);
    int rc = run_cnnc(&out, args);
    cr_expect_eq(rc, code, "cnnc %s: exit %d, expected %d\n%s", args, rc, code, out);
    cr_expect(strstr(out, needle) != NULL, "cnnc %s: output lacks \"%s\":\n%s", args, needle, out);
    cr_expect(strstr(out, "runtime error") == NULL, "%s", out);
    free(out);
}

#define DENSE_HUGE "network t {\n  input x[16];\n  output y = x -> dense(4611686018427387904);\n}\n"
#define CONV_PAD "network t {\n  input x[1, 4];\n  output y = x -> conv1d(1, 1, pad=2305843009213693952);\n}\n"
#define CONV_PAD2 "network t {\n  input x[1, 4];\n  output y = x -> conv1d(1, 1, pad=4611686018427387904);\n}\n"
#define INPUT_HUGE "network t {\n  input x[1, 4611686018427387905];\n  output y = x -> conv1d(4, 1);\n}\n"
#define CONV_OUT "network t {\n  input x[1, 549755813888];\n  output y = x -> conv1d(4096, 1);\n}\n"
/* 1 TiB per example: fine as shapes, not as memory */
#define PETA "network t {\n  input x[4, 524288, 524288];\n  output y = x -> relu -> relu;\n}\n"
/* 512 MiB values: 1.5 TiB of arena at batch 1024 */
#define ARENA "network t {\n  input x[1, 134217728];\n  output y = x -> relu -> relu;\n}\n"

Test(limits, a_huge_dense_weight_is_refused)
{
    expect_compile_error(DENSE_HUGE, "t.cnn:3:", "dense_1: weight of 4611686018427387904 x 16 elements is too large");
    expect_cnnc(1, "dense_1: weight of 4611686018427387904 x 16 elements is too large", DENSE_HUGE, "");
}

Test(limits, a_huge_pad_is_refused)
{
    expect_compile_error(CONV_PAD, "t.cnn:3:", "conv1d_1: output of 1 x 4611686018427387908 elements is too large");
    expect_compile_error(CONV_PAD2, "t.cnn:3:", "conv1d: output length is too large");
    expect_cnnc(1, "conv1d_1: output of 1 x 4611686018427387908 elements is too large", CONV_PAD, "");
    expect_cnnc(1, "conv1d: output length is too large", CONV_PAD2, "");
}

Test(limits, huge_inputs_and_outputs_are_refused)
{
    expect_compile_error(INPUT_HUGE, "t.cnn:2:", "x: input of 1 x 4611686018427387905 elements is too large");
    expect_compile_error(CONV_OUT, "t.cnn:3:", "conv1d_1: output of 4096 x 549755813888 elements is too large");
    expect_cnnc(1, "x: input of 1 x 4611686018427387905 elements is too large", INPUT_HUGE, "");
    expect_cnnc(1, "conv1d_1: output of 4096 x 549755813888 elements is too large", CONV_OUT, "");
}

/* Compiles src (which must compile) and tries a session at batch; expects CNN_ERR_INPUT and
 * the needle in its message. */
static void expect_session_error(const char *src, int64_t batch, const char *needle)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_session *s = NULL;
    cnn_status st = cnn_session_create(&s, m, w, NULL, batch, CNN_MODE_INFER, NULL);
    cr_expect_eq(st, CNN_ERR_INPUT, "status %d: %s", st, cnn_session_errmsg(s));
    cr_expect(strstr(cnn_session_errmsg(s), needle) != NULL, "message lacks \"%s\": %s", needle,
              cnn_session_errmsg(s));
    cnn_session_destroy(s);
    char *text = NULL;
    st = cnn_model_summary(m, NULL, batch, false, &text);
    cr_expect_eq(st, CNN_ERR_INPUT, "summary status %d", st);
    cr_expect_null(text);
    cr_expect(strstr(cnn_model_errmsg(m), needle) != NULL, "%s", cnn_model_errmsg(m));
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(limits, petabytes_of_activations_are_refused_with_their_size)
{
    expect_session_error(PETA, 1024, "x: 1024 x 4 x 524288 x 524288 floats need 4503599627370496 bytes (4.00 PiB)");
    expect_session_error(PETA, 1, "need 4398046511104 bytes (4.00 TiB); the limit is 1099511627776 bytes");
    expect_session_error(ARENA, 1024, "the activations need an arena of 1649267441664 bytes (1.50 TiB) at batch 1024");
    expect_cnnc(1, "(4.00 PiB)", PETA, "--batch 1024");
    expect_cnnc(2, "arena of 1649267441664 bytes (1.50 TiB)", ARENA, "--batch 1024");
    expect_cnnc(2, "arena of 1649267441664 bytes (1.50 TiB)", ARENA, "run --batch 1024");
}

/* 2^40 - 1 outputs of 2^39 multiply-adds each: the count saturates instead of wrapping */
Test(limits, flop_counts_saturate)
{
    const char *src = "network t {\n  input x[1, 549755813888];\n"
                      "  output y = x -> conv1d(1, 549755813888, pad=549755813887);\n}\n";
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    int64_t params = 0, flops = 0;
    ir_graph_totals(m->graph, &params, &flops);
    cr_expect_eq(flops, INT64_MAX);
    cr_expect_eq(params, ((int64_t)1 << 39) + 1);
    cnn_model_destroy(m);
}

/* The shape rules themselves, given shapes and attributes no compiler would make */
Test(limits, shape_rules_report_overflow)
{
    const op_def *d = op_def_get(OP_CONV1D);
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.conv = (op_conv_attrs){.sdims = 1, .filters = 4, .kernel = {1, 3}, .stride = {1, 1}, .pad = {0, INT64_MAX / 2},
                             .dilation = {1, 1}, .kernel_d = 1, .stride_d = 1, .dilation_d = 1, .groups = 1};
    op_shape in = {.rank = 2, .d = {1, INT64_MAX - 1}}, out;
    op_err e = {.msg = "", .arg = -1};
    cr_expect_eq(d->shape(&a, &in, 1, &out, &e), -1);
    cr_expect(strstr(e.msg, "output length is too large") != NULL, "%s", e.msg);
    a.conv.pad[1] = 0;
    a.conv.dilation[1] = INT64_MAX;
    cr_expect_eq(d->shape(&a, &in, 1, &out, &e), -1);
    op_shape big = {.rank = 3, .d = {INT64_MAX, 2, 3}};
    cr_expect_eq(op_shape_numel(&big), INT64_MAX);
    int64_t n = 0;
    cr_expect(!op_shape_numel_checked(&big, &n));
    cr_expect_eq(d->flops(&a, &big, 1, &big), 0); /* no output shape: nothing counted */
    const op_def *dense = op_def_get(OP_DENSE_BWD_WEIGHTS);
    op_attrs da = {.dense = {.units = INT64_MAX / 4}};
    op_shape two[2] = {{.rank = 1, .d = {INT64_MAX / 4}}, {.rank = 2, .d = {1 << 20, 1 << 20}}};
    cr_expect_eq(dense->flops(&da, two, 2, NULL), INT64_MAX);
}

Test(limits, checked_helpers)
{
    int64_t r;
    size_t z;
    cr_expect(!ck_mul_i64(INT64_MAX, 2, &r));
    cr_expect(ck_mul_i64(1 << 20, 1 << 20, &r) && r == (int64_t)1 << 40);
    cr_expect(!ck_add_i64(INT64_MAX, 1, &r));
    cr_expect(!ck_bytes((int64_t)1 << 40, (int64_t)1 << 24, 4, &z));
    cr_expect(ck_bytes((int64_t)1 << 40, 1024, 4, &z) && z == (size_t)1 << 52);
    cr_expect(!ck_bytes(-1, 1, 4, &z));
    cr_expect(!ck_align_up(SIZE_MAX - 3, 64, &z));
    cr_expect_eq(ck_sat_mul_i64(INT64_MAX, 3), INT64_MAX);
    cr_expect_eq(ck_sat_add_i64(INT64_MAX - 1, 5), INT64_MAX);
}
