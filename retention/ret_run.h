/*
 * ret_run — one retention run over the bundle catalog (design.md §2
 * `chatvault retention`, §3 guarantee 3, §4).
 *
 * For every live bundle of every `archive` adapter instance:
 *   1. the applying profiles give its retention (ret_policy); the instant
 *      it may go is max_ts + retention.  Under a WORM profile that instant
 *      is locked in the catalog (batches.retain_until) the first time a run
 *      sees the bundle and only ever moves later, so a shortened profile
 *      cannot purge it early;
 *   2. not yet expired → kept; no profile applies → kept (never purged);
 *   3. an active legal hold touches it → kept, naming the hold;
 *   4. WORM and the database clock says the lock has not passed → refused
 *      and audited (the local clock may have been set ahead: "even if
 *      asked");
 *   5. else purged: the bundle is verified and read, a tombstone
 *      (docs/FORMATS.md §2) is written beside it, the catalog row becomes
 *      'purged' with the audit record in the same transaction (under
 *      chatvault.admin_lock(), holds re-checked), and the file is unlinked.
 * A purge interrupted by a crash is finished (or undone) by the next run:
 * a 'purged' row whose file still exists loses the file, a 'done' row whose
 * tombstone exists loses the tombstone.  Staged and quarantined events
 * older than retention.stale_staging_days are reported, never dropped.
 * Other adapters' outputs (xml, jsonl, eml, .so) are hand-offs to other
 * systems and are not touched.
 */
#ifndef RET_RUN_H
#define RET_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"

struct sto_db;

struct ret_run_opts {
	bool dry_run;          /* decide and print, change nothing */
	int64_t now_ms;        /* the clock of this run */
	bool clock_override;   /* now_ms came from CHATVAULT_NOW, not the system */
	const char *actor;     /* for the audit log */
};

struct ret_run_stats {
	int64_t bundles;       /* live bundles looked at */
	int64_t purged;
	int64_t kept;          /* retention not over / no profile */
	int64_t held;          /* expired but under a legal hold */
	int64_t refused;       /* WORM: early purge refused */
	int64_t damaged;       /* could not be verified or read: kept */
	int64_t finished;      /* interrupted purges completed */
	int64_t stale_staged;  /* staged events older than stale_staging_days */
	int64_t stale_quarantined;
};

/* Returns 0 (problems with single bundles are counted in damaged and
 * printed), or negative with err on a failure that stopped the run. */
int ret_run(struct sto_db *db, const struct cfg *cfg, const struct ret_run_opts *o, FILE *out,
	    struct ret_run_stats *st, char *err, size_t errlen);

/* The tombstone path for a bundle path ("….tar.zst" → "….tombstone.json");
 * -ENAMETOOLONG or -EINVAL. */
int ret_tombstone_path(const char *bundle, char *out, size_t outlen);

#endif
