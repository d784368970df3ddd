/*
 * ret_vexport — `chatvault verify` of an export package (docs/FORMATS.md
 * §3); see ret_vexport_check() in ret_vint.h.
 *
 * One streaming pass over the tar + zstd file (adapters/bundle.c's reader):
 * the members must come in the contract's order — README.txt, the events
 * member(s) of one format (events.jsonl | events.csv | xml/<name>.xml |
 * eml/<name>.eml), files/<sha256> ascending, manifest.json last — each hashed
 * as it goes by; files/<sha256> must hash to their name; events.jsonl
 * lines must be valid events and events.csv records are counted.  Then the
 * manifest: exactly the documented keys with their types, every member
 * listed with its size and SHA-256 and nothing listed that is absent,
 * counts.events equal to what was counted, query.format equal to the
 * events members present.  The first member out of order stops the read:
 * what follows cannot be judged.
 */
#include "ret_vint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bundle.h"
#include "cv_time.h"
#include "event.h"

#define X_STOP 2                 /* callback: a finding was reported, stop */
#define CSV_HEADER "staging_id,id,type,ts,room,user,to,text,files,source_server,source_seq"

enum xstage { XS_START, XS_README, XS_EVENTS, XS_FILES, XS_MANIFEST };
enum xkind { XK_NONE, XK_JSONL, XK_CSV, XK_XML, XK_EML };
enum xclass { XC_README, XC_EVENTS, XC_FILE, XC_MANIFEST };

static const char *const kind_names[] = { "", "jsonl", "csv", "xml", "eml" };

struct xmember {
	char *name;
	char sha256[CV_SHA256_HEX];
	int64_t size;
};

struct xctx {
	struct ret_vrep *r;
	const char *path;
	struct ret_vexport *x;
	struct cv_sha256 *sha;
	struct xmember *m;
	size_t n, cap;
	struct ret_vmap names;
	enum xstage stage;
	enum xkind kind;
	enum xclass cls;
	bool in_member;
	char last_file[80];
	char *last_events;       /* previous xml/ or eml/ member name */
	int64_t nfiles;
	struct cv_buf manifest;
	bool have_manifest;
	/* events.jsonl */
	struct ret_lines lines;
	int64_t bad_lines, first_bad_line;
	char first_bad[ING_EVENT_ERRLEN];
	/* events.csv */
	bool csv_quoted, csv_pending;
	int64_t csv_records;
	char csv_header[sizeof(CSV_HEADER) + 1];
	size_t csv_hlen;
	bool csv_header_done;
};

/* --- members -------------------------------------------------------------------- */

/* "dir/<name>.ext" with a plain name: no further '/', no leading dot. */
static bool plain_in(const char *name, const char *dir, const char *ext)
{
	size_t d = strlen(dir), e = strlen(ext), n = strlen(name);

	if (n <= d + e || strncmp(name, dir, d) != 0 || strcmp(name + n - e, ext) != 0)
		return false;
	return name[d] != '.' && !memchr(name + d, '/', n - d);
}

static enum xkind events_kind(const char *name)
{
	if (strcmp(name, "events.jsonl") == 0)
		return XK_JSONL;
	if (strcmp(name, "events.csv") == 0)
		return XK_CSV;
	if (plain_in(name, "xml/", ".xml"))
		return XK_XML;
	if (plain_in(name, "eml/", ".eml"))
		return XK_EML;
	return XK_NONE;
}

