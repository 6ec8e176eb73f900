gs_check_test(test_common SUITE common_suite SOURCES test_common.c MODULES common)
