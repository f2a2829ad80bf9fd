/* ONNX in and out (spec sections 8 and 10): the PyTorch fixtures of tests/fixtures/onnx run
 * as ONNX models and as their imported .cnn source on every backend against PyTorch's outputs;
 * exports read back (as written and with batchnorm folded) give the same outputs; the printed
 * source of every example compiles to the same network; and the bad models are refused with
 * the messages the issue asks for. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lang/lang.h"
#include "lang/print.h"
#include "runtime/cnn.h"
#include "tests/cli_util.h"
#include "tests/file_util.h"

static const char *const nets[] = {"lenet5", "resnet20_folded", "resnet20_bn", "branches", "signal1d", "misc"};
enum { NNETS = sizeof nets / sizeof nets[0] };

static const char *fx(const char *name, const char *ext)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    const char *d = getenv("CNN_FIXTURES");
    snprintf(buf[k], sizeof buf[k], "%s/onnx/%s%s", d ? d : "tests/fixtures", name, ext);
    return buf[k];
}

static const char *example(const char *name)
{
    static char buf[1024];
    const char *d = getenv("CNN_EXAMPLES");
    snprintf(buf, sizeof buf, "%s/%s.cnn", d ? d : "examples", name);
    return buf;
}

static cnn_backend backends[] = {CNN_BACKEND_REF, CNN_BACKEND_NATIVE,
#ifdef CNN_HAVE_ONEDNN
                                 CNN_BACKEND_ONEDNN
#endif
};
static const char *const backend_names[] = {"ref", "native", "onednn"};
enum { NBACKENDS = sizeof backends / sizeof backends[0] };

/* Runs m with w on x ([n, ...]) with the backend; the first output (malloc'd) and its size. */
static float *run_model(cnn_model *m, cnn_weights *w, const float *x, int64_t n, cnn_backend b, int64_t *ny)
{
    cnn_options o;
    cnn_options_default(&o);
    o.backend = b;
    o.threads = 1;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, n, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    int64_t dims[4];
    int r = cnn_model_input_shape(m, 0, dims);
    int64_t per = 1;
    for (int k = 0; k < r; k++)
        per *= dims[k];
    memcpy(cnn_session_input(s, 0), x, sizeof(float) * (size_t)(per * n));
    cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    r = cnn_model_output_shape(m, 0, dims);
    int64_t out = n;
    for (int k = 0; k < r; k++)
        out *= dims[k];
    float *y = malloc(sizeof(float) * (size_t)out);
    memcpy(y, cnn_session_output(s, 0), sizeof(float) * (size_t)out);
    cnn_session_destroy(s);
    *ny = out;
    return y;
}

