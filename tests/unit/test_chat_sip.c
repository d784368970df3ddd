/*
 * test_chat_sip — chatd's pure logic (chat/chat_sip.c) and the limits of
 * its configuration (conf/cfg_chat.c), no sockets:
 *   - digest nonces: issued, verified, stale after CHAT_NONCE_TTL_MS, refused
 *     when altered, from another secret or realm, from the future, or the
 *     wrong length;
 *   - the digest response against RFC 2617 §3.5's worked example (qop=auth)
 *     and its no-qop form, case of the hex, wrong password/method/uri/nc;
 *   - the nonce-count replay window, its bound and eviction;
 *   - the BlackBerry session-limit decision (admit, evict idle, Server Busy,
 *     Failed);
 *   - the mobile Contact parameter;
 *   - header counting and the JSON/XML escapers' bounds;
 *   - chat {} / im {} validation: out-of-range values are refused with the
 *     key named, defaults are what docs/CHAT.md says.
 * Runs with cwd = repository root.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "chat_sip.h"

static const uint8_t secret[CHAT_SECRET_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static struct chat_str S(const char *s)
{
	struct chat_str r = { s, s ? strlen(s) : 0 };

	return r;
}

/* ---- nonces ---------------------------------------------------------------- */

static void test_nonce_issue_verify(void **state)
{
	char n[CHAT_NONCE_LEN + 1];

	(void)state;
	chat_nonce_make(secret, "example.test", 1000000, 0x1234, n);
	assert_int_equal(strlen(n), CHAT_NONCE_LEN);
	assert_int_equal(strncmp(n, "00000000000f4240", 16), 0);   /* the time (ms), hex */
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN, 1000000), CHAT_NONCE_OK);
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN,
					  1000000 + CHAT_NONCE_TTL_MS), CHAT_NONCE_OK);
	/* the same inputs give the same nonce: no hidden state */
	{
		char m[CHAT_NONCE_LEN + 1];

		chat_nonce_make(secret, "example.test", 1000000, 0x1234, m);
		assert_string_equal(n, m);
		/* another salt, same second: another nonce, just as valid */
		chat_nonce_make(secret, "example.test", 1000000, 0x1235, m);
		assert_string_not_equal(n, m);
		assert_int_equal(strncmp(m + 16, "0000000000001235", 16), 0);
		assert_int_equal(chat_nonce_check(secret, "example.test", m, CHAT_NONCE_LEN, 1000000),
				 CHAT_NONCE_OK);
	}
}

static void test_nonce_stale_and_bad(void **state)
{
	char n[CHAT_NONCE_LEN + 1], x[CHAT_NONCE_LEN + 1];
	uint8_t other[CHAT_SECRET_LEN] = { 0 };

	(void)state;
	chat_nonce_make(secret, "example.test", 1000000, 0x1234, n);
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN,
					  1000000 + CHAT_NONCE_TTL_MS + 1), CHAT_NONCE_STALE);
	/* from the future (beyond the skew) */
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN,
					  1000000 - CHAT_NONCE_SKEW_MS - 1), CHAT_NONCE_BAD);
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN,
					  1000000 - CHAT_NONCE_SKEW_MS), CHAT_NONCE_OK);
	/* another process's secret, another realm */
	assert_int_equal(chat_nonce_check(other, "example.test", n, CHAT_NONCE_LEN, 1000000), CHAT_NONCE_BAD);
	assert_int_equal(chat_nonce_check(secret, "other.test", n, CHAT_NONCE_LEN, 1000000), CHAT_NONCE_BAD);
	/* any byte altered: time part (re-dated) and MAC part */
	for (size_t i = 0; i < CHAT_NONCE_LEN; i++) {
		memcpy(x, n, sizeof(x));
		x[i] = x[i] == '0' ? '1' : '0';
		assert_int_equal(chat_nonce_check(secret, "example.test", x, CHAT_NONCE_LEN, 1000000),
				 CHAT_NONCE_BAD);
	}
	/* length, NULL, non-hex time */
	assert_int_equal(chat_nonce_check(secret, "example.test", n, CHAT_NONCE_LEN - 1, 1000000), CHAT_NONCE_BAD);
	assert_int_equal(chat_nonce_check(secret, "example.test", NULL, CHAT_NONCE_LEN, 1000000), CHAT_NONCE_BAD);
	memcpy(x, n, sizeof(x));
	x[3] = 'g';
	assert_int_equal(chat_nonce_check(secret, "example.test", x, CHAT_NONCE_LEN, 1000000), CHAT_NONCE_BAD);
	/* upper-case hex in the MAC is not ours */
	memcpy(x, n, sizeof(x));
	for (size_t i = 16; i < CHAT_NONCE_LEN; i++)
		if (x[i] >= 'a' && x[i] <= 'f')
			x[i] = (char)(x[i] - 'a' + 'A');
	if (strcmp(x, n) != 0)
		assert_int_equal(chat_nonce_check(secret, "example.test", x, CHAT_NONCE_LEN, 1000000),
				 CHAT_NONCE_BAD);
}

