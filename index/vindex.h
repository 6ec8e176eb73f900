// gs_vindex: the vector index of an output, keyed by 64-bit tile ids, searched by inner product
// (embeddings are L2-normalised, so this is cosine similarity). Built on FAISS through its C
// API; this header exposes no FAISS type. Two families of index:
//   - flat: IndexIDMap2 over IndexFlatIP; exact search; for small outputs.
//   - a FAISS factory string such as "IVF4096,PQ64np" (trained on a sample), optionally with a
//     refine stage (exact re-ranking against the stored vectors, "RFlat") for recall; always
//     wrapped in IndexIDMap2 so ids are arbitrary and vectors can be reconstructed by id.
// Index files are plain FAISS files: Debian's python3-faiss opens them with faiss.read_index.
// It is not the record store (index/capstore.h) and knows nothing of tiles beyond their ids.
//
// Threads: a handle may be used from several threads at once. Reads (search, reconstruct,
// contains, ntotal, write) run concurrently; writes (train, add, remove, merge, set_nprobe)
// take the handle exclusively. FAISS itself runs OpenMP threads inside each call: set
// opts.n_threads (applied to the calling thread before every FAISS call) and export
// OMP_WAIT_POLICY=PASSIVE in the environment of the program (libgomp reads it once at start-up;
// spinning OpenMP workers steal the 2 cores from OpenBLAS otherwise, see ../shared/STACK.md).
//
// Errors: FAISS failures are GS_EBACKEND with FAISS's message in the log line. Every function
// that returns GS_EBACKEND, GS_EIO, GS_EFORMAT or GS_EMISMATCH has logged why; GS_EINVAL,
// GS_ENOTFOUND and GS_ENOMEM are not logged.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct gs_vindex gs_vindex_t;

// GS_VINDEX_NONE: the id of an empty result slot (FAISS's -1); its score is -INFINITY.
#define GS_VINDEX_NONE UINT64_MAX
// GS_VINDEX_ID_MAX: ids are 0 .. 2^63-1 (FAISS ids are signed 64-bit; -1 means "none").
#define GS_VINDEX_ID_MAX ((uint64_t)INT64_MAX)
// GS_VINDEX_K_MAX: the largest k of one search (the caller's output is nq * k entries).
#define GS_VINDEX_K_MAX (1u << 20)
// GS_VINDEX_EXACT_MAX: an id allow-list of at most this many present ids is searched exactly
// (each candidate scored against the query); larger ones are searched by over-fetching.
#define GS_VINDEX_EXACT_MAX 65536u
// GS_VINDEX_NPROBE_WIDEN_MAX: an unfiltered IVF search that finds fewer than k hits (the
// probed lists hold too few vectors, e.g. k = 10,000 at nprobe 16) is repeated with nprobe
// scaled by the shortfall (x 1.5 k / hits, at least x 2), up to this many lists, so that k hits
// come back whenever the index holds k vectors.
#define GS_VINDEX_NPROBE_WIDEN_MAX 65536

typedef struct {
    int dim;         // vector dimension, e.g. 512 (read: 0 = accept the file's)
    const char *type; // "Flat" (NULL or "" too), or a FAISS factory string: "IVF4096,PQ64np",
                     // "IVF1024,PQ32np,RFlat". A leading "IDMap2," is accepted and ignored (the
                     // index is always id-mapped). Ignored by gs_vindex_read.
    bool refine;     // add an exact refine stage (IndexRefineFlat), same as a ",RFlat" suffix;
                     // costs dim*4 bytes per vector, buys recall@10 >= 0.95 over PQ codes
    float k_factor;  // refine: the base index returns k*k_factor candidates (0 = 16)
    int nprobe;      // IVF lists probed per query (0 = 16 when created; on read, the file's
                     // for a plain IVF, 16 below a refine stage, whose nprobe FAISS's C API
                     // cannot read)
    int n_threads;   // OpenMP threads per FAISS call (0 = leave OpenMP's default)
} gs_vindex_opts_t;

// ---- lifecycle ------------------------------------------------------------------------------

// gs_vindex_new: an empty index. Flat indexes are trained at birth; others need
// gs_vindex_train before gs_vindex_add. The caller owns *out (gs_vindex_destroy).
// GS_EINVAL (dim <= 0, or a type FAISS's factory refuses: logged with FAISS's message, since
// the type usually comes from a job file), GS_EBACKEND. Thread-safe.
gs_err gs_vindex_new(const gs_vindex_opts_t *opts, gs_vindex_t **out);

