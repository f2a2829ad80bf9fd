/* Shape inference of the other layers, shape errors, whole networks by hand (parameter and
 * FLOP counts against PyTorch's) and the graph dumps (text, dot, summaries). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/build.h"
#include "compiler/ir.h"
#include "lang/diag.h"
#include "lang/lang.h"
#include "ops/registry.h"
#include "tests/compiler_util.h"

/* ---------------------------------------------------------------- shapes: the rest */

Test(shape, dense_and_flatten)
{
    tnet t;
    /* dense reads any rank in C,H,W order */
    one_layer(&t, "dense", "120", "[120]", 3, D(16), D(5), D(5));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.dense.units, 120);
    cr_assert(n->attrs.dense.bias);
    cr_assert_eq(n->nin, 3);
    assert_shape(tn_named(&t, "dense_1.weight"), "[120, 400]");
    assert_shape(tn_named(&t, "dense_1.bias"), "[120]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 48120);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 120 * 400 + 120);
    tn_fini(&t);
    one_layer(&t, "dense", "10 bias=false", "[10]", 1, D(84));
    cr_assert_eq(tn_node(&t, 1)->nin, 2);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 840);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 840);
    tn_fini(&t);
    one_layer(&t, "dense", "4", "[4]", 2, D(64), D(3));
    assert_shape(tn_named(&t, "dense_1.weight"), "[4, 192]");
    tn_fini(&t);
    one_layer(&t, "flatten", "", "[400]", 3, D(16), D(5), D(5));
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 0);
    cr_assert_eq(tn_node(&t, 1)->nin, 1);
    tn_fini(&t);
    one_layer(&t, "flatten", "", "[10]", 1, D(10));
    tn_fini(&t);
}

Test(shape, batchnorm)
{
    tnet t;
    one_layer(&t, "batchnorm", "", "[16, 32, 32]", 3, D(16), D(32), D(32));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_float_eq(n->attrs.bn.eps, 1e-5f, 1e-12);
    cr_assert_float_eq(n->attrs.bn.momentum, 0.1f, 1e-7);
    cr_assert(!n->attrs.bn.training);
    /* x, weight, bias, running_mean, running_var */
    cr_assert_eq(n->nin, 5);
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        const ir_value *v = &t.g->vals[n->in[k + 1]];
        char want[64];
        snprintf(want, sizeof want, "batchnorm_1.%s", suffix[k]);
        cr_assert_str_eq(v->name, want);
        assert_shape(v, "[16]");
        cr_assert_eq(v->kind, k < 2 ? IR_VAL_PARAM : IR_VAL_STATE, "%s", v->name);
        cr_assert(!v->batched);
    }
    /* running statistics are not parameters */
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 32);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 16 * 32 * 32);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "eps=0.001 momentum=0.3", "[8, 20]", 2, D(8), D(20));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.bn.eps, 1e-3f, 1e-9);
    cr_assert_float_eq(tn_node(&t, 1)->attrs.bn.momentum, 0.3f, 1e-7);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "momentum=1", "[100]", 1, D(100));
    tn_fini(&t);
    one_layer(&t, "batchnorm", "momentum=1.5", NULL, 1, D(100));
    assert_one_error(&t, "batchnorm: 'momentum' must be between 0 and 1, got 1.5", arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "batchnorm", "", "[2, 3, 4, 5]", 4, D(2), D(3), D(4), D(5)); /* a volume */
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 4);
    tn_fini(&t);
    one_layer(&t, "batchnorm", "", NULL, 5, D(2), D(3), D(4), D(5), D(6));
    assert_one_error(&t, "batchnorm expects a [C], [C, L], [C, H, W] or [C, D, H, W] input, got [2, 3, 4, 5, 6]",
                     layer_span(0));
    tn_fini(&t);
}

