// protobuf-c runtime version.
#include "proto/pbver.h"

#include <protobuf-c/protobuf-c.h>

const char *gs_protobuf_c_version(void) { return protobuf_c_version(); }
