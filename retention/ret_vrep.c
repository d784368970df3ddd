/*
 * ret_vrep — how `chatvault verify` reports (one line per finding, the
 * first failure remembered for the contract's stderr line) and splits
 * members into lines; see ret_vint.h.
 */
#include "ret_vint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

static void vline(struct ret_vrep *r, const char *prefix, char *first, const char *file,
		  const char *member, const char *fmt, va_list ap)
{
	char what[RET_VERIFY_MSGLEN], msg[RET_VERIFY_MSGLEN + 512];

	vsnprintf(what, sizeof(what), fmt, ap);
	snprintf(msg, sizeof(msg), "%s%s%s%s%s%s", file ? file : "", file ? ": " : "",
		 member ? "member " : "", member ? member : "", member ? ": " : "", what);
	fprintf(r->out, "%s%s\n", prefix, msg);
	if (first && !first[0]) {
		size_t n = strlen(msg);

		if (n >= RET_VERIFY_MSGLEN)
			n = RET_VERIFY_MSGLEN - 1;
		memcpy(first, msg, n);
		first[n] = '\0';
	}
}

void ret_vrep_fail(struct ret_vrep *r, const char *file, const char *member,
		   const char *fmt, ...)
{
	va_list ap;

	r->res->problems++;
	va_start(ap, fmt);
	vline(r, "FAIL: ", r->res->first_problem, file, member, fmt, ap);
	va_end(ap);
}

void ret_vrep_error(struct ret_vrep *r, const char *file, const char *fmt, ...)
{
	va_list ap;

	r->res->unreadable++;
	va_start(ap, fmt);
	vline(r, "ERROR: ", r->res->first_unreadable, file, NULL, fmt, ap);
	va_end(ap);
}

void ret_vrep_note(struct ret_vrep *r, const char *fmt, ...)
{
	va_list ap;

	r->res->notes++;
	if (r->quiet)
		return;
	va_start(ap, fmt);
	vline(r, "note: ", NULL, NULL, NULL, fmt, ap);
	va_end(ap);
}

void ret_vrep_gap(struct ret_vrep *r, const char *fmt, ...)
{
	va_list ap;

	if (r->quiet)
		return;
	va_start(ap, fmt);
	vline(r, "known gap: ", NULL, NULL, NULL, fmt, ap);
	va_end(ap);
}

void ret_vrep_reader(struct ret_vrep *r, const char *path, int rc, const char *err)
{
	size_t n = strlen(path);
	const char *rest = err;

	/* bundle.c says "bundle PATH: what"; we name the file once. */
	if (strncmp(err, "bundle ", 7) == 0 && strncmp(err + 7, path, n) == 0 &&
	    strncmp(err + 7 + n, ": ", 2) == 0)
		rest = err + 7 + n + 2;
	if (!*rest)
		rest = rc == -EBADMSG ? "damaged" : strerror(-rc);
	if (rc == -EBADMSG)
		ret_vrep_fail(r, path, NULL, "%s", rest);
	else
		ret_vrep_error(r, path, "%s", rest);
}

const char *ret_vbase(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

const char *ret_vrange(char *buf, int64_t a, int64_t b)
{
	if (a == b)
		snprintf(buf, RET_VRANGE_LEN, "%" PRId64, a);
	else
		snprintf(buf, RET_VRANGE_LEN, "%" PRId64 "..%" PRId64, a, b);
	return buf;
}

