/* safetensors reader and writer for F32 tensors (see safetensors.h).  The header is parsed with
 * cJSON and checked in full before any data is read; the data area is read in one piece and the
 * tensors point into it.  Files and buffers in memory go through the same parser (parse(), over
 * a source), so they are checked alike and fail with the same messages. */
#include "runtime/fileio.h"
#include "ops/mem.h"
#include "runtime/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_LIMIT 100000000ull          /* bytes; a longer header is rejected as absurd */
#define JSON_INT_LIMIT 9007199254740992.0  /* 2^53: larger JSON numbers are not exact */

/* Formats "path: message" into err and returns st. */
static rt_st_status __attribute__((format(printf, 5, 6)))
fail(char *err, size_t errlen, rt_st_status st, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vformat_error(err, errlen, path, fmt, ap);
    va_end(ap);
    return st;
}

int rt_st_format_shape(char *buf, size_t buflen, int rank, const int64_t *dims)
{
    size_t len = 0;
    int last = rank > 0 ? rank : 0;
    for (int i = -1; i <= last; i++) {
        char piece[32];
        if (i < 0)
            snprintf(piece, sizeof piece, "[");
        else if (i == last)
            snprintf(piece, sizeof piece, "]");
        else
            snprintf(piece, sizeof piece, "%s%lld", i > 0 ? "," : "", (long long)dims[i]);
        if (len < buflen)
            snprintf(buf + len, buflen - len, "%s", piece);
        len += strlen(piece);
    }
    return (int)len;
}

/* ---- reading ---- */

/* A header entry while it is being checked. */
typedef struct entry {
    const char *name;   /* points into the cJSON tree */
    int rank;
    int64_t dims[RT_ST_MAX_RANK];
    int64_t numel;
    uint64_t begin, end;
} entry;

typedef struct st_file {
    rt_st_file pub;     /* first, so an rt_st_file * is an st_file * */
    rt_st_tensor *tensors;
    char *names;
    float *data;
    char **meta;        /* meta_slots keys then meta_slots values, each malloc'd (or NULL) */
    int meta_slots;
} st_file;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* Index of a name that appears twice among names[0..n) (by stride), or -1.  order is scratch
 * space for n pointers. */
static int find_duplicate(const char *const *names, size_t stride, int n,
                          const char *const **order)
{
    for (int i = 0; i < n; i++)
        order[i] = (const char *const *)((const char *)names + (size_t)i * stride);
    qsort(order, (size_t)n, sizeof *order, cmp_name);
    for (int i = 1; i < n; i++)
        if (strcmp(*order[i - 1], *order[i]) == 0)
            return (int)(((const char *)order[i] - (const char *)names) / stride);
    return -1;
}

static int cmp_offsets(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_count(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= JSON_INT_LIMIT) || v != floor(v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static rt_st_status check_entry(const char *path, const cJSON *item, entry *e,
                                char *err, size_t errlen)
{
    const char *name = item->string;
    char shape_text[256];
    e->name = name;
    if (!cJSON_IsObject(item))
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s is not an object in the header", name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!dtype)
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has no dtype", name);
    if (!shape)
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has no shape", name);
    if (!offsets)
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has no data_offsets", name);

    if (!cJSON_IsString(dtype))
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has a dtype that is not a string", name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has dtype %s, expected F32", name,
                    dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has a shape that is not an array", name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > RT_ST_MAX_RANK)
        return fail(err, errlen, RT_ST_EFORMAT, path, "%s has rank %d, at most %d is supported",
                    name, rank, RT_ST_MAX_RANK);
    e->rank = rank;
    e->numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || !isfinite(d->valuedouble) || d->valuedouble != floor(d->valuedouble))
            return fail(err, errlen, RT_ST_EFORMAT, path,
                        "%s has a shape entry that is not an integer", name);
        /* %.0f for numbers with an exact integer text, %g for the rest */
        const char *f = fabs(d->valuedouble) <= JSON_INT_LIMIT ? "%.0f" : "%g";
        char num[32];
        snprintf(num, sizeof num, f, d->valuedouble);
        if (d->valuedouble < 0)
            return fail(err, errlen, RT_ST_EFORMAT, path,
                        "%s has a negative dimension %s in its shape", name, num);
        if (d->valuedouble > JSON_INT_LIMIT)
            return fail(err, errlen, RT_ST_EFORMAT, path,
                        "%s has a dimension %s in its shape that is too large", name, num);
        e->dims[i++] = (int64_t)d->valuedouble;
    }
    for (i = 0; i < rank; i++) {
        if (__builtin_mul_overflow(e->numel, e->dims[i], &e->numel) || e->numel > INT64_MAX / 4) {
            rt_st_format_shape(shape_text, sizeof shape_text, rank, e->dims);
            return fail(err, errlen, RT_ST_EFORMAT, path, "%s has shape %s, which is too large",
                        name, shape_text);
        }
    }

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_count(cJSON_GetArrayItem(offsets, 0), &e->begin) ||
        !json_count(cJSON_GetArrayItem(offsets, 1), &e->end))
        return fail(err, errlen, RT_ST_EFORMAT, path,
                    "%s has data_offsets that are not [begin, end] with non-negative integers",
                    name);
    if (e->begin > e->end)
        return fail(err, errlen, RT_ST_EFORMAT, path,
                    "%s has data_offsets [%llu,%llu] out of order (begin after end)", name,
                    (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != (uint64_t)e->numel * 4) {
        rt_st_format_shape(shape_text, sizeof shape_text, rank, e->dims);
        return fail(err, errlen, RT_ST_EFORMAT, path,
                    "%s has data_offsets [%llu,%llu] (%llu bytes), its shape %s needs %llu bytes",
                    name, (unsigned long long)e->begin, (unsigned long long)e->end,
                    (unsigned long long)(e->end - e->begin), shape_text,
                    (unsigned long long)e->numel * 4);
    }
    return RT_ST_OK;
}

