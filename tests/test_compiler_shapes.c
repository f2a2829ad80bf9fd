/* Shape inference of convolutions and pools on hand-made networks (compiler/build.c with the
 * registry's rules): 1-D, 2-D and 3-D, tuples, "same" padding, parameters, FLOPs, and where
 * each shape error is reported. */
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

/* ---------------------------------------------------------------- shapes: convolutions */

Test(shape, conv2d_basic_and_params)
{
    tnet t;
    one_layer(&t, "conv2d", "6 5 pad=2", "[6, 28, 28]", 3, D(1), D(28), D(28));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->op, OP_CONV2D);
    cr_assert_str_eq(n->name, "conv2d_1");
    cr_assert_eq(n->attrs.conv.sdims, 2);
    cr_assert_eq(n->attrs.conv.kernel[0], 5);
    cr_assert_eq(n->attrs.conv.kernel[1], 5);
    cr_assert_eq(n->attrs.conv.pad[0], 2);
    cr_assert_eq(n->attrs.conv.pad[1], 2);
    cr_assert_eq(n->attrs.conv.stride[0], 1);
    cr_assert_eq(n->attrs.conv.dilation[1], 1);
    cr_assert_eq(n->attrs.conv.groups, 1);
    cr_assert(n->attrs.conv.bias);
    cr_assert_eq(n->attrs.conv.act, OP_ACT_NONE);
    cr_assert(!n->attrs.conv.pool && !n->attrs.conv.residual);
    /* x, weight, bias */
    cr_assert_eq(n->nin, 3);
    cr_assert_eq(n->nout, 1);
    const ir_value *w = &t.g->vals[n->in[1]], *b = &t.g->vals[n->in[2]];
    cr_assert_str_eq(t.g->vals[n->in[0]].name, "x");
    cr_assert_eq(t.g->vals[n->in[0]].kind, IR_VAL_INPUT);
    cr_assert_str_eq(w->name, "conv2d_1.weight");
    cr_assert_str_eq(b->name, "conv2d_1.bias");
    cr_assert_eq(w->kind, IR_VAL_PARAM);
    cr_assert(!w->batched);
    assert_shape(w, "[6, 1, 5, 5]");
    assert_shape(b, "[6]");
    const ir_value *y = tn_val(&t, 1);
    cr_assert_eq(y->kind, IR_VAL_ACT);
    cr_assert(y->batched);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 156);
    /* 2 * 6*28*28 outputs * 25 taps, plus a bias add per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 6 * 28 * 28 * 25 + 6 * 28 * 28);
    tn_fini(&t);

    one_layer(&t, "conv2d", "16 5", "[16, 10, 10]", 3, D(6), D(14), D(14));
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 16 * 6 * 25 + 16);
    tn_fini(&t);
}

Test(shape, conv3d_shapes_params_flops)
{
    tnet t;
    one_layer(&t, "conv3d", "4 3 pad=1", "[4, 6, 8, 8]", 4, D(2), D(6), D(8), D(8));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->op, OP_CONV3D);
    cr_assert_str_eq(n->name, "conv3d_1");
    cr_assert_eq(n->attrs.conv.sdims, 3);
    cr_assert_eq(n->attrs.conv.kernel_d, 3);
    cr_assert_eq(n->attrs.conv.kernel[0], 3);
    cr_assert_eq(n->attrs.conv.kernel[1], 3);
    cr_assert_eq(n->attrs.conv.pad_d, 1);
    cr_assert_eq(n->attrs.conv.stride_d, 1);
    cr_assert_eq(n->attrs.conv.dilation_d, 1);
    cr_assert_eq(n->nin, 3);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[4, 2, 3, 3, 3]");
    assert_shape(tn_named(&t, "conv3d_1.bias"), "[4]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 4 * 2 * 27 + 4);
    char d3[128];
    op_def_get(OP_CONV3D)->describe(&n->attrs, d3, sizeof d3);
    cr_assert_str_eq(d3, "4x3x3x3");
    /* 2 * outputs * C * taps, plus a bias add per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * (4 * 6 * 8 * 8) * 2 * 27 + 4 * 6 * 8 * 8);
    tn_fini(&t);
    /* tuples (d, h, w): only height and width strided */
    one_layer(&t, "conv3d", "6 (1,3,3) stride=(1,2,2) pad=(0,1,1)", "[6, 3, 2, 2]", 4, D(4), D(3), D(4), D(4));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.conv.kernel_d, 1);
    cr_assert_eq(n->attrs.conv.stride_d, 1);
    cr_assert_eq(n->attrs.conv.stride[0], 2);
    cr_assert_eq(n->attrs.conv.pad[1], 1);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[6, 4, 1, 3, 3]");
    char desc[128];
    op_def_get(OP_CONV3D)->describe(&n->attrs, desc, sizeof desc);
    cr_assert_str_eq(desc, "6x1x3x3 stride 1x2x2");
    tn_fini(&t);
    /* depth dilation and padding, groups, no bias */
    one_layer(&t, "conv3d", "8 (3,1,1) pad=(2,0,0) dilation=(2,1,1) groups=2 bias=false", "[8, 4, 1, 1]", 4, D(6),
              D(4), D(1), D(1));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.conv.dilation_d, 2);
    cr_assert_eq(n->attrs.conv.pad_d, 2);
    cr_assert_eq(n->nin, 2);
    assert_shape(tn_named(&t, "conv3d_1.weight"), "[8, 3, 3, 1, 1]");
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * (8 * 4) * 3 * 3);
    tn_fini(&t);
    /* pad="same" on every axis */
    one_layer(&t, "conv3d", "2 3 pad=same", "[2, 5, 5, 5]", 4, D(1), D(5), D(5), D(5));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad_d, 1);
    tn_fini(&t);
    /* 2-D convolutions keep the trivial depth 1, 1, 0, 1 */
    one_layer(&t, "conv2d", "2 3", "[2, 3, 3]", 3, D(1), D(5), D(5));
    n = tn_node(&t, 1);
    cr_assert(n->attrs.conv.kernel_d == 1 && n->attrs.conv.stride_d == 1 && n->attrs.conv.pad_d == 0 &&
              n->attrs.conv.dilation_d == 1);
    tn_fini(&t);
}

