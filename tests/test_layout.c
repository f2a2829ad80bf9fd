/* The layout pass (compiler/pass_layout.c): channels-last between oneDNN kernels, reorders at
 * the edges.  Outputs and training steps with the pass equal those without it (example and
 * fixture networks, 1 and 2 threads); where the reorders go and how many there are; that no
 * kernel taking only plain tensors ever gets a channels-last one; that a value read by several
 * readers is reordered once; that oneDNN still picks brgconv; the reorder kernels; the CLI flag. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <sys/wait.h>

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

static net example(const char *name)
{
    net n;
    memset(&n, 0, sizeof n);
    const char *dir = getenv("CNN_EXAMPLES");
    snprintf(n.path, sizeof n.path, "%s/%s.cnn", dir ? dir : "examples", name);
    snprintf(n.label, sizeof n.label, "%s", name);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Every fixture network, each .cnn file once (inference and training entries).  Returns the
 * count written into out (at most max). */
static int fixture_nets(net *out, int max)
{
    const char *dir = getenv("CNN_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir ? dir : "tests/fixtures");
    char *text = slurp(path);
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
static int all_nets(net *out, int max)
{
    int n = 0;
    for (int i = 0; i < NEXAMPLES && n < max; i++)
        out[n++] = example(example_names[i]);
    return n + fixture_nets(out + n, max - n);
}

static cnn_model *load(const net *n)
{
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, n->path, n->network[0] ? n->network : NULL), CNN_OK, "%s: %s", n->label,
                 cnn_model_errmsg(m));
    return m;
}

static int64_t numel(int rank, const int64_t *dims)
{
    int64_t e = 1;
    for (int k = 0; k < rank; k++)
        e *= dims[k];
    return e;
}

static ir_plan *plan_of(cnn_model *m, unsigned passes, cnn_backend backend, int64_t batch, bool training)
{
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    o.backend = backend;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    char err[4096];
    ir_plan *p = rt_model_plan(m, &o, batch, training, &tc, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", cnn_model_name(m), err);
    return p;
}

/* ---- comparing two runs */

/* a equals b within 1e-5 relative: |a - b| <= 1e-5 (|b| + max |b|), the tensor's largest
 * magnitude standing in for elements that cancel to nearly zero (a float sum in another order
 * keeps no more digits of them).  Returns the worst ratio to that bound (<= 1 passes). */
static double worst_ratio(const float *a, const float *b, int64_t n, int64_t *where)
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

static void expect_equal(const float *with, const float *without, int64_t n, const char *what)
{
    int64_t where = 0;
    double r = worst_ratio(with, without, n, &where);
    cr_expect(r <= 1.0, "%s: element %lld is %.9g with the layout pass, %.9g without (%.2f x the tolerance)", what,
              (long long)where, (double)with[where], (double)without[where], r);
}

/* Deterministic inputs in [0, 1). */
static void fill_input(float *x, int64_t n, int salt)
{
    for (int64_t k = 0; k < n; k++)
        x[k] = (float)((k * 7919 + salt * 104729) % 997) / 997.0f;
}

/* All outputs of one inference run, concatenated (malloc'd); *count elements. */
static float *infer(cnn_model *m, cnn_weights *w, unsigned passes, int threads, int64_t batch, int64_t *count,
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
static int count_cl(const ir_plan *p)
{
    int n = 0;
    for (int v = 0; v < p->graph->nvals; v++)
        n += p->graph->vals[v].layout == OP_LAYOUT_NHWC && p->vals[v].loc != PLAN_LOC_NONE;
    return n;
}

static int count_reorders(const ir_plan *p)
{
    int n = 0;
    for (int s = 0; s < p->nsteps; s++)
        n += p->graph->nodes[p->steps[s].node].op == OP_REORDER;
    return n;
}

/* ---- node by node: the same step with and without the pass, from the same inputs
 *
 * A training step cannot be compared end to end to 1e-5: where a ReLU's input or a max-pool
 * window is within rounding of a tie, the two runs' different summation orders (oneDNN picks
 * other algorithms for other layouts) can decide the backward pass differently, and batchnorm
 * spreads that over a channel.  So both plans run step by step: every value the run without
 * the pass makes is kept, and every node of the run with it is checked against the same
 * node's outputs there (channels-last outputs read back in plain order), then given exactly
 * those outputs, so that the next node starts from the same inputs.  Reorders must move
 * elements exactly.  At the end both runs' weights (updated in place) must agree. */

typedef struct kept {
    char key[OP_NAME_MAX + 8];
    float *data;       /* plain order */
    int64_t n;
} kept;

/* The element order of a [N, C, S...] tensor: plain <-> channels-last. */
static void permute(const float *src, float *dst, const op_tensor *t, bool to_cl)
{
    int64_t n = t->d[0], c = t->d[1], sp = 1;
    for (int k = 2; k < t->rank; k++)
        sp *= t->d[k];
    for (int64_t b = 0; b < n; b++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t s = 0; s < sp; s++) {
                int64_t plain = (b * c + k) * sp + s, cl = (b * sp + s) * c + k;
                if (to_cl)
                    dst[cl] = src[plain];
                else
                    dst[plain] = src[cl];
            }
}

static int64_t tensor_numel(const op_tensor *t)
{
    return numel(t->rank, t->d);
}

static uint64_t seed_of(const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ULL;
    return h;
}

static cnn_session *lockstep_session(cnn_model *m, cnn_weights *w, unsigned passes, int threads, int64_t batch,
                                     bool training, const char *what)
{
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    o.threads = threads;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, training ? CNN_MODE_TRAIN : CNN_MODE_INFER, NULL), CNN_OK,
                 "%s: %s", what, cnn_session_errmsg(s));
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    fill_input(cnn_session_input(s, 0), batch * numel(rank, dims), 4);
    const ir_graph *g = s->plan->graph;
    if (g->label >= 0) { /* class indices (cross-entropy) */
        int64_t classes = numel(cnn_model_output_shape(m, 0, dims), dims);
        for (int64_t i = 0; i < batch; i++)
            s->data[g->label][i] = (float)(i % classes);
    }
    return s;
}

