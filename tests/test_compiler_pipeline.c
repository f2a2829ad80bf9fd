/* The compile pipeline without the runtime: compile_plan over a capability table made by hand
 * (no kernel table involved), the backend pass's choices, and the verifier, which re-checks
 * every node against its op's shape rule after every pass. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compile.h"
#include "compiler/passes.h"

static const char *const tiny_src =
    "network tiny {\n"
    "    input x[3, 8, 8];\n"
    "    h = x -> conv2d(4, 3, pad=1) -> batchnorm -> relu -> maxpool(2);\n"
    "    output y = (h + (h -> conv2d(4, 3, pad=1))) -> flatten -> dense(5);\n"
    "}\n";

typedef struct built {
    diag_list diags;
    lang_program *prog;
    ir_graph *g;
} built;

static void build(built *b, const char *src)
{
    memset(b, 0, sizeof *b);
    diag_init(&b->diags, "t.cnn", src, strlen(src));
    b->prog = lang_compile(src, strlen(src), &b->diags);
    cr_assert_not_null(b->prog);
    cr_assert_eq(b->diags.errors, 0);
    b->g = compile_graph(lang_program_network(b->prog, NULL), &b->diags);
    cr_assert_not_null(b->g);
}

static void built_free(built *b)
{
    ir_graph_destroy(b->g);
    lang_program_free(b->prog);
    diag_free(&b->diags);
}

/* Every op has a reference kernel; `native` ops also a native one. */
static void caps_with(op_caps *caps, const op_kind *native, int nnative)
{
    memset(caps, 0, sizeof *caps);
    for (int op = 0; op < OP_COUNT; op++)
        caps->has[op][OP_BACKEND_REF] = true;
    for (int k = 0; k < nnative; k++)
        caps->has[native[k]][OP_BACKEND_NATIVE] = true;
}

static compile_options options(const op_caps *caps, bool training)
{
    compile_options o;
    memset(&o, 0, sizeof o);
    o.batch = 2;
    o.training = training;
    o.ad.loss = AD_LOSS_CROSS_ENTROPY;
    o.ad.optimizer = AD_OPTIM_SGD;
    o.ad.optim.lr = 0.1;
    o.passes = PASS_DCE | PASS_FOLD_BN | PASS_FUSE | PASS_PLAN | PASS_INPLACE | PASS_LAYOUT;
    o.backend = PLAN_BACKEND_AUTO;
    o.caps = caps;
    o.verify = true;
    return o;
}

Test(compile, plans_with_a_hand_made_capability_table)
{
    built b;
    build(&b, tiny_src);
    op_kind native[] = {OP_CONV2D, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS};
    op_caps caps;
    caps_with(&caps, native, 3);
    for (int training = 0; training <= 1; training++) {
        compile_options o = options(&caps, training);
        char err[512] = "";
        ir_plan *p = compile_plan(b.g, &o, NULL, err, sizeof err);
        cr_assert_not_null(p, "%s", err);
        int nconv = 0;
        for (int s = 0; s < p->nsteps; s++) {
            const ir_node *nd = &p->graph->nodes[p->steps[s].node];
            op_backend want = caps.has[nd->op][OP_BACKEND_NATIVE] ? OP_BACKEND_NATIVE : OP_BACKEND_REF;
            cr_assert_eq(p->steps[s].backend, want, "%s (%s) runs on %s", nd->name, op_name(nd->op),
                         op_backend_name(p->steps[s].backend));
            cr_assert_eq(nd->backend, p->steps[s].backend);
            nconv += nd->op == OP_CONV2D;
        }
        cr_assert_eq(nconv, 2);
        /* no kernel takes channels-last in this table: the layout pass leaves all plain */
        for (int v = 0; v < p->graph->nvals; v++)
            cr_assert_eq(p->graph->vals[v].layout, OP_LAYOUT_PLAIN);
        plan_destroy(p);
    }
    /* the source graph is not changed by planning */
    cr_assert_eq(b.g->nodes[0].backend, OP_BACKEND_REF);
    built_free(&b);
}

Test(compile, asking_for_a_backend_falls_back_to_the_reference)
{
    op_kind native[] = {OP_DENSE};
    op_caps caps;
    caps_with(&caps, native, 1);
    cr_assert_eq(pass_choose_backend(&caps, OP_DENSE, PLAN_BACKEND_NATIVE), OP_BACKEND_NATIVE);
    cr_assert_eq(pass_choose_backend(&caps, OP_RELU, PLAN_BACKEND_NATIVE), OP_BACKEND_REF);
    cr_assert_eq(pass_choose_backend(&caps, OP_DENSE, PLAN_BACKEND_ONEDNN), OP_BACKEND_REF);
    cr_assert_eq(pass_choose_backend(&caps, OP_DENSE, PLAN_BACKEND_REF), OP_BACKEND_REF);
    caps.has[OP_DENSE][OP_BACKEND_ONEDNN] = true;
    cr_assert_eq(pass_choose_backend(&caps, OP_DENSE, PLAN_BACKEND_AUTO), OP_BACKEND_ONEDNN);
}

