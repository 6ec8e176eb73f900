// Search results as text: JSON lines (one object per hit) and a GeoJSON FeatureCollection of
// tile footprints (EPSG:4326), the one renderer behind `geoscribe query` (local and through the
// service) and the HTTP API, so that they print the same bytes. Also the parsers of the filter
// arguments (ISO 8601 times, W,S,E,N boxes, tile ids) shared by the CLI and the servers.
// Pure functions over caller buffers; thread-safe.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "query/search.h"

// One hit as a JSON object (no newline):
//   {"rank":1,"tile_id":"123","score":0.312345,"scene":"/data/x.tif","scene_id":"456",
//    "time":"2021-06-01T10:30:21Z","bbox":[W,S,E,N],"caption":"..."}
// Ids are decimal strings (64-bit ids do not survive a JavaScript number); time and caption
// are null when unknown; the score has 6 decimals; coordinates are in their shortest form that
// reads back as the same double (so a printed box compares exactly like the stored one).
// GS_ETOOBIG (the buffer's cap), GS_ENOMEM.
gs_err gs_qfmt_hit_json(gs_buf_t *out, const gs_search_hit_t *h);

// gs_qfmt_results: every hit of a result. json: one object per line, each line ending in
// "\n". geojson: one FeatureCollection (one line, "\n" at the end) whose features are the tile
// footprints as closed polygons [[W,S],[E,S],[E,N],[W,N],[W,S]] with the hit's fields as
// properties (bbox too). GS_ETOOBIG, GS_ENOMEM.
gs_err gs_qfmt_results(gs_buf_t *out, const gs_search_hit_t *hits, size_t n, bool geojson);

// gs_qtime_format: seconds since 1970 UTC as "2021-06-01T10:30:21Z" into out (>= 32 bytes).
void gs_qtime_format(int64_t t, char *out, size_t out_nbytes);

// gs_qtime_parse: an ISO 8601 date or date-time, UTC unless an offset is given:
//   "2021", "2021-06", "2021-06-01", "2021-06-01T10:30", "2021-06-01T10:30:21",
//   "2021-06-01 10:30:21.5Z", "2021-06-01T10:30:21+02:00".
// A value names a period (a year, a month, a day, a minute, a second): with end = false the
// result is its first second, with end = true its last (so --to 2021-06-01 includes that
// whole day). GS_EINVAL for anything else (out-of-range fields included).
gs_err gs_qtime_parse(const char *s, bool end, int64_t *out);

// gs_qbbox_parse: "W,S,E,N" (four finite numbers, blanks allowed). GS_EINVAL.
gs_err gs_qbbox_parse(const char *s, double out[4]);

// gs_qid_parse: a tile or scene id, decimal or 0x hex, 1..2^63-1. GS_EINVAL.
gs_err gs_qid_parse(const char *s, uint64_t *out);