static int run_step(cnn_session *s, int st, const char *what)
{
    op_call *c = &s->calls[st];
    c->seed = seed_of(c->node->name);
    c->step = 1;
    char msg[1024] = "";
    int rc = s->kernels[st]->run(c, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s: %s: %s", what, c->node->name, msg);
    return rc;
}

/* Compares the plans of passes `base` (without the layout pass) and base + layout. */
static void lockstep_at(cnn_model *m, unsigned base, int threads, int64_t batch, bool training, const char *label)
{
    char what[256];
    snprintf(what, sizeof what, "%s, %s, %d threads, passes %#x", label, training ? "training" : "inference", threads,
             base);
    cnn_weights *wa, *wb;
    cr_assert_eq(cnn_weights_create(&wa, m, 5), CNN_OK);
    cr_assert_eq(cnn_weights_create(&wb, m, 5), CNN_OK);
    cnn_session *a = lockstep_session(m, wa, base, threads, batch, training, what);
    cnn_session *b = lockstep_session(m, wb, base | CNN_PASS_LAYOUT, threads, batch, training, what);
    const ir_plan *pa = a->plan, *pb = b->plan;
    cr_assert_eq(pb->nsteps, pa->nsteps + count_reorders(pb), "%s: the pass adds only reorders", what);

    /* the run without the pass, every output kept */
    omp_set_num_threads(threads);
    int nkept = 0;
    kept *k = calloc((size_t)pa->nsteps * OP_MAX_OUT + 1, sizeof(kept));
    for (int st = 0; st < pa->nsteps; st++) {
        run_step(a, st, what);
        const op_call *c = &a->calls[st];
        for (int o = 0; o < c->nout; o++) {
            kept *e = &k[nkept++];
            snprintf(e->key, sizeof e->key, "%s#%d", c->node->name, o);
            e->n = tensor_numel(&c->out[o]);
            e->data = malloc(sizeof(float) * (size_t)(e->n + 1));
            memcpy(e->data, c->out[o].data, sizeof(float) * (size_t)e->n);
            for (int j = 0; j < nkept - 1; j++)
                cr_assert_str_neq(k[j].key, e->key, "%s: two nodes called %s", what, c->node->name);
        }
    }
    /* the run with it, checked and resynchronised node by node */
    int checked = 0;
    for (int st = 0; st < pb->nsteps; st++) {
        op_call *c = &b->calls[st];
        if (c->node->op == OP_REORDER) {
            const op_tensor *x = &c->in[0], *y = &c->out[0];
            float *want = malloc(sizeof(float) * (size_t)(tensor_numel(x) + 1));
            run_step(b, st, what);
            permute(x->data, want, x, y->layout == 1);
            cr_expect_eq(memcmp(want, y->data, sizeof(float) * (size_t)tensor_numel(x)), 0,
                         "%s: %s does not move the elements exactly", what, c->node->name);
            free(want);
            continue;
        }
        run_step(b, st, what);
        for (int o = 0; o < c->nout; o++) {
            char key[OP_NAME_MAX + 8];
            snprintf(key, sizeof key, "%s#%d", c->node->name, o);
            const kept *e = NULL;
            for (int j = 0; j < nkept && !e; j++)
                if (strcmp(k[j].key, key) == 0)
                    e = &k[j];
            cr_assert_not_null(e, "%s: %s has no counterpart without the pass", what, key);
            op_tensor *y = &c->out[o];
            cr_assert_eq(tensor_numel(y), e->n);
            float *plain = malloc(sizeof(float) * (size_t)(e->n + 1));
            if (y->layout == 1)
                permute(y->data, plain, y, false);
            else
                memcpy(plain, y->data, sizeof(float) * (size_t)e->n);
            char w2[400];
            snprintf(w2, sizeof w2, "%s: %s (%s, output %d)", what, c->node->name, op_name(c->node->op), o);
            expect_equal(plain, e->data, e->n, w2);
            checked++;
            if (y->layout == 1) /* the next nodes start from the same values */
                permute(e->data, y->data, y, true);
            else
                memcpy(y->data, e->data, sizeof(float) * (size_t)e->n);
            free(plain);
        }
    }
    cr_expect_gt(checked, 0);
    /* weights (and batchnorm's running statistics), updated in place by the step */
    for (int t = 0; t < cnn_weights_count(wa); t++) {
        const char *name;
        int rank;
        int64_t dims[CNN_WEIGHT_MAX_RANK];
        const float *x = cnn_weights_tensor(wa, t, &name, &rank, dims);
        const float *y = cnn_weights_tensor(wb, t, NULL, &rank, dims);
        char w2[400];
        snprintf(w2, sizeof w2, "%s: weight %s after the step", what, name);
        expect_equal(y, x, numel(rank, dims), w2);
    }
    for (int j = 0; j < nkept; j++)
        free(k[j].data);
    free(k);
    cnn_session_destroy(a);
    cnn_session_destroy(b);
    cnn_weights_destroy(wa);
    cnn_weights_destroy(wb);
}

static void lockstep(cnn_model *m, int threads, int64_t batch, bool training, const char *label)
{
    lockstep_at(m, O2_NO_LAYOUT, threads, batch, training, label);
}

/* ---- outputs with and without the pass */

/* Channels-last only exists where oneDNN kernels take it: without oneDNN the pass has nothing
 * to do, and the tests that need it to act are skipped. */
#ifdef CNN_HAVE_ONEDNN
#define WITHOUT_ONEDNN false
#else
#define WITHOUT_ONEDNN true
#endif

Test(layout, inference_outputs_equal_without_the_pass, .timeout = 900, .disabled = WITHOUT_ONEDNN)
{
    net nets[64];
    int nn = all_nets(nets, 64);
    for (int i = 0; i < nn; i++) {
        cnn_model *m = load(&nets[i]);
        cnn_weights *w;
        cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
        /* non-trivial running statistics, so the folded weights differ from the raw ones */
        for (int t = 0; t < cnn_weights_count(w); t++) {
            const char *name;
            int rank;
            int64_t dims[CNN_WEIGHT_MAX_RANK];
            float *d = cnn_weights_tensor(w, t, &name, &rank, dims);
            if (strstr(name, "running_var") || strstr(name, "running_mean"))
                for (int64_t k = 0; k < dims[0]; k++)
                    d[k] = strstr(name, "mean") ? 0.1f * (float)(k % 7) - 0.3f : 0.5f + 0.05f * (float)(k % 11);
        }
        if (i < NEXAMPLES) { /* the examples really run channels-last */
            ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 3, false);
            cr_expect_gt(count_cl(p), 0, "%s: no channels-last value", nets[i].label);
            plan_destroy(p);
        }
        for (int threads = 1; threads <= 2; threads++) {
            int64_t batch = i < NEXAMPLES ? 3 : 7;
            int64_t n1, n2;
            char what[256];
            snprintf(what, sizeof what, "%s, inference, batch %lld, %d threads", nets[i].label, (long long)batch,
                     threads);
            float *with = infer(m, w, CNN_PASSES_O2, threads, batch, &n1, what);
            float *without = infer(m, w, O2_NO_LAYOUT, threads, batch, &n2, what);
            cr_assert_eq(n1, n2);
            expect_equal(with, without, n1, what);
            free(with);
            free(without);
        }
        cnn_weights_destroy(w);
        cnn_model_destroy(m);
    }
}

