/* Writes the seed corpus of the image target (fuzz/corpus/image/seed-*): small PNG files (gray,
 * gray+alpha, RGB, RGBA, palette, 16-bit, interlaced) and JPEG files (gray, colour, progressive)
 * with libpng and libjpeg-turbo.  Build and run from the repository root:
 *   cc fuzz/make_image_seeds.c -lpng -ljpeg -o /tmp/make_image_seeds && /tmp/make_image_seeds
 * Deterministic: the same files every run. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>
#include <png.h>

static void write_png(const char *name, int w, int h, int color, int depth, int interlace)
{
    char path[256];
    snprintf(path, sizeof path, "fuzz/corpus/image/seed-%s.png", name);
    FILE *f = fopen(path, "wb");
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (!f || !p || !info || setjmp(png_jmpbuf(p)))
        exit(1);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        png_byte trns[2] = {255, 128};
        png_set_PLTE(p, info, pal, 4);
        png_set_tRNS(p, info, trns, 2, NULL);
    }
    png_write_info(p, info);
    int channels = png_get_channels(p, info);
    size_t rowbytes = (size_t)w * (size_t)channels * (size_t)(depth / 8 ? depth / 8 : 1);
    unsigned char row[256];
    int passes = png_set_interlace_handling(p);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) {
            for (size_t i = 0; i < rowbytes; i++)
                row[i] = (unsigned char)(color == PNG_COLOR_TYPE_PALETTE ? (i + (size_t)y) % 4
                                                                         : (i * 37 + (size_t)y * 11) % 256);
            png_write_row(p, row);
        }
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    fclose(f);
}

static void write_jpeg(const char *name, int w, int h, int channels, int progressive)
{
    char path[256];
    snprintf(path, sizeof path, "fuzz/corpus/image/seed-%s.jpg", name);
    FILE *f = fopen(path, "wb");
    if (!f)
        exit(1);
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
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char row[256];
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < w * channels; i++)
            row[i] = (unsigned char)((i * 29 + (int)c.next_scanline * 13) % 256);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

int main(void)
{
    write_png("gray", 8, 8, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE);
    write_png("gray_alpha", 6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE);
    write_png("rgb", 8, 8, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE);
    write_png("rgba", 5, 7, PNG_COLOR_TYPE_RGB_ALPHA, 8, PNG_INTERLACE_NONE);
    write_png("palette", 8, 4, PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE);
    write_png("rgb16", 4, 4, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE);
    write_png("interlaced", 9, 9, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7);
    write_jpeg("gray", 8, 8, 1, 0);
    write_jpeg("rgb", 16, 8, 3, 0);
    write_jpeg("progressive", 12, 12, 3, 1);
    return 0;
}
