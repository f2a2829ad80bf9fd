/* NumPy .npy files (spec section 10): the tensors `cnnc run` reads (-i) and writes (-o).
 * Reading accepts format versions 1.0, 2.0 and 3.0 with dtype '<f4' in C order; writing produces
 * version 1.0 exactly as numpy.save does (data starting at a multiple of 64 bytes).
 *
 * Every function that can fail returns an rt_npy_status and, on failure, writes a message that
 * names the file and what is wrong into err (errlen bytes, always NUL-terminated when
 * errlen > 0).  Nothing prints, nothing exits, nothing is global. */
#ifndef CNN_RUNTIME_NPY_H
#define CNN_RUNTIME_NPY_H

#include <stddef.h>
#include <stdint.h>

#define RT_NPY_MAX_RANK 8

typedef enum rt_npy_status {
    RT_NPY_OK = 0,
    RT_NPY_EIO,      /* the file cannot be opened, read or written */
    RT_NPY_EFORMAT,  /* not a valid .npy file, or not '<f4' in C order */
    RT_NPY_EARG,     /* bad arguments to rt_npy_write */
    RT_NPY_ENOMEM,
} rt_npy_status;

/* An array read from a file.  data holds numel floats in C order (malloc'd, owned by the array;
 * never NULL after a successful read, even when numel is 0). */
typedef struct rt_npy_array {
    int rank;                        /* 0 .. RT_NPY_MAX_RANK; 0 is a scalar */
    int64_t dims[RT_NPY_MAX_RANK];
    int64_t numel;                   /* product of dims (1 for rank 0) */
    float *data;
} rt_npy_array;

/* Reads the file at path into *out.  On failure *out is left empty (data NULL).  The header
 * is parsed as the Python dict literal it is: keys in any order, either quote, any spacing, a
 * trailing comma; exactly the keys 'descr', 'fortran_order' and 'shape'. */
rt_npy_status rt_npy_read(rt_npy_array *out, const char *path, char *err, size_t errlen);

/* Frees the array's data and empties it.  Safe on an empty array and on NULL. */
void rt_npy_free(rt_npy_array *a);

/* Writes a '<f4' C-order array of the given shape to path (version 1.0 header, padded with
 * spaces and ended by '\n' so the data starts at a multiple of 64).  Writes a temporary file
 * next to path and renames it over path. */
rt_npy_status rt_npy_write(const char *path, int rank, const int64_t *dims, const float *data,
                           char *err, size_t errlen);

#endif
