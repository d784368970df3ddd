/*
 * archive — the `archive` adapter: the system of record (design.md §2
 * "Archive bundle").
 *
 * One batch becomes one bundle
 *     <dir>/YYYY/MM/DD/<instance>-<first %016>-<last %016>.tar.zst
 * (date = UTC date of the first event), a pax-restricted tar compressed by
 * libarchive's zstd filter, with the members, in this order:
 *     events.jsonl        the canonical event lines, staging order
 *     files/<sha256>      each distinct attachment found (and verified) in
 *                         the file store, ascending by hash
 *     manifest.json       last, so it can carry every other member's hash
 * out_chain is the SHA-256 of the manifest.json bytes; the next bundle's
 * manifest names it (prev_manifest_sha256), which makes the archive a hash
 * chain that adapters/bundle.c verifies.
 *
 * Reproducible by construction, because the deliver worker may redeliver a
 * batch after a crash and the ABI wants the same output: tar headers carry
 * fixed owner, mode and mtime (the largest event ts), no atime/ctime, and
 * every list in the manifest is sorted; the same batch, file store and
 * options give a byte-identical file (and always the same out_chain).
 *
 * Durability: written to "<final>.tmp" (created afresh, 0600), made 0444,
 * fsynced, renamed over the final name, directory fsynced.  The mode is set
 * on the temporary so the final name never shows a writable file, and a
 * crash leaves at worst a stale .tmp that the next attempt unlinks.
 *
 * Results: anything the environment may cure (ENOSPC, EACCES, EIO, a
 * libarchive write error, ENOMEM, a directory that is not one) is ADP_RETRY
 * with the path and strerror; ADP_FAIL only for data that can never be
 * written (a ts out of range, a line that is not one line, invalid UTF-8 in
 * a field the manifest lists), blaming that event.
 */
#include "builtin.h"
#include "bundle.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "cv_log.h"
#include "cv_time.h"
#include "cv_util.h"

#define ARC_COMPONENT "archive"
#define ARC_FORMAT "chatvault-bundle/1"
#define ARC_BUFSZ (256 * 1024)   /* copy/coalescing buffer: few libarchive calls */
#define ARC_NAME_MAX 64          /* instance names are [a-z0-9_-]{1,32} in cfg */
#define ARC_DIR_MODE 0750
#define ARC_LEVEL_MIN 1
#define ARC_LEVEL_MAX 19         /* 20..22 need --ultra memory; not for a worker */
#define ARC_THREADS_MAX 256

static const struct adp_key arc_keys[] = {
	{ "dir", ADP_KEY_STRING, "",
	  "bundle root directory; empty means <data_dir>/archive" },
	{ "zstd_level", ADP_KEY_INT, "3", "zstd compression level, 1..19" },
	{ "zstd_threads", ADP_KEY_INT, "0",
	  "zstd worker threads, 0 = compress on the adapter's own thread" },
	{ "attachments", ADP_KEY_BOOL, "true",
	  "copy files[].sha256 from the file store into the bundle" },
	{ NULL, 0, NULL, NULL },
};

struct arc_state {
	char name[ARC_NAME_MAX + 1];
	char *dir;
	char *file_store;            /* NULL: no store configured */
	int level;
	int threads;
	bool attachments;
	char *buf;                   /* ARC_BUFSZ bytes, reused by every batch */
	struct cv_sha256 *sha;       /* reused: final_hex resets it */
};

enum arc_file_state {
	ARC_FILE_WANTED = 0,         /* to be copied if the store has it */
	ARC_FILE_MISSING = 1,        /* listed in missing_files with reason */
};

/* One distinct attachment of the batch (distinct by sha256). */
struct arc_file {
	const char *sha256;          /* points into the batch */
	const char *name;            /* first referencing event's file name */
	enum arc_file_state state;
	const char *reason;          /* static text, when MISSING */
	char hash[CV_SHA256_HEX];    /* member hash once written (== sha256) */
	int64_t size;
};

/* One source.server of the batch. */
struct arc_source {
	const char *server;
	int64_t first_seq, last_seq; /* lowest and highest seq seen */
	int64_t count;
};

/* Open-addressing index from a string to a position in one of the
 * arrays below: batches of 10^5 events repeat a few rooms, users and
 * servers, and sorting every reference costs more than compressing. */
struct arc_slot {
	const char *key;             /* NULL: free */
	uint64_t hash;
	size_t pos;
};

struct arc_index {
	struct arc_slot *slots;
	size_t mask;
};

