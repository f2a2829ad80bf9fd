/* Shared by the fuzz targets (fuzz/fuzz_*.c).  Each target is one file that defines its entry
 * with FUZZ_ENTRY(name): built with clang and -Dfuzz=true that is libFuzzer's
 * LLVMFuzzerTestOneInput; built with FUZZ_REPLAY (tests/test_fuzz_replay.c, any compiler) it is
 * fuzz_NAME, which the replay test calls on every file of fuzz/corpus/NAME. */
#ifndef CNN_FUZZ_H
#define CNN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef FUZZ_REPLAY
#define FUZZ_ENTRY(name) int fuzz_##name(const uint8_t *data, size_t size)
#else
#define FUZZ_ENTRY(name)                                                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);          \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif

/* A private folder for targets whose reader takes a path (made once per process, removed at
 * exit): $FUZZ_TMPDIR, else /dev/shm when writable (no disk traffic), else $TMPDIR or /tmp.
 * Aborts when it cannot be made: a fuzzer that cannot write its input tests nothing. */
const char *fuzz_tmpdir(void);

/* Writes the len bytes as they are to fuzz_tmpdir()/name and returns that path (static
 * storage, one per slot 0..3, valid until the slot is used again).  Aborts on failure. */
const char *fuzz_write_file(int slot, const char *name, const void *data, size_t len);

/* Removes fuzz_tmpdir()/name if present. */
void fuzz_remove_file(const char *name);

/* Splits an input into two parts: a 4-byte little-endian length of the first part (clamped to
 * what is there), the first part, then the rest.  Inputs shorter than 4 bytes give two empty
 * parts. */
void fuzz_split2(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen,
                 const uint8_t **b, size_t *blen);

#endif
