/*
 * fuzz_xccos — the XCCOS decoder (chat/chat_xccos.c, libexpat) on hostile
 * bytes, and the encoder on whatever the decoder accepted.
 *
 * Input: one SIP INFO body, as a client would send it (not NUL-terminated,
 * so an over-read is caught).
 *
 * Beyond "does not crash", the contract of chat_xccos.h is checked and any
 * breach is an abort():
 *   - the result is 0, 400, 413, 501 or -ENOMEM, with a non-empty reason
 *     on failure; a refused message is left cleared (501 keeps its id);
 *   - input over the size limit is 413;
 *   - accepted: the strings the decoder produced are valid for the encoder
 *     (a grpchat built from the parsed chanUri, author, ts and text encodes),
 *     and parsing that encoding gives back the same strings (round trip).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_xccos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_xccos"
#include "fuzz_check.h"

static bool streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Encode a grpchat from parsed strings and parse it back. */
static void round_trip(const struct chat_xccos_msg *m)
{
	const char *uri = m->grpchat.chan_uri ? m->grpchat.chan_uri
			  : m->chanib.uri ? m->chanib.uri : "ma-chan://d/g";
	const char *text = m->grpchat.text ? m->grpchat.text
			   : m->qib.criteria ? m->qib.criteria : "";
	struct chat_xccos_chat c = { .chan_uri = uri, .author = m->grpchat.author,
				     .ts = m->grpchat.ts, .msgid = -1, .text = text };
	struct chat_xccos_msg back;
	struct cv_buf b = { 0 };
	char err[CHAT_XCCOS_ERRLEN];
	int rc;

	CHECK(chat_xccos_env_begin(&b, m->envid) == 0);
	CHECK(chat_xccos_put_grpchat(&b, m->seqid, &c) == 0);
	CHECK(chat_xccos_env_end(&b) == 0);
	/* Escaping grows the envelope; judge only what still fits the limit
	 * (each value already passed its own limit on the way in). */
	if (b.len <= chat_xccos_default_limits.max_bytes) {
		rc = chat_xccos_parse(b.data, b.len, NULL, &back, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "fuzz_xccos: re-parse: %d %s\n", rc, err);
		CHECK(rc == 0);
		CHECK(back.kind == CHAT_XCCOS_GRPCHAT);
		CHECK(back.envid == m->envid && back.seqid == m->seqid);
		CHECK(streq(back.grpchat.chan_uri, uri));
		CHECK(streq(back.grpchat.author, m->grpchat.author));
		CHECK(streq(back.grpchat.ts, m->grpchat.ts));
		CHECK(streq(back.grpchat.text, text));
		chat_xccos_msg_clear(&back);
	}
	cv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat_xccos_msg m;
	char err[CHAT_XCCOS_ERRLEN];
	int rc;

	memset(err, 0x55, sizeof(err));
	rc = chat_xccos_parse((const char *)data, size, NULL, &m, err, sizeof(err));
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_xccos: %d %s\n", rc, rc ? err : (m.id ? m.id : ""));
	CHECK(rc == 0 || rc == 400 || rc == 413 || rc == 501 || rc == -ENOMEM);
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (size > chat_xccos_default_limits.max_bytes)
		CHECK(rc == 413);
	if (rc == 0) {
		CHECK(m.kind >= CHAT_XCCOS_CMD && m.kind <= CHAT_XCCOS_GRPCHAT);
		CHECK(m.id != NULL);
		if (m.kind == CHAT_XCCOS_CMD)
			CHECK(m.cmd != CHAT_CMD_UNKNOWN);
		for (size_t i = 0; i < m.nchanids; i++) {
			char uri[512];
			int urc = chat_xccos_chanid_uri(&m.chanids[i], uri, sizeof(uri));

			CHECK(urc == 0 || urc == -EINVAL || urc == -ENAMETOOLONG);
		}
		round_trip(&m);
	} else {
		CHECK(err[0] != '\0');
		if (rc == 501) {
			CHECK(m.id != NULL && m.cmd == CHAT_CMD_UNKNOWN);
		} else {
			CHECK(m.id == NULL && m.chanids == NULL && m.prefs == NULL &&
			      m.grpchat.text == NULL && m.resp.text == NULL);
		}
	}
	chat_xccos_msg_clear(&m);
	return 0;
}
