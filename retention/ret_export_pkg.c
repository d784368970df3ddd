/*
 * ret_export_pkg — the package file of an export (FORMATS.md §3): a pax
 * restricted tar through libarchive's zstd filter, members in the
 * contract's order
 *     README.txt, events.jsonl | events.csv | xml/<name> | eml/<name>
 *     (sorted by name), files/<sha256> (ascending), manifest.json
 * Each member is hashed while it is copied into the tar (its size comes
 * from the temporary file's stat and must be what is read), so
 * manifest.json, written last, can list every other member; the package
 * bytes are hashed as libarchive hands them to us (the audit row's
 * output_sha256).  Tar headers carry mode 0444, owner 0, mtime = the export
 * time.  The file is "<output>.tmp", created 0600 with O_EXCL (a stale one
 * is unlinked first), fsynced and made 0640; publishing it is the
 * engine's (ret_export.c).
 */
#include "ret_export.h"
#include "ret_export_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>

#define PKG_BUFSZ (256 * 1024)
#define PKG_ZSTD_LEVEL "3"
#define PKG_MAX_DEPTH 8          /* the adapters write <dir>/YYYY/MM/DD/ */

struct pkg {
	struct ret_export_job *j;
	struct archive *a;
	int fd;
	bool created;                /* out_tmp is ours to remove */
	struct cv_sha256 *whole;     /* the package file's hash */
	uint64_t size;
	int werr;                    /* errno of a failed write */
	json_t *members;
	char *buf;
	time_t mtime;
};

/* --- the member list of xml/eml output and of the attachments -------------- */

struct pkg_list {
	char **path;                 /* full path */
	size_t n, cap;
};

static void list_free(struct pkg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->path[i]);
	free(l->path);
}

static int list_add(struct pkg_list *l, const char *dir, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **p = realloc(l->path, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->path = p;
		l->cap = cap;
	}
	if (asprintf(&l->path[l->n], "%s/%s", dir, name) < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

/* Every regular file under dir (recursively when deep), as full paths. */
static int list_dir(const char *dir, bool deep, int depth, struct pkg_list *l)
{
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > PKG_MAX_DEPTH)
		return -ELOOP;
	d = opendir(dir);
	if (!d)
		return -errno;
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		char sub[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= (int)sizeof(sub)) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (lstat(sub, &st) != 0)
			rc = -errno;
		else if (S_ISDIR(st.st_mode) && deep)
			rc = list_dir(sub, deep, depth + 1, l);
		else if (S_ISREG(st.st_mode))
			rc = list_add(l, dir, de->d_name);
		else
			rc = -EBADMSG;    /* nothing else belongs in our private tree */
	}
	if (rc == 0 && errno)
		rc = -errno;
	closedir(d);
	return rc;
}

