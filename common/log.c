// Logging: formats one line per event and hands it to the sink. The sink and the level are the
// only mutable globals of geoscribe besides the allocator hooks.
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

volatile int gs__log_level = GS_LOG_LEVEL_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static gs_log_sink_fn log_sink;
static void *log_ud;
static char log_role[16] = "geoscribe";
static int log_rank = -1;

static void stderr_sink(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

void gs_log_set(gs_log_sink_fn sink, void *ud)
{
    pthread_mutex_lock(&log_lock);
    log_sink = sink;
    log_ud = ud;
    pthread_mutex_unlock(&log_lock);
}

void gs_log_set_level(gs_log_level_t level) { gs__log_level = (int)level; }

int gs_log_parse_level(const char *s, gs_log_level_t *out_level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out_level = (gs_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void gs_log_set_role(const char *role, int rank)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_role, sizeof log_role, "%s", role ? role : "");
    log_rank = rank;
    pthread_mutex_unlock(&log_lock);
}

void gs__vlog(gs_log_level_t level, const char *module, const char *fmt, va_list ap)
{
    static const char letters[] = "EWID";
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    pthread_mutex_lock(&log_lock);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    char who[32];
    if (log_rank >= 0)
        snprintf(who, sizeof who, "%s[%d]", log_role, log_rank);
    else
        snprintf(who, sizeof who, "%s", log_role);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %c %s %s: ", ts.tv_nsec / 1000000,
                  letters[level & 3], who, module);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    // one line per event: fold embedded newlines
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    (log_sink ? log_sink : stderr_sink)(level, line, log_ud);
    pthread_mutex_unlock(&log_lock);
}

void gs__log(gs_log_level_t level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gs__vlog(level, module, fmt, ap);
    va_end(ap);
}