/* Everything derived from the batch before any I/O. */
struct arc_work {
	const char **rooms;          /* sorted, unique */
	size_t nrooms;
	const char **users;          /* user and to, sorted, unique */
	size_t nusers;
	struct arc_source *sources;  /* sorted by server, unique */
	size_t nsources;
	struct arc_file *files;      /* sorted by sha256, unique */
	size_t nfiles;
	int64_t min_ms, max_ms;
	uint64_t events_size;        /* events.jsonl bytes */
	char events_hash[CV_SHA256_HEX];
	char path[PATH_MAX];
	char tmp[PATH_MAX];
	char day_dir[PATH_MAX];
};

/* --- small helpers ------------------------------------------------------ */

static void set_reason(struct adp_batch *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_reason(struct adp_batch *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
}

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

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * jansson refuses anything else, and we must tell bad data (FAIL) from
 * out-of-memory (RETRY) when it returns NULL. */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, n, cp, min;

		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_source(const void *a, const void *b)
{
	const struct arc_source *x = a, *y = b;

	return strcmp(x->server, y->server);
}

static int cmp_file(const void *a, const void *b)
{
	const struct arc_file *x = a, *y = b;

	return strcmp(x->sha256, y->sha256);
}

/* Room for max_keys at a load of at most one half. */
static int index_init(struct arc_index *x, size_t max_keys)
{
	size_t cap = 16;

	while (cap < max_keys * 2) {
		if (cap > SIZE_MAX / 2 / sizeof(*x->slots))
			return -ENOMEM;
		cap *= 2;
	}
	x->slots = calloc(cap, sizeof(*x->slots));
	x->mask = cap - 1;
	return x->slots ? 0 : -ENOMEM;
}

/* The slot holding key, or the free slot where it belongs (key NULL:
 * the caller fills key, hash and pos). */
static struct arc_slot *index_find(struct arc_index *x, const char *key)
{
	uint64_t h = UINT64_C(14695981039346656037);  /* FNV-1a */
	struct arc_slot *sl;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * UINT64_C(1099511628211);
	for (size_t i = (size_t)h & x->mask;; i = (i + 1) & x->mask) {
		sl = &x->slots[i];
		if (!sl->key) {
			sl->hash = h;
			return sl;
		}
		if (sl->hash == h && strcmp(sl->key, key) == 0)
			return sl;
	}
}

/* Add key to the unique list v (of n) unless it is there already. */
static void index_add_str(struct arc_index *x, const char *key, const char **v, size_t *n)
{
	struct arc_slot *sl = index_find(x, key);

	if (sl->key)
		return;
	sl->key = key;
	sl->pos = *n;
	v[(*n)++] = key;
}

/* Parse a decimal int option within [lo, hi]. */
static int parse_int_opt(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ARC_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' &&
		    s[i] != '.')
			return false;
	return true;
}

/* --- init / close --------------------------------------------------------- */

static void arc_close(void *state)
{
	struct arc_state *st = state;

	if (!st)
		return;
	free(st->dir);
	free(st->file_store);
	free(st->buf);
	cv_sha256_free(st->sha);
	free(st);
}

/* Build a throw-away writer so that an option libarchive refuses, or a
 * libarchive built without libzstd (it would fork zstd(1)), is an init
 * error rather than a RETRY loop at the first batch. */
static int probe_libarchive(const struct arc_state *st, char *err, size_t errlen)
{
	struct archive *a = archive_write_new();
	char v[16];
	int rc = 0;

	if (!a) {
		set_err(err, errlen, "archive: out of memory");
		return -ENOMEM;
	}
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK) {
		set_err(err, errlen, "archive: libarchive has no built-in zstd: %s",
			archive_error_string(a) ? archive_error_string(a) : "?");
		rc = -ENOTSUP;
		goto out;
	}
	snprintf(v, sizeof(v), "%d", st->level);
	if (archive_write_set_filter_option(a, "zstd", "compression-level", v) != ARCHIVE_OK) {
		set_err(err, errlen, "archive: zstd_level %d refused by libarchive", st->level);
		rc = -EINVAL;
		goto out;
	}
	snprintf(v, sizeof(v), "%d", st->threads);
	if (archive_write_set_filter_option(a, "zstd", "threads", v) != ARCHIVE_OK) {
		set_err(err, errlen, "archive: zstd_threads %d refused by libarchive "
			"(needs libarchive >= 3.6)", st->threads);
		rc = -EINVAL;
	}
out:
	archive_write_free(a);
	return rc;
}