Test(shape, conv3d_errors_are_located)
{
    tnet t;
    /* a kernel deeper than the padded volume names the layer, the input and the numbers */
    one_layer(&t, "conv3d", "4 (4,3,3)", NULL, 4, D(2), D(2), D(5), D(5));
    assert_one_error(&t, "conv3d: output depth would be -1: input [2, 2, 5, 5], kernel 4, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 3 pad=(1,0,0)", NULL, 4, D(2), D(3), D(2), D(5));
    assert_one_error(&t, "conv3d: output height would be 0: input [2, 3, 2, 5], kernel 3, stride 1, pad 0, dilation 1",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 3", NULL, 3, D(3), D(8), D(8));
    assert_one_error(&t, "conv3d expects a [C, D, H, W] input, got [3, 8, 8]", layer_span(0));
    tn_fini(&t);
    one_layer(&t, "conv3d", "4 (3,3)", NULL, 4, D(2), D(4), D(8), D(8));
    assert_one_error(&t, "conv3d: 'kernel' takes an int or a triple for a [C, D, H, W] input, got a pair (3, 3)",
                     arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "conv3d", "6 3 groups=4", NULL, 4, D(8), D(4), D(4), D(4));
    assert_one_error(&t, "conv3d: filters 6 are not divisible by groups 4", arg_span(0, 5));
    tn_fini(&t);
    one_layer(&t, "conv3d", "2 (2,3,3) pad=same", NULL, 4, D(1), D(5), D(5), D(5));
    assert_one_error(&t, "conv3d: pad=\"same\" needs an odd effective kernel, got 2 (kernel 2, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
}

Test(shape, pools_3d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[4, 3, 4, 4]", 4, D(4), D(6), D(8), D(8));
    const ir_node *n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.pool.sdims, 3);
    cr_assert_eq(n->attrs.pool.size_d, 2);
    cr_assert_eq(n->attrs.pool.stride_d, 2);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 4 * 3 * 4 * 4 * 8);
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2,2) stride=1 pad=(1,0,0)", "[6, 4, 1, 1]", 4, D(6), D(3), D(2), D(2));
    n = tn_node(&t, 1);
    cr_assert_eq(n->attrs.pool.pad_d, 1);
    cr_assert_eq(n->attrs.pool.stride_d, 1);
    char dp[128];
    op_def_get(OP_AVGPOOL)->describe(&n->attrs, dp, sizeof dp);
    cr_assert_str_eq(dp, "2/1 pad 1x0x0");
    tn_fini(&t);
    one_layer(&t, "maxpool", "(1,2,2)", "[3, 5, 3, 3]", 4, D(3), D(5), D(7), D(6));
    tn_fini(&t);
    /* errors name the layer, the input and the numbers; 'depth' for the new axis */
    one_layer(&t, "maxpool", "(3,2,2)", NULL, 4, D(2), D(2), D(5), D(5));
    assert_one_error(&t, "maxpool: output depth would be 0: input [2, 2, 5, 5], size 3, stride 3, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2,2) pad=(2,0,0)", NULL, 4, D(2), D(4), D(5), D(5));
    assert_one_error(&t, "avgpool: pad 2 is more than half the window size 2", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "maxpool", "(2,2,2)", NULL, 3, D(2), D(8), D(8));
    assert_one_error(&t, "maxpool: 'size' takes an int or a pair for a [C, H, W] input, got a triple (2, 2, 2)",
                     arg_span(0, 0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(2,2)", NULL, 4, D(2), D(4), D(8), D(8));
    assert_one_error(&t, "avgpool: 'size' takes an int or a triple for a [C, D, H, W] input, got a pair (2, 2)",
                     arg_span(0, 0));
    tn_fini(&t);
}

Test(shape, conv2d_stride_dilation_groups)
{
    tnet t;
    /* AlexNet's first layer: floor((224 + 4 - 10 - 1) / 4) + 1 = 55 */
    one_layer(&t, "conv2d", "64 11 stride=4 pad=2", "[64, 55, 55]", 3, D(3), D(224), D(224));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.stride[1], 4);
    tn_fini(&t);
    /* dilation 2: effective kernel 5 */
    one_layer(&t, "conv2d", "8 3 dilation=2", "[8, 28, 28]", 3, D(3), D(32), D(32));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.dilation[0], 2);
    tn_fini(&t);
    /* stride 2, pad 1 on an even size: ResNet's downsampling */
    one_layer(&t, "conv2d", "32 3 stride=2 pad=1 bias=false", "[32, 16, 16]", 3, D(16), D(32), D(32));
    const ir_node *n = tn_node(&t, 1);
    cr_assert(!n->attrs.conv.bias);
    cr_assert_eq(n->nin, 2);
    cr_assert_null(tn_named(&t, "conv2d_1.bias"));
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 32 * 16 * 9);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2LL * 32 * 16 * 16 * 16 * 9);
    tn_fini(&t);
    /* groups: weight [F, C/g, kh, kw], FLOPs per group */
    one_layer(&t, "conv2d", "8 3 groups=2", "[8, 6, 6]", 3, D(4), D(8), D(8));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.groups, 2);
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[8, 2, 3, 3]");
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 8 * 36 * 2 * 9 + 8 * 36);
    tn_fini(&t);
    /* depthwise */
    one_layer(&t, "conv2d", "8 3 groups=8 pad=1", "[8, 8, 8]", 3, D(8), D(8), D(8));
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[8, 1, 3, 3]");
    tn_fini(&t);
    /* a stride that does not divide: floor */
    one_layer(&t, "conv2d", "2 3 stride=3", "[2, 3, 3]", 3, D(1), D(10), D(11));
    tn_fini(&t);
    /* a kernel as large as the input: 1x1 output */
    one_layer(&t, "conv2d", "2 7", "[2, 1, 1]", 3, D(1), D(7), D(7));
    tn_fini(&t);
}