/* Per-node picks under auto (the runtime's tuner): a picked node runs where it was picked when a
 * kernel is there, the others keep the fixed order, and the layout pass puts reorders at the
 * edges of a channels-last node the mix implies. */
Test(compile, picks_override_auto_per_node)
{
    built b;
    build(&b, tiny_src);
    op_kind native[] = {OP_CONV2D};
    op_caps caps;
    caps_with(&caps, native, 1);
    caps.has[OP_CONV2D][OP_BACKEND_ONEDNN] = true;
    caps.layouts[OP_CONV2D][OP_BACKEND_ONEDNN] = OP_LAYOUT_PREFERS_CL;
    caps.has[OP_REORDER][OP_BACKEND_REF] = true;
    compile_options o = options(&caps, false);
    plan_pick picks[3] = {{.op = OP_CONV2D, .backend = OP_BACKEND_NATIVE},
                          {.op = OP_CONV2D, .backend = OP_BACKEND_ONEDNN},
                          {.op = OP_DENSE, .backend = OP_BACKEND_NATIVE}}; /* no such kernel: ignored */
    snprintf(picks[0].name, sizeof picks[0].name, "conv2d_1");
    snprintf(picks[1].name, sizeof picks[1].name, "conv2d_2");
    snprintf(picks[2].name, sizeof picks[2].name, "dense_1");
    o.picks = picks;
    o.npicks = 3;
    char err[512] = "";
    ir_plan *p = compile_plan(b.g, &o, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    int nreorder = 0, seen = 0;
    for (int s = 0; s < p->nsteps; s++) {
        const ir_node *nd = &p->graph->nodes[p->steps[s].node];
        nreorder += nd->op == OP_REORDER;
        op_backend want = strcmp(nd->name, "conv2d_1") == 0   ? OP_BACKEND_NATIVE
                          : strcmp(nd->name, "conv2d_2") == 0 ? OP_BACKEND_ONEDNN
                          : strcmp(nd->name, "dense_1") == 0  ? OP_BACKEND_REF
                                                              : OP_BACKEND_COUNT;
        if (want != OP_BACKEND_COUNT) {
            cr_assert_eq(p->steps[s].backend, want, "%s runs on %s", nd->name, op_backend_name(p->steps[s].backend));
            seen++;
        }
    }
    cr_assert_eq(seen, 3);
    cr_assert_geq(nreorder, 2, "the channels-last conv2d_2 needs a reorder in and one out");
    plan_destroy(p);
    /* without picks, auto's fixed order puts both convolutions on oneDNN */
    o.picks = NULL;
    o.npicks = 0;
    p = compile_plan(b.g, &o, NULL, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    for (int s = 0; s < p->nsteps; s++)
        if (p->graph->nodes[p->steps[s].node].op == OP_CONV2D)
            cr_assert_eq(p->steps[s].backend, OP_BACKEND_ONEDNN);
    plan_destroy(p);
    built_free(&b);
}

Test(compile, an_op_without_any_kernel_is_an_error)
{
    built b;
    build(&b, tiny_src);
    op_caps caps;
    caps_with(&caps, NULL, 0);
    caps.has[OP_DENSE][OP_BACKEND_REF] = false;
    compile_options o = options(&caps, false);
    char err[512] = "";
    ir_plan *p = compile_plan(b.g, &o, NULL, err, sizeof err);
    cr_assert_null(p);
    cr_assert(strstr(err, "dense_1 (dense)") && strstr(err, "no kernel"), "%s", err);
    built_free(&b);
}

Test(compile, the_verifier_checks_shapes_against_the_rules)
{
    built b;
    build(&b, tiny_src);
    char err[512] = "";
    cr_assert_eq(pass_verify(b.g, err, sizeof err), 0, "%s", err);
    /* a conv output one channel short of what its rule gives */
    int conv = -1;
    for (int n = 0; n < b.g->nnodes && conv < 0; n++)
        if (b.g->nodes[n].op == OP_CONV2D)
            conv = n;
    cr_assert_geq(conv, 0);
    ir_value *out = &b.g->vals[b.g->nodes[conv].out[0]];
    out->shape.d[0] = 3;
    cr_assert_neq(pass_verify(b.g, err, sizeof err), 0);
    cr_assert(strstr(err, "conv2d_1") && strstr(err, "[3, 8, 8]") && strstr(err, "[4, 8, 8]"), "%s", err);
    out->shape.d[0] = 4;
    /* an attribute that no longer matches the output: pooling 4 instead of 2 */
    for (int n = 0; n < b.g->nnodes; n++)
        if (b.g->nodes[n].op == OP_MAXPOOL) {
            b.g->nodes[n].attrs.pool.size[0] = b.g->nodes[n].attrs.pool.size[1] = 4;
            b.g->nodes[n].attrs.pool.stride[0] = b.g->nodes[n].attrs.pool.stride[1] = 4;
        }
    cr_assert_neq(pass_verify(b.g, err, sizeof err), 0);
    cr_assert(strstr(err, "maxpool_1") && strstr(err, "shape rule"), "%s", err);
    built_free(&b);
}

/* int8: a convolution over fewer than 4 input channels per group becomes conv_q only where the
 * backend that runs it has an int8 kernel fast there (op_caps.int8_few_channels), and under auto
 * it then runs on that backend; the others follow the usual choice.  cnnc quantize's question
 * (no context: any backend) takes it always. */
Test(compile, int8_few_channel_convs_follow_the_capability)
{
    built b;
    build(&b, "network f { input x[1, 8, 8];\n"
              "  output y = x -> conv2d(4, 3, pad=1) -> relu -> conv2d(8, 3, pad=1) -> flatten -> dense(5); }\n");
    op_caps caps;
    caps_with(&caps, NULL, 0);
    for (int op = 0; op < OP_COUNT; op++)
        caps.has[op][OP_BACKEND_NATIVE] = caps.has[op][OP_BACKEND_ONEDNN] = true;
    const struct {
        plan_backend_choice backend;
        bool few;                    /* native's conv_q says it is fast on few channels */
        op_kind c1;                  /* conv2d_1's op and backend */
        op_backend b1;
    } cases[] = {
        {PLAN_BACKEND_AUTO, true, OP_CONV_Q, OP_BACKEND_NATIVE},
        {PLAN_BACKEND_AUTO, false, OP_CONV2D, OP_BACKEND_ONEDNN},
        {PLAN_BACKEND_ONEDNN, true, OP_CONV2D, OP_BACKEND_ONEDNN},
        {PLAN_BACKEND_NATIVE, true, OP_CONV_Q, OP_BACKEND_NATIVE},
        {PLAN_BACKEND_NATIVE, false, OP_CONV2D, OP_BACKEND_NATIVE},
        {PLAN_BACKEND_REF, true, OP_CONV2D, OP_BACKEND_REF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        caps.int8_few_channels[OP_CONV_Q][OP_BACKEND_NATIVE] = cases[i].few;
        compile_options o = options(&caps, false);
        o.backend = cases[i].backend;
        o.precision = OP_PREC_INT8;
        char err[512] = "";
        ir_plan *p = compile_plan(b.g, &o, NULL, err, sizeof err);
        cr_assert_not_null(p, "%s", err);
        int seen = 0;
        for (int n = 0; n < p->graph->nnodes; n++) {
            const ir_node *nd = &p->graph->nodes[n];
            if (nd->dead)
                continue;
            if (strcmp(nd->name, "conv2d_1") == 0) {
                cr_assert_eq(nd->op, cases[i].c1, "case %zu: conv2d_1 is %s", i, op_name(nd->op));
                cr_assert_eq(nd->backend, cases[i].b1, "case %zu: conv2d_1 on %s", i, op_backend_name(nd->backend));
                seen++;
            } else if (strcmp(nd->name, "conv2d_2") == 0) { /* 4 channels: int8 on the usual backend */
                cr_assert_eq(nd->op, OP_CONV_Q, "case %zu", i);
                op_backend want = cases[i].backend == PLAN_BACKEND_AUTO ? OP_BACKEND_ONEDNN
                                  : cases[i].backend == PLAN_BACKEND_NATIVE ? OP_BACKEND_NATIVE
                                  : cases[i].backend == PLAN_BACKEND_ONEDNN ? OP_BACKEND_ONEDNN
                                                                            : OP_BACKEND_REF;
                cr_assert_eq(nd->backend, want, "case %zu: conv2d_2 on %s", i, op_backend_name(nd->backend));
                seen++;
            }
        }
        cr_assert_eq(seen, 2);
        plan_destroy(p);
    }
    for (int n = 0; n < b.g->nnodes; n++)
        if (strcmp(b.g->nodes[n].name, "conv2d_1") == 0)
            cr_assert(pass_precision_candidate(b.g, &b.g->nodes[n], OP_PREC_INT8, NULL));
    built_free(&b);
}
