/* ONNX in: a second front end.  Reads an ONNX model (protobuf, onnx.proto compiled by protoc-c
 * at build time) and translates its graph into the same flat, expanded network lang_compile
 * makes, plus the model's weights as named float tensors with the spec's names
 * ("conv1.weight", "layers_0_bn1.running_var").  Built only with -Donnx (CNN_HAVE_ONNX). */
#ifndef CNN_LANG_ONNX_H
#define CNN_LANG_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "lang/diag.h"
#include "lang/lang.h"

/* A weight tensor of the imported network. */
typedef struct lang_tensor {
    char name[OP_NAME_MAX];   /* "<layer>.weight", "<layer>.bias", "<layer>.running_mean" ... */
    op_shape shape;
    float *data;              /* numel floats (cnn_mem_malloc) */
} lang_tensor;

/* The import: a network whose layers carry the arguments the model sets (given and present)
 * and leave the others to the schema's defaults, as lang_print_network writes them; feed the
 * printed source to lang_compile to get the checked network. */
typedef struct lang_onnx {
    lang_network net;
    int ntensors;
    lang_tensor *tensors;
    int64_t opset;            /* of the default domain */
    char producer[128];       /* "pytorch 1.13.0" */
} lang_onnx;

/* The ONNX models the importer reads: the largest file, the opsets. */
#define LANG_ONNX_MAX_BYTES ((size_t)1 << 31)
#define LANG_ONNX_MIN_OPSET 11
#define LANG_ONNX_MAX_OPSET 17

/* Translates the len bytes of an ONNX model.  Every problem is added to diags (without a place:
 * "FILE: error: node 'x' (Conv, opset 13): ..."), every unsupported node at once.  Returns the
 * import (check diags->errors before using it) or NULL when out of memory or on an error.
 * Never opens a file: external data is refused. */
lang_onnx *lang_onnx_import(const void *data, size_t len, diag_list *diags);
void lang_onnx_free(lang_onnx *x);

/* The operators the importer knows, as a comma-separated list (for messages and docs). */
const char *lang_onnx_operators(void);

#endif
