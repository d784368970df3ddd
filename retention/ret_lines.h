/*
 * ret_lines — split a streamed member (events.jsonl read chunk by chunk
 * through adapters/bundle.h) into lines, for verify, export and retention.
 *
 * Feed chunks in order; each complete line (without its '\n') goes to fn
 * with its 1-based number.  A line of one chunk is passed in place, one
 * that spans chunks is assembled in part.  A line longer than max (0 means
 * RET_LINE_MAX) is passed once as line = NULL with the length seen so far,
 * and the rest of it is skipped, so memory stays bounded.  fn returns 0 to
 * go on, anything else stops the feed and is returned.
 * Thread-safe per instance.
 */
#ifndef RET_LINES_H
#define RET_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_util.h"

/* Longest events.jsonl line accepted: ingest's max_event_size ceiling. */
#define RET_LINE_MAX (64 * 1024 * 1024)

typedef int (*ret_line_fn)(void *arg, const char *line, size_t len, int64_t lineno);

struct ret_lines {
	struct cv_buf part;     /* the unfinished line */
	int64_t lineno;         /* lines completed */
	bool skipping;          /* inside an over-long line */
	size_t max;             /* 0: RET_LINE_MAX */
	ret_line_fn fn;
	void *arg;
};

int ret_lines_feed(struct ret_lines *l, const void *data, size_t len);
/* Bytes after the last '\n' (an unterminated last line)? */
static inline bool ret_lines_pending(const struct ret_lines *l)
{
	return l->part.len > 0 || l->skipping;
}
void ret_lines_free(struct ret_lines *l);

#endif
