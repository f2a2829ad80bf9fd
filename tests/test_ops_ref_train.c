/* Reference kernels used in training: optimiser steps (SGD plain, with momentum, weight decay
 * and Nesterov; Adam) against hand-computed values, batch normalisation in inference and
 * training (statistics, running update, normalised channels), and dropout masks (values, rate,
 * the same mask for the same seed at any thread count, p = 0 and inference). */
#include "tests/ops_ref_util.h"

/* ---- optimisers ---- */

Test(ops_ref, sgd_plain)
{
    /* p -= lr * grad: 1 - 0.1*0.5 = 0.95, -2 - 0.1*0.25 = -2.025 */
    op_attrs a = optim_attrs(0.1f, 0, false, 0);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.95f, -2.025f}, 2, 1e-7, "param");
}

Test(ops_ref, sgd_momentum_weight_decay)
{
    /* lr 0.1, momentum 0.9, wd 0.01, p = [1, -2], grad [0.5, 0.25] each step.
     * step 1: g = grad + 0.01 p = [0.51, 0.23]; v = g; p = [0.949, -2.023]
     * step 2: g = [0.5 + 0.00949, 0.25 - 0.02023] = [0.50949, 0.22977];
     *         v = 0.9 [0.51, 0.23] + g = [0.96849, 0.43677];
     *         p = [0.949 - 0.096849, -2.023 - 0.043677] = [0.852151, -2.066677] */
    op_attrs a = optim_attrs(0.1f, 0.9f, false, 0.01f);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    op_tensor v = t_new(SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.949f, -2.023f}, 2, 1e-6, "param after 1");
    expect_values(&v, (const float[]){0.51f, 0.23f}, 2, 1e-6, "velocity after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&v, (const float[]){0.96849f, 0.43677f}, 2, 1e-6, "velocity after 2");
    expect_values(&p, (const float[]){0.852151f, -2.066677f}, 2, 1e-6, "param after 2");
}

Test(ops_ref, sgd_nesterov)
{
    /* as above with nesterov: the step uses g + momentum * v.
     * step 1: g = [0.51, 0.23], v = g, g' = g + 0.9 v = [0.969, 0.437];
     *         p = [1 - 0.0969, -2 - 0.0437] = [0.9031, -2.0437]
     * step 2: g = [0.5 + 0.009031, 0.25 - 0.020437] = [0.509031, 0.229563];
     *         v = [0.459 + 0.509031, 0.207 + 0.229563] = [0.968031, 0.436563];
     *         g' = g + 0.9 v = [1.3802589, 0.6224697];
     *         p = [0.9031 - 0.13802589, -2.0437 - 0.06224697] = [0.76507411, -2.10594697] */
    op_attrs a = optim_attrs(0.1f, 0.9f, true, 0.01f);
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    op_tensor v = t_new(SHAPE(2));
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.9031f, -2.0437f}, 2, 1e-6, "param after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&v, (const float[]){0.968031f, 0.436563f}, 2, 1e-6, "velocity after 2");
    expect_values(&p, (const float[]){0.76507411f, -2.10594697f}, 2, 1e-6, "param after 2");
}

