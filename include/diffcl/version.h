// diffcl's version: the macros give the headers a caller compiles against, dcl_version() the
// library it runs with. CMakeLists.txt reads MAJOR, MINOR and PATCH from here for project().
#ifndef DIFFCL_VERSION_H
#define DIFFCL_VERSION_H

#define DIFFCL_VERSION_MAJOR 0
#define DIFFCL_VERSION_MINOR 1
#define DIFFCL_VERSION_PATCH 0

#define DIFFCL_VERSION_STR_(x) #x
#define DIFFCL_VERSION_STR(x) DIFFCL_VERSION_STR_(x)
// "0.1.0"
#define DIFFCL_VERSION_STRING                                                                      \
    DIFFCL_VERSION_STR(DIFFCL_VERSION_MAJOR)                                                       \
    "." DIFFCL_VERSION_STR(DIFFCL_VERSION_MINOR) "." DIFFCL_VERSION_STR(DIFFCL_VERSION_PATCH)
// One number that orders versions: MAJOR·10000 + MINOR·100 + PATCH.
#define DIFFCL_VERSION_NUMBER                                                                      \
    (DIFFCL_VERSION_MAJOR * 10000 + DIFFCL_VERSION_MINOR * 100 + DIFFCL_VERSION_PATCH)

// The version of the library linked in, as DIFFCL_VERSION_STRING; never NULL.
const char *dcl_version(void);

#endif
