// `geoscribe query`: text-to-image retrieval over an ingested output, locally (--db) or through a
// running `geoscribe serve` (--server). Both paths end in the same renderer (query/format.h),
// so they print the same bytes. Also home of the protobuf helpers that `serve` shares (the
// messages of proto/query.proto <-> gs_search_req_t / gs_search_hit_t).
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "jobs/raster.h"
#include "proto/query.pb-c.h"
#include "query/chsearch.h"
#include "query/client.h"
#include "query/format.h"
#include "query/search.h"
#include "query/server.h"

// ---- shared with serve ----------------------------------------------------------------------
// (declared again in cmd_serve.c: commands have no headers of their own)

gs_err gs_cli_query_filters(const char *from, const char *to, gs_search_req_t *req, char *err,
                            size_t err_nbytes);
gs_err gs_cli_query_req_from_pb(const Geoscribe__Query__SearchRequest *pb, gs_search_req_t *req,
                                char *err, size_t err_nbytes);
void gs_cli_query_hit_to_pb(const gs_search_hit_t *h, Geoscribe__Query__Hit *pb, double *bbox4,
                            char *time_buf);
void gs_cli_query_hit_from_pb(const Geoscribe__Query__Hit *pb, gs_search_hit_t *h);
gs_err gs_cli_query_chreq_from_pb(const Geoscribe__Query__ChangeSearchRequest *pb,
                                  gs_chsearch_req_t *req, char *err, size_t err_nbytes);
void gs_cli_query_chhit_to_pb(const gs_chsearch_hit_t *h, Geoscribe__Query__ChangeHit *pb,
                              double *bbox4, char *time_buf);
void gs_cli_query_chhit_from_pb(const Geoscribe__Query__ChangeHit *pb, gs_chsearch_hit_t *h);

// gs_cli_query_filters: --from / --to text into req (a date as --to means its end).

gs_err gs_cli_query_filters(const char *from, const char *to, gs_search_req_t *req, char *err,
                            size_t err_nbytes)
{
    if (from && from[0]) {
        if (gs_qtime_parse(from, false, &req->from) != GS_OK) {
            snprintf(err, err_nbytes, "--from \"%s\" is not an ISO 8601 date or time", from);
            return GS_EINVAL;
        }
        req->has_from = true;
    }
    if (to && to[0]) {
        if (gs_qtime_parse(to, true, &req->to) != GS_OK) {
            snprintf(err, err_nbytes, "--to \"%s\" is not an ISO 8601 date or time", to);
            return GS_EINVAL;
        }
        req->has_to = true;
    }
    return GS_OK;
}

// gs_cli_query_req_from_pb: a SearchRequest as a search request; pointers borrowed from pb.
gs_err gs_cli_query_req_from_pb(const Geoscribe__Query__SearchRequest *pb, gs_search_req_t *req,
                                char *err, size_t err_nbytes)
{
    memset(req, 0, sizeof *req);
    req->text = pb->text && pb->text[0] ? pb->text : NULL;
    req->k = pb->k ? pb->k : 10;
    req->nprobe = pb->nprobe;
    req->like_tile = pb->like_tile;
    if (pb->image_rgb.len > 0) {
        if ((uint64_t)pb->image_width * pb->image_height * 3 != pb->image_rgb.len) {
            snprintf(err, err_nbytes,
                     "image_rgb holds %zu bytes, not width x height x 3 = "
                     "%u x %u x 3",
                     pb->image_rgb.len, pb->image_width, pb->image_height);
            return GS_EINVAL;
        }
        req->image_rgb = pb->image_rgb.data;
        req->image_w = (int)pb->image_width;
        req->image_h = (int)pb->image_height;
    }
    if (pb->n_vector > 0) {
        req->vector = pb->vector;
        req->n_vector = (int)(pb->n_vector > 1u << 20 ? 1u << 20 : pb->n_vector);
    }
    if (pb->n_bbox != 0 && pb->n_bbox != 4) {
        snprintf(err, err_nbytes, "bbox wants 4 values (W, S, E, N), not %zu", pb->n_bbox);
        return GS_EINVAL;
    }
    if (pb->n_bbox == 4) {
        req->has_bbox = true;
        memcpy(req->bbox, pb->bbox, sizeof req->bbox);
    }
    req->scene = pb->scene && pb->scene[0] ? pb->scene : NULL;
    req->caption_contains =
        pb->caption_contains && pb->caption_contains[0] ? pb->caption_contains : NULL;
    return gs_cli_query_filters(pb->from, pb->to, req, err, err_nbytes);
}

