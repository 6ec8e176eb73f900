# model/spm: the SentencePiece tokenizer and its transformers layer, against
# ../shared/fixtures/llama_tokenizer (111 cases, exact) and llava_tiny's prompts.
gs_check_test(test_model_spm SUITE model_spm_suite SOURCES test_model_spm.c
  MODULES model common LIBS PkgConfig::JANSSON TIMEOUT 120)
