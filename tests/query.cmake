# query/: search, formatting, the ZeroMQ service and the HTTP server (docs/QUERY.md).
# query_mkdb writes small real outputs (RocksDB + FAISS through index/) for the tests.
add_executable(query_mkdb ${CMAKE_CURRENT_SOURCE_DIR}/query_mkdb_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/query_mkdb.c)
target_compile_definitions(query_mkdb PRIVATE GS_SHARED_DIR="${GS_SHARED}")
gs_link_modules(query_mkdb common index model jobs)
