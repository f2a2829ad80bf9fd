/* The optimiser and the memory planner on every example network: the overlap checker on
 * every plan (inference and training), the planned arena against the lower bound and the
 * naive total, -O2 against -O0 outputs, and what the passes did (fusions, folding, DCE). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/plan.h"
#include "ops/kernels.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"

static const char *examples[] = {"lenet5", "vgg_small", "resnet20", "alexnet", "vgg16", "resnet18", "signal1d"};
#define NEXAMPLES (int)(sizeof examples / sizeof examples[0])

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

static bool big(const char *name)
{
    return strcmp(name, "alexnet") == 0 || strcmp(name, "vgg16") == 0 || strcmp(name, "resnet18") == 0;
}

static cnn_model *load_example(const char *name)
{
    char path[1024];
    const char *dir = getenv("CNN_EXAMPLES");
    snprintf(path, sizeof path, "%s/%s.cnn", dir ? dir : "examples", name);
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s: %s", path, cnn_model_errmsg(m));
    return m;
}

static ir_plan *plan_of(cnn_model *m, unsigned passes, int64_t batch, bool training)
{
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    char err[4096];
    ir_plan *p = rt_model_plan(m, &o, batch, training, &tc, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s: %s", cnn_model_name(m), err);
    return p;
}

Test(plan, no_overlap_and_near_lower_bound_for_every_example, .timeout = 300)
{
    for (int i = 0; i < NEXAMPLES; i++) {
        cnn_model *m = load_example(examples[i]);
        for (int training = 0; training < 2; training++) {
            unsigned levels[] = {0, CNN_PASSES_O1, CNN_PASSES_O2, CNN_PASSES_O2 & ~(unsigned)CNN_PASS_INPLACE};
            for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
                ir_plan *p = plan_of(m, levels[l], 64, training);
                char err[1024];
                cr_expect_eq(plan_check_overlap(p, err, sizeof err), 0, "%s %s passes %#x: %s", examples[i],
                             training ? "training" : "inference", levels[l], err);
                cr_expect_geq(p->arena_bytes, p->lower_bound, "%s: the arena is below the lower bound", examples[i]);
                if (levels[l] == CNN_PASSES_O2 && !training) {
                    cr_expect_leq((double)p->arena_bytes, 1.1 * (double)p->lower_bound,
                                  "%s: arena %zu > 1.1 x lower bound %zu", examples[i], p->arena_bytes, p->lower_bound);
                    cr_expect_leq(2 * p->arena_bytes, p->naive_bytes, "%s: arena %zu > half of naive %zu", examples[i],
                                  p->arena_bytes, p->naive_bytes);
                }
                if (levels[l] == 0) /* no planning: every arena tensor its own buffer */
                    cr_expect_geq(p->arena_bytes, p->lower_bound);
                plan_destroy(p);
            }
        }
        cnn_model_destroy(m);
    }
}

/* The checker must catch a real overlap. */
Test(plan, overlap_checker_catches_a_conflict)
{
    cnn_model *m = load_example("lenet5");
    ir_plan *p = plan_of(m, CNN_PASSES_O2, 4, false);
    char err[1024];
    cr_assert_eq(plan_check_overlap(p, err, sizeof err), 0, "%s", err);
    /* move every arena value to offset 0: the input and the output are both live throughout */
    for (int v = 0; v < p->graph->nvals; v++)
        if (p->vals[v].loc == PLAN_LOC_ARENA)
            p->vals[v].offset = 0;
    cr_expect_eq(plan_check_overlap(p, err, sizeof err), -1);
    cr_expect(strstr(err, "overlaps") != NULL, "%s", err);
    plan_destroy(p);
    cnn_model_destroy(m);
}

static int count_ops(const ir_graph *g, op_kind op)
{
    int n = 0;
    for (int i = 0; i < g->nnodes; i++)
        n += !g->nodes[i].dead && g->nodes[i].op == op;
    return n;
}

