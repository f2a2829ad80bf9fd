/* End-to-end tests of graph construction: .cnn source through lang_compile and ir_build.
 * Every example of $CNN_EXAMPLES compiles with PyTorch's parameter count and the expected
 * output shape; shape errors in source text render as golden diagnostics (file, line,
 * column, quoted line, caret). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/file_util.h"
#include "compiler/build.h"
#include "compiler/ir.h"
#include "lang/diag.h"
#include "lang/lang.h"

typedef struct compiled {
    char *src;
    size_t len;
    diag_list diags;
    lang_program *prog;
    ir_graph *g;
} compiled;

/* Compiles source text through lang and ir_build (only when lang found no error). */
static void compile_text(compiled *c, const char *file, const char *src)
{
    memset(c, 0, sizeof *c);
    c->len = strlen(src);
    c->src = malloc(c->len + 1);
    memcpy(c->src, src, c->len + 1);
    diag_init(&c->diags, file, c->src, c->len);
    c->prog = lang_compile(c->src, c->len, &c->diags);
    cr_assert_not_null(c->prog, "lang_compile ran out of memory");
    if (c->diags.errors == 0) {
        const lang_network *net = lang_program_network(c->prog, NULL);
        cr_assert_not_null(net);
        c->g = ir_build(net, &c->diags);
    }
}

static void compiled_free(compiled *c)
{
    ir_graph_destroy(c->g);
    lang_program_free(c->prog);
    diag_free(&c->diags);
    free(c->src);
}

static char *rendered(const compiled *c)
{
    char *s = diag_render(&c->diags);
    cr_assert_not_null(s);
    return s;
}

/* ---------------------------------------------------------------- the examples */

static void check_example(const char *file, int64_t params, const char *out_shape, int noutputs)
{
    const char *dir = getenv("CNN_EXAMPLES");
    cr_assert_not_null(dir, "CNN_EXAMPLES is not set");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    char *src = test_file_bytes(path, &len);
    cr_assert_not_null(src, "cannot read %s", path);
    compiled c;
    compile_text(&c, file, src);
    free(src);
    if (c.diags.errors) {
        char *r = rendered(&c);
        cr_assert_fail("%s does not compile:\n%s", file, r);
    }
    cr_assert_not_null(c.g, "%s: ir_build failed", file);
    int64_t p = -1, f = -1;
    ir_graph_totals(c.g, &p, &f);
    cr_assert_eq(p, params, "%s: %lld parameters, PyTorch has %lld", file, (long long)p, (long long)params);
    cr_assert_gt(f, 0);
    cr_assert_eq(c.g->noutputs, noutputs);
    char sh[64];
    cr_assert_str_eq(op_shape_str(&c.g->vals[c.g->outputs[0]].shape, sh, sizeof sh), out_shape, "%s", file);
    cr_assert_str_eq(c.g->output_names[0], "logits");
    /* every node's inputs come before it, every PARAM has a dotted weight name */
    for (int n = 0; n < c.g->nnodes; n++)
        for (int k = 0; k < c.g->nodes[n].nin; k++) {
            const ir_value *v = &c.g->vals[c.g->nodes[n].in[k]];
            cr_assert(v->producer < n);
            if (v->kind == IR_VAL_PARAM || v->kind == IR_VAL_STATE)
                cr_assert_not_null(strchr(v->name, '.'), "%s", v->name);
        }
    compiled_free(&c);
}

Test(examples, lenet5) { check_example("lenet5.cnn", 61706, "[10]", 1); }
Test(examples, vgg_small) { check_example("vgg_small.cnn", 2196810, "[10]", 1); }
Test(examples, resnet20) { check_example("resnet20.cnn", 272474, "[10]", 1); }
Test(examples, alexnet) { check_example("alexnet.cnn", 61100840, "[1000]", 1); }
Test(examples, vgg16) { check_example("vgg16.cnn", 138357544, "[1000]", 1); }
Test(examples, resnet18) { check_example("resnet18.cnn", 11689512, "[1000]", 1); }
Test(examples, signal1d) { check_example("signal1d.cnn", 9156, "[4]", 1); }

static const ir_value *find_value(const ir_graph *g, const char *name)
{
    for (int v = 0; v < g->nvals; v++)
        if (strcmp(g->vals[v].name, name) == 0)
            return &g->vals[v];
    return NULL;
}