Test(shape, conv2d_tuples)
{
    tnet t;
    /* H: 32 + 2 - 2 - 1 + 1 = 32; W: floor((16 + 4 - 4 - 1) / 2) + 1 = 8 */
    one_layer(&t, "conv2d", "4 (3,5) stride=(1,2) pad=(1,2)", "[4, 32, 8]", 3, D(3), D(32), D(16));
    const op_conv_attrs *c = &tn_node(&t, 1)->attrs.conv;
    cr_assert_eq(c->kernel[0], 3);
    cr_assert_eq(c->kernel[1], 5);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->stride[1], 2);
    cr_assert_eq(c->pad[0], 1);
    cr_assert_eq(c->pad[1], 2);
    assert_shape(tn_named(&t, "conv2d_1.weight"), "[4, 3, 3, 5]");
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 3 dilation=(1,3)", "[4, 8, 4]", 3, D(3), D(10), D(10));
    tn_fini(&t);
}

Test(shape, conv_pad_same)
{
    tnet t;
    one_layer(&t, "conv2d", "4 5 pad=same", "[4, 17, 17]", 3, D(3), D(17), D(17));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 2);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    /* dilation 2, kernel 3: effective 5 */
    one_layer(&t, "conv2d", "4 3 pad=same dilation=2", "[4, 9, 12]", 3, D(3), D(9), D(12));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 (3,5) pad=same", "[4, 6, 7]", 3, D(3), D(6), D(7));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 1);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 2);
    tn_fini(&t);
    one_layer(&t, "conv1d", "4 7 pad=same", "[4, 50]", 2, D(2), D(50));
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[1], 3);
    cr_assert_eq(tn_node(&t, 1)->attrs.conv.pad[0], 0);
    tn_fini(&t);
}