static double max_err(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

typedef struct npy {
    float *data;
    int rank;
    int64_t dims[8];
} npy;

static npy read_npy(const char *path)
{
    npy t;
    char err[512];
    cr_assert_eq(cnn_npy_read(path, &t.data, &t.rank, t.dims, err, sizeof err), CNN_OK, "%s", err);
    return t;
}

/* The model's outputs on the fixture's input against PyTorch's, on every backend: the worst
 * error is printed and must be below 1e-4. */
static void check_against_pytorch(cnn_model *m, cnn_weights *w, const char *net, const char *how)
{
    npy x = read_npy(fx(net, ".in.npy")), y = read_npy(fx(net, ".out.npy"));
    for (int b = 0; b < NBACKENDS; b++) {
        int64_t ny;
        float *out = run_model(m, w, x.data, x.dims[0], backends[b], &ny);
        int64_t want = 1;
        for (int k = 0; k < y.rank; k++)
            want *= y.dims[k];
        cr_assert_eq(ny, want, "%s (%s): %lld outputs, PyTorch has %lld", net, how, (long long)ny, (long long)want);
        double e = max_err(out, y.data, ny);
        fprintf(stderr, "onnx: %-16s %-22s %-6s worst error %.2e\n", net, how, backend_names[backends[b] - 1], e);
        cr_expect(e < 1e-4, "%s (%s, %s): worst error %g against PyTorch", net, how, backend_names[backends[b] - 1], e);
        free(out);
    }
    cnn_free(x.data);
    cnn_free(y.data);
}

static cnn_model *load_onnx(const char *path)
{
    cnn_model *m;
    cnn_status st = cnn_model_load(&m, path, NULL);
    cr_assert_eq(st, CNN_OK, "%s: %s", path, m ? cnn_model_errmsg(m) : "out of memory");
    return m;
}

TestSuite(onnx, .init = make_tmp, .fini = remove_tmp);

Test(onnx, fixtures_run_as_onnx_and_as_imported_source)
{
    for (int i = 0; i < NNETS; i++) {
        cnn_model *m = load_onnx(fx(nets[i], ".onnx"));
        cnn_weights *w;
        cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
        check_against_pytorch(m, w, nets[i], "MODEL.onnx");

        /* the imported .cnn and its weights, as `cnnc import` writes them */
        const char *src = tmp("net.cnn"), *wts = tmp("net.safetensors");
        cr_assert_eq(cnn_model_save_source(m, src), CNN_OK, "%s", cnn_model_errmsg(m));
        cr_assert_eq(cnn_weights_save(w, wts), CNN_OK, "%s", cnn_weights_errmsg(w));
        cnn_model *m2;
        cr_assert_eq(cnn_model_load(&m2, src, NULL), CNN_OK, "%s", cnn_model_errmsg(m2));
        cnn_weights *w2;
        cr_assert_eq(cnn_weights_create(&w2, m2, 1), CNN_OK);
        cr_assert_eq(cnn_weights_load(w2, wts, false), CNN_OK, "%s", cnn_weights_errmsg(w2));
        check_against_pytorch(m2, w2, nets[i], "imported NET.cnn");
        cnn_weights_destroy(w2);
        cnn_model_destroy(m2);
        cnn_weights_destroy(w);
        cnn_model_destroy(m);
    }
}

Test(onnx, exports_read_back_as_written_and_folded)
{
    for (int i = 0; i < NNETS; i++)
        for (int fold = 0; fold <= 1; fold++) {
            cnn_model *m = load_onnx(fx(nets[i], ".onnx"));
            cnn_weights *w;
            cr_assert_eq(cnn_weights_create(&w, m, 0), CNN_OK);
            const char *out = tmp(fold ? "folded.onnx" : "plain.onnx");
            cr_assert_eq(cnn_model_export_onnx(m, w, out, fold), CNN_OK, "%s", cnn_model_errmsg(m));
            cnn_model *e = load_onnx(out);
            cnn_weights *ew;
            cr_assert_eq(cnn_weights_create(&ew, e, 0), CNN_OK);
            check_against_pytorch(e, ew, nets[i], fold ? "exported, folded" : "exported");
            /* folding removes every batchnorm that follows a conv */
            const char *src = cnn_model_source(e, NULL);
            if (fold && strcmp(nets[i], "resnet20_bn") == 0)
                cr_expect_null(strstr(src, "batchnorm"), "%s", src);
            if (!fold && strcmp(nets[i], "resnet20_bn") == 0)
                cr_expect_not_null(strstr(src, "batchnorm"), "%s", src);
            cnn_weights_destroy(ew);
            cnn_model_destroy(e);
            cnn_weights_destroy(w);
            cnn_model_destroy(m);
        }
}

/* Every example network: exported with seeded weights and imported again, the same outputs. */
Test(onnx, examples_round_trip)
{
    static const char *const ex[] = {"lenet5", "signal1d", "resnet20", "vgg_small"};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        cnn_model *m;
        cr_assert_eq(cnn_model_load(&m, example(ex[i]), NULL), CNN_OK);
        cnn_weights *w;
        cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
        const char *out = tmp("ex.onnx");
        cr_assert_eq(cnn_model_export_onnx(m, w, out, false), CNN_OK, "%s", cnn_model_errmsg(m));
        cnn_model *e = load_onnx(out);
        cnn_weights *ew;
        cr_assert_eq(cnn_weights_create(&ew, e, 99), CNN_OK);
        int64_t dims[4];
        int r = cnn_model_input_shape(m, 0, dims);
        int64_t n = 2, per = 1;
        for (int k = 0; k < r; k++)
            per *= dims[k];
        float *x = malloc(sizeof(float) * (size_t)(n * per));
        for (int64_t k = 0; k < n * per; k++)
            x[k] = (float)sin(0.37 * (double)k);
        int64_t ny, ny2;
        float *y = run_model(m, w, x, n, CNN_BACKEND_REF, &ny);
        float *y2 = run_model(e, ew, x, n, CNN_BACKEND_REF, &ny2);
        cr_assert_eq(ny, ny2);
        double err = max_err(y, y2, ny);
        cr_expect(err < 1e-5, "%s: exported and imported again differs by %g", ex[i], err);
        free(x), free(y), free(y2);
        cnn_weights_destroy(ew);
        cnn_model_destroy(e);
        cnn_weights_destroy(w);
        cnn_model_destroy(m);
    }
}

