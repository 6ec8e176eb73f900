// `geoscribe ingest JOB.yaml [--set key=value]...`: the main job, in one process or under
// mpirun (rank 0 coordinates, the other ranks work). This file is the glue: rank 0 loads and
// validates the job before any MPI work beyond init and broadcasts it packed; the roll call
// checks every rank runs this build; rank 0 sets up the output while the workers open their
// models; rank 0's go / no-go goes to every worker; then the coordinator and workers exchange
// WorkRequest / TaskBatch messages, over MPI or, in one process, through function calls.
#define GS_LOG_MODULE "cli"
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "coordinator/ingest.h"
#include "coordinator/ping.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"
#include "proto/mpi_frame.h"
#include "worker/ingest.h"
#include "worker/ping.h"

// Exit codes: 0 the job finished (quarantined scenes included), 1 a fatal error, 2 a usage
// or job-spec error, 3 the job ran but some tasks failed (a rerun retries them).
enum { EXIT_OK = 0, EXIT_FATAL = 1, EXIT_USAGE = 2, EXIT_INCOMPLETE = 3 };

typedef struct {
    const char *job_path;
    const char *sets[GS_JOB_MAX_SETS];
    int n_sets;
    gs_format_t fmt;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'}, {0}};
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') {
            if (a->n_sets == GS_JOB_MAX_SETS)
                return gs_cli_usage_error("ingest", "too many --set options");
            a->sets[a->n_sets++] = optarg;
        } else if (c == 'f') {
            if (gs_cli_parse_format("ingest", optarg, false, &a->fmt) != 0)
                return EXIT_USAGE;
        } else {
            return gs_cli_usage_error("ingest", "unknown option");
        }
    }
    if (optind != argc - 1)
        return gs_cli_usage_error("ingest", "expected one job file");
    a->job_path = argv[optind];
    return 0;
}

// ---- start-up messages ----------------------------------------------------------------------

// bcast_job: rank 0 sends the packed spec (or an empty one when it failed: everyone stops);
// other ranks get it and unpack it. Returns the job or NULL.
static gs_job_t *bcast_job(gs_job_t *job, const char *path)
{
    void *buf = NULL;
    size_t n = 0;
    if (gs_cli_rank == 0) {
        Geoscribe__JobSpec m = GEOSCRIBE__JOB_SPEC__INIT;
        char *canon = NULL;
        size_t cn = 0;
        if (job && gs_job_pack(job, &canon, &cn) == GS_OK) {
            m.name = job->name;
            m.source_path = (char *)path;
            m.canonical.data = (uint8_t *)canon;
            m.canonical.len = cn;
            m.spec_hash = gs_job_hash(job);
        }
        n = geoscribe__job_spec__get_packed_size(&m);
        buf = gs_xmalloc(n ? n : 1);
        geoscribe__job_spec__pack(&m, buf);
        gs_free(canon);
    }
    gs_err e = gs_mpi_bcast(0, &buf, &n);
    if (gs_cli_rank == 0 || e != GS_OK) {
        gs_free(buf);
        return e == GS_OK ? job : NULL;
    }
    gs_job_t *out = NULL;
    Geoscribe__JobSpec *m = geoscribe__job_spec__unpack(NULL, n, buf);
    gs_free(buf);
    char err[1024] = "";
    if (m && m->canonical.len > 0 &&
        gs_job_unpack((const char *)m->canonical.data, m->canonical.len, &out, err, sizeof err) !=
            GS_OK)
        GS_LOG_ERROR("could not unpack the job spec from rank 0: %s", err);
    if (m)
        geoscribe__job_spec__free_unpacked(m, NULL);
    return out;
}

// send_start: rank 0's go / no-go with the settings identity, to every worker. Point to point
// rather than a broadcast so that the workers wait for it asleep (gs_mpi_poll): rank 0's set-up
// (listing a large archive, reading the ledger) may take minutes, during which a blocking
// MPI_Bcast would spin a core on every worker.
static gs_err send_start(gs_err status, const char *message, uint64_t settings_hash,
                         const char *encoder_id, const char *captioner_id)
{
    Geoscribe__Start m = GEOSCRIBE__START__INIT;
    m.status = status;
    m.message = (char *)message;
    m.settings_hash = settings_hash;
    m.encoder_id = (char *)encoder_id;
    m.captioner_id = (char *)captioner_id;
    size_t n = geoscribe__start__get_packed_size(&m);
    uint8_t *buf = gs_xmalloc(n ? n : 1);
    geoscribe__start__pack(&m, buf);
    gs_err e = GS_OK;
    for (int r = 1; r < gs_cli_size && e == GS_OK; r++)
        e = gs_mpi_send(r, GS_TAG_START, buf, n);
    gs_free(buf);
    return e;
}

