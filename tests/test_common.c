// common/: errors, logging, allocators and arenas, capped buffers, config parsing, files.
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "testutil.h"

// ---- errors -------------------------------------------------------------------------------

START_TEST(test_err_table_is_stable)
{
    // codes travel in results and replies: their values must never change
    ck_assert_int_eq(GS_OK, 0);
    ck_assert_int_eq(GS_EINVAL, 1);
    ck_assert_int_eq(GS_EIO, 3);
    ck_assert_int_eq(GS_EBACKEND, 8);
    ck_assert_str_eq(gs_strerror(GS_EIO), "input/output error");
    ck_assert_str_eq(gs_err_name(GS_ETOOBIG), "GS_ETOOBIG");
    ck_assert_str_eq(gs_strerror((gs_err)9999), "unknown error");
    ck_assert_str_eq(gs_err_name((gs_err)-3), "GS_EUNKNOWN");
}
END_TEST

// ---- logging ------------------------------------------------------------------------------

typedef struct {
    int n;
    char last[512];
    gs_log_level_t level;
} captured_t;

static void capture(gs_log_level_t level, const char *line, void *ud)
{
    captured_t *c = ud;
    c->n++;
    c->level = level;
    snprintf(c->last, sizeof c->last, "%s", line);
}

static int evaluated;
static int side_effect(void) { return ++evaluated; }

#define GS_LOG_MODULE_TEST "index"
START_TEST(test_log_format_level_and_sink)
{
    captured_t c = {0};
    gs_log_set(capture, &c);
    gs_log_set_role("worker", 3);
    gs_log_set_level(GS_LOG_LEVEL_INFO);
    gs__log(GS_LOG_LEVEL_WARN, "index", "could not open \"%s\": %s task=%d", "x.tif", "gone", 7);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(c.level, GS_LOG_LEVEL_WARN);
    // <UTC> <E|W|I|D> <role>[rank] <module>: <message>
    ck_assert_msg(strlen(c.last) > 24 && c.last[4] == '-' && c.last[23] == 'Z', "%s", c.last);
    ck_assert_ptr_nonnull(strstr(c.last, "Z W worker[3] index: could not open \"x.tif\": gone task=7"));
    // below the level: not delivered and arguments not evaluated
    evaluated = 0;
    GS_LOG_DEBUG("%d", side_effect());
    ck_assert_int_eq(evaluated, 0);
    ck_assert_int_eq(c.n, 1);
    GS_LOG_ERROR("multi\nline %d", side_effect());
    ck_assert_int_eq(evaluated, 1);
    ck_assert_int_eq(c.n, 2);
    ck_assert_ptr_null(strchr(c.last, '\n'));
    gs_log_level_t l;
    ck_assert_int_eq(gs_log_parse_level("debug", &l), 0);
    ck_assert_int_eq(l, GS_LOG_LEVEL_DEBUG);
    ck_assert_int_eq(gs_log_parse_level("loud", &l), -1);
    gs_log_set(NULL, NULL);
    gs_log_set_role("geoscribe", -1);
}
END_TEST

// ---- arena --------------------------------------------------------------------------------

START_TEST(test_arena_alignment_growth_reset_and_cap)
{
    gs_arena_t *a = gs_arena_new(256, 0);
    char *p = gs_arena_alloc(a, 10);
    char *q = gs_arena_alloc(a, 1000); // bigger than a block: its own block
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq((uintptr_t)p % 64, 0);
    ck_assert_int_eq((uintptr_t)q % 64, 0);
    memset(q, 7, 1000);
    ck_assert_uint_eq(gs_arena_used(a), 64 + 1024);
    char *s = gs_arena_strdup(a, "tile");
    ck_assert_str_eq(s, "tile");
    gs_arena_reset(a);
    ck_assert_uint_eq(gs_arena_used(a), 0);
    ck_assert_ptr_eq(gs_arena_alloc(a, 8), p); // the first block is reused
    gs_arena_destroy(&a);
    ck_assert_ptr_null(a);
    gs_arena_destroy(&a); // NULL is fine

    gs_arena_t *capped = gs_arena_new(128, 256);
    ck_assert_ptr_nonnull(gs_arena_alloc(capped, 200));
    ck_assert_ptr_null(gs_arena_alloc(capped, 100)); // 256 + 128 > cap
    ck_assert_ptr_null(gs_arena_calloc(capped, SIZE_MAX / 2, 4)); // overflow
    gs_arena_destroy(&capped);
}
END_TEST

// ---- buffers ------------------------------------------------------------------------------