/* Checks that the entries tile the data area [0, data_len) exactly. */
static rt_st_status check_layout(const char *path, entry *entries, int n, uint64_t data_len,
                                 char *err, size_t errlen)
{
    entry *last = NULL;
    for (int i = 0; i < n; i++)
        if (!last || entries[i].end > last->end)
            last = &entries[i];
    if (last && last->end > data_len)
        return fail(err, errlen, RT_ST_EFORMAT, path,
                    "truncated: %s needs bytes up to %llu of the data area, which has only %llu",
                    last->name, (unsigned long long)last->end, (unsigned long long)data_len);

    entry **order = cnn_mem_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order)
        return fail(err, errlen, RT_ST_ENOMEM, path, "out of memory");
    for (int i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, (size_t)n, sizeof *order, cmp_offsets);
    rt_st_status st = RT_ST_OK;
    uint64_t expect = 0;
    const entry *prev = NULL;
    for (int i = 0; i < n && st == RT_ST_OK; i++) {
        const entry *e = order[i];
        if (e->begin < expect)
            st = fail(err, errlen, RT_ST_EFORMAT, path,
                      "%s and %s overlap (data_offsets [%llu,%llu] and [%llu,%llu])", prev->name,
                      e->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                      (unsigned long long)e->begin, (unsigned long long)e->end);
        else if (e->begin > expect)
            st = fail(err, errlen, RT_ST_EFORMAT, path,
                      "bytes %llu to %llu of the data area, before %s, belong to no tensor",
                      (unsigned long long)expect, (unsigned long long)e->begin, e->name);
        expect = e->end;
        prev = e;
    }
    cnn_mem_free(order);
    if (st == RT_ST_OK && expect < data_len)
        st = fail(err, errlen, RT_ST_EFORMAT, path,
                  "bytes %llu to %llu of the data area, after the last tensor, belong to no tensor",
                  (unsigned long long)expect, (unsigned long long)data_len);
    return st;
}

void rt_st_free(rt_st_file *f)
{
    st_file *s = (st_file *)f;
    if (!s)
        return;
    for (int i = 0; s->meta && i < 2 * s->meta_slots; i++)
        cnn_mem_free(s->meta[i]);
    cnn_mem_free(s->meta);
    cnn_mem_free(s->tensors);
    cnn_mem_free(s->names);
    cnn_mem_free(s->data);
    cnn_mem_free(s);
}

/* Builds the file from checked entries and the data area already in memory. */
/* Copies the string entries of the "__metadata__" object meta (may be NULL) into s. */
static int copy_meta(st_file *s, const cJSON *meta)
{
    int nm = 0;
    const cJSON *item;
    if (cJSON_IsObject(meta))
        cJSON_ArrayForEach(item, meta)
            nm += cJSON_IsString(item) && item->valuestring != NULL;
    s->meta = cnn_mem_calloc((size_t)(2 * nm + 1), sizeof *s->meta);
    if (!s->meta)
        return -1;
    s->meta_slots = nm; /* freed by rt_st_free from here on */
    int k = 0;
    if (nm > 0)
        cJSON_ArrayForEach(item, meta) {
            if (!cJSON_IsString(item) || !item->valuestring)
                continue;
            s->meta[k] = cnn_mem_strdup(item->string);
            s->meta[nm + k] = cnn_mem_strdup(item->valuestring);
            if (!s->meta[k] || !s->meta[nm + k])
                return -1;
            k++;
        }
    s->pub.nmeta = nm;
    s->pub.meta_keys = (const char *const *)s->meta;
    s->pub.meta_values = (const char *const *)s->meta + nm;
    return 0;
}

