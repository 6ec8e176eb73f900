// The geoscribe command line: one executable, one file per subcommand (cmd_<name>.c), each
// defining `const gs_cli_cmd_t gs_cli_cmd_<name>`. cli/CMakeLists.txt collects the cmd_*.c
// files into the command table, so adding a command is adding a file.
#pragma once

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    const char *name;    // "embed"
    const char *summary; // one line for `geoscribe --help`
    const char *usage;   // full help for `geoscribe <cmd> --help` (options, examples)
    int order;           // position in `geoscribe --help` (lower first)
    bool uses_mpi;       // main initialises MPI before calling run
    // run: argv[0] is the command name. Returns the process exit status (0 ok, 1 failure,
    // 2 usage error). Errors go to stderr, results to stdout.
    int (*run)(int argc, char **argv);
} gs_cli_cmd_t;

typedef enum { GS_FORMAT_TEXT = 0, GS_FORMAT_JSON = 1, GS_FORMAT_GEOJSON = 2 } gs_format_t;

// gs_cli_parse_format: "text|json|geojson" (geojson only where allowed); prints a usage error
// and returns -1 when invalid.
int gs_cli_parse_format(const char *cmd, const char *s, bool allow_geojson, gs_format_t *out);
// gs_cli_usage_error: prints "geoscribe <cmd>: <message>" and a hint to stderr; returns 2.
int gs_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// gs_cli_wants_help: true when argv holds -h or --help.
bool gs_cli_wants_help(int argc, char **argv);
// gs_cli_print_usage: the command's usage text on `f`.
void gs_cli_print_usage(const gs_cli_cmd_t *cmd, FILE *f);
// gs_cli_find: the command called `name`, or NULL.
const gs_cli_cmd_t *gs_cli_find(const char *name);
// MPI rank and size, set by main for commands with uses_mpi (0 and 1 otherwise).
extern int gs_cli_rank, gs_cli_size;