/* Every node of a training step (forward, loss, backward, updates) and of inference computes
 * with the pass what it computes without it, from the same inputs; 1 and 2 threads.  The
 * first step's loss (the forward pass only, no decision depends on rounding there) also
 * agrees end to end. */
Test(layout, training_steps_equal_without_the_pass, .timeout = 900, .disabled = WITHOUT_ONEDNN)
{
    net nets[64];
    int nn = all_nets(nets, 64);
    for (int i = 0; i < nn; i++) {
        cnn_model *m = load(&nets[i]);
        int64_t dims[4];
        bool trainable = cnn_model_output_shape(m, 0, dims) == 1; /* cross-entropy needs a vector */
        if (trainable && i < NEXAMPLES) {
            ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 4, true);
            cr_expect_gt(count_cl(p), 0, "%s: no channels-last value in training", nets[i].label);
            plan_destroy(p);
        }
        for (int threads = 1; threads <= 2; threads++) {
            lockstep(m, threads, 4, false, nets[i].label);
            if (!trainable)
                continue;
            lockstep(m, threads, 4, true, nets[i].label);
            float loss[2];
            for (int c = 0; c < 2; c++) {
                cnn_weights *w;
                cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
                cnn_options o;
                cnn_options_default(&o);
                o.passes = c ? CNN_PASSES_O2 : O2_NO_LAYOUT;
                o.threads = threads;
                cnn_session *s;
                cr_assert_eq(cnn_session_create(&s, m, w, &o, 4, CNN_MODE_TRAIN, NULL), CNN_OK, "%s",
                             cnn_session_errmsg(s));
                int rank = cnn_model_input_shape(m, 0, dims);
                fill_input(cnn_session_input(s, 0), 4 * numel(rank, dims), 2);
                float labels[4] = {0, 1, 2, 0};
                cr_assert_eq(cnn_session_train_step(s, labels, true, &loss[c], NULL), CNN_OK, "%s",
                             cnn_session_errmsg(s));
                cnn_session_destroy(s);
                cnn_weights_destroy(w);
            }
            char what[256];
            snprintf(what, sizeof what, "%s, training loss, %d threads", nets[i].label, threads);
            expect_equal(&loss[1], &loss[0], 1, what);
        }
        cnn_model_destroy(m);
    }
}

