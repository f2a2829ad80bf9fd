/* The small network the weights and checkpoint targets load into: a conv, a batchnorm and two
 * dense layers (tensor names conv2d_1.weight/.bias, batchnorm_1.*, dense_1.*, dense_2.*), its
 * seeds made by fuzz/make_seeds.py from the same text. */
#ifndef CNN_FUZZ_MODEL_H
#define CNN_FUZZ_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "runtime/cnn.h"

#define FUZZ_MODEL_SOURCE                                          \
    "network fuzz_net {\n"                                         \
    "    input image[1, 6, 6];\n"                                  \
    "    output logits = image\n"                                  \
    "        -> conv2d(2, 3) -> batchnorm -> relu -> maxpool(2)\n" \
    "        -> flatten -> dense(4) -> relu -> dense(3);\n"        \
    "}\n"

/* The compiled network (made once, kept for the process). */
static cnn_model *fuzz_model(void)
{
    static cnn_model *m;
    if (!m && cnn_model_compile(&m, "fuzz_net.cnn", FUZZ_MODEL_SOURCE, strlen(FUZZ_MODEL_SOURCE), NULL) != CNN_OK)
        abort();
    return m;
}

/* Fresh weights for it; abort on failure (the target would test nothing). */
static cnn_weights *fuzz_weights(void)
{
    cnn_weights *w = NULL;
    if (cnn_weights_create(&w, fuzz_model(), 1) != CNN_OK)
        abort();
    return w;
}

#endif
