// gs_qclient: the client side of the query service's ZeroMQ transport: one REQ socket to a
// `geoscribe serve` endpoint, sending request bytes and waiting (with a timeout) for the reply
// bytes. It knows nothing of the messages (programs pack and unpack the protobuf messages of
// proto/query.proto). With the server's CURVE public key it talks CURVE (encrypted, and the
// server is authenticated); the client's own key pair is given or made up per connection.
#pragma once

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct gs_qclient gs_qclient_t;

typedef struct {
    int timeout_ms;               // per request (<= 0: 30000)
    const char *curve_server_key; // the server's public key, Z85 (40 chars); NULL: no CURVE
    const char *curve_secret_key; // this client's secret key, Z85; NULL: a fresh key pair
    size_t max_reply_nbytes;      // larger replies fail with GS_ETOOBIG (0: 256 MiB)
} gs_qclient_opts_t;

// gs_qclient_open: connects (ZeroMQ connects lazily: an absent server shows as a timeout of the
// first request). opts may be NULL. GS_EINVAL (bad endpoint or key; reason in err),
// GS_EUNSUPPORTED (CURVE not in libzmq), GS_EIO. The caller owns *out (gs_qclient_close).
gs_err gs_qclient_open(const char *endpoint, const gs_qclient_opts_t *opts, gs_qclient_t **out,
                       char *err, size_t err_nbytes);
// gs_qclient_call: sends req (req_nbytes bytes) and waits for the reply, which replaces the
// contents of `reply` (its cap applies too). After a timeout the next call works again (the
// late reply is discarded). GS_ETIMEOUT, GS_ETOOBIG (reply over the cap), GS_EIO (socket
// error; reason from zmq in err). Not thread-safe: one call at a time per client.
gs_err gs_qclient_call(gs_qclient_t *self, const void *req, size_t req_nbytes, gs_buf_t *reply,
                       char *err, size_t err_nbytes);
// gs_qclient_close: closes the socket and its context; NULLs *p; accepts NULL.
void gs_qclient_close(gs_qclient_t **p);
