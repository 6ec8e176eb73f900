// The message table of gs_err, built from the same X-macro as the enum.
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>

const char *gs_strerror(gs_err e)
{
    switch (e) {
#define GS__ERR_MSG(name, value, msg) \
    case name:                        \
        return msg;
        GS_ERR_MAP(GS__ERR_MSG)
#undef GS__ERR_MSG
    }
    return "unknown error";
}

const char *gs_err_name(gs_err e)
{
    switch (e) {
#define GS__ERR_NAME(name, value, msg) \
    case name:                         \
        return #name;
        GS_ERR_MAP(GS__ERR_NAME)
#undef GS__ERR_NAME
    }
    return "GS_EUNKNOWN";
}

void gs__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "geoscribe: assertion failed: %s (%s:%d)\n", cond, file, line);
    fflush(stderr);
    abort();
}
