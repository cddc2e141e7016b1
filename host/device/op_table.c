// DCL_OP_MAP (device/backend.h) as data: each op's name, kernel file and kernel names. A leaf that
// the dispatcher, the wrappers and the OpenCL backend all read.
#include <string.h>

#include "device/backend.h" // DCL_OP_MAP, struct dcl_op_desc

const struct dcl_op_desc dcl__op_descs[DCL_OP_COUNT] = {
#define DCL_OP_DESC(NAME, name, sig, file, kernel, kernel2) {#name, file, kernel, kernel2},
    DCL_OP_MAP(DCL_OP_DESC)
#undef DCL_OP_DESC
};

const char *dcl__op_name(enum dcl_op op) {
    return (unsigned)op < DCL_OP_COUNT ? dcl__op_descs[op].name : "unknown-op";
}

int dcl__op_from_name(const char *name) {
    for (int i = 0; i < DCL_OP_COUNT; i++)
        if (strcmp(dcl__op_descs[i].name, name) == 0) return i;
    return -1;
}
