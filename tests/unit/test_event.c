/*
 * test_event — cmocka tests for ingest/event.c, the v1 event contract
 * (design.md §2 "Event").
 *
 * What a user would notice: a bad event is refused with a reason that names
 * the field (a table of malformed inputs, each with the words it must
 * produce); a good one round-trips to canonical bytes that never change;
 * our serialiser writes exactly what jansson would; producer-mode
 * (ALLOW_UNSTAMPED) events get ids that are real UUIDv7s.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cv_time.h"
#include "event.h"

/* ---- building blocks for literal events --------------------------------- */

#define ID_S "0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11"
#define SHA_S "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define ID "\"id\":\"" ID_S "\""
#define TS "\"ts\":\"2026-11-21T10:00:00.123Z\""
#define ROOM "\"room\":\"ma-chan://contoso.com/5c1d\""
#define USER "\"user\":\"sip:alice@contoso.com\""
#define TO "\"to\":\"sip:bob@contoso.com\""
#define SRC "\"source\":{\"server\":\"chat01\",\"seq\":18342}"
#define FILE1 "{\"name\":\"q3.pdf\",\"size\":48213,\"sha256\":\"" SHA_S "\"}"

/* chat.post with text spliced in: TEXT("\"hello\"") */
#define POST_TEXT(t) \
	"{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER ",\"text\":" t "," SRC "}"
/* chat.post with the user value spliced in. */
#define POST_USER(u) \
	"{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM ",\"user\":" u \
	",\"text\":\"hi\"," SRC "}"
/* chat.post with the room value spliced in. */
#define POST_ROOM(r) \
	"{\"v\":1," ID ",\"type\":\"chat.post\"," TS ",\"room\":" r "," USER \
	",\"text\":\"hi\"," SRC "}"
/* chat.post with the ts value spliced in. */
#define POST_TS(t) \
	"{\"v\":1," ID ",\"type\":\"chat.post\",\"ts\":" t "," ROOM "," USER \
	",\"text\":\"hi\"," SRC "}"
/* chat.post with the id value spliced in. */
#define POST_ID(i) \
	"{\"v\":1,\"id\":" i ",\"type\":\"chat.post\"," TS "," ROOM "," USER \
	",\"text\":\"hi\"," SRC "}"
/* chat.post with the type value spliced in. */
#define WITH_TYPE(t) \
	"{\"v\":1," ID ",\"type\":" t "," TS "," ROOM "," USER ",\"text\":\"hi\"," SRC "}"
/* chat.post with extra members appended before source. */
#define POST_PLUS(x) \
	"{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER ",\"text\":\"hi\"" x \
	"," SRC "}"
/* chat.post with the source value spliced in. */
#define POST_SRC(s) \
	"{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER \
	",\"text\":\"hi\",\"source\":" s "}"
/* chat.file.upload with the files value spliced in. */
#define UPLOAD(f) \
	"{\"v\":1," ID ",\"type\":\"chat.file.upload\"," TS "," ROOM "," USER \
	",\"files\":" f "," SRC "}"
/* im.message with the to member spliced in (with its key, or nothing). */
#define IM(to) \
	"{\"v\":1," ID ",\"type\":\"im.message\"," TS "," USER to ",\"text\":\"hi\"," SRC "}"

#define GOOD POST_TEXT("\"hello\"")

/* The design.md example, made complete: already canonical. */
static const char canonical_example[] =
	"{\"v\":1,\"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\",\"type\":\"chat.file.upload\","
	"\"ts\":\"2026-11-21T10:00:00.123Z\",\"room\":\"ma-chan://contoso.com/5c1d\","
	"\"user\":\"sip:alice@contoso.com\",\"text\":\"hello\",\"files\":[" FILE1 "],"
	"\"source\":{\"server\":\"chat01\",\"seq\":18342}}";

/* ---- helpers ---------------------------------------------------------- */

static bool is_cleared(const struct ing_event *ev)
{
	return ev->id[0] == '\0' && ev->ts_ms == -1 && !ev->room && !ev->user && !ev->to &&
	       !ev->text && !ev->files && ev->nfiles == 0 && !ev->has_files &&
	       !ev->source_server;
}

/* An error must be one printable line starting lower-case. */
static void assert_good_reason(const char *err)
{
	assert_true(strlen(err) > 0);
	assert_true(strlen(err) < ING_EVENT_ERRLEN);
	assert_true(err[0] >= 'a' && err[0] <= 'z');
	for (const unsigned char *p = (const unsigned char *)err; *p; p++)
		assert_true(*p >= 0x20 && *p != 0x7F);
}

static void parse_ok_n(const char *buf, size_t len, unsigned flags, struct ing_event *ev)
{
	char err[ING_EVENT_ERRLEN] = "";
	int rc = ing_event_parse(buf, len, 0, flags, ev, err, sizeof(err));

	if (rc != 0)
		fail_msg("refused (%d): %s\ninput: %.*s", rc, err, (int)len, buf);
}

static void parse_ok(const char *buf, unsigned flags, struct ing_event *ev)
{
	parse_ok_n(buf, strlen(buf), flags, ev);
}

static void expect_err_n(const char *buf, size_t len, size_t max, unsigned flags,
			 const char *want)
{
	char err[ING_EVENT_ERRLEN] = "";
	struct ing_event ev;
	int rc = ing_event_parse(buf, len, max, flags, &ev, err, sizeof(err));

	if (rc != -EINVAL) {
		if (rc == 0)
			ing_event_clear(&ev);
		fail_msg("accepted (rc %d), want \"%s\"\ninput: %.*s", rc, want, (int)len, buf);
	}
	if (!strstr(err, want))
		fail_msg("reason \"%s\" lacks \"%s\"\ninput: %.*s", err, want, (int)len, buf);
	assert_good_reason(err);
	assert_true(is_cleared(&ev));
}

static void expect_err(const char *buf, unsigned flags, const char *want)
{
	expect_err_n(buf, strlen(buf), 0, flags, want);
}

static char *serialize_ok(const struct ing_event *ev, size_t *len)
{
	char *out = NULL;
	size_t n = 0;

	assert_int_equal(ing_event_serialize(ev, &out, &n), 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), n);
	if (len)
		*len = n;
	return out;
}

/* parse → serialise, the result must equal want byte for byte. */
static void assert_canonical(const char *in, const char *want)
{
	struct ing_event ev;
	char *out;
	size_t n;

	parse_ok(in, 0, &ev);
	out = serialize_ok(&ev, &n);
	if (strcmp(out, want) != 0)
		fail_msg("canonical form\n got: %s\nwant: %s", out, want);
	assert_int_equal(n, strlen(want));
	free(out);
	ing_event_clear(&ev);
}

/*
 * Independent oracle: the same event as a jansson tree dumped with
 * JSON_COMPACT | JSON_PRESERVE_ORDER, which is what event.h promises the
 * canonical bytes are.
 */
static char *jansson_dump(const struct ing_event *ev)
{
	char ts[CV_TIME_BUFSZ];
	json_t *o = json_object(), *src;
	char *s;

	assert_int_equal(cv_time_format_ms(ev->ts_ms, ts), 0);
	json_object_set_new(o, "v", json_integer(1));
	json_object_set_new(o, "id", json_string(ev->id));
	json_object_set_new(o, "type", json_string(ing_event_type_name(ev->type)));
	json_object_set_new(o, "ts", json_string(ts));
	if (ev->room)
		json_object_set_new(o, "room", json_string(ev->room));
	json_object_set_new(o, "user", json_string(ev->user));
	if (ev->to)
		json_object_set_new(o, "to", json_string(ev->to));
	if (ev->text)
		json_object_set_new(o, "text", json_string(ev->text));
	if (ev->has_files) {
		json_t *a = json_array();

		for (size_t i = 0; i < ev->nfiles; i++)
			json_array_append_new(a, json_pack("{s:s,s:I,s:s}", "name",
							   ev->files[i].name, "size",
							   (json_int_t)ev->files[i].size,
							   "sha256", ev->files[i].sha256));
		json_object_set_new(o, "files", a);
	}
	src = json_pack("{s:s,s:I}", "server", ev->source_server, "seq",
			(json_int_t)ev->source_seq);
	json_object_set_new(o, "source", src);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	assert_non_null(s);
	return s;
}

