/*
 * dlv_worker — see dlv_worker.h.
 */
#include "dlv_worker.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_time.h"
#include "cv_util.h"
#include "event.h"
#include "registry.h"
#include "sto_db.h"

#define GIVE_UP_AFTER 10   /* --once: consecutive RETRYs before giving up */

/* Life cycle of one instance inside this worker (changed in one place). */
enum inst_state {
	INST_READY,     /* may step now */
	INST_WAITING,   /* idle or backing off until next_run */
	INST_DRAINED,   /* --once: nothing left */
	INST_GAVE_UP,   /* --once: kept failing */
	INST_ELSEWHERE, /* --once: another live worker holds the lease */
};

struct inst {
	struct adp_instance *adp;
	const struct cfg_adapter *ca;
	enum inst_state state;
	int64_t next_run;   /* mono ms */
	int failures;
};

/* A batch in memory: parsed events and their ABI view. */
struct batch_mem {
	struct ing_event *ev;
	struct adp_event *aev;
	struct adp_file **files;
	char (*ts)[CV_TIME_BUFSZ];
	size_t n, cap;
	PGresult *rows;     /* owns the canonical JSON bodies */
};

struct worker {
	const struct cfg *cfg;
	struct sto_db *db;
	const struct dlv_opts *opts;
	struct dlv_stats *st;
	char holder[128];
	char host[64];
	unsigned int seed;
	struct batch_mem mem;
};

static void set_state(struct inst *in, enum inst_state s, int64_t next_run)
{
	in->state = s;
	in->next_run = next_run;
}

static void batch_mem_reset(struct batch_mem *m)
{
	for (size_t i = 0; i < m->n; i++) {
		ing_event_clear(&m->ev[i]);
		free(m->files[i]);
		m->files[i] = NULL;
	}
	m->n = 0;
	PQclear(m->rows);
	m->rows = NULL;
}

static void batch_mem_free(struct batch_mem *m)
{
	batch_mem_reset(m);
	free(m->ev);
	free(m->aev);
	free(m->files);
	free(m->ts);
	memset(m, 0, sizeof(*m));
}

static int batch_mem_reserve(struct batch_mem *m, size_t n)
{
	if (n <= m->cap)
		return 0;
	batch_mem_free(m);
	m->ev = calloc(n, sizeof(*m->ev));
	m->aev = calloc(n, sizeof(*m->aev));
	m->files = calloc(n, sizeof(*m->files));
	m->ts = calloc(n, sizeof(*m->ts));
	if (!m->ev || !m->aev || !m->files || !m->ts)
		return -ENOMEM;
	m->cap = n;
	return 0;
}

static const char *i64(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%" PRId64, v);
	return buf;
}

/* ---- lease ------------------------------------------------------------------ */

/* Is holder ("host:pid:nonce") a process of this host that no longer runs?
 * Then its lease can be taken at once instead of waiting for expiry. */