/* The printer: each example's expanded network printed and compiled again is the same network. */
Test(onnx, printed_source_compiles_to_the_same_network)
{
    /* the examples, and fixtures with several outputs, branches and 3-D layers */
    static const char *const ex[] = {"lenet5",    "signal1d", "resnet20",    "resnet18", "vgg_small", "alexnet",
                                     "vgg16",     "@two_outputs", "@branches", "@vol3d",   "@conv_args", "@pools"};
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        size_t len = 0;
        char path[1024];
        const char *fd = getenv("CNN_FIXTURES");
        if (ex[i][0] == '@')
            snprintf(path, sizeof path, "%s/%s.cnn", fd ? fd : "tests/fixtures", ex[i] + 1);
        else
            snprintf(path, sizeof path, "%s", example(ex[i]));
        char *text = test_file_bytes(path, &len);
        cr_assert_not_null(text);
        diag_list d;
        diag_init(&d, ex[i], text, len);
        lang_program *p = lang_compile(text, len, &d);
        cr_assert(p && d.errors == 0);
        const lang_network *a = lang_program_network(p, NULL);
        strbuf sb;
        sb_init(&sb);
        lang_print_network(a, "printed", &sb);
        diag_list d2;
        diag_init(&d2, "printed", sb.data, sb.len);
        lang_program *p2 = lang_compile(sb.data, sb.len, &d2);
        cr_assert(p2 && d2.errors == 0, "%s: the printed source does not compile:\n%s", ex[i], sb.data);
        const lang_network *b = lang_program_network(p2, NULL);
        cr_assert_eq(a->nlayers, b->nlayers, "%s", ex[i]);
        cr_assert_eq(a->ninputs, b->ninputs);
        cr_assert_eq(a->noutputs, b->noutputs);
        for (int k = 0; k < a->nlayers; k++) {
            const lang_layer *x = &a->layers[k], *y = &b->layers[k];
            cr_assert_eq(x->op, y->op, "%s layer %d", ex[i], k);
            cr_assert_str_eq(x->name, y->name, "%s layer %d", ex[i], k);
            cr_assert_eq(x->ninputs, y->ninputs);
            for (int j = 0; j < x->ninputs; j++)
                cr_assert_eq(x->inputs[j], y->inputs[j], "%s layer %s input %d", ex[i], x->name, j);
            for (int j = 0; j < x->op->nargs; j++) {
                cr_assert_eq(x->args[j].i[0], y->args[j].i[0], "%s %s arg %d", ex[i], x->name, j);
                cr_assert_eq(x->args[j].f, y->args[j].f, "%s %s arg %d", ex[i], x->name, j);
                cr_assert_eq(x->args[j].b, y->args[j].b, "%s %s arg %d", ex[i], x->name, j);
            }
        }
        for (int o = 0; o < a->noutputs; o++) {
            cr_assert_str_eq(a->outputs[o].name, b->outputs[o].name);
            cr_assert_eq(a->outputs[o].tensor, b->outputs[o].tensor);
        }
        lang_program_free(p2);
        diag_free(&d2);
        sb_free(&sb);
        lang_program_free(p);
        diag_free(&d);
        free(text);
    }
}

/* A bad model: CNN_ERR_INPUT and every expected piece in the message. */
static void expect_refused(const char *name, const char *const *pieces)
{
    cnn_model *m;
    cnn_status st = cnn_model_load(&m, fx(name, ".onnx"), NULL);
    cr_assert_eq(st, CNN_ERR_INPUT, "%s: status %d", name, st);
    const char *msg = cnn_model_errmsg(m);
    for (int k = 0; pieces[k]; k++)
        cr_expect_not_null(strstr(msg, pieces[k]), "%s: '%s' is not in:\n%s", name, pieces[k], msg);
    cnn_model_destroy(m);
}

Test(onnx, bad_models_are_refused_clearly)
{
    expect_refused("bad_unsupported", (const char *const[]){"node 'norm1' (LRN, opset 13): operator LRN is not supported",
                                                            "node 'conv1' (Conv, opset 13): attribute 'pads'",
                                                            "node 'up1' (Resize, opset 13)", "the operators cnnc imports",
                                                            NULL});
    expect_refused("bad_dtype", (const char *const[]){"tensor 'w' has data type FLOAT16", NULL});
    expect_refused("bad_external", (const char *const[]){"tensor 'w'", "external file", NULL});
    expect_refused("bad_length", (const char *const[]){"tensor 'w'", "9 elements", "5", NULL});
    expect_refused("bad_cycle", (const char *const[]){"cycle", "'r1'", "'add1'", NULL});
    expect_refused("bad_dangling", (const char *const[]){"node 'add1'", "'nowhere'", NULL});
    expect_refused("bad_dynamic", (const char *const[]){"graph input 'x'", "'C'", NULL});
    expect_refused("bad_opset", (const char *const[]){"opset 9", "11 to 17", NULL});
    expect_refused("bad_attrs", (const char *const[]){"node 'conv_g' (Conv, opset 13): attribute 'group' must be an int",
                                                      "node 'pool_c' (MaxPool, opset 13): attribute 'ceil_mode' = 1",
                                                      NULL});
    expect_refused("bad_clip6", (const char *const[]){"node 'relu6' (Clip, opset 13)", "[0, 6]", NULL});
}

