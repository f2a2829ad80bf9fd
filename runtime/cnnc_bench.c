/* cnnc bench: times inference (or a training step) at each optimisation level on the chosen
 * backend, then -O2 on every other backend; a table of medians with their spread (a speed-up
 * whose range overlaps the first row's is marked not significant), or JSON; --only-o2 times the
 * -O2 row alone.  --profile then
 * times every node of the -O2 plan on the chosen backend. */
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
    double min, median, max; /* seconds per run */
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

/* Every pass level on the chosen backend, then -O2 on each other backend (or -O2 on the chosen
 * backend only).  Returns the count. */
static int make_configs(cnn_backend chosen, bool only_o2, bench_config *cfgs)
{
    static const cnn_backend backends[] = {CNN_BACKEND_REF, CNN_BACKEND_ONEDNN, CNN_BACKEND_NATIVE};
    int n = 0;
    if (only_o2) {
        cfgs[n++] = (bench_config){"-O2", CNN_PASSES_O2, chosen};
        return n;
    }
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

static void print_profile(const args *a, cnn_session *s, const bench_config *cfg, int64_t batch, int runs);

/* The least time a configuration runs before it is timed (time_config). */
#define BENCH_WARM 0.2

/* Times one configuration: warm-up runs (two, and more until BENCH_WARM seconds have passed
 * since the first, which also prepares the one-thread calls: a session of several threads
 * starts its runs on one thread and tries its planned counts after a few runs, docs/choices.md
 * "Threads", and short runs would time that start), then `repeat`
 * timed ones (with every node timed too when profile).  Its failure status (after a warning)
 * when the configuration cannot run. */
static cnn_status time_config(const args *a, cnn_model *m, cnn_weights *w, const bench_config *cfg, int64_t batch,
                              const float *labels, int repeat, bool profile, bench_row *row)
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
    double warm0 = 0;
    for (int r = 0; st == CNN_OK && (r < 2 || now_seconds() - warm0 < BENCH_WARM) && r < 10000; r++) {
        st = a->train_flag ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
        if (r == 0)
            warm0 = now_seconds();
    }
    double times[1000];
    int nt = repeat < 1000 ? repeat : 1000;
    for (int r = 0; r < nt && st == CNN_OK; r++) {
        if (r == 0 && profile)
            st = cnn_session_profile_start(s, nt);
        double t0 = now_seconds();
        st = a->train_flag ? cnn_session_train_step(s, labels, true, NULL, NULL) : cnn_session_run(s);
        times[r] = now_seconds() - t0;
    }
    if (st != CNN_OK) {
        fprintf(stderr, "%s: warning: %s on %s: %s\n", prog, cfg->name, backend_name(cfg->backend),
                cnn_session_errmsg(s));
        cnn_session_destroy(s);
        return st;
    }
    qsort(times, (size_t)nt, sizeof(double), cmp_double);
    row->median = nt % 2 ? times[nt / 2] : 0.5 * (times[nt / 2 - 1] + times[nt / 2]);
    row->min = times[0];
    row->max = times[nt - 1];
    cnn_session_memory(s, &row->mem);
    if (profile)
        print_profile(a, s, cfg, batch, nt);
    cnn_session_destroy(s);
    return CNN_OK;
}

typedef struct prof_row {
    int step;
    cnn_profile_entry e;
} prof_row;

static int cmp_prof(const void *x, const void *y)
{
    const prof_row *a = x, *b = y;
    return a->e.median_s > b->e.median_s ? -1 : a->e.median_s < b->e.median_s ? 1 : a->step - b->step;
}

/* The per-node table (or JSON array), slowest node first, with each node's share of the summed
 * medians. */
static void print_profile(const args *a, cnn_session *s, const bench_config *cfg, int64_t batch, int runs)
{
    int n = cnn_session_profile_steps(s);
    prof_row *rows = calloc((size_t)(n > 0 ? n : 1), sizeof *rows);
    if (!rows)
        return;
    double total = 0;
    for (int i = 0; i < n; i++) {
        rows[i].step = i;
        cnn_session_profile_entry(s, i, &rows[i].e);
        total += rows[i].e.median_s;
    }
    qsort(rows, (size_t)n, sizeof *rows, cmp_prof);
    if (a->json)
        printf(", \"profile\": {\"passes\": \"%s\", \"backend\": \"%s\", \"runs\": %d, \"nodes\": [", cfg->name,
               backend_name(cfg->backend), runs);
    else
        printf("\nprofile: %s on %s, batch %" PRId64 ", %d runs; nodes by median time, slowest first\n"
               "%4s  %-28s %-16s %-8s %-7s %-6s %10s %21s %9s %6s\n",
               cfg->name, backend_name(cfg->backend), batch, runs, "step", "node", "op", "phase", "backend", "layout",
               "median ms", "[min - max] ms", "GFLOP/s", "share");
    for (int i = 0; i < n; i++) {
        const cnn_profile_entry *e = &rows[i].e;
        double gf = e->flops > 0 && e->median_s > 0 ? e->flops / e->median_s * 1e-9 : 0;
        if (a->json)
            printf("%s{\"step\": %d, \"node\": \"%s\", \"op\": \"%s\", \"phase\": \"%s\", \"backend\": \"%s\", "
                   "\"layout\": \"%s\", \"ms\": {\"min\": %.5f, \"median\": %.5f, \"max\": %.5f}, \"gflops\": %.3f, "
                   "\"share\": %.5f}",
                   i ? ", " : "", rows[i].step, e->name, e->op, e->phase, e->backend, e->layout, e->min_s * 1e3,
                   e->median_s * 1e3, e->max_s * 1e3, gf, total > 0 ? e->median_s / total : 0);
        else {
            char range[40], gfs[16];
            snprintf(range, sizeof range, "[%.3f - %.3f]", e->min_s * 1e3, e->max_s * 1e3);
            if (gf > 0)
                snprintf(gfs, sizeof gfs, "%.1f", gf);
            else
                snprintf(gfs, sizeof gfs, "-");
            printf("%4d  %-28.28s %-16.16s %-8s %-7s %-6s %10.3f %21s %9s %5.1f%%\n", rows[i].step, e->name, e->op,
                   e->phase, e->backend, e->layout, e->median_s * 1e3, range, gfs,
                   total > 0 ? 100.0 * e->median_s / total : 0);
        }
    }
    if (a->json)
        printf("], \"sum_of_medians_ms\": %.4f}", total * 1e3);
    else
        printf("%4s  %-28s %-16s %-8s %-7s %-6s %10.3f\n\n", "", "sum of the medians", "", "", "", "", total * 1e3);
    free(rows);
}

