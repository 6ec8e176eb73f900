// The query service end to end: a real `geoscribe serve` process on loopback answers 10,000
// mixed requests from 8 client threads (searches checked hit for hit against a local search,
// health, stats, malformed, empty, oversized and invalid requests), keeps answering afterwards
// and stops cleanly on SIGTERM; CURVE with an allow-list of client keys; binding beyond
// loopback refused unless explicit; change search (query/chsearch.h) over a real change store
// made by `geoscribe ingest` + `geoscribe changes` of the Landsat Pucallpa series: canned
// change requests checked hit for hit against a local search, filters, error replies for bad
// change requests, and `geoscribe query --server --changes` printing the bytes of `--db`.
#include <check.h>
#include <ctype.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/fs.h"
#include "proto/query.pb-c.h"
#include "query/chsearch.h"
#include "query/client.h"
#include "query/format.h"
#include "query/search.h"
#include "query/server.h"
#include "query_mkdb.h"
#include "testutil.h"

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_step(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// ---- a server process -----------------------------------------------------------------------

typedef struct {
    pid_t pid;
    char endpoint[256];
    char line[4096];
} proc_t;

// spawn_serve: starts `geoscribe serve --format json ARGS...` and reads its ready line.
static int spawn_serve(proc_t *p, const char *const *args)
{
    const char *argv[32] = {GS_BIN, "serve", "--format", "json"};
    int n = 4;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    int rc = posix_spawn(&p->pid, GS_BIN, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    ck_assert_int_eq(rc, 0);
    size_t len = 0;
    p->line[0] = '\0';
    double t0 = now_s();
    while (!strchr(p->line, '\n') && now_s() - t0 < 60) {
        struct pollfd pf = {fd[0], POLLIN, 0};
        if (poll(&pf, 1, 500) <= 0)
            continue;
        ssize_t r = read(fd[0], p->line + len, sizeof p->line - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        p->line[len] = '\0';
    }
    close(fd[0]);
    const char *z = strstr(p->line, "\"zmq\":\"");
    if (!z)
        return -1;
    z += 7;
    size_t zn = strcspn(z, "\"");
    memcpy(p->endpoint, z, zn);
    p->endpoint[zn] = '\0';
    return 0;
}

// stop_serve: signal, then the exit status (-1 if it did not exit within 10 s).
static int stop_serve(proc_t *p, int sig)
{
    kill(p->pid, sig);
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    return -1;
}

// run_status: exit status of `geoscribe serve ARGS` (which must exit by itself), its stderr in err.
static int run_status(const char *args, char *err, size_t err_nbytes)
{
    char cmd[8192], path[4200];
    snprintf(path, sizeof path, "%s/query_server_err.%d", GS_TEST_TMP, (int)getpid());
    snprintf(cmd, sizeof cmd, "timeout 20 '%s' serve %s >/dev/null 2>'%s'", GS_BIN, args, path);
    int st = system(cmd);
    char *text = NULL;
    size_t n = 0;
    err[0] = '\0';
    if (gs_read_file(path, 1 << 16, &text, &n) == GS_OK) {
        snprintf(err, err_nbytes, "%s", text);
        gs_free(text);
    }
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// ---- messages -------------------------------------------------------------------------------

static size_t pack_request(const Geoscribe__Query__Request *r, gs_buf_t *out)
{
    size_t n = geoscribe__query__request__get_packed_size(r);
    gs_buf_reset(out);
    uint8_t *tmp = gs_xmalloc(n ? n : 1);
    geoscribe__query__request__pack(r, tmp);
    gs_buf_append(out, tmp, n);
    gs_free(tmp);
    return n;
}

// call: one request, the unpacked reply (free with geoscribe__query__reply__free_unpacked), or
// NULL on a transport error (err filled).
static Geoscribe__Query__Reply *call(gs_qclient_t *c, const void *req, size_t n, gs_buf_t *reply,
                                     char *err, size_t err_nbytes)
{
    if (gs_qclient_call(c, req, n, reply, err, err_nbytes) != GS_OK)
        return NULL;
    Geoscribe__Query__Reply *r =
        geoscribe__query__reply__unpack(NULL, reply->len, (const uint8_t *)reply->data);
    if (!r)
        snprintf(err, err_nbytes, "malformed reply of %zu bytes", reply->len);
    return r;
}

static Geoscribe__Query__Reply *health(gs_qclient_t *c, gs_buf_t *req, gs_buf_t *rep, char *err)
{
    Geoscribe__Query__HealthRequest h = GEOSCRIBE__QUERY__HEALTH_REQUEST__INIT;
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_HEALTH;
    r.health = &h;
    size_t n = pack_request(&r, req);
    return call(c, req->data, n, rep, err, 256);
}

// ---- the test output ------------------------------------------------------------------------

static char g_dir[4200];
static qmk_truth_t g_truth;

static void setup_db(void)
{
    if (!gs_test_shared())
        return;
    const char *tmp = gs_test_tmpdir("query_server");
    ck_assert_ptr_nonnull(tmp);
    snprintf(g_dir, sizeof g_dir, "%s/out", tmp);
    qmk_opts_t o = {.out = g_dir,
                    .n_tiles = 2000,
                    .index = "Flat",
                    .shared = gs_test_shared(),
                    .truth_only = true};
    ck_assert_int_eq(qmk_make(&o, &g_truth), 0);
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2000 Flat 2>/dev/null", QMK_BIN, g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void teardown_db(void)
{
    if (g_truth.n)
        qmk_free(&g_truth);
}

// ---- 10,000 mixed requests ------------------------------------------------------------------

enum { N_CANNED = 12, N_THREADS = 8, N_REQUESTS = 10000 };

static const char *CANNED_TEXT[N_CANNED] = {
    "a river near the hills", "airport",        "dense forest", "a harbor on the coast", "farmland",
    "a town near a lake",     "flooded fields", "bare ground",  "green trees",           "a road",
    "ships in a harbor",      "a dry river bed"};

typedef struct {
    gs_search_req_t req;
    char from[32], to[32], scene[64];
    gs_search_hit_t *hits; // expected, from a local search
    size_t n_hits;
} canned_t;

static canned_t g_canned[N_CANNED];
static gs_arena_t *g_expect_arena;

static void make_expected(void)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_search_t *s = NULL;
    ck_assert_msg(gs_search_open(g_dir, NULL, &s, err, sizeof err) == GS_OK, "%s", err);
    g_expect_arena = gs_arena_new(1 << 20, 0);
    for (int i = 0; i < N_CANNED; i++) {
        canned_t *c = &g_canned[i];
        c->req = (gs_search_req_t){.text = CANNED_TEXT[i], .k = (size_t)(1 + i * 37 % 300)};
        if (i % 3 == 1) {
            c->req.has_bbox = true;
            double b[4] = {10.2, 45.1, 10.9 + 0.05 * i, 45.6};
            memcpy(c->req.bbox, b, sizeof b);
        }
        if (i % 4 == 2) {
            snprintf(c->from, sizeof c->from, "2020-02");
            snprintf(c->to, sizeof c->to, "2020-05-15");
            c->req.has_from = c->req.has_to = true;
            c->req.from = 1580515200; // 2020-02-01
            c->req.to = 1589587199;   // 2020-05-15T23:59:59Z
        }
        if (i % 5 == 4) {
            snprintf(c->scene, sizeof c->scene, "RGB.byte.tif");
            c->req.scene = c->scene;
        }
        gs_search_result_t res;
        ck_assert_msg(gs_search_run(s, &c->req, g_expect_arena, &res, err, sizeof err) == GS_OK,
                      "%s", err);
        c->hits = res.hits;
        c->n_hits = res.n_hits;
        ck_assert_uint_gt(c->n_hits, 0);
    }
    gs_search_close(&s);
}

typedef struct {
    int idx;
    const char *endpoint;
    size_t n_done, n_errors_expected;
    char fail[512];
} worker_t;

// expect_error: the reply is an ErrorReply with this code.
static bool expect_error(const Geoscribe__Query__Reply *r, gs_err code, char *fail, size_t n,
                         const char *what)
{
    if (r && r->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR && r->error->code == (int)code &&
        r->error->message[0])
        return true;
    snprintf(fail, n, "%s: expected %s, got %s %d (reply to request %llu)", what, gs_err_name(code),
             r ? (r->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR ? r->error->name : "reply")
               : "nothing",
             r ? (int)r->body_case : -1, r ? (unsigned long long)r->request_id : 0ULL);
    return false;
}

static bool check_search(const canned_t *c, const Geoscribe__Query__Reply *r, char *fail, size_t n)
{
    if (!r || r->body_case != GEOSCRIBE__QUERY__REPLY__BODY_SEARCH) {
        snprintf(fail, n, "search \"%s\": %s", c->req.text,
                 r && r->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR ? r->error->message
                                                                          : "no search reply");
        return false;
    }
    if (r->search->n_hits != c->n_hits) {
        snprintf(fail, n, "search \"%s\": %zu hits, locally %zu", c->req.text, r->search->n_hits,
                 c->n_hits);
        return false;
    }
    for (size_t i = 0; i < c->n_hits; i++) {
        const Geoscribe__Query__Hit *h = r->search->hits[i];
        const gs_search_hit_t *w = &c->hits[i];
        if (h->tile_id != w->tile_id || fabsf(h->score - w->score) > 1e-6f || h->rank != w->rank ||
            h->has_caption != (w->caption != NULL) ||
            (w->caption && strcmp(h->caption, w->caption)) || strcmp(h->scene, w->scene_uri) ||
            h->n_bbox != 4 || memcmp(h->bbox, w->bbox, sizeof w->bbox)) {
            snprintf(fail, n, "search \"%s\" hit %zu: tile %llu score %g, locally %llu %g",
                     c->req.text, i, (unsigned long long)h->tile_id, h->score,
                     (unsigned long long)w->tile_id, w->score);
            return false;
        }
    }
    return true;
}

static void *worker_main(void *p)
{
    worker_t *w = p;
    char err[256];
    gs_qclient_opts_t co = {.timeout_ms = 60000};
    gs_qclient_t *c = NULL;
    if (gs_qclient_open(w->endpoint, &co, &c, err, sizeof err) != GS_OK) {
        snprintf(w->fail, sizeof w->fail, "client: %s", err);
        return NULL;
    }
    gs_buf_t req, rep;
    gs_buf_init(&req, 4u << 20);
    gs_buf_init(&rep, 64u << 20);
    uint8_t *big = gs_xcalloc(1, (1u << 20) + 100000);
    char *long_text = gs_xcalloc(1, 5001);
    memset(long_text, 'x', 5000);
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->idx + 1);
    for (int i = w->idx; i < N_REQUESTS && !w->fail[0]; i += N_THREADS) {
        Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
        Geoscribe__Query__SearchRequest sr = GEOSCRIBE__QUERY__SEARCH_REQUEST__INIT;
        Geoscribe__Query__StatsRequest st = GEOSCRIBE__QUERY__STATS_REQUEST__INIT;
        Geoscribe__Query__HealthRequest hr = GEOSCRIBE__QUERY__HEALTH_REQUEST__INIT;
        r.request_id = (uint64_t)i;
        r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_SEARCH;
        r.search = &sr;
        const canned_t *cn = &g_canned[i / 20 % N_CANNED];
        double bbox3[3] = {1, 2, 3};
        int kind = i % 100 == 99 ? 99 : i % 20;
        const void *raw = NULL;
        size_t raw_n = 0;
        switch (kind) {
        case 10: // query by example
            sr.like_tile = g_truth.ids[i % g_truth.n];
            sr.k = 3;
            break;
        case 11:
            r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_HEALTH;
            r.health = &hr;
            break;
        case 12:
            r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_STATS;
            r.stats = &st;
            break;
        case 13: // garbage bytes
            for (int j = 0; j < 64; j++)
                big[j] = (uint8_t)(rng_step(&rng) | 0x80);
            raw = big, raw_n = 64;
            break;
        case 14: // an empty message
            raw = "", raw_n = 0;
            break;
        case 15: // a bad field
            sr.text = "river";
            sr.n_bbox = 3;
            sr.bbox = bbox3;
            break;
        case 16: sr.like_tile = 12345; break;
        case 17:
            sr.text = "river";
            sr.k = 200000;
            break;
        case 18: sr.text = long_text; break;
        case 99: // over the server's --max-request of 1 MiB
            raw = big, raw_n = (1u << 20) + 1000;
            break;
        default: // 0..9 and 19: a canned search, checked hit for hit
            sr.text = (char *)cn->req.text;
            sr.k = (uint32_t)cn->req.k;
            if (cn->req.has_bbox) {
                sr.n_bbox = 4;
                sr.bbox = (double *)cn->req.bbox;
            }
            sr.from = (char *)cn->from;
            sr.to = (char *)cn->to;
            sr.scene = (char *)cn->scene;
        }
        size_t n = raw ? raw_n : pack_request(&r, &req);
        Geoscribe__Query__Reply *rp = call(c, raw ? raw : req.data, n, &rep, err, sizeof err);
        bool ok = rp != NULL;
        if (!rp)
            snprintf(w->fail, sizeof w->fail, "request %d (kind %d): %s", i, kind, err);
        else if (kind < 10 || kind == 19)
            ok = check_search(cn, rp, w->fail, sizeof w->fail);
        else if (kind == 10)
            ok = rp->body_case == GEOSCRIBE__QUERY__REPLY__BODY_SEARCH && rp->search->n_hits == 3 &&
                 rp->search->hits[0]->tile_id == sr.like_tile;
        else if (kind == 11)
            ok = rp->body_case == GEOSCRIBE__QUERY__REPLY__BODY_HEALTH &&
                 !strcmp(rp->health->status, "ok") && rp->health->n_vectors == g_truth.n;
        else if (kind == 12)
            ok = rp->body_case == GEOSCRIBE__QUERY__REPLY__BODY_STATS &&
                 rp->stats->n_vectors == g_truth.n;
        else {
            gs_err want = kind == 13 || kind == 14 ? GS_EFORMAT
                          : kind == 15             ? GS_EINVAL
                          : kind == 16             ? GS_ENOTFOUND
                                                   : GS_ETOOBIG;
            ok = expect_error(rp, want, w->fail, sizeof w->fail, "bad request");
            w->n_errors_expected++;
        }
        if (rp && rp->request_id != r.request_id && !raw &&
            rp->body_case != GEOSCRIBE__QUERY__REPLY__BODY_ERROR)
            ok = false;
        if (getenv("QS_TRACE"))
            fprintf(stderr, "T client %d i=%d kind=%d n=%zu -> case %d id %llu\n", w->idx, i, kind,
                    n, rp ? (int)rp->body_case : -1,
                    rp ? (unsigned long long)rp->request_id : 0ULL);
        if (!ok && !w->fail[0])
            snprintf(w->fail, sizeof w->fail, "request %d (kind %d): unexpected reply", i, kind);
        geoscribe__query__reply__free_unpacked(rp, NULL);
        w->n_done++;
    }
    gs_free(big);
    gs_free(long_text);
    gs_buf_cleanup(&req);
    gs_buf_cleanup(&rep);
    gs_qclient_close(&c);
    return NULL;
}

START_TEST(test_server_10000_mixed_requests)
{
    GS_NEED_SHARED();
    make_expected();
    proc_t p;
    const char *args[] = {"--db",          g_dir, "--bind", "tcp://127.0.0.1:*",
                          "--max-request", "1M",  NULL};
    ck_assert_msg(spawn_serve(&p, args) == 0, "serve did not start: %s", p.line);
    worker_t w[N_THREADS];
    pthread_t th[N_THREADS];
    double t0 = now_s();
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker_t){.idx = i, .endpoint = p.endpoint};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    size_t n_done = 0, n_err = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        n_done += w[i].n_done;
        n_err += w[i].n_errors_expected;
    }
    double dt = now_s() - t0;
    fprintf(stderr,
            "query server: %zu requests from %d clients in %.1f s (%.0f/s), %zu error "
            "replies as expected\n",
            n_done, N_THREADS, dt, n_done / dt, n_err);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_msg(!w[i].fail[0], "client %d: %s", i, w[i].fail);
    ck_assert_uint_eq(n_done, N_REQUESTS);
    ck_assert_msg(dt < 240, "10,000 requests took %.0f s", dt);
    // Still answering, and counting.
    char err[256];
    gs_qclient_t *c = NULL;
    gs_buf_t req, rep;
    gs_buf_init(&req, 1 << 20);
    gs_buf_init(&rep, 1 << 20);
    ck_assert_int_eq(gs_qclient_open(p.endpoint, NULL, &c, err, sizeof err), GS_OK);
    Geoscribe__Query__Reply *h = health(c, &req, &rep, err);
    ck_assert_msg(h && h->body_case == GEOSCRIBE__QUERY__REPLY__BODY_HEALTH, "%s", err);
    ck_assert_str_eq(h->health->model_id, g_truth.model_id);
    geoscribe__query__reply__free_unpacked(h, NULL);
    Geoscribe__Query__StatsRequest st = GEOSCRIBE__QUERY__STATS_REQUEST__INIT;
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_STATS;
    r.stats = &st;
    size_t n = pack_request(&r, &req);
    Geoscribe__Query__Reply *s = call(c, req.data, n, &rep, err, sizeof err);
    ck_assert_msg(s && s->body_case == GEOSCRIBE__QUERY__REPLY__BODY_STATS, "%s", err);
    ck_assert_uint_ge(s->stats->n_requests, N_REQUESTS - N_REQUESTS / 100); // oversized: none
    ck_assert_uint_eq(s->stats->n_errors, n_err);
    geoscribe__query__reply__free_unpacked(s, NULL);
    gs_qclient_close(&c);
    gs_buf_cleanup(&req);
    gs_buf_cleanup(&rep);
    ck_assert_int_eq(stop_serve(&p, SIGTERM), 0);
    gs_arena_destroy(&g_expect_arena);
}
END_TEST

// ---- CURVE ----------------------------------------------------------------------------------

static void read_key(const char *path, const char *kind, char key[41])
{
    char err[256];
    ck_assert_msg(gs_curve_read_key(path, kind, key, err, sizeof err) == GS_OK, "%s", err);
}

static bool health_ok(const char *ep, const gs_qclient_opts_t *o)
{
    char err[256];
    gs_qclient_t *c = NULL;
    gs_buf_t req, rep;
    gs_buf_init(&req, 1 << 16);
    gs_buf_init(&rep, 1 << 20);
    ck_assert_int_eq(gs_qclient_open(ep, o, &c, err, sizeof err), GS_OK);
    Geoscribe__Query__Reply *h = health(c, &req, &rep, err);
    bool ok = h && h->body_case == GEOSCRIBE__QUERY__REPLY__BODY_HEALTH;
    geoscribe__query__reply__free_unpacked(h, NULL);
    gs_qclient_close(&c);
    gs_buf_cleanup(&req);
    gs_buf_cleanup(&rep);
    return ok;
}

START_TEST(test_server_curve_and_client_keys)
{
    GS_NEED_SHARED();
    const char *tmp = gs_test_tmpdir("query_curve");
    char dir[4200], cmd[9000], srv[4300], cli[4300], other[4300], allowed[4300], e[4096];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(srv, sizeof srv, "%s/server", dir);
    snprintf(cli, sizeof cli, "%s/client", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    snprintf(allowed, sizeof allowed, "%s/client.pub", dir);
    const char *prefixes[] = {srv, cli, other};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "--gen-keys '%s'", prefixes[i]);
        ck_assert_int_eq(run_status(cmd, e, sizeof e), 0);
    }
    char key_path[4400];
    snprintf(key_path, sizeof key_path, "%s.key", srv);
    proc_t p;
    const char *args[] = {"--db",
                          g_dir,
                          "--bind",
                          "tcp://127.0.0.1:*",
                          "--curve-secret-key",
                          key_path,
                          "--curve-clients",
                          allowed,
                          NULL};
    ck_assert_msg(spawn_serve(&p, args) == 0, "serve did not start: %s", p.line);
    ck_assert_ptr_nonnull(strstr(p.line, "\"curve\":true"));
    char spub[41], csec[41], osec[41];
    snprintf(key_path, sizeof key_path, "%s.pub", srv);
    read_key(key_path, "public-key", spub);
    snprintf(key_path, sizeof key_path, "%s.key", cli);
    read_key(key_path, "secret-key", csec);
    snprintf(key_path, sizeof key_path, "%s.key", other);
    read_key(key_path, "secret-key", osec);
    gs_qclient_opts_t good = {
        .timeout_ms = 10000, .curve_server_key = spub, .curve_secret_key = csec};
    ck_assert(health_ok(p.endpoint, &good));
    gs_qclient_opts_t stranger = {
        .timeout_ms = 1500, .curve_server_key = spub, .curve_secret_key = osec};
    ck_assert(!health_ok(p.endpoint, &stranger));
    gs_qclient_opts_t plain = {.timeout_ms = 1500};
    ck_assert(!health_ok(p.endpoint, &plain));
    ck_assert(health_ok(p.endpoint, &good)); // still serving
    ck_assert_int_eq(stop_serve(&p, SIGINT), 0);
}
END_TEST

