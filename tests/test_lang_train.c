/* Train sections (spec section 7) through the public API: every setting's accepted forms land
 * in cnn_model_train_config, and each bad value is a located error (file:line:col and the
 * message, with a did-you-mean where one helps). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"

#define NET_IMG "network n {\n    input x[3, 8, 8];\n    output y = x -> flatten -> dense(2);\n}\n"
#define NET_VEC "network n {\n    input x[5];\n    output y = x -> dense(2);\n}\n"

/* The train config of NET + "train n { BODY }" (line 5 is "train n {", settings from line 6). */
static void config_of(const char *net, const char *body, cnn_train_config *cfg)
{
    char src[4096];
    snprintf(src, sizeof src, "%strain n {\n%s}\n", net, body);
    cnn_model *m;
    cnn_status st = cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL);
    cr_assert_eq(st, CNN_OK, "%s\n--- for ---\n%s", m ? cnn_model_errmsg(m) : "?", src);
    cnn_model_train_config(m, cfg);
    cnn_model_destroy(m);
}

/* Expects the source to fail with a message containing each of want[] (NULL-terminated). */
static void expect_errors(const char *net, const char *body, const char *const *want)
{
    char src[4096];
    snprintf(src, sizeof src, "%strain n {\n%s}\n", net, body);
    cnn_model *m = NULL;
    cnn_status st = cnn_model_compile(&m, "t.cnn", src, strlen(src), NULL);
    cr_assert_eq(st, CNN_ERR_INPUT, "accepted:\n%s", src);
    const char *msg = cnn_model_errmsg(m);
    for (int i = 0; want[i]; i++)
        cr_expect(strstr(msg, want[i]) != NULL, "missing \"%s\" in:\n%s", want[i], msg);
    cnn_model_destroy(m);
}

#define EXPECT_ERRORS(net, body, ...)                                                                                  \
    do {                                                                                                               \
        static const char *const want_[] = {__VA_ARGS__, NULL};                                                        \
        expect_errors(net, body, want_);                                                                               \
    } while (0)

Test(lang_train, defaults)
{
    cnn_train_config c;
    config_of(NET_IMG, "    batch = 8;\n", &c);
    cr_expect_eq(c.loss, 0);
    cr_expect_eq(c.optimizer, 0);
    cr_expect_eq(c.lr, 0.01);
    cr_expect_eq(c.label_smoothing, 0.0);
    cr_expect_eq(c.schedule, CNN_SCHEDULE_CONSTANT);
    cr_expect_eq(c.clip_grad_norm, 0.0);
    cr_expect_eq(c.naugment, 0);
    cr_expect_eq(c.nnormalize, 0);
    cr_expect_eq(c.batch, 8);
}

Test(lang_train, loss_label_smoothing)
{
    cnn_train_config c;
    config_of(NET_IMG, "    loss = cross_entropy(label_smoothing=0.1);\n", &c);
    cr_expect_eq(c.loss, 0);
    cr_expect_float_eq(c.label_smoothing, 0.1, 1e-15);
    config_of(NET_IMG, "    loss = cross_entropy(0.25);\n", &c);
    cr_expect_float_eq(c.label_smoothing, 0.25, 1e-15);
    config_of(NET_IMG, "    loss = cross_entropy;\n", &c);
    cr_expect_eq(c.label_smoothing, 0.0);
    config_of(NET_IMG, "    loss = cross_entropy();\n", &c);
    cr_expect_eq(c.label_smoothing, 0.0);
    config_of(NET_IMG, "    loss = mse;\n", &c);
    cr_expect_eq(c.loss, 1);
    config_of(NET_IMG, "    loss = cross_entropy(label_smoothing=0);\n", &c);
    cr_expect_eq(c.label_smoothing, 0.0);
}

