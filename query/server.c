// The ZeroMQ transport of the query service (query/server.h): a ROUTER front socket, a
// least-recently-used broker in the caller's thread and worker threads on an inproc ROUTER
// back socket, plus an optional ZAP handler thread for CURVE client keys.
// Frames: a request arrives as [client id][empty delimiter (REQ)][body]; every frame before
// the body is the envelope, sent back untouched in front of the reply.
#define GS_LOG_MODULE "query"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/fs.h"
#include "common/log.h"
#include "query/server.h"

// MAX_FRAMES: the most frames of one message (envelope + body); more is malformed and dropped.
#define MAX_FRAMES 16
#define READY "R"

struct gs_server {
    gs_server_opts_t o;
    void *ctx, *front, *back;
    char endpoint[256];
    char back_ep[64];
    pthread_t *workers;
    int n_workers, n_started;
    void *zap_sock; // REP on inproc://zeromq.zap.01, used by the ZAP thread
    pthread_t zap;
    bool zap_started;
    uint8_t (*client_keys)[32]; // allowed CURVE client public keys (binary)
    size_t n_client_keys;
    int *idle; // (n_workers) idle worker indices, a FIFO
    int n_idle, idle_head;
    volatile sig_atomic_t stop;
};

typedef struct {
    gs_server_t *srv;
    int idx;
} worker_arg_t;

// ---- messages -------------------------------------------------------------------------------

// recv_parts: one multipart message into parts (at most MAX_FRAMES, the rest drained).
// Returns the number of frames kept, 0 when the message had too many, -1 on a socket error.
static int recv_parts(void *sock, zmq_msg_t *parts)
{
    int n = 0, more = 1, over = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < MAX_FRAMES) {
            zmq_msg_init(&parts[n]);
            zmq_msg_move(&parts[n++], &m); // zmq_msg_t is never copied by assignment
            zmq_msg_close(&m);
        } else {
            over = 1;
            zmq_msg_close(&m);
        }
    }
    if (over) {
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        return 0;
    }
    return n;
}

static void close_parts(zmq_msg_t *parts, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

// send_parts: sends parts[0..n) (consumed), then `tail` (tail_nbytes bytes) when non-NULL.
static int send_parts(void *sock, zmq_msg_t *parts, int n, const void *tail, size_t tail_nbytes)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int more = i + 1 < n || tail != NULL;
        if (zmq_msg_send(&parts[i], sock, more ? ZMQ_SNDMORE : 0) < 0)
            rc = -1;
    }
    if (rc == 0 && tail && zmq_send(sock, tail, tail_nbytes, 0) < 0)
        rc = -1;
    close_parts(parts, n);
    return rc;
}

// ---- workers --------------------------------------------------------------------------------

static void *worker_main(void *p)
{
    worker_arg_t *a = p;
    gs_server_t *s = a->srv;
    void *sock = zmq_socket(s->ctx, ZMQ_DEALER);
    char id[16];
    int n_id = snprintf(id, sizeof id, "w%d", a->idx), zero = 0;
    gs_arena_t *arena = gs_arena_new(1 << 20, s->o.arena_cap_nbytes);
    gs_buf_t reply;
    gs_buf_init(&reply, s->o.max_reply_nbytes);
    if (!sock || zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, (size_t)n_id) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(sock, s->back_ep) != 0 || zmq_send(sock, READY, 1, 0) < 0) {
        GS_LOG_ERROR("query worker %d could not start: %s", a->idx, zmq_strerror(errno));
        goto out;
    }
    zmq_msg_t parts[MAX_FRAMES];
    for (;;) {
        int n = recv_parts(sock, parts);
        if (n < 0)
            break; // ETERM: the server is shutting down
        if (n == 0)
            continue;
        gs_buf_reset(&reply);
        gs_arena_reset(arena);
        s->o.handle(s->o.ud, zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]), arena,
                    &reply);
        zmq_msg_close(&parts[n - 1]);
        if (send_parts(sock, parts, n - 1, reply.data ? reply.data : "", reply.len) < 0 &&
            errno == ETERM)
            break;
    }
out:
    if (sock)
        zmq_close(sock);
    gs_buf_cleanup(&reply);
    gs_arena_destroy(&arena);
    gs_free(a);
    return NULL;
}

// ---- ZAP (CURVE client keys) ----------------------------------------------------------------

