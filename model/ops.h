// Tensor ops of the inference engine over BLAS (OpenBLAS). The only includer of cblas.h.
// Each op has a naive C reference used by the tests to check the BLAS path.
#pragma once

#include <stddef.h>

// gs_ops_blas_info: "OpenBLAS 0.3.21 ... (core: Cooperlake)", read from the library at run time.
void gs_ops_blas_info(char *out, size_t out_nbytes);
// gs_ops_set_threads: the number of BLAS threads for this process (ranks x threads <= cores).
void gs_ops_set_threads(int n_threads);
// gs_ops_get_threads: the current BLAS thread count.
int gs_ops_get_threads(void);
