/*
 * ret_vtomb — the strict tombstone parser of `chatvault verify`; see
 * ret_verify_tomb_parse() in ret_verify.h and docs/FORMATS.md §2.
 *
 * A tombstone is the only evidence left of a purged bundle, so it is read
 * as strictly as a manifest: every documented key with its type, nothing
 * else, duplicate keys refused, every length and number range checked.
 * Anything off is -EBADMSG with one reason naming the key.
 */
#include "ret_verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cv_time.h"
#include "cv_util.h"

#define TOMB_SERVER_MAX 255   /* as source.server in ingest/event.c */

static const char *const tomb_keys[] = {
	"format", "bundle", "bundle_sha256", "adapter", "batch_no", "first_staging_id",
	"last_staging_id", "event_count", "staging_ids", "min_ts", "max_ts",
	"manifest_sha256", "prev_manifest_sha256", "sources", "purged_at", "reason",
	"audit_id",
};

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* Instance names as the archive adapter accepts them in a file name. */
static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int get_str(json_t *o, const char *key, const char **out, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_string(j))
		return bad(err, errlen, "key \"%s\": %s", key, j ? "not a string" : "missing");
	*out = json_string_value(j);
	if (strlen(*out) != json_string_length(j))
		return bad(err, errlen, "key \"%s\": contains NUL", key);
	return 0;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t *out, char *err,
		   size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (!json_is_integer(j))
		return bad(err, errlen, "key \"%s\": %s", key,
			   j ? "not an integer" : "missing");
	*out = (int64_t)json_integer_value(j);
	if (*out < min)
		return bad(err, errlen, "key \"%s\": %" PRId64 " is below %" PRId64, key,
			   *out, min);
	return 0;
}

static int get_hash(json_t *o, const char *key, bool empty_ok, char out[65], char *err,
		    size_t errlen)
{
	const char *s;
	int rc = get_str(o, key, &s, err, errlen);

	if (rc)
		return rc;
	if (!(empty_ok && !*s) && !cv_is_sha256_hex(s))
		return bad(err, errlen, "key \"%s\": not 64 lower-case hex digits", key);
	snprintf(out, 65, "%s", s);
	return 0;
}

/* A canonical UTC timestamp, "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static int get_ts(json_t *o, const char *key, char out[32], int64_t *ms, char *err,
		  size_t errlen)
{
	char why[128], canon[CV_TIME_BUFSZ];
	const char *s;
	int rc = get_str(o, key, &s, err, errlen);

	if (rc)
		return rc;
	if (cv_time_parse_rfc3339(s, ms, why, sizeof(why)) != 0)
		return bad(err, errlen, "key \"%s\": %s", key, why);
	if (cv_time_format_ms(*ms, canon) != 0 || strcmp(canon, s) != 0)
		return bad(err, errlen, "key \"%s\": not canonical (want %s)", key, canon);
	snprintf(out, 32, "%s", s);
	return 0;
}

/*
 * [[a, b], ...] ascending, disjoint, a >= min.  *out is malloc'd (NULL when
 * empty); *count gets the number of members, saturating at INT64_MAX.
 */
static int get_ranges(json_t *arr, const char *what, int64_t min, struct ret_verify_range **out,
		      size_t *n, int64_t *count, char *err, size_t errlen)
{
	size_t i;
	json_t *j;

	*out = NULL;
	*n = 0;
	*count = 0;
	if (!json_is_array(arr))
		return bad(err, errlen, "%s: not an array", what);
	if (json_array_size(arr) == 0)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach(arr, i, j) {
		json_t *ja = json_array_get(j, 0), *jb = json_array_get(j, 1);
		int64_t a, b;

		if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_integer(ja) ||
		    !json_is_integer(jb))
			return bad(err, errlen, "%s[%zu]: not [a, b]", what, i);
		a = (int64_t)json_integer_value(ja);
		b = (int64_t)json_integer_value(jb);
		if (a < min || a > b || (i > 0 && a <= (*out)[i - 1].b))
			return bad(err, errlen, "%s[%zu]: [%" PRId64 ", %" PRId64 "] out of "
				   "order or range", what, i, a, b);
		(*out)[i] = (struct ret_verify_range){ a, b };
		if ((uint64_t)b - (uint64_t)a >= (uint64_t)(INT64_MAX - *count))
			*count = INT64_MAX;
		else
			*count += b - a + 1;
		(*n)++;
	}
	return 0;
}

