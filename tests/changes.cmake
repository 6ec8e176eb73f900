# Change captioning (docs/CHANGES.md): pairing, grids and warps (jobs/warp.h); `geoscribe
# changes` end to end on ../shared/data/scenes/landsat-pucallpa in one process and under mpirun
# (pairs as configured, records, gated captions, idempotent rerun, incremental run), change
# search (`geoscribe query --changes`), and the change score against the LEVIR-CD masks (ROC
# AUC). Real GDAL, RocksDB, FAISS and the tiny fixture models.
gs_check_test(test_changes_warp SUITE changes_warp_suite SOURCES test_changes_warp.c
  MODULES jobs common TIMEOUT 120)
# about 30 s in the normal build, 6 min under ASan on a loaded 2-core machine
gs_check_test(test_changes SUITE changes_suite SOURCES test_changes.c MODULES jobs index common
  TIMEOUT 900)
target_compile_definitions(test_changes PRIVATE GS_MPIEXEC="${MPIEXEC_EXECUTABLE}")
target_compile_options(test_changes PRIVATE -Wno-format-truncation)
add_dependencies(test_changes geoscribe)
gs_check_test(test_changes_levir SUITE changes_levir_suite SOURCES test_changes_levir.c
  MODULES jobs index common TIMEOUT 300)
target_compile_options(test_changes_levir PRIVATE -Wno-format-truncation)
add_dependencies(test_changes_levir geoscribe)
# The nightly deployment: systemd units, the nightly script over two nights, the Slurm chain.
add_test(NAME changes_nightly COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/changes_nightly.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_TEST_TMP}/changes_nightly" "${GS_SHARED}"
  "${CMAKE_SOURCE_DIR}")
set_tests_properties(changes_nightly PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
