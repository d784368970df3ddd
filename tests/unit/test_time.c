/*
 * test_time — cmocka tests for common/cv_time.c: the canonical format, the
 * strict RFC 3339 parser used for event timestamps and the looser parser
 * used for command-line bounds.  glibc's timegm()/gmtime_r() serve as the
 * independent oracle for the calendar arithmetic.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cv_time.h"

#define DAY_MS INT64_C(86400000)

static int64_t oracle_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm = {
		.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		.tm_hour = h, .tm_min = mi, .tm_sec = s,
	};

	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void assert_format(int64_t ms, const char *want)
{
	char out[CV_TIME_BUFSZ];

	assert_int_equal(cv_time_format_ms(ms, out), 0);
	assert_string_equal(out, want);
	assert_int_equal(strlen(out), 24);
}

static void test_format_known(void **state)
{
	(void)state;
	assert_format(0, "1970-01-01T00:00:00.000Z");
	assert_format(1, "1970-01-01T00:00:00.001Z");
	assert_format(1795255200123, "2026-11-21T10:00:00.123Z");
	assert_format(951782400000, "2000-02-29T00:00:00.000Z");
	assert_format(1709251199999, "2024-02-29T23:59:59.999Z");
	assert_format(946684799999, "1999-12-31T23:59:59.999Z");
	assert_format(946684800000, "2000-01-01T00:00:00.000Z");
	assert_format(2147483648000, "2038-01-19T03:14:08.000Z");
	assert_format(4107542400000, "2100-03-01T00:00:00.000Z");
	assert_format(CV_TIME_MAX_MS, "9999-12-31T23:59:59.999Z");
}

static void test_format_range(void **state)
{
	char out[CV_TIME_BUFSZ];

	(void)state;
	assert_int_equal(cv_time_format_ms(-1, out), -EINVAL);
	assert_int_equal(cv_time_format_ms(CV_TIME_MAX_MS + 1, out), -EINVAL);
	assert_int_equal(cv_time_format_ms(INT64_MIN, out), -EINVAL);
	assert_int_equal(cv_time_format_ms(INT64_MAX, out), -EINVAL);
}

/*
 * Every day from 1970 to 9999 (about 2.9 million): format agrees with
 * gmtime_r, and parse(format(x)) == x.  The time of day walks so that all
 * hours, minutes and milliseconds get exercised too.
 */
static void test_every_day_against_oracle(void **state)
{
	char out[CV_TIME_BUFSZ], want[96], why[128];
	int64_t last_day = CV_TIME_MAX_MS / DAY_MS, back;

	(void)state;
	for (int64_t day = 0; day <= last_day; day++) {
		int64_t ms = day * DAY_MS + (day * 7919 * 1000 + day % 1000) % DAY_MS;
		time_t t = (time_t)(ms / 1000);
		struct tm tm;

		assert_int_equal(cv_time_format_ms(ms, out), 0);
		if (day % 97 == 0 || day < 1000 || day > last_day - 1000) {
			assert_non_null(gmtime_r(&t, &tm));
			snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
			assert_string_equal(out, want);
		}
		assert_int_equal(cv_time_parse_rfc3339(out, &back, why, sizeof(why)), 0);
		assert_int_equal(back, ms);
	}
}

static void assert_parses(const char *s, int64_t want)
{
	char why[128] = "";
	int64_t ms = -42;
	int rc = cv_time_parse_rfc3339(s, &ms, why, sizeof(why));

	if (rc != 0)
		fail_msg("\"%s\" refused: %s", s, why);
	assert_int_equal(ms, want);
}

static void assert_refused(const char *s, const char *reason)
{
	char why[128] = "";
	int64_t ms = -42;
	int rc = cv_time_parse_rfc3339(s, &ms, why, sizeof(why));

	if (rc != -EINVAL)
		fail_msg("\"%s\" accepted as %lld", s ? s : "(null)", (long long)ms);
	assert_int_equal(ms, -42); /* untouched on error */
	if (!strstr(why, reason))
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s ? s : "(null)", why, reason);
	assert_null(strchr(why, '\n'));
	assert_true(why[0] >= 'a' && why[0] <= 'z');
}