static int cmp_source(const void *x, const void *y)
{
	const struct ret_verify_tsource *a = x, *b = y;

	return strcmp(a->server, b->server);
}

static int get_sources(json_t *o, struct ret_verify_tomb *t, int64_t *total, char *err,
		       size_t errlen)
{
	json_t *src = json_object_get(o, "sources"), *v;
	const char *server;
	char what[TOMB_SERVER_MAX + 32];
	int rc;

	*total = 0;
	if (!json_is_object(src))
		return bad(err, errlen, "key \"sources\": %s", src ? "not an object" : "missing");
	if (json_object_size(src) == 0)
		return 0;
	t->sources = calloc(json_object_size(src), sizeof(*t->sources));
	if (!t->sources)
		return -ENOMEM;
	json_object_foreach(src, server, v) {
		struct ret_verify_tsource *s = &t->sources[t->nsources];
		int64_t count;

		if (!name_ok(server, TOMB_SERVER_MAX))
			return bad(err, errlen, "key \"sources\": server \"%.64s\" is not a "
				   "source.server name", server);
		s->server = strdup(server);
		if (!s->server)
			return -ENOMEM;
		t->nsources++;
		snprintf(what, sizeof(what), "sources.%s", server);
		rc = get_ranges(v, what, 0, &s->r, &s->n, &count, err, errlen);
		if (rc)
			return rc;
		if (s->n == 0)
			return bad(err, errlen, "%s: empty", what);
		*total = count > INT64_MAX - *total ? INT64_MAX : *total + count;
	}
	qsort(t->sources, t->nsources, sizeof(*t->sources), cmp_source);
	return 0;
}

static int check_keys(json_t *o, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		bool known = false;

		for (size_t i = 0; i < sizeof(tomb_keys) / sizeof(tomb_keys[0]) && !known; i++)
			known = strcmp(key, tomb_keys[i]) == 0;
		if (!known)
			return bad(err, errlen, "unknown key \"%.64s\"", key);
	}
	return 0;
}

