// model/weights: safetensors, sharded sets and torch .pt zips against the real fixtures (the
// openclip_tiny .pt must be bit-identical to its .safetensors), plus hostile and broken files
// written here: truncation, bad headers, overlaps, hand-made pickles and zips.
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "model/weights.h"
#include "testutil.h"

// ---- helpers ------------------------------------------------------------------------------

static char logbuf[1 << 16];
static size_t loglen;

static void capture(gs_log_level_t level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    int k = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s\n", line);
    if (k > 0 && loglen + (size_t)k < sizeof logbuf)
        loglen += (size_t)k;
}

static void cap_start(void)
{
    loglen = 0;
    logbuf[0] = '\0';
    gs_log_set(capture, NULL);
}

static void cap_stop(void)
{
    gs_log_set(NULL, NULL);
}

#define ASSERT_LOGGED(s)                                                                           \
    ck_assert_msg(strstr(logbuf, (s)) != NULL, "log lacks [%s]: %s", (s), logbuf)

static char tmp[4096];

static const char *tmp_path(const char *name)
{
    static char p[4200];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void put_le(gs_buf_t *b, uint64_t v, int k)
{
    uint8_t x[8];
    for (int i = 0; i < k; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    ck_assert_int_eq(gs_buf_append(b, x, (size_t)k), GS_OK);
}

// st_bytes: a safetensors file from a header (padded to 8 with spaces) and a data region
static void st_bytes(gs_buf_t *out, const char *header, const void *data, size_t n)
{
    size_t h = strlen(header), padded = (h + 7) / 8 * 8;
    gs_buf_init(out, 1 << 26);
    put_le(out, padded, 8);
    gs_buf_append(out, header, h);
    for (size_t i = h; i < padded; i++)
        gs_buf_append(out, " ", 1);
    if (n)
        gs_buf_append(out, data, n);
}

static void st_write(const char *path, const char *header, const void *data, size_t n)
{
    gs_buf_t b;
    st_bytes(&b, header, data, n);
    write_bytes(path, b.data, b.len);
    gs_buf_cleanup(&b);
}

// open_err: opens, expects `want`, and checks that the log names the path (unless
// !path_logged), `a` and `b` (when given)
static void open_err_at(const char *path, int path_logged, gs_err want, const char *a,
                        const char *b)
{
    gs_weights_t *w = NULL;
    cap_start();
    gs_err e = gs_weights_open(path, &w);
    cap_stop();
    ck_assert_msg(e == want, "%s: got %s want %s; log: %s", path, gs_err_name(e), gs_err_name(want),
                  logbuf);
    ck_assert_ptr_null(w);
    if (path_logged)
        ASSERT_LOGGED(path);
    if (a)
        ASSERT_LOGGED(a);
    if (b)
        ASSERT_LOGGED(b);
}

static void open_err(const char *path, gs_err want, const char *a, const char *b)
{
    open_err_at(path, 1, want, a, b);
}

static void setup_tmp(void)
{
    const char *d = gs_test_tmpdir("model_weights");
    ck_assert_ptr_nonnull(d);
    snprintf(tmp, sizeof tmp, "%s", d);
}

// ---- dtypes and conversion ----------------------------------------------------------------

START_TEST(test_dtype_names_and_sizes)
{
    ck_assert_str_eq(gs_dtype_name(GS_DTYPE_F32), "F32");
    ck_assert_str_eq(gs_dtype_name(GS_DTYPE_BF16), "BF16");
    ck_assert_str_eq(gs_dtype_name(GS_DTYPE_BOOL), "BOOL");
    ck_assert_uint_eq(gs_dtype_size(GS_DTYPE_F64), 8);
    ck_assert_uint_eq(gs_dtype_size(GS_DTYPE_F16), 2);
    ck_assert_uint_eq(gs_dtype_size(GS_DTYPE_I8), 1);
    ck_assert_uint_eq(gs_dtype_size((gs_dtype_t)99), 0);
}
END_TEST

// reference binary16 decoding straight from the definition
static double f16_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

START_TEST(test_f16_to_f32_every_value)
{
    static uint16_t all[65536];
    static float out[65536];
    for (uint32_t i = 0; i < 65536; i++)
        all[i] = (uint16_t)i;
    gs_tensor_t t = {.name = "h",
                     .dtype = GS_DTYPE_F16,
                     .n_dims = 1,
                     .shape = {65536},
                     .n_elems = 65536,
                     .data = all,
                     .nbytes = sizeof all};
    ck_assert_int_eq(gs_tensor_to_f32(&t, 0, 65536, out), GS_OK);
    size_t bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        double want = f16_ref((uint16_t)i);
        uint32_t bits;
        memcpy(&bits, &out[i], 4);
        int ok = isnan(want) ? isnan(out[i]) && (bits >> 31) == (i >> 15) &&
                                   ((bits >> 13) & 1023) == (i & 1023)
                             : (double)out[i] == want && !signbit(out[i]) == !signbit(want);
        if (!ok && bad++ < 5)
            fprintf(stderr, "f16 0x%04x: got %.9g (0x%08x) want %.9g\n", i, out[i], bits, want);
    }
    ck_assert_uint_eq(bad, 0);
    // spot checks: smallest subnormal, largest normal, -0, +inf
    ck_assert(out[0x0001] == 0x1p-24f && out[0x7bff] == 65504.0f);
    ck_assert(out[0x8000] == 0.0f && signbit(out[0x8000]) && isinf(out[0x7c00]));
}
END_TEST

START_TEST(test_bf16_f64_and_ranges)
{
    uint16_t bf[4] = {0x3f80, 0xc000, 0x7f80, 0x0001}; // 1, -2, inf, smallest subnormal
    float out[4];
    gs_tensor_t t = {
        .dtype = GS_DTYPE_BF16, .n_dims = 1, .shape = {4}, .n_elems = 4, .data = bf, .nbytes = 8};
    ck_assert_int_eq(gs_tensor_to_f32(&t, 0, 4, out), GS_OK);
    ck_assert(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]) && out[3] == 0x1p-133f);
    ck_assert_int_eq(gs_tensor_to_f32(&t, 1, 2, out), GS_OK);
    ck_assert(out[0] == -2.0f);
    ck_assert_int_eq(gs_tensor_to_f32(&t, 3, 2, out), GS_EINVAL);
    ck_assert_int_eq(gs_tensor_to_f32(&t, -1, 1, out), GS_EINVAL);
    ck_assert_int_eq(gs_tensor_to_f32(&t, 4, 0, NULL), GS_OK);
    double d[2] = {0.1, -3e40};
    gs_tensor_t td = {
        .dtype = GS_DTYPE_F64, .n_dims = 1, .shape = {2}, .n_elems = 2, .data = d, .nbytes = 16};
    ck_assert_int_eq(gs_tensor_to_f32(&td, 0, 2, out), GS_OK);
    ck_assert(out[0] == 0.1f && isinf(out[1]) && out[1] < 0);
    int64_t i64 = 7;
    gs_tensor_t ti = {.dtype = GS_DTYPE_I64, .n_dims = 0, .n_elems = 1, .data = &i64, .nbytes = 8};
    ck_assert_int_eq(gs_tensor_to_f32(&ti, 0, 1, out), GS_EINVAL);
}
END_TEST