static void test_leap_years(void **state)
{
	(void)state;
	assert_parses("2000-02-29T00:00:00Z", oracle_ms(2000, 2, 29, 0, 0, 0, 0));
	assert_parses("2024-02-29T12:00:00Z", oracle_ms(2024, 2, 29, 12, 0, 0, 0));
	assert_parses("2400-02-29T00:00:00Z", oracle_ms(2400, 2, 29, 0, 0, 0, 0));
	assert_parses("1972-02-29T00:00:00Z", oracle_ms(1972, 2, 29, 0, 0, 0, 0));
	assert_refused("2023-02-29T00:00:00Z", "day 29 out of range for 2023-02");
	assert_refused("2100-02-29T00:00:00Z", "day 29 out of range for 2100-02");
	assert_refused("2200-02-29T00:00:00Z", "day 29");
	assert_refused("2024-02-30T00:00:00Z", "day 30");
}

static void test_month_lengths(void **state)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	char s[64];

	(void)state;
	for (int m = 1; m <= 12; m++) {
		snprintf(s, sizeof(s), "2025-%02d-%02dT23:59:59.999Z", m, len[m - 1]);
		assert_parses(s, oracle_ms(2025, m, len[m - 1], 23, 59, 59, 999));
		snprintf(s, sizeof(s), "2025-%02d-%02dT00:00:00Z", m, len[m - 1] + 1);
		assert_refused(s, "out of range");
		snprintf(s, sizeof(s), "2025-%02d-01T00:00:00Z", m);
		assert_parses(s, oracle_ms(2025, m, 1, 0, 0, 0, 0));
	}
	assert_refused("2025-00-10T00:00:00Z", "month 00 out of range");
	assert_refused("2025-13-10T00:00:00Z", "month 13 out of range");
	assert_refused("2025-01-00T00:00:00Z", "day 00 out of range");
}

static void test_boundaries(void **state)
{
	(void)state;
	assert_parses("1970-01-01T00:00:00.000Z", 0);
	assert_parses("1970-01-01T00:00:00.001Z", 1);
	assert_parses("9999-12-31T23:59:59.999Z", CV_TIME_MAX_MS);
	assert_parses("1999-12-31T23:59:59.999Z", 946684799999);
	assert_parses("2000-01-01T00:00:00.000Z", 946684800000);
	assert_parses("2038-01-19T03:14:08Z", 2147483648000);
	assert_refused("1969-12-31T23:59:59.999Z", "year 1969 out of range");
	assert_refused("0000-01-01T00:00:00Z", "year 0000 out of range");
	assert_parses("2026-11-21T23:59:59Z", oracle_ms(2026, 11, 21, 23, 59, 59, 0));
	assert_refused("2026-11-21T24:00:00Z", "hour 24 out of range");
	assert_refused("2026-11-21T23:60:00Z", "minute 60 out of range");
	assert_refused("2026-11-21T23:59:60Z", "leap second");
	assert_refused("2016-12-31T23:59:60Z", "leap second");
	assert_refused("2026-11-21T23:59:61Z", "second 61 out of range");
	assert_refused("2026-11-21T23:59:99Z", "second 99 out of range");
}

static void test_fraction(void **state)
{
	int64_t base = oracle_ms(2026, 11, 21, 10, 0, 0, 0);

	(void)state;
	assert_parses("2026-11-21T10:00:00Z", base);
	assert_parses("2026-11-21T10:00:00.1Z", base + 100);
	assert_parses("2026-11-21T10:00:00.12Z", base + 120);
	assert_parses("2026-11-21T10:00:00.123Z", base + 123);
	/* Truncated, never rounded: .9999 stays in the same second. */
	assert_parses("2026-11-21T10:00:00.9999Z", base + 999);
	assert_parses("2026-11-21T10:00:00.123456Z", base + 123);
	assert_parses("2026-11-21T10:00:00.123999999Z", base + 123);
	assert_parses("2026-11-21T23:59:59.999999999Z", base + 14 * 3600000 - 1);
	assert_parses("2026-11-21T10:00:00.000000000Z", base);
	assert_refused("2026-11-21T10:00:00.1234567890Z", "fraction longer than 9 digits");
	assert_refused("2026-11-21T10:00:00.Z", "no digits after '.'");
	assert_refused("2026-11-21T10:00:00,123Z", "decimal comma");
}

