/*
 * fuzz_bundle — the archive bundle reader and verifier (adapters/bundle.c:
 * libarchive's tar reader and zstd decoder, then the manifest checks) on
 * hostile files, as `chatvault verify` and `export` meet them.
 *
 * Input: the bytes of a bundle, or "tar\n" followed by an uncompressed tar
 * that this target compresses with zstd first: mutations of compressed
 * bytes rarely get past the decoder, so the tar headers, member order and
 * manifest checks are reached through that second form (the seeds have
 * both).  The bytes are written to a fresh "in-XXXXXX.tar.zst" in a
 * private directory under /tmp (fuzz_tmp.h), then
 *   1. adp_bundle_verify_info();  when the only complaint is that the file
 *      name does not match the manifest (it never does: the name is
 *      random), the file is renamed to the name the manifest implies and
 *      verified again, which must then succeed: so sound bundles reach the
 *      end of the verifier too;
 *   2. adp_bundle_read() with a callback that checks the chunk contract of
 *      bundle.h (offsets, lengths, exactly one last call per member) and
 *      stops the read after a number of chunks taken from the input.
 *
 * Contract checks (abort): results are 0 or negative; a failure leaves a
 * non-empty reason; a success has the manifest's hash.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "fuzz_tmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_bundle"
#include "fuzz_check.h"

#define STOPPED 4242   /* what our callback returns to stop the read */

struct walk {
	char name[FUZZ_PATH_MAX];
	bool in_member;
	int64_t next_offset;
	unsigned chunks, stop_after;   /* stop_after 0: never */
};

static int walk_cb(void *arg, const struct adp_bundle_chunk *c)
{
	struct walk *w = arg;

	CHECK(c->name != NULL && c->size >= 0 && c->len <= ADP_BUNDLE_CHUNK);
	if (!w->in_member) {
		snprintf(w->name, sizeof(w->name), "%s", c->name);
		w->in_member = true;
		w->next_offset = 0;
	}
	CHECK(strncmp(w->name, c->name, sizeof(w->name) - 1) == 0);
	CHECK(c->offset == w->next_offset);
	if (c->last) {
		CHECK(c->len == 0 && c->offset == c->size);
		w->in_member = false;
	} else {
		CHECK(c->len > 0 && c->data != NULL && c->offset + (int64_t)c->len <= c->size);
		w->next_offset += (int64_t)c->len;
	}
	if (w->stop_after && ++w->chunks == w->stop_after)
		return STOPPED;
	return 0;
}

static bool is_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

static void verify(char *path)
{
	struct adp_bundle_info info;
	char err[1024], want[FUZZ_PATH_MAX + 300], *slash;
	size_t len;
	int rc;

	err[0] = 'x';
	rc = adp_bundle_verify_info(path, &info, err, sizeof(err));
	if (fuzz_verbose())
		fprintf(stderr, "fuzz_bundle: verify %d%s%s\n", rc, rc ? ": " : "", rc ? err : "");
	if (rc == 0) {
		CHECK(is_hex64(info.manifest_sha256));
		return;
	}
	CHECK(rc < 0 && err[0] != '\0' && memchr(err, '\0', sizeof(err)));
	/* The whole prefix: the input can put these words in a member name. */
	snprintf(want, sizeof(want), "bundle %s: file name does not match its manifest (", path);
	if (rc != -EBADMSG || strncmp(err, want, strlen(want)) != 0)
		return;
	/* Everything else held: give it the name the manifest wants. */
	slash = strrchr(path, '/');
	CHECK(slash != NULL);
	snprintf(want, sizeof(want), "%.*s/%s-%016" PRId64 "-%016" PRId64 ".tar.zst",
		 (int)(slash - path), path, info.adapter, info.first_staging_id,
		 info.last_staging_id);
	len = strlen(want);
	if (len >= FUZZ_PATH_MAX || strchr(want + (slash - path) + 1, '/'))
		return;
	CHECK(rename(path, want) == 0);
	memcpy(path, want, len + 1);
	rc = adp_bundle_verify_info(path, &info, err, sizeof(err));
	if (fuzz_verbose() || rc != 0)
		fprintf(stderr, "fuzz_bundle: verify as %s: %d%s%s\n", strrchr(path, '/') + 1, rc,
			rc ? ": " : "", rc ? err : "");
	CHECK(rc == 0 && is_hex64(info.manifest_sha256));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w = { .stop_after = size ? data[size - 1] % 8 : 0 };
	char path[FUZZ_PATH_MAX], err[1024];
	int rc;

	fuzz_tmp_write_tar_zst(data, size, path);
	verify(path);
	err[0] = 'x';
	rc = adp_bundle_read(path, walk_cb, &w, err, sizeof(err));
	CHECK(rc == 0 || rc == STOPPED || rc < 0);
	if (rc != 0)
		CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
	if (rc == 0)
		CHECK(!w.in_member);
	unlink(path);
	return 0;
}