Test(shape, conv_pad_same_errors)
{
    tnet t;
    one_layer(&t, "conv2d", "4 3 stride=2 pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs stride 1, got stride 2", arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 4 pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs an odd effective kernel, got 4 (kernel 4, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv2d", "4 (3,2) pad=same", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "conv2d: pad=\"same\" needs an odd effective kernel, got 2 (kernel 2, dilation 1)",
                     arg_span(0, 3));
    tn_fini(&t);
    one_layer(&t, "conv1d", "4 3 stride=3 pad=same", NULL, 2, D(3), D(16));
    assert_one_error(&t, "conv1d: pad=\"same\" needs stride 1, got stride 3", arg_span(0, 3));
    tn_fini(&t);
}

Test(shape, conv1d)
{
    tnet t;
    one_layer(&t, "conv1d", "16 5 pad=2", "[16, 128]", 2, D(1), D(128));
    const ir_node *n = tn_node(&t, 1);
    const op_conv_attrs *c = &n->attrs.conv;
    cr_assert_eq(n->op, OP_CONV1D);
    cr_assert_eq(c->sdims, 1);
    /* the length's numbers at index 1; height 1/1/0/1 at index 0 */
    cr_assert_eq(c->kernel[1], 5);
    cr_assert_eq(c->pad[1], 2);
    cr_assert_eq(c->kernel[0], 1);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->pad[0], 0);
    cr_assert_eq(c->dilation[0], 1);
    assert_shape(tn_named(&t, "conv1d_1.weight"), "[16, 1, 5]");
    assert_shape(tn_named(&t, "conv1d_1.bias"), "[16]");
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 96);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 2 * 16 * 128 * 5 + 16 * 128);
    tn_fini(&t);
    /* floor((100 - 2*2 - 1) / 2) + 1 = 48 */
    one_layer(&t, "conv1d", "4 3 stride=2 dilation=2", "[4, 48]", 2, D(2), D(100));
    c = &tn_node(&t, 1)->attrs.conv;
    cr_assert_eq(c->stride[1], 2);
    cr_assert_eq(c->dilation[1], 2);
    cr_assert_eq(c->stride[0], 1);
    cr_assert_eq(c->dilation[0], 1);
    tn_fini(&t);
    one_layer(&t, "conv1d", "6 3 groups=3 bias=false", "[6, 8]", 2, D(3), D(10));
    assert_shape(tn_named(&t, "conv1d_1.weight"), "[6, 1, 3]");
    cr_assert_null(tn_named(&t, "conv1d_1.bias"));
    tn_fini(&t);
}

/* ---------------------------------------------------------------- shapes: pools */

