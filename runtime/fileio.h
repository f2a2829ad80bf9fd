/* Small file helpers shared by the format modules (safetensors.c, npy.c, idx.c): error text
 * "where: message", little-endian float I/O, and atomic replacement of a file (write a
 * temporary file next to it, then rename it over). */
#ifndef CNN_FILEIO_H
#define CNN_FILEIO_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define RT_HOST_BIG_ENDIAN 1
#else
#define RT_HOST_BIG_ENDIAN 0
#endif

/* Writes "where: <fmt...>" into err (errlen bytes; nothing when err is NULL or errlen 0). */
void rt_vformat_error(char *err, size_t errlen, const char *where, const char *fmt, va_list ap);

/* Reverses the bytes of n 4-byte floats in place. */
void rt_swap_floats(float *p, size_t n);

/* Writes numel floats little-endian; returns 1 on success, 0 on a write error. */
int rt_write_floats(FILE *fp, const float *data, int64_t numel);

/* Creates path.PID-K.tmp exclusively and opens it for writing; *tmp_out gets its malloc'd
 * name.  NULL with errno set on failure. */
FILE *rt_create_temp(const char *path, char **tmp_out);

/* Flushes, syncs and closes fp (made by rt_create_temp as tmp), then renames tmp over path.
 * Returns 0; on failure removes tmp, writes "write error: ..." or "cannot rename ..." into msg
 * and returns -1.  Frees tmp either way. */
int rt_commit_temp(FILE *fp, char *tmp, const char *path, char *msg, size_t msglen);

#endif
