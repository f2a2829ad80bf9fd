/* Tests of the op registry (ops/registry.c and the ops/desc_*.c entries) and of the graph
 * container (compiler/ir.c): the table against ops.def, derived layer names, properties,
 * summaries, schemas, backward rules, shape helpers, values and nodes. */
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

/* ---------------------------------------------------------------- registry */

Test(registry, table_matches_ops_def)
{
    static const char *const names[] = {
#define X(e, s) #s,
#include "ops/ops.def"
#undef X
    };
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        cr_assert_not_null(d);
        cr_assert_eq(d->op, (op_kind)op);
        cr_assert_str_eq(d->name, names[op]);
        cr_assert_str_eq(op_name((op_kind)op), names[op]);
        cr_assert(d->nargs >= 0 && d->nargs <= OP_MAX_ARGS);
        if (d->is_layer) {
            cr_assert(op <= OP_ADD, "%s", d->name);
            cr_assert_not_null(d->shape, "%s", d->name);
        } else {
            cr_assert(!d->callable);
        }
    }
    cr_assert_null(op_def_get(OP_COUNT));
}

/* The list is derived from the table: exactly the callable layers, in ops.def order, and the
 * same list on every call. */
Test(registry, layer_names_are_the_callable_layers)
{
    const char *const *names = op_layer_names();
    cr_assert_eq(op_layer_names(), names);
    int n = 0;
    for (; names[n]; n++) {
        const op_def *d = op_def_find_layer(names[n]);
        cr_assert_not_null(d, "%s", names[n]);
        cr_assert(d->is_layer && d->callable);
        cr_assert_str_eq(d->name, names[n]);
    }
    int k = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (d->is_layer && d->callable) {
            cr_assert(k < n, "%s is missing from the list", d->name);
            cr_assert_str_eq(names[k], d->name, "list entry %d", k);
            k++;
        }
    }
    cr_assert_eq(n, k);
    cr_assert_str_eq(names[0], "conv1d");
    for (int i = 0; i < n; i++)
        cr_assert(strcmp(names[i], "add") != 0);
    /* add is a layer (it gets a name) but only '+' makes it */
    const op_def *add = op_def_get(OP_ADD);
    cr_assert(add->is_layer);
    cr_assert(!add->callable);
    cr_assert_null(op_def_find_layer("add"));
    cr_assert_null(op_def_find_layer("conv_bwd_data"));
    cr_assert_null(op_def_find_layer("maxpol"));
    cr_assert_null(op_def_find_layer(NULL));
}

/* Every ACT op of ops.def carries its activation kind, and no other op does. */
Test(registry, activation_ops_carry_their_kind)
{
    static const op_act acts[OP_COUNT] = {
#define X(e, s)
#define ACT(e, s) [OP_##e] = OP_ACT_##e,
#include "ops/ops.def"
#undef ACT
#undef X
    };
    int nact = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        cr_assert_eq(d->act, acts[op], "%s", d->name);
        if (d->act != OP_ACT_NONE) {
            nact++;
            cr_assert(d->is_layer && d->inplace, "%s", d->name);
            cr_assert_str_eq(op_act_name(d->act), d->name);
        }
    }
    cr_assert_eq(nact, 4);
}

/* Layers have a shape rule and a FLOP count; an op with parameters says how each is
 * initialised and carries OP_PROP_HAS_WEIGHTS; backward ops, losses and updates are
 * training-only and never layers. */