/* The pass alone, on graphs nothing folded or fused: batchnorm, activations, adds and pools
 * as nodes of their own, which follow the convolutions into channels-last. */
Test(layout, the_pass_alone_on_unfused_graphs, .timeout = 300, .disabled = WITHOUT_ONEDNN)
{
    const char *names[] = {"resnet20", "lenet5", "signal1d"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        net n = example(names[i]);
        cnn_model *m = load(&n);
        for (int training = 0; training < 2; training++) {
            ir_plan *p = plan_of(m, CNN_PASS_LAYOUT, CNN_BACKEND_AUTO, 4, training);
            int either = 0;
            for (int s = 0; s < p->nsteps; s++) {
                const ir_node *nd = &p->graph->nodes[p->steps[s].node];
                const op_kernel *k = op_kernel_get(nd->op, p->steps[s].backend);
                if (k->layouts == OP_LAYOUT_EITHER && nd->op != OP_REORDER && nd->nout > 0 &&
                    p->graph->vals[nd->out[0]].layout == OP_LAYOUT_NHWC)
                    either++;
            }
            cr_expect_gt(either, 0, "%s: no pool, activation or batchnorm runs channels-last", names[i]);
            plan_destroy(p);
            lockstep_at(m, 0, 2, 4, training, n.label);
        }
        cnn_model_destroy(m);
    }
}

/* ---- where the reorders go */

/* The reorder node of step s, or NULL. */
static const ir_node *reorder_at(const ir_plan *p, int s)
{
    const ir_node *nd = &p->graph->nodes[p->steps[s].node];
    return nd->op == OP_REORDER ? nd : NULL;
}

/* The first step reading value v, or -1. */
static int first_reader(const ir_plan *p, int v)
{
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &p->graph->nodes[p->steps[s].node];
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] == v)
                return s;
    }
    return -1;
}

/* resnet20: the image is reordered to channels-last once; everything after it stays
 * channels-last up to global_avgpool, whose [N, 64] output is the same bytes in both orders,
 * so dense reads it without a reorder: exactly one reorder, in inference and in training (the
 * gradients flow back channels-last too, and the input has no gradient). */