static void print_header(const args *a, cnn_model *m, int64_t batch, int repeat)
{
    int threads = a->opt.threads ? a->opt.threads : cnn_default_threads();
    static const char *const precision[3] = {"fp32", "bf16", "int8"};
    const char *prec = (unsigned)a->opt.precision < 3 ? precision[a->opt.precision] : "?";
    if (a->json)
        printf("{\"cnnc_version\": \"%s\", \"cnnc_build\": \"%s\", \"cpu\": \"%s\", \"isa\": \"%s\", \"network\": "
               "\"%s\", \"batch\": %" PRId64 ", \"mode\": \"%s\", \"threads\": %d, \"repeat\": %d, \"precision\": \"%s\", "
               "\"results\": [",
               cnn_version(), cnn_build_id(), cnn_cpu_model(), cnn_cpu_isa(), cnn_model_name(m), batch, a->train_flag ? "train" : "infer",
               threads, repeat, prec);
    else
        printf("%s, batch %" PRId64 ", %s%s%s, %d threads, %d runs per row (cnnc %s%s%s, %s, %s)\n\n"
               "%-14s %-8s %10s %21s %10s %10s %12s\n",
               cnn_model_name(m), batch, a->train_flag ? "training step" : "inference",
               a->opt.precision != CNN_PRECISION_FP32 ? " in " : "", a->opt.precision != CNN_PRECISION_FP32 ? prec : "",
               threads, repeat, cnn_version(), cnn_build_id()[0] ? " " : "", cnn_build_id(),
               cnn_cpu_model(), cnn_cpu_isa(), "passes", "backend", "median ms", "[min - max] ms", "images/s", "arena",
               "speed-up");
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
    int ncfg = make_configs(a->opt.backend, a->only_o2, cfgs);
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
    bench_row base = {0};
    bool first = true, any_ns = false;
    cnn_status failed = CNN_OK; /* the last configuration's failure */
    for (int c = 0; c < ncfg; c++) {
        bench_row row;
        cnn_status st = time_config(a, m, w, &cfgs[c], batch, labels, repeat, false, &row);
        if (st != CNN_OK) {
            failed = st;
            continue;
        }
        double med = row.median;
        if (first)
            base = row;
        /* the ranges overlap: the speed-up is within the noise */
        bool ns = !first && row.min <= base.max && base.min <= row.max;
        any_ns |= ns;
        if (a->json)
            printf("%s{\"passes\": \"%s\", \"backend\": \"%s\", \"ms\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, "
                   "\"images_per_s\": %.1f, \"speedup\": %.4f, \"significant\": %s, \"arena_bytes\": %zu, "
                   "\"naive_bytes\": %zu, \"lower_bound_bytes\": %zu}",
                   first ? "" : ", ", cfgs[c].name, backend_name(cfgs[c].backend), med * 1e3, row.min * 1e3,
                   row.max * 1e3, (double)batch / med, base.median / med, ns || first ? "false" : "true",
                   row.mem.planned, row.mem.naive, row.mem.lower_bound);
        else {
            char range[40];
            snprintf(range, sizeof range, "[%.3f - %.3f]", row.min * 1e3, row.max * 1e3);
            printf("%-14s %-8s %10.3f %21s %10.1f %9.2fM %9.2fx%s\n", cfgs[c].name, backend_name(cfgs[c].backend),
                   med * 1e3, range, (double)batch / med, (double)row.mem.planned / 1048576.0, base.median / med,
                   ns ? " ns" : "");
        }
        first = false;
    }
    if (a->json)
        printf("]");
    else if (any_ns)
        printf("\nns: not significant, the row's [min - max] overlaps the first row's\n");
    if (a->profile && !first) {
        /* every node of the -O2 plan on the chosen backend, timed over fresh runs */
        bench_config pc = {"-O2", CNN_PASSES_O2, a->opt.backend};
        bench_row row;
        cnn_status st = time_config(a, m, w, &pc, batch, labels, repeat, true, &row);
        if (st != CNN_OK)
            failed = st, first = true;
    }
    if (a->json)
        printf("}\n");
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