Test(registry, every_entry_is_complete)
{
    op_shape x = {.rank = 3, .d = {4, 8, 8}};
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (d->is_layer) {
            cr_assert_not_null(d->shape, "%s", d->name);
            cr_assert_not_null(d->flops, "%s", d->name);
            cr_assert(!(d->props & OP_PROP_TRAINING_ONLY), "%s", d->name);
        }
        cr_assert_eq(d->params != NULL, (d->props & OP_PROP_HAS_WEIGHTS) != 0, "%s", d->name);
        if (d->bias_flag)
            cr_assert_not_null(d->params, "%s: a bias flag without parameters", d->name);
        if (!d->params)
            continue;
        op_attrs a;
        memset(&a, 0, sizeof a);
        a.conv.sdims = 2;
        a.conv.filters = 6;
        a.conv.groups = 1;
        a.conv.kernel[0] = a.conv.kernel[1] = 3;
        if (op == OP_DENSE) {
            memset(&a, 0, sizeof a);
            a.dense.units = 10;
        }
        if (d->bias_flag)
            *d->bias_flag(&a) = true;
        const char *suffix[OP_MAX_PARAMS];
        op_shape shapes[OP_MAX_PARAMS];
        bool trainable[OP_MAX_PARAMS];
        op_init init[OP_MAX_PARAMS];
        for (int k = 0; k < OP_MAX_PARAMS; k++)
            init[k] = OP_INIT_NONE;
        int np = d->params(&a, &x, suffix, shapes, trainable, init);
        cr_assert(np >= 1 && np <= OP_MAX_PARAMS, "%s", d->name);
        for (int k = 0; k < np; k++)
            cr_assert_neq(init[k], OP_INIT_NONE, "%s.%s has no init rule", d->name, suffix[k]);
    }
    const op_kind training_only[] = {OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHTS, OP_MAXPOOL_BWD, OP_AVGPOOL_BWD,
                                     OP_GLOBAL_AVGPOOL_BWD, OP_DENSE_BWD_DATA, OP_DENSE_BWD_WEIGHTS,
                                     OP_BATCHNORM_BWD, OP_DROPOUT_BWD, OP_ACT_BWD, OP_SOFTMAX_BWD,
                                     OP_CONCAT_BWD, OP_XENT_LOSS, OP_MSE_LOSS, OP_SGD_UPDATE, OP_ADAM_UPDATE,
                                     OP_ADAMW_UPDATE, OP_GRAD_SQNORM, OP_CLIP_SCALE};
    for (size_t k = 0; k < sizeof training_only / sizeof training_only[0]; k++)
        cr_assert(op_def_get(training_only[k])->props & OP_PROP_TRAINING_ONLY, "%s", op_name(training_only[k]));
    cr_assert(!(op_def_get(OP_REORDER)->props & OP_PROP_TRAINING_ONLY));
    cr_assert(!(op_def_get(OP_BN_FOLD)->props & OP_PROP_TRAINING_ONLY));
}

