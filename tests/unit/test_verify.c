/*
 * test_verify — the pieces of `chatvault verify` that need no files:
 * the interval set (against a bitmap oracle), the event-id set, the
 * string map, the line splitter, and the strict tombstone parser
 * (docs/FORMATS.md §2) with one malformed variant per rule.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ret_verify.h"
#include "ret_vint.h"
#include "ret_vseq.h"

/* --- interval set ---------------------------------------------------------------- */

static void assert_ivs(const struct ret_vseq *s, const int64_t *want, size_t n)
{
	assert_int_equal(s->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->iv[i].a, want[2 * i]);
		assert_int_equal(s->iv[i].b, want[2 * i + 1]);
	}
}

static void test_vseq_basic(void **state)
{
	struct ret_vseq s = { 0 };
	int64_t a, b;

	(void)state;
	assert_false(ret_vseq_contains(&s, 1));
	assert_false(ret_vseq_overlap(&s, 0, 100, &a, &b));
	assert_true(ret_vseq_hole(&s, 5, 9, &a, &b));
	assert_int_equal(a, 5);
	assert_int_equal(b, 9);
	assert_int_equal(ret_vseq_add(&s, 5, 4), -EINVAL);

	/* In order: adjacent points merge into one interval. */
	for (int64_t x = 1; x <= 1000; x++)
		assert_int_equal(ret_vseq_add(&s, x, x), 0);
	assert_ivs(&s, (int64_t[]){ 1, 1000 }, 1);
	/* A gap, then points that fill it from both sides. */
	assert_int_equal(ret_vseq_add(&s, 1006, 1010), 0);
	assert_ivs(&s, (int64_t[]){ 1, 1000, 1006, 1010 }, 2);
	assert_true(ret_vseq_hole(&s, 1, 1010, &a, &b));
	assert_int_equal(a, 1001);
	assert_int_equal(b, 1005);
	assert_int_equal(ret_vseq_add(&s, 1001, 1001), 0);
	assert_int_equal(ret_vseq_add(&s, 1005, 1005), 0);
	assert_ivs(&s, (int64_t[]){ 1, 1001, 1005, 1010 }, 2);
	assert_int_equal(ret_vseq_add(&s, 1002, 1004), 0);
	assert_ivs(&s, (int64_t[]){ 1, 1010 }, 1);
	/* Duplicates say so and change nothing. */
	assert_int_equal(ret_vseq_add(&s, 7, 7), 1);
	assert_int_equal(ret_vseq_add(&s, 1000, 1020), 1);
	assert_ivs(&s, (int64_t[]){ 1, 1020 }, 1);
	assert_int_equal(ret_vseq_count(&s), 1020);
	/* Out of order, below everything, and a span swallowing several. */
	assert_int_equal(ret_vseq_add(&s, -50, -40), 0);
	assert_int_equal(ret_vseq_add(&s, -30, -20), 0);
	assert_int_equal(ret_vseq_add(&s, -10, -5), 0);
	assert_ivs(&s, (int64_t[]){ -50, -40, -30, -20, -10, -5, 1, 1020 }, 4);
	assert_int_equal(ret_vseq_add(&s, -45, -8), 1);
	assert_ivs(&s, (int64_t[]){ -50, -5, 1, 1020 }, 2);
	assert_int_equal(ret_vseq_add(&s, -4, 0), 0);
	assert_ivs(&s, (int64_t[]){ -50, 1020 }, 1);
	assert_true(ret_vseq_overlap(&s, 1000, 2000, &a, &b));
	assert_int_equal(a, 1000);
	assert_int_equal(b, 1020);
	assert_false(ret_vseq_hole(&s, -50, 1020, &a, &b));
	/* The extremes do not overflow. */
	assert_int_equal(ret_vseq_add(&s, INT64_MAX - 1, INT64_MAX), 0);
	assert_int_equal(ret_vseq_add(&s, INT64_MIN, INT64_MIN + 1), 0);
	assert_true(ret_vseq_hole(&s, INT64_MIN, INT64_MAX, &a, &b));
	assert_int_equal(a, INT64_MIN + 2);
	assert_int_equal(b, -51);
	assert_true(ret_vseq_hole(&s, 1021, INT64_MAX, &a, &b));
	assert_int_equal(b, INT64_MAX - 2);
	assert_int_equal(ret_vseq_add(&s, INT64_MIN, INT64_MAX), 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(ret_vseq_count(&s), INT64_MAX);
	ret_vseq_free(&s);
	ret_vseq_free(&s);
	ret_vseq_free(NULL);
}

/* Random ranges against a bitmap: contents, return values, holes. */
static void test_vseq_random(void **state)
{
	enum { N = 4096 };
	static bool bit[N];
	struct ret_vseq s = { 0 };
	uint64_t x = 0x9e3779b97f4a7c15u;

	(void)state;
	memset(bit, 0, sizeof(bit));
	for (int round = 0; round < 3000; round++) {
		int64_t a, b, ha, hb;
		bool any = false;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		a = (int64_t)(x % N);
		b = a + (int64_t)((x >> 20) % (round < 2000 ? 4 : 40));
		if (b >= N)
			b = N - 1;
		for (int64_t i = a; i <= b; i++) {
			any |= bit[i];
			bit[i] = true;
		}
		assert_int_equal(ret_vseq_add(&s, a, b), any ? 1 : 0);
		if (round % 100)
			continue;
		/* Normal form and equality with the bitmap. */
		for (size_t i = 0; i + 1 < s.n; i++)
			assert_true(s.iv[i].b + 1 < s.iv[i + 1].a);
		for (int64_t i = 0; i < N; i++)
			assert_int_equal(ret_vseq_contains(&s, i), bit[i]);
		/* Holes enumerate exactly the unset bits. */
		for (int64_t y = 0; y < N && ret_vseq_hole(&s, y, N - 1, &ha, &hb); y = hb + 1) {
			for (int64_t i = y; i < ha; i++)
				assert_true(bit[i]);
			for (int64_t i = ha; i <= hb; i++)
				assert_false(bit[i]);
			assert_true(hb == N - 1 || bit[hb + 1]);
		}
	}
	ret_vseq_free(&s);
}

/* --- id set, map ------------------------------------------------------------------- */

static void test_vids(void **state)
{
	struct ret_vids s = { 0 };
	uint8_t id[RET_VIDS_LEN];
	uint32_t holder = 0;

	(void)state;
	assert_int_equal(ret_vids_parse_uuid("0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e11", 36, id), 0);
	assert_int_equal(id[0], 0x01);
	assert_int_equal(id[15], 0x11);
	assert_int_equal(ret_vids_parse_uuid("0192F0C4-6C1E-7D3A-9B1E-2F6A5C0D9E11", 36, id), 0);
	assert_int_equal(ret_vids_parse_uuid("0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e1", 35, id), -EINVAL);
	assert_int_equal(ret_vids_parse_uuid("0192f0c4x6c1e-7d3a-9b1e-2f6a5c0d9e11", 36, id), -EINVAL);
	assert_int_equal(ret_vids_parse_uuid("0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9eg1", 36, id), -EINVAL);

	/* Ids that share their first bytes (UUIDv7 timestamps) still spread. */
	for (uint32_t i = 0; i < 100000; i++) {
		memset(id, 0x01, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		assert_int_equal(ret_vids_add(&s, id, i % 7 + 1, NULL), 0);
	}
	assert_int_equal(s.n, 100000);
	assert_true(s.n <= s.cap / 4 * 3);
	for (uint32_t i = 0; i < 100000; i += 997) {
		memset(id, 0x01, sizeof(id));
		memcpy(id + 12, &i, sizeof(i));
		assert_int_equal(ret_vids_add(&s, id, 9, &holder), 1);
		assert_int_equal(holder, i % 7 + 1);
	}
	assert_int_equal(ret_vids_add(&s, id, 0, NULL), -EINVAL);
	assert_int_equal(s.n, 100000);
	ret_vids_free(&s);
	ret_vids_free(NULL);
}

static void test_vmap(void **state)
{
	struct ret_vmap m = { 0 };
	struct ret_vmap_ent **v;
	char key[32];

	(void)state;
	assert_null(ret_vmap_slot(&m, "x", false));
	for (int i = 0; i < 500; i++) {
		void **slot;

		snprintf(key, sizeof(key), "server%03d", 499 - i);
		slot = ret_vmap_slot(&m, key, true);
		assert_non_null(slot);
		assert_null(*slot);
		*slot = (void *)(intptr_t)(i + 1);
	}
	assert_int_equal(m.n, 500);
	assert_ptr_equal(*ret_vmap_slot(&m, "server499", false), (void *)(intptr_t)1);
	assert_ptr_equal(*ret_vmap_slot(&m, "server499", true), (void *)(intptr_t)1);
	assert_int_equal(m.n, 500);
	v = ret_vmap_sorted(&m);
	assert_non_null(v);
	assert_string_equal(v[0]->key, "server000");
	assert_string_equal(v[499]->key, "server499");
	free(v);
	ret_vmap_free(&m, NULL);
	v = ret_vmap_sorted(&m);
	assert_non_null(v);
	free(v);
}

/* --- line splitter ------------------------------------------------------------------ */

struct lines_log {
	char text[4096];
	int64_t long_lines, last_lineno;
};

static int log_line(void *arg, const char *line, size_t len, int64_t lineno)
{
	struct lines_log *l = arg;
	size_t n = strlen(l->text);

	if (!line) {
		l->long_lines++;
		snprintf(l->text + n, sizeof(l->text) - n, "<long %" PRId64 ">|", lineno);
	} else {
		snprintf(l->text + n, sizeof(l->text) - n, "%" PRId64 ":%.*s|", lineno, (int)len,
			 line);
	}
	l->last_lineno = lineno;
	return 0;
}

static void test_vlines(void **state)
{
	static const char text[] = "alpha\nbeta\n\ngamma delta\nomega\n";
	struct lines_log log = { 0 };
	struct ret_lines l = { .fn = log_line, .arg = &log };

	(void)state;
	/* Every split of the input into two chunks gives the same lines. */
	for (size_t cut = 0; cut <= sizeof(text) - 1; cut++) {
		memset(&log, 0, sizeof(log));
		l = (struct ret_lines){ .fn = log_line, .arg = &log };
		assert_int_equal(ret_lines_feed(&l, text, cut), 0);
		assert_int_equal(ret_lines_feed(&l, text + cut, sizeof(text) - 1 - cut), 0);
		assert_string_equal(log.text, "1:alpha|2:beta|3:|4:gamma delta|5:omega|");
		assert_int_equal(l.part.len, 0);
		ret_lines_free(&l);
	}
	/* An unterminated tail stays in part. */
	memset(&log, 0, sizeof(log));
	l = (struct ret_lines){ .fn = log_line, .arg = &log };
	assert_int_equal(ret_lines_feed(&l, "a\nbc", 4), 0);
	assert_string_equal(log.text, "1:a|");
	assert_int_equal(l.part.len, 2);
	ret_lines_free(&l);
}

static void test_vlines_long(void **state)
{
	size_t chunk = 1024 * 1024;
	char *big = malloc(chunk);
	struct lines_log log = { 0 };
	struct ret_lines l = { .fn = log_line, .arg = &log };

	(void)state;
	assert_non_null(big);
	memset(big, 'x', chunk);
	assert_int_equal(ret_lines_feed(&l, "short\n", 6), 0);
	/* RET_LINE_MAX + a bit, in 1 MiB chunks, then the rest of it and a
	 * normal line: one "long" call, the line after it numbered 3. */
	for (size_t done = 0; done <= RET_LINE_MAX; done += chunk)
		assert_int_equal(ret_lines_feed(&l, big, chunk), 0);
	assert_int_equal(ret_lines_feed(&l, "tail\nnext\n", 10), 0);
	assert_int_equal(log.long_lines, 1);
	assert_string_equal(log.text, "1:short|<long 2>|3:next|");
	ret_lines_free(&l);
	free(big);
}

/* --- tombstones ---------------------------------------------------------------------- */

#define H64A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define H64C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static const char good_tomb[] =
	"{\"format\":\"chatvault-tombstone/1\","
	"\"bundle\":\"archive-0000000000000001-0000000000005000.tar.zst\","
	"\"bundle_sha256\":\"" H64A "\",\"adapter\":\"archive\",\"batch_no\":2,"
	"\"first_staging_id\":1,\"last_staging_id\":5000,\"event_count\":4990,"
	"\"staging_ids\":[[1,2000],[2011,5000]],"
	"\"min_ts\":\"2019-01-01T00:00:00.000Z\",\"max_ts\":\"2019-01-01T01:23:20.000Z\","
	"\"manifest_sha256\":\"" H64B "\",\"prev_manifest_sha256\":\"" H64C "\","
	"\"sources\":{\"chat02\":[[1,990]],\"chat01\":[[1,3000],[3005,4004]]},"
	"\"purged_at\":\"2026-11-21T10:00:00.000Z\","
	"\"reason\":\"retention: finra-4511 2192 days elapsed\",\"audit_id\":42}";

static const char good_name[] = "archive-0000000000000001-0000000000005000.tombstone.json";

static void test_tomb_good(void **state)
{
	struct ret_verify_tomb t;
	char err[256];

	(void)state;
	assert_int_equal(ret_verify_tomb_parse(good_tomb, strlen(good_tomb), good_name, &t, err,
					       sizeof(err)), 0);
	assert_string_equal(t.adapter, "archive");
	assert_int_equal(t.batch_no, 2);
	assert_int_equal(t.first_staging_id, 1);
	assert_int_equal(t.last_staging_id, 5000);
	assert_int_equal(t.event_count, 4990);
	assert_int_equal(t.nstaging, 2);
	assert_int_equal(t.staging_ids[1].a, 2011);
	assert_string_equal(t.manifest_sha256, H64B);
	assert_string_equal(t.prev_manifest_sha256, H64C);
	assert_int_equal(t.nsources, 2);
	assert_string_equal(t.sources[0].server, "chat01");   /* sorted */
	assert_int_equal(t.sources[0].n, 2);
	assert_int_equal(t.sources[0].r[1].b, 4004);
	assert_string_equal(t.purged_at, "2026-11-21T10:00:00.000Z");
	assert_string_equal(t.reason, "retention: finra-4511 2192 days elapsed");
	assert_int_equal(t.audit_id, 42);
	ret_verify_tomb_free(&t);
	/* Without a file name the name rule is not applied. */
	assert_int_equal(ret_verify_tomb_parse(good_tomb, strlen(good_tomb), NULL, &t, err,
					       sizeof(err)), 0);
	ret_verify_tomb_free(&t);
	ret_verify_tomb_free(NULL);
}

/* good_tomb with the first occurrence of from replaced by to. */
static char *variant(const char *from, const char *to)
{
	const char *p = strstr(good_tomb, from);
	size_t n = strlen(good_tomb) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);

	assert_non_null(p);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(p - good_tomb), good_tomb, to, p + strlen(from));
	return out;
}

