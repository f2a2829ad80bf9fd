/* Shared fixture and helpers of the formats suite (test_formats_*.c): a fresh temporary working
 * folder per test, writing and reading whole files, counting files, awkward deterministic floats. */
#ifndef CNN_TESTS_FORMATS_UTIL_H
#define CNN_TESTS_FORMATS_UTIL_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/file_util.h"
#include "runtime/idx.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"

/* ---- fixture: a temporary working folder ---- */

static char tmpdir[4096];

static inline int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static inline void enter_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnc-formats-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
    cr_assert_eq(chdir(tmpdir), 0);
}

static inline void leave_tmpdir(void)
{
    if (chdir("/") == 0 && tmpdir[0])
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- helpers ---- */

static inline void write_file(const char *name, const void *data, size_t len)
{
    FILE *fp = fopen(name, "wb");
    cr_assert_not_null(fp, "cannot create %s", name);
    cr_assert_eq(fwrite(data, 1, len, fp), len);
    cr_assert_eq(fclose(fp), 0);
}

/* Number of entries in the working folder (to see that no temporary file is left). */
static inline int count_files(void)
{
    int n = 0;
    FILE *p = popen("ls -A | wc -l", "r");
    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* Deterministic floats with awkward values mixed in: NaN, infinities, -0, denormals. */
static inline void fill_floats(float *x, int64_t n, uint32_t seed)
{
    static const uint32_t special[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x80000000u,
                                       0x00000001u, 0x007fffffu, 0x7f7fffffu, 0xffc12345u};
    uint32_t s = seed * 2654435761u + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = (i % 7 == 3) ? special[(s >> 8) % 8] : s;
        memcpy(&x[i], &bits, 4);
    }
}

#endif