const char *rt_st_meta(const rt_st_file *f, const char *key)
{
    for (int i = 0; f && key && i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

static rt_st_status build_file(rt_st_file **out, const char *path, const entry *entries, int n,
                               float *data, const cJSON *meta, char *err, size_t errlen)
{
    st_file *s = cnn_mem_calloc(1, sizeof *s);
    size_t names_len = 0;
    for (int i = 0; i < n; i++)
        names_len += strlen(entries[i].name) + 1;
    if (s) {
        s->tensors = cnn_mem_calloc((size_t)(n > 0 ? n : 1), sizeof *s->tensors);
        s->names = cnn_mem_malloc(names_len > 0 ? names_len : 1);
    }
    if (!s || !s->tensors || !s->names) {
        cnn_mem_free(data);
        rt_st_free((rt_st_file *)s);
        return fail(err, errlen, RT_ST_ENOMEM, path, "out of memory");
    }
    s->data = data;
    if (copy_meta(s, meta) != 0) {
        rt_st_free((rt_st_file *)s);
        return fail(err, errlen, RT_ST_ENOMEM, path, "out of memory");
    }
    char *p = s->names;
    for (int i = 0; i < n; i++) {
        rt_st_tensor *t = &s->tensors[i];
        size_t k = strlen(entries[i].name) + 1;
        memcpy(p, entries[i].name, k);
        t->name = p;
        p += k;
        t->rank = entries[i].rank;
        memcpy(t->dims, entries[i].dims, sizeof t->dims);
        t->numel = entries[i].numel;
        t->data = data + entries[i].begin / 4;
    }
    s->pub.count = n;
    s->pub.tensors = s->tensors;
    *out = &s->pub;
    return RT_ST_OK;
}

/* Where the bytes come from: an open file, or a buffer in memory (fp NULL). */
typedef struct source {
    FILE *fp;
    const unsigned char *mem;
    uint64_t size, pos;  /* the whole length, and how far reading has got */
} source;

static size_t src_read(source *src, void *dst, size_t n)
{
    size_t got;
    if (src->fp) {
        got = fread(dst, 1, n, src->fp);
    } else {
        got = src->size - src->pos < n ? (size_t)(src->size - src->pos) : n;
        if (got)
            memcpy(dst, src->mem + src->pos, got);
    }
    src->pos += got;
    return got;
}

static int src_error(const source *src) { return src->fp ? ferror(src->fp) : 0; }

/* Checks the parsed header and reads the data area that follows it. */
static rt_st_status read_tensors(rt_st_file **out, const char *path, source *src, const cJSON *root,
                                 uint64_t data_len, char *err, size_t errlen)
{
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
        if (strcmp(item->string, "__metadata__") != 0)
            n++;
    entry *entries = cnn_mem_calloc((size_t)(n > 0 ? n : 1), sizeof *entries);
    const char *const **order = cnn_mem_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    float *data = NULL;
    rt_st_status st = RT_ST_OK;
    if (!entries || !order) {
        st = fail(err, errlen, RT_ST_ENOMEM, path, "out of memory");
        goto done;
    }
    int i = 0;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0)
            continue;
        st = check_entry(path, item, &entries[i++], err, errlen);
        if (st != RT_ST_OK)
            goto done;
    }
    int dup = find_duplicate(&entries[0].name, sizeof *entries, n, order);
    if (dup >= 0) {
        st = fail(err, errlen, RT_ST_EFORMAT, path, "duplicate tensor name %s", entries[dup].name);
        goto done;
    }
    st = check_layout(path, entries, n, data_len, err, errlen);
    if (st != RT_ST_OK)
        goto done;

    /* The entries tile the data area and each is a multiple of 4 bytes, so every tensor starts
     * on a float boundary. */
    data = cnn_mem_malloc(data_len > 0 ? (size_t)data_len : 1);
    if (!data) {
        st = fail(err, errlen, RT_ST_ENOMEM, path, "out of memory for %llu bytes of data",
                  (unsigned long long)data_len);
        goto done;
    }
    size_t got = src_read(src, data, (size_t)data_len);
    if (got != data_len) {
        st = src_error(src) ? fail(err, errlen, RT_ST_EIO, path, "read error: %s", strerror(errno))
                        : fail(err, errlen, RT_ST_EFORMAT, path,
                               "truncated: the data area ends after %zu of %llu bytes", got,
                               (unsigned long long)data_len);
        goto done;
    }
    if (RT_HOST_BIG_ENDIAN)
        rt_swap_floats(data, (size_t)data_len / 4);
    st = build_file(out, path, entries, n, data, cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), err,
                    errlen);
    data = NULL;
