/* NumPy .npy reader and writer for '<f4' arrays (see npy.h).  The header, a Python dict
 * literal such as "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", is parsed by a
 * small recursive-descent parser that accepts what Python's literal syntax allows for these three
 * keys and names the byte where anything else appears. */
#include "runtime/fileio.h"
#include "ops/mem.h"
#include "runtime/npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_LIMIT (1u << 20)  /* bytes; a longer header is rejected as absurd */
#define ALIGN 64                 /* numpy.save aligns the data to this */
#define GROWTH_DIGITS 21         /* numpy.save leaves room for the first axis to grow */
#define TEXT_MAX 64              /* longest descr or key kept for messages */

static const char MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Formats "path: message" into err and returns st. */
static rt_npy_status __attribute__((format(printf, 5, 6)))
fail(char *err, size_t errlen, rt_npy_status st, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vformat_error(err, errlen, path, fmt, ap);
    va_end(ap);
    return st;
}

/* "[2,3]" ("[]" for rank 0), truncated to buflen. */
static const char *shape_text(char *buf, size_t buflen, int rank, const int64_t *dims)
{
    size_t len = (size_t)snprintf(buf, buflen, "[");
    for (int i = 0; i < rank && len < buflen; i++)
        len += (size_t)snprintf(buf + len, buflen - len, "%s%lld", i ? "," : "", (long long)dims[i]);
    if (len < buflen)
        snprintf(buf + len, buflen - len, "]");
    return buf;
}

/* ---- the header dict ---- */

typedef struct header {
    const char *s;
    size_t len, pos;
    const char *path;
    char *err;
    size_t errlen;
    /* results */
    char descr[TEXT_MAX];
    int fortran;
    int rank;
    int64_t dims[RT_NPY_MAX_RANK];
    int seen_descr, seen_fortran, seen_shape;
} header;

static rt_npy_status syntax(header *h, const char *what)
{
    if (h->pos >= h->len)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                    "malformed header: it ends where %s was expected", what);
    unsigned char c = (unsigned char)h->s[h->pos];
    if (c >= 0x20 && c < 0x7f)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                    "malformed header at byte %zu: expected %s, found '%c'", h->pos, what, c);
    return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                "malformed header at byte %zu: expected %s, found byte 0x%02x", h->pos, what, c);
}

static void skip_space(header *h)
{
    while (h->pos < h->len && (h->s[h->pos] == ' ' || h->s[h->pos] == '\t' ||
                               h->s[h->pos] == '\n' || h->s[h->pos] == '\r'))
        h->pos++;
}