Test(layout, resnet20_has_one_reorder_at_the_input, .disabled = WITHOUT_ONEDNN)
{
    net n = example("resnet20");
    cnn_model *m = load(&n);
    for (int training = 0; training < 2; training++) {
        ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 8, training);
        const ir_graph *g = p->graph;
        cr_expect_eq(count_reorders(p), 1, "%s: %d reorders", training ? "training" : "inference", count_reorders(p));
        for (int s = 0; s < p->nsteps; s++) {
            const ir_node *r = reorder_at(p, s);
            if (!r)
                continue;
            cr_expect_eq(r->in[0], g->inputs[0], "the reorder reads %s, not the image", g->vals[r->in[0]].name);
            cr_expect_eq(r->attrs.reorder.from, OP_LAYOUT_PLAIN);
            cr_expect_eq(r->attrs.reorder.to, OP_LAYOUT_NHWC);
            cr_expect_eq(g->vals[r->out[0]].layout, OP_LAYOUT_NHWC);
            int reader = first_reader(p, r->out[0]);
            cr_assert_geq(reader, 0);
            cr_expect_eq(g->nodes[p->steps[reader].node].op, OP_CONV2D);
        }
        /* every convolution, forward and backward, runs channels-last */
        int convs = 0;
        for (int s = 0; s < p->nsteps; s++) {
            const ir_node *nd = &g->nodes[p->steps[s].node];
            if (nd->op != OP_CONV2D && nd->op != OP_CONV_BWD_DATA && nd->op != OP_CONV_BWD_WEIGHTS)
                continue;
            convs++;
            int act = nd->op == OP_CONV_BWD_WEIGHTS ? nd->in[1] : nd->in[0];
            cr_expect_eq(g->vals[act].layout, OP_LAYOUT_NHWC, "%s reads a plain %s", nd->name, g->vals[act].name);
        }
        cr_expect_eq(convs, training ? 21 * 3 - 1 : 21);
        plan_destroy(p);
    }
    cnn_model_destroy(m);
}

/* The other examples: lenet5's one-channel image needs no reorder (both orders are the same
 * bytes) but flatten reads C,H,W order: one reorder before it, and in training one more for
 * the gradient flatten copies back.  vgg_small: the image and before flatten.  signal1d: a
 * one-channel signal in, a vector out of global_avgpool: none, though its convolutions run
 * channels-last.  Without the pass, or on the reference backend, there are none at all. */
Test(layout, reorder_counts_of_the_examples, .disabled = WITHOUT_ONEDNN)
{
    static const struct {
        const char *name;
        int infer, train;
    } want[] = {{"lenet5", 1, 2}, {"vgg_small", 2, 3}, {"signal1d", 0, 0}, {"resnet20", 1, 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        net n = example(want[i].name);
        cnn_model *m = load(&n);
        for (int training = 0; training < 2; training++) {
            ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 4, training);
            int expect = training ? want[i].train : want[i].infer;
            cr_expect_eq(count_reorders(p), expect, "%s %s: %d reorders, expected %d", want[i].name,
                         training ? "training" : "inference", count_reorders(p), expect);
            cr_expect_gt(count_cl(p), 0, "%s: nothing runs channels-last", want[i].name);
            plan_destroy(p);
            p = plan_of(m, O2_NO_LAYOUT, CNN_BACKEND_AUTO, 4, training);
            cr_expect_eq(count_reorders(p), 0);
            cr_expect_eq(count_cl(p), 0);
            plan_destroy(p);
            p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_REF, 4, training);
            cr_expect_eq(count_reorders(p), 0, "%s: the reference backend needs no reorder", want[i].name);
            cr_expect_eq(count_cl(p), 0);
            plan_destroy(p);
        }
        cnn_model_destroy(m);
    }
}

/* Invariants of every plan, examples and fixtures, inference and training: a step whose
 * kernel takes plain tensors only (every reference kernel but reorder's) neither reads nor
 * writes a channels-last value; the others see one layout; the public API's tensors are plain;
 * no value is reordered twice to the same layout; a reorder changes the layout its attributes
 * say and never shares memory with its input; the memory plan has no overlap. */
