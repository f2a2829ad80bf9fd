/* Datasets and batches (runtime/data*.c, cifar.c, images.c, loader.c): CIFAR-10 folders, PNG
 * and JPEG image folders written here with libpng and libjpeg (gray, RGB, RGBA, palette,
 * 16-bit, interlaced; classes sorted), their exact pixels, the conversions between gray and
 * RGB, random_crop and random_flip, the randomness keyed by (seed, epoch, position), the
 * background loader against the synchronous one bit for bit, normalisation in training and in
 * evaluation, every bad input with its message, and resnet20 learning on a CIFAR folder. */
#include <math.h>
#include <omp.h>

#include "tests/file_util.h"
#include "tests/test_data_util.h"
#include "runtime/cnn.h"
#include "runtime/data.h"

TestSuite(data, .init = data_enter_tmpdir, .fini = data_leave_tmpdir, .timeout = 120);

static bool quick(void) { return getenv("CNN_TEST_QUICK") != NULL; }

static cnn_dataset *load_ok(const char *dir, const char *split)
{
    cnn_dataset *d = NULL;
    char err[1024] = "";
    bool absent = true;
    cnn_status st = cnn_dataset_load(&d, dir, split, &absent, err, sizeof err);
    cr_assert_eq(st, CNN_OK, "%s %s: status %d: %s", dir, split, st, err);
    cr_assert_not(absent);
    return d;
}

/* Loading split fails with status st, a message containing text (and absent as expected). */
static void load_fails(const char *dir, const char *split, cnn_status st, bool absent, const char *text)
{
    cnn_dataset *d = (cnn_dataset *)1;
    char err[1024] = "";
    bool abs = !absent;
    cnn_status got = cnn_dataset_load(&d, dir, split, &abs, err, sizeof err);
    cr_assert_eq(got, st, "status %d, expected %d: %s", got, st, err);
    cr_assert_null(d);
    cr_assert_eq(abs, absent, "absent %d: %s", abs, err);
    cr_assert(strstr(err, text), "message \"%s\" lacks \"%s\"", err, text);
}

/* ---- CIFAR-10 ---- */

static int lab_mod10(int i) { return i % 10; }
static int lab_mod3(int i) { return (i * 7) % 3; }
static int pix_pattern(int i, int k) { return (i * 31 + k * 7) % 256; }
static int pix_other(int i, int k) { return (i * 13 + k * 3 + 100) % 256; }

Test(data, cifar_batches_and_test)
{
    write_cifar(tpath("data_batch_1.bin"), 7, lab_mod10, pix_pattern);
    write_cifar(tpath("data_batch_2.bin"), 5, lab_mod3, pix_other);
    write_cifar(tpath("test_batch.bin"), 4, lab_mod10, pix_other);
    cnn_dataset *d = load_ok(tmpdir, "train");
    cr_assert_eq(d->count, 12);
    cr_assert_eq(d->channels, 3);
    cr_assert_eq(d->height, 32);
    cr_assert_eq(d->width, 32);
    for (int i = 0; i < 12; i++) {
        int j = i < 7 ? i : i - 7;
        cr_assert_eq(d->labels[i], i < 7 ? lab_mod10(j) : lab_mod3(j), "label %d", i);
        for (int k = 0; k < 3072; k++)
            cr_assert_eq(d->pixels[(size_t)i * 3072 + (size_t)k], i < 7 ? pix_pattern(j, k) : pix_other(j, k));
    }
    cr_assert_eq(d->classes, 7);
    /* the public batch: [0, 1], channel-major as the file */
    float x[2 * 3072], labels[2];
    int64_t order[2] = {8, 0};
    cnn_dataset_batch(d, order, 0, 2, x, labels);
    cr_assert_eq(labels[0], (float)lab_mod3(1));
    cr_assert_eq(x[5], (float)pix_other(1, 5) / 255.0f);
    cr_assert_eq(x[3072 + 2048 + 3], (float)pix_pattern(0, 2048 + 3) / 255.0f);
    cnn_dataset_destroy(d);
    d = load_ok(tmpdir, "test");
    cr_assert_eq(d->count, 4);
    cr_assert_eq(d->pixels[3072 + 1], pix_other(1, 1));
    cnn_dataset_destroy(d);
}

Test(data, cifar_bad_files)
{
    write_cifar(tpath("data_batch_1.bin"), 3, lab_mod10, pix_pattern);
    /* no test batch: absent, so that training goes on without it */
    load_fails(tmpdir, "test", CNN_ERR_INPUT, true, "test_batch.bin) is missing");
    /* a size that is not a whole number of records */
    uint8_t junk[3073 * 2 + 5] = {0};
    put_bytes(tpath("test_batch.bin"), junk, sizeof junk);
    load_fails(tmpdir, "test", CNN_ERR_INPUT, false, "test_batch.bin: 6151 bytes is not a whole number of 3073-byte records");
    put_bytes(tpath("test_batch.bin"), junk, 0);
    load_fails(tmpdir, "test", CNN_ERR_INPUT, false, "test_batch.bin: 0 bytes is not a whole number");
    /* a truncated training batch */
    put_bytes(tpath("data_batch_2.bin"), junk, 3000);
    load_fails(tmpdir, "train", CNN_ERR_INPUT, false, "data_batch_2.bin: 3000 bytes is not a whole number of 3073-byte");
    /* a gap */
    remove(tpath("data_batch_2.bin"));
    write_cifar(tpath("data_batch_3.bin"), 3, lab_mod10, pix_pattern);
    load_fails(tmpdir, "train", CNN_ERR_INPUT, false, "data_batch_2.bin: missing, though data_batch_3.bin is there");
    remove(tpath("data_batch_1.bin"));
    load_fails(tmpdir, "train", CNN_ERR_INPUT, false, "data_batch_1.bin: missing, though data_batch_3.bin is there");
    /* a folder where a file should be */
    remove(tpath("data_batch_3.bin"));
    mkdir(tpath("data_batch_1.bin"), 0700);
    load_fails(tmpdir, "train", CNN_ERR_INPUT, false, "data_batch_1.bin: not a regular file");
}

