/* int8 and bf16 through the library: cnn_weights_quantize on a small network and data set, the
 * scales saved and loaded with the weights, int8 sessions (reference and oneDNN) against fp32
 * within a bound from the scales, the layer table, bf16 training against fp32, and bad input:
 * weights without scales, zero / non-finite / misshapen scales, calibration data that do not fit,
 * int8 training, bf16 on a backend without bf16 kernels. */
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

/* Whether the native int8 convolution runs with AVX-512 VNNI here (few-channel convolutions
 * are then int8 under the automatic backend choice). */
static bool vnni(void) { return strstr(cnn_cpu_isa(), "avx512+vnni") != NULL; }

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

/* Calibrates w on 40 written 6x6 images, expecting `layers` int8 layers; returns the dataset. */
static cnn_dataset *calibrate(cnn_model *m, cnn_weights *w, int layers)
{
    write_idx(tmpdir, 40, 6);
    char err[1024];
    bool absent;
    cnn_dataset *d = NULL;
    cr_assert_eq(cnn_dataset_load(&d, tmpdir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cnn_quantize_report rep;
    cr_assert_eq(cnn_weights_quantize(w, m, d, NULL, 1000, &rep, err, sizeof err), CNN_OK, "%s", err);
    cr_expect_eq(rep.layers, layers);
    cr_expect_eq(rep.examples, 40);
    return d;
}

/* Calibrated weights written to tmp("q.safetensors"); returns the dataset. */
static cnn_dataset *quantize(cnn_model *m, cnn_weights *w)
{
    cnn_dataset *d = calibrate(m, w, 4); /* conv2d_1 (1 input channel) too: the native kernel may run it */
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

/* int8 on the reference and on auto (oneDNN) against fp32 for the first n examples of d (3
 * outputs each): the reference within ref_tol of the fp32 output range, oneDNN within 1% of it
 * from the reference (it rounds as the reference but for float ties).  Returns y32 and x (the
 * caller frees them) for further checks. */
static float *int8_against_fp32(cnn_model *m, cnn_weights *w, cnn_dataset *d, int64_t n, float ref_tol, float **xout)
{
    float *x = malloc(sizeof(float) * (size_t)(n * 36)), lab[64];
    cr_assert(x && n <= 64);
    cnn_dataset_batch(d, NULL, 0, n, x, lab);
    cnn_status st;
    float *y32 = run_on(m, w, CNN_PRECISION_FP32, CNN_BACKEND_AUTO, x, n, &st);
    float *yref = run_on(m, w, CNN_PRECISION_INT8, CNN_BACKEND_REF, x, n, &st);
    float *ydnn = run_on(m, w, CNN_PRECISION_INT8, CNN_BACKEND_AUTO, x, n, &st);
    cr_assert(y32 && yref && ydnn);
    float range = 0;
    for (int i = 0; i < n * 3; i++) range = fmaxf(range, fabsf(y32[i]));
    for (int i = 0; i < n * 3; i++) {
        cr_expect(fabsf(yref[i] - y32[i]) <= ref_tol * range, "ref int8 %d: %g vs fp32 %g", i, yref[i], y32[i]);
        cr_expect(fabsf(ydnn[i] - yref[i]) <= 0.01f * range, "onednn int8 %d: %g vs ref %g", i, ydnn[i], yref[i]);
    }
    free(yref), free(ydnn);
    *xout = x;
    return y32;
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
    float *x;
    /* 3 quantised layers of at most ~0.5% relative error each (127+ levels), and the rounding
     * of the output: 5% of the output range covers them with margin */
    float *y32 = int8_against_fp32(m, q, d, n, 0.05f, &x);
    cnn_status st;
    float range = 0;
    for (int i = 0; i < n * 3; i++) range = fmaxf(range, fabsf(y32[i]));
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
    cr_expect_not_null(rt_st_find(f, "conv2d_1.weight_scale")); /* calibrated for the native backend */
    cr_expect_not_null(rt_st_find(f, "dense_2.output_scale"));
    rt_st_free(f);
    /* the layer table */
    cnn_options o;
    cnn_options_default(&o);
    o.precision = CNN_PRECISION_INT8;
    char *text = NULL;
    cr_assert_eq(cnn_model_summary(m, &o, 1, false, &text), CNN_OK);
    /* conv2d_1 (1 input channel) is int8 on the native backend where it has AVX-512 VNNI, fp32
     * elsewhere; conv2d_2 reads a signed tensor (converted by conv2d_1 or itself: s8 between
     * the two when both are int8 and plain), dense_1 a relu's and writes u8 for dense_2 */
    cr_expect(strstr(text, "int8 f32>s8") && strstr(text, "int8 f32>u8, >u8") && strstr(text, "int8 u8, >f32"),
              "%s", text);
    const char *c1 = strstr(text, "conv2d_1 ");
    cr_assert_not_null(c1);
    if (vnni())
        cr_expect(strstr(c1, "native   int8 f32>s8") && strstr(c1, "native   int8 f32>s8") < strchr(c1, '\n'), "%s",
                  text);
    else
        cr_expect(strstr(c1, "fp32") && strstr(c1, "fp32") < strchr(c1, '\n'), "%s", text);
#ifdef CNN_HAVE_ONEDNN
    o.backend = CNN_BACKEND_ONEDNN; /* oneDNN's int8 is slow there: fp32 */
    cnn_free(text);
    cr_assert_eq(cnn_model_summary(m, &o, 1, false, &text), CNN_OK);
    c1 = strstr(text, "conv2d_1 ");
    cr_assert_not_null(c1);
    cr_expect(strstr(c1, "fp32") && strstr(c1, "fp32") < strchr(c1, '\n'), "%s", text);
#endif
    cnn_free(text);
    free(x), free(y32);
    cnn_dataset_destroy(d);
    cnn_weights_destroy(q);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* Residual blocks in int8: the block outputs stay u8 between the blocks and the fused adds read
 * them as bytes; every kind of residual appears: an f32 one (the stem's, fp32 without the native
 * VNNI kernel) quantised into a u8 output, u8 into u8, s8 (a projection without activation) into u8, and u8 into the f32
 * output the global average pool reads.  oneDNN agrees with the int8 reference, and both with
 * fp32 within the quantisation's error. */
Test(int8_api, residual_blocks_in_int8)
{
    static const char *rsrc =
        "block basic(w) { y = in -> conv2d(w, 3, pad=1) -> relu -> conv2d(w, 3, pad=1); return (y + in) -> relu; }\n"
        "block down(w) { y = in -> conv2d(w, 3, stride=2, pad=1) -> relu -> conv2d(w, 3, pad=1);\n"
        "  s = in -> conv2d(w, 1, stride=2); return (y + s) -> relu; }\n"
        "network r { input x[1, 6, 6];\n"
        "  output y = x -> conv2d(4, 3, pad=1) -> relu -> basic(4) -> basic(4) -> down(8) -> basic(8)\n"
        "             -> global_avgpool -> dense(3); }\n";
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "r.cnn", rsrc, strlen(rsrc), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
    cnn_dataset *d = calibrate(m, w, 11); /* the stem too */
    cnn_options o;
    cnn_options_default(&o);
    o.precision = CNN_PRECISION_INT8;
    char *text = NULL;
    cr_assert_eq(cnn_model_summary(m, &o, 1, false, &text), CNN_OK);
    /* the stem (1 input channel) is int8 where the native VNNI kernel runs it: its output is then
     * an f32 residual only when a reorder comes between (channels-last oneDNN convolutions) */
    const char *stem = strstr(text, "conv2d_1 ");
    cr_assert_not_null(stem);
    bool stem_int8 = strstr(stem, "int8") && strstr(stem, "int8") < strchr(stem, '\n');
    cr_expect((stem_int8 || strstr(text, "int8 u8 +f32>u8, >u8")) && strstr(text, "int8 u8 +u8, >u8") &&
                  strstr(text, "int8 u8 +s8, >u8") && strstr(text, "int8 u8 +u8>f32, >f32") && strstr(text, ">s8"),
              "%s", text);
    cnn_free(text);
    /* 9 quantised layers (10 with the stem) and their residuals: 10% of the output range covers
     * their error */
    float *x, *y32 = int8_against_fp32(m, w, d, 16, 0.10f, &x);
    free(x), free(y32);
    cnn_dataset_destroy(d);
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

/* One training session of precision p (threads 1, sgd lr 0.05 momentum 0.9) on fresh weights of
 * seed 3, `steps` steps on a fixed batch of 8; the losses into loss[], the weights returned. */
static cnn_weights *train_on(cnn_model *m, cnn_precision p, cnn_backend b, int steps, float *loss, cnn_status *st,
                             char *msg, size_t msglen)
{
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    o.precision = p;
    o.backend = b;
    o.threads = 1;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.batch = 8, tc.optimizer = 0, tc.lr = 0.05, tc.momentum = 0.9;
    cnn_session *s = NULL;
    *st = cnn_session_create(&s, m, w, &o, 8, CNN_MODE_TRAIN, &tc);
    snprintf(msg, msglen, "%s", cnn_session_errmsg(s));
    if (*st == CNN_OK) {
        float *x = cnn_session_input(s, 0);
        for (int i = 0; i < 8 * 36; i++) x[i] = (float)((i * 37 + i / 7) % 256) / 255.0f;
        float labels[8];
        for (int i = 0; i < 8; i++) labels[i] = (float)(i % 3);
        for (int k = 0; k < steps && *st == CNN_OK; k++)
            *st = cnn_session_train_step(s, labels, true, &loss[k], NULL);
    }
    cnn_session_destroy(s);
    return w;
}

/* bf16 training: over the first steps the losses follow fp32's closely and the weights end near
 * fp32's but not equal to them (the arithmetic was bf16; later the two trajectories drift apart,
 * as any two roundings do); the loss falls; the reference and native backends refuse it. */
Test(int8_api, bf16_training_tracks_fp32)
{
    cnn_model *m = model();
    float lf[20], lb[20];
    (void)lf; /* read only where oneDNN trains in bf16 */
    cnn_status st;
    char msg[512];
    cnn_weights *wb = train_on(m, CNN_PRECISION_BF16, CNN_BACKEND_AUTO, 5, lb, &st, msg, sizeof msg);
#ifdef CNN_HAVE_ONEDNN
    if (!strstr(cnn_cpu_isa(), "bf16")) {
        cr_expect_eq(st, CNN_ERR_USAGE);
        cr_expect(strstr(msg, "avx512_bf16"), "%s", msg);
        cnn_weights_destroy(wb);
        cnn_model_destroy(m);
        cr_skip_test("this CPU has no avx512_bf16");
    }
    cr_assert_eq(st, CNN_OK, "%s", msg);
    cnn_weights *wf = train_on(m, CNN_PRECISION_FP32, CNN_BACKEND_AUTO, 5, lf, &st, msg, sizeof msg);
    cr_assert_eq(st, CNN_OK, "%s", msg);
    for (int k = 0; k < 5; k++)
        cr_expect(fabsf(lb[k] - lf[k]) <= 0.02f * fabsf(lf[k]) + 1e-3f, "step %d: loss %g in bf16, %g in fp32", k,
                  (double)lb[k], (double)lf[k]);
    double diff = 0, big = 0;
    for (int i = 0; i < cnn_weights_count(wf); i++) {
        int rank;
        int64_t d[CNN_WEIGHT_MAX_RANK], n = 1;
        float *a = cnn_weights_tensor(wf, i, NULL, &rank, d), *b = cnn_weights_tensor(wb, i, NULL, &rank, d);
        for (int k = 0; k < rank; k++) n *= d[k];
        for (int64_t j = 0; j < n; j++) diff = fmax(diff, fabs((double)a[j] - b[j])), big = fmax(big, fabs((double)a[j]));
    }
    cr_expect_gt(diff, 0.0, "the bf16 weights equal the fp32 ones");
    cr_expect_lt(diff, 0.02 * big, "bf16 weights %g away from fp32 (largest weight %g)", diff, big);
    cnn_weights_destroy(wf);
    cnn_weights_destroy(wb);
    wb = train_on(m, CNN_PRECISION_BF16, CNN_BACKEND_AUTO, 20, lb, &st, msg, sizeof msg);
    cr_assert_eq(st, CNN_OK, "%s", msg);
    cr_expect_lt(lb[19], 0.8f * lb[0], "bf16 loss did not fall: %g -> %g", (double)lb[0], (double)lb[19]);
#else
    cr_expect_eq(st, CNN_ERR_USAGE);
#endif
    cnn_weights_destroy(wb);
    /* never emulated on the other backends */
    cnn_backend others[2] = {CNN_BACKEND_REF, CNN_BACKEND_NATIVE};
    for (int i = 0; i < 2; i++) {
        cnn_weights *w = train_on(m, CNN_PRECISION_BF16, others[i], 1, lb, &st, msg, sizeof msg);
        cr_expect_eq(st, CNN_ERR_USAGE);
        cr_expect(strstr(msg, "bf16"), "%s", msg);
        cnn_weights_destroy(w);
    }
    /* int8 trains nowhere */
    cnn_weights *w = train_on(m, CNN_PRECISION_INT8, CNN_BACKEND_AUTO, 1, lb, &st, msg, sizeof msg);
    cr_expect_eq(st, CNN_ERR_USAGE);
    cr_expect(strstr(msg, "training runs in fp32 or bf16"), "%s", msg);
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
    cr_expect(strstr(out, "quantized 4 conv/dense layers on 20 examples"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s -w %s --precision int8 --batch 2", tmp("q.cnn"), tmp("q.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s -w %s --precision int8", tmp("q.cnn"), tmp("w.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    cr_expect(strstr(out, vnni() ? "w.safetensors: the weights have no conv2d_1.weight_scale"
                                 : "w.safetensors: the weights have no conv2d_2.weight_scale"),
              "%s", out);
    free(out);
    snprintf(args, sizeof args, "%s --precision int8", tmp("q.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_expect(strstr(out, "int8 f32>s8"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "quantize %s -w %s -o %s", tmp("q.cnn"), tmp("w.safetensors"), tmp("x.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s --precision int4", tmp("q.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
    /* training: int8 refused (usage), bf16 where the CPU and the build have it */
    snprintf(args, sizeof args, "train %s --data %s --steps 3 --batch 6 --precision int8", tmp("q.cnn"), tmpdir);
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    cr_expect(strstr(out, "training runs in fp32 or bf16"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "train %s --data %s --steps 3 --batch 6 --precision bf16 --save %s", tmp("q.cnn"),
             tmpdir, tmp("b.safetensors"));
#ifdef CNN_HAVE_ONEDNN
    bool bf16 = strstr(cnn_cpu_isa(), "bf16") != NULL;
#else
    bool bf16 = false;
#endif
    cr_expect_eq(run_cnnc(&out, args), bf16 ? 0 : 2, "%s", out);
    free(out);
    write_idx(tmpdir, 30, 5); /* images that do not fit */
    snprintf(args, sizeof args, "quantize %s -w %s --data %s -o %s", tmp("q.cnn"), tmp("w.safetensors"), tmpdir,
             tmp("y.safetensors"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    free(out);
}
