// The HTTP server of the query service (query/http.h) on libmicrohttpd, the only includer of
// microhttpd.h: static page files, Leaflet, the search API (the same renderer as the CLI) and
// cached thumbnails. Requests run on MHD's thread pool, each with an arena from a small pool.
#define GS_LOG_MODULE "query"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "query/format.h"
#include "query/http.h"
#include "query/server.h"

#ifndef GS_WEB_DIR
#define GS_WEB_DIR "web"
#endif
#ifndef GS_LEAFLET_DIR
#define GS_LEAFLET_DIR "/opt/geoscribe/web/node_modules/leaflet/dist"
#endif

// The arena pool: at most this many idle arenas are kept.
#define ARENA_POOL 16

struct gs_http {
    gs_search_t *search;
    gs_http_opts_t o;
    char *web_dir, *leaflet_dir, *cache_dir;
    struct MHD_Daemon *d;
    char url[96];
    pthread_mutex_t lock; // the arena pool
    gs_arena_t *pool[ARENA_POOL];
    int n_pool;
    atomic_uint_fast64_t n_tmp; // temporary thumbnail names
};

// ---- helpers --------------------------------------------------------------------------------

static gs_arena_t *arena_get(gs_http_t *h)
{
    pthread_mutex_lock(&h->lock);
    gs_arena_t *a = h->n_pool ? h->pool[--h->n_pool] : NULL;
    pthread_mutex_unlock(&h->lock);
    return a ? a : gs_arena_new(1 << 20, (size_t)1 << 30);
}

