/* Deterministic mutation tests, one per reader of hostile input: .cnn sources, safetensors
 * weights, .npy tensors and IDX data folders (plain and gzip).  Each feeds at least 10,000
 * mutants of a valid seed, in the sanitizer build too, made by a seeded xorshift: bit flips,
 * bytes set to 0, 0xff or random, insertions, deletions, truncations (at every length for small
 * seeds), block duplications, and mutations that know the format (header lengths, shape dims
 * near INT64_MAX, dtype strings, byte offsets past the end, IDX counts and sides).  Every
 * mutant must give CNN_OK or an error status with a message; a crash fails the test (Criterion
 * catches the signal), a hang its timeout, and the sanitizer build any memory error, undefined
 * behaviour or leak.  Run with --verbose to see the counts. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/file_util.h"
#include "runtime/cnn.h"
#include "tests/mutate_util.h"




/* ---- a temporary folder per test ---- */

static char tmpdir[1024];

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static void enter_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnc-mutate-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

static void leave_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(mutate, .init = enter_tmpdir, .fini = leave_tmpdir);

static void spill(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void spill_gz(const char *path, const void *data, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    cr_assert_not_null(gz, "cannot create %s", path);
    cr_assert_eq(gzwrite(gz, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(gz), Z_OK);
}

/* ---- the mutator ---- */


/* Numbers a reader must take apart: zero, negatives, the edges of int32, int64 and uint64,
 * products that overflow, JSON's exact-integer edge, floats, garbage. */
static const char *const numbers[] = {
    "0", "1", "-1", "2", "7", "28", "255", "256", "65535", "65536", "2147483647", "2147483648",
    "-2147483648", "4294967295", "4294967296", "3037000500", "4611686018427387904",
    "9223372036854775806", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "18446744073709551615", "18446744073709551616", "99999999999999999999999999",
    "9007199254740992", "9007199254740993", "1e308", "1e309", "-0", "0.5", "1.0", "3e2", "NaN",
    "inf", "0x10", "00", "1_0", "",
};

/* Strings for quoted spans: dtypes, keys, names, escapes. */
static const char *const strings[] = {
    "F32", "F16", "F64", "BF16", "I64", "I32", "U8", "BOOL", "f32", "F3", "F32 ", "",
    "<f4", ">f4", "|f4", "<f8", "<i4", "f4", "<f2", "<f4\\x00", "O", "<U4",
    "dtype", "shape", "data_offsets", "descr", "fortran_order", "__metadata__",
    "conv2d_1.weight", "conv2d_1.bias", "dense_1.weight", "0.weight",
    "\\u0000", "\\ud800", "\\", "a\\\"b", "\\n", "same", "valid",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
};

/* Words for identifier spans: the language's keywords and layers, Python's constants. */
static const char *const words[] = {
    "network", "block", "train", "input", "output", "return", "in", "true", "false", "True",
    "False", "None", "x", "image", "logits", "conv2d", "conv1d", "conv3d", "maxpool", "avgpool",
    "dense", "relu", "batchnorm", "concat", "flatten", "softmax", "global_avgpool", "dropout",
    "add", "pad", "stride", "groups", "dilation", "loss", "optimizer", "lr", "batch", "epochs",
    "sgd", "adam", "mse", "cross_entropy", "_", "a",
};

static const char structural[] = "[]{}(),:;\"'=->#\n 0-.";

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || is_digit(c);
}

/* Finds, from a random place in [lo, hi), the next span of class k (0 number, 1 quoted, 2 word),
 * wrapping around once; returns 0 when there is none. */
static int find_span(const buf *b, size_t lo, size_t hi, int k, uint64_t *s, size_t *at, size_t *n)
{
    if (hi > b->len)
        hi = b->len;
    if (lo >= hi)
        return 0;
    size_t start = lo + below(s, hi - lo);
    for (size_t step = 0; step < hi - lo; step++) {
        size_t i = lo + (start - lo + step) % (hi - lo);
        unsigned char c = b->p[i];
        if (k == 0 && is_digit(c) && (i == lo || !is_digit(b->p[i - 1]))) {
            size_t j = i;
            while (j < hi && is_digit(b->p[j]))
                j++;
            *at = i, *n = j - i;
            return 1;
        }
        if (k == 1 && (c == '"' || c == '\'')) {
            size_t j = i + 1;
            while (j < hi && b->p[j] != c)
                j++;
            if (j < hi) {
                *at = i + 1, *n = j - i - 1;
                return 1;
            }
        }
        if (k == 2 && is_word(c) && !is_digit(c) && (i == lo || !is_word(b->p[i - 1]))) {
            size_t j = i;
            while (j < hi && is_word(b->p[j]))
                j++;
            *at = i, *n = j - i;
            return 1;
        }
    }
    return 0;
}

static int replace_span(buf *b, size_t lo, size_t hi, int k, const char *const *list, size_t nlist,
                        uint64_t *s)
{
    size_t at, n;
    if (!find_span(b, lo, hi, k, s, &at, &n))
        return 0;
    const char *w = list[below(s, nlist)];
    splice(b, at, n, w, strlen(w));
    return 1;
}

/* A textual mutation of [lo, hi): a number, a quoted string or a word replaced, or a structural
 * character put in place of one byte. */
static int text_mutation(buf *b, size_t lo, size_t hi, uint64_t *s)
{
    switch (below(s, 4)) {
    case 0:
        return replace_span(b, lo, hi, 0, numbers, sizeof numbers / sizeof *numbers, s);
    case 1:
        return replace_span(b, lo, hi, 1, strings, sizeof strings / sizeof *strings, s);
    case 2:
        return replace_span(b, lo, hi, 2, words, sizeof words / sizeof *words, s);
    default:
        if (hi > b->len)
            hi = b->len;
        if (lo >= hi)
            return 0;
        b->p[lo + below(s, hi - lo)] = (unsigned char)structural[below(s, sizeof structural - 1)];
        return 1;
    }
}


static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Counts of one reader's run. */
typedef struct tally {
    const char *what;
    int mutants, refused, accepted;
    double t0, last, slowest; /* the start, the last mutant's end, the slowest mutant's time */
    int slowest_at;
} tally;

/* Counts a mutant just read, and times it (the slowest is reported: a reader that is slow on
 * some input is a hang waiting for a larger one). */
static void counted(tally *t)
{
    double n = now(), dt = n - (t->last > 0 ? t->last : t->t0);
    if (dt > t->slowest)
        t->slowest = dt, t->slowest_at = t->mutants;
    t->last = n;
    t->mutants++;
}

static void report(const tally *t)
{
    cr_log_info("%s: %d mutants, %d refused, %d accepted, %.2f s (the slowest, number %d, %.1f ms)",
                t->what, t->mutants, t->refused, t->accepted, now() - t->t0, t->slowest_at,
                t->slowest * 1e3);
    cr_expect_geq(t->mutants, mutants_per_reader());
    cr_expect_gt(t->refused, 0, "%s: no mutant refused", t->what);
    cr_expect_gt(t->accepted, 0, "%s: no mutant accepted (not even the seed)", t->what);
}

/* ---- .cnn sources ---- */

static void compile_mutant(tally *t, const buf *b, int k)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_compile(&m, "mutant.cnn", (const char *)b->p, b->len, NULL);
    cr_assert_not_null(m, "mutant %d: no model handle (status %d)", k, st);
    counted(t);
    if (st == CNN_OK) {
        t->accepted++;
        cnn_options o;
        cnn_options_default(&o);
        char *text = NULL;
        cnn_status ss = cnn_model_summary(m, &o, 2, (k & 1) != 0, &text);
        if (ss == CNN_OK)
            cr_assert(text && text[0], "mutant %d: an empty summary", k);
        else
            cr_assert(cnn_model_errmsg(m)[0], "mutant %d: summary status %d without a message", k, ss);
        cnn_free(text);
    } else {
        t->refused++;
        const char *msg = cnn_model_errmsg(m);
        cr_assert(msg && msg[0], "mutant %d: status %d without a message", k, st);
    }
    cnn_model_destroy(m);
}

