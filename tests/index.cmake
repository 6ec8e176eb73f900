# index/: the FAISS vector index and the RocksDB record store (tests/test_index*.c), and a check
# that stock FAISS (Debian's python3-faiss) opens our index files and finds the same results.
gs_check_test(test_index SUITE index_suite SOURCES test_index.c MODULES index common
  LIBS Threads::Threads TIMEOUT 600)
set_tests_properties(test_index PROPERTIES FIXTURES_SETUP index_py_files)
add_test(NAME index_faiss_py COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/index_faiss_py.sh
  "${GS_TEST_TMP}/index_py")
set_tests_properties(index_faiss_py PROPERTIES FIXTURES_REQUIRED index_py_files TIMEOUT 120
  SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
gs_check_test(test_index_store SUITE index_store_suite SOURCES test_index_store.c
  MODULES index common TIMEOUT 600)
# index at a realistic shape (512-d, the "auto" index type, records): prints the figures of
# docs/STORE.md; GS_INDEX_SCALE_N=1000000 build-*/tests/test_index_scale for the full size.
gs_check_test(test_index_scale SUITE index_scale_suite SOURCES test_index_scale.c
  MODULES index common TIMEOUT 900)
