// File helpers: whole-file reads with a size cap, recursive mkdir, and atomic writes (write a
// temporary, fsync, rename, fsync the directory) used for shards, manifests and ledgers.
#pragma once

#include <stddef.h>

#include "common/err.h"

// gs_read_file: reads the whole file into a new NUL-terminated buffer (free with gs_free).
// GS_EIO (cannot open/read, logged with the path), GS_ETOOBIG (larger than cap_nbytes),
// GS_ENOMEM.
gs_err gs_read_file(const char *path, size_t cap_nbytes, char **out_data, size_t *out_nbytes);
// gs_mkdir_p: creates a directory and its parents (mode 0755); GS_OK if it exists. GS_EIO.
gs_err gs_mkdir_p(const char *path);
// gs_write_file_atomic: path gets exactly `data` or stays as it was, even across a crash.
// GS_EIO (logged with the path).
gs_err gs_write_file_atomic(const char *path, const void *data, size_t nbytes);
// gs_path_exists / gs_is_dir: 1 if true, 0 otherwise.
int gs_path_exists(const char *path);
int gs_is_dir(const char *path);
// gs_path_join: "a" + "/" + "b" into a new string (free with gs_free).
char *gs_path_join(const char *a, const char *b);
// gs_path_absolute: the canonical absolute form of an existing path (realpath), or a copy of
// `path` when it does not resolve (empty, missing, a hub name); free with gs_free. Used for the
// model paths an output records, so that a search from another directory still finds them.
char *gs_path_absolute(const char *path);
