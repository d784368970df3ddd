/*
 * sto_stage — the staging transaction of ingest: rows, quarantine, queue
 * positions, sequence tracking and participants, all or nothing.
 *
 * One call = one PostgreSQL transaction:
 *   1. take the staging advisory lock (staging_id order = commit order),
 *   2. check and advance the queue positions (refuse a batch whose
 *      positions are not past the stored ones: another consumer took it),
 *   3. COPY the events into a temporary table and insert the ones whose id
 *      was never seen (chatvault.seen_events) into staged_events, in order,
 *   4. insert quarantine rows (raw bytes + reason + queue position),
 *   5. record per-producer sequence gaps, update participants,
 *   6. commit.
 * A failure at any step rolls everything back: the queue position does not
 * move, so the same records are read again.
 */
#ifndef STO_STAGE_H
#define STO_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sto_db.h"

/* Arbitrary fixed key ("cvst") for pg_advisory_xact_lock. */
#define STO_STAGING_LOCK_KEY "1668707188"

struct sto_stage_row {
	const char *event_id;
	const char *type;
	const char *ts;        /* canonical text */
	const char *room;      /* may be NULL */
	const char *user;
	const char *server;
	int64_t seq;
	const char *json;
	size_t json_len;
};

struct sto_quarantine_row {
	const void *raw;
	size_t len;
	const char *reason;
	int32_t partition;
	int64_t position;
};

/* Per partition: the batch covers (first, last] after the stored position. */
struct sto_position {
	int32_t partition;
	int64_t first;   /* smallest position in the batch */
	int64_t last;    /* largest position in the batch (stored on commit) */
};

struct sto_stage_stats {
	int64_t staged;       /* rows inserted */
	int64_t duplicates;   /* valid events whose id was already seen */
	int64_t quarantined;
	int64_t gaps;         /* new sequence gaps recorded */
};

enum cv_result sto_stage_commit(struct sto_db *db, const char *source,
				const struct sto_stage_row *rows, size_t nrows,
				const struct sto_quarantine_row *q, size_t nq,
				const struct sto_position *pos, size_t npos,
				struct sto_stage_stats *st, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Stored position for (source, partition): 0 and *pos, 1 when none. */
int sto_stage_position(struct sto_db *db, const char *source, int32_t partition, int64_t *pos,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
