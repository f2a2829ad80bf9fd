/* MNIST IDX data folders (spec section 10): the training and test splits `cnnc train` and
 * `cnnc eval` read.  A folder holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzip-compressed with a ".gz"
 * suffix (the plain name is tried first).  Images are unsigned bytes, kept as bytes.
 *
 * Every function that can fail returns an rt_idx_status and, on failure, writes a message that
 * names the file and what is wrong into err (errlen bytes, always NUL-terminated when
 * errlen > 0).  Nothing prints, nothing exits, nothing is global. */
#ifndef CNN_RUNTIME_IDX_H
#define CNN_RUNTIME_IDX_H

#include <stddef.h>
#include <stdint.h>

typedef enum rt_idx_status {
    RT_IDX_OK = 0,
    RT_IDX_ABSENT,   /* neither file of the split is there: not an error for the test split */
    RT_IDX_EIO,      /* the folder or a file cannot be opened or read, or one file is missing */
    RT_IDX_EFORMAT,  /* a file is not a valid IDX file, or the two files disagree */
    RT_IDX_ENOMEM,
    RT_IDX_ESHAPE,   /* rt_idx_check_input: the images do not fit the network's input */
} rt_idx_status;

typedef enum rt_idx_split { RT_IDX_TRAIN, RT_IDX_TEST } rt_idx_split;

/* One split in memory.  All fields belong to the set until rt_idx_free(). */
typedef struct rt_idx_set {
    int64_t count;      /* images, at least 1 */
    int64_t rows, cols;
    uint8_t *pixels;    /* count * rows * cols bytes: image by image, each row by row */
    uint8_t *labels;    /* count */
    int classes;        /* largest label + 1 */
    char *images_path;  /* the images file read (plain or .gz), for messages */
} rt_idx_set;

/* Loads a split from the folder dir into *out.  Returns RT_IDX_ABSENT (with a message naming
 * the folder and both files) when neither the images nor the labels file exists in either
 * form; a split with one file missing is an error.  Checks the magic numbers (0x00000803 for
 * images, 0x00000801 for labels), sizes, that the files are complete and hold nothing after
 * the data, and that both hold the same number of items.  On failure *out is left empty. */
rt_idx_status rt_idx_load(rt_idx_set *out, const char *dir, rt_idx_split split,
                          char *err, size_t errlen);

/* Frees the set's arrays and empties it.  Safe on an empty set and on NULL. */
void rt_idx_free(rt_idx_set *s);

/* Checks that the images fit a network input of the given shape (batch axis excluded):
 * [1, rows, cols] or [rows * cols].  Anything else is RT_IDX_ESHAPE, naming both shapes. */
rt_idx_status rt_idx_check_input(const rt_idx_set *s, int rank, const int64_t *dims,
                                 char *err, size_t errlen);

#endif
