/* Deterministic mutation tests of the data readers: CIFAR-10 batch folders, PNG and JPEG
 * images.  Each reader gets at least 10,000 mutants of valid seeds made by a seeded xorshift:
 * bit flips, bytes set, insertions, deletions, truncations, block duplications, and mutations
 * that know the format (PNG chunks with their CRCs made right again so the decoder goes past
 * them, IHDR fields; JPEG frame sizes and table bytes; CIFAR files of every awkward size).
 * Images are decoded from memory (rt_image_decode) and, every 16th, through a folder as
 * cnn_dataset_load reads it.  Every mutant must give CNN_OK with a sane image or an error
 * status with a message naming the file; a crash fails the test, a hang its timeout, and the
 * sanitizer build any memory error, undefined behaviour or leak.  --verbose shows the counts. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <time.h>
#include <zlib.h>

#include "tests/file_util.h"
#include "tests/test_data_util.h"
#include "runtime/cnn.h"
#include "tests/mutate_util.h"
#include "runtime/data.h"

TestSuite(mutate_data, .init = data_enter_tmpdir, .fini = data_leave_tmpdir, .timeout = 120);











static void put_be16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}
static uint32_t get_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

typedef struct tally {
    const char *what;
    int mutants, refused, accepted;
    double t0, last, slowest;
    int slowest_at;
} tally;

static void counted(tally *t, bool ok)
{
    double n = now(), dt = n - (t->last > 0 ? t->last : t->t0);
    if (dt > t->slowest)
        t->slowest = dt, t->slowest_at = t->mutants;
    t->last = n;
    t->mutants++;
    if (ok)
        t->accepted++;
    else
        t->refused++;
}

static void report(const tally *t)
{
    cr_log_info("%s: %d mutants, %d refused, %d accepted, %.2f s (the slowest, number %d, %.1f ms)", t->what,
                t->mutants, t->refused, t->accepted, now() - t->t0, t->slowest_at, t->slowest * 1e3);
    cr_expect_geq(t->mutants, mutants_per_reader());
    cr_expect_gt(t->refused, 0, "%s: no mutant refused", t->what);
    cr_expect_gt(t->accepted, 0, "%s: no mutant accepted", t->what);
}

/* ---- images: decoded from memory, and through a folder now and then ---- */

static void image_mutant(tally *t, const buf *b, int k)
{
    rt_image im;
    char err[512] = "";
    cnn_status st = rt_image_decode(b->p, b->len, "m.png", 0, &im, err, sizeof err);
    counted(t, st == CNN_OK);
    if (st == CNN_OK) {
        cr_assert(im.channels == 1 || im.channels == 3, "mutant %d: %lld channels", k, (long long)im.channels);
        cr_assert(im.height >= 1 && im.width >= 1 && im.height * im.width <= RT_DATA_MAX_PIXELS, "mutant %d", k);
        cr_assert_not_null(im.pixels);
        volatile uint8_t last = im.pixels[im.channels * im.height * im.width - 1]; /* the sanitizer checks the size */
        (void)last;
    } else {
        cr_assert_eq(strncmp(err, "m.png: ", 7), 0, "mutant %d: status %d, message \"%s\"", k, st, err);
        cr_assert_eq(st, CNN_ERR_INPUT, "mutant %d: status %d (bad data is CNN_ERR_INPUT): %s", k, st, err);
        cr_assert_null(im.pixels, "mutant %d", k);
    }
    rt_image_free(&im);
    if (k % 16 == 0) { /* the folder reader says the same, naming the file */
        put_bytes(tpath("f/train/c/m.png"), b->p, b->len);
        cnn_dataset *d = NULL;
        char derr[1024] = "";
        bool absent = false;
        cnn_status ds = cnn_dataset_load(&d, tpath("f"), "train", &absent, derr, sizeof derr);
        cr_assert_eq(ds, st, "mutant %d: the folder gives %d (%s), memory %d (%s)", k, ds, derr, st, err);
        if (ds == CNN_OK)
            cr_assert_eq(cnn_dataset_count(d), 1);
        else
            cr_assert(strstr(derr, "/f/train/c/m.png: "), "mutant %d: %s", k, derr);
        cnn_dataset_destroy(d);
    }
}

