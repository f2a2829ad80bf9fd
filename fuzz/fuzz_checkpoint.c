/* Fuzz target: a training checkpoint (spec section 8: a safetensors file with the weights,
 * the optimiser state NAME.momentum_buffer / NAME.exp_avg / NAME.exp_avg_sq and, in
 * `__metadata__`, the epoch, step, schedule position, random state and metrics).
 * Until the checkpoint loader is in the library this loads the file as `-w CKPT` does: through
 * the weights loader with the extra (optimiser) keys allowed, which parses `__metadata__` and
 * every tensor.  When the loader lands, call it here in place of cnn_weights_load_memory (the
 * seeds in fuzz/corpus/checkpoint are already checkpoints). */
#include <stdlib.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_model.h"

FUZZ_ENTRY(checkpoint)
{
    cnn_weights *w = fuzz_weights();
    cnn_status st = cnn_weights_load_memory(w, data, size, true);
    if (st != CNN_OK && !cnn_weights_errmsg(w))
        abort();
    cnn_weights_destroy(w);
    return 0;
}
