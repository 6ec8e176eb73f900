// `geoscribe changes JOB.yaml [--set key=value]...`: change captioning over the scenes of a job
// (docs/CHANGES.md), in one process or under mpirun (rank 0 coordinates, the other ranks run
// pair tasks). The same start-up as `geoscribe ingest` (cli/cli_job.h): rank 0 validates
// and broadcasts the job, a roll call, rank 0 sets up the output while the workers open their
// models, rank 0's go / no-go, then WorkRequest / TaskBatch messages over MPI or by function
// call.
#define GS_LOG_MODULE "cli"
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_job.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "coordinator/changes.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"
#include "proto/mpi_frame.h"
#include "worker/changes.h"

// Exit codes (cli/cli_job.h): 0 done, 1 fatal, 2 usage or job spec, 3 some pairs failed (rerun).

// ---- rank 0 ---------------------------------------------------------------------------------

static void print_json(const gs_job_t *job, gs_chcoord_t *c, const gs_changes_summary_t *s)
{
    gs_buf_t b;
    gs_buf_init(&b, 64 << 20);
    gs_buf_puts(&b, "{\"job\":");
    gs_buf_json_str(&b, job->name);
    gs_buf_puts(&b, ",\"output\":");
    gs_buf_json_str(&b, job->output);
    gs_buf_printf(&b,
                  ",\"complete\":%s,\"scenes\":%llu,\"scenes_unrecorded\":%llu,"
                  "\"scenes_without_time\":%llu,\"scenes_left_out\":%llu,\"pairs\":%llu,"
                  "\"pairs_done\":%llu,\"pairs_this_run\":%llu,\"pairs_failed\":%llu,"
                  "\"recovered_shards\":%llu,\"cells_this_run\":%llu,\"scored_this_run\":%llu,"
                  "\"captioned_this_run\":%llu,\"records\":%llu,\"captions\":%llu,"
                  "\"vectors\":%llu,\"reused_embeddings\":%s,\"seconds\":%.3f,\"pair_list\":[",
                  s->complete ? "true" : "false", (unsigned long long)s->n_scenes,
                  (unsigned long long)s->n_unrecorded, (unsigned long long)s->n_timeless,
                  (unsigned long long)s->n_unreadable, (unsigned long long)s->n_pairs,
                  (unsigned long long)s->n_pairs_done, (unsigned long long)s->n_pairs_run,
                  (unsigned long long)s->n_pairs_failed, (unsigned long long)s->n_recovered,
                  (unsigned long long)s->n_cells_run, (unsigned long long)s->n_scored_run,
                  (unsigned long long)s->n_captioned_run, (unsigned long long)s->n_records,
                  (unsigned long long)s->n_captions, (unsigned long long)s->n_vectors,
                  s->reuse ? "true" : "false", s->seconds);
    const char *before, *after;
    bool done;
    for (size_t i = 0; gs_chcoord_pair(c, i, &before, &after, &done); i++) {
        gs_buf_puts(&b, i ? ",{\"before\":" : "{\"before\":");
        gs_buf_json_str(&b, before);
        gs_buf_puts(&b, ",\"after\":");
        gs_buf_json_str(&b, after);
        gs_buf_printf(&b, ",\"done\":%s}", done ? "true" : "false");
    }
    gs_buf_puts(&b, "]}");
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
}

