/* cnnc bench: times inference (or a training step) at each optimisation level on the chosen
 * backend, then -O2 on every other backend; a table of medians, or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/cnnc.h"

typedef struct bench_config {
    const char *name;
    unsigned passes;
    cnn_backend backend;
} bench_config;

typedef struct bench_row {
    double ms_median;
    cnn_memory_info mem;
} bench_row;

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

/* Every pass level on the chosen backend, then -O2 on each other backend.  Returns the count. */
static int make_configs(cnn_backend chosen, bench_config *cfgs)
{
    static const cnn_backend backends[] = {CNN_BACKEND_REF, CNN_BACKEND_ONEDNN, CNN_BACKEND_NATIVE};
    int n = 0;
    cfgs[n++] = (bench_config){"-O0", 0, chosen};
    cfgs[n++] = (bench_config){"dce only", CNN_PASS_DCE, chosen};
    cfgs[n++] = (bench_config){"fold_bn only", CNN_PASS_FOLD_BN, chosen};
    cfgs[n++] = (bench_config){"fuse only", CNN_PASS_FUSE, chosen};
    cfgs[n++] = (bench_config){"plan only", CNN_PASS_PLAN | CNN_PASS_INPLACE, chosen};
    cfgs[n++] = (bench_config){"-O1", CNN_PASSES_O1, chosen};
    cfgs[n++] = (bench_config){"-O2", CNN_PASSES_O2, chosen};
    cfgs[n++] = (bench_config){"-O2 no layout", CNN_PASSES_O2 & ~(unsigned)CNN_PASS_LAYOUT, chosen};
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++)
        if (backends[b] != chosen)
            cfgs[n++] = (bench_config){"-O2", CNN_PASSES_O2, backends[b]};
    return n;
}

/* Times one configuration: two warm-up runs, then `repeat` timed ones.  Its failure status
 * (after a warning) when the configuration cannot run. */
static cnn_status time_config(const args *a, cnn_model *m, cnn_weights *w, const bench_config *cfg, int64_t batch,
                              const float *labels, int repeat, bench_row *row)
{
    cnn_options o = a->opt;
    o.passes = cfg->passes & ~a->disabled;
    o.backend = cfg->backend;
    cnn_session *s = NULL;
    cnn_status st = cnn_session_create(&s, m, w, &o, batch, a->train_flag ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL);
    if (st == CNN_OK) {
        float *x = cnn_session_input(s, 0);
        int64_t idims[4];
        int irank = cnn_model_input_shape(m, 0, idims);
        int64_t per = example_numel(irank, idims);
        for (int64_t i = 0; i < batch * per; i++)
            x[i] = (float)((i * 7919) % 1000) / 1000.0f;
    }
    double times[1000];
    int nt = repeat < 1000 ? repeat : 1000;
    for (int r = -2; r < nt && st == CNN_OK; r++) {
        double t0 = now_seconds();
        st = a->train_flag ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
        if (r >= 0)
            times[r] = now_seconds() - t0;
    }
    if (st != CNN_OK) {
        fprintf(stderr, "%s: warning: %s on %s: %s\n", prog, cfg->name, backend_name(cfg->backend),
                cnn_session_errmsg(s));
        cnn_session_destroy(s);
        return st;
    }
    qsort(times, (size_t)nt, sizeof(double), cmp_double);
    row->ms_median = nt % 2 ? times[nt / 2] : 0.5 * (times[nt / 2 - 1] + times[nt / 2]);
    cnn_session_memory(s, &row->mem);
    cnn_session_destroy(s);
    return CNN_OK;
}

static void print_header(const args *a, cnn_model *m, int64_t batch, int repeat)
{
    int threads = a->opt.threads ? a->opt.threads : cnn_default_threads();
    if (a->json)
        printf("{\"network\": \"%s\", \"batch\": %" PRId64 ", \"mode\": \"%s\", \"threads\": %d, \"results\": [",
               cnn_model_name(m), batch, a->train_flag ? "train" : "infer", threads);
    else
        printf("%s, batch %" PRId64 ", %s, %d threads, median of %d runs\n\n%-14s %-8s %12s %12s %12s %12s\n",
               cnn_model_name(m), batch, a->train_flag ? "training step" : "inference", threads, repeat, "passes",
               "backend", "ms/batch", "images/s", "arena", "speed-up");
}

int cmd_bench(const args *a)
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
    bench_config cfgs[32];
    int ncfg = make_configs(a->opt.backend, cfgs);
    int repeat = a->repeat ? a->repeat : 10;
    float *labels = calloc((size_t)batch, sizeof(float));
    if (!labels) {
        rc = EXIT_INTERNAL;
        goto done;
    }
    int64_t od[4];
    int orank = cnn_model_output_shape(m, 0, od);
    for (int64_t i = 0; i < batch; i++)
        labels[i] = (float)(i % (orank >= 1 ? example_numel(orank, od) : 1));
    print_header(a, m, batch, repeat);
    double base = 0;
    bool first = true;
    cnn_status failed = CNN_OK; /* the last configuration's failure */
    for (int c = 0; c < ncfg; c++) {
        bench_row row;
        cnn_status st = time_config(a, m, w, &cfgs[c], batch, labels, repeat, &row);
        if (st != CNN_OK) {
            failed = st;
            continue;
        }
        double med = row.ms_median;
        if (c == 0)
            base = med;
        if (a->json)
            printf("%s{\"passes\": \"%s\", \"backend\": \"%s\", \"ms\": %.4f, \"images_per_s\": %.1f, \"arena_bytes\": %zu, "
                   "\"naive_bytes\": %zu, \"lower_bound_bytes\": %zu}",
                   first ? "" : ", ", cfgs[c].name, backend_name(cfgs[c].backend), med * 1e3, (double)batch / med,
                   row.mem.planned, row.mem.naive, row.mem.lower_bound);
        else
            printf("%-14s %-8s %12.3f %12.1f %11.2fM %11.2fx\n", cfgs[c].name, backend_name(cfgs[c].backend), med * 1e3,
                   (double)batch / med, (double)row.mem.planned / 1048576.0, base / med);
        first = false;
    }
    if (a->json)
        printf("]}\n");
    if (first) {
        /* not one configuration ran: the warnings said why */
        fprintf(stderr, "%s: error: every configuration failed\n", prog);
        rc = size_exit(a, m, failed, a->train_flag);
    }
done:
    free(labels);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}
