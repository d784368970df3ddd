/*
 * ret_policy — which regulation profiles apply to what, and what follows
 * (design.md §4): pure functions over the configuration, no I/O, so the
 * rules are unit-tested exactly (tests/unit/test_retention.c).
 *
 * Scope of a profile: `rooms` are URI prefixes, `users` exact URIs; an
 * empty list means "every".  A profile applies to an event when its room
 * matches (or rooms is empty) and its user or `to` matches (or users is
 * empty).  A bundle is judged from the catalog's room and user sets, so a
 * profile applies to the bundle when some room and some user of it match:
 * a superset of the per-event rule, which can only keep a bundle longer.
 *
 * Several profiles may apply: the longest retention_days wins (ties: the
 * first in the configuration), WORM applies when any applying profile has
 * it, and a legal hold overrides all (ret_hold_touches).
 * Thread-safe: no shared state.
 */
#ifndef RET_POLICY_H
#define RET_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"

#define RET_DAY_MS (86400LL * 1000)

/* What the catalog says of one bundle. */
struct ret_scope {
	const char *const *rooms;
	size_t nrooms;
	const char *const *users;
	size_t nusers;
};

struct ret_decision {
	bool applies;                   /* some profile applies */
	int retention_days;             /* the longest that applies */
	const struct cfg_profile *longest;  /* the profile giving it */
	bool worm;                      /* any applying profile is WORM */
	const struct cfg_profile *worm_profile;
};

/* Does profile p apply to a bundle with this scope? */
bool ret_profile_applies(const struct cfg_profile *p, const struct ret_scope *s);

/* Evaluate every profile of cfg against the scope. */
void ret_policy_eval(const struct cfg *cfg, const struct ret_scope *s, struct ret_decision *d);

/* max_ts_ms + retention_days, saturating; INT64_MAX when nothing applies. */
int64_t ret_policy_until(const struct ret_decision *d, int64_t max_ts_ms);

/* One legal hold (chatvault.holds).  NULL user/room = any; from/to in UTC
 * ms, INT64_MIN / INT64_MAX when open. */
struct ret_hold {
	int64_t id;
	const char *user;
	const char *room;
	int64_t from_ms;   /* inclusive */
	int64_t to_ms;     /* exclusive */
	const char *reason;
};

/*
 * Does the hold touch a bundle holding events in [min_ts_ms, max_ts_ms]
 * with this scope?  It does when the time ranges overlap and every
 * criterion the hold sets (user, room) is among the bundle's users/rooms.
 */
bool ret_hold_touches(const struct ret_hold *h, const struct ret_scope *s, int64_t min_ts_ms,
		      int64_t max_ts_ms);

/*
 * GDPR erasure for one user (whose events touch the given rooms):
 * returns NULL when the request may be honoured, else a static-lifetime
 * explanation written into why ("profile finra-4511 requires keeping
 * 2192 days", "no included profile honours erasure (include
 * regulations/gdpr.conf)").  Holds are checked by the caller (they need
 * the database).
 */
const char *ret_policy_erasure(const struct cfg *cfg, const char *user, const char *const *rooms,
			       size_t nrooms, char *why, size_t whylen);

/* `config check`: print the effective retention for every scope the
 * profiles name (as libconfig comments), or for one room/user when given. */
void ret_policy_print(const struct cfg *cfg, const char *room, const char *user, FILE *out);

#endif
