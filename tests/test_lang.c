/* The front end (lang/): the examples and fixtures compile to the expected expanded networks
 * (layer lists, weight names of spec section 6, argument values and defaults, tensor ids,
 * spans, train settings), diagnostics render as spec section 9 says, and no input --
 * truncated examples, random bytes, random token soups -- crashes it or breaks the
 * invariants of lang_program.  The exact text of each error message is in test_lang_diag.c and
 * test_lang_diag_args.c; lexing, limits, rendering and robustness are in test_lang_robust.c. */
#include "tests/lang_util.h"

/* ---------------------------------------------------------------- the examples */

Test(lang_examples, all_compile)
{
    for (size_t e = 0; e < NEXAMPLES; e++) {
        compiled *c = compile_example(example_names[e]);
        cr_assert_eq(c->d.count, 0, "%s:\n%s", example_names[e], c->text);
        cr_assert_eq(c->p->nnetworks, 1, "%s", example_names[e]);
        const lang_network *n = lang_program_network(c->p, NULL);
        cr_assert_not_null(n);
        cr_assert_str_eq(n->name, example_names[e]);
        cr_assert_eq(lang_program_network(c->p, example_names[e]), n);
        cr_assert_eq(n->ninputs, 1);
        cr_assert_eq(n->noutputs, 1);
        cr_assert_str_eq(n->outputs[0].name, "logits");
        cr_assert_eq(n->outputs[0].tensor, n->ninputs + n->nlayers - 1);
        check_network_invariants(n);
        compiled_free(c);
    }
}

Test(lang_examples, lenet5)
{
    compiled *c = compile_example("lenet5");
    const lang_network *n = only_network(c);
    static const char *const names[] = {
        "conv2d_1", "relu_1", "maxpool_1", "conv2d_2", "relu_2", "maxpool_2", "flatten_1",
        "dense_1", "relu_3", "dense_2", "relu_4", "dense_3",
    };
    cr_assert_eq(n->nlayers, 12);
    for (int k = 0; k < 12; k++) {
        cr_assert_str_eq(n->layers[k].name, names[k]);
        cr_assert_eq(n->layers[k].ninputs, 1);
        cr_assert_eq(n->layers[k].inputs[0], k, "a chain: layer %d reads tensor %d", k, k);
    }
    cr_assert_str_eq(n->inputs[0].name, "image");
    cr_assert_eq(n->inputs[0].shape.rank, 3);
    cr_assert_eq(n->inputs[0].shape.d[0], 1);
    cr_assert_eq(n->inputs[0].shape.d[1], 28);
    cr_assert_eq(n->inputs[0].shape.d[2], 28);

    const lang_layer *c1 = layer_named(n, "conv2d_1");
    cr_assert_eq(c1->op, op_def_find_layer("conv2d"));
    cr_assert_eq(arg(c1, "filters")->i[0], 6);
    cr_assert_eq(arg(c1, "kernel")->i[0], 5);
    cr_assert_eq(arg(c1, "pad")->i[0], 2);
    cr_assert(arg(c1, "pad")->given);
    cr_assert(!arg(c1, "stride")->given);
    cr_assert(arg(c1, "stride")->present);
    cr_assert_eq(arg(c1, "stride")->i[0], 1);
    /* "        -> conv2d(6, 5, pad=2)" on line 8 */
    cr_assert(span_is(c1->span, 8, 12, 8, 31), "span %d:%d-%d:%d", c1->span.line, c1->span.col,
              c1->span.end_line, c1->span.end_col);
    cr_assert(span_is(arg_span(c1, "filters"), 8, 19, 8, 20));
    cr_assert(span_is(arg_span(c1, "pad"), 8, 29, 8, 30));
    cr_assert(span_is(arg_span(c1, "stride"), 8, 12, 8, 31), "a default sits at the call");

    const lang_layer *mp = layer_named(n, "maxpool_1");
    cr_assert_eq(arg(mp, "size")->i[0], 2);
    cr_assert_eq(arg(mp, "stride")->i[0], 2, "stride defaults to size");
    cr_assert(!arg(mp, "stride")->given);
    cr_assert(arg(mp, "stride")->present);
    cr_assert_eq(arg(layer_named(n, "dense_3"), "units")->i[0], 10);

    const lang_train *t = &n->train;
    cr_assert(t->present);
    cr_assert_eq(t->loss, LANG_LOSS_CROSS_ENTROPY);
    cr_assert_eq(t->optimizer, LANG_OPTIM_SGD);
    cr_assert_float_eq(t->lr, 0.05, 1e-12);
    cr_assert_float_eq(t->momentum, 0.9, 1e-12);
    cr_assert_float_eq(t->weight_decay, 0.0, 1e-12);
    cr_assert(!t->nesterov);
    cr_assert_eq(t->batch, 64);
    cr_assert_eq(t->epochs, 3);
    compiled_free(c);
}