// ---- real fixtures ------------------------------------------------------------------------

static gs_weights_t *open_ok(const char *path)
{
    gs_weights_t *w = NULL;
    gs_err e = gs_weights_open(path, &w);
    ck_assert_msg(e == GS_OK, "open %s: %s", path, gs_err_name(e));
    return w;
}

START_TEST(test_openclip_pt_is_bit_identical_to_safetensors)
{
    GS_NEED_SHARED();
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/fixtures/openclip_tiny/open_clip_model.pt", gs_test_shared());
    snprintf(b, sizeof b, "%s/fixtures/openclip_tiny/open_clip_model.safetensors",
             gs_test_shared());
    gs_weights_t *pt = open_ok(a), *st = open_ok(b);
    ck_assert_uint_eq(gs_weights_count(pt), 62);
    ck_assert_uint_eq(gs_weights_count(st), 62);
    size_t total = 0;
    for (size_t i = 0; i < gs_weights_count(st); i++) {
        const gs_tensor_t *x = gs_weights_at(st, i), *y = gs_weights_at(pt, i);
        ck_assert_str_eq(x->name, y->name); // same sorted order, so the same name set
        ck_assert_int_eq(x->dtype, y->dtype);
        ck_assert_int_eq(x->n_dims, y->n_dims);
        for (int d = 0; d < x->n_dims; d++)
            ck_assert_int_eq(x->shape[d], y->shape[d]);
        ck_assert_int_eq(x->n_elems, y->n_elems);
        ck_assert_uint_eq(x->nbytes, y->nbytes);
        ck_assert_msg(memcmp(x->data, y->data, x->nbytes) == 0, "%s differs", x->name);
        ck_assert_str_eq(y->file, a);
        ck_assert_uint_eq((uintptr_t)y->data % 4, 0);
        total += x->nbytes;
        if (i > 0)
            ck_assert_int_lt(strcmp(gs_weights_at(st, i - 1)->name, x->name), 0);
    }
    ck_assert_uint_gt(total, 3000000);
    const gs_tensor_t *t;
    ck_assert_int_eq(
        gs_weights_expect(pt, "visual.conv1.weight", 4, (int64_t[]){64, 3, 8, 8}, 0, &t), GS_OK);
    ck_assert_int_eq(gs_weights_expect(pt, "logit_scale", 0, NULL, 0, &t), GS_OK);
    float ls;
    ck_assert_int_eq(gs_tensor_to_f32(t, 0, 1, &ls), GS_OK);
    ck_assert_float_eq_tol(ls, logf(1 / 0.07f), 1e-6);
    ck_assert_str_eq(gs_weights_metadata(st, "format"), "pt");
    ck_assert_ptr_null(gs_weights_metadata(pt, "format"));
    gs_weights_close(&pt);
    gs_weights_close(&st);
    ck_assert_ptr_null(pt);
    gs_weights_close(NULL);
}
END_TEST

START_TEST(test_hf_layouts_open_from_file_and_folder)
{
    GS_NEED_SHARED();
    char p[4096];
    snprintf(p, sizeof p, "%s/fixtures/hfclip_tiny", gs_test_shared());
    gs_weights_t *w = open_ok(p); // a folder with model.safetensors
    ck_assert_uint_eq(gs_weights_count(w), 78);
    ck_assert_int_eq(gs_weights_expect(w, "text_model.embeddings.token_embedding.weight", 2,
                                       (int64_t[]){49408, 16}, 0, NULL),
                     GS_OK);
    ck_assert_int_eq(gs_weights_expect(w, "logit_scale", 0, NULL, 0, NULL), GS_OK);
    gs_weights_close(&w);
    snprintf(p, sizeof p, "%s/fixtures/llava_tiny/model.safetensors", gs_test_shared());
    w = open_ok(p);
    ck_assert_uint_eq(gs_weights_count(w), 80);
    const gs_tensor_t *t;
    ck_assert_int_eq(
        gs_weights_expect(w, "language_model.lm_head.weight", 2, (int64_t[]){32064, -1}, 0, &t),
        GS_OK);
    ck_assert_int_eq(t->shape[1], 64);
    ck_assert_uint_eq(t->nbytes, 32064u * 64 * 4);
    ck_assert_ptr_null(gs_weights_get(w, "language_model.lm_head"));
    gs_weights_close(&w);
    // the open_clip hub folder: open_clip_model.safetensors
    snprintf(p, sizeof p, "%s/fixtures/openclip_tiny", gs_test_shared());
    w = open_ok(p);
    ck_assert_uint_eq(gs_weights_count(w), 62);
    ck_assert_int_eq(gs_weights_expect(w, "visual.proj", 2, NULL, 0, &t), GS_OK);
    ck_assert_ptr_nonnull(strstr(t->file, "open_clip_model.safetensors"));
    cap_start();
    ck_assert_int_eq(gs_weights_expect(w, "visual.proj", 3, NULL, 0, &t), GS_EFORMAT);
    cap_stop();
    ASSERT_LOGGED("expected shape of that rank, found [64, 32]");
    ck_assert_ptr_null(t);
    gs_weights_close(&w);
}
END_TEST

