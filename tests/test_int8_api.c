/* int8 and bf16 inference through the library: cnn_weights_quantize on a small network and
 * data set, the scales saved and loaded with the weights, int8 sessions (reference and oneDNN)
 * against fp32 within a bound from the scales, the layer table, and bad input: weights without
 * scales, zero / non-finite / misshapen scales, calibration data that do not fit. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "runtime/cnn.h"
#include "runtime/safetensors.h"

TestSuite(int8_api, .init = make_tmp, .fini = remove_tmp);

static const char *src =
    "network q { input x[1, 6, 6];\n"
    "  output y = x -> conv2d(4, 3, pad=1) -> conv2d(4, 3, pad=1) -> batchnorm -> relu -> maxpool(2) -> flatten\n"
    "             -> dense(8) -> relu -> dense(3); }\n";

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    cr_assert_eq(fwrite(b, 1, 4, f), 4);
}

/* n training images of side x side pixels in folder dir */
static void write_idx(const char *dir, int n, int side)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)n), put_be32(fi, (uint32_t)side), put_be32(fi, (uint32_t)side);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)n);
    for (int i = 0; i < n * side * side; i++) fputc((i * 37 + i / 7) % 256, fi);
    for (int i = 0; i < n; i++) fputc(i % 3, fl);
    fclose(fi);
    fclose(fl);
}

static cnn_model *model(void)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "q.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    return m;
}

/* Calibrated weights written to tmp("q.safetensors"); returns the dataset. */
static cnn_dataset *quantize(cnn_model *m, cnn_weights *w)
{
    write_idx(tmpdir, 40, 6);
    char err[1024];
    bool absent;
    cnn_dataset *d = NULL;
    cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cnn_quantize_report rep;
    cr_assert_eq(cnn_weights_quantize(w, m, d, NULL, 1000, &rep, err, sizeof err), CNN_OK, "%s", err);
    cr_expect_eq(rep.layers, 3);
    cr_expect_eq(rep.examples, 40);
    cr_assert_eq(cnn_weights_save(w, tmp("q.safetensors")), CNN_OK, "%s", cnn_weights_errmsg(w));
    return d;
}

static float *run_on(cnn_model *m, cnn_weights *w, cnn_precision p, cnn_backend b, const float *x, int64_t n,
                     cnn_status *st)
{
    cnn_options o;
    cnn_options_default(&o);
    o.precision = p;
    o.backend = b;
    o.threads = 1;
    cnn_session *s = NULL;
    *st = cnn_session_create(&s, m, w, &o, n, CNN_MODE_INFER, NULL);
    float *y = NULL;
    if (*st == CNN_OK) {
        memcpy(cnn_session_input(s, 0), x, sizeof(float) * (size_t)(n * 36));
        *st = cnn_session_run(s);
        cr_assert_eq(*st, CNN_OK, "%s", cnn_session_errmsg(s));
        y = malloc(sizeof(float) * (size_t)(n * 3));
        memcpy(y, cnn_session_output(s, 0), sizeof(float) * (size_t)(n * 3));
    }
    cnn_session_destroy(s);
    return y;
}