// recv_start: a worker's side of send_start. *out is new (free_unpacked).
static gs_err recv_start(Geoscribe__Start **out)
{
    int ready = 0;
    while (!ready)
        GS_TRY(gs_mpi_poll(0, GS_TAG_START, 1000, &ready));
    void *buf = NULL;
    size_t n = 0;
    GS_TRY(gs_mpi_recv(0, GS_TAG_START, &buf, &n, NULL, NULL));
    *out = geoscribe__start__unpack(NULL, n, buf);
    gs_free(buf);
    return *out ? GS_OK : GS_EFORMAT;
}

// ---- rank 0 ---------------------------------------------------------------------------------

static void print_summary(const gs_job_t *job, gs_coord_t *c, const gs_coord_summary_t *s,
                          gs_format_t fmt)
{
    const char *uri, *reason;
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_t b;
        gs_buf_init(&b, 64 << 20);
        gs_buf_puts(&b, "{\"job\":");
        gs_buf_json_str(&b, job->name);
        gs_buf_puts(&b, ",\"output\":");
        gs_buf_json_str(&b, job->output);
        gs_buf_printf(&b,
                      ",\"complete\":%s,\"scenes\":%llu,\"tasks\":%llu,\"tasks_done\":%llu,"
                      "\"tasks_failed\":%llu,\"planned\":%llu,\"tiles\":%llu,\"skipped\":%llu,"
                      "\"tiles_this_run\":%llu,\"recovered_shards\":%llu,\"vectors\":%llu,"
                      "\"records\":%llu,\"seconds\":%.3f,\"tiles_per_s\":%.2f,\"quarantined\":[",
                      s->complete ? "true" : "false", (unsigned long long)s->n_scenes,
                      (unsigned long long)s->n_tasks, (unsigned long long)s->n_tasks_done,
                      (unsigned long long)s->n_tasks_failed, (unsigned long long)s->n_cells,
                      (unsigned long long)s->n_tiles, (unsigned long long)s->n_skipped,
                      (unsigned long long)s->n_tiles_run, (unsigned long long)s->n_recovered,
                      (unsigned long long)s->n_vectors, (unsigned long long)s->n_records,
                      s->seconds, s->seconds > 0 ? (double)s->n_tiles_run / s->seconds : 0.0);
        for (size_t i = 0; gs_coord_quarantined(c, i, &uri, &reason); i++) {
            gs_buf_puts(&b, i ? ",{\"uri\":" : "{\"uri\":");
            gs_buf_json_str(&b, uri);
            gs_buf_puts(&b, ",\"reason\":");
            gs_buf_json_str(&b, reason);
            gs_buf_puts(&b, "}");
        }
        gs_buf_puts(&b, "]}");
        printf("%s\n", b.data);
        gs_buf_cleanup(&b);
        return;
    }
    printf("ingest \"%s\" %s: %llu scenes, %llu/%llu tasks, %llu tiles (%llu this run, %.1f "
           "tiles/s), %llu skipped, %llu vectors, %llu records, %.1f s\n",
           job->name, s->complete ? "complete" : "incomplete", (unsigned long long)s->n_scenes,
           (unsigned long long)s->n_tasks_done, (unsigned long long)s->n_tasks,
           (unsigned long long)s->n_tiles, (unsigned long long)s->n_tiles_run,
           s->seconds > 0 ? (double)s->n_tiles_run / s->seconds : 0.0,
           (unsigned long long)s->n_skipped, (unsigned long long)s->n_vectors,
           (unsigned long long)s->n_records, s->seconds);
    if (s->n_tasks_failed)
        printf("%llu task%s failed; rerun the same command to retry\n",
               (unsigned long long)s->n_tasks_failed, s->n_tasks_failed == 1 ? "" : "s");
    size_t nq = 0;
    for (; gs_coord_quarantined(c, nq, &uri, &reason); nq++)
        ;
    if (nq)
        printf("quarantined %zu scene%s:\n", nq, nq == 1 ? "" : "s");
    for (size_t i = 0; gs_coord_quarantined(c, i, &uri, &reason); i++)
        printf("  %s: %s\n", uri, reason);
}

// tty_sink: on a terminal, a log line first wipes the live progress line (redrawn at the next
// tick) instead of being glued to its end.
static void tty_sink(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    fprintf(stderr, "\r\033[K%s\n", line);
}