static void print_summary(const gs_job_t *job, gs_chcoord_t *c, const gs_changes_summary_t *s,
                          gs_format_t fmt)
{
    if (fmt == GS_FORMAT_JSON) {
        print_json(job, c, s);
        return;
    }
    printf("changes \"%s\" %s: %llu scenes, %llu/%llu pairs (%llu this run), %llu tiles scored "
           "and %llu captioned this run; the output holds %llu change records, %llu with a "
           "caption, %llu caption vectors; %.1f s\n",
           job->name, s->complete ? "complete" : "incomplete", (unsigned long long)s->n_scenes,
           (unsigned long long)s->n_pairs_done, (unsigned long long)s->n_pairs,
           (unsigned long long)s->n_pairs_run, (unsigned long long)s->n_scored_run,
           (unsigned long long)s->n_captioned_run, (unsigned long long)s->n_records,
           (unsigned long long)s->n_captions, (unsigned long long)s->n_vectors, s->seconds);
    if (s->n_pairs_failed)
        printf("%llu pair%s failed; rerun the same command to retry\n",
               (unsigned long long)s->n_pairs_failed, s->n_pairs_failed == 1 ? "" : "s");
    if (s->n_timeless || s->n_unreadable)
        printf("%llu scene%s without a time and %llu unreadable were not paired\n",
               (unsigned long long)s->n_timeless, s->n_timeless == 1 ? "" : "s",
               (unsigned long long)s->n_unreadable);
}

// run_local: the one-process loop: the same messages, passed by function call.
static gs_err run_local(gs_chcoord_t *c, gs_chworker_t *w)
{
    void *req = NULL, *reply = NULL;
    size_t n = 0, rn = 0;
    gs_chworker_request(w, 0, GS_OK, NULL, &req, &n);
    gs_err e = GS_OK;
    for (;;) {
        e = gs_chcoord_handle(c, req, n, &reply, &rn);
        GS_FREE(req);
        if (e == GS_OK)
            e = gs_chcoord_commit(c);
        if (e != GS_OK)
            break;
        bool done = false;
        unsigned wait_ms = 0;
        e = gs_chworker_handle(w, 0, reply, rn, &req, &n, &done, &wait_ms);
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
    gs_chworker_t *w = NULL;
    gs_chcoord_t *c = NULL;
    const char *enc = "", *pre = "", *cap = "";
    int dim = 0;
    gs_err e = gs_chworker_open(job, 0, gs_cli_size > 1, &w, err, sizeof err);
    if (e == GS_OK) {
        gs_chworker_identity(w, &enc, &dim, &pre, &cap);
        gs_ingest_models_t m = {
            .encoder_id = enc, .dim = dim, .preprocess = pre, .captioner_id = cap};
        e = gs_chcoord_open(job, a->job_path, &m, gs_cli_size > 1 ? gs_cli_size - 1 : 1, &c, err,
                            sizeof err);
    }
    if (e == GS_OK && gs_cli_size == 1)
        e = gs_chworker_start(w, gs_chcoord_settings_hash(c), enc, cap, err, sizeof err);
    if (gs_cli_size > 1) {
        gs_err be = gs_cli_job_send_start(e, err, c ? gs_chcoord_settings_hash(c) : 0, enc, cap);
        if (e == GS_OK)
            e = be;
        gs_chworker_close(&w); // rank 0 computes nothing under MPI
    }
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe changes: %s\n", *err ? err : gs_strerror(e));
        gs_chcoord_close(&c);
        gs_chworker_close(&w);
        return GS_CLI_EXIT_FATAL;
    }
    struct gs_pub *pub = gs_cli_job_publisher(job);
    if (pub)
        gs_chcoord_set_progress_sink(c, gs_cli_job_publish, pub);
    e = gs_cli_size > 1 ? gs_chcoord_serve_mpi(c, gs_cli_size) : run_local(c, w);
    gs_chworker_close(&w);
    gs_changes_summary_t s = {0};
    gs_err fe = gs_chcoord_finish(c, &s);
    if (e == GS_OK)
        e = fe;
    gs_cli_job_publisher_close(&pub);
    print_summary(job, c, &s, a->fmt);
    gs_chcoord_close(&c);
    if (e != GS_OK) {
        fprintf(stderr, "geoscribe changes: the job stopped: %s\n", gs_strerror(e));
        return GS_CLI_EXIT_FATAL;
    }
    return s.complete ? GS_CLI_EXIT_OK : GS_CLI_EXIT_INCOMPLETE;
}

