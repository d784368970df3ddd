/*
 * ret_export — the export engine: set up, catalog, erasures, the loop over
 * the source bundles, and the audited publish; see ret_export.h for the
 * contract and ret_export_int.h for how the work is split.
 *
 * Sequence: resolve the archive adapter; create the private temporary
 * directory next to the output; load honoured erasures and the purged
 * catalog rows in range; then per source bundle, in batch_no order
 * (ret_export_read.c):
 *   1. open it and hash the whole file (manifest "source_bundles".sha256),
 *      keeping its stat so that a file changed or replaced while we read it
 *      is noticed;
 *   2. adp_bundle_verify_info: structure, member hashes, line count; its
 *      manifest hash must be the catalog's chain, its batch, adapter and
 *      staging ids the catalog row's;
 *   3. stream it (adp_bundle_read): events.jsonl is split into lines
 *      bounded by ingest.max_event_size, each parsed strictly
 *      (ing_event_parse) and filtered; files/<sha256> referenced by a
 *      matching event are copied out (and must hash to their name);
 *      manifest.json is hashed again and its staging_ids ranges give each
 *      line its staging id (they come last, hence the "pending" file).
 */
#include "ret_export.h"
#include "ret_admin.h"
#include "ret_export_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv_log.h"
#include "cv_time.h"
#include "sto_db.h"

#define RX_DRAW_MS 100                        /* progress redraw interval */

/* The catalog rows an export reads: parameters $1 adapter, $2 from, $3 to,
 * $4 rooms (text[] or NULL), $5 users (text[] or NULL). */
#define RX_OVERLAP \
	" FROM chatvault.batches WHERE adapter = $1 AND min_ts < $3::timestamptz" \
	" AND max_ts >= $2::timestamptz" \
	" AND ($4::text[] IS NULL OR rooms && $4::text[])" \
	" AND ($5::text[] IS NULL OR users && $5::text[])"
#define RX_MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"

/* --- errors, stop, progress ---------------------------------------------- */

