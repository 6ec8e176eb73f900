// The names inside an output folder (docs/STORE.md, "Layout"), shared by ingest (which writes
// them), query and status (which read them). Names only: no functions, no state.
#pragma once

// OUT/index.faiss: the FAISS index (index/vindex.h), replaced atomically at each checkpoint.
#define GS_LAYOUT_INDEX "index.faiss"
// OUT/store/: the RocksDB record store (index/capstore.h).
#define GS_LAYOUT_STORE "store"
// OUT/shards/: staging. Workers write one shard per task here (vectors as an index/vecfile.h
// file "<name>.vec", next to their records); a shard is deleted once an index checkpoint that
// holds its vectors is on disk.
#define GS_LAYOUT_SHARDS "shards"
// Suffix of a shard's vector file.
#define GS_LAYOUT_VEC_SUFFIX ".vec"

// Meta keys about the index (docs/STORE.md, "Commit and resume"), so that `status` can
// describe it without loading a multi-GB file.
#define GS_META_INDEX_TYPE "index.type"     // "Flat" or "IVF4096,PQ64np,RFlat"
#define GS_META_INDEX_DIM "index.dim"       // "512"
#define GS_META_INDEX_NTOTAL "index.ntotal" // vectors in the last index checkpoint, "123456"
