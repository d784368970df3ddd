/*
 * sto_db — see sto_db.h.  Runs on the caller's thread; holds no globals.
 */
#include "sto_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_log.h"
#include "cv_time.h"

struct sto_db {
	PGconn *conn;
	char *conninfo;
	char *application;
	int connect_timeout_s;
	int retry_max_s;
	int statement_timeout_ms;
	bool (*should_stop)(void *arg);
	void *stop_arg;
};

enum cv_result sto_classify_sqlstate(const char *s)
{
	if (!s || strlen(s) != 5)
		return CV_RETRY;
	if (strncmp(s, "08", 2) == 0 || strncmp(s, "40", 2) == 0 || strncmp(s, "53", 2) == 0)
		return CV_RETRY;
	if (strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0 ||
	    strcmp(s, "55P03") == 0 || strcmp(s, "57014") == 0)
		return CV_RETRY;
	/* 22 data exception, 23 integrity, 42 syntax/access, and everything
	 * we do not know: retrying will not change the answer. */
	return CV_FAIL;
}

enum cv_result sto_classify(struct sto_db *db, const PGresult *res)
{
	const char *state;

	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
		return CV_RETRY;
	if (!res)
		return CV_RETRY;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (!state)
		return CV_RETRY; /* client-side failure, e.g. lost connection */
	return sto_classify_sqlstate(state);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Is a failed connection attempt worth retrying?  Authentication and a
 * missing database are not: an operator must act. */
static bool connect_error_transient(const char *msg)
{
	static const char *const permanent[] = {
		"password authentication failed", "does not exist", "no password supplied",
		"role ", "invalid connection option", "invalid URI", "missing \"=\"",
		"pg_hba.conf rejects",
	};

	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		if (strstr(msg, permanent[i]))
			return false;
	return true;
}

/* Server notices ("relation already exists, skipping", …) go to the debug
 * log instead of libpq's default of stderr. */
static void notice_to_log(void *arg, const char *message)
{
	(void)arg;
	cv_debug("store", "server notice: %.*s", (int)strcspn(message, "\n"), message);
}

static int set_statement_timeout(struct sto_db *db, char *err, size_t errlen)
{
	char ms[24];
	const char *p[1] = { ms };
	PGresult *res;
	int rc = 0;

	snprintf(ms, sizeof(ms), "%d", db->statement_timeout_ms);
	res = PQexecParams(db->conn, "SELECT set_config('statement_timeout', $1, false)", 1, NULL,
			   p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "database connection failed: set statement_timeout: %s",
			 PQerrorMessage(db->conn));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static int db_connect(struct sto_db *db, char *err, size_t errlen)
{
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	char timeout[16];
	const char *vals[4];
	int64_t start = cv_time_mono_ms(), delay = 250;

	snprintf(timeout, sizeof(timeout), "%d", db->connect_timeout_s);
	/* expand_dbname=1: the conninfo string (possibly "") goes in as dbname and
	 * is expanded; the later keys only fill what it left unset. */
	vals[0] = db->conninfo;
	vals[1] = timeout;
	vals[2] = db->application;
	vals[3] = NULL;

	for (;;) {
		char msg[STO_ERRLEN];
		char *nl;

		if (db->conn)
			PQfinish(db->conn);
		db->conn = PQconnectdbParams(keys, vals, 1);
		if (db->conn && PQstatus(db->conn) == CONNECTION_OK) {
			PQsetNoticeProcessor(db->conn, notice_to_log, NULL);
			if (db->statement_timeout_ms > 0 && set_statement_timeout(db, err, errlen) != 0)
				return -ECONNREFUSED;
			return 0;
		}
		snprintf(msg, sizeof(msg), "%s", db->conn ? PQerrorMessage(db->conn) : "out of memory");
		while ((nl = strchr(msg, '\n')))
			*nl = ' ';
		snprintf(err, errlen, "database connection failed: %s", msg);
		if (!db->conn || !connect_error_transient(msg))
			return -ECONNREFUSED;
		if (db->should_stop && db->should_stop(db->stop_arg))
			return -EINTR;
		if (db->retry_max_s < 0)
			return -ECONNREFUSED;
		if (db->retry_max_s > 0 && cv_time_mono_ms() - start > (int64_t)db->retry_max_s * 1000)
			return -ETIMEDOUT;
		cv_logkv(CV_LOG_WARN, "store", "database connection failed, retrying",
			 CV_KI("retry_ms", delay), CV_KS("error", msg));
		sleep_ms(delay);
		delay = delay * 2 > 10000 ? 10000 : delay * 2;
	}
}

int sto_db_open(const struct sto_db_opts *opts, struct sto_db **out, char *err, size_t errlen)
{
	struct sto_db *db = calloc(1, sizeof(*db));
	int rc;

	*out = NULL;
	if (!db)
		return -ENOMEM;
	db->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	db->application = strdup(opts->application ? opts->application : "chatvault");
	db->connect_timeout_s = opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 10;
	db->retry_max_s = opts->retry_max_s;
	db->statement_timeout_ms = opts->statement_timeout_ms;
	db->should_stop = opts->should_stop;
	db->stop_arg = opts->stop_arg;
	if (!db->conninfo || !db->application) {
		sto_db_close(db);
		return -ENOMEM;
	}
	rc = db_connect(db, err, errlen);
	if (rc) {
		sto_db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

void sto_db_close(struct sto_db *db)
{
	if (!db)
		return;
	if (db->conn)
		PQfinish(db->conn);
	/* The conninfo may hold a password: clear it before freeing. */
	if (db->conninfo) {
		explicit_bzero(db->conninfo, strlen(db->conninfo));
		free(db->conninfo);
	}
	free(db->application);
	free(db);
}

PGconn *sto_db_conn(struct sto_db *db)
{
	return db->conn;
}

int sto_db_ensure(struct sto_db *db, char *err, size_t errlen)
{
	if (db->conn && PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) != PQTRANS_UNKNOWN)
		return 0;
	cv_warn("store", "database connection lost; reconnecting");
	return db_connect(db, err, errlen);
}

static void result_error(struct sto_db *db, const char *what, const PGresult *res, char *err,
			 size_t errlen)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (!msg)
		msg = db->conn ? PQerrorMessage(db->conn) : "no connection";
	snprintf(err, errlen, "%s: %s%s%s", what, state ? state : "", state ? " " : "", msg);
	for (char *p = err; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

enum cv_result sto_exec(struct sto_db *db, const char *what, const char *sql, int nparams,
			const char *const *params, PGresult **out, char *err, size_t errlen)
{
	PGresult *res;
	ExecStatusType st;
	enum cv_result r;

	if (out)
		*out = NULL;
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = res;
		else
			PQclear(res);
		return CV_OK;
	}
	r = sto_classify(db, res);
	result_error(db, what, res, err, errlen);
	PQclear(res);
	return r;
}

enum cv_result sto_begin(struct sto_db *db, char *err, size_t errlen)
{
	return sto_exec(db, "begin", "BEGIN", 0, NULL, NULL, err, errlen);
}

enum cv_result sto_commit(struct sto_db *db, char *err, size_t errlen)
{
	PGresult *res = NULL;
	enum cv_result r = sto_exec(db, "commit", "COMMIT", 0, NULL, &res, err, errlen);

	/* COMMIT of an aborted transaction answers ROLLBACK without an error. */
	if (r == CV_OK && res && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		snprintf(err, errlen, "commit: transaction was rolled back");
		r = CV_RETRY;
	}
	PQclear(res);
	return r;
}

void sto_rollback(struct sto_db *db)
{
	PGresult *res;

	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
		return;
	if (PQtransactionStatus(db->conn) == PQTRANS_IDLE)
		return;
	res = PQexec(db->conn, "ROLLBACK");
	PQclear(res);
}

enum cv_result sto_copy_begin(struct sto_db *db, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(db->conn, sql);
	enum cv_result r = CV_OK;

	if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
		r = sto_classify(db, res);
		result_error(db, "copy", res, err, errlen);
	}
	PQclear(res);
	return r;
}

enum cv_result sto_copy_put(struct sto_db *db, const char *buf, size_t len, char *err, size_t errlen)
{
	while (len > 0) {
		int chunk = len > (1u << 30) ? (1 << 30) : (int)len;

		if (PQputCopyData(db->conn, buf, chunk) != 1) {
			snprintf(err, errlen, "copy: %s", PQerrorMessage(db->conn));
			return CV_RETRY;
		}
		buf += chunk;
		len -= (size_t)chunk;
	}
	return CV_OK;
}

enum cv_result sto_copy_end(struct sto_db *db, char *err, size_t errlen)
{
	PGresult *res;
	enum cv_result r = CV_OK;

	if (PQputCopyEnd(db->conn, NULL) != 1) {
		snprintf(err, errlen, "copy end: %s", PQerrorMessage(db->conn));
		return CV_RETRY;
	}
	while ((res = PQgetResult(db->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && r == CV_OK) {
			r = sto_classify(db, res);
			result_error(db, "copy", res, err, errlen);
		}
		PQclear(res);
	}
	return r;
}

int sto_copy_escape(struct cv_buf *b, const char *s, size_t len)
{
	size_t start = 0;
	int rc;

	for (size_t i = 0; i < len; i++) {
		const char *esc = NULL;

		switch (s[i]) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: continue;
		}
		if ((rc = cv_buf_append(b, s + start, i - start)) ||
		    (rc = cv_buf_append(b, esc, 2)))
			return rc;
		start = i + 1;
	}
	return cv_buf_append(b, s + start, len - start);
}
