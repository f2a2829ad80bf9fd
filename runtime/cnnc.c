/* cnnc — the command-line driver: parses flags, calls the public API (runtime/cnn.h), prints.
 * Everything it does, an embedding program can do through the same header.
 *
 * Exit status: 0 success, 1 bad input (source, data, weights, tensors), 2 bad usage,
 * 3 internal error. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cnn.h"

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

typedef struct args {
    const char *command;   /* compile, run, train, eval, bench, emit */
    const char *source;
    const char *network;
    const char *weights;   /* -w */
    const char *input;     /* -i */
    const char *output;    /* -o */
    const char *data;      /* --data */
    const char *save;      /* --save */
    const char *log;       /* --log */
    const char *stage;     /* emit --stage */
    const char *format;    /* emit --format */
    int64_t batch;         /* 0: not given */
    int64_t epochs;        /* 0: not given */
    int64_t steps;         /* 0: no limit */
    double lr;             /* 0: not given */
    bool no_shuffle, quiet, train_flag, json, allow_extra;
    int repeat;            /* bench: runs per configuration */
    unsigned disabled;     /* passes switched off by --no-* flags (bench applies them to every row) */
    cnn_options opt;
} args;

static const char *prog = "cnnc";

static const char usage_text[] =
    "usage: cnnc NET.cnn [--batch N] [--train]            compile and print the layer table\n"
    "       cnnc run NET.cnn [-w W.safetensors] [-i IN.npy] [-o OUT.npy] [--batch N]\n"
    "       cnnc train NET.cnn --data DIR [-w INIT.safetensors] [--save OUT.safetensors]\n"
    "                  [--epochs N] [--batch N] [--lr X] [--steps N] [--no-shuffle] [--log METRICS.csv]\n"
    "       cnnc eval NET.cnn -w W.safetensors --data DIR [--batch N]\n"
    "       cnnc bench NET.cnn [--batch N] [--train] [--json] [--repeat N]\n"
    "       cnnc emit NET.cnn [--stage parsed|optimized|training] [--format text|dot]\n"
    "\n"
    "common flags:\n"
    "  --network NAME     the network to use when the file has several\n"
    "  --threads N        threads (default: all cores)\n"
    "  --backend B        auto|native|onednn|ref (default auto)\n"
    "  -O0 -O1 -O2        graph optimisation level (default -O2)\n"
    "  --no-dce --no-fold-bn --no-fuse --no-plan --no-inplace --no-layout\n"
    "                     switch one pass off (bench: in every configuration)\n"
    "  --seed S           seed for weights, random inputs, shuffling, dropout (default 0)\n"
    "  --allow-extra      ignore tensors in -w files that the network does not have\n"
    "  -q                 quiet: results only\n"
    "  --help, --version\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see cnnc --help)\n");
    va_end(ap);
    return EXIT_USAGE;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    cnn_options_default(&a->opt);
    a->command = "compile";
    a->stage = "parsed";
    a->format = "text";
    a->repeat = 0;
    int i = 1;
    if (argc > 1) {
        static const char *const cmds[] = {"run", "train", "eval", "bench", "emit", "compile"};
        for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
            if (strcmp(argv[1], cmds[k]) == 0) {
                a->command = cmds[k];
                i = 2;
            }
    }
    for (; i < argc; i++) {
        const char *f = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                   \
    do {                                                               \
        if (!val)                                                      \
            return usage_error("%s needs a value", f);                 \
        i++;                                                           \
    } while (0)
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else if (strcmp(f, "--version") == 0) {
            printf("cnnc %s\n", cnn_version());
            return EXIT_OK;
        } else if (strcmp(f, "--network") == 0) {
            NEED_VALUE();
            a->network = val;
        } else if (strcmp(f, "--threads") == 0) {
            NEED_VALUE();
            int64_t t;
            if (!parse_int(val, 1, 1024, &t))
                return usage_error("--threads takes an integer from 1 to 1024, got '%s'", val);
            a->opt.threads = (int)t;
        } else if (strcmp(f, "--backend") == 0) {
            NEED_VALUE();
            if (strcmp(val, "auto") == 0)
                a->opt.backend = CNN_BACKEND_AUTO;
            else if (strcmp(val, "native") == 0)
                a->opt.backend = CNN_BACKEND_NATIVE;
            else if (strcmp(val, "onednn") == 0)
                a->opt.backend = CNN_BACKEND_ONEDNN;
            else if (strcmp(val, "ref") == 0)
                a->opt.backend = CNN_BACKEND_REF;
            else
                return usage_error("--backend takes auto, native, onednn or ref, got '%s'", val);
        } else if (strcmp(f, "-O0") == 0) {
            a->opt.passes = 0;
        } else if (strcmp(f, "-O1") == 0) {
            a->opt.passes = CNN_PASSES_O1;
        } else if (strcmp(f, "-O2") == 0) {
            a->opt.passes = CNN_PASSES_O2;
        } else if (strcmp(f, "--no-dce") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_DCE;
            a->disabled |= CNN_PASS_DCE;
        } else if (strcmp(f, "--no-fold-bn") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_FOLD_BN;
            a->disabled |= CNN_PASS_FOLD_BN;
        } else if (strcmp(f, "--no-fuse") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_FUSE;
            a->disabled |= CNN_PASS_FUSE;
        } else if (strcmp(f, "--no-plan") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_PLAN;
            a->disabled |= CNN_PASS_PLAN;
        } else if (strcmp(f, "--no-inplace") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_INPLACE;
            a->disabled |= CNN_PASS_INPLACE;
        } else if (strcmp(f, "--no-layout") == 0) {
            a->opt.passes &= ~(unsigned)CNN_PASS_LAYOUT;
            a->disabled |= CNN_PASS_LAYOUT;
        } else if (strcmp(f, "--seed") == 0) {
            NEED_VALUE();
            if (!parse_u64(val, &a->opt.seed))
                return usage_error("--seed takes a non-negative integer, got '%s'", val);
        } else if (strcmp(f, "-q") == 0) {
            a->quiet = true;
        } else if (strcmp(f, "-w") == 0) {
            NEED_VALUE();
            a->weights = val;
        } else if (strcmp(f, "-i") == 0) {
            NEED_VALUE();
            a->input = val;
        } else if (strcmp(f, "-o") == 0) {
            NEED_VALUE();
            a->output = val;
        } else if (strcmp(f, "--data") == 0) {
            NEED_VALUE();
            a->data = val;
        } else if (strcmp(f, "--save") == 0) {
            NEED_VALUE();
            a->save = val;
        } else if (strcmp(f, "--log") == 0) {
            NEED_VALUE();
            a->log = val;
        } else if (strcmp(f, "--stage") == 0) {
            NEED_VALUE();
            a->stage = val;
        } else if (strcmp(f, "--format") == 0) {
            NEED_VALUE();
            a->format = val;
        } else if (strcmp(f, "--batch") == 0) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1 << 20, &a->batch))
                return usage_error("--batch takes an integer from 1 to %d, got '%s'", 1 << 20, val);
        } else if (strcmp(f, "--epochs") == 0) {
            NEED_VALUE();
            if (!parse_int(val, 1, 1000000, &a->epochs))
                return usage_error("--epochs takes a positive integer, got '%s'", val);
        } else if (strcmp(f, "--steps") == 0) {
            NEED_VALUE();
            if (!parse_int(val, 1, INT64_MAX / 2, &a->steps))
                return usage_error("--steps takes a positive integer, got '%s'", val);
        } else if (strcmp(f, "--repeat") == 0) {
            NEED_VALUE();
            int64_t r;
            if (!parse_int(val, 1, 100000, &r))
                return usage_error("--repeat takes a positive integer, got '%s'", val);
            a->repeat = (int)r;
        } else if (strcmp(f, "--lr") == 0) {
            NEED_VALUE();
            if (!parse_double(val, &a->lr) || a->lr <= 0)
                return usage_error("--lr takes a positive number, got '%s'", val);
        } else if (strcmp(f, "--no-shuffle") == 0) {
            a->no_shuffle = true;
        } else if (strcmp(f, "--train") == 0) {
            a->train_flag = true;
        } else if (strcmp(f, "--json") == 0) {
            a->json = true;
        } else if (strcmp(f, "--allow-extra") == 0) {
            a->allow_extra = true;
        } else if (f[0] == '-' && f[1] != '\0') {
            return usage_error("unknown flag '%s'", f);
        } else if (!a->source) {
            a->source = f;
        } else {
            return usage_error("unexpected argument '%s' (the source is '%s')", f, a->source);
        }
