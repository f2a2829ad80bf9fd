/* Fuzz target: a safetensors weights file loaded from memory into a small network
 * (fuzz/fuzz_model.h) with cnn_weights_load_memory, as an embedder would: the header's JSON,
 * the byte ranges, and matching the keys to the network (names, shapes, nn.Sequential
 * positions).  The first byte's low bit chooses allow_extra, so both paths are reached; the
 * file is the rest. */
#include <stdlib.h>

#include "fuzz/fuzz.h"
#include "fuzz/fuzz_model.h"

FUZZ_ENTRY(safetensors)
{
    if (size < 1)
        return 0;
    cnn_weights *w = fuzz_weights();
    cnn_status st = cnn_weights_load_memory(w, data + 1, size - 1, data[0] & 1);
    if (st != CNN_OK && !cnn_weights_errmsg(w))
        abort();
    cnn_weights_destroy(w);
    return 0;
}
