/*
 * test_chat_store — the pure parts of chat/chat_store (no server): the
 * digest credential (HA1) against RFC 2617's example, SIP URI
 * canonicalisation and refusal, and the password-file rules.  The database
 * paths run against a real PostgreSQL in tests/integration/t_chat_users.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chat_store.h"

/* RFC 2617 §3.5: Mufasa / testrealm@host.com / "Circle Of Life". */
static void test_ha1_rfc2617(void **state)
{
	char ha1[CHAT_HA1_HEX];

	(void)state;
	assert_int_equal(chat_ha1_hex("Mufasa", "testrealm@host.com", "Circle Of Life", ha1), 0);
	assert_string_equal(ha1, "939e7578ed9e3c518a452acee763bce9");
	/* md5 -s "alice:contoso.com:pw" */
	assert_int_equal(chat_ha1_hex("alice", "contoso.com", "pw", ha1), 0);
	assert_int_equal(strlen(ha1), 32);
	assert_int_equal(chat_ha1_hex("", "r", "p", ha1), -EINVAL);
	assert_int_equal(chat_ha1_hex("u", "", "p", ha1), -EINVAL);
	assert_int_equal(chat_ha1_hex("u", "r", "", ha1), -EINVAL);
	assert_int_equal(chat_ha1_hex(NULL, "r", "p", ha1), -EINVAL);
}

static void test_uri_valid(void **state)
{
	static const struct {
		const char *in, *want;
	} ok[] = {
		{ "sip:alice@contoso.com", "sip:alice@contoso.com" },
		{ "SIP:Alice@Contoso.COM", "sip:alice@contoso.com" },
		{ "sip:a.b_c+d-e@x", "sip:a.b_c+d-e@x" },
		{ "sip:1@a-b.c-d.example", "sip:1@a-b.c-d.example" },
	};
	char out[CHAT_URI_MAX], why[160], user[CHAT_USER_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (chat_uri_normalize(ok[i].in, out, sizeof(out), why, sizeof(why)) != 0)
			fail_msg("%s refused: %s", ok[i].in, why);
		assert_string_equal(out, ok[i].want);
	}
	assert_int_equal(chat_uri_user("sip:alice@contoso.com", user, sizeof(user)), 0);
	assert_string_equal(user, "alice");
	assert_int_equal(chat_uri_user("alice@contoso.com", user, sizeof(user)), -EINVAL);
}