Test(int8_api, quantize_save_load_and_run)
{
    cnn_model *m = model();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
    cnn_dataset *d = quantize(m, w);
    /* a fresh store loads the file, scales included */
    cnn_weights *q = NULL;
    cr_assert_eq(cnn_weights_create(&q, m, 99), CNN_OK);
    cr_assert_eq(cnn_weights_load(q, tmp("q.safetensors"), false), CNN_OK, "%s", cnn_weights_errmsg(q));
    int64_t n = 16;
    float *x = malloc(sizeof(float) * (size_t)(n * 36)), lab[16];
    cnn_dataset_batch(d, NULL, 0, n, x, lab);
    cnn_status st;
    float *y32 = run_on(m, q, CNN_PRECISION_FP32, CNN_BACKEND_AUTO, x, n, &st);
    float *yref = run_on(m, q, CNN_PRECISION_INT8, CNN_BACKEND_REF, x, n, &st);
    float *ydnn = run_on(m, q, CNN_PRECISION_INT8, CNN_BACKEND_AUTO, x, n, &st);
    cr_assert(y32 && yref && ydnn);
    float range = 0;
    for (int i = 0; i < n * 3; i++) range = fmaxf(range, fabsf(y32[i]));
    /* 3 quantised layers of at most ~0.5% relative error each (127+ levels), and the rounding
     * of the output: 5% of the output range covers them with margin */
    for (int i = 0; i < n * 3; i++) {
        cr_expect(fabsf(yref[i] - y32[i]) <= 0.05f * range, "ref int8 %d: %g vs fp32 %g", i, yref[i], y32[i]);
        cr_expect(fabsf(ydnn[i] - yref[i]) <= 0.01f * range, "onednn int8 %d: %g vs ref %g", i, ydnn[i], yref[i]);
    }
    /* bf16: oneDNN on a CPU with avx512_bf16, else refused (never emulated) */
    float *yb = run_on(m, q, CNN_PRECISION_BF16, CNN_BACKEND_AUTO, x, n, &st);
    if (yb) {
        cr_expect(strstr(cnn_cpu_isa(), "bf16") != NULL);
        for (int i = 0; i < n * 3; i++) cr_expect(fabsf(yb[i] - y32[i]) <= 0.02f * range, "bf16 %d", i);
        free(yb);
    } else {
        cr_expect_eq(st, CNN_ERR_USAGE);
    }
    cr_expect_null(run_on(m, q, CNN_PRECISION_BF16, CNN_BACKEND_REF, x, n, &st));
    cr_expect_eq(st, CNN_ERR_USAGE);
    /* saving again keeps the scales */
    cr_assert_eq(cnn_weights_save(q, tmp("q2.safetensors")), CNN_OK);
    rt_st_file *f = NULL;
    char err[512];
    cr_assert_eq(rt_st_read(&f, tmp("q2.safetensors"), err, sizeof err), RT_ST_OK, "%s", err);
    cr_expect_not_null(rt_st_find(f, "conv2d_2.weight_scale"));
    cr_expect_null(rt_st_find(f, "conv2d_1.weight_scale")); /* fp32: not calibrated */
    cr_expect_not_null(rt_st_find(f, "dense_2.output_scale"));
    rt_st_free(f);
    /* the layer table */
    cnn_options o;
    cnn_options_default(&o);
    o.precision = CNN_PRECISION_INT8;
    char *text = NULL;
    cr_assert_eq(cnn_model_summary(m, &o, 1, false, &text), CNN_OK);
    /* conv2d_1 (1 input channel) stays fp32; conv2d_2 reads a signed tensor, dense_1 a relu's
     * and writes u8 for dense_2 */
    cr_expect(strstr(text, "int8 f32>s8, >f32") && strstr(text, "int8 f32>u8, >u8") && strstr(text, "int8 u8, >f32") &&
                  strstr(text, "fp32"), "%s", text);
    cnn_free(text);
    free(x), free(y32), free(yref), free(ydnn);
    cnn_dataset_destroy(d);
    cnn_weights_destroy(q);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* A copy of q.safetensors with tensor `name`'s first value set to v (or its shape cut to one
 * value less when shrink), written to `out`. */
static void doctor(const char *name, float v, bool shrink, const char *out)
{
    rt_st_file *f = NULL;
    char err[512];
    cr_assert_eq(rt_st_read(&f, tmp("q.safetensors"), err, sizeof err), RT_ST_OK, "%s", err);
    rt_st_tensor *ts = calloc((size_t)f->count, sizeof *ts);
    float *buf = NULL;
    for (int i = 0; i < f->count; i++) {
        ts[i] = f->tensors[i];
        if (strcmp(ts[i].name, name) == 0) {
            buf = malloc(sizeof(float) * (size_t)ts[i].numel);
            memcpy(buf, ts[i].data, sizeof(float) * (size_t)ts[i].numel);
            buf[0] = v;
            ts[i].data = buf;
            if (shrink) ts[i].dims[0]--;
        }
    }
    cr_assert_not_null(buf);
    cr_assert_eq(rt_st_write(out, f->count, ts, err, sizeof err), RT_ST_OK, "%s", err);
    free(buf);
    free(ts);
    rt_st_free(f);
}