// run_local: the one-process loop: the same messages, passed by function call.
static gs_err run_local(gs_coord_t *c, gs_worker_t *w)
{
    void *req = NULL, *reply = NULL;
    size_t n = 0, rn = 0;
    gs_worker_request(w, 0, GS_OK, NULL, &req, &n);
    gs_err e = GS_OK;
    for (;;) {
        e = gs_coord_handle(c, req, n, &reply, &rn);
        GS_FREE(req);
        if (e == GS_OK)
            e = gs_coord_commit(c);
        if (e != GS_OK)
            break;
        bool done = false;
        unsigned wait_ms = 0;
        e = gs_worker_handle(w, 0, reply, rn, &req, &n, &done, &wait_ms);
        GS_FREE(reply);
        if (e != GS_OK || done)
            break;
    }
    gs_free(req);
    gs_free(reply);
    return e;
}

static int run_rank0(gs_job_t *job, const args_t *a)
{
    char err[2048] = "";
    gs_worker_t *w = NULL;
    gs_coord_t *c = NULL;
    const char *enc = "", *pre = "", *cap = "";
    int dim = 0;
    // in one process the worker is the real one; under MPI rank 0 only needs the identity
    gs_err e = gs_worker_open(job, 0, gs_cli_size > 1, &w, err, sizeof err);
    if (e == GS_OK) {
        gs_worker_identity(w, &enc, &dim, &pre, &cap);
        gs_ingest_models_t m = {
            .encoder_id = enc, .dim = dim, .preprocess = pre, .captioner_id = cap};
        e = gs_coord_open(job, a->job_path, &m, gs_cli_size > 1 ? gs_cli_size - 1 : 1, &c, err,
                          sizeof err);
    }
    if (e == GS_OK && gs_cli_size == 1)
        e = gs_worker_start(w, gs_coord_settings_hash(c), enc, cap, err, sizeof err);
    if (gs_cli_size > 1) {
        gs_err be = send_start(e, err, c ? gs_coord_settings_hash(c) : 0, enc, cap);
        if (e == GS_OK)
            e = be;
        gs_worker_close(&w); // rank 0 encodes nothing under MPI
    }
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe ingest: %s\n", *err ? err : gs_strerror(e));
        gs_coord_close(&c);
        gs_worker_close(&w);
        return EXIT_FATAL;
    }
    bool tty = isatty(2) == 1;
    if (tty)
        gs_log_set(tty_sink, NULL);
    e = gs_cli_size > 1 ? gs_coord_serve_mpi(c, gs_cli_size) : run_local(c, w);
    gs_coord_summary_t s = {0};
    gs_err fe = gs_coord_finish(c, &s); // ends the progress line
    if (tty)
        gs_log_set(NULL, NULL);
    gs_worker_close(&w);
    if (e == GS_OK)
        e = fe;
    print_summary(job, c, &s, a->fmt);
    gs_coord_close(&c);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe ingest: the job stopped: %s\n", gs_strerror(e));
        return EXIT_FATAL;
    }
    return s.complete ? EXIT_OK : EXIT_INCOMPLETE;
}

// ---- other ranks ----------------------------------------------------------------------------

static int run_worker(gs_job_t *job)
{
    char err[2048] = "";
    gs_worker_t *w = NULL;
    gs_err e = gs_worker_open(job, gs_cli_rank, false, &w, err, sizeof err);
    Geoscribe__Start *st = NULL;
    gs_err be = recv_start(&st);
    if (be != GS_OK || st->status != GS_OK) {
        // rank 0 failed its set-up and says why itself
        if (st)
            geoscribe__start__free_unpacked(st, NULL);
        gs_worker_close(&w);
        return EXIT_FATAL;
    }
    if (e == GS_OK)
        e = gs_worker_start(w, st->settings_hash, st->encoder_id, st->captioner_id, err,
                            sizeof err);
    geoscribe__start__free_unpacked(st, NULL);
    if (e != GS_OK) {
        GS_LOG_ERROR("%s", err);
        gs_worker_close(&w);
    }
    gs_err se = gs_worker_serve_mpi(w, gs_cli_rank, e, err);
    gs_worker_close(&w);
    return e == GS_OK && se == GS_OK ? EXIT_OK : EXIT_FATAL;
}

// launched_by_mpi: started by mpirun / srun (their environment), not by hand. A run by hand
// does not initialise MPI at all: one process needs no MPI (its transport is a function call),
// so it also works where no MPI runtime can start (a login node, a container).
static bool launched_by_mpi(void)
{
    return gs_getenv("OMPI_COMM_WORLD_SIZE") || gs_getenv("PMIX_RANK") || gs_getenv("PMI_RANK") ||
           gs_getenv("PMI_SIZE");
}