static bool holder_is_dead(const struct worker *w, const char *holder)
{
	size_t hl = strlen(w->host);
	long pid;

	if (strncmp(holder, w->host, hl) != 0 || holder[hl] != ':')
		return false;
	pid = strtol(holder + hl + 1, NULL, 10);
	if (pid <= 0)
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

struct lease {
	int64_t cursor, next_batch_no;
	char chain_head[CV_SHA256_HEX];
	int failures;
};

/* 1 = we hold it, 0 = someone else does, -1 = error (err set) */
static int take_lease(struct worker *w, const char *name, struct lease *l, char *err,
		      size_t errlen)
{
	char secs[16], steal[160] = "";
	PGresult *res = NULL;

	for (int attempt = 0; attempt < 2; attempt++) {
		const char *p[4] = { name, w->holder, i64(secs, sizeof(secs), w->cfg->deliver.lease_s),
				     steal };

		if (sto_exec(w->db, "take lease",
			     "UPDATE chatvault.adapter_state SET lease_holder = $2,"
			     " lease_expires = now() + make_interval(secs => $3::int)"
			     " WHERE adapter = $1 AND (lease_holder IS NULL OR lease_holder = $2"
			     "  OR lease_expires < now() OR lease_holder = $4)"
			     " RETURNING cursor, next_batch_no, chain_head, consecutive_failures",
			     4, p, &res, err, errlen) != CV_OK)
			return -1;
		if (PQntuples(res) == 1) {
			l->cursor = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			l->next_batch_no = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
			snprintf(l->chain_head, sizeof(l->chain_head), "%s", PQgetvalue(res, 0, 2));
			l->failures = atoi(PQgetvalue(res, 0, 3));
			PQclear(res);
			return 1;
		}
		PQclear(res);
		if (attempt == 0) {
			const char *q[1] = { name };

			if (sto_exec(w->db, "read lease",
				     "SELECT coalesce(lease_holder, '') FROM chatvault.adapter_state"
				     " WHERE adapter = $1", 1, q, &res, err, errlen) != CV_OK)
				return -1;
			if (PQntuples(res) == 1 && holder_is_dead(w, PQgetvalue(res, 0, 0))) {
				snprintf(steal, sizeof(steal), "%s", PQgetvalue(res, 0, 0));
				cv_info("deliver", "adapter %s: lease holder %s is gone; taking over",
					name, steal);
				PQclear(res);
				continue;
			}
			PQclear(res);
		}
		break;
	}
	return 0;
}

static void release_lease(struct worker *w, const char *name)
{
	const char *p[2] = { name, w->holder };
	char err[STO_ERRLEN];

	if (sto_exec(w->db, "release lease",
		     "UPDATE chatvault.adapter_state SET lease_holder = NULL, lease_expires = NULL"
		     " WHERE adapter = $1 AND lease_holder = $2", 2, p, NULL, err, sizeof(err)) != CV_OK)
		cv_debug("deliver", "%s", err);
}

/* ---- batches ---------------------------------------------------------------- */

struct batch_bounds {
	int64_t batch_no, first, last;
	char chain_prev[CV_SHA256_HEX];
	bool found;
};

static int find_pending(struct worker *w, const char *name, struct batch_bounds *b, char *err,
			size_t errlen)
{
	const char *p[1] = { name };
	PGresult *res = NULL;

	b->found = false;
	if (sto_exec(w->db, "read pending batch",
		     "SELECT batch_no, first_sid, last_sid, chain_prev FROM chatvault.batches"
		     " WHERE adapter = $1 AND state = 'pending' ORDER BY batch_no LIMIT 1",
		     1, p, &res, err, errlen) != CV_OK)
		return -1;
	if (PQntuples(res) == 1) {
		b->batch_no = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		b->first = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		b->last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		snprintf(b->chain_prev, sizeof(b->chain_prev), "%s", PQgetvalue(res, 0, 3));
		b->found = true;
	}
	PQclear(res);
	return 0;
}

/* Bounds of the next batch past the cursor; found=false when idle. */
static int plan_batch(struct worker *w, const struct inst *in, const struct lease *l,
		      struct batch_bounds *b, char *err, size_t errlen)
{
	char cur[24], lim[16];
	const char *p[3] = { in->ca->name, i64(cur, sizeof(cur), l->cursor),
			     i64(lim, sizeof(lim), in->ca->batch_size) };
	PGresult *res = NULL;

	b->found = false;
	if (sto_exec(w->db, "plan batch",
		     "SELECT min(staging_id), max(staging_id) FROM (SELECT staging_id"
		     " FROM chatvault.staged_events s WHERE staging_id > $2::bigint"
		     "  AND NOT EXISTS (SELECT 1 FROM chatvault.quarantine q"
		     "   WHERE q.adapter = $1 AND q.staging_id = s.staging_id)"
		     " ORDER BY staging_id LIMIT $3::int) t", 3, p, &res, err, errlen) != CV_OK)
		return -1;
	if (!PQgetisnull(res, 0, 0)) {
		b->first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		b->last = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		b->batch_no = l->next_batch_no;
		snprintf(b->chain_prev, sizeof(b->chain_prev), "%s", l->chain_head);
		b->found = true;
	}
	PQclear(res);
	return 0;
}

/* Record the batch as pending before the adapter sees it. */
static int record_pending(struct worker *w, const char *name, const struct batch_bounds *b,
			  char *err, size_t errlen)
{
	char no[24], first[24], last[24];
	const char *p[5] = { name, i64(no, sizeof(no), b->batch_no),
			     i64(first, sizeof(first), b->first), i64(last, sizeof(last), b->last),
			     b->chain_prev };

	return sto_exec(w->db, "record pending batch",
			"INSERT INTO chatvault.batches (adapter, batch_no, first_sid, last_sid,"
			" event_count, min_ts, max_ts, rooms, users, chain_prev)"
			" SELECT $1, $2, $3, $4, count(*), min(ts), max(ts),"
			"  coalesce(array_agg(DISTINCT room) FILTER (WHERE room IS NOT NULL), '{}'),"
			"  coalesce((SELECT array_agg(DISTINCT u) FROM (SELECT user_uri AS u"
			"    FROM chatvault.staged_events WHERE staging_id BETWEEN $3 AND $4"
			"    UNION SELECT body::jsonb->>'to' FROM chatvault.staged_events"
			"    WHERE staging_id BETWEEN $3 AND $4) x WHERE u IS NOT NULL), '{}'), $5"
			" FROM chatvault.staged_events WHERE staging_id BETWEEN $3 AND $4"
			" ON CONFLICT (adapter, batch_no) DO NOTHING",
			5, p, NULL, err, errlen) == CV_OK ? 0 : -1;
}

/* Load the batch's events (excluding those quarantined for this adapter). */
static int load_batch(struct worker *w, const char *name, const struct batch_bounds *b,
		      char *err, size_t errlen)
{
	struct batch_mem *m = &w->mem;
	char first[24], last[24];
	const char *p[3] = { name, i64(first, sizeof(first), b->first),
			     i64(last, sizeof(last), b->last) };
	PGresult *res = NULL;
	size_t n;

	batch_mem_reset(m);
	if (sto_exec(w->db, "load batch",
		     "SELECT staging_id, body FROM chatvault.staged_events s"
		     " WHERE staging_id BETWEEN $2::bigint AND $3::bigint"
		     "  AND NOT EXISTS (SELECT 1 FROM chatvault.quarantine q"
		     "   WHERE q.adapter = $1 AND q.staging_id = s.staging_id)"
		     " ORDER BY staging_id", 3, p, &res, err, errlen) != CV_OK)
		return -1;
	n = (size_t)PQntuples(res);
	if (batch_mem_reserve(m, n) != 0) {
		PQclear(res);
		snprintf(err, errlen, "out of memory for a batch of %zu", n);
		return -1;
	}
	m->rows = res;
	for (size_t i = 0; i < n; i++) {
		struct ing_event *ev = &m->ev[i];
		struct adp_event *a = &m->aev[i];
		const char *body = PQgetvalue(res, (int)i, 1);
		size_t len = (size_t)PQgetlength(res, (int)i, 1);
		char why[ING_EVENT_ERRLEN];

		ing_event_init(ev);
		/* Staged bodies were validated at ingest; a failure here means the
		 * row was altered in the database: stop, do not archive it. */
		if (ing_event_parse(body, len, len + 1, 0, ev, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "staged event %s is no longer valid: %s",
				 PQgetvalue(res, (int)i, 0), why);
			m->n = i;
			return -1;
		}
		m->n = i + 1;
		cv_time_format_ms(ev->ts_ms, m->ts[i]);
		if (ev->nfiles) {
			m->files[i] = calloc(ev->nfiles, sizeof(struct adp_file));
			if (!m->files[i]) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			for (size_t k = 0; k < ev->nfiles; k++)
				m->files[i][k] = (struct adp_file){ ev->files[k].name, ev->files[k].size,
								    ev->files[k].sha256 };
		}
		*a = (struct adp_event){
			.staging_id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10),
			.id = ev->id,
			.type = ing_event_type_name(ev->type),
			.ts_ms = ev->ts_ms,
			.ts = m->ts[i],
			.room = ev->room,
			.user = ev->user,
			.to = ev->to,
			.text = ev->text,
			.files = m->files[i],
			.nfiles = ev->nfiles,
			.source_server = ev->source_server,
			.source_seq = ev->source_seq,
			.json = body,
			.json_len = len,
		};
	}
	return 0;
}

