/* The MNIST IDX reader (runtime/idx.c): plain and gzip splits, truncated, corrupt and absurd
 * files with the exact wording of every error, and the real Fashion-MNIST files when present.
 * Each test runs in a fresh temporary folder (see formats_util.h). */
#include "tests/formats_util.h"

#ifndef FASHION_DIR
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif

TestSuite(idx, .init = enter_tmpdir, .fini = leave_tmpdir);

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
        cr_assert_eq(s->pixels[i], (i * 7 + 3) % 256, "pixel %lld",
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
    unsigned char *gz = test_read_file("d/train-images-idx3-ubyte.gz", &len);
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
    int lo = 255, hi = 0;
    double sum = 0;
    for (int64_t i = 0; i < s.count * 784; i++) {
        lo = s.pixels[i] < lo ? s.pixels[i] : lo;
        hi = s.pixels[i] > hi ? s.pixels[i] : hi;
        sum += s.pixels[i] / 255.0;
    }
    cr_assert_eq(lo, 0);
    cr_assert_eq(hi, 255);
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
