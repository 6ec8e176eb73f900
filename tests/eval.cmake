# eval/: caption metrics, recall@K, labels CSV and dataset.json readers (hand-computed cases),
# and `geoscribe eval classify|retrieve|caption` on a few UCM images with the tiny fixture
# models (skipped without ../shared).
gs_check_test(test_eval SUITE eval_suite SOURCES test_eval.c MODULES eval common TIMEOUT 60)
add_test(NAME eval_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/eval_cli.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_SHARED}")
set_tests_properties(eval_cli PROPERTIES TIMEOUT 120)
# the shipped models/default/clip reproduces the numbers of its card (metrics.json) on the
# whole UCM val split (skipped without ../shared)
add_test(NAME models_default COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/models_default.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${CMAKE_SOURCE_DIR}" "${GS_SHARED}")
set_tests_properties(models_default PROPERTIES TIMEOUT 300)