// Key files: Z85 keys may hold '#' and '=', and still read as keys.
START_TEST(test_curve_key_files)
{
    char pub[41], sec[41], hash_key[41] = "", eq_key[41] = "", err[512], key[41];
    for (int i = 0; i < 20000 && (!hash_key[0] || !eq_key[0]); i++) {
        ck_assert_int_eq(gs_curve_keypair(pub, sec), GS_OK);
        if (strchr(pub, '#')) // (never first: a 32-bit group is below 83 * 85^4)
            memcpy(hash_key, pub, 41);
        if (strchr(pub, '=') && !strchr(pub, '#'))
            memcpy(eq_key, pub, 41);
    }
    ck_assert(hash_key[0] && eq_key[0]);
    const char *dir = gs_test_tmpdir("query_keys");
    char path[4200], text[512];
    snprintf(path, sizeof path, "%s/keys", dir);
    snprintf(text, sizeof text, "# comment\n\n%s\r\n  public-key = \"%s\"\nsecret-key = \"%s\"\n",
             hash_key, eq_key, sec);
    ck_assert_int_eq(gs_write_file_atomic(path, text, strlen(text)), GS_OK);
    ck_assert_int_eq(gs_curve_read_key(path, "public-key", key, err, sizeof err), GS_OK);
    ck_assert_str_eq(key, hash_key); // the bare key comes first
    ck_assert_int_eq(gs_curve_read_key(path, "secret-key", key, err, sizeof err), GS_OK);
    ck_assert_str_eq(key, hash_key);
    snprintf(text, sizeof text, "public-key = \"%s\"\nsecret-key = \"%s\"\n", eq_key, sec);
    ck_assert_int_eq(gs_write_file_atomic(path, text, strlen(text)), GS_OK);
    ck_assert_int_eq(gs_curve_read_key(path, "public-key", key, err, sizeof err), GS_OK);
    ck_assert_str_eq(key, eq_key);
    ck_assert_int_eq(gs_curve_read_key(path, "secret-key", key, err, sizeof err), GS_OK);
    ck_assert_str_eq(key, sec);
    snprintf(text, sizeof text, "public-key = \"tooshort\"\n");
    ck_assert_int_eq(gs_write_file_atomic(path, text, strlen(text)), GS_OK);
    ck_assert_int_eq(gs_curve_read_key(path, "public-key", key, err, sizeof err), GS_EFORMAT);
    ck_assert_int_eq(gs_curve_read_key(path, "secret-key", key, err, sizeof err), GS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "holds no secret-key"));
    snprintf(path, sizeof path, "%s/none", dir);
    ck_assert_int_eq(gs_curve_read_key(path, "public-key", key, err, sizeof err), GS_ENOTFOUND);
}
END_TEST

