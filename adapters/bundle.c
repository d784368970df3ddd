/*
 * bundle — read and verify archive bundles; see bundle.h.
 *
 * Verification is one streaming pass: each member is hashed as it goes by
 * (only manifest.json is kept, and it is bounded), then the manifest is
 * parsed and compared with what was seen.  Order is checked as well as
 * content, because a bundle that shuffles or adds members is not the one
 * that was written (design.md §3.5).
 */
#include "bundle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "cv_util.h"

#define MANIFEST_NAME "manifest.json"
#define EVENTS_NAME "events.jsonl"
#define FILES_PREFIX "files/"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Errors that say "could not read" keep their errno; the rest (format,
 * truncation, decompression) mean the bytes are wrong. */
static int read_rc(struct archive *a)
{
	int e = archive_errno(a);

	switch (e) {
	case ENOENT: case EACCES: case EPERM: case EIO: case ENOMEM:
	case EISDIR: case ENOTDIR: case ELOOP: case EMFILE: case ENFILE:
	case ENAMETOOLONG:
		return -e;
	default:
		return -EBADMSG;
	}
}

static const char *la_err(struct archive *a)
{
	const char *s = archive_error_string(a);

	return s ? s : "unknown error";
}

int adp_bundle_read(const char *path, adp_bundle_member_cb cb, void *arg,
		    char *err, size_t errlen)
{
	struct archive *a;
	struct archive_entry *e;
	char *buf = NULL, *name = NULL;
	int rc = 0, r;

	if (err && errlen)
		err[0] = '\0';
	a = archive_read_new();
	buf = malloc(ADP_BUNDLE_CHUNK);
	if (!a || !buf) {
		set_err(err, errlen, "bundle %s: out of memory", path);
		rc = -ENOMEM;
		goto out;
	}
	if (archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		set_err(err, errlen, "bundle %s: libarchive: %s", path, la_err(a));
		rc = -ENOTSUP;
		goto out;
	}
	if (archive_read_open_filename(a, path, ADP_BUNDLE_CHUNK) != ARCHIVE_OK) {
		rc = read_rc(a);
		set_err(err, errlen, "bundle %s: %s", path, la_err(a));
		goto out;
	}
	for (;;) {
		struct adp_bundle_chunk c = { 0 };

		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		/* A warning is something libarchive had to guess about: not
		 * a bundle we wrote. */
		if (r != ARCHIVE_OK) {
			rc = read_rc(a);
			set_err(err, errlen, "bundle %s: %s%s: %s", path,
				name ? "after member " : "at start",
				name ? name : "", la_err(a));
			goto out;
		}
		if (archive_filter_code(a, 0) != ARCHIVE_FILTER_ZSTD) {
			rc = -EBADMSG;
			set_err(err, errlen, "bundle %s: not zstd-compressed", path);
			goto out;
		}
		free(name);
		name = archive_entry_pathname(e) ? strdup(archive_entry_pathname(e)) : NULL;
		if (!name) {
			rc = archive_entry_pathname(e) ? -ENOMEM : -EBADMSG;
			set_err(err, errlen, "bundle %s: member without a name", path);
			goto out;
		}
		if (archive_entry_filetype(e) != AE_IFREG || !archive_entry_size_is_set(e) ||
		    archive_entry_size(e) < 0) {
			rc = -EBADMSG;
			set_err(err, errlen, "bundle %s: member %s: not a regular file",
				path, name);
			goto out;
		}
		c.name = name;
		c.size = archive_entry_size(e);
		for (;;) {
			la_ssize_t n = archive_read_data(a, buf, ADP_BUNDLE_CHUNK);

			if (n < 0) {
				rc = read_rc(a);
				set_err(err, errlen, "bundle %s: member %s: %s", path,
					name, la_err(a));
				goto out;
			}
			if (n == 0)
				break;
			c.data = buf;
			c.len = (size_t)n;
			if ((rc = cb(arg, &c)) != 0)
				goto stopped;
			c.offset += n;
		}
		if (c.offset != c.size) {
			rc = -EBADMSG;
			set_err(err, errlen, "bundle %s: member %s: %" PRId64 " of %"
				PRId64 " bytes", path, name, c.offset, c.size);
			goto out;
		}
		c.data = buf;
		c.len = 0;
		c.last = true;
		if ((rc = cb(arg, &c)) != 0)
			goto stopped;
	}
	goto out;
stopped:
	set_err(err, errlen, "bundle %s: member %s: stopped by caller (%d)", path,
		name, rc);
out:
	free(name);
	free(buf);
	if (a)
		archive_read_free(a);
	return rc;
}

/* --- verify ----------------------------------------------------------------- */

struct seen_member {
	char *name;
	char sha256[CV_SHA256_HEX];
	int64_t size;
};