static void test_tomb_malformed(void **state)
{
	static const struct {
		const char *from, *to, *why;
	} cases[] = {
		{ "chatvault-tombstone/1", "chatvault-tombstone/2", "\"format\"" },
		{ "\"format\":\"chatvault-tombstone/1\",", "", "\"format\": missing" },
		{ "\"audit_id\":42", "\"audit_id\":\"42\"", "\"audit_id\": not an integer" },
		{ "\"audit_id\":42", "\"audit_id\":42,\"extra\":1", "unknown key \"extra\"" },
		{ "\"audit_id\":42", "\"audit_id\":42,\"audit_id\":43", "invalid JSON" },
		{ ",\"reason\":\"retention: finra-4511 2192 days elapsed\"", "",
		  "\"reason\": missing" },
		{ "\"bundle_sha256\":\"" H64A, "\"bundle_sha256\":\"" H64A "a", "\"bundle_sha256\"" },
		{ "\"manifest_sha256\":\"b", "\"manifest_sha256\":\"B", "\"manifest_sha256\"" },
		{ "\"prev_manifest_sha256\":\"cc", "\"prev_manifest_sha256\":\"",
		  "\"prev_manifest_sha256\"" },
		{ "\"batch_no\":2", "\"batch_no\":0", "\"batch_no\"" },
		{ "\"batch_no\":2", "\"batch_no\":1", "not \"\" for batch 1" },
		{ "\"last_staging_id\":5000", "\"last_staging_id\":0", "\"last_staging_id\"" },
		{ "\"event_count\":4990", "\"event_count\":4991", "\"staging_ids\"" },
		{ "[[1,2000],[2011,5000]]", "[[1,2000],[1500,5000]]", "out of order" },
		{ "[[1,2000],[2011,5000]]", "[[1,2000],[2011,4999]]", "\"staging_ids\"" },
		{ "[[1,2000],[2011,5000]]", "[[1,2000],[2011]]", "not [a, b]" },
		{ "\"min_ts\":\"2019-01-01T00:00:00.000Z\"", "\"min_ts\":\"2019-01-01T00:00:00Z\"",
		  "not canonical" },
		{ "\"max_ts\":\"2019-01-01T01:23:20.000Z\"", "\"max_ts\":\"2018-01-01T01:23:20.000Z\"",
		  "after max_ts" },
		{ "\"purged_at\":\"2026-11-21T10:00:00.000Z\"",
		  "\"purged_at\":\"2026-11-21T10:00:00.000+01:00\"", "\"purged_at\"" },
		{ "[[1,3000],[3005,4004]]", "[[3005,4004],[1,3000]]", "sources.chat01" },
		{ "\"chat02\":[[1,990]]", "\"chat02\":[]", "empty" },
		{ "\"chat02\":[[1,990]]", "\"chat/02\":[[1,990]]", "source.server" },
		{ "\"chat02\":[[1,990]]", "\"chat02\":[[1,9990]]", "seqs for" },
		{ "\"adapter\":\"archive\"", "\"adapter\":\"arch/ive\"", "\"adapter\"" },
		{ "\"bundle\":\"archive-", "\"bundle\":\"archive2-", "\"bundle\"" },
		{ "\"sources\":{", "\"sources\":[{", "invalid JSON" },
	};
	struct ret_verify_tomb t;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = variant(cases[i].from, cases[i].to);
		int rc = ret_verify_tomb_parse(text, strlen(text), good_name, &t, err, sizeof(err));

		if (rc != -EBADMSG || !strstr(err, cases[i].why))
			fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err,
				 cases[i].why);
		assert_int_equal(t.nsources, 0);  /* left empty */
		free(text);
	}
	/* The tombstone must sit under its bundle's name. */
	assert_int_equal(ret_verify_tomb_parse(good_tomb, strlen(good_tomb),
					       "archive-0000000000000001-0000000000005001"
					       ".tombstone.json", &t, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "file name"));
	assert_int_equal(ret_verify_tomb_parse("[]", 2, NULL, &t, err, sizeof(err)), -EBADMSG);
	assert_int_equal(ret_verify_tomb_parse("", 0, NULL, &t, err, sizeof(err)), -EBADMSG);
}

static void test_vrange(void **state)
{
	char buf[RET_VRANGE_LEN];

	(void)state;
	assert_string_equal(ret_vrange(buf, 7, 7), "7");
	assert_string_equal(ret_vrange(buf, 1005, 1009), "1005..1009");
	assert_string_equal(ret_vrange(buf, INT64_MIN, INT64_MAX),
			    "-9223372036854775808..9223372036854775807");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vseq_basic),
		cmocka_unit_test(test_vseq_random),
		cmocka_unit_test(test_vids),
		cmocka_unit_test(test_vmap),
		cmocka_unit_test(test_vlines),
		cmocka_unit_test(test_vlines_long),
		cmocka_unit_test(test_tomb_good),
		cmocka_unit_test(test_tomb_malformed),
		cmocka_unit_test(test_vrange),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