static void arena_put(gs_http_t *h, gs_arena_t *a)
{
    gs_arena_reset(a);
    pthread_mutex_lock(&h->lock);
    if (h->n_pool < ARENA_POOL) {
        h->pool[h->n_pool++] = a;
        a = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    gs_arena_destroy(&a);
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *type,
                                  const void *data, size_t n)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(n, (void *)(n ? data : ""), MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static unsigned http_status(gs_err e)
{
    switch (e) {
    case GS_EINVAL:
    case GS_EFORMAT:
    case GS_EMISMATCH:
    case GS_EUNSUPPORTED: return MHD_HTTP_BAD_REQUEST;
    case GS_ENOTFOUND: return MHD_HTTP_NOT_FOUND;
    case GS_ETOOBIG: return 413;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static enum MHD_Result send_error(struct MHD_Connection *c, gs_err e, const char *msg)
{
    gs_buf_t b;
    gs_buf_init(&b, 1 << 16);
    gs_buf_printf(&b, "{\"error\":{\"code\":%d,\"name\":\"%s\",\"message\":", (int)e,
                  gs_err_name(e));
    gs_buf_json_str(&b, msg);
    gs_buf_puts(&b, "}}\n");
    enum MHD_Result ok = send_bytes(c, http_status(e), "application/json", b.data, b.len);
    gs_buf_cleanup(&b);
    return ok;
}

static const char *content_type(const char *name)
{
    static const char *const map[][2] = {{".html", "text/html; charset=utf-8"},
                                         {".js", "application/javascript"},
                                         {".css", "text/css"},
                                         {".png", "image/png"},
                                         {".svg", "image/svg+xml"},
                                         {".json", "application/json"},
                                         {".map", "application/json"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

// send_file: a file of dir; `name` is checked (letters, digits, '.', '-', '_', and one
// "images/" folder for Leaflet), so no path leaves dir.
static enum MHD_Result send_file(struct MHD_Connection *c, const char *dir, const char *name,
                                 bool cacheable)
{
    const char *base = strncmp(name, "images/", 7) == 0 ? name + 7 : name;
    bool ok = base[0] && base[0] != '.' && strlen(name) < 128;
    for (const char *p = base; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '.' || *p == '-' || *p == '_';
    if (!ok)
        return send_error(c, GS_ENOTFOUND, "no such page");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return send_error(c, GS_ENOTFOUND, "no such page");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type(name));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", cacheable ? "max-age=3600" : "no-cache");
    enum MHD_Result res = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

// ---- /api/search ----------------------------------------------------------------------------

static const char *arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && v[0] ? v : NULL;
}

// parse_search: the query string as a request; a message in err when it is bad.
static gs_err parse_search(struct MHD_Connection *c, gs_search_req_t *r, bool *geojson, char *err,
                           size_t err_nbytes)
{
    memset(r, 0, sizeof *r);
    const char *k = arg(c, "k"), *bbox = arg(c, "bbox"), *from = arg(c, "from");
    const char *to = arg(c, "to"), *fmt = arg(c, "format"), *like = arg(c, "like_tile");
    const char *np = arg(c, "nprobe");
    uint64_t kv = 10;
    r->text = arg(c, "q");
    r->scene = arg(c, "scene");
    r->caption_contains = arg(c, "caption");
    *geojson = fmt && strcmp(fmt, "geojson") == 0;
    if (fmt && !*geojson && strcmp(fmt, "json") != 0)
        return snprintf(err, err_nbytes, "format must be json or geojson"), GS_EINVAL;
    if (k && (gs_parse_u64(k, &kv) != GS_OK || kv < 1))
        return snprintf(err, err_nbytes, "k must be a number from 1 to %d", GS_HTTP_K_MAX),
               GS_EINVAL;
    if (kv > GS_HTTP_K_MAX)
        return snprintf(err, err_nbytes, "k = %llu is over the limit of %d", (unsigned long long)kv,
                        GS_HTTP_K_MAX),
               GS_ETOOBIG;
    r->k = (size_t)kv;
    if (np && gs_parse_int(np, 1, 65536, &r->nprobe) != GS_OK)
        return snprintf(err, err_nbytes, "nprobe must be a number from 1 to 65536"), GS_EINVAL;
    if (like && gs_qid_parse(like, &r->like_tile) != GS_OK)
        return snprintf(err, err_nbytes, "like_tile must be a tile id"), GS_EINVAL;
    if (bbox) {
        if (gs_qbbox_parse(bbox, r->bbox) != GS_OK)
            return snprintf(err, err_nbytes, "bbox must be W,S,E,N in degrees"), GS_EINVAL;
        r->has_bbox = true;
    }
    if (from) {
        if (gs_qtime_parse(from, false, &r->from) != GS_OK)
            return snprintf(err, err_nbytes, "from is not an ISO 8601 date or time"), GS_EINVAL;
        r->has_from = true;
    }
    if (to) {
        if (gs_qtime_parse(to, true, &r->to) != GS_OK)
            return snprintf(err, err_nbytes, "to is not an ISO 8601 date or time"), GS_EINVAL;
        r->has_to = true;
    }
    return GS_OK;
}

static enum MHD_Result api_search(gs_http_t *h, struct MHD_Connection *c)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_req_t req;
    bool geojson = false;
    gs_err e = parse_search(c, &req, &geojson, err, sizeof err);
    if (e != GS_OK)
        return send_error(c, e, err);
    gs_arena_t *a = arena_get(h);
    gs_search_result_t res;
    e = gs_search_run(h->search, &req, a, &res, err, sizeof err);
    enum MHD_Result ok;
    if (e != GS_OK) {
        ok = send_error(c, e, err);
    } else {
        gs_buf_t b;
        gs_buf_init(&b, (size_t)1 << 30);
        e = gs_qfmt_results(&b, res.hits, res.n_hits, geojson);
        ok = e == GS_OK ? send_bytes(c, MHD_HTTP_OK,
                                     geojson ? "application/geo+json" : "application/x-ndjson",
                                     b.data, b.len)
                        : send_error(c, e, "could not format the results");
        gs_buf_cleanup(&b);
    }
    arena_put(h, a);
    return ok;
}

// ---- /api/changes (query/chsearch.h) ----------------------------------------------------------

static enum MHD_Result api_changes(gs_http_t *h, struct MHD_Connection *c)
{
    if (!h->o.changes)
        return send_error(c, GS_ENOTFOUND, "this output has no change records");
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_req_t r;
    bool geojson = false;
    gs_err e = parse_search(c, &r, &geojson, err, sizeof err);
    if (e != GS_OK)
        return send_error(c, e, err);
    gs_chsearch_req_t q = {.text = r.text,
                           .k = r.k,
                           .has_bbox = r.has_bbox,
                           .has_from = r.has_from,
                           .has_to = r.has_to,
                           .from = r.from,
                           .to = r.to,
                           .caption_contains = r.caption_contains};
    memcpy(q.bbox, r.bbox, sizeof q.bbox);
    gs_arena_t *a = arena_get(h);
    gs_chsearch_hit_t *hits = NULL;
    size_t n = 0;
    uint64_t n_cand = 0;
    enum MHD_Result ok;
    e = gs_chsearch_run(h->o.changes, &q, a, &hits, &n, &n_cand, err, sizeof err);
    if (e != GS_OK) {
        ok = send_error(c, e, err);
    } else {
        gs_buf_t b;
        gs_buf_init(&b, (size_t)1 << 30);
        e = gs_chsearch_format(&b, hits, n, geojson);
        ok = e == GS_OK ? send_bytes(c, MHD_HTTP_OK,
                                     geojson ? "application/geo+json" : "application/x-ndjson",
                                     b.data, b.len)
                        : send_error(c, e, "could not format the results");
        gs_buf_cleanup(&b);
    }
    arena_put(h, a);
    return ok;
}

// ---- thumbnails: /api/tile/<id>.png, /api/change/<pair id>/<before|after>.png ---------------

// render_cached: renders into a temporary name in the cache folder and renames it to `name`
// (concurrent requests for one thumbnail each render; the last rename wins, same bytes).
static gs_err render_cached(gs_http_t *h, const char *name,
                            gs_err (*render)(gs_http_t *h, const void *what, const char *tmp),
                            const void *what)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", h->cache_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%llu", path, (int)getpid(),
             (unsigned long long)atomic_fetch_add(&h->n_tmp, 1));
    gs_err e = render(h, what, tmp);
    if (e == GS_OK && rename(tmp, path) != 0)
        e = GS_EIO;
    unlink(tmp);
    return e;
}

// cached: 1 when the cache holds `name`.
static bool cached(gs_http_t *h, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", h->cache_dir, name);
    return gs_path_exists(path);
}

// thumb_name: 1 when `name` is one this server gives a cached thumbnail or its temporary:
// "<digits>.png", "c<digits>-before.png", "c<digits>-after.png", each optionally followed by
// ".tmp.<anything>".
static bool thumb_name(const char *name)
{
    const char *p = name + (name[0] == 'c');
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (name[0] == 'c') {
        if (strncmp(p, "-before", 7) == 0)
            p += 7;
        else if (strncmp(p, "-after", 6) == 0)
            p += 6;
        else
            return false;
    }
    return strcmp(p, ".png") == 0 || strncmp(p, ".png.tmp.", 9) == 0;
}

// cache_validate: when the cache folder's key file differs from `key` (or is missing), deletes
// the thumbnails in it (thumb_name) and records `key`. GS_EIO with the reason in err.
static gs_err cache_validate(gs_http_t *h, const char *key, char *err, size_t err_nbytes)
{
    char *kpath = gs_path_join(h->cache_dir, GS_HTTP_CACHE_KEY_FILE);
    char *old = NULL;
    size_t n = 0;
    bool same = gs_path_exists(kpath) && gs_read_file(kpath, 1 << 16, &old, &n) == GS_OK &&
                strcmp(old, key) == 0;
    gs_free(old);
    gs_err e = GS_OK;
    if (!same) {
        DIR *d = opendir(h->cache_dir);
        size_t removed = 0, failed = 0;
        for (struct dirent *de; d && (de = readdir(d));) {
            if (!thumb_name(de->d_name))
                continue;
            char *f = gs_path_join(h->cache_dir, de->d_name);
            if (unlink(f) == 0)
                removed++;
            else if (errno != ENOENT)
                failed++;
            gs_free(f);
        }
        if (d)
            closedir(d);
        if (!d || failed) {
            snprintf(err, err_nbytes,
                     "could not clear the thumbnail cache \"%s\" of thumbnails made with other "
                     "settings (%s)",
                     h->cache_dir, d ? "some files could not be deleted" : strerror(errno));
            e = GS_EIO;
        } else if (gs_write_file_atomic(kpath, key, strlen(key)) != GS_OK) {
            snprintf(err, err_nbytes, "could not write \"%s\"", kpath);
            e = GS_EIO;
        } else if (removed) {
            GS_LOG_INFO("thumbnail cache \"%s\": %zu thumbnails made with other settings removed",
                        h->cache_dir, removed);
        }
    }
    gs_free(kpath);
    return e;
}

static gs_err render_tile(gs_http_t *h, const void *what, const char *tmp)
{
    const gs_search_hit_t *hit = what;
    return h->o.thumb(h->o.thumb_ud, hit->scene_uri, hit->x, hit->y, hit->w, hit->h,
                      GS_HTTP_THUMB_SIDE, tmp);
}

// GS_HTTP_ID_TEXT: room for an id's text in a path (gs_qid_parse's forms are shorter).
#define GS_HTTP_ID_TEXT 32

// parse_id: the n bytes of text as an id (gs_qid_parse). GS_EINVAL.
static gs_err parse_id(const char *text, size_t n, uint64_t *id)
{
    char idtext[GS_HTTP_ID_TEXT];
    if (n < 1 || n >= sizeof idtext)
        return GS_EINVAL;
    memcpy(idtext, text, n);
    idtext[n] = '\0';
    return gs_qid_parse(idtext, id) == GS_OK ? GS_OK : GS_EINVAL;
}

// parse_png_id: "<id>.png" (the whole of text) into *id: GS_ENOTFOUND when it is not of that
// form, GS_EINVAL when the id is not one.
static gs_err parse_png_id(const char *text, size_t n, uint64_t *id)
{
    if (n < 5 || n - 4 >= GS_HTTP_ID_TEXT || strncmp(text + n - 4, ".png", 4) != 0)
        return GS_ENOTFOUND;
    return parse_id(text, n - 4, id);
}

static enum MHD_Result api_tile(gs_http_t *h, struct MHD_Connection *c, const char *rest)
{
    uint64_t id;
    gs_err e = parse_png_id(rest, strlen(rest), &id);
    if (e != GS_OK)
        return send_error(c, e,
                          e == GS_EINVAL ? "not a tile id" : "thumbnails are /api/tile/<id>.png");
    char name[48];
    snprintf(name, sizeof name, "%llu.png", (unsigned long long)id);
    if (cached(h, name))
        return send_file(c, h->cache_dir, name, true);
    if (!h->o.thumb)
        return send_error(c, GS_ENOTFOUND, "thumbnails are not available from this server");
    gs_arena_t *a = arena_get(h);
    gs_search_hit_t hit;
    e = gs_search_tile(h->search, id, a, &hit);
    if (e == GS_OK && !hit.scene_uri[0])
        e = GS_ENOTFOUND;
    if (e == GS_OK)
        e = render_cached(h, name, render_tile, &hit);
    arena_put(h, a);
    if (e != GS_OK) {
        char msg[128];
        snprintf(msg, sizeof msg, "no thumbnail for tile %llu: %s", (unsigned long long)id,
                 gs_strerror(e));
        return send_error(c, e == GS_ENOTFOUND ? e : GS_EIO, msg);
    }
    return send_file(c, h->cache_dir, name, true);
}

typedef struct {
    gs_chsearch_pair_t pair;
    bool after;
} change_side_t;

static gs_err render_change(gs_http_t *h, const void *what, const char *tmp)
{
    const change_side_t *s = what;
    return h->o.change_thumb(h->o.change_thumb_ud, s->pair.before_uri, s->pair.after_uri, s->after,
                             s->pair.location, GS_HTTP_THUMB_SIDE, tmp);
}

// api_change_thumb: rest is "<pair id>/before.png" or "<pair id>/after.png".
static enum MHD_Result api_change_thumb(gs_http_t *h, struct MHD_Connection *c, const char *rest)
{
    const char *slash = strchr(rest, '/');
    change_side_t s = {0};
    uint64_t id = 0;
    gs_err e = GS_ENOTFOUND;
    if (slash && (strcmp(slash, "/before.png") == 0 || strcmp(slash, "/after.png") == 0)) {
        s.after = slash[1] == 'a';
        e = parse_id(rest, (size_t)(slash - rest), &id);
    }
    if (e != GS_OK)
        return send_error(c, e,
                          e == GS_EINVAL ? "not a change pair id"
                                         : "change thumbnails are "
                                           "/api/change/<pair id>/before.png or after.png");
    char name[64];
    snprintf(name, sizeof name, "c%llu-%s.png", (unsigned long long)id,
             s.after ? "after" : "before");
    if (cached(h, name))
        return send_file(c, h->cache_dir, name, true);
    if (!h->o.changes)
        return send_error(c, GS_ENOTFOUND, "this output has no change records");
    if (!h->o.change_thumb)
        return send_error(c, GS_ENOTFOUND,
                          "change thumbnails are not available from this server (the output "
                          "holds no changes.yaml: run `geoscribe changes` again to record it)");
    gs_arena_t *a = arena_get(h);
    e = gs_chsearch_pair(h->o.changes, id, a, &s.pair);
    if (e == GS_OK)
        e = render_cached(h, name, render_change, &s);
    arena_put(h, a);
    if (e != GS_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "no %s thumbnail for change pair %llu: %s",
                 s.after ? "after" : "before", (unsigned long long)id, gs_strerror(e));
        return send_error(c, e == GS_ENOTFOUND ? e : GS_EIO, msg);
    }
    return send_file(c, h->cache_dir, name, true);
}

// ---- routing --------------------------------------------------------------------------------

static enum MHD_Result api_health(gs_http_t *h, struct MHD_Connection *c)
{
    gs_buf_t b;
    gs_buf_init(&b, 4096);
    gs_buf_puts(&b, "{\"status\":\"ok\",\"version\":\"" GS_VERSION "\",\"model_id\":");
    gs_buf_json_str(&b, gs_search_model_id(h->search));
    gs_buf_printf(&b, ",\"n_vectors\":%zu,\"dim\":%d,\"n_changes\":%zu}\n",
                  gs_search_ntotal(h->search), gs_search_dim(h->search),
                  h->o.changes ? gs_chsearch_n_records(h->o.changes) : 0);
    enum MHD_Result ok = send_bytes(c, MHD_HTTP_OK, "application/json", b.data, b.len);
    gs_buf_cleanup(&b);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)req_cls;
    gs_http_t *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, GS_EINVAL, "only GET is served");
    if (*upload_data_size)
        return send_error(c, GS_ETOOBIG, "requests have no body");
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return send_file(c, h->web_dir, "index.html", false);
    if (strcmp(url, "/api/search") == 0)
        return api_search(h, c);
    if (strcmp(url, "/api/health") == 0)
        return api_health(h, c);
    if (strcmp(url, "/api/changes") == 0)
        return api_changes(h, c);
    if (strncmp(url, "/api/tile/", 10) == 0)
        return api_tile(h, c, url + 10);
    if (strncmp(url, "/api/change/", 12) == 0)
        return api_change_thumb(h, c, url + 12);
    if (strncmp(url, "/leaflet/", 9) == 0)
        return send_file(c, h->leaflet_dir, url + 9, true);
    if (strchr(url + 1, '/') == NULL)
        return send_file(c, h->web_dir, url + 1, false);
    return send_error(c, GS_ENOTFOUND, "no such page");
}

// ---- lifecycle ------------------------------------------------------------------------------

static gs_err parse_addr(const char *addr, struct sockaddr_in *sa, bool *is_local)
{
    char host[64] = "127.0.0.1";
    const char *port = addr, *colon = strrchr(addr, ':');
    if (colon) {
        size_t n = (size_t)(colon - addr);
        if (n >= sizeof host)
            return GS_EINVAL;
        if (n > 0) {
            memcpy(host, addr, n);
            host[n] = '\0';
        }
        port = colon + 1;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    int p;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (gs_parse_int(port, 0, 65535, &p) != GS_OK || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return GS_EINVAL;
    sa->sin_port = htons((uint16_t)p);
    *is_local = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
    return GS_OK;
}

static gs_err check_assets(gs_http_t *h, char *err, size_t err_nbytes)
{
    const char *need[][2] = {{h->web_dir, "index.html"},
                             {h->web_dir, "app.js"},
                             {h->web_dir, "app.css"},
                             {h->leaflet_dir, "leaflet.js"},
                             {h->leaflet_dir, "leaflet.css"}};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char *p = gs_path_join(need[i][0], need[i][1]);
        int ok = gs_path_exists(p);
        if (!ok)
            snprintf(err, err_nbytes, "web assets missing: \"%s\" not found (%s)", p,
                     i < 3 ? "the page sources are web/ in the source tree; pass --web DIR"
                           : "Leaflet comes from npm: run deploy/setup.sh, or pass --leaflet "
                             "DIR with Leaflet's dist/ folder");
        gs_free(p);
        if (!ok)
            return GS_ENOTFOUND;
    }
    return GS_OK;
}

gs_err gs_http_start(gs_search_t *search, const gs_http_opts_t *opts, gs_http_t **out, char *err,
                     size_t err_nbytes)
{
    *out = NULL;
    struct sockaddr_in sa;
    bool local = false;
    if (!opts || !opts->addr || parse_addr(opts->addr, &sa, &local) != GS_OK) {
        snprintf(err, err_nbytes, "bad HTTP address \"%s\" (want [IPV4:]PORT)",
                 opts && opts->addr ? opts->addr : "");
        return GS_EINVAL;
    }
    if (!local && !opts->allow_remote) {
        snprintf(err, err_nbytes,
                 "HTTP address \"%s\" is reachable from other machines: "
                 "that needs --allow-remote (the HTTP API has no authentication)",
                 opts->addr);
        return GS_EUNSUPPORTED;
    }
    gs_http_t *h = gs_xcalloc(1, sizeof *h);
    h->search = search;
    h->o = *opts;
    h->web_dir = gs_xstrdup(opts->web_dir ? opts->web_dir : GS_WEB_DIR);
    h->leaflet_dir = gs_xstrdup(opts->leaflet_dir ? opts->leaflet_dir : GS_LEAFLET_DIR);
    h->cache_dir = opts->cache_dir ? gs_xstrdup(opts->cache_dir)
                                   : gs_xasprintf("%s/cache/thumbs", gs_search_dir(search));
    pthread_mutex_init(&h->lock, NULL);
    gs_err e = check_assets(h, err, err_nbytes);
    if (e == GS_OK && gs_mkdir_p(h->cache_dir) != GS_OK) {
        snprintf(err, err_nbytes,
                 "could not create the thumbnail cache \"%s\" (pass --cache "
                 "DIR)",
                 h->cache_dir);
        e = GS_EIO;
    }
    if (e == GS_OK && opts->cache_key)
        e = cache_validate(h, opts->cache_key, err, err_nbytes);
    if (e == GS_OK) {
        unsigned n_threads = opts->n_threads > 0 ? (unsigned)opts->n_threads : 4;
        h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                MHD_OPTION_THREAD_POOL_SIZE, n_threads, MHD_OPTION_CONNECTION_LIMIT,
                                256u, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
        if (!h->d) {
            snprintf(err, err_nbytes, "could not serve HTTP on \"%s\": %s", opts->addr,
                     strerror(errno));
            e = GS_EIO;
        }
    }
    if (e != GS_OK) {
        gs_http_stop(&h);
        return e;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(h->url, sizeof h->url, "http://%s:%u/", ip,
             info ? (unsigned)info->port : (unsigned)ntohs(sa.sin_port));
    *out = h;
    return GS_OK;
}

const char *gs_http_url(const gs_http_t *self)
{
    return self->url;
}

void gs_http_stop(gs_http_t **p)
{
    if (!p || !*p)
        return;
    gs_http_t *h = *p;
    if (h->d)
        MHD_stop_daemon(h->d);
    for (int i = 0; i < h->n_pool; i++)
        gs_arena_destroy(&h->pool[i]);
    pthread_mutex_destroy(&h->lock);
    gs_free(h->web_dir);
    gs_free(h->leaflet_dir);
    gs_free(h->cache_dir);
    gs_free(h);
    *p = NULL;
}