/* Puts every chunk's CRC right (as far as the chunk lengths allow), so that a mutation inside a
 * chunk reaches the decoder instead of the CRC check. */
static void fix_png_crcs(buf *b)
{
    size_t at = 8;
    while (at + 12 <= b->len) {
        uint32_t n = get_be32(b->p + at);
        if (n > b->len - at - 12)
            break;
        uint32_t crc = (uint32_t)crc32(0, b->p + at + 4, n + 4);
        put_be32(b->p + at + 8 + n, crc);
        at += 12 + n;
    }
}

static uint8_t *png_seed(int kind, size_t *len)
{
    enum { W = 7, H = 5 };
    uint8_t px[W * H * 8];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 29 + kind * 7);
    png_color pal[3] = {{1, 2, 3}, {200, 100, 0}, {9, 9, 9}};
    uint8_t idx[W * H], trns[3] = {0, 128, 255};
    for (int i = 0; i < W * H; i++)
        idx[i] = (uint8_t)(i % 3);
    const char *p = tpath("seed%d.png", kind);
    switch (kind) {
    case 0: write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0, NULL, 0, 0); break;
    case 1: write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, px, NULL, 0, NULL, 0, 0); break;
    case 2: write_png(p, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, px, NULL, 0, NULL, 0, 1); break;
    case 3: write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 3, trns, 3, 0); break;
    default: write_png(p, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 16, px, NULL, 0, NULL, 0, 0); break;
    }
    uint8_t *bytes = test_file_bytes(p, len);
    cr_assert_not_null(bytes);
    return bytes;
}

Test(mutate_data, png, .timeout = 120)
{
    enum { SEEDS = 5 };
    uint8_t *seeds[SEEDS];
    size_t lens[SEEDS];
    for (int k = 0; k < SEEDS; k++)
        seeds[k] = png_seed(k, &lens[k]);
    tmkdirs("f/train/c");
    static const uint32_t sides[] = {0, 1, 2, 4, 6, 7, 8, 100, 4096, 65535, 65536, 0x7fffffff, 0x80000000, 0xffffffff};
    static const uint8_t depths[] = {0, 1, 2, 4, 8, 16, 3, 32}, colors[] = {0, 2, 3, 4, 6, 1, 5, 7};
    tally t = {.what = "png", .t0 = now()};
    uint64_t s = seeded(0x5eed0101ULL);
    buf b = {0};
    int n = mutants_per_reader(), k = 0;
    /* the seeds and every truncation of the first */
    for (int f = 0; f < SEEDS; f++, k++) {
        set_to(&b, seeds[f], lens[f]);
        image_mutant(&t, &b, k);
        cr_assert_eq(t.accepted, f + 1, "seed %d refused", f);
    }
    for (size_t cut = 0; cut < lens[0]; cut++, k++) {
        set_to(&b, seeds[0], cut);
        image_mutant(&t, &b, k);
    }
    for (; k < n; k++) {
        int f = (int)below(&s, SEEDS);
        set_to(&b, seeds[f], lens[f]);
        for (size_t r = 1 + below(&s, 2); r > 0; r--) {
            switch (below(&s, 4)) {
            case 0: /* an IHDR field (bytes 16..28) */
                switch (below(&s, 4)) {
                case 0: put_be32(b.p + 16, sides[below(&s, sizeof sides / sizeof *sides)]); break;
                case 1: put_be32(b.p + 20, sides[below(&s, sizeof sides / sizeof *sides)]); break;
                case 2: b.p[24] = depths[below(&s, sizeof depths)]; break;
                default: b.p[25 + below(&s, 4)] = below(&s, 2) ? colors[below(&s, sizeof colors)] : (uint8_t)rnd(&s); break;
                }
                break;
            default:
                byte_mutation(&b, &s);
                break;
            }
        }
        if (below(&s, 4) != 0)
            fix_png_crcs(&b);
        image_mutant(&t, &b, k);
    }
    free(b.p);
    for (int f = 0; f < SEEDS; f++)
        free(seeds[f]);
    report(&t);
}

