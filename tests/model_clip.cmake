# model/clip: CLIP towers against the golden activations of ../shared/fixtures (open_clip hub
# layout, .pt + config, Hugging Face layout), refusals, F16/BF16 copies.
gs_check_test(test_model_clip SUITE model_clip_suite SOURCES test_model_clip.c
  MODULES model common TIMEOUT 300)
