// MPI framing: probe for the size, allocate, receive. Errors are returned, never fatal.
#define GS_LOG_MODULE "proto"
#include "proto/mpi_frame.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"

static int we_initialised;

#define GS_MPI_CHECK(call)                                                  \
    do {                                                                    \
        int gs__rc = (call);                                                \
        if (gs__rc != MPI_SUCCESS) {                                        \
            char gs__msg[MPI_MAX_ERROR_STRING];                             \
            int gs__len = 0;                                                \
            MPI_Error_string(gs__rc, gs__msg, &gs__len);                    \
            GS_LOG_ERROR("%s failed: %s", #call, gs__msg);                  \
            return GS_EMPI;                                                 \
        }                                                                   \
    } while (0)

gs_err gs_mpi_init(int *argc, char ***argv, int *out_rank, int *out_size)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            GS_LOG_ERROR("could not initialise mpi (code %d)", rc);
            return GS_EMPI;
        }
        we_initialised = 1;
    }
    GS_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    GS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, out_rank));
    GS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, out_size));
    return GS_OK;
}

void gs_mpi_finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (we_initialised && !fin)
        MPI_Finalize();
    we_initialised = 0;
}

void gs_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

gs_err gs_mpi_send(int dest, int tag, const void *data, size_t n)
{
    if (n > GS_MPI_MAX_MSG || n > INT_MAX)
        return GS_ETOOBIG;
    GS_MPI_CHECK(MPI_Send(data, (int)n, MPI_BYTE, dest, tag, MPI_COMM_WORLD));
    return GS_OK;
}

gs_err gs_mpi_recv(int src, int tag, void **out_data, size_t *out_n, int *out_src, int *out_tag)
{
    MPI_Status st;
    int count = 0;
    GS_MPI_CHECK(MPI_Probe(src == GS_MPI_ANY ? MPI_ANY_SOURCE : src,
                           tag == GS_MPI_ANY ? MPI_ANY_TAG : tag, MPI_COMM_WORLD, &st));
    GS_MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &count));
    if (out_src)
        *out_src = st.MPI_SOURCE;
    if (out_tag)
        *out_tag = st.MPI_TAG;
    void *buf = NULL;
    gs_err e = GS_OK;
    if ((size_t)count > GS_MPI_MAX_MSG) {
        GS_LOG_ERROR("message from rank %d is too large: %d bytes", st.MPI_SOURCE, count);
        e = GS_ETOOBIG;
    } else if (count > 0 && !(buf = gs_trymalloc((size_t)count))) {
        e = GS_ENOMEM;
    }
    if (e != GS_OK) {
        // consume it anyway so the stream stays in sync: a truncated receive still matches
        // (and removes) the message; its MPI_ERR_TRUNCATE is expected and ignored
        char scratch[64];
        (void)MPI_Recv(scratch, (int)sizeof scratch, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        return e;
    }
    GS_MPI_CHECK(MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD,
                          MPI_STATUS_IGNORE));
    *out_data = buf;
    *out_n = (size_t)count;
    return GS_OK;
}

gs_err gs_mpi_poll(int src, int tag, int timeout_ms, int *out_ready)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long sleep_us = 50;; sleep_us = sleep_us < 2000 ? sleep_us * 2 : 2000) {
        int flag = 0;
        GS_MPI_CHECK(MPI_Iprobe(src == GS_MPI_ANY ? MPI_ANY_SOURCE : src,
                                tag == GS_MPI_ANY ? MPI_ANY_TAG : tag, MPI_COMM_WORLD, &flag,
                                MPI_STATUS_IGNORE));
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (flag || ms >= timeout_ms) {
            *out_ready = flag;
            return GS_OK;
        }
        struct timespec d = {0, sleep_us * 1000};
        nanosleep(&d, NULL);
    }
}

gs_err gs_mpi_bcast(int root, void **data, size_t *n)
{
    int rank;
    GS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    uint64_t len = rank == root ? (uint64_t)*n : 0;
    GS_MPI_CHECK(MPI_Bcast(&len, 1, MPI_UINT64_T, root, MPI_COMM_WORLD));
    if (len > GS_MPI_MAX_MSG)
        return GS_ETOOBIG;
    if (rank != root) {
        *data = len ? gs_trymalloc(len) : NULL;
        if (len && !*data)
            return GS_ENOMEM;
        *n = (size_t)len;
    }
    if (len)
        GS_MPI_CHECK(MPI_Bcast(*data, (int)len, MPI_BYTE, root, MPI_COMM_WORLD));
    return GS_OK;
}

gs_err gs_mpi_barrier(void)
{
    GS_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    return GS_OK;
}

void gs_mpi_library_version(char *out, size_t out_nbytes)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) != MPI_SUCCESS)
        len = 0;
    v[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
    // keep the first line ("Open MPI v4.1.4, package: ...") up to the first comma
    for (char *p = v; *p; p++)
        if (*p == ',' || *p == '\n') {
            *p = '\0';
            break;
        }
    snprintf(out, out_nbytes, "%s", v);
}

void gs_mpi_processor_name(char *out, size_t out_nbytes)
{
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) != MPI_SUCCESS)
        len = 0;
    name[len] = '\0';
    snprintf(out, out_nbytes, "%s", name);
}