/* ---- outcomes --------------------------------------------------------------- */

static enum cv_result commit_ok(struct worker *w, const char *name, const struct batch_bounds *b,
				const struct adp_batch *ab, char *err, size_t errlen)
{
	char last[24], no[24], n[24];
	const char *ps[6] = { name, w->holder, i64(last, sizeof(last), b->last),
			      i64(no, sizeof(no), b->batch_no), ab->out_chain,
			      i64(n, sizeof(n), (int64_t)ab->nevents) };
	const char *pb[5] = { name, no, ab->out_path, ab->out_chain, n };
	PGresult *res = NULL;
	enum cv_result r;

	if ((r = sto_begin(w->db, err, errlen)) != CV_OK)
		return r;
	/* Fenced: only the lease holder may move the cursor. */
	r = sto_exec(w->db, "advance cursor",
		     "UPDATE chatvault.adapter_state SET cursor = $3, next_batch_no = $4::bigint + 1,"
		     " chain_head = $5, last_success = now(), last_attempt = now(),"
		     " consecutive_failures = 0, next_attempt = NULL, last_error = NULL,"
		     " delivered_events = delivered_events + $6"
		     " WHERE adapter = $1 AND lease_holder = $2 RETURNING 1", 6, ps, &res, err, errlen);
	if (r != CV_OK)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "lease lost before commit; batch left for the new holder");
		r = CV_RETRY;
		goto fail;
	}
	PQclear(res);
	r = sto_exec(w->db, "complete batch",
		     "UPDATE chatvault.batches SET state = 'done', path = nullif($3, ''),"
		     " chain = nullif($4, ''), event_count = $5, committed_at = now()"
		     " WHERE adapter = $1 AND batch_no = $2", 5, pb, NULL, err, errlen);
	if (r != CV_OK)
		goto fail;
	return sto_commit(w->db, err, errlen);