/* conv2d_1 .. conv2d_21: the stem, 3 basic(16), down(32) with its 1x1 shortcut as the third
 * conv of the block, 2 basic(32), down(64), 2 basic(64). */
Test(lang_examples, resnet20_weight_names)
{
    compiled *c = compile_example("resnet20");
    const lang_network *n = only_network(c);
    cr_assert_eq(count_op(n, OP_CONV2D), 21);
    cr_assert_eq(count_op(n, OP_BATCHNORM), 21);
    cr_assert_eq(count_op(n, OP_RELU), 19);
    cr_assert_eq(count_op(n, OP_ADD), 9);
    cr_assert_eq(count_op(n, OP_DENSE), 1);
    cr_assert_eq(count_op(n, OP_GLOBAL_AVGPOOL), 1);
    cr_assert_eq(n->nlayers, 72);

    /* the k-th conv2d in expansion order is conv2d_k, and likewise for every kind */
    int seen[OP_COUNT] = {0};
    for (int k = 0; k < n->nlayers; k++) {
        const lang_layer *L = &n->layers[k];
        char want[OP_NAME_MAX];
        snprintf(want, sizeof want, "%s_%d", L->op->name, ++seen[L->op->op]);
        cr_assert_str_eq(L->name, want);
    }
    cr_assert_str_eq(n->layers[n->nlayers - 1].name, "dense_1");

    /* down(32): conv2d_8 (3x3 stride 2), conv2d_9 (3x3), conv2d_10 (1x1 stride 2 shortcut,
     * reading the block's input like conv2d_8), then add_4 = batchnorm_9 + batchnorm_10 */
    const lang_layer *c8 = layer_named(n, "conv2d_8"), *c10 = layer_named(n, "conv2d_10");
    cr_assert_eq(arg(c8, "filters")->i[0], 32);
    cr_assert_eq(arg(c8, "stride")->i[0], 2);
    cr_assert_eq(arg(c10, "kernel")->i[0], 1);
    cr_assert_eq(arg(c10, "stride")->i[0], 2);
    cr_assert(!arg(c10, "bias")->b);
    cr_assert_eq(c10->inputs[0], c8->inputs[0]);
    cr_assert_eq(c8->inputs[0], tensor_of(n, "relu_7"));
    const lang_layer *a4 = layer_named(n, "add_4");
    cr_assert_eq(a4->ninputs, 2);
    cr_assert_eq(a4->inputs[0], tensor_of(n, "batchnorm_9"));
    cr_assert_eq(a4->inputs[1], tensor_of(n, "batchnorm_10"));
    /* basic(16): add_1 = batchnorm_3 + the block's input (relu_1) */
    const lang_layer *a1 = layer_named(n, "add_1");
    cr_assert_eq(a1->inputs[0], tensor_of(n, "batchnorm_3"));
    cr_assert_eq(a1->inputs[1], tensor_of(n, "relu_1"));
    /* "    return (y + in) -> relu;" on line 9: the add's span is the '+' */
    cr_assert(span_is(a1->span, 9, 15, 9, 16));

    const lang_train *t = &n->train;
    cr_assert(t->present);
    cr_assert_float_eq(t->lr, 0.1, 1e-12);
    cr_assert_float_eq(t->momentum, 0.9, 1e-12);
    cr_assert_float_eq(t->weight_decay, 0.0001, 1e-15);
    cr_assert_eq(t->batch, 128);
    cr_assert_eq(t->epochs, 1);
    compiled_free(c);
}

