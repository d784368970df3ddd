/*
 * spool — the embedded, durable, single-host queue (design.md §1 "the
 * seeds' private Message Queuing queue"), built on LMDB.
 *
 * Why LMDB: multi-process safe (a producer in one process and the consumer
 * in another share one environment through its lock file), crash-safe
 * copy-on-write B-tree (a committed transaction survives kill -9 and power
 * loss; a torn one is invisible), ordered integer keys.  Nothing here is a
 * hand-rolled log format.
 *
 * Layout under <dir>: data.mdb + lock.mdb (mode 0600), three named DBs:
 *   "records": position (uint64, MDB_INTEGERKEY) → raw event bytes
 *   "meta":    "id" → spool UUID (created once; the consumer keys its
 *              PostgreSQL position by it, so a re-created spool is never
 *              mistaken for the old one), "next" → next position,
 *              "bytes"/"count" → payload bytes / records held
 *   "seq":     producer server name → next source.seq (so the sequence
 *              survives restarts and is committed with the events)
 *
 * Positions start at 1, grow by one per record and are never reused, even
 * after trim.  Durability: every write transaction is committed with LMDB's
 * default full sync (fdatasync), so "append returned 0" means durable.
 *
 * Bound: the sum of record payload bytes never exceeds max_bytes; an append
 * that would pass it writes nothing and returns -EBUSY (so is LMDB's own
 * MDB_MAP_FULL).  The map is sized max_bytes * 2 + 64 MiB to leave LMDB
 * room for its pages.
 *
 * Threading: one struct ing_spool per thread (LMDB read/write transactions
 * are per thread; the environment is opened with MDB_NOTLS so read-only use
 * from several threads is also fine, but callers serialise writes).
 */
#ifndef ING_SPOOL_H
#define ING_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ing_spool;

struct ing_spool_stats {
	uint64_t count;       /* records held */
	uint64_t bytes;       /* payload bytes held */
	uint64_t max_bytes;   /* configured bound */
	uint64_t first_pos;   /* smallest held position, 0 if empty */
	uint64_t last_pos;    /* largest position ever written, 0 if none */
};

/*
 * Open (creating with mode 0700/0600 if absent) the spool in dir.
 * max_bytes must be >= 4096.  Returns 0 or negative errno with a reason in
 * err (e.g. "spool /x: Permission denied").
 */
int ing_spool_open(const char *dir, int64_t max_bytes, struct ing_spool **out,
		   char *err, size_t errlen) __attribute__((warn_unused_result));
void ing_spool_close(struct ing_spool *sp);

/* The spool's UUID (36 chars + NUL), stable for its lifetime. */
const char *ing_spool_id(const struct ing_spool *sp);

/*
 * Append n records in one durable transaction.  If server != NULL the
 * producer's next sequence number next_seq is stored for it in the same
 * transaction.  On success *first_pos (may be NULL) receives the position of
 * recs[0]; the others follow consecutively.
 * Returns 0, -EBUSY (bound or map full: nothing written), or another
 * negative errno (nothing written).
 */
int ing_spool_append(struct ing_spool *sp, const struct iovec *recs, size_t n,
		     const char *server, int64_t next_seq, uint64_t *first_pos)
	__attribute__((warn_unused_result));

/* Next source.seq stored for server (1 when never seen). */
int ing_spool_get_seq(struct ing_spool *sp, const char *server, int64_t *next_seq)
	__attribute__((warn_unused_result));

/*
 * Callback for ing_spool_read: data is valid only during the call.  Return 0
 * to continue, 1 to stop early (the record was consumed), negative to abort
 * (the value is returned by ing_spool_read).
 */
typedef int (*ing_spool_read_cb)(void *arg, uint64_t pos, const void *data, size_t len);

/*
 * Read records with position > after, in position order, up to max_records
 * records and (soft) max_bytes bytes (at least one record is delivered when
 * any is there).  Returns the number of records passed to cb, or negative.
 */
int ing_spool_read(struct ing_spool *sp, uint64_t after, size_t max_records,
		   size_t max_bytes, ing_spool_read_cb cb, void *arg)
	__attribute__((warn_unused_result));

/* Remove every record with position <= upto.  Idempotent.  0 or negative. */
int ing_spool_trim(struct ing_spool *sp, uint64_t upto) __attribute__((warn_unused_result));

int ing_spool_stats(struct ing_spool *sp, struct ing_spool_stats *st)
	__attribute__((warn_unused_result));

#endif