/* A CIFAR label past the network's classes is refused by the check, naming the example. */
Test(data, labels_outside_the_classes)
{
    write_cifar(tpath("data_batch_1.bin"), 12, lab_mod10, pix_pattern);
    cnn_dataset *d = load_ok(tmpdir, "train");
    const char *src = "network n { input x[3, 32, 32]; output y = x -> global_avgpool -> dense(4); }";
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    char err[1024];
    cr_assert_eq(cnn_dataset_check(d, m, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "data_batch_1.bin: labels go up to 9 (example 4 has label 4), but the network's output y has 4 "
                          "values per example"), "%s", err);
    cnn_model_destroy(m);
    /* the wrong size: images are 32x32 */
    src = "network n { input x[3, 28, 28]; output y = x -> global_avgpool -> dense(10); }";
    cr_assert_eq(cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cr_assert_eq(cnn_dataset_check(d, m, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "images are 32x32 with 3 channels, the network input has shape [3,28,28]"), "%s", err);
    cnn_model_destroy(m);
    /* a one-channel network takes them (converted to gray) */
    src = "network n { input x[1, 32, 32]; output y = x -> global_avgpool -> dense(10); }";
    cr_assert_eq(cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cr_assert_eq(cnn_dataset_check(d, m, err, sizeof err), CNN_OK, "%s", err);
    cnn_model_destroy(m);
    cnn_dataset_destroy(d);
}

/* ---- image folders ---- */

/* Deterministic interleaved samples. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 37 + seed * 101 + (i * i) % 13) % 256);
}

/* Planar (channel-major) from interleaved. */
static uint8_t at(const uint8_t *inter, int channels, int w, int c, int y, int x)
{
    return inter[((size_t)y * (size_t)w + (size_t)x) * (size_t)channels + (size_t)c];
}

Test(data, png_folder_classes_and_pixels)
{
    enum { W = 5, H = 4 };
    uint8_t g[W * H], ga[W * H * 2], rgb[W * H * 3], rgba[W * H * 4];
    fill(g, sizeof g, 1), fill(ga, sizeof ga, 2), fill(rgb, sizeof rgb, 3), fill(rgba, sizeof rgba, 4);
    /* classes in sorted order of the folder names, files in sorted order of theirs */
    tmkdirs("d/train/zebra"), tmkdirs("d/train/ant"), tmkdirs("d/train/Mole"), tmkdirs("d/test/ant");
    write_png8(tpath("d/train/zebra/b.png"), W, H, 1, g);
    write_png8(tpath("d/train/zebra/a.PNG"), W, H, 3, rgb);
    write_png8(tpath("d/train/ant/x.png"), W, H, 4, rgba);
    write_png8(tpath("d/train/Mole/only.png"), W, H, 2, ga);
    put_bytes(tpath("d/train/ant/notes.txt"), "not an image", 12);   /* skipped */
    put_bytes(tpath("d/train/ant/.hidden.png"), "not an image", 12); /* skipped */
    write_png8(tpath("d/test/ant/t.png"), W, H, 1, g);
    cnn_dataset *d = load_ok(tpath("d"), "train");
    cr_assert_eq(d->count, 4);
    cr_assert_eq(d->channels, 3, "a colour image makes the set RGB");
    cr_assert_eq(d->height, H);
    cr_assert_eq(d->width, W);
    /* "Mole" < "ant" < "zebra" in byte order */
    int want_labels[4] = {0, 1, 2, 2};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(d->labels[i], want_labels[i], "example %d", i);
    size_t per = 3 * W * H;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t k = (size_t)(c * H + y) * W + (size_t)x;
                cr_assert_eq(d->pixels[k], at(ga, 2, W, 0, y, x), "gray+alpha: gray replicated, alpha dropped");
                cr_assert_eq(d->pixels[per + k], at(rgba, 4, W, c, y, x), "RGBA: alpha dropped");
                cr_assert_eq(d->pixels[2 * per + k], at(rgb, 3, W, c, y, x), "a.PNG before b.png");
                cr_assert_eq(d->pixels[3 * per + k], at(g, 1, W, 0, y, x), "gray replicated");
            }
    cnn_dataset_destroy(d);
    /* the test split numbers its classes as training does: "ant" is 1 there too */
    d = load_ok(tpath("d"), "test");
    cr_assert_eq(d->count, 1);
    cr_assert_eq(d->channels, 1, "all gray: one channel");
    cr_assert_eq(d->labels[0], 1);
    cr_assert_eq(memcmp(d->pixels, g, sizeof g), 0);
    cnn_dataset_destroy(d);
}

Test(data, png_palette_16bit_interlaced)
{
    enum { W = 9, H = 7 };
    tmkdirs("d/train/a");
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {10, 200, 30}, {7, 8, 9}};
    uint8_t trns[4] = {255, 0, 128, 255};
    uint8_t idx[W * H], g16[W * H * 2], rgb[W * H * 3];
    for (int i = 0; i < W * H; i++)
        idx[i] = (uint8_t)(i % 4);
    fill(g16, sizeof g16, 5);
    fill(rgb, sizeof rgb, 6);
    write_png(tpath("d/train/a/1.png"), W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 4, trns, 4, 0);
    write_png(tpath("d/train/a/2.png"), W, H, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0, NULL, 0, 0);
    write_png(tpath("d/train/a/3.png"), W, H, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, NULL, 0, 1);
    cnn_dataset *d = load_ok(tpath("d"), "train");
    cr_assert_eq(d->count, 3);
    cr_assert_eq(d->channels, 3);
    size_t plane = W * H, per = 3 * plane;
    for (int i = 0; i < W * H; i++) {
        const png_color *p = &pal[i % 4];
        cr_assert_eq(d->pixels[i], p->red, "palette, transparency ignored");
        cr_assert_eq(d->pixels[plane + (size_t)i], p->green);
        cr_assert_eq(d->pixels[2 * plane + (size_t)i], p->blue);
        for (int c = 0; c < 3; c++)
            cr_assert_eq(d->pixels[per + c * plane + (size_t)i], g16[2 * i], "16-bit: the high byte");
        for (int c = 0; c < 3; c++)
            cr_assert_eq(d->pixels[2 * per + c * plane + (size_t)i], rgb[3 * i + c], "interlaced");
    }
    cnn_dataset_destroy(d);
}