Test(lang_examples, resnet18_counts)
{
    compiled *c = compile_example("resnet18");
    const lang_network *n = only_network(c);
    cr_assert_eq(count_op(n, OP_CONV2D), 20);
    cr_assert_eq(count_op(n, OP_BATCHNORM), 20);
    cr_assert_eq(count_op(n, OP_ADD), 8);
    cr_assert_eq(count_op(n, OP_MAXPOOL), 1);
    const lang_layer *mp = layer_named(n, "maxpool_1");
    cr_assert_eq(arg(mp, "size")->i[0], 3);
    cr_assert_eq(arg(mp, "stride")->i[0], 2);
    cr_assert(arg(mp, "stride")->given);
    cr_assert_eq(arg(mp, "pad")->i[0], 1);
    layer_named(n, "conv2d_20");
    cr_assert_eq(arg(layer_named(n, "dense_1"), "units")->i[0], 1000);
    cr_assert(!n->train.present);
    compiled_free(c);
}

/* convs(c, n): (conv2d -> relu) * n -> maxpool, repeated inline with its own weights */
Test(lang_examples, vgg16_repetition)
{
    compiled *c = compile_example("vgg16");
    const lang_network *n = only_network(c);
    cr_assert_eq(count_op(n, OP_CONV2D), 13);
    cr_assert_eq(count_op(n, OP_MAXPOOL), 5);
    cr_assert_eq(count_op(n, OP_DENSE), 3);
    cr_assert_eq(count_op(n, OP_DROPOUT), 2);
    cr_assert_str_eq(n->layers[0].name, "conv2d_1");
    cr_assert_str_eq(n->layers[1].name, "relu_1");
    cr_assert_str_eq(n->layers[2].name, "conv2d_2");
    cr_assert_str_eq(n->layers[3].name, "relu_2");
    cr_assert_str_eq(n->layers[4].name, "maxpool_1");
    static const int filters[13] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
    for (int k = 0; k < 13; k++) {
        char name[32];
        snprintf(name, sizeof name, "conv2d_%d", k + 1);
        cr_assert_eq(arg(layer_named(n, name), "filters")->i[0], filters[k], "%s", name);
    }
    cr_assert_eq(arg(layer_named(n, "maxpool_5"), "stride")->i[0], 2);
    cr_assert_float_eq(arg(layer_named(n, "dropout_1"), "p")->f, 0.5, 1e-12);
    cr_assert_eq(arg(layer_named(n, "dense_3"), "units")->i[0], 1000);
    compiled_free(c);
}

Test(lang_examples, signal1d_and_alexnet)
{
    compiled *c = compile_example("signal1d");
    const lang_network *n = only_network(c);
    cr_assert_eq(count_op(n, OP_CONV1D), 3);
    cr_assert_eq(n->inputs[0].shape.rank, 2);
    cr_assert_eq(n->inputs[0].shape.d[1], 128);
    cr_assert_str_eq(n->layers[0].name, "conv1d_1");
    compiled_free(c);

    c = compile_example("alexnet");
    n = only_network(c);
    cr_assert_eq(count_op(n, OP_CONV2D), 5);
    cr_assert_eq(count_op(n, OP_MAXPOOL), 3);
    const lang_layer *c1 = layer_named(n, "conv2d_1");
    cr_assert_eq(arg(c1, "kernel")->i[0], 11);
    cr_assert_eq(arg(c1, "stride")->i[0], 4);
    compiled_free(c);
}

