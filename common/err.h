// The one error enum of geoscribe and its message table. Codes travel in task results and
// query replies, so the table is APPEND-ONLY: never renumber, never remove, add at the end.
#pragma once

// X(name, value, message). Messages are lower case, no final period.
#define GS_ERR_MAP(X)                                                    \
    X(GS_OK, 0, "success")                                               \
    X(GS_EINVAL, 1, "invalid argument")                                  \
    X(GS_ENOMEM, 2, "out of memory")                                     \
    X(GS_EIO, 3, "input/output error")                                   \
    X(GS_EFORMAT, 4, "malformed data")                                   \
    X(GS_ENOTFOUND, 5, "not found")                                      \
    X(GS_ETOOBIG, 6, "too large")                                        \
    X(GS_ETIMEOUT, 7, "timed out")                                       \
    X(GS_EBACKEND, 8, "backend library error")                           \
    X(GS_EUNSUPPORTED, 9, "unsupported")                                 \
    X(GS_EMISMATCH, 10, "mismatch with recorded state")                  \
    X(GS_EMPI, 11, "mpi error")                                          \
    X(GS_ESTATE, 12, "invalid state")                                    \
    X(GS_EEXIST, 13, "already exists")

typedef enum {
#define GS__ERR_ENUM(name, value, msg) name = value,
    GS_ERR_MAP(GS__ERR_ENUM)
#undef GS__ERR_ENUM
} gs_err;

// gs_strerror: the message of a code; unknown codes give "unknown error". The returned string
// is static. Thread-safe.
const char *gs_strerror(gs_err e);

// gs_err_name: the symbolic name ("GS_EIO") of a code, "GS_EUNKNOWN" if unknown. Static string.
const char *gs_err_name(gs_err e);

// GS_TRY: evaluate a gs_err expression and return it from the caller when it is not GS_OK.
#define GS_TRY(expr)                \
    do {                            \
        gs_err gs__e = (expr);      \
        if (gs__e != GS_OK)         \
            return gs__e;           \
    } while (0)

// GS_ASSERT: invariants only (never input validation). Stays on in release builds; prints the
// failed condition and location to stderr and aborts.
#define GS_ASSERT(cond)                                                                   \
    do {                                                                                  \
        if (!(cond))                                                                      \
            gs__assert_fail(#cond, __FILE__, __LINE__);                                   \
    } while (0)

_Noreturn void gs__assert_fail(const char *cond, const char *file, int line);