Test(data, jpeg_folder)
{
    enum { W = 16, H = 8 };
    uint8_t g[W * H], rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            g[y * W + x] = (uint8_t)(x * 12 + y * 5);
            for (int c = 0; c < 3; c++)
                rgb[(y * W + x) * 3 + c] = (uint8_t)(c == 0 ? 200 : c == 1 ? x * 10 : 40 + y * 20);
        }
    tmkdirs("d/train/gray"), tmkdirs("d/train/rgb");
    write_jpeg(tpath("d/train/gray/g.jpg"), W, H, 1, g, 95);
    write_jpeg(tpath("d/train/rgb/c.jpeg"), W, H, 3, rgb, 95);
    cnn_dataset *d = load_ok(tpath("d"), "train");
    cr_assert_eq(d->count, 2);
    cr_assert_eq(d->channels, 3);
    /* exactly what libjpeg's defaults decode, and close to what was written */
    int w, h, ch;
    uint8_t *ref = read_jpeg(tpath("d/train/gray/g.jpg"), &w, &h, &ch);
    cr_assert(w == W && h == H && ch == 1);
    size_t plane = W * H;
    for (size_t i = 0; i < plane; i++) {
        cr_assert_eq(d->pixels[i], ref[i]);
        cr_assert_eq(d->pixels[2 * plane + i], ref[i]);
        cr_assert_leq(abs((int)d->pixels[i] - (int)g[i]), 4, "pixel %zu: %d for %d", i, d->pixels[i], g[i]);
    }
    free(ref);
    ref = read_jpeg(tpath("d/train/rgb/c.jpeg"), &w, &h, &ch);
    cr_assert(w == W && h == H && ch == 3);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            uint8_t v = d->pixels[3 * plane + (size_t)c * plane + i];
            cr_assert_eq(v, ref[i * 3 + (size_t)c]);
            cr_assert_leq(abs((int)v - (int)rgb[i * 3 + (size_t)c]), 24, "pixel %zu channel %d", i, c);
        }
    free(ref);
    cnn_dataset_destroy(d);
}

/* Batches in the network input's channels: RGB to gray as PIL's "L" (ITU-R 601 luma, integer
 * rounding), gray to RGB replicated; and the vector input takes the bytes as they are. */