static void test_offsets(void **state)
{
	(void)state;
	assert_refused("2026-11-21T10:00:00+02:00", "not UTC (offset +02:00)");
	assert_refused("2026-11-21T10:00:00.123-05:30", "not UTC (offset -05:30)");
	assert_refused("2026-11-21T10:00:00+00:00", "not UTC (offset +00:00");
	assert_refused("2026-11-21T10:00:00-00:00", "not UTC (offset -00:00");
	assert_refused("2026-11-21T10:00:00+0200", "unexpected characters");
	assert_refused("2026-11-21T10:00:00+25:00", "unexpected characters");
	assert_refused("2026-11-21T10:00:00", "missing time zone");
	assert_refused("2026-11-21T10:00:00.5", "missing time zone");
	assert_refused("2026-11-21T10:00:00z", "lower-case 'z'");
	assert_refused("2026-11-21T10:00:00ZZ", "unexpected characters");
	assert_refused("2026-11-21T10:00:00Z ", "unexpected characters");
	assert_refused("2026-11-21T10:00:00 Z", "unexpected characters");
}

static void test_bad_formats(void **state)
{
	char why[64];
	int64_t ms;

	(void)state;
	assert_refused(NULL, "empty timestamp");
	assert_refused("", "empty timestamp");
	assert_refused("2026", "bad date");
	assert_refused("2026-11-21", "missing time");
	assert_refused("2026-11-21t10:00:00Z", "upper-case 'T'");
	assert_refused("2026-11-21 10:00:00Z", "upper-case 'T'");
	assert_refused("2026-11-21T10:00Z", "bad time of day");
	assert_refused("2026-11-21T1:00:00Z", "bad time of day");
	assert_refused("2026-11-21T10:0:00Z", "bad time of day");
	assert_refused("2026-1-21T10:00:00Z", "bad date");
	assert_refused("26-11-21T10:00:00Z", "bad date");
	assert_refused("20261121T100000Z", "bad date");
	assert_refused("2026/11/21T10:00:00Z", "bad date");
	assert_refused("+2026-11-21T10:00:00Z", "bad date");
	assert_refused(" 2026-11-21T10:00:00Z", "bad date");
	assert_refused("2026-11-21T10:00:00.12a3Z", "unexpected characters");
	assert_refused("yesterday at noon", "bad date");
	assert_refused("1795255200123", "bad date");
	/* A tiny reason buffer truncates, never overflows. */
	assert_int_equal(cv_time_parse_rfc3339("x", &ms, why, 4), -EINVAL);
	assert_int_equal(strlen(why), 3);
	/* And no buffer at all is allowed. */
	assert_int_equal(cv_time_parse_rfc3339("x", &ms, NULL, 0), -EINVAL);
}

static void assert_arg(const char *s, int64_t want)
{
	char why[128] = "";
	int64_t ms = -42;
	int rc = cv_time_parse_arg(s, &ms, why, sizeof(why));

	if (rc != 0)
		fail_msg("arg \"%s\" refused: %s", s, why);
	assert_int_equal(ms, want);
}

static void assert_arg_refused(const char *s, const char *reason)
{
	char why[128] = "";
	int64_t ms = -42;
	int rc = cv_time_parse_arg(s, &ms, why, sizeof(why));

	if (rc != -EINVAL)
		fail_msg("arg \"%s\" accepted as %lld", s ? s : "(null)", (long long)ms);
	assert_int_equal(ms, -42);
	if (!strstr(why, reason))
		fail_msg("arg \"%s\": reason \"%s\" lacks \"%s\"", s ? s : "(null)", why, reason);
}

