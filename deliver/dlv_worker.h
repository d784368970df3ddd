/*
 * dlv_worker — `chatvault deliver`: staging → adapters (Lync's Compliance
 * service and its RunInterval, made reliable).
 *
 * Per configured adapter instance, one step is:
 *   1. take or renew the instance's lease in chatvault.adapter_state
 *      (one active worker per instance across processes and hosts);
 *   2. reuse the instance's pending batch if a crash left one, or claim the
 *      next batch_size staged events past its cursor and record the batch
 *      (number, first and last staging id, chain_prev) as 'pending' before
 *      the adapter sees it, so a redelivery has the same boundaries and
 *      names;
 *   3. hand the batch to the adapter;
 *   4. OK    → one transaction: batch 'done' with its output path and chain
 *              hash (the bundle catalog row), cursor, chain head and health
 *              advanced — fenced on still holding the lease — then delete
 *              every staged event all required adapters have passed;
 *      RETRY → exponential backoff with jitter (deliver.retry_base_ms up to
 *              retry_max_ms), nothing advanced;
 *      FAIL  → the blamed event (or the whole batch) is quarantined for
 *              this adapter with its reason; the rest goes on.
 * Optional adapters never hold back deletion.
 *
 * Runs on the calling thread; one struct sto_db.
 */
#ifndef DLV_WORKER_H
#define DLV_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"

struct sto_db;
struct cv_metrics;

struct dlv_opts {
	bool once;                       /* deliver what is staged, then return */
	const char *adapter;             /* only this instance (NULL: all) */
	bool (*should_stop)(void *arg);  /* polled between steps */
	void *stop_arg;
	/* cv_metrics' catalogue: delivered{adapter}, retries{adapter},
	 * quarantined{stage="deliver"}, batch seconds{stage="deliver"}, added
	 * as outcomes commit; NULL: none.  Not owned. */
	struct cv_metrics *metrics;
};

struct dlv_stats {
	int64_t batches;
	int64_t events;
	int64_t retries;
	int64_t failed_events;
	int64_t deleted;
};

/* 0 when stopped or drained; 1 when --once gave up on a failing adapter;
 * negative on a setup error (logged). */
int dlv_run(const struct cfg *cfg, struct sto_db *db, const struct dlv_opts *opts,
	    struct dlv_stats *st);

/* Delete staged events every required adapter of cfg has passed; returns
 * the number deleted or negative. */
int64_t dlv_purge_delivered(const struct cfg *cfg, struct sto_db *db, char *err, size_t errlen);

#endif
