// Class labels of an image folder for zero-shot classification: a CSV with a header row and at
// least the columns "filename" and "class" (others, such as UCM's "split", are allowed), and
// the readable class names put into prompt templates ("denseresidential" -> "dense
// residential"). The CSV dialect: comma-separated, optional double quotes ("" inside quotes is
// a quote), LF or CRLF line ends, an optional UTF-8 BOM, blank lines ignored, spaces around
// unquoted fields trimmed. Not here: the images (jobs/raster.h) or the model (model/clip.h).
#pragma once

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

// GS_LABELS_MAX_NBYTES: the largest CSV accepted (256 MiB).
#define GS_LABELS_MAX_NBYTES ((size_t)256 << 20)

// A read-only label table; every string and array is owned by it (gs_labels_destroy).
typedef struct {
    int n;                  // rows selected (of the split asked for, or all)
    const char **filenames; // (n) as written in the CSV, in file order
    int *cls;               // (n) index into classes
    int n_classes;
    const char **classes; // (n_classes) the distinct classes of ALL rows, sorted (strcmp)
    const char **names;   // (n_classes) prompt texts from gs_labels_read_names, else NULL
    gs_arena_t *arena_;   // private: the storage
} gs_labels_t;

// gs_labels_read: reads a labels CSV. split: when not NULL, only rows whose "split" column
// equals it are selected (the file must have that column); classes still come from every row,
// so a split that lacks a class keeps it as a choice. The caller owns *out
// (gs_labels_destroy). Returns GS_EIO (cannot read), GS_ETOOBIG, GS_EFORMAT (no "filename" or
// "class" column, no "split" column when a split is asked for, a row with another number of
// fields than the header, an empty filename or class, a filename listed twice, an unclosed
// quote, a quote inside an unquoted field; logged with the path and line), GS_ENOMEM,
// GS_EINVAL (NULL arguments). Thread-safe.
gs_err gs_labels_read(const char *path, const char *split, gs_labels_t **out);

// gs_labels_destroy: frees the table; NULLs *p; accepts NULL.
void gs_labels_destroy(gs_labels_t **p);

// gs_labels_readable: appends the readable form of a class name to out: a built-in spelling
// for the compound folder names of UC Merced, AID and RSICD ("baseballdiamond" -> "baseball
// diamond", "storagetanks" -> "storage tanks", "railwaystation" -> "railway station"; the
// table is in docs/EVAL.md); otherwise '_' and '-' become spaces, a space goes between a lower
// case letter or digit and an upper case letter ("BareLand" -> "bare land"), runs of spaces
// shrink to one, and ASCII letters are lowercased. GS_ETOOBIG / GS_ENOMEM from the buffer.
// Thread-safe.
gs_err gs_labels_readable(const char *cls, gs_buf_t *out);

// gs_labels_read_names: reads a CSV with the columns "class" and "name" (the prompt text of a
// class) into self->names: names[c] for the classes it lists; the others stay NULL. Rows of
// classes that are not in the table are ignored (one warning names the first). Errors as
// gs_labels_read, plus GS_EFORMAT for a class listed twice or an empty name; self->names is
// unchanged on error. Not thread-safe (writes self).
gs_err gs_labels_read_names(gs_labels_t *self, const char *path);
