/*
 * ret_verify — `chatvault verify PATH...`: prove archive bundles, whole
 * archive directories, tombstones and export packages complete and
 * untampered (design.md §2 and §3 guarantee 5; docs/FORMATS.md §1-3 and
 * "What verify checks").
 *
 * Needs nothing but the files: no database, no configuration, so an
 * auditor can run it on a copy.  PATHs may be bundles (*.tar.zst),
 * tombstones (*.tombstone.json), directories (walked recursively; other
 * files there are notes, not failures) and export packages (recognised by
 * content: their first member is README.txt).  Everything named on one
 * command line is judged together: bundles and tombstones are grouped by
 * adapter instance into hash chains, and an export's source bundles are
 * compared with the bundles given next to it.
 *
 * Each bundle is streamed once (adapters/bundle.c verifies its members
 * while this module reads every event line), so memory is bounded except
 * for the sets that must span the archive: one 20-byte slot per event id
 * and one interval per source.seq gap (retention/ret_vseq.h).
 *
 * Findings go to opts->out, one line each:
 *     FAIL: <file>: member <member>: <what>      verification failed
 *     ERROR: <file>: <why>                       could not be read
 *     note: <what>                               worth knowing, not a failure
 *     known gap: <adapter> batch N, ...          a purged bundle's tombstone
 * and the caller prints the summary from struct ret_verify_result.
 *
 * Thread-safe: no shared state; the only global touched is the libraries'.
 */
#ifndef RET_VERIFY_H
#define RET_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RET_VERIFY_TOMB_FORMAT "chatvault-tombstone/1"
#define RET_VERIFY_EXPORT_FORMAT "chatvault-export/1"
#define RET_VERIFY_MSGLEN 1024

struct ret_verify_opts {
	FILE *out;             /* findings; NULL: stdout */
	bool quiet;            /* failures and errors only: no notes, no gaps */
};

struct ret_verify_result {
	int64_t bundles;       /* bundle files examined */
	int64_t tombstones;    /* tombstones standing for purged bundles */
	int64_t exports;       /* export packages examined */
	int64_t events;        /* event lines read (bundles and jsonl exports) */
	int64_t problems;      /* FAIL lines */
	int64_t unreadable;    /* ERROR lines */
	int64_t notes;
	/* The first FAIL and the first ERROR, without the prefix:
	 * "<file>: member <member>: <what>"; "" when there was none. */
	char first_problem[RET_VERIFY_MSGLEN];
	char first_unreadable[RET_VERIFY_MSGLEN];
};

/*
 * Verify paths[0..npaths).  Returns 0 when the run completed (the verdict
 * is in res: problems > 0 is "found a problem", else unreadable > 0 is
 * "could not check everything"), or -ENOMEM when it could not go on.
 */
int ret_verify_run(char *const *paths, size_t npaths, const struct ret_verify_opts *opts,
		   struct ret_verify_result *res);

/* --- tombstones (docs/FORMATS.md §2), parsed strictly -------------------- */

struct ret_verify_range {
	int64_t a, b;
};

struct ret_verify_tsource {
	char *server;
	struct ret_verify_range *r;    /* ascending, disjoint */
	size_t n;
};

struct ret_verify_tomb {
	char bundle[256];              /* the purged bundle's file name */
	char bundle_sha256[65];
	char adapter[65];
	int64_t batch_no;
	int64_t first_staging_id, last_staging_id, event_count;
	struct ret_verify_range *staging_ids;
	size_t nstaging;
	char min_ts[32], max_ts[32];
	char manifest_sha256[65];
	char prev_manifest_sha256[65]; /* "" for batch 1 */
	struct ret_verify_tsource *sources;  /* sorted by server */
	size_t nsources;
	char purged_at[32];
	char *reason;
	int64_t audit_id;
};

/*
 * Parse a tombstone from text[0..len).  file_name (may be NULL) is the
 * tombstone's base name; it must be the bundle's name with ".tar.zst"
 * replaced by ".tombstone.json".  Every documented key must be present
 * with its type and no other key may be: format, bundle, bundle_sha256,
 * adapter, batch_no (>= 1), first_staging_id <= last_staging_id,
 * event_count, staging_ids (ascending disjoint [a, b] ranges from first to
 * last adding up to event_count), min_ts <= max_ts and purged_at
 * (canonical UTC timestamps), manifest_sha256 and prev_manifest_sha256 (64
 * lower-case hex digits; prev "" for batch 1, "" or a hash after), sources ({server:
 * [[a, b], ...]} ascending, disjoint, seq >= 0, at most event_count seqs),
 * reason, audit_id (>= 0); bundle must be "<adapter>-<first %016>-<last
 * %016>.tar.zst".  Returns 0, -EBADMSG with the reason in err, or -ENOMEM.
 * On error t is left empty; otherwise free it with ret_verify_tomb_free().
 */
int ret_verify_tomb_parse(const char *text, size_t len, const char *file_name,
			  struct ret_verify_tomb *t, char *err, size_t errlen);
void ret_verify_tomb_free(struct ret_verify_tomb *t);

#endif
