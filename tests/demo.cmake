# The README demo (deploy/demo.sh, `make demo`) on a small input: one place of the
# r-cran-satellite sample (two dates, 18 tiles) with models/default under mpirun -n 2; results,
# rerun and failure messages checked. Skips (77) without models/default or when the sample
# cannot be downloaded (apt-get download needs Debian's archive).
add_test(NAME demo_smoke COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/demo_smoke.sh
  "${CMAKE_BINARY_DIR}" "${GS_TEST_TMP}/demo_smoke" "${CMAKE_SOURCE_DIR}")
set_tests_properties(demo_smoke PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
