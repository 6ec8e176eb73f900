// jobs/spec: the YAML job spec: valid files, every kind of invalid value (the message names the
// file, the field and the line), --set overrides, the canonical text, hash and pack/unpack, and
// file-name time patterns (jobs/acqtime).
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "jobs/acqtime.h"
#include "jobs/spec.h"
#include "testutil.h"

static const char *MINIMAL = "inputs: [a.tif]\n"
                             "output: out\n"
                             "encoder:\n"
                             "  model: m\n";

static gs_job_t *parse_ok(const char *yaml, const char *const *sets, int n_sets)
{
    gs_job_t *j = NULL;
    char err[1024] = "";
    gs_err e = gs_job_parse(yaml, strlen(yaml), "jobs/x.yaml", sets, n_sets, &j, err, sizeof err);
    ck_assert_msg(e == GS_OK, "unexpected error: %s", err);
    ck_assert_ptr_nonnull(j);
    return j;
}

// parse_err: parses, expects GS_EINVAL and returns the message (static storage).
static const char *parse_err(const char *yaml, const char *const *sets, int n_sets)
{
    static char err[1024];
    gs_job_t *j = NULL;
    err[0] = '\0';
    gs_err e = gs_job_parse(yaml, strlen(yaml), "jobs/x.yaml", sets, n_sets, &j, err, sizeof err);
    ck_assert_msg(e == GS_EINVAL, "expected GS_EINVAL, got %s for:\n%s", gs_err_name(e), yaml);
    ck_assert_ptr_null(j);
    return err;
}

#define ASSERT_HAS(s, sub)                                                                         \
    ck_assert_msg(strstr((s), (sub)) != NULL, "\"%s\" lacks \"%s\"", (s), (sub))

START_TEST(test_spec_full_file_parses_every_section)
{
    const char *y = "name: landsat-2017\n"
                    "inputs:\n"
                    "  - ../shared/data/scenes/landsat8-rio-tiler\n"
                    "  - '@lists/more.txt'\n"
                    "  - /vsis3/bucket/x.tif\n"
                    "output: out/l8\n"
                    "scenes:\n"
                    "  extensions: [TIF, tiff]\n"
                    "  group: '{scene}_B{band}.TIF'\n"
                    "  checksum: full\n"
                    "tiling: {size: 128, overlap: 16, min_valid_fraction: 0.25, edge: pad}\n"
                    "composite:\n"
                    "  bands: [5, 4, 3]\n"
                    "  scaling: percentile\n"
                    "  percentile: [1, 99.5]\n"
                    "time:\n"
                    "  from: filename\n"
                    "  pattern: '%Y%m%d'\n"
                    "encoder: {model: m.safetensors, arch: ViT-B-32, batch: 32, threads: 2}\n"
                    "captioner:\n"
                    "  model: cap\n"
                    "  prompt: What is here?\n"
                    "  select: sample:0.25\n"
                    "  max_tokens: 40\n"
                    "index: {type: 'IVF256,PQ32np', flat_max: 1000, nprobe: 8}\n";
    gs_job_t *j = parse_ok(y, NULL, 0);
    ck_assert_str_eq(j->name, "landsat-2017");
    ck_assert_int_eq(j->n_inputs, 3);
    ck_assert_str_eq(j->inputs[1], "@lists/more.txt");
    ck_assert_str_eq(j->inputs[2], "/vsis3/bucket/x.tif");
    ck_assert_str_eq(j->output, "out/l8");
    ck_assert_int_eq(j->scenes.n_extensions, 2);
    ck_assert_str_eq(j->scenes.group, "{scene}_B{band}.TIF");
    ck_assert_int_eq(j->scenes.checksum, GS_JOB_CHECKSUM_FULL);
    ck_assert_int_eq(j->tiling.size, 128);
    ck_assert_int_eq(j->tiling.overlap, 16);
    ck_assert_double_eq(j->tiling.min_valid_fraction, 0.25);
    ck_assert_int_eq(j->tiling.edge, GS_JOB_EDGE_PAD);
    ck_assert_int_eq(j->composite.n_bands, 3);
    ck_assert_str_eq(j->composite.bands[0], "5");
    ck_assert_int_eq(j->composite.scaling, GS_JOB_SCALING_PERCENTILE);
    ck_assert_double_eq(j->composite.percentile[1], 99.5);
    ck_assert_int_eq(j->time.from, GS_JOB_TIME_FILENAME);
    ck_assert_str_eq(j->encoder.arch, "ViT-B-32");
    ck_assert_int_eq(j->encoder.batch, 32);
    ck_assert_int_eq(j->captioner.select, GS_JOB_SELECT_SAMPLE);
    ck_assert_double_eq(j->captioner.sample_fraction, 0.25);
    ck_assert_int_eq(j->captioner.max_tokens, 40);
    ck_assert_str_eq(j->index.type, "IVF256,PQ32np");
    ck_assert_int_eq(j->index.flat_max, 1000);
    gs_job_destroy(&j);
    ck_assert_ptr_null(j);
}
END_TEST

