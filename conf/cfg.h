/*
 * cfg — the one configuration of chatvault, parsed once with libconfig and
 * immutable afterwards (rsyslog's instanceData split: this is the read-only
 * half; every worker keeps its live handles in its own *_ctx).
 *
 * File format: libconfig (comments, groups, lists, @include for the
 * regulation fragments in conf/regulations/).  Every key is documented in
 * conf/chatvault.conf.  Unknown keys, wrong types and out-of-range values are
 * errors naming file, line and key:
 *     "/etc/chatvault.conf:12: ingest.batch_size: must be 1..1000000 (got 0)"
 * With no file the built-in defaults of design.md §2 apply: the embedded
 * spool under <data_dir>/spool, the archive and xml adapters under
 * <data_dir>/archive and <data_dir>/xml, and an empty libpq conninfo (so the
 * PG* environment chooses the database).
 *
 * Adapter options are kept as typed key/value pairs with their source
 * position: the adapter named by `type` declares which keys it accepts and
 * validates them at init (adapters/adapter.h), so its errors can still name
 * file and line.
 */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg_chat.h"

#define CFG_ERRLEN 512

enum cfg_queue_backend {
	CFG_QUEUE_SPOOL = 0,
	CFG_QUEUE_KAFKA = 1,
};

enum cfg_opt_type {
	CFG_OPT_STRING = 0,
	CFG_OPT_INT = 1,     /* int or int64 in the file */
	CFG_OPT_BOOL = 2,
	CFG_OPT_FLOAT = 3,
};

/* One adapter option or one librdkafka property, with where it came from. */
struct cfg_opt {
	char *key;
	enum cfg_opt_type type;
	char *str;        /* CFG_OPT_STRING: value; otherwise the value as text */
	int64_t i;        /* CFG_OPT_INT, CFG_OPT_BOOL (0/1) */
	double f;         /* CFG_OPT_FLOAT */
	const char *file; /* points into cfg->files; "(built-in)" for defaults */
	int line;         /* 0 for defaults */
};

struct cfg_adapter {
	char *name;          /* unique instance name, [a-z0-9_-]{1,32} */
	char *type;          /* "archive", "xml", "jsonl", "eml", or "so" */
	char *path;          /* type "so": the shared object to dlopen; else NULL */
	bool required;       /* required adapters gate deletion from staging */
	int run_interval_s;  /* 1..86400, default 10 */
	int batch_size;      /* 1..1000000, default 10000 */
	struct cfg_opt *opts;
	size_t nopts;
	const char *file;
	int line;
};

/* A regulation profile (conf/regulations/<name>.conf). */
struct cfg_profile {
	char *name;                 /* "finra-4511", "sec-17a4", … */
	int retention_days;         /* minimum keep period; 0 = none */
	int extend_days;            /* may be extended up to this (mifid2: 7y) */
	bool worm;                  /* bundles never purged early, read-only */
	bool erasure;               /* GDPR: erasure requests honoured */
	char **required_adapters;   /* adapter names that must archive */
	size_t nrequired_adapters;
	char **rooms;               /* scope: room URI prefixes; none = all */
	size_t nrooms;
	char **users;               /* scope: user URIs; none = all */
	size_t nusers;
};

struct cfg {
	char *source;                /* config path, or "(built-in defaults)" */
	char **files;                /* every file read (main + @includes) */
	size_t nfiles;

	char *data_dir;              /* default "./var"; -D overrides */
	int log_level;               /* enum cv_log_level */

	struct {
		char *conninfo;              /* libpq conninfo; "" = PG* env */
		int connect_timeout_s;       /* 1..3600, default 10 */
		int retry_max_s;             /* give up reconnecting after; 0 = never; default 0 */
	} db;

	struct {
		enum cfg_queue_backend backend;  /* "spool" (default) or "kafka" */
		char *spool_path;                /* default <data_dir>/spool */
		int64_t spool_max_bytes;         /* payload bound, default 1 GiB */
		char *kafka_brokers;             /* required with kafka */
		char *kafka_topic;               /* default "chatvault.events" */
		char *kafka_group;               /* default "chatvault-ingest" */
		struct cfg_opt *kafka_props;     /* extra librdkafka properties */
		size_t nkafka_props;
	} queue;

	struct {
		char *server;          /* source.server stamp; default hostname */
		int batch_max;         /* events per durable write, default 1000 */
		int linger_ms;         /* group-commit wait, 0..10000, default 2 */
		int busy_timeout_ms;   /* queue full/unreachable this long → BUSY, default 1000 */
	} producer;

	struct {
		int batch_size;        /* events per staging transaction, default 5000 */
		int max_wait_ms;       /* wait for a fuller batch, default 200 */
		int64_t max_event_size;/* bytes, default 1 MiB, 256..64 MiB */
	} ingest;

	struct {
		int lease_s;           /* adapter lease length, default 60 */
		int retry_base_ms;     /* first RETRY backoff, default 500 */
		int retry_max_ms;      /* backoff cap, default 60000 */
		char *file_store;      /* attachments by sha256; default <data_dir>/files */
	} deliver;

	char *metrics_listen;          /* metrics.listen "HOST:PORT"; NULL: no endpoint */

	struct cfg_adapter *adapters;   /* default: archive + xml */
	size_t nadapters;

	struct {
		struct cfg_profile *profiles;   /* none by default */
		size_t nprofiles;
		int schedule_s;                 /* retention run interval in `run`, default 3600 */
		int stale_staging_days;         /* report staging/quarantine older, default 7 */
	} retention;

	struct cfg_chat chat;           /* `chatvault chatd` (conf/cfg_chat.h) */
	struct cfg_im im;               /* IM session limits (conf/cfg_chat.h) */
};

/*
 * Load path (NULL → built-in defaults).  data_dir_override (from -D) wins
 * over the file's data_dir; NULL keeps it.  Paths that default under the data
 * directory are resolved after the override.
 * Returns 0 with *out set, or -EINVAL with one error line in err
 * ("file:line: key: reason"), or -ENOMEM.
 */
int cfg_load(const char *path, const char *data_dir_override, struct cfg **out,
	     char *err, size_t errlen) __attribute__((warn_unused_result));
void cfg_free(struct cfg *cfg);

/* Print the effective configuration in libconfig syntax, secrets masked
 * (db.conninfo password, kafka properties whose key contains "password",
 * "secret" or "key"). */
void cfg_print(const struct cfg *cfg, FILE *out);

/* Lookup helpers for adapter option tables. */
const struct cfg_opt *cfg_adapter_opt(const struct cfg_adapter *a, const char *key);
const struct cfg_adapter *cfg_find_adapter(const struct cfg *cfg, const char *name);

#endif
