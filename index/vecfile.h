// gs_vecfile: a raw vector file, the vectors of one ingest shard (ids + float32 vectors) as a
// worker writes them and the coordinator adds them to the index at commit. Plain floats rather
// than a FAISS shard index: the trained quantizer lives in the main index only, commit encodes
// once, and any index type (flat or IVF-PQ) can take them. Layout in docs/STORE.md.
// Not the index itself (index/vindex.h) and not the records (index/capstore.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// GS_VECFILE_MAX_NBYTES: the largest file gs_vecfile_read accepts (4 GiB: 2M vectors of 512).
#define GS_VECFILE_MAX_NBYTES ((size_t)4 << 30)

// gs_vecfile_write: writes n ids and n vectors (n, dim) to path atomically (temporary, fsync,
// rename, fsync of the folder), with a checksum of the payload. *out_hash (may be NULL) gets
// that checksum as 16 hex digits plus NUL, for the shard manifest. GS_EINVAL (dim <= 0, NULL
// arrays with n > 0), GS_ETOOBIG, GS_EIO (logged), GS_ENOMEM. Thread-safe.
gs_err gs_vecfile_write(const char *path, int dim, size_t n, const uint64_t *ids,
                        const float *vecs, char out_hash[17]);

// gs_vecfile_read: reads a file written by gs_vecfile_write. The caller owns *out_ids and
// *out_vecs (gs_free; NULL when n is 0). GS_EIO (cannot read, logged), GS_EFORMAT (bad magic,
// version, sizes or checksum: logged with the path), GS_ETOOBIG, GS_ENOMEM. Thread-safe.
gs_err gs_vecfile_read(const char *path, int *out_dim, size_t *out_n, uint64_t **out_ids,
                       float **out_vecs);
