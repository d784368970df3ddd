/*
 * ret_admin — legal holds and GDPR erasure requests (design.md §2 `hold`,
 * `erase`; §3 guarantee 6: every act is in chatvault.audit_log with the
 * actor, in the same transaction as the act itself).
 *
 * Every writer here, and every retention purge, first takes
 * chatvault.admin_lock() (a transaction-level advisory lock), so a purge
 * and a hold that covers it can never interleave: the purge either commits
 * before the hold exists or sees it.
 *
 * Errors: negative errno with one line in err; -ENOENT "no such hold",
 * -EALREADY "already released", -EAGAIN a transient database failure
 * (retry), -EIO anything else.  Thread-safe given one sto_db per thread.
 */
#ifndef RET_ADMIN_H
#define RET_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cfg.h"
#include "cv_result.h"

struct sto_db;

struct ret_hold_req {
	const char *user;      /* NULL or a user URI */
	const char *room;      /* NULL or a room URI; at least one is set */
	int64_t from_ms;       /* INT64_MIN: open */
	int64_t to_ms;         /* INT64_MAX: open; exclusive */
	const char *reason;    /* required, non-empty */
};

int ret_hold_add(struct sto_db *db, const struct ret_hold_req *req, const char *actor,
		 int64_t *id_out, char *err, size_t errlen);
int ret_hold_release(struct sto_db *db, int64_t id, const char *reason, const char *actor,
		     char *err, size_t errlen);
/* Print active holds (all, with released ones, when all is set) as a table
 * or, with json, one JSON array. */
int ret_hold_list(struct sto_db *db, bool all, bool json, FILE *out, char *err, size_t errlen);

struct ret_erasure {
	int64_t id;
	bool honoured;
	char refusal[512];     /* when refused: why */
	int64_t redacted;      /* staged events redacted */
};

/*
 * Record an erasure request for user and decide it: refused when an active
 * legal hold touches the user (by user, or by a room where the user has
 * archived or staged events) or when an applying profile requires keeping
 * (ret_policy_erasure); otherwise honoured, and the user's staged events
 * (as author or `to`) get their text and attachment names replaced by
 * "[erased]" (re-serialised canonically).  Archived bundles are not
 * rewritten; exports leave the user out (docs/RETENTION.md).
 * Returns 0 with *res filled (honoured or refused: both are recorded and
 * audited), or negative on a failure that recorded nothing.
 */
int ret_erase(struct sto_db *db, const struct cfg *cfg, const char *user, const char *reason,
	      const char *actor, struct ret_erasure *res, char *err, size_t errlen);

/* Text written in place of erased content. */
#define RET_ERASED_TEXT "[erased]"

/*
 * Append one row to chatvault.audit_log (inside the caller's transaction,
 * if one is open): actor, action ("hold.add", "retention.purge", "export",
 * …), target (may be NULL), details (a JSON object, may be NULL).  The new
 * audit_id goes to *audit_id when not NULL.  Returns CV_OK, or CV_RETRY /
 * CV_FAIL with err.
 */
enum cv_result ret_audit(struct sto_db *db, const char *actor, const char *action,
			 const char *target, const json_t *details, int64_t *audit_id,
			 char *err, size_t errlen);

/* "<login>@<host>" of the calling process, for the audit trail. */
void ret_actor(char *buf, size_t len);

#endif
