# Change captioning (docs/CHANGES.md): pairing, grids and warps (jobs/warp.h); `geoscribe
# changes` end to end on ../shared/data/scenes/landsat-pucallpa in one process and under mpirun
# (pairs as configured, records, gated captions, idempotent rerun, incremental run), change
# search (`geoscribe query --changes`), and the change score against the LEVIR-CD masks (ROC
# AUC). Real GDAL, RocksDB, FAISS and the tiny fixture models.
gs_check_test(test_changes_warp SUITE changes_warp_suite SOURCES test_changes_warp.c
  MODULES jobs common TIMEOUT 120)
