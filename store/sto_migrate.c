/*
 * sto_migrate — see sto_migrate.h.
 */
#include "sto_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_log.h"
#include "cv_util.h"

/* Arbitrary but fixed: "cvmg" — serialises concurrent migrate runs. */
#define MIGRATE_LOCK_KEY "1668705639"

static const char bootstrap_sql[] =
	"CREATE SCHEMA IF NOT EXISTS chatvault;"
	"CREATE TABLE IF NOT EXISTS chatvault.schema_migrations ("
	"  version int PRIMARY KEY,"
	"  name text NOT NULL,"
	"  sha256 text NOT NULL,"
	"  applied_at timestamptz NOT NULL DEFAULT now())";

static enum cv_result exec_script(struct sto_db *db, const char *what, const char *sql,
				  char *err, size_t errlen)
{
	/* PQexec (not PQexecParams) because a migration holds several
	 * statements; its text is ours, compiled in, never built from data. */
	PGresult *res = PQexec(sto_db_conn(db), sql);
	enum cv_result r = CV_OK;

	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

		r = sto_classify(db, res);
		snprintf(err, errlen, "%s: %s %s", what, state ? state : "",
			 msg ? msg : PQerrorMessage(sto_db_conn(db)));
	}
	PQclear(res);
	return r;
}

int sto_schema_version(struct sto_db *db, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int v;

	if (sto_exec(db, "schema version",
		     "SELECT coalesce(max(version), 0) FROM chatvault.schema_migrations",
		     0, NULL, &res, err, errlen) != CV_OK)
		return -1;
	v = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

/* 1: applied with the same checksum, 0: not applied, -1: error/mismatch */
static int recorded(struct sto_db *db, const struct sto_migration *m, const char *sha,
		    char *err, size_t errlen)
{
	char version[16];
	const char *params[1] = { version };
	PGresult *res = NULL;
	int rc = 0;

	snprintf(version, sizeof(version), "%d", m->version);
	if (sto_exec(db, "read schema_migrations",
		     "SELECT sha256 FROM chatvault.schema_migrations WHERE version = $1",
		     1, params, &res, err, errlen) != CV_OK)
		return -1;
	if (PQntuples(res) == 1) {
		if (strcmp(PQgetvalue(res, 0, 0), sha) != 0) {
			snprintf(err, errlen, "migration %s: applied earlier with different content "
				 "(sha256 %.12s…, now %.12s…); shipped migrations must not change",
				 m->name, PQgetvalue(res, 0, 0), sha);
			rc = -1;
		} else {
			rc = 1;
		}
	}
	PQclear(res);
	return rc;
}

static enum cv_result apply_one(struct sto_db *db, const struct sto_migration *m, const char *sha,
				char *err, size_t errlen)
{
	char version[16], what[128];
	const char *params[3] = { version, m->name, sha };
	enum cv_result r;

	snprintf(version, sizeof(version), "%d", m->version);
	snprintf(what, sizeof(what), "migration %s", m->name);
	if ((r = sto_begin(db, err, errlen)) != CV_OK)
		return r;
	if ((r = exec_script(db, what, m->sql, err, errlen)) != CV_OK)
		goto fail;
	if ((r = sto_exec(db, what,
			  "INSERT INTO chatvault.schema_migrations (version, name, sha256) "
			  "VALUES ($1, $2, $3)", 3, params, NULL, err, errlen)) != CV_OK)
		goto fail;
	if ((r = sto_commit(db, err, errlen)) != CV_OK)
		goto fail;
	return CV_OK;
fail:
	sto_rollback(db);
	return r;
}

enum cv_result sto_migrate(struct sto_db *db, const struct sto_migration *list, size_t n,
			   int *applied, char *err, size_t errlen)
{
	const char *lock[1] = { MIGRATE_LOCK_KEY };
	enum cv_result r;

	*applied = 0;
	/* Quiet "already exists, skipping" notices from the bootstrap. */
	if ((r = exec_script(db, "bootstrap", "SET client_min_messages = warning", err, errlen)) != CV_OK)
		return r;
	if ((r = exec_script(db, "bootstrap", bootstrap_sql, err, errlen)) != CV_OK)
		return r;
	if ((r = sto_exec(db, "migration lock", "SELECT pg_advisory_lock($1::bigint)", 1, lock,
			  NULL, err, errlen)) != CV_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct sto_migration *m = &list[i];
		char sha[CV_SHA256_HEX];
		int rec;

		if (i > 0 && m->version <= list[i - 1].version) {
			snprintf(err, errlen, "migration %s: versions out of order", m->name);
			r = CV_FAIL;
			break;
		}
		cv_sha256_hex(m->sql, strlen(m->sql), sha);
		rec = recorded(db, m, sha, err, errlen);
		if (rec < 0) {
			r = CV_FAIL;
			break;
		}
		if (rec == 1)
			continue;
		cv_info("migrate", "applying %s", m->name);
		if ((r = apply_one(db, m, sha, err, errlen)) != CV_OK)
			break;
		(*applied)++;
	}
	{
		char e2[STO_ERRLEN];

		if (sto_exec(db, "migration unlock", "SELECT pg_advisory_unlock($1::bigint)", 1, lock,
			     NULL, e2, sizeof(e2)) != CV_OK)
			cv_warn("migrate", "%s", e2);
	}
	return r;
}