struct verify_ctx {
	const char *path;
	const struct adp_bundle_hooks *hooks;
	struct cv_sha256 *sha;
	struct seen_member *m;       /* every member but manifest.json */
	size_t n, cap;
	bool in_member;
	bool have_manifest;
	bool is_events, is_manifest;
	struct cv_buf manifest;
	char manifest_sha256[CV_SHA256_HEX];
	int64_t lines;               /* '\n' in events.jsonl */
	char last_byte;              /* of events.jsonl */
	char *err;
	size_t errlen;
};

/* First chunk of a member: is it allowed here, in this order? */
static int member_begin(struct verify_ctx *v, const char *name)
{
	const char *prev = v->n ? v->m[v->n - 1].name : NULL;

	v->is_events = strcmp(name, EVENTS_NAME) == 0;
	v->is_manifest = strcmp(name, MANIFEST_NAME) == 0;
	if (v->have_manifest) {
		set_err(v->err, v->errlen, "bundle %s: member %s: after %s (manifest "
			"must be last)", v->path, name, MANIFEST_NAME);
		return -EBADMSG;
	}
	if (v->is_events) {
		if (prev) {
			set_err(v->err, v->errlen, "bundle %s: member %s: not first",
				v->path, name);
			return -EBADMSG;
		}
	} else if (v->is_manifest) {
		if (!prev) {
			set_err(v->err, v->errlen, "bundle %s: member %s: before %s",
				v->path, name, EVENTS_NAME);
			return -EBADMSG;
		}
	} else if (strncmp(name, FILES_PREFIX, strlen(FILES_PREFIX)) == 0 &&
		   cv_is_sha256_hex(name + strlen(FILES_PREFIX))) {
		/* Ascending, hence also unique. */
		if (!prev || (strcmp(prev, EVENTS_NAME) != 0 && strcmp(prev, name) >= 0)) {
			set_err(v->err, v->errlen, "bundle %s: member %s: out of order",
				v->path, name);
			return -EBADMSG;
		}
	} else {
		set_err(v->err, v->errlen, "bundle %s: member %s: unexpected member",
			v->path, name);
		return -EBADMSG;
	}
	/* lines and last_byte belong to events.jsonl, the first member. */
	v->in_member = true;
	return 0;
}

static int member_end(struct verify_ctx *v, const struct adp_bundle_chunk *c)
{
	struct seen_member *sm;

	v->in_member = false;
	if (v->is_manifest) {
		cv_sha256_final_hex(v->sha, v->manifest_sha256);
		v->have_manifest = true;
		if (v->hooks && v->hooks->manifest)
			return v->hooks->manifest(v->hooks->arg,
						  v->manifest.data ? v->manifest.data : "",
						  v->manifest.len, v->manifest_sha256);
		return 0;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct seen_member *m = realloc(v->m, cap * sizeof(*m));

		if (!m)
			goto nomem;
		v->m = m;
		v->cap = cap;
	}
	sm = &v->m[v->n];
	sm->name = strdup(c->name);
	if (!sm->name)
		goto nomem;
	sm->size = c->size;
	cv_sha256_final_hex(v->sha, sm->sha256);
	v->n++;
	if (strncmp(c->name, FILES_PREFIX, strlen(FILES_PREFIX)) == 0 &&
	    strcmp(c->name + strlen(FILES_PREFIX), sm->sha256) != 0) {
		set_err(v->err, v->errlen, "bundle %s: member %s: content does not "
			"hash to its name (actual %s)", v->path, c->name, sm->sha256);
		return -EBADMSG;
	}
	return 0;
nomem:
	set_err(v->err, v->errlen, "bundle %s: out of memory", v->path);
	return -ENOMEM;
}