/* conv3d: bias and activation fuse at -O2 (batchnorm folds first), a 3-D maxpool does not:
 * the conv epilogue's pooling is 2-D */
Test(plan, conv3d_fuses_bias_and_activation_not_a_3d_pool)
{
    char path[1024];
    const char *dir = getenv("CNN_FIXTURES");
    snprintf(path, sizeof path, "%s/vol3d.cnn", dir ? dir : "tests/fixtures");
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s: %s", path, cnn_model_errmsg(m));
    ir_plan *o0 = plan_of(m, 0, 2, false), *o2 = plan_of(m, CNN_PASSES_O2, 2, false);
    cr_expect_eq(count_ops(o0->graph, OP_CONV3D), 3);
    cr_expect_eq(count_ops(o0->graph, OP_RELU), 2);
    cr_expect_eq(count_ops(o2->graph, OP_RELU), 0, "-O2 fuses both relus");
    cr_expect_eq(count_ops(o2->graph, OP_LEAKY_RELU), 0);
    cr_expect_eq(count_ops(o2->graph, OP_BATCHNORM), 0, "-O2 folds the batchnorm");
    cr_expect_eq(count_ops(o2->graph, OP_MAXPOOL), 1, "the 3-D maxpool stays a node");
    for (int i = 0; i < o2->graph->nnodes; i++) {
        const ir_node *nd = &o2->graph->nodes[i];
        if (nd->dead || nd->op != OP_CONV3D)
            continue;
        cr_expect_neq(nd->attrs.conv.act, OP_ACT_NONE, "%s", nd->name);
        cr_expect(!nd->attrs.conv.pool, "%s", nd->name);
    }
    plan_destroy(o0), plan_destroy(o2);
    /* training: the same, the pool still separate */
    ir_plan *t2 = plan_of(m, CNN_PASSES_O2, 2, true);
    cr_expect_eq(count_ops(t2->graph, OP_MAXPOOL), 1);
    plan_destroy(t2);
    cnn_model_destroy(m);
}

Test(plan, passes_fold_and_fuse_resnet20)
{
    cnn_model *m = load_example("resnet20");
    ir_plan *o0 = plan_of(m, 0, 1, false), *o1 = plan_of(m, CNN_PASSES_O1, 1, false),
            *o2 = plan_of(m, CNN_PASSES_O2, 1, false);
    cr_expect_eq(count_ops(o0->graph, OP_BATCHNORM), 21);
    cr_expect_eq(count_ops(o1->graph, OP_BATCHNORM), 0, "-O1 folds every batchnorm");
    cr_expect_eq(count_ops(o1->graph, OP_BN_FOLD), 21);
    cr_expect_eq(count_ops(o2->graph, OP_RELU), 0, "-O2 fuses every relu");
    cr_expect_eq(count_ops(o2->graph, OP_ADD), 0, "-O2 fuses every residual add");
    int residual = 0;
    for (int i = 0; i < o2->graph->nnodes; i++) {
        const ir_node *nd = &o2->graph->nodes[i];
        if (!nd->dead && nd->op == OP_CONV2D && nd->attrs.conv.residual) {
            residual++;
            cr_expect_eq(nd->attrs.conv.act, OP_ACT_RELU, "%s", nd->name);
        }
    }
    cr_expect_eq(residual, 9, "the nine blocks' tails are conv + add + relu");
    /* the bn_fold steps are weights-only */
    int constant = 0;
    for (int s = 0; s < o2->nsteps; s++)
        constant += o2->steps[s].constant;
    cr_expect_eq(constant, 21);
    plan_destroy(o0), plan_destroy(o1), plan_destroy(o2);
    cnn_model_destroy(m);
}

/* In training, each batchnorm takes the relu after it, a block tail's batchnorm the residual
 * add and its relu, and a batchnorm_bwd the relu backward before it where that gradient has no
 * other reader (not at a block's tail, whose gradient also feeds the shortcut). */
