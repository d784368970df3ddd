/*
 * ret_export_read — one source bundle of an export: verify it, stream it,
 * filter its events, copy out the attachments they reference; see
 * ret_export.c for the sequence and ret_export.h for the contract.
 */
#include "ret_export.h"
#include "ret_export_int.h"
#include "ret_lines.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RX_POLL_LINES 4096                    /* lines between stop/progress polls */

/* --- reading one bundle --------------------------------------------------- */

enum rx_member { RX_NONE, RX_EVENTS, RX_FILE, RX_SKIP, RX_MANIFEST };

struct rx_bundle {
	struct ret_export_job *j;
	const char *name;            /* its path, for messages */
	enum rx_member kind;
	bool in_member;
	bool failed;                 /* j->err holds our own reason */
	bool have_events, have_manifest;
	struct ret_lines lines;      /* events.jsonl, line by line */
	char events_sha[CV_SHA256_HEX];
	int fd;                      /* attachment being copied out */
	char part[PATH_MAX], final[PATH_MAX];
	const char *file_sha;        /* its expected hash (points into name) */
	struct cv_buf manifest;
	char manifest_sha[CV_SHA256_HEX];
};

static int rx_bad(struct rx_bundle *b, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int rx_bad(struct rx_bundle *b, int rc, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ret_export_fail(b->j, "bundle %s: %s", b->name, msg);
	b->failed = true;
	return rc;
}

static bool in_sorted(const char **v, size_t n, const char *s)
{
	size_t lo = 0, hi = n;

	if (!s)
		return false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s, v[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static struct ret_export_erased *find_erased(struct ret_export_job *j, const char *user)
{
	size_t lo = 0, hi = j->nerased;

	if (!user)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(user, j->erased[mid].user);

		if (c == 0)
			return &j->erased[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The FORMATS.md §3 filter. */
static bool matches(const struct ret_export_job *j, const struct ing_event *ev)
{
	if (ev->ts_ms < j->q->from_ms || ev->ts_ms >= j->q->to_ms)
		return false;
	if (j->nrooms && !in_sorted(j->rooms, j->nrooms, ev->room))
		return false;
	if (j->nusers && !in_sorted(j->users, j->nusers, ev->user) &&
	    !in_sorted(j->users, j->nusers, ev->to))
		return false;
	return true;
}

/* One complete events.jsonl line (without its newline); NULL: too long. */
static int process_line(void *arg, const char *line, size_t len, int64_t lineno)
{
	struct rx_bundle *b = arg;
	struct ret_export_job *j = b->j;
	struct ret_export_erased *eu, *et;
	char why[ING_EVENT_ERRLEN];
	struct ing_event ev;
	int rc = 0;

	if (!line)
		return rx_bad(b, -EBADMSG, "events.jsonl line %" PRId64 ": longer than "
			      "ingest.max_event_size (%zu bytes; raise it to export this)",
			      lineno, j->max_line);

	if (lineno % RX_POLL_LINES == 0) {
		if (ret_export_stopped(j)) {
			b->failed = true;
			return -EINTR;
		}
		ret_export_progress(j, NULL, false);
	}
	ing_event_init(&ev);
	rc = ing_event_parse(line, len, j->max_line, 0, &ev, why, sizeof(why));
	if (rc == -ENOMEM)
		return rx_bad(b, rc, "out of memory");
	if (rc)
		return rx_bad(b, -EBADMSG, "events.jsonl line %" PRId64 ": %s", lineno, why);
	if (!matches(j, &ev))
		goto out;
	eu = find_erased(j, ev.user);
	et = find_erased(j, ev.to);
	if (eu || et) {
		if (eu)
			eu->omitted++;
		if (et && et != eu)
			et->omitted++;
		j->res->omitted_erased++;
		goto out;
	}
	if (j->q->format == RET_EXPORT_JSONL) {
		if (fwrite(line, 1, len, j->events) != len || putc('\n', j->events) == EOF)
			rc = -EIO;
	} else if (fprintf(j->pending, "%" PRId64 " ", lineno - 1) < 0 ||
		   fwrite(line, 1, len, j->pending) != len || putc('\n', j->pending) == EOF) {
		rc = -EIO;
	}
	if (rc) {
		rc = rx_bad(b, rc, "writing a temporary file in %s: %s", j->tmpdir, strerror(errno));
		goto out;
	}
	j->res->events++;
	if ((ev.room && (rc = ret_export_set_add(&j->seen_rooms, ev.room)) != 0) ||
	    (rc = ret_export_set_add(&j->seen_users, ev.user)) != 0 ||
	    (ev.to && (rc = ret_export_set_add(&j->seen_users, ev.to)) != 0))
		goto nomem;
	for (size_t i = 0; i < ev.nfiles; i++)
		if ((rc = ret_export_set_add(&j->wanted, ev.files[i].sha256)) != 0)
			goto nomem;
	goto out;
nomem:
	rc = rx_bad(b, -ENOMEM, "out of memory");
out:
	ing_event_clear(&ev);
	return rc;
}

static int events_data(struct rx_bundle *b, const char *p, size_t len)
{
	cv_sha256_update(b->j->sha, p, len);
	return ret_lines_feed(&b->lines, p, len);
}

static int member_begin(struct rx_bundle *b, const struct adp_bundle_chunk *c)
{
	struct ret_export_job *j = b->j;
	const char *sha;

	b->in_member = true;
	if (strcmp(c->name, "events.jsonl") == 0 && !b->have_events) {
		b->kind = RX_EVENTS;
		return 0;
	}
	if (strcmp(c->name, "manifest.json") == 0 && !b->have_manifest) {
		if (c->size > ADP_BUNDLE_MANIFEST_MAX)
			return rx_bad(b, -EBADMSG, "manifest.json: %" PRId64 " bytes, limit %d",
				      c->size, ADP_BUNDLE_MANIFEST_MAX);
		b->kind = RX_MANIFEST;
		return 0;
	}
	if (strncmp(c->name, "files/", 6) != 0 || strlen(c->name) != 6 + 64)
		return rx_bad(b, -EBADMSG, "unexpected member %s", c->name);
	sha = c->name + 6;
	b->kind = RX_SKIP;
	if (!ret_export_set_has(&j->wanted, sha))
		return 0;
	if (snprintf(b->final, sizeof(b->final), "%s/%s", j->files_dir, sha) >= (int)sizeof(b->final) ||
	    snprintf(b->part, sizeof(b->part), "%s.part", b->final) >= (int)sizeof(b->part))
		return rx_bad(b, -ENAMETOOLONG, "temporary path too long");
	if (access(b->final, F_OK) == 0)
		return 0;   /* the same attachment, from an earlier bundle */
	b->fd = open(b->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (b->fd < 0)
		return rx_bad(b, -errno, "create %s: %s", b->part, strerror(errno));
	b->file_sha = sha;
	b->kind = RX_FILE;
	return 0;
}

static int member_end(struct rx_bundle *b, const struct adp_bundle_chunk *c)
{
	char hex[CV_SHA256_HEX];
	int rc = 0;

	b->in_member = false;
	switch (b->kind) {
	case RX_EVENTS:
		cv_sha256_final_hex(b->j->sha, b->events_sha);
		b->have_events = true;
		if (ret_lines_pending(&b->lines))
			return rx_bad(b, -EBADMSG, "events.jsonl: last line unterminated");
		break;
	case RX_MANIFEST:
		cv_sha256_final_hex(b->j->sha, b->manifest_sha);
		b->have_manifest = true;
		break;
	case RX_FILE:
		cv_sha256_final_hex(b->j->sha, hex);
		rc = close(b->fd) != 0 ? -errno : 0;
		b->fd = -1;
		if (rc)
			return rx_bad(b, rc, "write %s: %s", b->part, strerror(-rc));
		if (strcmp(hex, b->file_sha) != 0) {
			unlink(b->part);
			return rx_bad(b, -EBADMSG, "member %s: content does not hash to its "
				      "name (actual %s)", c->name, hex);
		}
		if (rename(b->part, b->final) != 0)
			return rx_bad(b, -errno, "rename %s: %s", b->part, strerror(errno));
		b->j->res->attachments++;
		break;
	default:
		break;
	}
	b->kind = RX_NONE;
	return 0;
}

static int read_cb(void *arg, const struct adp_bundle_chunk *c)
{
	struct rx_bundle *b = arg;
	int rc;

	if (!b->in_member && (rc = member_begin(b, c)) != 0)
		return rc;
	if (c->last)
		return member_end(b, c);
	switch (b->kind) {
	case RX_EVENTS:
		return events_data(b, c->data, c->len);
	case RX_MANIFEST:
		cv_sha256_update(b->j->sha, c->data, c->len);
		if (cv_buf_append(&b->manifest, c->data, c->len) != 0)
			return rx_bad(b, -ENOMEM, "out of memory");
		return 0;
	case RX_FILE:
		cv_sha256_update(b->j->sha, c->data, c->len);
		if ((rc = cv_write_all(b->fd, c->data, c->len)) != 0)
			return rx_bad(b, rc, "write %s: %s", b->part, strerror(-rc));
		return 0;
	default:
		return 0;
	}
}

/* The staging_ids ranges of the manifest, flattened to [a0,b0,a1,b1,…]. */
static int manifest_ranges(struct rx_bundle *b, int64_t **out, size_t *nout)
{
	json_error_t jerr;
	json_t *m, *ranges, *r, *ev;
	int64_t *v = NULL;
	size_t i;
	int rc = -EBADMSG;

	*out = NULL;
	*nout = 0;
	m = json_loadb(b->manifest.data, b->manifest.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!m)
		return rx_bad(b, -EBADMSG, "manifest.json: invalid JSON: %s", jerr.text);
	ev = json_object_get(json_object_get(json_object_get(m, "members"), "events.jsonl"),
			     "sha256");
	if (!json_is_string(ev) || strcmp(json_string_value(ev), b->events_sha) != 0) {
		rx_bad(b, -EBADMSG, "member events.jsonl: sha256 %s differs from the manifest's",
		       b->events_sha);
		goto out;
	}
	ranges = json_object_get(m, "staging_ids");
	if (!json_is_array(ranges) || json_array_size(ranges) == 0 ||
	    json_array_size(ranges) > SIZE_MAX / 2 / sizeof(*v)) {
		rx_bad(b, -EBADMSG, "manifest.json: no staging_ids");
		goto out;
	}
	v = malloc(json_array_size(ranges) * 2 * sizeof(*v));
	if (!v) {
		rc = rx_bad(b, -ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(ranges, i, r) {
		json_t *a = json_array_get(r, 0), *z = json_array_get(r, 1);

		/* verify_info checked order and count; re-read bytes, so check shape. */
		if (!json_is_integer(a) || !json_is_integer(z) ||
		    json_integer_value(a) > json_integer_value(z)) {
			rx_bad(b, -EBADMSG, "manifest.json: staging_ids[%zu] is not [a, b]", i);
			free(v);
			v = NULL;
			goto out;
		}
		v[2 * i] = (int64_t)json_integer_value(a);
		v[2 * i + 1] = (int64_t)json_integer_value(z);
	}
	*out = v;
	*nout = json_array_size(ranges);
	rc = 0;
out:
	json_decref(m);
	return rc;
}

/* Give each pending line its staging id and write it out (csv, spool). */
static int flush_pending(struct rx_bundle *b, const int64_t *ranges, size_t nranges)
{
	struct ret_export_job *j = b->j;
	size_t r = 0, cap = 0;
	int64_t base = 0;         /* lines before range r */
	char *line = NULL, why[ING_EVENT_ERRLEN];
	ssize_t n;
	int rc = 0;

	if (fflush(j->pending) != 0 || fseeko(j->pending, 0, SEEK_SET) != 0)
		return rx_bad(b, -EIO, "temporary file %s: %s", j->pending_path, strerror(errno));
	while ((n = getline(&line, &cap, j->pending)) > 0) {
		struct ing_event ev;
		char *sp, *end;
		long long idx;

		errno = 0;
		idx = strtoll(line, &sp, 10);
		if (errno || *sp != ' ' || line[n - 1] != '\n' || idx < base) {
			rc = rx_bad(b, -EIO, "temporary file %s: corrupt", j->pending_path);
			break;
		}
		while (r < nranges && idx >= base + ranges[2 * r + 1] - ranges[2 * r] + 1) {
			base += ranges[2 * r + 1] - ranges[2 * r] + 1;
			r++;
		}
		if (r == nranges) {
			rc = rx_bad(b, -EBADMSG, "events.jsonl line %lld: past the manifest's "
				    "staging_ids", idx + 1);
			break;
		}
		sp++;
		end = line + n - 1;
		ing_event_init(&ev);
		rc = ing_event_parse(sp, (size_t)(end - sp), j->max_line, 0, &ev, why, sizeof(why));
		if (rc) {
			rc = rx_bad(b, rc == -ENOMEM ? rc : -EIO, "re-reading line %lld: %s",
				    idx + 1, why);
			break;
		}
		rc = ret_export_write_event(j, ranges[2 * r] + (idx - base), sp,
					    (size_t)(end - sp), &ev);
		ing_event_clear(&ev);
		if (rc) {
			b->failed = true;
			break;
		}
	}
	free(line);
	if (!rc && ferror(j->pending))
		rc = rx_bad(b, -EIO, "read %s: %s", j->pending_path, strerror(errno));
	if (!rc && (fseeko(j->pending, 0, SEEK_SET) != 0 || ftruncate(fileno(j->pending), 0) != 0))
		rc = rx_bad(b, -errno, "truncate %s: %s", j->pending_path, strerror(errno));
	return rc;
}

/* Hash the whole file through fd (which stays open) and stat it. */
static int hash_fd(struct ret_export_job *j, int fd, char out[CV_SHA256_HEX], struct stat *st)
{
	static const size_t bufsz = 1 << 16;
	char *buf = malloc(bufsz);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	if (fstat(fd, st) != 0) {
		free(buf);
		return -errno;
	}
	while ((n = read(fd, buf, bufsz)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			return -e;
		}
		cv_sha256_update(j->sha, buf, (size_t)n);
	}
	free(buf);
	cv_sha256_final_hex(j->sha, out);
	return 0;
}

static int check_info(struct rx_bundle *b, const struct ret_export_row *row,
		      const struct adp_bundle_info *info)
{
	if (strcmp(info->adapter, b->j->adapter) != 0 || info->batch_no != row->batch_no ||
	    info->first_staging_id != row->first_sid || info->last_staging_id != row->last_sid)
		return rx_bad(b, -EBADMSG, "manifest says adapter %s batch %" PRId64 " ids %"
			      PRId64 "..%" PRId64 ", the catalog adapter %s batch %" PRId64
			      " ids %" PRId64 "..%" PRId64, info->adapter, info->batch_no,
			      info->first_staging_id, info->last_staging_id, b->j->adapter,
			      row->batch_no, row->first_sid, row->last_sid);
	if (strcmp(info->manifest_sha256, row->chain) != 0)
		return rx_bad(b, -EBADMSG, "manifest sha256 %s is not the catalog's chain "
			      "hash %s (replaced or tampered with)", info->manifest_sha256,
			      *row->chain ? row->chain : "(none)");
	return 0;
}

int ret_export_bundle(struct ret_export_job *j, const struct ret_export_row *row)
{
	struct rx_bundle b = { .j = j, .fd = -1 };
	struct adp_bundle_info info;
	struct stat st0, st1;
	char file_sha[CV_SHA256_HEX], rerr[768] = "";
	int64_t *ranges = NULL;
	size_t nranges = 0;
	const char *base;
	json_t *o;
	int fd, rc;

	b.name = row->path;
	b.lines = (struct ret_lines){ .fn = process_line, .arg = &b, .max = j->max_line };
	base = strrchr(row->path, '/') ? strrchr(row->path, '/') + 1 : row->path;
	fd = open(row->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		ret_export_fail(j, "bundle %s (batch %" PRId64 "): %s", row->path, row->batch_no,
				strerror(-rc));
		return rc;
	}
	if ((rc = hash_fd(j, fd, file_sha, &st0)) != 0) {
		rx_bad(&b, rc, "read: %s", strerror(-rc));
		goto out;
	}
	rc = adp_bundle_verify_info(row->path, &info, rerr, sizeof(rerr));
	if (rc) {
		ret_export_fail(j, "source bundle is %s: %s", rc == -EBADMSG ? "damaged" :
				"unreadable", rerr);
		goto out;
	}
	if ((rc = check_info(&b, row, &info)) != 0)
		goto out;
	ret_export_set_clear(&j->wanted);
	rc = adp_bundle_read(row->path, read_cb, &b, rerr, sizeof(rerr));
	if (rc) {
		if (!b.failed)
			ret_export_fail(j, "source bundle is %s: %s", rc == -EBADMSG ? "damaged" :
					"unreadable", rerr);
		goto out;
	}
	if (!b.have_events || !b.have_manifest || b.lines.lineno != info.event_count ||
	    strcmp(b.manifest_sha, info.manifest_sha256) != 0) {
		rc = rx_bad(&b, -EBADMSG, "changed while being read (manifest %s, lines %" PRId64 ")",
			    b.manifest_sha, b.lines.lineno);
		goto out;
	}
	if ((rc = manifest_ranges(&b, &ranges, &nranges)) != 0)
		goto out;
	if (stat(row->path, &st1) != 0 || st1.st_ino != st0.st_ino || st1.st_dev != st0.st_dev ||
	    st1.st_size != st0.st_size || st1.st_mtim.tv_sec != st0.st_mtim.tv_sec ||
	    st1.st_mtim.tv_nsec != st0.st_mtim.tv_nsec || st1.st_ctim.tv_sec != st0.st_ctim.tv_sec ||
	    st1.st_ctim.tv_nsec != st0.st_ctim.tv_nsec) {
		rc = rx_bad(&b, -EBADMSG, "changed while being read");
		goto out;
	}
	if (j->q->format != RET_EXPORT_JSONL && (rc = flush_pending(&b, ranges, nranges)) != 0)
		goto out;
	o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "name", base, "adapter", j->adapter,
		      "batch_no", (json_int_t)row->batch_no, "sha256", file_sha,
		      "manifest_sha256", info.manifest_sha256);
	if (json_array_append_new(j->source_bundles, o) != 0) {
		rc = rx_bad(&b, -ENOMEM, "out of memory");
		goto out;
	}
	j->res->bundles++;
out:
	if (b.fd >= 0) {
		close(b.fd);
		unlink(b.part);
	}
	free(ranges);
	ret_lines_free(&b.lines);
	cv_buf_free(&b.manifest);
	close(fd);
	return rc;
}