/* Is this member allowed here?  0, X_STOP (reported) or -ENOMEM. */
static int member_begin(struct xctx *c, const char *name)
{
	enum xkind k = events_kind(name);
	void **slot;
	const char *why = NULL;

	slot = ret_vmap_slot(&c->names, name, true);
	if (!slot)
		return -ENOMEM;
	if (*slot) {
		ret_vrep_fail(c->r, c->path, name, "present twice");
		return X_STOP;
	}
	*slot = c;
	if (c->stage == XS_MANIFEST) {
		why = "after manifest.json (it must be last)";
	} else if (strcmp(name, "README.txt") == 0) {
		c->cls = XC_README;
		if (c->stage != XS_START)
			why = "not first";
		c->stage = XS_README;
	} else if (c->stage == XS_START) {
		why = "first member is not README.txt";
	} else if (k != XK_NONE) {
		c->cls = XC_EVENTS;
		if (c->stage == XS_FILES)
			why = "events member after files/";
		else if (c->kind != XK_NONE && c->kind != k)
			why = "events in two formats";
		else if (c->last_events && strcmp(name, c->last_events) <= 0)
			why = "not in ascending order";
		free(c->last_events);
		if (!(c->last_events = strdup(name)))
			return -ENOMEM;
		c->kind = k;
		c->stage = XS_EVENTS;
	} else if (strncmp(name, "files/", 6) == 0 && cv_is_sha256_hex(name + 6)) {
		c->cls = XC_FILE;
		if (c->stage == XS_FILES && strcmp(name, c->last_file) <= 0)
			why = "files/ not in ascending order";
		snprintf(c->last_file, sizeof(c->last_file), "%s", name);
		c->nfiles++;
		c->stage = XS_FILES;
	} else if (strcmp(name, "manifest.json") == 0) {
		c->cls = XC_MANIFEST;
		c->stage = XS_MANIFEST;
	} else {
		why = "not a member of an export package";
	}
	if (why) {
		ret_vrep_fail(c->r, c->path, name, "%s", why);
		return X_STOP;
	}
	c->in_member = true;
	return 0;
}

static int export_line(void *arg, const char *line, size_t len, int64_t lineno)
{
	struct xctx *c = arg;
	struct ing_event ev;
	char why[ING_EVENT_ERRLEN];
	int rc;

	if (!line) {
		snprintf(why, sizeof(why), "longer than %d bytes", RET_LINE_MAX);
		rc = -EINVAL;
	} else {
		rc = ing_event_parse(line, len, RET_LINE_MAX, 0, &ev, why, sizeof(why));
		if (rc == -ENOMEM)
			return rc;
		if (rc == 0)
			ing_event_clear(&ev);
	}
	if (rc && !c->bad_lines++) {
		c->first_bad_line = lineno;
		snprintf(c->first_bad, sizeof(c->first_bad), "%s", why);
	}
	return 0;
}

/* RFC 4180 records: a line break inside quotes is data.  A doubled quote
 * toggles twice, so it needs no special case for counting. */
static void csv_feed(struct xctx *c, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (!c->csv_header_done) {
			if (ch == '\n' || ch == '\r')
				c->csv_header_done = true;
			else if (c->csv_hlen < sizeof(c->csv_header) - 1)
				c->csv_header[c->csv_hlen++] = ch;
		}
		if (ch == '"') {
			c->csv_quoted = !c->csv_quoted;
			c->csv_pending = true;
		} else if (ch == '\n' && !c->csv_quoted) {
			c->csv_records++;
			c->csv_pending = false;
		} else if (ch != '\r') {
			c->csv_pending = true;
		}
	}
}