START_TEST(test_expected_file_int_u8_and_scalar_tensors)
{
    GS_NEED_SHARED();
    char p[4096];
    snprintf(p, sizeof p, "%s/fixtures/openclip_tiny/expected.safetensors", gs_test_shared());
    gs_weights_t *w = open_ok(p);
    ck_assert_uint_eq(gs_weights_count(w), 30);
    const gs_tensor_t *t;
    ck_assert_int_eq(
        gs_weights_expect(w, "text_tokens", 2, (int64_t[]){6, 77}, 1u << GS_DTYPE_I64, &t), GS_OK);
    const int64_t *ids = t->data;
    ck_assert_int_eq(ids[0], 49406); // <start_of_text>
    ck_assert_int_eq(gs_weights_expect(w, "image0.raw_uint8_hwc", 3, (int64_t[]){48, 64, 3},
                                       1u << GS_DTYPE_U8, &t),
                     GS_OK);
    ck_assert_uint_eq(t->nbytes, 48 * 64 * 3);
    ck_assert_int_eq(gs_weights_expect(w, "logit_scale_exp", 0, NULL, 0, &t), GS_OK);
    ck_assert_int_eq(t->n_elems, 1);
    ck_assert_float_eq_tol(*(const float *)t->data, 14.2857f, 1e-4);
    // the file puts float tensors at offsets that are not multiples of 4: served aligned
    for (size_t i = 0; i < gs_weights_count(w); i++) {
        t = gs_weights_at(w, i);
        ck_assert_uint_eq((uintptr_t)t->data % gs_dtype_size(t->dtype), 0);
    }
    // the uint8 type is refused where floats are expected, with the reason logged
    cap_start();
    ck_assert_int_eq(
        gs_weights_expect(w, "image0.raw_uint8_hwc", 3, (int64_t[]){48, 64, 3}, 0, NULL),
        GS_EFORMAT);
    cap_stop();
    ASSERT_LOGGED("dtype U8");
    gs_weights_close(&w);
}
END_TEST

// ---- safetensors written here -------------------------------------------------------------

START_TEST(test_safetensors_all_dtypes_metadata_and_order)
{
    uint8_t data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (uint8_t)i;
    uint16_t h[2] = {0x3c00, 0xc400}; // 1, -4 in f16
    memcpy(data + 40, h, 4);
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
                      "\"z.f64\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                      "\"a.i32\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[16,32]},"
                      "\"m.bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[32,35]},"
                      "\"m.i8\":{\"dtype\":\"I8\",\"shape\":[1,1,1],\"data_offsets\":[35,36]},"
                      "\"h.f16\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[40,44]},"
                      "\"b.bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[44,48]},"
                      "\"e.empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[48,48]},"
                      "\"s.u8\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[48,49]}}";
    st_write(tmp_path("all.safetensors"), hdr, data, sizeof data);
    gs_weights_t *w = open_ok(tmp_path("all.safetensors"));
    ck_assert_uint_eq(gs_weights_count(w), 8);
    const char *order[] = {"a.i32",  "b.bf16", "e.empty", "h.f16",
                           "m.bool", "m.i8",   "s.u8",    "z.f64"};
    for (size_t i = 0; i < 8; i++)
        ck_assert_str_eq(gs_weights_at(w, i)->name, order[i]);
    ck_assert_ptr_null(gs_weights_at(w, 8));
    ck_assert_str_eq(gs_weights_metadata(w, "note"), "x");
    ck_assert_ptr_null(gs_weights_metadata(w, "nope"));
    const gs_tensor_t *t = gs_weights_get(w, "h.f16");
    float f[2];
    ck_assert_int_eq(gs_tensor_to_f32(t, 0, 2, f), GS_OK);
    ck_assert(f[0] == 1.0f && f[1] == -4.0f);
    t = gs_weights_get(w, "e.empty");
    ck_assert_int_eq(t->n_elems, 0);
    ck_assert_uint_eq(t->nbytes, 0);
    t = gs_weights_get(w, "s.u8");
    ck_assert_int_eq(t->n_dims, 0);
    ck_assert_int_eq(*(const uint8_t *)t->data, 48);
    t = gs_weights_get(w, "a.i32");
    ck_assert_int_eq(((const int32_t *)t->data)[0], 0x13121110);
    // any float type passes the default mask; shape mismatch and missing names are logged
    ck_assert_int_eq(gs_weights_expect(w, "b.bf16", 1, (int64_t[]){2}, 0, NULL), GS_OK);
    cap_start();
    ck_assert_int_eq(gs_weights_expect(w, "h.f16", 2, (int64_t[]){2, 1}, 0, NULL), GS_EFORMAT);
    ASSERT_LOGGED("tensor \"h.f16\" in \"");
    ASSERT_LOGGED("expected shape [2, 1], found [2]");
    ck_assert_int_eq(gs_weights_expect(w, "nope", 1, (int64_t[]){2}, 0, NULL), GS_ENOTFOUND);
    ASSERT_LOGGED("tensor \"nope\" is missing from");
    cap_stop();
    gs_weights_close(&w);
}
END_TEST

// three tensors whose header order differs from their data order
#define HDR3                                                                                       \
    "{\"c.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[32,48]},"                    \
    "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"                    \
    "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}"

START_TEST(test_truncated_file_names_first_missing_tensor)
{
    float data[12] = {0};
    gs_buf_t b;
    st_bytes(&b, HDR3, data, sizeof data);
    const char *p = tmp_path("ok.safetensors");
    write_bytes(p, b.data, b.len);
    gs_weights_t *w = open_ok(p);
    gs_weights_close(&w);
    // cut inside b.weight: b is the first tensor (in data order) that is lost
    p = tmp_path("trunc.safetensors");
    write_bytes(p, b.data, b.len - 48 + 20);
    open_err(p, GS_EFORMAT, "tensor \"b.weight\"", "truncated");
    ck_assert_ptr_null(strstr(logbuf, "c.weight"));
    ck_assert_ptr_eq(strchr(logbuf, '\n'), logbuf + loglen - 1); // one line
    // cut to the header alone
    write_bytes(p, b.data, b.len - 48);
    open_err(p, GS_EFORMAT, "tensor \"a.weight\"", "truncated");
    // cut inside the header
    write_bytes(p, b.data, 40);
    open_err(p, GS_EFORMAT, "header length", "runs past the end");
    write_bytes(p, b.data, 5);
    open_err(p, GS_EFORMAT, "too short", NULL);
    write_bytes(p, b.data, 0);
    open_err(p, GS_EFORMAT, "empty", NULL);
    gs_buf_cleanup(&b);
}
END_TEST