/* ---- JPEG ---- */

/* A JPEG in memory: 1 or 3 channels, progressive or baseline, 4:2:0 or 4:4:4. */
static uint8_t *jpeg_seed(int kind, size_t *len)
{
    enum { W = 19, H = 11 };
    int channels = kind == 0 ? 1 : 3;
    uint8_t px[W * H * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)((i * 13 + (i / 57) * 40 + kind) % 256);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &out, &size);
    c.image_width = W;
    c.image_height = H;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, kind == 3 ? 40 : 90, TRUE);
    if (kind == 2)
        jpeg_simple_progression(&c);
    if (kind == 3)
        c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1; /* 4:4:4 */
    if (kind == 4)
        c.restart_interval = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * W * (size_t)channels;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *copy = malloc(size);
    memcpy(copy, out, size);
    free(out);
    *len = size;
    return copy;
}

/* The offset of the first marker FF xx (xx one of ms) after the SOI, or 0. */
static size_t find_marker(const buf *b, const uint8_t *ms, int nm, uint64_t *s)
{
    size_t hits[32];
    int nh = 0;
    for (size_t i = 2; i + 9 < b->len && nh < 32; i++)
        if (b->p[i] == 0xff)
            for (int k = 0; k < nm; k++)
                if (b->p[i + 1] == ms[k])
                    hits[nh++] = i;
    return nh ? hits[below(s, (size_t)nh)] : 0;
}

Test(mutate_data, jpeg, .timeout = 120)
{
    enum { SEEDS = 5 };
    uint8_t *seeds[SEEDS];
    size_t lens[SEEDS];
    for (int k = 0; k < SEEDS; k++)
        seeds[k] = jpeg_seed(k, &lens[k]);
    tmkdirs("f/train/c");
    static const uint32_t sizes[] = {0, 1, 2, 7, 8, 9, 11, 16, 19, 20, 255, 4096, 65535};
    static const uint8_t sofs[] = {0xc0, 0xc1, 0xc2}, tables[] = {0xdb, 0xc4, 0xda, 0xdd};
    tally t = {.what = "jpeg", .t0 = now()};
    uint64_t s = seeded(0x5eed0102ULL);
    buf b = {0};
    int n = mutants_per_reader(), k = 0;
    for (int f = 0; f < SEEDS; f++, k++) {
        set_to(&b, seeds[f], lens[f]);
        image_mutant(&t, &b, k);
        cr_assert_eq(t.accepted, f + 1, "seed %d refused", f);
    }
    for (size_t cut = 0; cut < lens[0]; cut += 3, k++) {
        set_to(&b, seeds[0], cut);
        image_mutant(&t, &b, k);
    }
    for (; k < n; k++) {
        int f = (int)below(&s, SEEDS);
        set_to(&b, seeds[f], lens[f]);
        for (size_t r = 1 + below(&s, 2); r > 0; r--) {
            switch (below(&s, 4)) {
            case 0: { /* the frame: precision, height, width, components */
                size_t at = find_marker(&b, sofs, 3, &s);
                if (at) {
                    size_t field = below(&s, 4);
                    if (field == 0)
                        b.p[at + 4] = (uint8_t)(below(&s, 2) ? 8 : rnd(&s));
                    else if (field < 3)
                        put_be16(b.p + at + 5 + (field - 1) * 2, sizes[below(&s, sizeof sizes / sizeof *sizes)]);
                    else
                        b.p[at + 9] = (uint8_t)below(&s, 6);
                }
                break;
            }
            case 1: { /* a byte of a table or scan header */
                size_t at = find_marker(&b, tables, 4, &s);
                if (at) {
                    size_t seg = (size_t)b.p[at + 2] << 8 | b.p[at + 3];
                    size_t end = at + 2 + seg < b.len ? at + 2 + seg : b.len;
                    if (end > at + 2)
                        b.p[at + 2 + below(&s, end - at - 2)] = (uint8_t)rnd(&s);
                }
                break;
            }
            default:
                byte_mutation(&b, &s);
                break;
            }
        }
        image_mutant(&t, &b, k);
    }
    free(b.p);
    for (int f = 0; f < SEEDS; f++)
        free(seeds[f]);
    report(&t);
}