fail:
	sto_rollback(w->db);
	return r;
}

static int backoff_ms(struct worker *w, int failures)
{
	int64_t cap = w->cfg->deliver.retry_base_ms;

	for (int i = 1; i < failures && cap < w->cfg->deliver.retry_max_ms; i++)
		cap *= 2;
	if (cap > w->cfg->deliver.retry_max_ms)
		cap = w->cfg->deliver.retry_max_ms;
	/* "Equal jitter": half fixed, half random, so workers spread out. */
	return (int)(cap / 2 + rand_r(&w->seed) % (cap / 2 + 1));
}

static void record_retry(struct worker *w, const char *name, int delay, const char *reason)
{
	char ms[16], err[STO_ERRLEN];
	const char *p[3] = { name, i64(ms, sizeof(ms), delay), reason };

	if (sto_exec(w->db, "record retry",
		     "UPDATE chatvault.adapter_state SET consecutive_failures = consecutive_failures + 1,"
		     " last_attempt = now(), next_attempt = now() + make_interval(secs => $2::int / 1000.0),"
		     " last_error = $3 WHERE adapter = $1", 3, p, NULL, err, sizeof(err)) != CV_OK)
		cv_warn("deliver", "%s", err);
}

/* FAIL: quarantine one event (sid > 0) or the whole batch for this adapter. */
static enum cv_result quarantine(struct worker *w, const char *name, const struct batch_bounds *b,
				 int64_t sid, const char *reason, int64_t *count, char *err,
				 size_t errlen)
{
	char first[24], last[24];
	const char *p[4] = { name, reason, i64(first, sizeof(first), sid ? sid : b->first),
			     i64(last, sizeof(last), sid ? sid : b->last) };
	PGresult *res = NULL;
	enum cv_result r;

	if ((r = sto_begin(w->db, err, errlen)) != CV_OK)
		return r;
	r = sto_exec(w->db, "quarantine for adapter",
		     "INSERT INTO chatvault.quarantine (adapter, staging_id, event_id, raw, reason)"
		     " SELECT $1, staging_id, event_id, convert_to(body, 'UTF8'), $2"
		     " FROM chatvault.staged_events s WHERE staging_id BETWEEN $3::bigint AND $4::bigint"
		     "  AND NOT EXISTS (SELECT 1 FROM chatvault.quarantine q"
		     "   WHERE q.adapter = $1 AND q.staging_id = s.staging_id)",
		     4, p, &res, err, errlen);
	if (r != CV_OK)
		goto fail;
	*count = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	{
		char n[24];
		const char *pa[2] = { name, i64(n, sizeof(n), *count) };

		r = sto_exec(w->db, "count failure",
			     "UPDATE chatvault.adapter_state SET failed_events = failed_events + $2,"
			     " last_error = 'quarantined: ' || $2 || ' event(s)' WHERE adapter = $1",
			     2, pa, NULL, err, errlen);
		if (r != CV_OK)
			goto fail;
	}
	return sto_commit(w->db, err, errlen);
fail:
	sto_rollback(w->db);
	return r;
}

