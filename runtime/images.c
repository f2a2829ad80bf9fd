/* Image folders (spec section 10): DIR/train/CLASS/NAME.png|jpg|jpeg and DIR/test/CLASS/..., read
 * with libpng and libjpeg(-turbo).  Classes are numbered in sorted (byte) order of the class
 * folder names found under train/ and test/ together, so that both splits number a class alike
 * even when one of them lacks some class; files are read in sorted order of their names.
 *
 * Each file is read whole, then decoded from memory.  The decoders' errors come back through
 * handlers that jump back into the decoding function (setjmp there, nowhere else), which
 * frees what it holds and returns a status: nothing exits, nothing jumps past our cleanup.
 * libjpeg's corrupt-data warnings (a truncated stream, bad Huffman codes...) are errors too: a
 * damaged image is never trained on silently.
 *
 * A dataset is grayscale (one channel) while every image is; the first colour image turns it
 * into RGB (the grayscale images before it replicated).  Alpha is dropped, palettes expanded,
 * 16-bit samples cut to their high byte. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jpeglib.h> /* after stdio.h, which it needs */
#include <png.h>

#include "ops/checked.h"
#include "ops/mem.h"
#include "runtime/data.h"
#include "runtime/sysmem.h"
#include "runtime/fileio.h"

/* Files above this are refused before they are read (a 4096x4096 RGB PNG stored without
 * compression is 48 MiB). */
#define MAX_FILE_BYTES ((uint64_t)256 << 20)
/* Deflate expands at most 1032 times: a PNG whose rows need more bytes than that times its size
 * lies about its dimensions. */
#define DEFLATE_MAX_RATIO 1032

void rt_image_free(rt_image *im)
{
    if (im) {
        cnn_mem_free(im->pixels);
        memset(im, 0, sizeof *im);
    }
}

/* ---- PNG ---- */

typedef struct png_src {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
    size_t refused;   /* a chunk buffer refused by png_alloc: its size, for the message */
} png_src;

