// The worker side of the task messages, shared by the ingest worker (worker/ingest.c) and the
// change worker (worker/changes.c): WorkRequest packing, a TaskBatch run task by task through a
// callback (timings, result strings), and the MPI loop (request, batch, wait, until done).
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/alloc.h"
#include "common/err.h"
#include "proto/geoscribe.pb-c.h"

// gs__serve_task_fn: runs one task into *res (already initialised: task id, kind, empty
// strings); strings it sets live in msg until the request is packed.
typedef void (*gs__serve_task_fn)(void *self, const Geoscribe__Task *t, Geoscribe__TaskResult *res,
                                  gs_arena_t *msg);

// gs__serve_fail: a failed task's result: status e, the scene problem (geoscribe.proto) and
// why (copied into msg).
void gs__serve_fail(Geoscribe__TaskResult *r, gs_arena_t *msg, gs_err e, int problem,
                    const char *why);

// gs__serve_handle_fn: a worker's gs_*worker_handle.
typedef gs_err (*gs__serve_handle_fn)(void *self, int rank, const void *batch, size_t nbytes,
                                      void **out_req, size_t *out_nbytes, bool *out_done,
                                      unsigned *out_wait_ms);

// gs__serve_request: a packed WorkRequest without results (new, gs_free).
void gs__serve_request(int rank, gs_err status, const char *message, void **out,
                       size_t *out_nbytes);

// gs__serve_handle: unpacks a TaskBatch, runs its tasks with `run` (GS_ESTATE for each when not
// `started`) and packs their results into the next WorkRequest (*out_req, new). *out_done when
// the batch says the job is over, *out_wait_ms when it says wait. GS_EFORMAT (logged).
gs_err gs__serve_handle(void *self, bool started, gs__serve_task_fn run, int rank,
                        const void *batch, size_t nbytes, void **out_req, size_t *out_nbytes,
                        bool *out_done, unsigned *out_wait_ms);

// gs__serve_mpi: the worker's MPI loop with rank 0 until told the job is done. self NULL (the
// worker could not start): only reports start_status / message and waits for the end.
// GS_EMPI, and handle's.
gs_err gs__serve_mpi(void *self, gs__serve_handle_fn handle, int rank, gs_err start_status,
                     const char *message);
