/*
 * ret_policy — see ret_policy.h.
 */
#include "ret_policy.h"

#include <inttypes.h>
#include <string.h>

static bool any_prefix(const char *const *have, size_t nhave, char *const *prefixes, size_t np)
{
	for (size_t i = 0; i < nhave; i++)
		for (size_t j = 0; j < np; j++)
			if (prefixes[j][0] && strncmp(have[i], prefixes[j], strlen(prefixes[j])) == 0)
				return true;
	return false;
}

static bool any_equal(const char *const *have, size_t nhave, char *const *want, size_t nw)
{
	for (size_t i = 0; i < nhave; i++)
		for (size_t j = 0; j < nw; j++)
			if (strcmp(have[i], want[j]) == 0)
				return true;
	return false;
}

bool ret_profile_applies(const struct cfg_profile *p, const struct ret_scope *s)
{
	bool room_ok = p->nrooms == 0 || any_prefix(s->rooms, s->nrooms, p->rooms, p->nrooms);
	bool user_ok = p->nusers == 0 || any_equal(s->users, s->nusers, p->users, p->nusers);

	return room_ok && user_ok;
}

void ret_policy_eval(const struct cfg *cfg, const struct ret_scope *s, struct ret_decision *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < cfg->retention.nprofiles; i++) {
		const struct cfg_profile *p = &cfg->retention.profiles[i];

		if (!ret_profile_applies(p, s))
			continue;
		if (!d->applies || p->retention_days > d->retention_days) {
			d->retention_days = p->retention_days;
			d->longest = p;
		}
		d->applies = true;
		if (p->worm && !d->worm) {
			d->worm = true;
			d->worm_profile = p;
		}
	}
}

int64_t ret_policy_until(const struct ret_decision *d, int64_t max_ts_ms)
{
	int64_t add;

	if (!d->applies)
		return INT64_MAX;
	add = (int64_t)d->retention_days * RET_DAY_MS;
	if (max_ts_ms > INT64_MAX - add)
		return INT64_MAX;
	return max_ts_ms + add;
}

static bool has(const char *const *v, size_t n, const char *x)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], x) == 0)
			return true;
	return false;
}

bool ret_hold_touches(const struct ret_hold *h, const struct ret_scope *s, int64_t min_ts_ms,
		      int64_t max_ts_ms)
{
	/* [min, max] of the bundle against [from, to) of the hold. */
	if (max_ts_ms < h->from_ms || min_ts_ms >= h->to_ms)
		return false;
	if (h->user && !has(s->users, s->nusers, h->user))
		return false;
	if (h->room && !has(s->rooms, s->nrooms, h->room))
		return false;
	return true;
}

const char *ret_policy_erasure(const struct cfg *cfg, const char *user, const char *const *rooms,
			       size_t nrooms, char *why, size_t whylen)
{
	const char *users[1] = { user };
	const char *none[1] = { "" };
	struct ret_scope s = {
		.rooms = nrooms ? rooms : none, .nrooms = nrooms ? nrooms : 1,
		.users = users, .nusers = 1,
	};
	bool honoured = false;

	for (size_t i = 0; i < cfg->retention.nprofiles; i++) {
		const struct cfg_profile *p = &cfg->retention.profiles[i];

		if (!ret_profile_applies(p, &s))
			continue;
		if (!p->erasure && (p->retention_days > 0 || p->worm)) {
			snprintf(why, whylen, "profile %s requires keeping %d days%s", p->name,
				 p->retention_days, p->worm ? " in WORM form" : "");
			return why;
		}
		honoured |= p->erasure;
	}
	if (!honoured) {
		snprintf(why, whylen, "no included profile honours erasure (include "
			 "regulations/gdpr.conf, or a profile with erasure = true, for this user)");
		return why;
	}
	return NULL;
}

static void print_line(const struct cfg *cfg, const char *label, const struct ret_scope *s,
		       const char *user, FILE *out)
{
	struct ret_decision d;
	char why[256];
	const char *refusal;

	ret_policy_eval(cfg, s, &d);
	fprintf(out, "#   %s: ", label);
	if (!d.applies)
		fprintf(out, "no profile applies: bundles are kept (never purged)");
	else
		fprintf(out, "%d days (%s)", d.retention_days, d.longest->name);
	if (d.worm)
		fprintf(out, ", WORM (%s)", d.worm_profile->name);
	refusal = ret_policy_erasure(cfg, user, s->rooms, s->nrooms, why, sizeof(why));
	fprintf(out, ", erasure %s%s\n", refusal ? "refused: " : "honoured",
		refusal ? refusal : "");
}

void ret_policy_print(const struct cfg *cfg, const char *room, const char *user, FILE *out)
{
	const char *none[1] = { "" };
	char label[2400];

	fprintf(out, "# Effective retention (the longest applicable profile wins; legal holds "
		"override all):\n");
	if (room || user) {
		const char *r[1] = { room ? room : "" }, *u[1] = { user ? user : "" };
		struct ret_scope s = { r, 1, u, 1 };

		snprintf(label, sizeof(label), "room %s, user %s", room ? room : "(any other)",
			 user ? user : "(any other)");
		print_line(cfg, label, &s, u[0], out);
		return;
	}
	{
		struct ret_scope s = { none, 1, none, 1 };

		print_line(cfg, "any room, any user", &s, "", out);
	}
	for (size_t i = 0; i < cfg->retention.nprofiles; i++) {
		const struct cfg_profile *p = &cfg->retention.profiles[i];

		for (size_t j = 0; j < p->nrooms; j++) {
			const char *r[1] = { p->rooms[j] };
			struct ret_scope s = { r, 1, none, 1 };

			snprintf(label, sizeof(label), "rooms %s*", p->rooms[j]);
			print_line(cfg, label, &s, "", out);
		}
		for (size_t j = 0; j < p->nusers; j++) {
			const char *u[1] = { p->users[j] };
			struct ret_scope s = { none, 1, u, 1 };

			snprintf(label, sizeof(label), "user %s", p->users[j]);
			print_line(cfg, label, &s, p->users[j], out);
		}
	}
}