START_TEST(test_bad_headers_are_refused)
{
    float data[12] = {0};
    struct {
        const char *name, *hdr;
        gs_err want;
        const char *a, *b;
    } cases[] = {
        {"overlap",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"y\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
         GS_EFORMAT, "tensor \"y\"", "overlaps tensor \"x\""},
        {"count", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", GS_EFORMAT,
         "tensor \"x\"", "hold 20 bytes, but F32 [2, 3] needs 24"},
        {"json", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", GS_EFORMAT,
         "not a json object", NULL},
        {"array", "[1,2,3]", GS_EFORMAT, "not a safetensors file", NULL},
        {"dtype", "{\"x\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", GS_EFORMAT,
         "tensor \"x\"", "unknown dtype \"F33\""},
        {"i16", "{\"x\":{\"dtype\":\"I16\",\"shape\":[4],\"data_offsets\":[0,8]}}", GS_EUNSUPPORTED,
         "tensor \"x\"", "dtype I16 is not supported"},
        {"negative", "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
         GS_EFORMAT, "tensor \"x\"", "not a non-negative integer"},
        {"rank", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
         GS_EUNSUPPORTED, "tensor \"x\"", "9 dimensions"},
        {"offsets", "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,8]}}", GS_EFORMAT,
         "tensor \"x\"", "data_offsets"},
        {"noshape", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", GS_EFORMAT,
         "tensor \"x\"", "\"shape\" is missing"},
        {"huge",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
         "\"data_offsets\":[0,16]}}",
         GS_EFORMAT, "tensor \"x\"", "too large"},
        {"dup",
         "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         GS_EFORMAT, "duplicate", "x"},
        {"meta", "{\"__metadata__\":{\"n\":3}}", GS_EFORMAT, "\"__metadata__\" key \"n\"", NULL},
        {"past", "{\"x\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", GS_EFORMAT,
         "tensor \"x\"", "past the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", cases[i].name);
        st_write(tmp_path(name), cases[i].hdr, data, sizeof data);
        open_err(tmp_path(name), cases[i].want, cases[i].a, cases[i].b);
    }
    // a header length beyond the end of the file
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    put_le(&b, 1000000, 8);
    gs_buf_puts(&b, "{\"x\":{}}");
    write_bytes(tmp_path("hlen.safetensors"), b.data, b.len);
    open_err(tmp_path("hlen.safetensors"), GS_EFORMAT, "header length 1000000", "past the end");
    gs_buf_cleanup(&b);
    // missing files, and a FIFO (refused at once, not waited on)
    open_err("/nonexistent/x.safetensors", GS_EIO, "could not open", NULL);
    ck_assert_int_eq(mkfifo(tmp_path("fifo"), 0600), 0);
    open_err(tmp_path("fifo"), GS_EIO, "not a regular file", NULL);
}
END_TEST

START_TEST(test_sharded_set_by_index_and_folder)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, c[2] = {7, 8};
    st_write(tmp_path("model-00001-of-00002.safetensors"),
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"l0.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
             "\"l0.b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
             a, sizeof a);
    st_write(tmp_path("model-00002-of-00002.safetensors"),
             "{\"head.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", c, sizeof c);
    const char *index = "{\"metadata\":{\"total_size\":32},\"weight_map\":{"
                        "\"l0.w\":\"model-00001-of-00002.safetensors\","
                        "\"l0.b\":\"model-00001-of-00002.safetensors\","
                        "\"head.w\":\"model-00002-of-00002.safetensors\"}}";
    write_bytes(tmp_path("model.safetensors.index.json"), index, strlen(index));
    gs_weights_t *w = open_ok(tmp_path("model.safetensors.index.json"));
    ck_assert_uint_eq(gs_weights_count(w), 3);
    const gs_tensor_t *t = gs_weights_get(w, "head.w");
    ck_assert_ptr_nonnull(t);
    ck_assert(((const float *)t->data)[1] == 8.0f);
    ck_assert_ptr_nonnull(strstr(t->file, "model-00002-of-00002.safetensors"));
    ck_assert(((const float *)gs_weights_get(w, "l0.b")->data)[0] == 5.0f);
    ck_assert_str_eq(gs_weights_metadata(w, "format"), "pt");
    gs_weights_close(&w);
    w = open_ok(tmp); // the folder: its index wins over any single file
    ck_assert_uint_eq(gs_weights_count(w), 3);
    gs_weights_close(&w);

    // the index names the wrong shard for a tensor
    const char *wrong = "{\"weight_map\":{\"l0.w\":\"model-00002-of-00002.safetensors\","
                        "\"head.w\":\"model-00002-of-00002.safetensors\"}}";
    write_bytes(tmp_path("wrong.index.json"), wrong, strlen(wrong));
    open_err(tmp_path("wrong.index.json"), GS_EFORMAT, "tensor \"l0.w\"", "is missing from");
    // a shard that does not exist, one outside the folder, and no weight map
    const char *missing = "{\"weight_map\":{\"x\":\"nope.safetensors\"}}";
    write_bytes(tmp_path("missing.index.json"), missing, strlen(missing));
    open_err_at(tmp_path("missing.index.json"), 0, GS_EIO, "nope.safetensors", NULL);
    const char *escape = "{\"weight_map\":{\"x\":\"../model.safetensors\"}}";
    write_bytes(tmp_path("escape.index.json"), escape, strlen(escape));
    open_err(tmp_path("escape.index.json"), GS_EFORMAT, "tensor \"x\"", "relative");
    const char *nomap = "{\"metadata\":{}}";
    write_bytes(tmp_path("nomap.index.json"), nomap, strlen(nomap));
    open_err(tmp_path("nomap.index.json"), GS_EFORMAT, "weight_map", NULL);
    // the same tensor in two shards
    st_write(tmp_path("dup.safetensors"),
             "{\"head.w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", c, sizeof c);
    const char *dup = "{\"weight_map\":{\"head.w\":\"model-00002-of-00002.safetensors\","
                      "\"x\":\"dup.safetensors\"}}";
    write_bytes(tmp_path("dup.index.json"), dup, strlen(dup));
    open_err_at(tmp_path("dup.index.json"), 0, GS_EFORMAT, "tensor \"head.w\" appears twice",
                "dup.safetensors");
    // a folder with neither file
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    open_err(empty, GS_EIO, "model.safetensors", NULL);
}
END_TEST

// ---- torch .pt written here ---------------------------------------------------------------