Test(shape, elementwise_layers)
{
    tnet t;
    const char *acts[] = {"relu", "sigmoid", "tanh", "leaky_relu"};
    const op_act kinds[] = {OP_ACT_RELU, OP_ACT_SIGMOID, OP_ACT_TANH, OP_ACT_LEAKY_RELU};
    for (int k = 0; k < 4; k++) {
        one_layer(&t, acts[k], "", "[6, 28, 28]", 3, D(6), D(28), D(28));
        cr_assert_eq(tn_node(&t, 1)->attrs.act.act, kinds[k], "%s", acts[k]);
        cr_assert_eq(tn_node(&t, 1)->nin, 1);
        cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 6 * 28 * 28);
        tn_fini(&t);
    }
    one_layer(&t, "leaky_relu", "", "[5]", 1, D(5));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.act.alpha, 0.01f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "leaky_relu", "alpha=0.2", "[5, 3]", 2, D(5), D(3));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.act.alpha, 0.2f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "dropout", "", "[4096]", 1, D(4096));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.dropout.p, 0.5f, 1e-9);
    cr_assert(!tn_node(&t, 1)->attrs.dropout.training);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 0);
    tn_fini(&t);
    one_layer(&t, "dropout", "0.25", "[3, 4, 4]", 3, D(3), D(4), D(4));
    cr_assert_float_eq(tn_node(&t, 1)->attrs.dropout.p, 0.25f, 1e-9);
    tn_fini(&t);
    one_layer(&t, "softmax", "", "[10]", 1, D(10));
    tn_fini(&t);
    one_layer(&t, "softmax", "", "[5, 4, 4]", 3, D(5), D(4), D(4));
    tn_fini(&t);
}

Test(shape, concat_and_add)
{
    tnet t;
    tn_init(&t, "branches");
    int x = tn_input(&t, "x", 3, D(3), D(8), D(8));
    int a = tn_layer(&t, "conv2d", "6 3 pad=1", 1, x);
    int b = tn_layer(&t, "conv2d", "10 1", 1, x);
    int c = tn_layer(&t, "concat", "", 2, a, b);
    int d = tn_layer(&t, "concat", "", 3, c, x, a);
    int e = tn_layer(&t, "conv2d", "16 3 pad=1", 1, x);
    int s = tn_layer(&t, "add", "", 2, c, e);
    tn_output(&t, "cat", d);
    tn_output(&t, "sum", s);
    cr_assert_not_null(tn_build(&t));
    assert_shape(tn_val(&t, c), "[16, 8, 8]");
    assert_shape(tn_val(&t, d), "[25, 8, 8]");
    assert_shape(tn_val(&t, s), "[16, 8, 8]");
    const ir_node *cn = tn_node(&t, d);
    cr_assert_eq(cn->op, OP_CONCAT);
    cr_assert_eq(cn->nin, 3);
    cr_assert_str_eq(t.g->vals[cn->in[1]].name, "x");
    const ir_node *an = tn_node(&t, s);
    cr_assert_eq(an->op, OP_ADD);
    cr_assert_str_eq(an->name, "add_6");
    cr_assert_eq(an->attrs.act.act, OP_ACT_NONE);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, s)), 16 * 64);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, d)), 0);
    cr_assert_eq(t.g->noutputs, 2);
    cr_assert_str_eq(t.g->output_names[0], "cat");
    cr_assert_str_eq(t.g->output_names[1], "sum");
    assert_shape(&t.g->vals[t.g->outputs[1]], "[16, 8, 8]");
    tn_fini(&t);

    /* concat of vectors */
    tn_init(&t, "vec");
    int u = tn_input(&t, "u", 1, D(5));
    int v = tn_input(&t, "v", 1, D(7));
    tn_output(&t, "y", tn_layer(&t, "concat", "", 2, u, v));
    cr_assert_not_null(tn_build(&t));
    assert_shape(&t.g->vals[t.g->outputs[0]], "[12]");
    cr_assert_eq(t.g->ninputs, 2);
    tn_fini(&t);
}

