// geoscribe: the one executable. Dispatches to subcommands (cmd_*.c); the only place that
// calls exit. Under mpirun, rank 0 is the coordinator and the other ranks are workers.
#define GS_LOG_MODULE "cli"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "proto/mpi_frame.h"

// The command table, generated from the cmd_*.c files (see CMakeLists.txt).
#define GS_CLI_CMD(name) extern const gs_cli_cmd_t gs_cli_cmd_##name;
#include "cli_commands.inc"
#undef GS_CLI_CMD
static const gs_cli_cmd_t *const commands[] = {
#define GS_CLI_CMD(name) &gs_cli_cmd_##name,
#include "cli_commands.inc"
#undef GS_CLI_CMD
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

int gs_cli_rank = 0, gs_cli_size = 1;

const gs_cli_cmd_t *gs_cli_find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

int gs_cli_parse_format(const char *cmd, const char *s, bool allow_geojson, gs_format_t *out)
{
    if (strcmp(s, "text") == 0)
        *out = GS_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = GS_FORMAT_JSON;
    else if (allow_geojson && strcmp(s, "geojson") == 0)
        *out = GS_FORMAT_GEOJSON;
    else {
        gs_cli_usage_error(cmd, "unknown format \"%s\" (expected text, json%s)", s,
                           allow_geojson ? " or geojson" : "");
        return -1;
    }
    return 0;
}

int gs_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "geoscribe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'geoscribe %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

bool gs_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

void gs_cli_print_usage(const gs_cli_cmd_t *cmd, FILE *f)
{
    fprintf(f, "%s\n", cmd->usage);
}

static int by_order(const void *a, const void *b)
{
    const gs_cli_cmd_t *x = *(const gs_cli_cmd_t *const *)a, *y = *(const gs_cli_cmd_t *const *)b;
    return x->order != y->order ? x->order - y->order : strcmp(x->name, y->name);
}

static void print_help(FILE *f)
{
    const gs_cli_cmd_t *sorted[N_COMMANDS];
    memcpy(sorted, commands, sizeof sorted);
    qsort(sorted, N_COMMANDS, sizeof sorted[0], by_order);
    fprintf(f, "geoscribe %s: search and describe archives of satellite and aerial imagery\n\n"
               "usage: geoscribe [--log-level error|warn|info|debug] <command> [options]\n\n"
               "commands:\n",
            GS_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", sorted[i]->name, sorted[i]->summary);
    fprintf(f, "\n'geoscribe <command> --help' describes a command. Results go to stdout\n"
               "(--format json: one JSON object per line); logs and errors go to stderr.\n"
               "Environment: GS_LOG_LEVEL sets the log level.\n");
}

int main(int argc, char **argv)
{
    const char *lvl = gs_getenv("GS_LOG_LEVEL");
    int argi = 1;
    if (argi + 1 < argc && strcmp(argv[argi], "--log-level") == 0) {
        lvl = argv[argi + 1];
        argi += 2;
    }
    if (lvl) {
        gs_log_level_t l;
        if (gs_log_parse_level(lvl, &l) != 0) {
            fprintf(stderr, "geoscribe: unknown log level \"%s\"\n", lvl);
            return 2;
        }
        gs_log_set_level(l);
    }
    if (argi >= argc) {
        print_help(stderr);
        return 2;
    }
    const char *name = argv[argi];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0 && argi + 1 < argc) {
            const gs_cli_cmd_t *c = gs_cli_find(argv[argi + 1]);
            if (c) {
                gs_cli_print_usage(c, stdout);
                return 0;
            }
        }
        print_help(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        name = "version";
    const gs_cli_cmd_t *cmd = gs_cli_find(name);
    if (!cmd) {
        fprintf(stderr, "geoscribe: unknown command \"%s\"\n\n", name);
        print_help(stderr);
        return 2;
    }
    int sub_argc = argc - argi;
    char **sub_argv = argv + argi;
    if (gs_cli_wants_help(sub_argc, sub_argv)) {
        gs_cli_print_usage(cmd, stdout);
        return 0;
    }
    if (!cmd->uses_mpi)
        return cmd->run(sub_argc, sub_argv);

    if (gs_mpi_init(&argc, &argv, &gs_cli_rank, &gs_cli_size) != GS_OK) {
        fprintf(stderr, "geoscribe: could not initialise MPI\n");
        return 1;
    }
    gs_log_set_role(gs_cli_rank == 0 ? "coord" : "worker", gs_cli_rank);
    int rc = cmd->run(sub_argc, sub_argv);
    gs_mpi_finalize();
    return rc;
}
