/* Backend auto decided by measurement (cnn_options.tune, --tune): every node gets a backend
 * that has its kernel, the tuned plan computes what the reference does, a fake clock
 * (CNN_TUNE_FAKE) steers the choice, the cache is reused, keyed by threads, and survives being
 * corrupt; the flag's bad values are usage errors. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernels.h"
#include "runtime/cnn.h"
#include "tests/cli_util.h"
#include "tests/file_util.h"

TestSuite(tune, .init = make_tmp, .fini = remove_tmp, .timeout = 300);

static cnn_model *lenet(void)
{
    const char *ex = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%s/lenet5.cnn", ex ? ex : "examples");
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    return m;
}

static cnn_options tuned(cnn_tune level, const char *cache, int threads)
{
    cnn_options o;
    cnn_options_default(&o);
    o.tune = level;
    o.tune_cache = cache;
    o.threads = threads;
    return o;
}

static cnn_session *session(cnn_model *m, cnn_weights *w, const cnn_options *o, int64_t batch, cnn_mode mode)
{
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, o, batch, mode, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    float *x = cnn_session_input(s, 0);
    for (int64_t i = 0; i < batch * 28 * 28; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f;
    return s;
}

static bool known_backend(const char *b)
{
    return strcmp(b, "ref") == 0 || strcmp(b, "native") == 0 || strcmp(b, "onednn") == 0;
}

/* The backend of the step running node `name` in s, or NULL. */
/* The step of the session's plan named `name` (its profile entry), false when there is none. */
static bool step_named(const cnn_session *s, const char *name, cnn_profile_entry *e)
{
    for (int i = 0; i < cnn_session_profile_steps(s); i++) {
        cnn_session_profile_entry(s, i, e);
        if (strcmp(e->name, name) == 0)
            return true;
    }
    return false;
}

static const char *backend_of(const cnn_session *s, const char *name)
{
    cnn_profile_entry e;
    return step_named(s, name, &e) ? e.backend : NULL;
}

