/*
 * sto_stage — see sto_stage.h.  Runs on the consumer's thread.
 */
#include "sto_stage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_log.h"
#include "cv_util.h"

static const char create_tmp_sql[] =
	"CREATE TEMP TABLE IF NOT EXISTS cv_stage_in ("
	" ord int, event_id uuid, type text, ts timestamptz, room text, user_uri text,"
	" source_server text, source_seq bigint, body text) ON COMMIT DELETE ROWS";

/* Staging ids come from chatvault.staging_counter (migration 002), not the
 * identity sequence, so a rolled-back staging transaction leaves no hole:
 * the ids stay dense and verify can tell a missing event from a crash.
 * The advisory lock taken first serialises every writer of the counter. */
static const char insert_sql[] =
	"WITH fresh AS ("
	"  INSERT INTO chatvault.seen_events (event_id)"
	"  SELECT DISTINCT event_id FROM cv_stage_in"
	"  ON CONFLICT DO NOTHING RETURNING event_id),"
	" firsts AS (SELECT DISTINCT ON (event_id) * FROM cv_stage_in ORDER BY event_id, ord),"
	" c AS (SELECT last_id FROM chatvault.staging_counter),"
	" ins AS (INSERT INTO chatvault.staged_events"
	"  (staging_id, event_id, type, ts, room, user_uri, source_server, source_seq, body)"
	"  OVERRIDING SYSTEM VALUE"
	"  SELECT c.last_id + row_number() OVER (ORDER BY f.ord), f.event_id, f.type, f.ts,"
	"   f.room, f.user_uri, f.source_server, f.source_seq, f.body"
	"  FROM firsts f JOIN fresh USING (event_id) CROSS JOIN c RETURNING 1)"
	" UPDATE chatvault.staging_counter SET last_id = last_id + n.cnt"
	" FROM (SELECT count(*) AS cnt FROM ins) n RETURNING n.cnt";

static const char participants_sql[] =
	"WITH j AS (INSERT INTO chatvault.participants (room, user_uri, joined_at)"
	"  SELECT room, user_uri, ts FROM cv_stage_in WHERE type = 'chat.join' AND room IS NOT NULL"
	"  ON CONFLICT DO NOTHING)"
	" UPDATE chatvault.participants p SET left_at = s.ts"
	" FROM cv_stage_in s WHERE s.type = 'chat.part' AND p.room = s.room"
	"  AND p.user_uri = s.user_uri AND p.left_at IS NULL AND p.joined_at <= s.ts";

int sto_stage_position(struct sto_db *db, const char *source, int32_t partition, int64_t *pos,
		       char *err, size_t errlen)
{
	char part[16];
	const char *params[2] = { source, part };
	PGresult *res = NULL;
	int rc = 1;

	snprintf(part, sizeof(part), "%" PRId32, partition);
	if (sto_exec(db, "read ingest position",
		     "SELECT position FROM chatvault.ingest_positions WHERE source = $1 AND partition = $2",
		     2, params, &res, err, errlen) != CV_OK)
		return -1;
	if (PQntuples(res) == 1) {
		*pos = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

static enum cv_result advance_position(struct sto_db *db, const char *source,
				       const struct sto_position *p, char *err, size_t errlen)
{
	char part[16], first[24], last[24];
	const char *params[4] = { source, part, first, last };
	PGresult *res = NULL;
	enum cv_result r;

	snprintf(part, sizeof(part), "%" PRId32, p->partition);
	snprintf(first, sizeof(first), "%" PRId64, p->first);
	snprintf(last, sizeof(last), "%" PRId64, p->last);
	/* Insert or advance, but only when every record of the batch lies past
	 * the stored position: otherwise another consumer staged them. */
	r = sto_exec(db, "advance ingest position",
		     "INSERT INTO chatvault.ingest_positions (source, partition, position)"
		     " VALUES ($1, $2, $4)"
		     " ON CONFLICT (source, partition) DO UPDATE SET position = $4, updated_at = now()"
		     " WHERE chatvault.ingest_positions.position < $3"
		     " RETURNING position", 4, params, &res, err, errlen);
	if (r != CV_OK)
		return r;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "ingest position of %s partition %" PRId32
			 " is already at or past %" PRId64 " (another consumer?)",
			 source, p->partition, p->first);
		r = CV_RETRY;
	}
	PQclear(res);
	return r;
}

