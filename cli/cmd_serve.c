// `geoscribe serve`: the query service over one output: the ZeroMQ API (protobuf messages of
// proto/query.proto, packed and unpacked here, since libraries never include *.pb-c.h) and,
// with --http, the web map page and JSON API. Thumbnails are rendered by jobs/raster.h through
// the HTTP server's callback, so query/ stays free of GDAL. Stops cleanly on SIGINT/SIGTERM.
#define GS_LOG_MODULE "serve"

#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "jobs/raster.h"
#include "jobs/spec.h"
#include "jobs/thumb.h"
#include "proto/query.pb-c.h"
#include "query/chsearch.h"
#include "query/format.h"
#include "query/http.h"
#include "query/search.h"
#include "query/server.h"

// From cmd_query.c (commands have no headers of their own).
gs_err gs_cli_query_req_from_pb(const Geoscribe__Query__SearchRequest *pb, gs_search_req_t *req,
                                char *err, size_t err_nbytes);
void gs_cli_query_hit_to_pb(const gs_search_hit_t *h, Geoscribe__Query__Hit *pb, double *bbox4,
                            char *time_buf);
gs_err gs_cli_query_chreq_from_pb(const Geoscribe__Query__ChangeSearchRequest *pb,
                                  gs_chsearch_req_t *req, char *err, size_t err_nbytes);
void gs_cli_query_chhit_to_pb(const gs_chsearch_hit_t *h, Geoscribe__Query__ChangeHit *pb,
                              double *bbox4, char *time_buf);

typedef struct {
    gs_search_t *search;
    gs_chsearch_t *changes; // NULL when the output has no change records
    gs_err changes_code;    // why not: the error reply to a change search then
    char changes_err[512];
    atomic_uint_fast64_t n_requests, n_errors, n_searches, n_change_searches, search_us;
    double t_start;
} serve_t;

// ---- packing into the reply buffer ----------------------------------------------------------

// A ProtobufCBuffer that appends to a capped gs_buf_t (no intermediate copy).
typedef struct {
    ProtobufCBuffer base;
    gs_buf_t *out;
    gs_err err;
} bufsink_t;

static void sink_append(ProtobufCBuffer *b, size_t n, const uint8_t *data)
{
    bufsink_t *s = (bufsink_t *)b;
    if (s->err == GS_OK)
        s->err = gs_buf_append(s->out, data, n);
}

static gs_err pack_reply(const Geoscribe__Query__Reply *r, gs_buf_t *out)
{
    bufsink_t s = {{sink_append}, out, GS_OK};
    gs_buf_reset(out);
    geoscribe__query__reply__pack_to_buffer(r, &s.base);
    return s.err;
}

static void error_reply(void *ud, gs_err code, const char *message, gs_buf_t *out)
{
    serve_t *sv = ud;
    atomic_fetch_add(&sv->n_errors, 1);
    Geoscribe__Query__ErrorReply er = GEOSCRIBE__QUERY__ERROR_REPLY__INIT;
    er.code = (int32_t)code;
    er.name = (char *)gs_err_name(code);
    er.message = (char *)message;
    Geoscribe__Query__Reply r = GEOSCRIBE__QUERY__REPLY__INIT;
    r.body_case = GEOSCRIBE__QUERY__REPLY__BODY_ERROR;
    r.error = &er;
    pack_reply(&r, out);
}

// Requests are unpacked into the request's arena: no malloc per message.
static void *arena_alloc(void *ud, size_t n)
{
    return gs_arena_alloc(ud, n ? n : 1);
}
static void arena_free(void *ud, void *p)
{
    (void)ud, (void)p;
}

// ---- requests -------------------------------------------------------------------------------

