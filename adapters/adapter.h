/*
 * adapter.h — the chatvault adapter ABI (installed for third-party adapters;
 * self-contained: it includes only the C standard library).
 *
 * An adapter is one const table of functions (fluent-bit's plugin struct,
 * nginx's versioned module): built-ins are registered statically
 * (adapters/registry.c); a shared object exports the same table under the
 * symbol name ADP_SYMBOL and is refused at load when abi_version or
 * struct_size do not match this header.
 *
 * Life cycle, driven by one batch worker per adapter instance (deliver/):
 *   init(env) once → deliver(batch) many times → close(state) once.
 * All three run on the worker's thread; an adapter needs no locking unless it
 * shares state between instances.
 *
 * Results (rsyslog's SUSPENDED vs DATAFAIL, as a type):
 *   ADP_OK    the whole batch is durable in the adapter's output (fsynced,
 *             renamed, acknowledged: never merely "queued").
 *   ADP_RETRY transient (disk full, directory not writable, remote down):
 *             nothing is advanced; the worker backs off and redelivers the
 *             identical batch later.
 *   ADP_FAIL  permanent for this data: set reason; set fail_staging_id to
 *             blame one event (it is quarantined and the batch retried
 *             without it) or leave it 0 to quarantine the whole batch.
 *
 * Idempotency: a batch that was handed out but not committed (crash) is
 * redelivered with the same batch_no, the same events and the same
 * chain_prev, and the adapter must produce the same output names, replacing
 * (not duplicating) anything it wrote the first time.
 */
#ifndef ADP_ADAPTER_H
#define ADP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#define ADP_ABI_VERSION 1u
#define ADP_SYMBOL "chatvault_adapter"

enum adp_result {
	ADP_OK = 0,
	ADP_RETRY = 1,
	ADP_FAIL = 2,
};

enum adp_key_type {
	ADP_KEY_STRING = 0,
	ADP_KEY_INT = 1,
	ADP_KEY_BOOL = 2,
};

/* One accepted configuration key; arrays end with { NULL }. */
struct adp_key {
	const char *name;
	enum adp_key_type type;
	const char *dflt;   /* default as text, or NULL (then optional, unset) */
	const char *help;
};

/* One option as configured (validated against keys[] before init):
 * ints as decimal text, bools as "true"/"false". */
struct adp_option {
	const char *key;
	const char *value;
};

struct adp_env {
	const char *name;        /* instance name from the config */
	const char *data_dir;    /* chatvault data directory (-D) */
	const char *file_store;  /* attachments stored as <file_store>/<sha256> */
	const struct adp_option *opts;   /* every key of keys[] that has a value
					    (defaults filled in) */
	size_t nopts;
};

struct adp_file {
	const char *name;
	int64_t size;
	const char *sha256;      /* 64 lower-case hex */
};

/* One staged event.  Strings are NUL-terminated UTF-8; NULL when absent. */
struct adp_event {
	int64_t staging_id;
	const char *id;
	const char *type;        /* "chat.post", … */
	int64_t ts_ms;           /* UTC ms since the epoch */
	const char *ts;          /* canonical "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	const char *room;
	const char *user;
	const char *to;
	const char *text;
	const struct adp_file *files;
	size_t nfiles;
	const char *source_server;
	int64_t source_seq;
	const char *json;        /* the canonical event line, no newline */
	size_t json_len;
};

struct adp_batch {
	/* in */
	const char *adapter_name;
	int64_t batch_no;           /* 1, 2, 3 … per adapter instance */
	int64_t first_staging_id;
	int64_t last_staging_id;
	const struct adp_event *events;  /* staging order */
	size_t nevents;
	const char *chain_prev;     /* out_chain of the previous committed batch
				       of this instance; "" for the first */
	/* out, on ADP_OK */
	char out_path[4096];        /* the main file written, or "" */
	char out_chain[65];         /* this batch's chain hash, or "" */
	/* out, on ADP_RETRY / ADP_FAIL */
	char reason[512];
	int64_t fail_staging_id;
};

struct adp_ops {
	uint32_t abi_version;       /* ADP_ABI_VERSION */
	uint32_t struct_size;       /* sizeof(struct adp_ops) */
	const char *type;           /* "archive", "xml", … or the .so's name */
	const struct adp_key *keys; /* accepted options, { NULL }-terminated */
	/* Returns 0, or negative with a one-line reason in err. */
	int (*init)(const struct adp_env *env, void **state, char *err, size_t errlen);
	enum adp_result (*deliver)(void *state, struct adp_batch *batch);
	void (*close)(void *state);
};

/* Option lookup for adapters: the value or NULL. */
static inline const char *adp_env_opt(const struct adp_env *env, const char *key)
{
	for (size_t i = 0; i < env->nopts; i++) {
		const char *a = env->opts[i].key, *b = key;
		while (*a && *a == *b) { a++; b++; }
		if (*a == *b)
			return env->opts[i].value;
	}
	return NULL;
}

#endif