static const char *base_of(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int cmp_base(const void *a, const void *b)
{
	return strcmp(base_of(*(char *const *)a), base_of(*(char *const *)b));
}

/* --- tar writing -------------------------------------------------------------- */

static la_ssize_t pkg_write(struct archive *a, void *arg, const void *buf, size_t n)
{
	struct pkg *p = arg;
	int rc = cv_write_all(p->fd, buf, n);

	if (rc) {
		p->werr = -rc;
		archive_set_error(a, -rc, "write: %s", strerror(-rc));
		return -1;
	}
	cv_sha256_update(p->whole, buf, n);
	p->size += n;
	return (la_ssize_t)n;
}

static int pkg_la_fail(struct pkg *p, const char *what)
{
	int e = p->werr ? p->werr : archive_errno(p->a) > 0 ? archive_errno(p->a) : EIO;
	const char *s = archive_error_string(p->a);

	ret_export_fail(p->j, "write %s: %s: %s", p->j->out_tmp, what, s ? s : strerror(e));
	return -e;
}

static int pkg_header(struct pkg *p, const char *name, int64_t size)
{
	int rc = adp_bundle_tar_header(p->a, name, size, p->mtime);

	if (rc == -ENOMEM) {
		ret_export_fail(p->j, "out of memory");
		return rc;
	}
	return rc ? pkg_la_fail(p, name) : 0;
}

static int pkg_data(struct pkg *p, const char *name, const void *buf, size_t n)
{
	la_ssize_t w = archive_write_data(p->a, buf, n);

	return (w >= 0 && (size_t)w == n) ? 0 : pkg_la_fail(p, name);
}

static int pkg_member_done(struct pkg *p, const char *name, const char *sha, int64_t size)
{
	if (json_object_set_new(p->members, name, adp_bundle_member_json(sha, size)) != 0) {
		ret_export_fail(p->j, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int pkg_add_mem(struct pkg *p, const char *name, const char *data, size_t len,
		       bool list)
{
	char sha[CV_SHA256_HEX];
	int rc;

	if ((rc = pkg_header(p, name, (int64_t)len)) != 0 || (rc = pkg_data(p, name, data, len)) != 0)
		return rc;
	if (!list)
		return 0;
	cv_sha256_hex(data, len, sha);
	return pkg_member_done(p, name, sha, (int64_t)len);
}

/* Copy a temporary file in as member name; want_sha, when set, must be its
 * hash (attachments are named by it). */
static int pkg_add_file(struct pkg *p, const char *name, const char *path, const char *want_sha)
{
	char sha[CV_SHA256_HEX];
	struct stat st;
	int64_t left;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		ret_export_fail(p->j, "open %s: %s", path, strerror(-rc));
		goto out;
	}
	if ((rc = pkg_header(p, name, (int64_t)st.st_size)) != 0)
		goto out;
	for (left = (int64_t)st.st_size; left > 0;) {
		ssize_t n = read(fd, p->buf, left < PKG_BUFSZ ? (size_t)left : PKG_BUFSZ);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			ret_export_fail(p->j, "read %s: %s", path, n < 0 ? strerror(errno) :
					"file shrank");
			goto out;
		}
		cv_sha256_update(p->j->sha, p->buf, (size_t)n);
		if ((rc = pkg_data(p, name, p->buf, (size_t)n)) != 0)
			goto out;
		left -= n;
	}
	cv_sha256_final_hex(p->j->sha, sha);
	if (want_sha && strcmp(sha, want_sha) != 0) {
		ret_export_fail(p->j, "attachment %s changed on disk (now %s)", path, sha);
		rc = -EIO;
		goto out;
	}
	rc = pkg_member_done(p, name, sha, (int64_t)st.st_size);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* xml/<name> or eml/<name>, sorted by name. */
static int pkg_add_adapter_output(struct pkg *p)
{
	struct ret_export_job *j = p->j;
	struct pkg_list l = { 0 };
	int rc;

	rc = list_dir(j->adapter_dir, true, 0, &l);
	if (rc == -ENOENT)
		rc = 0;   /* no events, nothing written */
	if (rc) {
		ret_export_fail(j, "list %s: %s", j->adapter_dir, strerror(-rc));
		goto out;
	}
	if (l.n > 1)
		qsort(l.path, l.n, sizeof(*l.path), cmp_base);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		char name[NAME_MAX + 8];

		if (i && strcmp(base_of(l.path[i]), base_of(l.path[i - 1])) == 0) {
			ret_export_fail(j, "%s adapter wrote %s twice", j->format_name,
					base_of(l.path[i]));
			rc = -EEXIST;
			break;
		}
		snprintf(name, sizeof(name), "%s/%s", j->format_name, base_of(l.path[i]));
		rc = pkg_add_file(p, name, l.path[i], NULL);
	}
out:
	list_free(&l);
	return rc;
}

static int pkg_add_attachments(struct pkg *p)
{
	struct pkg_list l = { 0 };
	int rc = list_dir(p->j->files_dir, false, 0, &l);

	if (rc) {
		ret_export_fail(p->j, "list %s: %s", p->j->files_dir, strerror(-rc));
		goto out;
	}
	if (l.n > 1)
		qsort(l.path, l.n, sizeof(*l.path), cmp_base);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		char name[80];

		if (strlen(base_of(l.path[i])) != 64)
			continue;   /* not an attachment (cannot happen) */
		snprintf(name, sizeof(name), "files/%s", base_of(l.path[i]));
		rc = pkg_add_file(p, name, l.path[i], base_of(l.path[i]));
	}
out:
	list_free(&l);
	return rc;
}

/* --- README.txt and manifest.json --------------------------------------------- */

json_t *ret_export_query_json(const struct ret_export_job *j)
{
	return json_pack("{s:s, s:s, s:o, s:o, s:s}", "from", j->from_s, "to", j->to_s,
			 "rooms", adp_bundle_str_array(j->rooms, j->nrooms), "users",
			 adp_bundle_str_array(j->users, j->nusers), "format", j->format_name);
}

json_t *ret_export_counts_json(const struct ret_export_job *j)
{
	const struct ret_export_result *r = j->res;

	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "events", (json_int_t)r->events,
			 "rooms", (json_int_t)r->rooms, "users", (json_int_t)r->users,
			 "attachments", (json_int_t)r->attachments,
			 "omitted_erased", (json_int_t)r->omitted_erased);
}

