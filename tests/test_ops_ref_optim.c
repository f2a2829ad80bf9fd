/* Reference kernels of spec section 7's newer training settings: adamw_update (decoupled
 * weight decay), cross_entropy with label smoothing (values and gradient), the
 * clip_grad_norm pair grad_sqnorm + clip_scale, and updates reading the clip factor. */
#include "tests/ops_ref_util.h"

/* finite differences as test_ops_ref_grad.c takes them */
#define FD_EPS 1e-2
#define FD_RTOL 2e-3
#define FD_ATOL 2e-4

static op_tensor scalar_of(float v)
{
    op_tensor t = t_new(NULL, 0);
    t.data[0] = v;
    return t;
}

Test(ops_ref_optim, adamw_two_steps)
{
    /* lr 0.01, wd 0.1, p = 2, grad 0.3 twice.  The decay multiplies p by 1 - lr*wd = 0.999
     * first and never enters the moments, so each Adam step is lr * mhat/sqrt(vhat) = lr:
     * step 1: p = 2 * 0.999 - 0.01 = 1.988; step 2: p = 1.988 * 0.999 - 0.01 = 1.976012.
     * (Adam with L2 decay instead gives 1.98000053, test_ops_ref_train.c.) */
    op_attrs a = optim_attrs(0.01f, 0, false, 0.1f);
    a.optim.lr = 0.01, a.optim.weight_decay = 0.1;
    op_tensor p = t_from((const float[]){2}, SHAPE(1));
    op_tensor g = t_from((const float[]){0.3f}, SHAPE(1));
    op_tensor m = t_new(SHAPE(1)), v = t_new(SHAPE(1));
    kcall k = kc_make(OP_ADAMW_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, m);
    kc_in(&k, v);
    kc_ok(&k);
    expect_values(&p, (const float[]){1.988f}, 1, 1e-6, "param after 1");
    expect_values(&m, (const float[]){0.03f}, 1, 1e-7, "m: the plain gradient's");
    k.step = 2;
    kc_ok(&k);
    expect_values(&p, (const float[]){1.976012f}, 1, 1e-6, "param after 2");
    /* weight decay 0: exactly Adam */
    op_attrs b = optim_attrs(0.05f, 0, false, 0);
    op_tensor p1 = t_from((const float[]){1, -3}, SHAPE(2)), p2 = t_copy(&p1);
    op_tensor g2 = t_from((const float[]){0.7f, -0.2f}, SHAPE(2));
    op_tensor m1 = t_new(SHAPE(2)), v1 = t_new(SHAPE(2)), m2 = t_new(SHAPE(2)), v2 = t_new(SHAPE(2));
    kcall ka = kc_make(OP_ADAM_UPDATE, &b), kw = kc_make(OP_ADAMW_UPDATE, &b);
    kc_in(&ka, p1), kc_in(&ka, g2), kc_in(&ka, m1), kc_in(&ka, v1);
    kc_in(&kw, p2), kc_in(&kw, g2), kc_in(&kw, m2), kc_in(&kw, v2);
    for (int s = 1; s <= 3; s++) {
        ka.step = kw.step = s;
        kc_ok(&ka);
        kc_ok(&kw);
    }
    expect_bitwise(&p1, &p2, "adamw without decay is adam");
}

Test(ops_ref_optim, cross_entropy_label_smoothing_values)
{
    /* logits [1, 2, 3], label 0, e = 0.1: lse = 3.40760596, nll = 2.40760596,
     * mean_k (lse - x_k) = 1.40760596; loss = 0.9 nll + 0.1 * 1.40760596 = 2.30760596.
     * dlogits = softmax - (0.9 onehot + 0.1/3) =
     * [0.09003057 - 0.93333333, 0.24472847 - 0.03333333, 0.66524096 - 0.03333333] */
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.loss.label_smoothing = 0.1;
    op_tensor x = t_from((const float[]){1, 2, 3}, SHAPE(1, 3)), labels = t_from((const float[]){0}, SHAPE(1, 1));
    op_tensor loss = t_new(NULL, 0), dx = t_like(&x);
    kcall k = kc_make(OP_XENT_LOSS, &a);
    kc_in(&k, x);
    kc_in(&k, labels);
    kc_out(&k, loss);
    kc_out(&k, dx);
    kc_ok(&k);
    expect_values(&loss, (const float[]){2.30760596f}, 1, 1e-6, "smoothed loss");
    expect_values(&dx, (const float[]){-0.84330276f, 0.21139514f, 0.63190763f}, 3, 1e-6, "dlogits");
    /* smoothing 0 is the plain loss; out of range is refused */
    a.loss.label_smoothing = 0;
    k.attrs = a;
    kc_ok(&k);
    expect_values(&loss, (const float[]){2.40760596f}, 1, 1e-6, "plain loss");
    a.loss.label_smoothing = 1;
    k.attrs = a;
    cr_expect_neq(kc_run(&k), 0);
    cr_expect(strstr(k.err, "label smoothing") != NULL, "%s", k.err);
}

