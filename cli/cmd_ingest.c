// `geoscribe ingest JOB.yaml [--set key=value]...`: the main job, in one process or under
// mpirun (rank 0 coordinates, the other ranks work). This file is the glue: rank 0 loads and
// validates the job before any MPI work beyond init and broadcasts it packed; the roll call
// checks every rank runs this build; rank 0 sets up the output while the workers open their
// models; rank 0's go / no-go goes to every worker; then the coordinator and workers exchange
// WorkRequest / TaskBatch messages, over MPI or, in one process, through function calls.
#define GS_LOG_MODULE "cli"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_job.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/log.h"
#include "coordinator/ingest.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"
#include "proto/mpi_frame.h"
#include "worker/ingest.h"

// Exit codes (cli/cli_job.h): 0 the job finished (quarantined scenes included), 1 a fatal error,
// 2 a usage or job-spec error, 3 the job ran but some tasks failed (a rerun retries them).

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

static int run_rank0(gs_job_t *job, const gs_cli_job_args_t *a)
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
        gs_err be = gs_cli_job_send_start(e, err, c ? gs_coord_settings_hash(c) : 0, enc, cap);
        if (e == GS_OK)
            e = be;
        gs_worker_close(&w); // rank 0 encodes nothing under MPI
    }
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe ingest: %s\n", *err ? err : gs_strerror(e));
        gs_coord_close(&c);
        gs_worker_close(&w);
        return GS_CLI_EXIT_FATAL;
    }
    bool tty = isatty(2) == 1;
    if (tty)
        gs_log_set(tty_sink, NULL);
    struct gs_pub *pub = gs_cli_job_publisher(job);
    if (pub)
        gs_coord_set_progress_sink(c, gs_cli_job_publish, pub);
    e = gs_cli_size > 1 ? gs_coord_serve_mpi(c, gs_cli_size) : run_local(c, w);
    gs_coord_summary_t s = {0};
    gs_err fe = gs_coord_finish(c, &s); // ends the progress line
    if (tty)
        gs_log_set(NULL, NULL);
    gs_worker_close(&w);
    if (e == GS_OK)
        e = fe;
    gs_cli_job_publisher_close(&pub);
    print_summary(job, c, &s, a->fmt);
    gs_coord_close(&c);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe ingest: the job stopped: %s\n", gs_strerror(e));
        return GS_CLI_EXIT_FATAL;
    }
    return s.complete ? GS_CLI_EXIT_OK : GS_CLI_EXIT_INCOMPLETE;
}

// ---- other ranks ----------------------------------------------------------------------------

static int run_worker(gs_job_t *job)
{
    char err[2048] = "";
    gs_worker_t *w = NULL;
    gs_err e = gs_worker_open(job, gs_cli_rank, false, &w, err, sizeof err);
    Geoscribe__Start *st = NULL;
    gs_err be = gs_cli_job_recv_start(&st);
    if (be != GS_OK || st->status != GS_OK) {
        // rank 0 failed its set-up and says why itself
        if (st)
            geoscribe__start__free_unpacked(st, NULL);
        gs_worker_close(&w);
        return GS_CLI_EXIT_FATAL;
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
    return e == GS_OK && se == GS_OK ? GS_CLI_EXIT_OK : GS_CLI_EXIT_FATAL;
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
        return GS_CLI_EXIT_FATAL;
    }
    gs_log_set_role(gs_cli_rank == 0 ? "coord" : "worker", gs_cli_rank);
    int rc = run_job(argc, argv);
    gs_mpi_finalize();
    return rc;
}

static int run_job(int argc, char **argv)
{
    gs_cli_job_args_t a;
    gs_job_t *job = NULL;
    int rc = gs_cli_job_load("ingest", argc, argv, &a, &job);
    if (rc != 0)
        return rc;
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