/* The properties the passes ask for instead of op kinds. */
Test(registry, properties)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    /* batchnorm: its init rules, training outputs and in-place updates */
    const op_def *bn = op_def_get(OP_BATCHNORM);
    op_shape x = {.rank = 3, .d = {4, 8, 8}};
    const char *suffix[OP_MAX_PARAMS];
    op_shape shapes[OP_MAX_PARAMS];
    bool trainable[OP_MAX_PARAMS], batched[OP_MAX_OUT];
    op_init init[OP_MAX_PARAMS];
    cr_assert_eq(bn->params(&a, &x, suffix, shapes, trainable, init), 4);
    cr_assert_eq(init[0], OP_INIT_ONE);
    cr_assert_eq(init[1], OP_INIT_ZERO);
    cr_assert_eq(init[2], OP_INIT_ZERO);
    cr_assert_eq(init[3], OP_INIT_ONE);
    cr_assert(!bn->updates_inputs(&a));
    op_shape extra[OP_MAX_OUT];
    const char *names[OP_MAX_OUT];
    cr_assert_eq(bn->train_outputs(&a, &x, extra, batched, names), 2);
    cr_assert(a.bn.training);
    cr_assert(bn->updates_inputs(&a));
    cr_assert_str_eq(names[0], "save_mean");
    cr_assert_str_eq(names[1], "save_invstd");
    cr_assert_eq(extra[0].rank, 1);
    cr_assert_eq(extra[0].d[0], 4);
    cr_assert(!batched[0] && !batched[1]);
    /* dropout: a mask shaped like its input */
    memset(&a, 0, sizeof a);
    const op_def *dr = op_def_get(OP_DROPOUT);
    cr_assert_eq(dr->train_outputs(&a, &x, extra, batched, names), 1);
    cr_assert(a.dropout.training);
    cr_assert(op_shape_equal(&extra[0], &x));
    cr_assert(batched[0]);
    cr_assert_str_eq(names[0], "mask");
    cr_assert(op_def_get(OP_SGD_UPDATE)->updates_inputs(&a));
    cr_assert(op_def_get(OP_ADAM_UPDATE)->updates_inputs(&a));
    cr_assert(op_def_get(OP_ADAMW_UPDATE)->updates_inputs(&a));
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_def_get((op_kind)op);
        if (op != OP_BATCHNORM && op != OP_DROPOUT)
            cr_assert_null(d->train_outputs, "%s", d->name);
        if (op != OP_BATCHNORM && op != OP_SGD_UPDATE && op != OP_ADAM_UPDATE && op != OP_ADAMW_UPDATE)
            cr_assert_null(d->updates_inputs, "%s", d->name);
    }
    /* fusion slots: a conv with a fused pool, and a dense with a fused softmax, take no
     * activation; add takes one in its act attributes */
    float *alpha = NULL;
    memset(&a, 0, sizeof a);
    const op_def *cv = op_def_get(OP_CONV2D);
    cr_assert(cv->props & OP_PROP_CONV);
    cr_assert(op_def_get(OP_CONV1D)->props & OP_PROP_CONV);
    cr_assert(!(op_def_get(OP_DENSE)->props & OP_PROP_CONV));
    cr_assert_eq(cv->act_slot(&a, &alpha), &a.conv.act);
    cr_assert_eq(alpha, &a.conv.alpha);
    cr_assert(!cv->epilogue(&a));
    a.conv.pool = true;
    cr_assert_null(cv->act_slot(&a, &alpha));
    cr_assert(cv->epilogue(&a));
    cr_assert_eq(cv->bias_flag(&a), &a.conv.bias);
    memset(&a, 0, sizeof a);
    const op_def *dn = op_def_get(OP_DENSE);
    cr_assert_eq(dn->act_slot(&a, &alpha), &a.dense.act);
    cr_assert_eq(dn->bias_flag(&a), &a.dense.bias);
    a.dense.softmax = true;
    cr_assert_null(dn->act_slot(&a, &alpha));
    cr_assert(dn->epilogue(&a));
    memset(&a, 0, sizeof a);
    cr_assert_eq(op_def_get(OP_ADD)->act_slot(&a, &alpha), &a.act.act);
    cr_assert_null(op_def_get(OP_ADD)->bias_flag);
    cr_assert_null(op_def_get(OP_MAXPOOL)->act_slot);
    cr_assert_null(op_def_get(OP_BATCHNORM)->bias_flag);
    /* softmax is the one op folded into a cross-entropy loss */
    for (int op = 0; op < OP_COUNT; op++)
        cr_assert_eq((op_def_get((op_kind)op)->props & OP_PROP_FOLDS_INTO_XENT) != 0, op == OP_SOFTMAX);
}

/* The summaries the layer table prints. */
Test(registry, describe)
{
    char buf[128];
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.sdims = 2;
    a.conv.filters = 6;
    a.conv.groups = 1;
    for (int k = 0; k < 2; k++) {
        a.conv.kernel[k] = 5;
        a.conv.stride[k] = 1;
        a.conv.dilation[k] = 1;
    }
    a.conv.act = OP_ACT_RELU;
    op_def_get(OP_CONV2D)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "6x5x5 +relu");
    op_def_get(OP_CONV2D)->describe(&a, buf, 4);
    cr_assert_str_eq(buf, "6x5");
    memset(&a, 0, sizeof a);
    a.dropout.p = 0.25f;
    op_def_get(OP_DROPOUT)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "p=0.25");
    memset(&a, 0, sizeof a);
    a.reorder.from = OP_LAYOUT_PLAIN;
    a.reorder.to = OP_LAYOUT_NHWC;
    op_def_get(OP_REORDER)->describe(&a, buf, sizeof buf);
    cr_assert_str_eq(buf, "nchw->nhwc");
}