Test(layout, plans_keep_the_layout_rules, .timeout = 300, .disabled = WITHOUT_ONEDNN)
{
    net nets[64];
    int nn = all_nets(nets, 64);
    for (int i = 0; i < nn; i++) {
        cnn_model *m = load(&nets[i]);
        for (int level = 0; level < 4; level++) {
            int training = level & 1;
            unsigned passes = level < 2 ? CNN_PASSES_O2 : CNN_PASS_LAYOUT;
            int64_t dims[4];
            if (training && cnn_model_output_shape(m, 0, dims) != 1)
                continue;
            ir_plan *p = plan_of(m, passes, CNN_BACKEND_AUTO, 5, training);
            const ir_graph *g = p->graph;
            const char *mode = training ? "training" : "inference";
            char err[1024];
            cr_expect_eq(plan_check_overlap(p, err, sizeof err), 0, "%s %s: %s", nets[i].label, mode, err);
            for (int k = 0; k < g->ninputs; k++)
                cr_expect_eq(g->vals[g->inputs[k]].layout, OP_LAYOUT_PLAIN);
            for (int k = 0; k < g->noutputs; k++)
                cr_expect_eq(g->vals[g->outputs[k]].layout, OP_LAYOUT_PLAIN, "%s: output %s is channels-last",
                             nets[i].label, g->output_names[k]);
            if (g->label >= 0)
                cr_expect_eq(g->vals[g->label].layout, OP_LAYOUT_PLAIN);
            for (int v = 0; v < g->nvals; v++)
                if (!g->vals[v].batched)
                    cr_expect_eq(g->vals[v].layout, OP_LAYOUT_PLAIN, "%s: unbatched %s is channels-last", nets[i].label,
                                 g->vals[v].name);
            for (int s = 0; s < p->nsteps; s++) {
                const ir_node *nd = &g->nodes[p->steps[s].node];
                const op_kernel *k = op_kernel_get(nd->op, p->steps[s].backend);
                cr_assert_not_null(k);
                int ncl = 0, nplain = 0;
                for (int t = 0; t < nd->nin + nd->nout; t++) {
                    int v = t < nd->nin ? nd->in[t] : nd->out[t - nd->nin];
                    const ir_value *val = &g->vals[v];
                    bool bears = val->batched && val->shape.rank >= 2 && val->shape.d[0] > 1 &&
                                 op_shape_numel(&val->shape) > val->shape.d[0];
                    if (val->layout == OP_LAYOUT_NHWC) {
                        ncl++;
                        cr_expect(bears, "%s: %s is channels-last but has one order", nets[i].label, val->name);
                    } else if (bears) {
                        nplain++;
                    }
                }
                if (nd->op == OP_REORDER) {
                    cr_expect_eq(g->vals[nd->in[0]].layout, nd->attrs.reorder.from);
                    cr_expect_eq(g->vals[nd->out[0]].layout, nd->attrs.reorder.to);
                    cr_expect_neq(nd->attrs.reorder.from, nd->attrs.reorder.to);
                    cr_expect_eq(p->vals[nd->out[0]].alias_of, -1, "a reorder's output aliases");
                    for (int s2 = 0; s2 < s; s2++) {
                        const ir_node *r2 = reorder_at(p, s2);
                        cr_expect(!r2 || r2->in[0] != nd->in[0] || r2->attrs.reorder.to != nd->attrs.reorder.to,
                                  "%s %s: %s is reordered twice", nets[i].label, mode, g->vals[nd->in[0]].name);
                    }
                    continue;
                }
                if (k->layouts == OP_LAYOUT_PLAIN_ONLY || p->steps[s].backend == OP_BACKEND_REF)
                    cr_expect_eq(ncl, 0, "%s %s: %s (%s, %s) sees a channels-last tensor", nets[i].label, mode, nd->name,
                                 op_name(nd->op), op_backend_name(p->steps[s].backend));
                else
                    cr_expect(ncl == 0 || nplain == 0, "%s %s: %s mixes layouts", nets[i].label, mode, nd->name);
            }
            plan_destroy(p);
        }
        cnn_model_destroy(m);
    }
}

/* A channels-last value read by several readers that need plain tensors (flatten, dense, the
 * graph output) is reordered once, and the copy serves them all; in training the gradient
 * summed from those readers comes back plain and is reordered once for the convolution's
 * backward. */
