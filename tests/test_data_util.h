/* Writers of the data formats for the data suites (test_data.c, test_mutate_data.c): PNG files
 * through libpng, JPEG files through libjpeg, CIFAR-10 batch files by hand, and a temporary
 * folder per test. */
#ifndef CNN_TESTS_DATA_UTIL_H
#define CNN_TESTS_DATA_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

static char tmpdir[1024];

static inline int data_remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

static inline void data_enter_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnc-data-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

static inline void data_leave_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, data_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/rel, in a static buffer of 8 rotating ones. */
static inline const char *tpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *tpath(const char *fmt, ...)
{
    static char bufs[8][2048];
    static int k;
    char *b = bufs[k++ % 8];
    int n = snprintf(b, sizeof bufs[0], "%s/", tmpdir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + n, sizeof bufs[0] - (size_t)n, fmt, ap);
    va_end(ap);
    return b;
}

/* Makes the folders of path (relative to tmpdir), "a/b/c" -> a, a/b, a/b/c. */
static inline void tmkdirs(const char *rel)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    for (char *s = p + strlen(tmpdir) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0700);
            *s = '/';
        }
    mkdir(p, 0700);
}

static inline void put_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* A PNG of w x h pixels of png color type `color` and bit depth `depth` (8 or 16) from `rows`
 * (h rows of w * samples samples, 16-bit ones big-endian); PNG_COLOR_TYPE_PALETTE takes a
 * palette of npal RGB entries, and trns (may be NULL) alpha values for them. */
static inline void write_png(const char *path, int w, int h, int color, int depth, const uint8_t *data,
                             const png_color *pal, int npal, const uint8_t *trns, int ntrns, int interlace)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    cr_assert(p && info);
    if (setjmp(png_jmpbuf(p)))
        cr_assert_fail("libpng failed writing %s", path);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_PLTE(p, info, pal, npal);
    if (trns)
        png_set_tRNS(p, info, trns, ntrns, NULL);
    png_write_info(p, info);
    int samples = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_PALETTE ? 1
                  : color == PNG_COLOR_TYPE_GRAY_ALPHA                            ? 2
                  : color == PNG_COLOR_TYPE_RGB                                   ? 3
                                                                                  : 4;
    size_t rowbytes = (size_t)w * (size_t)samples * (size_t)(depth / 8);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(p, rows);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    free(rows);
    cr_assert_eq(fclose(f), 0);
}

/* An 8-bit PNG of channels 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) interleaved samples. */
static inline void write_png8(const char *path, int w, int h, int channels, const uint8_t *data)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    write_png(path, w, h, types[channels], 8, data, NULL, 0, NULL, 0, 0);
}

/* A baseline JPEG of 1 or 3 interleaved channels at `quality`. */
static inline void write_jpeg(const char *path, int w, int h, int channels, const uint8_t *data, int quality)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * (size_t)w * (size_t)channels;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    cr_assert_eq(fclose(f), 0);
}

/* Decodes a JPEG file with libjpeg's defaults into interleaved samples (malloc'd). */
static inline uint8_t *read_jpeg(const char *path, int *w, int *h, int *channels)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    struct jpeg_decompress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_decompress(&c);
    jpeg_stdio_src(&c, f);
    jpeg_read_header(&c, TRUE);
    jpeg_start_decompress(&c);
    *w = (int)c.output_width, *h = (int)c.output_height, *channels = c.output_components;
    uint8_t *out = malloc((size_t)*w * (size_t)*h * (size_t)*channels);
    while (c.output_scanline < c.output_height) {
        JSAMPROW row = out + (size_t)c.output_scanline * (size_t)*w * (size_t)*channels;
        jpeg_read_scanlines(&c, &row, 1);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    fclose(f);
    return out;
}

/* A CIFAR-10 batch file of n records: label of record i is labels(i), pixel k of record i is
 * pix(i, k) (k over 3x32x32, channel-major). */
static inline void write_cifar(const char *path, int n, int (*label)(int), int (*pix)(int, int))
{
    uint8_t *b = malloc((size_t)n * 3073);
    for (int i = 0; i < n; i++) {
        b[(size_t)i * 3073] = (uint8_t)label(i);
        for (int k = 0; k < 3072; k++)
            b[(size_t)i * 3073 + 1 + (size_t)k] = (uint8_t)pix(i, k);
    }
    put_bytes(path, b, (size_t)n * 3073);
    free(b);
}

#endif
