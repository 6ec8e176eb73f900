# The command line and the MPI smoke test (real mpirun, 3 ranks on this machine).
set(GS_EXE "${CMAKE_BINARY_DIR}/bin/geoscribe")
add_test(NAME cli_smoke COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli_smoke.sh "${GS_EXE}")
# As root and with 3 ranks on 2 cores, mpirun needs these (documented in the README).
add_test(NAME mpi_ping_3_ranks COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_ping.sh
  "${MPIEXEC_EXECUTABLE}" "${GS_EXE}" 3)
set_tests_properties(cli_smoke mpi_ping_3_ranks PROPERTIES TIMEOUT 120)