// gs_vindex_read: loads an index file written by gs_vindex_write (or any FAISS IndexIDMap2
// with the inner-product metric) fully into memory. opts may be NULL; opts->dim > 0 checks the
// dimension, opts->nprobe > 0 overrides the stored nprobe, opts->k_factor > 0 the stored
// refine k_factor (query/ reads with 32: recall@10 0.935 -> 0.994 on clustered 1M x 512,
// bench/query), n_threads as above. The caller owns *out. GS_ENOTFOUND (no such file,
// logged), GS_EBACKEND (FAISS could not parse it), GS_EFORMAT (not an IDMap2 inner-product
// index), GS_EMISMATCH (another dimension).
gs_err gs_vindex_read(const char *path, const gs_vindex_opts_t *opts, gs_vindex_t **out);

// gs_vindex_destroy: frees the index; NULLs *p; accepts NULL or *p == NULL. Not concurrent
// with any other call on the handle.
void gs_vindex_destroy(gs_vindex_t **p);

// gs_vindex_write: writes the index to `path` atomically (a temporary in the same folder,
// fsync, rename, fsync of the folder): a crash leaves the old file or the new one, never a
// torn one. GS_EIO (file system), GS_EBACKEND (FAISS). Runs alongside searches.
gs_err gs_vindex_write(gs_vindex_t *self, const char *path);

// gs_vindex_new_like: a new empty index of the same type sharing self's trained state
// (quantizer, PQ codebooks), for shards or a delta index. It copies self and then empties the
// copy (FAISS 1.7.3 has no "clone the trained part"), so call it right after training, not on
// a full index. The caller owns *out. GS_EIO (a temporary file, for refine indexes),
// GS_EBACKEND.
gs_err gs_vindex_new_like(gs_vindex_t *self, gs_vindex_t **out);

// ---- facts ----------------------------------------------------------------------------------

int gs_vindex_dim(const gs_vindex_t *self);
// gs_vindex_ntotal: the number of vectors. Thread-safe.
size_t gs_vindex_ntotal(gs_vindex_t *self);
// gs_vindex_is_trained: 1 when vectors can be added.
int gs_vindex_is_trained(gs_vindex_t *self);
// gs_vindex_describe: "IDMap2,IVF4096,PQ64np,RFlat nprobe=16 ntotal=123" into a caller buffer,
// truncated to out_nbytes, for `status`. For a file read back it shows what the structure
// reveals through the C API: "IDMap2,Flat", "IDMap2,IVF4096,?" or "IDMap2,Refine(IVF)" (the
// factory string is best kept in the store's meta, as ingest does in "index.type").
void gs_vindex_describe(gs_vindex_t *self, char *out, size_t out_nbytes);
// gs_vindex_nprobe: the current nprobe, 0 when the index has no IVF (flat). Thread-safe.
int gs_vindex_nprobe(gs_vindex_t *self);
// gs_vindex_contains: 1 if the id is in the index, else 0. O(1). Thread-safe.
int gs_vindex_contains(gs_vindex_t *self, uint64_t id);
// gs_vindex_ids: copies up to `cap` ids (in FAISS's internal order) into out_ids and returns
// the number of ids in the index (so a first call with cap 0 sizes the buffer).
size_t gs_vindex_ids(gs_vindex_t *self, uint64_t *out_ids, size_t cap);

// ---- building -------------------------------------------------------------------------------

// gs_vindex_train: trains the quantizers on n sample vectors (n, dim), row-major. Use about
// 50 * nlist vectors (gs_vindex_auto gives a size); more costs time, fewer costs recall. A no-op
// for flat. GS_EINVAL (n == 0), GS_ESTATE (already trained with vectors in it),
// GS_EBACKEND.
gs_err gs_vindex_train(gs_vindex_t *self, size_t n, const float *vecs);

// gs_vindex_add: adds n vectors (n, dim) with their ids. Idempotent: ids already in the index
// (and repeats inside the batch) are skipped, so recommitting a shard adds nothing twice.
// `vecs` and `ids` are read only during the call. GS_EINVAL (an id > GS_VINDEX_ID_MAX, NULL
// arrays), GS_ESTATE (not trained), GS_ENOMEM, GS_EBACKEND.
gs_err gs_vindex_add(gs_vindex_t *self, size_t n, const float *vecs, const uint64_t *ids);

// gs_vindex_remove: removes the given ids (absent ids are ignored); *out_n_removed (may be
// NULL) gets the count. Flat: FAISS remove_ids, O(ntotal). Other types cannot remove in FAISS
// under an id map, so the index is rebuilt from its reconstructed vectors: O(ntotal) encodes,
// exact with a refine stage, a re-encoding of decoded PQ codes without one. GS_ENOMEM,
// GS_EBACKEND.
gs_err gs_vindex_remove(gs_vindex_t *self, size_t n, const uint64_t *ids, size_t *out_n_removed);

