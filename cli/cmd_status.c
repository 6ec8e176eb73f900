// `geoscribe status JOB.yaml | --db DIR [--format json]`: what an ingest output holds and how
// far its job is: planned / done / skipped / failed cells from the ledger, quarantined scenes,
// tile records, vectors in the persisted index, models and index type. Opens the store as a
// read-only secondary instance, so it works while a job runs.
#define GS_LOG_MODULE "cli"
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "index/capstore.h"
#include "index/layout.h"
#include "index/vindex.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"
#include "query/pubsub.h"

typedef struct {
    uint64_t n_tasks, n_done, n_failed, n_quarantined, n_pending; // tasks
    uint64_t cells, cells_done, cells_failed, tiles, skipped;     // cells
} ledger_t;

static int ledger_entry(const gs_job_rec_t *r, void *ud)
{
    ledger_t *l = ud;
    // keys "t/<scene 16 hex>/<first 8 hex>/<n 8 hex>" (coordinator/ingest_int.h)
    const char *k = r->task_key;
    if (strlen(k) != 36 || strncmp(k, "t/", 2) != 0)
        return 0;
    uint64_t n = 0;
    for (int i = 28; i < 36; i++) {
        char ch = k[i];
        n = n << 4 | (uint64_t)(ch >= 'a' ? ch - 'a' + 10 : ch - '0');
    }
    l->n_tasks++;
    l->cells += n;
    switch (r->state) {
    case GS_JOB_DONE:
    case GS_JOB_SKIPPED:
        l->n_done++;
        l->cells_done += n;
        l->tiles += r->n_tiles;
        l->skipped += r->n_skipped;
        break;
    case GS_JOB_FAILED:
        l->n_failed++;
        l->cells_failed += n;
        break;
    case GS_JOB_QUARANTINED: l->n_quarantined++; break;
    default: l->n_pending++;
    }
    return 0;
}

static size_t count_staged(const char *out)
{
    char *dir = gs_path_join(out, GS_LAYOUT_STAGING);
    DIR *d = opendir(dir);
    gs_free(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        n += len > 6 && strcmp(de->d_name + len - 6, ".shard") == 0;
    }
    closedir(d);
    return n;
}

static const char *meta(gs_capstore_t *s, gs_arena_t *a, const char *key)
{
    const char *v = NULL;
    return gs_capstore_meta_get(s, key, a, &v) == GS_OK ? v : "";
}

static void json_kv(gs_buf_t *b, const char *k, const char *v, bool comma)
{
    gs_buf_printf(b, "%s\"%s\":", comma ? "," : "", k);
    gs_buf_json_str(b, v);
}

