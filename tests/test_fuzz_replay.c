/* The fuzz corpora replayed without clang: every file of fuzz/corpus/NAME (its seeds, the inputs
 * the fuzzers kept, and regressions/, the inputs that once crashed) goes through the same entry
 * point as the libFuzzer target NAME (fuzz/fuzz_NAME.c, compiled here as fuzz_NAME).  A target
 * aborts when a reader breaks its contract (an error without a message, a result that makes no
 * sense), so a crash, an abort, a sanitizer report (sanitizer build) or a leak fails the test.
 * The targets come from fuzz/meson.build's list (fuzz_targets.h), one test each.
 * CNN_FUZZ_CORPUS points at another corpus folder. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_targets.h"

#define DECLARE(name) int fuzz_##name(const uint8_t *data, size_t size);
FUZZ_TARGETS(DECLARE)

typedef int (*entry_fn)(const uint8_t *data, size_t size);

/* Feeds every regular file under dir (recursively) to fn; returns how many. */
static int replay_dir(const char *dir, entry_fn fn)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            n += replay_dir(path, fn);
            continue;
        }
        if (!S_ISREG(sb.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "cannot open %s", path);
        unsigned char *buf = malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1);
        cr_assert_not_null(buf);
        size_t len = fread(buf, 1, (size_t)sb.st_size, f);
        fclose(f);
        cr_assert_eq(len, (size_t)sb.st_size, "short read of %s", path);
        /* a copy of exactly len bytes, as libFuzzer passes: a read past it is caught by ASan */
        fn(buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *name, entry_fn fn)
{
    const char *base = getenv("CNN_FUZZ_CORPUS");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", base && *base ? base : FUZZ_CORPUS_DIR, name);
    int n = replay_dir(dir, fn);
    cr_log_info("%s: %d inputs replayed from %s", name, n, dir);
    cr_assert_gt(n, 0, "no corpus at %s", dir);
}

TestSuite(fuzz_replay, .timeout = 300);

#define REPLAY_TEST(name) \
    Test(fuzz_replay, name) { replay(#name, fuzz_##name); }
FUZZ_TARGETS(REPLAY_TEST)
