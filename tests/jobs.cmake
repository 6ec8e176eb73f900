# jobs/: raster reads, job spec, scenes, tile grid and ids, composites. The tests write their own
# tiny GeoTIFFs with GDAL (never committed) and read real scenes from ../shared/data.
gs_check_test(test_jobs SUITE jobs_suite SOURCES test_jobs.c MODULES jobs common
  LIBS GDAL::GDAL TIMEOUT 300)
gs_check_test(test_jobs_spec SUITE jobs_spec_suite SOURCES test_jobs_spec.c MODULES jobs common
  TIMEOUT 60)
gs_check_test(test_jobs_scene SUITE jobs_scene_suite SOURCES test_jobs_scene.c MODULES jobs common
  LIBS GDAL::GDAL TIMEOUT 300)
