/*
 * example_adapter — a third-party chatvault adapter, built out of tree as a
 * shared object against the installed adapter.h only:
 *
 *   cc -std=c11 -fPIC -shared -I/usr/local/include/chatvault \
 *      -o example_adapter.so example_adapter.c
 *
 * and configured as
 *
 *   adapters = ( { name = "ids"; type = "so"; path = "/path/example_adapter.so";
 *                  required = false; options = { file = "/var/lib/ids/batch-"; }; } );
 *
 * It writes "<event id>\n" for every event to `file`<batch_no>.txt and fsyncs before
 * answering OK.  For tests it can be told to misbehave:
 *   retry_percent = N   answer RETRY for about N% of batches (before writing)
 *   fail_event = "ID"   answer FAIL blaming the event with that id
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter.h"

struct example {
	char path[200];
	int retry_percent;
	char fail_event[64];
	unsigned int seed;
};

static const struct adp_key example_keys[] = {
	{ "file", ADP_KEY_STRING, NULL, "where event ids are written" },
	{ "retry_percent", ADP_KEY_INT, "0", "answer RETRY for this share of batches" },
	{ "fail_event", ADP_KEY_STRING, "", "answer FAIL for the event with this id" },
	{ NULL, 0, NULL, NULL },
};

static int example_init(const struct adp_env *env, void **state, char *err, size_t errlen)
{
	struct example *ex;
	const char *file = adp_env_opt(env, "file");

	if (!file || !*file) {
		snprintf(err, errlen, "option \"file\" is required");
		return -EINVAL;
	}
	ex = calloc(1, sizeof(*ex));
	if (!ex) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(ex->path, sizeof(ex->path), "%s", file);
	ex->retry_percent = atoi(adp_env_opt(env, "retry_percent"));
	snprintf(ex->fail_event, sizeof(ex->fail_event), "%s", adp_env_opt(env, "fail_event"));
	ex->seed = (unsigned int)getpid();
	*state = ex;
	return 0;
}

static enum adp_result example_deliver(void *state, struct adp_batch *b)
{
	struct example *ex = state;
	char path[256];
	int fd;

	if (ex->retry_percent > 0 && (int)(rand_r(&ex->seed) % 100) < ex->retry_percent) {
		snprintf(b->reason, sizeof(b->reason), "simulated transient failure");
		return ADP_RETRY;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		if (ex->fail_event[0] && strcmp(b->events[i].id, ex->fail_event) == 0) {
			snprintf(b->reason, sizeof(b->reason), "event %s refused by example adapter",
				 b->events[i].id);
			b->fail_staging_id = b->events[i].staging_id;
			return ADP_FAIL;
		}
	}
	/* One file per batch number: a redelivered batch replaces its file. */
	snprintf(path, sizeof(path), "%s%06lld.txt", ex->path, (long long)b->batch_no);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(b->reason, sizeof(b->reason), "%.256s: %.200s", path, strerror(errno));
		return ADP_RETRY;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		if (dprintf(fd, "%s\n", b->events[i].id) < 0) {
			snprintf(b->reason, sizeof(b->reason), "%.256s: %.200s", path, strerror(errno));
			close(fd);
			return ADP_RETRY;
		}
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		snprintf(b->reason, sizeof(b->reason), "%.256s: %.200s", path, strerror(errno));
		return ADP_RETRY;
	}
	snprintf(b->out_path, sizeof(b->out_path), "%s", path);
	return ADP_OK;
}

static void example_close(void *state)
{
	free(state);
}

const struct adp_ops chatvault_adapter = {
#ifdef EXAMPLE_WRONG_ABI
	.abi_version = ADP_ABI_VERSION + 1,
#else
	.abi_version = ADP_ABI_VERSION,
#endif
	.struct_size = sizeof(struct adp_ops),
	.type = "example",
	.keys = example_keys,
	.init = example_init,
	.deliver = example_deliver,
	.close = example_close,
};
