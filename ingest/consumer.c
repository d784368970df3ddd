/*
 * consumer — see consumer.h.
 */
#include "consumer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_time.h"
#include "event.h"
#include "queue.h"
#include "sto_stage.h"

/* Everything one batch needs, reused across batches (bounded memory). */
struct batch_work {
	struct ing_event *events;
	char **json;
	char (*ts)[CV_TIME_BUFSZ];
	char (*reasons)[ING_EVENT_ERRLEN];
	struct sto_stage_row *rows;
	struct sto_quarantine_row *q;
	struct sto_position *pos;
	size_t cap;
	size_t nrows, nq, npos;
};

static void work_reset(struct batch_work *w)
{
	for (size_t i = 0; i < w->nrows; i++) {
		ing_event_clear(&w->events[i]);
		free(w->json[i]);
		w->json[i] = NULL;
	}
	w->nrows = w->nq = w->npos = 0;
}

static void work_free(struct batch_work *w)
{
	work_reset(w);
	free(w->events);
	free(w->json);
	free(w->ts);
	free(w->reasons);
	free(w->rows);
	free(w->q);
	free(w->pos);
}

static int work_reserve(struct batch_work *w, size_t n)
{
	if (n <= w->cap)
		return 0;
	work_free(w);
	memset(w, 0, sizeof(*w));
	w->events = calloc(n, sizeof(*w->events));
	w->json = calloc(n, sizeof(*w->json));
	w->ts = calloc(n, sizeof(*w->ts));
	w->reasons = calloc(n, sizeof(*w->reasons));
	w->rows = calloc(n, sizeof(*w->rows));
	w->q = calloc(n, sizeof(*w->q));
	w->pos = calloc(n, sizeof(*w->pos));
	if (!w->events || !w->json || !w->ts || !w->reasons || !w->rows || !w->q || !w->pos)
		return -ENOMEM;
	w->cap = n;
	return 0;
}

static void add_position(struct batch_work *w, int32_t partition, int64_t position)
{
	for (size_t i = 0; i < w->npos; i++) {
		if (w->pos[i].partition == partition) {
			if (position < w->pos[i].first)
				w->pos[i].first = position;
			if (position > w->pos[i].last)
				w->pos[i].last = position;
			return;
		}
	}
	w->pos[w->npos++] = (struct sto_position){ partition, position, position };
}

