/* Tests of the file formats in runtime/: safetensors, .npy and MNIST IDX.  Each test runs in a
 * fresh temporary folder (its working directory), writes the files it needs byte by byte, and
 * checks both what is read and the exact wording of every error. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/idx.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"

#ifndef FASHION_DIR
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif

/* ---- fixture: a temporary working folder ---- */

static char tmpdir[4096];

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void enter_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnc-formats-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
    cr_assert_eq(chdir(tmpdir), 0);
}

static void leave_tmpdir(void)
{
    if (chdir("/") == 0 && tmpdir[0])
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(safetensors, .init = enter_tmpdir, .fini = leave_tmpdir);
TestSuite(npy, .init = enter_tmpdir, .fini = leave_tmpdir);
TestSuite(idx, .init = enter_tmpdir, .fini = leave_tmpdir);

/* ---- helpers ---- */

static void write_file(const char *name, const void *data, size_t len)
{
    FILE *fp = fopen(name, "wb");
    cr_assert_not_null(fp, "cannot create %s", name);
    cr_assert_eq(fwrite(data, 1, len, fp), len);
    cr_assert_eq(fclose(fp), 0);
}

static unsigned char *read_whole(const char *name, size_t *len)
{
    FILE *fp = fopen(name, "rb");
    cr_assert_not_null(fp, "cannot open %s", name);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Number of entries in the working folder (to see that no temporary file is left). */
static int count_files(void)
{
    int n = 0;
    FILE *p = popen("ls -A | wc -l", "r");
    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* Deterministic floats with awkward values mixed in: NaN, infinities, -0, denormals. */
static void fill_floats(float *x, int64_t n, uint32_t seed)
{
    static const uint32_t special[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x80000000u,
                                       0x00000001u, 0x007fffffu, 0x7f7fffffu, 0xffc12345u};
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = (i % 7 == 3) ? special[(s >> 8) % 8] : s;
        memcpy(&x[i], &bits, 4);
    }
}

/* ---- safetensors ---- */

/* A file: 8-byte length (hlen), the header text, then data_len bytes of data (0x00 0x01 ...). */
static void write_st_len(const char *name, uint64_t hlen, const char *json, size_t data_len)
{
    size_t jl = strlen(json);
    size_t len = 8 + jl + data_len;
    unsigned char *buf = malloc(len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, json, jl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + jl + i] = (unsigned char)i;
    write_file(name, buf, len);
    free(buf);
}

static void write_st(const char *name, const char *json, size_t data_len)
{
    write_st_len(name, strlen(json), json, data_len);
}

/* Reads name, expects failure with status st and the message exactly text. */
static void st_fails(const char *name, rt_st_status st, const char *text)
{
    rt_st_file *f = (rt_st_file *)&f;
    char err[512];
    rt_st_status got = rt_st_read(&f, name, err, sizeof err);
    cr_assert_eq(got, st, "status %d, expected %d; message: %s", got, st, err);
    cr_assert_null(f);
    cr_assert_str_eq(err, text);
}

Test(safetensors, round_trip_ranks_0_to_4)
{
    rt_st_tensor t[7] = {
        {.name = "scalar", .rank = 0},
        {.name = "conv2d_1.bias", .rank = 1, .dims = {6}},
        {.name = "dense_1.weight", .rank = 2, .dims = {7, 13}},
        {.name = "conv1d_1.weight", .rank = 3, .dims = {4, 3, 5}},
        {.name = "conv2d_1.weight", .rank = 4, .dims = {6, 1, 5, 5}},
        {.name = "empty", .rank = 2, .dims = {0, 5}},
        {.name = "batchnorm_1.running_var", .rank = 1, .dims = {1}},
    };
    float *bufs[7];
    for (int i = 0; i < 7; i++) {
        int64_t n = 1;
        for (int d = 0; d < t[i].rank; d++)
            n *= t[i].dims[d];
        bufs[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
        fill_floats(bufs[i], n, (uint32_t)i);
        t[i].data = n ? bufs[i] : NULL;
    }
    char err[512];
    cr_assert_eq(rt_st_write("w.safetensors", 7, t, err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(count_files(), 1, "a temporary file was left behind");

    rt_st_file *f = NULL;
    cr_assert_eq(rt_st_read(&f, "w.safetensors", err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(f->count, 7);
    for (int i = 0; i < 7; i++) {
        const rt_st_tensor *r = &f->tensors[i];
        cr_assert_str_eq(r->name, t[i].name, "keys must keep the order given");
        cr_assert_eq(r->rank, t[i].rank);
        int64_t n = 1;
        for (int d = 0; d < r->rank; d++) {
            cr_assert_eq(r->dims[d], t[i].dims[d]);
            n *= r->dims[d];
        }
        cr_assert_eq(r->numel, n);
        cr_assert_not_null(r->data);
        cr_assert_eq(memcmp(r->data, bufs[i], (size_t)n * 4), 0, "%s differs", r->name);
        cr_assert_eq(rt_st_find(f, t[i].name), r);
    }
    cr_assert_null(rt_st_find(f, "dense_2.bias"));
    rt_st_free(f);
    rt_st_free(NULL);
    for (int i = 0; i < 7; i++)
        free(bufs[i]);
}

Test(safetensors, written_bytes_follow_the_reference_layout)
{
    const float a[2] = {1.0f, -2.5f};
    const float b[1] = {0.5f};
    rt_st_tensor t[2] = {
        {.name = "b.weight", .rank = 1, .dims = {2}, .data = a},
        {.name = "a", .rank = 0, .data = b},
    };
    char err[512];
    cr_assert_eq(rt_st_write("x.safetensors", 2, t, err, sizeof err), RT_ST_OK, "%s", err);
    size_t len;
    unsigned char *buf = read_whole("x.safetensors", &len);
    const char *json = "{\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}";
    size_t jl = strlen(json), hlen = (jl + 7) / 8 * 8;
    uint64_t got = 0;
    for (int i = 7; i >= 0; i--)
        got = got << 8 | buf[i];
    cr_assert_eq(got, hlen, "header length %llu, expected %zu", (unsigned long long)got, hlen);
    cr_assert_eq(len, 8 + hlen + 12);
    cr_assert_eq(memcmp(buf + 8, json, jl), 0, "header: %.*s", (int)hlen, buf + 8);
    for (size_t i = jl; i < hlen; i++)
        cr_assert_eq(buf[8 + i], ' ', "the header is padded with spaces");
    const unsigned char le[12] = {0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0, 0, 0, 0, 0x3f};
    cr_assert_eq(memcmp(buf + 8 + hlen, le, 12), 0, "data must be little-endian, contiguous");
    free(buf);
}

Test(safetensors, overwrites_an_existing_file)
{
    const float a[1] = {1}, b[2] = {2, 3};
    rt_st_tensor t1 = {.name = "x", .rank = 1, .dims = {1}, .data = a};
    rt_st_tensor t2 = {.name = "y", .rank = 1, .dims = {2}, .data = b};
    char err[512];
    cr_assert_eq(rt_st_write("w.safetensors", 1, &t1, err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(rt_st_write("w.safetensors", 1, &t2, err, sizeof err), RT_ST_OK, "%s", err);
    rt_st_file *f;
    cr_assert_eq(rt_st_read(&f, "w.safetensors", err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(f->count, 1);
    cr_assert_str_eq(f->tensors[0].name, "y");
    cr_assert_eq(f->tensors[0].data[1], 3.0f);
    rt_st_free(f);
    cr_assert_eq(count_files(), 1);
}

Test(safetensors, names_are_escaped_in_json)
{
    const float a[1] = {4};
    const char *names[3] = {"quote\"d", "back\\slash", "new\nline\t\x01"};
    rt_st_tensor t[3];
    for (int i = 0; i < 3; i++)
        t[i] = (rt_st_tensor){.name = names[i], .rank = 1, .dims = {1}, .data = a};
    char err[512];
    cr_assert_eq(rt_st_write("e.safetensors", 3, t, err, sizeof err), RT_ST_OK, "%s", err);
    rt_st_file *f;
    cr_assert_eq(rt_st_read(&f, "e.safetensors", err, sizeof err), RT_ST_OK, "%s", err);
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(rt_st_find(f, names[i]), "%s lost", names[i]);
    rt_st_free(f);
}

Test(safetensors, empty_file_round_trips)
{
    char err[512];
    cr_assert_eq(rt_st_write("n.safetensors", 0, NULL, err, sizeof err), RT_ST_OK, "%s", err);
    rt_st_file *f;
    cr_assert_eq(rt_st_read(&f, "n.safetensors", err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(f->count, 0);
    rt_st_free(f);
}

Test(safetensors, reads_metadata_and_any_key_order)
{
    /* As written by other tools: __metadata__ first, keys not in offset order, spaces. */
    write_st("m.safetensors",
             "{\"__metadata__\": {\"format\": \"pt\"},\n"
             " \"b\": {\"shape\": [1], \"data_offsets\": [8, 12], \"dtype\": \"F32\"},\n"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}   ",
             12);
    rt_st_file *f;
    char err[512];
    cr_assert_eq(rt_st_read(&f, "m.safetensors", err, sizeof err), RT_ST_OK, "%s", err);
    cr_assert_eq(f->count, 2);
    cr_assert_str_eq(f->tensors[0].name, "b");
    cr_assert_str_eq(f->tensors[1].name, "a");
    const unsigned char b_bytes[4] = {8, 9, 10, 11};
    cr_assert_eq(memcmp(rt_st_find(f, "b")->data, b_bytes, 4), 0);
    cr_assert_null(rt_st_find(f, "__metadata__"));
    rt_st_free(f);
}

Test(safetensors, wrong_dtype)
{
    write_st("w.safetensors",
             "{\"conv2d_1.weight\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    st_fails("w.safetensors", RT_ST_EFORMAT,
             "w.safetensors: conv2d_1.weight has dtype F16, expected F32");
    write_st("w.safetensors", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    st_fails("w.safetensors", RT_ST_EFORMAT, "w.safetensors: a has a dtype that is not a string");
}

Test(safetensors, file_too_short)
{
    write_file("s.safetensors", "\x10\0\0\0\0", 5);
    st_fails("s.safetensors", RT_ST_EFORMAT,
             "s.safetensors: file is 5 bytes, too short for the 8-byte header length");
    write_file("z.safetensors", "", 0);
    st_fails("z.safetensors", RT_ST_EFORMAT,
             "z.safetensors: file is 0 bytes, too short for the 8-byte header length");
}

Test(safetensors, header_length_beyond_file)
{
    write_st_len("h.safetensors", 100, "{}", 0);
    st_fails("h.safetensors", RT_ST_EFORMAT,
             "h.safetensors: header length 100 is larger than the rest of the file (2 bytes)");
}

Test(safetensors, header_length_absurd)
{
    write_st_len("h.safetensors", 1ull << 40, "{}", 0);
    st_fails("h.safetensors", RT_ST_EFORMAT,
             "h.safetensors: header length 1099511627776 is absurd (the limit is 100000000 bytes)");
    write_st_len("h.safetensors", UINT64_MAX, "{}", 0);
    st_fails("h.safetensors", RT_ST_EFORMAT,
             "h.safetensors: header length 18446744073709551615 is absurd (the limit is "
             "100000000 bytes)");
}

Test(safetensors, header_not_json)
{
    write_st("j.safetensors", "{\"a\": {\"dtype\": F32}}", 0);
    st_fails("j.safetensors", RT_ST_EFORMAT,
             "j.safetensors: header is not valid JSON (error at byte 16 of the header)");
    write_st("j.safetensors", "{\"a\":1} x", 0);
    st_fails("j.safetensors", RT_ST_EFORMAT,
             "j.safetensors: header has bytes after the JSON object (at byte 8 of the header)");
    write_file("j.safetensors", "\x08\0\0\0\0\0\0\0{}\0\0\0\0\0\0", 16);
    st_fails("j.safetensors", RT_ST_EFORMAT,
             "j.safetensors: header has bytes after the JSON object (at byte 2 of the header)");
    write_st("j.safetensors", "", 0);
    st_fails("j.safetensors", RT_ST_EFORMAT,
             "j.safetensors: header is not valid JSON (error at byte 0 of the header)");
}

Test(safetensors, header_not_object)
{
    write_st("o.safetensors", "[1, 2]", 0);
    st_fails("o.safetensors", RT_ST_EFORMAT, "o.safetensors: header is not a JSON object");
    write_st("o.safetensors", "{\"a\": [1]}", 0);
    st_fails("o.safetensors", RT_ST_EFORMAT, "o.safetensors: a is not an object in the header");
}

Test(safetensors, entry_missing_fields)
{
    write_st("e.safetensors", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    st_fails("e.safetensors", RT_ST_EFORMAT, "e.safetensors: a has no dtype");
    write_st("e.safetensors", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4);
    st_fails("e.safetensors", RT_ST_EFORMAT, "e.safetensors: a has no shape");
    write_st("e.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
    st_fails("e.safetensors", RT_ST_EFORMAT, "e.safetensors: a has no data_offsets");
}

Test(safetensors, bad_shapes)
{
    write_st("d.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: a has a negative dimension -3 in its shape");
    write_st("d.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT,
             "d.safetensors: a has a dimension 1e+300 in its shape that is too large");
    write_st("d.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT,
             "d.safetensors: a has shape [4294967296,4294967296], which is too large");
    write_st("d.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: a has a shape entry that is not an integer");
    write_st("d.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: a has a shape entry that is not an integer");
    write_st("d.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: a has a shape that is not an array");
    write_st("d.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: a has rank 9, at most 8 is supported");
}

Test(safetensors, bad_offsets)
{
    write_st("o.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8);
    st_fails("o.safetensors", RT_ST_EFORMAT,
             "o.safetensors: a has data_offsets [8,4] out of order (begin after end)");
    write_st("o.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    st_fails("o.safetensors", RT_ST_EFORMAT,
             "o.safetensors: a has data_offsets [0,4] (4 bytes), its shape [2] needs 8 bytes");
    write_st("o.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4);
    st_fails("o.safetensors", RT_ST_EFORMAT,
             "o.safetensors: a has data_offsets that are not [begin, end] with non-negative integers");
    write_st("o.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4);
    st_fails("o.safetensors", RT_ST_EFORMAT,
             "o.safetensors: a has data_offsets that are not [begin, end] with non-negative integers");
}

Test(safetensors, overlapping_tensors)
{
    write_st("v.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    st_fails("v.safetensors", RT_ST_EFORMAT,
             "v.safetensors: a and b overlap (data_offsets [0,8] and [4,12])");
    write_st("v.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    st_fails("v.safetensors", RT_ST_EFORMAT,
             "v.safetensors: a and b overlap (data_offsets [0,8] and [0,8])");
}

Test(safetensors, unused_bytes)
{
    write_st("g.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
    st_fails("g.safetensors", RT_ST_EFORMAT,
             "g.safetensors: bytes 4 to 8 of the data area, before b, belong to no tensor");
    write_st("g.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6);
    st_fails("g.safetensors", RT_ST_EFORMAT,
             "g.safetensors: bytes 4 to 6 of the data area, after the last tensor, belong to no tensor");
}

Test(safetensors, truncated_data)
{
    write_st("t.safetensors",
             "{\"conv2d_1.weight\":{\"dtype\":\"F32\",\"shape\":[6,1,5,5],\"data_offsets\":[0,600]}}",
             596);
    st_fails("t.safetensors", RT_ST_EFORMAT,
             "t.safetensors: truncated: conv2d_1.weight needs bytes up to 600 of the data area, "
             "which has only 596");
    write_st("t.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4503599627370496,"
             "4503599627370500]}}", 0);
    st_fails("t.safetensors", RT_ST_EFORMAT,
             "t.safetensors: truncated: a needs bytes up to 4503599627370500 of the data area, "
             "which has only 0");
}

Test(safetensors, duplicate_names)
{
    write_st("d.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
    st_fails("d.safetensors", RT_ST_EFORMAT, "d.safetensors: duplicate tensor name a");
}

Test(safetensors, unreadable_files)
{
    st_fails("missing.safetensors", RT_ST_EIO, "missing.safetensors: cannot open: No such file or directory");
    cr_assert_eq(mkdir("dir.safetensors", 0755), 0);
    st_fails("dir.safetensors", RT_ST_EIO, "dir.safetensors: not a regular file");
}

Test(safetensors, write_rejects_bad_arguments)
{
    const float a[4] = {0};
    char err[512];
    rt_st_tensor dup[2] = {{.name = "x", .rank = 1, .dims = {1}, .data = a},
                           {.name = "x", .rank = 1, .dims = {1}, .data = a}};
    cr_assert_eq(rt_st_write("w.safetensors", 2, dup, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: duplicate tensor name x");
    rt_st_tensor neg = {.name = "n", .rank = 2, .dims = {2, -1}, .data = a};
    cr_assert_eq(rt_st_write("w.safetensors", 1, &neg, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: n has a negative dimension -1");
    rt_st_tensor nodata = {.name = "d", .rank = 1, .dims = {3}};
    cr_assert_eq(rt_st_write("w.safetensors", 1, &nodata, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: d has no data");
    rt_st_tensor meta = {.name = "__metadata__", .rank = 1, .dims = {1}, .data = a};
    cr_assert_eq(rt_st_write("w.safetensors", 1, &meta, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: __metadata__ is not a tensor name");
    rt_st_tensor rank = {.name = "r", .rank = 9, .data = a};
    cr_assert_eq(rt_st_write("w.safetensors", 1, &rank, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: r has rank 9, expected 0 to 8");
    rt_st_tensor noname = {.rank = 1, .dims = {1}, .data = a};
    cr_assert_eq(rt_st_write("w.safetensors", 1, &noname, err, sizeof err), RT_ST_EARG);
    cr_assert_str_eq(err, "w.safetensors: tensor 0 has no name");
    cr_assert_eq(count_files(), 0, "nothing may be written");
}

Test(safetensors, write_to_missing_folder)
{
    const float a[1] = {1};
    rt_st_tensor t = {.name = "x", .rank = 1, .dims = {1}, .data = a};
    char err[512];
    cr_assert_eq(rt_st_write("nowhere/w.safetensors", 1, &t, err, sizeof err), RT_ST_EIO);
    cr_assert_str_eq(err, "nowhere/w.safetensors: cannot create a temporary file next to it: "
                          "No such file or directory");
}

Test(safetensors, format_shape)
{
    char buf[64];
    const int64_t d[4] = {6, 1, 3, 3};
    cr_assert_eq(rt_st_format_shape(buf, sizeof buf, 4, d), 9);
    cr_assert_str_eq(buf, "[6,1,3,3]");
    cr_assert_eq(rt_st_format_shape(buf, sizeof buf, 0, NULL), 2);
    cr_assert_str_eq(buf, "[]");
    cr_assert_eq(rt_st_format_shape(buf, 5, 4, d), 9, "the full length, as snprintf");
    cr_assert_str_eq(buf, "[6,1");
    cr_assert_eq(rt_st_format_shape(NULL, 0, 1, d), 3);
}

/* ---- npy ---- */

/* The version 1.0 preamble, then header text and data_len bytes of data (0x00 0x01 ...). */
static void write_npy_v(const char *name, int major, const char *header, size_t data_len)
{
    size_t hl = strlen(header), pre = major == 1 ? 10 : 12;
    size_t len = pre + hl + data_len;
    unsigned char *buf = malloc(len);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, header, hl);
    for (size_t i = 0; i < data_len; i++)
        buf[pre + hl + i] = (unsigned char)i;
    write_file(name, buf, len);
    free(buf);
}

static void write_npy(const char *name, const char *header, size_t data_len)
{
    write_npy_v(name, 1, header, data_len);
}

static void npy_fails(const char *name, rt_npy_status st, const char *text)
{
    rt_npy_array a;
    char err[512];
    rt_npy_status got = rt_npy_read(&a, name, err, sizeof err);
    cr_assert_eq(got, st, "status %d, expected %d; message: %s", got, st, err);
    cr_assert_null(a.data);
    cr_assert_str_eq(err, text);
}

/* Reads name and checks the shape; returns the array for more checks. */
static rt_npy_array npy_reads(const char *name, int rank, const int64_t *dims)
{
    rt_npy_array a;
    char err[512];
    cr_assert_eq(rt_npy_read(&a, name, err, sizeof err), RT_NPY_OK, "%s", err);
    cr_assert_eq(a.rank, rank, "rank %d, expected %d", a.rank, rank);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        cr_assert_eq(a.dims[i], dims[i]);
        n *= dims[i];
    }
    cr_assert_eq(a.numel, n);
    cr_assert_not_null(a.data);
    return a;
}

Test(npy, round_trip_ranks_0_to_4)
{
    const int64_t shapes[6][4] = {{0}, {5}, {3, 7}, {2, 3, 4}, {2, 1, 28, 28}, {4, 0, 3}};
    const int ranks[6] = {0, 1, 2, 3, 4, 3};
    for (int k = 0; k < 6; k++) {
        int64_t n = 1;
        for (int d = 0; d < ranks[k]; d++)
            n *= shapes[k][d];
        float *x = malloc((size_t)(n ? n : 1) * 4);
        fill_floats(x, n, (uint32_t)k + 100);
        char err[512];
        cr_assert_eq(rt_npy_write("a.npy", ranks[k], shapes[k], x, err, sizeof err), RT_NPY_OK,
                     "%s", err);
        size_t len;
        unsigned char *raw = read_whole("a.npy", &len);
        size_t hlen = raw[8] | (size_t)raw[9] << 8;
        cr_assert_eq((10 + hlen) % 64, 0, "data must start at a multiple of 64");
        cr_assert_eq(raw[10 + hlen - 1], '\n');
        cr_assert_eq(len, 10 + hlen + (size_t)n * 4);
        free(raw);
        rt_npy_array a = npy_reads("a.npy", ranks[k], shapes[k]);
        cr_assert_eq(memcmp(a.data, x, (size_t)n * 4), 0, "data differs for shape %d", k);
        rt_npy_free(&a);
        cr_assert_null(a.data);
        free(x);
    }
    rt_npy_free(NULL);
    cr_assert_eq(count_files(), 1, "a temporary file was left behind");
}

Test(npy, written_header_matches_numpy)
{
    const float x[6] = {0, 1, 2, 3, 4, 5};
    char err[512];
    /* numpy.save(np.arange(6, dtype='<f4').reshape(2, 3)): the dict, 20 spaces of room for the
     * first axis to grow (21 digits minus 1), padding to 127 bytes, then '\n'. */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    cr_assert_eq(rt_npy_write("b.npy", 2, (const int64_t[]){2, 3}, x, err, sizeof err), RT_NPY_OK);
    size_t len;
    unsigned char *raw = read_whole("b.npy", &len);
    cr_assert_eq(len, 128 + 24);
    cr_assert_eq(memcmp(raw, "\x93NUMPY\x01\x00\x76\x00", 10), 0);
    cr_assert_eq(memcmp(raw + 10, dict, strlen(dict)), 0, "header: %.118s", raw + 10);
    for (size_t i = 10 + strlen(dict); i < 127; i++)
        cr_assert_eq(raw[i], ' ');
    cr_assert_eq(raw[127], '\n');
    free(raw);

    const char *d1 = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
    cr_assert_eq(rt_npy_write("c.npy", 1, (const int64_t[]){5}, x, err, sizeof err), RT_NPY_OK);
    raw = read_whole("c.npy", &len);
    cr_assert_eq(memcmp(raw + 10, d1, strlen(d1)), 0, "header: %.118s", raw + 10);
    free(raw);

    const char *d0 = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
    cr_assert_eq(rt_npy_write("d.npy", 0, NULL, x, err, sizeof err), RT_NPY_OK);
    raw = read_whole("d.npy", &len);
    cr_assert_eq(len, 128 + 4);
    cr_assert_eq(memcmp(raw + 10, d0, strlen(d0)), 0, "header: %.54s", raw + 10);
    free(raw);
}

Test(npy, header_syntax_variants)
{
    const int64_t d23[2] = {2, 3}, d5[1] = {5};
    rt_npy_array a;
    write_npy("a.npy", "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}\n", 24);
    a = npy_reads("a.npy", 2, d23);
    const unsigned char first[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    cr_assert_eq(memcmp(a.data, first, 8), 0);
    rt_npy_free(&a);
    write_npy("a.npy", "{ \"descr\" :\"<f4\",\"fortran_order\":False ,\"shape\":(2,3,),}", 24);
    a = npy_reads("a.npy", 2, d23);
    rt_npy_free(&a);
    write_npy("a.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': ( 5 , ), }   \n", 20);
    a = npy_reads("a.npy", 1, d5);
    rt_npy_free(&a);
    write_npy("a.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", 4);
    a = npy_reads("a.npy", 0, NULL);
    rt_npy_free(&a);
    write_npy("a.npy", "{'descr':'<f4','fortran_order':False,'shape':(2L, 3L)}", 24);
    a = npy_reads("a.npy", 2, d23);
    rt_npy_free(&a);
    write_npy("a.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }\n", 0);
    a = npy_reads("a.npy", 2, (const int64_t[]){0, 3});
    rt_npy_free(&a);
}

Test(npy, versions_2_and_3)
{
    const int64_t d[3] = {2, 2, 2};
    write_npy_v("v2.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }\n", 32);
    rt_npy_array a = npy_reads("v2.npy", 3, d);
    cr_assert_eq(((const unsigned char *)a.data)[31], 31);
    rt_npy_free(&a);
    write_npy_v("v3.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }\n", 32);
    a = npy_reads("v3.npy", 3, d);
    rt_npy_free(&a);
    write_npy_v("v4.npy", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }\n", 32);
    npy_fails("v4.npy", RT_NPY_EFORMAT,
              "v4.npy: unsupported .npy format version 4.0 (1.0, 2.0 and 3.0 are supported)");
}

Test(npy, wrong_dtypes)
{
    write_npy("x.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("x.npy", RT_NPY_EFORMAT, "x.npy: dtype '>f4' is not supported, expected '<f4'");
    write_npy("x.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", 8);
    npy_fails("x.npy", RT_NPY_EFORMAT, "x.npy: dtype '<f8' is not supported, expected '<f4'");
    write_npy("x.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("x.npy", RT_NPY_EFORMAT, "x.npy: dtype '<i4' is not supported, expected '<f4'");
    write_npy("x.npy", "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("x.npy", RT_NPY_EFORMAT, "x.npy: dtype '|f4' is not supported, expected '<f4'");
    write_npy("x.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("x.npy", RT_NPY_EFORMAT, "x.npy: dtype is a structured type, expected '<f4'");
}

Test(npy, fortran_order)
{
    write_npy("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 24);
    npy_fails("f.npy", RT_NPY_EFORMAT,
              "f.npy: fortran_order is True; only C-order arrays are supported");
    write_npy("f.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }\n", 24);
    npy_fails("f.npy", RT_NPY_EFORMAT,
              "f.npy: malformed header at byte 34: expected True or False for 'fortran_order', "
              "found '0'");
}

Test(npy, not_npy)
{
    write_file("m.npy", "\x93NUMPZ\x01\x00\x00\x00", 10);
    npy_fails("m.npy", RT_NPY_EFORMAT, "m.npy: not a .npy file (no \\x93NUMPY magic string)");
    write_file("m.npy", "\x93NUM", 4);
    npy_fails("m.npy", RT_NPY_EFORMAT, "m.npy: file is 4 bytes, too short for a .npy file");
    write_file("m.npy", "\x93NUMPY\x02\x00\x10\x00", 10);
    npy_fails("m.npy", RT_NPY_EFORMAT,
              "m.npy: file is 10 bytes, too short for a version 2.0 .npy header");
    npy_fails("none.npy", RT_NPY_EIO, "none.npy: cannot open: No such file or directory");
}

Test(npy, truncation)
{
    write_npy("t.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 20);
    npy_fails("t.npy", RT_NPY_EFORMAT,
              "t.npy: truncated data: shape [2,3] needs 24 bytes, the file has 20 after the header");
    write_npy("t.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 28);
    npy_fails("t.npy", RT_NPY_EFORMAT, "t.npy: 4 unexpected bytes after the data of shape [2,3]");
    write_file("t.npy", "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    npy_fails("t.npy", RT_NPY_EFORMAT,
              "t.npy: truncated header: its length is 64 bytes, the file has 7 after it");
    write_file("t.npy", "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14);
    npy_fails("t.npy", RT_NPY_EFORMAT,
              "t.npy: header length 4294967295 is absurd (the limit is 1048576 bytes)");
    write_npy("t.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24);
    npy_fails("t.npy", RT_NPY_EFORMAT,
              "t.npy: malformed header: it ends where a quoted key or '}' was expected");
}

Test(npy, bad_shapes)
{
    write_npy("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5), }\n", 20);
    npy_fails("s.npy", RT_NPY_EFORMAT, "s.npy: shape (5) is not a tuple; a 1-tuple is written (5,)");
    write_npy("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }\n", 0);
    npy_fails("s.npy", RT_NPY_EFORMAT, "s.npy: shape has a negative dimension -3");
    write_npy("s.npy",
              "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", 0);
    npy_fails("s.npy", RT_NPY_EFORMAT, "s.npy: shape [4294967296,4294967296] has too many elements");
    write_npy("s.npy",
              "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 0);
    npy_fails("s.npy", RT_NPY_EFORMAT, "s.npy: shape has a dimension that is too large");
    write_npy("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4);
    npy_fails("s.npy", RT_NPY_EFORMAT, "s.npy: shape has more than 8 dimensions");
    write_npy("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }\n", 24);
    npy_fails("s.npy", RT_NPY_EFORMAT,
              "s.npy: malformed header at byte 50: expected a tuple for 'shape', found '['");
    write_npy("s.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }\n", 24);
    npy_fails("s.npy", RT_NPY_EFORMAT,
              "s.npy: malformed header at byte 53: expected ',' or ')' in 'shape', found '3'");
}

Test(npy, bad_keys)
{
    write_npy("k.npy", "{'descr': '<f4', 'shape': (2,), }\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT, "k.npy: header has no 'fortran_order'");
    write_npy("k.npy", "{'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT, "k.npy: header has no 'descr'");
    write_npy("k.npy", "{'descr': '<f4', 'fortran_order': False}\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT, "k.npy: header has no 'shape'");
    write_npy("k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT, "k.npy: unexpected key 'extra' in the header (at byte 56)");
    write_npy("k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT, "k.npy: key 'shape' appears twice in the header");
    write_npy("k.npy", "{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT,
              "k.npy: malformed header at byte 9: expected ':', found '''");
    write_npy("k.npy", "{descr: '<f4', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT,
              "k.npy: malformed header at byte 1: expected a quoted key or '}', found 'd'");
    write_npy("k.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT,
              "k.npy: malformed header at byte 58: expected the end of the header, found 'x'");
    write_npy("k.npy", "{'descr': '<f4\n', 'fortran_order': False, 'shape': (2,), }\n", 8);
    npy_fails("k.npy", RT_NPY_EFORMAT,
              "k.npy: malformed header at byte 14: expected the end of a string, found byte 0x0a");
}

Test(npy, write_rejects_bad_arguments)
{
    char err[512];
    const float x[1] = {0};
    cr_assert_eq(rt_npy_write("w.npy", 2, (const int64_t[]){2, -1}, x, err, sizeof err),
                 RT_NPY_EARG);
    cr_assert_str_eq(err, "w.npy: negative dimension -1");
    cr_assert_eq(rt_npy_write("w.npy", 9, (const int64_t[9]){1}, x, err, sizeof err), RT_NPY_EARG);
    cr_assert_str_eq(err, "w.npy: rank 9, expected 0 to 8");
    cr_assert_eq(rt_npy_write("w.npy", 1, (const int64_t[]){3}, NULL, err, sizeof err), RT_NPY_EARG);
    cr_assert_str_eq(err, "w.npy: no data");
    cr_assert_eq(rt_npy_write("no/w.npy", 1, (const int64_t[]){1}, x, err, sizeof err), RT_NPY_EIO);
    cr_assert_str_eq(err, "no/w.npy: cannot create a temporary file next to it: "
                          "No such file or directory");
    cr_assert_eq(count_files(), 0);
}

/* ---- idx ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes bytes to name, through gzip when the name ends in ".gz". */
static void write_maybe_gz(const char *name, const unsigned char *buf, size_t len)
{
    size_t n = strlen(name);
    if (n > 3 && strcmp(name + n - 3, ".gz") == 0) {
        gzFile gz = gzopen(name, "wb");
        cr_assert_not_null(gz);
        cr_assert_eq(gzwrite(gz, buf, (unsigned)len), (int)len);
        cr_assert_eq(gzclose(gz), Z_OK);
    } else {
        write_file(name, buf, len);
    }
}

/* An images file: magic, count, rows, cols, then count*rows*cols pixels (i*7+k) % 256, cut to
 * pixel_bytes when that is not -1. */
static void write_images(const char *name, uint32_t magic, uint32_t count, uint32_t rows,
                         uint32_t cols, long pixel_bytes)
{
    size_t n = pixel_bytes >= 0 ? (size_t)pixel_bytes : (size_t)count * rows * cols;
    unsigned char *buf = malloc(16 + n);
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (size_t i = 0; i < n; i++)
        buf[16 + i] = (unsigned char)((i * 7 + 3) % 256);
    write_maybe_gz(name, buf, 16 + n);
    free(buf);
}

/* A labels file: magic, count, then label_bytes labels i % 10 (count of them when -1). */
static void write_labels(const char *name, uint32_t magic, uint32_t count, long label_bytes)
{
    size_t n = label_bytes >= 0 ? (size_t)label_bytes : count;
    unsigned char *buf = malloc(8 + n);
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    for (size_t i = 0; i < n; i++)
        buf[8 + i] = (unsigned char)(i % 10);
    write_maybe_gz(name, buf, 8 + n);
    free(buf);
}

static void idx_fails(rt_idx_split split, rt_idx_status st, const char *text)
{
    rt_idx_set s;
    char err[1024];
    rt_idx_status got = rt_idx_load(&s, "d", split, err, sizeof err);
    cr_assert_eq(got, st, "status %d, expected %d; message: %s", got, st, err);
    cr_assert_null(s.pixels);
    cr_assert_null(s.labels);
    cr_assert_null(s.images_path);
    cr_assert_str_eq(err, text);
}

static void check_small_set(const rt_idx_set *s, int64_t count, int64_t rows, int64_t cols)
{
    cr_assert_eq(s->count, count);
    cr_assert_eq(s->rows, rows);
    cr_assert_eq(s->cols, cols);
    for (int64_t i = 0; i < count * rows * cols; i++)
        cr_assert_eq(s->pixels[i], (float)((i * 7 + 3) % 256) / 255.0f, "pixel %lld",
                     (long long)i);
    for (int64_t i = 0; i < count; i++)
        cr_assert_eq(s->labels[i], i % 10);
    cr_assert_eq(s->classes, count >= 10 ? 10 : (int)count);
}

Test(idx, plain_and_gz_splits)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/train-images-idx3-ubyte", 0x803, 12, 2, 3, -1);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 12, -1);
    write_images("d/t10k-images-idx3-ubyte.gz", 0x803, 5, 4, 1, -1);
    write_labels("d/t10k-labels-idx1-ubyte.gz", 0x801, 5, -1);
    rt_idx_set s;
    char err[1024];
    cr_assert_eq(rt_idx_load(&s, "d", RT_IDX_TRAIN, err, sizeof err), RT_IDX_OK, "%s", err);
    check_small_set(&s, 12, 2, 3);
    cr_assert_str_eq(s.images_path, "d/train-images-idx3-ubyte");
    rt_idx_free(&s);
    cr_assert_null(s.pixels);
    cr_assert_eq(rt_idx_load(&s, "d/", RT_IDX_TEST, err, sizeof err), RT_IDX_OK, "%s", err);
    check_small_set(&s, 5, 4, 1);
    cr_assert_str_eq(s.images_path, "d/t10k-images-idx3-ubyte.gz");
    rt_idx_free(&s);
    rt_idx_free(NULL);
}

Test(idx, large_gz_split_crosses_chunks)
{
    /* 1500 images of 30x30: 1.35 MB, more than one read chunk. */
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/train-images-idx3-ubyte.gz", 0x803, 1500, 30, 30, -1);
    write_labels("d/train-labels-idx1-ubyte.gz", 0x801, 1500, -1);
    rt_idx_set s;
    char err[1024];
    cr_assert_eq(rt_idx_load(&s, "d", RT_IDX_TRAIN, err, sizeof err), RT_IDX_OK, "%s", err);
    check_small_set(&s, 1500, 30, 30);
    rt_idx_free(&s);
}

Test(idx, plain_name_is_tried_first)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/train-images-idx3-ubyte", 0x803, 3, 2, 2, -1);
    write_images("d/train-images-idx3-ubyte.gz", 0x801, 3, 2, 2, -1);
    write_labels("d/train-labels-idx1-ubyte.gz", 0x801, 3, -1);
    rt_idx_set s;
    char err[1024];
    cr_assert_eq(rt_idx_load(&s, "d", RT_IDX_TRAIN, err, sizeof err), RT_IDX_OK, "%s", err);
    check_small_set(&s, 3, 2, 2);
    rt_idx_free(&s);
}

Test(idx, absent_split_is_not_broken)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/train-images-idx3-ubyte", 0x803, 3, 2, 2, -1);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 3, -1);
    idx_fails(RT_IDX_TEST, RT_IDX_ABSENT,
              "d: t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (plain or .gz) are missing");
    write_labels("d/t10k-labels-idx1-ubyte.gz", 0x801, 3, -1);
    idx_fails(RT_IDX_TEST, RT_IDX_EIO,
              "d/t10k-images-idx3-ubyte: no such file (nor with .gz), though "
              "d/t10k-labels-idx1-ubyte.gz is there");
}

Test(idx, missing_folder)
{
    idx_fails(RT_IDX_TRAIN, RT_IDX_EIO, "d: cannot open the data folder: No such file or directory");
    write_file("d", "x", 1);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EIO, "d: not a folder");
}

Test(idx, bad_magic)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/train-images-idx3-ubyte.gz", 0x803, 3, 2, 2, -1);
    write_images("d/train-labels-idx1-ubyte.gz", 0x803, 3, 2, 2, -1);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-labels-idx1-ubyte.gz: bad magic number 0x00000803, expected 0x00000801 "
              "(labels)");
    write_labels("d/train-labels-idx1-ubyte.gz", 0x801, 3, -1);
    write_images("d/train-images-idx3-ubyte.gz", 0x80D, 3, 2, 2, -1);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-images-idx3-ubyte.gz: bad magic number 0x0000080D, expected 0x00000803 "
              "(images)");
}

Test(idx, truncated_files)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 4, -1);
    write_images("d/train-images-idx3-ubyte", 0x803, 4, 3, 3, 30);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-images-idx3-ubyte: truncated: the file ends after 3 of 4 images");
    write_images("d/train-images-idx3-ubyte", 0x803, 4, 3, 3, -1);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 4, 2);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-labels-idx1-ubyte: truncated: the file ends after 2 of 4 labels");
    write_file("d/train-labels-idx1-ubyte", "\0\0\x08\x01\0\0", 6);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-labels-idx1-ubyte: truncated header: 6 of 8 bytes");
    write_file("d/train-labels-idx1-ubyte", "\0\0", 2);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-labels-idx1-ubyte: file is 2 bytes, too short for an IDX magic number");
}

Test(idx, truncated_and_corrupt_gzip)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 4, -1);
    write_images("d/train-images-idx3-ubyte.gz", 0x803, 4, 3, 3, -1);
    size_t len;
    unsigned char *gz = read_whole("d/train-images-idx3-ubyte.gz", &len);
    /* Without its 8-byte trailer the data is all there but the stream is cut. */
    write_file("d/train-images-idx3-ubyte.gz", gz, len - 8);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT, "d/train-images-idx3-ubyte.gz: truncated gzip stream");
    /* A wrong CRC. */
    gz[len - 8] ^= 0xff;
    write_file("d/train-images-idx3-ubyte.gz", gz, len);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EIO, "d/train-images-idx3-ubyte.gz: read error: incorrect data check");
    free(gz);
}

Test(idx, count_mismatch_and_trailing_data)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_images("d/t10k-images-idx3-ubyte", 0x803, 10, 2, 2, -1);
    write_labels("d/t10k-labels-idx1-ubyte", 0x801, 9, -1);
    idx_fails(RT_IDX_TEST, RT_IDX_EFORMAT,
              "d/t10k-labels-idx1-ubyte: 9 labels, but d/t10k-images-idx3-ubyte has 10 images");
    write_labels("d/t10k-labels-idx1-ubyte", 0x801, 10, 11);
    idx_fails(RT_IDX_TEST, RT_IDX_EFORMAT,
              "d/t10k-labels-idx1-ubyte: unexpected data after the 10 labels");
    write_labels("d/t10k-labels-idx1-ubyte", 0x801, 10, -1);
    write_images("d/t10k-images-idx3-ubyte", 0x803, 10, 2, 2, 41);
    idx_fails(RT_IDX_TEST, RT_IDX_EFORMAT,
              "d/t10k-images-idx3-ubyte: unexpected data after the 10 images");
}

Test(idx, absurd_sizes)
{
    cr_assert_eq(mkdir("d", 0755), 0);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 0, -1);
    write_images("d/train-images-idx3-ubyte", 0x803, 0, 2, 2, -1);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT, "d/train-images-idx3-ubyte: holds no images");
    write_images("d/train-images-idx3-ubyte", 0x803, 1, 0, 2, -1);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-images-idx3-ubyte: image size 0x2 is absurd (each side must be 1 to "
              "65535, at most 16777216 pixels)");
    write_images("d/train-images-idx3-ubyte", 0x803, 1, 100000, 2, 0);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-images-idx3-ubyte: image size 100000x2 is absurd (each side must be 1 to "
              "65535, at most 16777216 pixels)");
    write_images("d/train-images-idx3-ubyte", 0x803, 1, 65535, 65535, 0);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-images-idx3-ubyte: image size 65535x65535 is absurd (each side must be 1 "
              "to 65535, at most 16777216 pixels)");
    /* A header that claims four billion images fails as truncated, without allocating them. */
    write_images("d/train-images-idx3-ubyte", 0x803, 0xffffffffu, 28, 28, 784 * 3);
    write_labels("d/train-labels-idx1-ubyte", 0x801, 0xffffffffu, 3);
    idx_fails(RT_IDX_TRAIN, RT_IDX_EFORMAT,
              "d/train-labels-idx1-ubyte: truncated: the file ends after 3 of 4294967295 labels");
}

Test(idx, check_input_shapes)
{
    rt_idx_set s = {.count = 1, .rows = 28, .cols = 28, .images_path = "d/x"};
    char err[512];
    cr_assert_eq(rt_idx_check_input(&s, 3, (const int64_t[]){1, 28, 28}, err, sizeof err), RT_IDX_OK);
    cr_assert_eq(rt_idx_check_input(&s, 1, (const int64_t[]){784}, err, sizeof err), RT_IDX_OK);
    cr_assert_eq(rt_idx_check_input(&s, 3, (const int64_t[]){3, 32, 32}, err, sizeof err),
                 RT_IDX_ESHAPE);
    cr_assert_str_eq(err, "d/x: images are 28x28, the network input has shape [3,32,32] "
                          "(it needs [1,28,28] or [784])");
    cr_assert_eq(rt_idx_check_input(&s, 2, (const int64_t[]){28, 28}, err, sizeof err),
                 RT_IDX_ESHAPE);
    cr_assert_str_eq(err, "d/x: images are 28x28, the network input has shape [28,28] "
                          "(it needs [1,28,28] or [784])");
    cr_assert_eq(rt_idx_check_input(&s, 1, (const int64_t[]){783}, err, sizeof err), RT_IDX_ESHAPE);
    s.rows = 4;
    s.cols = 7;
    cr_assert_eq(rt_idx_check_input(&s, 3, (const int64_t[]){1, 7, 4}, err, sizeof err),
                 RT_IDX_ESHAPE, "rows and columns must not be swapped");
    cr_assert_eq(rt_idx_check_input(&s, 3, (const int64_t[]){1, 4, 7}, err, sizeof err), RT_IDX_OK);
}

static void check_fashion(rt_idx_split split, int64_t count)
{
    struct stat sb;
    if (stat(FASHION_DIR, &sb) != 0) {
        leave_tmpdir();  /* a skipped test does not run .fini */
        cr_skip_test(FASHION_DIR " is not installed");
    }
    rt_idx_set s;
    char err[1024];
    cr_assert_eq(rt_idx_load(&s, FASHION_DIR, split, err, sizeof err), RT_IDX_OK, "%s", err);
    cr_assert_eq(s.count, count);
    cr_assert_eq(s.rows, 28);
    cr_assert_eq(s.cols, 28);
    cr_assert_eq(s.classes, 10);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < s.count; i++) {
        cr_assert_lt(s.labels[i], 10);
        per_class[s.labels[i]]++;
    }
    for (int c = 0; c < 10; c++)
        cr_assert_eq(per_class[c], count / 10, "Fashion-MNIST is balanced");
    float lo = 1, hi = 0;
    double sum = 0;
    for (int64_t i = 0; i < s.count * 784; i++) {
        lo = fminf(lo, s.pixels[i]);
        hi = fmaxf(hi, s.pixels[i]);
        sum += s.pixels[i];
    }
    cr_assert_eq(lo, 0.0f);
    cr_assert_eq(hi, 1.0f);
    double mean = sum / (double)(s.count * 784);
    cr_assert(mean > 0.2 && mean < 0.4, "mean pixel %f (Fashion-MNIST's is about 0.286)", mean);
    cr_assert_eq(rt_idx_check_input(&s, 3, (const int64_t[]){1, 28, 28}, err, sizeof err), RT_IDX_OK);
    rt_idx_free(&s);
}

Test(idx, fashion_mnist_test_split)
{
    check_fashion(RT_IDX_TEST, 10000);
}

Test(idx, fashion_mnist_train_split)
{
    check_fashion(RT_IDX_TRAIN, 60000);
}
