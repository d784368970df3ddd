/*
 * sto_db — chatvault's only door to PostgreSQL (libpq).
 *
 * Owns one PGconn.  Connects with retry and exponential backoff, checks
 * PQstatus, health-checks and reconnects, runs parameterised statements
 * (never SQL text built from data), COPY FROM STDIN, transactions, and
 * classifies failures by SQLSTATE class into CV_RETRY / CV_FAIL:
 *
 *   08 connection, 40 rollback (serialization, deadlock), 53 resources,
 *   57P01..57P03 admin/crash shutdown, cannot connect now, 55P03 lock
 *   timeout, a NULL result or a broken connection         → CV_RETRY
 *   22 data, 23 integrity, 42 syntax/access, anything else → CV_FAIL
 *
 * The conninfo may hold a password: it is kept in memory only and logged
 * only through cv_mask_conninfo().
 *
 * Threading: one struct sto_db per thread.
 */
#ifndef STO_DB_H
#define STO_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "cv_result.h"
#include "cv_util.h"

#define STO_ERRLEN 512

struct sto_db;

struct sto_db_opts {
	const char *conninfo;      /* "" → PG* environment */
	int connect_timeout_s;     /* per attempt */
	int retry_max_s;           /* total time to keep retrying; 0 = forever;
				    * negative: one attempt, no retry, no log */
	int statement_timeout_ms;  /* > 0: the session's statement_timeout */
	const char *application;   /* application_name, e.g. "chatvault-ingest" */
	/* Polled while retrying: stop when it returns true (may be NULL). */
	bool (*should_stop)(void *arg);
	void *stop_arg;
};

/*
 * Connect, retrying with backoff (250 ms doubling to 10 s) while the error
 * is transient, until retry_max_s passes.  A bad password or unknown
 * database fails at once.  Returns 0, or negative with a reason in err.
 */
int sto_db_open(const struct sto_db_opts *opts, struct sto_db **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void sto_db_close(struct sto_db *db);

PGconn *sto_db_conn(struct sto_db *db);

/* If the connection is bad, reconnect (with the open's retry policy).
 * Returns 0 when usable. */
int sto_db_ensure(struct sto_db *db, char *err, size_t errlen) __attribute__((warn_unused_result));

/* SQLSTATE (5 chars) → CV_RETRY / CV_FAIL (never CV_OK). */
enum cv_result sto_classify_sqlstate(const char *sqlstate);
/* Classify a failed result (res may be NULL): broken connection → RETRY. */
enum cv_result sto_classify(struct sto_db *db, const PGresult *res);

/*
 * Run a parameterised statement (text params, text results).  On success
 * returns CV_OK and, when out is not NULL, hands the result to the caller
 * (who PQclear()s it).  On failure returns CV_RETRY or CV_FAIL, writes
 * "what: sqlstate message" into err, and frees the result.
 */
enum cv_result sto_exec(struct sto_db *db, const char *what, const char *sql, int nparams,
			const char *const *params, PGresult **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

enum cv_result sto_begin(struct sto_db *db, char *err, size_t errlen) __attribute__((warn_unused_result));
enum cv_result sto_commit(struct sto_db *db, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Roll back whatever is open; safe on a broken connection. */
void sto_rollback(struct sto_db *db);

/* COPY … FROM STDIN: begin, put rows (text format, caller-escaped), end. */
enum cv_result sto_copy_begin(struct sto_db *db, const char *sql, char *err, size_t errlen)
	__attribute__((warn_unused_result));
enum cv_result sto_copy_put(struct sto_db *db, const char *buf, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));
enum cv_result sto_copy_end(struct sto_db *db, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Append s to a COPY text-format field buffer, escaping \, tab, newline, CR. */
int sto_copy_escape(struct cv_buf *b, const char *s, size_t len) __attribute__((warn_unused_result));

#endif