static json_t *erasures_json(const struct ret_export_job *j)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < j->nerased; i++) {
		const struct ret_export_erased *e = &j->erased[i];
		char ts[CV_TIME_BUFSZ] = "";

		if (e->omitted == 0)
			continue;
		(void)cv_time_format_ms(e->requested_ms, ts);
		if (json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "user", e->user,
						       "requested_at", ts, "events_omitted",
						       (json_int_t)e->omitted)) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static char *build_manifest(struct pkg *p, size_t *len)
{
	struct ret_export_job *j = p->j;
	char tool[64], *text, *out = NULL;
	json_t *m;

	snprintf(tool, sizeof(tool), "chatvault %s", CV_VERSION);
	m = json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:O, s:O, s:o, s:O}",
		      "format", RET_EXPORT_FORMAT, "query", ret_export_query_json(j),
		      "exported_by", j->exported_by, "exported_at", j->exported_at,
		      "tool", tool, "counts", ret_export_counts_json(j),
		      "source_bundles", j->source_bundles, "purged_in_range", j->purged,
		      "erasures", erasures_json(j), "members", p->members);
	if (!m)
		return NULL;
	text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(m);
	if (!text)
		return NULL;
	*len = strlen(text);
	out = malloc(*len + 2);
	if (out) {
		memcpy(out, text, *len);
		out[(*len)++] = '\n';
		out[*len] = '\0';
	}
	free(text);
	return out;
}

static int list_text(struct cv_buf *b, const char *label, const char **v, size_t n,
		     const char *none)
{
	int rc = cv_buf_printf(b, "  %-8s%s\n", label, n ? v[0] : none);

	for (size_t i = 1; rc == 0 && i < n; i++)
		rc = cv_buf_printf(b, "  %-8s%s\n", "", v[i]);
	return rc;
}

static int build_readme(struct ret_export_job *j, struct cv_buf *b)
{
	const struct ret_export_result *r = j->res;
	static const char *const what[] = {
		[RET_EXPORT_JSONL] = "events.jsonl     the events, one canonical JSON line each (event\n"
				     "                   schema v1), in staging order",
		[RET_EXPORT_CSV] = "events.csv       the events, RFC 4180, one row each, in staging\n"
				   "                   order; \"files\" holds the event's files as JSON",
		[RET_EXPORT_XML] = "xml/*.xml        the events as Lync Persistent Chat compliance\n"
				   "                   XML, one file per room per chunk of events",
		[RET_EXPORT_EML] = "eml/*.eml        the events as RFC 5322 messages, one per room\n"
				   "                   per chunk of events",
	};
	const char *name = base_of(j->o->output);
	int rc = 0;

	rc = rc ? rc : cv_buf_printf(b,
		"chatvault export package (%s)\n"
		"\n"
		"This package holds the compliance events that chatvault archived and that\n"
		"match the query below, taken from the archive bundles of adapter \"%s\"\n"
		"that manifest.json lists under \"source_bundles\" (each verified against its\n"
		"hash chain before it was read).\n"
		"\n"
		"Query (times UTC, from inclusive, to exclusive):\n"
		"  from    %s\n"
		"  to      %s\n", RET_EXPORT_FORMAT, j->adapter, j->from_s, j->to_s);
	rc = rc ? rc : list_text(b, "rooms", j->rooms, j->nrooms, "(any)");
	rc = rc ? rc : list_text(b, "users", j->users, j->nusers, "(any; a user matches as "
				 "sender or as \"to\")");
	rc = rc ? rc : cv_buf_printf(b,
		"  format  %s\n"
		"\n"
		"Contents:\n"
		"  README.txt       this file\n"
		"  %s\n"
		"  files/<sha256>   the attachments referenced by these events that the\n"
		"                   archive holds; each file's SHA-256 is its name\n"
		"  manifest.json    the query, counts, source bundles, bundles purged by\n"
		"                   retention inside the range, erasures, and the SHA-256\n"
		"                   and size of every other member\n"
		"\n"
		"Counts: %" PRId64 " events, %" PRId64 " rooms, %" PRId64 " users, %" PRId64
		" attachments;\n"
		"%" PRId64 " matching events left out because a user in them has an honoured\n"
		"erasure request (GDPR); %" PRId64 " bundles in the range were purged by\n"
		"retention before this export (see manifest.json).\n"
		"\n"
		"Exported by %s at %s with chatvault %s.\n"
		"The SHA-256 of this package file is recorded in chatvault's audit log\n"
		"(action \"export\").\n"
		"\n"
		"How to verify:\n"
		"  tar --zstd -xf %s\n"
		"  jq -r '.members | to_entries[] | \"\\(.value.sha256)  \\(.key)\"' "
		"manifest.json | sha256sum -c\n"
		"  (or compare the output of sha256sum on each member with \"members\" in\n"
		"  manifest.json by hand), or run: chatvault verify %s\n",
		j->format_name, what[j->q->format], r->events, r->rooms, r->users,
		r->attachments, r->omitted_erased, r->purged, j->exported_by, j->exported_at,
		CV_VERSION, name, name);
	return rc ? -ENOMEM : 0;
}

