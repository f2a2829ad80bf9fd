/* safetensors files (spec section 10): an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the raw little-endian data.  Only F32
 * tensors are read and written.  Checking the names and shapes against a network is the
 * caller's job; rt_st_format_shape() helps it word the messages.
 *
 * Every function that can fail returns an rt_st_status and, on failure, writes a message that
 * names the file and what is wrong into err (errlen bytes, always NUL-terminated when errlen > 0;
 * err may be NULL when errlen is 0).  Nothing prints, nothing exits, and this module keeps no
 * global state; cJSON, which parses the header, records its last parse error in a global of its
 * own, so concurrent reads race on that (harmless) variable. */
#ifndef CNN_RUNTIME_SAFETENSORS_H
#define CNN_RUNTIME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define RT_ST_MAX_RANK 8

typedef enum rt_st_status {
    RT_ST_OK = 0,
    RT_ST_EIO,      /* the file cannot be opened, read or written */
    RT_ST_EFORMAT,  /* the file is not a valid safetensors file of F32 tensors */
    RT_ST_EARG,     /* bad arguments to rt_st_write (duplicate names, negative dims, ...) */
    RT_ST_ENOMEM,
} rt_st_status;

/* One tensor.  Reading fills every field; writing uses name, rank, dims and data and ignores
 * numel.  data holds numel floats in C order. */
typedef struct rt_st_tensor {
    const char *name;
    int rank;                        /* 0 .. RT_ST_MAX_RANK */
    int64_t dims[RT_ST_MAX_RANK];
    int64_t numel;                   /* product of dims (1 for rank 0) */
    const float *data;
} rt_st_tensor;

/* A file read into memory: the tensors in the header's key order.  Read-only for the caller;
 * names and data belong to the file and live until rt_st_free(). */
typedef struct rt_st_file {
    int count;
    const rt_st_tensor *tensors;
    int nmeta;                        /* the "__metadata__" object's string entries, in order */
    const char *const *meta_keys;     /* (entries of other types are skipped) */
    const char *const *meta_values;
} rt_st_file;

/* Reads the whole file at path.  On success stores a new file in *out (free it with
 * rt_st_free); on failure stores NULL.  The "__metadata__" entry is no tensor: its string
 * entries are kept in meta_keys/meta_values, anything else in it is ignored; any dtype other
 * than F32 is an error.  The header is checked completely: byte ranges must match the shapes,
 * lie inside the data area, not overlap and leave no byte unused, and names must be unique. */
rt_st_status rt_st_read(rt_st_file **out, const char *path, char *err, size_t errlen);

/* As rt_st_read, from the len bytes at data (a whole safetensors file), which are copied;
 * messages name `name` (NULL: "<memory>") where rt_st_read's name the path. */
rt_st_status rt_st_read_memory(rt_st_file **out, const char *name, const void *data, size_t len,
                               char *err, size_t errlen);

/* The tensor called name, or NULL.  Linear in the number of tensors. */
const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name);

/* The value of metadata entry key, or NULL. */
const char *rt_st_meta(const rt_st_file *f, const char *key);

/* Frees everything rt_st_read allocated.  rt_st_free(NULL) does nothing. */
void rt_st_free(rt_st_file *f);

/* Writes n tensors to path: header keys in the order given, data contiguous in that order,
 * the header padded with spaces to a multiple of 8 bytes (so the data is 8-byte aligned).
 * Writes a temporary file next to path and renames it over path, so a failed write leaves
 * any previous file intact.  Names must be unique, non-empty and not "__metadata__". */
rt_st_status rt_st_write(const char *path, int n, const rt_st_tensor *tensors,
                         char *err, size_t errlen);
/* As rt_st_write, with a "__metadata__" object of nmeta string entries (keys[i]: values[i]),
 * written first in the header. */
rt_st_status rt_st_write_meta(const char *path, int n, const rt_st_tensor *tensors, int nmeta,
                              const char *const *keys, const char *const *values, char *err,
                              size_t errlen);

/* Formats a shape as "[6,1,5,5]" ("[]" for rank 0) into buf, truncating to buflen; returns the
 * length the full text has, as snprintf does. */
int rt_st_format_shape(char *buf, size_t buflen, int rank, const int64_t *dims);

#endif
