/*
 * jsonl — the JSON Lines adapter, for SIEM pipelines (Splunk, Elastic,
 * Sentinel … tail a directory of .jsonl files).
 *
 * One file per batch, <dir>/YYYY/MM/DD/<name>-<first>-<last>.jsonl (UTC day
 * of the batch's first event, staging ids %016"PRId64"), holding each event's
 * canonical JSON line (adp_event.json, byte for byte) followed by "\n", in
 * staging order.  The file is published with cv_write_file_atomic, so a
 * reader never sees a partial file and a redelivered batch replaces the same
 * name with the same bytes.  out_chain = SHA-256(chain_prev + hex SHA-256 of
 * the file).
 *
 * The directory and publish helpers are repeated in xml.c and eml.c on
 * purpose: each adapter is one self-contained translation unit.
 */
#include "adapter.h"
#include "builtin.h"
#include "adp_common.h"
#include "cv_time.h"
#include "cv_util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct adp_key jsonl_keys[] = {
	{ "dir", ADP_KEY_STRING, NULL, "output directory (default <data dir>/jsonl)" },
	{ NULL, ADP_KEY_STRING, NULL, NULL },
};

struct jsonl_state {
	char *dir;   /* base output directory */
	char *name;  /* instance name, made safe for file names */
};

static void jsonl_close(void *state)
{
	struct jsonl_state *st = state;

	if (!st)
		return;
	free(st->dir);
	free(st->name);
	free(st);
}

static int jsonl_init(const struct adp_env *env, void **state, char *err, size_t errlen)
{
	struct jsonl_state *st = calloc(1, sizeof(*st));

	*state = NULL;
	if (st) {
		st->dir = adp_resolve_dir(env, "jsonl");
		st->name = adp_safe_name(env->name, "jsonl");
	}
	if (!st || !st->dir || !st->name) {
		jsonl_close(st);
		snprintf(err, errlen, "jsonl: out of memory");
		return -ENOMEM;
	}
	*state = st;
	return 0;
}

/*
 * A line must be one non-empty JSON text without a line break, or the file
 * stops being JSON Lines; such an event breaks the event contract, so it is
 * blamed (quarantined) rather than written.
 */
static enum adp_result check_events(struct adp_batch *b)
{
	for (size_t i = 0; i < b->nevents; i++) {
		const struct adp_event *e = &b->events[i];
		const char *why = NULL;

		if (!e->json || e->json_len == 0)
			why = "event has no canonical json";
		else if (memchr(e->json, '\n', e->json_len) || memchr(e->json, '\r', e->json_len))
			why = "canonical json contains a line break";
		else if (i == 0 && (e->ts_ms < CV_TIME_MIN_MS || e->ts_ms > CV_TIME_MAX_MS))
			why = "timestamp out of range";
		if (why) {
			snprintf(b->reason, sizeof(b->reason), "jsonl: staging id %" PRId64 ": %s",
				 e->staging_id, why);
			b->fail_staging_id = e->staging_id;
			return ADP_FAIL;
		}
	}
	return ADP_OK;
}

static enum adp_result jsonl_deliver(void *state, struct adp_batch *b)
{
	const struct jsonl_state *st = state;
	struct cv_buf data = { 0 };
	struct cv_sha256 *chain = NULL;
	char day[PATH_MAX], path[PATH_MAX], failed[PATH_MAX], hex[CV_SHA256_HEX];
	enum adp_result res;
	int rc, n;

	b->out_path[0] = b->out_chain[0] = b->reason[0] = '\0';
	b->fail_staging_id = 0;
	if (b->nevents == 0) {
		/* Nothing written: the chain does not move. */
		snprintf(b->out_chain, sizeof(b->out_chain), "%s",
			 b->chain_prev ? b->chain_prev : "");
		return ADP_OK;
	}
	res = check_events(b);
	if (res != ADP_OK)
		return res;
	res = ADP_RETRY;
	snprintf(failed, sizeof(failed), "%s", st->dir);
	rc = adp_day_dir(st->dir, b->events[0].ts_ms, day, sizeof(day));
	if (rc)
		goto io_error;
	n = snprintf(path, sizeof(path), "%s/%s-%016" PRId64 "-%016" PRId64 ".jsonl", day,
		     st->name, b->first_staging_id, b->last_staging_id);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		rc = -ENAMETOOLONG;
		goto io_error;
	}
	snprintf(failed, sizeof(failed), "%s", path);
	for (size_t i = 0; i < b->nevents && !rc; i++) {
		rc = cv_buf_append(&data, b->events[i].json, b->events[i].json_len);
		if (!rc)
			rc = cv_buf_append(&data, "\n", 1);
	}
	chain = rc ? NULL : cv_sha256_new();
	if (!rc && !chain)
		rc = -ENOMEM;
	if (rc)
		goto io_error;
	rc = adp_make_day_dir(st->dir, day, failed, sizeof(failed));
	if (rc)
		goto io_error;
	rc = cv_write_file_atomic(path, data.data, data.len, 0640);
	if (rc) {
		snprintf(failed, sizeof(failed), "%s", path);
		goto io_error;
	}
	cv_sha256_hex(data.data, data.len, hex);
	cv_sha256_update(chain, b->chain_prev ? b->chain_prev : "",
			 b->chain_prev ? strlen(b->chain_prev) : 0);
	cv_sha256_update(chain, hex, 64);
	cv_sha256_final_hex(chain, b->out_chain);
	snprintf(b->out_path, sizeof(b->out_path), "%s", path);
	res = ADP_OK;
	goto out;
io_error:
	/*
	 * Every I/O failure is a RETRY: a full disk, a read-only mount or a bad
	 * directory is the operator's to fix, never the data's fault.  The path
	 * is clipped so the errno text always fits.
	 */
	snprintf(b->reason, sizeof(b->reason), "jsonl: cannot write %.400s: %s", failed,
		 strerror(-rc));
out:
	cv_sha256_free(chain);
	cv_buf_free(&data);
	return res;
}

const struct adp_ops adp_jsonl_ops = {
	.abi_version = ADP_ABI_VERSION,
	.struct_size = sizeof(struct adp_ops),
	.type = "jsonl",
	.keys = jsonl_keys,
	.init = jsonl_init,
	.deliver = jsonl_deliver,
	.close = jsonl_close,
};
