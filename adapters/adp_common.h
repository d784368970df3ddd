/*
 * adp_common — helpers the built-in text adapters (xml, jsonl, eml) share:
 * the event-type vocabulary, the contract check a batch passes before any
 * output is written, SIP URI and room-name helpers, grouping a batch into
 * conversations (rooms, and IM pairs), and the day-directory output layout
 * <dir>/YYYY/MM/DD with fsynced parents.
 *
 * Not part of the adapter ABI (adapter.h): third-party adapters do not see
 * it.  Pure functions and caller-owned structs; no shared state.
 */
#ifndef ADP_COMMON_H
#define ADP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

enum adp_ev_kind {
	ADP_K_JOIN, ADP_K_PART, ADP_K_POST, ADP_K_BACKCHAT, ADP_K_UPLOAD, ADP_K_DOWNLOAD,
	ADP_K_DELETE, ADP_K_IM, ADP_K_IM_START, ADP_K_IM_END,
};

struct adp_type_info {
	const char *type;      /* "chat.post", … */
	enum adp_ev_kind kind;
	bool im;               /* im.*: grouped by (user, to) instead of room */
	const char *lync;      /* Lync compliance XML Message type */
};

/* The vocabulary entry for an event type, or NULL. */
const struct adp_type_info *adp_type_info(const char *type);

/*
 * Ingest validates events, so this only trips on a contract breach; blaming
 * the one event lets the worker quarantine it and deliver the rest.
 * Checks type, user, room (chat) or to (im), files, timestamp range, and
 * with need_json the canonical json.  On a breach sets b->reason (prefixed
 * with adapter) and b->fail_staging_id and returns ADP_FAIL.
 */
enum adp_result adp_check_events(struct adp_batch *b, const char *adapter, bool need_json);

/* "sip:alice@contoso.com;x" → "alice@contoso.com;x" (URI without its scheme). */
const char *adp_sip_strip(const char *uri);
/* The address part (no parameters or headers) as a new string. */
char *adp_sip_addr(const char *uri);
/* Last non-empty path segment of a room URI ("ma-chan://d/a/b" → "b"). */
char *adp_room_name(const char *uri);

/* One conversation of a batch: a room, or an IM pair "im:<a>;<b>" (sorted). */
struct adp_conv {
	char *key;
	char *name;  /* display name */
	bool im;
	size_t *ev;  /* indices into the batch, staging order */
	size_t nev;
	size_t cap;
};

struct adp_conv_set {
	struct adp_conv *v;  /* in order of first appearance */
	size_t n;
	size_t cap;
	size_t *slots;       /* hash index: conversation index + 1, 0 = empty */
	size_t nslots;       /* power of two, > 2 * n */
};

/* Group a checked batch (adp_check_events) by conversation. */
int adp_convs_build(const struct adp_batch *b, struct adp_conv_set *cs)
	__attribute__((warn_unused_result));
void adp_convs_free(struct adp_conv_set *cs);

/* <base>/YYYY/MM/DD for the UTC day of ms. */
int adp_day_dir(const char *base, int64_t ms, char *out, size_t outlen)
	__attribute__((warn_unused_result));
/*
 * Make the day directory and fsync every parent up to the base's parent, so
 * a directory created here survives a crash together with the file in it.
 * On failure `failed` names the path that failed.
 */
int adp_make_day_dir(const char *base, const char *day, char *failed, size_t failedlen)
	__attribute__((warn_unused_result));
/* The instance name as it may appear in a file name (new string). */
char *adp_safe_name(const char *name, const char *dflt);
/* Option "dir", or <data_dir>/<type> when unset (new string). */
char *adp_resolve_dir(const struct adp_env *env, const char *type);

#endif
