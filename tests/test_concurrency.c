/* Sessions sharing one model and one weights object across threads (spec section 11): inference
 * sessions run at the same time with outputs bitwise equal to single-threaded references; a
 * training step never overlaps another session's run on the same weights (the conflicting call
 * fails with a message); every handle's message is its own; weights load from memory as from a
 * file, with the same messages.  Run under ThreadSanitizer as docs/commands.md says. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/file_util.h"
#include "runtime/cnn.h"
#include "runtime/rt.h" /* rt_weights_claim_*: a writer or reader "on another thread", on cue */
#include "tests/concurrency_util.h"

enum { BATCH = CU_BATCH };

static int lenet_runs(void) { return 200; }
static int resnet_runs(void) { return cu_quick() ? 20 : 50; }
/* the reference kernels are slow on resnet20 (about 0.15 s a run on one thread) */
static int resnet_ref_runs(void) { return cu_quick() ? 5 : 20; }

static void shared(const char *file, cnn_backend b, int runs)
{
    char msg[1024];
    cr_assert_eq(cu_shared_inference(file, b, runs, msg, sizeof msg), 0, "%s", msg);
}

Test(concurrency, lenet5_ref, .timeout = 600) { shared("lenet5.cnn", CNN_BACKEND_REF, lenet_runs()); }
Test(concurrency, lenet5_native, .timeout = 600) { shared("lenet5.cnn", CNN_BACKEND_NATIVE, lenet_runs()); }
Test(concurrency, lenet5_onednn, .timeout = 600) { shared("lenet5.cnn", CNN_BACKEND_ONEDNN, lenet_runs()); }
Test(concurrency, lenet5_auto, .timeout = 600) { shared("lenet5.cnn", CNN_BACKEND_AUTO, lenet_runs()); }
Test(concurrency, resnet20_ref, .timeout = 600) { shared("resnet20.cnn", CNN_BACKEND_REF, resnet_ref_runs()); }
Test(concurrency, resnet20_native, .timeout = 600) { shared("resnet20.cnn", CNN_BACKEND_NATIVE, resnet_runs()); }
Test(concurrency, resnet20_onednn, .timeout = 600) { shared("resnet20.cnn", CNN_BACKEND_ONEDNN, resnet_runs()); }

/* ---- training beside inference ---- */

static cnn_model *cu_load_example_or_fail(const char *file)
{
    char msg[1024];
    cnn_model *m = cu_load_example(file, msg, sizeof msg);
    cr_assert_not_null(m, "%s", msg);
    return m;
}

static const float *first_tensor(cnn_weights *w, int64_t *n)
{
    int rank;
    int64_t d[CNN_WEIGHT_MAX_RANK];
    const float *p = cnn_weights_tensor(w, 0, NULL, &rank, d);
    *n = 1;
    for (int k = 0; k < rank; k++)
        *n *= d[k];
    return p;
}

/* With a writer on the weights (as a training step on another thread), inference runs, saves
 * and loads fail with a message and change nothing; with a reader on them (an inference run),
 * a training step and a load fail and change nothing; once released, all is well again. */
