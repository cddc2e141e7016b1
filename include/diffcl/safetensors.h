// Safetensors files (see ../shared/reference/safetensors.md): an 8-byte little-endian header
// length, a JSON header (dtype, shape, data_offsets per tensor, __metadata__ string map), then the
// tensor bytes. diffcl writes F32 only and reads F32 only; everything else is rejected with a
// message naming the file and what is wrong.
#ifndef DIFFCL_SAFETENSORS_H
#define DIFFCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

#define DCL_ST_MAX_DIMS 8

typedef struct dcl_st_tensor {
    const char *name;
    const float *data;
    int ndim;
    uint64_t shape[DCL_ST_MAX_DIMS];
} dcl_st_tensor;

// Writes the tensors (in the given order) and metadata pairs meta[2i] = key, meta[2i + 1] = value
// atomically: temp file in the same folder, fsync, rename, fsync of the folder.
dcl_status dcl_safetensors_write(const char *path, const dcl_st_tensor *tensors, int n,
                                 const char *const *meta, int n_meta);

typedef struct dcl_st_file dcl_st_file;

// Reads and validates the whole file; never crashes on malformed input (DCL_ERR_FORMAT / IO).
dcl_status dcl_safetensors_read(dcl_st_file **out, const char *path);
void dcl_safetensors_free(dcl_st_file *f);
int dcl_safetensors_count(const dcl_st_file *f);
// Tensor i (in file order of data offsets): its name, shape and data (host memory owned by f).
const dcl_st_tensor *dcl_safetensors_tensor(const dcl_st_file *f, int i);
// The tensor with this name, or NULL.
const dcl_st_tensor *dcl_safetensors_find(const dcl_st_file *f, const char *name);
// The __metadata__ value for key, or NULL.
const char *dcl_safetensors_meta(const dcl_st_file *f, const char *key);

#endif