/* ---- digest ------------------------------------------------------------------ */

/* RFC 2617 §3.5: Mufasa / "Circle Of Life" / testrealm@host.com */
#define HA1_MUFASA "939e7578ed9e3c518a452acee763bce9"
#define RFC_NONCE "dcd98b7102dd2f0e8b11d0f600bfb0c093"

static void test_digest_rfc2617(void **state)
{
	(void)state;
	assert_true(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				   S("00000001"), S("0a4f113b"), S("auth"),
				   S("6629fae49393a05397450978507c4ef1")));
	/* qop=AUTH is hashed as sent: a different response */
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("AUTH"),
				    S("6629fae49393a05397450978507c4ef1")));
	/* hex digits of the response in either case */
	assert_true(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				   S("00000001"), S("0a4f113b"), S("auth"),
				   S("6629FAE49393A05397450978507C4EF1")));
	/* no qop (RFC 2069 form): MD5(HA1:nonce:HA2) */
	assert_true(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				   S(""), S(""), S(""), S("670fd8c2df070c60b045671b8b24ff02")));
}

static void test_digest_wrong(void **state)
{
	const char *good = "6629fae49393a05397450978507c4ef1";

	(void)state;
	/* another password → another HA1 */
	assert_false(chat_digest_ok("00000000000000000000000000000000", S("GET"), S("/dir/index.html"),
				    S(RFC_NONCE), S("00000001"), S("0a4f113b"), S("auth"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("POST"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.htm"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000002"), S("0a4f113b"), S("auth"), S(good)));
	/* qop=auth without nc or cnonce, unknown qop, short response, no HA1 */
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S(""), S("0a4f113b"), S("auth"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S(""), S("auth"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth-int"), S(good)));
	assert_false(chat_digest_ok(HA1_MUFASA, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth"),
				    S("6629fae49393a05397450978507c4ef")));
	assert_false(chat_digest_ok(NULL, S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth"), S(good)));
	assert_false(chat_digest_ok("939e", S("GET"), S("/dir/index.html"), S(RFC_NONCE),
				    S("00000001"), S("0a4f113b"), S("auth"), S(good)));
}

/* ---- nonce count ---------------------------------------------------------------- */

static void test_nc_replay(void **state)
{
	struct chat_nc_table *t = calloc(1, sizeof(*t));
	char n[CHAT_NONCE_LEN + 1];

	(void)state;
	assert_non_null(t);
	chat_nonce_make(secret, "example.test", 5000, 0x1234, n);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000001"), 5000), CHAT_NC_OK);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000001"), 5000), CHAT_NC_REPLAY);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000002"), 5000), CHAT_NC_OK);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("0000000A"), 5000), CHAT_NC_OK);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000009"), 5000), CHAT_NC_REPLAY);
	/* malformed nc */
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000000"), 5000), CHAT_NC_BAD);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("1"), 5000), CHAT_NC_BAD);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("0000000g"), 5000), CHAT_NC_BAD);
	assert_int_equal(chat_nc_accept(t, n, 10, S("00000001"), 5000), CHAT_NC_BAD);
	/* without qop: one use */
	chat_nonce_make(secret, "example.test", 5001, 0x1234, n);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S(""), 5001), CHAT_NC_OK);
	assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S(""), 5001), CHAT_NC_REPLAY);
	free(t);
}

