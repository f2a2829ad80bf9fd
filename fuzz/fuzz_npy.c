/* Fuzz target: a .npy file read with the public cnn_npy_read, as `cnnc run -i` does (the
 * reader takes a path: the input is written to a private temporary folder first). */
#include <stdlib.h>

#include "fuzz/fuzz.h"
#include "runtime/cnn.h"

FUZZ_ENTRY(npy)
{
    const char *path = fuzz_write_file(0, "x.npy", data, size);
    float *x = NULL;
    int rank = 0;
    int64_t dims[8];
    char err[512] = "";
    cnn_status st = cnn_npy_read(path, &x, &rank, dims, err, sizeof err);
    if (st == CNN_OK) {
        if (!x || rank < 0 || rank > 8)
            abort();
    } else if (!err[0] || x) {
        abort(); /* an error must say what, and leave nothing behind */
    }
    cnn_free(x);
    fuzz_remove_file("x.npy");
    return 0;
}