Test(ops_ref, adam_two_steps)
{
    /* lr 0.1, betas (0.9, 0.999), eps 1e-8; p = 1; grads 0.5 then -1.
     * step 1: m = 0.05, v = 0.00025; mhat = 0.5, vhat = 0.25; p = 1 - 0.1*0.5/0.5 = 0.9
     * step 2: m = 0.045 - 0.1 = -0.055; v = 0.00024975 + 0.001 = 0.00124975;
     *         mhat = -0.055/0.19 = -0.28947368; vhat = 0.00124975/0.001999 = 0.62518759;
     *         sqrt(vhat) = 0.79068805; p = 0.9 + 0.1*0.28947368/0.79068805 = 0.93661035 */
    op_attrs a = optim_attrs(0.1f, 0, false, 0);
    op_tensor p = t_from((const float[]){1}, SHAPE(1));
    op_tensor g = t_from((const float[]){0.5f}, SHAPE(1));
    op_tensor m = t_new(SHAPE(1)), v = t_new(SHAPE(1));
    kcall k = kc_make(OP_ADAM_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, m);
    kc_in(&k, v);
    k.step = 1;
    kc_ok(&k);
    /* the betas are floats (0.9f = 0.89999998, so 1 - 0.999f = 0.00099998713): the moments
     * differ from the decimal computation by about 1.3e-5 relative; the bias-corrected
     * ratio, and so the parameter, much less */
    expect_values(&m, (const float[]){0.05f}, 1, 1e-7, "m after 1");
    expect_values(&v, (const float[]){0.00025f}, 1, 1e-8, "v after 1");
    expect_values(&p, (const float[]){0.9f}, 1, 1e-6, "param after 1");
    g.data[0] = -1.0f;
    k.step = 2;
    kc_ok(&k);
    expect_values(&m, (const float[]){-0.055f}, 1, 1e-7, "m after 2");
    expect_values(&v, (const float[]){0.00124975f}, 1, 5e-8, "v after 2");
    expect_values(&p, (const float[]){0.93661035f}, 1, 1e-6, "param after 2");
}

Test(ops_ref, adam_weight_decay)
{
    /* lr 0.01, wd 0.1 (L2: added to the gradient), p = 2, grad 0.3 twice.
     * step 1: g = 0.3 + 0.2 = 0.5; the first Adam step moves by lr: p = 1.99
     * step 2: g = 0.3 + 0.199 = 0.499; m = 0.045 + 0.0499 = 0.0949;
     *         v = 0.00024975 + 0.000249001 = 0.000498751;
     *         mhat = 0.0949/0.19 = 0.49947368; vhat = 0.000498751/0.001999 = 0.24950025;
     *         p = 1.99 - 0.01 * 0.49947368/0.49950000 = 1.98000053 */
    op_attrs a = optim_attrs(0.01f, 0, false, 0.1f);
    op_tensor p = t_from((const float[]){2}, SHAPE(1));
    op_tensor g = t_from((const float[]){0.3f}, SHAPE(1));
    op_tensor m = t_new(SHAPE(1)), v = t_new(SHAPE(1));
    kcall k = kc_make(OP_ADAM_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, m);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){1.99f}, 1, 1e-6, "param after 1");
    k.step = 2;
    kc_ok(&k);
    expect_values(&p, (const float[]){1.98000053f}, 1, 1e-6, "param after 2");
}

/* ---- batch normalisation ---- */

Test(ops_ref, batchnorm_inference_running_stats)
{
    /* eps 0; channel 0: rm 1, rv 4, gamma 2, beta 0.5 -> y = (x-1)/2*2 + 0.5 = x - 0.5;
     *        channel 1: rm -2, rv 0.25, gamma -1, beta 3 -> y = -(x+2)/0.5 + 3 = -2x - 1 */
    op_attrs a = bn_attrs(0.0f, 0.1f, false);
    op_tensor x = t_from((const float[]){3, -1, 0, 1, 1, 5, -2, 0.5f}, SHAPE(2, 2, 1, 2));
    op_tensor gamma = t_from((const float[]){2, -1}, SHAPE(2));
    op_tensor beta = t_from((const float[]){0.5f, 3}, SHAPE(2));
    op_tensor rm = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor rv = t_from((const float[]){4, 0.25f}, SHAPE(2));
    op_tensor y = t_like(&x);
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_ok(&k);
    expect_values(&y, (const float[]){2.5f, -1.5f, -1, -3, 0.5f, 4.5f, 3, -2}, 8, 1e-6, "y");
    /* the running statistics are not touched in inference */
    expect_values(&rm, (const float[]){1, -2}, 2, 0.0, "running_mean");
    expect_values(&rv, (const float[]){4, 0.25f}, 2, 0.0, "running_var");
}

