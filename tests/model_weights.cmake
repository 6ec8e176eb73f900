# model/weights: checkpoint readers (safetensors, sharded index, torch .pt zips) against the
# fixtures, plus broken and hostile files written by the test itself.
gs_check_test(test_model_weights SUITE model_weights_suite SOURCES test_model_weights.c
  MODULES model common TIMEOUT 120)