#undef NEED_VALUE
    }
    if (!a->source)
        return usage_error("no source file given");
    return -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int exit_for(cnn_status st)
{
    switch (st) {
    case CNN_OK: return EXIT_OK;
    case CNN_ERR_INPUT: return EXIT_INPUT;
    case CNN_ERR_USAGE: return EXIT_USAGE;
    default: return EXIT_INTERNAL;
    }
}

static int load_model(const args *a, cnn_model **m)
{
    cnn_status st = cnn_model_load(m, a->source, a->network);
    if (st != CNN_OK) {
        fputs(cnn_model_errmsg(*m), stderr);
        cnn_model_destroy(*m);
        *m = NULL;
        /* no network by that name is a usage error; everything else is bad input */
        return exit_for(st);
    }
    return EXIT_OK;
}

static int make_weights(const args *a, cnn_model *m, cnn_weights **w)
{
    cnn_status st = cnn_weights_create(w, m, a->opt.seed);
    if (st == CNN_OK && a->weights)
        st = cnn_weights_load(*w, a->weights, a->allow_extra);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(*w));
        cnn_weights_destroy(*w);
        *w = NULL;
        return exit_for(st);
    }
    return EXIT_OK;
}

static int make_session(cnn_session **s, cnn_model *m, cnn_weights *w, const cnn_options *opt, int64_t batch,
                        cnn_mode mode, const cnn_train_config *tc)
{
    cnn_status st = cnn_session_create(s, m, w, opt, batch, mode, tc);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(*s));
        cnn_session_destroy(*s);
        *s = NULL;
        return exit_for(st);
    }
    return EXIT_OK;
}