Test(ops_ref, batchnorm_training_statistics_and_running_update)
{
    /* x [3, 2]: channel 0 = {1, 2, 6}: mean 3, biased var 14/3, unbiased 7;
     *           channel 1 = {0, 0, 3}: mean 1, biased var 2, unbiased 3.
     * momentum 0.1: rm = 0.9 [0.5, -1] + 0.1 [3, 1] = [0.75, -0.8];
     *               rv = 0.9 [2, 1] + 0.1 [7, 3] = [2.5, 1.2] */
    float eps = 1e-5f;
    op_attrs a = bn_attrs(eps, 0.1f, true);
    op_tensor x = t_from((const float[]){1, 0, 2, 0, 6, 3}, SHAPE(3, 2));
    op_tensor gamma = t_from((const float[]){1, 2}, SHAPE(2));
    op_tensor beta = t_from((const float[]){0, -1}, SHAPE(2));
    op_tensor rm = t_from((const float[]){0.5f, -1}, SHAPE(2));
    op_tensor rv = t_from((const float[]){2, 1}, SHAPE(2));
    op_tensor y = t_like(&x), mean = t_new(SHAPE(2)), invstd = t_new(SHAPE(2));
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_out(&k, mean);
    kc_out(&k, invstd);
    kc_ok(&k);
    double is0 = 1.0 / sqrt(14.0 / 3.0 + eps), is1 = 1.0 / sqrt(2.0 + eps);
    expect_values(&mean, (const float[]){3, 1}, 2, 1e-6, "save_mean");
    expect_values(&invstd, (const float[]){(float)is0, (float)is1}, 2, 1e-6, "save_invstd");
    expect_values(&rm, (const float[]){0.75f, -0.8f}, 2, 1e-6, "running_mean");
    expect_values(&rv, (const float[]){2.5f, 1.2f}, 2, 1e-6, "running_var");
    float want[6] = {(float)(-2 * is0), (float)(2 * (-1 * is1) - 1), (float)(-1 * is0),
                     (float)(2 * (-1 * is1) - 1), (float)(3 * is0), (float)(2 * (2 * is1) - 1)};
    expect_values(&y, want, 6, 1e-6, "y");
}

Test(ops_ref, batchnorm_training_normalises_each_channel)
{
    uint64_t rng = 400;
    op_attrs a = bn_attrs(1e-5f, 0.1f, true);
    op_tensor x = t_rand(&rng, -3, 5, SHAPE(4, 3, 5, 3));
    op_tensor gamma = t_from((const float[]){1.5f, 0.5f, 2}, SHAPE(3));
    op_tensor beta = t_from((const float[]){0.25f, -1, 3}, SHAPE(3));
    op_tensor rm = t_new(SHAPE(3)), rv = t_from((const float[]){1, 1, 1}, SHAPE(3));
    op_tensor y = t_like(&x), mean = t_new(SHAPE(3)), invstd = t_new(SHAPE(3));
    kcall k = kc_make(OP_BATCHNORM, &a);
    kc_in(&k, x);
    kc_in(&k, gamma);
    kc_in(&k, beta);
    kc_in(&k, rm);
    kc_in(&k, rv);
    kc_out(&k, y);
    kc_out(&k, mean);
    kc_out(&k, invstd);
    kc_ok(&k);
    for (int ch = 0; ch < 3; ch++) {
        double s = 0, sq = 0;
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 15; j++)
                s += y.data[(n * 3 + ch) * 15 + j];
        double mu = s / 60;
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 15; j++) {
                double d = y.data[(n * 3 + ch) * 15 + j] - mu;
                sq += d * d;
            }
        cr_assert(fabs(mu - beta.data[ch]) < 1e-5, "channel %d mean %g", ch, mu);
        cr_assert(fabs(sqrt(sq / 60) - gamma.data[ch]) < 1e-4, "channel %d std %g", ch,
                  sqrt(sq / 60));
    }
}