static int arc_init(const struct adp_env *env, void **state, char *err, size_t errlen)
{
	struct arc_state *st;
	const char *v;
	int rc = -EINVAL;

	*state = NULL;
	st = calloc(1, sizeof(*st));
	if (!st) {
		set_err(err, errlen, "archive: out of memory");
		return -ENOMEM;
	}
	if (!env->name || !name_ok(env->name)) {
		set_err(err, errlen, "archive: instance name \"%s\" is not usable in a "
			"file name ([A-Za-z0-9._-], 1..%d, no leading dot)",
			env->name ? env->name : "", ARC_NAME_MAX);
		goto fail;
	}
	snprintf(st->name, sizeof(st->name), "%s", env->name);

	/* keys[] defaults are static text, so "<data_dir>/archive" is spelt
	 * as an empty default and resolved here. */
	v = adp_env_opt(env, "dir");
	if (v && *v) {
		st->dir = strdup(v);
	} else if (env->data_dir && *env->data_dir) {
		size_t n = strlen(env->data_dir) + sizeof("/archive");

		st->dir = malloc(n);
		if (st->dir)
			snprintf(st->dir, n, "%s/archive", env->data_dir);
	} else {
		set_err(err, errlen, "archive: dir: not set and no data directory");
		goto fail;
	}
	if (!st->dir)
		goto nomem;
	/* Room for "/YYYY/MM/DD/" + name + two ids + ".tar.zst.tmp". */
	if (strlen(st->dir) > PATH_MAX - 128 - ARC_NAME_MAX) {
		set_err(err, errlen, "archive: dir: path too long");
		goto fail;
	}

	v = adp_env_opt(env, "zstd_level");
	st->level = 3;
	if (v && parse_int_opt(v, ARC_LEVEL_MIN, ARC_LEVEL_MAX, &st->level) != 0) {
		set_err(err, errlen, "archive: zstd_level: must be %d..%d (got \"%s\")",
			ARC_LEVEL_MIN, ARC_LEVEL_MAX, v);
		goto fail;
	}
	v = adp_env_opt(env, "zstd_threads");
	st->threads = 0;
	if (v && parse_int_opt(v, 0, ARC_THREADS_MAX, &st->threads) != 0) {
		set_err(err, errlen, "archive: zstd_threads: must be 0..%d (got \"%s\")",
			ARC_THREADS_MAX, v);
		goto fail;
	}
	v = adp_env_opt(env, "attachments");
	st->attachments = true;
	if (v) {
		if (strcmp(v, "true") == 0) {
			st->attachments = true;
		} else if (strcmp(v, "false") == 0) {
			st->attachments = false;
		} else {
			set_err(err, errlen, "archive: attachments: must be true or false "
				"(got \"%s\")", v);
			goto fail;
		}
	}
	if (env->file_store && *env->file_store) {
		st->file_store = strdup(env->file_store);
		if (!st->file_store)
			goto nomem;
	}
	st->buf = malloc(ARC_BUFSZ);
	st->sha = cv_sha256_new();
	if (!st->buf || !st->sha)
		goto nomem;
	rc = probe_libarchive(st, err, errlen);
	if (rc)
		goto fail;
	*state = st;
	return 0;
nomem:
	set_err(err, errlen, "archive: out of memory");
	rc = -ENOMEM;
fail:
	arc_close(st);
	return rc;
}

/* --- batch analysis (no I/O) ---------------------------------------------- */

static void work_free(struct arc_work *w)
{
	free(w->rooms);
	free(w->users);
	free(w->sources);
	free(w->files);
}

/*
 * Validate the batch and derive the manifest's sets.  Returns ADP_OK,
 * ADP_FAIL (reason and fail_staging_id set) or ADP_RETRY (out of memory).
 */
static enum adp_result analyse(const struct arc_state *st, struct adp_batch *b,
			       struct arc_work *w)
{
	struct arc_index rooms = { 0 }, users = { 0 }, sources = { 0 }, files = { 0 };
	size_t nusers = 0, nfiles = 0;
	enum adp_result res = ADP_OK;