// ---- other ranks ----------------------------------------------------------------------------

static int run_worker(gs_job_t *job)
{
    char err[2048] = "";
    gs_chworker_t *w = NULL;
    gs_err e = gs_chworker_open(job, gs_cli_rank, false, &w, err, sizeof err);
    Geoscribe__Start *st = NULL;
    gs_err be = gs_cli_job_recv_start(&st);
    if (be != GS_OK || st->status != GS_OK) {
        if (st)
            geoscribe__start__free_unpacked(st, NULL);
        gs_chworker_close(&w);
        return GS_CLI_EXIT_FATAL;
    }
    if (e == GS_OK)
        e = gs_chworker_start(w, st->settings_hash, st->encoder_id, st->captioner_id, err,
                              sizeof err);
    geoscribe__start__free_unpacked(st, NULL);
    if (e != GS_OK) {
        GS_LOG_ERROR("%s", err);
        gs_chworker_close(&w);
    }
    gs_err se = gs_chworker_serve_mpi(w, gs_cli_rank, e, err);
    gs_chworker_close(&w);
    return e == GS_OK && se == GS_OK ? GS_CLI_EXIT_OK : GS_CLI_EXIT_FATAL;
}

static int run(int argc, char **argv)
{
    gs_cli_job_args_t a;
    gs_job_t *job = NULL;
    int rc = gs_cli_job_load("changes", argc, argv, &a, &job);
    if (rc != 0)
        return rc;
    if (gs_cli_rank == 0)
        GS_LOG_INFO("change job \"%s\" from \"%s\" (spec hash %016llx), %d rank%s", job->name,
                    a.job_path, (unsigned long long)gs_job_hash(job), gs_cli_size,
                    gs_cli_size == 1 ? "" : "s");
    rc = gs_cli_rank == 0 ? run_rank0(job, &a) : run_worker(job);
    gs_job_destroy(&job);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_changes = {
    .name = "changes",
    .summary = "pair scenes of the same place at two times, score and caption what changed",
    .usage =
        "usage: [mpirun -n N] geoscribe changes JOB.yaml [--set key=value]... [--format "
        "text|json]\n"
        "\n"
        "Pairs the job's scenes (changes.pairing: each scene with the latest earlier scene of\n"
        "the same place within changes.max_gap_days and changes.min_overlap, or all consecutive\n"
        "pairs), resamples both onto one grid (changes.grid: the later scene's, or changes.crs\n"
        "at changes.resolution), tiles it, embeds both tiles of every cell (reusing the stored\n"
        "embeddings of an ingest of the same output), scores each cell by cosine distance and\n"
        "captions the cells over changes.threshold among the top changes.top_fraction of their\n"
        "pair with the two-image captioner (changes.caption_model, changes.prompt). Change\n"
        "records go to OUT/db (family `changes`), caption embeddings to\n"
        "OUT/index/changes.faiss, searched by `geoscribe query --changes TEXT`. A rerun adds\n"
        "only pairs not done yet (the ledger); run it after each ingest (deploy/systemd,\n"
        "deploy/slurm/nightly.sh). docs/CHANGES.md.\n"
        "\n"
        "  --set key=value   override a job key, e.g. --set changes.top_fraction=0.05\n"
        "  --format json     print the summary (with the pair list) as one JSON object\n"
        "\n"
        "Exit status: 0 finished, 1 fatal error (unwritable output, other settings than the\n"
        "output's), 2 bad command line or job file, 3 some pairs failed (rerun to retry).\n"
        "\n"
        "examples:\n"
        "  geoscribe changes jobs/examples/landsat-pucallpa-changes.yaml\n"
        "  mpirun -n 5 geoscribe changes job.yaml --set changes.pairing=consecutive",
    .order = 45,
    .uses_mpi = true,
    .run = run,
};
