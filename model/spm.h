// SentencePiece tokenizer (BPE models such as LLaMA-2's tokenizer.model) and the Hugging Face
// LlamaTokenizer layer above it (added tokens such as "<image>", BOS, legacy=False prompt
// handling). Reads the protobuf model file; does not train, does not implement unigram models
// or NFKC normalisation (models that need them are refused at open with GS_EUNSUPPORTED).
//
// Two levels:
//   gs_spm_encode / gs_spm_decode   exactly python sentencepiece's encode(text) / decode(ids)
//   gs_spm_encode_hf / _decode_hf   transformers' slow LlamaTokenizer (v4.40) on top of it, as
//                                   configured by the model folder's tokenizer_config.json and
//                                   added_tokens.json
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct gs_spm gs_spm_t;

// Piece types of the model file (values of the format).
typedef enum {
    GS_SPM_NORMAL = 1,
    GS_SPM_UNKNOWN = 2,
    GS_SPM_CONTROL = 3,
    GS_SPM_USER_DEFINED = 4,
    GS_SPM_UNUSED = 5,
    GS_SPM_BYTE = 6,
} gs_spm_type_t;

// Flags of gs_spm_encode / gs_spm_decode.
enum {
    // no dummy prefix on encode and no stripping of it on decode, whatever the model says
    // (what transformers' LlamaTokenizer does to its SentencePiece model when legacy=False)
    GS_SPM_NO_DUMMY_PREFIX = 1u << 0,
};

// Flags of gs_spm_decode_hf.
enum {
    GS_SPM_SKIP_SPECIAL = 1u << 0, // drop BOS/EOS/UNK/PAD and the additional special tokens
};

// The longest text gs_spm_encode accepts, in bytes (GS_ETOOBIG beyond).
#define GS_SPM_MAX_TEXT_NBYTES (1u << 24)

// gs_spm_open: reads a SentencePiece model file ("tokenizer.model"). Returns GS_EIO (cannot
// read), GS_EFORMAT (not a valid model: protobuf error, duplicate pieces, no unknown piece,
// byte pieces missing with byte_fallback), GS_EUNSUPPORTED (not BPE, or a normaliser other than
// identity), GS_ENOMEM. The reason is logged. The caller owns *out (gs_spm_close).
gs_err gs_spm_open(const char *path, gs_spm_t **out);
// gs_spm_load: the same from the bytes of a model file (copied; `data` may be freed after).
gs_err gs_spm_load(const void *data, size_t nbytes, gs_spm_t **out);
// gs_spm_open_dir: a Hugging Face tokenizer folder: tokenizer.model plus, when present,
// tokenizer_config.json (add_bos_token, add_eos_token, legacy, add_prefix_space,
// added_tokens_decoder, spaces_between_special_tokens), added_tokens.json and
// special_tokens_map.json. Missing JSON files give transformers' defaults (legacy=True,
// add_bos_token=True). Errors as gs_spm_open, plus GS_EFORMAT for malformed JSON.
gs_err gs_spm_open_dir(const char *dir, gs_spm_t **out);
// gs_spm_close: frees; NULLs *p; accepts NULL.
void gs_spm_close(gs_spm_t **p);

// Vocabulary. All of these are thread-safe (the tokenizer is immutable after open).
// gs_spm_n_pieces: pieces of the SentencePiece model (32000 for LLaMA-2).
int32_t gs_spm_n_pieces(const gs_spm_t *self);
// gs_spm_n_vocab: one more than the largest id, added tokens included (32002 for llava-hf).
int32_t gs_spm_n_vocab(const gs_spm_t *self);
// gs_spm_piece: the piece of an id ("▁the", "<0x0A>"), an added token's text ("<image>"), or
// NULL for an id with neither (e.g. 32002..32063 of a padded LLaVA vocabulary). Borrowed.
const char *gs_spm_piece(const gs_spm_t *self, int32_t id);
// gs_spm_type: the piece type of an id, 0 for ids beyond the SentencePiece model.
gs_spm_type_t gs_spm_type(const gs_spm_t *self, int32_t id);
// gs_spm_piece_id: the id of a piece or added token, -1 if none.
int32_t gs_spm_piece_id(const gs_spm_t *self, const char *piece);
// Special ids; -1 when the model has none (LLaMA-2: unk 0, bos 1, eos 2, pad -1).
int32_t gs_spm_bos_id(const gs_spm_t *self);
int32_t gs_spm_eos_id(const gs_spm_t *self);
int32_t gs_spm_unk_id(const gs_spm_t *self);
int32_t gs_spm_pad_id(const gs_spm_t *self);

// gs_spm_encode: python sentencepiece's `encode(text)` (no BOS/EOS): normalise (dummy prefix,
// spaces -> U+2581, invalid UTF-8 bytes -> U+FFFD), split into characters (user-defined pieces
// whole), merge the adjacent pair whose concatenation is a piece with the highest score
// (leftmost on ties), then byte fallback (<0xXX>) or <unk> for what is left unknown.
// Writes at most `cap` ids to out_ids and the count to *out_n. Returns GS_ETOOBIG (more than
// `cap` ids, or text longer than GS_SPM_MAX_TEXT_NBYTES), GS_ENOMEM. Empty text gives 0 ids.
// Allocates its scratch per call; thread-safe.
gs_err gs_spm_encode(const gs_spm_t *self, const char *text, size_t text_nbytes, unsigned flags,
                     int32_t *out_ids, size_t cap, size_t *out_n);
// gs_spm_decode: python sentencepiece's `decode(ids)`: pieces with U+2581 -> ' ', the dummy
// prefix space of the first piece removed, runs of byte pieces turned back into bytes (invalid
// UTF-8 -> U+FFFD), control pieces dropped, unknown -> " \u2047 ". Ids beyond the model are
// skipped (sentencepiece would fail). Appends to `out`; GS_ETOOBIG or GS_ENOMEM from the
// buffer. Thread-safe.
gs_err gs_spm_decode(const gs_spm_t *self, const int32_t *ids, size_t n, unsigned flags,
                     gs_buf_t *out);

// gs_spm_encode_hf: transformers' LlamaTokenizer `encode(text)` (v4.40 slow tokenizer): the
// text is split on added/special tokens (their ids emitted), each other segment encoded with
// SentencePiece; with legacy=False the model's dummy prefix is replaced by one '▁' at the start
// of the text and segments after a special token get none; BOS (add_bos_token) and EOS
// (add_eos_token) are added. Example (llava-hf): "USER: <image>\nDescribe" -> [1, 3148, 1001,
// 29901, 29871, 32000, 13, 4002, 29581]. Errors as gs_spm_encode.
gs_err gs_spm_encode_hf(const gs_spm_t *self, const char *text, size_t text_nbytes,
                        int32_t *out_ids, size_t cap, size_t *out_n);
// gs_spm_decode_hf: LlamaTokenizer `decode(ids, skip_special_tokens=...)`: the text of
// generated ids. Ids without a piece or added token (32002.. in LLaVA's padded vocabulary)
// produce nothing. Appends to `out`; GS_ETOOBIG or GS_ENOMEM. Thread-safe.
gs_err gs_spm_decode_hf(const gs_spm_t *self, const int32_t *ids, size_t n, unsigned flags,
                        gs_buf_t *out);