static void test_nc_eviction_never_reopens(void **state)
{
	struct chat_nc_table *t = calloc(1, sizeof(*t));
	const size_t total = CHAT_NC_SETS * CHAT_NC_WAYS * 3;
	char (*ns)[CHAT_NONCE_LEN + 1] = calloc(total, sizeof(*ns));
	size_t ok = 0, replay = 0;

	(void)state;
	assert_non_null(t);
	assert_non_null(ns);
	/* three times as many live nonces as slots, all within the TTL */
	for (size_t i = 0; i < total; i++) {
		uint8_t sec[CHAT_SECRET_LEN] = { 0 };

		memcpy(sec, &i, sizeof(i));
		chat_nonce_make(sec, "r", 10000 + i / 64, i, ns[i]);
		assert_int_equal(chat_nc_accept(t, ns[i], CHAT_NONCE_LEN, S("00000001"), 10000 + i / 64),
				 CHAT_NC_OK);
	}
	/* replaying each first use: refused whether still held or dropped */
	for (size_t i = 0; i < total; i++) {
		enum chat_nc_check r = chat_nc_accept(t, ns[i], CHAT_NONCE_LEN, S("00000001"),
						      10000 + total / 64);

		ok += r == CHAT_NC_OK;
		replay += r == CHAT_NC_REPLAY;
	}
	assert_int_equal(ok, 0);
	assert_int_equal(replay, total);
	/* a brand-new nonce is still accepted */
	{
		char n[CHAT_NONCE_LEN + 1];

		chat_nonce_make(secret, "r", 10000 + total / 64 + 1, 0x1234, n);
		assert_int_equal(chat_nc_accept(t, n, CHAT_NONCE_LEN, S("00000001"), 10000 + total / 64 + 1),
				 CHAT_NC_OK);
	}
	free(ns);
	free(t);
}

/* ---- session limits ---------------------------------------------------------------- */

static void test_admit(void **state)
{
	size_t ev = 99;

	(void)state;
	/* below the maximum */
	assert_int_equal(chat_admit_decide(0, 2, 1024, 0, &ev), CHAT_ADMIT);
	assert_int_equal(ev, 0);
	assert_int_equal(chat_admit_decide(1, 2, 1024, 1, &ev), CHAT_ADMIT);
	assert_int_equal(ev, 0);
	/* at the maximum, nobody idle: Server Busy */
	assert_int_equal(chat_admit_decide(2, 2, 1024, 0, &ev), CHAT_BUSY);
	assert_int_equal(ev, 0);
	/* at the maximum with idle sessions: evict exactly enough */
	assert_int_equal(chat_admit_decide(2, 2, 1024, 2, &ev), CHAT_ADMIT_EVICT);
	assert_int_equal(ev, 1);
	/* above (the maximum was lowered by a restart): evict down below it */
	assert_int_equal(chat_admit_decide(5, 2, 1024, 5, &ev), CHAT_ADMIT_EVICT);
	assert_int_equal(ev, 4);
	assert_int_equal(chat_admit_decide(5, 2, 1024, 3, &ev), CHAT_BUSY);
	/* no maximum: only capacity, and then Failed (idle sessions are not evicted) */
	assert_int_equal(chat_admit_decide(1023, 0, 1024, 0, &ev), CHAT_ADMIT);
	assert_int_equal(chat_admit_decide(1024, 0, 1024, 10, &ev), CHAT_FAILED);
	assert_int_equal(ev, 0);
	/* a maximum above capacity: capacity bounds it, the maximum rules apply */
	assert_int_equal(chat_admit_decide(8, 100, 8, 0, &ev), CHAT_BUSY);
	assert_int_equal(chat_admit_decide(8, 100, 8, 1, &ev), CHAT_ADMIT_EVICT);
	assert_int_equal(ev, 1);
}

/* ---- Contact parameters ----------------------------------------------------------- */

static bool mob(const char *p)
{
	return chat_contact_is_mobile(p, strlen(p));
}

static void test_contact_mobile(void **state)
{
	(void)state;
	assert_true(mob(";mobility=\"mobile\""));
	assert_true(mob(";mobility=mobile"));
	assert_true(mob(";expires=600;MOBILITY=\"Mobile\";q=0.5"));
	assert_true(mob("; mobility = mobile "));
	assert_false(mob(";mobility=\"fixed\""));
	assert_false(mob(";mobility"));
	assert_false(mob(";mobility="));
	assert_false(mob(";mobility=\"mobile"));     /* unbalanced quote */
	assert_false(mob(";xmobility=mobile"));
	assert_false(mob(";mobilityx=mobile"));
	assert_false(mob(";mobility=mobiles"));
	assert_false(mob("mobility=mobile"));        /* not a parameter: no ';' */
	assert_false(mob(""));
	/* length is honoured: the match must lie inside len */
	assert_false(chat_contact_is_mobile(";mobility=mobile", 15));
	assert_true(chat_contact_is_mobile(";mobility=mobile;junk", 16));
}