// a pickle writer for the opcodes torch.save emits
static void op(gs_buf_t *b, uint8_t c)
{
    gs_buf_append(b, &c, 1);
}

static void pk_str(gs_buf_t *b, const char *s)
{
    op(b, 'X');
    put_le(b, strlen(s), 4);
    gs_buf_append(b, s, strlen(s));
}

static void pk_int(gs_buf_t *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        op(b, 'K');
        op(b, (uint8_t)v);
    } else {
        op(b, 'J');
        put_le(b, (uint64_t)v, 4);
    }
}

static void pk_global(gs_buf_t *b, const char *module, const char *name)
{
    op(b, 'c');
    gs_buf_puts(b, module);
    op(b, '\n');
    gs_buf_puts(b, name);
    op(b, '\n');
}

static void pk_ints(gs_buf_t *b, const int64_t *v, int n)
{
    op(b, '(');
    for (int i = 0; i < n; i++)
        pk_int(b, v[i]);
    op(b, 't');
}

// _rebuild_tensor_v2(persistent_load(('storage', type, key, 'cpu', numel)), offset, size,
// stride, False, OrderedDict())
static void pk_tensor(gs_buf_t *b, const char *stype, const char *key, int64_t numel,
                      int64_t offset, int n_dims, const int64_t *size, const int64_t *stride)
{
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    op(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", stype);
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, numel);
    op(b, 't');
    op(b, 'Q');
    pk_int(b, offset);
    pk_ints(b, size, n_dims);
    pk_ints(b, stride, n_dims);
    op(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 't');
    op(b, 'R');
}

typedef struct {
    const char *name;
    const void *data;
    size_t n;
    int method;
} zent_t;

// zip_bytes: a zip as torch writes it (stored entries, data aligned to 64 by padding the local
// extra field); zip64 = 1 moves sizes and offsets into zip64 extra fields and records
static void zip_bytes(gs_buf_t *z, const zent_t *e, size_t k, int zip64)
{
    uint64_t off[16];
    gs_buf_init(z, 1 << 26);
    for (size_t i = 0; i < k; i++) {
        off[i] = z->len;
        size_t nl = strlen(e[i].name), pad = (64 - (z->len + 30 + nl + 4) % 64) % 64;
        put_le(z, 0x04034b50, 4);
        put_le(z, zip64 ? 45 : 20, 2);
        put_le(z, 0, 2);
        put_le(z, (uint64_t)e[i].method, 2);
        put_le(z, 0, 4); // time, date
        put_le(z, 0, 4); // crc (not checked by the reader)
        put_le(z, e[i].n, 4);
        put_le(z, e[i].n, 4);
        put_le(z, nl, 2);
        put_le(z, pad + 4, 2);
        gs_buf_append(z, e[i].name, nl);
        put_le(z, 0x4246, 2); // "FB" padding, as torch
        put_le(z, pad, 2);
        for (size_t j = 0; j < pad; j++)
            op(z, 'Z');
        if (e[i].n)
            gs_buf_append(z, e[i].data, e[i].n);
    }
    uint64_t cd = z->len;
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(e[i].name);
        put_le(z, 0x02014b50, 4);
        put_le(z, 45, 2);
        put_le(z, zip64 ? 45 : 20, 2);
        put_le(z, 0, 2);
        put_le(z, (uint64_t)e[i].method, 2);
        put_le(z, 0, 4);
        put_le(z, 0, 4);
        put_le(z, zip64 ? 0xffffffffu : e[i].n, 4);
        put_le(z, zip64 ? 0xffffffffu : e[i].n, 4);
        put_le(z, nl, 2);
        put_le(z, zip64 ? 28 : 0, 2);
        put_le(z, 0, 2); // comment
        put_le(z, 0, 2); // disk
        put_le(z, 0, 2);
        put_le(z, 0, 4);
        put_le(z, zip64 ? 0xffffffffu : off[i], 4);
        gs_buf_append(z, e[i].name, nl);
        if (zip64) {
            put_le(z, 1, 2);
            put_le(z, 24, 2);
            put_le(z, e[i].n, 8);
            put_le(z, e[i].n, 8);
            put_le(z, off[i], 8);
        }
    }
    uint64_t cd_size = z->len - cd;
    if (zip64) {
        uint64_t eocd64 = z->len;
        put_le(z, 0x06064b50, 4);
        put_le(z, 44, 8);
        put_le(z, 45, 2);
        put_le(z, 45, 2);
        put_le(z, 0, 8);
        put_le(z, k, 8);
        put_le(z, k, 8);
        put_le(z, cd_size, 8);
        put_le(z, cd, 8);
        put_le(z, 0x07064b50, 4);
        put_le(z, 0, 4);
        put_le(z, eocd64, 8);
        put_le(z, 1, 4);
    }
    put_le(z, 0x06054b50, 4);
    put_le(z, 0, 4);
    put_le(z, zip64 ? 0xffff : k, 2);
    put_le(z, zip64 ? 0xffff : k, 2);
    put_le(z, zip64 ? 0xffffffffu : cd_size, 4);
    put_le(z, zip64 ? 0xffffffffu : cd, 4);
    put_le(z, 0, 2);
}

static const float st0[6] = {0, 1, 2, 3, 4, 5};
static const int64_t st1[1] = {42};
static const uint16_t st2[5] = {0x0000, 0x3c00, 0x4000, 0x4200, 0x4400}; // 0 1 2 3 4

// write_pt: a torch archive under folder `prefix` holding data.pkl = pkl and storages 0..2
static void write_pt(const char *path, const char *prefix, const gs_buf_t *pkl, int zip64,
                     int method)
{
    char n0[128], n1[128], n2[128], n3[128], n4[128];
    snprintf(n0, sizeof n0, "%s/data.pkl", prefix);
    snprintf(n1, sizeof n1, "%s/data/0", prefix);
    snprintf(n2, sizeof n2, "%s/data/1", prefix);
    snprintf(n3, sizeof n3, "%s/data/2", prefix);
    snprintf(n4, sizeof n4, "%s/version", prefix);
    zent_t e[] = {{n0, pkl->data, pkl->len, method},
                  {n1, st0, sizeof st0, 0},
                  {n2, st1, sizeof st1, 0},
                  {n3, st2, sizeof st2, 0},
                  {n4, "3\n", 2, 0}};
    gs_buf_t z;
    zip_bytes(&z, e, 5, zip64);
    write_bytes(path, z.data, z.len);
    gs_buf_cleanup(&z);
}