static void png_read_memory(png_structp p, png_bytep out, size_t n)
{
    png_src *s = png_get_io_ptr(p);
    if (n > s->len - s->pos)
        png_error(p, "truncated: the file ends inside a chunk");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_fail(png_structp p, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(p);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(p, 1);
}

/* libpng's allocations go through the library's allocator (cnn_set_allocator).  libpng sizes
 * an ancillary chunk's buffer (sPLT, iCCP, text...) by the length the chunk claims, before
 * reading it: a 41-byte file claiming a 2 GB sPLT would have it allocate 2 GB.  Its own buffers
 * are never larger than a row (at most 65535 x 8 bytes) or what the file holds, so anything
 * above both is refused (and reported as the file's fault, not as memory running out). */
static png_voidp png_alloc(png_structp p, png_alloc_size_t n)
{
    png_src *s = png_get_mem_ptr(p);
    if (s && n > ((size_t)1 << 20) && n > s->len + 4096) {
        s->refused = n;
        return NULL;
    }
    return cnn_mem_malloc(n ? n : 1);
}

static void png_release(png_structp p, png_voidp ptr)
{
    (void)p;
    cnn_mem_free(ptr);
}

static void png_warn(png_structp p, png_const_charp msg)
{
    (void)p, (void)msg; /* benign: an ancillary chunk is skipped, the image is intact */
}

/* Copies rows of `got` interleaved channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) into the
 * channel-major im (1 or 3 channels). */
static void deinterleave(rt_image *im, const uint8_t *rows, size_t rowbytes, int got)
{
    int64_t plane = im->height * im->width;
    for (int64_t y = 0; y < im->height; y++) {
        const uint8_t *r = rows + (size_t)y * rowbytes;
        for (int64_t x = 0; x < im->width; x++)
            for (int64_t c = 0; c < im->channels; c++)
                im->pixels[c * plane + y * im->width + x] = r[x * got + c];
    }
}

static cnn_status decode_png(const void *data, size_t len, const char *name, int64_t max_pixels, rt_image *out,
                             char *err, size_t errlen)
{
    png_src src = {.data = data, .len = len};
    png_structp p = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &src, png_fail, png_warn, &src, png_alloc,
                                             png_release);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!p || !info) {
        png_destroy_read_struct(p ? &p : NULL, NULL, NULL);
        snprintf(err, errlen, "%s: out of memory", name);
        return CNN_ERR_NOMEM;
    }
    /* what the jump may leave behind: set only through these volatile pointers */
    uint8_t *volatile rows = NULL;
    png_bytep *volatile rowp = NULL;
    uint8_t *volatile pixels = NULL;
    volatile cnn_status st = CNN_ERR_INPUT;
    if (setjmp(png_jmpbuf(p))) {
        if (src.refused) {
            snprintf(err, errlen, "%s: a chunk claims %zu bytes, more than the %zu-byte file holds", name, src.refused,
                     len);
        } else if (strcasestr(src.msg, "memory")) { /* "Out of memory", "insufficient memory": our allocator failed */
            snprintf(err, errlen, "%s: out of memory (libpng: %s)", name, src.msg);
            st = CNN_ERR_NOMEM;
        } else {
            snprintf(err, errlen, "%s: %s", name, src.msg);
        }
        goto done;
    }
    png_set_user_limits(p, RT_DATA_MAX_SIDE, RT_DATA_MAX_SIDE);
    png_set_chunk_malloc_max(p, 8u << 20);
    png_set_read_fn(p, &src, png_read_memory);
    png_read_info(p, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(p, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if ((int64_t)w * (int64_t)h > max_pixels) {
        snprintf(err, errlen, "%s: %ux%u pixels is larger than the %" PRId64 " an image may have", name, (unsigned)w,
                 (unsigned)h, max_pixels);
        goto done;
    }
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(p);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(p);
    if (depth == 16)
        png_set_strip_16(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    int got = png_get_channels(p, info);
    size_t rowbytes = png_get_rowbytes(p, info), bytes;
    if (got < 1 || got > 4 || rowbytes < (size_t)w * (size_t)got || png_get_bit_depth(p, info) != 8) {
        snprintf(err, errlen, "%s: unsupported PNG layout (%d channels of %d bits)", name, got,
                 png_get_bit_depth(p, info));
        goto done;
    }
    if (!ck_mul_size(rowbytes, h, &bytes) || bytes / DEFLATE_MAX_RATIO > len) {
        snprintf(err, errlen, "%s: a %ux%u image cannot be held in a %zu-byte PNG file", name, (unsigned)w,
                 (unsigned)h, len);
        goto done;
    }
    rows = cnn_mem_malloc(bytes);
    rowp = cnn_mem_malloc(sizeof(png_bytep) * h);
    if (!rows || !rowp) {
        snprintf(err, errlen, "%s: out of memory", name);
        st = CNN_ERR_NOMEM;
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rowp[y] = rows + (size_t)y * rowbytes;
    png_read_image(p, rowp);
    png_read_end(p, NULL);
    out->channels = got >= 3 ? 3 : 1;
    out->height = h;
    out->width = w;
    pixels = cnn_mem_malloc((size_t)(out->channels * h) * w);
    if (!pixels) {
        snprintf(err, errlen, "%s: out of memory", name);
        st = CNN_ERR_NOMEM;
        goto done;
    }
    out->pixels = pixels;
    deinterleave(out, rows, rowbytes, got);
    pixels = NULL;
    st = CNN_OK;
done:
    png_destroy_read_struct(&p, &info, NULL);
    cnn_mem_free(rows);
    cnn_mem_free(rowp);
    cnn_mem_free(pixels);
    if (st != CNN_OK)
        memset(out, 0, sizeof *out);
    return st;
}

/* ---- JPEG ---- */

typedef struct jpeg_fail_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail_mgr;

static void jpeg_fail(j_common_ptr c)
{
    jpeg_fail_mgr *e = (jpeg_fail_mgr *)c->err;
    e->pub.format_message(c, e->msg);
    longjmp(e->jump, 1);
}

/* Trace messages (level > 0) are dropped; a corrupt-data warning (level -1) fails the image. */
static void jpeg_message(j_common_ptr c, int level)
{
    if (level < 0)
        jpeg_fail(c);
}

static cnn_status decode_jpeg(const void *data, size_t len, const char *name, int64_t max_pixels, rt_image *out,
                              char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_fail_mgr jerr;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_fail;
    jerr.pub.emit_message = jpeg_message;
    jerr.msg[0] = '\0';
    uint8_t *volatile row = NULL;
    uint8_t *volatile pixels = NULL;
    volatile cnn_status st = CNN_ERR_INPUT;
    volatile int created = 0;
    if (setjmp(jerr.jump)) {
        snprintf(err, errlen, "%s: %s", name, jerr.msg[0] ? jerr.msg : "corrupt JPEG data");
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    created = 1;
    cinfo.mem->max_memory_to_use = 512L << 20;
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if ((int64_t)cinfo.image_width * (int64_t)cinfo.image_height > max_pixels) {
        snprintf(err, errlen, "%s: %ux%u pixels is larger than the %" PRId64 " an image may have", name,
                 cinfo.image_width, cinfo.image_height, max_pixels);
        goto done;
    }
    if (cinfo.num_components == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB)
        cinfo.out_color_space = JCS_RGB;
    else {
        snprintf(err, errlen, "%s: a JPEG of %d components in colour space %d (CMYK?) is not supported: gray and "
                 "RGB/YCbCr are", name, cinfo.num_components, (int)cinfo.jpeg_color_space);
        goto done;
    }
    jpeg_start_decompress(&cinfo);
    int got = cinfo.output_components;
    if (got != 1 && got != 3) {
        snprintf(err, errlen, "%s: %d output components, expected 1 or 3", name, got);
        goto done;
    }
    out->channels = got;
    out->height = cinfo.output_height;
    out->width = cinfo.output_width;
    row = cnn_mem_malloc((size_t)cinfo.output_width * (size_t)got);
    pixels = cnn_mem_malloc((size_t)(got * out->height) * (size_t)out->width);
    if (!row || !pixels) {
        snprintf(err, errlen, "%s: out of memory", name);
        st = CNN_ERR_NOMEM;
        goto done;
    }
    int64_t plane = out->height * out->width;
    while (cinfo.output_scanline < cinfo.output_height) {
        int64_t y = cinfo.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) {
            snprintf(err, errlen, "%s: the JPEG stream ends early", name);
            goto done;
        }
        for (int64_t x = 0; x < out->width; x++)
            for (int c = 0; c < got; c++)
                pixels[c * plane + y * out->width + x] = row[x * got + c];
    }
    jpeg_finish_decompress(&cinfo);
    out->pixels = pixels;
    pixels = NULL;
    st = CNN_OK;
done:
    if (created)
        jpeg_destroy_decompress(&cinfo);
    cnn_mem_free(row);
    cnn_mem_free(pixels);
    if (st != CNN_OK)
        memset(out, 0, sizeof *out);
    return st;
}

cnn_status rt_image_decode(const void *data, size_t len, const char *name, int64_t max_pixels, rt_image *out,
                           char *err, size_t errlen)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (max_pixels <= 0 || max_pixels > RT_DATA_MAX_PIXELS)
        max_pixels = RT_DATA_MAX_PIXELS;
    const uint8_t *b = data;
    if (len >= 8 && memcmp(b, png_sig, 8) == 0)
        return decode_png(data, len, name, max_pixels, out, err, errlen);
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return decode_jpeg(data, len, name, max_pixels, out, err, errlen);
    snprintf(err, errlen, "%s: not a PNG or JPEG file (%zu bytes%s)", name, len, len ? ", the signature is not there" : ": empty");
    return CNN_ERR_INPUT;
}

/* ---- folders ---- */

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        cnn_mem_free(l->v[i]);
    cnn_mem_free(l->v);
    memset(l, 0, sizeof *l);
}

static bool names_add(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = cnn_mem_realloc(l->v, sizeof(char *) * cap);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = cnn_mem_strdup(s)))
        return false;
    l->n++;
    return true;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool image_name(const char *s)
{
    const char *dot = strrchr(s, '.');
    return dot && dot != s &&
           (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

/* Adds to l the entries of folder `dir` that are folders (want_dirs) or image files, skipping
 * hidden ones.  A folder that cannot be read is an error. */
static cnn_status list_folder(const char *dir, bool want_dirs, name_list *l, char *err, size_t errlen)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        snprintf(err, errlen, "%s: cannot open the folder: %s", dir, strerror(errno));
        return CNN_ERR_INPUT;
    }
    cnn_status st = CNN_OK;
    struct dirent *e;
    while (st == CNN_OK && (errno = 0, e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        if (!want_dirs && !image_name(e->d_name))
            continue;
        char *path = cnn_mem_asprintf("%s/%s", dir, e->d_name);
        if (!path) {
            st = CNN_ERR_NOMEM;
            break;
        }
        bool d = is_dir(path);
        cnn_mem_free(path);
        if (d != want_dirs)
            continue;
        if (!names_add(l, e->d_name))
            st = CNN_ERR_NOMEM;
    }
    if (st == CNN_OK && errno != 0) {
        snprintf(err, errlen, "%s: cannot read the folder: %s", dir, strerror(errno));
        st = CNN_ERR_INPUT;
    }
    closedir(dp);
    if (st == CNN_ERR_NOMEM)
        snprintf(err, errlen, "%s: out of memory", dir);
    return st;
}

bool rt_images_detect(const char *dir)
{
    for (int k = 0; k < 2; k++) {
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, k ? "test" : "train") < sizeof p && is_dir(p))
            return true;
    }
    return false;
}

