// The names inside an output folder, shared by ingest (which writes them: docs/INGEST.md, "The
// output folder"), query and status (which read them). Names only: no functions, no state.
// docs/STORE.md describes what is inside each.
#pragma once

// OUT/db/: the RocksDB record store (index/capstore.h).
#define GS_LAYOUT_STORE "db"
// OUT/index/tiles.faiss: the FAISS index (index/vindex.h), replaced atomically when persisted.
#define GS_LAYOUT_INDEX "index/tiles.faiss"
// OUT/staging/: shards (index/shard.h, "<task id>.shard") waiting to be committed, or committed
// but not yet in the persisted index. (Raw vector files, index/vecfile.h, are for other stages
// that hand vectors around, such as change detection.)
#define GS_LAYOUT_STAGING "staging"

// Meta keys about the index, so that `status` and query can describe it without loading a
// multi-GB file (written by coordinator/vidx.c when it persists the index).
#define GS_META_INDEX_TYPE "index.type"     // "Flat" or "IVF4096,PQ64np,RFlat"
#define GS_META_INDEX_NTOTAL "index.ntotal" // vectors in the persisted index, "123456"
