/*
 * cli_metrics — the HTTP endpoint of `chatvault run --metrics HOST:PORT`
 * (libmicrohttpd): GET /metrics (Prometheus text format 0.0.4) and
 * GET /healthz; any other path is 404, any other method 405.
 *
 * /metrics renders the run's cv_metrics registry (counters and histograms
 * the workers update) followed by what is measured at scrape time: build
 * info, chatvault_up{component} (db, ingest, deliver, retention), the spool
 * depth, and from PostgreSQL — with the same SQL as `chatvault status` —
 * staged and quarantined events, open sequence gaps, and per adapter the
 * backlog and the age of the oldest undelivered event.  Those queries run
 * on the server's own connection (never a worker's) with a statement
 * timeout, so a scrape never waits on, or blocks, a worker; when the
 * database cannot be reached the scrape still answers, with
 * chatvault_up{component="db"} 0 and without the database's numbers.
 *
 * /healthz: 200 "ok" when every worker thread runs and the database
 * answered within the last CLI_HEALTH_DB_S seconds (checked with SELECT 1
 * when the last contact is older than a second); else 503 and one line
 * naming what is wrong.
 *
 * Threads: libmicrohttpd's one internal polling thread serves every
 * request, one at a time, at most CLI_METRICS_MAX_CONN connections.  It
 * reads the configuration under the server's lock, which `run` takes
 * around a SIGHUP reload (cli_metrics_reload_begin/end).
 */
#ifndef CLI_METRICS_H
#define CLI_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "cfg.h"

#define CLI_METRICS_MAX_CONN 16
#define CLI_HEALTH_DB_S 15          /* database contact older than this: unhealthy */
#define CLI_METRICS_STMT_TIMEOUT_MS 2000

struct cv_metrics;
struct cli_metrics_srv;

/* What the worker threads of `run` report about themselves. */
struct cli_health {
	atomic_bool ingest, deliver, retention;  /* the thread is running */
	atomic_bool reloading;                   /* SIGHUP: threads restart */
};

/*
 * Listen on addr ("HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT" for every
 * address) and serve.  cfg, m and h stay owned by the caller and must
 * outlive the server (cfg until the next cli_metrics_reload_end).
 * Returns 0, -EINVAL for a malformed address, or negative errno (err holds
 * one line: what and why).
 */
int cli_metrics_start(const char *addr, const struct cfg *cfg, struct cv_metrics *m,
		      struct cli_health *h, struct cli_metrics_srv **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Around a configuration reload: begin waits for a request in progress and
 * holds the server; end installs the new cfg (its database connection is
 * reopened on the next request).  Both NULL-safe. */
void cli_metrics_reload_begin(struct cli_metrics_srv *s);
void cli_metrics_reload_end(struct cli_metrics_srv *s, const struct cfg *cfg);

/* Stop serving (waits for a request in progress); NULL-safe. */
void cli_metrics_stop(struct cli_metrics_srv *s);

#endif