// gs_vindex_merge_from: adds every vector of `other` (same dim and type, e.g. a shard made
// with gs_vindex_new_like) to self, by reconstructing them (exact for flat and refine indexes,
// decoded PQ codes otherwise) and adding with their ids; ids already in self are skipped.
// `other` is left unchanged. (The FAISS C API 1.7.3 has faiss_IndexIVF_merge_from, but it
// cannot merge the IDMap2 layers above the IVF, so merge_from is not used.) The cheaper path
// for ingest is to keep shard vectors as raw floats (index/shard.h, index/vecfile.h) and
// gs_vindex_add them at commit. GS_EMISMATCH (dim), GS_ENOMEM, GS_EBACKEND. `other` must not be self. Locks other
// (shared) then self (exclusive): never merge a into b and b into a at the same time.
gs_err gs_vindex_merge_from(gs_vindex_t *self, gs_vindex_t *other);

// gs_vindex_set_nprobe: IVF lists probed by later searches (ignored by flat). GS_EINVAL
// (nprobe < 1), GS_EBACKEND.
gs_err gs_vindex_set_nprobe(gs_vindex_t *self, int nprobe);

// ---- reading --------------------------------------------------------------------------------

// gs_vindex_reconstruct: the stored vector of an id into out_vec (dim floats): exact for flat
// and refine indexes, the decoded code otherwise (--like-tile). GS_ENOTFOUND (a result, not
// logged), GS_EBACKEND.
gs_err gs_vindex_reconstruct(gs_vindex_t *self, uint64_t id, float *out_vec);

// A result filter: an id passes if it is in `ids` (when ids != NULL) and keep(id, ud) != 0
// (when keep != NULL). FAISS 1.7.3's C API has IDSelectors but no search parameters to pass
// one to search, so the filter is applied here:
//   - an allow-list with at most GS_VINDEX_EXACT_MAX ids present in the index is searched
//     exactly: each candidate is reconstructed and scored against the queries (complete: k hits
//     whenever k candidates exist; exact scores for flat and refine indexes);
//   - otherwise the search over-fetches: k' = k * max(4, 2 * ntotal / n_allowed) results,
//     filtered in rank order; queries still short of k are searched again with k' x 4 until
//     k' reaches ntotal. Complete for flat indexes. An IVF index sees only its probed lists:
//     when they hold fewer than k passing vectors (and the allow-list has more), nprobe is
//     widened as for large k (GS_VINDEX_NPROBE_WIDEN_MAX), so k hits come back whenever they
//     exist, with the recall of an IVF at that nprobe.
// keep() is called from the searching thread only, possibly several times per id.
typedef struct {
    const uint64_t *ids; // allow-list (any order, repeats allowed) or NULL
    size_t n_ids;
    int (*keep)(uint64_t id, void *ud); // predicate or NULL
    void *ud;
} gs_vindex_filter_t;

typedef struct {
    int nprobe;                       // 0 = the index's current nprobe
    const gs_vindex_filter_t *filter; // NULL = no filter
} gs_vindex_search_opts_t;

// gs_vindex_search: the k best ids of each of nq queries (nq, dim) by inner product, into
// caller arrays out_scores and out_ids of nq * k entries, best first; slots beyond the hits are
// GS_VINDEX_NONE with score -INFINITY. opts may be NULL. A search with opts->nprobe different
// from the current one runs exclusively and sets it (it stays for later searches); searches with
// the current nprobe (or 0) run concurrently. Allocates temporary
// memory only for filtered searches. GS_EINVAL (k == 0 or > GS_VINDEX_K_MAX, NULL arrays),
// GS_ENOMEM, GS_EBACKEND.
gs_err gs_vindex_search(gs_vindex_t *self, size_t nq, const float *queries, size_t k,
                        const gs_vindex_search_opts_t *opts, float *out_scores,
                        uint64_t *out_ids);

// ---- policy ---------------------------------------------------------------------------------

// What index_type "auto" becomes for an output of n_vectors of dimension dim.
typedef struct {
    char type[64];  // "Flat" or "IVF4096,PQ64np"
    bool refine;    // true with IVF-PQ (recall)
    size_t n_train; // training sample size (0 for Flat)
    int nprobe;     // search default
} gs_vindex_auto_t;

// gs_vindex_auto: Flat up to `flat_max` vectors (0 = GS_VINDEX_FLAT_MAX), else
// IVF<nlist>,PQ<dim/8>np with a refine stage, nlist the power of two nearest 4*sqrt(n)
// within [256, 65536], n_train = min(n, 50 * nlist) and nprobe 16. dim must be divisible by 4.
// Pure; thread-safe.
#define GS_VINDEX_FLAT_MAX 100000u
void gs_vindex_auto(size_t n_vectors, int dim, size_t flat_max, gs_vindex_auto_t *out);
