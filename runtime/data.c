/* Datasets (spec section 10): the folder's format detected (MNIST IDX over runtime/idx.c,
 * CIFAR-10 binary in cifar.c, PNG/JPEG image folders in images.c) and the fit to a network's
 * input.  Batches are made by data_batch.c and loader.c; evaluation is evaluate.c. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/checked.h"
#include "ops/mem.h"
#include "runtime/data.h"
#include "runtime/idx.h"
#include "runtime/rt.h"

cnn_dataset *rt_dataset_new(const char *where)
{
    cnn_dataset *d = cnn_mem_calloc(1, sizeof *d);
    if (d && !(d->where = cnn_mem_strdup(where ? where : "data"))) {
        cnn_mem_free(d);
        d = NULL;
    }
    return d;
}

void cnn_dataset_destroy(cnn_dataset *d)
{
    if (!d)
        return;
    cnn_mem_free(d->pixels);
    cnn_mem_free(d->labels);
    cnn_mem_free(d->where);
    cnn_mem_free(d);
}

int64_t cnn_dataset_count(const cnn_dataset *d) { return d->count; }

/* Whether dir/name or dir/name.gz exists (a path too long to build cannot be opened either). */
static bool idx_file_there(const char *dir, const char *name)
{
    for (int gz = 0; gz < 2; gz++) {
        char p[4096];
        struct stat sb;
        if ((size_t)snprintf(p, sizeof p, "%s/%s%s", dir, name, gz ? ".gz" : "") < sizeof p && stat(p, &sb) == 0)
            return true;
    }
    return false;
}

static bool idx_detect(const char *dir)
{
    static const char *const names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++)
        if (idx_file_there(dir, names[i]))
            return true;
    return false;
}

/* Moves an IDX split into d. */
static cnn_status idx_load(cnn_dataset *d, const char *dir, bool train, bool *absent, char *err, size_t errlen)
{
    rt_idx_set set;
    rt_idx_status st = rt_idx_load(&set, dir, train ? RT_IDX_TRAIN : RT_IDX_TEST, err, errlen);
    if (st != RT_IDX_OK) {
        *absent = st == RT_IDX_ABSENT;
        return st == RT_IDX_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INPUT;
    }
    d->labels = cnn_mem_malloc(sizeof(int32_t) * (size_t)set.count);
    char *where = cnn_mem_strdup(set.images_path);
    if (!d->labels || !where) {
        cnn_mem_free(where);
        rt_idx_free(&set);
        snprintf(err, errlen, "%s: out of memory", dir);
        return CNN_ERR_NOMEM;
    }
    cnn_mem_free(d->where);
    d->where = where;
    for (int64_t i = 0; i < set.count; i++)
        d->labels[i] = set.labels[i];
    d->count = set.count;
    d->channels = 1;
    d->height = set.rows;
    d->width = set.cols;
    d->classes = set.classes;
    d->pixels = set.pixels;
    set.pixels = NULL;
    rt_idx_free(&set);
    return CNN_OK;
}

cnn_status cnn_dataset_load(cnn_dataset **out, const char *dir, const char *split, bool *absent, char *err,
                            size_t errlen)
{
    *out = NULL;
    bool abs = false;
    if (absent)
        *absent = false;
    if (err && errlen)
        err[0] = '\0';
    bool train;
    if (split && strcmp(split, "train") == 0)
        train = true;
    else if (split && strcmp(split, "test") == 0)
        train = false;
    else {
        snprintf(err, errlen, "unknown split '%s': expected train or test", split ? split : "(null)");
        return CNN_ERR_USAGE;
    }
    if (!dir) {
        snprintf(err, errlen, "no data folder given");
        return CNN_ERR_USAGE;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        snprintf(err, errlen, "%s: cannot open the data folder: %s", dir, strerror(errno));
        return CNN_ERR_INPUT;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a folder", dir);
        return CNN_ERR_INPUT;
    }
    cnn_dataset *d = rt_dataset_new(dir);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return CNN_ERR_NOMEM;
    }
    cnn_status st;
    if (idx_detect(dir))
        st = idx_load(d, dir, train, &abs, err, errlen);
    else if (rt_cifar_detect(dir))
        st = rt_cifar_load(d, dir, train, &abs, err, errlen);
    else if (rt_images_detect(dir))
        st = rt_images_load(d, dir, train, &abs, err, errlen);
    else {
        abs = true;
        snprintf(err, errlen,
                 "%s: the %s data is missing: no MNIST IDX files (%s-images-idx3-ubyte...), CIFAR-10 batches (%s) "
                 "or image folder (%s/CLASS/*.png|jpg)",
                 dir, split, train ? "train" : "t10k", train ? "data_batch_1.bin" : "test_batch.bin", split);
        st = CNN_ERR_INPUT;
    }
    if (st == CNN_OK && (d->count < 1 || !d->pixels || !d->labels)) {
        snprintf(err, errlen, "%s: holds no images", d->where);
        st = CNN_ERR_INTERNAL;
    }
    if (st != CNN_OK) {
        cnn_dataset_destroy(d);
        if (absent)
            *absent = abs;
        return st;
    }
    *out = d;
    return CNN_OK;
}

