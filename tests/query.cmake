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
# The service end to end: a real `geoscribe serve` on loopback, 10,000 mixed requests; change
# search over a real `geoscribe ingest` + `changes` store of ../shared's Landsat Pucallpa series.
gs_check_test(test_query_server SUITE query_server_suite SOURCES test_query_server.c query_mkdb.c
  MODULES query proto index model jobs common LIBS Threads::Threads TIMEOUT 600)
target_compile_definitions(test_query_server PRIVATE QMK_BIN="$<TARGET_FILE:query_mkdb>")
add_dependencies(test_query_server query_mkdb geoscribe)
# The CLI, the ZeroMQ service and the HTTP API print the same bytes; GeoJSON in ogrinfo.
add_test(NAME query_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/query_cli.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "$<TARGET_FILE:query_mkdb>" "${GS_TEST_TMP}" "${GS_SHARED}")
# The web map in headless Chromium (Debian chromium + playwright-core from deploy/setup.sh).
add_test(NAME query_web COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/query_web.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "$<TARGET_FILE:query_mkdb>" "${GS_TEST_TMP}" "${GS_SHARED}"
  "${GS_DEPS_PREFIX}/web/node_modules" "${CMAKE_SOURCE_DIR}")
set_tests_properties(query_cli query_web PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
# Search over a real `geoscribe ingest` of ../shared/data/scenes/rasterio.
add_test(NAME query_ingest COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/query_ingest.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_TEST_TMP}" "${CMAKE_SOURCE_DIR}" "${GS_SHARED}")
set_tests_properties(query_ingest PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