Test(shape, concat_and_add_errors)
{
    tnet t;
    tn_init(&t, "bad");
    int x = tn_input(&t, "x", 3, D(6), D(28), D(28));
    int y = tn_input(&t, "y", 3, D(16), D(14), D(14));
    tn_output(&t, "o", tn_layer(&t, "concat", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(&t,
                     "concat: input 2 has shape [16, 14, 14], which does not match input 1's [6, 28, 28] outside "
                     "the channel axis",
                     layer_span(0));
    tn_fini(&t);

    tn_init(&t, "bad");
    x = tn_input(&t, "x", 3, D(6), D(28), D(28));
    y = tn_input(&t, "y", 2, D(6), D(28));
    tn_output(&t, "o", tn_layer(&t, "concat", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(
        &t, "concat: input 2 has shape [6, 28], which does not match input 1's [6, 28, 28] outside the channel axis",
        layer_span(0));
    tn_fini(&t);

    tn_init(&t, "bad");
    x = tn_input(&t, "x", 3, D(16), D(32), D(32));
    y = tn_input(&t, "y", 3, D(32), D(16), D(16));
    tn_output(&t, "o", tn_layer(&t, "add", "", 2, x, y));
    cr_assert_null(tn_build(&t));
    assert_one_error(&t, "add: the shapes differ: [16, 32, 32] + [32, 16, 16]", layer_span(0));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- shape errors */

Test(errors, wrong_rank)
{
    tnet t;
    one_layer(&t, "conv2d", "6 5", NULL, 2, D(6), D(28));
    assert_one_error(&t, "conv2d expects a [C, H, W] input, got [6, 28]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 5", NULL, 3, D(1), D(28), D(28));
    assert_one_error(&t, "conv1d expects a [C, L] input, got [1, 28, 28]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv2d", "6 5", NULL, 1, D(400));
    assert_one_error(&t, "conv2d expects a [C, H, W] input, got [400]", layer_span(0));
    tn_fini(&t);
}

Test(errors, groups)
{
    tnet t;
    one_layer(&t, "conv2d", "8 3 groups=2", NULL, 3, D(3), D(8), D(8));
    assert_one_error(&t, "conv2d: input channels 3 are not divisible by groups 2", arg_span(0, 5));
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 3 groups=4", NULL, 2, D(8), D(8));
    assert_one_error(&t, "conv1d: filters 6 are not divisible by groups 4", arg_span(0, 5));
    tn_fini(&t);
}

Test(errors, output_below_one)
{
    tnet t;
    one_layer(&t, "conv2d", "8 5", NULL, 3, D(3), D(4), D(4));
    assert_one_error(&t, "conv2d: output height would be 0: input [3, 4, 4], kernel 5, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv2d", "8 (1,3) dilation=(1,4)", NULL, 3, D(3), D(4), D(6));
    assert_one_error(&t, "conv2d: output width would be -2: input [3, 4, 6], kernel 3, stride 1, pad 0, dilation 4",
                     layer_span(0));
    tn_fini(&t);
    /* a true floor: floor((2 - 4 - 1) / 2) + 1 = -1, where truncation would give 0 */
    one_layer(&t, "conv1d", "2 5 stride=2", NULL, 2, D(1), D(2));
    assert_one_error(&t, "conv1d: output length would be -1: input [1, 2], kernel 5, stride 2, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
}

Test(errors, several_in_one_run)
{
    tnet t;
    tn_init(&t, "two");
    int x = tn_input(&t, "x", 3, D(3), D(8), D(8));
    int a = tn_layer(&t, "maxpool", "16", 1, x);          /* error 1 */
    int a2 = tn_layer(&t, "conv2d", "4 3", 1, a);         /* reads a failed tensor: silent */
    int a3 = tn_layer(&t, "relu", "", 1, a2);
    int b = tn_layer(&t, "conv2d", "8 3 groups=2", 1, x); /* error 2, at groups */
    int c = tn_layer(&t, "conv2d", "8 3", 1, x);          /* fine */
    int d = tn_layer(&t, "flatten", "", 1, c);
    int e = tn_layer(&t, "conv2d", "2 3", 1, d);          /* error 3: rank */
    tn_output(&t, "a", a3);
    tn_output(&t, "b", b);
    tn_output(&t, "e", e);
    cr_assert_null(tn_build(&t));
    cr_assert_eq(t.diags.errors, 3);
    cr_assert_str_eq(t.diags.items[0].message,
                     "maxpool: output height would be 0: input [3, 8, 8], size 16, stride 16, pad 0");
    cr_assert_eq(t.diags.items[0].span.line, 1);
    cr_assert_str_eq(t.diags.items[1].message, "conv2d: input channels 3 are not divisible by groups 2");
    cr_assert_eq(t.diags.items[1].span.line, arg_span(3, 5).line);
    cr_assert_eq(t.diags.items[1].span.col, arg_span(3, 5).col);
    cr_assert_str_eq(t.diags.items[2].message, "conv2d expects a [C, H, W] input, got [288]");
    cr_assert_eq(t.diags.items[2].span.line, 7);
    tn_fini(&t);
}

Test(errors, bad_input_and_missing_argument)
{
    tnet t;
    tn_init(&t, "bad");
    int x = tn_input(&t, "x", 3, D(3), D(0), D(8));
    tn_output(&t, "y", tn_layer(&t, "relu", "", 1, x));
    cr_assert_null(tn_build(&t));
    cr_assert_eq(t.diags.errors, 1);
    cr_assert_str_eq(t.diags.items[0].message, "input 'x' has an invalid shape [3, 0, 8]");
    tn_fini(&t);

    tn_init(&t, "missing");
    x = tn_input(&t, "x", 1, D(8));
    int y = tn_layer(&t, "dense", "", 1, x);
    t.layers[0].args[0].present = false;
    tn_output(&t, "y", y);
    cr_assert_null(tn_build(&t));
    assert_one_error(&t, "dense: missing argument 'units'", layer_span(0));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- whole networks */

static void build_lenet5(tnet *t)
{
    tn_init(t, "lenet5");
    int h = tn_input(t, "image", 3, D(1), D(28), D(28));
    h = tn_layer(t, "conv2d", "6 5 pad=2", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "maxpool", "2", 1, h);
    h = tn_layer(t, "conv2d", "16 5", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "maxpool", "2", 1, h);
    h = tn_layer(t, "flatten", "", 1, h);
    h = tn_layer(t, "dense", "120", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "dense", "84", 1, h);
    h = tn_layer(t, "relu", "", 1, h);
    h = tn_layer(t, "dense", "10", 1, h);
    tn_output(t, "logits", h);
}

Test(network, lenet5_counts)
{
    tnet t;
    build_lenet5(&t);
    cr_assert_not_null(tn_build(&t));
    cr_assert_eq(t.g->nnodes, 12);
    cr_assert_eq(t.g->ninputs, 1);
    cr_assert_eq(t.g->noutputs, 1);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    cr_assert_str_eq(t.g->output_names[0], "logits");
    cr_assert_str_eq(t.g->name, "lenet5");
    cr_assert_eq(t.g->loss, -1);
    int64_t params = -1, flops = -1;
    ir_graph_totals(t.g, &params, &flops);
    cr_assert_eq(params, 61706);
    int64_t expect = (2 * 6 * 784 * 25 + 6 * 784) + 6 * 784 + 6 * 196 * 4      /* conv, relu, pool */
                     + (2 * 16 * 100 * 150 + 1600) + 1600 + 400 * 4            /* conv, relu, pool */
                     + 0                                                        /* flatten */
                     + (2 * 120 * 400 + 120) + 120 + (2 * 84 * 120 + 84) + 84 + (2 * 10 * 84 + 10);
    cr_assert_eq(flops, expect);
    int64_t sum = 0;
    for (int n = 0; n < t.g->nnodes; n++)
        sum += ir_node_params(t.g, n);
    cr_assert_eq(sum, 61706);
    /* dead nodes do not count */
    t.g->nodes[11].dead = true;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 61706 - 850);
    tn_fini(&t);
}

/* A basic residual block with batchnorm, as in ResNet: counts and the add. */
Test(network, residual_block)
{
    tnet t;
    tn_init(&t, "res");
    int x = tn_input(&t, "x", 3, D(16), D(32), D(32));
    int h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false", 1, x);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, h);
    h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false name=\"second\"", 1, h);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "add", "", 2, h, x);
    h = tn_layer(&t, "relu", "", 1, h);
    tn_output(&t, "y", h);
    cr_assert_not_null(tn_build(&t));
    cr_assert_not_null(tn_named(&t, "second.weight"));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 2 * (16 * 16 * 9) + 2 * 32);
    int states = 0;
    for (int v = 0; v < t.g->nvals; v++)
        states += t.g->vals[v].kind == IR_VAL_STATE;
    cr_assert_eq(states, 4);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[16, 32, 32]");
    tn_fini(&t);
}

/* The examples' blocks, expanded by hand as lang/sema.c would. */
static int res_basic(tnet *t, int x, int c)
{
    char a[64];
    snprintf(a, sizeof a, "%d 3 pad=1 bias=false", c);
    int y = tn_layer(t, "conv2d", a, 1, x);
    y = tn_layer(t, "batchnorm", "", 1, y);
    y = tn_layer(t, "relu", "", 1, y);
    y = tn_layer(t, "conv2d", a, 1, y);
    y = tn_layer(t, "batchnorm", "", 1, y);
    return tn_layer(t, "relu", "", 1, tn_layer(t, "add", "", 2, y, x));
}

static int res_down(tnet *t, int x, int c)
{
    char a[64];
    snprintf(a, sizeof a, "%d 3 stride=2 pad=1 bias=false", c);
    int y = tn_layer(t, "conv2d", a, 1, x);
    y = tn_layer(t, "batchnorm", "", 1, y);
    y = tn_layer(t, "relu", "", 1, y);
    snprintf(a, sizeof a, "%d 3 pad=1 bias=false", c);
    y = tn_layer(t, "conv2d", a, 1, y);
    y = tn_layer(t, "batchnorm", "", 1, y);
    snprintf(a, sizeof a, "%d 1 stride=2 bias=false", c);
    int s = tn_layer(t, "conv2d", a, 1, x);
    s = tn_layer(t, "batchnorm", "", 1, s);
    return tn_layer(t, "relu", "", 1, tn_layer(t, "add", "", 2, y, s));
}

Test(network, resnet20_by_hand)
{
    tnet t;
    tn_init(&t, "resnet20");
    int h = tn_input(&t, "image", 3, D(3), D(32), D(32));
    h = tn_layer(&t, "conv2d", "16 3 pad=1 bias=false", 1, h);
    h = tn_layer(&t, "batchnorm", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, h);
    for (int k = 0; k < 3; k++)
        h = res_basic(&t, h, 16);
    h = res_down(&t, h, 32);
    for (int k = 0; k < 2; k++)
        h = res_basic(&t, h, 32);
    h = res_down(&t, h, 64);
    for (int k = 0; k < 2; k++)
        h = res_basic(&t, h, 64);
    h = tn_layer(&t, "global_avgpool", "", 1, h);
    h = tn_layer(&t, "dense", "10", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t), "%s", t.diags.count ? t.diags.items[0].message : "");
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 272474);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    tn_fini(&t);
}

Test(network, vgg_small_by_hand)
{
    tnet t;
    tn_init(&t, "vgg_small");
    int h = tn_input(&t, "image", 3, D(3), D(32), D(32));
    const int widths[3] = {64, 128, 256};
    for (int s = 0; s < 3; s++) {
        char a[32];
        snprintf(a, sizeof a, "%d 3 pad=1", widths[s]);
        for (int k = 0; k < 2; k++)
            h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv2d", a, 1, h));
        h = tn_layer(&t, "maxpool", "2", 1, h);
    }
    h = tn_layer(&t, "flatten", "", 1, h);
    h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "dense", "256", 1, h));
    h = tn_layer(&t, "dense", "10", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 2196810);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[10]");
    tn_fini(&t);
}