// gs_cli_query_hit_to_pb: a hit as a Hit message; bbox4 (4 doubles) and time_buf (32 bytes)
// are the caller's storage the message points into.
void gs_cli_query_hit_to_pb(const gs_search_hit_t *h, Geoscribe__Query__Hit *pb, double *bbox4,
                            char *time_buf)
{
    geoscribe__query__hit__init(pb);
    pb->rank = h->rank;
    pb->tile_id = h->tile_id;
    pb->score = h->score;
    pb->scene_id = h->scene_id;
    pb->scene = (char *)(h->scene_uri ? h->scene_uri : "");
    pb->time_unix = h->time_unix;
    pb->has_time = h->has_time;
    if (h->has_time)
        gs_qtime_format(h->time_unix, time_buf, 32);
    else
        time_buf[0] = '\0';
    pb->time = time_buf;
    memcpy(bbox4, h->bbox, 4 * sizeof *bbox4);
    pb->n_bbox = 4;
    pb->bbox = bbox4;
    pb->has_caption = h->caption != NULL;
    pb->caption = (char *)(h->caption ? h->caption : "");
    pb->x = h->x, pb->y = h->y, pb->w = h->w, pb->h = h->h;
}

// gs_cli_query_hit_from_pb: a Hit message as a hit; strings borrowed from pb.
void gs_cli_query_hit_from_pb(const Geoscribe__Query__Hit *pb, gs_search_hit_t *h)
{
    memset(h, 0, sizeof *h);
    h->rank = pb->rank;
    h->tile_id = pb->tile_id;
    h->score = pb->score;
    h->scene_id = pb->scene_id;
    h->scene_uri = pb->scene ? pb->scene : "";
    h->time_unix = pb->time_unix;
    h->has_time = pb->has_time;
    for (size_t i = 0; i < 4 && i < pb->n_bbox; i++)
        h->bbox[i] = pb->bbox[i];
    h->caption = pb->has_caption ? pb->caption : NULL;
    h->x = pb->x, h->y = pb->y, h->w = pb->w, h->h = pb->h;
}

// gs_cli_query_chreq_from_pb: a ChangeSearchRequest as a change search request; pointers
// borrowed from pb. GS_ETOOBIG (text or k over the caps), GS_EINVAL (bbox, times, min_score).
gs_err gs_cli_query_chreq_from_pb(const Geoscribe__Query__ChangeSearchRequest *pb,
                                  gs_chsearch_req_t *req, char *err, size_t err_nbytes)
{
    memset(req, 0, sizeof *req);
    req->text = pb->text && pb->text[0] ? pb->text : NULL;
    if (req->text && strlen(req->text) > GS_SEARCH_TEXT_MAX) {
        snprintf(err, err_nbytes, "the query text is longer than %u bytes", GS_SEARCH_TEXT_MAX);
        return GS_ETOOBIG;
    }
    req->k = pb->k ? pb->k : 10;
    if (req->k > GS_CHSEARCH_K_MAX) {
        snprintf(err, err_nbytes, "k = %zu is over the limit of %u", req->k, GS_CHSEARCH_K_MAX);
        return GS_ETOOBIG;
    }
    if (pb->n_bbox != 0 && pb->n_bbox != 4) {
        snprintf(err, err_nbytes, "bbox wants 4 values (W, S, E, N), not %zu", pb->n_bbox);
        return GS_EINVAL;
    }
    if (pb->n_bbox == 4) {
        for (int i = 0; i < 4; i++)
            if (!isfinite(pb->bbox[i]) || fabs(pb->bbox[i]) > (i % 2 ? 90.0 : 180.0)) {
                snprintf(err, err_nbytes,
                         "bbox values must be W,S,E,N within -180..180 and -90..90 degrees");
                return GS_EINVAL;
            }
        if (pb->bbox[1] > pb->bbox[3]) {
            snprintf(err, err_nbytes, "bbox south %g is north of its north %g", pb->bbox[1],
                     pb->bbox[3]);
            return GS_EINVAL;
        }
        req->has_bbox = true;
        memcpy(req->bbox, pb->bbox, sizeof req->bbox);
    }
    if (!isfinite(pb->min_score)) {
        snprintf(err, err_nbytes, "min_score must be a finite number");
        return GS_EINVAL;
    }
    req->min_score = pb->min_score;
    req->caption_contains =
        pb->caption_contains && pb->caption_contains[0] ? pb->caption_contains : NULL;
    gs_search_req_t t = {0};
    GS_TRY(gs_cli_query_filters(pb->from, pb->to, &t, err, err_nbytes));
    req->has_from = t.has_from, req->from = t.from;
    req->has_to = t.has_to, req->to = t.to;
    return GS_OK;
}

