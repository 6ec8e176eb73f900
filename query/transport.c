// ZeroMQ transport.
#include "query/transport.h"

#include <stdio.h>
#include <zmq.h>

void gs_zmq_lib_version(char *out, size_t out_nbytes)
{
    int major = 0, minor = 0, patch = 0;
    zmq_version(&major, &minor, &patch);
    snprintf(out, out_nbytes, "%d.%d.%d", major, minor, patch);
}
