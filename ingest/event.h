/*
 * event — the chatvault compliance event, version 1 (design.md §2 "Event").
 *
 * One event is one JSON object on one line.  This module is the only place
 * that knows the wire rules: it parses and validates (jansson, strict UTF-8,
 * duplicate keys refused, size limits), and serialises the canonical form
 * that staging, adapters and bundles store byte for byte.
 *
 * Canonical form: compact JSON, keys in this order, absent optional keys
 * omitted: v, id, type, ts, room, user, to, text, files[{name,size,sha256}],
 * source{server,seq}.  id is lower-case, ts has exactly three fraction digits
 * and a Z, sha256 is lower-case hex, non-ASCII text is emitted as raw UTF-8,
 * '/' is not escaped.  serialise(parse(x)) is canonical and
 * parse(serialise(e)) == e.
 *
 * Ownership: struct ing_event owns every string it points to; release them
 * with ing_event_clear().  Thread-safe: no shared state.
 */
#ifndef ING_EVENT_H
#define ING_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ING_EVENT_VERSION 1
#define ING_EVENT_ID_LEN 36            /* canonical UUID text, no NUL */
#define ING_EVENT_DEFAULT_MAX_SIZE (1024 * 1024)
#define ING_EVENT_MAX_URI 2048         /* room, user, to */
#define ING_EVENT_MAX_FILES 256
#define ING_EVENT_MAX_FILE_NAME 1024
#define ING_EVENT_MAX_SERVER 255
#define ING_EVENT_ERRLEN 256           /* enough for any reason we write */

enum ing_event_type {
	ING_EV_CHAT_JOIN = 0,
	ING_EV_CHAT_PART = 1,
	ING_EV_CHAT_POST = 2,
	ING_EV_CHAT_BACKCHAT = 3,
	ING_EV_CHAT_FILE_UPLOAD = 4,
	ING_EV_CHAT_FILE_DOWNLOAD = 5,
	ING_EV_CHAT_DELETE = 6,
	ING_EV_IM_MESSAGE = 7,
	ING_EV_IM_SESSION_START = 8,
	ING_EV_IM_SESSION_END = 9,
	ING_EV__COUNT
};

struct ing_event_file {
	char *name;
	int64_t size;     /* bytes, >= 0 */
	char sha256[65];  /* lower-case hex + NUL */
};

struct ing_event {
	char id[ING_EVENT_ID_LEN + 1];   /* "" when absent (producer assigns) */
	enum ing_event_type type;
	int64_t ts_ms;                   /* UTC ms since epoch; -1 when absent */
	char *room;                      /* NULL when absent */
	char *user;
	char *to;
	char *text;
	struct ing_event_file *files;
	size_t nfiles;
	bool has_files;                  /* "files" key present (even if empty) */
	char *source_server;             /* NULL when absent */
	int64_t source_seq;              /* valid when source_server != NULL */
};

/* Parse flags. */
enum {
	/*
	 * Producer mode: id, ts and source may be absent (the producer fills
	 * them).  Without this flag all three are required, as they are for
	 * anything read back from a queue.
	 */
	ING_PARSE_ALLOW_UNSTAMPED = 1 << 0,
};

/*
 * Parse and validate one event from buf[0..len) (no trailing newline needed;
 * a single trailing "\n" or "\r\n" is tolerated).  max_size is the largest
 * accepted len (0 means ING_EVENT_DEFAULT_MAX_SIZE).
 *
 * Returns 0 and fills *ev (which the caller later clears), or -EINVAL and
 * writes one human reason into err (e.g. "missing required field \"user\"",
 * "field \"ts\": not UTC (offset +02:00)", "event is 1048577 bytes, limit
 * 1048576", "invalid UTF-8 at byte 17").  On error *ev is left cleared.
 * Returns -ENOMEM on allocation failure.  Byte offsets in reasons count
 * from 0 at buf.  *ev is output only: whatever it held is not freed.
 */
int ing_event_parse(const char *buf, size_t len, size_t max_size, unsigned flags,
		    struct ing_event *ev, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Serialise the canonical form into a malloc'd NUL-terminated buffer
 * (*out, length *outlen, no newline).  The event must be complete (id, ts
 * and source set) and valid (ing_event_validate with no flags).  Returns 0,
 * -EINVAL if incomplete or invalid, -ENOMEM.
 */
int ing_event_serialize(const struct ing_event *ev, char **out, size_t *outlen)
	__attribute__((warn_unused_result));

/*
 * Check an event built in memory (the producer path) against the rules
 * ing_event_parse applies; flags as for parse.  Stricter in one way: id and
 * sha256 must already be lower-case (the canonical spelling), since nothing
 * normalises a struct.  Returns 0 or -EINVAL with a reason in err (err may
 * be NULL).  ing_event_serialize runs it, so it never writes an invalid
 * event.
 */
int ing_event_validate(const struct ing_event *ev, unsigned flags, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Free the members of ev and reset it to the empty state; NULL-safe. */
void ing_event_clear(struct ing_event *ev);
/* Empty state: id "", ts -1, all pointers NULL. */
void ing_event_init(struct ing_event *ev);
/* Deep copy; returns 0 or -ENOMEM.  dst is output only (not freed first);
 * on failure it is left cleared. */
int ing_event_copy(struct ing_event *dst, const struct ing_event *src)
	__attribute__((warn_unused_result));
/* Field-by-field equality (used by the round-trip tests). */
bool ing_event_equal(const struct ing_event *a, const struct ing_event *b);

/* "chat.post" … ; NULL for an invalid value. */
const char *ing_event_type_name(enum ing_event_type type);
/* Returns the type or -1. */
int ing_event_type_parse(const char *name);
static inline bool ing_event_type_is_chat(enum ing_event_type t)
{
	return t <= ING_EV_CHAT_DELETE;
}
static inline bool ing_event_type_is_im(enum ing_event_type t)
{
	return t >= ING_EV_IM_MESSAGE && t < ING_EV__COUNT;
}

/* A fresh UUIDv7 (RFC 9562) for unix time now_ms, lower-case text + NUL.
 * Random bits from getrandom(2).  Returns 0 or a negative errno. */
int ing_uuid_v7(int64_t now_ms, char out[ING_EVENT_ID_LEN + 1]);

#endif