// gs_cli_query_chhit_to_pb: a change hit as a ChangeHit message; bbox4 (4 doubles) and
// time_buf (64 bytes: both times) are the caller's storage the message points into.
void gs_cli_query_chhit_to_pb(const gs_chsearch_hit_t *h, Geoscribe__Query__ChangeHit *pb,
                              double *bbox4, char *time_buf)
{
    geoscribe__query__change_hit__init(pb);
    pb->rank = h->rank;
    pb->pair_id = h->pair_id;
    pb->has_similarity = h->has_similarity;
    pb->similarity = h->similarity;
    pb->score = h->score;
    pb->before_scene_id = h->before_scene;
    pb->before_scene = (char *)(h->before_uri ? h->before_uri : "");
    pb->before_time_unix = h->before_time;
    gs_qtime_format(h->before_time, time_buf, 32);
    pb->before_time = time_buf;
    pb->before_tile_id = h->before_tile;
    pb->after_scene_id = h->after_scene;
    pb->after_scene = (char *)(h->after_uri ? h->after_uri : "");
    pb->after_time_unix = h->after_time;
    gs_qtime_format(h->after_time, time_buf + 32, 32);
    pb->after_time = time_buf + 32;
    pb->after_tile_id = h->after_tile;
    memcpy(bbox4, h->bbox, 4 * sizeof *bbox4);
    pb->n_bbox = 4;
    pb->bbox = bbox4;
    pb->has_caption = h->caption != NULL;
    pb->caption = (char *)(h->caption ? h->caption : "");
    pb->model_id = (char *)(h->model_id ? h->model_id : "");
}

// gs_cli_query_chhit_from_pb: a ChangeHit message as a change hit; strings borrowed from pb.
void gs_cli_query_chhit_from_pb(const Geoscribe__Query__ChangeHit *pb, gs_chsearch_hit_t *h)
{
    memset(h, 0, sizeof *h);
    h->rank = pb->rank;
    h->pair_id = pb->pair_id;
    h->has_similarity = pb->has_similarity;
    h->similarity = pb->similarity;
    h->score = pb->score;
    h->before_scene = pb->before_scene_id;
    h->before_uri = pb->before_scene ? pb->before_scene : "";
    h->before_time = pb->before_time_unix;
    h->before_tile = pb->before_tile_id;
    h->after_scene = pb->after_scene_id;
    h->after_uri = pb->after_scene ? pb->after_scene : "";
    h->after_time = pb->after_time_unix;
    h->after_tile = pb->after_tile_id;
    for (size_t i = 0; i < 4 && i < pb->n_bbox; i++)
        h->bbox[i] = pb->bbox[i];
    h->caption = pb->has_caption ? pb->caption : NULL;
    h->model_id = pb->model_id ? pb->model_id : "";
}

// ---- output ---------------------------------------------------------------------------------

// print_text: a table for people: rank, score, time, scene file, tile id, caption.
static void print_text(const gs_search_hit_t *hits, size_t n, uint64_t n_cand)
{
    for (size_t i = 0; i < n; i++) {
        const gs_search_hit_t *h = &hits[i];
        char t[40] = "-";
        if (h->has_time)
            gs_qtime_format(h->time_unix, t, sizeof t);
        const char *base = strrchr(h->scene_uri, '/');
        printf("%3u  %.4f  %-20s  %s  %llu  [%.5f,%.5f,%.5f,%.5f]  %s\n", h->rank, (double)h->score,
               t, base ? base + 1 : h->scene_uri, (unsigned long long)h->tile_id, h->bbox[0],
               h->bbox[1], h->bbox[2], h->bbox[3], h->caption ? h->caption : "");
    }
    printf("%zu hit%s of %llu candidate tile%s\n", n, n == 1 ? "" : "s", (unsigned long long)n_cand,
           n_cand == 1 ? "" : "s");
}