/* The fixtures of the conformance suite, with their names=, tuples and block defaults. */
Test(lang_examples, fixtures_compile)
{
    static const char *const fixtures[] = {
        "bn_dense", "branches", "conv1d_args", "conv_args", "pools", "resnet20", "signal1d",
        "train_mix.adam", "train_plain.sgd_wd", "two_outputs", "vgg_tiny",
    };
    const char *dir = getenv("CNN_FIXTURES");
    cr_assert_not_null(dir, "CNN_FIXTURES is not set");
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.cnn", dir, fixtures[i]);
        size_t len;
        char *src = test_read_file(path, &len);
        compiled *c = compile_n(src, len);
        free(src);
        cr_assert_eq(c->d.count, 0, "%s:\n%s", fixtures[i], c->text);
        for (int k = 0; k < c->p->nnetworks; k++)
            check_network_invariants(&c->p->networks[k]);
        if (strcmp(fixtures[i], "branches") == 0) {
            const lang_network *n = &c->p->networks[0];
            /* a name= layer counts: side is the 7th conv2d, head the 1st dense */
            const lang_layer *side = layer_named(n, "side");
            cr_assert_eq(side->op->op, OP_CONV2D);
            cr_assert_eq(arg(layer_named(n, "conv2d_6"), "filters")->i[0], 4);
            cr_assert_eq(layer_named(n, "head")->op->op, OP_DENSE);
            /* basic(c, k=3): pad=(k - 1) / 2 */
            cr_assert_eq(arg(layer_named(n, "conv2d_2"), "pad")->i[0], 1);
            const lang_layer *cat = layer_named(n, "concat_1");
            cr_assert_eq(cat->ninputs, 3);
            cr_assert_eq(cat->inputs[0], tensor_of(n, "relu_6"));
            cr_assert_eq(cat->inputs[1], tensor_of(n, "softmax_1"));
            cr_assert_eq(cat->inputs[2], tensor_of(n, "relu_5"));
        }
        if (strcmp(fixtures[i], "train_mix.adam") == 0) {
            const lang_train *t = &c->p->networks[0].train;
            cr_assert_eq(t->optimizer, LANG_OPTIM_ADAM);
            cr_assert_float_eq(t->lr, 0.01, 1e-12);
            cr_assert_float_eq(t->beta1, 0.9, 1e-12);
            cr_assert_float_eq(t->beta2, 0.999, 1e-12);
            cr_assert_float_eq(t->eps, 1e-8, 1e-20);
            cr_assert_eq(t->batch, 4);
        }
        compiled_free(c);
    }
}

/* ---------------------------------------------------------------- expansion */

Test(lang_expand, blocks_and_repetition)
{
    compiled *c = compile("block basic(c) {\n"
                          "    y = in -> conv2d(c, 3, pad=1) -> relu -> conv2d(c, 3, pad=1);\n"
                          "    return (y + in) -> relu;\n"
                          "}\n"
                          "network n {\n"
                          "    input x[8, 16, 16];\n"
                          "    b = basic(8);\n"
                          "    h = x -> basic(8) * 3 -> b -> b;\n"
                          "    g = h -> (conv2d(8, 1) -> relu) * 4;\n"
                          "    output y = g -> (relu * 2) * 3;\n"
                          "}\n");
    const lang_network *n = only_network(c);
    /* 5 blocks of 2 convs, 1 add and 2 relus; 4 x (conv, relu); 6 relus */
    cr_assert_eq(count_op(n, OP_CONV2D), 5 * 2 + 4);
    cr_assert_eq(count_op(n, OP_ADD), 5);
    cr_assert_eq(count_op(n, OP_RELU), 5 * 2 + 4 + 6);
    cr_assert_eq(n->nlayers, 5 * 5 + 8 + 6);
    layer_named(n, "conv2d_14");
    layer_named(n, "add_5");
    layer_named(n, "relu_20");
    /* each copy reads the one before it */
    const lang_layer *a1 = layer_named(n, "add_1");
    cr_assert_eq(a1->inputs[1], 0, "the first block's 'in' is the input");
    cr_assert_eq(layer_named(n, "conv2d_3")->inputs[0], tensor_of(n, "relu_2"));
    compiled_free(c);
}

/* Layers are values: bound to names, passed to blocks, composed, repeated. */
Test(lang_expand, layers_as_values)
{
    compiled *c = compile("block head(k, act=relu) {\n"
                          "    return in -> dense(k) -> act;\n"
                          "}\n"
                          "network n {\n"
                          "    input x[3];\n"
                          "    pair = dense(8) -> tanh;\n"
                          "    output y = x -> pair -> head(4) -> head(3, sigmoid * 2) -> head(2, act=pair);\n"
                          "}\n");
    const lang_network *n = only_network(c);
    static const char *const names[] = {"dense_1", "tanh_1", "dense_2", "relu_1", "dense_3", "sigmoid_1",
                                        "sigmoid_2", "dense_4", "dense_5", "tanh_2"};
    cr_assert_eq(n->nlayers, 10);
    for (int k = 0; k < 10; k++)
        cr_assert_str_eq(n->layers[k].name, names[k]);
    cr_assert_eq(arg(&n->layers[8], "units")->i[0], 8);
    compiled_free(c);
}

