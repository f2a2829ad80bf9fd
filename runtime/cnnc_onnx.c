/* cnnc's ONNX commands: import (an ONNX model to NET.cnn and NET.safetensors) and export (a
 * network and its weights to an ONNX model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/cnnc.h"

/* path with its extension (after the last '.' of the last component) replaced by ext. */
static char *with_ext(const char *path, const char *ext)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    size_t stem = dot && (!slash || dot > slash) && dot != (slash ? slash + 1 : path) ? (size_t)(dot - path)
                                                                                       : strlen(path);
    char *p = malloc(stem + strlen(ext) + 1);
    if (p)
        sprintf(p, "%.*s%s", (int)stem, path, ext);
    return p;
}

int cmd_import(const args *a)
{
    if (!cnn_onnx_available()) {
        fprintf(stderr, "%s: error: cnnc was built without ONNX support (rebuild with -Donnx=enabled)\n", prog);
        return EXIT_INPUT;
    }
    size_t n = strlen(a->source);
    if (n < 5 || strcasecmp(a->source + n - 5, ".onnx") != 0)
        return usage_error("import takes an ONNX model (MODEL.onnx), got '%s'", a->source);
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    char *cnn_path = a->output ? strdup(a->output) : with_ext(a->source, ".cnn");
    char *st_path = cnn_path ? with_ext(cnn_path, ".safetensors") : NULL;
    if (!cnn_path || !st_path) {
        free(cnn_path);
        free(st_path);
        cnn_model_destroy(m);
        return EXIT_INTERNAL;
    }
    if (strcmp(cnn_path, st_path) == 0 || strcmp(cnn_path, a->source) == 0) {
        rc = usage_error("-o %s would overwrite the model or its weights; name it NET.cnn", cnn_path);
        goto done;
    }
    cnn_weights *w = NULL;
    rc = make_weights(a, m, &w);
    if (rc)
        goto done;
    cnn_status st = cnn_model_save_source(m, cnn_path);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_model_errmsg(m));
        rc = exit_for(st);
    } else if ((st = cnn_weights_save(w, st_path)) != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(w));
        rc = exit_for(st);
    } else if (!a->quiet) {
        printf("%s: network %s, %d input%s, %d output%s, %d weight tensors\nwrote %s and %s\n", a->source,
               cnn_model_name(m), cnn_model_input_count(m), cnn_model_input_count(m) == 1 ? "" : "s",
               cnn_model_output_count(m), cnn_model_output_count(m) == 1 ? "" : "s", cnn_weights_count(w), cnn_path,
               st_path);
    }
    cnn_weights_destroy(w);
done:
    free(cnn_path);
    free(st_path);
    cnn_model_destroy(m);
    return rc;
}

int cmd_export(const args *a)
{
    if (!cnn_onnx_available()) {
        fprintf(stderr, "%s: error: cnnc was built without ONNX support (rebuild with -Donnx=enabled)\n", prog);
        return EXIT_INPUT;
    }
    if (!a->output)
        return usage_error("export needs -o MODEL.onnx");
    if (strcmp(a->output, a->source) == 0 || (a->weights && strcmp(a->output, a->weights) == 0))
        return usage_error("-o %s would overwrite an input", a->output);
    cnn_model *m;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    cnn_weights *w = NULL;
    rc = make_weights(a, m, &w);
    if (rc) {
        cnn_model_destroy(m);
        return rc;
    }
    cnn_status st = cnn_model_export_onnx(m, w, a->output, a->fold_bn);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_model_errmsg(m));
        rc = exit_for(st);
    } else if (!a->quiet) {
        printf("wrote %s (opset 13, %d weight tensors%s)\n", a->output, cnn_weights_count(w),
               a->fold_bn ? ", batchnorm folded" : "");
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return rc;
}
