/* The .npy format (runtime/npy.c): round trips, the header numpy writes, header syntax variants,
 * versions 1-3, and the exact wording of every error.  Each test runs in a fresh temporary
 * folder (see formats_util.h). */
#include "tests/formats_util.h"

TestSuite(npy, .init = enter_tmpdir, .fini = leave_tmpdir);

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
        unsigned char *raw = test_read_file("a.npy", &len);
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
    unsigned char *raw = test_read_file("b.npy", &len);
    cr_assert_eq(len, 128 + 24);
    cr_assert_eq(memcmp(raw, "\x93NUMPY\x01\x00\x76\x00", 10), 0);
    cr_assert_eq(memcmp(raw + 10, dict, strlen(dict)), 0, "header: %.118s", raw + 10);
    for (size_t i = 10 + strlen(dict); i < 127; i++)
        cr_assert_eq(raw[i], ' ');
    cr_assert_eq(raw[127], '\n');
    free(raw);

    const char *d1 = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
    cr_assert_eq(rt_npy_write("c.npy", 1, (const int64_t[]){5}, x, err, sizeof err), RT_NPY_OK);
    raw = test_read_file("c.npy", &len);
    cr_assert_eq(memcmp(raw + 10, d1, strlen(d1)), 0, "header: %.118s", raw + 10);
    free(raw);

    const char *d0 = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
    cr_assert_eq(rt_npy_write("d.npy", 0, NULL, x, err, sizeof err), RT_NPY_OK);
    raw = test_read_file("d.npy", &len);
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