	if (b->events[0].staging_id != b->first_staging_id ||
	    b->events[b->nevents - 1].staging_id != b->last_staging_id) {
		set_reason(b, "archive: batch %" PRId64 ": first/last staging id "
			   "%" PRId64 "/%" PRId64 " do not match its events",
			   b->batch_no, b->first_staging_id, b->last_staging_id);
		return ADP_FAIL;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_event *e = &b->events[i];

		/* Strictly increasing ids make the staging_ids ranges exact and
		 * the file name unique; anything else is a caller bug. */
		if (e->staging_id < 0 || (i > 0 && e->staging_id <= b->events[i - 1].staging_id)) {
			set_reason(b, "archive: batch %" PRId64 ": staging id %" PRId64
				   " out of order", b->batch_no, e->staging_id);
			b->fail_staging_id = 0;
			return ADP_FAIL;
		}
		b->fail_staging_id = e->staging_id;
		if (e->ts_ms < CV_TIME_MIN_MS || e->ts_ms > CV_TIME_MAX_MS) {
			set_reason(b, "archive: event %" PRId64 ": ts %" PRId64
				   " ms out of range", e->staging_id, e->ts_ms);
			return ADP_FAIL;
		}
		/* One event, one line: events.jsonl's line count is checked
		 * against event_count by verify. */
		if (!e->json || e->json_len == 0 || memchr(e->json, '\n', e->json_len)) {
			set_reason(b, "archive: event %" PRId64 ": json is empty or not "
				   "a single line", e->staging_id);
			return ADP_FAIL;
		}
		if ((e->room && !utf8_valid(e->room)) || (e->user && !utf8_valid(e->user)) ||
		    (e->to && !utf8_valid(e->to)) ||
		    (e->source_server && !utf8_valid(e->source_server))) {
			set_reason(b, "archive: event %" PRId64 ": invalid UTF-8 in room, "
				   "user, to or source", e->staging_id);
			return ADP_FAIL;
		}
		if (e->nfiles && !e->files) {
			set_reason(b, "archive: event %" PRId64 ": files missing",
				   e->staging_id);
			return ADP_FAIL;
		}
		for (size_t f = 0; f < e->nfiles; f++) {
			if (!e->files[f].sha256 || !utf8_valid(e->files[f].sha256) ||
			    (e->files[f].name && !utf8_valid(e->files[f].name))) {
				set_reason(b, "archive: event %" PRId64 ": file %zu: "
					   "sha256 absent or name not UTF-8",
					   e->staging_id, f);
				return ADP_FAIL;
			}
		}
		if (e->json_len > UINT64_MAX - 1 - w->events_size) {
			set_reason(b, "archive: batch %" PRId64 ": events too large",
				   b->batch_no);
			return ADP_FAIL;
		}
		w->events_size += e->json_len + 1;
		if (i == 0 || e->ts_ms < w->min_ms)
			w->min_ms = e->ts_ms;
		if (i == 0 || e->ts_ms > w->max_ms)
			w->max_ms = e->ts_ms;
		nusers += (e->user != NULL) + (e->to != NULL);
		if (e->nfiles > SIZE_MAX / sizeof(struct arc_file) - nfiles) {
			set_reason(b, "archive: batch %" PRId64 ": too many files",
				   b->batch_no);
			return ADP_FAIL;
		}
		nfiles += e->nfiles;
	}
	b->fail_staging_id = 0;

	w->rooms = calloc(b->nevents, sizeof(*w->rooms));
	w->users = calloc(nusers ? nusers : 1, sizeof(*w->users));
	w->sources = calloc(b->nevents, sizeof(*w->sources));
	w->files = calloc(nfiles ? nfiles : 1, sizeof(*w->files));
	if (!w->rooms || !w->users || !w->sources || !w->files ||
	    index_init(&rooms, b->nevents) || index_init(&users, nusers) ||
	    index_init(&sources, b->nevents) || index_init(&files, nfiles)) {
		set_reason(b, "archive: batch %" PRId64 ": out of memory", b->batch_no);
		res = ADP_RETRY;
		goto out;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_event *e = &b->events[i];

		if (e->room)
			index_add_str(&rooms, e->room, w->rooms, &w->nrooms);
		if (e->user)
			index_add_str(&users, e->user, w->users, &w->nusers);
		if (e->to)
			index_add_str(&users, e->to, w->users, &w->nusers);
		if (e->source_server) {
			struct arc_slot *sl = index_find(&sources, e->source_server);
			struct arc_source *src;

			if (!sl->key) {
				sl->key = e->source_server;
				sl->pos = w->nsources++;
				src = &w->sources[sl->pos];
				src->server = e->source_server;
				src->first_seq = src->last_seq = e->source_seq;
			}
			src = &w->sources[sl->pos];
			if (e->source_seq < src->first_seq)
				src->first_seq = e->source_seq;
			if (e->source_seq > src->last_seq)
				src->last_seq = e->source_seq;
			src->count++;
		}
		/* Staging order: the first reference names a hash. */
		for (size_t f = 0; f < e->nfiles; f++) {
			struct arc_slot *sl = index_find(&files, e->files[f].sha256);
			struct arc_file *af;

			if (sl->key)
				continue;
			sl->key = e->files[f].sha256;
			af = &w->files[w->nfiles++];
			af->sha256 = e->files[f].sha256;
			af->name = e->files[f].name ? e->files[f].name : "";
		}
	}
	qsort(w->rooms, w->nrooms, sizeof(*w->rooms), cmp_str);
	qsort(w->users, w->nusers, sizeof(*w->users), cmp_str);
	qsort(w->sources, w->nsources, sizeof(*w->sources), cmp_source);
	qsort(w->files, w->nfiles, sizeof(*w->files), cmp_file);
	for (size_t i = 0; i < w->nfiles; i++) {
		struct arc_file *af = &w->files[i];

		if (!cv_is_sha256_hex(af->sha256)) {
			af->state = ARC_FILE_MISSING;
			af->reason = "invalid sha256";
		} else if (!st->attachments) {
			af->state = ARC_FILE_MISSING;
			af->reason = "attachments disabled";
		} else if (!st->file_store) {
			af->state = ARC_FILE_MISSING;
			af->reason = "no file store configured";
		}
	}
out:
	free(rooms.slots);
	free(users.slots);
	free(sources.slots);
	free(files.slots);
	return res;
}

