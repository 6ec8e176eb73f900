// Acquisition times: parsing date-time text (metadata, the spec's time.value) and finding a date
// in a file name with a pattern (strptime-like or a regex with named fields). Times are seconds
// since 1970-01-01T00:00:00Z (UTC, proleptic Gregorian, no leap seconds); fractions are dropped.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

// gs_acqtime_parse: parses "YYYY", "YYYY-MM", "YYYY-MM-DD", "YYYYMMDD" and those followed by
// "T" or " " and "HH:MM[:SS[.fff]]" with an optional "Z" or "+HH:MM"/"-HHMM" offset (no offset =
// UTC). The date separator may also be ':' (TIFFTAG_DATETIME "2017:08:13 10:01:02") or '/'.
// Surrounding blanks are allowed. GS_EINVAL when the text is not such a date or is out of range
// (month 1-12, day within the month, hour 0-23, minute 0-59, second 0-60, year 1-9999).
// Pure; thread-safe.
gs_err gs_acqtime_parse(const char *s, int64_t *out);

// gs_acqtime_format: "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes).
void gs_acqtime_format(int64_t t, char *out, size_t out_nbytes);

// Patterns (the spec's time.pattern), found anywhere in the text (not anchored; the first
// match from the left wins):
//   strptime-like: %Y (4 digits), %y (2 digits: 70-99 -> 19xx, else 20xx), %m, %d, %H, %M, %S
//   (2 digits each), %j (3-digit day of the year), %% (a percent sign), ? (any one character);
//   every other character matches itself. Needs %Y or %y. E.g. "%Y%m%dT%H%M%S" finds
//   20170613T101031 in S2A_MSIL2A_20170613T101031_87_48_B04.tif.
//   regex: "regex:" + a POSIX extended regular expression with named groups (?<year>...) or
//   (?P<year>...); names: year, month, day, doy, hour, minute, second (short forms Y m d j H M
//   S). \d, \w and \s are accepted. E.g. "regex:_(?<year>\d{4})(?<doy>\d{3})LGN" for Landsat
//   collection-0 names (LC81070352015122LGN00: day 122 of 2015).
// Missing fields default to month 1, day 1, 00:00:00 UTC.

// gs_acqtime_check_pattern: GS_OK when `pattern` is usable, else GS_EINVAL with the reason in
// err (e.g. "has no year field (%Y, %y or (?<year>...))"). Pure; thread-safe.
gs_err gs_acqtime_check_pattern(const char *pattern, char *err, size_t err_nbytes);

// gs_acqtime_match: the time found in `text` by `pattern`. GS_ENOTFOUND when nothing matches
// (a result, not an error: nothing is logged), GS_EINVAL for a bad pattern. Thread-safe.
gs_err gs_acqtime_match(const char *pattern, const char *text, int64_t *out);
