// Private interface between index/capstore.c (RocksDB) and index/capstore_rec.c (typed records
// on top). Module-private (index/ only).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "index/capstore.h"

// A value seen by gs__capstore_multi_get_each: v is NULL when ids[i] has no record; v is
// RocksDB memory, valid during the call only. A non-OK return stops the walk and is returned.
typedef gs_err (*gs__capstore_value_fn)(size_t i, const char *v, size_t nbytes, void *ud);

// gs__capstore_multi_get_each: batched MultiGet of 8-byte big-endian keys, calling fn once for
// each position i of ids (in key order, not in i order). GS_EINVAL, GS_ENOMEM, GS_EIO, or fn's
// error.
gs_err gs__capstore_multi_get_each(gs_capstore_t *self, gs_cf_t cf, size_t n,
                                   const uint64_t *ids, gs__capstore_value_fn fn, void *ud);

// gs__capstore_batch_scratch: the batch's encoding buffer (reset before use).
gs_buf_t *gs__capstore_batch_scratch(gs_capstore_batch_t *b);

// gs__capstore_path: the store's folder, for log lines; valid while the store is open.
const char *gs__capstore_path(const gs_capstore_t *self);