/* --- manifest ------------------------------------------------------------- */

/* The manifest text (malloc'd, ends with "\n"), or NULL on out of memory. */
static char *build_manifest(const struct arc_state *st, const struct adp_batch *b,
			    const struct arc_work *w, size_t *len)
{
	json_t *m = NULL, *ranges, *sources, *members, *missing, *o;
	char min_ts[CV_TIME_BUFSZ], max_ts[CV_TIME_BUFSZ];
	char *text = NULL, *out = NULL;
	int bad = 0;

	/* Both in range: analyse() formatted every ts. */
	if (cv_time_format_ms(w->min_ms, min_ts) || cv_time_format_ms(w->max_ms, max_ts))
		return NULL;
	m = json_object();
	ranges = json_array();
	sources = json_object();
	members = json_object();
	missing = json_array();
	if (!m || !ranges || !sources || !members || !missing) {
		json_decref(ranges);
		json_decref(sources);
		json_decref(members);
		json_decref(missing);
		goto out;
	}
	bad |= json_object_set_new(m, "staging_ids", ranges);
	bad |= json_object_set_new(m, "sources", sources);
	bad |= json_object_set_new(m, "members", members);
	bad |= json_object_set_new(m, "missing_files", missing);
	bad |= json_object_set_new(m, "format", json_string(ARC_FORMAT));
	bad |= json_object_set_new(m, "adapter", json_string(st->name));
	bad |= json_object_set_new(m, "batch_no", json_integer(b->batch_no));
	bad |= json_object_set_new(m, "first_staging_id", json_integer(b->first_staging_id));
	bad |= json_object_set_new(m, "last_staging_id", json_integer(b->last_staging_id));
	bad |= json_object_set_new(m, "event_count", json_integer((json_int_t)b->nevents));
	bad |= json_object_set_new(m, "min_ts", json_string(min_ts));
	bad |= json_object_set_new(m, "max_ts", json_string(max_ts));
	bad |= json_object_set_new(m, "rooms", adp_bundle_str_array(w->rooms, w->nrooms));
	bad |= json_object_set_new(m, "users", adp_bundle_str_array(w->users, w->nusers));
	bad |= json_object_set_new(m, "prev_manifest_sha256",
				   json_string(b->chain_prev ? b->chain_prev : ""));
	if (bad)
		goto out;

	for (size_t i = 0; i < b->nevents;) {
		size_t j = i;

		while (j + 1 < b->nevents &&
		       b->events[j + 1].staging_id == b->events[j].staging_id + 1)
			j++;
		o = json_pack("[I, I]", (json_int_t)b->events[i].staging_id,
			      (json_int_t)b->events[j].staging_id);
		if (json_array_append_new(ranges, o) != 0)
			goto out;
		i = j + 1;
	}
	/* first_seq/last_seq are the lowest and highest seq seen: a room
	 * keeps its order, a server's rooms interleave, so staging order is
	 * not seq order and gap detection wants the range. */
	for (size_t i = 0; i < w->nsources; i++) {
		const struct arc_source *src = &w->sources[i];

		o = json_pack("{s:I, s:I, s:I}", "first_seq", (json_int_t)src->first_seq,
			      "last_seq", (json_int_t)src->last_seq,
			      "count", (json_int_t)src->count);
		if (json_object_set_new(sources, src->server, o) != 0)
			goto out;
	}
	if (json_object_set_new(members, "events.jsonl",
				adp_bundle_member_json(w->events_hash, (int64_t)w->events_size)) != 0)
		goto out;
	for (size_t i = 0; i < w->nfiles; i++) {
		const struct arc_file *af = &w->files[i];
		char key[80];

		if (af->state == ARC_FILE_MISSING) {
			o = json_pack("{s:s, s:s, s:s}", "sha256", af->sha256,
				      "name", af->name, "reason", af->reason);
			if (json_array_append_new(missing, o) != 0)
				goto out;
			continue;
		}
		snprintf(key, sizeof(key), "files/%s", af->sha256);
		if (json_object_set_new(members, key, adp_bundle_member_json(af->hash, af->size)) != 0)
			goto out;
	}
	text = json_dumps(m, JSON_SORT_KEYS | JSON_INDENT(2));
	if (!text)
		goto out;
	*len = strlen(text);
	out = malloc(*len + 2);
	if (!out)
		goto out;
	memcpy(out, text, *len);
	out[(*len)++] = '\n';
	out[*len] = '\0';
out:
	free(text);
	json_decref(m);
	return out;
}

