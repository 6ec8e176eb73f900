// The job spec: a YAML job file (docs/JOBS.md is the reference of every key) plus `--set
// key=value` overrides, validated as a whole before any work, then immutable and passed around
// as `const gs_job_t *`. Rank 0 loads it and broadcasts the packed canonical text; the other
// ranks unpack it, so every rank works from byte-identical settings. This header holds no
// YAML or GDAL type.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum {
    GS_JOB_CHECKSUM_QUICK = 0, // size + mtime + first and last 64 KiB
    GS_JOB_CHECKSUM_FULL = 1,  // every byte
} gs_job_checksum_t;

typedef enum {
    GS_JOB_EDGE_SHIFT = 0, // the last column/row is moved inwards: every tile is whole
    GS_JOB_EDGE_PAD = 1,   // the last column/row runs past the edge; the outside is nodata
    GS_JOB_EDGE_CLIP = 2,  // the last column/row is cut at the edge (smaller tiles)
} gs_job_edge_t;

typedef enum {
    GS_JOB_COMPOSITE_RGB = 0, // three bands (or one, as grey) -> R, G, B
    GS_JOB_COMPOSITE_SAR = 1, // two bands VV, VH -> R = VV, G = VH, B = VV/VH (all in dB)
} gs_job_composite_t;

typedef enum {
    GS_JOB_SCALING_AUTO = 0,       // none for 8-bit bands, else percentile
    GS_JOB_SCALING_NONE = 1,       // values clamped to 0..255
    GS_JOB_SCALING_MINMAX = 2,     // per scene and channel: min -> 0, max -> 255
    GS_JOB_SCALING_PERCENTILE = 3, // per scene and channel: p_low -> 0, p_high -> 255
    GS_JOB_SCALING_RANGE = 4,      // fixed lo -> 0, hi -> 255 per channel
} gs_job_scaling_t;

typedef enum {
    GS_JOB_SAR_DB = 0,     // bands hold backscatter in dB
    GS_JOB_SAR_LINEAR = 1, // bands hold linear power: 10*log10(x) is taken first
} gs_job_sar_units_t;

typedef enum {
    GS_JOB_TIME_METADATA = 0, // scene metadata; time.pattern (if set) as the fallback
    GS_JOB_TIME_FILENAME = 1, // time.pattern on the file name
    GS_JOB_TIME_GIVEN = 2,    // time.value for every scene
    GS_JOB_TIME_NONE = 3,     // no time
} gs_job_time_from_t;

typedef enum {
    GS_JOB_PAIRING_LATEST = 0,      // each scene with the latest earlier scene of its place
    GS_JOB_PAIRING_CONSECUTIVE = 1, // every scene with the next one of its place (all pairs
                                    // of neighbours in time)
} gs_job_pairing_t;

typedef enum {
    GS_JOB_GRID_LATER = 0, // change pairs are resampled onto the later scene's grid
    GS_JOB_GRID_CRS = 1,   // ... onto a grid in changes.crs at changes.resolution
} gs_job_grid_t;

typedef enum {
    GS_JOB_RESAMPLE_NEAREST = 0,
    GS_JOB_RESAMPLE_BILINEAR = 1,
    GS_JOB_RESAMPLE_CUBIC = 2,
} gs_job_resample_t;

typedef enum {
    GS_JOB_SELECT_ALL = 0,       // caption every kept tile
    GS_JOB_SELECT_NONE = 1,      // caption nothing
    GS_JOB_SELECT_SAMPLE = 2,    // a deterministic fraction of tiles (by tile id)
    GS_JOB_SELECT_PER_SCENE = 3, // the first N kept tiles of each scene, in grid order
} gs_job_select_t;

