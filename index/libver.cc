// Backend version strings. C++ only because neither C API exposes a version call; it includes
// version headers, not the APIs (vindex.c and capstore.c remain their only users).
#include <cstdio>
#include <string>

#include <faiss/Index.h>
#include <rocksdb/version.h>

extern "C" {
#include "index/libver.h"
}

extern "C" void gs_index_faiss_version(char *out, size_t out_nbytes)
{
    std::snprintf(out, out_nbytes, "%d.%d.%d", FAISS_VERSION_MAJOR, FAISS_VERSION_MINOR,
                  FAISS_VERSION_PATCH);
}

extern "C" void gs_index_rocksdb_version(char *out, size_t out_nbytes)
{
    std::snprintf(out, out_nbytes, "%s", rocksdb::GetRocksVersionAsString(true).c_str());
}
