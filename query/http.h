// gs_http: the HTTP face of the query service (libmicrohttpd; query/http.c is its only includer):
//   GET /                         the web map page (web/index.html, app.js, app.css)
//   GET /leaflet/<file>           Leaflet, installed from npm at set-up time (no CDN)
//   GET /api/search?q=&k=&bbox=&from=&to=&scene=&caption=&like_tile=&nprobe=&format=json|geojson
//                                 the hits: JSON lines or a GeoJSON FeatureCollection, the
//                                 same bytes as `geoscribe query --format json|geojson`
//   GET /api/tile/<id>.png        a thumbnail of the tile, rendered once and cached on disk
//   GET /api/change/<pair id>/before.png, .../after.png
//                                 a thumbnail of one side of a change pair on the pair's grid
//                                 (a warped side too), rendered once and cached on disk
//   GET /api/changes?q=&k=&bbox=&from=&to=&caption=&format=json|geojson
//                                 change pairs (query/chsearch.h), the same bytes as
//                                 `geoscribe query --changes`; 404 without change records
//   GET /api/health               {"status":"ok","model_id":...,"n_vectors":...,"dim":...,
//                                  "n_changes":...} (n_changes: change records, 0 = none)
// Errors are JSON {"error":{"code":1,"name":"GS_EINVAL","message":"..."}} with status 400
// (bad request), 404 (unknown tile or path), 413 (too big) or 500.
// Thumbnails need GDAL, which query/ may not include: the program installs render callbacks
// (the CLI passes jobs/thumb.h's renderers, or jobs/raster.h's gs_raster_write_png_chip).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "query/chsearch.h"
#include "query/search.h"

typedef struct gs_http gs_http_t;

// gs_http_thumb_fn: renders the window (x, y, w, h) of the raster at scene_uri as a PNG of at
// most max_side pixels on its long side into png_path. Called from HTTP threads, several at
// once (must be thread-safe). Returns GS_OK or an error (then the client gets a 404 or 500).
typedef gs_err (*gs_http_thumb_fn)(void *ud, const char *scene_uri, int x, int y, int w, int h,
                                   int max_side, const char *png_path);

// gs_http_change_thumb_fn: renders one side (after: the later scene) of a change pair, the cell
// with location id `location` of the grid the pair was compared on, as a PNG of at most max_side
// pixels on its long side into png_path. Called from HTTP threads, several at once.
typedef gs_err (*gs_http_change_thumb_fn)(void *ud, const char *before_uri, const char *after_uri,
                                          bool after, uint64_t location, int max_side,
                                          const char *png_path);

// GS_HTTP_K_MAX: the most hits one API request may ask for.
#define GS_HTTP_K_MAX 10000
// GS_HTTP_THUMB_SIDE: the long side of a thumbnail in pixels.
#define GS_HTTP_THUMB_SIDE 256

typedef struct {
    const char *addr;        // "127.0.0.1:8080", ":8080" or "8080" (loopback), "0.0.0.0:8080";
                             // port 0 picks a free one
    bool allow_remote;       // required for an address other than 127.0.0.0/8 or localhost
    const char *web_dir;     // the page sources; NULL: the source tree's web/ (GS_WEB_DIR)
    const char *leaflet_dir; // Leaflet's dist/ folder; NULL: GS_LEAFLET_DIR, where
                             // deploy/setup.sh installs it ($PREFIX/web/node_modules/leaflet/dist)
    const char *cache_dir;   // thumbnails; NULL: <output>/cache/thumbs
    const char *cache_key;   // what the thumbnails depend on (one line of text, e.g. hashes of
                             // the jobs they are composed with); a cache filled under another
                             // key (or none) loses its thumbnails at start; NULL: no check
    int n_threads;           // connection threads (<= 0: 4)
    gs_http_thumb_fn thumb;  // NULL: /api/tile answers 404
    void *thumb_ud;
    gs_http_change_thumb_fn change_thumb; // NULL: /api/change/<id>/... answers 404
    void *change_thumb_ud;
    gs_chsearch_t *changes; // change search (borrowed, outlives the server); NULL: /api/changes
                            // answers 404
} gs_http_opts_t;

// GS_HTTP_CACHE_KEY_FILE: the file in the cache folder that records opts.cache_key.
#define GS_HTTP_CACHE_KEY_FILE "cache.key"

// gs_http_start: checks the page and Leaflet files (missing ones fail with GS_ENOTFOUND and
// a message naming the file and how to install it), makes the cache folder, empties it of
// thumbnails made under another cache_key (only files named as this server names thumbnails,
// "<id>.png" and "c<id>-before.png" / "c<id>-after.png", and its temporaries: the rest of the
// folder is left alone) and records the key, binds and starts serving in background threads.
// `search` is borrowed and must outlive the server. Errors (reason in err, nothing logged):
// GS_EINVAL (bad address), GS_EUNSUPPORTED (a remote address without allow_remote), GS_ENOTFOUND
// (assets), GS_EIO (bind or cache folder). The caller owns *out (gs_http_stop).
gs_err gs_http_start(gs_search_t *search, const gs_http_opts_t *opts, gs_http_t **out, char *err,
                     size_t err_nbytes);
// gs_http_url: "http://127.0.0.1:8080/" with the port actually bound. Borrowed until stop.
const char *gs_http_url(const gs_http_t *self);
// gs_http_stop: stops serving (waits for running requests), frees; NULLs *p; accepts NULL.
void gs_http_stop(gs_http_t **p);