Test(mutate, cnn_source, .timeout = 60)
{
    const char *dir = getenv("CNN_EXAMPLES");
    static const char *const names[] = {"lenet5", "resnet20", "signal1d"};
    tally t = {.what = ".cnn source", .t0 = now()};
    uint64_t s = seeded(0x5eed0001ULL);
    buf b = {0};
    int per_seed = (mutants_per_reader() + 2) / 3;
    for (int f = 0; f < 3; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.cnn", dir ? dir : "examples", names[f]);
        size_t len;
        unsigned char *seed = test_read_file(path, &len);
        int k = 0;
        /* the seed itself, then every truncation (the sources are small) */
        for (size_t n = len + 1; n-- > 0 && k < per_seed / 3; k++) {
            set_to(&b, seed, n);
            compile_mutant(&t, &b, k);
        }
        for (; k < per_seed; k++) {
            set_to(&b, seed, len);
            for (size_t r = 1 + below(&s, 3); r > 0; r--) {
                if (below(&s, 2) == 0)
                    text_mutation(&b, 0, b.len, &s);
                else
                    byte_mutation(&b, &s);
            }
            compile_mutant(&t, &b, k);
        }
        free(seed);
    }
    free(b.p);
    report(&t);
}

/* ---- safetensors ---- */

Test(mutate, safetensors, .timeout = 60)
{
    cnn_model *m = NULL;
    const char *dir = getenv("CNN_EXAMPLES");
    char path[4096];
    snprintf(path, sizeof path, "%s/lenet5.cnn", dir ? dir : "examples");
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", m ? cnn_model_errmsg(m) : "no model");
    cnn_weights *w = NULL;
    cr_assert_eq(cnn_weights_create(&w, m, 7), CNN_OK);
    snprintf(path, sizeof path, "%s/lenet5.safetensors", tmpdir);
    cr_assert_eq(cnn_weights_save(w, path), CNN_OK, "%s", cnn_weights_errmsg(w));
    size_t len;
    unsigned char *seed = test_read_file(path, &len);
    cr_assert_gt(len, 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | seed[i];
    cr_assert_leq(hlen, len - 8);
    uint64_t data_len = len - 8 - hlen;
    const uint64_t lengths[] = {0, 1, 2, 7, 8, hlen - 1, hlen + 1, hlen + 8, len - 8, len - 7, len,
                                len + 1, 1ull << 31, 1ull << 32, 100000000, 100000001,
                                1ull << 63, UINT64_MAX, UINT64_MAX - 7};

    tally t = {.what = "safetensors", .t0 = now()};
    uint64_t s = seeded(0x5eed0002ULL);
    buf b = {0};
    int n = mutants_per_reader(), k = 0;
    /* the seed, then every truncation through the header and a little data */
    size_t cuts = 8 + hlen + 16 < len ? 8 + hlen + 16 : len;
    for (size_t cut = cuts + 1; cut-- > 0 && k < n; k++) {
        set_to(&b, seed, k == 0 ? len : cut);
        cnn_status st = cnn_weights_load_memory(w, b.p, b.len, k & 1);
        if (k == 0)
            cr_assert_eq(st, CNN_OK, "the seed: %s", cnn_weights_errmsg(w));
        counted(&t);
        if (st == CNN_OK)
            t.accepted++;
        else {
            t.refused++;
            cr_assert(cnn_weights_errmsg(w)[0], "truncation to %zu: status %d without a message", b.len, st);
        }
    }
    for (; k < n; k++) {
        set_to(&b, seed, len);
        for (size_t r = 1 + below(&s, 2); r > 0; r--) {
            switch (below(&s, 4)) {
            case 0: /* the header length */
                put_le(b.p, lengths[below(&s, sizeof lengths / sizeof *lengths)], 8);
                break;
            case 1: { /* a number, string or character of the JSON header; offsets past the end */
                if (below(&s, 4) == 0) {
                    size_t at, nn;
                    if (find_span(&b, 8, 8 + hlen, 0, &s, &at, &nn)) {
                        char num[32];
                        uint64_t v = below(&s, 2) ? data_len + below(&s, 9) : data_len - below(&s, 5);
                        snprintf(num, sizeof num, "%llu", (unsigned long long)v);
                        splice(&b, at, nn, num, strlen(num));
                    }
                } else {
                    text_mutation(&b, 8, 8 + hlen, &s);
                }
                /* keep the length right half of the time, so that the JSON is what is tested */
                if (below(&s, 2) && b.len >= len - hlen)
                    put_le(b.p, b.len - data_len - 8, 8);
                break;
            }
            case 2: /* bytes anywhere in the header */
                byte_mutation(&b, &s);
                break;
            default: { /* bytes in the header only, the length kept right */
                buf h = {0};
                set_to(&h, b.p + 8, b.len > 8 + hlen ? hlen : 0);
                byte_mutation(&h, &s);
                if (b.len >= 8 + hlen) {
                    splice(&b, 8, hlen, h.p, h.len);
                    put_le(b.p, h.len, 8);
                }
                free(h.p);
                break;
            }
            }
        }
        cnn_status st = cnn_weights_load_memory(w, b.p, b.len, k & 1);
        counted(&t);
        if (st == CNN_OK)
            t.accepted++;
        else {
            t.refused++;
            cr_assert(cnn_weights_errmsg(w)[0], "mutant %d: status %d without a message", k, st);
        }
        if (k % 16 == 0) { /* the file reader, which reads in pieces, says the same */
            char *msg = strdup(cnn_weights_errmsg(w));
            spill(path, b.p, b.len);
            cnn_status fs = cnn_weights_load(w, path, k & 1);
            cr_assert_eq(fs, st, "mutant %d: the file gives %d (%s), memory %d (%s)", k, fs,
                         cnn_weights_errmsg(w), st, msg);
            free(msg);
        }
    }
    free(b.p);
    free(seed);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    report(&t);
}

/* ---- .npy ---- */

static void npy_mutant(tally *t, const buf *b, const char *path, int k)
{
    spill(path, b->p, b->len);
    float *data = NULL;
    int rank = -1;
    int64_t dims[8];
    char err[512];
    err[0] = '\0';
    cnn_status st = cnn_npy_read(path, &data, &rank, dims, err, sizeof err);
    counted(t);
    if (st == CNN_OK) {
        t->accepted++;
        cr_assert_not_null(data, "mutant %d: no data", k);
        cr_assert(rank >= 0 && rank <= 8, "mutant %d: rank %d", k, rank);
        int64_t numel = 1;
        for (int i = 0; i < rank; i++) {
            cr_assert_geq(dims[i], 0, "mutant %d", k);
            cr_assert(!__builtin_mul_overflow(numel, dims[i], &numel), "mutant %d", k);
        }
        cr_assert_leq((size_t)numel * 4, b->len, "mutant %d: %lld elements", k, (long long)numel);
        if (numel > 0) /* touch the last element (the sanitizer checks the size) */
            cr_assert(data[numel - 1] == data[numel - 1] || data[numel - 1] != data[numel - 1]);
    } else {
        t->refused++;
        cr_assert(err[0], "mutant %d: status %d without a message", k, st);
        cr_assert_null(data, "mutant %d: data on failure", k);
    }
    cnn_free(data);
}

Test(mutate, npy, .timeout = 60)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed.npy", tmpdir);
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i * 0.25f - 1.0f;
    const int64_t dims[3] = {2, 3, 4};
    char err[512];
    cr_assert_eq(cnn_npy_write(path, v, 3, dims, err, sizeof err), CNN_OK, "%s", err);
    size_t len1;
    unsigned char *v1 = test_read_file(path, &len1);
    size_t hlen1 = v1[8] | (size_t)v1[9] << 8;
    /* the same array as a version 2.0 file: a 4-byte header length */
    size_t len2 = len1 + 2;
    unsigned char *v2 = malloc(len2);
    memcpy(v2, v1, 8);
    v2[6] = 2;
    put_le(v2 + 8, hlen1, 4);
    memcpy(v2 + 12, v1 + 10, len1 - 10);
    snprintf(path, sizeof path, "%s/mutant.npy", tmpdir);

    tally t = {.what = "npy", .t0 = now()};
    uint64_t s = seeded(0x5eed0003ULL);
    buf b = {0};
    int n = mutants_per_reader(), k = 0;
    /* both seeds and every truncation of them */
    for (int f = 0; f < 2; f++) {
        const unsigned char *seed = f ? v2 : v1;
        size_t len = f ? len2 : len1;
        for (size_t cut = len + 1; cut-- > 0; k++) {
            set_to(&b, seed, cut);
            npy_mutant(&t, &b, path, k);
        }
    }
    cr_assert_geq(t.accepted, 2, "the seeds: %s", err);
    const uint64_t lengths[] = {0, 1, 2, 10, hlen1 - 1, hlen1 + 1, hlen1 + 96, 0xffff, 0x10000,
                                100000000, 0xffffffff, 0x80000000};
    for (; k < n; k++) {
        int f = (int)below(&s, 2);
        const unsigned char *seed = f ? v2 : v1;
        size_t len = f ? len2 : len1, lb = f ? 4 : 2, hs = 8 + lb;
        set_to(&b, seed, len);
        for (size_t r = 1 + below(&s, 2); r > 0; r--) {
            switch (below(&s, 4)) {
            case 0: /* version and header length */
                if (below(&s, 3) == 0)
                    b.p[6 + below(&s, 2)] = (unsigned char)(below(&s, 3) ? below(&s, 5) : rnd(&s));
                else
                    put_le(b.p + 8, lengths[below(&s, sizeof lengths / sizeof *lengths)], (int)lb);
                break;
            case 1:
            case 2: /* the header dict: dims, descr, keys, punctuation */
                text_mutation(&b, hs, hs + hlen1, &s);
                if (below(&s, 2) && b.len >= len - hlen1) /* the header length kept right */
                    put_le(b.p + 8, b.len - (len - hlen1), (int)lb);
                break;
            default:
                byte_mutation(&b, &s);
                break;
            }
        }
        npy_mutant(&t, &b, path, k);
    }
    free(b.p);
    free(v1);
    free(v2);
    report(&t);
}

