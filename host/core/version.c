// dcl_version: the library's own version, from include/diffcl/version.h at its build.
#include "diffcl/version.h"

const char *dcl_version(void) { return DIFFCL_VERSION_STRING; }