Test(onnx, truncated_and_corrupt_bytes)
{
    size_t len = 0;
    unsigned char *data = test_file_bytes(fx("lenet5", ".onnx"), &len);
    cr_assert_not_null(data);
    size_t cuts[] = {0, 1, 7, 100, 1000, len / 2, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        cnn_model *m;
        cnn_status st = cnn_model_load_onnx_memory(&m, "cut.onnx", data, cuts[k], NULL);
        cr_expect_eq(st, CNN_ERR_INPUT, "cut at %zu: status %d", cuts[k], st);
        cr_expect_not_null(strstr(cnn_model_errmsg(m), "cut.onnx: error:"), "%s", cnn_model_errmsg(m));
        cnn_model_destroy(m);
    }
    free(data);
}

Test(onnx, cli_import_run_export)
{
    char *out;
    char args[2048];
    snprintf(args, sizeof args, "import %s -o %s", fx("resnet20_bn", ".onnx"), tmp("r.cnn"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    cr_assert_eq(access(tmp("r.safetensors"), F_OK), 0);
    snprintf(args, sizeof args, "run -q %s -w %s -i %s -o %s", tmp("r.cnn"), tmp("r.safetensors"),
             fx("resnet20_bn", ".in.npy"), tmp("a.npy"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    snprintf(args, sizeof args, "run -q %s -i %s -o %s", fx("resnet20_bn", ".onnx"), fx("resnet20_bn", ".in.npy"),
             tmp("b.npy"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    npy a = read_npy(tmp("a.npy")), b = read_npy(tmp("b.npy")), y = read_npy(fx("resnet20_bn", ".out.npy"));
    cr_expect(max_err(a.data, y.data, 30) < 1e-4);
    cr_expect(max_err(b.data, y.data, 30) < 1e-4);
    cnn_free(a.data), cnn_free(b.data), cnn_free(y.data);
    snprintf(args, sizeof args, "export %s -w %s -o %s --fold-bn", tmp("r.cnn"), tmp("r.safetensors"), tmp("e.onnx"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    /* bad input exits 1, a missing -o 2 */
    snprintf(args, sizeof args, "%s", fx("bad_unsupported", ".onnx"));
    cr_expect_eq(run_cnnc(&out, args), 1, "%s", out);
    free(out);
    snprintf(args, sizeof args, "export %s", tmp("r.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
    snprintf(args, sizeof args, "import %s", tmp("r.cnn"));
    cr_expect_eq(run_cnnc(&out, args), 2, "%s", out);
    free(out);
}

/* ---- out of memory: every allocation of an import failed in turn */

static long oom_calls, oom_live, oom_fail_at;

static void *oom_malloc(size_t n, void *ud)
{
    (void)ud;
    if (++oom_calls == oom_fail_at)
        return NULL;
    void *p = malloc(n);
    oom_live += p != NULL;
    return p;
}

static void *oom_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (++oom_calls == oom_fail_at)
        return NULL;
    void *q = realloc(p, n);
    oom_live += q && !p;
    return q;
}

static void oom_free(void *p, void *ud)
{
    (void)ud;
    oom_live -= p != NULL;
    free(p);
}

static cnn_status import_chain(const void *data, size_t len)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_load_onnx_memory(&m, "signal1d.onnx", data, len, NULL);
    if (st == CNN_OK) {
        cnn_weights *w = NULL;
        st = cnn_weights_create(&w, m, 0);
        cnn_weights_destroy(w);
    } else if (m) {
        cr_assert(cnn_model_errmsg(m)[0], "a failed import (status %d, allocation %ld) without a message", st, oom_fail_at);
    }
    cnn_model_destroy(m);
    return st;
}

Test(onnx, out_of_memory_at_every_allocation, .timeout = 300)
{
    size_t len = 0;
    void *data = test_file_bytes(fx("signal1d", ".onnx"), &len);
    cr_assert_not_null(data);
    cnn_allocator a = {oom_malloc, oom_realloc, oom_free, NULL};
    oom_calls = oom_live = 0, oom_fail_at = 0;
    cnn_set_allocator(&a);
    cnn_status st = import_chain(data, len);
    cnn_set_allocator(NULL);
    cr_assert_eq(st, CNN_OK);
    long total = oom_calls;
    long stride = getenv("CNN_TEST_QUICK") ? 5 : 1;
    for (long k = 1; k <= total; k += stride) {
        oom_calls = oom_live = 0, oom_fail_at = k;
        cnn_set_allocator(&a);
        st = import_chain(data, len);
        cnn_set_allocator(NULL);
        cr_assert(st == CNN_ERR_NOMEM || st == CNN_OK, "allocation %ld of %ld failed: status %d, not out of memory", k,
                  total, st);
        cr_assert_eq(oom_live, 0, "allocation %ld of %ld failed: %ld blocks leaked", k, total, oom_live);
    }
    free(data);
}
