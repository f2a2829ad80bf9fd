/* libFuzzer target for the ONNX reader: the bytes as a model (cnn_model_load_onnx_memory),
 * then, when it loads, its weights and one inference run at batch 1, as `cnnc run MODEL.onnx`
 * would.  Seeds: the .onnx files of tests/fixtures/onnx. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/cnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cnn_model *m = NULL;
    if (cnn_model_load_onnx_memory(&m, "fuzz.onnx", data, size, NULL) != CNN_OK) {
        cnn_model_destroy(m);
        return 0;
    }
    cnn_weights *w = NULL;
    if (cnn_weights_create(&w, m, 0) == CNN_OK) {
        cnn_options o;
        cnn_options_default(&o);
        o.threads = 1;
        o.backend = CNN_BACKEND_REF;
        cnn_session *s = NULL;
        int64_t dims[4];
        int r = cnn_model_input_shape(m, 0, dims);
        int64_t per = 1;
        for (int k = 0; k < r; k++)
            per *= dims[k];
        if (per <= (1 << 16) && cnn_session_create(&s, m, w, &o, 1, CNN_MODE_INFER, NULL) == CNN_OK) {
            memset(cnn_session_input(s, 0), 0, sizeof(float) * (size_t)per);
            cnn_session_run(s);
        }
        cnn_session_destroy(s);
    }
    cnn_weights_destroy(w);
    cnn_model_destroy(m);
    return 0;
}