/* ---- CIFAR-10 folders ---- */

static int cif_label(int i) { return i * 3 % 10; }
static int cif_pix(int i, int k) { return (i + k) % 256; }

Test(mutate_data, cifar, .timeout = 120)
{
    enum { RECORDS = 2 };
    write_cifar(tpath("seed.bin"), RECORDS, cif_label, cif_pix);
    size_t len;
    uint8_t *seed = test_file_bytes(tpath("seed.bin"), &len);
    cr_assert_eq(len, RECORDS * 3073);
    static const char *const names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_5.bin",
                                        "test_batch.bin"};
    tmkdirs("c");
    tally t = {.what = "cifar", .t0 = now()};
    uint64_t s = seeded(0x5eed0103ULL);
    buf b = {0};
    int n = mutants_per_reader();
    for (int k = 0; k < n; k++) {
        set_to(&b, seed, len);
        if (k < 3073 * 2 + 2) {
            b.len = (size_t)k % (len + 1); /* every length up to two records, and past */
            if (k > (int)len)
                splice(&b, b.len, 0, seed, below(&s, 64));
        } else {
            for (size_t r = 1 + below(&s, 3); r > 0; r--)
                byte_mutation(&b, &s);
        }
        int which = (int)below(&s, 5);
        bool train = which < 4;
        /* the other files: present, absent or a folder */
        for (int f = 0; f < 5; f++) {
            const char *p = tpath("c/%s", names[f]);
            remove(p);
            rmdir(p);
            if (f == which)
                put_bytes(p, b.p, b.len);
            else if (f == 0 && below(&s, 4) != 0)
                put_bytes(p, seed, len);
            else if (below(&s, 8) == 0)
                put_bytes(p, seed, len);
            else if (below(&s, 64) == 0)
                mkdir(p, 0700);
        }
        cnn_dataset *d = NULL;
        char err[1024] = "";
        bool absent = false;
        cnn_status st = cnn_dataset_load(&d, tpath("c"), train ? "train" : "test", &absent, err, sizeof err);
        counted(&t, st == CNN_OK);
        if (st == CNN_OK) {
            cr_assert_not_null(d);
            int64_t count = cnn_dataset_count(d);
            cr_assert_geq(count, 1);
            float *x = malloc(sizeof(float) * 3072 * (size_t)count), *lab = malloc(sizeof(float) * (size_t)count);
            cnn_dataset_batch(d, NULL, 0, count, x, lab); /* every byte read (the sanitizer checks) */
            for (int64_t i = 0; i < count; i++)
                cr_assert(lab[i] >= 0 && lab[i] <= 255);
            free(x);
            free(lab);
        } else {
            cr_assert_null(d, "mutant %d", k);
            cr_assert(err[0] && strstr(err, "/c"), "mutant %d: status %d, message \"%s\"", k, st, err);
            cr_assert_eq(st, CNN_ERR_INPUT, "mutant %d: status %d: %s", k, st, err);
        }
        cnn_dataset_destroy(d);
    }
    free(b.p);
    free(seed);
    report(&t);
}