// {'epoch': 3, 'state_dict': OrderedDict(module.a, module.b, module.c, module.d, e),
//  'optimizer': {}} with _metadata state dropped by BUILD
static void training_pickle(gs_buf_t *b)
{
    gs_buf_init(b, 1 << 20);
    op(b, 0x80);
    op(b, 2);
    op(b, '}');
    op(b, 'q');
    op(b, 0);
    op(b, '(');
    pk_str(b, "epoch");
    pk_int(b, 3);
    pk_str(b, "lr");
    op(b, 'G');
    gs_buf_append(b, "\x3f\x50\x62\x4d\xd2\xf1\xa9\xfc", 8); // 1e-3 big-endian
    pk_str(b, "state_dict");
    pk_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 'q');
    op(b, 1);
    op(b, '(');
    pk_str(b, "module.a");
    pk_tensor(b, "FloatStorage", "0", 6, 0, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    pk_str(b, "module.b");
    pk_tensor(b, "LongStorage", "1", 1, 0, 0, NULL, NULL);
    pk_str(b, "module.c"); // an nn.Parameter: a view at offset 1 of a 5-element storage
    pk_global(b, "torch._utils", "_rebuild_parameter");
    op(b, '(');
    pk_tensor(b, "HalfStorage", "2", 5, 1, 1, (int64_t[]){4}, (int64_t[]){1});
    op(b, 0x88);
    pk_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
    op(b, 't');
    op(b, 'R');
    pk_str(b, "module.d"); // shares storage 0; a size-1 dimension may have any stride
    pk_tensor(b, "FloatStorage", "0", 6, 3, 2, (int64_t[]){1, 3}, (int64_t[]){99, 1});
    pk_str(b, "e");
    op(b, 'h'); // BINGET the memoised OrderedDict, then POP it again
    op(b, 1);
    op(b, '0');
    pk_tensor(b, "FloatStorage", "0", 6, 5, 0, NULL, NULL);
    op(b, 'u');
    op(b, '}');
    pk_str(b, "_metadata");
    op(b, '}');
    op(b, 's');
    op(b, 'b'); // BUILD: state {'_metadata': {}} on the OrderedDict
    pk_str(b, "optimizer");
    op(b, '}');
    pk_str(b, "param_groups");
    op(b, ']');
    op(b, '(');
    op(b, 0x8a);
    op(b, 1);
    op(b, 0xff); // LONG1 -1
    op(b, 'N');
    op(b, 0x89);
    op(b, 'e');
    op(b, 's');
    op(b, 'u');
    op(b, '.');
}

static void check_training_dict(const char *path, const char *file)
{
    gs_weights_t *w = open_ok(path);
    ck_assert_uint_eq(gs_weights_count(w), 5);
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(gs_weights_at(w, (size_t)i)->name, names[i]);
    const gs_tensor_t *t;
    ck_assert_int_eq(gs_weights_expect(w, "a", 2, (int64_t[]){2, 3}, 0, &t), GS_OK);
    ck_assert_int_eq(memcmp(t->data, st0, sizeof st0), 0);
    ck_assert_uint_eq((uintptr_t)t->data % 64, 0); // in place, as aligned by the writer
    ck_assert_str_eq(t->file, file);
    ck_assert_int_eq(gs_weights_expect(w, "b", 0, NULL, 1u << GS_DTYPE_I64, &t), GS_OK);
    ck_assert_int_eq(*(const int64_t *)t->data, 42);
    ck_assert_int_eq(gs_weights_expect(w, "c", 1, (int64_t[]){4}, 0, &t), GS_OK);
    ck_assert_int_eq(t->dtype, GS_DTYPE_F16);
    float f[4];
    ck_assert_int_eq(gs_tensor_to_f32(t, 0, 4, f), GS_OK);
    ck_assert(f[0] == 1 && f[1] == 2 && f[2] == 3 && f[3] == 4);
    ck_assert_int_eq(gs_weights_expect(w, "d", 2, (int64_t[]){1, 3}, 0, &t), GS_OK);
    ck_assert(((const float *)t->data)[0] == 3 && ((const float *)t->data)[2] == 5);
    t = gs_weights_get(w, "e");
    ck_assert(t->n_dims == 0 && t->n_elems == 1 && *(const float *)t->data == 5);
    gs_weights_close(&w);
}

START_TEST(test_pt_state_dict_wrapper_and_module_prefix)
{
    gs_buf_t pkl;
    training_pickle(&pkl);
    write_pt(tmp_path("train.pt"), "any_folder_name", &pkl, 0, 0);
    check_training_dict(tmp_path("train.pt"), tmp_path("train.pt"));
    // the same archive with zip64 sizes, offsets and records
    write_pt(tmp_path("train64.bin"), "x", &pkl, 1, 0);
    char bin[4200];
    snprintf(bin, sizeof bin, "%s", tmp_path("train64.bin"));
    check_training_dict(bin, bin);
    // a .bin shard behind an index, as pytorch_model.bin.index.json does
    const char *index = "{\"weight_map\":{\"a\":\"train64.bin\",\"e\":\"train64.bin\"}}";
    write_bytes(tmp_path("pytorch_model.bin.index.json"), index, strlen(index));
    check_training_dict(tmp, bin);
    // a compressed entry is refused, naming it
    write_pt(tmp_path("deflated.pt"), "ck", &pkl, 0, 8);
    open_err(tmp_path("deflated.pt"), GS_EUNSUPPORTED, "entry \"ck/data.pkl\"", "compressed");
    // truncated archives lose their directory
    gs_buf_t z;
    zent_t e[] = {{"ck/data.pkl", pkl.data, pkl.len, 0}};
    zip_bytes(&z, e, 1, 0);
    write_bytes(tmp_path("cut.pt"), z.data, z.len / 2);
    open_err(tmp_path("cut.pt"), GS_EFORMAT, "zip archive", "end of central directory");
    // storages missing from the archive
    write_bytes(tmp_path("nostorage.pt"), z.data, z.len);
    open_err(tmp_path("nostorage.pt"), GS_EFORMAT, "storage \"0\"", "ck/data/0");
    gs_buf_cleanup(&z);
    gs_buf_cleanup(&pkl);
}
END_TEST

