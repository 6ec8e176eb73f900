// `geoscribe tokenize`: CLIP BPE token ids of texts, as open_clip's tokenizer gives them (start,
// tokens, end, zero padding to the context length), from a model's vocabulary or a vocabulary
// file alone.
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clip_cli.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "model/clip.h"
#include "model/clip_bpe.h"

static void print_one(gs_format_t fmt, const char *text, const int32_t *ids, int ctx, int n_tokens,
                      int n_untruncated, const gs_clip_t *m, const gs_clip_bpe_t *bpe)
{
    gs_buf_t b;
    gs_buf_init(&b, 1 << 22);
    if (fmt == GS_FORMAT_JSON) {
        gs_buf_puts(&b, "{\"text\":");
        gs_buf_json_str(&b, text);
        gs_buf_puts(&b, ",\"ids\":[");
        for (int i = 0; i < ctx; i++)
            gs_buf_printf(&b, "%s%d", i ? "," : "", ids[i]);
        gs_buf_printf(&b, "],\"n_tokens\":%d,\"truncated\":%s}", n_tokens,
                      n_untruncated > ctx ? "true" : "false");
    } else {
        gs_buf_printf(&b, "%s\n  ids (%d of %d%s):", text, n_tokens, ctx,
                      n_untruncated > ctx ? ", truncated" : "");
        for (int i = 0; i < n_tokens; i++)
            gs_buf_printf(&b, " %d", ids[i]);
        gs_buf_puts(&b, "\n  tokens:");
        for (int i = 0; i < n_tokens; i++) {
            const char *s = m ? gs_clip_token_str(m, ids[i]) : gs_clip_bpe_token_str(bpe, ids[i]);
            gs_buf_printf(&b, " %s", s ? s : "?");
        }
    }
    printf("%s\n", b.data);
    gs_buf_cleanup(&b);
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"arch", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'C'},
                                         {"vocab", required_argument, NULL, 'V'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"format", required_argument, NULL, 'f'},
                                         {0}};
    gs_cli_clip_args_t a = {.threads = 1};
    gs_format_t fmt = GS_FORMAT_TEXT;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = gs_cli_clip_option("tokenize", c, optarg, &a);
        if (r == 0)
            continue;
        if (r == 2 || c == '?')
            return 2;
        if (c == 'f' && gs_cli_parse_format("tokenize", optarg, false, &fmt) != 0)
            return 2;
    }
    if (!a.model && !a.vocab)
        return gs_cli_usage_error("tokenize", "give --model M (or --vocab FILE alone)");
    if (optind >= argc)
        return gs_cli_usage_error("tokenize", "give at least one TEXT");
    gs_clip_t *m = NULL;
    gs_clip_bpe_t *bpe = NULL;
    int ctx = GS_CLIP_BPE_CONTEXT;
    if (a.model) {
        if (gs_cli_clip_open("tokenize", &a, 1, &m) != GS_OK)
            return 1;
        ctx = gs_clip_context_length(m);
    } else if (gs_clip_bpe_open(a.vocab, &bpe) != GS_OK) {
        fprintf(stderr, "geoscribe tokenize: could not open vocabulary \"%s\"\n", a.vocab);
        return 1;
    }
    int32_t *ids = gs_xmalloc((size_t)ctx * sizeof(int32_t));
    int rc = 0;
    for (int i = optind; i < argc && rc == 0; i++) {
        int n_tokens = 0, n_untruncated = 0;
        gs_err e = m ? gs_clip_tokenize(m, argv[i], ids, &n_tokens, &n_untruncated)
                     : gs_clip_bpe_encode(bpe, argv[i], ids, ctx, &n_tokens, &n_untruncated);
        if (e != GS_OK) {
            fprintf(stderr, "geoscribe tokenize: could not tokenize \"%s\": %s\n", argv[i],
                    gs_strerror(e));
            rc = 1;
            break;
        }
        print_one(fmt, argv[i], ids, ctx, n_tokens, n_untruncated, m, bpe);
    }
    gs_free(ids);
    gs_clip_bpe_close(&bpe);
    gs_clip_close(&m);
    return rc;
}

const gs_cli_cmd_t gs_cli_cmd_tokenize = {
    .name = "tokenize",
    .summary = "CLIP token ids of texts (open_clip's tokenizer)",
    .usage = "usage: geoscribe tokenize (--model M [--arch NAME | --config FILE] [--vocab FILE]\n"
             "                          | --vocab FILE) [--format text|json] TEXT...\n\n"
             "Prints the token ids of each TEXT as open_clip's tokenizer gives them: start of\n"
             "text (49406), the BPE tokens, end of text (49407), zero padding to the model's\n"
             "context length (77), truncated to it when longer (the last id is then 49407).\n"
             "With --format json, one object per line: {\"text\":...,\"ids\":[...],"
             "\"n_tokens\":N,\"truncated\":false}.\n"
             "The vocabulary is the model's (found next to its weights, or --vocab), or --vocab\n"
             "alone: bpe_simple_vocab_16e6.txt.gz, or vocab.json with merges.txt beside it.\n"
             "Model options as for `geoscribe embed --help`.",
    .order = 22,
    .run = run,
};