Test(int8_api, bad_input_is_located)
{
    cnn_model *m = model();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
    cnn_dataset_destroy(quantize(m, w));
    cnn_weights *plain = NULL;
    cr_assert_eq(cnn_weights_create(&plain, m, 7), CNN_OK);
    float x[36] = {0};
    cnn_status st;
    /* no scales */
    cr_expect_null(run_on(m, plain, CNN_PRECISION_INT8, CNN_BACKEND_AUTO, x, 1, &st));
    cr_expect_eq(st, CNN_ERR_INPUT);
    /* zero, negative, NaN, inf, wrong shape: refused when loading, naming file and tensor */
    struct { const char *name; float v; bool shrink; const char *says; } bad[] = {
        {"conv2d_2.input_scale", 0.0f, false, "conv2d_2.input_scale[0] is 0"},
        {"dense_1.weight_scale", -1.0f, false, "dense_1.weight_scale[0] is -1"},
        {"dense_2.output_scale", NAN, false, "dense_2.output_scale[0] is nan"},
        {"conv2d_2.weight_scale", INFINITY, false, "conv2d_2.weight_scale[0] is inf"},
        {"conv2d_2.weight_scale", 1.0f, true, "the network needs [4]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doctor(bad[i].name, bad[i].v, bad[i].shrink, tmp("bad.safetensors"));
        cr_expect_eq(cnn_weights_load(plain, tmp("bad.safetensors"), false), CNN_ERR_INPUT);
        const char *msg = cnn_weights_errmsg(plain);
        cr_expect(strstr(msg, "bad.safetensors") && strstr(msg, bad[i].says), "%s", msg);
    }
    /* data that do not fit */
    write_idx(tmpdir, 10, 5);
    char err[1024];
    bool absent;
    cnn_dataset *d = NULL;
    cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cr_expect_eq(cnn_weights_quantize(w, m, d, NULL, 100, NULL, err, sizeof err), CNN_ERR_INPUT);
    cnn_dataset_destroy(d);
    /* training stays fp32 */
    cnn_options o;
    cnn_options_default(&o);
    o.precision = CNN_PRECISION_INT8;
    cnn_session *s = NULL;
    cr_expect_eq(cnn_session_create(&s, m, w, &o, 2, CNN_MODE_TRAIN, NULL), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(s), "training runs in fp32"), "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    char *text = NULL;
    cr_expect_eq(cnn_model_summary(m, &o, 1, true, &text), CNN_OK); /* the table of both plans */
    cnn_free(text);
    /* a training session makes the scales stale: they are dropped */
    o.precision = CNN_PRECISION_FP32;
    s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 2, CNN_MODE_TRAIN, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    float one[36] = {0};
    cr_expect_null(run_on(m, w, CNN_PRECISION_INT8, CNN_BACKEND_AUTO, one, 1, &st));
    cr_expect_eq(st, CNN_ERR_INPUT);
    cnn_weights_destroy(plain);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* The driver: quantize, then run and the layer table with --precision int8; exit statuses. */
Test(int8_api, cli)
{
    FILE *f = fopen(tmp("q.cnn"), "w");
    cr_assert_not_null(f);
    fputs(src, f);
    fclose(f);
    cnn_model *m = model();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cr_assert_eq(cnn_weights_save(w, tmp("w.safetensors")), CNN_OK);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    write_idx(tmpdir, 30, 6);
    char args[4096], *out = NULL;
    snprintf(args, sizeof args, "quantize %s -w %s --data %s -o %s --calibrate 20", tmp("q.cnn"), tmp("w.safetensors"),
             tmpdir, tmp("q.safetensors"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "quantized 3 conv/dense layers on 20 examples"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s -w %s --precision int8 --batch 2", tmp("q.cnn"), tmp("q.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s -w %s --precision int8", tmp("q.cnn"), tmp("w.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "w.safetensors: the weights have no conv2d_2.weight_scale"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "%s --precision int8", tmp("q.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "int8 f32>s8, >f32"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "quantize %s -w %s -o %s", tmp("q.cnn"), tmp("w.safetensors"), tmp("x.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s --precision int4", tmp("q.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
    write_idx(tmpdir, 30, 5); /* images that do not fit */
    snprintf(args, sizeof args, "quantize %s -w %s --data %s -o %s", tmp("q.cnn"), tmp("w.safetensors"), tmpdir,
             tmp("y.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    free(out);
}