Test(lang_train, loss_errors)
{
    EXPECT_ERRORS(NET_IMG, "    loss = cross_entropy(label_smoothing=1);\n",
                  "t.cnn:6:42: error: cross_entropy: 'label_smoothing' must be a number in [0, 1), got 1");
    EXPECT_ERRORS(NET_IMG, "    loss = cross_entropy(label_smoothing=-0.1);\n",
                  "t.cnn:6:42: error: cross_entropy: 'label_smoothing' must be a number in [0, 1)");
    EXPECT_ERRORS(NET_IMG, "    loss = cross_entropy(label_smothing=0.1);\n",
                  "t.cnn:6:26: error: unknown argument 'label_smothing' for cross_entropy; did you mean 'label_smoothing'?");
    EXPECT_ERRORS(NET_IMG, "    loss = mse(0.1);\n", "t.cnn:6:16: error: too many arguments for mse: it takes none");
    EXPECT_ERRORS(NET_IMG, "    loss = cross_entropi;\n",
                  "t.cnn:6:12: error: unknown loss 'cross_entropi'; did you mean 'cross_entropy'?");
    EXPECT_ERRORS(NET_IMG, "    label_smoothing = 0.1;\n",
                  "t.cnn:6:5: error: unknown setting 'label_smoothing' in train section; 'label_smoothing' is an "
                  "argument of the loss, as in loss = cross_entropy(label_smoothing=...)");
}

Test(lang_train, adamw)
{
    cnn_train_config c;
    config_of(NET_IMG, "    optimizer = adamw;\n", &c);
    cr_expect_eq(c.optimizer, 2);
    cr_expect_float_eq(c.lr, 0.001, 1e-15);
    cr_expect_float_eq(c.beta1, 0.9, 1e-15);
    cr_expect_float_eq(c.beta2, 0.999, 1e-15);
    cr_expect_float_eq(c.eps, 1e-8, 1e-20);
    cr_expect_float_eq(c.weight_decay, 0.01, 1e-15, "adamw's default weight decay");
    config_of(NET_IMG, "    optimizer = adamw(lr=0.003, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05);\n", &c);
    cr_expect_eq(c.optimizer, 2);
    cr_expect_float_eq(c.lr, 0.003, 1e-15);
    cr_expect_float_eq(c.beta1, 0.8, 1e-15);
    cr_expect_float_eq(c.beta2, 0.99, 1e-15);
    cr_expect_float_eq(c.eps, 1e-6, 1e-20);
    cr_expect_float_eq(c.weight_decay, 0.05, 1e-15);
    config_of(NET_IMG, "    optimizer = adam;\n", &c);
    cr_expect_eq(c.optimizer, 1);
    cr_expect_eq(c.weight_decay, 0.0, "adam's weight decay stays 0 by default");
    EXPECT_ERRORS(NET_IMG, "    optimizer = adamw(beta2=1);\n",
                  "t.cnn:6:29: error: adamw: 'beta2' must be a number in [0, 1), got 1");
    EXPECT_ERRORS(NET_IMG, "    optimizer = adamw(weight_decay=-1);\n",
                  "t.cnn:6:36: error: adamw: 'weight_decay' must be a non-negative number, got -1");
    EXPECT_ERRORS(NET_IMG, "    optimizer = adamv(lr=0.1);\n",
                  "t.cnn:6:17: error: unknown optimizer 'adamv'; did you mean 'adam'?");
    EXPECT_ERRORS(NET_IMG, "    optimizer = rmsprop;\n",
                  "t.cnn:6:17: error: unknown optimizer 'rmsprop'; expected sgd, adam or adamw");
}

