// ZeroMQ PUB/SUB of progress messages (pubsub.h).
#include "query/pubsub.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/alloc.h"

struct gs_pub {
    void *ctx, *sock;
};

struct gs_sub {
    void *ctx, *sock;
};

// open_socket: a context and a socket of `type`, bound or connected as the endpoint says.
static gs_err open_socket(const char *endpoint, int type, int bind_default, void **out_ctx,
                          void **out_sock, char *bound, size_t bound_nbytes, char *err,
                          size_t err_nbytes)
{
    const char *what = type == ZMQ_PUB ? "progress publisher" : "progress subscriber";
    if (!endpoint || !*endpoint) {
        snprintf(err, err_nbytes, "%s: no endpoint", what);
        return GS_EINVAL;
    }
    int bind = bind_default;
    const char *ep = endpoint;
    if (*ep == '>' || *ep == '@')
        bind = *ep++ == '@';
    if (!strstr(ep, "://")) {
        snprintf(err, err_nbytes, "%s: \"%s\" is not a ZeroMQ endpoint (tcp://host:port, ipc://path)",
                 what, endpoint);
        return GS_EINVAL;
    }
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, type) : NULL;
    if (!sock) {
        snprintf(err, err_nbytes, "%s: %s", what, zmq_strerror(zmq_errno()));
        if (ctx)
            zmq_ctx_term(ctx);
        return GS_EIO;
    }
    int linger = 0, hwm = 1000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, type == ZMQ_PUB ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
    int rc = bind ? zmq_bind(sock, ep) : zmq_connect(sock, ep);
    if (rc != 0) {
        snprintf(err, err_nbytes, "%s: could not %s \"%s\": %s", what, bind ? "bind" : "connect to",
                 ep, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        return GS_EIO;
    }
    if (bound && bound_nbytes) {
        size_t n = bound_nbytes;
        if (!bind || zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &n) != 0)
            snprintf(bound, bound_nbytes, "%s", ep);
    }
    *out_ctx = ctx;
    *out_sock = sock;
    return GS_OK;
}

gs_err gs_pub_open(const char *endpoint, gs_pub_t **out, char *err, size_t err_nbytes)
{
    *out = NULL;
    void *ctx = NULL, *sock = NULL;
    GS_TRY(open_socket(endpoint, ZMQ_PUB, 1, &ctx, &sock, NULL, 0, err, err_nbytes));
    gs_pub_t *p = gs_xcalloc(1, sizeof *p);
    p->ctx = ctx;
    p->sock = sock;
    *out = p;
    return GS_OK;
}

gs_err gs_pub_send(gs_pub_t *self, const char *topic, const void *data, size_t nbytes)
{
    if (!self)
        return GS_EINVAL;
    if (zmq_send(self->sock, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return GS_EIO;
    // the second frame of a started message is always queued (atomic multipart delivery)
    if (zmq_send(self->sock, data, nbytes, ZMQ_DONTWAIT) < 0)
        return GS_EIO;
    return GS_OK;
}

void gs_pub_close(gs_pub_t **p, int linger_ms)
{
    if (!p || !*p)
        return;
    zmq_setsockopt((*p)->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close((*p)->sock);
    zmq_ctx_term((*p)->ctx);
    gs_free(*p);
    *p = NULL;
}

gs_err gs_sub_open(const char *endpoint, const char *topic_prefix, gs_sub_t **out, char *bound,
                   size_t bound_nbytes, char *err, size_t err_nbytes)
{
    *out = NULL;
    void *ctx = NULL, *sock = NULL;
    GS_TRY(open_socket(endpoint, ZMQ_SUB, 0, &ctx, &sock, bound, bound_nbytes, err, err_nbytes));
    const char *t = topic_prefix ? topic_prefix : "";
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, t, strlen(t));
    gs_sub_t *s = gs_xcalloc(1, sizeof *s);
    s->ctx = ctx;
    s->sock = sock;
    *out = s;
    return GS_OK;
}

gs_err gs_sub_recv(gs_sub_t *self, int timeout_ms, char *topic, size_t topic_nbytes, void *data,
                   size_t cap, size_t *out_nbytes)
{
    *out_nbytes = 0;
    zmq_pollitem_t it = {.socket = self->sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0)
        return GS_EIO;
    if (rc == 0)
        return GS_ETIMEOUT;
    char tbuf[256];
    int nt = zmq_recv(self->sock, tbuf, sizeof tbuf - 1, 0);
    if (nt < 0)
        return GS_EIO;
    tbuf[nt < (int)sizeof tbuf - 1 ? nt : (int)sizeof tbuf - 1] = 0;
    if (topic && topic_nbytes)
        snprintf(topic, topic_nbytes, "%s", tbuf);
    int more = 0;
    size_t ms = sizeof more;
    zmq_getsockopt(self->sock, ZMQ_RCVMORE, &more, &ms);
    if (!more)
        return GS_EFORMAT; // a one-frame message: not ours
    int nd = zmq_recv(self->sock, data, cap, 0);
    if (nd < 0)
        return GS_EIO;
    for (;;) { // drop any further frames
        zmq_getsockopt(self->sock, ZMQ_RCVMORE, &more, &ms);
        if (!more)
            break;
        char skip[64];
        if (zmq_recv(self->sock, skip, sizeof skip, 0) < 0)
            break;
    }
    *out_nbytes = (size_t)nd;
    return (size_t)nd > cap ? GS_ETOOBIG : GS_OK;
}

void gs_sub_close(gs_sub_t **p)
{
    if (!p || !*p)
        return;
    zmq_close((*p)->sock);
    zmq_ctx_term((*p)->ctx);
    gs_free(*p);
    *p = NULL;
}
