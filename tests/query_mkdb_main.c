// query_mkdb OUT [N] [INDEX] [refine]: writes a small test output (tests/query_mkdb.h)
// for the query shell tests and for trying `geoscribe query` / `serve` by hand.
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "query_mkdb.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: query_mkdb OUT [N_TILES] [INDEX] [refine]\n");
        return 2;
    }
    uint64_t n = 3000;
    if (argc > 2 && (gs_parse_u64(argv[2], &n) != GS_OK || n < 1)) {
        fprintf(stderr, "query_mkdb: bad tile count \"%s\"\n", argv[2]);
        return 2;
    }
    qmk_opts_t o = {.out = argv[1],
                    .n_tiles = (size_t)n,
                    .index = argc > 3 ? argv[3] : "Flat",
                    .shared = GS_SHARED_DIR};
    for (int i = 4; i < argc; i++) {
        o.refine |= strcmp(argv[i], "refine") == 0;
    }
    return qmk_make(&o, NULL);
}