static int verify_cb(void *arg, const struct adp_bundle_chunk *c)
{
	struct verify_ctx *v = arg;
	int rc;

	if (!v->in_member && (rc = member_begin(v, c->name)) != 0)
		return rc;
	if (c->last)
		return member_end(v, c);
	cv_sha256_update(v->sha, c->data, c->len);
	if (v->is_events) {
		const char *p = c->data, *end = p + c->len;

		while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			v->lines++;
			p++;
		}
		v->last_byte = ((const char *)c->data)[c->len - 1];
		if (v->hooks && v->hooks->events)
			return v->hooks->events(v->hooks->arg, c->data, c->len);
	} else if (v->is_manifest) {
		if (c->size > ADP_BUNDLE_MANIFEST_MAX) {
			set_err(v->err, v->errlen, "bundle %s: member %s: %" PRId64
				" bytes, limit %d", v->path, c->name, c->size,
				ADP_BUNDLE_MANIFEST_MAX);
			return -EBADMSG;
		}
		if (cv_buf_append(&v->manifest, c->data, c->len) != 0) {
			set_err(v->err, v->errlen, "bundle %s: out of memory", v->path);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Fetch a required string / integer field of the manifest. */
static const char *man_str(json_t *m, const char *key)
{
	return json_string_value(json_object_get(m, key));
}

static bool man_int(json_t *m, const char *key, int64_t *out)
{
	json_t *j = json_object_get(m, key);

	if (!json_is_integer(j))
		return false;
	*out = (int64_t)json_integer_value(j);
	return true;
}

static int check_manifest(struct verify_ctx *v, json_t *m, struct adp_bundle_info *info)
{
	const char *path = v->path, *s, *base;
	json_t *members, *ranges, *j;
	int64_t expect_count = 0, prev_last = -1;
	size_t i;

#define BAD(...) do { set_err(v->err, v->errlen, __VA_ARGS__); return -EBADMSG; } while (0)
	if (!json_is_object(m))
		BAD("bundle %s: member %s: not a JSON object", path, MANIFEST_NAME);
	s = man_str(m, "format");
	if (!s || strcmp(s, ADP_BUNDLE_FORMAT) != 0)
		BAD("bundle %s: member %s: format is not %s", path, MANIFEST_NAME,
		    ADP_BUNDLE_FORMAT);
	if (!man_int(m, "event_count", &info->event_count) || info->event_count < 0 ||
	    !man_int(m, "batch_no", &info->batch_no) ||
	    !man_int(m, "first_staging_id", &info->first_staging_id) ||
	    !man_int(m, "last_staging_id", &info->last_staging_id))
		BAD("bundle %s: member %s: event_count, batch_no or staging ids missing",
		    path, MANIFEST_NAME);
	s = man_str(m, "adapter");
	if (!s || strlen(s) >= sizeof(info->adapter) || strchr(s, '/'))
		BAD("bundle %s: member %s: bad adapter name", path, MANIFEST_NAME);
	snprintf(info->adapter, sizeof(info->adapter), "%s", s);
	s = man_str(m, "prev_manifest_sha256");
	if (!s || (*s && !cv_is_sha256_hex(s)))
		BAD("bundle %s: member %s: bad prev_manifest_sha256", path, MANIFEST_NAME);
	snprintf(info->prev_manifest_sha256, sizeof(info->prev_manifest_sha256), "%s", s);
	s = man_str(m, "min_ts");
	if (s && strlen(s) < sizeof(info->min_ts))
		snprintf(info->min_ts, sizeof(info->min_ts), "%s", s);
	s = man_str(m, "max_ts");
	if (s && strlen(s) < sizeof(info->max_ts))
		snprintf(info->max_ts, sizeof(info->max_ts), "%s", s);
	j = json_object_get(m, "missing_files");
	info->nmissing = json_is_array(j) ? json_array_size(j) : 0;

	/* Content: every member seen is listed, with the same hash and size,
	 * and nothing listed is absent. */
	members = json_object_get(m, "members");
	if (!json_is_object(members))
		BAD("bundle %s: member %s: no members object", path, MANIFEST_NAME);
	for (i = 0; i < v->n; i++) {
		const struct seen_member *sm = &v->m[i];
		json_t *mm = json_object_get(members, sm->name);
		int64_t size;

		if (!json_is_object(mm))
			BAD("bundle %s: member %s: not listed in manifest", path, sm->name);
		s = man_str(mm, "sha256");
		if (!s || strcmp(s, sm->sha256) != 0)
			BAD("bundle %s: member %s: sha256 mismatch (manifest %s, actual %s)",
			    path, sm->name, s ? s : "none", sm->sha256);
		if (!man_int(mm, "size", &size) || size != sm->size)
			BAD("bundle %s: member %s: size mismatch (actual %" PRId64 ")",
			    path, sm->name, sm->size);
	}
	if (json_object_size(members) != v->n) {
		const char *key;
		json_t *val;

		json_object_foreach(members, key, val) {
			bool found = false;

			for (i = 0; i < v->n && !found; i++)
				found = strcmp(v->m[i].name, key) == 0;
			if (!found)
				BAD("bundle %s: member %s: listed in manifest but absent",
				    path, key);
		}
	}
	info->nfiles = v->n - 1;

	/* events.jsonl is first (member_begin) and has event_count lines. */
	if (v->lines != info->event_count || (v->m[0].size > 0 && v->last_byte != '\n'))
		BAD("bundle %s: member %s: %" PRId64 " lines%s, manifest event_count %"
		    PRId64, path, EVENTS_NAME, v->lines,
		    (v->m[0].size > 0 && v->last_byte != '\n') ? " (last unterminated)" : "",
		    info->event_count);

	/* staging_ids: ascending, disjoint ranges from first to last that
	 * add up to event_count. */
	ranges = json_object_get(m, "staging_ids");
	if (!json_is_array(ranges))
		BAD("bundle %s: member %s: no staging_ids", path, MANIFEST_NAME);
	json_array_foreach(ranges, i, j) {
		json_t *ja = json_array_get(j, 0), *jb = json_array_get(j, 1);
		int64_t a, b;

		if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_integer(ja) ||
		    !json_is_integer(jb))
			BAD("bundle %s: member %s: staging_ids[%zu] is not [a, b]", path,
			    MANIFEST_NAME, i);
		a = (int64_t)json_integer_value(ja);
		b = (int64_t)json_integer_value(jb);
		if (a > b || a <= prev_last || (i == 0 && a != info->first_staging_id) ||
		    b - a >= INT64_MAX - expect_count)
			BAD("bundle %s: member %s: staging_ids[%zu] out of order", path,
			    MANIFEST_NAME, i);
		expect_count += b - a + 1;
		prev_last = b;
	}
	if (expect_count != info->event_count || prev_last != info->last_staging_id)
		BAD("bundle %s: member %s: staging_ids do not cover %" PRId64 " events "
		    "from %" PRId64 " to %" PRId64, path, MANIFEST_NAME, info->event_count,
		    info->first_staging_id, info->last_staging_id);

	/* A renamed bundle would sit at the wrong place in the chain walk. */
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strlen(base) > 8 && strcmp(base + strlen(base) - 8, ".tar.zst") == 0) {
		char want[256];

		snprintf(want, sizeof(want), "%s-%016" PRId64 "-%016" PRId64 ".tar.zst",
			 info->adapter, info->first_staging_id, info->last_staging_id);
		if (strcmp(base, want) != 0)
			BAD("bundle %s: file name does not match its manifest (%s)", path,
			    want);
	}
#undef BAD
	return 0;
}