static int member_end(struct xctx *c, const struct adp_bundle_chunk *ch)
{
	struct xmember *m;

	c->in_member = false;
	if (c->cls == XC_MANIFEST) {
		char unused[CV_SHA256_HEX];

		c->have_manifest = true;
		cv_sha256_final_hex(c->sha, unused);   /* resets it */
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;

		m = cap > SIZE_MAX / sizeof(*m) ? NULL : realloc(c->m, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		c->m = m;
		c->cap = cap;
	}
	m = &c->m[c->n];
	m->name = strdup(ch->name);
	if (!m->name)
		return -ENOMEM;
	m->size = ch->size;
	cv_sha256_final_hex(c->sha, m->sha256);
	c->n++;
	if (c->cls == XC_FILE && strcmp(ch->name + 6, m->sha256) != 0)
		ret_vrep_fail(c->r, c->path, ch->name, "content does not hash to its name "
			      "(actual %s)", m->sha256);
	if (c->cls == XC_EVENTS && c->kind == XK_CSV && c->csv_pending) {
		c->csv_records++;      /* the last record needs no line break */
		c->csv_pending = false;
	}
	if (c->cls == XC_EVENTS && c->kind == XK_JSONL && c->lines.part.len) {
		ret_vrep_fail(c->r, c->path, ch->name, "last line is not terminated");
		cv_buf_reset(&c->lines.part);
	}
	return 0;
}

static int export_cb(void *arg, const struct adp_bundle_chunk *ch)
{
	struct xctx *c = arg;
	int rc;

	if (!c->in_member && (rc = member_begin(c, ch->name)) != 0)
		return rc;
	if (ch->last)
		return member_end(c, ch);
	cv_sha256_update(c->sha, ch->data, ch->len);
	switch (c->cls) {
	case XC_MANIFEST:
		if (c->manifest.len + ch->len > RET_VJSON_MAX) {
			ret_vrep_fail(c->r, c->path, ch->name, "larger than %d bytes",
				      RET_VJSON_MAX);
			return X_STOP;
		}
		return cv_buf_append(&c->manifest, ch->data, ch->len) ? -ENOMEM : 0;
	case XC_EVENTS:
		if (c->kind == XK_JSONL)
			return ret_lines_feed(&c->lines, ch->data, ch->len);
		if (c->kind == XK_CSV)
			csv_feed(c, ch->data, ch->len);
		return 0;
	default:
		return 0;
	}
}

/* --- manifest ------------------------------------------------------------------- */

/* JT_TSE: a timestamp, or "" (a purged batch the catalog has no time for). */
enum jt { JT_STR, JT_TS, JT_TSE, JT_INT, JT_HEX, JT_OBJ, JT_ARR, JT_STRS };

struct jkey {
	const char *name;
	enum jt type;
};

static const struct jkey top_keys[] = {
	{ "format", JT_STR }, { "query", JT_OBJ }, { "exported_by", JT_STR },
	{ "exported_at", JT_TS }, { "tool", JT_STR }, { "counts", JT_OBJ },
	{ "source_bundles", JT_ARR }, { "purged_in_range", JT_ARR }, { "erasures", JT_ARR },
	{ "members", JT_OBJ },
};
static const struct jkey query_keys[] = {
	{ "from", JT_TS }, { "to", JT_TS }, { "rooms", JT_STRS }, { "users", JT_STRS },
	{ "format", JT_STR },
};
static const struct jkey counts_keys[] = {
	{ "events", JT_INT }, { "rooms", JT_INT }, { "users", JT_INT },
	{ "attachments", JT_INT }, { "omitted_erased", JT_INT },
};
static const struct jkey source_keys[] = {
	{ "name", JT_STR }, { "adapter", JT_STR }, { "batch_no", JT_INT },
	{ "sha256", JT_HEX }, { "manifest_sha256", JT_HEX },
};
static const struct jkey purged_keys[] = {
	{ "adapter", JT_STR }, { "batch_no", JT_INT }, { "first_staging_id", JT_INT },
	{ "last_staging_id", JT_INT }, { "min_ts", JT_TSE }, { "max_ts", JT_TSE },
	{ "purged_at", JT_TSE }, { "reason", JT_STR },
};
static const struct jkey erasure_keys[] = {
	{ "user", JT_STR }, { "requested_at", JT_TS }, { "events_omitted", JT_INT },
};
static const struct jkey member_keys[] = {
	{ "sha256", JT_HEX }, { "size", JT_INT },
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static const char *type_error(json_t *v, enum jt t)
{
	char why[128];
	int64_t ms;
	size_t i;
	json_t *e;

	switch (t) {
	case JT_STR:
		return json_is_string(v) ? NULL : "not a string";
	case JT_TSE:
		if (json_is_string(v) && !*json_string_value(v))
			return NULL;
		/* fall through */
	case JT_TS:
		if (!json_is_string(v) ||
		    cv_time_parse_rfc3339(json_string_value(v), &ms, why, sizeof(why)) != 0)
			return "not an RFC 3339 UTC timestamp";
		return NULL;
	case JT_INT:
		return json_is_integer(v) && json_integer_value(v) >= 0 ? NULL :
		       "not a non-negative integer";
	case JT_HEX:
		return json_is_string(v) && cv_is_sha256_hex(json_string_value(v)) ? NULL :
		       "not 64 lower-case hex digits";
	case JT_OBJ:
		return json_is_object(v) ? NULL : "not an object";
	case JT_ARR:
		return json_is_array(v) ? NULL : "not an array";
	case JT_STRS:
		if (!json_is_array(v))
			return "not an array";
		json_array_foreach(v, i, e)
			if (!json_is_string(e))
				return "not an array of strings";
		return NULL;
	}
	return "unknown type";
}

/* Exactly these keys with these types; reports the first difference. */
static bool keys_ok(struct xctx *c, json_t *o, const char *where, const struct jkey *keys,
		    size_t n)
{
	const char *key, *why;
	json_t *v;

	if (!json_is_object(o)) {
		ret_vrep_fail(c->r, c->path, "manifest.json", "%s: not an object", where);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		v = json_object_get(o, keys[i].name);
		why = v ? type_error(v, keys[i].type) : "missing";
		if (why) {
			ret_vrep_fail(c->r, c->path, "manifest.json", "%s key \"%s\": %s", where,
				      keys[i].name, why);
			return false;
		}
	}
	json_object_foreach(o, key, v) {
		bool known = false;

		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(key, keys[i].name) == 0;
		if (!known) {
			ret_vrep_fail(c->r, c->path, "manifest.json", "%s key \"%.64s\": not "
				      "documented", where, key);
			return false;
		}
	}
	return true;
}

static bool each_ok(struct xctx *c, json_t *arr, const char *what, const struct jkey *keys,
		    size_t n)
{
	char where[64];
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) {
		snprintf(where, sizeof(where), "%s[%zu]", what, i);
		if (!keys_ok(c, e, where, keys, n))
			return false;
	}
	return true;
}

static int keep_sources(struct xctx *c, json_t *arr)
{
	size_t i;
	json_t *e;

	if (json_array_size(arr) == 0)
		return 0;
	c->x->src = calloc(json_array_size(arr), sizeof(*c->x->src));
	if (!c->x->src)
		return -ENOMEM;
	json_array_foreach(arr, i, e) {
		struct ret_vsrc_bundle *s = &c->x->src[c->x->nsrc++];

		snprintf(s->name, sizeof(s->name), "%s",
			 json_string_value(json_object_get(e, "name")));
		snprintf(s->adapter, sizeof(s->adapter), "%s",
			 json_string_value(json_object_get(e, "adapter")));
		s->batch_no = (int64_t)json_integer_value(json_object_get(e, "batch_no"));
		snprintf(s->sha256, sizeof(s->sha256), "%s",
			 json_string_value(json_object_get(e, "sha256")));
		snprintf(s->manifest_sha256, sizeof(s->manifest_sha256), "%s",
			 json_string_value(json_object_get(e, "manifest_sha256")));
	}
	return 0;
}

static int check_manifest(struct xctx *c, json_t *m)
{
	json_t *members, *q, *counts;
	const char *fmt;
	int64_t want;

	if (!keys_ok(c, m, "top level", top_keys, NKEYS(top_keys)))
		return 0;
	fmt = json_string_value(json_object_get(m, "format"));
	if (strcmp(fmt, RET_VERIFY_EXPORT_FORMAT) != 0) {
		ret_vrep_fail(c->r, c->path, "manifest.json", "format \"%.64s\" is not %s", fmt,
			      RET_VERIFY_EXPORT_FORMAT);
		return 0;
	}
	q = json_object_get(m, "query");
	counts = json_object_get(m, "counts");
	members = json_object_get(m, "members");
	if (!keys_ok(c, q, "query", query_keys, NKEYS(query_keys)) ||
	    !keys_ok(c, counts, "counts", counts_keys, NKEYS(counts_keys)) ||
	    !each_ok(c, json_object_get(m, "source_bundles"), "source_bundles", source_keys,
		     NKEYS(source_keys)) ||
	    !each_ok(c, json_object_get(m, "purged_in_range"), "purged_in_range", purged_keys,
		     NKEYS(purged_keys)) ||
	    !each_ok(c, json_object_get(m, "erasures"), "erasures", erasure_keys,
		     NKEYS(erasure_keys)))
		return 0;
	fmt = json_string_value(json_object_get(q, "format"));
	if (c->kind != XK_NONE ? strcmp(fmt, kind_names[c->kind]) != 0 :
	    (strcmp(fmt, "xml") != 0 && strcmp(fmt, "eml") != 0)) {
		ret_vrep_fail(c->r, c->path, "manifest.json", "query.format \"%.16s\" but the "
			      "events members are %s", fmt,
			      c->kind != XK_NONE ? kind_names[c->kind] : "absent");
		return 0;
	}
	/* Every member listed, the same, and nothing listed absent. */
	for (size_t i = 0; i < c->n; i++) {
		json_t *e = json_object_get(members, c->m[i].name);

		if (!e) {
			ret_vrep_fail(c->r, c->path, c->m[i].name, "not listed in manifest.json");
			continue;
		}
		if (!keys_ok(c, e, "members entry", member_keys, NKEYS(member_keys)))
			continue;
		if (strcmp(json_string_value(json_object_get(e, "sha256")), c->m[i].sha256) != 0)
			ret_vrep_fail(c->r, c->path, c->m[i].name, "sha256 mismatch (manifest "
				      "%s, actual %s)", json_string_value(json_object_get(e, "sha256")),
				      c->m[i].sha256);
		else if (json_integer_value(json_object_get(e, "size")) != c->m[i].size)
			ret_vrep_fail(c->r, c->path, c->m[i].name, "size mismatch (manifest %"
				      JSON_INTEGER_FORMAT ", actual %" PRId64 ")",
				      json_integer_value(json_object_get(e, "size")), c->m[i].size);
	}
	if (json_object_size(members) != c->n) {
		const char *key;
		json_t *v;

		json_object_foreach(members, key, v) {
			if (strcmp(key, "manifest.json") == 0)
				ret_vrep_fail(c->r, c->path, key, "lists itself in members");
			else if (!ret_vmap_slot(&c->names, key, false))
				ret_vrep_fail(c->r, c->path, key, "listed in manifest.json but absent");
		}
	}
	want = (int64_t)json_integer_value(json_object_get(counts, "events"));
	if ((c->kind == XK_JSONL || c->kind == XK_CSV) && want != c->x->events)
		ret_vrep_fail(c->r, c->path, c->kind == XK_JSONL ? "events.jsonl" : "events.csv",
			      "%" PRId64 " events, manifest counts.events %" PRId64,
			      c->x->events, want);
	want = (int64_t)json_integer_value(json_object_get(counts, "attachments"));
	if (want != c->nfiles)
		ret_vrep_fail(c->r, c->path, "manifest.json", "counts.attachments %" PRId64
			      ", but %" PRId64 " files/ members", want, c->nfiles);
	return keep_sources(c, json_object_get(m, "source_bundles"));
}

int ret_vexport_check(struct ret_vrep *r, const char *path, struct ret_vexport *x)
{
	struct xctx c = { .r = r, .path = path, .x = x };
	char err[1024];
	json_error_t jerr;
	json_t *m = NULL;
	int rc;

	memset(x, 0, sizeof(*x));
	c.lines.fn = export_line;
	c.lines.arg = &c;
	c.sha = cv_sha256_new();
	if (!c.sha)
		return -ENOMEM;
	rc = adp_bundle_read(path, export_cb, &c, err, sizeof(err));
	if (rc == -ENOMEM)
		goto out;
	if (rc == X_STOP) {
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		ret_vrep_reader(r, path, rc, err);
		rc = 0;
		goto out;
	}
	if (c.kind == XK_JSONL)
		x->events = c.lines.lineno;
	else if (c.kind == XK_CSV)
		x->events = c.csv_records > 0 ? c.csv_records - 1 : 0;
	/* The manifest first: a hash mismatch explains a bad line. */
	if (!c.have_manifest) {
		ret_vrep_fail(r, path, "manifest.json", "absent");
	} else if (!(m = json_loadb(c.manifest.data ? c.manifest.data : "", c.manifest.len,
				    JSON_REJECT_DUPLICATES, &jerr))) {
		ret_vrep_fail(r, path, "manifest.json", "invalid JSON: %s (line %d)", jerr.text,
			      jerr.line);
	} else if ((rc = check_manifest(&c, m)) != 0) {
		goto out;
	}
	if (c.bad_lines)
		ret_vrep_fail(r, path, "events.jsonl", "line %" PRId64 ": not a valid event: %s%s",
			      c.first_bad_line, c.first_bad,
			      c.bad_lines > 1 ? " (and more lines)" : "");
	if (c.kind == XK_CSV && (c.csv_hlen != strlen(CSV_HEADER) ||
				 memcmp(c.csv_header, CSV_HEADER, c.csv_hlen) != 0))
		ret_vrep_fail(r, path, "events.csv", "header is not %s", CSV_HEADER);
out:
	json_decref(m);
	for (size_t i = 0; i < c.n; i++)
		free(c.m[i].name);
	free(c.m);
	ret_vmap_free(&c.names, NULL);
	free(c.last_events);
	ret_lines_free(&c.lines);
	cv_buf_free(&c.manifest);
	cv_sha256_free(c.sha);
	return rc == -ENOMEM ? rc : 0;
}

void ret_vexport_free(struct ret_vexport *x)
{
	free(x->src);
	x->src = NULL;
	x->nsrc = 0;
}
