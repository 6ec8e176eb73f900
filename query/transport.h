// ZeroMQ transport of the query service. query/ is the only includer of zmq.h.
#pragma once

#include <stddef.h>

// gs_zmq_lib_version: libzmq's version read at run time, e.g. "4.3.4".
void gs_zmq_lib_version(char *out, size_t out_nbytes);