/* Reads the whole regular file at path (at most MAX_FILE_BYTES). */
static cnn_status read_whole(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen)
{
    char msg[512];
    uint64_t size;
    *data = NULL;
    FILE *fp = rt_open_regular(path, &size, msg, sizeof msg);
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, msg);
        return CNN_ERR_INPUT;
    }
    cnn_status st = CNN_OK;
    if (size > MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: %" PRIu64 " bytes is too large for an image file (at most %" PRIu64 ")", path, size,
                 MAX_FILE_BYTES);
        st = CNN_ERR_INPUT;
    } else if (!(*data = cnn_mem_malloc(size ? (size_t)size : 1))) {
        snprintf(err, errlen, "%s: out of memory", path);
        st = CNN_ERR_NOMEM;
    } else if (fread(*data, 1, (size_t)size, fp) != (size_t)size) {
        snprintf(err, errlen, "%s: read error: %s", path, ferror(fp) ? strerror(errno) : "the file got shorter");
        st = CNN_ERR_INPUT;
    }
    fclose(fp);
    if (st != CNN_OK) {
        cnn_mem_free(*data);
        *data = NULL;
    }
    *len = (size_t)size;
    return st;
}

/* The dataset being filled: grows as images arrive (never sized by a header alone). */
typedef struct filler {
    cnn_dataset *d;
    int64_t cap;                /* images the pixel buffer holds */
    int64_t total;              /* images to come in all */
    const char *first;          /* the file that set the size, for messages */
} filler;