// pt_case: a pickle around one tensor "w" (or raw ops) written to a small archive
static void plain_pickle_start(gs_buf_t *b)
{
    gs_buf_init(b, 1 << 24);
    op(b, 0x80);
    op(b, 2);
    op(b, '}');
    op(b, '(');
    pk_str(b, "w");
}

static void plain_pickle_end(gs_buf_t *b)
{
    op(b, 'u');
    op(b, '.');
}

START_TEST(test_pt_refuses_views_globals_and_bad_storages)
{
    gs_buf_t b;
    const char *p = tmp_path("bad.pt");
    // a transposed (non-contiguous) view
    plain_pickle_start(&b);
    pk_tensor(&b, "FloatStorage", "0", 6, 0, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3});
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EUNSUPPORTED, "tensor \"w\"", "not contiguous (size [3, 2], stride [1, 3])");
    gs_buf_cleanup(&b);
    // an empty tensor is contiguous whatever its strides (torch's rule)
    plain_pickle_start(&b);
    pk_tensor(&b, "FloatStorage", "0", 6, 0, 2, (int64_t[]){3, 0}, (int64_t[]){1, 1});
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    gs_weights_t *w = open_ok(p);
    ck_assert_int_eq(gs_weights_get(w, "w")->n_elems, 0);
    ck_assert_uint_eq(gs_weights_get(w, "w")->nbytes, 0);
    gs_weights_close(&w);
    gs_buf_cleanup(&b);
    // a global outside the allow-list is never called
    plain_pickle_start(&b);
    pk_global(&b, "os", "system");
    pk_str(&b, "echo pwned");
    op(&b, 0x85);
    op(&b, 'R');
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EUNSUPPORTED, "\"os.system\"", "nothing is executed");
    gs_buf_cleanup(&b);
    // the same through STACK_GLOBAL (protocol 4)
    gs_buf_init(&b, 1 << 20);
    op(&b, 0x80);
    op(&b, 4);
    op(&b, 0x8c);
    op(&b, 8);
    gs_buf_puts(&b, "builtins");
    op(&b, 0x8c);
    op(&b, 4);
    gs_buf_puts(&b, "eval");
    op(&b, 0x93);
    op(&b, '.');
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EUNSUPPORTED, "\"builtins.eval\"", NULL);
    gs_buf_cleanup(&b);
    // a storage type we do not read
    plain_pickle_start(&b);
    pk_tensor(&b, "ShortStorage", "0", 6, 0, 1, (int64_t[]){6}, (int64_t[]){1});
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EUNSUPPORTED, "\"torch.ShortStorage\"", NULL);
    gs_buf_cleanup(&b);
    // more elements than the storage entry holds, and a view past the storage's end
    plain_pickle_start(&b);
    pk_tensor(&b, "FloatStorage", "0", 7, 0, 1, (int64_t[]){7}, (int64_t[]){1});
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EFORMAT, "storage \"0\" holds 24 bytes", NULL);
    gs_buf_cleanup(&b);
    plain_pickle_start(&b);
    pk_tensor(&b, "FloatStorage", "0", 6, 4, 1, (int64_t[]){3}, (int64_t[]){1});
    plain_pickle_end(&b);
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EFORMAT, "tensor \"w\"", "do not fit storage \"0\"");
    gs_buf_cleanup(&b);
    // a pickle of a list, not a dict
    gs_buf_init(&b, 1 << 20);
    op(&b, 0x80);
    op(&b, 2);
    op(&b, ']');
    op(&b, '.');
    write_pt(p, "m", &b, 0, 0);
    open_err(p, GS_EFORMAT, "holds a list, not a state dict", NULL);
    gs_buf_cleanup(&b);
}
END_TEST

// hostile pickles: each must fail cleanly (no crash, no leak, bounded memory)
START_TEST(test_pt_hostile_pickles_fail_cleanly)
{
    static const struct {
        const char *ops;
        size_t n;
        gs_err want;
    } cases[] = {
        {"\x80\x02", 2, GS_EFORMAT},                    // no STOP
        {"\x80\x02.", 3, GS_EFORMAT},                   // STOP on an empty stack
        {"\x80\x09}.", 4, GS_EFORMAT},                  // protocol 9
        {"\x80\x02h\x05.", 5, GS_EFORMAT},              // memo slot never set
        {"\x80\x02}r\xff\xff\xff\x7f.", 8, GS_ETOOBIG}, // memo index far past the input
        {"\x80\x02}(a.", 5, GS_EFORMAT},                // APPEND across a MARK
        {"\x80\x02}K\x01a.", 6, GS_EFORMAT},            // APPEND to a dict
        {"\x80\x02]K\x01K\x02s.", 8, GS_EFORMAT},       // SETITEM on a list
        {"\x80\x02X\xff\xff\xff\x7f", 7, GS_EFORMAT},   // string past the end
        {"\x80\x02\x8a\x10", 4, GS_EUNSUPPORTED},       // 16-byte integer
        {"\x80\x02\x8a\x02\x01", 5, GS_EFORMAT},        // truncated integer
        {"\x80\x02cos\n", 6, GS_EFORMAT},               // GLOBAL with one line
        {"\x80\x02}K\x01R.", 6, GS_EFORMAT},            // REDUCE of an int
        {"\x80\x02}Q.", 4, GS_EFORMAT},                 // persistent id of a dict
        {"\x80\x02}b.", 4, GS_EFORMAT},                 // BUILD without a target
        {"\x80\x02}1.", 4, GS_EFORMAT},                 // POP_MARK without a MARK
        {"\x80\x02}\xff.", 4, GS_EUNSUPPORTED},         // unknown opcode
        {"\x80\x02(K\x01d.", 6, GS_EFORMAT},            // DICT of an odd item count
    };
    const char *p = tmp_path("hostile.pt");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gs_buf_t b;
        gs_buf_init(&b, 1 << 20);
        gs_buf_append(&b, cases[i].ops, cases[i].n);
        write_pt(p, "h", &b, 0, 0);
        gs_weights_t *w = NULL;
        cap_start();
        gs_err e = gs_weights_open(p, &w);
        cap_stop();
        ck_assert_msg(e == cases[i].want, "case %zu: got %s want %s: %s", i, gs_err_name(e),
                      gs_err_name(cases[i].want), logbuf);
        ck_assert_ptr_nonnull(strstr(logbuf, "hostile.pt"));
        gs_buf_cleanup(&b);
    }
    // 100000 nested MARKs, a stack of two million items, and a list appended to itself
    gs_buf_t b;
    gs_buf_init(&b, 1 << 24);
    op(&b, 0x80);
    op(&b, 2);
    for (int i = 0; i < 100000; i++)
        op(&b, '(');
    write_pt(p, "h", &b, 0, 0);
    open_err(p, GS_ETOOBIG, "mark depth", NULL);
    b.len = 2;
    for (int i = 0; i < 2000000; i++)
        op(&b, 'N');
    write_pt(p, "h", &b, 0, 0);
    open_err(p, GS_ETOOBIG, "stack depth", NULL);
    b.len = 2;
    op(&b, ']');
    for (int i = 0; i < 100000; i++) {
        op(&b, '2');
        op(&b, 'a');
    }
    op(&b, '.');
    write_pt(p, "h", &b, 0, 0);
    open_err(p, GS_EFORMAT, "holds a list", NULL);
    gs_buf_cleanup(&b);
}
END_TEST