static void test_arg_forms(void **state)
{
	int64_t day = oracle_ms(2026, 11, 21, 0, 0, 0, 0);

	(void)state;
	assert_arg("2026-11-21", day);
	assert_arg("1970-01-01", 0);
	assert_arg("2024-02-29", oracle_ms(2024, 2, 29, 0, 0, 0, 0));
	assert_arg("2026-11-21T10:30", day + 37800000);
	assert_arg("2026-11-21 10:30", day + 37800000);
	assert_arg("2026-11-21t10:30", day + 37800000);
	assert_arg("2026-11-21T10:30Z", day + 37800000);
	assert_arg("2026-11-21T10:30:15", day + 37815000);
	assert_arg("2026-11-21T10:30:15Z", day + 37815000);
	assert_arg("2026-11-21T10:30:15z", day + 37815000);
	assert_arg("2026-11-21T10:30:15+00:00", day + 37815000);
	assert_arg("2026-11-21T10:30:15.5", day + 37815500);
	assert_arg("2026-11-21T10:30:15.250Z", day + 37815250);
	assert_arg("2026-11-21 10:30:15.123456+00:00", day + 37815123);
	assert_arg("2026-11-21T00:00", day);
	assert_arg("9999-12-31T23:59:59.999Z", CV_TIME_MAX_MS);
	/* Same instant whichever spelling is used. */
	assert_arg("2026-11-21T10:00:00.123Z", 1795255200123);
}

static void test_arg_refused(void **state)
{
	(void)state;
	assert_arg_refused(NULL, "empty");
	assert_arg_refused("", "empty");
	assert_arg_refused("2026-11", "bad date");
	assert_arg_refused("2026-02-30", "day 30 out of range");
	assert_arg_refused("2025-02-29", "day 29 out of range");
	assert_arg_refused("1969-12-31", "year 1969");
	assert_arg_refused("2026-11-21T", "bad time of day");
	assert_arg_refused("2026-11-21T10", "bad time of day");
	assert_arg_refused("2026-11-21T10:", "bad time of day");
	assert_arg_refused("2026-11-21T25:00", "hour 25");
	assert_arg_refused("2026-11-21T10:61", "minute 61");
	assert_arg_refused("2026-11-21T10:00:60", "leap second");
	assert_arg_refused("2026-11-21T10:00:5", "bad seconds");
	assert_arg_refused("2026-11-21T10:00.5", "unexpected characters");
	assert_arg_refused("2026-11-21T10:00:00+02:00", "not UTC (offset +02:00");
	assert_arg_refused("2026-11-21T10:00:00-00:00", "not UTC (offset -00:00");
	assert_arg_refused("2026-11-21T10:00:00 UTC", "unexpected characters");
	assert_arg_refused("2026-11-21X10:00", "unexpected characters after the date");
	assert_arg_refused("2026-11-21 ", "bad time of day");
	assert_arg_refused("21/11/2026", "bad date");
	assert_arg_refused("now", "bad date");
}

static void test_clocks(void **state)
{
	int64_t a, b, wall = (int64_t)time(NULL) * 1000;
	int64_t now = cv_time_now_ms();

	(void)state;
	/* Within a couple of seconds of time(2), and a real date. */
	assert_true(now >= wall - 2000 && now <= wall + 2000);
	assert_true(now > 1700000000000);
	a = cv_time_mono_ms();
	b = cv_time_mono_ms();
	assert_true(a > 0);
	assert_true(b >= a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_format_range),
		cmocka_unit_test(test_every_day_against_oracle),
		cmocka_unit_test(test_leap_years),
		cmocka_unit_test(test_month_lengths),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_fraction),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_bad_formats),
		cmocka_unit_test(test_arg_forms),
		cmocka_unit_test(test_arg_refused),
		cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests_name("cv_time", tests, NULL, NULL);
}