static void do_search(serve_t *sv, const Geoscribe__Query__Request *rq, gs_arena_t *a,
                      gs_buf_t *out)
{
    char err[GS_SEARCH_ERR_NBYTES];
    double t0 = gs_clock_s();
    gs_search_req_t req;
    gs_search_result_t res;
    gs_err e = gs_cli_query_req_from_pb(rq->search, &req, err, sizeof err);
    if (e == GS_OK)
        e = gs_search_run(sv->search, &req, a, &res, err, sizeof err);
    if (e != GS_OK) {
        error_reply(sv, e, err, out);
        return;
    }
    size_t n = res.n_hits;
    Geoscribe__Query__Hit *hits = gs_arena_alloc(a, (n ? n : 1) * sizeof *hits);
    Geoscribe__Query__Hit **ptrs = gs_arena_alloc(a, (n ? n : 1) * sizeof *ptrs);
    double *boxes = gs_arena_alloc(a, (n ? n : 1) * 4 * sizeof *boxes);
    char *times = gs_arena_alloc(a, (n ? n : 1) * 32);
    if (!hits || !ptrs || !boxes || !times) {
        error_reply(sv, GS_ENOMEM, "the reply is over the request's memory cap", out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gs_cli_query_hit_to_pb(&res.hits[i], &hits[i], boxes + 4 * i, times + 32 * i);
        ptrs[i] = &hits[i];
    }
    Geoscribe__Query__SearchReply sr = GEOSCRIBE__QUERY__SEARCH_REPLY__INIT;
    sr.n_hits = n;
    sr.hits = ptrs;
    sr.n_candidates = res.n_candidates;
    sr.model_id = (char *)gs_search_model_id(sv->search);
    sr.search_s = gs_clock_s() - t0;
    Geoscribe__Query__Reply r = GEOSCRIBE__QUERY__REPLY__INIT;
    r.request_id = rq->request_id;
    r.body_case = GEOSCRIBE__QUERY__REPLY__BODY_SEARCH;
    r.search = &sr;
    if (pack_reply(&r, out) != GS_OK) {
        snprintf(err, sizeof err,
                 "a reply of %zu hits is over the reply size limit: ask for "
                 "fewer",
                 n);
        error_reply(sv, GS_ETOOBIG, err, out);
        return;
    }
    atomic_fetch_add(&sv->n_searches, 1);
    atomic_fetch_add(&sv->search_us, (uint64_t)(sr.search_s * 1e6));
}

// do_changes: a ChangeSearchRequest (query/chsearch.h), answered as a ChangeSearchReply.
static void do_changes(serve_t *sv, const Geoscribe__Query__Request *rq, gs_arena_t *a,
                       gs_buf_t *out)
{
    char err[GS_SEARCH_ERR_NBYTES];
    double t0 = gs_clock_s();
    if (!sv->changes) {
        error_reply(sv, sv->changes_code, sv->changes_err, out);
        return;
    }
    gs_chsearch_req_t req;
    gs_chsearch_hit_t *res = NULL;
    size_t n = 0;
    uint64_t n_cand = 0;
    gs_err e = gs_cli_query_chreq_from_pb(rq->changes, &req, err, sizeof err);
    if (e == GS_OK)
        e = gs_chsearch_run(sv->changes, &req, a, &res, &n, &n_cand, err, sizeof err);
    if (e != GS_OK) {
        error_reply(sv, e, err, out);
        return;
    }
    Geoscribe__Query__ChangeHit *hits = gs_arena_alloc(a, (n ? n : 1) * sizeof *hits);
    Geoscribe__Query__ChangeHit **ptrs = gs_arena_alloc(a, (n ? n : 1) * sizeof *ptrs);
    double *boxes = gs_arena_alloc(a, (n ? n : 1) * 4 * sizeof *boxes);
    char *times = gs_arena_alloc(a, (n ? n : 1) * 64);
    if (!hits || !ptrs || !boxes || !times) {
        error_reply(sv, GS_ENOMEM, "the reply is over the request's memory cap", out);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gs_cli_query_chhit_to_pb(&res[i], &hits[i], boxes + 4 * i, times + 64 * i);
        ptrs[i] = &hits[i];
    }
    Geoscribe__Query__ChangeSearchReply cr = GEOSCRIBE__QUERY__CHANGE_SEARCH_REPLY__INIT;
    cr.n_hits = n;
    cr.hits = ptrs;
    cr.n_candidates = n_cand;
    cr.search_s = gs_clock_s() - t0;
    Geoscribe__Query__Reply r = GEOSCRIBE__QUERY__REPLY__INIT;
    r.request_id = rq->request_id;
    r.body_case = GEOSCRIBE__QUERY__REPLY__BODY_CHANGES;
    r.changes = &cr;
    if (pack_reply(&r, out) != GS_OK) {
        snprintf(err, sizeof err,
                 "a reply of %zu changes is over the reply size limit: ask for "
                 "fewer",
                 n);
        error_reply(sv, GS_ETOOBIG, err, out);
        return;
    }
    atomic_fetch_add(&sv->n_searches, 1);
    atomic_fetch_add(&sv->n_change_searches, 1);
    atomic_fetch_add(&sv->search_us, (uint64_t)(cr.search_s * 1e6));
}

static void do_info(serve_t *sv, const Geoscribe__Query__Request *rq, gs_buf_t *out)
{
    char desc[256];
    Geoscribe__Query__Reply r = GEOSCRIBE__QUERY__REPLY__INIT;
    Geoscribe__Query__HealthReply h = GEOSCRIBE__QUERY__HEALTH_REPLY__INIT;
    Geoscribe__Query__StatsReply st = GEOSCRIBE__QUERY__STATS_REPLY__INIT;
    r.request_id = rq->request_id;
    if (rq->body_case == GEOSCRIBE__QUERY__REQUEST__BODY_HEALTH) {
        h.status = "ok";
        h.version = GS_VERSION;
        h.model_id = (char *)gs_search_model_id(sv->search);
        h.n_vectors = gs_search_ntotal(sv->search);
        h.dim = gs_search_dim(sv->search);
        h.n_changes = sv->changes ? gs_chsearch_n_records(sv->changes) : 0;
        r.body_case = GEOSCRIBE__QUERY__REPLY__BODY_HEALTH;
        r.health = &h;
    } else {
        gs_search_describe(sv->search, desc, sizeof desc);
        st.n_requests = atomic_load(&sv->n_requests);
        st.n_errors = atomic_load(&sv->n_errors);
        st.n_searches = atomic_load(&sv->n_searches);
        st.uptime_s = gs_clock_s() - sv->t_start;
        st.n_vectors = gs_search_ntotal(sv->search);
        st.index = desc;
        st.search_s_total = (double)atomic_load(&sv->search_us) * 1e-6;
        st.n_change_searches = atomic_load(&sv->n_change_searches);
        r.body_case = GEOSCRIBE__QUERY__REPLY__BODY_STATS;
        r.stats = &st;
    }
    pack_reply(&r, out);
}

static void handle(void *ud, const void *req, size_t n, gs_arena_t *arena, gs_buf_t *out)
{
    serve_t *sv = ud;
    atomic_fetch_add(&sv->n_requests, 1);
    ProtobufCAllocator al = {arena_alloc, arena_free, arena};
    Geoscribe__Query__Request *rq = geoscribe__query__request__unpack(&al, n, req);
    if (!rq) {
        error_reply(sv, GS_EFORMAT, "malformed request: not a geoscribe.query.Request message",
                    out);
        return;
    }
    switch (rq->body_case) {
    case GEOSCRIBE__QUERY__REQUEST__BODY_SEARCH: do_search(sv, rq, arena, out); break;
    case GEOSCRIBE__QUERY__REQUEST__BODY_CHANGES: do_changes(sv, rq, arena, out); break;
    case GEOSCRIBE__QUERY__REQUEST__BODY_HEALTH:
    case GEOSCRIBE__QUERY__REQUEST__BODY_STATS: do_info(sv, rq, out); break;
    default:
        error_reply(sv, GS_EFORMAT, "the request has no body (search, changes, health or stats)",
                    out);
    }
    geoscribe__query__request__free_unpacked(rq, &al);
}

// ---- thumbnails (jobs/raster.h through query/http.h's callback) ------------------------------

// render_thumb: ud is the output's job (OUT/job.yaml, written by ingest) or NULL. With it the
// thumbnail is the tile as the encoder saw it (the job's bands, groups, scaling: jobs/thumb.h);
// without it, the raster's first three bands stretched per chip.
static gs_err render_thumb(void *ud, const char *uri, int x, int y, int w, int h, int max_side,
                           const char *png_path)
{
    const gs_job_t *job = ud;
    if (!job)
        return gs_raster_write_png_chip(uri, x, y, w, h, max_side, png_path);
    char why[1024] = "";
    gs_err e = gs_thumb_render(job, uri, x, y, w, h, max_side, png_path, why, sizeof why);
    if (e != GS_OK)
        GS_LOG_WARN("no thumbnail of \"%s\": %s", uri, why);
    return e;
}

// render_change_thumb: ud is the change run's job (OUT/changes.yaml): one side of a change pair
// on the pair's grid (jobs/thumb.h).
static gs_err render_change_thumb(void *ud, const char *before_uri, const char *after_uri,
                                  bool after, uint64_t location, int max_side, const char *png_path)
{
    char why[1024] = "";
    gs_err e = gs_thumb_render_change(ud, before_uri, after_uri, after, location, max_side,
                                      png_path, why, sizeof why);
    if (e != GS_OK)
        GS_LOG_WARN("no %s thumbnail of the pair \"%s\" -> \"%s\": %s", after ? "after" : "before",
                    before_uri, after_uri, why);
    return e;
}

// output_job: the job a run recorded in OUT/<name> (job.yaml: ingest, changes.yaml: the change
// run), or NULL (with an INFO line saying what the server does without it).
static gs_job_t *output_job(const char *out, const char *name, const char *without)
{
    char *p = gs_path_join(out, name);
    gs_job_t *job = NULL;
    char err[2048] = "";
    if (!gs_path_exists(p) || gs_job_load(p, NULL, 0, &job, err, sizeof err) != GS_OK) {
        if (!*err)
            snprintf(err, sizeof err, "the output holds no %s", name);
        GS_LOG_INFO("%s: %s", without, err);
        job = NULL;
    }
    gs_free(p);
    return job;
}

// ---- keys -----------------------------------------------------------------------------------

static int gen_keys(const char *prefix)
{
    char pub[41], sec[41];
    if (gs_curve_keypair(pub, sec) != GS_OK) {
        fprintf(stderr, "geoscribe serve: this libzmq has no CURVE support\n");
        return 1;
    }
    char *kp = gs_xasprintf("%s.key", prefix), *pp = gs_xasprintf("%s.pub", prefix);
    char *ktext = gs_xasprintf("# geoscribe CURVE secret key: keep it private (serve "
                               "--curve-secret-key)\npublic-key = \"%s\"\nsecret-key = \"%s\"\n",
                               pub, sec);
    char *ptext = gs_xasprintf("# geoscribe CURVE public key: give it to clients (query "
                               "--curve-server-key)\npublic-key = \"%s\"\n",
                               pub);
    mode_t old = umask(077);
    gs_err e = gs_write_file_atomic(kp, ktext, strlen(ktext));
    umask(old);
    if (e == GS_OK)
        e = gs_write_file_atomic(pp, ptext, strlen(ptext));
    if (e == GS_OK)
        printf("%s\n%s\n", kp, pp);
    else
        fprintf(stderr, "geoscribe serve: could not write the keys: %s\n", gs_strerror(e));
    gs_free(kp);
    gs_free(pp);
    gs_free(ktext);
    gs_free(ptext);
    return e == GS_OK ? 0 : 1;
}

// ---- signals --------------------------------------------------------------------------------

static gs_server_t *volatile g_server; // the one thing a signal handler may touch

static void on_signal(int sig)
{
    (void)sig;
    if (g_server)
        gs_server_stop(g_server);
}

// ---- options and run ------------------------------------------------------------------------

typedef struct {
    const char *db, *bind, *http, *secret_key, *clients, *gen_keys, *model, *arch, *config;
    const char *vocab, *web, *leaflet, *cache;
    bool allow_remote, allow_insecure;
    int workers, threads, nprobe;
    uint64_t max_request;
    gs_format_t fmt;
} args_t;

enum {
    O_DB = 256,
    O_BIND,
    O_HTTP,
    O_SECRET,
    O_CLIENTS,
    O_GEN,
    O_MODEL,
    O_ARCH,
    O_CONFIG,
    O_VOCAB,
    O_WEB,
    O_LEAFLET,
    O_CACHE,
    O_REMOTE,
    O_INSECURE,
    O_WORKERS,
    O_THREADS,
    O_NPROBE,
    O_MAXREQ,
    O_FORMAT
};

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"db", required_argument, NULL, O_DB},
                                         {"bind", required_argument, NULL, O_BIND},
                                         {"http", required_argument, NULL, O_HTTP},
                                         {"curve-secret-key", required_argument, NULL, O_SECRET},
                                         {"curve-clients", required_argument, NULL, O_CLIENTS},
                                         {"gen-keys", required_argument, NULL, O_GEN},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"arch", required_argument, NULL, O_ARCH},
                                         {"config", required_argument, NULL, O_CONFIG},
                                         {"vocab", required_argument, NULL, O_VOCAB},
                                         {"web", required_argument, NULL, O_WEB},
                                         {"leaflet", required_argument, NULL, O_LEAFLET},
                                         {"cache", required_argument, NULL, O_CACHE},
                                         {"allow-remote", no_argument, NULL, O_REMOTE},
                                         {"allow-insecure", no_argument, NULL, O_INSECURE},
                                         {"workers", required_argument, NULL, O_WORKERS},
                                         {"threads", required_argument, NULL, O_THREADS},
                                         {"nprobe", required_argument, NULL, O_NPROBE},
                                         {"max-request", required_argument, NULL, O_MAXREQ},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {0}};
    const char **str[] = {&a->db,       &a->bind,    &a->http, &a->secret_key, &a->clients,
                          &a->gen_keys, &a->model,   &a->arch, &a->config,     &a->vocab,
                          &a->web,      &a->leaflet, &a->cache};
    int c;
    a->bind = GS_SERVER_DEFAULT_ENDPOINT;
    a->fmt = GS_FORMAT_TEXT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c >= O_DB && c <= O_CACHE)
            *str[c - O_DB] = optarg;
        else if (c == O_REMOTE)
            a->allow_remote = true;
        else if (c == O_INSECURE)
            a->allow_insecure = true;
        else if (c == O_WORKERS && gs_parse_int(optarg, 1, 256, &a->workers) != GS_OK)
            return gs_cli_usage_error("serve", "--workers wants 1..256, not \"%s\"", optarg);
        else if (c == O_THREADS && gs_parse_int(optarg, 1, 256, &a->threads) != GS_OK)
            return gs_cli_usage_error("serve", "--threads wants 1..256, not \"%s\"", optarg);
        else if (c == O_NPROBE && gs_parse_int(optarg, 1, 65536, &a->nprobe) != GS_OK)
            return gs_cli_usage_error("serve", "--nprobe wants 1..65536, not \"%s\"", optarg);
        else if (c == O_MAXREQ && (gs_parse_size(optarg, &a->max_request) != GS_OK ||
                                   a->max_request < 1024 || a->max_request > ((uint64_t)1 << 30)))
            return gs_cli_usage_error("serve", "--max-request wants 1K..1G, not \"%s\"", optarg);
        else if (c == O_FORMAT && gs_cli_parse_format("serve", optarg, false, &a->fmt) != 0)
            return 2;
        else if (c == '?')
            return 2;
    }
    if (optind < argc)
        return gs_cli_usage_error("serve", "unexpected argument \"%s\"", argv[optind]);
    if (a->gen_keys)
        return 0;
    if (!a->db)
        return gs_cli_usage_error("serve", "--db DIR is required");
    if (a->allow_remote && !gs_endpoint_is_local(a->bind) && !a->secret_key && !a->allow_insecure)
        return gs_cli_usage_error("serve",
                                  "serving \"%s\" beyond this machine needs CURVE keys "
                                  "(--curve-secret-key FILE; make them with --gen-keys PREFIX) "
                                  "or --allow-insecure",
                                  a->bind);
    return 0;
}

