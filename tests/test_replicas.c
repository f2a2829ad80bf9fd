/* Training steps as replicas (runtime/replicas.c): which networks may use them, and that a
 * step of replicas gives the plain step's weights, optimiser state, loss and accuracy count
 * to float rounding, for SGD (momentum, weight decay), Adam with gradient clipping, mse,
 * label smoothing, a batch cut into unequal shares, bf16, and whole runs of cnn_train with
 * augmentation (made before the step: the same batches either way).  Nothing is timed here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cnn.h"
#include "runtime/rt.h"
#include "tests/file_util.h"

/* conv + pool + dense: the shape of LeNet, small */
static const char small_net[] = "network small {\n"
                                "    input image[1, 12, 12];\n"
                                "    output logits = image -> conv2d(4, 3, pad=1) -> relu -> maxpool(2)\n"
                                "        -> conv2d(6, 3) -> relu -> maxpool(2) -> flatten -> dense(16) -> relu\n"
                                "        -> dense(5);\n"
                                "}\n";

static const char bn_net[] = "network bn {\n"
                             "    input image[1, 8, 8];\n"
                             "    output logits = image -> conv2d(4, 3, pad=1) -> batchnorm -> relu -> flatten -> dense(3);\n"
                             "}\n";

static const char dropout_net[] = "network dr {\n"
                                  "    input image[1, 8, 8];\n"
                                  "    output logits = image -> flatten -> dense(16) -> relu -> dropout(0.5) -> dense(3);\n"
                                  "}\n";

static cnn_model *compile(const char *src)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "replicas.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    return m;
}

/* A training session made with CNN_REPLICAS set to mode (NULL: unset). */
static cnn_conv_algo conv_algo = CNN_CONV_ALGO_DEFAULT; /* for the sessions made next */

static cnn_status make_p(cnn_session **s, cnn_model *m, cnn_weights *w, cnn_backend b, cnn_precision prec,
                         int threads, int64_t batch, const cnn_train_config *tc, const char *mode)
{
    cnn_options o;
    cnn_options_default(&o);
    o.conv_algo = conv_algo;
    o.backend = b;
    o.precision = prec;
    o.threads = threads;
    if (mode)
        setenv("CNN_REPLICAS", mode, 1);
    else
        unsetenv("CNN_REPLICAS");
    cnn_status st = cnn_session_create(s, m, w, &o, batch, CNN_MODE_TRAIN, tc);
    unsetenv("CNN_REPLICAS");
    return st;
}

static cnn_status make(cnn_session **s, cnn_model *m, cnn_weights *w, cnn_backend b, int threads, int64_t batch,
                       const cnn_train_config *tc, const char *mode)
{
    return make_p(s, m, w, b, CNN_PRECISION_FP32, threads, batch, tc, mode);
}

static void fill(float *x, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(((uint64_t)(i + seed) * 2654435761u) % 1000) / 500.0f - 1.0f;
}

static double rel_diff(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)a[i]));
    }
    return den > 0 ? num / den : num;
}

/* Steps of the same batches on a session without replicas and one with them (2 threads, or
 * 3 for unequal shares at an even batch): the weights (each tensor), the optimiser state, the
 * losses and the accuracy counts agree to float rounding (tol, relative). */
