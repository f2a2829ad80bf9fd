/* Small file helpers shared by the format modules (safetensors.c, npy.c, idx.c): error text
 * "where: message", little-endian float I/O, and writing a file: atomic replacement of a
 * regular file (a temporary file next to it, renamed over it), in place for anything else. */
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

/* Opens path for reading when it is a regular file and stores its size; NULL with the reason
 * ("cannot open: <strerror>" or "not a regular file") in msg otherwise. */
FILE *rt_open_regular(const char *path, uint64_t *size, char *msg, size_t msglen);

/* Reverses the bytes of n 4-byte floats in place. */
void rt_swap_floats(float *p, size_t n);

/* Writes numel floats little-endian; returns 1 on success, 0 on a write error. */
int rt_write_floats(FILE *fp, const float *data, int64_t numel);

/* A file being written: rt_out_open, writes to fp, then rt_out_commit or rt_out_abort.
 * - A regular file (or a new one) is replaced atomically: a temporary file target.PID-K.tmp is
 *   written beside it, synced and renamed over it on commit; an existing file's mode is kept,
 *   and through a symlink the file it names is replaced (the link stays a link).  Stale
 *   temporary files of the same target left by killed writers are removed first (see
 *   rt_out_clean_stale).
 * - What exists and is not a regular file (a device such as /dev/null, a FIFO, a socket) is
 *   written in place (opened O_WRONLY | O_TRUNC, never created or replaced); so are "-",
 *   /dev/stdout (standard output) and /dev/stderr. */
typedef struct rt_outfile {
    FILE *fp;
    char *tmp;     /* the temporary file, or NULL when writing in place */
    char *target;  /* what tmp replaces: the path, or the file a symlink at the path names */
    int stale_removed; /* stale temporary files of target that rt_out_open removed */
} rt_outfile;

/* Removes the temporary files target.PID-K.tmp beside target whose writer is gone: PID is not
 * this process and kill(PID, 0) fails with ESRCH (a writer killed by SIGKILL or a crash left
 * it).  Only regular files are removed; a live writer's file, or one of a process of another
 * user (EPERM), is kept.  Quiet (the library never prints): returns how many were removed.
 * Caveat: PIDs are those of this machine's PID namespace, so the folder must not be shared
 * with writers on another machine writing the same target at the same time. */
int rt_out_clean_stale(const char *target);

/* 0, or -1 with errno set (nothing left to clean up). */
int rt_out_open(rt_outfile *o, const char *path);
/* Flushes, syncs and closes, then renames the temporary file over the target.  Returns 0; on
 * failure removes the temporary file, writes "write error: ..." or "cannot rename ..." into
 * msg and returns -1. */
int rt_out_commit(rt_outfile *o, char *msg, size_t msglen);
/* Closes and removes the temporary file (after a write error). */
void rt_out_abort(rt_outfile *o);

/* mkdir -p: creates folder dir and the missing folders above it.  0, or -1 with errno set and
 * the folder that could not be made in failed (n bytes). */
int rt_mkdir_p(const char *dir, char *failed, size_t n);

#endif
