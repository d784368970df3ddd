/*
 * cv_time — UTC millisecond timestamps and their text forms (see cv_time.h).
 *
 * Calendar arithmetic is Howard Hinnant's days-from-civil / civil-from-days
 * on the proleptic Gregorian calendar: pure integer code, so it needs no
 * timegm()/gmtime_r(), never consults TZ or the tz database, takes no locks
 * and is safe from any thread.  Parsing is hand-written (no sscanf/strptime)
 * because those accept far too much: signs, spaces, one-digit fields.
 *
 * Every function here is reentrant; there is no state.
 */
#include "cv_time.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY INT64_C(86400000)

/* Lowest and highest year the canonical format (and CV_TIME_*_MS) covers. */
#define YEAR_MIN 1970
#define YEAR_MAX 9999

static void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these clock ids on Linux; keep a defined result. */
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cv_time_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t cv_time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian), m 1..12. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int y, unsigned m)
{
	static const unsigned char len[12] = { 31, 28, 31, 30, 31, 30,
					       31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Writes n decimal digits of v, zero padded. */
static void put_digits(char *p, unsigned v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

int cv_time_format_ms(int64_t ms, char out[CV_TIME_BUFSZ])
{
	int64_t days, rem;
	unsigned m, d, msec, sec;
	int y;

	if (ms < CV_TIME_MIN_MS || ms > CV_TIME_MAX_MS)
		return -EINVAL;
	days = ms / MS_PER_DAY;
	rem = ms % MS_PER_DAY;
	civil_from_days(days, &y, &m, &d);
	msec = (unsigned)(rem % 1000);
	sec = (unsigned)(rem / 1000);
	/* Fixed-width layout: "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	put_digits(out, (unsigned)y, 4);
	out[4] = '-';
	put_digits(out + 5, m, 2);
	out[7] = '-';
	put_digits(out + 8, d, 2);
	out[10] = 'T';
	put_digits(out + 11, sec / 3600, 2);
	out[13] = ':';
	put_digits(out + 14, sec / 60 % 60, 2);
	out[16] = ':';
	put_digits(out + 17, sec % 60, 2);
	out[19] = '.';
	put_digits(out + 20, msec, 3);
	out[23] = 'Z';
	out[24] = '\0';
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits at s (s must have them: stops at NUL since NUL fails). */
static bool get_digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * "YYYY-MM-DD" at s, calendar-checked; on success *days is days since the
 * epoch.  Shared by both parsers.
 */
static int parse_date(const char *s, int64_t *days, char *why, size_t whylen)
{
	unsigned y, m, d;

	if (!get_digits(s, 4, &y) || s[4] != '-' || !get_digits(s + 5, 2, &m) ||
	    s[7] != '-' || !get_digits(s + 8, 2, &d)) {
		set_why(why, whylen, "bad date (want YYYY-MM-DD)");
		return -EINVAL;
	}
	if (y < YEAR_MIN || y > YEAR_MAX) {
		set_why(why, whylen, "year %04u out of range %d..%d", y, YEAR_MIN, YEAR_MAX);
		return -EINVAL;
	}
	if (m < 1 || m > 12) {
		set_why(why, whylen, "month %02u out of range", m);
		return -EINVAL;
	}
	if (d < 1 || d > month_days((int)y, m)) {
		set_why(why, whylen, "day %02u out of range for %04u-%02u", d, y, m);
		return -EINVAL;
	}
	*days = days_from_civil(y, m, d);
	return 0;
}

static int check_clock(unsigned hh, unsigned mm, unsigned ss, char *why, size_t whylen)
{
	if (hh > 23) {
		set_why(why, whylen, "hour %02u out of range", hh);
		return -EINVAL;
	}
	if (mm > 59) {
		set_why(why, whylen, "minute %02u out of range", mm);
		return -EINVAL;
	}
	if (ss == 60) {
		/* ms since the epoch cannot represent one (POSIX time has none). */
		set_why(why, whylen, "leap second (second 60) not accepted");
		return -EINVAL;
	}
	if (ss > 59) {
		set_why(why, whylen, "second %02u out of range", ss);
		return -EINVAL;
	}
	return 0;
}

/*
 * ".f{1,9}" at *sp (the '.' included); advances *sp and returns the
 * milliseconds, digits after the third truncated (never rounded: rounding
 * could carry into the next second, day or year).
 */
static int parse_fraction(const char **sp, unsigned *msec, char *why, size_t whylen)
{
	const char *s = *sp + 1;
	unsigned v = 0;
	int n = 0;

	while (is_digit(s[n])) {
		if (n < 3)
			v = v * 10 + (unsigned)(s[n] - '0');
		n++;
	}
	if (n == 0) {
		set_why(why, whylen, "no digits after '.'");
		return -EINVAL;
	}
	if (n > 9) {
		set_why(why, whylen, "fraction longer than 9 digits");
		return -EINVAL;
	}
	for (int i = n; i < 3; i++)
		v *= 10;
	*msec = v;
	*sp = s + n;
	return 0;
}

/* "+HH:MM" / "-HH:MM" at s, exactly, to the end of the string. */
static bool is_offset(const char *s)
{
	unsigned hh, mm;

	return (s[0] == '+' || s[0] == '-') && get_digits(s + 1, 2, &hh) && s[3] == ':' &&
	       get_digits(s + 4, 2, &mm) && s[6] == '\0' && hh <= 23 && mm <= 59;
}

static int64_t compose(int64_t days, unsigned hh, unsigned mm, unsigned ss, unsigned msec)
{
	return days * MS_PER_DAY + (int64_t)(hh * 3600 + mm * 60 + ss) * 1000 + msec;
}

int cv_time_parse_rfc3339(const char *s, int64_t *ms, char *why, size_t whylen)
{
	unsigned hh, mm, ss, msec = 0;
	const char *p;
	int64_t days;
	int rc;

	if (!s || !*s) {
		set_why(why, whylen, "empty timestamp");
		return -EINVAL;
	}
	if (strnlen(s, 11) < 10) {
		set_why(why, whylen, "bad date (want YYYY-MM-DDTHH:MM:SS.sssZ)");
		return -EINVAL;
	}
	rc = parse_date(s, &days, why, whylen);
	if (rc)
		return rc;
	if (s[10] == 't' || s[10] == ' ') {
		set_why(why, whylen, "date and time must be separated by upper-case 'T'");
		return -EINVAL;
	}
	if (s[10] != 'T') {
		set_why(why, whylen, "missing time (want YYYY-MM-DDTHH:MM:SS.sssZ)");
		return -EINVAL;
	}
	p = s + 11;
	if (!get_digits(p, 2, &hh) || p[2] != ':' || !get_digits(p + 3, 2, &mm) ||
	    p[5] != ':' || !get_digits(p + 6, 2, &ss)) {
		set_why(why, whylen, "bad time of day (want HH:MM:SS)");
		return -EINVAL;
	}
	rc = check_clock(hh, mm, ss, why, whylen);
	if (rc)
		return rc;
	p += 8;
	if (*p == '.' || *p == ',') {
		if (*p == ',') {
			set_why(why, whylen, "decimal comma (want '.')");
			return -EINVAL;
		}
		rc = parse_fraction(&p, &msec, why, whylen);
		if (rc)
			return rc;
	}
	if (p[0] == 'Z' && p[1] == '\0')
		goto ok;
	if (p[0] == 'z' && p[1] == '\0') {
		set_why(why, whylen, "lower-case 'z' (want 'Z')");
		return -EINVAL;
	}
	if (is_offset(p)) {
		/*
		 * Even "+00:00" is refused: the contract stores UTC written
		 * one way, so "Z" is the only zone designator.
		 */
		if (strcmp(p + 1, "00:00") == 0)
			set_why(why, whylen, "not UTC (offset %s; write Z)", p);
		else
			set_why(why, whylen, "not UTC (offset %s)", p);
		return -EINVAL;
	}
	if (*p == '\0') {
		set_why(why, whylen, "missing time zone (want Z)");
		return -EINVAL;
	}
	set_why(why, whylen, "unexpected characters after the time (want Z)");
	return -EINVAL;
ok:
	*ms = compose(days, hh, mm, ss, msec);
	return 0;
}

int cv_time_parse_arg(const char *s, int64_t *ms, char *why, size_t whylen)
{
	unsigned hh = 0, mm = 0, ss = 0, msec = 0;
	const char *p;
	int64_t days;
	int rc;

	if (!s || !*s) {
		set_why(why, whylen, "empty time");
		return -EINVAL;
	}
	if (strnlen(s, 11) < 10) {
		set_why(why, whylen, "bad date (want YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS])");
		return -EINVAL;
	}
	rc = parse_date(s, &days, why, whylen);
	if (rc)
		return rc;
	if (s[10] == '\0')
		goto ok;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') {
		set_why(why, whylen, "unexpected characters after the date (want 'T' and a time)");
		return -EINVAL;
	}
	p = s + 11;
	if (!get_digits(p, 2, &hh) || p[2] != ':' || !get_digits(p + 3, 2, &mm)) {
		set_why(why, whylen, "bad time of day (want HH:MM[:SS[.fff]])");
		return -EINVAL;
	}
	p += 5;
	if (*p == ':') {
		if (!get_digits(p + 1, 2, &ss)) {
			set_why(why, whylen, "bad seconds (want HH:MM:SS)");
			return -EINVAL;
		}
		p += 3;
		if (*p == '.') {
			rc = parse_fraction(&p, &msec, why, whylen);
			if (rc)
				return rc;
		}
	}
	rc = check_clock(hh, mm, ss, why, whylen);
	if (rc)
		return rc;
	if (*p == '\0' || ((*p == 'Z' || *p == 'z') && p[1] == '\0') ||
	    strcmp(p, "+00:00") == 0)
		goto ok;
	if (is_offset(p)) {
		set_why(why, whylen, "not UTC (offset %s; give the time in UTC)", p);
		return -EINVAL;
	}
	set_why(why, whylen, "unexpected characters after the time");
	return -EINVAL;
ok:
	*ms = compose(days, hh, mm, ss, msec);
	return 0;
}
