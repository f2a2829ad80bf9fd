/* Shared helpers of the layout suite (test_layout*.c): the example and fixture networks, plans,
 * inference runs and their comparison, counting channels-last values and reorders, and
 * lockstep (defined in test_layout.c), which checks a plan with the layout pass node by node
 * against the same plan without it. */
#ifndef CNN_TESTS_LAYOUT_UTIL_H
#define CNN_TESTS_LAYOUT_UTIL_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <sys/wait.h>

#include "tests/file_util.h"
#include "compiler/plan.h"
#include "ops/registry.h"
#include "ops/ref.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"
#ifdef CNN_HAVE_ONEDNN
#include "ops/onednn/onednn.h"
#endif

#define O2_NO_LAYOUT (CNN_PASSES_O2 & ~(unsigned)CNN_PASS_LAYOUT)

/* ---- networks: the examples and the fixtures of tests/fixtures/manifest.json */

typedef struct net {
    char path[1024];
    char network[128];   /* "" for the file's only network */
    char label[160];
} net;

static const char *example_names[] = {"lenet5", "vgg_small", "resnet20", "signal1d"};
#define NEXAMPLES (int)(sizeof example_names / sizeof example_names[0])

static inline net example(const char *name)
{
    net n;
    memset(&n, 0, sizeof n);
    const char *dir = getenv("CNN_EXAMPLES");
    snprintf(n.path, sizeof n.path, "%s/%s.cnn", dir ? dir : "examples", name);
    snprintf(n.label, sizeof n.label, "%s", name);
    return n;
}

/* Every fixture network, each .cnn file once (inference and training entries).  Returns the
 * count written into out (at most max). */
static inline int fixture_nets(net *out, int max)
{
    const char *dir = getenv("CNN_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir ? dir : "tests/fixtures");
    char *text = test_file_bytes(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    cJSON *man = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(man);
    int n = 0;
    const char *lists[] = {"inference", "training"};
    for (int l = 0; l < 2; l++) {
        cJSON *fx;
        cJSON_ArrayForEach(fx, cJSON_GetObjectItem(man, lists[l]))
        {
            const char *cnn = cJSON_GetObjectItem(fx, "cnn")->valuestring;
            const char *network = cJSON_GetObjectItem(fx, "network")->valuestring;
            bool seen = false;
            for (int i = 0; i < n; i++)
                seen |= strstr(out[i].path, cnn) != NULL && strlen(strstr(out[i].path, cnn)) == strlen(cnn);
            if (seen || n == max)
                continue;
            memset(&out[n], 0, sizeof out[n]);
            snprintf(out[n].path, sizeof out[n].path, "%s/%s", dir ? dir : "tests/fixtures", cnn);
            snprintf(out[n].network, sizeof out[n].network, "%s", network);
            snprintf(out[n].label, sizeof out[n].label, "fixture %s", cnn);
            n++;
        }
    }
    cJSON_Delete(man);
    cr_assert_gt(n, 10, "the manifest lists too few networks");
    return n;
}

/* Examples then fixtures. */
static inline int all_nets(net *out, int max)
{
    int n = 0;
    for (int i = 0; i < NEXAMPLES && n < max; i++)
        out[n++] = example(example_names[i]);
    return n + fixture_nets(out + n, max - n);
}

static inline cnn_model *load(const net *n)
{
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, n->path, n->network[0] ? n->network : NULL), CNN_OK, "%s: %s", n->label,
                 cnn_model_errmsg(m));
    return m;
}

static inline int64_t numel(int rank, const int64_t *dims)
{
    int64_t e = 1;
    for (int k = 0; k < rank; k++)
        e *= dims[k];
    return e;
}

static inline ir_plan *plan_of(cnn_model *m, unsigned passes, cnn_backend backend, int64_t batch, bool training)
{
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    o.backend = backend;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    char err[4096];
    ir_plan *p = rt_model_plan(m, &o, batch, training, &tc, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", cnn_model_name(m), err);
    return p;
}

/* ---- comparing two runs */

/* a equals b within 1e-5 relative: |a - b| <= 1e-5 (|b| + max |b|), the tensor's largest
 * magnitude standing in for elements that cancel to nearly zero (a float sum in another order
 * keeps no more digits of them).  Returns the worst ratio to that bound (<= 1 passes). */
static inline double worst_ratio(const float *a, const float *b, int64_t n, int64_t *where)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)b[i]));
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double tol = 1e-5 * (fabs((double)b[i]) + scale) + 1e-30;
        double r = d / tol;
        if (!(r <= worst)) {
            worst = isnan(r) ? INFINITY : r;
            *where = i;
        }
    }
    return worst;
}

static inline void expect_equal(const float *with, const float *without, int64_t n, const char *what)
{
    int64_t where = 0;
    double r = worst_ratio(with, without, n, &where);
    cr_expect(r <= 1.0, "%s: element %lld is %.9g with the layout pass, %.9g without (%.2f x the tolerance)", what,
              (long long)where, (double)with[where], (double)without[where], r);
}

/* Deterministic inputs in [0, 1). */
static inline void fill_input(float *x, int64_t n, int salt)
{
    for (int64_t k = 0; k < n; k++)
        x[k] = (float)((k * 7919 + salt * 104729) % 997) / 997.0f;
}

/* All outputs of one inference run, concatenated (malloc'd); *count elements. */
static inline float *infer(cnn_model *m, cnn_weights *w, unsigned passes, int threads, int64_t batch, int64_t *count,
                    const char *what)
{
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    o.threads = threads;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_INFER, NULL), CNN_OK, "%s: %s", what,
                 cnn_session_errmsg(s));
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    fill_input(cnn_session_input(s, 0), batch * numel(rank, dims), 1);
    cr_assert_eq(cnn_session_run(s), CNN_OK, "%s: %s", what, cnn_session_errmsg(s));
    int64_t total = 0;
    for (int i = 0; i < cnn_model_output_count(m); i++)
        total += batch * numel(cnn_model_output_shape(m, i, dims), dims);
    float *out = malloc(sizeof(float) * (size_t)total);
    int64_t off = 0;
    for (int i = 0; i < cnn_model_output_count(m); i++) {
        int64_t e = batch * numel(cnn_model_output_shape(m, i, dims), dims);
        memcpy(out + off, cnn_session_output(s, i), sizeof(float) * (size_t)e);
        off += e;
    }
    cnn_session_destroy(s);
    *count = total;
    return out;
}

/* Channels-last values in a plan (those a live node makes or reads). */
static inline int count_cl(const ir_plan *p)
{
    int n = 0;
    for (int v = 0; v < p->graph->nvals; v++)
        n += p->graph->vals[v].layout == OP_LAYOUT_NHWC && p->vals[v].loc != PLAN_LOC_NONE;
    return n;
}

static inline int count_reorders(const ir_plan *p)
{
    int n = 0;
    for (int s = 0; s < p->nsteps; s++)
        n += p->graph->nodes[p->steps[s].node].op == OP_REORDER;
    return n;
}

/* The node-by-node comparison of the plans with and without the layout pass (test_layout.c). */
void lockstep(cnn_model *m, int threads, int64_t batch, bool training, const char *label);

/* Channels-last only exists where oneDNN kernels take it: without oneDNN the pass has nothing
 * to do, and the tests that need it to act are skipped. */
#ifdef CNN_HAVE_ONEDNN
#define WITHOUT_ONEDNN false
#else
#define WITHOUT_ONEDNN true
#endif

#endif