START_TEST(test_buf_cap_and_json_escaping)
{
    gs_buf_t b;
    gs_buf_init(&b, 16);
    ck_assert_int_eq(gs_buf_puts(&b, "0123456789"), GS_OK);
    ck_assert_int_eq(gs_buf_printf(&b, "%s", "abcdefg"), GS_ETOOBIG);
    ck_assert_str_eq(b.data, "0123456789"); // unchanged on failure
    ck_assert_int_eq(gs_buf_puts(&b, "abcdef"), GS_OK);
    ck_assert_uint_eq(b.len, 16);
    gs_buf_cleanup(&b);

    gs_buf_init(&b, 1024);
    ck_assert_int_eq(gs_buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff"), GS_OK);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xef\xbf\xbd\"");
    char *s = gs_buf_steal(&b);
    ck_assert_ptr_null(b.data);
    gs_free(s);
}
END_TEST

// ---- config -------------------------------------------------------------------------------

START_TEST(test_config_strict_parsers)
{
    int64_t i;
    uint64_t u;
    double d;
    bool bo;
    int n;
    ck_assert_int_eq(gs_parse_i64(" -42 ", &i), GS_OK);
    ck_assert_int_eq(i, -42);
    ck_assert_int_eq(gs_parse_i64("42x", &i), GS_EINVAL);
    ck_assert_int_eq(gs_parse_i64("", &i), GS_EINVAL);
    ck_assert_int_eq(gs_parse_i64("99999999999999999999", &i), GS_EINVAL);
    ck_assert_int_eq(gs_parse_u64("-1", &u), GS_EINVAL);
    ck_assert_int_eq(gs_parse_int("300", 1, 256, &n), GS_EINVAL);
    ck_assert_int_eq(gs_parse_int("256", 1, 256, &n), GS_OK);
    ck_assert_int_eq(gs_parse_f64("0.25", &d), GS_OK);
    ck_assert_double_eq(d, 0.25);
    ck_assert_int_eq(gs_parse_f64("nan", &d), GS_EINVAL);
    ck_assert_int_eq(gs_parse_bool("Yes", &bo), GS_OK);
    ck_assert(bo);
    ck_assert_int_eq(gs_parse_bool("maybe", &bo), GS_EINVAL);
    ck_assert_int_eq(gs_parse_size("64M", &u), GS_OK);
    ck_assert_uint_eq(u, 64u << 20);
    ck_assert_int_eq(gs_parse_size("2GB", &u), GS_OK);
    ck_assert_uint_eq(u, 2ull << 30);
    ck_assert_int_eq(gs_parse_size("1Q", &u), GS_EINVAL);
    char k[8], v[8];
    ck_assert_int_eq(gs_split_kv("tiling.size=256", k, sizeof k, v, sizeof v), GS_ETOOBIG);
    ck_assert_int_eq(gs_split_kv("a.b=c=d", k, sizeof k, v, sizeof v), GS_OK);
    ck_assert_str_eq(k, "a.b");
    ck_assert_str_eq(v, "c=d");
    ck_assert_int_eq(gs_split_kv("=x", k, sizeof k, v, sizeof v), GS_EINVAL);
    ck_assert_int_eq(gs_getenv_int("GS_TEST_SURELY_UNSET_VAR", 5, 0, 10), 5);
}
END_TEST

// ---- files --------------------------------------------------------------------------------

START_TEST(test_fs_atomic_write_and_capped_read)
{
    const char *dir = gs_test_tmpdir("fs");
    ck_assert_ptr_nonnull(dir);
    char *sub = gs_path_join(dir, "a/b/c");
    ck_assert_int_eq(gs_mkdir_p(sub), GS_OK);
    ck_assert(gs_is_dir(sub));
    char *f = gs_path_join(sub, "manifest.json");
    ck_assert_int_eq(gs_write_file_atomic(f, "{\"n\":1}", 7), GS_OK);
    ck_assert_int_eq(gs_write_file_atomic(f, "{\"n\":22}", 8), GS_OK);
    char *data;
    size_t n;
    ck_assert_int_eq(gs_read_file(f, 100, &data, &n), GS_OK);
    ck_assert_uint_eq(n, 8);
    ck_assert_str_eq(data, "{\"n\":22}");
    gs_free(data);
    ck_assert_int_eq(gs_read_file(f, 4, &data, &n), GS_ETOOBIG);
    char *missing = gs_path_join(dir, "nope");
    ck_assert_int_eq(gs_read_file(missing, 100, &data, &n), GS_EIO);
    ck_assert(!gs_path_exists(missing));
    gs_free(missing);
    gs_free(f);
    gs_free(sub);
}
END_TEST

Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_err_table_is_stable);
    tcase_add_test(tc, test_log_format_level_and_sink);
    tcase_add_test(tc, test_arena_alignment_growth_reset_and_cap);
    tcase_add_test(tc, test_buf_cap_and_json_escaping);
    tcase_add_test(tc, test_config_strict_parsers);
    tcase_add_test(tc, test_fs_atomic_write_and_capped_read);
    suite_add_tcase(s, tc);
    return s;
}