Test(concurrency, writers_and_readers_exclude)
{
    cnn_model *m = cu_load_example_or_fail("lenet5.cnn");
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 3), CNN_OK);
    cnn_options o;
    cu_options(&o, CNN_BACKEND_REF);
    cnn_session *inf = NULL, *tr = NULL;
    cr_assert_eq(cnn_session_create(&inf, m, w, &o, BATCH, CNN_MODE_INFER, NULL), CNN_OK, "%s", cnn_session_errmsg(inf));
    cr_assert_eq(cnn_session_create(&tr, m, w, &o, BATCH, CNN_MODE_TRAIN, NULL), CNN_OK, "%s", cnn_session_errmsg(tr));
    cu_fill_input(cnn_session_input(inf, 0), 28 * 28 * BATCH, 0);
    cu_fill_input(cnn_session_input(tr, 0), 28 * 28 * BATCH, 0);
    float labels[BATCH] = {1, 2, 3};
    char path[] = "/tmp/cnnc-share-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(cnn_weights_save(w, path), CNN_OK, "%s", cnn_weights_errmsg(w));

    int64_t n;
    const float *t0 = first_tensor(w, &n);
    float *before = malloc(sizeof(float) * (size_t)n);
    memcpy(before, t0, sizeof(float) * (size_t)n);

    cr_assert(rt_weights_claim_write(w)); /* a training step is running */
    cr_expect_eq(cnn_session_run(inf), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(inf), "the weights are being written"), "%s", cnn_session_errmsg(inf));
    cr_expect_eq(cnn_session_train_step(tr, labels, true, NULL, NULL), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(tr), "needs them to itself"), "%s", cnn_session_errmsg(tr));
    cr_expect_eq(cnn_weights_save(w, path), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_weights_errmsg(w), "being written by a training step"), "%s", cnn_weights_errmsg(w));
    cr_expect_eq(cnn_weights_load(w, path, false), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_weights_errmsg(w), "in use by a session running on another thread"), "%s", cnn_weights_errmsg(w));
    rt_weights_release_write(w);

    cr_assert(rt_weights_claim_read(w)); /* an inference run is running */
    cr_assert(rt_weights_claim_read(w)); /* and another */
    cr_expect_eq(cnn_session_run(inf), CNN_OK, "%s", cnn_session_errmsg(inf));
    cr_expect_eq(cnn_session_train_step(tr, labels, true, NULL, NULL), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_session_errmsg(tr), "in use by another session"), "%s", cnn_session_errmsg(tr));
    cr_expect_eq(memcmp(first_tensor(w, &n), before, sizeof(float) * (size_t)n), 0, "a refused step changed the weights");
    cr_expect_eq(cnn_weights_save(w, path), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_expect_eq(cnn_weights_load(w, path, false), CNN_ERR_USAGE);
    rt_weights_release_read(w);
    rt_weights_release_read(w);

    float loss;
    cr_expect_eq(cnn_session_train_step(tr, labels, true, &loss, NULL), CNN_OK, "%s", cnn_session_errmsg(tr));
    cr_expect_neq(memcmp(first_tensor(w, &n), before, sizeof(float) * (size_t)n), 0, "the step changed nothing");
    cr_expect_eq(cnn_session_run(inf), CNN_OK, "%s", cnn_session_errmsg(inf));
    cr_expect_eq(cnn_weights_load(w, path, false), CNN_OK, "%s", cnn_weights_errmsg(w));
    cr_expect_eq(memcmp(first_tensor(w, &n), before, sizeof(float) * (size_t)n), 0);
    unlink(path);
    free(before);
    cnn_session_destroy(inf);
    cnn_session_destroy(tr);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
}

/* A training session and three inference sessions on one weights object, all running at once:
 * every call either runs or is refused with the message, never races (TSan) or fails otherwise. */
Test(concurrency, training_beside_inference, .timeout = 600)
{
    char msg[1024];
    cr_assert_eq(cu_training_beside_inference(cu_quick() ? 30 : 100, msg, sizeof msg), 0, "%s", msg);
}

/* Every handle keeps its own message: failures on several threads at once, each checked. */
Test(concurrency, messages_are_per_handle)
{
    char msg[1024];
    cr_assert_eq(cu_messages_per_handle(msg, sizeof msg), 0, "%s", msg);
}

/* ---- weights from memory ---- */