static void assert_arg(const op_def *d, int k, const char *name, op_argtype type, unsigned flags,
                       const char *dflt)
{
    cr_assert(k < d->nargs, "%s has no argument %d", d->name, k);
    cr_assert_str_eq(d->args[k].name, name, "%s argument %d", d->name, k);
    cr_assert_eq(d->args[k].type, type, "%s.%s type", d->name, name);
    cr_assert_eq(d->args[k].flags, flags, "%s.%s flags", d->name, name);
    if (dflt)
        cr_assert_str_eq(d->args[k].dflt, dflt, "%s.%s default", d->name, name);
    else
        cr_assert_null(d->args[k].dflt, "%s.%s is required", d->name, name);
}

Test(registry, conv_schemas)
{
    static const char *const names[] = {"conv1d", "conv2d", "conv3d"};
    static const unsigned tuples[] = {0, OP_ARGF_TUPLE_OK, OP_ARGF_TRIPLE_OK};
    for (int two = 0; two <= 2; two++) {
        const op_def *d = op_def_find_layer(names[two]);
        unsigned t = tuples[two];
        cr_assert_not_null(d, "%s", names[two]);
        cr_assert(d->props & OP_PROP_CONV, "%s", names[two]);
        cr_assert_eq(d->nargs, 8);
        assert_arg(d, 0, "filters", OP_ARG_INT, OP_ARGF_POSITIVE, NULL);
        assert_arg(d, 1, "kernel", OP_ARG_INTS, OP_ARGF_POSITIVE | t, NULL);
        assert_arg(d, 2, "stride", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "1");
        assert_arg(d, 3, "pad", OP_ARG_PAD, OP_ARGF_NONNEG | t, "0");
        assert_arg(d, 4, "dilation", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "1");
        assert_arg(d, 5, "groups", OP_ARG_INT, OP_ARGF_POSITIVE, "1");
        assert_arg(d, 6, "bias", OP_ARG_BOOL, 0, "true");
        assert_arg(d, 7, "name", OP_ARG_STRING, 0, "");
        cr_assert_eq(d->min_inputs, 1);
        cr_assert_eq(d->max_inputs, 1);
        cr_assert_not_null(d->params);
        cr_assert(!d->inplace);
    }
}

Test(registry, other_schemas)
{
    const char *pools[] = {"maxpool", "avgpool"};
    for (int k = 0; k < 2; k++) {
        const op_def *d = op_def_find_layer(pools[k]);
        cr_assert_eq(d->nargs, 3);
        unsigned t = OP_ARGF_TUPLE_OK | OP_ARGF_TRIPLE_OK; /* (h, w) and (d, h, w) */
        assert_arg(d, 0, "size", OP_ARG_INTS, OP_ARGF_POSITIVE | t, NULL);
        assert_arg(d, 1, "stride", OP_ARG_INTS, OP_ARGF_POSITIVE | t, "=size");
        assert_arg(d, 2, "pad", OP_ARG_INTS, OP_ARGF_NONNEG | t, "0");
    }
    const op_def *d = op_def_find_layer("dense");
    cr_assert_eq(d->nargs, 3);
    assert_arg(d, 0, "units", OP_ARG_INT, OP_ARGF_POSITIVE, NULL);
    assert_arg(d, 1, "bias", OP_ARG_BOOL, 0, "true");
    assert_arg(d, 2, "name", OP_ARG_STRING, 0, "");
    d = op_def_find_layer("batchnorm");
    cr_assert_eq(d->nargs, 3);
    assert_arg(d, 0, "eps", OP_ARG_FLOAT, OP_ARGF_FPOS, "1e-5");
    assert_arg(d, 1, "momentum", OP_ARG_FLOAT, 0, "0.1");
    assert_arg(d, 2, "name", OP_ARG_STRING, 0, "");
    d = op_def_find_layer("dropout");
    cr_assert_eq(d->nargs, 1);
    assert_arg(d, 0, "p", OP_ARG_FLOAT, OP_ARGF_UNIT, "0.5");
    d = op_def_find_layer("leaky_relu");
    cr_assert_eq(d->nargs, 1);
    assert_arg(d, 0, "alpha", OP_ARG_FLOAT, 0, "0.01");
    const char *noargs[] = {"global_avgpool", "flatten", "relu", "sigmoid", "tanh", "softmax", "concat"};
    for (int k = 0; k < 7; k++)
        cr_assert_eq(op_def_find_layer(noargs[k])->nargs, 0, "%s", noargs[k]);
    d = op_def_find_layer("concat");
    cr_assert_eq(d->min_inputs, 2);
    cr_assert_eq(d->max_inputs, OP_MAX_IN);
    d = op_def_get(OP_ADD);
    cr_assert_eq(d->min_inputs, 2);
    cr_assert_eq(d->max_inputs, 2);
    cr_assert(op_def_find_layer("relu")->inplace);
    cr_assert(!op_def_find_layer("softmax")->inplace);
}