Test(layout, one_reorder_per_value_however_many_readers, .disabled = WITHOUT_ONEDNN)
{
    const char *src = "network shared {\n"
                      "    input x[3, 8, 8];\n"
                      "    h = x -> conv2d(4, 3, pad=1) -> relu;\n"
                      "    output a = h -> flatten -> dense(5);\n"
                      "    output b = h -> dense(3);\n"
                      "    output c = h;\n"
                      "}\n";
    cnn_model *m;
    cr_assert_eq(cnn_model_compile(&m, "shared.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    for (int training = 0; training < 2; training++) {
        ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 2, training);
        const ir_graph *g = p->graph;
        /* the image in, h out (shared), and in training the gradient of h back in */
        cr_expect_eq(count_reorders(p), training ? 3 : 2, "%d reorders", count_reorders(p));
        int h_plain = -1;
        for (int s = 0; s < p->nsteps; s++) {
            const ir_node *r = reorder_at(p, s);
            if (r && r->attrs.reorder.to == OP_LAYOUT_PLAIN && strcmp(g->vals[r->in[0]].name, "relu_1") == 0)
                h_plain = r->out[0];
        }
        cr_assert_geq(h_plain, 0, "no plain copy of h");
        cr_expect_eq(ir_value_readers(g, h_plain), 2, "flatten and dense read the one copy");
        cr_expect_eq(g->outputs[2], h_plain, "output c is the plain copy");
        plan_destroy(p);
    }
    /* and the results agree with the pass off */
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    int64_t n1, n2;
    float *with = infer(m, w, CNN_PASSES_O2, 2, 3, &n1, "shared");
    float *without = infer(m, w, O2_NO_LAYOUT, 2, 3, &n2, "shared");
    cr_assert_eq(n1, n2);
    expect_equal(with, without, n1, "shared");
    free(with);
    free(without);
    lockstep(m, 2, 4, true, "shared");
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

#ifdef CNN_HAVE_ONEDNN
/* With channels-last activations given as they are, oneDNN still picks brgconv for every
 * forward convolution of resnet20 (and no reorder happens inside those kernels). */
Test(layout, onednn_keeps_brgconv)
{
    net n = example("resnet20");
    cnn_model *m = load(&n);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 16, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    int convs = 0;
    for (int st = 0; st < s->plan->nsteps; st++) {
        const op_call *c = &s->calls[st];
        if (c->node->op != OP_CONV2D)
            continue;
        convs++;
        cr_expect_eq(c->in[0].layout, 1, "%s", c->node->name);
        cr_expect_eq(c->out[0].layout, 1, "%s", c->node->name);
        const char *impl = op_onednn_impl_name(c->state);
        cr_expect(strncmp(impl, "brgconv", 7) == 0, "%s runs %s", c->node->name, impl);
    }
    cr_expect_eq(convs, 21);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}
#endif

/* ---- the reorder kernels */

static op_call reorder_call(const op_node *nd, float *x, float *y, const int64_t *d, int rank, int nthreads)
{
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = nd;
    c.nin = c.nout = 1;
    c.nthreads = nthreads;
    c.in[0].data = x;
    c.out[0].data = y;
    c.in[0].rank = c.out[0].rank = rank;
    for (int k = 0; k < rank; k++)
        c.in[0].d[k] = c.out[0].d[k] = d[k];
    c.in[0].layout = nd->attrs.reorder.from == OP_LAYOUT_NHWC;
    c.out[0].layout = nd->attrs.reorder.to == OP_LAYOUT_NHWC;
    c.batch = d[0];
    return c;
}

/* Plain -> channels-last puts element (n, c, s) at (n*S + s)*C + c, and back again gives the
 * input; the oneDNN kernel agrees exactly with the reference one. */
Test(layout, reorder_kernels)
{
    /* [N, C, H, W] and [N, C, L], odd sizes, one channel, one position */
    static const int64_t shapes[][4] = {{4, 3, 5, 7}, {3, 5, 16, 0}, {2, 3, 2, 2}, {1, 7, 5, 1}, {2, 1, 4, 3}};
    static const int ranks[] = {4, 3, 4, 4, 4};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        const int64_t *d = shapes[i];
        int rank = ranks[i];
        int64_t n = numel(rank, d), C = d[1], S = n / d[0] / C;
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n),
              *z = malloc(sizeof(float) * (size_t)n);
        for (int64_t k = 0; k < n; k++)
            x[k] = (float)k;
        op_node to_cl = {.op = OP_REORDER};
        to_cl.attrs.reorder.from = OP_LAYOUT_PLAIN;
        to_cl.attrs.reorder.to = OP_LAYOUT_NHWC;
        op_node to_plain = to_cl;
        to_plain.attrs.reorder.from = OP_LAYOUT_NHWC;
        to_plain.attrs.reorder.to = OP_LAYOUT_PLAIN;
        char err[256] = "";
        for (int threads = 1; threads <= 2; threads++) {
            op_call c = reorder_call(&to_cl, x, y, d, rank, threads);
            cr_assert_eq(op_ref_reorder(&c, err, sizeof err), 0, "%s", err);
            for (int64_t b = 0; b < d[0]; b++)
                for (int64_t ch = 0; ch < C; ch++)
                    for (int64_t s = 0; s < S; s++)
                        cr_assert_eq(y[(b * S + s) * C + ch], x[(b * C + ch) * S + s]);
            c = reorder_call(&to_plain, y, z, d, rank, threads);
            cr_assert_eq(op_ref_reorder(&c, err, sizeof err), 0, "%s", err);
            cr_assert_eq(memcmp(x, z, sizeof(float) * (size_t)n), 0);
#ifdef CNN_HAVE_ONEDNN
            const op_kernel *k = op_kernel_get(OP_REORDER, OP_BACKEND_ONEDNN);
            cr_assert_not_null(k);
            cr_expect_eq(k->layouts, OP_LAYOUT_EITHER);
            float *yd = calloc((size_t)n, sizeof(float)), *zd = calloc((size_t)n, sizeof(float));
            c = reorder_call(&to_cl, x, yd, d, rank, threads);
            cr_assert_eq(k->prepare(&c, err, sizeof err), 0, "%s", err);
            cr_assert_eq(k->run(&c, err, sizeof err), 0, "%s", err);
            k->release(c.state);
            cr_expect_eq(memcmp(yd, y, sizeof(float) * (size_t)n), 0, "oneDNN to channels-last differs");
            c = reorder_call(&to_plain, yd, zd, d, rank, threads);
            cr_assert_eq(k->run(&c, err, sizeof err), 0, "%s", err); /* builds its state itself */
            k->release(c.state);
            cr_expect_eq(memcmp(zd, x, sizeof(float) * (size_t)n), 0, "oneDNN back to plain differs");
            free(yd);
            free(zd);
#endif
        }
        /* the tensors must say what the attributes say */
        op_call c = reorder_call(&to_cl, x, y, d, rank, 1);
        c.out[0].layout = 0;
        cr_expect_eq(op_ref_reorder(&c, err, sizeof err), -1);
        cr_expect(strstr(err, "layout") != NULL, "%s", err);
        free(x);
        free(y);
        free(z);
    }
}

