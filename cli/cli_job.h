// The start-up shared by the MPI jobs of the command line (`geoscribe ingest`, `geoscribe
// changes`): the command line (JOB.yaml, --set, --format), rank 0 loads and validates the job
// before any MPI work beyond init and broadcasts it packed, the roll call checks every rank runs
// this build, and rank 0's go / no-go (Start) goes to every worker point to point.
#pragma once

#include <stdint.h>

#include "cli/cli.h"
#include "common/err.h"
#include "jobs/spec.h"
#include "proto/geoscribe.pb-c.h"

// Exit codes of the jobs: 0 the job finished, 1 a fatal error, 2 a usage or job-spec error,
// 3 the job ran but some tasks failed (a rerun retries them).
enum { GS_CLI_EXIT_OK = 0, GS_CLI_EXIT_FATAL = 1, GS_CLI_EXIT_USAGE = 2, GS_CLI_EXIT_INCOMPLETE = 3 };

typedef struct {
    const char *job_path;
    const char *sets[GS_JOB_MAX_SETS];
    int n_sets;
    gs_format_t fmt;
} gs_cli_job_args_t;

// gs_cli_job_load: every rank parses the command line of `cmd`; rank 0 loads the job (its
// errors on stderr); under MPI (gs_cli_size > 1) the job goes to every rank and the roll call
// runs. Returns 0 with *out_job (gs_job_destroy) on every rank, or the exit status (rank 0 said
// why) with *out_job NULL.
int gs_cli_job_load(const char *cmd, int argc, char **argv, gs_cli_job_args_t *out_args,
                    gs_job_t **out_job);

// gs_cli_job_send_start: rank 0's go / no-go with the settings identity, to ranks 1..size-1.
// Point to point rather than a broadcast so that the workers wait for it asleep (gs_mpi_poll):
// rank 0's set-up (listing a large archive, reading the ledger) may take minutes, during which a
// blocking MPI_Bcast would spin a core on every worker. GS_EMPI.
gs_err gs_cli_job_send_start(gs_err status, const char *message, uint64_t settings_hash,
                             const char *encoder_id, const char *captioner_id);

// gs_cli_job_recv_start: a worker's side of gs_cli_job_send_start. *out is new
// (geoscribe__start__free_unpacked). GS_EMPI, GS_EFORMAT.
gs_err gs_cli_job_recv_start(Geoscribe__Start **out);

// gs_cli_job_publisher: with progress.publish set, a ZeroMQ PUB socket for rank 0's progress
// reports (query/pubsub.h); NULL without it, or when it cannot be opened (a warning: a
// monitor's port in use must not stop a nightly job). gs_cli_job_publish is the
// gs_progress_sink_fn that sends on it; gs_cli_job_publisher_close gives the last report up to
// two seconds to leave.
struct gs_pub *gs_cli_job_publisher(const gs_job_t *job);
void gs_cli_job_publish(void *pub, const char *topic, const void *packed, size_t nbytes);
void gs_cli_job_publisher_close(struct gs_pub **pub);
