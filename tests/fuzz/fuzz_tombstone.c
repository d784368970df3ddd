/*
 * fuzz_tombstone — the strict tombstone parser of `chatvault verify`
 * (retention/ret_vtomb.c, ret_verify_tomb_parse()) on hostile JSON.
 *
 * Input: the bytes of a *.tombstone.json (not NUL-terminated).  Parsed
 * without a file name and with the name of the example in docs/FORMATS.md
 * §2, so both the content rules and the name rule run.
 *
 * Contract checks (abort): 0, -EBADMSG with a reason, or -ENOMEM; a
 * refused tombstone is left empty; an accepted one keeps the invariants
 * ret_verify.h promises (ranges ascending and disjoint from first to last,
 * sources sorted by server, batch 1 without a previous manifest).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ret_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_tombstone"
#include "fuzz_check.h"

static void ranges_ok(const struct ret_verify_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		CHECK(r[i].a >= 0 && r[i].a <= r[i].b);
		CHECK(i == 0 || r[i].a > r[i - 1].b);
	}
}

static void one(const uint8_t *data, size_t size, const char *file_name)
{
	struct ret_verify_tomb t;
	char err[512];
	int rc;

	err[0] = 'x';
	rc = ret_verify_tomb_parse((const char *)data, size, file_name, &t, err, sizeof(err));
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_tombstone: %s: %d%s%s\n", file_name ? file_name : "(no name)",
			rc, rc ? ": " : "", rc ? err : "");
	if (rc != 0) {
		CHECK(rc == -EBADMSG || rc == -ENOMEM);
		CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
		CHECK(!t.staging_ids && !t.sources && !t.reason && t.nsources == 0);
		return;
	}
	CHECK(t.batch_no >= 1 && t.first_staging_id <= t.last_staging_id);
	CHECK(t.nstaging > 0 && t.staging_ids[0].a == t.first_staging_id &&
	      t.staging_ids[t.nstaging - 1].b == t.last_staging_id);
	ranges_ok(t.staging_ids, t.nstaging);
	CHECK(t.batch_no != 1 || t.prev_manifest_sha256[0] == '\0');
	CHECK(strlen(t.min_ts) == 24 && strcmp(t.min_ts, t.max_ts) <= 0);
	CHECK(t.reason != NULL && strlen(t.bundle) > 8);
	for (size_t i = 0; i < t.nsources; i++) {
		CHECK(t.sources[i].server && t.sources[i].n > 0);
		CHECK(i == 0 || strcmp(t.sources[i - 1].server, t.sources[i].server) < 0);
		ranges_ok(t.sources[i].r, t.sources[i].n);
	}
	ret_verify_tomb_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, NULL);
	one(data, size, "archive-0000000000000001-0000000000005000.tombstone.json");
	return 0;
}
