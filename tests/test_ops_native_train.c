/* Training on the native backend against the reference backend, through the public API:
 * a few SGD steps (momentum, weight decay: the example's train section, lr 0.01) of resnet20 (conv,
 * batchnorm, relu, add, global average pooling, dense, cross-entropy) and of lenet5 (max
 * pooling) at batch 4 from the same weights and inputs give the same losses and weights within
 * float tolerance (resnet20 after 2 steps: about 3e-5 of each tensor's largest value; the test
 * allows 2e-4), and with --backend native every node of the step runs on the native
 * kernels (the profile names each node's backend). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"

static const char *example(const char *name)
{
    static char path[1024];
    const char *ex = getenv("CNN_EXAMPLES");
    snprintf(path, sizeof path, "%.900s/%.100s", ex ? ex : "examples", name);
    return path;
}

/* Trains `steps` steps on backend b from seed-7 weights, writing the losses; returns the
 * weights (the caller destroys them and m). */
static cnn_weights *train(cnn_model *m, cnn_backend b, int threads, int steps, float *losses,
                          bool check_backend)
{
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    o.backend = b;
    o.threads = threads;
    cnn_session *s;
    const int64_t batch = 4;
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.lr = 0.01; /* the example's 0.1 diverges at batch 4, magnifying every rounding */
    cr_assert_eq(cnn_session_create(&s, m, w, &o, batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s",
                 cnn_session_errmsg(s));
    int64_t dims[4];
    int rank = cnn_model_input_shape(m, 0, dims);
    int64_t per = 1;
    for (int k = 0; k < rank; k++)
        per *= dims[k];
    int64_t odims[4];
    cnn_model_output_shape(m, 0, odims);
    if (check_backend)
        cr_assert_eq(cnn_session_profile_start(s, 1), CNN_OK);
    for (int st = 0; st < steps; st++) {
        float *x = cnn_session_input(s, 0);
        for (int64_t i = 0; i < batch * per; i++)
            x[i] = (float)((i * 37 + st * 11) % 29) / 29.0f - 0.4f;
        float labels[4];
        for (int i = 0; i < 4; i++)
            labels[i] = (float)((i * 3 + st) % odims[0]);
        cr_assert_eq(cnn_session_train_step(s, labels, true, &losses[st], NULL), CNN_OK, "%s",
                     cnn_session_errmsg(s));
    }
    if (check_backend) {
        int n = cnn_session_profile_steps(s);
        cr_assert_gt(n, 0);
        for (int i = 0; i < n; i++) {
            cnn_profile_entry e;
            cr_assert_eq(cnn_session_profile_entry(s, i, &e), CNN_OK);
            cr_expect_str_eq(e.backend, "native", "%s (%s) runs on %s", e.name, e.op, e.backend);
        }
    }
    cnn_session_destroy(s);
    return w;
}

static void compare(const char *file, int steps)
{
    cnn_model *m;
    cr_assert_eq(cnn_model_load(&m, example(file), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    float lref[8], lnat[8];
    cnn_weights *wr = train(m, CNN_BACKEND_REF, 1, steps, lref, false);
    for (int threads = 1; threads <= 2; threads++) {
        cnn_weights *wn = train(m, CNN_BACKEND_NATIVE, threads, steps, lnat, threads == 1);
        for (int st = 0; st < steps; st++)
            cr_expect(fabsf(lnat[st] - lref[st]) <= 1e-4f * fmaxf(1.0f, fabsf(lref[st])),
                      "%s step %d, %d threads: loss native %.9g, ref %.9g", file, st + 1,
                      threads, (double)lnat[st], (double)lref[st]);
        double worst = 0.0;
        const char *worst_name = "";
        for (int i = 0; i < cnn_weights_count(wr); i++) {
            const char *na, *nb;
            int ra, rb;
            int64_t da[CNN_WEIGHT_MAX_RANK], db[CNN_WEIGHT_MAX_RANK], n = 1;
            const float *a = cnn_weights_tensor(wr, i, &na, &ra, da);
            const float *b = cnn_weights_tensor(wn, i, &nb, &rb, db);
            cr_assert_str_eq(na, nb);
            for (int k = 0; k < ra; k++)
                n *= da[k];
            double maxabs = 0.0, maxdiff = 0.0;
            for (int64_t k = 0; k < n; k++) {
                maxabs = fmax(maxabs, fabs(a[k]));
                double d = fabs((double)a[k] - (double)b[k]);
                maxdiff = isnan(d) || d > maxdiff ? (isnan(d) ? INFINITY : d) : maxdiff;
            }
            double rel = maxdiff / fmax(maxabs, 1e-3);
            if (rel > worst) {
                worst = rel;
                worst_name = na;
            }
        }
        /* a few steps of float rounding differences (conv, batchnorm and update arithmetic)
         * grow through the layers: well below this, far above anything a wrong kernel gives */
        cr_expect(worst <= 2e-4, "%s, %d threads: %s differs by %g of its largest value", file,
                  threads, worst_name, worst);
        cnn_weights_destroy(wn);
    }
    cnn_weights_destroy(wr);
    cnn_model_destroy(m);
}

Test(native_train_step, resnet20_matches_the_reference, .timeout = 600)
{
    /* two steps: at the third, one rounding-sized change anywhere (the 64-channel weight
     * gradients summed in one part instead of four) can flip a ReLU whose input sits at zero,
     * and that one term moves the early layers' batchnorm biases by 0.5% */
    compare("resnet20.cnn", 2);
}

Test(native_train_step, lenet5_matches_the_reference, .timeout = 600)
{
    compare("lenet5.cnn", 3);
}