/* --- the package ------------------------------------------------------------------ */

static int pkg_open(struct pkg *p)
{
	struct ret_export_job *j = p->j;

	if (unlink(j->out_tmp) != 0 && errno != ENOENT) {
		int e = errno;

		ret_export_fail(j, "unlink stale %s: %s", j->out_tmp, strerror(e));
		return -e;
	}
	p->fd = open(j->out_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (p->fd < 0) {
		int e = errno;

		ret_export_fail(j, "create %s: %s", j->out_tmp, strerror(e));
		return -e;
	}
	p->created = true;
	p->a = archive_write_new();
	if (!p->a) {
		ret_export_fail(j, "out of memory");
		return -ENOMEM;
	}
	/* No zero padding after the zstd frame (zstd(1) calls that garbage). */
	if (archive_write_set_format_pax_restricted(p->a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(p->a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(p->a, "zstd", "compression-level",
					    PKG_ZSTD_LEVEL) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(p->a, 1) != ARCHIVE_OK ||
	    archive_write_open(p->a, p, NULL, pkg_write, NULL) != ARCHIVE_OK)
		return pkg_la_fail(p, "libarchive setup");
	return 0;
}

int ret_export_package(struct ret_export_job *j)
{
	struct pkg p = { .j = j, .fd = -1, .mtime = (time_t)(j->now_ms / 1000) };
	struct cv_buf readme = { 0 };
	char *man = NULL, events_name[16];
	size_t man_len = 0;
	int rc;

	p.whole = cv_sha256_new();
	p.members = json_object();
	p.buf = malloc(PKG_BUFSZ);
	if (!p.whole || !p.members || !p.buf || build_readme(j, &readme) != 0) {
		ret_export_fail(j, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = pkg_open(&p)) != 0 ||
	    (rc = pkg_add_mem(&p, "README.txt", readme.data, readme.len, true)) != 0)
		goto fail;
	if (j->q->format == RET_EXPORT_JSONL || j->q->format == RET_EXPORT_CSV) {
		snprintf(events_name, sizeof(events_name), "events.%s", j->format_name);
		rc = pkg_add_file(&p, events_name, j->events_path, NULL);
	} else {
		rc = pkg_add_adapter_output(&p);
	}
	if (rc || (rc = pkg_add_attachments(&p)) != 0 || ret_export_stopped(j)) {
		rc = rc ? rc : -EINTR;
		goto fail;
	}
	man = build_manifest(&p, &man_len);
	if (!man) {
		ret_export_fail(j, "out of memory building manifest.json");
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = pkg_add_mem(&p, "manifest.json", man, man_len, false)) != 0)
		goto fail;
	if (archive_write_close(p.a) != ARCHIVE_OK) {
		rc = pkg_la_fail(&p, "close");
		goto fail;
	}
	archive_write_free(p.a);
	p.a = NULL;
	if (fchmod(p.fd, 0640) != 0 || fsync(p.fd) != 0) {
		rc = -errno;
		ret_export_fail(j, "sync %s: %s", j->out_tmp, strerror(-rc));
		goto fail;
	}
	rc = close(p.fd) != 0 ? -errno : 0;
	p.fd = -1;
	if (rc) {
		ret_export_fail(j, "close %s: %s", j->out_tmp, strerror(-rc));
		goto fail;
	}
	cv_sha256_final_hex(p.whole, j->res->sha256);
	j->res->size = p.size;
	rc = 0;
	goto out;
fail:
	if (p.a)
		archive_write_free(p.a);
	p.a = NULL;
	if (p.fd >= 0)
		close(p.fd);
	if (p.created)
		unlink(j->out_tmp);
out:
	json_decref(p.members);
	cv_sha256_free(p.whole);
	cv_buf_free(&readme);
	free(p.buf);
	free(man);
	return rc;
}
