/* Fuzz target: a .cnn source, compiled from memory as cnn_model_compile's callers do, then
 * (when it compiles) summarised for inference and training at batch 1, which runs shape
 * inference, autodiff, the passes and the memory planner.  No weights or sessions: their
 * memory is the network's to ask for, and the limits suite covers it. */
#include <stdlib.h>

#include "fuzz/fuzz.h"
#include "runtime/cnn.h"

FUZZ_ENTRY(source)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_compile(&m, "fuzz.cnn", (const char *)data, size, NULL);
    if (st == CNN_OK) {
        cnn_options opt;
        cnn_options_default(&opt);
        opt.threads = 1;
        char *text = NULL;
        if (cnn_model_summary(m, &opt, 1, false, &text) == CNN_OK)
            cnn_free(text);
        text = NULL;
        if (cnn_model_summary(m, &opt, 1, true, &text) == CNN_OK)
            cnn_free(text);
    } else if (m && !cnn_model_errmsg(m)) {
        abort(); /* an error must come with its message */
    }
    cnn_model_destroy(m);
    return 0;
}
