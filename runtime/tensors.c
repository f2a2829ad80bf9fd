/* The public .npy calls, over runtime/npy.c. */
#include <stdlib.h>
#include <string.h>

#include "runtime/npy.h"
#include "runtime/rt.h"

cnn_status cnn_npy_read(const char *path, float **data, int *rank, int64_t dims[8], char *err, size_t errlen)
{
    rt_npy_array a;
    *data = NULL;
    rt_npy_status st = rt_npy_read(&a, path, err, errlen);
    if (st != RT_NPY_OK)
        return st == RT_NPY_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INPUT;
    *data = a.data;
    *rank = a.rank;
    for (int k = 0; k < a.rank; k++)
        dims[k] = a.dims[k];
    return CNN_OK;
}

cnn_status cnn_npy_write(const char *path, const float *data, int rank, const int64_t *dims, char *err, size_t errlen)
{
    rt_npy_status st = rt_npy_write(path, rank, dims, data, err, errlen);
    if (st == RT_NPY_OK)
        return CNN_OK;
    return st == RT_NPY_EIO ? CNN_ERR_INPUT : st == RT_NPY_EARG ? CNN_ERR_USAGE : st == RT_NPY_ENOMEM ? CNN_ERR_NOMEM : CNN_ERR_INTERNAL;
}