static int print_hits(gs_format_t fmt, const gs_search_hit_t *hits, size_t n, uint64_t n_cand)
{
    if (fmt == GS_FORMAT_TEXT) {
        print_text(hits, n, n_cand);
        return 0;
    }
    gs_buf_t b;
    gs_buf_init(&b, (size_t)1 << 31);
    gs_err e = gs_qfmt_results(&b, hits, n, fmt == GS_FORMAT_GEOJSON);
    if (e == GS_OK && b.len)
        fwrite(b.data, 1, b.len, stdout);
    gs_buf_cleanup(&b);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe query: could not format the results: %s\n", gs_strerror(e));
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

// ---- options --------------------------------------------------------------------------------

typedef struct {
    const char *db, *server, *server_key, *client_key, *model, *arch, *config, *vocab;
    const char *bbox, *from, *to, *scene, *caption, *like_tile, *like_image;
    char *text; // joined positional words
    uint64_t k;
    int nprobe, threads, timeout_ms;
    gs_format_t fmt;
    bool changes; // --changes: search change captions (query/chsearch.h)
} args_t;

enum {
    O_DB = 256,
    O_SERVER,
    O_SERVER_KEY,
    O_CLIENT_KEY,
    O_MODEL,
    O_ARCH,
    O_CONFIG,
    O_VOCAB,
    O_BBOX,
    O_FROM,
    O_TO,
    O_SCENE,
    O_CAPTION,
    O_LIKE_TILE,
    O_LIKE_IMAGE,
    O_NPROBE,
    O_THREADS,
    O_TIMEOUT,
    O_FORMAT,
    O_CHANGES
};

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"server", required_argument, NULL, O_SERVER},
        {"curve-server-key", required_argument, NULL, O_SERVER_KEY},
        {"curve-secret-key", required_argument, NULL, O_CLIENT_KEY},
        {"model", required_argument, NULL, O_MODEL},
        {"arch", required_argument, NULL, O_ARCH},
        {"config", required_argument, NULL, O_CONFIG},
        {"vocab", required_argument, NULL, O_VOCAB},
        {"bbox", required_argument, NULL, O_BBOX},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"scene", required_argument, NULL, O_SCENE},
        {"caption-contains", required_argument, NULL, O_CAPTION},
        {"like-tile", required_argument, NULL, O_LIKE_TILE},
        {"like-image", required_argument, NULL, O_LIKE_IMAGE},
        {"nprobe", required_argument, NULL, O_NPROBE},
        {"threads", required_argument, NULL, O_THREADS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"format", required_argument, NULL, O_FORMAT},
        {"changes", no_argument, NULL, O_CHANGES},
        {0}};
    const char **str[] = {[O_DB - O_DB] = &a->db,
                          [O_SERVER - O_DB] = &a->server,
                          [O_SERVER_KEY - O_DB] = &a->server_key,
                          [O_CLIENT_KEY - O_DB] = &a->client_key,
                          [O_MODEL - O_DB] = &a->model,
                          [O_ARCH - O_DB] = &a->arch,
                          [O_CONFIG - O_DB] = &a->config,
                          [O_VOCAB - O_DB] = &a->vocab,
                          [O_BBOX - O_DB] = &a->bbox,
                          [O_FROM - O_DB] = &a->from,
                          [O_TO - O_DB] = &a->to,
                          [O_SCENE - O_DB] = &a->scene,
                          [O_CAPTION - O_DB] = &a->caption,
                          [O_LIKE_TILE - O_DB] = &a->like_tile,
                          [O_LIKE_IMAGE - O_DB] = &a->like_image};
    int c, timeout_s = 30;
    a->k = 10;
    a->fmt = GS_FORMAT_JSON;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
        if (c >= O_DB && c <= O_LIKE_IMAGE) {
            *str[c - O_DB] = optarg;
        } else if (c == 'k') {
            if (gs_parse_u64(optarg, &a->k) != GS_OK || a->k < 1 || a->k > GS_SEARCH_K_MAX)
                return gs_cli_usage_error("query", "-k wants a number from 1 to %u, not \"%s\"",
                                          GS_SEARCH_K_MAX, optarg);
        } else if (c == O_NPROBE) {
            if (gs_parse_int(optarg, 1, 65536, &a->nprobe) != GS_OK)
                return gs_cli_usage_error("query", "--nprobe wants 1..65536, not \"%s\"", optarg);
        } else if (c == O_THREADS) {
            if (gs_parse_int(optarg, 1, 256, &a->threads) != GS_OK)
                return gs_cli_usage_error("query", "--threads wants 1..256, not \"%s\"", optarg);
        } else if (c == O_TIMEOUT) {
            if (gs_parse_int(optarg, 1, 86400, &timeout_s) != GS_OK)
                return gs_cli_usage_error("query", "--timeout wants seconds, not \"%s\"", optarg);
        } else if (c == O_FORMAT) {
            if (gs_cli_parse_format("query", optarg, true, &a->fmt) != 0)
                return 2;
        } else if (c == O_CHANGES) {
            a->changes = true;
        } else {
            return 2;
        }
    }
    a->timeout_ms = timeout_s * 1000;
    gs_buf_t t;
    gs_buf_init(&t, GS_SEARCH_TEXT_MAX + 1);
    for (int i = optind; i < argc; i++)
        if ((i > optind && gs_buf_puts(&t, " ") != GS_OK) || gs_buf_puts(&t, argv[i]) != GS_OK) {
            gs_buf_cleanup(&t);
            return gs_cli_usage_error("query", "the query text is longer than %u bytes",
                                      GS_SEARCH_TEXT_MAX);
        }
    a->text = t.len ? gs_buf_steal(&t) : NULL;
    gs_buf_cleanup(&t);
    if (!a->db == !a->server)
        return gs_cli_usage_error("query", "give --db DIR (search locally) or --server "
                                           "ENDPOINT (ask a running `geoscribe serve`)");
    int n_q = (a->text != NULL) + (a->like_tile != NULL) + (a->like_image != NULL);
    if (a->changes && (a->like_tile || a->like_image || a->scene || a->nprobe))
        return gs_cli_usage_error("query", "--changes searches change captions by TEXT (or lists "
                                           "changes by score without it); --like-tile, "
                                           "--like-image, --scene and --nprobe do not apply");
    if (a->changes && a->k > GS_CHSEARCH_K_MAX)
        return gs_cli_usage_error("query", "-k wants 1..%u with --changes", GS_CHSEARCH_K_MAX);
    if (!a->changes && n_q != 1)
        return gs_cli_usage_error("query", n_q ? "give one query: TEXT, --like-tile or "
                                                 "--like-image"
                                               : "no query: give TEXT, --like-tile ID or "
                                                 "--like-image FILE");
    if (a->server && (a->model || a->arch || a->config || a->vocab))
        return gs_cli_usage_error("query", "--model, --arch, --config and --vocab are for --db "
                                           "(the server uses its own)");
    return 0;
}