Test(lang_expand, compile_time_arithmetic)
{
    compiled *c = compile("block b(c, k=3, d=c * 2) {\n"
                          "    return in -> conv2d(d, k, pad=(k - 1) / 2);\n"
                          "}\n"
                          "network n {\n"
                          "    input x[3, 32, 32];\n"
                          "    w = 4;\n"
                          "    output y = x -> conv2d(16 * 2, 3) -> conv2d(w * w - 2 * 3, (w - 1, 1 + 2))\n"
                          "        -> b(5) -> b(2, k=5) -> b(1, d=-(-7)) -> dropout(1 - 0.75)\n"
                          "        -> leaky_relu(0.5 / 4) -> dense((2 + 4) / 3 * 10) -> batchnorm(eps=1e-3 * 2);\n"
                          "}\n");
    const lang_network *n = only_network(c);
    cr_assert_eq(arg(layer_named(n, "conv2d_1"), "filters")->i[0], 32);
    const lang_layer *c2 = layer_named(n, "conv2d_2");
    cr_assert_eq(arg(c2, "filters")->i[0], 10);
    cr_assert_eq(arg(c2, "kernel")->n, 2);
    cr_assert_eq(arg(c2, "kernel")->i[0], 3);
    cr_assert_eq(arg(c2, "kernel")->i[1], 3);
    const lang_layer *c3 = layer_named(n, "conv2d_3"), *c4 = layer_named(n, "conv2d_4"),
                     *c5 = layer_named(n, "conv2d_5");
    cr_assert_eq(arg(c3, "filters")->i[0], 10);
    cr_assert_eq(arg(c3, "pad")->i[0], 1);
    cr_assert_eq(arg(c4, "filters")->i[0], 4);
    cr_assert_eq(arg(c4, "kernel")->i[0], 5);
    cr_assert_eq(arg(c4, "pad")->i[0], 2);
    cr_assert_eq(arg(c5, "filters")->i[0], 7);
    cr_assert_float_eq(arg(layer_named(n, "dropout_1"), "p")->f, 0.25, 1e-12);
    cr_assert_float_eq(arg(layer_named(n, "leaky_relu_1"), "alpha")->f, 0.125, 1e-12);
    cr_assert_eq(arg(layer_named(n, "dense_1"), "units")->i[0], 20);
    cr_assert_float_eq(arg(layer_named(n, "batchnorm_1"), "eps")->f, 0.002, 1e-15);
    compiled_free(c);
}