static int64_t image_bytes(const cnn_dataset *d) { return d->channels * d->height * d->width; }

cnn_status cnn_dataset_subset(const cnn_dataset *d, int64_t first, int64_t count, cnn_dataset **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    if (first < 0 || count < 1 || first > d->count || count > d->count - first) {
        snprintf(err, errlen, "examples [%" PRId64 ", %" PRId64 ") are not a part of the %" PRId64 " examples of %s",
                 first, first + count, d->count, d->where);
        return CNN_ERR_USAGE;
    }
    cnn_dataset *v = rt_dataset_new(d->where);
    int64_t per = image_bytes(d); /* fits: the whole set is in memory */
    if (v) {
        v->pixels = cnn_mem_malloc((size_t)(per * count));
        v->labels = cnn_mem_malloc(sizeof(int32_t) * (size_t)count);
    }
    if (!v || !v->pixels || !v->labels) {
        cnn_dataset_destroy(v);
        snprintf(err, errlen, "out of memory");
        return CNN_ERR_NOMEM;
    }
    v->count = count;
    v->channels = d->channels;
    v->height = d->height;
    v->width = d->width;
    v->classes = 0;
    memcpy(v->pixels, d->pixels + first * per, (size_t)(per * count));
    memcpy(v->labels, d->labels + first, sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++)
        if (v->labels[i] + 1 > v->classes)
            v->classes = v->labels[i] + 1;
    *out = v;
    return CNN_OK;
}

/* "[d0,d1,...]" into buf. */
static void shape_text(char *buf, size_t len, int rank, const int64_t *dims)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%" PRId64, i ? "," : "", dims[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

cnn_status rt_dataset_fit(const cnn_dataset *d, int rank, const int64_t *dims, int64_t *channels, char *err,
                          size_t errlen)
{
    if (rank == 3 && dims[1] == d->height && dims[2] == d->width &&
        (dims[0] == d->channels || dims[0] == 1 || dims[0] == 3)) {
        *channels = dims[0];
        return CNN_OK;
    }
    if (rank == 1 && dims[0] == image_bytes(d)) {
        *channels = d->channels;
        return CNN_OK;
    }
    char shape[256];
    shape_text(shape, sizeof shape, rank, dims);
    char kind[32] = "";
    if (d->channels != 1)
        snprintf(kind, sizeof kind, " with %" PRId64 " channels", d->channels);
    snprintf(err, errlen,
             "%s: images are %" PRId64 "x%" PRId64 "%s, the network input has shape %s (it needs [1,%" PRId64
             ",%" PRId64 "], [3,%" PRId64 ",%" PRId64 "] or [%" PRId64 "])",
             d->where, d->height, d->width, kind, shape, d->height, d->width, d->height, d->width, image_bytes(d));
    return CNN_ERR_INPUT;
}

cnn_status cnn_dataset_check(const cnn_dataset *d, const cnn_model *m, char *err, size_t errlen)
{
    if (cnn_model_input_count(m) != 1) {
        snprintf(err, errlen, "training on a dataset needs a network with one input; %s has %d", cnn_model_name(m),
                 cnn_model_input_count(m));
        return CNN_ERR_INPUT;
    }
    int64_t dims[4], channels;
    int rank = cnn_model_input_shape(m, 0, dims);
    if (rt_dataset_fit(d, rank, dims, &channels, err, errlen) != CNN_OK)
        return CNN_ERR_INPUT;
    int64_t od[4];
    int orank = cnn_model_output_shape(m, 0, od);
    int64_t classes = 1;
    for (int k = 0; k < orank; k++)
        classes *= od[k];
    if (orank != 1 || classes < d->classes) {
        int64_t bad = 0;
        while (bad < d->count && d->labels[bad] < classes)
            bad++;
        snprintf(err, errlen,
                 "%s: labels go up to %" PRId64 " (example %" PRId64 " has label %d), but the network's output %s has %" PRId64
                 " values per example",
                 d->where, d->classes - 1, bad < d->count ? bad : 0, bad < d->count ? d->labels[bad] : 0,
                 cnn_model_output_name(m, 0), classes);
        return CNN_ERR_INPUT;
    }
    return CNN_OK;
}

void cnn_dataset_batch(const cnn_dataset *d, const int64_t *order, int64_t first, int64_t n, float *x,
                       float *labels)
{
    int64_t per = image_bytes(d);
    for (int64_t i = 0; i < n; i++) {
        int64_t idx = order ? order[first + i] : first + i;
        const uint8_t *src = d->pixels + idx * per;
        float *dst = x + i * per;
        for (int64_t k = 0; k < per; k++)
            dst[k] = (float)src[k] / 255.0f;
        labels[i] = (float)d->labels[idx];
    }
}