static void *zap_main(void *p)
{
    gs_server_t *s = p;
    void *sock = s->zap_sock; // bound by gs_server_new, handed over to this thread
    zmq_msg_t parts[MAX_FRAMES];
    for (;;) {
        int n = recv_parts(sock, parts);
        if (n < 0)
            break;
        // version, request id, domain, address, routing id, mechanism, credentials...
        bool ok = false;
        if (n >= 7 && zmq_msg_size(&parts[5]) == 5 &&
            memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 && zmq_msg_size(&parts[6]) == 32)
            for (size_t i = 0; i < s->n_client_keys && !ok; i++)
                ok = memcmp(zmq_msg_data(&parts[6]), s->client_keys[i], 32) == 0;
        const char *code = ok ? "200" : "400", *text = ok ? "OK" : "client key not allowed";
        if (!ok)
            GS_LOG_INFO("refused a CURVE client whose key is not in the allowed list");
        zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2)
            zmq_send(sock, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
        else
            zmq_send(sock, "", 0, ZMQ_SNDMORE);
        zmq_send(sock, code, 3, ZMQ_SNDMORE);
        zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(sock, ok ? "client" : "", ok ? 6 : 0, ZMQ_SNDMORE);
        zmq_send(sock, "", 0, 0);
        close_parts(parts, n);
    }
    zmq_close(sock);
    return NULL;
}

// key_line: one line of a key file: a bare Z85 key (40 characters), or `name = "KEY"` (name
// "public-key" or "secret-key", the form of zmq certificate files). Returns 1 with the key in
// out_key and the name in out_name ("" for a bare key); 0 for a blank line, a comment or
// anything else; -1 for a `name = value` line whose value is not a Z85 key (name set).
// Z85 keys may hold '#' and '=', so a 40-character Z85 line is a key before anything else.
static int key_line(char *line, char out_key[41], char *out_name, size_t name_nbytes)
{
    uint8_t bin[32];
    out_name[0] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    if (len == 40 && zmq_z85_decode(bin, line)) {
        memcpy(out_key, line, 41);
        return 1;
    }
    if (!len || line[0] == '#')
        return 0;
    size_t k = strspn(line, "abcdefghijklmnopqrstuvwxyz-_");
    const char *p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    if (k == 0 || k >= name_nbytes || *p++ != '=')
        return 0;
    memcpy(out_name, line, k);
    out_name[k] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    p += *p == '"';
    size_t vlen = strcspn(p, "\"");
    if (vlen != 40)
        return -1;
    memcpy(out_key, p, 40);
    out_key[40] = '\0';
    return zmq_z85_decode(bin, out_key) ? 1 : -1;
}

// load_client_keys: the allowed client keys of a file (bare keys or "public-key = ..." lines).
static gs_err load_client_keys(gs_server_t *s, const char *path, char *err, size_t err_nbytes)
{
    char *text = NULL, key[41], name[32];
    size_t n = 0, cap = 16;
    if (!gs_path_exists(path)) {
        snprintf(err, err_nbytes, "client key file \"%s\" does not exist", path);
        return GS_ENOTFOUND;
    }
    gs_err e = gs_read_file(path, 1 << 20, &text, &n);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not read client key file \"%s\": %s", path,
                 gs_strerror(e));
        return e;
    }
    s->client_keys = gs_xmalloc(cap * sizeof *s->client_keys);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        int r = key_line(line, key, name, sizeof name);
        if (r < 0 && strcmp(name, "public-key") == 0) {
            snprintf(err, err_nbytes, "client key file \"%s\": a public-key is not a Z85 key",
                     path);
            gs_free(text);
            return GS_EFORMAT;
        }
        if (r <= 0 || (name[0] && strcmp(name, "public-key") != 0))
            continue;
        if (s->n_client_keys == cap) {
            cap *= 2;
            s->client_keys = gs_xrealloc(s->client_keys, cap * sizeof *s->client_keys);
        }
        zmq_z85_decode(s->client_keys[s->n_client_keys++], key);
    }
    gs_free(text);
    if (s->n_client_keys == 0) {
        snprintf(err, err_nbytes, "client key file \"%s\" holds no key", path);
        return GS_EFORMAT;
    }
    return GS_OK;
}

// ---- lifecycle ------------------------------------------------------------------------------

