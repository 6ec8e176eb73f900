# model/clip: CLIP towers against the golden activations of ../shared/fixtures (open_clip hub
# layout, .pt + config, Hugging Face layout), refusals, F16/BF16 copies.
gs_check_test(test_model_clip SUITE model_clip_suite SOURCES test_model_clip.c
  MODULES model common TIMEOUT 300)
# The CLIP commands of the CLI on the same fixtures (values, JSON shape, errors).
add_test(NAME clip_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/clip_cli.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_SHARED}")
set_tests_properties(clip_cli PROPERTIES TIMEOUT 120)