static int report(const char *out, gs_format_t fmt)
{
    char *db = gs_path_join(out, GS_LAYOUT_STORE);
    gs_capstore_t *s = NULL;
    gs_capstore_opts_t o = {.read_only = true};
    gs_err e = gs_capstore_open(db, &o, &s);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe status: no readable store in \"%s\": %s\n", db, gs_strerror(e));
        gs_free(db);
        return 1;
    }
    gs_free(db);
    gs_arena_t *a = gs_arena_new(1 << 16, 0);
    ledger_t l = {0};
    uint64_t n_rec = 0, n_scenes = 0, n_caps = 0, n_quar = 0;
    e = gs_capstore_scan_jobs(s, ledger_entry, &l);
    if (e == GS_OK)
        e = gs_capstore_count(s, GS_CF_TILES, true, &n_rec);
    if (e == GS_OK)
        e = gs_capstore_count(s, GS_CF_SCENES, true, &n_scenes);
    if (e == GS_OK)
        e = gs_capstore_count(s, GS_CF_CAPTIONS, true, &n_caps);
    if (e == GS_OK)
        e = gs_capstore_count(s, GS_CF_QUARANTINE, true, &n_quar);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe status: could not read the store of \"%s\": %s\n", out,
                gs_strerror(e));
        gs_arena_destroy(&a);
        gs_capstore_close(&s);
        return 1;
    }
    // the persisted index (written atomically: a complete file or none)
    char *ipath = gs_path_join(out, GS_LAYOUT_INDEX);
    size_t n_vec = 0;
    long long ibytes = 0;
    char idesc[256] = "";
    struct stat st;
    if (stat(ipath, &st) == 0) {
        gs_vindex_t *v = NULL;
        ibytes = (long long)st.st_size;
        if (gs_vindex_read(ipath, NULL, &v) == GS_OK) {
            n_vec = gs_vindex_ntotal(v);
            gs_vindex_describe(v, idesc, sizeof idesc);
        } else {
            snprintf(idesc, sizeof idesc, "unreadable");
        }
        gs_vindex_destroy(&v);
    }
    gs_free(ipath);
    size_t staged = count_staged(out);
    const char *job = meta(s, a, "job.name"), *enc = meta(s, a, "encoder.model_id");
    const char *encp = meta(s, a, "encoder.model"), *pre = meta(s, a, "encoder.preprocess");
    const char *cap = meta(s, a, "captioner.model_id"), *capp = meta(s, a, "captioner.model");
    const char *itype = meta(s, a, GS_META_INDEX_TYPE), *gen = meta(s, a, "index.generation");
    const char *complete = meta(s, a, "ingest.complete");
    bool done = strcmp(complete, "1") == 0 && l.n_done == l.n_tasks;
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_t b;
        gs_buf_init(&b, 1 << 20);
        gs_buf_puts(&b, "{");
        json_kv(&b, "job", job, false);
        json_kv(&b, "output", out, true);
        gs_buf_printf(&b,
                      ",\"planned\":%llu,\"done\":%llu,\"skipped\":%llu,\"failed\":%llu,"
                      "\"quarantined\":%llu,\"vectors\":%zu,\"records\":%llu,\"tiles\":%llu,"
                      "\"scenes\":%llu,\"captions\":%llu,\"staged_shards\":%zu,\"complete\":%s,"
                      "\"tasks\":{\"planned\":%llu,\"done\":%llu,\"failed\":%llu,"
                      "\"quarantined\":%llu,\"pending\":%llu}",
                      (unsigned long long)l.cells, (unsigned long long)l.cells_done,
                      (unsigned long long)l.skipped, (unsigned long long)l.cells_failed,
                      (unsigned long long)n_quar, n_vec, (unsigned long long)n_rec,
                      (unsigned long long)l.tiles, (unsigned long long)n_scenes,
                      (unsigned long long)n_caps, staged, done ? "true" : "false",
                      (unsigned long long)l.n_tasks, (unsigned long long)l.n_done,
                      (unsigned long long)l.n_failed, (unsigned long long)l.n_quarantined,
                      (unsigned long long)l.n_pending);
        gs_buf_puts(&b, ",\"models\":{");
        json_kv(&b, "encoder", enc, false);
        json_kv(&b, "encoder_path", encp, true);
        gs_buf_printf(&b, ",\"dim\":%s",
                      *meta(s, a, "encoder.dim") ? meta(s, a, "encoder.dim") : "0");
        json_kv(&b, "preprocess", pre, true);
        json_kv(&b, "captioner", cap, true);
        json_kv(&b, "captioner_path", capp, true);
        gs_buf_puts(&b, "},\"index\":{");
        json_kv(&b, "type", itype, false);
        json_kv(&b, "describe", idesc, true);
        gs_buf_printf(&b, ",\"bytes\":%lld,\"generation\":%s}}", ibytes, *gen ? gen : "0");
        printf("%s\n", b.data);
        gs_buf_cleanup(&b);
    } else {
        printf("output      %s (job \"%s\")%s\n", out, job, done ? ", complete" : "");
        printf("cells       %llu planned, %llu done (%llu tiles, %llu skipped), %llu failed\n",
               (unsigned long long)l.cells, (unsigned long long)l.cells_done,
               (unsigned long long)l.tiles, (unsigned long long)l.skipped,
               (unsigned long long)l.cells_failed);
        printf("tasks       %llu planned, %llu done, %llu failed, %llu quarantined, %llu to do\n",
               (unsigned long long)l.n_tasks, (unsigned long long)l.n_done,
               (unsigned long long)l.n_failed, (unsigned long long)l.n_quarantined,
               (unsigned long long)l.n_pending);
        printf("scenes      %llu recorded, %llu quarantined\n", (unsigned long long)n_scenes,
               (unsigned long long)n_quar);
        printf("records     %llu tiles, %llu captions\n", (unsigned long long)n_rec,
               (unsigned long long)n_caps);
        printf("index       %zu vectors, %s, %lld bytes, generation %s%s\n", n_vec,
               *idesc ? idesc : "none yet", ibytes, *gen ? gen : "0",
               staged ? " (shards staged: a run is going on or was interrupted)" : "");
        printf("encoder     %s (%s), %s\n", enc, encp, pre);
        if (*cap)
            printf("captioner   %s (%s)\n", cap, capp);
    }
    gs_arena_destroy(&a);
    gs_capstore_close(&s);
    return 0;
}