/* ---- cnnc NET.cnn ---- */

static int cmd_compile(const args *a)
{
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    char *text = NULL;
    cnn_status st = cnn_model_summary(m, &a->opt, a->batch ? a->batch : 1, a->train_flag, &text);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_model_errmsg(m));
        cnn_model_destroy(m);
        return exit_for(st);
    }
    fputs(text, stdout);
    cnn_free(text);
    cnn_model_destroy(m);
    return EXIT_OK;
}

/* ---- cnnc emit ---- */

static int cmd_emit(const args *a)
{
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    char *text = NULL;
    cnn_status st = cnn_model_emit(m, &a->opt, a->stage, a->format, &text);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_model_errmsg(m));
        cnn_model_destroy(m);
        return exit_for(st);
    }
    fputs(text, stdout);
    cnn_free(text);
    cnn_model_destroy(m);
    return EXIT_OK;
}

/* ---- cnnc run ---- */

static int64_t example_numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++)
        n *= dims[k];
    return n;
}

static void shape_text(char *buf, size_t n, int rank, const int64_t *dims)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < rank && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, k ? ", " : "", dims[k]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static char *output_path(const char *base, const char *name)
{
    /* OUT.npy -> OUT.NAME.npy */
    size_t len = strlen(base);
    const char *ext = len >= 4 && strcmp(base + len - 4, ".npy") == 0 ? base + len - 4 : base + len;
    size_t stem = (size_t)(ext - base);
    char *p = malloc(stem + strlen(name) + 6);
    if (p)
        sprintf(p, "%.*s.%s.npy", (int)stem, base, name);
    return p;
}

