# model/llava: the captioner against transformers v4.40.2 on ../shared/fixtures/llava_tiny
# (activations, first-step logits, greedy ids; from pixel values and from the PNGs), decoding
# options and refused inputs. jobs/ reads the PNGs (gs_raster_read_rgb8).
gs_check_test(test_model_llava SUITE model_llava_suite SOURCES test_model_llava.c
  MODULES model jobs common LIBS PkgConfig::JANSSON TIMEOUT 300)
# `geoscribe caption` on the fixture (single and pair, exact ids), options and exit codes.
add_test(NAME caption_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/caption_cli.sh
  "${CMAKE_BINARY_DIR}/bin/geoscribe" "${GS_SHARED}")
set_tests_properties(caption_cli PROPERTIES TIMEOUT 120)
