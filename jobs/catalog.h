// The scene catalogue of a job: its inputs (paths, globs, directories, @list files, /vsi...
// paths) expanded into files, grouped into multi-file scenes when scenes.group is set, and
// turned into canonical scene URIs, sorted and unique. Planning starts from this list; a scene
// is then opened from its URI alone (jobs/scene.h), on any rank.
#pragma once

#include <stddef.h>

#include "common/err.h"
#include "jobs/spec.h"

// Scene URIs (the scene identity: jobs/scene.h derives the scene id from it):
//   - one file: the absolute path with symbolic links, "." and ".." resolved (realpath), or a
//     /vsi... path as written. The same file reached by two inputs is one scene.
//   - a multi-file scene: "<absolute dir>/<scenes.group with {scene} filled in>#<bands>", e.g.
//     "/data/LC08_X/LC08_X_B{band}.TIF#1,2,3,4,10,QA": the file of band b is the part before '#'
//     with {band} replaced by b; the band names follow in natural order (2 < 10).
typedef struct {
    char **uris; // n_scenes URIs, sorted bytewise, unique; owned
    size_t n_scenes;
    size_t n_files;   // files found before grouping
    size_t n_ignored; // files that are not part of any scene (name does not fit scenes.group)
} gs_catalog_t;

// How deep directory walks and ** globs go, and how deeply @list files may nest.
#define GS_CATALOG_MAX_DEPTH 64
#define GS_CATALOG_MAX_LIST_DEPTH 4

// gs_catalog_build: expands job->inputs. Each input is, in this order of checks:
//   "@path"      a list file: one input per line (blank lines and lines starting with # are
//                skipped); its lines may be any kind of input, @lists included.
//   with * ? [   a glob on /-separated components; "**" matches any number of directories;
//                entries starting with '.' match only an explicit '.'.
//   a directory  walked recursively; files whose name ends in ".<ext>" for one of
//                scenes.extensions (case-insensitive) are taken; hidden entries are skipped.
//   a file       taken whatever its extension.
// Relative paths (in the job and in list files) are relative to the current directory. A glob
// matching a directory walks it like a directory input.
// Errors: GS_ENOTFOUND when an input names nothing or a glob/directory yields no file (a typo
// must not make an empty job), GS_EIO for an unreadable list file or directory, GS_ETOOBIG for
// a list nested too deep, GS_ENOMEM. The message (naming the input) goes to err when given,
// else to the log at ERROR. On error *out is left empty.
// Ownership: release with gs_catalog_cleanup. Thread-safe (no shared state).
gs_err gs_catalog_build(const gs_job_t *job, gs_catalog_t *out, char *err, size_t err_nbytes);

// gs_catalog_cleanup: frees the URIs; the struct may be built again.
void gs_catalog_cleanup(gs_catalog_t *self);