static enum cv_result copy_rows(struct sto_db *db, const struct sto_stage_row *rows, size_t n,
				char *err, size_t errlen)
{
	struct cv_buf b = { 0 };
	enum cv_result r;

	r = sto_copy_begin(db, "COPY cv_stage_in (ord, event_id, type, ts, room, user_uri,"
			   " source_server, source_seq, body) FROM STDIN", err, errlen);
	if (r != CV_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct sto_stage_row *row = &rows[i];

		if (cv_buf_printf(&b, "%zu\t%s\t%s\t%s\t", i, row->event_id, row->type, row->ts) ||
		    (row->room ? sto_copy_escape(&b, row->room, strlen(row->room))
			       : cv_buf_append(&b, "\\N", 2)) ||
		    cv_buf_append(&b, "\t", 1) ||
		    sto_copy_escape(&b, row->user, strlen(row->user)) ||
		    cv_buf_append(&b, "\t", 1) ||
		    sto_copy_escape(&b, row->server, strlen(row->server)) ||
		    cv_buf_printf(&b, "\t%" PRId64 "\t", row->seq) ||
		    sto_copy_escape(&b, row->json, row->json_len) ||
		    cv_buf_append(&b, "\n", 1)) {
			snprintf(err, errlen, "copy: out of memory");
			r = CV_RETRY;
			break;
		}
		/* Hand libpq data in ~1 MiB pieces to bound our buffer. */
		if (b.len >= (1u << 20) || i + 1 == n) {
			if ((r = sto_copy_put(db, b.data, b.len, err, errlen)) != CV_OK)
				break;
			cv_buf_reset(&b);
		}
	}
	cv_buf_free(&b);
	if (r != CV_OK) {
		/* End the COPY so the connection is usable for the rollback. */
		PQputCopyEnd(sto_db_conn(db), "aborted");
		PQclear(PQgetResult(sto_db_conn(db)));
		return r;
	}
	return sto_copy_end(db, err, errlen);
}

static enum cv_result insert_quarantine(struct sto_db *db, const char *source,
					const struct sto_quarantine_row *q, char *err, size_t errlen)
{
	char part[16], pos[24];
	const char *params[5] = { (const char *)q->raw, q->reason, source, part, pos };
	int lengths[5] = { (int)q->len, 0, 0, 0, 0 };
	int formats[5] = { 1, 0, 0, 0, 0 };
	PGresult *res;
	enum cv_result r = CV_OK;

	snprintf(part, sizeof(part), "%" PRId32, q->partition);
	snprintf(pos, sizeof(pos), "%" PRId64, q->position);
	/* Raw bytes go as a binary parameter: they may be anything. */
	res = PQexecParams(sto_db_conn(db),
			   "INSERT INTO chatvault.quarantine (raw, reason, source, partition, position)"
			   " VALUES ($1, $2, $3, $4, $5)", 5, NULL, params, lengths, formats, 0);
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = sto_classify(db, res);
		snprintf(err, errlen, "insert quarantine: %s", PQerrorMessage(sto_db_conn(db)));
	}
	PQclear(res);
	return r;
}

/* Sequence tracking for one server: seqs sorted ascending. */
static enum cv_result track_server(struct sto_db *db, const char *server, const int64_t *seqs,
				   size_t n, int64_t *gaps, char *err, size_t errlen)
{
	char last_s[24], cnt_s[24], a[24], b[24];
	const char *p1[1] = { server };
	PGresult *res = NULL;
	enum cv_result r;
	int64_t last = 0, new_gaps = 0;
	bool known = false;
	struct cv_buf late = { 0 };
	char first_gap[64] = "";

	r = sto_exec(db, "read source sequence",
		     "SELECT last_seq FROM chatvault.source_sequences WHERE source_server = $1 FOR UPDATE",
		     1, p1, &res, err, errlen);
	if (r != CV_OK)
		return r;
	if (PQntuples(res) == 1) {
		last = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		known = true;
	}
	PQclear(res);
	if (!known)
		last = seqs[0] - 1; /* first sight of this producer: start here */
	for (size_t i = 0; i < n; i++) {
		int64_t s = seqs[i];

		if (i > 0 && s == seqs[i - 1])
			continue;
		if (s > last) {
			if (s > last + 1) {
				const char *pg[3] = { server, a, b };

				snprintf(a, sizeof(a), "%" PRId64, last + 1);
				snprintf(b, sizeof(b), "%" PRId64, s - 1);
				r = sto_exec(db, "record sequence gap",
					     "INSERT INTO chatvault.sequence_gaps"
					     " (source_server, first_missing, last_missing) VALUES ($1, $2, $3)",
					     3, pg, NULL, err, errlen);
				if (r != CV_OK)
					goto out;
				if (new_gaps++ == 0)
					snprintf(first_gap, sizeof(first_gap), "%s..%s", a, b);
			}
			last = s;
		} else if (cv_buf_printf(&late, "%s%" PRId64, late.len ? "," : "{", s) != 0) {
			snprintf(err, errlen, "sequence tracking: out of memory");
			r = CV_RETRY;
			goto out;
		}
	}
	/* Late numbers (another Kafka partition, a producer retry) fill the gaps
	 * they fall into: one statement per server and batch, not per event. */
	if (late.len) {
		const char *pf[2] = { server, NULL };

		if (cv_buf_append(&late, "}", 2) != 0) {
			snprintf(err, errlen, "sequence tracking: out of memory");
			r = CV_RETRY;
			goto out;
		}
		pf[1] = late.data;
		r = sto_exec(db, "fill sequence gaps",
			     "SELECT chatvault.fill_sequence_gap($1, s) FROM unnest($2::bigint[]) AS u(s)",
			     2, pf, NULL, err, errlen);
		if (r != CV_OK)
			goto out;
	}
	if (new_gaps) {
		*gaps += new_gaps;
		cv_logkv(CV_LOG_WARN, "ingest", "new sequence gaps recorded (late events fill them,"
			 " see chatvault status)", CV_KS("producer", server), CV_KI("gaps", new_gaps),
			 CV_KS("first", first_gap));
	}
	{
		const char *pu[3] = { server, last_s, cnt_s };

		snprintf(last_s, sizeof(last_s), "%" PRId64, last);
		snprintf(cnt_s, sizeof(cnt_s), "%zu", n);
		r = sto_exec(db, "update source sequence",
			     "INSERT INTO chatvault.source_sequences (source_server, last_seq, events)"
			     " VALUES ($1, $2, $3) ON CONFLICT (source_server) DO UPDATE"
			     " SET last_seq = $2, events = chatvault.source_sequences.events + $3,"
			     " updated_at = now()", 3, pu, NULL, err, errlen);
	}
out:
	cv_buf_free(&late);
	return r;
}

