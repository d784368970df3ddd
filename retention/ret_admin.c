/*
 * ret_admin — see ret_admin.h.
 */
#include "ret_admin.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cv_time.h"
#include "event.h"
#include "ret_policy.h"
#include "sto_db.h"

void ret_actor(char *buf, size_t len)
{
	char host[256] = "localhost", login[256] = "";
	struct passwd pw, *pwp = NULL;
	char pwbuf[1024];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 && pwp)
		snprintf(login, sizeof(login), "%s", pwp->pw_name);
	else
		snprintf(login, sizeof(login), "uid%u", (unsigned)geteuid());
	snprintf(buf, len, "%s@%s", login, host);
}

static int db_errno(enum cv_result r)
{
	return r == CV_RETRY ? -EAGAIN : -EIO;
}

/* Timestamps travel as epoch milliseconds; NULL for an open bound. */
static const char *ms_param(char *buf, size_t len, int64_t ms, int64_t open)
{
	if (ms == open)
		return NULL;
	snprintf(buf, len, "%" PRId64, ms);
	return buf;
}

enum cv_result ret_audit(struct sto_db *db, const char *actor, const char *action,
			 const char *target, const json_t *details, int64_t *audit_id,
			 char *err, size_t errlen)
{
	char *d = details ? json_dumps(details, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("{}");
	const char *p[4] = { actor, action, target, d };
	PGresult *res = NULL;
	enum cv_result r;

	if (!d) {
		snprintf(err, errlen, "audit: out of memory");
		return CV_FAIL;
	}
	r = sto_exec(db, "audit", "INSERT INTO chatvault.audit_log (actor, action, target, details)"
		     " VALUES ($1, $2, $3, $4::jsonb) RETURNING audit_id", 4, p, &res, err, errlen);
	free(d);
	if (r == CV_OK && audit_id)
		*audit_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return r;
}

static enum cv_result begin_admin(struct sto_db *db, char *err, size_t errlen)
{
	enum cv_result r = sto_begin(db, err, errlen);

	if (r == CV_OK && (r = sto_exec(db, "admin lock", "SELECT chatvault.admin_lock()", 0, NULL,
					NULL, err, errlen)) != CV_OK)
		sto_rollback(db);
	return r;
}

int ret_hold_add(struct sto_db *db, const struct ret_hold_req *req, const char *actor,
		 int64_t *id_out, char *err, size_t errlen)
{
	char from[24], to[24];
	const char *p[6] = { req->user, req->room, ms_param(from, sizeof(from), req->from_ms, INT64_MIN),
			     ms_param(to, sizeof(to), req->to_ms, INT64_MAX), req->reason, actor };
	PGresult *res = NULL;
	json_t *d;
	enum cv_result r;

	if ((!req->user && !req->room) || !req->reason || !req->reason[0]) {
		snprintf(err, errlen, "a hold needs --user or --room, and --reason");
		return -EINVAL;
	}
	if ((r = begin_admin(db, err, errlen)) != CV_OK)
		return db_errno(r);
	r = sto_exec(db, "add hold",
		     "INSERT INTO chatvault.holds (user_uri, room, from_ts, to_ts, reason, created_by)"
		     " VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), to_timestamp($4::bigint / 1000.0),"
		     " $5, $6) RETURNING hold_id", 6, p, &res, err, errlen);
	if (r != CV_OK)
		goto fail;
	*id_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	d = json_pack("{sI, ss?, ss?, ss?, ss?, ss}", "hold_id", (json_int_t)*id_out,
		      "user", req->user, "room", req->room, "from", p[2], "to", p[3],
		      "reason", req->reason);
	if (!d) {
		r = CV_FAIL;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r = ret_audit(db, actor, "hold.add", req->user ? req->user : req->room, d, NULL, err, errlen);
	json_decref(d);
	if (r != CV_OK || (r = sto_commit(db, err, errlen)) != CV_OK)
		goto fail;
	return 0;
fail:
	sto_rollback(db);
	return db_errno(r);
}

int ret_hold_release(struct sto_db *db, int64_t id, const char *reason, const char *actor,
		     char *err, size_t errlen)
{
	char ids[24];
	const char *p[3] = { ids, actor, reason };
	PGresult *res = NULL;
	json_t *d;
	enum cv_result r;
	int rc = -EIO;

	if (!reason || !reason[0]) {
		snprintf(err, errlen, "releasing a hold needs --reason");
		return -EINVAL;
	}
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	if ((r = begin_admin(db, err, errlen)) != CV_OK)
		return db_errno(r);
	r = sto_exec(db, "find hold", "SELECT released_at IS NOT NULL FROM chatvault.holds"
		     " WHERE hold_id = $1::bigint FOR UPDATE", 1, p, &res, err, errlen);
	if (r != CV_OK)
		goto fail;
	if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] == 't') {
		rc = PQntuples(res) != 1 ? -ENOENT : -EALREADY;
		snprintf(err, errlen, "hold %" PRId64 ": %s", id,
			 rc == -ENOENT ? "no such hold" : "already released");
		PQclear(res);
		sto_rollback(db);
		return rc;
	}
	PQclear(res);
	r = sto_exec(db, "release hold", "UPDATE chatvault.holds SET released_at = now(),"
		     " released_by = $2, release_reason = $3 WHERE hold_id = $1::bigint",
		     3, p, NULL, err, errlen);
	if (r != CV_OK)
		goto fail;
	d = json_pack("{sI, ss}", "hold_id", (json_int_t)id, "reason", reason);
	if (!d) {
		r = CV_FAIL;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r = ret_audit(db, actor, "hold.release", ids, d, NULL, err, errlen);
	json_decref(d);
	if (r != CV_OK || (r = sto_commit(db, err, errlen)) != CV_OK)
		goto fail;
	return 0;
fail:
	sto_rollback(db);
	return db_errno(r);
}

int ret_hold_list(struct sto_db *db, bool all, bool json, FILE *out, char *err, size_t errlen)
{
	const char *p[1] = { all ? "t" : "f" };
	PGresult *res = NULL;
	enum cv_result r;
	int n;

	r = sto_exec(db, "list holds",
		     "SELECT hold_id, coalesce(user_uri, ''), coalesce(room, ''),"
		     " coalesce(to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''),"
		     " coalesce(to_char(to_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''),"
		     " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), created_by,"
		     " reason, coalesce(to_char(released_at AT TIME ZONE 'UTC',"
		     "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), coalesce(released_by, ''),"
		     " coalesce(release_reason, '')"
		     " FROM chatvault.holds WHERE $1::boolean OR released_at IS NULL ORDER BY hold_id",
		     1, p, &res, err, errlen);
	if (r != CV_OK)
		return db_errno(r);
	n = PQntuples(res);
	if (json) {
		json_t *arr = json_array();

		for (int i = 0; arr && i < n; i++) {
			json_t *o = json_pack("{sI, ss?, ss?, ss?, ss?, ss, ss, ss, ss?, ss?, ss?}",
				"hold_id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
				"user", PQgetvalue(res, i, 1)[0] ? PQgetvalue(res, i, 1) : NULL,
				"room", PQgetvalue(res, i, 2)[0] ? PQgetvalue(res, i, 2) : NULL,
				"from", PQgetvalue(res, i, 3)[0] ? PQgetvalue(res, i, 3) : NULL,
				"to", PQgetvalue(res, i, 4)[0] ? PQgetvalue(res, i, 4) : NULL,
				"created_at", PQgetvalue(res, i, 5), "created_by", PQgetvalue(res, i, 6),
				"reason", PQgetvalue(res, i, 7),
				"released_at", PQgetvalue(res, i, 8)[0] ? PQgetvalue(res, i, 8) : NULL,
				"released_by", PQgetvalue(res, i, 9)[0] ? PQgetvalue(res, i, 9) : NULL,
				"release_reason", PQgetvalue(res, i, 10)[0] ? PQgetvalue(res, i, 10) : NULL);
			if (!o || json_array_append_new(arr, o) != 0) {
				json_decref(arr);
				arr = NULL;
			}
		}
		if (!arr || json_dumpf(arr, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
			json_decref(arr);
			PQclear(res);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		fputc('\n', out);
		json_decref(arr);
		PQclear(res);
		return 0;
	}
	fprintf(out, "%-6s %-8s %-40s %-24s %-24s %-20s %s\n", "HOLD", "STATE", "SCOPE", "FROM",
		"TO", "CREATED", "REASON");
	for (int i = 0; i < n; i++) {
		char scope[512];
		const char *u = PQgetvalue(res, i, 1), *rm = PQgetvalue(res, i, 2);

		snprintf(scope, sizeof(scope), "%s%s%s%s%s", u[0] ? "user " : "", u,
			 u[0] && rm[0] ? ", " : "", rm[0] ? "room " : "", rm);
		fprintf(out, "%-6s %-8s %-40s %-24s %-24s %-20s %s (by %s)\n", PQgetvalue(res, i, 0),
			PQgetvalue(res, i, 8)[0] ? "released" : "active", scope,
			PQgetvalue(res, i, 3)[0] ? PQgetvalue(res, i, 3) : "-",
			PQgetvalue(res, i, 4)[0] ? PQgetvalue(res, i, 4) : "-", PQgetvalue(res, i, 5),
			PQgetvalue(res, i, 7), PQgetvalue(res, i, 6));
	}
	if (n == 0)
		fprintf(out, "(no %sholds)\n", all ? "" : "active ");
	PQclear(res);
	return 0;
}

/* Redact one staged body in place: text and attachment names. */
static int redact_body(const char *body, size_t len, size_t max_size, char **out, size_t *outlen,
		       char *err, size_t errlen)
{
	struct ing_event ev;
	char why[ING_EVENT_ERRLEN];
	int rc;

	rc = ing_event_parse(body, len, max_size, 0, &ev, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "staged event does not parse: %s", why);
		return rc;
	}
	rc = -ENOMEM;
	if (ev.text) {
		free(ev.text);
		if (!(ev.text = strdup(RET_ERASED_TEXT)))
			goto out;
	}
	for (size_t i = 0; i < ev.nfiles; i++) {
		free(ev.files[i].name);
		if (!(ev.files[i].name = strdup(RET_ERASED_TEXT)))
			goto out;
	}
	rc = ing_event_serialize(&ev, out, outlen);
	if (rc != 0)
		snprintf(err, errlen, "cannot re-serialise the redacted event");
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	ing_event_clear(&ev);
	return rc;
}

static enum cv_result redact_staged(struct sto_db *db, const struct cfg *cfg, const char *user,
				    int64_t *count, char *err, size_t errlen)
{
	const char *p[1] = { user };
	PGresult *res = NULL;
	enum cv_result r;

	*count = 0;
	r = sto_exec(db, "select staged events of the user",
		     "SELECT staging_id, body FROM chatvault.staged_events"
		     " WHERE user_uri = $1 OR body::jsonb->>'to' = $1 ORDER BY staging_id FOR UPDATE",
		     1, p, &res, err, errlen);
	if (r != CV_OK)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		char *nb = NULL;
		size_t nlen;
		const char *up[2] = { PQgetvalue(res, i, 0), NULL };

		if (redact_body(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
				(size_t)cfg->ingest.max_event_size, &nb, &nlen, err, errlen) != 0) {
			PQclear(res);
			return CV_FAIL;
		}
		up[1] = nb;
		r = sto_exec(db, "redact staged event", "UPDATE chatvault.staged_events SET body = $2"
			     " WHERE staging_id = $1::bigint", 2, up, NULL, err, errlen);
		free(nb);
		if (r != CV_OK) {
			PQclear(res);
			return r;
		}
		(*count)++;
	}
	PQclear(res);
	return CV_OK;
}

/* An active hold touching the user, directly or through one of the rooms
 * where the user has archived or staged events; "" when none. */
static enum cv_result hold_on_user(struct sto_db *db, const char *user, char *why, size_t whylen,
				   char ***rooms, size_t *nrooms, char *err, size_t errlen)
{
	const char *p[1] = { user };
	PGresult *res = NULL;
	enum cv_result r;
	int n;

	why[0] = '\0';
	*rooms = NULL;
	*nrooms = 0;
	r = sto_exec(db, "rooms of the user",
		     "SELECT DISTINCT r FROM (SELECT unnest(rooms) AS r FROM chatvault.batches"
		     "  WHERE users @> ARRAY[$1] UNION SELECT room FROM chatvault.staged_events"
		     "  WHERE (user_uri = $1 OR body::jsonb->>'to' = $1) AND room IS NOT NULL) x"
		     " ORDER BY r", 1, p, &res, err, errlen);
	if (r != CV_OK)
		return r;
	n = PQntuples(res);
	if (n > 0) {
		*rooms = calloc((size_t)n, sizeof(**rooms));
		if (!*rooms) {
			PQclear(res);
			snprintf(err, errlen, "out of memory");
			return CV_FAIL;
		}
		for (int i = 0; i < n; i++) {
			if (!((*rooms)[i] = strdup(PQgetvalue(res, i, 0)))) {
				PQclear(res);
				snprintf(err, errlen, "out of memory");
				return CV_FAIL;
			}
			(*nrooms)++;
		}
	}
	PQclear(res);
	r = sto_exec(db, "holds on the user",
		     "SELECT h.hold_id, h.reason FROM chatvault.holds h WHERE h.released_at IS NULL"
		     " AND (h.user_uri = $1 OR (h.user_uri IS NULL AND h.room IN"
		     "  (SELECT unnest(rooms) FROM chatvault.batches WHERE users @> ARRAY[$1]"
		     "   UNION SELECT room FROM chatvault.staged_events"
		     "   WHERE user_uri = $1 OR body::jsonb->>'to' = $1)))"
		     " ORDER BY h.hold_id LIMIT 1", 1, p, &res, err, errlen);
	if (r != CV_OK)
		return r;
	if (PQntuples(res) == 1)
		snprintf(why, whylen, "legal hold %s applies (%s)", PQgetvalue(res, 0, 0),
			 PQgetvalue(res, 0, 1));
	PQclear(res);
	return CV_OK;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int ret_erase(struct sto_db *db, const struct cfg *cfg, const char *user, const char *reason,
	      const char *actor, struct ret_erasure *res_out, char *err, size_t errlen)
{
	char **rooms = NULL, red[24];
	size_t nrooms = 0;
	PGresult *res = NULL;
	const char *refusal;
	enum cv_result r;
	json_t *d;

	memset(res_out, 0, sizeof(*res_out));
	if (!user || !user[0] || !reason || !reason[0]) {
		snprintf(err, errlen, "erase needs --user and --reason");
		return -EINVAL;
	}
	if ((r = begin_admin(db, err, errlen)) != CV_OK)
		return db_errno(r);
	r = hold_on_user(db, user, res_out->refusal, sizeof(res_out->refusal), &rooms, &nrooms, err,
			 errlen);
	if (r != CV_OK)
		goto fail;
	if (!res_out->refusal[0]) {
		refusal = ret_policy_erasure(cfg, user, (const char *const *)rooms, nrooms,
					     res_out->refusal, sizeof(res_out->refusal));
		if (!refusal)
			res_out->refusal[0] = '\0';
	}
	res_out->honoured = res_out->refusal[0] == '\0';
	if (res_out->honoured && (r = redact_staged(db, cfg, user, &res_out->redacted, err,
						    errlen)) != CV_OK)
		goto fail;
	snprintf(red, sizeof(red), "%" PRId64, res_out->redacted);
	{
		const char *p[6] = { user, reason, actor, res_out->honoured ? "honoured" : "refused",
				     res_out->honoured ? NULL : res_out->refusal, red };

		r = sto_exec(db, "record erasure",
			     "INSERT INTO chatvault.erasures (user_uri, reason, requested_by, state,"
			     " refusal, redacted_staged) VALUES ($1, $2, $3, $4, $5, $6::bigint)"
			     " RETURNING erasure_id", 6, p, &res, err, errlen);
	}
	if (r != CV_OK)
		goto fail;
	res_out->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	d = json_pack("{sI, ss, ss, ss?, sI}", "erasure_id", (json_int_t)res_out->id, "reason", reason,
		      "state", res_out->honoured ? "honoured" : "refused",
		      "refusal", res_out->honoured ? NULL : res_out->refusal,
		      "redacted_staged", (json_int_t)res_out->redacted);
	if (!d) {
		r = CV_FAIL;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r = ret_audit(db, actor, "erase", user, d, NULL, err, errlen);
	json_decref(d);
	if (r != CV_OK || (r = sto_commit(db, err, errlen)) != CV_OK)
		goto fail;
	free_strv(rooms, nrooms);
	return 0;
fail:
	sto_rollback(db);
	free_strv(rooms, nrooms);
	return db_errno(r);
}
