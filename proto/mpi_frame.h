// MPI message framing for the coordinator and the workers: variable-length byte messages
// (packed protobuf) with a tag, sent and received without a size known in advance. The only
// place that includes mpi.h besides the coordinator/worker loops; no MPI type crosses this
// header. Every call returns GS_EMPI (logged once, here) instead of aborting: the communicator
// uses MPI_ERRORS_RETURN.
#pragma once

#include <stddef.h>

#include "common/err.h"

// Message tags of the geoscribe protocol (the payload message type in comments).
enum {
    GS_TAG_HELLO = 1,     // geoscribe.Hello
    GS_TAG_WORK_REQ = 2,  // geoscribe.WorkRequest
    GS_TAG_WORK = 3,      // geoscribe.TaskBatch
    GS_TAG_SHUTDOWN = 4,  // empty
    GS_TAG_START = 5,     // geoscribe.Start (ingest: rank 0's go / no-go after its set-up)
};

#define GS_MPI_ANY (-1)
// The largest message accepted by gs_mpi_recv; bigger ones fail with GS_ETOOBIG.
#define GS_MPI_MAX_MSG (64u << 20)

// gs_mpi_init: initialises MPI (threads: MPI_THREAD_FUNNELED) with errors returned, or attaches
// to an MPI already initialised. Outputs rank and size (1 without mpirun). GS_EMPI.
gs_err gs_mpi_init(int *argc, char ***argv, int *out_rank, int *out_size);
// gs_mpi_finalize: finalises MPI if gs_mpi_init initialised it. Idempotent.
void gs_mpi_finalize(void);
// gs_mpi_abort: tears the whole job down (used by main only, on a fatal coordinator error).
void gs_mpi_abort(int code);

// gs_mpi_send: blocking send of n bytes to rank `dest` with `tag`. GS_EMPI, GS_ETOOBIG.
gs_err gs_mpi_send(int dest, int tag, const void *data, size_t n);
// gs_mpi_recv: receives the next message from `src` (or GS_MPI_ANY) with `tag` (or
// GS_MPI_ANY). *out_data is a new buffer (free with gs_free; NULL for an empty message).
// GS_EMPI, GS_ETOOBIG (larger than GS_MPI_MAX_MSG: the message is consumed and dropped),
// GS_ENOMEM.
gs_err gs_mpi_recv(int src, int tag, void **out_data, size_t *out_n, int *out_src, int *out_tag);
// gs_mpi_poll: waits up to timeout_ms for a message from `src` with `tag` (GS_MPI_ANY for
// either) without spinning a core: MPI_Iprobe every millisecond or so, sleeping in between
// (a blocking MPI_Probe busy-polls in Open MPI). *out_ready is 1 when one is waiting (receive
// it with gs_mpi_recv), 0 after the timeout. GS_EMPI.
gs_err gs_mpi_poll(int src, int tag, int timeout_ms, int *out_ready);
// gs_mpi_bcast: rank `root` sends its (*data, *n) to all ranks; other ranks get a new buffer
// in *data (free with gs_free). GS_EMPI, GS_ENOMEM.
gs_err gs_mpi_bcast(int root, void **data, size_t *n);
// gs_mpi_barrier: GS_EMPI.
gs_err gs_mpi_barrier(void);
// gs_mpi_library_version: the MPI library's own version string, read at run time.
void gs_mpi_library_version(char *out, size_t out_nbytes);
// gs_mpi_processor_name: this host's name as MPI knows it.
void gs_mpi_processor_name(char *out, size_t out_nbytes);