Test(lang_expand, defaults_tuples_and_same)
{
    compiled *c = compile("network n {\n"
                          "    input x[3, 32, 32];\n"
                          "    output y = x -> conv2d(6, (3, 5), stride=(2, 1), pad=\"same\") -> maxpool(3)\n"
                          "        -> avgpool((2, 3), pad=(1, 0)) -> batchnorm -> dropout -> leaky_relu\n"
                          "        -> conv2d(4, 1, 1, 0, 1, 1, false, \"last\");\n"
                          "}\n");
    const lang_network *n = only_network(c);
    const lang_layer *c1 = layer_named(n, "conv2d_1");
    cr_assert_eq(arg(c1, "kernel")->n, 2);
    cr_assert_eq(arg(c1, "kernel")->i[0], 3);
    cr_assert_eq(arg(c1, "kernel")->i[1], 5);
    cr_assert_eq(arg(c1, "stride")->n, 2);
    cr_assert_eq(arg(c1, "stride")->i[0], 2);
    cr_assert_eq(arg(c1, "stride")->i[1], 1);
    cr_assert(arg(c1, "pad")->same);
    cr_assert(arg(c1, "pad")->given);
    cr_assert_eq(arg(c1, "dilation")->i[0], 1);
    cr_assert_eq(arg(c1, "groups")->i[0], 1);
    cr_assert(arg(c1, "bias")->b);
    cr_assert(!arg(c1, "bias")->given);
    cr_assert(!arg(c1, "name")->present, "name has no default value");

    const lang_layer *mp = layer_named(n, "maxpool_1");
    cr_assert_eq(arg(mp, "stride")->n, 1);
    cr_assert_eq(arg(mp, "stride")->i[0], 3);
    cr_assert_eq(arg(mp, "pad")->i[0], 0);
    const lang_layer *ap = layer_named(n, "avgpool_1");
    cr_assert_eq(arg(ap, "stride")->n, 2, "a tuple size is copied to stride");
    cr_assert_eq(arg(ap, "stride")->i[0], 2);
    cr_assert_eq(arg(ap, "stride")->i[1], 3);
    cr_assert_eq(arg(ap, "pad")->i[0], 1);
    cr_assert_eq(arg(ap, "pad")->i[1], 0);

    const lang_layer *bn = layer_named(n, "batchnorm_1");
    cr_assert_float_eq(arg(bn, "eps")->f, 1e-5, 1e-15);
    cr_assert_float_eq(arg(bn, "momentum")->f, 0.1, 1e-12);
    cr_assert_float_eq(arg(layer_named(n, "dropout_1"), "p")->f, 0.5, 1e-12);
    cr_assert_float_eq(arg(layer_named(n, "leaky_relu_1"), "alpha")->f, 0.01, 1e-12);

    const lang_layer *last = layer_named(n, "last");
    cr_assert_eq(last->op->op, OP_CONV2D);
    cr_assert(!arg(last, "bias")->b);
    cr_assert(arg(last, "name")->given && arg(last, "name")->present);
    cr_assert_str_eq(arg(last, "name")->s, "last");
    cr_assert_eq(arg(last, "pad")->i[0], 0);
    compiled_free(c);
}

Test(lang_expand, names_count_per_kind)
{
    compiled *c = compile("network n {\n"
                          "    input x[3];\n"
                          "    output y = x -> dense(4, name=\"first\") -> dense(4) -> relu -> dense(2, name=\"out\")\n"
                          "        -> relu -> flatten;\n"
                          "}\n");
    const lang_network *n = only_network(c);
    cr_assert_str_eq(n->layers[0].name, "first");
    cr_assert_str_eq(n->layers[1].name, "dense_2", "a name= layer still counts");
    cr_assert_str_eq(n->layers[2].name, "relu_1");
    cr_assert_str_eq(n->layers[3].name, "out");
    cr_assert_str_eq(n->layers[4].name, "relu_2");
    cr_assert_str_eq(n->layers[5].name, "flatten_1");
    compiled_free(c);
}

/* Inputs are tensors 0..ninputs-1 wherever they are declared; layer k makes ninputs + k. */
Test(lang_expand, tensor_ids)
{
    compiled *c = compile("network two {\n"
                          "    input a[4, 8];\n"
                          "    h = a -> relu;\n"
                          "    input b[2, 8];\n"
                          "    s = h + h;\n"
                          "    output y = concat(s, b, a);\n"
                          "    output z = a;\n"
                          "}\n");
    const lang_network *n = only_network(c);
    cr_assert_eq(n->ninputs, 2);
    cr_assert_str_eq(n->inputs[0].name, "a");
    cr_assert_str_eq(n->inputs[1].name, "b");
    cr_assert_eq(n->inputs[1].shape.rank, 2);
    cr_assert_eq(n->nlayers, 3);
    cr_assert_eq(n->layers[0].inputs[0], 0);
    cr_assert_eq(n->layers[1].op->op, OP_ADD);
    cr_assert_eq(n->layers[1].inputs[0], 2);
    cr_assert_eq(n->layers[1].inputs[1], 2);
    const lang_layer *cat = &n->layers[2];
    cr_assert_str_eq(cat->name, "concat_1");
    cr_assert_eq(cat->ninputs, 3);
    cr_assert_eq(cat->inputs[0], 3);
    cr_assert_eq(cat->inputs[1], 1);
    cr_assert_eq(cat->inputs[2], 0);
    cr_assert_eq(n->noutputs, 2);
    cr_assert_str_eq(n->outputs[0].name, "y");
    cr_assert_eq(n->outputs[0].tensor, 4);
    cr_assert_str_eq(n->outputs[1].name, "z");
    cr_assert_eq(n->outputs[1].tensor, 0);
    compiled_free(c);
}

