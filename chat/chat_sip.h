/*
 * chat_sip — the pure logic of chatd, kept apart from the event loop so it
 * can be unit-tested (tests/unit/test_chat_sip.c) and fuzzed:
 *
 *   - digest nonces bound to time and an HMAC-SHA256 under a per-process
 *     random secret (no server state per challenge; a nonce from another
 *     process or an altered one fails, an old one is "stale");
 *   - RFC 2617 / 7616 digest response check from a stored HA1 (MD5);
 *   - the IM session-limit decision of the BlackBerry Collaboration Service
 *     (seed 000/001): admit, admit after logging idle sessions out, "Server
 *     Busy", "Failed";
 *   - Contact parameter helpers (mobile registrations) and the per-message
 *     limits (size, header count).
 *
 * Thread-safe: no state beyond the arguments.
 */
#ifndef CHAT_SIP_H
#define CHAT_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT_SECRET_LEN 32
#define CHAT_NONCE_LEN 64          /* 16 hex time + 16 hex salt + 32 hex MAC, no NUL */
#define CHAT_NONCE_TTL_MS 300000  /* older nonces are answered with stale=true */
#define CHAT_NONCE_SKEW_MS 5000   /* a nonce this far "ahead" is still ours */

/* Times are wall-clock milliseconds (nonces outlive no process, but the
 * clock may be stepped: SKEW tolerates a small step back).
 * nonce = hex64(t) hex64(salt) hex(HMAC-SHA256(secret, hex64(t) hex64(salt) ":" realm))[0..32)
 * salt: random per challenge (the caller's), so two challenges in the same
 * second differ and the nonce-count window below can tell clients apart. */
void chat_nonce_make(const uint8_t secret[CHAT_SECRET_LEN], const char *realm, uint64_t now_ms,
		     uint64_t salt, char out[CHAT_NONCE_LEN + 1]);

enum chat_nonce_check {
	CHAT_NONCE_OK = 0,
	CHAT_NONCE_STALE = 1,      /* ours, but older than the TTL: new challenge, stale=true */
	CHAT_NONCE_BAD = 2,        /* not ours (or from the future): new challenge */
};
enum chat_nonce_check chat_nonce_check(const uint8_t secret[CHAT_SECRET_LEN], const char *realm,
				       const char *nonce, size_t len, uint64_t now_ms);

/*
 * Digest response of RFC 2617 §3.2.2.1 (qop absent or "auth"):
 *   HA2 = MD5(method ":" uri)
 *   response = MD5(HA1 ":" nonce ":" HA2)                              no qop
 *            = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)     qop=auth
 * All strings are (pointer, length) as they appear in the header.  Returns
 * true when resp (32 hex digits, either case) matches, compared in constant
 * time.  qop other than absent/"auth" is refused (false).
 */
struct chat_str {
	const char *p;
	size_t l;
};
bool chat_digest_ok(const char *ha1_hex, struct chat_str method, struct chat_str uri,
		    struct chat_str nonce, struct chat_str nc, struct chat_str cnonce,
		    struct chat_str qop, struct chat_str resp);

/*
 * Nonce-count replay window (RFC 7616 §3.3/§5.12): per nonce, the highest
 * nc accepted.  A response whose nc is not above it is a replay (or a client
 * that reuses nc); the answer is a fresh challenge with stale=true, which a
 * real client follows and a replay cannot.  Without qop there is no nc: such
 * a nonce is good for one request.
 *
 * The table is bounded (CHAT_NC_SETS × CHAT_NC_WAYS nonces): when a set is
 * full the entry with the oldest nonce is dropped and its time remembered;
 * an unknown nonce not newer than that is treated as a replay too (it may
 * have been dropped), so eviction never reopens the window — it costs at
 * most a re-challenge.  Nonce times are in milliseconds, so that only
 * happens to a challenge answered later than the oldest nonce of its set was
 * issued: with 4096 slots, not before thousands of sign-ins per second.  Entries past CHAT_NONCE_TTL_MS are stale anyway and
 * are reused freely.  Call only after chat_nonce_check() said OK and the
 * digest was right, so forged requests cannot fill the table.
 */
#define CHAT_NC_SETS 1024
#define CHAT_NC_WAYS 4
struct chat_nc_table {
	struct {
		char nonce[CHAT_NONCE_LEN];
		uint64_t t;            /* the nonce's time; 0 = free */
		uint32_t nc;
	} e[CHAT_NC_SETS][CHAT_NC_WAYS];
	uint64_t evicted_t;            /* newest nonce time ever dropped live */
};
enum chat_nc_check {
	CHAT_NC_OK = 0,
	CHAT_NC_REPLAY = 1,    /* nc not above the last one for this nonce */
	CHAT_NC_BAD = 2,       /* nc present but not 8 hex digits, or 0 */
};
/* nonce: one of ours (CHAT_NONCE_LEN bytes); nc: as in the header, or empty. */
enum chat_nc_check chat_nc_accept(struct chat_nc_table *t, const char *nonce, size_t len,
				  struct chat_str nc, uint64_t now_ms);

/* The session-limit decision at a new sign-in (docs/CHAT.md "Limits"). */
enum chat_admit {
	CHAT_ADMIT = 0,            /* room for it */
	CHAT_ADMIT_EVICT = 1,      /* at the maximum: log out `evict` idle sessions first */
	CHAT_BUSY = 2,             /* at the maximum, nobody idle: 503 "Server Busy" */
	CHAT_FAILED = 3,           /* no maximum set, server capacity exhausted: 503 "Failed" */
};
/* active: sessions now; max: im.max_sessions (0 = none); capacity: the
 * server's own bound (chat.max_connections); idle: sessions idle past
 * im.idle_timeout.  *evict: how many to log out for CHAT_ADMIT_EVICT. */
enum chat_admit chat_admit_decide(size_t active, size_t max, size_t capacity, size_t idle,
				  size_t *evict);

/* Is there a parameter mobility="mobile" (or mobility=mobile) among the
 * Contact header's params ";a=b;c"?  Case-insensitive name and value. */
bool chat_contact_is_mobile(const char *params, size_t len);

/* Count header fields (lines up to the blank line) in a raw SIP message,
 * stopping at max + 1; folded continuation lines are not counted. */
size_t chat_count_headers(const char *buf, size_t len, size_t max);

/* JSON string escaping for the push document: dst gets at most dstlen - 1
 * bytes and is NUL-terminated; returns false when it did not fit. */
bool chat_json_escape(const char *src, size_t len, char *dst, size_t dstlen);

/* XML text escaping (& < > " ') with the same contract. */
bool chat_xml_escape(const char *src, size_t len, char *dst, size_t dstlen);

#endif