// build_req: the request from the options (the image, when asked, read into *rgb).
static int build_req(const args_t *a, gs_search_req_t *req, uint8_t **rgb)
{
    char err[GS_SEARCH_ERR_NBYTES];
    memset(req, 0, sizeof *req);
    req->text = a->text;
    req->k = (size_t)a->k;
    req->nprobe = a->nprobe;
    if (a->like_tile && gs_qid_parse(a->like_tile, &req->like_tile) != GS_OK)
        return gs_cli_usage_error("query",
                                  "--like-tile wants a tile id (decimal or 0x hex), "
                                  "not \"%s\"",
                                  a->like_tile);
    if (a->bbox) {
        if (gs_qbbox_parse(a->bbox, req->bbox) != GS_OK)
            return gs_cli_usage_error("query", "--bbox wants W,S,E,N in degrees, not \"%s\"",
                                      a->bbox);
        req->has_bbox = true;
    }
    if (gs_cli_query_filters(a->from, a->to, req, err, sizeof err) != GS_OK)
        return gs_cli_usage_error("query", "%s", err);
    req->scene = a->scene;
    req->caption_contains = a->caption;
    if (a->like_image) {
        int w = 0, h = 0;
        gs_err e = gs_raster_read_rgb8(a->like_image, rgb, &w, &h);
        if (e != GS_OK) {
            fprintf(stderr, "geoscribe query: could not read image \"%s\": %s\n", a->like_image,
                    gs_strerror(e));
            return 1;
        }
        req->image_rgb = *rgb;
        req->image_w = w;
        req->image_h = h;
    }
    return 0;
}

// ---- local ----------------------------------------------------------------------------------

static int run_local(const args_t *a, const gs_search_req_t *req)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_opts_t so = {.model = a->model,
                           .arch = a->arch,
                           .config = a->config,
                           .vocab = a->vocab,
                           .n_threads = a->threads,
                           .nprobe = a->nprobe,
                           .lazy_model = true};
    gs_search_t *s = NULL;
    gs_err e = gs_search_open(a->db, &so, &s, err, sizeof err);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe query: %s\n", err);
        return 1;
    }
    gs_arena_t *arena = gs_arena_new(1 << 20, 0);
    gs_search_result_t r;
    int rc = 1;
    e = gs_search_run(s, req, arena, &r, err, sizeof err);
    if (e != GS_OK)
        fprintf(stderr, "geoscribe query: %s\n", err);
    else
        rc = print_hits(a->fmt, r.hits, r.n_hits, r.n_candidates);
    gs_arena_destroy(&arena);
    gs_search_close(&s);
    return rc;
}

// ---- through the service --------------------------------------------------------------------