Test(network, signal1d_by_hand)
{
    tnet t;
    tn_init(&t, "signal1d");
    int h = tn_input(&t, "signal", 2, D(1), D(128));
    h = tn_layer(&t, "maxpool", "2", 1, tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "16 5 pad=2", 1, h)));
    h = tn_layer(&t, "maxpool", "2", 1, tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "32 5 pad=2", 1, h)));
    h = tn_layer(&t, "relu", "", 1, tn_layer(&t, "conv1d", "64 3 pad=1", 1, h));
    assert_shape(&t.net.inputs[0], "[1, 128]");
    h = tn_layer(&t, "global_avgpool", "", 1, h);
    h = tn_layer(&t, "dense", "4", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    int64_t params;
    ir_graph_totals(t.g, &params, NULL);
    cr_assert_eq(params, 9156);
    assert_shape(&t.g->vals[t.g->outputs[0]], "[4]");
    tn_fini(&t);
}

/* ---------------------------------------------------------------- dumps */

Test(dump, text)
{
    tnet t;
    tn_init(&t, "tiny");
    int x = tn_input(&t, "image", 3, D(1), D(8), D(8));
    int h = tn_layer(&t, "conv2d", "4 3 pad=1", 1, x);
    h = tn_layer(&t, "relu", "", 1, h);
    h = tn_layer(&t, "maxpool", "3 stride=2", 1, h);
    h = tn_layer(&t, "dense", "10 bias=false", 1, h);
    tn_output(&t, "logits", h);
    cr_assert_not_null(tn_build(&t));
    char *s = ir_graph_dump_text(t.g);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "network tiny\n"
                        "  input image [1, 8, 8]\n"
                        "  conv2d_1: conv2d 4x3x3 (image, conv2d_1.weight, conv2d_1.bias) -> [4, 8, 8]\n"
                        "  relu_2: relu (conv2d_1) -> [4, 8, 8]\n"
                        "  maxpool_3: maxpool 3x3/2 (relu_2) -> [4, 3, 3]\n"
                        "  dense_4: dense 10 (maxpool_3, dense_4.weight) -> [10]\n"
                        "  output logits = dense_4 [10]\n");
    free(s);
    t.g->nodes[1].dead = true;
    snprintf(t.g->nodes[0].fused, OP_NAME_MAX, "relu_2");
    t.g->nodes[0].attrs.conv.act = OP_ACT_RELU;
    s = ir_graph_dump_text(t.g);
    cr_assert_not_null(strstr(s, "  conv2d_1: conv2d 4x3x3 +relu (image, conv2d_1.weight, conv2d_1.bias) -> "
                                 "[4, 8, 8]  [fused: relu_2]\n"));
    cr_assert_null(strstr(s, "relu_2: relu"));
    free(s);
    tn_fini(&t);
}

