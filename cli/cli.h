/*
 * cli — the `chatvault` command: global options, shared helpers for the
 * subcommands (config, database, signals, errors), and the subcommands.
 *
 * Errors for the user are one line on stderr: "chatvault: CMD: what: why".
 * Exit status (design.md §2): 0 success, 1 runtime failure, 2 usage or
 * configuration error, 3 verification found a problem.
 *
 * Signals never run code in a handler: workers block SIGTERM/SIGINT/SIGHUP
 * and read them from a signalfd between batches (pgbouncer's way), so there
 * is no global flag.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"

enum {
	CLI_OK = 0,
	CLI_RUNTIME = 1,
	CLI_USAGE = 2,
	CLI_VERIFY = 3,
};

struct sto_db;

struct cli_ctx {
	const char *cmd;          /* subcommand name, for error lines */
	const char *config_path;  /* -c, or NULL */
	const char *data_dir;     /* -D, or NULL */
	int verbosity;            /* -v count */
	bool quiet;               /* -q */
	struct cfg *cfg;          /* after cli_load_config */
	int sigfd;                /* after cli_signals_block, else -1 */
	bool stop;                /* SIGTERM/SIGINT seen */
	bool reload;              /* SIGHUP seen */
	bool oneshot;             /* give up reconnecting after 30 s (not a worker) */
};

void cli_error(const struct cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load ctx->cfg from -c (or defaults), -D; prints the error; CLI_OK/CLI_USAGE. */
int cli_load_config(struct cli_ctx *ctx);
/* Connect to PostgreSQL per the config; prints the error; 0 or CLI_RUNTIME. */
int cli_open_db(struct cli_ctx *ctx, const char *application, struct sto_db **db);

/* Block SIGTERM, SIGINT, SIGHUP and read them through a signalfd. */
int cli_signals_block(struct cli_ctx *ctx);
/* Non-blocking poll of the signalfd; returns ctx->stop.  Usable as a
 * should_stop callback (arg = ctx). */
bool cli_should_stop(void *ctx);
/* cli_should_stop, or a SIGHUP waiting: the worker returns after its batch
 * so the command can reload and start it again. */
bool cli_should_yield(void *ctx);
/* SIGHUP: load the configuration again (-c, -D as at start).  A valid one
 * replaces ctx->cfg (the worker using the old one must have returned); an
 * invalid one is logged and the current one kept.  Clears ctx->reload.
 * 0 reloaded, -1 kept. */
int cli_reload_config(struct cli_ctx *ctx);

/* Subcommands: argv[0] is the subcommand name. */
int cmd_migrate(struct cli_ctx *ctx, int argc, char **argv);
int cmd_config(struct cli_ctx *ctx, int argc, char **argv);
int cmd_emit(struct cli_ctx *ctx, int argc, char **argv);
int cmd_ingest(struct cli_ctx *ctx, int argc, char **argv);
int cmd_deliver(struct cli_ctx *ctx, int argc, char **argv);
int cmd_run(struct cli_ctx *ctx, int argc, char **argv);
int cmd_status(struct cli_ctx *ctx, int argc, char **argv);
int cmd_quarantine(struct cli_ctx *ctx, int argc, char **argv);
int cmd_retention(struct cli_ctx *ctx, int argc, char **argv);
int cmd_hold(struct cli_ctx *ctx, int argc, char **argv);
int cmd_erase(struct cli_ctx *ctx, int argc, char **argv);
int cmd_export(struct cli_ctx *ctx, int argc, char **argv);
int cmd_verify(struct cli_ctx *ctx, int argc, char **argv);
int cmd_user(struct cli_ctx *ctx, int argc, char **argv);
int cmd_chatd(struct cli_ctx *ctx, int argc, char **argv);
int cmd_room(struct cli_ctx *ctx, int argc, char **argv);

/* The status queries (cmd_status.c), shared with the /metrics scrape.
 * counts: staged, unreplayed quarantine, open sequence gaps.  adapters: one
 * row per adapter with a state row (columns: adapter, required, cursor,
 * backlog, oldest undelivered age in s or '', last_success, failures, next
 * attempt, last_error, delivered, quarantined, lease holder); $1 is the
 * array literal cli_adapter_names() builds. */
extern const char cli_status_counts_sql[];
extern const char cli_status_adapters_sql[];
struct cv_buf;
int cli_adapter_names(const struct cfg *cfg, struct cv_buf *out);

/* The retention clock: system time, or CHATVAULT_NOW (announced); 0 or -1
 * with the error printed. */
int cli_retention_clock(const struct cli_ctx *ctx, int64_t *now_ms, bool *overridden);
/* One retention run printing to out (used by `retention` and `run`). */
int cli_retention_once(struct cli_ctx *ctx, struct sto_db *db, bool dry_run, FILE *out);

#endif
