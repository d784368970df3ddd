/*
 * test_retention — the retention rules of retention/ret_policy.c: profile
 * scope, the longest retention wins, WORM, the exact expiry instant, legal
 * hold matching at its boundaries, and GDPR erasure decisions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ret_policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *all_rooms[1], *all_users[1];
static char *trading_rooms[] = { "ma-chan://contoso.com/trading-" };
static char *hr_users[] = { "sip:hr@contoso.com" };

static struct cfg_profile prof(char *name, int days, bool worm, bool erasure, char **rooms,
			       size_t nrooms, char **users, size_t nusers)
{
	struct cfg_profile p = { .name = name, .retention_days = days, .worm = worm,
				 .erasure = erasure, .rooms = rooms, .nrooms = nrooms,
				 .users = users, .nusers = nusers };
	return p;
}

static struct ret_scope scope(const char **rooms, size_t nr, const char **users, size_t nu)
{
	struct ret_scope s = { rooms, nr, users, nu };
	return s;
}

static void test_scope_and_longest(void **state)
{
	struct cfg_profile ps[3];
	struct cfg cfg;
	struct ret_decision d;
	const char *trading[] = { "ma-chan://contoso.com/trading-fx" };
	const char *lobby[] = { "ma-chan://contoso.com/lobby" };
	const char *hr[] = { "sip:hr@contoso.com" };
	const char *bob[] = { "sip:bob@contoso.com" };
	struct ret_scope s;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	ps[0] = prof("gdpr", 0, false, true, all_rooms, 0, all_users, 0);
	ps[1] = prof("mifid2", 1827, false, false, trading_rooms, 1, all_users, 0);
	ps[2] = prof("finra", 2192, true, false, all_rooms, 0, hr_users, 1);
	cfg.retention.profiles = ps;
	cfg.retention.nprofiles = 3;

	s = scope(lobby, 1, bob, 1);
	ret_policy_eval(&cfg, &s, &d);
	assert_true(d.applies);
	assert_int_equal(d.retention_days, 0);
	assert_string_equal(d.longest->name, "gdpr");
	assert_false(d.worm);

	s = scope(trading, 1, bob, 1);        /* room prefix matches mifid2 */
	ret_policy_eval(&cfg, &s, &d);
	assert_int_equal(d.retention_days, 1827);
	assert_string_equal(d.longest->name, "mifid2");

	s = scope(trading, 1, hr, 1);         /* both: the longest wins, WORM from finra */
	ret_policy_eval(&cfg, &s, &d);
	assert_int_equal(d.retention_days, 2192);
	assert_string_equal(d.longest->name, "finra");
	assert_true(d.worm);
	assert_string_equal(d.worm_profile->name, "finra");

	s = scope(NULL, 0, bob, 1);           /* IM only: no room, room-scoped profile not */
	ret_policy_eval(&cfg, &s, &d);
	assert_int_equal(d.retention_days, 0);

	cfg.retention.nprofiles = 0;          /* nothing included: never purged */
	ret_policy_eval(&cfg, &s, &d);
	assert_false(d.applies);
	assert_int_equal(ret_policy_until(&d, 0), INT64_MAX);
}

static void test_until_exact(void **state)
{
	struct ret_decision d = { .applies = true, .retention_days = 30 };

	(void)state;
	assert_int_equal(ret_policy_until(&d, 1000), 1000 + 30 * RET_DAY_MS);
	d.retention_days = 0;
	assert_int_equal(ret_policy_until(&d, 1000), 1000);
	d.retention_days = 36500;
	assert_int_equal(ret_policy_until(&d, INT64_MAX - 5), INT64_MAX);   /* saturates */
}

static void test_hold_boundaries(void **state)
{
	const char *rooms[] = { "ma-chan://x/a", "ma-chan://x/b" };
	const char *users[] = { "sip:u1@x", "sip:u2@x" };
	struct ret_scope s = scope(rooms, 2, users, 2);
	struct ret_hold h = { .id = 1, .user = "sip:u1@x", .from_ms = INT64_MIN, .to_ms = INT64_MAX,
			      .reason = "r" };

	(void)state;
	assert_true(ret_hold_touches(&h, &s, 100, 200));
	h.user = "sip:other@x";
	assert_false(ret_hold_touches(&h, &s, 100, 200));
	h.user = NULL;
	h.room = "ma-chan://x/b";
	assert_true(ret_hold_touches(&h, &s, 100, 200));
	h.user = "sip:u2@x";                        /* both criteria must hold */
	assert_true(ret_hold_touches(&h, &s, 100, 200));
	h.room = "ma-chan://x/zzz";
	assert_false(ret_hold_touches(&h, &s, 100, 200));
	h.room = NULL;
	/* [from, to) against [min, max] */
	h.from_ms = 200; h.to_ms = 300;
	assert_true(ret_hold_touches(&h, &s, 100, 200));    /* max == from */
	h.from_ms = 201;
	assert_false(ret_hold_touches(&h, &s, 100, 200));
	h.from_ms = 0; h.to_ms = 100;
	assert_false(ret_hold_touches(&h, &s, 100, 200));   /* to is exclusive */
	h.to_ms = 101;
	assert_true(ret_hold_touches(&h, &s, 100, 200));
}

static void test_erasure(void **state)
{
	struct cfg_profile ps[2];
	struct cfg cfg;
	char why[256];
	const char *rooms[] = { "ma-chan://contoso.com/trading-fx" };

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.retention.profiles = ps;
	assert_non_null(ret_policy_erasure(&cfg, "sip:a@x", NULL, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "no included profile honours erasure"));

	ps[0] = prof("gdpr", 0, false, true, all_rooms, 0, all_users, 0);
	cfg.retention.nprofiles = 1;
	assert_null(ret_policy_erasure(&cfg, "sip:a@x", NULL, 0, why, sizeof(why)));

	ps[1] = prof("mifid2", 1827, false, false, trading_rooms, 1, all_users, 0);
	cfg.retention.nprofiles = 2;
	assert_null(ret_policy_erasure(&cfg, "sip:a@x", NULL, 0, why, sizeof(why)));
	assert_non_null(ret_policy_erasure(&cfg, "sip:a@x", rooms, 1, why, sizeof(why)));
	assert_string_equal(why, "profile mifid2 requires keeping 1827 days");

	ps[1] = prof("finra", 2192, true, false, all_rooms, 0, hr_users, 1);
	assert_null(ret_policy_erasure(&cfg, "sip:a@x", rooms, 1, why, sizeof(why)));
	assert_non_null(ret_policy_erasure(&cfg, "sip:hr@contoso.com", NULL, 0, why, sizeof(why)));
	assert_string_equal(why, "profile finra requires keeping 2192 days in WORM form");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scope_and_longest),
		cmocka_unit_test(test_until_exact),
		cmocka_unit_test(test_hold_boundaries),
		cmocka_unit_test(test_erasure),
	};
	(void)N(tests);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