/* Turns the gray images so far into RGB (replicated). */
static bool to_rgb(filler *f)
{
    cnn_dataset *d = f->d;
    int64_t plane = d->height * d->width;
    uint8_t *p = cnn_mem_malloc((size_t)(f->cap * 3 * plane));
    if (!p)
        return false;
    for (int64_t i = 0; i < d->count; i++)
        for (int c = 0; c < 3; c++)
            memcpy(p + (i * 3 + c) * plane, d->pixels + i * plane, (size_t)plane);
    cnn_mem_free(d->pixels);
    d->pixels = p;
    d->channels = 3;
    return true;
}

static cnn_status add_image(filler *f, const rt_image *im, int32_t label, const char *path, char *err, size_t errlen)
{
    cnn_dataset *d = f->d;
    if (d->count == 0) {
        d->channels = im->channels;
        d->height = im->height;
        d->width = im->width;
    } else if (im->height != d->height || im->width != d->width) {
        snprintf(err, errlen, "%s: the image is %" PRId64 "x%" PRId64 " (height x width), but %s is %" PRId64 "x%" PRId64
                 ": every image of a dataset must have one size", path, im->height, im->width, f->first,
                 d->height, d->width);
        return CNN_ERR_INPUT;
    }
    int64_t plane = d->height * d->width;
    if (d->count == f->cap) {
        int64_t cap = f->cap ? f->cap * 2 : 64;
        if (cap > f->total)
            cap = f->total;
        size_t bytes;
        if (!ck_bytes(cap, 3 * plane, 1, &bytes) || bytes > OP_MAX_BYTES) {
            snprintf(err, errlen, "%s: %" PRId64 " images of %" PRId64 "x%" PRId64 " are more than this machine can hold",
                     path, f->total, d->height, d->width);
            return CNN_ERR_INPUT;
        }
        char why[256];
        if (f->cap == 0 && rt_mem_check((uint64_t)f->total * (uint64_t)(3 * plane + 4), "loading its images", why,
                                        sizeof why) != 0) {
            snprintf(err, errlen, "%s: %" PRId64 " images of %" PRId64 "x%" PRId64 ": %s", path, f->total, d->height,
                     d->width, why);
            return CNN_ERR_INPUT;
        }
        uint8_t *p = cnn_mem_realloc(d->pixels, (size_t)(cap * d->channels * plane));
        int32_t *l = p ? cnn_mem_realloc(d->labels, sizeof(int32_t) * (size_t)cap) : NULL;
        if (p)
            d->pixels = p;
        if (!l) {
            snprintf(err, errlen, "%s: out of memory", path);
            return CNN_ERR_NOMEM;
        }
        d->labels = l;
        f->cap = cap;
    }
    if (im->channels == 3 && d->channels == 1 && !to_rgb(f)) {
        snprintf(err, errlen, "%s: out of memory", path);
        return CNN_ERR_NOMEM;
    }
    uint8_t *dst = d->pixels + d->count * d->channels * plane;
    if (im->channels == d->channels)
        memcpy(dst, im->pixels, (size_t)(d->channels * plane));
    else /* a gray image in an RGB dataset */
        for (int c = 0; c < 3; c++)
            memcpy(dst + c * plane, im->pixels, (size_t)plane);
    d->labels[d->count++] = label;
    if (label + 1 > d->classes)
        d->classes = label + 1;
    return CNN_OK;
}