/* A complete chat.post built in C, no parsing involved. */
static void make_post(struct ing_event *ev, const char *text)
{
	ing_event_init(ev);
	strcpy(ev->id, ID_S);
	ev->type = ING_EV_CHAT_POST;
	ev->ts_ms = 1795255200123;
	ev->room = strdup("ma-chan://contoso.com/5c1d");
	ev->user = strdup("sip:alice@contoso.com");
	ev->text = strdup(text);
	ev->source_server = strdup("chat01");
	ev->source_seq = 18342;
	assert_non_null(ev->room);
	assert_non_null(ev->user);
	assert_non_null(ev->text);
	assert_non_null(ev->source_server);
}

/* ---- the table of malformed inputs ------------------------------------- */

struct bad_case {
	const char *in;
	unsigned flags;
	const char *want;
};

static const struct bad_case bad_cases[] = {
	/* framing */
	{ "", 0, "empty event" },
	{ "\n", 0, "empty event" },
	{ "\r\n", 0, "empty event" },
	{ "[]", 0, "event is not a JSON object" },
	{ "\"chat.post\"", 0, "event is not a JSON object" },
	{ "null", 0, "event is not a JSON object" },
	{ "\xef\xbb\xbf" GOOD, 0, "event is not a JSON object" },
	{ " " GOOD, 0, "whitespace before the event object" },
	{ GOOD " ", 0, "trailing whitespace after the event object" },
	{ GOOD "\t\n", 0, "trailing whitespace after the event object" },
	{ GOOD "\n\n", 0, "trailing whitespace after the event object" },
	{ GOOD "\r", 0, "trailing whitespace after the event object" },
	{ GOOD "\n\r\n", 0, "trailing whitespace after the event object" },
	{ POST_PLUS(",\r\"to\":\"sip:a@b\""), 0, "line break inside the event at byte" },
	{ "{\"v\":1,\n" ID "}", 0, "line break inside the event at byte 7" },
	{ GOOD "x", 0, "trailing data after the event object" },
	{ GOOD "{}", 0, "trailing data after the event object" },
	{ GOOD GOOD, 0, "trailing data after the event object" },
	/* JSON grammar (jansson's words, our prefix) */
	{ "{\"v\":1,", 0, "invalid JSON: " },
	{ "{\"v\":1 \"type\":\"chat.post\"}", 0, "invalid JSON: " },
	{ "{'v':1}", 0, "invalid JSON: " },
	{ "{\"v\":NaN}", 0, "field \"v\": invalid JSON: " },
	{ "{\"v\":1 /* c */}", 0, "invalid JSON: " },
	{ "{\"v\":01}", 0, "field \"v\": invalid JSON: " },
	{ POST_TEXT("\"a\\qb\""), 0, "field \"text\": invalid JSON: " },
	{ POST_TEXT("\"\\ud800\""), 0, "field \"text\": invalid JSON: invalid Unicode '\\uD800'" },
	{ POST_TEXT("\"x\\udc00y\""), 0, "field \"text\": invalid JSON: invalid Unicode" },
	{ POST_TEXT("\"\\ud83dx\""), 0, "field \"text\": invalid JSON: invalid Unicode" },
	{ POST_TEXT("\"a\\u0000b\""), 0, "field \"text\": invalid JSON: \\u0000 is not allowed" },
	{ POST_TEXT("\"a\x01z\""), 0, "field \"text\": invalid JSON: control character 0x1" },
	{ POST_TEXT("\"a\tz\""), 0, "field \"text\": invalid JSON: control character 0x9" },
	{ POST_SRC("{\"server\":\"chat01\",\"seq\":99999999999999999999}"), 0,
	  "field \"source\": invalid JSON: too big integer" },
	{ "{\"v\":1,\"v\":1}", 0, "duplicate field \"v\"" },
	{ POST_PLUS(",\"text\":\"again\""), 0, "duplicate field \"text\"" },
	{ POST_SRC("{\"server\":\"a\",\"seq\":1,\"seq\":2}"), 0,
	  "field \"source\": duplicate key \"seq\"" },
	/* strict UTF-8, checked before jansson */
	{ POST_TEXT("\"\xc0\xaf\""), 0, "field \"text\": invalid UTF-8 at byte" },
	{ POST_TEXT("\"\xc1\xbf\""), 0, "(overlong encoding)" },
	{ POST_TEXT("\"\xe0\x80\xaf\""), 0, "(overlong encoding)" },
	{ POST_TEXT("\"\xe0\x9f\xbf\""), 0, "(overlong encoding)" },
	{ POST_TEXT("\"\xf0\x80\x80\xaf\""), 0, "(overlong encoding)" },
	{ POST_TEXT("\"\xf0\x8f\xbf\xbf\""), 0, "(overlong encoding)" },
	{ POST_TEXT("\"\xed\xa0\x80\""), 0, "(UTF-16 surrogate)" },
	{ POST_TEXT("\"\xed\xbf\xbf\""), 0, "(UTF-16 surrogate)" },
	{ POST_TEXT("\"\xed\xa0\xbd\xed\xb8\x80\""), 0, "(UTF-16 surrogate)" },
	{ POST_TEXT("\"\xf4\x90\x80\x80\""), 0, "(code point above U+10FFFF)" },
	{ POST_TEXT("\"\xf5\x80\x80\x80\""), 0, "(code point above U+10FFFF)" },
	{ POST_TEXT("\"\xf7\xbf\xbf\xbf\""), 0, "(code point above U+10FFFF)" },
	{ POST_TEXT("\"\xf8\x88\x80\x80\x80\""), 0, "(invalid byte)" },
	{ POST_TEXT("\"\xff\""), 0, "(invalid byte)" },
	{ POST_TEXT("\"\x80\""), 0, "(unexpected continuation byte)" },
	{ POST_TEXT("\"a\xbf\""), 0, "(unexpected continuation byte)" },
	{ POST_TEXT("\"\xe2\x82\""), 0, "(truncated sequence)" },
	{ POST_TEXT("\"\xc3\""), 0, "(truncated sequence)" },
	{ POST_TEXT("\"\xf0\x9f\x98\""), 0, "(truncated sequence)" },
	{ "{\"v\":1,\"x\xe2\x82", 0, "invalid UTF-8 at byte 9 (truncated sequence)" },
	{ "{\"\xc3\x28\":1}", 0, "invalid UTF-8 at byte 2 (truncated sequence)" },
	/* unknown fields */
	{ POST_PLUS(",\"x\":1"), 0, "unknown field \"x\"" },
	{ POST_PLUS(",\"Text\":\"hi\""), 0, "unknown field \"Text\"" },
	{ POST_PLUS(",\"\":1"), 0, "unknown field \"\"" },
	{ POST_SRC("{\"server\":\"chat01\",\"seq\":1,\"host\":\"x\"}"), 0,
	  "unknown field \"source.host\"" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1,\"sha256\":\"" SHA_S "\",\"mime\":\"x\"}]"), 0,
	  "unknown field \"files[0].mime\"" },
	/* v */
	{ "{" ID ",\"type\":\"chat.post\"}", 0, "missing required field \"v\"" },
	{ "{\"v\":2}", 0, "field \"v\": unsupported version 2" },
	{ "{\"v\":0}", 0, "field \"v\": unsupported version 0" },
	{ "{\"v\":-1}", 0, "field \"v\": unsupported version -1" },
	{ "{\"v\":\"1\"}", 0, "field \"v\": must be an integer, not a string" },
	{ "{\"v\":1.0}", 0, "field \"v\": must be an integer, not a number" },
	{ "{\"v\":true}", 0, "field \"v\": must be an integer, not a boolean" },
	{ "{\"v\":null}", 0, "field \"v\": must be an integer, not null" },
	/* id */
	{ "{\"v\":1,\"type\":\"chat.post\"}", 0, "missing required field \"id\"" },
	{ POST_ID("\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e1\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e111\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"0192f0c46c1e7d3a9b1e2f6a5c0d9e11\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"{0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e}\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e1g\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"0192f0c4+6c1e-7d3a-9b1e-2f6a5c0d9e11\""), 0, "field \"id\": not a UUID" },
	{ POST_ID("\"\""), ING_PARSE_ALLOW_UNSTAMPED, "field \"id\": not a UUID" },
	{ POST_ID("42"), 0, "field \"id\": must be a string, not an integer" },
	{ POST_ID("null"), ING_PARSE_ALLOW_UNSTAMPED, "field \"id\": must be a string, not null" },
	/* type */
	{ "{\"v\":1," ID "," TS "}", 0, "missing required field \"type\"" },
	{ WITH_TYPE("\"chat.foo\""), 0, "field \"type\": unknown event type \"chat.foo\"" },
	{ WITH_TYPE("\"Chat.Post\""), 0, "field \"type\": unknown event type \"Chat.Post\"" },
	{ WITH_TYPE("\"chat.post \""), 0, "field \"type\": unknown event type" },
	{ WITH_TYPE("\"chat\""), 0, "field \"type\": unknown event type \"chat\"" },
	{ WITH_TYPE("\"\""), 0, "field \"type\": unknown event type \"\"" },
	{ WITH_TYPE("\"a\\\"b\""), 0, "field \"type\": unknown event type \"a\\\"b\"" },
	{ WITH_TYPE("\"0123456789012345678901234567890123456789xyz\""), 0,
	  "unknown event type \"0123456789012345678901234567890123456789\"..." },
	{ WITH_TYPE("2"), 0, "field \"type\": must be a string, not an integer" },
	/* ts */
	{ "{\"v\":1," ID ",\"type\":\"chat.post\"," ROOM "}", 0, "missing required field \"ts\"" },
	{ POST_TS("\"2026-11-21T12:00:00.123+02:00\""), 0, "field \"ts\": not UTC (offset +02:00)" },
	{ POST_TS("\"2026-11-21T10:00:00.123+00:00\""), 0, "field \"ts\": not UTC (offset +00:00" },
	{ POST_TS("\"2026-11-21T10:00:00.123\""), 0, "field \"ts\": missing time zone" },
	{ POST_TS("\"2026-11-21 10:00:00.123Z\""), 0, "field \"ts\": date and time must be" },
	{ POST_TS("\"2026-11-31T10:00:00Z\""), 0, "field \"ts\": day 31 out of range for 2026-11" },
	{ POST_TS("\"2026-02-29T10:00:00Z\""), 0, "field \"ts\": day 29 out of range" },
	{ POST_TS("\"2026-11-21T10:00:60Z\""), 0, "field \"ts\": leap second" },
	{ POST_TS("\"1969-12-31T23:59:59.999Z\""), 0, "field \"ts\": year 1969 out of range" },
	{ POST_TS("\"2026-11-21T10:00:00.1234567891Z\""), 0, "field \"ts\": fraction longer" },
	{ POST_TS("\"2026-11-21\""), 0, "field \"ts\": missing time" },
	{ POST_TS("\"\""), 0, "field \"ts\": empty timestamp" },
	{ POST_TS("1795255200123"), 0, "field \"ts\": must be a string, not an integer" },
	/* user */
	{ "{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM ",\"text\":\"x\"," SRC "}", 0,
	  "missing required field \"user\"" },
	{ "{\"v\":1,\"type\":\"im.session.end\"," TO "}", ING_PARSE_ALLOW_UNSTAMPED,
	  "missing required field \"user\"" },
	{ POST_USER("\"alice@contoso.com\""), 0, "field \"user\": not a SIP URI" },
	{ POST_USER("\"tel:+15551234\""), 0, "field \"user\": not a SIP URI" },
	{ POST_USER("\"SIP:alice@contoso.com\""), 0, "field \"user\": not a SIP URI" },
	{ POST_USER("\"sip:\""), 0, "field \"user\": not a SIP URI" },
	{ POST_USER("\"sips:\""), 0, "field \"user\": not a SIP URI" },
	{ POST_USER("\"sip:alice\""), 0, "field \"user\": SIP URI must be sip:user@domain" },
	{ POST_USER("\"sip:@contoso.com\""), 0, "field \"user\": SIP URI must be sip:user@domain" },
	{ POST_USER("\"sip:alice@\""), 0, "field \"user\": SIP URI must be sip:user@domain" },
	{ POST_USER("\"sip:alice smith@contoso.com\""), 0, "field \"user\": space in URI" },
	{ POST_USER("\"sip:alice@contoso.com\\u0001\""), 0, "field \"user\": control character" },
	{ POST_USER("\"sip:alice@contoso.com\\u007f\""), 0, "field \"user\": control character" },
	{ POST_USER("\"sip:alice@contoso.com\\u0085\""), 0, "field \"user\": control character" },
	{ POST_USER("\"\""), 0, "field \"user\": must not be empty" },
	{ POST_USER("[\"sip:a@b\"]"), 0, "field \"user\": must be a string, not an array" },
	{ POST_USER("{}"), 0, "field \"user\": must be a string, not an object" },
	/* room */
	{ "{\"v\":1," ID ",\"type\":\"chat.join\"," TS "," USER "," SRC "}", 0,
	  "missing required field \"room\"" },
	{ POST_ROOM("\"contoso\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\"1abc:x\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\"Ma-chan://x\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\"ma_chan://x\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\"ma-chan:\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\":x\""), 0, "field \"room\": not a URI" },
	{ POST_ROOM("\"ma-chan://contoso.com/a b\""), 0, "field \"room\": space in URI" },
	{ POST_ROOM("\"ma-chan://x\\n\""), 0, "field \"room\": control character" },
	{ POST_ROOM("\"\""), 0, "field \"room\": must not be empty" },
	{ POST_ROOM("7"), 0, "field \"room\": must be a string, not an integer" },
	{ IM("," TO ",\"room\":null"), 0, "field \"room\": must be a string, not null" },
	/* to */
	{ IM(""), 0, "missing required field \"to\"" },
	{ "{\"v\":1," ID ",\"type\":\"im.session.start\"," TS "," USER "," SRC "}", 0,
	  "missing required field \"to\"" },
	{ IM(",\"to\":\"bob@contoso.com\""), 0, "field \"to\": not a SIP URI" },
	{ IM(",\"to\":\"sip:bob\""), 0, "field \"to\": SIP URI must be sip:user@domain" },
	{ IM(",\"to\":[]"), 0, "field \"to\": must be a string, not an array" },
	{ POST_PLUS(",\"to\":5"), 0, "field \"to\": must be a string, not an integer" },
	{ POST_PLUS(",\"to\":\"bob\""), 0, "field \"to\": not a SIP URI" },
	/* text */
	{ "{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER "," SRC "}", 0,
	  "missing required field \"text\"" },
	{ "{\"v\":1," ID ",\"type\":\"im.message\"," TS "," USER "," TO "," SRC "}", 0,
	  "missing required field \"text\"" },
	{ POST_TEXT("\"\""), 0, "field \"text\": must not be empty for chat.post" },
	{ IM("," TO ",\"text\":\"\""), 0, "duplicate field \"text\"" },
	{ POST_TEXT("5"), 0, "field \"text\": must be a string, not an integer" },
	{ POST_TEXT("true"), 0, "field \"text\": must be a string, not a boolean" },
	{ POST_TEXT("null"), 0, "field \"text\": must be a string, not null" },
	/* files */
	{ "{\"v\":1," ID ",\"type\":\"chat.file.upload\"," TS "," ROOM "," USER "," SRC "}", 0,
	  "missing required field \"files\"" },
	{ "{\"v\":1," ID ",\"type\":\"chat.file.download\"," TS "," ROOM "," USER "," SRC "}",
	  0, "missing required field \"files\"" },
	{ UPLOAD("[]"), 0, "field \"files\": must not be empty for chat.file.upload" },
	{ UPLOAD("{}"), 0, "field \"files\": must be an array, not an object" },
	{ POST_PLUS(",\"files\":null"), 0, "field \"files\": must be an array, not null" },
	{ UPLOAD("[\"q3.pdf\"]"), 0, "field \"files[0]\": must be an object, not a string" },
	{ UPLOAD("[" FILE1 ",7]"), 0, "field \"files[1]\": must be an object, not an integer" },
	{ UPLOAD("[{\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "missing required field \"files[0].name\"" },
	{ UPLOAD("[{\"name\":\"a\",\"sha256\":\"" SHA_S "\"}]"), 0,
	  "missing required field \"files[0].size\"" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1}]"), 0,
	  "missing required field \"files[0].sha256\"" },
	{ UPLOAD("[{\"name\":\"\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": must not be empty" },
	{ UPLOAD("[{\"name\":\"a/b\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": must not contain '/'" },
	{ UPLOAD("[{\"name\":\"a\\/b\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": must not contain '/'" },
	{ UPLOAD("[{\"name\":\"a\\u0007\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": control character" },
	{ UPLOAD("[{\"name\":\"..\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": must not be \".\" or \"..\"" },
	{ UPLOAD("[{\"name\":5,\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].name\": must be a string, not an integer" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":-1,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].size\": must be >= 0" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1.5,\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].size\": must be an integer, not a number" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":\"1\",\"sha256\":\"" SHA_S "\"}]"), 0,
	  "field \"files[0].size\": must be an integer, not a string" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1,\"sha256\":\"abc\"}]"), 0,
	  "field \"files[0].sha256\": want 64 hex digits" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1,\"sha256\":\"" SHA_S "0\"}]"), 0,
	  "field \"files[0].sha256\": want 64 hex digits" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1,\"sha256\":"
		 "\"g86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]"),
	  0, "field \"files[0].sha256\": want 64 hex digits" },
	{ UPLOAD("[{\"name\":\"a\",\"size\":1,\"sha256\":null}]"), 0,
	  "field \"files[0].sha256\": must be a string, not null" },
	/* source */
	{ "{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER ",\"text\":\"x\"}", 0,
	  "missing required field \"source\"" },
	{ POST_SRC("\"chat01\""), 0, "field \"source\": must be an object, not a string" },
	{ POST_SRC("{\"seq\":1}"), 0, "missing required field \"source.server\"" },
	{ POST_SRC("{\"server\":\"chat01\"}"), 0, "missing required field \"source.seq\"" },
	{ POST_SRC("{\"server\":\"\",\"seq\":1}"), 0,
	  "field \"source.server\": length 0 out of range 1..255" },
	{ POST_SRC("{\"server\":\"chat/01\",\"seq\":1}"), 0,
	  "field \"source.server\": only A-Z a-z 0-9 . _ - allowed" },
	{ POST_SRC("{\"server\":\"chat 01\",\"seq\":1}"), 0, "field \"source.server\": only" },
	{ POST_SRC("{\"server\":\"chät\",\"seq\":1}"), 0, "field \"source.server\": only" },
	{ POST_SRC("{\"server\":1,\"seq\":1}"), 0,
	  "field \"source.server\": must be a string, not an integer" },
	{ POST_SRC("{\"server\":\"chat01\",\"seq\":-1}"), 0, "field \"source.seq\": must be >= 0" },
	{ POST_SRC("{\"server\":\"chat01\",\"seq\":\"1\"}"), 0,
	  "field \"source.seq\": must be an integer, not a string" },
	{ POST_SRC("{\"server\":\"chat01\",\"seq\":1e3}"), 0,
	  "field \"source.seq\": must be an integer, not a number" },
	{ POST_SRC("null"), ING_PARSE_ALLOW_UNSTAMPED,
	  "field \"source\": must be an object, not null" },
};

static void test_bad_table(void **state)
{
	(void)state;
	/* The brief asks for at least 45; make sure nobody trims it below. */
	assert_true(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 45);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		expect_err(bad_cases[i].in, bad_cases[i].flags, bad_cases[i].want);
}

/* ---- required fields, per type ------------------------------------------ */

/* The smallest valid event of each type, as a jansson tree. */
static json_t *minimal(enum ing_event_type t)
{
	json_t *o = json_pack("{s:i,s:s,s:s,s:s}", "v", 1, "id", ID_S, "type",
			      ing_event_type_name(t), "ts", "2026-11-21T10:00:00.123Z");

	if (ing_event_type_is_chat(t))
		json_object_set_new(o, "room", json_string("ma-chan://contoso.com/r1"));
	json_object_set_new(o, "user", json_string("sip:alice@contoso.com"));
	if (ing_event_type_is_im(t))
		json_object_set_new(o, "to", json_string("sips:bob@contoso.com"));
	if (t == ING_EV_CHAT_POST || t == ING_EV_IM_MESSAGE)
		json_object_set_new(o, "text", json_string("hi"));
	if (t == ING_EV_CHAT_FILE_UPLOAD || t == ING_EV_CHAT_FILE_DOWNLOAD)
		json_object_set_new(o, "files",
				    json_pack("[{s:s,s:i,s:s}]", "name", "a.txt", "size", 0,
					      "sha256", SHA_S));
	json_object_set_new(o, "source", json_pack("{s:s,s:i}", "server", "chat01", "seq", 0));
	return o;
}

static char *dump(const json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

	assert_non_null(s);
	return s;
}

static void test_required_per_type(void **state)
{
	(void)state;
	for (int t = 0; t < ING_EV__COUNT; t++) {
		json_t *o = minimal((enum ing_event_type)t);
		struct ing_event ev;
		const char *key;
		json_t *val;
		char *s = dump(o);

		/* Passing case: the minimum is enough. */
		parse_ok(s, 0, &ev);
		assert_int_equal(ev.type, t);
		assert_int_equal(ing_event_validate(&ev, 0, NULL, 0), 0);
		ing_event_clear(&ev);
		free(s);

		/* Failing case: each required member, removed alone. */
		json_object_foreach(o, key, val) {
			json_t *c = json_deep_copy(o);
			char want[64];

			json_object_del(c, key);
			s = dump(c);
			snprintf(want, sizeof(want), "missing required field \"%s\"", key);
			expect_err(s, 0, want);
			free(s);
			json_decref(c);
		}
		json_decref(o);
	}
}

/* Optional members of the right type are accepted on every type. */
static void test_optionals_accepted(void **state)
{
	(void)state;
	for (int t = 0; t < ING_EV__COUNT; t++) {
		json_t *o = minimal((enum ing_event_type)t);
		struct ing_event ev;
		char *s;

		json_object_set_new(o, "room", json_string("ma-chan://contoso.com/r2"));
		json_object_set_new(o, "to", json_string("sip:carol@fabrikam.com"));
		json_object_set_new(o, "text", json_string(""));
		if (t == ING_EV_CHAT_POST || t == ING_EV_IM_MESSAGE)
			json_object_set_new(o, "text", json_string("x"));
		if (!json_object_get(o, "files"))
			json_object_set_new(o, "files", json_array());
		s = dump(o);
		parse_ok(s, 0, &ev);
		assert_string_equal(ev.room, "ma-chan://contoso.com/r2");
		assert_string_equal(ev.to, "sip:carol@fabrikam.com");
		assert_non_null(ev.text);
		assert_true(ev.has_files);
		ing_event_clear(&ev);
		free(s);
		json_decref(o);
	}
}

/* ---- passing cases for the value rules --------------------------------- */

static void test_values_accepted(void **state)
{
	static const char *const good[] = {
		GOOD,
		GOOD "\n",
		GOOD "\r\n",
		POST_USER("\"sips:alice@contoso.com\""),
		POST_USER("\"sip:alice@contoso.com;transport=tls\""),
		POST_USER("\"sip:a@b\""),
		POST_USER("\"sip:j\xc3\xbcrgen@m\xc3\xbcnchen.de\""),
		POST_ROOM("\"ma-chan://contoso.com/5c1d/x?y=z\""),
		POST_ROOM("\"x:y\""),
		POST_ROOM("\"a1+.-z:q\""),
		POST_ROOM("\"urn:uuid:0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\""),
		POST_TS("\"1970-01-01T00:00:00Z\""),
		POST_TS("\"9999-12-31T23:59:59.999999999Z\""),
		POST_TS("\"2024-02-29T00:00:00.5Z\""),
		POST_ID("\"00000000-0000-0000-0000-000000000000\""),
		POST_ID("\"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\""),
		POST_TEXT("\"a\\\\b\\\"c\\/d\""),
		POST_TEXT("\"\\u0001\\u001f\\u007f\\u0085 tab\\t nl\\n\""),
		POST_TEXT("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\""),
		POST_TEXT("\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""),
		POST_TEXT("\"\\ud83d\\ude00 \\u00e9\""),
		POST_TEXT("\"\xe2\x80\xa8\xe2\x80\xa9\""),
		POST_SRC("{\"server\":\"a\",\"seq\":0}"),
		POST_SRC("{\"seq\":9223372036854775807,\"server\":\"A-Z.a_z-0.9\"}"),
		UPLOAD("[" FILE1 "," FILE1 "]"),
		UPLOAD("[{\"sha256\":\"" SHA_S "\",\"size\":0,\"name\":\"...\"}]"),
		UPLOAD("[{\"name\":\".hidden \xe2\x80\x94 r\xc3\xa9sum\xc3\xa9.pdf\",\"size\":"
		       "9223372036854775807,\"sha256\":\"" SHA_S "\"}]"),
		IM("," TO),
		IM(",\"to\":\"sips:bob@contoso.com\",\"room\":\"ma-chan://x\""),
	};
	struct ing_event ev;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		parse_ok(good[i], 0, &ev);
		/* Whatever parse accepts, validate accepts too. */
		assert_int_equal(ing_event_validate(&ev, 0, NULL, 0), 0);
		ing_event_clear(&ev);
	}
}

static void test_fields_stored(void **state)
{
	struct ing_event ev;

	(void)state;
	parse_ok(canonical_example, 0, &ev);
	assert_string_equal(ev.id, ID_S);
	assert_int_equal(ev.type, ING_EV_CHAT_FILE_UPLOAD);
	assert_int_equal(ev.ts_ms, 1795255200123);
	assert_string_equal(ev.room, "ma-chan://contoso.com/5c1d");
	assert_string_equal(ev.user, "sip:alice@contoso.com");
	assert_null(ev.to);
	assert_string_equal(ev.text, "hello");
	assert_true(ev.has_files);
	assert_int_equal(ev.nfiles, 1);
	assert_string_equal(ev.files[0].name, "q3.pdf");
	assert_int_equal(ev.files[0].size, 48213);
	assert_string_equal(ev.files[0].sha256, SHA_S);
	assert_string_equal(ev.source_server, "chat01");
	assert_int_equal(ev.source_seq, 18342);
	ing_event_clear(&ev);

	/* Escapes decoded; a surrogate pair becomes one 4-byte character. */
	parse_ok(POST_TEXT("\"\\ud83d\\ude00\\u00e9\\/\\n\""), 0, &ev);
	assert_string_equal(ev.text, "\xf0\x9f\x98\x80\xc3\xa9/\n");
	ing_event_clear(&ev);
}

/* ---- size -------------------------------------------------------------- */

/* A chat.post whose text pads it to exactly len bytes. */
static char *post_of_size(size_t len)
{
	static const char head[] = "{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER
				   ",\"text\":\"";
	static const char tail[] = "\"," SRC "}";
	size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
	char *s;

	assert_true(len > fixed);
	s = malloc(len + 1);
	assert_non_null(s);
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'x', len - fixed);
	memcpy(s + len - (sizeof(tail) - 1), tail, sizeof(tail));
	assert_int_equal(strlen(s), len);
	return s;
}

static void test_size_limit(void **state)
{
	char err[ING_EVENT_ERRLEN];
	struct ing_event ev;
	char *s;

	(void)state;
	/* Exactly at the limit passes, one byte over fails. */
	s = post_of_size(1000);
	assert_int_equal(ing_event_parse(s, 1000, 1000, 0, &ev, err, sizeof(err)), 0);
	ing_event_clear(&ev);
	expect_err_n(s, 1000, 999, 0, "event is 1000 bytes, limit 999");
	free(s);

	/* 0 means the 1 MiB default. */
	s = post_of_size(ING_EVENT_DEFAULT_MAX_SIZE);
	assert_int_equal(ing_event_parse(s, ING_EVENT_DEFAULT_MAX_SIZE, 0, 0, &ev, err,
					 sizeof(err)),
			 0);
	assert_true(strlen(ev.text) > ING_EVENT_DEFAULT_MAX_SIZE - 300);
	ing_event_clear(&ev);
	free(s);
	s = post_of_size(ING_EVENT_DEFAULT_MAX_SIZE + 1);
	expect_err_n(s, ING_EVENT_DEFAULT_MAX_SIZE + 1, 0, 0, "event is 1048577 bytes, limit 1048576");
	free(s);

	/* The limit is checked first: garbage over the limit is a size error. */
	expect_err_n("\xff\xff\xff\xff\xff", 5, 4, 0, "event is 5 bytes, limit 4");
	/* The trailing newline counts toward the limit. */
	s = post_of_size(1000);
	s = realloc(s, 1002);
	assert_non_null(s);
	strcpy(s + 1000, "\n");
	expect_err_n(s, 1001, 1000, 0, "event is 1001 bytes, limit 1000");
	assert_int_equal(ing_event_parse(s, 1001, 1001, 0, &ev, err, sizeof(err)), 0);
	ing_event_clear(&ev);
	free(s);
}

static void test_files_limit(void **state)
{
	json_t *o = minimal(ING_EV_CHAT_FILE_UPLOAD), *a = json_object_get(o, "files");
	struct ing_event ev;
	char *s;

	(void)state;
	while (json_array_size(a) < ING_EVENT_MAX_FILES)
		json_array_append_new(a, json_pack("{s:s,s:i,s:s}", "name", "f", "size", 1,
						   "sha256", SHA_S));
	s = dump(o);
	parse_ok(s, 0, &ev);
	assert_int_equal(ev.nfiles, ING_EVENT_MAX_FILES);
	ing_event_clear(&ev);
	free(s);
	json_array_append_new(a, json_pack("{s:s,s:i,s:s}", "name", "f", "size", 1, "sha256",
					   SHA_S));
	s = dump(o);
	expect_err(s, 0, "field \"files\": 257 files, limit 256");
	free(s);
	json_decref(o);
}

static void test_length_limits(void **state)
{
	char name[ING_EVENT_MAX_FILE_NAME + 2], uri[ING_EVENT_MAX_URI + 2], server[258];
	json_t *o;
	struct ing_event ev;
	char *s;

	(void)state;
	/* file name: 1024 bytes pass, 1025 fail. */
	memset(name, 'n', sizeof(name));
	name[ING_EVENT_MAX_FILE_NAME] = '\0';
	o = minimal(ING_EV_CHAT_FILE_DOWNLOAD);
	json_object_set_new(json_array_get(json_object_get(o, "files"), 0), "name",
			    json_string(name));
	s = dump(o);
	parse_ok(s, 0, &ev);
	ing_event_clear(&ev);
	free(s);
	name[ING_EVENT_MAX_FILE_NAME] = 'n';
	name[ING_EVENT_MAX_FILE_NAME + 1] = '\0';
	json_object_set_new(json_array_get(json_object_get(o, "files"), 0), "name",
			    json_string(name));
	s = dump(o);
	expect_err(s, 0, "field \"files[0].name\": too long (1025 bytes, limit 1024)");
	free(s);
	json_decref(o);

	/* URIs: 2048 bytes pass, 2049 fail, for each of user, to, room. */
	memset(uri, 'u', sizeof(uri));
	memcpy(uri, "sip:a@", 6);
	uri[ING_EVENT_MAX_URI] = '\0';
	o = minimal(ING_EV_IM_MESSAGE);
	json_object_set_new(o, "user", json_string(uri));
	json_object_set_new(o, "to", json_string(uri));
	json_object_set_new(o, "room", json_string(uri));
	s = dump(o);
	parse_ok(s, 0, &ev);
	assert_int_equal(strlen(ev.user), ING_EVENT_MAX_URI);
	ing_event_clear(&ev);
	free(s);
	uri[ING_EVENT_MAX_URI] = 'u';
	uri[ING_EVENT_MAX_URI + 1] = '\0';
	json_object_set_new(o, "room", json_string(uri));
	s = dump(o);
	expect_err(s, 0, "field \"room\": too long (2049 bytes, limit 2048)");
	free(s);
	json_object_set_new(o, "room", json_string("x:y"));
	json_object_set_new(o, "to", json_string(uri));
	s = dump(o);
	expect_err(s, 0, "field \"to\": too long (2049 bytes, limit 2048)");
	free(s);
	json_object_set_new(o, "user", json_string(uri));
	s = dump(o);
	expect_err(s, 0, "field \"user\": too long (2049 bytes, limit 2048)");
	free(s);
	json_decref(o);

	/* source.server: 255 pass, 256 fail. */
	memset(server, 's', sizeof(server));
	server[ING_EVENT_MAX_SERVER] = '\0';
	o = minimal(ING_EV_CHAT_JOIN);
	json_object_set_new(o, "source", json_pack("{s:s,s:i}", "server", server, "seq", 1));
	s = dump(o);
	parse_ok(s, 0, &ev);
	ing_event_clear(&ev);
	free(s);
	server[ING_EVENT_MAX_SERVER] = 's';
	server[ING_EVENT_MAX_SERVER + 1] = '\0';
	json_object_set_new(o, "source", json_pack("{s:s,s:i}", "server", server, "seq", 1));
	s = dump(o);
	expect_err(s, 0, "field \"source.server\": length 256 out of range 1..255");
	free(s);
	json_decref(o);
}

/* ---- UTF-8 ------------------------------------------------------------- */

static void test_utf8_offsets(void **state)
{
	static const char in[] = POST_TEXT("\"ok \xc3\xa9 then \xe0\x80\xaf bad\"");
	char want[96];
	size_t off = (size_t)(strstr(in, "\xe0\x80") - in);

	(void)state;
	snprintf(want, sizeof(want), "field \"text\": invalid UTF-8 at byte %zu (overlong encoding)",
		 off);
	expect_err(in, 0, want);

	/* A raw NUL byte is not JSON; the error says where. */
	{
		static const char nul[] = "{\"v\":1,\0\"id\":1}";

		expect_err_n(nul, sizeof(nul) - 1, 0, 0, "invalid JSON");
	}

	/* Bad UTF-8 in the middle of a nested value names the top field. */
	expect_err(UPLOAD("[{\"name\":\"\xc0\x80\",\"size\":1,\"sha256\":\"" SHA_S "\"}]"), 0,
		   "field \"files\": invalid UTF-8 at byte");
}

/* The reason itself is valid UTF-8 even when it quotes the bad input. */
static void test_reason_is_utf8(void **state)
{
	char err[ING_EVENT_ERRLEN], small[8];
	struct ing_event ev;
	static const char in[] = WITH_TYPE("\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
					   "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
					   "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
					   "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"");

	(void)state;
	assert_int_equal(ing_event_parse(in, strlen(in), 0, 0, &ev, err, sizeof(err)), -EINVAL);
	/* Cut at 40 input bytes = 20 characters, on a boundary. */
	assert_non_null(strstr(err, "unknown event type \"\xc3\xa9"));
	assert_non_null(strstr(err, "\xc3\xa9\"..."));
	/* A tiny buffer truncates; a cut sequence is replaced, not left. */
	assert_int_equal(ing_event_parse(in, strlen(in), 0, 0, &ev, small, sizeof(small)), -EINVAL);
	assert_int_equal(strlen(small), 7);
	/* And no buffer at all is fine. */
	assert_int_equal(ing_event_parse(in, strlen(in), 0, 0, &ev, NULL, 0), -EINVAL);
	assert_true(is_cleared(&ev));
}

/* ---- round trips ------------------------------------------------------- */

static void test_canonical_is_fixed_point(void **state)
{
	(void)state;
	assert_canonical(canonical_example, canonical_example);
}

static void test_normalisation(void **state)
{
	static const char want[] =
		"{\"v\":1,\"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\",\"type\":\"chat.post\","
		"\"ts\":\"2026-11-21T10:00:00.000Z\",\"room\":\"ma-chan://contoso.com/5c1d\","
		"\"user\":\"sip:alice@contoso.com\",\"text\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 a/b "
		"\\u0001\\u001F\x7f\\t\\\"q\\\"\",\"source\":{\"server\":\"chat01\",\"seq\":7}}";
	static const char want_ms[] =
		"{\"v\":1,\"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\",\"type\":\"chat.post\","
		"\"ts\":\"2026-11-21T10:00:00.123Z\",\"room\":\"ma-chan://contoso.com/5c1d\","
		"\"user\":\"sip:alice@contoso.com\",\"text\":\"hi\",\"source\":{\"server\":"
		"\"chat01\",\"seq\":7}}";

	(void)state;
	/* Reordered keys, upper-case id, ts with no fraction, escapes. */
	assert_canonical("{\"source\":{\"seq\":7,\"server\":\"chat01\"},\"text\":\"caf\\u00e9 "
			 "\\ud83d\\ude00 a\\/b \\u0001\\u001f\\u007f\\t\\\"q\\\"\","
			 "\"user\":\"sip:alice@contoso.com\",\"room\":\"ma-chan:\\/\\/contoso.com"
			 "\\/5c1d\",\"ts\":\"2026-11-21T10:00:00Z\",\"type\":\"chat.post\","
			 "\"id\":\"0192F0C4-6C1E-7D3A-9B1E-2F6A5C0D9E11\",\"v\":1}",
			 want);
	/* Six and nine fraction digits are truncated to three. */
	assert_canonical("{\"v\":1,\"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\",\"type\":"
			 "\"chat.post\",\"ts\":\"2026-11-21T10:00:00.123999Z\",\"room\":"
			 "\"ma-chan://contoso.com/5c1d\",\"user\":\"sip:alice@contoso.com\","
			 "\"text\":\"hi\",\"source\":{\"server\":\"chat01\",\"seq\":7}}",
			 want_ms);
	assert_canonical("{\"v\":1,\"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\",\"type\":"
			 "\"chat.post\",\"ts\":\"2026-11-21T10:00:00.123456789Z\",\"room\":"
			 "\"ma-chan://contoso.com/5c1d\",\"user\":\"sip:alice@contoso.com\","
			 "\"text\":\"hi\",\"source\":{\"server\":\"chat01\",\"seq\":7}}",
			 want_ms);
	/* Whitespace between tokens and an upper-case sha256 disappear. */
	assert_canonical("{ \"v\" : 1 , \"id\":\"0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11\", "
			 "\"type\":\"chat.file.upload\",\"ts\":\"2026-11-21T10:00:00.123Z\","
			 "\"room\":\"ma-chan://contoso.com/5c1d\",\"user\":"
			 "\"sip:alice@contoso.com\",\"text\":\"hello\",\"files\":[ { \"sha256\":"
			 "\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\","
			 "\"size\":48213,\"name\":\"q3.pdf\" } ],\"source\":{\"server\":\"chat01\","
			 "\"seq\":18342}}\r\n",
			 canonical_example);
}

/* serialise(parse(x)) is stable: doing it again changes nothing. */
static void test_byte_stable(void **state)
{
	static const char *const inputs[] = {
		canonical_example,
		GOOD,
		IM("," TO),
		POST_PLUS(",\"files\":[]"),
		POST_TEXT("\"\\u00e9\\b\\f\""),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct ing_event a, b;
		char *s1, *s2, *s3;
		size_t n1;

		parse_ok(inputs[i], 0, &a);
		s1 = serialize_ok(&a, &n1);
		s2 = serialize_ok(&a, NULL);
		assert_string_equal(s1, s2);
		parse_ok_n(s1, n1, 0, &b);
		assert_true(ing_event_equal(&a, &b));
		s3 = serialize_ok(&b, NULL);
		assert_string_equal(s1, s3);
		free(s1);
		free(s2);
		free(s3);
		ing_event_clear(&a);
		ing_event_clear(&b);
	}
}

/* Empty "files" survives a round trip as present-and-empty. */
static void test_has_files_empty(void **state)
{
	struct ing_event ev;
	char *s;

	(void)state;
	parse_ok(POST_PLUS(",\"files\":[]"), 0, &ev);
	assert_true(ev.has_files);
	assert_int_equal(ev.nfiles, 0);
	s = serialize_ok(&ev, NULL);
	assert_non_null(strstr(s, ",\"files\":[],\"source\":"));
	free(s);
	ev.has_files = false;
	s = serialize_ok(&ev, NULL);
	assert_null(strstr(s, "files"));
	free(s);
	ing_event_clear(&ev);
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xC0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (char)(0xE0 | cp >> 12);
		p[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		p[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	p[0] = (char)(0xF0 | cp >> 18);
	p[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	p[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	p[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Our serialiser against jansson's, and parse(serialise(e)) == e, for
 * events built in C with random text: every ASCII byte (controls included)
 * and code points from every UTF-8 length class.
 */
static void test_serialize_matches_jansson(void **state)
{
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 500; round++) {
		char text[4 * 64 + 1];
		struct ing_event ev, back;
		char *ours, *theirs;
		size_t n = 0, len;
		int k = rand_r(&seed) % 64 + 1;

		for (int i = 0; i < k; i++) {
			uint32_t cp;

			switch (rand_r(&seed) % 4) {
			case 0:
				cp = (uint32_t)(rand_r(&seed) % 127) + 1;
				break;
			case 1:
				cp = 0x80 + (uint32_t)rand_r(&seed) % (0x800 - 0x80);
				break;
			case 2:
				do
					cp = 0x800 + (uint32_t)rand_r(&seed) % (0x10000 - 0x800);
				while (cp >= 0xD800 && cp <= 0xDFFF);
				break;
			default:
				cp = 0x10000 + (uint32_t)rand_r(&seed) % (0x110000 - 0x10000);
				break;
			}
			n += put_utf8(text + n, cp);
		}
		text[n] = '\0';
		make_post(&ev, text);
		ev.ts_ms = (int64_t)rand_r(&seed) * 1000 + rand_r(&seed) % 1000;
		ev.source_seq = (int64_t)rand_r(&seed) * rand_r(&seed);
		if (round % 3 == 0) {
			ev.type = ING_EV_IM_MESSAGE;
			ev.to = strdup("sip:bob@contoso.com");
			assert_non_null(ev.to);
		}
		if (round % 5 == 0) {
			ev.has_files = true;
			ev.nfiles = 2;
			ev.files = calloc(2, sizeof(*ev.files));
			assert_non_null(ev.files);
			for (int f = 0; f < 2; f++) {
				ev.files[f].name = strdup(text[0] == '/' || text[0] < 0x20 ? "x" : "\xc3\xa9.pdf");
				assert_non_null(ev.files[f].name);
				ev.files[f].size = rand_r(&seed);
				strcpy(ev.files[f].sha256, SHA_S);
			}
		}
		ours = serialize_ok(&ev, &len);
		theirs = jansson_dump(&ev);
		if (strcmp(ours, theirs) != 0)
			fail_msg("serialiser differs from jansson\nours:   %s\ntheirs: %s", ours,
				 theirs);
		parse_ok_n(ours, len, 0, &back);
		assert_true(ing_event_equal(&ev, &back));
		free(ours);
		free(theirs);
		ing_event_clear(&ev);
		ing_event_clear(&back);
	}
}

static void test_serialize_refuses_incomplete(void **state)
{
	struct ing_event ev;
	char *out = (char *)1;
	size_t n = 7;

	(void)state;
	make_post(&ev, "x");
	ev.id[0] = '\0';
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	assert_null(out);
	assert_int_equal(n, 0);
	strcpy(ev.id, "0192F0C4-6C1E-7D3A-9B1E-2F6A5C0D9E11"); /* not canonical */
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	strcpy(ev.id, ID_S);
	ev.ts_ms = -1;
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.ts_ms = CV_TIME_MAX_MS + 1;
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.ts_ms = 0;
	free(ev.source_server);
	ev.source_server = NULL;
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.source_server = strdup("chat01");
	assert_non_null(ev.source_server);
	ev.type = ING_EV__COUNT;
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.type = ING_EV_CHAT_POST;
	free(ev.text);
	ev.text = strdup("bad \xc0\xaf utf-8");
	assert_non_null(ev.text);
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.type = ING_EV_CHAT_FILE_UPLOAD; /* no files */
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	ev.type = ING_EV_CHAT_JOIN;
	free(ev.text);
	ev.text = NULL;
	out = NULL;
	assert_int_equal(ing_event_serialize(&ev, &out, &n), 0);
	free(out);
	ing_event_clear(&ev);
}

static void test_validate(void **state)
{
	char err[ING_EVENT_ERRLEN];
	struct ing_event ev;

	(void)state;
	make_post(&ev, "hello");
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), 0);
	free(ev.user);
	ev.user = strdup("alice");
	assert_non_null(ev.user);
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field \"user\": not a SIP URI (want sip:user@domain)");
	free(ev.user);
	ev.user = NULL;
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing required field \"user\"");
	ev.user = strdup("sip:alice@contoso.com");
	assert_non_null(ev.user);
	free(ev.text);
	ev.text = strdup("x\xed\xa0\x80");
	assert_non_null(ev.text);
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "field \"text\": invalid UTF-8 at byte 1 (UTF-16 surrogate)");
	ev.nfiles = 1; /* without has_files */
	free(ev.text);
	ev.text = strdup("ok");
	assert_non_null(ev.text);
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "field \"files\""));
	ev.nfiles = 0;
	/* Unstamped is fine in producer mode only. */
	ev.id[0] = '\0';
	ev.ts_ms = -1;
	free(ev.source_server);
	ev.source_server = NULL;
	assert_int_equal(ing_event_validate(&ev, ING_PARSE_ALLOW_UNSTAMPED, err, sizeof(err)), 0);
	assert_int_equal(ing_event_validate(&ev, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing required field \"id\"");
	ing_event_clear(&ev);
}

/* ---- copy, equal, clear, types ----------------------------------------- */

static void test_copy_equal_clear(void **state)
{
	struct ing_event a, b;

	(void)state;
	parse_ok(canonical_example, 0, &a);
	assert_int_equal(ing_event_copy(&b, &a), 0);
	assert_true(ing_event_equal(&a, &b));
	assert_ptr_not_equal(a.user, b.user);
	assert_ptr_not_equal(a.files, b.files);
	assert_ptr_not_equal(a.files[0].name, b.files[0].name);

	b.files[0].size++;
	assert_false(ing_event_equal(&a, &b));
	b.files[0].size--;
	b.source_seq++;
	assert_false(ing_event_equal(&a, &b));
	b.source_seq--;
	free(b.text);
	b.text = NULL;
	assert_false(ing_event_equal(&a, &b));
	assert_false(ing_event_equal(&b, &a));
	b.text = strdup("hello");
	assert_non_null(b.text);
	assert_true(ing_event_equal(&a, &b));
	b.ts_ms++;
	assert_false(ing_event_equal(&a, &b));
	b.ts_ms--;
	b.id[0] = 'f';
	assert_false(ing_event_equal(&a, &b));

	ing_event_clear(&b);
	assert_true(is_cleared(&b));
	ing_event_clear(&b); /* twice is fine */
	ing_event_clear(NULL);
	ing_event_clear(&a);
}

static void test_type_names(void **state)
{
	static const char *const names[ING_EV__COUNT] = {
		"chat.join", "chat.part", "chat.post", "chat.backchat", "chat.file.upload",
		"chat.file.download", "chat.delete", "im.message", "im.session.start",
		"im.session.end",
	};

	(void)state;
	for (int t = 0; t < ING_EV__COUNT; t++) {
		assert_string_equal(ing_event_type_name((enum ing_event_type)t), names[t]);
		assert_int_equal(ing_event_type_parse(names[t]), t);
		assert_true(ing_event_type_is_chat((enum ing_event_type)t) != (names[t][0] == 'i'));
		assert_true(ing_event_type_is_im((enum ing_event_type)t) == (names[t][0] == 'i'));
	}
	assert_null(ing_event_type_name(ING_EV__COUNT));
	assert_null(ing_event_type_name((enum ing_event_type)-1));
	assert_int_equal(ing_event_type_parse("chat.pos"), -1);
	assert_int_equal(ing_event_type_parse("chat.postx"), -1);
	assert_int_equal(ing_event_type_parse(""), -1);
	assert_int_equal(ing_event_type_parse(NULL), -1);
}

/* ---- UUIDv7 and producer mode ------------------------------------------ */

static void test_uuid_v7(void **state)
{
	char a[ING_EVENT_ID_LEN + 1], b[ING_EVENT_ID_LEN + 1], prefix[16];
	int64_t ms = 1795255200123; /* 0x01a1fd8c697b */

	(void)state;
	assert_int_equal(ing_uuid_v7(ms, a), 0);
	assert_int_equal(ing_uuid_v7(ms, b), 0);
	assert_int_equal(strlen(a), ING_EVENT_ID_LEN);
	assert_string_not_equal(a, b); /* 74 random bits */
	for (int i = 0; i < ING_EVENT_ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", a[i]));
	}
	assert_int_equal(a[14], '7');                  /* version */
	assert_non_null(strchr("89ab", a[19]));        /* variant 10xx */
	/* The first 48 bits are the milliseconds, big-endian. */
	snprintf(prefix, sizeof(prefix), "%08llx-%04llx", (unsigned long long)(ms >> 16),
		 (unsigned long long)(ms & 0xFFFF));
	assert_memory_equal(a, prefix, 13);
	assert_memory_equal(a, "01a1fd8c-697b", 13);

	/* Ids sort by time across milliseconds. */
	assert_int_equal(ing_uuid_v7(ms + 1, b), 0);
	assert_true(strcmp(a, b) < 0);
	assert_int_equal(ing_uuid_v7(0, a), 0);
	assert_memory_equal(a, "00000000-0000-7", 15);
	assert_int_equal(ing_uuid_v7(CV_TIME_MAX_MS, a), 0);
	assert_int_equal(ing_uuid_v7(-1, a), -EINVAL);
	assert_int_equal(ing_uuid_v7(INT64_C(1) << 48, a), -EINVAL);

	/* Many in a row: always version 7, variant 10, all distinct from the last. */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(ing_uuid_v7(ms, a), 0);
		assert_int_equal(a[14], '7');
		assert_non_null(strchr("89ab", a[19]));
		assert_string_not_equal(a, b);
		memcpy(b, a, sizeof(a));
	}
}

static void test_allow_unstamped(void **state)
{
	static const char bare[] = "{\"v\":1,\"type\":\"chat.post\"," ROOM "," USER
				   ",\"text\":\"hi\"}";
	char err[ING_EVENT_ERRLEN];
	struct ing_event ev;
	char *out = NULL;
	size_t n;

	(void)state;
	/* Without the flag all three stamps are required. */
	expect_err(bare, 0, "missing required field \"id\"");
	expect_err("{\"v\":1," ID ",\"type\":\"chat.post\"," ROOM "," USER ",\"text\":\"hi\"}", 0,
		   "missing required field \"ts\"");
	expect_err("{\"v\":1," ID ",\"type\":\"chat.post\"," TS "," ROOM "," USER
		   ",\"text\":\"hi\"}",
		   0, "missing required field \"source\"");

	/* With it they may be absent, and the struct says so. */
	parse_ok(bare, ING_PARSE_ALLOW_UNSTAMPED, &ev);
	assert_string_equal(ev.id, "");
	assert_int_equal(ev.ts_ms, -1);
	assert_null(ev.source_server);
	assert_int_equal(ing_event_validate(&ev, ING_PARSE_ALLOW_UNSTAMPED, NULL, 0), 0);
	/* Not serialisable until the producer stamps it. */
	assert_int_equal(ing_event_serialize(&ev, &out, &n), -EINVAL);
	assert_int_equal(ing_uuid_v7(cv_time_now_ms(), ev.id), 0);
	ev.ts_ms = cv_time_now_ms();
	ev.source_server = strdup("chat01");
	assert_non_null(ev.source_server);
	ev.source_seq = 1;
	out = serialize_ok(&ev, &n);
	{
		struct ing_event back;

		/* The generated id is a valid event id. */
		assert_int_equal(ing_event_parse(out, n, 0, 0, &back, err, sizeof(err)), 0);
		assert_true(ing_event_equal(&ev, &back));
		ing_event_clear(&back);
	}
	free(out);
	ing_event_clear(&ev);

	/* Present stamps are still checked and kept. */
	parse_ok(GOOD, ING_PARSE_ALLOW_UNSTAMPED, &ev);
	assert_string_equal(ev.id, ID_S);
	assert_int_equal(ev.ts_ms, 1795255200123);
	assert_string_equal(ev.source_server, "chat01");
	ing_event_clear(&ev);
	expect_err(POST_TS("\"2026-11-21T10:00:00+01:00\""), ING_PARSE_ALLOW_UNSTAMPED,
		   "field \"ts\": not UTC (offset +01:00)");
	expect_err(POST_SRC("{\"server\":\"\",\"seq\":1}"), ING_PARSE_ALLOW_UNSTAMPED,
		   "field \"source.server\"");
	/* The flag excuses only the stamps: the rest is as strict. */
	expect_err("{\"v\":1,\"type\":\"chat.post\"," USER ",\"text\":\"hi\"}",
		   ING_PARSE_ALLOW_UNSTAMPED, "missing required field \"room\"");
	expect_err("{\"type\":\"chat.post\"," ROOM "," USER ",\"text\":\"hi\"}",
		   ING_PARSE_ALLOW_UNSTAMPED, "missing required field \"v\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_table),
		cmocka_unit_test(test_required_per_type),
		cmocka_unit_test(test_optionals_accepted),
		cmocka_unit_test(test_values_accepted),
		cmocka_unit_test(test_fields_stored),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_files_limit),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_utf8_offsets),
		cmocka_unit_test(test_reason_is_utf8),
		cmocka_unit_test(test_canonical_is_fixed_point),
		cmocka_unit_test(test_normalisation),
		cmocka_unit_test(test_byte_stable),
		cmocka_unit_test(test_has_files_empty),
		cmocka_unit_test(test_serialize_matches_jansson),
		cmocka_unit_test(test_serialize_refuses_incomplete),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_copy_equal_clear),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_uuid_v7),
		cmocka_unit_test(test_allow_unstamped),
	};

	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