START_TEST(test_server_remote_bind_is_explicit)
{
    GS_NEED_SHARED();
    char args[5000], e[4096];
    snprintf(args, sizeof args, "--db '%s' --bind 'tcp://0.0.0.0:*'", g_dir);
    ck_assert_int_eq(run_status(args, e, sizeof e), 1);
    ck_assert_msg(strstr(e, "--allow-remote"), "%s", e);
    snprintf(args, sizeof args, "--db '%s' --bind 'tcp://0.0.0.0:*' --allow-remote", g_dir);
    ck_assert_int_eq(run_status(args, e, sizeof e), 2);
    ck_assert_msg(strstr(e, "--curve-secret-key"), "%s", e);
    snprintf(args, sizeof args, "--db '%s' --bind 'tcp://127.0.0.1:*' --http 0.0.0.0:0", g_dir);
    ck_assert_int_eq(run_status(args, e, sizeof e), 1);
    ck_assert_msg(strstr(e, "--allow-remote"), "%s", e);
    ck_assert(gs_endpoint_is_local("tcp://127.0.0.1:7700"));
    ck_assert(gs_endpoint_is_local("tcp://localhost:1"));
    ck_assert(gs_endpoint_is_local("tcp://[::1]:7700"));
    ck_assert(gs_endpoint_is_local("ipc:///tmp/x"));
    ck_assert(!gs_endpoint_is_local("tcp://*:7700"));
    ck_assert(!gs_endpoint_is_local("tcp://0.0.0.0:7700"));
    ck_assert(!gs_endpoint_is_local("tcp://eth0:7700"));
    ck_assert(!gs_endpoint_is_local("tcp://127.0.0.1.evil:7700"));
    ck_assert(!gs_endpoint_is_local("tcp://10.0.0.1:7700"));
    // A taken port fails at start, with the endpoint in the message.
    proc_t p;
    const char *a1[] = {"--db", g_dir, "--bind", "tcp://127.0.0.1:*", NULL};
    ck_assert_msg(spawn_serve(&p, a1) == 0, "serve did not start: %s", p.line);
    snprintf(args, sizeof args, "--db '%s' --bind '%s'", g_dir, p.endpoint);
    ck_assert_int_eq(run_status(args, e, sizeof e), 1);
    ck_assert_msg(strstr(e, p.endpoint), "%s", e);
    ck_assert_int_eq(stop_serve(&p, SIGTERM), 0);
}
END_TEST

