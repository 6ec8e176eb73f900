// Rank 0's side of the roll call.
#define GS_LOG_MODULE "coordinator"
#include "coordinator/ping.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "proto/geoscribe.pb-c.h"
#include "proto/mpi_frame.h"

typedef struct {
    char host[256];
    char version[32];
    int pid;
    int seen;
} roll_t;

static gs_err reply(int dest, int size, const char *host)
{
    Geoscribe__Hello h = GEOSCRIBE__HELLO__INIT;
    h.rank = 0;
    h.size = size;
    h.host = (char *)host;
    h.version = (char *)GS_VERSION;
    h.pid = (int)getpid();
    size_t n = geoscribe__hello__get_packed_size(&h);
    uint8_t *buf = gs_xmalloc(n);
    geoscribe__hello__pack(&h, buf);
    gs_err e = gs_mpi_send(dest, GS_TAG_HELLO, buf, n);
    gs_free(buf);
    return e;
}

gs_err gs_coord_ping(int size, gs_buf_t *out_json)
{
    gs_err e = GS_OK;
    roll_t *roll = gs_xcalloc((size_t)size, sizeof *roll);
    gs_mpi_processor_name(roll[0].host, sizeof roll[0].host);
    snprintf(roll[0].version, sizeof roll[0].version, "%s", GS_VERSION);
    roll[0].pid = (int)getpid();
    roll[0].seen = 1;
    for (int i = 1; i < size && e == GS_OK; i++) {
        void *data = NULL;
        size_t n = 0;
        int src = -1;
        e = gs_mpi_recv(GS_MPI_ANY, GS_TAG_HELLO, &data, &n, &src, NULL);
        if (e != GS_OK)
            break;
        Geoscribe__Hello *h = geoscribe__hello__unpack(NULL, n, data);
        gs_free(data);
        if (!h || h->rank != src || src <= 0 || src >= size || roll[src].seen) {
            GS_LOG_ERROR("malformed hello from rank %d", src);
            if (h)
                geoscribe__hello__free_unpacked(h, NULL);
            e = GS_EFORMAT;
            break;
        }
        if (strcmp(h->version, GS_VERSION) != 0) {
            GS_LOG_ERROR("rank %d runs geoscribe %s, rank 0 runs %s", src, h->version, GS_VERSION);
            e = GS_EMISMATCH;
        }
        snprintf(roll[src].host, sizeof roll[src].host, "%s", h->host);
        snprintf(roll[src].version, sizeof roll[src].version, "%s", h->version);
        roll[src].pid = h->pid;
        roll[src].seen = 1;
        geoscribe__hello__free_unpacked(h, NULL);
        if (e == GS_OK)
            e = reply(src, size, roll[0].host);
    }
    if (e == GS_OK) {
        e = gs_buf_puts(out_json, "[");
        for (int r = 0; r < size && e == GS_OK; r++) {
            e = gs_buf_printf(out_json, "%s{\"rank\":%d,\"host\":", r ? "," : "", r);
            if (e == GS_OK)
                e = gs_buf_json_str(out_json, roll[r].host);
            if (e == GS_OK)
                e = gs_buf_printf(out_json, ",\"pid\":%d,\"version\":", roll[r].pid);
            if (e == GS_OK)
                e = gs_buf_json_str(out_json, roll[r].version);
            if (e == GS_OK)
                e = gs_buf_puts(out_json, "}");
        }
        if (e == GS_OK)
            e = gs_buf_puts(out_json, "]");
    }
    gs_free(roll);
    return e;
}