/* Skips spaces, then consumes c if it is next. */
static int accept(header *h, char c)
{
    skip_space(h);
    if (h->pos < h->len && h->s[h->pos] == c) {
        h->pos++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...") into out, truncated to TEXT_MAX - 1 characters. */
static rt_npy_status parse_string(header *h, char *out, const char *what)
{
    skip_space(h);
    if (h->pos >= h->len || (h->s[h->pos] != '\'' && h->s[h->pos] != '"'))
        return syntax(h, what);
    char quote = h->s[h->pos++];
    size_t k = 0;
    while (h->pos < h->len && h->s[h->pos] != quote && h->s[h->pos] != '\n') {
        if (h->s[h->pos] == '\\' && h->pos + 1 < h->len)
            h->pos++;
        if (k + 1 < TEXT_MAX)
            out[k++] = h->s[h->pos];
        h->pos++;
    }
    out[k] = '\0';
    if (h->pos >= h->len || h->s[h->pos] != quote)
        return syntax(h, "the end of a string");
    h->pos++;
    return RT_NPY_OK;
}

static int is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static rt_npy_status parse_bool(header *h)
{
    skip_space(h);
    size_t start = h->pos;
    while (h->pos < h->len && is_word_char(h->s[h->pos]))
        h->pos++;
    size_t n = h->pos - start;
    if (n == 4 && memcmp(h->s + start, "True", 4) == 0)
        h->fortran = 1;
    else if (n == 5 && memcmp(h->s + start, "False", 5) == 0)
        h->fortran = 0;
    else {
        h->pos = start;
        return syntax(h, "True or False for 'fortran_order'");
    }
    return RT_NPY_OK;
}

/* A tuple of non-negative integers: "()", "(5,)", "(2, 3)", "(2, 3,)"; Python 2's "3L" too. */
static rt_npy_status parse_shape(header *h)
{
    if (!accept(h, '('))
        return syntax(h, "a tuple for 'shape'");
    int commas = 0;
    h->rank = 0;
    for (;;) {
        if (accept(h, ')'))
            break;
        if (h->rank > commas)
            return syntax(h, "',' or ')' in 'shape'");
        skip_space(h);
        size_t start = h->pos;
        if (h->pos < h->len && h->s[h->pos] == '-') {
            h->pos++;
            while (h->pos < h->len && h->s[h->pos] >= '0' && h->s[h->pos] <= '9')
                h->pos++;
            return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                        "shape has a negative dimension %.*s", (int)(h->pos - start),
                        h->s + start);
        }
        if (h->pos >= h->len || h->s[h->pos] < '0' || h->s[h->pos] > '9')
            return syntax(h, "a dimension in 'shape'");
        int64_t v = 0;
        while (h->pos < h->len && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) ||
                __builtin_add_overflow(v, h->s[h->pos] - '0', &v))
                return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                            "shape has a dimension that is too large");
            h->pos++;
        }
        if (h->pos < h->len && (h->s[h->pos] == 'L' || h->s[h->pos] == 'l'))
            h->pos++;
        if (h->rank == RT_NPY_MAX_RANK)
            return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                        "shape has more than %d dimensions", RT_NPY_MAX_RANK);
        h->dims[h->rank++] = v;
        if (accept(h, ','))
            commas++;
    }
    if (h->rank == 1 && commas == 0)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                    "shape (%lld) is not a tuple; a 1-tuple is written (%lld,)",
                    (long long)h->dims[0], (long long)h->dims[0]);
    return RT_NPY_OK;
}

static rt_npy_status parse_header(header *h)
{
    rt_npy_status st;
    if (!accept(h, '{'))
        return syntax(h, "'{'");
    for (;;) {
        if (accept(h, '}'))
            break;
        char key[TEXT_MAX];
        size_t key_pos = (skip_space(h), h->pos);
        if ((st = parse_string(h, key, "a quoted key or '}'")) != RT_NPY_OK)
            return st;
        if (!accept(h, ':'))
            return syntax(h, "':'");
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &h->seen_descr;
            skip_space(h);
            if (h->pos < h->len && (h->s[h->pos] == '[' || h->s[h->pos] == '{'))
                return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                            "dtype is a structured type, expected '<f4'");
            st = parse_string(h, h->descr, "a string for 'descr'");
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &h->seen_fortran;
            st = parse_bool(h);
        } else if (strcmp(key, "shape") == 0) {
            seen = &h->seen_shape;
            st = parse_shape(h);
        } else {
            return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                        "unexpected key '%s' in the header (at byte %zu)", key, key_pos);
        }
        if (st != RT_NPY_OK)
            return st;
        if (*seen)
            return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path,
                        "key '%s' appears twice in the header", key);
        *seen = 1;
        if (accept(h, '}'))
            break;
        if (!accept(h, ','))
            return syntax(h, "',' or '}'");
    }
    skip_space(h);
    if (h->pos < h->len)
        return syntax(h, "the end of the header");
    if (!h->seen_descr)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path, "header has no 'descr'");
    if (!h->seen_fortran)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path, "header has no 'fortran_order'");
    if (!h->seen_shape)
        return fail(h->err, h->errlen, RT_NPY_EFORMAT, h->path, "header has no 'shape'");
    return RT_NPY_OK;
}

/* ---- reading ---- */

void rt_npy_free(rt_npy_array *a)
{
    if (!a)
        return;
    cnn_mem_free(a->data);
    memset(a, 0, sizeof *a);
}