/* Validate msgs[from, to) into rows and quarantine entries. */
static int prepare(const struct cfg *cfg, const struct ing_qbatch *b, size_t from, size_t to,
		   struct batch_work *w)
{
	work_reset(w);
	for (size_t i = from; i < to; i++) {
		const struct ing_qmsg *m = &b->msgs[i];
		struct ing_event *ev = &w->events[w->nrows];
		char *reason = w->reasons[w->nq];
		size_t len;
		int rc;

		add_position(w, m->partition, m->position);
		ing_event_init(ev);
		rc = ing_event_parse(m->data, m->len, (size_t)cfg->ingest.max_event_size, 0, ev,
				     reason, ING_EVENT_ERRLEN);
		if (rc == -ENOMEM)
			return rc;
		if (rc == 0) {
			rc = ing_event_serialize(ev, &w->json[w->nrows], &len);
			if (rc == -ENOMEM) {
				ing_event_clear(ev);
				return rc;
			}
			if (rc == 0 && cv_time_format_ms(ev->ts_ms, w->ts[w->nrows]) != 0)
				rc = -EINVAL;
			if (rc) {
				snprintf(reason, ING_EVENT_ERRLEN, "event cannot be serialised");
				ing_event_clear(ev);
			}
		}
		if (rc) {
			cv_logkv(CV_LOG_WARN, "ingest", "record quarantined",
				 CV_KI("partition", m->partition), CV_KI("position", m->position),
				 CV_KS("reason", reason));
			w->q[w->nq++] = (struct sto_quarantine_row){
				m->data, m->len, reason, m->partition, m->position };
			continue;
		}
		w->rows[w->nrows] = (struct sto_stage_row){
			.event_id = ev->id,
			.type = ing_event_type_name(ev->type),
			.ts = w->ts[w->nrows],
			.room = ev->room,
			.user = ev->user,
			.server = ev->source_server,
			.seq = ev->source_seq,
			.json = w->json[w->nrows],
			.json_len = len,
		};
		w->nrows++;
	}
	return 0;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void add_stats(struct ing_consume_stats *st, const struct sto_stage_stats *s)
{
	st->staged += s->staged;
	st->duplicates += s->duplicates;
	st->quarantined += s->quarantined;
	st->gaps += s->gaps;
}

/* One committed batch: metrics from what it added to st, and its log line. */
static void count_batch(struct cv_metrics *m, const struct ing_consume_stats *before,
			const struct ing_consume_stats *st, int64_t ms, size_t records)
{
	int64_t staged = st->staged - before->staged, dup = st->duplicates - before->duplicates;
	int64_t quar = st->quarantined - before->quarantined, gaps = st->gaps - before->gaps;

	cv_metrics_add(m, CV_M_INGESTED, NULL, (uint64_t)staged);
	cv_metrics_add(m, CV_M_DUPLICATES, NULL, (uint64_t)dup);
	cv_metrics_add(m, CV_M_QUARANTINED, "ingest", (uint64_t)quar);
	cv_metrics_add(m, CV_M_GAPS, NULL, (uint64_t)gaps);
	cv_metrics_observe(m, CV_M_BATCH_SECONDS, "ingest", (double)ms / 1000.0);
	cv_logkv(CV_LOG_INFO, "ingest", "batch staged", CV_KI("records", records),
		 CV_KI("staged", staged), CV_KI("duplicates", dup), CV_KI("quarantined", quar),
		 CV_KI("gaps", gaps), CV_KI("ms", ms));
}

/*
 * The database refused the batch permanently: stage it one record per
 * transaction so that only the record it refuses is quarantined, with the
 * database's reason.
 */
static enum cv_result stage_one_by_one(const struct cfg *cfg, struct sto_db *db,
				       struct ing_qr *r, const struct ing_qbatch *b,
				       struct batch_work *w, struct ing_consume_stats *st,
				       char *err, size_t errlen)
{
	for (size_t i = 0; i < b->n; i++) {
		struct sto_stage_stats s;
		enum cv_result res;

		if (prepare(cfg, b, i, i + 1, w) != 0) {
			snprintf(err, errlen, "out of memory");
			return CV_RETRY;
		}
		res = sto_stage_commit(db, ing_qr_source(r), w->rows, w->nrows, w->q, w->nq,
				       w->pos, w->npos, &s, err, errlen);
		if (res == CV_FAIL) {
			char reason[512];
			struct sto_quarantine_row q = {
				b->msgs[i].data, b->msgs[i].len, reason, b->msgs[i].partition,
				b->msgs[i].position };

			snprintf(reason, sizeof(reason), "refused by the database: %.480s", err);
			cv_logkv(CV_LOG_WARN, "ingest", "record refused by the database, quarantined",
				 CV_KI("partition", b->msgs[i].partition),
				 CV_KI("position", b->msgs[i].position), CV_KS("reason", err));
			res = sto_stage_commit(db, ing_qr_source(r), NULL, 0, &q, 1, w->pos, w->npos,
					       &s, err, errlen);
		}
		if (res != CV_OK)
			return res;
		add_stats(st, &s);
	}
	return CV_OK;
}

int ing_consume(const struct cfg *cfg, struct sto_db *db, const struct ing_consume_opts *opts,
		struct ing_consume_stats *st)
{
	struct ing_qbatch b = { 0 };
	struct batch_work w = { 0 };
	struct ing_qr *r = NULL;
	char err[1024];
	int64_t backoff = 0, idle_since = 0, t0;
	struct ing_consume_stats before;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (work_reserve(&w, (size_t)cfg->ingest.batch_size) != 0) {
		cv_err("ingest", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	while ((rc = ing_qr_open(cfg, db, &r, err, sizeof(err))) != 0) {
		cv_err("ingest", "cannot open queue: %s", err);
		if (rc != -EIO || opts->once)
			goto out;
		if (sto_db_ensure(db, err, sizeof(err)) != 0) {
			cv_err("ingest", "%s", err);
			goto out;
		}
	}
	cv_logkv(CV_LOG_INFO, "ingest", "consuming", CV_KS("source", ing_qr_source(r)));

	for (;;) {
		struct sto_stage_stats s;
		enum cv_result res;

		if (opts->should_stop && opts->should_stop(opts->stop_arg))
			break;
		if (backoff) {
			sleep_ms(backoff);
			if (sto_db_ensure(db, err, sizeof(err)) != 0) {
				cv_err("ingest", "%s", err);
				rc = -ECONNREFUSED;
				break;
			}
			if (ing_qr_rewind(r, err, sizeof(err)) != 0) {
				cv_logkv(CV_LOG_ERROR, "ingest", "rewind failed, retrying",
					 CV_KI("backoff_ms", backoff), CV_KS("error", err));
				st->retries++;
				cv_metrics_add(opts->metrics, CV_M_INGEST_RETRIES, NULL, 1);
				backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
				continue;
			}
		}
		res = ing_qr_read(r, &b, (size_t)cfg->ingest.batch_size, 64u << 20,
				  opts->once ? 50 : cfg->ingest.max_wait_ms, err, sizeof(err));
		if (res == CV_FAIL) {
			cv_err("ingest", "queue: %s", err);
			rc = -EIO;
			break;
		}
		if (res == CV_RETRY) {
			cv_logkv(CV_LOG_WARN, "ingest", "queue read failed, retrying",
				 CV_KS("error", err));
			st->retries++;
			cv_metrics_add(opts->metrics, CV_M_INGEST_RETRIES, NULL, 1);
			backoff = backoff ? (backoff * 2 > 10000 ? 10000 : backoff * 2) : 200;
			continue;
		}
		if (b.n == 0) {
			/* --once: done when nothing is left.  Kafka needs its group
			 * assignment before it knows (depth -1): wait for it, 60 s
			 * at most. */
			if (opts->once) {
				int64_t depth = ing_qr_depth(r);

				if (depth == 0)
					break;
				if (idle_since == 0)
					idle_since = cv_time_mono_ms();
				if (cv_time_mono_ms() - idle_since > 60000) {
					cv_warn("ingest", "queue depth still %" PRId64 " after 60 s idle;"
						" stopping", depth);
					break;
				}
			}
			continue;
		}
		idle_since = 0;
		t0 = cv_time_mono_ms();
		before = *st;
		if (prepare(cfg, &b, 0, b.n, &w) != 0) {
			cv_err("ingest", "out of memory preparing a batch");
			rc = -ENOMEM;
			break;
		}
		res = sto_stage_commit(db, ing_qr_source(r), w.rows, w.nrows, w.q, w.nq, w.pos,
				       w.npos, &s, err, sizeof(err));
		if (res == CV_FAIL) {
			cv_warn("ingest", "batch refused (%s); staging it record by record", err);
			res = stage_one_by_one(cfg, db, r, &b, &w, st, err, sizeof(err));
			memset(&s, 0, sizeof(s));
		}
		if (res != CV_OK) {
			cv_logkv(CV_LOG_WARN, "ingest", "staging failed, will retry the same records",
				 CV_KI("records", b.n), CV_KS("error", err));
			st->retries++;
			cv_metrics_add(opts->metrics, CV_M_INGEST_RETRIES, NULL, 1);
			backoff = backoff ? (backoff * 2 > 10000 ? 10000 : backoff * 2) : 200;
			continue;
		}
		backoff = 0;
		add_stats(st, &s);
		st->batches++;
		ing_qr_committed(r, &b);
		count_batch(opts->metrics, &before, st, cv_time_mono_ms() - t0, b.n);
	}
out:
	work_reset(&w);
	work_free(&w);
	ing_qbatch_free(&b);
	ing_qr_close(r);
	return rc;
}