/* --- writing -------------------------------------------------------------- */

enum {
	ARC_RESTART = 1,     /* an attachment failed its hash: write again */
};

static int tar_data(struct archive *a, const void *p, size_t n)
{
	la_ssize_t w = archive_write_data(a, p, n);

	return (w >= 0 && (size_t)w == n) ? 0 : -EIO;
}

/* Describe a libarchive failure; errno-like codes keep their text. */
static void reason_archive(struct adp_batch *b, struct archive *a, const char *what,
			   const char *path)
{
	int e = archive_errno(a);
	const char *s = archive_error_string(a);

	if (e > 0)
		set_reason(b, "archive: %s %s: %s (%s)", what, path, s ? s : "error",
			   strerror(e));
	else
		set_reason(b, "archive: %s %s: %s", what, path, s ? s : "error");
}

static int write_events(struct arc_state *st, struct adp_batch *b, struct arc_work *w,
			struct archive *a, time_t mtime)
{
	size_t fill = 0;
	int rc;

	rc = adp_bundle_tar_header(a, "events.jsonl", (int64_t)w->events_size, mtime);
	if (rc)
		return rc;
	/* Coalesce lines into ARC_BUFSZ chunks: one libarchive call per line
	 * costs more than the compression of ~300 bytes. */
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_event *e = &b->events[i];

		if (fill + e->json_len + 1 > ARC_BUFSZ) {
			cv_sha256_update(st->sha, st->buf, fill);
			if ((rc = tar_data(a, st->buf, fill)) != 0)
				return rc;
			fill = 0;
		}
		if (e->json_len + 1 > ARC_BUFSZ) {
			cv_sha256_update(st->sha, e->json, e->json_len);
			cv_sha256_update(st->sha, "\n", 1);
			if ((rc = tar_data(a, e->json, e->json_len)) != 0 ||
			    (rc = tar_data(a, "\n", 1)) != 0)
				return rc;
			continue;
		}
		memcpy(st->buf + fill, e->json, e->json_len);
		st->buf[fill + e->json_len] = '\n';
		fill += e->json_len + 1;
	}
	cv_sha256_update(st->sha, st->buf, fill);
	if ((rc = tar_data(a, st->buf, fill)) != 0)
		return rc;
	cv_sha256_final_hex(st->sha, w->events_hash);
	return 0;
}

/*
 * Copy one attachment.  Returns 0 (written, or marked MISSING without
 * writing anything), ARC_RESTART (marked MISSING after its header went
 * out), or a negative errno with b->reason set (file store or libarchive).
 */
static int write_file(struct arc_state *st, struct adp_batch *b, struct arc_work *w,
		      struct arc_file *af, struct archive *a, time_t mtime)
{
	char path[PATH_MAX], name[80];
	struct stat sb;
	int64_t left;
	int fd, rc = 0;

