/*
 * cmd_status — `chatvault status [--json]`: what an operator checks first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "queue.h"
#include "sto_db.h"

/* Shared with the /metrics scrape (cli_metrics.c), so both report the same
 * numbers.  $1: the configured adapter names (cli_adapter_names). */
const char cli_status_adapters_sql[] =
	"SELECT a.adapter, a.required, a.cursor,"
	" (SELECT count(*) FROM chatvault.staged_events s WHERE s.staging_id > a.cursor),"
	" coalesce((SELECT extract(epoch FROM now() - min(s.staged_at))::bigint"
	"   FROM chatvault.staged_events s WHERE s.staging_id > a.cursor)::text, ''),"
	" coalesce(to_char(a.last_success AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	" a.consecutive_failures,"
	" coalesce(to_char(a.next_attempt AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	" coalesce(a.last_error, ''), a.delivered_events, a.failed_events,"
	" coalesce(a.lease_holder, '')"
	" FROM chatvault.adapter_state a WHERE a.adapter = ANY($1::text[]) ORDER BY a.adapter";

const char cli_status_counts_sql[] =
	"SELECT (SELECT count(*) FROM chatvault.staged_events),"
	" (SELECT count(*) FROM chatvault.quarantine WHERE replayed_at IS NULL),"
	" (SELECT count(*) FROM chatvault.sequence_gaps)";

int cli_adapter_names(const struct cfg *cfg, struct cv_buf *out)
{
	if (cv_buf_append(out, "{", 1))
		return -1;
	for (size_t i = 0; i < cfg->nadapters; i++)
		if (cv_buf_printf(out, "%s\"%s\"", i ? "," : "", cfg->adapters[i].name))
			return -1;
	return cv_buf_append(out, "}", 1) ? -1 : 0;
}

int cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	struct sto_db *db = NULL;
	PGresult *res = NULL;
	struct cv_buf names = { 0 };
	json_t *root = NULL, *adapters = NULL, *gaps = NULL;
	char err[STO_ERRLEN], depth_err[STO_ERRLEN];
	bool as_json = false;
	int64_t depth, staged = 0, quarantined = 0;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else {
			cli_error(ctx, "unknown argument %s", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((rc = cli_load_config(ctx)) != CLI_OK)
		return rc;
	if ((rc = cli_open_db(ctx, "chatvault-status", &db)) != CLI_OK)
		return rc;
	/* After the database: Kafka's depth is measured from the positions
	 * stored there (ing_kafka_lag).  Unknown is not a failure of status. */
	depth = ing_queue_depth(ctx->cfg, db, depth_err, sizeof(depth_err));
	rc = CLI_RUNTIME;
	if (sto_exec(db, "count staged", cli_status_counts_sql, 0, NULL, &res, err,
		     sizeof(err)) != CV_OK)
		goto out;
	staged = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	quarantined = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	res = NULL;
	root = json_object();
	adapters = json_array();
	gaps = json_array();
	json_object_set_new(root, "queue_backend",
			    json_string(ctx->cfg->queue.backend == CFG_QUEUE_SPOOL ? "spool" : "kafka"));
	json_object_set_new(root, "queue_depth", depth >= 0 ? json_integer(depth) : json_null());
	json_object_set_new(root, "staged", json_integer(staged));
	json_object_set_new(root, "quarantined", json_integer(quarantined));

	if (cli_adapter_names(ctx->cfg, &names) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	{
		const char *p[1] = { names.data };

		if (sto_exec(db, "adapter status", cli_status_adapters_sql, 1, p, &res, err,
			     sizeof(err)) != CV_OK)
			goto out;
	}
	for (size_t i = 0; i < ctx->cfg->nadapters; i++) {
		const struct cfg_adapter *ca = &ctx->cfg->adapters[i];
		json_t *a = json_object();
		int row = -1;

		for (int r = 0; r < PQntuples(res); r++)
			if (strcmp(PQgetvalue(res, r, 0), ca->name) == 0)
				row = r;
		json_object_set_new(a, "name", json_string(ca->name));
		json_object_set_new(a, "type", json_string(ca->type));
		json_object_set_new(a, "required", json_boolean(ca->required));
		if (row < 0) {
			/* Never run: everything staged is its backlog. */
			json_object_set_new(a, "backlog", json_integer(staged));
			json_object_set_new(a, "state", json_string("never run"));
		} else {
			const char *v;

			json_object_set_new(a, "backlog",
					    json_integer(strtoll(PQgetvalue(res, row, 3), NULL, 10)));
			v = PQgetvalue(res, row, 4);
			json_object_set_new(a, "oldest_undelivered_age_s",
					    *v ? json_integer(strtoll(v, NULL, 10)) : json_null());
			v = PQgetvalue(res, row, 5);
			json_object_set_new(a, "last_success", *v ? json_string(v) : json_null());
			json_object_set_new(a, "consecutive_failures",
					    json_integer(atoi(PQgetvalue(res, row, 6))));
			v = PQgetvalue(res, row, 7);
			json_object_set_new(a, "next_attempt", *v ? json_string(v) : json_null());
			v = PQgetvalue(res, row, 8);
			json_object_set_new(a, "last_error", *v ? json_string(v) : json_null());
			json_object_set_new(a, "delivered_events",
					    json_integer(strtoll(PQgetvalue(res, row, 9), NULL, 10)));
			json_object_set_new(a, "quarantined_events",
					    json_integer(strtoll(PQgetvalue(res, row, 10), NULL, 10)));
			v = PQgetvalue(res, row, 11);
			json_object_set_new(a, "lease_holder", *v ? json_string(v) : json_null());
		}
		json_array_append_new(adapters, a);
	}
	PQclear(res);
	res = NULL;
	json_object_set_new(root, "adapters", adapters);
	adapters = NULL;
	if (sto_exec(db, "sequence gaps",
		     "SELECT source_server, first_missing, last_missing FROM chatvault.sequence_gaps"
		     " ORDER BY source_server, first_missing", 0, NULL, &res, err, sizeof(err)) != CV_OK)
		goto out;
	for (int r = 0; r < PQntuples(res); r++)
		json_array_append_new(gaps, json_pack("{s:s,s:I,s:I}", "server", PQgetvalue(res, r, 0),
						      "first_missing",
						      (json_int_t)strtoll(PQgetvalue(res, r, 1), NULL, 10),
						      "last_missing",
						      (json_int_t)strtoll(PQgetvalue(res, r, 2), NULL, 10)));
	json_object_set_new(root, "sequence_gaps", gaps);
	gaps = NULL;

	if (as_json) {
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		json_t *arr = json_object_get(root, "adapters"), *a;
		size_t i;
		bool spool = ctx->cfg->queue.backend == CFG_QUEUE_SPOOL;

		if (depth >= 0)
			printf("queue (%s): %" PRId64 " waiting%s\n", spool ? "spool" : "kafka", depth,
			       spool ? "" : " (consumer lag)");
		else
			printf("queue (%s): depth unknown: %s\n", spool ? "spool" : "kafka",
			       depth_err[0] ? depth_err : "no reason given");
		printf("staged: %" PRId64 "   quarantined: %" PRId64 "   sequence gaps: %zu\n\n",
		       staged, quarantined, json_array_size(json_object_get(root, "sequence_gaps")));
		printf("%-12s %-8s %-4s %9s %9s %-20s %5s %-20s %s\n", "ADAPTER", "TYPE", "REQ",
		       "BACKLOG", "OLDEST_S", "LAST_SUCCESS", "FAILS", "NEXT_ATTEMPT", "LAST_ERROR");
		json_array_foreach(arr, i, a) {
			json_t *age = json_object_get(a, "oldest_undelivered_age_s");
			char agebuf[24] = "-";

			if (json_is_integer(age))
				snprintf(agebuf, sizeof(agebuf), "%" JSON_INTEGER_FORMAT,
					 json_integer_value(age));
			printf("%-12s %-8s %-4s %9" JSON_INTEGER_FORMAT " %9s %-20s %5" JSON_INTEGER_FORMAT
			       " %-20s %s\n",
			       json_string_value(json_object_get(a, "name")),
			       json_string_value(json_object_get(a, "type")),
			       json_is_true(json_object_get(a, "required")) ? "yes" : "no",
			       json_integer_value(json_object_get(a, "backlog")), agebuf,
			       json_string_value(json_object_get(a, "last_success"))
				       ? json_string_value(json_object_get(a, "last_success")) : "-",
			       json_integer_value(json_object_get(a, "consecutive_failures")),
			       json_string_value(json_object_get(a, "next_attempt"))
				       ? json_string_value(json_object_get(a, "next_attempt")) : "-",
			       json_string_value(json_object_get(a, "last_error"))
				       ? json_string_value(json_object_get(a, "last_error")) : "");
		}
		json_array_foreach(json_object_get(root, "sequence_gaps"), i, a)
			printf("gap: %s seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT " missing\n",
			       json_string_value(json_object_get(a, "server")),
			       json_integer_value(json_object_get(a, "first_missing")),
			       json_integer_value(json_object_get(a, "last_missing")));
	}
	rc = CLI_OK;
out:
	if (rc != CLI_OK)
		cli_error(ctx, "%s", err);
	PQclear(res);
	json_decref(root);
	json_decref(adapters);
	json_decref(gaps);
	cv_buf_free(&names);
	sto_db_close(db);
	return rc;
}
