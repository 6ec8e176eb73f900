# eval/: caption metrics, recall@K, labels CSV and dataset.json readers (hand-computed cases).
gs_check_test(test_eval SUITE eval_suite SOURCES test_eval.c MODULES eval common TIMEOUT 60)
