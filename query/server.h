// gs_server: the ZeroMQ transport of the query service. A ROUTER socket takes requests from many
// clients at once (REQ clients, or DEALER clients that send an empty delimiter frame first)
// and a small broker hands each one to the next idle worker thread; a worker calls the
// handler with the request bytes and a per-request arena and sends back what it wrote. The
// transport knows nothing of the messages: the program installs the handler (the protobuf
// codec lives in cli/, since libraries never include *.pb-c.h) and an error-reply builder for
// requests refused before any handler sees them (over the size cap).
// Security: binding anything but loopback, ipc:// or inproc:// needs allow_remote; CURVE
// (encryption and server authentication, and client authentication with an allow-list of
// client keys through a ZAP handler) is available for it.
// Not here: searching (query/search.h), HTTP (query/http.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

typedef struct gs_server gs_server_t;

// GS_SERVER_REQUEST_MAX: the default cap of one request (16 MiB: an example image of about
// 2300 x 2300 RGB pixels). A larger request gets an error reply (GS_ETOOBIG); one over
// GS_SERVER_HARD_FACTOR times the cap is dropped by ZeroMQ with its connection (ZMQ_MAXMSGSIZE)
// before it is read into memory.
#define GS_SERVER_REQUEST_MAX (16u << 20)
#define GS_SERVER_HARD_FACTOR 4u
// GS_SERVER_REPLY_MAX: the default cap of one reply (256 MiB).
#define GS_SERVER_REPLY_MAX (256u << 20)
// GS_SERVER_ARENA_MAX: the default cap of one request's arena (1 GiB; grown only as used).
#define GS_SERVER_ARENA_MAX ((size_t)1 << 30)
// GS_SERVER_DEFAULT_ENDPOINT: where `geoscribe serve` listens unless told otherwise.
#define GS_SERVER_DEFAULT_ENDPOINT "tcp://127.0.0.1:7700"

// gs_server_handle_fn: answers one request: read req (req_nbytes bytes, borrowed for the call),
// allocate from arena (reset after the call), write the reply into out_reply (empty, capped at
// max_reply_nbytes). Called from worker threads, several at once: it must be thread-safe.
// An empty reply is sent as an empty frame.
typedef void (*gs_server_handle_fn)(void *ud, const void *req, size_t req_nbytes, gs_arena_t *arena,
                                    gs_buf_t *out_reply);
// gs_server_error_fn: writes an error reply (code and message) into out_reply. Called from the
// broker thread for requests that never reach a handler.
typedef void (*gs_server_error_fn)(void *ud, gs_err code, const char *message, gs_buf_t *out_reply);

typedef struct {
    const char *endpoint;         // "tcp://127.0.0.1:7700"; "tcp://127.0.0.1:*" picks a port
    bool allow_remote;            // required for endpoints beyond this machine
    const char *curve_secret_key; // the server's secret key, Z85 (40 chars); NULL: no CURVE
    const char *curve_clients;    // with CURVE: a file of allowed client public keys (Z85, one
                                  // a line, '#' comments); NULL: any client with the server key
    int n_workers;                // worker threads (<= 0: 2)
    size_t max_request_nbytes;    // 0: GS_SERVER_REQUEST_MAX
    size_t max_reply_nbytes;      // 0: GS_SERVER_REPLY_MAX
    size_t arena_cap_nbytes;      // 0: GS_SERVER_ARENA_MAX
    gs_server_handle_fn handle;
    gs_server_error_fn error;
    void *ud;
} gs_server_opts_t;

// gs_server_new: creates the sockets and binds (so that a port conflict fails here), and
// starts the worker threads. Errors, with the reason in err (not logged): GS_EINVAL (bad
// options, an unparsable key), GS_EUNSUPPORTED (a remote endpoint without allow_remote, or
// CURVE without libzmq support), GS_EIO (bind failed: the endpoint and zmq's reason), GS_ENOTFOUND
// (the client key file). The caller owns *out (gs_server_destroy).
gs_err gs_server_new(const gs_server_opts_t *opts, gs_server_t **out, char *err, size_t err_nbytes);
// gs_server_endpoint: the endpoint actually bound ("tcp://127.0.0.1:41234" for a '*' port).
// Borrowed until destroy.
const char *gs_server_endpoint(const gs_server_t *self);
// gs_server_run: brokers requests until gs_server_stop. Returns GS_OK after a stop, GS_EIO on
// a socket failure (logged). Call from one thread.
gs_err gs_server_run(gs_server_t *self);
// gs_server_stop: asks gs_server_run to return within about 100 ms. Async-signal-safe (it
// only sets a flag), so a SIGINT/SIGTERM handler may call it.
void gs_server_stop(gs_server_t *self);
// gs_server_destroy: stops the workers (an in-flight request is dropped), closes the sockets
// and frees everything; NULLs *p; accepts NULL.
void gs_server_destroy(gs_server_t **p);

// gs_endpoint_is_local: whether a ZeroMQ endpoint stays on this machine: inproc://, ipc://, or
// tcp:// on 127.0.0.0/8, ::1 or "localhost". Wildcards ('*', 0.0.0.0), interface names and
// other addresses are not. Pure.
bool gs_endpoint_is_local(const char *endpoint);

// gs_curve_keypair: a new CURVE key pair as Z85 text (40 chars + NUL each). GS_EUNSUPPORTED
// when libzmq has no CURVE.
gs_err gs_curve_keypair(char out_public[41], char out_secret[41]);
// gs_curve_public: the public key of a Z85 secret key. GS_EINVAL, GS_EUNSUPPORTED.
gs_err gs_curve_public(const char *secret, char out_public[41]);
// gs_curve_read_key: a Z85 key (40 characters) from a key file into out. The file holds lines of
// text: blank and '#' lines are skipped; a line `<kind> = "KEY"` (kind "secret-key" or
// "public-key", the form of zmq/czmq certificate files and of `geoscribe serve --gen-keys`)
// gives the key of that kind; a line that is a bare key gives it whatever kind is asked.
// GS_ENOTFOUND (no file, or no key of that kind), GS_EIO, GS_EFORMAT (reason in err).
gs_err gs_curve_read_key(const char *path, const char *kind, char out_key[41], char *err,
                         size_t err_nbytes);
