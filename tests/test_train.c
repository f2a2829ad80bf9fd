/* Training end to end: autodiff's whole-graph gradients against central finite differences
 * of the loss (networks covering every differentiable layer), and LeNet-5 learning
 * Fashion-MNIST from a few hundred steps. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/plan.h"
#include "runtime/cnn.h"
#include "runtime/rt.h"

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

/* The loss of one forward pass in training mode (lr 0: no update). */
static double loss_of(cnn_session *s, const float *x, int64_t n, const float *labels)
{
    memcpy(cnn_session_input(s, 0), x, sizeof(float) * (size_t)n);
    float loss;
    cr_assert_eq(cnn_session_train_step(s, labels, true, &loss, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    return loss;
}

static void check_gradients(const char *src, int64_t batch, int classes)
{
    cnn_model *m;
    cr_assert_eq(cnn_model_compile(&m, "grad.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 11), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.lr = 0.0; /* the update node runs but changes nothing */
    tc.momentum = 0.0;
    tc.weight_decay = 0.0;
    tc.optimizer = 0;
    cnn_options o;
    cnn_options_default(&o);
    o.backend = CNN_BACKEND_REF;
    o.passes = 0; /* keep every gradient value its own buffer, none reused */
    cnn_session *s;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s", cnn_session_errmsg(s));
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    int64_t n = batch;
    for (int k = 0; k < rank; k++)
        n *= dims[k];
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)sin((double)i * 1.7) * 0.8f;
    float labels[16];
    for (int64_t i = 0; i < batch; i++)
        labels[i] = (float)(i % classes);
    loss_of(s, x, n, labels);
    const ir_graph *g = s->plan->graph;
    int checked = 0;
    for (int v = 0; v < g->nvals; v++) {
        if (g->vals[v].kind != IR_VAL_PGRAD || g->vals[v].param_of < 0 || s->data[v] == NULL)
            continue;
        /* only the summed gradient that reaches the update node */
        bool final = false;
        for (int nd = 0; nd < g->nnodes; nd++)
            if (!g->nodes[nd].dead && (g->nodes[nd].op == OP_SGD_UPDATE) && g->nodes[nd].in[1] == v)
                final = true;
        if (!final)
            continue;
        const char *pname = g->vals[g->vals[v].param_of].name;
        int wi = rt_weights_find(w, pname);
        cr_assert_geq(wi, 0);
        float *p = w->t[wi].data;
        int64_t count = op_shape_numel(&w->t[wi].shape);
        float *grad = malloc(sizeof(float) * (size_t)count);
        loss_of(s, x, n, labels);
        memcpy(grad, s->data[v], sizeof(float) * (size_t)count);
        int64_t stride = count > 24 ? count / 24 : 1;
        for (int64_t i = 0; i < count; i += stride) {
            float keep = p[i];
            double h = 1e-3 * fmax(1.0, fabs(keep));
            p[i] = keep + (float)h;
            w->version++;
            double lp = loss_of(s, x, n, labels);
            p[i] = keep - (float)h;
            w->version++;
            double lm = loss_of(s, x, n, labels);
            p[i] = keep;
            w->version++;
            double fd = (lp - lm) / (2.0 * h);
            cr_expect(fabs(fd - grad[i]) <= 2e-3 + 3e-2 * fabs(fd), "%s[%lld]: autodiff %.6g, finite difference %.6g",
                      pname, (long long)i, (double)grad[i], fd);
            checked++;
        }
        free(grad);
    }
    cr_expect_gt(checked, 20);
    free(x);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(train, gradients_of_2d_layers, .timeout = 600)
{
    check_gradients("block res(c) {\n"
                    "  y = in -> conv2d(c, 3, pad=1) -> batchnorm -> leaky_relu(0.1) -> conv2d(c, 3, pad=1);\n"
                    "  return (y + in) -> tanh;\n}\n"
                    "network g { input x[2, 7, 7];\n"
                    "  a = x -> conv2d(4, 3, stride=2, pad=1) -> res(4);\n"
                    "  b = x -> conv2d(4, (3, 1), dilation=(1, 2), pad=(1, 0), groups=2) -> sigmoid -> maxpool(2, stride=2, pad=1);\n"
                    "  c = concat(a, b) -> avgpool(3, stride=1, pad=1) -> batchnorm;\n"
                    "  output y = concat(c -> global_avgpool, c -> flatten -> dense(6) -> relu) -> dense(3) -> softmax;\n}\n",
                    4, 3);
}

Test(train, gradients_of_1d_layers, .timeout = 600)
{
    check_gradients("network s { input x[2, 11];\n"
                    "  output y = x -> conv1d(4, 3, pad=1, dilation=2, stride=1) -> relu -> maxpool(2)\n"
                    "      -> conv1d(6, 3, groups=2, bias=false) -> avgpool(2, pad=1) -> flatten -> dense(5) -> tanh -> dense(4);\n}\n",
                    3, 4);
}

Test(train, lenet5_learns_fashion_mnist, .timeout = 600)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    cnn_dataset *train, *test;
    char err[1024];
    bool absent;
    if (cnn_dataset_load(&train, dir, "train", &absent, err, sizeof err) != CNN_OK)
        cr_skip_test("Fashion-MNIST is not installed: %s", err);
    cr_assert_eq(cnn_dataset_load(&test, dir, "test", &absent, err, sizeof err), CNN_OK, "%s", err);
    const char *ex = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%s/lenet5.cnn", ex ? ex : "examples");
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    cr_assert_eq(tc.batch, 64);
    cr_assert_float_eq(tc.lr, 0.05, 1e-12);
    cnn_session *s, *ev;
    cr_assert_eq(cnn_session_create(&s, m, w, NULL, tc.batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_assert_eq(cnn_session_create(&ev, m, w, NULL, 500, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(ev));
    int steps = quick() ? 150 : 300;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)cnn_dataset_count(train));
    for (int64_t i = 0; i < cnn_dataset_count(train); i++)
        order[i] = (i * 7919) % cnn_dataset_count(train); /* a fixed permutation (7919 is prime) */
    float labels[64];
    double first = 0, last = 0;
    for (int st = 0; st < steps; st++) {
        cnn_dataset_batch(train, order, (int64_t)st * 64, 64, cnn_session_input(s, 0), labels);
        float loss;
        cr_assert_eq(cnn_session_train_step(s, labels, true, &loss, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
        if (st < 20)
            first += loss / 20.0;
        if (st >= steps - 20)
            last += loss / 20.0;
    }
    cnn_eval_result r;
    cr_assert_eq(cnn_evaluate(ev, test, 0, &r), CNN_OK, "%s", cnn_session_errmsg(ev));
    cr_expect_lt(last, first * 0.6, "the training loss fell from %.3f to %.3f only", first, last);
    cr_expect_gt(r.accuracy, 0.70, "test accuracy %.2f%% after %d steps", r.accuracy * 100, steps);
    cr_expect_lt(r.loss, 0.9, "test loss %.3f", r.loss);
    cr_log_info("lenet5: %d steps, loss %.3f -> %.3f, test accuracy %.2f%%", steps, first, last, r.accuracy * 100);
    free(order);
    cnn_session_destroy(ev);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    cnn_dataset_destroy(train);
    cnn_dataset_destroy(test);
}
