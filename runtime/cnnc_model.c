/* cnnc's model commands: compile (the layer table), emit (the graph) and run (inference). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnnc.h"

/* ---- cnnc NET.cnn, cnnc emit ---- */

/* Prints the model's summary (compile) or its graph (emit). */
static int print_model_text(const args *a, bool emit)
{
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    char *text = NULL;
    cnn_status st = emit ? cnn_model_emit(m, &a->opt, a->stage, a->format, &text)
                         : cnn_model_summary(m, &a->opt, a->batch ? a->batch : 1, a->train_flag, &text);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_model_errmsg(m));
        rc = emit ? exit_for(st) : size_exit(a, m, st, a->train_flag);
        cnn_model_destroy(m);
        return rc;
    }
    fputs(text, stdout);
    cnn_free(text);
    cnn_model_destroy(m);
    return EXIT_OK;
}

int cmd_compile(const args *a) { return print_model_text(a, false); }
int cmd_emit(const args *a) { return print_model_text(a, true); }

/* ---- cnnc run ---- */

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

/* Reads -i into *in (malloc'd) after checking it fits the network's input of per-example
 * shape idims; sets *batch to its example count. */
static int read_input(const args *a, const char *name, int irank, const int64_t *idims, float **in, int64_t *batch)
{
    char err[1024];
    int rank;
    int64_t dims[8];
    if (cnn_npy_read(a->input, in, &rank, dims, err, sizeof err) != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        return EXIT_INPUT;
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
        return EXIT_INPUT;
    }
    if (a->batch && a->batch != dims[0]) {
        fprintf(stderr, "%s: error: %s holds %" PRId64 " examples but --batch is %" PRId64 "\n", prog, a->input,
                dims[0], a->batch);
        return EXIT_USAGE;
    }
    *batch = dims[0];
    int64_t bad = a->allow_nonfinite ? -1 : first_nonfinite(*in, *batch * example_numel(irank, idims));
    if (bad >= 0) {
        char at[160];
        index_text(at, sizeof at, bad, irank, idims);
        fprintf(stderr, "%s: error: %s: input %s%s (element %" PRId64 ") is %s, not a finite number (--allow-nonfinite to run it anyway)\n",
                prog, a->input, name, at, bad, nonfinite_name((*in)[bad]));
        return EXIT_INPUT;
    }
    return EXIT_OK;
}

/* A non-finite value in any output is an error (unless --allow-nonfinite): reported naming the
 * output and the index, before anything is printed or written. */
static int check_outputs(const args *a, cnn_model *m, cnn_session *s, int64_t batch)
{
    for (int o = 0; o < cnn_model_output_count(m) && !a->allow_nonfinite; o++) {
        int64_t odims[4];
        int orank = cnn_model_output_shape(m, o, odims);
        const float *y = cnn_session_output(s, o);
        int64_t bad = first_nonfinite(y, batch * example_numel(orank, odims));
        if (bad >= 0) {
            char at[160];
            index_text(at, sizeof at, bad, orank, odims);
            fprintf(stderr, "%s: error: output %s%s is %s: the network overflowed or its weights or input are "
                    "not numbers (--allow-nonfinite to print it anyway)\n",
                    prog, cnn_model_output_name(m, o), at, nonfinite_name(y[bad]));
            return EXIT_INPUT;
        }
    }
    return EXIT_OK;
}

/* Prints the top classes of output o (unless -q) and writes it to -o's file. */
static int print_output(const args *a, cnn_model *m, cnn_session *s, int o, int64_t batch)
{
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
    if (!a->output)
        return EXIT_OK;
    int64_t dims[5];
    dims[0] = batch;
    for (int k = 0; k < orank; k++)
        dims[k + 1] = odims[k];
    char *path = o == 0 ? strdup(a->output) : output_path(a->output, cnn_model_output_name(m, o));
    char err[1024] = "out of memory";
    cnn_status ws = path ? cnn_npy_write(path, y, orank + 1, dims, err, sizeof err) : CNN_ERR_INTERNAL;
    free(path);
    if (ws != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        return exit_for(ws);
    }
    return EXIT_OK;
}

int cmd_run(const args *a)
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
    if (a->input && (rc = read_input(a, cnn_model_input_name(m, 0), irank, idims, &in, &batch)))
        goto done;
    if ((rc = make_session(&s, m, w, a, batch, CNN_MODE_INFER, NULL)))
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
    rc = check_outputs(a, m, s, batch);
    for (int o = 0; o < cnn_model_output_count(m) && rc == EXIT_OK; o++)
        rc = print_output(a, m, s, o, batch);
    if (rc == EXIT_OK && !a->quiet)
        printf("time: %.3f ms for %" PRId64 " example%s (%.1f images/s)\n", (t1 - t0) * 1e3, batch,
               batch == 1 ? "" : "s", (double)batch / (t1 - t0));
done:
    cnn_free(in);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}
