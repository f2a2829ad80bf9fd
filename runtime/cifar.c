/* CIFAR-10 binary folders (spec section 10): data_batch_1.bin ... data_batch_5.bin (training)
 * and test_batch.bin (test), each a sequence of 3073-byte records: one label byte, then the
 * 3x32x32 pixel bytes, channel-major (all red, then green, then blue, each row by row).
 * The training split is data_batch_1.bin and the files that follow it without a gap (a folder
 * cut down to its first batches trains as well).  Sizes come from the files' real sizes, so
 * nothing is allocated that the files do not hold. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/checked.h"
#include "ops/mem.h"
#include "runtime/data.h"
#include "runtime/fileio.h"
#include "runtime/sysmem.h"

#define CIFAR_SIDE 32
#define CIFAR_IMAGE (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_IMAGE)
#define CIFAR_BATCHES 5
#define CHUNK_RECORDS 1024

static char *batch_path(const char *dir, bool train, int k)
{
    return train ? cnn_mem_asprintf("%s/data_batch_%d.bin", dir, k) : cnn_mem_asprintf("%s/test_batch.bin", dir);
}

static bool exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0;
}

bool rt_cifar_detect(const char *dir)
{
    for (int k = 0; k <= CIFAR_BATCHES; k++) {
        char p[4096];
        int n = k ? snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, k) : snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        if ((size_t)n < sizeof p && exists(p))
            return true;
    }
    return false;
}

/* Reads the records of the open file fp (size bytes, a whole number of records) into d from
 * example `first` on. */
static cnn_status read_records(cnn_dataset *d, FILE *fp, const char *path, uint64_t size, int64_t first,
                               uint8_t *chunk, char *err, size_t errlen)
{
    int64_t records = (int64_t)(size / CIFAR_RECORD), done = 0;
    while (done < records) {
        int64_t n = records - done < CHUNK_RECORDS ? records - done : CHUNK_RECORDS;
        size_t got = fread(chunk, 1, (size_t)(n * CIFAR_RECORD), fp);
        if (got != (size_t)(n * CIFAR_RECORD)) {
            if (ferror(fp))
                snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            else
                snprintf(err, errlen, "%s: truncated while read: %" PRIu64 " bytes expected, the file ended after %" PRId64,
                         path, size, done * CIFAR_RECORD + (int64_t)got);
            return CNN_ERR_INPUT;
        }
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *rec = chunk + i * CIFAR_RECORD;
            int64_t e = first + done + i;
            d->labels[e] = rec[0];
            memcpy(d->pixels + e * CIFAR_IMAGE, rec + 1, CIFAR_IMAGE);
            if (rec[0] + 1 > d->classes)
                d->classes = rec[0] + 1;
        }
        done += n;
    }
    return CNN_OK;
}

cnn_status rt_cifar_load(cnn_dataset *d, const char *dir, bool train, bool *absent, char *err, size_t errlen)
{
    char *paths[CIFAR_BATCHES] = {0};
    FILE *fps[CIFAR_BATCHES] = {0};
    uint64_t sizes[CIFAR_BATCHES] = {0};
    uint8_t *chunk = NULL;
    int nfiles = 0;
    cnn_status st = CNN_OK;
    /* the files of the split: data_batch_1.bin and those after it without a gap */
    int last = train ? CIFAR_BATCHES : 1;
    for (int k = 1; k <= last; k++) {
        char *p = batch_path(dir, train, k);
        if (!p) {
            snprintf(err, errlen, "%s: out of memory", dir);
            st = CNN_ERR_NOMEM;
            goto done;
        }
        if (!exists(p)) {
            cnn_mem_free(p);
            for (int j = k + 1; j <= last; j++) {
                char *q = batch_path(dir, train, j);
                bool after = exists(q);
                cnn_mem_free(q);
                if (after) {
                    snprintf(err, errlen, "%s/data_batch_%d.bin: missing, though data_batch_%d.bin is there", dir, k, j);
                    st = CNN_ERR_INPUT;
                    goto done;
                }
            }
            break;
        }
        paths[nfiles++] = p;
    }
    if (nfiles == 0) {
        *absent = true;
        if (train)
            snprintf(err, errlen, "%s: the CIFAR-10 training batches (data_batch_1.bin ... data_batch_5.bin) are missing",
                     dir);
        else
            snprintf(err, errlen, "%s: the CIFAR-10 test batch (test_batch.bin) is missing", dir);
        st = CNN_ERR_INPUT;
        goto done;
    }
    int64_t total = 0;
    for (int k = 0; k < nfiles; k++) {
        char msg[512];
        fps[k] = rt_open_regular(paths[k], &sizes[k], msg, sizeof msg);
        if (!fps[k]) {
            snprintf(err, errlen, "%s: %s", paths[k], msg);
            st = CNN_ERR_INPUT;
            goto done;
        }
        if (sizes[k] == 0 || sizes[k] % CIFAR_RECORD != 0) {
            snprintf(err, errlen,
                     "%s: %" PRIu64 " bytes is not a whole number of %d-byte records (1 label byte and 3x32x32 "
                     "pixel bytes)%s",
                     paths[k], sizes[k], CIFAR_RECORD, sizes[k] ? "" : ": the file is empty");
            st = CNN_ERR_INPUT;
            goto done;
        }
        total += (int64_t)(sizes[k] / CIFAR_RECORD); /* cannot overflow: file sizes */
    }
    size_t bytes;
    if (!ck_bytes(total, CIFAR_IMAGE, 1, &bytes) || bytes > OP_MAX_BYTES) {
        snprintf(err, errlen, "%s: %" PRId64 " images are more than this machine can hold", dir, total);
        st = CNN_ERR_INPUT;
        goto done;
    }
    char why[256];
    if (rt_mem_check((uint64_t)bytes + sizeof(int32_t) * (uint64_t)total, "loading its images", why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %" PRId64 " images: %s", dir, total, why);
        st = CNN_ERR_INPUT;
        goto done;
    }
    d->pixels = cnn_mem_malloc(bytes);
    d->labels = cnn_mem_malloc(sizeof(int32_t) * (size_t)total);
    chunk = cnn_mem_malloc((size_t)CHUNK_RECORDS * CIFAR_RECORD);
    if (!d->pixels || !d->labels || !chunk) {
        snprintf(err, errlen, "%s: out of memory for %" PRId64 " images", dir, total);
        st = CNN_ERR_NOMEM;
        goto done;
    }
    d->count = total;
    d->channels = 3;
    d->height = d->width = CIFAR_SIDE;
    d->classes = 0;
    int64_t first = 0;
    for (int k = 0; k < nfiles && st == CNN_OK; k++) {
        st = read_records(d, fps[k], paths[k], sizes[k], first, chunk, err, errlen);
        first += (int64_t)(sizes[k] / CIFAR_RECORD);
    }
    if (st == CNN_OK) {
        char *where = train ? (nfiles > 1 ? cnn_mem_asprintf("%s/data_batch_1.bin...data_batch_%d.bin", dir, nfiles)
                                          : cnn_mem_strdup(paths[0]))
                            : cnn_mem_strdup(paths[0]);
        if (!where) {
            snprintf(err, errlen, "%s: out of memory", dir);
            st = CNN_ERR_NOMEM;
        } else {
            cnn_mem_free(d->where);
            d->where = where;
        }
    }
done:
    for (int k = 0; k < CIFAR_BATCHES; k++) {
        if (fps[k])
            fclose(fps[k]);
        cnn_mem_free(paths[k]);
    }
    cnn_mem_free(chunk);
    return st;
}