static void print_ready(const args_t *a, gs_server_t *srv, gs_http_t *http)
{
    if (a->fmt == GS_FORMAT_JSON) {
        printf("{\"db\":");
        gs_buf_t b;
        gs_buf_init(&b, 8192);
        gs_buf_json_str(&b, a->db);
        printf("%s,\"zmq\":\"%s\",\"http\":%s%s%s,\"curve\":%s}\n", b.data, gs_server_endpoint(srv),
               http ? "\"" : "", http ? gs_http_url(http) : "null", http ? "\"" : "",
               a->secret_key ? "true" : "false");
        gs_buf_cleanup(&b);
    } else {
        printf("serving %s\n  zmq  %s%s\n", a->db, gs_server_endpoint(srv),
               a->secret_key ? " (CURVE)" : "");
        if (http)
            printf("  http %s\n", gs_http_url(http));
    }
    fflush(stdout);
}

static int serve(const args_t *a)
{
    char err[512], key[41];
    serve_t sv = {.t_start = gs_clock_s()};
    gs_search_opts_t so = {.model = a->model,
                           .arch = a->arch,
                           .config = a->config,
                           .vocab = a->vocab,
                           .n_threads = a->threads,
                           .nprobe = a->nprobe,
                           .faiss_threads = 1, // requests run side by side: one thread each
                           .preload = true};
    gs_server_t *srv = NULL;
    gs_http_t *http = NULL;
    gs_job_t *thumb_job = NULL, *change_job = NULL;
    char cache_key[128];
    int rc = 1;
    gs_err e = GS_OK;
    if (a->secret_key && gs_curve_read_key(a->secret_key, "secret-key", key, err, sizeof err))
        goto fail;
    if ((e = gs_search_open(a->db, &so, &sv.search, err, sizeof err)) != GS_OK)
        goto fail;
    // Change search (docs/CHANGES.md) for ZeroMQ and /api/changes, when the output has change
    // records; without them change requests get GS_ENOTFOUND with the reason.
    gs_chsearch_opts_t co = {
        .model = a->model, .arch = a->arch, .vocab = a->vocab, .n_threads = a->threads};
    sv.changes_code =
        gs_chsearch_open(a->db, &co, &sv.changes, sv.changes_err, sizeof sv.changes_err);
    if (sv.changes_code != GS_OK)
        GS_LOG_INFO("no change search: %s", sv.changes_err);
    gs_server_opts_t o = {.endpoint = a->bind,
                          .allow_remote = a->allow_remote,
                          .curve_secret_key = a->secret_key ? key : NULL,
                          .curve_clients = a->clients,
                          .n_workers = a->workers,
                          .max_request_nbytes = (size_t)a->max_request,
                          .handle = handle,
                          .error = error_reply,
                          .ud = &sv};
    if ((e = gs_server_new(&o, &srv, err, sizeof err)) != GS_OK)
        goto fail;
    if (a->http) {
        gs_http_opts_t ho = {.addr = a->http,
                             .allow_remote = a->allow_remote,
                             .web_dir = a->web,
                             .leaflet_dir = a->leaflet,
                             .cache_dir = a->cache,
                             .thumb = render_thumb,
                             .thumb_ud = (thumb_job = output_job(a->db, "job.yaml",
                                                                 "thumbnails from the rasters' "
                                                                 "first bands"))};
        // The cached thumbnails depend on how they are drawn and on whether the output holds
        // the ingest's job (without it: the rasters' first bands); the settings the jobs hold
        // cannot change between runs into one output (the settings identity), so they are not
        // part of the key and a nightly run keeps the cache.
        snprintf(cache_key, sizeof cache_key, "geoscribe thumbnails %d, %s\n", GS_THUMB_VERSION,
                 thumb_job ? "composed with OUT/job.yaml" : "the rasters' first bands");
        ho.cache_key = cache_key;
        ho.changes = sv.changes; // NULL: no change records, /api/changes answers 404
        if (sv.changes &&
            (change_job = output_job(a->db, "changes.yaml", "no thumbnails of change pairs")))
            ho.change_thumb = render_change_thumb, ho.change_thumb_ud = change_job;
        if ((e = gs_http_start(sv.search, &ho, &http, err, sizeof err)) != GS_OK)
            goto fail;
    }
    g_server = srv;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); // a client gone mid-reply is an error return, not the end
    print_ready(a, srv, http);
    GS_LOG_INFO("serving \"%s\" zmq=%s http=%s vectors=%zu changes=%zu", a->db,
                gs_server_endpoint(srv), http ? gs_http_url(http) : "-",
                gs_search_ntotal(sv.search), sv.changes ? gs_chsearch_n_records(sv.changes) : 0);
    e = gs_server_run(srv);
    g_server = NULL;
    GS_LOG_INFO("stopping: requests=%llu searches=%llu errors=%llu",
                (unsigned long long)atomic_load(&sv.n_requests),
                (unsigned long long)atomic_load(&sv.n_searches),
                (unsigned long long)atomic_load(&sv.n_errors));
    rc = e == GS_OK ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "geoscribe serve: %s\n", err);