// The effective spec. Every string and vector is owned by the job (free with gs_job_destroy);
// every pointer is non-NULL after a successful load (empty strings, not NULL).
typedef struct {
    char *name;    // "landsat-2017", [A-Za-z0-9._-]{1,64}
    char **inputs; // paths, globs, directories, @list files, /vsi... paths; n_inputs >= 1
    int n_inputs;
    char *output; // output directory
    struct {
        char **extensions; // file-name endings taken from directories, e.g. {"tif", "tiff"}
        int n_extensions;
        char *group; // multi-file scenes: "{scene}_B{band}.TIF"; "" = one file a scene
        gs_job_checksum_t checksum;
    } scenes;
    struct {
        int size;                  // tile side in pixels, 16..8192 (256)
        int overlap;               // pixels shared by neighbours, 0..size-1 (0)
        double min_valid_fraction; // tiles with fewer valid pixels are skipped, 0..1 (0.5)
        gs_job_edge_t edge;
    } tiling;
    struct {
        gs_job_composite_t mode;
        char *bands[3]; // band references: 1-based index, band description or group band name
        int n_bands;    // 0 = automatic; rgb: 1 or 3; sar: 2
        gs_job_scaling_t scaling;
        double percentile[2]; // p_low, p_high in [0, 100] (2, 98)
        double range[6];      // lo, hi for R, G, B
        gs_job_sar_units_t sar_units;
    } composite;
    struct {
        gs_job_time_from_t from;
        char *pattern; // see jobs/acqtime.h; "" = none
        char *value;   // time.from = given: the text as written
        int64_t given; // ... and parsed (seconds since the epoch, UTC)
    } time;
    struct {
        char *model; // path of the encoder weights
        char *arch;  // "auto" or an architecture name checked by the model loader
        int batch;   // tiles per forward pass, 1..4096 (16)
        int threads; // BLAS threads per rank, 0 = automatic, 0..1024 (0)
        char *vocab; // the text tower's BPE vocabulary; "" = found next to the weights
    } encoder;
    struct {
        char *model;  // "" = no captions
        char *prompt; // instruction given to the captioner
        gs_job_select_t select;
        double sample_fraction; // select = sample:F, F in (0, 1]
        int per_scene;          // select = per_scene:N, N >= 1
        int max_tokens;         // 1..1024 (64)
    } captioner;
    struct {
        char *type;       // "auto", "flat" or a FAISS factory string ("IVF4096,PQ64np")
        int64_t flat_max; // auto: flat up to this many vectors, 1..2^40 (200000)
        int nprobe;       // IVF lists searched, 1..65536 (16)
    } index;
    struct {
        int max_tiles; // grid cells per ingest task, 1..2^20 (256); part of the task ids, so
                       // an output keeps the value of its first run (coordinator/ingest.h)
    } tasks;
    struct {                      // `geoscribe changes` (docs/CHANGES.md)
        gs_job_pairing_t pairing; // latest (default) or consecutive
        double max_gap_days;      // the most days between the two scenes of a pair, 0 = any
                                  // (365)
        double min_overlap;       // footprint overlap / smaller footprint, 0..1 (0.5)
        gs_job_grid_t grid;       // later (default) or crs
        char *crs;                // grid = crs: "EPSG:32718" or any GDAL CRS text
        double resolution;        // grid = crs: pixel size in CRS units, > 0
        gs_job_resample_t resampling; // warping (bilinear)
        double threshold;         // caption tiles with a change score >= this, 0..2 (0)
        double top_fraction;      // ... and among the top fraction of their pair, 0..1 (0.1)
        char *caption_model;      // two-image captioner; "" = captioner.model; "none" = none
        char *prompt;             // the question asked about each pair of tiles
    } changes;
    struct {
        char *publish; // ZeroMQ PUB endpoint for Progress messages; "" = none. "tcp://*:5557"
                       // binds, ">tcp://host:5557" connects (to a monitor that binds)
    } progress;
} gs_job_t;

// The most --set overrides one load accepts.
#define GS_JOB_MAX_SETS 256

// gs_job_load: reads the job file at `path`, applies `sets` ("key=value", dotted keys, in
// order, after the file) and validates everything. Keys the spec does not know are errors, in
// the file and in --set alike. `inputs` and other list keys given with --set take a
// comma-separated list ("inputs=a.tif,b/*.tif"); an empty value clears a string
// ("captioner.model=").
// Errors name the file, the field and the line: `job "jobs/x.yaml": tiling.size must be between
// 16 and 8192, got 9 (line 7)`, or "(from --set)". When err is non-NULL the message goes there
// and nothing is logged (the caller reports it); when err is NULL it is logged at ERROR.
// Returns GS_OK, GS_EIO (unreadable file), GS_EINVAL (invalid spec), GS_ENOMEM.
// Ownership: *out is new; free it with gs_job_destroy. Thread-safe (no shared state).
gs_err gs_job_load(const char *path, const char *const *sets, int n_sets, gs_job_t **out, char *err,
                   size_t err_nbytes);

// gs_job_parse: the same from YAML text in memory; `label` names it in messages ("<packed>").
gs_err gs_job_parse(const char *yaml, size_t nbytes, const char *label, const char *const *sets,
                    int n_sets, gs_job_t **out, char *err, size_t err_nbytes);

// gs_job_destroy: frees a job; NULLs *p; accepts NULL.
void gs_job_destroy(gs_job_t **p);

// gs_job_canonical: the effective spec as canonical YAML text: every key (defaults included) in
// the fixed order of the key table, strings double-quoted and escaped, numbers in their
// shortest round-trip form. Equal specs give byte-identical text; parsing it gives the same
// spec. *out is new (gs_free), NUL-terminated; GS_ENOMEM or GS_ETOOBIG (> 4 MiB).
gs_err gs_job_canonical(const gs_job_t *self, char **out, size_t *out_nbytes);

// gs_job_hash: gs_hash_bytes of the canonical text (seed "gsjob1"): equal for equal specs,
// recorded in the ledger so a resumed run can tell that the job did not change.
uint64_t gs_job_hash(const gs_job_t *self);

// gs_job_pack / gs_job_unpack: the broadcast form is the canonical text (pack = canonical);
// unpack parses and validates it like a file, so a corrupted message fails with GS_EINVAL.
gs_err gs_job_pack(const gs_job_t *self, char **out, size_t *out_nbytes);
gs_err gs_job_unpack(const char *data, size_t nbytes, gs_job_t **out, char *err, size_t err_nbytes);

// gs_job_caption_selects: whether the captioner takes a tile under captioner.select, given its
// tile id and its position among the kept tiles of its scene (0-based, grid order). Sampling
// is by tile id (gs_hash_mix64(id) < F * 2^64), so every rank and every rerun agree.
// Always 0 when captioner.model is empty. Pure.
int gs_job_caption_selects(const gs_job_t *self, uint64_t tile_id, int index_in_scene);

// Key table introspection (docs, --help): the number of keys and, for key i, its dotted name,
// default (as text) and one-line help. Static strings; NULL past the end.
int gs_job_n_keys(void);
const char *gs_job_key_name(int i);
const char *gs_job_key_default(int i);
const char *gs_job_key_help(int i);
