/* MNIST IDX reader (see idx.h).  Both files of a split are read through zlib's gz* functions,
 * which read plain and gzip-compressed files alike.  The headers of both files are checked
 * before any data is read; the data is read in chunks into arrays that grow as it arrives, so a
 * header that claims far more images than the file holds fails as truncated without first
 * allocating what it claims. */
#include "runtime/fileio.h"
#include "ops/mem.h"
#include "runtime/idx.h"
#include "runtime/sysmem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAGIC_IMAGES 0x00000803u  /* unsigned bytes, 3 dimensions */
#define MAGIC_LABELS 0x00000801u  /* unsigned bytes, 1 dimension */
#define MAX_SIDE 65535            /* rows or cols above this are absurd */
#define MAX_IMAGE (1 << 24)       /* pixels per image above this are absurd */
#define CHUNK (1u << 20)          /* bytes read per gzread call */

static const char *const IMAGES_NAME[2] = {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"};
static const char *const LABELS_NAME[2] = {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"};

/* Formats "where: message" into err and returns st. */
static rt_idx_status __attribute__((format(printf, 5, 6)))
fail(char *err, size_t errlen, rt_idx_status st, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vformat_error(err, errlen, where, fmt, ap);
    va_end(ap);
    return st;
}

/* One open IDX file. */
typedef struct idx_file {
    char *path;       /* the file opened: plain or with .gz */
    gzFile gz;
    int64_t count;    /* first dimension */
    int64_t rows, cols;
} idx_file;

static void close_file(idx_file *f)
{
    if (f->gz)
        gzclose_r(f->gz);
    cnn_mem_free(f->path);
    memset(f, 0, sizeof *f);
}

/* dir/name, without doubling a trailing '/'; NULL when out of memory. */
static char *join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir);
    const char *sep = n > 0 && dir[n - 1] == '/' ? "" : "/";
    size_t len = n + strlen(sep) + strlen(name) + strlen(suffix) + 1;
    char *p = cnn_mem_malloc(len);
    if (p)
        snprintf(p, len, "%s%s%s%s", dir, sep, name, suffix);
    return p;
}

/* Finds dir/name or dir/name.gz.  Returns RT_IDX_OK with *found set to the path (malloc'd), or
 * RT_IDX_OK with *found NULL when neither exists, or an error. */
static rt_idx_status locate(const char *dir, const char *name, char **found,
                            char *err, size_t errlen)
{
    *found = NULL;
    for (int gz = 0; gz < 2; gz++) {
        char *p = join(dir, name, gz ? ".gz" : "");
        if (!p)
            return fail(err, errlen, RT_IDX_ENOMEM, dir, "out of memory");
        struct stat sb;
        if (stat(p, &sb) == 0) {
            *found = p;
            return RT_IDX_OK;
        }
        int e = errno;
        if (e != ENOENT) {
            rt_idx_status st = fail(err, errlen, RT_IDX_EIO, p, "cannot open: %s", strerror(e));
            cnn_mem_free(p);
            return st;
        }
        cnn_mem_free(p);
    }
    return RT_IDX_OK;
}

/* Reads up to n bytes; returns the number read, or -1 on a read or decompression error. */
static int64_t read_bytes(gzFile gz, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        unsigned want = (unsigned)(n - done < CHUNK ? n - done : CHUNK);
        int got = gzread(gz, (char *)buf + done, want);
        if (got < 0)
            return -1;
        done += (size_t)got;
        if ((unsigned)got < want)
            break;
    }
    return (int64_t)done;
}

static rt_idx_status read_error(const idx_file *f, char *err, size_t errlen)
{
    int code = Z_OK;
    const char *msg = gzerror(f->gz, &code);
    if (code == Z_ERRNO)
        msg = strerror(errno);
    else if (msg && strncmp(msg, f->path, strlen(f->path)) == 0 &&
             strncmp(msg + strlen(f->path), ": ", 2) == 0)
        msg += strlen(f->path) + 2;  /* zlib puts the path in front */
    return fail(err, errlen, RT_IDX_EIO, f->path, "read error: %s", msg && *msg ? msg : "unknown");
}