Test(data, channel_conversion)
{
    enum { W = 3, H = 2 };
    uint8_t rgb[W * H * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 200, 100, 50, 1, 2, 3}, g[W * H] = {0, 9, 99,
                                                                                                             128, 254, 255};
    tmkdirs("d/train/a"), tmkdirs("d/train/b");
    write_png8(tpath("d/train/a/c.png"), W, H, 3, rgb);
    write_png8(tpath("d/train/b/g.png"), W, H, 1, g);
    cnn_dataset *d = load_ok(tpath("d"), "train");
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    o.batch = 2;
    o.channels = 1;
    o.background = false;
    cnn_loader *l = NULL;
    char err[512];
    cr_assert_eq(cnn_loader_create(&l, d, NULL, &o, err, sizeof err), CNN_OK, "%s", err);
    float x[2 * 3 * W * H], lab[2];
    int64_t n;
    cr_assert_eq(cnn_loader_start(l, NULL, 2, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    cr_assert_eq(n, 2);
    for (int i = 0; i < W * H; i++) {
        const uint8_t *p = rgb + 3 * i;
        int luma = (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
        cr_assert_eq(x[i], (float)luma / 255.0f, "pixel %d", i);
        cr_assert_eq(x[W * H + i], (float)g[i] / 255.0f, "gray stays itself");
    }
    /* the values PIL gives for pure red, green and blue */
    cr_assert_eq(x[0], 76.0f / 255.0f);
    cr_assert_eq(x[1], 150.0f / 255.0f);
    cr_assert_eq(x[2], 29.0f / 255.0f);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    cr_assert_eq(n, 0, "one batch per epoch");
    cnn_loader_destroy(l);
    /* the gray-only test of a one-channel folder made RGB */
    cnn_dataset_destroy(d);
    remove(tpath("d/train/a/c.png"));
    d = load_ok(tpath("d"), "train");
    cr_assert_eq(d->channels, 1);
    o.channels = 3;
    o.batch = 1;
    cr_assert_eq(cnn_loader_create(&l, d, NULL, &o, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_loader_start(l, NULL, 1, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    cr_assert_eq(lab[0], 1.0f);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < W * H; i++)
            cr_assert_eq(x[c * W * H + i], (float)g[i] / 255.0f);
    cnn_loader_destroy(l);
    o.channels = 2;
    cr_assert_eq(cnn_loader_create(&l, d, NULL, &o, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "images of 1 channels cannot be made into 2"), "%s", err);
    cnn_dataset_destroy(d);
}

Test(data, bad_image_folders)
{
    enum { W = 4, H = 4 };
    uint8_t g[(W + 1) * H * 3];
    fill(g, sizeof g, 9);
    tmkdirs("d/train/cat"), tmkdirs("d/train/dog");
    write_png8(tpath("d/train/cat/a.png"), W, H, 1, g);
    /* no test split */
    load_fails(tpath("d"), "test", CNN_ERR_INPUT, true, "d/test: no such folder");
    /* mixed sizes */
    write_png8(tpath("d/train/dog/big.png"), W + 1, H, 3, g);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false,
               "d/train/dog/big.png: the image is 4x5 (height x width), but ");
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/cat/a.png is 4x4: every image of a dataset must have one size");
    /* a corrupt PNG: truncated */
    size_t len = 0;
    write_png8(tpath("d/train/dog/big.png"), W, H, 3, g);
    uint8_t *bytes = test_file_bytes(tpath("d/train/dog/big.png"), &len);
    put_bytes(tpath("d/train/dog/big.png"), bytes, len - 20);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/dog/big.png: ");
    /* a CRC error in a critical chunk */
    bytes[20] ^= 0x40;
    put_bytes(tpath("d/train/dog/big.png"), bytes, len);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/dog/big.png: IHDR: CRC error");
    free(bytes);
    /* not an image at all */
    put_bytes(tpath("d/train/dog/big.png"), "GIF89a....", 10);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/dog/big.png: not a PNG or JPEG file (10 bytes");
    remove(tpath("d/train/dog/big.png"));
    /* a corrupt JPEG: truncated in the scan */
    write_jpeg(tpath("d/train/dog/j.jpg"), W, H, 1, g, 90);
    bytes = test_file_bytes(tpath("d/train/dog/j.jpg"), &len);
    put_bytes(tpath("d/train/dog/j.jpg"), bytes, len - 8);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/dog/j.jpg: Premature end of JPEG file");
    put_bytes(tpath("d/train/dog/j.jpg"), bytes, 40);
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train/dog/j.jpg: ");
    free(bytes);
    remove(tpath("d/train/dog/j.jpg"));
    /* empty class folders only */
    remove(tpath("d/train/cat/a.png"));
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "d/train: no .png, .jpg or .jpeg images in class folders");
    /* no class folders */
    rmdir(tpath("d/train/cat")), rmdir(tpath("d/train/dog"));
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, false, "there are no class folders");
    /* nothing at all */
    rmdir(tpath("d/train"));
    load_fails(tpath("d"), "train", CNN_ERR_INPUT, true, "the train data is missing");
    load_fails(tpath("nowhere"), "train", CNN_ERR_INPUT, false, "nowhere: cannot open the data folder");
}

/* ---- running out of memory ---- */

static long alloc_budget = -1; /* allocations left before they fail; -1: no limit */

static void *budget_malloc(size_t n, void *ud)
{
    (void)ud;
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

static void *budget_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return realloc(p, n);
}

static void budget_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

/* Every allocation of loading a PNG+JPEG folder and a CIFAR folder, and of a loader, failing in
 * turn: CNN_ERR_NOMEM with a message and nothing leaked (the sanitizer build), until it fits. */
/* Found by fuzzing (fuzz/corpus/image/regressions): a 41-byte PNG whose second chunk (sPLT)
 * claims 2 GB.  libpng sizes an ancillary chunk's buffer by the claim before reading it; the
 * decoder refuses that allocation, so the file is a located error at once, and no allocation
 * above a megabyte is ever asked of the library's allocator. */
static size_t largest_request;
static void *big_malloc(size_t n, void *ud)
{
    (void)ud;
    if (n > largest_request)
        largest_request = n;
    return malloc(n);
}
static void *big_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (n > largest_request)
        largest_request = n;
    return realloc(p, n);
}
static void big_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

Test(data, png_chunk_claiming_gigabytes_is_refused)
{
    static const unsigned char png[41] = {
        0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 'I', 'H', 'D', 'R',
        0, 0, 0, 8, 0, 0, 0, 4, 8, 3, 0, 0, 0, 0x84, 0x13, 0x8e,
        0xc2, 0x79, 0, 0, 0x60, 's', 'P', 'L', 'T'};
    cnn_allocator a = {big_malloc, big_realloc, big_free, NULL};
    largest_request = 0;
    cnn_set_allocator(&a);
    rt_image im = {0};
    char err[512] = "";
    cnn_status st = rt_image_decode(png, sizeof png, "x.png", (int64_t)1 << 20, &im, err, sizeof err);
    cnn_set_allocator(NULL);
    cr_assert_eq(st, CNN_ERR_INPUT, "%s", err);
    cr_expect_str_eq(err, "x.png: a chunk claims 2030043233 bytes, more than the 41-byte file holds");
    cr_expect_lt(largest_request, (size_t)1 << 20, "largest allocation %zu bytes", largest_request);
    cr_expect_null(im.pixels);
}

Test(data, out_of_memory_sweep)
{
    enum { W = 6, H = 5 };
    uint8_t px[W * H * 3];
    fill(px, sizeof px, 3);
    tmkdirs("d/train/a"), tmkdirs("d/train/b");
    write_png8(tpath("d/train/a/p.png"), W, H, 3, px);
    write_png8(tpath("d/train/a/q.png"), W, H, 1, px);
    write_jpeg(tpath("d/train/b/j.jpg"), W, H, 3, px, 90);
    tmkdirs("c");
    write_cifar(tpath("c/data_batch_1.bin"), 3, lab_mod10, pix_pattern);
    cnn_allocator a = {budget_malloc, budget_realloc, budget_free, NULL};
    cnn_set_allocator(&a);
    const char *dirs[2] = {tpath("d"), tpath("c")};
    for (int f = 0; f < 2; f++) {
        long k;
        for (k = 0; k < 10000; k++) {
            alloc_budget = k;
            cnn_dataset *d = NULL;
            char err[1024] = "";
            bool absent = false;
            cnn_status st = cnn_dataset_load(&d, dirs[f], "train", &absent, err, sizeof err);
            cnn_loader *l = NULL;
            if (st == CNN_OK) {
                cnn_loader_options o;
                cnn_loader_options_default(&o);
                o.batch = 2;
                st = cnn_loader_create(&l, d, NULL, &o, err, sizeof err);
            }
            alloc_budget = -1;
            cnn_loader_destroy(l);
            cnn_dataset_destroy(d);
            if (st == CNN_OK)
                break;
            cr_assert_eq(st, CNN_ERR_NOMEM, "%s, allocation %ld failing: status %d: %s", dirs[f], k, st, err);
            cr_assert(strstr(err, "out of memory") || strstr(err, "Out of memory"), "%s", err);
        }
        cr_assert_lt(k, 10000);
        cr_assert_gt(k, 2, "%s: only %ld allocations", dirs[f], k);
    }
    cnn_set_allocator(NULL);
}

/* ---- augmentation ---- */

/* A CIFAR folder of n images with distinct, non-zero pixels. */
static int pix_nonzero(int i, int k) { return 1 + (i * 5 + k * 11) % 255; }

static cnn_dataset *cifar_set(int n)
{
    write_cifar(tpath("data_batch_1.bin"), n, lab_mod10, pix_nonzero);
    return load_ok(tmpdir, "train");
}

static cnn_loader *loader(const cnn_dataset *d, const cnn_train_config *tc, int64_t batch, bool augment, uint64_t seed,
                          bool background)
{
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    o.batch = batch;
    o.augment = augment;
    o.seed = seed;
    o.background = background;
    cnn_loader *l = NULL;
    char err[512];
    cr_assert_eq(cnn_loader_create(&l, d, tc, &o, err, sizeof err), CNN_OK, "%s", err);
    cr_assert_eq(cnn_loader_background(l), background);
    return l;
}

static void crop_flip_config(cnn_train_config *tc, int64_t pad, bool crop, bool flip)
{
    memset(tc, 0, sizeof *tc);
    if (crop)
        tc->augment[tc->naugment++] = (cnn_augment_step){CNN_AUGMENT_RANDOM_CROP, pad};
    if (flip)
        tc->augment[tc->naugment++] = (cnn_augment_step){CNN_AUGMENT_RANDOM_FLIP, 0};
}

/* Whether out is img shifted by (dy, dx) (out(y, x) = img(y + dy, x + dx), 0 outside) and then
 * mirrored when flipped. */
static bool is_shift(const float *out, const uint8_t *img, int dy, int dx, bool flipped)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int xs = flipped ? 31 - x : x, sy = y + dy, sx = xs + dx;
                int v = sy < 0 || sy > 31 || sx < 0 || sx > 31 ? 0 : img[(c * 32 + sy) * 32 + sx];
                if (out[(c * 32 + y) * 32 + x] != (float)v / 255.0f)
                    return false;
            }
    return true;
}

