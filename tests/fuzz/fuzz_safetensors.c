// libFuzzer target for the safetensors reader of model/weights, sharded index included. Each
// input is written to "in.safetensors" in a private temporary folder and opened with
// gs_weights_open; the folder also holds a valid shard "s.safetensors", so an input that is an
// index ({"weight_map": {...: "s.safetensors"}}) reaches the sharded path. Beyond "no crash",
// an accepted set must keep its promises: names sorted and unique, nbytes = n_elems * dtype
// size, every byte readable, lookups by name return the same tensor, float tensors convert.
// Seeds: tests/fuzz/corpus/safetensors/, written by tests/fuzz/make_seeds.sh.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "model/weights.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_safetensors: check failed: %s (line %d)\n", #cond, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char dir[64], in_path[128], shard_path[128];

static volatile uint8_t sink;

static void discard(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)line;
    (void)ud;
}

static void write_all(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        CHECK(k > 0);
        p += k;
        n -= (size_t)k;
    }
    close(fd);
}

static void cleanup(void)
{
    unlink(in_path);
    unlink(shard_path);
    rmdir(dir);
}

static void init_once(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/gs_fuzz_st.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", dir);
    snprintf(shard_path, sizeof shard_path, "%s/s.safetensors", dir);
    static const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
                              "      ";
    uint8_t shard[8 + sizeof hdr - 1 + 8] = {sizeof hdr - 1};
    memcpy(shard + 8, hdr, sizeof hdr - 1);
    write_all(shard_path, shard, sizeof shard);
    atexit(cleanup);
    gs_log_set(discard, NULL);
}

static void check_set(const gs_weights_t *w)
{
    size_t n = gs_weights_count(w);
    for (size_t i = 0; i < n; i++) {
        const gs_tensor_t *t = gs_weights_at(w, i);
        CHECK(t && t->name && t->file);
        if (i > 0)
            CHECK(strcmp(gs_weights_at(w, i - 1)->name, t->name) < 0);
        CHECK(gs_weights_get(w, t->name) == t);
        CHECK(t->n_dims >= 0 && t->n_dims <= GS_TENSOR_MAX_DIMS);
        int64_t prod = 1;
        for (int d = 0; d < t->n_dims; d++) {
            CHECK(t->shape[d] >= 0);
            prod *= t->shape[d];
        }
        CHECK(prod == t->n_elems);
        size_t es = gs_dtype_size(t->dtype);
        CHECK(es > 0 && t->nbytes == (size_t)t->n_elems * es);
        CHECK(t->nbytes == 0 || (uintptr_t)t->data % es == 0);
        uint8_t sum = 0; // every byte must be readable (ASan / SIGSEGV otherwise)
        for (size_t k = 0; k < t->nbytes; k++)
            sum ^= ((const uint8_t *)t->data)[k];
        sink = sum;
        float f[4];
        int64_t m = t->n_elems < 4 ? t->n_elems : 4;
        gs_err e = gs_tensor_to_f32(t, 0, m, f);
        int is_float = t->dtype == GS_DTYPE_F32 || t->dtype == GS_DTYPE_F16 ||
                       t->dtype == GS_DTYPE_BF16 || t->dtype == GS_DTYPE_F64;
        CHECK(e == (is_float ? GS_OK : GS_EINVAL));
        CHECK(gs_tensor_to_f32(t, t->n_elems, 1, f) == GS_EINVAL);
    }
    CHECK(gs_weights_at(w, n) == NULL);
    (void)gs_weights_metadata(w, "format");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    write_all(in_path, data, size);
    gs_weights_t *w = NULL;
    gs_err e = gs_weights_open(in_path, &w);
    CHECK((e == GS_OK) == (w != NULL));
    if (w) {
        check_set(w);
        gs_weights_close(&w);
        CHECK(w == NULL);
    } else {
        CHECK(e == GS_EFORMAT || e == GS_EUNSUPPORTED || e == GS_EIO || e == GS_ETOOBIG ||
              e == GS_ENOMEM);
    }
    return 0;
}