Test(tune, measured_inference_is_valid_and_matches_the_reference)
{
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_ON, tmp("tune.json"), 1);
    cnn_session *s = session(m, w, &o, 2, CNN_MODE_INFER);
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned, "%s", ti.note);
    cr_assert_gt(ti.nodes, 0);
    cr_assert_eq(ti.measured, ti.nodes);
    cr_assert_eq(ti.cached, 0);
    cr_assert_str_empty(ti.note);
    cr_assert_str_eq(ti.cache, tmp("tune.json"));
    for (int i = 0; i < cnn_session_profile_steps(s); i++) {
        cnn_profile_entry e;
        cr_assert_eq(cnn_session_profile_entry(s, i, &e), CNN_OK);
        cr_assert(known_backend(e.backend), "%s: %s", e.name, e.backend);
    }
    cnn_options ro;
    cnn_options_default(&ro);
    ro.backend = CNN_BACKEND_REF;
    ro.threads = 1;
    cnn_session *r = session(m, w, &ro, 2, CNN_MODE_INFER);
    cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_assert_eq(cnn_session_run(r), CNN_OK);
    const float *a = cnn_session_output(s, 0), *b = cnn_session_output(r, 0);
    for (int i = 0; i < 2 * 10; i++)
        cr_assert_float_eq(a[i], b[i], 1e-4f + 1e-4f * fabsf(b[i]), "output %d: %g vs %g", i, a[i], b[i]);
    cnn_session_destroy(s);
    cnn_session_destroy(r);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(tune, measured_training_step_matches_the_reference)
{
    cnn_model *m = lenet();
    cnn_weights *w1 = NULL, *w2 = NULL;
    cr_assert_eq(cnn_weights_create(&w1, m, 5), CNN_OK);
    cr_assert_eq(cnn_weights_create(&w2, m, 5), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_ON, tmp("tune.json"), 1);
    cnn_session *s = session(m, w1, &o, 4, CNN_MODE_TRAIN);
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned, "%s", ti.note);
    cr_assert_eq(ti.measured, ti.nodes);
    cnn_options ro;
    cnn_options_default(&ro);
    ro.backend = CNN_BACKEND_REF;
    ro.threads = 1;
    cnn_session *r = session(m, w2, &ro, 4, CNN_MODE_TRAIN);
    float labels[4] = {0, 3, 7, 9};
    for (int step = 0; step < 2; step++) {
        float la, lb;
        cr_assert_eq(cnn_session_train_step(s, labels, true, &la, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
        cr_assert_eq(cnn_session_train_step(r, labels, true, &lb, NULL), CNN_OK);
        cr_assert_float_eq(la, lb, 1e-4f * fabsf(lb) + 1e-5f, "step %d: loss %g vs %g", step, la, lb);
    }
    /* the tuner's own runs used private weights: the session's first step started from w1 as created */
    const char *name;
    int rank;
    int64_t dims[CNN_WEIGHT_MAX_RANK];
    float *p1 = cnn_weights_tensor(w1, 0, &name, &rank, dims), *p2 = cnn_weights_tensor(w2, 0, &name, &rank, dims);
    cr_assert_float_eq(p1[0], p2[0], 1e-4f, "%s[0]: %g vs %g", name, p1[0], p2[0]);
    cnn_session_destroy(s);
    cnn_session_destroy(r);
    cnn_weights_destroy(w1);
    cnn_weights_destroy(w2);
    cnn_model_destroy(m);
}

/* With the fake clock favouring native, the tuned plan runs every node where the uniform native
 * plan does. */
static void fake_matches_uniform(const char *fake, cnn_backend uniform, cnn_tune level, cnn_mode mode)
{
    setenv("CNN_TUNE_FAKE", fake, 1);
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o = tuned(level, "none", 1);
    cnn_session *s = session(m, w, &o, 3, mode);
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned, "%s", ti.note);
    cr_assert_str_eq(ti.plan, fake);
    cr_assert_str_empty(ti.cache);
    cnn_options uo;
    cnn_options_default(&uo);
    uo.backend = uniform;
    uo.threads = 1;
    cnn_session *u = session(m, w, &uo, 3, mode);
    int checked = 0;
    for (int i = 0; i < cnn_session_profile_steps(s); i++) {
        cnn_profile_entry e;
        cnn_session_profile_entry(s, i, &e);
        if (strcmp(e.op, "reorder") == 0)
            continue;
        const char *want = backend_of(u, e.name);
        cr_assert_not_null(want, "%s", e.name);
        cr_assert_str_eq(e.backend, want, "%s (%s)", e.name, e.op);
        checked++;
    }
    cr_assert_eq(checked, ti.nodes);
    cnn_session_destroy(s);
    cnn_session_destroy(u);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(tune, fake_clock_favouring_native_picks_native)
{
    fake_matches_uniform("native", CNN_BACKEND_NATIVE, CNN_TUNE_ON, CNN_MODE_INFER);
}

Test(tune, fake_clock_favouring_ref_picks_ref_for_training)
{
    fake_matches_uniform("ref", CNN_BACKEND_REF, CNN_TUNE_ON, CNN_MODE_TRAIN);
}

Test(tune, exhaustive_with_the_fake_clock)
{
    fake_matches_uniform("native", CNN_BACKEND_NATIVE, CNN_TUNE_EXHAUSTIVE, CNN_MODE_TRAIN);
}

Test(tune, exhaustive_measured_is_valid)
{
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_EXHAUSTIVE, "none", 1);
    cnn_session *s = session(m, w, &o, 1, CNN_MODE_INFER);
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned && ti.measured == ti.nodes, "%s", ti.note);
    cr_assert_eq(cnn_session_run(s), CNN_OK);
    for (int i = 0; i < cnn_session_profile_steps(s); i++) {
        cnn_profile_entry e;
        cnn_session_profile_entry(s, i, &e);
        cr_assert(known_backend(e.backend));
    }
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* Creates a tuned session and returns what tuning did. */
static cnn_tune_info tune_once(cnn_model *m, cnn_weights *w, const char *cache, int threads, char *backends, size_t n)
{
    cnn_options o = tuned(CNN_TUNE_ON, cache, threads);
    cnn_session *s = session(m, w, &o, 2, CNN_MODE_INFER);
    static char note[512], plan[32];
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    snprintf(note, sizeof note, "%s", ti.note);
    snprintf(plan, sizeof plan, "%s", ti.plan);
    ti.note = note;
    ti.plan = plan;
    ti.cache = "";
    size_t o2 = 0;
    backends[0] = '\0';
    for (int i = 0; i < cnn_session_profile_steps(s) && o2 < n; i++) {
        cnn_profile_entry e;
        cnn_session_profile_entry(s, i, &e);
        o2 += (size_t)snprintf(backends + o2, n - o2, "%s=%s ", e.name, e.backend);
    }
    cnn_session_destroy(s);
    return ti;
}