static void same_steps_p(const char *src, cnn_backend b, cnn_precision prec, double tol, int threads, int64_t batch,
                         const cnn_train_config *tc_in, int steps)
{
    cnn_model *m = compile(src);
    cnn_weights *wp, *wr;
    cr_assert_eq(cnn_weights_create(&wp, m, 11), CNN_OK);
    cr_assert_eq(cnn_weights_create(&wr, m, 11), CNN_OK);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    if (tc_in)
        tc = *tc_in;
    cnn_session *plain = NULL, *rep = NULL;
    cnn_status made = make_p(&plain, m, wp, b, prec, threads, batch, &tc, "off");
    if (made == CNN_ERR_USAGE && prec != CNN_PRECISION_FP32) { /* no bf16 here (CPU or build) */
        char why[256];
        snprintf(why, sizeof why, "%s", cnn_session_errmsg(plain));
        cnn_session_destroy(plain);
        cnn_weights_destroy(wp);
        cnn_weights_destroy(wr);
        cnn_model_destroy(m);
        cr_skip_test("%s", why);
    }
    cr_assert_eq(made, CNN_OK, "%s", cnn_session_errmsg(plain));
    cr_assert_eq(make_p(&rep, m, wr, b, prec, threads, batch, &tc, "on"), CNN_OK, "%s", cnn_session_errmsg(rep));
    cr_assert_str_eq(rt_replicas_why_not(rep), "", "the network may use replicas");
    cr_assert_str_eq(rt_replicas_why_not(plain), "CNN_REPLICAS=off");
    int64_t d[4], per = 1;
    int r = cnn_model_input_shape(m, 0, d);
    for (int k = 0; k < r; k++)
        per *= d[k];
    int64_t od[4];
    cnn_model_output_shape(m, 0, od);
    float *labels = malloc(sizeof(float) * (size_t)batch);
    cr_assert_not_null(labels);
    for (int step = 0; step < steps; step++) {
        fill(cnn_session_input(plain, 0), batch * per, 17u * (unsigned)step + 1);
        fill(cnn_session_input(rep, 0), batch * per, 17u * (unsigned)step + 1);
        for (int64_t i = 0; i < batch; i++)
            labels[i] = (float)((i * 7 + step) % od[0]);
        float lp, lr;
        int64_t cp, cr;
        cr_assert_eq(cnn_session_train_step(plain, labels, true, &lp, &cp), CNN_OK, "%s", cnn_session_errmsg(plain));
        int caller = omp_get_max_threads();
        cr_assert_eq(cnn_session_train_step(rep, labels, true, &lr, &cr), CNN_OK, "%s", cnn_session_errmsg(rep));
        cr_expect_eq(omp_get_max_threads(), caller, "the caller's OpenMP count is restored");
        cr_expect(fabs((double)lp - (double)lr) <= tol * fmax(1.0, fabs((double)lp)), "step %d: loss %.9g plain, %.9g replicas", step,
                  (double)lp, (double)lr);
        cr_expect_eq(cp, cr, "step %d: %lld correct plain, %lld with replicas", step, (long long)cp, (long long)cr);
        double od_ = rel_diff(cnn_session_output(plain, 0), cnn_session_output(rep, 0), batch * od[0]);
        cr_expect(od_ < tol, "step %d: the outputs differ by %g", step, od_);
    }
    cr_expect_eq(rt_replicas_steps(rep), steps, "every step ran as replicas");
    cr_expect_eq(rt_replicas_steps(plain), 0);
    for (int i = 0; i < wp->count; i++) {
        double e = rel_diff(wp->t[i].data, wr->t[i].data, op_shape_numel(&wp->t[i].shape));
        cr_expect(e < tol, "%s differs by %g (relative to its largest element)", wp->t[i].name, e);
    }
    cr_assert_eq(plain->noptstate, rep->noptstate);
    for (int i = 0; i < plain->noptstate; i++) {
        double e = rel_diff(plain->optstate[i].data, rep->optstate[i].data, op_shape_numel(&plain->optstate[i].shape));
        cr_expect(e < tol, "optimiser state %s differs by %g", plain->optstate[i].name, e);
    }
    free(labels);
    cnn_session_destroy(plain);
    cnn_session_destroy(rep);
    cnn_weights_destroy(wp);
    cnn_weights_destroy(wr);
    cnn_model_destroy(m);
}

static void same_steps(const char *src, cnn_backend b, int threads, int64_t batch, const cnn_train_config *tc,
                       int steps)
{
    same_steps_p(src, b, CNN_PRECISION_FP32, 1e-5, threads, batch, tc, steps);
}