static int run_job(int argc, char **argv);

static int run(int argc, char **argv)
{
    if (!launched_by_mpi()) {
        gs_log_set_role("ingest", -1);
        return run_job(argc, argv);
    }
    if (gs_mpi_init(NULL, NULL, &gs_cli_rank, &gs_cli_size) != GS_OK) {
        fprintf(stderr, "geoscribe ingest: could not initialise MPI\n");
        return EXIT_FATAL;
    }
    gs_log_set_role(gs_cli_rank == 0 ? "coord" : "worker", gs_cli_rank);
    int rc = run_job(argc, argv);
    gs_mpi_finalize();
    return rc;
}

static int run_job(int argc, char **argv)
{
    args_t a;
    int rc = parse_args(argc, argv, &a);
    gs_job_t *job = NULL;
    if (gs_cli_rank == 0 && rc == 0) {
        char err[2048] = "";
        if (gs_job_load(a.job_path, a.sets, a.n_sets, &job, err, sizeof err) != GS_OK) {
            fprintf(stderr, "geoscribe ingest: %s\n", err);
            rc = EXIT_USAGE;
        }
    }
    if (gs_cli_size > 1) {
        gs_job_t *got = bcast_job(rc == 0 ? job : NULL, a.job_path);
        if (gs_cli_rank != 0)
            job = got;
        if (!job)
            return rc ? rc : EXIT_USAGE; // rank 0 reported why
        gs_buf_t roll;
        gs_buf_init(&roll, 1 << 20);
        gs_err e = gs_cli_rank == 0 ? gs_coord_ping(gs_cli_size, &roll)
                                    : gs_worker_ping(gs_cli_rank, gs_cli_size);
        if (e == GS_OK && gs_cli_rank == 0)
            GS_LOG_INFO("%d ranks: %s", gs_cli_size, roll.data);
        gs_buf_cleanup(&roll);
        if (e != GS_OK) {
            gs_job_destroy(&job);
            return EXIT_FATAL;
        }
    } else if (rc != 0) {
        return rc;
    }
    if (gs_cli_rank == 0)
        GS_LOG_INFO("job \"%s\" from \"%s\" (spec hash %016llx), %d rank%s", job->name, a.job_path,
                    (unsigned long long)gs_job_hash(job), gs_cli_size, gs_cli_size == 1 ? "" : "s");
    rc = gs_cli_rank == 0 ? run_rank0(job, &a) : run_worker(job);
    gs_job_destroy(&job);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_ingest = {
    .name = "ingest",
    .summary = "embed (and caption) every tile of an archive into an index and a store",
    .usage =
        "usage: [mpirun -n N] geoscribe ingest JOB.yaml [--set key=value]... [--format text|json]\n"
        "\n"
        "Runs the job file (docs/JOBS.md lists every key; --set overrides any of them, dotted\n"
        "keys, lists comma-separated): scans the inputs into scenes, cuts them into tiles,\n"
        "embeds every tile with a valid fraction over tiling.min_valid_fraction, and writes\n"
        "OUT/db (RocksDB records), OUT/index/tiles.faiss (FAISS) and OUT/job.yaml. Under mpirun\n"
        "rank 0 coordinates and ranks 1..N-1 work; without it one process does both.\n"
        "Rerunning the same command resumes an interrupted job and adds new scenes only; an\n"
        "output refuses a run with another model or other tiling/composite settings.\n"
        "Unreadable scenes are quarantined (listed at the end), never fatal.\n"
        "\n"
        "  --set key=value   override a job key, e.g. --set tiling.size=512\n"
        "  --format json     print the summary as one JSON object\n"
        "\n"
        "Exit status: 0 finished (even with quarantined scenes), 1 fatal error (unwritable\n"
        "output, model or settings mismatch), 2 bad command line or job file, 3 some tasks\n"
        "failed (rerun to retry). Progress goes to stderr. Set OMP_WAIT_POLICY=PASSIVE.\n"
        "\n"
        "examples:\n"
        "  geoscribe ingest jobs/examples/rasterio-rgb.yaml\n"
        "  mpirun -n 9 geoscribe ingest job.yaml --set encoder.threads=4 --set output=/scratch/o\n"
        "  geoscribe status job.yaml",
    .order = 40,
    .uses_mpi = false, // initialised in run() only under mpirun / srun
    .run = run,
};