Test(shape, pools_2d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[6, 14, 14]", 3, D(6), D(28), D(28));
    const op_pool_attrs *p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(tn_node(&t, 1)->op, OP_MAXPOOL);
    cr_assert_eq(p->sdims, 2);
    cr_assert_eq(p->size[0], 2);
    cr_assert_eq(p->stride[0], 2); /* stride defaults to size */
    cr_assert_eq(p->stride[1], 2);
    cr_assert_eq(p->pad[1], 0);
    cr_assert_eq(tn_node(&t, 1)->nin, 1);
    cr_assert_eq(ir_node_params(t.g, tn_node_index(&t, 1)), 0);
    /* one comparison per window element per output */
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 6 * 14 * 14 * 4);
    tn_fini(&t);
    one_layer(&t, "maxpool", "3 stride=2", "[64, 27, 27]", 3, D(64), D(55), D(55));
    tn_fini(&t);
    /* ResNet-18's stem pool */
    one_layer(&t, "maxpool", "3 stride=2 pad=1", "[64, 56, 56]", 3, D(64), D(112), D(112));
    cr_assert_eq(tn_node(&t, 1)->attrs.pool.pad[0], 1);
    tn_fini(&t);
    /* odd input: floor */
    one_layer(&t, "avgpool", "2", "[3, 3, 3]", 3, D(3), D(7), D(7));
    cr_assert_eq(tn_node(&t, 1)->op, OP_AVGPOOL);
    tn_fini(&t);
    /* tuples; the stride default copies the tuple */
    one_layer(&t, "maxpool", "(2,1)", "[3, 4, 7]", 3, D(3), D(8), D(7));
    p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(p->size[0], 2);
    cr_assert_eq(p->size[1], 1);
    cr_assert_eq(p->stride[0], 2);
    cr_assert_eq(p->stride[1], 1);
    tn_fini(&t);
    one_layer(&t, "avgpool", "(3,2) stride=(1,2) pad=(1,0)", "[3, 8, 4]", 3, D(3), D(8), D(8));
    tn_fini(&t);
    /* pad exactly half the window is allowed */
    one_layer(&t, "maxpool", "2 pad=1", "[1, 5, 5]", 3, D(1), D(8), D(8));
    tn_fini(&t);
}

Test(shape, pools_1d)
{
    tnet t;
    one_layer(&t, "maxpool", "2", "[16, 64]", 2, D(16), D(128));
    const op_pool_attrs *p = &tn_node(&t, 1)->attrs.pool;
    cr_assert_eq(p->sdims, 1);
    cr_assert_eq(p->size[1], 2);
    cr_assert_eq(p->stride[1], 2);
    cr_assert_eq(p->size[0], 1);
    cr_assert_eq(p->stride[0], 1);
    cr_assert_eq(p->pad[0], 0);
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 16 * 64 * 2);
    tn_fini(&t);
    one_layer(&t, "avgpool", "3 stride=1 pad=1", "[4, 10]", 2, D(4), D(10));
    tn_fini(&t);
}

Test(shape, pool_errors)
{
    tnet t;
    one_layer(&t, "maxpool", "(2,2)", NULL, 2, D(16), D(128));
    assert_one_error(&t, "maxpool: 'size' takes one int for a [C, L] input, got a tuple (2, 2)", arg_span(0, 0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "2 stride=(1,2)", NULL, 2, D(16), D(128));
    assert_one_error(&t, "avgpool: 'stride' takes one int for a [C, L] input, got a tuple (1, 2)", arg_span(0, 1));
    tn_fini(&t);
    one_layer(&t, "maxpool", "3 pad=2", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "maxpool: pad 2 is more than half the window size 3", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(4,2) pad=(2,2)", NULL, 3, D(3), D(16), D(16));
    assert_one_error(&t, "avgpool: pad 2 is more than half the window size 2", arg_span(0, 2));
    tn_fini(&t);
    one_layer(&t, "maxpool", "2", NULL, 3, D(16), D(1), D(1));
    assert_one_error(&t, "maxpool: output height would be 0: input [16, 1, 1], size 2, stride 2, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "avgpool", "(1,3)", NULL, 3, D(16), D(4), D(2));
    assert_one_error(&t, "avgpool: output width would be 0: input [16, 4, 2], size 3, stride 3, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "maxpool", "4", NULL, 2, D(16), D(3));
    assert_one_error(&t, "maxpool: output length would be 0: input [16, 3], size 4, stride 4, pad 0",
                     layer_span(0));
    tn_fini(&t);
    one_layer(&t, "maxpool", "2", NULL, 1, D(120));
    assert_one_error(&t, "maxpool expects a [C, L], [C, H, W] or [C, D, H, W] input, got [120]", layer_span(0));
    tn_fini(&t);
}

Test(shape, global_avgpool)
{
    tnet t;
    one_layer(&t, "global_avgpool", "", "[64]", 3, D(64), D(7), D(7));
    cr_assert_eq(ir_node_flops(t.g, tn_node_index(&t, 1)), 64 * 49);
    tn_fini(&t);
    one_layer(&t, "global_avgpool", "", "[64]", 2, D(64), D(32));
    tn_fini(&t);
    one_layer(&t, "global_avgpool", "", NULL, 1, D(64));
    assert_one_error(&t, "global_avgpool expects a [C, L] or [C, H, W] input, got [64]", layer_span(0));
    tn_fini(&t);
}