Test(lang_expand, several_networks)
{
    compiled *c = compile("block head(k) { return in -> dense(k); }\n"
                          "network a { input x[3]; output y = x -> head(2); }\n"
                          "network b { input x[5]; output y = x -> relu -> head(k=3); }\n"
                          "train b { optimizer = adam; }\n");
    cr_assert_eq(c->d.count, 0, "%s", c->text);
    cr_assert_eq(c->p->nnetworks, 2);
    cr_assert_null(lang_program_network(c->p, NULL), "two networks: none is the only one");
    cr_assert_null(lang_program_network(c->p, "c"));
    const lang_network *a = lang_program_network(c->p, "a"), *b = lang_program_network(c->p, "b");
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_eq(a->nlayers, 1);
    cr_assert_str_eq(b->layers[1].name, "dense_1", "counters start again per network");
    cr_assert_eq(arg(&b->layers[1], "units")->i[0], 3);
    cr_assert(!a->train.present);
    cr_assert(b->train.present);
    cr_assert_eq(b->train.optimizer, LANG_OPTIM_ADAM);
    cr_assert_float_eq(b->train.lr, 0.001, 1e-12);
    compiled_free(c);
}

Test(lang_expand, train_defaults_and_overrides)
{
    compiled *c = compile("network plain { input x[3]; output y = x -> dense(2); }\n"
                          "network tuned { input x[3]; output y = x -> dense(2); }\n"
                          "network adamw { input x[3]; output y = x -> dense(2); }\n"
                          "train tuned {\n"
                          "    loss = mse;\n"
                          "    optimizer = sgd(0.5, 0.9, true, weight_decay=1e-4);\n"
                          "    batch = 16 * 8;\n"
                          "    epochs = 10;\n"
                          "}\n"
                          "train adamw {\n"
                          "    optimizer = adam(lr=0.01, beta2=0.99, eps=1e-6, weight_decay=0.05);\n"
                          "}\n");
    cr_assert_eq(c->d.count, 0, "%s", c->text);
    const lang_train *p = &lang_program_network(c->p, "plain")->train;
    cr_assert(!p->present);
    cr_assert_eq(p->loss, LANG_LOSS_CROSS_ENTROPY);
    cr_assert_eq(p->optimizer, LANG_OPTIM_SGD);
    cr_assert_float_eq(p->lr, 0.01, 1e-12);
    cr_assert_float_eq(p->momentum, 0.0, 1e-12);
    cr_assert_eq(p->batch, 64);
    cr_assert_eq(p->epochs, 1);

    const lang_train *t = &lang_program_network(c->p, "tuned")->train;
    cr_assert(t->present);
    cr_assert_eq(t->loss, LANG_LOSS_MSE);
    cr_assert_float_eq(t->lr, 0.5, 1e-12);
    cr_assert_float_eq(t->momentum, 0.9, 1e-12);
    cr_assert(t->nesterov);
    cr_assert_float_eq(t->weight_decay, 1e-4, 1e-15);
    cr_assert_eq(t->batch, 128);
    cr_assert_eq(t->epochs, 10);

    const lang_train *a = &lang_program_network(c->p, "adamw")->train;
    cr_assert_eq(a->optimizer, LANG_OPTIM_ADAM);
    cr_assert_eq(a->loss, LANG_LOSS_CROSS_ENTROPY);
    cr_assert_float_eq(a->lr, 0.01, 1e-12);
    cr_assert_float_eq(a->beta1, 0.9, 1e-12);
    cr_assert_float_eq(a->beta2, 0.99, 1e-12);
    cr_assert_float_eq(a->eps, 1e-6, 1e-18);
    cr_assert_float_eq(a->weight_decay, 0.05, 1e-12);
    cr_assert_eq(a->batch, 64);
    compiled_free(c);
}
