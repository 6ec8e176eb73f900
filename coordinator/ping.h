// Roll call of an MPI job: rank 0 collects a Hello from every worker and answers each, proving
// that all ranks started, speak the same protocol version and can exchange framed protobuf
// messages. Used by `geoscribe ping` (the MPI smoke test) and at the start of every job.
#pragma once

#include "common/buf.h"
#include "common/err.h"

// gs_coord_ping: on rank 0 of `size` ranks, receives one Hello per worker (any order), replies
// to each, and appends a JSON array of {"rank","host","pid","version"} (rank 0 included,
// sorted by rank) to out_json. GS_EMPI, GS_EFORMAT (a malformed Hello), GS_EMISMATCH (a worker
// of another geoscribe version; logged with its rank), GS_ETOOBIG.
gs_err gs_coord_ping(int size, gs_buf_t *out_json);
