/* Whole files in tests: the bytes, NUL-terminated (so text can be used as a string), and their
 * count.  Shared by every suite that reads a fixture, an example or a file a test wrote. */
#ifndef CNN_TESTS_FILE_UTIL_H
#define CNN_TESTS_FILE_UTIL_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The file at path, or NULL when it cannot be opened or read; *len (when len is not NULL) is
 * its size. */
static inline void *test_file_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

/* Writes v big-endian (the IDX format's integers), failing the test when it cannot. */
static inline void test_put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    cr_assert_eq(fwrite(b, 1, 4, f), 4);
}

/* As test_file_bytes, failing the test when the file cannot be read. */
static inline void *test_read_file(const char *path, size_t *len)
{
    void *buf = test_file_bytes(path, len);
    cr_assert_not_null(buf, "cannot read %s", path);
    return buf;
}

#endif