struct seq_ref {
	const char *server;
	int64_t seq;
};

static int seq_ref_cmp(const void *a, const void *b)
{
	const struct seq_ref *x = a, *y = b;
	int c = strcmp(x->server, y->server);

	if (c)
		return c;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static enum cv_result track_sequences(struct sto_db *db, const struct sto_stage_row *rows,
				      size_t n, int64_t *gaps, char *err, size_t errlen)
{
	struct seq_ref *refs;
	int64_t *seqs;
	enum cv_result r = CV_OK;
	size_t i = 0;

	if (n == 0)
		return CV_OK;
	refs = malloc(n * sizeof(*refs));
	seqs = malloc(n * sizeof(*seqs));
	if (!refs || !seqs) {
		free(refs);
		free(seqs);
		snprintf(err, errlen, "sequence tracking: out of memory");
		return CV_RETRY;
	}
	for (size_t k = 0; k < n; k++)
		refs[k] = (struct seq_ref){ rows[k].server, rows[k].seq };
	qsort(refs, n, sizeof(*refs), seq_ref_cmp);
	while (i < n && r == CV_OK) {
		size_t j = i, m = 0;

		while (j < n && strcmp(refs[j].server, refs[i].server) == 0)
			seqs[m++] = refs[j++].seq;
		r = track_server(db, refs[i].server, seqs, m, gaps, err, errlen);
		i = j;
	}
	free(refs);
	free(seqs);
	return r;
}

enum cv_result sto_stage_commit(struct sto_db *db, const char *source,
				const struct sto_stage_row *rows, size_t nrows,
				const struct sto_quarantine_row *q, size_t nq,
				const struct sto_position *pos, size_t npos,
				struct sto_stage_stats *st, char *err, size_t errlen)
{
	const char *lock[1] = { STO_STAGING_LOCK_KEY };
	PGresult *res = NULL;
	enum cv_result r;

	memset(st, 0, sizeof(*st));
	if ((r = sto_begin(db, err, errlen)) != CV_OK)
		return r;
	if ((r = sto_exec(db, "staging lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock,
			  NULL, err, errlen)) != CV_OK)
		goto fail;
	for (size_t i = 0; i < npos; i++)
		if ((r = advance_position(db, source, &pos[i], err, errlen)) != CV_OK)
			goto fail;
	if (nrows > 0) {
		if ((r = sto_exec(db, "create temp table", create_tmp_sql, 0, NULL, NULL, err,
				  errlen)) != CV_OK)
			goto fail;
		if ((r = copy_rows(db, rows, nrows, err, errlen)) != CV_OK)
			goto fail;
		if ((r = sto_exec(db, "insert staged events", insert_sql, 0, NULL, &res, err,
				  errlen)) != CV_OK)
			goto fail;
		st->staged = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
		st->duplicates = (int64_t)nrows - st->staged;
		PQclear(res);
		res = NULL;
		if ((r = sto_exec(db, "update participants", participants_sql, 0, NULL, NULL, err,
				  errlen)) != CV_OK)
			goto fail;
		if ((r = track_sequences(db, rows, nrows, &st->gaps, err, errlen)) != CV_OK)
			goto fail;
	}
	for (size_t i = 0; i < nq; i++) {
		if ((r = insert_quarantine(db, source, &q[i], err, errlen)) != CV_OK)
			goto fail;
		st->quarantined++;
	}
	if ((r = sto_commit(db, err, errlen)) != CV_OK)
		goto fail;
	return CV_OK;
fail:
	sto_rollback(db);
	memset(st, 0, sizeof(*st));
	return r;
}
