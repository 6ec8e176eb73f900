# Ingest end to end (tests/test_ingest.c): the real geoscribe binary, one process and mpirun
# (3 ranks on this machine), real scenes from ../shared/data/scenes and the tiny fixture model;
# kill -9 and resume; quarantine; example jobs. And stock FAISS (python3-faiss) reading an
# ingest output (tests/ingest_faiss_py.sh).
gs_check_test(test_ingest SUITE ingest_suite SOURCES test_ingest.c MODULES index common
  TIMEOUT 900)
target_compile_definitions(test_ingest PRIVATE GS_MPIEXEC="${MPIEXEC_EXECUTABLE}")
# paths are built in fixed 4 KiB buffers from a short temporary folder
target_compile_options(test_ingest PRIVATE -Wno-format-truncation)
add_dependencies(test_ingest geoscribe)
add_test(NAME ingest_faiss_py COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ingest_faiss_py.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_TEST_TMP}/ingest_py" "${GS_SHARED}")
set_tests_properties(ingest_faiss_py PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
