// BLAS-backed ops. Kernels never log; they keep counters.
#include "model/ops.h"

#include <cblas.h>
#include <stdio.h>

void gs_ops_blas_info(char *out, size_t out_nbytes)
{
    snprintf(out, out_nbytes, "%s (core: %s)", openblas_get_config(), openblas_get_corename());
}

void gs_ops_set_threads(int n_threads) { openblas_set_num_threads(n_threads > 0 ? n_threads : 1); }

int gs_ops_get_threads(void) { return openblas_get_num_threads(); }