static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opens path and reads and checks its header: images when want_images, else labels. */
static rt_idx_status open_file(idx_file *f, char *path, int want_images, char *err, size_t errlen)
{
    f->path = path;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return fail(err, errlen, errno ? RT_IDX_EIO : RT_IDX_ENOMEM, path, "cannot open: %s",
                    errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, 1u << 17);
    const char *what = want_images ? "images" : "labels";
    uint32_t magic = want_images ? MAGIC_IMAGES : MAGIC_LABELS;
    size_t hlen = want_images ? 16 : 8;
    unsigned char h[16];
    int64_t got = read_bytes(f->gz, h, hlen);
    if (got < 0)
        return read_error(f, err, errlen);
    if (got < 4 || load_be32(h) != magic) {
        if (got < 4)
            return fail(err, errlen, RT_IDX_EFORMAT, path,
                        "file is %lld bytes, too short for an IDX magic number", (long long)got);
        return fail(err, errlen, RT_IDX_EFORMAT, path,
                    "bad magic number 0x%08X, expected 0x%08X (%s)", load_be32(h), magic, what);
    }
    if ((size_t)got < hlen)
        return fail(err, errlen, RT_IDX_EFORMAT, path,
                    "truncated header: %lld of %zu bytes", (long long)got, hlen);
    f->count = load_be32(h + 4);
    f->rows = f->cols = 1;
    if (want_images) {
        f->rows = load_be32(h + 8);
        f->cols = load_be32(h + 12);
        if (f->rows < 1 || f->cols < 1 || f->rows > MAX_SIDE || f->cols > MAX_SIDE ||
            f->rows * f->cols > MAX_IMAGE)
            return fail(err, errlen, RT_IDX_EFORMAT, path,
                        "image size %lldx%lld is absurd (each side must be 1 to %d, at most %d "
                        "pixels)", (long long)f->rows, (long long)f->cols, MAX_SIDE, MAX_IMAGE);
    }
    if (f->count == 0)
        return fail(err, errlen, RT_IDX_EFORMAT, path, "holds no %s", what);
    return RT_IDX_OK;
}

/* Grows *buf (elements of size elem) to hold at least need elements, doubling up to limit. */
static int grow(void **buf, int64_t *cap, int64_t need, int64_t limit, size_t elem)
{
    if (need <= *cap)
        return 1;
    int64_t c = *cap > 0 ? *cap : 1;
    while (c < need)
        c *= 2;
    if (c > limit)
        c = limit;
    void *p = cnn_mem_realloc(*buf, (size_t)c * elem);
    if (!p)
        return 0;
    *buf = p;
    *cap = c;
    return 1;
}

/* Fails unless f has been read to its end, cleanly. */
static rt_idx_status check_end(const idx_file *f, const char *what, char *err, size_t errlen)
{
    unsigned char extra;
    int got = gzread(f->gz, &extra, 1);
    if (got < 0)
        return read_error(f, err, errlen);
    if (got > 0)
        return fail(err, errlen, RT_IDX_EFORMAT, f->path, "unexpected data after the %lld %s",
                    (long long)f->count, what);
    int code = Z_OK;
    gzerror(f->gz, &code);
    if (code == Z_BUF_ERROR)
        return fail(err, errlen, RT_IDX_EFORMAT, f->path, "truncated gzip stream");
    if (code != Z_OK)
        return read_error(f, err, errlen);
    return RT_IDX_OK;
}

static rt_idx_status read_labels(idx_file *f, rt_idx_set *s, char *err, size_t errlen)
{
    int64_t cap = 0, done = 0;
    while (done < f->count) {
        int64_t want = f->count - done < CHUNK ? f->count - done : CHUNK;
        if (!grow((void **)&s->labels, &cap, done + want, f->count, 1))
            return fail(err, errlen, RT_IDX_ENOMEM, f->path, "out of memory for the labels");
        int64_t got = read_bytes(f->gz, s->labels + done, (size_t)want);
        if (got < 0)
            return read_error(f, err, errlen);
        done += got;
        if (got < want)
            return fail(err, errlen, RT_IDX_EFORMAT, f->path,
                        "truncated: the file ends after %lld of %lld labels", (long long)done,
                        (long long)f->count);
    }
    int max = 0;
    for (int64_t i = 0; i < f->count; i++)
        if (s->labels[i] > max)
            max = s->labels[i];
    s->classes = max + 1;
    return check_end(f, "labels", err, errlen);
}

static rt_idx_status read_images(idx_file *f, rt_idx_set *s, char *err, size_t errlen)
{
    int64_t image = f->rows * f->cols;
    int64_t per_chunk = CHUNK / image > 0 ? CHUNK / image : 1;
    rt_idx_status st = RT_IDX_OK;
    int64_t cap = 0, done = 0;
    /* the header's count, against the machine's memory, before anything grows (the buffer only
     * grows as data arrives, so a lying header costs no more than the file holds) */
    char why[256];
    if (rt_mem_check((uint64_t)f->count * (uint64_t)image, "loading its images", why, sizeof why) != 0)
        return fail(err, errlen, RT_IDX_EFORMAT, f->path, "%lld images of %lldx%lld: %s", (long long)f->count,
                    (long long)f->rows, (long long)f->cols, why);
    while (done < f->count && st == RT_IDX_OK) {
        int64_t n = f->count - done < per_chunk ? f->count - done : per_chunk;
        if (!grow((void **)&s->pixels, &cap, (done + n) * image, f->count * image, 1)) {
            st = fail(err, errlen, RT_IDX_ENOMEM, f->path, "out of memory for the images");
            break;
        }
        int64_t got = read_bytes(f->gz, s->pixels + done * image, (size_t)(n * image));
        if (got < 0) {
            st = read_error(f, err, errlen);
            break;
        }
        if (got < n * image)
            st = fail(err, errlen, RT_IDX_EFORMAT, f->path,
                      "truncated: the file ends after %lld of %lld images",
                      (long long)(done + got / image), (long long)f->count);
        done += n;
    }
    return st != RT_IDX_OK ? st : check_end(f, "images", err, errlen);
}