	if (snprintf(path, sizeof(path), "%s/%s", st->file_store, af->sha256) >=
	    (int)sizeof(path)) {
		set_reason(b, "archive: file store path too long: %s", st->file_store);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			af->state = ARC_FILE_MISSING;
			af->reason = "not in file store";
			return 0;
		}
		rc = -errno;
		set_reason(b, "archive: open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &sb) != 0) {
		rc = -errno;
		set_reason(b, "archive: stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		af->state = ARC_FILE_MISSING;
		af->reason = "not a regular file";
		goto out;
	}
	snprintf(name, sizeof(name), "files/%s", af->sha256);
	if ((rc = adp_bundle_tar_header(a, name, (int64_t)sb.st_size, mtime)) != 0)
		goto la_fail;
	af->size = (int64_t)sb.st_size;
	for (left = af->size; left > 0;) {
		size_t want = left < ARC_BUFSZ ? (size_t)left : ARC_BUFSZ;
		ssize_t n = read(fd, st->buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			set_reason(b, "archive: read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;  /* shrank under us: the hash below cannot match */
		cv_sha256_update(st->sha, st->buf, (size_t)n);
		if ((rc = tar_data(a, st->buf, (size_t)n)) != 0)
			goto la_fail;
		left -= n;
	}
	cv_sha256_final_hex(st->sha, af->hash);
	/* The header already promised st_size bytes, so a mismatching file
	 * cannot be dropped from this stream: mark it and start over. */
	if (left != 0 || strcmp(af->hash, af->sha256) != 0) {
		cv_warn(ARC_COMPONENT, "%s: content does not hash to its name; "
			"archived as missing", path);
		af->state = ARC_FILE_MISSING;
		af->reason = "hash mismatch";
		rc = ARC_RESTART;
	}
	goto out;
la_fail:
	rc = archive_errno(a) > 0 ? -archive_errno(a) : -EIO;
	reason_archive(b, a, "write", w->tmp);
out:
	close(fd);
	return rc;
}

/*
 * Write the whole bundle to w->tmp and leave it durable (0444, fsynced)
 * but not yet renamed.  Returns 0, ARC_RESTART, or a negative errno with
 * b->reason set; on anything but 0 the temporary is removed.  *manifest
 * receives the manifest bytes on success.
 */
static int write_bundle(struct arc_state *st, struct adp_batch *b, struct arc_work *w,
			char **manifest, size_t *manifest_len)
{
	struct archive *a = NULL;
	time_t mtime = (time_t)(w->max_ms / 1000);
	char v[16], *man = NULL;
	size_t man_len = 0;
	int fd, rc = 0;

	*manifest = NULL;
	/* A stale temporary (crash after its fchmod) may be 0444: replace it. */
	if (unlink(w->tmp) != 0 && errno != ENOENT) {
		rc = -errno;
		set_reason(b, "archive: unlink %s: %s", w->tmp, strerror(errno));
		return rc;
	}
	fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		set_reason(b, "archive: create %s: %s", w->tmp, strerror(errno));
		return rc;
	}
	a = archive_write_new();
	if (!a) {
		rc = -ENOMEM;
		set_reason(b, "archive: %s: out of memory", w->tmp);
		goto fail;
	}
	snprintf(v, sizeof(v), "%d", st->level);
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "zstd", "compression-level", v) != ARCHIVE_OK)
		goto la_fail;
	snprintf(v, sizeof(v), "%d", st->threads);
	/* No zero padding after the zstd frame: zstd(1) calls that garbage. */
	if (archive_write_set_filter_option(a, "zstd", "threads", v) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK)
		goto la_fail;

	if (write_events(st, b, w, a, mtime) != 0)
		goto la_fail;
	for (size_t i = 0; i < w->nfiles; i++) {
		if (w->files[i].state != ARC_FILE_WANTED)
			continue;
		rc = write_file(st, b, w, &w->files[i], a, mtime);
		if (rc)
			goto fail;
	}
	man = build_manifest(st, b, w, &man_len);
	if (!man) {
		rc = -ENOMEM;
		set_reason(b, "archive: %s: out of memory building manifest", w->tmp);
		goto fail;
	}
	if (adp_bundle_tar_header(a, "manifest.json", (int64_t)man_len, mtime) != 0 ||
	    tar_data(a, man, man_len) != 0 || archive_write_close(a) != ARCHIVE_OK)
		goto la_fail;
	archive_write_free(a);
	a = NULL;
	if (fchmod(fd, 0444) != 0 || fsync(fd) != 0) {
		rc = -errno;
		set_reason(b, "archive: sync %s: %s", w->tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		set_reason(b, "archive: close %s: %s", w->tmp, strerror(errno));
		goto fail;
	}
	*manifest = man;
	*manifest_len = man_len;
	return 0;
la_fail:
	rc = -EIO;
	if (archive_errno(a) > 0)
		rc = -archive_errno(a);
	reason_archive(b, a, "write", w->tmp);
fail:
	/* free closes the frame into the doomed temporary; archive_write_fail
	 * first would leak libarchive 3.6's client buffer on a restart. */
	if (a)
		archive_write_free(a);
	if (fd >= 0)
		close(fd);
	unlink(w->tmp);
	free(man);
	return rc;
}

/* mkdir one level; a new directory's entry is made durable in its parent
 * before any bundle inside it is. */
static int make_dir(const char *path, const char *parent)
{
	if (mkdir(path, ARC_DIR_MODE) == 0)
		return cv_fsync_dir(parent);
	if (errno != EEXIST)
		return -errno;
	return 0;
}

static enum adp_result make_dirs(const struct arc_state *st, struct adp_batch *b,
				 struct arc_work *w, const char *ts)
{
	char year[PATH_MAX], month[PATH_MAX];
	struct stat sb;
	int rc;

