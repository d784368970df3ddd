/*
 * ret_run — see ret_run.h.
 */
#include "ret_run.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle.h"
#include "cv_log.h"
#include "cv_time.h"
#include "cv_util.h"
#include "ret_admin.h"
#include "ret_lines.h"
#include "ret_policy.h"
#include "sto_db.h"

#define RET_COMPONENT "retention"

/* ---- what the catalog holds ------------------------------------------- */

struct holds {
	PGresult *res;
	struct ret_hold *v;
	size_t n;
};

static void holds_free(struct holds *h)
{
	PQclear(h->res);
	free(h->v);
	memset(h, 0, sizeof(*h));
}

static int64_t opt_ms(PGresult *res, int row, int col, int64_t dflt)
{
	return PQgetisnull(res, row, col) ? dflt : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static enum cv_result holds_load(struct sto_db *db, struct holds *h, char *err, size_t errlen)
{
	enum cv_result r;

	memset(h, 0, sizeof(*h));
	r = sto_exec(db, "load holds",
		     "SELECT hold_id, user_uri, room, (extract(epoch FROM from_ts) * 1000)::bigint,"
		     " (extract(epoch FROM to_ts) * 1000)::bigint, reason FROM chatvault.holds"
		     " WHERE released_at IS NULL ORDER BY hold_id", 0, NULL, &h->res, err, errlen);
	if (r != CV_OK)
		return r;
	h->n = (size_t)PQntuples(h->res);
	if (h->n && !(h->v = calloc(h->n, sizeof(*h->v)))) {
		holds_free(h);
		snprintf(err, errlen, "out of memory");
		return CV_FAIL;
	}
	for (size_t i = 0; i < h->n; i++) {
		int row = (int)i;

		h->v[i].id = strtoll(PQgetvalue(h->res, row, 0), NULL, 10);
		h->v[i].user = PQgetisnull(h->res, row, 1) ? NULL : PQgetvalue(h->res, row, 1);
		h->v[i].room = PQgetisnull(h->res, row, 2) ? NULL : PQgetvalue(h->res, row, 2);
		h->v[i].from_ms = opt_ms(h->res, row, 3, INT64_MIN);
		h->v[i].to_ms = opt_ms(h->res, row, 4, INT64_MAX);
		h->v[i].reason = PQgetvalue(h->res, row, 5);
	}
	return CV_OK;
}

/* The first active hold touching the bundle, or NULL. */
static const struct ret_hold *holds_find(const struct holds *h, const struct ret_scope *s,
					 int64_t min_ms, int64_t max_ms)
{
	for (size_t i = 0; i < h->n; i++)
		if (ret_hold_touches(&h->v[i], s, min_ms, max_ms))
			return &h->v[i];
	return NULL;
}

/* One live bundle of the catalog. */
struct bundle_row {
	const char *adapter;
	const char *batch_no;
	int64_t first_sid, last_sid, count;
	int64_t min_ms, max_ms;
	const char *path;
	const char *chain;
	int64_t retain_until;      /* -1: not locked yet */
	bool worm;
	json_t *rooms_j, *users_j;
	const char **rooms, **users;
	struct ret_scope scope;
};

static void row_free(struct bundle_row *b)
{
	json_decref(b->rooms_j);
	json_decref(b->users_j);
	free(b->rooms);
	free(b->users);
}

static int strv_from_json(json_t *arr, const char ***v, size_t *n)
{
	size_t i;
	json_t *x;

	*n = json_array_size(arr);
	*v = calloc(*n ? *n : 1, sizeof(**v));
	if (!*v)
		return -ENOMEM;
	json_array_foreach(arr, i, x) {
		(*v)[i] = json_string_value(x) ? json_string_value(x) : "";
	}
	return 0;
}

static int row_load(PGresult *res, int i, struct bundle_row *b)
{
	memset(b, 0, sizeof(*b));
	b->adapter = PQgetvalue(res, i, 0);
	b->batch_no = PQgetvalue(res, i, 1);
	b->first_sid = strtoll(PQgetvalue(res, i, 2), NULL, 10);
	b->last_sid = strtoll(PQgetvalue(res, i, 3), NULL, 10);
	b->count = strtoll(PQgetvalue(res, i, 4), NULL, 10);
	b->min_ms = opt_ms(res, i, 5, 0);
	b->max_ms = opt_ms(res, i, 6, 0);
	b->path = PQgetvalue(res, i, 9);
	b->chain = PQgetvalue(res, i, 10);
	b->retain_until = opt_ms(res, i, 11, -1);
	b->worm = PQgetvalue(res, i, 12)[0] == 't';
	b->rooms_j = json_loads(PQgetvalue(res, i, 7), 0, NULL);
	b->users_j = json_loads(PQgetvalue(res, i, 8), 0, NULL);
	if (!json_is_array(b->rooms_j) || !json_is_array(b->users_j) ||
	    strv_from_json(b->rooms_j, &b->rooms, &b->scope.nrooms) != 0 ||
	    strv_from_json(b->users_j, &b->users, &b->scope.nusers) != 0)
		return -ENOMEM;
	b->scope.rooms = b->rooms;
	b->scope.users = b->users;
	return 0;
}

/* ---- reading a bundle for its tombstone -------------------------------- */

struct seq {
	uint32_t server;     /* index into servers */
	int64_t seq;
};

struct reader {
	struct ret_lines lines;  /* events.jsonl, line by line */
	struct cv_buf manifest;
	struct seq *seqs;
	size_t nseqs, capseqs;
	char **servers;
	size_t nservers;
	char err[512];
};

static void reader_free(struct reader *r)
{
	ret_lines_free(&r->lines);
	cv_buf_free(&r->manifest);
	free(r->seqs);
	for (size_t i = 0; i < r->nservers; i++)
		free(r->servers[i]);
	free(r->servers);
}

static int server_index(struct reader *r, const char *s, uint32_t *idx)
{
	char **nv;

	for (size_t i = 0; i < r->nservers; i++)
		if (strcmp(r->servers[i], s) == 0) {
			*idx = (uint32_t)i;
			return 0;
		}
	if (r->nservers >= UINT32_MAX - 1 ||
	    !(nv = realloc(r->servers, (r->nservers + 1) * sizeof(*nv))))
		return -ENOMEM;
	r->servers = nv;
	if (!(nv[r->nservers] = strdup(s)))
		return -ENOMEM;
	*idx = (uint32_t)r->nservers++;
	return 0;
}

static int take_line(void *arg, const char *p, size_t len, int64_t lineno)
{
	struct reader *r = arg;
	json_t *ev = p ? json_loadb(p, len, 0, NULL) : NULL;
	json_t *src = json_object_get(ev, "source");
	const char *server = json_string_value(json_object_get(src, "server"));
	json_t *seq = json_object_get(src, "seq");
	uint32_t idx;
	int rc = 0;

	if (!server || !json_is_integer(seq)) {
		snprintf(r->err, sizeof(r->err), "events.jsonl line %" PRId64 ": %s", lineno,
			 p ? "no source.server/seq" : "too long");
		json_decref(ev);
		return -EBADMSG;
	}
	if (r->nseqs == r->capseqs) {
		size_t cap = r->capseqs ? r->capseqs * 2 : 1024;
		struct seq *ns = realloc(r->seqs, cap * sizeof(*ns));

		if (!ns) {
			json_decref(ev);
			return -ENOMEM;
		}
		r->seqs = ns;
		r->capseqs = cap;
	}
	if ((rc = server_index(r, server, &idx)) == 0) {
		r->seqs[r->nseqs].server = idx;
		r->seqs[r->nseqs].seq = (int64_t)json_integer_value(seq);
		r->nseqs++;
	}
	json_decref(ev);
	return rc;
}

/* Hooks into the verifying pass (adp_bundle_verify_ex): one read of the
 * bundle both proves it sound and yields what the tombstone needs. */
static int events_hook(void *arg, const void *data, size_t len)
{
	struct reader *r = arg;

	return ret_lines_feed(&r->lines, data, len);
}

static int manifest_hook(void *arg, const char *data, size_t len, const char *sha256)
{
	struct reader *r = arg;

	(void)sha256;
	cv_buf_reset(&r->manifest);
	return cv_buf_append(&r->manifest, data, len);
}

static int seq_cmp(const void *a, const void *b)
{
	const struct seq *x = a, *y = b;

	if (x->server != y->server)
		return x->server < y->server ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* {"server": [[a, b], …]} from the collected (server, seq) pairs. */
static json_t *seq_ranges(struct reader *r)
{
	json_t *o = json_object();

	qsort(r->seqs, r->nseqs, sizeof(*r->seqs), seq_cmp);
	for (size_t i = 0; o && i < r->nseqs;) {
		uint32_t s = r->seqs[i].server;
		json_t *arr = json_array();

		while (arr && i < r->nseqs && r->seqs[i].server == s) {
			int64_t a = r->seqs[i].seq, b = a;

			while (++i < r->nseqs && r->seqs[i].server == s && r->seqs[i].seq <= b + 1)
				b = r->seqs[i].seq;
			if (json_array_append_new(arr, json_pack("[II]", (json_int_t)a,
								 (json_int_t)b)) != 0) {
				json_decref(arr);
				arr = NULL;
			}
		}
		if (!arr || json_object_set_new(o, r->servers[s], arr) != 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

int ret_tombstone_path(const char *bundle, char *out, size_t outlen)
{
	static const char ext[] = ".tar.zst", text[] = ".tombstone.json";
	size_t n = strlen(bundle);

	if (n <= sizeof(ext) - 1 || strcmp(bundle + n - (sizeof(ext) - 1), ext) != 0)
		return -EINVAL;
	n -= sizeof(ext) - 1;
	if (n + sizeof(text) > outlen)
		return -ENAMETOOLONG;
	memcpy(out, bundle, n);
	memcpy(out + n, text, sizeof(text));
	return 0;
}

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	return cv_fsync_dir(dirname(dir));
}

/* ---- one purge ---------------------------------------------------------- */

struct run {
	struct sto_db *db;
	const struct cfg *cfg;
	const struct ret_run_opts *o;
	FILE *out;
	struct ret_run_stats *st;
	int64_t db_now_ms;
	char *err;
	size_t errlen;
};

static void say(struct run *run, const char *verb, const struct bundle_row *b, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(struct run *run, const char *verb, const struct bundle_row *b, const char *fmt, ...)
{
	va_list ap;

	fprintf(run->out, "%s %s batch %s (%s): ", verb, b->adapter, b->batch_no, b->path);
	va_start(ap, fmt);
	vfprintf(run->out, fmt, ap);
	va_end(ap);
	fputc('\n', run->out);
}

static enum cv_result audit(struct run *run, const char *action, const char *target,
			    json_t *details, int64_t *audit_id)
{
	return ret_audit(run->db, run->o->actor, action, target, details, audit_id, run->err,
			 run->errlen);
}

static json_t *tombstone_json(const struct bundle_row *b, const struct adp_bundle_info *info,
			      const char *file_sha, struct reader *rd, const char *purged_at,
			      const char *reason, int64_t audit_id)
{
	json_t *man = json_loadb(rd->manifest.data, rd->manifest.len, 0, NULL);
	json_t *ranges = json_incref(json_object_get(man, "staging_ids"));
	json_t *sources = seq_ranges(rd);
	char base[PATH_MAX];
	json_t *t;

	snprintf(base, sizeof(base), "%s", b->path);
	t = json_pack("{ss, ss, ss, ss, sI, sI, sI, sI, so, ss, ss, ss, ss, so, ss, ss, sI}",
		      "format", "chatvault-tombstone/1", "bundle", basename(base),
		      "bundle_sha256", file_sha, "adapter", info->adapter,
		      "batch_no", (json_int_t)info->batch_no,
		      "first_staging_id", (json_int_t)info->first_staging_id,
		      "last_staging_id", (json_int_t)info->last_staging_id,
		      "event_count", (json_int_t)info->event_count,
		      "staging_ids", ranges ? ranges : json_array(),
		      "min_ts", info->min_ts, "max_ts", info->max_ts,
		      "manifest_sha256", info->manifest_sha256,
		      "prev_manifest_sha256", info->prev_manifest_sha256,
		      "sources", sources ? sources : json_object(),
		      "purged_at", purged_at, "reason", reason, "audit_id", (json_int_t)audit_id);
	json_decref(man);
	return t;
}

/* Verify and read the bundle in one pass; fills info, file_sha and rd.
 * Returns 0, or -1 with the reason printed (the bundle is kept). */
static int inspect(struct run *run, const struct bundle_row *b, struct adp_bundle_info *info,
		   char file_sha[CV_SHA256_HEX], struct reader *rd)
{
	const struct adp_bundle_hooks hooks = { events_hook, manifest_hook, rd };
	char why[1024] = "";
	uint64_t size;
	int rc;

	rd->lines = (struct ret_lines){ .fn = take_line, .arg = rd };
	if ((rc = adp_bundle_verify_ex(b->path, &hooks, info, why, sizeof(why))) != 0 ||
	    ret_lines_pending(&rd->lines)) {
		say(run, "kept", b, "cannot purge, the bundle does not verify: %s",
		    rd->err[0] ? rd->err : why[0] ? why : "events.jsonl: last line unterminated");
		return -1;
	}
	if (strcmp(info->manifest_sha256, b->chain) != 0) {
		say(run, "kept", b, "cannot purge, manifest sha256 %s differs from the catalog's %s",
		    info->manifest_sha256, b->chain);
		return -1;
	}
	if ((rc = cv_sha256_file(b->path, file_sha, &size)) != 0) {
		say(run, "kept", b, "cannot purge, cannot hash the bundle: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* Returns 1 purged, 0 kept (reason printed), -1 on a database failure. */
static int purge(struct run *run, const struct bundle_row *b, const char *why)
{
	struct adp_bundle_info info;
	char file_sha[CV_SHA256_HEX], tpath[PATH_MAX], purged_at[CV_TIME_BUFSZ], now_s[24];
	struct reader rd;
	struct holds h;
	const struct ret_hold *hold;
	json_t *details = NULL, *tomb = NULL;
	char *tomb_text = NULL;
	int64_t audit_id = 0;
	enum cv_result r;
	int rc, result = -1;

	memset(&rd, 0, sizeof(rd));
	if (ret_tombstone_path(b->path, tpath, sizeof(tpath)) != 0) {
		say(run, "kept", b, "cannot purge: the path is not a *.tar.zst bundle");
		run->st->damaged++;
		return 0;
	}
	if (inspect(run, b, &info, file_sha, &rd) != 0) {
		reader_free(&rd);
		run->st->damaged++;
		return 0;
	}
	cv_time_format_ms(run->o->now_ms, purged_at);
	snprintf(now_s, sizeof(now_s), "%" PRId64, run->o->now_ms);
	if ((r = sto_begin(run->db, run->err, run->errlen)) != CV_OK)
		goto out;
	r = sto_exec(run->db, "admin lock", "SELECT chatvault.admin_lock()", 0, NULL, NULL, run->err,
		     run->errlen);
	if (r != CV_OK)
		goto rollback;
	{	/* Still live?  (Another run may have purged it meanwhile.) */
		const char *p[2] = { b->adapter, b->batch_no };
		PGresult *res = NULL;

		r = sto_exec(run->db, "lock bundle", "SELECT state FROM chatvault.batches WHERE"
			     " adapter = $1 AND batch_no = $2::bigint FOR UPDATE", 2, p, &res,
			     run->err, run->errlen);
		if (r != CV_OK)
			goto rollback;
		rc = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "done") == 0;
		PQclear(res);
		if (!rc) {
			say(run, "skipped", b, "no longer live in the catalog");
			sto_rollback(run->db);
			result = 0;
			goto out;
		}
	}
	/* Holds, again, under the lock: one added since the run began wins. */
	if ((r = holds_load(run->db, &h, run->err, run->errlen)) != CV_OK)
		goto rollback;
	hold = holds_find(&h, &b->scope, b->min_ms, b->max_ms);
	if (hold) {
		say(run, "kept", b, "held by hold %" PRId64 " (%s)", hold->id, hold->reason);
		holds_free(&h);
		sto_rollback(run->db);
		run->st->held++;
		result = 0;
		goto out;
	}
	holds_free(&h);
	details = json_pack("{ss, sI, sI, sI, ss, ss, ss, ss, ss, ss}", "adapter", b->adapter,
			    "batch_no", (json_int_t)info.batch_no,
			    "first_staging_id", (json_int_t)info.first_staging_id,
			    "last_staging_id", (json_int_t)info.last_staging_id,
			    "manifest_sha256", info.manifest_sha256, "bundle_sha256", file_sha,
			    "tombstone", tpath, "reason", why, "purged_at", purged_at,
			    "clock", run->o->clock_override ? "CHATVAULT_NOW" : "system");
	if (!details) {
		snprintf(run->err, run->errlen, "out of memory");
		r = CV_FAIL;
		goto rollback;
	}
	if ((r = audit(run, "retention.purge", b->path, details, &audit_id)) != CV_OK)
		goto rollback;
	tomb = tombstone_json(b, &info, file_sha, &rd, purged_at, why, audit_id);
	tomb_text = tomb ? json_dumps(tomb, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
	if (!tomb_text) {
		snprintf(run->err, run->errlen, "out of memory");
		r = CV_FAIL;
		goto rollback;
	}
	{
		size_t n = strlen(tomb_text);
		char *t = realloc(tomb_text, n + 2);

		if (!t) {
			snprintf(run->err, run->errlen, "out of memory");
			r = CV_FAIL;
			goto rollback;
		}
		tomb_text = t;
		memcpy(tomb_text + n, "\n", 2);
		if ((rc = cv_write_file_atomic(tpath, tomb_text, n + 1, 0444)) != 0) {
			say(run, "kept", b, "cannot write the tombstone %s: %s", tpath, strerror(-rc));
			sto_rollback(run->db);
			run->st->damaged++;
			result = 0;
			goto out;
		}
	}
	{
		const char *p[5] = { b->adapter, b->batch_no, now_s, why, tpath };

		r = sto_exec(run->db, "mark purged", "UPDATE chatvault.batches SET state = 'purged',"
			     " purged_at = to_timestamp($3::bigint / 1000.0), purge_reason = $4,"
			     " tombstone = $5 WHERE adapter = $1 AND batch_no = $2::bigint", 5, p,
			     NULL, run->err, run->errlen);
	}
	if (r != CV_OK || (r = sto_commit(run->db, run->err, run->errlen)) != CV_OK) {
		/* The tombstone stays: the next run sees a live row with a
		 * tombstone and removes it. */
		goto rollback;
	}
	if (unlink(b->path) != 0 && errno != ENOENT)
		cv_warn(RET_COMPONENT, "%s: purged in the catalog but unlink failed: %s (the next run "
			"retries)", b->path, strerror(errno));
	else if (fsync_parent(b->path) != 0)
		cv_warn(RET_COMPONENT, "%s: cannot fsync its directory", b->path);
	say(run, "purged", b, "%s; tombstone %s", why, tpath);
	run->st->purged++;
	result = 1;
	goto out;
rollback:
	sto_rollback(run->db);
	result = -1;
out:
	json_decref(details);
	json_decref(tomb);
	free(tomb_text);
	reader_free(&rd);
	return result;
}

/* ---- the run -------------------------------------------------------------- */

static int archive_names(const struct cfg *cfg, char *buf, size_t len)
{
	size_t off = 0;
	int n = snprintf(buf, len, "{");

	off = (size_t)n;
	for (size_t i = 0; i < cfg->nadapters; i++) {
		if (strcmp(cfg->adapters[i].type, "archive") != 0)
			continue;
		/* Names are [a-z0-9_-]: nothing to quote in an array literal. */
		n = snprintf(buf + off, len - off, "%s%s", off > 1 ? "," : "", cfg->adapters[i].name);
		if (n < 0 || (size_t)n >= len - off)
			return -ENAMETOOLONG;
		off += (size_t)n;
	}
	if (off + 2 > len)
		return -ENAMETOOLONG;
	memcpy(buf + off, "}", 2);
	return 0;
}

/* Finish purges a crash interrupted; remove tombstones of purges that never
 * committed. */
static int sweep(struct run *run, const char *names)
{
	const char *p[1] = { names };
	PGresult *res = NULL;
	enum cv_result r;

	r = sto_exec(run->db, "interrupted purges",
		     "SELECT adapter, batch_no, path, state FROM chatvault.batches"
		     " WHERE adapter = ANY($1::text[]) AND state IN ('done', 'purged') AND path IS NOT NULL",
		     1, p, &res, run->err, run->errlen);
	if (r != CV_OK)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *path = PQgetvalue(res, i, 2);
		bool purged = strcmp(PQgetvalue(res, i, 3), "purged") == 0;
		char tpath[PATH_MAX];
		const char *victim = path;

		if (!purged) {
			if (ret_tombstone_path(path, tpath, sizeof(tpath)) != 0)
				continue;
			victim = tpath;
		}
		if (access(victim, F_OK) != 0)
			continue;
		if (run->o->dry_run) {
			fprintf(run->out, "would %s %s (%s batch %s)\n",
				purged ? "finish the interrupted purge of" : "remove the stale tombstone",
				victim, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
			continue;
		}
		if (unlink(victim) != 0) {
			cv_warn(RET_COMPONENT, "%s: cannot remove: %s", victim, strerror(errno));
			continue;
		}
		if (fsync_parent(victim) != 0)
			cv_warn(RET_COMPONENT, "%s: cannot fsync its directory", victim);
		fprintf(run->out, "%s %s (%s batch %s)\n",
			purged ? "finished the interrupted purge of" : "removed the stale tombstone",
			victim, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		run->st->finished++;
	}
	PQclear(res);
	return 0;
}

/* Lock retain_until (WORM: never earlier) and return the effective one. */
static int64_t lock_until(struct run *run, const struct bundle_row *b, const struct ret_decision *d,
			  bool *worm)
{
	int64_t until = d->applies ? ret_policy_until(d, b->max_ms) : INT64_MAX;

	*worm = b->worm || d->worm;
	if (*worm && b->retain_until >= 0 && (!d->applies || b->retain_until > until))
		until = b->retain_until;
	if (!run->o->dry_run && until != INT64_MAX && (until != b->retain_until || *worm != b->worm)) {
		char u[24];
		const char *p[4] = { b->adapter, b->batch_no, u, *worm ? "t" : "f" };

		snprintf(u, sizeof(u), "%" PRId64, until);
		if (sto_exec(run->db, "lock retention",
			     "UPDATE chatvault.batches SET retain_until = CASE WHEN worm THEN"
			     " greatest(retain_until, to_timestamp($3::bigint / 1000.0))"
			     " ELSE to_timestamp($3::bigint / 1000.0) END, worm = worm OR $4::boolean"
			     " WHERE adapter = $1 AND batch_no = $2::bigint", 4, p, NULL, run->err,
			     run->errlen) != CV_OK)
			cv_warn(RET_COMPONENT, "%s batch %s: %s", b->adapter, b->batch_no, run->err);
	}
	return until;
}

static int judge(struct run *run, const struct bundle_row *b, const struct holds *h)
{
	struct ret_decision d;
	const struct ret_hold *hold;
	char until_s[CV_TIME_BUFSZ], why[512];
	bool worm;
	int64_t until;
	const char *who;

	ret_policy_eval(run->cfg, &b->scope, &d);
	until = lock_until(run, b, &d, &worm);
	if (until == INT64_MAX) {
		say(run, "kept", b, "no retention profile applies (kept until one does)");
		run->st->kept++;
		return 0;
	}
	cv_time_format_ms(until, until_s);
	who = d.applies ? d.longest->name : "WORM lock";
	if (run->o->now_ms < until) {
		say(run, "kept", b, "retention until %s (%s%s)", until_s, who, worm ? ", WORM" : "");
		run->st->kept++;
		return 0;
	}
	if ((hold = holds_find(h, &b->scope, b->min_ms, b->max_ms))) {
		say(run, "kept", b, "retention over at %s (%s) but held by hold %" PRId64 " (%s)",
		    until_s, who, hold->id, hold->reason);
		run->st->held++;
		return 0;
	}
	if (worm && run->db_now_ms < until) {
		json_t *det;

		say(run, run->o->dry_run ? "would refuse" : "refused", b,
		    "WORM: retention until %s has not passed by the database clock", until_s);
		run->st->refused++;
		if (run->o->dry_run)
			return 0;
		det = json_pack("{ss, ss, ss, ss}", "adapter", b->adapter, "batch_no", b->batch_no,
				"retain_until", until_s, "clock", run->o->clock_override ?
				"CHATVAULT_NOW" : "system");
		if (!det || audit(run, "retention.refused", b->path, det, NULL) != CV_OK) {
			json_decref(det);
			return -1;
		}
		json_decref(det);
		return 0;
	}
	snprintf(why, sizeof(why), "retention: %s %d days elapsed at %s", who,
		 d.applies ? d.retention_days : 0, until_s);
	if (run->o->dry_run) {
		say(run, "would purge", b, "%s", why);
		run->st->purged++;
		return 0;
	}
	return purge(run, b, why) < 0 ? -1 : 0;
}

static int report_stale(struct run *run)
{
	char days[16];
	const char *p[1] = { days };
	PGresult *res = NULL;

	snprintf(days, sizeof(days), "%d", run->cfg->retention.stale_staging_days);
	if (sto_exec(run->db, "stale staging",
		     "SELECT (SELECT count(*) FROM chatvault.staged_events"
		     "   WHERE staged_at < now() - make_interval(days => $1::int)),"
		     " (SELECT count(*) FROM chatvault.quarantine WHERE replayed_at IS NULL"
		     "   AND quarantined_at < now() - make_interval(days => $1::int))",
		     1, p, &res, run->err, run->errlen) != CV_OK)
		return -1;
	run->st->stale_staged = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	run->st->stale_quarantined = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (run->st->stale_staged)
		fprintf(run->out, "staging: %" PRId64 " event(s) staged more than %s days ago are "
			"still undelivered (kept; see `chatvault status`)\n", run->st->stale_staged, days);
	if (run->st->stale_quarantined)
		fprintf(run->out, "quarantine: %" PRId64 " event(s) quarantined more than %s days ago "
			"(kept; see `chatvault quarantine list`)\n", run->st->stale_quarantined, days);
	return 0;
}

int ret_run(struct sto_db *db, const struct cfg *cfg, const struct ret_run_opts *o, FILE *out,
	    struct ret_run_stats *st, char *err, size_t errlen)
{
	struct run run = { db, cfg, o, out, st, 0, err, errlen };
	char names[8192];
	const char *p[1] = { names };
	PGresult *res = NULL;
	struct holds h = { 0 };
	int rc = -1;

	memset(st, 0, sizeof(*st));
	if (archive_names(cfg, names, sizeof(names)) != 0) {
		snprintf(err, errlen, "too many archive adapters");
		return -1;
	}
	if (sto_exec(db, "database clock", "SELECT (extract(epoch FROM now()) * 1000)::bigint", 0,
		     NULL, &res, err, errlen) != CV_OK)
		return -1;
	run.db_now_ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (sweep(&run, names) != 0 || holds_load(db, &h, err, errlen) != CV_OK)
		goto out;
	if (sto_exec(db, "live bundles",
		     "SELECT adapter, batch_no, first_sid, last_sid, event_count,"
		     " (extract(epoch FROM min_ts) * 1000)::bigint, (extract(epoch FROM max_ts) * 1000)::bigint,"
		     " array_to_json(rooms)::text, array_to_json(users)::text, path, coalesce(chain, ''),"
		     " (extract(epoch FROM retain_until) * 1000)::bigint, worm"
		     " FROM chatvault.batches WHERE adapter = ANY($1::text[]) AND state = 'done'"
		     "  AND path IS NOT NULL AND path <> '' ORDER BY adapter, batch_no",
		     1, p, &res, err, errlen) != CV_OK)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		struct bundle_row b;

		if (row_load(res, i, &b) != 0) {
			row_free(&b);
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		st->bundles++;
		if (judge(&run, &b, &h) != 0) {
			row_free(&b);
			goto out;
		}
		row_free(&b);
	}
	if (report_stale(&run) != 0)
		goto out;
	if (!o->dry_run) {
		json_t *d = json_pack("{sI, sI, sI, sI, sI, sI, ss}", "bundles", (json_int_t)st->bundles,
				      "purged", (json_int_t)st->purged, "kept", (json_int_t)st->kept,
				      "held", (json_int_t)st->held, "refused", (json_int_t)st->refused,
				      "damaged", (json_int_t)st->damaged,
				      "clock", o->clock_override ? "CHATVAULT_NOW" : "system");

		if (!d || audit(&run, "retention.run", NULL, d, NULL) != CV_OK) {
			json_decref(d);
			if (!d)
				snprintf(err, errlen, "out of memory");
			goto out;
		}
		json_decref(d);
	}
	rc = 0;
out:
	PQclear(res);
	holds_free(&h);
	return rc;
}
