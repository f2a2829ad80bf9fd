/* Fuzz target: an MNIST IDX training split, plain files (fuzz/fuzz_idx.h). */
#include "fuzz/fuzz_idx.h"

FUZZ_ENTRY(idx) { return fuzz_idx_run(data, size, ""); }