static void test_uri_refused(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "not a SIP URI" },
		{ "alice@contoso.com", "not a SIP URI" },
		{ "sips:alice@contoso.com", "not a SIP URI" },
		{ "tel:+15551234", "not a SIP URI" },
		{ "sip:alice", "exactly one '@'" },
		{ "sip:a@b@c", "exactly one '@'" },
		{ "sip:@contoso.com", "empty user part" },
		{ "sip:alice@", "empty domain" },
		{ "sip:al ice@contoso.com", "user part" },
		{ "sip:a'b@contoso.com", "user part" },
		{ "sip:a\"b@contoso.com", "user part" },
		{ "sip:a%40@contoso.com", "user part" },
		{ "sip:a;x=1@contoso.com", "user part" },
		{ "sip:al\xc3\xa9@contoso.com", "user part" },
		{ "sip:alice@contoso.com;transport=tcp", "domain" },
		{ "sip:alice@contoso.com:5060", "domain" },
		{ "sip:alice@-contoso.com", "starts with '-'" },
		{ "sip:alice@contoso-.com", "ends with '-'" },
		{ "sip:alice@contoso..com", "empty label" },
		{ "sip:alice@.contoso.com", "empty label" },
		{ "sip:alice@contoso.com.", "empty label" },
		{ "sip:alice@con_toso.com", "domain" },
	};
	char out[CHAT_URI_MAX], why[160], big[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (chat_uri_normalize(bad[i].in, out, sizeof(out), why, sizeof(why)) != -EINVAL)
			fail_msg("%s accepted", bad[i].in);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].in, why, bad[i].why);
	}
	/* lengths: user part 64, labels 63, domain 253, whole URI bounded */
	snprintf(big, sizeof(big), "sip:%0*d@x.com", 64, 0);
	assert_int_equal(chat_uri_normalize(big, out, sizeof(out), why, sizeof(why)), 0);
	snprintf(big, sizeof(big), "sip:%0*d@x.com", 65, 0);
	assert_int_equal(chat_uri_normalize(big, out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than 64"));
	snprintf(big, sizeof(big), "sip:a@%0*d.com", 64, 0);
	assert_int_equal(chat_uri_normalize(big, out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than 63"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "sip:a@", 6);
	assert_int_equal(chat_uri_normalize(big, out, sizeof(out), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than"));
	/* too small an output buffer is refused, not overrun */
	assert_int_equal(chat_uri_normalize("sip:a@b", out, 8, why, sizeof(why)), -EINVAL);
}

/* ---- password files --------------------------------------------------- */

struct tmpdir {
	char dir[64];
};

static int setup_dir(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/test_chat_store.XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	*state = t;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmpdir *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static const char *write_file(struct tmpdir *t, const char *name, const void *data, size_t len,
			      mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", t->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_password_file(void **state)
{
	struct tmpdir *t = *state;
	char pw[CHAT_PASSWORD_MAX + 1], why[160], big[CHAT_PASSWORD_MAX + 2];
	const char *p;

	p = write_file(t, "ok", "s3cret\nsecond line\n", 19, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), 0);
	assert_string_equal(pw, "s3cret");
	p = write_file(t, "crlf", "with space \r\n", 13, 0400);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), 0);
	assert_string_equal(pw, "with space ");   /* spaces are part of a password */
	p = write_file(t, "nonl", "no-newline", 10, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), 0);
	assert_string_equal(pw, "no-newline");
	p = write_file(t, "utf8", "p\xc3\xa4ss\n", 6, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), 0);

	/* group- or world-accessible files are refused with the fix */
	p = write_file(t, "world", "s3cret\n", 7, 0644);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "chmod 600"));
	assert_null(strstr(why, "s3cret"));
	p = write_file(t, "group", "s3cret\n", 7, 0640);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EPERM);
	p = write_file(t, "gw", "s3cret\n", 7, 0620);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EPERM);

	/* empty, blank first line, control characters, too long */
	p = write_file(t, "empty", "", 0, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "empty"));
	p = write_file(t, "blank", "\ns3cret\n", 8, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	p = write_file(t, "cr", "\r\n", 2, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	p = write_file(t, "tab", "a\tb\n", 4, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "control character (byte 2)"));
	p = write_file(t, "nul", "ab\0cd\n", 6, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	memset(big, 'x', sizeof(big));
	p = write_file(t, "max", big, CHAT_PASSWORD_MAX, 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), 0);
	assert_int_equal(strlen(pw), CHAT_PASSWORD_MAX);
	p = write_file(t, "long", big, sizeof(big), 0600);
	assert_int_equal(chat_password_read(p, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than"));
	/* a small caller buffer is not overrun */
	p = write_file(t, "ok2", "0123456789\n", 11, 0600);
	assert_int_equal(chat_password_read(p, pw, 8, why, sizeof(why)), -EINVAL);

	/* not a file */
	assert_int_equal(chat_password_read(t->dir, pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	assert_int_equal(chat_password_read("/dev/null", pw, sizeof(pw), why, sizeof(why)), -EINVAL);
	{
		char missing[128];

		snprintf(missing, sizeof(missing), "%s/missing", t->dir);
		assert_int_equal(chat_password_read(missing, pw, sizeof(pw), why, sizeof(why)),
				 -ENOENT);
	}
}

/* A pipe (what "--password-file -" reads) is accepted whatever its mode. */
static void test_password_pipe(void **state)
{
	char pw[CHAT_PASSWORD_MAX + 1], why[160], path[64];
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "piped\r\nrest", 11), 11);
	close(fds[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	assert_int_equal(chat_password_read(path, pw, sizeof(pw), why, sizeof(why)), 0);
	assert_string_equal(pw, "piped");
	close(fds[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ha1_rfc2617),
		cmocka_unit_test(test_uri_valid),
		cmocka_unit_test(test_uri_refused),
		cmocka_unit_test_setup_teardown(test_password_file, setup_dir, teardown_dir),
		cmocka_unit_test(test_password_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
