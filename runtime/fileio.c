/* Small file helpers shared by the format modules. */
#include "runtime/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

FILE *rt_create_temp(const char *path, char **tmp_out)
{
    size_t len = strlen(path) + 48;
    char *tmp = malloc(len);
    if (!tmp)
        return NULL;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, len, "%s.%ld-%d.tmp", path, (long)getpid(), attempt);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            FILE *fp = fdopen(fd, "wb");
            if (!fp) {
                int e = errno;
                close(fd);
                unlink(tmp);
                errno = e;
                break;
            }
            *tmp_out = tmp;
            return fp;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(tmp);
    errno = e;
    return NULL;
}

int rt_commit_temp(FILE *fp, char *tmp, const char *path, char *msg, size_t msglen)
{
    int ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    int rc = 0;
    if (!ok) {
        snprintf(msg, msglen, "write error: %s", strerror(e));
        rc = -1;
    } else if (rename(tmp, path) != 0) {
        snprintf(msg, msglen, "cannot rename %s to it: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}