out:
    gs_http_stop(&http);
    gs_chsearch_close(&sv.changes);
    gs_server_destroy(&srv);
    gs_search_close(&sv.search);
    gs_job_destroy(&thumb_job);
    gs_job_destroy(&change_job);
    return rc;
}

static int run(int argc, char **argv)
{
    args_t a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    return a.gen_keys ? gen_keys(a.gen_keys) : serve(&a);
}

const gs_cli_cmd_t gs_cli_cmd_serve = {
    .name = "serve",
    .summary = "serve an output: ZeroMQ query API, HTTP API and web map",
    .usage =
        "usage: geoscribe serve --db DIR [--bind ENDPOINT] [--http ADDR] [options]\n"
        "       geoscribe serve --gen-keys PREFIX\n"
        "\n"
        "Answers searches over the output DIR (of `geoscribe ingest`) until SIGINT or SIGTERM.\n"
        "ZeroMQ: a ROUTER socket taking geoscribe.query.Request messages (proto/query.proto;\n"
        "clients: `geoscribe query --server ENDPOINT`). HTTP: the web map page at / and the\n"
        "API /api/search, /api/changes, /api/tile/<id>.png, /api/health (docs/QUERY.md).\n"
        "Change search (of `geoscribe changes`) is served when the output has change records.\n"
        "When ready it prints the endpoints on stdout (--format json: one JSON object).\n"
        "\n"
        "  --bind ENDPOINT        ZeroMQ endpoint (tcp://127.0.0.1:7700; port '*' = any free)\n"
        "  --http ADDR            also serve HTTP on [IPV4:]PORT (loopback unless given)\n"
        "  --allow-remote         allow endpoints reachable from other machines\n"
        "  --curve-secret-key F   encrypt with CURVE (the server's key file from --gen-keys);\n"
        "                         required beyond loopback unless --allow-insecure\n"
        "  --curve-clients F      accept only the client public keys listed in F\n"
        "  --gen-keys PREFIX      write a key pair PREFIX.key (secret) and PREFIX.pub, and exit\n"
        "  --workers N            threads answering ZeroMQ requests (2)\n"
        "  --max-request SIZE     larger requests get an error reply (16M)\n"
        "  --model M              the encoder (default: recorded in the output; another model\n"
        "                         is refused); --arch, --config, --vocab as for embed\n"
        "  --threads N            encoder threads (1); --nprobe N: IVF lists probed\n"
        "  --web DIR, --leaflet DIR   page sources and Leaflet's dist/ (defaults: the source\n"
        "                         tree's web/ and what deploy/setup.sh installed)\n"
        "  --cache DIR            thumbnail cache folder (OUT/cache/thumbs); thumbnails drawn\n"
        "                         another way are removed from it at start\n"
        "\n"
        "examples:\n"
        "  geoscribe serve --db out --http 8080      # then open http://127.0.0.1:8080/\n"
        "  geoscribe serve --gen-keys server && geoscribe serve --db out --allow-remote \\\n"
        "      --bind tcp://0.0.0.0:7700 --curve-secret-key server.key",
    .order = 61,
    .run = run,
};