int adp_bundle_verify_info(const char *path, struct adp_bundle_info *info,
			   char *err, size_t errlen)
{
	return adp_bundle_verify_ex(path, NULL, info, err, errlen);
}

int adp_bundle_verify_ex(const char *path, const struct adp_bundle_hooks *hooks,
			 struct adp_bundle_info *info, char *err, size_t errlen)
{
	char cberr[512] = "";
	struct verify_ctx v = { .path = path, .hooks = hooks, .err = cberr,
				.errlen = sizeof(cberr) };
	struct adp_bundle_info local;
	json_t *m = NULL;
	json_error_t jerr;
	int rc;

	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (err && errlen)
		err[0] = '\0';
	v.sha = cv_sha256_new();
	if (!v.sha) {
		set_err(err, errlen, "bundle %s: out of memory", path);
		return -ENOMEM;
	}
	rc = adp_bundle_read(path, verify_cb, &v, err, errlen);
	if (rc != 0)
		goto out;
	if (!v.have_manifest || v.n == 0) {
		set_err(err, errlen, "bundle %s: member %s: absent", path,
			v.n ? MANIFEST_NAME : EVENTS_NAME);
		rc = -EBADMSG;
		goto out;
	}
	m = json_loadb(v.manifest.data, v.manifest.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!m) {
		set_err(err, errlen, "bundle %s: member %s: invalid JSON: %s (line %d)",
			path, MANIFEST_NAME, jerr.text, jerr.line);
		rc = -EBADMSG;
		goto out;
	}
	rc = check_manifest(&v, m, info);
	if (rc == 0)
		snprintf(info->manifest_sha256, sizeof(info->manifest_sha256), "%s",
			 v.manifest_sha256);
out:
	/* Our own checks' reason beats read's "stopped by caller". */
	if (rc != 0 && cberr[0])
		set_err(err, errlen, "%s", cberr);
	json_decref(m);
	for (size_t i = 0; i < v.n; i++)
		free(v.m[i].name);
	free(v.m);
	cv_buf_free(&v.manifest);
	cv_sha256_free(v.sha);
	return rc;
}

int adp_bundle_verify(const char *path, char manifest_sha256_out[65],
		      char *err, size_t errlen)
{
	struct adp_bundle_info info;
	int rc = adp_bundle_verify_info(path, &info, err, errlen);

	if (manifest_sha256_out)
		snprintf(manifest_sha256_out, 65, "%s", rc == 0 ? info.manifest_sha256 : "");
	return rc;
}

/* --- writing ---------------------------------------------------------------- */

int adp_bundle_tar_header(struct archive *a, const char *name, int64_t size, time_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0444);
	archive_entry_set_size(e, size);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_uname(e, "");
	archive_entry_set_gname(e, "");
	r = archive_write_header(a, e);
	archive_entry_free(e);
	/* A warning means libarchive altered something: not reproducible. */
	return r == ARCHIVE_OK ? 0 : -EIO;
}

json_t *adp_bundle_str_array(const char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

json_t *adp_bundle_member_json(const char *hash, int64_t size)
{
	return json_pack("{s:s, s:I}", "sha256", hash, "size", (json_int_t)size);
}
