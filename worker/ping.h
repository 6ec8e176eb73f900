// A worker's side of the roll call (see coordinator/ping.h).
#pragma once

#include "common/err.h"

// gs_worker_ping: on rank `rank` > 0 of `size`, sends a Hello to rank 0 and waits for its
// answer. GS_EMPI, GS_EFORMAT (malformed answer), GS_EMISMATCH (rank 0 runs another version).
gs_err gs_worker_ping(int rank, int size);