void ret_export_fail(struct ret_export_job *j, const char *fmt, ...)
{
	va_list ap;

	if (!j->err || j->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(j->err, j->errlen, fmt, ap);
	va_end(ap);
}

bool ret_export_stopped(struct ret_export_job *j)
{
	if (j->o->should_stop && j->o->should_stop(j->o->stop_arg)) {
		ret_export_fail(j, "interrupted");
		return true;
	}
	return false;
}

void ret_export_progress(struct ret_export_job *j, const char *phase, bool force)
{
	int64_t now;

	if (!j->o->progress)
		return;
	now = cv_time_mono_ms();
	if (!force && j->drawn && now - j->last_draw_ms < RX_DRAW_MS)
		return;
	j->last_draw_ms = now;
	j->drawn = true;
	if (phase)
		fprintf(stderr, "\rexport: %s\033[K", phase);
	else
		fprintf(stderr, "\rexport: %zu/%zu bundles, %" PRId64 " events\033[K", j->bundle_i,
			j->nbundles, j->res->events);
	fflush(stderr);
}

/* --- the catalog ----------------------------------------------------------- */

static int db_fail(struct ret_export_job *j, const char *dberr)
{
	ret_export_fail(j, "database: %s", dberr);
	return -EIO;
}

static int cmp_erased(const void *a, const void *b)
{
	const struct ret_export_erased *x = a, *y = b;

	return strcmp(x->user, y->user);
}

static int load_erasures(struct ret_export_job *j)
{
	char dberr[STO_ERRLEN];
	PGresult *res = NULL;
	int n;

	if (sto_exec(j->db, "load erasures",
		     "SELECT user_uri, " RX_MS("min(requested_at)") " FROM chatvault.erasures"
		     " WHERE state = 'honoured' GROUP BY user_uri", 0, NULL, &res, dberr,
		     sizeof(dberr)) != CV_OK)
		return db_fail(j, dberr);
	n = PQntuples(res);
	j->erased = calloc(n ? (size_t)n : 1, sizeof(*j->erased));
	if (!j->erased) {
		PQclear(res);
		ret_export_fail(j, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct ret_export_erased *e = &j->erased[j->nerased];

		e->user = strdup(PQgetvalue(res, i, 0));
		if (!e->user) {
			PQclear(res);
			ret_export_fail(j, "out of memory");
			return -ENOMEM;
		}
		e->requested_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		j->nerased++;
	}
	PQclear(res);
	qsort(j->erased, j->nerased, sizeof(*j->erased), cmp_erased);
	return 0;
}

/* Overlap query parameters; arrays are NULL when the filter is unset. */
struct rx_params {
	struct cv_buf rooms, users;
	const char *p[5];
};

static int make_params(struct ret_export_job *j, struct rx_params *p)
{
	p->p[0] = j->adapter;
	p->p[1] = j->from_s;
	p->p[2] = j->to_s;
	if ((j->nrooms && ret_export_pg_array(&p->rooms, j->rooms, j->nrooms) != 0) ||
	    (j->nusers && ret_export_pg_array(&p->users, j->users, j->nusers) != 0)) {
		ret_export_fail(j, "out of memory");
		return -ENOMEM;
	}
	p->p[3] = j->nrooms ? p->rooms.data : NULL;
	p->p[4] = j->nusers ? p->users.data : NULL;
	return 0;
}

/*
 * The catalog rows of the query, done and purged, in one statement (one
 * snapshot): a bundle purged while we look is in exactly one of the two
 * lists, never in neither.  Columns: batch_no, first_sid, last_sid,
 * event_count, path, chain, state, min_ts, max_ts, purged_at (ms),
 * purge_reason.
 */
static int load_catalog(struct ret_export_job *j, const struct rx_params *p, PGresult **out)
{
	char dberr[STO_ERRLEN];
	PGresult *res = NULL;

	*out = NULL;
	if (sto_exec(j->db, "load bundle catalog",
		     "SELECT batch_no, first_sid, last_sid, event_count, coalesce(path, ''),"
		     " coalesce(chain, ''), state, " RX_MS("min_ts") ", " RX_MS("max_ts") ", "
		     RX_MS("purged_at") ", coalesce(purge_reason, '')" RX_OVERLAP
		     " AND state IN ('done', 'purged') ORDER BY batch_no", 5, p->p, &res, dberr,
		     sizeof(dberr)) != CV_OK)
		return db_fail(j, dberr);
	for (int i = 0; i < PQntuples(res); i++) {
		char ts[3][CV_TIME_BUFSZ];
		json_t *o;

		if (strcmp(PQgetvalue(res, i, 6), "done") == 0) {
			j->nbundles++;
			continue;
		}
		for (int k = 0; k < 3; k++) {
			ts[k][0] = '\0';
			if (!PQgetisnull(res, i, 7 + k) &&
			    cv_time_format_ms(strtoll(PQgetvalue(res, i, 7 + k), NULL, 10), ts[k]) != 0)
				ts[k][0] = '\0';
		}
		o = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "adapter", j->adapter,
			      "batch_no", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
			      "first_staging_id", (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10),
			      "last_staging_id", (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10),
			      "min_ts", ts[0], "max_ts", ts[1], "purged_at", ts[2],
			      "reason", PQgetvalue(res, i, 10));
		if (json_array_append_new(j->purged, o) != 0) {
			PQclear(res);
			ret_export_fail(j, "out of memory");
			return -ENOMEM;
		}
		j->res->purged++;
	}
	*out = res;
	return 0;
}

/* Read the done bundles of the catalog result, in batch_no order. */
static int read_bundles(struct ret_export_job *j, PGresult *res)
{
	int rc = 0;

	for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
		struct ret_export_row row = {
			.batch_no = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.first_sid = strtoll(PQgetvalue(res, i, 1), NULL, 10),
			.last_sid = strtoll(PQgetvalue(res, i, 2), NULL, 10),
			.event_count = strtoll(PQgetvalue(res, i, 3), NULL, 10),
			.path = PQgetvalue(res, i, 4),
			.chain = PQgetvalue(res, i, 5),
		};

		if (strcmp(PQgetvalue(res, i, 6), "done") != 0)
			continue;
		ret_export_progress(j, NULL, false);
		if (ret_export_stopped(j)) {
			rc = -EINTR;
			break;
		}
		if (!*row.path) {
			/* Every event of the batch was quarantined: no bundle. */
			if (row.event_count != 0) {
				ret_export_fail(j, "catalog: batch %" PRId64 " of %s is done with %"
						PRId64 " events but has no bundle path", row.batch_no,
						j->adapter, row.event_count);
				rc = -EBADMSG;
			}
		} else {
			rc = ret_export_bundle(j, &row);
		}
		j->bundle_i++;
	}
	return rc;
}

