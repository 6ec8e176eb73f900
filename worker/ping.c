// Worker side of the roll call.
#define GS_LOG_MODULE "worker"
#include "worker/ping.h"

#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "proto/geoscribe.pb-c.h"
#include "proto/mpi_frame.h"

gs_err gs_worker_ping(int rank, int size)
{
    char host[256];
    gs_mpi_processor_name(host, sizeof host);
    Geoscribe__Hello h = GEOSCRIBE__HELLO__INIT;
    h.rank = rank;
    h.size = size;
    h.host = host;
    h.version = (char *)GS_VERSION;
    h.pid = (int)getpid();
    size_t n = geoscribe__hello__get_packed_size(&h);
    uint8_t *buf = gs_xmalloc(n);
    geoscribe__hello__pack(&h, buf);
    gs_err e = gs_mpi_send(0, GS_TAG_HELLO, buf, n);
    gs_free(buf);
    if (e != GS_OK)
        return e;
    void *data = NULL;
    size_t len = 0;
    GS_TRY(gs_mpi_recv(0, GS_TAG_HELLO, &data, &len, NULL, NULL));
    Geoscribe__Hello *r = geoscribe__hello__unpack(NULL, len, data);
    gs_free(data);
    if (!r) {
        GS_LOG_ERROR("malformed hello from rank 0");
        return GS_EFORMAT;
    }
    e = strcmp(r->version, GS_VERSION) == 0 ? GS_OK : GS_EMISMATCH;
    if (e != GS_OK)
        GS_LOG_ERROR("rank 0 runs geoscribe %s, this rank runs %s", r->version, GS_VERSION);
    geoscribe__hello__free_unpacked(r, NULL);
    return e;
}
