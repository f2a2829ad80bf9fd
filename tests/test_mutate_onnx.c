/* Deterministic mutation test of the ONNX reader: 10,000 mutants (more with CNN_MUTANTS) of two
 * small fixtures (signal1d.onnx: Conv1d, batchnorm, Pad, pools, MatMul; lenet5's structure: the
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain) made by a seeded xorshift: bit flips,
 * bytes set to 0, 0xff or random, small varint changes, insertions, deletions, truncations and
 * block duplications, most of them in the graph's structure rather than its weight bytes.
 * Every mutant goes through cnn_model_load_onnx_memory and must give CNN_OK or CNN_ERR_INPUT
 * with a message naming the file; an accepted model is then run once at batch 1.  A crash fails
 * the test, the sanitizer build any memory error or leak.  --verbose prints the counts. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"
#include "tests/file_util.h"

static int mutants(void)
{
    const char *n = getenv("CNN_MUTANTS");
    return n && atoi(n) > 10000 ? atoi(n) : 10000;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *s = x;
}

static const char *fx(const char *name)
{
    static char buf[1024];
    const char *d = getenv("CNN_FIXTURES");
    snprintf(buf, sizeof buf, "%s/onnx/%s", d ? d : "tests/fixtures", name);
    return buf;
}

/* One mutant of seed (len bytes) into out (room for 2 * len + 64); its length. */
static size_t mutate(const unsigned char *seed, size_t len, unsigned char *out, uint64_t *s, size_t structure)
{
    memcpy(out, seed, len);
    size_t n = len;
    int edits = 1 + (int)(rng(s) % 3);
    for (int e = 0; e < edits && n > 0; e++) {
        /* three in four edits land in the structure (nodes, attributes, names), before the weights */
        size_t span = rng(s) % 4 ? (structure < n ? structure : n) : n;
        size_t at = rng(s) % span;
        switch (rng(s) % 9) {
        case 0: out[at] ^= (unsigned char)(1u << (rng(s) % 8)); break;
        case 1: out[at] = 0; break;
        case 2: out[at] = 0xff; break;
        case 3: out[at] = (unsigned char)rng(s); break;
        case 4: out[at] = (unsigned char)(out[at] + (rng(s) % 2 ? 1 : -1)); break; /* a length or a value by one */
        case 5: /* insert a byte */
            memmove(out + at + 1, out + at, n - at);
            out[at] = (unsigned char)rng(s);
            n++;
            break;
        case 6: /* delete up to 8 bytes */ {
            size_t k = 1 + rng(s) % 8;
            if (at + k > n)
                k = n - at;
            memmove(out + at, out + at + k, n - at - k);
            n -= k;
            break;
        }
        case 7: /* truncate */ n = at; break;
        case 8: /* duplicate a block of up to 32 bytes */ {
            size_t k = 1 + rng(s) % 32;
            if (at + k > n)
                k = n - at;
            if (n + k <= 2 * len + 64) {
                memmove(out + at + k, out + at, n - at);
                n += k;
            }
            break;
        }
        }
    }
    return n;
}

/* Loads the bytes; on success runs the model once.  Returns the status. */
static cnn_status try_model(const unsigned char *data, size_t n)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_load_onnx_memory(&m, "mutant.onnx", data, n, NULL);
    cr_assert(st == CNN_OK || st == CNN_ERR_INPUT, "status %d: %s", st, m ? cnn_model_errmsg(m) : "");
    if (st != CNN_OK) {
        const char *msg = cnn_model_errmsg(m);
        cr_assert(strstr(msg, "mutant.onnx") != NULL, "a message without the file: %s", msg);
        cnn_model_destroy(m);
        return st;
    }
    cnn_weights *w;
    if (cnn_weights_create(&w, m, 0) == CNN_OK) {
        cnn_session *s;
        if (cnn_session_create(&s, m, w, NULL, 1, CNN_MODE_INFER, NULL) == CNN_OK) {
            int64_t dims[4];
            int r = cnn_model_input_shape(m, 0, dims);
            int64_t per = 1;
            for (int k = 0; k < r; k++)
                per *= dims[k];
            if (per < (1 << 20)) {
                memset(cnn_session_input(s, 0), 0, sizeof(float) * (size_t)per);
                cnn_session_run(s);
            }
        }
        cnn_session_destroy(s);
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return st;
}

static void hunt(const char *name, size_t structure, uint64_t seed_state)
{
    size_t len;
    unsigned char *seed = test_file_bytes(fx(name), &len);
    cr_assert_not_null(seed, "cannot read %s", fx(name));
    cr_assert_eq(try_model(seed, len), CNN_OK, "the seed %s must load", name);
    unsigned char *buf = malloc(2 * len + 64);
    uint64_t s = seed_state;
    int total = mutants() / 2, ok = 0, refused = 0;
    for (int i = 0; i < total; i++) {
        size_t n = mutate(seed, len, buf, &s, structure);
        if (try_model(buf, n) == CNN_OK)
            ok++;
        else
            refused++;
    }
    cr_log_info("mutate_onnx %s: %d mutants, %d loaded and ran, %d refused with a message", name, total, ok, refused);
    free(buf);
    free(seed);
}

Test(mutate_onnx, signal1d) { hunt("signal1d.onnx", 1400, 0x243f6a8885a308d3ULL); }

/* lenet5.onnx without most of its weight bytes would not load; its first 3 KB (the nodes and
 * the constant chain) are where the mutations go */
Test(mutate_onnx, lenet5) { hunt("lenet5.onnx", 3000, 0x13198a2e03707344ULL); }