done:
    cnn_mem_free(data);
    cnn_mem_free(order);
    cnn_mem_free(entries);
    return st;
}

/* Parses the safetensors bytes of src (named path in messages). */
static rt_st_status parse(rt_st_file **out, const char *path, source *src, char *err, size_t errlen)
{
    uint64_t size = src->size;
    char *header = NULL;
    cJSON *root = NULL;
    rt_st_status st;
    unsigned char lenbuf[8];
    if (size < 8 || src_read(src, lenbuf, 8) != 8) {
        st = fail(err, errlen, RT_ST_EFORMAT, path,
                  "file is %llu bytes, too short for the 8-byte header length",
                  (unsigned long long)size);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbuf[i];
    if (hlen > HEADER_LIMIT) {
        st = fail(err, errlen, RT_ST_EFORMAT, path,
                  "header length %llu is absurd (the limit is %llu bytes)",
                  (unsigned long long)hlen, HEADER_LIMIT);
        goto done;
    }
    if (hlen > size - 8) {
        st = fail(err, errlen, RT_ST_EFORMAT, path,
                  "header length %llu is larger than the rest of the file (%llu bytes)",
                  (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto done;
    }
    header = cnn_mem_malloc((size_t)hlen + 1);
    if (!header) {
        st = fail(err, errlen, RT_ST_ENOMEM, path, "out of memory for the header");
        goto done;
    }
    if (src_read(src, header, (size_t)hlen) != hlen) {
        st = fail(err, errlen, RT_ST_EIO, path, "read error in the header");
        goto done;
    }
    header[hlen] = '\0';

    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(header, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= header && end <= header + hlen ? (size_t)(end - header) : 0;
        st = fail(err, errlen, RT_ST_EFORMAT, path,
                  "header is not valid JSON (error at byte %zu of the header)", at);
        goto done;
    }
    for (const char *p = end; p && p < header + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = fail(err, errlen, RT_ST_EFORMAT, path,
                      "header has bytes after the JSON object (at byte %zu of the header)",
                      (size_t)(p - header));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = fail(err, errlen, RT_ST_EFORMAT, path, "header is not a JSON object");
        goto done;
    }
    st = read_tensors(out, path, src, root, size - 8 - hlen, err, errlen);
done:
    cJSON_Delete(root);
    cnn_mem_free(header);
    return st;
}

rt_st_status rt_st_read(rt_st_file **out, const char *path, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!out)
        return fail(err, errlen, RT_ST_EARG, path, "no place for the result");
    *out = NULL;
    if (!path)
        return fail(err, errlen, RT_ST_EARG, path, "no file name");

    char msg[256];
    uint64_t size;
    FILE *fp = rt_open_regular(path, &size, msg, sizeof msg);
    if (!fp)
        return fail(err, errlen, RT_ST_EIO, path, "%s", msg);
    source src = {.fp = fp, .size = size};
    rt_st_status st = parse(out, path, &src, err, errlen);
    fclose(fp);
    return st;
}

rt_st_status rt_st_read_memory(rt_st_file **out, const char *name, const void *data, size_t len,
                               char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!name)
        name = "<memory>";
    if (!out)
        return fail(err, errlen, RT_ST_EARG, name, "no place for the result");
    *out = NULL;
    if (!data && len > 0)
        return fail(err, errlen, RT_ST_EARG, name, "no data");
    source src = {.mem = data, .size = (uint64_t)len};
    return parse(out, name, &src, err, errlen);
}

const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

/* ---- writing ---- */

/* A growing string; ok drops to 0 when memory runs out. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int ok;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (!b->ok)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = cnn_mem_realloc(b->s, cap);
        if (!p) {
            b->ok = 0;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[32];
    sb_add(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

/* Appends s as a JSON string literal. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            sb_add(b, tmp, 2);
        } else if (*p < 0x20) {
            sb_add(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p));
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}


/* Checks the caller's tensors and stores each one's element count in numel[]. */
static rt_st_status check_write_args(const char *path, int n, const rt_st_tensor *t,
                                     int64_t *numel, char *err, size_t errlen)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        if (!name || !name[0])
            return fail(err, errlen, RT_ST_EARG, path, "tensor %d has no name", i);
        if (strcmp(name, "__metadata__") == 0)
            return fail(err, errlen, RT_ST_EARG, path, "__metadata__ is not a tensor name");
        if (t[i].rank < 0 || t[i].rank > RT_ST_MAX_RANK)
            return fail(err, errlen, RT_ST_EARG, path, "%s has rank %d, expected 0 to %d", name,
                        t[i].rank, RT_ST_MAX_RANK);
        int64_t k = 1;
        for (int d = 0; d < t[i].rank; d++) {
            if (t[i].dims[d] < 0)
                return fail(err, errlen, RT_ST_EARG, path, "%s has a negative dimension %lld",
                            name, (long long)t[i].dims[d]);
            if (__builtin_mul_overflow(k, t[i].dims[d], &k) || k > INT64_MAX / 4)
                return fail(err, errlen, RT_ST_EARG, path, "%s is too large", name);
        }
        if (k > 0 && !t[i].data)
            return fail(err, errlen, RT_ST_EARG, path, "%s has no data", name);
        total += (uint64_t)k * 4;
        if (total > (uint64_t)INT64_MAX / 2)
            return fail(err, errlen, RT_ST_EARG, path, "the tensors are too large together");
        numel[i] = k;
    }
    return RT_ST_OK;
}