Test(plan, training_fuses_batchnorm_epilogues_resnet20)
{
    cnn_model *m = load_example("resnet20");
    ir_plan *p = plan_of(m, CNN_PASSES_O2, 4, true);
    cr_expect_eq(count_ops(p->graph, OP_RELU), 0, "every relu fuses into its batchnorm or add");
    cr_expect_eq(count_ops(p->graph, OP_ACT_BWD), 9, "the nine block tails' relu backward stay");
    int sums = 0;
    for (int i = 0; i < p->graph->nnodes; i++) {
        const ir_node *nd = &p->graph->nodes[i];
        if (!nd->dead && nd->op == OP_ACT_BWD)
            sums += nd->nin == 3;
    }
    cr_expect_eq(sums, 8, "the gradient sums where the shortcuts join fold into the relu backward before them");
    int residual = 0, relu = 0, bwd_act = 0, adds = 0;
    for (int i = 0; i < p->graph->nnodes; i++) {
        const ir_node *nd = &p->graph->nodes[i];
        if (nd->dead)
            continue;
        if (nd->op == OP_BATCHNORM) {
            residual += nd->attrs.bn.residual;
            relu += nd->attrs.bn.act == OP_ACT_RELU;
            cr_expect_eq(nd->nin, nd->attrs.bn.residual ? 6 : 5, "%s", nd->name);
        }
        if (nd->op == OP_BATCHNORM_BWD && nd->attrs.bn.act == OP_ACT_RELU) {
            bwd_act++;
            cr_expect_eq(nd->nin, 6, "%s", nd->name);
        }
        adds += nd->op == OP_ADD && strstr(nd->name, ".sum") == NULL;
    }
    cr_expect_eq(residual, 9, "the nine blocks' tails are batchnorm + add + relu");
    cr_expect_eq(relu, 19, "every batchnorm but the two projections' carries a relu");
    cr_expect_eq(bwd_act, 10, "the stem's and each block's first relu backward fold into batchnorm_bwd");
    cr_expect_eq(adds, 0, "no forward add is left");
    plan_destroy(p);
    cnn_model_destroy(m);
}

Test(plan, training_keeps_what_backward_needs)
{
    cnn_model *m = load_example("lenet5");
    ir_plan *p = plan_of(m, CNN_PASSES_O2, 8, true);
    /* maxpool's backward reads the pool input: conv+relu+maxpool fuse, the conv keeping the
     * pool's input as its output 0 and writing the pooled values as output 1 */
    cr_expect_eq(count_ops(p->graph, OP_MAXPOOL), 0);
    int kept = 0;
    for (int i = 0; i < p->graph->nnodes; i++) {
        const ir_node *nd = &p->graph->nodes[i];
        if (nd->dead || nd->op != OP_CONV2D)
            continue;
        cr_expect(nd->attrs.conv.pool && nd->attrs.conv.pool_keep, "%s", nd->name);
        cr_expect_eq(nd->nout, 2, "%s", nd->name);
        const op_shape *y = &p->graph->vals[nd->out[0]].shape, *q = &p->graph->vals[nd->out[1]].shape;
        cr_expect(y->d[1] == 2 * q->d[1] && y->d[2] == 2 * q->d[2], "%s: pooled 2x2", nd->name);
        kept++;
    }
    cr_expect_eq(kept, 2);
    /* the relus before the pools: their backward runs in maxpool_bwd; the dense ones' stay */
    cr_expect_eq(count_ops(p->graph, OP_ACT_BWD), 2);
    for (int i = 0; i < p->graph->nnodes; i++) {
        const ir_node *nd = &p->graph->nodes[i];
        if (!nd->dead && nd->op == OP_MAXPOOL_BWD)
            cr_expect_eq(nd->attrs.pool.act, OP_ACT_RELU, "%s", nd->name);
    }
    cr_expect_eq(count_ops(p->graph, OP_RELU), 0);
    cr_expect_eq(count_ops(p->graph, OP_SGD_UPDATE), 10, "one update per parameter tensor");
    cr_expect_eq(count_ops(p->graph, OP_XENT_LOSS), 1);
    plan_destroy(p);
    cnn_model_destroy(m);
}

