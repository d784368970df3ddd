/*
 * test_log — common/cv_log: a record is exactly one line in both formats,
 * whatever a message or a field holds (newlines, quotes, control bytes,
 * invalid UTF-8 cannot split or forge a line), the logfmt quoting rule, the
 * journald priority prefix, truncation, and JOURNAL_STREAM detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cv_log.h"

static char line[8192];

static const char *fmt1(enum cv_log_format f, bool journal, int64_t ts, enum cv_log_level l,
			const char *comp, const char *msg, const struct cv_kv *kv, size_t n)
{
	size_t len = cv_log_format_line(line, sizeof(line), f, journal, ts, l, comp, msg, kv, n);

	assert_int_equal(len, strlen(line));
	/* One line: a single '\n', at the end. */
	assert_true(len > 0 && line[len - 1] == '\n');
	assert_ptr_equal(strchr(line, '\n'), line + len - 1);
	return line;
}

static void test_logfmt_basic(void **state)
{
	const struct cv_kv kv[] = { CV_KS("adapter", "archive"), CV_KI("events", 5000),
				    CV_KI("ms", 120), CV_KF("ratio", 0.5) };

	(void)state;
	assert_string_equal(fmt1(CV_LOG_LOGFMT, false, -1, CV_LOG_INFO, "deliver",
				 "batch delivered", kv, 4),
			    "level=info component=deliver msg=\"batch delivered\" adapter=archive"
			    " events=5000 ms=120 ratio=0.500\n");
	/* ts= first when given (not under journald). */
	assert_string_equal(fmt1(CV_LOG_LOGFMT, false, 0, CV_LOG_WARN, "x", "m", NULL, 0),
			    "ts=1970-01-01T00:00:00.000Z level=warn component=x msg=\"m\"\n");
	/* journald: the sd-daemon priority, no ts. */
	assert_string_equal(fmt1(CV_LOG_LOGFMT, true, -1, CV_LOG_ERROR, "store", "down", NULL, 0),
			    "<3>level=error component=store msg=\"down\"\n");
	assert_string_equal(fmt1(CV_LOG_LOGFMT, true, -1, CV_LOG_DEBUG, "s", "d", NULL, 0),
			    "<7>level=debug component=s msg=\"d\"\n");
	assert_string_equal(fmt1(CV_LOG_HUMAN, true, -1, CV_LOG_INFO, "s", "i", NULL, 0),
			    "<6>chatvault: info: s: i\n");
}

static void test_logfmt_escaping(void **state)
{
	/* A value trying to end the record and forge a second one. */
	const struct cv_kv kv[] = {
		CV_KS("reason", "bad\nlevel=error component=x msg=\"forged\""),
		CV_KS("empty", ""),
		CV_KS("null", NULL),
		CV_KS("space", "a b"),
		CV_KS("eq", "a=b"),
		CV_KS("ctl", "x\001\033[31my\x7f\r\t"),
		CV_KS("bs", "c:\\dir"),
		CV_KS("utf8", "caf\xc3\xa9"),
		CV_KS("bad utf8", "a\xff\xc3(b"),
		CV_KS("path", "/var/a-b_c.tar.zst"),
	};

	(void)state;
	assert_string_equal(
		fmt1(CV_LOG_LOGFMT, false, -1, CV_LOG_WARN, "in gest", "line1\nline2 \"q\"", kv, 10),
		"level=warn component=\"in gest\" msg=\"line1\\nline2 \\\"q\\\"\""
		" reason=\"bad\\nlevel=error component=x msg=\\\"forged\\\"\""
		" empty=\"\" null=\"\" space=\"a b\" eq=\"a=b\""
		" ctl=\"x\\u0001\\u001b[31my\\u007f\\r\\t\" bs=\"c:\\\\dir\""
		" utf8=\"caf\xc3\xa9\" bad_utf8=\"a\\ufffd\\ufffd(b\" path=/var/a-b_c.tar.zst\n");
}

static void test_human(void **state)
{
	const struct cv_kv kv[] = { CV_KS("adapter", "arch ive"), CV_KI("n", -3) };

	(void)state;
	/* The message keeps its quotes (people read it) but never its newline. */
	assert_string_equal(fmt1(CV_LOG_HUMAN, false, 12345, CV_LOG_WARN, "deliver",
				 "adapter \"x\": a\nb\tc", kv, 2),
			    "chatvault: warn: deliver: adapter \"x\": a\\nb\\tc adapter=\"arch ive\""
			    " n=-3\n");
	assert_string_equal(fmt1(CV_LOG_HUMAN, false, -1, CV_LOG_ERROR, "main", "plain", NULL, 0),
			    "chatvault: error: main: plain\n");
}

static void test_truncation(void **state)
{
	char big[20000];
	char small[64];
	struct cv_kv kv[1];
	size_t n;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[100] = '\n';
	kv[0] = CV_KS("v", big);
	fmt1(CV_LOG_LOGFMT, false, -1, CV_LOG_INFO, "c", "m", kv, 1);
	assert_true(strlen(line) < sizeof(line));
	assert_non_null(strstr(line, "\" truncated=true\n"));
	/* Escapes are never cut in half. */
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)(i % 2 ? '\n' : '"');
	kv[0] = CV_KS("v", big);
	n = cv_log_format_line(small, sizeof(small), CV_LOG_LOGFMT, false, -1, CV_LOG_INFO, "c",
			       "m", kv, 1);
	assert_int_equal(n, strlen(small));
	assert_ptr_equal(strchr(small, '\n'), small + n - 1);
	assert_non_null(strstr(small, "\" truncated=true\n"));
	{
		/* the value is whole escapes: an even number of chars before '"' */
		const char *v = strstr(small, "v=\"") + 3;
		size_t vl = (size_t)(strstr(small, "\" truncated") - v);

		assert_int_equal(vl % 2, 0);
		for (size_t i = 0; i < vl; i += 2)
			assert_true(v[i] == '\\' && (v[i + 1] == '"' || v[i + 1] == 'n'));
	}
	/* Tiny buffers: still a terminated string. */
	n = cv_log_format_line(small, 8, CV_LOG_LOGFMT, false, -1, CV_LOG_INFO, "c", "m", NULL, 0);
	assert_int_equal(n, strlen(small));
}

static void test_parse_and_journal(void **state)
{
	struct stat st;
	char v[64];

	(void)state;
	assert_int_equal(cv_log_format_parse("human"), CV_LOG_HUMAN);
	assert_int_equal(cv_log_format_parse("logfmt"), CV_LOG_LOGFMT);
	assert_int_equal(cv_log_format_parse("json"), -1);
	unsetenv("JOURNAL_STREAM");
	assert_false(cv_log_stderr_is_journal());
	assert_int_equal(fstat(2, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	assert_true(cv_log_stderr_is_journal());
	/* Inherited from a parent whose stderr was the journal: not ours. */
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", v, 1);
	assert_false(cv_log_stderr_is_journal());
	setenv("JOURNAL_STREAM", "garbage", 1);
	assert_false(cv_log_stderr_is_journal());
	unsetenv("JOURNAL_STREAM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logfmt_basic),
		cmocka_unit_test(test_logfmt_escaping),
		cmocka_unit_test(test_human),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_parse_and_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
