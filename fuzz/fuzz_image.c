/* Fuzz target: one PNG or JPEG file (told apart by its signature) decoded by the image-folder
 * reader's decoder (libpng, libjpeg-turbo behind runtime/images.c), as every file of a
 * `train/CLASS/` folder is. */
#include <stdlib.h>

#include "fuzz/fuzz.h"
#include "runtime/data.h"

FUZZ_ENTRY(image)
{
    rt_image im = {0};
    char err[512] = "";
    cnn_status st = rt_image_decode(data, size, "x", (int64_t)1 << 20, &im, err, sizeof err);
    if (st == CNN_OK) {
        if (!im.pixels || (im.channels != 1 && im.channels != 3) || im.height < 1 || im.width < 1)
            abort();
        volatile uint8_t sum = 0; /* every decoded byte is read (ASan checks the size) */
        for (int64_t i = 0; i < im.channels * im.height * im.width; i++)
            sum += im.pixels[i];
    } else if (!err[0] || im.pixels) {
        abort();
    }
    rt_image_free(&im);
    return 0;
}
