/*
 * cli_metrics — the HTTP endpoint of `chatvault run|ingest|deliver|chatd
 * --metrics HOST:PORT` (libmicrohttpd): GET /metrics (Prometheus text
 * format 0.0.4) and GET /healthz; any other path is 404, any other method
 * 405.
 *
 * A process says which components it runs (struct cli_metrics_opts):
 * `run` all three workers, `ingest` and `deliver` one each, chatd its SIP
 * loop.  Only those appear in chatvault_up{component} and only those are
 * checked by /healthz.
 *
 * /metrics renders the process's cv_metrics registry (counters and
 * histograms the workers, or chatd's loop, update) followed by what is
 * measured at scrape time: build info, chatvault_up{component} (db and the
 * present components), and with pipeline_gauges: the spool depth (when
 * ingest is present) and from PostgreSQL — with the same SQL as `chatvault
 * status` — staged and quarantined events, open sequence gaps, and per
 * adapter the backlog and the age of the oldest undelivered event.  Those
 * queries run on the server's own connection (never a worker's) with a
 * statement timeout, so a scrape never waits on, or blocks, a worker; when
 * the database cannot be reached the scrape still answers, with
 * chatvault_up{component="db"} 0 and without the database's numbers.
 *
 * /healthz: 200 "ok" when every present worker thread runs, chatd's loop
 * beat within the last CLI_HEALTH_DB_S seconds, and (with CLI_C_DB) the
 * database answered within the last CLI_HEALTH_DB_S seconds (checked with
 * SELECT 1 when the last contact is older than a second); else 503 and one
 * line naming what is wrong.
 *
 * Threads: libmicrohttpd's one internal polling thread serves every
 * request, one at a time, at most CLI_METRICS_MAX_CONN connections.  It
 * reads the configuration under the server's lock, which the workers take
 * around a SIGHUP reload (cli_metrics_reload).
 */
#ifndef CLI_METRICS_H
#define CLI_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define CLI_METRICS_MAX_CONN 16
#define CLI_HEALTH_DB_S 15          /* database contact older than this: unhealthy */
#define CLI_METRICS_STMT_TIMEOUT_MS 2000

struct cv_metrics;
struct cli_metrics_srv;

/* The components a process runs (a bit mask), in chatvault_up's order. */
enum cli_component {
	CLI_C_DB = 1u << 0,          /* PostgreSQL: the scrape's queries, /healthz's contact */
	CLI_C_INGEST = 1u << 1,      /* the ingest consumer */
	CLI_C_DELIVER = 1u << 2,     /* the delivery workers */
	CLI_C_RETENTION = 1u << 3,   /* the retention schedule */
	CLI_C_CHATD = 1u << 4,       /* chatd's SIP loop */
};
#define CLI_C_RUN (CLI_C_DB | CLI_C_INGEST | CLI_C_DELIVER | CLI_C_RETENTION)

struct cli_metrics_opts {
	unsigned components;         /* enum cli_component bits */
	bool pipeline_gauges;        /* staging/backlog gauges (needs CLI_C_DB); the
				      * spool depth too when CLI_C_INGEST is present */
};

/* What the workers report about themselves; only the present components'
 * fields are read. */
struct cli_health {
	atomic_bool ingest, deliver, retention;  /* the thread is running */
	atomic_bool reloading;                   /* SIGHUP: threads restart */
	_Atomic int64_t chat_beat_ms;            /* chatd: cv_time_mono_ms() of the loop's
						  * last heartbeat; 0 = not yet */
};

/*
 * For the commands: listen on addr ("HOST:PORT", "[V6]:PORT", ":PORT" or
 * "*:PORT" for every address) and serve ctx->cfg and m, the registry the
 * workers update (NULL: out of memory), which the server takes: freed here
 * on failure, else by cli_metrics_stop.  ctx->cfg and h must outlive the
 * server (the cfg until the next cli_metrics_reload); o is copied.  An
 * error is reported through cli_error; CLI_OK, CLI_USAGE (bad address or
 * options) or CLI_RUNTIME.
 */
struct cli_ctx;
struct sto_db;
int cli_metrics_serve(struct cli_ctx *ctx, const char *addr, struct cv_metrics *m,
		      struct cli_health *h, const struct cli_metrics_opts *o,
		      struct cli_metrics_srv **out) __attribute__((warn_unused_result));

/* "--metrics ADDR" or "--metrics=ADDR" at argv[*i]: 1 (addr set, *i moved
 * past it), 0 not this option. */
int cli_metrics_arg(int argc, char **argv, int *i, const char **addr);

/* SIGHUP, between two runs of the workers: cli_reload_config while the
 * server (it reads the configuration; may be NULL) waits, then the new cfg
 * is the server's.  With db, and a new configuration loaded: *db closed and
 * opened again as application (the conninfo may differ).  CLI_OK (an
 * invalid configuration is logged and the current one kept) or
 * cli_open_db's CLI_RUNTIME. */
int cli_metrics_reload(struct cli_metrics_srv *s, struct cli_ctx *ctx, const char *application,
		       struct sto_db **db);

/* Stop serving (waits for a request in progress) and free the registry;
 * NULL-safe. */
void cli_metrics_stop(struct cli_metrics_srv *s);

#endif