// damaged zip directories: each field that locates data is checked against the file
START_TEST(test_pt_damaged_zip_directories)
{
    gs_buf_t pkl, z;
    training_pickle(&pkl);
    zent_t e[] = {{"d/data.pkl", pkl.data, pkl.len, 0}};
    const char *p = tmp_path("damaged.pt");
    struct {
        int zip64;
        long at; // from the end when negative
        uint64_t value;
        int k;
        const char *want;
    } cases[] = {
        {0, -6, 0x7ffffff0, 4, "central directory outside the file"},   // cd offset
        {0, -12, 0xfffe, 2, "more entries than the central directory"}, // total entries
        {1, -22 - 20 + 8, 1u << 30, 8, "zip64 end of central directory record outside"},
        {0, -22 - 46 - 10 + 42, 0x7fffff, 4, "no valid local header"},     // local offset
        {0, -22 - 46 - 10 + 20, 0x7fffff, 4, "has no valid local header"}, // csize != usize
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        zip_bytes(&z, e, 1, cases[i].zip64);
        size_t at = (size_t)((long)z.len + cases[i].at);
        for (int k = 0; k < cases[i].k; k++)
            z.data[at + (size_t)k] = (char)(cases[i].value >> (8 * k));
        write_bytes(p, z.data, z.len);
        open_err(p, GS_EFORMAT, cases[i].want, NULL);
        gs_buf_cleanup(&z);
    }
    // both sizes past the end of the file: the entry's data is refused as truncated
    zip_bytes(&z, e, 1, 0);
    for (int k = 0; k < 2; k++) {
        size_t at = z.len - 22 - 46 - 10 + 20 + 4 * (size_t)k;
        z.data[at + 2] = 0x70;
    }
    write_bytes(p, z.data, z.len);
    open_err(p, GS_EFORMAT, "entry \"d/data.pkl\"", "past the end of the file");
    gs_buf_cleanup(&z);
    gs_buf_cleanup(&pkl);
}
END_TEST

// regression: a header of 123 bytes starts the file with "{", which once sent it to the index
// reader
START_TEST(test_length_prefix_that_looks_like_json)
{
    char hdr[124];
    int k = snprintf(hdr, sizeof hdr,
                     "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
    while (k < 123)
        hdr[k++] = ' ';
    hdr[123] = '\0';
    gs_buf_t b;
    gs_buf_init(&b, 1 << 20);
    put_le(&b, 123, 8);
    gs_buf_append(&b, hdr, 123);
    gs_buf_append(&b, "\0\0\x80\x3f", 4);
    ck_assert_int_eq(b.data[0], '{');
    write_bytes(tmp_path("brace.safetensors"), b.data, b.len);
    gs_weights_t *w = open_ok(tmp_path("brace.safetensors"));
    ck_assert(*(const float *)gs_weights_get(w, "x")->data == 1.0f);
    gs_weights_close(&w);
    gs_buf_cleanup(&b);
}
END_TEST

START_TEST(test_legacy_and_non_torch_zips_are_refused)
{
    write_bytes(tmp_path("legacy.pt"), "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46", 8);
    open_err(tmp_path("legacy.pt"), GS_EUNSUPPORTED, "legacy", NULL);
    gs_buf_t z;
    zent_t e[] = {{"toplevel.txt", "hi", 2, 0}};
    zip_bytes(&z, e, 1, 0);
    write_bytes(tmp_path("plain.zip"), z.data, z.len);
    open_err(tmp_path("plain.zip"), GS_EFORMAT, "not a torch checkpoint", NULL);
    gs_buf_cleanup(&z);
    zent_t f[] = {{"arch/version", "3\n", 2, 0}};
    zip_bytes(&z, f, 1, 0);
    write_bytes(tmp_path("nopkl.pt"), z.data, z.len);
    open_err(tmp_path("nopkl.pt"), GS_EFORMAT, "no \"arch/data.pkl\"", NULL);
    gs_buf_cleanup(&z);
}
END_TEST

Suite *model_weights_suite(void)
{
    Suite *s = suite_create("model_weights");
    TCase *tc = tcase_create("convert");
    tcase_add_test(tc, test_dtype_names_and_sizes);
    tcase_add_test(tc, test_f16_to_f32_every_value);
    tcase_add_test(tc, test_bf16_f64_and_ranges);
    suite_add_tcase(s, tc);
    tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_openclip_pt_is_bit_identical_to_safetensors);
    tcase_add_test(tc, test_hf_layouts_open_from_file_and_folder);
    tcase_add_test(tc, test_expected_file_int_u8_and_scalar_tensors);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup_tmp, NULL);
    tcase_add_test(tc, test_safetensors_all_dtypes_metadata_and_order);
    tcase_add_test(tc, test_truncated_file_names_first_missing_tensor);
    tcase_add_test(tc, test_bad_headers_are_refused);
    tcase_add_test(tc, test_sharded_set_by_index_and_folder);
    tcase_add_test(tc, test_pt_state_dict_wrapper_and_module_prefix);
    tcase_add_test(tc, test_pt_refuses_views_globals_and_bad_storages);
    tcase_add_test(tc, test_pt_hostile_pickles_fail_cleanly);
    tcase_add_test(tc, test_pt_damaged_zip_directories);
    tcase_add_test(tc, test_length_prefix_that_looks_like_json);
    tcase_add_test(tc, test_legacy_and_non_torch_zips_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