static int read_key(const char *path, const char *kind, char key[41])
{
    char err[256];
    if (gs_curve_read_key(path, kind, key, err, sizeof err) != GS_OK) {
        fprintf(stderr, "geoscribe query: %s\n", err);
        return 1;
    }
    return 0;
}

static void pb_from_req(const args_t *a, const gs_search_req_t *req,
                        Geoscribe__Query__SearchRequest *pb)
{
    geoscribe__query__search_request__init(pb);
    pb->text = (char *)(req->text ? req->text : "");
    pb->k = (uint32_t)req->k;
    pb->nprobe = req->nprobe;
    pb->like_tile = req->like_tile;
    if (req->has_bbox) {
        pb->n_bbox = 4;
        pb->bbox = (double *)req->bbox;
    }
    pb->from = (char *)(a->from ? a->from : "");
    pb->to = (char *)(a->to ? a->to : "");
    pb->scene = (char *)(a->scene ? a->scene : "");
    pb->caption_contains = (char *)(a->caption ? a->caption : "");
    if (req->image_rgb) {
        pb->image_rgb.data = (uint8_t *)req->image_rgb;
        pb->image_rgb.len = (size_t)req->image_w * req->image_h * 3;
        pb->image_width = (uint32_t)req->image_w;
        pb->image_height = (uint32_t)req->image_h;
    }
}

static int show_reply(const args_t *a, const Geoscribe__Query__Reply *rep)
{
    if (rep->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR) {
        fprintf(stderr, "geoscribe query: the server refused the request (%s): %s\n",
                rep->error->name, rep->error->message);
        return 1;
    }
    if (rep->body_case != GEOSCRIBE__QUERY__REPLY__BODY_SEARCH) {
        fprintf(stderr, "geoscribe query: the server sent a reply of another kind\n");
        return 1;
    }
    const Geoscribe__Query__SearchReply *sr = rep->search;
    gs_search_hit_t *hits = gs_xcalloc(sr->n_hits ? sr->n_hits : 1, sizeof *hits);
    for (size_t i = 0; i < sr->n_hits; i++)
        gs_cli_query_hit_from_pb(sr->hits[i], &hits[i]);
    int rc = print_hits(a->fmt, hits, sr->n_hits, sr->n_candidates);
    gs_free(hits);
    return rc;
}

// call_server: sends r to --server and unpacks the reply into *out_rep (free with
// geoscribe__query__reply__free_unpacked). Returns 0, or 1 with the reason printed.
static int call_server(const args_t *a, const Geoscribe__Query__Request *r,
                       Geoscribe__Query__Reply **out_rep)
{
    char err[512], skey[41], ckey[41];
    *out_rep = NULL;
    gs_qclient_opts_t co = {.timeout_ms = a->timeout_ms};
    if (a->server_key) {
        if (read_key(a->server_key, "public-key", skey))
            return 1;
        co.curve_server_key = skey;
    }
    if (a->client_key) {
        if (!a->server_key)
            return gs_cli_usage_error("query", "--curve-secret-key needs --curve-server-key");
        if (read_key(a->client_key, "secret-key", ckey))
            return 1;
        co.curve_secret_key = ckey;
    }
    size_t n = geoscribe__query__request__get_packed_size(r);
    uint8_t *packed = gs_xmalloc(n ? n : 1);
    geoscribe__query__request__pack(r, packed);
    gs_qclient_t *c = NULL;
    gs_buf_t reply;
    gs_buf_init(&reply, (size_t)1 << 31);
    int rc = 1;
    gs_err e = gs_qclient_open(a->server, &co, &c, err, sizeof err);
    if (e == GS_OK)
        e = gs_qclient_call(c, packed, n, &reply, err, sizeof err);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe query: server \"%s\": %s\n", a->server, err);
    } else {
        *out_rep = geoscribe__query__reply__unpack(NULL, reply.len, (const uint8_t *)reply.data);
        if (!*out_rep)
            fprintf(stderr, "geoscribe query: server \"%s\" sent a malformed reply\n", a->server);
        else
            rc = 0;
    }
    gs_qclient_close(&c);
    gs_buf_cleanup(&reply);
    gs_free(packed);
    return rc;
}

static int run_remote(const args_t *a, const gs_search_req_t *req)
{
    Geoscribe__Query__SearchRequest sreq;
    pb_from_req(a, req, &sreq);
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.request_id = (uint64_t)time(NULL);
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_SEARCH;
    r.search = &sreq;
    Geoscribe__Query__Reply *rep = NULL;
    int rc = call_server(a, &r, &rep);
    if (rc == 0)
        rc = show_reply(a, rep);
    geoscribe__query__reply__free_unpacked(rep, NULL);
    return rc;
}