Test(data, random_crop_and_flip)
{
    enum { N = 64, PAD = 2 };
    cnn_dataset *d = cifar_set(N);
    cnn_train_config tc;
    crop_flip_config(&tc, PAD, true, true);
    cnn_loader *l = loader(d, &tc, N, true, 7, false);
    float *x = malloc(sizeof(float) * N * 3072), lab[N];
    int64_t n;
    int seen[2 * PAD + 1][2 * PAD + 1] = {{0}}, flips = 0;
    for (int epoch = 1; epoch <= 4; epoch++) {
        cr_assert_eq(cnn_loader_start(l, NULL, N, epoch, 0), CNN_OK);
        cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
        cr_assert_eq(n, N);
        for (int i = 0; i < N; i++) {
            int found = 0;
            for (int dy = -PAD; dy <= PAD; dy++)
                for (int dx = -PAD; dx <= PAD; dx++)
                    for (int f = 0; f < 2; f++)
                        if (is_shift(x + i * 3072, d->pixels + i * 3072, dy, dx, f)) {
                            /* a flip after the crop: the shift seen in the mirrored image is -dx */
                            seen[dy + PAD][(f ? -dx : dx) + PAD]++;
                            flips += f;
                            found++;
                        }
            cr_assert_eq(found, 1, "epoch %d example %d: %d matching crops", epoch, i, found);
            cr_assert_eq(lab[i], (float)lab_mod10(i));
        }
    }
    /* every offset in [-pad, pad]^2 happens, and about half the images are mirrored */
    for (int a = 0; a <= 2 * PAD; a++)
        for (int b = 0; b <= 2 * PAD; b++)
            cr_expect_gt(seen[a][b], 0, "offset (%d, %d) never drawn", a - PAD, b - PAD);
    cr_expect(flips > 4 * N * 3 / 10 && flips < 4 * N * 7 / 10, "%d flips of %d", flips, 4 * N);
    cnn_loader_destroy(l);
    /* flip alone: exactly mirrored or untouched */
    crop_flip_config(&tc, 0, false, true);
    l = loader(d, &tc, N, true, 7, false);
    cr_assert_eq(cnn_loader_start(l, NULL, N, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    for (int i = 0; i < N; i++)
        cr_assert(is_shift(x + i * 3072, d->pixels + i * 3072, 0, 0, false) ||
                  is_shift(x + i * 3072, d->pixels + i * 3072, 0, 0, true));
    cnn_loader_destroy(l);
    /* a crop of a pad larger than the image: anything from all black to a corner */
    crop_flip_config(&tc, 40, true, false);
    l = loader(d, &tc, N, true, 7, false);
    cr_assert_eq(cnn_loader_start(l, NULL, N, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    cnn_loader_destroy(l);
    /* without augment, the config's pipeline is not applied (evaluation) */
    crop_flip_config(&tc, 4, true, true);
    l = loader(d, &tc, N, false, 7, false);
    cr_assert_eq(cnn_loader_start(l, NULL, N, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    for (int i = 0; i < N; i++)
        cr_assert(is_shift(x + i * 3072, d->pixels + i * 3072, 0, 0, false));
    cnn_loader_destroy(l);
    /* a bad pad */
    crop_flip_config(&tc, -1, true, false);
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    o.augment = true;
    char err[512];
    cr_assert_eq(cnn_loader_create(&l, d, &tc, &o, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "random_crop(-1): the pad must be 0 to 65535"), "%s", err);
    free(x);
    cnn_dataset_destroy(d);
}

/* Every batch of `epochs` epochs of l over order (n examples, batches of b), concatenated. */
static float *all_batches(cnn_loader *l, const int64_t *order, int n, int b, int epochs, int first_batch)
{
    int nb = (n + b - 1) / b;
    float *out = calloc((size_t)(epochs * nb * b) * 3072, sizeof(float)), *lab = malloc(sizeof(float) * (size_t)b);
    for (int e = 0; e < epochs; e++) {
        cr_assert_eq(cnn_loader_start(l, order, n, e + 1, first_batch), CNN_OK);
        for (int k = first_batch;; k++) {
            int64_t got;
            cr_assert_eq(cnn_loader_next(l, out + ((size_t)(e * nb + k) * (size_t)b) * 3072, lab, &got), CNN_OK);
            if (got == 0)
                break;
            cr_assert_eq(got, k < nb - 1 ? b : n - k * b, "batch %d", k);
        }
    }
    free(lab);
    return out;
}

/* The random choices depend on (seed, epoch, position) only: the same for a run resumed at any
 * batch, different for another epoch or seed; and the background loader gives the synchronous
 * loader's batches bit for bit. */
Test(data, determinism_and_background_loader)
{
    enum { N = 50, B = 8, EPOCHS = 3 };
    cnn_dataset *d = cifar_set(N);
    cnn_train_config tc;
    crop_flip_config(&tc, 3, true, true);
    tc.nnormalize = 3;
    double mean[3] = {0.49, 0.48, 0.45}, sd[3] = {0.25, 0.24, 0.26};
    memcpy(tc.mean, mean, sizeof mean), memcpy(tc.std, sd, sizeof sd);
    int64_t order[N];
    for (int i = 0; i < N; i++)
        order[i] = (i * 17 + 3) % N;
    size_t floats = (size_t)EPOCHS * ((N + B - 1) / B) * B * 3072;
    cnn_loader *sync = loader(d, &tc, B, true, 11, false), *bg = loader(d, &tc, B, true, 11, true);
    float *a = all_batches(sync, order, N, B, EPOCHS, 0), *b = all_batches(bg, order, N, B, EPOCHS, 0);
    cr_assert_eq(memcmp(a, b, floats * sizeof(float)), 0, "background and synchronous loaders differ");
    /* a background thread the caller waits for (at normal priority): every batch the thread's */
    cnn_loader_options wo;
    cnn_loader_options_default(&wo);
    wo.batch = B, wo.augment = true, wo.seed = 11, wo.wait_for_thread = true;
    cnn_loader *waiting = NULL;
    char werr[512];
    cr_assert_eq(cnn_loader_create(&waiting, d, &tc, &wo, werr, sizeof werr), CNN_OK, "%s", werr);
    cr_assert(cnn_loader_background(waiting));
    float *wb = all_batches(waiting, order, N, B, EPOCHS, 0);
    cr_assert_eq(memcmp(a, wb, floats * sizeof(float)), 0, "the thread's batches differ from the synchronous ones");
    cr_assert_eq(cnn_loader_caller_made(waiting), 0);
    cr_assert_eq(cnn_loader_caller_made(sync), EPOCHS * ((N + B - 1) / B));
    free(wb);
    cnn_loader_destroy(waiting);
    /* resumed from batch 3: the same batches 3 onwards */
    float *r = all_batches(bg, order, N, B, 1, 3);
    cr_assert_eq(memcmp(a + (size_t)3 * B * 3072, r + (size_t)3 * B * 3072, (size_t)(N - 3 * B) * 3072 * sizeof(float)), 0);
    free(r);
    /* a batch taken halfway, then a new epoch: the new epoch's batches, unaffected */
    float *x = malloc(sizeof(float) * B * 3072), lab[B];
    int64_t n;
    cr_assert_eq(cnn_loader_start(bg, order, N, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(bg, x, lab, &n), CNN_OK);
    cr_assert_eq(cnn_loader_start(bg, order, N, 2, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(bg, x, lab, &n), CNN_OK);
    size_t nb = (N + B - 1) / B;
    cr_assert_eq(memcmp(x, a + nb * B * 3072, (size_t)B * 3072 * sizeof(float)), 0);
    /* the same example at the same position in another batch size: the same image */
    cnn_loader *other = loader(d, &tc, 5, true, 11, false);
    cr_assert_eq(cnn_loader_start(other, order, N, 1, 1), CNN_OK);
    cr_assert_eq(cnn_loader_next(other, x, lab, &n), CNN_OK);
    cr_assert_eq(memcmp(x, a + 5 * 3072, 5 * 3072 * sizeof(float)), 0, "positions 5..9");
    cnn_loader_destroy(other);
    /* another epoch or seed: other choices */
    cr_assert_neq(memcmp(a, a + nb * B * 3072, (size_t)B * 3072 * sizeof(float)), 0);
    cnn_loader *seed2 = loader(d, &tc, B, true, 12, true);
    float *c = all_batches(seed2, order, N, B, 1, 0);
    cr_assert_neq(memcmp(a, c, (size_t)N * 3072 * sizeof(float)), 0);
    free(c);
    cnn_loader_destroy(seed2);
    /* misuse */
    int64_t bad[2] = {0, N};
    cr_assert_eq(cnn_loader_start(bg, bad, 2, 1, 0), CNN_ERR_USAGE);
    cr_assert_eq(cnn_loader_start(bg, order, N, 1, 99), CNN_ERR_USAGE);
    cr_assert_eq(cnn_loader_next(bg, x, lab, &n), CNN_OK);
    cr_assert_eq(n, 0, "after a refused start the loader has no batches");
    free(x);
    free(a);
    free(b);
    cnn_loader_destroy(sync);
    cnn_loader_destroy(bg);
    cnn_loader_destroy(NULL);
    cnn_dataset_destroy(d);
}

/* ---- normalisation ---- */

Test(data, normalisation_values)
{
    cnn_dataset *d = cifar_set(3);
    cnn_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.nnormalize = 3;
    double mean[3] = {0.4914, 0.4822, 0.4465}, sd[3] = {0.2470, 0.2435, 0.2616};
    memcpy(tc.mean, mean, sizeof mean), memcpy(tc.std, sd, sizeof sd);
    cnn_loader *l = loader(d, &tc, 3, false, 0, true);
    float x[3 * 3072], lab[3];
    int64_t n;
    cr_assert_eq(cnn_loader_start(l, NULL, 3, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    for (int i = 0; i < 3 * 3072; i++) {
        int c = (i % 3072) / 1024;
        float v = (float)d->pixels[i] / 255.0f;
        cr_assert_eq(x[i], (v - (float)mean[c]) / (float)sd[c], "value %d", i);
    }
    cnn_loader_destroy(l);
    /* one pair for every channel */
    tc.nnormalize = 1;
    tc.mean[0] = 0.5, tc.std[0] = 0.5;
    l = loader(d, &tc, 3, false, 0, false);
    cr_assert_eq(cnn_loader_start(l, NULL, 3, 1, 0), CNN_OK);
    cr_assert_eq(cnn_loader_next(l, x, lab, &n), CNN_OK);
    for (int i = 0; i < 3 * 3072; i++)
        cr_assert_eq(x[i], ((float)d->pixels[i] / 255.0f - 0.5f) / 0.5f);
    cnn_loader_destroy(l);
    /* what does not fit */
    cnn_loader_options o;
    cnn_loader_options_default(&o);
    char err[512];
    tc.nnormalize = 2;
    cr_assert_eq(cnn_loader_create(&l, d, &tc, &o, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "normalize gives 2 means and standard deviations, but the images have 3 channels"), "%s", err);
    tc.nnormalize = 1;
    tc.std[0] = 0;
    cr_assert_eq(cnn_loader_create(&l, d, &tc, &o, err, sizeof err), CNN_ERR_INPUT);
    cr_assert(strstr(err, "standard deviation 0"), "%s", err);
    cnn_dataset_destroy(d);
}

/* A small network on 3x8x8 PNG images: training normalises its batches (cnn_train gives the
 * weights a hand-made loop over normalised batches gives) and evaluation normalises as training
 * does (cnn_evaluate gives the loss computed by hand on normalised inputs). */
static const char small_net[] = "network s { input x[3, 8, 8]; output y = x -> flatten -> dense(3); }\n"
                                "train s { loss = cross_entropy; optimizer = sgd(lr=0.05); batch = 4; }\n";

static void image_set(int n)
{
    tmkdirs("d/train/a"), tmkdirs("d/train/b"), tmkdirs("d/train/c"), tmkdirs("d/test/a");
    uint8_t px[8 * 8 * 3];
    for (int i = 0; i < n; i++) {
        fill(px, sizeof px, (unsigned)i);
        for (int k = 0; k < 64; k++)
            px[k * 3 + i % 3] = 250; /* the class's colour */
        const char *cls = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c";
        write_png8(tpath("d/train/%s/%03d.png", cls, i), 8, 8, 3, px);
        if (i < 6)
            write_png8(tpath("d/test/a/%03d.png", i), 8, 8, 3, px);
    }
}

Test(data, normalisation_in_training_and_evaluation)
{
    image_set(24);
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_compile(&m, "s.cnn", small_net, strlen(small_net), NULL), CNN_OK, "%s", cnn_model_errmsg(m));
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.nnormalize = 3;
    tc.mean[0] = 0.3, tc.mean[1] = 0.5, tc.mean[2] = 0.7;
    tc.std[0] = 0.2, tc.std[1] = 0.3, tc.std[2] = 0.4;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 1;
    o.backend = CNN_BACKEND_REF;
    cnn_dataset *tr = load_ok(tpath("d"), "train"), *te = load_ok(tpath("d"), "test");
    cnn_weights *w1, *w2;
    cr_assert_eq(cnn_weights_create(&w1, m, 3), CNN_OK);
    cr_assert_eq(cnn_weights_create(&w2, m, 3), CNN_OK);
    cnn_session *s1, *s2, *ev;
    cr_assert_eq(cnn_session_create(&s1, m, w1, &o, 4, CNN_MODE_TRAIN, &tc), CNN_OK);
    cr_assert_eq(cnn_session_create(&s2, m, w2, &o, 4, CNN_MODE_TRAIN, &tc), CNN_OK);
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = 2;
    to.shuffle = false;
    to.eval_batch = 4;
    cnn_train_result res;
    cr_assert_eq(cnn_train(s1, tr, te, &to, &res), CNN_OK, "%s", cnn_session_errmsg(s1));
    /* by hand: the bytes scaled and normalised, in order */
    float x[4 * 192], lab[4];
    for (int e = 0; e < 2; e++)
        for (int st = 0; st < 6; st++) {
            cnn_dataset_batch(tr, NULL, st * 4, 4, x, lab);
            for (int i = 0; i < 4 * 192; i++) {
                int c = (i % 192) / 64;
                x[i] = (x[i] - (float)tc.mean[c]) / (float)tc.std[c];
            }
            memcpy(cnn_session_input(s2, 0), x, sizeof x);
            cr_assert_eq(cnn_session_train_step(s2, lab, true, NULL, NULL), CNN_OK);
        }
    for (int t = 0; t < cnn_weights_count(w1); t++) {
        int rank;
        int64_t dims[5];
        const float *a = cnn_weights_tensor(w1, t, NULL, &rank, dims), *b = cnn_weights_tensor(w2, t, NULL, &rank, dims);
        int64_t n = 1;
        for (int k = 0; k < rank; k++)
            n *= dims[k];
        cr_assert_eq(memcmp(a, b, sizeof(float) * (size_t)n), 0, "tensor %d differs", t);
    }
    /* evaluation: the training session's config normalises the test set */
    cr_assert(res.has_test);
    cr_assert_eq(cnn_session_create(&ev, m, w1, &o, 4, CNN_MODE_INFER, &tc), CNN_OK);
    cnn_eval_result er;
    cr_assert_eq(cnn_evaluate(ev, te, 0, &er), CNN_OK, "%s", cnn_session_errmsg(ev));
    cr_assert_eq(er.loss, res.test_loss, "cnn_train's evaluation normalises as cnn_evaluate");
    double loss = 0;
    for (int first = 0; first < 6; first += 4) {
        int take = 6 - first < 4 ? 6 - first : 4;
        memset(x, 0, sizeof x);
        cnn_dataset_batch(te, NULL, first, take, x, lab);
        for (int i = 0; i < take * 192; i++) {
            int c = (i % 192) / 64;
            x[i] = (x[i] - (float)tc.mean[c]) / (float)tc.std[c];
        }
        memcpy(cnn_session_input(ev, 0), x, sizeof x);
        cr_assert_eq(cnn_session_run(ev), CNN_OK);
        const float *y = cnn_session_output(ev, 0);
        for (int i = 0; i < take; i++) {
            double mx = fmax(fmax(y[i * 3], y[i * 3 + 1]), y[i * 3 + 2]), sum = 0;
            for (int k = 0; k < 3; k++)
                sum += exp((double)y[i * 3 + k] - mx);
            loss += log(sum) + mx - (double)y[i * 3 + (int)lab[i]];
        }
    }
    cr_assert_float_eq(er.loss, loss / 6, 1e-12, "cnn_evaluate %.17g, by hand %.17g", er.loss, loss / 6);
    /* without the normalisation, another loss */
    cnn_session *plain;
    cnn_train_config none = tc;
    none.nnormalize = 0;
    cr_assert_eq(cnn_session_create(&plain, m, w1, &o, 4, CNN_MODE_INFER, &none), CNN_OK);
    cnn_eval_result pr;
    cr_assert_eq(cnn_evaluate(plain, te, 0, &pr), CNN_OK);
    cr_assert_neq(pr.loss, er.loss);
    cnn_session_destroy(plain);
    cnn_session_destroy(ev);
    cnn_session_destroy(s1);
    cnn_session_destroy(s2);
    cnn_weights_destroy(w1);
    cnn_weights_destroy(w2);
    cnn_dataset_destroy(tr);
    cnn_dataset_destroy(te);
    cnn_model_destroy(m);
}

/* ---- resnet20 on a CIFAR folder ---- */

/* Learnable: class c is a bright square in one of 4 places of one channel, over noise. */
static int lab_mod4(int i) { return i % 4; }
static int pix_squares(int i, int k)
{
    int c = k / 1024, y = (k / 32) % 32, x = k % 32, cls = i % 4;
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(k * 40503u);
    int noise = (int)((h >> 13) % 64);
    bool in = c == cls % 3 && (cls < 2 ? y < 16 : y >= 16) && (cls % 2 ? x < 16 : x >= 16);
    return in ? 180 + noise : noise;
}

typedef struct losses {
    double v[64];
    int n;
} losses;

static int record_loss(const cnn_train_step_info *si, void *user)
{
    losses *l = user;
    if (l->n < 64)
        l->v[l->n++] = si->loss;
    return 0;
}

Test(data, resnet20_learns_on_cifar, .timeout = 600)
{
    int steps = quick() ? 12 : 50;
    write_cifar(tpath("data_batch_1.bin"), 256, lab_mod4, pix_squares);
    write_cifar(tpath("test_batch.bin"), 32, lab_mod4, pix_squares);
    const char *ex = getenv("CNN_EXAMPLES");
    char path[1024];
    snprintf(path, sizeof path, "%s/resnet20.cnn", ex ? ex : "examples");
    cnn_model *m = NULL;
    cr_assert_eq(cnn_model_load(&m, path, NULL), CNN_OK, "%s", m ? cnn_model_errmsg(m) : path);
    cnn_dataset *tr = load_ok(tmpdir, "train");
    char err[1024];
    cr_assert_eq(cnn_dataset_check(tr, m, err, sizeof err), CNN_OK, "%s", err);
    cnn_train_config tc;
    cnn_model_train_config(m, &tc);
    tc.batch = 8;
    tc.lr = 0.02;
    tc.naugment = 0;
    tc.augment[tc.naugment++] = (cnn_augment_step){CNN_AUGMENT_RANDOM_CROP, 2};
    tc.augment[tc.naugment++] = (cnn_augment_step){CNN_AUGMENT_RANDOM_FLIP, 0};
    tc.nnormalize = 1;
    tc.mean[0] = 0.2, tc.std[0] = 0.3;
    cnn_options o;
    cnn_options_default(&o);
    o.threads = 2;
    cnn_weights *w;
    cnn_session *s;
    cr_assert_eq(cnn_weights_create(&w, m, 1), CNN_OK);
    cr_assert_eq(cnn_session_create(&s, m, w, &o, tc.batch, CNN_MODE_TRAIN, &tc), CNN_OK, "%s", cnn_session_errmsg(s));
    losses l = {0};
    cnn_train_options to;
    cnn_train_options_default(&to);
    to.epochs = 10;
    to.max_steps = steps;
    to.on_step = record_loss;
    to.user = &l;
    cr_assert_eq(cnn_train(s, tr, NULL, &to, NULL), CNN_OK, "%s", cnn_session_errmsg(s));
    cr_assert_eq(l.n, steps);
    double first = 0, last = 0;
    int k = steps / 4;
    for (int i = 0; i < k; i++)
        first += l.v[i], last += l.v[steps - 1 - i];
    cr_log_info("resnet20 on a CIFAR folder: mean loss of the first %d steps %.4f, of the last %d %.4f", k, first / k,
                k, last / k);
    cr_expect_lt(last, first, "the loss does not fall: %.4f -> %.4f", first / k, last / k);
    cnn_session_destroy(s);
    cnn_weights_destroy(w);
    cnn_dataset_destroy(tr);
    cnn_model_destroy(m);
    /* and through the driver: it starts, trains and evaluates on the folder */
    const char *cnnc = getenv("CNNC");
    if (cnnc) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "'%s' train '%s' --data '%s' --steps 2 --batch 8 --threads 2 -q > %s/out.txt 2>&1",
                 cnnc, path, tmpdir, tmpdir);
        int rc = system(cmd);
        size_t len;
        char *out = test_file_bytes(tpath("out.txt"), &len);
        cr_expect_eq(rc, 0, "cnnc train on a CIFAR folder: %s", out ? out : "(no output)");
        free(out);
    }
}
