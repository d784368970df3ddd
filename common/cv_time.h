/*
 * cv_time — wall-clock time in UTC milliseconds since the Unix epoch, and
 * the textual forms the contracts use.
 *
 * Canonical form (events, manifests): "YYYY-MM-DDTHH:MM:SS.mmmZ", always 24
 * bytes plus NUL, always UTC, always three fraction digits.
 */
#ifndef CV_TIME_H
#define CV_TIME_H

#include <stddef.h>
#include <stdint.h>

#define CV_TIME_BUFSZ 32 /* holds any canonical timestamp + NUL */

/* Range accepted everywhere: 1970-01-01 .. 9999-12-31 (fits the format). */
#define CV_TIME_MIN_MS INT64_C(0)
#define CV_TIME_MAX_MS INT64_C(253402300799999)

int64_t cv_time_now_ms(void);
/* Monotonic clock in milliseconds, for timeouts and backoff. */
int64_t cv_time_mono_ms(void);

/* Writes the canonical form; returns 0, or -EINVAL when ms is out of range. */
int cv_time_format_ms(int64_t ms, char out[CV_TIME_BUFSZ]);

/*
 * Strict RFC 3339 UTC parser for event timestamps:
 * "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z" ('T' and 'Z' upper case; offsets other than
 * Z are refused with a reason saying the timestamp is not UTC).  Fractions
 * beyond milliseconds are truncated.  Calendar checked (month lengths, leap
 * years; second 60 refused).  On error returns -EINVAL and writes a short
 * reason (no trailing period) into why.
 */
int cv_time_parse_rfc3339(const char *s, int64_t *ms, char *why, size_t whylen);

/*
 * Looser parser for command-line bounds (export --from/--to, hold --from):
 * ISO 8601 date "YYYY-MM-DD" (midnight UTC) or date-time
 * "YYYY-MM-DDTHH:MM[:SS[.fff]]" with optional "Z" or "+00:00"; a space is
 * accepted for the 'T'.  Returns 0 or -EINVAL with a reason.
 */
int cv_time_parse_arg(const char *s, int64_t *ms, char *why, size_t whylen);

#endif