// ---- change search (ChangeSearchRequest) ---------------------------------------------------

#define PUC GS_SHARED_DIR "/data/scenes/landsat-pucallpa"
#define CH_N_PAIRS 3   // 2005>2010, 2010>2015, 2015>2020
#define CH_PER_PAIR 18 // 697 x 377 px in 128-px tiles: 6 x 3 cells
#define CH_CAPTIONED 5 // top 25 % of 18

static char g_ch_dir[4200], g_ch_out[4300];

// setup_changes: ingest + changes of four Pucallpa dates with the tiny fixture models (the job
// of tests/test_changes.c), once for the TCase.
static void setup_changes(void)
{
    if (!gs_test_shared())
        return;
    const char *tmp = gs_test_tmpdir("query_server_changes");
    ck_assert_ptr_nonnull(tmp);
    snprintf(g_ch_dir, sizeof g_ch_dir, "%s", tmp);
    snprintf(g_ch_out, sizeof g_ch_out, "%s/out", g_ch_dir);
    char job[4400], cmd[16384];
    snprintf(job, sizeof job, "%s/job.yaml", g_ch_dir);
    FILE *f = fopen(job, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "name: t\ninputs: [%s/2005.tif, %s/2010.tif, %s/2015.tif, %s/2020.tif]\n"
            "output: %s\ntiling: {size: 128}\ncomposite: {bands: [1, 2, 3], scaling: none}\n"
            "time: {from: filename, pattern: \"%%Y.tif\"}\n"
            "encoder: {model: %s/fixtures/openclip_tiny, vocab: "
            "%s/fixtures/clip_bpe/bpe_simple_vocab_16e6.txt.gz, batch: 8, threads: 1}\n"
            "captioner: {max_tokens: 12}\n"
            "changes: {max_gap_days: 2000, top_fraction: 0.25, caption_model: "
            "%s/fixtures/llava_tiny}\n",
            PUC, PUC, PUC, PUC, g_ch_out, GS_SHARED_DIR, GS_SHARED_DIR, GS_SHARED_DIR);
    fclose(f);
    const char *steps[] = {"ingest", "changes"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, GS_TEST_MPI_ENV "'%s' %s '%s' >'%s/%s.log' 2>&1", GS_BIN, steps[i], job,
                 g_ch_dir, steps[i]);
        int st = system(cmd);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "geoscribe %s failed: see %s/%s.log",
                      steps[i], g_ch_dir, steps[i]);
    }
}