Test(lang_train, schedules)
{
    cnn_train_config c;
    config_of(NET_IMG, "    schedule = constant;\n", &c);
    cr_expect_eq(c.schedule, CNN_SCHEDULE_CONSTANT);
    config_of(NET_IMG, "    schedule = step(3);\n", &c);
    cr_expect_eq(c.schedule, CNN_SCHEDULE_STEP);
    cr_expect_eq(c.schedule_every, 3);
    cr_expect_float_eq(c.schedule_gamma, 0.1, 1e-15);
    config_of(NET_IMG, "    schedule = step(every=10, gamma=0.5);\n", &c);
    cr_expect_eq(c.schedule_every, 10);
    cr_expect_float_eq(c.schedule_gamma, 0.5, 1e-15);
    config_of(NET_IMG, "    schedule = cosine;\n", &c);
    cr_expect_eq(c.schedule, CNN_SCHEDULE_COSINE);
    cr_expect_eq(c.warmup_epochs, 0.0);
    config_of(NET_IMG, "    schedule = cosine(warmup=0.5);\n", &c);
    cr_expect_float_eq(c.warmup_epochs, 0.5, 1e-15);
    config_of(NET_IMG, "    schedule = cosine(2);\n", &c);
    cr_expect_float_eq(c.warmup_epochs, 2.0, 1e-15);
    /* the config feeds the schedule: step decays at epoch 10 */
    config_of(NET_IMG, "    optimizer = sgd(lr=0.2);\n    schedule = step(every=10, gamma=0.5);\n", &c);
    cr_expect_float_eq(cnn_train_lr(&c, 99, 10, 1000), 0.2, 1e-15);
    cr_expect_float_eq(cnn_train_lr(&c, 100, 10, 1000), 0.1, 1e-15);
}

Test(lang_train, schedule_errors)
{
    EXPECT_ERRORS(NET_IMG, "    schedule = step;\n", "t.cnn:6:16: error: missing argument 'every' for step");
    EXPECT_ERRORS(NET_IMG, "    schedule = step(0);\n",
                  "t.cnn:6:21: error: step: 'every' must be a positive integer, got 0");
    EXPECT_ERRORS(NET_IMG, "    schedule = step(1.5);\n", "t.cnn:6:21: error: step: 'every' must be a positive integer");
    EXPECT_ERRORS(NET_IMG, "    schedule = step(2, gamma=0);\n",
                  "t.cnn:6:30: error: step: 'gamma' must be a positive number, got 0");
    EXPECT_ERRORS(NET_IMG, "    schedule = cosine(warmup=-1);\n",
                  "t.cnn:6:30: error: cosine: 'warmup' must be a non-negative number, got -1");
    EXPECT_ERRORS(NET_IMG, "    schedule = cosin;\n", "t.cnn:6:16: error: unknown schedule 'cosin'; did you mean 'cosine'?");
    EXPECT_ERRORS(NET_IMG, "    schedule = 3;\n",
                  "t.cnn:6:16: error: 'schedule' must be constant, step(every, gamma) or cosine(warmup)");
    EXPECT_ERRORS(NET_IMG, "    schedule = constant(1);\n",
                  "t.cnn:6:25: error: too many arguments for constant: it takes none");
    EXPECT_ERRORS(NET_IMG, "    shedule = cosine;\n",
                  "t.cnn:6:5: error: unknown setting 'shedule' in train section; did you mean 'schedule'?");
    EXPECT_ERRORS(NET_IMG, "    warmup = 1;\n",
                  "t.cnn:6:5: error: unknown setting 'warmup' in train section; 'warmup' is an argument of the "
                  "schedule, as in schedule = cosine(warmup=...)");
}

Test(lang_train, augment)
{
    cnn_train_config c;
    config_of(NET_IMG, "    augment = random_crop(4) -> random_flip;\n", &c);
    cr_assert_eq(c.naugment, 2);
    cr_expect_eq(c.augment[0].kind, CNN_AUGMENT_RANDOM_CROP);
    cr_expect_eq(c.augment[0].pad, 4);
    cr_expect_eq(c.augment[1].kind, CNN_AUGMENT_RANDOM_FLIP);
    config_of(NET_IMG, "    augment = random_flip() -> random_crop(pad=0) -> random_crop(2);\n", &c);
    cr_assert_eq(c.naugment, 3);
    cr_expect_eq(c.augment[0].kind, CNN_AUGMENT_RANDOM_FLIP);
    cr_expect_eq(c.augment[1].kind, CNN_AUGMENT_RANDOM_CROP);
    cr_expect_eq(c.augment[1].pad, 0);
    cr_expect_eq(c.augment[2].pad, 2);
    config_of(NET_IMG, "    augment = random_flip;\n", &c);
    cr_assert_eq(c.naugment, 1);
    cr_expect_eq(c.augment[0].kind, CNN_AUGMENT_RANDOM_FLIP);
}