static int cmd_run(const args *a)
{
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    float *in = NULL;
    if ((rc = make_weights(a, m, &w)))
        goto done;
    if (cnn_model_input_count(m) != 1) {
        rc = usage_error("cnnc run supports networks with one input; this one has %d", cnn_model_input_count(m));
        goto done;
    }
    int64_t idims[4];
    int irank = cnn_model_input_shape(m, 0, idims);
    int64_t per = example_numel(irank, idims);
    int64_t batch = a->batch ? a->batch : 1;
    if (a->input) {
        char err[1024];
        int rank;
        int64_t dims[8];
        if (cnn_npy_read(a->input, &in, &rank, dims, err, sizeof err) != CNN_OK) {
            fprintf(stderr, "%s: error: %s\n", prog, err);
            rc = EXIT_INPUT;
            goto done;
        }
        bool ok = rank == irank + 1;
        for (int k = 0; ok && k < irank; k++)
            ok = dims[k + 1] == idims[k];
        if (!ok || dims[0] < 1) {
            char have[128], need[128];
            shape_text(have, sizeof have, rank, dims);
            shape_text(need, sizeof need, irank, idims);
            fprintf(stderr, "%s: error: %s: shape %s does not fit the network's input %s: expected [N, %s\n", prog,
                    a->input, have, need, need + 1);
            rc = EXIT_INPUT;
            goto done;
        }
        if (a->batch && a->batch != dims[0]) {
            fprintf(stderr, "%s: error: %s holds %" PRId64 " examples but --batch is %" PRId64 "\n", prog, a->input,
                    dims[0], a->batch);
            rc = EXIT_USAGE;
            goto done;
        }
        batch = dims[0];
        for (int64_t i = 0; i < batch * per; i++)
            if (!isfinite(in[i])) {
                fprintf(stderr, "%s: error: %s: element %" PRId64 " is not a finite number\n", prog, a->input, i);
                rc = EXIT_INPUT;
                goto done;
            }
    }
    if ((rc = make_session(&s, m, w, &a->opt, batch, CNN_MODE_INFER, NULL)))
        goto done;
    float *x = cnn_session_input(s, 0);
    if (in) {
        memcpy(x, in, sizeof(float) * (size_t)(batch * per));
    } else {
        uint64_t st = a->opt.seed * 0x9e3779b97f4a7c15ULL + 12345;
        for (int64_t i = 0; i < batch * per; i++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            x[i] = (float)((st >> 11) * 0x1.0p-53);
        }
    }
    double t0 = now_seconds();
    cnn_status st = cnn_session_run(s);
    double t1 = now_seconds();
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(s));
        rc = exit_for(st);
        goto done;
    }
    for (int o = 0; o < cnn_model_output_count(m); o++) {
        int64_t odims[4];
        int orank = cnn_model_output_shape(m, o, odims);
        int64_t oper = example_numel(orank, odims);
        const float *y = cnn_session_output(s, o);
        if (orank == 1 && !a->quiet) {
            for (int64_t b = 0; b < batch; b++) {
                int64_t best = 0;
                for (int64_t k = 1; k < oper; k++)
                    if (y[b * oper + k] > y[b * oper + best])
                        best = k;
                printf("%s[%" PRId64 "]: class %" PRId64 " (%.6g)\n", cnn_model_output_name(m, o), b, best,
                       (double)y[b * oper + best]);
            }
        }
        if (a->output) {
            int64_t dims[5];
            dims[0] = batch;
            for (int k = 0; k < orank; k++)
                dims[k + 1] = odims[k];
            char *path = o == 0 ? strdup(a->output) : output_path(a->output, cnn_model_output_name(m, o));
            char err[1024];
            cnn_status ws = path ? cnn_npy_write(path, y, orank + 1, dims, err, sizeof err) : CNN_ERR_INTERNAL;
            free(path);
            if (ws != CNN_OK) {
                fprintf(stderr, "%s: error: %s\n", prog, err);
                rc = exit_for(ws);
                goto done;
            }
        }
    }
    if (!a->quiet)
        printf("time: %.3f ms for %" PRId64 " example%s (%.1f images/s)\n", (t1 - t0) * 1e3, batch,
               batch == 1 ? "" : "s", (double)batch / (t1 - t0));