	if (stat(st->dir, &sb) != 0) {
		char parent[PATH_MAX], *slash;

		if ((rc = cv_mkdir_p(st->dir, ARC_DIR_MODE)) != 0) {
			set_reason(b, "archive: mkdir %s: %s", st->dir, strerror(-rc));
			return ADP_RETRY;
		}
		snprintf(parent, sizeof(parent), "%s", st->dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
		if ((rc = cv_fsync_dir(parent)) != 0) {
			set_reason(b, "archive: fsync %s: %s", parent, strerror(-rc));
			return ADP_RETRY;
		}
	}
	/* init bounded dir to PATH_MAX - 128 - name; checked anyway. */
	if (snprintf(year, sizeof(year), "%s/%.4s", st->dir, ts) >= (int)sizeof(year) ||
	    snprintf(month, sizeof(month), "%s/%.4s/%.2s", st->dir, ts, ts + 5) >=
		    (int)sizeof(month) ||
	    snprintf(w->day_dir, sizeof(w->day_dir), "%s/%.4s/%.2s/%.2s", st->dir, ts,
		     ts + 5, ts + 8) >= (int)sizeof(w->day_dir)) {
		set_reason(b, "archive: %s: path too long", st->dir);
		return ADP_RETRY;
	}
	if ((rc = make_dir(year, st->dir)) != 0 ||
	    (rc = make_dir(month, year)) != 0 ||
	    (rc = make_dir(w->day_dir, month)) != 0) {
		set_reason(b, "archive: mkdir %s: %s", w->day_dir, strerror(-rc));
		return ADP_RETRY;
	}
	return ADP_OK;
}

static enum adp_result arc_deliver(void *state, struct adp_batch *b)
{
	struct arc_state *st = state;
	struct arc_work w = { 0 };
	enum adp_result res;
	char ts[CV_TIME_BUFSZ], *manifest = NULL;
	size_t manifest_len = 0;
	int rc = 0;

	b->out_path[0] = '\0';
	b->out_chain[0] = '\0';
	b->reason[0] = '\0';
	b->fail_staging_id = 0;
	if (b->nevents == 0 || !b->events) {
		/* Nothing to archive: the chain passes through unchanged. */
		snprintf(b->out_chain, sizeof(b->out_chain), "%s",
			 b->chain_prev ? b->chain_prev : "");
		return ADP_OK;
	}
	if (b->chain_prev && b->chain_prev[0] && !cv_is_sha256_hex(b->chain_prev)) {
		set_reason(b, "archive: batch %" PRId64 ": chain_prev is not a sha256",
			   b->batch_no);
		return ADP_FAIL;
	}
	res = analyse(st, b, &w);
	if (res != ADP_OK)
		goto out;
	if (cv_time_format_ms(b->events[0].ts_ms, ts) != 0) {
		res = ADP_FAIL;  /* unreachable: analyse() checked every ts */
		goto out;
	}
	res = make_dirs(st, b, &w, ts);
	if (res != ADP_OK)
		goto out;
	if (snprintf(w.path, sizeof(w.path), "%s/%s-%016" PRId64 "-%016" PRId64 ".tar.zst",
		     w.day_dir, st->name, b->first_staging_id, b->last_staging_id) >=
		    (int)sizeof(w.path) ||
	    snprintf(w.tmp, sizeof(w.tmp), "%s.tmp", w.path) >= (int)sizeof(w.tmp) ||
	    strlen(w.path) >= sizeof(b->out_path)) {
		set_reason(b, "archive: bundle path under %s too long", w.day_dir);
		res = ADP_RETRY;
		goto out;
	}
	/* Each restart marks one more attachment missing, so this ends. */
	for (size_t attempt = 0; attempt <= w.nfiles; attempt++) {
		rc = write_bundle(st, b, &w, &manifest, &manifest_len);
		if (rc != ARC_RESTART)
			break;
	}
	if (rc != 0) {
		if (rc == ARC_RESTART)
			set_reason(b, "archive: %s: attachments kept changing", w.path);
		res = ADP_RETRY;
		goto out;
	}
	if (rename(w.tmp, w.path) != 0) {
		set_reason(b, "archive: rename %s: %s", w.tmp, strerror(errno));
		unlink(w.tmp);
		res = ADP_RETRY;
		goto out;
	}
	if ((rc = cv_fsync_dir(w.day_dir)) != 0) {
		/* The bundle is complete but maybe not durable; redelivery
		 * rewrites the identical file. */
		set_reason(b, "archive: fsync %s: %s", w.day_dir, strerror(-rc));
		res = ADP_RETRY;
		goto out;
	}
	cv_sha256_hex(manifest, manifest_len, b->out_chain);
	snprintf(b->out_path, sizeof(b->out_path), "%s", w.path);
	res = ADP_OK;
out:
	if (res != ADP_OK)
		cv_debug(ARC_COMPONENT, "%s", b->reason);
	free(manifest);
	work_free(&w);
	return res;
}

const struct adp_ops adp_archive_ops = {
	.abi_version = ADP_ABI_VERSION,
	.struct_size = sizeof(struct adp_ops),
	.type = "archive",
	.keys = arc_keys,
	.init = arc_init,
	.deliver = arc_deliver,
	.close = arc_close,
};
