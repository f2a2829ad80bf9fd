/* Tests of the file formats in runtime/: safetensors (this file), .npy (test_formats_npy.c) and
 * MNIST IDX (test_formats_idx.c).  Each test runs in a fresh temporary folder (its working
 * directory), writes the files it needs byte by byte, and checks both what is read and the
 * exact wording of every error. */
#include "tests/formats_util.h"

TestSuite(safetensors, .init = enter_tmpdir, .fini = leave_tmpdir);

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
    unsigned char *buf = test_read_file("x.safetensors", &len);
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