void rt_idx_free(rt_idx_set *s)
{
    if (!s)
        return;
    cnn_mem_free(s->pixels);
    cnn_mem_free(s->labels);
    cnn_mem_free(s->images_path);
    memset(s, 0, sizeof *s);
}

rt_idx_status rt_idx_load(rt_idx_set *out, const char *dir, rt_idx_split split,
                          char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!out)
        return fail(err, errlen, RT_IDX_EIO, dir, "no place for the result");
    memset(out, 0, sizeof *out);
    if (!dir)
        return fail(err, errlen, RT_IDX_EIO, dir, "no data folder given");
    if (split != RT_IDX_TRAIN && split != RT_IDX_TEST)
        return fail(err, errlen, RT_IDX_EIO, dir, "unknown split %d", (int)split);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return fail(err, errlen, RT_IDX_EIO, dir, "cannot open the data folder: %s",
                    strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return fail(err, errlen, RT_IDX_EIO, dir, "not a folder");

    const char *images_name = IMAGES_NAME[split], *labels_name = LABELS_NAME[split];
    char *images_path = NULL, *labels_path = NULL;
    idx_file im = {0}, lb = {0};
    rt_idx_status st = locate(dir, images_name, &images_path, err, errlen);
    if (st == RT_IDX_OK)
        st = locate(dir, labels_name, &labels_path, err, errlen);
    if (st != RT_IDX_OK)
        goto done;
    if (!images_path || !labels_path) {
        if (!images_path && !labels_path) {
            st = fail(err, errlen, RT_IDX_ABSENT, dir, "%s and %s (plain or .gz) are missing",
                      images_name, labels_name);
            goto done;
        }
        char *missing = join(dir, images_path ? labels_name : images_name, "");
        st = fail(err, errlen, RT_IDX_EIO, missing ? missing : dir,
                  "no such file (nor with .gz), though %s is there",
                  images_path ? images_path : labels_path);
        cnn_mem_free(missing);
        goto done;
    }

    st = open_file(&im, images_path, 1, err, errlen);
    images_path = NULL;
    if (st == RT_IDX_OK) {
        st = open_file(&lb, labels_path, 0, err, errlen);
        labels_path = NULL;
    }
    if (st != RT_IDX_OK)
        goto done;
    if (im.count != lb.count) {
        st = fail(err, errlen, RT_IDX_EFORMAT, lb.path, "%lld labels, but %s has %lld images",
                  (long long)lb.count, im.path, (long long)im.count);
        goto done;
    }
    out->count = im.count;
    out->rows = im.rows;
    out->cols = im.cols;
    st = read_labels(&lb, out, err, errlen);
    if (st == RT_IDX_OK)
        st = read_images(&im, out, err, errlen);
    if (st == RT_IDX_OK) {
        out->images_path = im.path;
        im.path = NULL;
    }
done:
    cnn_mem_free(images_path);
    cnn_mem_free(labels_path);
    close_file(&im);
    close_file(&lb);
    if (st != RT_IDX_OK)
        rt_idx_free(out);
    return st;
}

rt_idx_status rt_idx_check_input(const rt_idx_set *s, int rank, const int64_t *dims,
                                 char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (!s)
        return fail(err, errlen, RT_IDX_ESHAPE, "(null)", "no data set");
    const char *where = s->images_path ? s->images_path : "data";
    if (rank < 0 || (rank > 0 && !dims))
        return fail(err, errlen, RT_IDX_ESHAPE, where, "no network input shape");
    if (rank == 3 && dims[0] == 1 && dims[1] == s->rows && dims[2] == s->cols)
        return RT_IDX_OK;
    if (rank == 1 && dims[0] == s->rows * s->cols)
        return RT_IDX_OK;
    char shape[256];
    size_t len = (size_t)snprintf(shape, sizeof shape, "[");
    for (int i = 0; i < rank && len < sizeof shape; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i ? "," : "",
                                (long long)dims[i]);
    if (len < sizeof shape)
        snprintf(shape + len, sizeof shape - len, "]");
    return fail(err, errlen, RT_IDX_ESHAPE, where,
                "images are %lldx%lld, the network input has shape %s (it needs [1,%lld,%lld] "
                "or [%lld])", (long long)s->rows, (long long)s->cols, shape, (long long)s->rows,
                (long long)s->cols, (long long)(s->rows * s->cols));
}
