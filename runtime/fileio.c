/* Small file helpers shared by the format modules. */
#include "runtime/fileio.h"
#include "ops/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *rt_open_regular(const char *path, uint64_t *size, char *msg, size_t msglen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(msg, msglen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        snprintf(msg, msglen, "not a regular file");
        return NULL;
    }
    *size = (uint64_t)sb.st_size;
    return fp;
}

void rt_vformat_error(char *err, size_t errlen, const char *where, const char *fmt, va_list ap)
{
    if (!err || errlen == 0)
        return;
    int k = snprintf(err, errlen, "%s: ", where ? where : "(null)");
    if (k >= 0 && (size_t)k < errlen)
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
}

void rt_swap_floats(float *p, size_t n)
{
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
}

int rt_write_floats(FILE *fp, const float *data, int64_t numel)
{
    if (numel == 0)
        return 1;
    if (!RT_HOST_BIG_ENDIAN)
        return fwrite(data, 4, (size_t)numel, fp) == (size_t)numel;
    float chunk[1024];
    for (int64_t i = 0; i < numel; i += 1024) {
        size_t k = (size_t)(numel - i < 1024 ? numel - i : 1024);
        memcpy(chunk, data + i, k * 4);
        rt_swap_floats(chunk, k);
        if (fwrite(chunk, 4, k, fp) != k)
            return 0;
    }
    return 1;
}

/* Writers to standard output: "-", /dev/stdout, /dev/stderr (never renamed over: they are
 * whatever the caller's descriptors are). */
static int std_stream_fd(const char *path)
{
    if (strcmp(path, "-") == 0 || strcmp(path, "/dev/stdout") == 0)
        return STDOUT_FILENO;
    if (strcmp(path, "/dev/stderr") == 0)
        return STDERR_FILENO;
    return -1;
}

/* Opens fd as o->fp; closes fd on failure.  0 or -1 with errno. */
static int out_fdopen(rt_outfile *o, int fd)
{
    o->fp = fdopen(fd, "wb");
    if (!o->fp) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return 0;
}

/* Creates target.PID-K.tmp exclusively with the given mode. */
static int create_temp(rt_outfile *o, mode_t mode, bool keep_mode)
{
    size_t len = strlen(o->target) + 48;
    o->tmp = cnn_mem_malloc(len);
    if (!o->tmp) {
        errno = ENOMEM; /* an embedder's allocator need not set it */
        return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(o->tmp, len, "%s.%ld-%d.tmp", o->target, (long)getpid(), attempt);
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            if ((keep_mode && fchmod(fd, mode) != 0) || out_fdopen(o, fd) != 0) {
                int e = errno;
                if (o->fp)
                    fclose(o->fp);
                o->fp = NULL;
                unlink(o->tmp);
                errno = e;
                break;
            }
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    cnn_mem_free(o->tmp);
    o->tmp = NULL;
    errno = e;
    return -1;
}

/* When name is base.PID-K.tmp (PID and K decimal), returns PID; else 0. */
static long temp_pid(const char *name, const char *base, size_t blen)
{
    if (strncmp(name, base, blen) != 0 || name[blen] != '.')
        return 0;
    const char *p = name + blen + 1;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        pid = pid * 10 + (*p - '0');
    if (digits == 0 || *p++ != '-')
        return 0;
    digits = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        digits++;
    return digits > 0 && strcmp(p, ".tmp") == 0 ? pid : 0;
}

int rt_out_clean_stale(const char *target)
{
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t blen = strlen(base);
    /* the folder's name on the stack: a best-effort cleaning allocates nothing it could fail on */
    char dir[4096];
    size_t dlen = !slash ? 1 : slash == target ? 1 : (size_t)(slash - target);
    if (blen == 0 || dlen >= sizeof dir)
        return 0;
    memcpy(dir, slash ? target : ".", dlen);
    dir[dlen] = '\0';
    int removed = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = temp_pid(e->d_name, base, blen);
        if (pid <= 0 || pid == (long)getpid() || (pid_t)pid != pid)
            continue;
        /* only the temporary files of a writer that is gone (a process that exists but is not
         * ours gives EPERM: kept) */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int rt_out_open(rt_outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    int sfd = std_stream_fd(path);
    if (sfd >= 0) {
        int fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -1 : out_fdopen(o, fd);
    }
    struct stat st;
    bool exists = stat(path, &st) == 0; /* follows a symlink to what it names */
    if (exists && !S_ISREG(st.st_mode)) {
        /* a device, FIFO or socket (or a directory, which open refuses): write to it in place */
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -1 : out_fdopen(o, fd);
    }
    /* a regular file, or nothing yet: write a temporary file beside the real target (through
     * a symlink, so that the link stays a link) and rename it over on commit */
    struct stat lst;
    if (exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
    {
        char *real = realpath(path, NULL); /* the C library's malloc */
        o->target = real ? cnn_mem_strdup(real) : NULL;
        free(real);
    }
    else
        o->target = cnn_mem_strdup(path);
    if (!o->target) {
        errno = ENOMEM;
        return -1;
    }
    o->stale_removed = rt_out_clean_stale(o->target);
    if (create_temp(o, st.st_mode & 07777, exists) != 0) {
        int e = errno;
        cnn_mem_free(o->target);
        o->target = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

static void out_free(rt_outfile *o)
{
    cnn_mem_free(o->tmp);
    cnn_mem_free(o->target);
    o->tmp = o->target = NULL;
    o->fp = NULL;
}

void rt_out_abort(rt_outfile *o)
{
    if (o->fp)
        fclose(o->fp);
    if (o->tmp)
        unlink(o->tmp);
    out_free(o);
}

int rt_out_commit(rt_outfile *o, char *msg, size_t msglen)
{
    /* no fsync in place: a pipe or device has nothing to sync (and refuses it) */
    int ok = fflush(o->fp) == 0 && (!o->tmp || fsync(fileno(o->fp)) == 0);
    int e = errno;
    if (fclose(o->fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    o->fp = NULL;
    int rc = 0;
    if (!ok) {
        snprintf(msg, msglen, "write error: %s", strerror(e));
        rc = -1;
    } else if (o->tmp && rename(o->tmp, o->target) != 0) {
        snprintf(msg, msglen, "cannot rename %s to it: %s", o->tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0 && o->tmp)
        unlink(o->tmp);
    out_free(o);
    return rc;
}

int rt_mkdir_p(const char *dir, char *failed, size_t n)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
        snprintf(failed, n, "%s", dir);
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            snprintf(failed, n, "%s", p);
            return -1;
        }
        *c = keep;
        if (!keep)
            return 0;
    }
}
