/*
 * consumer — `chatvault ingest`: queue → staging, exactly once.
 *
 * Reads a batch (ingest.batch_size records, ingest.max_wait_ms), validates
 * every record strictly (ingest/event.c), stages the valid ones and
 * quarantines the rest with their reason and raw bytes, and commits rows,
 * quarantine and queue positions in one PostgreSQL transaction
 * (store/sto_stage.c).  Only after that commit does the queue forget the
 * records (the spool trims).  A transient failure (database restart, broker
 * outage) rewinds to the stored positions, reconnects with backoff, and
 * reads the same records again; a permanent one (the database refuses a
 * row) re-stages the batch one record per transaction so only the bad
 * record goes to quarantine.  Memory is bounded by one batch.
 *
 * Runs on the calling thread.
 */
#ifndef ING_CONSUMER_H
#define ING_CONSUMER_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"

struct sto_db;
struct cv_metrics;

struct ing_consume_opts {
	bool once;                          /* drain what is queued, then return */
	bool (*should_stop)(void *arg);     /* polled between batches; may be NULL */
	void *stop_arg;
	/* Counters of cv_metrics' catalogue (ingested, duplicates, quarantined
	 * {stage="ingest"}, gaps, ingest retries, batch seconds{stage="ingest"})
	 * are added after each commit; NULL: none.  Not owned. */
	struct cv_metrics *metrics;
};

struct ing_consume_stats {
	int64_t batches;
	int64_t staged;
	int64_t duplicates;
	int64_t quarantined;
	int64_t gaps;
	int64_t retries;
};

/* Returns 0 when stopped or drained, negative on an unrecoverable error
 * (logged). */
int ing_consume(const struct cfg *cfg, struct sto_db *db, const struct ing_consume_opts *opts,
		struct ing_consume_stats *st);

#endif