Test(ops_ref_optim, cross_entropy_label_smoothing_gradient)
{
    uint64_t rng = 93;
    op_tensor x = t_rand(&rng, -3, 3, SHAPE(5, 7)), labels = t_new(SHAPE(5, 1));
    for (int i = 0; i < 5; i++)
        labels.data[i] = (float)(rng_next(&rng) % 7);
    op_attrs a;
    memset(&a, 0, sizeof a);
    a.loss.label_smoothing = 0.2;
    op_tensor loss = t_new(NULL, 0), dx = t_like(&x);
    kcall k = kc_make(OP_XENT_LOSS, &a);
    kc_in(&k, x);
    kc_in(&k, labels);
    kc_out(&k, loss);
    kc_out(&k, dx);
    kc_ok(&k);
    op_tensor an = t_copy(&dx);
    fd_objective o = {&k, NULL};
    fd_check("smoothed cross_entropy dlogits", x.data, t_numel(&x), an.data, &o, FD_EPS, FD_RTOL, FD_ATOL);
}

Test(ops_ref_optim, grad_norm_and_clip_scale)
{
    /* |[3, 4]|^2 + |[12]|^2 = 169: norm 13, in one node or chained through a partial sum */
    op_tensor g1 = t_from((const float[]){3, 4}, SHAPE(2)), g2 = t_from((const float[]){12}, SHAPE(1));
    op_tensor sq = t_new(NULL, 0);
    op_attrs a;
    memset(&a, 0, sizeof a);
    kcall k = kc_make(OP_GRAD_SQNORM, &a);
    kc_in(&k, g1);
    kc_in(&k, g2);
    kc_out(&k, sq);
    kc_ok(&k);
    expect_values(&sq, (const float[]){169}, 1, 0, "sum of squares");
    op_tensor part = t_new(NULL, 0), total = t_new(NULL, 0);
    kcall k1 = kc_make(OP_GRAD_SQNORM, &a);
    kc_in(&k1, g1);
    kc_out(&k1, part);
    kc_ok(&k1);
    a.clip.accumulate = true;
    kcall k2 = kc_make(OP_GRAD_SQNORM, &a);
    kc_in(&k2, part);
    kc_in(&k2, g2);
    kc_out(&k2, total);
    kc_ok(&k2);
    expect_values(&total, (const float[]){169}, 1, 0, "chained");
    /* scale = max_norm / (13 + 1e-6), at most 1 */
    memset(&a, 0, sizeof a);
    a.clip.max_norm = 6.5;
    op_tensor scale = t_new(NULL, 0);
    kcall ks = kc_make(OP_CLIP_SCALE, &a);
    kc_in(&ks, sq);
    kc_out(&ks, scale);
    kc_ok(&ks);
    expect_values(&scale, (const float[]){(float)(6.5 / (13 + 1e-6))}, 1, 0, "clipping");
    ks.attrs.clip.max_norm = 20;
    kc_ok(&ks);
    expect_values(&scale, (const float[]){1}, 1, 0, "under the limit: unchanged");
    sq.data[0] = INFINITY;
    cr_expect_neq(kc_run(&ks), 0);
    cr_expect(strstr(ks.err, "not finite") != NULL, "%s", ks.err);
}

Test(ops_ref_optim, updates_read_the_clip_scale)
{
    /* sgd lr 0.1 with the gradient halved: [1, -2] - 0.1 * 0.5 * [0.5, 0.25] */
    op_attrs a = optim_attrs(0.1f, 0, false, 0);
    a.optim.clip = true;
    op_tensor p = t_from((const float[]){1, -2}, SHAPE(2));
    op_tensor g = t_from((const float[]){0.5f, 0.25f}, SHAPE(2));
    op_tensor s = scalar_of(0.5f);
    kcall k = kc_make(OP_SGD_UPDATE, &a);
    kc_in(&k, p);
    kc_in(&k, g);
    kc_in(&k, s);
    kc_ok(&k);
    expect_values(&p, (const float[]){0.975f, -2.0125f}, 2, 1e-7, "param");
    cr_expect_eq(g.data[0], 0.5f, "the gradient itself is left as it is");
    /* adam and adamw with a scale of 1 step exactly as without clipping */
    for (int w = 0; w < 2; w++) {
        op_kind op = w ? OP_ADAMW_UPDATE : OP_ADAM_UPDATE;
        op_attrs b = optim_attrs(0.05f, 0, false, 0.01f);
        op_attrs bc = b;
        bc.optim.clip = true;
        op_tensor p1 = t_from((const float[]){1, -3}, SHAPE(2)), p2 = t_copy(&p1);
        op_tensor m1 = t_new(SHAPE(2)), v1 = t_new(SHAPE(2)), m2 = t_new(SHAPE(2)), v2 = t_new(SHAPE(2));
        op_tensor one = scalar_of(1.0f);
        kcall k1 = kc_make(op, &b), k2 = kc_make(op, &bc);
        kc_in(&k1, p1), kc_in(&k1, g), kc_in(&k1, m1), kc_in(&k1, v1);
        kc_in(&k2, p2), kc_in(&k2, g), kc_in(&k2, m2), kc_in(&k2, v2), kc_in(&k2, one);
        kc_ok(&k1);
        kc_ok(&k2);
        expect_bitwise(&p1, &p2, op == OP_ADAM_UPDATE ? "adam, scale 1" : "adamw, scale 1");
        /* a malformed scale is refused, and a missing one */
        one.data[0] = 0;
        cr_expect_neq(kc_run(&k2), 0);
        cr_expect(strstr(k2.err, "scale") != NULL, "%s", k2.err);
        k2.nin = 4;
        cr_expect_neq(kc_run(&k2), 0);
        cr_expect(strstr(k2.err, "expected 5 inputs") != NULL, "%s", k2.err);
    }
}