/* ---- dropout ---- */

Test(ops_ref, dropout_mask_values_and_rate)
{
    const int64_t n = 1 << 18;
    float p = 0.3f;
    op_attrs a = dropout_attrs(p, true);
    op_tensor x = t_new(SHAPE(4, n / 4));
    for (int64_t i = 0; i < n; i++)
        x.data[i] = (float)(i % 7) - 3.0f;
    op_tensor y = t_like(&x), mask = t_like(&x);
    kcall k = kc_make(OP_DROPOUT, &a);
    k.seed = 42;
    kc_in(&k, x);
    kc_out(&k, y);
    kc_out(&k, mask);
    kc_ok(&k);
    float scale = 1.0f / (1.0f - p);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(mask.data[i] == 0.0f || mask.data[i] == scale, "mask[%lld] = %g",
                  (long long)i, (double)mask.data[i]);
        cr_assert_eq(y.data[i], x.data[i] * mask.data[i]);
        kept += mask.data[i] != 0.0f;
    }
    /* kept fraction 1-p within 5 standard deviations (sqrt(p(1-p)/n) ~ 0.0009) */
    double frac = (double)kept / (double)n;
    cr_assert(fabs(frac - (1.0 - p)) < 0.0045, "kept fraction %g, expected %g", frac, 1.0 - p);
}

Test(ops_ref, dropout_same_seed_same_mask_any_threads)
{
    op_attrs a = dropout_attrs(0.5f, true);
    uint64_t rng = 500;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(8, 1000));
    op_tensor y1 = t_like(&x), m1 = t_like(&x), y2 = t_like(&x), m2 = t_like(&x);
    op_tensor y3 = t_like(&x), m3 = t_like(&x);
    kcall k1 = kc_make(OP_DROPOUT, &a), k2, k3;
    k1.seed = 7;
    kc_in(&k1, x);
    k2 = k1;
    k3 = k1;
    kc_out(&k1, y1);
    kc_out(&k1, m1);
    kc_out(&k2, y2);
    kc_out(&k2, m2);
    kc_out(&k3, y3);
    kc_out(&k3, m3);
    k1.nthreads = 1;
    k2.nthreads = 2;
    k3.nthreads = 2;
    k3.seed = 8;
    kc_ok(&k1);
    kc_ok(&k2);
    kc_ok(&k3);
    expect_bitwise(&m1, &m2, "mask");
    expect_bitwise(&y1, &y2, "y");
    int64_t differ = 0;
    for (int64_t i = 0; i < t_numel(&x); i++)
        differ += m1.data[i] != m3.data[i];
    /* independent masks agree on half the elements: about 4000 of 8000 differ */
    cr_assert(differ > 3000 && differ < 5000, "%lld mask elements differ between seeds",
              (long long)differ);
}

Test(ops_ref, dropout_p0_and_inference)
{
    uint64_t rng = 600;
    op_tensor x = t_rand(&rng, -1, 1, SHAPE(3, 10)), y = t_like(&x), mask = t_like(&x);
    op_attrs a0 = dropout_attrs(0.0f, true);
    kcall k = kc_make(OP_DROPOUT, &a0);
    kc_in(&k, x);
    kc_out(&k, y);
    kc_out(&k, mask);
    kc_ok(&k);
    for (int64_t i = 0; i < 30; i++) {
        cr_assert_eq(mask.data[i], 1.0f);
        cr_assert_eq(y.data[i], x.data[i]);
    }
    op_attrs ai = dropout_attrs(0.9f, false);
    op_tensor yi = t_like(&x);
    kcall ki = kc_make(OP_DROPOUT, &ai);
    kc_in(&ki, x);
    kc_out(&ki, yi);
    kc_ok(&ki);
    expect_bitwise(&yi, &x, "inference dropout");
}