Test(tune, cache_round_trip_and_thread_key)
{
    setenv("CNN_TUNE_FAKE", "native", 1);
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    char first[4096], second[4096], third[4096];
    cnn_tune_info a = tune_once(m, w, tmp("c/tune.json"), 1, first, sizeof first);
    cr_assert(a.tuned && a.measured == a.nodes && a.cached == 0, "%s", a.note);
    cr_assert_str_empty(a.note);
    FILE *f = fopen(tmp("c/tune.json"), "r");
    cr_assert_not_null(f, "the cache was not written (its folder is made)");
    fclose(f);
    cnn_tune_info b = tune_once(m, w, tmp("c/tune.json"), 1, second, sizeof second);
    cr_assert(b.tuned, "%s", b.note);
    cr_assert_eq(b.measured, 0, "the second session measured");
    cr_assert_eq(b.cached, b.nodes);
    cr_assert_str_eq(b.plan, a.plan);
    cr_assert_str_eq(first, second);
    /* another thread count is another key: measured again, and both stay in the file */
    cnn_tune_info c = tune_once(m, w, tmp("c/tune.json"), 2, third, sizeof third);
    cr_assert_eq(c.measured, c.nodes);
    c = tune_once(m, w, tmp("c/tune.json"), 2, third, sizeof third);
    cr_assert_eq(c.measured, 0);
    b = tune_once(m, w, tmp("c/tune.json"), 1, second, sizeof second);
    cr_assert_eq(b.measured, 0);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* The cache's keys name the build (a commit's kernels are not another's): writing drops the
 * entries of other builds of this version and keeps other versions'. */
Test(tune, cache_keys_name_the_build_and_drop_other_builds)
{
    setenv("CNN_TUNE_FAKE", "native", 1);
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    char backends[4096], mine[160];
    const char *id = cnn_build_id();
    snprintf(mine, sizeof mine, "cnnc %s%s%s|", cnn_version(), id[0] ? "+" : "", id);
    cnn_tune_info a = tune_once(m, w, tmp("b/tune.json"), 1, backends, sizeof backends);
    cr_assert(a.tuned && a.measured == a.nodes, "%s", a.note);
    size_t len = 0;
    char *text = test_read_file(tmp("b/tune.json"), &len);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    cr_assert(cJSON_IsObject(entries) && entries->child);
    int n = 0;
    for (cJSON *e = entries->child; e; e = e->next, n++)
        cr_expect(strncmp(e->string, mine, strlen(mine)) == 0, "key %s does not begin with %s", e->string, mine);
    /* an entry of another build of this version, and one of another version */
    char other[4096], older[4096];
    const char *rest = strchr(entries->child->string, '|');
    snprintf(other, sizeof other, "cnnc %s+0000000other%s", cnn_version(), rest);
    snprintf(older, sizeof older, "cnnc 0.0.1%s", rest);
    cJSON_AddItemToObject(entries, other, cJSON_Duplicate(entries->child, true));
    cJSON_AddItemToObject(entries, older, cJSON_Duplicate(entries->child, true));
    char *out = cJSON_Print(root);
    FILE *f = fopen(tmp("b/tune.json"), "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    cJSON_free(out);
    cJSON_Delete(root);
    /* a session of another thread count measures and writes the cache again */
    cnn_tune_info b = tune_once(m, w, tmp("b/tune.json"), 2, backends, sizeof backends);
    cr_assert(b.tuned && b.measured == b.nodes, "%s", b.note);
    text = test_read_file(tmp("b/tune.json"), &len);
    root = cJSON_Parse(text);
    free(text);
    entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(entries, other), "another build's entry stayed");
    cr_expect_not_null(cJSON_GetObjectItemCaseSensitive(entries, older), "another version's entry was dropped");
    cr_expect_eq(cJSON_GetArraySize(entries), 2 * n + 1, "this build's entries of both thread counts, and the older");
    cJSON_Delete(root);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(tune, corrupt_cache_is_a_warning_and_is_rebuilt)
{
    setenv("CNN_TUNE_FAKE", "native", 1);
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    static const char *const bad[] = {"{not json", "[1, 2]", "{\"version\": 99, \"entries\": {}}",
                                      "{\"version\": 1, \"entries\": {\"x\": {\"backend\": 7}}}", ""};
    char seen[4096];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        FILE *f = fopen(tmp("bad.json"), "w");
        cr_assert_not_null(f);
        fputs(bad[k], f);
        fclose(f);
        cnn_tune_info a = tune_once(m, w, tmp("bad.json"), 1, seen, sizeof seen);
        cr_assert(a.tuned, "%s", a.note);
        cr_assert_eq(a.measured, a.nodes, "case %zu", k);
        if (k < 3)
            cr_assert(strstr(a.note, "was ignored"), "case %zu: note '%s'", k, a.note);
        cnn_tune_info b = tune_once(m, w, tmp("bad.json"), 1, seen, sizeof seen);
        cr_assert_eq(b.measured, 0, "case %zu: the rebuilt cache was not used", k);
        cr_assert_str_empty(b.note);
    }
    /* a folder where the file should be: a warning, never a failure */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp("adir"));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    cnn_tune_info d = tune_once(m, w, dir, 1, seen, sizeof seen);
    cr_assert(d.tuned);
    cr_assert(strstr(d.note, "adir"), "note '%s'", d.note);
    /* a FIFO is neither opened (it would block) nor written */
    snprintf(cmd, sizeof cmd, "mkfifo '%s'", tmp("fifo"));
    cr_assert_eq(system(cmd), 0);
    d = tune_once(m, w, tmp("fifo"), 1, seen, sizeof seen);
    cr_assert(d.tuned);
    cr_assert(strstr(d.note, "not a regular file"), "note '%s'", d.note);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(tune, off_and_other_backends_do_not_tune)
{
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_OFF, tmp("never.json"), 1);
    cnn_session *s = session(m, w, &o, 1, CNN_MODE_INFER);
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(!ti.tuned);
    cr_assert_str_empty(ti.plan);
    cnn_session_destroy(s);
    o = tuned(CNN_TUNE_ON, tmp("never.json"), 1);
    o.backend = CNN_BACKEND_NATIVE;
    s = session(m, w, &o, 1, CNN_MODE_INFER);
    cnn_session_tune_info(s, &ti);
    cr_assert(!ti.tuned);
    cnn_session_destroy(s);
    FILE *f = fopen(tmp("never.json"), "r");
    cr_assert_null(f, "no cache is written when nothing is tuned");
    o = tuned((cnn_tune)7, "none", 1);
    s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 1, CNN_MODE_INFER, NULL), CNN_ERR_USAGE);
    cr_assert(strstr(cnn_session_errmsg(s), "tune"), "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

Test(tune, cli_flag_and_summary)
{
    setenv("CNN_TUNE_FAKE", "native", 1);
    char *out = NULL, args[2048];
    const char *ex = getenv("CNN_EXAMPLES");
    snprintf(args, sizeof args, "%s/lenet5.cnn --tune=bogus", ex ? ex : "examples");
    cr_assert_eq(run_cnnc(&out, args), 2, "%s", out);
    cr_assert(strstr(out, "--tune takes off, on or exhaustive, got 'bogus'"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "%s/lenet5.cnn --tune on --tune-cache '%s' --threads 1", ex ? ex : "examples",
             tmp("s.json"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_assert(strstr(out, "native*"), "%s", out);
    cr_assert(strstr(out, "backends marked * were chosen by measurement"), "%s", out);
    free(out);
    snprintf(args, sizeof args, "run %s/lenet5.cnn --tune on --tune-cache '%s' --threads 1 -q", ex ? ex : "examples",
             tmp("s.json"));
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    free(out);
    /* an unreadable cache is a warning on stderr, and the command succeeds */
    FILE *f = fopen(tmp("s.json"), "w");
    fputs("garbage", f);
    fclose(f);
    cr_assert_eq(run_cnnc(&out, args), 0, "%s", out);
    cr_assert(strstr(out, "warning: the tuning cache"), "%s", out);
    free(out);
}

/* ---- Winograd convolutions (cnn_options.conv_algo, --conv-algo) */

/* 3x3 convolutions of 32 channels with what sits between them in a residual network
 * (batchnorm, the residual add, activations, pooling), in the blocked layout under Winograd */
static const char wino_src[] = "block basic(w) {\n"
                               "    y = in -> conv2d(w, 3, pad=1, bias=false) -> batchnorm -> relu\n"
                               "           -> conv2d(w, 3, pad=1, bias=false) -> batchnorm;\n"
                               "    return (y + in) -> relu;\n"
                               "}\n"
                               "network w {\n"
                               "    input image[32, 12, 12];\n"
                               "    output logits = image -> conv2d(32, 3, pad=1) -> relu -> basic(32)\n"
                               "        -> conv2d(32, 3, pad=1) -> relu -> maxpool(2)\n"
                               "        -> global_avgpool -> dense(10);\n"
                               "}\n";

static cnn_session *wino_session(cnn_model *m, cnn_weights *w, cnn_conv_algo algo, cnn_tune tune, cnn_mode mode)
{
    cnn_options o;
    cnn_options_default(&o);
    o.conv_algo = algo;
    o.tune = tune;
    o.tune_cache = "none";
    o.threads = 2;
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 4, mode, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    float *x = cnn_session_input(s, 0);
    for (int64_t i = 0; i < 4 * 32 * 12 * 12; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    return s;
}

/* Whether the summary of these options shows a convolution computed by Winograd.  oneDNN's
 * (auto's first backend, when the build has it) keep the layers between them blocked; the native
 * ones run channels-last. */
static bool summary_says_winograd(cnn_model *m, cnn_conv_algo algo, bool training)
{
    cnn_options o;
    cnn_options_default(&o);
    o.conv_algo = algo;
    char *text = NULL;
    cr_assert_eq(cnn_model_summary(m, &o, 64, training, &text), CNN_OK);
    bool yes = strstr(text, "fp32 winograd") != NULL;
    bool dnn = op_kernel_get(OP_CONV2D, OP_BACKEND_ONEDNN) != NULL;
    if (yes && dnn) /* the layers between the Winograd convolutions stay blocked */
        cr_assert(strstr(text, "tensors blocked (nChw16c"), "%s", text);
    if (yes && dnn && !training) /* the one reorder: the image, into the blocked layout */
        cr_assert(strstr(text, "layout: 0 tensors channels-last, 1 reorders"), "%s", text);
    if (yes && !dnn)
        cr_assert(!strstr(text, "blocked (nChw16c"), "%s", text);
    cnn_free(text);
    return yes;
}

/* Winograd everywhere, auto's rule and auto by measurement compute what direct convolution does,
 * in inference and in training steps (weights after two SGD steps); the summary says which
 * layers use it. */
Test(tune, winograd_agrees_with_direct)
{
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "w.cnn", wino_src, sizeof wino_src - 1, NULL), CNN_OK, "%s",
                 cnn_model_errmsg(m));
    op_caps caps;
    op_kernel_caps(&caps);
    /* (auto's backend for the convolutions: oneDNN, else native) */
    bool have = op_kernel_get(OP_CONV2D, OP_BACKEND_ONEDNN) ? caps.winograd[OP_CONV2D][OP_BACKEND_ONEDNN]
                                                             : caps.winograd[OP_CONV2D][OP_BACKEND_NATIVE];
    cr_assert_eq(summary_says_winograd(m, CNN_CONV_ALGO_WINOGRAD, false), have);
    cr_assert_eq(summary_says_winograd(m, CNN_CONV_ALGO_WINOGRAD, true), have);
    cr_assert(!summary_says_winograd(m, CNN_CONV_ALGO_DIRECT, false));
    cr_assert(!summary_says_winograd(m, CNN_CONV_ALGO_DEFAULT, false));
    static const cnn_conv_algo algos[] = {CNN_CONV_ALGO_WINOGRAD, CNN_CONV_ALGO_AUTO, CNN_CONV_ALGO_DEFAULT};
    static const cnn_tune tunes[] = {CNN_TUNE_OFF, CNN_TUNE_OFF, CNN_TUNE_ON};
    for (int k = 0; k < 3; k++) {
        cnn_weights *w1 = NULL, *w2 = NULL;
        cr_assert_eq(cnn_weights_create(&w1, m, 11), CNN_OK);
        cr_assert_eq(cnn_weights_create(&w2, m, 11), CNN_OK);
        cnn_session *d = wino_session(m, w1, CNN_CONV_ALGO_DIRECT, CNN_TUNE_OFF, CNN_MODE_INFER);
        cnn_session *s = wino_session(m, w2, algos[k], tunes[k], CNN_MODE_INFER);
        cr_assert_eq(cnn_session_run(d), CNN_OK);
        cr_assert_eq(cnn_session_run(s), CNN_OK, "%s", cnn_session_errmsg(s));
        const float *a = cnn_session_output(s, 0), *b = cnn_session_output(d, 0);
        for (int i = 0; i < 4 * 10; i++)
            cr_assert_float_eq(a[i], b[i], 1e-4f + 1e-4f * fabsf(b[i]), "algo %d output %d: %g vs %g", k, i, a[i],
                               b[i]);
        cnn_session_destroy(d);
        cnn_session_destroy(s);
        d = wino_session(m, w1, CNN_CONV_ALGO_DIRECT, CNN_TUNE_OFF, CNN_MODE_TRAIN);
        s = wino_session(m, w2, algos[k], tunes[k], CNN_MODE_TRAIN);
        float labels[4] = {1, 3, 5, 7};
        for (int step = 0; step < 2; step++) {
            float la, lb;
            cr_assert_eq(cnn_session_train_step(s, labels, true, &la, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
            cr_assert_eq(cnn_session_train_step(d, labels, true, &lb, NULL), CNN_OK);
            cr_assert_float_eq(la, lb, 1e-4f * fabsf(lb) + 1e-5f, "algo %d step %d: loss %g vs %g", k, step, la, lb);
        }
        for (int t = 0; t < cnn_weights_count(w1); t++) {
            const char *name;
            int rank;
            int64_t dims[CNN_WEIGHT_MAX_RANK];
            float *p1 = cnn_weights_tensor(w1, t, &name, &rank, dims), *p2 = cnn_weights_tensor(w2, t, &name, &rank, dims);
            int64_t n = 1;
            for (int r = 0; r < rank; r++)
                n *= dims[r];
            for (int64_t i = 0; i < n; i++)
                cr_assert_float_eq(p2[i], p1[i], 1e-4f + 1e-4f * fabsf(p1[i]), "algo %d %s[%lld]: %g vs %g", k, name,
                                   (long long)i, p2[i], p1[i]);
        }
        cnn_session_destroy(d);
        cnn_session_destroy(s);
        cnn_weights_destroy(w1);
        cnn_weights_destroy(w2);
    }
    cnn_model_destroy(m);
}

Test(tune, conv_algo_bad_values)
{
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    o.conv_algo = (cnn_conv_algo)17;
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 1, CNN_MODE_INFER, NULL), CNN_ERR_USAGE);
    cr_assert(strstr(cnn_session_errmsg(s), "conv_algo must be"), "%s", cnn_session_errmsg(s));
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    char *out = NULL, args[2048];
    const char *ex = getenv("CNN_EXAMPLES");
    snprintf(args, sizeof args, "%s/lenet5.cnn --conv-algo fast", ex ? ex : "examples");
    cr_assert_eq(run_cnnc(&out, args), 2, "%s", out);
    cr_assert(strstr(out, "--conv-algo takes direct, winograd or auto, got 'fast'"), "%s", out);
    free(out);
}

/* Tuning with Winograd as a candidate (oneDNN's, and native's where it has it): every 3x3
 * convolution's entry in the cache says which algorithm was kept (and nothing else's does), and
 * a second session takes all its choices from the cache. */
Test(tune, winograd_choices_are_cached)
{
    op_caps caps;
    op_kernel_caps(&caps);
    if (!caps.winograd[OP_CONV2D][OP_BACKEND_ONEDNN])
        cr_skip_test("no Winograd convolutions on this build or CPU");
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "w.cnn", wino_src, sizeof wino_src - 1, NULL), CNN_OK, "%s",
                 cnn_model_errmsg(m));
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_options o;
    cnn_options_default(&o);
    o.tune = CNN_TUNE_ON;
    o.tune_cache = tmp("wino.json");
    o.threads = 1;
    cnn_session *s = NULL;
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 2, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cnn_tune_info ti;
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned && ti.measured == ti.nodes, "%s", ti.note);
    cnn_session_destroy(s);
    size_t len = 0;
    char *json = test_read_file(tmp("wino.json"), &len);
    cr_assert_not_null(json);
    int n = 0, convs = 0; /* (identical layers share an entry) */
    for (const char *p = json; (p = strstr(p, "\"algorithm\"")); p++)
        n++;
    for (const char *p = json; (p = strstr(p, "|conv2d|")); p++)
        convs++;
    cr_assert(convs >= 2 && n == convs, "%d convolution entries, %d with an algorithm:\n%s", convs, n, json);
    /* every backend with Winograd convolutions is a candidate of its own */
    if (caps.winograd[OP_CONV2D][OP_BACKEND_NATIVE])
        cr_assert(strstr(json, "\"native+winograd\""), "%s", json);
    cr_assert(strstr(json, "\"onednn+winograd\""), "%s", json);
    free(json);
    cr_assert_eq(cnn_session_create(&s, m, w, &o, 2, CNN_MODE_INFER, NULL), CNN_OK);
    cnn_session_tune_info(s, &ti);
    cr_assert(ti.tuned && ti.cached == ti.nodes && ti.measured == 0, "%d cached of %d", ti.cached, ti.nodes);
    cr_assert_eq(cnn_session_run(s), CNN_OK);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

static const char *layout_of(const cnn_session *s, const char *name)
{
    cnn_profile_entry e;
    return step_named(s, name, &e) ? e.layout : NULL;
}

/* Untuned auto runs a first layer over one channel (LeNet-5's) where the kernels that say they
 * are fast there are (op_caps.first_layer: native, on a machine with AVX-512), forward and
 * weight gradient, and that layer's backward on plain tensors: its pool input, read by
 * maxpool_bwd, is 4 times the pooled gradient, which is reordered instead.  The backward to the
 * data of few channels likewise (op_caps.few_channels). */
Test(tune, grey_first_layer_runs_natively)
{
    op_caps caps;
    op_kernel_caps(&caps);
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_OFF, "none", 1);
    cnn_session *s = session(m, w, &o, 4, CNN_MODE_TRAIN);
    bool first = caps.first_layer[OP_CONV2D][OP_BACKEND_NATIVE];
    const char *other = op_kernel_get(OP_CONV2D, OP_BACKEND_ONEDNN) ? "onednn" : "native";
    cr_assert_str_eq(backend_of(s, "conv2d_1"), first ? "native" : other);
    cr_assert_str_eq(backend_of(s, "conv2d_1.bwd_weights"), first ? "native" : other);
    /* and conv2d_2's backward to its 6 channels by outer products (op_caps.few_channels) */
    bool few = caps.few_channels[OP_CONV_BWD_DATA][OP_BACKEND_NATIVE];
    cr_assert_str_eq(backend_of(s, "conv2d_2.bwd_data"), few ? "native" : other);
    if (first) {
        cr_assert_str_eq(layout_of(s, "maxpool_1.bwd"), "nchw");
        cr_assert_str_eq(layout_of(s, "conv2d_1.bwd_weights"), "nchw");
    }
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* Untuned auto runs max pooling's backward on few channels (LeNet-5's 6 and 16) where the kernel
 * that says it is fast there is (native); the forward pooling runs in the convolution before it
 * (kept input), conv2d_2's on the fixed order's backend; a chosen backend keeps it. */
Test(tune, few_channel_pooling_backward_runs_natively)
{
    cnn_model *m = lenet();
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cnn_options o = tuned(CNN_TUNE_OFF, "none", 1);
    cnn_session *s = session(m, w, &o, 4, CNN_MODE_TRAIN);
    cr_assert_str_eq(backend_of(s, "maxpool_1.bwd"), "native");
    cr_assert_str_eq(backend_of(s, "maxpool_2.bwd"), "native");
    const char *first = op_kernel_get(OP_CONV2D, OP_BACKEND_ONEDNN) ? "onednn" : "native";
    cr_assert_null(backend_of(s, "maxpool_1"), "the pooling is fused into conv2d_1");
    cr_assert_str_eq(backend_of(s, "conv2d_2"), first);
    cnn_session_destroy(s);
    if (op_kernel_get(OP_MAXPOOL_BWD, OP_BACKEND_ONEDNN)) {
        o.backend = CNN_BACKEND_ONEDNN;
        s = session(m, w, &o, 4, CNN_MODE_TRAIN);
        cr_assert_str_eq(backend_of(s, "maxpool_1.bwd"), "onednn");
        cnn_session_destroy(s);
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}
