# query/: search, formatting, the ZeroMQ service and the HTTP server (docs/QUERY.md).
# query_mkdb writes small real outputs (RocksDB + FAISS through index/) for the tests.
add_executable(query_mkdb ${CMAKE_CURRENT_SOURCE_DIR}/query_mkdb_main.c
  ${CMAKE_CURRENT_SOURCE_DIR}/query_mkdb.c)
target_compile_definitions(query_mkdb PRIVATE GS_SHARED_DIR="${GS_SHARED}")
gs_link_modules(query_mkdb common index model jobs)
gs_check_test(test_query SUITE query_suite SOURCES test_query.c query_mkdb.c
  MODULES query index model jobs common TIMEOUT 600)
target_compile_definitions(test_query PRIVATE QMK_BIN="$<TARGET_FILE:query_mkdb>")
add_dependencies(test_query query_mkdb)
