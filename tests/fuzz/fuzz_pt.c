// libFuzzer target for the torch .pt reader of model/weights (zip directory, restricted pickle
// VM, state dict rules). Two input forms, so that mutations reach both layers:
//   - input starting with "PK": a whole archive, written as is;
//   - anything else: the bytes of "f/data.pkl", wrapped here into a valid torch archive that
//     also holds four 64-byte storages "f/data/0".."f/data/3" and a version entry.
// The archive goes to "in.pt" in a private temporary folder and is opened with
// gs_weights_open. An accepted set must keep its promises (sorted unique names, sizes that
// match, every byte readable). Seeds: tests/fuzz/corpus/pt/, written by
// tests/fuzz/make_seeds.sh (the .pkl seeds use storage keys "0".."3" with numel <= 64 bytes).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "model/weights.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_pt: check failed: %s (line %d)\n", #cond, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char dir[64], in_path[128];

static volatile uint8_t sink;

static void discard(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)line;
    (void)ud;
}

static void cleanup(void)
{
    unlink(in_path);
    rmdir(dir);
}

static void init_once(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/gs_fuzz_pt.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(in_path, sizeof in_path, "%s/in.pt", dir);
    atexit(cleanup);
    gs_log_set(discard, NULL);
}

// ---- a minimal stored-entry zip writer ----------------------------------------------------

typedef struct {
    uint8_t *p;
    size_t n, cap;
} out_t;

static void put(out_t *o, const void *src, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 256;
        o->p = gs_xrealloc(o->p, o->cap);
    }
    if (n)
        memcpy(o->p + o->n, src, n);
    o->n += n;
}

static void le(out_t *o, uint64_t v, int k)
{
    uint8_t b[8];
    for (int i = 0; i < k; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, (size_t)k);
}

typedef struct {
    const char *name;
    const uint8_t *data;
    size_t n;
} entry_t;

static void zip(out_t *o, const entry_t *e, size_t k)
{
    uint64_t off[8];
    for (size_t i = 0; i < k; i++) {
        off[i] = o->n;
        size_t nl = strlen(e[i].name);
        le(o, 0x04034b50, 4);
        le(o, 20, 2);
        le(o, 0, 2);
        le(o, 0, 2); // stored
        le(o, 0, 8); // time, date, crc
        le(o, e[i].n, 4);
        le(o, e[i].n, 4);
        le(o, nl, 2);
        le(o, 0, 2);
        put(o, e[i].name, nl);
        put(o, e[i].data, e[i].n);
    }
    uint64_t cd = o->n;
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(e[i].name);
        le(o, 0x02014b50, 4);
        le(o, 20, 2);
        le(o, 20, 2);
        le(o, 0, 2);
        le(o, 0, 2);
        le(o, 0, 8);
        le(o, e[i].n, 4);
        le(o, e[i].n, 4);
        le(o, nl, 2);
        le(o, 0, 2);
        le(o, 0, 2);
        le(o, 0, 2);
        le(o, 0, 2);
        le(o, 0, 4);
        le(o, off[i], 4);
        put(o, e[i].name, nl);
    }
    uint64_t cd_size = o->n - cd;
    le(o, 0x06054b50, 4);
    le(o, 0, 4);
    le(o, k, 2);
    le(o, k, 2);
    le(o, cd_size, 4);
    le(o, cd, 4);
    le(o, 0, 2);
}

static void write_input(const uint8_t *data, size_t size)
{
    static uint8_t storage[64];
    for (int i = 0; i < 64; i++)
        storage[i] = (uint8_t)(i * 37 + 11);
    out_t o = {0};
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        put(&o, data, size);
    } else {
        entry_t e[] = {{"f/data.pkl", data, size}, {"f/data/0", storage, 64},
                       {"f/data/1", storage, 64},  {"f/data/2", storage, 64},
                       {"f/data/3", storage, 64},  {"f/version", (const uint8_t *)"3\n", 2}};
        zip(&o, e, sizeof e / sizeof e[0]);
    }
    int fd = open(in_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    for (size_t done = 0; done < o.n;) {
        ssize_t k = write(fd, o.p + done, o.n - done);
        CHECK(k > 0);
        done += (size_t)k;
    }
    close(fd);
    gs_free(o.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    write_input(data, size);
    gs_weights_t *w = NULL;
    gs_err e = gs_weights_open(in_path, &w);
    CHECK((e == GS_OK) == (w != NULL));
    if (!w) {
        CHECK(e == GS_EFORMAT || e == GS_EUNSUPPORTED || e == GS_EIO || e == GS_ETOOBIG ||
              e == GS_ENOMEM);
        return 0;
    }
    size_t n = gs_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const gs_tensor_t *t = gs_weights_at(w, i);
        if (i > 0)
            CHECK(strcmp(gs_weights_at(w, i - 1)->name, t->name) < 0);
        CHECK(gs_weights_get(w, t->name) == t);
        int64_t prod = 1;
        for (int d = 0; d < t->n_dims; d++)
            prod *= t->shape[d];
        CHECK(prod == t->n_elems);
        CHECK(t->nbytes == (size_t)t->n_elems * gs_dtype_size(t->dtype));
        uint8_t sum = 0; // every byte must be readable (ASan / SIGSEGV otherwise)
        for (size_t k = 0; k < t->nbytes; k++)
            sum ^= ((const uint8_t *)t->data)[k];
        sink = sum;
        float f[2];
        (void)gs_tensor_to_f32(t, 0, t->n_elems < 2 ? t->n_elems : 2, f);
    }
    gs_weights_close(&w);
    return 0;
}
