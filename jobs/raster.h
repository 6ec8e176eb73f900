// Raster access through GDAL: the only includer of gdal.h in geoscribe. No GDAL type crosses
// this header.
#pragma once

#include <stddef.h>

// gs_raster_lib_version: GDAL's release name read at run time, e.g. "3.6.2".
void gs_raster_lib_version(char *out, size_t out_nbytes);