static cnn_train_config sgd_config(void)
{
    cnn_model *m = compile(small_net);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    cnn_model_destroy(m);
    tc.loss = 0;
    tc.optimizer = 0;
    tc.lr = 0.05;
    tc.momentum = 0.9;
    tc.weight_decay = 0.0005;
    tc.nesterov = true;
    return tc;
}

Test(replicas, sgd_steps_match_the_plain_step)
{
    cnn_train_config tc = sgd_config();
    same_steps(small_net, CNN_BACKEND_AUTO, 2, 16, &tc, 4);
}

Test(replicas, adam_with_clipping_and_label_smoothing_matches_the_plain_step)
{
    cnn_train_config tc = sgd_config();
    tc.optimizer = 1;
    tc.lr = 0.01;
    tc.beta1 = 0.9;
    tc.beta2 = 0.999;
    tc.eps = 1e-8;
    tc.weight_decay = 0;
    tc.clip_grad_norm = 0.5;
    tc.label_smoothing = 0.1;
    same_steps(small_net, CNN_BACKEND_AUTO, 2, 16, &tc, 4);
}

Test(replicas, adamw_and_mse_match_the_plain_step)
{
    cnn_train_config tc = sgd_config();
    tc.loss = 1;
    tc.optimizer = 2;
    tc.lr = 0.01;
    tc.beta1 = 0.9;
    tc.beta2 = 0.999;
    tc.eps = 1e-8;
    tc.weight_decay = 0.01;
    same_steps(small_net, CNN_BACKEND_AUTO, 2, 12, &tc, 3);
}

Test(replicas, unequal_shares_are_weighted_by_their_examples)
{
    cnn_train_config tc = sgd_config();
    same_steps(small_net, CNN_BACKEND_AUTO, 2, 7, &tc, 3); /* 3 + 4 */
    same_steps(small_net, CNN_BACKEND_AUTO, 3, 8, &tc, 3); /* 2 + 3 + 3 */
}

/* bf16 (oneDNN conv and dense): the forward pass rounds the master weights to bf16, so weights
 * that differ in their last f32 bits after a step may round a bf16 ulp apart in the next: two
 * steps, at a looser tolerance (4 agreed to 1e-5 on the development machine) */
Test(replicas, bf16_steps_match_the_plain_step)
{
    cnn_train_config tc = sgd_config();
    same_steps_p(small_net, CNN_BACKEND_AUTO, CNN_PRECISION_BF16, 1e-4, 2, 16, &tc, 2);
}

/* 32 -> 32 channels, 3x3 on 8x8: auto's Winograd rule (8 MFLOP or more) holds at batch 8
 * (9.4 MFLOP) but not at the replicas' 4; they compute each convolution as the session does */
static const char wide_net[] = "network wide {\n"
                               "    input image[32, 8, 8];\n"
                               "    output logits = image -> conv2d(32, 3, pad=1) -> relu -> conv2d(32, 3, pad=1) -> relu\n"
                               "        -> global_avgpool -> flatten -> dense(4);\n"
                               "}\n";

