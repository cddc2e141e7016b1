// Safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header (dtype, shape, data_offsets per tensor, __metadata__ string map), then the
// tensor bytes, little-endian in C order. diffcl writes F32 only and reads F32 only; everything else
// is rejected with a message naming the file and what is wrong. The rules enforced on write and on
// read are listed in host/io/safetensors.c.
#ifndef DIFFCL_SAFETENSORS_H
#define DIFFCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

#define DCL_ST_MAX_DIMS 8
// Longest tensor name in bytes (without the NUL); longer names are rejected on write and read.
#define DCL_ST_MAX_NAME 1024
// Largest JSON header in bytes, as in the reference implementation (MAX_HEADER_SIZE).
#define DCL_ST_MAX_HEADER 100000000

typedef struct dcl_st_tensor {
    const char *name;  // UTF-8, 1..DCL_ST_MAX_NAME bytes, not "__metadata__"
    const float *data; // prod(shape) values in C order; may be NULL when that is 0
    int ndim;          // 0 (a scalar) .. DCL_ST_MAX_DIMS
    uint64_t shape[DCL_ST_MAX_DIMS];
} dcl_st_tensor;

// prod(shape[0..ndim)); 1 for a scalar, 0 for an empty tensor. The caller makes sure it does not
// overflow (it never does for a tensor returned by the reader).
uint64_t dcl_st_tensor_numel(const dcl_st_tensor *t);

// Writes the tensors (in the given order) and metadata pairs meta[2i] = key, meta[2i + 1] = value
// atomically: temp file in the same folder, fsync, rename, fsync of the folder. Keys and values
// are UTF-8 strings, keys distinct. When meta has no "format" key, "format": "pt" is written first
// (transformers refuses files whose metadata lacks it). DCL_ERR_ARG for bad input (empty, long,
// duplicate or reserved names, a shape whose byte size overflows, NULL data for a non-empty
// tensor, invalid UTF-8); nothing is written then. DCL_ERR_IO when writing fails; the old file at
// path is left as it was.
dcl_status dcl_safetensors_write(const char *path, const dcl_st_tensor *tensors, int n,
                                 const char *const *meta, int n_meta);

typedef struct dcl_st_file dcl_st_file;

// Reads and validates the whole file; never crashes on malformed input (DCL_ERR_FORMAT / IO).
// Only F32 tensors are accepted. Leading and trailing JSON whitespace around the header object is
// tolerated, as the reference reader does. *out is NULL on failure.
dcl_status dcl_safetensors_read(dcl_st_file **out, const char *path);
// The same for a file image already in memory (fuzzing, tests); name appears in error messages.
dcl_status dcl_safetensors_read_memory(dcl_st_file **out, const void *bytes, size_t size,
                                       const char *name);
void dcl_safetensors_free(dcl_st_file *f);
int dcl_safetensors_count(const dcl_st_file *f);
// Tensor i (in file order of data offsets): its name, shape and data (host memory owned by f).
const dcl_st_tensor *dcl_safetensors_tensor(const dcl_st_file *f, int i);
// The tensor with this name, or NULL.
const dcl_st_tensor *dcl_safetensors_find(const dcl_st_file *f, const char *name);
// The __metadata__ value for key, or NULL.
const char *dcl_safetensors_meta(const dcl_st_file *f, const char *key);
// Number of __metadata__ entries and the key of entry i (file order), or NULL when out of range.
int dcl_safetensors_meta_count(const dcl_st_file *f);
const char *dcl_safetensors_meta_key(const dcl_st_file *f, int i);

#endif