// ---- change search (--changes) --------------------------------------------------------------

// print_changes: change hits in the --format asked for (the same bytes from --db and --server).
static int print_changes(gs_format_t fmt, const gs_chsearch_hit_t *hits, size_t n, uint64_t n_cand)
{
    int rc = 1;
    if (fmt == GS_FORMAT_TEXT) {
        for (size_t i = 0; i < n; i++) {
            char t0[40], t1[40];
            gs_qtime_format(hits[i].before_time, t0, sizeof t0);
            gs_qtime_format(hits[i].after_time, t1, sizeof t1);
            printf("%3u  %.4f  %s -> %s  [%.5f,%.5f,%.5f,%.5f]  %s\n", hits[i].rank,
                   (double)(hits[i].has_similarity ? hits[i].similarity : hits[i].score), t0, t1,
                   hits[i].bbox[0], hits[i].bbox[1], hits[i].bbox[2], hits[i].bbox[3],
                   hits[i].caption ? hits[i].caption : "");
        }
        printf("%zu change%s of %llu candidate%s\n", n, n == 1 ? "" : "s",
               (unsigned long long)n_cand, n_cand == 1 ? "" : "s");
        rc = 0;
    } else {
        gs_buf_t b;
        gs_buf_init(&b, (size_t)1 << 31);
        gs_err e = gs_chsearch_format(&b, hits, n, fmt == GS_FORMAT_GEOJSON);
        if (e == GS_OK && b.len)
            fwrite(b.data, 1, b.len, stdout);
        gs_buf_cleanup(&b);
        rc = e == GS_OK && fflush(stdout) == 0 ? 0 : 1;
        if (e != GS_OK)
            fprintf(stderr, "geoscribe query: could not format the results: %s\n", gs_strerror(e));
    }
    return rc;
}

static gs_chsearch_req_t chreq_from_args(const args_t *a, const gs_search_req_t *f)
{
    gs_chsearch_req_t q = {.text = a->text,
                           .k = (size_t)a->k,
                           .has_bbox = f->has_bbox,
                           .has_from = f->has_from,
                           .has_to = f->has_to,
                           .from = f->from,
                           .to = f->to,
                           .caption_contains = a->caption};
    memcpy(q.bbox, f->bbox, sizeof q.bbox);
    return q;
}

static int run_changes(const args_t *a, const gs_search_req_t *f)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_chsearch_opts_t so = {
        .model = a->model, .arch = a->arch, .vocab = a->vocab, .n_threads = a->threads};
    gs_chsearch_t *s = NULL;
    if (gs_chsearch_open(a->db, &so, &s, err, sizeof err) != GS_OK) {
        fprintf(stderr, "geoscribe query: %s\n", err);
        return 1;
    }
    gs_chsearch_req_t q = chreq_from_args(a, f);
    gs_arena_t *arena = gs_arena_new(1 << 20, 0);
    gs_chsearch_hit_t *hits = NULL;
    size_t n = 0;
    uint64_t n_cand = 0;
    int rc = 1;
    if (gs_chsearch_run(s, &q, arena, &hits, &n, &n_cand, err, sizeof err) != GS_OK)
        fprintf(stderr, "geoscribe query: %s\n", err);
    else
        rc = print_changes(a->fmt, hits, n, n_cand);
    gs_arena_destroy(&arena);
    gs_chsearch_close(&s);
    return rc;
}

// run_changes_remote: the same search through `geoscribe serve` (a ChangeSearchRequest).
static int run_changes_remote(const args_t *a, const gs_search_req_t *f)
{
    Geoscribe__Query__ChangeSearchRequest cr = GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.text = a->text ? a->text : "";
    cr.k = (uint32_t)a->k;
    if (f->has_bbox) {
        cr.n_bbox = 4;
        cr.bbox = (double *)f->bbox;
    }
    cr.from = (char *)(a->from ? a->from : "");
    cr.to = (char *)(a->to ? a->to : "");
    cr.caption_contains = (char *)(a->caption ? a->caption : "");
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.request_id = (uint64_t)time(NULL);
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_CHANGES;
    r.changes = &cr;
    Geoscribe__Query__Reply *rep = NULL;
    int rc = call_server(a, &r, &rep);
    if (rc != 0)
        return rc;
    rc = 1;
    if (rep->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR) {
        fprintf(stderr, "geoscribe query: the server refused the request (%s): %s\n",
                rep->error->name, rep->error->message);
    } else if (rep->body_case != GEOSCRIBE__QUERY__REPLY__BODY_CHANGES) {
        fprintf(stderr, "geoscribe query: the server sent a reply of another kind\n");
    } else {
        const Geoscribe__Query__ChangeSearchReply *cs = rep->changes;
        gs_chsearch_hit_t *hits = gs_xcalloc(cs->n_hits ? cs->n_hits : 1, sizeof *hits);
        for (size_t i = 0; i < cs->n_hits; i++)
            gs_cli_query_chhit_from_pb(cs->hits[i], &hits[i]);
        rc = print_changes(a->fmt, hits, cs->n_hits, cs->n_candidates);
        gs_free(hits);
    }
    geoscribe__query__reply__free_unpacked(rep, NULL);
    return rc;
}