START_TEST(test_spec_defaults_and_name_from_file)
{
    gs_job_t *j = parse_ok(MINIMAL, NULL, 0);
    ck_assert_str_eq(j->name, "x"); // jobs/x.yaml
    ck_assert_int_eq(j->tiling.size, 256);
    ck_assert_int_eq(j->tiling.overlap, 0);
    ck_assert_double_eq(j->tiling.min_valid_fraction, 0.5);
    ck_assert_int_eq(j->tiling.edge, GS_JOB_EDGE_SHIFT);
    ck_assert_int_eq(j->scenes.n_extensions, 2);
    ck_assert_str_eq(j->scenes.extensions[0], "tif");
    ck_assert_int_eq(j->composite.n_bands, 0);
    ck_assert_int_eq(j->composite.scaling, GS_JOB_SCALING_AUTO);
    ck_assert_double_eq(j->composite.percentile[0], 2);
    ck_assert_double_eq(j->composite.percentile[1], 98);
    ck_assert_str_eq(j->captioner.model, "");
    ck_assert_int_eq(j->captioner.select, GS_JOB_SELECT_ALL);
    ck_assert_str_eq(j->index.type, "auto");
    ck_assert_int_eq(j->index.flat_max, 200000);
    ck_assert_int_eq(gs_job_caption_selects(j, 42, 0), 0); // no captioner model
    gs_job_destroy(&j);
}
END_TEST

typedef struct {
    const char *yaml;
    const char *want[3]; // substrings of the message
} bad_case_t;