// ---- --watch: progress reports of running jobs over ZeroMQ ----------------------------------

static void print_progress(const char *topic, const Geoscribe__Progress *m, gs_format_t fmt)
{
    gs_buf_t b;
    gs_buf_init(&b, 1 << 16);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_puts(&b, "{\"topic\":");
        gs_buf_json_str(&b, topic);
        gs_buf_puts(&b, ",\"job\":");
        gs_buf_json_str(&b, m->job ? m->job : "");
        gs_buf_puts(&b, ",\"kind\":");
        gs_buf_json_str(&b, m->kind ? m->kind : "");
        gs_buf_printf(&b,
                      ",\"tasks_total\":%llu,\"tasks_done\":%llu,\"tiles_done\":%llu,"
                      "\"tiles_total\":%llu,\"skipped\":%llu,\"captioned\":%llu,"
                      "\"failed\":%llu,\"quarantined\":%llu,\"tiles_per_s\":%.3f,"
                      "\"eta_s\":%.1f,\"elapsed_s\":%.1f,\"done\":%s,\"complete\":%s}\n",
                      (unsigned long long)m->n_tasks_total, (unsigned long long)m->n_tasks_done,
                      (unsigned long long)m->n_tiles_done, (unsigned long long)m->n_tiles_total,
                      (unsigned long long)m->n_skipped, (unsigned long long)m->n_captioned,
                      (unsigned long long)m->n_failed, (unsigned long long)m->n_quarantined,
                      m->tiles_per_s, m->eta_s, m->elapsed_s, m->done ? "true" : "false",
                      m->complete ? "true" : "false");
    } else {
        gs_buf_printf(&b, "%s %s: tasks %llu/%llu tiles %llu", m->kind ? m->kind : topic,
                      m->job ? m->job : "", (unsigned long long)m->n_tasks_done,
                      (unsigned long long)m->n_tasks_total, (unsigned long long)m->n_tiles_done);
        if (m->n_tiles_total)
            gs_buf_printf(&b, "/%llu", (unsigned long long)m->n_tiles_total);
        gs_buf_printf(&b, " %.1f tiles/s elapsed %.0fs", m->tiles_per_s, m->elapsed_s);
        if (m->eta_s >= 0 && !m->done)
            gs_buf_printf(&b, " ETA %.0fs", m->eta_s);
        if (m->n_failed || m->n_quarantined)
            gs_buf_printf(&b, " failed %llu quarantined %llu", (unsigned long long)m->n_failed,
                          (unsigned long long)m->n_quarantined);
        if (m->done)
            gs_buf_puts(&b, m->complete ? " done (complete)" : " done (incomplete)");
        gs_buf_puts(&b, "\n");
    }
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    gs_buf_cleanup(&b);
}

