/* Fuzz target: a CIFAR-10 binary training file (data_batch_1.bin) written into a private
 * folder and loaded with cnn_dataset_load, as `cnnc train --data` does; a dataset that loads is
 * checked against a [3, 32, 32] network and its first batch made, normalised and augmented, by
 * a loader. */
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz.h"
#include "runtime/cnn.h"

static cnn_model *cifar_model(void)
{
    static const char src[] = "network n { input image[3, 32, 32]; output y = image -> flatten -> dense(10); }\n"
                              "train n { augment = random_crop(4) -> random_flip; "
                              "normalize = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)); batch = 2; }\n";
    static cnn_model *m;
    if (!m && cnn_model_compile(&m, "n.cnn", src, strlen(src), NULL) != CNN_OK)
        abort();
    return m;
}

FUZZ_ENTRY(cifar)
{
    fuzz_write_file(0, "data_batch_1.bin", data, size);
    cnn_dataset *d = NULL;
    bool absent = false;
    char err[512] = "";
    cnn_status st = cnn_dataset_load(&d, fuzz_tmpdir(), "train", &absent, err, sizeof err);
    if (st == CNN_OK) {
        if (!d || cnn_dataset_count(d) < 1)
            abort();
        if (cnn_dataset_check(d, cifar_model(), err, sizeof err) == CNN_OK) {
            cnn_train_config tc;
            cnn_model_train_config(cifar_model(), &tc);
            cnn_loader_options lo;
            cnn_loader_options_default(&lo);
            lo.batch = 2;
            lo.augment = true;
            lo.background = false;
            cnn_loader *l = NULL;
            if (cnn_loader_create(&l, d, &tc, &lo, err, sizeof err) == CNN_OK &&
                cnn_loader_start(l, NULL, cnn_dataset_count(d), 1, 0) == CNN_OK) {
                static float x[2 * 3 * 32 * 32], labels[2];
                int64_t n = 0;
                cnn_loader_next(l, x, labels, &n);
            }
            cnn_loader_destroy(l);
        }
    } else if (!err[0] || d) {
        abort(); /* an error must say what, and leave nothing behind */
    }
    cnn_dataset_destroy(d);
    fuzz_remove_file("data_batch_1.bin");
    return 0;
}
