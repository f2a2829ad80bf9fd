/* Fuzz target: an MNIST IDX training split, gzip files (fuzz/fuzz_idx.h); the input holds the
 * compressed bytes, so the fuzzer mutates the gzip stream itself (headers, lengths, checksums,
 * truncation) as well as what it inflates to. */
#include "fuzz/fuzz_idx.h"

FUZZ_ENTRY(idx_gz) { return fuzz_idx_run(data, size, ".gz"); }