static void teardown_changes(void) {}

static Geoscribe__Query__Reply *change_call(gs_qclient_t *c,
                                            const Geoscribe__Query__ChangeSearchRequest *cr,
                                            uint64_t id, gs_buf_t *req, gs_buf_t *rep, char *err)
{
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.request_id = id;
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_CHANGES;
    r.changes = (Geoscribe__Query__ChangeSearchRequest *)cr;
    size_t n = pack_request(&r, req);
    return call(c, req->data, n, rep, err, 256);
}

// same_changes: the reply holds exactly the local hits, field for field; returns the count.
static size_t same_changes(const Geoscribe__Query__Reply *r, const gs_chsearch_hit_t *w, size_t n,
                           uint64_t n_cand, const char *what)
{
    ck_assert_msg(r && r->body_case == GEOSCRIBE__QUERY__REPLY__BODY_CHANGES, "%s: %s", what,
                  r && r->body_case == GEOSCRIBE__QUERY__REPLY__BODY_ERROR ? r->error->message
                                                                           : "no change reply");
    const Geoscribe__Query__ChangeSearchReply *cs = r->changes;
    ck_assert_msg(cs->n_hits == n, "%s: %zu hits, locally %zu", what, cs->n_hits, n);
    ck_assert_uint_eq(cs->n_candidates, n_cand);
    for (size_t i = 0; i < n; i++) {
        const Geoscribe__Query__ChangeHit *h = cs->hits[i];
        char t0[32], t1[32];
        gs_qtime_format(w[i].before_time, t0, sizeof t0);
        gs_qtime_format(w[i].after_time, t1, sizeof t1);
        ck_assert_msg(h->rank == i + 1 && h->pair_id == w[i].pair_id &&
                          h->has_similarity == w[i].has_similarity &&
                          h->similarity == w[i].similarity && h->score == w[i].score,
                      "%s hit %zu: pair %llu score %g, locally %llu %g", what, i,
                      (unsigned long long)h->pair_id, h->score, (unsigned long long)w[i].pair_id,
                      w[i].score);
        ck_assert_uint_eq(h->before_tile_id, w[i].before_tile);
        ck_assert_uint_eq(h->after_tile_id, w[i].after_tile);
        ck_assert_uint_eq(h->before_scene_id, w[i].before_scene);
        ck_assert_uint_eq(h->after_scene_id, w[i].after_scene);
        ck_assert_str_eq(h->before_scene, w[i].before_uri);
        ck_assert_str_eq(h->after_scene, w[i].after_uri);
        ck_assert_int_eq(h->before_time_unix, w[i].before_time);
        ck_assert_int_eq(h->after_time_unix, w[i].after_time);
        ck_assert_str_eq(h->before_time, t0);
        ck_assert_str_eq(h->after_time, t1);
        ck_assert_uint_eq(h->n_bbox, 4);
        ck_assert(memcmp(h->bbox, w[i].bbox, sizeof w[i].bbox) == 0);
        ck_assert_int_eq(h->has_caption, w[i].caption != NULL);
        ck_assert_str_eq(h->caption, w[i].caption ? w[i].caption : "");
        ck_assert_str_eq(h->model_id, w[i].model_id);
    }
    return n;
}