Test(replicas, replicas_compute_convolutions_by_the_sessions_algorithm)
{
    conv_algo = CNN_CONV_ALGO_AUTO;
    cnn_train_config tc = sgd_config();
    same_steps(wide_net, CNN_BACKEND_AUTO, 2, 8, &tc, 2);
    cnn_model *m = compile(wide_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_session *s = NULL;
    cr_assert_eq(make(&s, m, w, CNN_BACKEND_AUTO, 2, 8, &tc, "on"), CNN_OK, "%s", cnn_session_errmsg(s));
    conv_algo = CNN_CONV_ALGO_DEFAULT;
    float labels[8] = {0, 1, 2, 3, 0, 1, 2, 3};
    fill(cnn_session_input(s, 0), 8 * 32 * 64, 1);
    cr_assert_eq(cnn_session_train_step(s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    int convs = 0;
    for (int i = 0; i < 2; i++) {
        const cnn_session *q = rt_replicas_session(s, i);
        cr_assert_not_null(q);
        for (int a = 0; a < q->plan->nsteps; a++) {
            const ir_node *qn = &q->plan->graph->nodes[q->plan->steps[a].node];
            for (int b = 0; b < s->plan->nsteps; b++) {
                const ir_node *sn = &s->plan->graph->nodes[s->plan->steps[b].node];
                if (qn->op != sn->op || strcmp(qn->name, sn->name) != 0)
                    continue;
                cr_expect_eq(q->plan->steps[a].backend, s->plan->steps[b].backend, "%s's backend", qn->name);
                if (qn->op == OP_CONV2D || qn->op == OP_CONV_BWD_DATA || qn->op == OP_CONV_BWD_WEIGHTS) {
                    cr_expect_eq(qn->attrs.conv.winograd, sn->attrs.conv.winograd, "%s's algorithm", qn->name);
                    convs++;
                }
            }
        }
    }
    cr_expect_geq(convs, 2 * 4, "the convolutions and their gradients were compared");
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(replicas, native_backend_matches_the_plain_step)
{
    cnn_train_config tc = sgd_config();
    same_steps(small_net, CNN_BACKEND_NATIVE, 2, 16, &tc, 3);
}

Test(replicas, lenet_matches_the_plain_step)
{
    const char *dir = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%s/lenet5.cnn", dir ? dir : "examples");
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char src[1 << 16];
    size_t n = fread(src, 1, sizeof src - 1, f);
    fclose(f);
    src[n] = '\0';
    same_steps(src, CNN_BACKEND_AUTO, 2, getenv("CNN_TEST_QUICK") ? 8 : 32, NULL, 2);
}

/* Why a network's steps cannot use replicas, for a session of these settings. */
static void expect_why(const char *src, cnn_backend b, int threads, int64_t batch, const char *mode, const char *want)
{
    cnn_model *m = compile(src);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_session *s = NULL;
    cr_assert_eq(make(&s, m, w, b, threads, batch, NULL, mode), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_expect(strstr(rt_replicas_why_not(s), want) != NULL, "expected \"%s\" in \"%s\"", want, rt_replicas_why_not(s));
    cr_expect_eq(rt_replicas_pick(s, 1.0), RT_STEP_PLANNED);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(replicas, networks_whose_step_depends_on_the_whole_batch_keep_the_plain_step)
{
    expect_why(bn_net, CNN_BACKEND_AUTO, 2, 8, "on", "batchnorm");
    expect_why(dropout_net, CNN_BACKEND_AUTO, 2, 8, "on", "dropout");
    expect_why(small_net, CNN_BACKEND_AUTO, 1, 8, "on", "one thread");
    expect_why(small_net, CNN_BACKEND_AUTO, 2, 1, "on", "batch 1");
    expect_why(small_net, CNN_BACKEND_REF, 2, 8, "on", "reference backend");
    expect_why(small_net, CNN_BACKEND_AUTO, 2, 8, "off", "CNN_REPLICAS=off");
}

Test(replicas, auto_starts_with_replicas_then_chooses_by_timing)
{
    cnn_model *m = compile(small_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_session *s = NULL;
    cr_assert_eq(make(&s, m, w, CNN_BACKEND_AUTO, 2, 8, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_expect_str_eq(rt_replicas_why_not(s), "");
    float labels[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    fill(cnn_session_input(s, 0), 8 * 144, 5);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(cnn_session_train_step(s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_expect_eq(rt_replicas_steps(s), 16, "the first 16 steps use replicas");
    /* then by timing: whichever way it picks, every step trains */
    for (int i = 0; i < 24; i++)
        cr_assert_eq(cnn_session_train_step(s, labels, true, NULL, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_expect_geq(rt_replicas_steps(s), 16);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* ---------------------------------------------------------------- inference in chunks */

/* An inference session made with CNN_REPLICAS set to mode. */
static cnn_session *make_infer(cnn_model *m, cnn_weights *w, cnn_backend b, int threads, int64_t batch,
                               const char *mode)
{
    cnn_options o;
    cnn_options_default(&o);
    o.backend = b;
    o.threads = threads;
    setenv("CNN_REPLICAS", mode, 1);
    cnn_session *s = NULL;
    cnn_status st = cnn_session_create(&s, m, w, &o, batch, CNN_MODE_INFER, NULL);
    unsetenv("CNN_REPLICAS");
    cr_assert_eq(st, CNN_OK, "%s", cnn_session_errmsg(s));
    return s;
}

/* Elements per example of input or output i. */
static int64_t numel_of(const cnn_model *m, int i, bool input)
{
    int64_t dims[4];
    int rank = input ? cnn_model_input_shape(m, i, dims) : cnn_model_output_shape(m, i, dims);
    int64_t n = 1;
    for (int k = 0; k < rank; k++)
        n *= dims[k];
    return rank > 0 ? n : 0;
}

/* Runs of a session in chunks (2 threads, CNN_REPLICAS=on) and of one on one thread, on the
 * same inputs: the same outputs to float rounding, also after the weights change between
 * runs (the replicas' weights-only steps run again). */
static void same_outputs(const char *src, cnn_backend b, int64_t batch)
{
    cnn_model *m = compile(src);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
    cnn_session *one = make_infer(m, w, b, 1, batch, "off"), *ch = make_infer(m, w, b, 2, batch, "on");
    cr_assert_str_eq(rt_replicas_why_not(ch), "");
    int64_t per = numel_of(m, 0, true), outs = 0;
    cr_assert_gt(per, 0);
    for (int round = 0; round < 3; round++) {
        if (round == 2) { /* new weights: every tensor scaled through the API */
            for (int i = 0; i < cnn_weights_count(w); i++) {
                int rank = 0;
                int64_t dims[CNN_WEIGHT_MAX_RANK], numel = 1;
                float *t = cnn_weights_tensor(w, i, NULL, &rank, dims);
                cr_assert_not_null(t);
                for (int k = 0; k < rank; k++)
                    numel *= dims[k];
                for (int64_t k = 0; k < numel; k++)
                    t[k] *= 0.75f;
            }
        }
        fill(cnn_session_input(one, 0), batch * per, 3 + (unsigned)round);
        memcpy(cnn_session_input(ch, 0), cnn_session_input(one, 0), sizeof(float) * (size_t)(batch * per));
        cr_assert_eq(cnn_session_run(one), CNN_OK, "%s", cnn_session_errmsg(one));
        cr_assert_eq(cnn_session_run(ch), CNN_OK, "%s", cnn_session_errmsg(ch));
        outs = numel_of(m, 0, false) * batch;
        double d = rel_diff(cnn_session_output(one, 0), cnn_session_output(ch, 0), outs);
        cr_expect_lt(d, 1e-5, "round %d: outputs differ by %g of their largest", round, d);
    }
    cr_expect_eq(rt_replicas_steps(ch), 3, "every run took chunks");
    cr_expect_not_null(rt_replicas_session(ch, 1), "two replicas");
    cr_expect_lt(cnn_session_batch(rt_replicas_session(ch, 0)), batch, "replicas at the chunks' batch");
    cnn_session_destroy(one);
    cnn_session_destroy(ch);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(replicas, inference_in_chunks_matches_one_thread)
{
    same_outputs(small_net, CNN_BACKEND_AUTO, 16);
    same_outputs(small_net, CNN_BACKEND_NATIVE, 16);
}

Test(replicas, inference_in_chunks_with_a_shorter_last_chunk)
{
    same_outputs(small_net, CNN_BACKEND_AUTO, 9);   /* chunks of 5: 5, 4 */
    same_outputs(small_net, CNN_BACKEND_AUTO, 3);   /* chunks of 2: 2, 1 */
    same_outputs(small_net, CNN_BACKEND_AUTO, 150); /* chunks of 38: 38, 38, 38, 36 */
}

Test(replicas, inference_in_chunks_with_batchnorm_and_dropout)
{
    /* in inference batchnorm uses its running statistics and dropout passes its input */
    same_outputs(bn_net, CNN_BACKEND_AUTO, 12);
    same_outputs(dropout_net, CNN_BACKEND_AUTO, 12);
}

Test(replicas, inference_by_default_chooses_between_chunks_and_one_thread)
{
    cnn_model *m = compile(small_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
    cnn_session *one = make_infer(m, w, CNN_BACKEND_AUTO, 1, 16, "off"), *two = make_infer(m, w, CNN_BACKEND_AUTO, 2, 16, "auto");
    cr_expect(two->thr.adaptive, "chunks or one thread, by timing");
    cr_expect_eq(two->thr.planned_threads, 2, "the chunks take both threads");
    fill(cnn_session_input(one, 0), 16 * 144, 9);
    cr_assert_eq(cnn_session_run(one), CNN_OK, "%s", cnn_session_errmsg(one));
    memcpy(cnn_session_input(two, 0), cnn_session_input(one, 0), sizeof(float) * 16 * 144);
    for (int i = 0; i < 40; i++) { /* whichever way a run takes, its outputs are the same */
        cr_assert_eq(cnn_session_run(two), CNN_OK, "%s", cnn_session_errmsg(two));
        double d = rel_diff(cnn_session_output(one, 0), cnn_session_output(two, 0), 16 * 5);
        cr_assert_lt(d, 1e-5, "run %d: outputs differ by %g of their largest", i, d);
    }
    cr_expect_gt(rt_replicas_steps(two), 0, "the chunks were tried");
    cr_expect_eq(cnn_session_batch(rt_replicas_session(two, 0)), 8, "two chunks of 8: the batch over the threads");
    cnn_session_destroy(one);
    cnn_session_destroy(two);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* An allocator that fails its fail_at-th call after arming (counts shared by the threads). */
static long fs_calls, fs_fail_at, fs_failed, fs_live;

static bool fs_fails(void)
{
    if (__atomic_load_n(&fs_fail_at, __ATOMIC_RELAXED) <= 0)
        return false;
    if (__atomic_add_fetch(&fs_calls, 1, __ATOMIC_RELAXED) != fs_fail_at)
        return false;
    __atomic_add_fetch(&fs_failed, 1, __ATOMIC_RELAXED);
    return true;
}

static void *fs_malloc(size_t n, void *ud)
{
    (void)ud;
    if (fs_fails())
        return NULL;
    void *p = malloc(n);
    if (p)
        __atomic_add_fetch(&fs_live, 1, __ATOMIC_RELAXED);
    return p;
}

static void *fs_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (fs_fails())
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        __atomic_add_fetch(&fs_live, 1, __ATOMIC_RELAXED);
    return q;
}

static void fs_free(void *p, void *ud)
{
    (void)ud;
    if (p)
        __atomic_sub_fetch(&fs_live, 1, __ATOMIC_RELAXED);
    free(p);
}

/* Fails each allocation of the run that makes the chunks' replicas in turn: the run goes on as
 * planned with the right outputs (or fails with CNN_ERR_NOMEM), and nothing leaks. */
Test(replicas, no_memory_for_the_chunks_replicas_keeps_the_run_as_planned)
{
    cnn_model *m = compile(small_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 5), CNN_OK);
    cnn_session *one = make_infer(m, w, CNN_BACKEND_AUTO, 1, 16, "off");
    fill(cnn_session_input(one, 0), 16 * 144, 4);
    cr_assert_eq(cnn_session_run(one), CNN_OK, "%s", cnn_session_errmsg(one));
    cnn_allocator a = {fs_malloc, fs_realloc, fs_free, NULL};
    cnn_set_allocator(&a);
    int fell_back = 0;
    for (long k = 1; k < 2000; k++) {
        cnn_session *s = make_infer(m, w, CNN_BACKEND_AUTO, 2, 16, "on");
        memcpy(cnn_session_input(s, 0), cnn_session_input(one, 0), sizeof(float) * 16 * 144);
        fs_calls = fs_failed = 0;
        fs_fail_at = k;
        cnn_status st = cnn_session_run(s);
        fs_fail_at = 0;
        if (fs_failed == 0) { /* past the run's allocations */
            cr_expect_eq(st, CNN_OK);
            cr_expect_eq(rt_replicas_steps(s), 1);
            cnn_session_destroy(s);
            break;
        }
        cr_assert(st == CNN_OK || st == CNN_ERR_NOMEM, "allocation %ld: status %d (%s)", k, (int)st,
                  cnn_session_errmsg(s));
        if (st == CNN_OK) {
            fell_back += rt_replicas_steps(s) == 0;
            double d = rel_diff(cnn_session_output(one, 0), cnn_session_output(s, 0), 16 * 5);
            cr_assert_lt(d, 1e-5, "allocation %ld: outputs differ by %g", k, d);
        }
        cnn_session_destroy(s);
    }
    cnn_set_allocator(NULL);
    cr_expect_gt(fell_back, 0, "some failure fell back to the steps as planned");
    cr_expect_eq(fs_live, 0, "%ld blocks not freed", fs_live);
    cnn_session_destroy(one);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(replicas, inference_chunks_are_not_for_every_session)
{
    cnn_model *m = compile(small_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    struct { cnn_backend b; int threads; int64_t batch; const char *mode, *want; } cases[] = {
        {CNN_BACKEND_AUTO, 1, 8, "on", "one thread"},
        {CNN_BACKEND_AUTO, 2, 1, "on", "batch 1"},
        {CNN_BACKEND_REF, 2, 8, "on", "reference backend"},
        {CNN_BACKEND_AUTO, 2, 8, "off", "CNN_REPLICAS=off"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_session *s = make_infer(m, w, cases[i].b, cases[i].threads, cases[i].batch, cases[i].mode);
        cr_expect(strstr(rt_replicas_why_not(s), cases[i].want) != NULL, "expected \"%s\" in \"%s\"", cases[i].want,
                  rt_replicas_why_not(s));
        cr_expect_not(rt_replicas_chunks_may(s));
        fill(cnn_session_input(s, 0), cases[i].batch * 144, 1);
        cr_expect_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
        cr_expect_eq(rt_replicas_steps(s), 0);
        cnn_session_destroy(s);
    }
    /* and a session whose values are read after its runs (int8 calibration) */
    cnn_session *s = make_infer(m, w, CNN_BACKEND_AUTO, 2, 8, "on");
    rt_replicas_off(s, "int8 calibration reads the session's values");
    fill(cnn_session_input(s, 0), 8 * 144, 1);
    cr_expect_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_expect_eq(rt_replicas_steps(s), 0);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(replicas, a_bad_cnn_replicas_value_is_refused)
{
    cnn_model *m = compile(small_net);
    cnn_weights *w;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_session *s = NULL;
    cr_expect_eq(make(&s, m, w, CNN_BACKEND_AUTO, 2, 8, NULL, "maybe"), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(s), "CNN_REPLICAS") != NULL, "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    /* an inference session reads it too (its runs may take chunks of the batch) */
    cnn_options o;
    cnn_options_default(&o);
    setenv("CNN_REPLICAS", "maybe", 1);
    s = NULL;
    cr_expect_eq(cnn_session_create(&s, m, w, &o, 4, CNN_MODE_INFER, NULL), CNN_ERR_USAGE);
    unsetenv("CNN_REPLICAS");
    cr_expect(strstr(cnn_session_errmsg(s), "CNN_REPLICAS") != NULL, "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* An IDX training split of n 12x12 images in dir: class c (of 5) has rows 2c and 2c+1 bright. */
static void write_idx(const char *dir, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    FILE *fl = fopen(path, "wb");
    cr_assert(fi && fl);
    test_put_be32(fi, 0x803), test_put_be32(fi, (uint32_t)n), test_put_be32(fi, 12), test_put_be32(fi, 12);
    test_put_be32(fl, 0x801), test_put_be32(fl, (uint32_t)n);
    uint32_t x = 9;
    for (int i = 0; i < n; i++) {
        int c = (i * 3) % 5;
        unsigned char img[144];
        for (int p = 0; p < 144; p++) {
            x = x * 1664525u + 1013904223u;
            img[p] = (unsigned char)(p / 12 / 2 == c ? 128 + (x >> 25) : (x >> 25));
        }
        unsigned char lab = (unsigned char)c;
        cr_assert_eq(fwrite(img, 1, sizeof img, fi), sizeof img);
        cr_assert_eq(fwrite(&lab, 1, 1, fl), 1);
    }
    fclose(fi);
    fclose(fl);
}

/* cnn_train over two epochs with random crops and flips, on a session with replicas and one
 * without: the same batches, so the same weights to float rounding and the same accuracy. */
Test(replicas, cnn_train_with_augmentation_matches_the_plain_run)
{
    char dir[] = "/tmp/cnnc-replicas-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    write_idx(dir, 96);
    char err[1024];
    bool absent;
    cnn_dataset *d = NULL;
    cr_assert_eq(cnn_dataset_load(&d, dir, "train", &absent, err, sizeof err), CNN_OK, "%s", err);
    cnn_model *m = compile(small_net);
    cnn_train_config tc = sgd_config();
    tc.batch = 16;
    tc.naugment = 2;
    tc.augment[0] = (cnn_augment_step){.kind = CNN_AUGMENT_RANDOM_CROP, .pad = 2};
    tc.augment[1] = (cnn_augment_step){.kind = CNN_AUGMENT_RANDOM_FLIP};
    tc.nnormalize = 1;
    tc.mean[0] = 0.3;
    tc.std[0] = 0.3;
    cnn_weights *w[2];
    cnn_session *s[2];
    cnn_train_result res[2];
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(cnn_weights_create(&w[k], m, 4), CNN_OK);
        cr_assert_eq(make(&s[k], m, w[k], CNN_BACKEND_AUTO, 2, 16, &tc, k ? "on" : "off"), CNN_OK, "%s",
                     cnn_session_errmsg(s[k]));
        cnn_train_options o;
        cnn_train_options_default(&o);
        o.epochs = 2;
        o.seed = 5;
        cr_assert_eq(cnn_train(s[k], d, NULL, &o, &res[k]), CNN_OK, "%s", cnn_session_errmsg(s[k]));
    }
    cr_expect_eq(rt_replicas_steps(s[1]), res[1].steps, "every step ran as replicas");
    cr_expect_eq(res[0].steps, 12);
    cr_expect_eq(res[1].steps, 12);
    cr_expect(fabs(res[0].train_loss - res[1].train_loss) < 1e-4 * fmax(1.0, fabs(res[0].train_loss)),
              "epoch loss %.9g plain, %.9g with replicas", res[0].train_loss, res[1].train_loss);
    cr_expect_eq(res[0].train_accuracy, res[1].train_accuracy);
    for (int i = 0; i < w[0]->count; i++) {
        double e = rel_diff(w[0]->t[i].data, w[1]->t[i].data, op_shape_numel(&w[0]->t[i].shape));
        cr_expect(e < 1e-4, "%s differs by %g after 12 steps", w[0]->t[i].name, e);
    }
    for (int k = 0; k < 2; k++) {
        cnn_session_destroy(s[k]);
        cnn_weights_destroy(w[k]);
    }
    cnn_model_destroy(m);
    cnn_dataset_destroy(d);
    char path[600];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    unlink(path);
    rmdir(dir);
}
