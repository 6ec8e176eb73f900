# model/ops: BLAS paths against naive references.
gs_check_test(test_model_ops SUITE model_ops_suite SOURCES test_model_ops.c MODULES model common
  TIMEOUT 120)
