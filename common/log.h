// Levelled logging to a pluggable sink (stderr by default, never stdout). One line per event:
//   <UTC time> <E|W|I|D> <role>[rank] <module>: <message> key=value ...
// A file sets its module name with `#define GS_LOG_MODULE "index"` before including this header.
// The macros check the level before evaluating their arguments.
#pragma once

#include <stdarg.h>

typedef enum {
    GS_LOG_LEVEL_ERROR = 0,
    GS_LOG_LEVEL_WARN = 1,
    GS_LOG_LEVEL_INFO = 2,
    GS_LOG_LEVEL_DEBUG = 3,
} gs_log_level_t;

// A sink receives one formatted line (no trailing newline) and its level. `ud` is the pointer
// given to gs_log_set. Called with an internal lock held: keep it short and never log from it.
typedef void (*gs_log_sink_fn)(gs_log_level_t level, const char *line, void *ud);

// The current level; read by the macros. Change it with gs_log_set_level.
extern volatile int gs__log_level;

// gs_log_set: install a sink (NULL restores the stderr sink). Thread-safe.
void gs_log_set(gs_log_sink_fn sink, void *ud);
// gs_log_set_level: messages above `level` are dropped without evaluating their arguments.
void gs_log_set_level(gs_log_level_t level);
// gs_log_parse_level: "error|warn|info|debug" -> level; returns 0 on success, -1 if unknown.
int gs_log_parse_level(const char *s, gs_log_level_t *out_level);
// gs_log_set_role: the "<role>[rank]" prefix, e.g. ("worker", 3); role is copied (max 15 chars).
// rank < 0 prints the role alone.
void gs_log_set_role(const char *role, int rank);

// gs__log: the formatter behind the macros; use the macros instead.
void gs__log(gs_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gs__vlog(gs_log_level_t level, const char *module, const char *fmt, va_list ap);

#ifndef GS_LOG_MODULE
#define GS_LOG_MODULE "geoscribe"
#endif

#define GS__LOG(lvl, ...)                                   \
    do {                                                    \
        if (gs__log_level >= (lvl))                         \
            gs__log((lvl), GS_LOG_MODULE, __VA_ARGS__);     \
    } while (0)
#define GS_LOG_ERROR(...) GS__LOG(GS_LOG_LEVEL_ERROR, __VA_ARGS__)
#define GS_LOG_WARN(...) GS__LOG(GS_LOG_LEVEL_WARN, __VA_ARGS__)
#define GS_LOG_INFO(...) GS__LOG(GS_LOG_LEVEL_INFO, __VA_ARGS__)
#define GS_LOG_DEBUG(...) GS__LOG(GS_LOG_LEVEL_DEBUG, __VA_ARGS__)