Test(lang_train, augment_errors)
{
    EXPECT_ERRORS(NET_IMG, "    augment = random_crop(-1);\n",
                  "t.cnn:6:27: error: random_crop: 'pad' must be a non-negative integer, got -1");
    EXPECT_ERRORS(NET_IMG, "    augment = random_crop;\n", "t.cnn:6:15: error: missing argument 'pad' for random_crop");
    EXPECT_ERRORS(NET_IMG, "    augment = random_crop(2.5);\n",
                  "t.cnn:6:27: error: random_crop: 'pad' must be a non-negative integer, got 2.5");
    EXPECT_ERRORS(NET_IMG, "    augment = random_flip(1);\n",
                  "t.cnn:6:27: error: too many arguments for random_flip: it takes none");
    EXPECT_ERRORS(NET_IMG, "    augment = random_crop(4) -> random_flp;\n",
                  "t.cnn:6:33: error: unknown augment step 'random_flp'; did you mean 'random_flip'?");
    EXPECT_ERRORS(NET_IMG, "    augment = 4;\n", "t.cnn:6:15: error: an augment step must be random_crop(pad) or random_flip");
    EXPECT_ERRORS(NET_IMG, "    augment = random_flip -> 2;\n",
                  "t.cnn:6:30: error: an augment step must be random_crop(pad) or random_flip");
    EXPECT_ERRORS(NET_VEC, "    augment = random_flip;\n",
                  "t.cnn:6:15: error: random_flip needs an image input [C, H, W]; x is [5]");
    EXPECT_ERRORS(NET_IMG,
                  "    augment = random_flip -> random_flip -> random_flip -> random_flip -> random_flip -> "
                  "random_flip -> random_flip -> random_flip -> random_flip;\n",
                  "error: 'augment' has more than 8 steps");
}

Test(lang_train, normalize)
{
    cnn_train_config c;
    config_of(NET_IMG, "    normalize = (0.5, 0.25);\n", &c);
    cr_assert_eq(c.nnormalize, 1);
    cr_expect_eq(c.mean[0], 0.5);
    cr_expect_eq(c.std[0], 0.25);
    config_of(NET_IMG, "    normalize = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261));\n", &c);
    cr_assert_eq(c.nnormalize, 3);
    cr_expect_eq(c.mean[1], 0.4822);
    cr_expect_eq(c.std[2], 0.261);
    config_of(NET_IMG, "    normalize = ((0, 1, -1), (1, 2, 3));\n", &c);
    cr_assert_eq(c.nnormalize, 3);
    cr_expect_eq(c.mean[2], -1.0);
    cr_expect_eq(c.std[1], 2.0);
    config_of(NET_VEC, "    normalize = (0.1307, 0.3081);\n", &c);
    cr_assert_eq(c.nnormalize, 1);
}