/* --- set up, publish, tear down --------------------------------------------- */

const struct cfg_adapter *ret_export_default_adapter(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->nadapters; i++)
		if (strcmp(cfg->adapters[i].type, "archive") == 0)
			return &cfg->adapters[i];
	return NULL;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, unique copy of a filter list (the strings stay the caller's). */
static int sorted_list(const char *const *v, size_t n, const char ***out, size_t *nout)
{
	const char **s;
	size_t k = 0;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_strp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(s[k - 1], s[i]) != 0)
			s[k++] = s[i];
	*out = s;
	*nout = k;
	return 0;
}

/* The same actor the other administrative acts record (ret_admin.h): the
 * effective user, not $USER, which anyone can set. */
static void who_am_i(struct ret_export_job *j)
{
	ret_actor(j->exported_by, sizeof(j->exported_by));
}

/* Output paths and the private temporary directory next to the output. */
static int prepare_paths(struct ret_export_job *j)
{
	const char *out = j->o->output, *slash, *base;
	char real[PATH_MAX];
	struct stat st;
	size_t dlen;

	if (!out || !*out || out[strlen(out) - 1] == '/') {
		ret_export_fail(j, "output: not a file name: \"%s\"", out ? out : "");
		return -EINVAL;
	}
	slash = strrchr(out, '/');
	base = slash ? slash + 1 : out;
	dlen = slash ? (size_t)(slash - out) : 0;
	if (slash && dlen == 0)
		dlen = 1;   /* "/file" */
	if (strlen(out) + 8 >= sizeof(j->out_tmp) || dlen >= sizeof(j->out_dir)) {
		ret_export_fail(j, "output %s: path too long", out);
		return -ENAMETOOLONG;
	}
	if (slash)
		snprintf(j->out_dir, sizeof(j->out_dir), "%.*s", (int)dlen, out);
	else
		snprintf(j->out_dir, sizeof(j->out_dir), ".");
	snprintf(j->out_tmp, sizeof(j->out_tmp), "%s.tmp", out);
	if (!realpath(j->out_dir, real)) {
		int e = errno;

		ret_export_fail(j, "output directory %s: %s", j->out_dir, strerror(e));
		return -e;
	}
	if (snprintf(j->out_abs, sizeof(j->out_abs), "%s/%s", strcmp(real, "/") ? real : "",
		     base) >= (int)sizeof(j->out_abs)) {
		ret_export_fail(j, "output %s: path too long", out);
		return -ENAMETOOLONG;
	}
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
		ret_export_fail(j, "output %s: is a directory", out);
		return -EISDIR;
	}
	if (snprintf(j->tmpdir, sizeof(j->tmpdir), "%s/.chatvault-export-XXXXXX", j->out_dir) >=
		    (int)sizeof(j->tmpdir) - 64 ||
	    !mkdtemp(j->tmpdir)) {
		int e = errno ? errno : ENAMETOOLONG;

		ret_export_fail(j, "cannot create a temporary directory in %s: %s", j->out_dir,
				strerror(e));
		j->tmpdir[0] = '\0';
		return -e;
	}
	/* tmpdir is at most PATH_MAX - 64 long (checked above). */
	if (snprintf(j->files_dir, sizeof(j->files_dir), "%s/files", j->tmpdir) >=
		    (int)sizeof(j->files_dir) ||
	    snprintf(j->adapter_dir, sizeof(j->adapter_dir), "%s/out", j->tmpdir) >=
		    (int)sizeof(j->adapter_dir) ||
	    snprintf(j->pending_path, sizeof(j->pending_path), "%s/pending", j->tmpdir) >=
		    (int)sizeof(j->pending_path) ||
	    snprintf(j->events_path, sizeof(j->events_path), "%s/%s", j->tmpdir,
		     j->q->format == RET_EXPORT_JSONL ? "events.jsonl" :
		     j->q->format == RET_EXPORT_CSV ? "events.csv" : "spool") >=
		    (int)sizeof(j->events_path)) {
		ret_export_fail(j, "%s: path too long", j->tmpdir);
		return -ENAMETOOLONG;
	}
	if (mkdir(j->files_dir, 0700) != 0) {
		int e = errno;

		ret_export_fail(j, "mkdir %s: %s", j->files_dir, strerror(e));
		return -e;
	}
	j->events = fopen(j->events_path, "wxe");
	j->pending = j->events ? fopen(j->pending_path, "w+xe") : NULL;
	if (!j->events || !j->pending) {
		int e = errno;

		ret_export_fail(j, "create a temporary file in %s: %s", j->tmpdir, strerror(e));
		return -e;
	}
	return 0;
}

