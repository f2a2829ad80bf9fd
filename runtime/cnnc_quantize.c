/* cnnc quantize: int8 scales calibrated through the library (cnn_weights_quantize), written
 * with the float weights to Q.safetensors (atomically, as every weights file). */
#include <inttypes.h>
#include <stdio.h>

#include "runtime/cnnc.h"

int cmd_quantize(const args *a)
{
    if (!a->weights)
        return usage_error("quantize needs -w W.safetensors (the trained fp32 weights)");
    if (!a->data)
        return usage_error("quantize needs --data DIR (the calibration examples are its training set)");
    if (!a->output)
        return usage_error("quantize needs -o Q.safetensors");
    if (a->opt.precision != CNN_PRECISION_FP32)
        return usage_error("quantize calibrates in fp32; --precision is for run, eval and bench");
    cnn_model *m = NULL;
    cnn_weights *w = NULL;
    cnn_dataset *d = NULL;
    int rc = load_model(a, &m);
    if (rc)
        return rc;
    if ((rc = make_weights(a, m, &w)))
        goto done;
    char err[4096];
    bool absent = false;
    cnn_status st = cnn_dataset_load(&d, a->data, "train", &absent, err, sizeof err);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        rc = exit_for(st);
        goto done;
    }
    double t0 = now_seconds();
    cnn_quantize_report rep;
    st = cnn_weights_quantize(w, m, d, &a->opt, a->calibrate ? a->calibrate : 1000, &rep, err, sizeof err);
    if (st != CNN_OK) {
        fprintf(stderr, "%s: error: %s: %s\n", prog, a->data, err);
        rc = exit_for(st);
        goto done;
    }
    if ((st = cnn_weights_save(w, a->output)) != CNN_OK) {
        fprintf(stderr, "%s: error: %s\n", prog, cnn_weights_errmsg(w));
        rc = exit_for(st);
        goto done;
    }
    if (!a->quiet)
        printf("quantized %d conv/dense layers on %" PRId64 " examples in %.1f s (%d of %d activation scales from the "
               "99.99th percentile, the rest from the maximum); wrote %s\n",
               rep.layers, rep.examples, now_seconds() - t0, rep.percentile_chosen, 2 * rep.layers, a->output);
done:
    cnn_dataset_destroy(d);
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    flush_stdout();
    return rc;
}
