# The README demo (deploy/demo.sh, `make demo`) on a small input: one place of the
# r-cran-satellite sample (two dates, 18 tiles) with models/default under mpirun -n 2; results,
# rerun and failure messages checked. Skips (77) without models/default or when the sample
# cannot be downloaded (apt-get download needs Debian's archive).
add_test(NAME demo_smoke COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/demo_smoke.sh
  "${CMAKE_BINARY_DIR}" "${GS_TEST_TMP}/demo_smoke" "${CMAKE_SOURCE_DIR}")
# Under ASan + UBSan an mpirun start and exit costs some 25 s (exact malloc stacks for lsan),
# so that build runs the demo in one process (DEMO_NP=1) and skips the rerun (the normal build
# runs mpirun -n 2 and the rerun; test_ingest and test_changes cover resuming under ASan).
if(GS_SANITIZE)
  set(demo_np "1;DEMO_SMOKE_RERUN=0")
else()
  set(demo_np 2)
endif()
set_tests_properties(demo_smoke PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE;DEMO_NP=${demo_np}")