START_TEST(test_spec_invalid_values_name_the_field_file_and_line)
{
    static const bad_case_t cases[] = {
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling:\n  size: 9\n",
         {"job \"jobs/x.yaml\": tiling.size must be between 16 and 8192, got 9", "(line 5)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling:\n  sise: 64\n",
         {"unknown key \"tiling.sise\"", "did you mean \"tiling.size\"", "(line 5)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntilling: {size: 64}\n",
         {"unknown key \"tilling\"", "(line 4)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling: {size: big}\n",
         {"tiling.size must be an integer, got \"big\"", "(line 4)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling: {edge: wrap}\n",
         {"tiling.edge must be one of shift, pad, clip, got \"wrap\""}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling: {size: 64, overlap: 64}\n",
         {"tiling.overlap must be below tiling.size (64), got 64"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntiling: {min_valid_fraction: 1.5}\n",
         {"tiling.min_valid_fraction must be between 0 and 1, got 1.5"}},
        {"output: o\nencoder: {model: m}\n", {"inputs is required"}},
        {"inputs: [a]\nencoder: {model: m}\n", {"output is required"}},
        {"inputs: [a]\noutput: o\n", {"encoder.model is required"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ncomposite: {bands: [1, 2]}\n",
         {"composite.bands must name 1 (grey) or 3 bands", "(line 4)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ncomposite: {mode: sar}\n",
         {"composite.bands must name 2 bands (VV, VH)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ncomposite: {percentile: [98, 2]}\n",
         {"composite.percentile must be two numbers lo < hi"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ncomposite: {range: [0, 1, 2]}\n",
         {"composite.range must be lo, hi or three pairs"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\nscenes: {group: '{scene}.tif'}\n",
         {"scenes.group must hold {scene} and {band} once each"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntime: {from: filename}\n",
         {"time.pattern is required when time.from is filename"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntime: {pattern: '%m%d'}\n",
         {"time.pattern has no year field"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ntime: {from: given, value: soon}\n",
         {"time.value must be a date-time"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\ncaptioner: {select: 'sample:2'}\n",
         {"captioner.select must be all, none, sample:F"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\nindex: {nprobe: 0}\n",
         {"index.nprobe must be between 1 and 65536, got 0"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\nname: 'bad name'\n",
         {"name must be 1 to 64 characters"}},
        {"inputs: [a]\noutput: o\nencoder: m\n", {"encoder must be a mapping of keys", "(line 3)"}},
        {"inputs: [a]\noutput: [o]\nencoder: {model: m}\n",
         {"output must be a single value, not a list", "(line 2)"}},
        {"inputs: [a]\noutput: o\noutput: p\nencoder: {model: m}\n",
         {"key \"output\" is given twice", "(line 3)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m\n", {"invalid YAML", "(line"}},
        {"- a\n- b\n", {"must be a mapping"}},
        {"inputs: &x [a]\noutput: o\nencoder: {model: m}\n", {"anchors"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\nprogress: {publish: 'localhost:5557'}\n",
         {"progress.publish must be a ZeroMQ endpoint", "\"localhost:5557\"", "(line 4)"}},
        {"inputs: [a]\noutput: o\nencoder: {model: m}\nprogress: {publish: '>tcp://'}\n",
         {"progress.publish must be a ZeroMQ endpoint"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *m = parse_err(cases[i].yaml, NULL, 0);
        ASSERT_HAS(m, "job \"jobs/x.yaml\": ");
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            ASSERT_HAS(m, cases[i].want[k]);
    }
}
END_TEST

START_TEST(test_spec_set_overrides_after_the_file)
{
    const char *y = "inputs: [a.tif]\noutput: out\nencoder: {model: m}\n"
                    "captioner: {model: cap}\ntiling: {size: 128}\n";
    const char *sets[] = {"inputs=x/*.tif, @list.txt,/vsis3/b/c.tif",
                          "output=elsewhere",
                          "encoder.model=other.safetensors",
                          "captioner.model=",
                          "tiling.size=512",
                          "composite.bands=B8,B4,B3",
                          "composite.percentile=1,99",
                          "index.type=flat"};
    gs_job_t *j = parse_ok(y, sets, 8);
    ck_assert_int_eq(j->n_inputs, 3);
    ck_assert_str_eq(j->inputs[0], "x/*.tif");
    ck_assert_str_eq(j->inputs[1], "@list.txt");
    ck_assert_str_eq(j->inputs[2], "/vsis3/b/c.tif");
    ck_assert_str_eq(j->output, "elsewhere");
    ck_assert_str_eq(j->encoder.model, "other.safetensors");
    ck_assert_str_eq(j->captioner.model, ""); // emptied: no captions
    ck_assert_int_eq(j->tiling.size, 512);
    ck_assert_int_eq(j->composite.n_bands, 3);
    ck_assert_str_eq(j->composite.bands[2], "B3");
    ck_assert_double_eq(j->composite.percentile[0], 1);
    ck_assert_str_eq(j->index.type, "flat");
    gs_job_destroy(&j);
    // a --set may supply what the file lacks, in a section the file does not have
    const char *sets2[] = {"encoder.model=m2"};
    j = parse_ok("inputs: [a]\noutput: o\n", sets2, 1);
    ck_assert_str_eq(j->encoder.model, "m2");
    gs_job_destroy(&j);
    // errors in --set values say so
    const char *bad1[] = {"tiling.size=9"};
    ASSERT_HAS(parse_err(y, bad1, 1),
               "tiling.size must be between 16 and 8192, got 9 (from --set)");
    const char *bad2[] = {"tiling.sise=64"};
    ASSERT_HAS(parse_err(y, bad2, 1),
               "unknown key \"tiling.sise\" (did you mean \"tiling.size\"?)");
    const char *bad3[] = {"tiling"};
    ASSERT_HAS(parse_err(y, bad3, 1), "must be key=value");
    const char *bad4[] = {"tiling=5"};
    ASSERT_HAS(parse_err(y, bad4, 1), "unknown key \"tiling\"");
}
END_TEST

START_TEST(test_spec_canonical_is_stable_and_round_trips)
{
    const char *a =
        "inputs: [a.tif, 'b \"q\".tif']\noutput: out\nencoder: {model: m}\n"
        "tiling: {size: 128, min_valid_fraction: 0.1}\ncaptioner: {select: 'per_scene:3'}\n";
    // the same spec written another way: key order, flow vs block style, quoting
    const char *b = "tiling:\n  min_valid_fraction: 0.1\n  size: \"128\"\n"
                    "encoder:\n  model: 'm'\n"
                    "captioner: {select: per_scene:3}\n"
                    "output: \"out\"\ninputs:\n  - a.tif\n  - b \"q\".tif\nname: x\n";
    gs_job_t *ja = parse_ok(a, NULL, 0), *jb = parse_ok(b, NULL, 0);
    char *ca = NULL, *cb = NULL;
    size_t na = 0, nb = 0;
    ck_assert_int_eq(gs_job_canonical(ja, &ca, &na), GS_OK);
    ck_assert_int_eq(gs_job_canonical(jb, &cb, &nb), GS_OK);
    ck_assert_str_eq(ca, cb);
    ck_assert_uint_eq(gs_job_hash(ja), gs_job_hash(jb));
    ASSERT_HAS(ca, "tiling:\n  size: 128\n  overlap: 0\n  min_valid_fraction: 0.1\n");
    ASSERT_HAS(ca, "  - \"b \\\"q\\\".tif\"\n");
    ASSERT_HAS(ca, "select: \"per_scene:3\"");
    // unpack(pack(j)) gives the same canonical text
    char *packed = NULL;
    size_t np = 0;
    ck_assert_int_eq(gs_job_pack(ja, &packed, &np), GS_OK);
    gs_job_t *ju = NULL;
    char err[512] = "";
    ck_assert_msg(gs_job_unpack(packed, np, &ju, err, sizeof err) == GS_OK, "%s", err);
    char *cu = NULL;
    ck_assert_int_eq(gs_job_canonical(ju, &cu, NULL), GS_OK);
    ck_assert_str_eq(cu, ca);
    ck_assert_uint_eq(gs_job_hash(ju), gs_job_hash(ja));
    // any change changes the hash
    const char *set[] = {"tiling.overlap=1"};
    gs_job_t *jc = parse_ok(a, set, 1);
    ck_assert_uint_ne(gs_job_hash(jc), gs_job_hash(ja));
    // a damaged message fails to unpack with the field named
    char *dam = gs_xstrdup(packed);
    char *p = strstr(dam, "size: 128");
    memcpy(p, "size: 1x8", 9);
    gs_job_t *jd = NULL;
    ck_assert_int_eq(gs_job_unpack(dam, strlen(dam), &jd, err, sizeof err), GS_EINVAL);
    ASSERT_HAS(err, "job \"<packed>\": tiling.size must be an integer");
    gs_free(dam);
    gs_free(ca);
    gs_free(cb);
    gs_free(cu);
    gs_free(packed);
    gs_job_destroy(&ja);
    gs_job_destroy(&jb);
    gs_job_destroy(&ju);
    gs_job_destroy(&jc);
}
END_TEST

START_TEST(test_spec_hash_is_pinned)
{
    // the hash of a spec is recorded in ledgers: it must not drift between versions. A new key
    // in the table changes the canonical text (and this value) on purpose; update it then.
    gs_job_t *j = parse_ok(MINIMAL, NULL, 0);
    char *c = NULL;
    ck_assert_int_eq(gs_job_canonical(j, &c, NULL), GS_OK);
    uint64_t h = gs_job_hash(j);
    ck_assert_msg(h == 0xc6dcfb01e886533cULL, "spec hash drifted: 0x%016llx\n%s",
                  (unsigned long long)h, c);
    gs_free(c);
    gs_job_destroy(&j);
}
END_TEST

START_TEST(test_spec_load_file_errors_name_the_file)
{
    const char *dir = gs_test_tmpdir("jobs_spec");
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("inputs: [a]\noutput: o\nencoder:\n  model: m\n  batch: 0\n", f);
    fclose(f);
    gs_job_t *j = NULL;
    char err[1024];
    ck_assert_int_eq(gs_job_load(path, NULL, 0, &j, err, sizeof err), GS_EINVAL);
    char want[4400];
    snprintf(want, sizeof want,
             "job \"%s\": encoder.batch must be between 1 and 4096, got 0 (line 5)", path);
    ck_assert_str_eq(err, want);
    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    ck_assert_int_eq(gs_job_load(path, NULL, 0, &j, err, sizeof err), GS_EIO);
    ASSERT_HAS(err, "could not open it");
    ASSERT_HAS(err, "missing.yaml");
}
END_TEST

START_TEST(test_spec_caption_select_is_deterministic)
{
    const char *sets[] = {"captioner.model=cap", "captioner.select=sample:0.25"};
    gs_job_t *j = parse_ok(MINIMAL, sets, 2);
    int n = 0;
    for (uint64_t id = 1; id <= 4000; id++)
        n += gs_job_caption_selects(j, id * 2654435761u, 0);
    ck_assert_msg(n > 900 && n < 1100, "sample:0.25 took %d of 4000", n);
    ck_assert_int_eq(gs_job_caption_selects(j, 77, 0), gs_job_caption_selects(j, 77, 5));
    gs_job_destroy(&j);
    const char *sets2[] = {"captioner.model=cap", "captioner.select=per_scene:2"};
    j = parse_ok(MINIMAL, sets2, 2);
    ck_assert_int_eq(gs_job_caption_selects(j, 9, 1), 1);
    ck_assert_int_eq(gs_job_caption_selects(j, 9, 2), 0);
    gs_job_destroy(&j);
}
END_TEST

// ---- acquisition-time text ----------------------------------------------------------------

START_TEST(test_acqtime_parse_and_patterns)
{
    int64_t t;
    char s[32];
    ck_assert_int_eq(gs_acqtime_parse("1970-01-01T00:00:00Z", &t), GS_OK);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(gs_acqtime_parse("2017-08-13T15:54:15.7884640Z", &t), GS_OK);
    ck_assert_int_eq(t, 1502639655); // date -u -d 2017-08-13T15:54:15Z +%s
    gs_acqtime_format(t, s, sizeof s);
    ck_assert_str_eq(s, "2017-08-13T15:54:15Z");
    ck_assert_int_eq(gs_acqtime_parse("2017:08:13 17:54:15+02:00", &t), GS_OK);
    ck_assert_int_eq(t, 1502639655);
    ck_assert_int_eq(gs_acqtime_parse("20000229", &t), GS_OK);
    ck_assert_int_eq(t, 951782400);
    ck_assert_int_eq(gs_acqtime_parse("1985", &t), GS_OK);
    ck_assert_int_eq(t, 473385600);
    ck_assert_int_eq(gs_acqtime_parse("2001-02-29", &t), GS_EINVAL);
    ck_assert_int_eq(gs_acqtime_parse("2017-13-01", &t), GS_EINVAL);
    ck_assert_int_eq(gs_acqtime_parse("soon", &t), GS_EINVAL);
    // strptime-like: the first match from the left
    ck_assert_int_eq(
        gs_acqtime_match("%Y%m%dT%H%M%S", "S2A_MSIL2A_20170613T101031_87_48_B04.tif", &t), GS_OK);
    gs_acqtime_format(t, s, sizeof s);
    ck_assert_str_eq(s, "2017-06-13T10:10:31Z");
    ck_assert_int_eq(gs_acqtime_match("%Y%m%d", "LC08_L1TP_016037_20170813_20170814_01_RT", &t),
                     GS_OK);
    gs_acqtime_format(t, s, sizeof s);
    ck_assert_str_eq(s, "2017-08-13T00:00:00Z");
    ck_assert_int_eq(gs_acqtime_match("%Y.tif", "1985.tif", &t), GS_OK);
    ck_assert_int_eq(t, 473385600);
    ck_assert_int_eq(gs_acqtime_match("%Y%m%d", "no_date_here.tif", &t), GS_ENOTFOUND);
    // regex with named fields: Landsat collection-0 names carry year + day of year
    ck_assert_int_eq(gs_acqtime_match("regex:LC8[0-9]{6}(?<year>\\d{4})(?<doy>\\d{3})LGN",
                                      "LC81070352015122LGN00_B4.tif", &t),
                     GS_OK);
    gs_acqtime_format(t, s, sizeof s);
    ck_assert_str_eq(s, "2015-05-02T00:00:00Z"); // day 122 of 2015
    char err[256];
    ck_assert_int_eq(gs_acqtime_check_pattern("regex:(?<when>\\d+)", err, sizeof err), GS_EINVAL);
    ASSERT_HAS(err, "unknown field name \"when\"");
    ck_assert_int_eq(gs_acqtime_check_pattern("regex:(?<year>[0-9", err, sizeof err), GS_EINVAL);
    ASSERT_HAS(err, "not a valid regular expression");
    ck_assert_int_eq(gs_acqtime_check_pattern("%Y%q", err, sizeof err), GS_EINVAL);
}
END_TEST

Suite *jobs_spec_suite(void)
{
    Suite *s = suite_create("jobs_spec");
    TCase *tc = tcase_create("spec");
    tcase_add_test(tc, test_spec_full_file_parses_every_section);
    tcase_add_test(tc, test_spec_defaults_and_name_from_file);
    tcase_add_test(tc, test_spec_invalid_values_name_the_field_file_and_line);
    tcase_add_test(tc, test_spec_set_overrides_after_the_file);
    tcase_add_test(tc, test_spec_canonical_is_stable_and_round_trips);
    tcase_add_test(tc, test_spec_hash_is_pinned);
    tcase_add_test(tc, test_spec_load_file_errors_name_the_file);
    tcase_add_test(tc, test_spec_caption_select_is_deterministic);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("acqtime");
    tcase_add_test(tt, test_acqtime_parse_and_patterns);
    suite_add_tcase(s, tt);
    return s;
}
