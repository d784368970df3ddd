/*
 * chat_msg — what chatd decides about a decoded SIP request before any
 * handler sees it: the per-message limits and the mandatory headers
 * (docs/CHAT.md "Hardening"), and the canonical address-of-record of a
 * SIP URI.  Kept apart from the event loop so the fuzz target
 * (tests/fuzz/fuzz_sip.c) runs exactly the code that meets untrusted bytes:
 * libre's sip_msg_decode(), then these.
 *
 * Thread-safe: no state beyond the arguments.
 */
#ifndef CHAT_MSG_H
#define CHAT_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <re.h>

#include "cfg_chat.h"

/* The answer to a request that fails a check; reason is the status line's
 * phrase, why the log's explanation (never request bytes). */
struct chat_refusal {
	uint16_t code;
	const char *reason;
	const char *why;
};

/*
 * 0: the request may go to its handler.  -1: refused, *r says how.
 * Checks, in order: size (513), header count (400), From/To/Call-ID/CSeq
 * present (400), CSeq method = request method (400), Max-Forwards 0 (483),
 * Content-Length agrees with the body (400; required on TCP).
 */
int chat_msg_check(const struct sip_msg *msg, const struct cfg_chat *cc, struct chat_refusal *r);

/* Canonical URI of a SIP address ("sip:user@host", lower case) into out;
 * 0 or -EINVAL (not sip:, no user or host, too long, not canonicalisable). */
int chat_aor_of(const struct uri *u, char *out, size_t outlen);

#endif
