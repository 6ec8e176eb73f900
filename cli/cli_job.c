// The start-up shared by `geoscribe ingest` and `geoscribe changes` (cli/cli_job.h).
#define GS_LOG_MODULE "cli"
#include "cli/cli_job.h"
#include "query/pubsub.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "coordinator/ping.h"
#include "proto/mpi_frame.h"
#include "worker/ping.h"

static int parse_args(const char *cmd, int argc, char **argv, gs_cli_job_args_t *a)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'}, {0}};
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') {
            if (a->n_sets == GS_JOB_MAX_SETS)
                return gs_cli_usage_error(cmd, "too many --set options");
            a->sets[a->n_sets++] = optarg;
        } else if (c == 'f') {
            if (gs_cli_parse_format(cmd, optarg, false, &a->fmt) != 0)
                return GS_CLI_EXIT_USAGE;
        } else {
            return gs_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind != argc - 1)
        return gs_cli_usage_error(cmd, "expected one job file");
    a->job_path = argv[optind];
    return 0;
}

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

int gs_cli_job_load(const char *cmd, int argc, char **argv, gs_cli_job_args_t *out_args,
                    gs_job_t **out_job)
{
    *out_job = NULL;
    int rc = parse_args(cmd, argc, argv, out_args);
    gs_job_t *job = NULL;
    if (gs_cli_rank == 0 && rc == 0) {
        char err[2048] = "";
        if (gs_job_load(out_args->job_path, out_args->sets, out_args->n_sets, &job, err,
                        sizeof err) != GS_OK) {
            fprintf(stderr, "geoscribe %s: %s\n", cmd, err);
            rc = GS_CLI_EXIT_USAGE;
        }
    }
    if (gs_cli_size > 1) {
        gs_job_t *got = bcast_job(rc == 0 ? job : NULL, out_args->job_path);
        if (gs_cli_rank != 0)
            job = got;
        if (!job)
            return rc ? rc : GS_CLI_EXIT_USAGE; // rank 0 reported why
        gs_buf_t roll;
        gs_buf_init(&roll, 1 << 20);
        gs_err e = gs_cli_rank == 0 ? gs_coord_ping(gs_cli_size, &roll)
                                    : gs_worker_ping(gs_cli_rank, gs_cli_size);
        if (e == GS_OK && gs_cli_rank == 0)
            GS_LOG_INFO("%d ranks: %s", gs_cli_size, roll.data);
        gs_buf_cleanup(&roll);
        if (e != GS_OK) {
            gs_job_destroy(&job);
            return GS_CLI_EXIT_FATAL;
        }
    } else if (rc != 0) {
        return rc;
    }
    *out_job = job;
    return 0;
}

gs_err gs_cli_job_send_start(gs_err status, const char *message, uint64_t settings_hash,
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

gs_err gs_cli_job_recv_start(Geoscribe__Start **out)
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

// ---- progress over ZeroMQ -------------------------------------------------------------------

struct gs_pub *gs_cli_job_publisher(const gs_job_t *job)
{
    if (!*job->progress.publish)
        return NULL;
    gs_pub_t *p = NULL;
    char err[512] = "";
    if (gs_pub_open(job->progress.publish, &p, err, sizeof err) != GS_OK) {
        GS_LOG_WARN("progress is not published: %s", err);
        return NULL;
    }
    GS_LOG_INFO("progress published on %s", job->progress.publish);
    return p;
}

void gs_cli_job_publish(void *pub, const char *topic, const void *packed, size_t nbytes)
{
    gs_pub_send(pub, topic, packed, nbytes); // a dropped report is replaced by the next one
}

void gs_cli_job_publisher_close(struct gs_pub **pub)
{
    gs_pub_close(pub, 2000);
}
