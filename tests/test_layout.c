/* The layout pass (compiler/pass_layout.c): channels-last between oneDNN kernels, reorders at
 * the edges.  Outputs and training steps with the pass equal those without it (example and
 * fixture networks, 1 and 2 threads); where the reorders go and how many there are; that no
 * kernel taking only plain tensors ever gets a channels-last one; that a value read by several
 * readers is reordered once; that oneDNN still picks brgconv; the reorder kernels; the CLI flag.
 * The outputs and the node-by-node comparison are here; where the reorders go, the reorder
 * kernels and the flag in test_layout_reorders.c. */
#include "tests/layout_util.h"

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
            e->n = op_tensor_numel(&c->out[o]);
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
            float *want = malloc(sizeof(float) * (size_t)(op_tensor_numel(x) + 1));
            run_step(b, st, what);
            permute(x->data, want, x, y->layout == 1);
            cr_expect_eq(memcmp(want, y->data, sizeof(float) * (size_t)op_tensor_numel(x)), 0,
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
            cr_assert_eq(op_tensor_numel(y), e->n);
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

void lockstep(cnn_model *m, int threads, int64_t batch, bool training, const char *label)
{
    lockstep_at(m, O2_NO_LAYOUT, threads, batch, training, label);
}

/* ---- outputs with and without the pass */

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