done:
    cnn_free(in);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

/* ---- cnnc train / eval ---- */

static int load_split(const args *a, const char *split, cnn_model *m, cnn_dataset **d, bool optional)
{
    char err[1024];
    bool absent = false;
    cnn_status st = cnn_dataset_load(d, a->data, split, &absent, err, sizeof err);
    if (st != CNN_OK) {
        if (absent && optional) {
            *d = NULL;
            return EXIT_OK;
        }
        fprintf(stderr, "%s: error: %s\n", prog, err);
        return exit_for(st);
    }
    if (cnn_dataset_check(*d, m, err, sizeof err) != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        cnn_dataset_destroy(*d);
        *d = NULL;
        return EXIT_INPUT;
    }
    return EXIT_OK;
}

static int evaluate(const args *a, cnn_session *s, const cnn_dataset *d, int loss_kind, double *loss, double *acc)
{
    cnn_eval_result r;
    cnn_status st = cnn_evaluate(s, d, loss_kind, &r);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(s));
        return exit_for(st);
    }
    (void)a;
    *loss = r.loss;
    *acc = r.accuracy;
    return EXIT_OK;
}

static int cmd_eval(const args *a)
{
    if (!a->data)
        return usage_error("cnnc eval needs --data DIR");
    if (!a->weights)
        return usage_error("cnnc eval needs -w WEIGHTS.safetensors");
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL;
    cnn_dataset *test = NULL;
    if ((rc = make_weights(a, m, &w)) || (rc = load_split(a, "test", m, &test, false)))
        goto done;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    if ((rc = make_session(&s, m, w, &a->opt, a->batch ? a->batch : 256, CNN_MODE_INFER, NULL)))
        goto done;
    double loss, acc;
    double t0 = now_seconds();
    if ((rc = evaluate(a, s, test, tc.loss, &loss, &acc)))
        goto done;
    double t1 = now_seconds();
    printf("test: loss %.4f, accuracy %.2f%% (%" PRId64 " examples, %.0f images/s)\n", loss, acc * 100.0,
           cnn_dataset_count(test), (double)cnn_dataset_count(test) / (t1 - t0));
done:
    cnn_dataset_destroy(test);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

static void format_duration(char *buf, size_t n, double s)
{
    if (s < 0 || !isfinite(s))
        s = 0;
    int sec = (int)(s + 0.5);
    if (sec >= 3600)
        snprintf(buf, n, "%dh%02dm", sec / 3600, sec / 60 % 60);
    else
        snprintf(buf, n, "%dm%02ds", sec / 60, sec % 60);
}

static int cmd_train(const args *a)
{
    if (!a->data)
        return usage_error("cnnc train needs --data DIR");
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    cnn_session *s = NULL, *ev = NULL;
    cnn_dataset *train = NULL, *test = NULL;
    int64_t *order = NULL;
    float *labels = NULL;
    FILE *log = NULL;
    if ((rc = make_weights(a, m, &w)) || (rc = load_split(a, "train", m, &train, false)) ||
        (rc = load_split(a, "test", m, &test, true)))
        goto done;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    if (a->batch)
        tc.batch = a->batch;
    if (a->epochs)
        tc.epochs = a->epochs;
    if (a->lr > 0)
        tc.lr = a->lr;
    int64_t n = cnn_dataset_count(train);
    if (tc.batch > n) {
        fprintf(stderr, "%s: error: batch %" PRId64 " is larger than the %" PRId64 " training examples\n", prog,
                tc.batch, n);
        rc = EXIT_USAGE;
        goto done;
    }
    if ((rc = make_session(&s, m, w, &a->opt, tc.batch, CNN_MODE_TRAIN, &tc)))
        goto done;
    if (test && (rc = make_session(&ev, m, w, &a->opt, 256, CNN_MODE_INFER, NULL)))
        goto done;
    if (a->log) {
        log = fopen(a->log, "w");
        if (!log) {
            fprintf(stderr, "%s: error: cannot write %s: %s\n", prog, a->log, strerror(errno));
            rc = EXIT_INPUT;
            goto done;
        }
        fprintf(log, "epoch,step,loss,accuracy,images_per_s\n");
    }
    order = malloc(sizeof(int64_t) * (size_t)n);
    labels = malloc(sizeof(float) * (size_t)tc.batch);
    if (!order || !labels) {
        fprintf(stderr, "%s: error: out of memory\n", prog);
        rc = EXIT_INTERNAL;
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    bool tty = isatty(fileno(stdout)) && !a->quiet;
    int64_t steps_per_epoch = n / tc.batch; /* the last partial batch is dropped, as drop_last */
    int64_t total_steps = 0;
    uint64_t shuffle_state = a->opt.seed ^ 0x5eedULL;
    if (!a->quiet)
        printf("training %s on %" PRId64 " examples%s: %" PRId64 " epochs, batch %" PRId64 ", %s lr %g\n",
               cnn_model_name(m), n, test ? " (with a test set)" : "", tc.epochs, tc.batch,
               tc.optimizer ? "adam" : "sgd", tc.lr);
    for (int64_t epoch = 1; epoch <= tc.epochs && !(a->steps && total_steps >= a->steps); epoch++) {
        if (!a->no_shuffle) {
            /* Fisher-Yates with a seeded xorshift */
            for (int64_t i = n - 1; i > 0; i--) {
                shuffle_state ^= shuffle_state << 13, shuffle_state ^= shuffle_state >> 7,
                    shuffle_state ^= shuffle_state << 17;
                int64_t j = (int64_t)((shuffle_state >> 11) % (uint64_t)(i + 1));
                int64_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        double loss_sum = 0, t0 = now_seconds(), last_draw = 0;
        int64_t correct_sum = 0, seen = 0, step;
        for (step = 0; step < steps_per_epoch && !(a->steps && total_steps >= a->steps); step++) {
            cnn_dataset_batch(train, order, step * tc.batch, tc.batch, cnn_session_input(s, 0), labels);
            float loss;
            int64_t correct;
            cnn_status st = cnn_session_train_step(s, labels, true, &loss, &correct);
            if (st != CNN_OK) {
                fprintf(stderr, "%s: error: %s\n", prog, cnn_session_errmsg(s));
                rc = exit_for(st);
                goto done;
            }
            if (!isfinite(loss)) {
                fprintf(stderr, "%s: error: the loss became %g at epoch %" PRId64 " step %" PRId64
                                "; try a smaller --lr\n", prog, (double)loss, epoch, step + 1);
                rc = EXIT_INPUT;
                goto done;
            }
            total_steps++;
            loss_sum += loss * (double)tc.batch;
            correct_sum += correct;
            seen += tc.batch;
            double t = now_seconds();
            if (log)
                fprintf(log, "%" PRId64 ",%" PRId64 ",%.6f,%.6f,%.1f\n", epoch, total_steps, (double)loss,
                        (double)correct / (double)tc.batch, (double)seen / (t - t0));
            if (tty && (t - last_draw > 0.1 || step + 1 == steps_per_epoch)) {
                last_draw = t;
                int64_t todo = steps_per_epoch - step - 1;
                char left[32];
                format_duration(left, sizeof left, (t - t0) / (double)(step + 1) * (double)todo);
                printf("\repoch %" PRId64 "/%" PRId64 "  step %" PRId64 "/%" PRId64
                       "  loss %.4f  acc %.2f%%  %.0f img/s  %s left   ",
                       epoch, tc.epochs, step + 1, steps_per_epoch, loss_sum / (double)seen,
                       100.0 * (double)correct_sum / (double)seen, (double)seen / (t - t0), left);
                fflush(stdout);
            }
        }
        double t1 = now_seconds();
        if (tty)
            printf("\r\033[K");
        if (!a->quiet || !test)
            printf("epoch %" PRId64 ": train loss %.4f, accuracy %.2f%%, %.0f images/s, %.1f s", epoch,
                   seen ? loss_sum / (double)seen : 0.0, seen ? 100.0 * (double)correct_sum / (double)seen : 0.0,
                   (double)seen / (t1 - t0), t1 - t0);
        if (test) {
            double tl, ta;
            if ((rc = evaluate(a, ev, test, tc.loss, &tl, &ta)))
                goto done;
            printf("%stest loss %.4f, test accuracy %.2f%%", (!a->quiet || !test) ? "; " : "", tl, ta * 100.0);
        }
        printf("\n");
        fflush(stdout);
    }
    if (a->save) {
        if (cnn_weights_save(w, a->save) != CNN_OK) {
            fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(w));
            rc = EXIT_INPUT;
            goto done;
        }
        if (!a->quiet)
            printf("saved %s\n", a->save);
    }
done:
    if (log)
        fclose(log);
    free(order);
    free(labels);
    cnn_dataset_destroy(train);
    cnn_dataset_destroy(test);
    cnn_session_destroy(ev);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

/* ---- cnnc bench ---- */

typedef struct bench_config {
    const char *name;
    unsigned passes;
    cnn_backend backend;
} bench_config;

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static const char *backend_name(cnn_backend b)
{
    switch (b) {
    case CNN_BACKEND_AUTO: return "auto";
    case CNN_BACKEND_REF: return "ref";
    case CNN_BACKEND_NATIVE: return "native";
    case CNN_BACKEND_ONEDNN: return "onednn";
    }
    return "?";
}

static int cmd_bench(const args *a)
{
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    if ((rc = make_weights(a, m, &w))) {
        cnn_model_destroy(m);
        return rc;
    }
    int64_t batch = a->batch ? a->batch : 64;
    bool train = a->train_flag;
    cnn_backend backends[] = {CNN_BACKEND_REF, CNN_BACKEND_ONEDNN, CNN_BACKEND_NATIVE};
    bench_config cfgs[32];
    int ncfg = 0;
    cnn_backend chosen = a->opt.backend;
    /* every pass level on the chosen backend, then -O2 on each backend */
    cfgs[ncfg++] = (bench_config){"-O0", 0, chosen};
    cfgs[ncfg++] = (bench_config){"dce only", CNN_PASS_DCE, chosen};
    cfgs[ncfg++] = (bench_config){"fold_bn only", CNN_PASS_FOLD_BN, chosen};
    cfgs[ncfg++] = (bench_config){"fuse only", CNN_PASS_FUSE, chosen};
    cfgs[ncfg++] = (bench_config){"plan only", CNN_PASS_PLAN | CNN_PASS_INPLACE, chosen};
    cfgs[ncfg++] = (bench_config){"-O1", CNN_PASSES_O1, chosen};
    cfgs[ncfg++] = (bench_config){"-O2", CNN_PASSES_O2, chosen};
    cfgs[ncfg++] = (bench_config){"-O2 no layout", CNN_PASSES_O2 & ~(unsigned)CNN_PASS_LAYOUT, chosen};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++)
        if (backends[b] != chosen)
            cfgs[ncfg++] = (bench_config){"-O2", CNN_PASSES_O2, backends[b]};
    int repeat = a->repeat ? a->repeat : 10;
    float *labels = calloc((size_t)batch, sizeof(float));
    if (!labels) {
        rc = EXIT_INTERNAL;
        goto done;
    }
    for (int64_t i = 0; i < batch; i++) {
        int64_t od[4];
        int orank = cnn_model_output_shape(m, 0, od);
        labels[i] = (float)(i % (orank >= 1 ? example_numel(orank, od) : 1));
    }
    if (a->json)
        printf("{\"network\": \"%s\", \"batch\": %" PRId64 ", \"mode\": \"%s\", \"threads\": %d, \"results\": [",
               cnn_model_name(m), batch, train ? "train" : "infer", a->opt.threads ? a->opt.threads : cnn_default_threads());
    else
        printf("%s, batch %" PRId64 ", %s, %d threads, median of %d runs\n\n%-14s %-8s %12s %12s %12s %12s\n",
               cnn_model_name(m), batch, train ? "training step" : "inference",
               a->opt.threads ? a->opt.threads : cnn_default_threads(), repeat, "passes", "backend", "ms/batch",
               "images/s", "arena", "speed-up");
    double base_ms = 0;
    bool first = true;
    for (int c = 0; c < ncfg; c++) {
        cnn_options o = a->opt;
        o.passes = cfgs[c].passes & ~a->disabled;
        o.backend = cfgs[c].backend;
        cnn_session *s = NULL;
        cnn_status st = cnn_session_create(&s, m, w, &o, batch, train ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL);
        if (st != CNN_OK) {
            fprintf(stderr, "%s: warning: %s on %s: %s\n", prog, cfgs[c].name, backend_name(cfgs[c].backend),
                    cnn_session_errmsg(s));
            cnn_session_destroy(s);
            continue;
        }
        float *x = cnn_session_input(s, 0);
        int64_t idims[4];
        int irank = cnn_model_input_shape(m, 0, idims);
        int64_t per = example_numel(irank, idims);
        for (int64_t i = 0; i < batch * per; i++)
            x[i] = (float)((i * 7919) % 1000) / 1000.0f;
        double times[1000];
        int nt = repeat < 1000 ? repeat : 1000;
        for (int r = -2; r < nt && st == CNN_OK; r++) { /* two warm-up runs */
            double t0 = now_seconds();
            st = train ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
            if (r >= 0)
                times[r] = now_seconds() - t0;
        }
        if (st != CNN_OK) {
            fprintf(stderr, "%s: warning: %s on %s: %s\n", prog, cfgs[c].name, backend_name(cfgs[c].backend),
                    cnn_session_errmsg(s));
            cnn_session_destroy(s);
            continue;
        }
        qsort(times, (size_t)nt, sizeof(double), cmp_double);
        double med = nt % 2 ? times[nt / 2] : 0.5 * (times[nt / 2 - 1] + times[nt / 2]);
        cnn_memory_info mi;
        cnn_session_memory(s, &mi);
        if (c == 0)
            base_ms = med;
        if (a->json)
            printf("%s{\"passes\": \"%s\", \"backend\": \"%s\", \"ms\": %.4f, \"images_per_s\": %.1f, \"arena_bytes\": %zu, "
                   "\"naive_bytes\": %zu, \"lower_bound_bytes\": %zu}",
                   first ? "" : ", ", cfgs[c].name, backend_name(cfgs[c].backend), med * 1e3, (double)batch / med,
                   mi.planned, mi.naive, mi.lower_bound);
        else
            printf("%-14s %-8s %12.3f %12.1f %11.2fM %11.2fx\n", cfgs[c].name, backend_name(cfgs[c].backend), med * 1e3,
                   (double)batch / med, (double)mi.planned / 1048576.0, base_ms / med);
        first = false;
        cnn_session_destroy(s);
    }
    if (a->json)
        printf("]}\n");
done:
    free(labels);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}

int main(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (strcmp(a.command, "run") == 0)
        return cmd_run(&a);
    if (strcmp(a.command, "train") == 0)
        return cmd_train(&a);
    if (strcmp(a.command, "eval") == 0)
        return cmd_eval(&a);
    if (strcmp(a.command, "bench") == 0)
        return cmd_bench(&a);
    if (strcmp(a.command, "emit") == 0)
        return cmd_emit(&a);
    return cmd_compile(&a);
}