Test(dump, dot)
{
    tnet t;
    build_lenet5(&t);
    cr_assert_not_null(tn_build(&t));
    char *s = ir_graph_dump_dot(t.g);
    cr_assert_not_null(s);
    cr_assert(strncmp(s, "digraph \"lenet5\" {\n", 19) == 0, "%s", s);
    cr_assert_not_null(strstr(s, "  v0 [shape=ellipse, label=\"image\\n[1,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n0 [label=\"conv2d_1\\nconv2d 6x5x5\\n[6,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n2 [label=\"maxpool_3\\nmaxpool 2x2\\n[6,14,14]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n7 [label=\"dense_8\\ndense 120\\n[120]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  n1 [label=\"relu_2\\nrelu\\n[6,28,28]\"];\n"), "%s", s);
    cr_assert_not_null(strstr(s, "  v0 -> n0;\n"));
    cr_assert_not_null(strstr(s, "  n0 -> n1;\n"));
    cr_assert_not_null(strstr(s, "  n10 -> n11;\n"));
    cr_assert_not_null(strstr(s, "  out0 [shape=ellipse, label=\"logits\\n[10]\"];\n  n11 -> out0;\n"));
    cr_assert_null(strstr(s, "weight"), "parameters are not drawn");
    size_t len = strlen(s);
    cr_assert_str_eq(s + len - 2, "}\n");
    free(s);
    tn_fini(&t);
}

Test(dump, summaries)
{
    tnet t;
    tn_init(&t, "sum");
    int x = tn_input(&t, "x", 2, D(4), D(64));
    int a = tn_layer(&t, "conv1d", "8 5 stride=2 dilation=2 groups=2", 1, x);
    int b = tn_layer(&t, "avgpool", "2 pad=1", 1, a);
    int c = tn_layer(&t, "dropout", "0.25", 1, b);
    int d = tn_layer(&t, "leaky_relu", "alpha=0.2", 1, c);
    tn_output(&t, "y", d);
    cr_assert_not_null(tn_build(&t));
    char buf[128];
    cr_assert_str_eq(ir_node_summary(tn_node(&t, a), buf, sizeof buf), "8x5 stride 2 dilation 2 groups 2");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, b), buf, sizeof buf), "2 pad 1");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, c), buf, sizeof buf), "p=0.25");
    cr_assert_str_eq(ir_node_summary(tn_node(&t, d), buf, sizeof buf), "alpha=0.2");
    tn_fini(&t);
}
