# model/preprocess: resize/crop/normalisation against the fixtures and Pillow hashes. libpng
# (tests only) decodes the LLaVA fixture PNGs; a prefix of our own avoids clashing with any
# PkgConfig::PNG target declared elsewhere.
if(NOT TARGET PkgConfig::GS_TEST_PNG)
  pkg_check_modules(GS_TEST_PNG REQUIRED IMPORTED_TARGET libpng)
endif()
gs_check_test(test_model_preprocess SUITE model_preprocess_suite SOURCES test_model_preprocess.c
  MODULES model common LIBS PkgConfig::GS_TEST_PNG TIMEOUT 300)