static gs_err setup_front(gs_server_t *s, char *err, size_t err_nbytes)
{
    int zero = 0, one = 1;
    int64_t hard = (int64_t)s->o.max_request_nbytes * GS_SERVER_HARD_FACTOR;
    s->front = zmq_socket(s->ctx, ZMQ_ROUTER);
    if (!s->front || zmq_setsockopt(s->front, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s->front, ZMQ_MAXMSGSIZE, &hard, sizeof hard) != 0) {
        snprintf(err, err_nbytes, "could not create a socket: %s", zmq_strerror(errno));
        return GS_EIO;
    }
    if (s->o.curve_secret_key) {
        if (!zmq_has("curve")) {
            snprintf(err, err_nbytes, "this libzmq has no CURVE support");
            return GS_EUNSUPPORTED;
        }
        if (strlen(s->o.curve_secret_key) != 40 ||
            zmq_setsockopt(s->front, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(s->front, ZMQ_CURVE_SECRETKEY, s->o.curve_secret_key, 40) != 0) {
            snprintf(err, err_nbytes, "the CURVE secret key is not a 40-character Z85 key");
            return GS_EINVAL;
        }
        if (s->n_client_keys && zmq_setsockopt(s->front, ZMQ_ZAP_DOMAIN, "geoscribe", 9) != 0) {
            snprintf(err, err_nbytes, "could not set the ZAP domain: %s", zmq_strerror(errno));
            return GS_EIO;
        }
    }
    if (zmq_bind(s->front, s->o.endpoint) != 0) {
        snprintf(err, err_nbytes, "could not bind \"%s\": %s", s->o.endpoint, zmq_strerror(errno));
        return GS_EIO;
    }
    size_t len = sizeof s->endpoint;
    if (zmq_getsockopt(s->front, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0)
        snprintf(s->endpoint, sizeof s->endpoint, "%s", s->o.endpoint);
    return GS_OK;
}

static gs_err start_threads(gs_server_t *s, char *err, size_t err_nbytes)
{
    int zero = 0;
    snprintf(s->back_ep, sizeof s->back_ep, "inproc://gs-query-workers-%p", (void *)s);
    s->back = zmq_socket(s->ctx, ZMQ_ROUTER);
    if (!s->back || zmq_setsockopt(s->back, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(s->back, s->back_ep) != 0) {
        snprintf(err, err_nbytes, "could not create the worker socket: %s", zmq_strerror(errno));
        return GS_EIO;
    }
    s->workers = gs_xcalloc((size_t)s->n_workers, sizeof *s->workers);
    s->idle = gs_xcalloc((size_t)s->n_workers, sizeof *s->idle);
    for (int i = 0; i < s->n_workers; i++) {
        worker_arg_t *a = gs_xmalloc(sizeof *a);
        *a = (worker_arg_t){s, i};
        if (pthread_create(&s->workers[i], NULL, worker_main, a) != 0) {
            gs_free(a);
            snprintf(err, err_nbytes, "could not start a worker thread");
            return GS_EIO;
        }
        s->n_started++;
    }
    return GS_OK;
}

gs_err gs_server_new(const gs_server_opts_t *opts, gs_server_t **out, char *err, size_t err_nbytes)
{
    *out = NULL;
    if (!opts || !opts->endpoint || !opts->handle || !opts->error) {
        snprintf(err, err_nbytes, "server options incomplete");
        return GS_EINVAL;
    }
    if (!opts->allow_remote && !gs_endpoint_is_local(opts->endpoint)) {
        snprintf(err, err_nbytes,
                 "\"%s\" is reachable from other machines: binding beyond "
                 "loopback needs --allow-remote (and CURVE keys: --curve-secret-key)",
                 opts->endpoint);
        return GS_EUNSUPPORTED;
    }
    gs_server_t *s = gs_xcalloc(1, sizeof *s);
    s->o = *opts;
    if (!s->o.max_request_nbytes)
        s->o.max_request_nbytes = GS_SERVER_REQUEST_MAX;
    if (!s->o.max_reply_nbytes)
        s->o.max_reply_nbytes = GS_SERVER_REPLY_MAX;
    if (!s->o.arena_cap_nbytes)
        s->o.arena_cap_nbytes = GS_SERVER_ARENA_MAX;
    s->n_workers = opts->n_workers > 0 ? opts->n_workers : 2;
    s->ctx = zmq_ctx_new();
    gs_err e = s->ctx ? GS_OK : GS_EIO;
    if (!s->ctx)
        snprintf(err, err_nbytes, "could not create a ZeroMQ context: %s", zmq_strerror(errno));
    if (e == GS_OK && opts->curve_clients) {
        if (!opts->curve_secret_key) {
            snprintf(err, err_nbytes, "client keys need the server's CURVE secret key");
            e = GS_EINVAL;
        } else {
            e = load_client_keys(s, opts->curve_clients, err, err_nbytes);
        }
    }
    if (e == GS_OK && s->n_client_keys) {
        // The ZAP handler is bound before the front socket, so it answers the first client.
        int zero = 0;
        s->zap_sock = zmq_socket(s->ctx, ZMQ_REP);
        if (!s->zap_sock || zmq_setsockopt(s->zap_sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_bind(s->zap_sock, "inproc://zeromq.zap.01") != 0) {
            snprintf(err, err_nbytes, "could not bind the ZAP handler: %s", zmq_strerror(errno));
            e = GS_EIO;
        } else if (pthread_create(&s->zap, NULL, zap_main, s) != 0) {
            snprintf(err, err_nbytes, "could not start the ZAP thread");
            e = GS_EIO;
        } else {
            s->zap_started = true;
        }
    }
    if (e == GS_OK)
        e = setup_front(s, err, err_nbytes);
    if (e == GS_OK)
        e = start_threads(s, err, err_nbytes);
    if (e != GS_OK) {
        gs_server_destroy(&s);
        return e;
    }
    *out = s;
    return GS_OK;
}

const char *gs_server_endpoint(const gs_server_t *self)
{
    return self->endpoint;
}

void gs_server_stop(gs_server_t *self)
{
    self->stop = 1;
}

void gs_server_destroy(gs_server_t **p)
{
    if (!p || !*p)
        return;
    gs_server_t *s = *p;
    s->stop = 1;
    if (s->ctx)
        zmq_ctx_shutdown(s->ctx); // blocked calls in the threads return ETERM
    for (int i = 0; i < s->n_started; i++)
        pthread_join(s->workers[i], NULL);
    if (s->zap_started)
        pthread_join(s->zap, NULL);
    else if (s->zap_sock)
        zmq_close(s->zap_sock);
    if (s->front)
        zmq_close(s->front);
    if (s->back)
        zmq_close(s->back);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    gs_free(s->workers);
    gs_free(s->idle);
    gs_free(s->client_keys);
    gs_free(s);
    *p = NULL;
}

// ---- the broker -----------------------------------------------------------------------------

static void push_idle(gs_server_t *s, int idx)
{
    if (idx < 0 || idx >= s->n_workers || s->n_idle >= s->n_workers)
        return;
    s->idle[(s->idle_head + s->n_idle) % s->n_workers] = idx;
    s->n_idle++;
}

static int pop_idle(gs_server_t *s)
{
    int idx = s->idle[s->idle_head];
    s->idle_head = (s->idle_head + 1) % s->n_workers;
    s->n_idle--;
    return idx;
}

// from_back: a worker is ready, or sends a reply to forward.
static int from_back(gs_server_t *s)
{
    zmq_msg_t parts[MAX_FRAMES];
    int n = recv_parts(s->back, parts);
    if (n <= 0)
        return n;
    char id[16] = {0};
    size_t idn = zmq_msg_size(&parts[0]);
    memcpy(id, zmq_msg_data(&parts[0]), idn < sizeof id - 1 ? idn : sizeof id - 1);
    int idx = -1;
    if (id[0] == 'w')
        sscanf(id + 1, "%d", &idx);
    push_idle(s, idx);
    if (n >= 3) // [worker][envelope...][reply]
        send_parts(s->front, parts + 1, n - 1, NULL, 0);
    else
        close_parts(parts + 1, n - 1);
    zmq_msg_close(&parts[0]);
    return 1;
}

// from_front: a request: refused (too big) or handed to the next idle worker.
static int from_front(gs_server_t *s)
{
    zmq_msg_t parts[MAX_FRAMES];
    int n = recv_parts(s->front, parts);
    if (n < 0)
        return -1;
    if (n < 2) { // too many frames, or no body
        GS_LOG_DEBUG("dropped a malformed message of %d frames", n);
        close_parts(parts, n);
        return 1;
    }
    size_t nbytes = zmq_msg_size(&parts[n - 1]);
    if (nbytes > s->o.max_request_nbytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "request of %zu bytes is over the limit of %zu bytes", nbytes,
                 s->o.max_request_nbytes);
        gs_buf_t b;
        gs_buf_init(&b, 1 << 16);
        s->o.error(s->o.ud, GS_ETOOBIG, msg, &b);
        zmq_msg_close(&parts[n - 1]);
        send_parts(s->front, parts, n - 1, b.data ? b.data : "", b.len);
        gs_buf_cleanup(&b);
        return 1;
    }
    char id[16];
    int idn = snprintf(id, sizeof id, "w%d", pop_idle(s));
    if (zmq_send(s->back, id, (size_t)idn, ZMQ_SNDMORE) < 0) {
        close_parts(parts, n);
        return -1;
    }
    return send_parts(s->back, parts, n, NULL, 0) < 0 ? -1 : 1;
}

gs_err gs_server_run(gs_server_t *self)
{
    while (!self->stop) {
        zmq_pollitem_t items[2] = {{self->back, 0, ZMQ_POLLIN, 0}, {self->front, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, self->n_idle > 0 ? 2 : 1, 100);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ETERM)
                break;
            GS_LOG_ERROR("query server: poll failed: %s", zmq_strerror(errno));
            return GS_EIO;
        }
        if ((items[0].revents & ZMQ_POLLIN) && from_back(self) < 0 && errno != EINTR) {
            if (errno == ETERM)
                break;
            GS_LOG_ERROR("query server: worker socket failed: %s", zmq_strerror(errno));
            return GS_EIO;
        }
        if (self->n_idle > 0 && (items[1].revents & ZMQ_POLLIN) && from_front(self) < 0 &&
            errno != EINTR) {
            if (errno == ETERM)
                break;
            GS_LOG_ERROR("query server: front socket failed: %s", zmq_strerror(errno));
            return GS_EIO;
        }
    }
    return GS_OK;
}

// ---- endpoints and keys ---------------------------------------------------------------------

bool gs_endpoint_is_local(const char *ep)
{
    if (!ep)
        return false;
    if (strncmp(ep, "inproc://", 9) == 0 || strncmp(ep, "ipc://", 6) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *h = ep + 6;
    if (strchr(h, ';')) // "tcp://src;dst" source-address form: judge the bound part only
        h = strchr(h, ';') + 1;
    if (strncmp(h, "localhost:", 10) == 0 || strncmp(h, "[::1]:", 6) == 0)
        return true;
    if (strncmp(h, "127.", 4) != 0)
        return false;
    // 127.a.b.c: digits and dots up to the port
    for (h += 4; *h && *h != ':'; h++)
        if (!(*h == '.' || (*h >= '0' && *h <= '9')))
            return false;
    return *h == ':';
}

gs_err gs_curve_keypair(char out_public[41], char out_secret[41])
{
    if (!zmq_has("curve"))
        return GS_EUNSUPPORTED;
    return zmq_curve_keypair(out_public, out_secret) == 0 ? GS_OK : GS_EUNSUPPORTED;
}

gs_err gs_curve_public(const char *secret, char out_public[41])
{
    if (!secret || strlen(secret) != 40)
        return GS_EINVAL;
    if (!zmq_has("curve"))
        return GS_EUNSUPPORTED;
    return zmq_curve_public(out_public, secret) == 0 ? GS_OK : GS_EINVAL;
}

gs_err gs_curve_read_key(const char *path, const char *kind, char out_key[41], char *err,
                         size_t err_nbytes)
{
    char *text = NULL, name[32];
    size_t n = 0;
    if (!gs_path_exists(path)) {
        snprintf(err, err_nbytes, "key file \"%s\" does not exist", path);
        return GS_ENOTFOUND;
    }
    gs_err e = gs_read_file(path, 1 << 16, &text, &n);
    if (e != GS_OK) {
        snprintf(err, err_nbytes, "could not read key file \"%s\": %s", path, gs_strerror(e));
        return e;
    }
    e = GS_ENOTFOUND;
    for (char *line = text, *next; line && *line && e == GS_ENOTFOUND; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        int r = key_line(line, out_key, name, sizeof name);
        if (r < 0 && strcmp(name, kind) == 0) {
            snprintf(err, err_nbytes, "key file \"%s\": the %s is not a 40-character Z85 key", path,
                     kind);
            e = GS_EFORMAT;
        } else if (r > 0 && (!name[0] || strcmp(name, kind) == 0)) {
            e = GS_OK;
        }
    }
    if (e == GS_ENOTFOUND)
        snprintf(err, err_nbytes, "key file \"%s\" holds no %s", path, kind);
    gs_free(text);
    return e;
}
