// The version of the protobuf-c runtime actually linked.
#pragma once

// gs_protobuf_c_version: a static string such as "1.4.1".
const char *gs_protobuf_c_version(void);