static void write_all(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* The message after "WHERE: " (the path or "<memory>"). */
static const char *after_where(const char *msg, const char *where)
{
    size_t k = strlen(where);
    cr_assert(strncmp(msg, where, k) == 0 && msg[k] == ':', "%s does not start with %s:", msg, where);
    return msg + k + 1;
}

Test(weights_memory, equals_the_file_and_fails_alike)
{
    cnn_model *m = cu_load_example_or_fail("lenet5.cnn");
    cnn_weights *src = NULL, *a = NULL, *b = NULL;
    cr_assert_eq(cnn_weights_create(&src, m, 11), CNN_OK);
    cr_assert_eq(cnn_weights_create(&a, m, 1), CNN_OK);
    cr_assert_eq(cnn_weights_create(&b, m, 2), CNN_OK);
    char path[] = "/tmp/cnnc-mem-XXXXXX", bad[] = "/tmp/cnnc-memb-XXXXXX";
    int fd = mkstemp(path), fd2 = mkstemp(bad);
    cr_assert(fd >= 0 && fd2 >= 0);
    close(fd), close(fd2);
    cr_assert_eq(cnn_weights_save(src, path), CNN_OK, "%s", cnn_weights_errmsg(src));
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);

    cr_assert_eq(cnn_weights_load(a, path, false), CNN_OK, "%s", cnn_weights_errmsg(a));
    cr_assert_eq(cnn_weights_load_memory(b, bytes, len, false), CNN_OK, "%s", cnn_weights_errmsg(b));
    for (int i = 0; i < cnn_weights_count(src); i++) {
        int rank;
        int64_t d[CNN_WEIGHT_MAX_RANK], n = 1;
        const float *ps = cnn_weights_tensor(src, i, NULL, &rank, d);
        for (int k = 0; k < rank; k++)
            n *= d[k];
        cr_expect_eq(memcmp(cnn_weights_tensor(a, i, NULL, NULL, NULL), ps, sizeof(float) * (size_t)n), 0);
        cr_expect_eq(memcmp(cnn_weights_tensor(b, i, NULL, NULL, NULL), ps, sizeof(float) * (size_t)n), 0);
    }

    /* truncations and corruptions: the same status and message from the file and the bytes */
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | bytes[i];
    size_t cuts[] = {0, 3, 8, 9, 8 + (size_t)hlen / 2, 8 + (size_t)hlen, 8 + (size_t)hlen + 5, len - 4};
    unsigned char *mod = malloc(len);
    int cases = 0;
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0] + 4; c++) {
        size_t n = len;
        memcpy(mod, bytes, len);
        if (c < sizeof cuts / sizeof cuts[0])
            n = cuts[c];
        else if (c == sizeof cuts / sizeof cuts[0])
            mod[8] = 'x';                       /* not JSON */
        else if (c == sizeof cuts / sizeof cuts[0] + 1)
            mod[7] = 0x7f;                      /* an absurd header length */
        else if (c == sizeof cuts / sizeof cuts[0] + 2)
            memcpy(strstr((char *)mod + 8, "F32"), "F16", 3);
        else
            memcpy(mod + 8 + hlen, "\0\0\xc0\x7f", 4); /* a NaN in the data */
        write_all(bad, mod, n);
        cnn_status sf = cnn_weights_load(a, bad, false);
        cnn_status sm = cnn_weights_load_memory(b, mod, n, false);
        cr_expect_neq(sf, CNN_OK, "case %zu loaded", c);
        cr_expect_eq(sf, sm, "case %zu: file %d, memory %d", c, sf, sm);
        char fmsg[RT_ERR_MAX];
        snprintf(fmsg, sizeof fmsg, "%s", after_where(cnn_weights_errmsg(a), bad));
        cr_expect_str_eq(after_where(cnn_weights_errmsg(b), "<memory>"), fmsg, "case %zu", c);
        cases++;
    }
    cr_expect_eq(cases, 12);
    /* a failed load left them as they were */
    cr_expect_eq(memcmp(cnn_weights_tensor(b, 0, NULL, NULL, NULL), cnn_weights_tensor(src, 0, NULL, NULL, NULL),
                        sizeof(float) * 6), 0);
    cr_expect_eq(cnn_weights_load_memory(b, NULL, 16, false), CNN_ERR_USAGE);
    cr_expect(strstr(cnn_weights_errmsg(b), "<memory>: no data"), "%s", cnn_weights_errmsg(b));
    unlink(path);
    unlink(bad);
    free(mod);
    free(bytes);
    cnn_weights_destroy(src);
    cnn_weights_destroy(a);
    cnn_weights_destroy(b);
    cnn_model_destroy(m);
}