// watch: prints every report until a last one (--until-done) or no report for timeout_s.
static int watch(const char *endpoint, bool until_done, double timeout_s, gs_format_t fmt)
{
    gs_sub_t *sub = NULL;
    char err[512] = "", bound[256] = "";
    if (gs_sub_open(endpoint, "", &sub, bound, sizeof bound, err, sizeof err) != GS_OK) {
        fprintf(stderr, "geoscribe status: %s\n", err);
        return 1;
    }
    fprintf(stderr, "geoscribe status: watching %s\n", bound);
    int rc = 0;
    uint8_t data[4096];
    for (;;) {
        char topic[64];
        size_t n = 0;
        gs_err e = gs_sub_recv(sub, timeout_s > 0 ? (int)(timeout_s * 1000) : -1, topic,
                               sizeof topic, data, sizeof data, &n);
        if (e == GS_ETIMEOUT) {
            fprintf(stderr, "geoscribe status: no progress report for %.0f s\n", timeout_s);
            rc = 1;
            break;
        }
        if (e == GS_EIO) // interrupted (Ctrl-C) or closed
            break;
        Geoscribe__Progress *m =
            e == GS_OK ? geoscribe__progress__unpack(NULL, n, data) : NULL;
        if (!m) {
            fprintf(stderr, "geoscribe status: a malformed report on topic \"%s\" skipped\n",
                    topic);
            continue;
        }
        print_progress(topic, m, fmt);
        bool last = m->done, complete = m->complete;
        geoscribe__progress__free_unpacked(m, NULL);
        if (until_done && last) {
            rc = complete ? 0 : 3;
            break;
        }
    }
    gs_sub_close(&sub);
    return rc;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"set", required_argument, NULL, 's'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"watch", required_argument, NULL, 'w'},
                                         {"until-done", no_argument, NULL, 'u'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {0}};
    const char *db = NULL, *sets[GS_JOB_MAX_SETS], *watch_ep = NULL;
    bool until_done = false;
    double timeout_s = 0;
    int n_sets = 0, c;
    gs_format_t fmt = GS_FORMAT_TEXT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            db = optarg;
        else if (c == 's' && n_sets < GS_JOB_MAX_SETS)
            sets[n_sets++] = optarg;
        else if (c == 'f') {
            if (gs_cli_parse_format("status", optarg, false, &fmt) != 0)
                return 2;
        } else if (c == 'w')
            watch_ep = optarg;
        else if (c == 'u')
            until_done = true;
        else if (c == 't') {
            if (gs_parse_f64(optarg, &timeout_s) != GS_OK || timeout_s < 0)
                return gs_cli_usage_error("status", "--timeout takes seconds >= 0");
        } else
            return gs_cli_usage_error("status", "unknown option");
    }
    if (watch_ep) {
        if (db || optind < argc)
            return gs_cli_usage_error("status", "--watch takes no job file and no --db");
        return watch(watch_ep, until_done, timeout_s, fmt);
    }
    if ((db != NULL) == (optind < argc) || argc - optind > 1)
        return gs_cli_usage_error("status", "expected a job file or --db DIR");
    if (db) {
        // the output folder, or its db/ folder
        char *sub = gs_path_join(db, GS_LAYOUT_STORE);
        int is_out = gs_is_dir(sub);
        gs_free(sub);
        if (is_out)
            return report(db, fmt);
        char *parent = gs_xstrdup(db);
        size_t len = strlen(parent);
        while (len > 1 && parent[len - 1] == '/')
            parent[--len] = '\0';
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0';
        int rc = report(slash ? (*parent ? parent : "/") : ".", fmt);
        gs_free(parent);
        return rc;
    }
    gs_job_t *job = NULL;
    char err[2048];
    if (gs_job_load(argv[optind], sets, n_sets, &job, err, sizeof err) != GS_OK) {
        fprintf(stderr, "geoscribe status: %s\n", err);
        return 2;
    }
    int rc = report(job->output, fmt);
    gs_job_destroy(&job);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_status = {
    .name = "status",
    .summary = "progress and contents of an ingest output (works while the job runs)",
    .usage =
        "usage: geoscribe status JOB.yaml [--set key=value]... | --db DIR  [--format text|json]\n"
        "       geoscribe status --watch ENDPOINT [--until-done] [--timeout S] [--format text|json]\n"
        "\n"
        "Reads OUT/db (as a read-only secondary, so a running job is not disturbed) and the\n"
        "persisted index OUT/index/tiles.faiss. DIR is the output folder (or its db/).\n"
        "Counts are grid cells: planned, done (committed), skipped (under\n"
        "tiling.min_valid_fraction), failed; records are tile records in the store, vectors\n"
        "are vectors in the persisted index (equal to records once the job is complete).\n"
        "--format json prints one object with at least planned, done, skipped, failed,\n"
        "quarantined, vectors and records.\n"
        "\n"
        "--watch subscribes to the progress reports that running jobs publish with\n"
        "progress.publish (ingest and changes, rank 0, every 5 s and at the end): ENDPOINT\n"
        "is tcp://host:port (connect to a job that binds) or @tcp://*:port (bind, for jobs that\n"
        "publish to >tcp://this-host:port). One line per report (--format json: one object with\n"
        "topic, job, kind, tasks_total, tasks_done, tiles_done, tiles_total, skipped,\n"
        "captioned, failed, quarantined, tiles_per_s, eta_s, elapsed_s, done, complete).\n"
        "--until-done exits after a job's last report (0 complete, 3 incomplete); --timeout S\n"
        "exits 1 when no report came for S seconds.",
    .order = 41,
    .run = run,
};