Test(lang_train, normalize_errors)
{
    EXPECT_ERRORS(NET_IMG, "    normalize = 0.5;\n",
                  "t.cnn:6:17: error: 'normalize' must be (mean, std) or ((m1, m2, ...), (s1, s2, ...))");
    EXPECT_ERRORS(NET_IMG, "    normalize = (0.5, 0.2, 0.1);\n",
                  "t.cnn:6:17: error: 'normalize' must be (mean, std) or ((m1, m2, ...), (s1, s2, ...))");
    EXPECT_ERRORS(NET_IMG, "    normalize = (0.5, 0);\n", "t.cnn:6:23: error: 'normalize': std must be a positive number, got 0");
    EXPECT_ERRORS(NET_IMG, "    normalize = ((0.5, 0.5, 0.5), (0.2, -0.2, 0.2));\n",
                  "t.cnn:6:41: error: 'normalize': std must be a positive number, got -0.2");
    EXPECT_ERRORS(NET_IMG, "    normalize = ((0.5, 0.5, 0.5), (0.2, 0.2));\n",
                  "t.cnn:6:17: error: 'normalize' has 3 means and 2 stds; give as many of each");
    EXPECT_ERRORS(NET_IMG, "    normalize = ((0.5, 0.5, 0.5), 0.2);\n",
                  "t.cnn:6:17: error: 'normalize' has 3 means and 1 std; give as many of each");
    EXPECT_ERRORS(NET_IMG, "    normalize = ((0.5, 0.5), (0.2, 0.2));\n",
                  "t.cnn:6:17: error: 'normalize' has 2 values per channel, but the input has 3 channels; x is [3, 8, 8]");
    EXPECT_ERRORS(NET_VEC, "    normalize = ((0.5, 0.5), (0.2, 0.2));\n",
                  "t.cnn:6:17: error: 'normalize' has 2 values per channel, but the input has no channels; x is [5]");
    EXPECT_ERRORS(NET_IMG, "    normalize = (\"a\", 0.2);\n", "t.cnn:6:18: error: 'normalize' takes numbers, got \"a\"");
    EXPECT_ERRORS(NET_IMG, "    normalize = ((0.5, (1, 2), 0.5), (0.2, 0.2, 0.2));\n",
                  "t.cnn:6:24: error: 'normalize' means must be numbers, got a tuple");
    EXPECT_ERRORS(NET_IMG,
                  "    normalize = ((1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
                  "1, 1, 1, 1, 1, 1, 1));\n",
                  "t.cnn:6:18: error: 'normalize' has 17 means; at most 16 (one per channel)");
}

Test(lang_train, clip_grad_norm)
{
    cnn_train_config c;
    config_of(NET_IMG, "    clip_grad_norm = 1.5;\n", &c);
    cr_expect_eq(c.clip_grad_norm, 1.5);
    config_of(NET_IMG, "    clip_grad_norm = 5;\n", &c);
    cr_expect_eq(c.clip_grad_norm, 5.0);
    EXPECT_ERRORS(NET_IMG, "    clip_grad_norm = 0;\n", "t.cnn:6:22: error: 'clip_grad_norm' must be a positive number, got 0");
    EXPECT_ERRORS(NET_IMG, "    clip_grad_norm = -2.5;\n",
                  "t.cnn:6:22: error: 'clip_grad_norm' must be a positive number, got -2.5");
    EXPECT_ERRORS(NET_IMG, "    clip_grad_norm = true;\n",
                  "t.cnn:6:22: error: 'clip_grad_norm' must be a positive number, got true");
    EXPECT_ERRORS(NET_IMG, "    clip_grad_nrom = 1;\n",
                  "t.cnn:6:5: error: unknown setting 'clip_grad_nrom' in train section; did you mean 'clip_grad_norm'?");
    EXPECT_ERRORS(NET_IMG, "    clip_grad_norm = 1;\n    clip_grad_norm = 2;\n",
                  "t.cnn:7:5: error: setting 'clip_grad_norm' is given twice");
}

/* Everything at once, as a recipe would write it. */
Test(lang_train, a_full_section)
{
    cnn_train_config c;
    config_of(NET_IMG,
              "    loss = cross_entropy(label_smoothing=0.1);\n"
              "    optimizer = adamw(lr=0.002, weight_decay=0.05);\n"
              "    schedule = cosine(warmup=1);\n"
              "    augment = random_crop(2) -> random_flip;\n"
              "    normalize = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25));\n"
              "    clip_grad_norm = 2;\n"
              "    batch = 32;\n"
              "    epochs = 30;\n",
              &c);
    cr_expect_float_eq(c.label_smoothing, 0.1, 1e-15);
    cr_expect_eq(c.optimizer, 2);
    cr_expect_float_eq(c.weight_decay, 0.05, 1e-15);
    cr_expect_eq(c.schedule, CNN_SCHEDULE_COSINE);
    cr_expect_eq(c.warmup_epochs, 1.0);
    cr_expect_eq(c.naugment, 2);
    cr_expect_eq(c.nnormalize, 3);
    cr_expect_eq(c.clip_grad_norm, 2.0);
    cr_expect_eq(c.batch, 32);
    cr_expect_eq(c.epochs, 30);
}