int64_t dlv_purge_delivered(const struct cfg *cfg, struct sto_db *db, char *err, size_t errlen)
{
	struct cv_buf names = { 0 };
	PGresult *res = NULL;
	int64_t n = -1;
	bool any = false;

	if (cv_buf_append(&names, "{", 1))
		goto out;
	for (size_t i = 0; i < cfg->nadapters; i++) {
		if (!cfg->adapters[i].required)
			continue;
		if (cv_buf_printf(&names, "%s\"%s\"", any ? "," : "", cfg->adapters[i].name))
			goto out;
		any = true;
	}
	if (cv_buf_append(&names, "}", 1))
		goto out;
	if (!any) {
		n = 0; /* no required adapter: nothing may ever be deleted */
		goto out;
	}
	{
		const char *p[1] = { names.data };

		/* The subquery yields NULL if an instance has no state row yet,
		 * and then nothing is deleted: right, it has received nothing. */
		if (sto_exec(db, "delete delivered",
			     "DELETE FROM chatvault.staged_events WHERE staging_id <= ("
			     " SELECT CASE WHEN count(*) = cardinality($1::text[]) THEN min(cursor) END"
			     " FROM chatvault.adapter_state WHERE adapter = ANY($1::text[]))",
			     1, p, &res, err, errlen) != CV_OK)
			goto out;
		n = strtoll(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	}
out:
	cv_buf_free(&names);
	return n;
}

/* ---- one step ------------------------------------------------------------------ */

static void step(struct worker *w, struct inst *in)
{
	const char *name = in->ca->name;
	int64_t now = cv_time_mono_ms();
	struct batch_bounds b = { 0 };
	struct lease l;
	struct adp_batch *ab = NULL;
	char err[1024];
	enum adp_result res;
	int held;

	held = take_lease(w, name, &l, err, sizeof(err));
	if (held < 0)
		goto db_error;
	if (held == 0) {
		cv_debug("deliver", "adapter %s: lease held by another worker", name);
		if (w->opts->once)
			set_state(in, INST_ELSEWHERE, 0);
		else
			set_state(in, INST_WAITING, now + in->ca->run_interval_s * 1000);
		return;
	}
	if (find_pending(w, name, &b, err, sizeof(err)) != 0)
		goto db_error;
	if (!b.found) {
		if (plan_batch(w, in, &l, &b, err, sizeof(err)) != 0)
			goto db_error;
		if (!b.found) {
			set_state(in, w->opts->once ? INST_DRAINED : INST_WAITING,
				  now + in->ca->run_interval_s * 1000);
			return;
		}
		if (record_pending(w, name, &b, err, sizeof(err)) != 0)
			goto db_error;
		/* Someone may have recorded it concurrently: use what is stored. */
		if (find_pending(w, name, &b, err, sizeof(err)) != 0 || !b.found)
			goto db_error;
	}
	if (load_batch(w, name, &b, err, sizeof(err)) != 0) {
		cv_err("deliver", "adapter %s: batch %" PRId64 ": %s", name, b.batch_no, err);
		goto db_error;
	}
	ab = calloc(1, sizeof(*ab));
	if (!ab) {
		snprintf(err, sizeof(err), "out of memory");
		goto db_error;
	}
	*ab = (struct adp_batch){
		.adapter_name = name,
		.batch_no = b.batch_no,
		.first_staging_id = b.first,
		.last_staging_id = b.last,
		.events = w->mem.aev,
		.nevents = w->mem.n,
		.chain_prev = b.chain_prev,
	};
	if (w->mem.n == 0) {
		/* Every event of the batch was quarantined for this adapter: close
		 * the batch without output, the chain continues unchanged. */
		snprintf(ab->out_chain, sizeof(ab->out_chain), "%s", b.chain_prev);
		res = ADP_OK;
	} else {
		res = in->adp->ops->deliver(in->adp->state, ab);
	}
	switch (res) {
	case ADP_OK: {
		enum cv_result r = commit_ok(w, name, &b, ab, err, sizeof(err));
		int64_t deleted, ms = cv_time_mono_ms() - now;

		if (r != CV_OK) {
			cv_warn("deliver", "adapter %s: batch %" PRId64 " written but not committed"
				" (%s); it will be redelivered identically", name, b.batch_no, err);
			goto db_error;
		}
		in->failures = 0;
		w->st->batches++;
		w->st->events += (int64_t)ab->nevents;
		cv_metrics_add(w->opts->metrics, CV_M_DELIVERED, name, ab->nevents);
		cv_metrics_observe(w->opts->metrics, CV_M_BATCH_SECONDS, "deliver", ms / 1000.0);
		cv_logkv(CV_LOG_INFO, "deliver", "batch delivered", CV_KS("adapter", name),
			 CV_KI("batch", b.batch_no), CV_KI("events", ab->nevents),
			 CV_KI("first", b.first), CV_KI("last", b.last),
			 CV_KI("ms", ms),
			 CV_KS("path", ab->out_path[0] ? ab->out_path : "(no file)"));
		deleted = dlv_purge_delivered(w->cfg, w->db, err, sizeof(err));
		if (deleted < 0)
			cv_warn("deliver", "%s", err);
		else
			w->st->deleted += deleted;
		set_state(in, INST_READY, now);
		break;
	}
	case ADP_RETRY: {
		int delay = backoff_ms(w, ++in->failures);

		w->st->retries++;
		cv_metrics_add(w->opts->metrics, CV_M_RETRIES, name, 1);
		cv_logkv(CV_LOG_WARN, "deliver", "adapter asked to retry the batch later",
			 CV_KS("adapter", name), CV_KI("batch", b.batch_no), CV_KI("retry_ms", delay),
			 CV_KI("failures", in->failures),
			 CV_KS("reason", ab->reason[0] ? ab->reason : "(no reason given)"));
		record_retry(w, name, delay, ab->reason);
		if (w->opts->once && in->failures >= GIVE_UP_AFTER) {
			cv_logkv(CV_LOG_ERROR, "deliver", "giving up after consecutive failures",
				 CV_KS("adapter", name), CV_KI("failures", in->failures),
				 CV_KS("reason", ab->reason));
			set_state(in, INST_GAVE_UP, 0);
		} else {
			set_state(in, INST_WAITING, now + delay);
		}
		break;
	}
	case ADP_FAIL:
	default: {
		int64_t count = 0;
		int64_t sid = ab->fail_staging_id;

		if (sid && (sid < b.first || sid > b.last))
			sid = 0; /* blamed an event outside the batch: quarantine all */
		if (quarantine(w, name, &b, sid, ab->reason[0] ? ab->reason : "adapter failed",
			       &count, err, sizeof(err)) != CV_OK)
			goto db_error;
		w->st->failed_events += count;
		cv_metrics_add(w->opts->metrics, CV_M_QUARANTINED, "deliver", (uint64_t)count);
		cv_logkv(CV_LOG_ERROR, "deliver", "events quarantined: the adapter failed them",
			 CV_KS("adapter", name), CV_KI("batch", b.batch_no), CV_KI("events", count),
			 CV_KS("reason", ab->reason));
		/* The batch now excludes the quarantined events: deliver the rest
		 * (an empty batch still commits, moving the cursor on). */
		set_state(in, INST_READY, now);
		break;
	}
	}
	free(ab);
	return;
db_error:
	free(ab);
	in->failures++;
	cv_metrics_add(w->opts->metrics, CV_M_RETRIES, name, 1);
	{
		int delay = backoff_ms(w, in->failures);

		cv_logkv(CV_LOG_ERROR, "deliver", "database error, batch will be retried",
			 CV_KS("adapter", name), CV_KI("retry_ms", delay), CV_KS("error", err));
		if (sto_db_ensure(w->db, err, sizeof(err)) != 0)
			cv_err("deliver", "%s", err);
		set_state(in, w->opts->once && in->failures >= GIVE_UP_AFTER ? INST_GAVE_UP
									      : INST_WAITING,
			  now + delay);
	}
}

static int ensure_state_rows(struct worker *w, struct inst *insts, size_t n)
{
	char err[STO_ERRLEN];

	for (size_t i = 0; i < n; i++) {
		const char *p[2] = { insts[i].ca->name, insts[i].ca->required ? "true" : "false" };

		if (sto_exec(w->db, "register adapter",
			     "INSERT INTO chatvault.adapter_state (adapter, required) VALUES ($1, $2)"
			     " ON CONFLICT (adapter) DO UPDATE SET required = $2", 2, p, NULL, err,
			     sizeof(err)) != CV_OK) {
			cv_err("deliver", "%s", err);
			return -1;
		}
	}
	return 0;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int dlv_run(const struct cfg *cfg, struct sto_db *db, const struct dlv_opts *opts,
	    struct dlv_stats *st)
{
	struct worker w = { .cfg = cfg, .db = db, .opts = opts, .st = st };
	struct inst *insts = calloc(cfg->nadapters ? cfg->nadapters : 1, sizeof(*insts));
	size_t n = 0;
	int rc = 0;
	char err[1024];

	memset(st, 0, sizeof(*st));
	if (!insts)
		return -ENOMEM;
	gethostname(w.host, sizeof(w.host) - 1);
	{
		unsigned int nonce = 0;

		if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
			nonce = (unsigned int)cv_time_now_ms();
		snprintf(w.holder, sizeof(w.holder), "%s:%ld:%08x", w.host, (long)getpid(), nonce);
		w.seed = nonce;
	}
	for (size_t i = 0; i < cfg->nadapters; i++) {
		const struct cfg_adapter *ca = &cfg->adapters[i];

		if (opts->adapter && strcmp(opts->adapter, ca->name) != 0)
			continue;
		insts[n].ca = ca;
		if (adp_instance_open(cfg, ca, &insts[n].adp, err, sizeof(err)) != 0) {
			cv_err("deliver", "%s", err);
			rc = -EINVAL;
			goto out;
		}
		set_state(&insts[n], INST_READY, 0);
		cv_metrics_touch(opts->metrics, CV_M_DELIVERED, ca->name);
		cv_metrics_touch(opts->metrics, CV_M_RETRIES, ca->name);
		n++;
	}
	if (n == 0) {
		cv_err("deliver", "no adapter named \"%s\" in %s", opts->adapter ? opts->adapter : "",
		       cfg->source);
		rc = -EINVAL;
		goto out;
	}
	if (ensure_state_rows(&w, insts, n) != 0) {
		rc = -EIO;
		goto out;
	}
	for (;;) {
		int64_t now = cv_time_mono_ms(), next = INT64_MAX;
		bool active = false;

		if (opts->should_stop && opts->should_stop(opts->stop_arg))
			break;
		for (size_t i = 0; i < n; i++) {
			struct inst *in = &insts[i];

			if (in->state == INST_DRAINED || in->state == INST_GAVE_UP ||
			    in->state == INST_ELSEWHERE)
				continue;
			active = true;
			if (in->state == INST_READY || in->next_run <= now) {
				step(&w, in);
				if (opts->should_stop && opts->should_stop(opts->stop_arg))
					break;
			}
			if ((in->state == INST_READY || in->state == INST_WAITING) &&
			    in->next_run < next)
				next = in->next_run;
		}
		if (!active)
			break;
		now = cv_time_mono_ms();
		if (next > now)
			sleep_ms(next - now > 100 ? 100 : next - now);
	}
	for (size_t i = 0; i < n; i++)
		if (insts[i].state == INST_GAVE_UP)
			rc = 1;
out:
	/* insts has one slot per configured adapter; unused slots are zeroed. */
	for (size_t i = 0; i < cfg->nadapters; i++) {
		if (insts[i].adp)
			release_lease(&w, insts[i].ca->name);
		adp_instance_close(insts[i].adp);
	}
	batch_mem_free(&w.mem);
	free(insts);
	return rc;
}
