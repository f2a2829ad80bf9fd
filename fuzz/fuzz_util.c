/* Helpers of the fuzz targets: a private temporary folder and input splitting (fuzz/fuzz.h). */
#include "fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];
static char paths[4][640];

static void remove_dir(void)
{
    if (dir[0])
        rmdir(dir);
}

const char *fuzz_tmpdir(void)
{
    if (dir[0])
        return dir;
    const char *base = getenv("FUZZ_TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(dir, sizeof dir, "%s/cnnc-fuzz-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir;
}

const char *fuzz_write_file(int slot, const char *name, const void *data, size_t len)
{
    char *p = paths[slot & 3];
    snprintf(p, sizeof paths[0], "%s/%s", fuzz_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

void fuzz_remove_file(const char *name)
{
    char p[640];
    snprintf(p, sizeof p, "%s/%s", fuzz_tmpdir(), name);
    unlink(p);
}

void fuzz_split2(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen,
                 const uint8_t **b, size_t *blen)
{
    if (size < 4) {
        *a = *b = data;
        *alen = *blen = 0;
        return;
    }
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    size -= 4;
    if (n > size)
        n = size;
    *a = data + 4;
    *alen = n;
    *b = data + 4 + n;
    *blen = size - n;
}