/* Reference kernels refuse channels-last tensors (the pass never gives them one). */
Test(layout, reference_kernels_refuse_channels_last)
{
    float x[2 * 3 * 4], y[2 * 3 * 4];
    for (int k = 0; k < 24; k++)
        x[k] = (float)k - 10.0f;
    op_node relu = {.op = OP_RELU};
    relu.attrs.act.act = OP_ACT_RELU;
    op_call c;
    memset(&c, 0, sizeof c);
    c.node = &relu;
    c.nin = c.nout = 1;
    c.nthreads = 1;
    c.in[0] = (op_tensor){.data = x, .rank = 4, .d = {2, 3, 2, 2}};
    c.out[0] = (op_tensor){.data = y, .rank = 4, .d = {2, 3, 2, 2}};
    char err[256] = "";
    cr_expect_eq(op_ref_act(&c, err, sizeof err), 0, "%s", err);
    c.in[0].layout = 1;
    c.out[0].layout = 1;
    cr_expect_eq(op_ref_act(&c, err, sizeof err), -1);
    cr_expect(strstr(err, "channels-last") != NULL, "%s", err);
}

/* ---- the driver's flag */

static int run_cnnc(const char *args, char *out, size_t cap)
{
    const char *cnnc = getenv("CNNC");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", cnnc ? cnnc : "build/cnnc", args);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t len = fread(out, 1, cap - 1, f);
    out[len] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(layout, cnnc_no_layout_flag, .disabled = WITHOUT_ONEDNN)
{
    net n = example("resnet20");
    static char out[1 << 18];
    char args[2048];
    snprintf(args, sizeof args, "emit '%s' --stage optimized", n.path);
    cr_assert_eq(run_cnnc(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "reorder_1: reorder nchw->nhwc (image)") != NULL, "%s", out);
    cr_expect(strstr(out, "channels-last") != NULL);
    snprintf(args, sizeof args, "emit '%s' --stage optimized --no-layout", n.path);
    cr_assert_eq(run_cnnc(args, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "reorder") == NULL, "%s", out);
    cr_expect(strstr(out, "channels-last") == NULL);
    cr_assert_eq(run_cnnc("--help", out, sizeof out), 0);
    cr_expect(strstr(out, "--no-layout") != NULL, "%s", out);
}
