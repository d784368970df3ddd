/*
 * chat_chan_rules — the decisions of the Lookup and Channel services that
 * need no state beyond their arguments, kept apart so they are unit-tested
 * (tests/unit/test_chat_chan.c): which Channel service the Lookup service
 * names, who may enter a room, whether a post is accepted, the file name
 * of a token request, and what can be salvaged from an envelope the codec
 * refused (so even a 400 names the command's envid).
 *
 * Thread-safe: no state.
 */
#ifndef CHAT_CHAN_RULES_H
#define CHAT_CHAN_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The index of the least loaded of n (> 0) services; ties go to the
 * lowest index, so an idle pool fills its first service first. */
size_t chat_chan_least_loaded(const size_t *load, size_t n);

/*
 * May a user enter (join, read the history of, get a file token for) a
 * room?  200: a public room, or a private one the user is a member,
 * manager or invitee of; 404: no such room; 403 otherwise.
 */
int chat_chan_access(bool exists, bool is_private, bool member, bool manager, bool invited);

/*
 * A post of len bytes: 413 when over its limit (story_size_limit for a
 * story, message_size_limit otherwise), then 403 when the session has not
 * joined the room, else 200.  Size first: an oversized post is refused the
 * same way wherever it is sent.
 */
int chat_chan_post_check(size_t len, bool story, int message_size_limit, int story_size_limit,
			 bool joined);

/*
 * The file name of a token request's fileUrl: its last path segment
 * ("https://x/files/g/q3.pdf" → "q3.pdf", "q3.pdf" → itself), 1..255
 * bytes, not "." or "..", without control characters, '\\' or '?'.
 * 0, or -EINVAL.
 */
int chat_chan_file_name(const char *file_url, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/*
 * Best effort on an envelope the codec refused: the first envid="DIGITS"
 * (*envid, else 0) and the first id="cmd:NAME" with NAME of [a-z] (into
 * name, else "unknown"), looked for in the first 4 KiB only.  The reply to
 * a malformed command can then still name it.
 */
void chat_chan_salvage(const char *buf, size_t len, int64_t *envid, char *name, size_t namelen);

#endif