static int parse(json_t *o, const char *file_name, struct ret_verify_tomb *t, char *err,
		 size_t errlen)
{
	const char *s;
	char want[320];
	int64_t count, seqs, min_ms, max_ms, purged_ms;
	size_t n;
	int rc;

	if (!json_is_object(o))
		return bad(err, errlen, "not a JSON object");
	if ((rc = check_keys(o, err, errlen)) != 0)
		return rc;
	if ((rc = get_str(o, "format", &s, err, errlen)) != 0)
		return rc;
	if (strcmp(s, RET_VERIFY_TOMB_FORMAT) != 0)
		return bad(err, errlen, "key \"format\": \"%.64s\" is not %s", s,
			   RET_VERIFY_TOMB_FORMAT);
	if ((rc = get_str(o, "adapter", &s, err, errlen)) != 0)
		return rc;
	if (!name_ok(s, sizeof(t->adapter) - 1))
		return bad(err, errlen, "key \"adapter\": \"%.64s\" is not an instance name", s);
	snprintf(t->adapter, sizeof(t->adapter), "%s", s);
	if ((rc = get_int(o, "batch_no", 1, &t->batch_no, err, errlen)) != 0 ||
	    (rc = get_int(o, "first_staging_id", 0, &t->first_staging_id, err, errlen)) != 0 ||
	    (rc = get_int(o, "last_staging_id", t->first_staging_id, &t->last_staging_id,
			  err, errlen)) != 0 ||
	    (rc = get_int(o, "event_count", 0, &t->event_count, err, errlen)) != 0 ||
	    (rc = get_int(o, "audit_id", 0, &t->audit_id, err, errlen)) != 0)
		return rc;
	if ((rc = get_hash(o, "bundle_sha256", false, t->bundle_sha256, err, errlen)) != 0 ||
	    (rc = get_hash(o, "manifest_sha256", false, t->manifest_sha256, err, errlen)) != 0 ||
	    (rc = get_hash(o, "prev_manifest_sha256", true, t->prev_manifest_sha256, err,
			   errlen)) != 0)
		return rc;
	if (t->batch_no == 1 && t->prev_manifest_sha256[0])
		return bad(err, errlen, "key \"prev_manifest_sha256\": not \"\" for batch 1");
	if ((rc = get_ts(o, "min_ts", t->min_ts, &min_ms, err, errlen)) != 0 ||
	    (rc = get_ts(o, "max_ts", t->max_ts, &max_ms, err, errlen)) != 0 ||
	    (rc = get_ts(o, "purged_at", t->purged_at, &purged_ms, err, errlen)) != 0)
		return rc;
	if (min_ms > max_ms)
		return bad(err, errlen, "key \"min_ts\": after max_ts");
	if ((rc = get_str(o, "reason", &s, err, errlen)) != 0)
		return rc;
	t->reason = strdup(s);
	if (!t->reason)
		return -ENOMEM;

	rc = get_ranges(json_object_get(o, "staging_ids"), "key \"staging_ids\"", 0,
			&t->staging_ids, &t->nstaging, &count, err, errlen);
	if (rc)
		return rc;
	n = t->nstaging;
	if (n == 0 || t->staging_ids[0].a != t->first_staging_id ||
	    t->staging_ids[n - 1].b != t->last_staging_id || count != t->event_count)
		return bad(err, errlen, "key \"staging_ids\": do not cover %" PRId64 " events "
			   "from %" PRId64 " to %" PRId64, t->event_count, t->first_staging_id,
			   t->last_staging_id);
	if ((rc = get_sources(o, t, &seqs, err, errlen)) != 0)
		return rc;
	if (seqs > t->event_count)
		return bad(err, errlen, "key \"sources\": %" PRId64 " seqs for %" PRId64
			   " events", seqs, t->event_count);

	if ((rc = get_str(o, "bundle", &s, err, errlen)) != 0)
		return rc;
	snprintf(want, sizeof(want), "%s-%016" PRId64 "-%016" PRId64 ".tar.zst", t->adapter,
		 t->first_staging_id, t->last_staging_id);
	if (strcmp(s, want) != 0)
		return bad(err, errlen, "key \"bundle\": \"%.80s\" is not %s", s, want);
	snprintf(t->bundle, sizeof(t->bundle), "%s", s);
	if (file_name) {
		snprintf(want, sizeof(want), "%.*s.tombstone.json",
			 (int)(strlen(t->bundle) - strlen(".tar.zst")), t->bundle);
		if (strcmp(file_name, want) != 0)
			return bad(err, errlen, "file name does not match its bundle (want %s)",
				   want);
	}
	return 0;
}

int ret_verify_tomb_parse(const char *text, size_t len, const char *file_name,
			  struct ret_verify_tomb *t, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	memset(t, 0, sizeof(*t));
	if (err && errlen)
		err[0] = '\0';
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return bad(err, errlen, "invalid JSON: %s (line %d)", jerr.text, jerr.line);
	rc = parse(o, file_name, t, err, errlen);
	json_decref(o);
	if (rc) {
		if (rc == -ENOMEM)
			bad(err, errlen, "out of memory");
		ret_verify_tomb_free(t);
	}
	return rc;
}

void ret_verify_tomb_free(struct ret_verify_tomb *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nsources; i++) {
		free(t->sources[i].server);
		free(t->sources[i].r);
	}
	free(t->sources);
	free(t->staging_ids);
	free(t->reason);
	memset(t, 0, sizeof(*t));
}