/* Backward ops: shapes where the inputs decide them, FLOPs equal to the forward's
 * multiply-adds, and rules that never read a parameter input. */
Test(registry, backward_rules)
{
    op_attrs a;
    memset(&a, 0, sizeof a);
    op_conv_attrs *c = &a.conv;
    c->sdims = 2;
    c->filters = 8;
    c->groups = 2;
    c->bias = true;
    for (int k = 0; k < 2; k++) {
        c->kernel[k] = 3;
        c->stride[k] = 1;
        c->dilation[k] = 1;
        c->pad[k] = 1;
    }
    op_shape x = {.rank = 3, .d = {4, 6, 6}}, dy = {.rank = 3, .d = {8, 6, 6}};
    op_shape w = {.rank = 4, .d = {8, 2, 3, 3}};
    op_shape out, in2[2];
    op_err e = {.arg = -1};
    const op_def *fw = op_def_get(OP_CONV2D);
    int64_t fwd = fw->flops(&a, &x, 1, &dy) - 8 * 36; /* without the bias adds */

    const op_def *d = op_def_get(OP_CONV_BWD_WEIGHTS);
    in2[0] = dy;
    in2[1] = x;
    cr_assert_eq(d->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &w));
    cr_assert_eq(d->flops(&a, in2, 2, &out), fwd + 8 * 36);
    d = op_def_get(OP_CONV_BWD_DATA);
    cr_assert_null(d->shape, "a strided conv's dx is ambiguous: its maker gives the shape");
    in2[1] = w;
    cr_assert_eq(d->flops(&a, in2, 2, &x), fwd);
    cr_assert_eq(d->flops(&a, in2, 1, &x), fwd, "the weight is not read");

    memset(&a, 0, sizeof a);
    a.dense.units = 10;
    a.dense.bias = true;
    op_shape feat = {.rank = 3, .d = {4, 5, 5}}, dz = {.rank = 1, .d = {10}};
    d = op_def_get(OP_DENSE_BWD_WEIGHTS);
    in2[0] = dz;
    in2[1] = feat;
    cr_assert_eq(d->shape(&a, in2, 2, &out, &e), 0);
    cr_assert_eq(out.rank, 2);
    cr_assert_eq(out.d[0], 10);
    cr_assert_eq(out.d[1], 100);
    cr_assert_eq(d->flops(&a, in2, 2, &out), 2 * 1000 + 10);
    d = op_def_get(OP_DENSE_BWD_DATA);
    cr_assert_eq(d->flops(&a, in2, 1, &feat), 2 * 1000);

    memset(&a, 0, sizeof a);
    op_shape p = {.rank = 3, .d = {4, 3, 3}};
    in2[0] = p;
    in2[1] = x;
    cr_assert_eq(op_def_get(OP_MAXPOOL_BWD)->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &x));
    cr_assert_eq(op_def_get(OP_ACT_BWD)->shape(&a, in2, 2, &out, &e), 0);
    cr_assert(op_shape_equal(&out, &p));
    cr_assert(op_def_get(OP_ACT_BWD)->inplace);
    op_shape logits = {.rank = 1, .d = {10}};
    cr_assert_eq(op_def_get(OP_XENT_LOSS)->shape(&a, &logits, 2, &out, &e), 0);
    cr_assert_eq(out.rank, 0);
    cr_assert_eq(op_def_get(OP_GLOBAL_AVGPOOL_BWD)->flops(&a, &logits, 1, &x), 4 * 36);
}