static int run(int argc, char **argv)
{
    args_t a = {0};
    uint8_t *rgb = NULL;
    gs_search_req_t req;
    int rc = parse_args(argc, argv, &a);
    if (rc == 0 && a.changes) {
        rc = build_req(&a, &req, &rgb);
        if (rc == 0)
            rc = a.db ? run_changes(&a, &req) : run_changes_remote(&a, &req);
        gs_free(a.text);
        return rc;
    }
    if (rc == 0)
        rc = build_req(&a, &req, &rgb);
    if (rc == 0)
        rc = a.db ? run_local(&a, &req) : run_remote(&a, &req);
    gs_free(rgb);
    gs_free(a.text);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_query = {
    .name = "query",
    .summary = "search an output by text or example (locally or through a server)",
    .usage =
        "usage: geoscribe query (--db DIR | --server ENDPOINT) [TEXT...] [options]\n"
        "\n"
        "Finds the tiles of an ingested output that best match TEXT (embedded with the output's\n"
        "own encoder), an example tile or an example image, and prints them best first.\n"
        "\n"
        "query:\n"
        "  TEXT...                the words to search for (\"airplanes parked near a terminal\")\n"
        "  --like-tile ID         tiles like this tile of the index (decimal or 0x hex id)\n"
        "  --like-image FILE      tiles like this picture (PNG, JPEG, GeoTIFF...)\n"
        "  -k N                   hits wanted, 1..100000 (10)\n"
        "filters (all must hold; k hits come back whenever k tiles pass):\n"
        "  --bbox W,S,E,N         tiles whose lon/lat bounds intersect the box (W > E: across\n"
        "                         the antimeridian)\n"
        "  --from T, --to T       acquisition time range, inclusive, ISO 8601 (2021, 2021-06,\n"
        "                         2021-06-01, 2021-06-01T10:30:00Z; --to 2021-06 = to its end)\n"
        "  --scene S              one scene: its id, its URI or its file name\n"
        "  --caption-contains S   captions containing S (ASCII case-insensitive)\n"
        "changes (--db or --server; docs/CHANGES.md):\n"
        "  --changes              search change captions of `geoscribe changes` instead: TEXT\n"
        "                         against the caption embeddings (no TEXT: by change score);\n"
        "                         --bbox, --from/--to (both times of a pair inside) and\n"
        "                         --caption-contains filter; hits give both times, scenes,\n"
        "                         tiles, the footprint, the change score and the caption\n"
        "output:\n"
        "  --format F             json (default: one object per line {rank, tile_id, score,\n"
        "                         scene, scene_id, time, bbox, caption}), geojson (a\n"
        "                         FeatureCollection of tile footprints, EPSG:4326) or text\n"
        "local search (--db DIR, the output folder of `geoscribe ingest`):\n"
        "  --model M              the encoder (default: the one recorded in the output; another\n"
        "                         model is refused); --arch, --config, --vocab as for embed\n"
        "  --threads N            encoder threads (1); --nprobe N: IVF lists probed\n"
        "through a server (--server tcp://127.0.0.1:7700):\n"
        "  --curve-server-key F   the server's public key file (CURVE); --curve-secret-key F:\n"
        "                         this client's secret key (when the server checks clients)\n"
        "  --timeout S            seconds to wait for the reply (30)\n"
        "\n"
        "examples:\n"
        "  geoscribe query --db out \"airplanes parked near a terminal\" -k 20\n"
        "  geoscribe query --db out --bbox 10.5,45,11,45.5 --from 2021-06 -k 10000 \\\n"
        "      --format geojson river > hits.geojson\n"
        "  geoscribe query --server tcp://127.0.0.1:7700 --like-tile 0x1234abcd\n"
        "  geoscribe query --db out --changes \"new buildings\" --from 2015 --to 2020\n"
        "  geoscribe query --server tcp://127.0.0.1:7700 --changes --bbox -75,-9,-74,-8",
    .order = 60,
    .run = run,
};