cnn_status rt_images_load(cnn_dataset *d, const char *dir, bool train, bool *absent, char *err, size_t errlen)
{
    const char *split = train ? "train" : "test";
    name_list classes = {0}, files = {0};
    char *split_dir = cnn_mem_asprintf("%s/%s", dir, split), *class_dir = NULL, *path = NULL, *first = NULL;
    int64_t *class_end = NULL; /* files[class_end[c-1] .. class_end[c]) are class c's */
    cnn_status st = CNN_OK;
    if (!split_dir) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return CNN_ERR_NOMEM;
    }
    if (!is_dir(split_dir)) {
        *absent = true;
        snprintf(err, errlen, "%s: no such folder (an image folder holds %s/CLASS/*.png|jpg)", split_dir, split);
        st = CNN_ERR_INPUT;
        goto done;
    }
    /* the classes: folder names under train/ and test/ together, sorted, once each */
    for (int k = 0; k < 2 && st == CNN_OK; k++) {
        char *p = cnn_mem_asprintf("%s/%s", dir, k ? "test" : "train");
        if (!p)
            st = CNN_ERR_NOMEM;
        else if (is_dir(p))
            st = list_folder(p, true, &classes, err, errlen);
        cnn_mem_free(p);
    }
    if (st != CNN_OK)
        goto done;
    if (classes.n)
        qsort(classes.v, classes.n, sizeof *classes.v, cmp_names);
    size_t nc = 0;
    for (size_t i = 0; i < classes.n; i++) {
        if (nc && strcmp(classes.v[nc - 1], classes.v[i]) == 0) {
            cnn_mem_free(classes.v[i]);
            continue;
        }
        classes.v[nc++] = classes.v[i];
    }
    classes.n = nc;
    if (classes.n > INT32_MAX) {
        snprintf(err, errlen, "%s: too many class folders", split_dir);
        st = CNN_ERR_INPUT;
        goto done;
    }
    class_end = cnn_mem_calloc(classes.n + 1, sizeof *class_end);
    if (!class_end) {
        st = CNN_ERR_NOMEM;
        goto done;
    }
    for (size_t c = 0; c < classes.n; c++) {
        cnn_mem_free(class_dir);
        class_dir = cnn_mem_asprintf("%s/%s", split_dir, classes.v[c]);
        if (!class_dir) {
            st = CNN_ERR_NOMEM;
            goto done;
        }
        size_t before = files.n;
        if (is_dir(class_dir) && (st = list_folder(class_dir, false, &files, err, errlen)) != CNN_OK)
            goto done;
        if (files.n > before)
            qsort(files.v + before, files.n - before, sizeof *files.v, cmp_names);
        class_end[c] = (int64_t)files.n;
    }
    if (files.n == 0) {
        snprintf(err, errlen, "%s: no .png, .jpg or .jpeg images in class folders (%s/CLASS/*.png|jpg)%s", split_dir,
                 split, classes.n ? "" : ": there are no class folders");
        st = CNN_ERR_INPUT;
        goto done;
    }
    filler f = {.d = d, .total = (int64_t)files.n};
    size_t c = 0;
    for (size_t i = 0; i < files.n; i++) {
        while ((int64_t)i >= class_end[c])
            c++;
        cnn_mem_free(path);
        path = cnn_mem_asprintf("%s/%s/%s", split_dir, classes.v[c], files.v[i]);
        if (!path) {
            st = CNN_ERR_NOMEM;
            goto done;
        }
        uint8_t *data;
        size_t len;
        if ((st = read_whole(path, &data, &len, err, errlen)) != CNN_OK)
            goto done;
        rt_image im;
        st = rt_image_decode(data, len, path, 0, &im, err, errlen);
        cnn_mem_free(data);
        if (st != CNN_OK)
            goto done;
        if (!first && !(first = cnn_mem_strdup(path)))
            st = CNN_ERR_NOMEM;
        f.first = first;
        if (st == CNN_OK)
            st = add_image(&f, &im, (int32_t)c, path, err, errlen);
        rt_image_free(&im);
        if (st != CNN_OK)
            goto done;
    }
    char *where = cnn_mem_strdup(split_dir);
    if (!where) {
        st = CNN_ERR_NOMEM;
        goto done;
    }
    cnn_mem_free(d->where);
    d->where = where;
done:
    if (st == CNN_ERR_NOMEM && err && errlen && !strstr(err, "out of memory"))
        snprintf(err, errlen, "%s: out of memory", dir);
    names_free(&classes);
    names_free(&files);
    cnn_mem_free(class_end);
    cnn_mem_free(split_dir);
    cnn_mem_free(class_dir);
    cnn_mem_free(path);
    cnn_mem_free(first);
    return st;
}