/* Reads the header that follows the magic string and version in fp and checks it. */
static rt_npy_status read_header(header *h, FILE *fp, uint64_t size, int major, int minor,
                                 char **buf_out)
{
    const char *path = h->path;
    char *err = h->err;
    size_t errlen = h->errlen;
    size_t lenbytes = major == 1 ? 2 : 4;
    unsigned char lb[4];
    if (size < 8 + lenbytes || fread(lb, 1, lenbytes, fp) != lenbytes)
        return fail(err, errlen, RT_NPY_EFORMAT, path,
                    "file is %llu bytes, too short for a version %d.%d .npy header",
                    (unsigned long long)size, major, minor);
    uint64_t hlen = lb[0] | (uint64_t)lb[1] << 8;
    if (lenbytes == 4)
        hlen |= (uint64_t)lb[2] << 16 | (uint64_t)lb[3] << 24;
    if (hlen > HEADER_LIMIT)
        return fail(err, errlen, RT_NPY_EFORMAT, path,
                    "header length %llu is absurd (the limit is %u bytes)",
                    (unsigned long long)hlen, HEADER_LIMIT);
    if (hlen > size - 8 - lenbytes)
        return fail(err, errlen, RT_NPY_EFORMAT, path,
                    "truncated header: its length is %llu bytes, the file has %llu after it",
                    (unsigned long long)hlen, (unsigned long long)(size - 8 - lenbytes));
    char *buf = cnn_mem_malloc(hlen > 0 ? (size_t)hlen : 1);
    if (!buf)
        return fail(err, errlen, RT_NPY_ENOMEM, path, "out of memory for the header");
    *buf_out = buf;
    if (fread(buf, 1, (size_t)hlen, fp) != hlen)
        return fail(err, errlen, RT_NPY_EIO, path, "read error in the header");
    h->s = buf;
    h->len = (size_t)hlen;
    rt_npy_status st = parse_header(h);
    if (st != RT_NPY_OK)
        return st;
    if (strcmp(h->descr, "<f4") != 0)
        return fail(err, errlen, RT_NPY_EFORMAT, path,
                    "dtype '%s' is not supported, expected '<f4'", h->descr);
    if (h->fortran)
        return fail(err, errlen, RT_NPY_EFORMAT, path,
                    "fortran_order is True; only C-order arrays are supported");
    return RT_NPY_OK;
}

rt_npy_status rt_npy_read(rt_npy_array *out, const char *path, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!out)
        return fail(err, errlen, RT_NPY_EARG, path, "no place for the result");
    memset(out, 0, sizeof *out);
    if (!path)
        return fail(err, errlen, RT_NPY_EARG, path, "no file name");

    char msg[256];
    uint64_t size;
    FILE *fp = rt_open_regular(path, &size, msg, sizeof msg);
    if (!fp)
        return fail(err, errlen, RT_NPY_EIO, path, "%s", msg);
    header h = {.path = path, .err = err, .errlen = errlen};
    char *hbuf = NULL;
    float *data = NULL;
    rt_npy_status st;
    unsigned char pre[8];
    char shape[160];

    if (size < 8 || fread(pre, 1, 8, fp) != 8) {
        st = fail(err, errlen, RT_NPY_EFORMAT, path, "file is %llu bytes, too short for a .npy file",
                  (unsigned long long)size);
        goto done;
    }
    if (memcmp(pre, MAGIC, 6) != 0) {
        st = fail(err, errlen, RT_NPY_EFORMAT, path, "not a .npy file (no \\x93NUMPY magic string)");
        goto done;
    }
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0) {
        st = fail(err, errlen, RT_NPY_EFORMAT, path,
                  "unsupported .npy format version %d.%d (1.0, 2.0 and 3.0 are supported)", major,
                  minor);
        goto done;
    }
    st = read_header(&h, fp, size, major, minor, &hbuf);
    if (st != RT_NPY_OK)
        goto done;

    int64_t numel = 1;
    for (int i = 0; i < h.rank; i++) {
        if (__builtin_mul_overflow(numel, h.dims[i], &numel) || numel > INT64_MAX / 4) {
            st = fail(err, errlen, RT_NPY_EFORMAT, path, "shape %s has too many elements",
                      shape_text(shape, sizeof shape, h.rank, h.dims));
            goto done;
        }
    }
    uint64_t need = (uint64_t)numel * 4;
    uint64_t have = size - (uint64_t)ftello(fp);
    if (have < need) {
        st = fail(err, errlen, RT_NPY_EFORMAT, path,
                  "truncated data: shape %s needs %llu bytes, the file has %llu after the header",
                  shape_text(shape, sizeof shape, h.rank, h.dims), (unsigned long long)need,
                  (unsigned long long)have);
        goto done;
    }
    if (have > need) {
        st = fail(err, errlen, RT_NPY_EFORMAT, path,
                  "%llu unexpected bytes after the data of shape %s",
                  (unsigned long long)(have - need), shape_text(shape, sizeof shape, h.rank, h.dims));
        goto done;
    }
    data = cnn_mem_malloc(need > 0 ? (size_t)need : 1);
    if (!data) {
        st = fail(err, errlen, RT_NPY_ENOMEM, path, "out of memory for %llu bytes of data",
                  (unsigned long long)need);
        goto done;
    }
    if (fread(data, 4, (size_t)numel, fp) != (size_t)numel) {
        st = fail(err, errlen, RT_NPY_EIO, path, "read error in the data");
        goto done;
    }
    if (RT_HOST_BIG_ENDIAN)
        rt_swap_floats(data, (size_t)numel);
    out->rank = h.rank;
    memcpy(out->dims, h.dims, sizeof out->dims);
    out->numel = numel;
    out->data = data;
    data = NULL;