/* ---- header count, escapers --------------------------------------------------------- */

static void test_count_headers(void **state)
{
	const char *m = "MESSAGE sip:a@b SIP/2.0\r\nVia: x\r\nFrom: y\r\n  folded\r\nTo: z\r\n\r\nbody: no\r\n";

	(void)state;
	assert_int_equal(chat_count_headers(m, strlen(m), 64), 3);
	assert_int_equal(chat_count_headers(m, strlen(m), 1), 2);    /* stops at max + 1 */
	assert_int_equal(chat_count_headers("A\r\nB: c", 7, 64), 0); /* last line incomplete */
	assert_int_equal(chat_count_headers("", 0, 64), 0);
}

static void test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_true(chat_json_escape("a\"b\\c\n\x01", 7, out, sizeof(out)));
	assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
	assert_false(chat_json_escape("\"\"\"", 3, out, 6));        /* 6 bytes needed + NUL */
	assert_int_equal(strlen(out), 4);
	assert_false(chat_json_escape("x", 1, out, 0));
	assert_true(chat_xml_escape("<a href='x'>&\"", 14, out, sizeof(out)));
	assert_string_equal(out, "&lt;a href=&apos;x&apos;&gt;&amp;&quot;");
	assert_false(chat_xml_escape("&&&&&&&&", 8, out, 20));
}

/* ---- configuration limits -------------------------------------------------------------- */

static int load_str(const char *text, struct cfg **c, char *err, size_t errlen)
{
	char path[] = "/tmp/test_chat_sip.XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	rc = cfg_load(path, "/tmp", c, err, errlen);
	unlink(path);
	return rc;
}

static void test_limits_defaults(void **state)
{
	struct cfg *c = NULL;
	char err[512];

	(void)state;
	assert_int_equal(load_str("chat = { domain = \"d.test\"; };\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c->chat.listen, "127.0.0.1:5060");
	assert_string_equal(c->chat.realm, "d.test");
	assert_int_equal(c->chat.max_message_size, 65536);
	assert_int_equal(c->chat.max_headers, 64);
	assert_int_equal(c->chat.max_registrations_per_user, 8);
	assert_int_equal(c->chat.max_connections, 1024);
	assert_int_equal(c->im.max_sessions, 0);
	assert_int_equal(c->im.idle_timeout_s, 600);
	assert_int_equal(c->im.inactivity_timeout_s, 3600);
	cfg_free(c);
}

static void test_limits_refused(void **state)
{
	static const struct {
		const char *conf, *key;
	} bad[] = {
		{ "chat = { max_message_size = 1023; };", "chat.max_message_size" },
		{ "chat = { max_message_size = 1048577; };", "chat.max_message_size" },
		{ "chat = { max_headers = 7; };", "chat.max_headers" },
		{ "chat = { max_registrations_per_user = 0; };", "chat.max_registrations_per_user" },
		{ "chat = { max_connections = 0; };", "chat.max_connections" },
		{ "chat = { registration_min_expires = 9; };", "chat.registration_min_expires" },
		{ "chat = { registration_min_expires = 100; registration_max_expires = 50; };",
		  "chat.registration_max_expires" },
		{ "chat = { push_max_attempts = 0; };", "chat.push_max_attempts" },
		{ "chat = { max_headers = \"64\"; };", "chat.max_headers" },
		{ "chat = { bogus = 1; };", "bogus" },
		{ "im = { max_sessions = -1; };", "im.max_sessions" },
		{ "im = { idle_timeout = 0; };", "im.idle_timeout" },
		{ "im = { inactivity_timeout = 0; };", "im.inactivity_timeout" },
		{ "im = 3;", "im" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *c = NULL;
		char err[512] = "";

		if (load_str(bad[i].conf, &c, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: %s", bad[i].conf);
		assert_null(c);
		if (!strstr(err, bad[i].key))
			fail_msg("%s: error does not name %s: %s", bad[i].conf, bad[i].key, err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonce_issue_verify),
		cmocka_unit_test(test_nonce_stale_and_bad),
		cmocka_unit_test(test_digest_rfc2617),
		cmocka_unit_test(test_digest_wrong),
		cmocka_unit_test(test_nc_replay),
		cmocka_unit_test(test_nc_eviction_never_reopens),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_contact_mobile),
		cmocka_unit_test(test_count_headers),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_limits_defaults),
		cmocka_unit_test(test_limits_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
