// `geoscribe ping`: checks that every MPI rank starts and can exchange protobuf messages with
// rank 0; prints the roll call. The smallest real distributed thing geoscribe does.
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "coordinator/ping.h"
#include "worker/ping.h"

static int run(int argc, char **argv)
{
    gs_format_t fmt = GS_FORMAT_TEXT;
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'}, {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'f' || gs_cli_parse_format("ping", optarg, false, &fmt) != 0)
            return c == 'f' ? 2 : gs_cli_usage_error("ping", "unknown option");
    }
    if (gs_cli_rank != 0)
        return gs_worker_ping(gs_cli_rank, gs_cli_size) == GS_OK ? 0 : 1;
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    gs_err e = gs_coord_ping(gs_cli_size, &b);
    if (e == GS_OK) {
        if (fmt == GS_FORMAT_JSON)
            printf("{\"ranks\":%d,\"roll\":%s}\n", gs_cli_size, b.data);
        else
            printf("%d rank%s answered: %s\n", gs_cli_size, gs_cli_size == 1 ? "" : "s", b.data);
    } else {
        fprintf(stderr, "geoscribe ping: %s\n", gs_strerror(e));
    }
    gs_buf_cleanup(&b);
    return e == GS_OK ? 0 : 1;
}

const gs_cli_cmd_t gs_cli_cmd_ping = {
    .name = "ping",
    .summary = "check that all MPI ranks start and talk to rank 0 (mpirun -n N geoscribe ping)",
    .usage = "usage: [mpirun -n N] geoscribe ping [--format text|json]\n\n"
             "Every rank sends a protobuf Hello to rank 0, which answers and prints the roll\n"
             "call (rank, host, pid, version). Run it first on a new cluster allocation.\n"
             "As root, or with more ranks than cores, mpirun needs:\n"
             "  mpirun --allow-run-as-root --oversubscribe -n 3 geoscribe ping",
    .order = 90,
    .uses_mpi = true,
    .run = run,
};
