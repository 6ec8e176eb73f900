// ZeroMQ publish/subscribe of opaque messages: how a running job's progress reaches monitors
// (DESIGN.md section 4: "a ZeroMQ PUB socket for monitors"). A message is two frames, a topic
// ("ingest", "changes") and the bytes (a packed geoscribe.Progress: the codec lives in the
// coordinator and in cli/, this transport knows nothing of it).
// Endpoints: "tcp://*:5557" or "ipc:///run/gs.sock"; a leading '>' connects instead of binding
// and a leading '@' binds explicitly. A publisher binds by default (monitors connect to the job);
// a subscriber connects by default (or binds with '@', so that many jobs connect to one monitor,
// e.g. `geoscribe status --watch @tcp://*:5557` with `progress.publish: >tcp://monitor:5557`).
// Publishing never blocks the job: a message that cannot be queued is dropped (PUB semantics;
// a monitor that joins late sees the next message).
// Not here: the query service (query/server.h).
#pragma once

#include <stddef.h>

#include "common/err.h"

typedef struct gs_pub gs_pub_t;
typedef struct gs_sub gs_sub_t;

// gs_pub_open: a PUB socket on `endpoint`. GS_EINVAL (malformed endpoint), GS_EIO (bind or
// connect refused: the reason is in err). *out is new (gs_pub_close).
gs_err gs_pub_open(const char *endpoint, gs_pub_t **out, char *err, size_t err_nbytes);
// gs_pub_send: queues topic + data; GS_OK, or GS_EIO when it was dropped. Not thread-safe
// (one thread per publisher).
gs_err gs_pub_send(gs_pub_t *self, const char *topic, const void *data, size_t nbytes);
// gs_pub_close: gives queued messages up to linger_ms to leave, then closes. NULL-safe.
void gs_pub_close(gs_pub_t **p, int linger_ms);

// gs_sub_open: a SUB socket on `endpoint` subscribed to topics starting with `topic_prefix`
// ("" = all). When it binds, the actual endpoint (the port chosen for "tcp://127.0.0.1:*") is
// written to bound (may be NULL). *out is new (gs_sub_close).
gs_err gs_sub_open(const char *endpoint, const char *topic_prefix, gs_sub_t **out, char *bound,
                   size_t bound_nbytes, char *err, size_t err_nbytes);
// gs_sub_recv: waits up to timeout_ms (-1 = forever) for one message; its topic goes to topic
// (truncated to topic_nbytes), its bytes to data (capacity cap; *out_nbytes = the message's
// size, which may exceed cap: then the message was cut and GS_ETOOBIG returned). GS_ETIMEOUT
// when nothing came; GS_EIO when interrupted (a signal) or the socket failed.
gs_err gs_sub_recv(gs_sub_t *self, int timeout_ms, char *topic, size_t topic_nbytes, void *data,
                   size_t cap, size_t *out_nbytes);
void gs_sub_close(gs_sub_t **p);
