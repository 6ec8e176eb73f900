// Versions of the index backends actually linked (FAISS, RocksDB).
#pragma once

#include <stddef.h>

// gs_index_faiss_version: "1.7.3" (FAISS is linked statically: the version of that library).
void gs_index_faiss_version(char *out, size_t out_nbytes);
// gs_index_rocksdb_version: RocksDB's version string read from the library at run time.
void gs_index_rocksdb_version(char *out, size_t out_nbytes);