/* ---------------------------------------------------------------- ir helpers */

Test(ir, shape_helpers)
{
    char b[64];
    op_shape s = {.rank = 3, .d = {6, 28, 28}};
    cr_assert_str_eq(op_shape_str(&s, b, sizeof b), "[6, 28, 28]");
    cr_assert_eq(op_shape_numel(&s), 6 * 28 * 28);
    op_shape v = {.rank = 1, .d = {10}};
    cr_assert_str_eq(op_shape_str(&v, b, sizeof b), "[10]");
    op_shape z = {.rank = 0};
    cr_assert_str_eq(op_shape_str(&z, b, sizeof b), "[]");
    cr_assert_eq(op_shape_numel(&z), 1);
    char small[6];
    cr_assert_str_eq(op_shape_str(&s, small, sizeof small), "[6, 2"); /* truncated, terminated */
    op_shape s2 = s;
    cr_assert(op_shape_equal(&s, &s2));
    s2.d[2] = 27;
    cr_assert(!op_shape_equal(&s, &s2));
    cr_assert(!op_shape_equal(&s, &v));
    cr_assert_str_eq(op_act_name(OP_ACT_RELU), "relu");
    cr_assert_str_eq(op_act_name(OP_ACT_LEAKY_RELU), "leaky_relu");
}

Test(ir, values_nodes_clone_readers)
{
    ir_graph *g = ir_graph_create("g");
    cr_assert_eq(g->loss, -1);
    cr_assert_eq(g->label, -1);
    op_shape s = {.rank = 1, .d = {4}};
    int v[40];
    for (int k = 0; k < 40; k++) /* past the first growth */
        v[k] = ir_add_value(g, IR_VAL_ACT, &s, true, "v");
    cr_assert_eq(v[39], 39);
    cr_assert_eq(g->vals[5].producer, -1);
    cr_assert_eq(g->vals[5].param_of, -1);
    int n0 = ir_add_node(g, OP_RELU, NULL, 1, &v[0], 1, &v[1], "relu_1", (lang_span){0});
    int in2[2] = {v[1], v[0]};
    int n1 = ir_add_node(g, OP_ADD, NULL, 2, in2, 1, &v[2], "add_1", (lang_span){1, 2, 1, 3});
    int n2 = ir_add_node(g, OP_RELU, NULL, 1, &v[1], 1, &v[3], "relu_2", (lang_span){0});
    cr_assert_eq(n0, 0);
    cr_assert_eq(n1, 1);
    cr_assert_eq(g->vals[v[1]].producer, n0);
    cr_assert_eq(g->vals[v[2]].producer, n1);
    cr_assert_str_eq(g->nodes[n1].name, "add_1");
    cr_assert_eq(g->nodes[n1].span.col, 2);
    cr_assert_eq(ir_value_readers(g, v[1]), 2);
    cr_assert_eq(ir_value_readers(g, v[0]), 2);
    g->nodes[n2].dead = true;
    cr_assert_eq(ir_value_readers(g, v[1]), 1);

    ir_graph *c = ir_graph_clone(g);
    cr_assert_eq(c->nvals, 40);
    cr_assert_eq(c->nnodes, 3);
    c->nodes[0].dead = true;
    c->vals[0].shape.d[0] = 99;
    cr_assert(!g->nodes[0].dead);
    cr_assert_eq(g->vals[0].shape.d[0], 4);
    cr_assert(ir_add_value(c, IR_VAL_ACT, &s, true, "w") == 40);
    ir_graph_destroy(c);
    ir_graph_destroy(g);
    ir_graph_destroy(NULL);
}