rt_st_status rt_st_write(const char *path, int n, const rt_st_tensor *tensors,
                         char *err, size_t errlen)
{
    return rt_st_write_meta(path, n, tensors, 0, NULL, NULL, err, errlen);
}

rt_st_status rt_st_write_meta(const char *path, int n, const rt_st_tensor *tensors, int nmeta,
                              const char *const *keys, const char *const *values, char *err,
                              size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!path)
        return fail(err, errlen, RT_ST_EARG, path, "no file name");
    if (n < 0 || (n > 0 && !tensors))
        return fail(err, errlen, RT_ST_EARG, path, "bad tensor list");

    int64_t *numel = cnn_mem_malloc((size_t)(n > 0 ? n : 1) * sizeof *numel);
    const char *const **order = cnn_mem_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    sbuf h = {NULL, 0, 0, 1};
    rt_outfile out;
    rt_st_status st;
    if (!numel || !order) {
        st = fail(err, errlen, RT_ST_ENOMEM, path, "out of memory");
        goto done;
    }
    st = check_write_args(path, n, tensors, numel, err, errlen);
    if (st != RT_ST_OK)
        goto done;
    int dup = n > 0 ? find_duplicate(&tensors[0].name, sizeof *tensors, n, order) : -1;
    if (dup >= 0) {
        st = fail(err, errlen, RT_ST_EARG, path, "duplicate tensor name %s", tensors[dup].name);
        goto done;
    }

    for (int i = 0; i < nmeta; i++)
        if (!keys || !values || !keys[i] || !values[i]) {
            st = fail(err, errlen, RT_ST_EARG, path, "metadata entry %d has no key or value", i);
            goto done;
        }
    sb_str(&h, "{");
    if (nmeta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i > 0)
                sb_str(&h, ",");
            sb_json_string(&h, keys[i]);
            sb_str(&h, ":");
            sb_json_string(&h, values[i]);
        }
        sb_str(&h, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const rt_st_tensor *t = &tensors[i];
        if (i > 0 || nmeta > 0)
            sb_str(&h, ",");
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->rank; d++) {
            if (d > 0)
                sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t->dims[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_str(&h, ",");
        offset += (uint64_t)numel[i] * 4;
        sb_u64(&h, offset);
        sb_str(&h, "]}");
    }
    sb_str(&h, "}");
    while (h.ok && h.len % 8 != 0)
        sb_str(&h, " ");
    if (!h.ok) {
        st = fail(err, errlen, RT_ST_ENOMEM, path, "out of memory for the header");
        goto done;
    }

    if (rt_out_open(&out, path) != 0) {
        st = fail(err, errlen, RT_ST_EIO, path, "cannot create a temporary file next to it: %s",
                  strerror(errno));
        goto done;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(lenbuf, 1, 8, out.fp) == 8 && fwrite(h.s, 1, h.len, out.fp) == h.len;
    for (int i = 0; ok && i < n; i++)
        ok = rt_write_floats(out.fp, tensors[i].data, numel[i]);
    char msg[512];
    if (!ok) {
        st = fail(err, errlen, RT_ST_EIO, path, "write error: %s", strerror(errno));
        rt_out_abort(&out);
        goto done;
    }
    if (rt_out_commit(&out, msg, sizeof msg) != 0)
        st = fail(err, errlen, RT_ST_EIO, path, "%s", msg);
done:
    cnn_mem_free(h.s);
    cnn_mem_free(order);
    cnn_mem_free(numel);
    return st;
}
