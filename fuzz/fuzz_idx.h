/* The IDX targets (fuzz_idx.c plain, fuzz_idx_gz.c gzip): an input is an images file and a
 * labels file (fuzz_split2: a 4-byte little-endian length of the images file first), written
 * into a private folder as the training split and loaded with cnn_dataset_load, as `cnnc train
 * --data` does; a dataset that loads is checked against a [1, 8, 8] network and its first
 * batch copied out. */
#ifndef CNN_FUZZ_IDX_H
#define CNN_FUZZ_IDX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "runtime/cnn.h"

static cnn_model *fuzz_idx_model(void)
{
    static const char src[] = "network n { input image[1, 8, 8]; output y = image -> flatten -> dense(10); }\n";
    static cnn_model *m;
    if (!m && cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL) != CNN_OK)
        abort();
    return m;
}

static int fuzz_idx_run(const uint8_t *data, size_t size, const char *suffix)
{
    const uint8_t *img, *lab;
    size_t ilen, llen;
    fuzz_split2(data, size, &img, &ilen, &lab, &llen);
    char iname[64], lname[64];
    snprintf(iname, sizeof iname, "train-images-idx3-ubyte%s", suffix);
    snprintf(lname, sizeof lname, "train-labels-idx1-ubyte%s", suffix);
    fuzz_write_file(0, iname, img, ilen);
    fuzz_write_file(1, lname, lab, llen);
    cnn_dataset *d = NULL;
    bool absent = false;
    char err[512] = "";
    cnn_status st = cnn_dataset_load(&d, fuzz_tmpdir(), "train", &absent, err, sizeof err);
    if (st == CNN_OK) {
        int64_t n = cnn_dataset_count(d);
        if (!d || n < 1)
            abort();
        if (cnn_dataset_check(d, fuzz_idx_model(), err, sizeof err) == CNN_OK) {
            int64_t k = n < 4 ? n : 4, order[4] = {0, 1, 2, 3};
            float x[4 * 64], labels[4];
            cnn_dataset_batch(d, order, 0, k, x, labels);
        }
    } else if (!err[0] || d) {
        abort();
    }
    cnn_dataset_destroy(d);
    fuzz_remove_file(iname);
    fuzz_remove_file(lname);
    return 0;
}

#endif
