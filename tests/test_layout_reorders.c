/* The layout pass (compiler/pass_layout.c), continued from test_layout.c: how many reorders
 * there are and where they go in the examples; the layout rules every plan keeps (no kernel
 * taking only plain tensors gets a channels-last one); a value read by several readers is
 * reordered once; oneDNN still picks brgconv; the reorder kernels; cnnc's --no-layout flag. */
#include "tests/layout_util.h"
#include "ops/kernels.h"

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
 * the gradient flatten copies back (and two more each with a native first layer).  vgg_small: the image and before flatten.  signal1d: a
 * one-channel signal in, a vector out of global_avgpool: none, though its convolutions run
 * channels-last.  Without the pass, or on the reference backend, there are none at all. */
Test(layout, reorder_counts_of_the_examples, .disabled = WITHOUT_ONEDNN)
{
    static const struct {
        const char *name;
        int infer, train;
    } want[] = {{"lenet5", 1, 2}, {"vgg_small", 2, 3}, {"signal1d", 0, 0}, {"resnet20", 1, 1}};
    /* where the native first-layer kernels are the fast ones (op_caps.first_layer: a machine
     * with AVX-512), lenet5's first layer runs natively on plain tensors: its pooled output is
     * reordered for conv2d_2, and in training that layer's gradient back */
    op_caps caps;
    op_kernel_caps(&caps);
    bool first = caps.first_layer[OP_CONV2D][OP_BACKEND_NATIVE];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        net n = example(want[i].name);
        cnn_model *m = load(&n);
        for (int training = 0; training < 2; training++) {
            ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_AUTO, 4, training);
            int expect = (training ? want[i].train : want[i].infer) + (first && i == 0 ? 1 + training : 0);
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

/* The native fp32 convolutions follow their inputs' layout (OP_LAYOUT_FOLLOWS_INPUTS): an
 * all-native plan of few-channel layers, its inputs plain, stays plain (LeNet-5 reads 1 and 6
 * channels; its first layer's one channel would run channels-last under OP_LAYOUT_EITHER).
 * Where the native direct channels-last kernels are the faster ones (op_caps.wide_cl: AVX-512),
 * the 2-D convolutions on 16 channels or more run channels-last even when their inputs are
 * plain, and the layers between them follow: resnet20 from its second convolution (its first
 * reads 3 channels).  The reorders (on the reference backend: the native one has none) sit
 * where plain tensors meet them: resnet20's stem output and the plain-only global average
 * pooling's input (and both gradients in training).  signal1d's 1-D convolutions stay plain. */
Test(layout, native_plans_run_wide_convolutions_channels_last)
{
    static const struct {
        const char *name;
        int infer, train; /* reorders with wide_cl */
    } want[] = {{"lenet5", 0, 0}, {"resnet20", 2, 4}, {"signal1d", 0, 0}};
    op_caps caps;
    op_kernel_caps(&caps);
    bool wide = caps.wide_cl[OP_CONV2D][OP_BACKEND_NATIVE];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        net n = example(want[i].name);
        cnn_model *m = load(&n);
        for (int training = 0; training < 2; training++) {
            ir_plan *p = plan_of(m, CNN_PASSES_O2, CNN_BACKEND_NATIVE, 4, training);
            int expect = wide ? (training ? want[i].train : want[i].infer) : 0;
            cr_expect_eq(count_reorders(p), expect, "%s %s: %d reorders, expected %d", want[i].name,
                         training ? "training" : "inference", count_reorders(p), expect);
            if (wide && i == 1)
                cr_expect_gt(count_cl(p), 0, "%s: nothing runs channels-last", want[i].name);
            else
                cr_expect_eq(count_cl(p), 0, "%s: something runs channels-last", want[i].name);
            plan_destroy(p);
        }
        cnn_model_destroy(m);
    }
}

/* oneDNN's batchnorms are many times faster channels-last than on plain images
 * (op_onednn_wide_cl): behind a stem convolution that runs natively on plain tensors, batchnorm_1
 * and its backward on oneDNN (picks, as tuning made on resnet20) run channels-last all the same,
 * with the reorder after the convolution, rather than following its plain output. */
Test(layout, onednn_batchnorm_runs_channels_last_behind_a_plain_stem, .disabled = WITHOUT_ONEDNN)
{
    op_caps caps;
    op_kernel_caps(&caps);
    cr_assert(caps.wide_cl[OP_BATCHNORM][OP_BACKEND_ONEDNN] && caps.wide_cl[OP_BATCHNORM_BWD][OP_BACKEND_ONEDNN]);
    net n = example("resnet20");
    cnn_model *m = load(&n);
    cnn_options o;
    cnn_options_default(&o);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    plan_pick picks[3] = {{.name = "conv2d_1", .op = OP_CONV2D, .backend = OP_BACKEND_NATIVE},
                          {.name = "batchnorm_1", .op = OP_BATCHNORM, .backend = OP_BACKEND_ONEDNN},
                          {.name = "batchnorm_1.bwd", .op = OP_BATCHNORM_BWD, .backend = OP_BACKEND_ONEDNN}};
    char err[4096];
    ir_plan *p = rt_model_plan_picks(m, &o, 8, true, &tc, picks, 3, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    const ir_graph *g = p->graph;
    int seen = 0;
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &g->nodes[p->steps[s].node];
        if (!strcmp(nd->name, "conv2d_1") && nd->op == OP_CONV2D) {
            cr_expect_eq(nd->backend, OP_BACKEND_NATIVE);
            cr_expect_eq(g->vals[nd->out[0]].layout, OP_LAYOUT_PLAIN, "the stem's output is channels-last");
        }
        if ((strcmp(nd->name, "batchnorm_1") || nd->op != OP_BATCHNORM) &&
            (strcmp(nd->name, "batchnorm_1.bwd") || nd->op != OP_BATCHNORM_BWD))
            continue;
        seen++;
        cr_expect_eq(nd->backend, OP_BACKEND_ONEDNN);
        cr_expect_eq(g->vals[nd->in[0]].layout, OP_LAYOUT_NHWC, "%s (%s) reads a plain %s", nd->name,
                     op_name(nd->op), g->vals[nd->in[0]].name);
        cr_expect_eq(g->vals[nd->out[0]].layout, OP_LAYOUT_NHWC, "%s (%s) writes a plain %s", nd->name,
                     op_name(nd->op), g->vals[nd->out[0]].name);
    }
    cr_expect_eq(seen, 2, "batchnorm_1 forward and backward: %d steps", seen);
    plan_destroy(p);
    cnn_model_destroy(m);
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