/* Audit row, rename and directory fsync in one transaction: if the audit
 * cannot be written, the package does not appear (or is removed). */
static int publish(struct ret_export_job *j)
{
	json_t *d;
	char dberr[STO_ERRLEN];
	bool renamed = false;
	int rc;

	d = json_pack("{s:s, s:o, s:o, s:I, s:I, s:s, s:I}", "format", RET_EXPORT_FORMAT,
		      "query", ret_export_query_json(j), "counts", ret_export_counts_json(j),
		      "source_bundles", (json_int_t)j->res->bundles,
		      "purged_in_range", (json_int_t)j->res->purged,
		      "output_sha256", j->res->sha256, "output_size", (json_int_t)j->res->size);
	if (!d) {
		ret_export_fail(j, "out of memory");
		unlink(j->out_tmp);
		return -ENOMEM;
	}
	if (sto_begin(j->db, dberr, sizeof(dberr)) != CV_OK ||
	    ret_audit(j->db, j->exported_by, "export", j->out_abs, d, NULL, dberr,
		      sizeof(dberr)) != CV_OK) {
		rc = db_fail(j, dberr);
		goto fail;
	}
	if (rename(j->out_tmp, j->o->output) != 0) {
		rc = -errno;
		ret_export_fail(j, "rename %s: %s", j->out_tmp, strerror(-rc));
		goto fail;
	}
	renamed = true;
	if ((rc = cv_fsync_dir(j->out_dir)) != 0) {
		ret_export_fail(j, "fsync %s: %s", j->out_dir, strerror(-rc));
		goto fail;
	}
	if (sto_commit(j->db, dberr, sizeof(dberr)) != CV_OK) {
		rc = db_fail(j, dberr);
		goto fail;
	}
	json_decref(d);
	return 0;
fail:
	sto_rollback(j->db);
	if (renamed) {
		unlink(j->o->output);
		if (cv_fsync_dir(j->out_dir) != 0)
			cv_warn("export", "fsync %s after removing %s failed", j->out_dir,
				j->o->output);
	} else {
		unlink(j->out_tmp);
	}
	json_decref(d);
	return rc;
}

static int close_events(struct ret_export_job *j)
{
	int rc = 0;

	if (j->events && fclose(j->events) != 0)
		rc = -errno;
	j->events = NULL;
	if (rc)
		ret_export_fail(j, "write %s: %s", j->events_path, strerror(-rc));
	return rc;
}

