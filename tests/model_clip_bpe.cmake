# model/clip_bpe: the CLIP BPE tokenizer against open_clip's SimpleTokenizer, all 178 cases of
# ../shared/fixtures/clip_bpe (exact ids), and the same ids from hfclip_tiny's vocab.json + merges.
gs_check_test(test_model_clip_bpe SUITE model_clip_bpe_suite SOURCES test_model_clip_bpe.c
  MODULES model common LIBS PkgConfig::JANSSON ZLIB::ZLIB Threads::Threads TIMEOUT 120)
