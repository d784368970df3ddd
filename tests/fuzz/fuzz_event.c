/*
 * fuzz_event — the v1 event parser (ingest/event.c) on hostile bytes.
 *
 * Input: one candidate event line, as a producer or a queue would hand it
 * to ing_event_parse() (not NUL-terminated, so an over-read is caught).
 * Parsed in both modes: stamped (what the consumer requires) and
 * ING_PARSE_ALLOW_UNSTAMPED (what `emit` accepts).
 *
 * Beyond "does not crash", the contract of event.h is checked and any
 * breach is an abort():
 *   - accepted: serialise(parse(x)) succeeds for a complete event, parses
 *     back (stamped) to an equal event, and serialising that again gives
 *     the same bytes (the canonical form is a fixed point); an input the
 *     stamped mode accepts, the unstamped mode accepts too;
 *   - refused: -EINVAL or -ENOMEM, the event is left cleared, and the
 *     reason is one non-empty line of valid UTF-8 (it is stored in the
 *     quarantine table's text column), also when err is short.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_event"
#include "fuzz_check.h"

/* One line of well-formed UTF-8 (structure only; event.c checks ranges). */
static int is_one_utf8_line(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t need;

		if (*p < 0x20 || *p == 0x7F)
			return 0;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xC2 && *p < 0xE0)
			need = 1;
		else if (*p >= 0xE0 && *p < 0xF0)
			need = 2;
		else if (*p >= 0xF0 && *p < 0xF5)
			need = 3;
		else
			return 0;
		for (p++; need > 0; need--, p++)
			if ((*p & 0xC0) != 0x80)
				return 0;
	}
	return 1;
}

static int is_cleared(const struct ing_event *ev)
{
	return ev->id[0] == '\0' && ev->ts_ms == -1 && !ev->room && !ev->user && !ev->to &&
	       !ev->text && !ev->files && ev->nfiles == 0 && !ev->has_files &&
	       !ev->source_server;
}

/* Parse, check the outcome against the contract; returns the parse result. */
static int one_mode(const uint8_t *data, size_t size, unsigned flags, size_t errlen)
{
	char err[ING_EVENT_ERRLEN], *out = NULL, *again = NULL;
	struct ing_event ev, back;
	size_t outlen = 0, againlen = 0;
	int rc, src;

	memset(err, 0x55, sizeof(err));
	rc = ing_event_parse((const char *)data, size, 0, flags, &ev, err, errlen);
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_event: flags %u: %d%s%.*s\n", flags, rc, rc ? ": " : "",
			rc ? (int)errlen : 0, err);
	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(is_cleared(&ev));
		CHECK(memchr(err, '\0', errlen) != NULL);
		CHECK(errlen == 1 || err[0] != '\0');
		CHECK(is_one_utf8_line(err));
		return rc;
	}

	src = ing_event_serialize(&ev, &out, &outlen);
	if (!(flags & ING_PARSE_ALLOW_UNSTAMPED))
		CHECK(src == 0);
	else if (src != 0)   /* only an unstamped event may not serialise */
		CHECK(src == -EINVAL && (!ev.id[0] || ev.ts_ms == -1 || !ev.source_server));
	if (src == 0) {
		CHECK(outlen == strlen(out));
		CHECK(ing_event_parse(out, outlen, 0, 0, &back, err, sizeof(err)) == 0);
		CHECK(ing_event_equal(&ev, &back));
		CHECK(ing_event_serialize(&back, &again, &againlen) == 0);
		CHECK(againlen == outlen && memcmp(again, out, outlen) == 0);
		ing_event_clear(&back);
	}
	free(again);
	free(out);
	ing_event_clear(&ev);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A short err on the second pass exercises the cut-and-sanitise path. */
	size_t short_err = 1 + size % 48;
	int stamped;

	stamped = one_mode(data, size, 0, ING_EVENT_ERRLEN);
	if (one_mode(data, size, ING_PARSE_ALLOW_UNSTAMPED, short_err) != 0)
		CHECK(stamped != 0);
	return 0;
}