static void job_free(struct ret_export_job *j)
{
	if (j->events)
		fclose(j->events);
	if (j->pending)
		fclose(j->pending);
	if (j->tmpdir[0])
		(void)ret_export_rmtree(j->tmpdir);
	for (size_t i = 0; i < j->nerased; i++)
		free(j->erased[i].user);
	free(j->erased);
	free(j->rooms);
	free(j->users);
	cv_sha256_free(j->sha);
	cv_buf_free(&j->row);
	ret_export_set_free(&j->seen_rooms);
	ret_export_set_free(&j->seen_users);
	ret_export_set_free(&j->wanted);
	json_decref(j->source_bundles);
	json_decref(j->purged);
}

int ret_export_run(const struct cfg *cfg, struct sto_db *db, const struct ret_export_query *q,
		   const struct ret_export_opts *o, struct ret_export_result *res, char *err,
		   size_t errlen)
{
	struct ret_export_job j = {
		.cfg = cfg, .db = db, .q = q, .o = o, .err = err, .errlen = errlen, .res = res,
	};
	const struct cfg_adapter *ca;
	struct rx_params p = { 0 };
	PGresult *catalog = NULL;
	int rc;

	memset(res, 0, sizeof(*res));
	if (err && errlen)
		err[0] = '\0';
	ca = o->adapter ? cfg_find_adapter(cfg, o->adapter) : ret_export_default_adapter(cfg);
	if (!ca || strcmp(ca->type, "archive") != 0) {
		if (o->adapter)
			ret_export_fail(&j, "adapter %s: %s", o->adapter, ca ? "not of type "
					"\"archive\"" : "not in the configuration");
		else
			ret_export_fail(&j, "no adapter of type \"archive\" in the configuration");
		return -EINVAL;
	}
	j.adapter = ca->name;
	j.format_name = ret_export_format_name(q->format);
	if (!j.format_name || q->from_ms >= q->to_ms ||
	    cv_time_format_ms(q->from_ms, j.from_s) != 0 ||
	    cv_time_format_ms(q->to_ms, j.to_s) != 0) {
		ret_export_fail(&j, "bad query (format, or from not before to)");
		return -EINVAL;
	}
	j.max_line = (size_t)cfg->ingest.max_event_size;
	j.now_ms = cv_time_now_ms();
	(void)cv_time_format_ms(j.now_ms, j.exported_at);
	who_am_i(&j);
	j.sha = cv_sha256_new();
	j.source_bundles = json_array();
	j.purged = json_array();
	if (!j.sha || !j.source_bundles || !j.purged ||
	    sorted_list(q->rooms, q->nrooms, &j.rooms, &j.nrooms) != 0 ||
	    sorted_list(q->users, q->nusers, &j.users, &j.nusers) != 0) {
		ret_export_fail(&j, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = prepare_paths(&j)) != 0 || (rc = make_params(&j, &p)) != 0 ||
	    (rc = load_erasures(&j)) != 0 || (rc = load_catalog(&j, &p, &catalog)) != 0)
		goto out;
	if (q->format == RET_EXPORT_CSV && (rc = ret_export_csv_header(&j)) != 0)
		goto out;
	if ((rc = read_bundles(&j, catalog)) != 0 || (rc = close_events(&j)) != 0)
		goto out;
	ret_export_progress(&j, NULL, true);
	if ((q->format == RET_EXPORT_XML || q->format == RET_EXPORT_EML) &&
	    (rc = ret_export_run_adapter(&j)) != 0)
		goto out;
	res->rooms = (int64_t)j.seen_rooms.n;
	res->users = (int64_t)j.seen_users.n;
	if ((rc = ret_export_package(&j)) != 0)
		goto out;
	if (ret_export_stopped(&j)) {
		unlink(j.out_tmp);
		rc = -EINTR;
		goto out;
	}
	if ((rc = publish(&j)) != 0)
		goto out;
	snprintf(res->path, sizeof(res->path), "%s", j.out_abs);
out:
	if (j.drawn)
		fputc('\n', stderr);
	PQclear(catalog);
	cv_buf_free(&p.rooms);
	cv_buf_free(&p.users);
	job_free(&j);
	return rc;
}