Test(plan, dce_removes_what_no_output_needs)
{
    const char *src = "network t { input x[4];\n"
                      "  unused = x -> dense(3);\n"
                      "  output y = x -> dense(2);\n}\n";
    cnn_model *m;
    cr_assert_eq(cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    ir_plan *o0 = plan_of(m, 0, 1, false), *o1 = plan_of(m, CNN_PASS_DCE, 1, false);
    cr_expect_eq(o0->nsteps, 2);
    cr_expect_eq(o1->nsteps, 1);
    plan_destroy(o0), plan_destroy(o1);
    cnn_model_destroy(m);
}

/* -O2 equals -O0 (within 1e-5 relative) on every example, batch 1 and 7 */
Test(plan, optimised_outputs_equal_unoptimised, .timeout = 900)
{
    for (int i = 0; i < NEXAMPLES; i++) {
        if (quick() && big(examples[i]))
            continue;
        cnn_model *m = load_example(examples[i]);
        cnn_weights *w;
        cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
        /* non-trivial running statistics, so folding is really tested */
        for (int t = 0; t < cnn_weights_count(w); t++) {
            const char *name;
            int rank;
            int64_t dims[CNN_WEIGHT_MAX_RANK];
            float *d = cnn_weights_tensor(w, t, &name, &rank, dims);
            if (strstr(name, "running_var") || strstr(name, "running_mean") ||
                (strstr(name, "batchnorm") && strstr(name, "weight")))
                for (int64_t k = 0; k < dims[0]; k++)
                    d[k] = strstr(name, "mean") ? 0.1f * (float)(k % 7) - 0.3f : 0.5f + 0.05f * (float)(k % 11);
        }
        int64_t batches[] = {1, 7};
        for (int b = 0; b < 2; b++) {
            float *ref = NULL;
            for (int c = 0; c < 2; c++) {
                cnn_options o;
                cnn_options_default(&o);
                o.passes = c == 0 ? 0 : CNN_PASSES_O2;
                /* the big networks on oneDNN at both levels (ref would take minutes) */
                o.backend = big(examples[i]) ? CNN_BACKEND_ONEDNN : CNN_BACKEND_REF;
                cnn_session *s;
                cr_assert_eq(cnn_session_create(&s, m, w, &o, batches[b], CNN_MODE_INFER, NULL), CNN_OK, "%s",
                             cnn_session_errmsg(s));
                int64_t dims[4];
                int rank = cnn_model_input_shape(m, 0, dims);
                int64_t n = batches[b];
                for (int k = 0; k < rank; k++)
                    n *= dims[k];
                float *x = cnn_session_input(s, 0);
                for (int64_t k = 0; k < n; k++)
                    x[k] = (float)((k * 7919) % 997) / 997.0f;
                cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
                rank = cnn_model_output_shape(m, 0, dims);
                int64_t on = batches[b];
                for (int k = 0; k < rank; k++)
                    on *= dims[k];
                const float *y = cnn_session_output(s, 0);
                if (c == 0) {
                    ref = malloc(sizeof(float) * (size_t)on);
                    memcpy(ref, y, sizeof(float) * (size_t)on);
                } else {
                    double scale = 0;
                    for (int64_t k = 0; k < on; k++)
                        scale = fmax(scale, fabs(ref[k]));
                    for (int64_t k = 0; k < on; k++)
                        cr_expect(fabs(y[k] - ref[k]) <= 1e-5 * fabs(ref[k]) + 1e-6 * scale,
                                  "%s batch %lld: output %lld is %.8g at -O2, %.8g at -O0", examples[i],
                                  (long long)batches[b], (long long)k, (double)y[k], (double)ref[k]);
                }
                cnn_session_destroy(s);
            }
            free(ref);
        }
        cnn_weights_destroy(w);
        cnn_model_destroy(m);
    }
}

/* A training step at -O2 equals one at -O0 (fusion keeps the backward pass exact). */
/* Every weight of w, tensor after tensor: malloc'd, *total floats. */
static float *all_weights(cnn_weights *w, int64_t *total)
{
    *total = 0;
    for (int t = 0; t < cnn_weights_count(w); t++) {
        int rank;
        int64_t d[CNN_WEIGHT_MAX_RANK], e = 1;
        cnn_weights_tensor(w, t, NULL, &rank, d);
        for (int k = 0; k < rank; k++)
            e *= d[k];
        *total += e;
    }
    float *all = malloc(sizeof(float) * (size_t)(*total > 0 ? *total : 1));
    cr_assert_not_null(all);
    int64_t off = 0;
    for (int t = 0; t < cnn_weights_count(w); t++) {
        int rank;
        int64_t d[CNN_WEIGHT_MAX_RANK], e = 1;
        const float *p = cnn_weights_tensor(w, t, NULL, &rank, d);
        for (int k = 0; k < rank; k++)
            e *= d[k];
        memcpy(all + off, p, sizeof(float) * (size_t)e);
        off += e;
    }
    return all;
}

Test(plan, optimised_training_step_equals_unoptimised, .timeout = 300)
{
    const char *nets[] = {"lenet5", "resnet20", "signal1d"};
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
        cnn_model *m = load_example(nets[i]);
        float *after[3] = {NULL, NULL, NULL};
        int64_t total = 0;
        for (int c = 0; c < 3; c++) { /* -O0 and -O2 on the reference, -O2 on auto */
            cnn_weights *w;
            cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
            cnn_options o;
            cnn_options_default(&o);
            o.passes = c == 0 ? 0 : CNN_PASSES_O2;
            o.backend = c < 2 ? CNN_BACKEND_REF : CNN_BACKEND_AUTO;
            cnn_session *s;
            cr_assert_eq(cnn_session_create(&s, m, w, &o, 4, CNN_MODE_TRAIN, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
            int64_t dims[4];
            int rank = cnn_model_input_shape(m, 0, dims);
            int64_t n = 4;
            for (int k = 0; k < rank; k++)
                n *= dims[k];
            float labels[4] = {0, 1, 2, 3};
            for (int step = 0; step < 2; step++) {
                float *x = cnn_session_input(s, 0);
                for (int64_t k = 0; k < n; k++)
                    x[k] = (float)((k * 31 + step * 17) % 101) / 101.0f;
                cr_assert_eq(cnn_session_train_step(s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
            }
            after[c] = all_weights(w, &total);
            cnn_session_destroy(s);
            cnn_weights_destroy(w);
        }
        for (int64_t k = 0; k < total; k++)
            cr_expect(fabs(after[1][k] - after[0][k]) <= 1e-5 * fabs(after[0][k]) + 1e-7, "%s: weight %lld: %.8g vs %.8g",
                      nets[i], (long long)k, (double)after[1][k], (double)after[0][k]);
        /* auto: float kernels (oneDNN's, native batchnorm with its fused epilogues); two steps of
         * batchnorm over 4 images amplify float rounding: oneDNN alone or native alone differ
         * from the reference by 5e-4 and 8e-4 of the largest weight in resnet20 */
        double worst = 0.0, scale = 0.0;
        for (int64_t k = 0; k < total; k++) {
            worst = fmax(worst, fabs(after[2][k] - after[0][k]));
            scale = fmax(scale, fabs(after[0][k]));
        }
        cr_expect(worst <= 2e-3 * scale, "%s on auto: max |w - reference| %g, max |w| %g", nets[i], worst, scale);
        free(after[0]);
        free(after[1]);
        free(after[2]);
        cnn_model_destroy(m);
    }
}

/* The weights after two training steps of resnet20 at batch 4 with Winograd's convolutions
 * (oneDNN), under passes: malloc'd, *total floats. */
static float *winograd_steps(cnn_model *m, unsigned passes, int64_t *total)
{
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    o.passes = passes;
    o.conv_algo = CNN_CONV_ALGO_WINOGRAD;
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 4, CNN_MODE_TRAIN, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    float labels[4] = {0, 1, 2, 3};
    for (int step = 0; step < 2; step++) {
        float *x = cnn_session_input(s, 0);
        for (int64_t k = 0; k < 4 * 3 * 32 * 32; k++)
            x[k] = (float)((k * 29 + step * 13) % 97) / 97.0f - 0.5f;
        cr_assert_eq(cnn_session_train_step(s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    }
    float *all = all_weights(w, total);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    return all;
}

/* A reorder between channels-last and blocked by 16 of a 16-channel value moves no byte: it is
 * planned as a view (its output at its input's place, the step not run), and a training step
 * computes with views what it computes with copies (in-place reuse off), bit for bit.  In
 * resnet20 with Winograd's convolutions the first stage (16 channels, channels-last) meets the
 * blocked second stage twice: its output, and that output's gradient on the way back. */
Test(plan, same_byte_reorders_are_views, .timeout = 300)
{
    op_caps caps;
    op_kernel_caps(&caps);
    if (!caps.winograd[OP_CONV2D][OP_BACKEND_ONEDNN])
        cr_skip_test("no Winograd convolutions here (oneDNN on AVX-512)");
    cnn_model *m = load_example("resnet20");
    for (int inplace = 1; inplace >= 0; inplace--) {
        cnn_options o;
        cnn_options_default(&o);
        o.passes = inplace ? CNN_PASSES_O2 : CNN_PASSES_O2 & ~(unsigned)CNN_PASS_INPLACE;
        o.conv_algo = CNN_CONV_ALGO_WINOGRAD;
        cnn_train_config tc;
        cnn_model_train_config(m, &tc);
        char err[4096];
        ir_plan *p = rt_model_plan(m, &o, 8, true, &tc, NULL, err, sizeof err);
        cr_assert_not_null(p, "%s", err);
        cr_assert_eq(plan_check_overlap(p, err, sizeof err), 0, "%s", err);
        int views = 0, copies = 0;
        for (int s = 0; s < p->nsteps; s++) {
            const ir_node *nd = &p->graph->nodes[p->steps[s].node];
            if (nd->op != OP_REORDER) {
                cr_assert(!p->steps[s].view, "%s is no reorder", nd->name);
                continue;
            }
            const ir_value *in = &p->graph->vals[nd->in[0]];
            bool same = in->shape.d[0] == 16 && nd->attrs.reorder.from != OP_LAYOUT_PLAIN &&
                        nd->attrs.reorder.to != OP_LAYOUT_PLAIN;
            cr_assert_eq(p->steps[s].view, same && inplace, "%s (%d channels)", nd->name, (int)in->shape.d[0]);
            if (p->steps[s].view) {
                cr_assert_eq(p->vals[nd->out[0]].offset, p->vals[nd->in[0]].offset, "%s", nd->name);
                cr_assert_geq(p->vals[nd->out[0]].alias_of, 0);
                views++;
            } else {
                copies++;
            }
        }
        cr_assert_eq(views, inplace ? 2 : 0, "%d views, %d copies", views, copies);
        plan_destroy(p);
    }
    int64_t n1, n2;
    float *a = winograd_steps(m, CNN_PASSES_O2, &n1);
    float *b = winograd_steps(m, CNN_PASSES_O2 & ~(unsigned)CNN_PASS_INPLACE, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(a, b, sizeof(float) * (size_t)n1), 0, "the weights after two steps differ");
    free(a);
    free(b);
    cnn_model_destroy(m);
}
