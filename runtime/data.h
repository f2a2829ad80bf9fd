/* Datasets in memory and how batches are made of them, shared by the dataset files (data.c,
 * cifar.c, images.c over idx.c) and the loader (loader.c).  Nothing outside runtime/ includes
 * this.
 *
 * A dataset holds every image as bytes, channel-major ([C, H, W] per image), as the files hold
 * them: IDX one channel, CIFAR-10 three, an image folder one when every image is grayscale and
 * three otherwise.  A batch is made from the bytes at the last moment: augmented (training),
 * converted to the network input's channel count, scaled to [0, 1] and normalised. */
#ifndef CNN_RUNTIME_DATA_H
#define CNN_RUNTIME_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/cnn.h"

/* Images above this many pixels (height x width) are refused by every reader: 2^24, as IDX. */
#define RT_DATA_MAX_PIXELS ((int64_t)1 << 24)
/* A side above this is refused. */
#define RT_DATA_MAX_SIDE 65535

struct cnn_dataset {
    int64_t count;              /* images, at least 1 */
    int64_t channels;           /* 1 or 3 */
    int64_t height, width;
    uint8_t *pixels;            /* count * channels * height * width */
    int32_t *labels;            /* count, each >= 0 */
    int64_t classes;            /* largest label + 1 */
    char *where;                /* what was read (a file or a folder), for messages */
};

/* An empty dataset (all fields zero) with `where` copied; NULL when out of memory. */
cnn_dataset *rt_dataset_new(const char *where);

/* The readers of the formats other than IDX.  Each fills the empty dataset d (rt_dataset_new)
 * with split "train" or "test" of folder dir, or returns an error with a message naming the
 * file; *absent (never NULL) is set when the split is simply not there.  On failure d may hold
 * partial data: the caller destroys it. */
cnn_status rt_cifar_load(cnn_dataset *d, const char *dir, bool train, bool *absent, char *err, size_t errlen);
cnn_status rt_images_load(cnn_dataset *d, const char *dir, bool train, bool *absent, char *err, size_t errlen);
/* Whether dir looks like a CIFAR-10 folder (data_batch_1.bin or test_batch.bin there) or an
 * image folder (a train or test subfolder). */
bool rt_cifar_detect(const char *dir);
bool rt_images_detect(const char *dir);

/* One decoded image (images.c): bytes, channel-major. */
typedef struct rt_image {
    int64_t channels;           /* 1 (gray) or 3 (RGB): alpha is dropped, palettes expanded */
    int64_t height, width;
    uint8_t *pixels;            /* channels * height * width, malloc'd (cnn_mem) */
} rt_image;
/* Decodes the len bytes of a PNG or JPEG file (told apart by their signature) at data.  `name`
 * starts the message on failure ("name: what is wrong").  Images larger than max_pixels (0:
 * RT_DATA_MAX_PIXELS) are refused before anything is allocated for them.  Decoder errors
 * never leave this function other than as a status. */
cnn_status rt_image_decode(const void *data, size_t len, const char *name, int64_t max_pixels, rt_image *out,
                           char *err, size_t errlen);
void rt_image_free(rt_image *im);

/* How the network input takes the dataset's images: rank 3 [C, H, W] with the images' height
 * and width and C 1 or 3 (or the images' channel count); rank 1 [channels * height * width]
 * (no conversion).  Sets *channels to the batches' channel count; CNN_ERR_INPUT with a message
 * otherwise. */
cnn_status rt_dataset_fit(const cnn_dataset *d, int rank, const int64_t *dims, int64_t *channels, char *err,
                          size_t errlen);

/* What turns a dataset's bytes into a batch: the output channel count, the per-channel table of
 * the float for each byte value (scaled to [0, 1], then normalised) and the augmentation. */
typedef struct rt_batch_maker {
    const cnn_dataset *d;
    int64_t channels;                   /* of the batches */
    float table[3][256];                /* [output channel][byte]: ((b / 255) - mean) / std */
    int naugment;
    cnn_augment_step augment[CNN_MAX_AUGMENT];
    uint64_t seed;
} rt_batch_maker;

/* Sets up m for dataset d, batches of `channels` channels (0: the dataset's), with tc's
 * normalisation (NULL: none) and, when `augment`, its augmentation (seeded by seed).
 * CNN_ERR_INPUT with a message for a normalisation that does not fit the channel count or a
 * standard deviation that is not a positive finite number, or a crop pad out of range. */
cnn_status rt_batch_maker_init(rt_batch_maker *m, const cnn_dataset *d, int64_t channels,
                               const cnn_train_config *tc, bool augment, uint64_t seed, char *err, size_t errlen);
/* The scratch bytes rt_batch_make needs (two images of the dataset). */
size_t rt_batch_scratch_bytes(const rt_batch_maker *m);
/* Makes examples order[first .. first + n) (order NULL: first .. first + n) of epoch `epoch`
 * into x (n * channels * height * width floats) and their labels into labels.  The random
 * choices for the example at position p of the epoch's order are a function of (seed, epoch,
 * p) alone.  scratch: rt_batch_scratch_bytes(m) bytes. */
void rt_batch_make(const rt_batch_maker *m, const int64_t *order, int64_t first, int64_t n, int64_t epoch,
                   float *x, float *labels, uint8_t *scratch);

#endif
