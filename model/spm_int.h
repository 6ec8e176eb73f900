// Internals of the SentencePiece tokenizer shared by model/spm.c (model file, encode, decode)
// and model/spm_hf.c (the transformers LlamaTokenizer layer). Not for other modules.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model/spm.h"

// An added token of the HF layer ("<image>" -> 32000).
typedef struct {
    char *content; // owned
    size_t nbytes; // strlen(content)
    int32_t id;
    bool special; // in all_special_ids (skipped by GS_SPM_SKIP_SPECIAL)
    bool lstrip;  // eat whitespace on its left when splitting
    bool rstrip;  // eat whitespace on its right
} gs__spm_added_t;

struct gs_spm {
    // ---- the SentencePiece model
    int32_t n_pieces;       // 32000
    char *blob;             // all piece strings, NUL-terminated, back to back (owned)
    uint32_t *piece_off;    // (n_pieces) offset of each piece in blob
    uint32_t *piece_nbytes; // (n_pieces)
    float *score;           // (n_pieces)
    uint8_t *type;          // (n_pieces) gs_spm_type_t
    int32_t *table;         // open-addressing hash of all pieces -> id, -1 = empty
    uint32_t table_mask;    // table size - 1 (a power of two >= 2 * n_pieces)
    int32_t byte_id[256];   // id of "<0xXX>", -1 if absent
    int32_t unk_id, bos_id, eos_id, pad_id;
    bool byte_fallback;
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
    char *unk_surface;     // " \xE2\x81\x87 " by default (owned)
    int32_t *user_defined; // ids of USER_DEFINED pieces (owned), matched whole
    size_t n_user_defined;

    // ---- the transformers layer (defaults when there is no tokenizer_config.json)
    gs__spm_added_t *added; // (n_added) owned
    size_t n_added;
    int32_t n_vocab; // max(n_pieces, largest added id + 1)
    bool hf_legacy;  // true unless tokenizer_config.json says "legacy": false
    bool hf_add_bos, hf_add_eos, hf_add_prefix_space, hf_spaces_between_special;
    bool hf_clean_up_spaces;
    int32_t hf_bos_id, hf_eos_id, hf_unk_id, hf_pad_id;
    int32_t hf_unk_token_length; // pieces of "<unk>" encoded without dummy prefix (3)
    char *hf_unk_token;          // "<unk>" (owned)
};

// gs__spm_lookup: id of the piece spelled by s[0..n), -1 if none (any piece type).
int32_t gs__spm_lookup(const gs_spm_t *self, const char *s, size_t n);
// gs__spm_piece_str: the piece string of id (0 <= id < n_pieces).
static inline const char *gs__spm_piece_str(const gs_spm_t *self, int32_t id)
{
    return self->blob + self->piece_off[id];
}
// gs__spm_init_hf_defaults: the transformers defaults for a bare tokenizer.model.
void gs__spm_init_hf_defaults(gs_spm_t *self);
// gs__spm_free_hf: frees the added tokens and strings of the transformers layer.
void gs__spm_free_hf(gs_spm_t *self);
// gs__spm_load_hf: reads the JSON files of a tokenizer folder (see gs_spm_open_dir).
gs_err gs__spm_load_hf(gs_spm_t *self, const char *dir);
