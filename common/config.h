// Small configuration helpers: strict number/bool/size parsing (no atoi), environment access
// (the only place geoscribe calls getenv), and a "key=value" splitter for --set overrides.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// Strict parsers: the whole string must be consumed (surrounding blanks allowed) and the value
// must fit; GS_EINVAL otherwise. Nothing is written to *out on error.
gs_err gs_parse_i64(const char *s, int64_t *out);
gs_err gs_parse_u64(const char *s, uint64_t *out);
gs_err gs_parse_int(const char *s, int lo, int hi, int *out); // also checks [lo, hi]
gs_err gs_parse_f64(const char *s, double *out);              // finite values only
// gs_parse_bool: true/false, yes/no, on/off, 1/0 (case-insensitive).
gs_err gs_parse_bool(const char *s, bool *out);
// gs_parse_size: a byte count with an optional K/M/G/T suffix (powers of 1024), "64M".
gs_err gs_parse_size(const char *s, uint64_t *out);

// gs_getenv: the value of an environment variable or NULL; borrowed, valid until the
// environment changes.
const char *gs_getenv(const char *name);
// gs_getenv_int: the integer value of an environment variable within [lo, hi], or `dflt` when
// it is unset or invalid.
int gs_getenv_int(const char *name, int dflt, int lo, int hi);

// gs_split_kv: splits "a.b=value" into a key and a value, each copied into caller buffers.
// GS_EINVAL when there is no '=' or the key is empty; GS_ETOOBIG when a buffer is too small.
gs_err gs_split_kv(const char *s, char *out_key, size_t key_nbytes, char *out_val,
                   size_t val_nbytes);