done:
    cnn_mem_free(data);
    cnn_mem_free(hbuf);
    fclose(fp);
    return st;
}

/* ---- writing ---- */


/* The version 1.0 preamble and header numpy.save writes for this shape; returns its length. */
static size_t make_header(char *buf, size_t cap, int rank, const int64_t *dims)
{
    size_t n = 10;  /* magic, version, 2-byte length: filled in at the end */
    n += (size_t)snprintf(buf + n, cap - n, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    n += (size_t)snprintf(buf + n, cap - n, "%s), }", rank == 1 ? "," : "");
    if (rank > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)dims[0]);
        for (int i = digits; i < GROWTH_DIGITS; i++)
            buf[n++] = ' ';
    }
    /* As numpy does: 1 to 64 spaces, so that the '\n' ends on a multiple of 64. */
    size_t pad = ALIGN - (n + 1) % ALIGN;
    memset(buf + n, ' ', pad);
    n += pad;
    buf[n++] = '\n';
    memcpy(buf, MAGIC, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)((n - 10) & 0xff);
    buf[9] = (char)((n - 10) >> 8);
    return n;
}

rt_npy_status rt_npy_write(const char *path, int rank, const int64_t *dims, const float *data,
                           char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!path)
        return fail(err, errlen, RT_NPY_EARG, path, "no file name");
    if (rank < 0 || rank > RT_NPY_MAX_RANK || (rank > 0 && !dims))
        return fail(err, errlen, RT_NPY_EARG, path, "rank %d, expected 0 to %d", rank,
                    RT_NPY_MAX_RANK);
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return fail(err, errlen, RT_NPY_EARG, path, "negative dimension %lld",
                        (long long)dims[i]);
        if (__builtin_mul_overflow(numel, dims[i], &numel) || numel > INT64_MAX / 4)
            return fail(err, errlen, RT_NPY_EARG, path, "the array is too large");
    }
    if (numel > 0 && !data)
        return fail(err, errlen, RT_NPY_EARG, path, "no data");

    /* 10 + 52 + rank * 22 + 4 + 21 + 64 bytes at most: 512 is plenty for rank 8. */
    char hdr[512];
    size_t hlen = make_header(hdr, sizeof hdr, rank, dims);

    rt_outfile out;
    if (rt_out_open(&out, path) != 0)
        return fail(err, errlen, RT_NPY_EIO, path, "cannot create a temporary file next to it: %s",
                    strerror(errno));
    char msg[512];
    if (fwrite(hdr, 1, hlen, out.fp) != hlen || !rt_write_floats(out.fp, data, numel)) {
        snprintf(msg, sizeof msg, "write error: %s", strerror(errno));
        rt_out_abort(&out);
        return fail(err, errlen, RT_NPY_EIO, path, "%s", msg);
    }
    if (rt_out_commit(&out, msg, sizeof msg) != 0)
        return fail(err, errlen, RT_NPY_EIO, path, "%s", msg);
    return RT_NPY_OK;
}
