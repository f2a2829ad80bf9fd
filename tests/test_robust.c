/* No input crashes the compiler: every prefix of every example and fixture source, random
 * bytes, random token soups and single-byte mutations go through the whole front of the
 * pipeline (parse, sema, graph build, passes, plan); each either compiles or reports errors
 * with a file:line:col message.  Run under the sanitizer build by scripts/test.sh. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/file_util.h"
#include "runtime/cnn.h"

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

static int compiled_ok;

/* Compiles src; when it compiles, also plans it (summary) for inference and training. */
static void compile_one(const char *src, size_t len, bool plan)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_compile(&m, "fuzz.cnn", src, len, NULL);
    cr_assert_not_null(m);
    if (st == CNN_OK) {
        compiled_ok++;
        cr_assert_not_null(cnn_model_errmsg(m));
        if (plan) {
            char *text = NULL;
            cnn_options o;
            cnn_options_default(&o);
            if (cnn_model_summary(m, &o, 2, true, &text) == CNN_OK)
                cnn_free(text);
        }
    } else {
        const char *msg = cnn_model_errmsg(m);
        cr_assert(strstr(msg, "error") != NULL, "status %d without an error message: %s", st, msg);
    }
    cnn_model_destroy(m);
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static const char *sources[] = {"lenet5", "vgg_small", "resnet20", "alexnet", "vgg16", "resnet18", "signal1d"};

Test(robust, every_prefix_of_every_example, .timeout = 600)
{
    const char *dir = getenv("CNN_EXAMPLES");
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cnn", dir ? dir : "examples", sources[i]);
        size_t len;
        char *src = test_read_file(path, &len);
        size_t step = quick() ? 7 : 1;
        for (size_t n = 0; n <= len; n += step)
            compile_one(src, n, n == len || n % 97 == 0);
        compile_one(src, len, true);
        free(src);
    }
    cr_expect_geq(compiled_ok, 7, "the complete examples compile (%d did)", compiled_ok);
}

Test(robust, random_bytes_and_token_soups, .timeout = 600)
{
    uint64_t s = 0x1234567ULL;
    int rounds = quick() ? 300 : 2000;
    char buf[512];
    for (int r = 0; r < rounds; r++) {
        size_t n = next_random(&s) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(next_random(&s) & 0xff);
        compile_one(buf, n, false);
    }
    static const char *tokens[] = {"network", "block", "train", "input", "output", "return", "in", "true", "false",
                                   "x", "y", "conv2d", "conv1d", "maxpool", "avgpool", "dense", "relu", "batchnorm",
                                   "concat", "flatten", "softmax", "global_avgpool", "dropout", "{", "}", "(", ")",
                                   "[", "]", ",", ";", "=", "->", "+", "-", "*", "/", "0", "1", "3", "28", "0.5",
                                   "\"same\"", "pad", "stride", "groups", "dilation", "#c\n", "\n", "1e9", "-7"};
    size_t nt = sizeof tokens / sizeof tokens[0];
    for (int r = 0; r < rounds; r++) {
        size_t len = 0, count = next_random(&s) % 80;
        for (size_t i = 0; i < count; i++) {
            const char *t = tokens[next_random(&s) % nt];
            size_t tl = strlen(t);
            if (len + tl + 1 >= sizeof buf)
                break;
            memcpy(buf + len, t, tl);
            len += tl;
            buf[len++] = ' ';
        }
        compile_one(buf, len, true);
    }
}

Test(robust, mutated_examples, .timeout = 600)
{
    const char *dir = getenv("CNN_EXAMPLES");
    uint64_t s = 0xfeedULL;
    static const char repl[] = "0129-+*/(){}[];,=>x\"#\n ";
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cnn", dir ? dir : "examples", sources[i]);
        size_t len;
        char *src = test_read_file(path, &len);
        int rounds = quick() ? 40 : 300;
        for (int r = 0; r < rounds; r++) {
            char *copy = malloc(len + 1);
            memcpy(copy, src, len);
            int edits = 1 + (int)(next_random(&s) % 3);
            for (int k = 0; k < edits; k++) {
                size_t at = next_random(&s) % len;
                copy[at] = repl[next_random(&s) % (sizeof repl - 1)];
            }
            compile_one(copy, len, true);
            free(copy);
        }
        free(src);
    }
}