/* ---- IDX folders, plain and gzip ---- */

enum { IDX_COUNT = 20, IDX_SIDE = 28 };

static const char *const idx_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* Writes the four files of a valid set into folder d (gzip-compressed when gz). */
static void write_idx_set(const char *d, const unsigned char *images, size_t ilen,
                          const unsigned char *labels, size_t llen, int gz)
{
    for (int i = 0; i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s%s", d, idx_names[i], gz ? ".gz" : "");
        if (gz)
            spill_gz(path, i % 2 ? labels : images, i % 2 ? llen : ilen);
        else
            spill(path, i % 2 ? labels : images, i % 2 ? llen : ilen);
    }
}

Test(mutate, idx, .timeout = 60)
{
    size_t ilen = 16 + IDX_COUNT * IDX_SIDE * IDX_SIDE, llen = 8 + IDX_COUNT;
    unsigned char *images = malloc(ilen), labels[8 + IDX_COUNT];
    put_be32(images, 0x803);
    put_be32(images + 4, IDX_COUNT);
    put_be32(images + 8, IDX_SIDE);
    put_be32(images + 12, IDX_SIDE);
    for (size_t i = 16; i < ilen; i++)
        images[i] = (unsigned char)(i * 7 % 256);
    put_be32(labels, 0x801);
    put_be32(labels + 4, IDX_COUNT);
    for (int i = 0; i < IDX_COUNT; i++)
        labels[8 + i] = (unsigned char)(i % 10);
    char dirs[2][1536];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(dirs[gz], sizeof dirs[gz], "%s/%s", tmpdir, gz ? "gz" : "plain");
        cr_assert_eq(mkdir(dirs[gz], 0700), 0);
        write_idx_set(dirs[gz], images, ilen, labels, llen, gz);
    }
    /* the compressed files as written, to mutate the gzip stream itself */
    size_t gzilen, gzllen;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gz", dirs[1], idx_names[0]);
    unsigned char *gzimages = test_read_file(path, &gzilen);
    snprintf(path, sizeof path, "%s/%s.gz", dirs[1], idx_names[1]);
    unsigned char *gzlabels = test_read_file(path, &gzllen);

    static const uint32_t fields[] = {0, 1, 2, IDX_COUNT - 1, IDX_COUNT + 1, IDX_SIDE - 1, IDX_SIDE + 1,
                                      0x801, 0x803, 0x802, 0x804, 0x808, 0xc03, 0x10803, 65535, 65536,
                                      IDX_SIDE * IDX_SIDE, 0x7fffffff, 0x80000000, 0xfffffffe,
                                      0xffffffff};
    tally t = {.what = "idx", .t0 = now()};
    uint64_t s = seeded(0x5eed0004ULL);
    buf b = {0};
    int n = mutants_per_reader();
    /* the plain mutants first, every truncation of the labels file and of the images header */
    size_t cuts = llen + 1 + 64;
    for (int k = 0; k < n; k++) {
        int which = (int)below(&s, 4), img = which % 2 == 0;
        /* 0 plain, 1 gzip of mutated bytes, 2 mutated gzip stream */
        int form = k < (int)cuts * 2 ? k % 2 : (int)below(&s, 3);
        const unsigned char *seed = img ? images : labels;
        size_t len = img ? ilen : llen;
        if (form == 2)
            seed = img ? gzimages : gzlabels, len = img ? gzilen : gzllen;
        set_to(&b, seed, len);
        if (k < (int)cuts * 2) {
            size_t c = (size_t)k / 2;
            if (c <= llen)
                img = 0, which = which & 2 ? 3 : 1, set_to(&b, labels, c);
            else
                img = 1, which = which & 2 ? 2 : 0, set_to(&b, images, c - llen - 1);
        } else {
            for (size_t r = 1 + below(&s, 2); r > 0; r--) {
                if (form != 2 && below(&s, 2)) { /* a header field */
                    size_t fld = below(&s, img ? 4 : 2) * 4;
                    if (fld + 4 <= b.len)
                        put_be32(b.p + fld, fields[below(&s, sizeof fields / sizeof *fields)]);
                } else {
                    byte_mutation(&b, &s);
                }
            }
        }
        int gz = form != 0;
        snprintf(path, sizeof path, "%s/%s%s", dirs[gz], idx_names[which], gz ? ".gz" : "");
        if (form == 1)
            spill_gz(path, b.p, b.len);
        else
            spill(path, b.p, b.len);

        cnn_dataset *d = NULL;
        bool absent = true;
        char err[1024];
        err[0] = '\0';
        cnn_status st = cnn_dataset_load(&d, dirs[gz], which < 2 ? "train" : "test", &absent, err,
                                         sizeof err);
        counted(&t);
        if (st == CNN_OK) {
            t.accepted++;
            cr_assert_not_null(d);
            cr_assert_geq(cnn_dataset_count(d), 1, "mutant %d", k);
            cr_assert_not(absent);
        } else {
            t.refused++;
            cr_assert_null(d, "mutant %d: a dataset on failure", k);
            cr_assert(err[0], "mutant %d: status %d without a message", k, st);
            cr_assert_not(absent, "mutant %d: absent, but the files are there: %s", k, err);
        }
        cnn_dataset_destroy(d);
        /* put the valid file back */
        seed = img ? images : labels;
        len = img ? ilen : llen;
        if (gz)
            spill_gz(path, seed, len);
        else
            spill(path, seed, len);
    }
    free(b.p);
    free(images);
    free(gzimages);
    free(gzlabels);
    report(&t);
}
