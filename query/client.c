// The query service client transport (query/client.h): a REQ socket in relaxed, correlated
// mode, so that a request that timed out does not wedge the socket.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/alloc.h"
#include "query/client.h"

struct gs_qclient {
    void *ctx, *sock;
    int timeout_ms;
    size_t max_reply_nbytes;
};

static gs_err set_curve(void *sock, const gs_qclient_opts_t *o, char *err, size_t err_nbytes)
{
    char pub[41], sec[41];
    if (!zmq_has("curve")) {
        snprintf(err, err_nbytes, "this libzmq has no CURVE support");
        return GS_EUNSUPPORTED;
    }
    if (o->curve_secret_key) {
        if (strlen(o->curve_secret_key) != 40 || zmq_curve_public(pub, o->curve_secret_key)) {
            snprintf(err, err_nbytes, "the client secret key is not a 40-character Z85 key");
            return GS_EINVAL;
        }
        memcpy(sec, o->curve_secret_key, 41);
    } else if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, err_nbytes, "could not make a CURVE key pair: %s", zmq_strerror(errno));
        return GS_EIO;
    }
    if (strlen(o->curve_server_key) != 40 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->curve_server_key, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40) != 0) {
        snprintf(err, err_nbytes, "the server key is not a 40-character Z85 key");
        return GS_EINVAL;
    }
    return GS_OK;
}

gs_err gs_qclient_open(const char *endpoint, const gs_qclient_opts_t *opts, gs_qclient_t **out,
                       char *err, size_t err_nbytes)
{
    gs_qclient_opts_t o = opts ? *opts : (gs_qclient_opts_t){0};
    *out = NULL;
    gs_qclient_t *c = gs_xcalloc(1, sizeof *c);
    c->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : 30000;
    c->max_reply_nbytes = o.max_reply_nbytes ? o.max_reply_nbytes : (size_t)256 << 20;
    int zero = 0, one = 1;
    int64_t max = (int64_t)c->max_reply_nbytes;
    gs_err e = GS_OK;
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_REQ) : NULL;
    if (!c->sock || zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_REQ_RELAXED, &one, sizeof one) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_REQ_CORRELATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof c->timeout_ms) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms) != 0) {
        snprintf(err, err_nbytes, "could not create a socket: %s", zmq_strerror(errno));
        e = GS_EIO;
    }
    if (e == GS_OK && o.curve_server_key)
        e = set_curve(c->sock, &o, err, err_nbytes);
    if (e == GS_OK && zmq_connect(c->sock, endpoint) != 0) {
        snprintf(err, err_nbytes, "could not connect to \"%s\": %s", endpoint, zmq_strerror(errno));
        e = GS_EINVAL;
    }
    if (e != GS_OK) {
        gs_qclient_close(&c);
        return e;
    }
    *out = c;
    return GS_OK;
}

gs_err gs_qclient_call(gs_qclient_t *self, const void *req, size_t req_nbytes, gs_buf_t *reply,
                       char *err, size_t err_nbytes)
{
    gs_buf_reset(reply);
    if (zmq_send(self->sock, req_nbytes ? req : "", req_nbytes, 0) < 0) {
        if (errno == EAGAIN) {
            snprintf(err, err_nbytes, "no server took the request within %d ms", self->timeout_ms);
            return GS_ETIMEOUT;
        }
        snprintf(err, err_nbytes, "could not send the request: %s", zmq_strerror(errno));
        return GS_EIO;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->sock, 0) < 0) {
        int en = errno;
        zmq_msg_close(&m);
        if (en == EAGAIN) {
            snprintf(err, err_nbytes, "no reply within %d ms", self->timeout_ms);
            return GS_ETIMEOUT;
        }
        snprintf(err, err_nbytes, "could not receive the reply: %s", zmq_strerror(en));
        return GS_EIO;
    }
    gs_err e = gs_buf_append(reply, zmq_msg_data(&m), zmq_msg_size(&m));
    if (e == GS_ETOOBIG)
        snprintf(err, err_nbytes, "a reply of %zu bytes is over the limit", zmq_msg_size(&m));
    zmq_msg_close(&m);
    return e;
}

void gs_qclient_close(gs_qclient_t **p)
{
    if (!p || !*p)
        return;
    if ((*p)->sock)
        zmq_close((*p)->sock);
    if ((*p)->ctx)
        zmq_ctx_term((*p)->ctx);
    gs_free(*p);
    *p = NULL;
}
