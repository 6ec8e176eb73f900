// `geoscribe version`: geoscribe's version and the versions of the libraries it linked, each
// read from the library at run time.
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "index/libver.h"
#include "jobs/raster.h"
#include "model/ops.h"
#include "proto/mpi_frame.h"
#include "proto/pbver.h"
#include "query/transport.h"

static int run(int argc, char **argv)
{
    gs_format_t fmt = GS_FORMAT_TEXT;
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'}, {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'f' || gs_cli_parse_format("version", optarg, false, &fmt) != 0)
            return c == 'f' ? 2 : gs_cli_usage_error("version", "unknown option");
    }
    char v[7][512];
    const char *names[7] = {"mpi", "gdal", "rocksdb", "faiss", "zeromq", "protobuf-c", "openblas"};
    gs_mpi_library_version(v[0], sizeof v[0]);
    gs_raster_lib_version(v[1], sizeof v[1]);
    gs_index_rocksdb_version(v[2], sizeof v[2]);
    gs_index_faiss_version(v[3], sizeof v[3]);
    gs_zmq_lib_version(v[4], sizeof v[4]);
    snprintf(v[5], sizeof v[5], "%s", gs_protobuf_c_version());
    gs_ops_blas_info(v[6], sizeof v[6]);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_t b;
        gs_buf_init(&b, 1 << 16);
        gs_buf_printf(&b, "{\"geoscribe\":\"%s\",\"libraries\":{", GS_VERSION);
        for (int i = 0; i < 7; i++) {
            gs_buf_printf(&b, "%s\"%s\":", i ? "," : "", names[i]);
            gs_buf_json_str(&b, v[i]);
        }
        gs_buf_puts(&b, "}}");
        printf("%s\n", b.data);
        gs_buf_cleanup(&b);
    } else {
        printf("geoscribe %s\n", GS_VERSION);
        for (int i = 0; i < 7; i++)
            printf("  %-11s %s\n", names[i], v[i]);
    }
    return 0;
}

const gs_cli_cmd_t gs_cli_cmd_version = {
    .name = "version",
    .summary = "print geoscribe's version and the versions of the libraries it runs on",
    .usage = "usage: geoscribe version [--format text|json]\n\n"
             "Prints geoscribe's version and the versions of Open MPI, GDAL, RocksDB, FAISS,\n"
             "ZeroMQ, protobuf-c and OpenBLAS, each read from the linked library at run time\n"
             "(FAISS is linked statically: its version is that of the library built in).",
    .order = 100,
    .run = run,
};
