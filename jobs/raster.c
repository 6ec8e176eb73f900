// GDAL raster access.
#include "jobs/raster.h"

#include <gdal.h>
#include <stdio.h>

void gs_raster_lib_version(char *out, size_t out_nbytes)
{
    snprintf(out, out_nbytes, "%s", GDALVersionInfo("RELEASE_NAME"));
}