// ci_contains: ASCII case-insensitive substring.
static bool ci_contains(const char *s, const char *sub)
{
    size_t n = strlen(sub);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && tolower((unsigned char)s[i]) == tolower((unsigned char)sub[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

typedef struct {
    gs_chsearch_t *local;
    gs_arena_t *arena;
    gs_qclient_t *c;
    gs_buf_t req, rep;
    uint64_t next_id;
    size_t n_ok;
} chctx_t;

// check_change: one request through the server and locally; the reply is the local answer.
// Returns the hits (in ctx->arena) and their count.
static gs_chsearch_hit_t *check_change(chctx_t *x, const Geoscribe__Query__ChangeSearchRequest *cr,
                                       const gs_chsearch_req_t *q, size_t *out_n, const char *what)
{
    char err[GS_SEARCH_ERR_NBYTES];
    gs_chsearch_hit_t *w = NULL;
    size_t n = 0;
    uint64_t n_cand = 0;
    ck_assert_msg(gs_chsearch_run(x->local, q, x->arena, &w, &n, &n_cand, err, sizeof err) == GS_OK,
                  "%s: %s", what, err);
    uint64_t id = ++x->next_id;
    Geoscribe__Query__Reply *r = change_call(x->c, cr, id, &x->req, &x->rep, err);
    ck_assert_msg(r, "%s: %s", what, err);
    ck_assert_uint_eq(r->request_id, id);
    same_changes(r, w, n, n_cand, what);
    geoscribe__query__reply__free_unpacked(r, NULL);
    x->n_ok++;
    *out_n = n;
    return w;
}

static void expect_change_error(chctx_t *x, const void *raw, size_t raw_n,
                                const Geoscribe__Query__ChangeSearchRequest *cr, gs_err code,
                                const char *what)
{
    char err[256], fail[512] = "";
    Geoscribe__Query__Reply *r = raw ? call(x->c, raw, raw_n, &x->rep, err, sizeof err)
                                     : change_call(x->c, cr, ++x->next_id, &x->req, &x->rep, err);
    ck_assert_msg(r, "%s: %s", what, err);
    bool ok = expect_error(r, code, fail, sizeof fail, what);
    geoscribe__query__reply__free_unpacked(r, NULL);
    ck_assert_msg(ok, "%s", fail);
}

START_TEST(test_server_change_search)
{
    GS_NEED_SHARED();
    char err[GS_SEARCH_ERR_NBYTES];
    chctx_t x = {.arena = gs_arena_new(1 << 20, 0)};
    ck_assert_msg(gs_chsearch_open(g_ch_out, NULL, &x.local, err, sizeof err) == GS_OK, "%s", err);
    const size_t n_all = CH_N_PAIRS * CH_PER_PAIR;
    ck_assert_uint_eq(gs_chsearch_n_records(x.local), n_all);
    proc_t p;
    const char *args[] = {"--db", g_ch_out, "--bind", "tcp://127.0.0.1:*", NULL};
    ck_assert_msg(spawn_serve(&p, args) == 0, "serve did not start: %s", p.line);
    gs_qclient_opts_t co = {.timeout_ms = 60000};
    ck_assert_int_eq(gs_qclient_open(p.endpoint, &co, &x.c, err, sizeof err), GS_OK);
    gs_buf_init(&x.req, 1 << 20);
    gs_buf_init(&x.rep, 64u << 20);
    Geoscribe__Query__Reply *h = health(x.c, &x.req, &x.rep, err);
    ck_assert_msg(h && h->body_case == GEOSCRIBE__QUERY__REPLY__BODY_HEALTH, "%s", err);
    ck_assert_uint_eq(h->health->n_changes, n_all);
    geoscribe__query__reply__free_unpacked(h, NULL);

    // No text: every record, by change score (non-increasing), both times 5 years apart.
    Geoscribe__Query__ChangeSearchRequest cr = GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.k = 1000;
    gs_chsearch_req_t q = {.k = 1000};
    size_t n = 0;
    gs_chsearch_hit_t *all = check_change(&x, &cr, &q, &n, "all by score");
    ck_assert_uint_eq(n, n_all);
    size_t n_captioned = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(!all[i].has_similarity);
        if (i)
            ck_assert(all[i].score <= all[i - 1].score);
        for (size_t j = 0; j < i; j++)
            ck_assert_uint_ne(all[i].pair_id, all[j].pair_id);
        double years = (double)(all[i].after_time - all[i].before_time) / 31557600.0;
        ck_assert_msg(fabs(years - 5) < 0.01, "pair %zu: %.3f years apart", i, years);
        ck_assert(strstr(all[i].before_uri, "landsat-pucallpa/") != NULL);
        n_captioned += all[i].caption != NULL;
    }
    ck_assert_uint_eq(n_captioned, CH_N_PAIRS * CH_CAPTIONED);
    // k out of range, locally: the codes of tile search (0 invalid, over the cap too big).
    {
        gs_chsearch_hit_t *w = NULL;
        uint64_t n_cand = 0;
        q = (gs_chsearch_req_t){.k = 0};
        ck_assert_int_eq(gs_chsearch_run(x.local, &q, x.arena, &w, &n, &n_cand, err, sizeof err),
                         GS_EINVAL);
        q.k = GS_CHSEARCH_K_MAX + 1;
        ck_assert_int_eq(gs_chsearch_run(x.local, &q, x.arena, &w, &n, &n_cand, err, sizeof err),
                         GS_ETOOBIG);
        ck_assert_msg(strstr(err, "over the limit") != NULL, "%s", err);
    }

    // Text: the captioned records only, by similarity (non-increasing); k = 3 is its head.
    cr.text = "new buildings";
    cr.k = 100;
    q = (gs_chsearch_req_t){.text = "new buildings", .k = 100};
    gs_chsearch_hit_t *tx = check_change(&x, &cr, &q, &n, "text");
    ck_assert_uint_eq(n, CH_N_PAIRS * CH_CAPTIONED);
    for (size_t i = 0; i < n; i++) {
        ck_assert(tx[i].has_similarity && tx[i].caption);
        if (i)
            ck_assert(tx[i].similarity <= tx[i - 1].similarity);
    }
    cr.k = 3;
    q.k = 3;
    gs_chsearch_hit_t *top3 = check_change(&x, &cr, &q, &n, "text k=3");
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_uint_eq(top3[i].pair_id, tx[i].pair_id);

    // Time window: both times inside 2010..2020 keeps the 2010>2015 and 2015>2020 pairs.
    cr = (Geoscribe__Query__ChangeSearchRequest)GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.k = 1000;
    cr.from = "2010";
    cr.to = "2020";
    q = (gs_chsearch_req_t){
        .k = 1000, .has_from = true, .has_to = true, .from = 1262304000, .to = 1609459199};
    gs_chsearch_hit_t *win = check_change(&x, &cr, &q, &n, "time window");
    ck_assert_uint_eq(n, 2 * CH_PER_PAIR);
    for (size_t i = 0; i < n; i++)
        ck_assert(win[i].before_time >= 1262304000 && win[i].after_time <= 1609459199);

    // Caption substring: the first word of the best caption, case-insensitively.
    char word[64];
    size_t wn = strcspn(tx[0].caption, " ");
    ck_assert_uint_gt(wn, 0);
    snprintf(word, sizeof word, "%.*s", (int)(wn < 63 ? wn : 63), tx[0].caption);
    for (char *c = word; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    size_t want = 0;
    for (size_t i = 0; i < n_all; i++)
        want += all[i].caption && ci_contains(all[i].caption, word);
    cr = (Geoscribe__Query__ChangeSearchRequest)GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.k = 1000;
    cr.caption_contains = word;
    q = (gs_chsearch_req_t){.k = 1000, .caption_contains = word};
    gs_chsearch_hit_t *sub = check_change(&x, &cr, &q, &n, "caption substring");
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_eq(n, want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ci_contains(sub[i].caption, word), "\"%s\" lacks \"%s\"", sub[i].caption,
                      word);

    // Box: a small box inside one tile meets that place in each of the three pairs.
    const double *tb = all[0].bbox;
    double cx = (tb[0] + tb[2]) / 2, cy = (tb[1] + tb[3]) / 2;
    double box[4] = {cx - 1e-4, cy - 1e-4, cx + 1e-4, cy + 1e-4};
    cr = (Geoscribe__Query__ChangeSearchRequest)GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.k = 1000;
    cr.n_bbox = 4;
    cr.bbox = box;
    q = (gs_chsearch_req_t){.k = 1000, .has_bbox = true};
    memcpy(q.bbox, box, sizeof box);
    gs_chsearch_hit_t *inbox = check_change(&x, &cr, &q, &n, "box");
    ck_assert_uint_eq(n, CH_N_PAIRS);
    for (size_t i = 0; i < n; i++)
        ck_assert(memcmp(inbox[i].bbox, tb, sizeof inbox[i].bbox) == 0);
    double far[4] = {10, 10, 11, 11};
    cr.bbox = far;
    memcpy(q.bbox, far, sizeof far);
    check_change(&x, &cr, &q, &n, "box far away");
    ck_assert_uint_eq(n, 0);

    // Bad change requests get error replies; the server goes on answering.
    const uint8_t garbage[] = {0x2a, 0x05, 0x0a, 0x09, 'b', 'a', 'd'}; // changes{text: truncated}
    expect_change_error(&x, garbage, sizeof garbage, NULL, GS_EFORMAT, "truncated change request");
    double bbox3[3] = {1, 2, 3}, badbox[4] = {-74, 5, -73, -5};
    char *long_text = gs_xcalloc(1, 5001);
    memset(long_text, 'x', 5000);
    Geoscribe__Query__ChangeSearchRequest bad[7];
    for (int i = 0; i < 7; i++)
        bad[i] =
            (Geoscribe__Query__ChangeSearchRequest)GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    bad[0].n_bbox = 3, bad[0].bbox = bbox3;
    bad[1].n_bbox = 4, bad[1].bbox = badbox;
    bad[2].from = "yesterday";
    bad[3].from = "2020", bad[3].to = "2010";
    bad[4].k = 200000;
    bad[5].text = long_text;
    bad[6].min_score = NAN;
    const gs_err codes[7] = {GS_EINVAL,  GS_EINVAL,  GS_EINVAL, GS_EINVAL,
                             GS_ETOOBIG, GS_ETOOBIG, GS_EINVAL};
    for (int i = 0; i < 7; i++) {
        char what[64];
        snprintf(what, sizeof what, "bad change request %d", i);
        expect_change_error(&x, NULL, 0, &bad[i], codes[i], what);
        cr = (Geoscribe__Query__ChangeSearchRequest)GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
        cr.k = 7;
        q = (gs_chsearch_req_t){.k = 7};
        check_change(&x, &cr, &q, &n, "valid after a bad one");
        ck_assert_uint_eq(n, 7);
    }
    gs_free(long_text);
    // Stats count the change searches answered.
    Geoscribe__Query__StatsRequest st = GEOSCRIBE__QUERY__STATS_REQUEST__INIT;
    Geoscribe__Query__Request r = GEOSCRIBE__QUERY__REQUEST__INIT;
    r.body_case = GEOSCRIBE__QUERY__REQUEST__BODY_STATS;
    r.stats = &st;
    size_t rn = pack_request(&r, &x.req);
    Geoscribe__Query__Reply *s = call(x.c, x.req.data, rn, &x.rep, err, 256);
    ck_assert_msg(s && s->body_case == GEOSCRIBE__QUERY__REPLY__BODY_STATS, "%s", err);
    ck_assert_uint_eq(s->stats->n_change_searches, x.n_ok);
    ck_assert_uint_eq(s->stats->n_errors, 8);
    geoscribe__query__reply__free_unpacked(s, NULL);

    // The command line through the server prints the bytes of the local search.
    const char *cli[] = {"new buildings -k 7", "-k 1000 --format text",
                         "--from 2010 --to 2020 -k 1000 --format geojson",
                         "--caption-contains a -k 100"};
    for (int i = 0; i < 4; i++) {
        static char cmd[65536];
        snprintf(cmd, sizeof cmd,
                 "'%s' query --db '%s' --changes %s >'%s/l%d.out' 2>/dev/null && "
                 "'%s' query --server '%s' --changes %s >'%s/s%d.out' && "
                 "test -s '%s/l%d.out' && cmp '%s/l%d.out' '%s/s%d.out'",
                 GS_BIN, g_ch_out, cli[i], g_ch_dir, i, GS_BIN, p.endpoint, cli[i], g_ch_dir, i,
                 g_ch_dir, i, g_ch_dir, i, g_ch_dir, i);
        ck_assert_msg(system(cmd) == 0, "query --server --changes %s differs from --db (%s)",
                      cli[i], g_ch_dir);
    }
    gs_qclient_close(&x.c);
    gs_buf_cleanup(&x.req);
    gs_buf_cleanup(&x.rep);
    ck_assert_int_eq(stop_serve(&p, SIGTERM), 0);
    gs_chsearch_close(&x.local);
    gs_arena_destroy(&x.arena);
}
END_TEST

// An output without change records: change requests get GS_ENOTFOUND, the rest is served.
START_TEST(test_server_change_search_without_records)
{
    GS_NEED_SHARED();
    char err[256];
    proc_t p;
    const char *args[] = {"--db", g_dir, "--bind", "tcp://127.0.0.1:*", NULL};
    ck_assert_msg(spawn_serve(&p, args) == 0, "serve did not start: %s", p.line);
    gs_qclient_t *c = NULL;
    gs_buf_t req, rep;
    gs_buf_init(&req, 1 << 16);
    gs_buf_init(&rep, 1 << 20);
    ck_assert_int_eq(gs_qclient_open(p.endpoint, NULL, &c, err, sizeof err), GS_OK);
    Geoscribe__Query__ChangeSearchRequest cr = GEOSCRIBE__QUERY__CHANGE_SEARCH_REQUEST__INIT;
    cr.text = "new buildings";
    Geoscribe__Query__Reply *r = change_call(c, &cr, 1, &req, &rep, err);
    char fail[512] = "";
    bool ok = expect_error(r, GS_ENOTFOUND, fail, sizeof fail, "change search without records");
    ck_assert_msg(ok, "%s", fail);
    ck_assert_ptr_nonnull(strstr(r->error->message, "change"));
    geoscribe__query__reply__free_unpacked(r, NULL);
    Geoscribe__Query__Reply *h = health(c, &req, &rep, err);
    ck_assert_msg(h && h->body_case == GEOSCRIBE__QUERY__REPLY__BODY_HEALTH, "%s", err);
    ck_assert_uint_eq(h->health->n_changes, 0);
    ck_assert_uint_eq(h->health->n_vectors, g_truth.n);
    geoscribe__query__reply__free_unpacked(h, NULL);
    gs_qclient_close(&c);
    gs_buf_cleanup(&req);
    gs_buf_cleanup(&rep);
    ck_assert_int_eq(stop_serve(&p, SIGTERM), 0);
}
END_TEST

Suite *query_server_suite(void)
{
    Suite *s = suite_create("query_server");
    TCase *tc = tcase_create("server");
    tcase_add_unchecked_fixture(tc, setup_db, teardown_db);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_server_10000_mixed_requests);
    tcase_add_test(tc, test_server_curve_and_client_keys);
    tcase_add_test(tc, test_server_remote_bind_is_explicit);
    tcase_add_test(tc, test_curve_key_files);
    tcase_add_test(tc, test_server_change_search_without_records);
    suite_add_tcase(s, tc);
    TCase *tch = tcase_create("changes");
    tcase_add_unchecked_fixture(tch, setup_changes, teardown_changes);
    tcase_set_timeout(tch, 600);
    tcase_add_test(tch, test_server_change_search);
    suite_add_tcase(s, tch);
    return s;
}