/* Weight names follow spec section 6: <layer>_<k> in expansion order, blocks inline. */
Test(examples, resnet18_weight_names)
{
    const char *dir = getenv("CNN_EXAMPLES");
    cr_assert_not_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/resnet18.cnn", dir);
    size_t len;
    char *src = test_file_bytes(path, &len);
    cr_assert_not_null(src);
    compiled c;
    compile_text(&c, "resnet18.cnn", src);
    free(src);
    cr_assert_not_null(c.g);
    char sh[64];
    const struct {
        const char *name;
        ir_valkind kind;
        const char *shape;
    } expect[] = {
        {"conv2d_1.weight", IR_VAL_PARAM, "[64, 3, 7, 7]"},
        {"batchnorm_1.weight", IR_VAL_PARAM, "[64]"},
        {"batchnorm_1.running_var", IR_VAL_STATE, "[64]"},
        {"conv2d_2.weight", IR_VAL_PARAM, "[64, 64, 3, 3]"},
        /* down(128): two 3x3 convs, then the 1x1 shortcut */
        {"conv2d_6.weight", IR_VAL_PARAM, "[128, 64, 3, 3]"},
        {"conv2d_7.weight", IR_VAL_PARAM, "[128, 128, 3, 3]"},
        {"conv2d_8.weight", IR_VAL_PARAM, "[128, 64, 1, 1]"},
        {"conv2d_20.weight", IR_VAL_PARAM, "[512, 512, 3, 3]"},
        {"batchnorm_20.running_mean", IR_VAL_STATE, "[512]"},
        {"dense_1.weight", IR_VAL_PARAM, "[1000, 512]"},
        {"dense_1.bias", IR_VAL_PARAM, "[1000]"},
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        const ir_value *v = find_value(c.g, expect[k].name);
        cr_assert_not_null(v, "no %s", expect[k].name);
        cr_assert_eq(v->kind, expect[k].kind, "%s", expect[k].name);
        cr_assert_str_eq(op_shape_str(&v->shape, sh, sizeof sh), expect[k].shape, "%s", expect[k].name);
    }
    cr_assert_null(find_value(c.g, "conv2d_21.weight"));
    cr_assert_null(find_value(c.g, "conv2d_1.bias"));
    cr_assert_null(find_value(c.g, "batchnorm_21.weight"));
    compiled_free(&c);
}

/* ---------------------------------------------------------------- shape errors in source */

static void expect_diags(const char *src, const char *golden)
{
    compiled c;
    compile_text(&c, "net.cnn", src);
    cr_assert_null(c.g);
    cr_assert_gt(c.diags.errors, 0);
    char *r = rendered(&c);
    cr_assert_str_eq(r, golden);
    free(r);
    compiled_free(&c);
}

Test(source_errors, pool_output_below_one)
{
    expect_diags("network n {\n"
                 "    input x[16, 4, 4];\n"
                 "    output y = x -> maxpool(2) -> maxpool(2) -> maxpool(2);\n"
                 "}\n",
                 "net.cnn:3:49: error: maxpool: output height would be 0: input [16, 1, 1], size 2, stride 2, pad 0\n"
                 "        output y = x -> maxpool(2) -> maxpool(2) -> maxpool(2);\n"
                 "                                                    ^~~~~~~~~~\n");
}

Test(source_errors, conv_rank_and_groups_in_one_run)
{
    expect_diags("network n {\n"
                 "    input x[3, 32, 32];\n"
                 "    input s[6, 28];\n"
                 "    a = s -> conv2d(8, 3);\n"
                 "    b = x -> conv2d(8, 3, groups=2);\n"
                 "    output y = a;\n"
                 "    output z = b;\n"
                 "}\n",
                 "net.cnn:4:14: error: conv2d expects a [C, H, W] input, got [6, 28]\n"
                 "        a = s -> conv2d(8, 3);\n"
                 "                 ^~~~~~~~~~~~\n"
                 "net.cnn:5:34: error: conv2d: input channels 3 are not divisible by groups 2\n"
                 "        b = x -> conv2d(8, 3, groups=2);\n"
                 "                                     ^\n");
}

Test(source_errors, residual_shapes_differ)
{
    expect_diags("block bad(c) {\n"
                 "    y = in -> conv2d(c, 3, stride=2, pad=1);\n"
                 "    return (y + in) -> relu;\n"
                 "}\n"
                 "network n {\n"
                 "    input x[16, 32, 32];\n"
                 "    output y = x -> bad(16);\n"
                 "}\n",
                 "net.cnn:3:15: error: add: the shapes differ: [16, 16, 16] + [16, 32, 32]\n"
                 "        return (y + in) -> relu;\n"
                 "                  ^\n");
}

Test(source_errors, pad_same_with_stride)
{
    expect_diags("network n {\n"
                 "    input x[3, 32, 32];\n"
                 "    output y = x -> conv2d(8, 3, stride=2, pad=\"same\");\n"
                 "}\n",
                 "net.cnn:3:48: error: conv2d: pad=\"same\" needs stride 1, got stride 2\n"
                 "        output y = x -> conv2d(8, 3, stride=2, pad=\"same\");\n"
                 "                                                   ^~~~~~\n");
}

Test(source_errors, concat_and_tuple_on_signal)
{
    expect_diags("network n {\n"
                 "    input x[4, 16, 16];\n"
                 "    input s[4, 100];\n"
                 "    a = concat(x, x -> maxpool(2));\n"
                 "    b = s -> maxpool((2, 2));\n"
                 "    output y = a;\n"
                 "    output z = b;\n"
                 "}\n",
                 "net.cnn:4:9: error: concat: input 2 has shape [4, 8, 8], which does not match input 1's "
                 "[4, 16, 16] outside the channel axis\n"
                 "        a = concat(x, x -> maxpool(2));\n"
                 "            ^~~~~~~~~~~~~~~~~~~~~~~~~~\n"
                 "net.cnn:5:22: error: maxpool: 'size' takes one int for a [C, L] input, got a tuple (2, 2)\n"
                 "        b = s -> maxpool((2, 2));\n"
                 "                         ^~~~~~\n");
}
